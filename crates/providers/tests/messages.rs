//! The inbound Messages surface against the bodies Claude Code and the anthropic SDK send
//! and a conversation adapted from Anthropic's documented examples: requests read and
//! translated into chat (and on to the Anthropic adapter, signatures intact), answers
//! stated as Anthropic `Message`s, and errors in Anthropic's shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{Value, json};
use tokenrouter_core::chat::{ChatCompletion, ChatRequest, Content, ContentPart, Message};
use tokenrouter_core::{ErrorEnvelope, Usage};
use tokenrouter_providers::adapter::{Adapter, Target, Unsupported};
use tokenrouter_providers::anthropic::ANTHROPIC;
use tokenrouter_providers::messages::{self, Ids, Translated};
use tokenrouter_providers::surface::Surface;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/messages").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ids() -> Ids {
    Ids { message_id: "msg_test".into() }
}

fn translate_bytes(body: &[u8]) -> Result<Translated, Unsupported> {
    messages::translate(messages::parse(body)?, ids())
}

fn translate(body: &Value) -> Result<Translated, Unsupported> {
    translate_bytes(body.to_string().as_bytes())
}

fn chat_json(chat: &ChatRequest) -> Value {
    serde_json::to_value(chat).unwrap()
}

/// A minimal request with these messages and any other fields.
fn request(messages: Value, extra: Value) -> Value {
    let mut body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn text(message: &Message) -> String {
    match message {
        Message::System { content, .. } | Message::User { content, .. } | Message::Tool { content, .. } => {
            content.text()
        }
        other => panic!("not a text message: {other:?}"),
    }
}

#[test]
fn claude_code_turns_become_chat_requests_any_upstream_accepts() {
    for name in ["claude_code.request.json", "claude_code_tool_call.request.json"] {
        let body = fixture(name);
        let request = messages::parse(&body).unwrap();
        assert!(request.stream(), "{name}");
        let t = messages::translate(request, ids()).unwrap();
        let chat = &t.chat;
        assert_eq!(chat.model, if name == "claude_code.request.json" { "claude-opus-4-8" } else { "gw-sonnet" });
        assert!(chat.extra.is_empty(), "context_management and output_config are not forwarded");
        assert_eq!(chat.stream, Some(true));
        assert!(chat.include_usage());
        // Adaptive thinking at `output_config.effort: high`.
        assert_eq!(chat.reasoning_effort.as_deref(), Some("high"));
        assert!(chat.max_tokens.is_some_and(|m| m >= 32000));
        assert_eq!(chat.user.as_deref(), Some("<text 150 chars>"));
        assert!(t.dropped_tools.is_empty());
        // The system blocks as one leading message, then the user turn (its two text
        // blocks, `cache_control` dropped), then Claude Code's system entry where it was.
        assert_eq!(chat.messages.len(), 3);
        assert!(matches!(chat.messages[0], Message::System { .. }));
        let system = text(&chat.messages[0]);
        assert!(system.starts_with("<text 74 chars>\n\n<text 62 chars>\n\n"), "{system}");
        match &chat.messages[1] {
            Message::User { content: Content::Parts(parts), .. } => {
                assert_eq!(parts.len(), 2);
                assert!(matches!(&parts[1], ContentPart::Text { text } if text == "Say hi" || text == "Run echo"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(chat.messages[2], Message::System { .. }));
        // Every tool is the client's own, its schema passed on as the parameters.
        let tools = chat.tools.as_ref().unwrap();
        assert_eq!(tools.len(), 24);
        let bash = tools.iter().find(|t| t.function.name == "Bash").unwrap();
        assert_eq!(bash.kind, "function");
        assert_eq!(bash.function.parameters.as_ref().unwrap()["type"], "object");
        assert_eq!(chat.tool_choice, None);
    }
}

#[test]
fn claude_code_tool_results_follow_the_call_as_tool_messages() {
    let t = translate_bytes(&fixture("claude_code_tool_result.request.json")).unwrap();
    let roles: Vec<&str> = t
        .chat
        .messages
        .iter()
        .map(|m| match m {
            Message::System { .. } => "system",
            Message::User { .. } => "user",
            Message::Assistant(_) => "assistant",
            Message::Tool { .. } => "tool",
            Message::Developer { .. } => "developer",
        })
        .collect();
    assert_eq!(roles, ["system", "user", "system", "assistant", "tool"]);
    let Message::Assistant(call) = &t.chat.messages[3] else { unreachable!() };
    assert_eq!(call.content, None);
    let calls = call.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].id, "toolu_fake1");
    assert_eq!(calls[0].function.name, "Bash");
    let arguments: Value = serde_json::from_str(&calls[0].function.arguments).unwrap();
    assert_eq!(arguments, json!({"command": "echo hello-from-tool", "description": "Print greeting"}));
    assert_eq!(
        t.chat.messages[4],
        Message::Tool { tool_call_id: "toolu_fake1".into(), content: Content::Text("hello-from-tool".into()) }
    );
}

#[test]
fn sdk_requests_translate() {
    let t = translate_bytes(&fixture("sdk_text.request.json")).unwrap();
    assert_eq!(
        chat_json(&t.chat),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
    );
    let t = translate_bytes(&fixture("sdk_stream_system.request.json")).unwrap();
    assert_eq!(
        chat_json(&t.chat),
        json!({
            "model": "claude-sonnet-4-5", "max_tokens": 64,
            "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        })
    );
}

#[test]
fn a_conversation_with_thinking_tools_images_and_documents_translates_as_expected() {
    let t = translate_bytes(&fixture("history.request.json")).unwrap();
    let expected: Value = serde_json::from_slice(&fixture("history.expected.json")).unwrap();
    assert_eq!(chat_json(&t.chat), expected, "{:#}", chat_json(&t.chat));
    assert_eq!(t.dropped_tools, ["web_search", "bash"]);
}

#[test]
fn handed_back_thinking_reaches_an_anthropic_upstream_with_its_signatures() {
    let mut body: Value = serde_json::from_slice(&fixture("history.request.json")).unwrap();
    // (The Anthropic adapter takes no PDF parts.)
    body["messages"][0]["content"].as_array_mut().unwrap().pop();
    let t = translate(&body).unwrap();
    let target = Target { upstream_model: "claude-sonnet-4-5-20250929", max_output_tokens: 8192 };
    let encoded = ANTHROPIC.encode_request(&t.chat, &target, false).unwrap();
    let body: Value = serde_json::from_slice(&encoded.body).unwrap();
    assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 4096}));
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {
                "type": "thinking",
                "thinking": "The user wants the weather in two cities. I should call get_weather twice.",
                "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
            },
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
            {"type": "text", "text": "Let me check both cities."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"location": "London"}}
        ])
    );
    // The results answer the calls first; the user's own words come after.
    assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "toolu_01A");
    assert_eq!(body["messages"][2]["content"][1]["tool_use_id"], "toolu_01B");
    assert_eq!(body["messages"][3]["content"][0]["text"], "Also, please hurry.");
    assert_eq!(body["system"], json!([{"type": "text", "text": "You are a weather assistant.\n\nAnswer briefly."}]));
    assert_eq!(body["tools"].as_array().unwrap().len(), 1, "server tools never reach the upstream");
}

