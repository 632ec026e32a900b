//! `POST /v1/chat/completions`: the client's body runs the pipeline as it is (which reads
//! and checks it once).

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;

use crate::edge::{RequestId, read_body};
use crate::error::ApiError;
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
    let inference = inference(&state, &headers, body).await;
    pipeline::run(&state, "chat.completions", request_id, key, &headers, inference).await
}

async fn inference(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Inference, ApiError> {
    let limit = state.config.load().server.max_body_bytes;
    let body = read_body(body, headers, limit).await?;
    Ok(Inference {
        endpoint: "chat.completions",
        body,
        view: None,
        work: Work::Chat,
        headers: Vec::new(),
        unseen_history: false,
    })
}
