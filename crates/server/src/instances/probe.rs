//! The prober (CONTRACTS.md §7): proves that an instance's owner controls its server (a
//! wrong key is refused, the instance key accepted), that `/models` lists every declared
//! upstream model, and that a canary completion answers (with exactly the catalog's
//! `canary_prompt_tokens` when set); and the loop that probes due instances.
//!
//! Every replica runs one loop. Each whole second (or sooner when woken) it claims due
//! instances with a lease in the database — the lease is the schedule: it lasts the probe
//! interval plus jitter — and probes them concurrently, at most [`CONCURRENCY`] at a time.
//! A probe never outlives its lease, so no two replicas probe one instance at once and
//! nothing piles up. Keys are sent only as the `Authorization` header and never appear in
//! a log line or a detail.

mod verdict;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::json;
use tokenrouter_core::clock;
use tokenrouter_store::{Instance, ProbeResult, ProbeStatus};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

pub use verdict::{Failed, Reply, listed_models, missing_model};

use super::address::{self, InstanceUrl};
use super::connector::{self, InstanceClient, Resolver, Settings};
use crate::config::Config;
use crate::state::Shared;

/// The canary's prompt (one user message); `canary_prompt_tokens` is what a model's
/// tokenizer (with its chat template) gives for it.
pub const CANARY_PROMPT: &str = "Say OK.";
/// The longest wait for one answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a whole probe takes (less when the lease is shorter).
pub const PROBE_DEADLINE: Duration = Duration::from_secs(20);
/// Probes running at once on one replica.
pub const CONCURRENCY: usize = 8;
/// How often the loop looks for due instances.
pub const TICK: Duration = Duration::from_secs(1);
/// Time kept between a probe's deadline and the end of its lease.
const LEASE_MARGIN: Duration = Duration::from_millis(100);
/// The most bytes read of an answer.
const MAX_BODY: usize = 1 << 20;

/// Probes `instance` as it is now (its `revision` goes in the result), within
/// [`PROBE_DEADLINE`].
pub async fn probe(client: &InstanceClient, instance: &Instance, config: &Config) -> ProbeResult {
    probe_within(client, instance, config, PROBE_DEADLINE).await
}

/// [`probe`] finished within `deadline`, whatever the server does.
pub async fn probe_within(
    client: &InstanceClient,
    instance: &Instance,
    config: &Config,
    deadline: Duration,
) -> ProbeResult {
    let until = Instant::now() + deadline;
    let checked = tokio::time::timeout_at(until, verify(client, instance, config, until)).await;
    let (status, mut detail, latency_ms) = match checked {
        Ok(Ok(latency)) => (ProbeStatus::Online, String::new(), Some(latency)),
        Ok(Err(failed)) => (failed.status, failed.detail, None),
        Err(_) => (ProbeStatus::Offline, format!("the probe did not finish within {} ms", deadline.as_millis()), None),
    };
    if !instance.api_key.is_empty() && detail.contains(&instance.api_key) {
        detail = detail.replace(&instance.api_key, "<instance key>");
    }
    ProbeResult { revision: instance.revision, status, detail, latency_ms, at: clock::now_unix() }
}

/// The three steps; the canaries' mean time in ms when all pass.
async fn verify(client: &InstanceClient, instance: &Instance, config: &Config, until: Instant) -> Result<u64, Failed> {
    let base = address::check_url(&instance.base_url, config.instances.allow_private_addresses)
        .map_err(|e| Failed::offline(format!("the address policy refuses base_url: {e}")))?;
    let wrong_key: String = std::iter::repeat_with(fastrand::alphanumeric).take(32).collect();
    let wrong_key = format!("tr-probe-wrong-{wrong_key}");
    let (refused, _) = send(client, &base, "/models", &wrong_key, None, until).await?;
    verdict::wrong_key(&refused)?;
    let (listed, _) = send(client, &base, "/models", &instance.api_key, None, until).await?;
    let upstream: Vec<&str> = instance.models.iter().map(|m| m.upstream_model.as_str()).collect();
    verdict::listing(&listed, &upstream)?;
    let mut total_ms = 0u64;
    for model in &instance.models {
        let body = json!({
            "model": model.upstream_model,
            "messages": [{"role": "user", "content": CANARY_PROMPT}],
            "max_tokens": 1,
            "stream": false,
        });
        let (answer, took) = send(client, &base, "/chat/completions", &instance.api_key, Some(body), until).await?;
        let expected = config.model(&model.model).and_then(|m| m.canary_prompt_tokens);
        verdict::canary(&answer, &model.upstream_model, expected)?;
        total_ms = total_ms.saturating_add(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
    }
    Ok(total_ms / u64::try_from(instance.models.len().max(1)).unwrap_or(1))
}

/// One request with `key` as Bearer, answered whole within [`REQUEST_TIMEOUT`] and
/// `until`; a failure to get an answer is `offline`.
async fn send(
    client: &InstanceClient,
    base: &InstanceUrl,
    path: &str,
    key: &str,
    body: Option<serde_json::Value>,
    until: Instant,
) -> Result<(Reply, Duration), Failed> {
    let (method, what) = match body {
        Some(_) => (Method::POST, format!("POST {path}")),
        None => (Method::GET, format!("GET {path}")),
    };
    let mut bearer = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| Failed::mismatch("the instance key cannot be sent as a header"))?;
    bearer.set_sensitive(true);
    let mut builder = Request::builder()
        .method(method)
        .uri(base.join(path))
        .header(AUTHORIZATION, bearer)
        .header(ACCEPT, crate::upstream::ACCEPT_ANSWERS);
    let payload = match body {
        Some(body) => {
            builder = builder.header(CONTENT_TYPE, "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let request = builder
        .body(Full::new(payload))
        .map_err(|e| Failed::mismatch(format!("{what}: cannot build the request: {e}")))?;
    let started = Instant::now();
    let limit = until.min(started + REQUEST_TIMEOUT);
    let exchange = async {
        let response =
            client.request(request).await.map_err(|e| Failed::offline(format!("{what}: {}", describe(&e))))?;
        let (parts, body) = response.into_parts();
        let header = |name| parts.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned);
        let (content_type, location) = (header(CONTENT_TYPE), header(LOCATION));
        let body = Limited::new(body, MAX_BODY).collect().await.map_err(|e| {
            Failed::offline(format!("{what}: the answer broke off or exceeded {MAX_BODY} bytes ({})", describe(&*e)))
        })?;
        Ok(Reply { status: parts.status, content_type, location, body: body.to_bytes() })
    };
    match tokio::time::timeout_at(limit, exchange).await {
        Ok(Ok(reply)) => Ok((reply, started.elapsed())),
        Ok(Err(failed)) => Err(failed),
        Err(_) => Err(Failed::offline(format!(
            "{what}: no answer within {} ms",
            limit.saturating_duration_since(started).as_millis()
        ))),
    }
}

/// Why a request got no answer, for people: refused connections, timeouts, the address
/// policy, else the innermost error.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(refused) = connector::refused_in(error) {
        return format!("the address policy refused the connection: {refused}");
    }
    let mut innermost = error;
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused (is the server running?)".to_owned(),
                std::io::ErrorKind::TimedOut => "connecting timed out".to_owned(),
                std::io::ErrorKind::ConnectionReset => "the connection was reset".to_owned(),
                _ => format!("connection failed: {io}"),
            };
        }
        innermost = e;
        cause = e.source();
    }
    format!("connection failed: {innermost}")
}

