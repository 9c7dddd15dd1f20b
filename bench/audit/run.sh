#!/usr/bin/env bash
# bench/audit/run.sh - what the audit log costs: gateway throughput with audit-logger
# (fsync: interval, the default) against the same chain without it, in the same run.
#
#   bash bench/audit/run.sh
#
# One nginx upstream answers every POST /v1/chat/completions with a fixed chat.completion
# (bench/gateway/upstream.json). Two kt gateways from the same binary run side by side:
#   audit     chain [prompt-injection, pii-detector, audit-logger], fsync: interval (100 ms)
#   noaudit   chain [prompt-injection, pii-detector]
# wrk (bench/audit/post.lua, a prompt every policy passes) loads each in turn, alternating audit/noaudit ROUNDS times so
# drift on a shared machine hits both alike, at concurrency BENCH_CONC (default 64). Prints
# requests/s per round, the medians, and audit/noaudit as a percentage (the bar: >= 90%),
# plus each gateway's CPU time per request (from /proc), which shared-machine noise moves
# much less than requests/s.
# After the load, `kt events verify` runs on the audit gateway's state dir; its record count
# is printed next to the requests wrk counted (wrk does not count requests still in flight
# when it stops, so the log may hold a few more). Only 127.0.0.1 is used. Results also go
# to bench/out/audit-<time>.txt.
# Environment: BENCH_DURATION (s per round, default 5), BENCH_ROUNDS (default 3),
# BENCH_CONC (default 64), BENCH_CHAIN (policies before audit-logger, default
# "prompt-injection, pii-detector"), BENCH_FSYNC (interval|always|off, default interval),
# BENCH_PORT_BASE (default 18180), BENCH_WORKERS (kt --workers, default 1), KT_BIN.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/audit"
cd "$ROOT"
DURATION="${BENCH_DURATION:-5}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONC="${BENCH_CONC:-64}"
FSYNC="${BENCH_FSYNC:-interval}"
WORKERS="${BENCH_WORKERS:-1}"
BASE="${BENCH_PORT_BASE:-18180}"
UP_PORT=$((BASE + 1))
A_PORT=$((BASE + 2))
N_PORT=$((BASE + 3))
KT="${KT_BIN:-$ROOT/build-bench-audit/kt}"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
RESULT="$OUT/audit-$(date +%Y%m%d-%H%M%S).txt"
. "$ROOT/bench/lib/procs.sh"
. "$ROOT/bench/lib/nginx-upstream.sh"
work_dir kt-bench-audit

command -v wrk >/dev/null 2>&1 || { echo "bench: needs wrk (apt-get install wrk)" >&2; exit 1; }
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$NGINX" ] || { echo "bench: needs nginx (apt-get install nginx-light)" >&2; exit 1; }
ports_free bench BENCH_PORT_BASE "$UP_PORT" "$A_PORT" "$N_PORT"

if [ -z "${KT_BIN:-}" ] && [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    echo "building release kt in build-bench-audit/ ..." >&2
    cmake -S . -B build-bench-audit -DCMAKE_BUILD_TYPE=Release -DKT_TESTS=OFF \
        >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; exit 1; }
    cmake --build build-bench-audit -j2 --target kt >>"$WORK/build.log" 2>&1 ||
        { tail -n 40 "$WORK/build.log"; exit 1; }
fi
[ -x "$KT" ] || { echo "bench: no kt binary at $KT" >&2; exit 1; }

# --- upstream ------------------------------------------------------------------------------
nginx_upstream "$WORK/up" "$UP_PORT"

config() { # config CHAIN EXTRA
    cat <<EOF
pack:
  name: wandb-governed-experiments
  version: 1.0.0
  enabled: true
providers:
  targets:
    - id: experiment-llm
      provider: openai:chat:gpt-4o
      secret_key_ref:
        env: OPENAI_API_KEY
      base_url: http://127.0.0.1:$UP_PORT/v1
policies:
  chain: [$1]
policy:
  prompt-injection:
    threshold: 0.8
    action: block
  pii-detector:
    action: redact
    entities: [PERSON, EMAIL_ADDRESS]
$2
EOF
}
CHAIN="${BENCH_CHAIN:-prompt-injection, pii-detector}"
config "$CHAIN, audit-logger" "  audit-logger:
    immutable: true
    retention_days: 365
    log_all_access: true
    fsync: $FSYNC" >"$WORK/audit.yaml"
config "$CHAIN" "" >"$WORK/noaudit.yaml"

start_kt() { # start_kt NAME PORT
    OPENAI_API_KEY=sk-bench-upstream "$KT" gateway run --listen "127.0.0.1:$2" \
        --policy-config "$WORK/$1.yaml" --state-dir "$WORK/state-$1" --workers "$WORKERS" \
        2>"$WORK/$1.log" &
    PIDS+=($!)
}
start_kt audit "$A_PORT"
start_kt noaudit "$N_PORT"

