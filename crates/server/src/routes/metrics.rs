//! `GET /metrics`: CONTRACTS §10 in Prometheus text format — the process's counters and
//! histograms (crate::metrics), and gauges read when scraped: holds open, jobs and
//! instances by status (from the store, shared by every replica), deployments cooling
//! and the Redis fallback (this replica's), and the build.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::metrics::{escape, family_header};
use crate::state::AppState;

/// A scrape does not wait longer than this for the store's gauges.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// On the main listener: answers unless `[telemetry] metrics_listen` moved `/metrics` away.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.config.load().telemetry.metrics_listen.is_some() {
        return ApiError::UnknownRoute { method: "GET".into(), path: "/metrics".into() }.into_response();
    }
    scrape(State(state), headers).await
}

/// The scrape itself (also what the separate metrics listener serves).
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.load().telemetry.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            let mut response =
                ApiError::Unauthorized("/metrics wants the bearer token set as [telemetry] metrics_token.")
                    .into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let mut body = String::with_capacity(16 * 1024);
    state.metrics.render(&mut body);
    gauges(&state, &mut body).await;
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], body)
        .into_response()
}

/// The gauges read from the store (shared by every replica), as text.
async fn store_gauges(state: &AppState) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let out = &mut text;
    let store =
        async { tokio::try_join!(state.db.open_hold_count(), state.db.job_counts(), state.db.instance_counts()) };
    let up = match tokio::time::timeout(STORE_TIMEOUT, store).await {
        Ok(Ok((holds, jobs, instances))) => {
            family_header(out, "tokenrouter_holds_open", "gauge", "Holds open for requests and jobs in flight.");
            let _ = writeln!(out, "tokenrouter_holds_open {holds}");
            family_header(out, "tokenrouter_jobs", "gauge", "Async jobs by status.");
            for (status, count) in jobs {
                let _ = writeln!(out, "tokenrouter_jobs{{status=\"{}\"}} {count}", status.as_str());
            }
            family_header(out, "tokenrouter_instances", "gauge", "Community instances by status.");
            for (status, count) in instances {
                let _ = writeln!(out, "tokenrouter_instances{{status=\"{}\"}} {count}", status.as_str());
            }
            1
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: the store's gauges could not be read");
            0
        }
        Err(_) => {
            tracing::warn!("metrics: the store did not answer in time");
            0
        }
    };
    family_header(out, "tokenrouter_store_up", "gauge", "1 when the store answered the gauges' queries.");
    let _ = writeln!(out, "tokenrouter_store_up {up}");
    text
}

/// The gauges of this replica, and the store's (read at most every few seconds).
async fn gauges(state: &AppState, out: &mut String) {
    use std::fmt::Write as _;
    out.push_str(&state.store_gauges.get(|| store_gauges(state)).await);
    let catalog = state.catalog();
    let now = std::time::Instant::now();
    let mut cooling = 0;
    for model in catalog.config().models() {
        cooling += model.deployments.len() - state.routing.live_count(model, now).min(model.deployments.len());
    }
    family_header(
        out,
        "tokenrouter_deployments_cooling",
        "gauge",
        "Configured deployments cooling down after failures.",
    );
    let _ = writeln!(out, "tokenrouter_deployments_cooling {cooling}");
    family_header(
        out,
        "tokenrouter_redis_fallback",
        "gauge",
        "1 while rate limits fall back to this replica's own counters because Redis is unreachable.",
    );
    let _ = writeln!(out, "tokenrouter_redis_fallback {}", u8::from(state.limits.redis_fallback()));
    family_header(out, "tokenrouter_build_info", "gauge", "The running build (always 1).");
    let _ = writeln!(out, "tokenrouter_build_info{{version=\"{}\"}} 1", escape(env!("CARGO_PKG_VERSION")));
}
