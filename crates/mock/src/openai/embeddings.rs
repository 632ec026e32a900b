//! The embeddings API, `POST /v1/embeddings`: one deterministic unit-length vector per
//! `input` (string, strings, token arrays), 1536 components (3072 for a model whose name
//! contains `large`, or `dimensions`), as floats or base64, with the input's token usage.

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::{TextInput, invalid_request, not_json, text_inputs, to_json};
use crate::embedding::{MAX_DIMENSIONS, to_base64, vector};
use crate::server::Answer;

/// The model reported when the request names none.
const DEFAULT_MODEL: &str = "text-embedding-3-small";

/// `POST /v1/embeddings`; `model` is the model name without its knobs.
pub(crate) fn embeddings(body: Option<&Value>, model: Option<&str>) -> Answer {
    let Some(body) = body.filter(|b| b.is_object()) else {
        return not_json();
    };
    let Some(input) = body.get("input") else {
        return invalid_request("Missing required parameter: 'input'.");
    };
    let inputs = match text_inputs(input) {
        Some(inputs) if inputs.iter().all(|i| !i.text.is_empty()) => inputs,
        _ => {
            return invalid_request(
                "'$.input' is invalid: expected a non-empty string, array of non-empty strings, \
                 array of tokens or array of token arrays.",
            );
        }
    };
    let model = model.unwrap_or(DEFAULT_MODEL);
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => {
            if model.contains("large") {
                3072
            } else {
                1536
            }
        }
        Some(value) => match value.as_u64().filter(|d| (1..=MAX_DIMENSIONS).contains(d)) {
            Some(d) => d,
            None => {
                return invalid_request(format!(
                    "Invalid 'dimensions': expected an integer between 1 and {MAX_DIMENSIONS}."
                ));
            }
        },
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return invalid_request(format!(
                "Invalid value for 'encoding_format': {other:?}. Supported values are: 'float' and 'base64'."
            ));
        }
    };

    let data: Vec<Embedding> = inputs
        .iter()
        .enumerate()
        .map(|(index, TextInput { text, .. })| {
            let values = vector(text, usize::try_from(dimensions).unwrap_or(1536));
            let embedding = if base64 { Encoded::Base64(to_base64(&values)) } else { Encoded::Float(values) };
            Embedding { object: "embedding", index, embedding }
        })
        .collect();
    let tokens = inputs.iter().map(|i| i.tokens).sum();
    let list = List { object: "list", data, model, usage: Usage { prompt_tokens: tokens, total_tokens: tokens } };
    Answer::Json { status: StatusCode::OK, body: to_json(&list), tokens: 0 }
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Encoded,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Encoded {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}
