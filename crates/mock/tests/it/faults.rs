//! Fault injection: 500, 429, hang, reset and a stream cut short, from the config or per request.

use std::time::Duration;

use serde_json::{Value, json};
use tokenrouter_mock::{Fault, MockConfig};

use crate::client::{ask, complete, http, mock, post, post_with, read_sse, with};

fn fault(name: &str) -> Value {
    json!({"mock": {"fault": name}})
}

#[tokio::test]
async fn status_500_has_the_error_envelope() {
    let server = mock(MockConfig { fault: Some(Fault::Status500), ..MockConfig::default() }).await;
    let response = post(&server, &ask("hi")).await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["content-type"], "application/json");
    let e: Value = response.json().await.unwrap();
    assert_eq!(e["error"]["type"], "server_error");
    assert!(e["error"]["message"].is_string());
    assert!(e["error"].get("param").is_some() && e["error"].get("code").is_some());

    // A request can switch the configured fault off.
    complete(&server, &with(ask("hi"), json!({"mock": {"fault": null}}))).await;
    assert_eq!(server.stats().request_count(), 2);
    assert_eq!(server.stats().tokens_generated(), 16);
}

#[tokio::test]
async fn status_429_says_when_to_retry() {
    let server = mock(MockConfig::default()).await;
    let response = post(&server, &with(ask("hi"), fault("429"))).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let e: Value = response.json().await.unwrap();
    assert!(e["error"]["message"].is_string());

    let body = with(ask("hi"), json!({"mock": {"fault": "429", "retry_after_secs": 7}}));
    assert_eq!(post(&server, &body).await.headers()["retry-after"], "7");
}

#[tokio::test]
async fn hang_never_answers() {
    let server = mock(MockConfig::default()).await;
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(300)).build().unwrap();
    let error = post_with(&client, &server, &with(ask("hi"), fault("hang"))).await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(server.stats().request_count(), 1);
    assert!(server.stats().last_request().is_some());
}

#[tokio::test]
async fn reset_closes_the_connection_without_a_response() {
    let server = mock(MockConfig::default()).await;
    for body in [with(ask("hi"), fault("reset")), with(ask("hi"), fault("cut:1"))] {
        let error = post_with(&http(), &server, &body).await.unwrap_err();
        assert!(!error.is_timeout() && error.status().is_none(), "{error:?}");
    }
    // The server itself is fine afterwards.
    complete(&server, &ask("hi")).await;
}

#[tokio::test]
async fn cut_stream_stops_mid_event_without_done() {
    let server = mock(MockConfig { fault: Some(Fault::CutStream { after_tokens: 3 }), ..MockConfig::default() }).await;
    let sse = read_sse(post(&server, &with(ask("hi"), json!({"stream": true}))).await).await;
    assert!(!sse.done);
    assert!(sse.error.is_some(), "the stream must end with an error");
    assert_eq!(sse.content_chunks(), 3);
    assert!(sse.rest.starts_with("data: {"), "half an event: {:?}", sse.rest);
    assert!(sse.events.iter().all(|e| e["choices"][0]["finish_reason"].is_null()));

    let stats = server.stats();
    assert_eq!(stats.tokens_generated(), 3);
    assert_eq!(stats.streams_completed(), 0);

    // "cut" alone cuts after two tokens.
    let body = with(ask("hi"), json!({"stream": true, "mock": {"fault": "cut"}}));
    let sse = read_sse(post(&server, &body).await).await;
    assert_eq!((sse.done, sse.content_chunks()), (false, 2));
}
