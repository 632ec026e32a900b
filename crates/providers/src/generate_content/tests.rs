//! Golden tests of the Gemini inbound surface, on request bodies from Google's documented
//! examples (ai.google.dev: text generation, function calling, image understanding,
//! thinking, structured output, embeddings).

use serde_json::{Value, json};
use tokenrouter_core::chat::{
    ChatCompletion, ChatCompletionChunk, Content as ChatContent, ContentPart, Message, ResponseFormat, ThinkingBlock,
    ToolChoice,
};
use tokenrouter_core::{ErrorEnvelope, Usage};

use super::*;
use crate::gemini::SIGNATURE_BLOCK;
use crate::surface::ChunkFeed;

fn call(stream: Option<StreamForm>) -> Call<'static> {
    Call {
        model: "gemini-2.5-flash",
        response_id: "resp-1".to_owned(),
        stream,
        unsupported_tools: UnsupportedTools::Drop,
    }
}

fn chat(body: Value) -> ChatRequest {
    translate(body.to_string().as_bytes(), call(None)).unwrap().chat
}

fn refused(body: Value) -> Unsupported {
    translate(body.to_string().as_bytes(), call(None)).unwrap_err()
}

#[test]
fn text_with_system_instruction_and_generation_config() {
    // "Text generation": system instructions and other configurations.
    let chat = chat(json!({
        "system_instruction": {"parts": [{"text": "You are a cat. Your name is Neko."}]},
        "contents": [{"parts": [{"text": "Hello there"}]}],
        "generationConfig": {"stopSequences": ["Title"], "temperature": 1.0, "topP": 0.8, "topK": 10,
                             "maxOutputTokens": 800, "candidateCount": 2, "seed": 7,
                             "thinkingConfig": {"thinkingBudget": 0}}
    }));
    assert_eq!(chat.model, "gemini-2.5-flash");
    assert!(
        matches!(&chat.messages[0], Message::System { content: ChatContent::Text(t), .. } if t == "You are a cat. Your name is Neko.")
    );
    assert!(matches!(&chat.messages[1], Message::User { content: ChatContent::Text(t), .. } if t == "Hello there"));
    assert_eq!(
        (chat.temperature, chat.top_p, chat.max_tokens, chat.n, chat.seed),
        (Some(1.0), Some(0.8), Some(800), Some(2), Some(7))
    );
    assert_eq!(chat.stop.unwrap().to_vec(), ["Title"]);
    assert_eq!(chat.reasoning_effort.as_deref(), Some("none"), "a budget of 0 turns thinking off");
    assert!(chat.extra.is_empty(), "topK is left out: {:?}", chat.extra);
    assert!(chat.stream.is_none());
}

#[test]
fn multi_turn_roles_and_images_become_chat_messages() {
    let chat = chat(json!({"contents": [
        {"role": "user", "parts": [{"text": "Hello"}]},
        {"role": "model", "parts": [{"text": "Great to meet you."}]},
        {"role": "user", "parts": [
            {"inline_data": {"mime_type": "image/jpeg", "data": "/9j/4AAQ"}},
            {"text": "Caption this image."}
        ]}
    ]}));
    assert_eq!(chat.messages.len(), 3);
    let Message::Assistant(model) = &chat.messages[1] else { panic!("{:?}", chat.messages[1]) };
    assert_eq!(model.content, Some(ChatContent::Text("Great to meet you.".to_owned())));
    let Message::User { content: ChatContent::Parts(parts), .. } = &chat.messages[2] else { panic!() };
    assert!(
        matches!(&parts[0], ContentPart::ImageUrl { image_url } if image_url.url == "data:image/jpeg;base64,/9j/4AAQ")
    );
    assert!(matches!(&parts[1], ContentPart::Text { text } if text == "Caption this image."));
}

