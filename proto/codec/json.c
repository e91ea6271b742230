/*
 * json.c — the JSON form of requests and results: decoding with jansson, encoding by hand.
 *
 * Workload: one message of at most RUSH_JSON_MESSAGE_BYTES_MAX bytes per call on the front-end
 * thread. Decoding walks each object's members once (bounded by the message size); jansson
 * limits nesting to JSON_PARSER_MAX_DEPTH. Encoding writes into the caller's buffer through a
 * writer that refuses, rather than cuts, what does not fit.
 *
 * Invariants (see json.h): unused request fields stay zero; the writer keeps len < cap so the
 * closing NUL always fits; every reason written to `why` is printable ASCII.
 *
 * Threads: none owned; no static mutable state.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/number.h"
#include "base/why.h"
#include "rush/client.h"

#include "json.h"
#include "rush/assert.h"
#include "sku.h"

#define QUOTE_BYTES_MAX 40 /* bytes of message text repeated in a reason */
#define ID_DIGITS_MAX 20   /* UINT64_MAX has 20 decimal digits */
#define KEY_LITERAL_BYTES 34

/* ---- reasons ---- */

/* A refusal of the text: RUSH_EPROTO with a reason, through the one rush__refuse. */
#define fail(why, why_size, ...) rush__refuse(RUSH_EPROTO, why, why_size, __VA_ARGS__)

/* Copies message text for a reason: printable ASCII kept, other bytes '?', long text cut. */
static const char *quote(char *dst, size_t dst_size, const char *src, size_t len)
{
    RUSH_ASSERT(dst_size > QUOTE_BYTES_MAX + 3);
    size_t shown = len < QUOTE_BYTES_MAX ? len : QUOTE_BYTES_MAX;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (shown < len) {
        memcpy(dst + shown, "...", 3);
        shown += 3;
    }
    dst[shown] = '\0';
    return dst;
}

