#!/usr/bin/env bash
# bench/gateway/run.sh - what kt adds to a request, next to nginx proxy_pass, on this machine.
#
#   bash bench/gateway/run.sh
#
# Builds a release kt, kt-bench-floor and kt-bench-floor2 (build-release/), starts a fast
# upstream (nginx answering every POST /v1/chat/completions over keep-alive: with a fixed
# chat.completion JSON, or, when the request says Accept: text/event-stream, with a fixed SSE
# stream of chat.completion.chunk events ending in `data: [DONE]`, bench/gateway/upstream-sse.txt,
# sent whole with a Content-Length), then sends the same load five ways:
#   direct  client -> upstream
#   nginx   client -> nginx proxy_pass (upstream keepalive) -> upstream
#   floor   client -> kt-bench-floor (bench/gateway/floor.c: evhttp + libcurl multi on one
#           event loop, nothing else) -> upstream
#   floor2  client -> kt-bench-floor2 (bench/gateway/floor2.c: raw libevent events,
#           libhttp-parser, pooled buffers, keep-alive upstream pool, nothing else) -> upstream
#   kt      client -> kt gateway run (the product page's config, policies as built) -> upstream
# The loads, BENCH_DURATION seconds each (default 10), after a 2 s warm-up:
#   json    wrk POST (bench/gateway/post.lua) at concurrency 1 and 64;
#   sse     the same request with "stream":true and Accept: text/event-stream, concurrency 64;
#   paced   bench/gateway/paced.mjs: POST at a fixed BENCH_PACED_RATE req/s (default 500) over
#           16 keep-alive connections per target, so latency is measured with nothing saturated
#           (wrk can only measure a saturated server); all targets in one run, taking turns every
#           BENCH_PACED_SLICE_MS (default 200), so the machine's drift falls on all alike;
#   sys     wrk c=64 for BENCH_SYS_DURATION s (default 3) per proxy, json and sse, with the
#           proxy's syscalls counted by `perf stat -e raw_syscalls:sys_enter,...` (or by
#           `strace -c` where perf cannot trace; strace slows the proxy, its rates are not
#           comparable, its counts per request are). Off with BENCH_SYSCALLS=0.
# Per target it prints req/s, p50 and p99, each proxy's ratio to nginx, its CPU time per request
# (utime + stime of the proxy's processes and threads from /proc/<pid>/stat around the measured
# run, divided by the requests wrk counted; nginx: its workers; direct: the upstream's worker),
# the added P50 at the paced rate (proxy p50 - direct p50 of the same run, the median over the
# rounds) with kt-added / nginx-added, the syscalls per request (all, epoll_ctl, epoll_wait,
# reads, writes), and how much of the machine's CPU time the host gave other tenants (steal,
# /proc/stat) during the wrk runs. The
# last lines compare kt and floor2 with their targets. With BENCH_ROUNDS=R the wrk loads run R
# times, every target in turn each round, so a busy spell of the machine hits all of them: the
# tables show medians and the req/s range, the targets the median and range of the ratios taken
# within each round.
# Only 127.0.0.1 is used. Results also go to bench/out/gateway-<time>.txt.
# Environment: BENCH_DURATION (s), BENCH_WORKERS (nginx proxy worker processes and kt
# --workers; default 1 so both proxies get the same share of the 2 cores; the floors always run
# one loop), BENCH_PORT_BASE (default 18080: upstream +1, nginx +2, kt +3, floor +4, floor2 +5),
# BENCH_PACED_RATE, BENCH_PACED_SLICE_MS, BENCH_SYSCALLS, BENCH_SYS_DURATION,
# BENCH_SYS_TOOL=strace (count with strace even where perf works), BENCH_ROUNDS (default 1),
# BENCH_WRK_THREADS (wrk's threads at c=64, default 2; 1 is the load the data-plane targets
# were first measured with, `wrk -t1 -c64`: one thread still drives the direct upstream far past
# any proxy, and leaves the proxies the CPU a second wrk thread would take),
# BENCH_MAX_STEAL and BENCH_REDO (a
# wrk run that lost more than BENCH_MAX_STEAL percent, default 5, of the machine's CPU time to
# steal is run again, up to BENCH_REDO times, default 2, and the run that lost least is kept;
# BENCH_REDO=0 keeps every first run), BENCH_SKIP_BUILD=1, KT_BIN, FLOOR_BIN, FLOOR2_BIN.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/gateway"
cd "$ROOT"
DURATION="${BENCH_DURATION:-10}"
WORKERS="${BENCH_WORKERS:-1}"
BASE="${BENCH_PORT_BASE:-18080}"
PACED_RATE="${BENCH_PACED_RATE:-500}"
PACED_SLICE_MS="${BENCH_PACED_SLICE_MS:-200}"
SYSCALLS="${BENCH_SYSCALLS:-1}"
SYS_DURATION="${BENCH_SYS_DURATION:-3}"
ROUNDS="${BENCH_ROUNDS:-1}"
MAX_STEAL="${BENCH_MAX_STEAL:-5}"
REDO="${BENCH_REDO:-2}"
WRK_THREADS="${BENCH_WRK_THREADS:-2}"
UP_PORT=$((BASE + 1))
NGX_PORT=$((BASE + 2))
KT_PORT=$((BASE + 3))
FLOOR_PORT=$((BASE + 4))
FLOOR2_PORT=$((BASE + 5))
KT="${KT_BIN:-$ROOT/build-release/kt}"
FLOOR="${FLOOR_BIN:-$ROOT/build-release/bench/kt-bench-floor}"
FLOOR2="${FLOOR2_BIN:-$ROOT/build-release/bench/kt-bench-floor2}"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
RESULT="$OUT/gateway-$(date +%Y%m%d-%H%M%S).txt"
TARGETS=(direct nginx floor floor2 kt)
PROXIES=(nginx floor floor2 kt)
. "$ROOT/bench/lib/procs.sh"
. "$ROOT/bench/lib/nginx-upstream.sh"
. "$ROOT/bench/lib/steal.sh"
. "$ROOT/bench/lib/apt.sh"
work_dir kt-bench

