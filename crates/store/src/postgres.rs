//! The PostgreSQL backend, for several gateway replicas on one database: opening a pool,
//! the embedded migrations (several processes starting at once migrate one at a time,
//! under the migrator's advisory lock) and change notifications (`LISTEN`). Queries
//! live in the submodules; they mirror the SQLite backend's.

mod accounts;
mod holds;
mod keys;
mod replicas;
mod responses;
mod usage;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use crate::StoreError;

/// Connections per process: enough for the hot path's one hold per request and the
/// batching writer, without exhausting a server shared by many replicas.
const POOL_SIZE: u32 = 16;
/// The channel every change of keys or accounts is announced on.
pub(crate) const CHANGES_CHANNEL: &str = "tokenrouter_changes";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A PostgreSQL database behind a connection pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PostgresDb {
    pool: PgPool,
}

impl PostgresDb {
    pub(crate) async fn open(url: &str) -> Result<PostgresDb, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("tokenrouter");
        let database = options.get_database().unwrap_or("postgres").to_owned();
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| match &e {
                // 3D000: invalid_catalog_name — the database does not exist.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => StoreError::NoDatabase(database),
                _ => StoreError::Database(e),
            })?;
        Ok(PostgresDb { pool })
    }

    pub(crate) async fn migrate(&self) -> Result<usize, StoreError> {
        let before = self.applied().await;
        MIGRATOR.run(&self.pool).await?;
        Ok(self.applied().await.saturating_sub(before))
    }

    async fn applied(&self) -> usize {
        let count: Result<i64, _> =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await;
        count.map_or(0, |n| usize::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn changes(&self) -> Result<Changes, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(Changes { listener })
    }
}

/// Notifications that keys or accounts changed, pushed by the database.
pub struct Changes {
    listener: PgListener,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Changes")
    }
}

/// What [`Changes::next`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Something changed.
    Changed,
    /// The connection was lost and made again: notifications may have been missed, so
    /// reload everything.
    Reconnected,
}

impl Changes {
    /// Waits for the next change. Reconnects by itself after a lost connection (and then
    /// says so); an error means the database could not be reached at all for now.
    pub async fn next(&mut self) -> Result<Change, StoreError> {
        match self.listener.try_recv().await? {
            Some(_) => Ok(Change::Changed),
            None => Ok(Change::Reconnected),
        }
    }
}

/// Announces a change of keys or accounts inside the transaction that made it (delivered
/// when it commits).
pub(crate) async fn announce(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE meta SET value = value + 1 WHERE name = 'keys_version'").execute(&mut **tx).await?;
    sqlx::query("SELECT pg_notify($1, 'keys')").bind(CHANGES_CHANNEL).execute(&mut **tx).await?;
    Ok(())
}
