//! The usage journal: each usage record is appended to a file next to the database
//! before its request's answer ends, so that a process killed before the batching writer
//! committed it (kill -9, OOM) loses no charge. The next start replays the journal into
//! the store (idempotent by request id) before releasing leftover holds. The writer
//! empties the journal whenever everything in it has been committed.
//!
//! Against power loss, a syncer thread makes appends durable in batches: when the
//! batching writer is about to commit a batch it asks ([`Journal::synced`]), and one
//! `sync_data` covers everything appended so far (one fsync per batch, never one per
//! request, never under the append lock). A power loss can lose the answers of the
//! batch still being gathered (≤ 50 ms).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokenrouter_core::Usage;
use tokenrouter_providers::passthrough::write_json_string;
use tokenrouter_store::{Earning, UsageRecord, UsageSource};
use tokio::sync::watch;

/// Room for a usual line (≈ 400 bytes) without growing the buffer.
const LINE_CAPACITY: usize = 512;

pub struct Journal {
    file: Mutex<File>,
    path: PathBuf,
    appends: Arc<Appends>,
    /// The number of appends known to be on disk, as the syncer publishes it.
    synced: watch::Receiver<u64>,
}

/// What the appenders tell the syncer.
#[derive(Default)]
struct Appends {
    state: Mutex<AppendState>,
    wake: Condvar,
    /// fsyncs done so far.
    syncs: AtomicU64,
}

#[derive(Default)]
struct AppendState {
    /// Appends so far (each a completed write).
    count: u64,
    /// Appends the writer is waiting to have on disk.
    wanted: u64,
    /// The journal is gone: sync what is left and stop.
    closing: bool,
}

impl Appends {
    fn state(&self) -> MutexGuard<'_, AppendState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Journal {
    /// The journal beside a SQLite database file; `None` for in-memory databases and
    /// other URLs.
    pub fn path_for(database_url: &str) -> Option<PathBuf> {
        let path = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
        let path = path.split('?').next().unwrap_or(path);
        (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(format!("{path}.usage-journal")))
    }

    /// Opens (or creates) the journal and starts its syncer thread, which ends when the
    /// journal is dropped.
    pub fn open(path: PathBuf) -> std::io::Result<Journal> {
        let file = OpenOptions::new().create(true).append(true).read(true).open(&path)?;
        let for_syncer = path.clone();
        let appends = Arc::new(Appends::default());
        let (published, synced) = watch::channel(0);
        let shared = appends.clone();
        std::thread::Builder::new()
            .name("usage-journal-sync".to_owned())
            .spawn(move || sync_loop(&shared, &for_syncer, &published))?;
        Ok(Journal { file: Mutex::new(file), path, appends, synced })
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
    pub fn lock(&self) -> Locked<'_> {
        Locked {
            file: self.file.lock().unwrap_or_else(PoisonError::into_inner),
            appends: &self.appends,
            path: &self.path,
        }
    }

    /// One record as a journal line. Serialized before the lock is taken, so the lock
    /// covers only the write.
    pub fn line(record: &UsageRecord) -> Vec<u8> {
        let mut line = Vec::with_capacity(LINE_CAPACITY);
        write_record(&mut line, record);
        line.push(b'\n');
        line
    }

    /// How many fsyncs the syncer has done.
    pub fn sync_count(&self) -> u64 {
        self.appends.syncs.load(Ordering::Relaxed)
    }

    /// Waits until every append made before this call is on disk.
    pub async fn synced(&self) {
        let target = {
            let mut state = self.appends.state();
            state.wanted = state.wanted.max(state.count);
            state.count
        };
        self.appends.wake.notify_one();
        let mut synced = self.synced.clone();
        // An error means the syncer is gone (it only stops with the journal): nothing to wait for.
        let _ = synced.wait_for(|done| *done >= target).await;
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.appends.state().closing = true;
        self.appends.wake.notify_one();
    }
}

/// The journal, locked for appends.
pub struct Locked<'a> {
    file: MutexGuard<'a, File>,
    appends: &'a Appends,
    path: &'a PathBuf,
}

impl Locked<'_> {
    /// Writes a line (no fsync: the syncer makes it durable soon after).
    pub fn append(&mut self, line: &[u8]) {
        if let Err(e) = self.file.write_all(line) {
            tracing::warn!(error = %e, "could not append to the usage journal");
        }
        self.appends.state().count += 1;
    }

    /// Empties the journal (everything in it is committed).
    pub fn clear(&mut self) {
        self.replace(&[]);
    }

    /// Replaces the journal with these lines alone (the records still queued; everything
    /// else in it is committed). Written beside it and renamed over it, so that a process
    /// killed at any point leaves either the whole old journal or the whole new one —
    /// never an emptied journal whose queued records are lost.
    pub fn replace(&mut self, lines: &[Vec<u8>]) {
        let next = self.path.with_extension("usage-journal.next");
        let written = (|| -> std::io::Result<File> {
            let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(&next)?;
            // One write for all of them (a write a line cost a system call per queued record).
            file.write_all(&lines.concat())?;
            drop(file);
            std::fs::rename(&next, self.path)?;
            OpenOptions::new().append(true).read(true).open(self.path)
        })();
        match written {
            Ok(file) => {
                *self.file = file;
                let mut state = self.appends.state();
                state.count += u64::try_from(lines.len()).unwrap_or(0);
                self.appends.wake.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "could not rewrite the usage journal"),
        }
    }
}

