//! PostgreSQL queries for usage reports: totals from `usage_hourly`, the request log.

use sqlx::{Postgres, QueryBuilder};
use tokenrouter_core::NanoUsd;

use super::PostgresDb;
use crate::StoreError;
use crate::reports::{RequestFilter, RequestRow, UsageGroup, UsageTotals, group_column, push_filters};

impl PostgresDb {
    pub(crate) async fn usage_totals(
        &self,
        account_id: i64,
        from: i64,
        to: i64,
        group: UsageGroup,
    ) -> Result<Vec<UsageTotals>, StoreError> {
        let column = group_column(group);
        let order = match group {
            UsageGroup::Hour | UsageGroup::Day => column,
            _ => "cost DESC, b",
        };
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT CAST({column} AS TEXT) AS b, SUM(requests)::BIGINT, SUM(prompt_tokens)::BIGINT, SUM(completion_tokens)::BIGINT, SUM(cost_nano)::BIGINT AS cost \
             FROM usage_hourly WHERE account_id = "
        ));
        query.push_bind(account_id).push(" AND hour >= ").push_bind(from).push(" AND hour < ").push_bind(to);
        query.push(format!(" GROUP BY {column} ORDER BY {order}"));
        let rows: Vec<(String, i64, i64, i64, i64)> = query.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(bucket, requests, prompt_tokens, completion_tokens, cost)| UsageTotals {
                bucket,
                requests,
                prompt_tokens,
                completion_tokens,
                cost: NanoUsd(cost),
            })
            .collect())
    }

    pub(crate) async fn requests_page(
        &self,
        account_id: i64,
        filter: &RequestFilter,
        limit: i64,
        before: Option<(i64, String)>,
    ) -> Result<Vec<RequestRow>, StoreError> {
        // The page of log rows is taken first (newest first, by the account's index), and
        // only its rows are joined to their charges: the plan cannot turn into a join of
        // the whole log, whatever the planner's statistics say.
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT u.request_id, u.created_at, u.key_id, u.model, u.provider, u.endpoint, u.status, \
             u.prompt_tokens, u.completion_tokens, COALESCE(-l.amount_nano, 0)::BIGINT AS charged_nano, u.latency_ms, u.stream, u.error_code, u.ttfb_ms, \
             u.web_search_calls, u.web_fetch_calls \
             FROM (SELECT * FROM usage u WHERE u.account_id = ",
        );
        query.push_bind(account_id);
        push_filters(&mut query, filter, before);
        query.push(" ORDER BY u.created_at DESC, u.request_id DESC LIMIT ").push_bind(limit);
        query.push(
            ") u LEFT JOIN ledger l ON l.request_id = u.request_id AND l.kind = 'charge' \
             ORDER BY u.created_at DESC, u.request_id DESC",
        );
        Ok(query.build_query_as().fetch_all(&self.pool).await?)
    }

    /// One request of the account's log (`None`: unknown, or another account's).
    pub(crate) async fn request_by_id(
        &self,
        account_id: i64,
        request_id: &str,
    ) -> Result<Option<RequestRow>, StoreError> {
        let sql = "SELECT u.request_id, u.created_at, u.key_id, u.model, u.provider, u.endpoint, u.status, \
             u.prompt_tokens, u.completion_tokens, COALESCE(-l.amount_nano, 0)::BIGINT AS charged_nano, u.latency_ms, u.stream, u.error_code, u.ttfb_ms, \
             u.web_search_calls, u.web_fetch_calls \
             FROM usage u LEFT JOIN ledger l ON l.request_id = u.request_id AND l.kind = 'charge' \
             WHERE u.request_id = $1 AND u.account_id = $2";
        Ok(sqlx::query_as(sql).bind(request_id).bind(account_id).fetch_optional(&self.pool).await?)
    }
}
