//! `POST /v1/chat/completions`: the client's body runs the pipeline as it is (which reads
//! and checks it once) — now, or, asked with `Prefer: respond-async`, later as a job
//! (CONTRACTS §8).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokenrouter_providers::passthrough::RawObject;
use tokenrouter_store::JobKind;

use crate::edge::{RequestId, read_body};
use crate::error::ApiError;
use crate::jobs::{self, Submission};
use crate::pipeline::{self, Inference, Work};
use crate::policy::Permitted;
use crate::state::AppState;

pub async fn completions(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Permitted(key): Permitted,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = state.config.load().server.max_body_bytes;
    let body = read_body(body, &headers, limit).await;
    if jobs::wants_async(&headers) {
        return match body {
            Ok(body) => submit(&state, request_id, key, &headers, body).await,
            Err(e) => e.into_response(),
        };
    }
    pipeline::run(&state, "chat.completions", request_id, key, &headers, body.map(inference_of)).await
}

/// The inference of a chat completions body.
pub fn inference_of(body: Bytes) -> Inference {
    Inference {
        endpoint: "chat.completions",
        body,
        view: None,
        work: Work::Chat,
        headers: Vec::new(),
        unseen_history: false,
    }
}

/// Queues the completion: 202 with the job and where to poll it.
async fn submit(
    state: &AppState,
    request_id: String,
    key: std::sync::Arc<tokenrouter_store::KeyRow>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let streamed = RawObject::parse(&body).ok().and_then(|o| o.get("stream").map(|v| v.get() == "true"));
    if streamed == Some(true) {
        return ApiError::invalid_param(
            "An async request cannot stream: poll its job instead (or drop Prefer: respond-async).",
            "stream",
        )
        .into_response();
    }
    let submission = Submission {
        id: format!("job_{}", request_id.trim_start_matches("req_")),
        kind: JobKind::Chat,
        endpoint: "chat.completions",
        request_id,
        key,
        body: body.clone(),
    };
    // Boxed: inline, this rare path's future (kilobytes) would enlarge every request's
    // handler future, which axum copies whole when it boxes it.
    let job = match Box::pin(jobs::submit(state, submission, headers, Ok(inference_of(body)))).await {
        Ok(job) => job,
        Err(refusal) => return refusal,
    };
    let location = format!("/api/jobs/{}", job.id);
    let body = super::jobs::queued(&job);
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    let answer = response.headers_mut();
    if let Ok(location) = HeaderValue::try_from(location) {
        answer.insert(http::header::LOCATION, location);
    }
    answer.insert("preference-applied", HeaderValue::from_static("respond-async"));
    response
}
