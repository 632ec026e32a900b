//! Online instances as deployments (CONTRACTS §7): routed and listed while online, the
//! owner's earning exact and in the settling transaction, `community: false` keys kept
//! away, deletion and disabling within 1 s, failover with no leaked hold, 3 failures →
//! offline, inflated usage charged at the gateway's count and flagged. Every instance is
//! a second mock on 127.0.0.1 (`allow_private_addresses = true`), registered and set
//! online through the store.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenrouter::instances::routing::{answer_text_bytes, own_completion};
use tokenrouter_core::NanoUsd;
use tokenrouter_mock::{InstanceFailure, InstanceKnobs, MockConfig, MockServer};
use tokenrouter_store::{
    Earning, InstanceModel, InstanceStatus, NewInstance, ProbeResult, ProbeStatus, UsageSource, provider_name,
};

use crate::harness::{Gateway, expect_error, key_for, request_id, user};

pub(crate) const INSTANCE_KEY: &str = "tr-inst-test-key";
const SHARE_PPB: u64 = 800_000_000;

/// `community-llama` only instances serve; `shared-model` has a configured deployment on
/// the mock too, dearer (its own price) so the cost strategy tries an instance first.
pub(crate) const EXTRA: &str = r#"
[instances]
allow_private_addresses = true
owner_share = "0.8"
probe_interval_secs = 3600

[[models]]
id = "community-llama"
context_window = 8000
max_output_tokens = 1000
input_price = "3"
output_price = "7"
instances = true
deployments = []

[[models]]
id = "shared-model"
context_window = 8000
max_output_tokens = 1000
input_price = "1"
output_price = "2"
instances = true
deployments = [ { provider = "mock", upstream_model = "mock-shared", input_price = "50", output_price = "50" } ]
"#;

pub(crate) struct Setup {
    pub gw: Gateway,
    pub server: MockServer,
    pub owner: i64,
    pub id: String,
}

