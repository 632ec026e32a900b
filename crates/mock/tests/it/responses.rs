//! The Responses API, whole answers: the `response` object, usage and echoed settings,
//! reasoning items, function calls (Codex-style tool lists, `calls`), tool outputs,
//! `max_output_tokens`, request checks.

use serde_json::{Value, json};
use tokenrouter_mock::{MockConfig, MockServer, count_tokens};

use crate::client::{mock, post_to, with};

pub const PATH: &str = "/v1/responses";
pub const THINKING: &str = "Let me think about this.";

pub fn ask(input: Value) -> Value {
    json!({"model": "gpt-5-codex", "input": input})
}

/// Tools as Codex CLI sends them: hosted and namespace tools among the functions.
pub fn codex_tools() -> Value {
    json!([
        {"type": "web_search"},
        {"type": "namespace", "name": "mcp__docs", "description": "Docs server",
         "tools": [{"type": "function", "name": "search", "parameters": {"type": "object", "properties": {}}}]},
        {"type": "function", "name": "shell", "description": "Runs a command", "strict": false,
         "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}},
            "workdir": {"type": "string"}}, "required": ["command"]}},
        {"type": "custom", "name": "apply_patch", "description": "Applies a patch",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
        {"type": "function", "name": "update_plan", "strict": false,
         "parameters": {"type": "object", "properties": {"plan": {"type": "array"}}, "required": ["plan"]}},
        {"type": "function", "name": "view_image", "strict": false,
         "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
    ])
}

