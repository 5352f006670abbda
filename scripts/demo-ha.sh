#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo-ha: the demo's story on PostgreSQL, with two server instances, the
# active one killed in the middle of a distribution (issue #11).
#
# A throw-away PostgreSQL (scripts/pg-tmp.sh: a Unix socket in a temporary
# directory, fsync on), a throw-away PKI, one master key file shared by two
# cpns-server instances on the same database: cpns-a takes the lease and
# serves, cpns-b waits as a standby. Two PN GWs dial "cpns-a,cpns-b"; four of
# six PNEs run. Service Group sg-family (all six) is created through the
# STANDBY's admin API, which forwards it to the active one; the four running
# PNEs get the Group Key, two members stay pending (their PNEs are off).
# Then cpns-a is killed with SIGKILL: cpns-b takes the lease once it expired,
# loads the state from PostgreSQL and listens; the GWs move to it; the two
# late PNEs start and get the same Group Key (version 1, nothing rekeyed); the
# group completes and every PNE's key fingerprint equals the server's. cpns-a
# comes back as the standby. Everything runs in temporary directories and is
# stopped and removed on every exit. Exits non-zero if any step fails.
#   scripts/demo-ha.sh [BIN_DIR]        (default: build/bin)
# DEMO_KEEP=DIR copies every log into DIR before the cleanup.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/bin}
for p in cpns-server cpns-gw cpns-pne cpnsctl; do
  [ -x "$bin/$p" ] || { echo "demo-ha: $bin/$p is missing (run make first)" >&2; exit 1; }
done

# The lease's time to live: the standby takes over at most this long after the
# active instance died (default 15 s; 3 s keeps the demo short).
ttl=3

