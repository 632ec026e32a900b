//! SQLite queries for API keys and the `keys_version` counter they bump.

use sqlx::{FromRow, Sqlite, Transaction};
use tokenrouter_core::{NanoUsd, clock};

use super::{SqliteDb, corrupt};
use crate::{KeyRow, NewKey, StoreError};

#[derive(FromRow)]
struct KeyRecord {
    id: String,
    account_id: i64,
    account_name: String,
    name: String,
    secret_hash: Vec<u8>,
    models: String,
    ips: String,
    rpm: Option<i64>,
    tpm: Option<i64>,
    spend_limit_nano: Option<i64>,
    spent_nano: i64,
    expires_at: Option<i64>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<KeyRecord> for KeyRow {
    type Error = sqlx::Error;

    fn try_from(r: KeyRecord) -> Result<KeyRow, sqlx::Error> {
        let secret_hash = <[u8; 32]>::try_from(r.secret_hash.as_slice())
            .map_err(|_| corrupt("secret_hash", format!("{} bytes, not 32", r.secret_hash.len())))?;
        Ok(KeyRow {
            id: r.id,
            account_id: r.account_id,
            account_name: r.account_name,
            name: r.name,
            secret_hash,
            models: decode_list("models", &r.models)?,
            ips: decode_list("ips", &r.ips)?,
            rpm: decode_limit("rpm", r.rpm)?,
            tpm: decode_limit("tpm", r.tpm)?,
            spend_limit: r.spend_limit_nano.map(NanoUsd),
            spent: NanoUsd(r.spent_nano),
            expires_at: r.expires_at,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

fn decode_list(column: &str, json: &str) -> Result<Vec<String>, sqlx::Error> {
    serde_json::from_str(json).map_err(|err| corrupt(column, err))
}

fn encode_list(list: &[String]) -> Result<String, sqlx::Error> {
    serde_json::to_string(list).map_err(|err| sqlx::Error::Encode(Box::new(err)))
}

fn decode_limit(column: &str, value: Option<i64>) -> Result<Option<u32>, sqlx::Error> {
    value.map(|v| u32::try_from(v).map_err(|_| corrupt(column, format!("{v} is not a u32")))).transpose()
}

/// A key query with its account's name joined, followed by `$tail` (a literal, so the
/// whole query stays a `&'static str`).
macro_rules! select_keys {
    ($tail:literal) => {
        concat!(
            "SELECT k.id, k.account_id, a.name AS account_name, k.name, k.secret_hash, ",
            "k.models, k.ips, k.rpm, k.tpm, k.spend_limit_nano, k.spent_nano, ",
            "k.expires_at, k.created_at, k.revoked_at ",
            "FROM api_keys k JOIN accounts a ON a.id = k.account_id ",
            $tail
        )
    };
}

async fn bump_keys_version(tx: &mut Transaction<'_, Sqlite>) -> Result<(), sqlx::Error> {
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
             spend_limit_nano, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        to_rows(records)
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
            "WHERE k.revoked_at IS NULL ORDER BY k.created_at DESC, k.rowid DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        to_rows(records)
    }
}

fn to_rows(records: Vec<KeyRecord>) -> Result<Vec<KeyRow>, StoreError> {
    records.into_iter().map(|r| KeyRow::try_from(r).map_err(StoreError::from)).collect()
}
