//! Every answer the translations state conforms to the published shape of its surface
//! (the JSON Schemas committed under tests/schemas): random valid requests of each surface
//! (chat, responses, messages, completions, Gemini's generateContent) are translated to each provider kind (openai,
//! anthropic, gemini), a random answer of that provider is decoded back, and the whole
//! answer, each streamed event, a mid-stream failure and an error body are validated.
//! The schemas are also checked against the providers' documented examples (fixtures).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};
use tokenrouter_core::chat::{ChatCompletion, ChatRequest};
use tokenrouter_core::{ErrorEnvelope, Usage};
use tokenrouter_providers::adapter::{Adapter, ResponseMeta, Target};
use tokenrouter_providers::anthropic::ANTHROPIC;
use tokenrouter_providers::gemini::GEMINI;
use tokenrouter_providers::generate_content::{self, StreamForm};
use tokenrouter_providers::surface::{ChunkFeed, Surface};
use tokenrouter_providers::{completions, messages, responses};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The validators of tests/schemas, by name ("openai/chat_completion").
fn validators() -> &'static HashMap<String, jsonschema::Validator> {
    static ALL: OnceLock<HashMap<String, jsonschema::Validator>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = HashMap::new();
        for dir in ["openai", "anthropic", "gemini"] {
            for entry in std::fs::read_dir(repo().join("tests/schemas").join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let schema: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                let name = format!("{dir}/{}", path.file_stem().unwrap().to_str().unwrap());
                let validator = jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
                all.insert(name, validator);
            }
        }
        all
    })
}

/// The violations of schema `name` by `value` (empty when it conforms).
fn violations(name: &str, value: &Value) -> Vec<String> {
    let validator = validators().get(name).unwrap_or_else(|| panic!("no schema {name}"));
    validator.iter_errors(value).take(5).map(|e| format!("{name} at {}: {e}", e.instance_path())).collect()
}

fn conforms(name: &str, value: &Value, what: &str) -> Result<(), TestCaseError> {
    let found = violations(name, value);
    prop_assert!(found.is_empty(), "{what}: {found:#?}\n{}", serde_json::to_string_pretty(value).unwrap());
    Ok(())
}

/// The (event name, JSON data) of each event of an SSE stream; `[DONE]` is left out.
fn sse(bytes: &[u8]) -> Vec<(Option<String>, Value)> {
    let text = String::from_utf8(bytes.to_vec()).unwrap().replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        let data = data.join("\n");
        if data.is_empty() || data == "[DONE]" {
            continue;
        }
        out.push((name, serde_json::from_str(&data).unwrap_or_else(|e| panic!("not JSON ({e}): {data}"))));
    }
    out
}

/// Each event of a stream against `schema` (a bare `{"error": …}` against `error`); an
/// event's SSE name, when it has one, is its `type`.
/// `array`: Gemini's stream without `alt=sse`, one JSON array of answers.
fn stream_conforms(schema: &str, error: &str, bytes: &[u8], what: &str, array: bool) -> Result<(), TestCaseError> {
    let events = if array {
        let items: Vec<Value> =
            serde_json::from_slice(bytes).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
        items.into_iter().map(|item| (None, item)).collect()
    } else {
        sse(bytes)
    };
    prop_assert!(!events.is_empty(), "{}: no event", what);
    for (i, (name, event)) in events.into_iter().enumerate() {
        let bare_error = event.get("error").is_some() && event.get("type").is_none();
        conforms(if bare_error { error } else { schema }, &event, &format!("{what}, event {i}"))?;
        if let (Some(name), Some(kind)) = (name, event.get("type").and_then(Value::as_str)) {
            prop_assert_eq!(name.as_str(), kind, "{}, event {}: SSE name and type differ", what, i);
        }
    }
    Ok(())
}

// ---- What is generated -------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OpenAi,
    Anthropic,
    Gemini,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SurfaceKind {
    Chat,
    Responses,
    Messages,
    Completions,
    Gemini,
}

/// A request: its text, what it may add, and the tools it offers.
#[derive(Debug, Clone)]
struct Ask {
    prompt: String,
    system: Option<String>,
    tools: Vec<String>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    stream: bool,
    include_usage: bool,
    /// Gemini's stream without `alt=sse`: one JSON array.
    array: bool,
}

