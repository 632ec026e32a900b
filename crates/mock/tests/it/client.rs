//! A small client for the tests: boots a mock, posts chat requests, reads SSE events.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokenrouter_mock::{MockConfig, MockServer};

/// A mock with `config` on a free loopback port.
pub async fn mock(config: MockConfig) -> MockServer {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    tokenrouter_mock::start(listen, config).await.unwrap()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A chat request body with one user message.
pub fn ask(text: &str) -> Value {
    json!({"model": "mock-gpt", "messages": [{"role": "user", "content": text}]})
}

/// `body` with `fields` merged in.
pub fn with(mut body: Value, fields: Value) -> Value {
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

pub async fn post(server: &MockServer, body: &Value) -> reqwest::Response {
    post_with(&http(), server, body).await.unwrap()
}

pub async fn post_with(
    client: &reqwest::Client,
    server: &MockServer,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    client.post(format!("{}/chat/completions", server.base_url())).json(body).send().await
}

/// A non-streamed completion, asserting a 200.
pub async fn complete(server: &MockServer, body: &Value) -> Value {
    let response = post(server, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// What a stream delivered: its JSON events, whether `[DONE]` came, and the error that
/// ended it, if any.
pub struct Sse {
    pub events: Vec<Value>,
    pub done: bool,
    pub error: Option<reqwest::Error>,
    /// Bytes after the last complete event.
    pub rest: String,
}

impl Sse {
    /// The concatenated `delta.content` of every chunk.
    pub fn text(&self) -> String {
        self.events.iter().filter_map(|e| e.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect()
    }

    /// The number of chunks carrying content text.
    pub fn content_chunks(&self) -> usize {
        self.events
            .iter()
            .filter(|e| e.pointer("/choices/0/delta/content").and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
            .count()
    }
}

/// Reads a streamed response to its end (or error).
pub async fn read_sse(mut response: reqwest::Response) -> Sse {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    let mut sse = Sse { events: Vec::new(), done: false, error: None, rest: String::new() };
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
            Ok(None) => break,
            Err(e) => {
                sse.error = Some(e);
                break;
            }
        }
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let data = event.strip_prefix("data: ").unwrap().trim_end();
            assert!(!sse.done, "event after [DONE]: {data}");
            if data == "[DONE]" {
                sse.done = true;
            } else {
                sse.events.push(serde_json::from_str(data).unwrap());
            }
        }
    }
    sse.rest = buffer;
    sse
}

/// Polls `condition` until it holds, failing after two seconds.
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// `http://ADDR{path}`.
pub fn url(server: &MockServer, path: &str) -> String {
    format!("http://{}{path}", server.addr())
}

/// Posts `body` to `path`.
pub async fn post_to(server: &MockServer, path: &str, body: &Value) -> reqwest::Response {
    http().post(url(server, path)).json(body).send().await.unwrap()
}

/// One server-sent event: its `event:` name, if any, and its JSON data.
#[derive(Debug)]
pub struct Event {
    pub name: Option<String>,
    pub data: Value,
}

/// What an event stream delivered, and the error that ended it, if any.
pub struct Events {
    pub events: Vec<Event>,
    pub error: Option<reqwest::Error>,
    /// Bytes after the last complete event.
    pub rest: String,
}

impl Events {
    /// The names of the events, in order.
    pub fn names(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.name.as_deref().unwrap_or("")).collect()
    }
}

/// Reads an event stream (`event: …\ndata: …\n\n` or `data: …\n\n`) to its end or error.
pub async fn read_events(mut response: reqwest::Response) -> Events {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    let mut out = Events { events: Vec::new(), error: None, rest: String::new() };
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
            Ok(None) => break,
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let mut name = None;
            let mut data = None;
            for line in event.trim_end().lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap());
                } else {
                    panic!("unexpected line {line:?}");
                }
            }
            let data = data.expect("every event has data");
            out.events.push(Event { name, data });
        }
    }
    out.rest = buffer;
    out
}
