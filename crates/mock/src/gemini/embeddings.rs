//! Gemini embeddings: `POST …:embedContent` (`{content, outputDimensionality?}` →
//! `{"embedding":{"values"}}`) and `…:batchEmbedContents` (`{requests:[…]}` →
//! `{"embeddings":[{"values"}]}`), deterministic unit-length vectors of the content's text,
//! 3072 components unless `outputDimensionality` (or `embedContentConfig`'s) says otherwise.

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::{content_text, field, to_json};
use crate::embedding::{MAX_DIMENSIONS, vector};
use crate::format::Format;
use crate::server::Answer;

/// The length of a vector when the request does not say (as `gemini-embedding-001`).
const DEFAULT_DIMENSIONS: u64 = 3072;

#[derive(Serialize)]
struct ContentEmbedding {
    values: Vec<f32>,
}

/// `…:embedContent`; `body` is `None` when the request was not JSON.
pub(super) fn embed(body: Option<&Value>) -> Answer {
    #[derive(Serialize)]
    struct Response {
        embedding: ContentEmbedding,
    }
    let Some(body) = body.filter(|b| b.is_object()) else {
        return not_json();
    };
    match embedding(body, "EmbedContentRequest") {
        Ok(embedding) => ok(&Response { embedding }),
        Err(message) => Format::Gemini.invalid_request(&message),
    }
}

/// `…:batchEmbedContents`: one embedding per request, in order.
pub(super) fn batch_embed(body: Option<&Value>) -> Answer {
    #[derive(Serialize)]
    struct Response {
        embeddings: Vec<ContentEmbedding>,
    }
    let Some(body) = body.filter(|b| b.is_object()) else {
        return not_json();
    };
    let Some(requests) = body.get("requests").and_then(Value::as_array).filter(|r| !r.is_empty()) else {
        return Format::Gemini
            .invalid_request("* BatchEmbedContentsRequest.requests: at least one request is required\n");
    };
    let embeddings: Result<Vec<ContentEmbedding>, String> = requests
        .iter()
        .enumerate()
        .map(|(i, request)| embedding(request, &format!("BatchEmbedContentsRequest.requests[{i}]")))
        .collect();
    match embeddings {
        Ok(embeddings) => ok(&Response { embeddings }),
        Err(message) => Format::Gemini.invalid_request(&message),
    }
}

/// The embedding one request asks for; `at` names the request in error messages.
fn embedding(request: &Value, at: &str) -> Result<ContentEmbedding, String> {
    let Some(content) = request.get("content").filter(|c| c.is_object()) else {
        return Err(format!("* {at}.content: content is not specified\n"));
    };
    let text = content_text(content);
    if text.trim().is_empty() {
        return Err(format!("* {at}.content: The text content is empty.\n"));
    }
    let config = field(request, "embedContentConfig", "embed_content_config").unwrap_or(&Value::Null);
    let requested = field(request, "outputDimensionality", "output_dimensionality")
        .or_else(|| field(config, "outputDimensionality", "output_dimensionality"))
        .filter(|d| !d.is_null());
    let dimensions = match requested {
        None => DEFAULT_DIMENSIONS,
        Some(value) => value.as_u64().filter(|d| (1..=MAX_DIMENSIONS).contains(d)).ok_or_else(|| {
            format!("* {at}.output_dimensionality: must be an integer between 1 and {MAX_DIMENSIONS}\n")
        })?,
    };
    let values = vector(&text, usize::try_from(dimensions).unwrap_or(usize::MAX));
    Ok(ContentEmbedding { values })
}

fn not_json() -> Answer {
    Format::Gemini.invalid_request("Invalid JSON payload received. Expected a JSON object.")
}

fn ok(response: &impl Serialize) -> Answer {
    Answer::Json { status: StatusCode::OK, body: to_json(response), tokens: 0 }
}
