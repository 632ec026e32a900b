//! The shapes of a `response` object and its output items, field for field as OpenAI sends them.

use serde::Serialize;

#[derive(Serialize)]
pub(super) struct Response<'a> {
    pub(super) id: &'a str,
    pub(super) object: &'static str,
    pub(super) created_at: i64,
    pub(super) status: &'static str,
    pub(super) background: bool,
    pub(super) error: Option<()>,
    pub(super) incomplete_details: Option<Incomplete>,
    pub(super) model: &'a str,
    pub(super) output: Vec<OutputItem<'a>>,
    #[serde(flatten)]
    pub(super) echo: &'a super::Echo,
    pub(super) usage: Option<&'a super::Usage>,
}

#[derive(Serialize)]
pub(super) struct Incomplete {
    pub(super) reason: &'static str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutputItem<'a> {
    Reasoning {
        id: &'a str,
        summary: Vec<Part<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<&'a str>,
    },
    Message {
        id: &'a str,
        status: &'static str,
        role: &'static str,
        content: Vec<Part<'a>>,
    },
    FunctionCall {
        id: &'a str,
        status: &'static str,
        arguments: &'a str,
        call_id: &'a str,
        name: &'a str,
    },
    WebSearchCall {
        id: &'a str,
        status: &'static str,
        action: SearchAction<'a>,
    },
}

/// What a `web_search_call` did: `{"type": "search", "query": …}`.
#[derive(Serialize)]
pub(super) struct SearchAction<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) query: &'a str,
}

/// A `summary_text` part of a reasoning summary, or an `output_text` part of a message.
#[derive(Clone, Copy, Serialize)]
pub(super) struct Part<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<[(); 0]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<[(); 0]>,
    text: &'a str,
}

pub(super) fn summary(text: &str) -> Part<'_> {
    Part { kind: "summary_text", annotations: None, logprobs: None, text }
}

pub(super) fn output_text(text: &str) -> Part<'_> {
    Part { kind: "output_text", annotations: Some([]), logprobs: Some([]), text }
}
