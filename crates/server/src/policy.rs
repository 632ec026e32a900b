//! What a request may do: the key's model allowlist (exact ids and `prefix*` patterns),
//! its IP allowlist (the client address, behind trusted proxies too), the output limit
//! (clamped to the model's), and the context window.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::HeaderMap;
use http::request::Parts;
use ipnet::IpNet;
use tokenrouter_providers::openai::ChatView;
use tokenrouter_providers::passthrough::{RawObject, raw_from_vec};
use tokenrouter_store::KeyRow;

use crate::auth::Authed;
use crate::config::Model;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens;

/// The output limit to send: the request's, lowered to the model's when above it.
pub fn clamp_output(requested: Option<u64>, model: &Model) -> Option<u64> {
    requested.map(|n| n.min(model.max_output_tokens))
}

/// Writes a clamped output limit back into whichever field(s) the client used.
pub fn apply_output_limit(request: &mut RawObject<'_>, view: &ChatView, max_out: Option<u64>) {
    let Some(limit) = max_out.filter(|m| Some(*m) != view.max_tokens) else { return };
    for field in ["max_completion_tokens", "max_tokens"] {
        if request.get(field).is_some_and(|v| v.get() != "null") {
            request.set(field, raw_from_vec(limit.to_string().into_bytes()));
        }
    }
}

/// Refuses, without calling any upstream, a prompt that with its output limit cannot fit
/// the model's context window. Exact counting runs only when the cheap bound is too high.
pub fn check_context(body: &[u8], max_out: Option<u64>, model: &Model) -> Result<(), ApiError> {
    let completion = max_out.unwrap_or(0);
    if tokens::prompt_upper_bound(body).saturating_add(completion) <= model.context_window {
        return Ok(());
    }
    let prompt = tokens::count_prompt(body);
    if prompt.saturating_add(completion) > model.context_window {
        return Err(ApiError::ContextLengthExceeded { window: model.context_window, prompt, completion });
    }
    Ok(())
}

/// An empty allowlist allows every model.
pub fn model_allowed(key: &KeyRow, model: &str) -> bool {
    key.models.is_empty()
        || key.models.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => model.starts_with(prefix),
            None => pattern == model,
        })
}

/// An authenticated key whose IP allowlist admits the request's client address; else
/// 403 `ip_not_allowed`. Every authenticated route takes its key through this.
#[derive(Debug, Clone)]
pub struct Permitted(pub Arc<KeyRow>);

impl FromRequestParts<AppState> for Permitted {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authed(key) = Authed::from_request_parts(parts, state).await?;
        if !key.ips.is_empty() {
            state.allowlists.check(&key, client_of(parts, state))?;
        }
        Ok(Permitted(key))
    }
}

/// The client's address: the TCP peer, or what a trusted proxy says it forwarded.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_of(parts, state)))
    }
}

pub fn client_of(parts: &Parts, state: &AppState) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    client_ip(peer, &parts.headers, &state.config.load().server.trusted_proxies)
}

