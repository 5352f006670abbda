#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the packages the project needs, skipping those already there.
# Debian 12 and 13 and Ubuntu 24.04: only names that exist in all three
# (-dev and meta packages: libevent-dev, not libevent-2.1-7 or its t64 rename;
# postgresql, not postgresql-15; libclang-rt-dev, not libclang-rt-14-dev).
#   scripts/install-deps.sh [--all]    build + tests + CI tools (default: what CI needs)
#   scripts/install-deps.sh --build    what `make` needs to build (compiler, -dev packages)
#   scripts/install-deps.sh --runtime  what the installed programs need to run
#   scripts/install-deps.sh --deb      --all plus what `make deb` / `make test-deb` need
#   scripts/install-deps.sh --check [SET]   exit 1 and list what is missing, install nothing
set -euo pipefail

# Run time: the shared libraries the programs and libcpns load, and openssl
# (scripts/pki.sh). Their names changed with the 64-bit time_t transition
# (Debian 13, Ubuntu 24.04: libssl3t64, libevent-2.1-7t64): "A|B" takes the
# first name the package lists know. The Debian packages (debian/control,
# ${shlibs:Depends}) carry the exact names by themselves.
runtime=(
  openssl libssl3t64\|libssl3 libexpat1 libevent-2.1-7t64\|libevent-2.1-7
  libevent-openssl-2.1-7t64\|libevent-openssl-2.1-7 libjansson4 libsqlite3-0 libpq5 libsystemd0
)
# Build: compiler and headers. libsystemd-dev: sd_notify() tells systemd when a
# Type=notify daemon is ready and when it stops (linked into the three
# daemons only, not libcpns). doxygen: make docs and the api_docs test (the
# API reference of the public headers).
build=(
  build-essential cmake pkg-config doxygen
  libssl-dev libexpat1-dev libevent-dev libjansson-dev libsqlite3-dev libpq-dev libsystemd-dev
)
# Tests and CI: cmocka, a throwaway PostgreSQL, clang + libFuzzer, valgrind,
# the man-page and schema checks, gnuplot for the benchmarks, systemd-analyze
# for the unit files (package systemd; no running systemd needed).
tests=(
  libcmocka-dev postgresql clang libclang-rt-dev
  libxml2-utils libxml2-dev openssl valgrind gnuplot-nox groff-base systemd
  # tests/wireshark: tshark dissects with packaging/wireshark/cpns.lua what tcpdump
  # captured in a network namespace (ip from iproute2 sets its loopback up)
  tshark tcpdump iproute2
  # libp11-kit-dev: the standard PKCS#11 header (pkcs11.h) for the PKCS#11 key store, nothing
  # linked; softhsm2: the software token the PKCS#11 tests and make demo-pkcs11 run on.
  libp11-kit-dev softhsm2
)
# Debian packages: dpkg-buildpackage with debhelper, and lintian.
deb=(debhelper dpkg-dev fakeroot lintian)

check=0
set_name=all
for arg in "$@"; do
  case $arg in
    --check) check=1 ;;
    --all | all) set_name=all ;;
    --build | build) set_name=build ;;
    --runtime | runtime) set_name=runtime ;;
    --deb | deb) set_name=deb ;;
    *)
      echo "usage: install-deps.sh [--check] [--all|--build|--runtime|--deb]" >&2
      exit 2
      ;;
  esac
done
case $set_name in
  runtime) packages=("${runtime[@]}") ;;
  build) packages=("${build[@]}") ;;
  all) packages=("${build[@]}" "${tests[@]}") ;;
  deb) packages=("${build[@]}" "${tests[@]}" "${deb[@]}") ;;
esac

# "A|B": the first alternative installed, else the first apt knows, else A.
pick() {
  local alt IFS='|'
  for alt in $1; do
    if dpkg-query -W -f='${Status}' "$alt" 2>/dev/null | grep -q "install ok installed"; then
      echo "$alt"
      return
    fi
  done
  for alt in $1; do
    if [ -n "$(apt-cache policy "$alt" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v none)" ]; then
      echo "$alt"
      return
    fi
  done
  echo "${1%%|*}"
}

missing=()
for p in "${packages[@]}"; do
  case $p in *'|'*) p=$(pick "$p") ;; esac
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    case " ${missing[*]} " in *" $p "*) ;; *) missing+=("$p") ;; esac
  fi
done

if [ $check = 1 ]; then
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing packages: ${missing[*]}" >&2
    exit 1
  fi
  exit 0
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
