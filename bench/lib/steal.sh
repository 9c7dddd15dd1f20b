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
