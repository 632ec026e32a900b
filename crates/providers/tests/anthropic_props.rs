//! Properties of the Anthropic adapter on random tool calls: a call survives the trip out
//! to Anthropic and back intact, and streamed argument fragments, however cut, always add
//! up to the arguments sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{Value, json};
use tokenrouter_core::chat::{ChatCompletion, ChatRequest};
use tokenrouter_providers::adapter::{Adapter, ResponseMeta, Target};
use tokenrouter_providers::anthropic::ANTHROPIC;
use tokenrouter_providers::anthropic::wire::{ContentBlock, Message, MessageContent, MessagesRequest, Usage};

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            1 => prop::sample::select(vec!['"', '\\', '\n', '{', '}', ',', ':', ' ']),
        ],
        0..10,
    )
    .prop_map(String::from_iter)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(text(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An arguments object as JSON text, its keys in no particular order, compact or spaced
/// out, with the text it should come back as (compact, same order).
fn arguments() -> impl Strategy<Value = (String, String)> {
    (prop::collection::vec((text(), json_value()), 0..6), any::<bool>()).prop_map(|(entries, spaced)| {
        let mut seen = std::collections::HashSet::new();
        let members: Vec<String> = entries
            .into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .map(|(k, v)| format!("{}:{}", json!(k), v))
            .collect();
        let compact = format!("{{{}}}", members.join(","));
        let sent = if spaced {
            let members: Vec<String> = members.iter().map(|m| format!("\n  {m}")).collect();
            format!("{{{}\n}}", members.join(" ,"))
        } else {
            compact.clone()
        };
        (sent, compact)
    })
}

fn meta() -> ResponseMeta {
    ResponseMeta {
        id: "chatcmpl-prop".into(),
        model: "claude".into(),
        created: 1,
        include_usage: false,
        one_tool_call: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_tool_call_survives_the_round_trip(
        id in "[a-zA-Z0-9_-]{1,40}",
        name in "[a-zA-Z0-9_-]{1,64}",
        (sent, compact) in arguments(),
    ) {
        let request: ChatRequest = serde_json::from_value(json!({
            "model": "claude",
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "tool_calls": [
                    {"id": id, "type": "function", "function": {"name": name, "arguments": sent}}
                ]},
                {"role": "tool", "tool_call_id": id, "content": "done"}
            ]
        }))
        .unwrap();
        let target = Target { upstream_model: "claude-x", max_output_tokens: 100 };
        let encoded = ANTHROPIC.encode_request(&request, &target, false).unwrap();

        // What Anthropic receives, read as the mock reads it.
        let upstream: MessagesRequest = serde_json::from_slice(&encoded.body).unwrap();
        let MessageContent::Blocks(blocks) = &upstream.messages[1].content else {
            panic!("the assistant turn is not blocks");
        };
        let [ContentBlock::ToolUse { id: sent_id, name: sent_name, input }] = blocks.as_slice() else {
            panic!("not one tool_use block: {blocks:?}");
        };
        prop_assert_eq!(sent_id, &id);
        prop_assert_eq!(sent_name, &name);
        let sent_value: Value = serde_json::from_str(&sent).unwrap();
        prop_assert_eq!(serde_json::from_str::<Value>(input.get()).unwrap(), sent_value.clone());

        // The mock echoes the call back as its answer.
        let answer = Message {
            id: "msg_1".into(),
            kind: "message".into(),
            role: "assistant".into(),
            model: "claude-x".into(),
            content: vec![blocks[0].clone()],
            stop_reason: Some("tool_use".into()),
            stop_sequence: None,
            usage: Usage { input_tokens: Some(5), output_tokens: Some(7), ..Usage::default() },
        };
        let decoded = ANTHROPIC
            .decode_response(&serde_json::to_vec(&answer).unwrap(), &meta())
            .unwrap();
        let completion: ChatCompletion = serde_json::from_slice(&decoded.body).unwrap();
        let calls = completion.choices[0].message.tool_calls.clone().unwrap();
        prop_assert_eq!(calls.len(), 1);
        prop_assert_eq!(&calls[0].id, &id);
        prop_assert_eq!(&calls[0].function.name, &name);
        prop_assert_eq!(&calls[0].function.arguments, &compact);
        prop_assert_eq!(serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(), sent_value);
        prop_assert_eq!(completion.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn streamed_argument_fragments_add_up_to_the_arguments(
        (sent, _) in arguments(),
        fragment_cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        byte_cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        text_first in any::<bool>(),
    ) {
        // Fragments cut at character boundaries (partial_json is a JSON string).
        let boundaries: Vec<usize> = sent.char_indices().map(|(i, _)| i).skip(1).collect();
        let mut cuts: Vec<usize> = fragment_cuts
            .iter()
            .filter(|_| !boundaries.is_empty())
            .map(|i| boundaries[i.index(boundaries.len())])
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut fragments = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([sent.len()]) {
            fragments.push(&sent[from..cut]);
            from = cut;
        }

        let event = |data: Value| format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap());
        let mut stream = event(json!({"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude",
            "stop_reason": null, "usage": {"input_tokens": 3, "output_tokens": 1}}}));
        let tool_index = usize::from(text_first);
        if text_first {
            stream += &event(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
            stream += &event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Calling."}}));
            stream += &event(json!({"type": "content_block_stop", "index": 0}));
        }
        stream += &event(json!({"type": "content_block_start", "index": tool_index, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}));
        stream += &event(json!({"type": "content_block_delta", "index": tool_index, "delta": {"type": "input_json_delta", "partial_json": ""}}));
        for fragment in &fragments {
            stream += &event(json!({"type": "content_block_delta", "index": tool_index, "delta": {"type": "input_json_delta", "partial_json": fragment}}));
        }
        stream += &event(json!({"type": "content_block_stop", "index": tool_index}));
        stream += &event(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}));
        stream += &event(json!({"type": "message_stop"}));

        // Fed in random byte pieces.
        let bytes = stream.as_bytes();
        let mut at: Vec<usize> = byte_cuts.iter().map(|i| i.index(bytes.len())).collect();
        at.sort_unstable();
        let mut decoder = ANTHROPIC.stream_decoder(meta());
        let mut out = Vec::new();
        let mut from = 0;
        for cut in at.into_iter().chain([bytes.len()]) {
            decoder.feed(&bytes[from..cut], &mut out).unwrap();
            from = cut;
        }
        decoder.finish(&mut out).unwrap();

        let out = String::from_utf8(out).unwrap();
        let mut arguments = String::new();
        for data in out.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
            if data == "[DONE]" {
                continue;
            }
            let chunk: Value = serde_json::from_str(data).unwrap();
            for call in chunk["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
                prop_assert_eq!(&call["index"], &json!(0));
                arguments += call["function"]["arguments"].as_str().unwrap_or("");
            }
        }
        let expected = if sent == "{}" { "{}".to_owned() } else { sent.clone() };
        prop_assert_eq!(&arguments, &expected);
        prop_assert_eq!(
            serde_json::from_str::<Value>(&arguments).unwrap(),
            serde_json::from_str::<Value>(&sent).unwrap()
        );
        prop_assert!(out.ends_with("data: [DONE]\n\n"));
    }
}
