//! The Anthropic adapter against fixtures adapted from Anthropic's documented examples:
//! requests encoded, answers and errors decoded, and the fields it cannot express refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{Value, json};
use tokenrouter_core::Usage;
use tokenrouter_core::chat::ChatRequest;
use tokenrouter_providers::adapter::{Adapter, Auth, ResponseMeta, Target};
use tokenrouter_providers::anthropic::ANTHROPIC;
use tokenrouter_providers::anthropic::wire::{Message, MessagesRequest};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/anthropic").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

const TARGET: Target<'static> = Target { upstream_model: "claude-sonnet-4-5-20250929", max_output_tokens: 8192 };

fn meta() -> ResponseMeta {
    ResponseMeta {
        id: "chatcmpl-test".into(),
        model: "claude-sonnet-4-5".into(),
        created: 1_700_000_000,
        include_usage: false,
        one_tool_call: false,
    }
}

fn encode(request: &Value) -> Result<Value, tokenrouter_providers::adapter::Unsupported> {
    let request: ChatRequest = serde_json::from_value(request.clone()).unwrap();
    let stream = request.stream == Some(true);
    let encoded = ANTHROPIC.encode_request(&request, &TARGET, stream)?;
    assert_eq!(encoded.path, "/messages");
    assert_eq!(encoded.headers, vec![("anthropic-version", "2023-06-01".to_owned())]);
    Ok(serde_json::from_slice(&encoded.body).unwrap())
}

#[test]
fn the_key_goes_in_x_api_key() {
    assert_eq!(ANTHROPIC.auth(), Auth::Header("x-api-key"));
}

#[test]
fn encodes_requests_as_the_messages_api_expects() {
    for scenario in ["text", "tools", "parallel_tools", "thinking_tools", "images", "json_schema", "json_object"] {
        let request = json_fixture(&format!("{scenario}.request.json"));
        let expected = json_fixture(&format!("{scenario}.expected.json"));
        let body = encode(&request).unwrap_or_else(|e| panic!("{scenario}: {e:?}"));
        assert_eq!(body, expected, "{scenario}: {body:#}");
    }
}

#[test]
fn decodes_answers_into_chat_completions() {
    for scenario in ["text", "tools", "parallel_tools", "thinking_tools", "images", "json_schema"] {
        let decoded = ANTHROPIC
            .decode_response(&fixture(&format!("{scenario}.response.json")), &meta())
            .unwrap_or_else(|e| panic!("{scenario}: {e:?}"));
        let body: Value = serde_json::from_slice(&decoded.body).unwrap();
        let expected = json_fixture(&format!("{scenario}.decoded.json"));
        assert_eq!(body, expected, "{scenario}: {body:#}");
        let usage = decoded.usage.unwrap();
        assert_eq!(usage.prompt_tokens, expected["usage"]["prompt_tokens"].as_u64().unwrap());
        assert_eq!(usage.completion_tokens, expected["usage"]["completion_tokens"].as_u64().unwrap());
    }
}

#[test]
fn usage_counts_cache_reads_and_writes_as_prompt_tokens() {
    let decoded = ANTHROPIC.decode_response(&fixture("text.response.json"), &meta()).unwrap();
    assert_eq!(
        decoded.usage,
        Some(Usage {
            prompt_tokens: 12 + 2000 + 100,
            completion_tokens: 20,
            cached_tokens: 2000,
            cache_write_tokens: 100,
            reasoning_tokens: 0,
            hosted: Default::default(),
        })
    );
}

#[test]
fn stop_reasons_become_finish_reasons() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ] {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": "x"}],
            "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": 1, "output_tokens": 1}
        });
        let decoded = ANTHROPIC.decode_response(body.to_string().as_bytes(), &meta()).unwrap();
        let body: Value = serde_json::from_slice(&decoded.body).unwrap();
        assert_eq!(body["choices"][0]["finish_reason"], finish, "{stop}");
    }
}

#[test]
fn a_body_that_is_not_a_message_is_an_upstream_failure() {
    for body in [
        &b"not json"[..],
        br#"{"type":"error","error":{"type":"api_error","message":"x"}}"#,
        br#"{"id":"msg_1","type":"message","role":"assistant"}"#,
    ] {
        let failure = ANTHROPIC.decode_response(body, &meta()).unwrap_err();
        assert_eq!(failure.status, 200);
        assert!(!failure.retryable);
        assert!(!failure.client_error);
    }
}

