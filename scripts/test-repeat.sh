#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the test suite N times while other processes keep every core busy, to
# catch tests that depend on timing (issue #10, section 2):
#   scripts/test-repeat.sh N [BUILD_DIR]        (BUILD_DIR defaults to build)
# Stops at the first failing run and prints which tests failed (their output
# is in BUILD_DIR/test-repeat.log). The busy loops are killed on any exit.
# Environment:
#   BUSY=K         busy loops to run (default: one per core, nproc)
#   JOBS=J         ctest -j (default: nproc)
#   CTEST_ARGS=..  more ctest arguments, e.g. CTEST_ARGS="-R kill9" for one test
set -euo pipefail
n=${1:?usage: test-repeat.sh N [BUILD_DIR]}
build=${2:-build}
case $n in '' | *[!0-9]*) echo "test-repeat.sh: N must be a number, not '$n'" >&2; exit 2 ;; esac
[ -f "$build/CTestTestfile.cmake" ] || { echo "test-repeat.sh: $build is not a build directory" >&2; exit 2; }
build=$(cd "$build" && pwd)
cores=$(nproc 2>/dev/null || echo 2)
busy=${BUSY:-$cores}
jobs=${JOBS:-$cores}
log="$build/test-repeat.log"

pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The contention: plain shell loops, not niced, competing with the tests for every core.
for ((i = 0; i < busy; i++)); do
  (while :; do :; done) &
  pids+=($!)
done
echo "test-repeat: $n runs of ctest -j $jobs in $build, $busy busy loops (pids ${pids[*]})"

start=$SECONDS
for ((run = 1; run <= n; run++)); do
  t0=$SECONDS
  # shellcheck disable=SC2086 # CTEST_ARGS is a list of words
  if (cd "$build" && ctest -j "$jobs" --output-on-failure ${CTEST_ARGS:-}) >"$log" 2>&1; then
    echo "run $run/$n: ok ($((SECONDS - t0)) s)"
    continue
  fi
  echo "run $run/$n: FAILED ($((SECONDS - t0)) s); the failed tests:"
  failed="$build/Testing/Temporary/LastTestsFailed.log"
  if [ -s "$failed" ]; then
    sed 's/^[0-9]*:/  /' "$failed"
  else
    tail -n 20 "$log"
  fi
  echo "their output: $log"
  exit 1
done
echo "test-repeat: $n runs passed in $((SECONDS - start)) s"
