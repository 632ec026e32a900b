//! `/api/keys`: an account's own keys — list, create (the secret shown this once),
//! change, revoke. Changes reach every replica within a second (`keys_version`).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use http::StatusCode;
use serde::Deserialize;
use tokenrouter_store::{KeyChanges, KeyRow, KeyScope, NewKey, Revocation};

use super::account::rfc3339;
use super::api_body::{Fields, object};
use super::api_types::{CreatedKey, Deleted, ErrorBody, Key, KeyList, KeyPatchBody, NewKeyBody};
use crate::error::ApiError;
use crate::signin::Caller;
use crate::state::AppState;
use crate::{auth, policy};

const NAME_LEN: usize = 100;
const MAX_LIST: usize = 100;
const PATTERN_LEN: usize = 200;

/// `?limit=` (1–100, default 20) and `?before=` (the last id of the previous page).
#[derive(Debug, Deserialize)]
pub struct Page {
    pub(crate) limit: Option<String>,
    pub(crate) before: Option<String>,
}

impl Page {
    /// One page of `items` (newest first), and the cursor of the next page.
    pub fn of<T>(&self, items: Vec<T>, id: impl Fn(&T) -> &str) -> Result<(Vec<T>, Option<String>), ApiError> {
        let limit = super::api_body::page_limit(self.limit.as_deref())?;
        let start = match self.before.as_deref() {
            None => 0,
            Some(cursor) => match items.iter().position(|item| id(item) == cursor) {
                Some(i) => i + 1,
                None => return Err(ApiError::invalid_param("'before' is not a cursor from this list.", "before")),
            },
        };
        let mut page: Vec<T> = items.into_iter().skip(start).take(limit + 1).collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|item| id(item).to_owned())
        } else {
            None
        };
        Ok((page, next))
    }
}

fn key_object(key: &KeyRow, last_used_at: Option<i64>) -> Key {
    Key {
        id: key.id.clone(),
        name: key.name.clone(),
        prefix: auth::display_prefix(&key.id),
        scope: key.scope.as_str().to_owned(),
        community: key.community,
        models: key.models.clone(),
        ips: key.ips.clone(),
        rpm: key.rpm,
        tpm: key.tpm,
        spend_limit_usd: key.spend_limit.map(|limit| limit.to_decimal_string()),
        spent_usd: key.spent.to_decimal_string(),
        expires_at: key.expires_at.and_then(rfc3339),
        created_at: rfc3339(key.created_at),
        last_used_at: last_used_at.and_then(rfc3339),
        revoked_at: key.revoked_at.and_then(rfc3339),
    }
}

fn store_error(e: tokenrouter_store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "a key route could not reach the store");
    ApiError::StoreUnavailable
}

/// `GET /api/keys`.
#[utoipa::path(get, path = "/api/keys", tag = "keys", params(("limit" = Option<u32>, Query, description = "1 to 100, default 20"), ("before" = Option<String>, Query, description = "`next` of the previous page")), responses((status = 200, body = KeyList), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<KeyList>, ApiError> {
    let account = caller.account.id;
    let keys = state.db.list_keys(account).await.map_err(store_error)?;
    let last_used: std::collections::HashMap<String, i64> =
        state.db.keys_last_used(account).await.map_err(store_error)?.into_iter().collect();
    let (keys, next) = page.of(keys, |k| &k.id)?;
    let data = keys.iter().map(|k| key_object(k, last_used.get(&k.id).copied())).collect();
    Ok(Json(KeyList { data, next }))
}

/// Checks `ips` and `models` the way the gateway will use them.
fn check_lists(ips: Option<&[String]>) -> Result<(), ApiError> {
    if let Some(bad) = ips.unwrap_or_default().iter().find(|ip| policy::parse_net(ip).is_none()) {
        let bad: String = bad.chars().take(64).collect();
        return Err(ApiError::invalid_param(format!("'{bad}' is not a CIDR (10.0.0.0/8) or an IP address."), "ips"));
    }
    Ok(())
}

