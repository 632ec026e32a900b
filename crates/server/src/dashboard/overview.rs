//! `GET /dashboard`: balance, what was spent today and this month, spend and tokens per
//! day for the last 30 days, and the models that cost the most.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use time::OffsetDateTime;
use tokenrouter_core::NanoUsd;

use super::chart::{self, Series};
use super::layout::{self, Nav, count, usd, usd_short};
use super::{Viewer, error_page};
use crate::error::ApiError;
use crate::routes::api_types::{UsageBucket, UsageReport};
use crate::routes::usage::{UsageQuery, usage};
use crate::state::AppState;

/// The usage report the API would answer for these bounds and grouping.
pub async fn report(
    state: &AppState,
    viewer: &Viewer,
    from: Option<String>,
    to: Option<String>,
    group_by: &str,
) -> Result<UsageReport, ApiError> {
    let query = UsageQuery { from, to, group_by: Some(group_by.to_owned()) };
    Ok(usage(State(state.clone()), viewer.0.clone(), Query(query)).await?.0)
}

/// The sum of buckets' requests and cost (exact, in nano-USD).
pub fn totals(buckets: &[UsageBucket]) -> (i64, NanoUsd) {
    buckets.iter().fold((0, NanoUsd(0)), |(requests, cost), b| {
        let bucket_cost = NanoUsd::parse_usd(&b.cost_usd).unwrap_or(NanoUsd(0));
        (requests + b.requests, cost.checked_add(bucket_cost).unwrap_or(cost))
    })
}

/// The last `days` UTC days, oldest first, as `YYYY-MM-DD`.
pub fn last_days(days: i64) -> Vec<String> {
    let now = tokenrouter_core::clock::now_unix();
    let today = now - now.rem_euclid(86_400);
    (0..days)
        .rev()
        .filter_map(|back| OffsetDateTime::from_unix_timestamp(today - back * 86_400).ok())
        .map(|t| t.date().to_string())
        .collect()
}

/// One value per day of `days` from day buckets (days with no usage are 0).
pub fn per_day(days: &[String], buckets: &[UsageBucket], value: impl Fn(&UsageBucket) -> i64) -> Vec<i64> {
    days.iter().map(|day| buckets.iter().filter(|b| b.bucket.starts_with(day.as_str())).map(&value).sum()).collect()
}

pub fn nano(b: &UsageBucket) -> i64 {
    NanoUsd::parse_usd(&b.cost_usd).map_or(0, |n| n.0)
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    let days = last_days(30);
    let today = days.last().cloned().unwrap_or_default();
    let month_start = format!("{}-01", today.get(..7).unwrap_or_default());
    let thirty = report(&state, &viewer, days.first().cloned(), Some(today.clone()), "day").await;
    let month = report(&state, &viewer, Some(month_start), Some(today.clone()), "day").await;
    let models = report(&state, &viewer, days.first().cloned(), Some(today.clone()), "model").await;
    let (thirty, month, mut models) = match (thirty, month, models) {
        (Ok(a), Ok(b), Ok(c)) => (a.data, b.data, c.data),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return error_page(&viewer, Nav::Overview, e),
    };
    let today_buckets: Vec<UsageBucket> = thirty.iter().filter(|b| b.bucket.starts_with(&today)).cloned().collect();
    let (today_requests, today_cost) = totals(&today_buckets);
    let (month_requests, month_cost) = totals(&month);
    models.sort_by_key(|b| std::cmp::Reverse(nano(b)));
    models.truncate(5);
    let account = viewer.account();
    let short_days: Vec<String> = days.iter().map(|d| d.get(5..).unwrap_or(d).to_owned()).collect();
    let spend = chart::bars(
        &short_days,
        &[Series { name: "Spend", class: "bar1", values: per_day(&days, &thirty, nano) }],
        &|n| usd(&NanoUsd(n).to_decimal_string()),
        "Spend per day, last 30 days",
    );
    let tokens = chart::bars(
        &short_days,
        &[
            Series { name: "Prompt tokens", class: "bar1", values: per_day(&days, &thirty, |b| b.prompt_tokens) },
            Series {
                name: "Completion tokens",
                class: "bar2",
                values: per_day(&days, &thirty, |b| b.completion_tokens),
            },
        ],
        &count,
        "Tokens per day, last 30 days",
    );
    let body = html! {
        h1 { "Overview" }
        div.cards {
            div.card {
                div.label { "Balance" }
                div.value #balance title=(usd(&account.balance.to_decimal_string())) { (usd_short(account.balance.0)) }
                div.sub { a href="/dashboard/balance" { "Add credit" } }
            }
            div.card {
                div.label { "Held for requests in flight" }
                div.value title=(usd(&account.held.to_decimal_string())) { (usd_short(account.held.0)) }
            }
            div.card {
                div.label { "Today" }
                div.value #spend-today { (usd(&today_cost.to_decimal_string())) }
                div.sub { (count(today_requests)) " requests" }
            }
            div.card {
                div.label { "This month" }
                div.value #spend-month { (usd(&month_cost.to_decimal_string())) }
                div.sub { (count(month_requests)) " requests" }
            }
        }
        section.panel aria-labelledby="spend-h" {
            h2 #spend-h { "Spend per day" }
            (spend)
        }
        section.panel aria-labelledby="tokens-h" {
            h2 #tokens-h { "Tokens per day" }
            (tokens)
        }
        section aria-labelledby="top-h" {
            h2 #top-h { "Top models, last 30 days" }
            @if models.is_empty() {
                p.muted { "No requests yet. " a href="/dashboard/keys" { "Create a key" } " or try the " a href="/dashboard/playground" { "playground" } "." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th { "Model" } th.num { "Requests" } th.num { "Tokens" } th.num { "Cost" } } }
                        tbody {
                            @for m in &models {
                                tr {
                                    td { code { (m.bucket) } }
                                    td.num { (count(m.requests)) }
                                    td.num { (count(m.prompt_tokens + m.completion_tokens)) }
                                    td.num { (usd(&m.cost_usd)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::shell(&viewer, Nav::Overview, body).into_response()
}
