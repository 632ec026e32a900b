//! Routing and resilience: retries on the next candidate, fallback models, cooldown,
//! strategies, deadlines, output clamping and the context check.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Gateway, expect_error, request_id, user};

/// Three providers on the same mock, so answers say which one served.
const PROVIDERS: &str = r#"
[[providers]]
name = "alpha"
kind = "openai"
base_url = "{mock}/v1"

[[providers]]
name = "beta"
kind = "openai"
base_url = "{mock}/v1"

[[providers]]
name = "gamma"
kind = "openai"
base_url = "{mock}/v1"
"#;

fn model(id: &str, deployments: &str, extra: &str) -> String {
    format!(
        "\n[[models]]\nid = \"{id}\"\ncontext_window = 1000\nmax_output_tokens = 100\ninput_price = 1\noutput_price = 1\n{extra}\ndeployments = [ {deployments} ]\n"
    )
}

async fn gateway(models: &str) -> Gateway {
    Gateway::start_with(Default::default(), &format!("{PROVIDERS}{models}")).await
}

async fn ask(gw: &Gateway, model: &str) -> reqwest::Response {
    gw.chat(json!({"model": model, "messages": user("hi")})).await
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test]
async fn each_kind_of_upstream_failure_moves_on_to_the_next_candidate() {
    for fault in ["500", "429", "reset", "hang", "overloaded"] {
        let deployments = format!(
            r#"{{ provider = "alpha", upstream_model = "m@fault={fault}", input_price = 0.1, output_price = 0.1, timeout_ms = 300 }}, {{ provider = "beta", upstream_model = "m" }}"#
        );
        let gw = gateway(&model("resilient", &deployments, "")).await;
        let started = Instant::now();
        let response = ask(&gw, "resilient").await;
        assert_eq!(response.status(), 200, "fault {fault}");
        assert_eq!(header(&response, "x-tokenrouter-provider"), "beta", "fault {fault}");
        assert_eq!(header(&response, "x-tokenrouter-attempts"), "2", "fault {fault}");
        assert_eq!(gw.mock.stats().request_count(), 2, "one call each, fault {fault}");
        assert!(started.elapsed() < Duration::from_secs(2), "fault {fault}: {:?}", started.elapsed());
        let row = gw.usage(&request_id(&response)).await;
        assert_eq!(row.provider, "beta");
        no_reservation_left(&gw).await;
    }
}

