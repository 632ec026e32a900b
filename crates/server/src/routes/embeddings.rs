//! `POST /v1/embeddings`: passed through to OpenAI-compatible upstreams, translated for
//! Gemini; billed by input tokens.

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use tokenrouter_providers::embeddings;
use tokenrouter_providers::openai::ChatView;

use crate::edge::{RequestId, expect_json_object, read_body};
use crate::error::ApiError;
use crate::pipeline::{self, Inference, Work};
use crate::policy::Permitted;
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Permitted(key): Permitted,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inference = inference(&state, &headers, body).await;
    pipeline::run(&state, "embeddings", request_id, key, &headers, inference).await
}

async fn inference(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Inference, ApiError> {
    let limit = state.config.load().server.max_body_bytes;
    let bytes = read_body(body, headers, limit).await?;
    expect_json_object(&bytes)?;
    let request = embeddings::parse(&bytes).map_err(ApiError::unsupported)?;
    let view = ChatView { model: request.model.clone(), stream: false, include_usage: false, max_tokens: Some(0) };
    Ok(Inference {
        endpoint: "embeddings",
        body: bytes,
        view: Some(view),
        work: Work::Embeddings(Box::new(request)),
        headers: Vec::new(),
        unseen_history: false,
    })
}
