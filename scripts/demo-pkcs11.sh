#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo-pkcs11: make demo with the PNEs' keys in a PKCS#11 token (issue #14 item 1).
#
# A throw-away SoftHSM2 token (its own softhsm2.conf and token directory), a
# CPNS Server (SQLite store, TLS 1.3), one PN GW and three PNEs whose key
# stores are sealed by the token (cpns-pne --pkcs11-module; docs/PKCS11.md).
# Each PNE's first start seals its EUK into its store; its key file is then
# deleted, and the PNE restarted without it. A Service Group is created; every
# PNE must hold the same Group Key, which the demo reads back through the token;
# a copy of a PNE's store is shown to be useless without the token; a message
# sealed on one PNE opens on another. Everything runs in a temporary directory
# and is stopped and removed at the end. Exits 0 only if every PNE got its key.
#   scripts/demo-pkcs11.sh [BIN_DIR]        (default: build/bin)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$top/build/bin}
for p in cpns-server cpns-gw cpns-pne cpnsctl; do
  [ -x "$bin/$p" ] || { echo "demo: $bin/$p is missing (run make first)" >&2; exit 1; }
done
command -v softhsm2-util >/dev/null || {
  echo "demo: softhsm2-util is missing (scripts/install-deps.sh installs softhsm2)" >&2; exit 1; }
module=${CPNS_SOFTHSM2_MODULE:-}
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
  /usr/lib64/pkcs11/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
  [ -n "$module" ] && break
  [ -r "$m" ] && module=$m
done
[ -n "$module" ] || { echo "demo: the SoftHSM2 module is missing" >&2; exit 1; }

work=$(mktemp -d /tmp/cpns-demo-pkcs11.XXXXXX)
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

# A free loopback port below the ephemeral range (see scripts/demo.sh).
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
label=cpns-demo

step "A throw-away SoftHSM2 token '$label' (module $module)"
mkdir -m 700 "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm2.conf"
pin=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$pin-so" | tail -n 1
(umask 077; printf '%s\n' "$pin" >"$work/pin")
stat -c '%a %n' "$work/pin"
p11=(--pkcs11-module "$module" --token-label "$label" --pin-file "$work/pin")

step "A throw-away PKI, cpns-server (TLS 1.3) and cpns-gw gw-home"
"$top/scripts/pki.sh" "$work/pki" gw-home >/dev/null
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
"$bin/cpns-gw" --id gw-home --pnid pn-home --server "127.0.0.1:$server_port" \
  --listen "127.0.0.1:$gw_port" \
  --tls-cert "$work/pki/gw-home.crt" --tls-key "$work/pki/gw-home.key" --tls-ca "$work/pki/ca.crt" \
  2>"$work/gw.log" &
pids+=($!)
echo "server: GWs on 127.0.0.1:$server_port, admin on 127.0.0.1:$admin_port; GW on 127.0.0.1:$gw_port"

step "Provisioning three PNEs: the server generates each Entity User Key"
for m in "${members[@]}"; do
  "${ctl[@]}" pne add "$m" --key-out "$work/$m.euk"
done

wait_registered() {
  local n=0
  for _ in $(seq 150); do
    n=$("${ctl[@]}" --json pne list | { grep -o '"registered": *true' || true; } | wc -l)
    [ "$n" -eq "$1" ] && return 0
    sleep 0.1
  done
  fail "$n PNEs registered, not $1"
}

step "First start: each PNE seals its EUK into its store with a new, non-extractable token key"
declare -A pne_pid
for m in "${members[@]}"; do
  "$bin/cpns-pne" --id "$m" --gw "127.0.0.1:$gw_port" --key-file "$work/$m.euk" \
    --store "$work/$m.store" "${p11[@]}" 2>"$work/$m.log" &
  pne_pid[$m]=$!
  pids+=($!)
  # One key generation at a time: a SoftHSM2 process that starts while another
  # one writes a new object into the token directory may find no token there.
  for _ in $(seq 100); do
    [ -f "$work/$m.store/token-euk" ] && break
    sleep 0.1
  done
  [ -f "$work/$m.store/token-euk" ] || fail "$m did not seal its EUK"
