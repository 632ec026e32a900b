//! Live config reload: SIGHUP to the real binary and `POST /api/admin/reload` swap
//! prices and models without a restart; a request in flight keeps the config it started
//! with; an invalid file is refused with the config checker's message and changes nothing.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenrouter::config::Env;
use tokenrouter::reload::Source;
use tokenrouter_core::NanoUsd;
use tokenrouter_store::{Db, KeyScope};

use crate::harness::{Gateway, config_toml, expect_error, key_for, request_id, user};

/// Free input and `{price}` USD per 1M output tokens: a 16-token answer costs
/// 16 × 1,000 × price nano-USD, whatever the prompt.
const PRICED: &str = r#"
[[providers]]
name = "up"
kind = "openai"
base_url = "{mock}/v1"
api_key = "sk-upstream-secret"

[[models]]
id = "metered"
context_window = 10000
max_output_tokens = 1000
input_price = 0
output_price = {price}
deployments = [ { provider = "up", upstream_model = "m" } ]

[[models]]
id = "metered-slow"
context_window = 10000
max_output_tokens = 1000
input_price = 0
output_price = {price}
deployments = [ { provider = "up", upstream_model = "m@tokens_per_second=4" } ]
"#;

fn priced(mock: &str, price: u32) -> String {
    PRICED.replace("{mock}", mock.trim_end_matches("/v1")).replace("{price}", &price.to_string())
}

/// The real binary on `db_url` with `dir/gw.toml`, its address, and its log lines.
struct Binary {
    child: Child,
    url: String,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Binary {
    async fn start(dir: &Path, db_url: &str) -> Binary {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tokenrouter"));
        command
            .args(["--database", db_url, "--config", "gw.toml", "serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("TOKENROUTER_REDIS_URL");
        let (child, addr, stderr) = crate::harness::spawn_listening(command);
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        Binary { child, url: format!("http://{addr}"), lines }
    }

    /// The next log line containing `needle` (earlier lines are skipped).
    async fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the gateway exited before logging '{needle}'"),
                Err(_) => panic!("no log line with '{needle}' within 20 s"),
            }
        }
    }

