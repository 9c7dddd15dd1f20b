#!/usr/bin/env bash
# bench/gateway/streams.sh - thousands of concurrent long SSE streams through kt, next to nginx.
#
#   bash bench/gateway/streams.sh                 # N=2000
#   STREAMS_N=10000 bash bench/gateway/streams.sh
#
# Builds a release kt and kt-bench-floor2 (build-release/), starts the e2e OpenAI stand-in
# (tests/e2e/lib/upstream.mjs, the real SSE wire format) in its own node process and sends the
# same load four ways, one after the other:
#   direct  client -> stand-in
#   nginx   client -> nginx proxy_pass (proxy_buffering off, HTTP/1.1 keep-alive upstream,
#           worker_processes 1) -> stand-in
#   floor2  client -> kt-bench-floor2 (bench/gateway/floor2.c: the data plane's design with no
#           kt code) -> stand-in
#   kt      client -> kt gateway run (the product page's config, --workers 1) -> stand-in
# The client (bench/gateway/streams.mjs, STREAMS_CLIENTS node processes, default one per 2,500
# streams, since one node process cannot parse 10,000 streams in time; node's http, one
# keep-alive agent per process) starts N POST /v1/chat/completions with stream:true and
# stream_options.include_usage spread evenly over STREAMS_RAMP_MS (default 1500; N / 2 ms above
# 4,000 streams). The stand-in answers each with a role event at once, then STREAMS_WORDS
# content deltas, a finish event and a usage event STREAMS_DELAY_MS apart (default 15 deltas,
# 200 ms: 3.4 s a stream; 1000 ms above 4,000 streams: 17 s), then `data: [DONE]`, so all N are
# in flight together for a few seconds. A proxy needs two descriptors per stream in flight
# (client and upstream socket): where the open-file hard limit cannot be raised that far (it
# takes CAP_SYS_RESOURCE), the client keeps at most (limit - 3072) / 2 streams in flight (and
# sockets open) and says so; all N still run. A stream is completed when it
# answered 200 text/event-stream, its deltas join to the stand-in's text and it ended with
# `data: [DONE]`; anything else is failed (the reasons are printed). An unmeasured warm-up of
# N/4 direct streams comes first.
#
# Per target it prints: completed/failed streams, inflt = the most in flight at once (client
# side; below N means the ramp outlasted a stream, i.e. the machine could not keep up), wall
# time until the last stream ended, fb = first byte of the body (the role event) p50/p99, tot =
# whole stream p50/p99 (the stand-in alone takes 3.4 s), in ms; and for the proxies: VmRSS
# from /proc/<pid>/status sampled every 100 ms (nginx: its worker) as base (just before the
# load), peak (during it) and aftr (1 s after the last stream), KB/strm = (peak - base) / N, the
# memory each in-flight stream costs (divided by the streams in flight at most, when the
# open-file limit capped them below N); fds = most open fds (client and upstream sockets both
# count); cpu s = the proxy's CPU time over the run (all threads); ctl/ev = epoll_ctl calls per
# relayed SSE event (STREAMS_WORDS + 4 events a stream) and ctl/strm per stream, counted in the
# kernel by `perf stat -e syscalls:sys_enter_epoll_ctl -p PID` around the load ("-" where perf
# cannot trace; `strace -f -c -e trace=epoll_ctl -p PID` counts the same at a small N, but slows
# the proxy too much for thousands of streams); sys/ev = all syscalls per event; lsnov = the
# kernel's listen-queue overflows during the run (TcpExtListenOverflows, machine-wide: non-zero
# means some connects waited for a SYN retransmit, ~1 s first-byte outliers). Then kt/nginx for
# memory per stream and first-byte p99, each proxy's CPU per stream, and kt's peak RSS, memory
# per stream and epoll_ctl per event next to their targets.
# ctl/ev above divides every epoll_ctl of the run, registering and removing each stream's two
# sockets included, by the events. What one more relayed event costs is measured apart (with
# perf only): two more kt processes, each behind its own stand-in, one streaming STREAMS_WORDS
# deltas and one 4 x STREAMS_WORDS, take the same STREAMS_SLOPE_N streams (default 1000; 100 ms
# between events, all started within 200 ms); the difference in epoll_ctl per stream divided by the
# difference in events per stream is kt's epoll_ctl per relayed event with the setup taken
# out ("marginal"; 0 means an event costs none, target 0). Off with STREAMS_SLOPE_N=0.
# How to read it: KB/strm is what "bounded memory per connection" is about; it should stay flat
# when N grows (compare N=2000 with N=5000). First-byte times and cpu s show whether the one
# worker keeps up: all three node/proxy processes share the machine's cores, so a proxy that
# needs more CPU per stream falls behind first, and its first bytes wait in its queue. Only
# 127.0.0.1 is used. Results also go to bench/out/streams-<time>.txt.
# Environment: STREAMS_N (default 2000), STREAMS_WORDS (15), STREAMS_DELAY_MS (200),
# STREAMS_RAMP_MS (1500), STREAMS_TIMEOUT_MS (per stream, 60000), STREAMS_CLIENTS,
# STREAMS_PORT_BASE (default 18180: stand-in +1, nginx +2, kt +3, floor2 +4; the marginal
# count's stand-ins +5 and +6, its kt processes +7 and +8), STREAMS_SLOPE_N,
# STREAMS_SKIP_BUILD=1, KT_BIN, FLOOR2_BIN, STREAMS_KEEP=1 (keep the temp dir: logs, configs,
# samples).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/gateway"
cd "$ROOT"
N="${STREAMS_N:-2000}"
WORDS="${STREAMS_WORDS:-15}"
if [ "$N" -gt 4000 ]; then
    # Node parses and builds ~50 us an event on each side: at 200 ms apart 10,000 streams would
    # want more than the machine's two cores, and every first byte would wait on the client and
    # the stand-in rather than the proxy. One event a second per stream, connects spread over
    # N / 2 ms, still keeps them all in flight together for ~10 s.
    DELAY_MS="${STREAMS_DELAY_MS:-1000}"
    RAMP_MS="${STREAMS_RAMP_MS:-$((N / 2))}"
