//! [`RedisCounters`]: a reconnecting connection and the GCRA script. One round trip to
//! admit (every limit of a key at once), one per batch of corrections, or one for both.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Script, ScriptInvocation};

use super::{Admitted, Ask, Change, Correction, CountersError, LimitVerdict, Unit, Verdict};

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
        let mut verdicts = self.admit_many(&[Ask { key_id, requests, tokens }]).await?;
        verdicts.pop().ok_or_else(|| CountersError::Reply("no verdict".to_owned()))
    }

    /// Admits a batch of requests in one round trip, in order (a request sees the ones
    /// before it): one verdict each, as [`RedisCounters::admit`] would give one by one.
    pub async fn admit_many(&self, asks: &[Ask<'_>]) -> Result<Vec<Verdict>, CountersError> {
        self.settle_and_admit(&[], asks).await
    }

    /// Applies `corrections` (as [`RedisCounters::settle`]), then admits `asks` (as
    /// [`RedisCounters::admit_many`]), in one call of the script: corrections ride on the
    /// admissions' round trip.
    pub async fn settle_and_admit(
        &self,
        corrections: &[Correction],
        asks: &[Ask<'_>],
    ) -> Result<Vec<Verdict>, CountersError> {
        if asks.is_empty() {
            self.settle(corrections).await?;
            return Ok(Vec::new());
        }
        let mut invocation = self.script.prepare_invoke();
        let mut keys = Keys::default();
        if corrections.is_empty() {
            invocation.arg("admit");
        } else {
            invocation.arg("settle_admit").arg(corrections.len());
            self.add_corrections(&mut invocation, &mut keys, corrections);
        }
        for ask in asks {
            let (tpm, cost) = ask.tokens.unwrap_or((0, 0));
            let index = keys.index(ask.key_id, |key| {
                invocation.key(self.key(key));
            });
            invocation.arg(index).arg(ask.requests.unwrap_or(0)).arg(tpm).arg(cost.min(MAX_UNITS));
        }
        let mut connection = self.connection.clone();
        let reply = integers(&bounded(invocation.invoke_async::<String>(&mut connection)).await?)?;
        let malformed = || CountersError::Reply(format!("{} values for {} admissions", reply.len(), asks.len()));
        let [now, rest @ ..] = reply.as_slice() else { return Err(malformed()) };
        if rest.len() != asks.len() * 10 {
            return Err(malformed());
        }
        let now_ms = to_u64(*now);
        let verdict = |v: &[i64]| LimitVerdict {
            wait_ms: (v[0] == 0).then_some(to_u64(v[1])),
            remaining: to_u64(v[2]),
            reset_ms: to_u64(v[3]),
            state: Admitted { at_ms: now_ms, busy: to_u64(v[4]) },
        };
        Ok(asks
            .iter()
            .zip(rest.chunks_exact(10))
            .map(|(ask, values)| Verdict {
                now_ms,
                requests: ask.requests.filter(|l| *l > 0).map(|_| verdict(&values[..5])),
                tokens: ask.tokens.filter(|(l, _)| *l > 0).map(|_| verdict(&values[5..])),
            })
            .collect())
    }

    /// Applies a batch of corrections in one call of the script (one round trip), in order.
    pub async fn settle(&self, corrections: &[Correction]) -> Result<(), CountersError> {
        if corrections.is_empty() {
            return Ok(());
        }
        let mut invocation = self.script.prepare_invoke();
        invocation.arg("settle");
        self.add_corrections(&mut invocation, &mut Keys::default(), corrections);
        let mut connection = self.connection.clone();
        // `invoke_async` loads the script again when Redis forgot it (restarted, flushed).
        let after = integers(&bounded(invocation.invoke_async::<String>(&mut connection)).await?)?;
        if after.len() != corrections.len() {
            return Err(CountersError::Reply(format!("{} answers for {} corrections", after.len(), corrections.len())));
        }
        Ok(())
    }

    /// Names the corrections to a call of the script, seven arguments each.
    fn add_corrections<'a>(
        &self,
        invocation: &mut ScriptInvocation<'_>,
        keys: &mut Keys<'a>,
        corrections: &'a [Correction],
    ) {
        for correction in corrections {
            let index = keys.index(&correction.key_id, |key| {
                invocation.key(self.key(key));
            });
            let field = match correction.unit {
                Unit::Requests => "r",
                Unit::Tokens => "t",
            };
            invocation.arg(index).arg(field).arg(correction.per_minute);
            match correction.change {
                Change::Charge(units) => invocation.arg("charge").arg(units.min(MAX_UNITS)).arg(0).arg(0),
                Change::Refund { units, admitted } => {
                    invocation.arg("refund").arg(units.min(MAX_UNITS)).arg(admitted.at_ms).arg(admitted.busy)
                }
            };
        }
    }
}

/// The keys of one call of the script, each once, in the order first named.
#[derive(Default)]
struct Keys<'a>(Vec<&'a str>);

impl<'a> Keys<'a> {
    /// The 1-based index of `key` among KEYS; `add` names it to the call the first time.
    fn index(&mut self, key: &'a str, add: impl FnOnce(&str)) -> usize {
        if let Some(at) = self.0.iter().position(|k| *k == key) {
            return at + 1;
        }
        add(key);
        self.0.push(key);
        self.0.len()
    }
}

/// The script's reply: integers separated by spaces.
fn integers(reply: &str) -> Result<Vec<i64>, CountersError> {
    if reply.is_empty() {
        return Ok(Vec::new());
    }
    reply.split(' ').map(|n| n.parse().map_err(|_| CountersError::Reply(format!("not an integer: {n:.40}")))).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_integers_separated_by_spaces() {
        assert_eq!(integers("").unwrap(), Vec::<i64>::new());
        assert_eq!(
            integers("1733580000123 1 0 19 3000 240000000000000").unwrap(),
            [1_733_580_000_123, 1, 0, 19, 3000, 240_000_000_000_000]
        );
        for bad in ["1  2", "1 2.5e14", "x", " 1", "1 "] {
            assert!(matches!(integers(bad), Err(CountersError::Reply(_))), "{bad:?}");
        }
    }
}
