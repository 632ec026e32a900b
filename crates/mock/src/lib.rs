//! A fake LLM provider with deterministic replies, latency, token pacing and fault
//! injection; used by Token Router's tests, demo (`tokenrouter mock-upstream`) and
//! benchmarks. It speaks three wire formats:
//!
//! - OpenAI: `GET /v1/models`; `POST /v1/chat/completions` (text, tool calls, and with a
//!   `reasoning_effort` other than `none`/`minimal` a DeepSeek-style `reasoning_content`);
//!   `POST /v1/completions` (legacy text completions); `POST /v1/embeddings`;
//!   `POST /v1/responses` (the Responses API: reasoning items, messages, function calls).
//! - Anthropic: `POST /v1/messages` (text, tool use, extended thinking).
//! - Gemini: `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`,
//!   `:embedContent` and `:batchEmbedContents`.
//!
//! Every endpoint but `/v1/models` is an inference endpoint: its requests are counted and
//! recorded in [`Stats`], and the knobs and faults apply to it. Every knob of
//! [`MockConfig`] can be overridden per request in the model name,
//! `name@key=value,key=value` (e.g. `claude-mock@latency_ms=200,fault=500`; the model
//! reported back is `name`), and in a `"mock"` object in the JSON body, e.g.
//! `{"mock": {"reply_tokens": 4, "fault": "cut:2", "calls": 1}}`, which takes precedence.
//! A gateway passes both through unchanged.
//!
//! Replies are built from the prompt ([`count_tokens`] counts whitespace-separated words);
//! thinking, in every format, is the fixed text "Let me think about this." (5 tokens);
//! embeddings are unit-length vectors derived from the input text, 1536 components by
//! default (3072 for OpenAI models whose name contains `large`, and for Gemini).
//!
//! It can also act as a community instance ([`InstanceKnobs`]: a required key, the model
//! list, reported usage, whole-server failures — changeable while it runs), and a
//! [`MockServer`] can be stopped (every open connection closed) and restarted on the
//! same port, like a server that dies and comes back.

mod anthropic;
mod embedding;
mod format;
mod gemini;
pub mod github;
mod instance;
mod knobs;
mod openai;
mod reply;
mod server;
mod stats;
mod stream;
mod turn;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use instance::{InstanceFailure, InstanceKnobs};
pub use knobs::{Fault, MockConfig, ParseFaultError};
pub use reply::count_tokens;
pub use stats::{KEPT_REQUESTS, RecordedRequest, Stats};

/// Spawns the mock on `listen` (port 0 picks a free port) on the current tokio runtime
/// and returns once it is accepting connections.
pub async fn start(listen: SocketAddr, config: MockConfig) -> std::io::Result<MockServer> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let instance = Arc::new(Mutex::new(config.instance.clone()));
    let shared = Arc::new(server::Shared { config, stats: Arc::default(), instance });
    let (stop, stopped) = watch::channel(false);
    let accept = Some(tokio::spawn(server::serve(listener, Arc::clone(&shared), stopped)));
    Ok(MockServer { addr, shared, accept, stop })
}

/// Runs the accept loop on `listener` until the process ends (or the task is dropped).
pub async fn serve(listener: TcpListener, config: MockConfig, stats: Arc<Stats>) {
    let instance = Arc::new(Mutex::new(config.instance.clone()));
    let shared = Arc::new(server::Shared { config, stats, instance });
    // The sender goes first, which means "never stop".
    let (_, stopped) = watch::channel(false);
    server::serve(listener, shared, stopped).await;
}

/// A running mock. Dropping it stops accepting connections; open ones finish on their own.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    /// `None` while stopped.
    accept: Option<JoinHandle<()>>,
    /// `true` closes the open connections of the current run.
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer").field("addr", &self.addr).field("running", &self.accept.is_some()).finish()
    }
}

impl MockServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT/v1`, with an unspecified listen address replaced by loopback.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        format!("http://{addr}/v1")
    }

    /// What it has seen and sent so far.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.shared.stats
    }

    /// The instance knobs now.
    pub fn instance(&self) -> InstanceKnobs {
        self.shared.instance()
    }

    /// Replaces the instance knobs; requests that arrive from now on see them.
    pub fn set_instance(&self, knobs: InstanceKnobs) {
        self.update_instance(|current| *current = knobs);
    }

    /// Changes the instance knobs in place.
    pub fn update_instance(&self, change: impl FnOnce(&mut InstanceKnobs)) {
        change(&mut self.shared.instance.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Dies: stops listening (connecting is refused) and closes every open connection,
    /// hanging requests included. Stats and knobs are kept for [`MockServer::restart`].
    pub async fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            // Once the task is gone, so is its listener: the port is free again.
            let _ = accept.await;
        }
        self.stop.send_replace(true);
    }

    /// Comes back on the same address (after [`MockServer::stop`]; a running server is
    /// stopped first), with the same config, knobs and stats.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        let (stop, stopped) = watch::channel(false);
        self.stop = stop;
        self.accept = Some(tokio::spawn(server::serve(listener, Arc::clone(&self.shared), stopped)));
        Ok(())
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(accept) = &self.accept {
            accept.abort();
        }
    }
}
