//! The dashboard's frame: what every page shares — the session check, the security and
//! cache headers, the embedded assets, the sign-in page, and `GET /` for browsers.

use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, LOCATION};

use crate::harness::Gateway;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

const PAGES: [&str; 11] = [
    "/dashboard",
    "/dashboard/keys",
    "/dashboard/usage",
    "/dashboard/requests",
    "/dashboard/models",
    "/dashboard/instances",
    "/dashboard/balance",
    "/dashboard/connect",
    "/dashboard/playground",
    "/dashboard/admin",
    "/login",
];

#[tokio::test]
async fn pages_need_a_session_and_send_the_browser_to_sign_in_and_back() {
    let gw = Gateway::start().await;
    let http = no_redirects();
    for page in &PAGES[..10] {
        for cookie in ["", "tr_session=forged"] {
            let response = http.get(format!("{}{page}?x=1", gw.url)).header(COOKIE, cookie).send().await.unwrap();
            assert_eq!(response.status(), 302, "{page}");
            let expected = format!("/login?next={}", tokenrouter_core::form::form_encode(&format!("{page}?x=1")));
            assert_eq!(response.headers()[LOCATION], expected.as_str());
        }
    }
    // Someone signed in who opens /login goes on to `next` (a path here, never elsewhere).
    let cookie = gw.session(gw.account_id).await;
    for (next, expected) in [
        ("/dashboard/keys", "/dashboard/keys"),
        ("https://evil.example/", "/dashboard"),
        ("//evil.example", "/dashboard"),
    ] {
        let url = format!("{}/login?next={}", gw.url, tokenrouter_core::form::form_encode(next));
        let response = http.get(url).header(COOKIE, &cookie).send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()[LOCATION], expected);
    }
}

#[tokio::test]
async fn every_page_forbids_other_origins_inline_script_framing_and_caching() {
    let gw = Gateway::start().await;
    let cookie = gw.session(gw.account_id).await;
    let http = no_redirects();
    for page in PAGES {
        // Someone signed in who opens /login goes on; the page itself is for everyone else.
        let cookie = if page == "/login" { "" } else { cookie.as_str() };
        let response = http.get(format!("{}{page}", gw.url)).header(COOKIE, cookie).send().await.unwrap();
        // The harness's account is not an admin: the admin page refuses it, readably.
        let expected = if page == "/dashboard/admin" { 403 } else { 200 };
        assert_eq!(response.status(), expected, "{page}");
        let headers = response.headers().clone();
        let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"] {
            assert!(csp.contains(directive), "{page}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "same-origin");
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = response.text().await.unwrap();
        // No inline script, no inline style, no handler attribute, nothing from elsewhere.
        assert!(!html.contains("<script>") && !html.contains(" style=") && !html.contains(" onclick="), "{page}");
        for attr in ["src=\"", "href=\""] {
            for (i, _) in html.match_indices(attr) {
                let value = &html[i + attr.len()..];
                assert!(
                    !value.starts_with("http") && !value.starts_with("//"),
                    "{page} links to another origin: {}",
                    &value[..value.find('"').unwrap_or(40).min(80)]
                );
            }
        }
    }
}

#[tokio::test]
async fn assets_are_embedded_and_cached_forever_under_hashed_names() {
    let gw = Gateway::start().await;
    let cookie = gw.session(gw.account_id).await;
    let html = gw.http.get(format!("{}/dashboard", gw.url)).header(COOKIE, &cookie).send().await.unwrap();
    let html = html.text().await.unwrap();
    let assets: Vec<&str> = html
        .match_indices("\"/assets/")
        .map(|(i, _)| {
            let rest = &html[i + 1..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert!(assets.len() >= 3, "{assets:?}");
    for path in &assets {
        let response = gw.http.get(format!("{}{path}", gw.url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()[CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(!response.bytes().await.unwrap().is_empty());
    }
    // An unhashed or unknown name is not served (it could not be cached safely).
    for path in ["/assets/app.css", "/assets/..%2fCargo.toml", "/assets/nope.0123456789ab.js"] {
        let response = gw.http.get(format!("{}{path}", gw.url)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn the_root_is_a_health_check_for_machines_and_the_dashboard_for_browsers() {
    let gw = Gateway::start().await;
    let http = no_redirects();
    let machine = http.get(format!("{}/", gw.url)).send().await.unwrap();
    assert_eq!(machine.status(), 200);
    assert_eq!(machine.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"status": "ok"}));
    let browser = http
        .get(format!("{}/", gw.url))
        .header(ACCEPT, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 302);
    assert_eq!(browser.headers()[LOCATION], "/dashboard");
}

#[tokio::test]
async fn the_sign_in_page_explains_refusals_and_offers_github_only_when_configured() {
    let gw = Gateway::start().await;
    let page = gw.http.get(format!("{}/login?error=link_invalid", gw.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("role=\"alert\"") && html.contains("already used"), "{html}");
    assert!(!html.contains("Sign in with GitHub"));
    assert!(html.contains("login-link"));
    // An unknown code still reads as a sentence, and nothing from the address is echoed.
    let html = gw.http.get(format!("{}/login?error=%3Cscript%3E", gw.url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Sign-in failed") && !html.contains("<script>"));

    let github = r#"
[auth.github]
client_id = "Iv1.test"
client_secret = "shh"
base_url = "http://127.0.0.1:9"
api_base_url = "http://127.0.0.1:9"
"#;
    let gw = Gateway::start_with(Default::default(), github).await;
    let html = gw.http.get(format!("{}/login?next=%2Fdashboard%2Fusage", gw.url)).send().await.unwrap();
    let html = html.text().await.unwrap();
    assert!(html.contains("Sign in with GitHub"));
    assert!(html.contains("href=\"/auth/github/login?next=%2Fdashboard%2Fusage\""), "{html}");
}
