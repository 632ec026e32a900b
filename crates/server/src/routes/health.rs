//! `GET /` and `HEAD /` (liveness; a browser goes to the dashboard), `GET /ready`
//! (readiness: serving, not draining, database answering), and the answers for unknown
//! paths and methods.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// How long the database may take to answer the readiness query.
const DB_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn health(headers: HeaderMap) -> Response {
    if wants_html(&headers) {
        return crate::signin::found("/dashboard", &[]);
    }
    Json(json!({"status": "ok"})).into_response()
}

/// 200 `{"status":"ready"}` while this replica should get traffic; 503 with the reason
/// (`draining`, `database unreachable`) when a load balancer should send it elsewhere.
pub async fn ready(State(state): State<AppState>) -> Response {
    let status =
        if state.is_draining() { Some("draining") } else { state.store_check.get(|| check_store(&state)).await };
    let mut response = match status {
        None => Json(json!({"status": "ready"})).into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": reason}))).into_response(),
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn check_store(state: &AppState) -> Option<&'static str> {
    match tokio::time::timeout(DB_PING_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            Some("database unreachable")
        }
        Err(_) => {
            tracing::warn!("readiness: the database took longer than {DB_PING_TIMEOUT:?} to answer");
            Some("database unreachable")
        }
    }
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
