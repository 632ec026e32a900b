//! The Anthropic stream decoder against streams adapted from Anthropic's documented
//! examples: the OpenAI chunks it writes, whatever the byte pieces the stream arrives in,
//! and how it ends (early, or with an error event).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;
use tokenrouter_core::Usage;
use tokenrouter_providers::adapter::{Adapter, ResponseMeta, StreamDecoder, UpstreamFailure};
use tokenrouter_providers::anthropic::ANTHROPIC;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/anthropic").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn meta(include_usage: bool) -> ResponseMeta {
    ResponseMeta {
        id: "chatcmpl-test".into(),
        model: "claude-sonnet-4-5".into(),
        created: 1_700_000_000,
        include_usage,
        one_tool_call: false,
    }
}

/// Feeds the stream in the given pieces, then finishes it.
fn decode_pieces(decoder: &mut dyn StreamDecoder, pieces: &[&[u8]]) -> Result<Vec<u8>, UpstreamFailure> {
    let mut out = Vec::new();
    for piece in pieces {
        decoder.feed(piece, &mut out)?;
    }
    decoder.finish(&mut out)?;
    Ok(out)
}

fn decode(stream: &[u8], include_usage: bool) -> Vec<u8> {
    let mut decoder = ANTHROPIC.stream_decoder(meta(include_usage));
    decode_pieces(decoder.as_mut(), &[stream]).unwrap()
}

/// The stream scenarios: fixture name and whether the client asked for usage.
const SCENARIOS: [(&str, bool); 5] =
    [("text", false), ("tools", true), ("parallel_tools", false), ("thinking_tools", true), ("json_schema", false)];

#[test]
fn transcodes_streams_into_chat_completion_chunks() {
    for (scenario, include_usage) in SCENARIOS {
        let out = decode(&fixture(&format!("{scenario}.stream.txt")), include_usage);
        let expected = fixture(&format!("{scenario}.chunks.txt"));
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap(), "{scenario}");
    }
}

#[test]
fn every_split_of_the_bytes_gives_the_same_chunks() {
    for (scenario, include_usage) in SCENARIOS {
        let stream = fixture(&format!("{scenario}.stream.txt"));
        let whole = decode(&stream, include_usage);
        for cut in 0..=stream.len() {
            let mut decoder = ANTHROPIC.stream_decoder(meta(include_usage));
            let out = decode_pieces(decoder.as_mut(), &[&stream[..cut], &stream[cut..]]).unwrap();
            assert_eq!(out, whole, "{scenario} cut at {cut}");
        }
        // And byte by byte, with the decoder's counters agreeing too.
        let mut decoder = ANTHROPIC.stream_decoder(meta(include_usage));
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_pieces(decoder.as_mut(), &bytes).unwrap(), whole);
        let mut once = ANTHROPIC.stream_decoder(meta(include_usage));
        decode_pieces(once.as_mut(), &[&stream]).unwrap();
        assert_eq!(decoder.usage(), once.usage(), "{scenario}");
        assert_eq!(decoder.delivered_chunks(), once.delivered_chunks());
    }
}

/// The `data` payloads of an OpenAI stream, as JSON (`[DONE]` left out).
fn chunks(out: &[u8]) -> Vec<Value> {
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    text.split("\n\n")
        .filter(|e| !e.is_empty() && *e != "data: [DONE]")
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

#[test]
fn chunks_carry_usage_null_only_when_usage_was_asked_for() {
    for include_usage in [false, true] {
        let all = chunks(&decode(&fixture("text.stream.txt"), include_usage));
        let (last, rest) = all.split_last().unwrap();
        for chunk in rest {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk.get("usage").is_some(), include_usage);
            if include_usage {
                assert!(chunk["usage"].is_null());
            }
        }
        if include_usage {
            assert_eq!(last["choices"], Value::Array(vec![]));
            assert_eq!(last["usage"]["prompt_tokens"], 25);
            assert_eq!(last["usage"]["completion_tokens"], 15);
            assert_eq!(last["usage"]["total_tokens"], 40);
        } else {
            assert_eq!(last["choices"][0]["finish_reason"], "stop");
        }
    }
}