else
    DELAY_MS="${STREAMS_DELAY_MS:-200}"
    RAMP_MS="${STREAMS_RAMP_MS:-1500}"
fi
CLIENTS="${STREAMS_CLIENTS:-$(((N + 2499) / 2500))}"
EVENTS=$((WORDS + 4)) # role, the deltas, finish, usage, [DONE]
TIMEOUT_MS="${STREAMS_TIMEOUT_MS:-60000}"
BASE="${STREAMS_PORT_BASE:-18180}"
UP_PORT=$((BASE + 1))
NGX_PORT=$((BASE + 2))
KT_PORT=$((BASE + 3))
FLOOR2_PORT=$((BASE + 4))
SLOPE_N="${STREAMS_SLOPE_N:-1000}"
SLOPE_WORDS=("$WORDS" $((4 * WORDS)))
SLOPE_UP=($((BASE + 5)) $((BASE + 6)))
SLOPE_KT=($((BASE + 7)) $((BASE + 8)))
SLOPE_DELAY_MS=100
KT="${KT_BIN:-$ROOT/build-release/kt}"
FLOOR2="${FLOOR2_BIN:-$ROOT/build-release/bench/kt-bench-floor2}"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
RESULT="$OUT/streams-$(date +%Y%m%d-%H%M%S).txt"
. "$ROOT/bench/lib/procs.sh"
. "$ROOT/bench/lib/nginx-upstream.sh"
. "$ROOT/bench/lib/apt.sh"
work_dir kt-streams STREAMS_KEEP

# --- limits ---------------------------------------------------------------------------------
# A proxy holds N client and N upstream sockets in flight, plus idle keep-alive ones on both
# sides once the first streams end while the last start (the client's agent reuses a finished
# stream's socket): 3N + 2048 fds and, for nginx, 3N + 1024 worker_connections. Fewer, and
# nginx closes idle client connections when it runs out ("worker_connections are not enough,
# reusing connections"), resetting a request the client sends on one just then.
# The marginal count's kt takes SLOPE_N streams at once: room for that too.
need_fds=$((3 * (N > SLOPE_N ? N : SLOPE_N) + 2048))
MAX_INFLIGHT="$N"
SLOPE_INFLIGHT="$SLOPE_N"
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need_fds" ]; then
    ulimit -Hn "$need_fds" 2>/dev/null || true
