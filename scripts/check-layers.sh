#!/usr/bin/env bash
# scripts/check-layers.sh - every #include points down (or sideways within a layer).
#
# Layers, lowest first (docs/internals/conventions.md):
#   0 core        core/                     buffers, memory, logs, config maps, files, hashes
#   1 events      proto/, core/gv_event.*   the governance event and its wire
#   2 policy-api  gateway/gw_policy.*, gateway/gw_req.*  what a policy sees of a request
#   3 policies    gateway/policies/         one folder per policy, plus accounting
#   3 exporters   exporters/                one folder per exporter, plus ex_exporter.h
#   4 gateway     gateway/ (the rest)       config, chain, server, relay, emitter
#   4 agent       agent/                    ingest, runs, journal, export queue
#   5 cli         cli/                      main.c and every command
# A policy may include only core, events, the policy API and its own folder (or accounting);
# an exporter only core, events, ex_exporter.h and its own folder.
set -euo pipefail
cd "$(dirname "$0")/.."

layer_of() { # path -> "rank name"
    case "$1" in
    core/gv_event.*) echo "1 events" ;;
    core/*) echo "0 core" ;;
    proto/*) echo "1 events" ;;
    gateway/gw_policy.[ch] | gateway/gw_req.[ch]) echo "2 policy-api" ;;
    gateway/policies/*) echo "3 policies" ;;
    exporters/*) echo "3 exporters" ;;
    gateway/*) echo "4 gateway" ;;
    agent/*) echo "4 agent" ;;
    cli/*) echo "5 cli" ;;
    *) echo "" ;;
    esac
}

# Within one layer: two layers of the same rank never meet (gateway <-> agent, policies <->
# exporters), and one policy or exporter never reaches into another's folder.
sideways_ok() { # from to
    local from="$1" to="$2"
    case "$from" in
    gateway/policies/*/*)
        local own="${from#gateway/policies/}"
        own="gateway/policies/${own%%/*}/"
        [[ "$to" == "$own"* || "$to" == gateway/policies/accounting/* ||
            "$to" == gateway/policies/gw_policies.h ]]
        return
        ;;
    exporters/*/*)
        local own="${from#exporters/}"
        own="exporters/${own%%/*}/"
        [[ "$to" == "$own"* || "$to" == exporters/ex_*.h ]]
        return
        ;;
    esac
    return 0
}

bad=0
while IFS= read -r f; do
    read -r frank fname <<<"$(layer_of "$f")"
    [ -n "${frank:-}" ] || continue
    while IFS=: read -r line inc; do
        to="$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"$inc")"
        [ -f "$to" ] || continue # a generated or system header
        read -r trank tname <<<"$(layer_of "$to")"
        [ -n "${trank:-}" ] || continue
        if [ "$trank" -gt "$frank" ]; then
            echo "$f:$line: $fname includes $to ($tname, a higher layer)"
            bad=$((bad + 1))
        elif [ "$trank" -eq "$frank" ] && { [ "$tname" != "$fname" ] || ! sideways_ok "$f" "$to"; }; then
            echo "$f:$line: $fname includes $to sideways"
            bad=$((bad + 1))
        fi
    done < <(grep -nE '^#include "' "$f" | sed -E 's/^([0-9]+):/\1:/')
done < <(git ls-files '*.c' '*.h' | grep -E '^(core|proto|gateway|exporters|agent|cli)/')

if [ "$bad" -gt 0 ]; then
    echo "check-layers: $bad include(s) point up or sideways" >&2
    exit 1
fi
echo "check-layers: ok"
