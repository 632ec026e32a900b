//! The other inbound surfaces — Responses, Anthropic Messages, legacy completions,
//! embeddings — against every provider kind: translated both ways, streamed in their own
//! event formats, and put through the same auth, policy, limits and billing as chat.

use serde_json::{Value, json};
use tokenrouter_core::NanoUsd;

use crate::harness::{Gateway, NATIVE_KINDS, key_for, request_id};

/// Models beyond one chat model per kind (`NATIVE_KINDS`).
const KINDS: &str = r#"
[[models]]
id = "claude-cut"
context_window = 200000
max_output_tokens = 4096
input_price = 1
output_price = 5
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock@fault=cut:2" } ]

[[models]]
id = "text-embedding-3-small"
deployments = [ { provider = "mock", upstream_model = "text-embedding-3-small" } ]

[[models]]
id = "gemini-embedding-001"
deployments = [ { provider = "gemini-mock", upstream_model = "gemini-embedding-001" } ]

[[models]]
id = "claude-embed"
context_window = 8000
max_output_tokens = 1
input_price = 1
output_price = 1
capabilities = ["embeddings"]
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock" } ]
"#;

/// One chat model of each provider kind.
const MODELS: [(&str, &str); 3] =
    [("gpt-4o-mini", "mock"), ("claude-haiku-4-5", "anthropic-mock"), ("gemini-2.0-flash", "gemini-mock")];

async fn gateway() -> Gateway {
    let config = format!("[server]\nresponse_retention_secs = 3600\n{NATIVE_KINDS}{KINDS}");
    Gateway::start_with(tokenrouter_mock::MockConfig::default(), &config).await
}

/// The `(event name, data)` pairs of an SSE body.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .filter_map(|event| {
            let name = event.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("").to_owned();
            let data = event.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name, serde_json::from_str(data).unwrap_or(Value::String(data.to_owned()))))
        })
        .collect()
}

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

#[tokio::test]
async fn responses_answer_in_responses_shape_from_every_provider_kind() {
    let gw = gateway().await;
    for (model, provider) in MODELS {
        let response = gw
            .post("/v1/responses")
            .json(&json!({"model": model, "input": "Say something", "instructions": "Be brief."}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{model}");
        assert_eq!(response.headers()["x-tokenrouter-provider"], provider);
        let id = request_id(&response);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "response", "{body}");
        assert_eq!(body["status"], "completed", "{body}");
        assert!(body["id"].as_str().unwrap().starts_with("resp_"));
        // As on chat: the model as the upstream names it for OpenAI-compatible ones.
        assert!(body["model"].as_str().is_some_and(|m| !m.is_empty()));
        let message = body["output"].as_array().unwrap().iter().find(|i| i["type"] == "message").unwrap();
        assert!(!message["content"][0]["text"].as_str().unwrap().is_empty(), "{body}");
        let usage = &body["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{body}");
        assert!(usage["output_tokens"].as_u64().unwrap() > 0, "{body}");
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
        );
        let row = gw.usage(&id).await;
        assert_eq!(row.endpoint, "responses");
        assert_eq!(row.usage.prompt_tokens, usage["input_tokens"].as_u64().unwrap(), "billed what it reported");
        assert!(row.cost > NanoUsd(0));
    }
}

