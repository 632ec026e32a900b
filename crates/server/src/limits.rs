//! Per-key rate limits: requests (RPM) and tokens (TPM) a minute, each a GCRA bucket —
//! smooth, no fixed windows. A request is admitted with its estimated tokens (prompt
//! characters ÷ 4 plus `max_tokens`, see [`estimate`]); its
//! [`Admission`] settles to the tokens actually used. Refusals are 429 with the exact
//! `Retry-After`; answers carry OpenAI's `x-ratelimit-*` headers. The buckets live in this
//! process, or in Redis when several replicas share the limits (`replicated`).

pub(crate) mod gcra;
mod replicated;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use tokenrouter_store::KeyRow;

use crate::error::ApiError;
use crate::metering::Measured;
use gcra::Bucket;
use replicated::Replicated;
use tokenrouter_store::counters::{Admitted, Change, Correction, Unit};

static LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
static REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
static RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
static LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
static REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
static RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// The tokens a request is admitted with, as OpenAI's limiter counts them: its prompt's
/// characters ÷ 4 (`prompt`, [`crate::tokens::prompt_estimate`]) and its (clamped) output limit.
/// Settlement corrects it to what was used.
pub fn estimate(prompt: u64, max_output: Option<u64>) -> u64 {
    prompt.saturating_add(max_output.unwrap_or(0))
}

/// The tokens a finished request used, to settle its admission with.
pub fn used_tokens(measured: Measured) -> u64 {
    match measured {
        Measured::Reported(usage) | Measured::Counted(usage) => usage.total(),
        Measured::Nothing => 0,
    }
}

/// The rate limiter of this gateway.
pub struct Limits {
    counters: Counters,
}

/// Where the buckets live: in this process, or (with several replicas) shared.
pub enum Counters {
    Local(Local),
    /// In Redis, mirrored here (for the headers, and to fall back on while Redis is away).
    Redis(Replicated),
}

/// Buckets in memory, one pair per key, created on the key's first limited request.
pub struct Local {
    /// The zero of the buckets' nanosecond clock.
    base: Instant,
    keys: RwLock<HashMap<String, Arc<Mutex<Buckets>>>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Buckets {
    requests: Bucket,
    tokens: Bucket,
}

/// The key's limits; `None` or 0 means no limit.
fn limits_of(key: &KeyRow) -> (Option<u32>, Option<u32>) {
    (key.rpm.filter(|n| *n > 0), key.tpm.filter(|n| *n > 0))
}

impl Limits {
    /// Counters in this process.
    pub fn local() -> Limits {
        Limits { counters: Counters::Local(Local::new()) }
    }

    /// Counters in the Redis at `url`, shared by every replica using the same `key_prefix`.
    /// An unreachable Redis does not stop the gateway: it starts on its own counters and
    /// switches to Redis when it answers.
    pub async fn redis(url: &str, key_prefix: &str) -> Limits {
        Limits { counters: Counters::Redis(Replicated::start(url, key_prefix).await) }
    }

    /// Whether limits are, for now, this replica's own because Redis is unreachable.
    /// Counts one event of `bucket` against `per_minute` where the limits are shared (see
    /// [`Replicated::admit_bucket`]); `None` when they are this process's own.
    pub async fn admit_bucket(&self, bucket: &str, per_minute: u32) -> Option<Result<(), std::time::Duration>> {
        match &self.counters {
            Counters::Local(_) => None,
            Counters::Redis(replicated) => replicated.admit_bucket(bucket, per_minute).await,
        }
    }

    pub fn redis_fallback(&self) -> bool {
        match &self.counters {
            Counters::Local(_) => false,
            Counters::Redis(replicated) => replicated.fallback(),
        }
    }

    /// Admits one request of `key` estimated at `tokens`, or refuses it (429) with the
    /// time until it would be admitted. A key without limits costs nothing here.
    pub async fn admit(&self, key: &KeyRow, tokens: u64, now: Instant) -> Result<Admission, ApiError> {
        match &self.counters {
            Counters::Local(local) => local.admit(key, tokens, now),
            Counters::Redis(replicated) => replicated.admit(key, tokens, now).await,
        }
    }

