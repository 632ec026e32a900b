//! SQLite queries for usage records and the charges they settle.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection};

use super::SqliteDb;
use super::holds::{checkpoint, close};
use crate::rows::{UsageRow, encode_list, to_db_count, usage_columns};
use crate::settle::{self, Funds};
use crate::{Batch, StoreError, UsageRecord};

/// The sizes of the multi-row INSERT of usage rows: a batch's rows go [`USAGE_LARGEST`] at a
/// time, each group in the smallest size that holds it, padded with rows of NULLs that the
/// statement skips. So there are three statements, prepared once per connection: parsing an
/// INSERT of each batch's own size cost ≈ 3 % of the gateway's CPU at saturation, a padded
/// row far less. (128 rows of 23 values stay far below SQLite's 32,766 variables.)
const USAGE_SIZES: [usize; 3] = [8, 32, USAGE_LARGEST];
const USAGE_LARGEST: usize = 128;

/// The INSERT of `USAGE_SIZES[i]` usage rows, with the number of values a row binds.
fn usage_insert(i: usize) -> (&'static str, usize) {
    static STATEMENTS: LazyLock<(Vec<String>, usize)> = LazyLock::new(|| {
        let columns = usage_columns!().split(',').count();
        let row = format!("({})", vec!["?"; columns].join(", "));
        let statements = USAGE_SIZES
            .iter()
            .map(|&n| {
                format!(
                    concat!(
                        "INSERT OR IGNORE INTO usage (",
                        usage_columns!(),
                        ") SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL"
                    ),
                    vec![row.as_str(); n].join(", ")
                )
            })
            .collect();
        (statements, columns)
    });
    (&STATEMENTS.0[i], STATEMENTS.1)
}

