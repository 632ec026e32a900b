#!/usr/bin/env bash
# Runs every test of Token Router: formatting, lints, the Rust unit and integration
# tests (mock and gateway booted on 127.0.0.1:0), then the client suites against a real
# gateway and the mock: the official `openai` and `anthropic` Python SDKs (installed into
# .venv), the official `openai` Node SDK and Codex CLI (npm, pinned by lockfiles, cached in
# ~/.cache/tokenrouter/npm), and the dashboard in Debian's Chromium (tests/browser). Non-interactive; needs cargo and python3, and installs
# python3-venv, nodejs and npm with apt-get when they are missing. The replica tests need
# PostgreSQL and Redis: scripts/services.sh starts (or installs) them first, never skips.
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

step "PostgreSQL and Redis (the replica tests)"
# shellcheck source=scripts/services.sh
source scripts/services.sh

step "cargo test"
cargo test --workspace --locked

step "cargo build (the binary the client suites run)"
cargo build -p tokenrouter --locked
export TOKENROUTER_BIN="$target/debug/tokenrouter"

# The client suites all run; any failure fails the whole run, named at the end.
failed=""
suite() {
    local name="$1"
    shift
    step "$name"
    local start=$SECONDS
    if "$@"; then
        printf '==> %s: ok in %ds\n' "$name" $((SECONDS - start))
    else
        printf '==> %s: FAILED in %ds\n' "$name" $((SECONDS - start))
        failed="${failed:+$failed, }$name"
    fi
}
suite "Python SDK tests (openai, anthropic)" bash scripts/python-tests.sh
suite "Node SDK tests (openai)" bash scripts/node-tests.sh
suite "Codex CLI tests" bash scripts/codex-tests.sh
suite "Browser tests (the dashboard in Chromium)" bash scripts/browser-tests.sh
if [ -n "$failed" ]; then
    printf '\n==> failed: %s\n' "$failed" >&2
    exit 1
fi
