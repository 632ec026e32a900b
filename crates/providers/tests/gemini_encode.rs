//! Gemini adapter, encoding: golden requests from Google's documented examples, the
//! mapping of each option, and the fields Gemini cannot express.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tokenrouter_core::chat::ChatRequest;
use tokenrouter_providers::adapter::{Adapter, Auth, Target};
use tokenrouter_providers::gemini::GEMINI;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/gemini/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn target(model: &str) -> Target<'_> {
    Target { upstream_model: model, max_output_tokens: 8192 }
}

fn request(value: Value) -> ChatRequest {
    serde_json::from_value(value).unwrap()
}

fn encode_with(value: Value, model: &str) -> Value {
    let encoded = GEMINI.encode_request(&request(value), &target(model), false).unwrap();
    serde_json::from_slice(&encoded.body).unwrap()
}

fn encode(value: Value) -> Value {
    encode_with(value, "gemini-2.5-flash")
}

fn unsupported_param(value: Value) -> String {
    GEMINI.encode_request(&request(value), &target("gemini-2.5-flash"), false).unwrap_err().param
}

#[test]
fn golden_requests_match_the_documented_gemini_bodies() {
    for scenario in
        ["text", "function_calling", "parallel_function_calling", "thinking", "image", "json_mode", "json_object"]
    {
        let chat: ChatRequest = serde_json::from_slice(&fixture(&format!("{scenario}.request.json"))).unwrap();
        let model = chat.model.clone();
        let encoded = GEMINI.encode_request(&chat, &target(&model), false).unwrap();
        let body: Value = serde_json::from_slice(&encoded.body).unwrap();
        let expected: Value = serde_json::from_slice(&fixture(&format!("{scenario}.gemini.json"))).unwrap();
        assert_eq!(body, expected, "scenario {scenario}");
        assert_eq!(encoded.path, format!("/models/{model}:generateContent"));
        assert!(encoded.headers.is_empty());
    }
}

#[test]
fn streaming_uses_the_sse_endpoint_with_the_same_body() {
    let chat: ChatRequest = serde_json::from_slice(&fixture("text.request.json")).unwrap();
    let plain = GEMINI.encode_request(&chat, &target("gemini-2.5-flash"), false).unwrap();
    let streamed = GEMINI.encode_request(&chat, &target("models/gemini-2.5-flash"), true).unwrap();
    assert_eq!(streamed.path, "/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert_eq!(streamed.body, plain.body);
}

#[test]
fn the_key_goes_in_the_goog_header() {
    assert_eq!(GEMINI.auth(), Auth::Header("x-goog-api-key"));
}

#[test]
fn tool_choice_maps_to_function_calling_modes() {
    let with_choice = |choice: Value| {
        encode(json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "lookup"}}],
            "tool_choice": choice,
        }))["toolConfig"]["functionCallingConfig"]
            .clone()
    };
    assert_eq!(with_choice(json!("auto")), json!({"mode": "AUTO"}));
    assert_eq!(with_choice(json!("none")), json!({"mode": "NONE"}));
    assert_eq!(with_choice(json!("required")), json!({"mode": "ANY"}));
    assert_eq!(
        with_choice(json!({"type": "function", "function": {"name": "lookup"}})),
        json!({"mode": "ANY", "allowedFunctionNames": ["lookup"]})
    );
    // Without tools there is nothing to configure.
    let body = encode(json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tool_choice": "none",
    }));
    assert!(body.get("toolConfig").is_none() && body.get("tools").is_none());
}

#[test]
fn reasoning_effort_sets_a_thinking_budget() {
    let thinking = |effort: &str, model: &str| {
        encode_with(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "reasoning_effort": effort}),
            model,
        )["generationConfig"]["thinkingConfig"]
            .clone()
    };
    let budget = |b: u32| json!({"thinkingBudget": b, "includeThoughts": true});
    assert_eq!(thinking("minimal", "gemini-2.5-flash"), budget(0));
    assert_eq!(thinking("minimal", "gemini-2.5-pro"), budget(128));
    assert_eq!(thinking("low", "gemini-2.5-flash"), budget(1024));
    assert_eq!(thinking("medium", "gemini-2.5-flash"), budget(8192));
    assert_eq!(thinking("high", "gemini-2.5-pro"), budget(24576));
}

#[test]
fn a_plain_request_sends_no_generation_config() {
    let body = encode(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!(body, json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}));
}

