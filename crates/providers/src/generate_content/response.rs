//! The chat answer as Gemini's `GenerateContentResponse` (one candidate per choice), the
//! pieces the stream shares (parts, signatures, finish reasons, usage), and errors in
//! Google's RPC shape.

use serde_json::json;
use serde_json::value::RawValue;
use tokenrouter_core::chat::{ChatCompletion, ThinkingBlock, ToolCall};
use tokenrouter_core::{ErrorEnvelope, Usage};

use super::{GeminiSurface, foreign_signature};
use crate::gemini::SIGNATURE_BLOCK;
use crate::gemini::wire::{
    ApiError, Candidate, Content, ErrorEnvelope as GoogleError, FunctionCall, GenerateContentResponse, Part,
    UsageMetadata,
};

pub(super) fn present(surface: &GeminiSurface, completion: &ChatCompletion, usage: Usage) -> Vec<u8> {
    let candidates = completion
        .choices
        .iter()
        .map(|choice| {
            let message = &choice.message;
            let mut answer = Answer::default();
            if surface.include_thoughts
                && let Some(reasoning) = message.reasoning_content.as_deref().filter(|r| !r.is_empty())
            {
                answer.thoughts.push(Part { text: Some(reasoning.to_owned()), thought: Some(true), ..Part::default() });
            }
            let text: String = [&message.content, &message.refusal].into_iter().flatten().map(String::as_str).collect();
            answer.text = (!text.is_empty()).then_some(text);
            answer.calls = message.tool_calls.iter().flatten().map(call_part).collect();
            answer.blocks = message.thinking_blocks.clone().unwrap_or_default();
            Candidate {
                content: Some(Content { role: Some("model".to_owned()), parts: answer.parts() }),
                finish_reason: Some(finish_reason(choice.finish_reason.as_deref()).to_owned()),
                index: Some(choice.index),
                grounding_metadata: None,
            }
        })
        .collect();
    let response = GenerateContentResponse {
        candidates,
        usage_metadata: Some(usage_metadata(usage)),
        model_version: Some(surface.model.clone()),
        response_id: Some(surface.response_id.clone()),
        ..GenerateContentResponse::default()
    };
    serde_json::to_vec(&response).unwrap_or_default()
}

/// What one candidate says, before its signatures are placed on its parts.
#[derive(Default)]
pub(super) struct Answer {
    pub thoughts: Vec<Part>,
    pub text: Option<String>,
    pub calls: Vec<Part>,
    /// The choice's reasoning blocks: Gemini signatures (entry k for call k, else for the
    /// text) and other providers' blocks.
    pub blocks: Vec<ThinkingBlock>,
}

impl Answer {
    /// The candidate's parts: thoughts, text, calls. Gemini signatures go back on the parts
    /// they came from; other providers' blocks ride on the first call (else the text).
    pub fn parts(self) -> Vec<Part> {
        let (gemini, foreign): (Vec<ThinkingBlock>, Vec<ThinkingBlock>) =
            self.blocks.into_iter().partition(|b| b.kind == SIGNATURE_BLOCK);
        let mut calls = self.calls;
        let mut text = self.text.map(Part::text);
        if calls.is_empty() {
            if let Some(signature) = gemini.into_iter().rev().find_map(|b| b.signature) {
                text.get_or_insert_with(|| Part::text("")).thought_signature = Some(signature);
            }
        } else {
            for (call, block) in calls.iter_mut().zip(gemini) {
                call.thought_signature = block.signature;
            }
        }
        if let Some(signature) = foreign_signature(&foreign) {
            match calls.first_mut() {
                Some(first) => first.thought_signature = Some(signature),
                None => text.get_or_insert_with(|| Part::text("")).thought_signature = Some(signature),
            }
        }
        let mut parts = self.thoughts;
        parts.extend(text);
        parts.extend(calls);
        parts
    }
}

pub(super) fn call_part(call: &ToolCall) -> Part {
    Part {
        function_call: Some(FunctionCall {
            id: (!call.id.is_empty()).then(|| call.id.clone()),
            name: call.function.name.clone(),
            args: Some(args_object(&call.function.arguments)),
        }),
        ..Part::default()
    }
}

/// A call's arguments as the `args` object (`{}` when they are not one).
pub(super) fn args_object(arguments: &str) -> Box<RawValue> {
    serde_json::from_str::<Box<RawValue>>(arguments)
        .ok()
        .filter(|raw| raw.get().starts_with('{'))
        .unwrap_or_else(|| crate::passthrough::raw_from_vec(b"{}".to_vec()))
}

/// Gemini's `finishReason` for a chat `finish_reason` (a function call ends with `STOP`).
pub(super) fn finish_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "MAX_TOKENS",
        Some("content_filter") => "SAFETY",
        Some("error") => "OTHER",
        _ => "STOP",
    }
}

/// Gemini's usage: `candidatesTokenCount` leaves out the thoughts, which it counts apart.
pub(super) fn usage_metadata(usage: Usage) -> UsageMetadata {
    let thoughts = usage.reasoning_tokens.min(usage.completion_tokens);
    UsageMetadata {
        prompt_token_count: usage.prompt_tokens,
        candidates_token_count: usage.completion_tokens - thoughts,
        total_token_count: usage.total(),
        cached_content_token_count: usage.cached_tokens,
        thoughts_token_count: thoughts,
        tool_use_prompt_token_count: 0,
    }
}

/// Google's RPC status for an HTTP status. 402 (the balance or the key's spend limit cannot
/// cover the request) is `RESOURCE_EXHAUSTED`, as Google states an exhausted quota, while
/// the HTTP status stays the gateway's 402.
pub fn rpc_status(status: u16) -> &'static str {
    match status {
        400 | 405 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        402 | 429 => "RESOURCE_EXHAUSTED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

/// The HTTP status an error envelope stands for (CONTRACTS.md §4), for errors that arrive
/// without one (a failed stream).
pub(super) fn status_for_envelope(envelope: &ErrorEnvelope) -> u16 {
    match (envelope.error.kind.as_str(), envelope.error.code.as_deref()) {
        (_, Some("upstream_timeout")) => 504,
        ("invalid_request_error", Some("model_not_found" | "not_found" | "unknown_url")) => 404,
        ("invalid_request_error", _) => 400,
        ("authentication_error", _) => 401,
        ("insufficient_quota", _) => 402,
        ("permission_error", _) => 403,
        ("rate_limit_error", _) => 429,
        _ => 502,
    }
}

/// `{"error": {"code", "message", "status"}}`, with the field named as Google's
/// `BadRequest` detail when there is one.
pub(super) fn error_json(status: u16, message: &str, param: Option<&str>) -> Vec<u8> {
    let details = param
        .filter(|p| !p.is_empty())
        .map(|field| {
            vec![json!({
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": message}],
            })]
        })
        .unwrap_or_default();
    let error = ApiError {
        code: Some(status),
        message: message.to_owned(),
        status: Some(rpc_status(status).to_owned()),
        details,
    };
    serde_json::to_vec(&GoogleError { error: Some(error) }).unwrap_or_default()
}

/// An error of the gateway's own (before any translation) in Google's shape.
pub fn status_error_body(status: u16, message: &str) -> Vec<u8> {
    error_json(status, message, None)
}
