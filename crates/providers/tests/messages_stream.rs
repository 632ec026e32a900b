//! The Messages surface's stream: canonical chunk streams (as the Anthropic adapter and
//! others write them) transcoded into Anthropic's events — their order, block indices and
//! deltas, whatever the byte pieces they arrive in — and read back the way the anthropic
//! SDK's `messages.stream()` accumulates them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{Value, json};
use tokenrouter_core::Usage;
use tokenrouter_providers::adapter::{Adapter, ResponseMeta};
use tokenrouter_providers::anthropic::ANTHROPIC;
use tokenrouter_providers::messages::{self, Ids};
use tokenrouter_providers::surface::{ChunkFeed, Surface};

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const USAGE: Usage = Usage {
    prompt_tokens: 412,
    completion_tokens: 182,
    cached_tokens: 12,
    cache_write_tokens: 0,
    reasoning_tokens: 120,
    hosted: tokenrouter_core::HostedCalls { web_search: 0, web_fetch: 0 },
};

fn surface() -> messages::MessagesSurface {
    let body =
        br#"{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    messages::translate(messages::parse(body).unwrap(), Ids { message_id: "msg_test".into() }).unwrap().surface
}

/// Feeds canonical SSE bytes in the given pieces, then finishes.
fn transcode(pieces: &[&[u8]]) -> Vec<u8> {
    let mut feed = ChunkFeed::new(surface().stream());
    let mut out = Vec::new();
    for piece in pieces {
        feed.feed(piece, &mut out).unwrap();
    }
    feed.finish(USAGE, &mut out);
    out
}

/// The events as (name, data), checking each is named by its type.
fn events(out: &[u8]) -> Vec<(String, Value)> {
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(text.ends_with("\n\n"), "{text}");
    text.trim_end()
        .split("\n\n")
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// The final message as the anthropic SDK's stream helper builds it from the events (it
/// requires `message_start` first and blocks at the index they were started at; a
/// `signature_delta` sets the signature; tool input is parsed from the JSON fragments).
fn accumulate(events: &[(String, Value)]) -> Value {
    let mut message: Option<Value> = None;
    let mut json_buffers: Vec<String> = Vec::new();
    let mut open: Vec<u64> = Vec::new();
    for (name, data) in events {
        if name == "ping" {
            continue;
        }
        let Some(snapshot) = message.as_mut() else {
            assert_eq!(name, "message_start", "an event before message_start");
            message = Some(data["message"].clone());
            continue;
        };
        let content = snapshot["content"].as_array_mut().unwrap();
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(data["index"], content.len(), "blocks are numbered in order from 0");
                assert!(open.is_empty(), "a block starts while another is open");
                open.push(data["index"].as_u64().unwrap());
                content.push(data["content_block"].clone());
                json_buffers.push(String::new());
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap();
                assert_eq!(open, [index], "a delta to a block that is not open");
                let block = &mut content[index as usize];
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => {
                        block["text"] =
                            json!(format!("{}{}", block["text"].as_str().unwrap(), delta["text"].as_str().unwrap()))
                    }
                    "thinking_delta" => {
                        block["thinking"] = json!(format!(
                            "{}{}",
                            block["thinking"].as_str().unwrap(),
                            delta["thinking"].as_str().unwrap()
                        ))
                    }
                    "signature_delta" => block["signature"] = delta["signature"].clone(),
                    "input_json_delta" => {
                        json_buffers[index as usize].push_str(delta["partial_json"].as_str().unwrap())
                    }
                    other => panic!("unknown delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap();
                assert_eq!(open.pop(), Some(index));
                let buffer = &json_buffers[index as usize];
                if content[index as usize]["type"] == "tool_use" && !buffer.is_empty() {
                    content[index as usize]["input"] = serde_json::from_str(buffer).unwrap();
                }
            }
            "message_delta" => {
                snapshot["stop_reason"] = data["delta"]["stop_reason"].clone();
                snapshot["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                for (key, value) in data["usage"].as_object().unwrap() {
                    snapshot["usage"][key] = value.clone();
                }
            }
            "message_stop" => assert!(open.is_empty()),
            other => panic!("unexpected event {other}"),
        }
    }
    message.unwrap()
}

#[test]
fn transcodes_canonical_streams_into_anthropic_events() {
    for scenario in ["text", "thinking_tools", "parallel_tools"] {
        let out = transcode(&[&fixture("messages", &format!("{scenario}.chunks.txt"))]);
        let expected = fixture("messages", &format!("{scenario}.events.txt"));
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap(), "{scenario}");
    }
}

