//! Kept responses as a chain: each turn of a `previous_response_id` thread is stored
//! once, the conversation is rebuilt from the links — in order, within one account,
//! bounded — and a thread whose earlier turn is gone is refused clearly.

use serde_json::{Value, json};
use tokenrouter_core::NanoUsd;
use tokenrouter_core::clock::now_unix;
use tokenrouter_store::KeptResponse;

use crate::harness::{Gateway, expect_error, key_for};

async fn gateway() -> Gateway {
    Gateway::start_with(Default::default(), "[server]\nresponse_retention_secs = 3600\n").await
}

/// Posts a Responses turn on the gateway's own key; its answer.
async fn turn(gw: &Gateway, input: &str, previous: Option<&str>) -> Value {
    let mut body = json!({"model": "gpt-4o-mini", "input": input});
    if let Some(previous) = previous {
        body["previous_response_id"] = json!(previous);
    }
    let response = gw.post("/v1/responses").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200, "{input}");
    response.json().await.unwrap()
}

fn text_of(answer: &Value) -> String {
    let message = answer["output"].as_array().unwrap().iter().find(|i| i["type"] == "message").unwrap();
    message["content"][0]["text"].as_str().unwrap().to_owned()
}

/// The (role, text) of each message the upstream was last sent.
fn sent_messages(gw: &Gateway) -> Vec<(String, String)> {
    let sent = gw.mock.stats().last_request().unwrap().body;
    let text = |content: &Value| match content {
        Value::String(text) => text.clone(),
        parts => parts.as_array().unwrap().iter().map(|p| p["text"].as_str().unwrap_or_default()).collect(),
    };
    let messages = sent["messages"].as_array().unwrap();
    messages.iter().map(|m| (m["role"].as_str().unwrap().to_owned(), text(&m["content"]))).collect()
}

/// Keeps a response directly in the store, as the gateway or an older version of it did.
async fn keep(gw: &Gateway, account_id: i64, id: &str, previous: Option<&str>, items: Value) {
    let kept = KeptResponse {
        id: id.to_owned(),
        account_id,
        created_at: now_unix(),
        expires_at: now_unix() + 3600,
        previous_id: previous.map(str::to_owned),
        record: serde_json::to_vec(&json!({"version": 1, "items": items})).unwrap(),
        answer: serde_json::to_vec(&json!({"id": id, "object": "response"})).unwrap(),
    };
    gw.db.keep_response(&kept).await.unwrap();
}

fn said(role: &str, text: &str) -> Value {
    if role == "user" {
        json!({"type": "message", "role": "user", "content": text})
    } else {
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]})
    }
}

#[tokio::test]
async fn a_fifty_turn_thread_stores_each_turn_once_and_the_last_turn_sends_them_all_in_order() {
    let gw = gateway().await;
    let mut expected = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for n in 1..=50 {
        let input = format!("Turn {n}: remember the word w{n}.");
        let answer = turn(&gw, &input, ids.last().map(String::as_str)).await;
        expected.push(("user".to_owned(), input));
        expected.push(("assistant".to_owned(), text_of(&answer)));
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    // The 50th answer's upstream request held the 49 earlier turns, in order, then its own.
    expected.pop();
    assert_eq!(sent_messages(&gw), expected);

    // Each turn is stored once: the 50th keeps about what the first does, not 50 turns.
    let stored = |id: String| {
        let db = gw.db.clone();
        let account = gw.account_id;
        async move { db.kept_response(&id, account, now_unix()).await.unwrap().unwrap().len() }
    };
    let (first, last) = (stored(ids[0].clone()).await, stored(ids[49].clone()).await);
    assert!(last < first * 2, "turn 50 stores {last} bytes, turn 1 {first}");

    // Every turn of the thread can still be retrieved and continued.
    let fetched = gw.http.get(format!("{}/v1/responses/{}", gw.url, ids[24])).bearer_auth(&gw.key).send().await;
    assert_eq!(fetched.unwrap().status(), 200);
    turn(&gw, "Back to turn 25.", Some(&ids[24])).await;
    assert_eq!(sent_messages(&gw).len(), 25 * 2 + 1);
}

#[tokio::test]
async fn a_thread_whose_earlier_turn_was_deleted_is_refused_clearly() {
    let gw = gateway().await;
    let first = turn(&gw, "One", None).await;
    let second = turn(&gw, "Two", first["id"].as_str()).await;
    let third = turn(&gw, "Three", second["id"].as_str()).await;
    let third_id = third["id"].as_str().unwrap();

    let url = |id: &Value| format!("{}/v1/responses/{}", gw.url, id.as_str().unwrap());
    let deleted = gw.http.delete(url(&second["id"])).bearer_auth(&gw.key).send().await.unwrap();
    assert_eq!(deleted.status(), 200, "only the middle response is deleted");
    let fetched = gw.http.get(url(&third["id"])).bearer_auth(&gw.key).send().await.unwrap();
    assert_eq!(fetched.json::<Value>().await.unwrap(), third, "the later turn is still readable");

    let requests = gw.mock.stats().request_count();
    let body = json!({"model": "gpt-4o-mini", "input": "Four", "previous_response_id": third_id});
    let refused =
        expect_error(gw.post("/v1/responses").json(&body).send().await.unwrap(), 400, "invalid_request").await;
    assert_eq!(refused["error"]["param"], "previous_response_id");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains(third_id) && message.contains("no longer stored"), "{message}");
    assert_eq!(gw.mock.stats().request_count(), requests, "nothing reached the upstream");

    turn(&gw, "Again", first["id"].as_str()).await;
    assert_eq!(sent_messages(&gw)[0], ("user".to_owned(), "One".to_owned()));
}

