//! The limiter with an injected clock: bursts, refusals with their exact wait, token
//! settlement both ways, and the headers.

use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn key(id: &str, rpm: Option<u32>, tpm: Option<u32>) -> KeyRow {
    KeyRow { id: id.into(), rpm, tpm, ..KeyRow::default() }
}

fn admit(limits: &Limits, key: &KeyRow, tokens: u64, now: Instant) -> Result<Admission, ApiError> {
    match &limits.counters {
        Counters::Local(local) => local.admit(key, tokens, now),
        Counters::Redis(_) => panic!("these tests use local counters"),
    }
}

fn refusal(result: Result<Admission, ApiError>) -> (Duration, &'static str) {
    match result {
        Err(ApiError::RateLimited { retry_after, limit }) => (retry_after, limit),
        Err(other) => panic!("not a rate limit: {other}"),
        Ok(_) => panic!("admitted"),
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers[name].to_str().unwrap().to_owned()
}

#[test]
fn requests_burst_to_the_limit_then_wait_one_interval() {
    let limits = Limits::local();
    let k = key("rpm", Some(20), None);
    let t0 = Instant::now();
    for _ in 0..20 {
        admit(&limits, &k, 1_000_000, t0).unwrap();
    }
    assert_eq!(refusal(admit(&limits, &k, 0, t0)), (3 * SECOND, "requests"));
    assert_eq!(refusal(admit(&limits, &k, 0, t0 + SECOND / 2)).0, SECOND * 5 / 2);
    assert!(admit(&limits, &k, 0, t0 + 3 * SECOND).is_ok());
    assert_eq!(refusal(admit(&limits, &k, 0, t0 + 3 * SECOND)).0, 3 * SECOND);
    assert!(admit(&limits, &key("other", Some(20), None), 0, t0).is_ok(), "keys have their own buckets");
    let unlimited = key("free", None, Some(0));
    for _ in 0..1000 {
        admit(&limits, &unlimited, u64::MAX, t0).unwrap().settle_at(0, t0);
    }
}

#[test]
fn tokens_are_reserved_then_settled_to_actual_use() {
    let limits = Limits::local();
    let k = key("tpm", None, Some(100));
    let t0 = Instant::now();
    let first = admit(&limits, &k, 60, t0).unwrap();
    assert_eq!(refusal(admit(&limits, &k, 60, t0)), (12 * SECOND, "tokens"));
    first.settle_at(10, t0);
    let second = admit(&limits, &k, 60, t0).expect("capacity came back");
    // Used more than estimated: the excess is charged.
    second.settle_at(90, t0);
    assert_eq!(refusal(admit(&limits, &k, 1, t0)).1, "tokens");
    // Dropped unsettled: the estimate stands (100 used after 60 s drained 100).
    let t1 = t0 + 60 * SECOND;
    drop(admit(&limits, &k, 100, t1).unwrap());
    assert_eq!(refusal(admit(&limits, &k, 60, t1)).0, 36 * SECOND);
}

#[test]
fn both_limits_must_admit_and_a_refusal_charges_neither() {
    let limits = Limits::local();
    let k = key("both", Some(2), Some(100));
    let t0 = Instant::now();
    admit(&limits, &k, 90, t0).unwrap();
    let (wait, limit) = refusal(admit(&limits, &k, 20, t0));
    assert_eq!((wait, limit), (SECOND * 6, "tokens"));
    admit(&limits, &k, 10, t0).unwrap();
    // Requests: 2 used, the 3rd waits 30 s; tokens would wait 6 s: the later wins.
    assert_eq!(refusal(admit(&limits, &k, 10, t0)), (30 * SECOND, "requests"));
    let mut headers = HeaderMap::new();
    limits.stamp(&k, &mut headers, t0);
    assert_eq!(header(&headers, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), "0");
    assert_eq!(header(&headers, "x-ratelimit-reset-requests"), "1m0s");
    assert_eq!(header(&headers, "x-ratelimit-limit-tokens"), "100");
    assert_eq!(header(&headers, "x-ratelimit-remaining-tokens"), "0");
    assert_eq!(header(&headers, "x-ratelimit-reset-tokens"), "1m0s");
    let mut later = HeaderMap::new();
    limits.stamp(&k, &mut later, t0 + SECOND * 3 / 2);
    assert_eq!(header(&later, "x-ratelimit-remaining-tokens"), "2");
    assert_eq!(header(&later, "x-ratelimit-reset-tokens"), "58.5s");
}

#[test]
fn headers_only_for_keys_with_limits_and_durations_in_go_format() {
    let limits = Limits::local();
    let mut headers = HeaderMap::new();
    limits.stamp(&key("none", None, None), &mut headers, Instant::now());
    assert!(headers.is_empty());
    limits.stamp(&key("fresh", Some(60), None), &mut headers, Instant::now());
    assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), "60");
    assert_eq!(header(&headers, "x-ratelimit-reset-requests"), "0s");
    assert!(!headers.contains_key("x-ratelimit-limit-tokens"));
    let ms = 1_000_000;
    let cases = [(0, "0s"), (1, "1ms"), (250 * ms, "250ms"), (1000 * ms, "1s"), (2500 * ms, "2.5s")];
    for (nanos, text) in cases.into_iter().chain([(360_000 * ms, "6m0s"), (3_612_000 * ms, "1h0m12s")]) {
        assert_eq!(duration_text(nanos), text);
    }
    assert_eq!(duration_text(17_142 * ms + 1), "17.143s");
}

