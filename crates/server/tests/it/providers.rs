//! Providers with their own APIs (Anthropic, Gemini) behind the same chat route: the
//! gateway translates, classifies their errors, transcodes their streams and bills their
//! usage — including cached prompt tokens at the cached price.

use serde_json::{Value, json};
use tokenrouter_store::UsageSource;

use crate::harness::{Gateway, NATIVE_KINDS, expect_error, request_id, user};

/// Models beyond one chat model per kind (`NATIVE_KINDS`).
const NATIVE: &str = r#"
[[models]]
id = "claude-overloaded"
context_window = 200000
max_output_tokens = 4096
input_price = 1
output_price = 5
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock@fault=overloaded" } ]


[[models]]
id = "claude-writes"
context_window = 200000
max_output_tokens = 4096
input_price = 1
cached_input_price = 0.10
cache_write_price = 2.5
output_price = 5
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock@cache_write_tokens=3" } ]

[[models]]
id = "claude-sonnet-4-5"
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock@cache_write_tokens=3" } ]

[[models]]
id = "gemini-unsafe"
context_window = 100000
max_output_tokens = 4096
input_price = 1
output_price = 1
deployments = [ { provider = "gemini-mock", upstream_model = "gemini-mock@fault=safety" } ]
"#;

async fn gateway() -> Gateway {
    let config = format!("{NATIVE_KINDS}{NATIVE}");
    Gateway::start_with(tokenrouter_mock::MockConfig { cached_tokens: 2, ..Default::default() }, &config).await
}

#[tokio::test]
async fn anthropic_answers_in_openai_shape_and_bills_cached_tokens_at_the_cached_price() {
    let gw = gateway().await;
    let response = gw.chat(json!({"model": "claude-haiku-4-5", "messages": user("four words of prompt")})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tokenrouter-provider"], "anthropic-mock");
    let id = request_id(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude-haiku-4-5");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let seen = gw.mock.stats().last_request().unwrap();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some("anthropic-secret"));
    assert!(seen.header("authorization").is_none());
    assert_eq!(seen.body["max_tokens"], 64_000, "defaulted from the model's output limit");

    let usage = &body["usage"];
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 2);
    let row = gw.usage(&id).await;
    assert_eq!(row.usage.prompt_tokens, prompt);
    assert_eq!(row.usage.cached_tokens, 2);
    assert_eq!(row.usage_source, UsageSource::Upstream);
    // claude-haiku-4-5: $1 input, $0.10 cached input, $5 output per 1M tokens.
    let completion = row.usage.completion_tokens;
    let expected = ((prompt - 2) * 1_000 + 2 * 100 + completion * 5_000) as i64;
    assert_eq!(row.cost.0, expected);
}

#[tokio::test]
async fn anthropic_cache_writes_are_billed_at_the_cache_write_price() {
    let gw = gateway().await;
    // (model, input, cached input, cache write, output) in nano-USD per token: a configured
    // cache_write_price, and the catalog's for Claude Sonnet 4.5 (1.25 × $3).
    for (model, input, cached, write, output) in
        [("claude-writes", 1_000, 100, 2_500, 5_000), ("claude-sonnet-4-5", 3_000, 300, 3_750, 15_000)]
    {
        for stream in [false, true] {
            let body = json!({"model": model, "stream": stream, "messages": user("six words of prompt right here")});
            let response = gw.chat(body).await;
            assert_eq!(response.status(), 200, "{model}");
            let id = request_id(&response);
            let text = response.text().await.unwrap();
            if !stream {
                let usage: Value = serde_json::from_str::<Value>(&text).unwrap()["usage"].clone();
                assert_eq!(usage["prompt_tokens"], 7, "{usage}");
                assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 2);
                assert_eq!(usage["prompt_tokens_details"]["cache_creation_tokens"], 3);
            }
            // 7 prompt tokens: 2 read from the cache, 3 written to it, 2 plain.
            let row = gw.usage(&id).await;
            assert_eq!((row.usage.prompt_tokens, row.usage.cached_tokens), (7, 2), "{model}");
            let expected = 2 * input + 2 * cached + 3 * write + row.usage.completion_tokens as i64 * output;
            assert_eq!(row.cost.0, expected, "{model}, stream {stream}");
        }
    }
}

#[tokio::test]
async fn gemini_streams_are_transcoded_and_billed() {
    let gw = gateway().await;
    let response = gw.chat(json!({"model": "gemini-2.0-flash", "stream": true, "messages": user("stream it")})).await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let text = response.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect();
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "gemini-2.0-flash"));
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "no usage unless asked");
    let words: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(words.split_whitespace().count(), 16);
    let seen = gw.mock.stats().last_request().unwrap();
    assert_eq!(seen.path, "/v1beta/models/gemini-mock:streamGenerateContent");
    assert_eq!(seen.header("x-goog-api-key"), Some("gemini-secret"));
    let row = gw.usage(&id).await;
    assert_eq!(row.usage.completion_tokens, 16);
    assert_eq!(row.usage_source, UsageSource::Upstream);
    assert!(row.stream && row.cost.0 > 0);
}

