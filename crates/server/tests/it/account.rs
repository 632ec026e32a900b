//! Signing in with a one-time link, the session cookie, CSRF, management keys against
//! inference keys, redemption codes and logout — over HTTP, as a browser and a script
//! would; links and codes minted by the CLI.

use std::path::Path;
use std::process::Command;

use reqwest::header::{COOKIE, ORIGIN, REFERER, SET_COOKIE};
use serde_json::{Value, json};
use tokenrouter_store::KeyScope;

use crate::harness::{Gateway, expect_error, key_for, user};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Runs the CLI on the gateway's database (a file next to the test's).
fn cli(db_url: &str, dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenrouter"))
        .current_dir(dir)
        .env_remove("TOKENROUTER_CONFIG")
        .env("RUST_LOG", "warn")
        .args(["--database", db_url])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Follows a sign-in link; the session cookie (`tr_session=…`) it set.
async fn sign_in(gw: &Gateway, link: &str) -> String {
    let path = link.split_once("/auth/link/").map(|(_, token)| format!("/auth/link/{token}")).unwrap();
    let response = no_redirects().get(format!("{}{path}", gw.url)).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "/dashboard");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert!(pair.starts_with("tr_session=") && pair.len() >= "tr_session=".len() + 43, "{pair}");
    pair
}

fn origin(gw: &Gateway) -> String {
    gw.state.config.load().server.public_origin()
}

async fn me(gw: &Gateway, cookie: &str) -> reqwest::Response {
    gw.http.get(format!("{}/api/me", gw.url)).header(COOKIE, cookie).send().await.unwrap()
}

#[tokio::test]
async fn a_login_link_signs_in_once_and_logout_ends_the_session() {
    let gw = Gateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = gw.db_url.clone();
    let link = cli(&db_url, dir.path(), &["accounts", "login-link", "acme", "--ttl", "60"]);
    let link = link.trim();
    assert!(link.starts_with("http://127.0.0.1:8080/auth/link/"), "{link}");
    let cookie = sign_in(&gw, link).await;

    // Used once: the second visit is refused with a reason and no session.
    let path = link.split_once("/auth/link/").map(|(_, token)| format!("/auth/link/{token}")).unwrap();
    let again = no_redirects().get(format!("{}{path}", gw.url)).send().await.unwrap();
    assert_eq!(again.headers()["location"], "/login?error=link_invalid");
    assert!(again.headers().get(SET_COOKIE).is_none());
    let page = gw.http.get(format!("{}/login?error=link_invalid", gw.url)).send().await.unwrap();
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert!(page.text().await.unwrap().contains("already used"));

    let me_answer = me(&gw, &cookie).await;
    assert_eq!(me_answer.status(), 200);
    let me_body: Value = me_answer.json().await.unwrap();
    assert_eq!(me_body["login"], "acme");
    assert_eq!(me_body["role"], "user");
    assert_eq!(me_body["balance_usd"], "100");
    assert_eq!(me_body["balance_nano_usd"], 100_000_000_000_i64);
    assert!(me_body["created_at"].as_str().unwrap().ends_with('Z'));

    // No cookie, a made-up cookie: not signed in.
    expect_error(gw.http.get(format!("{}/api/me", gw.url)).send().await.unwrap(), 401, "not_signed_in").await;
    expect_error(me(&gw, "tr_session=forged").await, 401, "not_signed_in").await;

    // Logout is a change: it needs the gateway's own origin too.
    let logout = || gw.http.post(format!("{}/auth/logout", gw.url)).header(COOKIE, &cookie);
    expect_error(logout().send().await.unwrap(), 403, "csrf_failed").await;
    let out = logout().header(ORIGIN, origin(&gw)).send().await.unwrap();
    assert_eq!(out.status(), 200);
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    expect_error(me(&gw, &cookie).await, 401, "not_signed_in").await;
}

