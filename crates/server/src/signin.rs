//! Who calls `/api/*`: a browser with a session cookie (server-side sessions; the cookie
//! holds only a random token, stored hashed) or a script with a management key. Changes
//! made with a cookie must come from the gateway's own origin (CSRF).

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method};
use tokenrouter_store::{Account, KeyScope};

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

pub const COOKIE: &str = "tr_session";

/// The account calling an `/api` route, and how it authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
    /// The session token's hash (cookie callers), to end it at logout.
    pub session: Option<[u8; 32]>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(token) = auth::bearer(&parts.headers) {
            let key = auth::authenticate(state, token).await?;
            if key.scope != KeyScope::Management {
                return Err(ApiError::Forbidden(
                    "This is an inference key: it works on /v1/*. Management routes need a session or a key created with scope \"management\".".to_owned(),
                ));
            }
            if !key.ips.is_empty() {
                state.allowlists.check(&key, crate::policy::client_of(parts, state))?;
            }
            let account = state.db.account_by_id(key.account_id).await.map_err(store_error)?;
            return match account {
                Some(account) if account.disabled_at.is_none() => Ok(Caller { account, session: None }),
                _ => Err(ApiError::Unauthorized("Incorrect API key provided.")),
            };
        }
        let token = session_token(&parts.headers)
            .ok_or(ApiError::NotSignedIn("Sign in first (a session cookie or a management key is required)."))?;
        let hash = auth::hash_secret(token);
        let now = tokenrouter_core::clock::now_unix();
        let account = state.db.session_account(&hash, now).await.map_err(store_error)?;
        let account = account.ok_or(ApiError::NotSignedIn("Your session has ended; sign in again."))?;
        if changes_state(&parts.method) {
            let origin = state.config.load().server.public_origin();
            if !same_origin(&parts.headers, &origin) {
                return Err(ApiError::CsrfFailed);
            }
        }
        Ok(Caller { account, session: Some(hash) })
    }
}

pub fn store_error(e: tokenrouter_store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "could not read a session or account");
    ApiError::StoreUnavailable
}

fn changes_state(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PATCH | Method::DELETE | Method::PUT)
}

/// The `tr_session` cookie's value.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, COOKIE)
}

/// The value of the cookie `name` the request carries (empty counts as absent).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// `302 Found` to a path of this gateway, setting `cookies`.
pub fn found(location: &str, cookies: &[String]) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = (http::StatusCode::FOUND, [(http::header::LOCATION, location.to_owned())]).into_response();
    for cookie in cookies {
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append(http::header::SET_COOKIE, value);
        }
    }
    response
}

/// Whether `Origin` (or, without one, `Referer`) is the gateway's own origin.
pub fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    match header(http::header::ORIGIN) {
        Some(sent) => sent.eq_ignore_ascii_case(origin),
        None => header(http::header::REFERER).is_some_and(|referer| {
            referer.len() > origin.len()
                && referer[..origin.len()].eq_ignore_ascii_case(origin)
                && referer.as_bytes()[origin.len()] == b'/'
        }),
    }
}

/// The `Set-Cookie` value of a new session (`Secure` when the public origin is https).
pub fn session_cookie(token: &str, origin: &str, ttl_secs: u64) -> String {
    let secure = if origin.starts_with("https://") { "; Secure" } else { "" };
    format!("{COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={ttl_secs}{secure}")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie(origin: &str) -> String {
    let secure = if origin.starts_with("https://") { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}")
}

/// Starts a session for the account: a fresh token (never one the browser brought), stored
/// hashed; the `Set-Cookie` value to send.
pub async fn start_session(state: &AppState, account_id: i64) -> Result<String, ApiError> {
    let token = auth::random_token().map_err(|e| ApiError::Internal(format!("no randomness available: {e}")))?;
    let now = tokenrouter_core::clock::now_unix();
    let config = state.config.load();
    let ttl = config.auth.session_ttl_secs;
    let expires_at = now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
    state.db.create_session(&auth::hash_secret(&token), account_id, now, expires_at).await.map_err(store_error)?;
    Ok(session_cookie(&token, &config.server.public_origin(), ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_origin_must_be_the_gateways_own() {
        let own = "https://gw.example.com";
        assert!(same_origin(&headers(&[("origin", "https://gw.example.com")]), own));
        assert!(!same_origin(&headers(&[("origin", "https://gw.example.com.evil.io")]), own));
        assert!(!same_origin(&headers(&[("origin", "null")]), own));
        assert!(same_origin(&headers(&[("referer", "https://gw.example.com/dashboard/keys")]), own));
        assert!(!same_origin(&headers(&[("referer", "https://gw.example.com.evil.io/")]), own));
        assert!(!same_origin(&headers(&[("referer", "https://gw.example.com")]), own));
        // Origin wins over Referer.
        assert!(!same_origin(&headers(&[("origin", "https://evil.io"), ("referer", "https://gw.example.com/")]), own));
        assert!(!same_origin(&headers(&[]), own));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; tr_session=abc ; b=2")]);
        assert_eq!(session_token(&h), Some("abc"));
        assert_eq!(session_token(&headers(&[("cookie", "tr_session=")])), None);
        assert_eq!(session_token(&headers(&[("cookie", "xtr_session=abc")])), None);
        assert!(session_cookie("t", "https://x", 60).ends_with("Max-Age=60; Secure"));
        assert!(!session_cookie("t", "http://x", 60).contains("Secure"));
    }
}
