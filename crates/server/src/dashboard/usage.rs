//! `GET /dashboard/usage` (charts and a table of `/api/usage`'s buckets, with filters)
//! and `GET /dashboard/usage.csv` (the same buckets as CSV). Both call the API's handler
//! with the same query, so every number equals what `/api/usage` answers.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokenrouter_core::NanoUsd;

use super::chart::{self, Series};
use super::layout::{self, Nav, count, usd};
use super::overview::{last_days, nano};
use super::{Viewer, error_page};
use crate::error::ApiError;
use crate::routes::account::rfc3339;
use crate::routes::api_types::{UsageBucket, UsageReport};
use crate::routes::usage::{UsageQuery, usage};
use crate::state::AppState;

const GROUPS: [(&str, &str); 5] =
    [("day", "Day"), ("hour", "Hour"), ("model", "Model"), ("key", "Key"), ("provider", "Provider")];
/// Hourly charts stop here (31 days); the table still lists every hour.
const MAX_BARS: i64 = 744;

/// The page's query, as the form sends it (empty fields mean "the default").
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

impl Filters {
    fn given(value: &Option<String>) -> Option<String> {
        value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    fn api_query(&self) -> UsageQuery {
        UsageQuery { from: Self::given(&self.from), to: Self::given(&self.to), group_by: Self::given(&self.group_by) }
    }

    fn group(&self) -> String {
        Self::given(&self.group_by).unwrap_or_else(|| "day".to_owned())
    }

    /// `from=…&to=…&group_by=…` with only the given fields.
    fn query_string(&self) -> String {
        let q = self.api_query();
        [("from", q.from), ("to", q.to), ("group_by", q.group_by)]
            .into_iter()
            .filter_map(|(name, v)| v.map(|v| format!("{name}={}", tokenrouter_core::form::form_encode(&v))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

async fn report(state: &AppState, viewer: &Viewer, filters: &Filters) -> Result<UsageReport, ApiError> {
    Ok(usage(State(state.clone()), viewer.0.clone(), Query(filters.api_query())).await?.0)
}

fn unix(rfc: Option<&str>) -> Option<i64> {
    OffsetDateTime::parse(rfc?, &Rfc3339).ok().map(|t| t.unix_timestamp())
}

/// The report's first and last day (`YYYY-MM-DD`; `to` is exclusive in the report).
fn days_of(report: &UsageReport) -> (String, String) {
    let from = unix(report.from.as_deref()).and_then(rfc3339).unwrap_or_default();
    let last = unix(report.to.as_deref()).and_then(|t| rfc3339(t - 1)).unwrap_or_default();
    (from.get(..10).unwrap_or_default().to_owned(), last.get(..10).unwrap_or_default().to_owned())
}

/// Every hour or day of the report, with the buckets' RFC 3339 names (empty ones too).
fn time_slots(report: &UsageReport, step: i64) -> Vec<String> {
    let (Some(from), Some(to)) = (unix(report.from.as_deref()), unix(report.to.as_deref())) else {
        return Vec::new();
    };
    let start = from - from.rem_euclid(step);
    (0..)
        .map(|i| start + i * step)
        .take_while(|t| *t < to)
        .take(usize::try_from(MAX_BARS).unwrap_or(744) + 1)
        .filter_map(rfc3339)
        .collect()
}

fn values(slots: &[String], buckets: &[UsageBucket], value: impl Fn(&UsageBucket) -> i64) -> Vec<i64> {
    let by_bucket: HashMap<&str, &UsageBucket> = buckets.iter().map(|b| (b.bucket.as_str(), b)).collect();
    slots.iter().map(|s| by_bucket.get(s.as_str()).map_or(0, |b| value(b))).collect()
}

/// Requests, tokens and cost per hour or day (empty ones at 0).
fn charts(report: &UsageReport, hourly: bool) -> Markup {
    let slots = time_slots(report, if hourly { 3_600 } else { 86_400 });
    if i64::try_from(slots.len()).unwrap_or(i64::MAX) > MAX_BARS {
        return html! { p.notice { "Charts by hour cover at most 31 days: pick a shorter period or group by day. The table below lists every hour." } };
    }
    let labels: Vec<String> = slots
        .iter()
        .map(|s| {
            if hourly {
                format!("{} {}", s.get(5..10).unwrap_or(s), s.get(11..16).unwrap_or(""))
            } else {
                s.get(5..10).unwrap_or(s).to_owned()
            }
        })
        .collect();
    let per = if hourly { "hour" } else { "day" };
    let data = &report.data;
    html! {
        section.panel aria-labelledby="u-req-h" {
            h2 #u-req-h { "Requests per " (per) }
            (chart::bars(&labels, &[Series { name: "Requests", class: "bar1", values: values(&slots, data, |b| b.requests) }], &count, &format!("Requests per {per}")))
        }
        section.panel aria-labelledby="u-tok-h" {
            h2 #u-tok-h { "Tokens per " (per) }
            (chart::bars(
                &labels,
                &[
                    Series { name: "Prompt tokens", class: "bar1", values: values(&slots, data, |b| b.prompt_tokens) },
                    Series { name: "Completion tokens", class: "bar2", values: values(&slots, data, |b| b.completion_tokens) },
                ],
                &count,
                &format!("Prompt and completion tokens per {per}"),
            ))
        }
        section.panel aria-labelledby="u-cost-h" {
            h2 #u-cost-h { "Cost per " (per) }
            (chart::bars(&labels, &[Series { name: "Cost", class: "bar1", values: values(&slots, data, nano) }], &|n| usd(&NanoUsd(n).to_decimal_string()), &format!("Cost per {per}")))
        }
    }
}

fn form(filters: &Filters) -> Markup {
    let days = last_days(30);
    let from = Filters::given(&filters.from).or_else(|| days.first().cloned()).unwrap_or_default();
    let to = Filters::given(&filters.to).or_else(|| days.last().cloned()).unwrap_or_default();
    let group = filters.group();
    html! {
        form.filters #usage-filters method="get" action="/dashboard/usage" {
            label { "From" input type="date" name="from" value=(from); }
            label { "To" input type="date" name="to" value=(to); }
            label {
                "Group by"
                select name="group_by" {
                    @for (value, name) in GROUPS {
                        option value=(value) selected[group == value] { (name) }
                    }
                }
            }
            button type="submit" { "Show" }
            a.button.secondary #usage-csv href=(format!("/dashboard/usage.csv?{}", filters.query_string())) download { "Download CSV" }
        }
    }
}

/// A report that could not be made: the form again, and why (a 400 says which field).
fn failed(viewer: &Viewer, filters: &Filters, error: ApiError) -> Response {
    let ApiError::InvalidRequest { message, .. } = &error else {
        return error_page(viewer, Nav::Usage, error);
    };
    let body = html! {
        h1 { "Usage" }
        (form(filters))
        p.notice.error role="alert" { (message) }
    };
    (StatusCode::BAD_REQUEST, layout::shell_with(viewer, Nav::Usage, &["usage.js"], body)).into_response()
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Query(filters): Query<Filters>) -> Response {
    let report = match report(&state, &viewer, &filters).await {
        Ok(report) => report,
        Err(e) => return failed(&viewer, &filters, e),
    };
    let group = filters.group();
    let names: HashMap<String, String> = if group == "key" {
        state.db.list_keys(viewer.account().id).await.unwrap_or_default().into_iter().map(|k| (k.id, k.name)).collect()
    } else {
        HashMap::new()
    };
    let requests: i64 = report.data.iter().map(|b| b.requests).sum();
    let tokens: i64 = report.data.iter().map(|b| b.prompt_tokens + b.completion_tokens).sum();
    let cost = report.data.iter().fold(NanoUsd(0), |sum, b| sum.checked_add(NanoUsd(nano(b))).unwrap_or(sum));
    let (first, last) = days_of(&report);
    let heading = GROUPS.iter().find(|(v, _)| *v == group).map_or("Bucket", |(_, name)| name);
    let body = html! {
        h1 { "Usage" }
        (form(&filters))
        p.muted { "From " (first) " to " (last) " (UTC, inclusive)." }
        div.cards {
            div.card { div.label { "Requests" } div.value #usage-total-requests { (count(requests)) } }
            div.card { div.label { "Tokens" } div.value #usage-total-tokens { (count(tokens)) } }
            div.card { div.label { "Cost" } div.value #usage-total-cost { (usd(&cost.to_decimal_string())) } }
        }
        @if group == "day" || group == "hour" {
            (charts(&report, group == "hour"))
        } @else if !report.data.is_empty() {
            (share_charts(&report, &group, &names))
        }
        section aria-labelledby="u-table-h" {
            h2 #u-table-h { "By " (heading.to_lowercase()) }
            @if report.data.is_empty() {
                p.muted { "No requests in this period." }
            } @else {
                div.table-wrap {
                    table #usage-table {
                        thead { tr {
                            th scope="col" { (heading) }
                            th.num scope="col" { "Requests" }
                            th.num scope="col" { "Prompt tokens" }
                            th.num scope="col" { "Completion tokens" }
                            th.num scope="col" { "Cost" }
                        } }
                        tbody {
                            @for b in &report.data {
                                tr data-bucket=(b.bucket) {
                                    td { (bucket_cell(&group, &b.bucket, &names)) }
                                    td.num { (count(b.requests)) }
                                    td.num { (count(b.prompt_tokens)) }
                                    td.num { (count(b.completion_tokens)) }
                                    td.num { (usd(&b.cost_usd)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::shell_with(&viewer, Nav::Usage, &["usage.js"], body).into_response()
}

/// For a grouping by model, key or provider: each one's cost and requests side by side.
fn share_charts(report: &UsageReport, group: &str, names: &HashMap<String, String>) -> Markup {
    let label = |bucket: &str| match (group, names.get(bucket)) {
        ("key", Some(name)) => format!("{name} ({bucket})"),
        _ => bucket.to_owned(),
    };
    let mut by_cost: Vec<(String, i64)> = report.data.iter().map(|b| (label(&b.bucket), nano(b))).collect();
    by_cost.sort_by_key(|(_, v)| std::cmp::Reverse(*v));
    let mut by_requests: Vec<(String, i64)> = report.data.iter().map(|b| (label(&b.bucket), b.requests)).collect();
    by_requests.sort_by_key(|(_, v)| std::cmp::Reverse(*v));
    html! {
        section.panel aria-labelledby="u-cost-share-h" {
            h2 #u-cost-share-h { "Cost by " (group) }
            (chart::shares(&by_cost, &|n| usd(&NanoUsd(n).to_decimal_string()), &format!("Cost by {group}")))
        }
        section.panel aria-labelledby="u-req-share-h" {
            h2 #u-req-share-h { "Requests by " (group) }
            (chart::shares(&by_requests, &count, &format!("Requests by {group}")))
        }
    }
}

fn bucket_cell(group: &str, bucket: &str, names: &HashMap<String, String>) -> Markup {
    match group {
        "day" => html! { time datetime=(bucket) { (bucket.get(..10).unwrap_or(bucket)) } },
        "hour" => layout::when(Some(bucket)),
        "key" => html! {
            code { (bucket) }
            @if let Some(name) = names.get(bucket).filter(|n| !n.is_empty()) { " " span.muted { (name) } }
        },
        _ => html! { code { (bucket) } },
    }
}

/// One CSV field, quoted per RFC 4180 when it holds a comma, a quote or a line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

/// The report as CSV, one line per bucket (CRLF line ends).
pub fn to_csv(report: &UsageReport) -> String {
    let mut out = String::from("bucket,requests,prompt_tokens,completion_tokens,cost_usd\r\n");
    for b in &report.data {
        let _ = write!(
            out,
            "{},{},{},{},{}\r\n",
            field(&b.bucket),
            b.requests,
            b.prompt_tokens,
            b.completion_tokens,
            field(&b.cost_usd)
        );
    }
    out
}

pub async fn csv(State(state): State<AppState>, viewer: Viewer, Query(filters): Query<Filters>) -> Response {
    let report = match report(&state, &viewer, &filters).await {
        Ok(report) => report,
        Err(e) => return failed(&viewer, &filters, e),
    };
    let (first, last) = days_of(&report);
    let disposition = format!("attachment; filename=\"usage-{first}-{last}.csv\"");
    let mut response = to_csv(&report).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let report = UsageReport {
            data: vec![UsageBucket {
                bucket: "odd,\"model\"".into(),
                requests: 2,
                prompt_tokens: 10,
                completion_tokens: 5,
                cost_usd: "0.0000297".into(),
            }],
            from: None,
            to: None,
        };
        assert_eq!(
            to_csv(&report),
            "bucket,requests,prompt_tokens,completion_tokens,cost_usd\r\n\"odd,\"\"model\"\"\",2,10,5,0.0000297\r\n"
        );
    }
}
