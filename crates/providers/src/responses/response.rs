//! The Response object and its output items, built from the canonical answer: what
//! `present` returns, what the stream's `response.*` events carry, the record `keep`
//! makes of it, and the sealed reasoning blocks handed back in `encrypted_content`.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokenrouter_core::Usage;
use tokenrouter_core::chat::{ChatCompletion, ThinkingBlock};

use super::Ids;
use super::wire::{Item, Record, ResponsesRequest};

/// `encrypted_content` that this gateway wrote: this prefix, then base64 of the reasoning
/// blocks' JSON. Anything else (OpenAI's own encrypted reasoning) is not ours to read.
const SEAL: &str = "tr1:";

/// The reasoning blocks as an opaque `encrypted_content` string.
pub(super) fn seal(blocks: &[ThinkingBlock]) -> String {
    format!("{SEAL}{}", BASE64.encode(serde_json::to_vec(blocks).unwrap_or_default()))
}

/// The reasoning blocks in an `encrypted_content` string this gateway sealed.
pub(super) fn unseal(sealed: &str) -> Option<Vec<ThinkingBlock>> {
    let bytes = BASE64.decode(sealed.strip_prefix(SEAL)?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What every Response object of one request states besides its output.
#[derive(Debug)]
pub(super) struct Shape {
    pub ids: Ids,
    /// The model the client asked for, which every Response object states (the server
    /// maps it to a deployment; the upstream's own name for it is not repeated).
    pub model: String,
    pub echo: Echo,
    /// A flattened function name → (namespace, name).
    pub namespaced: HashMap<String, (String, String)>,
    /// The chat function names that stand for custom tools: their calls are stated as
    /// `custom_tool_call` items.
    pub custom: HashSet<String>,
    /// Reasoning items carry the sealed blocks.
    pub sealed_reasoning: bool,
}

/// The request's settings a Response object repeats.
#[derive(Debug)]
pub(super) struct Echo {
    instructions: Option<String>,
    max_output_tokens: Option<u64>,
    parallel_tool_calls: bool,
    previous_response_id: Option<String>,
    reasoning: Value,
    store: bool,
    temperature: Option<f64>,
    text: Value,
    tool_choice: Value,
    tools: Value,
    top_p: Option<f64>,
    user: Option<String>,
    metadata: Value,
}

impl Echo {
    pub(super) fn of(request: &ResponsesRequest) -> Echo {
        let reasoning = request.reasoning.as_ref();
        let mut text = json!({"format": {"type": "text"}});
        if let Some(config) = &request.text {
            if let Some(format) = &config.format {
                text["format"] = serde_json::to_value(format).unwrap_or_default();
            }
            if let Some(verbosity) = &config.verbosity {
                text["verbosity"] = json!(verbosity);
            }
        }
        Echo {
            instructions: request.instructions.clone(),
            max_output_tokens: request.max_output_tokens,
            parallel_tool_calls: request.parallel_tool_calls.unwrap_or(true),
            previous_response_id: request.previous_response_id.clone(),
            reasoning: json!({
                "effort": reasoning.and_then(|r| r.effort.as_deref()),
                "summary": reasoning.and_then(|r| r.summary.as_deref()),
            }),
            store: request.store.unwrap_or(true),
            temperature: request.temperature,
            text,
            tool_choice: request.tool_choice.clone().filter(|c| !c.is_null()).unwrap_or_else(|| json!("auto")),
            tools: request.tools.as_ref().map_or_else(|| json!([]), |tools| echoed_tools(json!(tools))),
            top_p: request.top_p,
            user: request.user.clone(),
            metadata: request.metadata.clone().filter(|m| !m.is_null()).unwrap_or_else(|| json!({})),
        }
    }
}

/// The request's tools as a response states them: a function tool always has `strict` and
/// `parameters` (null when the request left them out), as the Response object requires.
fn echoed_tools(mut tools: Value) -> Value {
    for tool in tools.as_array_mut().into_iter().flatten() {
        if let Some(object) = tool.as_object_mut().filter(|o| o.get("type").and_then(Value::as_str) == Some("function"))
        {
            object.entry("strict").or_insert(Value::Null);
            object.entry("parameters").or_insert(Value::Null);
        }
    }
    tools
}

impl Shape {
    /// `{prefix}_{response id without resp_}_{output index}`: stable for one response.
    pub(super) fn item_id(&self, prefix: &str, index: usize) -> String {
        let id = &self.ids.response_id;
        format!("{prefix}_{}_{index}", id.strip_prefix("resp_").unwrap_or(id))
    }

    /// A function's name and namespace as the client declared them.
    pub(super) fn declared<'a>(&'a self, flat: &'a str) -> (&'a str, Option<&'a str>) {
        match self.namespaced.get(flat) {
            Some((namespace, name)) => (name, Some(namespace)),
            None => (flat, None),
        }
    }

    pub(super) fn reasoning_item(&self, id: &str, text: &str, blocks: &[ThinkingBlock]) -> Value {
        let summary = if text.is_empty() { json!([]) } else { json!([{"type": "summary_text", "text": text}]) };
        let mut item = json!({"type": "reasoning", "id": id, "summary": summary});
        if self.sealed_reasoning && !blocks.is_empty() {
            item["encrypted_content"] = json!(seal(blocks));
        }
        item
    }

    /// Whether a chat function name stands for a custom tool.
    pub(super) fn is_custom(&self, flat: &str) -> bool {
        self.custom.contains(flat)
    }

    /// The id prefix of a call's output item.
    pub(super) fn call_prefix(custom: bool) -> &'static str {
        if custom { "ctc" } else { "fc" }
    }

    /// A `function_call` item, or with `custom` a `custom_tool_call` item whose input is
    /// read out of the arguments ([`custom_input`]).
    pub(super) fn call_item(
        &self,
        custom: bool,
        id: &str,
        status: &str,
        call_id: &str,
        flat: &str,
        arguments: &str,
    ) -> Value {
        let (name, namespace) = self.declared(flat);
        let mut item = if custom {
            json!({
                "type": "custom_tool_call",
                "id": id,
                "call_id": call_id,
                "name": name,
                "input": custom_input(arguments),
                "status": status,
            })
        } else {
            json!({
                "type": "function_call",
                "id": id,
                "call_id": call_id,
                "name": name,
                "arguments": arguments,
                "status": status,
            })
        };
        if let Some(namespace) = namespace {
            item["namespace"] = json!(namespace);
        }
        item
    }

    /// The whole Response object.
    pub(super) fn response(&self, status: &Status, output: Vec<Value>, usage: Option<Usage>) -> Value {
        let echo = &self.echo;
        json!({
            "id": self.ids.response_id,
            "object": "response",
            "created_at": self.ids.created_at,
            "status": status.name(),
            "error": match status {
                Status::Failed(message) => json!({"code": "server_error", "message": message}),
                _ => Value::Null,
            },
            "incomplete_details": match status {
                Status::Incomplete(reason) => json!({"reason": reason}),
                _ => Value::Null,
            },
            "instructions": echo.instructions,
            "max_output_tokens": echo.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": echo.parallel_tool_calls,
            "previous_response_id": echo.previous_response_id,
            "reasoning": echo.reasoning,
            "store": echo.store,
            "temperature": echo.temperature,
            "text": echo.text,
            "tool_choice": echo.tool_choice,
            "tools": echo.tools,
            "top_p": echo.top_p,
            "truncation": "disabled",
            "usage": usage.map(usage_json),
            "user": echo.user,
            "metadata": echo.metadata,
        })
    }
}

