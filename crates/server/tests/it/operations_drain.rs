//! Operations: SIGTERM drains (streams in flight finish, the listener closes, `/ready`
//! says 503, the ledger adds up, exit 0), a stream longer than the grace is cut and billed
//! for what it delivered, and the listener's limits (header and body timeouts, most
//! connections at once) hold.

use std::collections::HashMap;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokenrouter::config::{Config, Env};
use tokenrouter::state::AppState;
use tokenrouter_core::NanoUsd;
use tokenrouter_store::Db;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cluster::TestDatabase;
use crate::harness::{Gateway, config_toml, expect_error, key_for, request_id, user};

/// Free input, $1 per 1M output tokens: each delivered token costs 1,000 nano-USD.
const STREAMY: &str = r#"
[server]
shutdown_grace_secs = {grace}

[[providers]]
name = "paced"
kind = "openai"
base_url = "{mock}/v1"

[[models]]
id = "streamy"
context_window = 10000
max_output_tokens = 1000
input_price = 0
output_price = 1
deployments = [ { provider = "paced", upstream_model = "m@tokens_per_second=20,reply_tokens={tokens}" } ]
"#;

/// The real binary on its own SQLite database with one funded account and key.
struct Binary {
    child: Child,
    addr: String,
    db: Db,
    account_id: i64,
    key: String,
    /// What it wrote to stderr since it said it was listening.
    log: Arc<Mutex<String>>,
    _mock: tokenrouter_mock::MockServer,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Starts `tokenrouter serve` with replies of `tokens` tokens at 20 tokens/s and a
    /// shutdown grace of `grace` seconds.
    async fn start(tokens: u64, grace: u64) -> Binary {
        Binary::start_limited(tokens, grace, None).await
    }

