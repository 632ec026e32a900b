//! The Anthropic Messages API adapter: `POST /v1/messages` with `x-api-key`, translated
//! to and from the canonical OpenAI Chat Completions shapes.

mod messages;
mod request;
mod response;
mod stream;
pub mod wire;

use tokenrouter_core::chat::{ChatRequest, PromptTokensDetails, UsageJson};
use tokenrouter_core::{HostedCalls, Usage};

use crate::adapter::{
    Adapter, Auth, Decoded, Encoded, ResponseMeta, StreamDecoder, Target, Unsupported, UpstreamFailure,
};
pub(crate) use crate::passthrough::compact_json;

/// The `anthropic-version` this adapter speaks.
pub const API_VERSION: &str = "2023-06-01";

/// The name of the tool a `response_format` is turned into starts with this; its input is
/// the answer's content. (The response alone must tell it apart from the client's tools.)
pub const JSON_TOOL_PREFIX: &str = "json_response__";

/// The Anthropic Messages adapter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anthropic;

/// The one Anthropic adapter.
pub static ANTHROPIC: Anthropic = Anthropic;

impl Adapter for Anthropic {
    fn auth(&self) -> Auth {
        Auth::Header("x-api-key")
    }

    fn encode_request(&self, request: &ChatRequest, target: &Target<'_>, stream: bool) -> Result<Encoded, Unsupported> {
        let body = request::encode(request, target, stream)?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| Unsupported::new("messages", format!("Cannot encode request: {e}")))?;
        Ok(Encoded { path: "/messages".to_owned(), headers: vec![("anthropic-version", API_VERSION.to_owned())], body })
    }

    fn decode_response(&self, body: &[u8], meta: &ResponseMeta) -> Result<Decoded, UpstreamFailure> {
        response::decode(body, meta)
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> UpstreamFailure {
        response::decode_error(status, body)
    }

    fn stream_decoder(&self, meta: ResponseMeta) -> Box<dyn StreamDecoder> {
        Box::new(stream::Decoder::new(meta))
    }
}

/// Whether a tool name is the one a `response_format` became.
fn is_json_tool(name: &str) -> bool {
    name.starts_with(JSON_TOOL_PREFIX)
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
fn finish_reason(stop_reason: Option<&str>, called_tools: bool) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") if called_tools => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// The stop sequence that ended the answer: Anthropic names it with `stop_reason:
/// "stop_sequence"`.
fn matched_sequence(stop_reason: Option<&str>, stop_sequence: Option<String>) -> Option<String> {
    stop_sequence.filter(|_| stop_reason == Some("stop_sequence"))
}

/// The canonical usage: cache reads and writes are prompt tokens too, and cache writes
/// (`cache_creation_input_tokens`) are counted apart to be priced as such.
pub(crate) fn usage_of(wire: &wire::Usage) -> Usage {
    let cache_read = wire.cache_read_input_tokens.unwrap_or(0);
    Usage {
        prompt_tokens: wire
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cache_read)
            .saturating_add(wire.cache_creation_input_tokens.unwrap_or(0)),
        completion_tokens: wire.output_tokens.unwrap_or(0),
        cached_tokens: cache_read,
        cache_write_tokens: wire.cache_creation_input_tokens.unwrap_or(0),
        reasoning_tokens: wire.output_tokens_details.map_or(0, |d| d.thinking_tokens),
        hosted: wire.server_tool_use.map_or_else(HostedCalls::default, |s| HostedCalls {
            web_search: s.web_search_requests,
            web_fetch: s.web_fetch_requests,
        }),
    }
}

/// OpenAI's usage object, with the cache writes Anthropic reports.
fn usage_json(wire: &wire::Usage) -> UsageJson {
    let mut json = UsageJson::from(usage_of(wire));
    json.prompt_tokens_details = PromptTokensDetails {
        cached_tokens: json.prompt_tokens_details.cached_tokens,
        cache_creation_tokens: wire.cache_creation_input_tokens,
    };
    json
}
