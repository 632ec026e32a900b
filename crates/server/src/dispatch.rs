//! One attempt at an upstream: pick the adapter for the provider's kind, send, wait for
//! the answer within the deployment's deadline, and sort the outcome into a complete
//! answer, a stream, a refusal the client caused, or a failure of the upstream.

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokenrouter_core::ErrorEnvelope;
use tokenrouter_providers::adapter::{Adapter, Auth, Encoded};

use crate::config::{Deployment, ProviderKind};
use crate::error::ApiError;
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
    Translated {
        adapter: &'static dyn Adapter,
        encoded: Encoded,
    },
}

pub enum Answer {
    /// A successful non-streaming answer, whole (in the provider's format).
    Complete(Bytes),
    /// A successful streaming answer, still arriving.
    Stream(Incoming),
    /// The upstream refused the request for a reason the request itself caused (400,
    /// 409, 413, 422): relayed to the client with an OpenAI-shaped body.
    Refused { status: StatusCode, body: Bytes },
}

pub async fn send(
    client: &UpstreamClient,
    deployment: &Deployment,
    outbound: Outbound,
    stream: bool,
) -> Result<Answer, ApiError> {
    let deadline = Instant::now() + deployment.timeout;
    let provider = &deployment.provider.name;
    let (adapter, sent) = match outbound {
        Outbound::Raw { path, body } => (
            None,
            client
                .post_json(deployment, path, &[], body, Auth::Bearer)
                .await,
        ),
        Outbound::Translated { adapter, encoded } => {
            let body = Bytes::from(encoded.body);
            (
                Some(adapter),
                client
                    .post_json(
                        deployment,
                        &encoded.path,
                        &encoded.headers,
                        body,
                        adapter.auth(),
                    )
                    .await,
            )
        }
    };
    let response = sent.map_err(|e| match e {
        UpstreamError::Timeout(_) => ApiError::UpstreamTimeout(format!(
            "The provider '{provider}' did not answer in time: {e}."
        )),
        other => ApiError::UpstreamUnavailable(format!(
            "The provider '{provider}' is unavailable: {other}."
        )),
    })?;
    let status = response.status();
    if status.is_success() && stream {
        return Ok(Answer::Stream(response.into_body()));
    }
    let read = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect();
    let body = match tokio::time::timeout_at(deadline.into(), read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            return Err(ApiError::UpstreamUnavailable(format!(
                "The provider '{provider}' broke off its answer: {e}."
            )));
        }
        Err(_) => {
            return Err(ApiError::UpstreamTimeout(format!(
                "The provider '{provider}' did not finish its answer in time."
            )));
        }
    };
    if status.is_success() {
        return Ok(Answer::Complete(body));
    }
    match adapter {
        None => classify_openai(provider, status, body),
        Some(adapter) => {
            let failure = adapter.decode_error(status.as_u16(), &body);
            if failure.client_error {
                let envelope = ErrorEnvelope::new(
                    "invalid_request_error",
                    "invalid_request",
                    failure.message,
                    None,
                );
                Ok(Answer::Refused {
                    status,
                    body: Bytes::from(envelope.to_json()),
                })
            } else {
                Err(ApiError::UpstreamUnavailable(format!(
                    "The provider '{provider}' answered {status}: {}",
                    failure.message
                )))
            }
        }
    }
}

/// An OpenAI-compatible upstream's error: relayed when the request caused it, else a 502.
fn classify_openai(provider: &str, status: StatusCode, body: Bytes) -> Result<Answer, ApiError> {
    if matches!(status.as_u16(), 400 | 409 | 413 | 422)
        && serde_json::from_slice::<serde_json::Value>(&body).is_ok()
    {
        return Ok(Answer::Refused { status, body });
    }
    let detail = serde_json::from_slice::<ErrorEnvelope>(&body)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    Err(ApiError::UpstreamUnavailable(format!(
        "The provider '{provider}' answered {status}: {detail}"
    )))
}