impl SqliteDb {
    /// Writes a batch in one transaction with a handful of statements: checkpoints, a
    /// multi-row insert of the usage rows not stored yet (so a repeated request id changes
    /// nothing), the closing of holds, the charges (capped, see [`settle::capped`]), then
    /// one balance and one spend update per account and key.
    ///
    /// It commits with `synchronous = FULL` (on disk before the usage journal that carried
    /// it is emptied), on the connection holds are taken on, which otherwise runs with
    /// `NORMAL` (holds rely on that: they do not set it). Unless it is written and back to
    /// `NORMAL`, the connection is closed (the next batch opens another): a failure, where
    /// SQLite may have rolled the transaction back on its own (a full disk), which sqlx does
    /// not see, and it would refuse every later `BEGIN` on that connection; or a settlement
    /// given up half-way.
    pub(crate) async fn write_batch(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        let mut batches = self.batches.acquire().await?;
        batches.close_on_drop();
        settle_synced(batches.get()?, batch).await?;
        batches.keep();
        Ok(())
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

/// [`settle_on`] committed with `synchronous = FULL`, then `NORMAL` again, as holds expect.
async fn settle_synced(connection: &mut SqliteConnection, batch: Batch<'_>) -> Result<(), StoreError> {
    sqlx::query("PRAGMA synchronous = FULL").execute(&mut *connection).await?;
    settle_on(connection, batch).await?;
    sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *connection).await?;
    Ok(())
}

/// The settlement of `batch` in one transaction on `connection`.
///
/// Its inserts answer no rows: a row streamed back from the connection's thread costs a
/// wake-up of each side (sqlx hands rows over one at a time), which made `RETURNING` on
/// batches of hundreds of rows cost more than the inserts. What a batch adds is known
/// beforehand instead — which of its request ids already have a row — as nothing else can
/// write between that look and the inserts (the transaction holds SQLite's write lock).
async fn settle_on(connection: &mut SqliteConnection, batch: Batch<'_>) -> Result<(), StoreError> {
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
    checkpoint(&mut tx, batch.progress).await?;
    let ids = batch.usage.iter().map(|r| r.request_id.as_str());
    let stored = already_written(&mut tx, STORED, ids).await?;
    let recorded = settle::recorded(batch.usage, &stored);
    for chunk in recorded.chunks(USAGE_LARGEST) {
        let size = USAGE_SIZES.iter().position(|&n| n >= chunk.len()).unwrap_or(USAGE_SIZES.len() - 1);
        let (statement, columns) = usage_insert(size);
        let mut insert = sqlx::query(statement);
        for r in chunk {
            insert = insert
                .bind(r.request_id.as_str())
                .bind(r.key_id.as_str())
                .bind(r.account_id)
                .bind(r.model.as_str())
                .bind(r.provider.as_str())
                .bind(r.upstream_model.as_str())
                .bind(r.endpoint.as_str())
                .bind(r.stream)
                .bind(i64::from(r.status))
                .bind(to_db_count(r.usage.prompt_tokens))
                .bind(to_db_count(r.usage.completion_tokens))
                .bind(to_db_count(r.usage.cached_tokens))
                .bind(to_db_count(r.usage.reasoning_tokens))
                .bind(to_db_count(r.usage.cache_write_tokens))
                .bind(r.cost.0)
                .bind(r.usage_source.as_str())
                .bind(r.client_disconnected)
                .bind(to_db_count(r.latency_ms))
                .bind(r.created_at)
                .bind(r.error_code.as_deref())
                .bind(r.ttfb_ms.map(to_db_count))
                .bind(to_db_count(r.usage.hosted.web_search))
                .bind(to_db_count(r.usage.hosted.web_fetch));
        }
        for _ in chunk.len() * columns..USAGE_SIZES[size] * columns {
            insert = insert.bind(None::<i64>);
        }
        insert.execute(&mut *tx).await?;
    }
    let closing: Vec<&str> =
        batch.usage.iter().map(|r| r.request_id.as_str()).chain(batch.releases.iter().map(String::as_str)).collect();
    close(&mut tx, &closing).await?;
    let to_charge: Vec<&UsageRecord> = recorded.iter().copied().filter(|r| r.cost.0 > 0).collect();
    if to_charge.is_empty() {
        add_rollups(&mut tx, &recorded, &HashMap::new()).await?;
        tx.commit().await?;
        return Ok(());
    }
    let funds = funds(&mut tx, &to_charge).await?;
    let amounts = settle::capped(&to_charge.iter().map(|r| (r.account_id, r.cost.0)).collect::<Vec<_>>(), &funds);
    let charges: Vec<(&UsageRecord, i64)> = to_charge.into_iter().zip(amounts).collect();
    // The ledger's (request_id, kind) index keeps a charge idempotent even if another
    // path already wrote one; balances move only with the rows this batch adds.
    let ids = charges.iter().map(|(r, _)| r.request_id.as_str());
    let already = already_written(&mut tx, CHARGED, ids).await?;
    let charged: Vec<&(&UsageRecord, i64)> = charges.iter().filter(|(r, _)| !already.contains(&r.request_id)).collect();
    let rows: Vec<LedgerRow> = charged
        .iter()
        .map(|(r, amount)| (r.account_id, -amount, r.request_id.as_str(), settle::memo(r, *amount), r.created_at))
        .collect();
    add_to_ledger(&mut tx, "charge", &rows).await?;
    let amounts: HashMap<&str, i64> = charged.iter().map(|(r, amount)| (r.request_id.as_str(), *amount)).collect();
    add_rollups(&mut tx, &recorded, &amounts).await?;
    for (account_id, cost) in settle::sums(charged.iter().map(|(r, amount)| (r.account_id, *amount))) {
        sqlx::query("UPDATE accounts SET balance_nano = balance_nano - ? WHERE id = ?")
            .bind(cost)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
    }
    for (key_id, cost) in settle::sums(charged.iter().map(|(r, amount)| (r.key_id.as_str(), *amount))) {
        sqlx::query("UPDATE api_keys SET spent_nano = spent_nano + ? WHERE id = ?")
            .bind(cost)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
    }
    pay_earnings(&mut tx, &charged).await?;
    tx.commit().await?;
    Ok(())
}

// Each reads its list as the outer loop of a join (CROSS JOIN keeps that order) and looks
// each id up by its index: `IN (SELECT value FROM json_each(?))` copied the list into a
// temporary b-tree first.

/// The request ids that already have a usage row.
const STORED: &str = "SELECT u.request_id FROM json_each(?) j CROSS JOIN usage u ON u.request_id = j.value";
/// The request ids that already have a charge in the ledger.
const CHARGED: &str =
    "SELECT l.request_id FROM json_each(?) j CROSS JOIN ledger l ON l.request_id = j.value AND l.kind = 'charge'";
/// The request ids that already have an earning in the ledger.
const EARNED: &str =
    "SELECT l.request_id FROM json_each(?) j CROSS JOIN ledger l ON l.request_id = j.value AND l.kind = 'earning'";

/// Which of `ids` `select` (a query of one JSON array of request ids) finds: the rows
/// already written, which a batch must neither write again nor count.
async fn already_written<'a>(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    select: &'static str,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashSet<String>, sqlx::Error> {
    let ids: Vec<&str> = ids.collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<String> = sqlx::query_scalar(select).bind(encode_list(&ids)?).fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().collect())
}

/// A ledger row to add: account, signed amount, request id, memo, time.
type LedgerRow<'a> = (i64, i64, &'a str, String, i64);

