//! `/api/admin/*`: accounts with their balances, grants, disabling, redemption codes, the
//! config reload — for admins only (the CLI and SIGHUP do the same from a shell).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use http::StatusCode;
use serde::Deserialize;
use tokenrouter_store::{Account, StoreError};

use super::account::rfc3339;
use super::api_body::{Fields, object};
use super::api_types::{
    AccountList, AccountPatchBody, AdminAccount, Codes, CodesBody, CreditBody, ErrorBody, LedgerEntry, ReloadResult,
};
use crate::auth::{self, MAX_CODES, mint_code};
use crate::error::ApiError;
use crate::signin::Caller;
use crate::state::AppState;

/// The caller, if an admin.
fn admin(caller: &Caller) -> Result<&Account, ApiError> {
    if caller.account.is_admin {
        Ok(&caller.account)
    } else {
        Err(ApiError::Forbidden("This route is for admins only.".to_owned()))
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::WouldOverdraw(_) => {
            ApiError::Conflict("The account holds funds for requests in flight; try again shortly.".to_owned())
        }
        e => {
            tracing::warn!(error = %e, "an admin route could not reach the store");
            ApiError::StoreUnavailable
        }
    }
}

fn account_object(account: &Account) -> AdminAccount {
    AdminAccount {
        id: account.id,
        name: account.name.clone(),
        login: account.login.clone().unwrap_or_else(|| account.name.clone()),
        role: super::account::role(account).to_owned(),
        balance_usd: account.balance.to_decimal_string(),
        balance_nano_usd: account.balance.0,
        held_nano_usd: account.held.0,
        disabled: account.disabled_at.is_some(),
        created_at: rfc3339(account.created_at),
    }
}

/// `?limit=` (1–100, default 20) and `?before=` (the last id of the previous page).
#[derive(Debug, Deserialize)]
pub struct IdPage {
    pub(crate) limit: Option<String>,
    pub(crate) before: Option<String>,
}

impl IdPage {
    /// (limit, before) for the store.
    pub fn parse(&self) -> Result<(i64, Option<i64>), ApiError> {
        let limit = i64::try_from(super::api_body::page_limit(self.limit.as_deref())?).unwrap_or(20);
        let before = match self.before.as_deref() {
            None => None,
            Some(text) => Some(
                text.parse::<i64>()
                    .map_err(|_| ApiError::invalid_param("'before' is not a cursor from this list.", "before"))?,
            ),
        };
        Ok((limit, before))
    }

    /// The cursor of the page after `rows` (when it was full).
    pub fn next(limit: i64, ids: &[i64]) -> Option<String> {
        (ids.len() as i64 == limit).then(|| ids.last().map(ToString::to_string)).flatten()
    }
}

/// `GET /api/admin/accounts`.
#[utoipa::path(get, path = "/api/admin/accounts", tag = "admin", params(("limit" = Option<u32>, Query, description = "1 to 100, default 20"), ("before" = Option<String>, Query, description = "`next` of the previous page")), responses((status = 200, body = AccountList), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn accounts(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<IdPage>,
) -> Result<Json<AccountList>, ApiError> {
    admin(&caller)?;
    let (limit, before) = page.parse()?;
    let accounts = state.db.list_accounts(limit, before).await.map_err(store_error)?;
    let ids: Vec<i64> = accounts.iter().map(|a| a.id).collect();
    let data = accounts.iter().map(account_object).collect();
    Ok(Json(AccountList { data, next: IdPage::next(limit, &ids) }))
}

/// The account `{id}` names, or 404.
async fn target(state: &AppState, id: &str) -> Result<Account, ApiError> {
    let not_found = || ApiError::NotFound(format!("No account '{}'.", id.chars().take(32).collect::<String>()));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    state.db.account_by_id(id).await.map_err(store_error)?.ok_or_else(not_found)
}

/// `POST /api/admin/accounts/{id}/credit`: `{amount_usd, memo}` → the `grant` ledger row.
#[utoipa::path(post, path = "/api/admin/accounts/{id}/credit", tag = "admin", params(("id" = i64, Path)), request_body = CreditBody, responses((status = 201, description = "The grant's ledger row", body = LedgerEntry), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn credit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let granter = admin(&caller)?.clone();
    let body = object(body, &["amount_usd", "memo"]).await?;
    let fields = Fields(&body);
    let amount = fields.usd("amount_usd")?.flatten().filter(|a| a.0 > 0).ok_or_else(|| {
        ApiError::invalid_param("'amount_usd' is required: more than 0 USD, such as \"10\".", "amount_usd")
    })?;
    let memo = fields.text("memo", 200)?.unwrap_or_default();
    let account = target(&state, &id).await?;
    let memo = format!("{memo} (granted by admin {} '{}')", granter.id, granter.name).trim_start().to_owned();
    let after = state.db.grant(&account.name, amount, &memo).await.map_err(store_error)?;
    let row = state.db.ledger_page(after.id, 1, None).await.map_err(store_error)?;
    let row = row.first().ok_or_else(|| ApiError::Internal("the grant's ledger row could not be read".to_owned()))?;
    tracing::info!(admin = granter.id, account = after.id, amount = %amount, "an admin granted credit");
    Ok((StatusCode::CREATED, Json(super::account::ledger_object(row, after.balance))))
}

