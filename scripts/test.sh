#!/usr/bin/env bash
# scripts/test.sh - the one test command: deps, two builds, unit tests, e2e tests, a summary.
#
#   bash scripts/test.sh
#
# On a fresh Debian 12 as root it installs what is missing (scripts/install-deps.sh, then
# `npm ci` in tests/e2e), builds build/ (-DKT_WERROR=ON) and build-asan/ (ASan+UBSan), runs
# the cmocka unit tests in both, then the node e2e suite against both kt binaries. It ends with
# one line "N passed, N failed" and exits non-zero when anything failed.
# A third tree, build-tsan/ (ThreadSanitizer), runs the same unit and e2e tests: the emitter's
# lock-free ring, the audit writer, the agent's exporter threads and the gateway's workers all
# share state. A race report from any kt process or unit test fails the run.
# Environment: JOBS (default 2), KT_TEST_SKIP_ASAN=1 to build and test only build/ (and
# build-tsan/), KT_TEST_SKIP_TSAN=1 to leave out build-tsan/, KT_TEST_SKIP_DEPS=1 to skip
# installing packages.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
JOBS="${JOBS:-2}"
LOGDIR="$ROOT/build-logs"
mkdir -p "$LOGDIR"

PASSED=0
FAILED=0
FAILURES=()

step() { printf '\n==> %s\n' "$*"; }
fail_step() {
    FAILED=$((FAILED + 1))
    FAILURES+=("$1")
    echo "FAILED: $1"
}
pass_step() { PASSED=$((PASSED + 1)); }

# --- dependencies -----------------------------------------------------------------------
if [ "${KT_TEST_SKIP_DEPS:-0}" != 1 ]; then
    step "dependencies (scripts/install-deps.sh)"
    if bash scripts/install-deps.sh; then pass_step; else fail_step "install-deps"; fi
fi

step "e2e node packages (npm ci in tests/e2e)"
if (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error); then
    pass_step
elif [ -f tests/e2e/node_modules/openai/package.json ]; then
    echo "npm ci failed; using the node_modules already installed"
    pass_step
else
    fail_step "npm ci (tests/e2e)"
fi

# --- style check ------------------------------------------------------------------------
if [ -f scripts/checksrc.sh ]; then
    step "banned calls (scripts/checksrc.sh)"
    if bash scripts/checksrc.sh; then pass_step; else fail_step "checksrc"; fi
fi

if [ -f scripts/check-layers.sh ]; then
    step "one-way layers (scripts/check-layers.sh)"
    if bash scripts/check-layers.sh; then pass_step; else fail_step "check-layers"; fi
fi

# --- builds -----------------------------------------------------------------------------
# build DIR LOG cmake-args...: configure + build; 0 when DIR/kt exists afterwards.
build() {
    local dir="$1" log="$2"
    shift 2
    step "build $dir ($*)"
    if ! timeout 900 cmake -S . -B "$dir" "$@" >"$log" 2>&1 ||
        ! timeout 900 cmake --build "$dir" -j"$JOBS" >>"$log" 2>&1; then
        tail -n 60 "$log"
        fail_step "build $dir (log: ${log#"$ROOT"/})"
        return 1
    fi
    pass_step
    echo "built $dir/kt"
}

# Only a build that succeeded is tested: a failed one would leave stale binaries behind.
BUILDS=()
# The benchmarks are run by hand, but build/ compiles them so that they cannot rot unseen.
if build build "$LOGDIR/build.log" -DKT_WERROR=ON -DKT_BENCH=ON; then BUILDS+=(build); fi
if [ "${KT_TEST_SKIP_ASAN:-0}" != 1 ]; then
    if build build-asan "$LOGDIR/build-asan.log" -DKT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug; then
        BUILDS+=(build-asan)
    fi
fi

if [ "${KT_TEST_SKIP_TSAN:-0}" != 1 ]; then
    if build build-tsan "$LOGDIR/build-tsan.log" -DKT_TSAN=ON -DCMAKE_BUILD_TYPE=Debug; then
        BUILDS+=(build-tsan)
    fi
fi

