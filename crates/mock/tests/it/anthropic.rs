//! The Anthropic Messages API, whole answers: shape, usage, request checks, tool use,
//! tool results, extended thinking and the preserved-thinking rule.

use serde_json::{Value, json};
use tokenrouter_mock::{MockConfig, MockServer, count_tokens};

use crate::client::{http, mock, post_to, url};

/// A Messages request with one user message.
pub fn claude(text: &str) -> Value {
    json!({"model": "claude-mock", "max_tokens": 1024,
        "messages": [{"role": "user", "content": text}]})
}

/// `body` with `fields` merged in.
pub fn with(mut body: Value, fields: Value) -> Value {
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

pub fn tools() -> Value {
    json!([
        {"name": "get_weather", "description": "Weather in a city",
         "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"]}},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {"utc": {"type": "boolean"}}, "required": ["utc"]}}
    ])
}

/// A 200 message.
pub async fn message(server: &MockServer, body: &Value) -> Value {
    let response = post_to(server, "/v1/messages", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// A non-200 answer's status and Anthropic error type, checking the envelope.
pub async fn failure(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["type"], "error", "{e}");
    assert!(e["error"]["message"].is_string(), "{e}");
    (status, e["error"]["type"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn message_has_anthropic_shape_and_usage() {
    let server = mock(MockConfig { cached_tokens: 4, ..MockConfig::default() }).await;
    let body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are helpful."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello to the world"}]}]
    });
    let response = http()
        .post(url(&server, "/v1/messages"))
        .header("x-api-key", "sk-ant-upstream")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let m: Value = response.json().await.unwrap();

    assert_eq!(m["id"], "msg_mock_1");
    assert_eq!(m["type"], "message");
    assert_eq!(m["role"], "assistant");
    assert_eq!(m["model"], "claude-sonnet-4-5");
    assert_eq!(m["stop_reason"], "end_turn");
    assert!(m["stop_sequence"].is_null());
    let content = m["content"].as_array().unwrap();
    assert_eq!(content.len(), 1);
    assert_eq!(content[0]["type"], "text");
    let text = content[0]["text"].as_str().unwrap();
    assert_eq!(count_tokens(text), 16);
    assert!(text.starts_with("Say "), "{text}");
    // 3 + 1 (system) + 5 + 1 (user), of which 4 read from the cache.
    assert_eq!(
        m["usage"],
        json!({"input_tokens": 6, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 4, "output_tokens": 16})
    );

    // Same reply as the OpenAI side for the same prompt.
    let chat = crate::client::complete(&server, &crate::client::ask("Say hello to the world")).await;
    assert_eq!(chat["choices"][0]["message"]["content"], text);

    let stats = server.stats();
    assert_eq!(stats.request_count(), 2);
    assert_eq!(stats.tokens_generated(), 32);
    let recorded = &stats.requests()[0];
    assert_eq!(recorded.path, "/v1/messages");
    assert_eq!(recorded.header("x-api-key"), Some("sk-ant-upstream"));
    assert_eq!(recorded.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(recorded.body, body);
}

#[tokio::test]
async fn max_tokens_and_stop_sequences_end_the_reply() {
    let server = mock(MockConfig::default()).await;
    let m = message(&server, &with(claude("hi"), json!({"max_tokens": 3}))).await;
    assert_eq!(m["stop_reason"], "max_tokens");
    assert_eq!(m["usage"]["output_tokens"], 3);
    assert_eq!(count_tokens(m["content"][0]["text"].as_str().unwrap()), 3);

    let full = message(&server, &claude("hi")).await;
    let full = full["content"][0]["text"].as_str().unwrap().to_owned();
    let stop = full.split(' ').nth(4).unwrap().to_owned();
    let m = message(&server, &with(claude("hi"), json!({"stop_sequences": ["zzz", stop]}))).await;
    assert_eq!(m["stop_reason"], "stop_sequence");
    assert_eq!(m["stop_sequence"], stop);
    let text = m["content"][0]["text"].as_str().unwrap();
    assert!(full.starts_with(text) && !text.contains(stop.as_str()));
    assert_eq!(m["usage"]["output_tokens"], count_tokens(text));
}

#[tokio::test]
async fn invalid_requests_are_400_invalid_request_error() {
    let server = mock(MockConfig::default()).await;
    let mut no_max = claude("hi");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let response = post_to(&server, "/v1/messages", &no_max).await;
    assert_eq!(failure(response).await, (400, "invalid_request_error".into()));
    let response = post_to(&server, "/v1/messages", &json!({"model": "m", "max_tokens": 5})).await;
    assert_eq!(failure(response).await.0, 400);
    let response = http().post(url(&server, "/v1/messages")).body("not json").send().await.unwrap();
    assert_eq!(failure(response).await.0, 400);
    let response = http().get(url(&server, "/v1/messages/batches")).send().await.unwrap();
    assert_eq!(failure(response).await, (404, "not_found_error".into()));
    assert_eq!(server.stats().request_count(), 3);
    assert_eq!(server.stats().tokens_generated(), 0);
}

