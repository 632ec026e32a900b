//! `/v1/messages` details a Claude client relies on: which stop sequence ended the answer
//! (streamed and not, from each provider kind), `count_tokens` under the key's rate
//! limit, and error answers that keep their headers whatever their size.

use serde_json::{Value, json};

use crate::harness::{Gateway, NATIVE_KINDS, key_for};

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

fn ask(model: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "max_tokens": 256,
                          "messages": [{"role": "user", "content": "Tell me a story"}]});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

/// The answer's text, whole or streamed.
fn text_of(message: &Value) -> String {
    message["content"].as_array().unwrap().iter().filter_map(|b| b["text"].as_str()).collect()
}

/// A streamed answer: its text and its `message_delta`'s delta.
async fn streamed(gw: &Gateway, body: Value) -> (String, Value) {
    let response = gw.post("/v1/messages").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let events = events(&response.text().await.unwrap());
    let text = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, e)| e["delta"]["text"].as_str())
        .collect::<String>();
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap().1["delta"].clone();
    (text, delta)
}

#[tokio::test]
async fn the_stop_sequence_that_ended_an_anthropic_answer_is_named_streamed_or_not() {
    let gw = Gateway::start_with(tokenrouter_mock::MockConfig::default(), NATIVE_KINDS).await;
    let model = "claude-haiku-4-5";
    let full = text_of(&gw.post_json("/v1/messages", ask(model, json!({}))).await);
    let stop = full.split(' ').nth(5).unwrap().to_owned();
    let cut = &full[..full.find(stop.as_str()).unwrap()];

    let answer = gw.post_json("/v1/messages", ask(model, json!({"stop_sequences": ["never-said", stop]}))).await;
    assert_eq!(answer["stop_reason"], "stop_sequence", "{answer}");
    assert_eq!(answer["stop_sequence"], stop.as_str());
    assert_eq!(text_of(&answer), cut);

    let (text, delta) = streamed(&gw, ask(model, json!({"stop_sequences": [stop], "stream": true}))).await;
    assert_eq!(delta["stop_reason"], "stop_sequence", "{delta}");
    assert_eq!(delta["stop_sequence"], stop.as_str());
    assert_eq!(text, cut);

    // An answer that ended on its own names no sequence.
    let answer = gw.post_json("/v1/messages", ask(model, json!({"stop_sequences": ["never-said"]}))).await;
    assert_eq!((&answer["stop_reason"], &answer["stop_sequence"]), (&json!("end_turn"), &Value::Null));
    let (_, delta) = streamed(&gw, ask(model, json!({"stop_sequences": ["never-said"], "stream": true}))).await;
    assert_eq!((&delta["stop_reason"], &delta["stop_sequence"]), (&json!("end_turn"), &Value::Null));

    // Chat Completions clients see it too, as vLLM names it (`choices[].stop_reason`).
    let chat: Value = gw
        .chat(json!({"model": model, "stop": [stop], "messages": [{"role": "user", "content": "Tell me a story"}]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(chat["choices"][0]["finish_reason"], "stop");
    assert_eq!(chat["choices"][0]["stop_reason"], stop.as_str(), "{chat}");
}

#[tokio::test]
async fn a_gemini_upstream_does_not_say_which_sequence_stopped_it_so_neither_does_the_gateway() {
    let gw = Gateway::start_with(tokenrouter_mock::MockConfig::default(), NATIVE_KINDS).await;
    let model = "gemini-2.0-flash";
    let full = text_of(&gw.post_json("/v1/messages", ask(model, json!({}))).await);
    let stop = full.split(' ').nth(5).unwrap().to_owned();
    let cut = full[..full.find(stop.as_str()).unwrap()].to_owned();

    let answer = gw.post_json("/v1/messages", ask(model, json!({"stop_sequences": [stop]}))).await;
    // The text was cut there, but Gemini's `finishReason: STOP` is also a natural end.
    assert_eq!(text_of(&answer).trim_end(), cut.trim_end());
    assert_eq!((&answer["stop_reason"], &answer["stop_sequence"]), (&json!("end_turn"), &Value::Null), "{answer}");
    let (text, delta) = streamed(&gw, ask(model, json!({"stop_sequences": [stop], "stream": true}))).await;
    assert_eq!(text.trim_end(), cut.trim_end());
    assert_eq!((&delta["stop_reason"], &delta["stop_sequence"]), (&json!("end_turn"), &Value::Null), "{delta}");
}

#[tokio::test]
async fn count_tokens_counts_toward_the_key_s_rpm_and_is_refused_in_anthropic_s_shape() {
    let gw = Gateway::start_with(tokenrouter_mock::MockConfig::default(), NATIVE_KINDS).await;
    let (mut key, secret) = key_for(gw.account_id);
    key.rpm = Some(3);
    gw.add_key(&key).await;
    let count = || {
        gw.http
            .post(format!("{}/v1/messages/count_tokens", gw.url))
            .header("x-api-key", &secret)
            .json(&json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "one two three"}]}))
            .send()
    };
    // Two counts and one message use up an RPM of 3, whichever route they take.
    for _ in 0..2 {
        let counted = count().await.unwrap();
        assert_eq!(counted.status(), 200);
        assert_eq!(counted.headers()["x-ratelimit-limit-requests"], "3");
    }
    let message = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", &secret)
        .json(&ask("claude-haiku-4-5", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(message.status(), 200);
    assert_eq!(message.headers()["x-ratelimit-remaining-requests"], "0");

    let refused = count().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "one request's interval is 20 s: {retry_after}");
    assert_eq!(refused.headers()["x-ratelimit-remaining-requests"], "0");
    assert!(refused.headers().contains_key("x-request-id"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn an_upstream_error_over_64_kb_keeps_its_headers_and_becomes_a_short_anthropic_error() {
    let models = r#"
[[models]]
id = "refusing"
context_window = 8000
max_output_tokens = 1000
input_price = 1
output_price = 2
deployments = [ { provider = "mock", upstream_model = "mock-gpt@fault=400:100000" } ]
"#;
    let gw = Gateway::start_with(tokenrouter_mock::MockConfig::default(), models).await;
    let (mut key, secret) = key_for(gw.account_id);
    key.rpm = Some(100);
    gw.add_key(&key).await;
    // On Chat Completions the upstream's own error is relayed whole.
    let relayed =
        gw.http.post(format!("{}/v1/chat/completions", gw.url)).bearer_auth(&secret).json(&ask("refusing", json!({})));
    let relayed = relayed.send().await.unwrap();
    assert_eq!(relayed.status(), 400);
    assert!(relayed.bytes().await.unwrap().len() > 100_000);

    let refused = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", &secret)
        .json(&ask("refusing", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let headers = refused.headers().clone();
    assert!(headers["x-request-id"].to_str().unwrap().starts_with("req_"), "{headers:?}");
    assert_eq!(headers["x-tokenrouter-provider"], "mock", "{headers:?}");
    assert_eq!(headers["x-ratelimit-limit-requests"], "100", "{headers:?}");
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("64 KB") && message.len() < 1000, "{message}");
}
