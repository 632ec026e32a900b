//! Hosted (server-side) tool calls that a provider bills per call — Anthropic's web
//! searches, an OpenAI Responses upstream's `web_search_call` items, Gemini's grounding
//! searches — are charged at the model's `tool_prices` (built-in: the published price of
//! the provider kind that runs the deployment, Anthropic's $10 per 1,000 searches) in the
//! same settlement as the tokens, and shown in the answer's usage as the upstream reported
//! them; a request offering such a tool to an upstream that runs it is held for its calls.

use serde_json::{Value, json};
use tokenrouter_core::NanoUsd;

use crate::harness::{Gateway, NATIVE_KINDS, expect_error, key_for, request_id, user};

const MODELS: &str = r#"
[[models]]
id = "claude-haiku-4-5"
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock@web_searches=2" } ]

[[models]]
id = "claude-priced"
context_window = 200000
max_output_tokens = 4096
input_price = 1
output_price = 5
tool_prices = { web_search = "0.02" }
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock@web_searches=3" } ]

[[providers]]
name = "responses-mock"
kind = "openai"
base_url = "{mock}/v1"
responses_api = true

[[models]]
id = "gpt-searching"
context_window = 400000
max_output_tokens = 4096
input_price = 1
output_price = 5
tool_prices = { web_search = "0.025" }
deployments = [ { provider = "responses-mock", upstream_model = "mock-gpt-5@web_searches=2" } ]

[[models]]
id = "gpt-searching-cut"
context_window = 400000
max_output_tokens = 4096
input_price = 1
output_price = 5
tool_prices = { web_search = "0.025" }
deployments = [ { provider = "responses-mock", upstream_model = "mock-gpt-5@web_searches=2,fault=cut:3" } ]

[[models]]
id = "gemini-grounded"
context_window = 1000000
max_output_tokens = 4096
input_price = 1
output_price = 5
tool_prices = { web_search = "0.035" }
deployments = [ { provider = "gemini-mock", upstream_model = "gemini-mock@web_searches=3" } ]

[[models]]
id = "gpt-held"
context_window = 400000
max_output_tokens = 4096
input_price = 0
output_price = 1
tool_prices = { web_search = "0.001" }
deployments = [ { provider = "responses-mock", upstream_model = "mock-gpt-5@web_searches=2" } ]

[[models]]
id = "gpt-held-translated"
context_window = 400000
max_output_tokens = 4096
input_price = 0
output_price = 1
tool_prices = { web_search = "0.001" }
deployments = [ { provider = "mock", upstream_model = "mock-gpt" } ]

[[models]]
id = "claude-sonnet-4-5"
deployments = [ { provider = "responses-mock", upstream_model = "mock-gpt-5@web_searches=2" } ]

[[models]]
id = "claude-next"
context_window = 200000
max_output_tokens = 4096
input_price = 1
output_price = 5
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock@web_searches=2" } ]
"#;

/// Nano-USD of the tokens alone at $1 / $5 per 1M (what both models cost).
fn tokens_cost(prompt: u64, completion: u64) -> i64 {
    i64::try_from(prompt * 1000 + completion * 5000).unwrap()
}

async fn gateway() -> Gateway {
    let extra = NATIVE_KINDS.replace(
        "[[models]]\nid = \"claude-haiku-4-5\"\ndeployments = [ { provider = \"anthropic-mock\", upstream_model = \"claude-mock\" } ]\n",
        "",
    );
    Gateway::start_with(tokenrouter_mock::MockConfig::default(), &format!("{extra}{MODELS}")).await
}

