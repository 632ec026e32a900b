//! The mock's integration tests: each boots a mock on 127.0.0.1:0 and talks HTTP to it.
// Test helpers outside `#[test]` functions may panic too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chat;
mod client;
mod faults;
mod stream;
mod tools;
