//! The Responses stream against canonical chunk streams: the exact event sequence the
//! OpenAI SDKs' stream helpers and Codex read, numbered from 0, with every delta adding
//! up to its `done` text, whatever pieces the chunk bytes arrive in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{Value, json};
use tokenrouter_core::Usage;
use tokenrouter_core::chat::ChatCompletion;
use tokenrouter_providers::responses::{self, Ids, Options, ResponsesSurface};
use tokenrouter_providers::surface::{ChunkFeed, Surface};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/responses").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn surface() -> ResponsesSurface {
    surface_of("present.request.json")
}

fn surface_of(request: &str) -> ResponsesSurface {
    let mut request = responses::parse(&fixture(request)).unwrap();
    request.stream = Some(true);
    let ids = Ids { response_id: "resp_test1".into(), created_at: 1_700_000_000 };
    responses::translate(request, None, ids, &Options::default()).unwrap().surface
}

const USAGE: Usage = Usage {
    prompt_tokens: 9,
    completion_tokens: 4,
    cached_tokens: 0,
    cache_write_tokens: 0,
    reasoning_tokens: 0,
    hosted: tokenrouter_core::HostedCalls { web_search: 0, web_fetch: 0 },
};

/// Feeds the canonical SSE bytes in the given pieces, then finishes; the events written
/// and what `completed` returns.
fn transcode(surface: &ResponsesSurface, pieces: &[&[u8]]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut feed = ChunkFeed::new(surface.stream());
    let mut out = Vec::new();
    for piece in pieces {
        feed.feed(piece, &mut out).unwrap();
    }
    feed.finish(USAGE, &mut out);
    (out, feed.completed())
}

/// The events as (SSE event name, data), checked to be well formed: the name is the
/// data's `type`, and `sequence_number` counts from 0.
fn events(out: &[u8]) -> Vec<(String, Value)> {
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(text.ends_with("\n\n"));
    let events: Vec<(String, Value)> = text
        .split_terminator("\n\n")
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            (name, data)
        })
        .collect();
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i, "{name}");
    }
    events
}

fn kinds(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.strip_prefix("response.").unwrap_or(name)).collect()
}