done
wait_registered 3
ls -l "$work/pne-tv.store"
echo "DIR/token-euk: the EUK sealed by the token, and the CKA_ID of the PNE's token key"
echo "(an AES-256 key, CKA_SENSITIVE, not CKA_EXTRACTABLE: tests/pkcs11 checks it)"

step "The key files are no longer needed: deleted, and the PNEs restarted without them"
for m in "${members[@]}"; do
  kill -TERM "${pne_pid[$m]}"
  wait "${pne_pid[$m]}" || fail "$m did not stop cleanly"
  rm -f "$work/$m.euk"
  "$bin/cpns-pne" --id "$m" --gw "127.0.0.1:$gw_port" --store "$work/$m.store" "${p11[@]}" \
    2>>"$work/$m.log" &
  pne_pid[$m]=$!
  pids+=($!)
done
ls "$work"/*.euk 2>/dev/null && fail "a key file is left"
wait_registered 3
"${ctl[@]}" pne list

step "Creating Service Group sg-family: the Group Key is delivered and sealed by the token"
"${ctl[@]}" sg create sg-family "${members[@]}" >/dev/null
"${ctl[@]}" sg wait sg-family --timeout 30 || fail "sg-family did not complete"
"${ctl[@]}" sg show sg-family

keys() { "$bin/cpns-pne" keys --store "$work/$1.store" "${p11[@]}"; }
fingerprint() { keys "$1" | awk '$1 == "sg-family" { print $3 }'; }
server_fp=$("${ctl[@]}" --json sg show sg-family | sed -n 's/.*"key_fingerprint": *"\([0-9a-f]*\)".*/\1/p')

step "Each PNE's key store, read through the token (fingerprints only)"
for m in "${members[@]}"; do
  printf '%-11s ' "$m"; keys "$m" | tail -n +2
done
for m in "${members[@]}"; do
  [ "$(fingerprint "$m")" = "$server_fp" ] || fail "$m does not hold the Group Key $server_fp"
done
echo "every PNE holds Group Key $server_fp"

step "A copy of pne-tv's store is useless without the token"
cp -a "$work/pne-tv.store" "$work/stolen"
od -An -c -N 9 "$work/stolen/groupkeys" | tr -s ' '
mkdir -m 700 "$work/tokens2"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$work/tokens2" >"$work/softhsm2-other.conf"
SOFTHSM2_CONF="$work/softhsm2-other.conf" softhsm2-util --init-token --free --label "$label" \
  --pin "$pin" --so-pin "$pin-so" >/dev/null
if SOFTHSM2_CONF="$work/softhsm2-other.conf" "$bin/cpns-pne" keys --store "$work/stolen" \
  "${p11[@]}" 2>"$work/stolen.err"; then
  fail "the copy opened on another token"
fi
echo "on another token with the same label and PIN: $(cat "$work/stolen.err")"

step "pne-tv seals a group message; pne-phone opens it (both through the token)"
sealed=$(printf 'dinner is ready' | "$bin/cpns-pne" seal --store "$work/pne-tv.store" "${p11[@]}" \
  --sg sg-family)
echo "sealed: $sealed"
opened=$(printf '%s\n' "$sealed" | "$bin/cpns-pne" open --store "$work/pne-phone.store" \
  "${p11[@]}" --sg sg-family)
echo "pne-phone reads: $opened"
[ "$opened" = "dinner is ready" ] || fail "pne-phone could not read the message"

step "Shutting everything down (SIGTERM; every program exits 0)"
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
status=0
for m in "${members[@]}"; do wait "${pne_pid[$m]}" || status=$?; done
wait || true
pids=()
[ $status -eq 0 ] || fail "a PNE did not exit cleanly (status $status)"
echo "done: every PNE got its Group Key, sealed by the token"
