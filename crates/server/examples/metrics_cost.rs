//! What metrics cost per request, in CPU time: the two counters on the request path (one
//! request by route and status, one upstream attempt), and the usage writer's work per
//! record (the GenAI histograms and the request's log line, rendered and thrown away).
//!
//! `cargo run --release -p tokenrouter --example metrics_cost`

use std::hint::black_box;
use std::time::Instant;

use tokenrouter::config::LogFormat;
use tokenrouter::metrics::{AttemptOutcome, Metrics};
use tokenrouter_store::{UsageRecord, UsageSource};

const N: u32 = 2_000_000;

/// A line of the report, on stdout (this example's whole output).
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn per_call(label: &str, n: u32, mut f: impl FnMut(u32)) {
    let started = Instant::now();
    for i in 0..n {
        f(i);
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(n);
    say(&format!("{label:<58} {ns:>8.1} ns"));
}

fn main() {
    let metrics = Metrics::default();
    let routes = ["/v1/chat/completions", "/v1/responses", "/v1/messages", "/api/jobs/{id}"];
    per_call("request path: tokenrouter_requests_total + 1 attempt", N, |i| {
        metrics.request(black_box(routes[(i % 4) as usize]), black_box(200));
        metrics.attempt(black_box("openai"), AttemptOutcome::Success);
    });
    let record = UsageRecord {
        request_id: "req_0192f0c4a1b27d3e8f90a1b2c3d4e5f6".into(),
        key_id: "k1".into(),
        account_id: 1,
        model: "gpt-4o-mini".into(),
        provider: "openai".into(),
        upstream_model: "gpt-4o-mini".into(),
        endpoint: "chat.completions".into(),
        stream: true,
        status: 200,
        usage: tokenrouter_core::Usage { prompt_tokens: 120, completion_tokens: 40, ..Default::default() },
        cost: tokenrouter_core::NanoUsd(1234),
        usage_source: UsageSource::Upstream,
        client_disconnected: false,
        latency_ms: 230,
        created_at: 0,
        error_code: None,
        ttfb_ms: Some(80),
        earning: None,
    };
    per_call("usage writer: GenAI histograms per record", N, |_| metrics.observe(black_box(&record)));
    for (format, name) in [(LogFormat::Text, "text"), (LogFormat::Json, "json")] {
        per_call(&format!("usage writer: the request's log line ({name})"), N / 4, |_| {
            black_box(tokenrouter::metering::log_line(black_box(&record), format));
        });
    }
    let started = Instant::now();
    let mut snapshot = tokenrouter::metrics::Snapshot::default();
    metrics.snapshot(&mut snapshot);
    let text = snapshot.encode();
    let micros = started.elapsed().as_secs_f64() * 1e6;
    say(&format!("{:<58} {micros:>8.1} µs ({} bytes)", "one scrape's render", text.len()));
}