#[test]
fn function_calling_round_trip_matches_responses_to_calls() {
    // "Function calling": an OpenAPI-subset declaration, forced with ANY + one name, and
    // the turn handed back with the call and its response (no ids, as Google sends them).
    let chat = chat(json!({
        "contents": [
            {"role": "user", "parts": [{"text": "Turn the lights down to a romantic level"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "set_light_values", "args": {"brightness": 25, "color_temp": "warm"}}},
                {"functionCall": {"name": "set_light_values", "args": {"brightness": 30}}, "thoughtSignature": "c2ln"}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "set_light_values", "response": {"brightness": 25}}},
                {"functionResponse": {"name": "set_light_values", "response": {"result": "ok"}}}
            ]}
        ],
        "tools": [{"functionDeclarations": [{
            "name": "set_light_values",
            "description": "Sets the brightness and color temperature of a light.",
            "parameters": {"type": "OBJECT", "properties": {
                "brightness": {"type": "INTEGER", "description": "Light level from 0 to 100"},
                "color_temp": {"type": "STRING", "enum": ["daylight", "cool", "warm"], "nullable": true}},
                "required": ["brightness"], "propertyOrdering": ["brightness", "color_temp"]}
        }]}, {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["set_light_values"]}}
    }));
    let tools = chat.tools.as_ref().unwrap();
    assert_eq!(
        tools[0].function.parameters,
        Some(json!({"type": "object", "properties": {
            "brightness": {"type": "integer", "description": "Light level from 0 to 100"},
            "color_temp": {"type": ["string", "null"], "enum": ["daylight", "cool", "warm"]}},
            "required": ["brightness"]}))
    );
    assert!(matches!(&chat.tool_choice, Some(ToolChoice::Named(n)) if n.function.name == "set_light_values"));
    let Message::Assistant(model) = &chat.messages[1] else { panic!() };
    let calls = model.tool_calls.as_ref().unwrap();
    assert_eq!([calls[0].id.as_str(), calls[1].id.as_str()], ["call_1_0", "call_1_1"]);
    assert_eq!(calls[0].function.arguments, r#"{"brightness":25,"color_temp":"warm"}"#);
    // Entry k is call k: the unsigned first call keeps its place.
    let blocks = model.thinking_blocks.as_ref().unwrap();
    assert_eq!(blocks.iter().map(|b| b.signature.as_deref()).collect::<Vec<_>>(), [None, Some("c2ln")]);
    assert!(blocks.iter().all(|b| b.kind == SIGNATURE_BLOCK));
    assert!(matches!(&chat.messages[2], Message::Tool { tool_call_id, content: ChatContent::Text(t) }
        if tool_call_id == "call_1_0" && t == r#"{"brightness":25}"#));
    assert!(matches!(&chat.messages[3], Message::Tool { tool_call_id, .. } if tool_call_id == "call_1_1"));
    let dropped = translate(
        json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]}).to_string().as_bytes(),
        call(None),
    )
    .unwrap()
    .dropped_tools;
    assert_eq!(dropped, ["googleSearch"]);
}

