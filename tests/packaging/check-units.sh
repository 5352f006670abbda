#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# systemd_units: `systemd-analyze verify` on each unit of packaging/systemd
# (issue #13 item 5). It needs no running systemd (CI runs in a container
# without it as PID 1). verify checks that ExecStart= is executable, so each
# unit is verified from a copy whose /usr/bin/ points at the built programs;
# the man pages of Documentation= are not installed yet (--man=no). Any
# output fails too: verify exits 0 after "Unknown key ..." warnings.
#   check-units.sh UNIT_DIR BIN_DIR          (the build's units)
#   check-units.sh --installed UNIT...       (units installed by the packages)
set -eu

if ! command -v systemd-analyze >/dev/null; then
  echo "check-units.sh: systemd-analyze missing (apt-get install systemd)" >&2
  exit 1
fi

verify() { # FILE [OPTIONS]
  f=$1
  shift
  if ! out=$(systemd-analyze verify "$@" "$f" 2>&1) || [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify $* $f:" >&2
    echo "$out" >&2
    return 1
  fi
  echo "ok: $f"
}

rc=0
if [ "$1" = --installed ]; then
  shift
  for u in "$@"; do verify "$u" || rc=1; done
  exit $rc
fi

units=$1
bin=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
for u in "$units"/*.service; do
  sed "s#/usr/bin/#$bin/#g" "$u" >"$tmp/$(basename "$u")"
  verify "$tmp/$(basename "$u")" --man=no || rc=1
  n=$((n + 1))
done
[ $n -eq 3 ] || { echo "FAIL: expected 3 units in $units, found $n" >&2; rc=1; }
# What every unit must have (the issue's list): a typo would only be a warning.
for u in "$units"/*.service; do
  for d in Type=notify ExecReload= ProtectSystem=strict NoNewPrivileges=yes CapabilityBoundingSet= \
    ConfigurationDirectory=cpns PrivateTmp=yes ProtectHome=yes RestrictAddressFamilies= \
    SystemCallFilter=@system-service 'ExecStart=/usr/bin/cpns-[a-z]* --config /etc/cpns/'; do
    grep -q "^$d" "$u" || { echo "FAIL: $u has no $d" >&2; rc=1; }
  done
done
exit $rc
