//! Async jobs (CONTRACTS §8): an inference admitted now — auth, scopes, rate limits and
//! its hold, so refusals come at once — and run later by whichever replica's worker
//! claims it from the database. A claim is a lease: a replica that dies lets it lapse and
//! another one runs the job again. The job's hold, taken at submission, belongs to the job
//! (not to a replica); the run settles it like any request's, idempotently by the job's
//! request id, so a job run twice is charged at most once. What a dead worker left behind
//! — a finished job's hold, a hold whose job never came to exist — the sweeper ends.

pub mod admissions;

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use tokenrouter_core::{NanoUsd, Usage, clock};
use tokenrouter_store::{
    Batch, Job, JobKind, JobOutcome, JobStatus, KeyRow, NewJob, StoreError, StrandedHold, UsageRecord, UsageSource,
};
use tokio::sync::{Notify, Semaphore};

use crate::error::ApiError;
use crate::pipeline::{self, Inference};
use crate::settlement::Reservation;
use crate::state::{AppState, Shared};

/// A claimed job's lease: if its replica stops renewing it (it died), another takes the
/// job over once this has passed.
const LEASE_SECS: i64 = 30;
/// How often a running job renews its lease — and so learns within this of its
/// cancellation, wherever it was cancelled.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How often idle workers look for jobs other replicas queued (their own wake them).
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How often one replica sweeps: retention and stranded holds.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
const SWEEP_LEASE: &str = "jobs-sweeper";
/// A finished job's hold is stranded once it has outlived its job by this much (its
/// worker settles it within moments when alive).
const STRANDED_AFTER_SECS: i64 = 60;
/// The largest answer a job keeps.
const MAX_RESULT_BYTES: usize = 32 * 1024 * 1024;
/// Finished jobs deleted per statement of a retention sweep.
const DELETE_BATCH: u32 = 1000;

/// The request headers that steer routing: a job replays them when it runs.
const REPLAYED: [&str; 2] = ["x-tokenrouter-strategy", "x-tokenrouter-fallback"];

/// Whether a request asks to be answered later: `Prefer: respond-async` (RFC 7240) or
/// `X-TokenRouter-Async: true`.
pub fn wants_async(headers: &HeaderMap) -> bool {
    let preferred =
        headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|preference| {
            preference.split(';').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("respond-async"))
        });
    let flagged = headers
        .get("x-tokenrouter-async")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    preferred || flagged
}

/// A request to queue: what it is, and the body its run is built from again.
pub struct Submission {
    /// `job_…`, or the `resp_…` id of a background response.
    pub id: String,
    pub kind: JobKind,
    pub endpoint: &'static str,
    pub request_id: String,
    pub key: Arc<KeyRow>,
    pub body: Bytes,
}

/// Admits `inference` and queues it as a job, which then owns its hold. `Err` is the
/// answer to send at once: a refusal (400, 402, 403, 429, …) — no job exists then.
pub async fn submit(
    state: &AppState,
    submission: Submission,
    headers: &HeaderMap,
    inference: Result<Inference, ApiError>,
) -> Result<NewJob, Response> {
    let Submission { id, kind, endpoint, request_id, key, body } = submission;
    let cap = state.config.load().jobs.max_queued_per_account;
    let active = state.db.active_jobs(key.account_id).await.map_err(|e| store_error(&e).into_response())?;
    if active >= cap {
        return Err(ApiError::TooManyJobs(cap).into_response());
    }
    let admitted = pipeline::submit(state, endpoint, request_id.clone(), key.clone(), headers, inference).await?;
    let job = NewJob {
        id,
        kind,
        account_id: key.account_id,
        key_id: key.id.clone(),
        request_id,
        model: admitted.model,
        request: body.to_vec(),
        headers: replayed(headers),
        hold: admitted.hold,
        created_at: clock::now_unix(),
    };
    // Failing here drops the reservation, which releases the hold: no job, nothing held.
    // The count above turns most away cheaply; this one is exact under races.
    let queued = match state.db.create_job_within(&job, cap).await {
        Ok(queued) => queued,
        Err(e) => {
            admitted.admission.cancel();
            return Err(store_error(&e).into_response());
        }
    };
    if !queued {
        admitted.admission.cancel();
        return Err(ApiError::TooManyJobs(cap).into_response());
    }
    admitted.reservation.hand_over();
    state.job_admissions.keep(job.request_id.clone(), admitted.admission, Instant::now());
    state.jobs_wake.notify_one();
    Ok(job)
}

