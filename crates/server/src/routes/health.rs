//! `GET /` and `HEAD /` (health), and the answers for unknown paths and methods.

use axum::Json;
use axum::extract::Request;
use serde_json::{Value, json};

use crate::error::ApiError;

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn unknown_route(request: Request) -> ApiError {
    ApiError::UnknownRoute { method: request.method().to_string(), path: request.uri().path().to_owned() }
}

pub async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed { method: request.method().to_string(), path: request.uri().path().to_owned() }
}