fi
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need_fds" ]; then
    need_fds="$(ulimit -Hn)"
    # Two descriptors a stream, plus room for the proxies' idle upstream sockets (nginx keeps
    # 1024) and their own files.
    MAX_INFLIGHT=$(((need_fds - 3072) / 2))
    if [ "$MAX_INFLIGHT" -lt "$N" ]; then
        echo "streams: the open-file hard limit is $need_fds and cannot be raised" \
            "(CAP_SYS_RESOURCE): at most $MAX_INFLIGHT of the $N streams in flight at once" >&2
    else
        MAX_INFLIGHT="$N"
    fi
    [ "$SLOPE_INFLIGHT" -le $(((need_fds - 3072) / 2)) ] || SLOPE_INFLIGHT=$(((need_fds - 3072) / 2))
fi
if [ "$(ulimit -n)" -lt "$need_fds" ]; then
    ulimit -n "$need_fds"
fi
somaxconn="$(cat /proc/sys/net/core/somaxconn)"

# --- bench-only dependencies (not part of the test deps) ---------------------------------
command -v node >/dev/null 2>&1 || { echo "streams: node is needed" >&2; exit 1; }
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    apt_install nginx-light
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

ports_free streams STREAMS_PORT_BASE "$UP_PORT" "$NGX_PORT" "$KT_PORT" "$FLOOR2_PORT" \
    "${SLOPE_UP[@]}" "${SLOPE_KT[@]}"

# --- release build -----------------------------------------------------------------------
if [ "${STREAMS_SKIP_BUILD:-0}" != 1 ] && [ -z "${KT_BIN:-}" ]; then
    echo "building release kt and kt-bench-floor2 in build-release/ ..." >&2
    cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DKT_TESTS=OFF -DKT_BENCH=ON \
        >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; exit 1; }
    cmake --build build-release -j1 --target kt --target kt-bench-floor2 \
        >>"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; exit 1; }
fi
[ -x "$KT" ] || { echo "streams: no kt binary at $KT" >&2; exit 1; }
[ -x "$FLOOR2" ] || { echo "streams: no kt-bench-floor2 binary at $FLOOR2" >&2; exit 1; }

# --- the stand-in upstream ---------------------------------------------------------------
node "$HERE/streams.mjs" upstream --port "$UP_PORT" --words "$WORDS" --delay-ms "$DELAY_MS" \
    >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

# --- nginx proxy ---------------------------------------------------------------------------
ngx_dir="$WORK/nginx"
# Backlog 1024 is kt's listen backlog (gateway/gw_server.c), so both queue the ramp alike.
nginx_conf "$ngx_dir" 1 $((need_fds - 1024)) "worker_rlimit_nofile $need_fds;" "keepalive_timeout 60s;
    upstream llm {
        server 127.0.0.1:$UP_PORT;
        keepalive 1024;
    }
    server {
        listen 127.0.0.1:$NGX_PORT backlog=1024;
        location / {
            proxy_pass http://llm;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Authorization \"Bearer sk-bench-upstream\";
            proxy_buffering off;
            proxy_read_timeout 60s;
        }
    }"
"$NGINX" -p "$ngx_dir" -c "$ngx_dir/nginx.conf" -g 'daemon off;' \
    2>>"$ngx_dir/logs/stderr.log" &
NGX_MASTER=$!
PIDS+=("$NGX_MASTER")

# --- kt --------------------------------------------------------------------------------------
. "$ROOT/bench/lib/page-config.sh"
start_kt() { # start_kt NAME PORT UPSTREAM_PORT: kt --workers 1 with the page's config, its
    # files under $WORK/NAME*, its pid in KT_STARTED
    page_config "http://127.0.0.1:$3/v1" >"$WORK/$1.yaml"
    OPENAI_API_KEY=sk-bench-upstream "$KT" gateway run --listen "127.0.0.1:$2" \
        --policy-config "$WORK/$1.yaml" --state-dir "$WORK/$1-state" --workers 1 \
        2>"$WORK/$1.log" &
    KT_STARTED=$!
    PIDS+=("$KT_STARTED")
}
start_kt kt "$KT_PORT" "$UP_PORT"
KT_PID="$KT_STARTED"
"$FLOOR2" --listen "127.0.0.1:$FLOOR2_PORT" \
    --upstream "http://127.0.0.1:$UP_PORT/v1/chat/completions" 2>"$WORK/floor2.log" &