#[test]
fn usage_and_delivered_chunks_follow_the_stream() {
    let stream = fixture("thinking_tools.stream.txt");
    let mut decoder = ANTHROPIC.stream_decoder(meta(false));
    let mut out = Vec::new();
    assert_eq!(decoder.usage(), None);
    let start = b"event: content_block_start";
    let first_block = stream.windows(start.len()).position(|w| w == start).unwrap();
    decoder.feed(&stream[..first_block], &mut out).unwrap();
    assert_eq!(decoder.usage(), Some(Usage { prompt_tokens: 412, completion_tokens: 1, ..Usage::default() }));
    assert_eq!(decoder.delivered_chunks(), 0);
    decoder.feed(&stream[first_block..], &mut out).unwrap();
    decoder.finish(&mut out).unwrap();
    assert_eq!(
        decoder.usage(),
        Some(Usage {
            prompt_tokens: 412,
            completion_tokens: 182,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 120,
            hosted: Default::default(),
        })
    );
    // Two reasoning deltas, one text delta, one arguments delta.
    assert_eq!(decoder.delivered_chunks(), 4);
}

#[test]
fn a_stream_cut_before_message_stop_is_a_failure() {
    let stream = fixture("text.stream.txt");
    let text = String::from_utf8(stream.clone()).unwrap();
    let cut = text.find("event: message_stop").unwrap();
    let mut decoder = ANTHROPIC.stream_decoder(meta(false));
    let failure = decode_pieces(decoder.as_mut(), &[&stream[..cut]]).unwrap_err();
    assert!(!failure.retryable);
    assert!(failure.message.contains("ended early"), "{}", failure.message);
    assert_eq!(decoder.delivered_chunks(), 2);

    // Cut in the middle of an event, too.
    let mid = text.find("\"stop_reason\": \"end_turn\"").unwrap();
    let mut decoder = ANTHROPIC.stream_decoder(meta(false));
    let failure = decode_pieces(decoder.as_mut(), &[&stream[..mid]]).unwrap_err();
    assert!(failure.message.contains("ended early"), "{}", failure.message);

    let mut empty = ANTHROPIC.stream_decoder(meta(false));
    assert!(decode_pieces(empty.as_mut(), &[]).is_err());
}

#[test]
fn a_last_event_without_its_blank_line_still_completes_the_stream() {
    let stream = fixture("text.stream.txt");
    let trimmed = stream.trim_ascii_end();
    assert_eq!(decode(trimmed, false), decode(&stream, false));
}

#[test]
fn an_error_event_fails_the_stream_as_its_type_says() {
    let stream = fixture("error_in_stream.stream.txt");
    let mut decoder = ANTHROPIC.stream_decoder(meta(false));
    let mut out = Vec::new();
    let failure = decoder.feed(&stream, &mut out).unwrap_err();
    assert!(failure.retryable);
    assert!(!failure.client_error);
    assert_eq!(failure.message, "Overloaded");
    // What came before the error was already written.
    let before = String::from_utf8(out).unwrap();
    assert!(before.contains(r#""delta":{"content":"Hello"}"#), "{before}");

    // Unterminated, at the very end of the stream, it still says what went wrong.
    let unterminated = stream.trim_ascii_end();
    let mut decoder = ANTHROPIC.stream_decoder(meta(false));
    let failure = decode_pieces(decoder.as_mut(), &[unterminated]).unwrap_err();
    assert_eq!(failure.message, "Overloaded");

    let invalid = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long\"}}\n\n";
    let mut decoder = ANTHROPIC.stream_decoder(meta(false));
    let failure = decoder.feed(invalid, &mut Vec::new()).unwrap_err();
    assert!(!failure.retryable && failure.client_error);
    assert_eq!(failure.message, "prompt is too long");
}

#[test]
fn a_tool_call_without_arguments_still_hands_over_an_object() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_time\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let all = chunks(&decode(stream.as_bytes(), false));
    let arguments: String = all
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{}");
    assert_eq!(all.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn an_unreadable_event_is_a_failure() {
    let mut decoder = ANTHROPIC.stream_decoder(meta(false));
    let failure = decoder.feed(b"event: message_start\ndata: {not json}\n\n", &mut Vec::new()).unwrap_err();
    assert!(!failure.retryable && !failure.client_error);
}

#[test]
fn an_event_that_never_ends_fails_the_stream_instead_of_growing() {
    let mut decoder = ANTHROPIC.stream_decoder(meta(false));
    let mut out = Vec::new();
    decoder.feed(b"event: ping\ndata: {\"type\":\"ping\"}\n\n", &mut out).unwrap();
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