    fn hang_up(&self) {
        let status = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The usage row of a request, once the gateway wrote it.
async fn cost(db: &Db, request_id: &str) -> NanoUsd {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(row) = db.usage_by_request(request_id).await.unwrap() {
            return row.cost;
        }
        assert!(Instant::now() < deadline, "no usage row for {request_id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ask(http: &reqwest::Client, url: &str, key: &str, model: &str) -> String {
    let response = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": model, "messages": user("hi"), "max_tokens": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    response.bytes().await.unwrap();
    id
}

/// A database with an account holding $5 and its key; the secret.
async fn funded(db_url: &str) -> (Db, String) {
    let db = Db::connect(db_url).await.unwrap();
    let account = db.create_account("reloader", NanoUsd::parse_usd("5").unwrap()).await.unwrap();
    let (key, secret) = key_for(account.id);
    db.insert_key(&key).await.unwrap();
    (db, secret)
}

/// The real binary on a funded SQLite database, its config file priced at 1 USD per 1M
/// tokens.
struct Started {
    mock: tokenrouter_mock::MockServer,
    dir: tempfile::TempDir,
    db: Db,
    key: String,
    gw: Binary,
    http: reqwest::Client,
}

impl Started {
    async fn new() -> Started {
        let mock = tokenrouter_mock::start("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
        let (db, key) = funded(&db_url).await;
        std::fs::write(dir.path().join("gw.toml"), priced(&mock.base_url(), 1)).unwrap();
        let gw = Binary::start(dir.path(), &db_url).await;
        Started { mock, dir, db, key, gw, http: reqwest::Client::new() }
    }
}

#[tokio::test]
async fn sighup_swaps_the_price_and_a_request_in_flight_keeps_the_old_one() {
    let Started { mock, dir, db, key, mut gw, http } = Started::new().await;
    let before = ask(&http, &gw.url, &key, "metered").await;
    assert_eq!(cost(&db, &before).await, NanoUsd(16_000), "16 tokens at $1/1M");

    // A stream of 16 tokens at 4 a second, under way when the price changes.
    let response = http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .json(&json!({"model": "metered-slow", "messages": user("hi"), "max_tokens": 100, "stream": true,
            "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let in_flight = request_id(&response);
    let mut response = response;
    assert!(response.chunk().await.unwrap().is_some(), "the stream began");
    let reader = tokio::spawn(async move {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        (Instant::now(), String::from_utf8(body).unwrap())
    });

    std::fs::write(dir.path().join("gw.toml"), priced(&mock.base_url(), 2)).unwrap();
    gw.hang_up();
    let line = gw.wait_for("config reloaded").await;
    let reloaded_at = Instant::now();
    assert!(line.contains("SIGHUP") && line.contains("models=2") && line.contains("requires_restart=[]"), "{line}");
    let after = ask(&http, &gw.url, &key, "metered").await;
    assert_eq!(cost(&db, &after).await, NanoUsd(32_000), "the next request pays the new price");

    let (ended_at, body) = reader.await.unwrap();
    assert!(ended_at > reloaded_at, "the stream was still running when the config changed");
    assert!(body.contains("[DONE]"), "the stream finished: {body}");
    assert_eq!(cost(&db, &in_flight).await, NanoUsd(16_000), "the request in flight pays the price it started with");
}

#[tokio::test]
async fn sighup_with_a_broken_file_is_refused_and_the_old_config_keeps_serving() {
    let Started { mock, dir, db, key, mut gw, http } = Started::new().await;

    // A semantic mistake: refused with its position and field path.
    let broken = priced(&mock.base_url(), 2).replace("output_price = 2", "output_price = \"lots\"");
    std::fs::write(dir.path().join("gw.toml"), broken).unwrap();
    gw.hang_up();
    let line = gw.wait_for("config reload refused").await;
    assert!(line.contains("gw.toml:13:1: models[0].output_price"), "{line}");
    assert!(!line.contains("sk-upstream-secret"), "the provider key stays out of the log: {line}");
    let id = ask(&http, &gw.url, &key, "metered").await;
    assert_eq!(cost(&db, &id).await, NanoUsd(16_000), "still the old price");

    // A syntax error: refused with its line and column.
    std::fs::write(dir.path().join("gw.toml"), "[server\nlisten = 1\n").unwrap();
    gw.hang_up();
    let line = gw.wait_for("config reload refused").await;
    assert!(line.contains("gw.toml:1:"), "{line}");
    let id = ask(&http, &gw.url, &key, "metered").await;
    assert_eq!(cost(&db, &id).await, NanoUsd(16_000), "still the old price");
}

/// The harness's config plus one model more.
const NEW_MODEL: &str = r#"
[[models]]
id = "brand-new"
context_window = 8000
max_output_tokens = 1000
input_price = 1
output_price = 2
deployments = [ { provider = "mock", upstream_model = "mock-new" } ]
"#;

async fn models(gw: &Gateway) -> Vec<String> {
    let response = gw.http.get(format!("{}/v1/models", gw.url)).bearer_auth(&gw.key).send().await.unwrap();
    let list: Value = response.json().await.unwrap();
    list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_admin_route_reloads_for_admins_only_and_refuses_an_invalid_file() {
    let gw = Gateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.toml");
    let reload = || gw.http.post(format!("{}/api/admin/reload", gw.url));

    // Before the gateway knows a file: 409, clearly.
    gw.db.set_admin("acme", true).await.unwrap();
    let (mut admin, admin_secret) = key_for(gw.account_id);
    admin.scope = KeyScope::Management;
    gw.add_key(&admin).await;
    let answer = expect_error(reload().bearer_auth(&admin_secret).send().await.unwrap(), 409, "conflict").await;
    assert!(answer["error"]["message"].as_str().unwrap().contains("without a config file"), "{answer}");

    std::fs::write(&file, config_toml(&gw.mock.base_url(), NEW_MODEL)).unwrap();
    gw.state.reload.remember(Source { path: Some(file.clone()), env: Env::default(), redis_override: None });
    assert!(!models(&gw).await.contains(&"brand-new".to_owned()));

    // No credentials, then a signed-in user who is not an admin.
    expect_error(reload().send().await.unwrap(), 401, "not_signed_in").await;
    let user_account = gw.db.create_account("user", NanoUsd::ZERO).await.unwrap();
    let (mut user_key, user_secret) = key_for(user_account.id);
    user_key.scope = KeyScope::Management;
    gw.add_key(&user_key).await;
    expect_error(reload().bearer_auth(&user_secret).send().await.unwrap(), 403, "forbidden").await;
    assert!(!models(&gw).await.contains(&"brand-new".to_owned()), "nothing changed");

    let response = reload().bearer_auth(&admin_secret).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let done: Value = response.json().await.unwrap();
    assert_eq!(done, json!({"reloaded": true, "providers": 2, "models": 4, "requires_restart": []}));
    assert!(models(&gw).await.contains(&"brand-new".to_owned()));
    let answer = gw.chat(json!({"model": "brand-new", "messages": user("hi"), "max_tokens": 10})).await;
    assert_eq!(answer.status(), 200, "the new model serves");

    // An admin's browser session: only from the gateway's own pages (CSRF).
    let cookie = gw.session(gw.account_id).await;
    let from_browser = || reload().header(http::header::COOKIE, &cookie);
    expect_error(from_browser().send().await.unwrap(), 403, "csrf_failed").await;
    let foreign = from_browser().header(http::header::ORIGIN, "http://evil.example").send().await.unwrap();
    expect_error(foreign, 403, "csrf_failed").await;
    let own = gw.state.config.load().server.public_origin();
    let response = from_browser().header(http::header::ORIGIN, own).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // An invalid file: 400 with the checker's text; the running config stays.
    let mut broken = config_toml(&gw.mock.base_url(), "[server]\nlisten = \"nowhere\"\n");
    broken.push_str(NEW_MODEL.replace("mock-new", "x").replace("\"mock\"", "\"missing\"").as_str());
    std::fs::write(&file, broken).unwrap();
    let answer = expect_error(reload().bearer_auth(&admin_secret).send().await.unwrap(), 400, "invalid_config").await;
    let message = answer["error"]["message"].as_str().unwrap();
    assert_eq!(answer["error"]["type"], "invalid_request_error");
    assert!(message.starts_with("invalid config:"), "{message}");
    assert!(message.contains("gw.toml:2:1: server.listen: 'nowhere' is not an address"), "{message}");
    assert!(message.contains(".deployments[0].provider: no provider named 'missing'"), "{message}");
    assert!(models(&gw).await.contains(&"brand-new".to_owned()), "the previous config keeps serving");

    // A restart-only setting: named, and kept at its running value.
    let moved = config_toml(&gw.mock.base_url(), &format!("[server]\nlisten = \"127.0.0.1:1\"\n{NEW_MODEL}"));
    std::fs::write(&file, moved).unwrap();
    let response = reload().bearer_auth(&admin_secret).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let done: Value = response.json().await.unwrap();
    assert_eq!(done["requires_restart"], json!(["server.listen"]));
    assert_eq!(gw.state.config.load().server.listen, None);
}
