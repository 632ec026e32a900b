//! Rate-limit counters shared by every replica: GCRA buckets in Redis ([`RedisCounters`]),
//! checked and written by one Lua script on Redis' own clock. (The per-replica buckets
//! live in the server, which falls back to them while Redis is away.)

mod redis;

pub use self::redis::{RedisCounters, endpoint};

/// Which of a key's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Requests,
    Tokens,
}

/// One limit's state right after an admission: Redis' time (ms) and the bucket's busy
/// time scaled by the limit (ms × units; one unit is 60 000). Bounds a later refund.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admitted {
    pub at_ms: u64,
    pub busy: u64,
}

/// What one limit said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitVerdict {
    /// `None`: admitted; otherwise the milliseconds until the same request would be.
    pub wait_ms: Option<u64>,
    /// Units that could be admitted at once, after this request (if every limit admitted it).
    pub remaining: u64,
    /// Milliseconds until the bucket is idle again.
    pub reset_ms: u64,
    /// The bucket after the admission (or as it stands, when refused).
    pub state: Admitted,
}

/// The answer of [`RedisCounters::admit`]: every limit's verdict; nothing was written
/// unless all of them admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Redis' clock, in milliseconds since the epoch.
    pub now_ms: u64,
    pub requests: Option<LimitVerdict>,
    pub tokens: Option<LimitVerdict>,
}

impl Verdict {
    /// Whether every limit admitted the request.
    pub fn admitted(&self) -> bool {
        [self.requests, self.tokens].iter().flatten().all(|v| v.wait_ms.is_none())
    }
}

/// One request to admit: its key, its requests limit, and its tokens limit with the
/// tokens it costs (`(limit, cost)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask<'a> {
    pub key_id: &'a str,
    pub requests: Option<u32>,
    pub tokens: Option<(u32, u64)>,
}

/// A change to one limit of one key after its admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub key_id: String,
    pub unit: Unit,
    /// The limit the admission was made under.
    pub per_minute: u32,
    pub change: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Used more than admitted with: take `units` more.
    Charge(u64),
    /// Used fewer (or refused after admission): give back up to `units`, no more than
    /// is still in the bucket from that admission.
    Refund { units: u64, admitted: Admitted },
}

#[derive(Debug, thiserror::Error)]
pub enum CountersError {
    #[error("cannot reach Redis at {endpoint}: {source}")]
    Connect { endpoint: String, source: ::redis::RedisError },
    #[error("Redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("Redis did not answer in time")]
    Timeout,
    #[error("unexpected answer from the rate-limit script: {0}")]
    Reply(String),
}
