//! PostgreSQL queries for kept responses.

use super::PostgresDb;
use crate::responses::{Link, SWEEP_PASSES, assemble};
use crate::{KeptChain, KeptResponse, StoreError};

impl PostgresDb {
    pub(crate) async fn keep_response(&self, kept: &KeptResponse) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO responses (id, account_id, created_at, expires_at, previous_id, record, answer) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, previous_id = excluded.previous_id, \
             record = excluded.record, answer = excluded.answer \
             WHERE responses.account_id = excluded.account_id",
        )
        .bind(&kept.id)
        .bind(kept.account_id)
        .bind(kept.created_at)
        .bind(kept.expires_at)
        .bind(&kept.previous_id)
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

    pub(crate) async fn kept_chain(
        &self,
        id: &str,
        account_id: i64,
        now: i64,
        max: usize,
    ) -> Result<KeptChain, StoreError> {
        let links: Vec<Link> = sqlx::query_as(
            "WITH RECURSIVE chain(id, previous_id, record, depth) AS ( \
               SELECT id, previous_id, record, 1 FROM responses WHERE id = $1 AND account_id = $2 AND expires_at > $3 \
               UNION ALL \
               SELECT r.id, r.previous_id, r.record, chain.depth + 1 FROM responses r \
               JOIN chain ON r.id = chain.previous_id \
               WHERE r.account_id = $4 AND chain.depth <= $5 \
             ) SELECT id, previous_id, record FROM chain ORDER BY depth",
        )
        .bind(id)
        .bind(account_id)
        .bind(now)
        .bind(account_id)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(assemble(links, max))
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
        let mut forgotten = 0;
        for _ in 0..SWEEP_PASSES {
            let done = sqlx::query(
                "DELETE FROM responses WHERE expires_at <= $1 \
                 AND NOT EXISTS (SELECT 1 FROM responses later WHERE later.previous_id = responses.id)",
            )
            .bind(now)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 0 {
                break;
            }
            forgotten += done.rows_affected();
        }
        Ok(forgotten)
    }
}
