//! `[server]`: where the gateway listens, how it bills, its timeouts and limits, and how
//! browsers reach it.

use std::net::SocketAddr;
use std::time::Duration;

use super::raw::RawServer;
use super::{UnsupportedTools, parse_strategy, timeout};
use crate::routing::Strategy;

const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;
const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// OpenAI keeps stored responses for 30 days.
const DEFAULT_RESPONSE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billing {
    Prepaid,
    Off,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Option<SocketAddr>,
    pub billing: Billing,
    pub max_body_bytes: usize,
    /// Default time to wait for an upstream's response head.
    pub upstream_timeout: Duration,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_attempts: u32,
    pub strategy: Strategy,
    /// Peers whose `X-Forwarded-For` is believed (empty: the TCP peer is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// What `/v1/responses` does with hosted tools the upstream cannot run.
    pub unsupported_tools: UnsupportedTools,
    /// How long responses are kept for `previous_response_id` (zero: not kept).
    pub response_retention: Duration,
    /// `[server] public_url` as an origin (`scheme://host[:port]`, no trailing slash).
    pub public_url: Option<String>,
    /// How long SIGTERM/SIGINT waits for requests in flight before cutting them.
    pub shutdown_grace: Duration,
    /// A connection that has not sent a request's headers by then is closed.
    pub header_timeout: Duration,
    /// The longest a client may take to send a request's body.
    pub body_timeout: Duration,
    /// An idle keep-alive connection is closed after this long.
    pub keepalive_timeout: Duration,
    /// The most client connections open at once (more wait in the listen backlog).
    pub max_connections: usize,
}

impl ServerConfig {
    /// The origin browsers reach the gateway at: `public_url`, else `http://` and the
    /// listen address (default 127.0.0.1:8080).
    pub fn public_origin(&self) -> String {
        match (&self.public_url, self.listen) {
            (Some(url), _) => url.clone(),
            (None, Some(listen)) => format!("http://{listen}"),
            (None, None) => "http://127.0.0.1:8080".to_owned(),
        }
    }
}

/// `scheme://host[:port]` of an http(s) URL with no path, query or credentials.
fn parse_origin(text: &str) -> Result<String, String> {
    let uri: http::Uri = text.parse().map_err(|_| format!("'{text}' is not a URL"))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    if scheme != "http" && scheme != "https" {
        return Err(format!("'{text}' must start with http:// or https://"));
    }
    let authority = uri.authority().ok_or_else(|| format!("'{text}' has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("'{text}' must not contain credentials"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("'{text}' must be an origin only (no path or query): the gateway serves at its root"));
    }
    Ok(format!("{scheme}://{}", authority.as_str().to_ascii_lowercase()))
}

pub(super) fn build_server(raw: RawServer, errors: &mut Vec<String>) -> ServerConfig {
    let listen = raw.listen.as_deref().and_then(|text| match text.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errors.push(format!("server.listen: '{text}' is not an address such as 127.0.0.1:8080"));
            None
        }
    });
    let billing = match raw.billing.as_deref() {
        None | Some("prepaid") => Billing::Prepaid,
        Some("off") => Billing::Off,
        Some(other) => {
            errors.push(format!("server.billing: '{other}' is not one of prepaid, off"));
            Billing::Prepaid
        }
    };
    let max_body_bytes = match raw.max_body_bytes {
        None => DEFAULT_BODY_LIMIT,
        Some(0) => {
            errors.push("server.max_body_bytes: must be at least 1".to_owned());
            DEFAULT_BODY_LIMIT
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let upstream_timeout = match raw.upstream_timeout_ms {
        Some(0) => {
            errors.push("server.upstream_timeout_ms: must be at least 1".to_owned());
            DEFAULT_UPSTREAM_TIMEOUT
        }
        Some(ms) => Duration::from_millis(ms),
        None => DEFAULT_UPSTREAM_TIMEOUT,
    };
    let idle_timeout = timeout(raw.idle_timeout_ms, "server.idle_timeout_ms", errors).unwrap_or(DEFAULT_IDLE_TIMEOUT);
    let connect_timeout =
        timeout(raw.connect_timeout_ms, "server.connect_timeout_ms", errors).unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let request_timeout =
        timeout(raw.request_timeout_ms, "server.request_timeout_ms", errors).unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    let max_attempts = match raw.max_attempts {
        Some(0) => {
            errors.push("server.max_attempts: must be at least 1".to_owned());
            DEFAULT_MAX_ATTEMPTS
        }
        Some(n) => n,
        None => DEFAULT_MAX_ATTEMPTS,
    };
    let strategy = parse_strategy(raw.strategy.as_deref(), "server.strategy", errors).unwrap_or_default();
    let mut trusted_proxies = Vec::new();
    for (i, text) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        match crate::policy::parse_net(text) {
            Some(net) => trusted_proxies.push(net),
            None => errors.push(format!("server.trusted_proxies[{i}]: '{text}' is not a CIDR or an IP address")),
        }
    }
    let unsupported_tools = match raw.unsupported_tools.as_deref() {
        None | Some("drop") => UnsupportedTools::Drop,
        Some("reject") => UnsupportedTools::Reject,
        Some(other) => {
            errors.push(format!("server.unsupported_tools: '{other}' is not one of drop, reject"));
            UnsupportedTools::Drop
        }
    };
    let response_retention = raw.response_retention_secs.map_or(DEFAULT_RESPONSE_RETENTION, Duration::from_secs);
    let public_url = raw.public_url.as_deref().and_then(|text| match parse_origin(text) {
        Ok(origin) => Some(origin),
        Err(e) => {
            errors.push(format!("server.public_url: {e}"));
            None
        }
    });
    let shutdown_grace = raw.shutdown_grace_secs.map_or(DEFAULT_SHUTDOWN_GRACE, Duration::from_secs);
    let header_timeout =
        timeout(raw.header_timeout_ms, "server.header_timeout_ms", errors).unwrap_or(DEFAULT_HEADER_TIMEOUT);
    let body_timeout = timeout(raw.body_timeout_ms, "server.body_timeout_ms", errors).unwrap_or(DEFAULT_BODY_TIMEOUT);
    let keepalive_timeout =
        timeout(raw.keepalive_timeout_ms, "server.keepalive_timeout_ms", errors).unwrap_or(DEFAULT_KEEPALIVE_TIMEOUT);
    let max_connections = match raw.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(0) => {
            errors.push("server.max_connections: must be at least 1".to_owned());
            DEFAULT_MAX_CONNECTIONS
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    ServerConfig {
        shutdown_grace,
        header_timeout,
        body_timeout,
        keepalive_timeout,
        max_connections,
        listen,
        billing,
        max_body_bytes,
        upstream_timeout,
        idle_timeout,
        connect_timeout,
        request_timeout,
        max_attempts,
        strategy,
        trusted_proxies,
        unsupported_tools,
        response_retention,
        public_url,
    }
}
