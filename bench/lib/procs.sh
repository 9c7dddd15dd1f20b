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
