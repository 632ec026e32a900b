//! Metering: what one request cost, and the batching writer that records it. The hot path
//! only hands a record to a channel; a background task writes batches to the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokenrouter_core::{HostedCalls, Price, Usage, clock};
use tokenrouter_store::{Batch, Db, KeyRow, Progress, UsageRecord, UsageSource};
use tokio::sync::{mpsc, oneshot};

use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::settlement::Reservation;

const BATCH: usize = 256;
/// Records waiting to be written; when full, requests wait (backpressure), so memory
/// stays bounded however far the store falls behind.
const QUEUE: usize = 8_192;
/// How long the writer gathers records into one transaction before writing.
const GATHER: Duration = Duration::from_millis(50);

#[allow(
    clippy::large_enum_variant,
    reason = "records are nearly every message; boxing them would allocate per request"
)]
enum Message {
    Record(UsageRecord),
    /// A hold to end with no charge (its request recorded no usage).
    Release(String),
    Progress(Progress),
    Flush(oneshot::Sender<()>),
}

/// Hands usage records to the background writer.
#[derive(Clone)]
pub struct UsageWriter {
    tx: mpsc::Sender<Message>,
    /// Where records go first, so that a killed process loses none.
    journal: Option<Arc<Journal>>,
    /// Records waiting in tasks of their own for room in the queue.
    detached: Arc<AtomicUsize>,
}

impl UsageWriter {
    /// Starts the writer; each record it writes is also counted in `metrics` and logged.
    pub fn start(db: Db, journal: Option<Arc<Journal>>, metrics: Arc<Metrics>) -> UsageWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        let detached = Arc::new(AtomicUsize::new(0));
        tokio::spawn(write_batches(db, rx, journal.clone(), detached.clone(), metrics));
        UsageWriter { tx, journal, detached }
    }

    /// Waits for room in the queue; what is then sent through the slot cannot be lost to
    /// the caller's cancellation (settle and send happen together, synchronously).
    pub async fn slot(&self) -> Option<Slot<'_>> {
        match self.tx.reserve().await {
            Ok(permit) => Some(Slot(permit, self.journal.as_deref())),
            Err(_) => {
                tracing::error!("usage writer stopped; a usage record will be lost");
                None
            }
        }
    }

    /// Queues a record from code that cannot wait (a stream's end or `Drop`): if the queue
    /// is full, the record waits in a task of its own. Such tasks are bounded by the
    /// number of streams in flight.
    pub fn record_now(&self, record: UsageRecord) {
        let _journaled = self.journal.as_deref().map(|j| {
            let line = Journal::line(&record);
            let mut file = j.lock();
            file.append(&line);
            file
        });
        self.send_now(Message::Record(record));
    }

    /// Queues the release of a hold whose request recorded no usage (from `Drop`: never
    /// waits; if the queue is full, the release waits in a task of its own).
    pub fn release(&self, request_id: String) {
        self.send_now(Message::Release(request_id));
    }

    /// Queues a checkpoint of what a stream in flight has delivered (dropped when the
    /// queue is full: the next one will do).
    pub fn progress(&self, progress: Progress) {
        let _ = self.tx.try_send(Message::Progress(progress));
    }

    fn send_now(&self, message: Message) {
        match self.tx.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(message)) => {
                let tx = self.tx.clone();
                let detached = self.detached.clone();
                detached.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = tx.send(message).await;
                    detached.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("usage writer stopped; a usage record or release was lost");
            }
        }
    }

    /// Waits until every record queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_batches(
    db: Db,
    mut rx: mpsc::Receiver<Message>,
    journal: Option<Arc<Journal>>,
    detached: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
) {
    let mut messages = Vec::with_capacity(BATCH);
    let mut records = Vec::with_capacity(BATCH);
    let mut releases: Vec<String> = Vec::new();
    let mut progress: Vec<Progress> = Vec::new();
    let mut waiters = Vec::new();
    loop {
        if messages.is_empty() && rx.recv_many(&mut messages, BATCH).await == 0 {
            break;
        }
        // Gather for a moment: one transaction for many requests costs far less CPU than
        // one each. A flush request or a full batch ends the wait at once.
        let deadline = tokio::time::Instant::now() + GATHER;
        loop {
            for message in messages.drain(..) {
                match message {
                    Message::Record(r) => {
                        metrics.observe(&r);
                        log_request(&r);
                        records.push(r);
                    }
                    Message::Release(id) => releases.push(id),
                    Message::Progress(p) => progress.push(p),
                    Message::Flush(done) => waiters.push(done),
                }
            }
            let gathered = records.len() + releases.len() + progress.len();
            if !waiters.is_empty() || gathered >= BATCH {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut messages, BATCH - gathered)).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        if !records.is_empty() || !releases.is_empty() || !progress.is_empty() {
            // A checkpoint of a request that settled in this batch is moot.
            progress.retain(|p| !records.iter().any(|r| r.request_id == p.request_id));
            // Every record of the batch was journaled before it was queued: once the
            // journal is on disk up to now, a power loss after the store's commit cannot
            // leave the store ahead of the journal's replay.
            if let Some(journal) = &journal {
                journal.synced().await;
            }
            write(&db, Batch { usage: &records, releases: &releases, progress: &progress }).await;
            records.clear();
            releases.clear();
            progress.clear();
            // The journal now needs only what is still queued (appends and queueing
            // happen under its lock): take those out for the next batch and rewrite it
            // with them alone, so it never holds more than the queue.
            if let Some(journal) = &journal {
                let mut file = journal.lock();
                while let Ok(message) = rx.try_recv() {
                    messages.push(message);
                }
                if detached.load(Ordering::SeqCst) == 0 {
                    let queued: Vec<Vec<u8>> = messages
                        .iter()
                        .filter_map(
                            |m| if let Message::Record(record) = m { Some(Journal::line(record)) } else { None },
                        )
                        .collect();
                    file.replace(&queued);
                }
            }
        }
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
    }
}

