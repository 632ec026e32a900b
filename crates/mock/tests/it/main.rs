//! The mock's integration tests: each boots a mock on 127.0.0.1:0 and talks HTTP to it.
// Test helpers outside `#[test]` functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anthropic;
mod anthropic_stream;
mod calls;
mod chat;
mod chat_reasoning;
mod client;
mod completions;
mod embeddings;
mod faults;
mod format_faults;
mod gemini;
mod gemini_stream;
mod instance;
mod model_knobs;
mod responses;
mod responses_stream;
mod stream;
mod tools;
