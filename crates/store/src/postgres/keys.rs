//! PostgreSQL queries for API keys and the `keys_version` counter they bump (with a
//! notification to every replica).

use tokenrouter_core::clock;

use super::PostgresDb;
use crate::rows::{KeyRecord, encode_list, key_rows, select_keys};
use crate::{KeyRow, NewKey, StoreError};

impl PostgresDb {
    pub(crate) async fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        let models = encode_list(&key.models)?;
        let ips = encode_list(&key.ips)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, secret_hash, models, ips, rpm, tpm, \
             spend_limit_nano, expires_at, created_at, scope, community) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&key.id)
        .bind(key.account_id)
        .bind(&key.name)
        .bind(&key.secret_hash[..])
        .bind(models)
        .bind(ips)
        .bind(key.rpm.map(i64::from))
        .bind(key.tpm.map(i64::from))
        .bind(key.spend_limit.map(|limit| limit.0))
        .bind(key.expires_at)
        .bind(clock::now_unix())
        .bind(key.scope.as_str())
        .bind(key.community)
        .execute(&mut *tx)
        .await?;
        super::announce(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn list_keys(&self, account_id: i64) -> Result<Vec<KeyRow>, StoreError> {
        let records = sqlx::query_as::<_, KeyRecord>(select_keys!(
            "WHERE k.account_id = $1 ORDER BY k.created_at DESC, k.seq DESC"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        key_rows(records)
    }

    pub(crate) async fn revoke_key(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(clock::now_unix())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if revoked == 0 {
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
            // Already revoked: nothing changed, so nothing to commit or announce.
            return match exists {
                Some(_) => Ok(()),
                None => Err(StoreError::KeyNotFound(id.to_owned())),
            };
        }
        super::announce(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn keys_version(&self) -> Result<i64, StoreError> {
        let version: i64 =
            sqlx::query_scalar("SELECT value FROM meta WHERE name = 'keys_version'").fetch_one(&self.pool).await?;
        Ok(version)
    }

    pub(crate) async fn active_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let records = sqlx::query_as::<_, KeyRecord>(select_keys!(
            "WHERE k.revoked_at IS NULL AND a.disabled_at IS NULL ORDER BY k.created_at DESC, k.seq DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        key_rows(records)
    }
}