/// One line per request (target `tokenrouter::request`): who, what, how it went. Never
/// a key, a prompt or an answer.
pub fn log_request(record: &UsageRecord) {
    let cost = record.cost.to_usd_string();
    crate::telemetry::request_line(line_fields(record, &cost));
}

/// A request's log line as [`log_request`] writes it with `format` (for measuring it).
pub fn log_line(record: &UsageRecord, format: crate::config::LogFormat) -> Vec<u8> {
    let (cost, mut line) = (record.cost.to_usd_string(), Vec::with_capacity(320));
    crate::telemetry::formatted(&mut line, format, time::OffsetDateTime::now_utc(), line_fields(record, &cost));
    line
}

/// The fields of a request's log line, in order; `cost` is its cost as written.
fn line_fields<'a>(
    record: &'a UsageRecord,
    cost: &'a str,
) -> impl Iterator<Item = (&'static str, crate::telemetry::Field<'a>)> {
    use crate::telemetry::Field::{Flag, Number, Signed, Text};
    let (ttfb, error) = (record.ttfb_ms.map(Number), record.error_code.as_deref().map(Text));
    [
        ("request_id", Text(&record.request_id)),
        ("route", Text(&record.endpoint)),
        ("status", Number(u64::from(record.status))),
        ("model", Text(&record.model)),
        ("provider", Text(&record.provider)),
        ("latency_ms", Number(record.latency_ms)),
    ]
    .into_iter()
    .chain(ttfb.map(|t| ("ttfb_ms", t)))
    .chain([
        ("prompt_tokens", Number(record.usage.prompt_tokens)),
        ("completion_tokens", Number(record.usage.completion_tokens)),
        ("cost_usd", Text(cost)),
        ("account_id", Signed(record.account_id)),
        ("stream", Flag(record.stream)),
    ])
    .chain(error.map(|e| ("error", e)))
}

/// Writes a batch; if the batch fails as a whole, each part is tried alone so that one
/// bad record cannot lose the others. A transient failure is retried a few times.
async fn write(db: &Db, batch: Batch<'_>) {
    let parts = batch.usage.len() + batch.releases.len() + batch.progress.len();
    for attempt in 0..5u32 {
        match db.write_batch(batch).await {
            Ok(()) => return,
            Err(e) if parts > 1 => {
                tracing::warn!(error = %e, rows = batch.usage.len(), "usage batch failed; writing rows one by one");
                for record in batch.usage {
                    Box::pin(write(db, Batch { usage: std::slice::from_ref(record), ..Batch::default() })).await;
                }
                for release in batch.releases {
                    Box::pin(write(db, Batch { releases: std::slice::from_ref(release), ..Batch::default() })).await;
                }
                // Checkpoints are not retried: the next one will do.
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "usage row not written yet");
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
    }
    tracing::error!(rows = batch.usage.len(), releases = batch.releases.len(), "usage row could not be written");
}

/// Room for one record in the writer's queue.
pub struct Slot<'a>(mpsc::Permit<'a, Message>, Option<&'a Journal>);

impl Slot<'_> {
    pub fn record(self, record: UsageRecord) {
        let journal = self.1.map(|j| {
            let line = Journal::line(&record);
            let mut file = j.lock();
            file.append(&line);
            file
        });
        self.0.send(Message::Record(record));
        drop(journal);
    }
}

/// A request that holds funds but has no usage record yet. Dropped so — the client went
/// away before any answer — it records one (status 499, the prompt estimate counted, as
/// the upstream was cancelled after reading it) and settles its hold to that.
pub struct Unanswered {
    pub meter: MeterContext,
    reservation: Option<Reservation>,
    writer: UsageWriter,
    request_body: Bytes,
}

