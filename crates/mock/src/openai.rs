//! The OpenAI wire format: `/v1/models`, `/v1/chat/completions` (plain, streamed, tool
//! calls, DeepSeek-style `reasoning_content`), the OpenAI error envelope, and what the
//! other OpenAI endpoints (completions, embeddings, responses) share with chat.

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use tokenrouter_core::{ErrorBody, ErrorEnvelope};

use crate::knobs::{Fault, MockConfig};
use crate::reply::{Reply, argument_fragments, count_tokens, tool_arguments};
use crate::server::Answer;
use crate::stats::Stats;
use crate::turn::{self, THINKING};

mod completions;
mod embeddings;
mod responses;
mod stream;
mod wire;

pub(crate) use completions::completions;
pub(crate) use embeddings::embeddings;
pub(crate) use responses::responses;

/// The model ids `GET /v1/models` lists (any model name is accepted everywhere).
const MODELS: &[&str] = &[
    "mock-gpt",
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
];
const SYSTEM_FINGERPRINT: &str = "fp_mock";

/// `GET /v1/models`: the mock's models, or `listed` instead (an instance's knob).
pub(crate) fn models(listed: Option<&[String]>) -> Bytes {
    let ids: Vec<&str> = match listed {
        Some(listed) => listed.iter().map(String::as_str).collect(),
        None => MODELS.to_vec(),
    };
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "mock"}))
        .collect();
    to_json(&json!({"object": "list", "data": data}))
}

/// The OpenAI error envelope, with `param` and `code` null.
pub(crate) fn error(kind: &str, message: impl Into<String>) -> Bytes {
    let envelope =
        ErrorEnvelope { error: ErrorBody { message: message.into(), kind: kind.to_owned(), code: None, param: None } };
    Bytes::from(envelope.to_json())
}

/// A 400 `invalid_request_error` answer.
pub(crate) fn invalid_request(message: impl Into<String>) -> Answer {
    Answer::Json { status: StatusCode::BAD_REQUEST, body: error("invalid_request_error", message), tokens: 0 }
}

/// The answer to a body that is not a JSON object.
fn not_json() -> Answer {
    invalid_request("We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.")
}

/// `data: <json>\n\n`.
fn sse_data(payload: &impl Serialize) -> Bytes {
    let mut data = Vec::with_capacity(256);
    data.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut data, payload).is_err() {
        data.truncate(6);
        data.extend_from_slice(b"{}");
    }
    data.extend_from_slice(b"\n\n");
    Bytes::from(data)
}

/// The error event a chat or completions stream ends with on [`Fault::StreamError`].
fn stream_error_event() -> Bytes {
    let error = error("server_error", "The server had an error while processing your request. Sorry about that!");
    let mut data = Vec::with_capacity(error.len() + 8);
    data.extend_from_slice(b"data: ");
    data.extend_from_slice(&error);
    data.extend_from_slice(b"\n\n");
    Bytes::from(data)
}

/// One text of a `prompt` (completions) or `input` (embeddings), and its tokens.
struct TextInput {
    text: String,
    tokens: u64,
}