#[tokio::test]
async fn a_response_kept_whole_before_chains_still_starts_a_thread() {
    let gw = gateway().await;
    let whole = json!([
        said("user", "Old one"),
        said("assistant", "Old answer one"),
        said("user", "Old two"),
        said("assistant", "Old answer two")
    ]);
    keep(&gw, gw.account_id, "resp_kept_whole", None, whole).await;
    let next = turn(&gw, "New three", Some("resp_kept_whole")).await;
    turn(&gw, "New four", next["id"].as_str()).await;
    let roles_and_texts = sent_messages(&gw);
    let texts: Vec<&str> = roles_and_texts.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(
        texts,
        ["Old one", "Old answer one", "Old two", "Old answer two", "New three", text_of(&next).as_str(), "New four"]
    );
}

#[tokio::test]
async fn a_thread_never_reaches_another_account_and_is_bounded() {
    let gw = gateway().await;
    let secret = turn(&gw, "The vault code is 4711.", None).await;
    let secret_id = secret["id"].as_str().unwrap();

    // Another account's response that names ours as its previous one (a forged link).
    let other = gw.db.create_account("other", NanoUsd::parse_usd("10").unwrap()).await.unwrap();
    let (key, other_secret) = key_for(other.id);
    gw.add_key(&key).await;
    keep(&gw, other.id, "resp_forged", Some(secret_id), json!([said("user", "hi")])).await;
    let requests = gw.mock.stats().request_count();
    let body = json!({"model": "gpt-4o-mini", "input": "What is the code?", "previous_response_id": "resp_forged"});
    let response =
        gw.http.post(format!("{}/v1/responses", gw.url)).bearer_auth(&other_secret).json(&body).send().await.unwrap();
    let refused = expect_error(response, 400, "invalid_request").await;
    assert_eq!(refused["error"]["param"], "previous_response_id");
    assert_eq!(gw.mock.stats().request_count(), requests, "nothing of ours reached an upstream for them");

    // A thread of 1000 responses can be continued; one of 1001 is refused, naming the cap.
    keep(&gw, gw.account_id, "resp_t0", None, json!([said("user", "start")])).await;
    for n in 1..=1000 {
        keep(&gw, gw.account_id, &format!("resp_t{n}"), Some(&format!("resp_t{}", n - 1)), json!([])).await;
    }
    turn(&gw, "Still here", Some("resp_t999")).await;
    let body = json!({"model": "gpt-4o-mini", "input": "Too far", "previous_response_id": "resp_t1000"});
    let refused =
        expect_error(gw.post("/v1/responses").json(&body).send().await.unwrap(), 400, "invalid_request").await;
    assert_eq!(refused["error"]["param"], "previous_response_id");
    assert!(refused["error"]["message"].as_str().unwrap().contains("more than 1000"), "{refused}");
}
