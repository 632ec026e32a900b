//! What `/metrics` counts: requests by route and status and upstream attempts by provider
//! and outcome (counted on the request path with one atomic add each, no lock), and the
//! OpenTelemetry GenAI histograms (token usage, request duration, time to first token),
//! observed from each request's usage record by the usage writer's task, off the request
//! path. Labels come from bounded sets only: route templates, configured providers and
//! models, status codes, outcome names; never a key, an account or a client's text.
//! A scrape takes a [`Snapshot`] of it all, which `prometheus-client` encodes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
pub use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokenrouter_store::UsageRecord;

/// HTTP statuses are counted in one slot each from 100 to 599.
const STATUSES: usize = 500;
const FIRST_STATUS: u16 = 100;

/// OpenTelemetry GenAI semantic conventions' advised bucket boundaries.
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];
const DURATION_BUCKETS: &[f64] =
    &[0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
const TTFT_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// How one upstream attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// An answer came (a stream's head, or a whole body).
    Success,
    /// The upstream refused the request itself (a 4xx that another deployment would give too).
    Refused,
    Connect,
    Timeout,
    ServerError,
    RateLimited,
}

impl AttemptOutcome {
    const ALL: [AttemptOutcome; 6] = [
        AttemptOutcome::Success,
        AttemptOutcome::Refused,
        AttemptOutcome::Connect,
        AttemptOutcome::Timeout,
        AttemptOutcome::ServerError,
        AttemptOutcome::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::Refused => "refused",
            AttemptOutcome::Connect => "connect_error",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::ServerError => "server_error",
            AttemptOutcome::RateLimited => "rate_limited",
        }
    }

    /// How an attempt that gave `result` ended.
    pub fn of_result(result: &Result<crate::dispatch::Answer, crate::dispatch::Failed>) -> AttemptOutcome {
        match result {
            Ok(crate::dispatch::Answer::Refused { .. }) => AttemptOutcome::Refused,
            Ok(_) => AttemptOutcome::Success,
            Err(failed) => AttemptOutcome::of(failed.failure),
        }
    }

    fn of(failure: crate::routing::Failure) -> AttemptOutcome {
        use crate::routing::Failure;
        match failure {
            Failure::Connect => AttemptOutcome::Connect,
            Failure::Timeout => AttemptOutcome::Timeout,
            Failure::ServerError => AttemptOutcome::ServerError,
            Failure::RateLimited { .. } => AttemptOutcome::RateLimited,
        }
    }
}

/// A map that is read without locks and written (once per new label value) under a mutex.
struct Family<T> {
    map: ArcSwap<HashMap<Box<str>, Arc<T>>>,
    writer: Mutex<()>,
}

impl<T: Default> Family<T> {
    fn new() -> Family<T> {
        Family { map: ArcSwap::from_pointee(HashMap::new()), writer: Mutex::new(()) }
    }

