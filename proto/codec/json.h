/*
 * json.h — the JSON form of requests and results (ARCHITECTURE.md "Interfaces"), internal to
 * rush.
 *
 * What and why. Gateways that do not want the binary wire format send one JSON object per
 * nanomsg message and get one back. This module turns such an object into the same fixed
 * records the binary form carries (struct rush_request, or a struct rush_sku for sku_put), and a
 * result back into text. It decodes with jansson and encodes by hand into the caller's buffer.
 *
 * Workload. The JSON endpoint is for quick integration, not the rush itself: thousands of
 * messages a second on the front-end thread. Decoding allocates (jansson builds a tree, freed
 * before returning); encoding does not allocate.
 *
 * Request object. {"op":"reserve","sku":1001,"user":42,"qty":1,"key":"k-42"}
 *   op      a name from names.c (reserve, confirm, ..., resume), or the admin forms sku_put,
 *           stats and snapshot.
 *   sku     SKU id            reserve, group_open, group_join_any, query_sku, list_groups,
 *                             adjust, pause, resume
 *   user    user id           reserve, group_open, group_join, group_join_any
 *   qty     1..RUSH_JSON_QTY_MAX units                                       reserve
 *   order   order id          confirm, cancel, query_order
 *   group   group id          group_join, query_group
 *   amount  signed change of stock_total, nonzero, |amount| <= RUSH_JSON_AMOUNT_MAX   adjust
 *   key     idempotency key   every op that changes state; refused on queries
 *   tag     u64 of the caller's, echoed in the answer; optional on every request op
 *   inviter user id who invited the joiner; optional       group_join, group_join_any
 *   limit   1..RUSH_LIST_GROUPS_MAX groups to list         list_groups (see below)
 * Every field listed for an op is required, except tag and inviter; a field an op does not take
 * is refused (the binary form needs unused fields zero for a retry to match its first try).
 *
 * 64-bit numbers. JavaScript loses precision above 2^53, so the encoder writes order and group
 * ids as decimal strings always, and any other 64-bit figure as a JSON number when its
 * magnitude is at most RUSH_JSON_EXACT_MAX (2^53 - 1) and as a decimal string otherwise. The
 * decoder accepts both forms for every 64-bit field ("72057594037927937" or 1001), numbers up to
 * 2^64 - 1 included for the unsigned ones (ids and tag); 2^64 and above are refused.
 *
 * Idempotency key. A JSON string of 1..RUSH_JSON_KEY_BYTES_MAX bytes. Exactly "0x" followed by
 * 32 hex digits is taken literally (big-endian: the first two digits are bytes[0]), so a client
 * holding a 128-bit key or UUID can send it as is, and rush_json_encode_request round-trips;
 * such a key must not be all zero. Any other string is hashed: key = XXH3_128bits(string) in
 * XXH128 canonical (big-endian) byte order, so "k-42" always maps to the same key.
 *
 * Admin forms. {"op":"sku_put","sku":{"id":1001,"name":"...","stock":1000,...}} names fields of
 * struct rush_sku (see rush_json_encode_sku_put for the names); the id and at least one other
 * field are required. The names it carries become sku.fields (RUSH_SKU_FIELD_*, 0 when it names
 * all): on a live SKU only those change. A put naming every required field is a whole
 * definition and is checked with rush_sku_check (codec/sku.h), so that a bad definition is
 * refused with the same words the campaign file uses; a partial put is checked by the engine
 * once merged into the live SKU. {"op":"stats"} and {"op":"snapshot"} take no field.
 *
 * Errors. Decoders return RUSH_EPROTO and write a reason that names the problem into `why`:
 * "not a JSON object", "unknown op 'buy'", "field 'qty' must be an integer 1..1000000",
 * "missing field 'sku'", "unknown field 'foo'", "message of 70000 bytes is over the limit of
 * 65536", "invalid JSON at line 1, column 7: ...". Text taken from the message is quoted with
 * anything but printable ASCII replaced by '?', and cut short, so a reason is always plain ASCII.
 * Encoders return the bytes written (excluding the NUL they always add) or -ENOSPC when `cap`
 * is too small; they never write past buf[cap - 1].
 *
 * Invariants.
 *   1. A decoded request has zero in every field its op does not use and a nonzero key exactly
 *      when the op changes state.
 *   2. encode(decode(x)) and decode(encode(r)) agree: rush_json_encode_request writes a request
 *      that decodes to the same 64 bytes, rush_json_encode_sku_put a SKU that decodes to the
 *      same fields (tests/fuzz/fuzz_json.c checks both through jansson).
 *   3. Nothing is read past text[len - 1]; nothing is written past buf[cap - 1].
 *
 * Threads. No state: call from any thread.
 */
