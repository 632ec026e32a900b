//! `/api/usage` (totals per hour, day, model, key or provider) and `/api/requests` (the
//! request log). Both read what the settlement wrote in one transaction, so usage totals,
//! the sum of the log's rows and the ledger's charges are always equal.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use tokenrouter_core::NanoUsd;
use tokenrouter_store::{RequestFilter, UsageGroup};

use super::account::rfc3339;
use super::api_types::{ErrorBody, RequestEntry, RequestList, UsageBucket, UsageReport};
use crate::error::ApiError;
use crate::signin::Caller;
use crate::state::AppState;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// The longest period one `/api/usage` call covers.
const MAX_DAYS: i64 = 400;

#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub group_by: Option<String>,
}

/// `YYYY-MM-DD`.
fn date(text: &str) -> Option<Date> {
    let mut parts = text.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()
}

/// A bound: a date (`YYYY-MM-DD`, the whole UTC day) or an RFC 3339 time (its hour).
/// `(start of its first hour, end of its last hour)`.
fn bound(text: &str, param: &'static str) -> Result<(i64, i64), ApiError> {
    if let Some(date) = date(text) {
        let start = date.midnight().assume_utc().unix_timestamp();
        return Ok((start, start + DAY));
    }
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| {
            ApiError::invalid_param(
                format!("'{param}' must be a date (2026-12-01) or an RFC 3339 time (2026-12-01T10:00:00Z)."),
                param,
            )
        })?
        .unix_timestamp();
    let hour = at - at.rem_euclid(HOUR);
    Ok((hour, hour + HOUR))
}

/// `GET /api/usage?from=&to=&group_by=day|hour|model|key|provider`: `from` and `to` are
/// inclusive — whole UTC days for dates, whole hours for times; the default is the last 30
/// days; `bucket` is the RFC 3339 start of the hour or day, or the model, key or provider.
#[utoipa::path(get, path = "/api/usage", tag = "usage", params(("from" = Option<String>, Query, description = "A date (YYYY-MM-DD: the whole UTC day) or an RFC 3339 time (its whole hour); inclusive; default 29 days before today"), ("to" = Option<String>, Query, description = "Likewise, inclusive; default today"), ("group_by" = Option<String>, Query, description = "day (default), hour, model, key or provider")), responses((status = 200, description = "Totals per group; buckets are UTC", body = UsageReport), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UsageQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let group = match query.group_by.as_deref().unwrap_or("day") {
        "day" => UsageGroup::Day,
        "hour" => UsageGroup::Hour,
        "model" => UsageGroup::Model,
        "key" => UsageGroup::Key,
        "provider" => UsageGroup::Provider,
        _ => {
            return Err(ApiError::invalid_param(
                "'group_by' must be one of day, hour, model, key, provider.",
                "group_by",
            ));
        }
    };
    let now = tokenrouter_core::clock::now_unix();
    let today = now - now.rem_euclid(DAY);
    let from = match query.from.as_deref() {
        Some(text) => bound(text, "from")?.0,
        None => today - 29 * DAY,
    };
    let to = match query.to.as_deref() {
        Some(text) => bound(text, "to")?.1,
        None => today + DAY,
    };
    if to <= from {
        return Err(ApiError::invalid_param("'to' is before 'from'.", "to"));
    }
    if to - from > MAX_DAYS * DAY {
        return Err(ApiError::invalid_param(format!("A report covers at most {MAX_DAYS} days."), "from"));
    }
    let totals = state.db.usage_totals(caller.account.id, from, to, group).await.map_err(|e| {
        tracing::warn!(error = %e, "could not read usage totals");
        ApiError::StoreUnavailable
    })?;
    let data = totals
        .iter()
        .map(|t| UsageBucket {
            bucket: match group {
                UsageGroup::Day | UsageGroup::Hour => {
                    t.bucket.parse::<i64>().ok().and_then(rfc3339).unwrap_or_default()
                }
                _ => t.bucket.clone(),
            },
            requests: t.requests,
            prompt_tokens: t.prompt_tokens,
            completion_tokens: t.completion_tokens,
            cost_usd: t.cost.to_decimal_string(),
        })
        .collect();
    Ok(Json(UsageReport { data, from: rfc3339(from), to: rfc3339(to) }))
}

#[derive(Debug, Default, Deserialize)]
pub struct RequestsQuery {
    pub model: Option<String>,
    pub key_id: Option<String>,
    pub status: Option<String>,
    pub limit: Option<String>,
    pub before: Option<String>,
}

/// `GET /api/requests?model=&key_id=&status=`: the request log, newest first (no prompt
/// or answer text: none is stored).
#[utoipa::path(get, path = "/api/requests", tag = "usage", params(("model" = Option<String>, Query), ("key_id" = Option<String>, Query), ("status" = Option<u16>, Query), ("limit" = Option<u32>, Query, description = "1 to 100, default 20"), ("before" = Option<String>, Query, description = "`next` of the previous page")), responses((status = 200, body = RequestList), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn requests(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<RequestsQuery>,
) -> Result<Json<RequestList>, ApiError> {
    let limit = i64::try_from(super::api_body::page_limit(query.limit.as_deref())?).unwrap_or(20);
    let status =
        match query.status.as_deref() {
            None => None,
            Some(text) => Some(text.parse::<u16>().ok().filter(|s| (100..=599).contains(s)).ok_or_else(|| {
                ApiError::invalid_param("'status' must be an HTTP status such as 200 or 429.", "status")
            })?),
        };
    let before = super::api_body::cursor(query.before.as_deref())?;
    let filter = RequestFilter { model: query.model, key_id: query.key_id, status };
    let rows = state.db.requests_page(caller.account.id, &filter, limit, before).await.map_err(|e| {
        tracing::warn!(error = %e, "could not read the request log");
        ApiError::StoreUnavailable
    })?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| format!("{}_{}", r.created_at, r.request_id)))
        .flatten();
    let data = rows.into_iter().map(request_entry).collect();
    Ok(Json(RequestList { data, next }))
}

/// A row of the request log as the API shows it.
pub(crate) fn request_entry(r: tokenrouter_store::RequestRow) -> RequestEntry {
    RequestEntry {
        created_at: rfc3339(r.created_at),
        cost_usd: NanoUsd(r.charged_nano).to_decimal_string(),
        id: r.request_id,
        key_id: r.key_id,
        model: r.model,
        provider: r.provider,
        surface: r.endpoint,
        status: r.status,
        prompt_tokens: r.prompt_tokens,
        completion_tokens: r.completion_tokens,
        latency_ms: r.latency_ms,
        ttfb_ms: r.ttfb_ms,
        error_code: r.error_code,
        stream: r.stream,
        web_search_calls: r.web_search_calls,
        web_fetch_calls: r.web_fetch_calls,
    }
}
