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
/// The most units charges summed into one move (see [`Items`]):
/// still below 2^53 in Lua at 60 000 each, and past 2^52 ÷ 60 000 (where the script
/// caps a bucket), so a sum that reaches it leaves the bucket where the charges one by
/// one would have.
const MAX_SUMMED: u64 = 1 << 37;

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
            let items = Items::of(&mut keys, corrections, |key| {
                invocation.key(self.key(key));
            });
            invocation.arg("settle_admit").arg(items.0.len());
            items.add_to(&mut invocation);
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
        if rest.len() != asks.len() * 3 {
            return Err(malformed());
        }
        let now_ms = to_u64(*now);
        let mut verdicts = Vec::with_capacity(asks.len());
        for (ask, values) in asks.iter().zip(rest.chunks_exact(3)) {
            let all = values[0] == 1;
            let (requests, tokens) = (ask.requests.unwrap_or(0), ask.tokens.unwrap_or((0, 0)));
            let verdict = |limit: u32, units: u64, after: i64| {
                (limit > 0).then(|| limit_verdict(now_ms, limit, units.min(MAX_UNITS), all, to_u64(after)))
            };
            let verdict = Verdict {
                now_ms,
                requests: verdict(requests, 1, values[1]),
                tokens: verdict(tokens.0, tokens.1, values[2]),
            };
            // What the script decided and what its values say must agree.
            if !matches!(values[0], 0 | 1) || verdict.admitted() != all {
                return Err(CountersError::Reply(format!("an admission answered {values:?} for {ask:?}")));
            }
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }

    /// Applies a batch of corrections in one call of the script (one round trip), in order.
    pub async fn settle(&self, corrections: &[Correction]) -> Result<(), CountersError> {
        if corrections.is_empty() {
            return Ok(());
        }
        let mut invocation = self.script.prepare_invoke();
        let items = Items::of(&mut Keys::default(), corrections, |key| {
            invocation.key(self.key(key));
        });
        invocation.arg("settle");
        items.add_to(&mut invocation);
        let mut connection = self.connection.clone();
        // `invoke_async` loads the script again when Redis forgot it (restarted, flushed).
        let after = integers(&bounded(invocation.invoke_async::<String>(&mut connection)).await?)?;
        if after.len() != items.0.len() {
            return Err(CountersError::Reply(format!("{} answers for {} corrections", after.len(), items.0.len())));
        }
        Ok(())
    }
}

