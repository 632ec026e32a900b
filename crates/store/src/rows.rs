//! Rows as both backends read them, and their conversion into the store's types. The
//! schemas keep the same column names and integer widths (BIGINT in PostgreSQL), so one
//! `FromRow` serves SQLite and PostgreSQL alike.

use sqlx::FromRow;
use tokenrouter_core::{HostedCalls, NanoUsd, Usage};

use crate::{Account, Hold, KeyRow, KeyScope, LedgerRow, ReplicaRow, UsageRecord, UsageSource};

macro_rules! account_columns {
    () => {
        "id, name, balance_nano, held_nano, created_at, disabled_at, is_admin, github_id, login, display_name, avatar_url, email"
    };
}
pub(crate) use account_columns;

#[derive(FromRow)]
pub(crate) struct AccountRecord {
    pub id: i64,
    pub name: String,
    pub balance_nano: i64,
    pub held_nano: i64,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub is_admin: bool,
    pub github_id: Option<i64>,
    pub login: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub email: Option<String>,
}

impl From<AccountRecord> for Account {
    fn from(r: AccountRecord) -> Account {
        Account {
            id: r.id,
            name: r.name,
            balance: NanoUsd(r.balance_nano),
            held: NanoUsd(r.held_nano),
            created_at: r.created_at,
            disabled_at: r.disabled_at,
            is_admin: r.is_admin,
            github_id: r.github_id,
            login: r.login,
            display_name: r.display_name,
            avatar_url: r.avatar_url,
            email: r.email,
        }
    }
}

macro_rules! ledger_columns {
    () => {
        "id, account_id, kind, amount_nano, request_id, memo, created_at"
    };
}
pub(crate) use ledger_columns;

#[derive(FromRow)]
pub(crate) struct LedgerRecord {
    pub id: i64,
    pub account_id: i64,
    pub kind: String,
    pub amount_nano: i64,
    pub request_id: Option<String>,
    pub memo: String,
    pub created_at: i64,
}

impl From<LedgerRecord> for LedgerRow {
    fn from(r: LedgerRecord) -> LedgerRow {
        LedgerRow {
            id: r.id,
            account_id: r.account_id,
            kind: r.kind,
            amount: NanoUsd(r.amount_nano),
            request_id: r.request_id,
            memo: r.memo,
            created_at: r.created_at,
        }
    }
}

/// A key query with its account's name joined (aliases `k` and `a`), followed by
/// `$tail` (a literal, so the whole query stays a `&'static str`).
macro_rules! select_keys {
    ($tail:literal) => {
        concat!(
            "SELECT k.id, k.account_id, a.name AS account_name, k.name, k.secret_hash, ",
            "k.models, k.ips, k.rpm, k.tpm, k.spend_limit_nano, k.spent_nano, k.held_nano, ",
            "k.expires_at, k.created_at, k.revoked_at, k.scope, k.community ",
            "FROM api_keys k JOIN accounts a ON a.id = k.account_id ",
            $tail
        )
    };
}
pub(crate) use select_keys;

#[derive(FromRow)]
pub(crate) struct KeyRecord {
    pub id: String,
    pub account_id: i64,
    pub account_name: String,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub models: String,
    pub ips: String,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub spend_limit_nano: Option<i64>,
    pub spent_nano: i64,
    pub held_nano: i64,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub scope: String,
    pub community: bool,
}

impl TryFrom<KeyRecord> for KeyRow {
    type Error = sqlx::Error;

    fn try_from(r: KeyRecord) -> Result<KeyRow, sqlx::Error> {
        let secret_hash = <[u8; 32]>::try_from(r.secret_hash.as_slice())
            .map_err(|_| corrupt("secret_hash", format!("{} bytes, not 32", r.secret_hash.len())))?;
        Ok(KeyRow {
            id: r.id,
            account_id: r.account_id,
            account_name: r.account_name,
            name: r.name,
            secret_hash,
            models: decode_list("models", &r.models)?,
            ips: decode_list("ips", &r.ips)?,
            rpm: decode_limit("rpm", r.rpm)?,
            tpm: decode_limit("tpm", r.tpm)?,
            spend_limit: r.spend_limit_nano.map(NanoUsd),
            spent: NanoUsd(r.spent_nano),
            held: NanoUsd(r.held_nano),
            expires_at: r.expires_at,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            scope: KeyScope::parse(&r.scope).ok_or_else(|| corrupt("scope", format!("unknown scope '{}'", r.scope)))?,
            community: r.community,
        })
    }
}

pub(crate) fn key_rows(records: Vec<KeyRecord>) -> Result<Vec<KeyRow>, crate::StoreError> {
    records.into_iter().map(|r| KeyRow::try_from(r).map_err(crate::StoreError::from)).collect()
}

fn decode_list(column: &str, json: &str) -> Result<Vec<String>, sqlx::Error> {
    serde_json::from_str(json).map_err(|err| corrupt(column, err))
}

/// `list` as one JSON array: a column's value, or the single parameter of a statement
/// that reads the list back a row at a time with `json_each(?)` — one statement, prepared
/// once per connection, for a list of any length, where a list of `?`s made each length a
/// statement of its own, parsed anew each time (≈ 6 % of the gateway's instructions at
/// saturation when a settlement's id lists were written that way).
pub(crate) fn encode_list<T: serde::Serialize>(list: &[T]) -> Result<String, sqlx::Error> {
    serde_json::to_string(list).map_err(|err| sqlx::Error::Encode(Box::new(err)))
}

