//! The usage journal: each usage record is appended to a file next to the database
//! before its request's answer ends, so that a process killed before the batching writer
//! committed it (kill -9, OOM) loses no charge. The next start replays the journal into
//! the store (idempotent by request id) before releasing leftover holds. The writer
//! empties the journal whenever everything in it has been committed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use tokenrouter_store::UsageRecord;

pub struct Journal {
    file: Mutex<File>,
    path: PathBuf,
}

impl Journal {
    /// The journal beside a SQLite database file; `None` for in-memory databases and
    /// other URLs.
    pub fn path_for(database_url: &str) -> Option<PathBuf> {
        let path = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
        let path = path.split('?').next().unwrap_or(path);
        (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(format!("{path}.usage-journal")))
    }

    pub fn open(path: PathBuf) -> std::io::Result<Journal> {
        let file = OpenOptions::new().create(true).append(true).read(true).open(&path)?;
        Ok(Journal { file: Mutex::new(file), path })
    }

    /// The records a previous process journaled (and perhaps never committed).
    pub fn pending(&self) -> std::io::Result<Vec<UsageRecord>> {
        let reader = BufReader::new(File::open(&self.path)?);
        let mut records = Vec::new();
        for line in reader.lines() {
            // A line cut short by the kill is skipped: its request never got its answer's end.
            if let Ok(record) = serde_json::from_str::<UsageRecord>(&line?) {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Locks the journal; appends and the queueing of the same records happen under it,
    /// so the writer can empty it knowing nothing journaled is still on its way.
    pub fn lock(&self) -> MutexGuard<'_, File> {
        self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One record as a journal line. Serialized before the lock is taken, so the lock
    /// covers only the write.
    pub fn line(record: &UsageRecord) -> Vec<u8> {
        let mut line = serde_json::to_vec(record).unwrap_or_default();
        line.push(b'\n');
        line
    }

    pub fn append(file: &mut File, line: &[u8]) {
        if let Err(e) = file.write_all(line) {
            tracing::warn!(error = %e, "could not append to the usage journal");
        }
    }

    /// Empties the journal (everything in it is committed).
    pub fn clear(file: &File) {
        if let Err(e) = file.set_len(0) {
            tracing::warn!(error = %e, "could not empty the usage journal");
        }
    }
}
