//! Async jobs: queueing hands the hold to the job machinery, replicas claim each job once
//! (oldest first) under a lease another may take over when it runs out, cancelling races
//! neither claims nor finishes, the account's list pages and filters, and the sweeps find
//! what they should and nothing else.

use std::collections::HashSet;

use tokenrouter_core::Usage;
use tokenrouter_store::{
    Cancellation, Db, HoldOutcome, JOB_HOLDER, Job, JobFilter, JobKind, JobOutcome, JobStatus, NanoUsd, NewHold, NewJob,
};

use crate::fixture::{Backend, TestResult, new_key, on_both_backends};

const T: i64 = 1_700_000_000;
const LEASE: i64 = 30;

fn new_job(id: &str, account_id: i64, created_at: i64) -> NewJob {
    NewJob {
        id: id.to_owned(),
        kind: JobKind::Chat,
        account_id,
        key_id: format!("key-{account_id}"),
        request_id: format!("req_{id}"),
        model: "gpt-4o-mini".to_owned(),
        request: format!(r#"{{"job":"{id}"}}"#).into_bytes(),
        headers: r#"{"x-tokenrouter-provider":"openai"}"#.to_owned(),
        hold: NanoUsd(5_000),
        created_at,
    }
}

fn hold_for(job: &NewJob, replica: &str) -> NewHold {
    NewHold {
        request_id: job.request_id.clone(),
        account_id: job.account_id,
        key_id: job.key_id.clone(),
        amount: job.hold,
        enforce: true,
        replica: replica.to_owned(),
        model: job.model.clone(),
        endpoint: "chat.completions".to_owned(),
        stream: false,
        created_at: job.created_at,
    }
}

fn usage() -> Usage {
    Usage {
        prompt_tokens: 12,
        completion_tokens: 34,
        cached_tokens: 5,
        cache_write_tokens: 1,
        reasoning_tokens: 7,
        hosted: Default::default(),
    }
}

fn completed(at: i64) -> JobOutcome {
    JobOutcome {
        status: JobStatus::Completed,
        result: Some(r#"{"id":"chatcmpl-1"}"#.to_owned()),
        error: None,
        usage: Some(usage()),
        cost: NanoUsd(1_234),
        completed_at: at,
    }
}

/// An account with money for holds and a key `key-<account id>`.
async fn account(db: &Db, name: &str) -> Result<i64, Box<dyn std::error::Error>> {
    let id = db.create_account(name, NanoUsd(1_000_000_000)).await?.id;
    db.insert_key(&new_key(&format!("key-{id}"), id)).await?;
    Ok(id)
}

/// Takes the hold of a job's request as `replica` does before queueing it.
async fn hold(db: &Db, job: &NewJob, replica: &str) -> TestResult {
    assert_eq!(db.hold(&hold_for(job, replica)).await?, HoldOutcome::Held);
    Ok(())
}

/// Queues a job and runs it to the end under `owner`.
async fn finished_job(db: &Db, job: &NewJob, at: i64) -> Result<Job, Box<dyn std::error::Error>> {
    db.create_job(job).await?;
    let claimed = db.claim_job("worker", at - 1, LEASE).await?.ok_or("nothing to claim")?;
    assert_eq!(claimed.id, job.id, "the only queued job");
    assert!(db.finish_job(&job.id, "worker", &completed(at)).await?);
    Ok(db.job_by_id(&job.id).await?.ok_or("gone")?)
}

async fn creating_a_job_hands_its_hold_to_the_job_machinery(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    let other = account(&db, "other").await?;
    let new = new_job("job_1", acme, T);
    hold(&db, &new, "replica-a").await?;
    db.create_job(&new).await?;

    let holds = db.open_holds().await?;
    assert_eq!(holds.len(), 1);
    assert_eq!((holds[0].request_id.as_str(), holds[0].replica.as_str()), ("req_job_1", JOB_HOLDER));
    let job = db.job("job_1", acme).await?.ok_or("not found")?;
    let expected = Job {
        id: new.id.clone(),
        kind: JobKind::Chat,
        account_id: acme,
        key_id: format!("key-{acme}"),
        request_id: new.request_id.clone(),
        model: new.model.clone(),
        status: JobStatus::Queued,
        request: new.request.clone(),
        headers: new.headers.clone(),
        hold: NanoUsd(5_000),
        created_at: T,
        started_at: None,
        completed_at: None,
        attempts: 0,
        lease_owner: None,
        lease_until: None,
        result: None,
        error: None,
        usage: None,
        cost: None,
    };
    assert_eq!(job, expected);
    assert_eq!(db.job_by_id("job_1").await?, Some(expected));
    assert_eq!(db.job("job_1", other).await?, None, "another account's");
    assert_eq!(db.job_by_id("job_2").await?, None);
    assert_eq!((db.active_jobs(acme).await?, db.active_jobs(other).await?), (1, 0));

    let twice = NewJob { id: "job_2".to_owned(), ..new };
    assert!(db.create_job(&twice).await.is_err(), "one job per request id");
    assert_eq!(db.active_jobs(acme).await?, 1);
    Ok(())
}

async fn claims_take_the_oldest_job_first_under_a_lease(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    for (id, created_at) in [("job_b", T + 1), ("job_c", T + 2), ("job_a", T)] {
        db.create_job(&new_job(id, acme, created_at)).await?;
    }
    let first = db.claim_job("replica-a", T + 10, LEASE).await?.ok_or("nothing claimed")?;
    assert_eq!(first.id, "job_a", "oldest first");
    assert_eq!(first.status, JobStatus::InProgress);
    assert_eq!((first.lease_owner.as_deref(), first.lease_until), (Some("replica-a"), Some(T + 10 + LEASE)));
    assert_eq!((first.attempts, first.started_at), (1, Some(T + 10)));
    assert_eq!(first.request, br#"{"job":"job_a"}"#, "with its body");
    assert_eq!(db.job_by_id("job_a").await?, Some(first));

    let ids = [db.claim_job("replica-b", T + 11, LEASE).await?, db.claim_job("replica-a", T + 12, LEASE).await?];
    assert_eq!(ids.map(|j| j.map(|j| j.id)), [Some("job_b".to_owned()), Some("job_c".to_owned())]);
    assert_eq!(db.claim_job("replica-b", T + 13, LEASE).await?, None, "every lease is alive");
    assert_eq!(db.active_jobs(acme).await?, 3, "in progress counts");
    Ok(())
}

async fn two_replicas_claim_each_job_once(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    for i in 0..30 {
        db.create_job(&new_job(&format!("job_{i:02}"), acme, T + i / 3)).await?;
    }
    let one = Db::open(&db.url).await?;
    let two = Db::open(&db.url).await?;
    async fn claim_all(db: &Db, owner: &str) -> Result<Vec<String>, tokenrouter_store::StoreError> {
        let mut ids = Vec::new();
        while let Some(job) = db.claim_job(owner, T + 100, LEASE).await? {
            assert_eq!((job.lease_owner.as_deref(), job.attempts), (Some(owner), 1));
            ids.push(job.id);
        }
        Ok(ids)
    }
    let (a, b) = tokio::join!(claim_all(&one, "replica-a"), claim_all(&two, "replica-b"));
    let (a, b) = (a?, b?);
    let all: Vec<&String> = a.iter().chain(&b).collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert_eq!((all.len(), distinct.len()), (30, 30), "each job once: {a:?} {b:?}");
    Ok(())
}

async fn an_expired_lease_passes_to_another_owner(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    db.create_job(&new_job("job_1", acme, T)).await?;
    let a = db.claim_job("replica-a", T + 10, LEASE).await?.ok_or("nothing claimed")?;
    assert!(db.renew_job("job_1", "replica-a", T + 20, LEASE).await?);
    assert_eq!(db.claim_job("replica-b", T + 20 + LEASE - 1, LEASE).await?, None, "the renewed lease holds");

    let b = db.claim_job("replica-b", T + 20 + LEASE + 1, LEASE).await?.ok_or("not reclaimed")?;
    assert_eq!(b.id, a.id);
    assert_eq!((b.lease_owner.as_deref(), b.attempts), (Some("replica-b"), 2));
    assert_eq!(b.started_at, Some(T + 10), "when a worker first took it");
    assert!(!db.renew_job("job_1", "replica-a", T + 52, LEASE).await?, "the old owner stops");
    assert!(!db.finish_job("job_1", "replica-a", &completed(T + 52)).await?);
    assert_eq!(db.job_by_id("job_1").await?.ok_or("gone")?.status, JobStatus::InProgress);

    assert!(db.renew_job("job_1", "replica-b", T + 60, LEASE).await?);
    assert!(db.finish_job("job_1", "replica-b", &completed(T + 70)).await?);
    let done = db.job_by_id("job_1").await?.ok_or("gone")?;
    assert_eq!((done.status, done.completed_at, done.attempts), (JobStatus::Completed, Some(T + 70), 2));
    assert_eq!((done.lease_owner, done.lease_until), (None, None), "the lease ended");
    assert_eq!((done.usage, done.cost, done.error), (Some(usage()), Some(NanoUsd(1_234)), None));
    assert_eq!(done.result.as_deref(), Some(r#"{"id":"chatcmpl-1"}"#));
    assert!(!db.finish_job("job_1", "replica-b", &completed(T + 71)).await?, "finished once");
    assert!(!db.renew_job("job_1", "replica-b", T + 71, LEASE).await?);
    assert_eq!(db.claim_job("replica-c", T + 1_000, LEASE).await?, None, "a final job never runs again");
    assert_eq!(db.active_jobs(acme).await?, 0);

    let queued = JobOutcome { status: JobStatus::Queued, ..completed(T) };
    assert!(db.finish_job("job_1", "replica-b", &queued).await.is_err(), "only a final status ends a run");
    Ok(())
}

async fn a_job_cancelled_while_queued_never_runs(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    db.create_job(&new_job("job_1", acme, T)).await?;
    let Cancellation::Cancelled { job, was } = db.cancel_job("job_1", acme, T + 5).await? else {
        return Err("not cancelled".into());
    };
    assert_eq!(was, JobStatus::Queued);
    assert_eq!((job.status, job.completed_at, job.attempts), (JobStatus::Cancelled, Some(T + 5), 0));
    assert_eq!(db.job_by_id("job_1").await?, Some(job.clone()));
    assert_eq!(db.claim_job("replica-a", T + 6, LEASE).await?, None);
    assert_eq!(db.active_jobs(acme).await?, 0);
    assert_eq!(db.cancel_job("job_1", acme, T + 7).await?, Cancellation::Finished(job), "unchanged");
    Ok(())
}

async fn a_job_cancelled_in_progress_cannot_finish(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    db.create_job(&new_job("job_1", acme, T)).await?;
    db.claim_job("replica-a", T + 1, LEASE).await?.ok_or("nothing claimed")?;
    let Cancellation::Cancelled { job, was } = db.cancel_job("job_1", acme, T + 5).await? else {
        return Err("not cancelled".into());
    };
    assert_eq!(was, JobStatus::InProgress);
    assert_eq!((job.status, job.lease_owner, job.lease_until), (JobStatus::Cancelled, None, None));
    assert!(!db.renew_job("job_1", "replica-a", T + 6, LEASE).await?, "its worker stops");
    assert!(!db.finish_job("job_1", "replica-a", &completed(T + 7)).await?);
    assert_eq!(db.claim_job("replica-b", T + 1_000, LEASE).await?, None, "nor is it claimed again");

    // Its run was charged anyway: the cost is recorded on the cancelled job.
    db.note_job_cost("job_1", Some(usage()), NanoUsd(900)).await?;
    let noted = db.job_by_id("job_1").await?.ok_or("gone")?;
    assert_eq!((noted.status, noted.usage, noted.cost), (JobStatus::Cancelled, Some(usage()), Some(NanoUsd(900))));
    assert_eq!((noted.result, noted.completed_at), (None, Some(T + 5)));
    db.note_job_cost("job_1", None, NanoUsd(950)).await?;
    let noted = db.job_by_id("job_1").await?.ok_or("gone")?;
    assert_eq!((noted.usage, noted.cost), (Some(usage()), Some(NanoUsd(950))), "no usage keeps the one noted");
    Ok(())
}

async fn a_finished_or_anothers_job_is_not_cancelled(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    let other = account(&db, "other").await?;
    let done = finished_job(&db, &new_job("job_1", acme, T), T + 10).await?;
    assert_eq!(db.cancel_job("job_1", acme, T + 20).await?, Cancellation::Finished(done.clone()));
    assert_eq!(db.job_by_id("job_1").await?, Some(done));

    db.create_job(&new_job("job_2", acme, T + 30)).await?;
    assert_eq!(db.cancel_job("job_2", other, T + 40).await?, Cancellation::NotFound, "another account's");
    assert_eq!(db.cancel_job("job_404", acme, T + 40).await?, Cancellation::NotFound);
    assert_eq!(db.job_by_id("job_2").await?.ok_or("gone")?.status, JobStatus::Queued);
    Ok(())
}

async fn cancels_racing_claims_never_let_a_cancelled_job_run(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    for i in 0..30 {
        db.create_job(&new_job(&format!("job_{i:02}"), acme, T + i)).await?;
    }
    let worker = Db::open(&db.url).await?;
    let canceller = Db::open(&db.url).await?;
    let claims = async {
        let mut ids = Vec::new();
        while let Some(job) = worker.claim_job("replica-a", T + 100, LEASE).await? {
            ids.push(job.id);
        }
        Ok::<_, tokenrouter_store::StoreError>(ids)
    };
    let cancels = async {
        let mut outcomes = Vec::new();
        for i in (0..30).rev() {
            outcomes.push(canceller.cancel_job(&format!("job_{i:02}"), acme, T + 100).await?);
        }
        Ok::<_, tokenrouter_store::StoreError>(outcomes)
    };
    let (claimed, cancelled) = tokio::join!(claims, cancels);
    let claimed: HashSet<String> = claimed?.into_iter().collect();
    for outcome in cancelled? {
        let Cancellation::Cancelled { job, was } = outcome else {
            return Err(format!("every job was unfinished: {outcome:?}").into());
        };
        assert_eq!(was == JobStatus::InProgress, claimed.contains(&job.id), "{} was {was:?}", job.id);
        assert_eq!(job.attempts, u32::from(claimed.contains(&job.id)));
    }
    Ok(())
}

async fn the_list_pages_newest_first_and_filters(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    let other = account(&db, "other").await?;
    // Two jobs share a second: the id orders them.
    let spec = [
        ("job_1", T, "gpt-4o-mini", JobKind::Chat),
        ("job_2", T + 1, "claude", JobKind::Chat),
        ("resp_3", T + 2, "gpt-4o-mini", JobKind::Response),
        ("job_4", T + 2, "gpt-4o-mini", JobKind::Chat),
        ("job_5", T + 3, "claude", JobKind::Response),
    ];
    for (id, created_at, model, kind) in spec {
        db.create_job(&NewJob { model: model.to_owned(), kind, ..new_job(id, acme, created_at) }).await?;
    }
    db.create_job(&new_job("job_9", other, T + 5)).await?;
    db.claim_job("replica-a", T + 10, LEASE).await?.ok_or("nothing claimed")?; // job_1

    let mut pages = Vec::new();
    let mut filter = JobFilter { limit: 2, ..JobFilter::default() };
    loop {
        let page = db.jobs_page(acme, &filter).await?;
        let Some(last) = page.last() else { break };
        filter.before = Some((last.created_at, last.id.clone()));
        assert!(page.len() <= 2);
        assert!(page.iter().all(|j| j.request.is_empty()), "lists leave the body out");
        pages.push(page.into_iter().map(|j| j.id).collect::<Vec<_>>());
    }
    assert_eq!(pages, [vec!["job_5", "resp_3"], vec!["job_4", "job_2"], vec!["job_1"]]);

    let ids = async |filter: JobFilter| -> Result<Vec<String>, tokenrouter_store::StoreError> {
        Ok(db.jobs_page(acme, &JobFilter { limit: 10, ..filter }).await?.into_iter().map(|j| j.id).collect())
    };
    let status = ids(JobFilter { status: Some(JobStatus::InProgress), ..JobFilter::default() }).await?;
    assert_eq!(status, ["job_1"]);
    let model = ids(JobFilter { model: Some("claude".to_owned()), ..JobFilter::default() }).await?;
    assert_eq!(model, ["job_5", "job_2"]);
    let kind = ids(JobFilter { kind: Some(JobKind::Response), ..JobFilter::default() }).await?;
    assert_eq!(kind, ["job_5", "resp_3"]);
    let both = JobFilter { kind: Some(JobKind::Chat), model: Some("gpt-4o-mini".to_owned()), ..JobFilter::default() };
    assert_eq!(ids(both).await?, ["job_4", "job_1"]);
    let page = db.jobs_page(other, &JobFilter { limit: 10, ..JobFilter::default() }).await?;
    assert_eq!(page.into_iter().map(|j| j.id).collect::<Vec<_>>(), ["job_9"], "each account its own");

    for i in 0..100 {
        db.create_job(&new_job(&format!("job_many_{i:03}"), acme, T + 100 + i)).await?;
    }
    assert_eq!(db.jobs_page(acme, &JobFilter { limit: 1_000, ..JobFilter::default() }).await?.len(), 100, "capped");
    Ok(())
}

async fn the_retention_sweep_deletes_only_old_finished_jobs(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    finished_job(&db, &new_job("old_1", acme, T), T + 10).await?;
    finished_job(&db, &new_job("old_2", acme, T + 1), T + 20).await?;
    finished_job(&db, &new_job("recent", acme, T + 2), T + 1_000).await?;
    // A finished job whose hold is still open: its cost is needed to settle the hold.
    let held = new_job("held", acme, T + 3);
    hold(&db, &held, "replica-a").await?;
    finished_job(&db, &held, T + 30).await?;
    db.create_job(&new_job("running", acme, T - 50)).await?;
    db.claim_job("replica-a", T + 40, LEASE).await?.ok_or("nothing claimed")?;
    db.create_job(&new_job("queued", acme, T - 100)).await?;
    db.create_job(&new_job("cancelled", acme, T + 4)).await?;
    db.cancel_job("cancelled", acme, T + 25).await?;

    assert_eq!(db.delete_finished_jobs(T + 500, 2).await?, 2, "up to the limit");
    assert_eq!(db.job_by_id("old_1").await?, None, "oldest first");
    assert_eq!(db.job_by_id("old_2").await?, None);
    assert_eq!(db.delete_finished_jobs(T + 500, 10).await?, 1);
    assert_eq!(db.job_by_id("cancelled").await?, None);
    assert_eq!(db.delete_finished_jobs(T + 500, 10).await?, 0);
    for id in ["recent", "held", "queued", "running"] {
        assert!(db.job_by_id(id).await?.is_some(), "{id} is kept");
    }
    Ok(())
}

async fn stranded_holds_are_those_of_finished_or_missing_jobs(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    let done = new_job("done", acme, T);
    hold(&db, &done, "replica-a").await?;
    let done = finished_job(&db, &done, T + 10).await?;
    let recent = new_job("recent", acme, T + 1);
    hold(&db, &recent, "replica-a").await?;
    finished_job(&db, &recent, T + 1_000).await?;
    let queued = new_job("queued", acme, T + 2);
    hold(&db, &queued, "replica-a").await?;
    db.create_job(&queued).await?;
    let orphan = new_job("orphan", acme, T + 3); // a job hold whose job is gone
    hold(&db, &orphan, JOB_HOLDER).await?;
    let plain = new_job("plain", acme, T + 4); // an ordinary request's hold
    hold(&db, &plain, "replica-a").await?;

    let stranded = db.stranded_job_holds(T + 500).await?;
    let found: Vec<(&str, Option<&str>)> =
        stranded.iter().map(|s| (s.request_id.as_str(), s.job.as_ref().map(|j| j.id.as_str()))).collect();
    assert_eq!(found, [("req_done", Some("done")), ("req_orphan", None)]);
    let first = &stranded[0];
    assert_eq!(
        (first.account_id, first.key_id.as_str(), first.model.as_str()),
        (acme, format!("key-{acme}").as_str(), "gpt-4o-mini")
    );
    assert_eq!((first.endpoint.as_str(), first.created_at), ("chat.completions", T));
    let job = first.job.clone().ok_or("no job")?;
    assert_eq!(job, Job { request: Vec::new(), ..done }, "the job as stored, without its body");
    assert_eq!(db.stranded_job_holds(T + 2_000).await?.len(), 3, "the recent one in time");
    Ok(())
}

async fn jobs_waiting_too_long_expire_unless_a_live_worker_runs_them(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    for (id, at) in [("running", T), ("orphaned", T + 1), ("queued", T + 2), ("young", T + 500)] {
        db.create_job(&new_job(id, acme, at)).await?;
    }
    finished_job(&db, &new_job("done", acme, T - 10), T).await?;
    assert_eq!(db.claim_job("replica-a", T + 10, 10_000).await?.ok_or("nothing claimed")?.id, "running");
    assert_eq!(db.claim_job("replica-b", T + 10, LEASE).await?.ok_or("nothing claimed")?.id, "orphaned");
    // At T + 100 replica-b's lease has lapsed (it died); replica-a's has not.
    // A lease that lapsed only after `lapsed_before` (T + 40) is given its grace.
    let mut expired = db.expire_jobs(T + 100, T + 40, T + 100, 1).await?;
    assert_eq!(expired, ["req_queued"], "the orphaned job's lease lapsed too recently");
    expired = db.expire_jobs(T + 100, T + 100, T + 100, 10).await?;
    assert_eq!(expired, ["req_orphaned"]);
    assert!(db.expire_jobs(T + 100, T + 100, T + 100, 10).await?.is_empty(), "once");
    for (id, status) in [
        ("running", JobStatus::InProgress),
        ("orphaned", JobStatus::Expired),
        ("queued", JobStatus::Expired),
        ("young", JobStatus::Queued),
        ("done", JobStatus::Completed),
    ] {
        let job = db.job_by_id(id).await?.ok_or("gone")?;
        assert_eq!(job.status, status, "{id}");
    }
    let expired = db.job_by_id("queued").await?.ok_or("gone")?;
    assert_eq!(expired.completed_at, Some(T + 100));
    assert!(!db.renew_job("orphaned", "replica-b", T + 101, LEASE).await?, "its old worker lost it");
    assert!(matches!(db.cancel_job("queued", acme, T + 101).await?, Cancellation::Finished(_)));
    assert_eq!(db.claim_job("replica-c", T + 101, LEASE).await?.ok_or("nothing claimed")?.id, "young");
    assert_eq!(db.active_jobs(acme).await?, 2);
    Ok(())
}

async fn the_cap_on_an_accounts_jobs_holds_under_concurrent_submissions(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    let other = account(&db, "other").await?;
    db.create_job(&new_job("running", acme, T)).await?;
    db.claim_job("replica-a", T, LEASE).await?.ok_or("nothing claimed")?;
    finished_job(&db, &new_job("done", acme, T), T + 1).await?;
    // 20 submissions at once, from as many connections, against a cap of 5 (one running).
    let submissions: Vec<_> = (0..20)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.create_job_within(&new_job(&format!("job_{i}"), acme, T + 10), 5).await })
        })
        .collect();
    let mut queued = 0;
    for submission in submissions {
        if submission.await?? {
            queued += 1;
        }
    }
    assert_eq!(queued, 4, "finished jobs don't count; running ones do");
    assert_eq!(db.active_jobs(acme).await?, 5);
    assert!(db.create_job_within(&new_job("theirs", other, T + 10), 1).await?, "per account");
    Ok(())
}

async fn job_counts_count_every_status(backend: Backend) -> TestResult {
    let db = backend.db().await?;
    let acme = account(&db, "acme").await?;
    assert_eq!(db.job_counts().await?, JobStatus::ALL.map(|s| (s, 0)), "zeros included");
    finished_job(&db, &new_job("done", acme, T), T + 10).await?;
    for i in 0..3 {
        db.create_job(&new_job(&format!("queued_{i}"), acme, T + 20 + i)).await?;
    }
    db.claim_job("replica-a", T + 30, LEASE).await?.ok_or("nothing claimed")?;
    db.cancel_job("queued_2", acme, T + 31).await?;
    let counts = db.job_counts().await?;
    let expected = [
        (JobStatus::Queued, 1),
        (JobStatus::InProgress, 1),
        (JobStatus::Completed, 1),
        (JobStatus::Failed, 0),
        (JobStatus::Cancelled, 1),
        (JobStatus::Expired, 0),
    ];
    assert_eq!(counts, expected);
    assert_eq!(db.active_jobs(acme).await?, 2);
    Ok(())
}

on_both_backends!(
    creating_a_job_hands_its_hold_to_the_job_machinery,
    claims_take_the_oldest_job_first_under_a_lease,
    two_replicas_claim_each_job_once,
    an_expired_lease_passes_to_another_owner,
    a_job_cancelled_while_queued_never_runs,
    a_job_cancelled_in_progress_cannot_finish,
    a_finished_or_anothers_job_is_not_cancelled,
    cancels_racing_claims_never_let_a_cancelled_job_run,
    the_list_pages_newest_first_and_filters,
    the_retention_sweep_deletes_only_old_finished_jobs,
    stranded_holds_are_those_of_finished_or_missing_jobs,
    job_counts_count_every_status,
    jobs_waiting_too_long_expire_unless_a_live_worker_runs_them,
    the_cap_on_an_accounts_jobs_holds_under_concurrent_submissions,
);