/// `POST /api/keys` → 201, the key object plus `key` (the secret, this once).
#[utoipa::path(post, path = "/api/keys", tag = "keys", request_body = NewKeyBody, responses((status = 201, description = "The key, with its secret this once", body = CreatedKey), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn create(State(state): State<AppState>, caller: Caller, body: Body) -> Result<impl IntoResponse, ApiError> {
    let body =
        object(body, &["name", "scope", "community", "models", "ips", "rpm", "tpm", "spend_limit_usd", "expires_at"])
            .await?;
    let fields = Fields(&body);
    let now = tokenrouter_core::clock::now_unix();
    let name = fields.text("name", NAME_LEN)?.unwrap_or_default();
    let scope = match fields.text("scope", 20)?.as_deref() {
        None | Some("inference") => KeyScope::Inference,
        Some("management") => KeyScope::Management,
        Some(_) => return Err(ApiError::invalid_param("'scope' must be \"inference\" or \"management\".", "scope")),
    };
    let community = fields.boolean("community")?.unwrap_or(true);
    let models = fields.strings("models", MAX_LIST, PATTERN_LEN)?.unwrap_or_default();
    let ips = fields.strings("ips", MAX_LIST, PATTERN_LEN)?.unwrap_or_default();
    check_lists(Some(&ips))?;
    let minted = auth::mint().map_err(|e| ApiError::Internal(format!("no randomness available: {e}")))?;
    let key = NewKey {
        id: minted.id.clone(),
        account_id: caller.account.id,
        name,
        secret_hash: minted.hash,
        models,
        ips,
        rpm: fields.limit("rpm")?.flatten(),
        tpm: fields.limit("tpm")?.flatten(),
        spend_limit: fields.usd("spend_limit_usd")?.flatten(),
        expires_at: fields.future_time("expires_at", now)?.flatten(),
        scope,
        community,
    };
    state.db.insert_key(&key).await.map_err(store_error)?;
    refresh(&state).await;
    let stored = state.db.account_key(caller.account.id, &key.id).await.map_err(store_error)?;
    let stored = stored.ok_or_else(|| ApiError::Internal("a key just created could not be read back".to_owned()))?;
    Ok((StatusCode::CREATED, Json(CreatedKey { object: key_object(&stored, None), key: minted.full })))
}

/// `PATCH /api/keys/{id}`: any of name, models, ips, rpm, tpm, spend_limit_usd, expires_at.
#[utoipa::path(patch, path = "/api/keys/{id}", tag = "keys", params(("id" = String, Path)), request_body = KeyPatchBody, responses((status = 200, body = Key), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody), (status = 409, description = "No longer possible", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Key>, ApiError> {
    let body = object(body, &["name", "models", "ips", "rpm", "tpm", "spend_limit_usd", "expires_at"]).await?;
    let fields = Fields(&body);
    let now = tokenrouter_core::clock::now_unix();
    let changes = KeyChanges {
        name: fields.text("name", NAME_LEN)?,
        models: fields.strings("models", MAX_LIST, PATTERN_LEN)?,
        ips: fields.strings("ips", MAX_LIST, PATTERN_LEN)?,
        rpm: fields.limit("rpm")?,
        tpm: fields.limit("tpm")?,
        spend_limit: fields.usd("spend_limit_usd")?,
        expires_at: fields.future_time("expires_at", now)?,
    };
    check_lists(changes.ips.as_deref())?;
    let account = caller.account.id;
    match state.db.update_key(account, &id, &changes).await.map_err(store_error)? {
        Some(key) => {
            refresh(&state).await;
            Ok(Json(key_object(&key, None)))
        }
        None => match state.db.account_key(account, &id).await.map_err(store_error)? {
            Some(_) => Err(ApiError::Conflict("This key is revoked: it can no longer be changed.".to_owned())),
            None => Err(not_found(&id)),
        },
    }
}

/// `DELETE /api/keys/{id}`: revokes it.
#[utoipa::path(delete, path = "/api/keys/{id}", tag = "keys", params(("id" = String, Path)), responses((status = 200, body = Deleted), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody), (status = 409, description = "No longer possible", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    match state.db.revoke_account_key(caller.account.id, &id).await.map_err(store_error)? {
        Revocation::Revoked => {
            refresh(&state).await;
            Ok(Json(Deleted { id, deleted: true }))
        }
        Revocation::AlreadyRevoked => Err(ApiError::Conflict("This key is already revoked.".to_owned())),
        Revocation::NotFound => Err(not_found(&id)),
    }
}

fn not_found(id: &str) -> ApiError {
    let id: String = id.chars().take(64).collect();
    ApiError::NotFound(format!("No key '{id}' on this account."))
}

/// This replica applies a key change at once; the others within a second.
async fn refresh(state: &AppState) {
    if let Err(e) = state.reload_keys_if_changed().await {
        tracing::warn!(error = %e, "could not reload keys after a change; the periodic reload will");
    }
}
