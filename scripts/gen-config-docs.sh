#!/usr/bin/env bash
# scripts/gen-config-docs.sh - rewrite the generated configuration tables in docs/*.md from the
# config maps in the sources (the blocks between `<!-- BEGIN generated: NAME -->` and
# `<!-- END generated -->`). Builds and runs the unit test that otherwise checks them.
# Usage: scripts/gen-config-docs.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" >/dev/null
cmake --build "$build" -j2 --target test_docs_config_reference >/dev/null
(cd "$build" && KT_DOCS_WRITE=1 ctest -R '^unit/docs/config_reference$' --output-on-failure)
git --no-pager diff --stat -- docs