/// A string, an array of strings, a token array or an array of token arrays; a token array
/// reads as its numbers separated by spaces and counts one token per number. `None` for
/// anything else, including an empty array.
fn text_inputs(value: &Value) -> Option<Vec<TextInput>> {
    fn tokens(array: &[Value]) -> Option<TextInput> {
        let numbers: Vec<String> = array.iter().map(|t| t.as_i64().map(|n| n.to_string())).collect::<Option<_>>()?;
        Some(TextInput { text: numbers.join(" "), tokens: array.len() as u64 })
    }
    let text = |s: &str| TextInput { text: s.to_owned(), tokens: count_tokens(s) };
    match value {
        Value::String(s) => Some(vec![text(s)]),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) if items.iter().all(Value::is_number) => Some(vec![tokens(items)?]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Some(text(s)),
                Value::Array(array) => tokens(array),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// What a chat completion answers, whether sent whole or streamed.
struct Completion {
    id: String,
    model: String,
    created: i64,
    /// Whether the model thought ([`THINKING`]) before answering.
    reasoning: bool,
    content: Content,
    finish_reason: &'static str,
    usage: Usage,
    /// Completion tokens it really generated (its usage may report more, as an instance).
    generated: u64,
}

enum Content {
    Text(Reply),
    ToolCalls(Vec<ToolCall>),
}

struct ToolCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

/// `POST /v1/chat/completions`; `body` is `None` when the request was not JSON, `model`
/// is the model name without its knobs.
pub(crate) fn chat_completions(
    body: Option<&Value>,
    model: Option<&str>,
    knobs: &MockConfig,
    seq: u64,
    stats: &Stats,
) -> Answer {
    let Some(body) = body.filter(|b| b.is_object()) else {
        return not_json();
    };
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return invalid_request("Missing required parameter: 'messages'.");
    };
    let model = model.unwrap_or(MODELS[0]);
    let completion = complete(body, messages, model, knobs, seq, stats);
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        Answer::Stream(Box::new(stream::ChatStream::new(completion, include_usage)))
    } else {
        let tokens = completion.generated;
        Answer::Json { status: StatusCode::OK, body: to_json(&completion.to_wire()), tokens }
    }
}

/// Decides the reply to a well-formed request.
fn complete(body: &Value, messages: &[Value], model: &str, knobs: &MockConfig, seq: u64, stats: &Stats) -> Completion {
    let prompt_tokens: u64 =
        messages.iter().map(|m| content_tokens(m.get("content").unwrap_or(&Value::Null)) + 1).sum();
    let last = messages.last();
    let answers_tool = last.and_then(|m| m.get("role")).and_then(Value::as_str) == Some("tool");
    let calls = if answers_tool { Vec::new() } else { chosen_tools(body, knobs.calls) };
    let reasoning =
        knobs.fault != Some(Fault::Safety) && turn::reasons(body.get("reasoning_effort").and_then(Value::as_str));
    let reasoning_tokens = if reasoning { count_tokens(THINKING) } else { 0 };

    let (content, finish_reason, completion_tokens) = if knobs.fault == Some(Fault::Safety) {
        (Content::Text(Reply::new("", 0)), "content_filter", 0)
    } else if calls.is_empty() {
        let prompt = if answers_tool {
            last.and_then(|m| m.get("content")).map(content_text)
        } else {
            messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|m| m.get("content"))
                .map(content_text)
        };
        let limit =
            ["max_completion_tokens", "max_tokens"].iter().filter_map(|k| body.get(*k).and_then(Value::as_u64)).min();
        let len = limit.map_or(knobs.reply_tokens, |l| l.min(knobs.reply_tokens));
        let finish = if len < knobs.reply_tokens { "length" } else { "stop" };
        (Content::Text(Reply::new(prompt.as_deref().unwrap_or(""), len)), finish, len)
    } else {
        let first_id = stats.next_tool_call_ids(calls.len() as u64);
        let calls: Vec<ToolCall> = calls
            .into_iter()
            .zip(first_id..)
            .map(|((name, parameters), n)| ToolCall {
                id: format!("call_mock_{n}"),
                name: name.to_owned(),
                arguments: to_string(&tool_arguments(parameters)),
            })
            .collect();
        let tokens = calls.iter().map(|c| argument_fragments(&c.arguments).len() as u64).sum();
        (Content::ToolCalls(calls), "tool_calls", tokens)
    };

    // As an instance: a fixed prompt count (the canary), inflated counts.
    let instance = &knobs.instance;
    let reported_prompt = instance.reported(instance.prompt_tokens.unwrap_or(prompt_tokens));
    let reported_completion = instance.reported(reasoning_tokens + completion_tokens);
    Completion {
        id: format!("chatcmpl-mock-{seq}"),
        model: model.to_owned(),
        created: tokenrouter_core::clock::now_unix(),
        reasoning,
        content,
        finish_reason,
        generated: reasoning_tokens + completion_tokens,
        usage: Usage {
            prompt_tokens: reported_prompt,
            completion_tokens: reported_completion,
            total_tokens: reported_prompt + reported_completion,
            prompt_tokens_details: PromptDetails {
                cached_tokens: knobs.cached_tokens.min(prompt_tokens),
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionDetails { reasoning_tokens, ..CompletionDetails::default() },
        },
    }
}