/// Rebuilds the response from the events as the SDK stream helpers do (a snapshot from
/// `response.created`, items by `output_index`, parts by `content_index`, deltas
/// appended), checking each `done` event against what the deltas added up to. Returns the
/// final event's response.
fn accumulate(events: &[(String, Value)]) -> Value {
    let (first, created) = &events[0];
    assert_eq!(first, "response.created");
    let mut snapshot = created["response"].clone();
    assert_eq!(snapshot["status"], "in_progress");
    assert_eq!(snapshot["output"], json!([]));
    assert_eq!(snapshot["usage"], Value::Null);
    assert_eq!(events[1].0, "response.in_progress");
    assert_eq!(events[1].1["response"], snapshot);
    for (name, event) in &events[2..] {
        let output = snapshot["output"].as_array_mut().unwrap();
        let index = event["output_index"].as_u64().map(|i| i as usize);
        if let Some(index) = index
            && name != "response.output_item.added"
        {
            assert_eq!(event.get("item_id").unwrap_or(&event["item"]["id"]), &output[index]["id"], "{name}");
        }
        let item = index.and_then(|i| output.get_mut(i));
        let part = |item: Option<&mut Value>, key: &str, index: &str| -> Value {
            item.unwrap()[key][event[index].as_u64().unwrap() as usize].clone()
        };
        match name.as_str() {
            "response.output_item.added" => {
                assert_eq!(index, Some(output.len()));
                output.push(event["item"].clone());
            }
            "response.content_part.added" => {
                let content = item.unwrap()["content"].as_array_mut().unwrap();
                assert_eq!(event["content_index"], content.len());
                content.push(event["part"].clone());
            }
            "response.reasoning_summary_part.added" => {
                let summary = item.unwrap()["summary"].as_array_mut().unwrap();
                assert_eq!(event["summary_index"], summary.len());
                summary.push(event["part"].clone());
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let key = if name == "response.output_text.delta" { "text" } else { "refusal" };
                let content = &mut item.unwrap()["content"][event["content_index"].as_u64().unwrap() as usize];
                let text = format!("{}{}", content[key].as_str().unwrap(), event["delta"].as_str().unwrap());
                content[key] = json!(text);
            }
            "response.reasoning_summary_text.delta" => {
                let summary = &mut item.unwrap()["summary"][event["summary_index"].as_u64().unwrap() as usize];
                summary["text"] =
                    json!(format!("{}{}", summary["text"].as_str().unwrap(), event["delta"].as_str().unwrap()));
            }
            "response.function_call_arguments.delta" => {
                let call = item.unwrap();
                call["arguments"] =
                    json!(format!("{}{}", call["arguments"].as_str().unwrap(), event["delta"].as_str().unwrap()));
            }
            "response.custom_tool_call_input.delta" => {
                let call = item.unwrap();
                call["input"] =
                    json!(format!("{}{}", call["input"].as_str().unwrap(), event["delta"].as_str().unwrap()));
            }
            "response.custom_tool_call_input.done" => assert_eq!(item.unwrap()["input"], event["input"]),
            "response.output_text.done" => assert_eq!(part(item, "content", "content_index")["text"], event["text"]),
            "response.refusal.done" => assert_eq!(part(item, "content", "content_index")["refusal"], event["refusal"]),
            "response.content_part.done" => assert_eq!(part(item, "content", "content_index"), event["part"]),
            "response.reasoning_summary_text.done" => {
                assert_eq!(part(item, "summary", "summary_index")["text"], event["text"]);
            }
            "response.reasoning_summary_part.done" => assert_eq!(part(item, "summary", "summary_index"), event["part"]),
            "response.function_call_arguments.done" => {
                let call = item.unwrap();
                assert_eq!(call["arguments"], event["arguments"]);
                assert_eq!(call["name"], event["name"]);
            }
            "response.output_item.done" => {
                let item = item.unwrap();
                for key in ["type", "id", "content", "summary", "arguments", "input", "name", "call_id", "namespace"] {
                    assert_eq!(item.get(key), event["item"].get(key), "{key}");
                }
                *item = event["item"].clone();
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                assert_eq!(event["response"]["output"], snapshot["output"]);
                return event["response"].clone();
            }
            other => panic!("unexpected event {other}"),
        }
    }
    panic!("the stream did not end with a response event")
}

/// Transcodes a fixture whole and byte by byte (the same events either way).
fn run(name: &str) -> (Vec<(String, Value)>, Value, Option<Vec<u8>>) {
    run_for("present.request.json", name)
}

/// [`run`] for the answer to another request.
fn run_for(request: &str, name: &str) -> (Vec<(String, Value)>, Value, Option<Vec<u8>>) {
    let stream = fixture(name);
    let (out, completed) = transcode(&surface_of(request), &[&stream]);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let (split, split_completed) = transcode(&surface_of(request), &bytes);
    assert_eq!(String::from_utf8(split).unwrap(), String::from_utf8(out.clone()).unwrap(), "{name} split byte by byte");
    assert_eq!(split_completed, completed);
    let events = events(&out);
    let response = accumulate(&events);
    (events, response, completed)
}

