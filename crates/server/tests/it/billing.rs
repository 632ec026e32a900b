//! Prepaid billing: reservations against the key's spend limit and the account's balance
//! hold under concurrency, every hold ends, credits arrive without a restart, and a
//! killed gateway leaves no hold open and a ledger that adds up.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::json;
use tokenrouter::config::{Config, Env};
use tokenrouter::state::AppState;
use tokenrouter_core::NanoUsd;
use tokenrouter_store::{Db, HoldOutcome, NewHold};

use crate::cluster::CEILING;
use crate::harness::{Gateway, config_toml, expect_error, key_for, user};

/// Free input, $1 per 1M output tokens: a request with max_tokens 100 reserves exactly
/// 100 × 1,000 = 100,000 nano-USD, whatever its prompt.
const PRICED: &str = r#"
[[providers]]
name = "slow"
kind = "openai"
base_url = "{mock}/v1"

[[models]]
id = "metered"
context_window = 10000
max_output_tokens = 1000
input_price = 0
output_price = 1
deployments = [ { provider = "slow", upstream_model = "m@latency_ms=1000" } ]
"#;

async fn key(gw: &Gateway, account_id: i64, spend_limit: Option<NanoUsd>) -> String {
    let (mut key, secret) = key_for(account_id);
    key.spend_limit = spend_limit;
    gw.add_key(&key).await;
    secret
}

/// Sends `n` requests at once with this key; returns their statuses.
async fn burst(gw: &Gateway, key: &str, n: usize) -> Vec<u16> {
    let body = json!({"model": "metered", "messages": user("hi"), "max_tokens": 100});
    let requests =
        (0..n).map(|_| gw.http.post(format!("{}/v1/chat/completions", gw.url)).bearer_auth(key).json(&body).send());
    let responses = futures_util::future::join_all(requests).await;
    let mut statuses = Vec::new();
    for response in responses {
        let response = response.unwrap();
        let status = response.status().as_u16();
        if status == 402 {
            expect_error(response, 402, "insufficient_quota").await;
        }
        statuses.push(status);
    }
    statuses
}

async fn no_holds_left(gw: &Gateway, account_id: i64) {
    gw.state.usage.flush().await;
    assert_eq!(gw.db.held(account_id).await.unwrap(), NanoUsd::ZERO, "in the store");
    assert!(gw.db.open_holds().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_spend_limit_covering_ten_reservations_admits_exactly_ten_of_two_hundred() {
    let gw = Gateway::start_with(Default::default(), PRICED).await;
    let limit = NanoUsd(10 * CEILING + CEILING / 2);
    let key = key(&gw, gw.account_id, Some(limit)).await;
    let statuses = burst(&gw, &key, 200).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 190);
    no_holds_left(&gw, gw.account_id).await;
    let spent = gw.db.list_keys(gw.account_id).await.unwrap().into_iter().find(|k| key.contains(&k.id)).unwrap().spent;
    assert!(spent.0 > 0 && spent <= limit, "spent {spent:?} within {limit:?}");
    assert_eq!(spent.0, 10 * 16 * 1_000, "ten answers of 16 tokens at $1/1M");
}

#[tokio::test]
async fn an_account_balance_covering_ten_reservations_admits_exactly_ten_of_two_hundred() {
    let gw = Gateway::start_with(Default::default(), PRICED).await;
    let account = gw.db.create_account("small", NanoUsd(10 * CEILING + CEILING / 2)).await.unwrap();
    let key = key(&gw, account.id, None).await;
    let statuses = burst(&gw, &key, 200).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "{statuses:?}");
    no_holds_left(&gw, account.id).await;
    let balance = gw.db.account_by_id(account.id).await.unwrap().unwrap().balance;
    assert_eq!(balance.0, 10 * CEILING + CEILING / 2 - 10 * 16_000);
    assert_eq!(gw.db.ledger_sum(account.id).await.unwrap(), balance);
}