FLOOR2_PID=$!
PIDS+=("$FLOOR2_PID")

# --- readiness: one stream through each, checked like the load checks them -----------------
client() { # client PORT COUNT RAMP_MS [WORDS]: one RESULT line, from one node process or merged
    local parts=$CLIENTS i n left="$2" cap cpids=() words="${4:-$WORDS}" \
        inflight="${CLIENT_INFLIGHT:-$MAX_INFLIGHT}"
    [ "$parts" -le "$2" ] || parts="$2"
    [ "$parts" -ge 1 ] || parts=1
    if [ "$parts" -eq 1 ]; then
        node "$HERE/streams.mjs" client --url "http://127.0.0.1:$1" --n "$2" --words "$words" \
            --ramp-ms "$3" --timeout-ms "$TIMEOUT_MS" --max-inflight "$inflight"
        return
    fi
    cap=$((inflight / parts))
    for ((i = 0; i < parts; i++)); do
        n=$((left / (parts - i)))
        left=$((left - n))
        node "$HERE/streams.mjs" client --url "http://127.0.0.1:$1" --n "$n" --words "$words" \
            --ramp-ms "$3" --timeout-ms "$TIMEOUT_MS" --max-inflight "$cap" --raw \
            >"$WORK/client.$i" 2>&1 &
        cpids+=($!)
    done
    wait "${cpids[@]}" 2>/dev/null || true
    cat "$WORK"/client.* | node "$HERE/streams.mjs" merge
    rm -f "$WORK"/client.*
}

wait_up() { # wait_up NAME PORT WORDS LOG: one stream through it, else its log's tail
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && break
        sleep 0.1
    done
    if ! client "$2" 1 0 "$3" | grep -q '"ok":1,'; then
        echo "streams: $1 on port $2 does not relay a stream correctly:" >&2
        client "$2" 1 0 "$3" >&2 || true
        echo "streams: the last lines of $4:" >&2
        tail -n 20 "$4" >&2 || true
        return 1
    fi
}
wait_up upstream "$UP_PORT" "$WORDS" "$WORK/upstream.log"
wait_up nginx "$NGX_PORT" "$WORDS" "$ngx_dir/logs/error.log"
wait_up kt "$KT_PORT" "$WORDS" "$WORK/kt.log"
wait_up floor2 "$FLOOR2_PORT" "$WORDS" "$WORK/floor2.log"
NGX_WORKER="$(pgrep -P "$NGX_MASTER" | head -n 1)"
[ -n "$NGX_WORKER" ] || { echo "streams: no nginx worker process" >&2; exit 1; }

# --- sampling ----------------------------------------------------------------------------
rss_kb() { # rss_kb PID: VmRSS in kB (read with builtins, no ps)
    local k v _
    while read -r k v _; do
        if [ "$k" = VmRSS: ]; then
            echo "$v"
            return
        fi
    done <"/proc/$1/status"
}
fd_count() { # fd_count PID
    local f=("/proc/$1/fd/"*)
    echo "${#f[@]}"
}
listen_overflows() { # the kernel's TcpExtListenOverflows counter
    awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[$i] = i; h = 1 }
                      else { print $n["ListenOverflows"] } }' /proc/net/netstat
}
sampler() { # sampler PID FILE: "rss_kb fds" every ~100 ms until killed
    while kill -0 "$1" 2>/dev/null; do
        echo "$(rss_kb "$1") $(fd_count "$1")" >>"$2"
        sleep 0.1
    done
}

# epoll_ctl and all syscalls, counted in the kernel (perf's tracepoints: no stop per call).
PERF=0
if command -v perf >/dev/null 2>&1 &&
    perf stat -e syscalls:sys_enter_epoll_ctl -p "$KT_PID" -- sleep 0.1 >/dev/null 2>&1; then
    PERF=1
else
    echo "streams: perf cannot trace syscalls here: no epoll_ctl counts" >&2
fi

