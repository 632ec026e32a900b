//! `GET /dashboard/keys`: the account's keys (scope, limits, spend, status), creating one
//! (its secret shown once, in a dialog), editing its limits and revoking it.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::layout::{self, Nav, count, usd};
use super::{Viewer, error_page};
use crate::routes::api_keys::{Page, list};
use crate::routes::api_types::Key;
use crate::state::AppState;

/// `?before=`: the API's `next` cursor, for accounts with more keys than one page holds.
#[derive(Debug, Deserialize)]
pub struct KeysQuery {
    before: Option<String>,
}

/// Where a key stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Expired,
    Revoked,
}

impl Status {
    fn of(key: &Key, now: i64) -> Status {
        if key.revoked_at.is_some() {
            return Status::Revoked;
        }
        let expired = key.expires_at.as_deref().and_then(parsed).is_some_and(|t| t.unix_timestamp() <= now);
        if expired { Status::Expired } else { Status::Active }
    }

    fn badge(self) -> Markup {
        match self {
            Status::Active => html! { span.badge.good { "active" } },
            Status::Expired => html! { span.badge.warn { "expired" } },
            Status::Revoked => html! { span.badge.bad { "revoked" } },
        }
    }
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Query(query): Query<KeysQuery>) -> Response {
    let page = Page { limit: Some("100".to_owned()), before: query.before.clone() };
    let listed = match list(State(state), viewer.0.clone(), Query(page)).await {
        Ok(listed) => listed.0,
        Err(e) => return error_page(&viewer, Nav::Keys, e),
    };
    let now = tokenrouter_core::clock::now_unix();
    let mut keys: Vec<(Key, Status)> = listed
        .data
        .into_iter()
        .map(|k| {
            let status = Status::of(&k, now);
            (k, status)
        })
        .collect();
    // Newest first, as the API lists them; revoked keys last.
    keys.sort_by_key(|(_, status)| *status == Status::Revoked);
    let today = OffsetDateTime::from_unix_timestamp(now).map(|t| t.date().to_string()).unwrap_or_default();
    let body = html! {
        div.page-head {
            h1 { (Nav::Keys.title()) }
            a.button href="#create-h" { "Create a key" }
        }
        p.muted {
            "Keys authenticate your apps. " strong { "Inference" } " keys call models through "
            code { "/v1" } "; " strong { "management" } " keys call this account's API (" code { "/api" } "). "
            "See " a href="/dashboard/connect" { "Connect" } " for ready-made configs."
        }
        @if keys.is_empty() {
            div.panel.empty {
                @if query.before.is_some() {
                    p { "No older keys. " a href="/dashboard/keys" { "Back to the newest keys" } }
                } @else {
                    p { strong { "No keys yet." } }
                    p.muted { "Create your first key below, then use it as a Bearer token with any OpenAI-compatible client." }
                }
            }
        } @else {
            div.table-wrap {
                table.responsive.keys {
                    caption.sr-only { "Your API keys, newest first; revoked keys last" }
                    thead {
                        tr {
                            th { "Key" } th { "Status" } th { "Scope" } th { "Models" } th { "Allowed IPs" }
                            th { "Rate limits" } th.num { "Spend" } th { "Last used" }
                            th { span.sr-only { "Actions" } }
                        }
                    }
                    tbody {
                        @for (key, status) in &keys {
                            (row(key, *status, now))
                        }
                    }
                }
            }
            @for (key, status) in &keys {
                @if *status != Status::Revoked {
                    (edit_template(key))
                }
            }
            @if let Some(next) = &listed.next {
                nav.pager aria-label="Pages of keys" {
                    @if query.before.is_some() { a.button.secondary href="/dashboard/keys" { "Newest" } }
                    a.button.secondary href={ "/dashboard/keys?before=" (tokenrouter_core::form::form_encode(next)) } { "Older" }
                }
            }
        }
        (create_form(&today))
        (secret_dialog())
        dialog #edit-key aria-labelledby="edit-key-h" {
            h2 #edit-key-h { "Edit key" }
            div data-edit-body {}
        }
    };
    layout::shell_with(&viewer, Nav::Keys, &["keys.js"], body).into_response()
}

fn listed(items: &[String], everything: &str) -> Markup {
    html! {
        @if items.is_empty() {
            span.muted { (everything) }
        } @else {
            @for (i, item) in items.iter().enumerate() {
                @if i > 0 { ", " }
                code { (item) }
            }
        }
    }
}

fn parsed(rfc3339: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(rfc3339, &Rfc3339).ok()
}

/// The day of an RFC 3339 time (`2026-12-05`), its exact time in the title.
fn day(rfc3339: Option<&str>) -> Markup {
    match rfc3339 {
        Some(t) => html! { time datetime=(t) title=(t) { (t.get(..10).unwrap_or(t)) } },
        None => html! { span.muted { "—" } },
    }
}