#[test]
fn a_request_refused_after_admission_gives_back_its_request_and_tokens() {
    let limits = Limits::local();
    let k = key("cancel", Some(2), Some(100));
    let t0 = Instant::now();
    admit(&limits, &k, 30, t0).unwrap();
    let second = admit(&limits, &k, 50, t0).unwrap();
    assert_eq!(refusal(admit(&limits, &k, 10, t0)).1, "requests");
    // Refused afterwards (no funds): as if never admitted.
    second.cancel_at(t0);
    let third = admit(&limits, &k, 70, t0).expect("its request and its 50 tokens came back");
    assert_eq!(refusal(admit(&limits, &k, 0, t0)).1, "requests");
    third.cancel_at(t0);
    let mut headers = HeaderMap::new();
    limits.stamp(&k, &mut headers, t0);
    assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), "1");
    assert_eq!(header(&headers, "x-ratelimit-remaining-tokens"), "70");
    // A key with only a requests limit gives its request back too.
    let rpm_only = key("cancel-rpm", Some(1), None);
    admit(&limits, &rpm_only, 0, t0).unwrap().cancel_at(t0);
    assert!(admit(&limits, &rpm_only, 0, t0).is_ok());
}

/// Two replicas on the Redis of the tests (`TOKENROUTER_TEST_REDIS_URL`): what one
/// settles, the other sees, batched in the background.
#[tokio::test]
async fn with_redis_settlements_and_cancellations_reach_every_replica() {
    let url = std::env::var("TOKENROUTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("tokenrouter-test:{}:", uuid::Uuid::now_v7());
    let (a, b) = (Limits::redis(&url, &prefix).await, Limits::redis(&url, &prefix).await);
    assert!(!a.redis_fallback(), "this test needs a Redis at TOKENROUTER_TEST_REDIS_URL");
    let k = key("shared", Some(3), Some(100));
    let settled = || tokio::time::sleep(Duration::from_millis(50));
    let first = a.admit(&k, 60, Instant::now()).await.unwrap();
    assert_eq!(refusal(b.admit(&k, 60, Instant::now()).await).1, "tokens");
    first.settle(10);
    settled().await;
    let second = b.admit(&k, 60, Instant::now()).await.expect("the refund reached Redis");
    // The mirror serves the headers: 10 + 60 tokens and 2 requests used.
    let mut headers = HeaderMap::new();
    b.stamp(&k, &mut headers, Instant::now());
    let tokens_left: u64 = header(&headers, "x-ratelimit-remaining-tokens").parse().unwrap();
    assert!((30..=31).contains(&tokens_left), "{tokens_left} (30, and what the last few ms drained)");
    assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), "1");
    second.cancel();
    settled().await;
    let third = a.admit(&k, 90, Instant::now()).await.expect("the cancellation gave back 60 tokens");
    let mut headers = HeaderMap::new();
    a.stamp(&k, &mut headers, Instant::now());
    assert_eq!(header(&headers, "x-ratelimit-remaining-requests"), "1", "the cancelled request came back");
    third.settle(95);
    settled().await;
    assert_eq!(refusal(b.admit(&k, 1, Instant::now()).await).1, "tokens", "charged 5 more: 105 used");
}

/// A correction waiting when an admission comes goes in the admission's call, first: the
/// admission sees it at once, with no round trip of its own.
#[tokio::test]
async fn with_redis_a_correction_rides_with_the_next_admission() {
    let url = std::env::var("TOKENROUTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("tokenrouter-test:{}:", uuid::Uuid::now_v7());
    let limits = Limits::redis(&url, &prefix).await;
    assert!(!limits.redis_fallback(), "this test needs a Redis at TOKENROUTER_TEST_REDIS_URL");
    let k = key("rides", None, Some(100));
    // Each admission fits only after the correction just before it; sent alone, a
    // correction would wait for its batch (5 ms) and the admission would be refused.
    for round in 0..20 {
        let first = limits.admit(&k, 60, Instant::now()).await.unwrap();
        first.settle(0);
        let second = limits.admit(&k, 60, Instant::now()).await;
        let second = second.unwrap_or_else(|_| panic!("round {round}: the refund of 60 went first"));
        second.cancel();
        let third = limits.admit(&k, 60, Instant::now()).await;
        third.unwrap_or_else(|_| panic!("round {round}: the cancellation went first")).settle(0);
    }
}
