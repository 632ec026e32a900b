//! Decoding: a Gemini `generateContent` answer as an OpenAI ChatCompletion, and Gemini's
//! error answers as upstream failures. The pieces shared with the stream decoder (finish
//! reasons, tool-call ids, usage, signatures) live here too.

use serde_json::Value;
use serde_json::value::RawValue;
use tokenrouter_core::Usage;
use tokenrouter_core::chat::{
    ChatCompletion, Choice, FunctionCall, ResponseMessage, ThinkingBlock, ToolCall, UsageJson,
};

use super::SIGNATURE_BLOCK;
use super::wire::{self, ApiError, Candidate, ErrorEnvelope, GenerateContentResponse, UsageMetadata};
use crate::adapter::{Decoded, ResponseMeta, UpstreamFailure};
use crate::passthrough::compact_json;

pub(crate) fn decode(body: &[u8], meta: &ResponseMeta) -> Result<Decoded, UpstreamFailure> {
    let response: GenerateContentResponse = serde_json::from_slice(body).map_err(|e| unreadable("answer", &e))?;
    if let Some(error) = response.error {
        return Err(api_failure(200, error));
    }
    let mut usage = response.usage_metadata.as_ref().map(usage).map(|mut u| {
        u.hosted.web_search = web_searches(&response.candidates);
        u
    });
    let choices = if response.candidates.is_empty() {
        let Some(reason) = response.prompt_feedback.and_then(|f| f.block_reason) else {
            return Err(UpstreamFailure {
                status: 200,
                retryable: true,
                client_error: false,
                message: "Gemini returned no candidates.".to_owned(),
            });
        };
        vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".to_owned(),
                content: Some(prompt_blocked(&reason)),
                ..ResponseMessage::default()
            },
            logprobs: None,
            finish_reason: Some("content_filter".to_owned()),
            stop_reason: None,
        }]
    } else {
        let mut dropped = 0;
        let choices = response
            .candidates
            .iter()
            .enumerate()
            .map(|(position, c)| choice(c, position, meta.one_tool_call, &mut dropped))
            .collect::<Vec<Choice>>();
        let kept = choices.iter().map(kept_tokens).fold(0, u64::saturating_add);
        usage = usage.map(|u| without_dropped(u, dropped, kept));
        choices
    };
    let completion = ChatCompletion {
        id: meta.id.clone(),
        object: "chat.completion".to_owned(),
        created: meta.created,
        model: meta.model.clone(),
        choices,
        usage: usage.map(UsageJson::from),
        system_fingerprint: None,
    };
    let body = serde_json::to_vec(&completion).map_err(|e| unreadable("answer", &e))?;
    Ok(Decoded { body, usage })
}

/// One candidate as a choice; with `one_tool_call`, calls after the first are dropped
/// (Gemini has no switch for parallel calls) and their tokens added to `dropped`.
fn choice(candidate: &Candidate, position: usize, one_tool_call: bool, dropped: &mut u64) -> Choice {
    let index = candidate_index(candidate, position);
    let parts = candidate.content.as_ref().map(|c| c.parts.as_slice());
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    let mut call_signatures = Vec::new();
    let mut text_signatures = Vec::new();
    for part in parts.unwrap_or_default() {
        if let Some(call) = &part.function_call {
            if one_tool_call && !calls.is_empty() {
                *dropped = dropped.saturating_add(call_tokens(call));
                continue;
            }
            calls.push(ToolCall {
                id: call_id(call.id.as_deref(), index, calls.len()),
                kind: "function".to_owned(),
                function: FunctionCall { name: call.name.clone(), arguments: arguments(call.args.as_deref()) },
            });
            call_signatures.push(part.thought_signature.clone());
            continue;
        }
        if let Some(signature) = &part.thought_signature {
            text_signatures.push(signature.clone());
        }
        match &part.text {
            Some(t) if part.is_thought() => reasoning.push_str(t),
            Some(t) => text.push_str(t),
            None => {}
        }
    }
    let (finish_reason, blocked) = finish(candidate.finish_reason.as_deref(), !calls.is_empty());
    if let Some(message) = blocked {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(&message);
    }
    let blocks: Vec<ThinkingBlock> = if calls.is_empty() {
        text_signatures.into_iter().map(Some).map(signature_block).collect()
    } else {
        // One entry per call up to the last signed one, so that position k is call k.
        let signed = call_signatures.iter().rposition(Option::is_some);
        call_signatures.into_iter().take(signed.map_or(0, |last| last + 1)).map(signature_block).collect()
    };
    Choice {
        index,
        message: ResponseMessage {
            role: "assistant".to_owned(),
            content: (!text.is_empty() || calls.is_empty()).then_some(text),
            refusal: None,
            tool_calls: (!calls.is_empty()).then_some(calls),
            reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
            thinking_blocks: (!blocks.is_empty()).then_some(blocks),
        },
        logprobs: None,
        finish_reason: Some(finish_reason.to_owned()),
        stop_reason: None,
    }
}