/// How long ago (`5 min ago`, `3 days ago`; the day past a month), its exact time in
/// the title.
fn ago(rfc3339: Option<&str>, now: i64) -> Markup {
    let Some((t, at)) = rfc3339.and_then(|t| parsed(t).map(|at| (t, at.unix_timestamp()))) else {
        return day(rfc3339);
    };
    let seconds = (now - at).max(0);
    let shown = match seconds {
        0..60 => "just now".to_owned(),
        60..3_600 => format!("{} min ago", seconds / 60),
        3_600..86_400 => format!("{} h ago", seconds / 3_600),
        86_400..172_800 => "yesterday".to_owned(),
        172_800..2_592_000 => format!("{} days ago", seconds / 86_400),
        _ => return day(rfc3339),
    };
    html! { time datetime=(t) title=(t) { (shown) } }
}

/// `60 requests/min`, or `no request limit`.
fn limit(value: Option<u32>, what: &str) -> Markup {
    html! {
        @match value {
            Some(n) => { (count(i64::from(n))) " " (what) "s/min" },
            None => span.muted { "no " (what) " limit" },
        }
    }
}

fn row(key: &Key, status: Status, now: i64) -> Markup {
    let name = if key.name.is_empty() { "(unnamed)" } else { &key.name };
    html! {
        tr data-key-id=(key.id) .revoked[status == Status::Revoked] {
            td data-label="Key" {
                strong.key-name { (name) }
                br;
                code.prefix { (key.prefix) "…" }
                br;
                span.hint { "created " (day(key.created_at.as_deref())) }
            }
            td data-label="Status" {
                (status.badge())
                br;
                span.hint {
                    @if key.revoked_at.is_some() { "on " (day(key.revoked_at.as_deref())) }
                    @else if key.expires_at.is_none() { "never expires" }
                    @else if status == Status::Expired { "on " (day(key.expires_at.as_deref())) }
                    @else { "expires " (day(key.expires_at.as_deref())) }
                }
            }
            td data-label="Scope" {
                (key.scope)
                br;
                span.hint { "community: " @if key.community { "yes" } @else { "no" } }
            }
            td.list data-label="Models" { (listed(&key.models, "all models")) }
            td.list data-label="Allowed IPs" { (listed(&key.ips, "any address")) }
            td data-label="Rate limits" {
                span.rpm { (limit(key.rpm, "request")) }
                br;
                span.tpm { (limit(key.tpm, "token")) }
            }
            td.num data-label="Spend" {
                span.spent { (usd(&key.spent_usd)) }
                br;
                span.hint.spend-limit {
                    @match &key.spend_limit_usd { Some(l) => { "limit " (usd(l)) }, None => "no limit" }
                }
            }
            td data-label="Last used" {
                @if key.last_used_at.is_some() { (ago(key.last_used_at.as_deref(), now)) } @else { span.muted { "never" } }
            }
            td.actions data-label="Actions" {
                @if status != Status::Revoked {
                    div.row {
                        button.secondary type="button" data-edit-key=(key.id) aria-label={ "Edit " (name) } { "Edit" }
                        button.danger type="button" data-api={ "DELETE /api/keys/" (key.id) } data-done="reload"
                            data-confirm={ "Revoke the key “" (name) "” (" (key.prefix) "…)? Apps that use it get 401 at once. This cannot be undone." }
                            aria-label={ "Revoke " (name) } { "Revoke" }
                    }
                }
            }
        }
    }
}

/// A labelled field with an optional hint below it (outside the label, so the label's
/// name stays exactly its text).
fn field(id: &str, label: &str, hint: Option<&str>, control: Markup) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            (control)
            @if let Some(hint) = hint { span.hint id={ (id) "-hint" } { (hint) } }
        }
    }
}

const MODELS_HINT: &str =
    "One model id per line or comma separated; end with * for a prefix (claude-*). Empty: every model.";
const IPS_HINT: &str = "Addresses or CIDR ranges (203.0.113.7, 10.0.0.0/8). Empty: any address.";
const SPEND_HINT: &str = "The most this key may spend in total, such as 25 or 0.50. Empty: no limit.";

