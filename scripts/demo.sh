#!/usr/bin/env bash
# scripts/demo.sh - the main job end to end: build, start the gateway, run a governed experiment.
#
#   bash scripts/demo.sh
#
# Installs what is missing, builds build/kt, starts `kt gateway run` with the product page's
# policy config on 127.0.0.1:41002 (KT_DEMO_PORT), and runs examples/governed_experiment.mjs:
# three ordinary experiment prompts, one prompt-injection attempt and one prompt with a
# person's name and e-mail address, each printed with the gateway's decision.
# Without OPENAI_API_KEY the upstream is a local OpenAI stand-in (tests/e2e/lib) that quotes
# what it received, so redactions are visible; with OPENAI_API_KEY set it is the real provider.
# Everything started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${KT_DEMO_PORT:-41002}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kt-demo.XXXXXX")"
PIDS=()
# Every kt command of the demo keeps its state (audit log, spool) in the demo's temp dir.
export KT_STATE_DIR="$WORK/state"

cleanup() {
    local rc=$?
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        if kill -0 "${PIDS[$i]}" 2>/dev/null; then
            kill -TERM "${PIDS[$i]}" 2>/dev/null || true
            wait "${PIDS[$i]}" 2>/dev/null || true
        fi
    done
    if [ "${KT_DEMO_KEEP:-0}" = 1 ]; then
        echo "demo files kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n==> %s\n' "$*"; }

# wait_for_file_line FILE REGEX SECONDS PID: wait until FILE has a line matching REGEX.
wait_for_line() {
    local file="$1" re="$2" secs="$3" pid="$4" i
    for ((i = 0; i < secs * 10; i++)); do
        if grep -Eq "$re" "$file" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "demo: process $pid exited early; its output:" >&2
            cat "$file" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "demo: timed out waiting for '$re' in $file:" >&2
    cat "$file" >&2
    return 1
}

say "dependencies"
bash scripts/install-deps.sh
(cd tests/e2e && { [ -f node_modules/openai/package.json ] ||
    npm ci --no-audit --no-fund --loglevel=error; })

say "build (build/kt)"
cmake -S . -B build >"$WORK/cmake.log" 2>&1 || { cat "$WORK/cmake.log"; exit 1; }
cmake --build build -j2 >>"$WORK/cmake.log" 2>&1 || { tail -n 60 "$WORK/cmake.log"; exit 1; }

# --- the upstream: the real provider, or the local stand-in -------------------------------
BASE_URL_LINE=""
GATEWAY_KEY="${OPENAI_API_KEY:-}"
if [ -z "$GATEWAY_KEY" ]; then
    say "no OPENAI_API_KEY: starting the local OpenAI stand-in"
    node tests/e2e/bin/upstream.mjs --echo >"$WORK/upstream.out" 2>&1 &
    PIDS+=($!)
    wait_for_line "$WORK/upstream.out" 'url=http' 15 "${PIDS[-1]}"
    UP_URL="$(sed -nE 's/.*url=(http[^ ]+).*/\1/p' "$WORK/upstream.out" | head -n 1)"
    echo "stand-in at $UP_URL"
    BASE_URL_LINE="      base_url: $UP_URL"
    # The gateway needs some secret to hold; the stand-in accepts any.
    GATEWAY_KEY="sk-demo-local-stand-in"
else
    say "OPENAI_API_KEY is set: the gateway talks to the real provider"
fi

# --- the product page's policy config ----------------------------------------------------
cat >"$WORK/policy-config.yaml" <<EOF
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
$BASE_URL_LINE
policies:
  chain: [prompt-injection, pii-detector, audit-logger]
policy:
  prompt-injection:
    threshold: 0.8
    action: block
  pii-detector:
    action: redact
    entities: [PERSON, EMAIL_ADDRESS]
  audit-logger:
    immutable: true
    retention_days: 365
    log_all_access: true
EOF

say "kt policy check"
OPENAI_API_KEY="$GATEWAY_KEY" build/kt policy check "$WORK/policy-config.yaml"

say "kt gateway run --listen 127.0.0.1:$PORT"
OPENAI_API_KEY="$GATEWAY_KEY" build/kt gateway run --listen "127.0.0.1:$PORT" \
    --policy-config "$WORK/policy-config.yaml" --state-dir "$WORK/state" \
    >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
GW_PID="${PIDS[-1]}"
wait_for_line "$WORK/gateway.log" 'listening' 30 "$GW_PID"
curl -fsS "http://127.0.0.1:$PORT/health"
echo

# --- the agent and W&B -------------------------------------------------------------------
# `kt agent run` (W&B offline output) starts here, beside the gateway, sharing its state dir.

say "the experiment (examples/governed_experiment.mjs)"
export KT_GATEWAY_URL="http://127.0.0.1:$PORT/v1"
export WANDB_RUN_ID="${WANDB_RUN_ID:-demo-$(date +%Y%m%d-%H%M%S)}"
# The experiment never sees the provider key: only the gateway holds it.
env -u OPENAI_API_KEY node examples/governed_experiment.mjs

say "the audit trail (kt events list --limit 10)"
build/kt events list --limit 10 --state-dir "$WORK/state" || echo "(kt events list failed)"

say "stopping"
kill -TERM "$GW_PID"
if wait "$GW_PID"; then
    echo "gateway stopped cleanly"
else
    rc=$?
    echo "gateway exited with $rc; its log:" >&2
    tail -n 40 "$WORK/gateway.log" >&2
    exit 1
fi
echo "gateway log: $(wc -l <"$WORK/gateway.log") lines (KT_DEMO_KEEP=1 keeps $WORK)"