declare -A R
run_target() { # run_target NAME PORT [PID]
    local name="$1" port="$2" pid="${3:-}" line spid=0 ov0 cpu0=0 base=- peak=- after=- \
        fds=- cpu=- ppid=0
    echo "  $name: $N streams ..." >&2
    ov0="$(listen_overflows)"
    if [ -n "$pid" ]; then
        base="$(rss_kb "$pid")"
        cpu0="$(cpu_ticks "$pid")"
        : >"$WORK/$name.samples"
        sampler "$pid" "$WORK/$name.samples" &
        spid=$!
        if [ "$PERF" = 1 ]; then
            perf stat -x, -o "$WORK/$name.perf" -e raw_syscalls:sys_enter \
                -e syscalls:sys_enter_epoll_ctl -p "$pid" &
            ppid=$!
        fi
    fi
    line="$(client "$port" "$N" "$RAMP_MS" | grep '^RESULT ' | sed 's/^RESULT //')" || true
    if [ "$ppid" != 0 ]; then
        kill -INT "$ppid" 2>/dev/null || true
        wait "$ppid" 2>/dev/null || true
        R[$name.sys]="$(awk -F, '$3 ~ /raw_syscalls/ { print $1 + 0 }' "$WORK/$name.perf")"
        R[$name.ctl]="$(awk -F, '$3 ~ /epoll_ctl/ { print $1 + 0 }' "$WORK/$name.perf")"
    fi
    if [ -n "$pid" ]; then
        sleep 1
        after="$(rss_kb "$pid")"
        cpu="$(awk -v t=$(($(cpu_ticks "$pid") - cpu0)) -v hz="$(getconf CLK_TCK)" \
            'BEGIN { printf "%.2f", t / hz }')"
        kill "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        peak="$(awk -v b="$base" '{ if ($1 > m) m = $1 } END { print (m > b) ? m : b }' \
            "$WORK/$name.samples")"
        fds="$(awk '{ if ($2 > m) m = $2 } END { print m + 0 }' "$WORK/$name.samples")"
    fi
    [ -n "$line" ] || line="{\"n\":$N,\"ok\":0,\"failed\":$N,\"failures\":{\"client died\":1},\
\"wall_ms\":0,\"ttfb_p50_ms\":null,\"ttfb_p99_ms\":null,\"total_p50_ms\":null,\
\"total_p99_ms\":null,\"max_inflight\":0}"
    R[$name.json]="$line"
    R[$name.base]="$base"
    R[$name.peak]="$peak"
    R[$name.after]="$after"
    R[$name.fds]="$fds"
    R[$name.cpu]="$cpu"
    R[$name.ov]=$(($(listen_overflows) - ov0))
    echo "    $line" >&2
    sleep 2 # let closed connections settle before the next target
}
field() { # field NAME KEY: one number out of the client's JSON line
    sed -E "s/.*\"$2\":(-?[0-9.]+|null).*/\\1/" <<<"${R[$1.json]}"
}
mb() { # mb KB|-
    if [ "$1" = - ]; then echo -; else awk -v x="$1" 'BEGIN { printf "%.1f", x / 1024 }'; fi
}
ms() { # ms MS|null
    if [ "$1" = null ]; then echo -; else awk -v x="$1" 'BEGIN { printf "%.1f", x }'; fi
}

echo "load: $N concurrent streams ($WORDS deltas ${DELAY_MS} ms apart), ramp ${RAMP_MS} ms," \
    "127.0.0.1" >&2
# Warm-up, not measured: the stand-in's JIT and heap would otherwise charge whichever target
# runs first.
client "$UP_PORT" "$(((N + 3) / 4))" "$RAMP_MS" >/dev/null || true
sleep 1
run_target direct "$UP_PORT"
run_target nginx "$NGX_PORT" "$NGX_WORKER"
run_target floor2 "$FLOOR2_PORT" "$FLOOR2_PID"
run_target kt "$KT_PORT" "$KT_PID"

