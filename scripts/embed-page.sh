#!/usr/bin/env bash
# Writes OUT.c holding the file IN as a C string named NAME (and NAME_bytes, its length), so that
# rushd serves its dashboard page without reading any file. Run by the build (CMakeLists.txt).
set -euo pipefail
in=$1 out=$2 name=$3
{
    echo "/* Generated from $(basename "$in") by scripts/embed-page.sh; do not edit. */"
    echo '#include <stddef.h>'
    echo "const char ${name}[] ="
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' "$in"
    echo '    "";'
    echo "const size_t ${name}_bytes = sizeof(${name}) - 1;"
} >"$out.tmp"
mv "$out.tmp" "$out"
