//! Non-streamed chat completions: shape, usage, determinism, truncation, errors, models.

use serde_json::{Value, json};
use tokenrouter_mock::{MockConfig, count_tokens};

use crate::client::{ask, complete, http, mock, post, with};

#[tokio::test]
async fn completion_has_openai_shape_and_usage() {
    let server = mock(MockConfig::default()).await;
    let body = json!({
        "model": "my-model",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Say hello to the world"}
        ]
    });
    let response = http()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth("sk-upstream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let c: Value = response.json().await.unwrap();

    assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["model"], "my-model");
    assert!(c["created"].as_i64().unwrap() > 1_700_000_000);
    assert!(c["system_fingerprint"].is_string());
    let choice = &c["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["refusal"].is_null());
    assert!(choice["message"].get("tool_calls").is_none());
    assert!(choice["logprobs"].is_null());
    assert_eq!(choice["finish_reason"], "stop");
    let text = choice["message"]["content"].as_str().unwrap();
    assert_eq!(count_tokens(text), 16);
    assert!(text.starts_with("Say "), "{text}");

    // 3 + 1 (system) + 5 + 1 (user)
    assert_eq!(
        c["usage"],
        json!({
            "prompt_tokens": 10, "completion_tokens": 16, "total_tokens": 26,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        })
    );

    let stats = server.stats();
    assert_eq!(stats.request_count(), 1);
    assert_eq!(stats.tokens_generated(), 16);
    let recorded = stats.last_request().unwrap();
    assert_eq!(recorded.path, "/v1/chat/completions");
    assert_eq!(recorded.header("authorization"), Some("Bearer sk-upstream"));
    assert_eq!(recorded.body, body);
    assert_eq!(stats.requests().len(), 1);
}

#[tokio::test]
async fn replies_are_deterministic_per_prompt() {
    let server = mock(MockConfig::default()).await;
    let text = |c: Value| c["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    let a = text(complete(&server, &ask("What is the capital of France?")).await);
    let b = text(complete(&server, &ask("What is the capital of France?")).await);
    let c = text(complete(&server, &ask("Write a haiku about rust")).await);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.split(' ').all(|w| !w.is_empty()), "single spaces: {a:?}");
}

#[tokio::test]
async fn max_tokens_truncates_with_finish_reason_length() {
    let server = mock(MockConfig { reply_tokens: 10, ..MockConfig::default() }).await;
    for (field, limit) in [("max_tokens", 4), ("max_completion_tokens", 3)] {
        let c = complete(&server, &with(ask("hi"), json!({ field: limit }))).await;
        assert_eq!(c["choices"][0]["finish_reason"], "length");
        assert_eq!(count_tokens(c["choices"][0]["message"]["content"].as_str().unwrap()), limit);
        assert_eq!(c["usage"]["completion_tokens"], limit);
    }
    let c = complete(&server, &with(ask("hi"), json!({"max_tokens": 10}))).await;
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["usage"]["completion_tokens"], 10);
}

#[tokio::test]
async fn prompt_tokens_count_text_parts_and_cached_tokens_are_capped() {
    let server = mock(MockConfig { cached_tokens: 1000, ..MockConfig::default() }).await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "look at"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this picture"}
    ]}]});
    let c = complete(&server, &body).await;
    assert_eq!(c["usage"]["prompt_tokens"], 5);
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
    assert!(c["choices"][0]["message"]["content"].as_str().unwrap().starts_with("look "));

    let c = complete(&server, &with(body, json!({"mock": {"cached_tokens": 2}}))).await;
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

#[tokio::test]
async fn per_request_knobs_override_the_config() {
    let server = mock(MockConfig::default()).await;
    let c = complete(&server, &with(ask("hi"), json!({"mock": {"reply_tokens": 3}}))).await;
    assert_eq!(c["usage"]["completion_tokens"], 3);
    assert_eq!(count_tokens(c["choices"][0]["message"]["content"].as_str().unwrap()), 3);

    let response = post(&server, &with(ask("hi"), json!({"mock": {"reply_tokenz": 3}}))).await;
    assert_eq!(response.status(), 400);
    let e: Value = response.json().await.unwrap();
    assert!(e["error"]["message"].as_str().unwrap().contains("mock.reply_tokenz"));
}

#[tokio::test]
async fn bad_requests_get_the_openai_error_envelope() {
    let server = mock(MockConfig::default()).await;
    let url = format!("{}/chat/completions", server.base_url());
    let malformed = http().post(&url).body("{not json").send().await.unwrap();
    let missing = http().post(&url).json(&json!({"model": "m"})).send().await.unwrap();
    for response in [malformed, missing] {
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["content-type"], "application/json");
        let e: Value = response.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert!(!e["error"]["message"].as_str().unwrap().is_empty());
        assert!(e["error"]["param"].is_null() && e["error"]["code"].is_null(), "{e}");
    }
    let stats = server.stats();
    assert_eq!(stats.request_count(), 2);
    assert_eq!(stats.requests()[0].body, Value::Null);

    let response = http().post(format!("{}/audio/speech", server.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert_eq!(stats.request_count(), 2);
}

#[tokio::test]
async fn lists_models() {
    let server = mock(MockConfig::default()).await;
    let response = http().get(format!("{}/models", server.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    assert!(data.iter().any(|m| m["id"] == "gpt-4o-mini"));
    for m in data {
        assert_eq!(m["object"], "model");
        assert_eq!(m["owned_by"], "mock");
        assert!(m["created"].is_i64());
    }
}

#[tokio::test]
async fn serves_several_requests_on_one_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = mock(MockConfig::default()).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let body = ask("hi").to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    for _ in 0..3 {
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        let response = loop {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed");
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize =
                    text[..end].lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().parse().unwrap();
                if received.len() >= end + 4 + length {
                    break text;
                }
            }
        };
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    assert_eq!(server.stats().request_count(), 3);
}
