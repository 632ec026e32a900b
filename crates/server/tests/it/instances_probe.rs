//! The instance prober (CONTRACTS.md §7) against the mock acting as an instance: ownership
//! (an open server never goes online), the model listing, the canary's prompt tokens,
//! offline and back when the server dies and returns, hanging and HTML servers, and three
//! replicas on one PostgreSQL database never probing one instance at once.
//!
//! Every instance here is a mock on 127.0.0.1 (`allow_private_addresses = true`): nothing
//! is dialed anywhere else.

use std::time::{Duration, Instant};

use tokenrouter::config::{Config, Env};
use tokenrouter::state::AppState;
use tokenrouter_mock::{InstanceFailure, InstanceKnobs, MockConfig, MockServer};
use tokenrouter_store::{Db, Instance, InstanceModel, InstanceStatus, NanoUsd, NewInstance};

use crate::cluster::TestDatabase;
use crate::harness::Gateway;

/// What the catalog says the canary prompt gives (the mock is told to report it).
const CANARY_TOKENS: u64 = 9;
const UPSTREAM: &str = "org/llama-3-8b";
const INSTANCE_KEY: &str = "tr-instance-key-0123456789";

fn extra() -> String {
    format!(
        r#"
[instances]
allow_private_addresses = true
probe_interval_secs = 1

[[models]]
id = "community-llama"
instances = true
canary_prompt_tokens = {CANARY_TOKENS}
context_window = 8000
max_output_tokens = 1000
input_price = 1
output_price = 2
deployments = []
"#
    )
}

/// A server that knows the instance key, lists the model and answers the canary right.
fn owned() -> InstanceKnobs {
    InstanceKnobs {
        api_key: Some(INSTANCE_KEY.to_owned()),
        models: Some(vec![UPSTREAM.to_owned(), "other".to_owned()]),
        prompt_tokens: Some(CANARY_TOKENS),
        ..InstanceKnobs::default()
    }
}

