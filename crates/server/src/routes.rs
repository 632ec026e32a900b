//! Paths → handlers, and the generic HTTP layers around them. Nothing else.

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod api_body;
pub(crate) mod api_keys;
pub(crate) mod api_types;
pub(crate) mod chat;
mod completions;
mod embeddings;
mod gemini;
mod gemini_models;
pub(crate) mod github;
mod health;
pub(crate) mod instances;
pub(crate) mod inventory;
pub(crate) mod jobs;
mod messages;
mod metrics;
pub(crate) mod models;
mod openapi;
pub(crate) mod responses;
mod restated;
pub(crate) mod usage;
mod whoami;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub use github::safe_next;

/// The `key` query parameter of a Gemini route (how Google's REST examples pass the key).
pub fn gemini_key_param(query: Option<&str>) -> Option<&str> {
    gemini::query_param(query, "key").filter(|k| !k.is_empty())
}

pub use gemini::speaks_gemini;

/// What `[telemetry] metrics_listen` serves: `/metrics` alone.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics::scrape)).with_state(state)
}

pub fn router(state: AppState) -> Router {
    let anthropic = Router::new()
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .layer(axum::middleware::from_fn(messages::anthropic_errors));
    // google-genai 3 speaks `/v1` by default: `/v1/models` is Gemini's list for Google's
    // clients (told by their headers), OpenAI's for everyone else.
    let google = Router::new()
        .route("/v1beta/models", get(gemini::list_models))
        .route("/v1beta/models/{model_action}", get(gemini::get_model).post(gemini::action))
        .route("/v1/models", get(gemini::v1_list_models))
        .route("/v1/models/{model_action}", get(gemini::v1_get_model).post(gemini::action))
        .layer(axum::middleware::from_fn(gemini::google_errors));
    Router::new()
        .route("/", get(health::health))
        .route("/ready", get(health::ready))
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/completions", post(completions::create))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/responses", post(responses::create))
        .route("/v1/responses/{id}", get(responses::retrieve).delete(responses::delete))
        .route("/v1/responses/{id}/cancel", post(responses::cancel))
        .merge(anthropic)
        .merge(google)
        .route("/api/whoami", get(whoami::whoami))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/me", get(account::me))
        .route("/api/keys", get(api_keys::list).post(api_keys::create))
        .route("/api/keys/{id}", axum::routing::patch(api_keys::update).delete(api_keys::revoke))
        .route("/api/redeem", post(account::redeem))
        .route("/api/ledger", get(account::ledger))
        .route("/api/models", get(account::models))
        .route("/api/usage", get(usage::usage))
        .route("/api/requests", get(usage::requests))
        .route("/api/admin/accounts", get(admin::accounts))
        .route("/api/admin/accounts/{id}", axum::routing::patch(admin::update))
        .route("/api/admin/accounts/{id}/credit", post(admin::credit))
        .route("/api/admin/redemption-codes", post(admin::codes))
        .route("/api/admin/reload", post(admin::reload))
        .route("/api/instances", get(instances::list).post(instances::create))
        .route("/api/instances/{id}", get(instances::get).patch(instances::update).delete(instances::delete))
        .route("/api/instances/{id}/rotate-key", post(instances::rotate_key))
        .route("/api/instances/{id}/processing-units", get(inventory::list_units).post(inventory::add_unit))
        .route(
            "/api/instances/{id}/processing-units/{unit}",
            axum::routing::patch(inventory::update_unit).delete(inventory::delete_unit),
        )
        .route("/api/instances/{id}/software", get(inventory::list_software).post(inventory::add_software))
        .route(
            "/api/instances/{id}/software/{software}",
            axum::routing::patch(inventory::update_software).delete(inventory::delete_software),
        )
        .route("/api/jobs", get(jobs::list))
        .route("/api/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/api/admin/instances", get(instances::admin_list))
        .route("/api/admin/instances/{id}", axum::routing::patch(instances::admin_update))
        .route("/auth/link/{token}", get(account::link))
        .route("/auth/logout", post(account::logout))
        .route("/auth/github/login", get(github::login))
        .route("/auth/github/callback", get(github::callback))
        .route("/metrics", get(metrics::metrics))
        .merge(crate::dashboard::router())
        .fallback(health::unknown_route)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::edge::stamp))
        .with_state(state)
}
