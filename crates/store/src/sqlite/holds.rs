//! SQLite queries for holds: taking a batch of them (a single conditional statement each,
//! in one transaction on the writing connection; triggers move the account's and key's held
//! sums in the same statement), reading them, and the statements a settlement batch closes
//! and checkpoints them with.

use rusqlite::{Connection, params};

use super::SqliteDb;
use super::writer::{begin, commit};
use crate::rows::{HoldRecord, encode_list, hold_columns};
use crate::{Hold, HoldOutcome, NanoUsd, NewHold, Progress, StoreError};

impl SqliteDb {
    /// Takes the holds in one transaction, in the order given (SQLite has one writer at a
    /// time, so no order of rows can deadlock); one outcome per hold. On the connection
    /// settlements are written on, so the pages both touch stay in its cache (another
    /// connection's write would make it read them again); committed without a sync to
    /// disk (a power cut may lose a hold, never a charge: the usage journal replays it).
    /// One job on the writing connection's thread, however many holds.
    pub(crate) async fn hold_many(&self, holds: &[NewHold]) -> Result<Vec<HoldOutcome>, StoreError> {
        let holds = holds.to_vec();
        self.writer.run(move |connection| hold_all(connection, &holds)).await
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

/// The holds of `holds` in one transaction: each one statement, and for one refused, a
/// look at why.
fn hold_all(connection: &Connection, holds: &[NewHold]) -> Result<Vec<HoldOutcome>, StoreError> {
    begin(connection)?;
    let mut hold = connection.prepare_cached(HOLD)?;
    let mut outcomes = Vec::with_capacity(holds.len());
    for h in holds {
        let amount = if h.enforce { h.amount.0 } else { 0 };
        let held = hold.execute(params![
            h.request_id,
            h.account_id,
            h.key_id,
            h.enforce,
            amount,
            h.created_at,
            h.replica,
            h.model,
            h.endpoint,
            h.stream
        ])?;
        outcomes.push(if held == 1 { HoldOutcome::Held } else { why_refused(connection, h, amount)? });
    }
    drop(hold);
    commit(connection)?;
    Ok(outcomes)
}

/// One hold: a single conditional statement. SQLite takes the write lock before it reads,
/// so the check and the triggers' increments happen with no other writer in between, in
/// any process. The amount is NULL when the account or the key cannot cover it, and the
/// table skips such a row (`amount_nano … NOT NULL ON CONFLICT IGNORE`, migration 0020): a
/// plain `INSERT … VALUES`, because `INSERT … SELECT … WHERE` into a table with triggers
/// makes SQLite copy the row into a temporary b-tree first (≈ 5 % of the gateway's
/// instructions per request). A request id held twice still fails it.
const HOLD: &str = "INSERT INTO holds (request_id, account_id, key_id, amount_nano, created_at, replica, model, endpoint, stream) \
     VALUES (?1, ?2, ?3, CASE WHEN NOT ?4 OR (\
       EXISTS (SELECT 1 FROM accounts WHERE id = ?2 AND balance_nano - held_nano >= ?5) \
       AND EXISTS (SELECT 1 FROM api_keys WHERE id = ?3 \
           AND (spend_limit_nano IS NULL OR spend_limit_nano - spent_nano - held_nano >= ?5))) THEN ?5 END, \
       ?6, ?7, ?8, ?9, ?10)";

/// Why a hold was just refused: the account's available balance (NULL: the account is
/// gone) and the key's remaining limit (NULL: none), as they are after it.
fn why_refused(connection: &Connection, hold: &NewHold, amount: i64) -> Result<HoldOutcome, StoreError> {
    let (available, remaining): (Option<i64>, Option<i64>) = connection
        .prepare_cached(
            "SELECT a.balance_nano - a.held_nano, k.spend_limit_nano - k.spent_nano - k.held_nano \
             FROM (SELECT ?1 AS account_id, ?2 AS key_id) h \
             LEFT JOIN accounts a ON a.id = h.account_id LEFT JOIN api_keys k ON k.id = h.key_id",
        )?
        .query_row(params![hold.account_id, hold.key_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(refusal(available.map(|available| (available, remaining)), amount))
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

/// Deletes the holds of these requests (the trigger releases their sums), in one
/// statement: a statement a hold cost ≈ 3,500 instructions a request more
/// (`bench/prof/instr.sh`), as each statement that fires a trigger saves the pages it
/// changes in a statement journal of its own.
pub(super) fn close(connection: &Connection, ids: &[&str]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    connection
        .prepare_cached("DELETE FROM holds WHERE request_id IN (SELECT value FROM json_each(?1))")?
        .execute([encode_list(ids)?])?;
    Ok(())
}

/// Records what streams in flight have delivered so far.
pub(super) fn checkpoint(connection: &Connection, progress: &[Progress]) -> Result<(), StoreError> {
    let mut update = connection.prepare_cached(
        "UPDATE holds SET delivered_nano = ?1, provider = ?2, earner_id = ?3, earner_share_ppb = ?4 \
         WHERE request_id = ?5",
    )?;
    for p in progress {
        update.execute(params![
            p.delivered.0,
            p.provider,
            p.earning.map(|e| e.account_id),
            p.earning.map(|e| crate::rows::to_db_count(e.share_ppb)),
            p.request_id
        ])?;
    }
    Ok(())
}
