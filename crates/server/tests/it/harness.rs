//! Boots a mock upstream and a gateway on 127.0.0.1:0 with a temporary SQLite database,
//! an account and a key.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokenrouter::auth;
use tokenrouter::config::{Config, Env};
use tokenrouter::state::AppState;
use tokenrouter_core::NanoUsd;
use tokenrouter_mock::{MockConfig, MockServer};
use tokenrouter_store::{Db, NewKey, UsageRecord};

pub struct Gateway {
    pub url: String,
    pub key: String,
    pub key_id: String,
    pub account_id: i64,
    pub db: Db,
    /// The database's URL, for the CLI.
    pub db_url: String,
    pub mock: MockServer,
    pub state: AppState,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// An Anthropic and a Gemini provider on the mock, with one chat model each
/// (`claude-haiku-4-5`, `gemini-2.0-flash`): extra config for tests of other kinds.
pub const NATIVE_KINDS: &str = r#"
[[providers]]
name = "anthropic-mock"
kind = "anthropic"
base_url = "{mock}/v1"
api_key = "anthropic-secret"

[[providers]]
name = "gemini-mock"
kind = "gemini"
base_url = "{mock}/v1beta"
api_key = "gemini-secret"

[[models]]
id = "claude-haiku-4-5"
deployments = [ { provider = "anthropic-mock", upstream_model = "claude-mock" } ]

[[models]]
id = "gemini-2.0-flash"
deployments = [ { provider = "gemini-mock", upstream_model = "gemini-mock" } ]
"#;

/// The config every test gateway gets; `extra` comes first (`[server]`, more providers
/// and models), with `{mock}` standing for the mock's root URL.
pub fn config_toml(mock_url: &str, extra: &str) -> String {
    let extra = extra.replace("{mock}", mock_url.trim_end_matches("/v1"));
    format!(
        r#"{extra}

[[providers]]
name = "mock"
kind = "openai"
base_url = "{mock_url}"
api_key = "upstream-secret"

[[providers]]
name = "nowhere"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"

[[models]]
id = "gpt-4o-mini"
deployments = [ {{ provider = "mock", upstream_model = "mock-gpt" }} ]

[[models]]
id = "slow-model"
context_window = 8000
max_output_tokens = 1000
input_price = 1
output_price = 2
deployments = [ {{ provider = "mock", upstream_model = "mock-slow", timeout_ms = 300 }} ]

[[models]]
id = "dead-model"
context_window = 8000
max_output_tokens = 1000
input_price = 1
output_price = 2
deployments = [ {{ provider = "nowhere" }} ]
"#
    )
}

impl Gateway {
    pub async fn start() -> Gateway {
        Gateway::start_with(MockConfig::default(), "").await
    }

    pub async fn start_with(mock_config: MockConfig, extra_toml: &str) -> Gateway {
        let mock = tokenrouter_mock::start("127.0.0.1:0".parse().unwrap(), mock_config).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("gw.db").display());
        let db = Db::connect(&db_url).await.unwrap();
        let account = db.create_account("acme", NanoUsd::parse_usd("100").unwrap()).await.unwrap();
        let (key, secret) = key_for(account.id);
        db.insert_key(&key).await.unwrap();
        let config = Config::from_toml(&config_toml(&mock.base_url(), extra_toml), &Env::default()).unwrap();
        let state = AppState::start(config, db.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(tokenrouter::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Gateway {
            url: format!("http://{addr}"),
            key_id: key.id,
            key: secret,
            account_id: account.id,
            db,
            db_url,
            mock,
            state,
            http: reqwest::Client::new(),
            _dir: dir,
            _shutdown: tx,
        }
    }

    /// Stores a key and makes the gateway see it at once.
    pub async fn add_key(&self, key: &NewKey) {
        self.db.insert_key(key).await.unwrap();
        self.state.reload_keys_if_changed().await.unwrap();
    }

    /// A signed-in browser's cookie (`tr_session=…`) for the account.
    pub async fn session(&self, account_id: i64) -> String {
        let set_cookie = tokenrouter::signin::start_session(&self.state, account_id).await.unwrap();
        set_cookie.split(';').next().unwrap().to_owned()
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url)).bearer_auth(&self.key)
    }

    /// Posts `body` to `path` and reads the answer as JSON (whatever its status).
    pub async fn post_json(&self, path: &str, body: Value) -> Value {
        self.post(path).json(&body).send().await.unwrap().json().await.unwrap()
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.post("/v1/chat/completions").json(&body).send().await.unwrap()
    }

    /// The usage row of a request, waiting for the batching writer.
    pub async fn usage(&self, request_id: &str) -> UsageRecord {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(row) = self.db.usage_by_request(request_id).await.unwrap() {
                return row;
            }
            assert!(Instant::now() < deadline, "no usage row for {request_id}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn usage_count(&self) -> i64 {
        self.state.usage.flush().await;
        self.db.usage_count().await.unwrap()
    }

    /// Requests of the gateway's account that were answered (the request log also holds
    /// refused ones, at no cost); panics if a refused one was charged.
    pub async fn answered_count(&self) -> usize {
        self.state.usage.flush().await;
        let filter = tokenrouter_store::RequestFilter::default();
        let rows = self.db.requests_page(self.account_id, &filter, 100, None).await.unwrap();
        for refused in rows.iter().filter(|r| r.error_code.is_some()) {
            assert_eq!(refused.charged_nano, 0, "a refused request was charged: {refused:?}");
        }
        rows.iter().filter(|r| r.error_code.is_none()).count()
    }

    pub async fn balance(&self) -> NanoUsd {
        self.state.usage.flush().await;
        self.db.account_by_id(self.account_id).await.unwrap().unwrap().balance
    }
}

/// A key of `account_id` with no scopes or limits (set fields before storing it), and
/// its secret.
pub fn key_for(account_id: i64) -> (NewKey, String) {
    let minted = auth::mint().unwrap();
    let key = NewKey {
        id: minted.id,
        account_id,
        name: "test".into(),
        secret_hash: minted.hash,
        models: vec![],
        ips: vec![],
        rpm: None,
        tpm: None,
        spend_limit: None,
        expires_at: None,
        scope: tokenrouter_store::KeyScope::Inference,
        community: true,
    };
    (key, minted.full)
}

pub fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"].to_str().unwrap().to_owned()
}

pub fn user(text: &str) -> Value {
    serde_json::json!([{"role": "user", "content": text}])
}

/// Asserts an OpenAI-shaped error with this status and code, and returns its message.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"].as_object().unwrap().contains_key("param"), "{body}");
    body
}

/// Starts a gateway process from `command` (`serve --listen 127.0.0.1:0`, logging at info)
/// and reads its stderr until it listens: the process, its address (`127.0.0.1:PORT`) and
/// the rest of its stderr (the caller reads or drains it, and kills and waits for the child).
#[allow(clippy::zombie_processes, reason = "every caller kills and waits for the child")]
pub fn spawn_listening(
    mut command: std::process::Command,
) -> (std::process::Child, String, std::io::BufReader<std::process::ChildStderr>) {
    let mut child =
        command.env("NO_COLOR", "1").env("RUST_LOG", "info").stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0, "gateway exited");
        if let Some(at) = line.find("listening on http://") {
            let addr = line[at + "listening on http://".len()..].split_whitespace().next().unwrap().to_owned();
            return (child, addr, stderr);
        }
    }
}