# --- epoll_ctl per relayed event with the setup taken out ---------------------------------
# Two fresh kt processes with the same config, one behind a stand-in streaming WORDS deltas and
# one behind a stand-in streaming 4 x WORDS, each taking SLOPE_N streams that all start within
# 200 ms and stay in flight together (an event every 100 ms: the shortest stream lasts ~2 s),
# so every stream opens its own client and upstream socket in both runs and the setup per
# stream is the same: what differs per stream is only the events relayed. A stream that ended
# before the last one started would leave its upstream socket to be reused (less setup in the
# shorter run): the line says so when the streams in flight at once were fewer than SLOPE_N.
slope_run() { # slope_run I: R[slopeI.ctl], and the client's line in R[slopeI.json]
    local i="$1" pid ppid line
    node "$HERE/streams.mjs" upstream --port "${SLOPE_UP[$i]}" --words "${SLOPE_WORDS[$i]}" \
        --delay-ms "$SLOPE_DELAY_MS" >"$WORK/slope$i-upstream.log" 2>&1 &
    PIDS+=($!)
    start_kt "slope$i-kt" "${SLOPE_KT[$i]}" "${SLOPE_UP[$i]}"
    pid="$KT_STARTED"
    wait_up "slope stand-in $i" "${SLOPE_UP[$i]}" "${SLOPE_WORDS[$i]}" \
        "$WORK/slope$i-upstream.log"
    wait_up "slope kt $i" "${SLOPE_KT[$i]}" "${SLOPE_WORDS[$i]}" "$WORK/slope$i-kt.log"
    echo "  kt (marginal count): $SLOPE_N streams of $((SLOPE_WORDS[i] + 4)) events ..." >&2
    perf stat -x, -o "$WORK/slope$i.perf" -e syscalls:sys_enter_epoll_ctl -p "$pid" &
    ppid=$!
    line="$(CLIENT_INFLIGHT="$SLOPE_INFLIGHT" client "${SLOPE_KT[$i]}" "$SLOPE_N" 200 \
        "${SLOPE_WORDS[$i]}" |
        grep '^RESULT ' | sed 's/^RESULT //')" || true
    kill -INT "$ppid" 2>/dev/null || true
    wait "$ppid" 2>/dev/null || true
    [ -n "$line" ] || line="{\"ok\":0,\"failed\":$SLOPE_N,\"max_inflight\":0}"
    echo "    $line" >&2
    R[slope$i.ctl]="$(awk -F, '$3 ~ /epoll_ctl/ { print $1 + 0 }' "$WORK/slope$i.perf")"
    R[slope$i.json]="$line"
    kill "$pid" 2>/dev/null || true
}
if [ "$PERF" = 1 ] && [ "$SLOPE_N" -gt 0 ]; then
    slope_run 0
    slope_run 1
fi

