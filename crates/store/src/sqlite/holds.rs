//! SQLite queries for holds: taking a batch of them (a single conditional statement each,
//! in one transaction; triggers move the account's and key's held sums in the same
//! statement), reading them, and the
//! statements a settlement batch closes and checkpoints them with.

use std::sync::LazyLock;

use sqlx::{Connection, Row, Sqlite, SqliteConnection, Transaction};

use super::SqliteDb;
use super::batches::{BatchConnection, no_transaction_was_open};
use crate::rows::{HoldRecord, encode_list, hold_columns};
use crate::{Hold, HoldOutcome, NanoUsd, NewHold, Progress, StoreError};

impl SqliteDb {
    /// Takes the holds in one transaction, in the order given (SQLite has one writer at a
    /// time, so no order of rows can deadlock); one outcome per hold. On the connection
    /// settlements are written on, so the pages both touch stay in its cache (another
    /// connection's write would make it read them again); committed without a sync to
    /// disk, as before (a power cut may lose a hold, never a charge: the usage journal
    /// replays it). A batch of up to [`HOLDS_PER_TRIP`] holds is one trip to the connection's thread — the transaction's
    /// `BEGIN IMMEDIATE` and `COMMIT` included — as one cached multi-statement query; a
    /// longer one goes [`HOLDS_PER_TRIP`] at a time inside a transaction of its own.
    pub(crate) async fn hold_many(&self, holds: &[NewHold]) -> Result<Vec<HoldOutcome>, StoreError> {
        if holds.len() > HOLDS_PER_TRIP {
            let mut batches = self.batches.acquire().await?;
            let held = hold_long(batches.get()?, holds).await;
            // As for a settlement: SQLite may have ended the transaction behind sqlx's back.
            if held.is_err() {
                batches.close_on_drop();
            }
            return Ok(held?);
        }
        let mut trip = InTransaction { connection: self.batches.acquire().await?, ended: false };
        let connection = trip.connection.get()?;
        let held = hold_group(connection, holds, true).await;
        trip.ended = match &held {
            Ok(_) => true,
            // The failed statement left the transaction open (or never began it): end it
            // here, or close the connection if that fails too.
            Err(_) => match sqlx::query("ROLLBACK").execute(&mut *connection).await {
                Ok(_) => true,
                Err(e) => no_transaction_was_open(&e),
            },
        };
        Ok(held?)
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
        let held: Option<i64> = sqlx::query_scalar("SELECT held_nano FROM accounts WHERE id = ?")
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(NanoUsd(held.unwrap_or(0)))
    }
}

/// A batch longer than one trip: [`HOLDS_PER_TRIP`] at a time in one transaction.
async fn hold_long(connection: &mut SqliteConnection, holds: &[NewHold]) -> Result<Vec<HoldOutcome>, sqlx::Error> {
    let mut answers = Vec::with_capacity(holds.len());
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
    for group in holds.chunks(HOLDS_PER_TRIP) {
        answers.extend(hold_group(&mut tx, group, false).await?);
    }
    tx.commit().await?;
    Ok(answers)
}

/// Holds sent to the connection's thread together. Each group size has its own cached
/// statement, so this also bounds how many are prepared per connection.
const HOLDS_PER_TRIP: usize = 16;

/// One hold: a single conditional statement. SQLite takes the write lock before it reads,
/// so the check and the triggers' increments happen with no other writer in between, in
/// any process. The amount is NULL when the account or the key cannot cover it, and the
/// table skips such a row (`amount_nano … NOT NULL ON CONFLICT IGNORE`, migration 0020): a
/// plain `INSERT … VALUES`, because `INSERT … SELECT … WHERE` into a table with triggers
/// makes SQLite copy the row into a temporary b-tree first (≈ 5 % of the gateway's
/// instructions per request). A request id held twice still fails it.
const HOLD: &str = "INSERT INTO holds (request_id, account_id, key_id, amount_nano, created_at, replica, model, endpoint, stream) \
     VALUES (?, ?, ?, CASE WHEN NOT ? OR (\
       EXISTS (SELECT 1 FROM accounts WHERE id = ? AND balance_nano - held_nano >= ?) \
       AND EXISTS (SELECT 1 FROM api_keys WHERE id = ? \
           AND (spend_limit_nano IS NULL OR spend_limit_nano - spent_nano - held_nano >= ?))) THEN ? END, \
       ?, ?, ?, ?, ?);";

/// Right after [`HOLD`], one row: whether it held (the rows it inserted, not counting its
/// triggers'), the account's available balance (NULL: the account is gone) and the key's
/// remaining limit (NULL: none), as they are after it.
const ANSWER: &str = "SELECT changes(), a.balance_nano - a.held_nano, k.spend_limit_nano - k.spent_nano - k.held_nano \
     FROM (SELECT ? AS account_id, ? AS key_id) h \
     LEFT JOIN accounts a ON a.id = h.account_id LEFT JOIN api_keys k ON k.id = h.key_id;";

