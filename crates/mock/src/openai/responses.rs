//! The Responses API, `POST /v1/responses`: `input` (a string or items: messages, function
//! calls and their outputs, reasoning), `instructions`, function `tools` and `tool_choice`,
//! `max_output_tokens`, `reasoning`; answered with a `response` object (a reasoning item
//! when the effort asks for thinking, then a message or function calls) or, with `stream`,
//! the event sequence of [`stream`].

use std::borrow::Cow;

use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::{MODELS, content_text, content_tokens, invalid_request, not_json, to_json};
use crate::knobs::{Fault, MockConfig};
use crate::reply::count_tokens;
use crate::server::Answer;
use crate::stats::Stats;
use crate::turn::{self, Call, Stop, THINKING};

mod stream;
mod wire;

/// A response, whether sent whole or streamed.
struct Response {
    id: String,
    created_at: i64,
    model: String,
    echo: Echo,
    output: Vec<Item>,
    /// Why the response is incomplete (`max_output_tokens`, `content_filter`), if it is.
    incomplete: Option<&'static str>,
    usage: Usage,
}

/// An output item.
enum Item {
    /// Thinking, summarized as [`THINKING`].
    Reasoning {
        id: String,
        encrypted_content: Option<String>,
    },
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call: Call,
    },
    /// A web search OpenAI ran (the `web_searches` knob), billed per call.
    WebSearch {
        id: String,
        query: String,
    },
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Usage {
    input_tokens: u64,
    input_tokens_details: InputDetails,
    output_tokens: u64,
    output_tokens_details: OutputDetails,
    total_tokens: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct InputDetails {
    cached_tokens: u64,
    cache_write_tokens: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct OutputDetails {
    reasoning_tokens: u64,
}

/// The request's settings a response repeats, with OpenAI's defaults.
#[derive(Serialize)]
struct Echo {
    instructions: Value,
    max_output_tokens: Value,
    parallel_tool_calls: bool,
    previous_response_id: Value,
    reasoning: Value,
    store: bool,
    temperature: Value,
    text: Value,
    tool_choice: Value,
    tools: Value,
    top_p: Value,
    truncation: Value,
    user: Value,
    metadata: Value,
}

impl Echo {
    fn of(body: &Value) -> Echo {
        let or = |key: &str, default: Value| body.get(key).filter(|v| !v.is_null()).cloned().unwrap_or(default);
        let reasoning = body.get("reasoning").unwrap_or(&Value::Null);
        Echo {
            instructions: or("instructions", Value::Null),
            max_output_tokens: or("max_output_tokens", Value::Null),
            parallel_tool_calls: body.get("parallel_tool_calls").and_then(Value::as_bool) != Some(false),
            previous_response_id: or("previous_response_id", Value::Null),
            reasoning: json!({
                "effort": reasoning.get("effort").cloned().unwrap_or(Value::Null),
                "summary": reasoning.get("summary").cloned().unwrap_or(Value::Null),
            }),
            store: body.get("store").and_then(Value::as_bool) != Some(false),
            temperature: or("temperature", json!(1.0)),
            text: or("text", json!({"format": {"type": "text"}})),
            tool_choice: or("tool_choice", json!("auto")),
            tools: or("tools", json!([])),
            top_p: or("top_p", json!(1.0)),
            truncation: or("truncation", json!("disabled")),
            user: or("user", Value::Null),
            metadata: or("metadata", json!({})),
        }
    }
}

/// `POST /v1/responses`; `model` is the model name without its knobs.
pub(crate) fn responses(
    body: Option<&Value>,
    model: Option<&str>,
    knobs: &MockConfig,
    seq: u64,
    stats: &Stats,
) -> Answer {
    let Some(body) = body.filter(|b| b.is_object()) else {
        return not_json();
    };
    let items: Cow<'_, [Value]> = match body.get("input") {
        None => return invalid_request("Missing required parameter: 'input'."),
        Some(Value::String(text)) => Cow::Owned(vec![json!({"role": "user", "content": text})]),
        Some(Value::Array(items)) => Cow::Borrowed(items),
        Some(_) => return invalid_request("Invalid type for 'input': expected a string or an array of input items."),
    };
    let response = respond(body, &items, model.unwrap_or(MODELS[0]), knobs, seq, stats);
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        Answer::Stream(Box::new(stream::ResponseStream::new(response)))
    } else {
        let tokens = response.usage.output_tokens;
        Answer::Json { status: StatusCode::OK, body: to_json(&response.to_wire(true)), tokens }
    }
}

