//! The accept loop, routing to the three wire formats' endpoints, and what happens to every
//! inference request: resolve its knobs, record it, wait the configured latency, inject
//! the fault, then send the wire format's answer.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::format::{Failure, Format};
use crate::instance::{InstanceFailure, InstanceKnobs};
use crate::knobs::{Fault, MockConfig, split_model};
use crate::stats::{RecordedRequest, Stats};
use crate::stream::{EventSource, SseBody, StreamCut, StreamFault};
use crate::{anthropic, gemini, openai};

/// Every response body: a whole buffer or an event stream.
type Body = UnsyncBoxBody<Bytes, StreamCut>;

/// What a wire format answers to one request, before latency and faults are applied.
pub(crate) enum Answer {
    /// A whole JSON body carrying `tokens` completion tokens.
    Json { status: StatusCode, body: Bytes, tokens: u64 },
    /// An SSE stream.
    Stream(Box<dyn EventSource>),
}

/// The service error that makes hyper close the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("connection closed by the mock's fault injection")]
struct CloseConnection;

/// What every connection of one server shares.
pub(crate) struct Shared {
    pub config: MockConfig,
    pub stats: Arc<Stats>,
    /// The instance knobs now (`config.instance` is only where they started).
    pub instance: Arc<Mutex<InstanceKnobs>>,
}

impl Shared {
    pub(crate) fn instance(&self) -> InstanceKnobs {
        self.instance.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Accepts connections on `listener` until the task is dropped, serving each with
/// HTTP/1.1 keep-alive. Open connections end when `stop` turns true (never if its sender
/// is dropped first).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "mock upstream: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "mock upstream: could not set TCP_NODELAY");
        }
        let shared = Arc::clone(&shared);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let stopped = async move {
                if stop.wait_for(|stopped| *stopped).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                ended = connection => if let Err(error) = ended {
                    tracing::debug!(%error, "mock upstream: connection ended with an error");
                },
                () = stopped => {}
            }
        });
    }
}

/// An inference endpoint, in one of the wire formats.
enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Messages,
    Gemini { model: String, method: gemini::Method },
}

impl Endpoint {
    fn format(&self) -> Format {
        match self {
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Embeddings | Endpoint::Responses => {
                Format::OpenAi
            }
            Endpoint::Messages => Format::Anthropic,
            Endpoint::Gemini { .. } => Format::Gemini,
        }
    }

    /// The answer to a request whose knobs are valid; `model` is without its knobs.
    fn answer(&self, body: Option<&Value>, model: Option<&str>, knobs: &MockConfig, seq: u64, stats: &Stats) -> Answer {
        match self {
            Endpoint::ChatCompletions => openai::chat_completions(body, model, knobs, seq, stats),
            Endpoint::Completions => openai::completions(body, model, knobs, seq),
            Endpoint::Embeddings => openai::embeddings(body, model),
            Endpoint::Responses => openai::responses(body, model, knobs, seq, stats),
            Endpoint::Messages => anthropic::messages(body, model, knobs, seq, stats),
            Endpoint::Gemini { method, .. } => gemini::answer(body, model.unwrap_or(""), *method, knobs, seq, stats),
        }
    }
}

/// Routes one request.
async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Body>, CloseConnection> {
    let _in_flight = shared.stats.begin_any();
    let instance = shared.instance();
    let path = request.uri().path();
    if (request.method(), path) == (&Method::GET, "/v1/models") {
        shared.stats.count_listing();
    }
    match instance.failure {
        None => {}
        Some(InstanceFailure::Hang) => match std::future::pending::<Infallible>().await {},
        Some(InstanceFailure::Status500) => return Ok(failure(Format::OpenAi, Failure::Internal, &shared.config)),
        Some(InstanceFailure::Html) => return Ok(html()),
    }
    if !instance.authorized(request.headers()) {
        return Ok(json(StatusCode::UNAUTHORIZED, crate::instance::unauthorized()));
    }
    let endpoint = match (request.method(), path) {
        (&Method::GET, "/v1/models") => {
            return Ok(json(StatusCode::OK, openai::models(instance.models.as_deref())));
        }
        (&Method::POST, "/v1/chat/completions") => Some(Endpoint::ChatCompletions),
        (&Method::POST, "/v1/completions") => Some(Endpoint::Completions),
        (&Method::POST, "/v1/embeddings") => Some(Endpoint::Embeddings),
        (&Method::POST, "/v1/responses") => Some(Endpoint::Responses),
        (&Method::POST, "/v1/messages") => Some(Endpoint::Messages),
        (&Method::POST, _) => gemini::route(path).and_then(|(model, name)| {
            let method = gemini::method(&name, request.uri().query())?;
            Some(Endpoint::Gemini { model, method })
        }),
        _ => None,
    };
    match endpoint {
        Some(endpoint) => inference(&shared, request, endpoint, instance).await,
        None => {
            let (method, path) = (request.method(), request.uri().path());
            let format = if path.starts_with("/v1beta/") || path.contains(':') {
                Format::Gemini
            } else if path.starts_with("/v1/messages") {
                Format::Anthropic
            } else {
                Format::OpenAi
            };
            let message = format!("Invalid URL ({method} {path})");
            let (status, body) = format.error(Failure::NotFound, &message);
            Ok(json(status, body))
        }
    }
}

