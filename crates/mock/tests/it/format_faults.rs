//! Faults in the Anthropic and Gemini formats (and the faults added for all three):
//! 500, 429, overloaded, a cut stream, an in-stream error, a safety block.

use serde_json::{Value, json};
use tokenrouter_mock::{Fault, MockConfig};

use crate::anthropic::{claude, failure as anthropic_failure, message};
use crate::client::{ask, mock, post_to, read_events};
use crate::gemini::{content, failure as gemini_failure, gemini, generate, with};

const STREAM: &str = "/v1beta/models/gemini-mock:streamGenerateContent?alt=sse";

fn fault(body: Value, name: &str) -> Value {
    with(body, json!({"mock": {"fault": name}}))
}

fn streamed(body: Value, name: &str) -> Value {
    with(fault(body, name), json!({"stream": true}))
}

#[tokio::test]
async fn anthropic_errors_have_anthropic_types() {
    let server = mock(MockConfig::default()).await;
    let post = |name: &'static str| {
        let server = &server;
        async move { post_to(server, "/v1/messages", &fault(claude("hi"), name)).await }
    };
    assert_eq!(anthropic_failure(post("500").await).await, (500, "api_error".into()));
    let limited = post("429").await;
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(anthropic_failure(limited).await, (429, "rate_limit_error".into()));
    assert_eq!(anthropic_failure(post("overloaded").await).await, (529, "overloaded_error".into()));
    // An in-stream error asked of a whole answer is an overload.
    assert_eq!(anthropic_failure(post("stream_error").await).await.0, 529);
    assert_eq!(server.stats().request_count(), 4);
}

#[tokio::test]
async fn anthropic_stream_cut_and_error() {
    let server = mock(MockConfig::default()).await;
    let cut = post_to(&server, "/v1/messages", &streamed(claude("hi"), "cut")).await;
    let events = read_events(cut).await;
    assert!(events.error.is_some(), "the stream must end with an error");
    assert!(events.rest.starts_with("event: "), "half an event: {:?}", events.rest);
    let texts = events.events.iter().filter(|e| e.data["delta"]["type"] == "text_delta").count();
    assert_eq!(texts, 2);
    assert!(!events.names().contains(&"message_stop"));

    let failed = post_to(&server, "/v1/messages", &streamed(claude("hi"), "stream_error")).await;
    let events = read_events(failed).await;
    assert!(events.error.is_none() && events.rest.is_empty());
    let names = events.names();
    assert_eq!(names, ["message_start", "content_block_start", "ping", "content_block_delta", "error"]);
    assert_eq!(
        events.events[4].data,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    let stats = server.stats();
    assert_eq!((stats.tokens_generated(), stats.streams_completed()), (3, 0));
}

#[tokio::test]
async fn anthropic_safety_is_a_refusal() {
    let server = mock(MockConfig { fault: Some(Fault::Safety), ..MockConfig::default() }).await;
    let m = message(&server, &claude("hi")).await;
    assert_eq!((m["stop_reason"].as_str(), m["content"].clone()), (Some("refusal"), json!([])));
    assert_eq!(m["usage"]["output_tokens"], 0);
    let events =
        read_events(post_to(&server, "/v1/messages", &with(claude("hi"), json!({"stream": true}))).await).await;
    assert_eq!(events.names(), ["message_start", "ping", "message_delta", "message_stop"]);
    assert_eq!(events.events[2].data["delta"]["stop_reason"], "refusal");
}

#[tokio::test]
async fn gemini_errors_have_google_statuses() {
    let server = mock(MockConfig::default()).await;
    let post = |name: &'static str| {
        let server = &server;
        async move { post_to(server, &generate("g"), &fault(gemini("hi"), name)).await }
    };
    assert_eq!(gemini_failure(post("500").await).await, (500, "INTERNAL".into()));
    let limited = post("429").await;
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(gemini_failure(limited).await, (429, "RESOURCE_EXHAUSTED".into()));
    assert_eq!(gemini_failure(post("overloaded").await).await, (503, "UNAVAILABLE".into()));
}

#[tokio::test]
async fn gemini_stream_cut_and_error() {
    let server = mock(MockConfig::default()).await;
    let events = read_events(post_to(&server, STREAM, &fault(gemini("hi"), "cut:3")).await).await;
    assert!(events.error.is_some());
    assert!(events.rest.starts_with("data: {"), "half an event: {:?}", events.rest);
    assert_eq!(events.events.len(), 3);

    let events = read_events(post_to(&server, STREAM, &fault(gemini("hi"), "stream_error")).await).await;
    assert!(events.error.is_none() && events.rest.is_empty());
    assert_eq!(events.events.len(), 2);
    assert!(events.events[0].data["candidates"].is_array());
    assert_eq!(
        events.events[1].data,
        json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE"}})
    );
}

#[tokio::test]
async fn gemini_safety_blocks_the_candidate() {
    let server = mock(MockConfig::default()).await;
    let r = content(&server, &fault(gemini("hi"), "safety")).await;
    let candidate = &r["candidates"][0];
    assert_eq!(candidate["finishReason"], "SAFETY");
    assert!(candidate.get("content").is_none());
    let ratings = candidate["safetyRatings"].as_array().unwrap();
    assert!(ratings.iter().any(|r| r["blocked"] == true && r["probability"] == "HIGH"));
    assert_eq!(r["usageMetadata"]["candidatesTokenCount"], 0);

    let events = read_events(post_to(&server, STREAM, &fault(gemini("hi"), "safety")).await).await;
    assert_eq!(events.events.len(), 1);
    assert_eq!(events.events[0].data["candidates"][0]["finishReason"], "SAFETY");
}

#[tokio::test]
async fn openai_overloaded_stream_error_and_safety() {
    let server = mock(MockConfig::default()).await;
    let response = post_to(&server, "/v1/chat/completions", &fault(ask("hi"), "overloaded")).await;
    assert_eq!(response.status(), 503);
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["error"]["type"], "server_error");

    let body = streamed(ask("hi"), "stream_error");
    let events = read_events(post_to(&server, "/v1/chat/completions", &body).await).await;
    assert!(events.error.is_none() && events.rest.is_empty());
    let (error, chunks) = events.events.split_last().unwrap();
    assert_eq!(chunks.len(), 2, "the role chunk and one token");
    assert_eq!(error.data["error"]["type"], "server_error");
    assert!(error.data["error"]["message"].is_string());

    let c = crate::client::complete(&server, &fault(ask("hi"), "safety")).await;
    assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(c["usage"]["completion_tokens"], 0);
}
