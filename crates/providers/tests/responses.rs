//! The Responses surface against real client bodies (Codex CLI, the OpenAI SDKs) and
//! answers: the chat request each becomes, the Response object each answer becomes, and
//! a conversation continued through `previous_response_id`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{Value, json};
use tokenrouter_core::Usage;
use tokenrouter_core::chat::{ChatCompletion, ChatRequest, Content, Message};
use tokenrouter_providers::adapter::Unsupported;
use tokenrouter_providers::responses::{self, Ids, Options, Translated, UnsupportedTools};
use tokenrouter_providers::surface::Surface;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/responses").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn ids() -> Ids {
    Ids { response_id: "resp_test1".into(), created_at: 1_700_000_000 }
}

const DROP: Options = Options { unsupported_tools: UnsupportedTools::Drop };
const REJECT: Options = Options { unsupported_tools: UnsupportedTools::Reject };

fn translate_with(body: &[u8], previous: Option<&[Vec<u8>]>, options: &Options) -> Result<Translated, Unsupported> {
    responses::translate(responses::parse(body)?, previous, ids(), options)
}

fn translate(body: &Value) -> Translated {
    translate_with(body.to_string().as_bytes(), None, &DROP).unwrap()
}

fn chat_json(chat: &ChatRequest) -> Value {
    serde_json::to_value(chat).unwrap()
}

#[test]
fn codex_tool_turn_becomes_a_chat_request_any_upstream_accepts() {
    let translated = translate_with(&fixture("codex_tool_turn.request.json"), None, &DROP).unwrap();
    let chat = &translated.chat;
    assert_eq!(chat.model, "fake-model");
    assert_eq!(chat.stream, Some(true));
    assert!(chat.include_usage(), "the surface needs the usage chunk");

    // Developer messages stay developer messages; the tool turn is one assistant message
    // with the call, then the tool's output.
    let roles: Vec<&str> = chat
        .messages
        .iter()
        .map(|m| match m {
            Message::System { .. } => "system",
            Message::Developer { .. } => "developer",
            Message::User { .. } => "user",
            Message::Assistant(_) => "assistant",
            Message::Tool { .. } => "tool",
        })
        .collect();
    assert_eq!(roles, ["developer", "developer", "user", "user", "assistant", "tool"]);
    let Message::Developer { content: Content::Parts(parts), .. } = &chat.messages[1] else { panic!() };
    assert_eq!(parts.len(), 2, "both input_text parts are kept");
    let Message::User { content, .. } = &chat.messages[3] else { panic!() };
    assert_eq!(content.text(), "Run echo");
    let Message::Assistant(assistant) = &chat.messages[4] else { panic!() };
    let calls = assistant.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, "call_fake1");
    assert_eq!(calls[0].function.name, "exec_command");
    assert_eq!(calls[0].function.arguments, "<text 30 chars>");
    let Message::Tool { tool_call_id, content } = &chat.messages[5] else { panic!() };
    assert_eq!(tool_call_id, "call_fake1");
    assert_eq!(*content, Content::Text("<text 175 chars>".into()));

    // The namespace's five functions are flattened; web_search is dropped and named.
    let names: Vec<&str> = chat.tools.as_ref().unwrap().iter().map(|t| t.function.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "exec_command",
            "write_stdin",
            "request_user_input",
            "view_image",
            "multi_agent_v1__close_agent",
            "multi_agent_v1__resume_agent",
            "multi_agent_v1__send_input",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__wait_agent",
            "get_goal",
            "create_goal",
            "update_goal",
        ]
    );
    let spawn = &chat.tools.as_ref().unwrap()[7].function;
    assert_eq!(spawn.description.as_deref(), Some("<text 5033 chars>"));
    assert_eq!(spawn.parameters.as_ref().unwrap()["type"], "object");
    assert_eq!(spawn.strict, Some(false));
    assert_eq!(translated.dropped_tools, ["web_search"]);
    assert_eq!(chat_json(chat)["tool_choice"], "auto");
    assert_eq!(chat.parallel_tool_calls, Some(true));
    assert_eq!(chat.reasoning_effort, None, "reasoning.summary alone sets no effort");

    // Nothing Responses-only reaches the upstream.
    assert!(chat.extra.is_empty());
    let body = chat_json(chat);
    for field in ["store", "include", "prompt_cache_key", "client_metadata", "reasoning", "input", "instructions"] {
        assert!(body.get(field).is_none(), "{field} leaked into the chat request");
    }
}

