//! Gemini adapter, properties: any tool call survives the round trip OpenAI request →
//! Gemini request → Gemini answer echoing it → OpenAI answer (plain and streamed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokenrouter_core::chat::ChatRequest;
use tokenrouter_providers::adapter::{Adapter, ResponseMeta, Target};
use tokenrouter_providers::gemini::GEMINI;

fn meta() -> ResponseMeta {
    ResponseMeta {
        id: "chatcmpl-prop".to_owned(),
        model: "gemini-2.5-flash".to_owned(),
        created: 1,
        include_usage: true,
        one_tool_call: false,
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1.0e9f64..1.0e9).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arguments() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_ -]{0,10}", json_value(), 0..5)
        .prop_map(|m| m.into_iter().collect())
}

#[derive(serde::Deserialize)]
struct Body {
    contents: Vec<Turn>,
}

#[derive(serde::Deserialize)]
struct Turn {
    role: String,
    parts: Vec<Part>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    function_call: Option<Call>,
}

/// The call as encoded, its arguments as the exact text sent.
#[derive(serde::Deserialize)]
struct Call {
    name: String,
    args: Box<RawValue>,
}

/// The Gemini request for an assistant turn that called `name` with `arguments` (text).
fn encoded_call(name: &str, arguments: &str) -> Call {
    let request: ChatRequest = serde_json::from_value(json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "user", "content": "call it"},
            {"role": "assistant", "tool_calls": [{
                "id": "call_client_1",
                "type": "function",
                "function": {"name": name, "arguments": arguments}
            }]}
        ]
    }))
    .unwrap();
    let target = Target { upstream_model: "gemini-2.5-flash", max_output_tokens: 1024 };
    let encoded = GEMINI.encode_request(&request, &target, false).unwrap();
    let mut body: Body = serde_json::from_slice(&encoded.body).unwrap();
    let turn = body.contents.remove(1);
    assert_eq!(turn.role, "model");
    turn.parts.into_iter().next().unwrap().function_call.unwrap()
}

/// A Gemini answer (or stream event) echoing the call, built as text so that the
/// arguments stay byte for byte what was sent.
fn echo(call: &Call, id: Option<&str>) -> String {
    let id = id.map_or(String::new(), |id| format!(r#""id":{},"#, json!(id)));
    format!(
        r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"functionCall":{{{id}"name":{},"args":{}}}}}]}},"finishReason":"STOP"}}]}}"#,
        json!(call.name),
        call.args.get()
    )
}

#[test]
fn numbers_beyond_f64_and_i64_pass_unchanged() {
    let arguments = r#"{"id":123456789012345678901234567890,"x":0.1000000000000000055511151231257827,"s":"a  b"}"#;
    let call = encoded_call("lookup", arguments);
    assert_eq!(call.args.get(), arguments);
    // Gemini pretty-prints its answers: the arguments come back compact all the same.
    let pretty = echo(&call, None).replace(',', ",\n  ");
    let decoded = GEMINI.decode_response(pretty.as_bytes(), &meta()).unwrap();
    let completion: Value = serde_json::from_slice(&decoded.body).unwrap();
    assert_eq!(completion["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], arguments);
}

proptest! {
    #[test]
    fn a_tool_call_survives_the_round_trip(
        name in "[a-zA-Z_][a-zA-Z0-9_.-]{0,40}",
        args in arguments(),
        part_id in proptest::option::of("[a-z0-9-]{1,12}"),
    ) {
        let arguments = Value::Object(args).to_string();
        let call = encoded_call(&name, &arguments);
        prop_assert_eq!(&call.name, &name);
        prop_assert_eq!(call.args.get(), arguments.as_str());
        let answer = echo(&call, part_id.as_deref());
        let decoded = GEMINI.decode_response(answer.as_bytes(), &meta()).unwrap();
        let completion: Value = serde_json::from_slice(&decoded.body).unwrap();
        let decoded_call = &completion["choices"][0]["message"]["tool_calls"][0];
        prop_assert_eq!(&decoded_call["function"]["name"], &Value::String(name.clone()));
        prop_assert_eq!(&decoded_call["function"]["arguments"], &Value::String(arguments));
        let expected_id = part_id.unwrap_or_else(|| "call_0_0".to_owned());
        prop_assert_eq!(&decoded_call["id"], &Value::String(expected_id));
        prop_assert_eq!(&completion["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn streamed_arguments_are_the_whole_valid_json(
        name in "[a-zA-Z_][a-zA-Z0-9_.-]{0,40}",
        args in arguments(),
        cut in any::<prop::sample::Index>(),
    ) {
        let arguments = Value::Object(args).to_string();
        let call = encoded_call(&name, &arguments);
        let input = format!("data: {}\r\n\r\n", echo(&call, None));
        let cut = cut.index(input.len() + 1);
        let mut decoder = GEMINI.stream_decoder(meta());
        let mut out = Vec::new();
        decoder.feed(&input.as_bytes()[..cut], &mut out).unwrap();
        decoder.feed(&input.as_bytes()[cut..], &mut out).unwrap();
        decoder.finish(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut streamed = String::new();
        let mut names = Vec::new();
        for data in text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
            if data == "[DONE]" {
                continue;
            }
            let chunk: Value = serde_json::from_str(data).unwrap();
            for choice in chunk["choices"].as_array().unwrap() {
                for call in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
                    prop_assert_eq!(&call["index"], 0);
                    prop_assert_eq!(&call["id"], "call_0_0");
                    prop_assert_eq!(&call["type"], "function");
                    names.push(call["function"]["name"].clone());
                    streamed.push_str(call["function"]["arguments"].as_str().unwrap());
                }
            }
        }
        prop_assert_eq!(names, vec![Value::String(name)]);
        prop_assert!(serde_json::from_str::<Value>(&streamed).unwrap().is_object());
        prop_assert_eq!(streamed, arguments);
    }
}
