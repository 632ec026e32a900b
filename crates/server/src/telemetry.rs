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
use std::sync::{Mutex, Once, OnceLock, PoisonError};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Installs the log subscriber (once per process; later calls change nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let installed = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(LogWriter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => tracing::subscriber::set_global_default(json_logs(filter, LogWriter)).map_err(Into::into),
    };
    if installed.is_ok() {
        let _ = REQUEST_LINES.set(format);
    }
}

/// The target of the one event each metered request logs.
pub const REQUEST_TARGET: &str = "tokenrouter::request";
/// How long request lines wait to be written together.
const BATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Request lines gathered for the next write.
static BATCH: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static FLUSHER: Once = Once::new();
/// Set by [`init`]: request lines are then formatted by [`request_line`] in this format.
static REQUEST_LINES: OnceLock<LogFormat> = OnceLock::new();

/// Starts the thread that writes the gathered request lines every [`BATCH_EVERY`].
fn start_flusher() {
    FLUSHER.call_once(|| {
        let _ = std::thread::Builder::new().name("log-writer".into()).spawn(|| {
            loop {
                std::thread::sleep(BATCH_EVERY);
                flush_logs();
            }
        });
    });
}

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
        start_flusher();
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

/// A value of a request line's field.
pub enum Field<'a> {
    Text(&'a str),
    Number(u64),
    Signed(i64),
    Flag(bool),
}

impl Field<'_> {
    /// Writes the value: numbers and flags as they are, a text as `text` writes it.
    fn write(self, line: &mut Vec<u8>, text: impl FnOnce(&mut Vec<u8>, &str)) {
        match self {
            Field::Text(value) => text(line, value),
            Field::Number(n) => line.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Field::Signed(n) => line.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Field::Flag(b) => line.extend_from_slice(if b { b"true" } else { b"false" }),
        }
    }
}

/// Logs a metered request's line (target [`REQUEST_TARGET`], level INFO, message
/// `request`), with these fields in this order, the same line the subscriber [`init`]
/// installed would write, into the gathered request lines. Formatted here rather than by
/// tracing's formatter, which cost about 5 % of the gateway's instructions per request at
/// saturation (`bench/prof/instr.sh`). `RUST_LOG` still decides whether it is written.
/// Without [`init`] (tests, examples) it is one tracing event whose message holds the
/// fields.
pub fn request_line<'a>(fields: impl IntoIterator<Item = (&'static str, Field<'a>)>) {
    if !tracing::enabled!(target: REQUEST_TARGET, tracing::Level::INFO) {
        return;
    }
    let Some(format) = REQUEST_LINES.get() else {
        let mut text = Vec::new();
        text_fields(&mut text, fields);
        tracing::info!(target: REQUEST_TARGET, "request{}", String::from_utf8_lossy(&text));
        return;
    };
    start_flusher();
    let now = time::OffsetDateTime::now_utc();
    formatted(&mut BATCH.lock().unwrap_or_else(PoisonError::into_inner), *format, now, fields);
}

/// Appends a request line to `line` as [`request_line`] writes it, at `now`.
pub fn formatted<'a>(
    line: &mut Vec<u8>,
    format: LogFormat,
    now: time::OffsetDateTime,
    fields: impl IntoIterator<Item = (&'static str, Field<'a>)>,
) {
    match format {
        LogFormat::Text => {
            timestamp(line, now);
            line.extend_from_slice(b"  INFO request");
            text_fields(line, fields);
        }
        LogFormat::Json => {
            line.extend_from_slice(b"{\"timestamp\":\"");
            timestamp(line, now);
            line.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
            for (name, value) in fields {
                line.extend_from_slice(b",\"");
                line.extend_from_slice(name.as_bytes());
                line.extend_from_slice(b"\":");
                value.write(line, json_string);
            }
            line.extend_from_slice(b",\"target\":\"");
            line.extend_from_slice(REQUEST_TARGET.as_bytes());
            line.extend_from_slice(b"\"}");
        }
    }
    line.push(b'\n');
}

/// ` name=value` per field, as tracing's text format writes them; a text that could be
/// mistaken for more fields or another line (blanks, quotes, `=`, control characters) is
/// quoted and escaped.
fn text_fields<'a>(line: &mut Vec<u8>, fields: impl IntoIterator<Item = (&'static str, Field<'a>)>) {
    for (name, value) in fields {
        line.push(b' ');
        line.extend_from_slice(name.as_bytes());
        line.push(b'=');
        value.write(line, |line, text| {
            if needs_quotes(text) {
                line.extend_from_slice(format!("{text:?}").as_bytes());
            } else {
                line.extend_from_slice(text.as_bytes());
            }
        });
    }
}

/// Whether a text must be quoted in a text line: empty, or with a blank, a quote, `=` or a
/// control character. Bytes first (the common text is plain ASCII); characters only when
/// there is more than ASCII.
fn needs_quotes(text: &str) -> bool {
    let special = |b: u8| b <= b' ' || b == b'"' || b == b'=' || b == 0x7f;
    text.is_empty()
        || text.bytes().any(special)
        || (!text.is_ascii() && text.chars().any(|c| c.is_whitespace() || c.is_control()))
}

fn json_string(line: &mut Vec<u8>, text: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *line, text);
}

