#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The ABI of libcpns.so is exactly what the public headers declare with CPNS_API
# (include/cpns/export.h), in both directions:
#   - every function or object a header in INCLUDE_DIR declares carries CPNS_API
#     (exported) or CPNS_TESTING (a test hook, never exported);
#   - every CPNS_API declaration is exported by LIBCPNS_SO;
#   - LIBCPNS_SO exports nothing else (no internal function of lib/, no test hook).
# Names reserved for the implementation (a leading underscore: _init, the
# sanitizers' __odr_asan.* and the like) are the toolchain's, not ours.
#   tests/abi/check-abi.sh LIBCPNS_SO INCLUDE_DIR
set -euo pipefail

so=$1
inc=$2
[ -f "$so" ] || { echo "abi: $so is missing" >&2; exit 1; }
ls "$inc"/*.h >/dev/null || { echo "abi: no headers in $inc" >&2; exit 1; }

work=$(mktemp -d /tmp/cpns-abi.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The dynamic symbols the library defines: "T name", "D name", "R name", ...
nm -D --defined-only "$so" | awk 'NF >= 3 && $3 !~ /^_/ { print $3 }' | sort -u >"$work/exported"

# The declarations of the headers, one "MACRO name header" line each (MACRO is
# CPNS_API, CPNS_TESTING or - for none). Comments, preprocessor lines and the
# extern "C" wrapper go first, then every brace body (struct, enum) from the
# innermost out; what remains splits into declarations at each ';'. A function
# is the identifier before the first '(' that is not a typedef and not a
# function pointer ("(*name)"); an object is an extern declaration.
for h in "$inc"/*.h; do
  perl -0777 -ne '
    my $h = $ARGV;
    $h =~ s{.*/}{};
    s{/\*.*?\*/}{ }gs;
    s{//[^\n]*}{}g;
    s{^\s*#\s*ifdef\s+__cplusplus\b.*?^\s*#\s*endif[^\n]*}{}gms;
    s{\\\n}{ }g;
    s{^\s*#[^\n]*}{}gm;
    1 while s{\{[^{}]*\}}{ }gs;
    for my $d (split /;/) {
      $d =~ s/\s+/ /g;
      $d =~ s/^ //;
      next if $d eq "" || $d =~ /^typedef\b/;
      my $macro = $d =~ /^(CPNS_API|CPNS_TESTING)\b/ ? $1 : "-";
      my $name;
      if ($d =~ /\bextern\b/ && $d !~ /\(/) {
        ($name) = $d =~ /(\w+)\s*(?:\[[^\]]*\]\s*)*$/;
      } elsif ($d =~ /^(?:(?!\(\s*\*).)*?\b([A-Za-z_]\w*)\s*\(/) {
        $name = $1;
      }
      print "$macro $name $h\n" if defined $name;
    }' "$h"
done | sort -k2,2 >"$work/declared"

fail=0
while read -r macro name h; do
  if [ "$macro" = - ]; then
    echo "abi: $name ($h) is declared without CPNS_API, so libcpns.so does not export it:" \
      "declare it 'CPNS_API ... $name(...);' (or CPNS_TESTING for a test hook that stays unexported)"
    fail=1
  elif [ "$macro" = CPNS_API ] && ! grep -qx "$name" "$work/exported"; then
    echo "abi: $name ($h) is declared CPNS_API but libcpns.so does not export it" \
      "(no definition in lib/, or a static one?)"
    fail=1
  elif [ "$macro" = CPNS_TESTING ] && grep -qx "$name" "$work/exported"; then
    echo "abi: $name ($h) is a CPNS_TESTING hook but libcpns.so exports it"
    fail=1
  fi
done <"$work/declared"

awk '$1 == "CPNS_API" { print $2 }' "$work/declared" | sort -u >"$work/api"
while read -r name; do
  echo "abi: libcpns.so exports $name, which no header in $inc declares with CPNS_API" \
    "(an internal symbol: make it static, or check that the library is built with" \
    "-fvisibility=hidden and that no lib/ definition carries CPNS_API)"
  fail=1
done < <(comm -23 "$work/exported" "$work/api")

n_api=$(wc -l <"$work/api")
n_exp=$(wc -l <"$work/exported")
n_test=$(awk '$1 == "CPNS_TESTING"' "$work/declared" | wc -l)
if [ $fail -ne 0 ]; then
  echo "abi: FAILED: libcpns.so exports $n_exp symbols; the headers declare $n_api with CPNS_API"
  exit 1
fi
echo "abi: libcpns.so exports exactly the $n_api CPNS_API declarations of $inc" \
  "($n_test CPNS_TESTING test hooks declared, none exported)"