/// An answer of the provider: reasoning, text, tool calls (index into the tools, arguments
/// as JSON text), whether it hit the output limit, and the token counts.
#[derive(Debug, Clone)]
struct Reply {
    reasoning: Option<String>,
    text: String,
    calls: Vec<(usize, Value)>,
    truncated: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
}

fn words() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => "[a-zA-Z0-9]{1,8}",
            1 => Just("\"quoted\" \\ back\nline".to_owned()),
            1 => Just("ünï — 表 🎉".to_owned()),
        ],
        1..6,
    )
    .prop_map(|w| w.join(" "))
}

fn ask() -> impl Strategy<Value = Ask> {
    (
        words(),
        prop::option::of(words()),
        prop::collection::btree_set("[a-z][a-z_]{0,12}", 0..3),
        prop::option::of(1u64..4096),
        prop::option::of(0.0f64..2.0),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(prompt, system, tools, max_tokens, temperature, stream, include_usage, array)| Ask {
            prompt,
            system,
            tools: tools.into_iter().collect(),
            max_tokens,
            temperature,
            stream,
            include_usage,
            array,
        })
}

fn arguments() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        "[a-z]{1,6}",
        prop_oneof![words().prop_map(Value::from), any::<i32>().prop_map(Value::from)],
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn reply() -> impl Strategy<Value = Reply> {
    (
        prop::option::of(words()),
        prop_oneof![Just(String::new()), words()],
        prop::collection::vec((0usize..3, arguments()), 0..3),
        any::<bool>(),
        1u64..5000,
        1u64..5000,
    )
        .prop_map(|(reasoning, text, calls, truncated, prompt_tokens, completion_tokens)| Reply {
            reasoning,
            text,
            calls,
            truncated,
            prompt_tokens,
            completion_tokens,
        })
}

impl Reply {
    /// The calls it makes with the tools `ask` offers (none when it offers none).
    fn fit(mut self, ask: &Ask, surface: SurfaceKind) -> Reply {
        if ask.tools.is_empty() || surface == SurfaceKind::Completions {
            self.calls.clear();
        }
        for call in &mut self.calls {
            call.0 %= ask.tools.len().max(1);
        }
        if self.text.is_empty() && self.calls.is_empty() {
            self.text = "ok".to_owned();
        }
        self
    }

    fn call_name<'a>(&self, ask: &'a Ask, i: usize) -> &'a str {
        &ask.tools[self.calls[i].0]
    }
}

// ---- Requests of each surface ----------------------------------------------------------------