pub async fn respond(server: &MockServer, body: &Value) -> Value {
    let response = post_to(server, PATH, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// The names of the function calls in `output`.
fn called(response: &Value) -> Vec<&str> {
    let output = response["output"].as_array().unwrap();
    output.iter().filter(|i| i["type"] == "function_call").map(|i| i["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn answers_with_a_message_and_echoes_the_request() {
    let server = mock(MockConfig { cached_tokens: 2, ..MockConfig::default() }).await;
    let body = with(ask(json!("Tell me a story")), json!({"instructions": "Be brief.", "temperature": 0.5}));
    let r = respond(&server, &body).await;
    assert!(r["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(r["object"], "response");
    assert!(r["created_at"].is_i64());
    assert_eq!(r["status"], "completed");
    assert!(r["error"].is_null() && r["incomplete_details"].is_null());
    assert_eq!(r["model"], "gpt-5-codex");
    let output = r["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    let message = &output[0];
    assert_eq!(
        (&message["type"], &message["role"], &message["status"]),
        (&json!("message"), &json!("assistant"), &json!("completed"))
    );
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    let part = &message["content"][0];
    assert_eq!(part["type"], "output_text");
    assert_eq!(part["annotations"], json!([]));
    let text = part["text"].as_str().unwrap();
    assert!(text.starts_with("Tell"));
    assert_eq!(count_tokens(text), 16);
    // "Be brief." 2 + 1, "Tell me a story" 4 + 1.
    assert_eq!(
        r["usage"],
        json!({"input_tokens": 8, "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0}, "output_tokens": 16,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 24})
    );
    assert_eq!(r["instructions"], "Be brief.");
    assert_eq!(r["temperature"], 0.5);
    assert_eq!(r["tool_choice"], "auto");
    assert_eq!(r["tools"], json!([]));
    assert_eq!(r["parallel_tool_calls"], true);
    assert_eq!(r["reasoning"], json!({"effort": null, "summary": null}));
    assert!(r["max_output_tokens"].is_null());
    assert_eq!(server.stats().tokens_generated(), 16);
    assert_eq!(server.stats().last_request().unwrap().path, PATH);
}

#[tokio::test]
async fn reasoning_effort_adds_a_reasoning_item() {
    let server = mock(MockConfig { reply_tokens: 4, ..MockConfig::default() }).await;
    let body = with(
        ask(json!("hi")),
        json!({"reasoning": {"effort": "medium", "summary": "auto"}, "include": ["reasoning.encrypted_content"]}),
    );
    let r = respond(&server, &body).await;
    let output = r["output"].as_array().unwrap();
    assert_eq!(output.len(), 2);
    assert_eq!(output[0]["type"], "reasoning");
    assert!(output[0]["id"].as_str().unwrap().starts_with("rs_"));
    assert_eq!(output[0]["summary"], json!([{"type": "summary_text", "text": THINKING}]));
    assert!(output[0]["encrypted_content"].is_string());
    assert_eq!(output[1]["type"], "message");
    assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 5);
    assert_eq!(r["usage"]["output_tokens"], 9);
    assert_eq!(r["reasoning"], json!({"effort": "medium", "summary": "auto"}));

    for effort in ["minimal", "none"] {
        let r = respond(&server, &with(ask(json!("hi")), json!({"reasoning": {"effort": effort}}))).await;
        assert_eq!(r["output"].as_array().unwrap().len(), 1, "{effort}");
        assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 0);
    }
    let r = respond(&server, &with(ask(json!("hi")), json!({"reasoning": {"effort": "high"}}))).await;
    assert!(r["output"][0].get("encrypted_content").is_none(), "only when included");
}

#[tokio::test]
async fn function_tools_are_called_and_others_skipped() {
    let server = mock(MockConfig::default()).await;
    let body = with(ask(json!("List the files")), json!({"tools": codex_tools(), "parallel_tool_calls": true}));
    let r = respond(&server, &body).await;
    assert_eq!(called(&r), ["shell"]);
    let call = &r["output"][0];
    assert_eq!(call["status"], "completed");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    assert!(call["call_id"].as_str().unwrap().starts_with("call_mock_"));
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"command": []}));
    assert!(r["usage"]["output_tokens"].as_u64().unwrap() >= 2);
    assert_eq!(r["tools"], codex_tools());

    // Forced: up to `calls` (2 by default) functions, skipping non-function tools.
    let forced = with(body.clone(), json!({"tool_choice": "required"}));
    assert_eq!(called(&respond(&server, &forced).await), ["shell", "update_plan"]);
    let one = with(forced.clone(), json!({"model": "gpt-5-codex@calls=1"}));
    assert_eq!(called(&respond(&server, &one).await), ["shell"]);
    let three = with(forced.clone(), json!({"mock": {"calls": 3}}));
    assert_eq!(called(&respond(&server, &three).await), ["shell", "update_plan", "view_image"]);
    let serial = with(three, json!({"parallel_tool_calls": false}));
    assert_eq!(called(&respond(&server, &serial).await), ["shell"]);

    let named = with(body.clone(), json!({"tool_choice": {"type": "function", "name": "view_image"}}));
    assert_eq!(called(&respond(&server, &named).await), ["view_image"]);
    let none = respond(&server, &with(body, json!({"tool_choice": "none"}))).await;
    assert_eq!(none["output"][0]["type"], "message");
}

#[tokio::test]
async fn a_function_call_output_is_answered_with_text() {
    let server = mock(MockConfig::default()).await;
    let input = json!([
        {"role": "user", "content": [{"type": "input_text", "text": "What's in the folder?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "Cargo.toml src"}
    ]);
    let r = respond(&server, &with(ask(input.clone()), json!({"tools": codex_tools()}))).await;
    assert!(called(&r).is_empty());
    let text = r["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("Cargo"), "{text}");
    // 4 + 1, 1 + 1, 2 + 1
    assert_eq!(r["usage"]["input_tokens"], 10);

    // A new user message after the output asks for tools again.
    let mut more = input.as_array().unwrap().clone();
    more.push(json!({"type": "message", "role": "user", "content": "And now?"}));
    let r = respond(&server, &with(ask(Value::Array(more)), json!({"tools": codex_tools()}))).await;
    assert_eq!(called(&r), ["shell"]);
}

#[tokio::test]
async fn max_output_tokens_makes_the_response_incomplete() {
    let server = mock(MockConfig::default()).await;
    let r = respond(&server, &with(ask(json!("hi")), json!({"max_output_tokens": 3}))).await;
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(r["output"][0]["status"], "incomplete");
    assert_eq!(r["usage"]["output_tokens"], 3);
    assert_eq!(r["max_output_tokens"], 3);

    // Reasoning counts towards the limit.
    let body = with(ask(json!("hi")), json!({"max_output_tokens": 7, "reasoning": {"effort": "low"}}));
    let r = respond(&server, &body).await;
    assert_eq!(r["usage"]["output_tokens"], 7);
    assert_eq!(count_tokens(r["output"][1]["content"][0]["text"].as_str().unwrap()), 2);

    let r = respond(&server, &with(ask(json!("hi")), json!({"mock": {"fault": "safety"}}))).await;
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "content_filter");
    assert_eq!(r["output"], json!([]));
}

#[tokio::test]
async fn bad_requests_and_faults() {
    let server = mock(MockConfig::default()).await;
    for body in [json!({"model": "m"}), ask(json!(42))] {
        let response = post_to(&server, PATH, &body).await;
        assert_eq!(response.status(), 400);
        let e: Value = response.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
    let response = post_to(&server, PATH, &with(ask(json!("hi")), json!({"model": "m@fault=500"}))).await;
    assert_eq!(response.status(), 500);
    let response = post_to(&server, PATH, &with(ask(json!("hi")), json!({"mock": {"fault": "stream_error"}}))).await;
    assert_eq!(response.status(), 503, "a non-stream stream_error is an overload");
    assert_eq!(server.stats().request_count(), 4);
}
