#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make test-deb (issue #13 item 6): the .debs of `make deb` on this machine.
#   1. lintian on the .changes: no error (warnings are printed)
#   2. apt-get install ./*.deb (dependencies resolved by apt), as root
#   3. systemd-analyze verify on the installed units (their ExecStart= and man pages now exist)
#   4. scripts/demo.sh /usr/bin: the demo against the installed programs
#   5. pkg-config --cflags --libs cpns (libcpns-dev) compiles, links and runs a program,
#      which loads neither SQLite nor libpq, and libcpns0 does not depend on them
#   6. the packages are purged again unless KEEP_DEBS=1
#   tests/packaging/test-deb.sh DEB_DIR
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(cd "${1:?usage: test-deb.sh DEB_DIR}" && pwd)
pkgs=(cpns-server cpns-gw cpns-pne cpnsctl libcpns0 libcpns-store0 libcpns-dev)
step() { printf '\n== test-deb: %s\n' "$*"; }

step "lintian"
changes=("$dir"/cpns_*.changes)
[ -f "${changes[0]}" ] || { echo "no cpns_*.changes in $dir (run make deb)" >&2; exit 1; }
out=$(lintian --allow-root "${changes[0]}" 2>&1 || true)
echo "$out"
if grep -q '^E: ' <<<"$out"; then echo "test-deb: lintian reported errors" >&2; exit 1; fi

step "apt-get install"
debs=()
for p in "${pkgs[@]}"; do
  f=("$dir/${p}"_*.deb)
  [ -f "${f[0]}" ] || { echo "test-deb: no $p .deb in $dir" >&2; exit 1; }
  debs+=("${f[0]}")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
cleanup() {
  if [ "${KEEP_DEBS:-0}" != 1 ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${pkgs[@]}" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}"
for p in cpns-server cpns-gw cpns-pne cpnsctl; do
  [ "$(command -v "$p")" = "/usr/bin/$p" ] || { echo "test-deb: $p is not /usr/bin/$p" >&2; exit 1; }
done
for u in cpns-server cpns-gw cpns-pne; do
  getent passwd "$u" >/dev/null || { echo "test-deb: no system user $u" >&2; exit 1; }
done

step "systemd-analyze verify on the installed units"
units=()
for u in cpns-server.service cpns-gw.service cpns-pne@.service; do
  f=$(ls /lib/systemd/system/$u /usr/lib/systemd/system/$u 2>/dev/null | head -n 1)
  [ -n "$f" ] || { echo "test-deb: $u is not installed" >&2; exit 1; }
  units+=("$f")
done
sh "$top/tests/packaging/check-units.sh" --installed "${units[@]}"

step "the demo against /usr/bin"
"$top/scripts/demo.sh" /usr/bin

step "a program built with pkg-config --cflags --libs cpns"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; cleanup' EXIT
cat >"$tmp/hello.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <cpns/cpns.h>
int main(void)
{
    uint8_t EUK[CPNS_KEY_LEN] = {1, 2, 3};
    char fp[CPNS_FINGERPRINT_LEN + 1] = "";
    cpns_fingerprint(EUK, sizeof EUK, fp);
    printf("%s %s\n", fp, cpns_strerror(CPNS_ERR_NOT_FOUND));
    return strlen(fp) == CPNS_FINGERPRINT_LEN ? 0 : 1;
}
C
# shellcheck disable=SC2046 # pkg-config's words
cc -std=c11 -Wall -Werror -o "$tmp/hello" "$tmp/hello.c" $(pkg-config --cflags --libs cpns)
libs=$(ldd "$tmp/hello") # not piped into grep -q: pipefail would see ldd's SIGPIPE
grep -Eq "libcpns\.so\.0 => (/usr)?/lib/" <<<"$libs" || { echo "test-deb: not linked to the installed libcpns.so.0" >&2; exit 1; }
if grep -Eq "libsqlite3|libpq" <<<"$libs"; then
  echo "test-deb: a program of libcpns alone loads SQLite or libpq:" >&2
  echo "$libs" >&2
  exit 1
fi
deps=$(dpkg-query -W -f '${Depends}' libcpns0)
if grep -Eq "sqlite|libpq" <<<"$deps"; then
  echo "test-deb: libcpns0 depends on SQLite or libpq: $deps" >&2
  exit 1
fi
"$tmp/hello"
echo "test-deb: passed"
