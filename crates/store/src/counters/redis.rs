//! [`RedisCounters`]: a reconnecting connection and the GCRA script. One round trip to
//! admit (every limit of a key at once), one pipelined round trip per batch of corrections.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Pipeline, RedisError, Script, ServerErrorKind, Value};

use super::{Admitted, Change, Correction, CountersError, LimitVerdict, Unit, Verdict};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// The most units one correction moves: keeps 60 000 × units below 2^53 in Lua.
const MAX_UNITS: u64 = 1 << 32;

/// Rate-limit buckets in Redis. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisCounters {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// The `host:port` of a Redis URL, for logs (a URL may hold a password).
pub fn endpoint(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() { "localhost:6379".to_owned() } else { host.to_owned() }
}

impl RedisCounters {
    /// Connects (within about a second) to the Redis at `url`; keys are named
    /// `{key_prefix}rl:{key id}`.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisCounters, CountersError> {
        let failed = |source| CountersError::Connect { endpoint: endpoint(url), source };
        let client = redis::Client::open(url).map_err(failed)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RESPONSE_TIMEOUT);
        let connection = tokio::time::timeout(2 * CONNECT_TIMEOUT, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| CountersError::Timeout)?
            .map_err(failed)?;
        let counters =
            RedisCounters { connection, script: Script::new(include_str!("gcra.lua")), prefix: key_prefix.to_owned() };
        let mut connection = counters.connection.clone();
        bounded(counters.script.prepare_invoke().load_async(&mut connection)).await?;
        Ok(counters)
    }

    fn key(&self, key_id: &str) -> String {
        format!("{}rl:{key_id}", self.prefix)
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), CountersError> {
        let mut connection = self.connection.clone();
        bounded(redis::cmd("PING").query_async::<()>(&mut connection)).await
    }

    /// Admits one request of `key_id` under its requests limit and its tokens limit with
    /// `cost` tokens (`(limit, cost)`), in one round trip: every limit is checked before
    /// any is written, and nothing is written unless all admit.
    pub async fn admit(
        &self,
        key_id: &str,
        requests: Option<u32>,
        tokens: Option<(u32, u64)>,
    ) -> Result<Verdict, CountersError> {
        let (tpm, cost) = tokens.unwrap_or((0, 0));
        let mut invocation = self.script.prepare_invoke();
        invocation.key(self.key(key_id)).arg("admit").arg(requests.unwrap_or(0)).arg(tpm).arg(cost.min(MAX_UNITS));
        let mut connection = self.connection.clone();
        let reply: Vec<i64> = bounded(invocation.invoke_async(&mut connection)).await?;
        let [now, rest @ ..] = reply.as_slice() else { return Err(CountersError::Reply(format!("{reply:?}"))) };
        let now_ms = to_u64(*now);
        let [r_ok, r_wait, r_left, r_reset, r_busy, t_ok, t_wait, t_left, t_reset, t_busy] = rest else {
            return Err(CountersError::Reply(format!("{reply:?}")));
        };
        let verdict = |ok: i64, wait: i64, left: i64, reset: i64, busy: i64| LimitVerdict {
            wait_ms: (ok == 0).then_some(to_u64(wait)),
            remaining: to_u64(left),
            reset_ms: to_u64(reset),
            state: Admitted { at_ms: now_ms, busy: to_u64(busy) },
        };
        Ok(Verdict {
            now_ms,
            requests: requests.filter(|l| *l > 0).map(|_| verdict(*r_ok, *r_wait, *r_left, *r_reset, *r_busy)),
            tokens: tokens.filter(|(l, _)| *l > 0).map(|_| verdict(*t_ok, *t_wait, *t_left, *t_reset, *t_busy)),
        })
    }

    /// Applies a batch of corrections in one pipelined round trip.
    pub async fn settle(&self, corrections: &[Correction]) -> Result<(), CountersError> {
        if corrections.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for correction in corrections {
            self.add(&mut pipe, correction);
        }
        let mut connection = self.connection.clone();
        match bounded(pipe.query_async::<Vec<Value>>(&mut connection)).await {
            Err(CountersError::Redis(e)) if no_script(&e) => {
                // Redis forgot the script (restarted, flushed): nothing ran; load and retry.
                bounded(self.script.prepare_invoke().load_async(&mut connection)).await?;
                bounded(pipe.query_async::<Vec<Value>>(&mut connection)).await.map(drop)
            }
            other => other.map(drop),
        }
    }

    fn add(&self, pipe: &mut Pipeline, correction: &Correction) {
        let field = match correction.unit {
            Unit::Requests => "r",
            Unit::Tokens => "t",
        };
        let mut invocation = self.script.prepare_invoke();
        invocation.key(self.key(&correction.key_id)).arg("settle").arg(field).arg(correction.per_minute);
        match correction.change {
            Change::Charge(units) => invocation.arg("charge").arg(units.min(MAX_UNITS)).arg(0).arg(0),
            Change::Refund { units, admitted } => {
                invocation.arg("refund").arg(units.min(MAX_UNITS)).arg(admitted.at_ms).arg(admitted.busy)
            }
        };
        pipe.invoke_script(&invocation);
    }
}

fn no_script(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A Redis call that gives up after the response timeout, whatever the connection does.
async fn bounded<T>(call: impl Future<Output = Result<T, RedisError>>) -> Result<T, CountersError> {
    match tokio::time::timeout(RESPONSE_TIMEOUT + Duration::from_millis(100), call).await {
        Ok(result) => result.map_err(CountersError::from),
        Err(_) => Err(CountersError::Timeout),
    }
}
