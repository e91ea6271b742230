#!/bin/bash
# Fails when two object files of one folder call each other (each uses a symbol the other
# defines): the layering rule of ARCHITECTURE.md, checked where the linker can see it.
# Usage: check_call_loops.sh <directory of .o files>...
status=0
for dir in "$@"; do
    objects=("$dir"/*.o)
    for a in "${objects[@]}"; do
        for b in "${objects[@]}"; do
            [[ "$a" < "$b" ]] || continue
            ab=$(comm -12 <(nm -u "$a" | awk '{print $2}' | sort -u) \
                          <(nm --defined-only "$b" | awk '{print $3}' | sort -u))
            ba=$(comm -12 <(nm -u "$b" | awk '{print $2}' | sort -u) \
                          <(nm --defined-only "$a" | awk '{print $3}' | sort -u))
            if [[ -n "$ab" && -n "$ba" ]]; then
                echo "call loop: $(basename "$a") uses" $ab "; $(basename "$b") uses" $ba
                status=1
            fi
        done
    done
done
exit $status
