//! SQLite queries for API keys and the `keys_version` counter they bump.

use sqlx::{Sqlite, Transaction};
use tokenrouter_core::clock;

use super::SqliteDb;
use crate::rows::{KeyRecord, encode_list, key_rows, select_keys};
use crate::{KeyChanges, KeyRow, NewKey, Revocation, StoreError};

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

impl SqliteDb {
    pub(crate) async fn account_key(&self, account_id: i64, id: &str) -> Result<Option<KeyRow>, StoreError> {
        let record = sqlx::query_as::<_, KeyRecord>(select_keys!("WHERE k.id = ? AND k.account_id = ?"))
            .bind(id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(key_rows(record.into_iter().collect())?.pop())
    }

    pub(crate) async fn update_key(
        &self,
        account_id: i64,
        id: &str,
        changes: &KeyChanges,
    ) -> Result<Option<KeyRow>, StoreError> {
        let models = changes.models.as_deref().map(encode_list).transpose()?;
        let ips = changes.ips.as_deref().map(encode_list).transpose()?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let updated = sqlx::query(
            "UPDATE api_keys SET \
               name = CASE WHEN ?1 THEN ?2 ELSE name END, \
               models = CASE WHEN ?3 THEN ?4 ELSE models END, \
               ips = CASE WHEN ?5 THEN ?6 ELSE ips END, \
               rpm = CASE WHEN ?7 THEN ?8 ELSE rpm END, \
               tpm = CASE WHEN ?9 THEN ?10 ELSE tpm END, \
               spend_limit_nano = CASE WHEN ?11 THEN ?12 ELSE spend_limit_nano END, \
               expires_at = CASE WHEN ?13 THEN ?14 ELSE expires_at END \
             WHERE id = ?15 AND account_id = ?16 AND revoked_at IS NULL",
        )
        .bind(changes.name.is_some())
        .bind(changes.name.as_deref())
        .bind(models.is_some())
        .bind(models)
        .bind(ips.is_some())
        .bind(ips)
        .bind(changes.rpm.is_some())
        .bind(changes.rpm.flatten().map(i64::from))
        .bind(changes.tpm.is_some())
        .bind(changes.tpm.flatten().map(i64::from))
        .bind(changes.spend_limit.is_some())
        .bind(changes.spend_limit.flatten().map(|limit| limit.0))
        .bind(changes.expires_at.is_some())
        .bind(changes.expires_at.flatten())
        .bind(id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        bump_keys_version(&mut tx).await?;
        tx.commit().await?;
        self.account_key(account_id, id).await
    }

    pub(crate) async fn revoke_account_key(&self, account_id: i64, id: &str) -> Result<Revocation, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let revoked_at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM api_keys WHERE id = ? AND account_id = ?")
                .bind(id)
                .bind(account_id)
                .fetch_optional(&mut *tx)
                .await?;
        match revoked_at {
            None => return Ok(Revocation::NotFound),
            Some(Some(_)) => return Ok(Revocation::AlreadyRevoked),
            Some(None) => {}
        }
        sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ?")
            .bind(clock::now_unix())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        bump_keys_version(&mut tx).await?;
        tx.commit().await?;
        Ok(Revocation::Revoked)
    }

    pub(crate) async fn keys_last_used(&self, account_id: i64) -> Result<Vec<(String, i64)>, StoreError> {
        // The last hour each key was used in comes from the hourly rollup; the last request
        // within it from the log: one hour of rows per key, never the whole log.
        let rows = sqlx::query_as(
            "SELECT key_id, at FROM (SELECT h.key_id, (SELECT MAX(u.created_at) FROM usage u \
             WHERE u.account_id = ?1 AND u.key_id = h.key_id AND u.created_at >= h.last AND u.created_at < h.last + 3600) AS at \
             FROM (SELECT key_id, MAX(hour) AS last FROM usage_hourly WHERE account_id = ?1 GROUP BY key_id) h) k \
             WHERE at IS NOT NULL",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}
