//! The address policy's table tests: every refused range at its edges, every spelling of
//! an IP literal, with and without `allow_private`. Pure: nothing here touches a network.

use std::net::IpAddr;

use super::Range::*;
use super::*;

const OK: Option<Range> = None;

/// (address, refused as … without allow_private, refused as … with allow_private)
const ADDRESSES: &[(&str, Option<Range>, Option<Range>)] = &[
    // 0.0.0.0/8 "this network": always refused (Linux connects 0.0.0.0 to this machine).
    ("0.0.0.0", Some(ThisNetwork), Some(ThisNetwork)),
    ("0.255.255.255", Some(ThisNetwork), Some(ThisNetwork)),
    ("1.0.0.0", OK, OK),
    ("1.1.1.1", OK, OK),
    ("8.8.8.8", OK, OK),
    // 10/8
    ("9.255.255.255", OK, OK),
    ("10.0.0.0", Some(Private10), OK),
    ("10.0.0.1", Some(Private10), OK),
    ("10.255.255.255", Some(Private10), OK),
    ("11.0.0.0", OK, OK),
    // 100.64/10 CGNAT
    ("100.63.255.255", OK, OK),
    ("100.64.0.0", Some(SharedCgnat), OK),
    ("100.127.255.255", Some(SharedCgnat), OK),
    ("100.128.0.0", OK, OK),
    ("100.100.100.199", Some(SharedCgnat), OK),
    ("100.100.100.200", Some(Metadata), Some(Metadata)), // Alibaba Cloud metadata, inside CGNAT
    // 127/8
    ("126.255.255.255", OK, OK),
    ("127.0.0.1", Some(Loopback), OK),
    ("127.0.0.0", Some(Loopback), OK),
    ("127.255.255.254", Some(Loopback), OK),
    ("128.0.0.0", OK, OK),
    // 169.254/16 link-local and cloud metadata: always refused
    ("169.253.255.255", OK, OK),
    ("169.254.0.0", Some(LinkLocal), Some(LinkLocal)),
    ("169.254.169.254", Some(LinkLocal), Some(LinkLocal)),
    ("169.254.255.255", Some(LinkLocal), Some(LinkLocal)),
    ("169.255.0.0", OK, OK),
    // 172.16/12
    ("172.15.255.255", OK, OK),
    ("172.16.0.0", Some(Private172), OK),
    ("172.31.255.255", Some(Private172), OK),
    ("172.32.0.0", OK, OK),
    // 192.168/16
    ("192.167.255.255", OK, OK),
    ("192.168.0.1", Some(Private192), OK),
    ("192.168.255.255", Some(Private192), OK),
    ("192.169.0.0", OK, OK),
    // 224/4 multicast, 240/4 reserved, broadcast: always refused
    ("223.255.255.255", OK, OK),
    ("224.0.0.0", Some(Multicast), Some(Multicast)),
    ("239.255.255.255", Some(Multicast), Some(Multicast)),
    ("240.0.0.0", Some(Reserved), Some(Reserved)),
    ("255.255.255.254", Some(Reserved), Some(Reserved)),
    ("255.255.255.255", Some(Broadcast), Some(Broadcast)),
    // IPv6 ranges
    ("::", Some(Unspecified6), Some(Unspecified6)),
    ("::1", Some(Loopback6), OK),
    ("2606:4700:4700::1111", OK, OK),
    ("2001:db8::1", OK, OK),
    ("fbff:ffff::1", OK, OK),
    ("fc00::", Some(UniqueLocal6), OK),
    ("fd12:3456::1", Some(UniqueLocal6), OK),
    ("fd00:ec2::254", Some(Metadata), Some(Metadata)), // AWS metadata over IPv6, inside fc00::/7
    ("::ffff:100.100.100.200", Some(Metadata), Some(Metadata)),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(UniqueLocal6), OK),
    ("fe7f:ffff::1", OK, OK),
    ("fe80::", Some(LinkLocal6), Some(LinkLocal6)),
    ("fe80::1", Some(LinkLocal6), Some(LinkLocal6)),
    ("febf:ffff::1", Some(LinkLocal6), Some(LinkLocal6)),
    ("fec0::1", OK, OK), // deprecated site-local: not in §7's list
    ("ff00::", Some(Multicast6), Some(Multicast6)),
    ("ff02::1", Some(Multicast6), Some(Multicast6)),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Multicast6), Some(Multicast6)),
    // IPv4-mapped ::ffff:0:0/96, in both spellings
    ("::ffff:127.0.0.1", Some(Loopback), OK),
    ("::ffff:7f00:1", Some(Loopback), OK),
    ("::ffff:10.0.0.1", Some(Private10), OK),
    ("::ffff:169.254.169.254", Some(LinkLocal), Some(LinkLocal)),
    ("::ffff:a9fe:a9fe", Some(LinkLocal), Some(LinkLocal)),
    ("::ffff:0.0.0.0", Some(ThisNetwork), Some(ThisNetwork)),
    ("::ffff:255.255.255.255", Some(Broadcast), Some(Broadcast)),
    ("::ffff:224.0.0.1", Some(Multicast), Some(Multicast)),
    ("::ffff:8.8.8.8", OK, OK),
    // IPv4-compatible ::/96 (deprecated) and IPv4-translated ::ffff:0:0:0/96
    ("::127.0.0.1", Some(Loopback), OK),
    ("::2", Some(ThisNetwork), Some(ThisNetwork)),
    ("::8.8.8.8", OK, OK),
    ("::ffff:0:10.0.0.1", Some(Private10), OK),
    ("::ffff:0:169.254.169.254", Some(LinkLocal), Some(LinkLocal)),
    ("::ffff:0:8.8.8.8", OK, OK),
    // NAT64 64:ff9b::/96; the local-use 64:ff9b:1::/48 is refused whole
    ("64:ff9b::127.0.0.1", Some(Loopback), OK),
    ("64:ff9b::a9fe:a9fe", Some(LinkLocal), Some(LinkLocal)),
    ("64:ff9b::192.168.1.1", Some(Private192), OK),
    ("64:ff9b::8.8.8.8", OK, OK),
    ("64:ff9b:1::8.8.8.8", Some(LocalNat64), Some(LocalNat64)),
    ("64:ff9b:1:ffff::1", Some(LocalNat64), Some(LocalNat64)),
    // 6to4 2002::/16: the IPv4 address is in bits 16..48
    ("2002:7f00:1::", Some(Loopback), OK),
    ("2002:a9fe:a9fe::1", Some(LinkLocal), Some(LinkLocal)),
    ("2002:ac10:1::1", Some(Private172), OK),
    ("2002:808:808::1", OK, OK),
    // Teredo 2001::/32: the client address is the last 32 bits, inverted
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", Some(Loopback), OK),
    ("2001:0:4136:e378:8000:63bf:5601:5601", Some(LinkLocal), Some(LinkLocal)),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", OK, OK),
];

