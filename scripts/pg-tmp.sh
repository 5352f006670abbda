#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A throwaway PostgreSQL cluster in one directory, for tests, CI, demos and
# benchmarks (issue #11, item 4; SCALEOUT.md section 6). It listens only on a
# Unix socket inside DIR, never on TCP, and touches no root-owned path:
#   scripts/pg-tmp.sh start DIR       creates DIR (absent or empty), initdb, starts
#                                     the server, creates database cpns, prints
#                                     its libpq URI (also written to DIR/uri)
#   scripts/pg-tmp.sh stop DIR        stops it (-m immediate) and deletes DIR
#   scripts/pg-tmp.sh restart DIR [immediate|fast]   pg_ctl restart (default immediate)
#   scripts/pg-tmp.sh uri DIR         prints the URI
#   scripts/pg-tmp.sh psql DIR [ARGS] runs psql on database cpns
# The URI reads postgresql:///cpns?host=DIR&port=PORT&user=cpns (user cpns,
# trust authentication: the socket's directory is the only way in).
# Run as root, the cluster belongs to nobody:nogroup and initdb, pg_ctl and the
# server run under setpriv (PostgreSQL refuses root); DIR's parents must then be
# traversable by nobody (mktemp -d makes 0700 directories: chmod 0755 them).
# Environment:
#   PG_FAST=1      fsync, synchronous_commit and full_page_writes off: for
#                  benchmarks only, a crash may then lose or corrupt commits
#   PG_BIN=DIR     where initdb and pg_ctl are (default: the newest
#                  /usr/lib/postgresql/*/bin, else PATH)
set -euo pipefail

usage() {
  echo "usage: pg-tmp.sh start|stop|uri DIR | restart DIR [immediate|fast] | psql DIR [ARGS...]" >&2
  exit 2
}
die() {
  echo "pg-tmp.sh: $*" >&2
  exit 1
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2

# The directory goes into a libpq URI and into pg_ctl's -o string, both unquoted:
# keep it to characters that need no escaping in either.
case $dir in
  '' | *[!A-Za-z0-9/._-]*) die "DIR '$dir' may only contain letters, digits and / . _ -" ;;
esac
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
dir=${dir%/}

# The binaries: PG_BIN, else the newest Debian cluster version, else PATH.
bin=${PG_BIN:-}
if [ -z "$bin" ]; then
  newest=$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if [ -n "$newest" ] && [ -x "$newest/pg_ctl" ]; then
    bin=$newest
  elif command -v pg_ctl >/dev/null; then
    bin=$(dirname "$(command -v pg_ctl)")
  else
    die "no PostgreSQL found (no /usr/lib/postgresql/*/bin, no pg_ctl in PATH); see scripts/install-deps.sh"
  fi
fi
{ [ -x "$bin/pg_ctl" ] && [ -x "$bin/initdb" ]; } || die "no initdb and pg_ctl in $bin"
psql_bin=$bin/psql
[ -x "$psql_bin" ] || psql_bin=psql

# As root, the server side runs as nobody; the cwd is DIR so that no tool
# trips over a cwd nobody cannot read.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    (cd "$dir" && setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

# The first directory on the way to $1 (from /, over the part that exists) that
# nobody cannot traverse, if any.
untraversable() {
  local p=$1 path='' part
  while [ ! -e "$p" ]; do p=$(dirname "$p"); done
  local IFS=/
  for part in $p; do
    [ -n "$part" ] || continue
    path=$path/$part
    if ! setpriv --reuid=nobody --regid=nogroup --clear-groups -- test -x "$path"; then
      echo "$path"
      return
    fi
  done
}

marker=.pg-tmp # start writes it first; stop deletes only a DIR that has it
ours() {
  [ -f "$dir/$marker" ] || die "$dir was not made by pg-tmp.sh start (no $dir/$marker)"
}

uri() {
  [ -f "$dir/uri" ] || die "$dir/uri missing: was '$0 start $dir' run?"
  cat "$dir/uri"
}

