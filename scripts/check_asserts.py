#!/usr/bin/env python3
"""Fails when a RUSH_ASSERT in the tree has a side effect (include/rush/assert.h).

An assertion may compare, read fields and call functions that only read; it may not assign,
increment, or call anything that does work. Functions known to only read are listed below; any
other call inside RUSH_ASSERT is reported, so a new reader is added here on purpose. Work that
must succeed is done on its own line (or, in test and benchmark set-up, with RUSH_VERIFY).
"""
import glob
import os
import re
import sys

READERS = {
    "sizeof", "memcmp", "memchr", "strlen", "strcmp", "atomic_load", "all_zero", "nn_errno",
    "rush_key_is_zero", "rush_stream_carries", "rush_wire_message_bytes", "rush_replicated_bytes", "rush_wal_batch_bytes",
    "rush_wal_events_checksum", "rush_wal_decode_name", "rush_shard_check", "shard_is_fresh",
    "result_is_well_formed", "error_is_well_formed", "count_check", "count_invalid",
    "rush_sku_check", "rush_op_name", "rush_outcome_name", "json_is_object", "json_is_string",
    "json_is_true", "json_object_get", "json_string_value", "json_string_length", "member_u64",
    "rush_timer_wheel_scheduled",
}
FOLDERS = ["engine", "proto", "tests", "bench", "loadgen", "include"]


def assert_bodies(text):
    for match in re.finditer(r"RUSH_ASSERT(_DEBUG)?\(", text):
        if text[max(0, match.start() - 8):match.start()].endswith("define "):
            continue
        end, depth = match.end(), 1
        while depth and end < len(text):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        yield text.count("\n", 0, match.start()) + 1, text[match.end():end - 1]


def problems(path):
    with open(path, encoding="utf-8") as file:
        text = file.read()
    for line, body in assert_bodies(text):
        code = re.sub(r'"(\\.|[^"\\])*"', '""', body)
        calls = set(re.findall(r"([A-Za-z_]\w*)\s*\(", code)) - READERS
        writes = re.search(r"(?<![=!<>])=(?!=)", code) or "++" in code or "--" in code
        if calls or writes:
            what = ", ".join(sorted(calls)) if calls else "an assignment"
            yield f"{path}:{line}: RUSH_ASSERT with a side effect ({what}): {' '.join(body.split())}"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    found = []
    for folder in FOLDERS:
        for path in sorted(glob.glob(os.path.join(root, folder, "**", "*.[ch]"), recursive=True)):
            found.extend(problems(path))
    for problem in found:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
