//! Gemini adapter, streaming: golden `alt=sse` streams transcoded into OpenAI chunks, the
//! same output whatever the byte boundaries, usage, and streams that fail or end early.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tokenrouter_core::Usage;
use tokenrouter_providers::adapter::{Adapter, ResponseMeta, StreamDecoder, UpstreamFailure};
use tokenrouter_providers::gemini::GEMINI;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/gemini/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn meta(include_usage: bool) -> ResponseMeta {
    ResponseMeta {
        id: "chatcmpl-gemini-test".to_owned(),
        model: "gemini-2.5-flash".to_owned(),
        created: 1_750_000_000,
        include_usage,
        one_tool_call: false,
    }
}

/// (scenario, include_usage)
const STREAMS: [(&str, bool); 6] = [
    ("stream_text", true),
    ("stream_function_call", false),
    ("stream_parallel_function_calls", false),
    ("stream_thinking", true),
    ("stream_safety_block", false),
    ("stream_prompt_block", true),
];

fn run<'a>(
    decoder: &mut dyn StreamDecoder,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, UpstreamFailure> {
    let mut out = Vec::new();
    for piece in pieces {
        decoder.feed(piece, &mut out)?;
    }
    decoder.finish(&mut out)?;
    Ok(out)
}

fn transcode(bytes: &[u8], include_usage: bool) -> Vec<u8> {
    run(GEMINI.stream_decoder(meta(include_usage)).as_mut(), [bytes]).unwrap()
}

/// The events of an OpenAI stream: each must be `data: ...\n\n`; JSON payloads are parsed
/// (tool-call arguments too, so that key order does not matter), `[DONE]` kept as text.
fn events(stream: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(stream).unwrap();
    assert!(text.ends_with("\n\n"), "unterminated stream: {text}");
    text.trim_end_matches("\n\n")
        .split("\n\n")
        .map(|event| {
            let data = event.strip_prefix("data: ").unwrap();
            if data == "[DONE]" {
                return Value::String(data.to_owned());
            }
            let mut chunk: Value = serde_json::from_str(data).unwrap();
            for choice in chunk["choices"].as_array_mut().unwrap() {
                let calls = choice["delta"]["tool_calls"].as_array_mut();
                for call in calls.into_iter().flatten() {
                    let args = call["function"]["arguments"].as_str().unwrap().to_owned();
                    call["function"]["arguments"] = serde_json::from_str(&args).unwrap();
                }
            }
            chunk
        })
        .collect()
}

#[test]
fn golden_streams_match_the_expected_chunks() {
    for (scenario, include_usage) in STREAMS {
        let out = transcode(&fixture(&format!("{scenario}.sse")), include_usage);
        let expected = fixture(&format!("{scenario}.openai.sse"));
        assert_eq!(events(&out), events(&expected), "scenario {scenario}");
    }
}

#[test]
fn every_split_of_the_input_gives_the_same_output() {
    for (scenario, include_usage) in STREAMS {
        let input = fixture(&format!("{scenario}.sse"));
        let whole = transcode(&input, include_usage);
        for cut in 0..=input.len() {
            let mut decoder = GEMINI.stream_decoder(meta(include_usage));
            let out = run(decoder.as_mut(), [&input[..cut], &input[cut..]]).unwrap();
            assert_eq!(out, whole, "{scenario} cut at {cut}");
        }
        let mut decoder = GEMINI.stream_decoder(meta(include_usage));
        let bytes = run(decoder.as_mut(), input.chunks(1)).unwrap();
        assert_eq!(bytes, whole, "{scenario} byte by byte");
    }
}

#[test]
fn many_random_splits_give_the_same_output() {
    // A small deterministic generator: the test is reproducible without a seed file.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % (bound as u64)).unwrap()
    };
    for (scenario, include_usage) in STREAMS {
        let input = fixture(&format!("{scenario}.sse"));
        let whole = transcode(&input, include_usage);
        for round in 0..200 {
            let mut cuts: Vec<usize> = (0..next(8)).map(|_| next(input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&input[start..cut]);
                start = cut;
            }
            pieces.push(&input[start..]);
            let mut decoder = GEMINI.stream_decoder(meta(include_usage));
            let out = run(decoder.as_mut(), pieces).unwrap();
            assert_eq!(out, whole, "{scenario} round {round}");
        }
    }
}

