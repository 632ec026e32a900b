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

mod anthropic;
mod embedding;
mod format;
mod gemini;
pub mod github;
mod knobs;
mod openai;
mod reply;
mod server;
mod stats;
mod stream;
mod turn;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use knobs::{Fault, MockConfig, ParseFaultError};
pub use reply::count_tokens;
pub use stats::{KEPT_REQUESTS, RecordedRequest, Stats};

/// Spawns the mock on `listen` (port 0 picks a free port) on the current tokio runtime
/// and returns once it is accepting connections.
pub async fn start(listen: SocketAddr, config: MockConfig) -> std::io::Result<MockServer> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(Stats::default());
    let accept = tokio::spawn(serve(listener, config, Arc::clone(&stats)));
    Ok(MockServer { addr, stats, accept })
}

/// Runs the accept loop on `listener` until the process ends (or the task is dropped).
pub async fn serve(listener: TcpListener, config: MockConfig, stats: Arc<Stats>) {
    server::serve(listener, config, stats).await;
}

/// A running mock. Dropping it stops accepting connections; open ones finish on their own.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    stats: Arc<Stats>,
    accept: JoinHandle<()>,
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
        &self.stats
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