fn decode_limit(column: &str, value: Option<i64>) -> Result<Option<u32>, sqlx::Error> {
    value.map(|v| u32::try_from(v).map_err(|_| corrupt(column, format!("{v} is not a u32")))).transpose()
}

macro_rules! usage_columns {
    () => {
        "request_id, key_id, account_id, model, provider, upstream_model, endpoint, stream, status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cache_write_tokens, cost_nano, usage_source, client_disconnected, latency_ms, created_at, error_code, ttfb_ms, web_search_calls, web_fetch_calls"
    };
}
pub(crate) use usage_columns;

#[derive(FromRow)]
pub(crate) struct UsageRow {
    pub request_id: String,
    pub key_id: String,
    pub account_id: i64,
    pub model: String,
    pub provider: String,
    pub upstream_model: String,
    pub endpoint: String,
    pub stream: bool,
    pub status: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost_nano: i64,
    pub usage_source: String,
    pub client_disconnected: bool,
    pub latency_ms: i64,
    pub created_at: i64,
    pub error_code: Option<String>,
    pub ttfb_ms: Option<i64>,
    pub web_search_calls: i64,
    pub web_fetch_calls: i64,
}

impl TryFrom<UsageRow> for UsageRecord {
    type Error = sqlx::Error;

    fn try_from(r: UsageRow) -> Result<UsageRecord, sqlx::Error> {
        let status =
            u16::try_from(r.status).map_err(|_| corrupt("status", format!("{} is not an HTTP status", r.status)))?;
        let usage_source = UsageSource::parse(&r.usage_source)
            .ok_or_else(|| corrupt("usage_source", format!("unknown value '{}'", r.usage_source)))?;
        let usage = Usage {
            prompt_tokens: from_db_count(r.prompt_tokens),
            completion_tokens: from_db_count(r.completion_tokens),
            cached_tokens: from_db_count(r.cached_tokens),
            reasoning_tokens: from_db_count(r.reasoning_tokens),
            cache_write_tokens: from_db_count(r.cache_write_tokens),
            hosted: HostedCalls {
                web_search: from_db_count(r.web_search_calls),
                web_fetch: from_db_count(r.web_fetch_calls),
            },
        };
        Ok(UsageRecord {
            request_id: r.request_id,
            key_id: r.key_id,
            account_id: r.account_id,
            model: r.model,
            provider: r.provider,
            upstream_model: r.upstream_model,
            endpoint: r.endpoint,
            stream: r.stream,
            status,
            usage,
            cost: NanoUsd(r.cost_nano),
            usage_source,
            client_disconnected: r.client_disconnected,
            latency_ms: from_db_count(r.latency_ms),
            created_at: r.created_at,
            error_code: r.error_code,
            ttfb_ms: r.ttfb_ms.map(from_db_count),
            earning: None,
        })
    }
}

macro_rules! hold_columns {
    () => {
        "request_id, account_id, key_id, amount_nano, created_at, replica, model, endpoint, stream, delivered_nano, \
         provider, earner_id, earner_share_ppb"
    };
}
pub(crate) use hold_columns;

#[derive(FromRow)]
pub(crate) struct HoldRecord {
    pub request_id: String,
    pub account_id: i64,
    pub key_id: String,
    pub amount_nano: i64,
    pub created_at: i64,
    pub replica: String,
    pub model: String,
    pub endpoint: String,
    pub stream: bool,
    pub delivered_nano: i64,
    pub provider: Option<String>,
    pub earner_id: Option<i64>,
    pub earner_share_ppb: Option<i64>,
}

impl From<HoldRecord> for Hold {
    fn from(r: HoldRecord) -> Hold {
        Hold {
            request_id: r.request_id,
            account_id: r.account_id,
            key_id: r.key_id,
            amount: NanoUsd(r.amount_nano),
            created_at: r.created_at,
            replica: r.replica,
            model: r.model,
            endpoint: r.endpoint,
            stream: r.stream,
            delivered: NanoUsd(r.delivered_nano),
            provider: r.provider,
            earning: r
                .earner_id
                .zip(r.earner_share_ppb)
                .map(|(account_id, share)| crate::Earning { account_id, share_ppb: u64::try_from(share).unwrap_or(0) }),
        }
    }
}

#[derive(FromRow)]
pub(crate) struct ReplicaRecord {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub started_at: i64,
    pub seen_at: i64,
}

impl From<ReplicaRecord> for ReplicaRow {
    fn from(r: ReplicaRecord) -> ReplicaRow {
        ReplicaRow {
            id: r.id,
            host: r.host,
            pid: u32::try_from(r.pid).unwrap_or(0),
            started_at: r.started_at,
            seen_at: r.seen_at,
        }
    }
}

/// Stores a count that is a `u64` in Rust in an integer column (saturating; never reached).
pub(crate) fn to_db_count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads back a count written by [`to_db_count`]; a negative value (never written) reads as 0.
pub(crate) fn from_db_count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A column held a value this crate never writes.
pub(crate) fn corrupt(column: &str, detail: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("column '{column}': {detail}").into())
}
