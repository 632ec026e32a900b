//! The Gemini API, streamed: one chunk per token with the finish and usage on the last,
//! SSE and JSON-array framing, function calls, thoughts and several candidates.

use serde_json::{Value, json};
use tokenrouter_mock::{MockConfig, MockServer};

use crate::client::{Events, http, mock, post_to, read_events, url};
use crate::gemini::{content, functions, gemini, with};

const STREAM: &str = "/v1beta/models/gemini-mock:streamGenerateContent?alt=sse";

async fn stream(server: &MockServer, body: &Value) -> Events {
    let events = read_events(post_to(server, STREAM, body).await).await;
    assert!(events.error.is_none() && events.rest.is_empty());
    assert!(events.events.iter().all(|e| e.name.is_none()));
    events
}

fn chunks_of(events: &Events) -> Vec<&Value> {
    events.events.iter().map(|e| &e.data).collect()
}

/// The parts of candidate 0 across chunks, text parts of one kind merged as an SDK does.
fn merged_parts(chunks: &[&Value]) -> Vec<Value> {
    let mut parts: Vec<Value> = Vec::new();
    for chunk in chunks {
        let Some(new) = chunk["candidates"][0]["content"]["parts"].as_array() else {
            continue;
        };
        for part in new {
            match parts.last_mut() {
                Some(last)
                    if last["text"].is_string()
                        && part["text"].is_string()
                        && last.get("thought") == part.get("thought") =>
                {
                    let text = format!("{}{}", last["text"].as_str().unwrap(), part["text"].as_str().unwrap());
                    last["text"] = Value::from(text);
                }
                _ => parts.push(part.clone()),
            }
        }
    }
    parts
}

/// Checks that only the last chunk finishes and carries usage, and returns it.
fn last<'a>(chunks: &[&'a Value]) -> &'a Value {
    let (last, rest) = chunks.split_last().unwrap();
    for chunk in rest {
        assert!(chunk.get("usageMetadata").is_none(), "{chunk}");
        assert!(chunk["candidates"][0].get("finishReason").is_none(), "{chunk}");
    }
    assert!(last["usageMetadata"].is_object());
    last
}

#[tokio::test]
async fn sse_stream_sends_a_chunk_per_token() {
    let server = mock(MockConfig { reply_tokens: 4, ..MockConfig::default() }).await;
    let events = stream(&server, &gemini("Tell me something")).await;
    let chunks = chunks_of(&events);
    assert_eq!(chunks.len(), 4);
    for chunk in &chunks {
        assert_eq!(chunk["modelVersion"], "gemini-mock");
        assert_eq!(chunk["responseId"], "resp_mock_1");
        assert_eq!(chunk["candidates"][0]["content"]["role"], "model");
        assert_eq!(chunk["candidates"][0]["index"], 0);
        assert_eq!(chunk["candidates"][0]["content"]["parts"].as_array().unwrap().len(), 1);
    }
    assert!(chunks[0]["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap().starts_with("Tell"));
    let last = last(&chunks);
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");

    let whole = content(&server, &gemini("Tell me something")).await;
    assert_eq!(merged_parts(&chunks), *whole["candidates"][0]["content"]["parts"].as_array().unwrap());
    assert_eq!(last["usageMetadata"], whole["usageMetadata"]);

    let stats = server.stats();
    assert_eq!(stats.streams_completed(), 1);
    assert_eq!(stats.tokens_generated(), 8);
    assert_eq!(stats.requests()[0].path, "/v1beta/models/gemini-mock:streamGenerateContent");
}

#[tokio::test]
async fn without_alt_sse_the_stream_is_a_json_array() {
    let server = mock(MockConfig { reply_tokens: 3, ..MockConfig::default() }).await;
    let response = http()
        .post(url(&server, "/v1beta/models/gemini-mock:streamGenerateContent"))
        .json(&gemini("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let array: Vec<Value> = response.json().await.unwrap();
    assert_eq!(array.len(), 3);
    assert_eq!(array[2]["candidates"][0]["finishReason"], "STOP");
    let sse = stream(&server, &gemini("hi")).await;
    let sse: Vec<Value> = sse.events.into_iter().map(|e| e.data).collect();
    let ids = |v: &mut Vec<Value>| v.iter_mut().for_each(|c| c["responseId"] = Value::Null);
    let (mut array, mut sse) = (array, sse);
    ids(&mut array);
    ids(&mut sse);
    assert_eq!(array, sse);
}

#[tokio::test]
async fn function_calls_stream_whole_in_the_last_chunk() {
    let server = mock(MockConfig::default()).await;
    let single = with(gemini("Weather in Paris?"), json!({"tools": functions()}));
    let parallel = with(single.clone(), json!({"toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}));
    for (body, calls) in [(single, 1), (parallel, 2)] {
        let events = stream(&server, &body).await;
        let chunks = chunks_of(&events);
        assert_eq!(chunks.len(), 1);
        let parts = merged_parts(&chunks);
        assert_eq!(parts.len(), calls);
        let whole = content(&server, &body).await;
        let whole_parts = whole["candidates"][0]["content"]["parts"].as_array().unwrap();
        for (streamed, whole) in parts.iter().zip(whole_parts) {
            let (s, w) = (&streamed["functionCall"], &whole["functionCall"]);
            assert_eq!((&s["name"], &s["args"]), (&w["name"], &w["args"]));
            assert!(s["id"].as_str().unwrap().starts_with("call_mock_"));
        }
        assert_eq!(last(&chunks)["candidates"][0]["finishReason"], "STOP");
    }
}

#[tokio::test]
async fn streamed_thoughts_come_first_and_several_candidates_stream_together() {
    let server = mock(MockConfig { reply_tokens: 2, ..MockConfig::default() }).await;
    let body = with(
        gemini("Weather?"),
        json!({"tools": functions(), "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
            "generationConfig": {"thinkingConfig": {"includeThoughts": true}}}),
    );
    let events = stream(&server, &body).await;
    let chunks = chunks_of(&events);
    assert_eq!(chunks.len(), 5 + 1);
    assert!(chunks[..5].iter().all(|c| c["candidates"][0]["content"]["parts"][0]["thought"] == true));
    let parts = merged_parts(&chunks);
    assert_eq!(parts[0], json!({"text": "Let me think about this.", "thought": true}));
    assert_eq!(parts[1]["thoughtSignature"], "c2lnX21vY2tfMQ==");
    assert!(parts[2]["functionCall"].is_object());
    assert_eq!(last(&chunks)["usageMetadata"]["thoughtsTokenCount"], 5);

    let two = json!({"generationConfig": {"candidateCount": 2}});
    let events = stream(&server, &with(gemini("hi"), two)).await;
    let pair = chunks_of(&events);
    assert_eq!(pair.len(), 2);
    for chunk in &pair {
        let candidates = chunk["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 2);
        assert_eq!(candidates[0]["content"], candidates[1]["content"]);
        assert_eq!(candidates[1]["index"], 1);
    }
    assert_eq!(last(&pair)["usageMetadata"]["candidatesTokenCount"], 4);
}
