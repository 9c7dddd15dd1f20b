# bench/lib/procs.sh - stop what a benchmark started, newest first
# SPDX-License-Identifier: Apache-2.0
#
#   . bench/lib/procs.sh; PIDS+=($!) after each start; stop_pids from the EXIT trap
#
# Newest first, so a proxy goes before the upstream it talks to and nothing logs errors about
# a peer that vanished while it was still being measured.
PIDS=()

stop_pids() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        if kill -0 "${PIDS[$i]}" 2>/dev/null; then
            kill -TERM "${PIDS[$i]}" 2>/dev/null || true
            wait "${PIDS[$i]}" 2>/dev/null || true
        fi
    done
}
