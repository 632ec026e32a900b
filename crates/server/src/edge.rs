//! The edge of every request: its id, its timing headers, and reading its body under the
//! configured size limit.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ApiError;
use crate::state::AppState;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_PROVIDER: HeaderName = HeaderName::from_static("x-tokenrouter-provider");
static X_LATENCY_MS: HeaderName = HeaderName::from_static("x-tokenrouter-latency-ms");

/// The id of one request, `req_` followed by a UUIDv7 (time-ordered).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    fn new() -> RequestId {
        let mut text = String::with_capacity(36);
        text.push_str("req_");
        text.push_str(uuid::Uuid::now_v7().simple().encode_lower(&mut uuid::Uuid::encode_buffer()));
        RequestId(text)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestId>().cloned().unwrap_or_else(RequestId::new))
    }
}

/// Gives each request an id, stamps `X-Request-Id` and `X-TokenRouter-Latency-Ms`
/// (receive → response head) on the answer, and counts it by route and status.
pub async fn stamp(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let id = RequestId::new();
    let id_header = HeaderValue::try_from(id.0.as_str()).ok();
    request.extensions_mut().insert(id);
    let has_body = request.headers().contains_key(header::CONTENT_LENGTH)
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    let mut response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state.metrics.request(route, response.status().as_u16());
    let refused_unread = matches!(response.status().as_u16(), 401 | 403 | 404 | 405 | 413);
    let headers = response.headers_mut();
    // These answers come before the body was read (or all of it): the connection cannot
    // carry another request, and the client must be told so rather than find out.
    if has_body && refused_unread {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(value) = id_header {
        headers.insert(X_REQUEST_ID.clone(), value);
    }
    let micros = started.elapsed().as_micros();
    let millis = format!("{}.{:03}", micros / 1000, micros % 1000);
    if let Ok(value) = HeaderValue::try_from(millis) {
        headers.insert(X_LATENCY_MS.clone(), value);
    }
    response
}

/// Reads the whole body, refusing more than `limit` bytes (at once when the client
/// announces a larger `Content-Length`).
pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(ApiError::TooLarge(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::TooLarge(limit)),
        Err(e) => Err(ApiError::invalid(format!("The request body could not be read: {e}"))),
    }
}

/// The error for a body that is not a JSON object, saying which of the ways it failed.
pub fn json_error(body: &[u8], error: &serde_json::Error) -> ApiError {
    let message = if std::str::from_utf8(body).is_err() {
        "The request body is not valid UTF-8.".to_owned()
    } else if body.iter().all(u8::is_ascii_whitespace) {
        "The request body is empty; expected a JSON object.".to_owned()
    } else if error.is_data() {
        "The request body must be a JSON object.".to_owned()
    } else {
        format!("We could not parse the JSON body of your request: {error}.")
    };
    ApiError::invalid(message)
}

/// Refuses a body that is not a JSON object, saying how (before a surface's own parser
/// names fields).
pub fn expect_json_object(body: &[u8]) -> Result<(), ApiError> {
    tokenrouter_providers::passthrough::RawObject::parse(body).map(drop).map_err(|e| json_error(body, &e))
}
