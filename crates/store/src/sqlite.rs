//! The SQLite backend: opening the database (WAL, NORMAL sync, 5 s busy timeout,
//! foreign keys on) and the embedded migrations. Queries live in the submodules: reads
//! and the service's writes through sqlx's pool, holds and settlements through the
//! writing connection (`writer`).
//!
//! Several processes may share one file: every decision about money is a single
//! statement under SQLite's write lock, never a read followed by a write.

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
mod writer;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use self::writer::{BUSY_TIMEOUT, Target, Writer};
use crate::StoreError;

/// Connections in the pool of a file database. SQLite serialises writers anyway;
/// a few connections let reads proceed beside a write (WAL).
const FILE_POOL_SIZE: u32 = 4;

/// Rows a statement's connection thread may hand over before the task reading them takes
/// any (sqlx's default is 50). With room for fewer than a query answers (reads of hundreds
/// of rows), the thread
/// stopped at every row once the channel was full and the reader woke it again for the
/// next — two futex calls and often two context switches a row.
const ROW_BUFFER: usize = 1024;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database behind a connection pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    pool: SqlitePool,
    /// The one connection holds are taken and settlement batches written on, on a thread
    /// of its own, so that the pages they share stay in its cache. Settlements commit with
    /// FULL sync (on disk before the usage journal that carried them is emptied), holds
    /// with NORMAL.
    writer: Writer,
}

/// Numbers the in-memory databases this process opens.
static MEMORY_DATABASES: AtomicU64 = AtomicU64::new(0);

impl SqliteDb {
    /// Opens `url` (`sqlite://path`, `sqlite:path` or `sqlite::memory:`), creating the file
    /// if missing.
    pub(crate) async fn open(url: &str) -> Result<SqliteDb, StoreError> {
        if is_memory_url(url) {
            // A database of this process's own, in memory, that the writing connection and
            // the pool's share by name; the pool keeps one connection, as readers and the
            // writer exclude each other without a write-ahead log.
            let name =
                format!("/tokenrouter-{}-{}", std::process::id(), MEMORY_DATABASES.fetch_add(1, Ordering::Relaxed));
            let writer = Writer::open(Target::Memory(name.clone()), BACKSTOP_CHECKPOINT_PAGES)?;
            let options = SqliteConnectOptions::new().filename(&name).vfs("memdb");
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .test_before_acquire(false)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(connection_options(options))
                .await?;
            return Ok(SqliteDb { pool, writer });
        }
        let options = connection_options(SqliteConnectOptions::from_str(url)?.create_if_missing(true))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        // No ping before each use (one more trip to the connection's worker thread per
        // query): a broken connection fails its query, which is answered as an error.
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let path = options
            .get_filename()
            .to_str()
            .ok_or_else(|| StoreError::Writer("the database's path is not UTF-8".to_owned()))?;
        // Its commits leave checkpoints to the task below, up to a backstop.
        let writer = Writer::open(Target::File(path.to_owned()), BACKSTOP_CHECKPOINT_PAGES)?;
        tokio::spawn(checkpoints(pool.clone()));
        Ok(SqliteDb { pool, writer })
    }

    pub(crate) async fn migrate(&self) -> Result<usize, StoreError> {
        let before = applied(&self.pool).await;
        MIGRATOR.run(&self.pool).await?;
        Ok(applied(&self.pool).await.saturating_sub(before))
    }
}

/// How often the write-ahead log is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The log's length (in pages) at which a commit on the writing connection checkpoints
/// it after all — only if [`checkpoints`] has stopped keeping up; SQLite's default is 1,000.
const BACKSTOP_CHECKPOINT_PAGES: u32 = 20_000;

/// Copies the write-ahead log into the database file every [`CHECKPOINT_EVERY`], on a
/// connection of the pool, without waiting for any writer (`PASSIVE`). Left to SQLite, the
/// commit that takes the log past 1,000 pages does it, on the connection holds and
/// settlements share: copying a hundred pages and two syncs to disk, ≈ 0.5–0.7 ms here,
/// during which that commit's requests — and every hold behind it — wait. Ends when the
/// pool is closed.
async fn checkpoints(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::debug!(error = %e, "checkpoint of the write-ahead log failed; retried");
        }
    }
}

