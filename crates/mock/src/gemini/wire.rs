//! The shapes of a `GenerateContentResponse`, field for field as Gemini sends them, and
//! how a [`Response`] fills them whole or one chunk at a time.

use serde::Serialize;
use serde_json::Value;

use super::Response;
use crate::turn::{Body, Stop, THINKING};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentResponse<'a> {
    pub(super) candidates: Vec<Candidate<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) usage_metadata: Option<UsageMetadata>,
    pub(super) model_version: &'a str,
    pub(super) response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safety_ratings: Option<&'static [SafetyRating]>,
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    grounding_metadata: Option<GroundingMetadata>,
}

/// The Google searches a grounded answer ran (only the last chunk names them).
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroundingMetadata {
    web_search_queries: Vec<String>,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: Vec<Part<'a>>,
    role: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Part<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thought: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) function_call: Option<FunctionCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thought_signature: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct FunctionCall<'a> {
    name: &'a str,
    args: &'a Value,
    id: &'a str,
}

#[derive(Serialize)]
struct SafetyRating {
    category: &'static str,
    probability: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    blocked: bool,
}

/// What a blocked candidate reports.
const BLOCKED_RATINGS: &[SafetyRating] = &[
    rating("HARM_CATEGORY_SEXUALLY_EXPLICIT", "NEGLIGIBLE", false),
    rating("HARM_CATEGORY_HATE_SPEECH", "NEGLIGIBLE", false),
    rating("HARM_CATEGORY_HARASSMENT", "NEGLIGIBLE", false),
    rating("HARM_CATEGORY_DANGEROUS_CONTENT", "HIGH", true),
];

const fn rating(category: &'static str, probability: &'static str, blocked: bool) -> SafetyRating {
    SafetyRating { category, probability, blocked }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_content_token_count: Option<u64>,
    prompt_tokens_details: [ModalityCount; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    thoughts_token_count: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModalityCount {
    modality: &'static str,
    token_count: u64,
}

/// A text or thought part.
pub(super) fn text(text: &str, thought: bool) -> Part<'_> {
    Part { text: Some(text), thought: thought.then_some(true), function_call: None, thought_signature: None }
}

/// The function call parts of `response`, the first signed when the model thought.
pub(super) fn calls(response: &Response) -> Vec<Part<'_>> {
    let Body::Calls(calls) = &response.turn.body else {
        return Vec::new();
    };
    calls
        .iter()
        .enumerate()
        .map(|(i, call)| Part {
            text: None,
            thought: None,
            function_call: Some(FunctionCall { name: &call.name, args: &call.input, id: &call.id }),
            thought_signature: response.turn.thinking.as_deref().filter(|_| i == 0),
        })
        .collect()
}

/// The whole response.
pub(super) fn whole(response: &Response) -> GenerateContentResponse<'_> {
    let mut parts = Vec::new();
    if response.turn.thinking.is_some() {
        parts.push(text(THINKING, true));
    }
    match &response.turn.body {
        Body::Text(reply) if !reply.is_empty() => parts.push(text(reply, false)),
        Body::Calls(_) => parts.extend(calls(response)),
        Body::Text(_) | Body::Blocked => {}
    }
    chunk(response, parts, true)
}

/// A response with `parts` in every candidate; the `last` one says why it finished and
/// carries the usage.
pub(super) fn chunk<'a>(response: &'a Response, parts: Vec<Part<'a>>, last: bool) -> GenerateContentResponse<'a> {
    let blocked = matches!(response.turn.body, Body::Blocked);
    let finish_reason = last.then_some(match response.turn.stop {
        Stop::MaxTokens => "MAX_TOKENS",
        Stop::Blocked => "SAFETY",
        Stop::End | Stop::Sequence(_) | Stop::ToolUse => "STOP",
    });
    let candidates = (0..response.candidates)
        .map(|index| Candidate {
            content: (!blocked).then(|| Content { parts: parts.clone(), role: "model" }),
            finish_reason,
            safety_ratings: (blocked && last).then_some(BLOCKED_RATINGS),
            index,
            grounding_metadata: (last && !blocked && response.web_searches > 0).then(|| GroundingMetadata {
                web_search_queries: (1..=response.web_searches).map(|n| format!("mock search {n}")).collect(),
            }),
        })
        .collect();
    GenerateContentResponse {
        candidates,
        usage_metadata: last.then(|| usage(response)),
        model_version: &response.model,
        response_id: &response.id,
    }
}

fn usage(response: &Response) -> UsageMetadata {
    let candidates = response.candidates_tokens();
    let thoughts = response.thoughts_tokens();
    UsageMetadata {
        prompt_token_count: response.prompt_tokens,
        candidates_token_count: candidates,
        total_token_count: response.prompt_tokens + candidates + thoughts,
        cached_content_token_count: (response.cached_tokens > 0).then_some(response.cached_tokens),
        prompt_tokens_details: [ModalityCount { modality: "TEXT", token_count: response.prompt_tokens }],
        thoughts_token_count: (thoughts > 0).then_some(thoughts),
    }
}
