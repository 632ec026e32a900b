//! What an account reads about its own usage: totals per hour, day, model, key or
//! provider (from `usage_hourly`), and the request log (from `usage`, each row with what
//! the ledger charged for it). Both come from one source, so they always agree.

use tokenrouter_core::NanoUsd;

/// How `/api/usage` groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    Hour,
    Day,
    Model,
    Key,
    Provider,
}

/// One group's totals. `bucket` is the Unix time of the hour or day's start for those
/// groupings, else the model id, key id or provider name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotals {
    pub bucket: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: NanoUsd,
}

/// Which requests the log shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub model: Option<String>,
    pub key_id: Option<String>,
    pub status: Option<u16>,
}

/// One request in the log (never its prompt or answer: they are not stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RequestRow {
    pub request_id: String,
    pub created_at: i64,
    pub key_id: String,
    pub model: String,
    pub provider: String,
    pub endpoint: String,
    pub status: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// What the ledger charged (0: nothing).
    pub charged_nano: i64,
    pub latency_ms: i64,
    pub stream: bool,
    /// Why it failed or was refused; `None` when answered.
    pub error_code: Option<String>,
    pub ttfb_ms: Option<i64>,
    /// Hosted tool calls the provider ran and billed per call (charged in `charged_nano`).
    pub web_search_calls: i64,
    pub web_fetch_calls: i64,
}

/// The column a grouping reads, as SQL (`hour` in Unix seconds).
pub(crate) fn group_column(group: UsageGroup) -> &'static str {
    match group {
        UsageGroup::Hour => "hour",
        UsageGroup::Day => "hour - (hour % 86400)",
        UsageGroup::Model => "model",
        UsageGroup::Key => "key_id",
        UsageGroup::Provider => "provider",
    }
}

/// The log's filters and cursor, after a `WHERE u.account_id = …` (both dialects).
pub(crate) fn push_filters<DB: sqlx::Database>(
    query: &mut sqlx::QueryBuilder<DB>,
    filter: &RequestFilter,
    before: Option<(i64, String)>,
) where
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if let Some(model) = &filter.model {
        query.push(" AND u.model = ").push_bind(model.clone());
    }
    if let Some(key_id) = &filter.key_id {
        query.push(" AND u.key_id = ").push_bind(key_id.clone());
    }
    if let Some(status) = filter.status {
        query.push(" AND u.status = ").push_bind(i64::from(status));
        if status != 200 {
            // Lets the planner use the partial index `usage_account_status` (rare statuses).
            query.push(" AND u.status <> 200");
        }
    }
    if let Some((created_at, request_id)) = before {
        // A row-value comparison: one index range from the cursor down, in both dialects.
        query
            .push(" AND (u.created_at, u.request_id) < (")
            .push_bind(created_at)
            .push(", ")
            .push_bind(request_id)
            .push(")");
    }
}