# --- bench-only dependencies (not part of the test deps) ---------------------------------
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -e /usr/include/http_parser.h ] || need+=(libhttp-parser-dev)
[ -e /usr/include/mimalloc.h ] || need+=(libmimalloc-dev)
apt_install "${need[@]}"
command -v node >/dev/null 2>&1 || { echo "bench: node is needed (paced load)" >&2; exit 1; }
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

ports_free bench BENCH_PORT_BASE "$UP_PORT" "$NGX_PORT" "$KT_PORT" "$FLOOR_PORT" "$FLOOR2_PORT"

# --- release build -----------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] && [ -z "${KT_BIN:-}" ]; then
    echo "building release kt, kt-bench-floor and kt-bench-floor2 in build-release/ ..." >&2
    cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DKT_TESTS=OFF -DKT_BENCH=ON \
        >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; exit 1; }
    cmake --build build-release -j2 --target kt --target kt-bench-floor \
        --target kt-bench-floor2 >>"$WORK/build.log" 2>&1 ||
        { tail -n 40 "$WORK/build.log"; exit 1; }
fi
[ -x "$KT" ] || { echo "bench: no kt binary at $KT" >&2; exit 1; }
[ -x "$FLOOR" ] || { echo "bench: no kt-bench-floor binary at $FLOOR (build the target" \
    "kt-bench-floor or set FLOOR_BIN)" >&2; exit 1; }
[ -x "$FLOOR2" ] || { echo "bench: no kt-bench-floor2 binary at $FLOOR2 (build the target" \
    "kt-bench-floor2 or set FLOOR2_BIN)" >&2; exit 1; }

# --- nginx: the upstream and the proxy, each its own instance -----------------------------
ngx_conf() { # ngx_conf NAME WORKERS SERVER-BLOCK: prints the instance's dir
    nginx_conf "$WORK/$1" "$2" 4096 "" "keepalive_timeout 60s;
    $3"
    echo "$WORK/$1"
}

