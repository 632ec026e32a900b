//! `GET /dashboard/models[?q=]`: the live catalog as `/api/models` answers it (context
//! window, output limit, prices per 1M tokens, capabilities, online or offline), searched
//! on the server so the page needs no script.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::Viewer;
use super::layout::{self, Nav, count, usd};
use crate::routes::account::models;
use crate::routes::api_types::ModelEntry;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct Search {
    q: Option<String>,
}

/// The catalog `/api/models` shows this viewer.
pub async fn catalog(state: &AppState, viewer: &Viewer) -> Vec<ModelEntry> {
    models(State(state.clone()), viewer.0.clone()).await.0.data
}

/// A chat model: neither an embedding model nor a legacy completions-only one.
pub fn is_chat(model: &ModelEntry) -> bool {
    !model.capabilities.iter().any(|c| c == "embeddings" || c == "completions")
}

/// Whether `model` matches every word of `query` (in its id, owner or capabilities).
fn matches(model: &ModelEntry, query: &str) -> bool {
    let haystack = format!(
        "{} {} {} {}",
        model.id,
        model.owned_by.as_deref().unwrap_or_default(),
        model.capabilities.join(" "),
        model.status
    )
    .to_lowercase();
    query.to_lowercase().split_whitespace().all(|word| haystack.contains(word))
}

fn tokens(n: u64) -> String {
    count(i64::try_from(n).unwrap_or(i64::MAX))
}

pub async fn page(State(state): State<AppState>, viewer: Viewer, Query(search): Query<Search>) -> Response {
    let all = catalog(&state, &viewer).await;
    let query = search.q.unwrap_or_default();
    let query = query.trim();
    let shown: Vec<&ModelEntry> = all.iter().filter(|m| matches(m, query)).collect();
    let online = all.iter().filter(|m| m.status == "online").count();
    // How many online community instances serve each model: the routing table's count.
    let table = state.instances.load_full();
    let body = html! {
        h1 { "Models" }
        p.muted {
            (all.len()) " models, " (online) " online now. Prices are USD per 1M tokens. "
            "Use them with any key from " a href="/dashboard/keys" { "API keys" } ", or try one in the "
            a href="/dashboard/playground" { "playground" } "."
        }
        form.filters method="get" action="/dashboard/models" role="search" {
            label {
                "Search models"
                input type="search" name="q" value=(query) placeholder="id, provider or capability" autocomplete="off";
            }
            button type="submit" { "Search" }
            @if !query.is_empty() {
                a.button.secondary href="/dashboard/models" { "Clear" }
            }
        }
        @if shown.is_empty() {
            p.notice #models-empty {
                @if all.is_empty() { "No model is configured on this gateway yet." }
                @else { "No model matches “" (query) "”." }
            }
        } @else {
            div.table-wrap {
                table #models {
                    caption.sr-only { "Models of the catalog" }
                    thead {
                        tr {
                            th scope="col" { "Model" }
                            th scope="col" { "Provider" }
                            th.num scope="col" { "Context" }
                            th.num scope="col" { "Max output" }
                            th.num scope="col" { "Input" }
                            th.num scope="col" { "Cached input" }
                            th.num scope="col" { "Output" }
                            th scope="col" { "Capabilities" }
                            th scope="col" { "Status" }
                            th.num scope="col" { "Deployments" }
                            th.num scope="col" { "Instances" }
                        }
                    }
                    tbody {
                        @for m in &shown {
                            tr data-model-id=(m.id) {
                                th scope="row" { code { (m.id) } }
                                td { (m.owned_by.as_deref().unwrap_or("—")) }
                                td.num { (tokens(m.context_window)) }
                                td.num { (tokens(m.max_output_tokens)) }
                                td.num { (usd(&m.pricing.input_usd_per_mtok)) }
                                td.num { (usd(&m.pricing.cached_input_usd_per_mtok)) }
                                td.num { (usd(&m.pricing.output_usd_per_mtok)) }
                                td.wrap {
                                    @if m.capabilities.is_empty() { span.muted { "chat" } }
                                    @for cap in &m.capabilities { span.badge { (cap) } " " }
                                }
                                td {
                                    @if m.status == "online" { span.badge.good { "online" } }
                                    @else { span.badge.bad { "offline" } }
                                }
                                td.num { (m.deployments) }
                                td.num.instances { (table.instances_serving(&m.id)) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::shell(&viewer, Nav::Models, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::api_types::ModelPricing;

    fn entry(id: &str, caps: &[&str]) -> ModelEntry {
        ModelEntry {
            id: id.to_owned(),
            owned_by: Some("mock".to_owned()),
            context_window: 128_000,
            max_output_tokens: 16_384,
            pricing: ModelPricing {
                input_usd_per_mtok: "0.15".to_owned(),
                cached_input_usd_per_mtok: "0.075".to_owned(),
                output_usd_per_mtok: "0.6".to_owned(),
            },
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            status: "online".to_owned(),
            deployments: 1,
        }
    }

    #[test]
    fn search_matches_every_word_in_id_provider_or_capabilities() {
        let m = entry("gpt-4o-mini", &["tools", "vision"]);
        assert!(matches(&m, ""));
        assert!(matches(&m, "GPT"));
        assert!(matches(&m, "mini tools"));
        assert!(matches(&m, "mock online"));
        assert!(!matches(&m, "mini embeddings"));
        assert!(is_chat(&m));
        assert!(!is_chat(&entry("text-embedding-3-small", &["embeddings"])));
        assert!(!is_chat(&entry("gpt-3.5-turbo-instruct", &["completions"])));
    }
}
