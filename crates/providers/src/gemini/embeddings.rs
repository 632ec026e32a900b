//! Embeddings through Gemini: one text to `models/{model}:embedContent`, several to
//! `:batchEmbedContents` (one request per text, answered in the same order), and Gemini's
//! vectors back as OpenAI's answer. Gemini embeds text only.

use serde::{Deserialize, Serialize};
use tokenrouter_core::Usage;

use super::response::{api_failure, unreadable};
use super::wire::ApiError;
use crate::adapter::{Decoded, Encoded, Target, Unsupported, UpstreamFailure};
use crate::embeddings::{EmbeddingsRequest, estimate_input_tokens, openai_answer};

/// `embedContent` body, and one entry of `batchEmbedContents`' `requests`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedContentRequest<'a> {
    /// `models/{model}`: required in a batch entry (the path names it for a single one).
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    content: TextContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u32>,
}

#[derive(Serialize)]
struct TextContent<'a> {
    parts: [TextPart<'a>; 1],
}

#[derive(Serialize)]
struct TextPart<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct BatchEmbedContentsRequest<'a> {
    requests: Vec<EmbedContentRequest<'a>>,
}

/// `embedContent` answers `embedding`, `batchEmbedContents` answers `embeddings`; newer
/// answers add `usageMetadata`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmbedResponse {
    #[serde(default)]
    embedding: Option<ContentEmbedding>,
    #[serde(default)]
    embeddings: Option<Vec<ContentEmbedding>>,
    #[serde(default)]
    usage_metadata: Option<EmbeddingUsageMetadata>,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ContentEmbedding {
    #[serde(default)]
    values: Vec<f32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmbeddingUsageMetadata {
    #[serde(default)]
    prompt_token_count: Option<u64>,
}

pub(crate) fn encode(request: &EmbeddingsRequest, target: &Target<'_>) -> Result<Encoded, Unsupported> {
    let Some(texts) = request.input.texts() else {
        return Err(Unsupported::new("input", "Gemini embedding models take text only: send strings, not tokens."));
    };
    let model = target.upstream_model.strip_prefix("models/").unwrap_or(target.upstream_model);
    let entry = |text, model| EmbedContentRequest {
        model,
        content: TextContent { parts: [TextPart { text }] },
        output_dimensionality: request.dimensions,
    };
    let (path, body) = match texts.as_slice() {
        [text] => (format!("/models/{model}:embedContent"), serde_json::to_vec(&entry(text, None))),
        _ => {
            let name = format!("models/{model}");
            let requests = texts.iter().map(|text| entry(text, Some(name.as_str()))).collect();
            (format!("/models/{model}:batchEmbedContents"), serde_json::to_vec(&BatchEmbedContentsRequest { requests }))
        }
    };
    let body = body.map_err(|e| Unsupported::new("input", format!("Cannot encode the request: {e}")))?;
    Ok(Encoded { path, headers: Vec::new(), body })
}

pub(crate) fn decode(body: &[u8], request: &EmbeddingsRequest, model: &str) -> Result<Decoded, UpstreamFailure> {
    let response: EmbedResponse = serde_json::from_slice(body).map_err(|e| unreadable("embeddings answer", &e))?;
    if let Some(error) = response.error {
        return Err(api_failure(200, error));
    }
    let vectors: Vec<Vec<f32>> = match (response.embedding, response.embeddings) {
        (Some(one), _) => vec![one.values],
        (None, Some(many)) => many.into_iter().map(|e| e.values).collect(),
        (None, None) => Vec::new(),
    };
    if vectors.len() != request.input_count() {
        return Err(UpstreamFailure {
            status: 200,
            retryable: false,
            client_error: false,
            message: format!("Gemini returned {} embeddings for {} inputs.", vectors.len(), request.input_count()),
        });
    }
    let prompt_tokens =
        response.usage_metadata.and_then(|u| u.prompt_token_count).unwrap_or_else(|| estimate_input_tokens(request));
    let body = openai_answer(&vectors, model, request.encoding(), prompt_tokens);
    Ok(Decoded { body, usage: Some(Usage { prompt_tokens, ..Usage::default() }) })
}
