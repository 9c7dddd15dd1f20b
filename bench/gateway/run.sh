#!/usr/bin/env bash
# bench/gateway/run.sh - what kt adds to a request, next to nginx proxy_pass, on this machine.
#
#   bash bench/gateway/run.sh
#
# Builds a release kt and kt-bench-floor (build-release/), starts a fast upstream (nginx
# answering every POST /v1/chat/completions with a fixed chat.completion JSON over keep-alive),
# then runs the same wrk load (POST, small chat body, bench/gateway/post.lua) four ways:
#   direct  wrk -> upstream
#   nginx   wrk -> nginx proxy_pass (upstream keepalive) -> upstream
#   floor   wrk -> kt-bench-floor (bench/gateway/floor.c: evhttp + libcurl multi on one
#           event loop, nothing else) -> upstream
#   kt      wrk -> kt gateway run (the product page's config, policies as built) -> upstream
# at concurrency 1 and 64, BENCH_DURATION seconds each (default 10), and prints requests/s,
# p50, p99, the p99 each proxy adds over direct, kt-added-p99 / nginx-added-p99, kt's
# throughput as a percentage of nginx's, the floor's as a percentage of nginx's (what the
# libraries kt is built on cost) and kt's as a percentage of the floor's (what kt's own work
# costs on top of them). Only 127.0.0.1 is used. Results also go to
# bench/out/gateway-<time>.txt.
# Environment: BENCH_DURATION (s), BENCH_WORKERS (nginx proxy worker processes and kt
# --workers; default 1 so both proxies get the same share of the 2 cores; the floor always
# runs one loop), BENCH_PORT_BASE (default 18080: upstream +1, nginx +2, kt +3, floor +4),
# BENCH_SKIP_BUILD=1, KT_BIN, FLOOR_BIN.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/gateway"
cd "$ROOT"
DURATION="${BENCH_DURATION:-10}"
WORKERS="${BENCH_WORKERS:-1}"
BASE="${BENCH_PORT_BASE:-18080}"
UP_PORT=$((BASE + 1))
NGX_PORT=$((BASE + 2))
KT_PORT=$((BASE + 3))
FLOOR_PORT=$((BASE + 4))
KT="${KT_BIN:-$ROOT/build-release/kt}"
FLOOR="${FLOOR_BIN:-$ROOT/build-release/bench/kt-bench-floor}"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kt-bench.XXXXXX")"
RESULT="$OUT/gateway-$(date +%Y%m%d-%H%M%S).txt"
. "$ROOT/bench/lib/procs.sh"

cleanup() {
    local rc=$?
    stop_pids
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- bench-only dependencies (not part of the test deps) ---------------------------------
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ "${#need[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >&2
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

for p in "$UP_PORT" "$NGX_PORT" "$KT_PORT" "$FLOOR_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "bench: port $p on 127.0.0.1 is in use; set BENCH_PORT_BASE" >&2
        exit 1
    fi
done

# --- release build -----------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] && [ -z "${KT_BIN:-}" ]; then
    echo "building release kt and kt-bench-floor in build-release/ ..."
    cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DKT_TESTS=OFF \
        >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; exit 1; }
    cmake --build build-release -j2 --target kt --target kt-bench-floor \
        >>"$WORK/build.log" 2>&1 ||
        { tail -n 40 "$WORK/build.log"; exit 1; }
fi
[ -x "$KT" ] || { echo "bench: no kt binary at $KT" >&2; exit 1; }
[ -x "$FLOOR" ] || { echo "bench: no kt-bench-floor binary at $FLOOR (build the target" \
    "kt-bench-floor or set FLOOR_BIN)" >&2; exit 1; }

# --- nginx: the upstream and the proxy, each its own instance -----------------------------
USER_LINE=""
[ "$(id -u)" -ne 0 ] || USER_LINE="user root;"
BODY="$(tr -d '\n' <"$HERE/upstream.json")"

nginx_conf() { # nginx_conf NAME WORKERS SERVER-BLOCK
    local dir="$WORK/$1"
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
$USER_LINE
worker_processes $2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    $3
}
EOF
    echo "$dir"
}

up_dir="$(nginx_conf upstream 1 "server {
        listen 127.0.0.1:$UP_PORT;
        location = /v1/chat/completions {
            default_type application/json;
            return 200 '$BODY';
        }
    }")"
