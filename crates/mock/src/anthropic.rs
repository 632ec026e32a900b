//! The Anthropic Messages API: `POST /v1/messages` (plain, streamed, tool use, extended
//! thinking), Anthropic's request checks, and its error envelope.

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use crate::format::Format;
use crate::knobs::{Fault, MockConfig};
use crate::reply::count_tokens;
use crate::server::Answer;
use crate::stats::Stats;
use crate::turn::{self, Body, Stop, THINKING, Turn};

mod stream;
mod wire;

/// Anthropic's "overloaded" status, 529.
pub(crate) fn overloaded() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// The Anthropic error envelope `{"type":"error","error":{"type","message"}}`.
pub(crate) fn error(kind: &str, message: &str) -> Bytes {
    #[derive(Serialize)]
    struct Envelope<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        error: Error<'a>,
    }
    #[derive(Serialize)]
    struct Error<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        message: &'a str,
    }
    to_json(&Envelope { kind: "error", error: Error { kind, message } })
}

/// A message, whether sent whole or streamed.
struct Message {
    id: String,
    model: String,
    turn: Turn,
    usage: Usage,
}

/// Anthropic's usage: `input_tokens` excludes the tokens read from the cache.
#[derive(Debug, Clone, Copy, Serialize)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    /// Web searches the `web_searches` knob reports as run.
    #[serde(skip_serializing_if = "Option::is_none")]
    server_tool_use: Option<ServerToolUse>,
}

/// Anthropic's `usage.server_tool_use`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ServerToolUse {
    pub(crate) web_search_requests: u64,
}

/// The parts of a valid request the answer depends on.
struct Request<'a> {
    body: &'a Value,
    messages: &'a [Value],
    model: &'a str,
    max_tokens: u64,
    thinking: bool,
}

/// `POST /v1/messages`; `body` is `None` when the request was not JSON, `model` is the
/// model name without its knobs.
pub(crate) fn messages(
    body: Option<&Value>,
    model: Option<&str>,
    knobs: &MockConfig,
    seq: u64,
    stats: &Stats,
) -> Answer {
    let request = match parse(body, model) {
        Ok(request) => request,
        Err(message) => return Format::Anthropic.invalid_request(&message),
    };
    let message = respond(&request, knobs, seq, stats);
    if request.body.get("stream").and_then(Value::as_bool) == Some(true) {
        Answer::Stream(Box::new(stream::MessageStream::new(message)))
    } else {
        Answer::Json { status: StatusCode::OK, body: to_json(&message.to_wire()), tokens: message.usage.output_tokens }
    }
}

/// Checks what Anthropic checks: a JSON object with `model`, `messages`, `max_tokens`,
/// and thinking preserved when thinking is on.
fn parse<'a>(body: Option<&'a Value>, model: Option<&'a str>) -> Result<Request<'a>, String> {
    let Some(body) = body.filter(|b| b.is_object()) else {
        return Err("There was an error parsing the body of your request: expected a JSON object.".into());
    };
    let model = model.ok_or("model: Field required")?;
    let messages = body.get("messages").and_then(Value::as_array).ok_or("messages: Field required")?;
    if messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let max_tokens = match body.get("max_tokens") {
        None | Some(Value::Null) => return Err("max_tokens: Field required".into()),
        Some(value) => value.as_u64().ok_or("max_tokens: Input should be a valid integer")?,
    };
    let thinking = matches!(body.pointer("/thinking/type").and_then(Value::as_str), Some("enabled" | "adaptive"));
    if thinking {
        check_thinking_preserved(messages)?;
    }
    Ok(Request { body, messages, model, max_tokens, thinking })
}

/// Anthropic's rule with thinking on: the last assistant message, when it calls tools,
/// must start with the thinking that came with those calls.
fn check_thinking_preserved(messages: &[Value]) -> Result<(), String> {
    let Some((index, blocks)) = messages
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, m)| (role(m) == Some("assistant")).then(|| (i, m.get("content").and_then(Value::as_array))))
    else {
        return Ok(());
    };
    let blocks = blocks.map_or(&[][..], Vec::as_slice);
    let first = blocks.first().and_then(block_type).unwrap_or("text");
    if !blocks.iter().any(|b| block_type(b) == Some("tool_use")) || matches!(first, "thinking" | "redacted_thinking") {
        return Ok(());
    }
    Err(format!(
        "messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
         `{first}`. When `thinking` is enabled, a final `assistant` message must start with a \
         thinking block (preceding the lastmost set of `tool_use` and `tool_result` blocks): \
         thinking blocks from previous turns must be preserved, unchanged. To avoid this \
         requirement, disable `thinking`."
    ))
}