static const char *type_name(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* ---- numbers ---- */

/* 1..20 decimal digits into a u64 (base/number.h). 0, or -1 on anything else or overflow. */
static int parse_digits(const char *s, size_t len, uint64_t *out)
{
    return rush_number_parse_u64(s, len, 0, UINT64_MAX, out, NULL, 0) == 0 ? 0 : -1;
}

/* A u64 from a non-negative JSON integer or a string of 1..20 decimal digits. 0 or -1. */
static int value_u64(const json_t *value, uint64_t *out)
{
    if (json_is_integer(value)) {
        json_int_t v = json_integer_value(value);
        if (v < 0)
            return -1;
        *out = (uint64_t)v;
        return 0;
    }
    if (!json_is_string(value))
        return -1;
    return parse_digits(json_string_value(value), json_string_length(value), out);
}

/* An i64 from a JSON integer or a string of an optional '-' and decimal digits. 0 or -1. */
static int value_i64(const json_t *value, int64_t *out)
{
    if (json_is_integer(value)) {
        *out = json_integer_value(value);
        return 0;
    }
    if (!json_is_string(value))
        return -1;
    return rush_number_parse_i64(json_string_value(value), json_string_length(value), INT64_MIN,
                                 INT64_MAX, out, NULL, 0) == 0
               ? 0
               : -1;
}

static int value_u32(const json_t *value, uint32_t min, uint32_t max, uint32_t *out)
{
    if (!json_is_integer(value))
        return -1;
    json_int_t v = json_integer_value(value);
    if (v < (json_int_t)min || v > (json_int_t)max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* ---- request fields ---- */

enum field {
    F_SKU,
    F_USER,
    F_QTY,
    F_ORDER,
    F_GROUP,
    F_AMOUNT,
    F_KEY,
    F_TAG,
    F_LIMIT,
    F_INVITER,
    F_NEW_USER,
    F_COUNT_,
};

static const char *const field_names[F_COUNT_] = {
    [F_SKU] = "sku",     [F_USER] = "user",       [F_QTY] = "qty",           [F_ORDER] = "order",
    [F_GROUP] = "group", [F_AMOUNT] = "amount",   [F_KEY] = "key",           [F_TAG] = "tag",
    [F_LIMIT] = "limit", [F_INVITER] = "inviter", [F_NEW_USER] = "new_user",
};

#define BIT(field) (UINT32_C(1) << (field))

/* Fields an op may carry without requiring them. */
static const uint32_t op_fields_optional[RUSH_OP_COUNT_] = {
    [RUSH_OP_RESERVE] = BIT(F_NEW_USER),
    [RUSH_OP_GROUP_OPEN] = BIT(F_NEW_USER),
    [RUSH_OP_GROUP_JOIN] = BIT(F_INVITER) | BIT(F_NEW_USER),
    [RUSH_OP_GROUP_JOIN_ANY] = BIT(F_INVITER) | BIT(F_NEW_USER),
};

/* The fields each op requires; tag is allowed on every op besides these. */
static const uint32_t op_fields[RUSH_OP_COUNT_] = {
    [RUSH_OP_NONE] = 0,
    [RUSH_OP_RESERVE] = BIT(F_SKU) | BIT(F_USER) | BIT(F_QTY) | BIT(F_KEY),
    [RUSH_OP_CONFIRM] = BIT(F_ORDER) | BIT(F_KEY),
    [RUSH_OP_CANCEL] = BIT(F_ORDER) | BIT(F_KEY),
    [RUSH_OP_GROUP_OPEN] = BIT(F_SKU) | BIT(F_USER) | BIT(F_KEY),
    [RUSH_OP_GROUP_JOIN] = BIT(F_GROUP) | BIT(F_USER) | BIT(F_KEY),
    [RUSH_OP_GROUP_JOIN_ANY] = BIT(F_SKU) | BIT(F_USER) | BIT(F_KEY),
    [RUSH_OP_QUERY_ORDER] = BIT(F_ORDER),
    [RUSH_OP_QUERY_GROUP] = BIT(F_GROUP),
    [RUSH_OP_QUERY_SKU] = BIT(F_SKU),
    [RUSH_OP_ADJUST] = BIT(F_SKU) | BIT(F_AMOUNT) | BIT(F_KEY),
    [RUSH_OP_PAUSE] = BIT(F_SKU) | BIT(F_KEY),
    [RUSH_OP_RESUME] = BIT(F_SKU) | BIT(F_KEY),
    [RUSH_OP_LIST_GROUPS] = BIT(F_SKU) | BIT(F_LIMIT), /* limit travels in qty (section list) */
    [RUSH_OP_REGISTER] = BIT(F_SKU) | BIT(F_USER) | BIT(F_KEY),
};

static int field_of(const char *name)
{
    for (int f = 0; f < F_COUNT_; f++)
        if (strcmp(field_names[f], name) == 0)
            return f;
    return -1;
}

static int decode_key(const json_t *value, rush_key *key, char *why, size_t why_size)
{
    size_t len = json_is_string(value) ? json_string_length(value) : 0;
    if (len < 1 || len > RUSH_JSON_KEY_BYTES_MAX)
        return fail(why, why_size, "field 'key' must be a string of 1..%d bytes",
                    RUSH_JSON_KEY_BYTES_MAX);
    /* One mapping for every client: the C library's (client_key.c) is the definition. */
    *key = rush_client_key_of(json_string_value(value), len);
    static const rush_key zero;
    if (memcmp(key, &zero, sizeof zero) == 0)
        return fail(why, why_size, "field 'key' must not be the zero key");
    return 0;
}

static int decode_id(const json_t *value, enum field f, uint64_t *out, char *why, size_t why_size)
{
    if (value_u64(value, out) < 0 || *out == 0)
        return fail(why, why_size,
                    "field '%s' must be an id 1..18446744073709551615 (an integer or a string of "
                    "decimal digits)",
                    field_names[f]);
    return 0;
}

static int decode_field(enum field f, const json_t *value, struct rush_request *req, char *why,
                        size_t why_size)
{
    switch (f) {
    case F_SKU:
        return decode_id(value, f, &req->sku_id, why, why_size);
    case F_USER:
        return decode_id(value, f, &req->user_id, why, why_size);
    case F_ORDER:
    case F_GROUP:
        return decode_id(value, f, &req->target_id, why, why_size);
    case F_QTY:
        if (value_u32(value, 1, RUSH_JSON_QTY_MAX, &req->qty) < 0)
            return fail(why, why_size, "field 'qty' must be an integer 1..%d", RUSH_JSON_QTY_MAX);
        return 0;
    case F_AMOUNT:
        if (value_i64(value, &req->amount) < 0 || req->amount == 0 ||
            req->amount < -RUSH_JSON_AMOUNT_MAX || req->amount > RUSH_JSON_AMOUNT_MAX)
            return fail(why, why_size,
                        "field 'amount' must be a nonzero integer -%" PRId64 "..%" PRId64,
                        RUSH_JSON_AMOUNT_MAX, RUSH_JSON_AMOUNT_MAX);
        return 0;
    case F_KEY:
        return decode_key(value, &req->key, why, why_size);
    case F_TAG:
        if (value_u64(value, &req->tag) < 0)
            return fail(why, why_size,
                        "field 'tag' must be 0..18446744073709551615 (an integer or a string of "
                        "decimal digits)");
        return 0;
    case F_INVITER:
        return decode_id(value, f, &req->inviter_id, why, why_size);
    case F_NEW_USER:
        if (!json_is_boolean(value))
            return fail(why, why_size, "field 'new_user' must be a boolean");
        req->flags = json_is_true(value) ? RUSH_REQUEST_NEW_USER : 0;
        return 0;
    case F_LIMIT:
        if (value_u32(value, 1, RUSH_LIST_GROUPS_MAX, &req->qty) < 0)
            return fail(why, why_size, "field 'limit' must be an integer 1..%d",
                        RUSH_LIST_GROUPS_MAX);
        return 0;
    case F_COUNT_:
        break;
    }
    RUSH_ASSERT(!"field out of range");
    return RUSH_EPROTO;
}

static int missing_field(enum rush_op op, uint32_t missing, char *why, size_t why_size)
{
    RUSH_ASSERT(missing != 0);
    int f = __builtin_ctz(missing);
    if (f == F_KEY)
        return fail(why, why_size,
                    "missing field 'key': op '%s' changes state and needs an idempotency key",
                    rush_op_name(op));
    return fail(why, why_size, "missing field '%s' for op '%s'", field_names[f], rush_op_name(op));
}

/* Members of `root` besides "op" into a request for `op`. Visits each member once. */
static int decode_request(const json_t *root, enum rush_op op, struct rush_request *req, char *why,
                          size_t why_size)
{
    char quoted[QUOTE_BYTES_MAX + 4];
    uint32_t allowed = op_fields[op] | op_fields_optional[op] | BIT(F_TAG);
    uint32_t seen = 0;
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)root, name, value)
    {
        if (strcmp(name, "op") == 0)
            continue;
        int f = field_of(name);
        if (f < 0)
            return fail(why, why_size, "unknown field '%s'",
                        quote(quoted, sizeof quoted, name, strlen(name)));
        if ((allowed & BIT(f)) == 0)
            return fail(why, why_size, "field '%s' does not apply to op '%s'", field_names[f],
                        rush_op_name(op));
        int rc = decode_field((enum field)f, value, req, why, why_size);
        if (rc < 0)
            return rc;
        seen |= BIT(f);
    }
    if ((op_fields[op] & ~seen) != 0)
        return missing_field(op, op_fields[op] & ~seen, why, why_size);
    req->op = (uint8_t)op;
    return 0;
}

/* ---- sku_put ---- */

enum sku_field {
    S_ID,
    S_NAME,
    S_STOCK,
    S_UNLIMITED,
    S_PRICE,
    S_START,
    S_END,
    S_PAY_TTL,
    S_ORDER_QTY_MAX,
    S_USER_QTY_MAX,
    S_PAUSED,
    S_GROUP_SIZE,
    S_GROUP_TTL,
    S_GROUPS_OPEN_MAX,
    S_VIRTUAL_POLICY,
    S_VIRTUAL_SEATS_MAX,
    S_VIRTUAL_BUDGET,
    S_SOLO_ALLOWED,
    S_GROUP_PRICE,
    S_LEADER_PRICE,
    S_RULES,
    S_REGISTER_FROM,
    S_REGISTER_UNTIL,
    S_TIERS,
    S_SUBSIDY_BUDGET,
    S_COUNT_,
};

static const char *const sku_field_names[S_COUNT_] = {
    [S_ID] = "id",
    [S_NAME] = "name",
    [S_STOCK] = "stock",
    [S_UNLIMITED] = "unlimited",
    [S_PRICE] = "price_fen",
    [S_START] = "start_ns",
    [S_END] = "end_ns",
    [S_PAY_TTL] = "pay_ttl_ns",
    [S_ORDER_QTY_MAX] = "order_qty_max",
    [S_USER_QTY_MAX] = "user_qty_max",
    [S_PAUSED] = "paused",
    [S_GROUP_SIZE] = "group_size",
    [S_GROUP_TTL] = "group_ttl_ns",
    [S_GROUPS_OPEN_MAX] = "groups_open_max",
    [S_VIRTUAL_POLICY] = "virtual_policy",
    [S_VIRTUAL_SEATS_MAX] = "virtual_seats_max",
    [S_VIRTUAL_BUDGET] = "virtual_budget",
    [S_SOLO_ALLOWED] = "solo_allowed",
    [S_GROUP_PRICE] = "group_price_fen",
    [S_LEADER_PRICE] = "leader_price_fen",
    [S_RULES] = "rules",
    [S_REGISTER_FROM] = "register_from_ns",
    [S_REGISTER_UNTIL] = "register_until_ns",
    [S_TIERS] = "tiers",
    [S_SUBSIDY_BUDGET] = "subsidy_budget_fen",
};

/* The member for field f is named by bit f - 1 of struct rush_sku.fields (types.h). */
static_assert(RUSH_SKU_FIELD_NAME == BIT(S_NAME - 1) &&
                  RUSH_SKU_FIELD_PAUSED == BIT(S_PAUSED - 1) &&
                  RUSH_SKU_FIELDS_ALL == BIT(S_COUNT_ - 1) - 1,
              "JSON sku fields follow RUSH_SKU_FIELD_* order");

static const char *const virtual_policy_names[] = {
    [RUSH_VIRTUAL_NONE] = "none",
    [RUSH_VIRTUAL_FILL] = "fill",
    [RUSH_VIRTUAL_AT_MOST] = "at_most",
};

/* rules: a comma-separated list of these names ("" for none), bit i named by entry i. */
static const char *const sku_rule_names[] = {"new_users_only", "registration_required", "activity"};
static_assert(RUSH_SKU_RULES_ALL == (1u << (sizeof sku_rule_names / sizeof sku_rule_names[0])) - 1,
              "one name per rule bit");

static int sku_rules(const json_t *value, uint8_t *out)
{
    if (!json_is_string(value))
        return -1;
    const char *text = json_string_value(value);
    uint8_t rules = 0;
    while (*text != '\0') {
        size_t len = strcspn(text, ",");
        size_t r = 0;
        while (r < sizeof sku_rule_names / sizeof sku_rule_names[0] &&
               (strlen(sku_rule_names[r]) != len || memcmp(sku_rule_names[r], text, len) != 0))
            r++;
        if (r == sizeof sku_rule_names / sizeof sku_rule_names[0] || (rules & (1u << r)))
            return -1;
        rules |= (uint8_t)(1u << r);
        text += len;
        if (*text == ',' && *++text == '\0')
            return -1; /* a trailing comma */
    }
    *out = rules;
    return 0;
}

static int sku_field_of(const char *name)
{
    for (int f = 0; f < S_COUNT_; f++)
        if (strcmp(sku_field_names[f], name) == 0)
            return f;
    return -1;
}

static int sku_name(const json_t *value, struct rush_sku *sku)
{
    size_t len = json_is_string(value) ? json_string_length(value) : 0;
    if (len < 1 || len > RUSH_SKU_NAME_MAX)
        return -1;
    memcpy(sku->name, json_string_value(value), len);
    return 0;
}

static int sku_flag(const json_t *value, uint8_t *out)
{
    if (!json_is_boolean(value))
        return -1;
    *out = json_is_true(value);
    return 0;
}

static int sku_policy(const json_t *value, uint8_t *out)
{
    if (!json_is_string(value))
        return -1;
    for (size_t i = 0; i < sizeof virtual_policy_names / sizeof virtual_policy_names[0]; i++) {
        if (strcmp(json_string_value(value), virtual_policy_names[i]) == 0) {
            *out = (uint8_t)i;
            return 0;
        }
    }
    return -1;
}

static int sku_non_negative(const json_t *value, int64_t *out)
{
    return value_i64(value, out) < 0 || *out < 0 ? -1 : 0;
}

/* A group-buy price: a number sets it (0 is a price: free); null unsets it (seats pay the group
 * price or the list price). Either way the put names the field. */
static int sku_price_set(const json_t *value, struct rush_sku *sku, uint8_t bit, int64_t *out)
{
    if (json_is_null(value)) {
        *out = 0;
        sku->prices &= (uint8_t)~bit;
        return 0;
    }
    if (sku_non_negative(value, out) < 0)
        return -1;
    sku->prices |= bit;
    return 0;
}

/* One member of the sku object. 0, or -1 when its value has the wrong type or range. */
static int decode_sku_field(enum sku_field f, const json_t *value, struct rush_sku *sku)
{
    switch (f) {
    case S_ID:
        return value_u64(value, &sku->id) < 0 || sku->id == 0 ? -1 : 0;
    case S_NAME:
        return sku_name(value, sku);
    case S_STOCK:
        return sku_non_negative(value, &sku->stock);
    case S_UNLIMITED:
        return sku_flag(value, &sku->unlimited);
    case S_PRICE:
        return sku_non_negative(value, &sku->price_fen);
    case S_START:
        return value_i64(value, &sku->start_ns);
    case S_END:
        return value_i64(value, &sku->end_ns);
    case S_PAY_TTL:
        return sku_non_negative(value, &sku->pay_ttl_ns);
    case S_ORDER_QTY_MAX:
        return value_u32(value, 0, UINT32_MAX, &sku->order_qty_max);
    case S_USER_QTY_MAX:
        return value_u32(value, 0, UINT32_MAX, &sku->user_qty_max);
    case S_PAUSED:
        return sku_flag(value, &sku->paused);
    case S_GROUP_SIZE:
        return value_u32(value, 0, UINT32_MAX, &sku->group_size);
    case S_GROUP_TTL:
        return sku_non_negative(value, &sku->group_ttl_ns);
    case S_GROUPS_OPEN_MAX:
        return value_u32(value, 0, UINT32_MAX, &sku->groups_open_max);
    case S_VIRTUAL_POLICY:
        return sku_policy(value, &sku->virtual_policy);
    case S_VIRTUAL_SEATS_MAX:
        return value_u32(value, 0, UINT32_MAX, &sku->virtual_seats_max);
    case S_VIRTUAL_BUDGET:
        return value_u32(value, 0, UINT32_MAX, &sku->virtual_budget);
    case S_SOLO_ALLOWED:
        return sku_flag(value, &sku->solo_allowed);
    case S_GROUP_PRICE:
        return sku_price_set(value, sku, RUSH_SKU_GROUP_PRICE, &sku->group_price_fen);
    case S_LEADER_PRICE:
        return sku_price_set(value, sku, RUSH_SKU_LEADER_PRICE, &sku->leader_price_fen);
    case S_RULES:
        return sku_rules(value, &sku->rules);
    case S_REGISTER_FROM:
        return value_i64(value, &sku->register_from_ns);
    case S_REGISTER_UNTIL:
        return value_i64(value, &sku->register_until_ns);
    case S_TIERS:
        return json_is_string(value) ? rush_sku_tiers_parse(json_string_value(value), sku) : -1;
    case S_SUBSIDY_BUDGET:
        return sku_non_negative(value, &sku->subsidy_budget_fen);
    case S_COUNT_:
        break;
    }
    RUSH_ASSERT(!"sku field out of range");
    return -1;
}

static const char *const sku_field_types[S_COUNT_] = {
    [S_ID] = "an id 1..18446744073709551615",
    [S_NAME] = "a string of 1..40 bytes",
    [S_STOCK] = "an integer >= 0",
    [S_UNLIMITED] = "a boolean",
    [S_PRICE] = "an integer >= 0 (fen)",
    [S_START] = "an integer (ns since the epoch)",
    [S_END] = "an integer (ns since the epoch)",
    [S_PAY_TTL] = "an integer >= 0 (ns)",
    [S_ORDER_QTY_MAX] = "an integer 0..4294967295",
    [S_USER_QTY_MAX] = "an integer 0..4294967295",
    [S_PAUSED] = "a boolean",
    [S_GROUP_SIZE] = "an integer 0..4294967295",
    [S_GROUP_TTL] = "an integer >= 0 (ns)",
    [S_GROUPS_OPEN_MAX] = "an integer 0..4294967295",
    [S_VIRTUAL_POLICY] = "one of none, fill, at_most",
    [S_VIRTUAL_SEATS_MAX] = "an integer 0..4294967295",
    [S_VIRTUAL_BUDGET] = "an integer 0..4294967295",
    [S_SOLO_ALLOWED] = "a boolean",
    [S_GROUP_PRICE] = "an integer >= 0 (fen) or null (not set)",
    [S_LEADER_PRICE] = "an integer >= 0 (fen; 0: the leader is free) or null (not set)",
    [S_RULES] = "a comma-separated list of new_users_only, registration_required, activity",
    [S_REGISTER_FROM] = "an integer (ns since the epoch)",
    [S_REGISTER_UNTIL] = "an integer (ns since the epoch)",
    [S_TIERS] =
        "a string of up to 4 SIZE:PRICE tiers such as \"3:990, 5:890, 10:790\" (\"\": none)",
    [S_SUBSIDY_BUDGET] = "an integer >= 0 (fen; 0: no cap)",
};

static int decode_sku(const json_t *object, struct rush_sku *sku, char *why, size_t why_size)
{
    char quoted[QUOTE_BYTES_MAX + 4];
    uint32_t seen = 0;
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)object, name, value)
    {
        int f = sku_field_of(name);
        if (f < 0)
            return fail(why, why_size, "unknown field 'sku.%s'",
                        quote(quoted, sizeof quoted, name, strlen(name)));
        if (decode_sku_field((enum sku_field)f, value, sku) < 0)
            return fail(why, why_size, "field 'sku.%s' must be %s", sku_field_names[f],
                        sku_field_types[f]);
        seen |= BIT(f);
    }
    if ((seen & BIT(S_ID)) == 0)
        return fail(why, why_size, "missing field 'sku.id'");
    uint32_t named = seen >> 1; /* enum sku_field less the id, in RUSH_SKU_FIELD_* order */
    if (named == 0)
        return fail(why, why_size, "sku_put of sku %" PRIu64 " names no field to change", sku->id);
    sku->fields = named == RUSH_SKU_FIELDS_ALL ? 0 : named; /* 0 names every field */
    char reason[RUSH_JSON_WHY_BYTES];
    if (rush_sku_fields_missing(sku) == 0 && rush_sku_check(sku, reason, sizeof reason) < 0)
        return fail(why, why_size, "sku_put of sku %" PRIu64 ": %s", sku->id, reason);
    return 0;
}

