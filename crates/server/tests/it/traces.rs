//! Traces and JSON logs: spans posted to an in-test OTLP/HTTP collector (a client's
//! `traceparent` followed, one span per upstream attempt, the context passed on to the
//! provider); an unreachable collector costs clients nothing; `log_format = "json"` writes
//! one JSON object per stderr line and no secret.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use serde_json::{Value, json};

use crate::harness::{Gateway, config_toml, request_id, user};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const PROMPT: &str = "a prompt that must never be exported";

/// Every span the collector received.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Value>>>);

impl Collector {
    /// Listens on 127.0.0.1:0 for OTLP/HTTP JSON; returns its base URL.
    async fn start(&self) -> String {
        let spans = self.0.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |body: axum::body::Bytes| async move {
                let export: Value = serde_json::from_slice(&body).unwrap();
                for resource in export["resourceSpans"].as_array().unwrap() {
                    for scope in resource["scopeSpans"].as_array().unwrap() {
                        spans.lock().unwrap().extend(scope["spans"].as_array().unwrap().iter().cloned());
                    }
                }
                axum::Json(json!({}))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }

    /// Flushes the gateway's exporter until `count` spans of `trace_id` arrived.
    async fn wait_for(&self, gw: &Gateway, trace_id: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            gw.state.traces.as_ref().unwrap().flush().await;
            let spans: Vec<Value> = self.spans().into_iter().filter(|s| s["traceId"] == trace_id).collect();
            if spans.len() >= count {
                return spans;
            }
            assert!(Instant::now() < deadline, "{} of {count} spans arrived: {spans:?}", spans.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A span attribute's value as JSON text or number (OTLP JSON writes 64-bit ints as strings).
fn attr(span: &Value, key: &str) -> Option<Value> {
    let value = span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?["value"].clone();
    let (kind, inner) = value.as_object()?.iter().next()?;
    Some(match (kind.as_str(), inner) {
        ("intValue", Value::String(s)) => json!(s.parse::<i64>().unwrap()),
        _ => inner.clone(),
    })
}

fn int(span: &Value, key: &str) -> i64 {
    attr(span, key).and_then(|v| v.as_i64()).unwrap_or_else(|| panic!("no integer {key} in {span}"))
}

fn text(span: &Value, key: &str) -> String {
    attr(span, key).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| panic!("no text {key} in {span}"))
}

/// The span's `gen_ai.response.finish_reasons` (an OTLP array of strings).
fn finish_reasons(span: &Value) -> Vec<String> {
    let values = attr(span, "gen_ai.response.finish_reasons").unwrap_or_else(|| panic!("no finish reasons in {span}"));
    values["values"].as_array().unwrap().iter().map(|v| v["stringValue"].as_str().unwrap().to_owned()).collect()
}

/// OTLP span kinds.
const SERVER: i64 = 2;
const CLIENT: i64 = 3;

const PROVIDERS: &str = r#"
[[providers]]
name = "alpha"
kind = "openai"
base_url = "{mock}/v1"
api_key = "alpha-provider-secret"

[[providers]]
name = "beta"
kind = "openai"
base_url = "{mock}/v1"
api_key = "beta-provider-secret"

[[models]]
id = "traced"
context_window = 1000
max_output_tokens = 100
input_price = 1
output_price = 1
deployments = [ { provider = "alpha", upstream_model = "m@fault=500", input_price = 0.1, output_price = 0.1 }, { provider = "beta", upstream_model = "m" } ]
"#;

async fn traced_gateway(collector: &Collector) -> Gateway {
    let endpoint = collector.start().await;
    Gateway::start_with(Default::default(), &format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\n{PROVIDERS}")).await
}

/// A chat completion sent under the client's `traceparent`.
async fn traced_chat(gw: &Gateway, traceparent: &str, body: Value) -> reqwest::Response {
    gw.post("/v1/chat/completions").header("traceparent", traceparent).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn a_request_is_a_server_span_under_the_clients_parent_with_a_client_span_per_attempt() {
    let collector = Collector::default();
    let gw = traced_gateway(&collector).await;
    let response = gw
        .post("/v1/chat/completions")
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=opaque")
        .json(&json!({"model": "traced", "messages": user(PROMPT), "max_tokens": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tokenrouter-attempts"], "2");
    let id = request_id(&response);
    let _answer: Value = response.json().await.unwrap();

    let spans = collector.wait_for(&gw, TRACE_ID, 3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let server = spans.iter().find(|s| s["kind"] == SERVER).expect("a server span");
    assert_eq!(server["parentSpanId"], CLIENT_SPAN);
    assert_eq!(server["name"], "chat traced");
    assert_eq!(text(server, "gen_ai.operation.name"), "chat");
    assert_eq!(text(server, "gen_ai.request.model"), "traced");
    assert_eq!(text(server, "gen_ai.response.model"), "m");
    assert_eq!(text(server, "gen_ai.provider.name"), "beta");
    assert_eq!(text(server, "tokenrouter.request_id"), id);
    assert_eq!(int(server, "gen_ai.request.max_tokens"), 50);
    assert_eq!(int(server, "http.response.status_code"), 200);
    assert!(int(server, "gen_ai.usage.input_tokens") > 0 && int(server, "gen_ai.usage.output_tokens") > 0);
    assert_eq!(attr(server, "stream"), Some(json!(false)));
    assert_eq!(attr(server, "error.type"), None);
    assert_eq!(finish_reasons(server), ["stop"]);

    let attempts: Vec<&Value> = spans.iter().filter(|s| s["kind"] == CLIENT).collect();
    assert_eq!(attempts.len(), 2);
    for attempt in &attempts {
        assert_eq!(attempt["parentSpanId"], server["spanId"], "{attempt}");
        assert_eq!(text(attempt, "server.address"), "127.0.0.1");
    }
    let by = |provider: &str| *attempts.iter().find(|s| text(s, "gen_ai.provider.name") == provider).unwrap();
    let (failed, answered) = (by("alpha"), by("beta"));
    assert_eq!((int(failed, "http.response.status_code"), text(failed, "error.type")), (500, "server_error".into()));
    assert_eq!(text(failed, "tokenrouter.outcome"), "server_error");
    assert_eq!((int(answered, "http.response.status_code"), text(answered, "tokenrouter.outcome")), (200, "ok".into()));
    assert_eq!(attr(answered, "error.type"), None);
    assert_eq!(answered["name"], "chat m");

    // Each upstream request named its own attempt as the parent, in the client's trace.
    let seen = gw.mock.stats().requests();
    assert_eq!(seen.len(), 2);
    for (upstream, attempt) in [("m@fault=500", failed), ("m", answered)] {
        let request = seen.iter().find(|r| r.body["model"] == upstream).unwrap();
        let parent = format!("00-{TRACE_ID}-{}-01", attempt["spanId"].as_str().unwrap());
        assert_eq!(request.header("traceparent"), Some(parent.as_str()), "{upstream}");
        assert_eq!(request.header("tracestate"), None, "the client's tracestate stays with the gateway");
    }

    // No prompt and no key in what was exported.
    let exported = serde_json::to_string(&collector.spans()).unwrap();
    for secret in [PROMPT, gw.key.as_str(), "alpha-provider-secret", "beta-provider-secret"] {
        assert!(!exported.contains(secret), "{secret} was exported");
    }
}

#[tokio::test]
async fn a_stream_and_a_refusal_are_traced_too() {
    let collector = Collector::default();
    let gw = traced_gateway(&collector).await;
    // A stream: its usage is known only at its end, and still reaches the span.
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let response = traced_chat(
        &gw,
        &format!("00-{trace}-b7ad6b7169203331-01"),
        json!({"model": "gpt-4o-mini", "messages": user("hi"), "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("[DONE]"));
    let spans = collector.wait_for(&gw, trace, 2).await;
    let server = spans.iter().find(|s| s["kind"] == SERVER).unwrap();
    assert_eq!(server["name"], "chat gpt-4o-mini");
    assert_eq!(attr(server, "stream"), Some(json!(true)));
    assert!(int(server, "gen_ai.usage.output_tokens") > 0, "{server}");
    assert_eq!(text(server, "gen_ai.response.model"), "mock-gpt");
    assert_eq!(finish_reasons(server), ["stop"], "read off the chunks as they passed");

    // A request the gateway refuses: a span with its error, and no attempt.
    let trace = "11111111111111111111111111111111";
    let response = traced_chat(
        &gw,
        &format!("00-{trace}-2222222222222222-01"),
        json!({"model": "no-such-model", "messages": user("hi")}),
    )
    .await;
    assert_eq!(response.status(), 404);
    let spans = collector.wait_for(&gw, trace, 1).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(int(&spans[0], "http.response.status_code"), 404);
    assert_eq!(text(&spans[0], "error.type"), "model_not_found");
    assert_eq!(spans[0]["name"], "chat", "a model nobody serves stays out of the span's name");
}

#[tokio::test]
async fn why_an_answer_ended_reaches_the_span_on_every_surface() {
    let collector = Collector::default();
    let gw = traced_gateway(&collector).await;
    let traced = |trace: &str| format!("00-{trace}-b7ad6b7169203331-01");
    // Anthropic Messages, cut short by its token limit: the canonical reason.
    let trace = "33333333333333333333333333333333";
    let response = gw
        .post("/v1/messages")
        .header("traceparent", traced(trace))
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 2, "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["stop_reason"], "max_tokens");
    let spans = collector.wait_for(&gw, trace, 2).await;
    assert_eq!(finish_reasons(spans.iter().find(|s| s["kind"] == SERVER).unwrap()), ["length"]);

    // The Responses API, streamed and translated: the reason of its canonical chunks.
    let trace = "44444444444444444444444444444444";
    let response = gw
        .post("/v1/responses")
        .header("traceparent", traced(trace))
        .json(&json!({"model": "gpt-4o-mini", "input": "hi", "stream": true, "max_output_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("response.incomplete"));
    let spans = collector.wait_for(&gw, trace, 2).await;
    assert_eq!(finish_reasons(spans.iter().find(|s| s["kind"] == SERVER).unwrap()), ["length"]);

    // Legacy completions, several choices: one reason each.
    let trace = "55555555555555555555555555555555";
    let response = gw
        .post("/v1/completions")
        .header("traceparent", traced(trace))
        .json(&json!({"model": "gpt-4o-mini", "prompt": "hi", "n": 2, "max_tokens": 200}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spans = collector.wait_for(&gw, trace, 2).await;
    assert_eq!(finish_reasons(spans.iter().find(|s| s["kind"] == SERVER).unwrap()), ["stop", "stop"]);
}

#[tokio::test]
async fn the_sample_ratio_applies_to_new_traces_and_a_sampled_client_is_followed() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let extra = format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\ntrace_sample_ratio = 0.0\n");
    let gw = Gateway::start_with(Default::default(), &extra).await;
    let response = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("hi")})).await;
    assert_eq!(response.status(), 200);
    // Not sampled: the provider still learns the trace, marked as not sampled.
    let unsampled = gw.mock.stats().last_request().unwrap();
    let traceparent = unsampled.header("traceparent").unwrap();
    assert!(traceparent.starts_with("00-") && traceparent.ends_with("-00"), "{traceparent}");
    let response = traced_chat(
        &gw,
        &format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"),
        json!({"model": "gpt-4o-mini", "messages": user("hi")}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let spans = collector.wait_for(&gw, TRACE_ID, 2).await;
    assert_eq!(spans.len(), 2);
    // Only the client's trace was exported.
    assert!(collector.spans().iter().all(|s| s["traceId"] == TRACE_ID));
}

#[tokio::test]
async fn a_community_instance_gets_no_trace_context_and_its_address_stays_out_of_spans() {
    use crate::instances_routing::{EXTRA, honest_knobs, register_at, wait_listed};
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let gw =
        Gateway::start_with(Default::default(), &format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\n{EXTRA}")).await;
    let owner = gw.db.create_account("owner", tokenrouter_core::NanoUsd::ZERO).await.unwrap().id;
    let config = tokenrouter_mock::MockConfig { instance: honest_knobs(), ..Default::default() };
    let instance = tokenrouter_mock::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
    register_at(&gw, owner, instance.base_url()).await;
    wait_listed(&gw, &gw.key, "community-llama", true).await;
    let response = traced_chat(
        &gw,
        &format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"),
        json!({"model": "community-llama", "messages": user("hi")}),
    )
    .await;
    assert_eq!(response.status(), 200);
    // Its probes carry no trace context: neither may requests, or it could tell them apart.
    let seen = instance.stats().requests();
    let served = seen.iter().find(|r| r.body["messages"][0]["content"] == "hi").unwrap();
    assert_eq!(served.header("traceparent"), None);
    let spans = collector.wait_for(&gw, TRACE_ID, 2).await;
    let attempt = spans.iter().find(|s| s["kind"] == CLIENT).unwrap();
    assert_eq!(attr(attempt, "server.address"), None);
    assert_eq!(text(attempt, "tokenrouter.outcome"), "ok");
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_traced_or_propagated() {
    let gw = Gateway::start().await;
    assert!(gw.state.traces.is_none());
    let response = traced_chat(
        &gw,
        &format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"),
        json!({"model": "gpt-4o-mini", "messages": user("hi")}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let upstream = gw.mock.stats().last_request().unwrap();
    assert_eq!(upstream.header("traceparent"), None);
    assert_eq!(upstream.header("tracestate"), None);
}

#[tokio::test]
async fn an_unreachable_collector_costs_clients_nothing() {
    // A collector that accepts connections and never answers, the worst kind.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let gw = Gateway::start_with(Default::default(), &format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\n")).await;
    for n in 0..20 {
        let started = Instant::now();
        let response = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("hi")})).await;
        assert_eq!(response.status(), 200, "request {n}");
        let _: Value = response.json().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "request {n} took {:?}", started.elapsed());
    }
    // Stopping gives up on the collector within its export timeout.
    let started = Instant::now();
    gw.state.traces.as_ref().unwrap().shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(15), "shutdown took {:?}", started.elapsed());
    drop(silent);
}

/// The real binary: JSON logs, and the spans it still had are sent when it stops.
/// (Two workers: the mock and the collector answer while the test waits on the process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_without_secrets_and_spans_are_sent_on_stop() {
    let mock = tokenrouter_mock::start("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let telemetry = format!("[telemetry]\nlog_format = \"json\"\notlp_endpoint = \"{endpoint}\"\n");
    let config = config_toml(&mock.base_url(), &telemetry);
    std::fs::write(dir.path().join("gw.toml"), &config).unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tokenrouter"))
            .args(["--database", &db_url, "--config", "gw.toml"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["accounts", "create", "acme", "--balance", "10"]);
    let key = cli(&["keys", "create", "--account", "acme"]).lines().last().unwrap().trim().to_owned();

    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenrouter"))
        .args(["--database", &db_url, "--config", "gw.toml", "serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let addr = loop {
        let line = lines_rx.recv_timeout(Duration::from_secs(30)).expect("the gateway logs that it listens");
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        lines.push(line);
        if let Some(message) = event["message"].as_str()
            && let Some(at) = message.find("http://")
        {
            break message[at..].to_owned();
        }
    };

    let http = reqwest::Client::new();
    let chat = |key: String, model: &'static str| {
        let http = http.clone();
        let url = format!("{addr}/v1/chat/completions");
        async move {
            let body = json!({"model": model, "messages": user(PROMPT)});
            http.post(url).bearer_auth(key).json(&body).send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(chat(key.clone(), "gpt-4o-mini").await, 200);
    assert!(chat(key.clone(), "dead-model").await >= 500);
    assert_eq!(chat(format!("{key}x"), "gpt-4o-mini").await, 401);
    assert_eq!(chat("sk-not-a-key".into(), "gpt-4o-mini").await, 401);

    // Stopped as an orchestrator stops it (SIGTERM), then everything it wrote is read.
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(exit.success(), "{exit:?}");
    let spans = collector.spans();
    let servers: Vec<&Value> = spans.iter().filter(|s| s["kind"] == SERVER).collect();
    assert_eq!(servers.len(), 2, "the two requests that passed auth: {spans:#?}");
    assert!(servers.iter().any(|s| s["name"] == "chat gpt-4o-mini" && int(s, "http.response.status_code") == 200));
    assert!(servers.iter().any(|s| s["name"] == "chat dead-model" && attr(s, "error.type").is_some()));
    reader.join().unwrap();
    lines.extend(lines_rx.try_iter());
    assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
    for line in &lines {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(event.get(field).is_some(), "no {field}: {line}");
        }
        // (A library's event may be fields only, such as sqlx's statement timings.)
        if event["target"].as_str().unwrap().starts_with("tokenrouter") {
            assert!(event["message"].is_string(), "no message: {line}");
        }
        assert!(event.get("fields").is_none(), "fields are flattened: {line}");
        for secret in [key.as_str(), "upstream-secret", PROMPT] {
            assert!(!line.contains(secret), "a secret was logged: {line}");
        }
    }
    assert!(
        lines.iter().any(|l| serde_json::from_str::<Value>(l).unwrap()["models"].is_number()),
        "the listen line's fields sit beside its message"
    );
    // One line per metered request (gathered and written together, all out before exit).
    let requests: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["target"] == "tokenrouter::request")
        .collect();
    assert_eq!(requests.len(), 2, "{lines:?}");
    let answered = requests.iter().find(|e| e["status"] == 200).expect("the answered request's line");
    assert_eq!(
        (answered["model"].as_str(), answered["route"].as_str()),
        (Some("gpt-4o-mini"), Some("chat.completions"))
    );
    assert!(answered["request_id"].as_str().unwrap().starts_with("req_"));
    assert!(answered["completion_tokens"].as_u64().unwrap() > 0 && answered["account_id"].is_number());
}

#[tokio::test]
async fn a_gateway_logging_json_reports_a_failure_to_start_as_json_too() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = config_toml("http://127.0.0.1:1/v1", "[telemetry]\nlog_format = \"json\"\n");
    std::fs::write(dir.path().join("gw.toml"), config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokenrouter"))
        .args(["--database", "sqlite://gw.db", "--config", "gw.toml", "serve", "--listen", &addr])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let last: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "ERROR");
    assert!(last["message"].as_str().unwrap().contains(&format!("cannot listen on {addr}")), "{last}");
    for line in stderr.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}
