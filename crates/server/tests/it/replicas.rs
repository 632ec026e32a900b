//! Three real replicas on one PostgreSQL and one Redis behave as one gateway
//! (CONTRACTS.md §9): money and rate limits exact across them under concurrency, a
//! revoked key refused everywhere within 1 s, kill -9 leaves no hold and a ledger that
//! adds up, Redis going away costs no request, a stored response continues anywhere.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{CEILING, Cluster, OwnRedis, TestDatabase, shared_redis, unique, usd};

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

async fn statuses(responses: Vec<reqwest::Response>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for response in responses {
        statuses.push(response.status().as_u16());
        let _ = response.bytes().await;
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spend_limit_covering_ten_reservations_admits_exactly_ten_of_150_across_three_replicas() {
    let cluster = Cluster::start(3, 3000).await;
    let account = cluster.account("rich", 100 * 1_000_000_000).await;
    let limit = 10 * CEILING + CEILING / 2;
    let (key_id, key) = cluster.key("rich", &["--spend-limit", &usd(limit)]);
    let statuses = statuses(cluster.burst(&key, "metered", 150).await).await;
    assert_eq!(count(&statuses, 200), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 402), 140, "{statuses:?}");
    cluster.no_holds_within(Duration::from_secs(10)).await;
    let spent = cluster.spent(account, &key_id).await;
    assert!(spent.0 > 0 && spent.0 <= limit, "spent {spent:?} within {limit}");
    cluster.ledgers_add_up(&[account]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_balance_covering_ten_reservations_admits_exactly_ten_of_150_across_three_replicas() {
    let cluster = Cluster::start(3, 3000).await;
    let credit = 10 * CEILING + CEILING / 2;
    let account = cluster.account("small", credit).await;
    let (_, key) = cluster.key("small", &[]);
    let statuses = statuses(cluster.burst(&key, "metered", 150).await).await;
    assert_eq!(count(&statuses, 200), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 402), 140, "{statuses:?}");
    cluster.no_holds_within(Duration::from_secs(10)).await;
    let balance = cluster.db.account_by_id(account).await.unwrap().unwrap().balance;
    assert!(balance.0 >= 0 && balance.0 < credit, "never overspent: {balance:?}");
    cluster.ledgers_add_up(&[account]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpm_20_across_three_replicas_admits_exactly_20_of_60_and_says_when_to_retry() {
    let cluster = Cluster::start(3, 0).await;
    cluster.account("team", 100 * 1_000_000_000).await;
    let (_, key) = cluster.key("team", &["--rpm", "20"]);
    let responses = cluster.burst(&key, "fast", 60).await;
    let mut admitted = 0;
    let mut refused = 0;
    for response in responses {
        match response.status().as_u16() {
            200 => admitted += 1,
            429 => {
                refused += 1;
                let retry = response.headers().get("retry-after").expect("a 429 without Retry-After");
                let seconds: u64 = retry.to_str().unwrap().parse().unwrap_or_else(|_| panic!("{retry:?}"));
                assert!(seconds > 0 && seconds <= 60, "Retry-After {seconds}");
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert_eq!((admitted, refused), (20, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_with_the_cli_is_refused_by_every_replica_within_a_second() {
    let cluster = Cluster::start(3, 0).await;
    cluster.account("team", 100 * 1_000_000_000).await;
    let (key_id, key) = cluster.key("team", &[]);
    let body = json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});
    for url in cluster.urls() {
        let started = Instant::now();
        // A key minted elsewhere reaches every replica within 1 s too.
        loop {
            let response =
                cluster.http.post(format!("{url}/v1/chat/completions")).bearer_auth(&key).json(&body).send().await;
            if response.unwrap().status() == 200 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1), "{url} never admitted the new key");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    cluster.cli(&["keys", "revoke", &key_id]);
    let revoked = Instant::now();
    let polls = cluster.urls().into_iter().map(|url| {
        let (http, key, body) = (cluster.http.clone(), key.clone(), body.clone());
        async move {
            loop {
                let response =
                    http.post(format!("{url}/v1/chat/completions")).bearer_auth(&key).json(&body).send().await;
                let status = response.unwrap().status().as_u16();
                if status == 401 {
                    return revoked.elapsed();
                }
                assert_eq!(status, 200, "{url}");
                assert!(revoked.elapsed() < Duration::from_secs(5), "{url} still admits the revoked key");
            }
        }
    });
    let delays = futures_util::future::join_all(polls).await;
    let worst = delays.iter().max().unwrap();
    eprintln!("revocation reached all three replicas in {worst:?} (each: {delays:?})");
    assert!(*worst < Duration::from_secs(1), "worst delay {worst:?}");
}

/// The replicas' URLs as the load sees them: a restarted replica's new URL replaces the
/// dead one's.
type Targets = Arc<RwLock<Vec<String>>>;

/// `per_replica` closed-loop clients on every replica until stopped, counting each
/// replica's 200s, every 5xx and every request that got no answer (refused or cut
/// connection: a dead replica). A replica that is down is retried after a short pause.
fn load(targets: &Targets, http: &reqwest::Client, keys: &[String], per_replica: usize) -> Load {
    let replicas = targets.read().unwrap().len();
    let answered: Arc<Vec<AtomicUsize>> = Arc::new((0..replicas).map(|_| AtomicUsize::new(0)).collect());
    let (failures, unanswered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for replica in 0..replicas {
        for client in 0..per_replica {
            let (http, targets, stop) = (http.clone(), Arc::clone(targets), Arc::clone(&stop));
            let (answered, failures) = (Arc::clone(&answered), Arc::clone(&failures));
            let unanswered = Arc::clone(&unanswered);
            let key = keys[client % keys.len()].clone();
            tasks.push(tokio::spawn(async move {
                let body =
                    json!({"model": "metered", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100});
                while !stop.load(Ordering::Relaxed) {
                    let url = format!("{}/v1/chat/completions", targets.read().unwrap()[replica]);
                    match http.post(url).bearer_auth(&key).json(&body).send().await {
                        Ok(response) => {
                            let status = response.status();
                            let whole = response.bytes().await.is_ok();
                            if status.is_server_error() {
                                failures.fetch_add(1, Ordering::Relaxed);
                            } else if !whole {
                                unanswered.fetch_add(1, Ordering::Relaxed);
                            } else if status == 200 {
                                answered[replica].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            unanswered.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }));
        }
    }
    Load { answered, failures, unanswered, stop, tasks }
}

struct Load {
    answered: Arc<Vec<AtomicUsize>>,
    /// 5xx answers (a dead replica's refused or cut connections are not answers).
    failures: Arc<AtomicUsize>,
    unanswered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn answered(&self) -> Vec<usize> {
        self.answered.iter().map(|a| a.load(Ordering::Relaxed)).collect()
    }

    /// Stops the clients; returns how many 5xx they met and how many requests got no
    /// answer at all.
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (self.failures.load(Ordering::Relaxed), self.unanswered.load(Ordering::Relaxed))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_dash_nine_one_replica_under_load_five_times_leaves_no_hold_and_ledgers_that_add_up() {
    let mut cluster = Cluster::start(3, 20).await;
    let credit = 5 * 1_000_000_000;
    let accounts = [cluster.account("alpha", credit).await, cluster.account("beta", credit).await];
    let keys = [cluster.key("alpha", &[]).1, cluster.key("beta", &[]).1];
    let targets: Targets = Arc::new(RwLock::new(cluster.urls()));
    let load = load(&targets, &cluster.http, &keys, 4);
    for round in 0..5 {
        let victim = round % 3;
        tokio::time::sleep(Duration::from_millis(300 + 50 * round as u64)).await;
        let before = load.answered();
        cluster.replicas[victim].kill();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let after = load.answered();
        for replica in (0..3).filter(|r| *r != victim) {
            assert!(after[replica] > before[replica], "round {round}: replica {replica} stopped answering");
        }
        eprintln!("round {round}: killed replica {victim}; the others answered {before:?} → {after:?}");
        cluster.replicas[victim] = cluster.spawn();
        targets.write().unwrap()[victim] = cluster.replicas[victim].url.clone();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (failures, unanswered) = load.finish().await;
    eprintln!("{unanswered} requests met a dead replica");
    assert_eq!(failures, 0, "5xx answers");
    // Holds of a dead replica are ended by a live one within 60 s (or at its restart).
    cluster.no_holds_within(Duration::from_secs(70)).await;
    cluster.ledgers_add_up(&accounts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_stopped_mid_load_requests_keep_flowing_and_exact_limits_resume_within_five_seconds() {
    let mut redis = OwnRedis::start();
    let prefix = format!("tokenrouter:test-{}:", unique());
    let cluster = Cluster::start_on_postgres(3, 20, &redis.url(), &prefix).await;
    cluster.account("team", 100 * 1_000_000_000).await;
    // A rate-limited key, so every request goes through the counters.
    let (_, busy) = cluster.key("team", &["--rpm", "100000"]);
    let targets: Targets = Arc::new(RwLock::new(cluster.urls()));
    let load = load(&targets, &cluster.http, &[busy], 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.stop();
    let before = load.answered();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = load.answered();
    for replica in 0..3 {
        assert!(during[replica] > before[replica], "replica {replica} stopped answering without Redis");
    }
    redis.resume();
    let back = Instant::now();
    let (_, fresh) = cluster.key("team", &["--rpm", "10"]);
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(back.elapsed())).await;
    assert_eq!(load.finish().await, (0, 0), "(5xx, unanswered) while Redis was away");
    let statuses = statuses(cluster.burst(&fresh, "fast", 30).await).await;
    assert_eq!(count(&statuses, 200), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 20, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_response_stored_by_one_replica_is_continued_on_another_at_once() {
    let cluster = Cluster::start(2, 0).await;
    cluster.account("team", 100 * 1_000_000_000).await;
    let (_, key) = cluster.key("team", &[]);
    let urls = cluster.urls();
    let first = cluster
        .http
        .post(format!("{}/v1/responses", urls[0]))
        .bearer_auth(&key)
        .json(&json!({"model": "fast", "input": "Remember the word teapot."}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let id = first["id"].as_str().unwrap();
    let second = cluster
        .http
        .post(format!("{}/v1/responses", urls[1]))
        .bearer_auth(&key)
        .json(&json!({"model": "fast", "input": "What was the word?", "previous_response_id": id}))
        .send()
        .await
        .unwrap();
    let status = second.status();
    let second: Value = second.json().await.unwrap();
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["previous_response_id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_redeemed_20_times_at_once_across_three_replicas_credits_once() {
    // Each redemption from an address of its own (through a trusted proxy), so that the
    // per-address limit (10 a minute) lets all 20 reach the database at once.
    let database = TestDatabase::create().await;
    let extra = format!(
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[redis]\nkey_prefix = \"tokenrouter:test-{}:\"\n",
        unique()
    );
    let cluster = Cluster::start_on(&database.url, Some(&shared_redis()), &extra, 3, 0).await;
    let first = cluster.account("first", 0).await;
    let second = cluster.account("second", 0).await;
    let (_, first_key) = cluster.key("first", &["--scope", "management"]);
    let (_, second_key) = cluster.key("second", &["--scope", "management"]);
    let code = cluster.cli(&["codes", "create", "--amount", "7.5"]).trim().to_owned();
    let urls = cluster.urls();
    let redemptions = (0..20).map(|i| {
        let key = if i % 2 == 0 { &first_key } else { &second_key };
        cluster
            .http
            .post(format!("{}/api/redeem", urls[i % urls.len()]))
            .header("x-forwarded-for", format!("10.0.0.{}", i + 1))
            .bearer_auth(key)
            .json(&json!({"code": code}))
            .send()
    });
    let answers = futures_util::future::join_all(redemptions).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.as_ref().unwrap().status().as_u16()).collect();
    assert_eq!(count(&statuses, 200), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 400), 19, "{statuses:?}");
    let mut total = 0;
    for id in [first, second] {
        total += cluster.db.account_by_id(id).await.unwrap().unwrap().balance.0;
    }
    assert_eq!(total, 7_500_000_000, "credited exactly once");
    cluster.ledgers_add_up(&[first, second]).await;

    // A disabled account's management key stops on every replica at once.
    cluster.cli(&["accounts", "disable", "first"]);
    for url in &urls {
        let me = cluster.http.get(format!("{url}/api/me")).bearer_auth(&first_key).send().await.unwrap();
        assert_eq!(me.status(), 401, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_in_attempts_from_one_address_are_counted_across_replicas() {
    let cluster = Cluster::start(3, 0).await;
    let urls = cluster.urls();
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // 20 a minute per address, shared through Redis: spread over three replicas, the 21st
    // attempt is refused wherever it lands (each replica alone would allow 20).
    for attempt in 0..20 {
        let url = &urls[attempt % urls.len()];
        let answer = browser.get(format!("{url}/auth/link/guess{attempt}")).send().await.unwrap();
        assert_eq!(answer.status(), 302, "attempt {attempt} on {url}");
    }
    for url in &urls {
        let answer = browser.get(format!("{url}/auth/link/one-more")).send().await.unwrap();
        assert_eq!(answer.status(), 429, "{url}");
        assert!(answer.headers().contains_key("retry-after"));
    }
}