/// Every hold ended: nothing held in memory or in the store.
async fn no_reservation_left(gw: &Gateway) {
    gw.state.usage.flush().await;
    gw.state.usage.flush().await;
    assert_eq!(gw.db.held(gw.account_id).await.unwrap().0, 0);
    assert!(gw.db.open_holds().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_byte_is_retried_but_not_after() {
    let deployments = r#"{ provider = "alpha", upstream_model = "m@fault=reset", input_price = 0.1 }, { provider = "beta", upstream_model = "m" }"#;
    let gw = gateway(&model("streamy", deployments, "")).await;
    let response = gw.chat(json!({"model": "streamy", "stream": true, "messages": user("hi")})).await;
    assert_eq!(header(&response, "x-tokenrouter-provider"), "beta");
    assert!(response.text().await.unwrap().ends_with("data: [DONE]\n\n"));

    let cut = r#"{ provider = "alpha", upstream_model = "m@fault=cut:2", input_price = 0.1 }, { provider = "beta", upstream_model = "m" }"#;
    let gw = gateway(&model("cut", cut, "")).await;
    let response = gw.chat(json!({"model": "cut", "stream": true, "messages": user("hi")})).await;
    assert_eq!(header(&response, "x-tokenrouter-provider"), "alpha");
    assert_eq!(header(&response, "x-tokenrouter-attempts"), "1");
    let id = request_id(&response);
    let text = response.text().await.unwrap();
    let events: Vec<Value> =
        text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(|e| serde_json::from_str(e).unwrap()).collect();
    let n = events.len();
    assert_eq!(events[n - 2]["choices"][0]["finish_reason"], "error", "{text}");
    assert_eq!(events[n - 1]["error"]["code"], "upstream_unavailable");
    assert_eq!(gw.mock.stats().request_count(), 1, "no retry after the first byte");
    let row = gw.usage(&id).await;
    assert_eq!(row.usage.completion_tokens, 2, "billed for what was delivered");
    no_reservation_left(&gw).await;
}

#[tokio::test]
async fn a_request_the_upstream_refuses_is_not_retried() {
    let deployments = r#"{ provider = "alpha", upstream_model = "m", input_price = 0.1 }, { provider = "beta", upstream_model = "m" }"#;
    let gw = gateway(&model("strict", deployments, "")).await;
    let response = gw.chat(json!({"model": "strict", "messages": user("hi"), "mock": {"bogus": 1}})).await;
    assert_eq!(response.status(), 400);
    assert_eq!(header(&response, "x-tokenrouter-attempts"), "1");
    assert_eq!(gw.mock.stats().request_count(), 1);
}

#[tokio::test]
async fn attempts_are_bounded_and_the_last_error_is_reported() {
    let deployments = r#"{ provider = "alpha", upstream_model = "m@fault=500" }, { provider = "beta", upstream_model = "m@fault=500" }, { provider = "gamma", upstream_model = "m@fault=500" }"#;
    let extra = "[server]\nmax_attempts = 2\n";
    let gw =
        Gateway::start_with(Default::default(), &format!("{extra}{PROVIDERS}{}", model("doomed", deployments, "")))
            .await;
    let response = ask(&gw, "doomed").await;
    assert_eq!(header(&response, "x-tokenrouter-attempts"), "2");
    expect_error(response, 502, "upstream_unavailable").await;
    assert_eq!(gw.mock.stats().request_count(), 2);
    no_reservation_left(&gw).await;
}

#[tokio::test]
async fn fallback_models_from_the_header_the_body_or_config() {
    let models = format!(
        "{}{}{}",
        model("broken", r#"{ provider = "alpha", upstream_model = "m@fault=500" }"#, ""),
        model("spare", r#"{ provider = "beta", upstream_model = "m" }"#, ""),
        model("configured", r#"{ provider = "alpha", upstream_model = "m@fault=500" }"#, "fallbacks = [\"spare\"]"),
    );
    let gw = gateway(&models).await;
    let via_header = gw
        .post("/v1/chat/completions")
        .header("x-tokenrouter-fallback", "spare")
        .json(&json!({"model": "broken", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(via_header.status(), 200);
    assert_eq!(header(&via_header, "x-tokenrouter-fallback-model"), "spare");
    assert_eq!(header(&via_header, "x-tokenrouter-provider"), "beta");
    assert_eq!(header(&via_header, "x-tokenrouter-attempts"), "2");
    let row = gw.usage(&request_id(&via_header)).await;
    assert_eq!(row.model, "spare");

    let via_body = gw.chat(json!({"model": "broken", "models": ["spare"], "messages": user("hi")})).await;
    assert_eq!(header(&via_body, "x-tokenrouter-fallback-model"), "spare");
    assert!(gw.mock.stats().last_request().unwrap().body.get("models").is_none(), "a gateway field, not sent upstream");

    let via_config = ask(&gw, "configured").await;
    assert_eq!(header(&via_config, "x-tokenrouter-fallback-model"), "spare");

    let unknown = gw.chat(json!({"model": "broken", "models": ["nope"], "messages": user("hi")})).await;
    expect_error(unknown, 404, "model_not_found").await;
}

#[tokio::test]
async fn a_failing_deployment_cools_down_and_all_cooling_answers_503() {
    let deployments = r#"{ provider = "alpha", upstream_model = "m@fault=500", input_price = 0.1 }, { provider = "beta", upstream_model = "m" }"#;
    let gw = gateway(&model("flaky", deployments, "")).await;
    for _ in 0..3 {
        let response = ask(&gw, "flaky").await;
        assert_eq!(header(&response, "x-tokenrouter-attempts"), "2");
    }
    // Three consecutive failures: alpha is cooling and skipped.
    let calls = gw.mock.stats().request_count();
    let response = ask(&gw, "flaky").await;
    assert_eq!(header(&response, "x-tokenrouter-attempts"), "1");
    assert_eq!(header(&response, "x-tokenrouter-provider"), "beta");
    assert_eq!(gw.mock.stats().request_count(), calls + 1);

    let only = model("lonely", r#"{ provider = "alpha", upstream_model = "m@fault=500" }"#, "");
    let gw = gateway(&only).await;
    for _ in 0..3 {
        expect_error(ask(&gw, "lonely").await, 502, "upstream_unavailable").await;
    }
    let response = ask(&gw, "lonely").await;
    let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    expect_error(response, 503, "upstream_unavailable").await;
    assert_eq!(gw.mock.stats().request_count(), 3, "no call while cooling");
}

#[tokio::test]
async fn a_429_cools_only_that_deployment_for_its_retry_after() {
    let deployments = r#"{ provider = "alpha", upstream_model = "m@fault=429,retry_after_secs=30", input_price = 0.1 }, { provider = "beta", upstream_model = "m" }"#;
    let gw = gateway(&model("limited", deployments, "")).await;
    assert_eq!(header(&ask(&gw, "limited").await, "x-tokenrouter-attempts"), "2");
    assert_eq!(header(&ask(&gw, "limited").await, "x-tokenrouter-attempts"), "1", "alpha skipped at once");
}

#[tokio::test]
async fn strategies_order_the_candidates() {
    let deployments = r#"{ provider = "alpha", upstream_model = "m", input_price = 5, output_price = 5 }, { provider = "beta", upstream_model = "m", input_price = 0.5, output_price = 0.5 }"#;
    let gw = gateway(&model("priced", deployments, "")).await;
    assert_eq!(header(&ask(&gw, "priced").await, "x-tokenrouter-provider"), "beta", "cost: cheapest first");

    let latency =
        r#"{ provider = "alpha", upstream_model = "m@latency_ms=60" }, { provider = "beta", upstream_model = "m" }"#;
    let gw = gateway(&model("quick", latency, "strategy = \"latency\"")).await;
    for _ in 0..6 {
        ask(&gw, "quick").await;
    }
    let mut beta = 0;
    for _ in 0..20 {
        beta += usize::from(header(&ask(&gw, "quick").await, "x-tokenrouter-provider") == "beta");
    }
    assert!(beta >= 18, "latency: the fast deployment serves nearly all ({beta}/20)");

    let weighted = r#"{ provider = "alpha", upstream_model = "m", weight = 1 }, { provider = "beta", upstream_model = "m", weight = 3 }"#;
    let gw = gateway(&model("shared", weighted, "")).await;
    let mut alpha = 0;
    for _ in 0..1000 {
        let response = gw
            .post("/v1/chat/completions")
            .header("x-tokenrouter-strategy", "round-robin")
            .json(&json!({"model": "shared", "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        alpha += usize::from(header(&response, "x-tokenrouter-provider") == "alpha");
    }
    assert!((200..=300).contains(&alpha), "round-robin 1:3 over 1000: alpha served {alpha}");

    let bad = gw
        .post("/v1/chat/completions")
        .header("x-tokenrouter-strategy", "fastest")
        .json(&json!({"model": "shared", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    expect_error(bad, 400, "invalid_request").await;
}

#[tokio::test]
async fn the_whole_request_has_one_deadline() {
    let deployments = r#"{ provider = "alpha", upstream_model = "m@fault=hang" }, { provider = "beta", upstream_model = "m@fault=hang" }"#;
    let extra = "[server]\nrequest_timeout_ms = 400\nupstream_timeout_ms = 300\n";
    let gw = Gateway::start_with(Default::default(), &format!("{extra}{PROVIDERS}{}", model("stuck", deployments, "")))
        .await;
    let started = Instant::now();
    let response = ask(&gw, "stuck").await;
    let waited = started.elapsed();
    expect_error(response, 504, "upstream_timeout").await;
    assert!(waited >= Duration::from_millis(390) && waited < Duration::from_millis(900), "{waited:?}");
    no_reservation_left(&gw).await;
}

#[tokio::test]
async fn a_silent_stream_ends_after_its_idle_timeout() {
    let deployments = r#"{ provider = "alpha", upstream_model = "m@tokens_per_second=2", idle_timeout_ms = 200 }"#;
    let gw = gateway(&model("sleepy", deployments, "")).await;
    let started = Instant::now();
    let response = gw.chat(json!({"model": "sleepy", "stream": true, "messages": user("hi")})).await;
    let text = response.text().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(text.contains("\"finish_reason\":\"error\""), "{text}");
    assert!(text.contains("sent nothing"), "{text}");
}

#[tokio::test]
async fn output_limits_are_clamped_and_oversized_prompts_refused_without_a_call() {
    let gw = gateway(&model("small", r#"{ provider = "alpha", upstream_model = "m" }"#, "")).await;
    let response = gw.chat(json!({"model": "small", "messages": user("hi"), "max_tokens": 5000})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(gw.mock.stats().last_request().unwrap().body["max_tokens"], 100, "clamped to max_output_tokens");

    let long = "lorem ipsum dolor sit amet ".repeat(300);
    let response = gw.chat(json!({"model": "small", "messages": user(&long)})).await;
    let error = expect_error(response, 400, "context_length_exceeded").await;
    assert!(error["error"]["message"].as_str().unwrap().contains("maximum context length is 1000 tokens"), "{error}");
    assert_eq!(gw.mock.stats().request_count(), 1, "the oversized prompt never reached the upstream");
}
