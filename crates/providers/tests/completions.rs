//! Legacy completions: checking pass-through bodies, the request as a single-turn chat for
//! other providers (and what is refused), and the chat answer stated as `text_completion`s,
//! whole and streamed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tokenrouter_core::Usage;
use tokenrouter_core::chat::ChatCompletion;
use tokenrouter_providers::adapter::{Adapter, Target};
use tokenrouter_providers::anthropic::ANTHROPIC;
use tokenrouter_providers::completions::{self, CompletionsView, Ids, Translated};
use tokenrouter_providers::gemini::GEMINI;
use tokenrouter_providers::passthrough::RawObject;
use tokenrouter_providers::surface::{ChunkFeed, Surface};

fn inspect(body: &str) -> Result<CompletionsView, (String, String)> {
    let obj = RawObject::parse(body.as_bytes()).unwrap();
    completions::inspect(&obj).map_err(|e| (e.param.to_owned(), e.message))
}

fn ids() -> Ids {
    Ids { id: "cmpl-test".to_owned(), created: 1_750_000_000 }
}

fn translate(body: Value) -> Translated {
    completions::translate(&serde_json::to_vec(&body).unwrap(), ids()).unwrap()
}

/// The refused parameter and the message.
fn refused(body: Value) -> (String, String) {
    let error = completions::translate(&serde_json::to_vec(&body).unwrap(), ids()).unwrap_err();
    (error.param, error.message)
}

fn chat_json(translated: &Translated) -> Value {
    serde_json::to_value(&translated.chat).unwrap()
}

