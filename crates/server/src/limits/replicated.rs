//! Limits shared by replicas through Redis: admissions and corrections go in batches from
//! one background task, one round trip per batch, corrections riding on the admissions'
//! (a request's admission waits for its batch's). The verdicts are mirrored into this
//! process's buckets (for the headers), which take over while Redis is unreachable; a
//! background task probes Redis every second meanwhile and switches back when it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokenrouter_store::KeyRow;
use tokenrouter_store::counters::{self, Change, Correction, CountersError, RedisCounters, Unit, Verdict};
use tokio::sync::{mpsc, oneshot};

use super::{Admission, Bucket, Held, Local, LocalHeld, RemoteHeld, limits_of, lock};
use crate::error::ApiError;
use crate::gather::gather_more;

/// How often Redis is probed while the limits are this replica's own.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Corrections wait at most this long for admissions (or others) to share their round trip.
const BATCH_WAIT: Duration = Duration::from_millis(5);
/// Corrections sent in one round trip at most.
const BATCH: usize = 128;
/// Admissions sent in one round trip at most.
const ADMIT_BATCH: usize = 128;
/// Admissions waiting for their batch; when full, requests wait for room.
const ADMIT_QUEUE: usize = 8_192;

/// An admission waiting for its batch: the key, its requests limit, its tokens limit and
/// cost, and where the verdict goes (`Err`: Redis failed; the limits fell back).
struct AdmitAsk {
    key_id: String,
    requests: Option<u32>,
    tokens: Option<(u32, u64)>,
    answer: oneshot::Sender<Result<Verdict, ()>>,
}

pub struct Replicated {
    link: Arc<Link>,
    local: Local,
    corrections: mpsc::UnboundedSender<Correction>,
    admissions: mpsc::Sender<AdmitAsk>,
}

/// The connection to Redis, and whether it is given up on for now.
struct Link {
    url: String,
    prefix: String,
    /// `host:port`, for logs (the URL may hold a password).
    endpoint: String,
    redis: ArcSwapOption<RedisCounters>,
    fallback: AtomicBool,
}

impl Link {
    /// The connection, unless the limits are this replica's own for now.
    fn live(&self) -> Option<Arc<RedisCounters>> {
        if self.fallback.load(Ordering::Acquire) { None } else { self.redis.load_full() }
    }

    /// Switches to this replica's counters, saying so once.
    fn fail(&self, error: &CountersError) {
        if !self.fallback.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                redis = %self.endpoint,
                error = %error,
                "Redis unreachable: rate limits fall back to this replica's own counters"
            );
        }
    }
}

impl Replicated {
    /// Connects to Redis (or starts in fallback) and starts the probe and the task that
    /// sends admissions and corrections.
    pub async fn start(url: &str, key_prefix: &str) -> Replicated {
        let link = Arc::new(Link {
            url: url.to_owned(),
            prefix: key_prefix.to_owned(),
            endpoint: counters::endpoint(url),
            redis: ArcSwapOption::empty(),
            fallback: AtomicBool::new(false),
        });
        match RedisCounters::connect(url, key_prefix).await {
            Ok(redis) => link.redis.store(Some(Arc::new(redis))),
            Err(e) => link.fail(&e),
        }
        let (corrections, queue) = mpsc::unbounded_channel();
        let (admissions, asks) = mpsc::channel(ADMIT_QUEUE);
        tokio::spawn(probe(Arc::downgrade(&link)));
        tokio::spawn(send(link.clone(), asks, queue, corrections.clone()));
        Replicated { link, local: Local::new(), corrections, admissions }
    }

    pub fn fallback(&self) -> bool {
        self.link.fallback.load(Ordering::Acquire)
    }

    /// The mirror of the buckets in Redis.
    pub(super) fn local(&self) -> &Local {
        &self.local
    }

    pub async fn admit(&self, key: &KeyRow, tokens: u64, now: Instant) -> Result<Admission, ApiError> {
        let (rpm, tpm) = limits_of(key);
        if rpm.is_none() && tpm.is_none() {
            return Ok(Admission { held: Held::Nothing });
        }
        if self.fallback() {
            return self.local.admit(key, tokens, now);
        }
        let (answer, verdict) = oneshot::channel();
        let tokens_ask = tpm.map(|limit| (limit, tokens));
        let ask = AdmitAsk { key_id: key.id.clone(), requests: rpm, tokens: tokens_ask, answer };
        if self.admissions.send(ask).await.is_err() {
            return self.local.admit(key, tokens, now);
        }
        let ask = counters::Ask { key_id: &key.id, requests: rpm, tokens: tokens_ask };
        let mut waiting = Waiting { verdict, ask, corrections: &self.corrections };
        match (&mut waiting.verdict).await {
            Ok(Ok(verdict)) => self.apply(key, tokens, verdict, now),
            // Redis failed (the limits fell back) or the task is gone.
            Ok(Err(())) | Err(_) => self.local.admit(key, tokens, now),
        }
    }

