//! `GET /metrics`: CONTRACTS §10 in Prometheus text format — the process's counters and
//! histograms (crate::metrics), and gauges read when scraped: holds open, jobs and
//! instances by status (from the store, shared by every replica), deployments cooling
//! and the Redis fallback (this replica's), and the build — encoded by
//! `prometheus-client`.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::metrics::{MetricType, Sample, Snapshot, labels};
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
    let mut snapshot = Snapshot::default();
    state.metrics.snapshot(&mut snapshot);
    snapshot.extend(state.store_gauges.get(|| store_gauges(&state)).await);
    local_gauges(&state, &mut snapshot);
    let body = snapshot.encode();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], body)
        .into_response()
}

/// The gauges read from the store (shared by every replica).
async fn store_gauges(state: &AppState) -> Snapshot {
    let mut out = Snapshot::default();
    let store =
        async { tokio::try_join!(state.db.open_hold_count(), state.db.job_counts(), state.db.instance_counts()) };
    let up = match tokio::time::timeout(STORE_TIMEOUT, store).await {
        Ok(Ok((holds, jobs, instances))) => {
            out.gauge("tokenrouter_holds_open", "Holds open for requests and jobs in flight.", holds);
            let jobs = jobs.into_iter().map(|(status, n)| (labels(&[("status", status.as_str())]), Sample::Gauge(n)));
            out.add("tokenrouter_jobs", "Async jobs by status.", MetricType::Gauge, jobs.collect());
            let instances =
                instances.into_iter().map(|(status, n)| (labels(&[("status", status.as_str())]), Sample::Gauge(n)));
            out.add("tokenrouter_instances", "Community instances by status.", MetricType::Gauge, instances.collect());
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
    out.gauge("tokenrouter_store_up", "1 when the store answered the gauges' queries.", up);
    out
}

/// This replica's gauges.
fn local_gauges(state: &AppState, out: &mut Snapshot) {
    let catalog = state.catalog();
    let now = std::time::Instant::now();
    let mut cooling = 0;
    for model in catalog.config().models() {
        cooling += model.deployments.len() - state.routing.live_count(model, now).min(model.deployments.len());
    }
    let cooling = u64::try_from(cooling).unwrap_or(u64::MAX);
    out.gauge("tokenrouter_deployments_cooling", "Configured deployments cooling down after failures.", cooling);
    out.gauge(
        "tokenrouter_redis_fallback",
        "1 while rate limits fall back to this replica's own counters because Redis is unreachable.",
        u64::from(state.limits.redis_fallback()),
    );
    let version = labels(&[("version", env!("CARGO_PKG_VERSION"))]);
    out.add(
        "tokenrouter_build_info",
        "The running build (always 1).",
        MetricType::Gauge,
        vec![(version, Sample::Gauge(1))],
    );
}
