//! Usage and money: a client that disconnects mid-stream is billed for what it got, an
//! upstream failure costs nothing, and the balance always equals the ledger.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokenrouter_store::UsageSource;

use crate::harness::{Gateway, request_id, user};

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_billed_for_what_was_delivered() {
    let gw = Gateway::start().await;
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": user("long answer"), "mock": {"tokens_per_second": 50, "reply_tokens": 200}});
    let response = gw.chat(body).await;
    let id = request_id(&response);
    let mut stream = response.bytes_stream();
    let mut content_chunks = 0;
    while content_chunks < 3 {
        let piece = stream.next().await.unwrap().unwrap();
        content_chunks += String::from_utf8_lossy(&piece).matches("\"content\":\"").filter(|_| true).count();
    }
    drop(stream);

    let row = gw.usage(&id).await;
    assert!(row.client_disconnected);
    assert_eq!(row.usage_source, UsageSource::Counted);
    assert!(row.usage.completion_tokens > 0, "never zero");
    // Wait until the mock has noticed the cancellation, then compare with what it generated.
    let deadline = Instant::now() + Duration::from_secs(3);
    while gw.mock.stats().streams_cancelled() == 0 {
        assert!(Instant::now() < deadline, "the upstream request was not cancelled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(row.usage.completion_tokens <= gw.mock.stats().tokens_generated(), "never more than generated");
    assert!(row.usage.completion_tokens < 200, "never the full answer");
    assert!(row.cost.0 > 0);
    assert_eq!(gw.balance().await.0, 100_000_000_000 - row.cost.0);
}

#[tokio::test]
async fn upstream_failures_cost_nothing() {
    for fault in ["500", "429", "reset"] {
        let gw = Gateway::start().await;
        let before = gw.balance().await;
        let response = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("x"), "mock": {"fault": fault}})).await;
        assert_eq!(response.status(), 502, "fault {fault}");
        let row = gw.usage(&request_id(&response)).await;
        assert_eq!(row.status, 502);
        assert_eq!(row.cost.0, 0);
        assert_eq!(row.usage_source, UsageSource::None);
        assert_eq!(gw.balance().await, before);
    }
}

#[tokio::test]
async fn the_balance_equals_the_ledger_after_many_requests() {
    let gw = Gateway::start().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let stream = i % 2 == 0;
        let request =
            gw.chat(json!({"model": "gpt-4o-mini", "stream": stream, "messages": user(&"word ".repeat(i + 1))}));
        tasks.push(async move {
            let response = request.await;
            let id = request_id(&response);
            let _ = response.bytes().await.unwrap();
            id
        });
    }
    let ids = futures_util::future::join_all(tasks).await;
    let mut total = 0;
    for id in &ids {
        let row = gw.usage(id).await;
        assert_eq!(row.usage_source, UsageSource::Upstream);
        total += row.cost.0;
    }
    assert_eq!(gw.usage_count().await, 40);
    let balance = gw.balance().await;
    assert_eq!(balance.0, 100_000_000_000 - total);
    assert_eq!(gw.db.ledger_sum(gw.account_id).await.unwrap(), balance);
}
