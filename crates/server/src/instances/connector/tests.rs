//! Connector tests. No packet leaves loopback even if the code under test is wrong: host
//! names resolve through a table (never DNS), which addresses would be dialed among
//! refused ones is asserted on the pure `pick`, and the only addresses ever given to the
//! dialing client are 127.0.0.1, ::ffff:127.0.0.1 and 0.0.0.0 (which Linux delivers to
//! this machine).

use std::sync::atomic::{AtomicUsize, Ordering};

use http::Request;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::instances::address::{Range, check_url};

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().unwrap()).collect()
}

fn ranges(refusals: &[Refusal]) -> Vec<Range> {
    refusals.iter().map(|r| r.range).collect()
}

#[test]
fn pick_keeps_only_allowed_addresses_in_order() {
    // Metadata stays refused even with allow_private; the loopback answer is the one dialed.
    assert_eq!(pick(&ips(&["169.254.169.254", "127.0.0.1"]), true), Ok(ips(&["127.0.0.1"])));
    assert_eq!(pick(&ips(&["10.0.0.1", "127.0.0.1"]), true), Ok(ips(&["10.0.0.1", "127.0.0.1"])));
    assert_eq!(pick(&ips(&["10.0.0.1", "8.8.8.8", "127.0.0.1"]), false), Ok(ips(&["8.8.8.8"])));
    assert_eq!(pick(&ips(&["fd00:ec2::254", "::1"]), true), Ok(ips(&["::1"])));
    assert_eq!(pick(&ips(&["0.0.0.0", "::", "192.168.1.1"]), true), Ok(ips(&["192.168.1.1"])));
    // IPv4-mapped answers are dialed as IPv4, once.
    assert_eq!(
        pick(&ips(&["::ffff:8.8.8.8", "8.8.8.8", "2001:4860::8888"]), false),
        Ok(ips(&["8.8.8.8", "2001:4860::8888"]))
    );
}

#[test]
fn pick_reports_every_refusal_when_nothing_is_left() {
    let refused = pick(&ips(&["10.0.0.1", "127.0.0.1", "::ffff:169.254.169.254"]), false).unwrap_err();
    assert_eq!(ranges(&refused), [Range::Private10, Range::Loopback, Range::LinkLocal]);
    let refused = pick(&ips(&["169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.1"]), true).unwrap_err();
    assert_eq!(ranges(&refused), [Range::LinkLocal, Range::LinkLocal6, Range::ThisNetwork, Range::Multicast]);
    assert_eq!(pick(&[], false), Err(vec![]));
}

fn settings(allow_private: bool, table: &[(&str, &[&str])]) -> Settings {
    Settings {
        allow_private,
        connect_timeout: Duration::from_secs(2),
        resolver: Resolver::table(table.iter().map(|(name, list)| (*name, ips(list)))),
    }
}

#[tokio::test]
async fn registration_needs_every_resolved_address_to_pass() {
    let table: &[(&str, &[&str])] = &[
        ("public.test", &["8.8.8.8", "2001:4860::8888"]),
        ("mixed.test", &["8.8.8.8", "10.0.0.1"]),
        ("private.test", &["10.0.0.1"]),
        ("metadata.test", &["169.254.169.254"]),
    ];
    let check = |host: &str, allow_private: bool| {
        let url = check_url(&format!("http://{host}:8000/v1"), allow_private).unwrap();
        let settings = settings(allow_private, table);
        async move { check_resolution(&url, &settings).await }
    };
    assert_eq!(check("public.test", false).await.unwrap(), ips(&["8.8.8.8", "2001:4860::8888"]));
    assert!(matches!(check("mixed.test", false).await, Err(ResolutionError::Refused(Refused::Partly { .. }))));
    assert!(check("mixed.test", true).await.is_ok());
    let error = check("private.test", false).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "private.test resolves only to refused addresses: 10.0.0.1 is a private address (10.0.0.0/8)"
    );
    assert!(check("private.test", true).await.is_ok());
    assert!(matches!(check("metadata.test", true).await, Err(ResolutionError::Refused(Refused::Resolved { .. }))));
    assert!(matches!(check("unknown.test", true).await, Err(ResolutionError::Lookup(_))));
}

/// A one-request-per-connection HTTP server on 127.0.0.1:0 that counts the connections it
/// accepts; `/redirect` answers 302.
async fn instance() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer: &[u8] = if head.starts_with(b"GET /redirect ") {
                    b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                };
                let _ = stream.write_all(answer).await;
            });
        }
    });
    (port, accepted)
}

async fn get(client: &InstanceClient, url: &str) -> Result<(u16, Bytes), hyper_util::client::legacy::Error> {
    let request = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await.unwrap().to_bytes()))
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_dialed_only_when_private_addresses_are_allowed() {
    let (port, accepted) = instance().await;
    let table: &[(&str, &[&str])] = &[("instance.test", &["127.0.0.1"])];
    let url = format!("http://instance.test:{port}/models");

    let client = client(&settings(true, table));
    assert_eq!(get(&client, &url).await.unwrap(), (200, Bytes::from_static(b"ok")));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    let client = super::client(&settings(false, table));
    let error = get(&client, &url).await.unwrap_err();
    let refused = refused_in(&error).unwrap();
    assert!(matches!(refused, Refused::Resolved { host, .. } if host == "instance.test"), "{refused:?}");
    assert_eq!(
        refused.to_string(),
        "instance.test resolves only to refused addresses: 127.0.0.1 is a loopback address (127.0.0.0/8)"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "no connection was made");
}

#[tokio::test]
async fn ip_literals_are_checked_in_every_spelling_before_any_connect() {
    let (port, accepted) = instance().await;
    let strict = client(&settings(false, &[]));
    let lenient = client(&settings(true, &[]));
    for host in ["127.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0x7f.1", "2130706433", "0177.0.0.1", "127.1"] {
        let url = format!("http://{host}:{port}/models");
        let error = get(&strict, &url).await.unwrap_err();
        assert!(matches!(refused_in(&error), Some(Refused::Literal(_))), "{host}: {error:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "{host} was dialed");
    }
    // With private addresses allowed, each spelling reaches the same server.
    for (i, host) in
        ["127.0.0.1", "[::ffff:127.0.0.1]", "0x7f.1", "2130706433", "0177.0.0.1", "127.1"].iter().enumerate()
    {
        let url = format!("http://{host}:{port}/models");
        assert_eq!(get(&lenient, &url).await.unwrap().0, 200, "{host}");
        assert_eq!(accepted.load(Ordering::SeqCst), i + 1);
    }
}

#[tokio::test]
async fn always_refused_addresses_stay_refused_with_private_addresses_allowed() {
    let (port, accepted) = instance().await;
    // Linux connects 0.0.0.0 to this machine: refused all the same, as a literal and as
    // a resolved name.
    let client = client(&settings(true, &[("zero.test", &["0.0.0.0", "::"])]));
    for host in ["0.0.0.0", "0", "[::]", "zero.test"] {
        let error = get(&client, &format!("http://{host}:{port}/")).await.unwrap_err();
        assert!(refused_in(&error).is_some(), "{host}: {error:?}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn redirects_are_returned_not_followed_and_lookup_failures_are_not_refusals() {
    let (port, accepted) = instance().await;
    let client = client(&settings(true, &[("instance.test", &["127.0.0.1"])]));
    let (status, _) = get(&client, &format!("http://instance.test:{port}/redirect")).await.unwrap();
    assert_eq!(status, 302);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    let error = get(&client, &format!("http://unknown.test:{port}/")).await.unwrap_err();
    assert!(refused_in(&error).is_none(), "{error:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
