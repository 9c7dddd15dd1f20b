# bench/lib/steal.sh - how much of the machine's CPU time the host gave other tenants
# SPDX-License-Identifier: Apache-2.0
#
#   . bench/lib/steal.sh; s0="$(steal_ticks)"; <load>; s1="$(steal_ticks)"; steal_pct "$s0" "$s1"
#
# On a VM, steal is time the host ran another tenant while this machine wanted to run. A
# measurement taken while much of it was stolen measured the neighbours too.

# steal_ticks: "STEAL TOTAL", clock ticks over all CPUs, from the cpu line of /proc/stat.
steal_ticks() {
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t; exit }' /proc/stat
}

# steal_pct BEFORE AFTER: the percentage of the CPU time between two steal_ticks readings
# that was stolen, one decimal.
steal_pct() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ")
        printf "%.1f\n", (y[2] > x[2]) ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0 }'
}

# least_stolen REDO MAX_STEAL NOTE CMD...: runs CMD, which prints one line ending in the
# percentage of the machine's CPU time stolen while it ran (steal_pct). While the line kept so
# far lost more than MAX_STEAL percent, CMD runs again, up to REDO more times, and the line
# that lost least is kept; before each rerun NOTE is called with the line just run, its
# output going to standard error. Prints the line kept; fails as soon as a run of CMD fails
# (a command substitution does not inherit errexit, so this says it, and the caller's
# `x="$(least_stolen ...)"` then stops a `set -e` script). On a shared host a busy neighbour
# moves req/s and CPU time by more than the changes being measured.
least_stolen() {
    local redo="$1" max="$2" note="$3" best last k
    shift 3
    best="$("$@")" || return 1
    last="$best"
    for ((k = 0; k < redo; k++)); do
        awk -v s="${best##* }" -v m="$max" 'BEGIN { exit !(s > m) }' || break
        "$note" "$last" >&2
        last="$("$@")" || return 1
        if awk -v a="${last##* }" -v b="${best##* }" 'BEGIN { exit !(a < b) }'; then
            best="$last"
        fi
    done
    printf '%s\n' "$best"
}