/// The functions to call, as (name, parameters schema): none unless `tools` is non-empty
/// and `tool_choice` is not `"none"`; the named one for a named choice; the first `max`
/// (the `calls` knob) for `"required"` with parallel calls allowed; otherwise the first.
fn chosen_tools(body: &Value, max: u64) -> Vec<(&str, &Value)> {
    let functions: Vec<(&str, &Value)> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str).is_none_or(|k| k == "function"))
        .filter_map(|t| {
            let function = t.get("function")?;
            let name = function.get("name")?.as_str()?;
            Some((name, function.get("parameters").unwrap_or(&Value::Null)))
        })
        .collect();
    if functions.is_empty() {
        return functions;
    }
    let choice = body.get("tool_choice").unwrap_or(&Value::Null);
    if let Some(name) = choice.pointer("/function/name").and_then(Value::as_str) {
        return turn::named(&functions, name, max);
    }
    let parallel = body.get("parallel_tool_calls").and_then(Value::as_bool) != Some(false);
    match choice.as_str() {
        Some("none") => Vec::new(),
        Some("required") => turn::pick(functions, true, parallel, max),
        _ => turn::pick(functions, false, parallel, max),
    }
}

/// Tokens of a content (a chat message's or a Responses item's): a string, or the `text`
/// of its parts (`text`, `input_text`, `output_text`).
pub(super) fn content_tokens(content: &Value) -> u64 {
    match content {
        Value::String(s) => count_tokens(s),
        Value::Array(parts) => text_parts(parts).map(count_tokens).sum(),
        _ => 0,
    }
}

/// A content's text: the string, or its parts' `text` joined by spaces.
pub(super) fn content_text(content: &Value) -> Cow<'_, str> {
    match content {
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(parts) => Cow::Owned(text_parts(parts).collect::<Vec<_>>().join(" ")),
        _ => Cow::Borrowed(""),
    }
}

fn text_parts(parts: &[Value]) -> impl Iterator<Item = &str> {
    parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str))
}

impl Completion {
    /// The `chat.completion` object.
    fn to_wire(&self) -> wire::ChatCompletion<'_> {
        let text = match &self.content {
            Content::Text(reply) => Some(reply.text()),
            Content::ToolCalls(_) => None,
        };
        let tool_calls = match &self.content {
            Content::Text(_) => Vec::new(),
            Content::ToolCalls(calls) => calls
                .iter()
                .map(|c| wire::ToolCall {
                    id: &c.id,
                    kind: "function",
                    function: wire::Function { name: &c.name, arguments: &c.arguments },
                })
                .collect(),
        };
        wire::ChatCompletion {
            id: &self.id,
            object: "chat.completion",
            created: self.created,
            model: &self.model,
            choices: [wire::Choice {
                index: 0,
                message: wire::Message {
                    role: "assistant",
                    content: text,
                    reasoning_content: self.reasoning.then_some(THINKING),
                    refusal: None,
                    tool_calls,
                    annotations: [],
                },
                logprobs: None,
                finish_reason: self.finish_reason,
            }],
            usage: self.usage,
            system_fingerprint: SYSTEM_FINGERPRINT,
        }
    }
}

/// Serializes a value made of strings and numbers, which cannot fail.
fn to_json(value: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

fn to_string(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