#[tokio::test]
async fn responses_stream_the_full_event_sequence_and_bill_it() {
    let gw = gateway().await;
    for (model, _) in MODELS {
        let response = gw
            .post("/v1/responses")
            .json(&json!({"model": model, "input": "Hi", "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let id = request_id(&response);
        let events = events(&response.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        let expected_start = [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
        ];
        assert_eq!(names[..5], expected_start, "{model}: {names:?}");
        let tail = &names[names.len() - 4..];
        assert_eq!(
            tail,
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ],
            "{model}: {names:?}"
        );
        for (i, (name, data)) in events.iter().enumerate() {
            assert_eq!(data["type"], name.as_str());
            assert_eq!(data["sequence_number"], i, "{model}: sequence numbers count from 0");
        }
        let deltas: String = events
            .iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        let done = events.iter().find(|(n, _)| n == "response.output_text.done").unwrap();
        assert_eq!(done.1["text"], deltas.as_str());
        let completed = &events.last().unwrap().1["response"];
        assert_eq!(completed["status"], "completed");
        let output_tokens = completed["usage"]["output_tokens"].as_u64().unwrap();
        assert!(output_tokens > 0);
        let row = gw.usage(&id).await;
        assert_eq!(row.endpoint, "responses");
        assert!(row.stream);
        assert_eq!(row.usage.completion_tokens, output_tokens);
    }
}

#[tokio::test]
async fn responses_function_calls_round_trip_through_every_provider_kind() {
    let gw = gateway().await;
    for (model, _) in MODELS {
        let first: Value = gw
            .post_json(
                "/v1/responses",
                json!({"model": model, "input": "Weather in Paris?", "tools": [weather_tool()]}),
            )
            .await;
        let call = first["output"].as_array().unwrap().iter().find(|i| i["type"] == "function_call").cloned();
        let call = call.unwrap_or_else(|| panic!("{model}: no function call in {first}"));
        assert_eq!(call["name"], "get_weather");
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert!(arguments["city"].is_string());
        let second = gw
            .post("/v1/responses")
            .json(&json!({"model": model, "tools": [weather_tool()], "input": [
                {"role": "user", "content": "Weather in Paris?"},
                call,
                {"type": "function_call_output", "call_id": call["call_id"], "output": "18 C and sunny"},
            ]}))
            .send()
            .await
            .unwrap();
        assert_eq!(second.status(), 200, "{model}");
        let second: Value = second.json().await.unwrap();
        let message = second["output"].as_array().unwrap().iter().find(|i| i["type"] == "message");
        assert!(message.is_some(), "{model}: the tool result is answered with text: {second}");
    }
}

#[tokio::test]
async fn previous_response_id_continues_a_stored_response_and_unknown_ids_are_refused() {
    let gw = gateway().await;
    let first: Value =
        gw.post_json("/v1/responses", json!({"model": "claude-haiku-4-5", "input": "Remember the word teapot."})).await;
    let id = first["id"].as_str().unwrap();
    let second = gw
        .post("/v1/responses")
        .json(&json!({"model": "claude-haiku-4-5", "input": "What was the word?", "previous_response_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["previous_response_id"], id);
    // The upstream saw the whole conversation: the first question, its answer, the new one.
    let sent = gw.mock.stats().last_request().unwrap().body;
    let text = sent.to_string();
    assert!(text.contains("teapot") && text.contains("What was the word?"), "{text}");
    let first_answer = first["output"].as_array().unwrap().iter().find(|i| i["type"] == "message").unwrap()["content"]
        [0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains(&first_answer), "the previous answer is part of the history");

    let unknown = gw
        .post("/v1/responses")
        .json(&json!({"model": "gpt-4o-mini", "input": "x", "previous_response_id": "resp_nope"}))
        .send()
        .await
        .unwrap();
    let body = crate::harness::expect_error(unknown, 400, "invalid_request").await;
    assert_eq!(body["error"]["param"], "previous_response_id");

    // `store: false` keeps nothing to continue from.
    let unstored: Value =
        gw.post_json("/v1/responses", json!({"model": "gpt-4o-mini", "input": "x", "store": false})).await;
    let after = gw
        .post("/v1/responses")
        .json(&json!({"model": "gpt-4o-mini", "input": "y", "previous_response_id": unstored["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 400);

    // Another account's key cannot continue it.
    let other = gw.db.create_account("other", NanoUsd::parse_usd("10").unwrap()).await.unwrap();
    let (key, secret) = key_for(other.id);
    gw.add_key(&key).await;
    let foreign = gw
        .http
        .post(format!("{}/v1/responses", gw.url))
        .bearer_auth(secret)
        .json(&json!({"model": "gpt-4o-mini", "input": "z", "previous_response_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 400);
}

#[tokio::test]
async fn hosted_tools_are_dropped_and_named_or_refused_when_configured() {
    let gw = gateway().await;
    let body = json!({"model": "gpt-4o-mini", "input": "search", "store": false, "client_metadata": {"a": "b"},
                      "prompt_cache_key": "k", "include": ["reasoning.encrypted_content"], "text": {"verbosity": "low"},
                      "tools": [weather_tool(), {"type": "web_search"}]});
    let response = gw.post("/v1/responses").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tokenrouter-dropped-tools"], "web_search");
    let sent = gw.mock.stats().last_request().unwrap().body;
    assert_eq!(sent["tools"].as_array().unwrap().len(), 1, "only the function reached the upstream: {sent}");

    let strict = Gateway::start_with(Default::default(), "[server]\nunsupported_tools = \"reject\"\n").await;
    let refused = strict.post("/v1/responses").json(&body).send().await.unwrap();
    let error = crate::harness::expect_error(refused, 400, "invalid_request").await;
    assert_eq!(error["error"]["param"], "tools[1].type");
    assert!(error["error"]["message"].as_str().unwrap().contains("web_search"));
}

#[tokio::test]
async fn a_responses_stream_that_breaks_ends_with_response_failed_and_bills_what_was_sent() {
    let gw = gateway().await;
    let response = gw
        .post("/v1/responses")
        .json(&json!({"model": "claude-cut", "input": "Hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let events = events(&response.text().await.unwrap());
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "response.failed", "{events:?}");
    assert_eq!(data["response"]["status"], "failed");
    assert!(data["response"]["error"]["message"].is_string());
    let row = gw.usage(&id).await;
    assert!(row.usage.completion_tokens >= 2, "the delivered tokens are billed");
}

#[tokio::test]
async fn messages_answer_in_anthropic_shape_from_every_provider_kind() {
    let gw = gateway().await;
    for (model, provider) in MODELS {
        let response = gw
            .http
            .post(format!("{}/v1/messages?beta=true", gw.url))
            .header("x-api-key", &gw.key)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14")
            .json(&json!({"model": model, "max_tokens": 256,
                          "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                          "messages": [{"role": "user", "content": "Hello"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{model}");
        assert_eq!(response.headers()["x-tokenrouter-provider"], provider);
        let id = request_id(&response);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "message", "{body}");
        assert_eq!(body["role"], "assistant");
        assert_eq!(body["stop_reason"], "end_turn");
        assert_eq!(body["content"][0]["type"], "text");
        assert!(body["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert!(body["usage"]["output_tokens"].as_u64().unwrap() > 0);
        assert_eq!(gw.usage(&id).await.endpoint, "messages");
    }
}

#[tokio::test]
async fn messages_stream_in_anthropic_events_and_tools_round_trip() {
    let gw = gateway().await;
    for (model, _) in MODELS {
        let response = gw
            .post("/v1/messages")
            .json(&json!({"model": model, "max_tokens": 256, "stream": true,
                          "messages": [{"role": "user", "content": "Hello"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let events = events(&response.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).filter(|n| *n != "ping").collect();
        assert_eq!(names[..2], ["message_start", "content_block_start"], "{model}: {names:?}");
        assert_eq!(names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"], "{names:?}");
        let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
        assert_eq!(delta.1["delta"]["stop_reason"], "end_turn");
        assert!(delta.1["usage"]["output_tokens"].as_u64().unwrap() > 0);

        let tool = json!({"name": "get_weather", "description": "Weather",
                          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}});
        let first: Value = gw
            .post_json(
                "/v1/messages",
                json!({"model": model, "max_tokens": 256, "tools": [tool],
                          "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
            )
            .await;
        assert_eq!(first["stop_reason"], "tool_use", "{model}: {first}");
        let call = first["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap().clone();
        assert!(call["input"]["city"].is_string());
        let second = gw
            .post("/v1/messages")
            .json(&json!({"model": model, "max_tokens": 256, "tools": [tool], "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": first["content"]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "18 C"}]},
            ]}))
            .send()
            .await
            .unwrap();
        assert_eq!(second.status(), 200);
        let second: Value = second.json().await.unwrap();
        assert_eq!(second["stop_reason"], "end_turn", "{model}: {second}");
    }
}

#[tokio::test]
async fn messages_errors_take_anthropics_shape_and_count_tokens_answers() {
    let gw = gateway().await;
    let unauthorized = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", "sk-tr-wrong")
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 10, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let body: Value = unauthorized.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(body["error"]["message"].is_string());

    let unknown = gw
        .post("/v1/messages")
        .json(&json!({"model": "nope", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");

    let counted = gw
        .post("/v1/messages/count_tokens")
        .json(
            &json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "one two three four five"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(counted.status(), 200);
    let counted: Value = counted.json().await.unwrap();
    let tokens = counted["input_tokens"].as_u64().unwrap();
    assert!((5..40).contains(&tokens), "{counted}");
}

#[tokio::test]
async fn legacy_completions_pass_through_or_become_a_single_turn_chat() {
    let gw = gateway().await;
    for (model, _) in MODELS {
        let response = gw
            .post("/v1/completions")
            .json(&json!({"model": model, "prompt": "Once upon a time", "max_tokens": 8}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{model}");
        let id = request_id(&response);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "text_completion", "{body}");
        assert!(!body["choices"][0]["text"].as_str().unwrap().is_empty());
        assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        assert_eq!(gw.usage(&id).await.endpoint, "completions");

        let stream = gw
            .post("/v1/completions")
            .json(&json!({"model": model, "prompt": "Once", "max_tokens": 8, "stream": true,
                          "stream_options": {"include_usage": true}}))
            .send()
            .await
            .unwrap();
        let text = stream.text().await.unwrap();
        assert!(text.trim_end().ends_with("data: [DONE]"), "{model}: {text}");
        let chunks: Vec<Value> = events(&text).into_iter().map(|(_, d)| d).filter(|d| d.is_object()).collect();
        assert!(chunks.iter().all(|c| c["object"] == "text_completion"), "{text}");
        assert!(chunks.last().unwrap()["usage"]["total_tokens"].as_u64().unwrap() > 0, "{text}");
    }
    // Token-id prompts reach OpenAI-compatible upstreams as they are; other providers
    // cannot take them.
    let tokens = json!({"prompt": [[1, 2, 3]], "max_tokens": 4});
    let mut openai = tokens.clone();
    openai["model"] = json!("gpt-4o-mini");
    assert_eq!(gw.post("/v1/completions").json(&openai).send().await.unwrap().status(), 200);
    let mut claude = tokens;
    claude["model"] = json!("claude-haiku-4-5");
    let refused = gw.post("/v1/completions").json(&claude).send().await.unwrap();
    crate::harness::expect_error(refused, 400, "invalid_request").await;
}

#[tokio::test]
async fn embeddings_pass_through_or_translate_and_bill_input_tokens() {
    let gw = gateway().await;
    for model in ["text-embedding-3-small", "gemini-embedding-001"] {
        let response = gw
            .post("/v1/embeddings")
            .json(&json!({"model": model, "input": ["first text", "second text"], "dimensions": 8}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{model}");
        let id = request_id(&response);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "list");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[1]["index"], 1);
        assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 8, "{model}: dimensions honoured");
        let row = gw.usage(&id).await;
        assert_eq!(row.endpoint, "embeddings");
        assert!(row.usage.prompt_tokens > 0);
        assert_eq!(row.usage.completion_tokens, 0);
        assert!(row.cost > NanoUsd(0), "{model}: billed by input tokens");

        let base64: Value = gw
            .post_json(
                "/v1/embeddings",
                json!({"model": model, "input": "one", "encoding_format": "base64", "dimensions": 4}),
            )
            .await;
        let text = base64["data"][0]["embedding"].as_str().unwrap();
        assert_eq!(text.len(), 24, "four little-endian f32s in base64: {text}");
    }
    let anthropic =
        gw.post("/v1/embeddings").json(&json!({"model": "claude-embed", "input": "x"})).send().await.unwrap();
    crate::harness::expect_error(anthropic, 400, "invalid_request").await;
    let chat_model =
        gw.post("/v1/embeddings").json(&json!({"model": "gpt-4o-mini", "input": "x"})).send().await.unwrap();
    crate::harness::expect_error(chat_model, 400, "invalid_request").await;
    let embed_as_chat =
        gw.chat(json!({"model": "text-embedding-3-small", "messages": [{"role": "user", "content": "x"}]})).await;
    crate::harness::expect_error(embed_as_chat, 400, "invalid_request").await;
}

#[tokio::test]
async fn no_surface_bypasses_scopes_or_billing() {
    let gw = gateway().await;
    let (mut key, secret) = key_for(gw.account_id);
    key.models = vec!["gemini-2.0-flash".to_owned()];
    gw.add_key(&key).await;
    let requests = [
        ("/v1/responses", json!({"model": "gpt-4o-mini", "input": "x"})),
        (
            "/v1/messages",
            json!({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        ),
        ("/v1/completions", json!({"model": "gpt-4o-mini", "prompt": "x"})),
        ("/v1/embeddings", json!({"model": "text-embedding-3-small", "input": "x"})),
    ];
    for (path, body) in &requests {
        let response = gw.http.post(format!("{}{path}", gw.url)).bearer_auth(&secret).json(body).send().await.unwrap();
        assert_eq!(response.status(), 403, "{path}: the key's model scope applies");
    }
    // An empty account is refused before any upstream call, on every surface.
    let broke = gw.db.create_account("broke", NanoUsd(0)).await.unwrap();
    let (key, secret) = key_for(broke.id);
    gw.add_key(&key).await;
    let before = gw.mock.stats().request_count();
    for (path, body) in &requests {
        let response = gw.http.post(format!("{}{path}", gw.url)).bearer_auth(&secret).json(body).send().await.unwrap();
        assert_eq!(response.status(), 402, "{path}: prepaid billing applies");
    }
    assert_eq!(gw.mock.stats().request_count(), before);
}

#[tokio::test]
async fn bad_bodies_on_every_surface_get_a_clear_400_and_reach_no_upstream() {
    let gw = gateway().await;
    let cases = [
        ("/v1/responses", json!({"model": "gpt-4o-mini", "input": []}), Some("input")),
        ("/v1/responses", json!({"model": 5, "input": "x"}), Some("model")),
        ("/v1/responses", json!({"model": "gpt-4o-mini", "input": "x", "tools": "no"}), Some("tools")),
        (
            "/v1/messages",
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}),
            Some("max_tokens"),
        ),
        ("/v1/messages", json!({"model": "gpt-4o-mini", "max_tokens": 5, "messages": "x"}), Some("messages")),
        ("/v1/completions", json!({"model": "gpt-4o-mini"}), Some("prompt")),
        ("/v1/embeddings", json!({"model": "text-embedding-3-small", "input": ""}), Some("input")),
        ("/v1/embeddings", json!({"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"}), None),
    ];
    for (path, body, param) in cases {
        let response = gw.post(path).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path} {body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{path} {body}: {error}");
        if path == "/v1/messages" {
            assert_eq!(error["type"], "error", "Anthropic's shape on /v1/messages: {error}");
            assert_eq!(error["error"]["type"], "invalid_request_error");
        } else if let Some(param) = param {
            let named = error["error"]["param"].as_str().unwrap_or_default();
            assert!(named.starts_with(param), "{path} {body}: param {named:?}, expected {param}");
        }
    }
    for path in ["/v1/responses", "/v1/messages", "/v1/completions", "/v1/embeddings"] {
        let response = gw.post(path).body("{not json").header("content-type", "application/json").send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
    }
    assert_eq!(gw.mock.stats().request_count(), 0);
    assert_eq!(gw.answered_count().await, 0, "refused input is only logged, at no cost");
}

const NATIVE_RESPONSES: &str = r#"
[[providers]]
name = "responses-mock"
kind = "openai"
base_url = "{mock}/v1"
responses_api = true

[[models]]
id = "gpt-5"
context_window = 400000
max_output_tokens = 128000
input_price = 1.25
output_price = 10
deployments = [ { provider = "responses-mock", upstream_model = "mock-gpt-5" } ]

[[models]]
id = "gpt-5-cut"
context_window = 400000
max_output_tokens = 128000
input_price = 1.25
output_price = 10
deployments = [ { provider = "responses-mock", upstream_model = "mock-gpt-5@fault=cut:3" } ]
"#;

#[tokio::test]
async fn an_upstream_that_speaks_responses_gets_the_request_untranslated() {
    let gw = Gateway::start_with(Default::default(), NATIVE_RESPONSES).await;
    let body = json!({"model": "gpt-5", "input": "Search the news", "store": false,
                      "tools": [weather_tool(), {"type": "web_search"}], "reasoning": {"effort": "low", "summary": "auto"}});
    let response = gw.post("/v1/responses").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("x-tokenrouter-dropped-tools"), "nothing was dropped");
    let id = request_id(&response);
    let answer: Value = response.json().await.unwrap();
    let sent = gw.mock.stats().last_request().unwrap();
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(sent.body["model"], "mock-gpt-5");
    assert_eq!(sent.body["tools"][1]["type"], "web_search", "hosted tools reach an upstream that runs them");
    assert_eq!(sent.body["reasoning"]["effort"], "low");
    let row = gw.usage(&id).await;
    assert_eq!(row.endpoint, "responses");
    assert_eq!(row.usage.prompt_tokens, answer["usage"]["input_tokens"].as_u64().unwrap());
    assert_eq!(row.usage.completion_tokens, answer["usage"]["output_tokens"].as_u64().unwrap());
    assert!(row.usage.completion_tokens > 0 && row.cost > NanoUsd(0));

    let stream =
        gw.post("/v1/responses").json(&json!({"model": "gpt-5", "input": "Hi", "stream": true})).send().await.unwrap();
    let id = request_id(&stream);
    let events = events(&stream.text().await.unwrap());
    let (last, completed) = events.last().unwrap();
    assert_eq!(last, "response.completed");
    let row = gw.usage(&id).await;
    assert!(row.stream);
    assert_eq!(row.usage.completion_tokens, completed["response"]["usage"]["output_tokens"].as_u64().unwrap());

    // An id this account never got here is refused, not passed on: the upstream would
    // answer it for any account.
    let before = gw.mock.stats().request_count();
    let unknown = gw
        .post("/v1/responses")
        .json(&json!({"model": "gpt-5", "input": "more", "previous_response_id": "resp_upstream_1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    assert_eq!(gw.mock.stats().request_count(), before);

    // A response the upstream served (and keeps) is continued there, by its own account.
    let served: Value = gw.post_json("/v1/responses", json!({"model": "gpt-5", "input": "Remember teapot"})).await;
    let upstream_id = served["id"].as_str().unwrap();
    let continued = gw
        .post("/v1/responses")
        .json(&json!({"model": "gpt-5", "input": "more", "previous_response_id": upstream_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(continued.status(), 200);
    assert_eq!(gw.mock.stats().last_request().unwrap().body["previous_response_id"], upstream_id);
    let fetched = gw.http.get(format!("{}/v1/responses/{upstream_id}", gw.url)).bearer_auth(&gw.key).send().await;
    assert_eq!(fetched.unwrap().json::<Value>().await.unwrap(), served);
    // A streamed one too, recorded from its final event.
    let completed = &events.last().unwrap().1["response"];
    let streamed_id = completed["id"].as_str().unwrap();
    let fetched = gw.http.get(format!("{}/v1/responses/{streamed_id}", gw.url)).bearer_auth(&gw.key).send().await;
    assert_eq!(&fetched.unwrap().json::<Value>().await.unwrap(), completed);

    let other = gw.db.create_account("other", NanoUsd::parse_usd("1").unwrap()).await.unwrap();
    let (key, secret) = key_for(other.id);
    gw.add_key(&key).await;
    let before = gw.mock.stats().request_count();
    let foreign = gw
        .http
        .post(format!("{}/v1/responses", gw.url))
        .bearer_auth(&secret)
        .json(&json!({"model": "gpt-5", "input": "what did they say?", "previous_response_id": upstream_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 400, "another account cannot continue it");
    assert_eq!(gw.mock.stats().request_count(), before);
}

#[tokio::test]
async fn a_native_responses_stream_that_breaks_ends_with_an_error_event_that_continues_the_count() {
    let gw = Gateway::start_with(Default::default(), NATIVE_RESPONSES).await;
    let response = gw
        .post("/v1/responses")
        .json(&json!({"model": "gpt-5-cut", "input": "Hi", "stream": true}))
        .send()
        .await
        .unwrap();
    let id = request_id(&response);
    let events = events(&response.text().await.unwrap());
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error", "{events:?}");
    let before = &events[events.len() - 2].1;
    assert_eq!(data["sequence_number"].as_u64(), before["sequence_number"].as_u64().map(|n| n + 1));
    let row = gw.usage(&id).await;
    assert!(row.usage.completion_tokens >= 3, "the delivered deltas are billed: {:?}", row.usage);
}

#[tokio::test]
async fn kept_responses_can_be_retrieved_and_deleted_by_their_account_only() {
    let gw = gateway().await;
    let created: Value = gw.post_json("/v1/responses", json!({"model": "claude-haiku-4-5", "input": "Hi"})).await;
    let id = created["id"].as_str().unwrap();
    let get = |key: String, id: String| {
        let request = gw.http.get(format!("{}/v1/responses/{id}", gw.url)).bearer_auth(key);
        async move { request.send().await.unwrap() }
    };
    let fetched = get(gw.key.clone(), id.to_owned()).await;
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.json::<Value>().await.unwrap(), created, "the answer as the client received it");

    // A streamed answer is kept as its final event stated it.
    let stream = gw
        .post("/v1/responses")
        .json(&json!({"model": "gpt-4o-mini", "input": "Hi", "stream": true}))
        .send()
        .await
        .unwrap();
    let events = events(&stream.text().await.unwrap());
    let completed = events.last().unwrap().1["response"].clone();
    let fetched = get(gw.key.clone(), completed["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(fetched.json::<Value>().await.unwrap(), completed);

    let other = gw.db.create_account("other", NanoUsd::parse_usd("1").unwrap()).await.unwrap();
    let (key, secret) = key_for(other.id);
    gw.add_key(&key).await;
    crate::harness::expect_error(get(secret.clone(), id.to_owned()).await, 404, "not_found").await;
    let foreign_delete =
        gw.http.delete(format!("{}/v1/responses/{id}", gw.url)).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(foreign_delete.status(), 404);

    let deleted = gw.http.delete(format!("{}/v1/responses/{id}", gw.url)).bearer_auth(&gw.key).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.json::<Value>().await.unwrap(), json!({"id": id, "object": "response", "deleted": true}));
    crate::harness::expect_error(get(gw.key.clone(), id.to_owned()).await, 404, "not_found").await;
    let continued = gw
        .post("/v1/responses")
        .json(&json!({"model": "claude-haiku-4-5", "input": "more", "previous_response_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(continued.status(), 400, "a deleted response cannot be continued");
}

#[tokio::test]
async fn the_body_s_fallback_models_work_on_every_surface_and_never_reach_the_upstream() {
    let gw = gateway().await;
    let requests = [
        ("/v1/responses", json!({"model": "dead-model", "models": ["gpt-4o-mini"], "input": "x"})),
        (
            "/v1/messages",
            json!({"model": "dead-model", "models": ["claude-haiku-4-5"], "max_tokens": 5,
                   "messages": [{"role": "user", "content": "x"}]}),
        ),
        ("/v1/completions", json!({"model": "dead-model", "models": ["gpt-4o-mini"], "prompt": "x", "max_tokens": 3})),
    ];
    for (path, body) in requests {
        let response = gw.post(path).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers().contains_key("x-tokenrouter-fallback-model"), "{path}");
        let sent = gw.mock.stats().last_request().unwrap().body;
        assert!(sent.get("models").is_none(), "{path}: the gateway's own field stays here: {sent}");
    }
}

#[tokio::test]
async fn a_conversation_the_upstream_holds_is_reserved_for_in_full() {
    let gw = Gateway::start_with(Default::default(), NATIVE_RESPONSES).await;
    // gpt-5: 128k output at $10/M is $1.28; its 400k window at $1.25/M adds $0.50.
    let account = gw.db.create_account("small", NanoUsd::parse_usd("1.5").unwrap()).await.unwrap();
    let (key, secret) = key_for(account.id);
    gw.add_key(&key).await;
    let post = |body: Value| {
        let request = gw.http.post(format!("{}/v1/responses", gw.url)).bearer_auth(&secret).json(&body);
        async move { request.send().await.unwrap() }
    };
    let first = post(json!({"model": "gpt-5", "input": "Hi"})).await;
    assert_eq!(first.status(), 200, "a fresh request fits the balance");
    let id = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let continued = post(json!({"model": "gpt-5", "input": "more", "previous_response_id": id})).await;
    assert_eq!(continued.status(), 402, "the history the upstream holds could fill the window");
    // A background continuation is admitted like any request: refused at once, nothing queued.
    let background = json!({"model": "gpt-5", "input": "more", "previous_response_id": id, "background": true});
    crate::harness::expect_error(post(background).await, 402, "insufficient_quota").await;
    assert_eq!(gw.db.active_jobs(account.id).await.unwrap(), 0);
}