#[test]
fn every_range_is_refused_exactly_as_listed() {
    for &(text, strict, lenient) in ADDRESSES {
        let ip: IpAddr = text.parse().unwrap();
        for (allow_private, expected) in [(false, strict), (true, lenient)] {
            let verdict = allowed(ip, allow_private);
            assert_eq!(
                verdict.err().map(|r| r.range),
                expected,
                "{text} with allow_private = {allow_private}: {verdict:?}"
            );
            if let Err(refusal) = verdict {
                assert!(refusal.to_string().starts_with(&ip.to_string()), "{refusal}");
            }
        }
    }
}

#[test]
fn refusals_read_as_sentences() {
    let refusal = |text: &str| allowed(text.parse().unwrap(), false).unwrap_err().to_string();
    assert_eq!(
        refusal("169.254.169.254"),
        "169.254.169.254 is a link-local address (169.254.0.0/16, where cloud metadata services answer)"
    );
    assert_eq!(
        refusal("::ffff:127.0.0.1"),
        "::ffff:127.0.0.1 is the IPv4-mapped form (::ffff:0:0/96) of 127.0.0.1, a loopback address (127.0.0.0/8)"
    );
    assert_eq!(refusal("::1"), "::1 is the loopback address (::1)");
}

/// The expected outcome of [`check_url`]: the canonical URL, or the error's kind.
#[derive(Debug, PartialEq)]
enum Want {
    Url(&'static str),
    Refused(Range),
    Bad(&'static str),
}
use Want::{Bad, Refused, Url};

fn outcome(text: &str, allow_private: bool) -> Want {
    match check_url(text, allow_private) {
        Ok(url) => Url(url.to_string().leak()),
        Err(UnsafeUrl::Refused(refusal)) => Refused(refusal.range),
        Err(other) => {
            let debug = format!("{other:?}");
            Bad(debug.split('(').next().unwrap_or_default().to_owned().leak())
        }
    }
}

/// (base_url, outcome without allow_private, outcome with allow_private)
const URLS: &[(&str, Want, Want)] = &[
    // Every spelling of 127.0.0.1 that browsers (WHATWG URL) read as IPv4.
    ("http://127.0.0.1:8000/v1", Refused(Loopback), Url("http://127.0.0.1:8000/v1")),
    ("http://2130706433/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://0x7f000001/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://0X7F000001/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://017700000001/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://0x7f.0.0.1/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://0x7f.1/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://0177.0.0.1/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://0177.0.0.01:8000/v1", Refused(Loopback), Url("http://127.0.0.1:8000/v1")),
    ("http://00000127.0.0.1/", Url("http://87.0.0.1"), Url("http://87.0.0.1")), // octal 127 = 87: public
    ("http://127.1/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://127.0.1/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://127.0.0.1./", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://0x7f.0x0.0x0.0x1./", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://127.0.0.1:80/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://[::ffff:127.0.0.1]/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://[::ffff:7f00:1]:8000/", Refused(Loopback), Url("http://127.0.0.1:8000")),
    ("http://[0:0:0:0:0:ffff:7f00:0001]/", Refused(Loopback), Url("http://127.0.0.1")),
    ("http://[::127.0.0.1]/", Refused(Loopback), Url("http://[::7f00:1]")),
    ("http://[64:ff9b::7f00:1]/", Refused(Loopback), Url("http://[64:ff9b::7f00:1]")),
    ("http://[2002:7f00:1::]/", Refused(Loopback), Url("http://[2002:7f00:1::]")),
    ("http://[::1]:8000/", Refused(Loopback6), Url("http://[::1]:8000")),
    ("http://[0:0:0:0:0:0:0:1]/", Refused(Loopback6), Url("http://[::1]")),
    ("http://[::1%25lo]/", Refused(Loopback6), Bad("ZoneId")),
    // 0.0.0.0 and ::, always refused.
    ("http://0/", Refused(ThisNetwork), Refused(ThisNetwork)),
    ("http://0x0/", Refused(ThisNetwork), Refused(ThisNetwork)),
    ("http://0.0.0.0:8000/", Refused(ThisNetwork), Refused(ThisNetwork)),
    ("http://[::]/", Refused(Unspecified6), Refused(Unspecified6)),
    ("http://[::ffff:0.0.0.0]/", Refused(ThisNetwork), Refused(ThisNetwork)),
    // Cloud metadata in every spelling, always refused.
    ("http://169.254.169.254/latest/meta-data", Refused(LinkLocal), Refused(LinkLocal)),
    ("http://2852039166/", Refused(LinkLocal), Refused(LinkLocal)),
    ("http://0xa9fea9fe/", Refused(LinkLocal), Refused(LinkLocal)),
    ("http://0xa9.0xfe.0xa9.0xfe/", Refused(LinkLocal), Refused(LinkLocal)),
    ("http://0251.0376.0251.0376/", Refused(LinkLocal), Refused(LinkLocal)),
    ("http://169.254.43518/", Refused(LinkLocal), Refused(LinkLocal)),
    ("http://169.16689662/", Refused(LinkLocal), Refused(LinkLocal)),
    ("http://[::ffff:169.254.169.254]/", Refused(LinkLocal), Refused(LinkLocal)),
    ("http://[::ffff:a9fe:a9fe]/", Refused(LinkLocal), Refused(LinkLocal)),
    ("http://[64:ff9b::a9fe:a9fe]/", Refused(LinkLocal), Refused(LinkLocal)),
    ("http://[fe80::1]/", Refused(LinkLocal6), Refused(LinkLocal6)),
    ("http://[fe80::1%25eth0]/", Refused(LinkLocal6), Refused(LinkLocal6)),
    ("http://[fe80::1%eth0]/", Refused(LinkLocal6), Refused(LinkLocal6)),
    ("http://[fd00:ec2::254]/", Refused(Metadata), Refused(Metadata)),
    ("http://100.100.100.200/", Refused(Metadata), Refused(Metadata)),
    ("http://[fd00:ec2::253]/", Refused(UniqueLocal6), Url("http://[fd00:ec2::253]")),
    // The private ranges, short forms included.
    ("http://10.1/", Refused(Private10), Url("http://10.0.0.1")),
    ("http://167772161/", Refused(Private10), Url("http://10.0.0.1")),
    ("http://172.16.0.1/", Refused(Private172), Url("http://172.16.0.1")),
    ("http://0xac.0x1f.0xff.0xff/", Refused(Private172), Url("http://172.31.255.255")),
    ("http://192.168.1/", Refused(Private192), Url("http://192.168.0.1")),
    ("http://100.64.0.1/", Refused(SharedCgnat), Url("http://100.64.0.1")),
    ("http://[fc00::1]/", Refused(UniqueLocal6), Url("http://[fc00::1]")),
    // Multicast, reserved, broadcast.
    ("http://224.0.0.1/", Refused(Multicast), Refused(Multicast)),
    ("http://[ff02::1]/", Refused(Multicast6), Refused(Multicast6)),
    ("http://240.0.0.1/", Refused(Reserved), Refused(Reserved)),
    ("http://255.255.255.255/", Refused(Broadcast), Refused(Broadcast)),
    ("http://4294967295/", Refused(Broadcast), Refused(Broadcast)),
    ("http://0xffffffff/", Refused(Broadcast), Refused(Broadcast)),
    // Hosts that end in a number but are no IPv4 address: refused, as browsers do.
    ("http://4294967296/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://256.0.0.1/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://127.0.0.256/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://1.2.3.4.5/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://1.2.3.08/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://0x100.0.0.1/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://127.0.0.1../", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://example.0x1/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://example.123/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://%31%32%37.0.0.1/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://::1/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://[::1/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://[::1]x/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://[127.0.0.1]/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://[::1%]/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://exa_mple..com/", Bad("InvalidHost"), Bad("InvalidHost")),
    // Public addresses and names, canonicalised.
    ("http://1.2.3.4/", Url("http://1.2.3.4"), Url("http://1.2.3.4")),
    ("http://0x8.0x8.0x8.0x8/", Url("http://8.8.8.8"), Url("http://8.8.8.8")),
    ("http://134744072/", Url("http://8.8.8.8"), Url("http://8.8.8.8")),
    ("http://[::ffff:8.8.8.8]:8080/", Url("http://8.8.8.8:8080"), Url("http://8.8.8.8:8080")),
    ("http://[2606:4700:4700:0::1111]/", Url("http://[2606:4700:4700::1111]"), Url("http://[2606:4700:4700::1111]")),
    ("https://8.8.8.8:443/v1/", Url("https://8.8.8.8/v1"), Url("https://8.8.8.8/v1")),
    (
        "HTTPS://GPU.Example.COM:8443/V1//",
        Url("https://gpu.example.com:8443/V1"),
        Url("https://gpu.example.com:8443/V1"),
    ),
    ("https://api.example.com", Url("https://api.example.com"), Url("https://api.example.com")),
    ("http://example.com./v1", Url("http://example.com./v1"), Url("http://example.com./v1")),
    ("http://my_box.example:8000/", Url("http://my_box.example:8000"), Url("http://my_box.example:8000")),
    ("http://example.com:/v1", Url("http://example.com/v1"), Url("http://example.com/v1")),
    ("  http://example.com/v1  ", Url("http://example.com/v1"), Url("http://example.com/v1")),
    ("http://example.com/a;b/c%20d/~e", Url("http://example.com/a;b/c%20d/~e"), Url("http://example.com/a;b/c%20d/~e")),
    // localhost names, refused unless allow_private (they resolve to loopback anyway).
    ("http://localhost:8000/v1", Bad("LocalName"), Url("http://localhost:8000/v1")),
    ("http://LOCALHOST./", Bad("LocalName"), Url("http://localhost.")),
    ("http://gpu.localhost/", Bad("LocalName"), Url("http://gpu.localhost")),
    // Schemes, userinfo, characters, ports, queries, fragments, zone ids.
    ("ftp://example.com/", Bad("Scheme"), Bad("Scheme")),
    ("file:///etc/passwd", Bad("Scheme"), Bad("Scheme")),
    ("gopher://127.0.0.1:6379/_INFO", Bad("Scheme"), Bad("Scheme")),
    ("ws://example.com/", Bad("Scheme"), Bad("Scheme")),
    ("example.com", Bad("Scheme"), Bad("Scheme")),
    ("//example.com", Bad("Scheme"), Bad("Scheme")),
    ("http:/example.com", Bad("Scheme"), Bad("Scheme")),
    ("", Bad("Scheme"), Bad("Scheme")),
    ("http://user:pass@example.com/", Bad("Userinfo"), Bad("Userinfo")),
    ("http://example.com@127.0.0.1/", Bad("Userinfo"), Bad("Userinfo")),
    ("http://@example.com/", Bad("Userinfo"), Bad("Userinfo")),
    ("http://127.0.0.1\\@example.com/", Bad("Character"), Bad("Character")),
    ("http://example.com\\v1", Bad("Character"), Bad("Character")),
    ("http://exa mple.com/", Bad("Character"), Bad("Character")),
    ("http://exämple.com/", Bad("Character"), Bad("Character")),
    ("http://example.com/\tv1", Bad("Character"), Bad("Character")),
    ("http://example.com/v1/{model}", Bad("Character"), Bad("Character")),
    ("http:///v1", Bad("NoHost"), Bad("NoHost")),
    ("http://:8000/", Bad("NoHost"), Bad("NoHost")),
    ("http://example.com:0/", Bad("InvalidPort"), Bad("InvalidPort")),
    ("http://example.com:65536/", Bad("InvalidPort"), Bad("InvalidPort")),
    ("http://example.com:+80/", Bad("InvalidPort"), Bad("InvalidPort")),
    ("http://example.com:80:80/", Bad("InvalidHost"), Bad("InvalidHost")),
    ("http://example.com/v1?api-version=1", Bad("Query"), Bad("Query")),
    ("http://example.com?x", Bad("Query"), Bad("Query")),
    ("http://example.com/v1#top", Bad("Fragment"), Bad("Fragment")),
    ("http://[2001:4860:4860::8888%25eth0]/", Bad("ZoneId"), Bad("ZoneId")),
];

#[test]
fn every_spelling_is_normalised_before_the_check() {
    let mut wrong = Vec::new();
    for (text, strict, lenient) in URLS {
        for (allow_private, want) in [(false, strict), (true, lenient)] {
            let got = outcome(text, allow_private);
            if &got != want {
                wrong.push(format!("{text:?} allow_private = {allow_private}: got {got:?}, want {want:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_checked_url_joins_request_paths_under_its_base() {
    let url = check_url("https://gpu.example.com:8443/v1/", false).unwrap();
    assert_eq!(url.join("/models"), "https://gpu.example.com:8443/v1/models");
    assert_eq!(url.port(), 8443);
    assert_eq!(url.host(), &Host::Name("gpu.example.com".to_owned()));
    let url = check_url("http://[::ffff:8.8.8.8]/", false).unwrap();
    assert_eq!(url.host(), &Host::Ip("8.8.8.8".parse().unwrap()));
    assert_eq!((url.port(), url.path()), (80, ""));
    assert_eq!(url.join("/chat/completions"), "http://8.8.8.8/chat/completions");
}

#[test]
fn the_refusal_is_the_message() {
    let error = check_url("http://0xa9fea9fe/", true).unwrap_err();
    assert_eq!(
        error.to_string(),
        "169.254.169.254 is a link-local address (169.254.0.0/16, where cloud metadata services answer)"
    );
    assert_eq!(check_url("ftp://x/", true).unwrap_err().to_string(), "the URL must start with http:// or https://");
}
