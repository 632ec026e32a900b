//! The Responses API, streamed: the event sequence and its sequence numbers for text,
//! reasoning and function calls; the streamed response matches the whole one; faults.

use serde_json::{Value, json};
use tokenrouter_mock::MockConfig;

use crate::client::{Events, mock, post_to, read_events, with};
use crate::responses::{PATH, THINKING, ask, codex_tools, respond};

fn streamed(body: Value) -> Value {
    with(body, json!({"stream": true}))
}

/// Checks that every event's `type` is its name and that sequence numbers count from 0.
fn check_sequence(events: &Events) {
    for (i, event) in events.events.iter().enumerate() {
        assert_eq!(event.data["type"], event.name.as_deref().unwrap());
        assert_eq!(event.data["sequence_number"], i as u64, "{:?}", event);
    }
}

/// The concatenated `delta` of the events named `name`.
fn deltas(events: &Events, name: &str) -> String {
    events
        .events
        .iter()
        .filter(|e| e.name.as_deref() == Some(name))
        .map(|e| e.data["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn text_streams_in_order_with_sequence_numbers() {
    let server = mock(MockConfig { reply_tokens: 4, ..MockConfig::default() }).await;
    let events = read_events(post_to(&server, PATH, &streamed(ask(json!("Tell me")))).await).await;
    assert!(events.error.is_none() && events.rest.is_empty());
    check_sequence(&events);
    let mut expected = vec!["response.created", "response.in_progress", "response.output_item.added"];
    expected.push("response.content_part.added");
    expected.extend(["response.output_text.delta"; 4]);
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(events.names(), expected);

    let data: Vec<&Value> = events.events.iter().map(|e| &e.data).collect();
    for start in &data[..2] {
        assert_eq!(start["response"]["status"], "in_progress");
        assert_eq!(start["response"]["output"], json!([]));
        assert!(start["response"]["usage"].is_null());
    }
    let added = &data[2];
    assert_eq!(added["output_index"], 0);
    assert_eq!(added["item"]["type"], "message");
    assert_eq!(added["item"]["status"], "in_progress");
    assert_eq!(added["item"]["content"], json!([]));
    let item_id = added["item"]["id"].as_str().unwrap();
    assert_eq!(data[3]["part"], json!({"type": "output_text", "annotations": [], "logprobs": [], "text": ""}));
    for event in &data[3..8] {
        assert_eq!(
            (event["item_id"].as_str(), &event["output_index"], &event["content_index"]),
            (Some(item_id), &json!(0), &json!(0))
        );
    }
    let text = deltas(&events, "response.output_text.delta");
    assert_eq!(data[8]["text"], text);
    assert_eq!(data[9]["part"]["text"], text);
    assert_eq!(data[10]["item"]["status"], "completed");
    assert_eq!(data[10]["item"]["content"][0]["text"], text);

    // The final response is the whole answer.
    let completed = &data[11]["response"];
    let whole = respond(&server, &ask(json!("Tell me"))).await;
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][0]["content"], whole["output"][0]["content"]);
    assert_eq!(completed["usage"], whole["usage"]);
    assert_eq!(completed["id"], data[0]["response"]["id"]);

    let stats = server.stats();
    assert_eq!((stats.streams_completed(), stats.tokens_generated()), (1, 8));
}