up_dir="$(ngx_conf upstream 1 "$(upstream_server "$UP_PORT")")"
ngx_dir="$(ngx_conf proxy "$WORKERS" "upstream llm {
        server 127.0.0.1:$UP_PORT;
        keepalive 128;
    }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / {
            proxy_pass http://llm;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Authorization \"Bearer sk-bench-upstream\";
            proxy_buffering on;
        }
    }")"

declare -A MAINPID
start_nginx() { # start_nginx NAME DIR
    "$NGINX" -p "$2" -c "$2/nginx.conf" -g 'daemon off;' 2>>"$2/logs/stderr.log" &
    PIDS+=($!)
    MAINPID[$1]=$!
}
start_nginx direct "$up_dir"
start_nginx nginx "$ngx_dir"

. "$ROOT/bench/lib/page-config.sh"
page_config "http://127.0.0.1:$UP_PORT/v1" >"$WORK/policy-config.yaml"
OPENAI_API_KEY=sk-bench-upstream "$KT" gateway run --listen "127.0.0.1:$KT_PORT" \
    --policy-config "$WORK/policy-config.yaml" --state-dir "$WORK/state" \
    --workers "$WORKERS" 2>"$WORK/kt.log" &
PIDS+=($!)
MAINPID[kt]=$!
"$FLOOR" --listen "127.0.0.1:$FLOOR_PORT" \
    --upstream "http://127.0.0.1:$UP_PORT/v1/chat/completions" 2>"$WORK/floor.log" &
PIDS+=($!)
MAINPID[floor]=$!
"$FLOOR2" --listen "127.0.0.1:$FLOOR2_PORT" \
    --upstream "http://127.0.0.1:$UP_PORT/v1/chat/completions" 2>"$WORK/floor2.log" &
PIDS+=($!)
MAINPID[floor2]=$!
declare -A PORT=([direct]="$UP_PORT" [nginx]="$NGX_PORT" [floor]="$FLOOR_PORT"
    [floor2]="$FLOOR2_PORT" [kt]="$KT_PORT")

PROMPT='"Summarise the validation loss trend of run 42 in one sentence."'
BENCH_BODY='{"model":"gpt-4o","messages":[{"role":"user","content":'"$PROMPT"'}]}'
BENCH_SSE_BODY='{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":'"$PROMPT"'}]}'
post_status() { # post_status PORT: HTTP status of the benchmark's request ("000" = no answer)
    curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
        --data "$BENCH_BODY" "http://127.0.0.1:$1/v1/chat/completions" 2>/dev/null || true
}
wait_up() { # wait_up NAME PORT: until it answers at all, then say if the answer is not 200
    local i code=000 sse
    for ((i = 0; i < 100; i++)); do
        code="$(post_status "$2")"
        [ "$code" = 000 ] || break
        sleep 0.1
    done
    if [ "$code" = 000 ]; then
        echo "bench: $1 on port $2 does not answer" >&2
        [ ! -e "$WORK/$1.log" ] || tail -n 20 "$WORK/$1.log" >&2
        return 1
    fi
    if [ "$code" != 200 ]; then
        echo "WARNING: $1 answers the benchmark request with $code, not 200: its numbers" \
            "measure that path" >&2
    fi
    # The streamed request must come back as a stream that ends the way OpenAI's do.
    sse="$(curl -s -i -X POST -H 'content-type: application/json' \
        -H 'accept: text/event-stream' --data "$BENCH_SSE_BODY" \
        "http://127.0.0.1:$2/v1/chat/completions" 2>/dev/null | tr -d '\r' || true)"
    if ! grep -qi '^content-type: text/event-stream' <<<"$sse" ||
        ! grep -q '^data: \[DONE\]' <<<"$sse"; then
        echo "WARNING: $1 does not answer the streamed request with an SSE stream ending in" \
            "[DONE]: its sse numbers measure something else" >&2
    fi
}
for n in "${TARGETS[@]}"; do
    wait_up "$n" "${PORT[$n]}"
done

