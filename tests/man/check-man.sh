#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Checks one man page of man/ (tests/man.cmake runs it once per page):
#   check-man.sh PAGE [PROGRAM|-] [PROTOCOL.md]
#
# - groff renders it without a single warning (-ww: every warning category);
# - it has the sections an operator looks for, and its .TH matches its file name;
# - every cpns page it refers to, name(N), exists beside it;
# - with PROGRAM: the long options printed by `PROGRAM --help` and those named
#   in the page's OPTIONS section are the same set; each "default V" that
#   --help gives for an option appears in that option's entry of the page;
#   the commands of --help (cpnsctl pne add, cpns-pne keys, ...) and the
#   entries of the page's COMMANDS section are the same set. --help is run
#   live, so the page must follow every option the programs gain or lose;
# - with PROTOCOL.md (cpns.7): RETURN CODES lists every Return of its 3.2 table.
set -u

page=$1
prog=${2:--}
protocol=${3:-}
fail=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

err() {
    echo "FAIL $(basename "$page"): $*" >&2
    fail=1
}

[ -r "$page" ] || { err "cannot read $page"; exit 1; }
name=$(basename "$page")
title=${name%.*}
section=${name##*.}

# --- rendering ---
if ! command -v groff >/dev/null 2>&1; then
    err "groff is not installed (Debian: groff-base; scripts/install-deps.sh installs it)"
    exit 1
fi
# -t: tbl, as man(1) would run it for a page that asks; -z: format, print nothing.
LC_ALL=C.UTF-8 groff -t -man -ww -z -Tutf8 "$page" >"$tmp/render" 2>&1
if [ -s "$tmp/render" ]; then
    err "groff -man -ww warns:"
    sed 's/^/    /' "$tmp/render" >&2
fi

# The roff source with font changes and escapes reduced to plain text.
sed -e 's/\\f[BIRP]//g' -e 's/\\f(..//g' -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\%//g' \
    -e 's/\\~/ /g' -e 's/\\e/\\/g' "$page" >"$tmp/plain"

# section NAME: the lines of `.SH NAME` up to the next .SH (quotes around NAME optional).
section_of() {
    awk -v want="$1" '
        /^\.SH / { s = $0; sub(/^\.SH +/, "", s); gsub(/"/, "", s); on = (s == want); next }
        on { print }' "$tmp/plain"
}

# --- structure ---
th=$(awk '/^\.TH / { print $2, $3; exit }' "$tmp/plain")
upper=$(printf '%s' "$title" | tr '[:lower:]' '[:upper:]')
[ "$th" = "$upper $section" ] || err ".TH says '$th', the file name '$upper $section'"
required="NAME DESCRIPTION FILES EXAMPLES SEE ALSO"
if [ "$prog" != "-" ]; then
    required="$required SYNOPSIS OPTIONS EXIT STATUS"
fi
if [ "$section" = 8 ]; then
    required="$required SIGNALS"
fi
# Two-word sections are matched whole.
for s in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" SIGNALS FILES EXAMPLES "SEE ALSO"; do
    case " $required " in
    *" $s "*) ;;
    *) continue ;;
    esac
    grep -Eq "^\.SH \"?$s\"?\$" "$tmp/plain" || err "no section $s"
done
section_of NAME | grep -Eq "^$title - ." || err "NAME is not '$title \\- description' (whatis needs it)"

# --- references to the other pages ---
for ref in $(grep -Eo '^\.BR cpns[a-z-]* \([0-9]\)' "$tmp/plain" | sed -e 's/^\.BR //' -e 's/ (\(.\))/.\1/'); do
    [ -r "$(dirname "$page")/$ref" ] || err "refers to $ref, which is not in $(dirname "$page")"
done

# --- options and commands against the live --help ---
if [ "$prog" != "-" ]; then
    if ! "$prog" --help >"$tmp/help" 2>&1; then
        err "$prog --help failed"
        cat "$tmp/help" >&2
        exit 1
    fi
    grep -Eo -- '--[a-z][a-z0-9-]*' "$tmp/help" | sort -u >"$tmp/help-opts"
    section_of OPTIONS >"$tmp/options"
    grep -Eo -- '--[a-z][a-z0-9-]*' "$tmp/options" | sort -u >"$tmp/page-opts"
    for o in $(comm -23 "$tmp/help-opts" "$tmp/page-opts"); do
        err "$o is in '$(basename "$prog") --help' but not in the OPTIONS section"
    done
    for o in $(comm -13 "$tmp/help-opts" "$tmp/page-opts"); do
        err "$o is in the OPTIONS section but not in '$(basename "$prog") --help'"
    done

    # Defaults: each --help entry ("  --opt ..." and its more indented
    # continuation lines) that says "default V" -> "opt<TAB>V".
    awk '
        function flush() { if (key != "" && match(text, /default [^ ,;)]+/)) {
                               v = substr(text, RSTART + 8, RLENGTH - 8); sub(/[:.]$/, "", v)
                               print key "\t" v } key = "" }
        /^  --[a-z]/ { flush(); key = $1; sub(/,$/, "", key); text = $0; next }
        /^   / && key != "" { text = text " " $0; next }
        { flush() }
        END { flush() }' "$tmp/help" >"$tmp/help-defaults"
    # The page: each .TP entry of OPTIONS keyed by the first option of its tag line.
    while IFS="$(printf '\t')" read -r opt value; do
        awk -v opt="$opt" '
            /^\.(SS|SH)/ { on = 0; next }
            /^\.TP/ { tag = 1; on = 0; next }
            tag { tag = 0; t = $0; sub(/^\.[A-Z]+ /, "", t); split(t, w, /[ \[]/); on = (w[1] == opt); next }
            on { print }' "$tmp/options" >"$tmp/entry"
        grep -Fq -- "$value" "$tmp/entry" ||
            err "$opt: --help gives the default '$value', its entry in OPTIONS does not"
    done <"$tmp/help-defaults"

    # Commands: lines indented by exactly two spaces that start with lower-case words.
    awk 'match($0, /^  [a-z][a-z-]*( [a-z][a-z-]*)*/) { print substr($0, 3, RLENGTH - 2) }' \
        "$tmp/help" | sort -u >"$tmp/help-cmds"
    section_of COMMANDS | awk '
        /^\.TP/ { tag = 1; next }
        tag { tag = 0; t = $0; sub(/^\.[A-Z]+ /, "", t)
              if (match(t, /^[a-z][a-z-]*( [a-z][a-z-]*)*/)) print substr(t, 1, RLENGTH) }' |
        sort -u >"$tmp/page-cmds"
    comm -23 "$tmp/help-cmds" "$tmp/page-cmds" | while read -r c; do
        echo "FAIL $name: command '$c' is in --help but not in the COMMANDS section" >&2
        echo x >>"$tmp/cmd-fail"
    done
    comm -13 "$tmp/help-cmds" "$tmp/page-cmds" | while read -r c; do
        echo "FAIL $name: command '$c' is in the COMMANDS section but not in --help" >&2
        echo x >>"$tmp/cmd-fail"
    done
    [ -e "$tmp/cmd-fail" ] && fail=1
    echo "$name: $(wc -l <"$tmp/help-opts") options, $(wc -l <"$tmp/help-defaults") defaults," \
        "$(wc -l <"$tmp/help-cmds") commands checked against $(basename "$prog") --help"
fi

# --- Return codes against the protocol's table (cpns.7) ---
if [ -n "$protocol" ]; then
    awk '/^### 3\.2 /{on=1; next} /^#/{on=0} on && /^\| [0-9]+ \|/ { print $2 }' "$protocol" |
        sort -u >"$tmp/proto-returns"
    [ -s "$tmp/proto-returns" ] || err "no Return code table found in $protocol (section 3.2)"
    section_of "RETURN CODES" | awk '/^\.TP/ { tag = 1; next } tag { tag = 0; print $NF }' |
        sort -u >"$tmp/page-returns"
    if ! cmp -s "$tmp/proto-returns" "$tmp/page-returns"; then
        err "RETURN CODES lists $(tr '\n' ' ' <"$tmp/page-returns")but $protocol 3.2 has" \
            "$(tr '\n' ' ' <"$tmp/proto-returns")"
    fi
fi

[ $fail -eq 0 ] && echo "$name: ok"
exit $fail
