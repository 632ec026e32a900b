//! Knobs in the model name, `name@key=value,…`, in all three formats: applied, reported
//! without the suffix, overridden by the body's `mock` object, typos rejected.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenrouter_mock::{MockConfig, count_tokens};

use crate::anthropic::{claude, failure as anthropic_failure, message, with};
use crate::client::{ask, complete, http, mock, post_to, read_events, url};
use crate::gemini::{failure as gemini_failure, gemini, generate};

fn model(body: Value, name: &str) -> Value {
    with(body, json!({"model": name}))
}

#[tokio::test]
async fn openai_model_names_carry_knobs() {
    let server = mock(MockConfig::default()).await;
    let c = complete(&server, &model(ask("hi"), "mock-gpt@reply_tokens=3")).await;
    assert_eq!(c["model"], "mock-gpt");
    assert_eq!(c["usage"]["completion_tokens"], 3);

    let response = post_to(&server, "/v1/chat/completions", &model(ask("hi"), "mock-gpt@fault=500")).await;
    assert_eq!(response.status(), 500);

    // The body's `mock` object wins.
    let both =
        with(model(ask("hi"), "m@reply_tokens=3,fault=500"), json!({"mock": {"reply_tokens": 5, "fault": null}}));
    assert_eq!(complete(&server, &both).await["usage"]["completion_tokens"], 5);

    // A suffix that is not a knob list is part of the name.
    let c = complete(&server, &model(ask("hi"), "claude-3-5-sonnet@20240620")).await;
    assert_eq!(c["model"], "claude-3-5-sonnet@20240620");

    let response = post_to(&server, "/v1/chat/completions", &model(ask("hi"), "m@reply_tokenz=3")).await;
    assert_eq!(response.status(), 400);
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("reply_tokenz"));
}

#[tokio::test]
async fn anthropic_model_names_carry_latency_and_pacing() {
    let server = mock(MockConfig::default()).await;
    let m = message(&server, &model(claude("hi"), "claude-mock@reply_tokens=2")).await;
    assert_eq!(m["model"], "claude-mock");
    assert_eq!(m["usage"]["output_tokens"], 2);

    let paced = model(claude("hi"), "claude-mock@latency_ms=40,tokens_per_second=100,reply_tokens=4");
    let started = Instant::now();
    let events = read_events(post_to(&server, "/v1/messages", &with(paced, json!({"stream": true}))).await).await;
    // 40 ms before the head, then 3 intervals of 10 ms between the 4 tokens.
    assert!(started.elapsed() >= Duration::from_millis(70), "{:?}", started.elapsed());
    assert_eq!(events.events[0].data["message"]["model"], "claude-mock");
    assert_eq!(server.stats().streams_completed(), 1);

    let response = post_to(&server, "/v1/messages", &model(claude("hi"), "claude-mock@fault=explode")).await;
    assert_eq!(anthropic_failure(response).await, (400, "invalid_request_error".into()));
}

#[tokio::test]
async fn gemini_model_paths_carry_knobs() {
    let server = mock(MockConfig::default()).await;
    let response = post_to(&server, &generate("gemini-mock@fault=429,retry_after_secs=3"), &gemini("hi")).await;
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(gemini_failure(response).await, (429, "RESOURCE_EXHAUSTED".into()));

    // Percent-encoded, with a fault value holding a colon.
    let stream = "/v1beta/models/gemini-mock%40fault%3Dcut:1,reply_tokens=5:streamGenerateContent?alt=sse";
    let events = read_events(post_to(&server, stream, &gemini("hi")).await).await;
    assert!(events.error.is_some());
    assert_eq!(events.events.len(), 1);
    assert_eq!(events.events[0].data["modelVersion"], "gemini-mock");

    let response =
        http().post(url(&server, &generate("gemini-mock@reply_tokens=2"))).json(&gemini("hi")).send().await.unwrap();
    let r: Value = response.json().await.unwrap();
    assert_eq!(r["modelVersion"], "gemini-mock");
    let text = r["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap();
    assert_eq!(count_tokens(text), 2);

    let response = post_to(&server, &generate("gemini-mock@speed=9"), &gemini("hi")).await;
    assert_eq!(gemini_failure(response).await, (400, "INVALID_ARGUMENT".into()));
}