#[tokio::test]
async fn credits_written_elsewhere_arrive_without_a_restart() {
    let gw = Gateway::start_with(Default::default(), PRICED.replace("m@latency_ms=1000", "m").as_str()).await;
    let account = gw.db.create_account("empty", NanoUsd::ZERO).await.unwrap();
    let key = key(&gw, account.id, None).await;
    assert_eq!(burst(&gw, &key, 1).await, [402]);
    gw.db.credit("empty", NanoUsd::parse_usd("1").unwrap(), "top-up").await.unwrap();
    let started = Instant::now();
    while burst(&gw, &key, 1).await != [200] {
        assert!(started.elapsed() < Duration::from_secs(2), "the credit never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    no_holds_left(&gw, account.id).await;
}

#[tokio::test]
async fn with_billing_off_usage_is_metered_but_no_balance_is_enforced() {
    let extra = format!("[server]\nbilling = \"off\"\n{}", PRICED.replace("m@latency_ms=1000", "m"));
    let gw = Gateway::start_with(Default::default(), &extra).await;
    let account = gw.db.create_account("internal", NanoUsd::ZERO).await.unwrap();
    let key = key(&gw, account.id, None).await;
    assert_eq!(burst(&gw, &key, 3).await, [200, 200, 200]);
    no_holds_left(&gw, account.id).await;
    let balance = gw.db.account_by_id(account.id).await.unwrap().unwrap().balance;
    assert_eq!(balance.0, -3 * 16_000, "metered and charged, not enforced");
    assert_eq!(gw.db.ledger_sum(account.id).await.unwrap(), balance);
}

#[tokio::test]
async fn holds_left_by_a_crash_are_released_on_start() {
    let gw = Gateway::start().await;
    // A hold of a process that never announced itself (or died long ago).
    let orphan = NewHold {
        request_id: "req_orphan".into(),
        account_id: gw.account_id,
        key_id: gw.key_id.clone(),
        amount: NanoUsd(123),
        enforce: true,
        replica: "rep_gone".into(),
        model: "gpt-4o-mini".into(),
        endpoint: "chat.completions".into(),
        stream: false,
        created_at: 0,
    };
    assert_eq!(gw.db.hold(&orphan).await.unwrap(), HoldOutcome::Held);
    assert_eq!(gw.db.held(gw.account_id).await.unwrap(), NanoUsd(123));
    let config = Config::from_toml(&config_toml(&gw.mock.base_url(), ""), &Env::default()).unwrap();
    let _restarted = AppState::start(config, gw.db.clone()).await.unwrap();
    assert!(gw.db.open_holds().await.unwrap().is_empty());
    assert_eq!(gw.db.ledger_sum(gw.account_id).await.unwrap(), gw.balance().await, "no money moved");
}

/// Starts the real binary on the database; returns it and its address (the caller kills
/// and waits for it).
fn spawn_gateway(dir: &std::path::Path, db_url: &str) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenrouter"));
    command.args(["--database", db_url, "--config", "gw.toml", "serve", "--listen", "127.0.0.1:0"]).current_dir(dir);
    let (child, addr, mut stderr) = crate::harness::spawn_listening(command);
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, format!("http://{addr}"))
}

