//! The one connection holds are taken and settlement batches written on, so that the pages
//! they share stay in its cache. A file database keeps it outside any pool: sqlx's pool
//! pings a connection each time it is given back (a trip to the connection's thread and
//! back, two context switches), which was one more trip for every batch of holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, MutexGuard};

#[derive(Debug, Clone)]
pub(super) enum Batches {
    /// An in-memory database: the pool's one connection is the database, so it is never
    /// closed; a use that left it unfit has it rolled back instead (see [`Rollback`]).
    Pooled(SqlitePool, Rollback),
    /// A file: a connection of its own, opened again if a use left it unfit.
    Own(Arc<Own>),
}

#[derive(Debug)]
pub(super) struct Own {
    options: SqliteConnectOptions,
    connection: Mutex<Option<SqliteConnection>>,
}

/// Set when a use of an in-memory database's connection may have left a transaction open:
/// the pool rolls it back as the connection comes back ([`Rollback::roll_back_if_flagged`]), before
/// any other query can run inside it.
#[derive(Debug, Clone, Default)]
pub(super) struct Rollback(Arc<AtomicBool>);

impl Rollback {
    /// For the pool's `after_release`: rolls back what a use flagged as left open (none
    /// being open is fine). The connection is kept whatever happens: it is the database.
    pub(super) async fn roll_back_if_flagged(&self, connection: &mut SqliteConnection) {
        if self.0.swap(false, Ordering::AcqRel)
            && let Err(e) = sqlx::query("ROLLBACK").execute(connection).await
            && !no_transaction_was_open(&e)
        {
            tracing::warn!(error = %e, "could not roll back an unfinished transaction on the in-memory database");
        }
    }
}

/// Whether a `ROLLBACK` failed only because no transaction was open.
pub(super) fn no_transaction_was_open(e: &sqlx::Error) -> bool {
    e.to_string().contains("no transaction is active")
}

impl Batches {
    /// A connection of its own to the file `options` open, connected now so that a
    /// database that cannot be opened fails at start.
    pub(super) async fn own(options: SqliteConnectOptions) -> Result<Batches, sqlx::Error> {
        let connection = options.connect().await?;
        Ok(Batches::Own(Arc::new(Own { options, connection: Mutex::new(Some(connection)) })))
    }

    /// The connection, once the batch before has let go of it.
    pub(super) async fn acquire(&self) -> Result<BatchConnection<'_>, sqlx::Error> {
        match self {
            Batches::Pooled(pool, rollback) => Ok(BatchConnection::Pooled(pool.acquire().await?, rollback.clone())),
            Batches::Own(own) => {
                let mut slot = own.connection.lock().await;
                if slot.is_none() {
                    *slot = Some(own.options.connect().await?);
                }
                Ok(BatchConnection::Own { slot, unfit: false })
            }
        }
    }
}

/// The batches' connection, in use.
pub(super) enum BatchConnection<'a> {
    Pooled(PoolConnection<Sqlite>, Rollback),
    /// `Some` while in use.
    Own {
        slot: MutexGuard<'a, Option<SqliteConnection>>,
        unfit: bool,
    },
}

impl BatchConnection<'_> {
    /// Closes the connection instead of keeping it (a transaction may still be open on it);
    /// the next batch opens another. In-memory, where closing it would lose the database,
    /// what it left open is rolled back before anyone else uses it.
    pub(super) fn close_on_drop(&mut self) {
        match self {
            BatchConnection::Pooled(_, rollback) => rollback.0.store(true, Ordering::Release),
            BatchConnection::Own { unfit, .. } => *unfit = true,
        }
    }

    /// Takes back [`BatchConnection::close_on_drop`]: the use that asked for it ended well.
    pub(super) fn keep(&mut self) {
        match self {
            BatchConnection::Pooled(_, rollback) => rollback.0.store(false, Ordering::Release),
            BatchConnection::Own { unfit, .. } => *unfit = false,
        }
    }
}

impl Drop for BatchConnection<'_> {
    fn drop(&mut self) {
        if let BatchConnection::Own { slot, unfit: true } = self {
            // Dropped, its thread ends and SQLite rolls back whatever it left open.
            slot.take();
        }
    }
}

impl BatchConnection<'_> {
    /// The connection itself (an error only if it was closed while in use, which
    /// [`BatchConnection::close_on_drop`] never does).
    pub(super) fn get(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        match self {
            BatchConnection::Pooled(connection, _) => Ok(connection),
            BatchConnection::Own { slot, .. } => slot.as_mut().ok_or(sqlx::Error::PoolClosed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::sqlite::SqliteJournalMode;

    use super::*;

    /// A use that ends inside a transaction and closes the connection lets go of SQLite's
    /// write lock at once (another writer does not wait for it), its writes are rolled
    /// back, and the next use opens the connection again.
    #[tokio::test]
    async fn a_connection_closed_on_drop_lets_go_of_its_transaction() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("batches.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let batches = Batches::own(options.clone()).await?;
        let mut other = options.busy_timeout(Duration::from_secs(2)).connect().await?;
        sqlx::query("CREATE TABLE t (x INTEGER)").execute(&mut other).await?;
        for round in 0..3 {
            let mut batch = batches.acquire().await?;
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *batch.get()?).await?;
            sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *batch.get()?).await?;
            batch.close_on_drop();
            drop(batch);
            // Waits at most its busy timeout for the lock, then fails.
            sqlx::query("INSERT INTO t VALUES (2)").execute(&mut other).await?;
            let mut batch = batches.acquire().await?;
            let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t").fetch_all(&mut *batch.get()?).await?;
            assert_eq!(rows, vec![2; round + 1], "round {round}");
        }
        Ok(())
    }
}
