//! Tool calls: single and parallel, streamed and not, tool choice, and answering a tool result.

use serde_json::{Value, json};
use tokenrouter_mock::MockConfig;

use crate::client::{Sse, ask, complete, mock, post, read_sse, with};

fn tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer"}},
                "required": ["city", "unit"]}
        }},
        {"type": "function", "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"utc": {"type": "boolean"}}, "required": ["utc"]}
        }}
    ])
}

fn weather() -> Value {
    with(ask("What's the weather in Paris?"), json!({"tools": tools()}))
}

/// Each streamed call as (index, id, name, concatenated arguments, number of fragments).
fn streamed_calls(sse: &Sse) -> Vec<(u64, String, String, String, usize)> {
    let mut calls: Vec<(u64, String, String, String, usize)> = Vec::new();
    for event in &sse.events {
        let Some(deltas) = event.pointer("/choices/0/delta/tool_calls").and_then(Value::as_array) else {
            continue;
        };
        assert_eq!(deltas.len(), 1);
        let delta = &deltas[0];
        let index = delta["index"].as_u64().unwrap();
        if let Some(id) = delta["id"].as_str() {
            assert_eq!(delta["type"], "function");
            assert_eq!(delta["function"]["arguments"], "");
            assert_eq!(index as usize, calls.len());
            calls.push((
                index,
                id.to_owned(),
                delta["function"]["name"].as_str().unwrap().to_owned(),
                String::new(),
                0,
            ));
        } else {
            assert!(delta.get("type").is_none() && delta["function"].get("name").is_none());
            let call = calls.iter_mut().find(|c| c.0 == index).unwrap();
            call.3.push_str(delta["function"]["arguments"].as_str().unwrap());
            call.4 += 1;
        }
    }
    calls
}

#[tokio::test]
async fn calls_the_first_tool_with_required_arguments() {
    let server = mock(MockConfig::default()).await;
    let c = complete(&server, &weather()).await;
    let choice = &c["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_mock_"));
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: Value = serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "mock", "unit": "celsius"}));
    assert!(c["usage"]["completion_tokens"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn streamed_tool_call_matches_the_whole_one() {
    let server = mock(MockConfig::default()).await;
    let whole = complete(&server, &weather()).await;
    let sse = read_sse(post(&server, &with(weather(), json!({"stream": true}))).await).await;
    assert!(sse.done);

    let first = &sse.events[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert!(first["content"].is_null() && first.get("content").is_some());
    let calls = streamed_calls(&sse);
    assert_eq!(calls.len(), 1);
    let (_, id, name, arguments, fragments) = &calls[0];
    assert!(id.starts_with("call_mock_"));
    assert_eq!(name, "get_weather");
    assert!(*fragments >= 2);
    let expected = whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap();
    assert_eq!(arguments, expected);
    let finish = sse.events.last().unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
}

#[tokio::test]
async fn required_choice_makes_parallel_calls() {
    let server = mock(MockConfig::default()).await;
    let body = with(weather(), json!({"tool_choice": "required"}));
    let c = complete(&server, &body).await;
    let calls = c["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    let names: Vec<&str> = calls.iter().map(|c| c["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["get_weather", "get_time"]);
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(calls[1]["function"]["arguments"], r#"{"utc":true}"#);

    let sse = read_sse(post(&server, &with(body.clone(), json!({"stream": true}))).await).await;
    let streamed = streamed_calls(&sse);
    assert_eq!(streamed.len(), 2);
    for (i, (index, _, name, arguments, _)) in streamed.iter().enumerate() {
        assert_eq!(*index, i as u64);
        assert_eq!(name, names[i]);
        assert_eq!(arguments, calls[i]["function"]["arguments"].as_str().unwrap());
    }

    let single = complete(&server, &with(body, json!({"parallel_tool_calls": false}))).await;
    assert_eq!(single["choices"][0]["message"]["tool_calls"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn tool_choice_picks_or_suppresses_tools() {
    let server = mock(MockConfig::default()).await;
    let named = json!({"tool_choice": {"type": "function", "function": {"name": "get_time"}}});
    let c = complete(&server, &with(weather(), named)).await;
    let calls = c["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["function"]["name"], "get_time");

    let c = complete(&server, &with(weather(), json!({"tool_choice": "none"}))).await;
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert!(c["choices"][0]["message"]["content"].is_string());
    assert!(c["choices"][0]["message"].get("tool_calls").is_none());
}

#[tokio::test]
async fn answers_a_tool_result_with_text_about_it() {
    let server = mock(MockConfig::default()).await;
    let body = json!({
        "model": "mock-gpt",
        "tools": tools(),
        "messages": [
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_mock_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]},
            {"role": "tool", "tool_call_id": "call_mock_1", "content": "Sunny, 22 degrees"}
        ]
    });
    let c = complete(&server, &body).await;
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    let text = c["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("Sunny"), "{text}");
    // 5 + 1, 0 + 1, 3 + 1
    assert_eq!(c["usage"]["prompt_tokens"], 11);
}