#[tokio::test]
async fn changes_with_a_cookie_need_the_gateways_origin_and_codes_credit_once() {
    let gw = Gateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = gw.db_url.clone();
    let codes = cli(&db_url, dir.path(), &["codes", "create", "--amount", "2.5", "--count", "2"]);
    let codes: Vec<&str> = codes.lines().collect();
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert!(codes.iter().all(|c| c.starts_with("trc-") && c.len() == 28), "{codes:?}");
    let link = cli(&db_url, dir.path(), &["accounts", "login-link", "acme"]);
    let cookie = sign_in(&gw, link.trim()).await;

    let redeem = |code: &str| {
        gw.http.post(format!("{}/api/redeem", gw.url)).header(COOKIE, &cookie).json(&json!({"code": code}))
    };
    // No Origin or Referer, a foreign one, a look-alike: refused, nothing credited.
    expect_error(redeem(codes[0]).send().await.unwrap(), 403, "csrf_failed").await;
    expect_error(redeem(codes[0]).header(ORIGIN, "http://evil.example").send().await.unwrap(), 403, "csrf_failed")
        .await;
    let look_alike = format!("{}.evil.example/", origin(&gw));
    expect_error(redeem(codes[0]).header(REFERER, look_alike).send().await.unwrap(), 403, "csrf_failed").await;
    assert_eq!(gw.balance().await.to_decimal_string(), "100");

    let own = origin(&gw);
    let credited: Value = redeem(codes[0]).header(ORIGIN, &own).send().await.unwrap().json().await.unwrap();
    assert_eq!(credited, json!({"credited_usd": "2.5", "balance_usd": "102.5"}));
    let again = redeem(codes[0]).header(REFERER, format!("{own}/dashboard")).send().await.unwrap();
    let error = expect_error(again, 400, "invalid_code").await;
    assert_eq!(error["error"]["param"], "code");
    expect_error(redeem("trc-nonsense").header(ORIGIN, &own).send().await.unwrap(), 400, "invalid_code").await;
    let bad_body = gw
        .http
        .post(format!("{}/api/redeem", gw.url))
        .header(COOKIE, &cookie)
        .header(ORIGIN, &own)
        .json(&json!({"code": 7}))
        .send()
        .await
        .unwrap();
    expect_error(bad_body, 400, "invalid_request").await;
    assert_eq!(gw.balance().await.to_decimal_string(), "102.5");
    let ledger = gw.db.ledger(gw.account_id, 10).await.unwrap();
    assert_eq!(ledger.iter().filter(|r| r.kind == "redemption").count(), 1);
    assert_eq!(gw.db.ledger_sum(gw.account_id).await.unwrap(), gw.balance().await);

    // A disabled account's session stops at once.
    gw.db.set_account_disabled("acme", true).await.unwrap();
    expect_error(me(&gw, &cookie).await, 401, "not_signed_in").await;
}

