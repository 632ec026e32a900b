//! Several real `tokenrouter serve` processes on one PostgreSQL database and one Redis
//! (CONTRACTS.md §9): a fresh database per test (dropped at the end), a private
//! `redis-server` for tests that stop it, replicas spawned from the binary and killed on
//! drop (a panicking test leaks no process), and the CLI against the same database.
//!
//! PostgreSQL and Redis must answer (scripts/services.sh sees to it); a test that cannot
//! reach them fails, it never skips.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;
use tokenrouter_core::NanoUsd;
use tokenrouter_mock::MockServer;
use tokenrouter_store::Db;

/// Free input, $1 per 1M output tokens: a request with `max_tokens: 100` reserves exactly
/// [`CEILING`] whatever its prompt. `metered` answers after `{latency}` ms, `fast` at once.
const CONFIG: &str = r#"
[[providers]]
name = "mock"
kind = "openai"
base_url = "{mock}/v1"

[[models]]
id = "metered"
context_window = 10000
max_output_tokens = 1000
input_price = 0
output_price = 1
deployments = [ { provider = "mock", upstream_model = "m@latency_ms={latency}" } ]

[[models]]
id = "fast"
context_window = 10000
max_output_tokens = 1000
input_price = 0
output_price = 1
deployments = [ { provider = "mock", upstream_model = "m" } ]
"#;

/// What one request with `max_tokens: 100` reserves: 100 tokens at $1 per 1M.
pub const CEILING: i64 = 100_000;

/// A random lowercase suffix for names that must not collide with other tests'.
pub fn unique() -> String {
    (0..12).map(|_| fastrand::lowercase()).collect()
}

/// USD with nine decimals, as the CLI takes it.
pub fn usd(nano: i64) -> String {
    format!("{}.{:09}", nano / 1_000_000_000, nano % 1_000_000_000)
}

/// A PostgreSQL database of this test's own, dropped (WITH (FORCE)) when this is.
pub struct TestDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// Creates `tr_test_<random>` through `TOKENROUTER_TEST_POSTGRES_URL` (default
    /// `postgres://postgres@127.0.0.1:5432/postgres`); panics if PostgreSQL is unreachable.
    pub async fn create() -> TestDatabase {
        let admin = std::env::var("TOKENROUTER_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is unreachable at {admin} ({e}); run scripts/services.sh or set TOKENROUTER_TEST_POSTGRES_URL")
        });
        let name = format!("tr_test_{}", unique());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        TestDatabase { url: format!("{base}/{name}"), admin, name }
    }
}

