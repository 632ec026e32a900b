//! `POST /v1/responses` (OpenAI's Responses API, what Codex CLI speaks): translated into
//! chat, answered in Responses' shape, kept for `previous_response_id` unless
//! `store: false`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue};
use tokenrouter_providers::openai::ChatView;
use tokenrouter_providers::responses::{self, Ids, Options};
use tokenrouter_store::KeyRow;

use crate::edge::{RequestId, expect_json_object, read_body};
use crate::error::ApiError;
use crate::pipeline::{self, Job, Translation, Work};
use crate::policy::Permitted;
use crate::retention::Keeper;
use crate::state::AppState;

/// Names the hosted tools removed from a request because no upstream here can run them.
pub static X_DROPPED_TOOLS: HeaderName = HeaderName::from_static("x-tokenrouter-dropped-tools");

pub async fn create(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Permitted(key): Permitted,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let job = job(&state, &request_id, &key, &headers, body).await;
    pipeline::run(&state, request_id, key, &headers, job).await
}

async fn job(
    state: &AppState,
    request_id: &str,
    key: &KeyRow,
    headers: &HeaderMap,
    body: Body,
) -> Result<Job, ApiError> {
    let config = state.config.load_full();
    let bytes = read_body(body, headers, config.server.max_body_bytes).await?;
    expect_json_object(&bytes)?;
    let request = responses::parse(&bytes).map_err(ApiError::unsupported)?;
    let previous = match request.previous_response_id() {
        Some(id) => Some(state.retention.recall(&state.db, key.account_id, id).await?),
        None => None,
    };
    let ids = Ids {
        response_id: format!("resp_{}", request_id.trim_start_matches("req_")),
        created_at: tokenrouter_core::clock::now_unix(),
    };
    let options = Options { unsupported_tools: config.server.unsupported_tools };
    let translated =
        responses::translate(request, previous.as_deref(), ids, &options).map_err(ApiError::unsupported)?;
    let chat = &translated.chat;
    let view = ChatView {
        model: chat.model.clone(),
        stream: chat.stream.unwrap_or(false),
        include_usage: chat.include_usage(),
        max_tokens: chat.max_output(),
    };
    let body =
        serde_json::to_vec(chat).map_err(|e| ApiError::invalid(format!("The request could not be translated: {e}")))?;
    let mut answer_headers = Vec::new();
    if !translated.dropped_tools.is_empty()
        && let Ok(value) = HeaderValue::try_from(translated.dropped_tools.join(", "))
    {
        answer_headers.push((X_DROPPED_TOOLS.clone(), value));
    }
    let keeper =
        Keeper::new(state.retention.clone(), state.db.clone(), key.account_id, config.server.response_retention);
    Ok(Job {
        endpoint: "responses",
        body: body.into(),
        view,
        work: Work::Surface(Translation { surface: Ok(Arc::new(translated.surface)), native: None, keeper }),
        headers: answer_headers,
    })
}
