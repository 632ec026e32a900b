//! The Gemini API adapter (`generateContent`, v1beta): canonical chat requests out to
//! Gemini, its answers, streams and errors back as OpenAI Chat Completions.
//!
//! Mapping choices worth knowing:
//! - system and developer messages become `systemInstruction`; tool results become
//!   user-role `functionResponse` parts, consecutive ones sharing one turn;
//! - tool parameters and `json_schema` response formats are sent as full JSON Schema
//!   (`parametersJsonSchema`, `responseJsonSchema`);
//! - `reasoning_effort` sets `thinkingConfig.thinkingBudget` and asks for thought summaries,
//!   which come back as `reasoning_content`;
//! - thought signatures come back as `thinking_blocks` entries
//!   `{"type": "gemini_thought_signature", "signature": ...}`: for an answer with tool calls
//!   entry k belongs to call k (an entry without signature stands for an unsigned call),
//!   otherwise to the text; sent back, they are re-attached to the same parts;
//! - tool-call ids are Gemini's own when it gives one, else `call_<choice>_<k>`;
//! - embeddings: one text goes to `:embedContent`, several to `:batchEmbedContents`; token
//!   inputs are refused (Gemini embeds text only).

mod embeddings;
mod options;
mod request;
pub(crate) mod response;
mod stream;
pub(crate) mod wire;

use tokenrouter_core::chat::ChatRequest;

use crate::adapter::{
    Adapter, Auth, Decoded, Encoded, ResponseMeta, StreamDecoder, Target, Unsupported, UpstreamFailure,
};
use crate::embeddings::EmbeddingsRequest;

/// The `thinking_blocks` type that carries a Gemini thought signature.
pub const SIGNATURE_BLOCK: &str = "gemini_thought_signature";

const USER_ROLE: &str = "user";
const MODEL_ROLE: &str = "model";

/// The Gemini adapter. Its base URL ends in `/v1beta`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gemini;

pub static GEMINI: Gemini = Gemini;

impl Adapter for Gemini {
    fn auth(&self) -> Auth {
        Auth::Header("x-goog-api-key")
    }

    fn encode_request(&self, request: &ChatRequest, target: &Target<'_>, stream: bool) -> Result<Encoded, Unsupported> {
        request::encode(request, target, stream)
    }

    fn decode_response(&self, body: &[u8], meta: &ResponseMeta) -> Result<Decoded, UpstreamFailure> {
        response::decode(body, meta)
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> UpstreamFailure {
        response::decode_error(status, body)
    }

    fn stream_decoder(&self, meta: ResponseMeta) -> Box<dyn StreamDecoder> {
        Box::new(stream::GeminiStream::new(meta))
    }

    fn encode_embeddings(&self, request: &EmbeddingsRequest, target: &Target<'_>) -> Result<Encoded, Unsupported> {
        embeddings::encode(request, target)
    }

    fn decode_embeddings(
        &self,
        body: &[u8],
        request: &EmbeddingsRequest,
        model: &str,
    ) -> Result<Decoded, UpstreamFailure> {
        embeddings::decode(body, request, model)
    }
}
