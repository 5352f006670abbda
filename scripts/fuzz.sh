#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every libFuzzer harness built in BUILD/fuzz/ for SECONDS each, starting
# from a copy of its checked-in seed corpus (fuzz/corpus/<name>/), so that
# what the fuzzer finds stays in BUILD/, not in the repository.
#   scripts/fuzz.sh BUILD SECONDS [NAME...]
# Exits 1 if any harness reports a crash, a leak or a timeout; the input is
# left in BUILD/fuzz-findings/<name>/ (add it to fuzz/corpus/<name>/ with the fix).
set -euo pipefail
build=${1:?usage: fuzz.sh BUILD SECONDS [NAME...]}
seconds=${2:?usage: fuzz.sh BUILD SECONDS [NAME...]}
shift 2
top=$(cd "$(dirname "$0")/.." && pwd)

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for bin in "$build"/fuzz/fuzz_*; do
    [ -x "$bin" ] && names+=("$(basename "$bin" | sed 's/^fuzz_//')")
  done
fi
[ ${#names[@]} -gt 0 ] || { echo "fuzz.sh: no harness in $build/fuzz" >&2; exit 1; }

failed=0
for name in "${names[@]}"; do
  bin="$build/fuzz/fuzz_$name"
  work="$build/fuzz-corpus/$name"
  findings="$build/fuzz-findings/$name"
  mkdir -p "$work" "$findings"
  cp -n "$top/fuzz/corpus/$name"/* "$work"/ 2>/dev/null || true
  echo "== fuzz_$name for ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$findings/" -print_final_stats=1 "$work" \
       >"$build/fuzz-$name.log" 2>&1; then
    echo "fuzz_$name FOUND A PROBLEM: see $build/fuzz-$name.log and $findings/" >&2
    tail -n 30 "$build/fuzz-$name.log" >&2
    failed=1
  else
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)|cov:" "$build/fuzz-$name.log" | tail -n 3
  fi
done
exit $failed