#[test]
fn errors_say_whether_a_retry_may_help_and_whose_fault_it_is() {
    let rate = ANTHROPIC.decode_error(429, &fixture("error_429.json"));
    assert!(rate.retryable && !rate.client_error);
    assert!(rate.message.starts_with("Number of request tokens"));

    let overloaded = ANTHROPIC.decode_error(529, &fixture("error_529.json"));
    assert!(overloaded.retryable && !overloaded.client_error);
    assert_eq!(overloaded.message, "Overloaded");
    assert_eq!(overloaded.status, 529);

    let invalid = ANTHROPIC.decode_error(400, &fixture("error_400.json"));
    assert!(!invalid.retryable && invalid.client_error);
    assert!(invalid.message.contains("roles must alternate"));

    let too_large = ANTHROPIC.decode_error(
        413,
        br#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#,
    );
    assert!(!too_large.retryable && too_large.client_error);

    for (status, kind) in [(401, "authentication_error"), (403, "permission_error"), (404, "not_found_error")] {
        let body = json!({"type": "error", "error": {"type": kind, "message": "no"}});
        let failure = ANTHROPIC.decode_error(status, body.to_string().as_bytes());
        assert!(!failure.retryable && !failure.client_error, "{status}");
    }
    for status in [500, 502, 503, 504] {
        let failure = ANTHROPIC.decode_error(status, b"<html>Bad gateway</html>");
        assert!(failure.retryable && !failure.client_error, "{status}");
        assert!(failure.message.contains(&status.to_string()));
    }
    let empty = ANTHROPIC.decode_error(503, b"");
    assert_eq!(empty.message, "Anthropic answered HTTP 503.");
}

fn base() -> Value {
    json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]})
}

fn with(mut request: Value, key: &str, value: Value) -> Value {
    request[key] = value;
    request
}

#[test]
fn refuses_what_anthropic_cannot_express_naming_the_field() {
    let audio = json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}});
    let file = json!({"type": "file", "file": {"file_id": "file-1"}});
    let bad_args = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{\"x\":"}}
        ]}
    ]);
    let array_args = json!([
        {"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
        ]}
    ]);
    let cases = [
        (with(base(), "n", json!(2)), "n"),
        (with(base(), "logprobs", json!(true)), "logprobs"),
        (with(base(), "presence_penalty", json!(0.5)), "presence_penalty"),
        (with(base(), "frequency_penalty", json!(-1)), "frequency_penalty"),
        (with(base(), "logit_bias", json!({"50256": -100})), "logit_bias"),
        (with(base(), "audio", json!({"voice": "alloy", "format": "wav"})), "audio"),
        (with(base(), "modalities", json!(["text", "audio"])), "modalities"),
        (with(base(), "reasoning_effort", json!("extreme")), "reasoning_effort"),
        (with(base(), "tool_choice", json!("sometimes")), "tool_choice"),
        (
            with(
                base(),
                "messages",
                json!([{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "a"}, audio]}]),
            ),
            "messages[1].content[1]",
        ),
        (with(base(), "messages", json!([{"role": "user", "content": [file]}])), "messages[0].content[0]"),
        (
            with(
                base(),
                "messages",
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]),
            ),
            "messages[0].content[0]",
        ),
        (with(base(), "messages", bad_args), "messages[1].tool_calls[1].function.arguments"),
        (with(base(), "messages", array_args), "messages[0].tool_calls[0].function.arguments"),
        (
            with(base(), "tools", json!([{"type": "function", "function": {"name": "json_response__x"}}])),
            "tools[0].function.name",
        ),
    ];
    for (request, param) in cases {
        let refused = encode(&request).expect_err(param);
        assert_eq!(refused.param, param);
        assert!(!refused.message.is_empty());
    }
}

#[test]
fn harmless_extras_are_dropped_not_refused() {
    let mut request = base();
    for (key, value) in [
        ("store", json!(true)),
        ("metadata", json!({"a": "b"})),
        ("seed", json!(1)),
        ("service_tier", json!("auto")),
        ("prompt_cache_key", json!("k")),
        ("stream_options", json!({"include_usage": true})),
        ("parallel_tool_calls", json!(false)),
        ("presence_penalty", json!(0)),
        ("logprobs", json!(false)),
        ("logit_bias", json!({})),
        ("n", json!(1)),
        ("modalities", json!(["text"])),
    ] {
        request[key] = value;
    }
    let body = encode(&request).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 8192,
            "messages": [{"role": "user", "content": "hi"}]
        })
    );
}

#[test]
fn the_output_limit_always_leaves_room_beyond_the_thinking_budget() {
    for (effort, asked, budget, max_tokens) in [
        ("minimal", Some(100), 1024, 1124),
        ("low", Some(5000), 1024, 5000),
        ("medium", None, 4096, 8192),
        ("high", Some(16384), 16384, 32768),
        ("high", Some(20000), 16384, 20000),
    ] {
        let mut request = with(base(), "reasoning_effort", json!(effort));
        if let Some(asked) = asked {
            request["max_tokens"] = json!(asked);
        }
        let body = encode(&request).unwrap();
        assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": budget}));
        assert_eq!(body["max_tokens"], max_tokens, "{effort} {asked:?}");
    }
    let body = encode(&with(base(), "reasoning_effort", json!("none"))).unwrap();
    assert!(body.get("thinking").is_none());
}

