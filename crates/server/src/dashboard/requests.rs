//! `GET /dashboard/requests` (the request log of `/api/requests`: filters by model, key
//! and status, pages by cursor) and `GET /dashboard/requests/{id}` (one request).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav, count, usd};
use super::{Viewer, error_page};
use crate::error::ApiError;
use crate::routes::api_types::RequestEntry;
use crate::routes::usage::{RequestsQuery, request_entry, requests};
use crate::state::AppState;

/// Rows on a page unless `?limit=` says otherwise.
const PAGE: &str = "50";
/// The statuses offered in the filter (any other code in the address is kept too).
const STATUSES: [(&str, &str); 12] = [
    ("200", "200 OK"),
    ("400", "400 Bad request"),
    ("401", "401 Unauthorized"),
    ("402", "402 Payment required"),
    ("403", "403 Forbidden"),
    ("404", "404 Not found"),
    ("413", "413 Too large"),
    ("429", "429 Rate limited"),
    ("499", "499 Client went away"),
    ("500", "500 Server error"),
    ("502", "502 Upstream error"),
    ("503", "503 Unavailable"),
];

/// The page's query, as the form and the pager send it (empty fields mean "any").
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    model: Option<String>,
    key_id: Option<String>,
    status: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

fn given(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

impl Filters {
    /// `model=…&key_id=…&status=…&limit=…` (no cursor) with only the given fields.
    fn query_string(&self) -> String {
        [("model", &self.model), ("key_id", &self.key_id), ("status", &self.status), ("limit", &self.limit)]
            .into_iter()
            .filter_map(|(name, v)| given(v).map(|v| format!("{name}={}", tokenrouter_core::form::form_encode(&v))))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn link(&self, before: Option<&str>) -> String {
        let mut query = self.query_string();
        if let Some(cursor) = before {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&format!("before={}", tokenrouter_core::form::form_encode(cursor)));
        }
        if query.is_empty() { "/dashboard/requests".to_owned() } else { format!("/dashboard/requests?{query}") }
    }
}

/// `200` good, other 2xx/4xx a warning, 5xx bad.
fn status_badge(status: i64) -> Markup {
    let class = match status {
        200..=299 => "badge good",
        500..=599 => "badge bad",
        _ => "badge warn",
    };
    html! { span class=(class) { (status) } }
}

fn ms(value: Option<i64>) -> Markup {
    match value {
        Some(v) => html! { (count(v)) " ms" },
        None => html! { span.muted { "—" } },
    }
}

async fn key_names(state: &AppState, viewer: &Viewer) -> Vec<(String, String)> {
    let keys = state.db.list_keys(viewer.account().id).await.unwrap_or_default();
    keys.into_iter().map(|k| (k.id, k.name)).collect()
}

fn form(state: &AppState, filters: &Filters, keys: &[(String, String)]) -> Markup {
    let model = given(&filters.model).unwrap_or_default();
    let key = given(&filters.key_id).unwrap_or_default();
    let status = given(&filters.status).unwrap_or_default();
    let config = state.config.load();
    let models: Vec<String> = config.models().map(|m| m.id.clone()).collect();
    html! {
        form.filters #request-filters method="get" action="/dashboard/requests" {
            label { "Model" input type="text" name="model" value=(model) list="model-ids" autocomplete="off" placeholder="any model"; }
            datalist #model-ids { @for id in &models { option value=(id) {} } }
            label {
                "Key"
                select name="key_id" {
                    option value="" { "All keys" }
                    @for (id, name) in keys {
                        option value=(id) selected[*id == key] { (if name.is_empty() { id.as_str() } else { name.as_str() }) " (" (crate::auth::display_prefix(id)) ")" }
                    }
                    @if !key.is_empty() && !keys.iter().any(|(id, _)| *id == key) {
                        option value=(key) selected { (key) }
                    }
                }
            }
            label {
                "Status"
                select name="status" {
                    option value="" { "All" }
                    @for (code, name) in STATUSES {
                        option value=(code) selected[status == code] { (name) }
                    }
                    @if !status.is_empty() && !STATUSES.iter().any(|(code, _)| *code == status) {
                        option value=(status) selected { (status) }
                    }
                }
            }
            @if let Some(limit) = given(&filters.limit) { input type="hidden" name="limit" value=(limit); }
            button type="submit" { "Filter" }
        }
    }
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Query(filters): Query<Filters>) -> Response {
    let query = RequestsQuery {
        model: given(&filters.model),
        key_id: given(&filters.key_id),
        status: given(&filters.status),
        limit: given(&filters.limit).or_else(|| Some(PAGE.to_owned())),
        before: given(&filters.before),
    };
    let keys = key_names(&state, &viewer).await;
    let list = match requests(State(state.clone()), viewer.0.clone(), Query(query)).await {
        Ok(list) => list.0,
        Err(ApiError::InvalidRequest { message, .. }) => {
            let body = html! { h1 { "Request log" } (form(&state, &filters, &keys)) p.notice.error role="alert" { (message) } };
            return (http::StatusCode::BAD_REQUEST, layout::shell(&viewer, Nav::Requests, body)).into_response();
        }
        Err(e) => return error_page(&viewer, Nav::Requests, e),
    };
    let paged = given(&filters.before).is_some();
    let body = html! {
        h1 { "Request log" }
        (form(&state, &filters, &keys))
        @if list.data.is_empty() {
            p.muted { @if paged { "No older requests." } @else { "No requests match." } }
        } @else {
            div.table-wrap {
                table #request-log {
                    thead { tr {
                        th scope="col" { "Time" }
                        th scope="col" { "Model" }
                        th scope="col" { "Provider" }
                        th scope="col" { "Status" }
                        th.num scope="col" { "Tokens" }
                        th.num scope="col" { "Cost" }
                        th.num scope="col" { "Latency" }
                        th.num scope="col" { "TTFB" }
                        th scope="col" { "Stream" }
                    } }
                    tbody {
                        @for r in &list.data {
                            tr data-request-id=(r.id) {
                                td { a href=(format!("/dashboard/requests/{}", r.id)) { (layout::when(r.created_at.as_deref())) } }
                                td { code { (r.model) } }
                                td { (r.provider) }
                                td { (status_badge(r.status)) @if let Some(code) = &r.error_code { " " span.muted { (code) } } }
                                td.num title=(format!("{} prompt + {} completion", r.prompt_tokens, r.completion_tokens)) { (count(r.prompt_tokens + r.completion_tokens)) }
                                td.num { (usd(&r.cost_usd)) }
                                td.num { (ms(Some(r.latency_ms))) }
                                td.num { (ms(r.ttfb_ms)) }
                                td { (if r.stream { "yes" } else { "no" }) }
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if paged { a.button.secondary href=(filters.link(None)) { "Newest" } }
            @if let Some(next) = &list.next { a.button.secondary rel="next" href=(filters.link(Some(next))) { "Older" } }
        }
    };
    layout::shell(&viewer, Nav::Requests, body).into_response()
}

fn facts(r: &RequestEntry, key_name: Option<&str>) -> Markup {
    html! {
        dl.facts {
            dt { "Time" } dd { (layout::when(r.created_at.as_deref())) }
            dt { "Status" } dd #request-status { (status_badge(r.status)) }
            dt { "Error" } dd { @if let Some(code) = &r.error_code { code { (code) } } @else { span.muted { "none" } } }
            dt { "Model" } dd { code { (r.model) } }
            dt { "Provider" } dd { (r.provider) }
            dt { "Surface" } dd { code { (r.surface) } }
            dt { "Stream" } dd { (if r.stream { "yes" } else { "no" }) }
            dt { "Key" } dd { code { (r.key_id) } @if let Some(name) = key_name.filter(|n| !n.is_empty()) { " " span.muted { (name) } } }
            dt { "Prompt tokens" } dd { (count(r.prompt_tokens)) }
            dt { "Completion tokens" } dd { (count(r.completion_tokens)) }
            @if r.web_search_calls > 0 || r.web_fetch_calls > 0 {
                dt { "Hosted tool calls" }
                dd #request-hosted { (count(r.web_search_calls)) " web searches, " (count(r.web_fetch_calls)) " web fetches (billed per call, in the cost)" }
            }
            dt { "Cost" } dd #request-cost { (usd(&r.cost_usd)) }
            dt { "Latency" } dd #request-latency { (ms(Some(r.latency_ms))) }
            dt { "Time to first byte" } dd #request-ttfb { (ms(r.ttfb_ms)) }
            dt { "Attempts" } dd { span.muted { "Not stored: the log keeps one row per request, with the provider recorded for it; latency counts from the request's arrival, so it includes any retries." } }
        }
    }
}

pub async fn detail(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let row = match state.db.request_by_id(viewer.account().id, &id).await {
        Ok(Some(row)) => row,
        Ok(None) => return error_page(&viewer, Nav::Requests, ApiError::NotFound(format!("No request '{id}'."))),
        Err(e) => {
            tracing::warn!(error = %e, "could not read a request");
            return error_page(&viewer, Nav::Requests, ApiError::StoreUnavailable);
        }
    };
    let entry = request_entry(row);
    let keys = key_names(&state, &viewer).await;
    let key_name = keys.iter().find(|(id, _)| *id == entry.key_id).map(|(_, name)| name.as_str());
    let body = html! {
        p { a href="/dashboard/requests" { "← Request log" } }
        h1 { "Request " code #request-id { (entry.id) } }
        section.panel { (facts(&entry, key_name)) }
        p.hint { "Prompts and answers are never stored: only what was measured and charged." }
    };
    layout::shell(&viewer, Nav::Requests, body).into_response()
}
