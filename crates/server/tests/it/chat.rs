//! Non-streaming chat completions, `/v1/models`, health and whoami, end to end.

use serde_json::{Value, json};

use crate::harness::{Gateway, request_id, user};

#[tokio::test]
async fn forwards_chat_and_records_usage() {
    let gw = Gateway::start().await;
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": user("hello there gateway"),
        "metadata": {"trace": [1, 2.50, "é"]},
        "seed": 7,
        "logit_bias": {"50256": -100},
    });
    let response = gw.chat(body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tokenrouter-provider"], "mock");
    assert_eq!(response.headers()["content-type"], "application/json");
    let latency: f64 = response.headers()["x-tokenrouter-latency-ms"].to_str().unwrap().parse().unwrap();
    assert!(latency >= 0.0);
    let id = request_id(&response);
    assert!(id.starts_with("req_"));
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["choices"][0]["message"]["content"].as_str().unwrap().len() > 10);
    let prompt = answer["usage"]["prompt_tokens"].as_u64().unwrap();
    let completion = answer["usage"]["completion_tokens"].as_u64().unwrap();
    assert_eq!((prompt, completion), (4, 16), "3 words + 1 for the message; the mock's default reply");

    // What the upstream received: its own model name, the gateway's provider key, and every
    // field the gateway does not model, unchanged.
    let seen = gw.mock.stats().last_request().unwrap();
    assert_eq!(seen.body["model"], "mock-gpt");
    assert_eq!(seen.body["metadata"], json!({"trace": [1, 2.50, "é"]}));
    assert_eq!(seen.body["seed"], 7);
    assert_eq!(seen.body["logit_bias"], json!({"50256": -100}));
    assert_eq!(seen.header("authorization"), Some("Bearer upstream-secret"));
    assert!(seen.body.get("stream_options").is_none(), "nothing added to a non-streaming request");

    let row = gw.usage(&id).await;
    assert_eq!(row.usage.prompt_tokens, 4);
    assert_eq!(row.usage.completion_tokens, 16);
    assert_eq!(row.model, "gpt-4o-mini");
    assert_eq!(row.upstream_model, "mock-gpt");
    assert_eq!(row.provider, "mock");
    assert_eq!(row.status, 200);
    assert!(!row.stream && !row.client_disconnected);
    // gpt-4o-mini at $0.15 / $0.60 per 1M tokens: 4 × 150 + 16 × 600 = 10,200 nano-USD.
    assert_eq!(row.cost.0, 10_200);
    assert_eq!(gw.balance().await.0, 100_000_000_000 - row.cost.0);
    assert_eq!(gw.db.ledger_sum(gw.account_id).await.unwrap(), gw.balance().await);
}

#[tokio::test]
async fn accepts_the_key_as_x_api_key() {
    let gw = Gateway::start().await;
    let response = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-api-key", &gw.key)
        .json(&json!({"model": "gpt-4o-mini", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn lists_models_with_prices_limits_and_capabilities() {
    let gw = Gateway::start().await;
    let list: Value =
        gw.http.get(format!("{}/v1/models", gw.url)).bearer_auth(&gw.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["gpt-4o-mini", "slow-model", "dead-model"]);
    let mini = &list["data"][0];
    assert_eq!(mini["object"], "model");
    assert_eq!(mini["owned_by"], "mock");
    assert_eq!(mini["context_window"], 128_000);
    assert_eq!(mini["max_output_tokens"], 16_384);
    assert_eq!(mini["pricing"]["input"], 0.15);
    assert_eq!(mini["pricing"]["output"], 0.60);
    assert_eq!(mini["capabilities"], json!(["tools", "vision", "json"]));

    let anonymous = gw.http.get(format!("{}/v1/models", gw.url)).send().await.unwrap();
    crate::harness::expect_error(anonymous, 401, "invalid_api_key").await;
}

#[tokio::test]
async fn health_and_whoami() {
    let gw = Gateway::start().await;
    let health: Value = gw.http.get(&gw.url).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let head = gw.http.head(&gw.url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let me: Value =
        gw.http.get(format!("{}/api/whoami", gw.url)).bearer_auth(&gw.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["id"], gw.key_id.as_str());
    assert_eq!(me["prefix"], format!("sk-tr-{}", gw.key_id));
    assert_eq!(me["account"], "acme");
    assert!(!me.to_string().contains(&gw.key), "whoami never echoes the secret");
}
