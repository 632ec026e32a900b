//! Async jobs: inference requests queued at submission (funds already held) and run later
//! by any replica's workers, which claim them with a lease that expires if the replica
//! dies. The job row is the source of truth for its state; its hold (taken at submission
//! under the job's `request_id`) belongs to the job machinery, not to a replica.

use std::collections::HashMap;

use sqlx::FromRow;
use tokenrouter_core::{NanoUsd, Usage};

use crate::StoreError;
use crate::rows::{corrupt, from_db_count, to_db_count};

/// The replica name a job's hold carries once its job exists: the sweeper of dead
/// replicas leaves such holds alone; the job machinery ends them.
pub const JOB_HOLDER: &str = "(job)";

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Queued,
    InProgress,
    Completed,
    Failed,
    Cancelled,
    Expired,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::InProgress,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::InProgress => "in_progress",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the job has ended (it will never run again).
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::InProgress)
    }
}

/// What a job runs: an async chat completion, or a Responses request in background mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Chat,
    Response,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Chat => "chat",
            JobKind::Response => "response",
        }
    }

    pub fn parse(text: &str) -> Option<JobKind> {
        [JobKind::Chat, JobKind::Response].into_iter().find(|k| k.as_str() == text)
    }
}

/// A job to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// `job_…` (chat) or `resp_…` (a background response: its response id).
    pub id: String,
    pub kind: JobKind,
    pub account_id: i64,
    pub key_id: String,
    /// The id of its hold, its usage row and its ledger rows.
    pub request_id: String,
    pub model: String,
    /// The request body to run.
    pub request: Vec<u8>,
    /// The request headers that steer routing, replayed when it runs (a JSON object).
    pub headers: String,
    /// What was held for it at submission.
    pub hold: NanoUsd,
    /// Unix seconds.
    pub created_at: i64,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub account_id: i64,
    pub key_id: String,
    pub request_id: String,
    pub model: String,
    pub status: JobStatus,
    /// Empty in lists (`Db::jobs_page`), which leave the body out.
    pub request: Vec<u8>,
    pub headers: String,
    pub hold: NanoUsd,
    pub created_at: i64,
    /// When a worker first took it.
    pub started_at: Option<i64>,
    /// When it reached a final state.
    pub completed_at: Option<i64>,
    /// Times a worker took it (more than 1: a replica died while running it).
    pub attempts: u32,
    /// The replica running it, and until when its lease holds.
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// The answer (JSON text) of a completed job.
    pub result: Option<String>,
    /// The error (JSON text of an OpenAI error object) of a failed one.
    pub error: Option<String>,
    /// What it used and was charged, once known.
    pub usage: Option<Usage>,
    pub cost: Option<NanoUsd>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// `Completed` or `Failed`.
    pub status: JobStatus,
    pub result: Option<String>,
    pub error: Option<String>,
    pub usage: Option<Usage>,
    pub cost: NanoUsd,
    pub completed_at: i64,
}

/// What asking to cancel a job found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    /// It had not finished: now `cancelled` (as it was before: `was`).
    Cancelled { job: Job, was: JobStatus },
    /// It had already finished: unchanged.
    Finished(Job),
    /// No such job of this account.
    NotFound,
}

/// Which of an account's jobs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub model: Option<String>,
    pub kind: Option<JobKind>,
    /// Jobs older than this one (created_at, id), newest first.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// A hold the job machinery owns whose job has ended (or never came to exist): the
/// sweeper settles it at the job's cost, or releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrandedHold {
    pub request_id: String,
    pub account_id: i64,
    pub key_id: String,
    pub model: String,
    pub endpoint: String,
    pub created_at: i64,
    /// The job under that request id, if any.
    pub job: Option<Job>,
}

/// The most jobs one page of [`crate::Db::jobs_page`] holds.
pub const JOBS_PAGE_MAX: u32 = 100;

/// The statuses a worker may still run (SQL, both dialects; the partial indexes of the
/// migrations carry the same predicates, which lets the planners use them).
macro_rules! unfinished {
    () => {
        "status IN ('queued', 'in_progress')"
    };
}
pub(crate) use unfinished;

