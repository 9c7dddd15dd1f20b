#!/usr/bin/env bash
# bench/gateway/ab.sh - two kt binaries against each other, in turns, on the same upstream.
#
#   bash bench/gateway/ab.sh OLD_KT NEW_KT
#
# A change that cuts a few percent of kt's work is smaller than the drift of a 2-core machine
# between two runs of run.sh. This starts one upstream (bench/lib/nginx-upstream.sh) and runs
# OLD and NEW in turn, AB_ROUNDS times (default 3), each `kt gateway run --workers 1` with the
# page's config and a fresh state dir, under `wrk -t2 -c64` POSTs (bench/gateway/post.lua; SSE
# with AB_SSE=1) for AB_DURATION seconds (default 5) after a 2 s warm-up. Per run: req/s,
# kt's CPU time per request (utime + stime of all its threads from /proc/<pid>/stat) and the
# share of the machine's CPU time the host gave to other tenants during the turn (steal, from
# /proc/stat); then the mean and the median of each binary and NEW / OLD, and a warning when
# turns lost more than AB_MAX_STEAL percent (default 5) to steal. Such a turn is run again, up
# to AB_REDO times (default 2), and the run that lost least is kept (AB_REDO=0: every first
# run). Only 127.0.0.1 is used;
# ports from AB_PORT_BASE (default 18280: upstream +1, kt +2, and +3 for the paced mode).
#
# With AB_PACED=1 the two binaries run side by side instead, and bench/gateway/paced.mjs sends
# AB_PACED_RATE POSTs a second (default 500) over 16 keep-alive connections to the upstream
# itself, OLD and NEW, taking turns of 200 ms for AB_DURATION seconds a target, AB_ROUNDS
# times: latency with nothing saturated, where wrk can only measure a saturated server. Per
# round: each binary's added p50 (its p50 - the upstream's); then NEW - OLD per round and its
# median.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/gateway"
[ $# -eq 2 ] || { echo "usage: bash bench/gateway/ab.sh OLD_KT NEW_KT" >&2; exit 2; }
OLD="$1"
NEW="$2"
for b in "$OLD" "$NEW"; do
    [ -x "$b" ] || { echo "ab: $b is not an executable" >&2; exit 2; }
done
ROUNDS="${AB_ROUNDS:-3}"
DURATION="${AB_DURATION:-5}"
MAX_STEAL="${AB_MAX_STEAL:-5}"
REDO="${AB_REDO:-2}"
BASE="${AB_PORT_BASE:-18280}"
UP_PORT=$((BASE + 1))
KT_PORT=$((BASE + 2))
WRK_ARGS=()
[ "${AB_SSE:-0}" != 1 ] || WRK_ARGS=(-- sse)
. "$ROOT/bench/lib/procs.sh"
. "$ROOT/bench/lib/nginx-upstream.sh"
. "$ROOT/bench/lib/page-config.sh"
. "$ROOT/bench/lib/steal.sh"
work_dir kt-ab
command -v wrk >/dev/null 2>&1 || { echo "ab: wrk is needed (apt-get install wrk)" >&2; exit 1; }
ports_free ab AB_PORT_BASE "$UP_PORT" "$KT_PORT"

nginx_upstream "$WORK/up" "$UP_PORT"
page_config "http://127.0.0.1:$UP_PORT/v1" >"$WORK/policy-config.yaml"
HZ="$(getconf CLK_TCK)"

# The median of arr[1..k] (sorting arr), for the awk programs below.
AWK_MEDIAN='function median(arr, k,    i, j, t) {
    for (i = 2; i <= k; i++) {
        t = arr[i]
        for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]
        arr[j + 1] = t
    }
    return k % 2 ? arr[(k + 1) / 2] : (arr[k / 2] + arr[k / 2 + 1]) / 2
}'

start_kt() { # start_kt BIN PORT STATE: kt on PORT with a fresh STATE dir, once it answers; KT_PID
    start_page_kt ab "$1" "$2" "$WORK/policy-config.yaml" "$3" "$WORK/kt-$2.log"
}

