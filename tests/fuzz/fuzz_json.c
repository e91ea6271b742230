/*
 * fuzz_json.c — libFuzzer target for the JSON form (proto/codec/json.c): the decoder on arbitrary
 * bytes, and the hand-written encoder checked against jansson.
 *
 * Checks, with always-on asserts:
 *  1. nothing is read outside the input (ASan), and no undefined behaviour (UBSan);
 *  2. a refusal's reason is plain printable ASCII, and rush_json_encode_error wraps it in JSON
 *     that jansson reads back to the same text;
 *  3. every decoded request and sku_put re-encodes to text jansson parses, whose members hold
 *     the decoded fields, and which decodes again to the same record (json.h invariant 2);
 *  4. a result built from the input's bytes encodes to JSON jansson parses, naming the outcome.
 * Seeds: tests/fuzz/corpus/json/ (every op, sku_put whole and partial, stats, broken texts).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/number.h"
#include "codec/json.h"
#include "rush/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_BYTES_MAX 8192

static json_t *parse(const char *text, int len)
{
    RUSH_ASSERT(len > 0 && len < TEXT_BYTES_MAX);
    RUSH_ASSERT(strlen(text) == (size_t)len);
    json_error_t error;
    json_t *root = json_loadb(text, (size_t)len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL)
        fprintf(stderr, "encoder wrote JSON jansson refuses: %s\n%s\n", error.text, text);
    RUSH_ASSERT(root != NULL && json_is_object(root));
    return root;
}

/* A 64-bit member, in either form the encoder may use (number, or decimal string). */
static uint64_t member_u64(const json_t *object, const char *name)
{
    const json_t *value = json_object_get(object, name);
    RUSH_ASSERT(value != NULL);
    if (json_is_integer(value))
        return (uint64_t)json_integer_value(value);
    RUSH_ASSERT(json_is_string(value));
    uint64_t out = 0;
    int64_t signed_out = 0;
    const char *s = json_string_value(value);
    size_t len = json_string_length(value);
    if (rush_number_parse_u64(s, len, 0, UINT64_MAX, &out, NULL, 0) == 0)
        return out;
    RUSH_VERIFY(rush_number_parse_i64(s, len, INT64_MIN, INT64_MAX, &signed_out, NULL, 0) == 0);
    return (uint64_t)signed_out;
}

static void expect_member_u64(const json_t *object, const char *name, uint64_t want)
{
    if (json_object_get(object, name) != NULL)
        RUSH_ASSERT(member_u64(object, name) == want);
}

static void check_request(const struct rush_request *req)
{
    char text[TEXT_BYTES_MAX];
    int len = rush_json_encode_request(req, text, sizeof text);
    json_t *root = parse(text, len);
    RUSH_ASSERT(strcmp(json_string_value(json_object_get(root, "op")),
                       rush_op_name((enum rush_op)req->op)) == 0);
    expect_member_u64(root, "sku", req->sku_id);
    expect_member_u64(root, "user", req->user_id);
    expect_member_u64(root, "qty", req->qty);
    expect_member_u64(root, "order", req->target_id);
    expect_member_u64(root, "group", req->target_id);
    expect_member_u64(root, "amount", (uint64_t)req->amount);
    expect_member_u64(root, "tag", req->tag);
    json_decref(root);
    struct rush_request again;
    char why[RUSH_JSON_WHY_BYTES];
    RUSH_VERIFY(rush_json_decode_request(text, (size_t)len, &again, why, sizeof why) == 0);
    RUSH_ASSERT(memcmp(&again, req, sizeof again) == 0);
}

static void check_sku_put(const struct rush_sku *sku)
{
    char text[TEXT_BYTES_MAX];
    int len = rush_json_encode_sku_put(sku, text, sizeof text);
    json_t *root = parse(text, len);
    const json_t *object = json_object_get(root, "sku");
    RUSH_ASSERT(json_is_object(object));
    RUSH_ASSERT(member_u64(object, "id") == sku->id);
    const json_t *name = json_object_get(object, "name");
    if (name != NULL) {
        size_t n = strnlen(sku->name, sizeof sku->name);
        RUSH_ASSERT(json_string_length(name) == n);
        RUSH_ASSERT(memcmp(json_string_value(name), sku->name, n) == 0);
    }
    expect_member_u64(object, "stock", (uint64_t)sku->stock);
    expect_member_u64(object, "price_fen", (uint64_t)sku->price_fen);
    expect_member_u64(object, "start_ns", (uint64_t)sku->start_ns);
    expect_member_u64(object, "end_ns", (uint64_t)sku->end_ns);
    expect_member_u64(object, "user_qty_max", sku->user_qty_max);
    expect_member_u64(object, "virtual_budget", sku->virtual_budget);
    const json_t *paused = json_object_get(object, "paused");
    RUSH_ASSERT(paused == NULL || json_is_true(paused) == (sku->paused != 0));
    json_decref(root);
    struct rush_json_command again;
    char why[RUSH_JSON_WHY_BYTES];
    RUSH_VERIFY(rush_json_decode(text, (size_t)len, &again, why, sizeof why) == 0);
    RUSH_ASSERT(again.kind == RUSH_JSON_SKU_PUT);
    RUSH_ASSERT(memcmp(&again.sku, sku, sizeof again.sku) == 0);
}

/* A result with the input's bytes in it, the enum bytes folded into range. */
static void check_result(const struct rush_request *req, const uint8_t *data, size_t size)
{
    struct rush_result res = {0};
    memcpy(&res, data, size < sizeof res ? size : sizeof res);
    res.outcome %= RUSH_OUTCOME_COUNT_;
    res.reason %= RUSH_REASON_COUNT_;
    char text[TEXT_BYTES_MAX];
    int len = rush_json_encode_result(req, &res, text, sizeof text);
    json_t *root = parse(text, len);
    RUSH_ASSERT(strcmp(json_string_value(json_object_get(root, "outcome")),
                       rush_outcome_name((enum rush_outcome)res.outcome)) == 0);
    expect_member_u64(root, "tag", res.tag);
    json_decref(root);
}

static void check_refusal(const char *why)
{
    for (const char *p = why; *p != '\0'; p++)
        RUSH_ASSERT(*p >= 0x20 && *p < 0x7f);
    char text[TEXT_BYTES_MAX];
    int len = rush_json_encode_error(why, text, sizeof text);
    json_t *root = parse(text, len);
    RUSH_ASSERT(strcmp(json_string_value(json_object_get(root, "reason")), why) == 0);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rush_json_command command;
    char why[RUSH_JSON_WHY_BYTES] = "";
    if (rush_json_decode((const char *)data, size, &command, why, sizeof why) != 0) {
        RUSH_ASSERT(why[0] != '\0');
        check_refusal(why);
        struct rush_request none = {.op = RUSH_OP_NONE, .sku_id = size};
        check_result(&none, data, size);
        return 0;
    }
    switch (command.kind) {
    case RUSH_JSON_REQUEST:
        check_request(&command.request);
        check_result(&command.request, data, size);
        break;
    case RUSH_JSON_SKU_PUT:
        check_sku_put(&command.sku);
        break;
    case RUSH_JSON_STATS:
    case RUSH_JSON_SNAPSHOT:
        break;
    }
    return 0;
}