#ifndef RUSH_PROTO_JSON_H
#define RUSH_PROTO_JSON_H

#include "rush/engine.h"
#include "rush/types.h"

#define RUSH_JSON_MESSAGE_BYTES_MAX 65536
#define RUSH_JSON_KEY_BYTES_MAX 128
#define RUSH_JSON_QTY_MAX 1000000
#define RUSH_JSON_AMOUNT_MAX INT64_C(1000000000000)
#define RUSH_JSON_EXACT_MAX ((INT64_C(1) << 53) - 1)
/* A reason fits in this many bytes; a shorter `why` buffer gets it cut short. */
#define RUSH_JSON_WHY_BYTES 256

/* What a decoded JSON message asks for. */
enum rush_json_kind {
    RUSH_JSON_REQUEST = 1,  /* one of enum rush_op: decided by a shard */
    RUSH_JSON_SKU_PUT = 2,  /* admin: create or redefine a SKU */
    RUSH_JSON_STATS = 3,    /* admin: engine-wide counters */
    RUSH_JSON_SNAPSHOT = 4, /* admin: every shard writes a snapshot now */
};

struct rush_json_command {
    enum rush_json_kind kind;
    union {
        struct rush_request request; /* RUSH_JSON_REQUEST */
        struct rush_sku sku;         /* RUSH_JSON_SKU_PUT */
    };
};

/* Decodes one JSON object of any kind. 0, or RUSH_EPROTO with the reason in why. */
RUSH_MUST_USE int rush_json_decode(const char *text, size_t len, struct rush_json_command *out,
                                   char *why, size_t why_size);

/* Decodes one JSON request; the admin forms sku_put, stats and snapshot are refused by name. */
RUSH_MUST_USE int rush_json_decode_request(const char *text, size_t len, struct rush_request *out,
                                           char *why, size_t why_size);

/*
 * The answer to a request, e.g. {"outcome":"ok","order":"72057594037927937","sku":1001,
 * "remaining":9}. Adds "duplicate":true when flagged, "reason" when invalid, "group" when set,
 * "tag" when nonzero, "unlimited":true instead of a meaningless remaining, "state" (the order's
 * state the decision left) for a confirm or cancel that is ok or expired, and for queries that
 * found their object the state names and figures:
 *   query_sku    sku, available (when limited), reserved, confirmed, unlimited
 *   query_order  order, state, qty, sku, group (when a seat)
 *   query_group  group, state, seats, deadline_ns
 * An answer to sku_put is written for a request with op RUSH_OP_NONE and sku_id set.
 */
RUSH_MUST_USE int rush_json_encode_result(const struct rush_request *req,
                                          const struct rush_result *res, char *buf, size_t cap);

/*
 * list_groups. {"op":"list_groups","sku":1001,"limit":10} decodes to op RUSH_OP_LIST_GROUPS with
 * qty = limit (1..RUSH_LIST_GROUPS_MAX); the server asks the engine for ranks 0..limit-1 (one
 * request each, qty = rank) and answers their results with rush_json_encode_group_list:
 * {"outcome":"ok","sku":1001,"groups":[{"group":"...","seats":2,"free":1,"deadline_ns":...,
 * "leader":42},...]}, closest to full first, then closest to the deadline, ending at the first
 * rank with no group. A SKU that is unknown or not a group-buy is answered as a single result.
 */
RUSH_MUST_USE int rush_json_encode_group_list(const struct rush_request *req,
                                              const struct rush_result *results, uint32_t count,
                                              char *buf, size_t cap);

/* {"outcome":"invalid","reason":"<why, escaped>"}: the answer to a message that did not decode. */
RUSH_MUST_USE int rush_json_encode_error(const char *why, char *buf, size_t cap);

/* A request as a client sends it; the key in its literal "0x..." form (omitted when zero). */
RUSH_MUST_USE int rush_json_encode_request(const struct rush_request *req, char *buf, size_t cap);

/* {"op":"sku_put","sku":{...}}: a SKU as rushctl sends it. */
RUSH_MUST_USE int rush_json_encode_sku_put(const struct rush_sku *sku, char *buf, size_t cap);

/* The answer to stats: {"outcome":"ok","requests":...,"outcomes":{"ok":...,...},...}. */
RUSH_MUST_USE int rush_json_encode_stats(const struct rush_engine_stats *stats, char *buf,
                                         size_t cap);

#endif