fn request_body(surface: SurfaceKind, ask: &Ask) -> Value {
    let mut body = match surface {
        SurfaceKind::Chat => {
            let mut messages = Vec::new();
            if let Some(system) = &ask.system {
                messages.push(json!({"role": "system", "content": system}));
            }
            messages.push(json!({"role": "user", "content": ask.prompt}));
            let tools: Vec<Value> = ask
                .tools
                .iter()
                .map(|n| json!({"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}))
                .collect();
            let mut body = json!({"model": "m", "messages": messages});
            if !tools.is_empty() {
                body["tools"] = tools.into();
            }
            if let Some(m) = ask.max_tokens {
                body["max_tokens"] = m.into();
            }
            body
        }
        SurfaceKind::Responses => {
            let tools: Vec<Value> = ask
                .tools
                .iter()
                .map(|n| json!({"type": "function", "name": n, "parameters": {"type": "object", "properties": {}}}))
                .collect();
            let mut body = json!({"model": "m", "input": [{"role": "user", "content": ask.prompt}], "tools": tools});
            if let Some(system) = &ask.system {
                body["instructions"] = system.clone().into();
            }
            if let Some(m) = ask.max_tokens {
                body["max_output_tokens"] = m.into();
            }
            body
        }
        SurfaceKind::Messages => {
            let tools: Vec<Value> = ask
                .tools
                .iter()
                .map(|n| json!({"name": n, "input_schema": {"type": "object", "properties": {}}}))
                .collect();
            let mut body = json!({"model": "m", "max_tokens": ask.max_tokens.unwrap_or(1024),
                "messages": [{"role": "user", "content": ask.prompt}]});
            if !tools.is_empty() {
                body["tools"] = tools.into();
            }
            if let Some(system) = &ask.system {
                body["system"] = system.clone().into();
            }
            body
        }
        SurfaceKind::Completions => {
            let mut body = json!({"model": "m", "prompt": ask.prompt});
            if let Some(m) = ask.max_tokens {
                body["max_tokens"] = m.into();
            }
            body
        }
        SurfaceKind::Gemini => {
            let declarations: Vec<Value> = ask
                .tools
                .iter()
                .map(|n| json!({"name": n, "parameters": {"type": "object", "properties": {}}}))
                .collect();
            let mut body = json!({"contents": [{"role": "user", "parts": [{"text": ask.prompt}]}]});
            if !declarations.is_empty() {
                body["tools"] = json!([{"functionDeclarations": declarations}]);
            }
            if let Some(system) = &ask.system {
                body["systemInstruction"] = json!({"parts": [{"text": system}]});
            }
            let mut config = json!({});
            if let Some(m) = ask.max_tokens {
                config["maxOutputTokens"] = m.into();
            }
            if let Some(t) = ask.temperature {
                config["temperature"] = t.into();
            }
            body["generationConfig"] = config;
            return body;
        }
    };
    if let Some(t) = ask.temperature {
        body["temperature"] = t.into();
    }
    if ask.stream {
        body["stream"] = true.into();
        if ask.include_usage && matches!(surface, SurfaceKind::Chat | SurfaceKind::Completions) {
            body["stream_options"] = json!({"include_usage": true});
        }
    }
    body
}

/// How the answer to a translated request is stated, and the canonical request.
enum Translated {
    Chat,
    Surface(Box<dyn Surface>),
}

fn translate(surface: SurfaceKind, body: &Value, ask: &Ask) -> (ChatRequest, Translated) {
    let bytes = serde_json::to_vec(body).unwrap();
    match surface {
        SurfaceKind::Chat => (serde_json::from_value(body.clone()).unwrap(), Translated::Chat),
        SurfaceKind::Responses => {
            let request = responses::parse(&bytes).unwrap();
            let ids = responses::Ids { response_id: "resp_prop".into(), created_at: 1_700_000_000 };
            let t = responses::translate(request, None, ids, &responses::Options::default()).unwrap();
            (t.chat, Translated::Surface(Box::new(t.surface)))
        }
        SurfaceKind::Messages => {
            let request = messages::parse(&bytes).unwrap();
            let t = messages::translate(request, messages::Ids { message_id: "msg_prop".into() }).unwrap();
            (t.chat, Translated::Surface(Box::new(t.surface)))
        }
        SurfaceKind::Gemini => {
            let form = if ask.array { StreamForm::Array } else { StreamForm::Sse };
            let call = generate_content::Call {
                model: "m",
                response_id: "resp-prop".into(),
                stream: ask.stream.then_some(form),
                unsupported_tools: responses::UnsupportedTools::Drop,
            };
            let t = generate_content::translate(&bytes, call).unwrap();
            (t.chat, Translated::Surface(Box::new(t.surface)))
        }
        SurfaceKind::Completions => {
            let t = completions::translate(&bytes, completions::Ids { id: "cmpl-prop".into(), created: 1_700_000_000 })
                .unwrap();
            (t.chat, Translated::Surface(Box::new(t.surface)))
        }
    }
}

// ---- Answers of each provider kind, decoded to the canonical form ---------------------------

fn meta(include_usage: bool) -> ResponseMeta {
    ResponseMeta {
        id: "chatcmpl-prop".into(),
        model: "m".into(),
        created: 1_700_000_000,
        include_usage,
        one_tool_call: false,
    }
}

fn finish_reason(reply: &Reply) -> &'static str {
    match (reply.truncated, reply.calls.is_empty()) {
        (true, _) => "length",
        (false, false) => "tool_calls",
        (false, true) => "stop",
    }
}

/// Pieces of `text` (split on char boundaries), as a stream sends it.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(7).map(|c| c.iter().collect()).collect()
}

fn openai_answer(ask: &Ask, reply: &Reply) -> (Vec<u8>, Vec<u8>) {
    let calls: Vec<Value> = (0..reply.calls.len())
        .map(|i| {
            json!({"id": format!("call_{i}"), "type": "function",
            "function": {"name": reply.call_name(ask, i), "arguments": reply.calls[i].1.to_string()}})
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": reply.text, "refusal": null});
    if let Some(r) = &reply.reasoning {
        message["reasoning_content"] = r.clone().into();
    }
    if !calls.is_empty() {
        message["tool_calls"] = calls.into();
    }
    let usage = json!({"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens});
    let whole = json!({"id": "chatcmpl-up", "object": "chat.completion", "created": 1_700_000_000, "model": "m",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(reply)}],
        "usage": usage});
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    for piece in reply.reasoning.as_deref().map(pieces).unwrap_or_default() {
        events.push(chunk(json!({"reasoning_content": piece}), Value::Null));
    }
    for piece in pieces(&reply.text) {
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    for i in 0..reply.calls.len() {
        events.push(chunk(
            json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function",
                "function": {"name": reply.call_name(ask, i), "arguments": reply.calls[i].1.to_string()}}]}),
            Value::Null,
        ));
    }
    events.push(chunk(json!({}), finish_reason(reply).into()));
    if ask.include_usage || !ask.stream {
        events.push(json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "m", "choices": [], "usage": usage}));
    }
    let mut stream = Vec::new();
    for event in events {
        stream.extend_from_slice(format!("data: {event}\n\n").as_bytes());
    }
    stream.extend_from_slice(b"data: [DONE]\n\n");
    (serde_json::to_vec(&whole).unwrap(), stream)
}