#[test]
fn usage_and_delivered_chunks_are_reported_as_they_arrive() {
    let input = fixture("stream_text.sse");
    let first_event = input.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut decoder = GEMINI.stream_decoder(meta(false));
    let mut out = Vec::new();
    assert_eq!(decoder.usage(), None);
    decoder.feed(&input[..first_event], &mut out).unwrap();
    assert_eq!(decoder.usage(), Some(Usage { prompt_tokens: 11, ..Usage::default() }));
    assert_eq!(decoder.delivered_chunks(), 1);
    decoder.feed(&input[first_event..], &mut out).unwrap();
    decoder.finish(&mut out).unwrap();
    assert_eq!(decoder.usage(), Some(Usage { prompt_tokens: 11, completion_tokens: 25, ..Usage::default() }));
    assert_eq!(decoder.delivered_chunks(), 3);
    // Without include_usage: no usage member and no usage chunk.
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("\"usage\""));
    assert!(text.ends_with("data: [DONE]\n\n"));

    let mut calls = GEMINI.stream_decoder(meta(false));
    run(calls.as_mut(), [fixture("stream_parallel_function_calls.sse").as_slice()]).unwrap();
    assert_eq!(calls.delivered_chunks(), 3);
}

#[test]
fn an_error_event_fails_the_stream() {
    let mut decoder = GEMINI.stream_decoder(meta(true));
    let error = run(decoder.as_mut(), [fixture("stream_error.sse").as_slice()]).unwrap_err();
    assert_eq!(error.status, 503);
    assert!(error.retryable);
    assert_eq!(error.message, "The model is overloaded. Please try again later.");
    assert_eq!(decoder.delivered_chunks(), 1);
}

#[test]
fn a_stream_without_a_finish_reason_ended_early() {
    let input = fixture("stream_text.sse");
    let last_event = input[..input.len() - 4].windows(4).rposition(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut decoder = GEMINI.stream_decoder(meta(true));
    let error = run(decoder.as_mut(), [&input[..last_event]]).unwrap_err();
    assert_eq!(error.status, 0);
    assert!(!error.client_error);
    let mut empty = GEMINI.stream_decoder(meta(true));
    assert!(run(empty.as_mut(), []).is_err());
}

#[test]
fn a_last_event_without_its_blank_line_still_counts() {
    let input = fixture("stream_text.sse");
    let whole = transcode(&input, true);
    let trimmed = transcode(&input[..input.len() - 4], true);
    assert_eq!(trimmed, whole);
}

#[test]
fn garbage_in_the_stream_is_an_error() {
    let mut decoder = GEMINI.stream_decoder(meta(false));
    let mut out = Vec::new();
    let error = decoder.feed(b"data: {not json\n\n", &mut out).unwrap_err();
    assert_eq!(error.status, 0);
    assert!(out.is_empty());
}

#[test]
fn a_later_signed_call_gets_placeholders_for_the_calls_before_it() {
    let input = concat!(
        r#"data: {"candidates": [{"content": {"role": "model", "parts": ["#,
        r#"{"functionCall": {"name": "a", "args": {}}},"#,
        r#"{"functionCall": {"name": "b", "args": {"x": 1}}, "thoughtSignature": "SIG-B"}"#,
        r#"]}, "finishReason": "STOP"}]}"#,
        "\n\n"
    );
    let events = events(&transcode(input.as_bytes(), false));
    assert_eq!(events[1]["choices"][0]["delta"].get("thinking_blocks"), None);
    assert_eq!(
        events[2]["choices"][0]["delta"]["thinking_blocks"],
        serde_json::json!([
            {"type": "gemini_thought_signature"},
            {"type": "gemini_thought_signature", "signature": "SIG-B"}
        ])
    );
    assert_eq!(events[2]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
    assert_eq!(events[3]["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn an_event_that_never_ends_fails_the_stream_instead_of_growing() {
    let mut decoder = GEMINI.stream_decoder(meta(false));
    let mut out = Vec::new();
    let piece = [b'x'; 64 * 1024];
    let mut fed = 0;
    let failure = loop {
        if let Err(failure) = decoder.feed(&piece, &mut out) {
            break failure;
        }
        fed += piece.len();
        assert!(fed <= 5 * 1024 * 1024, "still buffering after {fed} bytes");
    };
    assert!(failure.message.contains("larger than 4 MiB"), "{failure:?}");
}
