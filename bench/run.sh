#!/usr/bin/env bash
# make bench / make bench-smoke: every benchmark of docs/PERFORMANCE.md.
#
#   bench/run.sh BIN_DIR [full|smoke]
#
# Micro-benchmarks (crypto, codec), then the end-to-end run: a throw-away PKI,
# a real cpns-server (SQLite on disk, TLS 1.3) whose store is provisioned in
# bulk beforehand (cpns-loadgen provision: setup, not measured), cpns-loadgen
# playing G GWs with their PNEs for each group size, each size followed by its
# transport-only baseline; then a real cpns-gw with many PNE connections.
# Prints a human summary on stderr and the BENCH {json} lines on stdout (also
# kept in $BENCH_OUT when set), and fails if a line is missing or does not parse.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/bin}
mode=${2:-full}
case "$mode" in
full)
  sizes=${BENCH_SIZES:-1000,10000,100000} micro_s=1 fanout_pnes=${BENCH_FANOUT:-10000}
  repeat=${BENCH_REPEAT:-3} ;;
smoke)
  sizes=${BENCH_SIZES:-200,1000} micro_s=0.1 fanout_pnes=${BENCH_FANOUT:-300}
  repeat=${BENCH_REPEAT:-2} ;;
*) echo "usage: $0 BIN_DIR [full|smoke]" >&2; exit 2 ;;
esac
max=0
for n in ${sizes//,/ }; do [ "$n" -gt "$max" ] && max=$n; done
pnes=$max
[ "$fanout_pnes" -gt "$pnes" ] && pnes=$fanout_pnes
# PNEs per simulated GW: the server admits bursts of 10,000 registrations per GW connection
gws=${BENCH_GWS:-$(( (max + 4999) / 5000 ))}
[ "$gws" -lt 2 ] && gws=2

for p in cpns-server cpns-gw cpns-loadgen cpns-bench-crypto; do
  [ -x "$bin/$p" ] || { echo "bench: $bin/$p is missing (run make first)" >&2; exit 1; }
done

work=$(mktemp -d "${BENCH_TMP:-/tmp}/cpns-bench.XXXXXX")
pids=()
results=$work/results
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    echo "bench FAILED (exit $rc); the last log lines:" >&2
    for log in "$work"/*.log; do
      [ -f "$log" ] && { echo "--- $(basename "$log")" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '== %s\n' "$*" >&2; }
emit() { tee -a "$results"; }

# Below the ephemeral range (ip_local_port_range), where no outgoing connection
# can be holding it as its local port: a random port up there was sometimes
# taken by one (bind: Address already in use).
free_port() {
  local port low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 12000 ] || low=32768
  while :; do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "micro-benchmarks (${micro_s} s each)"
"$bin/cpns-bench-crypto" "$micro_s" | emit
if [ -x "$bin/cpns-bench-codec" ]; then
  "$bin/cpns-bench-codec" "$micro_s" | emit
else
  echo "bench: cpns-bench-codec was not built (libxml2-dev missing?)" >&2
  exit 1
fi

say "setup: PKI for $gws simulated GWs, $pnes PNEs provisioned in bulk"
gw_ids=()
for ((k = 0; k < gws; k++)); do gw_ids+=("$(printf 'lg-gw-%03d' "$k")"); done
"$top/scripts/pki.sh" "$work/pki" "${gw_ids[@]}" lg-fanout
"$bin/cpns-loadgen" provision --db "$work/server.db" --master-key "$work/master.key" \
  --pnes "$pnes" 2>>"$work/loadgen.log"

# Up to three tries: a port can still be taken between the check and the bind.
for try in 1 2 3; do
  server_port=$(free_port)
  admin_port=$(free_port)
  # BENCH_SERVER_WRAP: a command prefix for the server, e.g. valgrind --tool=callgrind (profiling)
  ${BENCH_SERVER_WRAP:-} "$bin/cpns-server" --listen "127.0.0.1:$server_port" --admin "127.0.0.1:$admin_port" \
    --db "$work/server.db" --master-key "$work/master.key" --delivery-timeout 60 \
    --tls-cert "$work/pki/server.crt" --tls-key "$work/pki/server.key" --tls-ca "$work/pki/ca.crt" \
    --log-level info 2>"$work/server.log" &
  server_pid=$!
  pids+=("$server_pid")
  up=0
  for _ in $(seq 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$admin_port") 2>/dev/null; then up=1; break; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  [ $up = 1 ] && break
  echo "bench: cpns-server did not start (try $try): $(tail -n 1 "$work/server.log")" >&2
  wait "$server_pid" 2>/dev/null || true
done
[ $up = 1 ] || exit 1

say "e2e: groups of $sizes members over $gws TLS GW connections, $repeat runs each (and the baseline of each run)"
"$bin/cpns-loadgen" e2e --server "127.0.0.1:$server_port" --admin "127.0.0.1:$admin_port" \
  --pki "$work/pki" --gws "$gws" --pnes "$max" --sizes "$sizes" --repeat "$repeat" --server-pid "$server_pid" \
  --server-log "$work/server.log" --capture-dir "$work" 2>>"$work/loadgen.log" | emit
grep -E '^(provisioned|registered|[0-9]+ simulated)' "$work/loadgen.log" >&2 || true

say "gw_fanout: $fanout_pnes PNE connections to a real cpns-gw"
gw_port=$(free_port)
# descriptors: raised to the hard limit (root may lack CAP_SYS_RESOURCE in a container)
(ulimit -n "$(ulimit -Hn)" && exec "$bin/cpns-gw" --id lg-fanout --pnid lg-pn-fanout \
  --server "127.0.0.1:$server_port" --listen "127.0.0.1:$gw_port" \
  --tls-cert "$work/pki/lg-fanout.crt" --tls-key "$work/pki/lg-fanout.key" \
  --tls-ca "$work/pki/ca.crt" --log-level warn) 2>"$work/gw.log" &
gw_pid=$!
pids+=("$gw_pid")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$gw_port") 2>/dev/null && break
  sleep 0.1
done
sleep 0.5 # its TLS link to the server
"$bin/cpns-loadgen" fanout --gw "127.0.0.1:$gw_port" --admin "127.0.0.1:$admin_port" \
  --pnes "$fanout_pnes" --gw-pid "$gw_pid" --server-log "$work/server.log" 2>>"$work/loadgen.log" | emit
grep -E '^[0-9]+ PNEs attached' "$work/loadgen.log" >&2 || true

# Every expected line is there and parses as JSON.
want=$(( 3 + $(tr ',' '\n' <<<"$sizes" | wc -l) ))
got=0
while read -r line; do
  json=${line#BENCH }
  python3 -c 'import json,sys; json.loads(sys.argv[1])' "$json" || {
    echo "bench: not JSON: $line" >&2
    exit 1
  }
  got=$((got + 1))
done < <(grep '^BENCH ' "$results")
[ "$got" -eq "$want" ] || { echo "bench: $got BENCH lines, expected $want" >&2; exit 1; }
[ -n "${BENCH_OUT:-}" ] && cp "$results" "$BENCH_OUT"
say "done: $got results; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
