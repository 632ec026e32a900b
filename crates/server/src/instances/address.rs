//! The address policy for instances (SSRF defence, CONTRACTS.md §7): which base URLs are
//! accepted and which IP addresses the gateway may connect to. Pure: no I/O.
//!
//! Two entry points. [`check_url`] parses an instance's `base_url`, reads an IP-literal
//! host in every spelling a browser would (decimal `2130706433`, hex `0x7f.1`, octal
//! `0177.0.0.1`, short `127.1`, IPv6 with embedded IPv4, zone ids, trailing dots) and
//! refuses it if the address is refused. [`allowed`] is the verdict on one address; the
//! connector applies it to every address a host name resolves to, at every connection.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An accepted instance base URL, in canonical form: lower-case scheme and host, an
/// IP-literal host in its standard spelling (IPv4-mapped IPv6 written as IPv4), the port
/// only when it is not the scheme's default, the path without trailing slashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUrl {
    scheme: Scheme,
    host: Host,
    port: Option<u16>,
    path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// The host of an instance URL: an address (already checked) or a name (checked on every
/// resolution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl InstanceUrl {
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port connected to: the explicit one, else the scheme's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        })
    }

    /// The base path, empty or starting with `/`, never ending with one.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The URL of `path` (which starts with `/`) under this base, e.g. `join("/models")`.
    pub fn join(&self, path: &str) -> String {
        format!("{self}{path}")
    }
}

impl fmt::Display for InstanceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://")?;
        match &self.host {
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]")?,
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}")?,
            Host::Name(name) => f.write_str(name)?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        f.write_str(&self.path)
    }
}

/// Why a `base_url` is refused: the 400 `unsafe_url` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeUrl {
    #[error("the URL must start with http:// or https://")]
    Scheme,
    #[error(
        "the URL may contain only printable ASCII without spaces or backslashes \
         (write an international domain name in its xn-- form)"
    )]
    Character,
    #[error("the URL must not contain a user name or password")]
    Userinfo,
    #[error("the URL has no host")]
    NoHost,
    #[error("{0:?} is not a valid host name or IP address")]
    InvalidHost(String),
    #[error("{0:?} is not a valid port (1 to 65535)")]
    InvalidPort(String),
    #[error("the URL must not have a query (?…): request paths are appended to it")]
    Query,
    #[error("the URL must not have a fragment (#…)")]
    Fragment,
    #[error("an IPv6 zone id (%…) is not accepted")]
    ZoneId,
    #[error("{0:?} always names this machine")]
    LocalName(String),
    #[error("{0}")]
    Refused(Refusal),
}

/// Parses and checks an instance's `base_url` (§7).
///
/// Refused, beyond a malformed URL: a scheme other than http/https; userinfo (it hides the
/// real host from a human reader: `http://trusted@10.0.0.1`); a query, because request
/// paths are appended to the base and would land inside it; a fragment, which means
/// nothing to a server; backslashes (parsers disagree on them); an IPv6 zone id; and, unless
/// `allow_private`, the names `localhost`/`*.localhost`. An IP-literal host is normalised
/// as browsers do (WHATWG URL) and must pass [`allowed`]; a host name is checked on every
/// resolution by the connector.
pub fn check_url(text: &str, allow_private: bool) -> Result<InstanceUrl, UnsafeUrl> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if !text.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err(UnsafeUrl::Character);
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
        Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
        _ => return Err(UnsafeUrl::Scheme),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(UnsafeUrl::Userinfo);
    }
    let (host_text, port_text) = split_host_port(authority)?;
    let host = parse_host(host_text)?;
    let port = parse_port(port_text, scheme)?;
    let path = parse_path(tail)?;

    match &host {
        Host::Ip(ip) => allowed(*ip, allow_private).map_err(UnsafeUrl::Refused)?,
        Host::Name(name) if !allow_private && is_localhost(name) => {
            return Err(UnsafeUrl::LocalName(name.clone()));
        }
        Host::Name(_) => {}
    }
    if host_text.starts_with('[') && host_text.contains('%') {
        // Checked after the address so that `fe80::1%eth0` is refused as link-local.
        return Err(UnsafeUrl::ZoneId);
    }
    let host = match host {
        Host::Ip(ip) => Host::Ip(ip.to_canonical()),
        name => name,
    };
    Ok(InstanceUrl { scheme, host, port, path })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), UnsafeUrl> {
    if authority.is_empty() {
        return Err(UnsafeUrl::NoHost);
    }
    if authority.starts_with('[') {
        let Some(close) = authority.find(']') else {
            return Err(UnsafeUrl::InvalidHost(authority.to_owned()));
        };
        let (host, after) = authority.split_at(close + 1);
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(UnsafeUrl::InvalidHost(authority.to_owned())),
            },
        };
    }
    match authority.split_once(':') {
        // More than one colon outside brackets: an IPv6 address written without them.
        Some((_, port)) if port.contains(':') => Err(UnsafeUrl::InvalidHost(authority.to_owned())),
        Some(("", _)) => Err(UnsafeUrl::NoHost),
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((authority, None)),
    }
}

