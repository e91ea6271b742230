#!/bin/sh
# call-loops.sh OBJECT_DIR... — lists every pair of object files in each directory that use
# symbols of each other (a call loop between two files), and exits 1 if there is one.
# Example: scripts/call-loops.sh build/CMakeFiles/rush_front.dir/engine/front
set -eu
status=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for dir in "$@"; do
    for f in "$dir"/*.o; do
        nm --defined-only "$f" | awk '$2 ~ /[TDRB]/ {print $3}' | sort -u >"$tmp/$(basename "$f").def"
        nm -u "$f" | awk '{print $2}' | sort -u >"$tmp/$(basename "$f").use"
    done
    for f in "$dir"/*.o; do
        for g in "$dir"/*.o; do
            a=$(basename "$f")
            b=$(basename "$g")
            [ "$a" \< "$b" ] || continue
            ab=$(comm -12 "$tmp/$a.use" "$tmp/$b.def" | tr '\n' ' ')
            ba=$(comm -12 "$tmp/$b.use" "$tmp/$a.def" | tr '\n' ' ')
            if [ -n "$ab" ] && [ -n "$ba" ]; then
                echo "loop: $a uses $ab; $b uses $ba"
                status=1
            fi
        done
    done
done
[ $status -eq 0 ] && echo "no call loops in: $*"
exit $status
