//! `GET /` and `HEAD /` (health; a browser goes to the dashboard), and the answers for
//! unknown paths and methods.

use axum::Json;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::json;

use crate::error::ApiError;

pub async fn health(headers: HeaderMap) -> Response {
    if wants_html(&headers) {
        return crate::signin::found("/dashboard", &[]);
    }
    Json(json!({"status": "ok"})).into_response()
}

/// A browser navigating (its `Accept` names `text/html`), not a script or a probe.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|t| t.trim().starts_with("text/html")))
}

pub async fn unknown_route(request: Request) -> ApiError {
    ApiError::UnknownRoute { method: request.method().to_string(), path: request.uri().path().to_owned() }
}

pub async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed { method: request.method().to_string(), path: request.uri().path().to_owned() }
}
