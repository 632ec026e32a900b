//! The HTTP client for instances: every new connection resolves the host, keeps only the
//! addresses the address policy allows, and dials one of exactly those.
//!
//! The check and the dial use the same resolved address (the resolver hands the checked
//! addresses to hyper-util's `HttpConnector`, which connects to nothing else), so DNS
//! rebinding between check and connect cannot happen. IP-literal hosts, which
//! `HttpConnector` dials without asking the resolver, are checked by [`InstanceConnector`]
//! before it delegates. What this client never does:
//! - follow redirects: hyper-util's legacy client returns a 3xx as it is, and nothing here
//!   follows one;
//! - use a proxy: neither the client nor `HttpConnector` reads `HTTP_PROXY`/`HTTPS_PROXY`/
//!   `ALL_PROXY`/`NO_PROXY` (only reqwest does, and it is not used here);
//! - dial an address it has not checked, including on pooled reconnects.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tower_service::Service;

use super::address::{self, Host, InstanceUrl, Refusal};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

/// A pooled HTTP/1.1 + TLS client whose every connection passes the address policy.
pub type InstanceClient = Client<hyper_rustls::HttpsConnector<InstanceConnector>, Full<Bytes>>;

/// How the instance client connects.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[instances] allow_private_addresses`.
    pub allow_private: bool,
    /// The limit on resolving the host and, separately, on the TCP connect (which
    /// hyper-util splits evenly among the addresses it tries).
    pub connect_timeout: Duration,
    pub resolver: Resolver,
}

/// Where host names are looked up.
#[derive(Debug, Clone)]
pub enum Resolver {
    /// The system resolver (`getaddrinfo`, through tokio).
    System,
    /// A fixed table (lower-case names, no trailing dot); a name not in it does not
    /// resolve. Never asks DNS: tests use it.
    Table(Arc<HashMap<String, Vec<IpAddr>>>),
}

impl Resolver {
    pub fn table<'a>(entries: impl IntoIterator<Item = (&'a str, Vec<IpAddr>)>) -> Resolver {
        Resolver::Table(Arc::new(entries.into_iter().map(|(name, ips)| (name.to_ascii_lowercase(), ips)).collect()))
    }

    /// The addresses of `host`, unchecked. A host that is an IP address in any spelling
    /// (`0x7f.1`, `2130706433`) is that address, without a lookup.
    pub async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        if let Ok(Host::Ip(ip)) = address::parse_host(host) {
            return Ok(vec![ip]);
        }
        match self {
            Resolver::System => Ok(tokio::net::lookup_host((host, 0)).await?.map(|addr| addr.ip()).collect()),
            Resolver::Table(table) => {
                let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
                table.get(&name).cloned().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{host} is not in the resolver's table"))
                })
            }
        }
    }
}

/// The address policy refused the connection: the instance's host is, or resolves only
/// to, refused addresses. Callers answer `unsafe_url` (or mark the instance) on it; find
/// it in a client error with [`refused_in`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Literal(Refusal),
    #[error("{host} resolves only to refused addresses: {}", list(.refusals))]
    Resolved { host: String, refusals: Vec<Refusal> },
    /// Only from [`check_resolution`]: at registration every address must pass.
    #[error("{host} resolves to refused addresses: {}", list(.refusals))]
    Partly { host: String, refusals: Vec<Refusal> },
}

fn list(refusals: &[Refusal]) -> String {
    refusals.iter().map(Refusal::to_string).collect::<Vec<_>>().join("; ")
}

/// The address policy's refusal in `error`'s chain of causes (a client error wraps the
/// connector's), if that is why the request failed.
pub fn refused_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused);
        }
        cause = error.source();
    }
    None
}

/// The addresses to dial, in the resolver's order without repeats (IPv4-mapped IPv6 as
/// IPv4), or every refusal when none is allowed. Pure: the tests drive it with addresses
/// that must never be dialed.
pub fn pick(addrs: &[IpAddr], allow_private: bool) -> Result<Vec<IpAddr>, Vec<Refusal>> {
    let mut chosen = Vec::new();
    let mut refusals = Vec::new();
    for &ip in addrs {
        match address::allowed(ip, allow_private) {
            Ok(()) if !chosen.contains(&ip.to_canonical()) => chosen.push(ip.to_canonical()),
            Ok(()) => {}
            Err(refusal) => refusals.push(refusal),
        }
    }
    if chosen.is_empty() { Err(refusals) } else { Ok(chosen) }
}