#[test]
fn tool_results_come_before_the_rest_of_their_turn() {
    let t = translate(&request(
        json!([
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "w", "input": {}},
                {"type": "tool_use", "id": "t2", "name": "w"}
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "before"},
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"type": "tool_result", "tool_use_id": "t2"},
                {"type": "text", "text": "after"}
            ]}
        ]),
        json!({}),
    ))
    .unwrap();
    let m = &t.chat.messages;
    let Message::Assistant(call) = &m[1] else { panic!("{m:?}") };
    let calls = call.tool_calls.as_ref().unwrap();
    assert_eq!((calls[0].function.arguments.as_str(), calls[1].function.arguments.as_str()), ("{}", "{}"));
    assert_eq!(m[2], Message::Tool { tool_call_id: "t1".into(), content: Content::Text("a\nb".into()) });
    assert_eq!(m[3], Message::Tool { tool_call_id: "t2".into(), content: Content::Text(String::new()) });
    assert_eq!(
        m[4],
        Message::User {
            content: Content::Parts(vec![
                ContentPart::Text { text: "before".into() },
                ContentPart::Text { text: "after".into() }
            ]),
            name: None
        }
    );
    assert_eq!(m.len(), 5);
}

#[test]
fn thinking_settings_become_a_reasoning_effort() {
    let effort = |extra: Value| translate(&request(json!([{"role": "user", "content": "x"}]), extra)).unwrap();
    for (thinking, output_config, expected) in [
        (json!({"type": "enabled", "budget_tokens": 1024}), json!(null), Some("low")),
        (json!({"type": "enabled", "budget_tokens": 4095}), json!(null), Some("low")),
        (json!({"type": "enabled", "budget_tokens": 4096}), json!(null), Some("medium")),
        (json!({"type": "enabled", "budget_tokens": 16384}), json!(null), Some("high")),
        (json!({"type": "enabled", "budget_tokens": 60000, "display": "omitted"}), json!(null), Some("high")),
        (json!({"type": "adaptive"}), json!(null), Some("medium")),
        (json!({"type": "adaptive"}), json!({"effort": "low"}), Some("low")),
        (json!({"type": "adaptive"}), json!({"effort": "medium"}), Some("medium")),
        (json!({"type": "adaptive"}), json!({"effort": "max"}), Some("high")),
        (json!({"type": "disabled"}), json!({"effort": "high"}), None),
        (json!({"type": "some_future_mode"}), json!(null), None),
        (json!(null), json!({"effort": "high"}), None),
    ] {
        let t = effort(json!({"thinking": thinking, "output_config": output_config}));
        assert_eq!(t.chat.reasoning_effort.as_deref(), expected, "{thinking} {output_config}");
    }
}