#[test]
fn modes_schemas_and_thinking_translate() {
    let base = |extra: Value| {
        let mut body = json!({"contents": [{"parts": [{"text": "x"}]}],
                              "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        chat(body)
    };
    let none = base(json!({"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}));
    assert_eq!(none.tool_choice, Some(ToolChoice::Mode("none".to_owned())));
    let two =
        base(json!({"toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["a", "c"]}}}));
    assert_eq!(two.tool_choice, Some(ToolChoice::Mode("required".to_owned())));
    assert_eq!(two.tools.unwrap().iter().map(|t| t.function.name.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    // "Structured output": responseSchema in the OpenAPI subset.
    let structured = base(json!({"generationConfig": {"responseMimeType": "application/json", "responseSchema":
        {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {"recipeName": {"type": "STRING"}}}}}}));
    let Some(ResponseFormat::JsonSchema { json_schema }) = structured.response_format else { panic!() };
    assert_eq!(
        json_schema.schema,
        Some(json!({"type": "array", "items": {"type": "object", "properties": {"recipeName": {"type": "string"}}}}))
    );
    let json_mode = base(json!({"generationConfig": {"responseMimeType": "application/json"}}));
    assert_eq!(json_mode.response_format, Some(ResponseFormat::JsonObject));
    for (config, effort) in [
        (json!({"thinkingBudget": 1024, "includeThoughts": true}), "low"),
        (json!({"thinkingBudget": -1}), "medium"),
        (json!({"thinkingBudget": 24576}), "high"),
        (json!({"thinkingLevel": "LOW"}), "low"),
    ] {
        let chat = base(json!({"generationConfig": {"thinkingConfig": config}}));
        assert_eq!(chat.reasoning_effort.as_deref(), Some(effort), "{config}");
    }
}

#[test]
fn what_cannot_be_expressed_is_refused_naming_the_field() {
    let text = json!([{"parts": [{"text": "x"}]}]);
    for (body, param) in [
        (json!({"contents": []}), "contents"),
        (json!({"contents": text, "cachedContent": "cachedContents/abc"}), "cachedContent"),
        (
            json!({"contents": text, "generationConfig": {"responseModalities": ["IMAGE"]}}),
            "generationConfig.responseModalities",
        ),
        (
            json!({"contents": text, "generationConfig": {"responseMimeType": "text/x.enum"}}),
            "generationConfig.responseMimeType",
        ),
        (json!({"contents": [{"parts": [{"executableCode": {"code": "print(1)"}}]}]}), "contents[0].parts[0]"),
        (
            json!({"contents": [{"parts": [{"inlineData": {"mimeType": "video/mp4", "data": "AAAA"}}]}]}),
            "contents[0].parts[0].inlineData.mimeType",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}),
            "contents[0].parts[0].functionResponse",
        ),
        (json!({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}), "contents[0].role"),
        (json!({"contents": [{"parts": [{"text": 5}]}]}), "contents[0].parts[0].text"),
    ] {
        let error = refused(body.clone());
        assert_eq!(error.param, param, "{body}: {}", error.message);
        assert!(!error.message.is_empty());
    }
    let reject = Call { unsupported_tools: UnsupportedTools::Reject, ..call(None) };
    let body = json!({"contents": text, "tools": [{"codeExecution": {}}]}).to_string();
    assert_eq!(translate(body.as_bytes(), reject).unwrap_err().param, "tools[0].codeExecution");
}

fn completion(message: Value, finish: &str) -> ChatCompletion {
    serde_json::from_value(json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}]}))
    .unwrap()
}

fn surface(body: Value, stream: Option<StreamForm>) -> GeminiSurface {
    translate(body.to_string().as_bytes(), call(stream)).unwrap().surface
}

const ASK: &str =
    r#"{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": {"includeThoughts": true}}}"#;

#[test]
fn answers_are_generate_content_responses() {
    let surface = surface(serde_json::from_str(ASK).unwrap(), None);
    let usage = Usage {
        prompt_tokens: 10,
        completion_tokens: 30,
        cached_tokens: 4,
        cache_write_tokens: 0,
        reasoning_tokens: 12,
        ..Usage::default()
    };
    let answer = completion(
        json!({"role": "assistant", "content": "Let me check.", "reasoning_content": "Thinking...",
               "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
               "thinking_blocks": [{"type": SIGNATURE_BLOCK, "signature": "Z2VtaW5p"}]}),
        "tool_calls",
    );
    let body: Value = serde_json::from_slice(&surface.present(&answer, usage)).unwrap();
    assert_eq!(
        body,
        json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Thinking...", "thought": true},
                {"text": "Let me check."},
                {"functionCall": {"id": "call_9", "name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "Z2VtaW5p"}
            ]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 18, "totalTokenCount": 40,
                              "cachedContentTokenCount": 4, "thoughtsTokenCount": 12},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "resp-1"
        })
    );
    let cut = completion(json!({"role": "assistant", "content": "Once upon"}), "length");
    let body: Value = serde_json::from_slice(&surface.present(&cut, Usage::default())).unwrap();
    assert_eq!(body["candidates"][0]["finishReason"], "MAX_TOKENS");
}

#[test]
fn other_providers_reasoning_rides_in_a_signature_and_comes_back() {
    // Without includeThoughts, no thought text is shown; the signed block still travels.
    let surface = surface(json!({"contents": [{"parts": [{"text": "x"}]}]}), None);
    let block = ThinkingBlock {
        kind: "thinking".to_owned(),
        thinking: Some("hmm".to_owned()),
        signature: Some("sig-A".to_owned()),
        data: None,
    };
    let answer = completion(
        json!({"role": "assistant", "content": null, "reasoning_content": "hmm", "thinking_blocks": [block],
               "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}),
        "tool_calls",
    );
    let body: Value = serde_json::from_slice(&surface.present(&answer, Usage::default())).unwrap();
    let parts = body["candidates"][0]["content"]["parts"].clone();
    assert_eq!(parts.as_array().unwrap().len(), 1, "{parts}");
    assert!(parts[0]["thoughtSignature"].is_string());
    let again = chat(json!({"contents": [
        {"role": "user", "parts": [{"text": "x"}]},
        {"role": "model", "parts": parts},
        {"role": "user", "parts": [{"functionResponse": {"id": "toolu_1", "name": "f", "response": {"ok": true}}}]}
    ]}));
    let Message::Assistant(model) = &again.messages[1] else { panic!() };
    assert_eq!(model.thinking_blocks.as_deref(), Some(&[block][..]));
    assert_eq!(model.tool_calls.as_ref().unwrap()[0].id, "toolu_1");
    assert!(matches!(&again.messages[2], Message::Tool { tool_call_id, .. } if tool_call_id == "toolu_1"));
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk: ChatCompletionChunk = serde_json::from_value(json!({"id": "c", "object": "chat.completion.chunk",
        "created": 1, "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
    .unwrap();
    format!("data: {}\n\n", serde_json::to_string(&chunk).unwrap())
}

fn streamed(form: StreamForm, canonical: &[String]) -> String {
    let surface = surface(serde_json::from_str(ASK).unwrap(), Some(form));
    let mut feed = ChunkFeed::new(surface.stream());
    let mut out = Vec::new();
    for piece in canonical {
        feed.feed(piece.as_bytes(), &mut out).unwrap();
    }
    feed.finish(Usage { prompt_tokens: 5, completion_tokens: 7, ..Usage::default() }, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn streams_are_sse_events_or_a_json_array_ending_with_finish_and_usage() {
    let canonical = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"reasoning_content": "Hmm."}), None),
        chunk(json!({"content": "Hello"}), None),
        chunk(json!({"content": " world"}), None),
        chunk(json!({}), Some("stop")),
    ];
    let sse = streamed(StreamForm::Sse, &canonical);
    let events: Vec<Value> = sse
        .split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let array: Vec<Value> = serde_json::from_str(&streamed(StreamForm::Array, &canonical)).unwrap();
    assert_eq!(events, array, "the same events either way");
    let parts: Vec<&Value> =
        events.iter().flat_map(|e| e["candidates"][0]["content"]["parts"].as_array().unwrap()).collect();
    assert_eq!(
        parts,
        [&json!({"text": "Hmm.", "thought": true}), &json!({"text": "Hello"}), &json!({"text": " world"})]
    );
    let last = events.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["candidates"][0]["content"]["parts"], json!([{"text": " world"}]), "the last event carries text");
    assert_eq!(last["usageMetadata"], json!({"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12}));
    assert!(events.iter().all(|e| e["responseId"] == "resp-1" && e["modelVersion"] == "gemini-2.5-flash"));

    // Calls arrive whole in the last event.
    let calls = [
        chunk(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            None,
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Some("tool_calls")),
    ];
    let array: Vec<Value> = serde_json::from_str(&streamed(StreamForm::Array, &calls)).unwrap();
    assert_eq!(array.len(), 1);
    assert_eq!(
        array[0]["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}}])
    );
}

#[test]
fn a_failed_stream_ends_with_an_error_in_googles_shape() {
    let surface = surface(serde_json::from_str(ASK).unwrap(), Some(StreamForm::Array));
    let mut stream = surface.stream();
    let mut out = Vec::new();
    stream.fail("The upstream stream broke off", &mut out);
    let array: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        array,
        [json!({"error": {"code": 500, "message": "The upstream stream broke off", "status": "INTERNAL"}})]
    );
}

#[test]
fn errors_take_googles_shape() {
    let envelope = ErrorEnvelope::new("invalid_request_error", "invalid_request", "Bad thing.", Some("contents[0]"));
    let body: Value = serde_json::from_slice(&error_body(400, &envelope)).unwrap();
    assert_eq!(body["error"]["code"], 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(body["error"]["message"], "Bad thing.");
    assert_eq!(body["error"]["details"][0]["fieldViolations"][0]["field"], "contents[0]");
    for (status, rpc) in [
        (401, "UNAUTHENTICATED"),
        (402, "RESOURCE_EXHAUSTED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (502, "UNAVAILABLE"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ] {
        assert_eq!(rpc_status(status), rpc, "{status}");
    }
}

#[test]
fn count_tokens_reads_both_forms_and_embeddings_translate_both_ways() {
    let plain = count_tokens_request(br#"{"contents": [{"parts": [{"text": "The quick brown fox"}]}]}"#, "m").unwrap();
    let wrapped = count_tokens_request(
        br#"{"generateContentRequest": {"model": "models/m", "contents": [{"parts": [{"text": "The quick brown fox"}]}]}}"#,
        "m",
    )
    .unwrap();
    assert_eq!(plain, wrapped);
    // "Embeddings": embedContent and batchEmbedContents.
    let one = embed_request(br#"{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "What is the meaning of life?"}]}, "outputDimensionality": 8}"#, "gemini-embedding-001", EmbedKind::One).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&one).unwrap(),
        json!({"model": "gemini-embedding-001", "input": ["What is the meaning of life?"], "encoding_format": "float", "dimensions": 8})
    );
    let batch = br#"{"requests": [{"model": "models/e", "content": {"parts": [{"text": "a"}]}}, {"model": "models/other", "content": {"parts": [{"text": "b"}]}}]}"#;
    assert_eq!(embed_request(batch, "e", EmbedKind::Batch).unwrap_err().param, "requests[1].model");
    let openai = br#"{"object": "list", "data": [{"object": "embedding", "index": 1, "embedding": [0.5]}, {"object": "embedding", "index": 0, "embedding": [0.25, 1.0]}], "model": "e", "usage": {"prompt_tokens": 2, "total_tokens": 2}}"#;
    let answer: Value = serde_json::from_slice(&embed_answer(openai, EmbedKind::Batch).unwrap()).unwrap();
    assert_eq!(answer, json!({"embeddings": [{"values": [0.25, 1.0]}, {"values": [0.5]}]}));
    let answer: Value = serde_json::from_slice(&embed_answer(openai, EmbedKind::One).unwrap()).unwrap();
    assert_eq!(answer, json!({"embedding": {"values": [0.25, 1.0]}}));
}
