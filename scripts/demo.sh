#!/usr/bin/env bash
# scripts/demo.sh - the main job end to end: build, start the gateway, run a governed experiment.
#
#   bash scripts/demo.sh
#
# Installs what is missing, builds build/kt, starts `kt gateway run` with the product page's
# policy config on 127.0.0.1:41002 (KT_DEMO_PORT) with `kt agent run` beside it (W&B online
# with WANDB_API_KEY or ~/.netrc, else offline), and runs examples/governed_experiment.mjs:
# three ordinary experiment prompts, one prompt-injection attempt and one prompt with a
# person's name and e-mail address, each printed with the gateway's decision.
# Without OPENAI_API_KEY the upstream is a local OpenAI stand-in (tests/e2e/lib) that quotes
# what it received, so redactions are visible; with OPENAI_API_KEY set it is the real provider.
# Then it prints `kt agent status`, stops the agent (it flushes), shows where the W&B runs
# went and `kt events list --limit 10`. Everything started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${KT_DEMO_PORT:-41002}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kt-demo.XXXXXX")"
. "$ROOT/bench/lib/procs.sh"
# Every kt command of the demo keeps its state (audit log, spool) in the demo's temp dir.
export KT_STATE_DIR="$WORK/state"

cleanup() {
    local rc=$?
    stop_pids
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

# stop_clean NAME PID LOG: SIGTERM, then the demo fails unless it exits 0 (with LOG's tail).
stop_clean() {
    local name="$1" pid="$2" log="$3" rc
    kill -TERM "$pid"
    if wait "$pid"; then
        echo "$name stopped cleanly"
    else
        rc=$?
        echo "$name exited with $rc; its log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}

say "dependencies"
bash scripts/install-deps.sh
(cd tests/e2e && { [ -f node_modules/openai/package.json ] ||
    npm ci --no-audit --no-fund --loglevel=error; })

say "build (build/kt)"
cmake -S . -B build >"$WORK/cmake.log" 2>&1 || { cat "$WORK/cmake.log"; exit 1; }
cmake --build build -j2 >>"$WORK/cmake.log" 2>&1 || { tail -n 60 "$WORK/cmake.log"; exit 1; }

# --- the upstream: the real provider, or the local stand-in -------------------------------
UP_URL=""
GATEWAY_KEY="${OPENAI_API_KEY:-}"
if [ -z "$GATEWAY_KEY" ]; then
    say "no OPENAI_API_KEY: starting the local OpenAI stand-in"
    node tests/e2e/bin/upstream.mjs --echo >"$WORK/upstream.out" 2>&1 &
    PIDS+=($!)
    wait_for_line "$WORK/upstream.out" 'url=http' 15 "${PIDS[-1]}"
    UP_URL="$(sed -nE 's/.*url=(http[^ ]+).*/\1/p' "$WORK/upstream.out" | head -n 1)"
    echo "stand-in at $UP_URL"
    # The gateway needs some secret to hold; the stand-in accepts any.
    GATEWAY_KEY="sk-demo-local-stand-in"
else
    say "OPENAI_API_KEY is set: the gateway talks to the real provider"
fi

# --- the product page's policy config ----------------------------------------------------
# examples/policy-config.yaml as it is, pointed at the stand-in when there is one.
. "$ROOT/bench/lib/page-config.sh"
if [ -n "$UP_URL" ]; then
    page_config "$UP_URL" >"$WORK/policy-config.yaml"
else
    cp examples/policy-config.yaml "$WORK/policy-config.yaml"
fi

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
# `kt agent run` shares the gateway's state dir, so both find <state>/agent.sock with no
# flags. W&B is online when WANDB_API_KEY is set or ~/.netrc has api.wandb.ai credentials
# (the agent reads them itself; the key never goes on a command line), else the runs are
# written to <state>/wandb-offline for `kt wandb sync`.
WANDB_ONLINE=0
if [ -n "${WANDB_API_KEY:-}" ] ||
    grep -Eqs "machine[[:space:]]+api\.wandb\.ai" "${NETRC:-$HOME/.netrc}"; then
    WANDB_ONLINE=1
fi
export WANDB_PROJECT="${WANDB_PROJECT:-kt-governance-demo}"
# A short upload interval so the demo's rows reach W&B within seconds.
printf 'exporters:\n  wandb:\n    upload_interval: 2s\n' >"$WORK/agent.yaml"
if [ "$WANDB_ONLINE" = 1 ]; then
    say "kt agent run (W&B online, project $WANDB_PROJECT)"
else
    say "kt agent run (no W&B credentials: runs go to $WORK/state/wandb-offline)"
fi
env -u OPENAI_API_KEY build/kt agent run --state-dir "$WORK/state" --flush-interval 1 \
    --exporters wandb --config "$WORK/agent.yaml" >"$WORK/agent.log" 2>&1 &
PIDS+=($!)
AGENT_PID="${PIDS[-1]}"
wait_for_line "$WORK/agent.log" 'listening' 30 "$AGENT_PID"

say "the experiment (examples/governed_experiment.mjs)"
export KT_GATEWAY_URL="http://127.0.0.1:$PORT/v1"
export WANDB_RUN_ID="${WANDB_RUN_ID:-demo-$(date +%Y%m%d-%H%M%S)}"
# The experiment never sees the provider key: only the gateway holds it.
env -u OPENAI_API_KEY node examples/governed_experiment.mjs

say "kt agent status"
# The gateway sends one event per request; wait (bounded) until the agent has the run.
for ((i = 0; i < 100; i++)); do
    if build/kt agent status --json --state-dir "$WORK/state" 2>/dev/null |
        grep -q "\"run_id\":\"$WANDB_RUN_ID\""; then
        break
    fi
    sleep 0.1
done
build/kt agent status --state-dir "$WORK/state" || echo "(kt agent status failed)"

say "stopping the agent (SIGTERM: it flushes to W&B first)"
stop_clean agent "$AGENT_PID" "$WORK/agent.log"

say "where the governance runs went"
if [ "$WANDB_ONLINE" = 1 ]; then
    STORE="$WORK/state/wandb"
    echo "W&B: https://wandb.ai/${WANDB_ENTITY:-<your entity>}/$WANDB_PROJECT/runs/${WANDB_RUN_ID}-gov"
    echo "(companion run ${WANDB_RUN_ID}-gov in group $WANDB_RUN_ID; local copy in $STORE)"
    grep -E 'level=(warn|error)' "$WORK/agent.log" | head -n 5 || true
else
    STORE="$WORK/state/wandb-offline"
    echo "offline W&B runs in $STORE:"
    (cd "$STORE" && find . -mindepth 3 -maxdepth 3 -type d | sed 's|^\./|  |')
    echo "upload them with: kt wandb sync $STORE  (with WANDB_API_KEY set;" \
        "KT_DEMO_KEEP=1 keeps the demo dir)"
fi
RUN_DIR="$(find "$STORE" -mindepth 3 -maxdepth 3 -type d -name "${WANDB_RUN_ID}-gov" 2>/dev/null |
    head -n 1)"
if [ -n "$RUN_DIR" ] && [ -f "$RUN_DIR/summary.json" ]; then
    echo "cumulative governance summary of ${RUN_DIR#"$STORE"/}:"
    # shellcheck disable=SC2016 # JavaScript, not the shell, expands its ${...}
    node -e '
        const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const keep = /^governance\/(requests|allowed|redacted|blocked|pii\/|tokens_total)/;
        for (const [k, v] of Object.entries(s)) {
            if (keep.test(k)) {
                console.log(`  ${k} = ${v}`);
            }
        }' "$RUN_DIR/summary.json"
fi

say "the audit trail (kt events list --limit 10)"
build/kt events list --limit 10 --state-dir "$WORK/state" || echo "(kt events list failed)"

say "stopping"
stop_clean gateway "$GW_PID" "$WORK/gateway.log"
echo "gateway log: $(wc -l <"$WORK/gateway.log") lines (KT_DEMO_KEEP=1 keeps $WORK)"
