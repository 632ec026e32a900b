#!/usr/bin/env bash
# Runs every test of Token Router: formatting, lints, the Rust unit and integration
# tests (mock and gateway booted on 127.0.0.1:0), and the Python SDK tests (official
# `openai` package, installed into .venv). Non-interactive; needs only cargo and python3.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# CI clones afresh each run: keep compiled dependencies in one place on the machine.
if [ "${CI:-}" = "true" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
    export CARGO_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/tokenrouter/target"
fi
target="${CARGO_TARGET_DIR:-$PWD/target}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "Python SDK tests"
cargo build -p tokenrouter --locked
TOKENROUTER_BIN="$target/debug/tokenrouter" bash scripts/python-tests.sh
