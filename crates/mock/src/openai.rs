//! The OpenAI wire format: `/v1/models`, `/v1/chat/completions` (plain, streamed, tool
//! calls) and the OpenAI error envelope.

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

mod stream;

/// The model ids `GET /v1/models` lists (any model name is accepted by chat completions).
const MODELS: &[&str] = &["mock-gpt", "gpt-4o-mini", "gpt-4o"];
const SYSTEM_FINGERPRINT: &str = "fp_mock";

/// `GET /v1/models`.
pub(crate) fn models() -> Bytes {
    let data: Vec<Value> = MODELS
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

/// What a chat completion answers, whether sent whole or streamed.
struct Completion {
    id: String,
    model: String,
    created: i64,
    content: Content,
    finish_reason: &'static str,
    usage: Usage,
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

#[derive(Debug, Clone, Copy, Serialize)]
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
        return invalid_request(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.",
        );
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
        let tokens = completion.usage.completion_tokens;
        Answer::Json { status: StatusCode::OK, body: to_json(&completion.to_wire()), tokens }
    }
}

/// Decides the reply to a well-formed request.
fn complete(body: &Value, messages: &[Value], model: &str, knobs: &MockConfig, seq: u64, stats: &Stats) -> Completion {
    let prompt_tokens: u64 =
        messages.iter().map(|m| content_tokens(m.get("content").unwrap_or(&Value::Null)) + 1).sum();
    let last = messages.last();
    let answers_tool = last.and_then(|m| m.get("role")).and_then(Value::as_str) == Some("tool");
    let calls = if answers_tool { Vec::new() } else { chosen_tools(body) };

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

    Completion {
        id: format!("chatcmpl-mock-{seq}"),
        model: model.to_owned(),
        created: tokenrouter_core::clock::now_unix(),
        content,
        finish_reason,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptDetails {
                cached_tokens: knobs.cached_tokens.min(prompt_tokens),
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: 0,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            },
        },
    }
}

/// The functions to call, as (name, parameters schema): none unless `tools` is non-empty
/// and `tool_choice` is not `"none"`; the named one for a named choice; the first two for
/// `"required"` with parallel calls allowed; otherwise the first.
fn chosen_tools(body: &Value) -> Vec<(&str, &Value)> {
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
        let parameters = functions.iter().find(|(n, _)| *n == name).map_or(&Value::Null, |(_, p)| *p);
        return vec![(name, parameters)];
    }
    let parallel = body.get("parallel_tool_calls").and_then(Value::as_bool) != Some(false);
    match choice.as_str() {
        Some("none") => Vec::new(),
        Some("required") if parallel && functions.len() >= 2 => functions.into_iter().take(2).collect(),
        _ => functions.into_iter().take(1).collect(),
    }
}

/// Tokens of a message's content: a string, or the `text` of its `{"type":"text"}` parts.
fn content_tokens(content: &Value) -> u64 {
    match content {
        Value::String(s) => count_tokens(s),
        Value::Array(parts) => text_parts(parts).map(count_tokens).sum(),
        _ => 0,
    }
}

/// A message's text content, text parts joined by spaces.
fn content_text(content: &Value) -> Cow<'_, str> {
    match content {
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(parts) => Cow::Owned(text_parts(parts).collect::<Vec<_>>().join(" ")),
        _ => Cow::Borrowed(""),
    }
}

fn text_parts(parts: &[Value]) -> impl Iterator<Item = &str> {
    parts
        .iter()
        .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
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
                message: wire::Message { role: "assistant", content: text, refusal: None, tool_calls, annotations: [] },
                logprobs: None,
                finish_reason: self.finish_reason,
            }],
            usage: self.usage,
            system_fingerprint: SYSTEM_FINGERPRINT,
        }
    }
}

/// The shapes of a non-streamed answer, field for field as OpenAI sends them.
mod wire {
    use serde::Serialize;

    #[derive(Serialize)]
    pub(super) struct ChatCompletion<'a> {
        pub(super) id: &'a str,
        pub(super) object: &'static str,
        pub(super) created: i64,
        pub(super) model: &'a str,
        pub(super) choices: [Choice<'a>; 1],
        pub(super) usage: super::Usage,
        pub(super) system_fingerprint: &'static str,
    }

    #[derive(Serialize)]
    pub(super) struct Choice<'a> {
        pub(super) index: u32,
        pub(super) message: Message<'a>,
        pub(super) logprobs: Option<()>,
        pub(super) finish_reason: &'static str,
    }

    #[derive(Serialize)]
    pub(super) struct Message<'a> {
        pub(super) role: &'static str,
        pub(super) content: Option<String>,
        pub(super) refusal: Option<()>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub(super) tool_calls: Vec<ToolCall<'a>>,
        pub(super) annotations: [(); 0],
    }

    #[derive(Serialize)]
    pub(super) struct ToolCall<'a> {
        pub(super) id: &'a str,
        #[serde(rename = "type")]
        pub(super) kind: &'static str,
        pub(super) function: Function<'a>,
    }

    #[derive(Serialize)]
    pub(super) struct Function<'a> {
        pub(super) name: &'a str,
        pub(super) arguments: &'a str,
    }
}

/// Serializes a value made of strings and numbers, which cannot fail.
fn to_json(value: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

fn to_string(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
