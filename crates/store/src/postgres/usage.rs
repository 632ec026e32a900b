//! PostgreSQL queries for usage records and the charges they settle.

use std::collections::{HashMap, HashSet};

use sqlx::{Postgres, Transaction};

use super::PostgresDb;
use super::holds::{checkpoint, close};
use crate::rows::{UsageRow, to_db_count, usage_columns};
use crate::settle::{self, Funds};
use crate::{Batch, StoreError, UsageRecord};

impl PostgresDb {
    /// Writes a batch in one transaction: checkpoints, one insert of usage over arrays
    /// (answering the request ids it skipped as already stored, so a repeated request id
    /// changes nothing),
    /// the rows of every account and key touched locked in id order (the order every
    /// writer takes, so batches of several replicas never deadlock), the holds closed,
    /// the charges (capped, see [`settle::capped`]), then balances and spends updated.
    /// Every ledger row's account is one of the rows locked here, or the whole batch is
    /// refused: the ledger has no foreign key (it cost a query and a lock per row).
    pub(crate) async fn write_batch(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        checkpoint(&mut tx, batch.progress).await?;
        let stored_before: HashSet<String> = insert_usage(&mut tx, batch.usage).await?;
        let closing: Vec<&str> = batch
            .usage
            .iter()
            .map(|r| r.request_id.as_str())
            .chain(batch.releases.iter().map(String::as_str))
            .collect();
        let locked = lock_rows(&mut tx, batch.usage, batch.releases).await?;
        close(&mut tx, &closing).await?;
        // The first record of a request id is the one stored; only it is charged.
        let recorded = settle::recorded(batch.usage, &stored_before);
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
        let entries: Vec<Entry> = charges
            .iter()
            .map(|(r, amount)| Entry {
                account_id: r.account_id,
                amount: -amount,
                request_id: &r.request_id,
                memo: settle::memo(r, *amount),
                created_at: r.created_at,
            })
            .collect();
        let charged_before = insert_ledger(&mut tx, "charge", &entries, &locked).await?;
        let charged: Vec<&(&UsageRecord, i64)> =
            charges.iter().filter(|(r, _)| !charged_before.contains(&r.request_id)).collect();
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
        pay_earnings(&mut tx, &charged, &locked).await?;
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
async fn pay_earnings(
    tx: &mut Transaction<'_, Postgres>,
    charged: &[&(&UsageRecord, i64)],
    locked: &HashSet<i64>,
) -> Result<(), StoreError> {
    let earnings = settle::earnings(charged);
    let entries: Vec<Entry> = earnings
        .iter()
        .map(|(owner, amount, r)| Entry {
            account_id: *owner,
            amount: *amount,
            request_id: &r.request_id,
            memo: settle::earning_memo(r),
            created_at: r.created_at,
        })
        .collect();
    let paid_before = insert_ledger(tx, "earning", &entries, locked).await?;
    let owed = earnings
        .iter()
        .filter(|(_, _, r)| !paid_before.contains(&r.request_id))
        .map(|(owner, amount, _)| (*owner, *amount));
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

/// Locks the accounts, then the keys, a batch touches, each in id order; answers the ids
/// of the accounts locked (those that exist). A usage record names its request's account
/// and key (those of its hold); only the holds released without one are looked up.
async fn lock_rows(
    tx: &mut Transaction<'_, Postgres>,
    usage: &[UsageRecord],
    releases: &[String],
) -> Result<HashSet<i64>, sqlx::Error> {
    let held: Vec<(i64, String)> = if releases.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as("SELECT account_id, key_id FROM holds WHERE request_id = ANY($1)")
            .bind(releases)
            .persistent(false) // planned for the table as it is now: see holds.rs `by_request_id`
            .fetch_all(&mut **tx)
            .await?
    };
    // Instance owners are credited in this transaction too: their rows are locked in the
    // same single id-ordered pass.
    let owners = usage.iter().filter_map(|r| r.earning.map(|e| e.account_id));
    let accounts: Vec<i64> =
        usage.iter().map(|r| r.account_id).chain(held.iter().map(|(a, _)| *a)).chain(owners).collect();
    let keys: Vec<&str> = usage.iter().map(|r| r.key_id.as_str()).chain(held.iter().map(|(_, k)| k.as_str())).collect();
    let locked: Vec<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(accounts)
        .fetch_all(&mut **tx)
        .await?;
    sqlx::query("SELECT id FROM api_keys WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(keys)
        .execute(&mut **tx)
        .await?;
    Ok(locked.into_iter().collect())
}

/// Adds what `recorded` (usage rows just inserted) brings to `usage_hourly`: one upsert
/// over arrays, whatever the batch's size.
async fn add_rollups(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    recorded: &[&UsageRecord],
    charged: &HashMap<&str, i64>,
) -> Result<(), sqlx::Error> {
    let rows = settle::rollups(recorded, charged);
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&settle::Rollup<'_>) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
    let text = |f: for<'r> fn(&'r settle::Rollup<'r>) -> &'r str| rows.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(
        "INSERT INTO usage_hourly (account_id, hour, model, key_id, provider, requests, prompt_tokens, \
         completion_tokens, cost_nano) \
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], \
         $7::BIGINT[], $8::BIGINT[], $9::BIGINT[]) \
         ON CONFLICT (account_id, hour, model, key_id, provider) DO UPDATE SET \
         requests = usage_hourly.requests + excluded.requests, \
         prompt_tokens = usage_hourly.prompt_tokens + excluded.prompt_tokens, \
         completion_tokens = usage_hourly.completion_tokens + excluded.completion_tokens, \
         cost_nano = usage_hourly.cost_nano + excluded.cost_nano",
    )
    .bind(column(|r| r.account_id))
    .bind(column(|r| r.hour))
    .bind(text(|r| r.model))
    .bind(text(|r| r.key_id))
    .bind(text(|r| r.provider))
    .bind(column(|r| r.requests))
    .bind(column(|r| r.prompt_tokens))
    .bind(column(|r| r.completion_tokens))
    .bind(column(|r| r.cost))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts usage rows in one statement over arrays (prepared once, whatever the batch's
/// size); answers the request ids it skipped because a row was already stored (`ON
/// CONFLICT DO NOTHING`: a repeated request id changes nothing) — usually none, so
/// usually no rows come back (answering every inserted id was two rows a request, each
/// sent, decoded and hashed), and when as many rows went in as ids were given, the
/// skipped ones are not even looked for (a one-time filter). A request id twice in
/// `usage` is stored once and not answered.
async fn insert_usage(
    tx: &mut Transaction<'_, Postgres>,
    usage: &[UsageRecord],
) -> Result<HashSet<String>, sqlx::Error> {
    if usage.is_empty() {
        return Ok(HashSet::new());
    }
    let text = |f: fn(&UsageRecord) -> &str| usage.iter().map(f).collect::<Vec<&str>>();
    let number = |f: fn(&UsageRecord) -> i64| usage.iter().map(f).collect::<Vec<i64>>();
    let flag = |f: fn(&UsageRecord) -> bool| usage.iter().map(f).collect::<Vec<bool>>();
    let ids: Vec<String> = sqlx::query_scalar(concat!(
        "WITH inserted AS (INSERT INTO usage (",
        usage_columns!(),
        ") SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
         $7::TEXT[], $8::BOOLEAN[], $9::BIGINT[], $10::BIGINT[], $11::BIGINT[], $12::BIGINT[], $13::BIGINT[], \
         $14::BIGINT[], $15::BIGINT[], $16::TEXT[], $17::BOOLEAN[], $18::BIGINT[], $19::BIGINT[], $20::TEXT[], \
         $21::BIGINT[], $22::BIGINT[], $23::BIGINT[]) \
         ON CONFLICT (request_id) DO NOTHING RETURNING request_id) \
         SELECT DISTINCT u.id FROM UNNEST($1::TEXT[]) AS u(id) \
         WHERE (SELECT count(*) FROM inserted) < cardinality($1::TEXT[]) \
         AND NOT EXISTS (SELECT 1 FROM inserted i WHERE i.request_id = u.id)"
    ))
    .bind(text(|r| &r.request_id))
    .bind(text(|r| &r.key_id))
    .bind(number(|r| r.account_id))
    .bind(text(|r| &r.model))
    .bind(text(|r| &r.provider))
    .bind(text(|r| &r.upstream_model))
    .bind(text(|r| &r.endpoint))
    .bind(flag(|r| r.stream))
    .bind(number(|r| i64::from(r.status)))
    .bind(number(|r| to_db_count(r.usage.prompt_tokens)))
    .bind(number(|r| to_db_count(r.usage.completion_tokens)))
    .bind(number(|r| to_db_count(r.usage.cached_tokens)))
    .bind(number(|r| to_db_count(r.usage.reasoning_tokens)))
    .bind(number(|r| to_db_count(r.usage.cache_write_tokens)))
    .bind(number(|r| r.cost.0))
    .bind(text(|r| r.usage_source.as_str()))
    .bind(flag(|r| r.client_disconnected))
    .bind(number(|r| to_db_count(r.latency_ms)))
    .bind(number(|r| r.created_at))
    .bind(usage.iter().map(|r| r.error_code.as_deref()).collect::<Vec<Option<&str>>>())
    .bind(usage.iter().map(|r| r.ttfb_ms.map(to_db_count)).collect::<Vec<Option<i64>>>())
    .bind(number(|r| to_db_count(r.usage.hosted.web_search)))
    .bind(number(|r| to_db_count(r.usage.hosted.web_fetch)))
    .fetch_all(&mut **tx)
    .await?;
    Ok(ids.into_iter().collect())
}

/// One ledger row to insert.
struct Entry<'a> {
    account_id: i64,
    amount: i64,
    request_id: &'a str,
    memo: String,
    created_at: i64,
}

/// Inserts ledger rows of one kind in one statement over arrays; answers the request ids
/// it skipped because that row was already written (the ledger's (request_id, kind) index
/// keeps each once however often it is replayed) — usually none, as for
/// [`insert_usage`]. The entries' request ids are distinct. Each row's account must be
/// among those `locked` by this transaction.
async fn insert_ledger(
    tx: &mut Transaction<'_, Postgres>,
    kind: &str,
    entries: &[Entry<'_>],
    locked: &HashSet<i64>,
) -> Result<HashSet<String>, StoreError> {
    if let Some(stray) = entries.iter().find(|e| !locked.contains(&e.account_id)) {
        return Err(StoreError::AccountNotFound(stray.account_id.to_string()));
    }
    if entries.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<String> = sqlx::query_scalar(
        "WITH inserted AS (INSERT INTO ledger (account_id, kind, amount_nano, request_id, memo, created_at) \
         SELECT e.account_id, $2, e.amount, e.request_id, e.memo, e.created_at \
         FROM UNNEST($1::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[]) \
         AS e(account_id, amount, request_id, memo, created_at) \
         ON CONFLICT (request_id, kind) WHERE request_id IS NOT NULL DO NOTHING RETURNING request_id) \
         SELECT u.id FROM UNNEST($4::TEXT[]) AS u(id) \
         WHERE (SELECT count(*) FROM inserted) < cardinality($4::TEXT[]) \
         AND NOT EXISTS (SELECT 1 FROM inserted i WHERE i.request_id = u.id)",
    )
    .bind(entries.iter().map(|e| e.account_id).collect::<Vec<i64>>())
    .bind(kind)
    .bind(entries.iter().map(|e| e.amount).collect::<Vec<i64>>())
    .bind(entries.iter().map(|e| e.request_id).collect::<Vec<&str>>())
    .bind(entries.iter().map(|e| e.memo.as_str()).collect::<Vec<&str>>())
    .bind(entries.iter().map(|e| e.created_at).collect::<Vec<i64>>())
    .fetch_all(&mut **tx)
    .await?;
    Ok(ids.into_iter().collect())
}