async fn instance_mock(knobs: InstanceKnobs, latency_ms: u64) -> MockServer {
    let config = MockConfig { instance: knobs, latency_ms, ..MockConfig::default() };
    tokenrouter_mock::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

async fn register(db: &Db, account_id: i64, mock: &MockServer) -> Instance {
    let new = NewInstance {
        account_id,
        name: "garage box".to_owned(),
        base_url: mock.base_url(),
        region: None,
        api_key: INSTANCE_KEY.to_owned(),
        models: vec![InstanceModel { model: "community-llama".to_owned(), upstream_model: UPSTREAM.to_owned() }],
    };
    db.create_instance(&new).await.unwrap()
}

/// Waits until the instance has `status` (after a probe), within `limit`.
async fn reaches(db: &Db, id: &str, status: InstanceStatus, limit: Duration) -> Instance {
    let deadline = Instant::now() + limit;
    loop {
        let now = db.instance_by_id(id).await.unwrap().unwrap();
        if now.status == status && now.last_probe_at.is_some() {
            return now;
        }
        assert!(Instant::now() < deadline, "not {status:?} within {limit:?}: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_server_goes_online_with_its_latency() {
    let gw = Gateway::start_with(MockConfig::default(), &extra()).await;
    let mock = instance_mock(owned(), 40).await;
    let instance = register(&gw.db, gw.account_id, &mock).await;
    assert_eq!(instance.status, InstanceStatus::Pending);
    let online = reaches(&gw.db, &instance.id, InstanceStatus::Online, Duration::from_secs(3)).await;
    assert!(online.latency_ms.is_some_and(|ms| ms >= 40), "the canary's time: {online:?}");
    assert_eq!(online.status_detail, "");

    let canary = mock.stats().last_request().unwrap();
    assert_eq!(canary.path, "/v1/chat/completions");
    assert_eq!(canary.header("authorization"), Some(format!("Bearer {INSTANCE_KEY}").as_str()));
    assert_eq!((canary.body["model"].as_str(), canary.body["max_tokens"].as_u64()), (Some(UPSTREAM), Some(1)));
    assert_eq!(canary.body["stream"], false);
    assert!(mock.stats().listing_count() >= 2, "a wrong key, then the right one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_server_is_a_mismatch_and_never_online() {
    let gw = Gateway::start_with(MockConfig::default(), &extra()).await;
    let mock = instance_mock(InstanceKnobs { api_key: None, ..owned() }, 0).await;
    let instance = register(&gw.db, gw.account_id, &mock).await;
    let found = reaches(&gw.db, &instance.id, InstanceStatus::Mismatch, Duration::from_secs(3)).await;
    assert!(found.status_detail.contains("does not check the instance key"), "{}", found.status_detail);
    assert!(found.status_detail.contains("ownership cannot be proven"), "{}", found.status_detail);
    // Probed again and again, never online; it never got a canary either.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        let now = gw.db.instance_by_id(&instance.id).await.unwrap().unwrap();
        assert_ne!(now.status, InstanceStatus::Online);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mock.stats().listing_count() >= 2);
    assert_eq!(mock.stats().request_count(), 0, "no canary for a server that is not proven");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_model_or_with_another_tokenizer_is_a_mismatch() {
    let gw = Gateway::start_with(MockConfig::default(), &extra()).await;
    let wrong_model = instance_mock(InstanceKnobs { models: Some(vec!["org/qwen-7b".to_owned()]), ..owned() }, 0).await;
    let wrong_tokens = instance_mock(InstanceKnobs { prompt_tokens: Some(CANARY_TOKENS + 3), ..owned() }, 0).await;
    let first = register(&gw.db, gw.account_id, &wrong_model).await;
    let second = register(&gw.db, gw.account_id, &wrong_tokens).await;

    let first = reaches(&gw.db, &first.id, InstanceStatus::Mismatch, Duration::from_secs(3)).await;
    assert!(
        first.status_detail.contains(UPSTREAM) && first.status_detail.contains("org/qwen-7b"),
        "{}",
        first.status_detail
    );
    let second = reaches(&gw.db, &second.id, InstanceStatus::Mismatch, Duration::from_secs(3)).await;
    let detail = &second.status_detail;
    assert!(detail.contains("prompt_tokens = 12") && detail.contains(&format!("gives {CANARY_TOKENS}")), "{detail}");

    // Fixed: online at the next probe.
    wrong_tokens.set_instance(owned());
    reaches(&gw.db, &second.id, InstanceStatus::Online, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_goes_offline_and_comes_back_within_three_intervals() {
    let gw = Gateway::start_with(MockConfig::default(), &extra()).await;
    let mut mock = instance_mock(owned(), 0).await;
    let instance = register(&gw.db, gw.account_id, &mock).await;
    reaches(&gw.db, &instance.id, InstanceStatus::Online, Duration::from_secs(3)).await;

    mock.stop().await;
    let died = Instant::now();
    let offline = reaches(&gw.db, &instance.id, InstanceStatus::Offline, Duration::from_secs(3)).await;
    assert!(offline.status_detail.contains("connection refused"), "{}", offline.status_detail);
    assert!(died.elapsed() <= Duration::from_secs(3));

    mock.restart().await.unwrap();
    reaches(&gw.db, &instance.id, InstanceStatus::Online, Duration::from_secs(3)).await;

    // A server answering 500 is offline too, with the status in the detail.
    mock.update_instance(|k| k.failure = Some(InstanceFailure::Status500));
    let failing = reaches(&gw.db, &instance.id, InstanceStatus::Offline, Duration::from_secs(3)).await;
    assert!(failing.status_detail.contains("500"), "{}", failing.status_detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_server_is_offline_within_the_timeout_and_blocks_nothing() {
    let gw = Gateway::start_with(MockConfig::default(), &extra()).await;
    let hanging = instance_mock(InstanceKnobs { failure: Some(InstanceFailure::Hang), ..owned() }, 0).await;
    let healthy = instance_mock(owned(), 0).await;
    let stuck = register(&gw.db, gw.account_id, &hanging).await;
    let fine = register(&gw.db, gw.account_id, &healthy).await;

    let started = Instant::now();
    let offline = reaches(&gw.db, &stuck.id, InstanceStatus::Offline, Duration::from_secs(3)).await;
    assert!(offline.status_detail.contains("no answer within"), "{}", offline.status_detail);
    assert!(started.elapsed() < Duration::from_secs(3));
    let online = reaches(&gw.db, &fine.id, InstanceStatus::Online, Duration::from_secs(3)).await;

    // The healthy one keeps being probed while the other hangs at every probe.
    let listings = healthy.stats().listing_count();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(healthy.stats().listing_count() >= listings + 2, "probed on schedule");
    let later = gw.db.instance_by_id(&fine.id).await.unwrap().unwrap();
    assert!(later.last_probe_at > online.last_probe_at);
    // Hanging probes do not pile up: each gave up before the next began.
    assert!(hanging.stats().max_in_flight() <= 1, "{}", hanging.stats().max_in_flight());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answering_html_is_offline_with_a_readable_detail() {
    let gw = Gateway::start_with(MockConfig::default(), &extra()).await;
    let mock = instance_mock(InstanceKnobs { failure: Some(InstanceFailure::Html), ..owned() }, 0).await;
    let instance = register(&gw.db, gw.account_id, &mock).await;
    let found = reaches(&gw.db, &instance.id, InstanceStatus::Offline, Duration::from_secs(3)).await;
    assert!(found.status_detail.contains("HTML") && found.status_detail.contains("/v1"), "{}", found.status_detail);
    assert!(!found.status_detail.contains(INSTANCE_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_never_probe_one_instance_at_once() {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url).await.unwrap();
    let account = db.create_account("owner", NanoUsd::ZERO).await.unwrap();
    let config = || Config::from_toml(&extra(), &Env::default()).unwrap();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(AppState::start(config(), Db::connect(&database.url).await.unwrap()).await.unwrap());
    }
    let ids: std::collections::HashSet<&str> = replicas.iter().map(|r| r.replica.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "three replicas");

    // Slow canaries (300 ms) so that two probes of one server would overlap.
    let mut mocks = Vec::new();
    for _ in 0..9 {
        mocks.push(instance_mock(owned(), 300).await);
    }
    let started = Instant::now();
    let mut ids = Vec::new();
    for mock in &mocks {
        ids.push(register(&db, account.id, mock).await.id);
    }
    for id in &ids {
        reaches(&db, id, InstanceStatus::Online, Duration::from_secs(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let elapsed = started.elapsed().as_secs();
    for (mock, id) in mocks.iter().zip(&ids) {
        let stats = mock.stats();
        assert_eq!(stats.max_in_flight(), 1, "{id}: probed by two replicas at once");
        // One canary per interval at most, whichever replica sends it.
        assert!(stats.request_count() <= elapsed + 2, "{id}: {} canaries in {elapsed} s", stats.request_count());
        assert!(stats.request_count() >= 3, "{id}: probed on schedule");
    }
    drop(replicas);
}
