//! `GET /dashboard/admin` (admins only): accounts with their balances, searchable;
//! granting credit, disabling and enabling an account, minting redemption codes.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;
use tokenrouter_core::NanoUsd;
use tokenrouter_core::form::form_encode;

use super::layout::{self, Nav, usd, when};
use super::{Viewer, error_page};
use crate::auth::MAX_CODES;
use crate::error::ApiError;
use crate::routes::admin::{IdPage, accounts};
use crate::routes::api_types::AdminAccount;
use crate::state::AppState;

/// Accounts a page shows.
const PAGE_ROWS: usize = 50;
/// A search reads at most this many pages of 100 accounts before offering "More".
const SEARCH_PAGES: usize = 20;

/// `?q=` (a part of the name or login, or an id) and `?before=` (the cursor).
#[derive(Debug, Deserialize)]
pub struct AdminQuery {
    q: Option<String>,
    before: Option<String>,
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Query(query): Query<AdminQuery>) -> Response {
    if !viewer.is_admin() {
        return forbidden(&viewer);
    }
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_lowercase);
    let (found, next) = match find(&state, &viewer, search.as_deref(), query.before.clone()).await {
        Ok(found) => found,
        Err(e) => return error_page(&viewer, Nav::Admin, e),
    };
    let me = viewer.account().id;
    let shown_q = query.q.as_deref().map(str::trim).unwrap_or_default();
    let more = |next: &str| {
        let mut href = format!("/dashboard/admin?before={}", form_encode(next));
        if !shown_q.is_empty() {
            href.push_str(&format!("&q={}", form_encode(shown_q)));
        }
        href
    };
    let body = html! {
        h1 { (Nav::Admin.title()) }
        section aria-labelledby="accounts-h" {
            h2 #accounts-h { "Accounts" }
            form.filters role="search" method="get" action="/dashboard/admin" {
                div.field.grow {
                    label for="account-search" { "Search accounts" }
                    input #account-search type="search" name="q" value=(shown_q) autocomplete="off"
                        spellcheck="false" placeholder="Name, GitHub login or id" aria-describedby="account-search-hint";
                }
                button type="submit" { "Search" }
                @if !shown_q.is_empty() { a.button.secondary href="/dashboard/admin" { "Clear" } }
            }
            p.hint #account-search-hint {
                @if shown_q.is_empty() { "Newest accounts first." }
                @else { (found.len()) " account(s) whose name or login contains “" (shown_q) "”, newest first." }
            }
            @if found.is_empty() {
                div.panel.empty {
                    @if shown_q.is_empty() { p { "No accounts." } }
                    @else { p { "No account matches “" (shown_q) "”. " a href="/dashboard/admin" { "Show all accounts" } } }
                }
            } @else {
                div.table-wrap {
                    table.responsive.accounts {
                        caption.sr-only { "Accounts, newest first" }
                        thead {
                            tr {
                                th { "Account" } th { "Role" } th.num { "Balance" } th.num { "Held" }
                                th { "Status" } th { "Created" } th { "Grant credit" } th { "Access" }
                            }
                        }
                        tbody { @for account in &found { (row(account, me)) } }
                    }
                }
            }
            @if query.before.is_some() || next.is_some() {
                nav.pager aria-label="Pages of accounts" {
                    @if query.before.is_some() {
                        a.button.secondary href={ "/dashboard/admin" @if !shown_q.is_empty() { "?q=" (form_encode(shown_q)) } } { "Newest" }
                    }
                    @if let Some(next) = &next { a.button.secondary href=(more(next)) { "Older" } }
                }
            }
        }
        (codes_form())
    };
    layout::shell_with(&viewer, Nav::Admin, &["admin.js"], body).into_response()
}

/// The accounts to show and the cursor after them. Without a search, one page of the
/// API's list; with one, the API's pages read until a page of matches is found.
async fn find(
    state: &AppState,
    viewer: &Viewer,
    search: Option<&str>,
    mut before: Option<String>,
) -> Result<(Vec<AdminAccount>, Option<String>), ApiError> {
    let read = |limit: usize, before: Option<String>| {
        let page = IdPage { limit: Some(limit.to_string()), before };
        accounts(State(state.clone()), viewer.0.clone(), Query(page))
    };
    let Some(search) = search else {
        let listed = read(PAGE_ROWS, before).await?.0;
        return Ok((listed.data, listed.next));
    };
    let mut found = Vec::new();
    for _ in 0..SEARCH_PAGES {
        let listed = read(100, before.take()).await?.0;
        for account in listed.data {
            if found.len() == PAGE_ROWS {
                // A full page: the next one starts after its last account.
                let next = found.last().map(|a: &AdminAccount| a.id.to_string());
                return Ok((found, next));
            }
            if matches(&account, search) {
                found.push(account);
            }
        }
        match listed.next {
            Some(next) => before = Some(next),
            None => return Ok((found, None)),
        }
    }
    Ok((found, before))
}