#[tokio::test]
async fn reasoning_and_function_calls_stream_their_events() {
    let server = mock(MockConfig::default()).await;
    let body = streamed(with(
        ask(json!("Fix the bug")),
        json!({"tools": codex_tools(), "tool_choice": "required", "reasoning": {"effort": "high", "summary": "auto"}}),
    ));
    let events = read_events(post_to(&server, PATH, &body).await).await;
    check_sequence(&events);
    let names = events.names();
    let count = |name: &str| names.iter().filter(|n| **n == name).count();
    assert_eq!(count("response.reasoning_summary_text.delta"), 5);
    assert_eq!(count("response.output_item.added"), 3);
    assert_eq!(count("response.function_call_arguments.done"), 2);
    assert_eq!(count("response.output_text.delta"), 0);
    let dedup: Vec<&str> = names.iter().copied().fold(Vec::new(), |mut v, n| {
        if v.last() != Some(&n) {
            v.push(n);
        }
        v
    });
    let call = [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ];
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ];
    expected.extend(call);
    expected.extend(call);
    expected.push("response.completed");
    assert_eq!(dedup, expected);

    assert_eq!(deltas(&events, "response.reasoning_summary_text.delta"), THINKING);
    let data =
        |name: &'static str| events.events.iter().filter(move |e| e.name.as_deref() == Some(name)).map(|e| &e.data);
    let summary_done = data("response.reasoning_summary_text.done").next().unwrap();
    assert_eq!((&summary_done["text"], &summary_done["summary_index"]), (&json!(THINKING), &json!(0)));
    let part_done = data("response.reasoning_summary_part.done").next().unwrap();
    assert_eq!(part_done["part"], json!({"type": "summary_text", "text": THINKING}));

    // Each call's argument deltas add up to its arguments.
    let completed = &events.events.last().unwrap().data["response"];
    for (index, name) in [(1, "shell"), (2, "update_plan")] {
        let item = &completed["output"][index];
        assert_eq!(item["name"], name);
        let pieces: String = data("response.function_call_arguments.delta")
            .filter(|d| d["output_index"] == index)
            .map(|d| {
                assert_eq!(d["item_id"], item["id"]);
                d["delta"].as_str().unwrap()
            })
            .collect();
        assert_eq!(pieces, item["arguments"].as_str().unwrap());
        let added = data("response.output_item.added").find(|d| d["output_index"] == index).unwrap();
        assert_eq!(added["item"]["arguments"], "");
        assert_eq!(added["item"]["call_id"], item["call_id"]);
    }
    assert_eq!(completed["output"][0]["summary"][0]["text"], THINKING);
    let usage = &completed["usage"];
    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 5);
    assert_eq!(server.stats().tokens_generated(), usage["output_tokens"].as_u64().unwrap());
}

#[tokio::test]
async fn incomplete_responses_end_with_response_incomplete() {
    let server = mock(MockConfig::default()).await;
    let body = streamed(with(ask(json!("hi")), json!({"max_output_tokens": 2})));
    let events = read_events(post_to(&server, PATH, &body).await).await;
    check_sequence(&events);
    let last = events.events.last().unwrap();
    assert_eq!(last.name.as_deref(), Some("response.incomplete"));
    assert_eq!(last.data["response"]["incomplete_details"]["reason"], "max_output_tokens");
}

#[tokio::test]
async fn stream_faults_end_the_event_sequence() {
    let server = mock(MockConfig { reply_tokens: 6, ..MockConfig::default() }).await;
    let body = streamed(with(ask(json!("hi")), json!({"mock": {"fault": "stream_error"}})));
    let events = read_events(post_to(&server, PATH, &body).await).await;
    check_sequence(&events);
    let last = events.events.last().unwrap();
    assert_eq!(last.name.as_deref(), Some("error"));
    assert_eq!(last.data["code"], "server_error");
    assert!(last.data["message"].is_string());
    assert_eq!(events.names().iter().filter(|n| **n == "response.output_text.delta").count(), 1);
    assert!(!events.names().contains(&"response.completed"));

    let body = streamed(with(ask(json!("hi")), json!({"model": "m@fault=cut:3"})));
    let events = read_events(post_to(&server, PATH, &body).await).await;
    assert!(events.error.is_some());
    assert!(events.rest.starts_with("event: response.output_text.delta\n"), "{:?}", events.rest);
    assert_eq!(events.names().iter().filter(|n| **n == "response.output_text.delta").count(), 3);
    assert_eq!(server.stats().streams_completed(), 0);
}

#[tokio::test]
async fn stream_is_paced() {
    let server = mock(MockConfig::default()).await;
    let body = streamed(with(ask(json!("hi")), json!({"mock": {"reply_tokens": 5, "tokens_per_second": 100}})));
    let started = std::time::Instant::now();
    let events = read_events(post_to(&server, PATH, &body).await).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(38), "{:?}", started.elapsed());
    assert_eq!(events.events.last().unwrap().name.as_deref(), Some("response.completed"));
}
