//! `GET /dashboard/jobs` (the account's async jobs of `/api/jobs`: filters by status and
//! model, pages by cursor, cancels one not finished) and `GET /dashboard/jobs/{id}` (one
//! job: its times, usage, cost, error, and the answer it produced).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokenrouter_store::JobStatus;

use super::layout::{self, Nav, count, usd};
use super::{Viewer, error_page};
use crate::error::ApiError;
use crate::routes::jobs::{JobObject, JobOwner, JobsQuery, get, list};
use crate::state::AppState;

/// Rows on a page unless `?limit=` says otherwise.
const PAGE: &str = "50";

/// The page's query, as the form and the pager send it (empty fields mean "any").
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    status: Option<String>,
    model: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

fn given(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

impl Filters {
    fn filtered(&self) -> bool {
        given(&self.status).is_some() || given(&self.model).is_some()
    }

    /// `/dashboard/jobs?status=…&model=…&limit=…`, with the cursor when given.
    fn link(&self, before: Option<&str>) -> String {
        let before = before.map(str::to_owned);
        let query = [("status", &self.status), ("model", &self.model), ("limit", &self.limit), ("before", &before)]
            .into_iter()
            .filter_map(|(name, v)| given(v).map(|v| format!("{name}={}", tokenrouter_core::form::form_encode(&v))))
            .collect::<Vec<_>>()
            .join("&");
        if query.is_empty() { Nav::Jobs.path().to_owned() } else { format!("{}?{query}", Nav::Jobs.path()) }
    }
}

/// Whether a job (by its API status) may still be cancelled.
fn cancellable(job: &JobObject) -> bool {
    JobStatus::parse(&job.status).is_some_and(|s| !s.is_final())
}

fn status_badge(status: &str) -> Markup {
    let class = match JobStatus::parse(status) {
        Some(JobStatus::Completed) => "badge good",
        Some(JobStatus::Failed) => "badge bad",
        Some(JobStatus::InProgress) => "badge warn",
        _ => "badge",
    };
    html! { span class=(class) { (status.replace('_', " ")) } }
}

/// What a job runs, from its API object name.
fn kind(job: &JobObject) -> &'static str {
    if job.object == "response.job" { "response" } else { "chat completion" }
}

fn parsed(rfc3339: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(rfc3339, &Rfc3339).ok()
}

/// A time to the second (`2026-12-05 07:40:12 UTC`); `—` when absent.
fn exact(rfc3339: Option<&str>) -> Markup {
    match rfc3339 {
        Some(t) => {
            html! { time datetime=(t) { (t.get(..19).map_or_else(|| t.to_owned(), |s| s.replace('T', " "))) " UTC" } }
        }
        None => html! { span.muted { "—" } },
    }
}

/// A time of the same day as `created` as its clock time (`07:40:12`); otherwise with
/// its date. The full time is in the title.
fn later(rfc3339: Option<&str>, created: Option<&str>) -> Markup {
    let same_day = |t: &str| created.is_some_and(|c| c.get(..10) == t.get(..10));
    match rfc3339 {
        Some(t) if same_day(t) => html! { time datetime=(t) title=(t) { (t.get(11..19).unwrap_or(t)) } },
        other => layout::when(other),
    }
}

/// How long from `from` to `to` (`0 s`, `2 min 5 s`, `3 h 12 min`).
fn between(from: Option<&str>, to: Option<&str>) -> Option<String> {
    let seconds = (parsed(to?)?.unix_timestamp() - parsed(from?)?.unix_timestamp()).max(0);
    Some(span(Duration::from_secs(seconds.unsigned_abs())))
}

fn span(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3_600 => format!("{} min {} s", s / 60, s % 60),
        3_600..172_800 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        _ => format!("{} days", s / 86_400),
    }
}

fn cost(job: &JobObject) -> Markup {
    match &job.cost_usd {
        Some(c) => html! { (usd(c)) },
        None => html! { span.muted title="Charged when it finishes" { "—" } },
    }
}

fn cancel_button(job: &JobObject) -> Markup {
    html! {
        button.danger type="button" data-api={ "DELETE /api/jobs/" (job.id) } data-done="reload"
            data-confirm={ "Cancel the job " (job.id) "? It will not run, or its call is dropped; nothing is charged for it." }
            aria-label={ "Cancel job " (job.id) } { "Cancel" }
    }
}

