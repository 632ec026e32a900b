//! The playground's session-only chat route (streamed, billed to the account through its
//! "Dashboard playground" key, refused to keys, to other origins and to no one signed in),
//! and the models and connect pages (the live catalog, snippets that parse).

use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, ORIGIN};
use serde_json::{Value, json};
use tokenrouter_store::{KeyRow, KeyScope, NanoUsd};

use crate::harness::{Gateway, expect_error, key_for, request_id, user};

const ROUTE: &str = "/api/playground/chat/completions";

fn origin(gw: &Gateway) -> String {
    gw.state.config.load().server.public_origin()
}

fn stream_body(model: &str, text: &str) -> Value {
    json!({"model": model, "stream": true, "stream_options": {"include_usage": true}, "messages": user(text)})
}

/// A browser's POST: the session cookie and this gateway's Origin.
async fn browser_chat(gw: &Gateway, cookie: &str, body: Value) -> reqwest::Response {
    let url = format!("{}{ROUTE}", gw.url);
    gw.http.post(url).header(COOKIE, cookie).header(ORIGIN, origin(gw)).json(&body).send().await.unwrap()
}

/// The parsed `data:` events of an SSE answer (without the final `[DONE]`).
async fn sse_chunks(response: reqwest::Response) -> Vec<Value> {
    let text = response.text().await.unwrap();
    let data: Vec<&str> = text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect()
}

async fn playground_keys(gw: &Gateway) -> Vec<KeyRow> {
    let keys = gw.db.list_keys(gw.account_id).await.unwrap();
    keys.into_iter().filter(|k| k.name == "Dashboard playground").collect()
}

