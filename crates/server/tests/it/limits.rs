//! Rate limits and IP allowlists as a client meets them: a burst of exactly RPM, then 429
//! with a `Retry-After` that is right to the second; tokens reserved at admission and
//! given back when usage is known (streams too); `x-ratelimit-*` headers; addresses
//! refused or admitted, behind a trusted proxy too; the CLI refusing bad CIDRs; limits
//! shared by two gateways through Redis, and each on its own while Redis is away.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokenrouter_mock::MockConfig;

use crate::harness::{Gateway, expect_error, key_for, user};
use tokenrouter_core::NanoUsd;
use tokenrouter_store::NewKey;

/// A key of the gateway's account with these limits; returns the full secret.
async fn key_with(gw: &Gateway, ips: &[&str], rpm: Option<u32>, tpm: Option<u32>) -> String {
    let (mut key, secret) = key_for(gw.account_id);
    key.ips = ips.iter().map(|s| (*s).to_owned()).collect();
    (key.rpm, key.tpm) = (rpm, tpm);
    gw.add_key(&key).await;
    secret
}

fn chat(gw: &Gateway, key: &str) -> reqwest::RequestBuilder {
    gw.http.post(format!("{}/v1/chat/completions", gw.url)).bearer_auth(key)
}

/// A chat body whose text is exactly `tokens` × 4 characters ("user" and one long word,
/// one token to the mock): the gateway admits it with `tokens` prompt tokens.
fn body_of_tokens(tokens: usize, stream: bool, max_tokens: Option<u64>) -> String {
    let stream = if stream { r#""stream":true,"# } else { "" };
    let max_tokens = max_tokens.map(|n| format!(r#""max_tokens":{n},"#)).unwrap_or_default();
    let word = "x".repeat(tokens * 4 - "user".len());
    format!(r#"{{"model":"gpt-4o-mini",{stream}{max_tokens}"messages":[{{"role":"user","content":"{word}"}}]}}"#)
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).unwrap_or_else(|| panic!("no {name}")).to_str().unwrap().to_owned()
}

fn number(response: &reqwest::Response, name: &str) -> u64 {
    header(response, name).parse().unwrap()
}

#[tokio::test]
async fn fifty_at_once_with_rpm_20_admits_exactly_20_and_says_when_to_retry() {
    let gw = Gateway::start().await;
    let key = key_with(&gw, &[], Some(20), None).await;
    let body = json!({"model": "gpt-4o-mini", "messages": user("hi")});
    let responses = join_all((0..50).map(|_| chat(&gw, &key).json(&body).send())).await;
    let responses: Vec<reqwest::Response> = responses.into_iter().map(Result::unwrap).collect();

    let (admitted, refused): (Vec<_>, Vec<_>) = responses.into_iter().partition(|r| r.status() == 200);
    assert_eq!(admitted.len(), 20, "exactly the limit");
    assert_eq!(refused.len(), 30);
    for response in &admitted {
        assert_eq!(header(response, "x-ratelimit-limit-requests"), "20");
        assert!(number(response, "x-ratelimit-remaining-requests") < 20);
        assert!(!response.headers().contains_key("x-ratelimit-limit-tokens"), "no token limit set");
    }
    for response in refused {
        // 20 admitted at once fill the minute; the next fits one interval (60 s / 20)
        // after the first admission, which was well under a second ago: 3 s, rounded up.
        assert_eq!(header(&response, "retry-after"), "3");
        assert_eq!(header(&response, "x-ratelimit-limit-requests"), "20");
        assert_eq!(header(&response, "x-ratelimit-remaining-requests"), "0");
        assert!(header(&response, "x-ratelimit-reset-requests").ends_with('s'));
        let body = expect_error(response, 429, "rate_limited").await;
        assert_eq!(body["error"]["type"], "rate_limit_error");
    }
    // A client that waits as told gets in, and only one more fits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(chat(&gw, &key).json(&body).send().await.unwrap().status(), 200);
    let again = chat(&gw, &key).json(&body).send().await.unwrap();
    assert_eq!(again.status(), 429);
    assert_eq!(header(&again, "retry-after"), "3");
}

#[tokio::test]
async fn rate_limit_headers_count_down() {
    let gw = Gateway::start().await;
    let key = key_with(&gw, &[], Some(20), Some(100_000)).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = chat(&gw, &key).json(&json!({"model": "gpt-4o-mini", "messages": user("hi")})).send().await;
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit-tokens"), "100000");
        assert!(number(&response, "x-ratelimit-remaining-tokens") < 100_000);
        assert!(header(&response, "x-ratelimit-reset-tokens").ends_with('s'));
        seen.push(number(&response, "x-ratelimit-remaining-requests"));
    }
    assert_eq!(seen, [19, 18, 17]);
    let unlimited = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("hi")})).await;
    assert!(!unlimited.headers().contains_key("x-ratelimit-limit-requests"), "a key without limits");
}

