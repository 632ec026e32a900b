#!/usr/bin/env bash
# Runs the dashboard in a real browser (tests/browser: pytest + Playwright driving Debian's
# Chromium) against a local gateway, mock upstream and fake GitHub, all inside a network
# namespace that holds only loopback, so neither the browser nor the gateway can reach
# anything else and a page that loads something from another origin fails visibly.
# Installs what it needs first (outside the namespace): chromium (apt-get), the Python
# venv with playwright (pip), Codex CLI (npm, pinned by tests/codex/package-lock.json).
# Screenshots and logs go to $TOKENROUTER_ARTIFACTS/browser (default: a fresh temp dir);
# the desktop screenshots of the main pages are also written to docs/screenshots/.
# Non-interactive; needs root (or sudo) for apt-get and unshare.
#
#   scripts/browser-tests.sh [extra pytest args...]
#
# Env: TOKENROUTER_BIN   use this binary instead of building target/debug/tokenrouter
#      CODEX_BIN         use this codex instead of tests/codex/node_modules/.bin/codex
#      CHROMIUM_BIN      use this browser binary instead of the chromium package's
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib-python.sh"
source "$ROOT/scripts/lib-node.sh"

sudo=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi

if [ -z "${CHROMIUM_BIN:-}" ] && ! dpkg -s chromium >/dev/null 2>&1; then
    echo "browser: installing Debian's chromium" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
fi

ensure_venv
# Playwright's Python client only: it drives the chromium above (no `playwright install`).
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$VPY" -m pip install -q 'playwright>=1.65,<1.66'

if [ -z "${CODEX_BIN:-}" ]; then
    ensure_node
    npm_ci tests/codex
    export CODEX_BIN="$ROOT/tests/codex/node_modules/.bin/codex"
fi
ensure_binary

if [ -z "${TOKENROUTER_ARTIFACTS:-}" ]; then
    TOKENROUTER_ARTIFACTS="$(mktemp -d "${TMPDIR:-/tmp}/tokenrouter-artifacts-XXXXXX")"
fi
export TOKENROUTER_ARTIFACTS
echo "browser: screenshots and logs in $TOKENROUTER_ARTIFACTS/browser" >&2

# pytest, the gateway, the mocks and Chromium in a network namespace with only loopback.
set +e
${sudo:+$sudo -E} unshare --net -- bash -c 'ip link set lo up && exec "$@"' browser-tests \
    env VPY="$VPY" bash -c 'source scripts/lib-python.sh; run_pytest tests/browser -q -p no:cacheprovider "$@"' run-pytest "$@"
rc=$?
set -e
echo "browser: screenshots and logs in $TOKENROUTER_ARTIFACTS/browser" >&2
exit "$rc"
