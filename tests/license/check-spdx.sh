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
missing=0
checked=0
for f in $(list); do
    case "$f" in
        fuzz/corpus/* | *.md | *.png | *.txt | LICENSE | NOTICE | .gitignore | .clang-format) continue ;;
        *.c | *.h | *.sh | *.cmake | */CMakeLists.txt | CMakeLists.txt | Makefile | *.in | \
        *.[1-8] | *.lua | *.xsd | *.service | *.py | .ci/*) ;;
        *) continue ;;
    esac
    [ -f "$f" ] || continue
    checked=$((checked + 1))
    if ! head -n 3 "$f" | grep -q 'SPDX-License-Identifier: Apache-2.0'; then
        echo "no SPDX-License-Identifier: Apache-2.0 line in the first 3 lines: $f"
        missing=$((missing + 1))
    fi
done
echo "$checked files checked, $missing without an SPDX line"
[ "$checked" -gt 100 ] || { echo "too few files found ($checked): wrong directory?"; exit 1; }
[ "$missing" -eq 0 ]
