#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes with AFL++ (cargo-afl, stable
# toolchain): builds the harness in fuzz/afl, then runs each target (or the named ones) for
# SECONDS of wall time under `nice -n 19`, JOBS at a time, and prints one markdown row per
# target (CPU minutes, execs, corpus, edge coverage, crashes, hangs), also written to
# fuzz/out/results.md. Campaigns resume where the last one stopped (fuzz/out/TARGET,
# gitignored); crashes land in fuzz/out/TARGET/default/crashes/.
#
#   bench/fuzz.sh 600              # every target, 10 minutes each
#   bench/fuzz.sh 600 sse config   # only these
#   JOBS=2 bench/fuzz.sh 900       # two campaigns side by side
#   CPU_MINUTES=10 JOBS=2 bench/fuzz.sh 3600
#                                  # each stops at 10 CPU minutes (or the hour)
#
# Needs cargo-afl (`cargo install cargo-afl`; it builds AFL++ on install). Replay one
# input with `$FUZZ_TARGET_DIR/release/tokenrouter-fuzz-afl TARGET < FILE`; the smoke test
# (`cargo test -p tokenrouter-fuzz`) replays every file under fuzz/corpus/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-600}"
shift || true
jobs="${JOBS:-1}"
root="$PWD"
export FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}-afl}"
bin="$FUZZ_TARGET_DIR/release/tokenrouter-fuzz-afl"
out="$root/fuzz/out"

all=(sse requests responses messages openai_upstream anthropic_upstream gemini_upstream surfaces gemini_inbound config)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
for t in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $t "* ]] || { echo "unknown target '$t' (one of: ${all[*]})" >&2; exit 1; }
done

command -v cargo-afl >/dev/null || { echo "cargo-afl is missing: cargo install cargo-afl" >&2; exit 1; }
echo "==> building the harness (cargo afl build --release, target dir $FUZZ_TARGET_DIR)" >&2
(cd fuzz/afl && CARGO_TARGET_DIR="$FUZZ_TARGET_DIR" nice -n 19 cargo afl build --release --locked >&2)

# AFL++'s own dictionaries (installed with cargo-afl), next to the project's tokens.
afl_dicts="${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs/AFLplusplus/dictionaries"
dicts() {
    local args=(-x "$root/fuzz/dict/tokenrouter.dict")
    case "$1" in
        config) [ -f "$afl_dicts/toml.dict" ] && args+=(-x "$afl_dicts/toml.dict") ;;
        sse) ;;
        *) [ -f "$afl_dicts/json.dict" ] && args+=(-x "$afl_dicts/json.dict") ;;
    esac
    printf '%s\n' "${args[@]}"
}

# The process `$1` and its descendants.
tree() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END { for (p in parent) { q = p; while (q != "" && q != root && q > 1) q = parent[q]; if (q == root) print p } }'
}

# CPU seconds used so far by `$1`'s process tree (live processes and the children they reaped).
tree_cpu() {
    local ticks
    ticks=$(getconf CLK_TCK)
    for p in $(tree "$1"); do
        # Fields 14-17 (utime stime cutime cstime) counted after the `(comm)` field.
        sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}'
    done | awk -v hz="$ticks" '{s += $1} END {printf "%d", s / hz}'
}

# One campaign. Its CPU time (afl-fuzz and the target together) is sampled from /proc
# every 5 s: afl-fuzz never reaps the target's processes, so /usr/bin/time would miss
# them. With CPU_MINUTES set, afl-fuzz is stopped (SIGINT: it saves its state) once the
# campaign has used that much CPU.
campaign() {
    local t="$1" dir="$out/$1"
    mkdir -p "$dir"
    mapfile -t dict < <(dicts "$t")
    AFL_NO_UI=1 AFL_AUTORESUME=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        AFL_NO_AFFINITY=1 AFL_SUPPRESS_COMMAND_LINE=1 \
        nice -n 19 cargo afl fuzz -i "$root/fuzz/corpus/$t" -o "$dir" -V "$seconds" -t 1000 -m none \
        "${dict[@]}" -- "$bin" "$t" >"$dir/afl.log" 2>&1 &
    local pid=$! used=0 sample
    local cap=$((${CPU_MINUTES:-0} * 60))
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        sample=$(tree_cpu "$pid")
        [ "$sample" -gt "$used" ] && used=$sample
        if [ "$cap" -gt 0 ] && [ "$used" -ge "$cap" ]; then
            for p in $(tree "$pid"); do
                [ "$(cat "/proc/$p/comm" 2>/dev/null)" = afl-fuzz ] && kill -INT "$p" 2>/dev/null
            done
            break
        fi
    done
    wait "$pid" || true
    # CPU seconds add up over resumed campaigns.
    local before
    before=$(cat "$dir/cpu.total" 2>/dev/null || echo 0)
    awk -v a="$before" -v b="$used" 'BEGIN {print a + b}' >"$dir/cpu.total"
}

row() {
    local t="$1" dir="$out/$1" stats="$out/$1/default/fuzzer_stats"
    local cpu execs corpus cvg crashes hangs
    cpu=$(awk '{printf "%.1f", $1 / 60}' "$dir/cpu.total" 2>/dev/null || echo "?")
    field() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$stats" 2>/dev/null; }
    execs=$(field execs_done)
    corpus=$(field corpus_count)
    cvg=$(field bitmap_cvg)
    crashes=$(field saved_crashes)
    hangs=$(field saved_hangs)
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$cpu" "${execs:-?}" "${corpus:-?}" "${cvg:-?}" \
        "${crashes:-?}" "${hangs:-?}"
}

running=0
for t in "${targets[@]}"; do
    echo "==> $t: ${seconds}s" >&2
    campaign "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

{
    echo "| target | CPU min (total) | execs (total) | corpus | edge coverage | crashes | hangs |"
    echo "|---|---|---|---|---|---|---|"
    for t in "${all[@]}"; do
        [ -f "$out/$t/default/fuzzer_stats" ] && row "$t"
    done
} | tee "$out/results.md"
