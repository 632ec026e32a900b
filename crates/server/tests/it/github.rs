//! Signing in with GitHub end to end, against the project's fake GitHub on loopback:
//! accounts found by GitHub's numeric id (a renamed login keeps its account; an old login
//! on a new id gets a new one), the state bound to the browser, every GitHub failure a
//! clear refusal with no session, no open redirect, closed signup and allowed logins.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use tokenrouter_mock::MockConfig;
use tokenrouter_mock::github::{CLIENT_SECRET, FakeGithub, GithubFault, GithubUser};

use crate::harness::Gateway;

fn octocat(id: i64, login: &str) -> GithubUser {
    GithubUser {
        id,
        login: login.to_owned(),
        name: Some("The Octocat".to_owned()),
        email: None,
        primary_email: Some(format!("{login}@private.example")),
    }
}

async fn gateway(fake: &FakeGithub, extra: &str) -> Gateway {
    let url = fake.url();
    let toml = format!(
        "[auth.github]\nclient_id = \"test-client\"\nclient_secret = \"{CLIENT_SECRET}\"\nbase_url = \"{url}\"\napi_base_url = \"{url}\"\n{extra}\n"
    );
    Gateway::start_with(MockConfig::default(), &toml).await
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn cookies(response: &reqwest::Response) -> Vec<String> {
    response.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// The path and query of a URL on the gateway's public origin.
fn on_gateway(gw: &Gateway, url: &str) -> String {
    let origin = gw.state.config.load().server.public_origin();
    format!("{}{}", gw.url, url.strip_prefix(&origin).unwrap_or_else(|| panic!("{url} is not on {origin}")))
}

/// Starts a sign-in: the authorize URL and the state cookie (`tr_oauth=…`).
async fn start(gw: &Gateway, next: &str) -> (String, String) {
    let response = browser().get(format!("{}/auth/github/login?next={next}", gw.url)).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let state = cookies(&response).into_iter().find(|c| c.starts_with("tr_oauth=")).unwrap();
    assert!(state.contains("HttpOnly") && state.contains("SameSite=Lax"), "{state}");
    (location(&response), state.split(';').next().unwrap().to_owned())
}

/// The whole dance; where it ended and the session cookie, if one was set.
async fn sign_in(gw: &Gateway, next: &str) -> (String, Option<String>) {
    let (authorize, state) = start(gw, next).await;
    let back = browser().get(&authorize).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let callback = on_gateway(gw, &location(&back));
    finish(&callback, &state).await
}

async fn finish(callback: &str, state_cookie: &str) -> (String, Option<String>) {
    let response = browser().get(callback).header(COOKIE, state_cookie).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let session = cookies(&response)
        .into_iter()
        .find(|c| c.starts_with("tr_session=") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_owned());
    assert!(cookies(&response).iter().any(|c| c.starts_with("tr_oauth=;") && c.contains("Max-Age=0")), "state cleared");
    (location(&response), session)
}

async fn me(gw: &Gateway, session: &str) -> Value {
    gw.http.get(format!("{}/api/me", gw.url)).header(COOKIE, session).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn github_sign_in_finds_accounts_by_id_never_by_login() {
    let fake = FakeGithub::start().await.unwrap();
    let gw = gateway(&fake, "admins = [\"OctoCat\"]").await;
    fake.sign_in_as(octocat(583231, "octocat"));
    let (went, session) = sign_in(&gw, "/dashboard/keys").await;
    assert_eq!(went, "/dashboard/keys");
    let first = me(&gw, &session.unwrap()).await;
    assert_eq!(first["login"], "octocat");
    assert_eq!(first["name"], "The Octocat");
    assert_eq!(first["email"], "octocat@private.example", "the primary, verified address");
    assert_eq!(first["role"], "admin", "admins match logins case-insensitively");
    let origin = gw.state.config.load().server.public_origin();
    assert_eq!(fake.exchanges()[0], ("test-client".to_owned(), format!("{origin}/auth/github/callback")));

    // Renamed on GitHub: same account, new login.
    fake.sign_in_as(octocat(583231, "octo-renamed"));
    let (_, session) = sign_in(&gw, "/dashboard").await;
    let renamed = me(&gw, &session.unwrap()).await;
    assert_eq!((renamed["id"].clone(), renamed["login"].clone()), (first["id"].clone(), "octo-renamed".into()));

    // Someone else took the old login: a new account, never the old one.
    fake.sign_in_as(octocat(999, "octocat"));
    let (_, session) = sign_in(&gw, "/dashboard").await;
    let other = me(&gw, &session.unwrap()).await;
    assert_ne!(other["id"], first["id"]);
    assert_eq!(other["login"], "octocat");
    assert_eq!(other["role"], "admin");
    let names: Vec<String> = gw.db.list_accounts(10, None).await.unwrap().into_iter().map(|a| a.name).collect();
    assert!(names.contains(&"octocat-2".to_owned()), "{names:?}");

    // Open redirects: anything but a path here goes to the dashboard.
    for evil in ["//evil.example", "https://evil.example/", "/%5Cevil.example"] {
        let (went, _) = sign_in(&gw, evil).await;
        assert_eq!(went, "/dashboard", "{evil}");
    }
}

#[tokio::test]
async fn every_failed_sign_in_ends_on_the_login_page_with_no_session() {
    let fake = FakeGithub::start().await.unwrap();
    let gw = gateway(&fake, "").await;
    fake.sign_in_as(octocat(1, "mona"));

    // A state that is not this browser's, or no state cookie at all.
    let (authorize, state) = start(&gw, "/").await;
    let back = browser().get(&authorize).send().await.unwrap();
    let callback = on_gateway(&gw, &location(&back));
    let tampered = callback.replace("state=", "state=x");
    assert_eq!(finish(&tampered, &state).await, ("/login?error=state_invalid".to_owned(), None));
    let (other_authorize, other_state) = start(&gw, "/").await;
    drop(other_authorize);
    assert_eq!(finish(&callback, &other_state).await, ("/login?error=state_invalid".to_owned(), None));
    let bare = browser().get(&callback).send().await.unwrap();
    assert_eq!(location(&bare), "/login?error=state_invalid");

    // The right state works once; the code replayed with a fresh state is refused by GitHub.
    let (went, session) = finish(&callback, &state).await;
    assert_eq!(went, "/");
    assert!(session.is_some());
    let (_, fresh) = start(&gw, "/").await;
    let code = callback.split("code=").nth(1).unwrap().split('&').next().unwrap();
    let nonce = fresh.trim_start_matches("tr_oauth=").split('.').next().unwrap();
    let replay = format!("{}/auth/github/callback?code={code}&state={nonce}", gw.url);
    assert_eq!(finish(&replay, &fresh).await, ("/login?error=code_invalid".to_owned(), None));

    for (fault, code) in [
        (GithubFault::DenyConsent, "access_denied"),
        (GithubFault::TokenServerError, "github_failed"),
        (GithubFault::TokenNonsense, "github_failed"),
        (GithubFault::UserServerError, "github_failed"),
    ] {
        fake.fault(fault);
        assert_eq!(sign_in(&gw, "/").await, (format!("/login?error={code}"), None), "{fault:?}");
        let page = gw.http.get(format!("{}/login?error={code}", gw.url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("role=\"alert\""), "{code}: {page}");
    }
    fake.fault(GithubFault::None);
    assert_eq!(gw.db.list_accounts(10, None).await.unwrap().len(), 2, "acme and mona, nothing more");
}

#[tokio::test]
async fn closed_signup_and_allowed_logins_refuse_unknown_users() {
    let fake = FakeGithub::start().await.unwrap();
    let gw = gateway(&fake, "signup = \"closed\"").await;
    fake.sign_in_as(octocat(7, "stranger"));
    assert_eq!(sign_in(&gw, "/").await, ("/login?error=signup_closed".to_owned(), None));

    let gw = gateway(&fake, "allowed_logins = [\"friend\"]").await;
    assert_eq!(sign_in(&gw, "/").await, ("/login?error=login_not_allowed".to_owned(), None));
    fake.sign_in_as(octocat(8, "Friend"));
    let (went, session) = sign_in(&gw, "/").await;
    assert_eq!(went, "/");
    assert_eq!(me(&gw, &session.unwrap()).await["role"], "user");
}
