//! The mock as a community instance: a required key, the model list, fixed and inflated
//! usage, whole-server failures, knobs changed while it runs, and dying and coming back
//! on the same port.

use std::time::Duration;

use serde_json::{Value, json};
use tokenrouter_mock::{InstanceFailure, InstanceKnobs, MockConfig};

use crate::client::{ask, http, mock};

const KEY: &str = "instance-key";

fn as_instance() -> MockConfig {
    MockConfig {
        instance: InstanceKnobs { api_key: Some(KEY.into()), ..InstanceKnobs::default() },
        ..MockConfig::default()
    }
}

#[tokio::test]
async fn requests_without_the_key_are_refused_with_401_on_every_path() {
    let server = mock(as_instance()).await;
    let client = http();
    let models = format!("{}/models", server.base_url());
    for key in [None, Some("wrong")] {
        let mut request = client.get(&models);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 401);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    let chat = format!("{}/chat/completions", server.base_url());
    assert_eq!(client.post(&chat).json(&ask("hi")).send().await.unwrap().status(), 401);
    assert_eq!(server.stats().request_count(), 0, "refused before it is an inference request");
    assert_eq!(server.stats().listing_count(), 2);

    let listed = client.get(&models).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let answer = client.post(&chat).bearer_auth(KEY).json(&ask("hi")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn the_listing_and_the_usage_follow_the_knobs_at_runtime() {
    let server = mock(MockConfig::default()).await;
    let client = http();
    let ids = |body: Value| -> Vec<String> {
        body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
    };
    let models = format!("{}/models", server.base_url());
    let own = ids(client.get(&models).send().await.unwrap().json().await.unwrap());
    assert!(own.contains(&"mock-gpt".to_owned()));

    server.update_instance(|k| {
        k.models = Some(vec!["org/llama".into()]);
        k.prompt_tokens = Some(42);
    });
    assert_eq!(ids(client.get(&models).send().await.unwrap().json().await.unwrap()), ["org/llama"]);
    let chat = format!("{}/chat/completions", server.base_url());
    let body = with_max(ask("one two three"), 4);
    let answer: Value = client.post(&chat).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["usage"]["prompt_tokens"], 42);
    assert_eq!(answer["usage"]["completion_tokens"], 4);

    server.update_instance(|k| {
        k.prompt_tokens = None;
        k.usage_multiplier = 3;
    });
    let answer: Value = client.post(&chat).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["usage"]["prompt_tokens"], 12, "(3 words + 1) × 3");
    assert_eq!(answer["usage"]["completion_tokens"], 12);
    assert_eq!(answer["usage"]["total_tokens"], 24);
    assert_eq!(server.stats().tokens_generated(), 8, "what it delivered, not what it reported");

    // Streamed usage is inflated too.
    let mut streamed = with_max(ask("one two three"), 4);
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let text = client.post(&chat).json(&streamed).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("\"prompt_tokens\":12"), "{text}");
}

fn with_max(mut body: Value, max_tokens: u64) -> Value {
    body["max_tokens"] = json!(max_tokens);
    body
}

#[tokio::test]
async fn whole_server_failures_hit_every_path_before_the_key() {
    let server = mock(as_instance()).await;
    let client = http();
    let models = format!("{}/models", server.base_url());

    server.update_instance(|k| k.failure = Some(InstanceFailure::Status500));
    let failed = client.get(&models).send().await.unwrap();
    assert_eq!(failed.status(), 500);
    assert_eq!(failed.json::<Value>().await.unwrap()["error"]["type"], "server_error");

    server.update_instance(|k| k.failure = Some(InstanceFailure::Html));
    let page = client.get(&models).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().await.unwrap().contains("<html>"));

    server.update_instance(|k| k.failure = Some(InstanceFailure::Hang));
    let hung = tokio::time::timeout(Duration::from_millis(300), client.get(&models).send()).await;
    assert!(hung.is_err(), "never answers");
    assert!(server.stats().max_in_flight() >= 1);

    server.update_instance(|k| k.failure = None);
    assert_eq!(client.get(&models).bearer_auth(KEY).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_stopped_server_refuses_connections_and_comes_back_on_its_port() {
    let mut server = mock(as_instance()).await;
    let client = http();
    let models = format!("{}/models", server.base_url());
    // A kept-alive connection, and a request hanging on it when the server dies.
    assert_eq!(client.get(&models).bearer_auth(KEY).send().await.unwrap().status(), 200);
    server.update_instance(|k| k.failure = Some(InstanceFailure::Hang));
    let hanging = tokio::spawn(http().get(models.clone()).send());
    tokio::time::sleep(Duration::from_millis(100)).await;

    server.stop().await;
    assert!(hanging.await.unwrap().is_err(), "its connection was closed");
    let refused = client.get(&models).bearer_auth(KEY).send().await.unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");

    server.update_instance(|k| k.failure = None);
    server.restart().await.unwrap();
    assert_eq!(client.get(&models).bearer_auth(KEY).send().await.unwrap().status(), 200);
    assert_eq!(server.instance().api_key.as_deref(), Some(KEY), "knobs survive");
}