/// An inference request: read and record it, then latency, fault, answer.
async fn inference(
    shared: &Shared,
    request: Request<Incoming>,
    endpoint: Endpoint,
    instance: InstanceKnobs,
) -> Result<Response<Body>, CloseConnection> {
    let (parts, body) = request.into_parts();
    let bytes = body.collect().await.map_err(|_| CloseConnection)?.to_bytes();
    let json_body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let stats = &shared.stats;
    let seq = stats.begin_request();
    let format = endpoint.format();

    // Knobs: the server's, then the model name's, then the body's `mock` object.
    let spec = match &endpoint {
        Endpoint::Gemini { model, .. } => Some(model.as_str()),
        _ => json_body.as_ref().and_then(|b| b.get("model")).and_then(Value::as_str),
    };
    let knobs = shared.config.with_model_knobs(spec.unwrap_or("")).and_then(|knobs| match &json_body {
        Some(body) => knobs.with_overrides(body),
        None => Ok(knobs),
    });
    let knobs = knobs.map(|knobs| MockConfig { instance, ..knobs });
    let (answer, knobs) = match knobs {
        Ok(knobs) => {
            let model = spec.map(|s| split_model(s).0);
            let answer = endpoint.answer(json_body.as_ref(), model, &knobs, seq, stats);
            (answer, knobs)
        }
        Err(message) => (format.invalid_request(&message), MockConfig { fault: None, ..shared.config.clone() }),
    };

    stats.record(RecordedRequest {
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: json_body.unwrap_or(Value::Null),
    });

    if knobs.latency_ms > 0 {
        tokio::time::sleep(knobs.latency()).await;
    }
    let stream_fault = match (knobs.fault, &answer) {
        (None | Some(Fault::Safety), _) => None,
        (Some(Fault::Status500), _) => return Ok(failure(format, Failure::Internal, &knobs)),
        (Some(Fault::Status429), _) => return Ok(failure(format, Failure::RateLimited, &knobs)),
        (Some(Fault::Status400 { message_bytes }), _) => {
            let (status, body) = format.refused(message_bytes);
            return Ok(json(status, body));
        }
        (Some(Fault::Overloaded), _) | (Some(Fault::StreamError), Answer::Json { .. }) => {
            return Ok(failure(format, Failure::Overloaded, &knobs));
        }
        (Some(Fault::Hang), _) => match std::future::pending::<Infallible>().await {},
        (Some(Fault::Reset), _) | (Some(Fault::CutStream { .. }), Answer::Json { .. }) => {
            return Err(CloseConnection);
        }
        (Some(Fault::CutStream { after_tokens }), Answer::Stream(_)) => Some(StreamFault::Cut { after_tokens }),
        (Some(Fault::StreamError), Answer::Stream(_)) => Some(StreamFault::Error { after_tokens: 1 }),
    };

    Ok(match answer {
        Answer::Json { status, body, tokens } => {
            stats.add_tokens(tokens);
            json(status, body)
        }
        Answer::Stream(source) => {
            let content_type = source.content_type();
            let body = SseBody::new(source, knobs.token_interval(), stream_fault, Arc::clone(stats));
            let mut response = Response::new(body.boxed_unsync());
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    })
}

/// The answer to a fault that replaces the response, in the request's format.
fn failure(format: Format, failure: Failure, knobs: &MockConfig) -> Response<Body> {
    let (status, body) = format.injected(failure);
    let mut response = json(status, body);
    if failure == Failure::RateLimited {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(knobs.retry_after_secs));
    }
    response
}

/// [`InstanceFailure::Html`]'s answer.
fn html() -> Response<Body> {
    let body = Bytes::from_static(crate::instance::HTML_PAGE.as_bytes());
    let mut response = Response::new(Full::new(body).map_err(|never| match never {}).boxed_unsync());
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body).map_err(|never| match never {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