#[test]
fn reject_mode_names_the_hosted_tool_and_accepts_custom_tools() {
    let error = translate_with(&fixture("codex_tool_turn.request.json"), None, &REJECT).unwrap_err();
    assert_eq!(error.param, "tools[8].type");
    assert!(error.message.contains("web_search"), "{}", error.message);

    // A custom tool, in a namespace or not, is neither refused nor dropped.
    let mut body = json_fixture("codex_tool_turn.request.json");
    body["tools"][4]["tools"][1] = json!({"type": "custom", "name": "apply_patch"});
    body["tools"][8] = json!({"type": "custom", "name": "notes", "format": {"type": "text"}});
    let translated = translate_with(body.to_string().as_bytes(), None, &REJECT).unwrap();
    assert!(translated.dropped_tools.is_empty());
    let names: Vec<&str> = translated.chat.tools.as_ref().unwrap().iter().map(|t| t.function.name.as_str()).collect();
    assert!(names.contains(&"multi_agent_v1__apply_patch"), "{names:?}");
    assert!(names.contains(&"notes"), "{names:?}");

    let hosted_inside =
        json!({"type": "namespace", "name": "n", "description": "d", "tools": [{"type": "file_search"}]});
    body["tools"].as_array_mut().unwrap().push(hosted_inside);
    let error = translate_with(body.to_string().as_bytes(), None, &REJECT).unwrap_err();
    assert_eq!(error.param, "tools[9].tools[0].type");
    let dropped = translate_with(body.to_string().as_bytes(), None, &DROP).unwrap();
    assert_eq!(dropped.dropped_tools, ["file_search"]);
}

#[test]
fn a_namespaced_call_in_the_history_keeps_its_flattened_name() {
    let mut body = json_fixture("codex_tool_turn.request.json");
    let input = body["input"].as_array_mut().unwrap();
    input.push(json!({
        "type": "function_call", "id": "fc_2", "call_id": "call_2", "namespace": "multi_agent_v1",
        "name": "spawn_agent", "arguments": "{\"message\":\"go\"}"
    }));
    input.push(json!({"type": "function_call_output", "call_id": "call_2", "output": "spawned"}));
    let chat = translate(&body).chat;
    let Message::Assistant(assistant) = &chat.messages[6] else { panic!("{:#?}", chat.messages) };
    assert_eq!(assistant.tool_calls.as_ref().unwrap()[0].function.name, "multi_agent_v1__spawn_agent");
    let declared = chat.tools.as_ref().unwrap().iter().any(|t| t.function.name == "multi_agent_v1__spawn_agent");
    assert!(declared);
}

#[test]
fn sdk_bodies_translate_as_expected() {
    for scenario in ["sdk_instructions", "sdk_stream_messages", "sdk_function_tool", "sdk_text", "sdk_stream_text"] {
        let translated = translate_with(&fixture(&format!("{scenario}.request.json")), None, &DROP)
            .unwrap_or_else(|e| panic!("{scenario}: {e:?}"));
        assert_eq!(chat_json(&translated.chat), json_fixture(&format!("{scenario}.chat.json")), "{scenario}");
        assert!(translated.dropped_tools.is_empty());
    }
}

#[test]
fn a_turn_of_reasoning_text_and_parallel_calls_is_one_assistant_message() {
    let body = json!({
        "model": "m",
        "input": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Two cities."}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking both."}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": [
                {"type": "input_text", "text": "rain"}, {"type": "input_text", "text": "y"}
            ]},
            {"type": "item_reference", "id": "msg_old"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}}
        ]
    });
    let chat = chat_json(&translate(&body).chat);
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": "Checking both.",
                "reasoning_content": "Two cities.",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": "rainy"}
        ])
    );
}

