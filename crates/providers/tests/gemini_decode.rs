//! Gemini adapter, decoding: golden answers from Google's documented examples as OpenAI
//! ChatCompletions, usage, and the classification of Gemini's errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tokenrouter_core::Usage;
use tokenrouter_providers::adapter::{Adapter, ResponseMeta};
use tokenrouter_providers::gemini::GEMINI;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/gemini/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn meta() -> ResponseMeta {
    ResponseMeta {
        id: "chatcmpl-gemini-test".to_owned(),
        model: "gemini-2.5-flash".to_owned(),
        created: 1_750_000_000,
        include_usage: false,
        one_tool_call: false,
    }
}

/// Tool-call arguments compared as JSON, not as text (key order is not meaningful).
fn normalized(mut completion: Value) -> Value {
    for choice in completion["choices"].as_array_mut().into_iter().flatten() {
        let calls = choice["message"]["tool_calls"].as_array_mut();
        for call in calls.into_iter().flatten() {
            let text = call["function"]["arguments"].as_str().unwrap().to_owned();
            call["function"]["arguments"] = serde_json::from_str(&text).unwrap();
        }
    }
    completion
}

fn decode(body: &[u8]) -> Value {
    let decoded = GEMINI.decode_response(body, &meta()).unwrap();
    serde_json::from_slice(&decoded.body).unwrap()
}

#[test]
fn golden_answers_match_the_expected_chat_completions() {
    for scenario in [
        "text",
        "two_candidates",
        "function_calling",
        "parallel_function_calling",
        "thinking",
        "image",
        "json_mode",
        "safety_block",
        "prompt_block",
    ] {
        let decoded = GEMINI.decode_response(&fixture(&format!("{scenario}.response.json")), &meta()).unwrap();
        let body: Value = serde_json::from_slice(&decoded.body).unwrap();
        let expected: Value = serde_json::from_slice(&fixture(&format!("{scenario}.openai.json"))).unwrap();
        assert_eq!(normalized(body), normalized(expected.clone()), "scenario {scenario}");
        let usage = &expected["usage"];
        assert_eq!(
            decoded.usage,
            Some(Usage {
                prompt_tokens: usage["prompt_tokens"].as_u64().unwrap(),
                completion_tokens: usage["completion_tokens"].as_u64().unwrap(),
                cached_tokens: usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap(),
                cache_write_tokens: 0,
                reasoning_tokens: usage["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap(),
                hosted: Default::default(),
            }),
            "scenario {scenario}"
        );
    }
}

#[test]
fn arguments_are_compact_json_and_missing_args_are_an_empty_object() {
    let body = decode(
        br#"{"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "now"}},
            {"functionCall": {"name": "add", "args": {"a": 1, "b": [2, 3]}}}
        ]}, "finishReason": "STOP"}]}"#,
    );
    let calls = &body["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls[0]["function"]["arguments"], "{}");
    assert_eq!(calls[1]["function"]["arguments"], r#"{"a":1,"b":[2,3]}"#);
    assert_eq!(calls[1]["id"], "call_0_1");
    assert!(body.get("usage").is_none());
}

#[test]
fn a_signature_on_a_later_call_keeps_its_position() {
    let body = decode(
        br#"{"candidates": [{"content": {"role": "model", "parts": [
            {"text": "Let me check.", "thoughtSignature": "TEXT-SIG"},
            {"functionCall": {"name": "a", "args": {}}},
            {"functionCall": {"name": "b", "args": {}}, "thoughtSignature": "SIG-B"},
            {"functionCall": {"name": "c", "args": {}}}
        ]}, "finishReason": "STOP"}]}"#,
    );
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], "Let me check.");
    assert_eq!(
        message["thinking_blocks"],
        json!([
            {"type": "gemini_thought_signature"},
            {"type": "gemini_thought_signature", "signature": "SIG-B"}
        ])
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn finish_reasons_map_to_openai_ones() {
    let finish = |reason: &str| {
        let body = format!(
            r#"{{"candidates": [{{"content": {{"role": "model", "parts": [{{"text": "x"}}]}},
                "finishReason": "{reason}"}}]}}"#
        );
        let out = decode(body.as_bytes());
        (
            out["choices"][0]["finish_reason"].as_str().unwrap().to_owned(),
            out["choices"][0]["message"]["content"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(finish("STOP"), ("stop".to_owned(), "x".to_owned()));
    assert_eq!(finish("MAX_TOKENS"), ("length".to_owned(), "x".to_owned()));
    for reason in ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "OTHER"] {
        assert_eq!(
            finish(reason),
            ("content_filter".to_owned(), format!("x\n\nBlocked by Gemini safety filter: {reason}"))
        );
    }
    assert_eq!(finish("MALFORMED_FUNCTION_CALL").0, "stop");
}

#[test]
fn an_error_or_garbage_in_a_200_answer_fails() {
    let error = GEMINI.decode_response(&fixture("error_503.json"), &meta()).unwrap_err();
    assert_eq!(error.status, 503);
    assert!(error.retryable);
    let garbage = GEMINI.decode_response(b"<html>", &meta()).unwrap_err();
    assert!(!garbage.client_error);
    let empty = GEMINI.decode_response(b"{}", &meta()).unwrap_err();
    assert!(empty.retryable);
}

#[test]
fn errors_are_classified_by_status() {
    let e429 = GEMINI.decode_error(429, &fixture("error_429.json"));
    assert!(e429.retryable && !e429.client_error);
    assert_eq!(e429.status, 429);
    assert_eq!(e429.message, "Resource has been exhausted (e.g. check quota).");

    let e503 = GEMINI.decode_error(503, &fixture("error_503.json"));
    assert!(e503.retryable && !e503.client_error);
    assert_eq!(e503.message, "The model is overloaded. Please try again later.");

    let e400 = GEMINI.decode_error(400, &fixture("error_400.json"));
    assert!(!e400.retryable && e400.client_error);
    assert_eq!(e400.message, "* GenerateContentRequest.contents: contents is not specified\n");

    // A bad key is the gateway's problem, not the client's, though Gemini says 400.
    let key = GEMINI.decode_error(400, &fixture("error_400_api_key.json"));
    assert!(!key.retryable && !key.client_error);

    for status in [500, 502, 504] {
        assert!(GEMINI.decode_error(status, b"").retryable, "{status}");
    }
    for status in [401, 403, 404] {
        let e = GEMINI.decode_error(
            status,
            br#"{"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}"#,
        );
        assert!(!e.retryable && !e.client_error, "{status}");
    }
    let e413 = GEMINI.decode_error(413, b"Request Entity Too Large");
    assert!(e413.client_error && !e413.retryable);
    assert_eq!(e413.message, "Request Entity Too Large");
    let wrapped =
        GEMINI.decode_error(429, br#"[{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}]"#);
    assert_eq!(wrapped.message, "quota");
    assert!(GEMINI.decode_error(502, b"").message.contains("502"));
}
