//! `:embedContent` and `:batchEmbedContents` as an OpenAI embeddings request (one input per
//! content, its text parts joined by lines), and the OpenAI answer back in Gemini's shape
//! (`{"embedding": {"values"}}`, or `{"embeddings": [...]}` in request order).

use serde::Deserialize;
use serde_json::{Value, json};

use super::read;
use crate::adapter::Unsupported;
use crate::gemini::wire::Content;

/// Which of the two routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedKind {
    One,
    Batch,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmbedContentRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default, alias = "output_dimensionality")]
    output_dimensionality: Option<u32>,
}

#[derive(Deserialize)]
struct BatchEmbedContentsRequest {
    #[serde(default)]
    requests: Vec<EmbedContentRequest>,
}

/// The OpenAI `/v1/embeddings` body for an embed request to `model` (as named in the path).
pub fn embed_request(body: &[u8], model: &str, kind: EmbedKind) -> Result<Vec<u8>, Unsupported> {
    let requests = match kind {
        EmbedKind::One => vec![read::<EmbedContentRequest>(body)?],
        EmbedKind::Batch => {
            let batch: BatchEmbedContentsRequest = read(body)?;
            if batch.requests.is_empty() {
                return Err(Unsupported::new("requests", "requests is empty: send at least one."));
            }
            batch.requests
        }
    };
    let mut inputs = Vec::with_capacity(requests.len());
    let mut dimensions = None;
    for (i, request) in requests.into_iter().enumerate() {
        let at = |field: &str| match kind {
            EmbedKind::One => field.to_owned(),
            EmbedKind::Batch => format!("requests[{i}].{field}"),
        };
        if let Some(named) = request.model.as_deref() {
            let named = named.strip_prefix("models/").unwrap_or(named);
            if kind == EmbedKind::Batch && named != model {
                return Err(Unsupported::new(
                    at("model"),
                    format!("Every request of a batch must name the model of the path ('{model}'), not '{named}'."),
                ));
            }
        }
        let content = request.content.ok_or_else(|| Unsupported::new(at("content"), "content is not specified."))?;
        let mut texts = Vec::with_capacity(content.parts.len());
        for (j, part) in content.parts.into_iter().enumerate() {
            match part.text {
                Some(text) => texts.push(text),
                None => {
                    return Err(Unsupported::new(
                        at(&format!("content.parts[{j}]")),
                        "Embeddings take text parts only.",
                    ));
                }
            }
        }
        inputs.push(texts.join("\n"));
        if let Some(d) = request.output_dimensionality {
            if dimensions.is_some_and(|seen| seen != d) {
                return Err(Unsupported::new(
                    at("outputDimensionality"),
                    "Every request of a batch must ask for the same outputDimensionality.",
                ));
            }
            dimensions = Some(d);
        }
    }
    let mut body = json!({"model": model, "input": inputs, "encoding_format": "float"});
    if let (Some(d), Some(object)) = (dimensions, body.as_object_mut()) {
        object.insert("dimensions".to_owned(), json!(d));
    }
    serde_json::to_vec(&body).map_err(|e| Unsupported::new("", format!("Cannot encode the request: {e}")))
}

/// An OpenAI embeddings answer restated as Gemini's; `None` if it is not one.
pub fn embed_answer(openai: &[u8], kind: EmbedKind) -> Option<Vec<u8>> {
    #[derive(Deserialize)]
    struct Answer {
        data: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        index: usize,
        embedding: Value,
    }
    let mut answer: Answer = serde_json::from_slice(openai).ok()?;
    answer.data.sort_by_key(|item| item.index);
    let mut vectors = answer.data.into_iter().map(|item| json!({"values": item.embedding}));
    let body = match kind {
        EmbedKind::One => json!({"embedding": vectors.next()?}),
        EmbedKind::Batch => json!({"embeddings": vectors.collect::<Vec<_>>()}),
    };
    serde_json::to_vec(&body).ok()
}
