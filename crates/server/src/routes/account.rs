//! Signing in and out (one-time links; GitHub next), and the signed-in account's own
//! routes: `/api/me`, `/api/redeem`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::header::SET_COOKIE;
use serde::Deserialize;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokenrouter_store::{Account, Redemption};

use super::api_types::{
    ErrorBody, LedgerEntry, LedgerList, Me, ModelEntry, ModelList, ModelPricing, Redeemed, SignedOut,
};
use crate::auth;
use crate::error::ApiError;
use crate::policy::ClientAddr;
use crate::signin::{self, Caller};
use crate::state::AppState;

/// `GET /auth/link/{token}`: a one-time link from `accounts login-link` starts a session.
pub async fn link(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path(token): Path<String>,
) -> Response {
    if let Err(e) = state.abuse.sign_in.check(&state.limits, client).await {
        return e.into_response();
    }
    let now = tokenrouter_core::clock::now_unix();
    let account = match state.db.use_login_link(&auth::hash_secret(&token), now).await {
        Ok(Some(account)) => account,
        Ok(None) => return refused("link_invalid"),
        Err(e) => {
            tracing::warn!(error = %e, "could not check a sign-in link");
            return refused("unavailable");
        }
    };
    match signin::start_session(&state, account).await {
        Ok(cookie) => signin::found("/dashboard", &[cookie]),
        Err(_) => refused("unavailable"),
    }
}

/// A refused sign-in ends at `/login?error=CODE`, with no session.
fn refused(code: &str) -> Response {
    signin::found(&format!("/login?error={code}"), &[])
}

/// `POST /auth/logout`: ends the session on the server and clears the cookie.
#[utoipa::path(post, path = "/auth/logout", tag = "account", responses((status = 200, body = SignedOut), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if let Some(session) = caller.session {
        state.db.end_session(&session).await.map_err(|e| {
            tracing::warn!(error = %e, "could not end a session");
            ApiError::StoreUnavailable
        })?;
    }
    let cleared = signin::cleared_cookie(&state.config.load().server.public_origin());
    Ok(([(SET_COOKIE, cleared)], Json(SignedOut { signed_out: true })).into_response())
}

/// `GET /api/me`.
#[utoipa::path(get, path = "/api/me", tag = "account", responses((status = 200, body = Me), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(me_object(&caller.account))
}

fn me_object(account: &Account) -> Me {
    Me {
        id: account.id,
        login: account.login.clone().unwrap_or_else(|| account.name.clone()),
        name: account.display_name.clone().unwrap_or_else(|| account.name.clone()),
        avatar_url: account.avatar_url.clone(),
        email: account.email.clone(),
        role: role(account).to_owned(),
        balance_usd: account.balance.to_decimal_string(),
        balance_nano_usd: account.balance.0,
        held_nano_usd: account.held.0,
        created_at: rfc3339(account.created_at),
    }
}

/// `user` or `admin`.
pub fn role(account: &Account) -> &'static str {
    if account.is_admin { "admin" } else { "user" }
}

pub fn rfc3339(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&Rfc3339).ok())
}

/// `POST /api/redeem`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    code: String,
}

/// The longest code worth looking up (codes are `trc-` and 24 characters).
const MAX_CODE_LEN: usize = 64;

/// `POST /api/redeem`: credits a code to the caller's account, exactly once.
#[utoipa::path(post, path = "/api/redeem", tag = "account", request_body = RedeemBody, responses((status = 200, body = Redeemed), (status = 400, description = "invalid_code: unknown, used or expired", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody), (status = 429, description = "Too many attempts from this address (Retry-After)", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn redeem(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Json<Redeemed>, ApiError> {
    state.abuse.redeem.check(&state.limits, client).await?;
    let body: RedeemBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_param(format!("The body must be {{\"code\": \"…\"}} ({e})."), "code"))?;
    let code = body.code.trim();
    if code.is_empty() || code.len() > MAX_CODE_LEN {
        tracing::info!(account = caller.account.id, "a redemption failed (malformed code)");
        return Err(ApiError::InvalidCode);
    }
    let now = tokenrouter_core::clock::now_unix();
    let redemption = state.db.redeem_code(&auth::hash_secret(code), caller.account.id, now).await.map_err(|e| {
        tracing::warn!(error = %e, "could not redeem a code");
        ApiError::StoreUnavailable
    })?;
    match redemption {
        Redemption::Credited { amount, balance } => {
            tracing::info!(account = caller.account.id, amount = %amount, "a code was redeemed");
            Ok(Json(Redeemed { credited_usd: amount.to_decimal_string(), balance_usd: balance.to_decimal_string() }))
        }
        Redemption::Invalid => {
            // Never the code itself: it may be one a person mistyped by a character.
            tracing::info!(account = caller.account.id, "a redemption failed (unknown, used or expired code)");
            Err(ApiError::InvalidCode)
        }
    }
}