    /// Counts one event of `bucket` (not a key: e.g. sign-in attempts from one address)
    /// against `per_minute` in Redis: `Some(Ok)` admitted, `Some(Err(wait))` refused, `None`
    /// when Redis is not in use right now (the caller counts in this process).
    pub async fn admit_bucket(&self, bucket: &str, per_minute: u32) -> Option<Result<(), Duration>> {
        let redis = self.link.live()?;
        match redis.admit(bucket, Some(per_minute), None).await {
            Ok(verdict) => Some(match verdict.requests.and_then(|v| v.wait_ms) {
                None => Ok(()),
                Some(wait) => Err(Duration::from_millis(wait)),
            }),
            Err(e) => {
                self.link.fail(&e);
                None
            }
        }
    }

    /// Mirrors Redis' verdict into the local buckets and answers with it.
    fn apply(&self, key: &KeyRow, tokens: u64, verdict: Verdict, now: Instant) -> Result<Admission, ApiError> {
        let (rpm, tpm) = limits_of(key);
        let cell = self.local.buckets(&key.id);
        let at = self.local.nanos(now);
        let mut buckets = lock(&cell);
        if let (Some(limit), Some(v)) = (rpm, verdict.requests) {
            buckets.requests = Bucket::with_busy(at, v.state.busy, limit);
        }
        if let (Some(limit), Some(v)) = (tpm, verdict.tokens) {
            buckets.tokens = Bucket::with_busy(at, v.state.busy, limit);
        }
        let mirrored = *buckets;
        drop(buckets);
        if !verdict.admitted() {
            let wait_r = verdict.requests.and_then(|v| v.wait_ms).unwrap_or(0);
            let wait_t = verdict.tokens.and_then(|v| v.wait_ms).unwrap_or(0);
            let (wait, limit) = if wait_r >= wait_t { (wait_r, "requests") } else { (wait_t, "tokens") };
            return Err(ApiError::RateLimited { retry_after: Duration::from_millis(wait), limit });
        }
        let local = LocalHeld {
            cell,
            base: self.local.base,
            requests: rpm.map(|_| mirrored.requests),
            tokens: tpm.map(|tpm| (tokens.min(u64::from(tpm)), mirrored.tokens)),
        };
        let remote = RemoteHeld {
            key_id: key.id.clone(),
            requests: rpm.zip(verdict.requests.map(|v| v.state)),
            tokens: tpm.zip(verdict.tokens.map(|v| v.state)),
            corrections: self.corrections.clone(),
        };
        Ok(Admission { held: Held::Redis { local, remote } })
    }
}

/// While in fallback: every second, a fresh connection and a ping; the first that
/// answers switches the limits back to Redis. Ends with the limiter.
async fn probe(link: std::sync::Weak<Link>) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(link) = link.upgrade() else { return };
        if !link.fallback.load(Ordering::Acquire) {
            continue;
        }
        let Ok(redis) = RedisCounters::connect(&link.url, &link.prefix).await else { continue };
        if redis.ping().await.is_ok() {
            link.redis.store(Some(Arc::new(redis)));
            link.fallback.store(false, Ordering::Release);
            tracing::info!(redis = %link.endpoint, "Redis is back: rate limits are shared again");
        }
    }
}

