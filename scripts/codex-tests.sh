#!/usr/bin/env bash
# Runs Codex CLI (pinned in tests/codex/package-lock.json) against a local gateway and
# mock upstream: `codex exec` must run one tool call and print the model's answer, for
# each provider kind (tests/codex/test_codex_exec.py, driven by pytest).
# Non-interactive; works on a fresh machine (CI=true): installs Node.js/npm and the Python
# venv when missing. npm downloads are cached in ~/.cache/tokenrouter/npm.
#
#   scripts/codex-tests.sh [extra pytest args...]
#
# Env: TOKENROUTER_BIN   use this binary instead of building target/debug/tokenrouter
#      CODEX_BIN         use this codex instead of tests/codex/node_modules/.bin/codex
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib-python.sh"
source "$ROOT/scripts/lib-node.sh"

if [ -z "${CODEX_BIN:-}" ]; then
    ensure_node
    npm_ci tests/codex
    export CODEX_BIN="$ROOT/tests/codex/node_modules/.bin/codex"
fi
ensure_venv
ensure_binary
run_pytest tests/codex -q "$@"
