#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Makes a throw-away PKI for tests and demos of the TLS link between
# cpns-server and cpns-gw (PROTOCOL.md section 2): a CA, a server certificate
# (CN cpns-server, SAN DNS:localhost, IP:127.0.0.1) and one client certificate
# per GW whose subject CN is that GW's PNGWID, as the server requires.
# EC P-256 keys, private keys mode 0600. Quiet unless something fails.
#
#   scripts/pki.sh DIR [PNGWID...]
#
# Writes DIR/ca.crt, DIR/ca.key, DIR/server.crt, DIR/server.key and
# DIR/PNGWID.crt, DIR/PNGWID.key. An existing CA (and server certificate) in
# DIR is reused, so GW certificates can be added later.
set -eu

usage() {
    echo "usage: $0 DIR [PNGWID...]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
case "$1" in -h | --help) usage ;; esac
dir=$1
shift

for id in "$@"; do
    # A PNGWID is 1..64 of [A-Za-z0-9._:@-] (PROTOCOL.md section 1).
    if ! printf '%s' "$id" | grep -Eq '^[A-Za-z0-9._:@-]{1,64}$'; then
        echo "$0: '$id' is not a PNGWID" >&2
        exit 2
    fi
    case "$id" in ca | server | .* )
        echo "$0: '$id' would clash with the CA or server files" >&2
        exit 2 ;;
    esac
done

command -v openssl >/dev/null || { echo "$0: openssl not found" >&2; exit 1; }
mkdir -p "$dir"
log=$(mktemp)
trap 'rm -f "$log" "$dir"/*.csr "$dir"/*.ext' EXIT

# Runs openssl quietly; on failure shows what it said.
ossl() {
    if ! openssl "$@" >>"$log" 2>&1; then
        echo "$0: openssl $1 failed:" >&2
        cat "$log" >&2
        exit 1
    fi
}

newkey() {
    (umask 077 && ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1")
    chmod 600 "$1"
}

# issue NAME CN EXTENSIONS...: a leaf certificate signed by the CA.
issue() {
    name=$1
    cn=$2
    shift 2
    newkey "$dir/$name.key"
    ossl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" "$@" \
        >"$dir/$name.ext"
    ossl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 \
        -extfile "$dir/$name.ext" -out "$dir/$name.crt"
    chmod 644 "$dir/$name.crt"
}

if [ ! -f "$dir/ca.key" ] || [ ! -f "$dir/ca.crt" ]; then
    newkey "$dir/ca.key"
    ossl req -x509 -new -key "$dir/ca.key" -subj "/CN=cpns test CA" -days 3650 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.crt"
    chmod 644 "$dir/ca.crt"
fi

if [ ! -f "$dir/server.key" ] || [ ! -f "$dir/server.crt" ]; then
    issue server cpns-server "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:localhost,IP:127.0.0.1"
fi

for id in "$@"; do
    issue "$id" "$id" "extendedKeyUsage=clientAuth"
done
