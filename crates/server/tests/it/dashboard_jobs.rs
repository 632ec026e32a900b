//! The Jobs page: it lists the account's jobs (never another's), filters by status and
//! model and pages by cursor; a job's page shows its times, usage, cost, error and the
//! answer it produced; Cancel is offered only while a job can still be cancelled, and
//! works; another account's job is the 404 page; without a session, the sign-in page.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, ORIGIN};
use serde_json::{Value, json};
use tokenrouter_core::{NanoUsd, Usage};
use tokenrouter_mock::MockConfig;
use tokenrouter_store::{JobKind, JobOutcome, JobStatus, NewJob};

use crate::harness::{Gateway, key_for, user};

/// No worker on this replica: jobs stay as the test leaves them.
const NO_WORKERS: &str = "[jobs]\nworkers = 0\n";

/// A signed-in browser of one account.
struct Browser<'a> {
    gw: &'a Gateway,
    cookie: String,
}

impl<'a> Browser<'a> {
    async fn of(gw: &'a Gateway, account_id: i64) -> Browser<'a> {
        Browser { gw, cookie: gw.session(account_id).await }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.gw.http.get(format!("{}{path}", self.gw.url)).header(COOKIE, &self.cookie).send().await.unwrap()
    }

    /// A page that must answer 200.
    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.unwrap()
    }

    /// `DELETE /api/jobs/{id}` as the page's Cancel button sends it (cookie, own origin).
    async fn cancel(&self, id: &str) -> reqwest::Response {
        let origin = self.gw.state.config.load().server.public_origin();
        let url = format!("{}/api/jobs/{id}", self.gw.url);
        self.gw.http.delete(url).header(COOKIE, &self.cookie).header(ORIGIN, origin).send().await.unwrap()
    }
}

/// Every `data-job-id` of a list page, in order.
fn listed(html: &str) -> Vec<String> {
    html.match_indices("data-job-id=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// The href of the link whose text is `label` (entities decoded).
fn link(html: &str, label: &str) -> Option<String> {
    let end = html.find(&format!(">{label}</a>"))?;
    let start = html[..end].rfind("href=\"")? + "href=\"".len();
    let href = &html[start..end];
    Some(href[..href.find('"')?].replace("&amp;", "&"))
}

/// Whether the page offers to cancel job `id`.
fn offers_cancel(html: &str, id: &str) -> bool {
    html.contains(&format!("data-api=\"DELETE /api/jobs/{id}\""))
}

/// `text` as the page writes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn new_job(gw: &Gateway, account_id: i64, id: &str, kind: JobKind, model: &str, created_at: i64) -> NewJob {
    NewJob {
        id: id.to_owned(),
        kind,
        account_id,
        key_id: gw.key_id.clone(),
        request_id: format!("req_{id}"),
        model: model.to_owned(),
        request: b"{}".to_vec(),
        headers: "{}".into(),
        hold: NanoUsd(5_000),
        created_at,
    }
}

/// Queues `job`, and when `outcome` is given runs it to that end at once (as a worker would).
async fn store_job(gw: &Gateway, job: NewJob, outcome: Option<JobOutcome>) {
    gw.db.create_job(&job).await.unwrap();
    if let Some(outcome) = outcome {
        let claimed = gw.db.claim_job("rep_test", job.created_at + 1, 30).await.unwrap().unwrap();
        assert_eq!(claimed.id, job.id);
        assert!(gw.db.finish_job(&job.id, "rep_test", &outcome).await.unwrap());
    }
}

const ANSWER: &str = "The answer is <42> & \"more\".";

/// For the gateway's account, oldest first: a completed chat job (`job_done`, $0.001234),
/// a failed response job (`resp_failed`) and a queued chat job on `slow-model`
/// (`job_waiting`); for another account, one queued job (`job_theirs`). The other
/// account's id.
async fn four_jobs(gw: &Gateway) -> i64 {
    let now = tokenrouter_core::clock::now_unix();
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
    });
    let done = JobOutcome {
        status: JobStatus::Completed,
        result: Some(completion.to_string()),
        error: None,
        usage: Some(Usage { prompt_tokens: 12, completion_tokens: 30, ..Usage::default() }),
        cost: NanoUsd(1_234_000),
        completed_at: now - 290,
    };
    store_job(gw, new_job(gw, gw.account_id, "job_done", JobKind::Chat, "gpt-4o-mini", now - 300), Some(done)).await;
    let error = json!({"message": "Every deployment of the model failed.", "type": "server_error", "code": "upstream_unavailable", "param": null});
    let failed = JobOutcome {
        status: JobStatus::Failed,
        result: None,
        error: Some(error.to_string()),
        usage: None,
        cost: NanoUsd::ZERO,
        completed_at: now - 190,
    };
    let response_job = new_job(gw, gw.account_id, "resp_failed", JobKind::Response, "gpt-4o-mini", now - 200);
    store_job(gw, response_job, Some(failed)).await;
    store_job(gw, new_job(gw, gw.account_id, "job_waiting", JobKind::Chat, "slow-model", now - 100), None).await;
    let other = gw.db.create_account("other", NanoUsd::ZERO).await.unwrap();
    store_job(gw, new_job(gw, other.id, "job_theirs", JobKind::Chat, "gpt-4o-mini", now - 50), None).await;
    other.id
}