#[tokio::test]
async fn tool_use_single_parallel_and_choice() {
    let server = mock(MockConfig::default()).await;
    let ask = with(claude("Weather in Paris?"), json!({"tools": tools()}));

    let m = message(&server, &ask).await;
    assert_eq!(m["stop_reason"], "tool_use");
    let content = m["content"].as_array().unwrap();
    assert_eq!(content.len(), 1);
    assert_eq!(content[0]["type"], "tool_use");
    assert_eq!(content[0]["id"], "toolu_mock_1");
    assert_eq!(content[0]["name"], "get_weather");
    assert_eq!(content[0]["input"], json!({"city": "mock", "unit": "celsius"}));
    assert!(m["usage"]["output_tokens"].as_u64().unwrap() >= 2);

    let any = with(ask.clone(), json!({"tool_choice": {"type": "any"}}));
    let m = message(&server, &any).await;
    let content = m["content"].as_array().unwrap();
    let names: Vec<&str> = content.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["get_weather", "get_time"]);
    assert_eq!(content[0]["id"], "toolu_mock_2");
    assert_eq!(content[1]["id"], "toolu_mock_3");
    assert_eq!(content[1]["input"], json!({"utc": true}));

    let single = json!({"tool_choice": {"type": "any", "disable_parallel_tool_use": true}});
    let m = message(&server, &with(ask.clone(), single)).await;
    assert_eq!(m["content"].as_array().unwrap().len(), 1);

    let named = json!({"tool_choice": {"type": "tool", "name": "get_time"}});
    let m = message(&server, &with(ask.clone(), named)).await;
    assert_eq!(m["content"][0]["name"], "get_time");

    let none = json!({"tool_choice": {"type": "none"}});
    let m = message(&server, &with(ask, none)).await;
    assert_eq!((m["stop_reason"].as_str(), m["content"][0]["type"].as_str()), (Some("end_turn"), Some("text")));
}

#[tokio::test]
async fn a_tool_result_gets_a_text_answer() {
    let server = mock(MockConfig::default()).await;
    let body = with(
        claude("Weather in Paris?"),
        json!({"tools": tools(), "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "Sunny 24C"}]},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}
        ]}),
    );
    let m = message(&server, &body).await;
    assert_eq!(m["stop_reason"], "end_turn");
    assert!(m["content"][0]["text"].as_str().unwrap().starts_with("Sunny "));
    // 3 + 1, 1 + 1, 2 + 1
    assert_eq!(m["usage"]["input_tokens"], 9);
}

#[tokio::test]
async fn thinking_comes_first_with_a_signature_and_counts() {
    let server = mock(MockConfig { reply_tokens: 4, ..MockConfig::default() }).await;
    let thinking = json!({"thinking": {"type": "enabled", "budget_tokens": 2048}});
    let m = message(&server, &with(claude("hi"), thinking.clone())).await;
    let content = m["content"].as_array().unwrap();
    assert_eq!(
        content[0],
        json!({"type": "thinking", "thinking": "Let me think about this.", "signature": "sig_mock_1"})
    );
    assert_eq!(content[1]["type"], "text");
    assert_eq!(m["usage"]["output_tokens"], 5 + 4);

    let tools = with(with(claude("Weather?"), thinking), json!({"tools": tools()}));
    let m = message(&server, &tools).await;
    let kinds: Vec<&str> = m["content"].as_array().unwrap().iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["thinking", "tool_use"]);
    assert_eq!(m["content"][0]["signature"], "sig_mock_2");
}

#[tokio::test]
async fn thinking_blocks_must_be_preserved_with_tool_use() {
    let server = mock(MockConfig::default()).await;
    let conversation = |assistant: Value| {
        json!({"model": "claude-mock", "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048}, "tools": tools(),
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"}]}
        ]})
    };
    let call = json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}});

    let dropped = conversation(json!([call]));
    let response = post_to(&server, "/v1/messages", &dropped).await;
    assert_eq!(response.status(), 400);
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    let text = e["error"]["message"].as_str().unwrap();
    assert!(text.contains("messages.1.content.0.type"), "{text}");
    assert!(text.contains("thinking blocks"), "{text}");
    assert!(text.contains("preserved"), "{text}");

    for first in [
        json!({"type": "thinking", "thinking": "Let me think about this.", "signature": "sig_mock_1"}),
        json!({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}),
    ] {
        let kept = conversation(json!([first, call]));
        let m = message(&server, &kept).await;
        assert_eq!(m["stop_reason"], "end_turn");
    }
    // Without thinking, nothing needs preserving.
    let mut off = conversation(json!([call]));
    off.as_object_mut().unwrap().remove("thinking");
    message(&server, &off).await;
}
