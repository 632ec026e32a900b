#!/usr/bin/env bash
# Runs the Node SDK end-to-end tests (tests/node, official `openai` package pinned in its
# package-lock.json) against a local gateway and mock upstream, with `node --test`.
# Non-interactive; works on a fresh machine (CI=true): installs Node.js and npm with
# apt-get when they are missing. npm downloads are cached in ~/.cache/tokenrouter/npm.
#
#   scripts/node-tests.sh [extra node --test args...]
#
# Env: TOKENROUTER_BIN   use this binary instead of building target/debug/tokenrouter
#      NPM_CACHE         npm cache directory (default ~/.cache/tokenrouter/npm)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib-node.sh"

ensure_node
npm_ci tests/node

if [ -z "${TOKENROUTER_BIN:-}" ]; then
    cargo build -p tokenrouter
    TOKENROUTER_BIN="$ROOT/target/debug/tokenrouter"
fi
if [ ! -x "$TOKENROUTER_BIN" ]; then
    echo "node-tests: binary '$TOKENROUTER_BIN' missing or not executable" >&2
    exit 1
fi
export TOKENROUTER_BIN

cd tests/node
exec node --test --test-reporter=spec "$@" sdk.test.mjs
