/* The JSON form: every op round-trips, every outcome is named, hostile input is refused by name. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "codec/json.h"

#define BUF_BYTES 1024

static struct rush_request decode_ok(const char *text)
{
    struct rush_request req;
    char why[RUSH_JSON_WHY_BYTES];
    int rc = rush_json_decode_request(text, strlen(text), &req, why, sizeof why);
    cr_assert_eq(rc, 0, "decode of %s: %s", text, why);
    return req;
}

static void key_of_text(rush_key *key, const char *text)
{
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits(text, strlen(text)));
    memcpy(key->bytes, canonical.digest, sizeof key->bytes);
}

Test(json, reserve_decodes_as_in_the_design)
{
    struct rush_request req = decode_ok("{\"op\":\"reserve\",\"sku\":1001,\"user\":42,\"qty\":1,"
                                        "\"key\":\"k-42\"}");
    struct rush_request want = {.op = RUSH_OP_RESERVE, .qty = 1, .sku_id = 1001, .user_id = 42};
    key_of_text(&want.key, "k-42");
    cr_assert_eq(memcmp(&req, &want, sizeof req), 0);
}

Test(json, key_literal_form_is_taken_as_is)
{
    struct rush_request req = decode_ok("{\"op\":\"confirm\",\"order\":\"7\","
                                        "\"key\":\"0x000102030405060708090a0B0c0d0e0f\"}");
    for (int i = 0; i < 16; i++)
        cr_assert_eq(req.key.bytes[i], i);
    /* 33 hex digits is not the literal form: hashed like any other string. */
    struct rush_request hashed = decode_ok("{\"op\":\"confirm\",\"order\":\"7\","
                                           "\"key\":\"0x000102030405060708090a0B0c0d0e0f0\"}");
    rush_key want;
    key_of_text(&want, "0x000102030405060708090a0B0c0d0e0f0");
    cr_assert_eq(memcmp(&hashed.key, &want, sizeof want), 0);
}

/* One request of each op with every field it takes set, to round-trip through the text form. */
static struct rush_request request_of(enum rush_op op)
{
    struct rush_request req = {.op = (uint8_t)op, .tag = 900 + op};
    uint64_t big = UINT64_C(0xff00000000000001); /* above 2^53: must travel as a string */
    switch (op) {
    case RUSH_OP_RESERVE:
        req.qty = 3; /* fall through */
    case RUSH_OP_GROUP_OPEN:
    case RUSH_OP_GROUP_JOIN_ANY:
        req.sku_id = 1001;
        req.user_id = big - 5;
        break;
    case RUSH_OP_GROUP_JOIN:
        req.target_id = big | RUSH_ID_GROUP_BIT;
        req.user_id = 42;
        req.inviter_id = 4242;             /* who invited them */
        req.flags = RUSH_REQUEST_NEW_USER; /* the gateway's attestation */
        break;
    case RUSH_OP_REGISTER:
        req.sku_id = 1001;
        req.user_id = 43;
        break;
    case RUSH_OP_CONFIRM:
    case RUSH_OP_CANCEL:
    case RUSH_OP_QUERY_ORDER:
        req.target_id = big;
        break;
    case RUSH_OP_QUERY_GROUP:
        req.target_id = big | RUSH_ID_GROUP_BIT;
        break;
    case RUSH_OP_QUERY_SKU:
    case RUSH_OP_PAUSE:
    case RUSH_OP_RESUME:
        req.sku_id = 77;
        break;
    case RUSH_OP_ADJUST:
        req.sku_id = 77;
        req.amount = -250;
        break;
    case RUSH_OP_LIST_GROUPS:
        req.sku_id = 77;
        req.qty = RUSH_LIST_GROUPS_MAX; /* the JSON form's limit */
        break;
    case RUSH_OP_NONE:
    case RUSH_OP_COUNT_:
        break;
    }
    bool query = op == RUSH_OP_QUERY_ORDER || op == RUSH_OP_QUERY_GROUP ||
                 op == RUSH_OP_QUERY_SKU || op == RUSH_OP_LIST_GROUPS;
    for (int i = 0; i < 16 && !query; i++)
        req.key.bytes[i] = (uint8_t)(op * 16 + i);
    return req;
}

Test(json, every_op_round_trips_through_text)
{
    for (int op = 1; op < RUSH_OP_COUNT_; op++) {
        struct rush_request req = request_of(op);
        char text[BUF_BYTES];
        int n = rush_json_encode_request(&req, text, sizeof text);
        cr_assert_gt(n, 0, "encode %s", rush_op_name(op));
        cr_assert_eq((size_t)n, strlen(text));
        struct rush_request back = decode_ok(text);
        cr_assert_eq(memcmp(&back, &req, sizeof req), 0, "round trip of %s: %s", rush_op_name(op),
                     text);
    }
}

