#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make bench / make bench-smoke: every benchmark of docs/PERFORMANCE.md.
#
#   bench/run.sh BIN_DIR [full|smoke]
#
# Micro-benchmarks (crypto, codec), then the end-to-end run: a throw-away PKI,
# a real cpns-server (SQLite on disk, TLS 1.3) whose store is provisioned in
# bulk beforehand (cpns-loadgen provision: setup, not measured), cpns-loadgen
# playing G GWs with their PNEs for each group size, each size followed by its
# transport-only baseline; then a real cpns-gw with many PNE connections.
# Then the same e2e rows on PostgreSQL (a throw-away cluster, scripts/pg-tmp.sh,
# fsync on; one active instance), each with its ratio to SQLite's row of the
# same size in this run (e2e_pg), and the takeover: a standby instance
# started, the active one killed (SIGKILL) at 30 % of a distribution, timed
# from the kill to the group complete on the standby (takeover).
# Then the cluster rows (issue #12; when cpns-server accepts --cluster): the
# same PostgreSQL, a fresh database, 1, 2 and 3 instances all active, the
# simulated GWs spread over them (GW k on instance k mod S), one group of
# BENCH_CLUSTER_N members each, complete when PostgreSQL says so (e2e_cluster;
# on 2 cores more instances add overhead, they cannot speed a group up: the
# rows say so); then 3 instances, one killed -9 at 30 % (takeover_cluster:
# kill -> complete, and the delivery requests sent again per member).
# Prints a human summary on stderr and the BENCH {json} lines on stdout (also
# kept in $BENCH_OUT when set), and fails if a line is missing or does not parse.
# Environment: BENCH_SIZES, BENCH_REPEAT, BENCH_FANOUT, BENCH_GWS, BENCH_TMP,
# BENCH_OUT, BENCH_SERVER_WRAP (see below), BENCH_TAKEOVER (members of the
# takeover round), BENCH_LEASE_TTL (the instances' --lease-ttl in seconds),
# BENCH_KILL_AT (the fraction of its members answered at the kill, 0.3),
# BENCH_CLUSTER_N (members of the cluster rows), BENCH_CLUSTER=0 (skip them),
# BENCH_KEEP_FAILED=1 (a failed run leaves its work and PostgreSQL directories).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/bin}
mode=${2:-full}
# The takeover's lease TTL: cpns-server's default in the full run (what an
# operator gets), short in the smoke run. The standby takes over when the
# lease expired, between 2/3 TTL and TTL after the kill (renewed every TTL/3).
case "$mode" in
full)
  sizes=${BENCH_SIZES:-1000,10000,100000} micro_s=1 fanout_pnes=${BENCH_FANOUT:-10000}
  repeat=${BENCH_REPEAT:-3} takeover_n=${BENCH_TAKEOVER:-10000} lease_ttl=${BENCH_LEASE_TTL:-15}
  cluster_n=${BENCH_CLUSTER_N:-100000} cluster_rows=${BENCH_CLUSTER:-1} ;;
smoke)
  sizes=${BENCH_SIZES:-200,1000} micro_s=0.1 fanout_pnes=${BENCH_FANOUT:-300}
  repeat=${BENCH_REPEAT:-2} takeover_n=${BENCH_TAKEOVER:-1000} lease_ttl=${BENCH_LEASE_TTL:-2}
  cluster_n=${BENCH_CLUSTER_N:-1000} cluster_rows=${BENCH_CLUSTER:-1} ;;
