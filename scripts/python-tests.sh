#!/usr/bin/env bash
# Runs the Python SDK end-to-end tests (tests/python) against a local gateway
# and mock upstream. Non-interactive; works on a fresh machine (CI=true).
#
#   scripts/python-tests.sh [extra pytest args...]
#
# Env: TOKENROUTER_BIN   use this binary instead of building target/debug/tokenrouter
#      PYTHON            interpreter used to create the venv (default python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "python-tests: '$PYTHON' not found; install Python 3.9+ first" >&2
    exit 1
fi

# venv (Debian/Ubuntu ship python3 without venv/ensurepip: install them when missing)
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1; then
            echo "python-tests: installing python3-venv" >&2
            SUDO=""
            if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
            ver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python${ver}-venv" \
                || $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
        else
            echo "python-tests: '$PYTHON' lacks the venv module and apt-get is unavailable" >&2
            exit 1
        fi
    fi
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

VPY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$VPY" -m pip install -q \
    'openai>=1.100,<3' \
    'anthropic>=0.40,<3' \
    'httpx>=0.23,<1' \
    'pytest>=7,<9'

if [ -z "${TOKENROUTER_BIN:-}" ]; then
    cargo build -p tokenrouter
    TOKENROUTER_BIN="$ROOT/target/debug/tokenrouter"
fi
if [ ! -x "$TOKENROUTER_BIN" ]; then
    echo "python-tests: binary '$TOKENROUTER_BIN' missing or not executable" >&2
    exit 1
fi
export TOKENROUTER_BIN

set +e
"$VPY" -m pytest tests/python -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "python-tests: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
