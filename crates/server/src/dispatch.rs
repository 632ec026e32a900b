//! One attempt at an upstream: send, wait for the answer within the deployment's
//! deadline, and sort the outcome into a complete answer, a stream, a refusal the
//! client caused, or a failure of the upstream.

use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::config::Deployment;
use crate::error::ApiError;
use crate::upstream::{UpstreamClient, UpstreamError};

/// Largest upstream answer the gateway reads into memory (non-streaming).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

pub enum Answer {
    /// A successful non-streaming answer, whole.
    Complete(Bytes),
    /// A successful streaming answer, still arriving.
    Stream(Incoming),
    /// The upstream refused the request for a reason the request itself caused (400,
    /// 409, 413, 422): relayed to the client as it is.
    Refused { status: StatusCode, body: Bytes },
}

pub async fn send(
    client: &UpstreamClient,
    deployment: &Deployment,
    path: &str,
    body: Bytes,
    stream: bool,
) -> Result<Answer, ApiError> {
    let deadline = Instant::now() + deployment.timeout;
    let provider = &deployment.provider.name;
    let response = client
        .post_json(deployment, path, body)
        .await
        .map_err(|e| match e {
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
    if matches!(status.as_u16(), 400 | 409 | 413 | 422)
        && serde_json::from_slice::<serde_json::Value>(&body).is_ok()
    {
        return Ok(Answer::Refused { status, body });
    }
    let detail = serde_json::from_slice::<tokenrouter_core::ErrorEnvelope>(&body)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    Err(ApiError::UpstreamUnavailable(format!(
        "The provider '{provider}' answered {status}: {detail}"
    )))
}
