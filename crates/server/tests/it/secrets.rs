//! Secrets never reach a log line: a real `tokenrouter serve` logging at debug level signs
//! people in (a one-time link and GitHub), mints a key, serves it, redeems codes (a good one
//! and a near miss), and its captured log holds none of the secrets that passed through it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};
use tokenrouter_mock::github::{CLIENT_SECRET, FakeGithub, GithubUser};

const UPSTREAM_KEY: &str = "sk-upstream-Zq8Lr0Vd2Mw4";

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenrouter"))
        .current_dir(dir)
        .env_remove("TOKENROUTER_CONFIG")
        .env_remove("TOKENROUTER_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .args(["--database", "sqlite://gw.db", "--config", "gw.toml"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log() {
    let mock = tokenrouter_mock::start("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let github = FakeGithub::start().await.unwrap();
    github.sign_in_as(GithubUser {
        id: 4242,
        login: "mona".into(),
        name: None,
        email: None,
        primary_email: Some("mona@private.example".into()),
    });
    let dir = tempfile::tempdir().unwrap();
    let mock_root = mock.base_url().trim_end_matches("/v1").to_owned();
    let config = format!(
        "[auth.github]\nclient_id = \"cid\"\nclient_secret = \"{CLIENT_SECRET}\"\nbase_url = \"{g}\"\napi_base_url = \"{g}\"\n\n\
         [[providers]]\nname = \"mock\"\nkind = \"openai\"\nbase_url = \"{mock_root}/v1\"\napi_key = \"{UPSTREAM_KEY}\"\n\n\
         [[models]]\nid = \"m\"\ncontext_window = 10000\nmax_output_tokens = 1000\ninput_price = 1\noutput_price = 1\ndeployments = [ {{ provider = \"mock\", upstream_model = \"m\" }} ]\n",
        g = github.url()
    );
    std::fs::write(dir.path().join("gw.toml"), config).unwrap();
    cli(dir.path(), &["accounts", "create", "acme", "--balance", "10"]);
    let link = cli(dir.path(), &["accounts", "login-link", "acme"]).trim().to_owned();
    let code = cli(dir.path(), &["codes", "create", "--amount", "1"]).trim().to_owned();

    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tokenrouter"))
        .current_dir(dir.path())
        .env_remove("TOKENROUTER_CONFIG")
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .args(["--database", "sqlite://gw.db", "--config", "gw.toml", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let url = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(at) = text.find("listening on http://") {
            break text[at + "listening on ".len()..].split_whitespace().next().unwrap().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the server did not start:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let origin = "http://127.0.0.1:8080";
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // A one-time link; the session cookie it sets.
    let token = link.split("/auth/link/").nth(1).unwrap().to_owned();
    let signed_in = browser.get(format!("{url}/auth/link/{token}")).send().await.unwrap();
    let session = signed_in.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    // A key minted through the API, then used.
    let created: Value = browser
        .post(format!("{url}/api/keys"))
        .header(COOKIE, &session)
        .header(ORIGIN, origin)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let chat = browser
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    // A wrong secret for a real key id, a good code and a near miss.
    let wrong = format!("{}x", &key[..key.len() - 1]);
    let refused = browser.get(format!("{url}/v1/models")).bearer_auth(&wrong).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let near_miss = format!("{}Q", &code[..code.len() - 1]);
    for attempt in [&code, &near_miss] {
        browser
            .post(format!("{url}/api/redeem"))
            .header(COOKIE, &session)
            .header(ORIGIN, origin)
            .json(&json!({"code": attempt}))
            .send()
            .await
            .unwrap();
    }
    // GitHub: the state cookie, the code, the access token all pass through the gateway.
    let start = browser.get(format!("{url}/auth/github/login")).send().await.unwrap();
    let state = start.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    let back = browser.get(&authorize).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().replace(origin, &url);
    let oauth_code = callback.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let done = browser.get(&callback).header(COOKIE, &state).send().await.unwrap();
    assert_eq!(done.headers()["location"], "/dashboard");
    let github_session = done
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tr_session=") && !c.contains("Max-Age=0"))
        .unwrap();
    let logout =
        browser.post(format!("{url}/auth/logout")).header(COOKIE, &session).header(ORIGIN, origin).send().await;
    assert_eq!(logout.unwrap().status(), 200);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = server.kill();
    let _ = server.wait();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(BufReader::new(text.as_bytes()).lines().count() > 10, "the log is too thin to prove anything:\n{text}");
    let secret_of_key = key.split_once('_').unwrap().1.to_owned();
    let session_token = session.trim_start_matches("tr_session=").to_owned();
    let github_token = github_session.split(';').next().unwrap().trim_start_matches("tr_session=").to_owned();
    let state_nonce = state.trim_start_matches("tr_oauth=").split('.').next().unwrap().to_owned();
    for (what, secret) in [
        ("the link token", token.as_str()),
        ("the session token", session_token.as_str()),
        ("the GitHub session token", github_token.as_str()),
        ("the key's secret", secret_of_key.as_str()),
        ("the wrong secret", &wrong[wrong.len() - 20..]),
        ("the redemption code", code.as_str()),
        ("the mistyped code", near_miss.as_str()),
        ("the OAuth state", state_nonce.as_str()),
        ("the OAuth code", oauth_code.as_str()),
        ("GitHub's access token", "gho_fake"),
        ("the client secret", CLIENT_SECRET),
        ("the upstream key", UPSTREAM_KEY),
    ] {
        assert!(!text.contains(secret), "{what} is in the log:\n{text}");
    }
}