#[test]
fn a_text_answer_streams_the_full_sequence() {
    let (events, response, completed) = run("text.chunks.txt");
    assert_eq!(
        kinds(&events),
        [
            "created",
            "in_progress",
            "output_item.added",
            "content_part.added",
            "output_text.delta",
            "output_text.delta",
            "output_text.delta",
            "output_text.done",
            "content_part.done",
            "output_item.done",
            "completed",
        ]
    );
    assert_eq!(
        events[2].1["item"],
        json!({"type": "message", "id": "msg_test1_0", "status": "in_progress", "role": "assistant", "content": []})
    );
    assert_eq!(events[3].1["part"], json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []}));
    assert_eq!(events[4].1["logprobs"], json!([]));
    assert_eq!(events[7].1["text"], "Hello, wörld — ok!");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "gpt-5-mini", "the model the client asked for, not the upstream's name");
    assert_eq!(
        response["usage"],
        json!({"input_tokens": 9, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": 4,
               "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 13})
    );
    assert_eq!(serde_json::from_slice::<Value>(&completed.unwrap()).unwrap(), response);

    // The streamed answer is the one `present` states for the same completion.
    let completion: ChatCompletion = serde_json::from_value(json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-5-mini-2025-08-07",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, wörld — ok!", "refusal": null},
                     "logprobs": null, "finish_reason": "stop"}]
    }))
    .unwrap();
    let presented: Value = serde_json::from_slice(&surface().present(&completion, USAGE)).unwrap();
    assert_eq!(presented, response);
}

#[test]
fn reasoning_then_text_streams_the_summary_and_seals_the_blocks() {
    let (events, response, _) = run("reasoning_text.chunks.txt");
    assert_eq!(
        kinds(&events),
        [
            "created",
            "in_progress",
            "output_item.added",
            "reasoning_summary_part.added",
            "reasoning_summary_text.delta",
            "reasoning_summary_text.delta",
            "reasoning_summary_text.done",
            "reasoning_summary_part.done",
            "output_item.done",
            "output_item.added",
            "content_part.added",
            "output_text.delta",
            "output_text.delta",
            "output_text.done",
            "content_part.done",
            "output_item.done",
            "completed",
        ]
    );
    assert_eq!(events[2].1["item"], json!({"type": "reasoning", "id": "rs_test1_0", "summary": []}));
    assert_eq!(events[6].1["text"], "The user wants 6×7.");
    let reasoning = &response["output"][0];
    assert_eq!(reasoning["summary"], json!([{"type": "summary_text", "text": "The user wants 6×7."}]));
    assert_eq!(response["output"][1]["id"], "msg_test1_1");
    assert_eq!(response["output"][1]["content"][0]["text"], "It is 42.");

    // Handed back next turn, the sealed blocks are the provider's blocks again.
    let body = json!({"model": "m", "input": [{"role": "user", "content": "6×7?"}, reasoning, response["output"][1],
        {"role": "user", "content": "Sure?"}]});
    let ids = Ids { response_id: "resp_2".into(), created_at: 0 };
    let chat =
        responses::translate(responses::parse(body.to_string().as_bytes()).unwrap(), None, ids, &Options::default())
            .unwrap()
            .chat;
    let assistant = serde_json::to_value(&chat.messages[1]).unwrap();
    assert_eq!(
        assistant["thinking_blocks"],
        json!([{"type": "thinking", "thinking": "The user wants 6×7.", "signature": "c2lnbmF0dXJl"}])
    );
}

#[test]
fn parallel_tool_calls_stream_one_item_each() {
    let (events, response, _) = run("parallel_tools.chunks.txt");
    assert_eq!(
        kinds(&events),
        [
            "created",
            "in_progress",
            "output_item.added",
            "function_call_arguments.delta",
            "function_call_arguments.delta",
            "function_call_arguments.done",
            "output_item.done",
            "output_item.added",
            "function_call_arguments.delta",
            "function_call_arguments.delta",
            "function_call_arguments.done",
            "output_item.done",
            "completed",
        ]
    );
    assert_eq!(
        events[2].1["item"],
        json!({"type": "function_call", "id": "fc_test1_0", "call_id": "call_a", "name": "get_weather", "arguments": "",
               "status": "in_progress"})
    );
    assert_eq!(events[10].1["name"], "lookup");
    assert_eq!(
        response["output"],
        json!([
            {"type": "function_call", "id": "fc_test1_0", "call_id": "call_a", "name": "get_weather",
             "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call", "id": "fc_test1_1", "call_id": "call_b", "name": "lookup", "namespace": "crm",
             "arguments": "{\"email\":\"a@b.c\"}", "status": "completed"}
        ])
    );
}