#[tokio::test]
async fn the_list_shows_the_accounts_jobs_only_and_filters_and_pages_them() {
    let gw = Gateway::start_with(MockConfig::default(), NO_WORKERS).await;
    let other = four_jobs(&gw).await;
    let me = Browser::of(&gw, gw.account_id).await;

    let html = me.page("/dashboard/jobs").await;
    assert_eq!(listed(&html), ["job_waiting", "resp_failed", "job_done"], "newest first, not another account's");
    assert!(!html.contains("job_theirs"));
    assert!(html.contains("aria-current=\"page\">Jobs</a>"), "the navigation marks the page");
    // Status badges, kinds, cost (only once finished), and Cancel only on the queued one.
    for text in
        ["badge good\">completed", "badge bad\">failed", "badge\">queued", "chat completion", "response", "$0.001234"]
    {
        assert!(html.contains(text), "{text}");
    }
    assert!(offers_cancel(&html, "job_waiting"));
    assert!(!offers_cancel(&html, "job_done") && !offers_cancel(&html, "resp_failed"));
    assert!(html.contains("href=\"/dashboard/jobs/job_done\""));

    // Filters: by status, by model, both; an unknown status is a readable 400.
    for (query, expected) in [
        ("?status=queued", vec!["job_waiting"]),
        ("?status=completed", vec!["job_done"]),
        ("?status=failed&model=gpt-4o-mini", vec!["resp_failed"]),
        ("?model=slow-model", vec!["job_waiting"]),
        ("?model=gpt-4o-mini", vec!["resp_failed", "job_done"]),
        ("?status=&model=", vec!["job_waiting", "resp_failed", "job_done"]),
    ] {
        assert_eq!(listed(&me.page(&format!("/dashboard/jobs{query}")).await), expected, "{query}");
    }
    let filtered = me.page("/dashboard/jobs?status=queued").await;
    assert!(filtered.contains("<option value=\"queued\" selected>"), "the form keeps the filter");
    let empty = me.page("/dashboard/jobs?status=cancelled").await;
    assert!(empty.contains("No jobs match.") && !empty.contains("Prefer: respond-async"), "{empty}");
    let refused = me.get("/dashboard/jobs?status=done").await;
    assert_eq!(refused.status(), 400);
    let refused = refused.text().await.unwrap();
    assert!(refused.contains("role=\"alert\"") && refused.contains("must be queued, in_progress"), "{refused}");
    assert_eq!(me.get("/dashboard/jobs?before=nonsense").await.status(), 400);

    // Pages of two, by the API's cursor; the filter stays on the next page.
    let first = me.page("/dashboard/jobs?limit=2").await;
    assert_eq!(listed(&first), ["job_waiting", "resp_failed"]);
    let older = link(&first, "Older").expect("an Older link");
    assert!(older.starts_with("/dashboard/jobs?limit=2&before="), "{older}");
    let second = me.page(&older).await;
    assert_eq!(listed(&second), ["job_done"]);
    assert!(link(&second, "Older").is_none() && link(&second, "Newest").is_some());
    let first = me.page("/dashboard/jobs?model=gpt-4o-mini&limit=1").await;
    let older = link(&first, "Older").unwrap();
    assert!(older.contains("model=gpt-4o-mini"), "{older}");
    assert_eq!(listed(&me.page(&older).await), ["job_done"]);

    // The other account sees its own job alone.
    let them = Browser::of(&gw, other).await;
    assert_eq!(listed(&them.page("/dashboard/jobs").await), ["job_theirs"]);
}