#[test]
fn every_split_of_the_bytes_gives_the_same_events() {
    for scenario in ["text", "thinking_tools", "parallel_tools"] {
        let stream = fixture("messages", &format!("{scenario}.chunks.txt"));
        let whole = transcode(&[&stream]);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(transcode(&bytes), whole, "{scenario} byte by byte");
        for cut in (0..=stream.len()).step_by(7) {
            assert_eq!(transcode(&[&stream[..cut], &stream[cut..]]), whole, "{scenario} cut at {cut}");
        }
    }
}

#[test]
fn a_text_answer_streams_as_one_text_block() {
    let events = events(&transcode(&[&fixture("messages", "text.chunks.txt")]));
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0].1["message"];
    assert_eq!((start["id"].as_str(), start["model"].as_str()), (Some("msg_test"), Some("claude-sonnet-4-5")));
    assert_eq!((start["content"].clone(), start["stop_reason"].clone()), (json!([]), Value::Null));
    let message = accumulate(&events);
    assert_eq!(message["content"], json!([{"type": "text", "text": "Hello!"}]));
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 400, "output_tokens": 182, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 12})
    );
}

#[test]
fn thinking_streams_with_its_signature_before_text_and_tool_use() {
    let events = events(&transcode(&[&fixture("messages", "thinking_tools.chunks.txt")]));
    let message = accumulate(&events);
    assert_eq!(
        message["content"],
        json!([
            {
                "type": "thinking",
                "thinking": "The user wants the weather in Paris.\n\nI should call get_weather.",
                "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds...tail"
            },
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP..."},
            {"type": "text", "text": "Let me check that for you."},
            {"type": "tool_use", "id": "toolu_01CswdEQBMshySk6Y9DFKrfq", "name": "get_weather", "input": {"location": "Paris"}}
        ])
    );
    assert_eq!(message["stop_reason"], "tool_use");
    // The signature comes once, whole, after the thinking text and before the block ends.
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(_, d)| d["index"] == 0 && d["type"] == "content_block_delta")
        .map(|(_, d)| d["delta"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["thinking_delta", "thinking_delta", "signature_delta"]);
}

#[test]
fn two_tool_calls_stream_as_two_tool_use_blocks() {
    let message = accumulate(&events(&transcode(&[&fixture("messages", "parallel_tools.chunks.txt")])));
    assert_eq!(
        message["content"],
        json!([
            {"type": "tool_use", "id": "toolu_01C", "name": "get_weather", "input": {"location": "Boston, MA"}},
            {"type": "tool_use", "id": "toolu_01D", "name": "get_time", "input": {"timezone": "America/New_York"}}
        ])
    );
    assert_eq!(message["stop_reason"], "tool_use");
}

#[test]
fn an_anthropic_upstream_stream_reaches_the_client_as_anthropic_sent_it() {
    let meta = ResponseMeta {
        id: "chatcmpl-x".into(),
        model: "claude-sonnet-4-5".into(),
        created: 1,
        include_usage: true,
        one_tool_call: false,
    };
    for scenario in ["text", "tools", "parallel_tools", "thinking_tools"] {
        let upstream = fixture("anthropic", &format!("{scenario}.stream.txt"));
        let mut decoder = ANTHROPIC.stream_decoder(meta.clone());
        let mut canonical = Vec::new();
        decoder.feed(&upstream, &mut canonical).unwrap();
        decoder.finish(&mut canonical).unwrap();
        let ours = accumulate(&events(&transcode(&[&canonical])));
        let mut theirs = accumulate(&events(&upstream));
        // Anthropic's example splits one signature over two deltas; it is one signature.
        if scenario == "thinking_tools" {
            theirs["content"][0]["signature"] = json!("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds...tail");
        }
        assert_eq!(ours["content"], theirs["content"], "{scenario}");
        assert_eq!(ours["stop_reason"], theirs["stop_reason"], "{scenario}");
    }
}

