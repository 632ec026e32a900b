# Shared by threads.sh and syscalls.sh: starts nginx and the gateway (CPU 0, as
# bench/nginx.sh does) and exports GPORT, GPID, KEY and BODY; installs wrk when missing.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN=${1:?usage: $0 path/to/tokenrouter [seconds] [model: bench-json|bench-sse|bench-anthropic] [stream: false|true]}
SECS=${2:-8}; MODEL=${3:-bench-json}; STREAM=${4:-false}
if ! command -v wrk >/dev/null; then
  sudo=""; if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo="sudo -n"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk nginx-light >&2
fi
WD=$(mktemp -d /tmp/tokenrouter-prof.XXXX)
python3 "$HERE/setup.py" "$BIN" "$WD" > "$WD/setup.out" 2>&1 &
SETUP=$!
trap 'kill $SETUP 2>/dev/null; wait $SETUP 2>/dev/null || true' EXIT
for _ in $(seq 150); do grep -q ready "$WD/setup.out" 2>/dev/null && break; sleep 0.2; done
grep -q ready "$WD/setup.out" || { cat "$WD/setup.out" >&2; exit 1; }
# shellcheck disable=SC1091
source "$WD/env"
export KEY BODY="{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"stream\":$STREAM}"
# CONNECTIONS: the load's concurrent connections (default 16, as bench/nginx.sh).
load() { taskset -c 1 wrk -t1 -c"${CONNECTIONS:-16}" -d"$1"s -s "$HERE/post.lua" "http://127.0.0.1:$GPORT/v1/chat/completions"; }
requests() { grep -o "[0-9]* requests in" "$1" | cut -d' ' -f1; }
load 3 > /dev/null
