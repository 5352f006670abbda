#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# spdx_headers (issue #13 item 1): every source file of the repository names
# its licence in an SPDX-License-Identifier line among its first three lines:
# C sources and headers, shell scripts, CMake files, Makefiles, man pages, Lua,
# the XML schema, systemd units and Debian packaging scripts. Data (fuzz
# corpora, captures), Markdown and the licence texts themselves are exempt.
# Usage: check-spdx.sh SOURCE_DIR
set -eu
cd "$1"
if [ -d .git ] && command -v git >/dev/null 2>&1; then
    list() { git ls-files; }
else
    list() { find . -type f -not -path './build*' -not -path './.git/*' | sed 's|^\./||'; }
fi
# The file names go to one awk that reads the first 3 lines of each: no
# process per file (a head and a grep for each of ~600 files took over 60 s
# with every core busy).
files=$(mktemp)
trap 'rm -f "$files"' EXIT
empty=0
for f in $(list); do
    case "$f" in
        fuzz/corpus/* | *.md | *.png | *.txt | LICENSE | NOTICE | .gitignore | .clang-format) continue ;;
        *.c | *.h | *.sh | *.cmake | */CMakeLists.txt | CMakeLists.txt | Makefile | *.in | \
        *.[1-8] | *.lua | *.xsd | *.service | *.py | .ci/*) ;;
        *) continue ;;
    esac
    [ -f "$f" ] || continue
    if [ ! -s "$f" ]; then
        echo "no SPDX-License-Identifier: Apache-2.0 line in the first 3 lines: $f (empty)"
        empty=$((empty + 1))
        continue
    fi
    printf '%s\n' "$f" >>"$files"
done
# shellcheck disable=SC2046 # one file name per line, none with blanks (git ls-files)
awk -v empty="$empty" '
    function done_file() {
        if (!ok) {
            print "no SPDX-License-Identifier: Apache-2.0 line in the first 3 lines: " cur
            missing++
        }
    }
    FNR == 1 { if (cur != "") done_file(); cur = FILENAME; ok = 0; checked++ }
    FNR <= 3 && index($0, "SPDX-License-Identifier: Apache-2.0") { ok = 1 }
    FNR >= 3 { nextfile }
    END {
        if (cur != "") done_file()
        checked += empty; missing += empty
        print checked " files checked, " missing " without an SPDX line"
        if (checked <= 100) { print "too few files found (" checked "): wrong directory?"; exit 1 }
        exit missing > 0
    }' $(cat "$files")
