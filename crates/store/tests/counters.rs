//! The Redis counters against a real Redis (`TOKENROUTER_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`; a test fails when it is unreachable): exact bursts, exact
//! admission under concurrency from two replicas, refunds and charges, all-or-nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use futures_util::future::join_all;
use tokenrouter_store::counters::{Admitted, Ask, Change, Correction, RedisCounters, Unit, Verdict};

async fn counters(prefix: &str) -> RedisCounters {
    let url = std::env::var("TOKENROUTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    match RedisCounters::connect(&url, prefix).await {
        Ok(counters) => counters,
        Err(e) => panic!("these tests need a Redis (set TOKENROUTER_TEST_REDIS_URL): {e}"),
    }
}

/// A fresh prefix: tests never see each other's keys.
fn prefix() -> String {
    format!("tokenrouter-test:{}:", uuid::Uuid::now_v7())
}

async fn requests(c: &RedisCounters, key: &str, rpm: u32) -> Verdict {
    c.admit(key, Some(rpm), None).await.unwrap()
}

fn wait(verdict: &Verdict) -> Option<u64> {
    verdict.requests.or(verdict.tokens).and_then(|v| v.wait_ms)
}

#[tokio::test]
async fn a_burst_of_the_limit_then_the_next_waits_one_interval() {
    let c = counters(&prefix()).await;
    let first = requests(&c, "k", 20).await;
    assert!(first.admitted());
    assert_eq!(first.requests.unwrap().remaining, 19);
    for _ in 1..20 {
        assert!(requests(&c, "k", 20).await.admitted());
    }
    let refused = requests(&c, "k", 20).await;
    assert!(!refused.admitted());
    let waited = wait(&refused).unwrap();
    let since_first = refused.now_ms - first.now_ms;
    assert_eq!(waited, 3000 - since_first, "one interval (60 s / 20) after the first admission");
    assert_eq!(refused.requests.unwrap().remaining, 0);
    assert!(requests(&c, "other", 20).await.admitted(), "keys have their own buckets");
}

#[tokio::test]
async fn sixty_at_once_from_two_replicas_against_rpm_20_admit_exactly_20() {
    let prefix = prefix();
    let (a, b) = (counters(&prefix).await, counters(&prefix).await);
    let calls = (0..60).map(|i| {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { c.admit("k", Some(20), None).await.unwrap() }
    });
    let verdicts = join_all(calls).await;
    assert_eq!(verdicts.iter().filter(|v| v.admitted()).count(), 20);
    assert!(verdicts.iter().filter(|v| !v.admitted()).all(|v| (2000..=3000).contains(&wait(v).unwrap())));
}

#[tokio::test]
async fn a_batch_of_admissions_admits_in_order_exactly_what_fits() {
    use tokenrouter_store::counters::Ask;
    let c = counters(&prefix()).await;
    let mut asks: Vec<Ask> = (0..25).map(|_| Ask { key_id: "a", requests: Some(20), tokens: None }).collect();
    asks.insert(3, Ask { key_id: "b", requests: Some(1), tokens: Some((100, 40)) });
    asks.insert(4, Ask { key_id: "b", requests: Some(1), tokens: Some((100, 40)) });
    let verdicts = c.admit_many(&asks).await.unwrap();
    assert_eq!(verdicts.len(), asks.len());
    let a: Vec<bool> =
        asks.iter().zip(&verdicts).filter(|(ask, _)| ask.key_id == "a").map(|(_, v)| v.admitted()).collect();
    assert_eq!(a, [vec![true; 20], vec![false; 5]].concat(), "the first 20 of key a, in order");
    assert!(verdicts[3].admitted() && !verdicts[4].admitted(), "key b: its one request a minute");
    assert_eq!(verdicts[3].tokens.unwrap().remaining, 60);
    assert_eq!(verdicts[24].requests.unwrap().remaining, 0);
    assert!(!c.admit("a", Some(20), None).await.unwrap().admitted(), "the batch wrote what it admitted");
}

