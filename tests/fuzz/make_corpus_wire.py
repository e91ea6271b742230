#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_wire into tests/fuzz/corpus/wire/.

An independent encoding of proto/PROTOCOL.md (struct.pack, not the C encoder), so the seeds
also cross-check the document. Valid messages of every kind plus a few that must be refused.
Run from the repository root: python3 tests/fuzz/make_corpus_wire.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "wire")
MAGIC = b"RUSH"
REQUEST, RESULT, ERROR, SKU_PUT = 1, 2, 3, 4
SIZES = {REQUEST: 64, RESULT: 56, ERROR: 128, SKU_PUT: 224}


def header(kind, count, body_bytes, message_id, version=1, flags=0, reserved=0, magic=MAGIC):
    return magic + struct.pack("<HHIIQII", version, kind, count, body_bytes, message_id, flags,
                               reserved)


def message(kind, records, message_id, **overrides):
    body = b"".join(records)
    assert all(len(r) == SIZES[kind] for r in records)
    return header(kind, len(records), len(body), message_id, **overrides) + body


def request(op, qty=0, sku=0, user=0, target=0, amount=0, tag=0, key=b"", flags=0, pad=0):
    return struct.pack("<BBHIQQQqQ16s", op, flags, pad, qty, sku, user, target, amount, tag,
                       key.ljust(16, b"\0"))


def result(outcome, flags=0, reason=0, state=0, qty=0, order=0, group=0, remaining=0,
           reserved=0, confirmed=0, tag=0):
    return struct.pack("<BBBBIQQqqqQ", outcome, flags, reason, state, qty, order, group,
                       remaining, reserved, confirmed, tag)


def sku(sku_id, name, stock, price_fen, qty_max=1, group_size=0, unlimited=0, policy=0,
        group_ttl=0, groups_open_max=0, virtual_seats_max=0, virtual_budget=0, fields=0):
    return struct.pack("<Q40sqqqqqqIIIIIIBBBBIqqBB6sqq4q4sB3sq8s", sku_id, name, stock,
                       price_fen, 0, 1 << 62, 0, group_ttl, qty_max, qty_max, group_size,
                       groups_open_max, virtual_seats_max, virtual_budget, unlimited, policy, 0,
                       0, fields, 0, 0, 0, 0, b"", 0, 0, 0, 0, 0, 0, b"", 0, b"", 0, b"")


def error(code, text, record_index=0xFFFFFFFF):
    return struct.pack("<II120s", code, record_index, text.encode())


def seeds():
    two = [request(1, qty=1, sku=1001, user=42, tag=1, key=b"k-42-0001"),
           request(9, sku=1001, tag=2)]
    reply = [result(0, state=1, qty=1, order=0x0100000000000005, remaining=9, tag=1),
             result(0, remaining=9, reserved=1, confirmed=0, tag=2)]
    yield "request_2", message(REQUEST, two, 0x1122334455667788)
    yield "result_2", message(RESULT, reply, 0x1122334455667788)
    # PROTOCOL.md section 4: each op carries the fields it uses, the rest zero.
    uses = {1: "suk", 2: "tk", 3: "tk", 4: "suk", 5: "tuk", 6: "suk", 7: "t", 8: "t", 9: "s",
            10: "sak", 11: "sk", 12: "sk"}
    every_op = [request(op, qty=1 if op == 1 else 0, sku=7 if "s" in uses[op] else 0,
                        user=op if "u" in uses[op] else 0,
                        target=(1 << 56) | op if "t" in uses[op] else 0,
                        amount=5 if "a" in uses[op] else 0, tag=op,
                        key=b"k%d" % op if "k" in uses[op] else b"")
                for op in range(1, 13)]
    yield "request_every_op", message(REQUEST, every_op, 3)
    yield "request_field_problems", message(
        REQUEST, [request(99, sku=1), request(1, qty=0, sku=1), request(2, qty=3, target=5)], 4)
    yield "sku_put_2", message(SKU_PUT, [sku(1001, b"RMB-1 phone", 10, 100),
                                         sku(2002, b"group tea", 0, 990, group_size=3,
                                             unlimited=1, policy=2, group_ttl=60 * 10**9,
                                             groups_open_max=8, virtual_seats_max=1,
                                             virtual_budget=100),
                                         sku(1001, b"", 0, 120, fields=1 << 3)], 5)
    yield "error", message(ERROR, [error(4, "version 7 not supported")], 6)
    yield "bad_magic", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(8)
    yield "bad_version", message(REQUEST, two, 7, version=7)
    yield "truncated", message(REQUEST, two, 8)[:-5]
    yield "count_mismatch", header(REQUEST, 3, 100, 9) + bytes(100)
    yield "reserved_nonzero", message(REQUEST, [request(1, qty=1, flags=2)], 10)
    yield "header_only", header(REQUEST, 1, 64, 11)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
