//! `GET /metrics`: the gauges of CONTRACTS §10 that exist so far, in Prometheus text
//! format. (The full set — requests, tokens, latencies — comes with the telemetry work.)

use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderValue, header};

use crate::state::AppState;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let fallback = u8::from(state.limits.redis_fallback());
    let body = format!(
        "# HELP tokenrouter_redis_fallback 1 while rate limits fall back to this replica's own counters because Redis is unreachable.\n\
         # TYPE tokenrouter_redis_fallback gauge\n\
         tokenrouter_redis_fallback {fallback}\n"
    );
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], body)
}
