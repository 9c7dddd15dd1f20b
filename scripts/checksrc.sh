#!/usr/bin/env bash
# scripts/checksrc.sh - fail on C library calls the house style bans.
# Each banned call has a bounded or safer replacement: gv_buf, snprintf,
# gv_cfg_parse_long, memcpy with an explicit length.
set -euo pipefail
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets|strncpy|alloca)[[:space:]]*\('
files=$(git ls-files '*.c' '*.h' | grep -v '^build' || true)
[ -n "$files" ] || exit 0
# snprintf/vsnprintf contain "sprintf": match only when not preceded by a letter.
if hits=$(grep -nE "(^|[^a-zA-Z_])$banned" $files); then
  echo "checksrc: banned calls found:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "checksrc: ok ($(echo "$files" | wc -l) files)"