#[test]
fn images_system_messages_and_parameters_carry_over() {
    let body = json!({
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"type": "message", "role": "system", "content": "Old system."},
            {"role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
            ]}
        ],
        "temperature": 0.3, "top_p": 0.9, "max_output_tokens": 100,
        "safety_identifier": "hash-1", "reasoning": {"effort": "xhigh"},
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true}, "verbosity": "low"},
        "store": false, "truncation": "auto", "service_tier": "flex", "background": false,
        "top_logprobs": 2, "prompt_cache_key": "k", "metadata": {"a": "b"}, "some_future_field": {"x": 1}
    });
    let chat = chat_json(&translate(&body).chat);
    assert_eq!(
        chat,
        json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": "Old system."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
                ]}
            ],
            "max_completion_tokens": 100,
            "temperature": 0.3,
            "top_p": 0.9,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}},
            "reasoning_effort": "xhigh",
            "user": "hash-1"
        })
    );
}

#[test]
fn text_formats_and_tool_choices() {
    let format =
        |format: Value| chat_json(&translate(&json!({"model": "m", "input": "x", "text": {"format": format}})).chat);
    assert_eq!(format(json!({"type": "json_object"}))["response_format"], json!({"type": "json_object"}));
    assert!(format(json!({"type": "text"})).get("response_format").is_none());
    let error = translate_with(br#"{"model":"m","input":"x","text":{"format":{"type":"json_schema"}}}"#, None, &DROP);
    assert_eq!(error.unwrap_err().param, "text.format.name");

    let tools = json!([
        {"type": "function", "name": "get_weather", "parameters": {}},
        {"type": "namespace", "name": "crm", "description": "d", "tools": [{"type": "function", "name": "lookup"}]},
        {"type": "web_search"}
    ]);
    let choice = |choice: Value| {
        let chat =
            chat_json(&translate(&json!({"model": "m", "input": "x", "tools": tools, "tool_choice": choice})).chat);
        chat["tool_choice"].clone()
    };
    assert_eq!(choice(json!("required")), "required");
    assert_eq!(choice(json!("none")), "none");
    assert_eq!(
        choice(json!({"type": "function", "name": "get_weather"})),
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(
        choice(json!({"type": "function", "name": "lookup"})),
        json!({"type": "function", "function": {"name": "crm__lookup"}})
    );
    assert_eq!(choice(json!({"type": "web_search"})), "auto", "the hosted tool was dropped");
    assert_eq!(choice(json!({"type": "allowed_tools", "mode": "required", "tools": []})), "required");
    assert_eq!(choice(json!({"type": "allowed_tools", "mode": "auto", "tools": []})), "auto");

    // With only hosted tools, nothing about tools is left to say.
    let chat = chat_json(
        &translate(&json!({"model": "m", "input": "x", "tools": [{"type": "file_search"}], "tool_choice": "required",
            "parallel_tool_calls": false}))
        .chat,
    );
    for field in ["tools", "tool_choice", "parallel_tool_calls"] {
        assert!(chat.get(field).is_none(), "{field}: {chat}");
    }
}

#[test]
fn wrong_types_are_named_by_their_path() {
    let cases: [(&[u8], &str); 7] = [
        (br#"{"model":"m","input":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":7}]}"#, "input[2].content"),
        (br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":1}]}]}"#, "input[0].content[0].text"),
        (br#"{"model":"m","input":"x","temperature":"hot"}"#, "temperature"),
        (br#"{"model":"m","input":"x","tools":[{"type":"function","name":"f","strict":"yes"}]}"#, "tools[0].strict"),
        (br#"{"input":"x"}"#, "model"),
        (br#"{"model":"m","input":"#, ""),
        (br#"[1,2]"#, ""),
    ];
    for (body, param) in cases {
        let error = responses::parse(body).unwrap_err();
        assert_eq!(error.param, param, "{}: {}", String::from_utf8_lossy(body), error.message);
    }
    let semantic: [(&[u8], &str); 5] = [
        (br#"{"model":"m","input":[{"role":"user","content":"a"},{"type":"function_call","name":"f"}]}"#, "input[1].call_id"),
        (br#"{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":{}}]}"#, "input[0].arguments"),
        (br#"{"model":"m","input":[{"type":"function_call_output","call_id":"c","output":{"a":1}}]}"#, "input[0].output"),
        (br#"{"model":"m","input":[{"role":"robot","content":"a"}]}"#, "input[0].role"),
        (br#"{"model":"m","input":"x","tools":[{"type":"namespace","name":"n","tools":[{"type":"function","name":3}]}]}"#, "tools[0].tools[0].name"),
    ];
    for (body, param) in semantic {
        let error = translate_with(body, None, &DROP).unwrap_err();
        assert_eq!(error.param, param, "{}: {}", String::from_utf8_lossy(body), error.message);
    }
}

#[test]
fn request_accessors() {
    let request =
        responses::parse(br#"{"model":"m","input":"x","stream":true,"previous_response_id":"resp_1"}"#).unwrap();
    assert_eq!(request.model(), "m");
    assert!(request.stream());
    assert_eq!(request.previous_response_id(), Some("resp_1"));
    let request = responses::parse(br#"{"model":"m","input":"x"}"#).unwrap();
    assert!(!request.stream());
    assert_eq!(request.previous_response_id(), None);
}

fn completion(name: &str) -> ChatCompletion {
    serde_json::from_value(json_fixture(name)).unwrap()
}

const BILLED: Usage = Usage {
    prompt_tokens: 20,
    completion_tokens: 8,
    cached_tokens: 4,
    cache_write_tokens: 0,
    reasoning_tokens: 2,
    hosted: tokenrouter_core::HostedCalls { web_search: 0, web_fetch: 0 },
};

fn present(scenario: &str) -> Value {
    let translated = translate_with(&fixture("present.request.json"), None, &DROP).unwrap();
    let body = translated.surface.present(&completion(&format!("{scenario}.completion.json")), BILLED);
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn present_states_a_text_answer_as_a_whole_response_object() {
    let response = present("text");
    assert_eq!(response, json_fixture("text.response.json"), "{response:#}");
    assert!(response.get("output_text").is_none(), "output_text is computed by the SDKs, not sent");
}

#[test]
fn present_states_tool_calls_reasoning_refusals_and_cut_answers() {
    for scenario in ["tools", "reasoning", "length", "refusal"] {
        let response = present(scenario);
        let expected = json_fixture(&format!("{scenario}.output.json"));
        for field in ["status", "incomplete_details", "output"] {
            assert_eq!(response[field], expected[field], "{scenario}.{field}: {:#}", response[field]);
        }
        assert_eq!(response["usage"]["total_tokens"], 28);
    }
}

#[test]
fn sealed_reasoning_comes_back_as_thinking_blocks() {
    let response = present("reasoning");
    let reasoning = response["output"][0].clone();
    let body = json!({
        "model": "m",
        "input": [
            {"role": "user", "content": "Weather?"},
            reasoning,
            response["output"][1].clone(),
            {"role": "user", "content": "Thanks"},
            {"type": "reasoning", "id": "rs_x", "summary": [], "encrypted_content": "gAAAAopenai-encrypted"}
        ]
    });
    let chat = translate(&body).chat;
    let Message::Assistant(assistant) = &chat.messages[1] else { panic!("{:#?}", chat.messages) };
    let expected = completion("reasoning.completion.json").choices[0].message.thinking_blocks.clone();
    assert_eq!(assistant.thinking_blocks, expected);
    assert_eq!(assistant.reasoning_content.as_deref(), Some("The user wants the weather."));
    // OpenAI's own encrypted reasoning, with no text, leaves no assistant message.
    assert_eq!(chat.messages.len(), 3);
}

#[test]
fn a_conversation_continues_from_the_kept_record() {
    let first = translate_with(&fixture("present.request.json"), None, &DROP).unwrap();
    let answer = first.surface.present(&completion("tools.completion.json"), BILLED);
    let (id, first_record) = first.surface.keep(&answer).expect("stored by default");
    assert_eq!(id, "resp_test1");

    let second = json!({
        "model": "gpt-5-mini",
        "previous_response_id": "resp_test1",
        "instructions": "Now be thorough.",
        "tools": json_fixture("present.request.json")["tools"],
        "input": [
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": "Ada"}
        ]
    });
    let second_ids = Ids { response_id: "resp_test2".into(), created_at: 1_700_000_100 };
    let translated = responses::translate(
        responses::parse(second.to_string().as_bytes()).unwrap(),
        Some(std::slice::from_ref(&first_record)),
        second_ids,
        &DROP,
    )
    .unwrap();
    assert_eq!(
        chat_json(&translated.chat)["messages"],
        json!([
            {"role": "system", "content": "Now be thorough."},
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "crm__lookup", "arguments": "{\"email\":\"a@b.c\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "Ada"}
        ]),
        "the first instructions are not carried over"
    );

    // The second answer's record holds only what its turn added; the records of the
    // chain, oldest first, are the conversation for a third turn.
    let answer = translated.surface.present(&completion("text.completion.json"), BILLED);
    let (id, second_record) = translated.surface.keep(&answer).unwrap();
    assert_eq!(id, "resp_test2");
    let kept = String::from_utf8_lossy(&second_record);
    assert!(kept.contains("sunny") && !kept.contains("What is the weather in Paris?"), "{kept}");
    let third = json!({"model": "gpt-5-mini", "previous_response_id": "resp_test2", "input": "And tomorrow?"});
    let continued = |records: &[Vec<u8>]| {
        responses::translate(responses::parse(third.to_string().as_bytes()).unwrap(), Some(records), ids(), &DROP)
            .unwrap()
            .chat
    };
    let chat = continued(&[first_record.clone(), second_record.clone()]);
    assert_eq!(chat.messages.len(), 6);
    let Message::Assistant(last_answer) = &chat.messages[4] else { panic!() };
    assert_eq!(last_answer.content.as_ref().map(Content::text).as_deref(), Some("It is sunny in Paris."));

    // A record kept before chains held the whole conversation; it starts its chain and
    // reads the same.
    let mut whole: Value = serde_json::from_slice(&first_record).unwrap();
    let added: Value = serde_json::from_slice(&second_record).unwrap();
    whole["items"].as_array_mut().unwrap().extend(added["items"].as_array().unwrap().iter().cloned());
    assert_eq!(continued(&[serde_json::to_vec(&whole).unwrap()]), chat);
}

#[test]
fn nothing_is_kept_with_store_false_and_a_bad_record_is_refused() {
    let translated = translate(&json!({"model": "m", "input": "hi", "store": false}));
    let answer = translated.surface.present(&completion("text.completion.json"), BILLED);
    assert_eq!(translated.surface.keep(&answer), None);
    let response: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(response["store"], false);

    let body = br#"{"model":"m","input":"hi","previous_response_id":"resp_gone"}"#;
    let records = [b"not a record".to_vec(), br#"{"version":99,"items":[]}"#.to_vec()];
    for previous in [Some(&records[..1]), Some(&records[1..]), None] {
        let error = translate_with(body, previous, &DROP).unwrap_err();
        assert_eq!(error.param, "previous_response_id");
    }
}

#[test]
fn long_namespaced_names_fit_the_upstream_limit_and_come_back_whole() {
    let namespace = "mcp_server_with_a_rather_long_name_for_records";
    let name = "fetch_the_latest_records_for_a_customer";
    let body = json!({
        "model": "m",
        "store": false,
        "tools": [{"type": "namespace", "name": namespace, "description": "d", "tools": [
            {"type": "function", "name": name, "parameters": {"type": "object"}}
        ]}],
        "input": [
            {"role": "user", "content": "Records?"},
            {"type": "function_call", "call_id": "c1", "namespace": namespace, "name": name, "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "none yet"}
        ]
    });
    let translated = translate(&body);
    let flat = translated.chat.tools.as_ref().unwrap()[0].function.name.clone();
    assert!(flat.len() <= 64, "{flat}");
    assert!(flat.starts_with("mcp_server_with_a_rather_long_name_for_records__fetch"), "{flat}");
    let Message::Assistant(assistant) = &translated.chat.messages[1] else { panic!() };
    assert_eq!(assistant.tool_calls.as_ref().unwrap()[0].function.name, flat, "history maps to the same name");

    let completion: ChatCompletion = serde_json::from_value(json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": flat, "arguments": "{\"id\":1}"}}
        ]}, "logprobs": null, "finish_reason": "tool_calls"}]
    }))
    .unwrap();
    let response: Value = serde_json::from_slice(&translated.surface.present(&completion, BILLED)).unwrap();
    assert_eq!(response["output"][0]["name"], name);
    assert_eq!(response["output"][0]["namespace"], namespace);
}

#[test]
fn reasoning_is_sealed_when_asked_for_or_kept() {
    let sealed = |extra: Value| {
        let mut body = json!({"model": "m", "input": "x"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let response: Value =
            serde_json::from_slice(&translate(&body).surface.present(&completion("reasoning.completion.json"), BILLED))
                .unwrap();
        response["output"][0].get("encrypted_content").is_some()
    };
    assert!(!sealed(json!({"store": false})));
    assert!(sealed(json!({"store": false, "include": ["reasoning.encrypted_content"]})));
    assert!(sealed(json!({})), "a kept record hands the blocks back on the next turn");
}

/// Codex's second request of a tool turn, captured from Codex CLI 0.169 answering our own
/// stream: it hands back our reasoning item (sealed blocks) and function call.
#[test]
fn codex_hands_back_the_sealed_reasoning_with_its_tool_call() {
    let translated = translate_with(&fixture("codex_reasoning_turn.request.json"), None, &DROP).unwrap();
    let chat = chat_json(&translated.chat);
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 6);
    assert_eq!(
        messages[4],
        json!({
            "role": "assistant",
            "tool_calls": [{"id": "call_x1", "type": "function",
                            "function": {"name": "exec_command", "arguments": "{\"cmd\":\"echo tokenrouter-ok\"}"}}],
            "reasoning_content": "I should run echo.",
            "thinking_blocks": [{"type": "thinking", "thinking": "I should run echo.", "signature": "c2ln"}]
        })
    );
    assert_eq!(messages[5]["role"], "tool");
    assert_eq!(messages[5]["tool_call_id"], "call_x1");
    assert_eq!(translated.dropped_tools, ["web_search"]);
    let answer = translated.surface.present(&completion("text.completion.json"), BILLED);
    assert_eq!(translated.surface.keep(&answer), None, "Codex sends store: false");
}

/// The patch in `custom_tools.request.json`'s history: quotes, a dash, an accent and an
/// escaped newline (a backslash, then `n`) inside the patch text.
const HISTORY_PATCH: &str = "*** Begin Patch\n*** Add File: hello.txt\n+Hello, \"world\" — é\\n\n*** End Patch\n";

/// The schema every custom tool's function has.
fn raw_input_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The raw input for the tool"}},
        "required": ["input"],
        "additionalProperties": false
    })
}

#[test]
fn custom_tools_become_functions_of_their_raw_input() {
    let body = json_fixture("custom_tools.request.json");
    let translated = translate(&body);
    let chat = chat_json(&translated.chat);
    assert_eq!(translated.dropped_tools, ["web_search"], "custom tools are not dropped");

    let grammar = body["tools"][1]["format"]["definition"].as_str().unwrap();
    assert!(grammar.starts_with("start: begin_patch hunk+ end_patch\n"));
    assert_eq!(
        chat["tools"],
        json!([
            {"type": "function", "function": {
                "name": "shell",
                "description": "Runs a shell command and returns its output.",
                "parameters": body["tools"][0]["parameters"],
                "strict": false
            }},
            {"type": "function", "function": {
                "name": "apply_patch",
                "description": format!(
                    "Use the `apply_patch` tool to edit files. This is a FREEFORM tool, so do not wrap the patch in \
                     JSON.\n\nThe input must follow this lark grammar:\n{grammar}"
                ),
                "parameters": raw_input_parameters()
            }},
            {"type": "function", "function": {
                "name": "run_script",
                "description": "Runs a JavaScript snippet.",
                "parameters": raw_input_parameters()
            }}
        ])
    );
    assert_eq!(chat["tool_choice"], "auto");
    assert_eq!(chat["parallel_tool_calls"], false);

    // The custom call in the history is a tool call with `{"input": …}`; its output, a
    // tool message.
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "system", "content": "You are a coding agent running in a terminal."},
            {"role": "user", "content": [{"type": "text", "text": "Create hello.txt"}]},
            {"role": "assistant", "tool_calls": [{"id": "call_patch1", "type": "function", "function": {
                "name": "apply_patch",
                "arguments": r#"{"input":"*** Begin Patch\n*** Add File: hello.txt\n+Hello, \"world\" — é\\n\n*** End Patch\n"}"#
            }}]},
            {"role": "tool", "tool_call_id": "call_patch1", "content": body["input"][2]["output"]},
            {"role": "user", "content": [{"type": "text", "text": "Now fix the greeting in src/main.rs"}]}
        ])
    );
    let arguments = chat["messages"][2]["tool_calls"][0]["function"]["arguments"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(arguments).unwrap()["input"], HISTORY_PATCH);
}

#[test]
fn custom_tool_choices_and_namespaced_custom_tools() {
    let tools = json!([
        {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "regex", "definition": "^\\d+$"}},
        {"type": "namespace", "name": "editor", "description": "d", "tools": [
            {"type": "custom", "name": "insert", "description": "Inserts text."}
        ]}
    ]);
    let translated = translate(
        &json!({"model": "m", "input": "x", "tools": tools, "tool_choice": {"type": "custom", "name": "apply_patch"}}),
    );
    let chat = chat_json(&translated.chat);
    assert_eq!(chat["tool_choice"], json!({"type": "function", "function": {"name": "apply_patch"}}));
    assert_eq!(chat["tools"][0]["function"]["description"], "The input must follow this regex grammar:\n^\\d+$");
    assert_eq!(chat["tools"][1]["function"]["name"], "editor__insert");
    assert_eq!(chat["tools"][1]["function"]["description"], "Inserts text.");
    assert_eq!(chat["tools"][1]["function"]["parameters"], raw_input_parameters());

    let choice = |choice: Value| {
        let body = json!({"model": "m", "input": "x", "tools": tools, "tool_choice": choice});
        chat_json(&translate(&body).chat)["tool_choice"].clone()
    };
    let named = json!({"type": "function", "function": {"name": "editor__insert"}});
    assert_eq!(choice(json!({"type": "custom", "name": "insert"})), named, "unique inside its namespace");
    assert_eq!(choice(json!({"type": "custom", "name": "insert", "namespace": "editor"})), named);
    let error = translate_with(
        json!({"model": "m", "input": "x", "tools": tools, "tool_choice": {"type": "custom"}}).to_string().as_bytes(),
        None,
        &DROP,
    );
    assert_eq!(error.unwrap_err().param, "tool_choice.name");

    // A namespaced custom call in the history keeps its flattened name.
    let body = json!({"model": "m", "tools": tools, "input": [
        {"role": "user", "content": "Insert it"},
        {"type": "custom_tool_call", "call_id": "c1", "namespace": "editor", "name": "insert", "input": "line 1"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "done"}]}
    ]});
    let chat = chat_json(&translate(&body).chat);
    assert_eq!(
        chat["messages"][1]["tool_calls"][0]["function"],
        json!({"name": "editor__insert", "arguments": "{\"input\":\"line 1\"}"})
    );
    assert_eq!(chat["messages"][2], json!({"role": "tool", "tool_call_id": "c1", "content": "done"}));

    let error = translate_with(
        br#"{"model":"m","input":[{"type":"custom_tool_call","call_id":"c","name":"f","input":{"a":1}}]}"#,
        None,
        &DROP,
    );
    assert_eq!(error.unwrap_err().param, "input[0].input");
    let error =
        translate_with(br#"{"model":"m","input":[{"type":"custom_tool_call","name":"f","input":"x"}]}"#, None, &DROP);
    assert_eq!(error.unwrap_err().param, "input[0].call_id");
}

/// A patch as a model writes it: quotes, backslashes, a tab escape, accents and an emoji.
const PATCH: &str = "*** Begin Patch\n*** Update File: src/main.rs\n@@ fn main() {\n-    println!(\"Hello\");\n+    println!(\"Héllo, \\\"wörld\\\" 😀\\tok\");\n*** End Patch\n";

fn custom_call_completion() -> ChatCompletion {
    serde_json::from_value(json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-5-codex",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
            {"id": "call_patch2", "type": "function",
             "function": {"name": "apply_patch", "arguments": json!({"input": PATCH}).to_string()}},
            {"id": "call_js", "type": "function", "function": {"name": "run_script", "arguments": "console.log(1)"}},
            {"id": "call_run", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":[\"cargo\",\"run\"]}"}}
        ]}, "logprobs": null, "finish_reason": "tool_calls"}]
    }))
    .unwrap()
}