#[tokio::test]
async fn kill_dash_nine_under_load_five_times_leaves_no_hold_and_a_ledger_that_adds_up() {
    let mock = tokenrouter_mock::start("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("crash.db").display());
    let db = Db::connect(&db_url).await.unwrap();
    let credit = NanoUsd::parse_usd("5").unwrap();
    let account = db.create_account("crashy", credit).await.unwrap();
    let (key, secret) = key_for(account.id);
    db.insert_key(&key).await.unwrap();
    let slow =
        PRICED.replace("{mock}", mock.base_url().trim_end_matches("/v1")).replace("latency_ms=1000", "latency_ms=20");
    std::fs::write(dir.path().join("gw.toml"), slow).unwrap();
    let http = reqwest::Client::new();
    let mut total_answered = 0;
    for round in 0..5 {
        let (mut child, addr) = spawn_gateway(dir.path(), &db_url);
        let url = format!("{addr}/v1/chat/completions");
        // Eight clients in closed loops until the gateway dies under them.
        let worker = |http: reqwest::Client, url: String, key: String| async move {
            let mut answered = 0;
            while let Ok(response) = http
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({"model": "metered", "messages": user("hi"), "max_tokens": 100}))
                .send()
                .await
            {
                answered += usize::from(response.status() == 200 && response.bytes().await.is_ok());
            }
            answered
        };
        let load = (0..8).map(|_| worker(http.clone(), url.clone(), secret.clone()));
        let killer = async {
            tokio::time::sleep(Duration::from_millis(150 + round * 40)).await;
            child.kill().unwrap();
        };
        let (answered, ()) = tokio::join!(futures_util::future::join_all(load), killer);
        let _ = child.wait();
        let answered: usize = answered.iter().sum();
        assert!(answered > 0, "round {round}: the load ran");
        total_answered += answered;
        // Restart: the orphaned holds are released; nothing else moves.
        let (mut again, _) = spawn_gateway(dir.path(), &db_url);
        assert!(db.open_holds().await.unwrap().is_empty(), "round {round}: holds left open");
        again.kill().unwrap();
        let _ = again.wait();
    }
    let balance = db.account_by_id(account.id).await.unwrap().unwrap().balance;
    assert_eq!(db.ledger_sum(account.id).await.unwrap(), balance, "balance = sum of ledger rows");
    let charged: i64 =
        db.ledger(account.id, 100_000).await.unwrap().iter().filter(|r| r.kind == "charge").map(|r| -r.amount.0).sum();
    assert_eq!(balance.0, credit.0 - charged, "balance = credits − settled usage");
    // Every answer a client received was charged (16 tokens at $1/1M each), even those
    // answered just before a kill: the usage journal carries them over the restart.
    assert!(charged >= total_answered as i64 * 16_000, "charged {charged} for {total_answered} answers");
    assert!(db.usage_count().await.unwrap() >= total_answered as i64);
}

#[tokio::test]
async fn a_request_in_flight_has_its_hold_stored_until_it_settles() {
    let gw = Gateway::start_with(Default::default(), PRICED).await;
    let key = key(&gw, gw.account_id, None).await;
    let request = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .json(&json!({"model": "metered", "messages": user("hi"), "max_tokens": 100}))
        .send();
    let pending = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(gw.db.held(gw.account_id).await.unwrap(), NanoUsd(CEILING), "a crash now would find it");
    assert_eq!(pending.await.unwrap().unwrap().status(), 200);
    no_holds_left(&gw, gw.account_id).await;
}

#[tokio::test]
async fn a_request_for_several_choices_holds_the_output_limit_of_each() {
    let gw = Gateway::start_with(Default::default(), PRICED).await;
    let account = gw.db.create_account("three", NanoUsd(3 * CEILING - 1)).await.unwrap();
    let key = key(&gw, account.id, None).await;
    let ask = |n: u64| {
        let body = json!({"model": "metered", "messages": user("hi"), "max_tokens": 100, "n": n});
        gw.http.post(format!("{}/v1/chat/completions", gw.url)).bearer_auth(&key).json(&body).send()
    };
    expect_error(ask(3).await.unwrap(), 402, "insufficient_quota").await;
    let pending = tokio::spawn(ask(2));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(gw.db.held(account.id).await.unwrap(), NanoUsd(2 * CEILING), "two choices of 100 tokens");
    assert_eq!(pending.await.unwrap().unwrap().status(), 200);
    no_holds_left(&gw, account.id).await;
}

#[tokio::test]
async fn a_client_that_leaves_before_the_answer_still_gets_a_usage_row_and_no_open_hold() {
    let gw = Gateway::start_with(Default::default(), PRICED).await;
    let key = key(&gw, gw.account_id, None).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let gone = impatient
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .json(&json!({"model": "metered", "messages": user("hi"), "max_tokens": 100}))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up before the 1 s answer");
    let started = Instant::now();
    loop {
        gw.state.usage.flush().await;
        if gw.db.usage_count().await.unwrap() == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "no usage row for the abandoned request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    no_holds_left(&gw, gw.account_id).await;
    assert_eq!(gw.db.ledger_sum(gw.account_id).await.unwrap(), gw.balance().await);
}
