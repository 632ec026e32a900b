//! SQLite queries for holds and for the funds the gateway's in-memory book starts from.

use sqlx::{QueryBuilder, Sqlite};

use super::SqliteDb;
use crate::{Funds, Hold, Movement, NanoUsd, StoreError};

/// Rows per multi-row statement (5 bound values each).
const ROWS_PER_STATEMENT: usize = 500;

impl SqliteDb {
    pub(crate) async fn open_holds(&self) -> Result<Vec<Hold>, StoreError> {
        let rows: Vec<(String, i64, String, i64, i64)> = sqlx::query_as(
            "SELECT request_id, account_id, key_id, amount_nano, created_at FROM holds ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(request_id, account_id, key_id, amount, created_at)| Hold {
                request_id,
                account_id,
                key_id,
                amount: NanoUsd(amount),
                created_at,
            })
            .collect())
    }

    pub(crate) async fn held(&self, account_id: i64) -> Result<NanoUsd, StoreError> {
        let sum: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(amount_nano), 0) FROM holds WHERE account_id = ?")
            .bind(account_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(NanoUsd(sum))
    }

    pub(crate) async fn release_holds(&self, request_ids: &[String]) -> Result<u64, StoreError> {
        let mut released = 0;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in request_ids.chunks(ROWS_PER_STATEMENT) {
            released += delete(chunk).build().persistent(false).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(released)
    }

    pub(crate) async fn funds(&self, account_id: i64) -> Result<Option<Funds>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT a.balance_nano, COALESCE((SELECT MAX(id) FROM ledger WHERE account_id = a.id), 0) \
             FROM accounts a WHERE a.id = ?",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(balance, ledger_high)| Funds { balance: NanoUsd(balance), ledger_high }))
    }

    pub(crate) async fn movements_after(&self, after_id: i64) -> Result<Vec<Movement>, StoreError> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT id, account_id, amount_nano FROM ledger WHERE id > ? AND kind <> 'charge' ORDER BY id LIMIT 10000",
        )
        .bind(after_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, account_id, amount)| Movement { id, account_id, amount: NanoUsd(amount) })
            .collect())
    }

    pub(crate) async fn ledger_high(&self) -> Result<i64, StoreError> {
        let high: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM ledger").fetch_one(&self.pool).await?;
        Ok(high)
    }
}

/// `DELETE FROM holds WHERE request_id IN (…)` for these ids.
pub(super) fn delete(ids: &[String]) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::<Sqlite>::new("DELETE FROM holds WHERE request_id IN (");
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(id.as_str());
    }
    query.push(")");
    query
}

/// A multi-row insert of holds.
pub(super) fn insert(holds: &[Hold]) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::<Sqlite>::new(
        "INSERT OR IGNORE INTO holds (request_id, account_id, key_id, amount_nano, created_at) ",
    );
    query.push_values(holds, |mut row, h| {
        row.push_bind(h.request_id.as_str())
            .push_bind(h.account_id)
            .push_bind(h.key_id.as_str())
            .push_bind(h.amount.0)
            .push_bind(h.created_at);
    });
    query
}