fn matches(account: &AdminAccount, search: &str) -> bool {
    account.name.to_lowercase().contains(search)
        || account.login.to_lowercase().contains(search)
        || account.id.to_string() == search
}

fn forbidden(viewer: &Viewer) -> Response {
    let body = html! {
        h1 { (Nav::Admin.title()) }
        p.notice.error role="alert" { "This page is for the gateway's admins, and your account is not one." }
        p.muted { "If you need to manage accounts or codes, ask an admin of this gateway. " a href="/dashboard" { "Back to the overview" } }
    };
    (StatusCode::FORBIDDEN, layout::shell(viewer, Nav::Admin, body)).into_response()
}

fn row(account: &AdminAccount, me: i64) -> Markup {
    let id = account.id;
    let held = NanoUsd(account.held_nano_usd).to_decimal_string();
    html! {
        tr data-account-id=(id) .revoked[account.disabled] {
            td data-label="Account" {
                strong.account-name { (account.name) }
                @if account.login != account.name { br; span.hint { "login " (account.login) } }
                br; span.hint { "id " (id) }
            }
            td data-label="Role" {
                @if account.role == "admin" { span.badge.warn { "admin" } } @else { span.muted { (account.role) } }
            }
            td.num data-label="Balance" data-balance { (usd(&account.balance_usd)) }
            td.num data-label="Held" { (usd(&held)) }
            td data-label="Status" {
                @if account.disabled { span.badge.bad { "disabled" } } @else { span.badge.good { "active" } }
            }
            td data-label="Created" { (when(account.created_at.as_deref())) }
            td.block data-label="Grant credit" {
                form.grant data-api={ "POST /api/admin/accounts/" (id) "/credit" } aria-label={ "Grant credit to " (account.name) } {
                    div.row {
                        div.field {
                            label for={ "grant-amount-" (id) } { "Amount (USD)" }
                            input id={ "grant-amount-" (id) } name="amount_usd" type="text" inputmode="decimal" required
                                pattern="[0-9]+(\\.[0-9]+)?" autocomplete="off" placeholder="10";
                        }
                        div.field {
                            label for={ "grant-memo-" (id) } { "Memo" }
                            input id={ "grant-memo-" (id) } name="memo" type="text" maxlength="200" autocomplete="off" placeholder="Reason";
                        }
                        button type="submit" { "Grant" }
                    }
                    p data-error role="alert" {}
                }
            }
            td.block data-label="Access" {
                @if id == me {
                    span.muted { "you" }
                } @else if account.disabled {
                    button.secondary type="button" data-api={ "PATCH /api/admin/accounts/" (id) } data-body=r#"{"disabled":false}"#
                        data-done="reload" aria-label={ "Enable " (account.name) } { "Enable" }
                } @else {
                    button.danger type="button" data-api={ "PATCH /api/admin/accounts/" (id) } data-body=r#"{"disabled":true}"#
                        data-confirm={ "Disable " (account.name) "? Its keys and sessions stop working at once; its balance is kept." }
                        data-done="reload" aria-label={ "Disable " (account.name) } { "Disable" }
                }
            }
        }
    }
}

fn codes_form() -> Markup {
    html! {
        section.panel aria-labelledby="codes-h" {
            h2 #codes-h { "Create redemption codes" }
            p.muted { "Each code credits its amount once, to whoever redeems it first on the Balance page." }
            form #create-codes .stack data-api="POST /api/admin/redemption-codes" aria-labelledby="codes-h" {
                div.grid4 {
                    div.field {
                        label for="codes-amount" { "Amount (USD)" }
                        input #codes-amount name="amount_usd" type="text" inputmode="decimal" required
                            pattern="[0-9]+(\\.[0-9]+)?" autocomplete="off" placeholder="10" aria-describedby="codes-amount-hint";
                        span.hint #codes-amount-hint { "What each code credits." }
                    }
                    div.field {
                        label for="codes-count" { "How many" }
                        input #codes-count name="count" type="number" min="1" max=(MAX_CODES) step="1" value="1"
                            inputmode="numeric" data-kind="int" required aria-describedby="codes-count-hint";
                        span.hint #codes-count-hint { "1 to " (MAX_CODES) "." }
                    }
                    div.field {
                        label for="codes-expires" { "Expires on" }
                        input #codes-expires name="expires_at" type="date" data-kind="date" aria-describedby="codes-expires-hint";
                        span.hint #codes-expires-hint { "At the end of that day, UTC. Empty: never." }
                    }
                }
                p data-error role="alert" {}
                div.row { button type="submit" { "Create codes" } }
            }
            div #codes-result hidden {
                p.notice.warn role="status" {
                    strong { "These codes are shown only once." }
                    " Copy them now: the gateway keeps only their hashes and cannot show them again."
                }
                pre #new-codes tabindex="0" aria-label="New redemption codes" {}
                div.row { button type="button" data-copy="#new-codes" { "Copy codes" } }
            }
        }
    }
}
