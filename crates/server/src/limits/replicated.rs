//! Limits shared by replicas through Redis: one round trip admits a request; corrections
//! go in batches from a background task. The verdicts are mirrored into this process's
//! buckets (for the headers), which take over while Redis is unreachable; a background
//! task probes Redis every second meanwhile and switches back when it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokenrouter_store::KeyRow;
use tokenrouter_store::counters::{self, Correction, CountersError, RedisCounters, Verdict};
use tokio::sync::mpsc;

use super::{Admission, Bucket, Held, Local, LocalHeld, RemoteHeld, limits_of, lock};
use crate::error::ApiError;

/// How often Redis is probed while the limits are this replica's own.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Corrections wait at most this long for others to share their round trip.
const BATCH_WAIT: Duration = Duration::from_millis(5);
/// Corrections sent in one round trip at most.
const BATCH: usize = 128;

pub struct Replicated {
    link: Arc<Link>,
    local: Local,
    corrections: mpsc::UnboundedSender<Correction>,
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
    /// Connects to Redis (or starts in fallback) and starts the probe and the corrections task.
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
        tokio::spawn(probe(Arc::downgrade(&link)));
        tokio::spawn(send_corrections(link.clone(), queue));
        Replicated { link, local: Local::new(), corrections }
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
        let redis = match (self.fallback(), self.link.redis.load_full()) {
            (false, Some(redis)) => redis,
            _ => return self.local.admit(key, tokens, now),
        };
        match redis.admit(&key.id, rpm, tpm.map(|limit| (limit, tokens))).await {
            Ok(verdict) => self.apply(key, tokens, verdict, now),
            Err(e) => {
                self.link.fail(&e);
                self.local.admit(key, tokens, now)
            }
        }
    }

    /// Counts one event of `bucket` (not a key: e.g. sign-in attempts from one address)
    /// against `per_minute` in Redis: `Some(Ok)` admitted, `Some(Err(wait))` refused, `None`
    /// when Redis is not in use right now (the caller counts in this process).
    pub async fn admit_bucket(&self, bucket: &str, per_minute: u32) -> Option<Result<(), Duration>> {
        let redis = match (self.fallback(), self.link.redis.load_full()) {
            (false, Some(redis)) => redis,
            _ => return None,
        };
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

/// Sends corrections to Redis in batches: whatever arrives within a few milliseconds of
/// the first, up to [`BATCH`], in one round trip. In fallback they are dropped (the local
/// buckets took them already). Ends when every sender (the limiter, admissions) is gone.
async fn send_corrections(link: Arc<Link>, mut queue: mpsc::UnboundedReceiver<Correction>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(correction)) => batch.push(correction),
                Ok(None) | Err(_) => break,
            }
        }
        if !link.fallback.load(Ordering::Acquire)
            && let Some(redis) = link.redis.load_full()
            && let Err(e) = redis.settle(&batch).await
        {
            link.fail(&e);
        }
        batch.clear();
    }
}
