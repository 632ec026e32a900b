//! The accept loop, routing, and what happens to every inference request: record it,
//! wait the configured latency, inject the fault, then send the wire format's answer.

use std::convert::Infallible;
use std::sync::Arc;
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

use crate::knobs::{Fault, MockConfig};
use crate::openai;
use crate::stats::{RecordedRequest, Stats};
use crate::stream::{EventSource, SseBody, StreamCut};

/// Every response body: a whole buffer or an event stream.
type Body = UnsyncBoxBody<Bytes, StreamCut>;

/// What a wire format answers to one request, before latency and faults are applied.
pub(crate) enum Answer {
    /// A whole JSON body carrying `tokens` completion tokens.
    Json {
        status: StatusCode,
        body: Bytes,
        tokens: u64,
    },
    /// An SSE stream.
    Stream(Box<dyn EventSource>),
}

/// The service error that makes hyper close the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("connection closed by the mock's fault injection")]
struct CloseConnection;

/// What every connection of one server shares.
struct Shared {
    config: MockConfig,
    stats: Arc<Stats>,
}

/// Accepts connections on `listener` until the task is dropped, serving each with
/// HTTP/1.1 keep-alive.
pub(crate) async fn serve(listener: TcpListener, config: MockConfig, stats: Arc<Stats>) {
    let shared = Arc::new(Shared { config, stats });
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
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "mock upstream: connection ended with an error");
            }
        });
    }
}

/// Routes one request.
async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, CloseConnection> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/v1/models") => Ok(json(StatusCode::OK, openai::models())),
        (&Method::POST, "/v1/chat/completions") => inference(&shared, request).await,
        (method, path) => {
            let message = format!("Invalid URL ({method} {path})");
            Ok(json(
                StatusCode::NOT_FOUND,
                openai::error("invalid_request_error", message),
            ))
        }
    }
}

/// An inference request: read and record it, then latency, fault, answer.
async fn inference(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Response<Body>, CloseConnection> {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|_| CloseConnection)?
        .to_bytes();
    let json_body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let stats = &shared.stats;
    let seq = stats.begin_request();

    let knobs = match &json_body {
        Some(body) => shared.config.with_overrides(body),
        None => Ok(shared.config.clone()),
    };
    let (answer, knobs) = match knobs {
        Ok(knobs) => (
            openai::chat_completions(json_body.as_ref(), &knobs, seq, stats),
            knobs,
        ),
        Err(message) => (
            openai::invalid_request(message),
            MockConfig {
                fault: None,
                ..shared.config.clone()
            },
        ),
    };

    stats.record(RecordedRequest {
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: json_body.unwrap_or(Value::Null),
    });

    if knobs.latency_ms > 0 {
        tokio::time::sleep(knobs.latency()).await;
    }
    let cut_after = match (knobs.fault, &answer) {
        (None, _) => None,
        (Some(Fault::Status500), _) => {
            let body = openai::error(
                "server_error",
                "The mock upstream injected a server error (fault 500).",
            );
            return Ok(json(StatusCode::INTERNAL_SERVER_ERROR, body));
        }
        (Some(Fault::Status429), _) => {
            let body = openai::error(
                "requests",
                "The mock upstream injected a rate limit (fault 429).",
            );
            let mut response = json(StatusCode::TOO_MANY_REQUESTS, body);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(knobs.retry_after_secs));
            return Ok(response);
        }
        (Some(Fault::Hang), _) => match std::future::pending::<Infallible>().await {},
        (Some(Fault::Reset), _) | (Some(Fault::CutStream { .. }), Answer::Json { .. }) => {
            return Err(CloseConnection);
        }
        (Some(Fault::CutStream { after_tokens }), Answer::Stream(_)) => Some(after_tokens),
    };

    Ok(match answer {
        Answer::Json {
            status,
            body,
            tokens,
        } => {
            stats.add_tokens(tokens);
            json(status, body)
        }
        Answer::Stream(source) => {
            let body = SseBody::new(source, knobs.token_interval(), cut_after, Arc::clone(stats));
            let mut response = Response::new(body.boxed_unsync());
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    })
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
