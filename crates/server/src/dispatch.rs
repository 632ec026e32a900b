//! One attempt at an upstream: pick the adapter for the provider's kind, send, wait for
//! the first byte within the deployment's deadline, and sort the outcome into a complete
//! answer, a stream, a refusal the client caused, or a failure that another deployment
//! may not have.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokenrouter_core::ErrorEnvelope;
use tokenrouter_providers::adapter::{Adapter, Auth, Encoded};

use crate::config::{Deployment, ProviderKind};
use crate::error::ApiError;
use crate::metrics::AttemptOutcome;
use crate::routing::Failure;
use crate::upstream::{UpstreamClient, UpstreamError};

/// Largest upstream answer the gateway reads into memory (non-streaming).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The adapter that translates for a provider kind; `None` for OpenAI-compatible
/// upstreams, whose requests and answers pass through as they are. The only `match` over
/// provider kinds.
pub fn adapter(kind: ProviderKind) -> Option<&'static dyn Adapter> {
    match kind {
        ProviderKind::OpenAi => None,
        ProviderKind::Anthropic => Some(&tokenrouter_providers::anthropic::ANTHROPIC),
        ProviderKind::Gemini => Some(&tokenrouter_providers::gemini::GEMINI),
    }
}

/// What goes to the upstream.
pub enum Outbound {
    /// An OpenAI-compatible body for `path` under the base URL, sent with a bearer key.
    Raw { path: &'static str, body: Bytes },
    /// A body an adapter encoded for its provider.
    Translated { adapter: &'static dyn Adapter, encoded: Encoded },
}

pub enum Answer {
    /// A successful non-streaming answer, whole (in the provider's format).
    Complete(Bytes),
    /// A successful streaming answer: its first bytes, and the rest still arriving.
    Stream { first: Bytes, rest: Incoming },
    /// The upstream refused the request for a reason the request itself caused (400,
    /// 409, 413, 422): relayed to the client with an OpenAI-shaped body, never retried.
    Refused { status: StatusCode, body: Bytes },
}

/// A failed attempt: what the client would be told, and what it says about the deployment.
pub struct Failed {
    pub error: ApiError,
    pub failure: Failure,
    /// An instance refused the request as the request's fault (a 4xx): its fault or the
    /// request's, known only once another deployment has answered the same request.
    pub refusal: bool,
}

impl Failed {
    fn new(error: ApiError, failure: Failure) -> Failed {
        Failed { error, failure, refusal: false }
    }
}

/// Sends one attempt. `deadline` is the whole request's: no wait outlasts it.
pub async fn send(
    client: &UpstreamClient,
    deployment: &Deployment,
    outbound: Outbound,
    stream: bool,
    deadline: Instant,
) -> Result<Answer, Failed> {
    let Some(traced) = crate::telemetry::Attempt::start(deployment) else {
        return attempt(client, deployment, outbound, stream, deadline, None).await;
    };
    let result = attempt(client, deployment, outbound, stream, deadline, Some(&traced)).await;
    traced.end(match AttemptOutcome::of_result(&result) {
        AttemptOutcome::Success => "ok",
        other => other.as_str(),
    });
    result
}

async fn attempt(
    client: &UpstreamClient,
    deployment: &Deployment,
    outbound: Outbound,
    stream: bool,
    deadline: Instant,
    traced: Option<&crate::telemetry::Attempt>,
) -> Result<Answer, Failed> {
    let provider = &deployment.provider.name;
    // What an instance says about itself (its address, its errors' text) never reaches
    // consumers: they learn only that it failed.
    let instance = deployment.provider.instance.is_some();
    let first_byte_by = deadline.min(Instant::now() + deployment.timeout);
    let timed_out = || {
        Failed::new(
            ApiError::UpstreamTimeout(format!("The provider '{provider}' did not answer in time.")),
            Failure::Timeout,
        )
    };
    let (adapter, path, mut headers, body, auth) = match outbound {
        Outbound::Raw { path, body } => (None, path.to_owned(), Vec::new(), body, Auth::Bearer),
        Outbound::Translated { adapter, encoded } => {
            (Some(adapter), encoded.path, encoded.headers, Bytes::from(encoded.body), adapter.auth())
        }
    };
    if let Some(traced) = traced {
        headers.extend(traced.headers(deployment));
    }
    let sending = client.post_json(deployment, &path, &headers, body, auth, first_byte_by);
    let response = sending.await.map_err(|e| match e {
        UpstreamError::Timeout(_) => timed_out(),
        _ if instance => Failed::new(
            ApiError::UpstreamUnavailable(format!("The provider '{provider}' is unavailable.")),
            Failure::Connect,
        ),
        other => Failed::new(
            ApiError::UpstreamUnavailable(format!("The provider '{provider}' is unavailable: {other}.")),
            Failure::Connect,
        ),
    })?;
    let status = response.status();
    if let Some(traced) = traced {
        traced.status(status.as_u16());
    }
    let retry_after = retry_after(response.headers());
    let mut body = response.into_body();
    if status.is_success() && stream {
        // Wait for the first bytes here, so that an upstream which answers but never
        // streams can still be retried elsewhere: nothing has reached the client yet.
        return match tokio::time::timeout_at(first_byte_by.into(), body.frame()).await {
            Err(_) => Err(timed_out()),
            Ok(Some(Err(e))) => Err(Failed::new(
                ApiError::UpstreamUnavailable(format!("The provider '{provider}' broke off its stream: {e}.")),
                Failure::ServerError,
            )),
            Ok(None) => Err(Failed::new(
                ApiError::UpstreamUnavailable(format!("The provider '{provider}' ended its stream without a byte.")),
                Failure::ServerError,
            )),
            Ok(Some(Ok(frame))) => Ok(Answer::Stream { first: frame.into_data().unwrap_or_default(), rest: body }),
        };
    }
    let read = http_body_util::Limited::new(body, MAX_ANSWER_BYTES).collect();
    let body = match tokio::time::timeout_at(deadline.into(), read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            return Err(Failed::new(
                ApiError::UpstreamUnavailable(format!("The provider '{provider}' broke off its answer: {e}.")),
                Failure::ServerError,
            ));
        }
        Err(_) => return Err(timed_out()),
    };
    if status.is_success() {
        return Ok(Answer::Complete(body));
    }
    let (client_error, message) = match adapter {
        None => openai_error(status, &body),
        Some(adapter) => {
            let failure = adapter.decode_error(status.as_u16(), &body);
            (failure.client_error, failure.message)
        }
    };
    if client_error && instance {
        // An instance that refuses what the gateway accepted: another deployment is tried,
        // and its words never reach the consumer. Whether it counts toward taking the
        // instance offline depends on whether another deployment answers (the pipeline).
        let error = ApiError::UpstreamUnavailable(format!("The provider '{provider}' refused the request ({status})."));
        return Err(Failed { refusal: true, ..Failed::new(error, Failure::ServerError) });
    }
    if client_error {
        // Relayed as it is when it is already an OpenAI error; otherwise (another
        // provider's shape, or a proxy's HTML page) wrapped in one.
        let body = match adapter {
            None if serde_json::from_slice::<ErrorEnvelope>(&body).is_ok() => body,
            _ => Bytes::from(ErrorEnvelope::new("invalid_request_error", "invalid_request", message, None).to_json()),
        };
        return Ok(Answer::Refused { status, body });
    }
    let failure = match status {
        StatusCode::TOO_MANY_REQUESTS => Failure::RateLimited { retry_after },
        _ => Failure::ServerError,
    };
    if instance {
        let error = ApiError::UpstreamUnavailable(format!("The provider '{provider}' answered {status}."));
        return Err(Failed::new(error, failure));
    }
    Err(Failed::new(
        ApiError::UpstreamUnavailable(format!("The provider '{provider}' answered {status}: {message}")),
        failure,
    ))
}

/// Whether an OpenAI-compatible upstream's error is the request's fault, and its message.
fn openai_error(status: StatusCode, body: &[u8]) -> (bool, String) {
    let client_error = matches!(status.as_u16(), 400 | 409 | 413 | 422);
    let message = serde_json::from_slice::<ErrorEnvelope>(body)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    (client_error, message)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and read as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}