# --- what to watch: each target's processes ------------------------------------------------
# nginx: the workers (the master only forks them); direct: the upstream's worker; kt and the
# floors: the process (/proc/<pid>/stat counts all its threads) and any children.
declare -A WATCH
for n in "${TARGETS[@]}"; do
    case "$n" in
    direct | nginx) WATCH[$n]="$(pgrep -P "${MAINPID[$n]}" | tr '\n' ' ')" ;;
    *) WATCH[$n]="${MAINPID[$n]} $(pgrep -P "${MAINPID[$n]}" | tr '\n' ' ' || true)" ;;
    esac
    [ -n "${WATCH[$n]// /}" ] || { echo "bench: no process to watch for $n" >&2; exit 1; }
done
HZ="$(getconf CLK_TCK)"

# --- the load ----------------------------------------------------------------------------
declare -A RPS P50 P99 ERR CPU SPAN L_RPS L_P50 L_P99 L_CPU
bench_field() { # bench_field KEY LINE
    sed -E "s/.* $1=([0-9.]+).*/\\1/" <<<"$2"
}
STEALS="" # steal_pct of every wrk run (bench/lib/steal.sh)

wrk_turn() { # wrk_turn NAME T CONC ARGS...: one measured run; prints "LINE CPU STEAL"
    local name="$1" t="$2" c="$3" c0 c1 s0 s1 line steal
    shift 3
    # A short warm-up fills connection pools and caches, then the measured run.
    wrk -t"$t" -c"$c" -d2s -s "$HERE/post.lua" "http://127.0.0.1:${PORT[$name]}" \
        "$@" >/dev/null 2>&1 || true
    # shellcheck disable=SC2086 # a list of pids
    c0="$(cpu_ticks ${WATCH[$name]})"
    s0="$(steal_ticks)"
    line="$(wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s "$HERE/post.lua" \
        "http://127.0.0.1:${PORT[$name]}" "$@" 2>&1 | grep '^BENCH ')" || true
    # shellcheck disable=SC2086
    c1="$(cpu_ticks ${WATCH[$name]})"
    s1="$(steal_ticks)"
    steal="$(steal_pct "$s0" "$s1")"
    [ -n "$line" ] || line="BENCH requests=0 duration_us=1 rps=0 p50_us=0 p99_us=0 errors=1"
    awk -v t=$((c1 - c0)) -v hz="$HZ" -v r="$(bench_field requests "$line")" -v l="$line" \
        -v st="$steal" 'BEGIN { printf "%s %.1f %s\n", l, (r > 0) ? 1e6 * t / hz / r : 0, st }'
}

note_again() { # note_again "LINE CPU STEAL": a turn that runs again (name, mode, c: run_wrk's)
    printf '  %-6s %-4s c=%-3s steal %s%% > %s%%: again\n' "$name" "$mode" "$c" "${1##* }" \
        "$MAX_STEAL" >&2
}

# A turn that lost more than MAX_STEAL percent of the machine to other tenants is run
# again, up to REDO times, and the turn that lost least is kept (least_stolen).
run_wrk() { # run_wrk NAME MODE CONC  (MODE json|sse)
    local name="$1" mode="$2" c="$3" t line steal k="$1.$2.$3" script_args=() cpu turn
    t=$((c < 2 ? 1 : WRK_THREADS))
    [ "$mode" = json ] || script_args=(-- sse)
    turn="$(least_stolen "$REDO" "$MAX_STEAL" note_again wrk_turn "$name" "$t" "$c" \
        "${script_args[@]}")"
    steal="${turn##* }"
    turn="${turn% *}"
    cpu="${turn##* }"
    line="${turn% *}"
    STEALS+="$steal "
    L_RPS[$k]+="$(bench_field rps "$line") "
    L_P50[$k]+="$(bench_field p50_us "$line") "
    L_P99[$k]+="$(bench_field p99_us "$line") "
    L_CPU[$k]+="$cpu "
    ERR[$k]=$((${ERR[$k]:-0} + $(bench_field errors "$line")))
    printf '  %-6s %-4s c=%-3s %s cpu_us_per_req=%s steal_pct=%s\n' "$name" "$mode" "$c" "$line" \
        "$cpu" "$steal" >&2
}
median() { # median "V1 V2 ...": the middle value (the mean of the two middle ones)
    tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]
        else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
