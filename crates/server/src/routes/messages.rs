//! `POST /v1/messages` (Anthropic's Messages API, what Claude Code speaks) to any
//! provider, and `POST /v1/messages/count_tokens`. Errors on these routes take
//! Anthropic's shape.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tokenrouter_providers::messages::{self, Ids};
use tokenrouter_providers::openai::ChatView;
use tokenrouter_store::KeyRow;

use crate::config::{Config, ProviderKind};
use crate::edge::{RequestId, expect_json_object, read_body};
use crate::error::ApiError;
use crate::pipeline::{self, Inference, Native, NativeApi, Translation, Work, json_response};
use crate::policy::Permitted;
use crate::state::AppState;
use crate::tokens;

pub async fn create(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Permitted(key): Permitted,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let inference = inference(&state, &request_id, &headers, body).await;
    pipeline::run(&state, "messages", request_id, key, &headers, inference).await
}

async fn inference(state: &AppState, request_id: &str, headers: &HeaderMap, body: Body) -> Result<Inference, ApiError> {
    let config = state.config.load_full();
    let bytes = read_body(body, headers, config.server.max_body_bytes).await?;
    expect_json_object(&bytes)?;
    let request = messages::parse(&bytes).map_err(ApiError::unsupported)?;
    let native_view = ChatView {
        model: request.model().to_owned(),
        stream: request.stream(),
        include_usage: true,
        max_tokens: request.max_tokens(),
    };
    // Anthropic's server tools run only at Anthropic: an Anthropic upstream is sent the
    // client's own body (checked, and held for the calls it may bill) when it offers one
    // billed per call; every other upstream gets the translation, without them.
    // A body the gateway will not forward as it is (a field or a cache lifetime that could
    // change what Anthropic bills) goes the translated way, like to any other upstream.
    let forwarded = (messages::native::offers_priced_server_tools(&bytes)
        && served_by_anthropic(&config, &native_view.model))
    .then(|| messages::native::forwarded(&bytes).ok())
    .flatten();
    let native = forwarded.map(|forwarded| {
        Box::new(Native {
            api: NativeApi::Messages,
            hosted: messages::native::hosted_ceiling(&forwarded.body),
            body: Bytes::from(forwarded.body),
            view: native_view.clone(),
            headers: beta(headers),
            answer_headers: pipeline::dropped_tools(&forwarded.dropped),
        })
    });
    let ids = Ids { message_id: format!("msg_{}", request_id.trim_start_matches("req_")) };
    let translated = match messages::translate(request, ids) {
        Ok(translated) => translated,
        // Only Anthropic can take what names a server tool (a `tool_choice` of one).
        Err(refusal) if native.is_some() => {
            return Ok(Inference {
                endpoint: "messages",
                body: bytes,
                view: Some(native_view),
                work: Work::Surface(Translation { surface: Err(refusal), native, keeper: None }),
                headers: Vec::new(),
                unseen_history: false,
            });
        }
        Err(refusal) => return Err(ApiError::unsupported(refusal)),
    };
    let (body, view) = pipeline::canonical(&translated.chat, &bytes)?;
    let answer_headers = pipeline::dropped_tools(&translated.dropped_tools);
    Ok(Inference {
        endpoint: "messages",
        body,
        view: Some(view),
        work: Work::Surface(Translation { surface: Ok(Arc::new(translated.surface)), native, keeper: None }),
        headers: answer_headers,
        unseen_history: false,
    })
}

/// Whether some deployment of the model is an Anthropic upstream.
fn served_by_anthropic(config: &Config, model: &str) -> bool {
    config.model(model).is_some_and(|m| m.deployments.iter().any(|d| d.provider.kind == ProviderKind::Anthropic))
}

/// The `anthropic-beta` values passed on to an Anthropic upstream that is sent the client's
/// own body: those its server tools billed per call need (web fetch). Others may change
/// what Anthropic bills or reach the operator's resources (fast mode, a 1M context, the
/// Files API, …): left out, as clients send many (Claude Code a long list on every request).
const FORWARDED_BETAS: &[&str] = &["web-fetch-2025-09-10"];

/// The client's `anthropic-beta` values (every header line, comma-separated) that are
/// among [`FORWARDED_BETAS`].
fn beta(headers: &HeaderMap) -> Vec<(&'static str, String)> {
    let values: Vec<&str> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(',').map(str::trim))
        .filter(|value| FORWARDED_BETAS.contains(value))
        .collect();
    (!values.is_empty()).then(|| ("anthropic-beta", values.join(","))).into_iter().collect()
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as the gateway counts them
/// (o200k_base over the translated request), for a model this key may use. It counts as
/// one request toward the key's RPM (it uses no tokens), like every inference route, and
/// answers with the same `x-ratelimit-*` headers.
pub async fn count_tokens(
    State(state): State<AppState>,
    Permitted(key): Permitted,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut response = match count(&state, &key, &headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    state.limits.stamp(&key, response.headers_mut(), Instant::now());
    response
}

async fn count(state: &AppState, key: &KeyRow, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let config = state.config.load_full();
    let bytes = read_body(body, headers, config.server.max_body_bytes).await?;
    expect_json_object(&bytes)?;
    let chat = messages::count_tokens_request(&bytes).map_err(ApiError::unsupported)?;
    // The catalog as this key sees it: for a `community: false` key a model only
    // instances serve is unknown, as on every inference route.
    state.catalog().allowed_model(key, &chat.model)?;
    // Nothing to settle: the admission's estimate (no tokens) stands.
    let _admission = state.limits.admit(key, 0, Instant::now()).await?;
    let canonical = serde_json::to_vec(&chat).map_err(|e| ApiError::invalid(format!("{e}")))?;
    let count = tokens::count_prompt(&canonical);
    Ok(json_response(StatusCode::OK, Bytes::from(json!({ "input_tokens": count }).to_string())))
}

/// Restates an OpenAI-shaped error answer in Anthropic's shape.
pub async fn anthropic_errors(request: Request, next: Next) -> Response {
    super::restated::restate_error(next.run(request).await, messages::error_body).await
}