#[tokio::test]
async fn tokens_are_held_while_in_flight_and_given_back_at_settlement() {
    // The mock answers after 300 ms, so the first request is in flight when the second comes.
    let gw = Gateway::start_with(MockConfig { latency_ms: 300, ..MockConfig::default() }, "").await;
    let key = key_with(&gw, &[], None, Some(100)).await;
    let body = body_of_tokens(69, false, None);
    let first = tokio::spawn(chat(&gw, &key).header("content-type", "application/json").body(body.clone()).send());
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.mock.stats().request_count() == 0 {
        assert!(Instant::now() < deadline, "the first request never reached the mock");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let second = chat(&gw, &key).header("content-type", "application/json").body(body.clone()).send().await.unwrap();
    // 69 + 69 tokens of 100 a minute: 38 too many, 0.6 s each: 22.8 s, rounded up.
    assert_eq!(header(&second, "retry-after"), "23");
    assert_eq!(header(&second, "x-ratelimit-remaining-tokens"), "31");
    expect_error(second, 429, "rate_limited").await;

    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    let remaining = number(&first, "x-ratelimit-remaining-tokens");
    let used = first.json::<Value>().await.unwrap()["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used < 31, "the mock's answer is small: {used}");
    assert!((100 - used..=101 - used).contains(&remaining), "settled to {used} used: {remaining} left");
    let third = chat(&gw, &key).header("content-type", "application/json").body(body).send().await.unwrap();
    assert_eq!(third.status(), 200, "the estimate's excess came back");

    // A stream settles to its usage when it ends.
    let key = key_with(&gw, &[], None, Some(100)).await;
    let stream =
        chat(&gw, &key).header("content-type", "application/json").body(body_of_tokens(90, true, None)).send().await;
    let text = stream.unwrap().text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    let after =
        chat(&gw, &key).header("content-type", "application/json").body(body_of_tokens(69, false, None)).send().await;
    assert_eq!(after.unwrap().status(), 200, "the stream gave back what it did not use");
}

#[tokio::test]
async fn twelve_at_once_admit_exactly_the_tpm_over_the_reservation() {
    // Each request reserves 100 prompt tokens (400 characters of text) + 100 max_tokens:
    // 1000 a minute admit exactly 5. The mock holds the answers so none settles before
    // all 12 are decided.
    let gw = Gateway::start_with(MockConfig { latency_ms: 500, ..MockConfig::default() }, "").await;
    let key = key_with(&gw, &[], None, Some(1000)).await;
    let body = body_of_tokens(100, false, Some(100));
    let send = || chat(&gw, &key).header("content-type", "application/json").body(body.clone()).send();
    let responses = join_all((0..12).map(|_| send())).await;
    let responses: Vec<reqwest::Response> = responses.into_iter().map(Result::unwrap).collect();

    let (admitted, refused): (Vec<_>, Vec<_>) = responses.into_iter().partition(|r| r.status() == 200);
    assert_eq!(admitted.len(), 5, "⌊1000 ÷ 200⌋");
    assert_eq!(refused.len(), 7);
    for response in refused {
        // 200 tokens more than the bucket holds, at 1000 a minute: 12 s.
        assert_eq!(header(&response, "retry-after"), "12");
        assert_eq!(header(&response, "x-ratelimit-limit-tokens"), "1000");
        expect_error(response, 429, "rate_limited").await;
    }
}

#[tokio::test]
async fn ip_allowlists_refuse_other_addresses_on_every_authenticated_route() {
    let gw = Gateway::start().await;
    let elsewhere = key_with(&gw, &["10.0.0.0/8"], None, None).await;
    let here = key_with(&gw, &["127.0.0.1/32", "::1"], None, None).await;
    let body = json!({"model": "gpt-4o-mini", "messages": user("hi")});

    let refused = chat(&gw, &elsewhere).json(&body).send().await.unwrap();
    let error = expect_error(refused, 403, "ip_not_allowed").await;
    assert_eq!(error["error"]["type"], "permission_error");
    assert!(error["error"]["message"].as_str().unwrap().contains("127.0.0.1"), "{error}");
    for path in ["/v1/models", "/api/whoami"] {
        let get = |key: &str| gw.http.get(format!("{}{path}", gw.url)).bearer_auth(key.to_owned()).send();
        expect_error(get(&elsewhere).await.unwrap(), 403, "ip_not_allowed").await;
        assert_eq!(get(&here).await.unwrap().status(), 200, "{path}");
    }
    assert_eq!(chat(&gw, &here).json(&body).send().await.unwrap().status(), 200);
    let spoofed = chat(&gw, &elsewhere).header("x-forwarded-for", "10.1.2.3").json(&body).send().await.unwrap();
    expect_error(spoofed, 403, "ip_not_allowed").await;
}

#[tokio::test]
async fn forwarded_for_is_honoured_only_from_a_trusted_proxy() {
    let gw = Gateway::start_with(MockConfig::default(), "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n").await;
    let key = key_with(&gw, &["10.0.0.0/8"], None, None).await;
    let body = json!({"model": "gpt-4o-mini", "messages": user("hi")});
    let send = |xff: Option<&'static str>| {
        let request = chat(&gw, &key).json(&body);
        match xff {
            Some(value) => request.header("x-forwarded-for", value),
            None => request,
        }
        .send()
    };
    assert_eq!(send(Some("10.1.2.3")).await.unwrap().status(), 200);
    assert_eq!(send(Some("8.8.8.8, 10.1.2.3, 127.0.0.1")).await.unwrap().status(), 200, "proxies skipped");
    for refused in [None, Some("8.8.8.8"), Some("10.1.2.3, 8.8.8.8"), Some("not-an-address")] {
        expect_error(send(refused).await.unwrap(), 403, "ip_not_allowed").await;
    }
}

#[test]
fn keys_create_refuses_addresses_that_are_not_cidrs() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tokenrouter"))
            .current_dir(dir.path())
            .env_remove("TOKENROUTER_CONFIG")
            .env_remove("TOKENROUTER_DATABASE_URL")
            .env("RUST_LOG", "warn")
            .args(["--database", "sqlite://cli.db"])
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["accounts", "create", "team"]).status.success());
    let created = run(&["keys", "create", "--account", "team", "--ips", "10.0.0.0/8, ::1,192.168.1.7", "--rpm", "5"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    for bad in [&["--ips", "10.0.0.0/33"][..], &["--ips", "10.0.0.0/8,localhost"], &["--rpm", "0"]] {
        let output = run(&[&["keys", "create", "--account", "team"][..], bad].concat());
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        assert!(!output.stderr.is_empty());
    }
}

#[test]
fn trusted_proxies_must_be_cidrs_or_addresses() {
    use tokenrouter::config::{Config, Env};
    let toml = crate::harness::config_toml("http://127.0.0.1:1/v1", "[server]\ntrusted_proxies = [\"::1\", \"proxy\"]");
    let errors = Config::from_toml(&toml, &Env::default()).unwrap_err().to_string();
    assert!(errors.contains("server.trusted_proxies[1]: 'proxy'"), "{errors}");
    assert!(!errors.contains("trusted_proxies[0]"), "{errors}");
}

/// The Redis of these tests (`TOKENROUTER_TEST_REDIS_URL`, default the local one).
fn redis_url() -> String {
    std::env::var("TOKENROUTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `[redis]` for a gateway, with a prefix of its own test.
fn redis_toml(url: &str, prefix: &str) -> String {
    format!("[redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n")
}

/// The same key (id and secret) in each gateway's store, with this requests limit.
async fn shared_key(gateways: &[&Gateway], rpm: u32) -> String {
    let (mut key, secret): (NewKey, String) = key_for(gateways[0].account_id);
    key.rpm = Some(rpm);
    for gw in gateways {
        key.account_id = gw.account_id;
        gw.add_key(&key).await;
    }
    secret
}

/// `n` requests at once, alternating between the gateways.
async fn spread(gateways: &[&Gateway], key: &str, n: usize) -> Vec<reqwest::Response> {
    let body = json!({"model": "gpt-4o-mini", "messages": user("hi")});
    let sends = (0..n).map(|i| chat(gateways[i % gateways.len()], key).json(&body).send());
    join_all(sends).await.into_iter().map(Result::unwrap).collect()
}

fn admitted(responses: &[reqwest::Response]) -> usize {
    responses.iter().filter(|r| r.status() == 200).count()
}

#[tokio::test]
async fn two_gateways_sharing_redis_admit_exactly_the_limit_between_them() {
    let extra = redis_toml(&redis_url(), &format!("tokenrouter-it:{}:", uuid::Uuid::now_v7()));
    let (a, b) = (
        Gateway::start_with(MockConfig::default(), &extra).await,
        Gateway::start_with(MockConfig::default(), &extra).await,
    );
    for gw in [&a, &b] {
        assert!(
            !gw.state.limits.redis_fallback(),
            "these tests need a Redis at {} (TOKENROUTER_TEST_REDIS_URL)",
            redis_url()
        );
    }
    let key = shared_key(&[&a, &b], 20).await;
    let responses = spread(&[&a, &b], &key, 60).await;
    assert_eq!(admitted(&responses), 20, "exactly the limit, over both replicas");
    for response in responses.iter().filter(|r| r.status() != 200) {
        assert_eq!(response.status(), 429);
        assert_eq!(header(response, "retry-after"), "3");
        assert_eq!(header(response, "x-ratelimit-remaining-requests"), "0");
    }
    assert!(!a.state.limits.redis_fallback() && !b.state.limits.redis_fallback());
}

#[tokio::test]
async fn a_request_refused_for_funds_takes_nothing_from_the_rate_limit() {
    let extra = redis_toml(&redis_url(), &format!("tokenrouter-it:{}:", uuid::Uuid::now_v7()));
    for gw in [Gateway::start().await, Gateway::start_with(MockConfig::default(), &extra).await] {
        let account = gw.db.create_account("empty", NanoUsd::ZERO).await.unwrap();
        let (mut key, secret) = key_for(account.id);
        key.rpm = Some(2);
        gw.add_key(&key).await;
        let body = json!({"model": "slow-model", "messages": user("hi")});
        for _ in 0..5 {
            let response = chat(&gw, &secret).json(&body).send().await.unwrap();
            expect_error(response, 402, "insufficient_quota").await;
            // Given back in the background (with Redis, in the next batch of corrections).
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

/// A `redis-server` on a port, stopped when dropped.
struct RedisServer(std::process::Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn without_redis_each_gateway_limits_on_its_own_until_redis_is_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let extra = redis_toml(&format!("redis://127.0.0.1:{port}"), "tokenrouter-it:");
    let a = Gateway::start_with(MockConfig::default(), &extra).await;
    assert!(a.state.limits.redis_fallback(), "nothing listens on {port}");
    assert!(fallback_gauge(&a).await.contains("tokenrouter_redis_fallback 1"));
    let key = shared_key(&[&a], 2).await;
    let responses = spread(&[&a], &key, 5).await;
    assert_eq!(admitted(&responses), 2, "limited by this replica's own counters");

    let started = Instant::now();
    let redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed for this test");
    let redis = RedisServer(redis);
    while a.state.limits.redis_fallback() {
        assert!(started.elapsed() < Duration::from_secs(5), "still on its own counters 5 s after Redis started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fallback_gauge(&a).await.contains("tokenrouter_redis_fallback 0"));
    // Shared again: a second gateway and the first admit the limit between them.
    let b = Gateway::start_with(MockConfig::default(), &extra).await;
    assert!(!b.state.limits.redis_fallback());
    let key = shared_key(&[&a, &b], 3).await;
    let responses = spread(&[&a, &b], &key, 9).await;
    assert_eq!(admitted(&responses), 3, "exactly the limit, over both replicas");

    // Redis goes away again: requests are still answered at once, on each replica's counters.
    drop(redis);
    let key = shared_key(&[&a], 2).await;
    let sent = Instant::now();
    let responses = spread(&[&a], &key, 3).await;
    assert!(sent.elapsed() < Duration::from_secs(2), "waited {:?} on a dead Redis", sent.elapsed());
    assert_eq!(admitted(&responses), 2);
    assert!(a.state.limits.redis_fallback());
}

/// `GET /metrics` as Prometheus scrapes it.
async fn fallback_gauge(gw: &Gateway) -> String {
    let response = gw.http.get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    response.text().await.unwrap()
}