fn form(state: &AppState, filters: &Filters) -> Markup {
    let status = given(&filters.status).unwrap_or_default();
    let model = given(&filters.model).unwrap_or_default();
    let models: Vec<String> = state.config.load().models().map(|m| m.id.clone()).collect();
    html! {
        form.filters #job-filters method="get" action=(Nav::Jobs.path()) {
            label {
                "Status"
                select name="status" {
                    option value="" { "All" }
                    @for s in JobStatus::ALL {
                        option value=(s.as_str()) selected[status == s.as_str()] { (s.as_str().replace('_', " ")) }
                    }
                    @if !status.is_empty() && JobStatus::parse(&status).is_none() {
                        option value=(status) selected { (status) }
                    }
                }
            }
            label { "Model" input type="text" name="model" value=(model) list="job-model-ids" autocomplete="off" placeholder="any model"; }
            datalist #job-model-ids { @for id in &models { option value=(id) {} } }
            @if let Some(limit) = given(&filters.limit) { input type="hidden" name="limit" value=(limit); }
            button type="submit" { "Filter" }
        }
    }
}

/// What to show an account with no jobs yet: how to queue one.
fn how_to_queue(state: &AppState) -> Markup {
    let config = state.config.load();
    let model = config
        .models()
        .find(|m| !m.capabilities.iter().any(|c| c == "embeddings" || c == "completions"))
        .map_or_else(|| "MODEL_ID".to_owned(), |m| m.id.clone());
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hello!"}]}).to_string();
    let command = format!(
        "curl {}/v1/chat/completions \\\n  -H \"Authorization: Bearer $TOKENROUTER_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -H \"Prefer: respond-async\" \\\n  -d '{}'\n",
        config.server.public_origin(),
        body.replace('\'', "'\\''")
    );
    html! {
        div.panel.empty #jobs-empty {
            p { strong { "No jobs yet." } }
            p.muted {
                "A job is a request that runs later: send a chat completion with "
                code { "Prefer: respond-async" } " (or a Responses request with " code { "\"background\": true" } "). "
                "The gateway answers 202 at once with the job, and the job appears here."
            }
            div.row.snippet-head {
                span.muted { "Queue one from a shell:" }
                button.secondary type="button" data-copy="#jobs-curl" { "Copy command" }
            }
            pre #jobs-curl tabindex="0" aria-label="A curl command that queues a job" { (command) }
        }
    }
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Query(filters): Query<Filters>) -> Response {
    let query = JobsQuery {
        status: given(&filters.status),
        model: given(&filters.model),
        kind: None,
        limit: given(&filters.limit).or_else(|| Some(PAGE.to_owned())),
        before: given(&filters.before),
    };
    let listed = match list(State(state.clone()), viewer.0.clone(), Query(query)).await {
        Ok(Json(listed)) => listed,
        Err(ApiError::InvalidRequest { message, .. }) => {
            let body =
                html! { h1 { (Nav::Jobs.title()) } (form(&state, &filters)) p.notice.error role="alert" { (message) } };
            return (http::StatusCode::BAD_REQUEST, layout::shell(&viewer, Nav::Jobs, body)).into_response();
        }
        Err(e) => return error_page(&viewer, Nav::Jobs, e),
    };
    let paged = given(&filters.before).is_some();
    let retention = span(state.config.load().jobs.retention);
    let body = html! {
        h1 { (Nav::Jobs.title()) }
        p.muted {
            "Requests queued to run later, newest first. Finished jobs and their results are kept for " (retention) "."
        }
        (form(&state, &filters))
        @if listed.data.is_empty() {
            @if paged { p.muted { "No older jobs." } }
            @else if filters.filtered() { p.muted { "No jobs match." } }
            @else { (how_to_queue(&state)) }
        } @else {
            div.table-wrap {
                table.responsive #jobs {
                    caption.sr-only { "Your jobs, newest first" }
                    thead { tr {
                        th scope="col" { "Job" }
                        th scope="col" { "Kind" }
                        th scope="col" { "Status" }
                        th scope="col" { "Model" }
                        th scope="col" { "Created" }
                        th scope="col" { "Started" }
                        th scope="col" { "Finished" }
                        th.num scope="col" { "Attempts" }
                        th.num scope="col" { "Cost" }
                        th scope="col" { span.sr-only { "Actions" } }
                    } }
                    tbody {
                        @for job in &listed.data {
                            tr data-job-id=(job.id) {
                                td data-label="Job" { a href=(format!("{}/{}", Nav::Jobs.path(), job.id)) title=(job.id) { code { (job.id) } } }
                                td data-label="Kind" { (kind(job)) }
                                td data-label="Status" { (status_badge(&job.status)) }
                                td data-label="Model" { code { (job.model) } }
                                td data-label="Created" { (layout::when(job.created_at.as_deref())) }
                                td data-label="Started" { (later(job.started_at.as_deref(), job.created_at.as_deref())) }
                                td data-label="Finished" { (later(job.completed_at.as_deref(), job.created_at.as_deref())) }
                                td.num data-label="Attempts" { (job.attempts) }
                                td.num data-label="Cost" { (cost(job)) }
                                td.actions data-label="Actions" { @if cancellable(job) { (cancel_button(job)) } }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if paged { a.button.secondary href=(filters.link(None)) { "Newest" } }
            @if let Some(next) = &listed.next { a.button.secondary rel="next" href=(filters.link(Some(next))) { "Older" } }
        }
    };
    layout::shell(&viewer, Nav::Jobs, body).into_response()
}

/// One answer of a completed job: a chat completion's choice, or a response's output.
#[derive(Debug, Default, PartialEq, Eq)]
struct Answer {
    text: String,
    /// What else it says: a refusal, tools it calls, why it stopped.
    notes: Vec<String>,
}

/// The text of a message's `content`: a string, or the text of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// Each choice of a `chat.completion`.
fn chat_answers(result: &Value) -> Vec<Answer> {
    let choices = result["choices"].as_array().map(Vec::as_slice).unwrap_or_default();
    choices
        .iter()
        .map(|choice| {
            let message = &choice["message"];
            let mut notes = Vec::new();
            if let Some(refusal) = message["refusal"].as_str() {
                notes.push(format!("Refused: {refusal}"));
            }
            for call in message["tool_calls"].as_array().into_iter().flatten() {
                if let Some(name) = call["function"]["name"].as_str() {
                    notes.push(format!("Calls the tool {name}"));
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                notes.push(format!("Finish reason: {reason}"));
            }
            Answer { text: content_text(&message["content"]), notes }
        })
        .collect()
}

/// The output of a Responses `response`: its output text, as one answer.
fn response_answer(result: &Value) -> Answer {
    let mut texts = Vec::new();
    let mut notes = Vec::new();
    for item in result["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    match part["type"].as_str() {
                        Some("output_text") => texts.extend(part["text"].as_str()),
                        Some("refusal") => {
                            notes.push(format!("Refused: {}", part["refusal"].as_str().unwrap_or_default()))
                        }
                        _ => {}
                    }
                }
            }
            Some("function_call") => notes.extend(item["name"].as_str().map(|name| format!("Calls the tool {name}"))),
            _ => {}
        }
    }
    if texts.is_empty() {
        texts.extend(result["output_text"].as_str());
    }
    if let Some(reason) = result["incomplete_details"]["reason"].as_str() {
        notes.push(format!("Incomplete: {reason}"));
    }
    Answer { text: texts.join("\n\n"), notes }
}

fn raw_json(summary: &str, value: &Value) -> Markup {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    html! { details.raw { summary { (summary) } pre tabindex="0" { code { (pretty) } } } }
}

fn result_section(job: &JobObject) -> Markup {
    let answers = match &job.result {
        Some(result) if job.object == "response.job" => vec![response_answer(result)],
        Some(result) => chat_answers(result),
        None => Vec::new(),
    };
    let waiting = match JobStatus::parse(&job.status) {
        Some(JobStatus::Queued) => "Queued: waiting for a worker. The answer appears here when the job completes.",
        Some(JobStatus::InProgress) => "Running. The answer appears here when the job completes.",
        Some(JobStatus::Cancelled) => "Cancelled: this job did not produce an answer.",
        Some(JobStatus::Expired) => "Expired before it could run: no answer.",
        Some(JobStatus::Failed) => "The job failed: no answer (the error is above).",
        _ => "No answer was kept.",
    };
    html! {
        section.panel #job-result aria-labelledby="job-result-h" {
            h2 #job-result-h { "Result" }
            @if job.result.is_none() {
                p.muted { (waiting) }
            } @else {
                @if answers.is_empty() { p.muted { "The answer holds no text." } }
                @for (i, answer) in answers.iter().enumerate() {
                    @if answers.len() > 1 { h3 { code { "choices[" (i) "]" } } }
                    div.msg.assistant.answer {
                        @if answer.text.is_empty() { span.muted { "(no text)" } } @else { (answer.text) }
                        @for note in &answer.notes { span.meta { (note) } }
                    }
                }
            }
            @if let Some(result) = &job.result { (raw_json("Raw JSON", result)) }
        }
    }
}