/// `PATCH /api/admin/accounts/{id}`: `{disabled: true|false}`.
#[utoipa::path(patch, path = "/api/admin/accounts/{id}", tag = "admin", params(("id" = i64, Path)), request_body = AccountPatchBody, responses((status = 200, body = AdminAccount), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody), (status = 404, description = "No such object on this account", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<AdminAccount>, ApiError> {
    let me = admin(&caller)?.id;
    let body = object(body, &["disabled"]).await?;
    let disabled = Fields(&body)
        .boolean("disabled")?
        .ok_or_else(|| ApiError::invalid_param("'disabled' is required: true or false.", "disabled"))?;
    let account = target(&state, &id).await?;
    if disabled && account.id == me {
        return Err(ApiError::invalid_param("You cannot disable your own account.", "disabled"));
    }
    let after = state.db.set_account_disabled(&account.name, disabled).await.map_err(store_error)?;
    if let Err(e) = state.reload_keys_if_changed().await {
        tracing::warn!(error = %e, "could not reload keys after disabling an account; the periodic reload will");
    }
    Ok(Json(account_object(&after)))
}

/// `POST /api/admin/redemption-codes`: `{amount_usd, count, expires_at?}` → `{codes}`, shown once.
#[utoipa::path(post, path = "/api/admin/redemption-codes", tag = "admin", request_body = CodesBody, responses((status = 201, description = "The codes, shown once", body = Codes), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn codes(State(state): State<AppState>, caller: Caller, body: Body) -> Result<impl IntoResponse, ApiError> {
    let granter = admin(&caller)?.id;
    let body = object(body, &["amount_usd", "count", "expires_at"]).await?;
    let fields = Fields(&body);
    let now = tokenrouter_core::clock::now_unix();
    let amount = fields
        .usd("amount_usd")?
        .flatten()
        .filter(|a| a.0 > 0)
        .ok_or_else(|| ApiError::invalid_param("'amount_usd' is required: more than 0 USD.", "amount_usd"))?;
    let count = match body.get("count") {
        None => 1,
        Some(value) => match value.as_u64() {
            Some(n @ 1..) if n <= u64::from(MAX_CODES) => n,
            _ => return Err(ApiError::invalid_param(format!("'count' must be from 1 to {MAX_CODES}."), "count")),
        },
    };
    let expires_at = fields.future_time("expires_at", now)?.flatten();
    let codes: Vec<String> = (0..count)
        .map(|_| mint_code())
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::Internal(format!("no randomness available: {e}")))?;
    let hashes: Vec<[u8; 32]> = codes.iter().map(|c| auth::hash_secret(c)).collect();
    state.db.create_codes(&hashes, amount, now, expires_at).await.map_err(store_error)?;
    tracing::info!(admin = granter, count, amount = %amount, "an admin minted redemption codes");
    Ok((StatusCode::CREATED, Json(Codes { codes })))
}

/// `POST /api/admin/reload`: reads the config file again (as SIGHUP does); an invalid file
/// changes nothing.
#[utoipa::path(post, path = "/api/admin/reload", tag = "admin", responses((status = 200, description = "The new config serves; `requires_restart` names settings kept at their running value", body = ReloadResult), (status = 400, description = "invalid_config: the file is invalid (the message is what `tokenrouter config check` prints); the running config stays", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody), (status = 409, description = "Started without a config file: nothing to reload", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn reload(State(state): State<AppState>, caller: Caller) -> Result<Json<ReloadResult>, ApiError> {
    let admin = admin(&caller)?.id;
    match crate::reload::reload(&state, &format!("admin {admin}")).await {
        Ok(done) => Ok(Json(ReloadResult {
            reloaded: true,
            providers: done.providers,
            models: done.models,
            requires_restart: done.requires_restart.iter().map(|s| (*s).to_owned()).collect(),
        })),
        Err(e @ crate::reload::ReloadError::NoFile) => Err(ApiError::Conflict(e.to_string())),
        Err(e) => Err(ApiError::InvalidConfig(e.to_string())),
    }
}
