//! The canonical answer as an Anthropic `Message`: thinking first (signed blocks as they
//! came), then text, then `tool_use` blocks; the stop reason and usage in Anthropic's terms;
//! and errors as Anthropic's `{"type": "error", "error": {...}}` with its error types.

use serde_json::value::RawValue;
use tokenrouter_core::chat::{ChatCompletion, ResponseMessage, ThinkingBlock, UsageJson};
use tokenrouter_core::{ErrorEnvelope, Usage};

use super::{MessagesSurface, foreign_data};
use crate::anthropic::wire::{self, ContentBlock, ErrorDetail};

pub(super) fn present(surface: &MessagesSurface, completion: &ChatCompletion, usage: Usage) -> Vec<u8> {
    let choice = completion.choices.first();
    let empty = ResponseMessage::default();
    let message = choice.map_or(&empty, |c| &c.message);
    let mut content = thinking(message.reasoning_content.as_deref(), message.thinking_blocks.as_deref());
    for text in [&message.content, &message.refusal].into_iter().flatten() {
        if !text.is_empty() {
            content.push(ContentBlock::Text { text: text.clone() });
        }
    }
    let calls = message.tool_calls.as_deref().unwrap_or_default();
    let sequence = choice.and_then(|c| c.stop_reason.as_deref());
    let stop = stop_reason(choice.and_then(|c| c.finish_reason.as_deref()), !calls.is_empty(), sequence);
    for (k, call) in calls.iter().enumerate() {
        content.push(ContentBlock::ToolUse {
            id: if call.id.is_empty() { surface.tool_id(k) } else { call.id.clone() },
            name: call.function.name.clone(),
            input: input_object(&call.function.arguments),
        });
    }
    let answer = wire::Message {
        id: surface.message_id.clone(),
        kind: "message".to_owned(),
        role: "assistant".to_owned(),
        model: surface.model.clone(),
        content,
        stop_reason: Some(stop.to_owned()),
        stop_sequence: sequence.filter(|_| stop == "stop_sequence").map(str::to_owned),
        usage: wire_usage(usage, cache_creation(completion.usage.as_ref())),
    };
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// The answer's reasoning as thinking blocks: the provider's own blocks with their
/// signatures when it sent them, else the reasoning text unsigned. Blocks of other
/// providers (Gemini's thought signatures) travel as `redacted_thinking`, so that clients
/// hand them back.
fn thinking(reasoning: Option<&str>, blocks: Option<&[ThinkingBlock]>) -> Vec<ContentBlock> {
    let blocks = blocks.unwrap_or_default();
    let mut content = Vec::with_capacity(blocks.len() + 1);
    if let Some(text) = reasoning.filter(|t| !t.is_empty())
        && !blocks.iter().any(|b| b.kind == "thinking")
    {
        content.push(ContentBlock::Thinking { thinking: text.to_owned(), signature: String::new() });
    }
    content.extend(blocks.iter().filter_map(thinking_block));
    content
}

pub(super) fn thinking_block(block: &ThinkingBlock) -> Option<ContentBlock> {
    match block.kind.as_str() {
        "thinking" => Some(ContentBlock::Thinking {
            thinking: block.thinking.clone().unwrap_or_default(),
            signature: block.signature.clone().unwrap_or_default(),
        }),
        "redacted_thinking" => block.data.clone().map(|data| ContentBlock::RedactedThinking { data }),
        _ => Some(ContentBlock::RedactedThinking { data: foreign_data(block) }),
    }
}

/// A tool call's arguments as the `input` object (`{}` when they are not one).
fn input_object(arguments: &str) -> Box<RawValue> {
    serde_json::from_str::<Box<RawValue>>(arguments)
        .ok()
        .filter(|raw| raw.get().starts_with('{'))
        .unwrap_or_else(empty_object)
}

pub(super) fn empty_object() -> Box<RawValue> {
    crate::passthrough::raw_from_vec(b"{}".to_vec())
}

/// Anthropic's `stop_reason` for a chat `finish_reason` and the stop sequence that ended
/// the answer, when the upstream said which (else a stop is `end_turn`: Gemini and
/// OpenAI say only that the answer stopped).
pub(super) fn stop_reason(finish: Option<&str>, called_tools: bool, sequence: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        _ if called_tools => "tool_use",
        Some("stop") if sequence.is_some() => "stop_sequence",
        _ => "end_turn",
    }
}

/// Prompt tokens written to the provider's cache, when it said.
pub(super) fn cache_creation(usage: Option<&UsageJson>) -> u64 {
    usage.and_then(|u| u.prompt_tokens_details.cache_creation_tokens).unwrap_or(0)
}

/// Anthropic's usage: `input_tokens` counts only the prompt tokens neither read from nor
/// written to the cache.
pub(super) fn wire_usage(usage: Usage, cache_creation: u64) -> wire::Usage {
    let uncached = usage.prompt_tokens.saturating_sub(usage.cached_tokens);
    let written = cache_creation.min(uncached);
    wire::Usage {
        input_tokens: Some(uncached - written),
        output_tokens: Some(usage.completion_tokens),
        cache_creation_input_tokens: Some(written),
        cache_read_input_tokens: Some(usage.cached_tokens),
        output_tokens_details: None,
        server_tool_use: (!usage.hosted.is_empty()).then_some(wire::ServerToolUse {
            web_search_requests: usage.hosted.web_search,
            web_fetch_requests: usage.hosted.web_fetch,
        }),
    }
}

/// Anthropic's error type for an HTTP status; `None` for one that is not an error.
pub(super) fn error_type_for_status(status: u16) -> Option<&'static str> {
    Some(match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        500..=599 => "api_error",
        _ => return None,
    })
}

/// Anthropic's error type for an OpenAI error's `type` and `code` (CONTRACTS.md §4).
pub(super) fn error_type_for_envelope(envelope: &ErrorEnvelope) -> &'static str {
    let code = envelope.error.code.as_deref().unwrap_or_default();
    match envelope.error.kind.as_str() {
        "invalid_request_error" => match code {
            "model_not_found" | "unknown_url" => "not_found_error",
            "request_too_large" => "request_too_large",
            _ => "invalid_request_error",
        },
        "authentication_error" => "authentication_error",
        "insufficient_quota" => "billing_error",
        "permission_error" => "permission_error",
        "rate_limit_error" => "rate_limit_error",
        "not_found_error" => "not_found_error",
        _ if code == "upstream_timeout" => "timeout_error",
        _ => "api_error",
    }
}

/// `{"type": "error", "error": {"type": kind, "message": message}}`
pub(super) fn error_json(kind: &str, message: &str) -> Vec<u8> {
    let envelope = wire::ErrorEnvelope {
        kind: "error".to_owned(),
        error: ErrorDetail { kind: kind.to_owned(), message: message.to_owned() },
    };
    serde_json::to_vec(&envelope).unwrap_or_default()
}