fn anthropic_answer(ask: &Ask, reply: &Reply) -> (Vec<u8>, Vec<u8>) {
    let mut blocks = Vec::new();
    if let Some(r) = &reply.reasoning {
        blocks.push(json!({"type": "thinking", "thinking": r, "signature": "c2lnbmF0dXJl"}));
    }
    if !reply.text.is_empty() {
        blocks.push(json!({"type": "text", "text": reply.text}));
    }
    for i in 0..reply.calls.len() {
        blocks.push(json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": reply.call_name(ask, i), "input": reply.calls[i].1}));
    }
    let stop = match finish_reason(reply) {
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        _ => "end_turn",
    };
    let whole = json!({"id": "msg_up", "type": "message", "role": "assistant", "model": "claude", "content": blocks,
        "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": reply.completion_tokens}});
    let mut events = vec![json!({"type": "message_start", "message": {"id": "msg_up", "type": "message",
        "role": "assistant", "model": "claude", "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": 1}}})];
    for (index, block) in blocks.iter().enumerate() {
        let (start, deltas) = match block["type"].as_str().unwrap() {
            "thinking" => (
                json!({"type": "thinking", "thinking": ""}),
                pieces(block["thinking"].as_str().unwrap())
                    .into_iter()
                    .map(|p| json!({"type": "thinking_delta", "thinking": p}))
                    .chain([json!({"type": "signature_delta", "signature": "c2lnbmF0dXJl"})])
                    .collect::<Vec<_>>(),
            ),
            "text" => (
                json!({"type": "text", "text": ""}),
                pieces(block["text"].as_str().unwrap())
                    .into_iter()
                    .map(|p| json!({"type": "text_delta", "text": p}))
                    .collect(),
            ),
            _ => (
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
                pieces(&block["input"].to_string())
                    .into_iter()
                    .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                    .collect(),
            ),
        };
        events.push(json!({"type": "content_block_start", "index": index, "content_block": start}));
        for delta in deltas {
            events.push(json!({"type": "content_block_delta", "index": index, "delta": delta}));
        }
        events.push(json!({"type": "content_block_stop", "index": index}));
    }
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": reply.completion_tokens}}));
    events.push(json!({"type": "message_stop"}));
    let mut stream = Vec::new();
    for event in events {
        stream.extend_from_slice(format!("event: {}\ndata: {event}\n\n", event["type"].as_str().unwrap()).as_bytes());
    }
    (serde_json::to_vec(&whole).unwrap(), stream)
}

fn gemini_answer(ask: &Ask, reply: &Reply) -> (Vec<u8>, Vec<u8>) {
    let mut parts = Vec::new();
    if let Some(r) = &reply.reasoning {
        parts.push(json!({"text": r, "thought": true}));
    }
    if !reply.text.is_empty() {
        parts.push(json!({"text": reply.text}));
    }
    for i in 0..reply.calls.len() {
        parts.push(json!({"functionCall": {"name": reply.call_name(ask, i), "args": reply.calls[i].1}}));
    }
    let finish = if reply.truncated { "MAX_TOKENS" } else { "STOP" };
    let usage = json!({"promptTokenCount": reply.prompt_tokens, "candidatesTokenCount": reply.completion_tokens,
        "totalTokenCount": reply.prompt_tokens + reply.completion_tokens});
    let answer = |parts: Vec<Value>, finish: Option<&str>| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            candidate["finishReason"] = f.into();
        }
        json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-x", "responseId": "r1"})
    };
    let whole = answer(parts.clone(), Some(finish));
    let mut stream = Vec::new();
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.into_iter().enumerate() {
        let event = answer(vec![part], (i == last).then_some(finish));
        stream.extend_from_slice(format!("data: {event}\r\n\r\n").as_bytes());
    }
    (serde_json::to_vec(&whole).unwrap(), stream)
}

