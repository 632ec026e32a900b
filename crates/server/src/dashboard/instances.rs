//! `GET /dashboard/instances` and `/dashboard/instances/{id}`: the account's community
//! instances (status, models, the last 24 hours, uptime), registering one (its key shown
//! once, with the commands that start a server with it), switching, rotating, deleting,
//! and on the detail page the earnings per day and the declared inventory.

mod inventory;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use tokenrouter_core::NanoUsd;

use super::chart::{self, Series};
use super::layout::{self, Nav, count, usd, when};
use super::overview::last_days;
use super::{Viewer, error_page};
use crate::routes::api_keys::Page;
use crate::routes::api_types::Instance;
use crate::routes::instances::{get, list, store_error};
use crate::state::AppState;

const SCRIPTS: &[&str] = &["instances.js"];
const DAY: i64 = 86_400;

fn badge(instance: &Instance) -> Markup {
    let class = match instance.status.as_str() {
        "online" => "badge good",
        "offline" => "badge bad",
        "mismatch" | "pending" => "badge warn",
        _ => "badge",
    };
    html! { span class=(class) data-status=(instance.status) { (instance.status) } }
}

fn uptime(share: Option<f64>) -> String {
    share.map_or_else(|| "—".to_owned(), |s| format!("{:.1}%", (s * 100.0).clamp(0.0, 100.0)))
}

fn latency(ms: Option<u64>) -> String {
    ms.map_or_else(|| "—".to_owned(), |ms| format!("{} ms", count(i64::try_from(ms).unwrap_or(i64::MAX))))
}

/// `800000000` ppb → `80`, `333333333` → `33.3333333` (percent, trailing zeros cut).
fn percent(ppb: u64) -> String {
    let whole = ppb / 10_000_000;
    let fraction = format!("{:07}", ppb % 10_000_000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() { whole.to_string() } else { format!("{whole}.{fraction}") }
}

/// The upstream name of an instance's first model (for the start commands).
fn first_upstream(instance: &Instance) -> &str {
    instance.models.first().map_or("", |m| m.upstream_model.as_str())
}

fn model_list(instance: &Instance) -> Markup {
    html! {
        @for (i, m) in instance.models.iter().enumerate() {
            @if i > 0 { ", " }
            code { (m.id) }
            @if m.upstream_model != m.id { span.hint { " as " (m.upstream_model) } }
        }
    }
}

/// Enable/Disable, Rotate key, Delete.
fn actions(instance: &Instance) -> Markup {
    let (id, name) = (&instance.id, &instance.name);
    html! {
        div.row {
            @if instance.enabled {
                button.secondary type="button" data-api={ "PATCH /api/instances/" (id) } data-body=r#"{"enabled":false}"#
                    aria-label={ "Disable " (name) } { "Disable" }
            } @else {
                button.secondary type="button" data-api={ "PATCH /api/instances/" (id) } data-body=r#"{"enabled":true}"#
                    aria-label={ "Enable " (name) } { "Enable" }
            }
            button.secondary type="button" data-api={ "POST /api/instances/" (id) "/rotate-key" } data-upstream=(first_upstream(instance))
                data-confirm={ "Rotate the key of “" (name) "”? The old key stops working at once: restart the server with the new one." }
                aria-label={ "Rotate the key of " (name) } { "Rotate key" }
            button.danger type="button" data-api={ "DELETE /api/instances/" (id) } data-instance-delete="/dashboard/instances"
                data-confirm={ "Delete the instance “" (name) "”? No new request goes to it. This cannot be undone." }
                aria-label={ "Delete " (name) } { "Delete" }
        }
    }
}

fn privacy_note() -> Markup {
    html! {
        p.notice.warn.privacy {
            strong { "Privacy. " }
            "As an instance's owner you can read the prompts and answers sent to it — and so can anyone who controls its server. "
            "Consumers may keep their requests off community instances with keys that do not allow them."
        }
    }
}

fn row(instance: &Instance) -> Markup {
    let stats = &instance.stats;
    html! {
        tr data-instance-id=(instance.id) {
            td data-label="Instance" {
                a.instance-name href={ "/dashboard/instances/" (instance.id) } { (instance.name) }
                br;
                span.hint { (instance.region.as_deref().unwrap_or("no region")) }
            }
            td data-label="Status" {
                (badge(instance))
                @if !instance.status_detail.is_empty() { br; span.detail { (instance.status_detail) } }
            }
            td.list data-label="Models" { (model_list(instance)) }
            td.num data-label="Latency" { (latency(instance.latency_ms)) }
            td data-label="Last probe" { (when(instance.last_probe_at.as_deref())) }
            td.num data-label="Requests 24 h" { (count(stats.requests)) }
            td.num data-label="Tokens 24 h" { (count(stats.prompt_tokens + stats.completion_tokens)) }
            td.num data-label="Earnings 24 h" { (usd(&stats.earnings_usd)) }
            td.num data-label="Uptime 24 h" { (uptime(stats.uptime_24h)) }
            td.actions data-label="Actions" { (actions(instance)) }
        }
    }
}

/// A labelled field with a hint below it (outside the label, so the label's name stays
/// exactly its text).
fn field(id: &str, label: &str, hint: Option<&str>, control: Markup) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            (control)
            @if let Some(hint) = hint { span.hint id={ (id) "-hint" } { (hint) } }
        }
    }
}