/// `2026-12-07T05:02:25.836828Z`, as tracing's formatter writes its time.
fn timestamp(line: &mut Vec<u8>, t: time::OffsetDateTime) {
    let padded = |line: &mut Vec<u8>, n: u32, width: usize| {
        let mut digits = [b'0'; 10];
        let mut n = n;
        for at in (10 - width..10).rev() {
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        line.extend_from_slice(&digits[10 - width..]);
    };
    padded(line, u32::try_from(t.year()).unwrap_or(0), 4);
    line.push(b'-');
    padded(line, u32::from(u8::from(t.month())), 2);
    line.push(b'-');
    padded(line, u32::from(t.day()), 2);
    line.push(b'T');
    padded(line, u32::from(t.hour()), 2);
    line.push(b':');
    padded(line, u32::from(t.minute()), 2);
    line.push(b':');
    padded(line, u32::from(t.second()), 2);
    line.push(b'.');
    padded(line, t.microsecond(), 6);
    line.push(b'Z');
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

    /// The same request through tracing's formatter (as `log_request` used to log it) and
    /// through [`formatted`].
    fn both_ways(format: LogFormat, error: Option<&str>, model: &str) -> (String, String) {
        let captured = Captured::default();
        let emit = || {
            tracing::info!(
                target: "tokenrouter::request",
                request_id = %"req_1",
                route = %"chat.completions",
                status = 200u16,
                model = %model,
                provider = %"mock",
                latency_ms = 12u64,
                ttfb_ms = Some(3u64),
                prompt_tokens = 7u64,
                completion_tokens = 9u64,
                cost_usd = %"0.00000495",
                account_id = -3i64,
                stream = false,
                error = error,
                "request"
            );
        };
        match format {
            LogFormat::Text => {
                let logs = tracing_subscriber::fmt()
                    .with_writer(captured.clone())
                    .with_ansi(false)
                    .with_target(false)
                    .finish();
                tracing::subscriber::with_default(logs, emit);
            }
            LogFormat::Json => {
                tracing::subscriber::with_default(json_logs(EnvFilter::new("info"), captured.clone()), emit)
            }
        }
        let theirs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let fields = [
            ("request_id", Field::Text("req_1")),
            ("route", Field::Text("chat.completions")),
            ("status", Field::Number(200)),
            ("model", Field::Text(model)),
            ("provider", Field::Text("mock")),
            ("latency_ms", Field::Number(12)),
            ("ttfb_ms", Field::Number(3)),
            ("prompt_tokens", Field::Number(7)),
            ("completion_tokens", Field::Number(9)),
            ("cost_usd", Field::Text("0.00000495")),
            ("account_id", Field::Signed(-3)),
            ("stream", Field::Flag(false)),
        ];
        let now = time::OffsetDateTime::now_utc();
        let mut ours = Vec::new();
        formatted(&mut ours, format, now, fields.into_iter().chain(error.map(|e| ("error", Field::Text(e)))));
        (theirs, String::from_utf8(ours).unwrap())
    }

    #[test]
    fn a_request_line_is_the_line_tracing_wrote() {
        let stamp = "2026-12-07T05:02:25.836828Z".len();
        let (theirs, ours) = both_ways(LogFormat::Text, None, "gpt-4o");
        assert_eq!(theirs[stamp..], ours[stamp..]);
        assert!(ours[..stamp].ends_with('Z') && ours.as_bytes()[10] == b'T', "{ours}");
        let (theirs, ours) = both_ways(LogFormat::Text, Some("upstream_error"), "gpt-4o");
        assert_eq!(theirs[stamp..].replace("\"upstream_error\"", "upstream_error"), ours[stamp..]);
        for error in [None, Some("rate_limited")] {
            let (theirs, ours) = both_ways(LogFormat::Json, error, "gpt-4o \"mini\"\n");
            let (mut theirs, mut ours): (serde_json::Value, serde_json::Value) =
                (serde_json::from_str(&theirs).unwrap(), serde_json::from_str(&ours).unwrap());
            let when = ours["timestamp"].as_str().unwrap().to_owned();
            assert!(
                time::OffsetDateTime::parse(&when, &time::format_description::well_known::Rfc3339).is_ok(),
                "{when}"
            );
            theirs["timestamp"] = serde_json::Value::Null;
            ours["timestamp"] = serde_json::Value::Null;
            assert_eq!(theirs, ours);
        }
    }

    #[test]
    fn a_request_line_in_text_cannot_forge_another_line_or_field() {
        let (_, ours) = both_ways(LogFormat::Text, None, "x\n2026-12-07T00:00:00Z  INFO forged status=200");
        assert_eq!(ours.lines().count(), 1, "{ours}");
        assert!(ours.contains(r#"model="x\n2026-12-07T00:00:00Z  INFO forged status=200""#), "{ours}");
        let (_, ours) = both_ways(LogFormat::Text, None, "");
        assert!(ours.contains(r#" model="" "#), "{ours}");
        for (model, quoted) in
            [("gpt-4o", false), ("a b", true), ("a\u{2028}b", true), ("a\u{85}b", true), ("modèle", false)]
        {
            assert_eq!(needs_quotes(model), quoted, "{model:?}");
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
