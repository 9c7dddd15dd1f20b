#!/usr/bin/env bash
# scripts/install-deps.sh - install what building and testing kt needs on Debian 12.
# Idempotent: installs only the packages that are missing. Needs root (or sudo).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git ca-certificates clang-format
  libcurl4-openssl-dev libjson-c-dev libyaml-dev libpcre2-dev
  libprotobuf-c-dev protobuf-c-compiler libcmocka-dev
  libevent-dev libssl-dev libhttp-parser-dev zlib1g-dev libmimalloc-dev
  libtext-names-perl wamerican
  nodejs npm
  curl
  prometheus
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# node/npm may come from outside Debian's packages on some machines: a working
# `node` and `npm` on PATH are as good as the packages.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  filtered=()
  for p in "${missing[@]}"; do
    case "$p" in nodejs|npm) ;; *) filtered+=("$p") ;; esac
  done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