#[tokio::test]
async fn anthropic_web_searches_are_charged_per_call_with_the_tokens_and_shown_in_usage() {
    let gw = gateway().await;
    let before = gw.balance().await;

    // /v1/messages, whole: the built-in price, $0.01 a search.
    let response = gw
        .post("/v1/messages")
        .json(&json!({"model": "claude-haiku-4-5", "max_tokens": 100, "messages": user("news today?"),
                      "tools": [{"type": "web_search_20250305", "name": "web_search"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["usage"]["server_tool_use"]["web_search_requests"], 2, "{answer}");
    let row = gw.usage(&id).await;
    let searches = NanoUsd::parse_usd("0.02").unwrap().0;
    assert_eq!(row.cost.0, tokens_cost(row.usage.prompt_tokens, row.usage.completion_tokens) + searches);

    // Streamed, on Chat Completions: the final usage says what the upstream reported, but
    // the request offered no search (none can reach Anthropic this way): none is charged.
    let response = gw
        .chat(json!({"model": "claude-haiku-4-5", "stream": true, "stream_options": {"include_usage": true},
                     "messages": user("news today?")}))
        .await;
    let id = request_id(&response);
    let text = response.text().await.unwrap();
    let usage = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|c| c["usage"].is_object())
        .unwrap()["usage"]
        .clone();
    assert_eq!(usage["server_tool_use"]["web_search_requests"], 2, "{usage}");
    let streamed = gw.usage(&id).await;
    assert_eq!(streamed.cost.0, tokens_cost(streamed.usage.prompt_tokens, streamed.usage.completion_tokens));

    // A model's own `tool_prices`: 3 searches at $0.02.
    let response = gw
        .post("/v1/messages")
        .json(&json!({"model": "claude-priced", "max_tokens": 100, "stream": true, "messages": user("news today?"),
                      "tools": [{"type": "web_search_20250305", "name": "web_search"}]}))
        .send()
        .await
        .unwrap();
    let id = request_id(&response);
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""server_tool_use":{"web_search_requests":3"#), "{text}");
    let priced = gw.usage(&id).await;
    assert_eq!(priced.cost.0, tokens_cost(priced.usage.prompt_tokens, priced.usage.completion_tokens) + 3 * 20_000_000);

    // The balance moved by exactly the three charges.
    let spent = before.0 - gw.balance().await.0;
    assert_eq!(spent, row.cost.0 + streamed.cost.0 + priced.cost.0);
}

/// The charge of a request beyond its tokens.
async fn beyond_tokens(gw: &Gateway, id: &str) -> i64 {
    let row = gw.usage(id).await;
    row.cost.0 - tokens_cost(row.usage.prompt_tokens, row.usage.completion_tokens)
}

#[tokio::test]
async fn an_openai_responses_upstream_s_web_search_calls_are_charged_per_call() {
    let gw = gateway().await;
    let before = gw.balance().await;
    let body =
        json!({"model": "gpt-searching", "input": "news today?", "tools": [{"type": "web_search"}], "store": false});
    let response = gw.post("/v1/responses").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let answer: Value = response.json().await.unwrap();
    let searches = answer["output"].as_array().unwrap().iter().filter(|i| i["type"] == "web_search_call").count();
    assert_eq!(searches, 2, "{answer}");
    assert_eq!(beyond_tokens(&gw, &id).await, 2 * 25_000_000, "two searches at $0.025");
    // Sent bounded by the calls it is held for (its own `max_tool_calls` kept).
    assert_eq!(gw.mock.stats().last_request().unwrap().body["max_tool_calls"], 10);
    let mut bounded = body.clone();
    bounded["max_tool_calls"] = json!(3);
    let response = gw.post("/v1/responses").json(&bounded).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let bounded_id = request_id(&response);
    let _ = response.text().await;
    assert_eq!(gw.mock.stats().last_request().unwrap().body["max_tool_calls"], 3);

    // Streamed: the final event's output names them; charged the same.
    let streamed = json!({"model": "gpt-searching", "input": "news today?", "stream": true, "store": false,
                          "tools": [{"type": "web_search"}]});
    let response = gw.post("/v1/responses").json(&streamed).send().await.unwrap();
    let stream_id = request_id(&response);
    let text = response.text().await.unwrap();
    assert_eq!(text.matches(r#""type":"response.output_item.done""#).count(), 3, "two searches and the message");
    assert_eq!(beyond_tokens(&gw, &stream_id).await, 2 * 25_000_000);

    // A stream cut before its end still bills the searches it showed finishing.
    let cut = json!({"model": "gpt-searching-cut", "input": "news today?", "stream": true, "store": false,
                     "tools": [{"type": "web_search"}]});
    let response = gw.post("/v1/responses").json(&cut).send().await.unwrap();
    let cut_id = request_id(&response);
    let _ = response.text().await;
    assert_eq!(beyond_tokens(&gw, &cut_id).await, 2 * 25_000_000);

    let spent = before.0 - gw.balance().await.0;
    let mut charged = 0;
    for id in [id, bounded_id, stream_id, cut_id] {
        charged += gw.usage(&id).await.cost.0;
    }
    assert_eq!(spent, charged);
}

#[tokio::test]
async fn gemini_grounding_searches_are_charged_per_query() {
    let gw = gateway().await;
    let response = gw.chat(json!({"model": "gemini-grounded", "messages": user("news today?")})).await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["usage"]["server_tool_use"]["web_search_requests"], 3, "{answer}");
    assert_eq!(beyond_tokens(&gw, &id).await, 3 * 35_000_000, "three searches at $0.035");

    let response = gw
        .chat(json!({"model": "gemini-grounded", "stream": true, "stream_options": {"include_usage": true},
                     "messages": user("news today?")}))
        .await;
    let id = request_id(&response);
    let text = response.text().await.unwrap();
    assert!(text.contains(r#""server_tool_use":{"web_search_requests":3"#), "{text}");
    assert_eq!(beyond_tokens(&gw, &id).await, 3 * 35_000_000);
}

/// A key of the gateway's account that may spend `limit` nano-USD.
async fn key_limited_to(gw: &Gateway, limit: i64) -> String {
    let (mut key, secret) = key_for(gw.account_id);
    key.spend_limit = Some(NanoUsd(limit));
    gw.add_key(&key).await;
    secret
}

#[tokio::test]
async fn the_hold_covers_the_web_searches_a_request_offers_where_the_upstream_runs_them() {
    let gw = gateway().await;
    // 100 output tokens at $1 per 1M, free input: the token ceiling is exactly 100,000.
    let tokens = 100 * 1_000;
    let search = 1_000_000; // $0.001 a search
    let ask = |model: &str, key: String, extra: Value| {
        let mut body = json!({"model": model, "input": "news today?", "max_output_tokens": 100, "store": false});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        gw.http.post(format!("{}/v1/responses", gw.url)).bearer_auth(key).json(&body).send()
    };
    let tool = || json!({"tools": [{"type": "web_search"}]});

    // A key whose limit covers the tokens (and three searches), not ten searches.
    let covered = tokens + 3 * search;
    // Without the tool: admitted.
    let response = ask("gpt-held", key_limited_to(&gw, covered).await, json!({})).await.unwrap();
    assert_eq!(response.status(), 200);
    // With it and nothing bounding its calls: ten searches are held, which the key cannot.
    let response = ask("gpt-held", key_limited_to(&gw, covered).await, tool()).await.unwrap();
    expect_error(response, 402, "insufficient_quota").await;
    // Bounded by `max_tool_calls`: the hold is the tokens plus exactly three searches.
    let bounded = || json!({"tools": [{"type": "web_search"}], "max_tool_calls": 3});
    let response = ask("gpt-held", key_limited_to(&gw, covered - 1).await, bounded()).await.unwrap();
    expect_error(response, 402, "insufficient_quota").await;
    let response = ask("gpt-held", key_limited_to(&gw, covered).await, bounded()).await.unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let _ = response.text().await.unwrap();
    assert_eq!(beyond_tokens_at(&gw, &id, 0, 1_000).await, 2 * search, "charged the two searches it ran");
    // A full ten-search hold is admitted when the key covers it.
    let response = ask("gpt-held", key_limited_to(&gw, tokens + 10 * search).await, tool()).await.unwrap();
    assert_eq!(response.status(), 200);

    // Where no upstream runs the tool (it is dropped on the way to a chat upstream),
    // nothing is held for it.
    let response = ask("gpt-held-translated", key_limited_to(&gw, tokens).await, tool()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tokenrouter-dropped-tools"], "web_search");
}

/// The charge of a request beyond its tokens at `input` and `output` nano-USD per token.
async fn beyond_tokens_at(gw: &Gateway, id: &str, input: i64, output: i64) -> i64 {
    let row = gw.usage(id).await;
    let tokens = i64::try_from(row.usage.prompt_tokens).unwrap() * input
        + i64::try_from(row.usage.completion_tokens).unwrap() * output;
    row.cost.0 - tokens
}

#[tokio::test]
async fn built_in_tool_prices_follow_the_provider_that_runs_the_model_not_its_id() {
    let gw = gateway().await;
    // A Claude model id served by an OpenAI Responses upstream: its searches are not
    // charged Anthropic's price (that upstream's price was not set: nothing).
    let body = json!({"model": "claude-sonnet-4-5", "input": "news today?", "store": false,
                      "tools": [{"type": "web_search"}]});
    let response = gw.post("/v1/responses").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let answer: Value = response.json().await.unwrap();
    let searches = answer["output"].as_array().unwrap().iter().filter(|i| i["type"] == "web_search_call").count();
    assert_eq!(searches, 2, "{answer}");
    assert_eq!(beyond_tokens_at(&gw, &id, 3_000, 15_000).await, 0, "no per-search charge");

    // A model the catalog does not know, run by Anthropic: Anthropic's published $0.01.
    let response = gw
        .post("/v1/messages")
        .json(&json!({"model": "claude-next", "max_tokens": 100, "messages": user("news today?"),
                      "tools": [{"type": "web_search_20250305", "name": "web_search"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    assert_eq!(beyond_tokens(&gw, &id).await, 2 * 10_000_000, "two searches at $0.01");

    // As the configuration states it, per deployment.
    let config = gw.state.config.load();
    let tools = |model: &str| config.model(model).unwrap().deployments[0].tools.web_search;
    assert_eq!(tools("claude-sonnet-4-5"), NanoUsd::ZERO);
    assert_eq!(tools("claude-next"), NanoUsd::parse_usd("0.01").unwrap());
    assert_eq!(tools("claude-haiku-4-5"), NanoUsd::parse_usd("0.01").unwrap());
    assert_eq!(tools("gpt-held"), NanoUsd::parse_usd("0.001").unwrap(), "a model's own price wins");
}
