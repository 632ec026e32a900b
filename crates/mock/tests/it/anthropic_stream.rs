//! The Anthropic Messages API, streamed: the full event sequence, text, tool input JSON
//! fragments, thinking with its signature, and stats.

use serde_json::{Value, json};
use tokenrouter_mock::{MockConfig, MockServer};

use crate::anthropic::{claude, message, tools, with};
use crate::client::{Events, mock, post_to, read_events};

async fn stream(server: &MockServer, body: &Value) -> Events {
    let body = with(body.clone(), json!({"stream": true}));
    read_events(post_to(server, "/v1/messages", &body).await).await
}

/// The message the events describe, accumulated as an SDK does, after checking that
/// each event's `type` is its name and that blocks open, grow and close in order.
fn accumulate(events: &Events) -> Value {
    let mut message = Value::Null;
    let mut partial_json = String::new();
    let mut open: Option<usize> = None;
    for event in &events.events {
        let data = &event.data;
        assert_eq!(event.name.as_deref(), data["type"].as_str(), "{data}");
        match data["type"].as_str().unwrap() {
            "message_start" => message = data["message"].clone(),
            "content_block_start" => {
                assert_eq!(open, None);
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(index, message["content"].as_array().unwrap().len());
                message["content"].as_array_mut().unwrap().push(data["content_block"].clone());
                open = Some(index);
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index));
                let block = &mut message["content"][index];
                let delta = &data["delta"];
                let (field, piece) = match delta["type"].as_str().unwrap() {
                    "text_delta" => ("text", &delta["text"]),
                    "thinking_delta" => ("thinking", &delta["thinking"]),
                    "signature_delta" => ("signature", &delta["signature"]),
                    "input_json_delta" => {
                        partial_json.push_str(delta["partial_json"].as_str().unwrap());
                        continue;
                    }
                    other => panic!("unknown delta {other}"),
                };
                let text = format!("{}{}", block[field].as_str().unwrap(), piece.as_str().unwrap());
                block[field] = Value::from(text);
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open.take(), Some(index));
                if !partial_json.is_empty() {
                    message["content"][index]["input"] = serde_json::from_str(&partial_json).unwrap();
                    partial_json.clear();
                }
            }
            "message_delta" => {
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                message["usage"]["output_tokens"] = data["usage"]["output_tokens"].clone();
            }
            "ping" | "message_stop" => {}
            other => panic!("unknown event {other}"),
        }
    }
    message
}

/// `message` without its ids, which differ between two requests.
fn without_ids(mut message: Value) -> Value {
    message["id"] = Value::Null;
    for block in message["content"].as_array_mut().unwrap() {
        for field in ["id", "signature"] {
            if block.get(field).is_some() {
                block[field] = Value::Null;
            }
        }
    }
    message
}

#[tokio::test]
async fn stream_sends_the_full_event_sequence() {
    let server = mock(MockConfig { reply_tokens: 3, cached_tokens: 1, ..MockConfig::default() }).await;
    let events = stream(&server, &claude("Tell me something")).await;
    assert!(events.error.is_none() && events.rest.is_empty());
    assert_eq!(
        events.names(),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events.events[0].data["message"];
    assert_eq!(start["id"], "msg_mock_1");
    assert_eq!(start["type"], "message");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["model"], "claude-mock");
    assert_eq!(start["content"], json!([]));
    assert!(start["stop_reason"].is_null() && start["stop_sequence"].is_null());
    assert_eq!(
        start["usage"],
        json!({"input_tokens": 3, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1, "output_tokens": 1})
    );
    assert_eq!(
        events.events[1].data,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(events.events[2].data, json!({"type": "ping"}));
    let words: Vec<&str> = events.events[3..6].iter().map(|e| e.data["delta"]["text"].as_str().unwrap()).collect();
    assert!(words[0].starts_with("Tell") && words[1].starts_with(' '));
    assert_eq!(
        events.events[7].data,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": 3}})
    );
    assert_eq!(events.events[8].data, json!({"type": "message_stop"}));

    // The stream says what the whole answer says.
    let streamed = accumulate(&events);
    let whole = message(&server, &claude("Tell me something")).await;
    assert_eq!(without_ids(streamed), without_ids(whole));

    let stats = server.stats();
    assert_eq!(stats.request_count(), 2);
    assert_eq!(stats.streams_completed(), 1);
    assert_eq!(stats.tokens_generated(), 6);
}

#[tokio::test]
async fn streamed_tool_input_arrives_in_fragments() {
    let server = mock(MockConfig::default()).await;
    let single = with(claude("Weather in Paris?"), json!({"tools": tools()}));
    let parallel = with(single.clone(), json!({"tool_choice": {"type": "any"}}));
    for (body, calls) in [(single, 1), (parallel, 2)] {
        let events = stream(&server, &body).await;
        let starts: Vec<&Value> = events
            .events
            .iter()
            .filter(|e| e.data["type"] == "content_block_start")
            .map(|e| &e.data["content_block"])
            .collect();
        assert_eq!(starts.len(), calls);
        for start in &starts {
            assert_eq!(start["type"], "tool_use");
            assert!(start["id"].as_str().unwrap().starts_with("toolu_mock_"));
            assert_eq!(start["input"], json!({}));
        }
        for index in 0..calls {
            let fragments = events
                .events
                .iter()
                .filter(|e| e.data["index"] == index && e.data["delta"]["type"] == "input_json_delta")
                .count();
            assert!(fragments >= 2, "call {index}: {fragments} fragments");
        }
        let streamed = accumulate(&events);
        assert_eq!(streamed["stop_reason"], "tool_use");
        let whole = message(&server, &body).await;
        assert_eq!(without_ids(streamed), without_ids(whole));
    }
}

#[tokio::test]
async fn streamed_thinking_has_deltas_then_a_signature() {
    let server = mock(MockConfig { reply_tokens: 2, ..MockConfig::default() }).await;
    let body =
        with(claude("Weather?"), json!({"thinking": {"type": "enabled", "budget_tokens": 1024}, "tools": tools()}));
    let events = stream(&server, &body).await;
    let deltas: Vec<&str> = events
        .events
        .iter()
        .filter(|e| e.data["index"] == 0)
        .filter_map(|e| e.data["delta"]["type"].as_str())
        .collect();
    assert_eq!(deltas.len(), 6);
    assert!(deltas[..5].iter().all(|d| *d == "thinking_delta"));
    assert_eq!(deltas[5], "signature_delta");
    assert_eq!(events.events[1].data["content_block"], json!({"type": "thinking", "thinking": "", "signature": ""}));
    let streamed = accumulate(&events);
    assert_eq!(streamed["content"][0]["thinking"], "Let me think about this.");
    assert_eq!(streamed["content"][0]["signature"], "sig_mock_1");
    assert_eq!(streamed["content"][1]["type"], "tool_use");
    let whole = message(&server, &body).await;
    assert_eq!(without_ids(streamed), without_ids(whole.clone()));
    // 5 thinking words and the input's fragments, handed out once per request.
    let output = whole["usage"]["output_tokens"].as_u64().unwrap();
    assert!(output > 5);
    assert_eq!(server.stats().tokens_generated(), 2 * output);
}
