//! Async jobs across processes (CONTRACTS §8, §9): jobs in flight when their gateway is
//! killed with SIGKILL all end after a restart, each charged at most once with no hold
//! left; on three replicas sharing PostgreSQL, each of 30 jobs is run exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{CEILING, Cluster};

/// Submits a job for `model` to `url`; its id.
async fn submit(http: &reqwest::Client, url: &str, key: &str, model: &str, n: usize) -> String {
    let body =
        json!({"model": model, "messages": [{"role": "user", "content": format!("job {n}")}], "max_tokens": 100});
    let response = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .header("prefer", "respond-async")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    job["id"].as_str().unwrap().to_owned()
}

/// Polls every job at `url` until each has ended (`limit` at most); the final jobs.
async fn all_final(http: &reqwest::Client, url: &str, key: &str, ids: &[String], limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    let mut done = Vec::new();
    for id in ids {
        loop {
            let job: Value =
                http.get(format!("{url}/api/jobs/{id}")).bearer_auth(key).send().await.unwrap().json().await.unwrap();
            if !matches!(job["status"].as_str(), Some("queued" | "in_progress")) {
                done.push(job);
                break;
            }
            assert!(Instant::now() < deadline, "job {id} did not end: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    done
}

/// Each request id is charged at most once in the account's ledger; the total charged.
async fn charged_at_most_once(cluster: &Cluster, account: i64) -> i64 {
    let ledger = cluster.db.ledger(account, 10_000).await.unwrap();
    let mut charges: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    for row in ledger.iter().filter(|r| r.kind == "charge") {
        *charges.entry(row.request_id.clone().unwrap_or_default()).or_default() += 1;
        total -= row.amount.0;
    }
    assert!(charges.values().all(|&n| n == 1), "a request charged twice: {charges:?}");
    total
}

#[tokio::test]
async fn ten_jobs_in_flight_survive_kill_dash_nine_each_charged_at_most_once() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let mut cluster = Cluster::start_on(&db_url, None, "", 1, 1500).await;
    let start = 100 * CEILING;
    let account = cluster.account("acme", start).await;
    let (_, key) = cluster.key("acme", &[]);
    let url = cluster.replicas[0].url.clone();
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(submit(&cluster.http, &url, &key, "metered", n).await);
    }
    // Four workers are mid-call (1.5 s each), six jobs wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cluster.mock().stats().request_count() >= 1, "some jobs were running");
    cluster.replicas[0].kill();

    let restarted = cluster.spawn();
    let jobs = all_final(&cluster.http, &restarted.url, &key, &ids, Duration::from_secs(30)).await;
    for job in &jobs {
        assert_eq!(job["status"], "completed", "{job}");
    }
    assert!(jobs.iter().any(|j| j["attempts"].as_u64() == Some(2)), "the interrupted ones ran again");
    cluster.no_holds_within(Duration::from_secs(5)).await;
    cluster.ledgers_add_up(&[account]).await;
    let total = charged_at_most_once(&cluster, account).await;
    let balance = cluster.db.account_by_id(account).await.unwrap().unwrap().balance.0;
    assert_eq!(start - balance, total);
    assert!(total > 0 && total <= 10 * CEILING, "{total}");
}

#[tokio::test]
async fn on_three_replicas_each_of_thirty_jobs_runs_exactly_once() {
    let cluster = Cluster::start(3, 200).await;
    let start = 100 * CEILING;
    let account = cluster.account("acme", start).await;
    let (_, key) = cluster.key("acme", &[]);
    let urls = cluster.urls();
    let submissions = (0..30).map(|n| submit(&cluster.http, &urls[n % urls.len()], &key, "metered", n));
    let ids: Vec<String> = futures_util::future::join_all(submissions).await;
    let jobs = all_final(&cluster.http, &urls[0], &key, &ids, Duration::from_secs(30)).await;
    for job in &jobs {
        assert_eq!((job["status"].as_str(), job["attempts"].as_u64()), (Some("completed"), Some(1)), "{job}");
    }
    assert_eq!(cluster.mock().stats().request_count(), 30, "each upstream call happened exactly once");
    cluster.no_holds_within(Duration::from_secs(5)).await;
    cluster.ledgers_add_up(&[account]).await;
    let total = charged_at_most_once(&cluster, account).await;
    let costs: i64 =
        jobs.iter().map(|j| tokenrouter_core::NanoUsd::parse_usd(j["cost_usd"].as_str().unwrap()).unwrap().0).sum();
    assert_eq!(total, costs, "the ledger charged what the jobs say");
}
