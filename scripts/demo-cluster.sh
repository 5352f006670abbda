#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo-cluster: three cpns-server instances, every one active, on one
# PostgreSQL (issue #12, SCALEOUT.md stage 2); one of them killed in the
# middle of a distribution, the other two finish it.
#
# A throw-away PostgreSQL (scripts/pg-tmp.sh, fsync on), a throw-away PKI, one
# master key file shared by cpns-a, cpns-b and cpns-c, each started with
# --cluster. Three PN GWs are given every instance's address, each list
# starting at another instance, so each instance serves one GW. 600 PNEs
# (cpns-loadgen fanout: real PNE engines, one TCP connection each to their GW)
# register; they answer at most 50 delivery requests a second, slow devices,
# so that the distribution lasts about twelve seconds. Service Group sg-city
# (all 600) is created through cpns-a; at about 30 % delivered cpns-b is
# killed with SIGKILL. Its GW moves to the next instance of its list; that
# registration takes over cpns-b's open members (fencing by epoch) and the
# two remaining instances finish the group with the key of the 201.
# Checked at the end (exit 0 only when all hold): every member delivered at
# KeyVersion 1 (PostgreSQL and both instances' SG view), one sg_key row, each
# PNE stored exactly one key and it is the 201's, no Return 7.
# Everything runs in temporary directories, stopped and removed on every exit.
#   scripts/demo-cluster.sh [BIN_DIR]        (default: build/bin)
# DEMO_KEEP=DIR copies every log into DIR before the cleanup.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/bin}
for p in cpns-server cpns-gw cpnsctl cpns-loadgen; do
  [ -x "$bin/$p" ] || { echo "demo-cluster: $bin/$p is missing (run make first)" >&2; exit 1; }
done
# the help is read whole first: `--help | grep -q` under pipefail fails when grep
# exits before the second write of the help text (SIGPIPE)
help=$("$bin/cpns-server" --help 2>&1)
if [[ $help != *--cluster* ]]; then
  echo "demo-cluster: $bin/cpns-server does not accept --cluster (issue #12 is not built yet)" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "demo-cluster: python3 is needed to read the report" >&2; exit 1; }

members=600
rate=50

