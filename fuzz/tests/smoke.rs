//! The fuzz targets' smoke test, part of `cargo test`: every target runs its committed
//! seed corpus (with the crashes found so far), a few thousand mutations of it and some
//! random token soup, each input within a time bound. Coverage-guided campaigns are
//! `bench/fuzz.sh`.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokenrouter_fuzz::mutate::Mutator;
use tokenrouter_fuzz::{TARGETS, Target, target};

const MUTATIONS: usize = 2000;
const SOUPS: usize = 300;
/// Far above what any input here needs (a debug build, other tests running beside):
/// a parser that takes this long on a few kilobytes has a hang in it.
const BOUND: Duration = Duration::from_secs(2);

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|path| std::fs::read(path).unwrap()).collect()
}

fn run(target: &Target, input: &[u8]) {
    let start = Instant::now();
    (target.run)(input);
    let took = start.elapsed();
    if took > Duration::from_millis(200) {
        eprintln!("{} took {took:?} on {} bytes", target.name, input.len());
    }
    assert!(took < BOUND, "{} took {took:?} on {:?}", target.name, String::from_utf8_lossy(input));
}

fn smoke(name: &str) {
    let target = target(name).unwrap();
    let seeds = corpus(name);
    assert!(!seeds.is_empty(), "{name} has no seed corpus");
    for seed in &seeds {
        run(target, seed);
    }
    let mut mutator =
        Mutator::new(name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)));
    for _ in 0..MUTATIONS {
        let base = &seeds[mutator.below(seeds.len())];
        let input = mutator.mutate(base, &seeds);
        run(target, &input);
    }
    for _ in 0..SOUPS {
        run(target, &mutator.soup(64));
    }
}

#[test]
fn every_target_is_smoke_tested() {
    let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "sse",
            "requests",
            "responses",
            "messages",
            "openai_upstream",
            "anthropic_upstream",
            "gemini_upstream",
            "surfaces",
            "gemini_inbound",
            "config"
        ]
    );
}

#[test]
fn sse() {
    smoke("sse");
}

#[test]
fn requests() {
    smoke("requests");
}

#[test]
fn responses() {
    smoke("responses");
}

#[test]
fn messages() {
    smoke("messages");
}

#[test]
fn openai_upstream() {
    smoke("openai_upstream");
}

#[test]
fn anthropic_upstream() {
    smoke("anthropic_upstream");
}

#[test]
fn gemini_upstream() {
    smoke("gemini_upstream");
}

#[test]
fn surfaces() {
    smoke("surfaces");
}

#[test]
fn gemini_inbound() {
    smoke("gemini_inbound");
}

#[test]
fn config() {
    smoke("config");
}

/// Inputs too large for the mutator to reach, built to make a parser's work grow faster
/// than its input: each must finish within the bound all the same. (The first two took
/// minutes before the SSE framing was fixed.)
#[test]
fn large_adversarial_inputs_finish_in_time() {
    let events = 10_000;
    let crlf = [&[0u8][..], &b"data: {\"a\":1}\r\n\r\n".repeat(events)].concat();
    let lf_then_cr = [&[0u8][..], &b"data: {\"a\":1}\n\n".repeat(events), b"\r"].concat();
    let one_long_event = [&[31u8][..], b"data: \"", &b"x\r\n".repeat(100_000)].concat();
    let nested = [&b"{\"model\":\"m\",\"messages\":"[..], &b"[".repeat(100_000)].concat();
    let long_string = [&b"{\"model\":\""[..], &b"\\u00e9".repeat(100_000), b"\"}"].concat();
    let nested_parts = [&b"\0{\"contents\":[{\"parts\":"[..], &b"[".repeat(100_000)].concat();
    let cases: [(&str, &[u8]); 14] = [
        ("sse", &crlf),
        ("sse", &lf_then_cr),
        ("sse", &one_long_event),
        ("openai_upstream", &crlf),
        ("anthropic_upstream", &crlf),
        ("gemini_upstream", &lf_then_cr),
        ("surfaces", &crlf),
        ("requests", &nested),
        ("requests", &long_string),
        ("responses", &nested),
        ("messages", &nested),
        ("gemini_inbound", &nested_parts),
        ("gemini_inbound", &crlf),
        ("gemini_inbound", &long_string),
    ];
    for (name, input) in cases {
        run(target(name).unwrap(), input);
    }
}
