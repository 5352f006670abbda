#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make test-cluster: the cluster tests (ctest -L cluster: tests/cluster/,
# issue #12) N times in a row, each run with its own seed, stopping at the
# first failing run:
#   scripts/test-cluster.sh N [BUILD_DIR]        (BUILD_DIR defaults to build)
# Run i uses CPNS_CLUSTER_SEED=BASE+i, BASE from $CPNS_CLUSTER_SEED or the
# clock; a failure prints the seed, so that
#   CPNS_CLUSTER_SEED=S ctest -L cluster --output-on-failure
# repeats that run's choices (which instance, when; not the machine's timing).
# The output of every run is appended to BUILD_DIR/test-cluster.log.
# Environment: JOBS=J (ctest -j, default 2), CTEST_ARGS (e.g. "-R kill9").
# A run in which every cluster test was skipped (cpns-server without
# --cluster) fails: N skipped runs are not N clean runs.
set -euo pipefail
n=${1:?usage: test-cluster.sh N [BUILD_DIR]}
build=${2:-build}
case $n in '' | *[!0-9]*) echo "test-cluster.sh: N must be a number, not '$n'" >&2; exit 2 ;; esac
[ -f "$build/CTestTestfile.cmake" ] || { echo "test-cluster.sh: $build is not a build directory" >&2; exit 2; }
build=$(cd "$build" && pwd)
jobs=${JOBS:-2}
log="$build/test-cluster.log"
base=${CPNS_CLUSTER_SEED:-$(( $(date +%s) % 1000000 * 1000 ))}
: >"$log"
start=$SECONDS
for ((i = 1; i <= n; i++)); do
  seed=$((base + i))
  echo "== run $i of $n: CPNS_CLUSTER_SEED=$seed" | tee -a "$log"
  # shellcheck disable=SC2086 # CTEST_ARGS is a list of arguments
  if ! out=$(cd "$build" && CPNS_CLUSTER_SEED=$seed ctest -L cluster --output-on-failure \
      -j "$jobs" ${CTEST_ARGS:-} 2>&1); then
    printf '%s\n' "$out" >>"$log"
    printf '%s\n' "$out" | grep -E '^\s+[0-9]+ - ' >&2 || true
    echo "test-cluster: run $i of $n FAILED with CPNS_CLUSTER_SEED=$seed (output: $log)" >&2
    echo "  repeat it: cd $build && CPNS_CLUSTER_SEED=$seed ctest -L cluster --output-on-failure" >&2
    exit 1
  fi
  printf '%s\n' "$out" >>"$log"
  if printf '%s\n' "$out" | grep -q 'No tests were found'; then
    echo "test-cluster: no cluster tests in $build (ctest -L cluster)" >&2
    exit 1
  fi
  if ! printf '%s\n' "$out" | grep -q 'Passed'; then
    echo "test-cluster: every cluster test was skipped (cpns-server without --cluster?)" >&2
    printf '%s\n' "$out" | grep -E 'Skipped|skipped' >&2 || true
    exit 1
  fi
  printf '%s\n' "$out" | grep -E 'tests passed' || true
done
echo "test-cluster: $n seeded runs clean (seeds $((base + 1))..$((base + n))), $((SECONDS - start)) s"
