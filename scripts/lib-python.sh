# Shared by scripts/python-tests.sh and scripts/codex-tests.sh (sourced, not run).
# Needs ROOT set to the repository root.

# Creates $ROOT/.venv when missing (installing python3-venv with apt-get on Debian/Ubuntu,
# which ship python3 without venv/ensurepip), installs the test requirements into it, and
# sets VPY to its interpreter.
ensure_venv() {
    local python="${PYTHON:-python3}"
    local venv="$ROOT/.venv"
    if [ ! -x "$venv/bin/python" ]; then
        if ! command -v "$python" >/dev/null 2>&1; then
            echo "python: '$python' not found; install Python 3.9+ first" >&2
            exit 1
        fi
        if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            if command -v apt-get >/dev/null 2>&1; then
                echo "python: installing python3-venv" >&2
                local sudo=""
                if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
                local ver
                ver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
                $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
                $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python${ver}-venv" \
                    || $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
            else
                echo "python: '$python' lacks the venv module and apt-get is unavailable" >&2
                exit 1
            fi
        fi
        rm -rf "$venv"
        "$python" -m venv "$venv"
    fi
    VPY="$venv/bin/python"
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$VPY" -m pip install -q \
        'openai>=3.50,<4' \
        'anthropic>=2.10,<3' \
        'google-genai>=3.6,<4' \
        'httpx>=0.23,<1' \
        'pytest>=7,<9' \
        'prometheus-client>=0.20,<1' \
        'jsonschema>=4.20,<5'
}

# Sets and exports TOKENROUTER_BIN, building target/debug/tokenrouter when it is unset.
ensure_binary() {
    if [ -z "${TOKENROUTER_BIN:-}" ]; then
        cargo build -p tokenrouter
        TOKENROUTER_BIN="$ROOT/target/debug/tokenrouter"
    fi
    if [ ! -x "$TOKENROUTER_BIN" ]; then
        echo "binary '$TOKENROUTER_BIN' missing or not executable" >&2
        exit 1
    fi
    export TOKENROUTER_BIN
}

# Runs pytest with the given arguments; exit code 5 (no test collected) is a failure.
run_pytest() {
    set +e
    "$VPY" -m pytest "$@"
    local rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then
        echo "pytest collected no tests" >&2
        return 1
    fi
    return "$rc"
}