/// Adds `rows` of `kind` to the ledger, in their order (the (request_id, kind) index
/// ignores a row already there). They go as a `VALUES` list, parsed each time: reading
/// them out of one JSON array instead (five values a row) cost more than the parsing.
async fn add_to_ledger(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    kind: &str,
    rows: &[LedgerRow<'_>],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(LEDGER_ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO ledger (account_id, kind, amount_nano, request_id, memo, created_at) ",
        );
        insert.push_values(chunk, |mut row, (account, amount, request_id, memo, at)| {
            row.push_bind(*account)
                .push_bind(kind)
                .push_bind(*amount)
                .push_bind(*request_id)
                .push_bind(memo.as_str())
                .push_bind(*at);
        });
        insert.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Ledger rows per INSERT: 6 bound values each.
const LEDGER_ROWS_PER_STATEMENT: usize = 250;

/// Credits instance owners their share of the charges just written: one `earning` row
/// per request (the (request_id, kind) index keeps it once however often it is
/// replayed), and each owner's balance by the rows this batch adds.
async fn pay_earnings(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    charged: &[&(&UsageRecord, i64)],
) -> Result<(), sqlx::Error> {
    let earnings = settle::earnings(charged);
    let already = already_written(tx, EARNED, earnings.iter().map(|(_, _, r)| r.request_id.as_str())).await?;
    let owed: Vec<&(i64, i64, &UsageRecord)> =
        earnings.iter().filter(|(_, _, r)| !already.contains(&r.request_id)).collect();
    let rows: Vec<LedgerRow> = owed
        .iter()
        .map(|(owner, amount, r)| (*owner, *amount, r.request_id.as_str(), settle::earning_memo(r), r.created_at))
        .collect();
    add_to_ledger(tx, "earning", &rows).await?;
    for (owner, amount) in settle::sums(owed.iter().map(|(owner, amount, _)| (*owner, *amount))) {
        sqlx::query("UPDATE accounts SET balance_nano = balance_nano + ? WHERE id = ?")
            .bind(amount)
            .bind(owner)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The funds of the accounts these charges fall on (after this batch's holds closed).
async fn funds(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    charges: &[&UsageRecord],
) -> Result<HashMap<i64, Funds>, sqlx::Error> {
    let ids: Vec<i64> = charges.iter().map(|r| r.account_id).collect::<HashSet<i64>>().into_iter().collect();
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT a.id, a.balance_nano, a.held_nano FROM json_each(?) j CROSS JOIN accounts a ON a.id = j.value",
    )
    .bind(encode_list(&ids)?)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(id, balance, held)| (id, Funds { balance, held })).collect())
}

/// Adds what `recorded` (usage rows just inserted) brings to `usage_hourly`.
async fn add_rollups(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    recorded: &[&UsageRecord],
    charged: &HashMap<&str, i64>,
) -> Result<(), sqlx::Error> {
    let rows = settle::rollups(recorded, charged);
    for chunk in rows.chunks(ROLLUPS_PER_STATEMENT) {
        let mut upsert = settle::push_rollups::<Sqlite>(chunk);
        upsert.build().persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rollup rows per upsert: 9 bound values each.
const ROLLUPS_PER_STATEMENT: usize = 500;

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
    /// given up half-way (its future dropped) must not leave it at `FULL` for the holds after.
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
        let mut batches = db.batches.acquire().await?;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *batches.get()?).await?;
        assert_eq!(synchronous, 1, "NORMAL");
        Ok(())
    }

    /// SQLite rolls a transaction back on its own on some errors (a full disk, no memory),
    /// unseen by sqlx, which then refuses every later `BEGIN` on that connection. A
    /// settlement that fails that way must not leave such a connection to the next batches:
    /// the first batch after it may fail, the next is written.
    #[tokio::test]
    async fn a_transaction_sqlite_ended_unseen_does_not_stop_later_batches() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = SqliteDb::open(&format!("sqlite://{}", dir.path().join("ended.db").display())).await?;
        db.migrate().await?;
        {
            let mut batches = db.batches.acquire().await?;
            let mut tx = batches.get()?.begin_with("BEGIN IMMEDIATE").await?;
            // As SQLite does on a full disk: the transaction ends under sqlx's feet.
            sqlx::query("ROLLBACK").execute(&mut *tx).await?;
        }
        let first = [record("first".to_owned())];
        let _ = db.write_batch(Batch { usage: &first, ..Batch::default() }).await;
        let next = [record("next".to_owned())];
        db.write_batch(Batch { usage: &next, ..Batch::default() }).await?;
        assert!(db.usage_by_request("next").await?.is_some());
        Ok(())
    }
}