fn register_form(open_models: &[String]) -> Markup {
    let models_hint = if open_models.is_empty() {
        "One a line: catalog-id, or catalog-id=upstream-name. No model of this gateway is open to instances yet."
            .to_owned()
    } else {
        format!(
            "One a line: catalog-id, or catalog-id=upstream-name (the name your server knows it by). Open to instances: {}.",
            open_models.join(", ")
        )
    };
    html! {
        section.panel aria-labelledby="register-h" {
            h2 #register-h { "Register an instance" }
            form #register-instance .stack {
                div.grid2 {
                    (field("instance-name", "Name", Some("So you can tell your servers apart: garage-4090, rack-2."),
                        html! { input #instance-name name="name" type="text" maxlength="100" required autocomplete="off" aria-describedby="instance-name-hint"; }))
                    (field("instance-region", "Region", Some("Optional: where it runs, such as eu-west."),
                        html! { input #instance-region name="region" type="text" maxlength="64" autocomplete="off" aria-describedby="instance-region-hint"; }))
                }
                (field("instance-url", "Base URL", Some("The server's OpenAI-compatible root, e.g. http://203.0.113.7:8000/v1. It must be reachable from the gateway at a public address."),
                    html! { input #instance-url name="base_url" type="url" maxlength="2048" required placeholder="http://203.0.113.7:8000/v1" autocomplete="off" spellcheck="false" aria-describedby="instance-url-hint"; }))
                (field("instance-models", "Models", Some(&models_hint),
                    html! { textarea #instance-models name="models" rows="3" required spellcheck="false" aria-describedby="instance-models-hint" {} }))
                p data-error role="alert" {}
                div.row { button type="submit" { "Register instance" } }
            }
        }
    }
}

fn key_dialog() -> Markup {
    html! {
        dialog #new-instance aria-labelledby="new-instance-h" aria-describedby="new-instance-warning" {
            h2 #new-instance-h { "Copy your instance key" }
            p.notice.warn #new-instance-warning {
                strong { "This is the only time the key is shown." }
                " Start your server with it: the gateway sends it as the Bearer token and checks that a wrong key is refused. "
                "If you lose it, rotate it."
            }
            div.secret {
                code #new-instance-key {}
                button type="button" data-copy="#new-instance-key" { "Copy key" }
            }
            p { "Start the server with the key, for example:" }
            div.command { pre #start-vllm {} button.secondary type="button" data-copy="#start-vllm" aria-label="Copy the vLLM command" { "Copy" } }
            div.command { pre #start-llama {} button.secondary type="button" data-copy="#start-llama" aria-label="Copy the llama.cpp command" { "Copy" } }
            p.hint { "The gateway probes the Base URL you registered (the server's root, such as http://<your address>:8000/v1) and routes to it once the probe passes with this key." }
            p.hint { "Privacy: you, as the owner, can read the prompts sent to this instance; keep the server and its logs safe." }
            form method="dialog" { div.row { button type="submit" { "Done" } } }
        }
    }
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    let page = Page { limit: Some("100".to_owned()), before: None };
    let instances = match list(State(state.clone()), viewer.0.clone(), Query(page)).await {
        Ok(listed) => listed.0.data,
        Err(e) => return error_page(&viewer, Nav::Instances, e),
    };
    let config = state.config.load_full();
    let open_models: Vec<String> = config.models().filter(|m| m.instances).map(|m| m.id.clone()).collect();
    let share = percent(config.instances.owner_share_ppb);
    let body = html! {
        div.page-head {
            h1 { (Nav::Instances.title()) }
            a.button href="#register-h" { "Register an instance" }
        }
        p.muted {
            "Contribute your own model server (vLLM, SGLang, llama.cpp, Ollama, TGI — anything OpenAI-compatible). "
            "Once its probe passes it serves the catalog models you list, and you earn " (share) "% of what consumers pay for each request it answers."
        }
        (privacy_note())
        @if instances.is_empty() {
            div.panel.empty {
                p { strong { "No instances yet." } }
                p.muted { "Register your first server below." }
            }
        } @else {
            div.table-wrap {
                table.responsive #instances {
                    caption.sr-only { "Your instances, newest first" }
                    thead {
                        tr {
                            th { "Instance" } th { "Status" } th { "Models" } th.num { "Latency" } th { "Last probe" }
                            th.num { "Requests 24 h" } th.num { "Tokens 24 h" } th.num { "Earnings 24 h" } th.num { "Uptime 24 h" }
                            th { span.sr-only { "Actions" } }
                        }
                    }
                    tbody { @for instance in &instances { (row(instance)) } }
                }
            }
        }
        (register_form(&open_models))
        (key_dialog())
    };
    layout::shell_with(&viewer, Nav::Instances, SCRIPTS, body).into_response()
}

/// Earnings and requests per UTC day for the last `days.len()` days, oldest first: the
/// store counts from a moment on, so each day is the difference of two such counts.
async fn per_day(state: &AppState, id: &str, days: usize) -> Result<(Vec<i64>, Vec<i64>), crate::error::ApiError> {
    let now = tokenrouter_core::clock::now_unix();
    let today = now - now.rem_euclid(DAY);
    let mut since_each = Vec::with_capacity(days);
    for back in (0..days).rev() {
        let start = today - i64::try_from(back).unwrap_or(0) * DAY;
        since_each.push(state.db.instance_stats(id, start).await.map_err(store_error)?);
    }
    let mut earnings = Vec::with_capacity(days);
    let mut requests = Vec::with_capacity(days);
    for (i, from) in since_each.iter().enumerate() {
        let (next_earnings, next_requests) = since_each.get(i + 1).map_or((0, 0), |n| (n.earnings.0, n.requests));
        earnings.push(from.earnings.0 - next_earnings);
        requests.push(from.requests - next_requests);
    }
    Ok((earnings, requests))
}

pub async fn detail(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let instance = match get(State(state.clone()), viewer.0.clone(), Path(id)).await {
        Ok(instance) => instance.0,
        Err(e) => return error_page(&viewer, Nav::Instances, e),
    };
    let days = last_days(30);
    let (earnings, requests) = match per_day(&state, &instance.id, days.len()).await {
        Ok(series) => series,
        Err(e) => return error_page(&viewer, Nav::Instances, e),
    };
    let short_days: Vec<String> = days.iter().map(|d| d.get(5..).unwrap_or(d).to_owned()).collect();
    let total: i64 = earnings.iter().sum();
    let earnings_chart = chart::bars(
        &short_days,
        &[Series { name: "Earnings", class: "bar1", values: earnings }],
        &|n| usd(&NanoUsd(n).to_decimal_string()),
        "Earnings per day, last 30 days",
    );
    let requests_chart = chart::bars(
        &short_days,
        &[Series { name: "Requests", class: "bar2", values: requests }],
        &count,
        "Requests per day, last 30 days",
    );
    let stats = &instance.stats;
    let body = html! {
        p { a href="/dashboard/instances" { "← All instances" } }
        div.page-head {
            h1 { (instance.name) }
            (actions(&instance))
        }
        section.panel aria-labelledby="status-h" {
            h2 #status-h { "Status" }
            dl.facts #instance-facts {
                dt { "Status" } dd { (badge(&instance)) @if !instance.status_detail.is_empty() { " " span.detail { (instance.status_detail) } } }
                dt { "Enabled" } dd { @if instance.enabled { "yes" } @else { "no (disabled by you)" } }
                dt { "Base URL" } dd { code { (instance.base_url) } }
                dt { "Region" } dd { (instance.region.as_deref().unwrap_or("—")) }
                dt { "Models" } dd { (model_list(&instance)) }
                dt { "Latency" } dd { (latency(instance.latency_ms)) }
                dt { "Last probe" } dd { (when(instance.last_probe_at.as_deref())) }
                dt { "Registered" } dd { (when(instance.created_at.as_deref())) }
                dt { "Id" } dd { code { (instance.id) } }
            }
        }
        div.cards {
            div.card { div.label { "Requests, 24 h" } div.value #instance-requests { (count(stats.requests)) } }
            div.card {
                div.label { "Tokens, 24 h" }
                div.value { (count(stats.prompt_tokens + stats.completion_tokens)) }
                div.sub { (count(stats.prompt_tokens)) " prompt, " (count(stats.completion_tokens)) " completion" }
            }
            div.card { div.label { "Earnings, 24 h" } div.value #instance-earnings { (usd(&stats.earnings_usd)) } }
            div.card { div.label { "Uptime, 24 h" } div.value { (uptime(stats.uptime_24h)) } div.sub { "share of probes online" } }
        }
        section.panel aria-labelledby="earnings-h" {
            h2 #earnings-h { "Earnings per day" }
            p.hint { "Last 30 days (UTC): " (usd(&NanoUsd(total).to_decimal_string())) " in all." }
            (earnings_chart)
        }
        section.panel aria-labelledby="requests-h" {
            h2 #requests-h { "Requests per day" }
            (requests_chart)
        }
        (inventory::units(&instance))
        (inventory::software(&instance))
        (privacy_note())
        (key_dialog())
    };
    layout::shell_with(&viewer, Nav::Instances, SCRIPTS, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_read_as_percentages() {
        assert_eq!(percent(800_000_000), "80");
        assert_eq!(percent(1_000_000_000), "100");
        assert_eq!(percent(333_333_333), "33.3333333");
        assert_eq!(percent(0), "0");
        assert_eq!(uptime(Some(0.5)), "50.0%");
        assert_eq!(uptime(None), "—");
    }
}
