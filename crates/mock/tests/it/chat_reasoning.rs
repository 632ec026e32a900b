//! Chat completions with `reasoning_effort`: DeepSeek-style `reasoning_content` in the
//! message and as `delta.reasoning_content` chunks before the content, counted as
//! reasoning tokens.

use serde_json::{Value, json};
use tokenrouter_mock::MockConfig;

use crate::client::{ask, complete, mock, post, read_sse, with};

const THINKING: &str = "Let me think about this.";

fn reasoning_chunks(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e.pointer("/choices/0/delta/reasoning_content").and_then(Value::as_str)).collect()
}

#[tokio::test]
async fn reasoning_effort_adds_reasoning_content_and_tokens() {
    let server = mock(MockConfig { reply_tokens: 4, ..MockConfig::default() }).await;
    let c = complete(&server, &with(ask("Why?"), json!({"reasoning_effort": "medium"}))).await;
    let message = &c["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], THINKING);
    assert!(message["content"].as_str().unwrap().starts_with("Why"));
    let usage = &c["usage"];
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 5);
    assert_eq!(usage["completion_tokens"], 9);
    assert_eq!(usage["total_tokens"], 11);
    assert_eq!(server.stats().tokens_generated(), 9);

    for effort in [json!("minimal"), json!("none"), Value::Null] {
        let c = complete(&server, &with(ask("Why?"), json!({"reasoning_effort": effort}))).await;
        assert!(c["choices"][0]["message"].get("reasoning_content").is_none(), "{effort}");
        assert_eq!(c["usage"]["completion_tokens_details"]["reasoning_tokens"], 0);
        assert_eq!(c["usage"]["completion_tokens"], 4);
    }
}

#[tokio::test]
async fn streams_reasoning_before_the_content() {
    let server = mock(MockConfig { reply_tokens: 3, ..MockConfig::default() }).await;
    let body = with(
        ask("Why?"),
        json!({"reasoning_effort": "high", "stream": true, "stream_options": {"include_usage": true}}),
    );
    let sse = read_sse(post(&server, &body).await).await;
    assert!(sse.done);
    // Role, 5 reasoning pieces, 3 words, finish, usage.
    assert_eq!(sse.events.len(), 11);
    assert_eq!(sse.events[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    let pieces = reasoning_chunks(&sse.events);
    assert_eq!(pieces.len(), 5);
    assert_eq!(pieces.concat(), THINKING);
    for event in &sse.events[1..6] {
        let delta = &event["choices"][0]["delta"];
        assert!(delta["content"].is_null() && delta.get("content").is_some(), "{delta}");
    }
    assert_eq!(sse.content_chunks(), 3);
    assert!(sse.events[6..].iter().all(|e| e.pointer("/choices/0/delta/reasoning_content").is_none()));
    let whole = complete(&server, &with(ask("Why?"), json!({"reasoning_effort": "high"}))).await;
    assert_eq!(sse.text(), whole["choices"][0]["message"]["content"].as_str().unwrap());
    let usage = &sse.events.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 5);
    assert_eq!(usage["completion_tokens"], 8);
}

#[tokio::test]
async fn reasoning_comes_before_streamed_tool_calls() {
    let server = mock(MockConfig::default()).await;
    let tools = json!([{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]);
    let body = with(ask("Time?"), json!({"reasoning_effort": "low", "stream": true, "tools": tools}));
    let sse = read_sse(post(&server, &body).await).await;
    assert_eq!(reasoning_chunks(&sse.events).concat(), THINKING);
    let first_call = sse.events.iter().position(|e| e.pointer("/choices/0/delta/tool_calls").is_some()).unwrap();
    assert_eq!(first_call, 6, "role, 5 reasoning pieces, then the call");
    assert_eq!(sse.events[first_call]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "get_time");
    assert_eq!(sse.events.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");

    let c = complete(&server, &with(ask("Time?"), json!({"reasoning_effort": "low", "tools": body["tools"]}))).await;
    assert_eq!(c["choices"][0]["message"]["reasoning_content"], THINKING);
    assert_eq!(c["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_time");
}
