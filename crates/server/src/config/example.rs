//! `tokenrouter.example.toml` documents every key the config accepts: each field of each
//! raw section struct appears as `key =` (commented or not) under its section.

use serde::de::DeserializeOwned;

use super::auth::{RawAuth, RawGithub};
use super::instances::RawInstances;
use super::jobs::RawJobs;
use super::raw::{RawDeployment, RawModel, RawProvider, RawRedis, RawServer};
use super::telemetry::RawTelemetry;

const EXAMPLE: &str = include_str!("../../../../tokenrouter.example.toml");

/// The fields `T` accepts, from the error its `deny_unknown_fields` gives for a key it
/// does not know ("unknown field `x`, expected one of `a`, `b`").
fn fields<T: DeserializeOwned>() -> Vec<String> {
    let Err(e) = toml::from_str::<T>("not_a_field_of_any_section = 1") else {
        panic!("a section accepted an unknown field");
    };
    let message = e.message().to_owned();
    let (_, expected) = message.split_once("expected").unwrap_or_else(|| panic!("no field list in: {message}"));
    let names: Vec<String> = expected.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    assert!(!names.is_empty(), "no field list in: {message}");
    names
}

/// The text under each `[name]` or `[[name]]` header, commented or not (repeated headers
/// concatenated).
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<usize> = None;
    for line in text.lines() {
        let bare = line.trim_start_matches(['#', ' ']).trim_end();
        let header = bare.strip_prefix('[').and_then(|h| h.split(']').next()).map(|h| h.trim_start_matches('['));
        match header.filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')) {
            Some(name) => {
                current = Some(out.iter().position(|(n, _)| n == name).unwrap_or_else(|| {
                    out.push((name.to_owned(), String::new()));
                    out.len() - 1
                }));
            }
            None => {
                if let Some(i) = current {
                    out[i].1.push_str(line);
                    out[i].1.push('\n');
                }
            }
        }
    }
    out
}

/// Whether `text` sets `key` (`key =`, possibly commented or inside an inline table).
fn sets(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + key.len()..].trim_start_matches(' ');
        before.is_none_or(|c| c.is_whitespace() || matches!(c, '{' | ',' | '#')) && after.starts_with('=')
    })
}

#[test]
fn the_example_documents_every_key_under_its_section() {
    let sections = sections(EXAMPLE);
    let section = |name: &str| {
        sections.iter().find(|(n, _)| n == name).map(|(_, text)| text.as_str()).unwrap_or_else(|| {
            panic!("tokenrouter.example.toml has no [{name}] section");
        })
    };
    let expected = [
        ("server", "server", fields::<RawServer>()),
        ("redis", "redis", fields::<RawRedis>()),
        ("auth.github", "auth.github", fields::<RawGithub>()),
        ("instances", "instances", fields::<RawInstances>()),
        ("jobs", "jobs", fields::<RawJobs>()),
        ("telemetry", "telemetry", fields::<RawTelemetry>()),
        ("providers", "providers", fields::<RawProvider>()),
        ("models", "models", fields::<RawModel>()),
        // Deployments are inline tables inside each [[models]].
        ("models", "models.deployments", fields::<RawDeployment>()),
    ];
    let mut missing = Vec::new();
    for (name, label, keys) in &expected {
        for key in keys {
            if !sets(section(name), key) {
                missing.push(format!("{label}.{key}"));
            }
        }
    }
    for sub in fields::<RawAuth>() {
        section(&format!("auth.{sub}"));
    }
    assert!(missing.is_empty(), "tokenrouter.example.toml does not document: {missing:?}");
    assert!(fields::<RawServer>().contains(&"strategy".to_owned()), "the field list is read");
}

#[test]
fn the_key_finder_tells_keys_from_their_suffixes() {
    assert!(sets("input_price = 1\n", "input_price"));
    assert!(sets("# strategy = \"cost\"\n", "strategy"));
    assert!(sets("deployments = [ { provider = \"a\", weight = 1 } ]", "weight"));
    assert!(!sets("cached_input_price = 1\n", "input_price"));
    assert!(!sets("# the strategy is\n", "strategy"));
}
