//! The Anthropic Messages API as an inbound surface (`POST /v1/messages`, what Claude Code
//! and the anthropic SDKs send): the request as the canonical chat request, the chat answer
//! — whole or streamed — as Anthropic's `Message` and stream events, errors in Anthropic's
//! shape, and the request `count_tokens` estimates.
//!
//! Mapping choices worth knowing:
//! - `system` (string or blocks, `cache_control` dropped) leads as one system message;
//!   Claude Code's `role: "system"` entries stay where they are in the conversation;
//! - each `tool_result` is a `tool` message ahead of the rest of its user turn (`is_error`
//!   prefixes its text with `Error: `; its images join the user turn);
//! - assistant `thinking` / `redacted_thinking` blocks become `thinking_blocks` (signatures
//!   kept, so an Anthropic upstream can verify them) and `reasoning_content`;
//! - thinking: a budget maps back onto the efforts the Anthropic adapter sends (below 4096
//!   `low`, below 16384 `medium`, else `high`); adaptive thinking follows
//!   `output_config.effort` (`medium` when unsaid); `output_config.format` becomes
//!   `response_format`;
//! - Anthropic's server tools (`web_search_…`, `bash_…`, …) cannot run elsewhere: they are
//!   left out and named in [`Translated::dropped_tools`] (an Anthropic upstream is sent the
//!   client's own body instead: [`native`]);
//! - reasoning blocks of other providers (Gemini's thought signatures) are handed to the
//!   client as `redacted_thinking` blocks whose `data` carries them, and read back.

mod conversation;
pub mod native;
mod options;
mod request;
mod response;
mod stream;

use tokenrouter_core::chat::{ChatCompletion, ChatRequest, Stop, StreamOptions, ThinkingBlock};
use tokenrouter_core::{ErrorEnvelope, Usage};

pub use self::request::MessagesRequest;
use crate::adapter::Unsupported;
use crate::surface::{Surface, SurfaceStream};

/// The ids the gateway gives the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// `msg_…`
    pub message_id: String,
}

/// A Messages request as the canonical chat request, and how to state its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub chat: ChatRequest,
    pub surface: MessagesSurface,
    /// The server tools the request offered, which no chat upstream can run (left out).
    pub dropped_tools: Vec<String>,
}

/// Reads a `/v1/messages` body. A field of the wrong type is refused naming its path
/// (`messages.2.content`); `model`, `messages` and `max_tokens` are required.
pub fn parse(body: &[u8]) -> Result<MessagesRequest, Unsupported> {
    let request = request::read(body)?;
    if request.max_tokens.is_none() {
        return Err(Unsupported::new("max_tokens", "max_tokens: Field required"));
    }
    Ok(request)
}

/// The request as the canonical chat request. What a chat upstream cannot be asked for
/// (prompt caching, context management, `top_k`, service tiers…) is left out, so that any
/// upstream accepts it: `chat.extra` stays empty.
pub fn translate(request: MessagesRequest, ids: Ids) -> Result<Translated, Unsupported> {
    let model = request.model.unwrap_or_default();
    let messages = conversation::convert(request.system, request.messages.unwrap_or_default())?;
    let (tools, dropped_tools) = options::tools(request.tools.unwrap_or_default())?;
    let (tool_choice, parallel_tool_calls) = options::tool_choice(request.tool_choice, &tools, &dropped_tools)?;
    let output_config = request.output_config.unwrap_or_default();
    let reasoning_effort = options::reasoning_effort(request.thinking.as_ref(), Some(&output_config));
    let response_format = options::response_format(output_config.format.or(request.output_format))?;
    let stream = request.stream == Some(true);
    let chat = ChatRequest {
        model: model.clone(),
        messages,
        stream: stream.then_some(true),
        stream_options: stream.then_some(StreamOptions { include_usage: Some(true) }),
        max_tokens: request.max_tokens,
        max_completion_tokens: None,
        temperature: request.temperature,
        top_p: request.top_p,
        n: None,
        stop: request.stop_sequences.filter(|s| !s.is_empty()).map(Stop::Many),
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        parallel_tool_calls,
        response_format,
        reasoning_effort,
        seed: None,
        user: request.metadata.and_then(|m| m.user_id),
        extra: Default::default(),
    };
    Ok(Translated { chat, surface: MessagesSurface { message_id: ids.message_id, model }, dropped_tools })
}

/// `POST /v1/messages/count_tokens`: the body read (`max_tokens` not required) and
/// translated; the server estimates the prompt of the canonical request.
pub fn count_tokens_request(body: &[u8]) -> Result<ChatRequest, Unsupported> {
    let ids = Ids { message_id: String::new() };
    translate(request::read(body)?, ids).map(|t| t.chat)
}

/// An OpenAI error envelope restated in Anthropic's shape, `{"type": "error", "error":
/// {"type", "message"}}`, with Anthropic's error type for the HTTP status (falling back on
/// the envelope's type and code for a status that is not an error).
pub fn error_body(status: u16, envelope: &ErrorEnvelope) -> Vec<u8> {
    let kind = response::error_type_for_status(status).unwrap_or_else(|| response::error_type_for_envelope(envelope));
    response::error_json(kind, &envelope.error.message)
}

/// States the chat answer as an Anthropic `Message` or its stream events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesSurface {
    message_id: String,
    /// The model as the client named it.
    model: String,
}

impl MessagesSurface {
    /// An id for a tool call the upstream gave none (`toolu_<message id>_<k>`).
    fn tool_id(&self, k: usize) -> String {
        let id: String =
            self.message_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
        format!("toolu_{id}_{k}")
    }
}

impl Surface for MessagesSurface {
    fn present(&self, completion: &ChatCompletion, usage: Usage) -> Vec<u8> {
        response::present(self, completion, usage)
    }

    fn stream(&self) -> Box<dyn SurfaceStream> {
        Box::new(stream::MessagesStream::new(self.clone()))
    }

    fn error_body(&self, envelope: &ErrorEnvelope) -> Vec<u8> {
        response::error_json(response::error_type_for_envelope(envelope), &envelope.error.message)
    }
}

/// How a reasoning block of another provider travels in a `redacted_thinking` block's data.
const FOREIGN_PREFIX: &str = "tokenrouter.thinking_block.v1:";

/// A reasoning block of another provider as `redacted_thinking` data.
fn foreign_data(block: &ThinkingBlock) -> String {
    format!("{FOREIGN_PREFIX}{}", serde_json::to_string(block).unwrap_or_default())
}

/// The reasoning block a `redacted_thinking` block's data carries, if it carries one.
fn foreign_block(data: &str) -> Option<ThinkingBlock> {
    serde_json::from_str(data.strip_prefix(FOREIGN_PREFIX)?).ok()
}
