//! SQLite queries for usage records and the charges they settle.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use rusqlite::{Connection, params};

use super::SqliteDb;
use super::holds::{checkpoint, close};
use super::writer::{begin, commit, end_open_transaction};
use crate::rows::{UsageRow, to_db_count, usage_columns};
use crate::settle::{self, Funds};
use crate::{Batch, Progress, StoreError, UsageRecord};

/// A batch as the writing connection's thread takes it: its own copy.
struct OwnedBatch {
    usage: Vec<UsageRecord>,
    releases: Vec<String>,
    progress: Vec<Progress>,
}

impl SqliteDb {
    /// Writes a batch in one transaction: checkpoints, the usage rows not stored yet (so a
    /// repeated request id changes nothing), the closing of holds, the charges (capped, see
    /// [`settle::capped`]), then one balance and one spend update per account and key.
    /// One job on the writing connection's thread, which runs to its end even if this
    /// future is dropped.
    ///
    /// It commits with `synchronous = FULL` (on disk before the usage journal that carried
    /// it is emptied), on the connection holds are taken on, which otherwise runs with
    /// `NORMAL` (holds rely on that: they do not set it), and which it is set back to
    /// whatever happens.
    pub(crate) async fn write_batch(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        let batch = OwnedBatch {
            usage: batch.usage.to_vec(),
            releases: batch.releases.to_vec(),
            progress: batch.progress.to_vec(),
        };
        self.writer.run(move |connection| settle_synced(connection, &batch)).await
    }

    pub(crate) async fn usage_by_request(&self, request_id: &str) -> Result<Option<UsageRecord>, StoreError> {
        let row =
            sqlx::query_as::<_, UsageRow>(concat!("SELECT ", usage_columns!(), " FROM usage WHERE request_id = ?"))
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

/// [`settle`] committed with `synchronous = FULL`, then `NORMAL` again, as holds expect.
fn settle_synced(connection: &Connection, batch: &OwnedBatch) -> Result<(), StoreError> {
    connection.prepare_cached("PRAGMA synchronous = FULL")?.execute([])?;
    let settled = settle(connection, batch);
    if settled.is_err() {
        end_open_transaction(connection);
    }
    let normal = connection.prepare_cached("PRAGMA synchronous = NORMAL").and_then(|mut s| s.execute([]));
    match (settled, normal) {
        (Err(e), Err(pragma)) => {
            tracing::warn!(error = %pragma, "could not set the writing connection back to synchronous = NORMAL");
            Err(e)
        }
        (settled, normal) => settled.and(normal.map(drop).map_err(StoreError::from)),
    }
}

/// The settlement of `batch` in one transaction. Each row is one execution of a prepared
/// statement; an insert that changed no row (`OR IGNORE`: its request id already has one,
/// from an earlier batch or earlier in this one) is neither counted nor charged.
fn settle(connection: &Connection, batch: &OwnedBatch) -> Result<(), StoreError> {
    begin(connection)?;
    checkpoint(connection, &batch.progress)?;
    let recorded = insert_usage(connection, &batch.usage)?;
    let closing: Vec<&str> =
        batch.usage.iter().map(|r| r.request_id.as_str()).chain(batch.releases.iter().map(String::as_str)).collect();
    close(connection, &closing)?;
    let to_charge: Vec<&UsageRecord> = recorded.iter().copied().filter(|r| r.cost.0 > 0).collect();
    if to_charge.is_empty() {
        add_rollups(connection, &recorded, &HashMap::new())?;
        return commit(connection);
    }
    let funds = funds(connection, &to_charge)?;
    let amounts = settle::capped(&to_charge.iter().map(|r| (r.account_id, r.cost.0)).collect::<Vec<_>>(), &funds);
    // The ledger's (request_id, kind) index keeps a charge idempotent even if another
    // path already wrote one; balances move only with the rows this batch adds.
    let charges: Vec<(&UsageRecord, i64)> = to_charge.into_iter().zip(amounts).collect();
    let rows: Vec<LedgerRow> = charges
        .iter()
        .map(|(r, amount)| (r.account_id, -amount, r.request_id.as_str(), settle::memo(r, *amount), r.created_at))
        .collect();
    let added = add_to_ledger(connection, "charge", &rows)?;
    let charged: Vec<&(&UsageRecord, i64)> = charges.iter().filter(|(r, _)| added.contains(&r.request_id)).collect();
    let amounts: HashMap<&str, i64> = charged.iter().map(|(r, amount)| (r.request_id.as_str(), *amount)).collect();
    add_rollups(connection, &recorded, &amounts)?;
    let mut debit = connection.prepare_cached("UPDATE accounts SET balance_nano = balance_nano - ?1 WHERE id = ?2")?;
    for (account_id, cost) in settle::sums(charged.iter().map(|(r, amount)| (r.account_id, *amount))) {
        debit.execute([cost, account_id])?;
    }
    let mut spend = connection.prepare_cached("UPDATE api_keys SET spent_nano = spent_nano + ?1 WHERE id = ?2")?;
    for (key_id, cost) in settle::sums(charged.iter().map(|(r, amount)| (r.key_id.as_str(), *amount))) {
        spend.execute(params![cost, key_id])?;
    }
    pay_earnings(connection, &charged)?;
    commit(connection)
}

/// Inserts the usage rows of `usage` that have none yet, in order; answers those it inserted.
fn insert_usage<'a>(connection: &Connection, usage: &'a [UsageRecord]) -> Result<Vec<&'a UsageRecord>, StoreError> {
    let mut insert = connection.prepare_cached(concat!(
        "INSERT OR IGNORE INTO usage (",
        usage_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
    ))?;
    let mut recorded = Vec::with_capacity(usage.len());
    for r in usage {
        let inserted = insert.execute(params![
            r.request_id,
            r.key_id,
            r.account_id,
            r.model,
            r.provider,
            r.upstream_model,
            r.endpoint,
            r.stream,
            i64::from(r.status),
            to_db_count(r.usage.prompt_tokens),
            to_db_count(r.usage.completion_tokens),
            to_db_count(r.usage.cached_tokens),
            to_db_count(r.usage.reasoning_tokens),
            to_db_count(r.usage.cache_write_tokens),
            r.cost.0,
            r.usage_source.as_str(),
            r.client_disconnected,
            to_db_count(r.latency_ms),
            r.created_at,
            r.error_code,
            r.ttfb_ms.map(to_db_count),
            to_db_count(r.usage.hosted.web_search),
            to_db_count(r.usage.hosted.web_fetch)
        ])?;
        if inserted == 1 {
            recorded.push(r);
        }
    }
    Ok(recorded)
}