/// A CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address (one host).
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    match text.parse::<IpNet>() {
        Ok(net) => Some(net),
        Err(_) => text.parse::<IpAddr>().ok().map(IpNet::from),
    }
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` address that is not itself one (proxies append, so
/// addresses left of it are the client's word and are never believed). `None` when
/// unknown or when a trusted proxy forwarded something that is not an address.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer?.to_canonical();
    if !is_trusted(&client) {
        return Some(client);
    }
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        for item in value.to_str().ok()?.rsplit(',').map(str::trim).filter(|i| !i.is_empty()) {
            client = forwarded_address(item)?;
            if !is_trusted(&client) {
                return Some(client);
            }
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port or in brackets.
fn forwarded_address(item: &str) -> Option<IpAddr> {
    let ip = item
        .parse::<IpAddr>()
        .or_else(|_| item.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| item.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>())
        .ok()?;
    Some(ip.to_canonical())
}

/// Keys' IP allowlists, each parsed once (again only when the key's list changes).
#[derive(Debug, Default)]
pub struct IpAllowlists {
    parsed: RwLock<HashMap<String, Allowlist>>,
}

#[derive(Debug)]
struct Allowlist {
    /// The entries as stored, to notice a change.
    source: Vec<String>,
    nets: Box<[IpNet]>,
}

impl Allowlist {
    /// Entries that do not parse match nothing; they are logged once, here.
    fn parse(key: &KeyRow) -> Allowlist {
        let nets = key
            .ips
            .iter()
            .filter_map(|entry| {
                let net = parse_net(entry);
                if net.is_none() {
                    tracing::warn!(key = %key.id, entry = %entry, "an IP allowlist entry is not a CIDR or address; it matches nothing");
                }
                net
            })
            .collect();
        Allowlist { source: key.ips.clone(), nets }
    }

    fn admits(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

impl IpAllowlists {
    /// Refuses a client address outside the key's allowlist (an empty list allows any;
    /// an unknown address is refused by a non-empty one).
    pub fn check(&self, key: &KeyRow, client: Option<IpAddr>) -> Result<(), ApiError> {
        if key.ips.is_empty() {
            return Ok(());
        }
        let Some(ip) = client else {
            return Err(ApiError::IpNotAllowed("an unknown address".to_owned()));
        };
        if self.admits(key, ip) { Ok(()) } else { Err(ApiError::IpNotAllowed(ip.to_string())) }
    }

    fn admits(&self, key: &KeyRow, ip: IpAddr) -> bool {
        {
            let parsed = self.parsed.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(list) = parsed.get(&key.id).filter(|l| l.source == key.ips) {
                return list.admits(ip);
            }
        }
        let mut parsed = self.parsed.write().unwrap_or_else(PoisonError::into_inner);
        if parsed.get(&key.id).is_none_or(|l| l.source != key.ips) {
            parsed.insert(key.id.clone(), Allowlist::parse(key));
        }
        parsed.get(&key.id).is_some_and(|l| l.admits(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix_patterns() {
        let mut key = KeyRow { id: "k".into(), ..KeyRow::default() };
        assert!(model_allowed(&key, "anything"));
        key.models = vec!["gpt-4o".into(), "claude-*".into()];
        assert!(model_allowed(&key, "gpt-4o"));
        assert!(!model_allowed(&key, "gpt-4o-mini"));
        assert!(model_allowed(&key, "claude-haiku-4-5"));
        assert!(!model_allowed(&key, "gemini-2.5-pro"));
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn allowlists_take_cidrs_and_addresses_of_both_families() {
        let mut key = KeyRow {
            id: "k".into(),
            models: vec![],
            ips: vec!["10.0.0.0/8".into(), " ::1 ".into(), "2001:db8::/32".into(), "not-an-ip".into()],
            ..KeyRow::default()
        };
        let lists = IpAllowlists::default();
        assert!(lists.check(&key, Some(ip("10.200.1.2"))).is_ok());
        assert!(lists.check(&key, Some(ip("::1"))).is_ok());
        assert!(lists.check(&key, Some(ip("2001:db8:ffff::1"))).is_ok());
        assert!(matches!(lists.check(&key, Some(ip("11.0.0.1"))), Err(ApiError::IpNotAllowed(a)) if a == "11.0.0.1"));
        assert!(lists.check(&key, Some(ip("127.0.0.1"))).is_err());
        assert!(lists.check(&key, None).is_err(), "an unknown address is refused by a list");
        key.ips = vec!["127.0.0.1".into()];
        assert!(lists.check(&key, Some(ip("127.0.0.1"))).is_ok(), "a changed list is parsed again");
        assert!(lists.check(&key, Some(ip("10.0.0.1"))).is_err());
        key.ips.clear();
        assert!(lists.check(&key, None).is_ok(), "an empty list allows any address");
        assert_eq!(parse_net("10.1.2.3/8").map(|n| n.contains(&ip("10.9.9.9"))), Some(true));
        assert!(parse_net("10.0.0.0/33").is_none() && parse_net("").is_none());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [parse_net("127.0.0.1/32").unwrap(), parse_net("10.0.0.0/8").unwrap()];
        let local = Some(ip("127.0.0.1"));
        let headers = xff(&["6.6.6.6, 1.2.3.4, 10.0.0.7"]);
        assert_eq!(client_ip(local, &headers, &trusted), Some(ip("1.2.3.4")), "right-most untrusted");
        assert_eq!(client_ip(Some(ip("5.5.5.5")), &headers, &trusted), Some(ip("5.5.5.5")), "peer not trusted");
        assert_eq!(client_ip(local, &headers, &[]), local, "no trusted proxies: XFF ignored");
        assert_eq!(client_ip(local, &HeaderMap::new(), &trusted), local);
        assert_eq!(client_ip(local, &xff(&["10.0.0.9"]), &trusted), Some(ip("10.0.0.9")), "all trusted: left-most");
        assert_eq!(client_ip(local, &xff(&["1.1.1.1", "2.2.2.2:8080"]), &trusted), Some(ip("2.2.2.2")));
        assert_eq!(client_ip(local, &xff(&["[2001:db8::1]:443"]), &trusted), Some(ip("2001:db8::1")));
        assert_eq!(client_ip(local, &xff(&["garbage"]), &trusted), None);
        assert_eq!(client_ip(local, &xff(&["garbage, 3.3.3.3"]), &trusted), Some(ip("3.3.3.3")));
        assert_eq!(client_ip(Some(ip("::ffff:127.0.0.1")), &xff(&["4.4.4.4"]), &trusted), Some(ip("4.4.4.4")));
        assert_eq!(client_ip(None, &headers, &trusted), None);
    }
}
