//! The one connection holds are taken and settlement batches written on, driven from a
//! thread of its own with `rusqlite`: a batch is one job sent to the thread and one answer
//! back, whatever the number of statements and rows in it. Through sqlx's driver each
//! statement and each row was a message between its thread and the task, and its binding
//! copied each value twice (≈ 10 % of the gateway's instructions per request; see
//! bench/README.md, ninth look). Keeping holds and settlements on one connection keeps the
//! pages they share in its cache.
//!
//! A job runs to its end on the thread even when the task that sent it has gone away, and
//! a transaction it left open (a failure half-way, or SQLite ending one on its own) is
//! rolled back before the next job runs: no later batch finds one open.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::StoreError;

type Job = Box<dyn FnOnce(&mut Slot) + Send>;

/// The writing connection's thread. Cheap to clone; the thread ends, closing the
/// connection, when the last clone is dropped.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// Where the writing connection opens.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// A database file, already set to write-ahead logging by the pool.
    File(String),
    /// A database in memory shared by name between this process's connections (SQLite's
    /// `memdb` file system; the name starts with `/`). It lives as long as one of them is open.
    Memory(String),
}

/// How long a statement waits for another connection's write lock before failing.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Writer {
    /// Opens the connection (now, so that a database that cannot be opened fails at start)
    /// and starts its thread.
    pub(super) fn open(target: Target, checkpoint_pages: u32) -> Result<Writer, StoreError> {
        let connection = connect(&target, checkpoint_pages)?;
        let mut slot = Slot { connection, target, checkpoint_pages };
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || serve(&mut slot, queue))
            .map_err(|e| StoreError::Writer(e.to_string()))?;
        Ok(Writer { jobs })
    }

    /// Runs `work` on the connection and answers what it returns. A transaction `work`
    /// leaves open is rolled back before the answer is sent.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |slot| {
            let result = work(&mut slot.connection);
            slot.tidy();
            let _ = answer.send(result);
        });
        self.jobs.send(job).map_err(|_| StoreError::Writer("its thread has stopped".to_owned()))?;
        answered.await.map_err(|_| StoreError::Writer("a write ended without an answer".to_owned()))?
    }
}

/// Opens the writing connection to `target`: foreign keys on, commits without a sync to
/// disk unless a settlement asks for one, checkpoints left to the pool up to `checkpoint_pages`.
fn connect(target: &Target, checkpoint_pages: u32) -> Result<Connection, rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = match target {
        Target::File(path) => Connection::open_with_flags(path, flags)?,
        Target::Memory(name) => Connection::open_with_flags_and_vfs(name, flags, c"memdb")?,
    };
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "foreign_keys", true)?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    if let Target::File(_) = target {
        connection.pragma_update(None, "wal_autocheckpoint", checkpoint_pages)?;
    }
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

/// The connection, with what it takes to open it again.
struct Slot {
    connection: Connection,
    target: Target,
    checkpoint_pages: u32,
}

impl Slot {
    /// Rolls back a transaction a job left open; if that fails, the connection is opened
    /// again (closing the old one ends its transaction), so that no later job finds one open.
    fn tidy(&mut self) {
        if !end_open_transaction(&self.connection) {
            self.reopen();
        }
    }

    /// A new connection in place of this one, which closes once the new one is open (an
    /// in-memory database lives on between the two). What it has open is rolled back first
    /// if it can be, as the new connection would wait for its lock.
    fn reopen(&mut self) {
        end_open_transaction(&self.connection);
        match connect(&self.target, self.checkpoint_pages) {
            Ok(connection) => self.connection = connection,
            Err(e) => tracing::warn!(error = %e, "could not open the writing connection again; keeping the old one"),
        }
    }
}

/// Begins a transaction that takes SQLite's write lock at once (a read inside it cannot
/// go stale before its write).
pub(super) fn begin(connection: &Connection) -> Result<(), StoreError> {
    connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    Ok(())
}

pub(super) fn commit(connection: &Connection) -> Result<(), StoreError> {
    connection.prepare_cached("COMMIT")?.execute([])?;
    Ok(())
}

/// Statements kept prepared: the holds', a settlement's, and a few more.
const STATEMENT_CACHE: usize = 32;

fn serve(slot: &mut Slot, queue: mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        if panic::catch_unwind(AssertUnwindSafe(|| job(slot))).is_err() {
            // Whatever it changed on the connection (a transaction, `synchronous`) goes
            // with it.
            tracing::error!("a write on the database's connection panicked; the connection is opened again");
            slot.reopen();
        }
    }
}

/// Rolls back a transaction left open on `connection`, if any; false if one is still open
/// (the thread then opens the connection again after the job).
pub(super) fn end_open_transaction(connection: &Connection) -> bool {
    if connection.is_autocommit() {
        return true;
    }
    match connection.execute_batch("ROLLBACK") {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "could not roll back an unfinished transaction");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that ends inside a transaction (failing half-way, or simply returning) has it
    /// rolled back before the next one runs: its writes are gone, another connection can
    /// write at once, and the next job begins its own transaction.
    #[tokio::test]
    async fn a_transaction_left_open_is_rolled_back() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("writer.db");
        let path = path.to_str().ok_or("path")?.to_owned();
        let other = Connection::open(&path)?;
        other.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)")?;
        other.busy_timeout(Duration::from_secs(2))?;
        let writer = Writer::open(Target::File(path.clone()), 1000)?;
        for round in 0..3 {
            let failed = writer
                .run(|c| {
                    c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")?;
                    c.execute("INSERT INTO missing VALUES (1)", [])?;
                    Ok(())
                })
                .await;
            assert!(failed.is_err());
            writer.run(|c| Ok(c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")?)).await?;
            // Waits at most its busy timeout for the lock, then fails.
            other.execute("INSERT INTO t VALUES (2)", [])?;
            let rows: Vec<i64> = writer
                .run(|c| {
                    c.execute_batch("BEGIN IMMEDIATE")?;
                    let rows =
                        c.prepare("SELECT x FROM t")?.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>();
                    c.execute_batch("COMMIT")?;
                    Ok(rows?)
                })
                .await?;
            assert_eq!(rows, vec![2; round + 1], "round {round}");
        }
        Ok(())
    }

    /// A job that panics does not stop the thread: its caller is told, what it began is
    /// rolled back and what it set undone (the connection is opened again; the database in
    /// memory lives on), and the next job runs.
    #[tokio::test]
    async fn a_panicking_job_is_survived() -> Result<(), Box<dyn std::error::Error>> {
        let writer = Writer::open(Target::Memory("/tokenrouter-writer-panic".to_owned()), 1000)?;
        writer.run(|c| Ok(c.execute_batch("CREATE TABLE t (x INTEGER)")?)).await?;
        let panicked = writer
            .run(|c| -> Result<(), StoreError> {
                c.execute_batch("PRAGMA synchronous = FULL; BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")?;
                panic!("a bug")
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Writer(_))), "{panicked:?}");
        let (count, synchronous): (i64, i64) = writer
            .run(|c| {
                let count = c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?;
                Ok((count, c.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
            })
            .await?;
        assert_eq!((count, synchronous), (0, 1), "rolled back, and NORMAL again");
        Ok(())
    }
}
