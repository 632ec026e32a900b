//! `GET /dashboard/playground` (chat with a model, streamed) and
//! `POST /api/playground/chat/completions`: a signed-in browser's chat runs the same
//! pipeline as `/v1/chat/completions`, through the account's own inference key named
//! "Dashboard playground" (created on first use with a secret nobody keeps), so its
//! limits apply and its requests and spend appear in the request log like any key's.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use maud::html;
use tokenrouter_store::{KeyRow, KeyScope, NewKey};

use super::Viewer;
use super::layout::{self, Nav};
use super::models::{catalog, is_chat};
use crate::auth;
use crate::edge::{RequestId, read_body};
use crate::error::ApiError;
use crate::pipeline::{self, Inference, Work};
use crate::policy::ClientAddr;
use crate::signin::Caller;
use crate::state::AppState;

/// The name of the key the playground spends through.
pub const KEY_NAME: &str = "Dashboard playground";

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    let all = catalog(&state, &viewer).await;
    let chat: Vec<_> = all.iter().filter(|m| is_chat(m) && m.status == "online").collect();
    let body = html! {
        h1 { "Playground" }
        p.muted {
            "Chat with a model of the catalog. Each turn is billed to your balance through your key “"
            (KEY_NAME) "” (created on first use): its limits apply, and its requests appear in the "
            a href="/dashboard/requests" { "request log" } ". A model that community instances serve may "
            "answer from one of them, and an instance's owner can read what is sent to it: to keep a "
            "conversation off instances, use a key created without community instances."
        }
        @if chat.is_empty() {
            p.notice.warn { "No chat model is online right now. See " a href="/dashboard/models" { "Models" } "." }
        }
        div #chat-log .chat-log aria-live="polite" aria-label="Conversation" {}
        form #playground .stack {
            div.grid2 {
                label {
                    "Model"
                    select name="model" required {
                        @for m in &chat {
                            option value=(m.id) { (m.id) }
                        }
                    }
                }
                label {
                    "Temperature"
                    input type="number" name="temperature" min="0" max="2" step="0.1" placeholder="model default" inputmode="decimal";
                }
                label {
                    "Max tokens"
                    input type="number" name="max_tokens" min="1" step="1" placeholder="model default" inputmode="numeric";
                }
            }
            label {
                "System prompt"
                textarea name="system" rows="2" placeholder="Optional instructions for the model" {}
            }
            label {
                "Message"
                textarea name="message" rows="3" required placeholder="Ask something (Ctrl+Enter sends)" {}
            }
            p data-error role="alert" {}
            div.row {
                button type="submit" disabled[chat.is_empty()] { "Send" }
                button.secondary type="button" data-new-chat { "New chat" }
            }
        }
        noscript { p.notice { "The playground needs JavaScript to stream answers." } }
    };
    layout::shell_with(&viewer, Nav::Playground, &["playground.js"], body).into_response()
}

/// `POST /api/playground/chat/completions`: an OpenAI chat body from a signed-in browser
/// (the session cookie, with this gateway's `Origin`), answered as `/v1/chat/completions`
/// answers it. A key — inference or management — gets 403: keys have `/v1` for this.
pub async fn chat(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if caller.session.is_none() {
        return ApiError::Forbidden(
            "The playground is for signed-in browsers. With a key, call /v1/chat/completions.".to_owned(),
        )
        .into_response();
    }
    let key = match playground_key(&state, caller.account.id).await {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let limit = state.config.load().server.max_body_bytes;
    let inference = async {
        if key.expires_at.is_some_and(|at| at <= tokenrouter_core::clock::now_unix()) {
            return Err(ApiError::Forbidden(format!(
                "Your key “{KEY_NAME}” has expired: change its expiry or revoke it on the API keys page."
            )));
        }
        state.allowlists.check(&key, client)?;
        Ok(Inference {
            endpoint: "chat.completions",
            body: read_body(body, &headers, limit).await?,
            view: None,
            work: Work::Chat,
            headers: Vec::new(),
            unseen_history: false,
        })
    }
    .await;
    // The browser's headers (its cookie above all) stay here: only the body goes on.
    pipeline::run(&state, "chat.completions", request_id, key, &HeaderMap::new(), inference).await
}

fn store_error(e: tokenrouter_store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "the playground could not reach the store");
    ApiError::StoreUnavailable
}

/// The account's live "Dashboard playground" inference key, created when it has none, as
/// the in-memory key snapshot holds it.
async fn playground_key(state: &AppState, account_id: i64) -> Result<Arc<KeyRow>, ApiError> {
    let keys = state.db.list_keys(account_id).await.map_err(store_error)?;
    let existing = keys
        .iter()
        .find(|k| k.name == KEY_NAME && k.revoked_at.is_none() && k.scope == KeyScope::Inference)
        .map(|k| k.id.clone());
    let id = match existing {
        Some(id) => id,
        None => create_key(state, account_id).await?,
    };
    if let Some(key) = state.keys.load().get(&id) {
        return Ok(key);
    }
    if let Err(e) = state.reload_keys_if_changed().await {
        tracing::warn!(error = %e, "could not reload keys for the playground");
    }
    state.keys.load().get(&id).ok_or(ApiError::StoreUnavailable)
}

/// Stores a new playground key; its secret is dropped at once (the gateway uses the key
/// by id, and nobody can present it).
async fn create_key(state: &AppState, account_id: i64) -> Result<String, ApiError> {
    let minted = auth::mint().map_err(|e| ApiError::Internal(format!("no randomness available: {e}")))?;
    let key = NewKey {
        id: minted.id.clone(),
        account_id,
        name: KEY_NAME.to_owned(),
        secret_hash: minted.hash,
        models: Vec::new(),
        ips: Vec::new(),
        rpm: None,
        tpm: None,
        spend_limit: None,
        expires_at: None,
        scope: KeyScope::Inference,
        community: true,
    };
    state.db.insert_key(&key).await.map_err(store_error)?;
    Ok(minted.id)
}