/// The completion tokens of a call the client did not get (a second call when it allowed
/// one): its name and arguments, counted as the gateway estimates text (4 characters a
/// token), so that the client is not billed for it.
pub(crate) fn call_tokens(call: &wire::FunctionCall) -> u64 {
    let arguments = call.args.as_deref().map_or("", RawValue::get);
    crate::openai::estimate_text_tokens(&call.name).saturating_add(crate::openai::estimate_text_tokens(arguments))
}

/// `usage` without the completion tokens of calls that were dropped — never below what
/// the client was sent in words: its reasoning tokens, and `kept`, the estimate of its
/// text and reasoning (so that a dropped call whose estimate is inflated by escapes or
/// repetitions cannot take the delivered answer off the bill).
pub(crate) fn without_dropped(usage: Usage, dropped: u64, kept: u64) -> Usage {
    let floor = usage.reasoning_tokens.max(kept.min(usage.completion_tokens));
    let completion_tokens = usage.completion_tokens.saturating_sub(dropped).max(floor);
    Usage { completion_tokens, ..usage }
}

/// The estimated tokens of one choice's text and reasoning.
fn kept_tokens(choice: &Choice) -> u64 {
    let message = &choice.message;
    [message.content.as_deref(), message.reasoning_content.as_deref()]
        .into_iter()
        .flatten()
        .map(crate::openai::estimate_text_tokens)
        .fold(0, u64::saturating_add)
}

pub(crate) fn candidate_index(candidate: &Candidate, position: usize) -> u32 {
    candidate.index.unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX))
}

/// The part's own id, else `call_<candidate>_<k>`: stable for the same answer.
pub(crate) fn call_id(part_id: Option<&str>, candidate: u32, k: usize) -> String {
    match part_id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("call_{candidate}_{k}"),
    }
}

/// The call's arguments as compact JSON text (`{}` when Gemini sent none).
pub(crate) fn arguments(args: Option<&RawValue>) -> String {
    match args.map(RawValue::get) {
        None | Some("null") => "{}".to_owned(),
        Some(json) => compact_json(json),
    }
}

pub(crate) fn signature_block(signature: Option<String>) -> ThinkingBlock {
    ThinkingBlock { kind: SIGNATURE_BLOCK.to_owned(), thinking: None, signature, data: None }
}

/// OpenAI's finish reason for Gemini's, and for a blocked answer the text saying why.
pub(crate) fn finish(reason: Option<&str>, has_calls: bool) -> (&'static str, Option<String>) {
    match reason.unwrap_or("STOP") {
        "STOP" if has_calls => ("tool_calls", None),
        "MAX_TOKENS" => ("length", None),
        reason @ ("SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "OTHER"
        | "IMAGE_OTHER") => ("content_filter", Some(format!("Blocked by Gemini safety filter: {reason}"))),
        _ => ("stop", None),
    }
}

pub(crate) fn prompt_blocked(reason: &str) -> String {
    format!("Prompt blocked by Gemini safety filter: {reason}")
}

/// The Google searches an answer's grounding ran (`groundingMetadata.webSearchQueries`,
/// a query the candidates share counted once), each billed as a web search.
pub(crate) fn web_searches(candidates: &[Candidate]) -> u64 {
    let mut queries: Vec<&serde_json::Value> = candidates
        .iter()
        .filter_map(|c| c.grounding_metadata.as_ref())
        .flat_map(|g| g.web_search_queries.iter().flatten())
        .collect();
    queries.sort_by_key(|q| q.to_string());
    queries.dedup();
    u64::try_from(queries.len()).unwrap_or(u64::MAX)
}

