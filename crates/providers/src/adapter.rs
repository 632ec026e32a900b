//! What a provider adapter is: pure, synchronous translation between the canonical
//! request/response (OpenAI Chat Completions) and one provider's wire format. Adapters
//! never touch the network; the server's `upstream` module sends what they encode.

use tokenrouter_core::Usage;
use tokenrouter_core::chat::ChatRequest;

use crate::embeddings::EmbeddingsRequest;

/// How the provider's API key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>`
    Bearer,
    /// The key alone in this header (`x-api-key`, `x-goog-api-key`).
    Header(&'static str),
}

/// A request ready to send: a path under the provider's base URL (with any query string),
/// extra headers (never the key) and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// What the adapter needs to know about the model beyond the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Target<'a> {
    /// The model name the provider knows.
    pub upstream_model: &'a str,
    /// Used when the request sets no output limit and the provider requires one.
    pub max_output_tokens: u64,
}

/// A request the provider cannot express: answered 400, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unsupported {
    pub param: String,
    pub message: String,
}

impl Unsupported {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Unsupported {
        Unsupported { param: param.into(), message: message.into() }
    }
}

/// How an upstream failed, and whether trying again (or elsewhere) may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UpstreamFailure {
    /// The HTTP status the upstream answered (0 for a body that could not be read).
    pub status: u16,
    /// Another attempt may succeed: rate limits, overload, server errors.
    pub retryable: bool,
    /// The request itself is at fault (the provider's 400 and the like): relay it.
    pub client_error: bool,
    pub message: String,
}

/// The facts a translated answer states that the upstream does not know: the id the
/// gateway gave the request and the model name the client asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseMeta {
    pub id: String,
    pub model: String,
    pub created: i64,
    /// The client asked for the final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// The client allows one tool call at most (`parallel_tool_calls: false`): an adapter
    /// whose provider cannot be told so keeps only the first call.
    pub one_tool_call: bool,
}

/// A whole non-streaming answer, translated.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// OpenAI JSON: a ChatCompletion, or from [`Adapter::decode_embeddings`] an embeddings list.
    pub body: Vec<u8>,
    pub usage: Option<Usage>,
}

pub trait Adapter: Sync {
    fn auth(&self) -> Auth;

    fn encode_request(&self, request: &ChatRequest, target: &Target<'_>, stream: bool) -> Result<Encoded, Unsupported>;

    fn decode_response(&self, body: &[u8], meta: &ResponseMeta) -> Result<Decoded, UpstreamFailure>;

    /// Classifies a non-2xx answer.
    fn decode_error(&self, status: u16, body: &[u8]) -> UpstreamFailure;

    fn stream_decoder(&self, meta: ResponseMeta) -> Box<dyn StreamDecoder>;

    /// An OpenAI embeddings request in the provider's shape; by default the provider has no
    /// embeddings API and the request is refused.
    fn encode_embeddings(&self, _request: &EmbeddingsRequest, _target: &Target<'_>) -> Result<Encoded, Unsupported> {
        Err(Unsupported::new("model", NO_EMBEDDINGS))
    }

    /// The provider's embeddings answer as OpenAI's (`model`: the name the client asked
    /// for), with the usage it is billed for.
    fn decode_embeddings(
        &self,
        _body: &[u8],
        _request: &EmbeddingsRequest,
        _model: &str,
    ) -> Result<Decoded, UpstreamFailure> {
        Err(UpstreamFailure { status: 0, retryable: false, client_error: false, message: NO_EMBEDDINGS.to_owned() })
    }
}

const NO_EMBEDDINGS: &str = "This provider has no embeddings API.";

/// Transcodes a provider's stream into OpenAI `chat.completion.chunk` SSE events, event by
/// event. Bytes may arrive split at any boundary.
pub trait StreamDecoder: Send {
    /// Consumes upstream bytes; appends whole OpenAI SSE events (`data: {...}\n\n`) to `out`.
    /// An in-stream error event from the provider is an `Err`.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), UpstreamFailure>;

    /// The upstream closed the stream. Appends what remains — the final chunk with
    /// `finish_reason`, the usage chunk when asked for, and `data: [DONE]` — or fails if
    /// the stream ended before the provider said it was complete.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), UpstreamFailure>;

    /// The usage reported so far (input tokens often arrive first, output at the end).
    fn usage(&self) -> Option<Usage>;

    /// Chunks carrying generated content emitted so far: a token count for billing when
    /// the provider never reports usage.
    fn delivered_chunks(&self) -> u64;
}
