#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Draws docs/performance-e2e.png from BENCH lines (bench/run.sh with BENCH_OUT):
# completion time against group size, the project and its transport-only baseline.
#   bench/plot.sh RESULTS [OUT.png]
set -euo pipefail
results=$1
out=${2:-$(dirname "$0")/../docs/performance-e2e.png}
data=$(mktemp)
trap 'rm -f "$data"' EXIT
python3 - "$results" >"$data" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("BENCH "):
        r = json.loads(line[6:])
        if r.get("name") == "e2e":
            print(r["members"], r["seconds"], r["baseline_seconds"])
PY
gnuplot <<GP
set terminal pngcairo size 800,500 font ",10"
set output "$out"
set title "cpns: time from sg create to complete (real cpns-server, SQLite, TLS 1.3; 2 cores)"
set xlabel "group size (members)"
set ylabel "seconds"
set logscale xy
set grid
set key bottom right
plot "$data" using 1:2 with linespoints lw 2 title "cpns-server + loadgen PNEs", \
     "$data" using 1:3 with linespoints lw 2 title "baseline (same frames, no parsing/crypto/storage)", \
     5 with lines dt 2 title "target 5 s"
GP
echo "$out"