static int decode_sku_put(const json_t *root, struct rush_sku *sku, char *why, size_t why_size)
{
    char quoted[QUOTE_BYTES_MAX + 4];
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)root, name, value)
    {
        if (strcmp(name, "op") != 0 && strcmp(name, "sku") != 0)
            return fail(why, why_size, "unknown field '%s'",
                        quote(quoted, sizeof quoted, name, strlen(name)));
    }
    const json_t *object = json_object_get(root, "sku");
    if (object == NULL)
        return fail(why, why_size, "missing field 'sku' for op 'sku_put'");
    if (!json_is_object(object))
        return fail(why, why_size, "field 'sku' of op 'sku_put' must be an object, not %s",
                    type_name(object));
    return decode_sku(object, sku, why, why_size);
}

/* ---- decoding ---- */

static int decode_root(const json_t *root, struct rush_json_command *out, char *why,
                       size_t why_size)
{
    char quoted[QUOTE_BYTES_MAX + 4];
    if (!json_is_object(root))
        return fail(why, why_size, "not a JSON object (got %s)", type_name(root));
    const json_t *op_value = json_object_get(root, "op");
    if (op_value == NULL)
        return fail(why, why_size, "missing field 'op'");
    if (!json_is_string(op_value))
        return fail(why, why_size, "field 'op' must be a string, not %s", type_name(op_value));
    const char *op_name = json_string_value(op_value);
    if (strcmp(op_name, "sku_put") == 0) {
        out->kind = RUSH_JSON_SKU_PUT;
        return decode_sku_put(root, &out->sku, why, why_size);
    }
    if (strcmp(op_name, "stats") == 0 || strcmp(op_name, "snapshot") == 0) {
        out->kind = strcmp(op_name, "stats") == 0 ? RUSH_JSON_STATS : RUSH_JSON_SNAPSHOT;
        if (json_object_size(root) != 1)
            return fail(why, why_size, "op '%s' takes no other field", op_name);
        return 0;
    }
    int op = rush_op_from_name(op_name);
    if (op < 0)
        return fail(why, why_size, "unknown op '%s'",
                    quote(quoted, sizeof quoted, op_name, json_string_length(op_value)));
    out->kind = RUSH_JSON_REQUEST;
    return decode_request(root, (enum rush_op)op, &out->request, why, why_size);
}

