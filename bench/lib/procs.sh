# bench/lib/procs.sh - the processes a benchmark starts: their CPU time, stopping them
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
#   . bench/lib/procs.sh; PIDS+=($!) after each start; stop_pids from the EXIT trap
#
# stop_pids stops them newest first, so a proxy goes before the upstream it talks to and
# nothing logs errors about a peer that vanished while it was still being measured.
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

# work_dir PREFIX [KEEP-VAR]: a fresh temp dir in WORK; on exit everything on PIDS is stopped
# and the dir removed, unless the variable named KEEP-VAR is 1 (then it is kept for its logs).
work_dir() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    WORK_KEEP_VAR="${2:-}"
    trap work_cleanup EXIT
    trap 'exit 130' INT TERM
}

work_cleanup() {
    local rc=$?
    stop_pids
    if [ -n "$WORK_KEEP_VAR" ] && [ "${!WORK_KEEP_VAR:-0}" = 1 ]; then
        echo "kept $WORK (logs, configs, samples)" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

# ports_free WHO BASE-VAR PORT...: exits when another process already listens on one of the
# ports on 127.0.0.1, naming the variable that moves them (WHO starts the message).
ports_free() {
    local who="$1" var="$2" p
    shift 2
    for p in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$who: port $p on 127.0.0.1 is in use; set $var" >&2
            exit 1
        fi
    done
}

# cpu_ticks PID...: the user + system CPU time of the processes (each with all its threads),
# summed, in clock ticks (getconf CLK_TCK a second); a process that is gone counts 0.
cpu_ticks() {
    local p st f sum=0
    for p in "$@"; do
        st="$(<"/proc/$p/stat")" || continue
        read -r -a f <<<"${st##*) }" # the fields after comm: state, ppid, ... utime is the 12th
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}