/// A ledger row as `/api/ledger` shows it; `balance_after`: the balance right after it.
pub fn ledger_object(row: &tokenrouter_store::LedgerRow, balance_after: tokenrouter_core::NanoUsd) -> LedgerEntry {
    LedgerEntry {
        id: row.id.to_string(),
        created_at: rfc3339(row.created_at),
        kind: row.kind.clone(),
        amount_usd: row.amount.to_decimal_string(),
        balance_after_usd: balance_after.to_decimal_string(),
        memo: row.memo.clone(),
        request_id: row.request_id.clone(),
    }
}

/// `GET /api/ledger`: the account's ledger, newest first, each row with the balance after it.
#[utoipa::path(get, path = "/api/ledger", tag = "account", params(("limit" = Option<u32>, Query, description = "1 to 100, default 20"), ("before" = Option<String>, Query, description = "`next` of the previous page")), responses((status = 200, body = LedgerList), (status = 400, description = "Bad input; `param` names the field", body = ErrorBody), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn ledger(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Query(page): axum::extract::Query<super::admin::IdPage>,
) -> Result<Json<LedgerList>, ApiError> {
    let (limit, before) = page.parse()?;
    let account = caller.account.id;
    let unavailable = |e: tokenrouter_store::StoreError| {
        tracing::warn!(error = %e, "could not read a ledger");
        ApiError::StoreUnavailable
    };
    let rows = state.db.ledger_page(account, limit, before).await.map_err(unavailable)?;
    let mut after = match rows.first() {
        Some(newest) => state.db.ledger_sum_through(account, newest.id).await.map_err(unavailable)?,
        None => tokenrouter_core::NanoUsd::ZERO,
    };
    let mut data = Vec::with_capacity(rows.len());
    for row in &rows {
        data.push(ledger_object(row, after));
        after = tokenrouter_core::NanoUsd(after.0 - row.amount.0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    Ok(Json(LedgerList { data, next: super::admin::IdPage::next(limit, &ids) }))
}

/// `GET /api/models`: the catalog as `/v1/models` shows it, with prices, whether it can
/// serve now (`online`: a deployment not cooling down) and how many deployments are live.
#[utoipa::path(get, path = "/api/models", tag = "account", responses((status = 200, body = ModelList), (status = 401, description = "Not signed in", body = ErrorBody), (status = 403, description = "Forbidden (an inference key, or not an admin) or csrf_failed", body = ErrorBody)), security(("session" = []), ("management_key" = [])))]
pub async fn models(State(state): State<AppState>, _caller: Caller) -> Json<ModelList> {
    let catalog = state.catalog();
    let now = std::time::Instant::now();
    let data = catalog
        .models(true)
        .filter(|m| m.live_deployments().next().is_some())
        .map(|m| {
            let live = state.routing.live_count(m, now);
            ModelEntry {
                id: m.id.clone(),
                owned_by: m.live_deployments().next().map(|d| d.provider.name.clone()),
                context_window: m.context_window,
                max_output_tokens: m.max_output_tokens,
                pricing: ModelPricing {
                    input_usd_per_mtok: m.price.input.to_decimal_string(),
                    cached_input_usd_per_mtok: m.price.cached_input.to_decimal_string(),
                    output_usd_per_mtok: m.price.output.to_decimal_string(),
                },
                capabilities: m.capabilities.clone(),
                status: if live > 0 { "online" } else { "offline" }.to_owned(),
                deployments: live,
            }
        })
        .collect();
    Json(ModelList { data, next: None })
}
