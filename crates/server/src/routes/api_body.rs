//! Reading `/api` request bodies: a JSON object of bounded size, read field by field so
//! that every refusal names its field (`param`), and unknown fields are refused too.

use axum::body::Body;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokenrouter_core::NanoUsd;

use crate::error::ApiError;

/// The largest `/api` body: ample for any key or code request.
pub const MAX_API_BODY: usize = 64 * 1024;

/// The body as a JSON object whose fields are all among `allowed`.
pub async fn object(body: Body, allowed: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_API_BODY).await.map_err(|_| ApiError::TooLarge(MAX_API_BODY))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("The body is not valid JSON ({e}).")))?;
    let Value::Object(object) = value else {
        return Err(ApiError::invalid("The body must be a JSON object."));
    };
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        let param = unknown.chars().take(64).collect::<String>();
        return Err(ApiError::invalid_param(
            format!("Unknown field '{param}'. Allowed: {}.", allowed.join(", ")),
            param,
        ));
    }
    Ok(object)
}

/// A field's value: absent → `None`; present (even `null`) → `Some`.
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl Fields<'_> {
    pub fn text(&self, name: &'static str, max_len: usize) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max_len => Ok(Some(s.trim().to_owned())),
            Some(Value::String(_)) => {
                Err(ApiError::invalid_param(format!("'{name}' is longer than {max_len} characters."), name))
            }
            Some(_) => Err(ApiError::invalid_param(format!("'{name}' must be a string."), name)),
        }
    }

    pub fn boolean(&self, name: &'static str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid_param(format!("'{name}' must be true or false."), name)),
        }
    }

    /// A list of at most `max_items` non-empty strings of at most `max_len` characters.
    pub fn strings(
        &self,
        name: &'static str,
        max_items: usize,
        max_len: usize,
    ) -> Result<Option<Vec<String>>, ApiError> {
        let Some(value) = self.0.get(name) else { return Ok(None) };
        let bad = || {
            ApiError::invalid_param(
                format!(
                    "'{name}' must be a list of at most {max_items} non-empty strings of at most {max_len} characters."
                ),
                name,
            )
        };
        let Value::Array(items) = value else { return Err(bad()) };
        if items.len() > max_items {
            return Err(bad());
        }
        items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.trim().is_empty() && s.chars().count() <= max_len => Ok(s.trim().to_owned()),
                _ => Err(bad()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A limit per minute: a whole number from 1 to 10^9, or `null` (no limit).
    pub fn limit(&self, name: &'static str) -> Result<Option<Option<u32>>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(value) => match value.as_u64() {
                Some(n @ 1..=1_000_000_000) => Ok(Some(Some(u32::try_from(n).unwrap_or(u32::MAX)))),
                _ => Err(ApiError::invalid_param(
                    format!("'{name}' must be a whole number from 1 to 1000000000, or null for no limit."),
                    name,
                )),
            },
        }
    }

    /// USD as a decimal string (`"12.5"`) or a number, at least 0 (`null`: none).
    pub fn usd(&self, name: &'static str) -> Result<Option<Option<NanoUsd>>, ApiError> {
        let bad = |why: &str| ApiError::invalid_param(format!("'{name}' {why}"), name);
        let amount = match self.0.get(name) {
            None => return Ok(None),
            Some(Value::Null) => return Ok(Some(None)),
            Some(Value::String(s)) => {
                NanoUsd::parse_usd(s.trim()).map_err(|e| bad(&format!("is not an amount of USD ({e}).")))?
            }
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or(())
                .and_then(|f| NanoUsd::parse_usd_f64(f).map_err(|_| ()))
                .map_err(|()| bad("is not an amount of USD."))?,
            Some(_) => return Err(bad("must be a decimal string of USD, such as \"12.5\".")),
        };
        if amount.0 < 0 || amount.0 > 1_000_000 * 1_000_000_000 {
            return Err(bad("must be between 0 and 1000000 USD."));
        }
        Ok(Some(Some(amount)))
    }

    /// An RFC 3339 time in the future (`null`: never).
    pub fn future_time(&self, name: &'static str, now: i64) -> Result<Option<Option<i64>>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => {
                let at = OffsetDateTime::parse(s, &Rfc3339)
                    .map_err(|_| {
                        ApiError::invalid_param(
                            format!("'{name}' must be an RFC 3339 time such as 2027-01-01T00:00:00Z."),
                            name,
                        )
                    })?
                    .unix_timestamp();
                if at <= now {
                    return Err(ApiError::invalid_param(format!("'{name}' is in the past."), name));
                }
                Ok(Some(Some(at)))
            }
            Some(_) => Err(ApiError::invalid_param(format!("'{name}' must be an RFC 3339 time, or null."), name)),
        }
    }
}

/// `?limit=`: 1 to 100, default 20.
/// A list's `before` cursor, `{created_at}_{id}` as the list's `next` wrote it.
pub fn cursor(before: Option<&str>) -> Result<Option<(i64, String)>, ApiError> {
    let Some(cursor) = before else { return Ok(None) };
    let bad = || ApiError::invalid_param("'before' is not a cursor from this list.", "before");
    let (at, id) = cursor.split_once('_').ok_or_else(bad)?;
    Ok(Some((at.parse::<i64>().map_err(|_| bad())?, id.to_owned())))
}

pub fn page_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(20),
        Some(text) => match text.parse::<usize>() {
            Ok(n @ 1..=100) => Ok(n),
            _ => Err(ApiError::invalid_param("'limit' must be a whole number from 1 to 100.", "limit")),
        },
    }
}
