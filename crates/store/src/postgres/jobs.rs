//! PostgreSQL queries for async jobs: queueing one (its hold passes to the job machinery),
//! claiming and leasing, finishing and cancelling, the account's list and the sweeps.
//!
//! Every change of state is one conditional statement, or a transaction that locks the
//! job's row first: under READ COMMITTED a statement that waited for a row lock re-checks
//! its condition on the row as the other transaction left it, so a claim, a cancel and a
//! finish never act on a state that has just changed.

use sqlx::{Postgres, QueryBuilder};

use super::PostgresDb;
use crate::jobs::{
    JobRecord, StrandedRecord, all_counts, finished, job_columns, job_from, jobs_from, push_page, unfinished,
    usage_columns,
};
use crate::rows::from_db_count;
use crate::{
    Cancellation, JOB_HOLDER, Job, JobFilter, JobOutcome, JobStatus, NanoUsd, NewJob, StoreError, StrandedHold, Usage,
};

impl PostgresDb {
    pub(crate) async fn create_job(&self, job: &NewJob, cap: u64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        if cap < u64::MAX {
            // Submissions of one account queue one at a time (the account's row lock, as a
            // hold takes it): the count below is still true when the insert commits.
            sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
                .bind(job.account_id)
                .execute(&mut *tx)
                .await?;
            let active: i64 =
                sqlx::query_scalar(concat!("SELECT COUNT(*) FROM jobs WHERE account_id = $1 AND ", unfinished!()))
                    .bind(job.account_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if from_db_count(active) >= cap {
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO jobs (id, kind, account_id, key_id, request_id, model, status, request, headers, hold_nano, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10)",
        )
        .bind(&job.id)
        .bind(job.kind.as_str())
        .bind(job.account_id)
        .bind(&job.key_id)
        .bind(&job.request_id)
        .bind(&job.model)
        .bind(&job.request)
        .bind(&job.headers)
        .bind(job.hold.0)
        .bind(job.created_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE holds SET replica = $1 WHERE request_id = $2")
            .bind(JOB_HOLDER)
            .bind(&job.request_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(crate) async fn active_jobs(&self, account_id: i64) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar(concat!("SELECT COUNT(*) FROM jobs WHERE account_id = $1 AND ", unfinished!()))
                .bind(account_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(from_db_count(count))
    }

    pub(crate) async fn claim_job(&self, owner: &str, now: i64, lease_secs: i64) -> Result<Option<Job>, StoreError> {
        // Rows other replicas are claiming (or cancelling) are skipped, not waited for; a
        // row whose claim committed meanwhile is re-checked on its newest version and left
        // out, the next one taken instead. The outer condition repeats the check.
        let record = sqlx::query_as::<_, JobRecord>(concat!(
            "UPDATE jobs SET status = 'in_progress', lease_owner = $1, lease_until = $2 + $3, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $2) \
             WHERE id = (SELECT id FROM jobs WHERE ",
            unfinished!(),
            " AND (status = 'queued' OR lease_until < $2) ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             AND (status = 'queued' OR (status = 'in_progress' AND lease_until < $2)) RETURNING ",
            job_columns!("request")
        ))
        .bind(owner)
        .bind(now)
        .bind(lease_secs)
        .fetch_optional(&self.pool)
        .await?;
        job_from(record)
    }

    pub(crate) async fn renew_job(&self, id: &str, owner: &str, now: i64, lease_secs: i64) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE jobs SET lease_until = $1 + $2 WHERE id = $3 AND status = 'in_progress' AND lease_owner = $4",
        )
        .bind(now)
        .bind(lease_secs)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(renewed > 0)
    }

    pub(crate) async fn expire_job_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let expired = sqlx::query("UPDATE jobs SET lease_until = 0 WHERE lease_owner = $1 AND status = 'in_progress'")
            .bind(owner)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(expired)
    }

    pub(crate) async fn finish_job(&self, id: &str, owner: &str, outcome: &JobOutcome) -> Result<bool, StoreError> {
        let [prompt, completion, cached, reasoning, cache_write] = usage_columns(outcome.usage);
        let finished = sqlx::query(
            "UPDATE jobs SET status = $1, result = $2, error = $3, prompt_tokens = $4, completion_tokens = $5, \
             cached_tokens = $6, reasoning_tokens = $7, cache_write_tokens = $8, cost_nano = $9, completed_at = $10, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $11 AND status = 'in_progress' AND lease_owner = $12",
        )
        .bind(outcome.status.as_str())
        .bind(&outcome.result)
        .bind(&outcome.error)
        .bind(prompt)
        .bind(completion)
        .bind(cached)
        .bind(reasoning)
        .bind(cache_write)
        .bind(outcome.cost.0)
        .bind(outcome.completed_at)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(finished > 0)
    }

    pub(crate) async fn note_job_cost(&self, id: &str, usage: Option<Usage>, cost: NanoUsd) -> Result<(), StoreError> {
        let [prompt, completion, cached, reasoning, cache_write] = usage_columns(usage);
        sqlx::query(
            "UPDATE jobs SET prompt_tokens = COALESCE($1, prompt_tokens), \
             completion_tokens = COALESCE($2, completion_tokens), cached_tokens = COALESCE($3, cached_tokens), \
             reasoning_tokens = COALESCE($4, reasoning_tokens), \
             cache_write_tokens = COALESCE($5, cache_write_tokens), cost_nano = $6 WHERE id = $7",
        )
        .bind(prompt)
        .bind(completion)
        .bind(cached)
        .bind(reasoning)
        .bind(cache_write)
        .bind(cost.0)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn cancel_job(&self, id: &str, account_id: i64, now: i64) -> Result<Cancellation, StoreError> {
        // The row is locked as it is read: a claim skips it meanwhile, a finish waits and
        // then finds it cancelled; the status read is the one the update changes.
        let mut tx = self.pool.begin().await?;
        let record = sqlx::query_as::<_, JobRecord>(concat!(
            "SELECT ",
            job_columns!("request"),
            " FROM jobs WHERE id = $1 AND account_id = $2 FOR UPDATE"
        ))
        .bind(id)
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(job) = job_from(record)? else {
            return Ok(Cancellation::NotFound);
        };
        if job.status.is_final() {
            return Ok(Cancellation::Finished(job));
        }
        let record = sqlx::query_as::<_, JobRecord>(concat!(
            "UPDATE jobs SET status = 'cancelled', completed_at = $1, lease_owner = NULL, lease_until = NULL \
             WHERE id = $2 RETURNING ",
            job_columns!("request")
        ))
        .bind(now)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Cancellation::Cancelled { job: Job::try_from(record)?, was: job.status })
    }

    pub(crate) async fn job(&self, id: &str, account_id: i64) -> Result<Option<Job>, StoreError> {
        let record = sqlx::query_as::<_, JobRecord>(concat!(
            "SELECT ",
            job_columns!("request"),
            " FROM jobs WHERE id = $1 AND account_id = $2"
        ))
        .bind(id)
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        job_from(record)
    }

    pub(crate) async fn job_by_id(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let record =
            sqlx::query_as::<_, JobRecord>(concat!("SELECT ", job_columns!("request"), " FROM jobs WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        job_from(record)
    }

    pub(crate) async fn jobs_page(&self, account_id: i64, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            job_columns!("NULL AS request"),
            " FROM jobs WHERE account_id = "
        ));
        query.push_bind(account_id);
        push_page(&mut query, filter);
        jobs_from(query.build_query_as::<JobRecord>().fetch_all(&self.pool).await?)
    }

    pub(crate) async fn expire_jobs(
        &self,
        queued_before: i64,
        lapsed_before: i64,
        now: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        // The outer condition repeats the inner one: a job claimed meanwhile is left out.
        let expired: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET status = 'expired', completed_at = $3, lease_owner = NULL, lease_until = NULL \
             WHERE id IN (SELECT id FROM jobs WHERE created_at < $1 \
             AND (status = 'queued' OR (status = 'in_progress' AND lease_until < $2)) \
             ORDER BY created_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             AND (status = 'queued' OR (status = 'in_progress' AND lease_until < $2)) RETURNING request_id",
        )
        .bind(queued_before)
        .bind(lapsed_before)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(expired)
    }

    pub(crate) async fn delete_finished_jobs(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        let deleted = sqlx::query(concat!(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE ",
            finished!(),
            " AND completed_at < $1 \
              AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.request_id = jobs.request_id) \
              ORDER BY completed_at LIMIT $2)"
        ))
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    pub(crate) async fn stranded_job_holds(&self, finished_before: i64) -> Result<Vec<StrandedHold>, StoreError> {
        let holds = sqlx::query_as::<_, StrandedRecord>(concat!(
            "SELECT h.request_id, h.account_id, h.key_id, h.model, h.endpoint, h.created_at FROM holds h \
             LEFT JOIN jobs j ON j.request_id = h.request_id \
             WHERE h.replica = $1 AND (j.id IS NULL OR (j.",
            finished!(),
            " AND j.completed_at < $2)) ORDER BY h.created_at"
        ))
        .bind(JOB_HOLDER)
        .bind(finished_before)
        .fetch_all(&self.pool)
        .await?;
        if holds.is_empty() {
            return Ok(Vec::new());
        }
        let request_ids: Vec<String> = holds.iter().map(|h| h.request_id.clone()).collect();
        let records = sqlx::query_as::<_, JobRecord>(concat!(
            "SELECT ",
            job_columns!("NULL AS request"),
            " FROM jobs WHERE request_id = ANY($1)"
        ))
        .bind(&request_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(crate::jobs::stranded(holds, jobs_from(records)?))
    }

    pub(crate) async fn job_counts(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetch_all(&self.pool).await?;
        all_counts(counts)
    }
}
