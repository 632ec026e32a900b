//! The SQLite backend: opening the database (WAL, NORMAL sync, 5 s busy timeout,
//! foreign keys on) and the embedded migrations. Queries live in the submodules.

mod accounts;
mod holds;
mod keys;
mod responses;
mod usage;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::StoreError;

/// Connections in the pool of a file database. SQLite serialises writers anyway;
/// a few connections let reads proceed beside a write (WAL).
const FILE_POOL_SIZE: u32 = 4;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database behind a connection pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    pool: SqlitePool,
}

impl SqliteDb {
    /// Opens `url` (`sqlite://path`, `sqlite:path` or `sqlite::memory:`), creating the file
    /// if missing, and runs pending migrations.
    pub(crate) async fn connect(url: &str) -> Result<SqliteDb, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let in_memory = is_memory_url(url);
        let pool = if in_memory {
            // One connection kept for the pool's lifetime: every query sees the same
            // database, and it is not dropped when the pool goes idle.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            let options = options.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal);
            SqlitePoolOptions::new().max_connections(FILE_POOL_SIZE).connect_with(options).await?
        };
        MIGRATOR.run(&pool).await?;
        Ok(SqliteDb { pool })
    }
}

fn is_memory_url(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// Stores a count that is a `u64` in Rust in an INTEGER column (saturating; never reached).
fn to_db_count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads back a count written by [`to_db_count`]; a negative value (never written) reads as 0.
fn from_db_count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A column held a value this crate never writes.
fn corrupt(column: &str, detail: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("column '{column}': {detail}").into())
}