span() { # span "V1 V2 ...": MIN-MAX
    tr ' ' '\n' <<<"$1" | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 }
        END { print (NR > 1) ? lo "-" hi : "-" }'
}
# round_pairs OP "A1 A2 ..." "B1 B2 ...": A1 OP B1, A2 OP B2, ... (same round each). OP is
# "/" (ratios to two places; a zero B gives none) or "-" (whole differences).
round_pairs() {
    paste <(tr ' ' '\n' <<<"$2" | grep .) <(tr ' ' '\n' <<<"$3" | grep .) |
        awk -v op="$1" '{
            if (op == "-") printf "%d ", $1 - $2
            else if ($2 > 0) printf "%.2f ", $1 / $2
        }'
}

echo "load: POST /v1/chat/completions, ${DURATION}s per run, $ROUNDS round(s), wrk on" \
    "127.0.0.1" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    for c in 1 64; do
        for n in "${TARGETS[@]}"; do
            run_wrk "$n" json "$c"
        done
    done
    for n in "${TARGETS[@]}"; do
        run_wrk "$n" sse 64
    done
done
for k in "${!L_RPS[@]}"; do
    RPS[$k]="$(median "${L_RPS[$k]}")"
    SPAN[$k]="$(span "${L_RPS[$k]}")"
    P50[$k]="$(median "${L_P50[$k]}")"
    P99[$k]="$(median "${L_P99[$k]}")"
    CPU[$k]="$(median "${L_CPU[$k]}")"
done

declare -A PACED
# All targets in one run, taking turns every PACED_SLICE_MS (paced.mjs --targets): run one after
# another, direct's own p50 moved by more between runs than a proxy adds to it.
paced_targets=""
for n in "${TARGETS[@]}"; do
    paced_targets+="${paced_targets:+,}$n=http://127.0.0.1:${PORT[$n]}"