fn facts(job: &JobObject, logged: bool) -> Markup {
    let created = job.created_at.as_deref();
    html! {
        dl.facts #job-facts {
            dt { "Status" } dd #job-status { (status_badge(&job.status)) }
            dt { "Kind" } dd { (kind(job)) }
            dt { "Model" } dd { code { (job.model) } }
            dt { "Request" } dd {
                @if logged { a href={ "/dashboard/requests/" (job.request_id) } { code { (job.request_id) } } }
                @else { code { (job.request_id) } }
            }
            dt { "Created" } dd { (exact(created)) }
            dt { "Started" } dd {
                (exact(job.started_at.as_deref()))
                @if let Some(waited) = between(created, job.started_at.as_deref()) { " " span.muted { "(queued " (waited) ")" } }
            }
            dt { "Finished" } dd {
                (exact(job.completed_at.as_deref()))
                @if let Some(ran) = between(job.started_at.as_deref(), job.completed_at.as_deref()) { " " span.muted { "(ran " (ran) ")" } }
            }
            dt { "Attempts" } dd { (job.attempts) }
            @if let Some(usage) = &job.usage {
                dt { "Prompt tokens" } dd { (count(i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX))) }
                dt { "Completion tokens" } dd { (count(i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX))) }
                dt { "Total tokens" } dd #job-tokens { (count(i64::try_from(usage.total_tokens).unwrap_or(i64::MAX))) }
            } @else {
                dt { "Tokens" } dd { span.muted { "—" } }
            }
            dt { "Cost" } dd #job-cost { (cost(job)) }
        }
    }
}

