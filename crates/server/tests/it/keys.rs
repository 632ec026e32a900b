//! Keys: a revoked key is refused within a second, a new one works at once, an
//! expired one is refused — all without restarting the gateway.

use std::time::{Duration, Instant};

use serde_json::json;
use tokenrouter_store::NewKey;

use crate::harness::{Gateway, expect_error, key_for, user};

fn new_key(account_id: i64, expires_at: Option<i64>) -> (NewKey, String) {
    let (mut key, secret) = key_for(account_id);
    key.expires_at = expires_at;
    (key, secret)
}

async fn status_with(gw: &Gateway, key: &str) -> u16 {
    let response = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o-mini", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

async fn within_a_second(gw: &Gateway, key: &str, status: u16) -> Duration {
    let started = Instant::now();
    while status_with(gw, key).await != status {
        assert!(started.elapsed() < Duration::from_secs(1), "still not {status} after a second");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn revoked_keys_stop_and_new_keys_start_within_a_second() {
    let gw = Gateway::start().await;
    assert_eq!(status_with(&gw, &gw.key).await, 200);
    let (key, secret) = new_key(gw.account_id, None);
    gw.db.insert_key(&key).await.unwrap();
    assert_eq!(status_with(&gw, &secret).await, 200, "a key created elsewhere works at once");

    gw.db.revoke_key(&gw.key_id).await.unwrap();
    within_a_second(&gw, &gw.key, 401).await;
    let refused = gw
        .post("/v1/chat/completions")
        .json(&json!({"model": "gpt-4o-mini", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    expect_error(refused, 401, "invalid_api_key").await;
    assert_eq!(status_with(&gw, &secret).await, 200, "other keys unaffected");
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let gw = Gateway::start().await;
    let (key, secret) = new_key(gw.account_id, Some(tokenrouter_core::clock::now_unix() - 1));
    gw.db.insert_key(&key).await.unwrap();
    gw.state.reload_keys_if_changed().await.unwrap();
    let response = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&secret)
        .json(&json!({"model": "gpt-4o-mini", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    let body = expect_error(response, 401, "invalid_api_key").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"));
}
