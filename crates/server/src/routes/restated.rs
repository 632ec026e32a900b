//! Error answers restated in an inbound surface's own shape (Anthropic's, Google's): the
//! status and every header stay; the OpenAI-shaped body becomes the surface's. A body too
//! big to restate (an upstream's own words, relayed) keeps its status and headers and
//! says, in the surface's shape, that its text was left out.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header;
use http_body_util::BodyExt;
use tokenrouter_core::ErrorEnvelope;

/// The largest error body restated.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// `response` with its error body in the shape `shape` writes (status, envelope → body);
/// successes and answers that aren't JSON pass as they are.
pub async fn restate_error(response: Response, shape: fn(u16, &ErrorEnvelope) -> Vec<u8>) -> Response {
    let status = response.status();
    let json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.is_success() || !json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let restated = match http_body_util::Limited::new(body, MAX_ERROR_BODY).collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
                Ok(envelope) => Bytes::from(shape(status.as_u16(), &envelope)),
                Err(_) => bytes,
            }
        }
        Err(_) => {
            let message = format!(
                "The upstream's error answer (HTTP {}) was over 64 KB or could not be read whole; its text is left out.",
                status.as_u16()
            );
            let envelope = ErrorEnvelope::new("api_error", "upstream_error", message, None);
            Bytes::from(shape(status.as_u16(), &envelope))
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(restated))
}
