#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Wireshark dissector (packaging/wireshark/cpns.lua) on a real capture.
#
# In a private network namespace (so that the daemons' default ports are free
# and the loopback MTU can be lowered without touching the host), tcpdump
# records a full distribution over plain TCP: cpns-server --insecure on its
# default port 7460, cpns-gw --insecure listening on 7461, three PNEs; a
# Service Group is created and delivered, a member removed (rekey to version
# 2), and one PNE stopped (its GW reports it detached). The loopback MTU of
# 400 bytes makes the kernel split every message longer than ~330 bytes (each
# SGroupKeyDeliveryRequest) over two TCP segments, as any real path may.
#
# tshark -X lua_script:cpns.lua -V then has to show, on both links, each of
# the seven messages with its fields (name, TransactionID, SGID, PNEID,
# PNID, PNGWID, KeyVersion, Return, Status) matching what the daemons did,
# each response carrying the TransactionID of a request, and at least one
# message reassembled from several segments. The same capture is dissected a
# second time with the port registration emptied (-o cpns.tcp_ports:), where
# only the heuristic finds the protocol, and must give the same messages.
#
#   tests/wireshark/capture.sh BIN_DIR LUA_SCRIPT
# Exit 77 (skipped) when tshark, tcpdump, unshare or ip is missing, or when
# this user may not create a network namespace or capture (not root).
set -euo pipefail

bin=$(cd "$1" && pwd)
lua=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")

skip() { echo "wireshark test skipped: $*"; exit 77; }

if [ "${CPNS_IN_NETNS:-}" != 1 ]; then
  for t in tshark tcpdump unshare ip; do
    command -v "$t" >/dev/null || skip "$t is not installed (scripts/install-deps.sh)"
  done
  unshare -n true 2>/dev/null || skip "cannot create a network namespace (unshare -n needs root)"
  CPNS_IN_NETNS=1 exec unshare -n "$0" "$bin" "$lua"
fi