/// The canonical whole answer (ChatCompletion JSON) and canonical SSE stream a provider's
/// answer becomes, with the usage billed.
fn canonical(kind: Kind, request: &ChatRequest, ask: &Ask, reply: &Reply) -> (Vec<u8>, Vec<u8>, Usage) {
    let usage =
        Usage { prompt_tokens: reply.prompt_tokens, completion_tokens: reply.completion_tokens, ..Usage::default() };
    let adapter: &dyn Adapter = match kind {
        Kind::OpenAi => {
            let (whole, stream) = openai_answer(ask, reply);
            return (whole, stream, usage);
        }
        Kind::Anthropic => &ANTHROPIC,
        Kind::Gemini => &GEMINI,
    };
    let target = Target { upstream_model: "up", max_output_tokens: 8192 };
    adapter.encode_request(request, &target, ask.stream).expect("a valid request is encoded");
    let (whole, stream) = match kind {
        Kind::Anthropic => anthropic_answer(ask, reply),
        _ => gemini_answer(ask, reply),
    };
    let decoded = adapter.decode_response(&whole, &meta(true)).unwrap();
    let mut decoder = adapter.stream_decoder(meta(ask.include_usage || !ask.stream));
    let mut out = Vec::new();
    for piece in stream.chunks(37) {
        decoder.feed(piece, &mut out).unwrap();
    }
    decoder.finish(&mut out).unwrap();
    (decoded.body, out, decoded.usage.unwrap_or(usage))
}

fn check_case(surface: SurfaceKind, kind: Kind, ask: &Ask, reply: &Reply) -> Result<(), TestCaseError> {
    let body = request_body(surface, ask);
    let (request, translated) = translate(surface, &body, ask);
    let (whole, stream, usage) = canonical(kind, &request, ask, reply);
    let what = format!("{surface:?} × {kind:?}");
    // As the server does: the usage object is read apart (upstreams leave out parts of it).
    let mut without_usage: Value = serde_json::from_slice(&whole).unwrap();
    without_usage.as_object_mut().unwrap().remove("usage");
    let completion: ChatCompletion = serde_json::from_value(without_usage).unwrap();
    let error = ErrorEnvelope::new("upstream_error", "upstream_unavailable", "The provider failed.", None);
    match translated {
        Translated::Chat => {
            conforms("openai/chat_completion", &serde_json::from_slice(&whole).unwrap(), &what)?;
            stream_conforms("openai/chat_completion_chunk", "openai/error", &stream, &what, false)?;
            conforms("openai/error", &serde_json::from_slice(&error.to_json()).unwrap(), &what)?;
        }
        Translated::Surface(surface_impl) => {
            let (answer, events, error_schema) = match surface {
                SurfaceKind::Responses => ("openai/response", "openai/response_stream_event", "openai/error"),
                SurfaceKind::Messages => ("anthropic/message", "anthropic/stream_event", "anthropic/error"),
                SurfaceKind::Gemini => {
                    ("gemini/generate_content_response", "gemini/generate_content_response", "gemini/error")
                }
                _ => ("openai/completion", "openai/completion_chunk", "openai/error"),
            };
            let presented: Value = serde_json::from_slice(&surface_impl.present(&completion, usage)).unwrap();
            conforms(answer, &presented, &format!("{what}, whole answer"))?;

            let mut feed = ChunkFeed::new(surface_impl.stream());
            let mut out = Vec::new();
            for piece in stream.chunks(53) {
                feed.feed(piece, &mut out).unwrap();
            }
            feed.finish(usage, &mut out);
            let array = surface == SurfaceKind::Gemini && ask.stream && ask.array;
            stream_conforms(events, error_schema, &out, &format!("{what}, stream"), array)?;

            // A failure after the stream began: the events sent, then the surface's own end.
            let mut feed = ChunkFeed::new(surface_impl.stream());
            let mut out = Vec::new();
            feed.feed(&stream[..stream.len() / 2], &mut out).unwrap();
            feed.fail("The provider broke off.", &mut out);
            stream_conforms(events, error_schema, &out, &format!("{what}, failed stream"), array)?;

            let body = match surface {
                SurfaceKind::Messages => messages::error_body(502, &error),
                SurfaceKind::Gemini => generate_content::error_body(502, &error),
                _ => surface_impl.error_body(&error),
            };
            conforms(error_schema, &serde_json::from_slice(&body).unwrap(), &format!("{what}, error"))?;
        }
    }
    Ok(())
}

