# bench/lib/page-config.sh - the product page's policy config, pointed at a local upstream, and kt on it
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
#   . bench/lib/page-config.sh; page_config http://127.0.0.1:PORT/v1 >"$WORK/policy-config.yaml"
#
# Prints examples/policy-config.yaml (the page's config, verbatim) with `base_url` added to its
# target, so every benchmark measures kt with exactly the config users start from.
#
#   start_page_kt WHO BIN PORT CONFIG STATE LOG
#
# Starts `BIN gateway run --workers 1` on 127.0.0.1:PORT with CONFIG and a fresh STATE dir,
# stderr to LOG, and returns once /health answers (KT_PID is its pid, also added to PIDS from
# bench/lib/procs.sh); exits with LOG's tail, WHO leading the message, when it never does.
page_config() { # page_config BASE_URL
    awk -v url="$1" '
        { print }
        /^      secret_key_ref:/ { print "      base_url: " url }
    ' "$(dirname "${BASH_SOURCE[0]}")/../../examples/policy-config.yaml"
}

start_page_kt() { # start_page_kt WHO BIN PORT CONFIG STATE LOG
    local i
    rm -rf "$5"
    OPENAI_API_KEY=sk-bench-upstream "$2" gateway run --listen "127.0.0.1:$3" \
        --policy-config "$4" --state-dir "$5" --workers 1 2>"$6" &
    KT_PID=$!
    PIDS+=("$KT_PID")
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$3/health" && return 0
        sleep 0.1
    done
    echo "$1: $2 does not answer on port $3" >&2
    tail "$6" >&2
    exit 1
}
