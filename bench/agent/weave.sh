#!/usr/bin/env bash
# bench/agent/weave.sh - the Weave exporter's throughput into the trace server stand-in
#
#   bash bench/agent/weave.sh [calls] [batch_size] [senders]
#
# build-bench/bench/kt_bench_weave_export (built here with -DKT_BENCH=ON) runs an in-process agent with the weave exporter and feeds
# it `calls` events (default 100000) while nothing listens at the stand-in's address, so they
# wait in the outbox; then this script starts the W&B/Weave stand-in there
# (tests/e2e/wandb-standin/server.mjs --lean: every request fully validated, only call ids
# kept; BENCH_STANDIN_WORKERS node processes, default 2, on one port) and the drain is timed:
# calls/s and the agent's CPU time per call. The stand-in's own CPU is printed too: on a
# small machine it shares the cores with the agent. Only 127.0.0.1 is used.
# Environment: BENCH_PORT (default 18291), BENCH_STANDIN_WORKERS, KT_BENCH_BIN.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CALLS="${1:-100000}"
BATCH="${2:-100}"
SENDERS="${3:-4}"
PORT="${BENCH_PORT:-18291}"
WORKERS="${BENCH_STANDIN_WORKERS:-2}"
BIN="${KT_BENCH_BIN:-}"
if [ -z "$BIN" ]; then
    # Benchmarks build only with -DKT_BENCH=ON: a Release tree of their own (build-bench/).
    BIN="$ROOT/build-bench/bench/kt_bench_weave_export"
    { cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DKT_TESTS=OFF \
        -DKT_BENCH=ON && cmake --build "$ROOT/build-bench" -j2 --target kt_bench_weave_export; } \
        >/dev/null || { echo "bench: building kt_bench_weave_export failed" >&2; exit 1; }
fi
KEY="kt-bench-$(printf 'b%.0s' $(seq 1 40))"
OUT="$(mktemp)"
SOUT="$(mktemp)"
SPID=""
cleanup() {
    if [ -n "$SPID" ]; then
        kill "$SPID" 2>/dev/null || true
    fi
    rm -f "$OUT" "$SOUT"
}
trap cleanup EXIT
WANDB_BASE_URL="http://127.0.0.1:$PORT" WANDB_API_KEY="$KEY" WANDB_ENTITY= WANDB_PROJECT= \
    WF_TRACE_SERVER_URL= KT_LOG_LEVEL="${KT_LOG_LEVEL:-error}" \
    "$BIN" "$CALLS" "$BATCH" "$SENDERS" >"$OUT" &
BPID=$!
for _ in $(seq 1 1200); do
    grep -q "^outbox:" "$OUT" && break
    sleep 0.1
done
node "$ROOT/tests/e2e/wandb-standin/server.mjs" "$KEY" --lean --port "$PORT" \
    --workers "$WORKERS" >"$SOUT" &
SPID=$!
wait "$BPID" || true
cat "$OUT"
# CPU seconds of the stand-in's processes (the primary and its workers), before stopping them.
CPU="$(ps -o times= --pid "$SPID" --ppid "$SPID" | awk '{s += $1} END {print s}')"
echo "stand-in (node, $WORKERS workers) CPU: ${CPU}s in total"
