//! `GET /metrics` after a known workload: exact counters, histogram buckets that add up,
//! the store's gauges, the optional bearer token, and nothing secret in the text.

use std::collections::HashMap;

use serde_json::json;
use tokenrouter_mock::MockConfig;

use crate::harness::{Gateway, request_id, user};

/// The samples of a scrape: series (name and labels, as written) → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
            (series.to_owned(), value.parse().unwrap_or_else(|_| panic!("not a number: {line}")))
        })
        .collect()
}

async fn scrape(gw: &Gateway) -> String {
    let response = gw.http.get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    response.text().await.unwrap()
}

const MODEL: &str = r#"gen_ai_operation_name="chat",gen_ai_request_model="gpt-4o-mini",gen_ai_provider_name="mock""#;

#[tokio::test]
async fn a_known_workload_gives_exact_counters_and_histograms() {
    let gw = Gateway::start_with(MockConfig { reply_tokens: 5, ..Default::default() }, "").await;
    let mut ids = Vec::new();
    for text in ["one", "two two", "three three three"] {
        let response = gw.chat(json!({"model": "gpt-4o-mini", "messages": user(text)})).await;
        assert_eq!(response.status(), 200);
        ids.push(request_id(&response));
    }
    let stream = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("s"), "stream": true})).await;
    assert_eq!(stream.status(), 200);
    ids.push(request_id(&stream));
    stream.text().await.unwrap();
    // Three failures in a row cool a deployment down.
    let mut dead_ids = Vec::new();
    for _ in 0..3 {
        let dead = gw.chat(json!({"model": "dead-model", "messages": user("x")})).await;
        assert_eq!(dead.status(), 502);
        dead_ids.push(request_id(&dead));
    }
    let unknown = gw.chat(json!({"model": "no-such-model", "messages": user("x")})).await;
    assert_eq!(unknown.status(), 404);
    let unknown_id = request_id(&unknown);
    let anonymous = gw.http.post(format!("{}/v1/chat/completions", gw.url)).json(&json!({})).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let mut prompts = Vec::new();
    for id in &ids {
        let row = gw.usage(id).await;
        prompts.push(row.usage.prompt_tokens);
        assert_eq!(row.usage.completion_tokens, 5);
    }
    for id in &dead_ids {
        gw.usage(id).await;
    }
    gw.usage(&unknown_id).await;

    let text = scrape(&gw).await;
    let s = samples(&text);
    let get = |series: &str| *s.get(series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    let route = "/v1/chat/completions";
    assert_eq!(get(&format!(r#"tokenrouter_requests_total{{route="{route}",status="200"}}"#)), 4.0);
    assert_eq!(get(&format!(r#"tokenrouter_requests_total{{route="{route}",status="502"}}"#)), 3.0);
    assert_eq!(get(&format!(r#"tokenrouter_requests_total{{route="{route}",status="404"}}"#)), 1.0);
    assert_eq!(get(&format!(r#"tokenrouter_requests_total{{route="{route}",status="401"}}"#)), 1.0);
    assert_eq!(get(r#"tokenrouter_upstream_attempts_total{provider="mock",outcome="success"}"#), 4.0);
    assert_eq!(get(r#"tokenrouter_upstream_attempts_total{provider="mock",outcome="timeout"}"#), 0.0);
    assert_eq!(get(r#"tokenrouter_upstream_attempts_total{provider="nowhere",outcome="connect_error"}"#), 3.0);

    // Token usage: one observation per answered request and type; buckets cumulative.
    let input =
        |le: &str| get(&format!(r#"gen_ai_client_token_usage_bucket{{{MODEL},gen_ai_token_type="input",le="{le}"}}"#));
    for (le, bound) in [("1", 1), ("4", 4), ("16", 16), ("64", 64), ("256", 256)] {
        let expected = prompts.iter().filter(|&&p| p <= bound).count() as f64;
        assert_eq!(input(le), expected, "input tokens ≤ {le}: prompts {prompts:?}");
    }
    assert_eq!(input("+Inf"), 4.0);
    let sum_input = get(&format!(r#"gen_ai_client_token_usage_sum{{{MODEL},gen_ai_token_type="input"}}"#));
    assert_eq!(sum_input, prompts.iter().sum::<u64>() as f64);
    assert_eq!(get(&format!(r#"gen_ai_client_token_usage_sum{{{MODEL},gen_ai_token_type="output"}}"#)), 20.0);
    assert_eq!(get(&format!(r#"gen_ai_client_token_usage_bucket{{{MODEL},gen_ai_token_type="output",le="4"}}"#)), 0.0);
    assert_eq!(get(&format!(r#"gen_ai_client_token_usage_bucket{{{MODEL},gen_ai_token_type="output",le="16"}}"#)), 4.0);
    assert_eq!(get(&format!(r#"gen_ai_server_request_duration_seconds_count{{{MODEL}}}"#)), 4.0);
    assert_eq!(get(&format!(r#"gen_ai_server_request_duration_seconds_bucket{{{MODEL},le="+Inf"}}"#)), 4.0);
    let dead_labels = r#"gen_ai_operation_name="chat",gen_ai_request_model="dead-model",gen_ai_provider_name="nowhere",error_type="upstream_unavailable""#;
    assert_eq!(get(&format!("gen_ai_server_request_duration_seconds_count{{{dead_labels}}}")), 3.0);
    // Only the streamed request has a time to first token.
    assert_eq!(get(&format!(r#"gen_ai_server_time_to_first_token_seconds_count{{{MODEL}}}"#)), 1.0);
    // A refused request with a model nobody configured adds no series.
    assert!(!text.contains("no-such-model"), "{text}");

    assert_eq!(get("tokenrouter_holds_open"), 0.0);
    assert_eq!(get(r#"tokenrouter_jobs{status="queued"}"#), 0.0);
    assert_eq!(get(r#"tokenrouter_instances{status="online"}"#), 0.0);
    assert_eq!(get("tokenrouter_store_up"), 1.0);
    assert_eq!(get("tokenrouter_redis_fallback"), 0.0);
    assert_eq!(get("tokenrouter_deployments_cooling"), 1.0, "the dead model's deployment cools down");
    assert_eq!(get(&format!(r#"tokenrouter_build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION"))), 1.0);
    for secret in [gw.key.as_str(), gw.key_id.as_str(), "upstream-secret"] {
        assert!(!text.contains(secret), "a secret or key id in /metrics");
    }
    // Every family is declared once, before its samples.
    let declared: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
    let mut unique = declared.clone();
    unique.dedup();
    assert_eq!(declared, unique);
}

#[tokio::test]
async fn a_metrics_token_guards_the_scrape() {
    let extra = "[telemetry]\nmetrics_token = \"scrape-secret\"\n";
    let gw = Gateway::start_with(MockConfig::default(), extra).await;
    let url = format!("{}/metrics", gw.url);
    for auth in [None, Some("Bearer wrong"), Some("scrape-secret"), Some(&*format!("Bearer {}", gw.key))] {
        let mut request = gw.http.get(&url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body = response.text().await.unwrap();
        assert!(body.contains("invalid_api_key") && !body.contains("scrape-secret"), "{body}");
    }
    let response = gw.http.get(&url).bearer_auth("scrape-secret").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("tokenrouter_build_info"));
}