work=$(mktemp -d /tmp/cpns-demo-ha.XXXXXX)
# PostgreSQL runs as nobody when we are root: its directory must be reachable
# by nobody, so it is not under $work (0700, it holds the keys).
pgdir=$(mktemp -d /tmp/cpns-demo-ha-pg.XXXXXX)
chmod 0755 "$pgdir"
pg_started=0
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    echo "demo-ha FAILED (exit $rc); the last log lines:" >&2
    for log in "$work"/*.log "$pgdir/log"; do
      [ -f "$log" ] && { echo "--- $(basename "$log")" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  if [ $pg_started = 1 ]; then
    "$top/scripts/pg-tmp.sh" stop "$pgdir" >/dev/null 2>&1 || true
  fi
  [ -n "${DEMO_KEEP:-}" ] && cp "$work"/*.log "$DEMO_KEEP"/ 2>/dev/null
  rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
fail() { echo "demo-ha: $*" >&2; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# The time of a log line (its first field, ISO 8601 UTC with milliseconds) in ms.
log_ms() { date -d "${1%% *}" +%s%3N; }

# A free loopback port: one no process is listening on.
# Below the ephemeral range (ip_local_port_range), where no outgoing connection
# can be holding it as its local port.
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
# Plain bash (/dev/tcp), so that the demo needs no HTTP client.
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
healthz() { http_get "$1" /healthz; }

# Distinct ports for everything (a port drawn twice would make two daemons collide).
ports=()
while [ ${#ports[@]} -lt 6 ]; do
  p=$(free_port)
  case " ${ports[*]} " in *" $p "*) ;; *) ports+=("$p") ;; esac
done
a_port=${ports[0]} a_admin=${ports[1]} b_port=${ports[2]} b_admin=${ports[3]}
home_port=${ports[4]} office_port=${ports[5]}
ctl_a=("$bin/cpnsctl" --server "http://127.0.0.1:$a_admin")
ctl_b=("$bin/cpnsctl" --server "http://127.0.0.1:$b_admin")
declare -A gw_of=([pne-tv]=home [pne-phone]=home [pne-tablet]=home
  [pne-laptop]=office [pne-desk]=office [pne-printer]=office)
declare -A gw_port=([home]=$home_port [office]=$office_port)
members=(pne-tv pne-phone pne-tablet pne-laptop pne-desk pne-printer)
early=(pne-tv pne-phone pne-laptop pne-desk)
late=(pne-tablet pne-printer)

step "A throw-away PostgreSQL: its own cluster in $pgdir, on a Unix socket only (fsync on)"
uri=$("$top/scripts/pg-tmp.sh" start "$pgdir")
pg_started=1
echo "database: $uri"

step "A throw-away PKI: a CA, the server's certificate (both instances), gw-home's and gw-office's"
"$top/scripts/pki.sh" "$work/pki" gw-home gw-office
ls "$work/pki"

step "The master key: one file, the same for every instance (with PostgreSQL it is never created)"
(umask 077 && head -c 32 /dev/urandom | base64 >"$work/master.key")
stat -c '%a %n' "$work/master.key"

# start_instance NAME GW_PORT ADMIN_PORT
start_instance() {
  "$bin/cpns-server" --db "$uri" --instance-id "$1" --lease-ttl "$ttl" \
    --listen "127.0.0.1:$2" --admin "127.0.0.1:$3" --master-key "$work/master.key" \
    --tls-cert "$work/pki/server.crt" --tls-key "$work/pki/server.key" --tls-ca "$work/pki/ca.crt" \
    2>>"$work/$1.log" &
  pids+=($!)
  last_pid=$!
}
# wait_health ADMIN_PORT STATUS [TRIES of 0.1 s]: 0 once /healthz says "status": STATUS
wait_health() {
  for _ in $(seq "${3:-100}"); do
    healthz "$1" | grep -q "\"status\": *\"$2\"" && return 0
    sleep 0.1
  done
  return 1
}

step "cpns-server cpns-a: takes the lease and serves (GWs on :$a_port, admin API on :$a_admin)"
start_instance cpns-a "$a_port" "$a_admin"
a_pid=$last_pid
wait_health "$a_admin" ok || fail "cpns-a did not become active"
echo "cpns-a /healthz: $(healthz "$a_admin")"

step "cpns-server cpns-b: same database, same master key: a standby (not listening for GWs)"
start_instance cpns-b "$b_port" "$b_admin"
wait_health "$b_admin" standby || fail "cpns-b did not come up as a standby"
echo "cpns-b /healthz: $(healthz "$b_admin")"
if (exec 3<>"/dev/tcp/127.0.0.1/$b_port") 2>/dev/null; then
  fail "the standby accepts GW connections on :$b_port"
fi
echo "cpns-b refuses GW connections on :$b_port until it holds the lease"
echo "lease in PostgreSQL (any SQL client can read it):"
"$top/scripts/pg-tmp.sh" psql "$pgdir" -c 'SELECT * FROM lease'

step "Provisioning six PNEs through cpns-a: the server generates each Entity User Key"
for m in "${members[@]}"; do
  "${ctl_a[@]}" pne add "$m" --key-out "$work/$m.euk"
done

step "cpns-gw gw-home and gw-office: --server cpns-a,cpns-b (the next one when a connection fails)"
for g in home office; do
  "$bin/cpns-gw" --id "gw-$g" --pnid "pn-$g" --server "127.0.0.1:$a_port,127.0.0.1:$b_port" \
    --listen "127.0.0.1:${gw_port[$g]}" \
    --tls-cert "$work/pki/gw-$g.crt" --tls-key "$work/pki/gw-$g.key" --tls-ca "$work/pki/ca.crt" \
    2>"$work/gw-$g.log" &
  pids+=($!)
done
start_pne() {
  local g=${gw_of[$1]}
  "$bin/cpns-pne" --id "$1" --gw "127.0.0.1:${gw_port[$g]}" --key-file "$work/$1.euk" \
    --store "$work/$1.store" 2>"$work/$1.log" &
  pids+=($!)
}
registered() { "$@" --json pne list | { grep -o '"registered": *true' || true; } | wc -l; }
echo "four of the six PNEs are on: ${early[*]} (${late[*]} are off for now)"
for m in "${early[@]}"; do start_pne "$m"; done
for _ in $(seq 100); do
  n=$(registered "${ctl_a[@]}")
  [ "$n" -eq 4 ] && break
  sleep 0.1
done
[ "$n" -eq 4 ] || fail "the four PNEs did not all register"
grep -h "registered with the server" "$work"/gw-*.log | sed 's/^/  /'
"${ctl_a[@]}" pne list

step "Creating sg-family (six members) through the STANDBY cpns-b: it forwards to cpns-a"
"${ctl_b[@]}" sg create sg-family "${members[@]}" >/dev/null
# Four members get the key; two wait for their PNEs.
for _ in $(seq 100); do
  n=$("${ctl_b[@]}" --json sg show sg-family | { grep -o '"state": *"delivered"' || true; } | wc -l)
  [ "$n" -eq 4 ] && break
  sleep 0.1
done
[ "$n" -eq 4 ] || fail "the four running PNEs did not get the key"
"${ctl_b[@]}" sg show sg-family
sg_json=$("${ctl_b[@]}" --json sg show sg-family)
server_fp=$(printf '%s' "$sg_json" | sed -n 's/.*"key_fingerprint": *"\([^"]*\)".*/\1/p')
printf '%s' "$sg_json" | grep -q '"state": *"distributing"' || fail "sg-family is not distributing"
echo "the distribution is under way: 4 of 6 delivered, Group Key $server_fp (version 1)"