done
echo "paced: $PACED_RATE req/s, ${DURATION}s per target over 16 connections each, targets" \
    "in turns of ${PACED_SLICE_MS} ms, $ROUNDS round(s)" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    out="$(node "$HERE/paced.mjs" --targets "$paced_targets" --rate "$PACED_RATE" \
        --duration-s "$((DURATION * ${#TARGETS[@]}))" --slice-ms "$PACED_SLICE_MS" \
        --conns 16)" || true
    for n in "${TARGETS[@]}"; do
        line="$(grep "^PACED target=$n " <<<"$out")" || true
        [ -n "$line" ] || line="PACED target=$n sent=0 ok=0 errors=1 p50_us=0 p90_us=0 p99_us=0"
        PACED[$n.l50]+="$(bench_field p50_us "$line") "
        PACED[$n.l99]+="$(bench_field p99_us "$line") "
        PACED[$n.err]=$((${PACED[$n.err]:-0} + $(bench_field errors "$line")))
        printf '  %s\n' "$line" >&2
    done
done
for n in "${TARGETS[@]}"; do
    PACED[$n.p50]="$(median "${PACED[$n.l50]}")"
    PACED[$n.p99]="$(median "${PACED[$n.l99]}")"
    # Added p50 within each round (the same run as direct's), then the median of the rounds.
    [ "$n" = direct ] ||
        PACED[$n.added]="$(median "$(round_pairs - "${PACED[$n.l50]}" "${PACED[direct.l50]}")")"
done

# Syscalls per request: perf counts them in the kernel at little cost; strace stops the proxy
# at each one, so it is the fallback only.
declare -A SYS
SYS_TOOL=none
if [ "$SYSCALLS" = 1 ] && [ "${BENCH_SYS_TOOL:-}" = strace ]; then
    SYS_TOOL=strace
elif [ "$SYSCALLS" = 1 ]; then
    if command -v perf >/dev/null 2>&1 &&
        perf stat -e raw_syscalls:sys_enter -p "${MAINPID[floor2]}" -- sleep 0.1 \
            >/dev/null 2>&1; then
        SYS_TOOL=perf
    elif command -v strace >/dev/null 2>&1; then
        SYS_TOOL=strace
    fi
fi
SYS_EVENTS=(raw_syscalls:sys_enter syscalls:sys_enter_epoll_ctl syscalls:sys_enter_epoll_wait
    syscalls:sys_enter_epoll_pwait syscalls:sys_enter_read syscalls:sys_enter_readv
    syscalls:sys_enter_recvfrom syscalls:sys_enter_write syscalls:sys_enter_writev
    syscalls:sys_enter_sendto syscalls:sys_enter_sendmsg syscalls:sys_enter_sendfile64)
count_syscalls() { # count_syscalls NAME MODE: SYS[NAME.MODE.{all,ctl,wait,rd,wr}] per request
    local name="$1" mode="$2" pids line req script_args=() k="$1.$2"
    [ "$mode" = json ] || script_args=(-- sse)
    pids="$(tr -s ' ' ',' <<<"${WATCH[$name]}" | sed 's/^,//; s/,$//')"
    if [ "$SYS_TOOL" = perf ]; then
        perf stat -x, -o "$WORK/sys.$k" -e "$(
            IFS=,
            echo "${SYS_EVENTS[*]}"
        )" -p "$pids" -- sleep "$((SYS_DURATION + 1))" &
    else
        # shellcheck disable=SC2046,SC2086 # one -p per pid
        strace -f -c -o "$WORK/sys.$k" $(printf -- '-p %s ' ${WATCH[$name]}) &
    fi
    local tracer=$!
    sleep 0.5
    line="$(wrk -t"$WRK_THREADS" -c64 -d"${SYS_DURATION}s" -s "$HERE/post.lua" \
        "http://127.0.0.1:${PORT[$name]}" "${script_args[@]}" 2>&1 | grep '^BENCH ')" || true
    if [ "$SYS_TOOL" = strace ]; then
        kill -INT "$tracer" 2>/dev/null || true
    fi
    wait "$tracer" 2>/dev/null || true
    req="$(bench_field requests "${line:-BENCH requests=0 }")"
    if [ "$SYS_TOOL" = perf ]; then
        # perf -x, lines: count,unit,event,...
        awk -F, -v r="$req" -v k="$k" '
            $3 ~ /raw_syscalls:sys_enter/ { all += $1 }
            $3 ~ /epoll_ctl/ { ctl += $1 }
            $3 ~ /epoll_(p)?wait/ { wait += $1 }
            $3 ~ /sys_enter_(read|readv|recvfrom)$/ { rd += $1 }
            $3 ~ /sys_enter_(write|writev|sendto|sendmsg|sendfile64)$/ { wr += $1 }
            END { if (r > 0) printf "%.2f %.2f %.2f %.2f %.2f\n", all / r, ctl / r, wait / r,
                      rd / r, wr / r; else print "- - - - -" }' "$WORK/sys.$k" >"$WORK/sys.$k.r"
    else
        # strace -c table: calls in column 4 (errors, when any, in 5), the name last.
        awk -v r="$req" '
            $NF == "total" { all = $4 }
            $NF ~ /^epoll_ctl$/ { ctl += $4 }
            $NF ~ /^epoll_(p)?wait$/ { wait += $4 }
            $NF ~ /^(read|readv|recvfrom)$/ { rd += $4 }
            $NF ~ /^(write|writev|sendto|sendmsg|sendfile)$/ { wr += $4 }
            END { if (r > 0) printf "%.2f %.2f %.2f %.2f %.2f\n", all / r, ctl / r, wait / r,
                      rd / r, wr / r; else print "- - - - -" }' "$WORK/sys.$k" >"$WORK/sys.$k.r"
    fi
    read -r "SYS[$k.all]" "SYS[$k.ctl]" "SYS[$k.wait]" "SYS[$k.rd]" "SYS[$k.wr]" \
        <"$WORK/sys.$k.r"
    printf '  %-6s %-4s %s requests, per request: all=%s epoll_ctl=%s epoll_wait=%s' \
        "$name" "$mode" "$req" "${SYS[$k.all]}" "${SYS[$k.ctl]}" "${SYS[$k.wait]}" >&2
    printf ' reads=%s writes=%s\n' "${SYS[$k.rd]}" "${SYS[$k.wr]}" >&2
}
if [ "$SYS_TOOL" != none ]; then
    echo "syscalls: wrk c=64 for ${SYS_DURATION}s per proxy under $SYS_TOOL" >&2
    for mode in json sse; do
        for n in "${PROXIES[@]}"; do
            count_syscalls "$n" "$mode"
        done
    done
fi

# --- the table ---------------------------------------------------------------------------
ratio() { # ratio A B: A / B with two decimals, "-" when B is not positive
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (b + 0 > 0 && a != "-") printf "%.2f", a / b; else print "-" }'
}
ms() { # ms MICROSECONDS
    awk -v x="$1" 'BEGIN { printf "%.3f", x / 1000 }'
}
ms_diff() { # ms_diff US_A US_B: (A - B) in ms
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (a - b) / 1000 }'
}
{
    echo "kt gateway benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores;" \
        "${DURATION}s per run, $ROUNDS round(s) (medians); proxies with $WORKERS worker(s);" \
        "wrk -t$WRK_THREADS at c=64;" \
        "$("$KT" --version 2>&1)"
    echo
    echo "json: wrk POST, chat.completion answer (x nginx = req/s / nginx's; cpu = the" \
        "target's CPU us per request)"
    ROW='%-7s %4s %10s %17s %7s %8s %8s %11s %8s %7s %6s\n'
    # shellcheck disable=SC2059 # one row format for the header and the rows
    printf "$ROW" target conc 'req/s' 'range' 'x nginx' 'p50 ms' 'p99 ms' 'added p99' 'cpu us' \
        'x nginx' errors
    for c in 1 64; do
        for n in "${TARGETS[@]}"; do
            k="$n.json.$c"
            added=-
            [ "$n" = direct ] || added="$(ms_diff "${P99[$k]}" "${P99[direct.json.$c]}")"
            # shellcheck disable=SC2059
            printf "$ROW" "$n" "$c" "${RPS[$k]}" "${SPAN[$k]}" \
                "$(ratio "${RPS[$k]}" "${RPS[nginx.json.$c]}")" \
                "$(ms "${P50[$k]}")" "$(ms "${P99[$k]}")" "$added" "${CPU[$k]}" \
                "$(ratio "${CPU[$k]}" "${CPU[nginx.json.$c]}")" "${ERR[$k]}"
        done
    done
    echo
    echo "sse: the same with \"stream\":true, answered with a" \
        "$(wc -c <"$HERE/upstream-sse.txt")-byte stream of" \
        "$(grep -c '^data:' "$HERE/upstream-sse.txt") events (sent whole by the upstream)"
    # shellcheck disable=SC2059
    printf "$ROW" target conc 'req/s' 'range' 'x nginx' 'p50 ms' 'p99 ms' 'added p99' 'cpu us' \
        'x nginx' errors
    for n in "${TARGETS[@]}"; do
        k="$n.sse.64"
        added=-
        [ "$n" = direct ] || added="$(ms_diff "${P99[$k]}" "${P99[direct.sse.64]}")"
        # shellcheck disable=SC2059
        printf "$ROW" "$n" 64 "${RPS[$k]}" "${SPAN[$k]}" \
            "$(ratio "${RPS[$k]}" "${RPS[nginx.sse.64]}")" \
            "$(ms "${P50[$k]}")" "$(ms "${P99[$k]}")" "$added" "${CPU[$k]}" \
            "$(ratio "${CPU[$k]}" "${CPU[nginx.sse.64]}")" "${ERR[$k]}"
    done
    echo
    echo "paced: json at $PACED_RATE req/s over 16 keep-alive connections (added = p50 - direct's)"
    PROW='%-7s %8s %8s %10s %13s %6s\n'
    # shellcheck disable=SC2059
    printf "$PROW" target 'p50 ms' 'p99 ms' 'added p50' 'x nginx added' errors
    for n in "${TARGETS[@]}"; do
        added=- xa=-
        if [ "$n" != direct ]; then
            added="$(ms "${PACED[$n.added]}")"
            xa="$(ratio "${PACED[$n.added]}" "${PACED[nginx.added]}")"
        fi
        # shellcheck disable=SC2059
        printf "$PROW" "$n" "$(ms "${PACED[$n.p50]}")" "$(ms "${PACED[$n.p99]}")" "$added" \
            "$xa" "${PACED[$n.err]}"
    done
    if [ "$SYS_TOOL" != none ]; then
        echo
        echo "syscalls per request, wrk c=64 for ${SYS_DURATION}s, counted by $SYS_TOOL" \
            "(reads = read/readv/recvfrom, writes = write/writev/sendto/sendmsg/sendfile)"
        SROW='%-7s %5s %7s %10s %11s %7s %7s\n'
        # shellcheck disable=SC2059
        printf "$SROW" target mode all epoll_ctl epoll_wait reads writes
        for mode in json sse; do
            for n in "${PROXIES[@]}"; do
                k="$n.$mode"
                # shellcheck disable=SC2059
                printf "$SROW" "$n" "$mode" "${SYS[$k.all]}" "${SYS[$k.ctl]}" \
                    "${SYS[$k.wait]}" "${SYS[$k.rd]}" "${SYS[$k.wr]}"
            done
        done
    fi
    echo
    check() { # check LABEL VALUE OP LIMIT [RANGE]
        local verdict
        verdict="$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN {
            if (v == "-") { print "n/a"; exit }
            ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 <= l + 0)
            print ok ? "ok" : "MISSED" }')"
        printf '%-44s %6s %-11s (target %s %s) %s\n' "$1" "$2" "${5:+($5)}" "$3" "$4" "$verdict"
    }
    check_rounds() { # check_rounds LABEL LIST_A LIST_B OP LIMIT: per-round ratios A/B
        local r
        r="$(round_pairs / "$2" "$3")"
        check "$1" "$(median "$r")" "$4" "$5" "$(span "$r" | sed 's/^-$//')"
    }
    check_rounds "floor2 / nginx req/s, json c=64" \
        "${L_RPS[floor2.json.64]}" "${L_RPS[nginx.json.64]}" '>=' 0.9
    check_rounds "floor2 / nginx req/s, sse c=64" \
        "${L_RPS[floor2.sse.64]}" "${L_RPS[nginx.sse.64]}" '>=' 0.9
    check_rounds "kt / nginx req/s, json c=64" \
        "${L_RPS[kt.json.64]}" "${L_RPS[nginx.json.64]}" '>=' 0.7
    check_rounds "kt / nginx req/s, sse c=64" \
        "${L_RPS[kt.sse.64]}" "${L_RPS[nginx.sse.64]}" '>=' 0.7
    check_rounds "kt / nginx CPU per request, json c=64" \
        "${L_CPU[kt.json.64]}" "${L_CPU[nginx.json.64]}" '<=' 2
    check_rounds "kt / nginx CPU per request, sse c=64" \
        "${L_CPU[kt.sse.64]}" "${L_CPU[nginx.sse.64]}" '<=' 2
    check "kt added / nginx added p50 at $PACED_RATE req/s" \
        "$(ratio "${PACED[kt.added]}" "${PACED[nginx.added]}")" '<=' 1.5
    # shellcheck disable=SC2086 # a list of numbers
    echo "steal during the wrk runs: median $(median "$STEALS")%, range $(span "$STEALS")% of the" \
        "machine's CPU time (above ~5%, other tenants took enough to move the ratios)"
    for k in "${!ERR[@]}"; do
        if [ "${ERR[$k]:-0}" != 0 ]; then
            echo "WARNING: ${k%%.*} (${k#*.}) had ${ERR[$k]} errors (non-2xx or socket errors)"
        fi
    done
    for n in "${TARGETS[@]}"; do
        if [ "${PACED[$n.err]:-0}" != 0 ]; then
            echo "WARNING: $n had ${PACED[$n.err]} errors in the paced run"
        fi
    done
} | tee "$RESULT"
echo "saved to ${RESULT#"$ROOT"/}"