/// Decides the response to a well-formed request.
fn respond(body: &Value, items: &[Value], model: &str, knobs: &MockConfig, seq: u64, stats: &Stats) -> Response {
    let instructions = body.get("instructions").and_then(Value::as_str).map_or(0, |s| count_tokens(s) + 1);
    let input_tokens = instructions + items.iter().map(|i| item_tokens(i) + 1).sum::<u64>();
    let last = items.last();
    let answers_tool = last.is_some_and(|i| kind(i).ends_with("_call_output"));
    let blocked = knobs.fault == Some(Fault::Safety);
    let reasoning = !blocked && turn::reasons(body.pointer("/reasoning/effort").and_then(Value::as_str));
    let reasoning_tokens = if reasoning { count_tokens(THINKING) } else { 0 };
    let chosen = if answers_tool || blocked { Vec::new() } else { chosen_tools(body, knobs.calls) };

    let mut output = Vec::new();
    if reasoning {
        let encrypted = body
            .get("include")
            .and_then(Value::as_array)
            .is_some_and(|i| i.iter().any(|v| v == "reasoning.encrypted_content"));
        let encrypted_content = encrypted.then(|| format!("gAAAAA_mock_reasoning_{seq}"));
        output.push(Item::Reasoning { id: format!("rs_mock_{seq}"), encrypted_content });
    }
    if !blocked {
        let query = items.iter().rev().find_map(|i| i.get("content")).map_or(Cow::Borrowed(""), content_text);
        output.extend(
            (0..knobs.web_searches)
                .map(|n| Item::WebSearch { id: format!("ws_mock_{seq}_{n}"), query: query.to_string() }),
        );
    }
    let (incomplete, body_tokens) = if blocked {
        (Some("content_filter"), 0)
    } else if chosen.is_empty() {
        let prompt = match last {
            Some(item) if answers_tool => content_text(item.get("output").unwrap_or(&Value::Null)),
            _ => items
                .iter()
                .rev()
                .find(|i| kind(i) == "message" && i.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|i| i.get("content"))
                .map_or(Cow::Borrowed(""), content_text),
        };
        let limit = body.get("max_output_tokens").and_then(Value::as_u64).map(|m| m.saturating_sub(reasoning_tokens));
        let (text, stop) = turn::reply(&prompt, knobs, limit, &[]);
        let tokens = count_tokens(&text);
        output.push(Item::Message { id: format!("msg_mock_{seq}"), text });
        ((stop == Stop::MaxTokens).then_some("max_output_tokens"), tokens)
    } else {
        let calls = turn::calls(&chosen, "call_mock_", stats);
        let tokens = calls.iter().map(Call::tokens).sum();
        output.extend(
            calls.into_iter().enumerate().map(|(i, call)| Item::Call { id: format!("fc_mock_{seq}_{i}"), call }),
        );
        (None, tokens)
    };

    let output_tokens = reasoning_tokens + body_tokens;
    Response {
        id: format!("resp_mock_{seq}"),
        created_at: tokenrouter_core::clock::now_unix(),
        model: model.to_owned(),
        echo: Echo::of(body),
        output,
        incomplete,
        usage: Usage {
            input_tokens,
            input_tokens_details: InputDetails {
                cached_tokens: knobs.cached_tokens.min(input_tokens),
                cache_write_tokens: 0,
            },
            output_tokens,
            output_tokens_details: OutputDetails { reasoning_tokens },
            total_tokens: input_tokens + output_tokens,
        },
    }
}