step "kill -9 cpns-a in the middle of the distribution"
{ # the shell's "Killed" notice is not part of the story
  kill -KILL "$a_pid"
  t_kill=$(now_ms)
  wait "$a_pid" || true
} 2>/dev/null
new_pids=()
for pid in "${pids[@]}"; do [ "$pid" = "$a_pid" ] || new_pids+=("$pid"); done
pids=("${new_pids[@]}")
echo "cpns-a is gone; its lease (TTL ${ttl} s) expires at most ${ttl} s after its last renewal"
echo "the GWs keep their PNEs and try cpns-a, cpns-b in turn"

step "cpns-b takes over: the lease, the state from PostgreSQL, then it listens"
wait_health "$b_admin" ok $((ttl * 10 + 100)) || fail "cpns-b did not take over"
echo "cpns-b /healthz: $(healthz "$b_admin")"
grep -h "holds the lease\|loaded\|listening for GWs" "$work/cpns-b.log" | tail -n 4 | sed 's/^/  /'
t_active=$(log_ms "$(grep -h "listening for GWs" "$work/cpns-b.log" | tail -n 1)")
echo "cpns-b serves $((t_active - t_kill)) ms after the kill"
for g in home office; do
  line=
  for _ in $(seq 200); do
    line=$(grep -h "registered with the server at 127.0.0.1:$b_port" "$work/gw-$g.log" || true)
    [ -n "$line" ] && break
    sleep 0.05
  done
  [ -n "$line" ] || fail "gw-$g did not move to cpns-b"
  grep -h "server connection\|moving to\|all 2 servers" "$work/gw-$g.log" | tail -n 3 | sed 's/^/  /'
  echo "  $line"
  echo "gw-$g is on cpns-b $(($(log_ms "$line") - t_kill)) ms after the kill"
done

step "The two late PNEs come on: cpns-b delivers them the key cpns-a generated"
t_late=$(now_ms)
for m in "${late[@]}"; do start_pne "$m"; done
"${ctl_b[@]}" sg wait sg-family --timeout 30 || fail "sg-family did not complete on cpns-b"
t_done=$(now_ms)
"${ctl_b[@]}" sg show sg-family
sg_json=$("${ctl_b[@]}" --json sg show sg-family)
fp_b=$(printf '%s' "$sg_json" | sed -n 's/.*"key_fingerprint": *"\([^"]*\)".*/\1/p')
[ "$fp_b" = "$server_fp" ] || fail "cpns-b serves key $fp_b, cpns-a had $server_fp"
printf '%s' "$sg_json" | grep -q '"key_version": *1,' || fail "the takeover changed the key version"
echo "kill -> cpns-b serving: $((t_active - t_kill)) ms; kill -> group complete: $((t_done - t_kill)) ms" \
  "(the late PNEs started $((t_late - t_kill)) ms after the kill)"

keys() { "$bin/cpns-pne" keys --store "$work/$1.store" --key-file "$work/$1.euk"; }
fingerprint() { keys "$1" | awk '$1 == "sg-family" { print $3 }'; }

step "Each PNE's key store: the key of cpns-a before the kill, of cpns-b after it, one key"
for m in "${members[@]}"; do
  printf '%-12s ' "$m"; keys "$m" | tail -n +2
done
for m in "${members[@]}"; do
  [ "$(fingerprint "$m")" = "$server_fp" ] || fail "$m holds another key than the server's $server_fp"
done
echo "every member holds Group Key $server_fp, the server's"

step "pne-tv (served by cpns-a) seals a message; pne-printer (served by cpns-b) opens it"
sealed=$(printf 'the server moved, the key did not' | "$bin/cpns-pne" seal \
  --store "$work/pne-tv.store" --key-file "$work/pne-tv.euk" --sg sg-family)
opened=$(printf '%s\n' "$sealed" | "$bin/cpns-pne" open --store "$work/pne-printer.store" \
  --key-file "$work/pne-printer.euk" --sg sg-family)
echo "pne-printer reads: $opened"
[ "$opened" = "the server moved, the key did not" ] || fail "pne-printer could not read the message"

step "cpns-a restarts: cpns-b holds the lease, so cpns-a is now the standby"
start_instance cpns-a "$a_port" "$a_admin"
wait_health "$a_admin" standby || fail "cpns-a did not come back as a standby"
echo "cpns-a /healthz: $(healthz "$a_admin")"
"${ctl_a[@]}" sg list

step "Shutting everything down (SIGTERM; every program exits 0)"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
pids=()
[ $status -eq 0 ] || fail "a program did not exit cleanly (status $status)"
echo "done: every step succeeded"