work=$(mktemp -d /tmp/cpns-demo-cluster.XXXXXX)
# PostgreSQL runs as nobody when we are root: its directory must be reachable
# by nobody, so it is not under $work (0700, it holds the keys).
pgdir=$(mktemp -d /tmp/cpns-demo-cluster-pg.XXXXXX)
chmod 0755 "$pgdir"
pg_started=0
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    echo "demo-cluster FAILED (exit $rc); the last log lines:" >&2
    for log in "$work"/*.log "$pgdir/log"; do
      [ -f "$log" ] && { echo "--- $(basename "$log")" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  if [ $pg_started = 1 ]; then
    "$top/scripts/pg-tmp.sh" stop "$pgdir" >/dev/null 2>&1 || true
  fi
  [ -n "${DEMO_KEEP:-}" ] && cp "$work"/*.log "$work"/report.json "$DEMO_KEEP"/ 2>/dev/null
  rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
fail() { echo "demo-cluster: $*" >&2; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# A free loopback port below the ephemeral range (see demo-ha.sh).
free_port() {
  local port low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 12000 ] || low=32768
  while :; do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

# GET of an admin API path: the body, or nothing when the server does not answer.
http_get() {
  local port=$1 path=$2 resp
  resp=$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 0
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$path" "$port" >&3
    timeout 5 cat <&3
  ) 2>/dev/null || true
  printf '%s\n' "${resp#*$'\r\n\r\n'}" | tr -d '\r'
}
psql_q() { "$top/scripts/pg-tmp.sh" psql "$pgdir" -At -c "$1"; }
delivered() { psql_q "SELECT count(*) FROM member WHERE sgid = 'sg-city' AND state = 2" 2>/dev/null || echo 0; }
# The delivered counters of the instances' /metrics, summed: cheap enough to poll
# every few ms (a psql run takes a few hundred ms on a busy machine).
delivered_fast() {
  local n args=()
  for n in "$@"; do args+=("${admin_port[$n]}"); done
  python3 - "${args[@]}" <<'PY'
import sys, urllib.request
total = 0
for port in sys.argv[1:]:
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("cpns_deliveries_delivered_total "):
                    total += int(float(line.split()[1]))
    except OSError:
        pass
print(total)
PY
}

ports=()
while [ ${#ports[@]} -lt 9 ]; do
  p=$(free_port)
  case " ${ports[*]} " in *" $p "*) ;; *) ports+=("$p") ;; esac
done
names=(cpns-a cpns-b cpns-c)
declare -A gw_port admin_port
for i in 0 1 2; do
  gw_port[${names[$i]}]=${ports[$i]}
  admin_port[${names[$i]}]=${ports[$((i + 3))]}
done
pngw_ports=("${ports[6]}" "${ports[7]}" "${ports[8]}")

step "A throw-away PostgreSQL: its own cluster in $pgdir, on a Unix socket only (fsync on)"
uri=$("$top/scripts/pg-tmp.sh" start "$pgdir")
pg_started=1
echo "database: $uri"

step "A throw-away PKI (one server certificate for every instance) and the shared master key"
"$top/scripts/pki.sh" "$work/pki" gw-north gw-centre gw-south >/dev/null
(umask 077 && head -c 32 /dev/urandom | base64 >"$work/master.key")
stat -c '%a %n' "$work/master.key"

step "$members PNEs provisioned in bulk (cpns-loadgen provision: the EUKs derive from a seed)"
"$bin/cpns-loadgen" provision --db "$uri" --master-key "$work/master.key" --pnes "$members" \
  --seed demo-cluster 2>&1 | sed 's/^/  /'

declare -A pid_of
step "Three cpns-server instances, all active (--cluster), on the same database and master key"
for n in "${names[@]}"; do
  "$bin/cpns-server" --db "$uri" --instance-id "$n" --cluster \
    --listen "127.0.0.1:${gw_port[$n]}" --admin "127.0.0.1:${admin_port[$n]}" \
    --master-key "$work/master.key" --tls-cert "$work/pki/server.crt" \
    --tls-key "$work/pki/server.key" --tls-ca "$work/pki/ca.crt" 2>>"$work/$n.log" &
  pids+=($!)
  pid_of[$n]=$!
done
for n in "${names[@]}"; do
  ok=0
  for _ in $(seq 300); do
    http_get "${admin_port[$n]}" /healthz | grep -q '"status": *"ok"' && { ok=1; break; }
    kill -0 "${pid_of[$n]}" 2>/dev/null || break
    sleep 0.1
  done
  [ $ok = 1 ] || fail "$n did not come up"
  echo "$n: GWs on :${gw_port[$n]}, admin API on :${admin_port[$n]}: $(http_get "${admin_port[$n]}" /healthz)"
done

step "Three PN GWs, each given every instance's address, each list starting at another one"
gws=(gw-north gw-centre gw-south)
gw_list=
for k in 0 1 2; do
  list=
  for j in 0 1 2; do
    n=${names[$(((k + j) % 3))]}
    list=${list:+$list,}127.0.0.1:${gw_port[$n]}
  done
  "$bin/cpns-gw" --id "${gws[$k]}" --pnid "pn-${gws[$k]#gw-}" --server "$list" \
    --listen "127.0.0.1:${pngw_ports[$k]}" --tls-cert "$work/pki/${gws[$k]}.crt" \
    --tls-key "$work/pki/${gws[$k]}.key" --tls-ca "$work/pki/ca.crt" 2>"$work/${gws[$k]}.log" &
  pids+=($!)
  gw_list=${gw_list:+$gw_list,}127.0.0.1:${pngw_ports[$k]}
  echo "${gws[$k]} --server $list"
done
for k in 0 1 2; do
  n=${names[$k]}
  for _ in $(seq 200); do
    grep -q "registered with the server at 127.0.0.1:${gw_port[$n]}" "$work/${gws[$k]}.log" && break
    sleep 0.05
  done
  grep -q "registered with the server at 127.0.0.1:${gw_port[$n]}" "$work/${gws[$k]}.log" ||
    fail "${gws[$k]} did not register with $n"
  echo "${gws[$k]} is served by $n"
done

# --answer-hold: no PNE beyond the first 40 % is handed a request before the
# kill, so that a slow machine cannot see the group complete before it
step "$members PNEs come on, spread over the three GWs (they answer at most $rate requests/s)"
"$bin/cpns-loadgen" fanout --gw "$gw_list" --pnes "$members" --seed demo-cluster \
  --report "$work/report.json" --answer-rate "$rate" --answer-hold $((members * 4 / 10)) \
  2>"$work/fanout.log" &
fan_pid=$!
pids+=("$fan_pid")
for _ in $(seq 1200); do
  grep -q "all $members PNEs registered" "$work/fanout.log" && break
  kill -0 "$fan_pid" 2>/dev/null || fail "the PNEs' process exited"
  sleep 0.1
done
grep -h "all $members PNEs registered" "$work/fanout.log" || fail "the PNEs did not all register"
echo "where PostgreSQL says each GW is served (gw_session):"
psql_q "SELECT pngwid || ' -> ' || instance_id || ' (epoch ' || epoch || ')' FROM gw_session ORDER BY 1" |
  sed 's/^/  /' || true

step "sg-city ($members members) created through cpns-a"
# python3's urllib for the one large POST (no HTTP client needed besides)
created=$(python3 - "${admin_port[cpns-a]}" "$members" <<'PY'
import json, sys, urllib.request, urllib.error
body = json.dumps({"sgid": "sg-city", "members": ["lg-%d" % i for i in range(int(sys.argv[2]))]})
req = urllib.request.Request("http://127.0.0.1:%s/v1/service-groups" % sys.argv[1],
                             data=body.encode(), headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        print(r.status, json.load(r)["key_fingerprint"])
except urllib.error.HTTPError as e:
    print(e.code, "-")
PY
) || fail "POST /v1/service-groups on cpns-a failed"
read -r status server_fp <<<"$created"
[ "$status" = 201 ] || fail "POST /v1/service-groups answered $status"
echo "201 Created: Group Key version 1, fingerprint $server_fp"

kill_at=$((members * 3 / 10))
step "kill -9 cpns-b once about 30 % ($kill_at) of the members are delivered"
for _ in $(seq 3000); do
  d=$(delivered_fast cpns-a cpns-b cpns-c)
  [ "$d" -ge "$kill_at" ] && break
  sleep 0.01
done
[ "$d" -lt "$members" ] || fail "the group completed before the kill ($d of $members delivered)"
{
  kill -KILL "${pid_of[cpns-b]}"
  t_kill=$(now_ms)
  wait "${pid_of[cpns-b]}" || true
} 2>/dev/null
new_pids=()
for pid in "${pids[@]}"; do [ "$pid" = "${pid_of[cpns-b]}" ] || new_pids+=("$pid"); done
pids=("${new_pids[@]}")
kill -USR1 "$fan_pid" # from now on the PNEs answer at full speed
echo "cpns-b killed at $d of $members delivered"
psql_q "SELECT 'open members per owner GW: ' || string_agg(owner_gw || '=' || n, ', ') FROM (SELECT owner_gw, count(*) n FROM member WHERE sgid = 'sg-city' AND state <> 2 GROUP BY 1 ORDER BY 1) s" | sed 's/^/  /' || true

step "gw-centre moves to the next instance of its list; cpns-a and cpns-c finish the group"
line=
for _ in $(seq 600); do
  line=$(grep -h "registered with the server at 127.0.0.1:${gw_port[cpns-c]}" "$work/gw-centre.log" || true)
  [ -n "$line" ] && break
  sleep 0.05
done
[ -n "$line" ] || fail "gw-centre did not move to cpns-c"
echo "  $line"
for _ in $(seq 3000); do
  d=$(delivered)
  [ "$d" -ge "$members" ] && break
  sleep 0.05
done
[ "$d" -ge "$members" ] || fail "only $d of $members delivered"
t_done=$(now_ms)
echo "every member delivered $((t_done - t_kill)) ms after the kill"
psql_q "SELECT pngwid || ' -> ' || instance_id || ' (epoch ' || epoch || ')' FROM gw_session ORDER BY 1" |
  sed 's/^/  /' || true

step "The invariants"
failed=0
# check WHAT TEST...: prints ok or FAIL for WHAT as the test command says
check() {
  local what=$1
  shift
  if "$@"; then echo "ok    $what"; else echo "FAIL  $what"; failed=1; fi
}
v=$(psql_q "SELECT key_version FROM sg WHERE sgid = 'sg-city'")
check "PostgreSQL: sg-city at KeyVersion 1" [ "$v" = 1 ]
n=$(psql_q "SELECT count(*) FROM member WHERE sgid = 'sg-city' AND state = 2 AND key_version = 1")
check "PostgreSQL: all $members members delivered under KeyVersion 1 ($n)" [ "$n" = "$members" ]
n=$(psql_q "SELECT count(*) FROM sg_key WHERE sgid = 'sg-city'")
check "PostgreSQL: one sg_key row ($n)" [ "$n" = 1 ]
for inst in cpns-a cpns-c; do
  for _ in $(seq 100); do # each instance's view follows PostgreSQL within moments
    view=$(http_get "${admin_port[$inst]}" /v1/service-groups/sg-city)
    got=$(printf '%s' "$view" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["state"], s["key_version"], s["key_fingerprint"])' 2>/dev/null || echo "?")
    [ "$got" = "complete 1 $server_fp" ] && break
    sleep 0.1
  done
  check "$inst's view: complete 1 $server_fp ($got)" [ "$got" = "complete 1 $server_fp" ]
done
kill -TERM "$fan_pid"
wait "$fan_pid" || fail "the PNEs' process did not exit cleanly"
new_pids=()
for pid in "${pids[@]}"; do [ "$pid" = "$fan_pid" ] || new_pids+=("$pid"); done
pids=("${new_pids[@]}")
summary=$(python3 - "$work/report.json" "$server_fp" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
fp = sys.argv[2]
bad_keys = bad_hold = ret7 = 0
deliveries = 0
for p in r["pnes"]:
    keys = [k for k in p["stored"] if k["sgid"] == "sg-city"]
    if len(keys) != 1 or keys[0]["key_version"] != 1 or keys[0]["fingerprint"] != fp:
        bad_keys += 1
    cur = [k for k in p["holds"] if k["sgid"] == "sg-city" and k["slot"] == "current"]
    if len(cur) != 1 or cur[0]["fingerprint"] != fp:
        bad_hold += 1
    ret7 += p["returns"].get("7", 0)
    deliveries += p["deliveries"]
print(len(r["pnes"]), bad_keys, bad_hold, ret7, deliveries)
PY
)
read -r n_pnes bad_keys bad_hold ret7 deliveries <<<"$summary"
check "each of the $n_pnes PNEs stored exactly one key for sg-city, the 201's ($bad_keys did not)" test "$bad_keys" = 0 -a "$n_pnes" = "$members"
check "each PNE holds it as its current key ($bad_hold do not)" [ "$bad_hold" = 0 ]
check "no Return 7 from any PNE ($ret7)" [ "$ret7" = 0 ]
echo "delivery requests the PNEs received: $deliveries for $members members" \
  "($((deliveries - members)) sent again after the kill: cpns-b's unconfirmed deliveries)"
[ $failed = 0 ] || fail "an invariant does not hold"

step "Shutting everything down (SIGTERM; every program exits 0)"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
pids=()
[ $status -eq 0 ] || fail "a program did not exit cleanly (status $status)"
echo "done: a 3-instance cluster lost cpns-b mid-distribution; cpns-a and cpns-c finished it, one key everywhere"
