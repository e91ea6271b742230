#!/usr/bin/env bash
# Finds call loops between files: two object files that each use a symbol the other defines.
# Arrows must go one way (STYLE.md, "Layout"); a loop means two files that cannot be read, tested
# or replaced apart. Usage: scripts/call-loops.sh OBJECT... ; prints each loop, exits 1 if any.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
names=()
for object in "$@"; do
    name=$(basename "$object")
    names+=("$name")
    nm "$object" | awk '$2 ~ /^[TDBRC]$/ {print $3}' | sort -u >"$tmp/$name.defines"
    nm "$object" | awk '$1 == "U" {print $2}' | sort -u >"$tmp/$name.uses"
done
loops=0
for a in "${names[@]}"; do
    for b in "${names[@]}"; do
        [[ "$a" < "$b" ]] || continue
        a_uses=$(comm -12 "$tmp/$a.uses" "$tmp/$b.defines" | head -3 | paste -sd, -)
        b_uses=$(comm -12 "$tmp/$b.uses" "$tmp/$a.defines" | head -3 | paste -sd, -)
        if [[ -n "$a_uses" && -n "$b_uses" ]]; then
            echo "call loop: $a uses $a_uses of $b; $b uses $b_uses of $a"
            loops=$((loops + 1))
        fi
    done
done
[[ $loops -eq 0 ]]
