//! The web dashboard: server-rendered pages (maud, checked at compile time) under
//! `/dashboard` and `/login`, assets embedded in the binary under `/assets`, and small
//! scripts that call the management API. Pages read through the same handlers as
//! `/api/*`, so what a page shows equals what the API answers.

mod admin;
mod assets;
mod balance;
mod chart;
mod connect;
mod instances;
mod jobs;
mod keys;
mod layout;
mod login;
mod models;
mod overview;
mod playground;
mod requests;
mod usage;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};

use crate::auth;
use crate::error::ApiError;
use crate::signin::{self, Caller};
use crate::state::AppState;

pub use layout::Nav;

/// Allows scripts, styles, images and fetches from this origin only; no inline script,
/// no eval, no frames, no forms to elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/login", get(login::page))
        .route("/dashboard", get(overview::page))
        .route("/dashboard/", get(overview::page))
        .route("/dashboard/keys", get(keys::page))
        .route("/dashboard/usage", get(usage::page))
        .route("/dashboard/usage.csv", get(usage::csv))
        .route("/dashboard/requests", get(requests::page))
        .route("/dashboard/requests/{id}", get(requests::detail))
        .route("/dashboard/jobs", get(jobs::page))
        .route("/dashboard/jobs/{id}", get(jobs::detail))
        .route("/dashboard/models", get(models::page))
        .route("/dashboard/instances", get(instances::page))
        .route("/dashboard/instances/{id}", get(instances::detail))
        .route("/dashboard/balance", get(balance::page))
        .route("/dashboard/connect", get(connect::page))
        .route("/dashboard/playground", get(playground::page))
        .route("/dashboard/admin", get(admin::page))
        .layer(axum::middleware::from_fn(page_headers));
    Router::new()
        .merge(pages)
        .route("/assets/{file}", get(assets::serve))
        .route("/api/playground/chat/completions", post(playground::chat))
}

/// Security and cache headers on every page: pages are never cached (they show a
/// session's data), and nothing from another origin may load in them.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The signed-in person viewing a page. Without a live session the page is not
/// rendered: the browser goes to `/login?next=<this page>` instead.
pub struct Viewer(pub Caller);

impl Viewer {
    pub fn account(&self) -> &tokenrouter_store::Account {
        &self.0.account
    }

    pub fn is_admin(&self) -> bool {
        self.0.account.is_admin
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let to_login = || {
            let here = parts.uri.path_and_query().map_or("/dashboard", |p| p.as_str());
            signin::found(&format!("/login?next={}", tokenrouter_core::form::form_encode(here)), &[])
        };
        let Some(token) = signin::session_token(&parts.headers) else {
            return Err(to_login());
        };
        let now = tokenrouter_core::clock::now_unix();
        match state.db.session_account(&auth::hash_secret(token), now).await {
            Ok(Some(account)) => Ok(Viewer(Caller { account, session: Some(auth::hash_secret(token)) })),
            Ok(None) => Err(to_login()),
            Err(e) => Err(signin::store_error(e).into_response()),
        }
    }
}

/// An API error met while rendering a page, shown as a readable page (not JSON).
pub fn error_page(viewer: &Viewer, nav: Nav, error: ApiError) -> Response {
    let response = error.into_response();
    let status = response.status();
    let message = match status {
        StatusCode::NOT_FOUND => "There is nothing here, or it belongs to another account.".to_owned(),
        StatusCode::FORBIDDEN => "Your account may not open this page.".to_owned(),
        StatusCode::BAD_REQUEST => "The filters in the address are not valid.".to_owned(),
        _ => "The gateway could not load this page. Try again in a moment.".to_owned(),
    };
    let body = maud::html! {
        h1 { (nav.title()) }
        p.notice.error role="alert" { (message) }
    };
    (status, layout::shell(viewer, nav, body)).into_response()
}
