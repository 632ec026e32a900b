//! PostgreSQL queries for usage records and the charges they settle.

use std::collections::{HashMap, HashSet};

use sqlx::{Postgres, QueryBuilder, Transaction};

use super::PostgresDb;
use super::holds::{checkpoint, close};
use crate::rows::{UsageRow, to_db_count, usage_columns};
use crate::settle::{self, Funds};
use crate::{Batch, StoreError, UsageRecord};

/// Usage rows per multi-row INSERT (23 bound values each; PostgreSQL allows 65,535).
const USAGE_PER_STATEMENT: usize = 1000;

impl PostgresDb {
    /// Writes a batch in one transaction: checkpoints, a multi-row insert of usage
    /// (`RETURNING` what it actually inserted, so a repeated request id changes nothing),
    /// the rows of every account and key touched locked in id order (the order every
    /// writer takes, so batches of several replicas never deadlock), the holds closed,
    /// the charges (capped, see [`settle::capped`]), then balances and spends updated.
    pub(crate) async fn write_batch(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        checkpoint(&mut tx, batch.progress).await?;
        let mut inserted: HashSet<String> = HashSet::with_capacity(batch.usage.len());
        for chunk in batch.usage.chunks(USAGE_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Postgres>::new(concat!("INSERT INTO usage (", usage_columns!(), ") "));
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
                    .push_bind(to_db_count(r.usage.cache_write_tokens))
                    .push_bind(r.cost.0)
                    .push_bind(r.usage_source.as_str())
                    .push_bind(r.client_disconnected)
                    .push_bind(to_db_count(r.latency_ms))
                    .push_bind(r.created_at)
                    .push_bind(r.error_code.as_deref())
                    .push_bind(r.ttfb_ms.map(to_db_count))
                    .push_bind(to_db_count(r.usage.hosted.web_search))
                    .push_bind(to_db_count(r.usage.hosted.web_fetch));
            });
            insert.push(" ON CONFLICT (request_id) DO NOTHING RETURNING request_id");
            // Batch sizes vary, so these statements are not cached: a cache of each size would grow.
            let ids: Vec<String> = insert.build_query_scalar().persistent(false).fetch_all(&mut *tx).await?;
            inserted.extend(ids);
        }
        let closing: Vec<&str> = batch
            .usage
            .iter()
            .map(|r| r.request_id.as_str())
            .chain(batch.releases.iter().map(String::as_str))
            .collect();
        lock_rows(&mut tx, batch.usage, &closing).await?;
        close(&mut tx, &closing).await?;
        // The first record of a request id is the one stored; only it is charged.
        let recorded: Vec<&UsageRecord> = batch.usage.iter().filter(|r| inserted.remove(&r.request_id)).collect();
        let to_charge: Vec<&UsageRecord> = recorded.iter().copied().filter(|r| r.cost.0 > 0).collect();
        if to_charge.is_empty() {
            add_rollups(&mut tx, &recorded, &HashMap::new()).await?;
            tx.commit().await?;
            return Ok(());
        }
        let accounts: Vec<i64> = to_charge.iter().map(|r| r.account_id).collect();
        let rows: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT id, balance_nano, held_nano FROM accounts WHERE id = ANY($1)")
                .bind(&accounts)
                .fetch_all(&mut *tx)
                .await?;
        let funds: HashMap<i64, Funds> =
            rows.into_iter().map(|(id, balance, held)| (id, Funds { balance, held })).collect();
        let amounts = settle::capped(&to_charge.iter().map(|r| (r.account_id, r.cost.0)).collect::<Vec<_>>(), &funds);
        let charges: Vec<(&UsageRecord, i64)> = to_charge.into_iter().zip(amounts).collect();
        // The ledger's (request_id, kind) index keeps a charge idempotent even if another
        // path already wrote one; balances move only with the rows really inserted.
        let mut charged: HashSet<String> = HashSet::with_capacity(charges.len());
        for chunk in charges.chunks(USAGE_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO ledger (account_id, kind, amount_nano, request_id, memo, created_at) ",
            );
            insert.push_values(chunk, |mut row, (r, amount)| {
                row.push_bind(r.account_id)
                    .push_bind("charge")
                    .push_bind(-amount)
                    .push_bind(r.request_id.as_str())
                    .push_bind(settle::memo(r, *amount))
                    .push_bind(r.created_at);
            });
            insert.push(" ON CONFLICT (request_id, kind) WHERE request_id IS NOT NULL DO NOTHING RETURNING request_id");
            let ids: Vec<String> = insert.build_query_scalar().persistent(false).fetch_all(&mut *tx).await?;
            charged.extend(ids);
        }
        let charged: Vec<&(&UsageRecord, i64)> =
            charges.iter().filter(|(r, _)| charged.contains(&r.request_id)).collect();
        let amounts: HashMap<&str, i64> = charged.iter().map(|(r, amount)| (r.request_id.as_str(), *amount)).collect();
        add_rollups(&mut tx, &recorded, &amounts).await?;
        let (ids, amounts): (Vec<i64>, Vec<i64>) =
            settle::sums(charged.iter().map(|(r, amount)| (r.account_id, *amount))).into_iter().unzip();
        sqlx::query(
            "UPDATE accounts a SET balance_nano = a.balance_nano - c.amount \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS c(id, amount) WHERE a.id = c.id",
        )
        .bind(ids)
        .bind(amounts)
        .execute(&mut *tx)
        .await?;
        let (ids, amounts): (Vec<&str>, Vec<i64>) =
            settle::sums(charged.iter().map(|(r, amount)| (r.key_id.as_str(), *amount))).into_iter().unzip();
        sqlx::query(
            "UPDATE api_keys k SET spent_nano = k.spent_nano + c.amount \
             FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS c(id, amount) WHERE k.id = c.id",
        )
        .bind(ids)
        .bind(amounts)
        .execute(&mut *tx)
        .await?;
        pay_earnings(&mut tx, &charged).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn usage_by_request(&self, request_id: &str) -> Result<Option<UsageRecord>, StoreError> {
        let row =
            sqlx::query_as::<_, UsageRow>(concat!("SELECT ", usage_columns!(), " FROM usage WHERE request_id = $1"))
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

/// Credits instance owners their share of the charges just written: one `earning` row
/// per request (the (request_id, kind) index keeps it once however often it is
/// replayed), and each owner's balance by the rows really inserted.
async fn pay_earnings(tx: &mut Transaction<'_, Postgres>, charged: &[&(&UsageRecord, i64)]) -> Result<(), sqlx::Error> {
    let earnings = settle::earnings(charged);
    let mut paid: HashSet<String> = HashSet::with_capacity(earnings.len());
    for chunk in earnings.chunks(USAGE_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO ledger (account_id, kind, amount_nano, request_id, memo, created_at) ",
        );
        insert.push_values(chunk, |mut row, (owner, amount, r)| {
            row.push_bind(*owner)
                .push_bind("earning")
                .push_bind(*amount)
                .push_bind(r.request_id.as_str())
                .push_bind(settle::earning_memo(r))
                .push_bind(r.created_at);
        });
        insert.push(" ON CONFLICT (request_id, kind) WHERE request_id IS NOT NULL DO NOTHING RETURNING request_id");
        let ids: Vec<String> = insert.build_query_scalar().persistent(false).fetch_all(&mut **tx).await?;
        paid.extend(ids);
    }
    let owed =
        earnings.iter().filter(|(_, _, r)| paid.contains(&r.request_id)).map(|(owner, amount, _)| (*owner, *amount));
    let (ids, amounts): (Vec<i64>, Vec<i64>) = settle::sums(owed).into_iter().unzip();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE accounts a SET balance_nano = a.balance_nano + c.amount \
         FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS c(id, amount) WHERE a.id = c.id",
    )
    .bind(ids)
    .bind(amounts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Locks the accounts, then the keys, a batch touches, each in id order.
async fn lock_rows(
    tx: &mut Transaction<'_, Postgres>,
    usage: &[UsageRecord],
    closing: &[&str],
) -> Result<(), sqlx::Error> {
    let held: Vec<(i64, String)> = sqlx::query_as("SELECT account_id, key_id FROM holds WHERE request_id = ANY($1)")
        .bind(closing)
        .fetch_all(&mut **tx)
        .await?;
    // Instance owners are credited in this transaction too: their rows are locked in the
    // same single id-ordered pass.
    let owners = usage.iter().filter_map(|r| r.earning.map(|e| e.account_id));
    let accounts: Vec<i64> =
        usage.iter().map(|r| r.account_id).chain(held.iter().map(|(a, _)| *a)).chain(owners).collect();
    let keys: Vec<&str> = usage.iter().map(|r| r.key_id.as_str()).chain(held.iter().map(|(_, k)| k.as_str())).collect();
    sqlx::query("SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(accounts)
        .execute(&mut **tx)
        .await?;
    sqlx::query("SELECT id FROM api_keys WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(keys)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds what `recorded` (usage rows just inserted) brings to `usage_hourly`.
async fn add_rollups(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    recorded: &[&UsageRecord],
    charged: &HashMap<&str, i64>,
) -> Result<(), sqlx::Error> {
    let rows = settle::rollups(recorded, charged);
    for chunk in rows.chunks(ROLLUPS_PER_STATEMENT) {
        let mut upsert = settle::push_rollups::<Postgres>(chunk);
        upsert.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rollup rows per upsert: 9 bound values each.
const ROLLUPS_PER_STATEMENT: usize = 500;
