//! Paths → handlers, and the generic HTTP layers around them. Nothing else.

mod chat;
mod health;
mod models;
mod whoami;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(health::health))
        .route("/v1/models", get(models::list))
        .route("/v1/chat/completions", post(chat::completions))
        .route("/api/whoami", get(whoami::whoami))
        .fallback(health::unknown_route)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(axum::middleware::from_fn(crate::edge::stamp))
        .with_state(state)
}
