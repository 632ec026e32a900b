//! Every documented error (CONTRACTS.md §4): its status, type, code and param, and that
//! nothing is stored or sent upstream for input the gateway refuses.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Gateway, expect_error, user};

async fn raw_chat(gw: &Gateway, body: impl Into<reqwest::Body>) -> reqwest::Response {
    gw.post("/v1/chat/completions").header("content-type", "application/json").body(body).send().await.unwrap()
}

#[tokio::test]
async fn bad_input_gets_400_naming_the_field_and_stores_nothing() {
    let gw = Gateway::start().await;
    let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
        (b"{\"model\": \"gpt-4o-mini\", \"messages\": [".to_vec(), None, "parse"),
        (b"".to_vec(), None, "empty"),
        (b"[1, 2]".to_vec(), None, "JSON object"),
        (
            b"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}".to_vec(),
            None,
            "UTF-8",
        ),
        (br#"{"model": 4, "messages": []}"#.to_vec(), Some("model"), "model"),
        (br#"{"messages": [{"role":"user","content":"x"}]}"#.to_vec(), Some("model"), "model"),
        (br#"{"model": "gpt-4o-mini"}"#.to_vec(), Some("messages"), "messages"),
        (br#"{"model": "gpt-4o-mini", "messages": {"role": "user"}}"#.to_vec(), Some("messages"), "messages"),
        (
            br#"{"model": "gpt-4o-mini", "messages": [{"role":"user","content":"x"}], "stream": "yes"}"#.to_vec(),
            Some("stream"),
            "stream",
        ),
        (
            br#"{"model": "gpt-4o-mini", "messages": [{"role":"user","content":"x"}], "max_tokens": "10"}"#.to_vec(),
            Some("max_tokens"),
            "max_tokens",
        ),
    ];
    for (body, param, needle) in cases {
        let response = raw_chat(&gw, body.clone()).await;
        let error = expect_error(response, 400, "invalid_request").await;
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert_eq!(error["error"]["param"].as_str(), param, "{}", String::from_utf8_lossy(&body));
        assert!(error["error"]["message"].as_str().unwrap().contains(needle), "{error}");
    }
    assert_eq!(gw.mock.stats().request_count(), 0, "nothing reached the upstream");
    assert_eq!(gw.answered_count().await, 0, "nothing answered or charged; refusals only logged");
}

#[tokio::test]
async fn missing_or_wrong_keys_get_401() {
    let gw = Gateway::start().await;
    let body = json!({"model": "gpt-4o-mini", "messages": user("x")});
    let url = format!("{}/v1/chat/completions", gw.url);
    let none = gw.http.post(&url).json(&body).send().await.unwrap();
    let error = expect_error(none, 401, "invalid_api_key").await;
    assert_eq!(error["error"]["type"], "authentication_error");
    let mut wrong_secret = gw.key.clone();
    wrong_secret.replace_range(gw.key.len() - 4.., "AAAA");
    for token in ["sk-tr-nothing", "Bearer", "sk-proj-abc", wrong_secret.as_str()] {
        let response = gw.http.post(&url).bearer_auth(token).json(&body).send().await.unwrap();
        expect_error(response, 401, "invalid_api_key").await;
    }
    assert_eq!(gw.mock.stats().request_count(), 0);
    assert_eq!(gw.answered_count().await, 0);
}

#[tokio::test]
async fn unknown_models_routes_and_methods() {
    let gw = Gateway::start().await;
    let response = gw.chat(json!({"model": "gpt-5-imaginary", "messages": user("x")})).await;
    let error = expect_error(response, 404, "model_not_found").await;
    assert_eq!(error["error"]["param"], "model");
    let response = gw.post("/v1/nope").json(&json!({})).send().await.unwrap();
    expect_error(response, 404, "unknown_url").await;
    let response = gw.http.get(format!("{}/v1/chat/completions", gw.url)).send().await.unwrap();
    expect_error(response, 405, "method_not_allowed").await;
    assert_eq!(gw.answered_count().await, 0);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let gw = Gateway::start_with(Default::default(), "[server]\nmax_body_bytes = 2048").await;
    let big = json!({"model": "gpt-4o-mini", "messages": user(&"x".repeat(4096))});
    let response = gw.chat(big.clone()).await;
    expect_error(response, 413, "request_too_large").await;
    // Without Content-Length (chunked), the limit holds while reading.
    let bytes = serde_json::to_vec(&big).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(512).map(|c| Ok(c.to_vec())).collect();
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = raw_chat(&gw, stream).await;
    expect_error(response, 413, "request_too_large").await;
    let small = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("fits")})).await;
    assert_eq!(small.status(), 200);
    assert_eq!(gw.answered_count().await, 1);
}

#[tokio::test]
async fn upstream_failures_get_502() {
    for fault in ["500", "429", "reset"] {
        // A gateway each: failures cool the deployment (routing tests cover that).
        let gw = Gateway::start().await;
        let response = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("x"), "mock": {"fault": fault}})).await;
        let error = expect_error(response, 502, "upstream_unavailable").await;
        assert_eq!(error["error"]["type"], "upstream_error");
    }
    let gw = Gateway::start().await;
    let refused = gw.chat(json!({"model": "dead-model", "messages": user("x")})).await;
    expect_error(refused, 502, "upstream_unavailable").await;
    let stream =
        gw.chat(json!({"model": "gpt-4o-mini", "stream": true, "messages": user("x"), "mock": {"fault": "500"}})).await;
    expect_error(stream, 502, "upstream_unavailable").await;
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_gets_504() {
    let gw = Gateway::start().await;
    for knobs in [json!({"fault": "hang"}), json!({"latency_ms": 2000})] {
        let started = Instant::now();
        let response = gw.chat(json!({"model": "slow-model", "messages": user("x"), "mock": knobs})).await;
        expect_error(response, 504, "upstream_timeout").await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_millis(1500), "{waited:?}");
    }
}

#[tokio::test]
async fn a_request_the_upstream_refuses_is_relayed_as_is() {
    let gw = Gateway::start().await;
    let response = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("x"), "mock": {"no_such_knob": 1}})).await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-tokenrouter-provider"], "mock");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("no_such_knob"), "{body}");
}

#[tokio::test]
async fn an_answer_given_before_the_body_was_read_closes_the_connection_and_says_so() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = crate::harness::Gateway::start().await;
    let addr = gw.url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer sk-tr-wrong\r\n\
         content-type: application/json\r\ncontent-length: 67\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("connection: close"), "the client is told not to reuse it: {answer}");
}