/* Whether text[0 .. len) is a run of decimal digits above INT64_MAX and at most UINT64_MAX:
 * a u64 that jansson's json_int_t cannot hold. */
static bool digits_above_i64(const char *text, size_t len)
{
    uint64_t value;
    return len >= 19 && len <= 20 && parse_digits(text, len, &value) == 0 &&
           value > (uint64_t)INT64_MAX;
}

/*
 * jansson refuses integers above INT64_MAX ("too big integer"), yet every 64-bit id field takes
 * numbers up to UINT64_MAX. Such a number outside strings is rewritten as the string of its
 * digits (which the id fields accept as well) and the text parsed again; only this rare path
 * copies. Anything still too big (2^64 and above) fails as before. NULL on failure.
 */
static json_t *load_quoting_big_numbers(const char *text, size_t len, json_error_t *error)
{
    char *copy = malloc(len * 2 + 1); /* at most two quotes per three bytes of text */
    if (copy == NULL)
        return NULL;
    size_t n = 0;
    bool in_string = false;
    for (size_t i = 0; i < len;) { /* each turn consumes at least one byte */
        char c = text[i];
        if (in_string || !(c >= '0' && c <= '9')) {
            if (in_string && c == '\\' && i + 1 < len)
                copy[n++] = text[i++];
            else if (c == '"')
                in_string = !in_string;
            copy[n++] = text[i++];
            continue;
        }
        size_t end = i;
        while (end < len && text[end] >= '0' && text[end] <= '9')
            end++;
        bool whole = (i == 0 || strchr("-.eE+", text[i - 1]) == NULL) &&
                     (end == len || strchr(".eE", text[end]) == NULL);
        bool quote_it = whole && digits_above_i64(text + i, end - i);
        if (quote_it)
            copy[n++] = '"';
        memcpy(copy + n, text + i, end - i);
        n += end - i;
        if (quote_it)
            copy[n++] = '"';
        i = end;
    }
    json_t *root = json_loadb(copy, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, error);
    free(copy);
    return root;
}