/// Reads a URL host: a bracketed IPv6 literal (zone id ignored here), any IPv4 spelling,
/// or a DNS name (lower-cased, LDH labels, one trailing dot allowed).
pub fn parse_host(text: &str) -> Result<Host, UnsafeUrl> {
    let invalid = || UnsafeUrl::InvalidHost(text.to_owned());
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(invalid)?;
        let address = match inner.split_once('%') {
            Some((address, zone)) if !zone.is_empty() => address,
            Some(_) => return Err(invalid()),
            None => inner,
        };
        return address.parse::<Ipv6Addr>().map(|v6| Host::Ip(IpAddr::V6(v6))).map_err(|_| invalid());
    }
    match parse_ipv4(text) {
        Some(Ok(v4)) => return Ok(Host::Ip(IpAddr::V4(v4))),
        Some(Err(())) => return Err(invalid()),
        None => {}
    }
    let name = text.to_ascii_lowercase();
    let labels = name.strip_suffix('.').unwrap_or(&name);
    let valid = !labels.is_empty()
        && labels.len() <= 253
        && labels.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid { Ok(Host::Name(name)) } else { Err(invalid()) }
}

fn is_localhost(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name == "localhost" || name.ends_with(".localhost")
}

/// The WHATWG URL IPv4 parser: `None` when `host` is a domain name (it does not end in a
/// number), `Some(Ok)` when it is an IPv4 address in any spelling (1 to 4 parts, each
/// decimal, `0x` hex or `0`-prefixed octal, the last part filling the remaining bytes,
/// one trailing dot allowed), `Some(Err)` when it ends in a number but is not a valid
/// address (browsers refuse such a host, and so do we).
pub fn parse_ipv4(host: &str) -> Option<Result<Ipv4Addr, ()>> {
    let mut parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    let last = parts.last()?;
    let ends_in_number = (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || ipv4_number(last).is_some();
    if !ends_in_number {
        return None;
    }
    if parts.len() > 4 {
        return Some(Err(()));
    }
    let mut numbers = Vec::with_capacity(parts.len());
    for part in &parts {
        match ipv4_number(part) {
            Some(n) => numbers.push(n),
            None => return Some(Err(())),
        }
    }
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|&n| n > 255) {
        return Some(Err(()));
    }
    let last_bits = 8 * (5 - numbers.len() as u32);
    if *last >= 1u64 << last_bits {
        return Some(Err(()));
    }
    let mut value = *last;
    for (i, n) in leading.iter().enumerate() {
        value += n << (8 * (3 - i as u32));
    }
    Some(u32::try_from(value).map(Ipv4Addr::from).map_err(|_| ()))
}

/// One part of a WHATWG IPv4 address; `None` if it is not a number. Values past `u32` are
/// capped (they are refused by the caller all the same).
fn ipv4_number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    let mut value: u64 = 0;
    for c in digits.chars() {
        let digit = c.to_digit(radix)?;
        value = value.saturating_mul(u64::from(radix)).saturating_add(u64::from(digit)).min(1 << 40);
    }
    Some(value)
}

