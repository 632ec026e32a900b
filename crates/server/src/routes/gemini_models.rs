//! `GET /v1beta/models` and `GET /v1beta/models/{model}`: the models this key may use that
//! have a live deployment (as `/v1/models` lists them), in Gemini's shape, paged by
//! `pageSize` and `pageToken`.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::{HeaderMap, Method};
use serde::Serialize;

use super::gemini::query_param;
use crate::config::Model;
use crate::error::ApiError;
use crate::pipeline::json_response;
use crate::policy::{Permitted, model_allowed};
use crate::state::AppState;

/// Google's default and largest page.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiModel<'a> {
    name: String,
    base_model_id: &'a str,
    version: &'static str,
    display_name: &'a str,
    input_token_limit: u64,
    output_token_limit: u64,
    supported_generation_methods: &'static [&'static str],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    thinking: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelList<'a> {
    models: Vec<GeminiModel<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

const CHAT: &[&str] = &["generateContent", "streamGenerateContent", "countTokens"];
const EMBEDDINGS: &[&str] = &["embedContent", "batchEmbedContents"];

fn entry(model: &Model) -> GeminiModel<'_> {
    let has = |c: &str| model.capabilities.iter().any(|m| m == c);
    GeminiModel {
        name: format!("models/{}", model.id),
        base_model_id: &model.id,
        version: "001",
        display_name: &model.id,
        input_token_limit: model.context_window,
        output_token_limit: if has("embeddings") { 1 } else { model.max_output_tokens },
        supported_generation_methods: if has("embeddings") { EMBEDDINGS } else { CHAT },
        thinking: has("reasoning"),
    }
}

pub async fn list_models(
    State(state): State<AppState>,
    Permitted(key): Permitted,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = query.as_deref();
    let size = match query_param(query, "pageSize") {
        None | Some("" | "0") => DEFAULT_PAGE,
        Some(text) => {
            text.parse::<usize>().map_err(|_| ApiError::invalid_param("pageSize must be a number.", "pageSize"))?
        }
    }
    .min(MAX_PAGE);
    let start = match query_param(query, "pageToken") {
        None | Some("") => 0,
        Some(token) => {
            token.parse::<usize>().map_err(|_| ApiError::invalid_param("Invalid pageToken.", "pageToken"))?
        }
    };
    let catalog = state.catalog();
    let live: Vec<&Model> = catalog
        .models(key.community)
        .filter(|m| model_allowed(&key, &m.id) && m.live_deployments().next().is_some())
        .map(|m| m.as_ref())
        .collect();
    let models = live.iter().skip(start).take(size).map(|m| entry(m)).collect();
    let next = start.saturating_add(size);
    let next_page_token = (next < live.len()).then(|| next.to_string());
    let body = serde_json::to_vec(&ModelList { models, next_page_token }).unwrap_or_default();
    Ok(json_response(StatusCode::OK, Bytes::from(body)))
}

pub async fn get_model(
    State(state): State<AppState>,
    Permitted(key): Permitted,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let id = model.strip_prefix("models/").unwrap_or(&model);
    let catalog = state.catalog();
    let model = catalog.allowed_model(&key, id)?;
    if model.live_deployments().next().is_none() {
        return Err(ApiError::ModelNotFound(id.to_owned()));
    }
    let body = serde_json::to_vec(&entry(model)).unwrap_or_default();
    Ok(json_response(StatusCode::OK, Bytes::from(body)).into_response())
}

/// `GET /v1/models`: Gemini's list for Google's clients, OpenAI's for the others.
pub async fn v1_list_models(
    State(state): State<AppState>,
    Permitted(key): Permitted,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if super::gemini::speaks_gemini(&Method::GET, "/v1/models", &headers, query.as_deref()) {
        return list_models(State(state), Permitted(key), RawQuery(query)).await.into_response();
    }
    super::models::list(State(state), Permitted(key)).await
}

/// `GET /v1/models/{model}`: Gemini's model for Google's clients, OpenAI's for others.
pub async fn v1_get_model(
    State(state): State<AppState>,
    Permitted(key): Permitted,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    Path(model): Path<String>,
) -> Response {
    if super::gemini::speaks_gemini(&Method::GET, "/v1/models", &headers, query.as_deref()) {
        return get_model(State(state), Permitted(key), Path(model)).await.into_response();
    }
    super::models::retrieve(state, &key, &model).await
}
