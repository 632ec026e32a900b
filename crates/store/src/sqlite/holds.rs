//! SQLite queries for holds: taking a batch of them (a single conditional statement each,
//! in one transaction; triggers move the account's and key's held sums in the same
//! statement), reading them, and the
//! statements a settlement batch closes and checkpoints them with.

use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::SqliteDb;
use crate::rows::{HoldRecord, hold_columns};
use crate::{Hold, HoldOutcome, NanoUsd, NewHold, Progress, StoreError};

/// Rows per multi-row statement.
pub(super) const ROWS_PER_STATEMENT: usize = 500;

impl SqliteDb {
    /// Takes the holds in one transaction, in the order given (SQLite has one writer at a
    /// time, so no order of rows can deadlock); one outcome per hold.
    pub(crate) async fn hold_many(&self, holds: &[NewHold]) -> Result<Vec<HoldOutcome>, StoreError> {
        let mut answers = Vec::with_capacity(holds.len());
        let mut tx = self.pool.begin().await?;
        for hold in holds {
            answers.push(hold_one(&mut tx, hold).await?);
        }
        tx.commit().await?;
        Ok(answers)
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

/// One hold: a single statement. SQLite takes the write lock before it reads, so the check
/// and the triggers' increments happen with no other writer in between, in any process.
async fn hold_one(tx: &mut Transaction<'_, Sqlite>, hold: &NewHold) -> Result<HoldOutcome, sqlx::Error> {
    let amount = if hold.enforce { hold.amount.0 } else { 0 };
    let held: Option<String> = sqlx::query_scalar(
        "INSERT INTO holds (request_id, account_id, key_id, amount_nano, created_at, replica, model, endpoint, stream) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 \
         WHERE NOT ?10 OR (\
           EXISTS (SELECT 1 FROM accounts WHERE id = ?2 AND balance_nano - held_nano >= ?4) \
           AND EXISTS (SELECT 1 FROM api_keys WHERE id = ?3 \
               AND (spend_limit_nano IS NULL OR spend_limit_nano - spent_nano - held_nano >= ?4))) \
         RETURNING request_id",
    )
    .bind(&hold.request_id)
    .bind(hold.account_id)
    .bind(&hold.key_id)
    .bind(amount)
    .bind(hold.created_at)
    .bind(&hold.replica)
    .bind(&hold.model)
    .bind(&hold.endpoint)
    .bind(hold.stream)
    .bind(hold.enforce)
    .fetch_optional(&mut **tx)
    .await?;
    if held.is_some() {
        return Ok(HoldOutcome::Held);
    }
    // Refused: say why (a read on the refusal path only).
    let funds: Option<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT a.balance_nano - a.held_nano, k.spend_limit_nano - k.spent_nano - k.held_nano \
         FROM accounts a LEFT JOIN api_keys k ON k.id = ?2 WHERE a.id = ?1",
    )
    .bind(hold.account_id)
    .bind(&hold.key_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(refusal(funds, amount))
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

/// Deletes the holds of these requests (the trigger releases their sums).
pub(super) async fn close(tx: &mut Transaction<'_, Sqlite>, ids: &[&str]) -> Result<(), sqlx::Error> {
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new("DELETE FROM holds WHERE request_id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(")");
        // Batch sizes vary, so these statements are not cached: a cache of each size would grow.
        query.build().persistent(false).execute(&mut **tx).await?;
    }
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
