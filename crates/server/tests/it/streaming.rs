//! Streaming chat completions: usage chunk handling, no buffering, upstream cuts.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::harness::{Gateway, request_id, user};

/// Reads a whole SSE answer into its `data` payloads.
async fn events(response: reqwest::Response) -> Vec<String> {
    let text = response.text().await.unwrap();
    text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect()
}

#[tokio::test]
async fn strips_the_usage_chunk_the_client_did_not_ask_for_but_bills_it() {
    let gw = Gateway::start().await;
    let response = gw
        .post("/v1/chat/completions")
        .header("accept", "application/json")
        .json(&json!({"model": "gpt-4o-mini", "stream": true, "messages": user("stream please")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream", "the body's stream decides, not Accept");
    assert_eq!(response.headers()["x-tokenrouter-provider"], "mock");
    let id = request_id(&response);
    let data = events(response).await;
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "no usage member at all: {chunks:?}");
    assert!(chunks.iter().all(|c| !c["choices"].as_array().unwrap().is_empty()));
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text.split_whitespace().count(), 16);
    assert_eq!(gw.mock.stats().last_request().unwrap().body["stream_options"]["include_usage"], true);

    let row = gw.usage(&id).await;
    assert!(row.stream);
    assert_eq!((row.usage.prompt_tokens, row.usage.completion_tokens), (3, 16));
    assert_eq!(row.usage_source, tokenrouter_store::UsageSource::Upstream);
}

#[tokio::test]
async fn passes_the_usage_chunk_through_when_asked() {
    let gw = Gateway::start().await;
    let body = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}, "messages": user("a b")});
    let data = events(gw.chat(body).await).await;
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 3);
    assert_eq!(last["usage"]["completion_tokens"], 16);
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["usage"].is_null()));
}

#[tokio::test]
async fn forwards_each_chunk_as_it_arrives() {
    let gw = Gateway::start().await;
    // 20 tokens/s: one chunk every 50 ms, 8 tokens ≈ 400 ms in all.
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": user("pace"), "mock": {"tokens_per_second": 20, "reply_tokens": 8}});
    let started = Instant::now();
    let mut stream = gw.chat(body).await.bytes_stream();
    let mut arrivals = Vec::new();
    while let Some(piece) = stream.next().await {
        if String::from_utf8_lossy(&piece.unwrap()).contains("\"content\":\"") {
            arrivals.push(started.elapsed());
        }
    }
    let total = started.elapsed();
    assert!(arrivals.len() >= 8, "{arrivals:?}");
    assert!(total >= Duration::from_millis(300));
    assert!(
        arrivals[1] + Duration::from_millis(200) < total,
        "the first tokens reached the client long before the stream ended: {arrivals:?} of {total:?}"
    );
}

#[tokio::test]
async fn an_upstream_cut_ends_the_stream_with_an_error_event_and_bills_what_was_delivered() {
    let gw = Gateway::start().await;
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": user("cut me"), "mock": {"fault": "cut:3"}});
    let response = gw.chat(body).await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let data = events(response).await;
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_unavailable", "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let row = gw.usage(&id).await;
    assert_eq!(row.usage_source, tokenrouter_store::UsageSource::Counted);
    assert_eq!(row.usage.completion_tokens, 3, "three token chunks were delivered");
    assert!(row.usage.prompt_tokens > 0);
    assert!(row.cost.0 > 0);
}

#[tokio::test]
async fn an_upstream_error_event_mid_stream_reaches_the_client_once() {
    let gw = Gateway::start().await;
    let body =
        json!({"model": "gpt-4o-mini", "stream": true, "messages": user("x"), "mock": {"fault": "stream_error"}});
    let data = events(gw.chat(body).await).await;
    let errors = data.iter().filter(|d| d.contains("\"error\"")).count();
    assert_eq!(errors, 1, "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
}
