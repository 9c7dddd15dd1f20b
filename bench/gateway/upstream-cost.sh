#!/usr/bin/env bash
# bench/gateway/upstream-cost.sh - what kt's upstream client costs per proxied request
#
#   KT_BIN=build/kt bash bench/gateway/upstream-cost.sh
#
# Starts nginx as the fast upstream (as run.sh does: a fixed chat.completion over
# keep-alive) and `kt gateway run --workers 1` with the page's config, then:
#   1. syscalls: kt runs under `strace -c -f` while `wrk -t1 -c16 -d5s` (post.lua) loads it;
#      prints the calls per request by name (the whole gateway: clients, upstream, logs).
#   2. instructions: kt runs under `valgrind --tool=callgrind` while `wrk -t1 -c4 -d10s` loads
#      it; prints the instructions per request spent in the upstream client: the inclusive
#      cost of its entry points (the socket and timer callbacks it registers, and
#      gw_upstream_start / gw_upstream_resume) minus the gateway callbacks it calls
#      (up_headers, up_data, up_done), which belong to the server.
# Works for the libcurl client too (entry points on_sock, on_timer, on_deadline), so the
# same command measures before and after. Only 127.0.0.1 is used; every load is bounded.
# Environment: KT_BIN (default build/kt), PORT_BASE (default 18180: upstream +1, kt +3),
# SKIP_STRACE=1, SKIP_CALLGRIND=1, KEEP_WORK=1 (keep the temp dir), CG_FILE (only analyse an
# earlier callgrind output).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/gateway"
KT="${KT_BIN:-$ROOT/build/kt}"
BASE="${PORT_BASE:-18180}"
UP_PORT=$((BASE + 1))
KT_PORT=$((BASE + 3))
. "$ROOT/bench/lib/procs.sh"
. "$ROOT/bench/lib/page-config.sh"
. "$ROOT/bench/lib/nginx-upstream.sh"
work_dir kt-upcost KEEP_WORK

# client_cost CALLGRIND-OUT: prints the client's instructions per request. The requests are
# counted by kt's own calls of the server's done callback (one per proxied request), not by
# wrk, which misses those still in flight when it stops.
client_cost() {
    local n
    n="$(callgrind_annotate --inclusive=yes --tree=calling --threshold=100 "$1" 2>/dev/null |
        sed -nE 's/.*>   [^ ]*:up_done \(([0-9,]+)x\).*/\1/p' | tr -d , |
        awk '{ s += $1 } END { print s + 0 }')"
    [ "$n" -gt 0 ] || { echo "upstream-cost: no proxied request in $1" >&2; return 1; }
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
        awk -v n="$n" '
        # Summary lines only: "  1,234 (5.67%)  file.c:function [object]".
        match($0, /^ *[0-9,]+ \([ 0-9.]+%\)  [^ ]*:[A-Za-z_][A-Za-z_0-9]* \[/) {
            ir = $1; gsub(",", "", ir)
            match($0, /[^ ]+:[A-Za-z_][A-Za-z_0-9]* \[/)
            name = substr($0, RSTART, RLENGTH - 2); sub(/^.*:/, "", name)
            if (name in seen) next
            seen[name] = 1
            if (name ~ /^(on_conn_io|on_call_timer|on_sweep|on_sock|on_timer|on_deadline|gw_upstream_start|gw_upstream_resume)$/) { entry += ir; printf "  + %-22s %10.0f\n", name, ir / n }
            if (name ~ /^(up_headers|up_data|up_done)$/) { cb += ir; printf "  - %-22s %10.0f\n", name, ir / n }
        }
        END { printf "instructions per request in the upstream client: %.0f (%d requests)\n", (entry - cb) / n, n }'
}

if [ -n "${CG_FILE:-}" ]; then # analyse an earlier run only
    client_cost "$CG_FILE"
    exit 0
fi

for t in wrk nginx strace valgrind callgrind_annotate; do
    command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] ||
        { echo "upstream-cost: needs $t" >&2; exit 1; }
done
nginx_upstream "$WORK/ngx" "$UP_PORT"
page_config "http://127.0.0.1:$UP_PORT/v1" >"$WORK/policy-config.yaml"

wait_port() { # wait_port PORT: until something answers a POST there (bounded)
    local i
    for ((i = 0; i < 300; i++)); do
        if curl -s -o /dev/null -X POST -H 'content-type: application/json' \
            --data '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' \
            "http://127.0.0.1:$1/v1/chat/completions"; then
            return 0
        fi
        sleep 0.1
    done
    echo "upstream-cost: nothing answers on port $1" >&2
    return 1
}
wait_port "$UP_PORT"

# run_kt WRAPPER...: starts kt under the wrapper, waits until it answers.
run_kt() {
    OPENAI_API_KEY=sk-bench-upstream "$@" "$KT" gateway run --listen "127.0.0.1:$KT_PORT" \
        --policy-config "$WORK/policy-config.yaml" --state-dir "$WORK/state" --workers 1 \
        2>"$WORK/kt.log" &
    KT_PID=$!
    PIDS+=("$KT_PID")
    wait_port "$KT_PORT"
}
stop_kt() { # signals kt itself (under strace it is the tracer's child), then waits
    local child
    child="$(pgrep -P "$KT_PID" 2>/dev/null | head -n 1 || true)"
    kill -TERM "${child:-$KT_PID}" 2>/dev/null || true
    wait "$KT_PID" 2>/dev/null || true
}
load() { # load CONNS SECONDS: prints the number of requests wrk completed
    wrk -t1 -c"$1" -d"$2"s -s "$HERE/post.lua" "http://127.0.0.1:$KT_PORT" 2>&1 |
        sed -nE 's/^BENCH requests=([0-9]+).*/\1/p'
}

if [ "${SKIP_STRACE:-0}" != 1 ]; then
    run_kt strace -c -f -o "$WORK/strace.txt"
    n="$(load 16 5)"
    stop_kt
    echo "syscalls per request (strace -c -f, wrk -t1 -c16 -d5s, $n requests):"
    awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
            calls = $4; name = $NF
            if (name != "total" && calls / n >= 0.01) printf "  %-16s %8.2f\n", name, calls / n
            if (name != "total") sum += calls
        }
        END { printf "  %-16s %8.2f\n", "all", sum / n }' "$WORK/strace.txt"
fi

if [ "${SKIP_CALLGRIND:-0}" != 1 ]; then
    run_kt valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" --trace-children=no
    load 4 10 >/dev/null
    stop_kt
    client_cost "$WORK/cg.out"
fi