show_log() {
  if [ -f "$dir/log" ]; then
    echo "pg-tmp.sh: last lines of $dir/log:" >&2
    tail -n 20 "$dir/log" >&2
  fi
}

start() {
  if [ "$(id -u)" = 0 ]; then
    local bad
    bad=$(untraversable "$(dirname "$dir")")
    [ -z "$bad" ] || die "user nobody cannot traverse $bad (the server runs as nobody when started by root): chmod o+x it or choose another DIR"
  fi
  if [ -e "$dir" ]; then
    [ -d "$dir" ] || die "$dir exists and is not a directory"
    [ -z "$(ls -A "$dir")" ] || die "$dir exists and is not empty"
  else
    mkdir -p "$dir"
  fi
  chmod 0755 "$dir"
  : >"$dir/$marker"

  # The socket file DIR/.s.PGSQL.PORT must fit sockaddr_un.sun_path (108 bytes).
  local port=5432
  while [ -e "$dir/.s.PGSQL.$port" ] || [ -e "$dir/.s.PGSQL.$port.lock" ]; do
    port=$((port + 1))
  done
  local sock="$dir/.s.PGSQL.$port"
  [ ${#sock} -le 107 ] || die "socket path $sock is longer than 107 bytes: use a shorter DIR"

  if [ "$(id -u)" = 0 ]; then
    chown -R nobody:nogroup "$dir"
  fi

  # -A trust: the socket is in DIR (0755, owned by the cluster's user), and
  # there is no TCP listener. --no-sync: initdb's own fsyncs only cost time for
  # a throwaway cluster; the server itself keeps fsync on unless PG_FAST=1.
  as_owner "$bin/initdb" -D "$dir/data" -U cpns -A trust --no-sync -E UTF8 --locale=C \
    >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    die "initdb failed"
  }

  local opts="-k $dir -p $port -c listen_addresses=''"
  # Crash recovery (restart -m immediate) first makes the data directory
  # durable: one syncfs() of the file system instead of an fsync() per file,
  # the same guarantee in 1 s instead of 4-6 s here (PostgreSQL >= 14, Linux).
  local major
  major=$("$bin/postgres" -V | sed -n 's/.* \([0-9][0-9]*\)\..*/\1/p')
  if [ "$(uname -s)" = Linux ] && [ "${major:-0}" -ge 14 ]; then
    opts="$opts -c recovery_init_sync_method=syncfs"
  fi
  if [ "${PG_FAST:-0}" = 1 ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  echo "$opts" >"$dir/opts"
  as_owner "$bin/pg_ctl" -w -s -D "$dir/data" -l "$dir/log" -o "$opts" start || {
    show_log
    die "pg_ctl start failed"
  }

  local base="postgresql:///%s?host=$dir&port=$port&user=cpns"
  # shellcheck disable=SC2059 # base is our own format
  "$psql_bin" -X -q -v ON_ERROR_STOP=1 -d "$(printf "$base" postgres)" -c 'CREATE DATABASE cpns' ||
    die "CREATE DATABASE cpns failed"
  # shellcheck disable=SC2059
  printf "$base\n" cpns >"$dir/uri"
  cat "$dir/uri"
}

stop() {
  [ -d "$dir" ] || return 0
  ours
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -w -s -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

restart() {
  local mode=${1:-immediate}
  case $mode in immediate | fast) ;; *) usage ;; esac
  ours
  as_owner "$bin/pg_ctl" -w -s -D "$dir/data" -l "$dir/log" -m "$mode" -o "$(cat "$dir/opts")" restart || {
    show_log
    die "pg_ctl restart failed"
  }
}

case $cmd in
  start) [ $# -eq 0 ] || usage; start ;;
  stop) [ $# -eq 0 ] || usage; stop ;;
  restart) [ $# -le 1 ] || usage; restart "$@" ;;
  uri) [ $# -eq 0 ] || usage; uri ;;
  psql) exec "$psql_bin" -X -d "$(uri)" "$@" ;;
  *) usage ;;
esac