/// A ledger row to add: account, signed amount, request id, memo, time.
type LedgerRow<'a> = (i64, i64, &'a str, String, i64);

/// The sizes of the multi-row INSERT of ledger rows, as for usage rows: a batch's rows go
/// [`LEDGER_LARGEST`] at a time, each group in the smallest size that holds it, padded with
/// rows of NULLs that `OR IGNORE` skips (their columns are `NOT NULL`). One row per
/// statement cost ≈ 15,000 instructions more a request: the `CHECK (kind IN (…))` builds a
/// temporary b-tree of its list each time the statement runs.
const LEDGER_SIZES: [usize; 3] = [8, 32, LEDGER_LARGEST];
const LEDGER_LARGEST: usize = 128;

/// The INSERT of `LEDGER_SIZES[i]` ledger rows, answering the request ids it added.
fn ledger_insert(i: usize) -> &'static str {
    static STATEMENTS: LazyLock<Vec<String>> = LazyLock::new(|| {
        LEDGER_SIZES
            .iter()
            .map(|&n| {
                format!(
                    "INSERT OR IGNORE INTO ledger (account_id, kind, amount_nano, request_id, memo, created_at) \
                     VALUES {} RETURNING request_id",
                    vec!["(?, ?, ?, ?, ?, ?)"; n].join(", ")
                )
            })
            .collect()
    });
    &STATEMENTS[i]
}