int rush_json_decode(const char *text, size_t len, struct rush_json_command *out, char *why,
                     size_t why_size)
{
    RUSH_ASSERT(out != NULL);
    RUSH_ASSERT(text != NULL || len == 0);
    RUSH_ASSERT(why != NULL || why_size == 0);
    memset(out, 0, sizeof *out);
    if (why_size > 0)
        why[0] = '\0';
    if (len > RUSH_JSON_MESSAGE_BYTES_MAX)
        return fail(why, why_size, "message of %zu bytes is over the limit of %d", len,
                    RUSH_JSON_MESSAGE_BYTES_MAX);
    json_error_t error;
    json_t *root =
        json_loadb(text == NULL ? "" : text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
    if (root == NULL && strstr(error.text, "too big integer") != NULL)
        root = load_quoting_big_numbers(text, len, &error);
    if (root == NULL) {
        /* jansson repeats message bytes after "near": keep the reason printable ASCII. */
        for (size_t i = 0; i < sizeof error.text && error.text[i] != '\0'; i++)
            if ((unsigned char)error.text[i] < 0x20 || (unsigned char)error.text[i] >= 0x7f)
                error.text[i] = '?';
        return fail(why, why_size, "invalid JSON at line %d, column %d: %s", error.line,
                    error.column, error.text);
    }
    int rc = decode_root(root, out, why, why_size);
    json_decref(root);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    RUSH_ASSERT(rc == 0 || rc == RUSH_EPROTO);
    return rc;
}

int rush_json_decode_request(const char *text, size_t len, struct rush_request *out, char *why,
                             size_t why_size)
{
    RUSH_ASSERT(out != NULL);
    struct rush_json_command command;
    int rc = rush_json_decode(text, len, &command, why, why_size);
    memset(out, 0, sizeof *out);
    if (rc < 0)
        return rc;
    switch (command.kind) {
    case RUSH_JSON_REQUEST:
        *out = command.request;
        return 0;
    case RUSH_JSON_SKU_PUT:
        return fail(why, why_size, "op 'sku_put' is an admin command, not a request");
    case RUSH_JSON_STATS:
        return fail(why, why_size, "op 'stats' is an admin command, not a request");
    case RUSH_JSON_SNAPSHOT:
        return fail(why, why_size, "op 'snapshot' is an admin command, not a request");
    }
    RUSH_ASSERT(!"command kind out of range");
    return RUSH_EPROTO;
}

/* ---- encoding ---- */

/* Appends to buf[0..cap); keeps len < cap so the NUL fits; once full, writes nothing more. */
struct writer {
    char *buf;
    size_t cap;
    size_t len;
    bool full;
    bool comma; /* the next member needs a comma before it */
};

static struct writer writer_start(char *buf, size_t cap)
{
    RUSH_ASSERT(buf != NULL || cap == 0);
    return (struct writer){.buf = buf, .cap = cap, .full = cap == 0};
}

static void put_raw(struct writer *w, const char *s, size_t n)
{
    if (w->full)
        return;
    if (n >= w->cap - w->len) {
        w->full = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_text(struct writer *w, const char *s)
{
    put_raw(w, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void put_format(struct writer *w, const char *format,
                                                             ...)
{
    char text[64];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(text, sizeof text, format, args);
    va_end(args);
    RUSH_ASSERT(n >= 0 && (size_t)n < sizeof text);
    put_raw(w, text, (size_t)n);
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0 when it is not valid. */
static size_t utf8_length(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    uint32_t point = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        point = point << 6 | (s[i] & 0x3f);
    }
    if (point < min || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string: quotes and controls escaped, invalid UTF-8 bytes written as U+FFFD. */
static void put_string(struct writer *w, const char *s, size_t n)
{
    put_raw(w, "\"", 1);
    size_t i = 0;
    while (i < n && !w->full) { /* each pass consumes >= 1 byte */
        unsigned char c = (unsigned char)s[i];
        size_t len = utf8_length((const unsigned char *)s + i, n - i);
        if (len == 0) {
            put_text(w, "\\ufffd");
            len = 1;
        } else if (c == '"' || c == '\\') {
            put_raw(w, "\\", 1);
            put_raw(w, s + i, 1);
        } else if (c < 0x20 || c == 0x7f) {
            put_format(w, "\\u%04x", c);
        } else {
            put_raw(w, s + i, len);
        }
        i += len;
    }
    put_raw(w, "\"", 1);
}

static void put_key(struct writer *w, const char *name)
{
    if (w->comma)
        put_raw(w, ",", 1);
    put_string(w, name, strlen(name));
    put_raw(w, ":", 1);
    w->comma = true;
}

static void open_object(struct writer *w)
{
    put_raw(w, "{", 1);
    w->comma = false;
}

static void close_object(struct writer *w)
{
    put_raw(w, "}", 1);
    w->comma = true;
}

static void member_string(struct writer *w, const char *name, const char *value)
{
    put_key(w, name);
    put_string(w, value, strlen(value));
}

static void member_bool(struct writer *w, const char *name, bool value)
{
    put_key(w, name);
    put_text(w, value ? "true" : "false");
}

/* A 64-bit figure: a number when a double holds it exactly, else a decimal string. */
static void member_i64(struct writer *w, const char *name, int64_t value)
{
    put_key(w, name);
    if (value >= -RUSH_JSON_EXACT_MAX && value <= RUSH_JSON_EXACT_MAX)
        put_format(w, "%" PRId64, value);
    else
        put_format(w, "\"%" PRId64 "\"", value);
}

static void member_u64(struct writer *w, const char *name, uint64_t value)
{
    put_key(w, name);
    if (value <= (uint64_t)RUSH_JSON_EXACT_MAX)
        put_format(w, "%" PRIu64, value);
    else
        put_format(w, "\"%" PRIu64 "\"", value);
}

/* Order and group ids: always decimal strings. */
static void member_id(struct writer *w, const char *name, uint64_t value)
{
    put_key(w, name);
    put_format(w, "\"%" PRIu64 "\"", value);
}

static int writer_finish(struct writer *w)
{
    if (w->full) {
        if (w->cap > 0)
            w->buf[0] = '\0';
        return -ENOSPC;
    }
    RUSH_ASSERT(w->len < w->cap);
    w->buf[w->len] = '\0';
    return (int)w->len;
}

/* Outcomes after which the SKU's available stock means something to the client. */
static bool figures_meaningful(const struct rush_result *res)
{
    return res->outcome != RUSH_INVALID && res->outcome != RUSH_BUSY &&
           res->outcome != RUSH_UNKNOWN_SKU && res->outcome != RUSH_OUTCOME_UNKNOWN;
}

static void put_decision(struct writer *w, const struct rush_request *req,
                         const struct rush_result *res)
{
    if (res->order_id != 0)
        member_id(w, "order", res->order_id);
    if (res->group_id != 0)
        member_id(w, "group", res->group_id);
    if (req->sku_id != 0)
        member_u64(w, "sku", req->sku_id);
    if (req->sku_id == 0 || !figures_meaningful(res))
        return;
    if (res->flags & RUSH_RESULT_UNLIMITED)
        member_bool(w, "unlimited", true);
    else
        member_i64(w, "remaining", res->remaining);
}

static void put_order_change(struct writer *w, const struct rush_result *res)
{
    if (res->order_id != 0)
        member_id(w, "order", res->order_id);
    /* expired: a payment that bought nothing; the state says what became of the order */
    if ((res->outcome == RUSH_OK || res->outcome == RUSH_EXPIRED) && res->state != RUSH_ORDER_NONE)
        member_string(w, "state", rush_order_state_name(res->state));
}

static void put_query_sku(struct writer *w, const struct rush_request *req,
                          const struct rush_result *res)
{
    member_u64(w, "sku", req->sku_id);
    if (res->outcome != RUSH_OK)
        return;
    bool unlimited = (res->flags & RUSH_RESULT_UNLIMITED) != 0;
    member_bool(w, "unlimited", unlimited);
    if (!unlimited)
        member_i64(w, "available", res->remaining);
    member_i64(w, "reserved", res->reserved);
    member_i64(w, "confirmed", res->confirmed);
    member_bool(w, "paused", res->state == 1); /* query_sku's state: 1 when paused */
}

static void put_query_order(struct writer *w, const struct rush_request *req,
                            const struct rush_result *res)
{
    member_id(w, "order", res->order_id != 0 ? res->order_id : req->target_id);
    if (res->outcome != RUSH_OK)
        return;
    member_string(w, "state", rush_order_state_name(res->state));
    member_u64(w, "qty", res->qty);
    member_u64(w, "sku", (uint64_t)res->confirmed);
    if (res->group_id != 0)
        member_id(w, "group", res->group_id);
}

static void put_query_group(struct writer *w, const struct rush_request *req,
                            const struct rush_result *res)
{
    member_id(w, "group", res->group_id != 0 ? res->group_id : req->target_id);
    if (res->outcome != RUSH_OK)
        return;
    member_string(w, "state", rush_group_state_name(res->state));
    member_u64(w, "seats", res->qty);
    member_i64(w, "deadline_ns", res->reserved);
}

/* One entry of a "join this group" list (list_groups). */
static void put_listed_group(struct writer *w, const struct rush_result *res)
{
    member_id(w, "group", res->group_id);
    member_u64(w, "seats", res->qty);
    member_i64(w, "free", res->remaining);
    member_i64(w, "deadline_ns", res->reserved);
    member_u64(w, "leader", (uint64_t)res->confirmed);
}

static void put_result_body(struct writer *w, const struct rush_request *req,
                            const struct rush_result *res)
{
    switch ((enum rush_op)req->op) {
    case RUSH_OP_NONE:
        if (req->sku_id != 0)
            member_u64(w, "sku", req->sku_id);
        return;
    case RUSH_OP_RESERVE:
    case RUSH_OP_GROUP_OPEN:
    case RUSH_OP_GROUP_JOIN:
    case RUSH_OP_GROUP_JOIN_ANY:
    case RUSH_OP_ADJUST:
    case RUSH_OP_PAUSE:
    case RUSH_OP_RESUME:
    case RUSH_OP_REGISTER:
        put_decision(w, req, res);
        return;
    case RUSH_OP_CONFIRM:
    case RUSH_OP_CANCEL:
        put_order_change(w, res);
        return;
    case RUSH_OP_QUERY_ORDER:
        put_query_order(w, req, res);
        return;
    case RUSH_OP_QUERY_GROUP:
        put_query_group(w, req, res);
        return;
    case RUSH_OP_QUERY_SKU:
        put_query_sku(w, req, res);
        return;
    case RUSH_OP_LIST_GROUPS:
        member_u64(w, "sku", req->sku_id);
        if (res->outcome == RUSH_OK)
            put_listed_group(w, res);
        return;
    case RUSH_OP_COUNT_:
        return;
    }
}

int rush_json_encode_group_list(const struct rush_request *req, const struct rush_result *results,
                                uint32_t count, char *buf, size_t cap)
{
    RUSH_ASSERT(req != NULL && results != NULL && count >= 1);
    if (results[0].outcome != RUSH_OK && results[0].outcome != RUSH_UNKNOWN_GROUP)
        return rush_json_encode_result(req, &results[0], buf, cap); /* the SKU was refused */
    struct writer w = writer_start(buf, cap);
    open_object(&w);
    member_string(&w, "outcome", rush_outcome_name(RUSH_OK));
    member_u64(&w, "sku", req->sku_id);
    put_key(&w, "groups");
    put_raw(&w, "[", 1);
    w.comma = false;
    for (uint32_t i = 0; i < count && results[i].outcome == RUSH_OK; i++) {
        if (i > 0)
            put_raw(&w, ",", 1);
        open_object(&w);
        put_listed_group(&w, &results[i]);
        close_object(&w);
    }
    put_raw(&w, "]", 1);
    w.comma = true;
    if (req->tag != 0)
        member_u64(&w, "tag", req->tag);
    close_object(&w);
    return writer_finish(&w);
}

int rush_json_encode_result(const struct rush_request *req, const struct rush_result *res,
                            char *buf, size_t cap)
{
    RUSH_ASSERT(req != NULL && res != NULL);
    struct writer w = writer_start(buf, cap);
    open_object(&w);
    member_string(&w, "outcome", rush_outcome_name(res->outcome));
    if (res->outcome == RUSH_INVALID ||
        res->reason != RUSH_REASON_NONE) /* not_eligible, redirect */
        member_string(&w, "reason", rush_reason_name(res->reason));
    if (res->flags & RUSH_RESULT_DUPLICATE)
        member_bool(&w, "duplicate", true);
    if (res->outcome == RUSH_OUTCOME_UNKNOWN) /* no figures: nothing about it is known */
        member_string(&w, "retry", "resend with the same key");
    else if (res->outcome == RUSH_REDIRECT) { /* nothing decided: where to resend */
        member_u64(&w, "shard", res->state);
        put_key(&w, "leader");
        if (res->qty == UINT32_MAX)
            put_text(&w, "null");
        else
            put_format(&w, "%" PRIu32, res->qty);
    } else
        put_result_body(&w, req, res);
    if (res->tag != 0)
        member_u64(&w, "tag", res->tag);
    close_object(&w);
    return writer_finish(&w);
}

int rush_json_encode_error(const char *why, char *buf, size_t cap)
{
    RUSH_ASSERT(why != NULL);
    struct writer w = writer_start(buf, cap);
    open_object(&w);
    member_string(&w, "outcome", rush_outcome_name(RUSH_INVALID));
    member_string(&w, "reason", why);
    close_object(&w);
    return writer_finish(&w);
}

static void member_key(struct writer *w, const rush_key *key)
{
    static const char digits[] = "0123456789abcdef";
    char text[KEY_LITERAL_BYTES + 1] = "0x";
    for (size_t i = 0; i < sizeof key->bytes; i++) {
        text[2 + 2 * i] = digits[key->bytes[i] >> 4];
        text[3 + 2 * i] = digits[key->bytes[i] & 0xf];
    }
    text[KEY_LITERAL_BYTES] = '\0';
    member_string(w, "key", text);
}

static void put_request_field(struct writer *w, enum field f, const struct rush_request *req)
{
    switch (f) {
    case F_SKU:
        member_u64(w, "sku", req->sku_id);
        return;
    case F_USER:
        member_u64(w, "user", req->user_id);
        return;
    case F_QTY:
        member_u64(w, "qty", req->qty);
        return;
    case F_ORDER:
        member_id(w, "order", req->target_id);
        return;
    case F_GROUP:
        member_id(w, "group", req->target_id);
        return;
    case F_AMOUNT:
        member_i64(w, "amount", req->amount);
        return;
    case F_KEY: {
        static const rush_key zero;
        if (memcmp(&req->key, &zero, sizeof zero) != 0)
            member_key(w, &req->key);
        return;
    }
    case F_TAG:
        if (req->tag != 0)
            member_u64(w, "tag", req->tag);
        return;
    case F_LIMIT:
        member_u64(w, "limit", req->qty);
        return;
    case F_INVITER:
        if (req->inviter_id != 0)
            member_u64(w, "inviter", req->inviter_id);
        return;
    case F_NEW_USER:
        if (req->flags & RUSH_REQUEST_NEW_USER)
            member_bool(w, "new_user", true);
        return;
    case F_COUNT_:
        return;
    }
}

int rush_json_encode_request(const struct rush_request *req, char *buf, size_t cap)
{
    RUSH_ASSERT(req != NULL);
    if (req->op == RUSH_OP_NONE || req->op >= RUSH_OP_COUNT_)
        return -EINVAL;
    struct writer w = writer_start(buf, cap);
    open_object(&w);
    member_string(&w, "op", rush_op_name(req->op));
    uint32_t fields = op_fields[req->op] | op_fields_optional[req->op] | BIT(F_TAG);
    for (int f = 0; f < F_COUNT_; f++)
        if (fields & BIT(f))
            put_request_field(&w, (enum field)f, req);
    close_object(&w);
    return writer_finish(&w);
}

static const char *virtual_policy_name(uint8_t policy)
{
    size_t count = sizeof virtual_policy_names / sizeof virtual_policy_names[0];
    return policy < count ? virtual_policy_names[policy] : "unknown";
}

static void put_sku_rules(struct writer *w, const char *name, uint8_t rules)
{
    char text[64] = "";
    for (size_t r = 0; r < sizeof sku_rule_names / sizeof sku_rule_names[0]; r++) {
        if (!(rules & (1u << r)))
            continue;
        if (text[0] != '\0')
            strcat(text, ",");
        strcat(text, sku_rule_names[r]);
    }
    member_string(w, name, text);
}

/* A group or leader price: its figure when set, null when not. */
static void put_sku_price(struct writer *w, enum sku_field f, const struct rush_sku *sku)
{
    uint8_t bit = f == S_GROUP_PRICE ? RUSH_SKU_GROUP_PRICE : RUSH_SKU_LEADER_PRICE;
    if (sku->prices & bit) {
        member_i64(w, sku_field_names[f],
                   f == S_GROUP_PRICE ? sku->group_price_fen : sku->leader_price_fen);
        return;
    }
    put_key(w, sku_field_names[f]);
    put_text(w, "null");
}

/* One member of the sku object, in the form decode_sku_field reads. */
static void put_sku_field(struct writer *w, enum sku_field f, const struct rush_sku *sku)
{
    const char *name = sku_field_names[f];
    switch (f) {
    case S_ID:
        member_u64(w, name, sku->id);
        return;
    case S_NAME:
        put_key(w, name);
        put_string(w, sku->name, strnlen(sku->name, sizeof sku->name));
        return;
    case S_STOCK:
        member_i64(w, name, sku->stock);
        return;
    case S_UNLIMITED:
        member_bool(w, name, sku->unlimited != 0);
        return;
    case S_PRICE:
        member_i64(w, name, sku->price_fen);
        return;
    case S_START:
        member_i64(w, name, sku->start_ns);
        return;
    case S_END:
        member_i64(w, name, sku->end_ns);
        return;
    case S_PAY_TTL:
        member_i64(w, name, sku->pay_ttl_ns);
        return;
    case S_ORDER_QTY_MAX:
        member_u64(w, name, sku->order_qty_max);
        return;
    case S_USER_QTY_MAX:
        member_u64(w, name, sku->user_qty_max);
        return;
    case S_PAUSED:
        member_bool(w, name, sku->paused != 0);
        return;
    case S_GROUP_SIZE:
        member_u64(w, name, sku->group_size);
        return;
    case S_GROUP_TTL:
        member_i64(w, name, sku->group_ttl_ns);
        return;
    case S_GROUPS_OPEN_MAX:
        member_u64(w, name, sku->groups_open_max);
        return;
    case S_VIRTUAL_POLICY:
        member_string(w, name, virtual_policy_name(sku->virtual_policy));
        return;
    case S_VIRTUAL_SEATS_MAX:
        member_u64(w, name, sku->virtual_seats_max);
        return;
    case S_VIRTUAL_BUDGET:
        member_u64(w, name, sku->virtual_budget);
        return;
    case S_SOLO_ALLOWED:
        member_bool(w, name, sku->solo_allowed != 0);
        return;
    case S_GROUP_PRICE:
    case S_LEADER_PRICE:
        put_sku_price(w, f, sku);
        return;
    case S_RULES:
        put_sku_rules(w, name, sku->rules);
        return;
    case S_REGISTER_FROM:
        member_i64(w, name, sku->register_from_ns);
        return;
    case S_REGISTER_UNTIL:
        member_i64(w, name, sku->register_until_ns);
        return;
    case S_SUBSIDY_BUDGET:
        member_i64(w, name, sku->subsidy_budget_fen);
        return;
    case S_TIERS: {
        char text[128];
        RUSH_VERIFY(rush_sku_tiers_format(sku, text, sizeof text) >= 0);
        member_string(w, name, text);
        return;
    }
    case S_COUNT_:
        break;
    }
    RUSH_ASSERT(!"sku field out of range");
}

int rush_json_encode_sku_put(const struct rush_sku *sku, char *buf, size_t cap)
{
    RUSH_ASSERT(sku != NULL);
    uint32_t named = BIT(S_ID) | (sku->fields == 0 ? RUSH_SKU_FIELDS_ALL : sku->fields) << 1;
    struct writer w = writer_start(buf, cap);
    open_object(&w);
    member_string(&w, "op", "sku_put");
    put_key(&w, "sku");
    open_object(&w);
    for (int f = 0; f < S_COUNT_; f++)
        if (named & BIT(f))
            put_sku_field(&w, (enum sku_field)f, sku);
    close_object(&w);
    close_object(&w);
    return writer_finish(&w);
}

int rush_json_encode_stats(const struct rush_engine_stats *stats, char *buf, size_t cap)
{
    RUSH_ASSERT(stats != NULL);
    struct writer w = writer_start(buf, cap);
    open_object(&w);
    member_string(&w, "outcome", rush_outcome_name(RUSH_OK));
    member_u64(&w, "requests", stats->requests);
    member_u64(&w, "duplicates", stats->duplicates);
    member_u64(&w, "events", stats->events);
    member_u64(&w, "work_items", stats->work_items);
    member_u64(&w, "busy_rings", stats->busy_rings);
    if (stats->wal_error != 0)
        member_string(&w, "wal_error", rush_strerror(stats->wal_error));
    put_key(&w, "outcomes");
    open_object(&w);
    for (int o = 0; o < RUSH_OUTCOME_COUNT_; o++)
        member_u64(&w, rush_outcome_name(o), stats->outcomes[o]);
    close_object(&w);
    close_object(&w);
    return writer_finish(&w);
}