/// Where a response stands.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Status {
    InProgress,
    Completed,
    /// `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
    Failed(String),
}

impl Status {
    /// The status a chat `finish_reason` means.
    pub(super) fn of(finish_reason: Option<&str>) -> Status {
        match finish_reason {
            Some("length") => Status::Incomplete("max_output_tokens"),
            Some("content_filter") => Status::Incomplete("content_filter"),
            _ => Status::Completed,
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Incomplete(_) => "incomplete",
            Status::Failed(_) => "failed",
        }
    }

    /// The status of the output item the response ended in.
    pub(super) fn last_item(&self) -> &'static str {
        match self {
            Status::Incomplete(_) => "incomplete",
            _ => "completed",
        }
    }
}

/// One part of an assistant message.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Part {
    Text(String),
    Refusal(String),
}

impl Part {
    pub(super) fn json(&self) -> Value {
        match self {
            Part::Text(text) => json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []}),
            Part::Refusal(refusal) => json!({"type": "refusal", "refusal": refusal}),
        }
    }
}

pub(super) fn message_item(id: &str, status: &str, parts: &[Part]) -> Value {
    let content: Vec<Value> = parts.iter().map(Part::json).collect();
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

/// A custom tool's input from the arguments of the chat call it became: the `input` string
/// of `{"input": "…"}`, or the arguments text as it is when the model sent anything else.
pub(super) fn custom_input(arguments: &str) -> String {
    serde_json::from_str::<Value>(arguments)
        .ok()
        .and_then(|parsed| parsed.get("input")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| arguments.to_owned())
}

/// The Responses usage object.
pub(super) fn usage_json(usage: Usage) -> Value {
    json!({
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total(),
    })
}

/// A whole answer as a Response object: reasoning, then the message, then one
/// `function_call` or `custom_tool_call` per tool call.
pub(super) fn present(shape: &Shape, completion: &ChatCompletion, usage: Usage) -> Value {
    let choice = completion.choices.first();
    let status = Status::of(choice.and_then(|c| c.finish_reason.as_deref()));
    let mut output = Vec::new();
    if let Some(message) = choice.map(|c| &c.message) {
        let reasoning = message.reasoning_content.as_deref().unwrap_or_default();
        let blocks = message.thinking_blocks.as_deref().unwrap_or_default();
        if !reasoning.is_empty() || !blocks.is_empty() {
            output.push(shape.reasoning_item(&shape.item_id("rs", output.len()), reasoning, blocks));
        }
        let mut parts = Vec::new();
        if let Some(text) = message.content.as_ref().filter(|t| !t.is_empty()) {
            parts.push(Part::Text(text.clone()));
        }
        if let Some(refusal) = message.refusal.as_ref().filter(|r| !r.is_empty()) {
            parts.push(Part::Refusal(refusal.clone()));
        }
        let calls = message.tool_calls.as_deref().unwrap_or_default();
        if !parts.is_empty() || (calls.is_empty() && output.is_empty()) {
            if parts.is_empty() {
                parts.push(Part::Text(String::new()));
            }
            output.push(message_item(&shape.item_id("msg", output.len()), "completed", &parts));
        }
        for call in calls {
            let (name, arguments) = (&call.function.name, &call.function.arguments);
            let custom = shape.is_custom(name);
            let id = shape.item_id(Shape::call_prefix(custom), output.len());
            output.push(shape.call_item(custom, &id, "completed", &call.id, name, arguments));
        }
    }
    if output.is_empty() {
        output.push(message_item(&shape.item_id("msg", 0), "completed", &[Part::Text(String::new())]));
    }
    if let Some(last) = output.last_mut().filter(|item| item.get("status").is_some()) {
        last["status"] = json!(status.last_item());
    }
    shape.response(&status, output, Some(usage))
}

/// The record of a finished answer: what its turn added to the conversation — the
/// request's input items, then the answer's output items.
pub(super) fn keep(input: &[Item], answer: &[u8]) -> Option<(String, Vec<u8>)> {
    let answer: Value = serde_json::from_slice(answer).ok()?;
    let id = answer.get("id")?.as_str()?.to_owned();
    let mut items = input.to_vec();
    for item in answer.get("output")?.as_array()? {
        items.push(serde_json::from_value(item.clone()).ok()?);
    }
    let record = serde_json::to_vec(&Record { version: Record::VERSION, items }).ok()?;
    Some((id, record))
}
