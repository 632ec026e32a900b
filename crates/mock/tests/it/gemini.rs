//! The Gemini API, whole answers: shape, usage, candidates, function calls, function
//! responses, thoughts with signatures, JSON mode and request checks.

use serde_json::{Value, json};
use tokenrouter_mock::{MockConfig, MockServer, count_tokens};

use crate::client::{http, mock, post_to, url};

/// A request with one user turn.
pub fn gemini(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

pub fn with(body: Value, fields: Value) -> Value {
    crate::anthropic::with(body, fields)
}

/// `/v1beta/models/{model}:generateContent`.
pub fn generate(model: &str) -> String {
    format!("/v1beta/models/{model}:generateContent")
}

pub fn functions() -> Value {
    json!([{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather in a city",
         "parameters": {"type": "OBJECT",
            "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}},
            "required": ["city", "days"]}},
        {"name": "get_time",
         "parametersJsonSchema": {"type": "object", "properties": {"utc": {"type": "boolean"}}, "required": ["utc"]}}
    ]}])
}

/// A 200 response.
pub async fn content(server: &MockServer, body: &Value) -> Value {
    let response = post_to(server, &generate("gemini-mock"), body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// A non-200 answer's status and Google error status, checking the envelope.
pub async fn failure(response: reqwest::Response) -> (u16, String) {
    let code = response.status().as_u16();
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["error"]["code"], code, "{e}");
    assert!(e["error"]["message"].is_string(), "{e}");
    (code, e["error"]["status"].as_str().unwrap().to_owned())
}

fn parts(response: &Value) -> &Vec<Value> {
    response["candidates"][0]["content"]["parts"].as_array().unwrap()
}

#[tokio::test]
async fn response_has_gemini_shape_and_usage() {
    let server = mock(MockConfig { cached_tokens: 2, ..MockConfig::default() }).await;
    let body = json!({
        "systemInstruction": {"parts": [{"text": "You are helpful."}]},
        "contents": [{"role": "user", "parts": [{"text": "Say hello to the world"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]}],
        "generationConfig": {"temperature": 0.2, "topP": 0.9}
    });
    let response = http()
        .post(url(&server, &generate("gemini-2.0-flash")))
        .header("x-goog-api-key", "AIza-upstream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let r: Value = response.json().await.unwrap();

    let candidates = r["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0]["index"], 0);
    assert_eq!(candidates[0]["finishReason"], "STOP");
    assert_eq!(candidates[0]["content"]["role"], "model");
    let text = parts(&r)[0]["text"].as_str().unwrap();
    assert_eq!(count_tokens(text), 16);
    assert!(text.starts_with("Say "), "{text}");
    assert_eq!(r["modelVersion"], "gemini-2.0-flash");
    assert_eq!(r["responseId"], "resp_mock_1");
    // 3 + 1 (system) + 5 + 1 (user)
    assert_eq!(
        r["usageMetadata"],
        json!({"promptTokenCount": 10, "candidatesTokenCount": 16, "totalTokenCount": 26,
            "cachedContentTokenCount": 2,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}]})
    );

    let stats = server.stats();
    assert_eq!(stats.request_count(), 1);
    assert_eq!(stats.tokens_generated(), 16);
    let recorded = stats.last_request().unwrap();
    assert_eq!(recorded.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(recorded.header("x-goog-api-key"), Some("AIza-upstream"));
    assert_eq!(recorded.body, body);
}

#[tokio::test]
async fn generation_config_limits_and_multiplies() {
    let server = mock(MockConfig::default()).await;
    let config = json!({"generationConfig": {"maxOutputTokens": 3, "candidateCount": 2}});
    let r = content(&server, &with(gemini("hi"), config)).await;
    let candidates = r["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    for (i, candidate) in candidates.iter().enumerate() {
        assert_eq!(candidate["index"], i);
        assert_eq!(candidate["finishReason"], "MAX_TOKENS");
        let text = candidate["content"]["parts"][0]["text"].as_str().unwrap();
        assert_eq!(count_tokens(text), 3);
    }
    assert_eq!(r["usageMetadata"]["candidatesTokenCount"], 6);

    let full = content(&server, &gemini("hi")).await;
    let full = parts(&full)[0]["text"].as_str().unwrap().to_owned();
    let word = full.split(' ').nth(3).unwrap();
    let stop = json!({"generationConfig": {"stopSequences": [word]}});
    let r = content(&server, &with(gemini("hi"), stop)).await;
    let text = parts(&r)[0]["text"].as_str().unwrap();
    assert!(full.starts_with(text) && !text.contains(word), "{text}");
    assert!(count_tokens(text) <= 3);
    assert_eq!(r["candidates"][0]["finishReason"], "STOP");
    assert_eq!(r["usageMetadata"]["candidatesTokenCount"], count_tokens(text));
}

#[tokio::test]
async fn function_calls_single_parallel_and_modes() {
    let server = mock(MockConfig::default()).await;
    let ask = with(gemini("Weather in Paris?"), json!({"tools": functions()}));

    let r = content(&server, &ask).await;
    let calls = parts(&r);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0],
        json!({"functionCall": {"name": "get_weather", "args": {"city": "mock", "days": 1}, "id": "call_mock_1"}})
    );
    assert_eq!(r["candidates"][0]["finishReason"], "STOP");

    let any = json!({"toolConfig": {"functionCallingConfig": {"mode": "ANY"}}});
    let r = content(&server, &with(ask.clone(), any)).await;
    let names: Vec<&str> = parts(&r).iter().map(|p| p["functionCall"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["get_weather", "get_time"]);
    assert_eq!(parts(&r)[1]["functionCall"]["args"], json!({"utc": true}));

    let allowed =
        json!({"toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}});
    let r = content(&server, &with(ask.clone(), allowed)).await;
    assert_eq!(parts(&r).len(), 1);
    assert_eq!(parts(&r)[0]["functionCall"]["name"], "get_time");

    let none = json!({"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}});
    let r = content(&server, &with(ask, none)).await;
    assert!(parts(&r)[0]["text"].is_string());
}

#[tokio::test]
async fn a_function_response_gets_a_text_answer() {
    let server = mock(MockConfig::default()).await;
    let body = json!({"tools": functions(), "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": 1}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"forecast": "Sunny"}}}]}
    ]});
    let r = content(&server, &body).await;
    let text = parts(&r)[0]["text"].as_str().unwrap();
    // The reply reacts to the serialized response, `{"forecast":"Sunny"}`.
    assert!(text.starts_with("forecastSunny "), "{text}");
}