#[tokio::test]
async fn a_token_limit_admits_exactly_the_costs_that_fit() {
    let c = counters(&prefix()).await;
    let calls = (0..40).map(|_| c.admit("k", None, Some((1000, 70))));
    let verdicts: Vec<Verdict> = join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(verdicts.iter().filter(|v| v.admitted()).count(), 1000 / 70);
    // A cost above the whole limit waits for an idle bucket, then takes all of it.
    let whole = c.admit("big", None, Some((100, 500))).await.unwrap();
    assert!(whole.admitted());
    assert_eq!(whole.tokens.unwrap().remaining, 0);
}

#[tokio::test]
async fn refunds_give_back_at_most_what_the_admission_left_and_charges_take_more() {
    let c = counters(&prefix()).await;
    let first = c.admit("k", None, Some((100, 60))).await.unwrap();
    let state = first.tokens.unwrap().state;
    assert!(!c.admit("k", None, Some((100, 60))).await.unwrap().admitted());
    let refund = |units, admitted| Correction {
        key_id: "k".into(),
        unit: Unit::Tokens,
        per_minute: 100,
        change: Change::Refund { units, admitted },
    };
    c.settle(&[refund(50, state)]).await.unwrap();
    let after = c.admit("k", None, Some((100, 60))).await.unwrap();
    assert!(after.admitted(), "capacity came back");
    let left = after.tokens.unwrap().remaining;
    assert!((29..=30).contains(&left), "10 + 60 used (and a few ms drained): {left}");
    // An admission 30 s old holds only what 30 s at 100 a minute did not drain: 10 units
    // of its 60, so a refund of 100 gives back 10 at most.
    let half_drained = Admitted { at_ms: state.at_ms - 30_000, busy: state.busy };
    c.settle(&[refund(100, half_drained)]).await.unwrap();
    let probe = c.admit("k", None, Some((100, 1))).await.unwrap();
    assert!((38..=39).contains(&probe.tokens.unwrap().remaining), "{probe:?}");
    // A minute old, it has drained: nothing comes back.
    let drained = Admitted { at_ms: state.at_ms - 60_000, busy: state.busy };
    c.settle(&[refund(100, drained)]).await.unwrap();
    let probe = c.admit("k", None, Some((100, 1))).await.unwrap();
    assert!((37..=38).contains(&probe.tokens.unwrap().remaining), "{probe:?}");
    let charge = Correction { key_id: "k".into(), unit: Unit::Tokens, per_minute: 100, change: Change::Charge(37) };
    c.settle(&[charge]).await.unwrap();
    let refused = c.admit("k", None, Some((100, 2))).await.unwrap();
    assert!(!refused.admitted(), "the charge took the rest: {refused:?}");
}

#[tokio::test]
async fn a_batch_of_corrections_over_several_keys_is_applied_in_order() {
    let c = counters(&prefix()).await;
    let a = c.admit("a", Some(10), Some((100, 60))).await.unwrap();
    assert!(c.admit("b", None, Some((100, 90))).await.unwrap().admitted());
    let correction = |key: &str, unit, per_minute, change| Correction { key_id: key.into(), unit, per_minute, change };
    let a_tokens = a.tokens.unwrap().state;
    let a_request = a.requests.unwrap().state;
    c.settle(&[
        correction("a", Unit::Tokens, 100, Change::Refund { units: 50, admitted: a_tokens }),
        correction("b", Unit::Tokens, 100, Change::Charge(5)),
        correction("a", Unit::Requests, 10, Change::Refund { units: 1, admitted: a_request }),
        // Sees the first refund: only the 10 still in the bucket come back, not 50.
        correction("a", Unit::Tokens, 100, Change::Refund { units: 50, admitted: a_tokens }),
        correction("a", Unit::Tokens, 100, Change::Charge(30)),
    ])
    .await
    .unwrap();
    let probe = c.admit("a", Some(10), Some((100, 1))).await.unwrap();
    assert_eq!(probe.requests.unwrap().remaining, 9, "the request unit came back: {probe:?}");
    assert!((69..=70).contains(&probe.tokens.unwrap().remaining), "60 - 50 - 10 + 30, then 1: {probe:?}");
    let probe = c.admit("b", None, Some((100, 1))).await.unwrap();
    assert!((4..=5).contains(&probe.tokens.unwrap().remaining), "90 + 5, then 1: {probe:?}");
}