#[test]
fn a_cut_or_filtered_answer_ends_incomplete() {
    let (events, response, completed) = run("length.chunks.txt");
    assert_eq!(kinds(&events).last(), Some(&"incomplete"));
    assert_eq!(response["status"], "incomplete");
    assert_eq!(response["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(response["output"][0]["status"], "incomplete");
    assert_eq!(response["output"][0]["content"][0]["text"], "Once upon a time");
    assert!(completed.is_some(), "an incomplete answer is still an answer to keep");

    let (events, response, _) = run("refusal.chunks.txt");
    assert_eq!(
        kinds(&events),
        [
            "created",
            "in_progress",
            "output_item.added",
            "content_part.added",
            "refusal.delta",
            "refusal.delta",
            "refusal.done",
            "content_part.done",
            "output_item.done",
            "incomplete",
        ]
    );
    assert_eq!(response["incomplete_details"], json!({"reason": "content_filter"}));
    assert_eq!(response["output"][0]["content"], json!([{"type": "refusal", "refusal": "I can't help with that."}]));
}

#[test]
fn a_broken_stream_ends_with_response_failed() {
    let stream = fixture("failure.chunks.txt");
    let surface = surface();
    for pieces in [vec![&stream[..]], stream.chunks(1).collect()] {
        let mut feed = ChunkFeed::new(surface.stream());
        let mut out = Vec::new();
        let mut error = None;
        for piece in pieces {
            if let Err(message) = feed.feed(piece, &mut out) {
                error = Some(message);
            }
        }
        assert_eq!(error.as_deref(), Some("The upstream connection broke."));
        feed.finish(USAGE, &mut out);
        assert_eq!(feed.completed(), None, "a failed answer is not kept");
        let events = events(&out);
        assert_eq!(
            kinds(&events),
            ["created", "in_progress", "output_item.added", "content_part.added", "output_text.delta", "failed"]
        );
        let response = &events[5].1["response"];
        assert_eq!(response["status"], "failed");
        assert_eq!(response["error"], json!({"code": "server_error", "message": "The upstream connection broke."}));
        assert_eq!(response["output"], json!([]), "only finished items are stated");
        assert_eq!(response["usage"], Value::Null);
    }

    // Failing before anything came still opens the response first.
    let mut stream = surface.stream();
    let mut out = Vec::new();
    stream.fail("Upstream timed out.", &mut out);
    let events = events(&out);
    assert_eq!(kinds(&events), ["created", "in_progress", "failed"]);
    assert_eq!(events[2].1["response"]["model"], "gpt-5-mini");
}

#[test]
fn an_empty_answer_is_an_empty_message() {
    let mut stream = surface().stream();
    let mut out = Vec::new();
    stream.finish(USAGE, &mut out);
    let events = events(&out);
    assert_eq!(
        kinds(&events),
        [
            "created",
            "in_progress",
            "output_item.added",
            "content_part.added",
            "output_text.done",
            "content_part.done",
            "output_item.done",
            "completed"
        ]
    );
    let response = accumulate(&events);
    assert_eq!(response["output"][0]["content"][0]["text"], "");
    // Nothing more is written once the stream ended.
    let before = out.len();
    stream.fail("late", &mut out);
    stream.finish(USAGE, &mut out);
    assert_eq!(out.len(), before);
}

#[test]
fn every_two_piece_split_gives_the_same_events() {
    let stream = fixture("reasoning_text.chunks.txt");
    let surface = surface();
    let (whole, _) = transcode(&surface, &[&stream]);
    for cut in 0..=stream.len() {
        let (split, _) = transcode(&surface, &[&stream[..cut], &stream[cut..]]);
        assert_eq!(split, whole, "cut at {cut}");
    }
}

/// A patch as a model writes it: quotes, backslashes, a tab escape, accents and an emoji.
/// In `custom_tool.chunks.txt` its JSON encoding is cut inside `\u00e9`, between the
/// halves of the emoji's surrogate pair and inside `\\`.
const PATCH: &str = "*** Begin Patch\n*** Update File: src/main.rs\n@@ fn main() {\n-    println!(\"Hello\");\n+    println!(\"Héllo, \\\"wörld\\\" 😀\\tok\");\n*** End Patch\n";

#[test]
fn a_custom_tool_call_streams_its_raw_input() {
    let (events, response, completed) = run_for("custom_tools.request.json", "custom_tool.chunks.txt");
    assert_eq!(
        kinds(&events),
        [
            "created",
            "in_progress",
            "output_item.added",
            "custom_tool_call_input.delta",
            "custom_tool_call_input.done",
            "output_item.done",
            "output_item.added",
            "function_call_arguments.delta",
            "function_call_arguments.delta",
            "function_call_arguments.done",
            "output_item.done",
            "completed",
        ]
    );
    assert_eq!(
        events[2].1,
        json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0, "item": {
            "type": "custom_tool_call", "id": "ctc_test1_0", "call_id": "call_patch2", "name": "apply_patch",
            "input": "", "status": "in_progress"
        }})
    );
    // The JSON arguments, whatever pieces they came in, are stated as the raw input.
    assert_eq!(
        events[3].1,
        json!({"type": "response.custom_tool_call_input.delta", "sequence_number": 3, "item_id": "ctc_test1_0",
               "output_index": 0, "delta": PATCH})
    );
    assert_eq!(
        events[4].1,
        json!({"type": "response.custom_tool_call_input.done", "sequence_number": 4, "item_id": "ctc_test1_0",
               "output_index": 0, "input": PATCH})
    );
    assert_eq!(
        response["output"],
        json!([
            {"type": "custom_tool_call", "id": "ctc_test1_0", "call_id": "call_patch2", "name": "apply_patch",
             "input": PATCH, "status": "completed"},
            {"type": "function_call", "id": "fc_test1_1", "call_id": "call_run", "name": "shell",
             "arguments": "{\"command\":[\"cargo\",\"run\"]}", "status": "completed"}
        ])
    );
    assert_eq!(serde_json::from_slice::<Value>(&completed.unwrap()).unwrap(), response);

    // The streamed answer is the one `present` states for the same completion.
    let completion: ChatCompletion = serde_json::from_value(json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-5-codex",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
            {"id": "call_patch2", "type": "function",
             "function": {"name": "apply_patch", "arguments": json!({"input": PATCH}).to_string()}},
            {"id": "call_run", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":[\"cargo\",\"run\"]}"}}
        ]}, "logprobs": null, "finish_reason": "tool_calls"}]
    }))
    .unwrap();
    let presented: Value =
        serde_json::from_slice(&surface_of("custom_tools.request.json").present(&completion, USAGE)).unwrap();
    assert_eq!(presented, response);
}

#[test]
fn a_custom_call_cut_short_states_its_arguments_as_they_came() {
    let chunk = |delta: Value, finish: Value| {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        format!("data: {chunk}\n\n")
    };
    let call = |arguments: &str| {
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
        "function": {"name": "apply_patch", "arguments": arguments}}]})
    };
    let stream =
        chunk(call("{\"input\":\"*** Begin Patch\\n*** Add"), Value::Null) + &chunk(json!({}), json!("length"));
    let (out, _) = transcode(&surface_of("custom_tools.request.json"), &[stream.as_bytes()]);
    let events = events(&out);
    let response = accumulate(&events);
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["output"],
        json!([{"type": "custom_tool_call", "id": "ctc_test1_0", "call_id": "call_1", "name": "apply_patch",
                "input": "{\"input\":\"*** Begin Patch\\n*** Add", "status": "incomplete"}])
    );
}
