#!/usr/bin/env bash
# Runs the Python SDK end-to-end tests (tests/python: the official `openai` and `anthropic`
# packages, installed into .venv) against a local gateway and mock upstream.
# Non-interactive; works on a fresh machine (CI=true).
#
#   scripts/python-tests.sh [extra pytest args...]
#
# Env: TOKENROUTER_BIN   use this binary instead of building target/debug/tokenrouter
#      PYTHON            interpreter used to create the venv (default python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib-python.sh"

ensure_venv
ensure_binary
run_pytest tests/python -q "$@"