#[tokio::test]
async fn charges_summed_in_one_call_take_what_they_take_one_by_one() {
    let c = counters(&prefix()).await;
    let a = c.admit("a", None, Some((100, 10))).await.unwrap().tokens.unwrap().state;
    let tokens = |key: &str, change| Correction { key_id: key.into(), unit: Unit::Tokens, per_minute: 100, change };
    // The three charges of "a" go as one (the client sums them): 10 + 20 - 5 + 30 + 15.
    c.settle(&[
        tokens("a", Change::Charge(20)),
        tokens("a", Change::Refund { units: 5, admitted: a }),
        tokens("b", Change::Charge(40)),
        tokens("a", Change::Charge(30)),
        tokens("a", Change::Charge(15)),
    ])
    .await
    .unwrap();
    let probe = c.admit("a", None, Some((100, 1))).await.unwrap();
    assert!((29..=30).contains(&probe.tokens.unwrap().remaining), "{probe:?}");
    let probe = c.admit("b", None, Some((100, 1))).await.unwrap();
    assert!((59..=60).contains(&probe.tokens.unwrap().remaining), "{probe:?}");
    // Past the whole limit, the sum fills the bucket as the charges one by one would.
    c.settle(&vec![tokens("b", Change::Charge(u64::MAX)); 3]).await.unwrap();
    assert!(!c.admit("b", None, Some((100, 1))).await.unwrap().admitted());
}

#[tokio::test]
async fn a_limit_raised_far_above_a_full_bucket_still_refuses_until_it_drains() {
    let c = counters(&prefix()).await;
    assert!(c.admit("k", None, Some((10, 10))).await.unwrap().admitted());
    // 400,000 tokens used under 10 a minute: the bucket is busy for about 27 days.
    let charge = Correction { key_id: "k".into(), unit: Unit::Tokens, per_minute: 10, change: Change::Charge(400_000) };
    c.settle(&[charge]).await.unwrap();
    // Rescaled to the new limit that is past 2^63: still refused, and told to wait.
    let raised = c.admit("k", None, Some((4_000_000_000, 1))).await.unwrap();
    assert!(!raised.admitted(), "{raised:?}");
    let tokens = raised.tokens.unwrap();
    assert_eq!(tokens.remaining, 0, "{raised:?}");
    assert!(tokens.wait_ms.unwrap() > 20 * 24 * 3_600_000, "{raised:?}");
}

#[tokio::test]
async fn a_request_unit_given_back_is_admitted_again() {
    let c = counters(&prefix()).await;
    let mut last = None;
    for _ in 0..3 {
        last = Some(requests(&c, "k", 3).await);
    }
    assert!(!requests(&c, "k", 3).await.admitted());
    let admitted = last.unwrap().requests.unwrap().state;
    let back = Correction {
        key_id: "k".into(),
        unit: Unit::Requests,
        per_minute: 3,
        change: Change::Refund { units: 1, admitted },
    };
    c.settle(&[back]).await.unwrap();
    assert!(requests(&c, "k", 3).await.admitted());
    assert!(!requests(&c, "k", 3).await.admitted());
}