#[test]
fn tool_choice_and_sampling_map_onto_chat() {
    let tools = json!([{"name": "w", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "web_search"}]);
    let with = |choice: Value| {
        translate(&request(json!([{"role": "user", "content": "x"}]), json!({"tools": tools, "tool_choice": choice})))
    };
    let chat = |choice: Value| with(choice).unwrap().chat;
    assert_eq!(chat_json(&chat(json!({"type": "auto"})))["tool_choice"], "auto");
    assert_eq!(chat_json(&chat(json!({"type": "any"})))["tool_choice"], "required");
    assert_eq!(chat_json(&chat(json!({"type": "none"})))["tool_choice"], "none");
    let named = chat(json!({"type": "tool", "name": "w", "disable_parallel_tool_use": true}));
    assert_eq!(chat_json(&named)["tool_choice"], json!({"type": "function", "function": {"name": "w"}}));
    assert_eq!(named.parallel_tool_calls, Some(false));
    assert_eq!(chat(json!({"type": "any", "disable_parallel_tool_use": false})).parallel_tool_calls, None);
    let refused = with(json!({"type": "tool", "name": "web_search"})).unwrap_err();
    assert_eq!(refused.param, "tool_choice.name");

    // With only server tools there is nothing left to choose from.
    let t = translate(&request(
        json!([{"role": "user", "content": "x"}]),
        json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}], "tool_choice": {"type": "any"}}),
    ))
    .unwrap();
    assert_eq!((t.chat.tools, t.chat.tool_choice, t.dropped_tools), (None, None, vec!["web_search".to_owned()]));

    let t = translate(&request(
        json!([{"role": "user", "content": "x"}]),
        json!({"temperature": 0.2, "top_p": 0.9, "top_k": 5, "stop_sequences": ["END"], "stream": false}),
    ))
    .unwrap();
    let body = chat_json(&t.chat);
    assert_eq!((body["temperature"].clone(), body["top_p"].clone()), (json!(0.2), json!(0.9)));
    assert_eq!(body["stop"], json!(["END"]));
    assert!(body.get("top_k").is_none() && body.get("stream").is_none() && body.get("stream_options").is_none());
}

#[test]
fn a_json_output_format_becomes_a_response_format() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false});
    let t = translate(&request(
        json!([{"role": "user", "content": "x"}]),
        json!({"output_config": {"effort": "low", "format": {"type": "json_schema", "schema": schema}}}),
    ))
    .unwrap();
    assert_eq!(
        chat_json(&t.chat)["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
    );
    assert_eq!(t.chat.reasoning_effort, None, "effort alone does not turn thinking on");
}

#[test]
fn images_and_documents_the_upstream_cannot_fetch_are_refused_by_path() {
    let with_block = |block: Value| {
        translate(&request(json!([{"role": "user", "content": [{"type": "text", "text": "see"}, block]}]), json!({})))
    };
    let t = with_block(
        json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}),
    );
    assert_eq!(
        t.unwrap().chat.messages[0],
        Message::User {
            content: Content::Parts(vec![
                ContentPart::Text { text: "see".into() },
                ContentPart::Text { text: "notes".into() }
            ]),
            name: None
        }
    );
    for block in [
        json!({"type": "image", "source": {"type": "file", "file_id": "file_1"}}),
        json!({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}),
        json!({"type": "document", "source": {"type": "base64", "media_type": "application/msword", "data": "x"}}),
    ] {
        let refused = with_block(block.clone()).unwrap_err();
        assert_eq!(refused.param, "messages.0.content.1.source", "{block}");
    }
}

