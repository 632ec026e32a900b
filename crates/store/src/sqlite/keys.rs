//! SQLite queries for API keys and the `keys_version` counter they bump.

use sqlx::{Sqlite, Transaction};
use tokenrouter_core::clock;

use super::SqliteDb;
use crate::rows::{KeyRecord, encode_list, key_rows, select_keys};
use crate::{KeyRow, NewKey, StoreError};

pub(super) async fn bump_keys_version(tx: &mut Transaction<'_, Sqlite>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE meta SET value = value + 1 WHERE name = 'keys_version'").execute(&mut **tx).await?;
    Ok(())
}

impl SqliteDb {
    pub(crate) async fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        let models = encode_list(&key.models)?;
        let ips = encode_list(&key.ips)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, secret_hash, models, ips, rpm, tpm, \
             spend_limit_nano, expires_at, created_at, scope, community) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        bump_keys_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn list_keys(&self, account_id: i64) -> Result<Vec<KeyRow>, StoreError> {
        let records = sqlx::query_as::<_, KeyRecord>(select_keys!(
            "WHERE k.account_id = ? ORDER BY k.created_at DESC, k.rowid DESC"
        ))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        key_rows(records)
    }

    pub(crate) async fn revoke_key(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let revoked = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(clock::now_unix())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if revoked == 0 {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM api_keys WHERE id = ?").bind(id).fetch_optional(&mut *tx).await?;
            // Already revoked: nothing changed, so nothing to commit or announce.
            return match exists {
                Some(_) => Ok(()),
                None => Err(StoreError::KeyNotFound(id.to_owned())),
            };
        }
        bump_keys_version(&mut tx).await?;
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
            "WHERE k.revoked_at IS NULL AND a.disabled_at IS NULL ORDER BY k.created_at DESC, k.rowid DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        key_rows(records)
    }
}