    /// As [`Binary::start`], with at most `nofile` file descriptors when given.
    async fn start_limited(tokens: u64, grace: u64, nofile: Option<u32>) -> Binary {
        let mock = tokenrouter_mock::start("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("drain.db").display());
        let db = Db::connect(&db_url).await.unwrap();
        let account = db.create_account("drained", NanoUsd::parse_usd("5").unwrap()).await.unwrap();
        let (key, secret) = key_for(account.id);
        db.insert_key(&key).await.unwrap();
        let config = STREAMY
            .replace("{mock}", mock.base_url().trim_end_matches("/v1"))
            .replace("{grace}", &grace.to_string())
            .replace("{tokens}", &tokens.to_string());
        std::fs::write(dir.path().join("gw.toml"), config).unwrap();
        let args = ["--database", &db_url, "--config", "gw.toml", "serve", "--listen", "127.0.0.1:0"];
        let mut command = match nofile {
            None => Command::new(env!("CARGO_BIN_EXE_tokenrouter")),
            Some(n) => {
                let mut shell = Command::new("sh");
                shell.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_tokenrouter")]);
                shell
            }
        };
        command.args(args).current_dir(dir.path());
        let (child, addr, mut stderr) = crate::harness::spawn_listening(command);
        let log = Arc::new(Mutex::new(String::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::BufRead::read_line(&mut stderr, &mut line).is_ok_and(|n| n > 0) {
                lines.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Binary { child, addr, db, account_id: account.id, key: secret, log, _mock: mock, _dir: dir }
    }

    fn sigterm(&self) {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit (at most `limit`).
    async fn exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                self.child.kill().unwrap();
                let _ = self.child.wait();
                panic!("the gateway did not exit within {limit:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stream_request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        http.post(format!("http://{}/v1/chat/completions", self.addr))
            .bearer_auth(&self.key)
            .json(&json!({"model": "streamy", "messages": user("hi"), "stream": true}))
    }

    /// No hold left open, balance = sum of the ledger, and the charges.
    async fn settled_charges(&self) -> Vec<i64> {
        assert!(self.db.open_holds().await.unwrap().is_empty(), "a hold was left open");
        let balance = self.db.account_by_id(self.account_id).await.unwrap().unwrap().balance;
        assert_eq!(self.db.ledger_sum(self.account_id).await.unwrap(), balance, "balance = sum of ledger rows");
        let rows = self.db.ledger(self.account_id, 1000).await.unwrap();
        rows.iter().filter(|r| r.kind == "charge").map(|r| -r.amount.0).collect()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The content deltas of an SSE chat stream, and whether it ended with `[DONE]`.
fn stream_content(body: &str) -> (Vec<String>, bool) {
    let mut deltas = Vec::new();
    let mut done = false;
    for data in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
            deltas.push(text.to_owned());
        }
    }
    (deltas, done)
}

/// One HTTP/1.1 response read off a raw connection: status, headers (lower-case names)
/// and body (`Content-Length` framed).
async fn read_response(conn: &mut TcpStream) -> (u16, HashMap<String, String>, String) {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        assert!(conn.read_buf(&mut buf).await.unwrap() > 0, "connection closed before a response");
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").map_or(0, |l| l.parse().unwrap());
    while buf.len() < head_end + length {
        assert!(conn.read_buf(&mut buf).await.unwrap() > 0, "connection closed inside a body");
    }
    (status, headers, String::from_utf8(buf[head_end..head_end + length].to_vec()).unwrap())
}

async fn get_ready(conn: &mut TcpStream) -> (u16, HashMap<String, String>, String) {
    conn.write_all(b"GET /ready HTTP/1.1\r\nHost: gateway\r\n\r\n").await.unwrap();
    read_response(conn).await
}

#[tokio::test]
async fn sigterm_lets_twenty_streams_finish_closes_the_listener_and_exits_zero_with_a_ledger_that_adds_up() {
    let mut gw = Binary::start(40, 30).await;
    let mut keep_alive = TcpStream::connect(&gw.addr).await.unwrap();
    let (status, _, body) = get_ready(&mut keep_alive).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ready"}"#));

    let http = reqwest::Client::new();
    let (heads, mut heads_seen) = tokio::sync::mpsc::channel(20);
    let streams: Vec<_> = (0..20)
        .map(|_| {
            let request = gw.stream_request(&http);
            let heads = heads.clone();
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200);
                heads.send(()).await.unwrap();
                response.text().await.unwrap()
            })
        })
        .collect();
    for _ in 0..20 {
        heads_seen.recv().await.unwrap();
    }
    // All 20 are streaming (each takes 2 s): stop the gateway under them.
    gw.sigterm();
    let signalled = Instant::now();

    // The open keep-alive connection is still served while the streams finish: /ready
    // turns 503 (with `Connection: close`) once the drain has begun.
    let (status, headers, body) = loop {
        let (status, headers, body) = get_ready(&mut keep_alive).await;
        if status != 200 {
            break (status, headers, body);
        }
        assert!(signalled.elapsed() < Duration::from_secs(5), "/ready never said draining");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!((status, body.as_str()), (503, r#"{"status":"draining"}"#));
    assert_eq!(headers.get("connection").map(String::as_str), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(keep_alive.read_to_end(&mut rest).await.unwrap(), 0, "the connection closes after it");
    // The listener closed before /ready turned: a new connection is refused.
    assert!(TcpStream::connect(&gw.addr).await.is_err(), "a new connection was accepted while draining");

    for stream in streams {
        let body = stream.await.unwrap();
        let (deltas, done) = stream_content(&body);
        assert!(done, "a stream ended without [DONE]: {body}");
        assert_eq!(deltas.len(), 40, "a stream lost content: {body}");
        assert!(body.contains(r#""finish_reason":"stop""#), "{body}");
    }
    let status = gw.exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "exit status {status:?}");

    let charges = gw.settled_charges().await;
    assert_eq!(charges.len(), 20, "each request charged exactly once: {charges:?}");
    assert!(charges.iter().all(|c| *c == 40 * 1_000), "40 tokens at $1/1M each: {charges:?}");
    assert_eq!(gw.db.usage_count().await.unwrap(), 20);
}

#[tokio::test]
async fn a_stream_longer_than_the_grace_is_cut_at_the_deadline_and_billed_for_what_it_delivered() {
    // 400 tokens at 20 tokens/s take 20 s; the grace is 1 s.
    let mut gw = Binary::start(400, 1).await;
    let http = reqwest::Client::new();
    let mut response = gw.stream_request(&http).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let mut received = String::new();
    while stream_content(&received).0.len() < 5 {
        let chunk = response.chunk().await.unwrap().expect("the stream ended early");
        received.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    gw.sigterm();
    let signalled = Instant::now();
    // The client reads until the gateway cuts the stream.
    while let Ok(Some(chunk)) = response.chunk().await {
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    let cut_after = signalled.elapsed();
    assert!(cut_after >= Duration::from_millis(900), "cut before the grace ran out: {cut_after:?}");
    assert!(cut_after < Duration::from_secs(8), "cut long after the grace: {cut_after:?}");
    let status = gw.exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "exit status {status:?}");

    let whole = received.rfind("\n\n").map_or("", |end| &received[..end]);
    let (delivered, done) = stream_content(whole);
    assert!(!done, "the stream was not cut");
    assert_eq!(gw.db.usage_count().await.unwrap(), 1, "one usage row");
    let usage = gw.db.usage_by_request(&id).await.unwrap().expect("the cut request's usage row");
    let completion = usage.usage.completion_tokens;
    assert!(
        completion >= delivered.len() as u64 && completion < 400,
        "billed {completion} tokens; the client received {}",
        delivered.len()
    );
    let charges = gw.settled_charges().await;
    assert_eq!(charges, [i64::try_from(completion).unwrap() * 1_000], "charged for the delivered tokens only");
}

#[tokio::test]
async fn three_thousand_connections_that_never_finish_their_headers_are_closed_and_others_are_served_meanwhile() {
    let gw = Gateway::start_with(Default::default(), "[server]\nheader_timeout_ms = 500\n").await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut slow = Vec::with_capacity(3000);
    for _ in 0..3000 {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(conn);
    }
    // Meanwhile a normal client is answered, and fast.
    for _ in 0..5 {
        let started = Instant::now();
        let response = gw.http.get(format!("{}/ready", gw.url)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        let chat = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("hi")})).await;
        assert_eq!(chat.status(), 200);
    }
    // Every slow connection is closed by the server (EOF or reset), none answered.
    let closed = futures_util::future::join_all(slow.into_iter().map(|mut conn| async move {
        let mut rest = Vec::new();
        match tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut rest)).await {
            Ok(Ok(_)) => !String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 200"),
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }))
    .await;
    assert_eq!(closed.iter().filter(|c| **c).count(), 3000, "some slow connections stayed open");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout_and_closes_after_the_keep_alive_timeout() {
    let extra = "[server]\nheader_timeout_ms = 300\nkeepalive_timeout_ms = 1500\n";
    let gw = Gateway::start_with(Default::default(), extra).await;
    let mut conn = TcpStream::connect(gw.url.trim_start_matches("http://")).await.unwrap();
    assert_eq!(get_ready(&mut conn).await.0, 200);
    // Idle for longer than the header timeout: still open between requests.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(get_ready(&mut conn).await.0, 200, "the idle connection was closed early");
    let idle_since = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "not closed by the server: {closed:?}");
    let idle = idle_since.elapsed();
    assert!(idle >= Duration::from_millis(1400) && idle < Duration::from_secs(5), "closed after {idle:?} idle");
}

#[tokio::test]
async fn at_max_connections_a_new_request_waits_for_a_free_connection_and_is_then_served() {
    let gw = Gateway::start_with(Default::default(), "[server]\nmax_connections = 5\n").await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..5 {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(get_ready(&mut conn).await.0, 200);
        idle.push(conn);
    }
    let sixth = tokio::spawn(reqwest::Client::new().get(format!("{}/ready", gw.url)).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sixth.is_finished(), "a sixth connection was served beside five open ones");
    drop(idle.pop());
    let answer = tokio::time::timeout(Duration::from_secs(5), sixth).await.expect("still waiting").unwrap();
    assert_eq!(answer.unwrap().status(), 200, "served once a connection closed");
    // The gateway is none the worse: the idle connections still answer.
    assert_eq!(get_ready(&mut idle[0]).await.0, 200);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_in_the_error_shape() {
    let gw = Gateway::start_with(Default::default(), "[server]\nbody_timeout_ms = 300\n").await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"model\":",
        gw.key
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (status, headers, body) = read_response(&mut conn).await;
    assert!(started.elapsed() >= Duration::from_millis(250), "answered before the timeout");
    assert_eq!(status, 408, "{body}");
    assert_eq!(headers.get("connection").map(String::as_str), Some("close"));
    assert!(headers.contains_key("x-request-id"));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    // A body sent in time is served as before.
    let chat = gw.chat(json!({"model": "gpt-4o-mini", "messages": user("hi")})).await;
    assert_eq!(chat.status(), 200);
}

#[tokio::test]
async fn ready_answers_200_while_serving_and_503_when_the_database_is_gone() {
    let gw = Gateway::start().await;
    let ready = gw.http.get(format!("{}/ready", gw.url)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap(), json!({"status": "ready"}));
    let live = gw.http.get(format!("{}/", gw.url)).send().await.unwrap();
    assert_eq!(live.json::<Value>().await.unwrap(), json!({"status": "ok"}), "GET / stays liveness");

    let pg = TestDatabase::create().await;
    let db = Db::connect(&pg.url).await.unwrap();
    let config = Config::from_toml(&config_toml(&gw.mock.base_url(), ""), &Env::default()).unwrap();
    let state = AppState::start(config, db).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(tokenrouter::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let ready = gw.http.get(format!("{url}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready on PostgreSQL");
    pg.drop_now().await;
    let started = Instant::now();
    loop {
        let ready = gw.http.get(format!("{url}/ready")).send().await.unwrap();
        if ready.status() == 503 {
            assert_eq!(ready.json::<Value>().await.unwrap(), json!({"status": "database unreachable"}));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "/ready still says {}", ready.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live = gw.http.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(live.status(), 200, "liveness does not depend on the database");
    // An unknown path on a draining or broken gateway still gets the error shape.
    let unknown = gw.http.get(format!("{url}/nowhere")).send().await.unwrap();
    expect_error(unknown, 404, "unknown_url").await;
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_on_the_same_port() {
    use http_body_util::{BodyExt, Full};
    let gw = Gateway::start().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<bytes::Bytes>>();
    let ready = client.get(format!("{}/ready", gw.url).parse().unwrap()).await.unwrap();
    assert_eq!(ready.version(), http::Version::HTTP_2);
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.into_body().collect().await.unwrap().to_bytes(), r#"{"status":"ready"}"#);
    let body = json!({"model": "gpt-4o-mini", "messages": user("hi")}).to_string();
    let chat = http::Request::post(format!("{}/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {}", gw.key))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let chat = client.request(chat).await.unwrap();
    assert_eq!(chat.status(), 200);
    let answer: Value = serde_json::from_slice(&chat.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(answer["object"], "chat.completion", "{answer}");
}

#[tokio::test]
async fn out_of_file_descriptors_the_gateway_backs_off_says_so_briefly_and_serves_again_once_some_are_freed() {
    let mut gw = Binary::start_limited(16, 30, Some(128)).await;
    // More connections than the gateway has descriptors for (the rest wait in the
    // listen backlog).
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push(TcpStream::connect(&gw.addr).await.unwrap());
    }
    let started = Instant::now();
    while !gw.log.lock().unwrap().contains("cannot accept connections") {
        assert!(started.elapsed() < Duration::from_secs(10), "accepting never ran out of descriptors");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Keep it out of descriptors for a while, then free them.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(gw.child.try_wait().unwrap().is_none(), "the gateway died out of descriptors");
    drop(held);
    let ready = reqwest::Client::new()
        .get(format!("http://{}/ready", gw.addr))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "served again once descriptors were freed");
    let warnings = gw.log.lock().unwrap().matches("cannot accept connections").count();
    assert!(warnings <= 8, "{warnings} warnings for one episode");
    gw.sigterm();
    assert_eq!(gw.exit(Duration::from_secs(20)).await.code(), Some(0));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_keep_alive_timeout() {
    let extra = "[server]\nkeepalive_timeout_ms = 1000\n";
    let gw = Gateway::start_with(Default::default(), extra).await;
    let url = format!("{}/api/openapi.json", gw.url);
    let size = gw.http.get(&url).send().await.unwrap().bytes().await.unwrap().len();
    // Far more response bytes than the socket buffers of both ends hold.
    let requests = (64 * 1024 * 1024 / size).max(64);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(gw.url.trim_start_matches("http://").parse().unwrap()).await.unwrap();
    let head = b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    let pipelined: Vec<u8> = head.iter().copied().cycle().take(head.len() * requests).collect();
    // The gateway stops reading requests once its writes are stuck: send what fits.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.write_all(&pipelined)).await;
    let stalled = Instant::now();
    // Four keep-alive timeouts: on a loaded machine the gateway may still be writing its
    // first responses when the client stops sending, and reading earlier would un-stick it
    // (with 1.8 s it then read all 64 MiB, over 20 s, under three busy loops on 2 cores).
    tokio::time::sleep(Duration::from_millis(4000)).await;
    // Others are served meanwhile.
    assert_eq!(gw.http.get(format!("{}/ready", gw.url)).send().await.unwrap().status(), 200);
    let mut received = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut received)).await;
    assert!(ended.is_ok(), "the stuck connection was never dropped");
    assert!(received.len() < size * requests, "every response was delivered: nothing was stuck");
    assert!(stalled.elapsed() < Duration::from_secs(20));
}
