//! A hostile community instance cannot bill more than the gateway counted it delivered
//! (CONTRACTS §7 "Earnings", issue 14): a stream that ends early with an inflated prompt,
//! chunks that carry no delivered text, one byte per chunk, no usage report at all, and
//! refusals of every request (failed over, counted toward offline, never relayed). Each
//! hostile instance is a scripted HTTP/1.1 server on 127.0.0.1; the honest one is the
//! project's mock (`instances_routing`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenrouter::instances::connector::{self, Resolver, Settings};
use tokenrouter::instances::probe::{self, CANARY_PROMPT};
use tokenrouter::instances::routing::own_completion;
use tokenrouter_core::{NanoUsd, Usage};
use tokenrouter_mock::MockConfig;
use tokenrouter_store::{InstanceStatus, ProbeStatus, UsageRecord, UsageSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Gateway, expect_error, request_id, user};
use crate::instances_routing::{
    EXTRA, Setup, books_balance, chat_body, honest_knobs, ledger, register_at, setup, wait_listed,
};

/// The request's output limit in every test here.
const MAX_TOKENS: u64 = 50;

type Script = Arc<dyn Fn(usize, &Value) -> Vec<u8> + Send + Sync>;

struct Hostile {
    gw: Gateway,
    owner: i64,
    id: String,
    /// Requests the instance received.
    hits: Arc<AtomicUsize>,
}

/// A gateway with one online instance answering each request (its number, its JSON
/// body) with the raw HTTP response `script` gives, then closing the connection.
async fn hostile(script: impl Fn(usize, &Value) -> Vec<u8> + Send + Sync + 'static) -> Hostile {
    let script: Script = Arc::new(script);
    serving(move |mut socket, n, body| {
        let answer = script(n, &body);
        async move {
            let _ = socket.write_all(&answer).await;
            let _ = socket.shutdown().await;
        }
    })
    .await
}

/// A gateway with one online instance whose every request (after the probe's) is handed,
/// read, to `serve` with its number and JSON body.
async fn serving<F, Fut>(serve: F) -> Hostile
where
    F: Fn(TcpStream, usize, Value) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (serve, counted) = (serve.clone(), counted.clone());
            tokio::spawn(async move {
                if let Some(body) = read_request(&mut socket).await {
                    let n = counted.fetch_add(1, Ordering::SeqCst);
                    serve(socket, n, body).await;
                }
            });
        }
    });
    let gw = Gateway::start_with(MockConfig::default(), EXTRA).await;
    let owner = gw.db.create_account("owner", NanoUsd::ZERO).await.unwrap().id;
    let id = register_at(&gw, owner, url).await;
    wait_listed(&gw, &gw.key, "community-llama", true).await;
    Hostile { gw, owner, id, hits }
}

/// Reads one request: its head, then `content-length` bytes of body (`Null` when not
/// JSON); `None` when the connection ends first.
async fn read_request(socket: &mut TcpStream) -> Option<Value> {
    let (mut read, mut buf) = (Vec::new(), [0u8; 8192]);
    let head_end = loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => read.extend_from_slice(&buf[..n]),
        }
        if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&read[..head_end]).to_ascii_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    while read.len() < head_end + length {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => read.extend_from_slice(&buf[..n]),
        }
    }
    Some(serde_json::from_slice(&read[head_end..head_end + length]).unwrap_or(Value::Null))
}

/// A 200 event stream of `events` (each an SSE `data`), ended by closing the connection.
fn sse(events: &[String]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_vec();
    for event in events {
        out.extend_from_slice(format!("data: {event}\n\n").as_bytes());
    }
    out
}

