//! The Gemini API as an inbound surface (`/v1beta/models/{model}:generateContent` and the
//! rest) against every provider kind: Google's auth spellings, answers and streams in
//! Gemini's shape, errors in Google's, and the same billing and request log as chat.

use serde_json::{Value, json};
use tokenrouter_core::NanoUsd;

use crate::harness::{Gateway, NATIVE_KINDS, key_for, request_id};

const EMBEDDING_MODELS: &str = r#"
[[models]]
id = "text-embedding-3-small"
deployments = [ { provider = "mock", upstream_model = "text-embedding-3-small" } ]

[[models]]
id = "gemini-embedding-001"
deployments = [ { provider = "gemini-mock", upstream_model = "gemini-embedding-001" } ]

[[models]]
id = "gemini-fail"
context_window = 8000
max_output_tokens = 1000
input_price = 1
output_price = 1
deployments = [ { provider = "gemini-mock", upstream_model = "gemini-mock@fault=500" } ]
"#;

/// One chat model of each provider kind, and the provider that serves it.
const MODELS: [(&str, &str); 3] =
    [("gpt-4o-mini", "mock"), ("claude-haiku-4-5", "anthropic-mock"), ("gemini-2.0-flash", "gemini-mock")];

async fn gateway() -> Gateway {
    Gateway::start_with(tokenrouter_mock::MockConfig::default(), &format!("{NATIVE_KINDS}{EMBEDDING_MODELS}")).await
}

/// A GET of `path` as Google's clients send it (the key in `x-goog-api-key`), as JSON.
async fn google_get(gw: &Gateway, path: &str) -> Value {
    let request = gw.http.get(format!("{}{path}", gw.url)).header("x-goog-api-key", &gw.key);
    request.send().await.unwrap().json().await.unwrap()
}

/// A request to a Gemini route with the key in `x-goog-api-key`, as the SDKs send it.
fn google(gw: &Gateway, model: &str, action: &str) -> reqwest::RequestBuilder {
    gw.http.post(format!("{}/v1beta/models/{model}:{action}", gw.url)).header("x-goog-api-key", &gw.key)
}

fn hello() -> Value {
    json!({"systemInstruction": {"parts": [{"text": "Be brief."}]},
           "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]})
}

fn text_of(response: &Value) -> String {
    let parts = response["candidates"][0]["content"]["parts"].as_array().cloned().unwrap_or_default();
    parts.iter().filter(|p| p["thought"] != true).filter_map(|p| p["text"].as_str()).collect()
}

/// Asserts an error in Google's shape and returns its message.
async fn expect_google_error(response: reqwest::Response, status: u16, rpc: &str) -> String {
    assert_eq!(response.status().as_u16(), status);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], status, "{body}");
    assert_eq!(body["error"]["status"], rpc, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "{body}");
    assert!(body["error"].get("type").is_none(), "not OpenAI's shape: {body}");
    message
}

#[tokio::test]
async fn generate_content_answers_in_geminis_shape_from_every_provider_kind_and_bills_it() {
    let gw = gateway().await;
    for (model, provider) in MODELS {
        let response = google(&gw, model, "generateContent").json(&hello()).send().await.unwrap();
        assert_eq!(response.status(), 200, "{model}");
        assert_eq!(response.headers()["x-tokenrouter-provider"], provider);
        let id = request_id(&response);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["candidates"][0]["content"]["role"], "model", "{body}");
        assert_eq!(body["candidates"][0]["finishReason"], "STOP", "{body}");
        assert!(!text_of(&body).is_empty(), "{body}");
        assert_eq!(body["modelVersion"], model);
        assert_eq!(body["responseId"], id.trim_start_matches("req_"));
        let usage = &body["usageMetadata"];
        let (prompt, candidates) =
            (usage["promptTokenCount"].as_u64().unwrap(), usage["candidatesTokenCount"].as_u64().unwrap());
        assert!(prompt > 0 && candidates > 0, "{body}");
        assert_eq!(usage["totalTokenCount"].as_u64().unwrap(), prompt + candidates);
        let row = gw.usage(&id).await;
        assert_eq!(row.endpoint, "gemini");
        assert!(!row.stream);
        assert_eq!(
            (row.usage.prompt_tokens, row.usage.completion_tokens),
            (prompt, candidates),
            "billed what it states"
        );
        assert!(row.cost > NanoUsd(0));
    }
}