fn parse_port(text: Option<&str>, scheme: Scheme) -> Result<Option<u16>, UnsafeUrl> {
    let Some(text) = text else { return Ok(None) };
    if text.is_empty() {
        return Ok(None); // `http://host:/` means the default port, as in browsers
    }
    let invalid = || UnsafeUrl::InvalidPort(text.to_owned());
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let port: u16 = text.parse().map_err(|_| invalid())?;
    match (port, scheme) {
        (0, _) => Err(invalid()),
        (80, Scheme::Http) | (443, Scheme::Https) => Ok(None),
        (port, _) => Ok(Some(port)),
    }
}

/// Keeps the path (RFC 3986 path characters only), without trailing slashes.
fn parse_path(tail: &str) -> Result<String, UnsafeUrl> {
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    match tail[path_end..].chars().next() {
        Some('?') => return Err(UnsafeUrl::Query),
        Some('#') => return Err(UnsafeUrl::Fragment),
        _ => {}
    }
    let path = &tail[..path_end];
    let pchar = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/".contains(&b);
    if !path.bytes().all(pchar) {
        return Err(UnsafeUrl::Character);
    }
    Ok(path.trim_end_matches('/').to_owned())
}

/// Why an address is refused: the address, the IPv4 address it embeds when that is what
/// was refused, and the refused range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct Refusal {
    pub address: IpAddr,
    pub embedded: Option<(Ipv4Addr, Embedding)>,
    pub range: Range,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            None => write!(f, "{} is {}", self.address, self.range.describe()),
            Some((v4, how)) => write!(f, "{} is {} of {v4}, {}", self.address, how.describe(), self.range.describe()),
        }
    }
}

/// The refused ranges: §7's, plus 240/4 reserved, the local-use NAT64 prefix, and the cloud
/// metadata addresses that sit inside ranges `allow_private` lifts (Alibaba's
/// 100.100.100.200 in CGNAT, AWS's fd00:ec2::254 in fc00::/7; the others are 169.254/16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    ThisNetwork,
    Metadata,
    Private10,
    SharedCgnat,
    Loopback,
    LinkLocal,
    Private172,
    Private192,
    Multicast,
    Reserved,
    Broadcast,
    Unspecified6,
    Loopback6,
    UniqueLocal6,
    LinkLocal6,
    Multicast6,
    LocalNat64,
}

impl Range {
    /// True for the ranges that `allow_private_addresses = true` opens (a LAN, tests);
    /// link-local (cloud metadata), unspecified, multicast, broadcast and reserved
    /// addresses stay refused.
    pub fn lifted_by_allow_private(self) -> bool {
        matches!(
            self,
            Range::Private10
                | Range::SharedCgnat
                | Range::Loopback
                | Range::Private172
                | Range::Private192
                | Range::Loopback6
                | Range::UniqueLocal6
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Range::ThisNetwork => "a \"this network\" address (0.0.0.0/8)",
            Range::Metadata => "a cloud metadata service address",
            Range::Private10 => "a private address (10.0.0.0/8)",
            Range::SharedCgnat => "a carrier-grade NAT address (100.64.0.0/10)",
            Range::Loopback => "a loopback address (127.0.0.0/8)",
            Range::LinkLocal => "a link-local address (169.254.0.0/16, where cloud metadata services answer)",
            Range::Private172 => "a private address (172.16.0.0/12)",
            Range::Private192 => "a private address (192.168.0.0/16)",
            Range::Multicast => "a multicast address (224.0.0.0/4)",
            Range::Reserved => "a reserved address (240.0.0.0/4)",
            Range::Broadcast => "the broadcast address",
            Range::Unspecified6 => "the unspecified address (::)",
            Range::Loopback6 => "the loopback address (::1)",
            Range::UniqueLocal6 => "a unique local address (fc00::/7)",
            Range::LinkLocal6 => "a link-local address (fe80::/10)",
            Range::Multicast6 => "a multicast address (ff00::/8)",
            Range::LocalNat64 => "a local-use NAT64 address (64:ff9b:1::/48)",
        }
    }
}

/// How an IPv6 address carries an IPv4 one that the network may deliver to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    Mapped,
    Compatible,
    Translated,
    Nat64,
    SixToFour,
    Teredo,
}

impl Embedding {
    fn describe(self) -> &'static str {
        match self {
            Embedding::Mapped => "the IPv4-mapped form (::ffff:0:0/96)",
            Embedding::Compatible => "the IPv4-compatible form (::/96)",
            Embedding::Translated => "the IPv4-translated form (::ffff:0:0:0/96)",
            Embedding::Nat64 => "the NAT64 form (64:ff9b::/96)",
            Embedding::SixToFour => "the 6to4 form (2002::/16)",
            Embedding::Teredo => "the Teredo form (2001::/32)",
        }
    }
}

