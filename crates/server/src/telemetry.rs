//! Logs and traces. Logs: lines on stderr, human-readable or one JSON object each
//! (`[telemetry] log_format`), filtered by `RUST_LOG` (default `info`). Traces: see
//! [`traces`]. Secrets never reach a log line or a span: keys, provider keys and bodies
//! are not recorded.

pub mod finish;
mod traces;

pub use traces::{
    Attempt, Outcome, Request, Traces, gathers_finish_reasons, record_finish_reasons, record_usage, traced,
};

use std::io::IsTerminal;
use std::sync::{Mutex, Once, PoisonError};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Installs the log subscriber (once per process; later calls change nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let _ = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(LogWriter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => tracing::subscriber::set_global_default(json_logs(filter, LogWriter)).map_err(Into::into),
    };
}

/// The target of the one event each metered request logs.
pub const REQUEST_TARGET: &str = "tokenrouter::request";
/// How long request lines wait to be written together.
const BATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Request lines gathered for the next write.
static BATCH: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static FLUSHER: Once = Once::new();

/// Where log lines go: stderr, at once — except the request lines (target
/// [`REQUEST_TARGET`]), which are gathered and written together every 50 ms, so that a
/// busy gateway does not make one system call per request. Warnings and errors are never
/// delayed.
#[derive(Clone, Copy)]
pub struct LogWriter;

pub enum LogSink {
    Now(std::io::Stderr),
    Batched,
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogSink;

    fn make_writer(&'a self) -> LogSink {
        LogSink::Now(std::io::stderr())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LogSink {
        if meta.target() != REQUEST_TARGET {
            return LogSink::Now(std::io::stderr());
        }
        FLUSHER.call_once(|| {
            let _ = std::thread::Builder::new().name("log-writer".into()).spawn(|| {
                loop {
                    std::thread::sleep(BATCH_EVERY);
                    flush_logs();
                }
            });
        });
        LogSink::Batched
    }
}

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            LogSink::Now(stderr) => stderr.write(buf),
            LogSink::Batched => {
                BATCH.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LogSink::Now(stderr) => stderr.flush(),
            LogSink::Batched => Ok(()),
        }
    }
}

/// Writes the request lines gathered so far (also called before the process exits).
pub fn flush_logs() {
    use std::io::Write as _;
    let lines = std::mem::take(&mut *BATCH.lock().unwrap_or_else(PoisonError::into_inner));
    if !lines.is_empty() {
        let _ = std::io::stderr().lock().write_all(&lines);
    }
}

/// One flat JSON object a line: `timestamp`, `level`, `target`, `message` and the event's
/// fields side by side (no span lists: a request's fields are on its own event).
fn json_logs<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .finish()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn a_request_event_is_one_flat_json_line() {
        let captured = Captured::default();
        let logs = json_logs(EnvFilter::new("info"), captured.clone());
        tracing::subscriber::with_default(logs, || {
            let span = tracing::info_span!("outer", secret_in_span = "not-shown");
            let _entered = span.enter();
            tracing::info!(
                target: "tokenrouter::request",
                request_id = "req_1",
                route = "/v1/chat/completions",
                status = 200u16,
                model = "gpt-4o-mini",
                provider = "mock",
                latency_ms = 12u64,
                prompt_tokens = 7u64,
                completion_tokens = 9u64,
                account_id = 3i64,
                "request"
            );
            tracing::debug!("filtered out");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(event["target"], "tokenrouter::request");
        assert_eq!(event["level"], "INFO");
        assert_eq!(event["message"], "request");
        assert!(event["timestamp"].as_str().is_some_and(|t| t.contains('T')), "{event}");
        assert_eq!(event["request_id"], "req_1");
        assert_eq!(event["status"], 200);
        assert_eq!(event["latency_ms"], 12);
        assert_eq!(event["completion_tokens"], 9);
        assert_eq!(event["account_id"], 3);
        assert!(event.get("fields").is_none() && event.get("span").is_none(), "flat, no span: {event}");
        assert!(!text.contains("not-shown"));
    }
}
