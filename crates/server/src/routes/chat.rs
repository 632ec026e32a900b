//! `POST /v1/chat/completions`: the client's body, checked, runs the pipeline as it is.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use tokenrouter_providers::openai;
use tokenrouter_providers::passthrough::RawObject;

use crate::edge::{RequestId, json_error, read_body};
use crate::error::ApiError;
use crate::pipeline::{self, Job, Work};
use crate::policy::Permitted;
use crate::state::AppState;

pub async fn completions(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Permitted(key): Permitted,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let job = job(&state, &headers, body).await;
    pipeline::run(&state, request_id, key, &headers, job).await
}

async fn job(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Job, ApiError> {
    let limit = state.config.load().server.max_body_bytes;
    let bytes = read_body(body, headers, limit).await?;
    let request = RawObject::parse(&bytes).map_err(|e| json_error(&bytes, &e))?;
    let view = openai::inspect_chat(&request).map_err(|e| ApiError::invalid_param(e.message, e.param))?;
    Ok(Job { endpoint: "chat.completions", body: bytes, view, work: Work::Chat, headers: Vec::new() })
}