/// Adds `rows` of `kind` to the ledger; answers the request ids added, leaving out those
/// that already had a row of that kind (the (request_id, kind) index ignores them).
fn add_to_ledger(connection: &Connection, kind: &str, rows: &[LedgerRow<'_>]) -> Result<HashSet<String>, StoreError> {
    let mut added = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(LEDGER_LARGEST) {
        let size = LEDGER_SIZES.iter().position(|&n| n >= chunk.len()).unwrap_or(LEDGER_SIZES.len() - 1);
        let mut insert = connection.prepare_cached(ledger_insert(size))?;
        let mut at = 0;
        let mut bind = |value: &dyn rusqlite::ToSql| {
            at += 1;
            insert.raw_bind_parameter(at, value)
        };
        for (account, amount, request_id, memo, created_at) in chunk {
            bind(account)?;
            bind(&kind)?;
            bind(amount)?;
            bind(request_id)?;
            bind(memo)?;
            bind(created_at)?;
        }
        for _ in chunk.len() * 6..LEDGER_SIZES[size] * 6 {
            bind(&rusqlite::types::Null)?;
        }
        let mut answered = insert.raw_query();
        while let Some(row) = answered.next()? {
            added.insert(row.get(0)?);
        }
    }
    Ok(added)
}

/// Credits instance owners their share of the charges just written: one `earning` row
/// per request (the (request_id, kind) index keeps it once however often it is
/// replayed), and each owner's balance by the rows this batch adds.
fn pay_earnings(connection: &Connection, charged: &[&(&UsageRecord, i64)]) -> Result<(), StoreError> {
    let earnings = settle::earnings(charged);
    let rows: Vec<LedgerRow> = earnings
        .iter()
        .map(|(owner, amount, r)| (*owner, *amount, r.request_id.as_str(), settle::earning_memo(r), r.created_at))
        .collect();
    let added = add_to_ledger(connection, "earning", &rows)?;
    let owed =
        earnings.iter().filter(|(_, _, r)| added.contains(&r.request_id)).map(|(owner, amount, _)| (*owner, *amount));
    let mut credit = connection.prepare_cached("UPDATE accounts SET balance_nano = balance_nano + ?1 WHERE id = ?2")?;
    for (owner, amount) in settle::sums(owed) {
        credit.execute([amount, owner])?;
    }
    Ok(())
}

/// The funds of the accounts these charges fall on (after this batch's holds closed).
fn funds(connection: &Connection, charges: &[&UsageRecord]) -> Result<HashMap<i64, Funds>, StoreError> {
    let mut read = connection.prepare_cached("SELECT balance_nano, held_nano FROM accounts WHERE id = ?1")?;
    let mut funds = HashMap::new();
    for id in charges.iter().map(|r| r.account_id).collect::<HashSet<i64>>() {
        let mut rows = read.query([id])?;
        if let Some(row) = rows.next()? {
            funds.insert(id, Funds { balance: row.get(0)?, held: row.get(1)? });
        }
    }
    Ok(funds)
}

/// Adds what `recorded` (usage rows just inserted) brings to `usage_hourly`.
fn add_rollups(
    connection: &Connection,
    recorded: &[&UsageRecord],
    charged: &HashMap<&str, i64>,
) -> Result<(), StoreError> {
    let mut upsert = connection.prepare_cached(
        "INSERT INTO usage_hourly (account_id, hour, model, key_id, provider, requests, prompt_tokens, completion_tokens, cost_nano) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (account_id, hour, model, key_id, provider) DO UPDATE SET \
         requests = usage_hourly.requests + excluded.requests, \
         prompt_tokens = usage_hourly.prompt_tokens + excluded.prompt_tokens, \
         completion_tokens = usage_hourly.completion_tokens + excluded.completion_tokens, \
         cost_nano = usage_hourly.cost_nano + excluded.cost_nano",
    )?;
    for r in settle::rollups(recorded, charged) {
        upsert.execute(params![
            r.account_id,
            r.hour,
            r.model,
            r.key_id,
            r.provider,
            r.requests,
            r.prompt_tokens,
            r.completion_tokens,
            r.cost
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokenrouter_core::{NanoUsd, Usage};

    use super::*;
    use crate::UsageSource;

    fn record(request_id: String) -> UsageRecord {
        UsageRecord {
            request_id,
            key_id: "k1".to_owned(),
            account_id: 1,
            model: "m".to_owned(),
            provider: "p".to_owned(),
            upstream_model: "m".to_owned(),
            endpoint: "chat.completions".to_owned(),
            stream: false,
            status: 200,
            usage: Usage::default(),
            cost: NanoUsd::ZERO,
            usage_source: UsageSource::None,
            client_disconnected: false,
            latency_ms: 1,
            created_at: 1_700_000_000,
            error_code: None,
            ttfb_ms: None,
            earning: None,
        }
    }

    /// A batch larger than any one statement used to take (1,200 requests), with ids and
    /// model names that JSON must escape: every row is written and charged once with its
    /// memo as given, every hold closed, and the same batch again changes nothing.
    #[tokio::test]
    async fn a_large_batch_with_awkward_names_is_settled_exactly_once() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = SqliteDb::open(&format!("sqlite://{}", dir.path().join("large.db").display())).await?;
        db.migrate().await?;
        sqlx::raw_sql(
            "INSERT INTO accounts (id, name, balance_nano, created_at) VALUES (1, 'a', 10000000, 0);
             INSERT INTO api_keys (id, account_id, secret_hash, created_at) VALUES ('k1', 1, x'00', 0);",
        )
        .execute(&db.pool)
        .await?;
        let records: Vec<UsageRecord> = (0..1_200)
            .map(|i| UsageRecord {
                model: format!("m\"{i}\\ \u{e9}\u{1F600}\n\u{0}"),
                cost: NanoUsd(i + 1),
                ..record(format!("req-\"{i}\"\\"))
            })
            .collect();
        for r in &records {
            sqlx::query(
                "INSERT INTO holds (request_id, account_id, key_id, amount_nano, created_at) VALUES (?, 1, 'k1', 5, 0)",
            )
            .bind(&r.request_id)
            .execute(&db.pool)
            .await?;
        }
        let held: i64 = sqlx::query_scalar("SELECT held_nano FROM accounts WHERE id = 1").fetch_one(&db.pool).await?;
        assert_eq!(held, 6_000);

        for _ in 0..2 {
            db.write_batch(Batch { usage: &records, ..Batch::default() }).await?;
            let ledger: Vec<(String, String, i64)> =
                sqlx::query_as("SELECT request_id, memo, amount_nano FROM ledger WHERE kind = 'charge' ORDER BY id")
                    .fetch_all(&db.pool)
                    .await?;
            let expected: Vec<(String, String, i64)> =
                records.iter().map(|r| (r.request_id.clone(), r.model.clone(), -r.cost.0)).collect();
            assert_eq!(ledger, expected);
            let (balance, held, holds): (i64, i64, i64) = sqlx::query_as(
                "SELECT balance_nano, held_nano, (SELECT COUNT(*) FROM holds) FROM accounts WHERE id = 1",
            )
            .fetch_one(&db.pool)
            .await?;
            assert_eq!((balance, held, holds), (10_000_000 - 1_200 * 1_201 / 2, 0, 0));
            assert_eq!(db.usage_count().await?, 1_200);
        }
        Ok(())
    }

    /// Holds take for granted that the shared connection commits without a sync to disk
    /// (`synchronous = NORMAL`); a settlement switches it to `FULL` for its own commit. One
    /// given up half-way (its future dropped) is still written, and does not leave it at
    /// `FULL` for the holds after.
    #[tokio::test]
    async fn a_settlement_given_up_half_way_leaves_holds_unsynced() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = SqliteDb::open(&format!("sqlite://{}", dir.path().join("sync.db").display())).await?;
        db.migrate().await?;
        let records = [record("given-up".to_owned())];
        let settlement = db.write_batch(Batch { usage: &records, ..Batch::default() });
        assert!(
            futures_util::FutureExt::now_or_never(settlement).is_none(),
            "the settlement went out and was given up"
        );
        let synchronous: i64 = db.writer.run(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?)).await?;
        assert_eq!(synchronous, 1, "NORMAL");
        assert!(db.usage_by_request("given-up").await?.is_some());
        Ok(())
    }

    /// A write that left its transaction open (a failure half-way), or whose transaction
    /// SQLite ended on its own (a full disk, no memory), does not stop the batches after it.
    #[tokio::test]
    async fn a_transaction_left_open_or_ended_does_not_stop_later_batches() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = SqliteDb::open(&format!("sqlite://{}", dir.path().join("ended.db").display())).await?;
        db.migrate().await?;
        db.writer.run(|c| Ok(c.execute_batch("BEGIN IMMEDIATE")?)).await?;
        db.writer.run(|c| Ok(c.execute_batch("BEGIN IMMEDIATE; ROLLBACK")?)).await?;
        let first = [record("first".to_owned())];
        db.write_batch(Batch { usage: &first, ..Batch::default() }).await?;
        let next = [record("next".to_owned())];
        db.write_batch(Batch { usage: &next, ..Batch::default() }).await?;
        assert!(db.usage_by_request("first").await?.is_some());
        assert!(db.usage_by_request("next").await?.is_some());
        Ok(())
    }
}
