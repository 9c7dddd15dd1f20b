#!/usr/bin/env bash
# bench/gateway/threads.sh - where a request's CPU goes: each kt thread, the upstream, wrk, the
# machine's idle and softirq time, in microseconds per request.
#
#   bash bench/gateway/threads.sh [KT_BIN]
#
# run.sh and ab.sh give kt's CPU per request as one number. This splits it: it starts the
# bench upstream (bench/lib/nginx-upstream.sh) and `kt gateway run --workers 1` with the page's
# config and a fresh state dir, warms up for 2 s under `wrk -t2 -c64` (bench/gateway/post.lua;
# SSE with THREADS_SSE=1), then reads utime and stime of every kt thread (/proc/<pid>/task),
# of the upstream's worker and of wrk, and the machine's idle and softirq time (/proc/stat),
# around a THREADS_DURATION-second run (default 8), divided by the requests wrk counted.
# The kt threads: kt-worker-N (the request path), kt-audit (audit-logger's writer), kt-emit
# (the sender: the agent's socket, or its spool when no agent runs, as here), kt-log. idle is
# CPU time nobody used on the 2 cores (both cores busy would leave ~0). Involuntary context
# switches of each kt thread a request are printed too. Only 127.0.0.1 is used; ports from
# THREADS_PORT_BASE (default 18380: upstream +1, kt +2). KT_BIN defaults to build-release/kt
# (bash bench/gateway/run.sh builds it).
# THREADS_TARGET=floor2 measures bench/gateway/floor2 (build-release/bench/kt-bench-floor2, the
# same server and client with no kt code) in kt's place, one thread: what is left of kt's worker
# above it is kt's own work, in user and in system time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
KT="${1:-${KT_BIN:-$ROOT/build-release/kt}}"
DURATION="${THREADS_DURATION:-8}"
BASE="${THREADS_PORT_BASE:-18380}"
UP_PORT=$((BASE + 1))
KT_PORT=$((BASE + 2))
MODE=json
[ "${THREADS_SSE:-0}" = 1 ] && MODE=sse
TARGET="${THREADS_TARGET:-kt}"
FLOOR2="${FLOOR2_BIN:-$ROOT/build-release/bench/kt-bench-floor2}"
case "$TARGET" in
kt) [ -x "$KT" ] || { echo "threads: no kt binary at $KT (run bench/gateway/run.sh once)" >&2; exit 1; } ;;
floor2) [ -x "$FLOOR2" ] || { echo "threads: no floor2 binary at $FLOOR2 (run bench/gateway/run.sh once)" >&2; exit 1; } ;;
*) echo "threads: THREADS_TARGET is kt or floor2" >&2; exit 1 ;;
esac
command -v wrk >/dev/null 2>&1 || { echo "threads: wrk is needed (apt-get install wrk)" >&2; exit 1; }

. "$ROOT/bench/lib/procs.sh"
. "$ROOT/bench/lib/nginx-upstream.sh"
. "$ROOT/bench/lib/page-config.sh"
work_dir kt-threads
ports_free threads THREADS_PORT_BASE "$UP_PORT" "$KT_PORT"

nginx_upstream "$WORK/upstream" "$UP_PORT"
UP_PID="${PIDS[-1]}"
if [ "$TARGET" = kt ]; then
    page_config "http://127.0.0.1:$UP_PORT/v1" >"$WORK/policy-config.yaml"
    start_page_kt threads "$KT" "$KT_PORT" "$WORK/policy-config.yaml" "$WORK/state" "$WORK/kt.log"
else
    "$FLOOR2" --listen "127.0.0.1:$KT_PORT" \
        --upstream "http://127.0.0.1:$UP_PORT/v1/chat/completions" 2>"$WORK/floor2.log" &
    KT_PID=$!
    PIDS+=("$KT_PID")
    for ((i = 0; i < 100; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
            --data '{}' "http://127.0.0.1:$KT_PORT/v1/chat/completions" || true)" != 000 ] && break
        sleep 0.1
    done
    [ "$i" -lt 100 ] || { echo "threads: floor2 does not answer on port $KT_PORT" >&2; exit 1; }
    KT="$FLOOR2"
fi

URL="http://127.0.0.1:$KT_PORT/v1/chat/completions"
wrk -t2 -c64 -d2s -s bench/gateway/post.lua "$URL" -- "$MODE" >/dev/null

# snapshot FILE: "name utime stime invol" per kt thread, then the upstream's workers, wrk's
# threads, and the machine's idle and softirq ticks.
snapshot() {
    local t f st
    {
        for t in /proc/"$KT_PID"/task/*; do
            st="$(<"$t/stat")" || continue
            read -r -a f <<<"${st##*) }"
            echo "$(<"$t/comm") ${f[11]} ${f[12]} $(awk '/^nonvoluntary_ctxt/{print $2}' "$t/status")"
        done
        for t in $(pgrep -P "$UP_PID"); do
            st="$(<"/proc/$t/stat")" || continue
            read -r -a f <<<"${st##*) }"
            echo "upstream ${f[11]} ${f[12]} 0"
        done
        for t in /proc/"$WRK_PID"/task/*; do
            st="$(<"$t/stat")" || continue
            read -r -a f <<<"${st##*) }"
            echo "wrk ${f[11]} ${f[12]} 0"
        done
        awk '/^cpu /{print "idle", $5, 0, 0; print "softirq", 0, $8, 0}' /proc/stat
    } >"$1"
}

wrk -t2 -c64 -d"$((DURATION + 1))"s -s bench/gateway/post.lua "$URL" -- "$MODE" \
    >"$WORK/wrk.out" &
WRK_PID=$!
sleep 0.5
snapshot "$WORK/a"
sleep "$DURATION"
snapshot "$WORK/b"
wait "$WRK_PID"
# wrk counts its whole run: scale its requests to the measured window.
read -r REQS WRK_US <<<"$(sed -n 's/.*BENCH requests=\([0-9]*\) duration_us=\([0-9]*\).*/\1 \2/p' \
    "$WORK/wrk.out")"
[ -n "${REQS:-}" ] || { echo "threads: wrk printed no result" >&2; cat "$WORK/wrk.out" >&2; exit 1; }
TCK="$(getconf CLK_TCK)"
echo "$TARGET threads, $MODE, wrk -t2 -c64, ${DURATION}s: $((REQS * 1000000 / WRK_US)) req/s" \
    "($KT)"
awk -v reqs="$REQS" -v wrk_us="$WRK_US" -v dur="$DURATION" -v tck="$TCK" '
    FNR == NR { u[$1] += $2; s[$1] += $3; v[$1] += $4; next }
    { u2[$1] += $2; s2[$1] += $3; v2[$1] += $4; if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
    END {
        r = reqs * dur * 1e6 / wrk_us    # requests inside the measured window
        k = 1e6 / tck / r                # ticks -> microseconds per request
        printf "%-14s %9s %9s %9s %11s\n", "thread", "user us", "sys us", "all us", "invol/req"
        for (i = 0; i < n; i++) {
            t = order[i]
            uu = (u2[t] - u[t]) * k; ss = (s2[t] - s[t]) * k
            if (t ~ /^kt/) { ku += uu; ks += ss }
            inv = t ~ /^kt/ ? sprintf("%.3f", (v2[t] - v[t]) / r) : "-"
            printf "%-14s %9.2f %9.2f %9.2f %11s\n", t, uu, ss, uu + ss, inv
        }
        printf "%-14s %9.2f %9.2f %9.2f\n", "all of it", ku, ks, ku + ks
    }' "$WORK/a" "$WORK/b"