#[tokio::test]
async fn a_jobs_page_shows_its_answer_cost_and_error_and_another_accounts_is_404() {
    let gw = Gateway::start_with(MockConfig::default(), NO_WORKERS).await;
    let other = four_jobs(&gw).await;
    let me = Browser::of(&gw, gw.account_id).await;

    let done = me.page("/dashboard/jobs/job_done").await;
    assert!(done.contains(&escaped(ANSWER)), "the assistant's text, escaped: {done}");
    assert!(!done.contains(ANSWER));
    assert!(done.contains("id=\"job-cost\">$0.001234<"), "{done}");
    assert!(done.contains("id=\"job-tokens\">42<"));
    assert!(done.contains("Finish reason: stop"));
    assert!(done.contains("<summary>Raw JSON</summary>") && done.contains("chatcmpl-1"), "the raw answer too");
    assert!(!offers_cancel(&done, "job_done") && !done.contains("data-watch-job"));
    for time in ["id=\"job-status\"", "Created", "Started", "Finished", "(queued 1 s)", "(ran 9 s)"] {
        assert!(done.contains(time), "{time}");
    }

    let failed = me.page("/dashboard/jobs/resp_failed").await;
    assert!(failed.contains("id=\"job-error\"") && failed.contains("Every deployment of the model failed."));
    assert!(failed.contains("upstream_unavailable") && failed.contains("badge bad\">failed"));
    assert!(failed.contains("id=\"job-cost\">$0<"), "a failed job costs nothing: {failed}");
    assert!(!offers_cancel(&failed, "resp_failed"));

    let waiting = me.page("/dashboard/jobs/job_waiting").await;
    assert!(offers_cancel(&waiting, "job_waiting"), "{waiting}");
    assert!(waiting.contains("data-confirm=\"Cancel the job job_waiting?"), "Cancel asks first");
    assert!(waiting.contains("data-watch-job=\"job_waiting\"") && waiting.contains("/assets/jobs."));
    assert!(waiting.contains("waiting for a worker"));

    // Another account's job, or none: the dashboard's 404 page, which names nothing.
    for id in ["job_theirs", "job_nope"] {
        let response = me.get(&format!("/dashboard/jobs/{id}")).await;
        assert_eq!(response.status(), 404, "{id}");
        assert!(response.headers().contains_key(CONTENT_SECURITY_POLICY));
        let html = response.text().await.unwrap();
        assert!(html.contains("belongs to another account") && html.contains("<h1>Jobs</h1>"), "{html}");
        assert!(!html.contains("gpt-4o-mini"));
    }
    let theirs = Browser::of(&gw, other).await.page("/dashboard/jobs/job_theirs").await;
    assert!(offers_cancel(&theirs, "job_theirs"));
}

