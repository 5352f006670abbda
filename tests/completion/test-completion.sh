#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Sources packaging/bash-completion/cpnsctl in bash and checks what it
# completes for a few command lines (COMP_WORDS/COMP_CWORD as bash sets them):
# commands, subcommands, options, files after --key-file, and SG/PNE IDs,
# which it reads from `cpnsctl --json sg list` / `pne list` of the program on
# the line (here a stub that records its arguments and answers like the
# server), passing the line's --server and --token-file on.
# Usage: test-completion.sh COMPLETION_FILE
set -u
file=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# shellcheck disable=SC1090
. "$file" || { echo "FAIL: cannot source $file"; exit 1; }
complete -p cpnsctl >/dev/null || { echo "FAIL: no completion registered for cpnsctl"; exit 1; }

cat >"$tmp/cpnsctl" <<'STUB'
#!/bin/sh
echo "$*" >>"$(dirname "$0")/calls"
case "$*" in
*"sg list"*) echo '[{"sgid":"sg-family","key_version":1},{"sgid":"sg-home","key_version":2}]' ;;
*"pne list"*) echo '[{"pneid":"pne-tv","registered":true},{"pneid":"pne-phone","registered":false}]' ;;
esac
STUB
chmod +x "$tmp/cpnsctl"
touch "$tmp/key-a.key" "$tmp/key-b.key"

# check "EXPECTED WORDS" word... : the words of the line, the last one being completed.
check()
{
    local want=$1
    shift
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _cpnsctl cpnsctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
    local got
    got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
    # shellcheck disable=SC2086 # split on purpose
    want=$(printf "%s\n" $want | sort | tr '\n' ' ' | sed 's/ $//')
    if [[ $got != "$want" ]]; then
        echo "FAIL: '$*' completes to '$got', want '$want'"
        fail=1
    else
        echo "ok: '$*' -> '$got'"
    fi
}

check "pne sg" cpnsctl ""
check "sg" cpnsctl s
check "--server" cpnsctl --se
check "--token-file --timeout" cpnsctl --t
check "add set-key list" cpnsctl pne ""
check "set-key" cpnsctl pne se
check "show" cpnsctl sg sh
check "create" cpnsctl --json sg cr
check "rekey remove" cpnsctl sg re
check "wait" cpnsctl --server 127.0.0.1:7462 sg w
check "--json --timeout" cpnsctl sg wait sg-1 --
check "--key-file" cpnsctl pne add pne-1 --key-f
check "$tmp/key-a.key $tmp/key-b.key" cpnsctl pne add pne-1 --key-file "$tmp/key-"
check "" cpnsctl --server ""

# IDs, from the program on the line, with the line's --server and --token-file.
stub=$tmp/cpnsctl
check "sg-family sg-home" "$stub" --server 127.0.0.1:9 --token-file /t sg show ""
grep -q -- "--server 127.0.0.1:9 --token-file /t --timeout 2 --json sg list" "$tmp/calls" ||
    { echo "FAIL: the ID lookup did not pass --server/--token-file on: $(cat "$tmp/calls")"; fail=1; }
check "sg-home" "$stub" sg wait sg-h
check "pne-tv pne-phone" "$stub" sg add sg-family ""
check "pne-phone" "$stub" sg create sg-new pne-tv pne-p
check "" "$stub" sg create ""
check "pne-tv" "$stub" pne set-key pne-t
check "" "$stub" pne add ""
check "" "$stub" sg show sg-family ""
CPNSCTL_COMPLETE_IDS=0 check "" "$stub" sg show ""

exit $fail