#[test]
fn wrong_types_and_missing_fields_are_named_by_path() {
    let cases = [
        (json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]}), "messages.0.content"),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}),
            "messages.1.role",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}),
            "messages.0.content.0",
        ),
        (json!({"model": "m", "max_tokens": "many", "messages": [{"role": "user", "content": "a"}]}), "max_tokens"),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}], "tools": [{"name": 3}]}),
            "tools.0.name",
        ),
        (json!({"max_tokens": 5, "messages": [{"role": "user", "content": "a"}]}), "model"),
        (json!({"model": "m", "max_tokens": 5}), "messages"),
        (json!({"model": "m", "max_tokens": 5, "messages": []}), "messages"),
        (json!({"model": "m", "messages": [{"role": "user", "content": "a"}]}), "max_tokens"),
    ];
    for (body, param) in cases {
        let refused = messages::parse(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(refused.param, param, "{body}");
        assert!(refused.message.starts_with(param), "{}", refused.message);
    }
    for body in [&b"not json"[..], b"[1]", br#"{"model":"m"} trailing"#] {
        assert_eq!(messages::parse(body).unwrap_err().param, "");
    }
}

#[test]
fn unknown_fields_and_block_types_are_accepted_and_left_out() {
    let t = translate(&request(
        json!([
            {"role": "user", "content": [{"type": "text", "text": "hi", "citations": [], "cache_control": {"type": "ephemeral", "ttl": "1h"}}, {"type": "search_result", "source": "s", "title": "t", "content": []}]},
            {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}}, {"type": "text", "text": "found"}]},
        ]),
        json!({"container": "c1", "mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}], "new_field": {"a": 1}, "system": null, "tools": null}),
    ))
    .unwrap();
    assert_eq!(
        chat_json(&t.chat),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "found"}
        ]})
    );
}

#[test]
fn count_tokens_needs_no_max_tokens() {
    let body = json!({"model": "m", "system": "be brief", "messages": [{"role": "user", "content": "hello"}], "tools": [{"name": "w", "input_schema": {"type": "object"}}]});
    let chat = messages::count_tokens_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(chat.max_tokens, None);
    assert_eq!(chat.messages.len(), 2);
    assert_eq!(chat.tools.unwrap().len(), 1);
    assert_eq!(messages::count_tokens_request(br#"{"model":"m"}"#).unwrap_err().param, "messages");
}

// ---- Answers ----

fn completion(message: Value, finish: &str) -> ChatCompletion {
    let mut message = message;
    message["role"] = json!("assistant");
    for key in ["content", "refusal"] {
        if message.get(key).is_none() {
            message[key] = Value::Null;
        }
    }
    serde_json::from_value(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "upstream-model",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                  "prompt_tokens_details": {"cached_tokens": 60, "cache_creation_tokens": 30},
                  "completion_tokens_details": {"reasoning_tokens": 0}}
    }))
    .unwrap()
}

const USAGE: Usage = Usage {
    prompt_tokens: 100,
    completion_tokens: 20,
    cached_tokens: 60,
    cache_write_tokens: 0,
    reasoning_tokens: 0,
    hosted: tokenrouter_core::HostedCalls { web_search: 0, web_fetch: 0 },
};

fn present(message: Value, finish: &str) -> Value {
    let t = translate(&request(json!([{"role": "user", "content": "x"}]), json!({"model": "my-claude"}))).unwrap();
    serde_json::from_slice(&t.surface.present(&completion(message, finish), USAGE)).unwrap()
}

#[test]
fn a_text_answer_is_a_message() {
    assert_eq!(
        present(json!({"content": "Hello!"}), "stop"),
        json!({
            "id": "msg_test", "type": "message", "role": "assistant", "model": "my-claude",
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 30, "cache_read_input_tokens": 60}
        })
    );
    let cut = present(json!({"content": "Hel"}), "length");
    assert_eq!(cut["stop_reason"], "max_tokens");
    assert_eq!(present(json!({"content": ""}), "content_filter")["stop_reason"], "refusal");
    assert_eq!(present(json!({"content": ""}), "stop")["content"], json!([]));
}

#[test]
fn tool_calls_are_tool_use_blocks_after_thinking_and_text() {
    let answer = present(
        json!({
            "content": "Checking.",
            "reasoning_content": "I need the weather.",
            "thinking_blocks": [
                {"type": "thinking", "thinking": "I need the weather.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque"}
            ],
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}},
                {"id": "", "type": "function", "function": {"name": "now", "arguments": "not json"}}
            ]
        }),
        "tool_calls",
    );
    assert_eq!(
        answer["content"],
        json!([
            {"type": "thinking", "thinking": "I need the weather.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "toolu_msg_test_1", "name": "now", "input": {}}
        ])
    );
    assert_eq!(answer["stop_reason"], "tool_use");
    // Some providers say `stop` after calling tools: the client must still run them.
    let answer = present(
        json!({"tool_calls": [{"id": "c", "type": "function", "function": {"name": "now", "arguments": ""}}]}),
        "stop",
    );
    assert_eq!(answer["stop_reason"], "tool_use");
    assert_eq!(answer["content"][0]["input"], json!({}));
}

