//! A `community: false` key on every inference surface: a model only instances serve is
//! unknown to it — 404 `model_not_found` (Anthropic's `not_found_error` on `/v1/messages`
//! and its `count_tokens`) — and nothing reaches the instance.

use serde_json::{Value, json};

use crate::harness::{expect_error, key_for};
use crate::instances_routing::{Setup, chat_body, honest_knobs, model_ids, served, setup};

#[tokio::test]
async fn an_instance_only_model_is_unknown_to_a_private_key_on_every_surface() {
    let Setup { gw, server, .. } = setup(honest_knobs()).await;
    let (mut key, secret) = key_for(gw.account_id);
    key.community = false;
    gw.add_key(&key).await;
    assert!(!model_ids(&gw, &secret).await.contains(&"community-llama".to_owned()));
    let before = served(&server);
    let post = |key: &str, path: &str, body: Value| {
        gw.http
            .post(format!("{}{path}", gw.url))
            .bearer_auth(key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
    };
    let messages = json!({"model": "community-llama", "max_tokens": 20, "messages": [{"role": "user", "content": "Tell me something about instances."}]});
    let counting = json!({"model": "community-llama", "messages": [{"role": "user", "content": "about instances"}]});

    for (path, body) in [("/v1/messages", &messages), ("/v1/messages/count_tokens", &counting)] {
        let answer = post(&secret, path, body.clone()).await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
        let error: Value = answer.json().await.unwrap();
        assert_eq!(
            (error["type"].as_str(), error["error"]["type"].as_str()),
            (Some("error"), Some("not_found_error")),
            "{path}: {error}"
        );
    }
    let responses = json!({"model": "community-llama", "input": "Tell me something about instances."});
    expect_error(post(&secret, "/v1/responses", responses).await.unwrap(), 404, "model_not_found").await;
    let completions =
        json!({"model": "community-llama", "prompt": "Tell me something about instances.", "max_tokens": 20});
    expect_error(post(&secret, "/v1/completions", completions).await.unwrap(), 404, "model_not_found").await;
    let mut streamed = chat_body("community-llama");
    streamed["stream"] = json!(true);
    expect_error(post(&secret, "/v1/chat/completions", streamed).await.unwrap(), 404, "model_not_found").await;
    assert_eq!(served(&server), before, "not one request reached the instance");

    // A community key counts the same model's tokens, and its messages reach the instance.
    let counted = post(&gw.key, "/v1/messages/count_tokens", counting).await.unwrap();
    assert_eq!(counted.status(), 200);
    let answered = post(&gw.key, "/v1/messages", messages).await.unwrap();
    assert_eq!(answered.status(), 200, "{}", answered.text().await.unwrap());
    assert_eq!(served(&server), before + 1);
}