#[tokio::test]
async fn corrections_sent_with_admissions_apply_before_them_in_the_same_call() {
    let c = counters(&prefix()).await;
    let first = c.admit("a", Some(10), Some((100, 60))).await.unwrap();
    assert!(c.admit("b", None, Some((100, 90))).await.unwrap().admitted());
    let tokens = |key: &str, change| Correction { key_id: key.into(), unit: Unit::Tokens, per_minute: 100, change };
    let ask = |key, cost| Ask { key_id: key, requests: Some(10), tokens: Some((100, cost)) };
    // Alone, 60 more would not fit beside the first 60; after its refund of 50 it does. And
    // the charge on "b" leaves room for 5 there, not 10.
    let refund = Change::Refund { units: 50, admitted: first.tokens.unwrap().state };
    let verdicts = c
        .settle_and_admit(
            &[tokens("a", refund), tokens("b", Change::Charge(5))],
            &[ask("a", 60), ask("b", 10), ask("b", 5)],
        )
        .await
        .unwrap();
    let admitted: Vec<bool> = verdicts.iter().map(Verdict::admitted).collect();
    assert_eq!(admitted, [true, false, true], "{verdicts:?}");
    assert!((29..=30).contains(&verdicts[0].tokens.unwrap().remaining), "{verdicts:?}");
    assert_eq!(verdicts[0].requests.unwrap().remaining, 8, "two requests of \"a\" admitted");
    assert!(verdicts[1].tokens.unwrap().wait_ms.is_some());
    // The same as the two calls one after the other would have done.
    let probe = c.admit("a", None, Some((100, 1))).await.unwrap();
    assert!((28..=29).contains(&probe.tokens.unwrap().remaining), "{probe:?}");
    // Corrections alone still go.
    assert!(c.settle_and_admit(&[tokens("b", Change::Charge(5))], &[]).await.unwrap().is_empty());
    assert!(!c.admit("b", None, Some((100, 1))).await.unwrap().admitted());
}

#[tokio::test]
async fn every_limit_is_checked_before_any_is_written() {
    let c = counters(&prefix()).await;
    assert!(c.admit("k", Some(2), Some((100, 90))).await.unwrap().admitted());
    let refused = c.admit("k", Some(2), Some((100, 20))).await.unwrap();
    assert!(!refused.admitted());
    assert_eq!(refused.requests.unwrap().wait_ms, None, "the requests limit alone would admit");
    assert!(refused.tokens.unwrap().wait_ms.is_some());
    // The refusal took no request: one is still there.
    assert!(c.admit("k", Some(2), Some((100, 5))).await.unwrap().admitted());
    assert!(!c.admit("k", Some(2), Some((100, 1))).await.unwrap().admitted());
}

#[tokio::test]
async fn limits_that_do_not_divide_a_minute_admit_exactly_the_limit() {
    let c = counters(&prefix()).await;
    for limit in [7, 13] {
        let key = format!("k{limit}");
        let calls = (0..limit + 5).map(|_| requests(&c, &key, limit));
        assert_eq!(join_all(calls).await.iter().filter(|v| v.admitted()).count(), limit as usize);
    }
    // A large limit, in token units: exactly the limit fits, one more does not.
    let big = 1_000_003;
    let part = c.admit("big", None, Some((big, 1_000_000))).await.unwrap();
    assert_eq!(part.tokens.unwrap().remaining, 3);
    // The whole limit at once, then the whole limit again waits exactly the time the
    // first took to drain (one minute, less what has passed).
    let whole = c.admit("whole", None, Some((big, u64::from(big)))).await.unwrap();
    assert!(whole.admitted());
    assert_eq!(whole.tokens.unwrap().remaining, 0);
    let again = c.admit("whole", None, Some((big, u64::from(big)))).await.unwrap();
    assert_eq!(wait(&again), Some(60_000 - (again.now_ms - whole.now_ms)));
}

#[tokio::test]
async fn values_past_ten_to_the_fourteenth_come_back_to_the_unit() {
    let c = counters(&prefix()).await;
    let (limit, cost) = (u32::MAX, 3_999_999_999_u64);
    let verdict = c.admit("k", None, Some((limit, cost))).await.unwrap();
    assert!(verdict.admitted());
    let tokens = verdict.tokens.unwrap();
    assert_eq!(tokens.state.busy, 60_000 * cost, "≈ 2.4 × 10^14, every digit");
    assert_eq!(tokens.remaining, u64::from(limit) - cost);
}