/// The batches' connection inside the transaction of a multi-statement query: unless the
/// transaction is known to have ended — the query given up half-way (its future dropped),
/// or a rollback that failed — the connection is closed rather than handed to the next
/// batch with the transaction still open.
struct InTransaction<'a> {
    connection: BatchConnection<'a>,
    ended: bool,
}

impl Drop for InTransaction<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.connection.close_on_drop();
        }
    }
}

/// The query of `n` holds, for `n` up to [`HOLDS_PER_TRIP`] (two statements a hold), in a
/// transaction of its own or not.
fn hold_query(n: usize, own_transaction: bool) -> &'static str {
    static QUERIES: LazyLock<[Vec<String>; 2]> = LazyLock::new(|| {
        let holds = |n: usize| [HOLD, ANSWER].concat().repeat(n);
        [
            (0..=HOLDS_PER_TRIP).map(holds).collect(),
            (0..=HOLDS_PER_TRIP).map(|n| format!("BEGIN IMMEDIATE;{}COMMIT;", holds(n))).collect(),
        ]
    });
    &QUERIES[usize::from(own_transaction)][n]
}

/// The holds of `group` as one query (SQLite binds its anonymous parameters in order
/// across the statements): a row per hold in order, saying whether it held and, if not,
/// why.
async fn hold_group(
    conn: &mut SqliteConnection,
    group: &[NewHold],
    own_transaction: bool,
) -> Result<Vec<HoldOutcome>, sqlx::Error> {
    let mut query = sqlx::query(hold_query(group.len(), own_transaction));
    for hold in group {
        let amount = if hold.enforce { hold.amount.0 } else { 0 };
        query = query
            .bind(&hold.request_id)
            .bind(hold.account_id)
            .bind(&hold.key_id)
            .bind(hold.enforce)
            .bind(hold.account_id)
            .bind(amount)
            .bind(&hold.key_id)
            .bind(amount)
            .bind(amount)
            .bind(hold.created_at)
            .bind(&hold.replica)
            .bind(&hold.model)
            .bind(&hold.endpoint)
            .bind(hold.stream)
            .bind(hold.account_id)
            .bind(&hold.key_id);
    }
    let rows = query.fetch_all(conn).await?;
    if rows.len() != group.len() {
        return Err(sqlx::Error::Protocol(format!("{} answers to {} holds", rows.len(), group.len())));
    }
    group
        .iter()
        .zip(&rows)
        .map(|(hold, row)| {
            if row.try_get::<i64, _>(0)? == 1 {
                return Ok(HoldOutcome::Held);
            }
            let amount = if hold.enforce { hold.amount.0 } else { 0 };
            let available: Option<i64> = row.try_get(1)?;
            let remaining: Option<i64> = row.try_get(2)?;
            Ok(refusal(available.map(|available| (available, remaining)), amount))
        })
        .collect()
}

/// Why a hold was refused, from the account's available balance and the key's remaining
/// limit (`None`: no limit) as read after the refusal.
pub(crate) fn refusal(funds: Option<(i64, Option<i64>)>, amount: i64) -> HoldOutcome {
    match funds {
        Some((_, Some(remaining))) if remaining < amount => {
            HoldOutcome::SpendLimit { remaining: NanoUsd(remaining.max(0)) }
        }
        Some((available, _)) => HoldOutcome::Balance { available: NanoUsd(available.max(0)) },
        None => HoldOutcome::Balance { available: NanoUsd::ZERO },
    }
}

/// Deletes the holds of these requests (the trigger releases their sums): one cached
/// statement, however many (see [`encode_list`]).
pub(super) async fn close(tx: &mut Transaction<'_, Sqlite>, ids: &[&str]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM holds WHERE request_id IN (SELECT value FROM json_each(?))")
        .bind(encode_list(ids)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records what streams in flight have delivered so far.
pub(super) async fn checkpoint(tx: &mut Transaction<'_, Sqlite>, progress: &[Progress]) -> Result<(), sqlx::Error> {
    for p in progress {
        sqlx::query(
            "UPDATE holds SET delivered_nano = ?, provider = ?, earner_id = ?, earner_share_ppb = ? \
             WHERE request_id = ?",
        )
        .bind(p.delivered.0)
        .bind(&p.provider)
        .bind(p.earning.map(|e| e.account_id))
        .bind(p.earning.map(|e| crate::rows::to_db_count(e.share_ppb)))
        .bind(&p.request_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