#[test]
fn present_states_custom_tool_calls_with_their_raw_input() {
    let translated = translate_with(&fixture("custom_tools.request.json"), None, &DROP).unwrap();
    let response: Value =
        serde_json::from_slice(&translated.surface.present(&custom_call_completion(), BILLED)).unwrap();
    assert_eq!(response["status"], "completed");
    assert_eq!(
        response["output"],
        json!([
            {"type": "custom_tool_call", "id": "ctc_test1_0", "call_id": "call_patch2", "name": "apply_patch",
             "input": PATCH, "status": "completed"},
            // Arguments that are not `{"input": "…"}` are the input as they are.
            {"type": "custom_tool_call", "id": "ctc_test1_1", "call_id": "call_js", "name": "run_script",
             "input": "console.log(1)", "status": "completed"},
            {"type": "function_call", "id": "fc_test1_2", "call_id": "call_run", "name": "shell",
             "arguments": "{\"command\":[\"cargo\",\"run\"]}", "status": "completed"}
        ])
    );

    // A namespaced custom tool's call names its namespace.
    let body = json!({"model": "m", "input": "x", "tools": [{"type": "namespace", "name": "editor", "description": "d",
        "tools": [{"type": "custom", "name": "insert"}]}]});
    let translated = translate(&body);
    let completion: ChatCompletion = serde_json::from_value(json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "editor__insert", "arguments": "{\"input\":\"a\\nb\"}"}}
        ]}, "logprobs": null, "finish_reason": "tool_calls"}]
    }))
    .unwrap();
    let response: Value = serde_json::from_slice(&translated.surface.present(&completion, BILLED)).unwrap();
    assert_eq!(
        response["output"][0],
        json!({"type": "custom_tool_call", "id": "ctc_test1_0", "call_id": "c1", "name": "insert", "namespace": "editor",
               "input": "a\nb", "status": "completed"})
    );
}

