//! `/v1/messages` offering Anthropic's server tools (`web_search_20250305`, …): an
//! Anthropic upstream is sent the client's own body, so it runs them, and its answer comes
//! back as it is (server tool blocks and all), charged per call at the deployment's price
//! and held for beforehand; any other upstream gets the translation without them, as
//! before.

use serde_json::{Value, json};
use tokenrouter_core::NanoUsd;

use crate::harness::{Gateway, NATIVE_KINDS, key_for, request_id, user};

const MODELS: &str = r#"
[[models]]
id = "claude-searching"
context_window = 200000
max_output_tokens = 4096
input_price = 0
output_price = 1
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock@web_searches=2" } ]

[[models]]
id = "claude-dear-input"
context_window = 1000000
max_output_tokens = 4096
input_price = 10
output_price = 1
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock@web_searches=2" } ]

[[models]]
id = "claude-narrow"
context_window = 50000
max_output_tokens = 4096
input_price = 0
output_price = 1
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock@web_searches=2" } ]
"#;

/// A search at Anthropic's published price: $0.01.
const SEARCH: i64 = 10_000_000;

async fn gateway() -> Gateway {
    Gateway::start_with(tokenrouter_mock::MockConfig::default(), &format!("{NATIVE_KINDS}{MODELS}")).await
}

fn searching(max_uses: Option<u64>) -> Value {
    let mut tool = json!({"type": "web_search_20250305", "name": "web_search"});
    if let Some(n) = max_uses {
        tool["max_uses"] = json!(n);
    }
    json!({"model": "claude-searching", "max_tokens": 100, "messages": user("news today?"), "tools": [tool]})
}

/// The charge of a request beyond its output tokens ($1 per 1M; input free).
async fn beyond_tokens(gw: &Gateway, id: &str) -> i64 {
    let row = gw.usage(id).await;
    row.cost.0 - i64::try_from(row.usage.completion_tokens).unwrap() * 1_000
}