#[tokio::test]
async fn the_key_is_read_from_each_of_googles_spellings_and_a_bad_one_is_unauthenticated() {
    let gw = gateway().await;
    let url = format!("{}/v1beta/models/gpt-4o-mini:generateContent", gw.url);
    let by_query = gw.http.post(format!("{url}?key={}", gw.key)).json(&hello()).send().await.unwrap();
    assert_eq!(by_query.status(), 200);
    let by_bearer = gw.http.post(&url).bearer_auth(&gw.key).json(&hello()).send().await.unwrap();
    assert_eq!(by_bearer.status(), 200);
    let none = gw.http.post(&url).json(&hello()).send().await.unwrap();
    expect_google_error(none, 401, "UNAUTHENTICATED").await;
    let wrong = gw.http.post(format!("{url}?key=sk-tr-0000000000000000_nope")).json(&hello()).send().await.unwrap();
    let message = expect_google_error(wrong, 401, "UNAUTHENTICATED").await;
    assert!(!message.contains("nope"), "the key is not echoed: {message}");
    // Only the Gemini routes read `?key=`.
    let chat = gw.http.post(format!("{}/v1/chat/completions?key={}", gw.url, gw.key));
    let chat = chat.json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(chat.send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn refusals_and_upstream_failures_take_googles_shape() {
    let gw = gateway().await;
    let unknown = google(&gw, "no-such-model", "generateContent").json(&hello()).send().await.unwrap();
    assert!(expect_google_error(unknown, 404, "NOT_FOUND").await.contains("no-such-model"));
    let malformed = google(&gw, "gpt-4o-mini", "generateContent")
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": 42}]}]}))
        .send()
        .await
        .unwrap();
    assert!(expect_google_error(malformed, 400, "INVALID_ARGUMENT").await.contains("contents[0].parts[0].text"));
    let modality = google(&gw, "claude-haiku-4-5", "generateContent")
        .json(&json!({"contents": hello()["contents"], "generationConfig": {"responseModalities": ["AUDIO"]}}))
        .send()
        .await
        .unwrap();
    assert!(expect_google_error(modality, 400, "INVALID_ARGUMENT").await.contains("AUDIO"));
    let action = google(&gw, "gpt-4o-mini", "predict").json(&hello()).send().await.unwrap();
    expect_google_error(action, 404, "NOT_FOUND").await;
    for action in ["generateContent", "streamGenerateContent?alt=sse"] {
        let failed = google(&gw, "gemini-fail", action).json(&hello()).send().await.unwrap();
        expect_google_error(failed, 502, "UNAVAILABLE").await;
    }
    // An account that cannot pay: the gateway's 402, stated as Google states exhausted quota.
    let poor = gw.db.create_account("poor", NanoUsd(0)).await.unwrap();
    let (key, secret) = key_for(poor.id);
    gw.add_key(&key).await;
    let refused =
        gw.http.post(format!("{}/v1beta/models/gpt-4o-mini:generateContent", gw.url)).header("x-goog-api-key", &secret);
    expect_google_error(refused.json(&hello()).send().await.unwrap(), 402, "RESOURCE_EXHAUSTED").await;
}

/// The `data:` events of an SSE body (Google ends its events with `\r\n\r\n`).
fn sse_events(body: &str) -> Vec<Value> {
    assert!(body.ends_with("\r\n\r\n"), "{body:?}");
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|data| serde_json::from_str(data.trim()).unwrap())
        .collect()
}

#[tokio::test]
async fn streams_come_as_sse_with_alt_sse_and_as_a_json_array_without() {
    let gw = gateway().await;
    for (model, _) in MODELS {
        let whole: Value =
            google(&gw, model, "generateContent").json(&hello()).send().await.unwrap().json().await.unwrap();
        let sse = google(&gw, model, "streamGenerateContent?alt=sse").json(&hello()).send().await.unwrap();
        assert_eq!(sse.status(), 200);
        assert_eq!(sse.headers()["content-type"], "text/event-stream");
        let id = request_id(&sse);
        let events = sse_events(&sse.text().await.unwrap());
        assert!(events.len() > 1, "{model}: {events:?}");
        let text: String = events.iter().map(text_of).collect();
        assert_eq!(text, text_of(&whole), "{model}: the stream says what the whole answer says");
        let last = events.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP", "{model}: {last}");
        let billed = last["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap();
        let row = gw.usage(&id).await;
        assert!(row.stream && row.endpoint == "gemini");
        assert_eq!(row.usage.completion_tokens, billed);

        let array = google(&gw, model, "streamGenerateContent").json(&hello()).send().await.unwrap();
        assert_eq!(array.status(), 200);
        assert_eq!(array.headers()["content-type"], "application/json");
        let array: Vec<Value> = serde_json::from_str(&array.text().await.unwrap()).unwrap();
        assert_eq!(array.iter().map(text_of).collect::<String>(), text, "{model}");
        assert_eq!(array.last().unwrap()["candidates"][0]["finishReason"], "STOP");
    }
}

#[tokio::test]
async fn function_calls_round_trip_through_every_provider_kind() {
    let gw = gateway().await;
    let tools = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]);
    for (model, _) in MODELS {
        let ask = json!({"role": "user", "parts": [{"text": "Weather in Paris?"}]});
        let first: Value = google(&gw, model, "generateContent")
            .json(&json!({"contents": [ask], "tools": tools,
                          "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let turn = first["candidates"][0]["content"].clone();
        let call = turn["parts"].as_array().unwrap().iter().find_map(|p| p.get("functionCall")).cloned();
        let call = call.unwrap_or_else(|| panic!("{model}: no functionCall in {first}"));
        assert_eq!(call["name"], "get_weather");
        assert!(call["args"]["city"].is_string(), "{call}");
        let answer = json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "18 C and sunny"}}}]});
        let second = google(&gw, model, "generateContent")
            .json(&json!({"contents": [ask, turn, answer], "tools": tools}))
            .send()
            .await
            .unwrap();
        assert_eq!(second.status(), 200, "{model}");
        let second: Value = second.json().await.unwrap();
        assert!(!text_of(&second).is_empty(), "{model}: the result is answered with text: {second}");
    }
}

