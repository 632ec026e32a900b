//! SQLite queries for usage records and the charges they settle.

use sqlx::FromRow;
use tokenrouter_core::{NanoUsd, Usage};

use super::{SqliteDb, corrupt, from_db_count, to_db_count};
use crate::{StoreError, UsageRecord, UsageSource};

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
        let status = u16::try_from(r.status)
            .map_err(|_| corrupt("status", format!("{} is not an HTTP status", r.status)))?;
        let usage_source = UsageSource::parse(&r.usage_source).ok_or_else(|| {
            corrupt(
                "usage_source",
                format!("unknown value '{}'", r.usage_source),
            )
        })?;
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

// The same statement texts are used for every record of a batch, so the connection's
// statement cache prepares each once and reuses it for the rest of the transaction.
const INSERT_USAGE: &str = "INSERT OR IGNORE INTO usage (request_id, key_id, account_id, model, \
     provider, upstream_model, endpoint, stream, status, prompt_tokens, completion_tokens, \
     cached_tokens, reasoning_tokens, cost_nano, usage_source, client_disconnected, latency_ms, \
     created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const INSERT_CHARGE: &str = "INSERT OR IGNORE INTO ledger \
     (account_id, kind, amount_nano, request_id, memo, created_at) \
     VALUES (?, 'charge', ?, ?, ?, ?)";
const DEBIT_ACCOUNT: &str = "UPDATE accounts SET balance_nano = balance_nano - ? WHERE id = ?";
const ADD_KEY_SPEND: &str = "UPDATE api_keys SET spent_nano = spent_nano + ? WHERE id = ?";

impl SqliteDb {
    pub(crate) async fn record_usage(&self, batch: &[UsageRecord]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for r in batch {
            let inserted = sqlx::query(INSERT_USAGE)
                .bind(&r.request_id)
                .bind(&r.key_id)
                .bind(r.account_id)
                .bind(&r.model)
                .bind(&r.provider)
                .bind(&r.upstream_model)
                .bind(&r.endpoint)
                .bind(r.stream)
                .bind(i64::from(r.status))
                .bind(to_db_count(r.usage.prompt_tokens))
                .bind(to_db_count(r.usage.completion_tokens))
                .bind(to_db_count(r.usage.cached_tokens))
                .bind(to_db_count(r.usage.reasoning_tokens))
                .bind(r.cost.0)
                .bind(r.usage_source.as_str())
                .bind(r.client_disconnected)
                .bind(to_db_count(r.latency_ms))
                .bind(r.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // A request id seen before changes nothing: no second usage row, no second charge.
            if inserted == 0 || r.cost.0 <= 0 {
                continue;
            }
            // The ledger's (request_id, kind) index makes the charge itself idempotent too;
            // the balance and the key's spend move only with a new ledger row.
            let charged = sqlx::query(INSERT_CHARGE)
                .bind(r.account_id)
                .bind(-r.cost.0)
                .bind(&r.request_id)
                .bind(&r.model)
                .bind(r.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if charged == 0 {
                continue;
            }
            sqlx::query(DEBIT_ACCOUNT)
                .bind(r.cost.0)
                .bind(r.account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(ADD_KEY_SPEND)
                .bind(r.cost.0)
                .bind(&r.key_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn usage_by_request(
        &self,
        request_id: &str,
    ) -> Result<Option<UsageRecord>, StoreError> {
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
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage")
            .fetch_one(&self.pool)
            .await?;
        Ok(count)
    }
}