/// Decides the reply to a valid request.
fn respond(request: &Request<'_>, knobs: &MockConfig, seq: u64, stats: &Stats) -> Message {
    let body = request.body;
    let system_tokens = match body.get("system") {
        None | Some(Value::Null) => 0,
        Some(system) => content_tokens(system) + 1,
    };
    let prompt_tokens: u64 = system_tokens
        + request.messages.iter().map(|m| content_tokens(m.get("content").unwrap_or(&Value::Null)) + 1).sum::<u64>();
    let tool_result = request
        .messages
        .last()
        .filter(|m| role(m) == Some("user"))
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .and_then(|blocks| blocks.iter().find(|b| block_type(b) == Some("tool_result")));
    let chosen = match tool_result {
        Some(_) => Vec::new(),
        None => chosen_tools(body, knobs.calls),
    };

    let (body_, stop) = if knobs.fault == Some(Fault::Safety) {
        (Body::Blocked, Stop::Blocked)
    } else if chosen.is_empty() {
        let prompt = match tool_result {
            Some(result) => content_text(result.get("content").unwrap_or(&Value::Null)),
            None => request
                .messages
                .iter()
                .rev()
                .find(|m| role(m) == Some("user"))
                .and_then(|m| m.get("content"))
                .map_or(Cow::Borrowed(""), content_text),
        };
        let stop_sequences: Vec<&str> = body
            .get("stop_sequences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let (text, stop) = turn::reply(&prompt, knobs, Some(request.max_tokens), &stop_sequences);
        (Body::Text(text), stop)
    } else {
        let calls = turn::calls(&chosen, "toolu_mock_", stats);
        (Body::Calls(calls), Stop::ToolUse)
    };
    let turn = Turn { thinking: request.thinking.then(|| format!("sig_mock_{seq}")), body: body_, stop };
    let cached = knobs.cached_tokens.min(prompt_tokens);
    let written = knobs.cache_write_tokens.min(prompt_tokens - cached);
    Message {
        id: format!("msg_mock_{seq}"),
        model: request.model.to_owned(),
        usage: Usage {
            input_tokens: prompt_tokens - cached - written,
            cache_creation_input_tokens: written,
            cache_read_input_tokens: cached,
            output_tokens: turn.thinking_tokens() + turn.body_tokens(),
            server_tool_use: (knobs.web_searches > 0)
                .then_some(ServerToolUse { web_search_requests: knobs.web_searches }),
        },
        turn,
    }
}

/// The client tools to call, as (name, input schema), following `tool_choice`: `none`,
/// `tool` (the named one), `any` (the first `max` unless `disable_parallel_tool_use`),
/// `auto` (the first).
fn chosen_tools(body: &Value, max: u64) -> Vec<(&str, &Value)> {
    let tools: Vec<(&str, &Value)> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| block_type(t).is_none_or(|k| k == "custom"))
        .filter_map(|t| {
            let name = t.get("name")?.as_str()?;
            Some((name, t.get("input_schema").unwrap_or(&Value::Null)))
        })
        .collect();
    if tools.is_empty() {
        return tools;
    }
    let choice = body.get("tool_choice").unwrap_or(&Value::Null);
    let parallel = choice.get("disable_parallel_tool_use").and_then(Value::as_bool) != Some(true);
    match block_type(choice).unwrap_or("auto") {
        "none" => Vec::new(),
        "tool" => turn::named(&tools, choice.get("name").and_then(Value::as_str).unwrap_or(""), max),
        "any" => turn::pick(tools, true, parallel, max),
        _ => turn::pick(tools, false, parallel, max),
    }
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

/// Tokens of a content (or `system`, or `tool_result` content): a string, or blocks
/// whose text, thinking and tool results count.
fn content_tokens(content: &Value) -> u64 {
    match content {
        Value::String(s) => count_tokens(s),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match block_type(b) {
                Some("text") => b.get("text").and_then(Value::as_str).map_or(0, count_tokens),
                Some("thinking") => b.get("thinking").and_then(Value::as_str).map_or(0, count_tokens),
                Some("tool_result") => b.get("content").map_or(0, content_tokens),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// A content's text: the string, or its text blocks joined by spaces.
fn content_text(content: &Value) -> Cow<'_, str> {
    match content {
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(blocks) => Cow::Owned(
            blocks
                .iter()
                .filter(|b| block_type(b) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => Cow::Borrowed(""),
    }
}

/// The wire name of a stop reason.
fn stop_reason(stop: &Stop) -> &'static str {
    match stop {
        Stop::End => "end_turn",
        Stop::MaxTokens => "max_tokens",
        Stop::Sequence(_) => "stop_sequence",
        Stop::ToolUse => "tool_use",
        Stop::Blocked => "refusal",
    }
}

impl Message {
    /// The `message` object.
    fn to_wire(&self) -> wire::Message<'_> {
        let mut content = Vec::new();
        if let Some(signature) = &self.turn.thinking {
            content.push(wire::Block::Thinking { thinking: THINKING, signature });
        }
        match &self.turn.body {
            Body::Text(text) if !text.is_empty() => content.push(wire::Block::Text { text }),
            Body::Calls(calls) => {
                content.extend(calls.iter().map(|c| wire::Block::ToolUse { id: &c.id, name: &c.name, input: &c.input }))
            }
            Body::Text(_) | Body::Blocked => {}
        }
        wire::Message {
            stop_reason: Some(stop_reason(&self.turn.stop)),
            stop_sequence: match &self.turn.stop {
                Stop::Sequence(s) => Some(s),
                _ => None,
            },
            ..self.head(content, self.usage)
        }
    }

    /// The `message` object with `content`, no stop reason yet, and `usage`.
    fn head<'a>(&'a self, content: Vec<wire::Block<'a>>, usage: Usage) -> wire::Message<'a> {
        wire::Message {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content,
            stop_reason: None,
            stop_sequence: None,
            usage,
        }
    }
}

/// Serializes a value made of strings and numbers, which cannot fail.
fn to_json(value: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}