# --- the table ---------------------------------------------------------------------------
ROW='%-7s %5s %6s %5s %6s %7s %7s %7s %7s %7s %7s %7s %7s %5s %5s %6s %7s %6s %5s\n'
{
    echo "kt concurrent streams $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores; N=$N," \
        "$WORDS deltas ${DELAY_MS} ms apart, ramp ${RAMP_MS} ms; proxies with 1 worker;" \
        "$CLIENTS client process(es), at most $MAX_INFLIGHT in flight;" \
        "ulimit -n $(ulimit -n), somaxconn $somaxconn; $("$KT" --version 2>&1)"
    # shellcheck disable=SC2059 # one row format for the header and the rows
    printf "$ROW" target ok failed inflt 'wall s' 'fb p50' 'fb p99' 'tot p50' 'tot p99' \
        'base MB' 'peak MB' 'aftr MB' 'KB/strm' fds 'cpu s' 'ctl/ev' 'ctl/strm' 'sys/ev' lsnov
    for n in direct nginx floor2 kt; do
        per=- ctl=- ctls=- sys=-
        if [ "${R[$n.peak]}" != - ]; then
            per="$(awk -v p="${R[$n.peak]}" -v b="${R[$n.base]}" -v n="$N" \
                -v f="$(field "$n" max_inflight)" \
                'BEGIN { if (f > 0 && f < n) n = f; printf "%.1f", (p - b) / n }')"
            R[$n.per]="$per"
        fi
        if [ -n "${R[$n.ctl]:-}" ]; then
            read -r ctl ctls sys < <(awk -v c="${R[$n.ctl]}" -v s="${R[$n.sys]}" \
                -v ok="$(field "$n" ok)" -v e="$EVENTS" 'BEGIN {
                    if (ok > 0) printf "%.3f %.1f %.1f\n", c / (ok * e), c / ok, s / (ok * e)
                    else print "- - -" }')
            R[$n.ctlev]="$ctl"
        fi
        # shellcheck disable=SC2059
        printf "$ROW" "$n" \
            "$(field "$n" ok)" "$(field "$n" failed)" "$(field "$n" max_inflight)" \
            "$(awk -v x="$(field "$n" wall_ms)" 'BEGIN { printf "%.2f", x / 1000 }')" \
            "$(ms "$(field "$n" ttfb_p50_ms)")" "$(ms "$(field "$n" ttfb_p99_ms)")" \
            "$(ms "$(field "$n" total_p50_ms)")" "$(ms "$(field "$n" total_p99_ms)")" \
            "$(mb "${R[$n.base]}")" "$(mb "${R[$n.peak]}")" "$(mb "${R[$n.after]}")" \
            "$per" "${R[$n.fds]}" "${R[$n.cpu]}" "$ctl" "$ctls" "$sys" "${R[$n.ov]}"
    done
    echo "(fb = first body byte, tot = whole stream, in ms; KB/strm = (peak - base) / streams" \
        "in flight (N, or fewer when capped); cpu s = the proxy's CPU time during the run;" \
        "ctl/ev, sys/ev = epoll_ctl and all syscalls per relayed SSE event ($EVENTS a stream)," \
        "ctl/strm = epoll_ctl per stream; lsnov = listen-queue overflows)"
    awk -v km="${R[kt.per]:-0}" -v nm="${R[nginx.per]:-0}" \
        -v kf="$(field kt ttfb_p99_ms)" -v nf="$(field nginx ttfb_p99_ms)" \
        -v kc="${R[kt.cpu]}" -v nc="${R[nginx.cpu]}" -v n="$N" 'BEGIN {
            printf "kt/nginx memory per stream = %s; kt/nginx first-byte p99 = %s;" \
                " CPU per stream kt %.2f ms, nginx %.2f ms\n",
                (nm > 0) ? sprintf("%.2f", km / nm) : "n/a",
                (nf > 0 && kf != "null") ? sprintf("%.2f", kf / nf) : "n/a",
                1000 * kc / n, 1000 * nc / n
        }'
    awk -v peak="${R[kt.peak]}" -v per="${R[kt.per]:--}" -v ctl="${R[kt.ctlev]:--}" \
        -v ok="$(field kt ok)" -v n="$N" 'BEGIN {
            printf "kt: %d of %d streams completed (target all); peak RSS %.1f MiB (target <=" \
                " 256); %s KB per stream above idle (target <= 20); %s epoll_ctl per relayed" \
                " event (target 0)\n", ok, n, peak / 1024, per, ctl
        }'
    if [ -n "${R[slope1.ctl]:-}" ]; then
        awk -v c0="${R[slope0.ctl]}" -v c1="${R[slope1.ctl]}" -v k0="$(field slope0 ok)" \
            -v k1="$(field slope1 ok)" -v e0=$((SLOPE_WORDS[0] + 4)) \
            -v e1=$((SLOPE_WORDS[1] + 4)) -v n="$SLOPE_N" -v f0="$(field slope0 max_inflight)" \
            -v f1="$(field slope1 max_inflight)" 'BEGIN {
                if (k0 == 0 || k1 == 0) { print "kt: marginal epoll_ctl count failed"; exit }
                printf "kt: %.2f epoll_ctl per stream at %d events, %.2f at %d events (%d of %d" \
                    " and %d of %d streams completed, %d and %d in flight at once): %.4f" \
                    " epoll_ctl per relayed event with the setup taken out (target 0)\n",
                    c0 / k0, e0, c1 / k1, e1, k0, n, k1, n, f0, f1,
                    (c1 / k1 - c0 / k0) / (e1 - e0)
                if (f0 < n || f1 < n)
                    print "WARNING: not all streams were in flight at once: pooled upstream" \
                        " sockets were reused, so the setup differs between the two loads"
            }'
    fi
    for n in slope0 slope1; do
        if [ -n "${R[$n.json]:-}" ] && [ "$(field "$n" failed)" != 0 ]; then
            echo "WARNING: the marginal count's $n load failed $(field "$n" failed) of" \
                "$SLOPE_N streams"
        fi
    done
    for n in direct nginx floor2 kt; do
        if [ "$(field "$n" failed)" != 0 ]; then
            echo "WARNING: $n failed $(field "$n" failed) of $N streams:" \
                "$(sed -E 's/.*"failures":(\{[^}]*\}).*/\1/' <<<"${R[$n.json]}")"
        fi
    done
} | tee "$RESULT"
echo "saved to ${RESULT#"$ROOT"/}"