#[tokio::test]
async fn server_tools_reach_an_anthropic_upstream_and_their_calls_are_charged() {
    let gw = gateway().await;
    let response = gw
        .post("/v1/messages")
        .header("anthropic-beta", "web-fetch-2025-09-10")
        .json(&searching(Some(3)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("x-tokenrouter-dropped-tools"));
    let id = request_id(&response);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], "message", "{answer}");
    assert_eq!(answer["usage"]["server_tool_use"]["web_search_requests"], 2, "{answer}");
    // The upstream got the client's body: the tool, its model name, the beta header.
    let sent = gw.mock.stats().last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["tools"][0]["type"], "web_search_20250305");
    assert_eq!(sent.body["tools"][0]["max_uses"], 3);
    assert_eq!(sent.body["model"], "claude-mock@web_searches=2");
    assert_eq!(sent.body["max_tokens"], 100);
    assert_eq!(sent.header("anthropic-beta"), Some("web-fetch-2025-09-10"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(beyond_tokens(&gw, &id).await, 2 * SEARCH, "two searches at $0.01");
    let row = gw.usage(&id).await;
    assert_eq!(row.usage.hosted.web_search, 2);
    // The request log says so: in /api/requests and on the dashboard's request page.
    let cookie = gw.session(gw.account_id).await;
    let get = |path: String| gw.http.get(format!("{}{path}", gw.url)).header("cookie", &cookie).send();
    let log: Value = get("/api/requests".to_owned()).await.unwrap().json().await.unwrap();
    let logged = log["data"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str()).unwrap().clone();
    assert_eq!((logged["web_search_calls"].as_i64(), logged["web_fetch_calls"].as_i64()), (Some(2), Some(0)));
    let page = get(format!("/dashboard/requests/{id}")).await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"id="request-hosted""#) && page.contains("2 web searches, 0 web fetches"), "{page}");

    // Streamed: Anthropic's events as they are; the searches charged the same.
    let mut body = searching(None);
    body["stream"] = json!(true);
    let response = gw.post("/v1/messages").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let text = response.text().await.unwrap();
    assert!(text.contains("event: message_start"), "{text}");
    assert!(text.contains(r#""server_tool_use":{"web_search_requests":2"#), "{text}");
    assert!(text.trim_end().ends_with(r#"data: {"type":"message_stop"}"#), "{text}");
    assert_eq!(beyond_tokens(&gw, &id).await, 2 * SEARCH);

    // Any other upstream: the tool is left out and named, as before.
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 100, "messages": user("news today?"),
                      "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
    let response = gw.post("/v1/messages").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tokenrouter-dropped-tools"], "web_search");
    let sent = gw.mock.stats().last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert!(sent.body.get("tools").is_none(), "{}", sent.body);
}

#[tokio::test]
async fn the_hold_covers_max_uses_searches_else_ten() {
    let gw = gateway().await;
    let gw = &gw;
    let key = |limit: i64| async move {
        let (mut key, secret) = key_for(gw.account_id);
        key.spend_limit = Some(NanoUsd(limit));
        gw.add_key(&key).await;
        secret
    };
    let ask =
        |key: String, body: Value| gw.http.post(format!("{}/v1/messages", gw.url)).bearer_auth(key).json(&body).send();
    // 100 output tokens at $1 per 1M: the token ceiling is 100,000.
    let tokens = 100 * 1_000;
    let covered = tokens + 3 * SEARCH;

    let plain = json!({"model": "claude-searching", "max_tokens": 100, "messages": user("hi")});
    let response = ask(key(tokens).await, plain).await.unwrap();
    assert_eq!(response.status(), 200, "without the tool the token ceiling is the hold");
    let response = ask(key(covered - 1).await, searching(Some(3))).await.unwrap();
    assert_eq!(response.status(), 402);
    let response = ask(key(covered).await, searching(Some(3))).await.unwrap();
    assert_eq!(response.status(), 200, "exactly three searches held");
    let _ = response.text().await;
    // Without max_uses: ten searches are held.
    let response = ask(key(covered).await, searching(None)).await.unwrap();
    assert_eq!(response.status(), 402);
    let refusal: Value = response.json().await.unwrap();
    assert_eq!(refusal["type"], "error", "Anthropic's error shape: {refusal}");
    assert_eq!(refusal["error"]["type"], "billing_error", "{refusal}");
    let response = ask(key(tokens + 10 * SEARCH).await, searching(None)).await.unwrap();
    assert_eq!(response.status(), 200);
}

/// A search request whose user turn carries a block the translation drops (a
/// `search_result`, ~100,000 tokens by the gateway's estimate) that Anthropic still reads.
fn with_dropped_block(model: &str) -> Value {
    let big = "lorem ipsum ".repeat(25_000);
    let turn = json!([{"role": "user", "content": [
        {"type": "search_result", "source": "https://example.com", "title": "t",
         "content": [{"type": "text", "text": big}]},
        {"type": "text", "text": "summarise"},
    ]}]);
    json!({"model": model, "max_tokens": 100, "messages": turn,
           "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]})
}

#[tokio::test]
async fn the_native_body_is_measured_where_its_translation_drops_blocks() {
    let gw = gateway().await;
    // The hold: 300 KB (~100,000 tokens) at $10 per 1M input is ~$1; a key with $0.50 left
    // cannot cover it, though the translation alone (the block dropped) would be cents.
    let (mut key, secret) = key_for(gw.account_id);
    key.spend_limit = Some(NanoUsd::parse_usd("0.5").unwrap());
    gw.add_key(&key).await;
    let ask = |body: Value| gw.http.post(format!("{}/v1/messages", gw.url)).bearer_auth(&secret).json(&body).send();
    let before = gw.mock.stats().request_count();
    let response = ask(with_dropped_block("claude-dear-input")).await.unwrap();
    assert_eq!(response.status(), 402, "the dropped block is held for");
    let refusal: Value = response.json().await.unwrap();
    assert_eq!(refusal["error"]["type"], "billing_error", "{refusal}");
    // The context window: the native body does not fit 50,000 tokens.
    let response = ask(with_dropped_block("claude-narrow")).await.unwrap();
    assert_eq!(response.status(), 400, "the dropped block counts toward the context window");
    let refusal: Value = response.json().await.unwrap();
    assert_eq!(refusal["error"]["type"], "invalid_request_error", "{refusal}");
    assert!(refusal["error"]["message"].as_str().unwrap().contains("context"), "{refusal}");
    assert_eq!(gw.mock.stats().request_count(), before, "nothing reached the upstream");
    // Small enough, the same request goes through.
    let mut small = with_dropped_block("claude-narrow");
    small["messages"][0]["content"][0]["content"][0]["text"] = json!("a short result");
    let response = ask(small).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn only_known_fields_betas_and_priced_server_tools_reach_anthropic() {
    let gw = gateway().await;
    // Fields that change what Anthropic bills or reach the operator's resources, and a
    // one-hour cache write (billed 2x input, priced here at 1.25x): not forwarded; the
    // request goes the translated way, as to any other upstream, its server tools named.
    let mut long_cache = searching(None);
    long_cache["system"] =
        json!([{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]);
    let mut bodies: Vec<(&str, Value)> = vec![("ttl", long_cache)];
    for (field, value) in [
        ("speed", json!("fast")),
        ("inference_geo", json!("us")),
        ("container", json!("container_1")),
        ("mcp_servers", json!([{"type": "url", "url": "https://example.com", "name": "x"}])),
        ("service_tier", json!("auto")),
    ] {
        let mut body = searching(None);
        body[field] = value;
        bodies.push((field, body));
    }
    for (field, body) in bodies {
        let response = gw.post("/v1/messages").json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{field}");
        assert_eq!(response.headers()["x-tokenrouter-dropped-tools"], "web_search", "{field}");
        let sent = gw.mock.stats().last_request().unwrap();
        assert!(sent.body.get(field).is_none(), "{field} reached the upstream: {}", sent.body);
        assert!(!sent.body.to_string().contains("web_search_20250305"), "{field}: {}", sent.body);
        assert!(!sent.body.to_string().contains("\"1h\""), "{field}: {}", sent.body);
    }
    // A beta other than web fetch's (fast mode, a 1M context, Claude Code's list, …): left out.
    for beta in ["context-1m-2025-08-07", "claude-code-20250219,fast-mode-2026-02-01"] {
        let response = gw.post("/v1/messages").header("anthropic-beta", beta).json(&searching(None)).send().await;
        assert_eq!(response.unwrap().status(), 200, "{beta}");
        let sent = gw.mock.stats().last_request().unwrap();
        assert_eq!(sent.header("anthropic-beta"), None, "{beta}");
        assert!(sent.body.to_string().contains("web_search_20250305"), "sent natively: {}", sent.body);
    }
    let response = gw
        .post("/v1/messages")
        .header("anthropic-beta", "fast-mode-2026-02-01, web-fetch-2025-09-10")
        .json(&searching(None))
        .send()
        .await;
    assert_eq!(response.unwrap().status(), 200);
    assert_eq!(gw.mock.stats().last_request().unwrap().header("anthropic-beta"), Some("web-fetch-2025-09-10"));

    // Allowed: `top_k`, web fetch's beta (on two lines), a web fetch tool. A server tool
    // not billed per call (code execution) is left out and named; each web search or fetch
    // tool is bounded: `max_uses` 10, a fetch's `max_content_tokens` 20,000.
    let mut body = searching(None);
    body["top_k"] = json!(5);
    body["tools"] = json!([
        {"type": "web_search_20250305", "name": "web_search"},
        {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2},
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"name": "get_weather", "input_schema": {"type": "object"}},
    ]);
    let response = gw
        .post("/v1/messages")
        .header("anthropic-beta", "web-fetch-2025-09-10")
        .header("anthropic-beta", "web-fetch-2025-09-10")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tokenrouter-dropped-tools"], "code_execution");
    let sent = gw.mock.stats().last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["top_k"], 5);
    assert_eq!(sent.header("anthropic-beta"), Some("web-fetch-2025-09-10,web-fetch-2025-09-10"));
    let tools = sent.body["tools"].as_array().unwrap();
    let kinds: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["web_search", "web_fetch", "get_weather"]);
    assert_eq!(tools[0]["max_uses"], 10);
    assert!(tools[0].get("max_content_tokens").is_none());
    assert_eq!((tools[1]["max_uses"].as_u64(), tools[1]["max_content_tokens"].as_u64()), (Some(2), Some(20_000)));
    assert!(tools[2].get("max_uses").is_none());
}

#[tokio::test]
async fn calls_beyond_what_the_request_offered_are_not_charged() {
    let gw = gateway().await;
    // The upstream reports two searches; the request allowed one: one is charged.
    let response = gw.post("/v1/messages").json(&searching(Some(1))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["usage"]["server_tool_use"]["web_search_requests"], 2, "{answer}");
    assert_eq!(beyond_tokens(&gw, &id).await, SEARCH, "one search, as offered");
    // Sent to a model without a search tool, through the translation: none is charged.
    let body = json!({"model": "claude-searching", "max_tokens": 100, "messages": user("news today?")});
    let response = gw.post("/v1/messages").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    assert_eq!(beyond_tokens(&gw, &id).await, 0, "no search offered, none charged");
}

#[tokio::test]
async fn the_hold_covers_each_fetched_page_as_input() {
    let gw = gateway().await;
    let gw = &gw;
    let key = |limit: &'static str| async move {
        let (mut key, secret) = key_for(gw.account_id);
        key.spend_limit = Some(NanoUsd::parse_usd(limit).unwrap());
        gw.add_key(&key).await;
        secret
    };
    let fetching = json!({"model": "claude-dear-input", "max_tokens": 100, "messages": user("read example.com"),
                          "tools": [{"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 1}]});
    let ask = |key: String| gw.http.post(format!("{}/v1/messages", gw.url)).bearer_auth(key).json(&fetching).send();
    // One fetch may read 20,000 tokens of a page: $0.20 at $10 per 1M input.
    let response = ask(key("0.19").await).await.unwrap();
    assert_eq!(response.status(), 402, "the fetched page is held for");
    let response = ask(key("0.21").await).await.unwrap();
    assert_eq!(response.status(), 200);
    let sent = gw.mock.stats().last_request().unwrap();
    assert_eq!(sent.body["tools"][0]["max_content_tokens"], 20_000);
    // A client's larger bound is lowered to the one held for.
    let mut larger = fetching.clone();
    larger["tools"][0]["max_content_tokens"] = json!(100_000);
    let response = gw.post("/v1/messages").json(&larger).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(gw.mock.stats().last_request().unwrap().body["tools"][0]["max_content_tokens"], 20_000);
}

#[tokio::test]
async fn a_clamped_max_tokens_leaves_room_below_it_for_the_thinking_budget() {
    let gw = gateway().await;
    let mut body = searching(None);
    body["max_tokens"] = json!(8000);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 6000});
    let response = gw.post("/v1/messages").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let sent = gw.mock.stats().last_request().unwrap();
    assert_eq!(sent.body["max_tokens"], 4096, "clamped to the model's output limit");
    assert_eq!(sent.body["thinking"]["budget_tokens"], 4095);
    // A budget that fits is left as it is.
    body["thinking"]["budget_tokens"] = json!(2000);
    let response = gw.post("/v1/messages").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(gw.mock.stats().last_request().unwrap().body["thinking"]["budget_tokens"], 2000);
}
