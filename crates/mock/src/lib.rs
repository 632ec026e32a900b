//! A fake LLM provider speaking the OpenAI (`POST /v1/chat/completions`), Anthropic
//! (`POST /v1/messages`) and Gemini (`POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent`) wire formats, with deterministic replies, latency, token
//! pacing and fault injection; used by Token Router's tests, demo
//! (`tokenrouter mock-upstream`) and benchmarks.
//!
//! Every knob of [`MockConfig`] can be overridden per request in the model name,
//! `name@key=value,key=value` (e.g. `claude-mock@latency_ms=200,fault=500`; the model
//! reported back is `name`), and in a `"mock"` object in the JSON body, e.g.
//! `{"mock": {"reply_tokens": 4, "fault": "cut:2"}}`, which takes precedence. A gateway
//! passes both through unchanged.

mod anthropic;
mod format;
mod gemini;
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