if [ "${AB_PACED:-0}" = 1 ]; then
    command -v node >/dev/null 2>&1 || { echo "ab: AB_PACED=1 needs node" >&2; exit 1; }
    ports_free ab AB_PORT_BASE $((KT_PORT + 1))
    start_kt "$OLD" "$KT_PORT" "$WORK/state-old"
    start_kt "$NEW" $((KT_PORT + 1)) "$WORK/state-new"
    echo "round  added p50 old  added p50 new  new - old (us)"
    : >"$WORK/paced"
    for ((r = 1; r <= ROUNDS; r++)); do
        node "$HERE/paced.mjs" --rate "${AB_PACED_RATE:-500}" --duration-s "$DURATION" \
            --conns 16 --slice-ms 200 \
            --targets "direct=http://127.0.0.1:$UP_PORT,old=http://127.0.0.1:$KT_PORT,new=http://127.0.0.1:$((KT_PORT + 1))" \
            >"$WORK/round.txt"
        awk -v r="$r" '/^PACED/ {
                split($2, t, "="); for (i = 3; i <= NF; i++) if ($i ~ /^p50_us=/) { split($i, v, "="); p[t[2]] = v[2] }
            }
            END {
                if (!("direct" in p) || !("old" in p) || !("new" in p)) { print "ab: a target gave no p50" > "/dev/stderr"; exit 1 }
                printf "%5d %14d %14d %15d\n", r, p["old"] - p["direct"], p["new"] - p["direct"], p["new"] - p["old"]
            }' "$WORK/round.txt" | tee -a "$WORK/paced"
    done
    awk "$AWK_MEDIAN"'
        { d[++n] = $4 }
        END { printf "new - old added p50: median %+.0f us over %d rounds\n", median(d, n), n }' \
        "$WORK/paced"
    exit 0
fi

one_run() { # one_run BIN: prints "rps cpu_us steal_pct"
    local pid t0 t1 s0 s1 line req rps
    start_kt "$1" "$KT_PORT" "$WORK/state"
    pid=$KT_PID
    wrk -t2 -c64 -d2s -s "$HERE/post.lua" "http://127.0.0.1:$KT_PORT" "${WRK_ARGS[@]}" \
        >/dev/null 2>&1 || true
    t0="$(cpu_ticks "$pid")"
    s0="$(steal_ticks)"
    line="$(wrk -t2 -c64 -d"${DURATION}s" -s "$HERE/post.lua" "http://127.0.0.1:$KT_PORT" \
        "${WRK_ARGS[@]}" 2>&1 | grep '^BENCH ')" || true
    t1="$(cpu_ticks "$pid")"
    s1="$(steal_ticks)"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    req="$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$line")"
    rps="$(sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$line")"
    if ! { [ -n "$line" ] && [ "$req" -gt 0 ]; }; then
        echo "ab: no answers from $1" >&2
        tail "$WORK/kt-$KT_PORT.log" >&2
        exit 1
    fi
    awk -v t=$((t1 - t0)) -v hz="$HZ" -v r="$req" -v rps="$rps" \
        -v st="$(steal_pct "$s0" "$s1")" \
        'BEGIN { printf "%.0f %.2f %s\n", rps, 1e6 * t / hz / r, st }'
}

note_again() { # note_again "RPS CPU STEAL": a turn that runs again (r and which: the loop's)
    # shellcheck disable=SC2086 # three numbers
    printf "%5d %-6s %8s %11s %8s  steal over %s%%: again\n" "$r" "$which" $1 "$MAX_STEAL"
}

echo "round binary    req/s  cpu us/req  steal %"
: >"$WORK/runs"
for ((r = 1; r <= ROUNDS; r++)); do
    for which in old new; do
        bin="$OLD"
        [ "$which" = old ] || bin="$NEW"
        # A turn a neighbour took a share of is run again, and the turn that lost least kept.
        res="$(least_stolen "$REDO" "$MAX_STEAL" note_again one_run "$bin")"
        echo "$which $res" >>"$WORK/runs"
        # shellcheck disable=SC2086 # three numbers
        printf "%5d %-6s %8s %11s %8s\n" "$r" "$which" $res
    done
done
# Means, and medians (a turn that a neighbour took half of moves the mean, not the median).
awk -v max_steal="$MAX_STEAL" "$AWK_MEDIAN"'
    {
        k = ++n[$1]; rps[$1] += $2; cpu[$1] += $3
        if ($1 == "old") { ro[k] = $2; co[k] = $3 } else { rn[k] = $2; cn[k] = $3 }
        if ($4 > max_steal) stolen++
    }
    END {
        printf "mean   old %8.0f %11.2f\n", rps["old"] / n["old"], cpu["old"] / n["old"]
        printf "mean   new %8.0f %11.2f\n", rps["new"] / n["new"], cpu["new"] / n["new"]
        mro = median(ro, n["old"]); mco = median(co, n["old"])
        mrn = median(rn, n["new"]); mcn = median(cn, n["new"])
        printf "median old %8.0f %11.2f\n", mro, mco
        printf "median new %8.0f %11.2f\n", mrn, mcn
        printf "new / old: req/s %.3f, cpu per request %.3f (means); %.3f, %.3f (medians)\n",
            (rps["new"] / n["new"]) / (rps["old"] / n["old"]),
            (cpu["new"] / n["new"]) / (cpu["old"] / n["old"]), mrn / mro, mcn / mco
        if (stolen)
            printf "WARNING: %d of %d turns lost more than %s%% of the CPUs to steal: the host " \
                "was busy; rerun, or trust only large differences\n", stolen, NR, max_steal
    }' "$WORK/runs"