/// The function tools to call, as (name, parameters schema): none unless there are
/// function tools (others, such as `web_search` or `namespace`, are never called) and
/// `tool_choice` is not `"none"`; the named one for `{"type":"function","name"}`; the
/// first `max` (the `calls` knob) for `"required"` with parallel calls allowed; otherwise
/// the first.
fn chosen_tools(body: &Value, max: u64) -> Vec<(&str, &Value)> {
    let functions: Vec<(&str, &Value)> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|t| Some((t.get("name")?.as_str()?, t.get("parameters").unwrap_or(&Value::Null))))
        .collect();
    if functions.is_empty() {
        return functions;
    }
    let choice = body.get("tool_choice").unwrap_or(&Value::Null);
    if choice.get("type").and_then(Value::as_str) == Some("function") {
        return turn::named(&functions, choice.get("name").and_then(Value::as_str).unwrap_or(""), max);
    }
    let parallel = body.get("parallel_tool_calls").and_then(Value::as_bool) != Some(false);
    match choice.as_str() {
        Some("none") => Vec::new(),
        Some("required") => turn::pick(functions, true, parallel, max),
        _ => turn::pick(functions, false, parallel, max),
    }
}

/// An input item's type; an item without one is a message.
fn kind(item: &Value) -> &str {
    item.get("type").and_then(Value::as_str).unwrap_or("message")
}

/// Tokens of an input item: a message's text, a call's arguments, a call output's text,
/// a reasoning item's summary.
fn item_tokens(item: &Value) -> u64 {
    let text = |key: &str| item.get(key).map_or(0, content_tokens);
    match kind(item) {
        "message" => text("content"),
        "function_call" => text("arguments"),
        "custom_tool_call" => text("input"),
        "reasoning" => text("summary"),
        k if k.ends_with("_call_output") => text("output"),
        _ => 0,
    }
}

impl Item {
    /// The text a reasoning item (its summary) or a message streams.
    fn text(&self) -> &str {
        match self {
            Item::Reasoning { .. } => THINKING,
            Item::Message { text, .. } => text,
            Item::Call { .. } | Item::WebSearch { .. } => "",
        }
    }

    fn id(&self) -> &str {
        match self {
            Item::Reasoning { id, .. }
            | Item::Message { id, .. }
            | Item::Call { id, .. }
            | Item::WebSearch { id, .. } => id,
        }
    }
}

impl Response {
    /// The `response` object: `done`, with its output and usage; else as it starts, in
    /// progress with neither.
    fn to_wire(&self, done: bool) -> wire::Response<'_> {
        let status = self.status(done);
        wire::Response {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status,
            background: false,
            error: None,
            incomplete_details: self.incomplete.filter(|_| done).map(|reason| wire::Incomplete { reason }),
            model: &self.model,
            output: if done { self.output.iter().map(|item| self.item_wire(item, true)).collect() } else { Vec::new() },
            echo: &self.echo,
            usage: done.then_some(&self.usage),
        }
    }

    /// The status of the response or an item: in progress until `done`.
    fn status(&self, done: bool) -> &'static str {
        match (done, self.incomplete) {
            (false, _) => "in_progress",
            (true, None) => "completed",
            (true, Some(_)) => "incomplete",
        }
    }

    /// An output item: `done`, or as it is added (empty, in progress).
    fn item_wire<'a>(&'a self, item: &'a Item, done: bool) -> wire::OutputItem<'a> {
        let status = self.status(done);
        match item {
            Item::Reasoning { id, encrypted_content } => wire::OutputItem::Reasoning {
                id,
                summary: if done { vec![wire::summary(THINKING)] } else { Vec::new() },
                encrypted_content: encrypted_content.as_deref(),
            },
            Item::Message { id, text } => wire::OutputItem::Message {
                id,
                status,
                role: "assistant",
                content: if done { vec![wire::output_text(text)] } else { Vec::new() },
            },
            Item::Call { id, call } => wire::OutputItem::FunctionCall {
                id,
                status,
                arguments: if done { &call.json } else { "" },
                call_id: &call.id,
                name: &call.name,
            },
            Item::WebSearch { id, query } => {
                wire::OutputItem::WebSearchCall { id, status, action: wire::SearchAction { kind: "search", query } }
            }
        }
    }
}
