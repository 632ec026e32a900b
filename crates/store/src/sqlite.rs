//! The SQLite backend: opening the database (WAL, NORMAL sync, 5 s busy timeout,
//! foreign keys on) and the embedded migrations. Queries live in the submodules.
//!
//! Several processes may share one file: every decision about money is a single
//! statement under SQLite's write lock, never a read followed by a write.

mod accounts;
mod batches;
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
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use self::batches::Batches;
use crate::StoreError;

/// Connections in the pool of a file database. SQLite serialises writers anyway;
/// a few connections let reads proceed beside a write (WAL).
const FILE_POOL_SIZE: u32 = 4;

/// Rows a statement's connection thread may hand over before the task reading them takes
/// any (sqlx's default is 50). With room for fewer than a query answers (a multi-statement
/// batch of holds answers a message per statement; reads of hundreds of rows), the thread
/// stopped at every row once the channel was full and the reader woke it again for the
/// next — two futex calls and often two context switches a row.
const ROW_BUFFER: usize = 1024;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database behind a connection pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    pool: SqlitePool,
    /// The one connection holds are taken and settlement batches written on, so that the
    /// pages they share stay in its cache. Settlements commit with FULL sync (on disk
    /// before the usage journal that carried them is emptied), holds with NORMAL. The pool
    /// itself for in-memory databases.
    batches: Batches,
}

impl SqliteDb {
    /// Opens `url` (`sqlite://path`, `sqlite:path` or `sqlite::memory:`), creating the file
    /// if missing.
    pub(crate) async fn open(url: &str) -> Result<SqliteDb, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .row_buffer_size(ROW_BUFFER);
        if is_memory_url(url) {
            // One connection kept for the pool's lifetime: every query sees the same
            // database, and it is not dropped when the pool goes idle.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .test_before_acquire(false)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?;
            return Ok(SqliteDb { batches: Batches::Pooled(pool.clone()), pool });
        }
        let options = options.journal_mode(SqliteJournalMode::Wal);
        // No ping before each use (one more trip to the connection's worker thread per
        // query): a broken connection fails its query, which is answered as an error.
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .test_before_acquire(false)
            .connect_with(options.clone().synchronous(SqliteSynchronous::Normal))
            .await?;
        let batches = Batches::own(options.synchronous(SqliteSynchronous::Normal)).await?;
        Ok(SqliteDb { pool, batches })
    }

    pub(crate) async fn migrate(&self) -> Result<usize, StoreError> {
        let before = applied(&self.pool).await;
        MIGRATOR.run(&self.pool).await?;
        Ok(applied(&self.pool).await.saturating_sub(before))
    }
}

async fn applied(pool: &SqlitePool) -> usize {
    let count: Result<i64, _> =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(pool).await;
    count.map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

fn is_memory_url(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}
