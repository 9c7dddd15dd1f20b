#!/usr/bin/env bash
# bench/detectors/run.sh - run every detector benchmark and print its tables
# Builds (Release, own build dir) and runs each kt_bench_<name> made from bench/detectors/*.c
# (injection_*.c, pii_*.c, ...) against ../shared/data/detectors. Each program skips cleanly
# when the data is absent.
#   bench/detectors/run.sh                 # KT_BENCH_BUILD_DIR=build-bench by default
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${KT_BENCH_BUILD_DIR:-$root/build-bench}"
export KT_SOURCE_DIR="$root"
export KT_DETECTORS_DIR="${KT_DETECTORS_DIR:-$root/../shared/data/detectors}"

targets=()
for src in "$root"/bench/detectors/*.c; do
  [ -e "$src" ] || continue
  targets+=("kt_bench_$(basename "$src" .c)")
done
if [ "${#targets[@]}" -eq 0 ]; then
  echo "bench/detectors: no benchmark sources" >&2
  exit 1
fi

log="$build.log"
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKT_TESTS=OFF -DKT_BENCH=ON &&
       cmake --build "$build" -j2 --target "${targets[@]}"; } >"$log" 2>&1; then
  tail -40 "$log" >&2
  echo "bench/detectors: build failed, full log in $log" >&2
  exit 1
fi

echo "# Detector benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
echo
status=0
for t in "${targets[@]}"; do
  echo "<!-- $t -->"
  if ! "$build/bench/$t"; then
    echo "bench/detectors: $t failed" >&2
    status=1
  fi
  echo
done
exit "$status"
