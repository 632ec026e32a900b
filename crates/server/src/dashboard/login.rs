//! `GET /login`: where sign-in starts (GitHub, when configured; one-time links), and where
//! a refused sign-in says why. Someone already signed in goes straight on.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout;
use crate::auth;
use crate::routes::safe_next;
use crate::signin;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct LoginQuery {
    error: Option<String>,
    next: Option<String>,
}

/// Why a sign-in was refused, in words a person can act on.
fn reason(code: &str) -> &'static str {
    match code {
        "link_invalid" => {
            "This sign-in link is not valid: it was already used, has expired, or was mistyped. Ask for a new one (tokenrouter accounts login-link NAME)."
        }
        "unavailable" => "The gateway could not reach its database to sign you in. Try again in a moment.",
        "state_invalid" => "The sign-in took too long or did not start here. Start again.",
        "access_denied" => "GitHub did not grant access, so you are not signed in.",
        "code_invalid" => "GitHub refused the sign-in code (it was already used or expired). Start again.",
        "github_failed" => "GitHub could not be reached or answered unexpectedly. Try again in a moment.",
        "github_disabled" => "Signing in with GitHub is not set up on this gateway.",
        "signup_closed" => "This gateway does not accept new accounts. Ask its administrator for access.",
        "login_not_allowed" => "Your GitHub account is not allowed to sign in here. Ask the gateway's administrator.",
        "account_disabled" => "Your account is disabled. Ask the gateway's administrator.",
        _ => "Sign-in failed. Try again.",
    }
}

pub async fn page(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
    headers: http::HeaderMap,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if query.error.is_none()
        && let Some(token) = signin::session_token(&headers)
    {
        let now = tokenrouter_core::clock::now_unix();
        if let Ok(Some(_)) = state.db.session_account(&auth::hash_secret(token), now).await {
            return signin::found(&next, &[]);
        }
    }
    let github = state.config.load().auth.github.is_some();
    let github_href = format!("/auth/github/login?next={}", tokenrouter_core::form::form_encode(&next));
    let body = html! {
        h1 { "Sign in" }
        @if let Some(code) = &query.error {
            p.notice.error role="alert" { (reason(code)) }
        }
        @if github {
            p { a.button href=(github_href) { "Sign in with GitHub" } }
            p.hint { "Token Router reads your GitHub name, avatar and email address; it cannot see your repositories." }
        }
        h2 { "Have a sign-in link?" }
        p.muted {
            "An administrator can give you a one-time link ("
            code { "tokenrouter accounts login-link NAME" }
            "). Open it in this browser to sign in; it works once and expires."
        }
    };
    layout::bare("Sign in", body).into_response()
}
