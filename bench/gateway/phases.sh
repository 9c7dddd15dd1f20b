#!/usr/bin/env bash
# bench/gateway/phases.sh - kt's own work per request, by phase, in instructions (callgrind).
#
#   bash bench/gateway/phases.sh            # JSON answers
#   PHASES_STREAM=1 bash bench/gateway/phases.sh   # streamed (SSE) answers
#   PHASES_UPSTREAM=nginx bash bench/gateway/phases.sh  # run.sh's upstream instead
#
# Builds kt (RelWithDebInfo without LTO, build-phases/: the phases are function boundaries,
# which link-time optimisation inlines away; so the counts are of that build, a few percent
# above the LTO build users get), starts the e2e OpenAI stand-in
# (tests/e2e/lib/upstream.mjs; its streams are ~13 events, one read each) or, with
# PHASES_UPSTREAM=nginx, the nginx upstream of run.sh (bench/lib/nginx-upstream.sh: a stream of
# 16 events sent whole with a Content-Length, as run.sh measures), and `kt gateway run --workers 1` with the page's config
# (examples/policy-config.yaml) under `valgrind --tool=callgrind`, warms it up, then counts the
# instructions of PHASES_DURATION seconds (default 10) of `wrk -c4` keep-alive POSTs
# (bench/gateway/post.lua) and divides each phase's inclusive count by the requests answered.
# Instructions, not seconds: the count repeats for the same binary and input whatever else the
# machine does, so phases can be compared across changes. Only 127.0.0.1 is used.
# The phases (inclusive counts of these functions, minus what they call in later phases):
#   framing     gw_h1req_feed                      request head and body framing
#   validate    gw_oai_chat_check                  OpenAI checks and the request's json-c tree
#   policies    gw_chain_evaluate                  request policies (injection, pii, audit...)
#   upstream    gw_upstream_start + on_conn_io - the relay's callbacks: kt's HTTP client,
#               response framing (gw_h1resp) included
#   relay       up_headers + up_data + up_done - finish: reading usage, SSE relay, answer queued
#   finish      finish + on_finish_ev              record, complete hooks, emit, log line (run
#                                                  by an event after the answer's flush)
#   client io   on_read - conn_process + on_write  client socket reads and queued writes
#   audit       audit.c:writer_main                the audit writer thread (sealing, hashing)
#   emit        bg_main                            the spool and agent socket thread
#   log         gv_log.c:writer_main               the log writer thread
#   total       all threads
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DURATION="${PHASES_DURATION:-10}"
STREAM="${PHASES_STREAM:-0}"
UPSTREAM="${PHASES_UPSTREAM:-stand-in}"
UP_PORT="${PHASES_UP_PORT:-18191}"
KT_PORT="${PHASES_KT_PORT:-18192}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kt-phases.XXXXXX")"
. "$ROOT/bench/lib/procs.sh"
. "$ROOT/bench/lib/page-config.sh"
. "$ROOT/bench/lib/nginx-upstream.sh"

cleanup() {
    local rc=$?
    stop_pids
    [ -n "${PHASES_KEEP:-}" ] && cp "$WORK"/cg.out.* "$PHASES_KEEP" 2>/dev/null; rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in valgrind callgrind_annotate callgrind_control wrk node; do
    command -v "$tool" >/dev/null 2>&1 || { echo "phases: needs $tool" >&2; exit 1; }
done

echo "building kt (RelWithDebInfo, no LTO) in build-phases/ ..."
cmake -S . -B build-phases -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKT_TESTS=OFF -DKT_LTO=OFF \
    >"$WORK/build.log" 2>&1 &&
    cmake --build build-phases -j2 --target kt >>"$WORK/build.log" 2>&1 ||
    { tail -n 40 "$WORK/build.log"; exit 1; }

case "$UPSTREAM" in
nginx)
    command -v nginx >/dev/null 2>&1 || { echo "phases: needs nginx" >&2; exit 1; }
    nginx_upstream "$WORK/up" "$UP_PORT"
    ;;
stand-in)
    cat >"$WORK/upstream.mjs" <<EOF
import { startUpstream } from '$ROOT/tests/e2e/lib/upstream.mjs';
await startUpstream({ port: $UP_PORT });
setInterval(() => {}, 1 << 30);
EOF
    node "$WORK/upstream.mjs" >"$WORK/upstream.log" 2>&1 &
    PIDS+=($!)
    ;;
*) echo "phases: PHASES_UPSTREAM is nginx or stand-in, not $UPSTREAM" >&2; exit 2 ;;
esac
page_config "http://127.0.0.1:$UP_PORT/v1" >"$WORK/policy-config.yaml"