/// Canonical chunk events for the given deltas (and finish reasons) of choice 0.
fn chunks(deltas: &[(Value, Option<&str>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (delta, finish) in deltas {
        let chunk = json!({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
    }
    out
}

#[test]
fn unsigned_reasoning_is_a_thinking_block_without_signature() {
    let stream = chunks(&[
        (json!({"role": "assistant"}), None),
        (json!({"reasoning_content": "Hmm, "}), None),
        (json!({"reasoning_content": "easy."}), None),
        (json!({"content": "4"}), None),
        (json!({}), Some("length")),
    ]);
    let events = events(&transcode(&[&stream]));
    assert!(!events.iter().any(|(_, d)| d["delta"]["type"] == "signature_delta"));
    let message = accumulate(&events);
    assert_eq!(
        message["content"],
        json!([{"type": "thinking", "thinking": "Hmm, easy.", "signature": ""}, {"type": "text", "text": "4"}])
    );
    assert_eq!(message["stop_reason"], "max_tokens");
}

#[test]
fn whole_tool_calls_and_other_providers_signatures_arrive_in_order() {
    // As the Gemini adapter streams: a call whole in one delta, its thought signature beside it.
    let signature = json!({"type": "gemini_thought_signature", "signature": "CiQB0e2Kb"});
    let stream = chunks(&[
        (json!({"content": "Let me look."}), None),
        (
            json!({"thinking_blocks": [signature], "tool_calls": [{"index": 0, "id": "call_0_0", "type": "function", "function": {"name": "w", "arguments": "{\"q\":1}"}}]}),
            None,
        ),
        (json!({"tool_calls": [{"index": 1, "type": "function", "function": {"name": "v", "arguments": "{}"}}]}), None),
        (json!({}), Some("stop")),
    ]);
    let message = accumulate(&events(&transcode(&[&stream])));
    let content = message["content"].as_array().unwrap();
    assert_eq!(content.len(), 4);
    assert_eq!(content[0], json!({"type": "text", "text": "Let me look."}));
    assert_eq!(content[1]["type"], "redacted_thinking");
    assert_eq!(content[2], json!({"type": "tool_use", "id": "call_0_0", "name": "w", "input": {"q": 1}}));
    assert_eq!(content[3], json!({"type": "tool_use", "id": "toolu_msg_test_1", "name": "v", "input": {}}));
    assert_eq!(message["stop_reason"], "tool_use");
}

#[test]
fn usage_at_the_end_reports_cache_reads_and_writes() {
    let mut stream = chunks(&[(json!({"content": "hi"}), Some("stop"))]);
    stream.extend_from_slice(
        br#"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":412,"completion_tokens":182,"total_tokens":594,"prompt_tokens_details":{"cached_tokens":12,"cache_creation_tokens":300},"completion_tokens_details":{"reasoning_tokens":0}}}

data: [DONE]

"#,
    );
    let events = events(&transcode(&[&stream]));
    let (_, delta) = events.iter().find(|(name, _)| name == "message_delta").unwrap();
    assert_eq!(
        delta["usage"],
        json!({"input_tokens": 100, "output_tokens": 182, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 12})
    );
}

#[test]
fn a_stream_that_breaks_ends_with_an_error_event() {
    let mut stream = surface().stream();
    let mut out = Vec::new();
    let canonical = chunks(&[(json!({"content": "Hel"}), None)]);
    let mut feed = ChunkFeed::new(surface().stream());
    feed.feed(&canonical, &mut out).unwrap();
    feed.fail("The upstream broke off.", &mut out);
    feed.finish(USAGE, &mut out);
    let broken = events(&out);
    assert_eq!(names(&broken), ["message_start", "ping", "content_block_start", "content_block_delta", "error"]);
    assert_eq!(
        broken[4].1,
        json!({"type": "error", "error": {"type": "api_error", "message": "The upstream broke off."}})
    );

    // An error event in the canonical stream fails it the same way, once.
    let mut out = Vec::new();
    let mut feed = ChunkFeed::new(surface().stream());
    let error =
        br#"data: {"error":{"message":"Overloaded","type":"upstream_error","code":"upstream_unavailable","param":null}}

"#;
    assert!(feed.feed(error, &mut out).is_err());
    feed.finish(USAGE, &mut out);
    assert_eq!(names(&events(&out)), ["error"]);

    // And the transcoder itself writes nothing after it has failed.
    stream.fail("gone", &mut out);
    let before = out.len();
    stream.finish(USAGE, &mut out);
    stream.fail("again", &mut out);
    assert_eq!(out.len(), before);
}

#[test]
fn a_stream_without_chunks_is_still_a_whole_message() {
    let events = events(&transcode(&[b"data: [DONE]\n\n"]));
    assert_eq!(names(&events), ["message_start", "ping", "message_delta", "message_stop"]);
    let message = accumulate(&events);
    assert_eq!((message["content"].clone(), message["stop_reason"].clone()), (json!([]), json!("end_turn")));
}