/// Waits until the balance settles at `expected` (the charge follows the usage row).
async fn balance_reaches(gw: &Gateway, expected: NanoUsd) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let balance = gw.balance().await;
        if balance == expected {
            return;
        }
        assert!(Instant::now() < deadline, "balance {balance:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_signed_in_browser_chats_streamed_and_pays_exactly_the_logged_cost() {
    let gw = Gateway::start().await;
    let cookie = gw.session(gw.account_id).await;
    let before = gw.balance().await;

    let response = browser_chat(&gw, &cookie, stream_body("gpt-4o-mini", "hello there")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let id = request_id(&response);
    let chunks = sse_chunks(response).await;
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert!(chunks.len() > 2 && !text.trim().is_empty(), "{chunks:?}");
    let usage = &chunks.last().unwrap()["usage"];
    assert!(usage["prompt_tokens"].as_i64().unwrap() > 0 && usage["completion_tokens"].as_i64().unwrap() > 0);

    // The browser's cookie never reaches an upstream.
    let upstream = gw.mock.stats().last_request().unwrap();
    assert!(upstream.header("cookie").is_none(), "{:?}", upstream.headers);
    assert_eq!(upstream.body["stream"], true);

    // The request ran through the account's own playground key, and is in its request log.
    let keys = playground_keys(&gw).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].scope, KeyScope::Inference);
    let row = gw.usage(&id).await;
    assert_eq!(row.key_id, keys[0].id);
    assert_eq!(
        (row.usage.prompt_tokens, row.usage.completion_tokens),
        (
            u64::try_from(usage["prompt_tokens"].as_i64().unwrap()).unwrap(),
            u64::try_from(usage["completion_tokens"].as_i64().unwrap()).unwrap()
        )
    );
    let log: Value = gw
        .http
        .get(format!("{}/api/requests?limit=5", gw.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = log["data"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str()).unwrap().clone();
    assert_eq!(entry["key_id"], keys[0].id.as_str());
    assert!(entry["stream"].as_bool().unwrap());
    let cost = NanoUsd::parse_usd(entry["cost_usd"].as_str().unwrap()).unwrap();
    assert!(cost.0 > 0, "{entry}");
    balance_reaches(&gw, NanoUsd(before.0 - cost.0)).await;

    // The next turn (the whole conversation again) spends through the same key.
    let second = stream_body("gpt-4o-mini", "and again");
    let response = browser_chat(&gw, &cookie, second).await;
    assert_eq!(response.status(), 200);
    sse_chunks(response).await;
    assert_eq!(playground_keys(&gw).await.len(), 1);
}

#[tokio::test]
async fn only_a_signed_in_browser_from_this_origin_may_use_the_playground() {
    let gw = Gateway::start().await;
    let cookie = gw.session(gw.account_id).await;
    let url = format!("{}{ROUTE}", gw.url);
    let body = stream_body("gpt-4o-mini", "hi");

    // The cookie without the gateway's Origin (or with another) is a forged request.
    let bare = gw.http.post(&url).header(COOKIE, &cookie).json(&body).send().await.unwrap();
    expect_error(bare, 403, "csrf_failed").await;
    let elsewhere =
        gw.http.post(&url).header(COOKIE, &cookie).header(ORIGIN, "https://evil.example").json(&body).send();
    expect_error(elsewhere.await.unwrap(), 403, "csrf_failed").await;

    // Keys have /v1 for this: an inference key and a management key are both refused.
    let inference = gw.http.post(&url).bearer_auth(&gw.key).json(&body).send().await.unwrap();
    expect_error(inference, 403, "forbidden").await;
    let (mut management, secret) = key_for(gw.account_id);
    management.scope = KeyScope::Management;
    gw.add_key(&management).await;
    let managed = gw.http.post(&url).bearer_auth(&secret).json(&body).send().await.unwrap();
    expect_error(managed, 403, "forbidden").await;

    // No one signed in.
    let nobody = gw.http.post(&url).header(ORIGIN, origin(&gw)).json(&body).send().await.unwrap();
    expect_error(nobody, 401, "not_signed_in").await;
    let ended = gw.http.post(&url).header(COOKIE, "tr_session=forged").header(ORIGIN, origin(&gw)).json(&body);
    expect_error(ended.send().await.unwrap(), 401, "not_signed_in").await;

    assert!(playground_keys(&gw).await.is_empty(), "no refused caller made a key");
    assert_eq!(gw.answered_count().await, 0);
}

#[tokio::test]
async fn the_playground_keys_limits_apply_and_a_revoked_one_is_replaced() {
    let gw = Gateway::start().await;
    let cookie = gw.session(gw.account_id).await;
    let response = browser_chat(&gw, &cookie, stream_body("gpt-4o-mini", "first")).await;
    assert_eq!(response.status(), 200);
    sse_chunks(response).await;
    let id = playground_keys(&gw).await[0].id.clone();

    // The user limits the key to another model, on the keys page: the playground obeys.
    let api = |method: reqwest::Method, path: String| {
        gw.http.request(method, format!("{}{path}", gw.url)).header(COOKIE, &cookie).header(ORIGIN, origin(&gw))
    };
    let patched = api(reqwest::Method::PATCH, format!("/api/keys/{id}")).json(&json!({"models": ["slow-model"]}));
    assert_eq!(patched.send().await.unwrap().status(), 200);
    let refused = browser_chat(&gw, &cookie, stream_body("gpt-4o-mini", "second")).await;
    expect_error(refused, 403, "model_not_allowed").await;

    // Revoked, it is replaced by a fresh key on the next turn.
    assert_eq!(api(reqwest::Method::DELETE, format!("/api/keys/{id}")).send().await.unwrap().status(), 200);
    let response = browser_chat(&gw, &cookie, stream_body("gpt-4o-mini", "third")).await;
    assert_eq!(response.status(), 200);
    let request = request_id(&response);
    sse_chunks(response).await;
    let live: Vec<KeyRow> = playground_keys(&gw).await.into_iter().filter(|k| k.revoked_at.is_none()).collect();
    assert_eq!(live.len(), 1);
    assert_ne!(live[0].id, id);
    assert_eq!(gw.usage(&request).await.key_id, live[0].id);
}

/// The text of the element `<tag id="id">…</tag>`, HTML entities decoded.
fn element_text(html: &str, tag: &str, id: &str) -> String {
    let start = html.find(&format!("<{tag} id=\"{id}\"")).unwrap_or_else(|| panic!("no {tag}#{id}"));
    let open = start + html[start..].find('>').unwrap() + 1;
    let close = open + html[open..].find(&format!("</{tag}>")).unwrap();
    html[open..close]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

async fn page(gw: &Gateway, cookie: &str, path: &str) -> String {
    let response = gw.http.get(format!("{}{path}", gw.url)).header(COOKIE, cookie).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn the_models_and_connect_pages_show_the_live_catalog_and_snippets_that_parse() {
    let gw = Gateway::start().await;
    let cookie = gw.session(gw.account_id).await;

    let models = page(&gw, &cookie, "/dashboard/models").await;
    for id in ["gpt-4o-mini", "slow-model"] {
        assert!(models.contains(&format!("<tr data-model-id=\"{id}\"")), "{id}");
    }
    assert!(models.contains("Search models"));
    let searched = page(&gw, &cookie, "/dashboard/models?q=SLOW").await;
    assert!(searched.contains("data-model-id=\"slow-model\"") && !searched.contains("data-model-id=\"gpt-4o-mini\""));

    let connect = page(&gw, &cookie, "/dashboard/connect?model=slow-model").await;
    assert_eq!(element_text(&connect, "code", "base-url"), format!("{}/v1", origin(&gw)));
    assert!(!connect.contains(&gw.key), "no secret in the page");
    assert!(!connect.contains(&gw.key_id), "no key of the account in the page");
    for snippet in ["curl", "python", "node", "codex", "opencode", "claude"] {
        let text = element_text(&connect, "pre", &format!("snippet-{snippet}"));
        assert!(text.contains("TOKENROUTER_API_KEY"), "{snippet}: {text}");
        assert!(connect.contains(&format!("data-copy=\"#snippet-{snippet}\"")), "{snippet}");
    }
    let codex: toml::Table = element_text(&connect, "pre", "snippet-codex").parse().unwrap();
    assert_eq!(codex["model"].as_str(), Some("slow-model"));
    assert_eq!(codex["model_context_window"].as_integer(), Some(8000));
    let provider = &codex["model_providers"][codex["model_provider"].as_str().unwrap()];
    assert_eq!(provider["base_url"].as_str().unwrap(), format!("{}/v1", origin(&gw)));
    assert_eq!(provider["wire_api"].as_str(), Some("responses"));
    assert_eq!(provider["env_key"].as_str(), Some("TOKENROUTER_API_KEY"));
    let profiles = element_text(&connect, "pre", "snippet-codex-profiles");
    assert!(profiles.contains("~/.codex/tr-gpt-4o-mini.config.toml"), "{profiles}");

    let opencode: Value = serde_json::from_str(&element_text(&connect, "pre", "snippet-opencode")).unwrap();
    let provider = &opencode["provider"]["tokenrouter"];
    assert_eq!(provider["npm"], "@ai-sdk/openai-compatible");
    assert_eq!(provider["options"]["apiKey"], "{env:TOKENROUTER_API_KEY}");
    assert_eq!(provider["models"]["slow-model"]["limit"], json!({"context": 8000, "output": 1000}));
    assert!(provider["models"]["gpt-4o-mini"]["limit"]["context"].as_u64().unwrap() > 0);
    assert_eq!(opencode["model"], "tokenrouter/slow-model");

    let claude = element_text(&connect, "pre", "snippet-claude");
    assert!(claude.contains(&format!("ANTHROPIC_BASE_URL='{}'\n", origin(&gw))), "{claude}");

    let playground = page(&gw, &cookie, "/dashboard/playground").await;
    assert!(playground.contains("<option value=\"gpt-4o-mini\""));
    for label in ["Model", "System prompt", "Temperature", "Max tokens", "Message", "Send"] {
        assert!(playground.contains(label), "{label}");
    }
    assert!(playground.contains("id=\"chat-log\""));
}
