//! Fuzz target bodies for every parser of untrusted bytes: plain functions, one per
//! target, that the AFL harness (`fuzz/afl`, run by `bench/fuzz.sh`) and the smoke test
//! (`fuzz/tests/smoke.rs`, part of `cargo test`) both call. A body panics only when the
//! code under test broke one of its promises: it panicked itself, or it produced output
//! that is not what it documents (invalid JSON, a partial SSE event, an answer that
//! depends on where the upstream's bytes were split).

pub mod config;
pub mod gemini_inbound;
pub mod mutate;
pub mod pieces;
pub mod requests;
pub mod sse;
pub mod surfaces;
pub mod upstream;

/// One fuzz target: its name (the AFL harness's argument, the corpus folder under
/// `fuzz/corpus/`) and its body.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    /// What the input is, for `bench/fuzz.sh` and the results table.
    pub about: &'static str,
}

/// Every target, in the order `bench/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target { name: "sse", run: sse::sse, about: "SSE framing: SseBuffer fed in pieces, events, data" },
    Target {
        name: "requests",
        run: requests::requests,
        about: "/v1/chat/completions, /v1/completions, /v1/embeddings bodies: views, pass-through \
                rewrites, canonical parse, translation, Anthropic/Gemini request encoders",
    },
    Target {
        name: "responses",
        run: requests::responses,
        about: "/v1/responses bodies: parse, translate to chat, encoders",
    },
    Target {
        name: "messages",
        run: requests::messages,
        about: "/v1/messages and count_tokens bodies: parse, translate to chat, encoders",
    },
    Target {
        name: "openai_upstream",
        run: upstream::openai,
        about: "OpenAI-compatible answers, chunks and streams: usage readers, chunk classifier, \
                usage stripping and restating, native Responses events, error envelopes",
    },
    Target {
        name: "anthropic_upstream",
        run: upstream::anthropic,
        about: "Anthropic answers, errors and streams (split anywhere)",
    },
    Target {
        name: "gemini_upstream",
        run: upstream::gemini,
        about: "Gemini answers, errors, embeddings and streams (split anywhere)",
    },
    Target {
        name: "surfaces",
        run: surfaces::surfaces,
        about: "canonical answers and chunk streams restated as Responses, Messages, completions; \
                kept responses continued",
    },
    Target {
        name: "gemini_inbound",
        run: gemini_inbound::gemini_inbound,
        about: "Gemini-native bodies (generateContent, countTokens, embedContent, batchEmbedContents): \
                parse, translate to chat, encoders; answers, streams (SSE and JSON array), errors \
                and embeddings restated in Gemini's shape",
    },
    Target { name: "config", run: config::config, about: "TOML config text to a validated Config" },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Asserts that `bytes` is one JSON value: what every encoder and translator promises.
pub(crate) fn assert_json(bytes: &[u8], what: &str) {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        panic!("{what} is not JSON ({e}): {}", String::from_utf8_lossy(bytes));
    }
}
