//! `GET /v1/models` (and one of them, `GET /v1/models/{model}`): the OpenAI list of the models this key may use that have a live
//! deployment (an online community instance counts, for keys that may reach one), with
//! context window, output limit, prices and capabilities.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde::Serialize;
use serde_json::value::RawValue;
use tokenrouter_core::NanoUsd;

use tokenrouter_store::KeyRow;

use crate::config::Model;
use crate::error::ApiError;
use crate::policy::{Permitted, model_allowed};
use crate::state::AppState;

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    owned_by: &'a str,
    context_window: u64,
    max_output_tokens: u64,
    pricing: Pricing,
    capabilities: &'a [String],
}

/// USD per 1M tokens, written as exact decimal numbers.
#[derive(Serialize)]
struct Pricing {
    input: Box<RawValue>,
    cached_input: Box<RawValue>,
    output: Box<RawValue>,
}

fn usd_number(amount: NanoUsd) -> Box<RawValue> {
    tokenrouter_providers::passthrough::raw_from_vec(amount.to_usd_string().into_bytes())
}

pub async fn list(State(state): State<AppState>, Permitted(key): Permitted) -> Response {
    let catalog = state.catalog();
    let data = catalog.models(key.community).filter(|m| model_allowed(&key, &m.id)).filter_map(|m| entry(m)).collect();
    json(&ModelList { object: "list", data })
}

/// `GET /v1/models/{model}` (OpenAI's retrieve): one entry of the list, or 404
/// `model_not_found` for a model this key may not use or that nothing serves now.
pub async fn retrieve(state: AppState, key: &KeyRow, id: &str) -> Response {
    let catalog = state.catalog();
    let found =
        catalog.models(key.community).filter(|m| m.id == id && model_allowed(key, &m.id)).find_map(|m| entry(m));
    match found {
        Some(model) => json(&model),
        None => ApiError::ModelNotFound(id.to_owned()).into_response(),
    }
}

/// A model's entry, if a deployment serves it now.
fn entry(m: &Model) -> Option<ModelEntry<'_>> {
    let first = m.live_deployments().next()?;
    Some(ModelEntry {
        id: &m.id,
        object: "model",
        created: 0,
        owned_by: &first.provider.name,
        context_window: m.context_window,
        max_output_tokens: m.max_output_tokens,
        pricing: Pricing {
            input: usd_number(m.price.input),
            cached_input: usd_number(m.price.cached_input),
            output: usd_number(m.price.output),
        },
        capabilities: &m.capabilities,
    })
}

fn json(value: &impl Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
