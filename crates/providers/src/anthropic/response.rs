//! A whole Anthropic `Message` as an OpenAI `chat.completion`, and Anthropic's error
//! answers classified: whether a retry may help and whether the client is at fault.

use tokenrouter_core::chat::{ChatCompletion, Choice, FunctionCall, ResponseMessage, ThinkingBlock, ToolCall};

use super::wire::{ContentBlock, ErrorEnvelope, Message};
use super::{compact_json, finish_reason, is_json_tool, matched_sequence, usage_json, usage_of};
use crate::adapter::{Decoded, ResponseMeta, UpstreamFailure};

pub(super) fn decode(body: &[u8], meta: &ResponseMeta) -> Result<Decoded, UpstreamFailure> {
    let message: Message =
        serde_json::from_slice(body).ok().filter(|m: &Message| m.kind == "message").ok_or_else(|| UpstreamFailure {
            status: 200,
            retryable: false,
            client_error: false,
            message: "Anthropic answered with something that is not a message.".to_owned(),
        })?;
    let mut text: Option<String> = None;
    // The answer given through the tool a `response_format` became: the whole content.
    let mut json: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            ContentBlock::Text { text: piece } => text.get_or_insert_default().push_str(&piece),
            ContentBlock::ToolUse { name, input, .. } if is_json_tool(&name) => {
                json = Some(compact_json(input.get()));
            }
            ContentBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall { name, arguments: compact_json(input.get()) },
            }),
            ContentBlock::Thinking { thinking, signature } => {
                reasoning.get_or_insert_default().push_str(&thinking);
                thinking_blocks.push(ThinkingBlock {
                    kind: "thinking".to_owned(),
                    thinking: Some(thinking),
                    signature: Some(signature),
                    data: None,
                });
            }
            ContentBlock::RedactedThinking { data } => thinking_blocks.push(ThinkingBlock {
                kind: "redacted_thinking".to_owned(),
                thinking: None,
                signature: None,
                data: Some(data),
            }),
            ContentBlock::Image { .. }
            | ContentBlock::Document { .. }
            | ContentBlock::ToolResult { .. }
            | ContentBlock::Other => {}
        }
    }
    let usage = usage_of(&message.usage);
    let completion = ChatCompletion {
        id: meta.id.clone(),
        object: "chat.completion".to_owned(),
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![Choice {
            index: 0,
            finish_reason: Some(finish_reason(message.stop_reason.as_deref(), !tool_calls.is_empty()).to_owned()),
            stop_reason: matched_sequence(message.stop_reason.as_deref(), message.stop_sequence),
            message: ResponseMessage {
                role: "assistant".to_owned(),
                content: json.or(text),
                refusal: None,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                reasoning_content: reasoning,
                thinking_blocks: (!thinking_blocks.is_empty()).then_some(thinking_blocks),
            },
            logprobs: None,
        }],
        usage: Some(usage_json(&message.usage)),
        system_fingerprint: None,
    };
    let body = serde_json::to_vec(&completion).map_err(|e| UpstreamFailure {
        status: 200,
        retryable: false,
        client_error: false,
        message: format!("Cannot encode the translated answer: {e}"),
    })?;
    Ok(Decoded { body, usage: Some(usage) })
}

pub(super) fn decode_error(status: u16, body: &[u8]) -> UpstreamFailure {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => failure(status, &envelope.error.kind, envelope.error.message),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("Anthropic answered HTTP {status}.")
            } else {
                format!("Anthropic answered HTTP {status}: {}", text.chars().take(500).collect::<String>())
            };
            failure(status, "", message)
        }
    }
}

/// Classifies an Anthropic error by HTTP status and error type (an in-stream error
/// has only its type).
pub(super) fn failure(status: u16, kind: &str, message: String) -> UpstreamFailure {
    let retryable = matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529)
        || matches!(kind, "rate_limit_error" | "api_error" | "overloaded_error" | "timeout_error");
    // A missing model (404) or a bad key (401, 403) is the gateway's configuration, not
    // the client's request.
    let client_error = !retryable
        && !matches!(status, 401..=404)
        && (matches!(status, 400 | 413 | 422) || matches!(kind, "invalid_request_error" | "request_too_large"));
    let message = if message.is_empty() {
        if kind.is_empty() {
            format!("Anthropic answered HTTP {status}.")
        } else {
            format!("Anthropic answered {kind}.")
        }
    } else {
        message
    };
    UpstreamFailure { status, retryable, client_error, message }
}
