//! Traces over OTLP/HTTP (JSON) when `[telemetry] otlp_endpoint` is set: a server span per
//! inference request named and described by the GenAI semantic conventions, a client span
//! per upstream attempt, and W3C `traceparent`/`tracestate` taken from clients (only
//! `traceparent` is passed on to providers). No prompt, answer or key is ever an attribute.
//!
//! Off (no endpoint), nothing here runs on the request path: `AppState::traces` is `None`
//! and checked once per request, and the code without the state at hand (the attempt,
//! a stream's settlement) first reads one process-wide flag that only a tracing gateway
//! sets. No span is allocated and no attribute formatted.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider};
use tokenrouter_store::UsageRecord;

use crate::config::{Deployment, TelemetryConfig};

/// How long one export may take before its batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often finished spans are sent.
const EXPORT_EVERY: Duration = Duration::from_secs(1);

/// Set when a gateway in this process traces: code without the state at hand looks for a
/// span only then.
static TRACING: AtomicBool = AtomicBool::new(false);

fn tracing_on() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// The span exporter and the tracer; `None` in the state when traces are off.
#[derive(Clone)]
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

/// What a request's context carries for its attempts: the tracer and the operation.
#[derive(Clone)]
struct Carried {
    tracer: SdkTracer,
    operation: &'static str,
}

impl Traces {
    /// Starts exporting to `{otlp_endpoint}/v1/traces` in batches, from a thread of its
    /// own; `None` when no endpoint is configured (or the exporter cannot be built, which
    /// is logged: the gateway serves without traces).
    pub fn start(config: &TelemetryConfig) -> Option<Traces> {
        let endpoint = config.otlp_endpoint.as_deref()?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .with_timeout(EXPORT_TIMEOUT)
            .build();
        let exporter = match exporter {
            Ok(exporter) => exporter,
            Err(e) => {
                tracing::warn!(error = %e, "traces are off: the OTLP exporter could not be built");
                return None;
            }
        };
        let batch = BatchConfigBuilder::default().with_scheduled_delay(EXPORT_EVERY).build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        // A client's sampled `traceparent` is always followed; otherwise the ratio decides.
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.trace_sample_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler)
            .with_resource(Resource::builder().with_service_name("tokenrouter").build())
            .build();
        let tracer = provider.tracer("tokenrouter");
        TRACING.store(true, Ordering::Relaxed);
        tracing::info!(ratio = config.trace_sample_ratio, "traces exported over OTLP/HTTP");
        Some(Traces { provider, tracer })
    }

    /// The server span of an inference request: a child of the client's `traceparent`
    /// when it sent one, else the root of a new trace.
    pub fn request(&self, headers: &HeaderMap, endpoint: &'static str, request_id: &str) -> Request {
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let operation = operation(endpoint);
        let span = self
            .tracer
            .span_builder(operation)
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("gen_ai.operation.name", operation),
                KeyValue::new("tokenrouter.request_id", request_id.to_owned()),
                KeyValue::new("tokenrouter.endpoint", endpoint),
            ])
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span).with_value(Carried { tracer: self.tracer.clone(), operation });
        Request { cx, operation }
    }

    /// Sends the spans finished so far (off the async workers: the export blocks).
    pub async fn flush(&self) {
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    }

    /// Sends what is left and stops the exporter; at most a few seconds when the
    /// collector does not answer.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || provider.shutdown()).await {
            tracing::warn!(error = %e, "traces: the last spans could not be sent");
        }
    }
}

/// The GenAI operation of an endpoint.
fn operation(endpoint: &str) -> &'static str {
    match endpoint {
        "embeddings" | "gemini.embeddings" => "embeddings",
        "completions" => "text_completion",
        _ => "chat",
    }
}

/// A traced request: its span, current while the pipeline runs it.
pub struct Request {
    cx: Context,
    operation: &'static str,
}

/// What the request span learns once the request has run.
pub struct Outcome<'a> {
    pub model: &'a str,
    pub stream: bool,
    pub max_tokens: Option<u64>,
    pub status: u16,
    /// The error's code, when the gateway refused or failed the request.
    pub error: Option<&'static str>,
}

impl Request {
    /// The context to run the request in (its attempts and its usage find the span).
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// Names the span for its model and records the answer's status.
    pub fn outcome(&self, outcome: Outcome<'_>) {
        let span = self.cx.span();
        if !span.is_recording() {
            return;
        }
        if !outcome.model.is_empty() {
            // As the client wrote it, perhaps unknown: bounded as in the request log, and
            // in the span's name (which trace stores index) only once it was served or
            // failed upstream — a refused request may name any model at all.
            let model: String = outcome.model.chars().take(200).collect();
            if !(400..500).contains(&outcome.status) {
                span.update_name(format!("{} {model}", self.operation));
            }
            span.set_attribute(KeyValue::new("gen_ai.request.model", model));
        }
        span.set_attribute(KeyValue::new("stream", outcome.stream));
        if let Some(max) = outcome.max_tokens.and_then(|m| i64::try_from(m).ok()) {
            span.set_attribute(KeyValue::new("gen_ai.request.max_tokens", max));
        }
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(outcome.status)));
        if outcome.status >= 400 {
            let kind = outcome.error.map_or_else(|| outcome.status.to_string(), str::to_owned);
            span.set_attribute(KeyValue::new("error.type", kind));
        }
        if outcome.status >= 500 {
            span.set_status(Status::error(outcome.error.unwrap_or("upstream error")));
        }
    }
}

