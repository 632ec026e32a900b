//! The `calls` knob, the most tool calls in one turn, in chat, Anthropic and Gemini (the
//! Responses API's are in `responses.rs`): `calls=1` calls exactly the first function even
//! when a forced choice allows parallel calls, a larger value calls more, 0 none.

use serde_json::{Value, json};
use tokenrouter_mock::MockConfig;

use crate::client::{complete, mock, post_to, with};

/// Ten functions, as an agent such as Codex CLI sends them.
fn chat_tools() -> Value {
    let tools: Vec<Value> = (0..10)
        .map(|i| {
            json!({"type": "function", "function": {"name": format!("tool_{i}"),
                "parameters": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}})
        })
        .collect();
    Value::Array(tools)
}

fn chat(fields: Value) -> Value {
    let body = json!({"model": "mock-gpt", "messages": [{"role": "user", "content": "Go"}], "tools": chat_tools(),
        "parallel_tool_calls": true});
    with(body, fields)
}

fn chat_calls(completion: &Value) -> Vec<&str> {
    let calls = completion["choices"][0]["message"]["tool_calls"].as_array();
    calls.into_iter().flatten().map(|c| c["function"]["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn chat_calls_at_most_calls_functions() {
    let server = mock(MockConfig::default()).await;
    assert_eq!(chat_calls(&complete(&server, &chat(json!({}))).await), ["tool_0"]);
    let required = json!({"tool_choice": "required"});
    assert_eq!(chat_calls(&complete(&server, &chat(required.clone())).await), ["tool_0", "tool_1"]);

    let one = with(chat(required.clone()), json!({"model": "mock-gpt@calls=1"}));
    let c = complete(&server, &one).await;
    assert_eq!(chat_calls(&c), ["tool_0"]);
    assert_eq!(c["model"], "mock-gpt");
    let three = with(chat(required.clone()), json!({"mock": {"calls": 3}}));
    assert_eq!(chat_calls(&complete(&server, &three).await), ["tool_0", "tool_1", "tool_2"]);

    // 0: the model answers in text even when a call is forced.
    let zero = complete(&server, &with(chat(required), json!({"mock": {"calls": 0}}))).await;
    assert!(chat_calls(&zero).is_empty());
    assert_eq!(zero["choices"][0]["finish_reason"], "stop");

    // The server-wide setting applies too.
    let server = mock(MockConfig { calls: 1, ..MockConfig::default() }).await;
    assert_eq!(chat_calls(&complete(&server, &chat(json!({"tool_choice": "required"}))).await), ["tool_0"]);
}

#[tokio::test]
async fn anthropic_and_gemini_follow_calls() {
    let server = mock(MockConfig::default()).await;
    let ask = crate::anthropic::with(
        crate::anthropic::claude("Weather?"),
        json!({"tools": crate::anthropic::tools(), "tool_choice": {"type": "any"}}),
    );
    let m = crate::anthropic::message(&server, &ask).await;
    assert_eq!(m["content"].as_array().unwrap().len(), 2);
    let one = crate::anthropic::with(ask, json!({"model": "claude-mock@calls=1"}));
    let m = crate::anthropic::message(&server, &one).await;
    let content = m["content"].as_array().unwrap();
    assert_eq!(content.len(), 1);
    assert_eq!(content[0]["name"], "get_weather");

    let body = crate::gemini::with(
        crate::gemini::gemini("Weather?"),
        json!({"tools": crate::gemini::functions(), "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}),
    );
    let response = post_to(&server, &crate::gemini::generate("gemini-mock@calls=1"), &body).await;
    assert_eq!(response.status(), 200);
    let r: Value = response.json().await.unwrap();
    let parts = r["candidates"][0]["content"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0]["functionCall"]["name"], "get_weather");
}