# The optional exporters are really optional: kt links without W&B and Weave.
step "build build-minimal (-DEX_WANDB=OFF -DEX_WEAVE=OFF, kt only)"
if timeout 900 cmake -S . -B build-minimal -DEX_WANDB=OFF -DEX_WEAVE=OFF -DKT_TESTS=OFF \
        >"$LOGDIR/build-minimal.log" 2>&1 &&
    timeout 900 cmake --build build-minimal -j"$JOBS" --target kt >>"$LOGDIR/build-minimal.log" 2>&1 &&
    build-minimal/kt --version >/dev/null; then
    pass_step
else
    tail -n 30 "$LOGDIR/build-minimal.log"
    fail_step "build-minimal (log: build-logs/build-minimal.log)"
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
# Only the build-tsan binaries read this; every report lands in one file per process.
TSAN_LOGS="$LOGDIR/tsan"
rm -rf "$TSAN_LOGS" && mkdir -p "$TSAN_LOGS"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 log_path=$TSAN_LOGS/report}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# --- unit tests (ctest -L unit) ---------------------------------------------------------
for b in "${BUILDS[@]+"${BUILDS[@]}"}"; do
    [ -f "$b/CTestTestfile.cmake" ] || continue
    step "unit tests in $b (ctest -L unit)"
    log="$LOGDIR/unit-$b.log"
    timeout 900 ctest --test-dir "$b" --output-on-failure -L unit -j"$JOBS" --timeout 120 \
        2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    # "100% tests passed, 0 tests failed out of 12"
    line="$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)"
    if [ -n "$line" ]; then
        f="$(sed -E 's/.*passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
        t="$(sed -E 's/.*failed out of ([0-9]+).*/\1/' <<<"$line")"
        PASSED=$((PASSED + t - f))
        FAILED=$((FAILED + f))
        [ "$f" -eq 0 ] || FAILURES+=("unit tests in $b ($f)")
        if [ "$f" -eq 0 ] && [ "$rc" -ne 0 ]; then fail_step "ctest in $b exited $rc"; fi
    elif grep -q 'No tests were found' "$log"; then
        echo "no unit tests in $b"
    else
        fail_step "ctest in $b exited $rc"
    fi
done

# --- e2e tests (node --test tests/e2e/) -------------------------------------------------
for b in "${BUILDS[@]+"${BUILDS[@]}"}"; do
    if [ ! -x "$b/kt" ]; then
        fail_step "e2e against $b/kt (not built)"
        continue
    fi
    step "e2e tests against $b/kt"
    tap="$LOGDIR/e2e-$b.tap"
    KT_BIN="$ROOT/$b/kt" timeout 1200 node --test --test-concurrency=1 \
        --test-timeout=300000 \
        --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=tap --test-reporter-destination="$tap" \
        tests/e2e/
    rc=$?
    # The TAP summary: "# pass N" / "# fail N" (cancelled tests count as failed).
    p="$(grep -E '^# pass [0-9]+' "$tap" | tail -n 1 | awk '{print $3}')"
    f="$(grep -E '^# fail [0-9]+' "$tap" | tail -n 1 | awk '{print $3}')"
    c="$(grep -E '^# cancelled [0-9]+' "$tap" | tail -n 1 | awk '{print $3}')"
    if [ -z "$p" ] || [ -z "$f" ]; then
        fail_step "e2e against $b/kt (runner exited $rc without a summary)"
        continue
    fi
    f=$((f + ${c:-0}))
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    [ "$f" -eq 0 ] || FAILURES+=("e2e against $b/kt ($f)")
    if [ "$f" -eq 0 ] && [ "$rc" -ne 0 ]; then fail_step "e2e against $b/kt exited $rc"; fi
done

# --- ThreadSanitizer reports -------------------------------------------------------------
if [[ " ${BUILDS[*]+"${BUILDS[*]}"} " == *" build-tsan "* ]]; then
    step "ThreadSanitizer reports (build-tsan)"
    reports=("$TSAN_LOGS"/report*)
    if [ -e "${reports[0]}" ]; then
        head -n 60 "${reports[@]}"
        fail_step "ThreadSanitizer reported ${#reports[@]} process(es) (logs: ${TSAN_LOGS#"$ROOT"/})"
    else
        echo "no reports"
        pass_step
    fi
fi

echo
if [ "${#FAILURES[@]}" -gt 0 ]; then
    echo "failures:"
    for x in "${FAILURES[@]}"; do echo "  - $x"; done
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
