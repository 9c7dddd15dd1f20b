#!/usr/bin/env bash
# scripts/checksrc.sh - fail on C library calls the house style bans, and on the two rules of
# docs/internals/conventions.md a grep can check:
# - banned calls: each has a bounded or safer replacement (gv_buf, snprintf, gv_cfg_parse_long,
#   memcpy with an explicit length);
# - memory comes from core/gv_mem (gv_malloc aborts on OOM, so no caller checks for NULL);
# - only cli/ prints: libraries return errors (gv_rc, gv_cfg_err) and log through core/gv_log;
# - the C is laid out as .clang-format says (generated files, which say so on their first line,
#   and blocks between clang-format off/on markers are left as written).
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

# The shipped code: tests, benchmarks, generators and the offline trainer are tools, not kt.
lib=$(echo "$files" | grep -E '^(core|proto|gateway|agent|exporters)/' |
    grep -vE '/(train|gen)/' || true)
alloc='(^|[^a-zA-Z_.>])(malloc|calloc|realloc|strdup|strndup|free)\('
if hits=$(grep -nE "$alloc" $(echo "$lib" | grep -v '^core/gv_mem\.c$')); then
  echo "checksrc: raw allocation outside core/gv_mem.c (use gv_malloc, gv_free, ...):" >&2
  echo "$hits" >&2
  exit 1
fi
print='(^|[^a-zA-Z_])(printf|fprintf|vfprintf|puts|fputs|putchar|perror)\('
if hits=$(grep -nE "$print" $(echo "$lib" | grep -vE '^core/gv_(log|mem)\.c$')); then
  echo "checksrc: printing outside cli/ (return the error; log with gv_log):" >&2
  echo "$hits" >&2
  exit 1
fi
# One layout for the whole tree, so a diff shows changes, not re-wrapping.
if ! command -v clang-format >/dev/null 2>&1; then
  echo "checksrc: clang-format is missing (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
layout=()
for f in $files; do
  head -n 1 "$f" | grep -qi 'generated' || layout+=("$f")
done
if ! clang-format --dry-run -Werror "${layout[@]}" 2>/dev/null; then
  echo "checksrc: not laid out as .clang-format says (clang-format -i FILE):" >&2
  clang-format --dry-run "${layout[@]}" 2>&1 | grep -oE '^[^:]+\.[ch]:[0-9]+' | sort -u -t: -k1,1 >&2
  exit 1
fi
echo "checksrc: ok ($(echo "$files" | wc -l) files)"
