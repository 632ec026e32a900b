# Shared by scripts/node-tests.sh and scripts/codex-tests.sh (sourced, not run).

# Installs Node.js (18 or later) and npm with apt-get when they are missing.
ensure_node() {
    local major=0
    if command -v node >/dev/null 2>&1; then
        major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
    fi
    if [ "$major" -ge 18 ] && command -v npm >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "node: Node.js 18+ and npm are required and apt-get is unavailable to install them" >&2
        exit 1
    fi
    echo "node: installing nodejs and npm with apt-get" >&2
    local sudo=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
    major="$(node -p 'process.versions.node.split(".")[0]')"
    if [ "$major" -lt 18 ]; then
        echo "node: Node.js $(node --version) is too old; 18 or later is needed" >&2
        exit 1
    fi
}

# `npm ci` in DIR (from its package-lock.json), skipped when node_modules already matches
# the lockfile; downloads come from (and go to) a cache that outlives the checkout.
npm_ci() {
    local dir="$1"
    local cache="${NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenrouter/npm}"
    mkdir -p "$cache"
    # npm writes node_modules/.package-lock.json on install: equal to the lockfile = up to date.
    if [ -f "$dir/node_modules/.package-lock.json" ] \
        && node -e '
            const fs = require("fs");
            const [lock, installed] = process.argv.slice(1).map((f) => JSON.parse(fs.readFileSync(f, "utf8")).packages);
            const same = (a, b) => a.version === b.version && a.integrity === b.integrity;
            const ok = Object.entries(lock).every(([k, v]) => k === "" || (installed[k] ? same(v, installed[k]) : v.optional))
                && Object.keys(installed).every((k) => k in lock);
            process.exit(ok ? 0 : 1);
        ' "$dir/package-lock.json" "$dir/node_modules/.package-lock.json" 2>/dev/null; then
        return 0
    fi
    (cd "$dir" && npm ci --cache "$cache" --prefer-offline --no-audit --no-fund --loglevel=error)
}
