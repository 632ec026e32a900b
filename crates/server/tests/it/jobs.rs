//! Async jobs (CONTRACTS §8, issue 15) on one gateway: submission answers 202 after every
//! admission step (so refusals come at once and queue nothing), the job's result is the
//! synchronous answer, cancellation (queued: never runs; running: its call is dropped)
//! leaves nothing held or charged, failures keep their error, another account sees 404,
//! lists page and filter, and the sweeper applies retention and ends stranded holds.
//! Jobs across a `kill -9` and on three replicas: `jobs_cluster`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenrouter::jobs::sweep_once;
use tokenrouter_core::{NanoUsd, Usage};
use tokenrouter_mock::MockConfig;
use tokenrouter_store::{HoldOutcome, JOB_HOLDER, JobKind, JobOutcome, JobStatus, NewHold, NewJob};

use crate::harness::{Gateway, expect_error, key_for, request_id, user};

/// `slow-job` answers after 3 s; `broken` always fails; both at $1 per 1M output tokens.
const JOBS: &str = r#"
[[models]]
id = "slow-job"
context_window = 10000
max_output_tokens = 1000
input_price = 0
output_price = 1
deployments = [ { provider = "mock", upstream_model = "mock-gpt@latency_ms=3000" } ]

[[models]]
id = "broken"
context_window = 10000
max_output_tokens = 1000
input_price = 0
output_price = 1
deployments = [ { provider = "mock", upstream_model = "mock-gpt@fault=500" } ]
"#;

/// No worker on this replica: submitted jobs stay queued.
const NO_WORKERS: &str = "[jobs]\nworkers = 0\n";

async fn gateway(extra: &str) -> Gateway {
    Gateway::start_with(MockConfig::default(), &format!("{extra}{JOBS}")).await
}

fn body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": user(text), "max_tokens": 100})
}

