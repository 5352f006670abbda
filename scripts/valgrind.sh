#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every unit test (tests/unit/test_*.c) and end-to-end test (tests/e2e/)
# of an uninstrumented build under valgrind memcheck, JOBS at a time:
#   scripts/valgrind.sh BUILD [JOBS]
# A test fails on any memcheck error or any definite or indirect leak
# (still-reachable blocks, which OpenSSL keeps by design, are not errors).
# Logs: BUILD/valgrind/<test>.log (valgrind) and <test>.out (the test's output).
# The corpus replays, the program and the integration tests run under ASan in
# `make test-sanitize` instead: valgrind would make their timeouts meaningless.
set -euo pipefail
build=${1:?usage: valgrind.sh BUILD [JOBS]}
jobs=${2:-2}
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
export CPNS_SOURCE_DIR="$top" CPNS_BINARY_DIR="$build"
out="$build/valgrind"
mkdir -p "$out"
rm -f "$out"/*.log "$out"/*.out "$out"/*.fail

run_one() {
  local name=$1
  if valgrind --quiet --error-exitcode=99 --leak-check=full \
       --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
       --num-callers=30 --log-file="$out/$name.log" "$build/tests/$name" \
       >"$out/$name.out" 2>&1; then
    echo "ok    $name"
  else
    echo "FAIL  $name (exit $?): see $out/$name.log and $out/$name.out"
    touch "$out/$name.fail"
  fi
}
export -f run_one
export out build

names=()
for src in "$top"/tests/unit/test_*.c "$top"/tests/e2e/test_*.c; do
  names+=("$(basename "$src" .c)")
done
start=$SECONDS
printf '%s\n' "${names[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
failed=$(find "$out" -name '*.fail' | wc -l)
echo "valgrind: ${#names[@]} tests, $failed failed, $((SECONDS - start)) s"
if [ "$failed" -ne 0 ]; then
  for f in "$out"/*.fail; do
    name=$(basename "$f" .fail)
    echo "===== $name" >&2
    tail -n 40 "$out/$name.log" >&2
  done
  exit 1
fi
