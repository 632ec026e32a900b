//! PostgreSQL queries for holds: taking a batch of them (`hold_funds_many`, one call of
//! conditional updates per hold, in one transaction), reading them, and the statements a settlement batch
//! closes and checkpoints them with.

use std::collections::HashMap;

use sqlx::{Postgres, Transaction};

use super::PostgresDb;
use crate::rows::{HoldRecord, hold_columns};
use crate::{Hold, HoldOutcome, NanoUsd, NewHold, Progress, StoreError};

impl PostgresDb {
    /// Takes the holds in one call of `hold_funds_many` (one transaction); one outcome per
    /// hold, in the order given.
    pub(crate) async fn hold_many(&self, holds: &[NewHold]) -> Result<Vec<HoldOutcome>, StoreError> {
        let text = |f: fn(&NewHold) -> &str| holds.iter().map(f).collect::<Vec<&str>>();
        let outcomes: Vec<String> = self
            .on_hold_connection(async |connection| {
                sqlx::query_scalar("SELECT hold_funds_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                    .bind(text(|h| &h.request_id))
                    .bind(holds.iter().map(|h| h.account_id).collect::<Vec<i64>>())
                    .bind(text(|h| &h.key_id))
                    .bind(holds.iter().map(|h| h.amount.0).collect::<Vec<i64>>())
                    .bind(holds.iter().map(|h| h.enforce).collect::<Vec<bool>>())
                    .bind(text(|h| &h.replica))
                    .bind(text(|h| &h.model))
                    .bind(text(|h| &h.endpoint))
                    .bind(holds.iter().map(|h| h.stream).collect::<Vec<bool>>())
                    .bind(holds.iter().map(|h| h.created_at).collect::<Vec<i64>>())
                    .fetch_one(connection)
                    .await
            })
            .await?;
        if outcomes.len() != holds.len() {
            let answer = format!("hold_funds_many answered {} outcomes for {} holds", outcomes.len(), holds.len());
            return Err(StoreError::Database(sqlx::Error::Protocol(answer)));
        }
        outcomes.iter().map(|outcome| parse_outcome(outcome)).collect()
    }

    pub(crate) async fn open_holds(&self) -> Result<Vec<Hold>, StoreError> {
        let rows =
            sqlx::query_as::<_, HoldRecord>(concat!("SELECT ", hold_columns!(), " FROM holds ORDER BY created_at"))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(Hold::from).collect())
    }

    pub(crate) async fn open_hold_count(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds").fetch_one(&self.pool).await?;
        Ok(crate::rows::from_db_count(count))
    }

    pub(crate) async fn held(&self, account_id: i64) -> Result<NanoUsd, StoreError> {
        let held: Option<i64> = sqlx::query_scalar("SELECT held_nano FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(NanoUsd(held.unwrap_or(0)))
    }
}

/// `held`, `balance:N` (the account has N available) or `spend_limit:N` (the key has N
/// left), as `hold_funds_many` answers.
fn parse_outcome(outcome: &str) -> Result<HoldOutcome, StoreError> {
    let amount = |text: &str| text.parse::<i64>().map(|n| NanoUsd(n.max(0)));
    let parsed = match outcome.split_once(':') {
        None if outcome == "held" => Ok(HoldOutcome::Held),
        Some(("balance", left)) => amount(left).map(|available| HoldOutcome::Balance { available }),
        Some(("spend_limit", left)) => amount(left).map(|remaining| HoldOutcome::SpendLimit { remaining }),
        _ => return Err(StoreError::Database(sqlx::Error::Protocol(format!("unknown hold outcome '{outcome}'")))),
    };
    parsed.map_err(|_| StoreError::Database(sqlx::Error::Protocol(format!("unknown hold outcome '{outcome}'"))))
}

/// Deletes the holds of these requests and releases their sums on accounts and keys.
pub(super) async fn close(tx: &mut Transaction<'_, Postgres>, ids: &[&str]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let closed: Vec<(i64, String, i64)> =
        sqlx::query_as("DELETE FROM holds WHERE request_id = ANY($1) RETURNING account_id, key_id, amount_nano")
            .bind(ids)
            .persistent(false) // planned for the table as it is now: see `by_request_id`
            .fetch_all(&mut **tx)
            .await?;
    let mut accounts: HashMap<i64, i64> = HashMap::new();
    let mut keys: HashMap<&str, i64> = HashMap::new();
    for (account_id, key_id, amount) in &closed {
        *accounts.entry(*account_id).or_default() += amount;
        *keys.entry(key_id.as_str()).or_default() += amount;
    }
    // In id order, as every writer locks them, so that two batches never deadlock.
    let mut accounts: Vec<(i64, i64)> = accounts.into_iter().filter(|(_, a)| *a != 0).collect();
    accounts.sort_unstable();
    let mut keys: Vec<(&str, i64)> = keys.into_iter().filter(|(_, a)| *a != 0).collect();
    keys.sort_unstable();
    if !accounts.is_empty() {
        let (ids, amounts): (Vec<i64>, Vec<i64>) = accounts.into_iter().unzip();
        sqlx::query(
            "UPDATE accounts a SET held_nano = a.held_nano - r.amount \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS r(id, amount) WHERE a.id = r.id",
        )
        .bind(ids)
        .bind(amounts)
        .execute(&mut **tx)
        .await?;
    }
    if !keys.is_empty() {
        let (ids, amounts): (Vec<&str>, Vec<i64>) = keys.into_iter().unzip();
        sqlx::query(
            "UPDATE api_keys k SET held_nano = k.held_nano - r.amount \
             FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS r(id, amount) WHERE k.id = r.id",
        )
        .bind(ids)
        .bind(amounts)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Records what streams in flight have delivered so far.
pub(super) async fn checkpoint(tx: &mut Transaction<'_, Postgres>, progress: &[Progress]) -> Result<(), sqlx::Error> {
    if progress.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = progress.iter().map(|p| p.request_id.as_str()).collect();
    let delivered: Vec<i64> = progress.iter().map(|p| p.delivered.0).collect();
    let providers: Vec<&str> = progress.iter().map(|p| p.provider.as_str()).collect();
    let earners: Vec<Option<i64>> = progress.iter().map(|p| p.earning.map(|e| e.account_id)).collect();
    let shares: Vec<Option<i64>> =
        progress.iter().map(|p| p.earning.map(|e| crate::rows::to_db_count(e.share_ppb))).collect();
    sqlx::query(
        "UPDATE holds h SET delivered_nano = p.delivered, provider = p.provider, \
         earner_id = p.earner, earner_share_ppb = p.share \
         FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[]) \
         AS p(id, delivered, provider, earner, share) WHERE h.request_id = p.id",
    )
    .bind(ids)
    .bind(delivered)
    .bind(providers)
    .bind(earners)
    .bind(shares)
    .persistent(false) // planned for the table as it is now: see `by_request_id`
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// `by_request_id`: the statements that find holds by request id are planned at each
// execution, with the batch's ids as a constant, rather than once per connection. The holds
// table swings from a few rows (a quiet replica, just vacuumed) to many (load, long
// streams), and a prepared statement's generic plan is chosen once: one chosen while the
// table was tiny scanned it whole for every batch under load, comparing each row with each
// id of the batch (a parameter array cannot be hashed) — measured: 8–11 ms a statement at
// 2,500 requests a second, 20× the statement planned each time, which probes the primary
// key or hashes the ids. Off the request path: one plan per statement per batch.