/// Submits `body` asynchronously with `key`, asking with `header`.
async fn submit_as(gw: &Gateway, key: &str, body: &Value, header: (&str, &str)) -> reqwest::Response {
    gw.http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .header(header.0, header.1)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Submits with the gateway's key and `Prefer: respond-async`; the 202's job.
async fn submit(gw: &Gateway, body: &Value) -> Value {
    let response = submit_as(gw, &gw.key, body, ("prefer", "respond-async")).await;
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

async fn get_job(gw: &Gateway, key: &str, id: &str) -> reqwest::Response {
    gw.http.get(format!("{}/api/jobs/{id}", gw.url)).bearer_auth(key).send().await.unwrap()
}

async fn cancel(gw: &Gateway, key: &str, id: &str) -> reqwest::Response {
    gw.http.delete(format!("{}/api/jobs/{id}", gw.url)).bearer_auth(key).send().await.unwrap()
}

/// Polls the job until `done` says so (10 s at most).
async fn poll_until(gw: &Gateway, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job: Value = get_job(gw, &gw.key, id).await.json().await.unwrap();
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} never got there: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finished(gw: &Gateway, id: &str) -> Value {
    poll_until(gw, id, |job| !matches!(job["status"].as_str(), Some("queued" | "in_progress"))).await
}

/// Nothing held, and the balance is the ledger's sum.
async fn books_close(gw: &Gateway) {
    gw.state.usage.flush().await;
    assert_eq!(gw.db.held(gw.account_id).await.unwrap(), NanoUsd::ZERO, "nothing held");
    assert!(gw.db.open_holds().await.unwrap().is_empty(), "no hold open");
    assert_eq!(gw.db.ledger_sum(gw.account_id).await.unwrap(), gw.balance().await);
}

/// Waits (3 s at most) until nothing is held.
async fn released(gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while gw.db.held(gw.account_id).await.unwrap() != NanoUsd::ZERO {
        assert!(Instant::now() < deadline, "the hold was not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_queued_completion_is_the_synchronous_answer_polled_later() {
    let gw = gateway("").await;
    let request = body("gpt-4o-mini", "Tell me about queues.");
    let direct = gw.chat(request.clone()).await;
    assert_eq!(direct.status(), 200);
    let direct: Value = direct.json().await.unwrap();
    for header in [("prefer", "respond-async"), ("x-tokenrouter-async", "true")] {
        let response = submit_as(&gw, &gw.key, &request, header).await;
        assert_eq!(response.status(), 202, "{header:?}");
        let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(response.headers()["preference-applied"], "respond-async");
        let queued: Value = response.json().await.unwrap();
        assert_eq!(location, format!("/api/jobs/{}", queued["id"].as_str().unwrap()));
        assert_eq!(
            (queued["object"].as_str(), queued["status"].as_str()),
            (Some("chat.completion.job"), Some("queued"))
        );
        assert_eq!((queued["model"].as_str(), queued["request_id"].as_str()), (Some("gpt-4o-mini"), Some(id.as_str())));
        assert!(queued["created_at"].as_str().unwrap().ends_with('Z'), "{queued}");

        let job = finished(&gw, queued["id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["attempts"], 1);
        assert!(job["started_at"].is_string() && job["completed_at"].is_string(), "{job}");
        assert!(job["error"].is_null());
        let result = &job["result"];
        assert_eq!(result["object"], "chat.completion");
        assert_eq!(result["choices"], direct["choices"], "the same answer as the synchronous call");
        assert_eq!(result["usage"], direct["usage"]);
        assert_eq!(job["usage"]["total_tokens"], direct["usage"]["total_tokens"]);
        // Charged once, under the request id the job names.
        let usage = gw.usage(&id).await;
        assert_eq!(job["cost_usd"], usage.cost.to_decimal_string());
        assert!(usage.cost.0 > 0);
    }
    books_close(&gw).await;
}

#[tokio::test]
async fn admission_refusals_come_at_once_and_queue_nothing() {
    let gw = gateway(NO_WORKERS).await;
    let prefer = ("prefer", "respond-async");
    let request = body("gpt-4o-mini", "hi");
    expect_error(submit_as(&gw, "sk-tr-nope_nope", &request, prefer).await, 401, "invalid_api_key").await;

    let (mut narrow, narrow_secret) = key_for(gw.account_id);
    narrow.models = vec!["slow-job".into()];
    narrow.rpm = Some(1);
    gw.add_key(&narrow).await;
    expect_error(submit_as(&gw, &narrow_secret, &request, prefer).await, 403, "model_not_allowed").await;
    assert_eq!(submit_as(&gw, &narrow_secret, &body("slow-job", "one"), prefer).await.status(), 202);
    expect_error(submit_as(&gw, &narrow_secret, &body("slow-job", "two"), prefer).await, 429, "rate_limited").await;

    let poor = gw.db.create_account("poor", NanoUsd(10)).await.unwrap();
    let (key, poor_secret) = key_for(poor.id);
    gw.add_key(&key).await;
    expect_error(submit_as(&gw, &poor_secret, &request, prefer).await, 402, "insufficient_quota").await;

    let streamed = json!({"model": "gpt-4o-mini", "messages": user("hi"), "stream": true});
    let refusal = expect_error(submit_as(&gw, &gw.key, &streamed, prefer).await, 400, "invalid_request").await;
    assert_eq!(refusal["error"]["param"], "stream");
    let unknown = body("no-such-model", "hi");
    expect_error(submit_as(&gw, &gw.key, &unknown, prefer).await, 404, "model_not_found").await;

    assert_eq!(gw.db.active_jobs(gw.account_id).await.unwrap(), 1, "only the admitted one was queued");
    assert_eq!(gw.db.active_jobs(poor.id).await.unwrap(), 0);
    assert_eq!(gw.db.held(poor.id).await.unwrap(), NanoUsd::ZERO);
}

#[tokio::test]
async fn an_account_may_queue_only_so_many_jobs() {
    let gw = gateway("[jobs]\nworkers = 0\nmax_queued_per_account = 2\n").await;
    for _ in 0..2 {
        submit(&gw, &body("gpt-4o-mini", "hi")).await;
    }
    let refused = submit_as(&gw, &gw.key, &body("gpt-4o-mini", "hi"), ("prefer", "respond-async")).await;
    let error = expect_error(refused, 429, "rate_limited").await;
    assert!(error["error"]["message"].as_str().unwrap().contains("2 jobs"), "{error}");
    assert_eq!(gw.db.active_jobs(gw.account_id).await.unwrap(), 2);
}

#[tokio::test]
async fn a_job_cancelled_while_queued_never_runs_and_holds_nothing() {
    let gw = gateway(NO_WORKERS).await;
    let before = gw.balance().await;
    let job = submit(&gw, &body("gpt-4o-mini", "Never mind.")).await;
    let id = job["id"].as_str().unwrap();
    assert!(gw.db.held(gw.account_id).await.unwrap().0 > 0, "held from submission on");

    // Another account sees nothing of it.
    let other = gw.db.create_account("other", NanoUsd::ZERO).await.unwrap();
    let (key, other_secret) = key_for(other.id);
    gw.add_key(&key).await;
    expect_error(get_job(&gw, &other_secret, id).await, 404, "not_found").await;
    expect_error(cancel(&gw, &other_secret, id).await, 404, "not_found").await;

    let cancelled = cancel(&gw, &gw.key, id).await;
    assert_eq!(cancelled.status(), 200);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["completed_at"].is_string() && cancelled["started_at"].is_null(), "{cancelled}");
    released(&gw).await;
    expect_error(cancel(&gw, &gw.key, id).await, 409, "conflict").await;
    assert_eq!(gw.mock.stats().request_count(), 0, "it never ran");
    assert_eq!(gw.balance().await, before, "nothing charged");
    books_close(&gw).await;
}

#[tokio::test]
async fn a_job_cancelled_while_running_drops_its_call_and_charges_nothing() {
    let gw = gateway("").await;
    let before = gw.balance().await;
    let job = submit(&gw, &body("slow-job", "Take your time.")).await;
    let id = job["id"].as_str().unwrap();
    poll_until(&gw, id, |job| job["status"] == "in_progress").await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while gw.mock.stats().request_count() == 0 {
        assert!(Instant::now() < deadline, "the upstream call never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled: Value = cancel(&gw, &gw.key, id).await.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    released(&gw).await;
    // Past the moment the upstream would have answered: still cancelled, nothing charged.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let job: Value = get_job(&gw, &gw.key, id).await.json().await.unwrap();
    assert_eq!((job["status"].as_str(), job["result"].is_null()), (Some("cancelled"), true), "{job}");
    assert_eq!(gw.balance().await, before, "nothing charged");
    expect_error(cancel(&gw, &gw.key, id).await, 409, "conflict").await;
    books_close(&gw).await;
}

#[tokio::test]
async fn a_failing_upstream_fails_the_job_with_its_error_and_releases_the_hold() {
    let gw = gateway("").await;
    let before = gw.balance().await;
    let job = submit(&gw, &body("broken", "This will not work.")).await;
    let job = finished(&gw, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "upstream_unavailable", "{job}");
    assert!(job["result"].is_null());
    assert_eq!(job["cost_usd"], "0");
    expect_error(cancel(&gw, &gw.key, job["id"].as_str().unwrap()).await, 409, "conflict").await;
    assert_eq!(gw.balance().await, before);
    books_close(&gw).await;
}

#[tokio::test]
async fn jobs_are_listed_by_session_and_swept_after_retention() {
    let gw = gateway("[jobs]\nretention_secs = 60\n").await;
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        let job = submit(&gw, &body("gpt-4o-mini", text)).await;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        finished(&gw, id).await;
    }
    let cookie = gw.session(gw.account_id).await;
    let list = |query: String| {
        let request = gw.http.get(format!("{}/api/jobs{query}", gw.url)).header("cookie", &cookie);
        async move { request.send().await.unwrap() }
    };
    let first: Value = list("?limit=2".into()).await.json().await.unwrap();
    assert_eq!(first["data"].as_array().unwrap().len(), 2, "{first}");
    let next = first["next"].as_str().unwrap();
    let second: Value = list(format!("?limit=2&before={next}")).await.json().await.unwrap();
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert!(second["next"].is_null());
    let mut listed: Vec<String> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected, "every job once");
    let completed: Value = list("?status=completed".into()).await.json().await.unwrap();
    assert_eq!(completed["data"].as_array().unwrap().len(), 3);
    let none: Value = list("?status=failed".into()).await.json().await.unwrap();
    assert!(none["data"].as_array().unwrap().is_empty());
    expect_error(list("?status=done".into()).await, 400, "invalid_request").await;
    let chats: Value = list("?kind=chat".into()).await.json().await.unwrap();
    assert_eq!(chats["data"].as_array().unwrap().len(), 3);
    let responses: Value = list("?kind=response".into()).await.json().await.unwrap();
    assert!(responses["data"].as_array().unwrap().is_empty(), "no background response was queued");
    let bad_kind = list("?kind=batch".into()).await;
    assert_eq!(bad_kind.status(), 400);
    let error: Value = bad_kind.json().await.unwrap();
    assert_eq!(error["error"]["param"], "kind");
    // An inference key may poll a job, not list them.
    let listed_with_key = gw.http.get(format!("{}/api/jobs", gw.url)).bearer_auth(&gw.key).send().await.unwrap();
    expect_error(listed_with_key, 403, "forbidden").await;
    // A session polls one too.
    let polled = gw.http.get(format!("{}/api/jobs/{}", gw.url, ids[0])).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(polled.status(), 200);

    let now = tokenrouter_core::clock::now_unix();
    let swept = sweep_once(&gw.state, now).await.unwrap();
    assert_eq!(swept.deleted, 0, "kept within retention");
    let swept = sweep_once(&gw.state, now + 61).await.unwrap();
    assert_eq!(swept.deleted, 3);
    expect_error(get_job(&gw, &gw.key, &ids[0]).await, 404, "not_found").await;
    books_close(&gw).await;
}

#[tokio::test]
async fn a_job_not_run_within_expire_after_secs_expires_uncharged_unless_a_live_worker_runs_it() {
    let gw = gateway("[jobs]\nworkers = 0\nexpire_after_secs = 3600\n").await;
    let before = gw.balance().await;
    let running = submit(&gw, &body("gpt-4o-mini", "run")).await;
    let running = running["id"].as_str().unwrap();
    let waiting = submit(&gw, &body("gpt-4o-mini", "wait")).await;
    let waiting = waiting["id"].as_str().unwrap();
    // A worker (of a replica that stands for a live one) takes the older job for 2 hours.
    let now = tokenrouter_core::clock::now_unix();
    let claimed = gw.db.claim_job("rep_live", now, 7200).await.unwrap().unwrap();
    assert_eq!(claimed.id, running);

    assert_eq!(sweep_once(&gw.state, now + 3599).await.unwrap().expired, 0, "not yet");
    let swept = sweep_once(&gw.state, now + 3601).await.unwrap();
    assert_eq!(swept.expired, 1, "{swept:?}");
    let job: Value = get_job(&gw, &gw.key, waiting).await.json().await.unwrap();
    assert_eq!((job["status"].as_str(), job["cost_usd"].as_str()), (Some("expired"), Some("0")), "{job}");
    assert!(job["completed_at"].is_string());
    expect_error(cancel(&gw, &gw.key, waiting).await, 409, "conflict").await;
    let job: Value = get_job(&gw, &gw.key, running).await.json().await.unwrap();
    assert_eq!(job["status"], "in_progress", "its worker is alive: {job}");
    assert_eq!(gw.db.open_holds().await.unwrap().len(), 1, "only the running job's hold is left");
    assert_eq!(sweep_once(&gw.state, now + 3601).await.unwrap().expired, 0, "once");

    // Its worker dies (the lease lapses): nobody runs it any more, so it expires too.
    gw.db.expire_job_leases("rep_live").await.unwrap();
    assert_eq!(sweep_once(&gw.state, now + 3602).await.unwrap().expired, 1);
    let job: Value = get_job(&gw, &gw.key, running).await.json().await.unwrap();
    assert_eq!(job["status"], "expired");
    assert!(!gw.db.renew_job(running, "rep_live", now, 7200).await.unwrap(), "its old worker lost it");
    assert!(gw.db.claim_job("rep_other", now + 3603, 30).await.unwrap().is_none(), "never run again");
    assert_eq!(gw.balance().await, before, "an expired job is never charged");
    books_close(&gw).await;
}

/// A key of the gateway's account limited to `tpm` tokens a minute.
async fn key_with_tpm(gw: &Gateway, tpm: u32) -> String {
    let (mut key, secret) = key_for(gw.account_id);
    key.tpm = Some(tpm);
    gw.add_key(&key).await;
    secret
}

#[tokio::test]
async fn a_jobs_rate_limit_settles_to_the_tokens_it_used_or_gives_them_back_when_cancelled() {
    let gw = gateway("").await;
    let key = key_with_tpm(&gw, 1000).await;
    // Admitted at ~900 tokens (its max_tokens): the minute's budget is spent at submission.
    let big = json!({"model": "gpt-4o-mini", "messages": user("hi"), "max_tokens": 900});
    let queued = submit_as(&gw, &key, &big, ("prefer", "respond-async")).await;
    assert_eq!(queued.status(), 202);
    let job: Value = queued.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    let done = poll_until(&gw, id, |j| j["status"] == "completed").await;
    let used = done["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used < 100, "{done}");
    // Its run used a few tokens: the rest is back, as after a synchronous answer.
    let sync = gw.http.post(format!("{}/v1/chat/completions", gw.url)).bearer_auth(&key).json(&big).send().await;
    assert_eq!(sync.unwrap().status(), 200, "the job's estimate was corrected to what it used");

    // A job cancelled before it ran gives its tokens back.
    let gw = gateway(NO_WORKERS).await;
    let key = key_with_tpm(&gw, 1000).await;
    let queued = submit_as(&gw, &key, &big, ("prefer", "respond-async")).await;
    let job: Value = queued.json().await.unwrap();
    let refused = submit_as(&gw, &key, &big, ("prefer", "respond-async")).await;
    expect_error(refused, 429, "rate_limited").await;
    assert_eq!(cancel(&gw, &key, job["id"].as_str().unwrap()).await.status(), 200);
    let again = submit_as(&gw, &key, &big, ("prefer", "respond-async")).await;
    assert_eq!(again.status(), 202, "the cancelled job's tokens were given back");
}

#[tokio::test]
async fn holds_stranded_by_dead_workers_are_settled_at_the_jobs_cost_or_released() {
    let gw = gateway(NO_WORKERS).await;
    let before = gw.balance().await;
    let hold = |request_id: &str| NewHold {
        request_id: request_id.to_owned(),
        account_id: gw.account_id,
        key_id: gw.key_id.clone(),
        amount: NanoUsd(5_000),
        enforce: true,
        replica: "rep_dead".into(),
        model: "gpt-4o-mini".into(),
        endpoint: "chat.completions".into(),
        stream: false,
        created_at: 1_700_000_000,
    };
    let job = |id: &str, request_id: &str| NewJob {
        id: id.to_owned(),
        kind: JobKind::Chat,
        account_id: gw.account_id,
        key_id: gw.key_id.clone(),
        request_id: request_id.to_owned(),
        model: "gpt-4o-mini".into(),
        request: b"{}".to_vec(),
        headers: "{}".into(),
        hold: NanoUsd(5_000),
        created_at: 1_700_000_000,
    };
    // A job that finished (its outcome recorded) before its worker died unsettled.
    assert_eq!(gw.db.hold(&hold("req_done")).await.unwrap(), HoldOutcome::Held);
    gw.db.create_job(&job("job_done", "req_done")).await.unwrap();
    let claimed = gw.db.claim_job("rep_dead", 1_700_000_001, 30).await.unwrap().unwrap();
    assert_eq!(claimed.id, "job_done");
    let usage = Usage { prompt_tokens: 10, completion_tokens: 20, ..Usage::default() };
    let outcome = JobOutcome {
        status: JobStatus::Completed,
        result: Some("{}".into()),
        error: None,
        usage: Some(usage),
        cost: NanoUsd(1_234),
        completed_at: 1_700_000_002,
    };
    assert!(gw.db.finish_job("job_done", "rep_dead", &outcome).await.unwrap());
    // A hold handed to a job that never came to exist (the replica died in between).
    let mut orphan = hold("req_lost");
    orphan.replica = JOB_HOLDER.into();
    assert_eq!(gw.db.hold(&orphan).await.unwrap(), HoldOutcome::Held);
    // A queued job's hold is left alone.
    assert_eq!(gw.db.hold(&hold("req_queued")).await.unwrap(), HoldOutcome::Held);
    gw.db.create_job(&job("job_queued", "req_queued")).await.unwrap();

    // Replicas sweeping dead replicas' holds leave jobs' holds to the job sweeper.
    tokenrouter::replicas::end_orphans(&gw.db, &gw.state.replica).await.unwrap();
    assert_eq!(gw.db.open_holds().await.unwrap().len(), 3);

    let swept = sweep_once(&gw.state, 1_700_000_002 + 61).await.unwrap();
    assert_eq!((swept.settled, swept.released), (1, 1), "{swept:?}");
    let open: Vec<String> = gw.db.open_holds().await.unwrap().into_iter().map(|h| h.request_id).collect();
    assert_eq!(open, ["req_queued"]);
    assert_eq!(gw.balance().await, NanoUsd(before.0 - 1_234), "charged the job's cost, once");
    assert_eq!(sweep_once(&gw.state, 1_700_000_002 + 61).await.unwrap().settled, 0, "once");
    assert_eq!(gw.db.ledger_sum(gw.account_id).await.unwrap(), gw.balance().await);
    let row = gw.usage("req_done").await;
    assert_eq!((row.cost, row.usage.completion_tokens), (NanoUsd(1_234), 20));
}

#[tokio::test]
async fn a_background_response_is_queued_polled_and_cancelled_in_openais_form() {
    let gw = gateway("").await;
    let create = |model: &str| {
        let body = json!({"model": model, "input": "Write a haiku.", "background": true, "max_output_tokens": 100});
        gw.post("/v1/responses").json(&body).send()
    };
    let response = create("gpt-4o-mini").await.unwrap();
    assert_eq!(response.status(), 200);
    let rid = request_id(&response);
    let queued: Value = response.json().await.unwrap();
    let id = queued["id"].as_str().unwrap().to_owned();
    assert_eq!(id, format!("resp_{}", rid.trim_start_matches("req_")));
    assert_eq!((queued["object"].as_str(), queued["status"].as_str()), (Some("response"), Some("queued")));
    assert_eq!(queued["background"], true);
    let retrieve = |id: String| {
        let request = gw.http.get(format!("{}/v1/responses/{id}", gw.url)).bearer_auth(&gw.key);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let done = loop {
        let polled = retrieve(id.clone()).await;
        if polled["status"] == "completed" {
            break polled;
        }
        assert!(["queued", "in_progress"].contains(&polled["status"].as_str().unwrap()), "{polled}");
        assert!(Instant::now() < deadline, "{polled}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["id"], id.as_str());
    assert_eq!(done["background"], true);
    assert!(done["output"][0]["content"][0]["text"].as_str().is_some_and(|t| !t.is_empty()), "{done}");
    assert!(done["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let cancel_url = |id: &str| format!("{}/v1/responses/{id}/cancel", gw.url);
    let refused = gw.http.post(cancel_url(&id)).bearer_auth(&gw.key).send().await.unwrap();
    expect_error(refused, 409, "conflict").await;

    let slow: Value = create("slow-job").await.unwrap().json().await.unwrap();
    let slow_id = slow["id"].as_str().unwrap();
    let cancelled = gw.http.post(cancel_url(slow_id)).bearer_auth(&gw.key).send().await.unwrap();
    assert_eq!(cancelled.status(), 200);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!((cancelled["id"].as_str(), cancelled["status"].as_str()), (Some(slow_id), Some("cancelled")));
    assert_eq!(retrieve(slow_id.to_owned()).await["status"], "cancelled");
    released(&gw).await;
    // A response that was not background cannot be cancelled.
    let plain = gw.post("/v1/responses").json(&json!({"model": "gpt-4o-mini", "input": "hi"})).send().await.unwrap();
    let plain: Value = plain.json().await.unwrap();
    let refused = gw.http.post(cancel_url(plain["id"].as_str().unwrap())).bearer_auth(&gw.key).send().await.unwrap();
    expect_error(refused, 404, "not_found").await;
    let streamed = json!({"model": "gpt-4o-mini", "input": "hi", "background": true, "stream": true});
    expect_error(gw.post("/v1/responses").json(&streamed).send().await.unwrap(), 400, "invalid_request").await;
    books_close(&gw).await;
}

#[tokio::test]
async fn a_cookie_cancel_from_another_origin_is_refused_and_changes_nothing() {
    let gw = gateway(NO_WORKERS).await;
    let job = submit(&gw, &body("gpt-4o-mini", "Stay queued.")).await;
    let id = job["id"].as_str().unwrap();
    let cookie = gw.session(gw.account_id).await;
    let foreign = gw
        .http
        .delete(format!("{}/api/jobs/{id}", gw.url))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    expect_error(foreign, 403, "csrf_failed").await;
    let still: Value = get_job(&gw, &gw.key, id).await.json().await.unwrap();
    assert_eq!(still["status"], "queued");
    assert!(gw.db.held(gw.account_id).await.unwrap().0 > 0, "still held");
}

#[tokio::test]
async fn twenty_concurrent_submissions_hold_no_more_than_the_balance() {
    let gw = gateway(NO_WORKERS).await;
    let request = body("slow-job", "race");
    // slow-job: free input, $1 per 1M output; max_tokens 100 holds 100,000 nano-USD.
    let account = gw.db.create_account("racer", NanoUsd(10 * 100_000 + 50_000)).await.unwrap();
    let (key, secret) = key_for(account.id);
    gw.add_key(&key).await;
    let attempts = (0..20).map(|_| submit_as(&gw, &secret, &request, ("prefer", "respond-async")));
    let statuses: Vec<u16> =
        futures_util::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 10, "{statuses:?}");
    assert_eq!(gw.db.active_jobs(account.id).await.unwrap(), 10);
    assert_eq!(gw.db.held(account.id).await.unwrap(), NanoUsd(10 * 100_000));
}