/// Runs this replica's probe loop until the state is dropped. `wake` makes it look for due
/// instances at once (see `AppState::instances_changed`).
pub async fn run(shared: Weak<Shared>, wake: Arc<Notify>, resolver: Resolver) {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut client: Option<(bool, Duration, InstanceClient)> = None;
    loop {
        let now_ms = clock::now_unix_ms();
        let to_next_second = Duration::from_millis(u64::try_from(1000 - now_ms.rem_euclid(1000)).unwrap_or(0) + 5);
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(to_next_second.min(TICK)) => {}
        }
        let Some(state) = shared.upgrade() else { return };
        let config = state.config.load_full();
        // Nothing can be registered unless a model is open to instances.
        let available = permits.available_permits();
        if available == 0 || !config.models().any(|m| m.instances) {
            continue;
        }
        let (allow_private, connect_timeout) =
            (config.instances.allow_private_addresses, config.server.connect_timeout);
        let http = match &client {
            Some((a, c, http)) if (*a, *c) == (allow_private, connect_timeout) => http.clone(),
            _ => {
                let http = connector::client(&Settings { allow_private, connect_timeout, resolver: resolver.clone() });
                client = Some((allow_private, connect_timeout, http.clone()));
                http
            }
        };
        let lease = Lease::now(config.instances.probe_interval);
        let limit = i64::try_from(available).unwrap_or(1);
        let claimed = match state.db.take_probe_lease(&state.replica.id, lease.now, lease.secs, limit).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim instances to probe");
                continue;
            }
        };
        for instance in claimed {
            let deadline = lease.remaining();
            // Claiming took the whole lease (a stalled database): the next claim retries.
            if deadline.is_zero() {
                continue;
            }
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else { break };
            if !lock(&in_flight).insert(instance.id.clone()) {
                continue;
            }
            let (db, config, http, in_flight) =
                (state.db.clone(), Arc::clone(&config), http.clone(), in_flight.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let result = probe_within(&http, &instance, &config, deadline).await;
                tracing::debug!(instance = %instance.id, status = ?result.status, detail = %result.detail, "probed");
                if let Err(e) = db.record_probe(&instance.id, &result).await {
                    tracing::warn!(instance = %instance.id, error = %e, "could not record a probe");
                }
                lock(&in_flight).remove(&instance.id);
            });
        }
    }
}

fn lock(set: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    set.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A claim's timing: the store counts whole seconds (`now`, `now + secs`), so a lease
/// taken late in a second would end early; one second more keeps it at least the
/// interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    now: i64,
    secs: i64,
    /// When it ends, Unix ms.
    until_ms: i64,
}

impl Lease {
    fn now(interval: Duration) -> Lease {
        Lease::at(clock::now_unix_ms(), interval, jitter(interval))
    }

    fn at(now_ms: i64, interval: Duration, jitter_secs: u64) -> Lease {
        let now = now_ms.div_euclid(1000);
        let late = now_ms.rem_euclid(1000) > 500;
        let secs = i64::try_from(interval.as_secs().max(1) + jitter_secs).unwrap_or(i64::MAX / 2) + i64::from(late);
        Lease { now, secs, until_ms: (now + secs).saturating_mul(1000) }
    }

    /// How long a probe claimed under it may take: to its end, less a margin.
    fn remaining(&self) -> Duration {
        let left = u64::try_from(self.until_ms - clock::now_unix_ms()).unwrap_or(0);
        Duration::from_millis(left).saturating_sub(LEASE_MARGIN).min(PROBE_DEADLINE)
    }
}

/// Up to a tenth of the interval, in whole seconds, so probes spread out.
fn jitter(interval: Duration) -> u64 {
    fastrand::u64(0..=interval.as_secs() / 10)
}

#[cfg(test)]
mod tests;