/// The corrections of one call as the script takes them: its key's index among KEYS,
/// the limit's field prefix, the limit, and the change.
///
/// The charges of one key's limit (the same unit under the same limit) are summed into
/// one at the place of the first: requests that finish in the same batch are applied on
/// one reading of Redis' clock, in the order they happened to arrive, and these charges
/// arriving one after the other is an order they could have arrived in (a charge adds to
/// the bucket, capped, so charges in a row add up to their sum). Under load every
/// request's estimate is corrected, usually upwards, so this turns a batch's dozens of
/// corrections of one key into one. Refunds stay one each: each is bounded by what its
/// own admission left in the bucket.
struct Items(Vec<(usize, &'static str, u32, Change)>);

impl Items {
    /// `corrections` as items; `keys` names each key to the call once (`add`).
    fn of<'a>(keys: &mut Keys<'a>, corrections: &'a [Correction], mut add: impl FnMut(&str)) -> Items {
        let mut items: Vec<(usize, &'static str, u32, Change)> = Vec::with_capacity(corrections.len());
        for correction in corrections {
            let index = keys.index(&correction.key_id, &mut add);
            let field = match correction.unit {
                Unit::Requests => "r",
                Unit::Tokens => "t",
            };
            let limit = correction.per_minute;
            match correction.change {
                Change::Charge(units) => {
                    let units = units.min(MAX_UNITS);
                    let same = |item: &&mut (usize, &str, u32, Change)| {
                        item.0 == index && item.1 == field && item.2 == limit && matches!(item.3, Change::Charge(_))
                    };
                    match items.iter_mut().find(same) {
                        Some((.., Change::Charge(sum))) => *sum = sum.saturating_add(units).min(MAX_SUMMED),
                        _ => items.push((index, field, limit, Change::Charge(units))),
                    }
                }
                Change::Refund { units, admitted } => {
                    items.push((index, field, limit, Change::Refund { units: units.min(MAX_UNITS), admitted }));
                }
            }
        }
        Items(items)
    }

    /// Names the items to a call of the script, seven arguments each.
    fn add_to(&self, invocation: &mut ScriptInvocation<'_>) {
        for &(index, field, limit, change) in &self.0 {
            invocation.arg(index).arg(field).arg(limit);
            match change {
                Change::Charge(units) => invocation.arg("charge").arg(units).arg(0).arg(0),
                Change::Refund { units, admitted } => {
                    invocation.arg("refund").arg(units).arg(admitted.at_ms).arg(admitted.busy)
                }
            };
        }
    }
}

/// Milliseconds (× units) one unit of a limit occupies its bucket: a limit of L a minute
/// holds 60 000 × L (as in the script).
const PERIOD: u64 = 60_000;

/// One limit's verdict on an admission of `units` under `limit` a minute, from the busy
/// value the script answered for it (`after`) and whether every limit of the key admitted
/// it (`all`): the same arithmetic the script would do, in exact integers.
fn limit_verdict(now_ms: u64, limit: u32, units: u64, all: bool, after: u64) -> LimitVerdict {
    let limit = u64::from(limit);
    let capacity = PERIOD * limit;
    // Admitted: `after` is what it needed. Refused: `after` is the bucket before it.
    let need = if all { after } else { after.saturating_add(PERIOD * units.min(limit)) };
    LimitVerdict {
        wait_ms: (need > capacity).then(|| (need - capacity).div_ceil(limit)),
        remaining: (capacity - after.min(capacity)) / PERIOD,
        reset_ms: after.div_ceil(limit),
        state: Admitted { at_ms: now_ms, busy: after },
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
    fn charges_of_one_limit_go_as_their_sum_and_refunds_one_each() {
        let correction =
            |key: &str, unit, per_minute, change| Correction { key_id: key.into(), unit, per_minute, change };
        let admitted = Admitted { at_ms: 1_733_580_000_123, busy: 600_000 };
        let refund = Change::Refund { units: 5, admitted };
        let corrections = [
            correction("a", Unit::Tokens, 100, Change::Charge(12)),
            correction("a", Unit::Tokens, 100, refund),
            correction("b", Unit::Tokens, 100, Change::Charge(7)),
            correction("a", Unit::Tokens, 100, Change::Charge(30)),
            // Another limit of "a", and "a" under another limit: charges of their own.
            correction("a", Unit::Requests, 100, Change::Charge(1)),
            correction("a", Unit::Tokens, 200, Change::Charge(4)),
            correction("a", Unit::Tokens, 100, refund),
            correction("a", Unit::Tokens, 100, Change::Charge(u64::MAX)),
            correction("b", Unit::Tokens, 100, Change::Charge(MAX_UNITS + 1)),
        ];
        let mut named = Vec::new();
        let items = Items::of(&mut Keys::default(), &corrections, |key| named.push(key.to_owned()));
        assert_eq!(named, ["a", "b"]);
        assert_eq!(
            items.0,
            [
                (1, "t", 100, Change::Charge(12 + 30 + MAX_UNITS)),
                (1, "t", 100, refund),
                (2, "t", 100, Change::Charge(7 + MAX_UNITS)),
                (1, "r", 100, Change::Charge(1)),
                (1, "t", 200, Change::Charge(4)),
                (1, "t", 100, refund),
            ]
        );
        let many = vec![correction("a", Unit::Tokens, 100, Change::Charge(MAX_UNITS)); 40];
        let items = Items::of(&mut Keys::default(), &many, |_| {});
        assert_eq!(items.0, [(1, "t", 100, Change::Charge(MAX_SUMMED))]);
    }

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