fn surface_kind() -> impl Strategy<Value = SurfaceKind> {
    prop::sample::select(vec![
        SurfaceKind::Chat,
        SurfaceKind::Responses,
        SurfaceKind::Messages,
        SurfaceKind::Completions,
        SurfaceKind::Gemini,
    ])
}

fn provider_kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(vec![Kind::OpenAi, Kind::Anthropic, Kind::Gemini])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_translated_answer_conforms_to_its_surface(
        surface in surface_kind(),
        kind in provider_kind(),
        ask in ask(),
        reply in reply(),
    ) {
        let reply = reply.fit(&ask, surface);
        check_case(surface, kind, &ask, &reply)?;
    }
}

// ---- The schemas accept the providers' own documented examples -------------------------------

fn fixtures(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join("crates/providers/tests/fixtures").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {dir}/*{suffix}");
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_schemas_accept_the_providers_documented_examples() {
    let mut found = Vec::new();
    let mut check = |schema: &str, value: &Value, path: &Path| {
        for v in violations(schema, value) {
            found.push(format!("{}: {v}", path.display()));
        }
    };
    for path in fixtures("anthropic", ".response.json") {
        check("anthropic/message", &read_json(&path), &path);
    }
    for path in fixtures("anthropic", ".json") {
        if path.file_name().unwrap().to_str().unwrap().starts_with("error_") {
            check("anthropic/error", &read_json(&path), &path);
        }
    }
    for path in fixtures("anthropic", ".stream.txt") {
        for (_, event) in sse(&std::fs::read(&path).unwrap()) {
            check("anthropic/stream_event", &event, &path);
        }
    }
    for path in fixtures("gemini", ".response.json") {
        check("gemini/generate_content_response", &read_json(&path), &path);
    }
    for path in fixtures("gemini", ".json") {
        if path.file_name().unwrap().to_str().unwrap().starts_with("error_") {
            check("gemini/error", &read_json(&path), &path);
        }
    }
    for path in fixtures("gemini", ".sse").into_iter().filter(|p| !p.to_str().unwrap().ends_with(".openai.sse")) {
        for (_, event) in sse(&std::fs::read(&path).unwrap()) {
            let schema = if event.get("error").is_some() { "gemini/error" } else { "gemini/generate_content_response" };
            check(schema, &event, &path);
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn every_error_status_has_an_error_body_of_each_surface_s_shape() {
    let kinds = [
        ("invalid_request_error", "invalid_request"),
        ("authentication_error", "invalid_api_key"),
        ("insufficient_quota", "insufficient_quota"),
        ("permission_error", "model_not_allowed"),
        ("rate_limit_error", "rate_limited"),
        ("upstream_error", "upstream_unavailable"),
        ("upstream_error", "upstream_timeout"),
    ];
    let mut found = Vec::new();
    for status in [400, 401, 402, 403, 404, 409, 413, 422, 429, 500, 502, 503, 504, 529] {
        for (kind, code) in kinds {
            let envelope = ErrorEnvelope::new(kind, code, "What went wrong, and what to do.", None);
            let what = format!("{status} {kind}/{code}");
            let anthropic: Value = serde_json::from_slice(&messages::error_body(status, &envelope)).unwrap();
            found.extend(violations("anthropic/error", &anthropic).into_iter().map(|v| format!("{what}: {v}")));
            let gemini: Value = serde_json::from_slice(&generate_content::error_body(status, &envelope)).unwrap();
            found.extend(violations("gemini/error", &gemini).into_iter().map(|v| format!("{what}: {v}")));
            let openai: Value = serde_json::from_slice(&envelope.to_json()).unwrap();
            found.extend(violations("openai/error", &openai).into_iter().map(|v| format!("{what}: {v}")));
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
