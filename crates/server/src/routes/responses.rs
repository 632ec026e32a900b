//! `POST /v1/responses` (OpenAI's Responses API, what Codex CLI speaks): passed through to
//! upstreams that serve it themselves (`responses_api`), translated into chat for every
//! other one and answered in Responses' shape — kept for `previous_response_id` unless
//! `store: false`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokenrouter_providers::adapter::Unsupported;
use tokenrouter_providers::openai::ChatView;
use tokenrouter_providers::responses::{self, Ids, Options, ResponsesRequest, Translated};
use tokenrouter_providers::surface::Surface;
use tokenrouter_store::KeyRow;

use crate::config::{Config, ProviderKind};
use crate::edge::{RequestId, expect_json_object, read_body};
use crate::error::ApiError;
use crate::pipeline::{self, Inference, Native, NativeApi, Translation, Work};
use crate::policy::Permitted;
use crate::retention::{Keeper, SERVED_UPSTREAM};
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Permitted(key): Permitted,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inference = inference(&state, &request_id, &key, &headers, body).await;
    pipeline::run(&state, "responses", request_id, key, &headers, inference).await
}

async fn inference(
    state: &AppState,
    request_id: &str,
    key: &KeyRow,
    headers: &HeaderMap,
    body: Body,
) -> Result<Inference, ApiError> {
    let config = state.config.load_full();
    let bytes = read_body(body, headers, config.server.max_body_bytes).await?;
    expect_json_object(&bytes)?;
    let request = responses::parse(&bytes).map_err(ApiError::unsupported)?;
    if request.extra.get("background").and_then(serde_json::Value::as_bool) == Some(true) {
        // Its answer would arrive after this request ends, unmetered.
        return Err(ApiError::invalid_param(
            "'background' responses are not supported through this gateway; stream instead.",
            "background",
        ));
    }
    let native_view = ChatView {
        model: request.model().to_owned(),
        stream: request.stream(),
        include_usage: false,
        max_tokens: request.max_output_tokens,
    };
    let native_possible = served_natively(&config, &native_view.model);
    let keeper = if request.store == Some(false) {
        None
    } else {
        Keeper::new(state.db.clone(), key.account_id, config.server.response_retention)
    };
    // Only responses this account has here can be continued (never an id merely passed
    // on to an upstream, which would answer for any account).
    let previous = match request.previous_response_id() {
        Some(id) => Some(state.retention.recall(&state.db, key.account_id, id).await?),
        None => None,
    };
    if previous.as_deref() == Some(SERVED_UPSTREAM) {
        let refusal = Unsupported::new(
            "previous_response_id",
            "This response was served by a provider that keeps the conversation itself; only such a \
             provider can continue it.",
        );
        if !native_possible {
            return Err(ApiError::unsupported(refusal));
        }
        let mut inference = native_only(bytes, native_view, refusal, keeper);
        inference.unseen_history = true;
        return Ok(inference);
    }
    let continues = previous.is_some();
    let translated = match translate(&config, request_id, request, previous.as_deref()) {
        Ok(translated) => translated,
        // Only an upstream that speaks the API itself can take what did not translate
        // (a hosted tool it runs, …).
        Err(refusal) if native_possible && !continues => {
            return Ok(native_only(bytes, native_view, refusal, keeper));
        }
        Err(refusal) => return Err(ApiError::unsupported(refusal)),
    };
    let (canonical, view) = pipeline::canonical(&translated.chat, &bytes)?;
    let answer_headers = pipeline::dropped_tools(&translated.dropped_tools);
    let native =
        (native_possible && !continues).then(|| Native { api: NativeApi::Responses, body: bytes, view: native_view });
    let surface: Arc<dyn Surface> = Arc::new(translated.surface);
    Ok(Inference {
        endpoint: "responses",
        body: canonical,
        view: Some(view),
        work: Work::Surface(Translation { surface: Ok(surface), native, keeper }),
        headers: answer_headers,
        unseen_history: false,
    })
}

/// `GET /v1/responses/{id}`: a kept response as its client received it.
pub async fn retrieve(
    State(state): State<AppState>,
    Permitted(key): Permitted,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let answer = state.retention.answer(&state.db, key.account_id, &id).await?;
    Ok(pipeline::json_response(StatusCode::OK, Bytes::from(answer)))
}

/// `DELETE /v1/responses/{id}`: forgets a kept response.
pub async fn delete(
    State(state): State<AppState>,
    Permitted(key): Permitted,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.retention.forget(&state.db, key.account_id, &id).await?;
    let body = serde_json::json!({"id": id, "object": "response", "deleted": true});
    Ok(pipeline::json_response(StatusCode::OK, Bytes::from(body.to_string())))
}

/// The request as chat, with the conversation it continues.
fn translate(
    config: &Config,
    request_id: &str,
    request: ResponsesRequest,
    previous: Option<&[u8]>,
) -> Result<Translated, Unsupported> {
    let ids = Ids {
        response_id: format!("resp_{}", request_id.trim_start_matches("req_")),
        created_at: tokenrouter_core::clock::now_unix(),
    };
    let options = Options { unsupported_tools: config.server.unsupported_tools };
    responses::translate(request, previous, ids, &options)
}

/// A request only native upstreams can serve: a translated one would be refused with
/// the translation's error.
fn native_only(bytes: Bytes, view: ChatView, refusal: Unsupported, keeper: Option<Keeper>) -> Inference {
    Inference {
        endpoint: "responses",
        body: bytes.clone(),
        view: Some(view.clone()),
        work: Work::Surface(Translation {
            surface: Err(refusal),
            native: Some(Native { api: NativeApi::Responses, body: bytes, view }),
            keeper,
        }),
        headers: Vec::new(),
        unseen_history: false,
    }
}

/// Whether some deployment of the model speaks the Responses API itself.
fn served_natively(config: &Config, model: &str) -> bool {
    config.model(model).is_some_and(|m| {
        m.deployments.iter().any(|d| d.provider.kind == ProviderKind::OpenAi && d.provider.responses_api)
    })
}