async fn applied(pool: &SqlitePool) -> usize {
    let count: Result<i64, _> =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(pool).await;
    count.map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// What every connection of the pool sets.
fn connection_options(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options.foreign_keys(true).busy_timeout(BUSY_TIMEOUT).row_buffer_size(ROW_BUFFER)
}

fn is_memory_url(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

#[cfg(test)]
mod tests {
    use sqlx::ConnectOptions;

    use super::*;

    type HoldRow = (i64, i64, i64, String, Option<i64>);

    /// The sums held by account 1 and key `k`, and the holds as rows.
    async fn held(db: &SqliteDb) -> Result<(i64, i64, Vec<HoldRow>), sqlx::Error> {
        let account: i64 =
            sqlx::query_scalar("SELECT held_nano FROM accounts WHERE id = 1").fetch_one(&db.pool).await?;
        let key: i64 = sqlx::query_scalar("SELECT held_nano FROM api_keys WHERE id = 'k'").fetch_one(&db.pool).await?;
        let holds =
            sqlx::query_as("SELECT amount_nano, created_at, stream, model, earner_id FROM holds ORDER BY request_id")
                .fetch_all(&db.pool)
                .await?;
        Ok((account, key, holds))
    }

    /// What is committed reaches the database file itself within a moment, though the
    /// write-ahead log is far below SQLite's own checkpoint size: a reader that ignores the
    /// log (`immutable`) sees it.
    #[tokio::test]
    async fn commits_are_checkpointed_into_the_file_in_the_background() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("checkpointed.db");
        let db = SqliteDb::open(&format!("sqlite://{}", path.display())).await?;
        db.migrate().await?;
        db.writer
            .run(|c| {
                Ok(c.execute_batch(
                    "INSERT INTO accounts (id, name, balance_nano, created_at) VALUES (1, 'on disk', 5, 0)",
                )?)
            })
            .await?;
        tokio::time::sleep(CHECKPOINT_EVERY * 4).await;
        let mut file_only =
            SqliteConnectOptions::new().filename(&path).immutable(true).read_only(true).connect().await?;
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM accounts").fetch_all(&mut file_only).await?;
        assert_eq!(names, ["on disk"]);
        Ok(())
    }

    /// In memory, the writing connection and the pool's share one database, of this
    /// `SqliteDb` alone: what one commits the other reads, a write that fails inside its
    /// transaction leaves the database (its tables, what was committed before) as it was,
    /// and another in-memory database opened beside it is empty.
    #[tokio::test]
    async fn the_in_memory_database_is_shared_by_its_connections_alone() -> Result<(), Box<dyn std::error::Error>> {
        let db = SqliteDb::open("sqlite::memory:").await?;
        db.migrate().await?;
        sqlx::query("INSERT INTO accounts (id, name, balance_nano, created_at) VALUES (1, 'kept', 5, 0)")
            .execute(&db.pool)
            .await?;
        for round in 0..3 {
            let failed = db
                .writer
                .run(|c| {
                    c.execute_batch(
                        "BEGIN IMMEDIATE; INSERT INTO accounts (name, balance_nano, created_at) VALUES ('lost', 1, 0)",
                    )?;
                    Ok(c.execute_batch(
                        "INSERT INTO accounts (id, name, balance_nano, created_at) VALUES (1, 'twice', 1, 0)",
                    )?)
                })
                .await;
            assert!(failed.is_err(), "round {round}");
            let names: Vec<String> =
                sqlx::query_scalar("SELECT name FROM accounts ORDER BY id").fetch_all(&db.pool).await?;
            assert_eq!(names, ["kept"], "round {round}");
        }
        db.writer.run(|c| Ok(c.execute_batch("UPDATE accounts SET balance_nano = 7 WHERE id = 1")?)).await?;
        let balance: i64 =
            sqlx::query_scalar("SELECT balance_nano FROM accounts WHERE id = 1").fetch_one(&db.pool).await?;
        assert_eq!(balance, 7);
        let other = SqliteDb::open("sqlite::memory:").await?;
        other.migrate().await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&other.pool).await?;
        assert_eq!(count, 0);
        Ok(())
    }

    /// Moving holds into a table keyed by request id (0019), then into one that skips a
    /// hold without an amount (0020), keeps every open hold and the sums they hold, and
    /// the triggers still move the sums afterwards; a request id is still held at most once.
    #[tokio::test]
    async fn holds_open_before_the_rekeyed_table_survive_it() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = SqliteDb::open(&format!("sqlite://{}", dir.path().join("holds.db").display())).await?;
        MIGRATOR.run_to(18, &db.pool).await?;
        sqlx::raw_sql(
            "INSERT INTO accounts (id, name, balance_nano, created_at) VALUES (1, 'a', 1000, 0);
             INSERT INTO api_keys (id, account_id, secret_hash, created_at) VALUES ('k', 1, x'00', 0);
             INSERT INTO holds (request_id, account_id, key_id, amount_nano, created_at, model, stream, earner_id)
                 VALUES ('r1', 1, 'k', 70, 5, 'm1', 1, 3), ('r2', 1, 'k', 30, 6, 'm2', 0, NULL);",
        )
        .execute(&db.pool)
        .await?;
        let before = held(&db).await?;
        assert_eq!((before.0, before.1, before.2.len()), (100, 100, 2));

        assert_eq!(db.migrate().await?, MIGRATOR.iter().count() - 18);
        assert_eq!(held(&db).await?, before);
        let without_rowid: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'holds' AND sql LIKE '%WITHOUT ROWID'")
                .fetch_one(&db.pool)
                .await?;
        assert_eq!(without_rowid, 1);

        sqlx::query("DELETE FROM holds WHERE request_id = 'r1'").execute(&db.pool).await?;
        sqlx::query(
            "INSERT INTO holds (request_id, account_id, key_id, amount_nano, created_at) VALUES ('r3', 1, 'k', 5, 7)",
        )
        .execute(&db.pool)
        .await?;
        let (account, key, holds) = held(&db).await?;
        assert_eq!((account, key, holds.len()), (35, 35, 2));
        let duplicate = sqlx::query(
            "INSERT INTO holds (request_id, account_id, key_id, amount_nano, created_at) VALUES ('r3', 1, 'k', 5, 8)",
        )
        .execute(&db.pool)
        .await;
        assert!(duplicate.is_err(), "a request id is held at most once");
        let skipped = sqlx::query(
            "INSERT INTO holds (request_id, account_id, key_id, amount_nano, created_at) VALUES ('r4', 1, 'k', NULL, 8)",
        )
        .execute(&db.pool)
        .await?;
        assert_eq!(skipped.rows_affected(), 0, "a hold without an amount is skipped, not an error");
        let (account, key, holds) = held(&db).await?;
        assert_eq!((account, key, holds.len()), (35, 35, 2));
        Ok(())
    }
}