/// First match wins: single addresses come before the blocks that hold them.
const V4_RANGES: &[(Ipv4Addr, u8, Range)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, Range::ThisNetwork),
    (Ipv4Addr::new(10, 0, 0, 0), 8, Range::Private10),
    (Ipv4Addr::new(100, 100, 100, 200), 32, Range::Metadata), // Alibaba Cloud, inside CGNAT
    (Ipv4Addr::new(100, 64, 0, 0), 10, Range::SharedCgnat),
    (Ipv4Addr::new(127, 0, 0, 0), 8, Range::Loopback),
    (Ipv4Addr::new(169, 254, 0, 0), 16, Range::LinkLocal),
    (Ipv4Addr::new(172, 16, 0, 0), 12, Range::Private172),
    (Ipv4Addr::new(192, 168, 0, 0), 16, Range::Private192),
    (Ipv4Addr::new(224, 0, 0, 0), 4, Range::Multicast),
    (Ipv4Addr::new(255, 255, 255, 255), 32, Range::Broadcast),
    (Ipv4Addr::new(240, 0, 0, 0), 4, Range::Reserved),
];

const V6_RANGES: &[(Ipv6Addr, u8, Range)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, Range::Unspecified6),
    (Ipv6Addr::LOCALHOST, 128, Range::Loopback6),
    (Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), 128, Range::Metadata), // AWS, inside fc00::/7
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, Range::UniqueLocal6),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, Range::LinkLocal6),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, Range::Multicast6),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, Range::LocalNat64),
];

/// The verdict on one address: `Ok` if the gateway may connect to it.
pub fn allowed(ip: IpAddr, allow_private: bool) -> Result<(), Refusal> {
    let permits = |range: Range| allow_private && range.lifted_by_allow_private();
    match ip {
        IpAddr::V4(v4) => match v4_range(v4) {
            Some(range) if !permits(range) => Err(Refusal { address: ip, embedded: None, range }),
            _ => Ok(()),
        },
        IpAddr::V6(v6) => {
            // `::` and `::1` lie inside the IPv4-compatible ::/96, so the IPv6 ranges decide
            // first, and an address in one of them is not read as an embedding.
            if let Some(range) = v6_range(v6) {
                return if permits(range) { Ok(()) } else { Err(Refusal { address: ip, embedded: None, range }) };
            }
            match embedded_v4(v6).and_then(|(v4, how)| Some((v4, how, v4_range(v4)?))) {
                Some((v4, how, range)) if !permits(range) => {
                    Err(Refusal { address: ip, embedded: Some((v4, how)), range })
                }
                _ => Ok(()),
            }
        }
    }
}

fn v4_range(v4: Ipv4Addr) -> Option<Range> {
    let bits = u32::from(v4);
    V4_RANGES.iter().find(|(base, len, _)| bits & mask32(*len) == u32::from(*base)).map(|(_, _, range)| *range)
}

fn v6_range(v6: Ipv6Addr) -> Option<Range> {
    let bits = u128::from(v6);
    V6_RANGES.iter().find(|(base, len, _)| bits & mask128(*len) == u128::from(*base)).map(|(_, _, range)| *range)
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// The IPv4 address an IPv6 address hands traffic to, in the forms a host or network may
/// deliver: mapped, compatible, translated (SIIT), NAT64 well-known prefix, 6to4 and
/// Teredo (the client address, stored inverted).
fn embedded_v4(v6: Ipv6Addr) -> Option<(Ipv4Addr, Embedding)> {
    let s = v6.segments();
    let low = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some((low, Embedding::Mapped)),
        [0, 0, 0, 0, 0, 0, _, _] => Some((low, Embedding::Compatible)),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some((low, Embedding::Translated)),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some((low, Embedding::Nat64)),
        [0x2002, hi, lo, ..] => Some((Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)), Embedding::SixToFour)),
        [0x2001, 0, ..] => Some((Ipv4Addr::from(!u32::from(low)), Embedding::Teredo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
