//! SQLite queries for usage records and the charges they settle.

use std::collections::{HashMap, HashSet};

use sqlx::{FromRow, QueryBuilder, Sqlite};
use tokenrouter_core::{NanoUsd, Usage};

use super::{SqliteDb, corrupt, from_db_count, to_db_count};
use crate::{Hold, StoreError, UsageRecord, UsageSource};

#[derive(FromRow)]
struct UsageRow {
    request_id: String,
    key_id: String,
    account_id: i64,
    model: String,
    provider: String,
    upstream_model: String,
    endpoint: String,
    stream: bool,
    status: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    reasoning_tokens: i64,
    cost_nano: i64,
    usage_source: String,
    client_disconnected: bool,
    latency_ms: i64,
    created_at: i64,
}

impl TryFrom<UsageRow> for UsageRecord {
    type Error = sqlx::Error;

    fn try_from(r: UsageRow) -> Result<UsageRecord, sqlx::Error> {
        let status =
            u16::try_from(r.status).map_err(|_| corrupt("status", format!("{} is not an HTTP status", r.status)))?;
        let usage_source = UsageSource::parse(&r.usage_source)
            .ok_or_else(|| corrupt("usage_source", format!("unknown value '{}'", r.usage_source)))?;
        Ok(UsageRecord {
            request_id: r.request_id,
            key_id: r.key_id,
            account_id: r.account_id,
            model: r.model,
            provider: r.provider,
            upstream_model: r.upstream_model,
            endpoint: r.endpoint,
            stream: r.stream,
            status,
            usage: Usage {
                prompt_tokens: from_db_count(r.prompt_tokens),
                completion_tokens: from_db_count(r.completion_tokens),
                cached_tokens: from_db_count(r.cached_tokens),
                cache_write_tokens: 0,
                reasoning_tokens: from_db_count(r.reasoning_tokens),
            },
            cost: NanoUsd(r.cost_nano),
            usage_source,
            client_disconnected: r.client_disconnected,
            latency_ms: from_db_count(r.latency_ms),
            created_at: r.created_at,
        })
    }
}

/// Rows per multi-row INSERT: 18 bound values each stays far below SQLite's limit of
/// 32,766 variables per statement.
const ROWS_PER_STATEMENT: usize = 200;

impl SqliteDb {
    /// Writes a batch in one transaction with a handful of statements: multi-row inserts
    /// for usage and charges (each `RETURNING` what it actually inserted, so a repeated
    /// request id changes nothing), then one balance and one spend update per account
    /// and key touched.
    pub(crate) async fn record_usage(
        &self,
        holds: &[Hold],
        batch: &[UsageRecord],
        closed: &[String],
    ) -> Result<(), StoreError> {
        if batch.is_empty() && holds.is_empty() && closed.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Holds opened in this batch first, then the holds of settled requests closed.
        for chunk in holds.chunks(ROWS_PER_STATEMENT) {
            super::holds::insert(chunk).build().persistent(false).execute(&mut *tx).await?;
        }
        for chunk in closed.chunks(ROWS_PER_STATEMENT) {
            super::holds::delete(chunk).build().persistent(false).execute(&mut *tx).await?;
        }
        let mut inserted: HashSet<String> = HashSet::with_capacity(batch.len());
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO usage (request_id, key_id, account_id, model, provider, \
                 upstream_model, endpoint, stream, status, prompt_tokens, completion_tokens, \
                 cached_tokens, reasoning_tokens, cost_nano, usage_source, client_disconnected, \
                 latency_ms, created_at) ",
            );
            insert.push_values(chunk, |mut row, r| {
                row.push_bind(r.request_id.as_str())
                    .push_bind(r.key_id.as_str())
                    .push_bind(r.account_id)
                    .push_bind(r.model.as_str())
                    .push_bind(r.provider.as_str())
                    .push_bind(r.upstream_model.as_str())
                    .push_bind(r.endpoint.as_str())
                    .push_bind(r.stream)
                    .push_bind(i64::from(r.status))
                    .push_bind(to_db_count(r.usage.prompt_tokens))
                    .push_bind(to_db_count(r.usage.completion_tokens))
                    .push_bind(to_db_count(r.usage.cached_tokens))
                    .push_bind(to_db_count(r.usage.reasoning_tokens))
                    .push_bind(r.cost.0)
                    .push_bind(r.usage_source.as_str())
                    .push_bind(r.client_disconnected)
                    .push_bind(to_db_count(r.latency_ms))
                    .push_bind(r.created_at);
            });
            insert.push(" RETURNING request_id");
            // Batch sizes vary, so these statements are not cached: a cache of each size would grow.
            let ids: Vec<String> = insert.build_query_scalar().persistent(false).fetch_all(&mut *tx).await?;
            inserted.extend(ids);
        }
        // The first record of a request id is the one stored; only it is charged.
        let to_charge: Vec<&UsageRecord> =
            batch.iter().filter(|r| inserted.remove(&r.request_id) && r.cost.0 > 0).collect();
        // The ledger's (request_id, kind) index keeps a charge idempotent even if another
        // path already wrote one; balances move only with the rows really inserted.
        let mut charged: HashSet<String> = HashSet::with_capacity(to_charge.len());
        for chunk in to_charge.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO ledger (account_id, kind, amount_nano, request_id, memo, created_at) ",
            );
            insert.push_values(chunk, |mut row, r| {
                row.push_bind(r.account_id)
                    .push_bind("charge")
                    .push_bind(-r.cost.0)
                    .push_bind(r.request_id.as_str())
                    .push_bind(r.model.as_str())
                    .push_bind(r.created_at);
            });
            insert.push(" RETURNING request_id");
            let ids: Vec<String> = insert.build_query_scalar().persistent(false).fetch_all(&mut *tx).await?;
            charged.extend(ids);
        }
        let mut per_account: HashMap<i64, i64> = HashMap::new();
        let mut per_key: HashMap<&str, i64> = HashMap::new();
        for r in to_charge.iter().filter(|r| charged.contains(&r.request_id)) {
            let sum = per_account.entry(r.account_id).or_default();
            *sum = sum.saturating_add(r.cost.0);
            let sum = per_key.entry(r.key_id.as_str()).or_default();
            *sum = sum.saturating_add(r.cost.0);
        }
        for (account_id, cost) in per_account {
            sqlx::query("UPDATE accounts SET balance_nano = balance_nano - ? WHERE id = ?")
                .bind(cost)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
        }
        for (key_id, cost) in per_key {
            sqlx::query("UPDATE api_keys SET spent_nano = spent_nano + ? WHERE id = ?")
                .bind(cost)
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn usage_by_request(&self, request_id: &str) -> Result<Option<UsageRecord>, StoreError> {
        let row = sqlx::query_as::<_, UsageRow>(
            "SELECT request_id, key_id, account_id, model, provider, upstream_model, endpoint, \
             stream, status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, \
             cost_nano, usage_source, client_disconnected, latency_ms, created_at \
             FROM usage WHERE request_id = ?",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(UsageRecord::try_from).transpose()?)
    }

    pub(crate) async fn usage_count(&self) -> Result<i64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage").fetch_one(&self.pool).await?;
        Ok(count)
    }
}
