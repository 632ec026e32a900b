//! What a batch of settlements charges, the same for every backend: each request's cost,
//! except that a charge never takes an account below what it still holds for other
//! requests in flight (the CHECK both schemas carry). Usage above a request's own hold
//! may take a balance below zero only when nothing else is held.

use std::collections::{HashMap, HashSet};

use tokenrouter_core::{NanoUsd, Usage};

use crate::{Hold, UsageRecord, UsageSource};

/// The provider named in the usage row of a request whose gateway died.
pub const LOST_REPLICA: &str = "(replica lost)";

/// The usage row that ends the hold of a request whose gateway died before settling it:
/// charged what its client had received by the last checkpoint (a stream already
/// answered 200), the rest released; an instance that served it earns its share of that.
pub fn orphan_record(hold: &Hold, now: i64) -> UsageRecord {
    let delivered = hold.delivered.0 > 0;
    let provider = hold.provider.as_deref().filter(|_| delivered).unwrap_or(LOST_REPLICA);
    UsageRecord {
        request_id: hold.request_id.clone(),
        key_id: hold.key_id.clone(),
        account_id: hold.account_id,
        model: hold.model.clone(),
        provider: provider.to_owned(),
        upstream_model: String::new(),
        endpoint: hold.endpoint.clone(),
        stream: hold.stream,
        status: if hold.stream && delivered { 200 } else { 502 },
        usage: Usage::default(),
        cost: if delivered { hold.delivered } else { NanoUsd::ZERO },
        usage_source: if delivered { UsageSource::Counted } else { UsageSource::None },
        client_disconnected: true,
        latency_ms: u64::try_from(now.saturating_sub(hold.created_at).saturating_mul(1000)).unwrap_or(0),
        created_at: now,
        error_code: None,
        ttfb_ms: None,
        earning: hold.earning.filter(|_| delivered),
    }
}

/// An account's funds inside the settling transaction, after this batch's holds were
/// released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Funds {
    pub balance: i64,
    pub held: i64,
}

/// The records a batch stores: those whose request id had no row before it, and of a
/// request id given twice, the first (the one stored; only it is charged).
pub(crate) fn recorded<'a>(usage: &'a [UsageRecord], stored_before: &HashSet<String>) -> Vec<&'a UsageRecord> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(usage.len());
    usage.iter().filter(|r| !stored_before.contains(&r.request_id) && seen.insert(r.request_id.as_str())).collect()
}

/// The amounts to charge for `charges` (account id, cost), in order.
pub(crate) fn capped(charges: &[(i64, i64)], funds: &HashMap<i64, Funds>) -> Vec<i64> {
    let mut available: HashMap<i64, Option<i64>> = HashMap::new();
    charges
        .iter()
        .map(|&(account_id, cost)| {
            let left = available.entry(account_id).or_insert_with(|| {
                let funds = funds.get(&account_id)?;
                (funds.held > 0).then(|| (funds.balance - funds.held).max(0))
            });
            match left {
                None => cost,
                Some(left) => {
                    let charge = cost.min(*left);
                    *left -= charge;
                    charge
                }
            }
        })
        .collect()
}

/// The ledger memo of a charge: the model, and the cap when one applied.
pub(crate) fn memo(record: &UsageRecord, charged: i64) -> String {
    if charged == record.cost.0 {
        record.model.clone()
    } else {
        format!(
            "{} (cost {} USD, capped at {} USD: the rest of the balance is held)",
            record.model,
            record.cost,
            NanoUsd(charged)
        )
    }
}

/// An instance owner's earning on a request's charge: (owner's account, amount, the
/// charged record), for each charge that earns something.
pub(crate) fn earnings<'a>(charged: &[&(&'a UsageRecord, i64)]) -> Vec<(i64, i64, &'a UsageRecord)> {
    charged
        .iter()
        .filter_map(|(r, amount)| {
            let earning = r.earning?;
            let earned = earning.of(*amount);
            (earned > 0).then_some((earning.account_id, earned, *r))
        })
        .collect()
}

/// The ledger memo of an earning.
pub(crate) fn earning_memo(record: &UsageRecord) -> String {
    format!("{} served by {}", record.model, record.provider)
}

/// One row of `usage_hourly`'s increments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rollup<'a> {
    pub account_id: i64,
    pub hour: i64,
    pub model: &'a str,
    pub key_id: &'a str,
    pub provider: &'a str,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: i64,
}

/// What newly recorded usage adds to `usage_hourly`, with `charged` the ledger's charge of
/// each request (absent: nothing charged); sorted, so that every writer updates rows in
/// one order.
pub(crate) fn rollups<'a>(inserted: &[&'a UsageRecord], charged: &HashMap<&str, i64>) -> Vec<Rollup<'a>> {
    let mut groups: HashMap<(i64, i64, &str, &str, &str), Rollup<'a>> = HashMap::new();
    for r in inserted {
        let hour = r.created_at - r.created_at.rem_euclid(3600);
        let row = groups.entry((r.account_id, hour, &r.model, &r.key_id, &r.provider)).or_insert(Rollup {
            account_id: r.account_id,
            hour,
            model: &r.model,
            key_id: &r.key_id,
            provider: &r.provider,
            requests: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost: 0,
        });
        row.requests += 1;
        row.prompt_tokens = row.prompt_tokens.saturating_add(crate::rows::to_db_count(r.usage.prompt_tokens));
        row.completion_tokens =
            row.completion_tokens.saturating_add(crate::rows::to_db_count(r.usage.completion_tokens));
        row.cost = row.cost.saturating_add(charged.get(r.request_id.as_str()).copied().unwrap_or(0));
    }
    let mut rows: Vec<Rollup<'a>> = groups.into_values().collect();
    rows.sort();
    rows
}

/// Sums per id of what `items` say, skipping zeros.
pub(crate) fn sums<K: std::hash::Hash + Eq>(items: impl IntoIterator<Item = (K, i64)>) -> Vec<(K, i64)> {
    let mut map: HashMap<K, i64> = HashMap::new();
    for (k, v) in items {
        let sum = map.entry(k).or_default();
        *sum = sum.saturating_add(v);
    }
    map.into_iter().filter(|(_, v)| *v != 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_what_other_requests_hold() {
        let funds = HashMap::from([(1, Funds { balance: 100, held: 60 }), (2, Funds { balance: 5, held: 0 })]);
        // Account 1 may lose 40 at most; account 2 holds nothing, so it is charged in full.
        assert_eq!(capped(&[(1, 30), (2, 9), (1, 30), (1, 5)], &funds), vec![30, 9, 10, 0]);
        let over = HashMap::from([(1, Funds { balance: 10, held: 20 })]);
        assert_eq!(capped(&[(1, 7)], &over), vec![0], "already below what it holds: nothing more");
        assert_eq!(capped(&[(3, 7)], &funds), vec![7], "unknown accounts are not capped");
    }
}