fn store_error(e: &StoreError) -> ApiError {
    tracing::warn!(error = %e, "could not read or write a job");
    ApiError::StoreUnavailable
}

/// The routing headers of a submission, as a JSON object.
fn replayed(headers: &HeaderMap) -> String {
    let kept: Map<String, Value> = REPLAYED
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), Value::String(value.to_owned())))
        })
        .collect();
    Value::Object(kept).to_string()
}

/// The headers a job's run replays.
fn replay(stored: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Ok(Value::Object(kept)) = serde_json::from_str::<Value>(stored) else { return headers };
    for (name, value) in kept {
        if let (Ok(name), Some(Ok(value))) =
            (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str))
        {
            headers.insert(name, value);
        }
    }
    headers
}

/// Runs this replica's share of the queue, `[jobs] workers` jobs at once, until the
/// gateway stops.
pub async fn work(weak: Weak<Shared>, wake: Arc<Notify>) {
    let Some(workers) = weak.upgrade().map(|s| s.config.load().jobs.workers) else { return };
    if workers == 0 {
        return;
    }
    let slots = Arc::new(Semaphore::new(workers));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(shared) = weak.upgrade() else { return };
        let state = AppState::from_shared(shared);
        match state.db.claim_job(&state.replica.id, clock::now_unix(), LEASE_SECS).await {
            Ok(Some(job)) => {
                tokio::spawn(async move {
                    run(&state, job).await;
                    drop(slot);
                });
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not look for queued jobs"),
        }
        drop((state, slot));
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

/// Runs a claimed job to its end, unless it is cancelled (or, its lease lost, taken over)
/// meanwhile: then its run — the upstream call with it — is dropped, and the hold stays
/// the job's (released by the canceller, settled by the run that took over).
async fn run(state: &AppState, job: Job) {
    let owner = state.replica.id.clone();
    let outcome = tokio::select! {
        outcome = execute(state, &job) => outcome,
        () = keep_lease(state, &job.id, &owner) => {
            tracing::info!(job = %job.id, "a job ended while running (cancelled, or taken over); its run was dropped");
            return;
        }
    };
    match state.db.finish_job(&job.id, &owner, &outcome).await {
        Ok(true) => {}
        // Cancelled as it finished: what it was charged still shows on the job.
        Ok(false) if outcome.cost.0 > 0 => {
            if let Err(e) = state.db.note_job_cost(&job.id, outcome.usage, outcome.cost).await {
                tracing::warn!(error = %e, job = %job.id, "could not note a cancelled job's cost");
            }
        }
        Ok(false) => {}
        // Its lease lapses and another run settles nothing twice (same request id).
        Err(e) => tracing::warn!(error = %e, job = %job.id, "could not record a job's outcome; it will run again"),
    }
}

/// Renews the job's lease every second; returns when the job is no longer this worker's.
async fn keep_lease(state: &AppState, id: &str, owner: &str) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match state.db.renew_job(id, owner, clock::now_unix(), LEASE_SECS).await {
            Ok(true) => {}
            Ok(false) => return,
            // A store outage: keep running; the lease says whether it is still ours.
            Err(e) => tracing::warn!(error = %e, job = %id, "could not renew a job's lease"),
        }
    }
}

/// The job's inference, on the hold taken at its submission, and what it came to.
async fn execute(state: &AppState, job: &Job) -> JobOutcome {
    let reservation = Reservation::adopt(job.request_id.clone(), job.hold, state.usage.clone());
    let Some(key) = state.keys.load().get(&job.key_id) else {
        reservation.hand_over();
        state.usage.release(job.request_id.clone());
        let error = ApiError::Unauthorized("The key that submitted this job was revoked or has expired.");
        return failed(&error.envelope().to_json(), None, NanoUsd::ZERO);
    };
    let headers = replay(&job.headers);
    let body = Bytes::from(job.request.clone());
    let (endpoint, inference) = match job.kind {
        JobKind::Chat => ("chat.completions", Ok(crate::routes::chat::inference_of(body))),
        JobKind::Response => {
            ("responses", crate::routes::responses::inference_of(state, &job.request_id, &key, body).await)
        }
    };
    let response =
        pipeline::run_queued(state, endpoint, job.request_id.clone(), key, &headers, inference, reservation).await;
    let status = response.status();
    let answer = axum::body::to_bytes(response.into_body(), MAX_RESULT_BYTES).await.unwrap_or_default();
    // The usage row says what was charged (written by now, or by this flush).
    state.usage.flush().await;
    let record = match state.db.usage_by_request(&job.request_id).await {
        Ok(record) => record,
        Err(e) => {
            tracing::warn!(error = %e, job = %job.id, "could not read a job's usage");
            None
        }
    };
    let usage = record.as_ref().map(|r| r.usage).filter(|u| u.total() > 0);
    let cost = record.map_or(NanoUsd::ZERO, |r| r.cost);
    // Queued here moments ago: its rate limits settle to what it used, as a request's do.
    if let Some(admission) = state.job_admissions.take(&job.request_id, Instant::now()) {
        admission.settle(usage.map_or(0, |u| u.total()));
    }
    if status.is_success() {
        let result = match job.kind {
            JobKind::Chat => String::from_utf8_lossy(&answer).into_owned(),
            JobKind::Response => background_answer(&answer, &job.id),
        };
        JobOutcome {
            status: JobStatus::Completed,
            result: Some(result),
            error: None,
            usage,
            cost,
            completed_at: clock::now_unix(),
        }
    } else {
        failed(&answer, usage, cost)
    }
}

