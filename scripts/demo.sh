#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo: the project's main job, end to end, with the real programs.
#
# A throw-away PKI, a CPNS Server (SQLite store, TLS 1.3), one PN GW and three
# PNEs on loopback; a Service Group is created and its Group Key distributed;
# every PNE shows the same key fingerprint; a message sealed on one PNE opens
# on another; removing a member rekeys the group and the removed PNE cannot
# open new messages. Everything runs in a temporary directory and is stopped
# and removed at the end. Exits non-zero if any step fails.
#   scripts/demo.sh [BIN_DIR]        (default: build/bin)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/bin}
for p in cpns-server cpns-gw cpns-pne cpnsctl; do
  [ -x "$bin/$p" ] || { echo "demo: $bin/$p is missing (run make first)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/cpns-demo.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    echo "demo FAILED (exit $rc); the last log lines:" >&2
    for log in "$work"/*.log; do
      [ -f "$log" ] && { echo "--- $(basename "$log")" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
fail() { echo "demo: $*" >&2; exit 1; }

# A free loopback port: one no process is listening on.
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

server_port=$(free_port)
admin_port=$(free_port)
gw_port=$(free_port)
ctl=("$bin/cpnsctl" --server "http://127.0.0.1:$admin_port")
members=(pne-tv pne-phone pne-laptop)

step "A throw-away PKI: a CA, the server's certificate, and gw-home's (CN = its PNGWID)"
"$top/scripts/pki.sh" "$work/pki" gw-home
ls "$work/pki"

step "cpns-server: GWs on 127.0.0.1:$server_port (TLS 1.3, mutual), admin API on 127.0.0.1:$admin_port"
"$bin/cpns-server" --listen "127.0.0.1:$server_port" --admin "127.0.0.1:$admin_port" \
  --db "$work/server.db" --master-key "$work/master.key" \
  --tls-cert "$work/pki/server.crt" --tls-key "$work/pki/server.key" --tls-ca "$work/pki/ca.crt" \
  2>"$work/server.log" &
pids+=($!)
for _ in $(seq 100); do
  "${ctl[@]}" --timeout 1 pne list >/dev/null 2>&1 && break
  sleep 0.1
done
"${ctl[@]}" pne list >/dev/null || fail "the server did not come up"
echo "master key created: $(stat -c '%a %n' "$work/master.key")"

step "Provisioning three PNEs: the server generates each Entity User Key"
for m in "${members[@]}"; do
  "${ctl[@]}" pne add "$m" --key-out "$work/$m.euk"
done
stat -c '%a %n' "$work"/*.euk

step "cpns-gw gw-home (PN pn-home) dials the server; PNEs attach on 127.0.0.1:$gw_port"
"$bin/cpns-gw" --id gw-home --pnid pn-home --server "127.0.0.1:$server_port" \
  --listen "127.0.0.1:$gw_port" \
  --tls-cert "$work/pki/gw-home.crt" --tls-key "$work/pki/gw-home.key" --tls-ca "$work/pki/ca.crt" \
  2>"$work/gw.log" &
pids+=($!)
declare -A pne_pid
for m in "${members[@]}"; do
  "$bin/cpns-pne" --id "$m" --gw "127.0.0.1:$gw_port" --key-file "$work/$m.euk" \
    --store "$work/$m.store" 2>"$work/$m.log" &
  pne_pid[$m]=$!
  pids+=($!)
done
for _ in $(seq 100); do
  n=$("${ctl[@]}" --json pne list | { grep -o '"registered": *true' || true; } | wc -l)
  [ "$n" -eq 3 ] && break
  sleep 0.1
done
[ "$n" -eq 3 ] || fail "the PNEs did not all register"
"${ctl[@]}" pne list

step "Creating Service Group sg-family: inventory stored, Group Key generated and delivered"
"${ctl[@]}" sg create sg-family "${members[@]}" >/dev/null
"${ctl[@]}" sg wait sg-family --timeout 30 || fail "sg-family did not complete"
"${ctl[@]}" sg show sg-family

keys() { "$bin/cpns-pne" keys --store "$work/$1.store" --key-file "$work/$1.euk"; }
fingerprint() { keys "$1" | awk '$1 == "sg-family" { print $3 }'; }

step "Each PNE's key store (fingerprints only; the keys never leave the PNE)"
for m in "${members[@]}"; do
  printf '%-11s ' "$m"; keys "$m" | tail -n +2
done
fp=$(fingerprint pne-tv)
for m in "${members[@]}"; do
  [ "$(fingerprint "$m")" = "$fp" ] || fail "$m holds another key than pne-tv"
done
echo "every member holds Group Key $fp"

step "pne-tv seals a group message; pne-phone opens it"
sealed=$(printf 'dinner is ready' | "$bin/cpns-pne" seal --store "$work/pne-tv.store" \
  --key-file "$work/pne-tv.euk" --sg sg-family)
echo "sealed: $sealed"
opened=$(printf '%s\n' "$sealed" | "$bin/cpns-pne" open --store "$work/pne-phone.store" \
  --key-file "$work/pne-phone.euk" --sg sg-family)
echo "pne-phone reads: $opened"
[ "$opened" = "dinner is ready" ] || fail "pne-phone could not read the message"

step "Removing pne-laptop: the group is rekeyed to version 2 for the remaining members"
"${ctl[@]}" sg remove sg-family pne-laptop >/dev/null
"${ctl[@]}" sg wait sg-family --timeout 30 || fail "the rekey did not complete"
"${ctl[@]}" sg show sg-family
for m in "${members[@]}"; do
  printf '%-11s ' "$m"; keys "$m" | tail -n +2
done

step "A message sealed under version 2: pne-phone opens it, pne-laptop cannot"
sealed=$(printf 'the laptop is gone' | "$bin/cpns-pne" seal --store "$work/pne-tv.store" \
  --key-file "$work/pne-tv.euk" --sg sg-family)
opened=$(printf '%s\n' "$sealed" | "$bin/cpns-pne" open --store "$work/pne-phone.store" \
  --key-file "$work/pne-phone.euk" --sg sg-family)
echo "pne-phone reads: $opened"
[ "$opened" = "the laptop is gone" ] || fail "pne-phone could not read the new message"
if printf '%s\n' "$sealed" | "$bin/cpns-pne" open --store "$work/pne-laptop.store" \
  --key-file "$work/pne-laptop.euk" --sg sg-family 2>/dev/null; then
  fail "pne-laptop opened a message sealed after its removal"
fi
echo "pne-laptop: cannot open it (it holds only version 1)"

step "Shutting everything down (SIGTERM; every program exits 0)"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
pids=()
[ $status -eq 0 ] || fail "a program did not exit cleanly (status $status)"
echo "done: every step succeeded"