#[test]
fn signatures_are_reattached_to_the_call_they_came_with() {
    let body = encode(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "Calling both.", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "first", "arguments": ""}},
                {"id": "b", "type": "function", "function": {"name": "second", "arguments": "{\"x\":1}"}}
            ], "thinking_blocks": [
                {"type": "gemini_thought_signature"},
                {"type": "gemini_thought_signature", "signature": "SIG-B"}
            ]},
            {"role": "tool", "tool_call_id": "b", "content": "{\"ok\":true}"},
            {"role": "tool", "tool_call_id": "a", "content": ""}
        ]
    }));
    assert_eq!(
        body["contents"][1],
        json!({"role": "model", "parts": [
            {"text": "Calling both."},
            {"functionCall": {"name": "first", "args": {}}},
            {"functionCall": {"name": "second", "args": {"x": 1}}, "thoughtSignature": "SIG-B"}
        ]})
    );
    assert_eq!(
        body["contents"][2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "second", "response": {"ok": true}}},
            {"functionResponse": {"name": "first", "response": {"result": ""}}}
        ]})
    );
}

#[test]
fn a_reused_tool_call_id_names_the_latest_call() {
    let body = encode(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_0_0", "type": "function", "function": {"name": "old", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0_0", "content": "1"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_0_0", "type": "function", "function": {"name": "new", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0_0", "content": "2"}
        ]
    }));
    assert_eq!(body["contents"][4]["parts"][0]["functionResponse"]["name"], "new");
    assert_eq!(body["contents"][2]["parts"][0]["functionResponse"]["name"], "old");
}

#[test]
fn unsupported_fields_are_refused_by_name() {
    let user = |content: Value| json!({"model": "m", "messages": [{"role": "user", "content": content}]});
    let with = |key: &str, value: Value| {
        let mut request = user(json!("hi"));
        request[key] = value;
        request
    };
    assert_eq!(
        unsupported_param(user(json!([
            {"type": "text", "text": "listen"},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
        ]))),
        "messages[0].content[1]"
    );
    assert_eq!(
        unsupported_param(user(json!([
            {"type": "file", "file": {"file_id": "file-abc"}}
        ]))),
        "messages[0].content[0]"
    );
    assert_eq!(
        unsupported_param(user(json!([
            {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}
        ]))),
        "messages[0].content[0].image_url.url"
    );
    assert_eq!(
        unsupported_param(user(json!([
            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}
        ]))),
        "messages[0].content[0].image_url.url"
    );
    assert_eq!(
        unsupported_param(json!({"model": "m", "messages": [
            {"role": "system", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
            {"role": "user", "content": "hi"}
        ]})),
        "messages[0].content[0]"
    );
    assert_eq!(
        unsupported_param(json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":"}}]}
        ]})),
        "messages[1].tool_calls[0].function.arguments"
    );
    assert_eq!(
        unsupported_param(json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}
        ]})),
        "messages[1].tool_calls[0].function.arguments"
    );
    assert_eq!(
        unsupported_param(json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "nowhere", "content": "1"}
        ]})),
        "messages[1].tool_call_id"
    );
    assert_eq!(unsupported_param(with("logprobs", json!(true))), "logprobs");
    assert_eq!(unsupported_param(with("top_logprobs", json!(3))), "top_logprobs");
    assert_eq!(unsupported_param(with("logit_bias", json!({"50256": -100}))), "logit_bias");
    assert_eq!(unsupported_param(with("modalities", json!(["text", "audio"]))), "modalities");
    assert_eq!(unsupported_param(with("audio", json!({"voice": "alloy", "format": "wav"}))), "audio");
    assert_eq!(unsupported_param(with("reasoning_effort", json!("extreme"))), "reasoning_effort");
    assert_eq!(unsupported_param(with("tool_choice", json!("sometimes"))), "tool_choice");
    let mut custom_tool = with("tools", json!([{"type": "custom", "function": {"name": "x"}}]));
    custom_tool["tool_choice"] = json!("auto");
    assert_eq!(unsupported_param(custom_tool), "tools[0].type");
}

#[test]
fn harmless_or_empty_extras_are_dropped() {
    let body = encode(json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi", "name": "alice"}],
        "logprobs": false,
        "top_logprobs": 0,
        "logit_bias": {},
        "modalities": ["text"],
        "audio": null,
        "store": true,
        "metadata": {"k": "v"},
        "user": "u",
        "service_tier": "default",
        "prompt_cache_key": "p",
        "stream": true,
        "stream_options": {"include_usage": true},
        "parallel_tool_calls": false
    }));
    assert_eq!(body, json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}));
}