#[tokio::test]
async fn provider_errors_are_classified() {
    let gw = gateway().await;
    // Anthropic's 529 overloaded: the upstream failed, not the request.
    let overloaded = gw.chat(json!({"model": "claude-overloaded", "messages": user("x")})).await;
    let error = expect_error(overloaded, 502, "upstream_unavailable").await;
    assert!(error["error"]["message"].as_str().unwrap().contains("529"), "{error}");
    // Anthropic's 400 (thinking blocks not handed back) is the request's fault: relayed as 400.
    let tool_turn = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    ]);
    let tools = json!([{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]);
    let refused = gw
        .chat(json!({"model": "claude-haiku-4-5", "messages": tool_turn, "tools": tools, "reasoning_effort": "low"}))
        .await;
    let error = expect_error(refused, 400, "invalid_request").await;
    assert!(error["error"]["message"].as_str().unwrap().contains("thinking"), "{error}");
    // What Anthropic cannot express is refused before any call, naming the field.
    let before = gw.mock.stats().request_count();
    let n2 = gw.chat(json!({"model": "claude-haiku-4-5", "n": 2, "messages": user("x")})).await;
    let error = expect_error(n2, 400, "invalid_request").await;
    assert_eq!(error["error"]["param"], "n");
    assert_eq!(gw.mock.stats().request_count(), before);
    // A typed field of the wrong shape names its path.
    let bad = gw.chat(json!({"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": 5}]})).await;
    let error = expect_error(bad, 400, "invalid_request").await;
    assert!(error["error"]["param"].as_str().unwrap().starts_with("messages[0]"), "{error}");
    // Gemini's safety block is an answer with finish_reason content_filter, not an error.
    let unsafe_answer: Value =
        gw.chat(json!({"model": "gemini-unsafe", "messages": user("x")})).await.json().await.unwrap();
    assert_eq!(unsafe_answer["choices"][0]["finish_reason"], "content_filter");
    assert!(unsafe_answer["choices"][0]["message"]["content"].as_str().unwrap().contains("SAFETY"));
}

#[tokio::test]
async fn a_cut_anthropic_stream_ends_with_an_error_event_and_bills_what_was_delivered() {
    let extra = format!("{NATIVE_KINDS}{NATIVE}").replace("claude-mock@fault=overloaded", "claude-mock@fault=cut:3");
    let gw = Gateway::start_with(Default::default(), &extra).await;
    let response = gw.chat(json!({"model": "claude-overloaded", "stream": true, "messages": user("x")})).await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let text = response.text().await.unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap().strip_prefix("data: ").unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(last["error"]["code"], "upstream_unavailable", "{text}");
    let row = gw.usage(&id).await;
    assert!(row.usage.completion_tokens > 0 && row.usage.completion_tokens <= 3, "{row:?}");
    assert!(row.cost.0 > 0);
}

#[tokio::test]
async fn gemini_keeps_one_tool_call_when_the_client_allows_only_one() {
    let gw = gateway().await;
    let tool = |name: &str| json!({"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}});
    for stream in [false, true] {
        let body = |parallel: bool| {
            json!({"model": "gemini-2.0-flash", "messages": user("Weather and time?"), "stream": stream,
                   "tools": [tool("get_weather"), tool("get_time")], "tool_choice": "required",
                   "parallel_tool_calls": parallel})
        };
        let count = |text: String| -> usize {
            if stream {
                let mut indices: Vec<u64> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                    .flat_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned().unwrap_or_default())
                    .filter_map(|call| call["index"].as_u64())
                    .collect();
                indices.dedup();
                indices.len()
            } else {
                let body: Value = serde_json::from_str(&text).unwrap();
                body["choices"][0]["message"]["tool_calls"].as_array().map_or(0, Vec::len)
            }
        };
        let parallel = gw.chat(body(true)).await;
        let both = gw.usage(&request_id(&parallel)).await;
        assert_eq!(count(parallel.text().await.unwrap()), 2, "stream={stream}: the mock calls both when allowed");
        let single = gw.chat(body(false)).await;
        let one = gw.usage(&request_id(&single)).await;
        let text = single.text().await.unwrap();
        assert_eq!(count(text.clone()), 1, "stream={stream}: parallel_tool_calls false means one call");
        // The call the client did not get is not billed, and the answer's usage says so.
        assert!(one.usage.completion_tokens < both.usage.completion_tokens, "{one:?} vs {both:?}");
        assert!(one.cost < both.cost);
        if !stream {
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["usage"]["completion_tokens"], one.usage.completion_tokens, "{answer}");
        }
    }
}
