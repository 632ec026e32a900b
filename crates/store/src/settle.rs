//! What a batch of settlements charges, the same for every backend: each request's cost,
//! except that a charge never takes an account below what it still holds for other
//! requests in flight (the CHECK both schemas carry). Usage above a request's own hold
//! may take a balance below zero only when nothing else is held.

use std::collections::HashMap;

use tokenrouter_core::{NanoUsd, Usage};

use crate::{Hold, UsageRecord, UsageSource};

/// The provider named in the usage row of a request whose gateway died.
pub const LOST_REPLICA: &str = "(replica lost)";

/// The usage row that ends the hold of a request whose gateway died before settling it:
/// charged what its client had received by the last checkpoint (a stream already
/// answered 200), the rest released.
pub fn orphan_record(hold: &Hold, now: i64) -> UsageRecord {
    let delivered = hold.delivered.0 > 0;
    UsageRecord {
        request_id: hold.request_id.clone(),
        key_id: hold.key_id.clone(),
        account_id: hold.account_id,
        model: hold.model.clone(),
        provider: LOST_REPLICA.to_owned(),
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
    }
}

/// An account's funds inside the settling transaction, after this batch's holds were
/// released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Funds {
    pub balance: i64,
    pub held: i64,
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
