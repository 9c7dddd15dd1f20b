# bench/lib/page-config.sh - the product page's policy config, pointed at a local upstream
# SPDX-License-Identifier: Apache-2.0
#
#   . bench/lib/page-config.sh; page_config http://127.0.0.1:PORT/v1 >"$WORK/policy-config.yaml"
#
# Prints examples/policy-config.yaml (the page's config, verbatim) with `base_url` added to its
# target, so every benchmark measures kt with exactly the config users start from.
page_config() { # page_config BASE_URL
    awk -v url="$1" '
        { print }
        /^      secret_key_ref:/ { print "      base_url: " url }
    ' "$(dirname "${BASH_SOURCE[0]}")/../../examples/policy-config.yaml"
}