#[test]
fn inspect_reads_what_the_gateway_needs() {
    let view = inspect(r#"{"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test","max_tokens":7}"#).unwrap();
    assert_eq!(
        view,
        CompletionsView {
            model: "gpt-3.5-turbo-instruct".to_owned(),
            stream: false,
            include_usage: false,
            max_tokens: Some(7)
        }
    );
    let view = inspect(r#"{"model":"m","prompt":["a","b"],"stream":true,"stream_options":{"include_usage":true}}"#);
    let view = view.unwrap();
    assert!(view.stream && view.include_usage);
    assert_eq!(view.max_tokens, None);
    let chat = view.chat_view();
    assert_eq!((chat.model.as_str(), chat.stream, chat.include_usage), ("m", true, true));
    for prompt in [r#""""#, "[1,2,3]", "[[1,2],[3]]", r#"["one"]"#] {
        assert!(inspect(&format!(r#"{{"model":"m","prompt":{prompt}}}"#)).is_ok(), "{prompt}");
    }
}

#[test]
fn estimates_prompt_tokens() {
    assert_eq!(completions::estimate_prompt_tokens(br#"{"model":"m","prompt":"abcdefgh"}"#), 2);
    assert_eq!(completions::estimate_prompt_tokens(br#"{"model":"m","prompt":["abcd","ab"]}"#), 2);
    assert_eq!(completions::estimate_prompt_tokens(br#"{"model":"m","prompt":[[1,2,3],[4]]}"#), 4);
    assert_eq!(completions::estimate_prompt_tokens(br#"{"model":"m"}"#), 0);
}

#[test]
fn inspect_names_the_bad_parameter() {
    let cases = [
        (r#"{"prompt":"a"}"#, "model"),
        (r#"{"model":1,"prompt":"a"}"#, "model"),
        (r#"{"model":"m"}"#, "prompt"),
        (r#"{"model":"m","prompt":null}"#, "prompt"),
        (r#"{"model":"m","prompt":5}"#, "prompt"),
        (r#"{"model":"m","prompt":[]}"#, "prompt"),
        (r#"{"model":"m","prompt":[{"text":"a"}]}"#, "prompt"),
        (r#"{"model":"m","prompt":[1.5]}"#, "prompt"),
        (r#"{"model":"m","prompt":"a","stream":"yes"}"#, "stream"),
        (r#"{"model":"m","prompt":"a","stream_options":true}"#, "stream_options"),
        (r#"{"model":"m","prompt":"a","stream_options":{"include_usage":"yes"}}"#, "stream_options"),
        (r#"{"model":"m","prompt":"a","max_tokens":-1}"#, "max_tokens"),
        (r#"{"model":"m","prompt":"a","max_tokens":"16"}"#, "max_tokens"),
        (r#"{"model":"m","prompt":"a","n":0}"#, "n"),
        (r#"{"model":"m","prompt":"a","temperature":"hot"}"#, "temperature"),
    ];
    for (body, param) in cases {
        let (got, message) = inspect(body).unwrap_err();
        assert_eq!(got, param, "{body}: {message}");
        assert!(message.contains(&format!("'{param}")), "{body}: {message}");
    }
}

#[test]
fn translate_makes_a_single_turn_chat() {
    let translated = translate(json!({"model": "claude-haiku", "prompt": "Say this is a test"}));
    assert_eq!(
        chat_json(&translated),
        json!({
            "model": "claude-haiku",
            "messages": [{"role": "user", "content": "Say this is a test"}],
            "max_tokens": 16,
        })
    );
    assert!(!translated.surface.include_usage());
    let one_of_list = translate(json!({"model": "claude-haiku", "prompt": ["Say this is a test"]}));
    assert_eq!(one_of_list.chat, translated.chat, "an array of one prompt is that prompt");
}

#[test]
fn translate_carries_the_options() {
    let translated = translate(json!({
        "model": "gemini-2.5-flash",
        "prompt": "Once upon a time",
        "max_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "n": 2,
        "stop": ["\n\n", "END"],
        "presence_penalty": 0.25,
        "frequency_penalty": 0.5,
        "logit_bias": {"50256": -100},
        "seed": 7,
        "user": "u-1",
        "suffix": null,
        "suffix_unknown_field": true,
        "echo": false,
        "logprobs": null,
        "best_of": 1,
    }));
    assert_eq!(
        chat_json(&translated),
        json!({
            "model": "gemini-2.5-flash",
            "messages": [{"role": "user", "content": "Once upon a time"}],
            "max_tokens": 64,
            "temperature": 0.5,
            "top_p": 0.9,
            "n": 2,
            "stop": ["\n\n", "END"],
            "seed": 7,
            "user": "u-1",
            "presence_penalty": 0.25,
            "frequency_penalty": 0.5,
            "logit_bias": {"50256": -100},
        })
    );
}

#[test]
fn translate_streams_with_usage_and_remembers_what_the_client_asked() {
    let quiet = translate(json!({"model": "m", "prompt": "a", "stream": true}));
    let chat = chat_json(&quiet);
    assert_eq!((&chat["stream"], &chat["stream_options"]), (&json!(true), &json!({"include_usage": true})));
    assert!(!quiet.surface.include_usage());
    let asked =
        translate(json!({"model": "m", "prompt": "a", "stream": true, "stream_options": {"include_usage": true}}));
    assert!(asked.surface.include_usage());
    assert_eq!(asked.chat, quiet.chat);
}

#[test]
fn translate_refuses_what_a_chat_cannot_express() {
    let cases = [
        (json!({"model": "m", "prompt": ["a", "b"]}), "prompt", "single text prompt"),
        (json!({"model": "m", "prompt": [1, 2, 3]}), "prompt", "single text prompt"),
        (json!({"model": "m", "prompt": [[1], [2]]}), "prompt", "single text prompt"),
        (json!({"model": "m", "prompt": []}), "prompt", "empty"),
        (json!({"model": "m", "prompt": 5}), "prompt", "expected a string"),
        (json!({"model": "m"}), "prompt", "Missing"),
        (json!({"prompt": "a"}), "model", "Missing"),
        (json!({"model": "m", "prompt": "a", "suffix": "}"}), "suffix", "OpenAI-compatible"),
        (json!({"model": "m", "prompt": "a", "echo": true}), "echo", "OpenAI-compatible"),
        (json!({"model": "m", "prompt": "a", "logprobs": 0}), "logprobs", "OpenAI-compatible"),
        (json!({"model": "m", "prompt": "a", "best_of": 3}), "best_of", "OpenAI-compatible"),
        (json!({"model": "m", "prompt": "a", "temperature": "hot"}), "temperature", "'temperature'"),
        (json!({"model": "m", "prompt": "a", "max_tokens": -1}), "max_tokens", "'max_tokens'"),
        (json!({"model": "m", "prompt": "a", "stop": [1]}), "stop", "'stop'"),
    ];
    for (body, param, says) in cases {
        let (got, message) = refused(body.clone());
        assert_eq!(got, param, "{body}: {message}");
        assert!(message.contains(says), "{body}: {message}");
    }
    let error = completions::translate(b"[1]", ids()).unwrap_err();
    assert_eq!(error.param, "");
}

#[test]
fn translated_requests_encode_for_other_providers() {
    let target = Target { upstream_model: "gemini-2.5-flash", max_output_tokens: 8192 };
    let translated = translate(json!({"model": "m", "prompt": "Hi", "presence_penalty": 0.5, "stop": "\n"}));
    let encoded = GEMINI.encode_request(&translated.chat, &target, false).unwrap();
    let body: Value = serde_json::from_slice(&encoded.body).unwrap();
    assert_eq!(body["contents"], json!([{"role": "user", "parts": [{"text": "Hi"}]}]));
    assert_eq!(
        body["generationConfig"],
        json!({"maxOutputTokens": 16, "stopSequences": ["\n"], "presencePenalty": 0.5})
    );
    let target = Target { upstream_model: "claude-haiku-4-5", max_output_tokens: 8192 };
    let plain = translate(json!({"model": "m", "prompt": "Hi", "stream": true}));
    let encoded = ANTHROPIC.encode_request(&plain.chat, &target, true).unwrap();
    let body: Value = serde_json::from_slice(&encoded.body).unwrap();
    assert_eq!((&body["max_tokens"], &body["stream"]), (&json!(16), &json!(true)));
    // The chat rule for penalties holds here too: Anthropic refuses them, naming the field.
    let penalized = translate(json!({"model": "m", "prompt": "Hi", "frequency_penalty": 1.0}));
    assert_eq!(ANTHROPIC.encode_request(&penalized.chat, &target, false).unwrap_err().param, "frequency_penalty");
}

fn completion(choices: Value) -> ChatCompletion {
    serde_json::from_value(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "claude-haiku",
        "choices": choices,
    }))
    .unwrap()
}

#[test]
fn present_states_a_text_completion() {
    let surface = translate(json!({"model": "claude-haiku", "prompt": "Say this is a test"})).surface;
    let answer = completion(json!([
        {"index": 0, "message": {"role": "assistant", "content": "This is a test.", "refusal": null}, "logprobs": null, "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": "This is", "refusal": null}, "logprobs": null, "finish_reason": "length"},
        {"index": 2, "message": {"role": "assistant", "content": null, "refusal": null}, "logprobs": null, "finish_reason": "content_filter"},
    ]));
    let usage = Usage { prompt_tokens: 5, completion_tokens: 7, ..Usage::default() };
    let body: Value = serde_json::from_slice(&surface.present(&answer, usage)).unwrap();
    assert_eq!(
        body,
        json!({
            "id": "cmpl-test",
            "object": "text_completion",
            "created": 1_750_000_000,
            "model": "claude-haiku",
            "choices": [
                {"text": "This is a test.", "index": 0, "logprobs": null, "finish_reason": "stop"},
                {"text": "This is", "index": 1, "logprobs": null, "finish_reason": "length"},
                {"text": "", "index": 2, "logprobs": null, "finish_reason": "content_filter"},
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        })
    );
}

/// A canonical chat stream, as the adapters' stream decoders write it.
fn canonical_stream() -> Vec<u8> {
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut chunk = json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "claude-haiku",
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        format!("data: {chunk}\n\n")
    };
    let delta =
        |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    let usage = json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
        "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}});
    [
        chunk(delta(json!({"role": "assistant", "content": ""}), Value::Null), None),
        chunk(delta(json!({"content": "This is"}), Value::Null), None),
        chunk(delta(json!({"reasoning_content": "hmm"}), Value::Null), None),
        chunk(delta(json!({"content": " a tést."}), Value::Null), None),
        chunk(delta(json!({}), json!("length")), None),
        chunk(json!([]), Some(usage)),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat()
    .into_bytes()
}

fn events(sse: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(sse).unwrap();
    assert!(text.ends_with("\n\n"), "whole events only: {text:?}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap();
            if data == "[DONE]" { json!("[DONE]") } else { serde_json::from_str(data).unwrap() }
        })
        .collect()
}

fn text_chunk(text: &str, finish: Value) -> Value {
    json!({
        "id": "cmpl-test", "object": "text_completion", "created": 1_750_000_000,
        "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
        "model": "claude-haiku",
    })
}

fn run_stream(surface: &dyn Surface, split: usize) -> Vec<u8> {
    let bytes = canonical_stream();
    let mut feed = ChunkFeed::new(surface.stream());
    let mut out = Vec::new();
    for piece in bytes.chunks(split) {
        feed.feed(piece, &mut out).unwrap();
    }
    feed.finish(Usage { prompt_tokens: 5, completion_tokens: 3, ..Usage::default() }, &mut out);
    out
}

#[test]
fn stream_without_usage_sends_text_chunks_then_done() {
    let surface = translate(json!({"model": "claude-haiku", "prompt": "Say", "stream": true})).surface;
    let out = run_stream(&surface, usize::MAX);
    assert_eq!(
        events(&out),
        vec![
            text_chunk("This is", Value::Null),
            text_chunk(" a tést.", Value::Null),
            text_chunk("", json!("length")),
            json!("[DONE]"),
        ]
    );
    for split in [1, 2, 3, 7, 64] {
        assert_eq!(run_stream(&surface, split), out, "split every {split} bytes");
    }
}

#[test]
fn stream_with_usage_ends_with_the_usage_chunk() {
    let body =
        json!({"model": "claude-haiku", "prompt": "Say", "stream": true, "stream_options": {"include_usage": true}});
    let surface = translate(body).surface;
    let out = run_stream(&surface, 5);
    let events = events(&out);
    assert_eq!(events.len(), 5);
    assert_eq!(events[2], text_chunk("", json!("length")));
    assert_eq!(
        events[3],
        json!({
            "id": "cmpl-test", "object": "text_completion", "created": 1_750_000_000,
            "choices": [], "model": "claude-haiku",
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        })
    );
    assert_eq!(events[4], json!("[DONE]"));
}

#[test]
fn stream_failure_is_an_error_event() {
    let surface = translate(json!({"model": "claude-haiku", "prompt": "Say", "stream": true})).surface;
    let mut feed = ChunkFeed::new(surface.stream());
    let mut out = Vec::new();
    let first = b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"claude-haiku\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
    feed.feed(first, &mut out).unwrap();
    let error = br#"data: {"error":{"message":"overloaded","type":"upstream_error","code":"upstream_unavailable","param":null}}"#;
    assert_eq!(feed.feed(&[error.as_slice(), b"\n\n"].concat(), &mut out).unwrap_err(), "overloaded");
    feed.finish(Usage::default(), &mut out);
    assert_eq!(
        events(&out),
        vec![
            text_chunk("Hi", Value::Null),
            json!({"error": {"message": "overloaded", "type": "upstream_error", "code": "upstream_unavailable", "param": null}}),
        ],
        "no [DONE] after a failure"
    );
}