lua="$ROOT/bench/gateway/post.lua"
if [ "$STREAM" = 1 ]; then
    sed -e 's|"messages":|"stream":true,"messages":|' \
        -e 's|wrk.headers\["Content-Type"\] = "application/json"|&\nwrk.headers["Accept"] = "text/event-stream"|' \
        "$lua" >"$WORK/post.lua"
    lua="$WORK/post.lua"
fi

OPENAI_API_KEY=sk-bench-phases valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$WORK/cg.out" "$ROOT/build-phases/kt" gateway run \
    --listen "127.0.0.1:$KT_PORT" --workers 1 --policy-config "$WORK/policy-config.yaml" \
    --state-dir "$WORK/state" >"$WORK/kt.log" 2>&1 &
KT_PID=$!
PIDS+=("$KT_PID")
for _ in $(seq 1 100); do
    grep -q 'msg="\?listening' "$WORK/kt.log" 2>/dev/null && break
    sleep 0.2
done
callgrind_control -i on "$KT_PID" >/dev/null 2>&1
wrk -t1 -c4 -d2s -s "$lua" "http://127.0.0.1:$KT_PORT" >/dev/null 2>&1
callgrind_control -z "$KT_PID" >/dev/null 2>&1
out="$(wrk -t1 -c4 -d"${DURATION}s" -s "$lua" "http://127.0.0.1:$KT_PORT" 2>&1 | grep '^BENCH')"
callgrind_control -d "$KT_PID" >/dev/null 2>&1
sleep 1
reqs="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")"
errs="$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$out")"
dump="$(ls -t "$WORK"/cg.out.* | head -n 1)"
callgrind_annotate --inclusive=yes --threshold=100 "$dump" >"$WORK/incl.txt" 2>/dev/null

# ir FILE_PATTERN FUNCTION: the inclusive count of one function, 0 when absent.
ir() {
    awk -v f="$1:$2" 'index($0, f" ") || index($0, f"'"'"'") || $0 ~ (f"$") {
        gsub(",", "", $1); if ($1 + 0 > best) best = $1 + 0 } END { print best + 0 }' "$WORK/incl.txt"
}
total="$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$WORK/incl.txt")"
framing=$(ir gw_h1req.c gw_h1req_feed)
validate=$(ir gw_oai.c gw_oai_chat_check)
policies=$(ir gw_chain.c gw_chain_evaluate)
up_start=$(ir gw_upstream.c gw_upstream_start)
up_io=$(ir gw_upstream.c on_conn_io)
cb=$(( $(ir gw_relay.c up_headers) + $(ir gw_relay.c up_data) + $(ir gw_relay.c up_done) ))
fin_call=$(ir gw_relay.c finish)
finish=$((fin_call + $(ir gw_relay.c on_finish_ev)))
on_read=$(ir gw_conn.c on_read)
process=$(ir gw_conn.c conn_process)
on_write=$(ir gw_conn.c on_write)
audit=$(ir audit/audit.c writer_main)
# The writer is inside writer_sleep when the counters are zeroed, so callgrind may book
# the whole thread under it rather than under writer_main: take the larger.
audit_sleep=$(ir audit/audit.c writer_sleep)
[ "$audit_sleep" -gt "$audit" ] && audit=$audit_sleep
emit=$(ir gw_emit_agent.c bg_main)
log=$(ir gv_log.c writer_main)

per() { awk -v a="$1" -v n="$reqs" 'BEGIN { printf "%9.0f", (n > 0 ? a / n : 0) }'; }
{
    echo "kt's own work per request by phase (instructions, callgrind), $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "answers: $([ "$STREAM" = 1 ] && echo 'SSE streams' || echo 'JSON') from the $UPSTREAM upstream; load: $out"
    [ "${errs:-0}" = 0 ] || echo "WARNING: $errs requests failed; the counts are not the happy path"
    printf '%-12s %9s\n' phase 'instr/req'
    printf '%-12s %s\n' framing "$(per "$framing")"
    printf '%-12s %s\n' validate "$(per "$validate")"
    printf '%-12s %s\n' policies "$(per "$policies")"
    printf '%-12s %s\n' upstream "$(per $((up_start + up_io - cb)))"
    printf '%-12s %s\n' relay "$(per $((cb - fin_call)))"
    printf '%-12s %s\n' finish "$(per "$finish")"
    printf '%-12s %s\n' 'client io' "$(per $((on_read - process + on_write)))"
    printf '%-12s %s\n' audit "$(per "$audit")"
    printf '%-12s %s\n' emit "$(per "$emit")"
    printf '%-12s %s\n' log "$(per "$log")"
    printf '%-12s %s\n' total "$(per "$total")"
} | { mkdir -p "$ROOT/bench/out" && tee "$ROOT/bench/out/phases-$(date +%Y%m%d-%H%M%S).txt"; }