/// A failed run's outcome: the error object of the answer it got.
fn failed(answer: &[u8], usage: Option<Usage>, cost: NanoUsd) -> JobOutcome {
    let error = serde_json::from_slice::<Value>(answer)
        .ok()
        .and_then(|mut v| v.get_mut("error").map(Value::take))
        .unwrap_or_else(|| serde_json::json!({"message": "The job failed.", "type": "server_error", "code": null}));
    JobOutcome {
        status: JobStatus::Failed,
        result: None,
        error: Some(error.to_string()),
        usage,
        cost,
        completed_at: clock::now_unix(),
    }
}

/// A background response's answer as its poller reads it: under the id it was given at
/// submission (an upstream serving it natively names it otherwise), marked `background`.
fn background_answer(answer: &[u8], id: &str) -> String {
    match serde_json::from_slice::<Value>(answer) {
        Ok(Value::Object(mut response)) => {
            response.insert("id".to_owned(), Value::String(id.to_owned()));
            response.insert("background".to_owned(), Value::Bool(true));
            Value::Object(response).to_string()
        }
        _ => String::from_utf8_lossy(answer).into_owned(),
    }
}

/// Sweeps on one replica at a time: jobs waiting past `expire_after_secs` expire,
/// finished jobs past retention are deleted, and holds their dead workers left are ended.
pub async fn sweep(weak: Weak<Shared>) {
    // The first sweep one period after start: a replica replacing a dead one has ended
    // that one's holds and leases as it started.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + SWEEP_EVERY, SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = weak.upgrade() else { return };
        let state = AppState::from_shared(shared);
        let now = clock::now_unix();
        let lease = i64::try_from(SWEEP_EVERY.as_secs() * 2).unwrap_or(60);
        match state.db.try_lease(SWEEP_LEASE, &state.replica.id, now, lease).await {
            Ok(true) => {
                if let Err(e) = sweep_once(&state, now).await {
                    tracing::warn!(error = %e, "could not sweep jobs");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not take the job sweeper's lease"),
        }
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Jobs ended as `expired`, their holds released.
    pub expired: usize,
    /// Finished jobs deleted for age.
    pub deleted: u64,
    /// Stranded holds settled at their job's cost.
    pub settled: usize,
    /// Stranded holds released.
    pub released: usize,
}

/// One sweep at `now`.
pub async fn sweep_once(state: &AppState, now: i64) -> Result<Swept, StoreError> {
    let config = state.config.load();
    let retention = i64::try_from(config.jobs.retention.as_secs()).unwrap_or(i64::MAX);
    let expire_after = i64::try_from(config.jobs.expire_after.as_secs()).unwrap_or(i64::MAX);
    drop(config);
    let mut swept = Swept::default();
    loop {
        // Expired jobs never run: their holds go back at once.
        // A lease lapsed only just may be a live worker that could not renew it for a while
        // (a store outage, a clock apart): its job is given the stranded holds' grace.
        let lapsed_before = now - STRANDED_AFTER_SECS;
        let expired = state.db.expire_jobs(now.saturating_sub(expire_after), lapsed_before, now, DELETE_BATCH).await?;
        if !expired.is_empty() {
            state.db.write_batch(Batch { releases: &expired, ..Batch::default() }).await?;
            tracing::info!(expired = expired.len(), "jobs not run within [jobs] expire_after_secs expired");
        }
        swept.expired += expired.len();
        if u32::try_from(expired.len()).is_ok_and(|n| n < DELETE_BATCH) {
            break;
        }
    }
    loop {
        let deleted = state.db.delete_finished_jobs(now.saturating_sub(retention), DELETE_BATCH).await?;
        swept.deleted += deleted;
        if deleted < u64::from(DELETE_BATCH) {
            break;
        }
    }
    let stranded = state.db.stranded_job_holds(now - STRANDED_AFTER_SECS).await?;
    let (charged, released): (Vec<StrandedHold>, Vec<StrandedHold>) =
        stranded.into_iter().partition(|h| h.job.as_ref().is_some_and(|j| j.cost.is_some_and(|c| c.0 > 0)));
    let usage: Vec<UsageRecord> = charged.iter().filter_map(|h| stranded_record(h, now)).collect();
    let releases: Vec<String> = released.into_iter().map(|h| h.request_id).collect();
    if !usage.is_empty() || !releases.is_empty() {
        state.db.write_batch(Batch { usage: &usage, releases: &releases, ..Batch::default() }).await?;
        tracing::warn!(settled = usage.len(), released = releases.len(), "ended holds of jobs whose workers died");
    }
    swept.settled = usage.len();
    swept.released = releases.len();
    Ok(swept)
}

/// The usage row that settles a finished job's stranded hold at the cost its run recorded
/// (a row its worker wrote first wins: one per request id).
fn stranded_record(hold: &StrandedHold, now: i64) -> Option<UsageRecord> {
    let job = hold.job.as_ref()?;
    Some(UsageRecord {
        request_id: hold.request_id.clone(),
        key_id: hold.key_id.clone(),
        account_id: hold.account_id,
        model: hold.model.clone(),
        provider: tokenrouter_store::JOB_HOLDER.to_owned(),
        upstream_model: String::new(),
        endpoint: hold.endpoint.clone(),
        stream: false,
        status: if job.status == JobStatus::Completed { 200 } else { 502 },
        usage: job.usage.unwrap_or_default(),
        cost: job.cost.unwrap_or(NanoUsd::ZERO),
        usage_source: UsageSource::Counted,
        client_disconnected: false,
        latency_ms: u64::try_from(now.saturating_sub(hold.created_at).saturating_mul(1000)).unwrap_or(0),
        created_at: now,
        error_code: None,
        ttfb_ms: None,
        earning: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_headers_ask_for_async() {
        let with = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            wants_async(&headers)
        };
        assert!(with("prefer", "respond-async"));
        assert!(with("prefer", "return=minimal, Respond-Async; wait=10"));
        assert!(with("x-tokenrouter-async", "true"));
        assert!(!with("x-tokenrouter-async", "false"));
        assert!(!with("prefer", "return=representation"));
        assert!(!wants_async(&HeaderMap::new()));
    }

    #[test]
    fn routing_headers_are_replayed_and_nothing_else() {
        let mut headers = HeaderMap::new();
        headers.insert("x-tokenrouter-strategy", HeaderValue::from_static("cost"));
        headers.insert("authorization", HeaderValue::from_static("Bearer sk-tr-secret"));
        let stored = replayed(&headers);
        assert!(!stored.contains("secret"), "{stored}");
        let back = replay(&stored);
        assert_eq!(back.len(), 1);
        assert_eq!(back["x-tokenrouter-strategy"], "cost");
        assert!(replay("not json").is_empty());
    }

    #[test]
    fn a_failed_run_keeps_the_error_object() {
        let outcome = failed(
            br#"{"error":{"message":"no","type":"upstream_error","code":"upstream_unavailable"}}"#,
            None,
            NanoUsd::ZERO,
        );
        assert_eq!(outcome.status, JobStatus::Failed);
        let error: Value = serde_json::from_str(outcome.error.as_deref().unwrap()).unwrap();
        assert_eq!(error["code"], "upstream_unavailable");
        let garbled = failed(b"<html>", None, NanoUsd::ZERO);
        assert!(garbled.error.unwrap().contains("The job failed."));
    }

    #[test]
    fn a_background_answer_keeps_its_submitted_id() {
        let answer =
            background_answer(br#"{"id":"resp_upstream","object":"response","status":"completed"}"#, "resp_ours");
        let value: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!((value["id"].as_str(), value["background"].as_bool()), (Some("resp_ours"), Some(true)));
    }
}