/// Prompt tokens include those of tool-use prompts; completion tokens include thoughts.
pub(crate) fn usage(meta: &UsageMetadata) -> Usage {
    Usage {
        prompt_tokens: meta.prompt_token_count.saturating_add(meta.tool_use_prompt_token_count),
        completion_tokens: meta.candidates_token_count.saturating_add(meta.thoughts_token_count),
        cached_tokens: meta.cached_content_token_count,
        cache_write_tokens: 0,
        reasoning_tokens: meta.thoughts_token_count,
        hosted: Default::default(),
    }
}

/// Classifies a non-2xx answer: `{"error": {"code", "message", "status"}}` (sometimes
/// wrapped in an array).
pub(crate) fn decode_error(status: u16, body: &[u8]) -> UpstreamFailure {
    let error = if body.trim_ascii_start().starts_with(b"[") {
        serde_json::from_slice::<Vec<ErrorEnvelope>>(body).ok().and_then(|v| v.into_iter().next())
    } else {
        serde_json::from_slice::<ErrorEnvelope>(body).ok()
    };
    let error = error.and_then(|e| e.error);
    match error {
        Some(error) => api_failure(status, error),
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("Gemini answered HTTP {status}.")
            } else {
                text.chars().take(500).collect()
            };
            classify(status, None, false, message)
        }
    }
}

/// A failure from Gemini's error object. `status` is the HTTP status, or 200 for an error
/// inside a successful answer or stream (the error's own code then decides).
pub(crate) fn api_failure(status: u16, error: ApiError) -> UpstreamFailure {
    let status = match (status, error.code) {
        (200, Some(code)) => code,
        _ => status,
    };
    let key_invalid = error.details.iter().any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"));
    let message = if error.message.is_empty() { format!("Gemini answered HTTP {status}.") } else { error.message };
    classify(status, error.status.as_deref(), key_invalid, message)
}

fn classify(status: u16, rpc: Option<&str>, key_invalid: bool, message: String) -> UpstreamFailure {
    let retryable = matches!(status, 429 | 500 | 502 | 503 | 504)
        || matches!(rpc, Some("RESOURCE_EXHAUSTED" | "UNAVAILABLE" | "DEADLINE_EXCEEDED" | "INTERNAL"));
    // Gemini answers a bad API key with 400: the gateway's fault, not the client's.
    let client_error = matches!(status, 400 | 413) && !key_invalid;
    UpstreamFailure { status, retryable, client_error, message }
}

pub(crate) fn unreadable(what: &str, error: &serde_json::Error) -> UpstreamFailure {
    UpstreamFailure {
        status: 0,
        retryable: false,
        client_error: false,
        message: format!("Gemini sent an unreadable {what}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_calls_never_take_the_delivered_answer_off_the_bill() {
        let usage = Usage { completion_tokens: 2_000, reasoning_tokens: 100, ..Usage::default() };
        // A dropped call estimated at 500: billed 1,500.
        assert_eq!(without_dropped(usage, 500, 1_200).completion_tokens, 1_500);
        // One whose estimate is inflated (escapes, repetitions) past the rest: the text sent stays billed.
        assert_eq!(without_dropped(usage, 10_000, 1_200).completion_tokens, 1_200);
        // Nothing sent but reasoning: the reasoning stays billed.
        assert_eq!(without_dropped(usage, 10_000, 0).completion_tokens, 100);
        // An estimate of what was sent above the upstream's count: nothing is taken off.
        assert_eq!(without_dropped(usage, 500, 5_000).completion_tokens, 2_000);
    }

    #[test]
    fn grounding_without_queries_is_no_search_and_no_failure() {
        let candidates: Vec<Candidate> = serde_json::from_str(
            r#"[{"groundingMetadata": {"webSearchQueries": null}}, {"groundingMetadata": {}},
                {"groundingMetadata": {"webSearchQueries": ["a", "b"]}}, {"groundingMetadata": {"webSearchQueries": ["b"]}}]"#,
        )
        .unwrap();
        assert_eq!(web_searches(&candidates), 2, "a query the candidates share counts once");
        assert_eq!(web_searches(&candidates[..2]), 0);
    }
}