/// Sends admissions and corrections to Redis, one call of the script per batch:
/// admissions as they come (whatever arrived with the first, see [`gather_more`], up to
/// [`ADMIT_BATCH`]), admitted in order, with every correction waiting at that moment
/// applied first in the same call; corrections alone only when no admission came within
/// [`BATCH_WAIT`] of the first of them (an admission arriving meanwhile waits for that
/// round trip). In fallback, or when a call fails, its admissions are answered `Err` (the
/// local buckets admit them) and its corrections are dropped (the local buckets took them
/// already). Ends once the limiter is gone — and with it the admissions, and the sender
/// of corrections this task keeps for the refunds of requests gone before their verdict —
/// and the corrections of the requests still in flight have all been sent.
async fn send(
    link: Arc<Link>,
    mut asks: mpsc::Receiver<AdmitAsk>,
    mut queue: mpsc::UnboundedReceiver<Correction>,
    corrections: mpsc::UnboundedSender<Correction>,
) {
    let mut batch = Vec::with_capacity(ADMIT_BATCH);
    let mut pending: Vec<Correction> = Vec::with_capacity(BATCH);
    let mut refunds = Some(corrections);
    let mut deadline = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            // Cancel-safe: what it took is in `batch` and sent below, never left behind.
            received = asks.recv_many(&mut batch, ADMIT_BATCH), if refunds.is_some() => {
                if received == 0 {
                    refunds = None;
                    continue;
                }
                gather_more(&mut asks, &mut batch, ADMIT_BATCH).await;
                // All of them, however many: under load this is the only way they go.
                while let Ok(correction) = queue.try_recv() {
                    pending.push(correction);
                }
                if let Some(corrections) = &refunds {
                    admit_batch(&link, &mut batch, &mut pending, corrections).await;
                }
            }
            correction = queue.recv() => match correction {
                Some(correction) => {
                    if pending.is_empty() {
                        deadline = tokio::time::Instant::now() + BATCH_WAIT;
                    }
                    pending.push(correction);
                    if pending.len() >= BATCH {
                        settle_batch(&link, &mut pending).await;
                    }
                }
                None if pending.is_empty() => return,
                None => settle_batch(&link, &mut pending).await,
            },
            () = tokio::time::sleep_until(deadline), if !pending.is_empty() => settle_batch(&link, &mut pending).await,
        }
    }
}

/// One call: `pending` corrections, then the admissions of `batch`; both left empty.
async fn admit_batch(
    link: &Link,
    batch: &mut Vec<AdmitAsk>,
    pending: &mut Vec<Correction>,
    corrections: &mpsc::UnboundedSender<Correction>,
) {
    let Some(redis) = link.live() else {
        pending.clear();
        fall_back(batch);
        return;
    };
    let asks: Vec<counters::Ask> =
        batch.iter().map(|a| counters::Ask { key_id: &a.key_id, requests: a.requests, tokens: a.tokens }).collect();
    let result = redis.settle_and_admit(pending, &asks).await;
    pending.clear();
    match result {
        Ok(verdicts) => {
            for (AdmitAsk { key_id, requests, tokens, answer }, verdict) in batch.drain(..).zip(verdicts) {
                if let Err(Ok(verdict)) = answer.send(Ok(verdict)) {
                    // The request went away before its verdict was sent: what it took goes back.
                    let ask = counters::Ask { key_id: &key_id, requests, tokens };
                    give_back(corrections, ask, &verdict);
                }
            }
        }
        Err(e) => {
            link.fail(&e);
            fall_back(batch);
        }
    }
}

/// One call with the `pending` corrections alone; left empty.
async fn settle_batch(link: &Link, pending: &mut Vec<Correction>) {
    if let Some(redis) = link.live()
        && let Err(e) = redis.settle(pending).await
    {
        link.fail(&e);
    }
    pending.clear();
}

/// A request's wait for its verdict. Dropped with the verdict still in it (the request
/// went away after the verdict was sent), it gives back what the admission took; a
/// request gone before it was sent is the sender's to refund.
struct Waiting<'a> {
    verdict: oneshot::Receiver<Result<Verdict, ()>>,
    ask: counters::Ask<'a>,
    corrections: &'a mpsc::UnboundedSender<Correction>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.verdict.close();
        if let Ok(Ok(verdict)) = self.verdict.try_recv() {
            give_back(self.corrections, self.ask, &verdict);
        }
    }
}

/// Answers every admission of the batch that the local buckets are to admit it.
fn fall_back(batch: &mut Vec<AdmitAsk>) {
    for ask in batch.drain(..) {
        let _ = ask.answer.send(Err(()));
    }
}

/// Refunds what an admission took whose request is no longer there to use it.
fn give_back(corrections: &mpsc::UnboundedSender<Correction>, ask: counters::Ask<'_>, verdict: &Verdict) {
    if !verdict.admitted() {
        return;
    }
    let refund = |unit, per_minute, units, state: counters::LimitVerdict| Correction {
        key_id: ask.key_id.to_owned(),
        unit,
        per_minute,
        change: Change::Refund { units, admitted: state.state },
    };
    if let (Some(rpm), Some(v)) = (ask.requests, verdict.requests) {
        let _ = corrections.send(refund(Unit::Requests, rpm, 1, v));
    }
    if let (Some((tpm, cost)), Some(v)) = (ask.tokens, verdict.tokens) {
        let _ = corrections.send(refund(Unit::Tokens, tpm, cost.min(u64::from(tpm)), v));
    }
}
