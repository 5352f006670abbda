#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages the project needs, skipping those already there.
#   scripts/install-deps.sh           install what is missing (needs root or sudo)
#   scripts/install-deps.sh --check   exit 1 and list what is missing, install nothing
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libssl-dev libexpat1-dev libevent-dev libjansson-dev libsqlite3-dev libcmocka-dev
  libpq-dev postgresql
  libxml2-utils libxml2-dev openssl valgrind gnuplot-nox groff-base
  # tests/wireshark: tshark dissects with packaging/wireshark/cpns.lua what tcpdump
  # captured in a network namespace (ip from iproute2 sets its loopback up)
  tshark tcpdump iproute2
  # libp11-kit-dev: the standard PKCS#11 header (pkcs11.h) for the PKCS#11 key store, nothing
  # linked; softhsm2: the software token the PKCS#11 tests and make demo-pkcs11 run on.
  libp11-kit-dev softhsm2
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${1:-}" = "--check" ]; then
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