fn json_answer(status: u16, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn chunk(delta: Value) -> String {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "llama-up",
        "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
    .to_string()
}

fn usage_chunk(prompt: u64, completion: u64) -> String {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "llama-up", "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})
    .to_string()
}

/// A streamed request for `community-llama` whose prompt names what the instance does.
fn streamed(what: &str) -> Value {
    json!({"model": "community-llama", "messages": user(what), "max_tokens": MAX_TOKENS, "stream": true,
        "stream_options": {"include_usage": true}})
}

/// Sends `body`; its usage row, after the answer was read to its end.
async fn charged(gw: &Gateway, body: &Value) -> UsageRecord {
    let response = gw.chat(body.clone()).await;
    assert_eq!(response.status(), 200);
    let rid = request_id(&response);
    let _ = response.text().await.unwrap();
    gw.usage(&rid).await
}

/// The gateway's prompt estimate for `body`, and the amount held for it.
fn bounds(gw: &Gateway, body: &Value) -> (u64, NanoUsd) {
    let prompt = tokenrouter::tokens::reservation_estimate(&serde_json::to_vec(body).unwrap());
    let price = gw.state.config.load().model("community-llama").unwrap().price;
    (prompt, price.cost(&Usage { prompt_tokens: prompt, completion_tokens: MAX_TOKENS, ..Usage::default() }))
}

/// The owner earned their share of exactly what the consumer was charged.
async fn paid_exactly(h: &Hostile, usage: &UsageRecord) {
    let earning = ledger(&h.gw, h.owner).await.into_iter().find(|r| r.request_id.as_deref() == Some(&usage.request_id));
    assert_eq!(earning.unwrap().amount.0, h.gw.state.config.load().instances.owner_earning(usage.cost.0));
    books_balance(&h.gw, &[h.gw.account_id, h.owner]).await;
}

async fn flagged(gw: &Gateway, id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if gw.db.instance_by_id(id).await.unwrap().unwrap().usage_flagged_at.is_some() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_stream_ending_early_is_charged_no_more_prompt_than_the_gateways_estimate() {
    let h = hostile(|_, _| {
        let delta = |text: &str| json!({"content": text});
        sse(&[chunk(delta("Hello")), chunk(delta(" there")), usage_chunk(128_000, 0)])
    })
    .await;
    let body = streamed("Tell me about instances.");
    let usage = charged(&h.gw, &body).await;
    let (prompt, hold) = bounds(&h.gw, &body);
    assert!(prompt < 128_000);
    assert!(usage.usage.prompt_tokens <= prompt, "{usage:?} vs the estimate {prompt}");
    assert!((2..=own_completion(11, 2)).contains(&usage.usage.completion_tokens), "{usage:?}");
    assert_eq!(usage.usage_source, UsageSource::Counted);
    assert!(usage.cost <= hold, "{usage:?} above the hold {hold:?}");
    paid_exactly(&h, &usage).await;
    assert!(flagged(&h.gw, &h.id).await, "the inflated prompt is flagged");
}

#[tokio::test]
async fn only_chunks_carrying_text_count_and_never_past_the_output_limit() {
    const CHUNKS: u64 = 3_000;
    let h = hostile(|_, body| {
        let what = body["messages"][0]["content"].as_str().unwrap_or_default().to_owned();
        let mut events: Vec<String> = (0..CHUNKS)
            .map(|_| match what.as_str() {
                // A `"content"` member where no client reads text.
                "hidden" => json!({"choices": [{"index": 0, "delta": {}}], "x": {"content": "a"}}).to_string(),
                _ => chunk(json!({"content": "a"})),
            })
            .collect();
        if what != "silent" {
            events.push(usage_chunk(5, CHUNKS));
        }
        events.push("[DONE]".to_owned());
        sse(&events)
    })
    .await;

    let hidden = charged(&h.gw, &streamed("hidden")).await;
    assert!(hidden.usage.completion_tokens <= own_completion(0, 0), "nothing delivered: {hidden:?}");
    paid_exactly(&h, &hidden).await;
    assert!(flagged(&h.gw, &h.id).await, "the over-report is flagged");

    // One byte a chunk: at most the request's output limit.
    let body = streamed("bytes");
    let bytes = charged(&h.gw, &body).await;
    assert_eq!(bytes.usage.completion_tokens, MAX_TOKENS, "{bytes:?}");
    assert!(bytes.cost <= bounds(&h.gw, &body).1);
    paid_exactly(&h, &bytes).await;

    // No usage report: the gateway's count, within the same limit.
    let body = streamed("silent");
    let silent = charged(&h.gw, &body).await;
    assert_eq!(silent.usage_source, UsageSource::Counted);
    assert_eq!(silent.usage.completion_tokens, MAX_TOKENS, "{silent:?}");
    assert!(silent.usage.prompt_tokens <= bounds(&h.gw, &body).0);
    paid_exactly(&h, &silent).await;
}

#[tokio::test]
async fn a_whole_answer_is_charged_within_the_output_limit_with_or_without_usage() {
    let h = hostile(|_, body| {
        let reports = body["messages"][0]["content"] == "reported";
        let arguments = format!("{{\"x\":\"{}\"}}", "a".repeat(30_000));
        let mut answer = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "llama-up",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": arguments}}]}}]});
        if reports {
            answer["usage"] = json!({"prompt_tokens": 5, "completion_tokens": 10_000, "total_tokens": 10_005});
        }
        json_answer(200, &answer)
    })
    .await;
    for what in ["reported", "silent"] {
        let body = json!({"model": "community-llama", "messages": user(what), "max_tokens": MAX_TOKENS});
        let usage = charged(&h.gw, &body).await;
        assert_eq!(usage.usage.completion_tokens, MAX_TOKENS, "{what}: {usage:?}");
        assert!(usage.cost <= bounds(&h.gw, &body).1);
        paid_exactly(&h, &usage).await;
    }
}

#[tokio::test]
async fn an_instance_refusing_every_request_fails_over_goes_offline_and_is_never_relayed() {
    let h = hostile(|n, _| {
        let status = [400, 422, 409, 413][n % 4];
        json_answer(
            status,
            &json!({"error": {"message": "EVIL: pay me", "type": "invalid_request_error", "code": "x"}}),
        )
    })
    .await;
    // The only deployment refused: the documented error, in the gateway's words — and no
    // strike, since nothing shows the request could be answered (a consumer's bad
    // requests must not take honest instances offline).
    for _ in 0..3 {
        let response = h.gw.chat(chat_body("community-llama")).await;
        let (status, text) = (response.status(), response.text().await.unwrap());
        assert_eq!(status, 502, "{text}");
        assert!(!text.contains("EVIL"), "the instance's message is never relayed: {text}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.gw.db.instance_by_id(&h.id).await.unwrap().unwrap().status, InstanceStatus::Online);
    // Refusals of requests another deployment answers count: three in a row take it offline.
    for _ in 0..3 {
        let response = h.gw.chat(chat_body("shared-model")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-tokenrouter-provider"], "mock", "failed over to the configured deployment");
        assert!(!response.text().await.unwrap().contains("EVIL"));
    }
    assert_eq!(h.hits.load(Ordering::SeqCst), 6, "every request tried the instance first");
    let deadline = Instant::now() + Duration::from_secs(2);
    while h.gw.db.instance_by_id(&h.id).await.unwrap().unwrap().status != InstanceStatus::Offline {
        assert!(Instant::now() < deadline, "3 refused requests answered elsewhere take it offline");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_listed(&h.gw, &h.gw.key, "community-llama", false).await;
    expect_error(h.gw.chat(chat_body("community-llama")).await, 502, "upstream_unavailable").await;
    assert!(ledger(&h.gw, h.owner).await.is_empty(), "a refusing instance earns nothing");
    books_balance(&h.gw, &[h.gw.account_id, h.owner]).await;
}

#[tokio::test]
async fn a_probe_sends_the_headers_of_an_ordinary_request() {
    let Setup { gw, server, id, .. } = setup(honest_knobs()).await;
    assert_eq!(gw.chat(chat_body("community-llama")).await.status(), 200);
    let instance = gw.db.instance_by_id(&id).await.unwrap().unwrap();
    let settings = Settings {
        allow_private: true,
        connect_timeout: Duration::from_secs(1),
        resolver: Resolver::Table(Arc::default()),
    };
    let result = probe::probe(&connector::client(&settings), &instance, &gw.state.config.load_full()).await;
    assert_eq!(result.status, ProbeStatus::Online, "{}", result.detail);
    let requests = server.stats().requests();
    let consumer = requests.iter().find(|r| r.body.to_string().contains("about instances")).unwrap();
    let canary = requests.iter().find(|r| r.body.to_string().contains(CANARY_PROMPT)).expect("the canary");
    for name in ["user-agent", "accept", "content-type"] {
        assert_eq!(canary.header(name), consumer.header(name), "{name}");
    }
    let probe_like = |(name, value): &(String, String)| name.contains("probe") || value.contains("probe");
    assert!(!requests.iter().any(|r| r.headers.iter().any(probe_like)), "nothing names the probe");
}

/// The consumer's stream ended with the gateway's error event.
fn ended_with_an_error(text: &str) {
    assert!(text.contains(r#""finish_reason":"error""#), "{text}");
    assert!(text.contains(r#""code":"upstream_unavailable""#), "{text}");
}

#[tokio::test]
async fn an_instance_streaming_forever_is_cut_off_and_paid_within_the_output_limit() {
    let h = serving(|mut socket, _, _| async move {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
        if socket.write_all(head).await.is_err() {
            return;
        }
        let event = format!("data: {}\n\n", chunk(json!({"content": "word "})));
        // Until the gateway hangs up (bounded, so that a broken gateway fails the test
        // rather than filling the disk).
        for _ in 0..1_000_000 {
            if socket.write_all(event.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    let body = streamed("Never stop.");
    let response = h.gw.chat(body.clone()).await;
    assert_eq!(response.status(), 200);
    let rid = request_id(&response);
    let text = tokio::time::timeout(Duration::from_secs(10), response.text()).await.expect("the stream ends").unwrap();
    assert!(text.contains("past the request's output limit"), "{text}");
    ended_with_an_error(&text);
    let usage = h.gw.usage(&rid).await;
    assert_eq!(usage.usage.completion_tokens, MAX_TOKENS, "{usage:?}");
    assert!(usage.cost <= bounds(&h.gw, &body).1, "{usage:?}");
    paid_exactly(&h, &usage).await;
}

#[tokio::test]
async fn an_instance_closing_mid_answer_ends_the_stream_and_is_paid_for_what_was_delivered() {
    let h = hostile(|_, body| {
        let words: Vec<String> = (0..5).map(|_| chunk(json!({"content": "word "}))).collect();
        if body["stream"] == true {
            // Five chunks, then the connection closes: no usage, no `[DONE]`.
            sse(&words)
        } else {
            // A body cut short of its `content-length`.
            let mut whole = json_answer(200, &json!({"id": "c", "object": "chat.completion", "choices": []}));
            whole.truncate(whole.len() - 10);
            whole
        }
    })
    .await;
    let body = streamed("Stop halfway.");
    let response = h.gw.chat(body.clone()).await;
    assert_eq!(response.status(), 200);
    let rid = request_id(&response);
    let text = response.text().await.unwrap();
    assert_eq!(text.matches("word ").count(), 5, "{text}");
    ended_with_an_error(&text);
    let usage = h.gw.usage(&rid).await;
    assert_eq!(usage.usage_source, UsageSource::Counted);
    assert!((5..=own_completion(25, 5)).contains(&usage.usage.completion_tokens), "{usage:?}");
    assert!(usage.cost.0 > 0 && usage.cost <= bounds(&h.gw, &body).1, "{usage:?}");
    paid_exactly(&h, &usage).await;

    // Nothing reached the consumer yet: the request fails over to the configured deployment.
    let response = h.gw.chat(chat_body("shared-model")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tokenrouter-provider"], "mock");
    let rid = request_id(&response);
    let _ = response.text().await.unwrap();
    assert_eq!(h.hits.load(Ordering::SeqCst), 2, "the instance was tried first");
    assert_eq!(h.gw.usage(&rid).await.status, 200);
    assert!(h.gw.db.open_holds().await.unwrap().is_empty(), "no hold is left open");
    books_balance(&h.gw, &[h.gw.account_id, h.owner]).await;
}