    fn get(&self, label: &str) -> Arc<T> {
        if let Some(found) = self.map.load().get(label) {
            return found.clone();
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(found) = current.get(label) {
            return found.clone();
        }
        let mut next = HashMap::clone(&current);
        let entry = Arc::new(T::default());
        next.insert(label.into(), entry.clone());
        self.map.store(Arc::new(next));
        entry
    }

    /// Every entry, sorted by label (so that the text is stable between scrapes).
    fn sorted(&self) -> Vec<(Box<str>, Arc<T>)> {
        let mut all: Vec<_> = self.map.load().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

struct StatusCounts([AtomicU64; STATUSES]);

impl Default for StatusCounts {
    fn default() -> Self {
        StatusCounts(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

#[derive(Default)]
struct OutcomeCounts([AtomicU64; AttemptOutcome::ALL.len()]);

#[derive(Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// One count per bound (not cumulative), then the count above the last bound.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0 }
    }

    fn observe(&mut self, value: f64) {
        let slot = self.bounds.iter().position(|&b| value <= b).unwrap_or(self.bounds.len());
        self.counts[slot] += 1;
        self.sum += value;
    }

    fn sample(&self) -> Sample {
        let buckets = self.bounds.iter().copied().chain([f64::INFINITY]).zip(self.counts.iter().copied()).collect();
        Sample::Histogram { sum: self.sum, count: self.counts.iter().sum(), buckets }
    }
}

/// The GenAI series of one (operation, model, provider).
#[derive(Clone)]
struct GenAi {
    input_tokens: Histogram,
    output_tokens: Histogram,
    duration: HashMap<&'static str, Histogram>,
    ttft: Histogram,
}

impl GenAi {
    fn new() -> GenAi {
        GenAi {
            input_tokens: Histogram::new(TOKEN_BUCKETS),
            output_tokens: Histogram::new(TOKEN_BUCKETS),
            duration: HashMap::new(),
            ttft: Histogram::new(TTFT_BUCKETS),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GenAiLabels {
    operation: &'static str,
    model: String,
    provider: String,
}

/// Every counter and histogram of one process.
pub struct Metrics {
    requests: Family<StatusCounts>,
    attempts: Family<OutcomeCounts>,
    genai: Mutex<HashMap<GenAiLabels, GenAi>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { requests: Family::new(), attempts: Family::new(), genai: Mutex::new(HashMap::new()) }
    }
}

/// A community instance's provider name (`instance:<id>`) is one label value for all of
/// them: instances come and go, a label per instance would grow without bound.
pub fn provider_label(provider: &str) -> &str {
    if provider.starts_with("instance:") { "instance" } else { provider }
}

/// The GenAI `gen_ai.operation.name` of an inference endpoint.
fn operation(endpoint: &str) -> &'static str {
    match endpoint {
        "completions" => "text_completion",
        "embeddings" | "gemini.embeddings" => "embeddings",
        _ => "chat",
    }
}

impl Metrics {
    /// One answered HTTP request. `route` is the matched route's template
    /// (`/api/jobs/{id}`), or `unmatched`.
    pub fn request(&self, route: &str, status: u16) {
        let index = usize::from(status.clamp(FIRST_STATUS, FIRST_STATUS + STATUSES as u16 - 1) - FIRST_STATUS);
        self.requests.get(route).0[index].fetch_add(1, Ordering::Relaxed);
    }

    /// One upstream attempt.
    pub fn attempt(&self, provider: &str, outcome: AttemptOutcome) {
        let index = AttemptOutcome::ALL.iter().position(|&o| o == outcome).unwrap_or(0);
        self.attempts.get(provider_label(provider)).0[index].fetch_add(1, Ordering::Relaxed);
    }

    /// A request's usage record, once it is final. Requests refused before any upstream
    /// was tried (no provider) are not GenAI operations: `tokenrouter_requests_total`
    /// counts them.
    pub fn observe(&self, record: &UsageRecord) {
        if record.provider.is_empty() {
            return;
        }
        let labels = GenAiLabels {
            operation: operation(&record.endpoint),
            model: record.model.clone(),
            provider: provider_label(&record.provider).to_owned(),
        };
        let mut genai = self.genai.lock().unwrap_or_else(PoisonError::into_inner);
        let series = genai.entry(labels).or_insert_with(GenAi::new);
        let answered = record.error_code.is_none();
        if answered || record.usage.prompt_tokens > 0 || record.usage.completion_tokens > 0 {
            series.input_tokens.observe(record.usage.prompt_tokens as f64);
            series.output_tokens.observe(record.usage.completion_tokens as f64);
        }
        let error = match &record.error_code {
            None => "",
            Some(code) => error_type(code),
        };
        series
            .duration
            .entry(error)
            .or_insert_with(|| Histogram::new(DURATION_BUCKETS))
            .observe(record.latency_ms as f64 / 1000.0);
        if record.stream
            && let Some(ttfb) = record.ttfb_ms
        {
            series.ttft.observe(ttfb as f64 / 1000.0);
        }
    }

    /// The counters and histograms as they are now.
    pub fn snapshot(&self, out: &mut Snapshot) {
        let mut requests = Vec::new();
        for (route, counts) in self.requests.sorted() {
            for (i, count) in counts.0.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let status = usize::from(FIRST_STATUS) + i;
                    requests
                        .push((labels(&[("route", &route), ("status", &status.to_string())]), Sample::Counter(count)));
                }
            }
        }
        out.add("tokenrouter_requests", "HTTP requests answered, by route and status.", MetricType::Counter, requests);
        let mut attempts = Vec::new();
        for (provider, counts) in self.attempts.sorted() {
            for (outcome, count) in AttemptOutcome::ALL.iter().zip(counts.0.iter()) {
                let labels = labels(&[("provider", &provider), ("outcome", outcome.as_str())]);
                attempts.push((labels, Sample::Counter(count.load(Ordering::Relaxed))));
            }
        }
        out.add(
            "tokenrouter_upstream_attempts",
            "Attempts to reach an upstream, by provider and outcome.",
            MetricType::Counter,
            attempts,
        );
        let mut genai: Vec<(GenAiLabels, GenAi)> = {
            let map = self.genai.lock().unwrap_or_else(PoisonError::into_inner);
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        genai.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tokens = Vec::new();
        let mut durations = Vec::new();
        let mut ttfts = Vec::new();
        for (series_labels, series) in &genai {
            for (kind, histogram) in [("input", &series.input_tokens), ("output", &series.output_tokens)] {
                let mut labels = series_labels.pairs();
                labels.push(("gen_ai_token_type".into(), kind.into()));
                tokens.push((labels, histogram.sample()));
            }
            let mut by_error: Vec<_> = series.duration.iter().collect();
            by_error.sort_by_key(|(error, _)| *error);
            for (error, histogram) in by_error {
                let mut labels = series_labels.pairs();
                if !error.is_empty() {
                    labels.push(("error_type".into(), (*error).into()));
                }
                durations.push((labels, histogram.sample()));
            }
            if series.ttft.counts.iter().any(|&c| c > 0) {
                ttfts.push((series_labels.pairs(), series.ttft.sample()));
            }
        }
        out.add(
            "gen_ai_client_token_usage",
            "Tokens per request, by type (input: the prompt, output: the completion).",
            MetricType::Histogram,
            tokens,
        );
        out.add(
            "gen_ai_server_request_duration_seconds",
            "Time from receiving a request to its last byte, in seconds.",
            MetricType::Histogram,
            durations,
        );
        out.add(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from receiving a streamed request until the upstream's answer began, in seconds.",
            MetricType::Histogram,
            ttfts,
        );
    }
}

/// One value of a metric family.
#[derive(Debug, Clone)]
pub enum Sample {
    Counter(u64),
    Gauge(u64),
    /// `buckets`: each bucket's own count (not cumulative), the last one's bound `+Inf`.
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

pub type Labels = Vec<(String, String)>;

#[derive(Debug, Clone)]
struct Encoded {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    series: Vec<(Labels, Sample)>,
}

/// Every family of one scrape, in order.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(Vec<Encoded>);

impl Snapshot {
    /// A family; a counter's `name` is without `_total` (the encoder adds it).
    pub fn add(&mut self, name: &'static str, help: &'static str, kind: MetricType, series: Vec<(Labels, Sample)>) {
        self.0.push(Encoded { name, help, kind, series });
    }

    /// An unlabelled gauge.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, value: u64) {
        self.add(name, help, MetricType::Gauge, vec![(Vec::new(), Sample::Gauge(value))]);
    }

    pub fn extend(&mut self, other: Snapshot) {
        self.0.extend(other.0);
    }

    /// The Prometheus text format (0.0.4).
    pub fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
        text
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let mut metric = encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (labels, sample) in &family.series {
                let mut series = metric.encode_family(labels)?;
                match sample {
                    Sample::Counter(v) => series.encode_counter::<NoLabelSet, _, u64>(v, None)?,
                    Sample::Gauge(v) => series.encode_gauge(v)?,
                    Sample::Histogram { sum, count, buckets } => {
                        series.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Label pairs from `(name, value)`s.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

impl GenAiLabels {
    fn pairs(&self) -> Labels {
        labels(&[
            ("gen_ai_operation_name", self.operation),
            ("gen_ai_request_model", &self.model),
            ("gen_ai_provider_name", &self.provider),
        ])
    }
}

/// The error codes a failed request's record may carry are the gateway's own (a bounded
/// set); anything else is `_OTHER`, as the semantic conventions spell it.
fn error_type(code: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "invalid_request",
        "context_length_exceeded",
        "upstream_unavailable",
        "upstream_timeout",
        "insufficient_quota",
        "rate_limited",
        "request_too_large",
        "internal_error",
        "store_unavailable",
    ];
    KNOWN.iter().find(|k| **k == code).copied().unwrap_or("_OTHER")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str, provider: &str, prompt: u64, completion: u64, latency_ms: u64) -> UsageRecord {
        UsageRecord {
            request_id: "req_1".into(),
            key_id: "key_secret".into(),
            account_id: 7,
            model: model.into(),
            provider: provider.into(),
            upstream_model: model.into(),
            endpoint: "chat.completions".into(),
            stream: true,
            status: 200,
            usage: tokenrouter_core::Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                ..Default::default()
            },
            cost: tokenrouter_core::NanoUsd::ZERO,
            usage_source: tokenrouter_store::UsageSource::Upstream,
            client_disconnected: false,
            latency_ms,
            created_at: 0,
            error_code: None,
            ttfb_ms: Some(30),
            earning: None,
        }
    }

    #[test]
    fn counts_render_with_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.request("/v1/chat/completions", 200);
        metrics.request("/v1/chat/completions", 200);
        metrics.request("/v1/chat/completions", 429);
        metrics.request("unmatched", 999);
        metrics.attempt("openai", AttemptOutcome::Success);
        metrics.attempt("instance:inst_1", AttemptOutcome::Timeout);
        metrics.observe(&record("gpt", "openai", 10, 3, 50));
        metrics.observe(&record("gpt", "openai", 100, 20, 700));
        metrics.observe(&record("gpt", "", 100, 20, 700));
        let mut snapshot = Snapshot::default();
        metrics.snapshot(&mut snapshot);
        let text = snapshot.encode();
        for line in [
            "tokenrouter_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2",
            "tokenrouter_requests_total{route=\"/v1/chat/completions\",status=\"429\"} 1",
            "tokenrouter_requests_total{route=\"unmatched\",status=\"599\"} 1",
            "tokenrouter_upstream_attempts_total{provider=\"openai\",outcome=\"success\"} 1",
            "tokenrouter_upstream_attempts_total{provider=\"instance\",outcome=\"timeout\"} 1",
            "gen_ai_client_token_usage_bucket{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"gpt\",gen_ai_provider_name=\"openai\",gen_ai_token_type=\"input\",le=\"16\"} 1",
            "gen_ai_client_token_usage_bucket{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"gpt\",gen_ai_provider_name=\"openai\",gen_ai_token_type=\"input\",le=\"256\"} 2",
            "gen_ai_client_token_usage_sum{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"gpt\",gen_ai_provider_name=\"openai\",gen_ai_token_type=\"output\"} 23.0",
            "gen_ai_server_request_duration_seconds_bucket{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"gpt\",gen_ai_provider_name=\"openai\",le=\"0.08\"} 1",
            "gen_ai_server_request_duration_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"gpt\",gen_ai_provider_name=\"openai\"} 2",
            "gen_ai_server_time_to_first_token_seconds_bucket{gen_ai_operation_name=\"chat\",gen_ai_request_model=\"gpt\",gen_ai_provider_name=\"openai\",le=\"0.04\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("key_secret") && !text.contains("instance:inst_1"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut snapshot = Snapshot::default();
        let series = vec![(labels(&[("route", "a\"b\\c\nd")]), Sample::Counter(1))];
        snapshot.add("x", "help", MetricType::Counter, series);
        assert!(snapshot.encode().contains(r#"x_total{route="a\"b\\c\nd"} 1"#));
    }
}