work=$(mktemp -d /tmp/cpns-wireshark.XXXXXX)
pids=()
tcpdump_pid=
cleanup() {
  local rc=$?
  for pid in "${pids[@]}" $tcpdump_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    echo "wireshark test FAILED (exit $rc); the last log lines:" >&2
    for log in "$work"/*.log; do
      [ -f "$log" ] && { echo "--- $(basename "$log")" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "wireshark: $*" >&2; [ -n "${CPNS_WIRESHARK_KEEP:-}" ] && cp "$work"/*.txt "$work/cpns.pcap" "$CPNS_WIRESHARK_KEEP"/ 2>/dev/null; exit 1; }

# Waits (100 ms steps, at most 30 s) until the command succeeds.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 300); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "timed out waiting for $what"
}

ip link set lo up mtu 400 gso_max_size 400 gso_max_segs 1

tcpdump -i lo --immediate-mode -B 16384 -U -Z root -w "$work/cpns.pcap" tcp 2>"$work/tcpdump.log" &
tcpdump_pid=$!
wait_for "tcpdump to listen on lo" grep -q "listening on lo" "$work/tcpdump.log"

ctl=("$bin/cpnsctl")
members=(pne-tv pne-phone pne-laptop)
"$bin/cpns-server" --insecure --db "$work/server.db" --master-key "$work/master.key" \
  2>"$work/server.log" &
pids+=($!)
wait_for "cpns-server" "${ctl[@]}" --timeout 1 pne list
for m in "${members[@]}"; do
  "${ctl[@]}" pne add "$m" --key-out "$work/$m.euk" >/dev/null
done

"$bin/cpns-gw" --insecure --id gw-home --pnid pn-home --server 127.0.0.1:7460 \
  2>"$work/gw.log" &
pids+=($!)
declare -A pne_pid
for m in "${members[@]}"; do
  "$bin/cpns-pne" --id "$m" --gw 127.0.0.1:7461 --key-file "$work/$m.euk" \
    --store "$work/$m.store" 2>"$work/$m.log" &
  pne_pid[$m]=$!
  pids+=($!)
done
registered() { [ "$("${ctl[@]}" --json pne list | grep -o '"registered": *true' | wc -l)" -eq 3 ]; }
wait_for "three registered PNEs" registered

"${ctl[@]}" sg create sg-family "${members[@]}" >/dev/null
"${ctl[@]}" sg wait sg-family --timeout 30 >/dev/null || fail "sg-family was not delivered"
"${ctl[@]}" sg remove sg-family pne-laptop >/dev/null
"${ctl[@]}" sg wait sg-family --timeout 30 >/dev/null || fail "the rekey was not delivered"

# pne-laptop goes away: the GW tells the server (PNEStatusNotification detached).
kill -TERM "${pne_pid[pne-laptop]}"
wait "${pne_pid[pne-laptop]}" || fail "pne-laptop did not exit cleanly"
detached() { grep -q "pne-laptop" "$work/gw.log" && grep -i "pne-laptop" "$work/gw.log" | grep -qi "detach"; }
wait_for "the GW to report pne-laptop detached" detached

# tcpdump writes each packet as it comes (-U): wait until the capture holds it.
in_capture() {
  tshark -X lua_script:"$lua" -r "$work/cpns.pcap" -Y 'cpns.status == "detached"' 2>/dev/null |
    grep -q pne-laptop
}
wait_for "the detached notification in the capture" in_capture
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()
kill -TERM "$tcpdump_pid"
wait "$tcpdump_pid" || true
tcpdump_pid=

# Every message type, and each frame's messages with their fields.
ts() { tshark -X lua_script:"$lua" -r "$work/cpns.pcap" "$@" 2>/dev/null; }
ts -V >"$work/tree.txt"
ts -Y cpns -T fields -E occurrence=a -E aggregator=/s -e tcp.srcport -e tcp.dstport \
  -e cpns.message -e cpns.sgid -e cpns.pneid -e cpns.keyversion -e cpns.return \
  -e cpns.status -e tcp.segment.count >"$work/fields.txt"
ts -o cpns.tcp_ports: -Y cpns -T fields -E occurrence=a -E aggregator=/s -e tcp.srcport \
  -e tcp.dstport -e cpns.message -e cpns.sgid -e cpns.pneid -e cpns.keyversion -e cpns.return \
  -e cpns.status -e tcp.segment.count >"$work/heuristic.txt"
for m in PNGWRegistrationRequest PNGWRegistrationResponse PNERegistrationRequest \
  PNERegistrationResponse PNEStatusNotification SGroupKeyDeliveryRequest \
  SGroupKeyDeliveryResponse; do
  grep -q "Message: $m" "$work/tree.txt" || fail "no $m in tshark -V"
done
# Deliveries on both links, with their fields: version 1 to the three, 2 to the two left.
for port in 7460 7461; do
  for want in "SGroupKeyDeliveryRequest	sg-family	pne-tv	1" \
    "SGroupKeyDeliveryRequest	sg-family	pne-laptop	1" \
    "SGroupKeyDeliveryRequest	sg-family	pne-phone	2" \
    "SGroupKeyDeliveryResponse	sg-family	pne-tv	2	1"; do
    awk -F'\t' -v p=$port '$1 == p || $2 == p' "$work/fields.txt" | cut -f3- |
      grep -q "^$want" || fail "port $port: no '$want' in the dissection"
  done
done
grep -q "PNEStatusNotification		pne-laptop			detached" "$work/fields.txt" ||
  fail "no PNEStatusNotification detached of pne-laptop"
awk -F'\t' '$3 ~ /SGroupKeyDeliveryRequest/ && $9 >= 2' "$work/fields.txt" | grep -q . ||
  fail "no SGroupKeyDeliveryRequest reassembled from several TCP segments"
cmp -s "$work/fields.txt" "$work/heuristic.txt" ||
  fail "the heuristic (no ports) dissects otherwise than the port registration"
echo "wireshark: $(wc -l <"$work/fields.txt") frames of cpns/1 dissected; every message type, both links, reassembly and heuristic checked"