/// The final statuses (SQL, both dialects): see [`JobStatus::is_final`].
macro_rules! finished {
    () => {
        "status IN ('completed', 'failed', 'cancelled', 'expired')"
    };
}
pub(crate) use finished;

/// A job's columns, `$request` standing for the body (`"request"`, or `"NULL AS request"`
/// where it is left out).
macro_rules! job_columns {
    ($request:literal) => {
        concat!(
            "id, kind, account_id, key_id, request_id, model, status, ",
            $request,
            ", headers, hold_nano, created_at, started_at, completed_at, attempts, lease_owner, lease_until, \
             result, error, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cache_write_tokens, \
             cost_nano"
        )
    };
}
pub(crate) use job_columns;

#[derive(FromRow)]
pub(crate) struct JobRecord {
    pub id: String,
    pub kind: String,
    pub account_id: i64,
    pub key_id: String,
    pub request_id: String,
    pub model: String,
    pub status: String,
    pub request: Option<Vec<u8>>,
    pub headers: String,
    pub hold_nano: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub cost_nano: Option<i64>,
}

impl TryFrom<JobRecord> for Job {
    type Error = sqlx::Error;

    fn try_from(r: JobRecord) -> Result<Job, sqlx::Error> {
        let count = |value: Option<i64>| value.map_or(0, from_db_count);
        // The usage columns are written together: the first tells whether there is any.
        let usage = r.prompt_tokens.map(|prompt| Usage {
            prompt_tokens: from_db_count(prompt),
            completion_tokens: count(r.completion_tokens),
            cached_tokens: count(r.cached_tokens),
            reasoning_tokens: count(r.reasoning_tokens),
            cache_write_tokens: count(r.cache_write_tokens),
            hosted: Default::default(),
        });
        Ok(Job {
            kind: JobKind::parse(&r.kind).ok_or_else(|| corrupt("kind", format!("unknown kind '{}'", r.kind)))?,
            status: JobStatus::parse(&r.status)
                .ok_or_else(|| corrupt("status", format!("unknown status '{}'", r.status)))?,
            attempts: u32::try_from(r.attempts)
                .map_err(|_| corrupt("attempts", format!("{} is not a u32", r.attempts)))?,
            id: r.id,
            account_id: r.account_id,
            key_id: r.key_id,
            request_id: r.request_id,
            model: r.model,
            request: r.request.unwrap_or_default(),
            headers: r.headers,
            hold: NanoUsd(r.hold_nano),
            created_at: r.created_at,
            started_at: r.started_at,
            completed_at: r.completed_at,
            lease_owner: r.lease_owner,
            lease_until: r.lease_until,
            result: r.result,
            error: r.error,
            usage,
            cost: r.cost_nano.map(NanoUsd),
        })
    }
}

pub(crate) fn job_from(record: Option<JobRecord>) -> Result<Option<Job>, StoreError> {
    Ok(record.map(Job::try_from).transpose()?)
}

pub(crate) fn jobs_from(records: Vec<JobRecord>) -> Result<Vec<Job>, StoreError> {
    Ok(records.into_iter().map(Job::try_from).collect::<Result<_, _>>()?)
}

/// The usage columns to write (prompt, completion, cached, reasoning, cache write): all
/// set, or all NULL.
pub(crate) fn usage_columns(usage: Option<Usage>) -> [Option<i64>; 5] {
    let column = |count: fn(&Usage) -> u64| usage.as_ref().map(|u| to_db_count(count(u)));
    [
        column(|u| u.prompt_tokens),
        column(|u| u.completion_tokens),
        column(|u| u.cached_tokens),
        column(|u| u.reasoning_tokens),
        column(|u| u.cache_write_tokens),
    ]
}