#[tokio::test]
async fn management_keys_work_on_api_and_inference_keys_on_v1_only() {
    let gw = Gateway::start().await;
    let (mut management, secret) = key_for(gw.account_id);
    management.scope = KeyScope::Management;
    gw.add_key(&management).await;

    let me_with = |key: &str| gw.http.get(format!("{}/api/me", gw.url)).bearer_auth(key.to_owned()).send();
    let answer: Value = me_with(&secret).await.unwrap().json().await.unwrap();
    assert_eq!(answer["login"], "acme");
    let models: Value =
        gw.http.get(format!("{}/api/models", gw.url)).bearer_auth(&secret).send().await.unwrap().json().await.unwrap();
    let mini = models["data"].as_array().unwrap().iter().find(|m| m["id"] == "gpt-4o-mini").unwrap().clone();
    assert_eq!((mini["status"].clone(), mini["deployments"].clone()), (json!("online"), json!(1)));
    assert!(mini["pricing"]["input_usd_per_mtok"].is_string(), "{mini}");
    expect_error(me_with(&gw.key).await.unwrap(), 403, "forbidden").await;
    expect_error(me_with("sk-tr-0000000000000000_wrong").await.unwrap(), 401, "invalid_api_key").await;

    let chat = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&secret)
        .json(&json!({"model": "gpt-4o-mini", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    expect_error(chat, 403, "forbidden").await;
    let models = gw.http.get(format!("{}/v1/models", gw.url)).bearer_auth(&secret).send().await.unwrap();
    expect_error(models, 403, "forbidden").await;

    // A bearer-authenticated change is not subject to the origin check.
    let redeem = gw
        .http
        .post(format!("{}/api/redeem", gw.url))
        .bearer_auth(&secret)
        .json(&json!({"code": "trc-unknown"}))
        .send()
        .await
        .unwrap();
    expect_error(redeem, 400, "invalid_code").await;
}

/// A management key of the gateway's account, for scripting `/api`.
async fn management_key(gw: &Gateway, account_id: i64) -> String {
    let (mut key, secret) = key_for(account_id);
    key.scope = KeyScope::Management;
    gw.add_key(&key).await;
    secret
}

#[tokio::test]
async fn keys_are_created_changed_listed_and_revoked_through_the_api() {
    let gw = Gateway::start().await;
    let admin = management_key(&gw, gw.account_id).await;
    let api =
        |method: reqwest::Method, path: &str| gw.http.request(method, format!("{}{path}", gw.url)).bearer_auth(&admin);
    let created = api(reqwest::Method::POST, "/api/keys")
        .json(&json!({
            "name": "ci", "models": ["gpt-4o-mini"], "ips": ["127.0.0.0/8"], "rpm": 100, "tpm": 100000,
            "spend_limit_usd": "1.5", "expires_at": "2999-01-01T00:00:00Z", "community": false
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("sk-tr-{id}_")));
    assert_eq!(created["prefix"], format!("sk-tr-{id}"));
    assert_eq!(created["spend_limit_usd"], "1.5");
    assert_eq!(created["spent_usd"], "0");
    assert_eq!(created["scope"], "inference");
    assert_eq!(created["community"], false);
    assert_eq!(created["expires_at"], "2999-01-01T00:00:00Z");

    // The new key works at once; it shows in the list, never with its secret.
    let chat = |key: &str| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(key.to_owned())
            .json(&json!({"model": "gpt-4o-mini", "messages": user("hi")}))
            .send()
    };
    assert_eq!(chat(&secret).await.unwrap().status(), 200);
    let listed = api(reqwest::Method::GET, "/api/keys").send().await.unwrap().text().await.unwrap();
    assert!(listed.contains(&id) && !listed.contains(&secret), "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["data"][0]["id"], id.as_str(), "newest first");
    assert!(listed["data"][0]["last_used_at"].is_null() || listed["data"][0]["last_used_at"].is_string());

    // Changes: named fields only; null removes a limit.
    let changed: Value = api(reqwest::Method::PATCH, &format!("/api/keys/{id}"))
        .json(&json!({"rpm": null, "name": "renamed", "models": ["gpt-*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((changed["rpm"].clone(), changed["tpm"].clone()), (Value::Null, json!(100000)));
    assert_eq!(changed["name"], "renamed");
    assert_eq!(changed["spend_limit_usd"], "1.5");

    // Pagination: three more keys, pages of two.
    for n in 0..3 {
        let made =
            api(reqwest::Method::POST, "/api/keys").json(&json!({"name": format!("k{n}")})).send().await.unwrap();
        assert_eq!(made.status(), 201);
    }
    let first: Value = api(reqwest::Method::GET, "/api/keys?limit=2").send().await.unwrap().json().await.unwrap();
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next"].as_str().unwrap().to_owned();
    let rest: Value = api(reqwest::Method::GET, &format!("/api/keys?limit=2&before={cursor}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["data"].as_array().unwrap().len(), 2);
    let last: Value =
        api(reqwest::Method::GET, &format!("/api/keys?limit=2&before={}", rest["next"].as_str().unwrap()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    // Six in all: the gateway's own key, the management key, "ci" and three more.
    assert_eq!(last["data"].as_array().unwrap().len(), 2, "{last}");
    assert!(last["next"].is_null());

    // Revoke: refused at once on /v1; a second revoke is a conflict; so is an edit.
    let revoked: Value =
        api(reqwest::Method::DELETE, &format!("/api/keys/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(revoked, json!({"id": id, "deleted": true}));
    expect_error(chat(&secret).await.unwrap(), 401, "invalid_api_key").await;
    expect_error(api(reqwest::Method::DELETE, &format!("/api/keys/{id}")).send().await.unwrap(), 409, "conflict").await;
    let edit =
        api(reqwest::Method::PATCH, &format!("/api/keys/{id}")).json(&json!({"name": "x"})).send().await.unwrap();
    expect_error(edit, 409, "conflict").await;
}

#[tokio::test]
async fn another_accounts_keys_are_not_found_and_bad_input_names_its_field() {
    let gw = Gateway::start().await;
    let admin = management_key(&gw, gw.account_id).await;
    let other = gw.db.create_account("other", tokenrouter_store::NanoUsd::ZERO).await.unwrap();
    let theirs = management_key(&gw, other.id).await;
    let api = |key: &str, method: reqwest::Method, path: &str| {
        gw.http.request(method, format!("{}{path}", gw.url)).bearer_auth(key.to_owned())
    };
    // IDOR: the gateway account's own inference key, seen from another account.
    let id = gw.key_id.clone();
    expect_error(
        api(&theirs, reqwest::Method::DELETE, &format!("/api/keys/{id}")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let edit =
        api(&theirs, reqwest::Method::PATCH, &format!("/api/keys/{id}")).json(&json!({"rpm": 1})).send().await.unwrap();
    expect_error(edit, 404, "not_found").await;
    let listed: Value = api(&theirs, reqwest::Method::GET, "/api/keys").send().await.unwrap().json().await.unwrap();
    assert!(!listed.to_string().contains(&id));
    assert_eq!(gw.db.account_key(gw.account_id, &id).await.unwrap().unwrap().revoked_at, None, "untouched");

    let cases = [
        (json!({"name": "x".repeat(101)}), "name"),
        (json!({"name": 7}), "name"),
        (json!({"rpm": 0}), "rpm"),
        (json!({"tpm": -5}), "tpm"),
        (json!({"rpm": 1.5}), "rpm"),
        (json!({"spend_limit_usd": "-1"}), "spend_limit_usd"),
        (json!({"spend_limit_usd": "lots"}), "spend_limit_usd"),
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"ips": ["not-an-address"]}), "ips"),
        (json!({"models": [""]}), "models"),
        (json!({"models": "gpt-4o"}), "models"),
        (json!({"scope": "root"}), "scope"),
        (json!({"owner": 2}), "owner"),
    ];
    for (body, param) in cases {
        let answer = api(&admin, reqwest::Method::POST, "/api/keys").json(&body).send().await.unwrap();
        let error = expect_error(answer, 400, "invalid_request").await;
        assert_eq!(error["error"]["param"], param, "{body}");
    }
    let not_json = api(&admin, reqwest::Method::POST, "/api/keys").body("{").send().await.unwrap();
    expect_error(not_json, 400, "invalid_request").await;
    let huge = api(&admin, reqwest::Method::POST, "/api/keys")
        .json(&json!({"name": "x".repeat(10 << 20)}))
        .send()
        .await
        .unwrap();
    expect_error(huge, 413, "request_too_large").await;
    let bad_limit = api(&admin, reqwest::Method::GET, "/api/keys?limit=1000").send().await.unwrap();
    assert_eq!(expect_error(bad_limit, 400, "invalid_request").await["error"]["param"], "limit");
    assert_eq!(gw.db.list_keys(gw.account_id).await.unwrap().len(), 2, "nothing stored by refused requests");
}

#[tokio::test]
async fn admins_grant_disable_and_mint_codes_and_the_ledger_shows_each_balance() {
    let gw = Gateway::start().await;
    let root = gw.db.create_account("root", tokenrouter_store::NanoUsd::ZERO).await.unwrap();
    gw.db.set_admin("root", true).await.unwrap();
    let admin = management_key(&gw, root.id).await;
    let user_key = management_key(&gw, gw.account_id).await;
    let call = |key: &str, method: reqwest::Method, path: &str| {
        gw.http.request(method, format!("{}{path}", gw.url)).bearer_auth(key.to_owned())
    };
    let acme = gw.account_id;

    // Not an admin: forbidden, whatever the route.
    expect_error(call(&user_key, reqwest::Method::GET, "/api/admin/accounts").send().await.unwrap(), 403, "forbidden")
        .await;
    let grant = call(&user_key, reqwest::Method::POST, &format!("/api/admin/accounts/{acme}/credit"))
        .json(&json!({"amount_usd": "5", "memo": "self"}))
        .send()
        .await
        .unwrap();
    expect_error(grant, 403, "forbidden").await;

    let listed: Value =
        call(&admin, reqwest::Method::GET, "/api/admin/accounts").send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["root", "acme"]);
    assert_eq!(listed["data"][1]["balance_usd"], "100");

    let granted = call(&admin, reqwest::Method::POST, &format!("/api/admin/accounts/{acme}/credit"))
        .json(&json!({"amount_usd": "2.5", "memo": "welcome"}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 201);
    let granted: Value = granted.json().await.unwrap();
    assert_eq!(granted["kind"], "grant");
    assert_eq!(granted["amount_usd"], "2.5");
    assert_eq!(granted["balance_after_usd"], "102.5");
    assert!(granted["memo"].as_str().unwrap().contains(&format!("admin {}", root.id)), "{granted}");
    for (body, param) in [
        (json!({"amount_usd": "0"}), "amount_usd"),
        (json!({"amount_usd": "-3"}), "amount_usd"),
        (json!({}), "amount_usd"),
    ] {
        let refused = call(&admin, reqwest::Method::POST, &format!("/api/admin/accounts/{acme}/credit"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(expect_error(refused, 400, "invalid_request").await["error"]["param"], param);
    }
    let nobody = call(&admin, reqwest::Method::POST, "/api/admin/accounts/999999/credit")
        .json(&json!({"amount_usd": "1"}))
        .send()
        .await
        .unwrap();
    expect_error(nobody, 404, "not_found").await;

    // Codes minted by the API redeem once.
    let minted = call(&admin, reqwest::Method::POST, "/api/admin/redemption-codes")
        .json(&json!({"amount_usd": "1", "count": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(minted.status(), 201);
    let minted: Value = minted.json().await.unwrap();
    let code = minted["codes"][0].as_str().unwrap().to_owned();
    assert_eq!(minted["codes"].as_array().unwrap().len(), 3);
    let redeemed: Value = call(&user_key, reqwest::Method::POST, "/api/redeem")
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(redeemed["balance_usd"], "103.5");
    let too_many = call(&admin, reqwest::Method::POST, "/api/admin/redemption-codes")
        .json(&json!({"amount_usd": "1", "count": 100000}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(too_many, 400, "invalid_request").await["error"]["param"], "count");

    // The ledger, newest first, each row with the balance right after it; pages by cursor.
    let ledger: Value =
        call(&user_key, reqwest::Method::GET, "/api/ledger?limit=2").send().await.unwrap().json().await.unwrap();
    let rows = ledger["data"].as_array().unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["redemption", "grant"]);
    let afters: Vec<&str> = rows.iter().map(|r| r["balance_after_usd"].as_str().unwrap()).collect();
    assert_eq!(afters, ["103.5", "102.5"]);
    let rest: Value = call(
        &user_key,
        reqwest::Method::GET,
        &format!("/api/ledger?limit=2&before={}", ledger["next"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(rest["data"][0]["kind"], "credit");
    assert_eq!(rest["data"][0]["balance_after_usd"], "100");
    assert!(rest["next"].is_null());

    // Disabling: the account's keys stop at once on this replica; admins cannot lock themselves out.
    let me_self = call(&admin, reqwest::Method::PATCH, &format!("/api/admin/accounts/{}", root.id))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(me_self, 400, "invalid_request").await["error"]["param"], "disabled");
    let disabled: Value = call(&admin, reqwest::Method::PATCH, &format!("/api/admin/accounts/{acme}"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disabled["disabled"], true);
    expect_error(call(&user_key, reqwest::Method::GET, "/api/me").send().await.unwrap(), 401, "invalid_api_key").await;
    let chat = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&gw.key)
        .json(&json!({"model": "gpt-4o-mini", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    expect_error(chat, 401, "invalid_api_key").await;
}

#[tokio::test]
async fn sign_in_attempts_and_redemptions_are_limited_per_address() {
    let gw = Gateway::start().await;
    let client = no_redirects();
    for attempt in 1..=20 {
        let answer = client.get(format!("{}/auth/link/guess{attempt}", gw.url)).send().await.unwrap();
        assert_eq!(answer.status(), 302, "attempt {attempt}");
    }
    let limited = client.get(format!("{}/auth/link/guess21", gw.url)).send().await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry_after), "{retry_after}");
    expect_error(limited, 429, "rate_limited").await;
    let github = client.get(format!("{}/auth/github/login", gw.url)).send().await.unwrap();
    assert_eq!(github.status(), 429, "one allowance for every way of signing in");

    let key = management_key(&gw, gw.account_id).await;
    let redeem =
        || gw.http.post(format!("{}/api/redeem", gw.url)).bearer_auth(&key).json(&json!({"code": "trc-guess"}));
    for _ in 1..=10 {
        expect_error(redeem().send().await.unwrap(), 400, "invalid_code").await;
    }
    expect_error(redeem().send().await.unwrap(), 429, "rate_limited").await;
}

#[tokio::test]
async fn usage_totals_the_request_log_and_the_ledger_agree() {
    let gw = Gateway::start().await;
    let key = management_key(&gw, gw.account_id).await;
    let mut ids = Vec::new();
    for text in ["one two three", "four five", "six"] {
        let answer = gw.chat(json!({"model": "gpt-4o-mini", "messages": user(text)})).await;
        assert_eq!(answer.status(), 200);
        ids.push(crate::harness::request_id(&answer));
    }
    for id in &ids {
        gw.usage(id).await; // written
    }
    let get = |path: &str| gw.http.get(format!("{}{path}", gw.url)).bearer_auth(&key).send();
    let by_model: Value = get("/api/usage?group_by=model").await.unwrap().json().await.unwrap();
    let row = &by_model["data"][0];
    assert_eq!((row["bucket"].clone(), row["requests"].clone()), (json!("gpt-4o-mini"), json!(3)));
    let by_day: Value = get("/api/usage").await.unwrap().json().await.unwrap();
    assert_eq!(by_day["data"].as_array().unwrap().len(), 1);
    assert!(by_day["data"][0]["bucket"].as_str().unwrap().ends_with("T00:00:00Z"));
    let today = &by_day["data"][0]["bucket"].as_str().unwrap()[..10];
    let same: Value =
        get(&format!("/api/usage?from={today}&to={today}&group_by=hour")).await.unwrap().json().await.unwrap();
    assert_eq!(same["data"][0]["requests"], 3);

    let log: Value = get("/api/requests?model=gpt-4o-mini&status=200").await.unwrap().json().await.unwrap();
    let rows = log["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["surface"], "chat.completions");
    assert!(!log.to_string().contains("four five"), "no prompt text in the log");
    let usd = |v: &Value| tokenrouter_store::NanoUsd::parse_usd(v.as_str().unwrap()).unwrap().0;
    let logged: i64 = rows.iter().map(|r| usd(&r["cost_usd"])).sum();
    let charged: i64 = gw
        .db
        .ledger(gw.account_id, 100)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.kind == "charge")
        .map(|r| -r.amount.0)
        .sum();
    assert!(charged > 0);
    assert_eq!(logged, charged);
    assert_eq!(usd(&by_model["data"][0]["cost_usd"]), charged);
    let page: Value = get("/api/requests?limit=2").await.unwrap().json().await.unwrap();
    let next = page["next"].as_str().unwrap().to_owned();
    let rest: Value = get(&format!("/api/requests?limit=2&before={next}")).await.unwrap().json().await.unwrap();
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);

    for (path, param) in [
        ("/api/usage?group_by=week", "group_by"),
        ("/api/usage?from=yesterday", "from"),
        ("/api/usage?from=2026-02-30", "from"),
        ("/api/usage?from=2026-12-02&to=2026-12-01", "to"),
        ("/api/usage?from=2000-01-01&to=2026-01-01", "from"),
        ("/api/requests?status=abc", "status"),
        ("/api/requests?before=nonsense", "before"),
    ] {
        let error = expect_error(get(path).await.unwrap(), 400, "invalid_request").await;
        assert_eq!(error["error"]["param"], param, "{path}");
    }
}

#[tokio::test]
async fn after_a_mixed_workload_usage_the_request_log_and_the_ledger_reconcile() {
    use futures_util::StreamExt;
    let gw = Gateway::start().await;
    let admin = management_key(&gw, gw.account_id).await;
    let (mut tight, tight_secret) = key_for(gw.account_id);
    tight.spend_limit = Some(tokenrouter_store::NanoUsd(1)); // every request is 402
    gw.add_key(&tight).await;
    let chat = |key: &str, body: Value| {
        gw.http.post(format!("{}/v1/chat/completions", gw.url)).bearer_auth(key.to_owned()).json(&body).send()
    };
    let mut ids = Vec::new();
    // Answered.
    for text in ["alpha beta", "gamma"] {
        let answer = chat(&gw.key, json!({"model": "gpt-4o-mini", "messages": user(text)})).await.unwrap();
        assert_eq!(answer.status(), 200);
        ids.push(crate::harness::request_id(&answer));
    }
    // Refused for money, for an unknown model, and failed upstream.
    let broke = chat(&tight_secret, json!({"model": "gpt-4o-mini", "messages": user("x")})).await.unwrap();
    ids.push(crate::harness::request_id(&broke));
    expect_error(broke, 402, "insufficient_quota").await;
    let unknown = chat(&gw.key, json!({"model": "no-such-model", "messages": user("x")})).await.unwrap();
    ids.push(crate::harness::request_id(&unknown));
    expect_error(unknown, 404, "model_not_found").await;
    let failed =
        chat(&gw.key, json!({"model": "gpt-4o-mini", "messages": user("x"), "mock": {"fault": "500"}})).await.unwrap();
    ids.push(crate::harness::request_id(&failed));
    assert_eq!(failed.status(), 502);
    // A client that goes away mid-stream: billed for what it received.
    let streamed = chat(
        &gw.key,
        json!({"model": "gpt-4o-mini", "stream": true, "messages": user("long"), "mock": {"tokens_per_second": 50, "reply_tokens": 200}}),
    )
    .await
    .unwrap();
    ids.push(crate::harness::request_id(&streamed));
    let mut body = streamed.bytes_stream();
    let _ = body.next().await;
    let _ = body.next().await;
    drop(body);
    for id in &ids {
        gw.usage(id).await;
    }

    let get = |path: &str| gw.http.get(format!("{}{path}", gw.url)).bearer_auth(&admin).send();
    let log: Value = get("/api/requests?limit=100").await.unwrap().json().await.unwrap();
    let rows = log["data"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "every request, refused and failed ones too: {log}");
    let code_of = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap()["error_code"].clone();
    assert_eq!(code_of(&ids[0]), Value::Null);
    assert_eq!(code_of(&ids[2]), "insufficient_quota");
    assert_eq!(code_of(&ids[3]), "model_not_found");
    assert_eq!(code_of(&ids[4]), "upstream_unavailable");
    let row_of = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    let answered = row_of(&ids[0]);
    assert!(answered["ttfb_ms"].as_i64().unwrap() <= answered["latency_ms"].as_i64().unwrap(), "{answered}");
    assert!(row_of(&ids[5])["ttfb_ms"].is_i64(), "a stream's first byte came");
    assert!(row_of(&ids[2])["ttfb_ms"].is_null() && row_of(&ids[4])["ttfb_ms"].is_null(), "no answer, no first byte");
    let refused: Value = get("/api/requests?status=402").await.unwrap().json().await.unwrap();
    assert_eq!(refused["data"].as_array().unwrap().len(), 1);

    let usd = |v: &Value| tokenrouter_store::NanoUsd::parse_usd(v.as_str().unwrap()).unwrap().0;
    let logged: i64 = rows.iter().map(|r| usd(&r["cost_usd"])).sum();
    let by_model: Value = get("/api/usage?group_by=model").await.unwrap().json().await.unwrap();
    let totals = by_model["data"].as_array().unwrap();
    let usage_cost: i64 = totals.iter().map(|t| usd(&t["cost_usd"])).sum();
    let usage_requests: i64 = totals.iter().map(|t| t["requests"].as_i64().unwrap()).sum();
    let ledger: Value = get("/api/ledger?limit=100").await.unwrap().json().await.unwrap();
    let charges: i64 = ledger["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "charge")
        .map(|r| -usd(&r["amount_usd"]))
        .sum();
    assert!(charges > 0);
    assert_eq!((logged, usage_cost), (charges, charges), "request log = usage = ledger");
    assert_eq!(usage_requests, 6);
    assert_eq!(gw.db.ledger_sum(gw.account_id).await.unwrap(), gw.balance().await);
}
