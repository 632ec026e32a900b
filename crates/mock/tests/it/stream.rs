//! Streamed chat completions: event sequence, usage chunk, pacing, stats, cancellation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenrouter_mock::MockConfig;

use crate::client::{ask, complete, eventually, mock, post, read_sse, with};

fn streamed(text: &str, fields: Value) -> Value {
    with(with(ask(text), json!({"stream": true})), fields)
}

#[tokio::test]
async fn stream_sends_role_tokens_finish_then_done() {
    let server = mock(MockConfig { reply_tokens: 5, ..MockConfig::default() }).await;
    let sse = read_sse(post(&server, &streamed("Tell me something", json!({}))).await).await;
    assert!(sse.done && sse.error.is_none() && sse.rest.is_empty());
    assert_eq!(sse.events.len(), 1 + 5 + 1);

    let first = &sse.events[0];
    assert_eq!(first["object"], "chat.completion.chunk");
    assert!(first["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(first["model"], "mock-gpt");
    assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert!(first["choices"][0]["finish_reason"].is_null());
    for event in &sse.events {
        assert_eq!(event["id"], first["id"]);
        assert!(event.get("usage").is_none(), "no usage without include_usage: {event}");
    }
    let words: Vec<&str> =
        sse.events[1..6].iter().map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
    assert!(words[0].starts_with("Tell"));
    assert!(words[1..].iter().all(|w| w.starts_with(' ') && !w[1..].contains(' ')), "{words:?}");
    let last = &sse.events[6];
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");

    // The stream says what the non-streamed answer says.
    let whole = complete(&server, &with(ask("Tell me something"), json!({}))).await;
    assert_eq!(whole["choices"][0]["message"]["content"], sse.text());

    let stats = server.stats();
    assert_eq!(stats.streams_completed(), 1);
    assert_eq!(stats.streams_cancelled(), 0);
    assert_eq!(stats.tokens_generated(), 10);
}

#[tokio::test]
async fn include_usage_adds_a_usage_chunk_and_null_usage_elsewhere() {
    let server = mock(MockConfig { reply_tokens: 3, ..MockConfig::default() }).await;
    let body = streamed("one two", json!({"stream_options": {"include_usage": true}, "max_tokens": 2}));
    let sse = read_sse(post(&server, &body).await).await;
    assert!(sse.done);
    let (usage_chunk, others) = sse.events.split_last().unwrap();
    for event in others {
        assert!(event["usage"].is_null() && event.get("usage").is_some(), "{event}");
        assert_eq!(event["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(others.last().unwrap()["choices"][0]["finish_reason"], "length");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 3);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 2);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 5);
    assert_eq!(usage_chunk["usage"]["completion_tokens_details"]["reasoning_tokens"], 0);
    assert_eq!(sse.content_chunks(), 2);
}

#[tokio::test]
async fn tokens_are_paced_and_sent_as_produced() {
    let server = mock(MockConfig::default()).await;
    let body = streamed("pace me", json!({"mock": {"reply_tokens": 10, "tokens_per_second": 100}}));
    let started = Instant::now();
    let mut response = post(&server, &body).await;
    let mut first_token_at = None;
    let mut received = String::new();
    while let Some(bytes) = response.chunk().await.unwrap() {
        received.push_str(std::str::from_utf8(&bytes).unwrap());
        if first_token_at.is_none() && received.matches("\"content\":\"").count() >= 2 {
            first_token_at = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    assert!(received.ends_with("data: [DONE]\n\n"));
    assert!(total >= Duration::from_millis(88), "10 tokens at 100/s took {total:?}");
    assert!(total < Duration::from_secs(2), "{total:?}");
    let first = first_token_at.unwrap();
    assert!(total - first >= Duration::from_millis(75), "first token at {first:?}, end at {total:?}");
}

#[tokio::test]
async fn latency_delays_the_response_head() {
    let server = mock(MockConfig { latency_ms: 120, ..MockConfig::default() }).await;
    let started = Instant::now();
    let response = post(&server, &streamed("hi", json!({}))).await;
    assert!(started.elapsed() >= Duration::from_millis(115), "{:?}", started.elapsed());
    assert!(read_sse(response).await.done);

    let started = Instant::now();
    complete(&server, &with(ask("hi"), json!({"mock": {"latency_ms": 0}}))).await;
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[tokio::test]
async fn a_client_leaving_mid_stream_is_counted_as_cancelled() {
    let server = mock(MockConfig { reply_tokens: 500, tokens_per_second: 200, ..MockConfig::default() }).await;
    let mut response = post(&server, &streamed("long story", json!({}))).await;
    let mut received = String::new();
    while received.matches("\n\n").count() < 4 {
        received.push_str(std::str::from_utf8(&response.chunk().await.unwrap().unwrap()).unwrap());
    }
    drop(response);

    let stats = server.stats().clone();
    eventually("the cancellation", || stats.streams_cancelled() == 1).await;
    assert_eq!(stats.streams_completed(), 0);
    let sent = stats.tokens_generated();
    assert!((3..50).contains(&sent), "{sent} tokens sent");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(stats.tokens_generated(), sent, "generation stopped");
}
