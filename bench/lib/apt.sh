# bench/lib/apt.sh - install what a benchmark needs beyond the build and test dependencies
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
#   . bench/lib/apt.sh; apt_install wrk nginx-light
#
# Debian packages, as root or through sudo. The installer's output goes to stderr, so a
# benchmark's standard output stays its results. With no packages it does nothing.
apt_install() { # apt_install PKG...
    local sudo=""
    [ "$#" -gt 0 ] || return 0
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}