#[test]
fn tool_choices_map_to_anthropic_choices() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let named = json!({"type": "function", "function": {"name": "f"}});
    for (choice, parallel, expected) in [
        (json!("auto"), None, None),
        (json!("auto"), Some(false), Some(json!({"type": "auto", "disable_parallel_tool_use": true}))),
        (json!("none"), Some(false), Some(json!({"type": "none"}))),
        (json!("required"), None, Some(json!({"type": "any"}))),
        (named.clone(), Some(false), Some(json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true}))),
        (named, Some(true), Some(json!({"type": "tool", "name": "f"}))),
    ] {
        let mut request = with(base(), "tools", tools.clone());
        request["tool_choice"] = choice.clone();
        if let Some(parallel) = parallel {
            request["parallel_tool_calls"] = json!(parallel);
        }
        let body = encode(&request).unwrap();
        assert_eq!(body.get("tool_choice"), expected.as_ref(), "{choice}");
    }
    // Without tools a choice means nothing and is not sent.
    let body = encode(&with(base(), "tool_choice", json!("required"))).unwrap();
    assert!(body.get("tool_choice").is_none());
}

#[test]
fn a_json_format_beside_the_clients_tools_lets_the_model_pick_any_tool() {
    let mut request = with(base(), "tools", json!([{"type": "function", "function": {"name": "f"}}]));
    request["response_format"] = json!({"type": "json_object"});
    request["reasoning_effort"] = json!("low");
    let body = encode(&request).unwrap();
    assert_eq!(body["tool_choice"], json!({"type": "any"}));
    assert_eq!(body["tools"][1]["name"], "json_response__json_object");
    // A forced tool rules thinking out at Anthropic, so the effort is dropped.
    assert!(body.get("thinking").is_none());
    let text = encode(&with(base(), "response_format", json!({"type": "text"}))).unwrap();
    assert!(text.get("tools").is_none() && text.get("tool_choice").is_none());
}

#[test]
fn both_sampling_knobs_keep_temperature_and_thinking_keeps_neither() {
    let mut request = with(base(), "temperature", json!(0.3));
    request["top_p"] = json!(0.8);
    let body = encode(&request).unwrap();
    assert_eq!(body["temperature"], 0.3);
    assert!(body.get("top_p").is_none());
    let body = encode(&with(base(), "top_p", json!(0.8))).unwrap();
    assert_eq!(body["top_p"], 0.8);
}

#[test]
fn tool_ids_anthropic_would_refuse_are_made_safe_alike_in_call_and_result() {
    let request = with(
        base(),
        "messages",
        json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [
                {"id": "call:1/a", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call:1/a", "content": "ok"}
        ]),
    );
    let body = encode(&request).unwrap();
    assert_eq!(body["messages"][1]["content"][0]["id"], "call_1_a");
    assert_eq!(body["messages"][1]["content"][0]["input"], json!({}));
    assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "call_1_a");
}

#[test]
fn the_wire_types_read_and_write_the_bodies_they_describe() {
    for scenario in ["text", "tools", "parallel_tools", "thinking_tools", "images", "json_schema"] {
        let request: MessagesRequest = serde_json::from_slice(&fixture(&format!("{scenario}.expected.json"))).unwrap();
        let again = serde_json::to_value(&request).unwrap();
        assert_eq!(again, json_fixture(&format!("{scenario}.expected.json")));
        let message: Message = serde_json::from_slice(&fixture(&format!("{scenario}.response.json"))).unwrap();
        let again = serde_json::to_value(&message).unwrap();
        assert_eq!(again, json_fixture(&format!("{scenario}.response.json")));
    }
}

#[test]
fn blocks_the_gateway_does_not_use_are_skipped() {
    let body = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "weather"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
             "content": {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}},
            {"type": "text", "text": "It is sunny.", "citations": [{"type": "web_search_result_location", "url": "https://x"}]}
        ],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 5, "output_tokens": 3, "server_tool_use": {"web_search_requests": 1}, "service_tier": "standard"}
    });
    let decoded = ANTHROPIC.decode_response(body.to_string().as_bytes(), &meta()).unwrap();
    let body: Value = serde_json::from_slice(&decoded.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "It is sunny.");
    assert!(body["choices"][0]["message"].get("tool_calls").is_none());
}

#[test]
fn inline_pdf_file_parts_become_document_blocks_and_file_ids_are_refused() {
    let pdf = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Summarise"},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
    ]}]});
    let body = encode(&pdf).unwrap();
    assert_eq!(
        body["messages"][0]["content"][1],
        json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}})
    );
    let uploaded = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-abc"}},
    ]}]});
    let refused = encode(&uploaded).unwrap_err();
    assert_eq!(refused.param, "messages[0].content[0]");
    assert!(refused.message.contains("PDF"));
}