    /// Writes the `x-ratelimit-*` headers of a key with limits, as they stand at `now`.
    pub fn stamp(&self, key: &KeyRow, headers: &mut HeaderMap, now: Instant) {
        let (rpm, tpm) = limits_of(key);
        if rpm.is_none() && tpm.is_none() {
            return;
        }
        let local = match &self.counters {
            Counters::Local(local) => local,
            Counters::Redis(replicated) => replicated.local(),
        };
        let (buckets, now) = (local.peek(&key.id), local.nanos(now));
        if let Some(limit) = rpm {
            let names = [&LIMIT_REQUESTS, &REMAINING_REQUESTS, &RESET_REQUESTS];
            write_headers(headers, names, limit, buckets.requests, now);
        }
        if let Some(limit) = tpm {
            let names = [&LIMIT_TOKENS, &REMAINING_TOKENS, &RESET_TOKENS];
            write_headers(headers, names, limit, buckets.tokens, now);
        }
    }
}

fn write_headers(headers: &mut HeaderMap, names: [&HeaderName; 3], limit: u32, bucket: Bucket, now: u64) {
    headers.insert(names[0].clone(), HeaderValue::from(limit));
    headers.insert(names[1].clone(), HeaderValue::from(bucket.remaining(now, limit)));
    if let Ok(value) = HeaderValue::try_from(duration_text(bucket.reset(now, limit))) {
        headers.insert(names[2].clone(), value);
    }
}

/// A duration as OpenAI writes it (Go's format, to the millisecond, rounded up):
/// `0s`, `250ms`, `1s`, `2.5s`, `6m0s`, `1h0m12s`.
pub fn duration_text(nanos: u64) -> String {
    let ms = nanos.div_ceil(1_000_000);
    if ms < 1000 {
        return if ms == 0 { "0s".to_owned() } else { format!("{ms}ms") };
    }
    let (hours, minutes, seconds, millis) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut text = String::with_capacity(16);
    // Writing to a String cannot fail.
    if hours > 0 {
        let _ = write!(text, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(text, "{minutes}m");
    }
    let _ = write!(text, "{seconds}");
    if millis > 0 {
        let _ = write!(text, ".{millis:03}");
        text.truncate(text.trim_end_matches('0').len());
    }
    text.push('s');
    text
}

impl Local {
    fn new() -> Local {
        Local { base: Instant::now(), keys: RwLock::default() }
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn buckets(&self, id: &str) -> Arc<Mutex<Buckets>> {
        if let Some(found) = self.keys.read().unwrap_or_else(PoisonError::into_inner).get(id) {
            return found.clone();
        }
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        keys.entry(id.to_owned()).or_default().clone()
    }

    fn peek(&self, id: &str) -> Buckets {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(id).map(|b| *lock(b)).unwrap_or_default()
    }

    fn admit(&self, key: &KeyRow, tokens: u64, now: Instant) -> Result<Admission, ApiError> {
        let (rpm, tpm) = limits_of(key);
        if rpm.is_none() && tpm.is_none() {
            return Ok(Admission { held: Held::Nothing });
        }
        let now = self.nanos(now);
        let cell = self.buckets(&key.id);
        let mut buckets = lock(&cell);
        let requests = rpm.map_or(Ok(buckets.requests), |limit| buckets.requests.admit(now, 1, limit));
        let tokens_after = tpm.map_or(Ok(buckets.tokens), |limit| buckets.tokens.admit(now, tokens, limit));
        let (requests, tokens_after) = match (requests, tokens_after) {
            (Ok(r), Ok(t)) => (r, t),
            (r, t) => {
                drop(buckets);
                // Buckets only drain as time passes: the later of the two waits admits both.
                let (wait_r, wait_t) = (r.err().unwrap_or(0), t.err().unwrap_or(0));
                let (wait, limit) = if wait_r >= wait_t { (wait_r, "requests") } else { (wait_t, "tokens") };
                return Err(ApiError::RateLimited { retry_after: Duration::from_nanos(wait), limit });
            }
        };
        buckets.requests = requests;
        buckets.tokens = tokens_after;
        drop(buckets);
        let held = LocalHeld {
            cell,
            base: self.base,
            requests: rpm.map(|_| requests),
            tokens: tpm.map(|tpm| (tokens.min(u64::from(tpm)), tokens_after)),
        };
        Ok(Admission { held: Held::Local(held) })
    }
}

fn lock(cell: &Mutex<Buckets>) -> MutexGuard<'_, Buckets> {
    cell.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One admitted request: its tokens to settle when its usage is known, or all of it to
/// give back when it is refused after admission. Dropped unsettled, the estimate stands.
pub struct Admission {
    held: Held,
}

enum Held {
    /// No limit: nothing to correct.
    Nothing,
    Local(LocalHeld),
    /// Admitted by Redis: corrected there (in batches) and in the local mirror.
    Redis {
        local: LocalHeld,
        remote: RemoteHeld,
    },
}

/// What an admission took from this process's buckets.
struct LocalHeld {
    cell: Arc<Mutex<Buckets>>,
    base: Instant,
    /// The request bucket right after the admission (with a requests limit).
    requests: Option<Bucket>,
    /// The tokens charged at admission (the estimate, at most the whole limit) and the
    /// token bucket right after it (with a tokens limit).
    tokens: Option<(u64, Bucket)>,
}

/// What an admission took from Redis, and where its corrections go.
struct RemoteHeld {
    key_id: String,
    requests: Option<(u32, Admitted)>,
    tokens: Option<(u32, Admitted)>,
    corrections: tokio::sync::mpsc::UnboundedSender<Correction>,
}

impl Admission {
    /// An admission that took nothing: a queued job's run, admitted when it was submitted.
    pub fn none() -> Admission {
        Admission { held: Held::Nothing }
    }

    /// Corrects the token bucket to the tokens actually used: gives back what the
    /// estimate had too many, charges what it had too few.
    pub fn settle(self, actual_tokens: u64) {
        self.settle_at(actual_tokens, Instant::now());
    }

    /// [`Admission::settle`] at a given time.
    pub fn settle_at(self, actual_tokens: u64, now: Instant) {
        match self.held {
            Held::Nothing => {}
            Held::Local(local) => local.settle(actual_tokens, false, now),
            Held::Redis { local, remote } => {
                let charged = local.tokens.map_or(0, |(charged, _)| charged);
                local.settle(actual_tokens, false, now);
                remote.settle(charged, actual_tokens, false);
            }
        }
    }

    /// The request was refused after admission (no funds, no deployment): gives back its
    /// request and all its tokens, as if it had never been admitted.
    pub fn cancel(self) {
        self.cancel_at(Instant::now());
    }

    /// [`Admission::cancel`] at a given time.
    pub fn cancel_at(self, now: Instant) {
        match self.held {
            Held::Nothing => {}
            Held::Local(local) => local.settle(0, true, now),
            Held::Redis { local, remote } => {
                let charged = local.tokens.map_or(0, |(charged, _)| charged);
                local.settle(0, true, now);
                remote.settle(charged, 0, true);
            }
        }
    }
}

impl LocalHeld {
    fn settle(self, actual_tokens: u64, give_back_request: bool, now: Instant) {
        let now = u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        let mut buckets = lock(&self.cell);
        if let Some((charged, admitted)) = self.tokens {
            if actual_tokens > charged {
                buckets.tokens.charge(actual_tokens - charged);
            } else if actual_tokens < charged {
                buckets.tokens.refund(charged - actual_tokens, now, admitted);
            }
        }
        if let (true, Some(admitted)) = (give_back_request, self.requests) {
            buckets.requests.refund(1, now, admitted);
        }
    }
}

impl RemoteHeld {
    fn settle(self, charged: u64, actual_tokens: u64, give_back_request: bool) {
        let correction =
            |unit, per_minute, change| Correction { key_id: self.key_id.clone(), unit, per_minute, change };
        if let Some((tpm, admitted)) = self.tokens {
            let change = match actual_tokens.cmp(&charged) {
                std::cmp::Ordering::Greater => Some(Change::Charge(actual_tokens - charged)),
                std::cmp::Ordering::Less => Some(Change::Refund { units: charged - actual_tokens, admitted }),
                std::cmp::Ordering::Equal => None,
            };
            if let Some(change) = change {
                // A closed queue means the limiter is gone: nothing left to correct.
                let _ = self.corrections.send(correction(Unit::Tokens, tpm, change));
            }
        }
        if let (true, Some((rpm, admitted))) = (give_back_request, self.requests) {
            let _ = self.corrections.send(correction(Unit::Requests, rpm, Change::Refund { units: 1, admitted }));
        }
    }
}

#[cfg(test)]
mod tests;