#[test]
fn a_custom_call_continues_from_the_kept_record() {
    let first = translate_with(&fixture("custom_tools.request.json"), None, &DROP).unwrap();
    let answer = first.surface.present(&custom_call_completion(), BILLED);
    let (id, record) = first.surface.keep(&answer).expect("stored by default");
    assert_eq!(id, "resp_test1");

    let second = json!({
        "model": "gpt-5-codex",
        "previous_response_id": "resp_test1",
        "tools": json_fixture("custom_tools.request.json")["tools"],
        "input": [
            {"type": "custom_tool_call_output", "call_id": "call_patch2", "output": "Success. Updated src/main.rs"},
            {"type": "custom_tool_call_output", "call_id": "call_js", "output": "1"},
            {"type": "function_call_output", "call_id": "call_run", "output": "Héllo"}
        ]
    });
    let translated =
        responses::translate(responses::parse(second.to_string().as_bytes()).unwrap(), Some(&[record]), ids(), &DROP)
            .unwrap();
    let chat = chat_json(&translated.chat);
    let messages = chat["messages"].as_array().unwrap();
    // The first request's conversation (no instructions), then the answer and the outputs.
    assert_eq!(messages.len(), 8, "{messages:#?}");
    assert_eq!(messages[0]["role"], "user", "the first instructions are not carried over");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_patch1");
    assert_eq!(
        messages[4],
        json!({"role": "assistant", "tool_calls": [
            {"id": "call_patch2", "type": "function",
             "function": {"name": "apply_patch", "arguments": json!({"input": PATCH}).to_string()}},
            {"id": "call_js", "type": "function",
             "function": {"name": "run_script", "arguments": "{\"input\":\"console.log(1)\"}"}},
            {"id": "call_run", "type": "function",
             "function": {"name": "shell", "arguments": "{\"command\":[\"cargo\",\"run\"]}"}}
        ]})
    );
    let arguments = messages[4]["tool_calls"][0]["function"]["arguments"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(arguments).unwrap()["input"], PATCH, "the patch survives the round trip");
    assert_eq!(
        messages[5],
        json!({"role": "tool", "tool_call_id": "call_patch2", "content": "Success. Updated src/main.rs"})
    );
    assert_eq!(messages[7]["tool_call_id"], "call_run");
}