fn create_form(today: &str) -> Markup {
    html! {
        section.panel aria-labelledby="create-h" {
            h2 #create-h { "Create a key" }
            form #create-key .stack data-api="POST /api/keys" {
                div.grid2 {
                    (field("key-name", "Name", Some("So you can tell your keys apart: laptop, CI, my-app."),
                        html! { input #key-name name="name" type="text" maxlength="100" required autocomplete="off" aria-describedby="key-name-hint"; }))
                    (field("key-scope", "Scope", Some("Inference: calls models (/v1). Management: calls this account's API (/api)."),
                        html! {
                            select #key-scope name="scope" aria-describedby="key-scope-hint" {
                                option value="inference" selected { "inference" }
                                option value="management" { "management" }
                            }
                        }))
                }
                div.grid2 {
                    (field("key-models", "Models", Some(MODELS_HINT),
                        html! { textarea #key-models name="models" data-kind="list" rows="3" spellcheck="false" aria-describedby="key-models-hint" {} }))
                    (field("key-ips", "Allowed IPs", Some(IPS_HINT),
                        html! { textarea #key-ips name="ips" data-kind="list" rows="3" spellcheck="false" aria-describedby="key-ips-hint" {} }))
                }
                div.grid4 {
                    (field("key-rpm", "Requests per minute", Some("Empty: no limit."),
                        html! { input #key-rpm name="rpm" type="number" min="1" max="1000000000" step="1" inputmode="numeric" data-kind="int" aria-describedby="key-rpm-hint"; }))
                    (field("key-tpm", "Tokens per minute", Some("Empty: no limit."),
                        html! { input #key-tpm name="tpm" type="number" min="1" max="1000000000" step="1" inputmode="numeric" data-kind="int" aria-describedby="key-tpm-hint"; }))
                    (field("key-spend", "Spend limit (USD)", Some(SPEND_HINT),
                        html! { input #key-spend name="spend_limit_usd" type="text" inputmode="decimal" pattern="[0-9]+(\\.[0-9]+)?" autocomplete="off" aria-describedby="key-spend-hint"; }))
                    (field("key-expires", "Expires on", Some("At the end of that day, UTC. Empty: never."),
                        html! { input #key-expires name="expires_at" type="date" min=(today) data-kind="date" aria-describedby="key-expires-hint"; }))
                }
                div {
                    label.check for="key-community" {
                        input #key-community name="community" type="checkbox" data-kind="bool" checked aria-describedby="key-community-hint";
                        "Allow community instances"
                    }
                    span.hint #key-community-hint { "Requests may be served by compute that other members contribute, often at a lower price. Uncheck to use the gateway's own providers only." }
                }
                p data-error role="alert" {}
                div.row { button type="submit" { "Create key" } }
            }
        }
    }
}

fn secret_dialog() -> Markup {
    html! {
        dialog #new-key aria-labelledby="new-key-h" aria-describedby="new-key-warning" {
            h2 #new-key-h { "Copy your new key" }
            p.notice.warn #new-key-warning {
                strong { "This is the only time the key is shown." }
                " Copy it now and keep it somewhere safe, such as a password manager or your CI's secret store. "
                "If you lose it, revoke it and create another."
            }
            div.secret {
                code #new-key-secret {}
                button type="button" data-copy="#new-key-secret" { "Copy key" }
            }
            p.hint { "Send it as " code { "Authorization: Bearer <key>" } ", or set it as " code { "TOKENROUTER_API_KEY" } " for the snippets on the Connect page." }
            form method="dialog" { div.row { button type="submit" { "Done" } } }
        }
    }
}

/// The edit form of a key, in a `<template>` that keys.js copies into the edit dialog
/// (so that the page holds one set of these labels at a time). Only the fields changed
/// are sent; an emptied limit is sent as null (no limit).
fn edit_template(key: &Key) -> Markup {
    let id = &key.id;
    let expires = key.expires_at.as_deref().and_then(|t| t.get(..10)).unwrap_or_default();
    let num = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    html! {
        template id={ "edit-tpl-" (id) } {
            form.stack data-edit-key=(id) {
                p.muted { "Key " code { (key.prefix) "…" } ". Changes apply to every request within a second." }
                (field("edit-name", "Name", None,
                    html! { input #edit-name name="name" type="text" maxlength="100" value=(key.name) autocomplete="off"; }))
                (field("edit-models", "Models", Some(MODELS_HINT),
                    html! { textarea #edit-models name="models" data-kind="list" data-empty="list" rows="3" spellcheck="false" aria-describedby="edit-models-hint" { (key.models.join("\n")) } }))
                (field("edit-ips", "Allowed IPs", Some(IPS_HINT),
                    html! { textarea #edit-ips name="ips" data-kind="list" data-empty="list" rows="2" spellcheck="false" aria-describedby="edit-ips-hint" { (key.ips.join("\n")) } }))
                div.grid2 {
                    (field("edit-rpm", "Requests per minute", Some("Empty: no limit."),
                        html! { input #edit-rpm name="rpm" type="number" min="1" max="1000000000" step="1" inputmode="numeric" data-kind="int" data-empty="null" value=(num(key.rpm)) aria-describedby="edit-rpm-hint"; }))
                    (field("edit-tpm", "Tokens per minute", Some("Empty: no limit."),
                        html! { input #edit-tpm name="tpm" type="number" min="1" max="1000000000" step="1" inputmode="numeric" data-kind="int" data-empty="null" value=(num(key.tpm)) aria-describedby="edit-tpm-hint"; }))
                    (field("edit-spend", "Spend limit (USD)", Some(SPEND_HINT),
                        html! { input #edit-spend name="spend_limit_usd" type="text" inputmode="decimal" data-empty="null" value=(key.spend_limit_usd.as_deref().unwrap_or_default()) autocomplete="off" aria-describedby="edit-spend-hint"; }))
                    (field("edit-expires", "Expires on", Some("At the end of that day, UTC. Empty: never."),
                        html! { input #edit-expires name="expires_at" type="date" data-kind="date" data-empty="null" value=(expires) aria-describedby="edit-expires-hint"; }))
                }
                p data-error role="alert" {}
                div.row {
                    button type="submit" { "Save changes" }
                    button.secondary type="button" data-close-dialog { "Cancel" }
                }
            }
        }
    }
}