impl TestDatabase {
    /// Drops the database now, ending its connections (a database that went away).
    pub async fn drop_now(&self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {} WITH (FORCE)", self.name)))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside the test's runtime: a fresh thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// The shared Redis (`TOKENROUTER_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).
pub fn shared_redis() -> String {
    std::env::var("TOKENROUTER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A `redis-server` of this test's own on a free port, for tests that stop and restart
/// it. Killed on drop.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = OwnRedis { port, child: None };
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data goes with it: nothing is saved).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port; returns once it answers PING.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server ({e}); run scripts/services.sh to install it"));
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server on port {port} never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0; 5];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG"
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `tokenrouter serve` process. Killed (SIGKILL) and reaped on drop.
pub struct Replica {
    pub url: String,
    child: Child,
}

impl Replica {
    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// N replicas on one database and one Redis, the mock upstream in this process.
pub struct Cluster {
    pub replicas: Vec<Replica>,
    pub db: Db,
    pub db_url: String,
    pub redis_url: String,
    pub http: reqwest::Client,
    _mock: MockServer,
    dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

impl Cluster {
    /// `n` replicas on a fresh PostgreSQL database and the shared Redis under a key prefix
    /// of this test's own; `metered` answers after `latency_ms`.
    pub async fn start(n: usize, latency_ms: u64) -> Cluster {
        let prefix = format!("tokenrouter:test-{}:", unique());
        Cluster::start_on_postgres(n, latency_ms, &shared_redis(), &prefix).await
    }

    /// `n` replicas on a fresh PostgreSQL database and the Redis at `redis_url`.
    pub async fn start_on_postgres(n: usize, latency_ms: u64, redis_url: &str, key_prefix: &str) -> Cluster {
        let database = TestDatabase::create().await;
        let redis = format!("[redis]\nkey_prefix = \"{key_prefix}\"\n");
        let mut cluster = Cluster::start_on(&database.url.clone(), Some(redis_url), &redis, n, latency_ms).await;
        cluster._database = Some(database);
        cluster
    }

    /// The general case: any database URL, with or without Redis, `extra` config first.
    pub async fn start_on(db_url: &str, redis_url: Option<&str>, extra: &str, n: usize, latency_ms: u64) -> Cluster {
        let mock = tokenrouter_mock::start("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mock_root = mock.base_url().trim_end_matches("/v1").to_owned();
        let config = CONFIG.replace("{mock}", &mock_root).replace("{latency}", &latency_ms.to_string());
        std::fs::write(dir.path().join("gw.toml"), format!("{extra}{config}")).unwrap();
        let redis_url = redis_url.unwrap_or_default().to_owned();
        let migrate = tokenrouter(dir.path(), db_url, &redis_url).arg("migrate").output().unwrap();
        assert!(migrate.status.success(), "tokenrouter migrate failed: {}", String::from_utf8_lossy(&migrate.stderr));
        let db = Db::connect(db_url).await.unwrap_or_else(|e| panic!("cannot open {db_url}: {e}"));
        let mut cluster = Cluster {
            replicas: Vec::new(),
            db,
            db_url: db_url.to_owned(),
            redis_url,
            http: reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap(),
            _mock: mock,
            dir,
            _database: None,
        };
        for _ in 0..n {
            let replica = cluster.spawn();
            cluster.replicas.push(replica);
        }
        cluster
    }

    /// Starts one more replica (not added to `replicas`); returns once it listens.
    #[allow(clippy::zombie_processes, reason = "the Replica kills and waits for it on drop")]
    pub fn spawn(&self) -> Replica {
        let mut command = self.command();
        command.args(["serve", "--listen", "127.0.0.1:0"]).env("RUST_LOG", "info").stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let _ = child.wait();
                panic!("replica exited before listening:\n{seen}");
            }
            if let Some(at) = line.find("listening on http://") {
                let url = line[at + "listening on ".len()..].split_whitespace().next().unwrap().to_owned();
                std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
                return Replica { url, child };
            }
            seen.push_str(&line);
        }
    }

    /// Runs the CLI against the cluster's database; panics with its stderr if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let output: Output = self.command().args(args).output().unwrap();
        assert!(output.status.success(), "tokenrouter {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    fn command(&self) -> Command {
        tokenrouter(self.dir.path(), &self.db_url, &self.redis_url)
    }

    /// Creates an account with this balance; returns its id.
    pub async fn account(&self, name: &str, balance_nano: i64) -> i64 {
        self.cli(&["accounts", "create", name, "--balance", &usd(balance_nano)]);
        self.db.account_by_name(name).await.unwrap().unwrap().id
    }

    /// Mints a key of `account` with these extra `keys create` flags; returns (id, secret).
    pub fn key(&self, account: &str, flags: &[&str]) -> (String, String) {
        let mut args = vec!["keys", "create", "--account", account, "--json"];
        args.extend_from_slice(flags);
        let created: Value = serde_json::from_str(&self.cli(&args)).unwrap();
        (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned())
    }

    /// The mock upstream every replica calls.
    pub fn mock(&self) -> &MockServer {
        &self._mock
    }

    /// The replica URLs, for spreading requests round-robin.
    pub fn urls(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.url.clone()).collect()
    }

    /// Sends `n` chat requests at once with `key`, request `i` to replica `i % N`;
    /// returns the responses in order.
    pub async fn burst(&self, key: &str, model: &str, n: usize) -> Vec<reqwest::Response> {
        let urls = self.urls();
        let body =
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100});
        let requests = (0..n).map(|i| {
            self.http.post(format!("{}/v1/chat/completions", urls[i % urls.len()])).bearer_auth(key).json(&body).send()
        });
        futures_util::future::join_all(requests).await.into_iter().map(Result::unwrap).collect()
    }

    /// Waits (up to `limit`) until no hold is open in the database.
    pub async fn no_holds_within(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let open = self.db.open_holds().await.unwrap();
            if open.is_empty() {
                return;
            }
            assert!(started.elapsed() < limit, "{} holds still open after {limit:?}: {open:?}", open.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every account's balance equals the sum of its ledger rows.
    pub async fn ledgers_add_up(&self, account_ids: &[i64]) {
        for &id in account_ids {
            let balance = self.db.account_by_id(id).await.unwrap().unwrap().balance;
            assert_eq!(self.db.ledger_sum(id).await.unwrap(), balance, "account {id}: balance = sum of ledger rows");
        }
    }

    /// What the key has spent so far.
    pub async fn spent(&self, account_id: i64, key_id: &str) -> NanoUsd {
        self.db.list_keys(account_id).await.unwrap().into_iter().find(|k| k.id == key_id).unwrap().spent
    }
}

/// The binary with the cluster's database, config and Redis (if any), in `dir`.
fn tokenrouter(dir: &Path, db_url: &str, redis_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenrouter"));
    command
        .current_dir(dir)
        .env_remove("TOKENROUTER_CONFIG")
        .env_remove("TOKENROUTER_DATABASE_URL")
        .env_remove("TOKENROUTER_REDIS_URL")
        .env_remove("TOKENROUTER_LISTEN")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .args(["--database", db_url, "--config", "gw.toml"]);
    if !redis_url.is_empty() {
        command.args(["--redis", redis_url]);
    }
    command
}