fn error_notice(error: &Value) -> Markup {
    let message = error["message"].as_str().unwrap_or("The job failed.");
    html! {
        div.notice.error #job-error {
            strong { "Failed: " } (message)
            @if let Some(code) = error["code"].as_str() { " " span.muted { "(" code { (code) } ")" } }
        }
    }
}

pub async fn detail(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let account = viewer.account().id;
    let job = match get(State(state.clone()), JobOwner(account), Path(id)).await {
        Ok(Json(job)) => job,
        Err(e) => return error_page(&viewer, Nav::Jobs, e),
    };
    // The request log has a row once the job ran and was metered: link to it then.
    let logged = matches!(state.db.request_by_id(account, &job.request_id).await, Ok(Some(_)));
    let unfinished = cancellable(&job);
    let body = html! {
        p { a href=(Nav::Jobs.path()) { "← Jobs" } }
        div.page-head {
            h1 { "Job " code #job-id { (job.id) } }
            @if unfinished { div.row { (cancel_button(&job)) } }
        }
        @if let Some(error) = &job.error { (error_notice(error)) }
        section.panel data-watch-job=[unfinished.then_some(job.id.as_str())] data-status=(job.status) {
            (facts(&job, logged))
            @if unfinished { p.hint { "This page follows the job and shows its answer when it completes." } }
        }
        (result_section(&job))
        @if let Some(error) = &job.error { (raw_json("Raw error JSON", error)) }
    };
    layout::shell_with(&viewer, Nav::Jobs, &["jobs.js"], body).into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_chat_completions_answers_are_its_choices_text() {
        let result = json!({"object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there."}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}},
            {"index": 2, "message": {"role": "assistant", "content": null, "refusal": "No.",
                "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}, "finish_reason": "tool_calls"},
        ]});
        let answers = chat_answers(&result);
        assert_eq!(answers[0], Answer { text: "Hello there.".into(), notes: vec!["Finish reason: stop".into()] });
        assert_eq!(answers[1], Answer { text: "a\nb".into(), notes: vec![] });
        assert_eq!(answers[2].text, "");
        assert_eq!(answers[2].notes, ["Refused: No.", "Calls the tool get_weather", "Finish reason: tool_calls"]);
        assert!(chat_answers(&json!("not an object")).is_empty());
    }

    #[test]
    fn a_responses_answer_is_its_output_text() {
        let result = json!({"object": "response", "status": "incomplete", "output": [
            {"type": "reasoning", "summary": []},
            {"type": "message", "content": [{"type": "output_text", "text": "One."}, {"type": "refusal", "refusal": "Not that."}]},
            {"type": "message", "content": [{"type": "output_text", "text": "Two."}]},
            {"type": "function_call", "name": "lookup", "arguments": "{}"},
        ], "incomplete_details": {"reason": "max_output_tokens"}});
        let answer = response_answer(&result);
        assert_eq!(answer.text, "One.\n\nTwo.");
        assert_eq!(answer.notes, ["Refused: Not that.", "Calls the tool lookup", "Incomplete: max_output_tokens"]);
        assert_eq!(response_answer(&json!({"output_text": "Short."})).text, "Short.");
    }

    #[test]
    fn durations_and_links_read_well() {
        assert_eq!(between(Some("2026-12-05T07:40:00Z"), Some("2026-12-05T07:42:05Z")).as_deref(), Some("2 min 5 s"));
        assert_eq!(between(Some("2026-12-05T07:40:00Z"), None), None);
        assert_eq!(span(Duration::from_secs(604_800)), "7 days");
        assert_eq!(span(Duration::from_secs(7_260)), "2 h 1 min");
        let filters = Filters { status: Some("queued".into()), model: Some(" a b ".into()), ..Filters::default() };
        assert_eq!(filters.link(Some("17_job_x")), "/dashboard/jobs?status=queued&model=a%20b&before=17_job_x");
        assert_eq!(Filters::default().link(None), "/dashboard/jobs");
    }
}