wait_ok() { # wait_ok NAME PORT
    local i
    for ((i = 0; i < 100; i++)); do
        if curl -fsS -o /dev/null -X POST -H 'content-type: application/json' \
            --data '{"model":"gpt-4o","messages":[{"role":"user","content":"What was the best accuracy of the last run?"}]}' \
            "http://127.0.0.1:$2/v1/chat/completions" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench: $1 on port $2 does not answer 200" >&2
    [ ! -f "$WORK/$1.log" ] || tail -n 20 "$WORK/$1.log" >&2
    return 1
}
wait_ok upstream "$UP_PORT"
wait_ok audit "$A_PORT"
wait_ok noaudit "$N_PORT"

# --- load ----------------------------------------------------------------------------------
T=$((CONC < 2 ? 1 : 2))
declare -a RA RN
run() { # run PORT -> "rps requests errors"
    local line
    line="$(wrk -t"$T" -c"$CONC" -d"${DURATION}s" --latency -s "$HERE/post.lua" \
        "http://127.0.0.1:$1" 2>&1 | grep '^BENCH ')"
    sed -E 's/.*requests=([0-9]+).* rps=([0-9.]+).* errors=([0-9]+).*/\2 \1 \3/' <<<"$line"
}
wrk -t"$T" -c"$CONC" -d2s -s "$HERE/post.lua" "http://127.0.0.1:$A_PORT" >"$WORK/warm-a" 2>&1 || true
wrk -t"$T" -c"$CONC" -d2s -s "$HERE/post.lua" "http://127.0.0.1:$N_PORT" >/dev/null 2>&1 || true
# CPU per request of each gateway process (utime + stime from /proc): steadier than req/s
# on a shared machine, because it does not depend on who else had the cores.
TCK="$(getconf CLK_TCK)"
declare -A GW_PID=([audit]="${PIDS[1]}" [noaudit]="${PIDS[2]}")
declare -A GW_PORT=([audit]="$A_PORT" [noaudit]="$N_PORT")
declare -A CPU=([audit]=0 [noaudit]=0) REQ=([audit]=0 [noaudit]=0) RPS
errors=0
turn() { # turn NAME: one measured run of gateway NAME; its req/s in RPS[NAME], its requests
    # and CPU ticks added to REQ[NAME] and CPU[NAME]
    local c0 reqs err
    c0="$(cpu_ticks "${GW_PID[$1]}")"
    read -r "RPS[$1]" reqs err < <(run "${GW_PORT[$1]}")
    CPU[$1]=$((CPU[$1] + $(cpu_ticks "${GW_PID[$1]}") - c0))
    REQ[$1]=$((REQ[$1] + reqs))
    errors=$((errors + err))
}
SENT=$((1 + $(sed -nE 's/.*requests=([0-9]+).*/\1/p' "$WORK/warm-a" || echo 0)))
for ((r = 1; r <= ROUNDS; r++)); do
    turn audit
    turn noaudit
    RA+=("${RPS[audit]}")
    RN+=("${RPS[noaudit]}")
    printf '  round %d: audit %10s req/s   noaudit %10s req/s\n' "$r" "${RPS[audit]}" \
        "${RPS[noaudit]}" >&2
done
SENT=$((SENT + REQ[audit]))

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
MA="$(median "${RA[@]}")"
MN="$(median "${RN[@]}")"

# --- the log is whole: verify it -------------------------------------------------------------
sleep 0.5 # one fsync interval for the last batch
if kill -TERM "${GW_PID[audit]}" 2>/dev/null; then
    wait "${GW_PID[audit]}" 2>/dev/null || true
fi
VERIFY="$("$KT" events verify --state-dir "$WORK/state-audit" 2>&1 || true)"

{
    echo "kt audit-log benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores;" \
        "c=$CONC, ${DURATION}s x $ROUNDS rounds each, alternating; kt --workers $WORKERS;" \
        "$("$KT" --version 2>&1)"
    echo "audit   (chain + audit-logger, fsync: $FSYNC): ${RA[*]} req/s -> median $MA"
    echo "noaudit (same chain without audit-logger):    ${RN[*]} req/s -> median $MN"
    awk -v a="$MA" -v n="$MN" -v f="$FSYNC" 'BEGIN {
        p = (n > 0) ? 100 * a / n : 0
        printf "BENCH audit_fsync=%s audit_rps=%.1f noaudit_rps=%.1f ratio_pct=%.1f cost_pct=%.1f %s\n",
            f, a, n, p, 100 - p, (p >= 90) ? "PASS(<=10%)" : "FAIL(>10%)" }'
    awk -v ac="${CPU[audit]}" -v ar="${REQ[audit]}" -v nc="${CPU[noaudit]}" \
        -v nr="${REQ[noaudit]}" -v t="$TCK" 'BEGIN {
        a = (ar > 0) ? 1e6 * ac / t / ar : 0; n = (nr > 0) ? 1e6 * nc / t / nr : 0
        printf "BENCH_CPU audit_us_per_req=%.1f noaudit_us_per_req=%.1f audit_extra_pct=%.1f\n",
            a, n, (n > 0) ? 100 * (a - n) / n : 0 }'
    echo "verify: $VERIFY"
    echo "requests wrk counted on the audit gateway (probe + warm-up + rounds): $SENT"
    [ "$errors" = 0 ] || echo "WARNING: $errors wrk errors (non-2xx or socket errors)"
} | tee "$RESULT"
echo "saved to ${RESULT#"$ROOT"/}"
