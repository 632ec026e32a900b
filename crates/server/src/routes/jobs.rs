//! `/api/jobs`: an account's async jobs (CONTRACTS §8) — one polled by any key of its
//! account or its session, the list, and cancellation.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokenrouter_store::{Cancellation, Job, JobFilter, JobKind, JobStatus, NewJob};
use utoipa::ToSchema;

use super::account::rfc3339;
use super::api_types::ErrorBody;
use crate::auth;
use crate::error::ApiError;
use crate::signin::{Caller, store_error};
use crate::state::AppState;

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobObject {
    /// `job_…`, or `resp_…` for a background response.
    pub id: String,
    /// `chat.completion.job`, or `response.job` for a background response.
    pub object: String,
    /// `queued`, `in_progress`, `completed`, `failed`, `cancelled` or `expired`.
    pub status: String,
    pub model: String,
    /// The request id on its usage row and ledger rows.
    pub request_id: String,
    pub created_at: Option<String>,
    /// When a worker first took it.
    pub started_at: Option<String>,
    /// When it completed, failed or was cancelled.
    pub completed_at: Option<String>,
    /// Runs begun (more than 1: a replica died while running it, and another ran it again).
    pub attempts: u32,
    /// The answer (a `chat.completion`, or the response object) once completed.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// The error object (as in an error answer's `error`) once failed.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    pub usage: Option<JobUsage>,
    /// What it was charged, once finished.
    pub cost_usd: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// A page of jobs, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobList {
    pub data: Vec<JobObject>,
    /// `before` for the next page; null on the last.
    pub next: Option<String>,
}

fn object_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Chat => "chat.completion.job",
        JobKind::Response => "response.job",
    }
}

/// A job just queued.
pub fn queued(job: &NewJob) -> JobObject {
    JobObject {
        id: job.id.clone(),
        object: object_name(job.kind).to_owned(),
        status: JobStatus::Queued.as_str().to_owned(),
        model: job.model.clone(),
        request_id: job.request_id.clone(),
        created_at: rfc3339(job.created_at),
        started_at: None,
        completed_at: None,
        attempts: 0,
        result: None,
        error: None,
        usage: None,
        cost_usd: None,
    }
}

pub fn object(job: &Job) -> JobObject {
    let json = |text: &Option<String>| text.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok());
    JobObject {
        id: job.id.clone(),
        object: object_name(job.kind).to_owned(),
        status: job.status.as_str().to_owned(),
        model: job.model.clone(),
        request_id: job.request_id.clone(),
        created_at: rfc3339(job.created_at),
        started_at: job.started_at.and_then(rfc3339),
        completed_at: job.completed_at.and_then(rfc3339),
        attempts: job.attempts,
        result: json(&job.result),
        error: json(&job.error),
        usage: job.usage.map(|u| JobUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total(),
        }),
        cost_usd: job.status.is_final().then(|| job.cost.unwrap_or_default().to_decimal_string()),
    }
}

/// The account a job route acts for: any of its keys (inference or management — the one
/// that submitted a job polls it) or its session.
pub struct JobOwner(pub i64);

impl FromRequestParts<AppState> for JobOwner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = auth::bearer(&parts.headers) else {
            return Caller::from_request_parts(parts, state).await.map(|caller| JobOwner(caller.account.id));
        };
        let key: Arc<tokenrouter_store::KeyRow> = auth::authenticate(state, token).await?;
        if !key.ips.is_empty() {
            state.allowlists.check(&key, crate::policy::client_of(parts, state))?;
        }
        Ok(JobOwner(key.account_id))
    }
}

/// `GET /api/jobs/{id}`.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs", params(("id" = String, Path)), responses((status = 200, body = JobObject), (status = 401, description = "No valid key or session", body = ErrorBody), (status = 404, description = "No such job of this account", body = ErrorBody)), security(("session" = []), ("management_key" = []), ("inference_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    JobOwner(account): JobOwner,
    Path(id): Path<String>,
) -> Result<Json<JobObject>, ApiError> {
    let job = state.db.job(&id, account).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
    Ok(Json(object(&job)))
}

/// `DELETE /api/jobs/{id}`: cancels a job that has not finished.
#[utoipa::path(delete, path = "/api/jobs/{id}", tag = "jobs", params(("id" = String, Path)), responses((status = 200, description = "Cancelled: it will not run, or its upstream call was dropped; its hold is released", body = JobObject), (status = 401, description = "No valid key or session", body = ErrorBody), (status = 403, description = "csrf_failed", body = ErrorBody), (status = 404, description = "No such job of this account", body = ErrorBody), (status = 409, description = "It has already finished", body = ErrorBody)), security(("session" = []), ("management_key" = []), ("inference_key" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    JobOwner(account): JobOwner,
    Path(id): Path<String>,
) -> Result<Json<JobObject>, ApiError> {
    cancel_job(&state, &id, account).await.map(|job| Json(object(&job)))
}

/// Cancels the account's job `id`: it never runs, or its run is dropped (its worker
/// learns within a second, wherever it runs); the hold is released now.
pub async fn cancel_job(state: &AppState, id: &str, account: i64) -> Result<Job, ApiError> {
    let now = tokenrouter_core::clock::now_unix();
    match state.db.cancel_job(id, account, now).await.map_err(store_error)? {
        Cancellation::Cancelled { job, .. } => {
            state.usage.release(job.request_id.clone());
            // Cancelled before it used anything: its tokens go back to its rate limit.
            if let Some(admission) = state.job_admissions.take(&job.request_id, std::time::Instant::now()) {
                admission.settle(0);
            }
            Ok(job)
        }
        Cancellation::Finished(job) => {
            Err(ApiError::Conflict(format!("The job {id} has already finished ({}).", job.status.as_str())))
        }
        Cancellation::NotFound => Err(not_found(id)),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("No job found with id '{id}'."))
}

#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    pub status: Option<String>,
    pub model: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<String>,
    pub before: Option<String>,
}

/// `GET /api/jobs?status=&model=&kind=`: the account's jobs, newest first.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", params(("status" = Option<String>, Query, description = "queued, in_progress, completed, failed, cancelled or expired"), ("model" = Option<String>, Query), ("kind" = Option<String>, Query, description = "chat (async chat completions) or response (background responses)"), ("limit" = Option<u32>, Query, description = "1 to 100, default 20"), ("before" = Option<String>, Query, description = "`next` of the previous page")), responses((status = 200, body = JobList), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key)", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<JobsQuery>,
) -> Result<Json<JobList>, ApiError> {
    let limit = u32::try_from(super::api_body::page_limit(query.limit.as_deref())?).unwrap_or(20);
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(JobStatus::parse(text).ok_or_else(|| {
            ApiError::invalid_param(
                "'status' must be queued, in_progress, completed, failed, cancelled or expired.",
                "status",
            )
        })?),
    };
    let kind = match query.kind.as_deref() {
        None => None,
        Some(text) => Some(
            JobKind::parse(text).ok_or_else(|| ApiError::invalid_param("'kind' must be chat or response.", "kind"))?,
        ),
    };
    let before = super::api_body::cursor(query.before.as_deref())?;
    let filter = JobFilter { status, model: query.model, kind, before, limit };
    let jobs = state.db.jobs_page(caller.account.id, &filter).await.map_err(store_error)?;
    let next =
        (jobs.len() == limit as usize).then(|| jobs.last().map(|j| format!("{}_{}", j.created_at, j.id))).flatten();
    Ok(Json(JobList { data: jobs.iter().map(object).collect(), next }))
}