impl Unanswered {
    pub fn new(meter: MeterContext, reservation: Reservation, writer: UsageWriter, request_body: Bytes) -> Unanswered {
        Unanswered { meter, reservation: Some(reservation), writer, request_body }
    }

    /// The reservation, now in the caller's hands to settle; nothing is recorded on drop.
    pub fn answered(mut self) -> Option<Reservation> {
        self.reservation.take()
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        let Some(reservation) = self.reservation.take() else { return };
        let usage = Usage {
            prompt_tokens: tokenrouter_providers::openai::estimate_prompt_tokens(&self.request_body),
            ..Usage::default()
        };
        let record = self.meter.usage_record(499, Measured::Counted(usage), true);
        reservation.settle(record.cost);
        self.writer.record_now(record);
    }
}

/// Everything needed to record one request's usage once it ends.
#[derive(Debug, Clone)]
pub struct MeterContext {
    pub request_id: String,
    pub key: Arc<KeyRow>,
    pub model: String,
    pub provider: String,
    pub upstream_model: String,
    pub endpoint: &'static str,
    pub stream: bool,
    pub price: Price,
    /// The model's context window: no count in a usage record may exceed it.
    pub token_cap: u64,
    /// The most hosted tool calls charged: what the request offered where this deployment
    /// runs it (none when it sent no such tool). `None`: not capped (Gemini grounds where
    /// its upstream is set up to, with no tool in the request).
    pub hosted_cap: Option<HostedCalls>,
    pub started: Instant,
    /// Milliseconds until the answer's first byte was ready for the client.
    pub ttfb_ms: Option<u64>,
    /// Served by a community instance: its owner's earning, and how far its usage
    /// report is believed.
    pub instance: Option<crate::instances::routing::InstanceMeter>,
}

/// How the usage of a request was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// Reported by the upstream.
    Reported(Usage),
    /// Counted by the gateway from what was sent and delivered.
    Counted(Usage),
    /// Nothing was generated (the upstream refused or failed).
    Nothing,
}

impl MeterContext {
    /// What to charge for `measured`: for an instance, its report capped at the
    /// gateway's own count (`own_completion` generated tokens), flagging an
    /// over-report when `settling` (the final record, not a checkpoint).
    pub fn believed(&self, measured: Measured, own_completion: u64, settling: bool) -> Measured {
        let Some(instance) = &self.instance else { return measured };
        let (believed, over) = instance.honest(measured, own_completion);
        if over && settling {
            instance.flag(crate::pipeline::usage_of(measured), crate::pipeline::usage_of(believed));
        }
        believed
    }

    /// How far this request's instance is believed (`None`: not served by one).
    pub fn belief(&self) -> Option<crate::instances::usage::Belief> {
        let instance = self.instance.as_ref()?;
        Some(crate::instances::usage::Belief {
            prompt_ceiling: instance.prompt_ceiling,
            completion_ceiling: instance.completion_ceiling,
            token_cap: self.token_cap,
        })
    }

    /// The usage row of this request.
    pub fn usage_record(&self, status: u16, measured: Measured, client_disconnected: bool) -> UsageRecord {
        let (usage, source) = match measured {
            Measured::Reported(u) => (u, UsageSource::Upstream),
            Measured::Counted(u) => (u, UsageSource::Counted),
            Measured::Nothing => (Usage::default(), UsageSource::None),
        };
        // An upstream's numbers are not trusted beyond what the model can do.
        let usage = crate::instances::usage::bounded(usage, self.token_cap);
        let mut charged = usage;
        if let Some(cap) = self.hosted_cap {
            charged.hosted.web_search = charged.hosted.web_search.min(cap.web_search);
            charged.hosted.web_fetch = charged.hosted.web_fetch.min(cap.web_fetch);
        }
        let mut cost = self.price.cost(&charged);
        // An instance is never paid more than was held for its request, whatever slipped
        // past the caps on its report.
        if let Some(instance) = &self.instance {
            cost = cost.min(instance.charge_ceiling);
        }
        UsageRecord {
            request_id: self.request_id.clone(),
            key_id: self.key.id.clone(),
            account_id: self.key.account_id,
            model: self.model.clone(),
            provider: self.provider.clone(),
            upstream_model: self.upstream_model.clone(),
            endpoint: self.endpoint.to_owned(),
            stream: self.stream,
            status,
            cost,
            usage,
            usage_source: source,
            client_disconnected,
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            created_at: clock::now_unix(),
            error_code: None,
            ttfb_ms: self.ttfb_ms,
            earning: self.instance.as_ref().map(|i| i.earning),
        }
    }
}
