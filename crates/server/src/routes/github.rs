//! Signing in with GitHub (the OAuth web flow): a random, single-use `state` bound to the
//! browser by a short-lived cookie; the code exchanged with `Accept: application/json`
//! (GitHub reports a bad code with HTTP 200 and an `error` field, so that is read first);
//! `/user`, and `/user/emails` when the address is private. Accounts are found by GitHub's
//! numeric id — never by login, which its owner can change and someone else then take.
//! Every refusal ends at `/login?error=CODE`, with no session.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokenrouter_core::form::{form_decode, form_encode};
use tokenrouter_store::GithubProfile;

use crate::auth;
use crate::config::GithubConfig;
use crate::policy::ClientAddr;
use crate::signin;
use crate::state::AppState;
use crate::upstream::UpstreamClient;

const STATE_COOKIE: &str = "tr_oauth";
/// How long the browser has to come back from GitHub.
const STATE_TTL_SECS: u32 = 600;
const GITHUB_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer from GitHub that is read.
const MAX_ANSWER: usize = 256 * 1024;

fn state_cookie(value: &str, origin: &str, max_age: u32) -> String {
    let secure = if origin.starts_with("https://") { "; Secure" } else { "" };
    format!("{STATE_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/auth/github; Max-Age={max_age}{secure}")
}

/// Where to go after signing in: a path on this gateway, else `/dashboard`. Refuses
/// `//host`, `/\\host`, schemes and anything with control characters (open redirects).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && path.len() <= 512
                && path.chars().all(|c| !c.is_control() && c != '\\') =>
        {
            path.to_owned()
        }
        _ => "/dashboard".to_owned(),
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /auth/github/login[?next=/dashboard/…]`.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Query(query): Query<LoginQuery>,
) -> Response {
    if let Err(e) = state.abuse.sign_in.check(&state.limits, client).await {
        return e.into_response();
    }
    let config = state.config.load();
    let Some(github) = &config.auth.github else {
        return signin::found("/login?error=github_disabled", &[]);
    };
    let Ok(nonce) = auth::random_token() else {
        return signin::found("/login?error=unavailable", &[]);
    };
    let origin = config.server.public_origin();
    let next = safe_next(query.next.as_deref());
    let cookie = state_cookie(&format!("{nonce}.{}", form_encode(&next)), &origin, STATE_TTL_SECS);
    let target = format!(
        "{}/login/oauth/authorize?client_id={}&redirect_uri={}&scope={}&state={nonce}",
        github.base_url,
        form_encode(&github.client_id),
        form_encode(&format!("{origin}/auth/github/callback")),
        form_encode("read:user user:email"),
    );
    signin::found(&target, &[cookie])
}

/// The state cookie's nonce and `next`.
fn state_from_cookie(headers: &HeaderMap) -> Option<(String, String)> {
    let value = signin::cookie(headers, STATE_COOKIE)?;
    let (nonce, next) = value.split_once('.')?;
    let next = form_decode(&format!("n={next}")).remove("n").unwrap_or_default();
    Some((nonce.to_owned(), safe_next(Some(&next))))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/github/callback?code&state`.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let config = state.config.load_full();
    let origin = config.server.public_origin();
    // The state is single-use: the cookie goes whatever happens next.
    let cleared = state_cookie("", &origin, 0);
    let refuse = |code: &str| signin::found(&format!("/login?error={code}"), std::slice::from_ref(&cleared));
    let Some(github) = &config.auth.github else {
        return refuse("github_disabled");
    };
    let Some((nonce, next)) = state_from_cookie(&headers) else {
        return refuse("state_invalid");
    };
    let sent = query.state.unwrap_or_default();
    if sent.len() != nonce.len() || !bool::from(sent.as_bytes().ct_eq(nonce.as_bytes())) {
        return refuse("state_invalid");
    }
    if query.error.is_some() {
        return refuse("access_denied");
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 256) else {
        return refuse("code_invalid");
    };
    let profile = match fetch_profile(&state.upstream, github, &code, &origin).await {
        Ok(profile) => profile,
        Err(reason) => return refuse(reason),
    };
    let login = profile.login.to_ascii_lowercase();
    if !github.allowed_logins.is_empty() && !github.allowed_logins.contains(&login) {
        return refuse("login_not_allowed");
    }
    let admin = github.admins.contains(&login);
    let account = match state.db.account_by_github_id(profile.id).await {
        Ok(Some(account)) if account.disabled_at.is_some() => return refuse("account_disabled"),
        Ok(Some(account)) => state.db.update_github_profile(account.id, &profile, admin).await,
        Ok(None) if !github.signup_open => return refuse("signup_closed"),
        Ok(None) => state.db.create_github_account(&profile, admin).await,
        Err(e) => Err(e),
    };
    let account = match account {
        Ok(account) => account,
        Err(e) => {
            tracing::warn!(error = %e, "could not find or create the account of a GitHub sign-in");
            return refuse("unavailable");
        }
    };
    match signin::start_session(&state, account.id).await {
        Ok(session) => {
            tracing::info!(account = account.id, github_id = profile.id, "signed in with GitHub");
            signin::found(&next, &[cleared, session])
        }
        Err(_) => refuse("unavailable"),
    }
}