/// The rest of a page of the account's jobs after `… WHERE account_id = ?` (both
/// dialects): filters, the cursor (a row-value comparison: one range of the account's
/// index), newest first, at most [`JOBS_PAGE_MAX`].
pub(crate) fn push_page<DB: sqlx::Database>(query: &mut sqlx::QueryBuilder<DB>, filter: &JobFilter)
where
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status.as_str().to_owned());
    }
    if let Some(model) = &filter.model {
        query.push(" AND model = ").push_bind(model.clone());
    }
    if let Some(kind) = filter.kind {
        query.push(" AND kind = ").push_bind(kind.as_str().to_owned());
    }
    if let Some((created_at, id)) = &filter.before {
        query.push(" AND (created_at, id) < (").push_bind(*created_at).push(", ").push_bind(id.clone()).push(")");
    }
    query.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(filter.limit.min(JOBS_PAGE_MAX)));
}

/// Jobs per status as the database grouped them, as one entry per status in
/// [`JobStatus::ALL`]'s order, zeros included (so that a gauge per status drops to 0).
pub(crate) fn all_counts(counts: Vec<(String, i64)>) -> Result<Vec<(JobStatus, u64)>, StoreError> {
    let mut all: Vec<(JobStatus, u64)> = JobStatus::ALL.iter().map(|&s| (s, 0)).collect();
    for (status, count) in counts {
        let status =
            JobStatus::parse(&status).ok_or_else(|| corrupt("status", format!("unknown status '{status}'")))?;
        if let Some(entry) = all.iter_mut().find(|(s, _)| *s == status) {
            entry.1 = from_db_count(count);
        }
    }
    Ok(all)
}

/// A hold of [`Db::stranded_job_holds`](crate::Db::stranded_job_holds), before its job is
/// attached.
#[derive(FromRow)]
pub(crate) struct StrandedRecord {
    pub request_id: String,
    pub account_id: i64,
    pub key_id: String,
    pub model: String,
    pub endpoint: String,
    pub created_at: i64,
}

/// Attaches to each stranded hold its job (found by request id), where there is one.
pub(crate) fn stranded(holds: Vec<StrandedRecord>, jobs: Vec<Job>) -> Vec<StrandedHold> {
    let mut jobs: HashMap<String, Job> = jobs.into_iter().map(|job| (job.request_id.clone(), job)).collect();
    holds
        .into_iter()
        .map(|h| StrandedHold {
            job: jobs.remove(&h.request_id),
            request_id: h.request_id,
            account_id: h.account_id,
            key_id: h.key_id,
            model: h.model,
            endpoint: h.endpoint,
            created_at: h.created_at,
        })
        .collect()
}

/// The job queue's part of the store's interface.
impl crate::Db {
    /// Queues a job, in one transaction with handing its hold (taken just before under
    /// the same `request_id`, by the submitting replica) to the job machinery: the hold's
    /// replica becomes [`JOB_HOLDER`], so the sweeper of dead replicas no longer ends it.
    pub async fn create_job(&self, job: &NewJob) -> Result<(), StoreError> {
        self.create_job_within(job, u64::MAX).await.map(|_| ())
    }

    /// [`Db::create_job`], unless the account already has `cap` jobs queued or running:
    /// then `false` and nothing changes. Exact under concurrent submissions, on any
    /// number of replicas (the count and the insert are one serialized step per account).
    pub async fn create_job_within(&self, job: &NewJob, cap: u64) -> Result<bool, StoreError> {
        delegate!(self.create_job(job, cap))
    }

    /// How many of the account's jobs are queued or in progress (its cap counts these).
    pub async fn active_jobs(&self, account_id: i64) -> Result<u64, StoreError> {
        delegate!(self.active_jobs(account_id))
    }

    /// Takes the oldest job that may run — queued, or in progress under a lease that ran
    /// out before `now` (its replica died) — for `owner` until `now + lease_secs`, with
    /// its request body. Atomic: however many replicas claim at once, each job goes to
    /// one; a cancelled job is never taken. `None` when there is nothing to run.
    pub async fn claim_job(&self, owner: &str, now: i64, lease_secs: i64) -> Result<Option<Job>, StoreError> {
        delegate!(self.claim_job(owner, now, lease_secs))
    }

    /// Ends the leases of the jobs a dead replica `owner` was running, so that any replica
    /// claims them at once rather than when the leases run out. Returns how many.
    pub async fn expire_job_leases(&self, owner: &str) -> Result<u64, StoreError> {
        delegate!(self.expire_job_leases(owner))
    }