/// Polls `/api/jobs/{id}` until the job has finished (10 s at most).
async fn finished(me: &Browser<'_>, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job: Value = me.get(&format!("/api/jobs/{id}")).await.json().await.unwrap();
        if !matches!(job["status"].as_str(), Some("queued" | "in_progress")) {
            return job;
        }
        assert!(Instant::now() < deadline, "{id} never finished: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn submit_chat(gw: &Gateway, text: &str) -> Value {
    let body = json!({"model": "gpt-4o-mini", "messages": user(text), "max_tokens": 50});
    let response = gw.post("/v1/chat/completions").header("prefer", "respond-async").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

#[tokio::test]
async fn jobs_run_by_workers_show_the_answer_they_got_and_what_they_cost() {
    let gw = Gateway::start().await;
    let me = Browser::of(&gw, gw.account_id).await;
    let chat = submit_chat(&gw, "Tell me about queues.").await;
    let chat = finished(&me, chat["id"].as_str().unwrap()).await;
    assert_eq!(chat["status"], "completed", "{chat}");
    let background =
        json!({"model": "gpt-4o-mini", "input": "Write a haiku.", "background": true, "max_output_tokens": 50});
    let response: Value = gw.post("/v1/responses").json(&background).send().await.unwrap().json().await.unwrap();
    let response = finished(&me, response["id"].as_str().unwrap()).await;
    assert_eq!(response["status"], "completed", "{response}");

    let (chat_id, response_id) = (chat["id"].as_str().unwrap(), response["id"].as_str().unwrap());
    let list = me.page("/dashboard/jobs").await;
    assert_eq!(listed(&list), [response_id, chat_id]);

    let html = me.page(&format!("/dashboard/jobs/{chat_id}")).await;
    let text = chat["result"]["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!text.is_empty() && html.contains(&escaped(text)), "{text} not in {html}");
    let cost = chat["cost_usd"].as_str().unwrap();
    assert!(html.contains(&format!("id=\"job-cost\">${cost}<")), "{cost}");
    let total = chat["usage"]["total_tokens"].as_u64().unwrap();
    assert!(html.contains(&format!("id=\"job-tokens\">{total}<")));
    let request_id = chat["request_id"].as_str().unwrap();
    assert!(html.contains(&format!("href=\"/dashboard/requests/{request_id}\"")), "linked to its request log entry");
    assert!(!offers_cancel(&html, chat_id));

    let html = me.page(&format!("/dashboard/jobs/{response_id}")).await;
    let text = response["result"]["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(!text.is_empty() && html.contains(&escaped(text)), "{text} not in {html}");
    assert!(html.contains(&format!("${}", response["cost_usd"].as_str().unwrap())));
}

#[tokio::test]
async fn cancel_is_offered_while_a_job_waits_and_then_no_more() {
    let gw = Gateway::start_with(MockConfig::default(), NO_WORKERS).await;
    let me = Browser::of(&gw, gw.account_id).await;
    let job = submit_chat(&gw, "Never mind.").await;
    let id = job["id"].as_str().unwrap();
    let path = format!("/dashboard/jobs/{id}");
    assert!(offers_cancel(&me.page(&path).await, id));
    assert!(offers_cancel(&me.page("/dashboard/jobs").await, id));

    // Another account can neither see nor cancel it.
    let other = gw.db.create_account("other", NanoUsd::ZERO).await.unwrap();
    let (key, _) = key_for(other.id);
    gw.add_key(&key).await;
    let them = Browser::of(&gw, other.id).await;
    assert_eq!(them.get(&path).await.status(), 404);
    assert_eq!(them.cancel(id).await.status(), 404);

    // What the button sends.
    assert_eq!(me.cancel(id).await.status(), 200);
    let html = me.page(&path).await;
    assert!(html.contains("badge\">cancelled") && !offers_cancel(&html, id), "{html}");
    assert!(html.contains("did not produce an answer") && !html.contains("data-watch-job"));
    assert!(!offers_cancel(&me.page("/dashboard/jobs").await, id));
    assert_eq!(me.cancel(id).await.status(), 409, "already finished");
    assert_eq!(gw.mock.stats().request_count(), 0, "it never ran");
}

#[tokio::test]
async fn without_jobs_the_page_says_how_to_queue_one_and_it_needs_a_session() {
    let gw = Gateway::start().await;
    let me = Browser::of(&gw, gw.account_id).await;
    let response = me.get("/dashboard/jobs").await;
    assert_eq!(response.status(), 200);
    let csp = response.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("No jobs yet."), "{html}");
    assert!(html.contains("-H &quot;Prefer: respond-async&quot;"), "a curl line that queues a job: {html}");
    assert!(html.contains(&format!("curl {}/v1/chat/completions", gw.state.config.load().server.public_origin())));
    assert!(!html.contains("<script>") && !html.contains(" style=") && !html.contains(" onclick="));

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in ["/dashboard/jobs?status=queued", "/dashboard/jobs/job_x"] {
        let response = http.get(format!("{}{path}", gw.url)).send().await.unwrap();
        assert_eq!(response.status(), 302, "{path}");
        let expected = format!("/login?next={}", tokenrouter_core::form::form_encode(path));
        assert_eq!(response.headers()[LOCATION], expected.as_str());
    }
}
