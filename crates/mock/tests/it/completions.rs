//! The legacy completions API, `POST /v1/completions`: prompts of every shape, `n`,
//! `max_tokens`, `stop`, usage, streams with and without the usage chunk, faults.

use serde_json::{Value, json};
use tokenrouter_mock::{MockConfig, count_tokens};

use crate::client::{mock, post_to, read_sse};

const PATH: &str = "/v1/completions";

fn prompt(prompt: Value) -> Value {
    json!({"model": "gpt-3.5-turbo-instruct", "prompt": prompt})
}

fn with(body: Value, fields: Value) -> Value {
    crate::client::with(body, fields)
}

async fn complete(server: &tokenrouter_mock::MockServer, body: &Value) -> Value {
    let response = post_to(server, PATH, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn answers_a_prompt_with_a_text_completion() {
    let server = mock(MockConfig::default()).await;
    let c = complete(&server, &prompt(json!("Say this is a test"))).await;
    assert_eq!(c["object"], "text_completion");
    assert!(c["id"].as_str().unwrap().starts_with("cmpl-mock-"));
    assert_eq!(c["model"], "gpt-3.5-turbo-instruct");
    assert!(c["created"].is_i64());
    let choices = c["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 1);
    let text = choices[0]["text"].as_str().unwrap();
    assert!(text.starts_with("Say"), "{text}");
    assert_eq!(count_tokens(text), 16);
    assert_eq!(choices[0]["index"], 0);
    assert!(choices[0]["logprobs"].is_null());
    assert_eq!(choices[0]["finish_reason"], "stop");
    assert_eq!(c["usage"]["prompt_tokens"], 5);
    assert_eq!(c["usage"]["completion_tokens"], 16);
    assert_eq!(c["usage"]["total_tokens"], 21);

    // Deterministic: the same prompt, the same text.
    let again = complete(&server, &prompt(json!("Say this is a test"))).await;
    assert_eq!(again["choices"][0]["text"], text);
    assert_eq!(server.stats().last_request().unwrap().path, PATH);
    assert_eq!(server.stats().tokens_generated(), 32);
}

#[tokio::test]
async fn max_tokens_defaults_to_16_and_cuts_with_length() {
    let server = mock(MockConfig { reply_tokens: 40, ..MockConfig::default() }).await;
    let c = complete(&server, &prompt(json!("hi"))).await;
    assert_eq!(c["usage"]["completion_tokens"], 16);
    assert_eq!(c["choices"][0]["finish_reason"], "length");

    let c = complete(&server, &with(prompt(json!("hi")), json!({"max_tokens": 3}))).await;
    assert_eq!(count_tokens(c["choices"][0]["text"].as_str().unwrap()), 3);
    assert_eq!(c["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn stop_cuts_the_text() {
    let server = mock(MockConfig::default()).await;
    let full = complete(&server, &prompt(json!("hello"))).await;
    let full = full["choices"][0]["text"].as_str().unwrap();
    let third = full.split(' ').nth(2).unwrap();
    let c = complete(&server, &with(prompt(json!("hello")), json!({"stop": ["zzz", third]}))).await;
    let text = c["choices"][0]["text"].as_str().unwrap();
    assert!(full.starts_with(text) && !text.contains(third), "{text:?} of {full:?}");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["usage"]["completion_tokens"], count_tokens(text));
}

#[tokio::test]
async fn prompt_arrays_token_arrays_and_n() {
    let server = mock(MockConfig { reply_tokens: 3, ..MockConfig::default() }).await;
    let c = complete(&server, &with(prompt(json!(["one two", "three"])), json!({"n": 2}))).await;
    let choices = c["choices"].as_array().unwrap();
    let indexes: Vec<u64> = choices.iter().map(|c| c["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
    assert!(choices[0]["text"].as_str().unwrap().starts_with("one"));
    assert_eq!(choices[0]["text"], choices[1]["text"]);
    assert!(choices[2]["text"].as_str().unwrap().starts_with("three"));
    assert_eq!(c["usage"]["prompt_tokens"], 3);
    assert_eq!(c["usage"]["completion_tokens"], 12);

    // Token arrays count one token per number.
    let c = complete(&server, &prompt(json!([1212, 318, 257, 1332]))).await;
    assert_eq!(c["usage"]["prompt_tokens"], 4);
    let c = complete(&server, &prompt(json!([[1, 2], [3, 4, 5]]))).await;
    assert_eq!(c["usage"]["prompt_tokens"], 5);
    assert_eq!(c["choices"].as_array().unwrap().len(), 2);

    for bad in [json!({"model": "m"}), prompt(json!(42)), prompt(json!([])), with(prompt(json!("x")), json!({"n": 0}))]
    {
        let response = post_to(&server, PATH, &bad).await;
        assert_eq!(response.status(), 400, "{bad}");
        let e: Value = response.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn streams_one_chunk_per_token_then_usage_and_done() {
    let server = mock(MockConfig { reply_tokens: 5, ..MockConfig::default() }).await;
    let whole = complete(&server, &prompt(json!("Tell me"))).await;
    let body = with(prompt(json!("Tell me")), json!({"stream": true, "stream_options": {"include_usage": true}}));
    let sse = read_sse(post_to(&server, PATH, &body).await).await;
    assert!(sse.done && sse.error.is_none());
    // 5 tokens, the finish, the usage.
    assert_eq!(sse.events.len(), 7);
    let (usage, chunks) = sse.events.split_last().unwrap();
    let text: String = chunks.iter().map(|c| c["choices"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(text, whole["choices"][0]["text"].as_str().unwrap());
    for chunk in chunks {
        assert_eq!(chunk["object"], "text_completion");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert!(chunk["usage"].is_null() && chunk.get("usage").is_some(), "{chunk}");
        assert!(chunk["choices"][0]["logprobs"].is_null());
    }
    assert!(chunks[..5].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
    assert_eq!(chunks[5]["choices"][0], json!({"text": "", "index": 0, "logprobs": null, "finish_reason": "stop"}));
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    assert_eq!(usage["usage"]["prompt_tokens"], 2);
    assert_eq!(server.stats().streams_completed(), 1);

    // Without include_usage: no usage field, no usage chunk; `n` choices one after another.
    let body = with(prompt(json!("Tell me")), json!({"stream": true, "n": 2}));
    let sse = read_sse(post_to(&server, PATH, &body).await).await;
    assert!(sse.done);
    assert_eq!(sse.events.len(), 12);
    assert!(sse.events.iter().all(|e| e.get("usage").is_none()));
    let finishes: Vec<u64> = sse
        .events
        .iter()
        .filter(|e| !e["choices"][0]["finish_reason"].is_null())
        .map(|e| e["choices"][0]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(finishes, [0, 1]);
}

#[tokio::test]
async fn faults_apply_to_completions() {
    let server = mock(MockConfig::default()).await;
    let response = post_to(&server, PATH, &with(prompt(json!("hi")), json!({"model": "m@fault=500"}))).await;
    assert_eq!(response.status(), 500);
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["error"]["type"], "server_error");

    let body = with(prompt(json!("hi")), json!({"stream": true, "mock": {"fault": "cut:2"}}));
    let sse = read_sse(post_to(&server, PATH, &body).await).await;
    assert!(!sse.done && sse.error.is_some());
    assert_eq!(sse.events.len(), 2);

    let body = with(prompt(json!("hi")), json!({"stream": true, "mock": {"fault": "stream_error"}}));
    let sse = read_sse(post_to(&server, PATH, &body).await).await;
    assert_eq!(sse.events.last().unwrap()["error"]["type"], "server_error");

    let c = complete(&server, &with(prompt(json!("hi")), json!({"mock": {"fault": "safety"}}))).await;
    assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(c["choices"][0]["text"], "");
    assert_eq!(server.stats().request_count(), 4);
}
