//! `GET /dashboard/balance`: the balance (exact), what is held for requests in flight,
//! the ledger page by page, and redeeming a code.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use tokenrouter_core::NanoUsd;
use tokenrouter_core::form::form_encode;

use super::layout::{self, Nav, usd, when};
use super::{Viewer, error_page};
use crate::routes::account::{ledger, me};
use crate::routes::admin::IdPage;
use crate::routes::api_types::LedgerEntry;
use crate::state::AppState;

/// Ledger rows a page shows.
const PAGE_ROWS: &str = "50";

/// `?before=`: the API's `next` cursor.
#[derive(Debug, Deserialize)]
pub struct BalanceQuery {
    before: Option<String>,
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Query(query): Query<BalanceQuery>) -> Response {
    let account = me(viewer.0.clone()).await.0;
    let page = IdPage { limit: Some(PAGE_ROWS.to_owned()), before: query.before.clone() };
    let rows = match ledger(State(state), viewer.0.clone(), Query(page)).await {
        Ok(rows) => rows.0,
        Err(e) => return error_page(&viewer, Nav::Balance, e),
    };
    let held = NanoUsd(account.held_nano_usd);
    let available = NanoUsd(account.balance_nano_usd.saturating_sub(account.held_nano_usd));
    let body = html! {
        h1 { (Nav::Balance.title()) }
        div.cards {
            div.card {
                div.label #balance-label { "Balance" }
                div.value #balance data-nano-usd=(account.balance_nano_usd) aria-labelledby="balance-label" {
                    (usd(&account.balance_usd))
                }
                div.sub { "Every request is paid from it." }
            }
            div.card {
                div.label { "Held for requests in flight" }
                div.value #held { (usd(&held.to_decimal_string())) }
                div.sub { "Released or charged when each request ends." }
            }
            div.card {
                div.label { "Available to spend" }
                div.value #available { (usd(&available.to_decimal_string())) }
            }
        }
        section.panel aria-labelledby="redeem-h" {
            h2 #redeem-h { "Redeem a code" }
            form #redeem .stack data-api="POST /api/redeem" {
                div.row {
                    div.field.grow {
                        label for="redeem-code" { "Code" }
                        input #redeem-code name="code" type="text" required maxlength="64" autocomplete="off"
                            autocapitalize="off" spellcheck="false" placeholder="trc-…" aria-describedby="redeem-hint";
                    }
                    button type="submit" { "Redeem" }
                }
                p.hint #redeem-hint { "A code credits its amount to this account once. Codes come from your gateway's admins." }
                p data-error role="alert" {}
            }
        }
        section aria-labelledby="ledger-h" {
            h2 #ledger-h { "Ledger" }
            p.muted { "Every change to your balance, newest first. Charges are negative; the balance after each row adds up to the one above." }
            @if rows.data.is_empty() {
                div.panel.empty {
                    @if query.before.is_some() {
                        p { "No older entries. " a href="/dashboard/balance" { "Back to the newest" } }
                    } @else {
                        p { strong { "No entries yet." } }
                        p.muted { "Credit shows here when you redeem a code or an admin grants some; each request you make adds a charge." }
                    }
                }
            } @else {
                div.table-wrap {
                    table.responsive.ledger {
                        caption.sr-only { "Ledger entries, newest first" }
                        thead {
                            tr {
                                th { "Date" } th { "Kind" } th.num { "Amount" } th.num { "Balance after" }
                                th { "Memo" } th { "Request" }
                            }
                        }
                        tbody { @for entry in &rows.data { (row(entry)) } }
                    }
                }
            }
            @if query.before.is_some() || rows.next.is_some() {
                nav.pager aria-label="Pages of the ledger" {
                    @if query.before.is_some() { a.button.secondary href="/dashboard/balance" { "Newest" } }
                    @if let Some(next) = &rows.next {
                        a.button.secondary href={ "/dashboard/balance?before=" (form_encode(next)) } { "Older" }
                    }
                }
            }
        }
    };
    layout::shell_with(&viewer, Nav::Balance, &["keys.js"], body).into_response()
}

/// The badge class of a ledger kind: money in is good, an adjustment worth a look.
fn kind_class(kind: &str) -> &'static str {
    match kind {
        "credit" | "grant" | "redemption" | "refund" | "earning" => "good",
        "adjustment" => "warn",
        _ => "plain",
    }
}

fn row(entry: &LedgerEntry) -> Markup {
    let negative = entry.amount_usd.starts_with('-');
    html! {
        tr data-ledger-id=(entry.id) {
            td data-label="Date" { (when(entry.created_at.as_deref())) }
            td data-label="Kind" { span class={ "badge " (kind_class(&entry.kind)) } { (entry.kind) } }
            td.num data-label="Amount" .good[!negative] {
                @if !negative { "+" } (usd(&entry.amount_usd))
            }
            td.num data-label="Balance after" { (usd(&entry.balance_after_usd)) }
            td.wrap.memo data-label="Memo" {
                @if entry.memo.is_empty() { span.muted { "—" } } @else { (entry.memo) }
            }
            td data-label="Request" {
                @match &entry.request_id {
                    Some(id) => a href={ "/dashboard/requests/" (form_encode(id)) } { code { (id) } },
                    None => span.muted { "—" },
                }
            }
        }
    }
}