/// Exchanges the code and reads who signed in; the refusal code on failure. Neither the
/// code nor the access token is ever logged.
async fn fetch_profile(
    client: &UpstreamClient,
    github: &GithubConfig,
    code: &str,
    origin: &str,
) -> Result<GithubProfile, &'static str> {
    let form = format!(
        "client_id={}&client_secret={}&code={}&redirect_uri={}",
        form_encode(&github.client_id),
        form_encode(&github.client_secret),
        form_encode(code),
        form_encode(&format!("{origin}/auth/github/callback")),
    );
    let exchange = Request::post(format!("{}/login/oauth/access_token", github.base_url))
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::USER_AGENT, "tokenrouter")
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| failed("token exchange", &e))?;
    let (status, body) =
        client.exchange(exchange, GITHUB_TIMEOUT, MAX_ANSWER).await.map_err(|e| failed("token exchange", &e))?;
    let answer: Value =
        serde_json::from_slice(&body).map_err(|_| failed("token exchange", &format!("HTTP {status}, not JSON")))?;
    if let Some(error) = answer.get("error").and_then(Value::as_str) {
        // GitHub's documented errors; the code is single-use and short-lived.
        return Err(match error {
            "bad_verification_code" => "code_invalid",
            _ => failed("token exchange", &format!("error '{}'", error.chars().take(64).collect::<String>())),
        });
    }
    let token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= 512)
        .ok_or_else(|| failed("token exchange", &format!("HTTP {status} without an access_token")))?;
    let api = |path: &str| {
        Request::get(format!("{}{path}", github.api_base_url))
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header(http::header::USER_AGENT, "tokenrouter")
            .header("x-github-api-version", "2022-11-28")
            .body(Full::new(Bytes::new()))
    };
    let request = api("/user").map_err(|e| failed("/user", &e))?;
    let (status, body) = client.exchange(request, GITHUB_TIMEOUT, MAX_ANSWER).await.map_err(|e| failed("/user", &e))?;
    if !status.is_success() {
        return Err(failed("/user", &format!("HTTP {status}")));
    }
    let user: Value = serde_json::from_slice(&body).map_err(|_| failed("/user", &"not JSON"))?;
    let text = |field: &str, max: usize| {
        user.get(field)
            .and_then(Value::as_str)
            .map(|s| s.chars().take(max).collect::<String>())
            .filter(|s| !s.is_empty())
    };
    let id =
        user.get("id").and_then(Value::as_i64).filter(|id| *id > 0).ok_or_else(|| failed("/user", &"no numeric id"))?;
    let login = text("login", 100).ok_or_else(|| failed("/user", &"no login"))?;
    let mut email = text("email", 320);
    if email.is_none() {
        // A private address: the primary, verified one (a failure here costs only the address).
        if let Ok(request) = api("/user/emails")
            && let Ok((status, body)) = client.exchange(request, GITHUB_TIMEOUT, MAX_ANSWER).await
            && status.is_success()
            && let Ok(Value::Array(emails)) = serde_json::from_slice::<Value>(&body)
        {
            email = emails
                .iter()
                .find(|e| e["primary"] == true && e["verified"] == true)
                .and_then(|e| e["email"].as_str())
                .map(|e| e.chars().take(320).collect());
        }
    }
    Ok(GithubProfile { id, login, name: text("name", 200), avatar_url: text("avatar_url", 500), email })
}

fn failed(step: &str, why: &dyn std::fmt::Display) -> &'static str {
    tracing::warn!(step, reason = %why, "GitHub sign-in failed");
    "github_failed"
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_a_path_on_this_gateway_or_the_dashboard() {
        assert_eq!(safe_next(Some("/dashboard/keys?x=1")), "/dashboard/keys?x=1");
        for evil in ["//evil.example", "/\\evil.example", "https://evil.example", "evil", "/\\/x", "/a\nb", ""] {
            assert_eq!(safe_next(Some(evil)), "/dashboard", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/dashboard");
    }
}
