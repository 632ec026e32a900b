//! The mock's integration tests: each boots a mock on 127.0.0.1:0 and talks HTTP to it.
// Test helpers outside `#[test]` functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anthropic;
mod anthropic_stream;
mod chat;
mod client;
mod faults;
mod format_faults;
mod gemini;
mod gemini_stream;
mod model_knobs;
mod stream;
mod tools;
