//! The PostgreSQL backend, for several gateway replicas on one database: opening a pool,
//! the embedded migrations (several processes starting at once migrate one at a time,
//! under the migrator's advisory lock) and change notifications (`LISTEN`). Queries
//! live in the submodules; they mirror the SQLite backend's.

mod accounts;
mod holds;
mod instances;
mod inventory;
mod jobs;
mod keys;
mod replicas;
mod reports;
mod responses;
mod sessions;
mod usage;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};

use crate::StoreError;

/// Connections per process: enough for the hot path's one hold per request and the
/// batching writer, without exhausting a server shared by many replicas.
const POOL_SIZE: u32 = 16;
/// How long making the hold connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The channel every change of keys or accounts is announced on.
pub(crate) const CHANGES_CHANNEL: &str = "tokenrouter_changes";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A PostgreSQL database behind a connection pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PostgresDb {
    pool: PgPool,
    /// The connection holds are taken on, outside the pool: a pooled connection costs a
    /// round trip (a ping) each time it goes back, and holds are on every request's path.
    hold_connection: Arc<HoldConnection>,
}

/// A connection of its own, made when first needed and made again after an error.
#[derive(Debug)]
struct HoldConnection {
    options: PgConnectOptions,
    connection: tokio::sync::Mutex<Option<PgConnection>>,
}

impl PostgresDb {
    pub(crate) async fn open(url: &str) -> Result<PostgresDb, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("tokenrouter");
        let database = options.get_database().unwrap_or("postgres").to_owned();
        // No ping before each use: it would be a second round trip for every query. A
        // connection that broke fails its query, which callers answer as an error (and the
        // pool replaces it).
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|e| match &e {
                // 3D000: invalid_catalog_name — the database does not exist.
                sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => StoreError::NoDatabase(database),
                _ => StoreError::Database(e),
            })?;
        // A hold that cannot finish in 5 s (a lock held by a stuck transaction, a server
        // in trouble) is rolled back by the server rather than committed late.
        let hold_options = options.clone().options([("statement_timeout", "5000"), ("lock_timeout", "5000")]);
        let hold_connection =
            Arc::new(HoldConnection { options: hold_options, connection: tokio::sync::Mutex::new(None) });
        Ok(PostgresDb { pool, hold_connection })
    }

    /// Runs `work` on the hold connection (one caller at a time), connecting first when
    /// there is none. The connection goes back only after `work` succeeded: after an error,
    /// or if the caller went away mid-query, the next caller starts on a fresh one rather
    /// than on one left in an unknown state.
    pub(crate) async fn on_hold_connection<T>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let mut slot = self.hold_connection.connection.lock().await;
        let mut connection = match slot.take() {
            Some(connection) => connection,
            None => tokio::time::timeout(CONNECT_TIMEOUT, self.hold_connection.options.connect())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??,
        };
        let outcome = work(&mut connection).await?;
        *slot = Some(connection);
        Ok(outcome)
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