#[tokio::test]
async fn count_tokens_counts_the_prompt_of_an_allowed_model() {
    let gw = gateway().await;
    let count = |text: String| {
        google(&gw, "gemini-2.0-flash", "countTokens").json(&json!({"contents": [{"parts": [{"text": text}]}]})).send()
    };
    let short: Value = count("hi".to_owned()).await.unwrap().json().await.unwrap();
    let long: Value = count("hi ".repeat(200)).await.unwrap().json().await.unwrap();
    let (short, long) = (short["totalTokens"].as_u64().unwrap(), long["totalTokens"].as_u64().unwrap());
    assert!(short > 0 && long > short + 150, "{short} {long}");
    let unknown = google(&gw, "nope", "countTokens").json(&json!({"contents": [{"parts": [{"text": "x"}]}]}));
    expect_google_error(unknown.send().await.unwrap(), 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn embed_content_and_batches_go_through_the_embeddings_pipeline() {
    let gw = gateway().await;
    for model in ["text-embedding-3-small", "gemini-embedding-001"] {
        let one = google(&gw, model, "embedContent")
            .json(&json!({"model": format!("models/{model}"), "content": {"parts": [{"text": "What is the meaning of life?"}]}}))
            .send()
            .await
            .unwrap();
        assert_eq!(one.status(), 200, "{model}");
        let id = request_id(&one);
        let one: Value = one.json().await.unwrap();
        assert!(!one["embedding"]["values"].as_array().unwrap().is_empty(), "{one}");
        let row = gw.usage(&id).await;
        assert_eq!(row.endpoint, "gemini.embeddings");
        assert!(row.usage.prompt_tokens > 0 && row.cost > NanoUsd(0));
        let entry = |text: &str| json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
        let batch: Value = google(&gw, model, "batchEmbedContents")
            .json(&json!({"requests": [entry("a"), entry("b"), entry("c")]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(batch["embeddings"].as_array().map(Vec::len), Some(3), "{model}: {batch}");
    }
    let chat_model = google(&gw, "gpt-4o-mini", "embedContent").json(&json!({"content": {"parts": [{"text": "x"}]}}));
    expect_google_error(chat_model.send().await.unwrap(), 400, "INVALID_ARGUMENT").await;
}

#[tokio::test]
async fn models_are_listed_in_geminis_shape_and_counted_by_route() {
    let gw = gateway().await;
    let list: Value = google_get(&gw, "/v1beta/models").await;
    let models = list["models"].as_array().unwrap();
    let flash = models.iter().find(|m| m["name"] == "models/gemini-2.0-flash").unwrap_or_else(|| panic!("{list}"));
    assert_eq!(flash["supportedGenerationMethods"], json!(["generateContent", "streamGenerateContent", "countTokens"]));
    assert!(flash["inputTokenLimit"].as_u64().unwrap() > 0 && flash["outputTokenLimit"].as_u64().unwrap() > 0);
    let embedder = models.iter().find(|m| m["name"] == "models/gemini-embedding-001").unwrap();
    assert_eq!(embedder["supportedGenerationMethods"], json!(["embedContent", "batchEmbedContents"]));

    let paged = gw.http.get(format!("{}/v1beta/models?pageSize=2&key={}", gw.url, gw.key)).send().await.unwrap();
    let paged: Value = paged.json().await.unwrap();
    assert_eq!(paged["models"].as_array().map(Vec::len), Some(2));
    let token = paged["nextPageToken"].as_str().unwrap();
    let rest: Value = gw
        .http
        .get(format!("{}/v1beta/models?pageSize=100&pageToken={token}&key={}", gw.url, gw.key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["models"].as_array().unwrap().len() + 2, models.len());
    assert!(rest.get("nextPageToken").is_none());

    let one = gw.http.get(format!("{}/v1beta/models/gemini-2.0-flash?key={}", gw.url, gw.key)).send().await.unwrap();
    assert_eq!(one.json::<Value>().await.unwrap()["name"], "models/gemini-2.0-flash");
    let missing = gw.http.get(format!("{}/v1beta/models/nope?key={}", gw.url, gw.key)).send().await.unwrap();
    expect_google_error(missing, 404, "NOT_FOUND").await;

    let metrics = gw.http.get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"tokenrouter_requests_total{route="/v1beta/models/{model_action}",status="404"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn google_genai_3s_v1_paths_are_served_and_openai_clients_keep_their_models_list() {
    // google-genai 3 speaks `/v1/models/...` by default.
    let gw = gateway().await;
    let v1 = gw
        .http
        .post(format!("{}/v1/models/gemini-2.0-flash:generateContent", gw.url))
        .header("x-goog-api-key", &gw.key);
    let body: Value = v1.json(&hello()).send().await.unwrap().json().await.unwrap();
    assert!(!text_of(&body).is_empty(), "{body}");
    let unknown = gw.http.post(format!("{}/v1/models/nope:generateContent", gw.url)).header("x-goog-api-key", &gw.key);
    expect_google_error(unknown.json(&hello()).send().await.unwrap(), 404, "NOT_FOUND").await;

    let google: Value = google_get(&gw, "/v1/models").await;
    assert!(google["models"].as_array().is_some_and(|m| !m.is_empty()), "{google}");
    let openai: Value =
        gw.http.get(format!("{}/v1/models", gw.url)).bearer_auth(&gw.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(openai["object"], "list", "{openai}");
    let one = gw.http.get(format!("{}/v1/models/gemini-2.0-flash", gw.url)).header("x-goog-api-key", &gw.key);
    assert_eq!(one.send().await.unwrap().json::<Value>().await.unwrap()["name"], "models/gemini-2.0-flash");
    // OpenAI's clients retrieve OpenAI's model object there, and get OpenAI's errors.
    let retrieve = |model: &str| gw.http.get(format!("{}/v1/models/{model}", gw.url)).bearer_auth(&gw.key).send();
    let model: Value = retrieve("gemini-2.0-flash").await.unwrap().json().await.unwrap();
    let listed = openai["data"].as_array().unwrap().iter().find(|m| m["id"] == "gemini-2.0-flash").unwrap();
    assert_eq!(&model, listed, "the list's entry");
    let missing = retrieve("no-such-model").await.unwrap();
    let error = crate::harness::expect_error(missing, 404, "model_not_found").await;
    assert_eq!(error["error"]["param"], "model");
}

#[tokio::test]
async fn count_tokens_counts_toward_the_keys_rpm_and_a_huge_upstream_error_keeps_its_headers() {
    let refusing = r#"
[[models]]
id = "refusing"
context_window = 8000
max_output_tokens = 1000
input_price = 1
output_price = 2
deployments = [ { provider = "mock", upstream_model = "mock-gpt@fault=400:100000" } ]
"#;
    let gw = Gateway::start_with(tokenrouter_mock::MockConfig::default(), &format!("{NATIVE_KINDS}{refusing}")).await;
    let (mut key, secret) = key_for(gw.account_id);
    key.rpm = Some(3);
    gw.add_key(&key).await;
    let call = |model: &str, action: &str| {
        gw.http
            .post(format!("{}/v1beta/models/{model}:{action}", gw.url))
            .header("x-goog-api-key", &secret)
            .json(&json!({"contents": [{"role": "user", "parts": [{"text": "one two three"}]}]}))
            .send()
    };
    let counted = call("gemini-2.0-flash", "countTokens").await.unwrap();
    assert_eq!(counted.status(), 200);
    assert_eq!(counted.headers()["x-ratelimit-limit-requests"], "3");
    assert_eq!(counted.headers()["x-ratelimit-remaining-requests"], "2");

    // The upstream's 100 KB error: too big to restate, its status and headers stay.
    let refused = call("refusing", "generateContent").await.unwrap();
    assert_eq!(refused.status(), 400);
    let headers = refused.headers().clone();
    assert!(headers["x-request-id"].to_str().unwrap().starts_with("req_"), "{headers:?}");
    assert_eq!(headers["x-tokenrouter-provider"], "mock", "{headers:?}");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "1", "{headers:?}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        (body["error"]["code"].as_u64(), body["error"]["status"].as_str()),
        (Some(400), Some("INVALID_ARGUMENT"))
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("64 KB") && message.len() < 1000, "{message}");

    assert_eq!(call("gemini-2.0-flash", "countTokens").await.unwrap().status(), 200);
    let limited = call("gemini-2.0-flash", "countTokens").await.unwrap();
    assert_eq!(limited.status(), 429, "counting is a request like any other");
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED", "{body}");
}