/// The answer, its body carrying the request span: the span ends when the body has been
/// sent (or dropped), and a stream's settlement finds it current.
pub fn traced(response: Response, request: Request) -> Response {
    let cx = request.cx;
    response.map(|body| Body::new(Traced { body: Some(body), cx }))
}

struct Traced {
    body: Option<Body>,
    cx: Context,
}

impl http_body::Body for Traced {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let _current = this.cx.clone().attach();
        match &mut this.body {
            Some(body) => Pin::new(body).poll_frame(task),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.as_ref().map(http_body::Body::size_hint).unwrap_or_default()
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        // A stream cut short settles as it is dropped: with its span current.
        let _current = self.cx.clone().attach();
        self.body.take();
    }
}

/// Puts a request's usage on its span, if it is traced (called with every usage record
/// the request path writes).
pub fn record_usage(record: &UsageRecord) {
    if !tracing_on() {
        return;
    }
    Context::map_current(|cx| {
        let span = cx.span();
        if !span.is_recording() || cx.get::<Carried>().is_none() {
            return;
        }
        if !record.upstream_model.is_empty() {
            span.set_attribute(KeyValue::new("gen_ai.response.model", record.upstream_model.clone()));
        }
        if !record.provider.is_empty() {
            span.set_attribute(KeyValue::new("gen_ai.provider.name", record.provider.clone()));
        }
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        span.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", tokens(record.usage.prompt_tokens)));
        span.set_attribute(KeyValue::new("gen_ai.usage.output_tokens", tokens(record.usage.completion_tokens)));
    });
}

/// Puts why the answer ended on the request's span (`gen_ai.response.finish_reasons`), if
/// it is traced; `reasons` is only called then.
pub fn record_finish_reasons(reasons: impl FnOnce() -> Vec<String>) {
    if !tracing_on() {
        return;
    }
    Context::map_current(|cx| {
        let span = cx.span();
        if !span.is_recording() || cx.get::<Carried>().is_none() {
            return;
        }
        let reasons = reasons();
        if !reasons.is_empty() {
            let reasons = reasons.into_iter().map(opentelemetry::StringValue::from).collect();
            span.set_attribute(KeyValue::new(
                "gen_ai.response.finish_reasons",
                opentelemetry::Value::Array(opentelemetry::Array::String(reasons)),
            ));
        }
    });
}

/// Whether a stream should gather its finish reasons: only when this process traces.
pub fn gathers_finish_reasons() -> bool {
    tracing_on()
}

/// The client span of one upstream attempt.
pub struct Attempt {
    cx: Context,
}

impl Attempt {
    /// Starts the span of an attempt at `deployment`, if the request is traced.
    pub fn start(deployment: &Deployment) -> Option<Attempt> {
        if !tracing_on() {
            return None;
        }
        let parent = Context::current();
        let carried = parent.get::<Carried>()?;
        let provider = &deployment.provider;
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", carried.operation),
            KeyValue::new("gen_ai.provider.name", provider.name.clone()),
            KeyValue::new("gen_ai.request.model", deployment.upstream_model.clone()),
        ];
        // A community instance's address stays out of traces, as out of answers.
        if provider.instance.is_none()
            && let Ok(uri) = provider.base_url.parse::<http::Uri>()
        {
            if let Some(host) = uri.host() {
                attributes.push(KeyValue::new("server.address", host.to_owned()));
            }
            if let Some(port) = uri.port_u16() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        let tracer = &carried.tracer;
        let span = tracer
            .span_builder(format!("{} {}", carried.operation, deployment.upstream_model))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        Some(Attempt { cx: parent.with_span(span) })
    }

    /// `traceparent` naming this attempt as the parent. None for a
    /// community instance: its probes carry no such header, so requests must not either.
    pub fn headers(&self, deployment: &Deployment) -> Vec<(&'static str, String)> {
        let mut pairs = Pairs(Vec::new());
        if deployment.provider.instance.is_none() {
            TraceContextPropagator::new().inject_context(&self.cx, &mut pairs);
        }
        pairs.0
    }

    /// The upstream's HTTP status.
    pub fn status(&self, status: u16) {
        self.cx.span().set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
    }

    /// Ends the span: `outcome` is `ok`, `refused` (the request's fault, relayed) or the
    /// kind of failure, which is also its `error.type`.
    pub fn end(self, outcome: &'static str) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("tokenrouter.outcome", outcome));
        if !matches!(outcome, "ok" | "refused") {
            span.set_attribute(KeyValue::new("error.type", outcome));
            span.set_status(Status::error(outcome));
        }
        span.end();
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Pairs(Vec<(&'static str, String)>);

impl Injector for Pairs {
    fn set(&mut self, key: &str, value: String) {
        // Only `traceparent`: a client's `tracestate` is its vendors' business, not the
        // providers'.
        if key == "traceparent" {
            self.0.push(("traceparent", value));
        }
    }
}