/// The registration check (§7): every address the URL's host resolves to must pass, not
/// just one. Returns them. (An IP-literal host was already checked by `check_url`.)
pub async fn check_resolution(url: &InstanceUrl, settings: &Settings) -> Result<Vec<IpAddr>, ResolutionError> {
    let host = match url.host() {
        Host::Ip(ip) => return Ok(vec![*ip]),
        Host::Name(name) => name.as_str(),
    };
    let addrs = lookup(&settings.resolver, host, settings.connect_timeout).await?;
    let refusals: Vec<Refusal> =
        addrs.iter().filter_map(|&ip| address::allowed(ip, settings.allow_private).err()).collect();
    match refusals.len() {
        0 => Ok(addrs),
        n if n == addrs.len() => Err(Refused::Resolved { host: host.to_owned(), refusals }.into()),
        _ => Err(Refused::Partly { host: host.to_owned(), refusals }.into()),
    }
}

/// Why [`check_resolution`] failed: the policy (`unsafe_url`) or the lookup.
#[derive(Debug, thiserror::Error)]
pub enum ResolutionError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Lookup(#[from] io::Error),
}

/// A lookup within `timeout` that found at least one address.
async fn lookup(resolver: &Resolver, host: &str, timeout: Duration) -> io::Result<Vec<IpAddr>> {
    let addrs = match tokio::time::timeout(timeout, resolver.lookup(host)).await {
        Ok(found) => found?,
        Err(_) => {
            let message = format!("resolving {host} took longer than {} ms", timeout.as_millis());
            return Err(io::Error::new(io::ErrorKind::TimedOut, message));
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{host} resolves to no address")));
    }
    Ok(addrs)
}

/// Builds the instance client: HTTP/1.1, TLS with the webpki roots (as `upstream.rs`).
pub fn client(settings: &Settings) -> InstanceClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(InstanceConnector::new(settings));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .build(https)
}

/// The TCP connector: checks an IP-literal host itself, and resolves names through
/// [`CheckedResolver`], then lets `HttpConnector` dial.
#[derive(Debug, Clone)]
pub struct InstanceConnector {
    http: HttpConnector<CheckedResolver>,
    allow_private: bool,
}

impl InstanceConnector {
    pub fn new(settings: &Settings) -> InstanceConnector {
        let resolver = CheckedResolver {
            resolver: settings.resolver.clone(),
            allow_private: settings.allow_private,
            timeout: settings.connect_timeout,
        };
        let mut http = HttpConnector::new_with_resolver(resolver);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.enforce_http(false);
        http.set_keepalive(Some(Duration::from_secs(60)));
        InstanceConnector { http, allow_private: settings.allow_private }
    }
}

impl Service<Uri> for InstanceConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<TokioIo<TcpStream>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let Some(ip) = uri.host().and_then(literal_ip)
            && let Err(refusal) = address::allowed(ip, self.allow_private)
        {
            return Box::pin(async move { Err(Refused::Literal(refusal).into()) });
        }
        let connecting = self.http.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// The address of an IP-literal host: what `HttpConnector` dials without resolving (std's
/// parse after stripping the brackets, mirrored exactly), or any other spelling the policy
/// reads as an address.
fn literal_ip(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(v4) = bare.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    if let Ok(v6) = bare.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    match address::parse_host(host) {
        Ok(Host::Ip(ip)) => Some(ip),
        _ => None,
    }
}

/// The resolver hooked into `HttpConnector`: looks the name up and returns only the
/// addresses the policy allows, which are the only ones `HttpConnector` will dial.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    resolver: Resolver,
    allow_private: bool,
    timeout: Duration,
}

impl Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = name.as_str();
            let addrs = lookup(&this.resolver, host, this.timeout).await?;
            let chosen = pick(&addrs, this.allow_private)
                .map_err(|refusals| Refused::Resolved { host: host.to_owned(), refusals })?;
            // Port 0: `HttpConnector` puts the URL's port in.
            Ok(chosen.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect::<Vec<_>>().into_iter())
        })
    }
}

#[cfg(test)]
mod tests;