#[test]
fn reasoning_without_signed_blocks_is_an_unsigned_thinking_block() {
    let answer = present(json!({"content": "42", "reasoning_content": "Let me think."}), "stop");
    assert_eq!(
        answer["content"],
        json!([{"type": "thinking", "thinking": "Let me think.", "signature": ""}, {"type": "text", "text": "42"}])
    );
}

#[test]
fn other_providers_reasoning_blocks_travel_as_redacted_thinking_and_come_back() {
    let gemini = json!({"type": "gemini_thought_signature", "signature": "CiQB0e2Kb"});
    let answer = present(
        json!({
            "reasoning_content": "Summary of thoughts.",
            "thinking_blocks": [gemini],
            "tool_calls": [{"id": "call_0_0", "type": "function", "function": {"name": "w", "arguments": "{}"}}]
        }),
        "tool_calls",
    );
    let content = answer["content"].as_array().unwrap();
    assert_eq!(content[0], json!({"type": "thinking", "thinking": "Summary of thoughts.", "signature": ""}));
    assert_eq!(content[1]["type"], "redacted_thinking");
    assert_eq!(content[2]["type"], "tool_use");
    // The client hands the assistant turn back as it got it.
    let t = translate(&request(
        json!([{"role": "user", "content": "x"}, {"role": "assistant", "content": content}, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_0_0", "content": "ok"}]}]),
        json!({}),
    ))
    .unwrap();
    let Message::Assistant(turn) = &t.chat.messages[1] else { panic!() };
    let blocks = serde_json::to_value(turn.thinking_blocks.as_ref().unwrap()).unwrap();
    assert_eq!(blocks, json!([{"type": "thinking", "thinking": "Summary of thoughts."}, gemini]));
    assert_eq!(turn.reasoning_content.as_deref(), Some("Summary of thoughts."));
}

// ---- Errors ----

#[test]
fn errors_take_anthropics_shape_and_types() {
    let envelope = |kind: &str, code: &str| ErrorEnvelope::new(kind, code, "What went wrong.", None);
    for (status, kind, code, expected) in [
        (400, "invalid_request_error", "invalid_request", "invalid_request_error"),
        (400, "invalid_request_error", "context_length_exceeded", "invalid_request_error"),
        (401, "authentication_error", "invalid_api_key", "authentication_error"),
        (402, "insufficient_quota", "insufficient_quota", "billing_error"),
        (403, "permission_error", "model_not_allowed", "permission_error"),
        (404, "invalid_request_error", "model_not_found", "not_found_error"),
        (405, "invalid_request_error", "method_not_allowed", "invalid_request_error"),
        (413, "invalid_request_error", "request_too_large", "request_too_large"),
        (429, "rate_limit_error", "rate_limited", "rate_limit_error"),
        (500, "server_error", "internal_error", "api_error"),
        (502, "upstream_error", "upstream_unavailable", "api_error"),
        (503, "upstream_error", "upstream_unavailable", "overloaded_error"),
        (504, "upstream_error", "upstream_timeout", "timeout_error"),
        (529, "upstream_error", "upstream_unavailable", "overloaded_error"),
    ] {
        let body: Value = serde_json::from_slice(&messages::error_body(status, &envelope(kind, code))).unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": expected, "message": "What went wrong."}}),
            "{status}"
        );
    }
    // Without a status, the envelope's type and code decide.
    let t = translate(&request(json!([{"role": "user", "content": "x"}]), json!({}))).unwrap();
    for (kind, code, expected) in [
        ("invalid_request_error", "invalid_request", "invalid_request_error"),
        ("invalid_request_error", "model_not_found", "not_found_error"),
        ("invalid_request_error", "request_too_large", "request_too_large"),
        ("authentication_error", "invalid_api_key", "authentication_error"),
        ("insufficient_quota", "insufficient_quota", "billing_error"),
        ("permission_error", "ip_not_allowed", "permission_error"),
        ("rate_limit_error", "rate_limited", "rate_limit_error"),
        ("upstream_error", "upstream_timeout", "timeout_error"),
        ("upstream_error", "upstream_unavailable", "api_error"),
        ("server_error", "internal_error", "api_error"),
    ] {
        let body: Value = serde_json::from_slice(&t.surface.error_body(&envelope(kind, code))).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], expected, "{kind} {code}");
    }
    let body: Value = serde_json::from_slice(&messages::error_body(200, &envelope("rate_limit_error", "x"))).unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
}