#[tokio::test]
async fn thoughts_come_first_and_sign_the_first_call() {
    let server = mock(MockConfig { reply_tokens: 4, ..MockConfig::default() }).await;
    let thinking = json!({"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true}}});
    let r = content(&server, &with(gemini("hi"), thinking.clone())).await;
    assert_eq!(parts(&r)[0], json!({"text": "Let me think about this.", "thought": true}));
    assert!(parts(&r)[1].get("thought").is_none());
    assert_eq!(r["usageMetadata"]["thoughtsTokenCount"], 5);
    assert_eq!(r["usageMetadata"]["candidatesTokenCount"], 4);
    assert_eq!(r["usageMetadata"]["totalTokenCount"], 2 + 4 + 5);

    let any = json!({"tools": functions(), "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}});
    let r = content(&server, &with(with(gemini("Weather?"), thinking), any)).await;
    let parts = parts(&r);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["thought"], true);
    // The signature is base64, as bytes are on Gemini's wire: "sig_mock_2".
    assert_eq!(parts[1]["thoughtSignature"], "c2lnX21vY2tfMg==");
    assert!(parts[2].get("thoughtSignature").is_none());

    // Without includeThoughts, no thoughts.
    let hidden = json!({"generationConfig": {"thinkingConfig": {"thinkingBudget": 1024}}});
    let r = content(&server, &with(gemini("hi"), hidden)).await;
    assert!(r["usageMetadata"].get("thoughtsTokenCount").is_none());
}

#[tokio::test]
async fn json_mode_answers_a_json_object() {
    let server = mock(MockConfig::default()).await;
    let schema = json!({"type": "OBJECT", "properties": {"city": {"type": "STRING"},
        "population": {"type": "INTEGER"}, "note": {"type": "STRING"}}, "required": ["city", "population"]});
    for (key, schema) in [("responseSchema", schema.clone()), ("responseJsonSchema", schema)] {
        let config = json!({"generationConfig": {"responseMimeType": "application/json", key: schema}});
        let r = content(&server, &with(gemini("Biggest city?"), config)).await;
        let text = parts(&r)[0]["text"].as_str().unwrap();
        let object: Value = serde_json::from_str(text).unwrap();
        assert_eq!(object, json!({"city": "mock", "population": 1}));
    }

    let config = json!({"generationConfig": {"response_mime_type": "application/json"}});
    let r = content(&server, &with(gemini("Biggest city?"), config)).await;
    let object: Value = serde_json::from_str(parts(&r)[0]["text"].as_str().unwrap()).unwrap();
    let answer = object["answer"].as_str().unwrap();
    assert!(answer.starts_with("Biggest ") && count_tokens(answer) == 16);
}

#[tokio::test]
async fn invalid_requests_are_400_invalid_argument() {
    let server = mock(MockConfig::default()).await;
    let response = post_to(&server, &generate("g"), &json!({"contents": []})).await;
    assert_eq!(failure(response).await, (400, "INVALID_ARGUMENT".into()));
    let response = http().post(url(&server, &generate("g"))).body("{oops").send().await.unwrap();
    assert_eq!(failure(response).await, (400, "INVALID_ARGUMENT".into()));
    let response = post_to(&server, "/v1beta/models/g:countTokens", &gemini("hi")).await;
    assert_eq!(failure(response).await, (404, "NOT_FOUND".into()));
    assert_eq!(server.stats().request_count(), 2);
}