Test(json, ids_above_2_pow_53_survive_as_strings)
{
    struct rush_request req =
        decode_ok("{\"op\":\"query_order\",\"order\":\"18446744073709551615\"}");
    cr_assert_eq(req.target_id, UINT64_MAX);
    req = decode_ok("{\"op\":\"query_order\",\"order\":9007199254740993}");
    cr_assert_eq(req.target_id, UINT64_C(9007199254740993));

    struct rush_result res = {.outcome = RUSH_OK,
                              .order_id = UINT64_C(72057594037927937),
                              .state = RUSH_ORDER_RESERVED,
                              .qty = 2,
                              .confirmed = 1001};
    char text[BUF_BYTES];
    cr_assert_gt(rush_json_encode_result(&req, &res, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"ok\",\"order\":\"72057594037927937\","
                           "\"state\":\"reserved\",\"qty\":2,\"sku\":1001}");
}

/* json.h: every 64-bit field takes a number as well as a string, up to 2^64 - 1. */
Test(json, u64_numbers_above_2_pow_63_are_taken)
{
    struct rush_request req = decode_ok("{\"op\":\"query_order\",\"order\":9223372036854775808}");
    cr_assert_eq(req.target_id, UINT64_C(9223372036854775808));
    req = decode_ok("{\"op\":\"reserve\",\"sku\":18446744073709551615,"
                    "\"user\":18446744073709551614,\"qty\":1,\"key\":\"k-1\",\"tag\":"
                    "9223372036854775809}");
    cr_assert_eq(req.sku_id, UINT64_MAX);
    cr_assert_eq(req.user_id, UINT64_MAX - 1);
    cr_assert_eq(req.tag, UINT64_C(9223372036854775809));
    /* A digit run inside a string is left alone. */
    req = decode_ok("{\"op\":\"reserve\",\"sku\":1,\"user\":9223372036854775807,\"qty\":1,"
                    "\"key\":\"18446744073709551615\"}");
    cr_assert_eq(req.user_id, UINT64_C(9223372036854775807));
    rush_key want;
    key_of_text(&want, "18446744073709551615");
    cr_assert(memcmp(&req.key, &want, sizeof want) == 0);
    const char *const refused[] = {
        "{\"op\":\"query_order\",\"order\":18446744073709551616}",
        "{\"op\":\"query_order\",\"order\":-9223372036854775809}",
        "{\"op\":\"reserve\",\"sku\":1,\"user\":1,\"qty\":9223372036854775808,\"key\":\"a\"}",
        "{\"op\":\"adjust\",\"sku\":1,\"amount\":9223372036854775808,\"key\":\"a\"}",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char why[RUSH_JSON_WHY_BYTES];
        cr_expect_eq(
            rush_json_decode_request(refused[i], strlen(refused[i]), &req, why, sizeof why),
            RUSH_EPROTO, "%s", refused[i]);
    }
}

Test(json, reserve_answer_matches_the_design)
{
    struct rush_request req = request_of(RUSH_OP_RESERVE);
    req.tag = 0;
    struct rush_result res = {
        .outcome = RUSH_OK, .order_id = UINT64_C(72057594037927937), .remaining = 9};
    char text[BUF_BYTES];
    int n = rush_json_encode_result(&req, &res, text, sizeof text);
    cr_assert_str_eq(text, "{\"outcome\":\"ok\",\"order\":\"72057594037927937\",\"sku\":1001,"
                           "\"remaining\":9}");
    cr_assert_eq(n, (int)strlen(text));

    res.flags = RUSH_RESULT_DUPLICATE;
    res.tag = 5;
    cr_assert_gt(rush_json_encode_result(&req, &res, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"ok\",\"duplicate\":true,\"order\":\"72057594037927937\","
                           "\"sku\":1001,\"remaining\":9,\"tag\":5}");

    struct rush_result reused = {.outcome = RUSH_INVALID, .reason = RUSH_REASON_KEY_REUSED};
    cr_assert_gt(rush_json_encode_result(&req, &reused, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"invalid\",\"reason\":\"key_reused\",\"sku\":1001}");
}

Test(json, group_and_unlimited_answers)
{
    struct rush_request req = request_of(RUSH_OP_GROUP_JOIN_ANY);
    req.tag = 0;
    struct rush_result res = {.outcome = RUSH_OK,
                              .order_id = 5,
                              .group_id = 6,
                              .flags = RUSH_RESULT_UNLIMITED,
                              .remaining = 123};
    char text[BUF_BYTES];
    cr_assert_gt(rush_json_encode_result(&req, &res, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"ok\",\"order\":\"5\",\"group\":\"6\",\"sku\":1001,"
                           "\"unlimited\":true}");
}

Test(json, queries_carry_state_names_and_figures)
{
    char text[BUF_BYTES];
    struct rush_request sku = {.op = RUSH_OP_QUERY_SKU, .sku_id = 1001};
    struct rush_result figures = {
        .outcome = RUSH_OK, .remaining = 7, .reserved = 2, .confirmed = 1};
    cr_assert_gt(rush_json_encode_result(&sku, &figures, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"ok\",\"sku\":1001,\"unlimited\":false,\"available\":7,"
                           "\"reserved\":2,\"confirmed\":1,\"paused\":false}");
    figures.state = 1; /* paused */
    cr_assert_gt(rush_json_encode_result(&sku, &figures, text, sizeof text), 0);
    cr_assert(strstr(text, "\"confirmed\":1,\"paused\":true}") != NULL, "%s", text);

    struct rush_request group = {.op = RUSH_OP_QUERY_GROUP, .target_id = 99};
    int64_t deadline = INT64_C(1794326400000000000);
    struct rush_result seats = {.outcome = RUSH_OK,
                                .group_id = 99,
                                .state = RUSH_GROUP_OPEN,
                                .qty = 2,
                                .reserved = deadline};
    cr_assert_gt(rush_json_encode_result(&group, &seats, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"ok\",\"group\":\"99\",\"state\":\"open\",\"seats\":2,"
                           "\"deadline_ns\":\"1794326400000000000\"}");

    struct rush_result unknown = {.outcome = RUSH_UNKNOWN_GROUP};
    cr_assert_gt(rush_json_encode_result(&group, &unknown, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"unknown_group\",\"group\":\"99\"}");
}

Test(json, every_outcome_and_reason_is_named_in_answers)
{
    struct rush_request req = request_of(RUSH_OP_RESERVE);
    for (int o = 0; o < RUSH_OUTCOME_COUNT_; o++) {
        for (int r = 0; r < (o == RUSH_INVALID ? RUSH_REASON_COUNT_ : 1); r++) {
            struct rush_result res = {.outcome = (uint8_t)o, .reason = (uint8_t)r};
            char text[BUF_BYTES];
            char want[128];
            cr_assert_gt(rush_json_encode_result(&req, &res, text, sizeof text), 0);
            snprintf(want, sizeof want, "{\"outcome\":\"%s\"", rush_outcome_name(o));
            cr_assert_eq(strncmp(text, want, strlen(want)), 0, "%s", text);
            cr_assert_null(strstr(text, "\"unknown\""), "%s", text);
            if (o == RUSH_INVALID) {
                snprintf(want, sizeof want, "\"reason\":\"%s\"", rush_reason_name(r));
                cr_assert_not_null(strstr(text, want), "%s", text);
            }
        }
    }
}

Test(json, a_redirect_names_the_shard_and_the_leader_or_null)
{
    struct rush_request req = request_of(RUSH_OP_RESERVE);
    req.tag = 9;
    struct rush_result res = {.outcome = RUSH_REDIRECT,
                              .reason = RUSH_REASON_WRONG_SHARD,
                              .state = 3,
                              .qty = 1,
                              .tag = 9};
    char text[BUF_BYTES];
    cr_assert_gt(rush_json_encode_result(&req, &res, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"redirect\",\"reason\":\"wrong_shard\",\"shard\":3,"
                           "\"leader\":1,\"tag\":9}");
    res.qty = UINT32_MAX;
    res.tag = 0;
    cr_assert_gt(rush_json_encode_result(&req, &res, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"redirect\",\"reason\":\"wrong_shard\",\"shard\":3,"
                           "\"leader\":null}");
}

Test(json, encoders_never_overflow_their_buffer)
{
    struct rush_request req = request_of(RUSH_OP_RESERVE);
    struct rush_result res = {.outcome = RUSH_OK, .order_id = UINT64_MAX, .remaining = 1};
    char full[BUF_BYTES];
    int n = rush_json_encode_result(&req, &res, full, sizeof full);
    cr_assert_gt(n, 0);
    for (size_t cap = 0; cap <= (size_t)n + 1; cap++) {
        char *buf = malloc(cap + 1); /* exact-size heap buffers let ASan see any overrun */
        int rc = rush_json_encode_result(&req, &res, cap == 0 ? NULL : buf, cap);
        if (cap > (size_t)n)
            cr_assert_eq(rc, n);
        else
            cr_assert_eq(rc, -ENOSPC, "cap %zu", cap);
        free(buf);
    }
    cr_assert_eq(rush_json_encode_error("x", full, 5), -ENOSPC);
    cr_assert_str_eq(full, "");
}

Test(json, errors_are_escaped_json)
{
    char text[BUF_BYTES];
    cr_assert_gt(rush_json_encode_error("bad \"q\" \\ \x01 \xff\xfe end", text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"invalid\",\"reason\":\"bad \\\"q\\\" \\\\ \\u0001 "
                           "\\ufffd\\ufffd end\"}");
    /* The encoder's output is itself valid JSON that jansson reads back. */
    struct rush_json_command command;
    char why[RUSH_JSON_WHY_BYTES];
    cr_assert_eq(rush_json_decode(text, strlen(text), &command, why, sizeof why), RUSH_EPROTO);
    cr_assert_str_eq(why, "missing field 'op'");
}

Test(json, sku_put_round_trips_and_stats_decodes)
{
    struct rush_sku sku = {.id = 1001,
                           .stock = 1000,
                           .price_fen = 100,
                           .start_ns = INT64_C(1794326400000000000),
                           .end_ns = INT64_MAX,
                           .pay_ttl_ns = INT64_C(900000000000),
                           .group_ttl_ns = 600000000000,
                           .order_qty_max = 1,
                           .user_qty_max = 2,
                           .group_size = 3,
                           .groups_open_max = 100,
                           .virtual_seats_max = 1,
                           .virtual_budget = 50,
                           .virtual_policy = RUSH_VIRTUAL_AT_MOST,
                           .paused = 1};
    memcpy(sku.name, "RMB-1 \"quoted\" 手机", strlen("RMB-1 \"quoted\" 手机"));
    char text[BUF_BYTES];
    cr_assert_gt(rush_json_encode_sku_put(&sku, text, sizeof text), 0);
    struct rush_json_command command;
    char why[RUSH_JSON_WHY_BYTES];
    cr_assert_eq(rush_json_decode(text, strlen(text), &command, why, sizeof why), 0, "%s", why);
    cr_assert_eq(command.kind, RUSH_JSON_SKU_PUT);
    cr_assert_eq(memcmp(&command.sku, &sku, sizeof sku), 0, "%s", text);

    /* One stock, several prices: a leader price of 0 (free) survives; an unset price stays unset */
    sku.solo_allowed = 1;
    sku.prices = RUSH_SKU_LEADER_PRICE;
    sku.leader_price_fen = 0;
    cr_assert_gt(rush_json_encode_sku_put(&sku, text, sizeof text), 0);
    cr_assert_not_null(strstr(text, "\"solo_allowed\":true"), "%s", text);
    cr_assert_not_null(strstr(text, "\"leader_price_fen\":0"), "%s", text);
    cr_assert_not_null(strstr(text, "\"group_price_fen\":null"), "%s", text);
    cr_assert_eq(rush_json_decode(text, strlen(text), &command, why, sizeof why), 0, "%s", why);
    cr_assert_eq(memcmp(&command.sku, &sku, sizeof sku), 0, "%s", text);
    sku.prices |= RUSH_SKU_GROUP_PRICE;
    sku.group_price_fen = 60;
    cr_assert_gt(rush_json_encode_sku_put(&sku, text, sizeof text), 0);
    cr_assert_eq(rush_json_decode(text, strlen(text), &command, why, sizeof why), 0, "%s", why);
    cr_assert_eq(memcmp(&command.sku, &sku, sizeof sku), 0, "%s", text);

    /* Who may buy, tiers and a subsidy budget (a tiered SKU sets no group or leader price) */
    sku.prices = 0, sku.group_price_fen = sku.leader_price_fen = 0, sku.solo_allowed = 0;
    sku.virtual_policy = RUSH_VIRTUAL_NONE, sku.virtual_seats_max = sku.virtual_budget = 0;
    sku.group_size = 5;
    sku.tier_count = 2;
    sku.tier_size[0] = 3, sku.tier_price_fen[0] = 99;
    sku.tier_size[1] = 5, sku.tier_price_fen[1] = 89;
    sku.subsidy_budget_fen = 12345;
    sku.id = UINT64_C(5000000000001001);
    sku.rules = RUSH_SKU_IN_ACTIVITY | RUSH_SKU_NEW_USERS_ONLY | RUSH_SKU_REGISTRATION;
    sku.register_from_ns = sku.start_ns - 1000;
    sku.register_until_ns = sku.start_ns + 1000;
    cr_assert_gt(rush_json_encode_sku_put(&sku, text, sizeof text), 0);
    cr_assert_not_null(strstr(text, "\"rules\":\"new_users_only,registration_required,activity\""),
                       "%s", text);
    cr_assert_not_null(strstr(text, "\"tiers\":\"3:99, 5:89\""), "%s", text);
    cr_assert_eq(rush_json_decode(text, strlen(text), &command, why, sizeof why), 0, "%s", why);
    cr_assert_eq(memcmp(&command.sku, &sku, sizeof sku), 0, "%s", text);

    cr_assert_eq(rush_json_decode("{\"op\":\"stats\"}", 14, &command, why, sizeof why), 0);
    cr_assert_eq(command.kind, RUSH_JSON_STATS);
    cr_assert_eq(rush_json_decode("{\"op\":\"snapshot\"}", 17, &command, why, sizeof why), 0);
    cr_assert_eq(command.kind, RUSH_JSON_SNAPSHOT);
    cr_assert_eq(rush_json_decode("{\"op\":\"snapshot\",\"sku\":1}", 25, &command, why, sizeof why),
                 RUSH_EPROTO);
    cr_assert_str_eq(why, "op 'snapshot' takes no other field");
    struct rush_request request;
    cr_assert_eq(rush_json_decode_request("{\"op\":\"snapshot\"}", 17, &request, why, sizeof why),
                 RUSH_EPROTO, "not a request");

    /* outcome_unknown: no figures, a retry hint, the tag kept */
    struct rush_request reserve = {.op = RUSH_OP_RESERVE, .sku_id = 1001, .tag = 7};
    struct rush_result unknown = {.outcome = RUSH_OUTCOME_UNKNOWN, .remaining = 5, .tag = 7};
    cr_assert_gt(rush_json_encode_result(&reserve, &unknown, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"outcome_unknown\",\"retry\":\"resend with the same "
                           "key\",\"tag\":7}");

    struct rush_engine_stats stats = {.requests = 10, .outcomes = {[RUSH_SOLD_OUT] = 3}};
    cr_assert_gt(rush_json_encode_stats(&stats, text, sizeof text), 0);
    cr_assert_not_null(strstr(text, "\"requests\":10"));
    cr_assert_not_null(strstr(text, "\"sold_out\":3"));
}

struct hostile {
    const char *text;
    size_t len; /* 0: strlen(text) */
    const char *why;
};

static const struct hostile hostile_inputs[] = {
    {"", 0, "invalid JSON at line 1, column 0: "},
    {"reserve sku 1001", 0, "invalid JSON at line 1, column 7: "},
    {"{\"op\":\"reserve\",", 0, "invalid JSON at line 1, column 16: "},
    {"{\"op\":\"reserve\"} {}", 0, "invalid JSON at line 1, column 18: end of file expected"},
    {"[1,2]", 0, "not a JSON object (got an array)"},
    {"42", 0, "not a JSON object (got an integer)"},
    {"\"reserve\"", 0, "not a JSON object (got a string)"},
    {"null", 0, "not a JSON object (got null)"},
    {"{}", 0, "missing field 'op'"},
    {"{\"op\":7}", 0, "field 'op' must be a string, not an integer"},
    {"{\"op\":\"buy\",\"sku\":1}", 0, "unknown op 'buy'"},
    {"{\"op\":\"none\"}", 0, "unknown op 'none'"},
    {"{\"op\":\"reserve\",\"sku\":1,\"user\":2,\"qty\":1,\"key\":\"k\",\"foo\":1}", 0,
     "unknown field 'foo'"},
    {"{\"op\":\"reserve\",\"user\":2,\"qty\":1,\"key\":\"k\"}", 0,
     "missing field 'sku' for op 'reserve'"},
    {"{\"op\":\"reserve\",\"sku\":1,\"user\":2,\"qty\":1}", 0,
     "missing field 'key': op 'reserve' changes state and needs an idempotency key"},
    {"{\"op\":\"cancel\",\"order\":\"9\"}", 0,
     "missing field 'key': op 'cancel' changes state and needs an idempotency key"},
    {"{\"op\":\"reserve\",\"sku\":1,\"user\":2,\"qty\":0,\"key\":\"k\"}", 0,
     "field 'qty' must be an integer 1..1000000"},
    {"{\"op\":\"reserve\",\"sku\":1,\"user\":2,\"qty\":-1,\"key\":\"k\"}", 0,
     "field 'qty' must be an integer 1..1000000"},
    {"{\"op\":\"reserve\",\"sku\":1,\"user\":2,\"qty\":1000001,\"key\":\"k\"}", 0,
     "field 'qty' must be an integer 1..1000000"},
    {"{\"op\":\"reserve\",\"sku\":1,\"user\":2,\"qty\":\"1\",\"key\":\"k\"}", 0,
     "field 'qty' must be an integer 1..1000000"},
    {"{\"op\":\"reserve\",\"sku\":1,\"user\":2,\"qty\":1.5,\"key\":\"k\"}", 0,
     "field 'qty' must be an integer 1..1000000"},
    {"{\"op\":\"reserve\",\"sku\":1,\"user\":2,\"qty\":1e3,\"key\":\"k\"}", 0,
     "field 'qty' must be an integer 1..1000000"},
    {"{\"op\":\"reserve\",\"sku\":\"abc\",\"user\":2,\"qty\":1,\"key\":\"k\"}", 0,
     "field 'sku' must be an id 1..18446744073709551615 (an integer or a string of decimal "
     "digits)"},
    {"{\"op\":\"reserve\",\"sku\":0,\"user\":2,\"qty\":1,\"key\":\"k\"}", 0,
     "field 'sku' must be an id 1..18446744073709551615 (an integer or a string of decimal "
     "digits)"},
    {"{\"op\":\"query_order\",\"order\":\"18446744073709551616\"}", 0,
     "field 'order' must be an id 1..18446744073709551615 (an integer or a string of decimal "
     "digits)"},
    {"{\"op\":\"query_order\",\"order\":\"-1\"}", 0,
     "field 'order' must be an id 1..18446744073709551615 (an integer or a string of decimal "
     "digits)"},
    {"{\"op\":\"query_order\",\"order\":99999999999999999999999}", 0,
     "invalid JSON at line 1, column 51: too big integer"},
    {"{\"op\":\"query_order\",\"order\":1e999}", 0,
     "invalid JSON at line 1, column 33: real number overflow near '1e999'"},
    {"{\"op\":\"adjust\",\"sku\":1,\"amount\":0,\"key\":\"k\"}", 0,
     "field 'amount' must be a nonzero integer -1000000000000..1000000000000"},
    {"{\"op\":\"query_sku\",\"sku\":1,\"key\":\"k\"}", 0,
     "field 'key' does not apply to op 'query_sku'"},
    {"{\"op\":\"confirm\",\"order\":\"1\",\"qty\":1,\"key\":\"k\"}", 0,
     "field 'qty' does not apply to op 'confirm'"},
    {"{\"op\":\"reserve\",\"sku\":1,\"sku\":2,\"user\":2,\"qty\":1,\"key\":\"k\"}", 0,
     "invalid JSON at line 1, column 29: duplicate object key near '\"sku\"'"},
    {"{\"op\":\"confirm\",\"order\":\"1\",\"key\":\"\"}", 0,
     "field 'key' must be a string of 1..128 bytes"},
    {"{\"op\":\"confirm\",\"order\":\"1\",\"key\":42}", 0,
     "field 'key' must be a string of 1..128 bytes"},
    {"{\"op\":\"confirm\",\"order\":\"1\",\"key\":\"0x00000000000000000000000000000000\"}", 0,
     "field 'key' must not be the zero key"},
    {"{\"op\":\"confirm\",\"order\":\"1\",\"key\":\"a\\u0000b\"}", 0,
     "invalid JSON at line 1, column 44: \\u0000 is not allowed without JSON_ALLOW_NUL"},
    {"{\"op\":\"confirm\0\",\"order\":\"1\"}", 29, "invalid JSON at line 1, column 14: "},
    {"{\"op\":\"stats\",\"sku\":1}", 0, "op 'stats' takes no other field"},
    {"{\"op\":\"sku_put\",\"sku\":1001}", 0,
     "field 'sku' of op 'sku_put' must be an object, not an integer"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":1,\"bogus\":1}}", 0, "unknown field 'sku.bogus'"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":1}}", 0, "sku_put of sku 1 names no field to change"},
    {"{\"op\":\"sku_put\",\"sku\":{\"name\":\"x\"}}", 0, "missing field 'sku.id'"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":1,\"paused\":1}}", 0,
     "field 'sku.paused' must be a boolean"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":1,\"name\":\"12345678901234567890123456789012345678901\"}"
     "}",
     0, "field 'sku.name' must be a string of 1..40 bytes"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":5,\"name\":\"x\",\"stock\":1,\"price_fen\":1,\"start_"
     "ns\":0,"
     "\"end_ns\":1,\"order_qty_max\":1,\"user_qty_max\":1,\"group_size\":1}}",
     0, "sku_put of sku 5: group_size must be 2..64"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":5,\"name\":\"x\",\"stock\":1,\"unlimited\":true,"
     "\"price_fen\":1,\"start_ns\":0,\"end_ns\":1,\"order_qty_max\":1,\"user_qty_max\":1}}",
     0, "sku_put of sku 5: stock must be 0 when unlimited"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":5,\"name\":\"x\",\"stock\":1,\"price_fen\":1,"
     "\"start_ns\":0,\"end_ns\":1,\"order_qty_max\":1,\"user_qty_max\":1,\"leader_price_fen\":0}}",
     0, "sku_put of sku 5: solo_allowed, group_price and leader_price need group_size"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":5,\"name\":\"x\",\"stock\":1,\"price_fen\":100,"
     "\"start_ns\":0,\"end_ns\":1,\"order_qty_max\":1,\"user_qty_max\":1,\"group_size\":2,"
     "\"group_ttl_ns\":1000000000,\"groups_open_max\":1,\"group_price_fen\":101}}",
     0, "sku_put of sku 5: group_price must be 0..100 fen (at most the list price)"},
    {"{\"op\":\"list_groups\",\"sku\":1}", 0, "missing field 'limit' for op 'list_groups'"},
    {"{\"op\":\"group_open\",\"sku\":1,\"user\":2,\"inviter\":3,\"key\":\"k\"}", 0,
     "field 'inviter' does not apply to op 'group_open'"},
    {"{\"op\":\"group_join_any\",\"sku\":1,\"user\":2,\"inviter\":0,\"key\":\"k\"}", 0,
     "field 'inviter' must be an id 1..18446744073709551615"},
    {"{\"op\":\"list_groups\",\"sku\":1,\"limit\":0}", 0, "field 'limit' must be an integer 1..20"},
    {"{\"op\":\"list_groups\",\"sku\":1,\"limit\":3,\"user\":4}", 0,
     "field 'user' does not apply to op 'list_groups'"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":1,\"solo_allowed\":1}}", 0,
     "field 'sku.solo_allowed' must be a boolean"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":1,\"group_price_fen\":-1}}", 0,
     "field 'sku.group_price_fen' must be an integer >= 0 (fen)"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":1,\"virtual_policy\":\"some\"}}", 0,
     "field 'sku.virtual_policy' must be one of none, fill, at_most"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":1,\"rules\":\"activity,activity\"}}", 0,
     "field 'sku.rules' must be a comma-separated list of new_users_only"},
    {"{\"op\":\"sku_put\",\"sku\":{\"id\":1,\"tiers\":\"3:99,\"}}", 0,
     "field 'sku.tiers' must be a string of up to 4 SIZE:PRICE tiers"},
    {"{\"op\":\"register\",\"sku\":1,\"user\":2}", 0,
     "missing field 'key': op 'register' changes state and needs an idempotency key"},
    {"{\"op\":\"reserve\",\"sku\":1,\"user\":2,\"qty\":1,\"new_user\":1,\"key\":\"k\"}", 0,
     "field 'new_user' must be a boolean"},
};

Test(json, hostile_inputs_are_refused_by_name)
{
    size_t count = sizeof hostile_inputs / sizeof hostile_inputs[0];
    for (size_t i = 0; i < count; i++) {
        const struct hostile *h = &hostile_inputs[i];
        size_t len = h->len != 0 ? h->len : strlen(h->text);
        char *copy = malloc(len + 1); /* exact length: ASan catches any read past it */
        memcpy(copy, h->text, len);
        struct rush_json_command command;
        char why[RUSH_JSON_WHY_BYTES];
        int rc = rush_json_decode(copy, len, &command, why, sizeof why);
        free(copy);
        cr_assert_eq(rc, RUSH_EPROTO, "input %zu (%s) decoded", i, h->text);
        cr_assert_eq(strncmp(why, h->why, strlen(h->why)), 0, "input %zu: got \"%s\" want \"%s\"",
                     i, why, h->why);
    }
}

Test(json, admin_forms_are_not_requests)
{
    struct rush_request req;
    char why[RUSH_JSON_WHY_BYTES];
    cr_assert_eq(rush_json_decode_request("{\"op\":\"stats\"}", 14, &req, why, sizeof why),
                 RUSH_EPROTO);
    cr_assert_str_eq(why, "op 'stats' is an admin command, not a request");
}

static char *repeated(const char *head, char fill, size_t count, const char *tail)
{
    size_t head_len = strlen(head), tail_len = strlen(tail);
    char *text = malloc(head_len + count + tail_len + 1);
    memcpy(text, head, head_len);
    memset(text + head_len, fill, count);
    memcpy(text + head_len + count, tail, tail_len + 1);
    return text;
}

Test(json, oversized_and_bomb_messages_are_refused)
{
    char why[RUSH_JSON_WHY_BYTES];
    struct rush_json_command command;

    char *huge = repeated("{\"op\":\"confirm\",\"order\":\"1\",\"key\":\"", 'a', 1 << 20, "\"}");
    cr_assert_eq(rush_json_decode(huge, strlen(huge), &command, why, sizeof why), RUSH_EPROTO);
    cr_assert_eq(strncmp(why, "message of 1048", 15), 0, "%s", why);
    cr_assert_not_null(strstr(why, "over the limit of 65536"), "%s", why);
    free(huge);

    char *long_key = repeated("{\"op\":\"confirm\",\"order\":\"1\",\"key\":\"", 'a', 129, "\"}");
    cr_assert_eq(rush_json_decode(long_key, strlen(long_key), &command, why, sizeof why),
                 RUSH_EPROTO);
    cr_assert_str_eq(why, "field 'key' must be a string of 1..128 bytes");
    free(long_key);

    char *deep = repeated("{\"op\":", '[', 60000, "");
    cr_assert_eq(rush_json_decode(deep, strlen(deep), &command, why, sizeof why), RUSH_EPROTO);
    cr_assert_not_null(strstr(why, "maximum parsing depth reached"), "%s", why);
    free(deep);

    char *field = repeated("{\"op\":\"reserve\",\"", 'f', 5000, "\":1}");
    cr_assert_eq(rush_json_decode(field, strlen(field), &command, why, sizeof why), RUSH_EPROTO);
    cr_assert_str_eq(why, "unknown field 'ffffffffffffffffffffffffffffffffffffffff...'");
    free(field);
}

Test(json, reasons_fit_a_short_buffer_and_stay_ascii)
{
    const char *text = "{\"op\":\"b\xc3\xa4y\"}";
    struct rush_request req;
    char why[12];
    cr_assert_eq(rush_json_decode_request(text, strlen(text), &req, why, sizeof why), RUSH_EPROTO);
    cr_assert_str_eq(why, "unknown op ");
    char full[RUSH_JSON_WHY_BYTES];
    cr_assert_eq(rush_json_decode_request(text, strlen(text), &req, full, sizeof full),
                 RUSH_EPROTO);
    cr_assert_str_eq(full, "unknown op 'b??y'");
}

Test(json, a_confirm_names_the_state_it_left_the_order_in)
{
    struct rush_request req = decode_ok("{\"op\":\"confirm\",\"order\":\"7\",\"key\":\"pay-2\"}");
    struct rush_result res = {
        .outcome = RUSH_EXPIRED, .order_id = 7, .state = RUSH_ORDER_CONFIRMED};
    char text[BUF_BYTES];
    cr_assert_gt(rush_json_encode_result(&req, &res, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"expired\",\"order\":\"7\",\"state\":\"confirmed\"}",
                     "a second payment: refunded, the order stays confirmed");
    res = (struct rush_result){.outcome = RUSH_OK, .order_id = 7, .state = RUSH_ORDER_CONFIRMED};
    cr_assert_gt(rush_json_encode_result(&req, &res, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"ok\",\"order\":\"7\",\"state\":\"confirmed\"}");
}

Test(json, list_groups_answers_one_list)
{
    struct rush_request req = decode_ok("{\"op\":\"list_groups\",\"sku\":1001,\"limit\":3}");
    cr_assert_eq(req.op, RUSH_OP_LIST_GROUPS);
    cr_assert_eq(req.qty, 3, "the limit travels in qty");
    struct rush_result results[3] = {
        {.outcome = RUSH_OK,
         .qty = 2,
         .group_id = 17,
         .remaining = 1,
         .reserved = 5,
         .confirmed = 42},
        {.outcome = RUSH_OK,
         .qty = 1,
         .group_id = 9,
         .remaining = 2,
         .reserved = 6,
         .confirmed = 43},
        {.outcome = RUSH_UNKNOWN_GROUP},
    };
    char text[BUF_BYTES];
    cr_assert_gt(rush_json_encode_group_list(&req, results, 3, text, sizeof text), 0);
    cr_assert_str_eq(text,
                     "{\"outcome\":\"ok\",\"sku\":1001,\"groups\":[{\"group\":\"17\",\"seats\":2,"
                     "\"free\":1,\"deadline_ns\":5,\"leader\":42},{\"group\":\"9\",\"seats\":1,"
                     "\"free\":2,\"deadline_ns\":6,\"leader\":43}]}");
    results[0] = (struct rush_result){.outcome = RUSH_UNKNOWN_GROUP};
    cr_assert_gt(rush_json_encode_group_list(&req, results, 3, text, sizeof text), 0);
    cr_assert_str_eq(text, "{\"outcome\":\"ok\",\"sku\":1001,\"groups\":[]}");
    results[0] = (struct rush_result){.outcome = RUSH_INVALID, .reason = RUSH_REASON_NOT_GROUP_SKU};
    cr_assert_gt(rush_json_encode_group_list(&req, results, 3, text, sizeof text), 0);
    cr_assert_not_null(strstr(text, "\"reason\":\"not_group_sku\""), "%s", text);
}

Test(json, an_inviter_rides_on_joins)
{
    struct rush_request req = decode_ok(
        "{\"op\":\"group_join_any\",\"sku\":1001,\"user\":7,\"inviter\":42,\"key\":\"k\"}");
    cr_assert_eq(req.inviter_id, 42);
    req = decode_ok("{\"op\":\"group_join_any\",\"sku\":1001,\"user\":7,\"key\":\"k\"}");
    cr_assert_eq(req.inviter_id, 0, "optional: nobody invited them");
    struct rush_request join = {.op = RUSH_OP_GROUP_JOIN, .user_id = 7, .target_id = 9};
    struct rush_result self = {.outcome = RUSH_INVALID, .reason = RUSH_REASON_INVITER_SELF};
    char text[BUF_BYTES];
    cr_assert_gt(rush_json_encode_result(&join, &self, text, sizeof text), 0);
    cr_assert_not_null(strstr(text, "\"reason\":\"inviter_self\""), "%s", text);
}
