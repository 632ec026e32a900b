//! PostgreSQL queries for kept responses.

use super::PostgresDb;
use crate::{KeptResponse, StoreError};

impl PostgresDb {
    pub(crate) async fn keep_response(&self, kept: &KeptResponse) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO responses (id, account_id, created_at, expires_at, record, answer) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, record = excluded.record, \
             answer = excluded.answer",
        )
        .bind(&kept.id)
        .bind(kept.account_id)
        .bind(kept.created_at)
        .bind(kept.expires_at)
        .bind(&kept.record)
        .bind(&kept.answer)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn kept_response(
        &self,
        id: &str,
        account_id: i64,
        now: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let record =
            sqlx::query_scalar("SELECT record FROM responses WHERE id = $1 AND account_id = $2 AND expires_at > $3")
                .bind(id)
                .bind(account_id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(record)
    }

    pub(crate) async fn kept_answer(&self, id: &str, account_id: i64, now: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let answer =
            sqlx::query_scalar("SELECT answer FROM responses WHERE id = $1 AND account_id = $2 AND expires_at > $3")
                .bind(id)
                .bind(account_id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(answer)
    }

    pub(crate) async fn forget_response(&self, id: &str, account_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM responses WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn forget_responses(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM responses WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