/// The syncer: sleeps until there are unsynced appends, then covers all of them with one
/// `sync_data` and publishes how many are durable. Appends made during an fsync wait for
/// the next, which covers them all.
fn sync_loop(appends: &Appends, path: &std::path::Path, published: &watch::Sender<u64>) {
    let mut done = 0;
    loop {
        let target = {
            let mut state = appends.state();
            while (state.wanted <= done || state.count == done) && !state.closing {
                state = appends.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            if state.count == done {
                return;
            }
            state.count
        };
        // The journal as it is now (the writer may have replaced the file): an fsync
        // through any handle makes the file's data durable.
        if let Err(e) = File::open(path).and_then(|file| file.sync_data()) {
            tracing::warn!(error = %e, "could not sync the usage journal");
        }
        appends.syncs.fetch_add(1, Ordering::Relaxed);
        done = target;
        published.send_replace(done);
    }
}

#[cfg(test)]
mod tests;

/// A record as `serde_json::to_vec` writes it (the replay reads it back with serde), field
/// by field. Serde took ≈ 9,000 instructions a request (every key escaped, a map-entry
/// writer per field); this saves ≈ 6,000 of them (bench/README.md, tenth look). The
/// destructuring makes a field added to the record a compile error here; a test compares
/// the two writers' bytes.
fn write_record(out: &mut Vec<u8>, record: &UsageRecord) {
    let UsageRecord {
        request_id,
        key_id,
        account_id,
        model,
        provider,
        upstream_model,
        endpoint,
        stream,
        status,
        usage,
        cost,
        usage_source,
        client_disconnected,
        latency_ms,
        created_at,
        error_code,
        ttfb_ms,
        earning,
    } = record;
    out.extend_from_slice(b"{\"request_id\":");
    write_json_string(out, request_id);
    out.extend_from_slice(b",\"key_id\":");
    write_json_string(out, key_id);
    out.extend_from_slice(b",\"account_id\":");
    write_number(out, *account_id);
    out.extend_from_slice(b",\"model\":");
    write_json_string(out, model);
    out.extend_from_slice(b",\"provider\":");
    write_json_string(out, provider);
    out.extend_from_slice(b",\"upstream_model\":");
    write_json_string(out, upstream_model);
    out.extend_from_slice(b",\"endpoint\":");
    write_json_string(out, endpoint);
    out.extend_from_slice(if *stream { b",\"stream\":true" } else { b",\"stream\":false" });
    out.extend_from_slice(b",\"status\":");
    write_number(out, *status);
    out.extend_from_slice(b",\"usage\":");
    write_usage(out, usage);
    out.extend_from_slice(b",\"cost\":");
    write_number(out, cost.0);
    out.extend_from_slice(match usage_source {
        UsageSource::Upstream => b",\"usage_source\":\"Upstream\"".as_slice(),
        UsageSource::Counted => b",\"usage_source\":\"Counted\"",
        UsageSource::None => b",\"usage_source\":\"None\"",
    });
    out.extend_from_slice(if *client_disconnected {
        b",\"client_disconnected\":true".as_slice()
    } else {
        b",\"client_disconnected\":false"
    });
    out.extend_from_slice(b",\"latency_ms\":");
    write_number(out, *latency_ms);
    out.extend_from_slice(b",\"created_at\":");
    write_number(out, *created_at);
    out.extend_from_slice(b",\"error_code\":");
    match error_code {
        Some(code) => write_json_string(out, code),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"ttfb_ms\":");
    match ttfb_ms {
        Some(ms) => write_number(out, *ms),
        None => out.extend_from_slice(b"null"),
    }
    if let Some(Earning { account_id, share_ppb }) = earning {
        out.extend_from_slice(b",\"earning\":{\"account_id\":");
        write_number(out, *account_id);
        out.extend_from_slice(b",\"share_ppb\":");
        write_number(out, *share_ppb);
        out.push(b'}');
    }
    out.push(b'}');
}

fn write_usage(out: &mut Vec<u8>, usage: &Usage) {
    let Usage { prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, hosted } = usage;
    out.extend_from_slice(b"{\"prompt_tokens\":");
    write_number(out, *prompt_tokens);
    out.extend_from_slice(b",\"completion_tokens\":");
    write_number(out, *completion_tokens);
    out.extend_from_slice(b",\"cached_tokens\":");
    write_number(out, *cached_tokens);
    out.extend_from_slice(b",\"cache_write_tokens\":");
    write_number(out, *cache_write_tokens);
    out.extend_from_slice(b",\"reasoning_tokens\":");
    write_number(out, *reasoning_tokens);
    if !hosted.is_empty() {
        out.extend_from_slice(b",\"hosted\":{\"web_search\":");
        write_number(out, hosted.web_search);
        out.extend_from_slice(b",\"web_fetch\":");
        write_number(out, hosted.web_fetch);
        out.push(b'}');
    }
    out.push(b'}');
}

fn write_number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}
