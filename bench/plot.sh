#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Draws docs/performance-e2e.png from BENCH lines (bench/run.sh with BENCH_OUT):
# completion time against group size, the project and its transport-only baseline.
# When the results hold e2e_cluster rows (issue #12), also CLUSTER_OUT.png
# (default docs/performance-cluster.png): completion time of one group against
# the number of --cluster instances (2 cores: overhead, not speed-up).
#   bench/plot.sh RESULTS [OUT.png [CLUSTER_OUT.png]]
set -euo pipefail
results=$1
out=${2:-$(dirname "$0")/../docs/performance-e2e.png}
cluster_out=${3:-$(dirname "$0")/../docs/performance-cluster.png}
data=$(mktemp)
cdata=$(mktemp)
trap 'rm -f "$data" "$cdata"' EXIT
python3 - "$results" "$cdata" >"$data" <<'PY'
import json, sys
cl = open(sys.argv[2], "w")
for line in open(sys.argv[1]):
    if line.startswith("BENCH "):
        r = json.loads(line[6:])
        if r.get("name") == "e2e":
            print(r["members"], r["seconds"], r["baseline_seconds"])
        elif r.get("name") == "e2e_cluster":
            cl.write("%d %s %d\n" % (r["instances"], r["seconds"], r["members"]))
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
if [ -s "$cdata" ]; then
  members=$(awk 'NR == 1 { print $3 }' "$cdata")
  gnuplot <<GP
set terminal pngcairo size 800,500 font ",10"
set output "$cluster_out"
set title "cpns --cluster on PostgreSQL: one group of $members members (2 cores: overhead, not speed-up)"
set xlabel "cpns-server instances, all active"
set ylabel "seconds, sg create to complete"
set xrange [0.5:3.5]
set xtics 1
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set grid ytics
set boxwidth 0.5
set style fill solid 0.6
plot "$cdata" using 1:2 with boxes notitle, \
     "$cdata" using 1:2:(sprintf("%.2f s", \$2)) with labels offset 0,1 notitle
GP
  echo "$cluster_out"
fi