    /// Extends `owner`'s lease on a job it runs to `now + lease_secs`. `false` when the job
    /// is no longer in progress under `owner` (cancelled, or taken by another replica
    /// after the lease ran out): the worker stops.
    pub async fn renew_job(&self, id: &str, owner: &str, now: i64, lease_secs: i64) -> Result<bool, StoreError> {
        delegate!(self.renew_job(id, owner, now, lease_secs))
    }

    /// Records how `owner`'s run of a job ended (its status must be a final one) and ends
    /// the lease — only when the job is still in progress under `owner`; `false` when it
    /// is not (cancelled meanwhile, or taken by another replica), and nothing is written.
    pub async fn finish_job(&self, id: &str, owner: &str, outcome: &JobOutcome) -> Result<bool, StoreError> {
        if !outcome.status.is_final() {
            let reason = format!("job '{id}' cannot finish as {}", outcome.status.as_str());
            return Err(StoreError::Database(sqlx::Error::InvalidArgument(reason)));
        }
        delegate!(self.finish_job(id, owner, outcome))
    }

    /// Records what a run of the job used and was charged, whatever the job's status (a
    /// run charged although the job was cancelled meanwhile). `None` keeps the usage
    /// recorded before.
    pub async fn note_job_cost(&self, id: &str, usage: Option<Usage>, cost: NanoUsd) -> Result<(), StoreError> {
        delegate!(self.note_job_cost(id, usage, cost))
    }

    /// Cancels one of the account's jobs at `now` if it has not finished: atomically, so a
    /// job cancelled while queued is never claimed afterwards, and the run of one
    /// cancelled in progress can no longer finish it (nor renew its lease).
    pub async fn cancel_job(&self, id: &str, account_id: i64, now: i64) -> Result<Cancellation, StoreError> {
        delegate!(self.cancel_job(id, account_id, now))
    }

    /// One of the account's jobs, with its request body; `None` for another account's.
    pub async fn job(&self, id: &str, account_id: i64) -> Result<Option<Job>, StoreError> {
        delegate!(self.job(id, account_id))
    }

    /// A job whoever owns it, with its request body (workers).
    pub async fn job_by_id(&self, id: &str) -> Result<Option<Job>, StoreError> {
        delegate!(self.job_by_id(id))
    }

    /// A page of the account's jobs, newest first (`created_at`, then `id`), without their
    /// request bodies: those matching `filter`, older than its cursor, at most its limit
    /// (and at most [`JOBS_PAGE_MAX`]).
    pub async fn jobs_page(&self, account_id: i64, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        delegate!(self.jobs_page(account_id, filter))
    }

    /// Ends as `expired` (at `now`) up to `limit` jobs queued before `queued_before` that
    /// are not running on a live worker (still queued, or their lease lapsed before
    /// `lapsed_before`), oldest first; returns their request ids, whose holds the caller
    /// releases. A job a worker claims meanwhile is left to run.
    pub async fn expire_jobs(
        &self,
        queued_before: i64,
        lapsed_before: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        delegate!(self.expire_jobs(queued_before, lapsed_before, now, limit))
    }

    /// Deletes up to `limit` finished jobs that completed before `before` (the retention
    /// sweep), oldest first; returns how many. A job whose hold is still open stays until
    /// its hold is settled, which needs the job's cost.
    pub async fn delete_finished_jobs(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        delegate!(self.delete_finished_jobs(before, limit))
    }

    /// Holds of the job machinery ([`JOB_HOLDER`]) that nothing will end: their job
    /// finished before `finished_before`, or does not exist. Each with its job (without its
    /// request body) when there is one, oldest hold first.
    pub async fn stranded_job_holds(&self, finished_before: i64) -> Result<Vec<StrandedHold>, StoreError> {
        delegate!(self.stranded_job_holds(finished_before))
    }

    /// How many jobs there are in each status: every status, in [`JobStatus::ALL`]'s
    /// order, zeros included.
    pub async fn job_counts(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        delegate!(self.job_counts())
    }
}
