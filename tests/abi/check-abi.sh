#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The ABI of a shared library of the project (libcpns.so, libcpns-store.so) is
# exactly what its public headers declare with CPNS_API (include/cpns/export.h),
# in both directions:
#   - every function or object an API header declares carries CPNS_API; test
#     hooks (CPNS_TESTING) are declared only in INCLUDE_DIR/testing.h, which
#     `make install` leaves out, and every declaration there carries it;
#   - every CPNS_API declaration of the API headers is exported by LIB_SO;
#   - every CPNS_PRIVATE declaration of the --private headers (lib/internal.h:
#     the helpers libcpns-store.so calls in libcpns.so) is exported too;
#   - LIB_SO exports nothing else (no internal function of lib/, no test hook).
# The API headers are INCLUDE_DIR/*.h except testing.h, narrowed by --only
# NAME (only these) or --except NAME (all but these), so that each header
# belongs to one library.
# Names reserved for the implementation (a leading underscore: _init, the
# sanitizers' __odr_asan.* and the like) are the toolchain's, not ours.
#   tests/abi/check-abi.sh LIB_SO INCLUDE_DIR [--only H | --except H]... [--private FILE]...
set -euo pipefail

so=$1
inc=$2
shift 2
only=() except=() private=()
while [ $# -gt 0 ]; do
  case $1 in
  --only) only+=("$2") ;;
  --except) except+=("$2") ;;
  --private) private+=("$2") ;;
  *) echo "abi: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
lib=$(basename "$so")
[ -f "$so" ] || { echo "abi: $so is missing" >&2; exit 1; }
ls "$inc"/*.h >/dev/null || { echo "abi: no headers in $inc" >&2; exit 1; }

headers=()
for h in "$inc"/*.h; do
  name=$(basename "$h")
  [ "$name" = testing.h ] && continue
  if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qx "$name"; then continue; fi
  if [ ${#except[@]} -gt 0 ] && printf '%s\n' "${except[@]}" | grep -qx "$name"; then continue; fi
  headers+=("$h")
done
[ ${#headers[@]} -gt 0 ] || { echo "abi: no API header selected in $inc" >&2; exit 1; }

work=$(mktemp -d /tmp/cpns-abi.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The dynamic symbols the library defines: "T name", "D name", "R name", ...
nm -D --defined-only "$so" | awk 'NF >= 3 && $3 !~ /^_/ { print $3 }' | sort -u >"$work/exported"

# The declarations of headers, one "MACRO name header" line each (MACRO is
# CPNS_API, CPNS_TESTING, CPNS_PRIVATE or - for none). Comments, preprocessor
# lines and the extern "C" wrapper go first, then every brace body (struct,
# enum) from the innermost out; what remains splits into declarations at each
# ';'. A function is the identifier before the first '(' that is not a
# typedef and not a function pointer ("(*name)"); an object is an extern
# declaration.
declarations() {
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
      my $macro = $d =~ /^(CPNS_API|CPNS_TESTING|CPNS_PRIVATE)\b/ ? $1 : "-";
      my $name;
      if ($d =~ /\bextern\b/ && $d !~ /\(/) {
        ($name) = $d =~ /(\w+)\s*(?:\[[^\]]*\]\s*)*$/;
      } elsif ($d =~ /^(?:(?!\(\s*\*).)*?\b([A-Za-z_]\w*)\s*\(/) {
        $name = $1;
      }
      print "$macro $name $h\n" if defined $name;
    }' "$@"
}

declarations "${headers[@]}" | sort -k2,2 >"$work/declared"
if [ -f "$inc/testing.h" ]; then
  declarations "$inc/testing.h" | sort -k2,2 >"$work/hooks"
else
  : >"$work/hooks"
fi
if [ ${#private[@]} -gt 0 ]; then
  declarations "${private[@]}" | awk '$1 == "CPNS_PRIVATE"' | sort -k2,2 >"$work/private"
else
  : >"$work/private"
fi

fail=0
while read -r macro name h; do
  if [ "$macro" = - ]; then
    echo "abi: $name ($h) is declared without CPNS_API, so $lib does not export it:" \
      "declare it 'CPNS_API ... $name(...);' (or move a test hook to testing.h, CPNS_TESTING)"
    fail=1
  elif [ "$macro" = CPNS_API ] && ! grep -qx "$name" "$work/exported"; then
    echo "abi: $name ($h) is declared CPNS_API but $lib does not export it" \
      "(no definition in its sources, or a static one?)"
    fail=1
  elif [ "$macro" != CPNS_API ]; then
    echo "abi: $name ($h) is declared $macro in an installed header: test hooks go to" \
      "testing.h (CPNS_TESTING), private helpers to lib/internal.h (CPNS_PRIVATE)"
    fail=1
  fi
done <"$work/declared"

while read -r macro name h; do
  if [ "$macro" != CPNS_TESTING ]; then
    echo "abi: $name ($h) is declared in testing.h without CPNS_TESTING"
    fail=1
  elif grep -qx "$name" "$work/exported"; then
    echo "abi: $name ($h) is a CPNS_TESTING hook but $lib exports it"
    fail=1
  fi
done <"$work/hooks"

while read -r macro name h; do
  if ! grep -qx "$name" "$work/exported"; then
    echo "abi: $name ($h) is declared CPNS_PRIVATE but $lib does not export it"
    fail=1
  fi
done <"$work/private"

awk '$1 == "CPNS_API" { print $2 }' "$work/declared" | sort -u >"$work/api"
awk '{ print $2 }' "$work/private" | sort -u >"$work/private_names"
sort -u "$work/api" "$work/private_names" >"$work/allowed"
while read -r name; do
  echo "abi: $lib exports $name, which no selected header of $inc declares with CPNS_API" \
    "(an internal symbol: make it static, or check that the library is built with" \
    "-fvisibility=hidden and that no lib/ definition carries CPNS_API)"
  fail=1
done < <(comm -23 "$work/exported" "$work/allowed")

n_api=$(wc -l <"$work/api")
n_priv=$(wc -l <"$work/private_names")
n_exp=$(wc -l <"$work/exported")
n_test=$(wc -l <"$work/hooks")
if [ $fail -ne 0 ]; then
  echo "abi: FAILED: $lib exports $n_exp symbols; the headers declare $n_api with CPNS_API" \
    "and $n_priv with CPNS_PRIVATE"
  exit 1
fi
echo "abi: $lib exports exactly the $n_api CPNS_API declarations of ${#headers[@]} headers of" \
  "$inc and $n_priv CPNS_PRIVATE helpers ($n_test CPNS_TESTING test hooks in testing.h, none exported)"