ngx_dir="$(nginx_conf proxy "$WORKERS" "upstream llm {
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

start_nginx() {
    "$NGINX" -p "$1" -c "$1/nginx.conf" -g 'daemon off;' 2>>"$1/logs/stderr.log" &
    PIDS+=($!)
}
start_nginx "$up_dir"
start_nginx "$ngx_dir"

. "$ROOT/bench/lib/page-config.sh"
page_config "http://127.0.0.1:$UP_PORT/v1" >"$WORK/policy-config.yaml"
OPENAI_API_KEY=sk-bench-upstream "$KT" gateway run --listen "127.0.0.1:$KT_PORT" \
    --policy-config "$WORK/policy-config.yaml" --state-dir "$WORK/state" \
    --workers "$WORKERS" 2>"$WORK/kt.log" &
PIDS+=($!)
"$FLOOR" --listen "127.0.0.1:$FLOOR_PORT" \
    --upstream "http://127.0.0.1:$UP_PORT/v1/chat/completions" 2>"$WORK/floor.log" &
PIDS+=($!)

BENCH_BODY='{"model":"gpt-4o","messages":[{"role":"user","content":"Summarise the validation loss trend of run 42 in one sentence."}]}'
post_status() { # post_status PORT: HTTP status of the benchmark's request ("000" = no answer)
    curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
        --data "$BENCH_BODY" "http://127.0.0.1:$1/v1/chat/completions" 2>/dev/null || true
}
wait_up() { # wait_up NAME PORT: until it answers at all, then say if the answer is not 200
    local i code=000
    for ((i = 0; i < 100; i++)); do
        code="$(post_status "$2")"
        [ "$code" = 000 ] || break
        sleep 0.1
    done
    if [ "$code" = 000 ]; then
        echo "bench: $1 on port $2 does not answer" >&2
        [ "$1" != kt ] || tail -n 20 "$WORK/kt.log" >&2
        [ "$1" != floor ] || tail -n 20 "$WORK/floor.log" >&2
        return 1
    fi
    if [ "$code" != 200 ]; then
        echo "WARNING: $1 answers the benchmark request with $code, not 200: its numbers" \
            "measure that path" >&2
    fi
}
wait_up upstream "$UP_PORT"
wait_up nginx "$NGX_PORT"
wait_up floor "$FLOOR_PORT"
wait_up kt "$KT_PORT"

# --- the load ----------------------------------------------------------------------------
declare -A RPS P50 P99 ERR
run_wrk() { # run_wrk NAME PORT CONC
    local name="$1" port="$2" c="$3" t line
    t=$((c < 2 ? 1 : 2))
    # A short warm-up fills connection pools and caches, then the measured run.
    wrk -t"$t" -c"$c" -d2s -s "$HERE/post.lua" "http://127.0.0.1:$port" >/dev/null 2>&1 || true
    line="$(wrk -t"$t" -c"$c" -d"${DURATION}s" --latency -s "$HERE/post.lua" \
        "http://127.0.0.1:$port" 2>&1 | grep '^BENCH ')"
    RPS[$name.$c]="$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")"
    P50[$name.$c]="$(sed -E 's/.* p50_us=([0-9]+).*/\1/' <<<"$line")"
    P99[$name.$c]="$(sed -E 's/.* p99_us=([0-9]+).*/\1/' <<<"$line")"
    ERR[$name.$c]="$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")"
    printf '  %-6s c=%-3s %s\n' "$name" "$c" "$line" >&2
}

echo "load: POST /v1/chat/completions, ${DURATION}s per run, wrk on 127.0.0.1" >&2
for c in 1 64; do
    run_wrk direct "$UP_PORT" "$c"
    run_wrk nginx "$NGX_PORT" "$c"
    run_wrk floor "$FLOOR_PORT" "$c"
    run_wrk kt "$KT_PORT" "$c"
done

# --- the table ---------------------------------------------------------------------------
{
    echo "kt gateway benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores;" \
        "${DURATION}s per run; proxies with $WORKERS worker(s); $("$KT" --version 2>&1)"
    printf '%-8s %5s %12s %10s %10s %15s %8s\n' target conc 'req/s' 'p50 ms' 'p99 ms' \
        'added p99 ms' errors
    for c in 1 64; do
        for n in direct nginx floor kt; do
            added="-"
            if [ "$n" != direct ]; then
                added="$(awk -v a="${P99[$n.$c]}" -v b="${P99[direct.$c]}" \
                    'BEGIN { printf "%.3f", (a - b) / 1000 }')"
            fi
            printf '%-8s %5s %12s %10s %10s %15s %8s\n' "$n" "$c" "${RPS[$n.$c]}" \
                "$(awk -v x="${P50[$n.$c]}" 'BEGIN { printf "%.3f", x / 1000 }')" \
                "$(awk -v x="${P99[$n.$c]}" 'BEGIN { printf "%.3f", x / 1000 }')" \
                "$added" "${ERR[$n.$c]}"
        done
    done
    for c in 1 64; do
        awk -v c="$c" -v d="${P99[direct.$c]}" -v n="${P99[nginx.$c]}" -v k="${P99[kt.$c]}" \
            -v rn="${RPS[nginx.$c]}" -v rk="${RPS[kt.$c]}" -v rf="${RPS[floor.$c]}" 'BEGIN {
                na = n - d; ka = k - d
                ratio = (na > 0) ? sprintf("%.2f", ka / na) : "n/a (nginx added <= 0)"
                printf "c=%s: kt added p99 / nginx added p99 = %s; kt throughput = %.1f%% of nginx\n",
                    c, ratio, (rn > 0) ? 100 * rk / rn : 0
                printf "c=%s: floor throughput = %.1f%% of nginx (the libraries);" \
                    " kt throughput = %.1f%% of floor (kt\047s own work)\n",
                    c, (rn > 0) ? 100 * rf / rn : 0, (rf > 0) ? 100 * rk / rf : 0
            }'
    done
    for c in 1 64; do
        for n in direct nginx floor kt; do
            if [ "${ERR[$n.$c]:-0}" != 0 ]; then
                echo "WARNING: $n at c=$c had ${ERR[$n.$c]} errors (non-2xx or socket errors)"
            fi
        done
    done
} | tee "$RESULT"
echo "saved to ${RESULT#"$ROOT"/}"