async fn instance_server(knobs: InstanceKnobs) -> MockServer {
    let config = MockConfig { instance: knobs, ..MockConfig::default() };
    tokenrouter_mock::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

pub(crate) fn honest_knobs() -> InstanceKnobs {
    InstanceKnobs {
        api_key: Some(INSTANCE_KEY.to_owned()),
        models: Some(vec!["llama-up".to_owned(), "shared-up".to_owned()]),
        ..InstanceKnobs::default()
    }
}

/// Registers an instance of `owner` at `server` serving both models, and sets it online.
async fn register(gw: &Gateway, owner: i64, server: &MockServer) -> String {
    register_at(gw, owner, server.base_url()).await
}

/// Registers an instance of `owner` at `base_url` (a server on 127.0.0.1) serving both
/// models, and sets it online.
pub(crate) async fn register_at(gw: &Gateway, owner: i64, base_url: String) -> String {
    let models = vec![
        InstanceModel { model: "community-llama".into(), upstream_model: "llama-up".into() },
        InstanceModel { model: "shared-model".into(), upstream_model: "shared-up".into() },
    ];
    let new = NewInstance {
        account_id: owner,
        name: "box".into(),
        base_url,
        region: None,
        api_key: INSTANCE_KEY.into(),
        models,
    };
    let instance = gw.db.create_instance(&new).await.unwrap();
    // Keep the gateway's own prober off it for the test (the lease is its schedule); if
    // it got there first, let its probe land before the verdict below.
    let now = tokenrouter_core::clock::now_unix();
    let leased = gw.db.take_probe_lease("test", now, 3600, 100).await.unwrap();
    if !leased.iter().any(|i| i.id == instance.id) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while gw.db.instance_by_id(&instance.id).await.unwrap().unwrap().last_probe_at.is_none() {
            assert!(Instant::now() < deadline, "the prober's probe never landed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let online = ProbeResult {
        revision: instance.revision,
        status: ProbeStatus::Online,
        detail: "online".into(),
        latency_ms: Some(3),
        at: tokenrouter_core::clock::now_unix(),
    };
    assert!(gw.db.record_probe(&instance.id, &online).await.unwrap());
    instance.id
}

pub(crate) async fn setup(knobs: InstanceKnobs) -> Setup {
    let gw = Gateway::start_with(MockConfig::default(), EXTRA).await;
    let owner = gw.db.create_account("owner", NanoUsd::ZERO).await.unwrap().id;
    let server = instance_server(knobs).await;
    let id = register(&gw, owner, &server).await;
    wait_listed(&gw, &gw.key, "community-llama", true).await;
    Setup { gw, server, owner, id }
}

pub(crate) async fn model_ids(gw: &Gateway, key: &str) -> Vec<String> {
    let list: Value =
        gw.http.get(format!("{}/v1/models", gw.url)).bearer_auth(key).send().await.unwrap().json().await.unwrap();
    list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

/// Waits (at most 1 s) until `model` is listed for `key` (or not); the time it took.
pub(crate) async fn wait_listed(gw: &Gateway, key: &str, model: &str, listed: bool) -> Duration {
    let start = Instant::now();
    loop {
        if model_ids(gw, key).await.iter().any(|m| m == model) == listed {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(1), "'{model}' listed should be {listed} within 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Consumer requests the instance received (its prober's calls left out).
pub(crate) fn served(server: &MockServer) -> usize {
    server.stats().requests().iter().filter(|r| r.body.to_string().contains("about instances")).count()
}

pub(crate) fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": user("Tell me something about instances."), "max_tokens": 50})
}

pub(crate) async fn ledger(gw: &Gateway, account_id: i64) -> Vec<tokenrouter_store::LedgerRow> {
    gw.state.usage.flush().await;
    gw.db.ledger(account_id, 1000).await.unwrap()
}

/// Every account's balance equals the sum of its ledger, and nothing stays held.
pub(crate) async fn books_balance(gw: &Gateway, accounts: &[i64]) {
    gw.state.usage.flush().await;
    for &id in accounts {
        let account = gw.db.account_by_id(id).await.unwrap().unwrap();
        assert_eq!(account.balance, gw.db.ledger_sum(id).await.unwrap(), "account {id}: balance = its ledger");
        assert_eq!(gw.db.held(id).await.unwrap(), NanoUsd::ZERO, "account {id}: no hold left");
    }
}

#[tokio::test]
async fn an_online_instance_is_listed_served_and_its_owner_paid_exactly() {
    let Setup { gw, server, owner, id } = setup(honest_knobs()).await;
    assert!(model_ids(&gw, &gw.key).await.contains(&"community-llama".to_owned()));
    let cookie = gw.session(gw.account_id).await;
    let api: Value = gw
        .http
        .get(format!("{}/api/models", gw.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(api["data"].as_array().unwrap().iter().any(|m| m["id"] == "community-llama"), "{api}");

    let response = gw.chat(chat_body("community-llama")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tokenrouter-provider"], provider_name(&id).as_str());
    let rid = request_id(&response);
    let text = response.text().await.unwrap();
    assert!(!text.contains(&server.base_url()) && !text.contains(INSTANCE_KEY), "nothing of the instance leaks");
    assert_eq!(served(&server), 1, "the instance itself answered");

    let usage = gw.usage(&rid).await;
    assert_eq!(usage.provider, provider_name(&id));
    assert_eq!(usage.upstream_model, "llama-up");
    assert_eq!(usage.usage_source, UsageSource::Upstream, "an honest report is believed: {usage:?}");
    let charge = usage.cost.0;
    assert!(charge > 0);
    let consumer = ledger(&gw, gw.account_id).await;
    let charged = consumer.iter().find(|r| r.request_id.as_deref() == Some(&rid) && r.kind == "charge").unwrap();
    assert_eq!(charged.amount.0, -charge, "the consumer pays the catalog price");
    let earned = ledger(&gw, owner).await;
    let earning = earned.iter().find(|r| r.request_id.as_deref() == Some(&rid)).expect("an earning row");
    assert_eq!(earning.kind, "earning");
    let expected = i64::try_from(i128::from(charge) * 8 / 10).unwrap();
    assert_eq!(earning.amount.0, expected, "0.8 × {charge}, rounded down");
    assert_eq!(earning.amount.0, gw.state.config.load().instances.owner_earning(charge));
    let operator = charge - earning.amount.0;
    assert_eq!(earning.amount.0 + operator, charge);
    assert!(operator >= 0 && operator <= charge / 5 + 1);
    books_balance(&gw, &[gw.account_id, owner]).await;

    // A replayed settlement pays nothing twice.
    let mut replay = usage.clone();
    replay.earning = Some(Earning { account_id: owner, share_ppb: SHARE_PPB });
    gw.db.record_usage(&[replay]).await.unwrap();
    assert_eq!(ledger(&gw, owner).await.len(), earned.len(), "no second earning");
    assert_eq!(ledger(&gw, gw.account_id).await.len(), consumer.len(), "no second charge");
    books_balance(&gw, &[gw.account_id, owner]).await;

    // Streamed too.
    let mut body = chat_body("community-llama");
    body["stream"] = json!(true);
    let response = gw.chat(body).await;
    assert_eq!(response.headers()["x-tokenrouter-provider"], provider_name(&id).as_str());
    let rid = request_id(&response);
    let _ = response.text().await.unwrap();
    let usage = gw.usage(&rid).await;
    assert_eq!(usage.usage_source, UsageSource::Upstream, "an honest streamed report is believed: {usage:?}");
    let earning = ledger(&gw, owner).await.into_iter().find(|r| r.request_id.as_deref() == Some(&rid)).unwrap();
    assert_eq!(earning.amount.0, gw.state.config.load().instances.owner_earning(usage.cost.0));
    books_balance(&gw, &[gw.account_id, owner]).await;
}

#[tokio::test]
async fn a_private_key_never_reaches_an_instance() {
    let Setup { gw, server, id, .. } = setup(honest_knobs()).await;
    let (mut key, secret) = key_for(gw.account_id);
    key.community = false;
    gw.add_key(&key).await;
    let listed = model_ids(&gw, &secret).await;
    assert!(!listed.contains(&"community-llama".to_owned()), "{listed:?}");
    assert!(listed.contains(&"shared-model".to_owned()), "{listed:?}");
    let url = format!("{}/v1/chat/completions", gw.url);
    let private = |body: Value| gw.http.post(&url).bearer_auth(&secret).json(&body).send();
    expect_error(private(chat_body("community-llama")).await.unwrap(), 404, "model_not_found").await;
    let before = served(&server);
    for _ in 0..6 {
        let response = private(chat_body("shared-model")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-tokenrouter-provider"], "mock");
    }
    assert_eq!(served(&server), before, "not one request reached the instance");
    // The same model, for a community key, goes to the (cheaper) instance.
    let response = gw.chat(chat_body("shared-model")).await;
    assert_eq!(response.headers()["x-tokenrouter-provider"], provider_name(&id).as_str());
}

#[tokio::test]
async fn disabling_or_deleting_an_instance_stops_routing_within_a_second() {
    let Setup { gw, server: _instance, owner, id } = setup(honest_knobs()).await;
    let changes = tokenrouter_store::InstanceChanges { enabled: Some(false), ..Default::default() };
    gw.db.update_instance(owner, &id, &changes).await.unwrap().unwrap();
    let took = wait_listed(&gw, &gw.key, "community-llama", false).await;
    eprintln!("disabled → unlisted in {took:?}");
    let response = gw.chat(chat_body("shared-model")).await;
    assert_eq!(response.headers()["x-tokenrouter-provider"], "mock");
    expect_error(gw.chat(chat_body("community-llama")).await, 502, "upstream_unavailable").await;

    let second = instance_server(honest_knobs()).await;
    let other = register(&gw, owner, &second).await;
    wait_listed(&gw, &gw.key, "community-llama", true).await;
    assert!(gw.db.delete_instance(owner, &other).await.unwrap());
    let took = wait_listed(&gw, &gw.key, "community-llama", false).await;
    eprintln!("deleted → unlisted in {took:?}");
    let before = served(&second);
    let response = gw.chat(chat_body("shared-model")).await;
    assert_eq!(response.headers()["x-tokenrouter-provider"], "mock");
    assert_eq!(served(&second), before);
}

#[tokio::test]
async fn a_failing_instance_fails_over_with_no_leaked_hold_and_goes_offline_after_three() {
    let Setup { gw, server, owner, id } = setup(honest_knobs()).await;
    server.update_instance(|k| k.failure = Some(InstanceFailure::Status500));
    for _ in 0..3 {
        let response = gw.chat(chat_body("shared-model")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-tokenrouter-provider"], "mock", "failed over to the configured deployment");
        let rid = request_id(&response);
        let body = response.text().await.unwrap();
        assert!(!body.contains(&server.base_url()));
        assert!(gw.usage(&rid).await.cost.0 > 0);
        assert!(ledger(&gw, owner).await.is_empty(), "a failed instance earns nothing");
        books_balance(&gw, &[gw.account_id, owner]).await;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let instance = gw.db.instance_by_id(&id).await.unwrap().unwrap();
        if instance.status == InstanceStatus::Offline {
            assert!(instance.status_detail.contains("in a row"), "{}", instance.status_detail);
            break;
        }
        assert!(Instant::now() < deadline, "3 failures in a row take it offline: {instance:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_listed(&gw, &gw.key, "community-llama", false).await;
    // An instance-only model with no instance online: the documented error, nothing held.
    expect_error(gw.chat(chat_body("community-llama")).await, 502, "upstream_unavailable").await;
    books_balance(&gw, &[gw.account_id, owner]).await;
}

#[tokio::test]
async fn an_instance_failing_a_stream_before_its_first_byte_fails_over() {
    let Setup { gw, server, owner, .. } = setup(honest_knobs()).await;
    server.update_instance(|k| k.failure = Some(InstanceFailure::Status500));
    let mut body = chat_body("shared-model");
    body["stream"] = json!(true);
    let response = gw.chat(body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tokenrouter-provider"], "mock");
    let _ = response.text().await.unwrap();
    books_balance(&gw, &[gw.account_id, owner]).await;
}

/// What the instance itself reports for `body` (asked directly, over loopback).
async fn reported_by_instance(gw: &Gateway, server: &MockServer, body: &Value) -> Value {
    let mut direct = body.clone();
    direct["model"] = json!("llama-up");
    let url = format!("{}/chat/completions", server.base_url());
    let answer: Value =
        gw.http.post(url).bearer_auth(INSTANCE_KEY).json(&direct).send().await.unwrap().json().await.unwrap();
    answer["usage"].clone()
}

/// The `usage` object of a streamed chat answer (its usage chunk).
fn streamed_usage(text: &str) -> Value {
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let with_usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).collect();
    assert_eq!(with_usage.len(), 1, "one usage chunk: {text}");
    with_usage[0]["usage"].clone()
}

/// `usage` as the consumer reads it equals what the usage row charged.
fn states_the_charge(answer: &Value, charged: &tokenrouter_core::Usage) {
    let expected =
        (charged.prompt_tokens, charged.completion_tokens, charged.prompt_tokens + charged.completion_tokens);
    let read = (
        answer["prompt_tokens"].as_u64().unwrap(),
        answer["completion_tokens"].as_u64().unwrap(),
        answer["total_tokens"].as_u64().unwrap(),
    );
    assert_eq!(read, expected, "the answer states the usage charged: {answer}");
}

#[tokio::test]
async fn inflated_usage_is_charged_at_the_gateways_count_and_flagged() {
    let knobs = InstanceKnobs { usage_multiplier: 10, ..honest_knobs() };
    let Setup { gw, server, owner, id } = setup(knobs).await;
    let body = chat_body("community-llama");
    let inflated = reported_by_instance(&gw, &server, &body).await;
    let (reported_prompt, reported_completion) =
        (inflated["prompt_tokens"].as_u64().unwrap(), inflated["completion_tokens"].as_u64().unwrap());
    let response = gw.chat(body.clone()).await;
    let status = response.status();
    let rid = request_id(&response);
    let answer = response.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let read: Value = serde_json::from_slice(&answer).unwrap();
    let usage = gw.usage(&rid).await;
    assert_eq!(usage.usage_source, UsageSource::Counted, "the gateway's count, not the report");
    states_the_charge(&read["usage"], &usage.usage);
    assert!(read["choices"][0]["message"]["content"].is_string(), "the rest of the answer as it was: {read}");
    let prompt_ceiling = tokenrouter::tokens::reservation_estimate(&serde_json::to_vec(&body).unwrap());
    assert_eq!(usage.usage.prompt_tokens, reported_prompt.min(prompt_ceiling));
    assert_eq!(usage.usage.completion_tokens, own_completion(answer_text_bytes(&answer), 0));
    assert!(usage.usage.completion_tokens < reported_completion, "{usage:?} vs {reported_completion}");
    let model = gw.state.config.load().model("community-llama").unwrap().price;
    assert_eq!(usage.cost, model.cost(&usage.usage), "charged at the gateway's count");
    let earning = ledger(&gw, owner).await.into_iter().find(|r| r.request_id.as_deref() == Some(&rid)).unwrap();
    assert_eq!(earning.amount.0, gw.state.config.load().instances.owner_earning(usage.cost.0));
    books_balance(&gw, &[gw.account_id, owner]).await;

    // Streamed: capped at what was delivered, and the usage chunk says so.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let response = gw.chat(streamed).await;
    let rid = request_id(&response);
    let text = response.text().await.unwrap();
    let usage = gw.usage(&rid).await;
    assert_eq!(usage.usage_source, UsageSource::Counted);
    assert!(usage.usage.completion_tokens < reported_completion, "{usage:?}");
    states_the_charge(&streamed_usage(&text), &usage.usage);

    // Flagged apart from the probe's detail: the next probe keeps it, and the owner reads
    // `usage` in status_detail.
    let deadline = Instant::now() + Duration::from_secs(2);
    let instance = loop {
        let instance = gw.db.instance_by_id(&id).await.unwrap().unwrap();
        if instance.usage_flagged_at.is_some() {
            break instance;
        }
        assert!(Instant::now() < deadline, "over-reporting is flagged: {instance:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(instance.status, InstanceStatus::Online, "flagged, not taken offline");
    assert!(instance.usage_flag_detail.as_deref().is_some_and(|d| d.contains("usage")), "{instance:?}");
    let probe = ProbeResult {
        revision: instance.revision,
        status: ProbeStatus::Online,
        detail: "answered in 3 ms".into(),
        latency_ms: Some(3),
        at: tokenrouter_core::clock::now_unix(),
    };
    assert!(gw.db.record_probe(&id, &probe).await.unwrap());
    let cookie = gw.session(owner).await;
    let shown: Value = gw
        .http
        .get(format!("{}/api/instances/{id}", gw.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let detail = shown["status_detail"].as_str().unwrap();
    assert!(detail.starts_with("answered in 3 ms; ") && detail.contains("usage"), "{shown}");
    assert_eq!(shown["status"], "online");
    books_balance(&gw, &[gw.account_id, owner]).await;
}