*) echo "usage: $0 BIN_DIR [full|smoke]" >&2; exit 2 ;;
esac
max=0
for n in ${sizes//,/ }; do [ "$n" -gt "$max" ] && max=$n; done
pnes=$max
[ "$fanout_pnes" -gt "$pnes" ] && pnes=$fanout_pnes
[ "$takeover_n" -gt "$pnes" ] && pnes=$takeover_n
# the cluster rows run when cpns-server has --cluster (issue #12) unless BENCH_CLUSTER=0
# (the help is read whole first: `--help | grep -q` under pipefail fails by
# SIGPIPE when grep exits before the help's second write)
cluster=0
server_help=$("$bin/cpns-server" --help 2>&1)
# The smoke run left them out while a cluster instance claimed each registering
# PNE in its own PostgreSQL transaction (1,000 registrations took up to more
# than 600 s on a contended disk); the registrations of a loop turn now share
# one claim transaction (docs/PERFORMANCE.md), and the smoke run has them again.
if [ "$cluster_rows" != 0 ] && [[ $server_help == *--cluster* ]]; then
  cluster=1
fi
cluster_gws=$(( (cluster_n + 4999) / 5000 ))
[ "$cluster_gws" -lt 6 ] && cluster_gws=6
# the takeover's simulated GWs: 5,000 PNEs each, as below
takeover_gws=$(( (takeover_n + 4999) / 5000 ))
[ "$takeover_gws" -lt 2 ] && takeover_gws=2
# PNEs per simulated GW: the server admits bursts of 10,000 registrations per GW connection
gws=${BENCH_GWS:-$(( (max + 4999) / 5000 ))}
[ "$gws" -lt 2 ] && gws=2

for p in cpns-server cpns-gw cpns-loadgen cpns-bench-crypto; do
  [ -x "$bin/$p" ] || { echo "bench: $bin/$p is missing (run make first)" >&2; exit 1; }
done

work=$(mktemp -d "${BENCH_TMP:-/tmp}/cpns-bench.XXXXXX")
# PostgreSQL runs as nobody when we are root: its directory must be reachable
# by nobody, so it is not under $work (0700, it holds the keys).
pgdir=$(mktemp -d "${BENCH_TMP:-/tmp}/cpns-bench-pg.XXXXXX")
chmod 0755 "$pgdir"
pg_started=0
pids=()
results=$work/results
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    echo "bench FAILED (exit $rc); the last log lines:" >&2
    for log in "$work"/*.log "$pgdir/log"; do
      [ -f "$log" ] && { echo "--- $(basename "$log")" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  if [ $pg_started = 1 ]; then
    "$top/scripts/pg-tmp.sh" stop "$pgdir" >/dev/null 2>&1 || true
  fi
  if [ $rc -ne 0 ] && [ "${BENCH_KEEP_FAILED:-0}" = 1 ]; then
    echo "bench: kept $work and $pgdir (BENCH_KEEP_FAILED=1)" >&2
    return
  fi
  rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
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

n_gw_certs=$gws
[ "$takeover_gws" -gt "$n_gw_certs" ] && n_gw_certs=$takeover_gws
[ $cluster = 1 ] && [ "$cluster_gws" -gt "$n_gw_certs" ] && n_gw_certs=$cluster_gws
say "setup: PKI for $n_gw_certs simulated GWs, $pnes PNEs provisioned in bulk"
gw_ids=()
for ((k = 0; k < n_gw_certs; k++)); do gw_ids+=("$(printf 'lg-gw-%03d' "$k")"); done
"$top/scripts/pki.sh" "$work/pki" "${gw_ids[@]}" lg-fanout
"$bin/cpns-loadgen" provision --db "$work/server.db" --master-key "$work/master.key" \
  --pnes "$pnes" 2>>"$work/loadgen.log"

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server LOG [WAIT_FOR] -- OPTIONS...: a cpns-server on two free ports
# (server_port, admin_port, server_pid). WAIT_FOR: "admin" (its admin API
# answers), "gws" (it listens for GWs too: an active instance) or a text its
# log must show. Up to three tries: a port can still be taken between the
# check and the bind.
start_server() {
  local log=$1 want=$2 try ok
  shift 3
  for try in 1 2 3; do
    server_port=$(free_port)
    admin_port=$(free_port)
    # BENCH_SERVER_WRAP: a command prefix for the server, e.g. valgrind --tool=callgrind (profiling)
    ${BENCH_SERVER_WRAP:-} "$bin/cpns-server" --listen "127.0.0.1:$server_port" \
      --admin "127.0.0.1:$admin_port" --master-key "$work/master.key" --delivery-timeout 60 \
      --tls-cert "$work/pki/server.crt" --tls-key "$work/pki/server.key" --tls-ca "$work/pki/ca.crt" \
      --log-level info "$@" 2>"$log" &
    server_pid=$!
    pids+=("$server_pid")
    ok=0
    for _ in $(seq 600); do
      case $want in
      admin) up "$admin_port" && { ok=1; break; } ;;
      gws) up "$admin_port" && up "$server_port" && { ok=1; break; } ;;
      *) grep -q "$want" "$log" && { ok=1; break; } ;;
      esac
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    [ $ok = 1 ] && return 0
    echo "bench: cpns-server did not start (try $try): $(tail -n 1 "$log")" >&2
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  done
  exit 1
}

start_server "$work/server.log" admin -- --db "$work/server.db"

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

# The SQLite server and the GW are done: their CPU and memory go back to the host.
kill "$server_pid" "$gw_pid"
wait "$server_pid" "$gw_pid" 2>/dev/null || true
pids=()

# PostgreSQL: fsync and synchronous_commit on (the default), as in production;
# PG_FAST (fsync off) is never used for these rows.
say "PostgreSQL: a throw-away cluster (scripts/pg-tmp.sh, fsync on), $pnes PNEs provisioned in bulk"
uri=$(PG_FAST=0 "$top/scripts/pg-tmp.sh" start "$pgdir")
pg_started=1
"$bin/cpns-loadgen" provision --db "$uri" --master-key "$work/master.key" \
  --pnes "$pnes" 2>>"$work/loadgen.log"
grep -E '^provisioned' "$work/loadgen.log" >&2 || true

# e2e_pg: each e2e line renamed, with SQLite's seconds for the same size in
# this run and pg_vs_sqlite = seconds / sqlite_seconds (> 1: PostgreSQL slower).
pg_rows() {
  python3 -c '
import json, sys
sqlite = {}
for line in open(sys.argv[1]):
    if line.startswith("BENCH "):
        r = json.loads(line[6:])
        if r["name"] == "e2e":
            sqlite[r["members"]] = r
for line in sys.stdin:
    if not line.startswith("BENCH "):
        print(line, end="")
        continue
    r = json.loads(line[6:])
    out = {"name": "e2e_pg", "store": "postgresql", "fsync": True}
    out.update((k, v) for k, v in r.items() if k != "name")
    s = sqlite.get(r["members"])
    if s:
        out["sqlite_seconds"] = s["seconds"]
        out["pg_vs_sqlite"] = round(r["seconds"] / s["seconds"], 3)
    print("BENCH " + json.dumps(out, separators=(",", ":")), flush=True)
' "$results"
}

say "e2e_pg: the same groups on one active PostgreSQL instance (--instance-id bench-a)"
start_server "$work/pg-a.log" gws -- --db "$uri" --instance-id bench-a --lease-ttl "$lease_ttl"
a_pid=$server_pid a_port=$server_port a_admin=$admin_port
"$bin/cpns-loadgen" e2e --server "127.0.0.1:$a_port" --admin "127.0.0.1:$a_admin" \
  --pki "$work/pki" --gws "$gws" --pnes "$max" --sizes "$sizes" --repeat "$repeat" --server-pid "$a_pid" \
  --server-log "$work/pg-a.log" --capture-dir "$work" 2>>"$work/loadgen-pg.log" | pg_rows | emit
grep -E '^(registered|[0-9]+ simulated)' "$work/loadgen-pg.log" >&2 || true

# takeover: the times in the log of the instance that took over (wall clock,
# ms) give what the kill-to-complete time is made of: waiting for the lease,
# then loading, then the rest of the distribution.
takeover_row() {
  python3 -c '
import json, sys, datetime
def t(line):
    return datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
def marks():
    found = {}
    for line in open(sys.argv[1]):
        for key, text in (("lease", "holds the lease (epoch"), ("listen", "listening for GWs"),
                          ("complete", "key distribution complete")):
            if text in line and key not in found:
                found[key] = t(line)
    return found
for line in sys.stdin:
    if not line.startswith("BENCH "):
        print(line, end="")
        continue
    r = json.loads(line[6:])
    m = marks()  # now: the round is over
    out = {"name": "takeover", "store": "postgresql", "fsync": True, "lease_ttl_s": int(sys.argv[2])}
    out.update((k, v) for k, v in r.items() if k != "name")
    if len(m) == 3:
        out["lease_to_listen_s"] = round(m["listen"] - m["lease"], 3)
        out["lease_to_complete_s"] = round(m["complete"] - m["lease"], 3)
    print("BENCH " + json.dumps(out, separators=(",", ":")), flush=True)
' "$1" "$lease_ttl"
}

say "takeover: a standby (bench-b), the active one killed -9 at ${BENCH_KILL_AT:-0.3} of $takeover_n members answered (lease TTL $lease_ttl s)"
start_server "$work/pg-b.log" "is a standby" -- --db "$uri" --instance-id bench-b --lease-ttl "$lease_ttl"
b_port=$server_port
# The shell's "Killed" notice for the instance cpns-loadgen killed is not an error.
{
  "$bin/cpns-loadgen" e2e --server "127.0.0.1:$a_port,127.0.0.1:$b_port" --admin "127.0.0.1:$a_admin" \
    --pki "$work/pki" --gws "$takeover_gws" --pnes "$takeover_n" --sizes "$takeover_n" \
    --server-log "$work/pg-a.log" --kill-pid "$a_pid" --kill-at "${BENCH_KILL_AT:-0.3}" --takeover-log "$work/pg-b.log" \
    2>>"$work/loadgen-takeover.log" | takeover_row "$work/pg-b.log" | emit
  wait "$a_pid" || true
} 2>"$work/takeover.err"
grep -v ' Killed ' "$work/takeover.err" >&2 || true
grep -E '^takeover' "$work/loadgen-takeover.log" >&2 || true

# The cluster rows: a fresh database on the same PostgreSQL, provisioned once.
if [ $cluster = 1 ]; then
  kill "$a_pid" 2>/dev/null || true
  kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  pids=()
  "$top/scripts/pg-tmp.sh" psql "$pgdir" -q -c 'CREATE DATABASE cluster' >/dev/null
  curi=${uri/\/cpns\?//cluster?}
  say "cluster: database 'cluster', $cluster_n PNEs provisioned in bulk"
  "$bin/cpns-loadgen" provision --db "$curi" --master-key "$work/master.key" \
    --pnes "$cluster_n" 2>>"$work/loadgen-cluster.log"

  # start_cluster S TAG: S instances --cluster (ports in c_ports, pids in c_pids, admins in c_admins)
  start_cluster() {
    local s=$1 tag=$2 i
    c_ports=() c_pids=() c_admins=() c_list=
    for ((i = 0; i < s; i++)); do
      start_server "$work/cluster-$tag-$i.log" gws -- --db "$curi" --instance-id "$tag-$i" --cluster
      c_ports+=("$server_port") c_pids+=("$server_pid") c_admins+=("$admin_port")
      c_list=${c_list:+$c_list,}127.0.0.1:$server_port
    done
  }
  stop_cluster() {
    kill "${c_pids[@]}" 2>/dev/null || true
    wait "${c_pids[@]}" 2>/dev/null || true
    pids=()
  }
  cluster_row() {
    python3 -c '
import json, sys
for line in sys.stdin:
    if not line.startswith("BENCH "):
        print(line, end="")
        continue
    r = json.loads(line[6:])
    out = {"name": sys.argv[1], "store": "postgresql", "fsync": True, "instances": int(sys.argv[2])}
    out.update((k, v) for k, v in r.items() if k not in ("name", "server_rss_mb", "server_cpu_s", "baseline_seconds", "baseline_median", "baseline_ratio"))
    out["note"] = "2 cores shared by every instance, PostgreSQL and the load generator: more instances add overhead, not speed"
    print("BENCH " + json.dumps(out, separators=(",", ":")), flush=True)
' "$@"
  }
  for s in 1 2 3; do
    say "e2e_cluster: $s instance(s) --cluster, one group of $cluster_n members over $cluster_gws GWs (2 cores: overhead, not speed-up)"
    start_cluster "$s" "c$s"
    "$bin/cpns-loadgen" e2e --server "$c_list" --cluster 1 --db "$curi" --admin "127.0.0.1:${c_admins[0]}" \
      --pki "$work/pki" --gws "$cluster_gws" --pnes "$cluster_n" --sizes "$cluster_n" --repeat 1 \
      --capture-dir "$work" 2>>"$work/loadgen-cluster.log" | cluster_row e2e_cluster "$s" | emit
    grep -E '^registered' "$work/loadgen-cluster.log" | tail -n 1 >&2 || true
    stop_cluster
  done

  say "takeover_cluster: 3 instances --cluster, one killed -9 at ${BENCH_KILL_AT:-0.3} of $cluster_n members answered"
  start_cluster 3 ct
  {
    "$bin/cpns-loadgen" e2e --server "$c_list" --cluster 1 --db "$curi" --admin "127.0.0.1:${c_admins[0]}" \
      --pki "$work/pki" --gws "$cluster_gws" --pnes "$cluster_n" --sizes "$cluster_n" \
      --kill-pid "${c_pids[1]}" --kill-at "${BENCH_KILL_AT:-0.3}" \
      2>>"$work/loadgen-cluster.log" | cluster_row takeover_cluster 3 | emit
    wait "${c_pids[1]}" || true
  } 2>"$work/takeover-cluster.err"
  grep -v ' Killed ' "$work/takeover-cluster.err" >&2 || true
  grep -E '^takeover' "$work/loadgen-cluster.log" >&2 || true
  stop_cluster
else
  say "cluster rows skipped: $([ "$cluster_rows" = 0 ] && echo "BENCH_CLUSTER=0" || echo "cpns-server has no --cluster (issue #12)")"
fi

# Every expected line is there and parses as JSON.
want=$(( 3 + 2 * $(tr ',' '\n' <<<"$sizes" | wc -l) + 1 + 4 * cluster ))
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
