//! The Gemini API (v1beta, what the `google-genai` SDKs speak) to any provider:
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent` (SSE with
//! `?alt=sse`, else a streamed JSON array), `:countTokens`, `:embedContent`,
//! `:batchEmbedContents`, and `GET /v1beta/models[/{model}]`. Errors on these routes take
//! Google's shape.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;
use tokenrouter_providers::embeddings;
use tokenrouter_providers::generate_content::{self, Call, EmbedKind, StreamForm};
use tokenrouter_providers::openai::ChatView;

use crate::edge::{RequestId, expect_json_object, read_body};
use crate::error::ApiError;
use crate::pipeline::{self, Inference, Translation, Work, json_response};
use crate::policy::Permitted;
use crate::state::AppState;
use crate::tokens;

pub use super::gemini_models::{get_model, list_models, v1_get_model, v1_list_models};

/// The most an embeddings answer restated here may hold.
const MAX_EMBEDDINGS_ANSWER: usize = 256 * 1024 * 1024;

/// `POST /v1beta/models/{model}:{action}`: the segment is captured whole (axum cannot
/// route on `:` inside one) and split at its last `:`.
pub async fn action(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Permitted(key): Permitted,
    Path(model_action): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some((model, action)) = model_action.rsplit_once(':') else {
        return unknown(&model_action);
    };
    let model = model.strip_prefix("models/").unwrap_or(model).to_owned();
    let sse = query_param(query.as_deref(), "alt").is_some_and(|alt| alt.eq_ignore_ascii_case("sse"));
    match action {
        "generateContent" | "streamGenerateContent" => {
            let stream =
                (action == "streamGenerateContent").then_some(if sse { StreamForm::Sse } else { StreamForm::Array });
            let inference = generate(&state, &request_id, &model, stream, &headers, body).await;
            let mut response = pipeline::run(&state, "gemini", request_id, key, &headers, inference).await;
            if stream == Some(StreamForm::Array) && response.status().is_success() {
                response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            response
        }
        "countTokens" => {
            let mut response =
                count_tokens(&state, &key, &model, &headers, body).await.unwrap_or_else(IntoResponse::into_response);
            state.limits.stamp(&key, response.headers_mut(), std::time::Instant::now());
            response
        }
        "embedContent" | "batchEmbedContents" => {
            let kind = if action == "embedContent" { EmbedKind::One } else { EmbedKind::Batch };
            let inference = embed(&state, &model, kind, &headers, body).await;
            let response = pipeline::run(&state, "gemini.embeddings", request_id, key, &headers, inference).await;
            restate_embeddings(response, kind).await
        }
        _ => unknown(&model_action),
    }
}

fn unknown(model_action: &str) -> Response {
    ApiError::UnknownRoute { method: Method::POST.to_string(), path: format!("/models/{model_action}") }.into_response()
}

/// A query parameter's value (keys and secrets here are URL-safe: no decoding needed
/// beyond `+`-free percent escapes, which none of ours have).
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

async fn generate(
    state: &AppState,
    request_id: &str,
    model: &str,
    stream: Option<StreamForm>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Inference, ApiError> {
    let config = state.config.load_full();
    let bytes = read_body(body, headers, config.server.max_body_bytes).await?;
    expect_json_object(&bytes)?;
    let call = Call {
        model,
        response_id: request_id.trim_start_matches("req_").to_owned(),
        stream,
        unsupported_tools: config.server.unsupported_tools,
    };
    let translated = generate_content::translate(&bytes, call).map_err(ApiError::unsupported)?;
    let (body, view) = pipeline::canonical(&translated.chat, &bytes)?;
    Ok(Inference {
        endpoint: "gemini",
        body,
        view: Some(view),
        work: Work::Surface(Translation { surface: Ok(Arc::new(translated.surface)), native: None, keeper: None }),
        headers: pipeline::dropped_tools(&translated.dropped_tools),
        unseen_history: false,
    })
}

/// `:countTokens`: the prompt's tokens as the gateway counts them (o200k_base over the
/// translated request), for a model this key may use.
async fn count_tokens(
    state: &AppState,
    key: &tokenrouter_store::KeyRow,
    model: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let config = state.config.load_full();
    let bytes = read_body(body, headers, config.server.max_body_bytes).await?;
    expect_json_object(&bytes)?;
    let chat = generate_content::count_tokens_request(&bytes, model).map_err(ApiError::unsupported)?;
    state.catalog().allowed_model(key, &chat.model)?;
    // One request toward the key's RPM (no tokens), as on Anthropic's count_tokens.
    let _admission = state.limits.admit(key, 0, std::time::Instant::now()).await?;
    let canonical = serde_json::to_vec(&chat).map_err(|e| ApiError::invalid(format!("{e}")))?;
    let count = tokens::count_prompt(&canonical);
    let answer = json!({"totalTokens": count, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": count}]});
    Ok(json_response(StatusCode::OK, Bytes::from(answer.to_string())))
}

async fn embed(
    state: &AppState,
    model: &str,
    kind: EmbedKind,
    headers: &HeaderMap,
    body: Body,
) -> Result<Inference, ApiError> {
    let limit = state.config.load().server.max_body_bytes;
    let bytes = read_body(body, headers, limit).await?;
    expect_json_object(&bytes)?;
    let openai = generate_content::embed_request(&bytes, model, kind).map_err(ApiError::unsupported)?;
    let request = embeddings::parse(&openai).map_err(ApiError::unsupported)?;
    let view = ChatView { model: request.model.clone(), stream: false, include_usage: false, max_tokens: Some(0) };
    Ok(Inference {
        endpoint: "gemini.embeddings",
        body: Bytes::from(openai),
        view: Some(view),
        work: Work::Embeddings(Box::new(request)),
        headers: Vec::new(),
        unseen_history: false,
    })
}

/// The embeddings answer (OpenAI's shape from the pipeline) in Gemini's.
async fn restate_embeddings(response: Response, kind: EmbedKind) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let restated = match http_body_util::Limited::new(body, MAX_EMBEDDINGS_ANSWER).collect().await {
        Ok(collected) => generate_content::embed_answer(&collected.to_bytes(), kind),
        Err(_) => None,
    };
    let Some(restated) = restated else {
        return ApiError::UpstreamUnavailable("The provider's embeddings could not be read.".to_owned())
            .into_response();
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(restated))
}

/// Whether a request speaks the Gemini API: a `/v1beta` path, a `POST` to
/// `/v1/models/{model}:{action}`, or a Google client on `/v1/models` (its
/// `x-goog-api-key` or `x-goog-api-client` header, or `?key=`).
pub fn speaks_gemini(method: &Method, path: &str, headers: &HeaderMap, query: Option<&str>) -> bool {
    if path.starts_with("/v1beta/") || path == "/v1beta" {
        return true;
    }
    if !path.starts_with("/v1/models") {
        return false;
    }
    (method == Method::POST && path.starts_with("/v1/models/"))
        || headers.contains_key("x-goog-api-key")
        || headers.contains_key("x-goog-api-client")
        || query_param(query, "key").is_some()
}

/// Restates an OpenAI-shaped error answer in Google's shape (for Gemini clients).
pub async fn google_errors(request: Request, next: Next) -> Response {
    let google = speaks_gemini(request.method(), request.uri().path(), request.headers(), request.uri().query());
    let response = next.run(request).await;
    if !google {
        return response;
    }
    super::restated::restate_error(response, generate_content::error_body).await
}
