#!/usr/bin/env bash
# bench/agent/weave.sh - the Weave exporter's throughput into the trace server stand-in
#
#   bash bench/agent/weave.sh [calls] [batch_size]
#
# Starts the W&B/Weave stand-in (tests/e2e/wandb-standin/server.mjs --lean: full validation,
# only call ids kept) on 127.0.0.1, then build/bench/kt_bench_weave_export: an in-process
# agent with the weave exporter gets `calls` events (default 100000) while the stand-in
# answers 503, then the drain into the stand-in is timed. Prints calls/s and the agent's CPU
# time per call. The stand-in (node, one thread) shares the machine; its CPU is printed too.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CALLS="${1:-100000}"
BATCH="${2:-100}"
BIN="${KT_BENCH_BIN:-$ROOT/build/bench/kt_bench_weave_export}"
KEY="kt-bench-$(printf 'b%.0s' $(seq 1 40))"
OUT="$(mktemp)"
node "$ROOT/tests/e2e/wandb-standin/server.mjs" "$KEY" --lean >"$OUT" &
SPID=$!
trap 'kill "$SPID" 2>/dev/null || true; rm -f "$OUT"' EXIT
for _ in $(seq 1 100); do
    [ -s "$OUT" ] && break
    sleep 0.1
done
URL="$(head -1 "$OUT")"
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$SPID/stat")
WANDB_BASE_URL="$URL" WANDB_API_KEY="$KEY" WANDB_ENTITY= WANDB_PROJECT= WF_TRACE_SERVER_URL= \
    KT_LOG_LEVEL="${KT_LOG_LEVEL:-warn}" "$BIN" "$CALLS" "$BATCH"
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$SPID/stat")
HZ="$(getconf CLK_TCK)"
echo "stand-in (node) CPU: $(( (u1 + s1 - u0 - s0) * 1000 / HZ )) ms in total"
