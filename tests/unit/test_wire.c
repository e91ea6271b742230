/*
 * The binary wire protocol: every kind round-trips, hostile messages are refused with the text
 * that names their problem, field problems are counted per record, limits hold at their edge,
 * and no truncation of a valid message is read past its end (run under ASan to prove it).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rush/wire.h"

#define BUF_BYTES (RUSH_WIRE_MESSAGE_BYTES_MAX + 64)

/* 8-byte aligned scratch, large enough for any message plus an offset. */
static uint64_t scratch_words[BUF_BYTES / 8];
#define SCRATCH ((uint8_t *)scratch_words)

/* PROTOCOL.md section 4, "fields used", written out again here: s sku, u user, t target,
 * a amount, k key. */
static const char *const fields_used[RUSH_OP_COUNT_] = {
    [RUSH_OP_RESERVE] = "suk",    [RUSH_OP_CONFIRM] = "tk",      [RUSH_OP_CANCEL] = "tk",
    [RUSH_OP_GROUP_OPEN] = "suk", [RUSH_OP_GROUP_JOIN] = "tuak", [RUSH_OP_GROUP_JOIN_ANY] = "suak",
    [RUSH_OP_QUERY_ORDER] = "t",  [RUSH_OP_QUERY_GROUP] = "t",   [RUSH_OP_QUERY_SKU] = "s",
    [RUSH_OP_ADJUST] = "sak",     [RUSH_OP_PAUSE] = "sk",        [RUSH_OP_RESUME] = "sk",
    [RUSH_OP_LIST_GROUPS] = "s",  [RUSH_OP_REGISTER] = "suk",
};

static bool op_uses(uint8_t op, char field)
{
    return op < RUSH_OP_COUNT_ && fields_used[op] != NULL && strchr(fields_used[op], field);
}

/* A request of `op` with every field it uses set and the rest zero. */
static struct rush_request request_make(uint8_t op, uint32_t qty, uint64_t seed)
{
    struct rush_request request = {
        .op = op,
        .qty = qty,
        .sku_id = op_uses(op, 's') ? 1000 + seed : 0,
        .user_id = op_uses(op, 'u') ? 42 + seed : 0,
        .target_id = op_uses(op, 't') ? (UINT64_C(3) << 56) | seed : 0,
        .amount = op_uses(op, 'a') ? -(int64_t)seed - 1 : 0,
        .tag = 0xfeed0000 + seed,
    };
    for (int i = 0; i < 16 && op_uses(op, 'k'); i++)
        request.key.bytes[i] = (uint8_t)(seed * 16 + (uint64_t)i + 1);
    return request;
}

static void three_requests(struct rush_request out[3])
{
    out[0] = request_make(RUSH_OP_RESERVE, 1, 1);
    out[1] = request_make(RUSH_OP_CONFIRM, 0, 2);
    out[2] = request_make(RUSH_OP_RESERVE, RUSH_WIRE_QTY_MAX, 3);
}

/* A valid 3-request message in SCRATCH; returns its length. */
static size_t valid_message(void)
{
    struct rush_request requests[3];
    three_requests(requests);
    int bytes = rush_wire_encode_requests(SCRATCH, BUF_BYTES, 77, requests, 3);
    cr_assert_eq(bytes, 32 + 3 * 64);
    return (size_t)bytes;
}

static void put_u16(uint8_t *at, uint16_t value)
{
    memcpy(at, &value, sizeof(value));
}

static void put_u32(uint8_t *at, uint32_t value)
{
    memcpy(at, &value, sizeof(value));
}

/* A whole SKU definition that passes rush_sku_check. */
static struct rush_sku sku_valid(uint64_t id)
{
    return (struct rush_sku){.id = id,
                             .name = "RMB-1 phone",
                             .stock = 10,
                             .price_fen = 100,
                             .start_ns = 1,
                             .end_ns = 2,
                             .order_qty_max = 2,
                             .user_qty_max = 4};
}

Test(wire, requests_round_trip_and_point_into_the_buffer)
{
    struct rush_request requests[3];
    three_requests(requests);
    int bytes = rush_wire_encode_requests(SCRATCH, BUF_BYTES, 0x0123456789abcdefu, requests, 3);
    cr_assert_eq(bytes, (int)rush_wire_message_bytes(RUSH_WIRE_REQUEST, 3));
    cr_assert_eq(memcmp(SCRATCH, "RUSH", 4), 0, "the magic reads \"RUSH\"");

    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0, "%s", error.text);
    cr_assert_eq(error.code, RUSH_WIRE_OK);
    cr_assert_str_empty(error.text);
    cr_assert_eq(view.kind, RUSH_WIRE_REQUEST);
    cr_assert_eq(view.version, 1);
    cr_assert_eq(view.message_id, 0x0123456789abcdefu);
    cr_assert_eq(view.count, 3);
    cr_assert_eq(view.record_bytes, 64);
    cr_assert(view.aligned);
    cr_assert_eq((const void *)view.requests, (const void *)(SCRATCH + 32), "zero-copy");
    cr_assert_null(view.results);
    cr_assert_null(view.skus);
    cr_assert_eq(view.invalid_count, 0);
    cr_assert_eq(view.invalid_first_index, RUSH_WIRE_NO_RECORD);
    cr_assert_eq(memcmp(view.requests, requests, sizeof(requests)), 0);
}

Test(wire, results_round_trip)
{
    struct rush_result results[2] = {
        {.outcome = RUSH_OK, .qty = 1, .order_id = 9, .remaining = 99, .tag = 5},
        {.outcome = RUSH_INVALID, .reason = RUSH_REASON_QTY, .flags = RUSH_RESULT_DUPLICATE},
    };
    int bytes = rush_wire_encode_results(SCRATCH, BUF_BYTES, 8, results, 2);
    cr_assert_eq(bytes, 32 + 2 * 56);
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0, "%s", error.text);
    cr_assert_eq(view.kind, RUSH_WIRE_RESULT);
    cr_assert_eq(view.message_id, 8);
    cr_assert_eq(view.count, 2);
    cr_assert_not_null(view.results);
    cr_assert_eq(memcmp(view.results, results, sizeof(results)), 0);
}

Test(wire, skus_round_trip)
{
    struct rush_sku skus[2] = {sku_valid(1001), sku_valid(1002)};
    skus[1].unlimited = 1;
    skus[1].stock = 0;
    skus[1].group_size = 3;
    skus[1].group_ttl_ns = INT64_C(60000000000);
    skus[1].groups_open_max = 10;
    skus[1].virtual_policy = RUSH_VIRTUAL_AT_MOST;
    skus[1].virtual_seats_max = 1;
    skus[1].virtual_budget = 5;
    memset(skus[1].name, 'x', sizeof(skus[1].name)); /* a full name has no NUL */
    int bytes = rush_wire_encode_skus(SCRATCH, BUF_BYTES, 9, skus, 2);
    cr_assert_eq(bytes, 32 + 2 * 224);
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0, "%s", error.text);
    cr_assert_eq(view.kind, RUSH_WIRE_SKU_PUT);
    cr_assert_eq(view.invalid_count, 0);
    cr_assert_eq(memcmp(view.skus, skus, sizeof(skus)), 0);
}

Test(wire, error_round_trips_and_drops_bytes_after_the_nul)
{
    struct rush_wire_error sent;
    rush_wire_error_set(&sent, RUSH_WIRE_E_VERSION, RUSH_WIRE_NO_RECORD, "version %u not supported",
                        7);
    sent.text[sizeof(sent.text) - 2] = 'z'; /* garbage after the NUL */
    int bytes = rush_wire_encode_error(SCRATCH, BUF_BYTES, 10, &sent);
    cr_assert_eq(bytes, 32 + 128);
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0, "%s", error.text);
    cr_assert_eq(view.kind, RUSH_WIRE_ERROR);
    cr_assert_eq(view.message_id, 10);
    cr_assert_eq(view.error.code, RUSH_WIRE_E_VERSION);
    cr_assert_eq(view.error.record_index, RUSH_WIRE_NO_RECORD);
    cr_assert_str_eq(view.error.text, "version 7 not supported");
    cr_assert_eq(view.error.text[sizeof(sent.text) - 2], '\0');
    cr_assert_eq(rush_wire_view_copy(&view, scratch_words, 8), -EINVAL);
}

Test(wire, message_bytes_is_exact_and_knows_the_limits)
{
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_REQUEST, 2), 32 + 128);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_RESULT, 2), 32 + 112);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_SKU_PUT, 1), 32 + 224);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_ERROR, 1), 32 + 128);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_ERROR, 2), 0);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_REQUEST, 0), 0);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_KIND_NONE, 1), 0);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_KIND_COUNT_, 1), 0);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_REQUEST, RUSH_WIRE_REQUESTS_MAX),
                 32 + 16383 * 64);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_REQUEST, RUSH_WIRE_REQUESTS_MAX + 1), 0);
    cr_assert_leq(rush_wire_message_bytes(RUSH_WIRE_RESULT, RUSH_WIRE_RESULTS_MAX),
                  RUSH_WIRE_MESSAGE_BYTES_MAX);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_RESULT, RUSH_WIRE_RESULTS_MAX + 1), 0);
    cr_assert_eq(rush_wire_message_bytes(RUSH_WIRE_SKU_PUT, RUSH_WIRE_SKUS_MAX + 1), 0);
}

Test(wire, encoders_refuse_what_the_decoder_would)
{
    struct rush_request requests[2] = {request_make(RUSH_OP_RESERVE, 1, 1),
                                       request_make(RUSH_OP_RESERVE, 1, 2)};
    size_t need = rush_wire_message_bytes(RUSH_WIRE_REQUEST, 2);
    cr_assert_eq(rush_wire_encode_requests(SCRATCH, need - 1, 1, requests, 2), -ENOSPC);
    cr_assert_eq(rush_wire_encode_requests(SCRATCH, need, 1, requests, 2), (int)need);
    cr_assert_eq(rush_wire_encode_requests(SCRATCH, need, 1, requests, 0), -EINVAL);
    cr_assert_eq(rush_wire_encode_requests(SCRATCH, need, 1, NULL, 2), -EINVAL);
    cr_assert_eq(
        rush_wire_encode_requests(SCRATCH, BUF_BYTES, 1, requests, RUSH_WIRE_REQUESTS_MAX + 1),
        -EMSGSIZE);
    requests[1].pad = 1;
    cr_assert_eq(rush_wire_encode_requests(SCRATCH, need, 1, requests, 2), -EINVAL);

    /* A field problem is the engine's to answer: it encodes. */
    requests[1].pad = 0;
    requests[1].op = 99;
    cr_assert_eq(rush_wire_encode_requests(SCRATCH, need, 1, requests, 2), (int)need);

    struct rush_result result = {.outcome = RUSH_OUTCOME_COUNT_};
    cr_assert_eq(rush_wire_encode_results(SCRATCH, BUF_BYTES, 1, &result, 1), -EINVAL);
    result = (struct rush_result){.outcome = RUSH_INVALID, .reason = RUSH_REASON_COUNT_};
    cr_assert_eq(rush_wire_encode_results(SCRATCH, BUF_BYTES, 1, &result, 1), -EINVAL);

    struct rush_sku sku = sku_valid(1);
    sku.pad[5] = 1;
    cr_assert_eq(rush_wire_encode_skus(SCRATCH, BUF_BYTES, 1, &sku, 1), -EINVAL);
    sku.pad[5] = 0;
    sku.fields = RUSH_SKU_FIELDS_ALL + 1; /* a field bit that does not exist */
    cr_assert_eq(rush_wire_encode_skus(SCRATCH, BUF_BYTES, 1, &sku, 1), -EINVAL);

    struct rush_wire_error error = {.code = RUSH_WIRE_OK};
    cr_assert_eq(rush_wire_encode_error(SCRATCH, BUF_BYTES, 1, &error), -EINVAL);
    error.code = RUSH_WIRE_E_SERVER;
    memset(error.text, 'a', sizeof(error.text)); /* no NUL */
    cr_assert_eq(rush_wire_encode_error(SCRATCH, BUF_BYTES, 1, &error), -EINVAL);
    strcpy(error.text, "tab\there");
    cr_assert_eq(rush_wire_encode_error(SCRATCH, BUF_BYTES, 1, &error), -EINVAL);
    cr_assert_eq(rush_wire_encode_error(SCRATCH, BUF_BYTES, 1, NULL), -EINVAL);
}

/* One hostile message: built from the valid 3-request message in SCRATCH by `mutate`. */
struct hostile {
    const char *name;
    void (*mutate)(uint8_t *message, size_t *len);
    uint32_t code;
    uint32_t record_index;
    const char *text;
};

static void m_empty(uint8_t *m, size_t *len)
{
    (void)m;
    *len = 0;
}
static void m_one_byte(uint8_t *m, size_t *len)
{
    (void)m;
    *len = 1;
}
static void m_header_only(uint8_t *m, size_t *len)
{
    (void)m;
    *len = 32;
}
static void m_header_only_body_zero(uint8_t *m, size_t *len)
{
    put_u32(m + 12, 0);
    *len = 32;
}
static void m_magic(uint8_t *m, size_t *len)
{
    (void)len;
    memcpy(m, "GET ", 4);
}
static void m_version(uint8_t *m, size_t *len)
{
    (void)len;
    put_u16(m + 4, 7);
}
static void m_version_zero(uint8_t *m, size_t *len)
{
    (void)len;
    put_u16(m + 4, 0);
}
static void m_kind(uint8_t *m, size_t *len)
{
    (void)len;
    put_u16(m + 6, 9);
}
static void m_kind_zero(uint8_t *m, size_t *len)
{
    (void)len;
    put_u16(m + 6, 0);
}
static void m_flags(uint8_t *m, size_t *len)
{
    (void)len;
    put_u32(m + 24, 1);
}
static void m_reserved(uint8_t *m, size_t *len)
{
    (void)len;
    m[31] = 0x80;
}
static void m_count_zero(uint8_t *m, size_t *len)
{
    (void)len;
    put_u32(m + 8, 0);
}
static void m_count_huge(uint8_t *m, size_t *len)
{
    (void)len;
    put_u32(m + 8, UINT32_MAX);
}
static void m_count_over_body(uint8_t *m, size_t *len)
{
    put_u32(m + 12, 100);
    *len = 132;
}
static void m_count_under_body(uint8_t *m, size_t *len)
{
    (void)len;
    put_u32(m + 8, 2);
}
static void m_truncated(uint8_t *m, size_t *len)
{
    (void)m;
    *len -= 1;
}
static void m_trailing(uint8_t *m, size_t *len)
{
    m[*len] = 0;
    *len += 1;
}
static void m_oversized(uint8_t *m, size_t *len)
{
    (void)m;
    *len = RUSH_WIRE_MESSAGE_BYTES_MAX + 1;
}
static void m_record_flags(uint8_t *m, size_t *len)
{
    (void)len;
    m[32 + 64 + 1] = 2; /* a flag bit no version defines */
}
static void m_record_pad(uint8_t *m, size_t *len)
{
    (void)len;
    put_u16(m + 32 + 128 + 2, 0xbeef);
}
static void m_error_count_two(uint8_t *m, size_t *len)
{
    (void)len;
    put_u16(m + 6, RUSH_WIRE_ERROR);
    put_u32(m + 8, 2);
}
static void m_as_error_with_code_zero(uint8_t *m, size_t *len)
{
    /* 32 + 192 bytes is not 32 + 128: use the first 160 as an ERROR whose code is 0. */
    put_u16(m + 6, RUSH_WIRE_ERROR);
    put_u32(m + 8, 1);
    put_u32(m + 12, 128);
    memset(m + 32, 0, 128);
    *len = 160;
}
static void m_as_error_with_unterminated_text(uint8_t *m, size_t *len)
{
    m_as_error_with_code_zero(m, len);
    put_u32(m + 32, RUSH_WIRE_E_SERVER);
    memset(m + 40, 'a', RUSH_WIRE_ERROR_TEXT_BYTES);
}
static void m_as_error_with_bytes_after_nul(uint8_t *m, size_t *len)
{
    m_as_error_with_code_zero(m, len);
    put_u32(m + 32, RUSH_WIRE_E_SERVER);
    memcpy(m + 40, "ok\0x", 4);
}
static void m_as_results_with_bad_outcome(uint8_t *m, size_t *len)
{
    /* 4 results of 56 bytes fill the 224-byte body of 3 requests exactly. */
    put_u16(m + 6, RUSH_WIRE_RESULT);
    put_u32(m + 8, 4);
    put_u32(m + 12, 4 * 56);
    memset(m + 32, 0, 4 * 56);
    m[32 + 2 * 56] = 99;
    *len = 32 + 4 * 56;
}
static void m_as_results_with_bad_reason(uint8_t *m, size_t *len)
{
    m_as_results_with_bad_outcome(m, len);
    m[32 + 2 * 56] = RUSH_INVALID;
    m[32 + 3 * 56 + 2] = RUSH_REASON_COUNT_;
}
static void m_as_skus_with_pad(uint8_t *m, size_t *len)
{
    put_u16(m + 6, RUSH_WIRE_SKU_PUT);
    put_u32(m + 8, 1);
    put_u32(m + 12, 224);
    memset(m + 32, 0, 224);
    m[32 + 223] = 1; /* the last pad byte */
    *len = 256;
}

static const struct hostile hostiles[] = {
    {"empty", m_empty, RUSH_WIRE_E_SHORT, RUSH_WIRE_NO_RECORD,
     "message is 0 bytes, shorter than the 32-byte header"},
    {"one byte", m_one_byte, RUSH_WIRE_E_SHORT, RUSH_WIRE_NO_RECORD,
     "message is 1 bytes, shorter than the 32-byte header"},
    {"header only, count 3", m_header_only, RUSH_WIRE_E_LENGTH, RUSH_WIRE_NO_RECORD,
     "header says body is 192 bytes, 0 received"},
    {"header only, body 0, count 3", m_header_only_body_zero, RUSH_WIRE_E_COUNT,
     RUSH_WIRE_NO_RECORD, "body is 0 bytes, count 3 needs 192"},
    {"wrong magic", m_magic, RUSH_WIRE_E_MAGIC, RUSH_WIRE_NO_RECORD, "bad magic 0x20544547"},
    {"wrong version", m_version, RUSH_WIRE_E_VERSION, RUSH_WIRE_NO_RECORD,
     "version 7 not supported"},
    {"version 0", m_version_zero, RUSH_WIRE_E_VERSION, RUSH_WIRE_NO_RECORD,
     "version 0 not supported"},
    {"unknown kind", m_kind, RUSH_WIRE_E_KIND, RUSH_WIRE_NO_RECORD, "unknown kind 9"},
    {"kind 0", m_kind_zero, RUSH_WIRE_E_KIND, RUSH_WIRE_NO_RECORD, "unknown kind 0"},
    {"header flags", m_flags, RUSH_WIRE_E_HEADER, RUSH_WIRE_NO_RECORD,
     "header flags 0x00000001 not supported"},
    {"header reserved", m_reserved, RUSH_WIRE_E_HEADER, RUSH_WIRE_NO_RECORD,
     "header reserved bytes not zero"},
    {"count 0", m_count_zero, RUSH_WIRE_E_COUNT, RUSH_WIRE_NO_RECORD,
     "count 0: a request message carries at least one record"},
    {"count huge", m_count_huge, RUSH_WIRE_E_COUNT, RUSH_WIRE_NO_RECORD,
     "count 4294967295 over the limit of 16383 for request"},
    {"count 3, body 100", m_count_over_body, RUSH_WIRE_E_COUNT, RUSH_WIRE_NO_RECORD,
     "body is 100 bytes, count 3 needs 192"},
    {"count 2, body 192", m_count_under_body, RUSH_WIRE_E_COUNT, RUSH_WIRE_NO_RECORD,
     "body is 192 bytes, count 2 needs 128"},
    {"truncated by a byte", m_truncated, RUSH_WIRE_E_LENGTH, RUSH_WIRE_NO_RECORD,
     "header says body is 192 bytes, 191 received"},
    {"a trailing byte", m_trailing, RUSH_WIRE_E_LENGTH, RUSH_WIRE_NO_RECORD,
     "header says body is 192 bytes, 193 received"},
    {"oversized", m_oversized, RUSH_WIRE_E_OVERSIZE, RUSH_WIRE_NO_RECORD,
     "message is 1048577 bytes, over the limit of 1048576"},
    {"record flags", m_record_flags, RUSH_WIRE_E_RECORD, 1,
     "record 1: reserved bytes not zero (flags 0x02, pad 0x0000)"},
    {"record pad", m_record_pad, RUSH_WIRE_E_RECORD, 2,
     "record 2: reserved bytes not zero (flags 0x00, pad 0xbeef)"},
    {"error with count 2", m_error_count_two, RUSH_WIRE_E_COUNT, RUSH_WIRE_NO_RECORD,
     "count 2 over the limit of 1 for error"},
    {"error with code 0", m_as_error_with_code_zero, RUSH_WIRE_E_RECORD, 0,
     "record 0: unknown error code 0"},
    {"error text without NUL", m_as_error_with_unterminated_text, RUSH_WIRE_E_RECORD, 0,
     "record 0: error text is not NUL-padded printable ASCII"},
    {"error text with bytes after NUL", m_as_error_with_bytes_after_nul, RUSH_WIRE_E_RECORD, 0,
     "record 0: error text is not NUL-padded printable ASCII"},
    {"result outcome", m_as_results_with_bad_outcome, RUSH_WIRE_E_RECORD, 2,
     "record 2: unknown outcome 99"},
    {"result reason", m_as_results_with_bad_reason, RUSH_WIRE_E_RECORD, 3,
     "record 3: unknown reason 25"},
    {"sku pad", m_as_skus_with_pad, RUSH_WIRE_E_RECORD, 0, "record 0: reserved bytes not zero"},
};

Test(wire, hostile_messages_are_refused_with_the_right_text)
{
    for (size_t i = 0; i < sizeof(hostiles) / sizeof(hostiles[0]); i++) {
        const struct hostile *h = &hostiles[i];
        memset(SCRATCH, 0, BUF_BYTES);
        size_t len = valid_message();
        h->mutate(SCRATCH, &len);
        struct rush_wire_view view;
        struct rush_wire_error error;
        int rc = rush_wire_decode(SCRATCH, len, &view, &error);
        cr_expect_eq(rc, RUSH_EPROTO, "%s: rc %d", h->name, rc);
        cr_expect_eq(error.code, h->code, "%s: code %u (%s)", h->name, error.code, error.text);
        cr_expect_eq(error.record_index, h->record_index, "%s: record %u", h->name,
                     error.record_index);
        cr_expect_str_eq(error.text, h->text, "%s", h->name);
        if (len >= 24)
            cr_expect_eq(view.message_id, 77, "%s: the id is kept for the reply", h->name);

        /* Every refusal can be sent back as an ERROR and read by the client. */
        int bytes = rush_wire_encode_error(SCRATCH, BUF_BYTES, view.message_id, &error);
        cr_assert_eq(bytes, 160, "%s", h->name);
        cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0, "%s", h->name);
        cr_expect_str_eq(view.error.text, h->text, "%s", h->name);
    }
}

/* Field problems: the message is accepted, the record is counted and named. */
struct field_case {
    const char *name;
    uint32_t record_index;
    uint8_t op;
    uint32_t qty;
    const char *text;
};

static const struct field_case field_cases[] = {
    {"unknown op 99", 5, 99, 0, "record 5: unknown op 99"},
    {"op none", 0, RUSH_OP_NONE, 0, "record 0: unknown op 0"},
    {"op one past the last", 3, RUSH_OP_COUNT_, 0, "record 3: unknown op 15"},
    {"list_groups rank past the limit", 2, RUSH_OP_LIST_GROUPS, RUSH_LIST_GROUPS_MAX,
     "record 2: qty 20 out of range"},
    {"reserve of 0", 2, RUSH_OP_RESERVE, 0, "record 2: qty 0 out of range"},
    {"reserve over the max", 4, RUSH_OP_RESERVE, RUSH_WIRE_QTY_MAX + 1,
     "record 4: qty 1000001 out of range"},
    {"qty on a confirm", 1, RUSH_OP_CONFIRM, 3, "record 1: qty 3 for confirm, must be 0"},
};

Test(wire, field_problems_are_answered_per_record)
{
    for (size_t c = 0; c < sizeof(field_cases) / sizeof(field_cases[0]); c++) {
        const struct field_case *fc = &field_cases[c];
        struct rush_request requests[6];
        for (uint32_t i = 0; i < 6; i++)
            requests[i] = request_make(RUSH_OP_RESERVE, 1, i);
        requests[fc->record_index].op = fc->op;
        requests[fc->record_index].qty = fc->qty;
        int bytes = rush_wire_encode_requests(SCRATCH, BUF_BYTES, 3, requests, 6);
        cr_assert_gt(bytes, 0, "%s", fc->name);
        struct rush_wire_view view;
        struct rush_wire_error error;
        cr_expect_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0, "%s", fc->name);
        cr_expect_eq(view.invalid_count, 1, "%s", fc->name);
        cr_expect_eq(view.invalid_first_index, fc->record_index, "%s", fc->name);
        cr_expect_eq(error.code, RUSH_WIRE_E_FIELD, "%s", fc->name);
        cr_expect_eq(error.record_index, fc->record_index, "%s", fc->name);
        cr_expect_str_eq(error.text, fc->text, "%s", fc->name);
        enum rush_reason want =
            fc->op == RUSH_OP_RESERVE || fc->op == RUSH_OP_CONFIRM || fc->op == RUSH_OP_LIST_GROUPS
                ? RUSH_REASON_QTY
                : RUSH_REASON_OP;
        cr_expect_eq(rush_wire_request_reason(&view.requests[fc->record_index]), want, "%s",
                     fc->name);
    }
}

Test(wire, several_field_problems_name_the_first)
{
    struct rush_request requests[4];
    for (uint32_t i = 0; i < 4; i++)
        requests[i] = request_make(RUSH_OP_RESERVE, 0, i); /* all qty 0 */
    requests[0].qty = 1;
    int bytes = rush_wire_encode_requests(SCRATCH, BUF_BYTES, 3, requests, 4);
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0);
    cr_assert_eq(view.invalid_count, 3);
    cr_assert_eq(view.invalid_first_index, 1);
    cr_assert_str_eq(error.text, "record 1: qty 0 out of range");
}

Test(wire, every_op_with_its_qty_rule)
{
    for (uint8_t op = 1; op < RUSH_OP_COUNT_; op++) {
        struct rush_request request = request_make(op, op == RUSH_OP_RESERVE ? 1 : 0, op);
        cr_expect_eq(rush_wire_request_reason(&request), RUSH_REASON_NONE, "op %u", op);
        request.qty = op == RUSH_OP_RESERVE       ? 0
                      : op == RUSH_OP_LIST_GROUPS ? RUSH_LIST_GROUPS_MAX /* the rank asked */
                                                  : 1;
        cr_expect_eq(rush_wire_request_reason(&request), RUSH_REASON_QTY, "op %u", op);
    }
}

/* The new-user attestation is a field of the ops that take a unit; on any other op: field. */
Test(wire, new_user_flag_only_on_reservations)
{
    for (uint8_t op = 1; op < RUSH_OP_COUNT_; op++) {
        struct rush_request request = request_make(op, op == RUSH_OP_RESERVE ? 1 : 0, op);
        request.flags = RUSH_REQUEST_NEW_USER;
        bool takes = op == RUSH_OP_RESERVE || op == RUSH_OP_GROUP_OPEN ||
                     op == RUSH_OP_GROUP_JOIN || op == RUSH_OP_GROUP_JOIN_ANY;
        cr_expect_eq(rush_wire_request_reason(&request),
                     takes ? RUSH_REASON_NONE : RUSH_REASON_FIELD, "op %u", op);
    }
}

/* PROTOCOL.md 3.1: fields an op does not use must be zero; an op naming a user names one. */
Test(wire, unused_fields_must_be_zero)
{
    for (uint8_t op = 1; op < RUSH_OP_COUNT_; op++) {
        uint32_t qty = op == RUSH_OP_RESERVE ? 1 : 0;
        for (const char *f = "sutak"; *f != '\0'; f++) {
            struct rush_request request = request_make(op, qty, op);
            if (op_uses(op, *f)) {
                if (*f != 'u')
                    continue;
                request.user_id = 0; /* user 0 is no user: JSON refuses it as well */
            } else if (*f == 's') {
                request.sku_id = 7;
            } else if (*f == 'u') {
                request.user_id = 7;
            } else if (*f == 't') {
                request.target_id = 7;
            } else if (*f == 'a') {
                request.amount = -7;
            } else {
                request.key.bytes[15] = 7;
            }
            cr_expect_eq(rush_wire_request_reason(&request), RUSH_REASON_FIELD, "op %u field %c",
                         op, *f);
            struct rush_wire_view view;
            struct rush_wire_error error;
            int bytes = rush_wire_encode_requests(SCRATCH, BUF_BYTES, 3, &request, 1);
            cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0);
            cr_expect_eq(view.invalid_count, 1, "op %u field %c", op, *f);
            cr_expect_eq(error.code, RUSH_WIRE_E_FIELD);
        }
    }
}

Test(wire, sku_field_problems_are_answered_per_record)
{
    struct rush_sku skus[3] = {sku_valid(1), sku_valid(2), sku_valid(3)};
    skus[1].unlimited = 2;
    skus[2].virtual_policy = 3;
    int bytes = rush_wire_encode_skus(SCRATCH, BUF_BYTES, 3, skus, 3);
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0);
    cr_assert_eq(view.invalid_count, 2);
    cr_assert_eq(view.invalid_first_index, 1);
    cr_assert_str_eq(error.text, "record 1: unlimited and paused must be 0 or 1");
    cr_assert_eq(rush_wire_sku_reason(&skus[2]), RUSH_REASON_SKU_DEF);
    skus[2].virtual_policy = 0;
    skus[2].paused = 9;
    cr_assert_eq(rush_wire_sku_reason(&skus[2]), RUSH_REASON_SKU_DEF);
    cr_assert_eq(rush_wire_sku_reason(&skus[0]), RUSH_REASON_NONE);

    /* A whole definition meets the campaign's rules, with the campaign's words. */
    skus[0].user_qty_max = skus[0].order_qty_max - 1;
    bytes = rush_wire_encode_skus(SCRATCH, BUF_BYTES, 4, skus, 1);
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0);
    cr_assert_eq(view.invalid_count, 1);
    cr_assert_str_eq(error.text,
                     "record 0: user_qty_max must be 2..1000000 (at least order_qty_max)");

    /* A partial put (it names fields) is checked only for what it names; the engine merges. */
    struct rush_sku partial = {.id = 7, .fields = RUSH_SKU_FIELD_PRICE, .price_fen = 5};
    cr_assert_eq(rush_wire_sku_reason(&partial), RUSH_REASON_NONE);
    partial.fields |= RUSH_SKU_FIELD_PAUSED;
    partial.paused = 2;
    cr_assert_eq(rush_wire_sku_reason(&partial), RUSH_REASON_SKU_DEF);
}

Test(wire, max_size_messages_decode_and_one_more_record_is_refused)
{
    static struct rush_request requests[RUSH_WIRE_REQUESTS_MAX + 1];
    for (uint32_t i = 0; i <= RUSH_WIRE_REQUESTS_MAX; i++)
        requests[i] = request_make(RUSH_OP_RESERVE, 1 + i % RUSH_WIRE_QTY_MAX, i);
    int bytes = rush_wire_encode_requests(SCRATCH, BUF_BYTES, 1, requests, RUSH_WIRE_REQUESTS_MAX);
    cr_assert_eq(bytes, 32 + RUSH_WIRE_REQUESTS_MAX * 64);
    cr_assert_leq(bytes, RUSH_WIRE_MESSAGE_BYTES_MAX);
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0, "%s", error.text);
    cr_assert_eq(view.count, RUSH_WIRE_REQUESTS_MAX);
    cr_assert_eq(view.invalid_count, 0);

    /* One more record by hand: 1 MiB + 32 bytes, refused for its size before anything else. */
    memcpy(SCRATCH + bytes, &requests[RUSH_WIRE_REQUESTS_MAX], 64);
    put_u32(SCRATCH + 8, RUSH_WIRE_REQUESTS_MAX + 1);
    put_u32(SCRATCH + 12, (RUSH_WIRE_REQUESTS_MAX + 1) * 64);
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes + 64, &view, &error), RUSH_EPROTO);
    cr_assert_str_eq(error.text, "message is 1048608 bytes, over the limit of 1048576");
    cr_assert_eq(
        rush_wire_encode_requests(SCRATCH, BUF_BYTES, 1, requests, RUSH_WIRE_REQUESTS_MAX + 1),
        -EMSGSIZE);

    /* The largest result and SKU messages. */
    static struct rush_result results[RUSH_WIRE_RESULTS_MAX];
    bytes = rush_wire_encode_results(SCRATCH, BUF_BYTES, 2, results, RUSH_WIRE_RESULTS_MAX);
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0, "%s", error.text);
    cr_assert_eq(view.count, RUSH_WIRE_RESULTS_MAX);
    static struct rush_sku skus[RUSH_WIRE_SKUS_MAX];
    bytes = rush_wire_encode_skus(SCRATCH, BUF_BYTES, 2, skus, RUSH_WIRE_SKUS_MAX);
    cr_assert_eq(rush_wire_decode(SCRATCH, (size_t)bytes, &view, &error), 0, "%s", error.text);
    cr_assert_eq(view.count, RUSH_WIRE_SKUS_MAX);
}

/* Each prefix lives in a heap block of exactly its size: ASan reports any read past it. */
static void every_truncation_errors(const uint8_t *message, size_t len)
{
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n == 0 ? 1 : n);
        cr_assert_not_null(copy);
        memcpy(copy, message, n);
        struct rush_wire_view view;
        struct rush_wire_error error;
        int rc = rush_wire_decode(n == 0 ? NULL : copy, n, &view, &error);
        cr_expect_eq(rc, RUSH_EPROTO, "prefix of %zu bytes decoded", n);
        cr_expect_neq(error.code, RUSH_WIRE_OK, "prefix of %zu bytes", n);
        cr_expect_neq(error.text[0], '\0', "prefix of %zu bytes", n);
        free(copy);
    }
}

Test(wire, truncation_at_every_offset_errors_without_reading_past_the_end)
{
    size_t len = valid_message();
    static uint8_t message[32 + 3 * 64];
    memcpy(message, SCRATCH, len);
    every_truncation_errors(message, len);

    struct rush_wire_error sent;
    rush_wire_error_set(&sent, RUSH_WIRE_E_SERVER, RUSH_WIRE_NO_RECORD, "stopping");
    int bytes = rush_wire_encode_error(message, sizeof(message), 1, &sent);
    cr_assert_eq(bytes, 160);
    every_truncation_errors(message, (size_t)bytes);
}

Test(wire, unaligned_messages_decode_and_copy_out)
{
    struct rush_request requests[3];
    three_requests(requests);
    uint8_t *at = SCRATCH + 4; /* where nanomsg puts a REQ/REP body */
    int bytes = rush_wire_encode_requests(at, BUF_BYTES - 4, 5, requests, 3);
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert_eq(rush_wire_decode(at, (size_t)bytes, &view, &error), 0, "%s", error.text);
    cr_assert_not(view.aligned);
    cr_assert_null(view.requests, "no typed pointer to unaligned records");
    cr_assert_eq(view.records, (const void *)(at + 32));

    struct rush_request copied[3];
    cr_assert_eq(rush_wire_view_copy(&view, copied, sizeof(copied) - 1), -ENOSPC);
    cr_assert_eq(rush_wire_view_copy(&view, copied, sizeof(copied)), (int)sizeof(copied));
    cr_assert_eq(memcmp(copied, requests, sizeof(copied)), 0);

    /* Field checks read unaligned records too. */
    at[32 + 64] = 99;
    cr_assert_eq(rush_wire_decode(at, (size_t)bytes, &view, &error), 0);
    cr_assert_str_eq(error.text, "record 1: unknown op 99");
}

Test(wire, error_set_truncates_and_keeps_the_text_printable)
{
    struct rush_wire_error error;
    char long_text[300];
    memset(long_text, 'y', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    rush_wire_error_set(&error, RUSH_WIRE_E_SERVER, 4, "%s", long_text);
    cr_assert_eq(strlen(error.text), RUSH_WIRE_ERROR_TEXT_BYTES - 1);
    rush_wire_error_set(&error, RUSH_WIRE_E_SERVER, 4, "bad\nline\x7f");
    cr_assert_str_eq(error.text, "bad?line?");
    cr_assert_eq(error.record_index, 4);
    cr_assert_gt(rush_wire_encode_error(SCRATCH, BUF_BYTES, 1, &error), 0);
}

Test(wire, kinds_and_codes_have_names)
{
    for (int k = 0; k < RUSH_WIRE_KIND_COUNT_; k++)
        cr_expect_str_neq(rush_wire_kind_name(k), "unknown", "kind %d", k);
    for (int c = 0; c < RUSH_WIRE_CODE_COUNT_; c++)
        cr_expect_str_neq(rush_wire_code_name(c), "unknown", "code %d", c);
    cr_expect_str_eq(rush_wire_kind_name(RUSH_WIRE_KIND_COUNT_), "unknown");
    cr_expect_str_eq(rush_wire_code_name(RUSH_WIRE_CODE_COUNT_), "unknown");
    cr_expect_str_eq(rush_wire_kind_name(RUSH_WIRE_SKU_PUT), "sku_put");
}

/* Reads a seed written by tests/fuzz/make_corpus_wire.py into SCRATCH; returns its length. */
static size_t read_seed(const char *name)
{
    /* ctest sets RUSH_SOURCE_DIR; run by hand, fall back on this file's own path. */
    const char *root = getenv("RUSH_SOURCE_DIR");
    char path[4096];
    cr_assert(root != NULL || strrchr(__FILE__, '/') != NULL, "set RUSH_SOURCE_DIR");
    if (root != NULL)
        snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/wire/%s", root, name);
    else
        snprintf(path, sizeof(path), "%.*s/../fuzz/corpus/wire/%s",
                 (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__, name);
    FILE *file = fopen(path, "rb");
    cr_assert_not_null(file, "%s", path);
    size_t len = fread(SCRATCH, 1, BUF_BYTES, file);
    fclose(file);
    return len;
}

/* PROTOCOL.md section 9, encoded by the C encoder, equals the independent Python encoding. */
Test(wire, the_worked_example_matches_the_document)
{
    struct rush_request requests[2] = {
        {.op = RUSH_OP_RESERVE, .qty = 1, .sku_id = 1001, .user_id = 42, .tag = 1},
        {.op = RUSH_OP_QUERY_SKU, .sku_id = 1001, .tag = 2},
    };
    memcpy(requests[0].key.bytes, "k-42-0001", 9);
    static uint8_t encoded[160];
    int bytes =
        rush_wire_encode_requests(encoded, sizeof(encoded), 0x1122334455667788u, requests, 2);
    cr_assert_eq(bytes, 160);
    cr_assert_eq(read_seed("request_2.bin"), 160);
    cr_assert_eq(memcmp(encoded, SCRATCH, 160), 0);

    struct rush_result results[2] = {
        {.outcome = RUSH_OK,
         .state = RUSH_ORDER_RESERVED,
         .qty = 1,
         .order_id = UINT64_C(0x0100000000000005),
         .remaining = 9,
         .tag = 1},
        {.outcome = RUSH_OK, .remaining = 9, .reserved = 1, .tag = 2},
    };
    bytes = rush_wire_encode_results(encoded, sizeof(encoded), 0x1122334455667788u, results, 2);
    cr_assert_eq(bytes, 144);
    cr_assert_eq(read_seed("result_2.bin"), 144);
    cr_assert_eq(memcmp(encoded, SCRATCH, 144), 0);
}

/* Every seed decodes or is refused as its name says; none is a surprise. */
Test(wire, seeds_decode_as_named)
{
    static const struct {
        const char *name;
        int rc;
        uint32_t invalid_count;
    } seeds[] = {
        {"request_2.bin", 0, 0},
        {"result_2.bin", 0, 0},
        {"request_every_op.bin", 0, 0},
        {"request_field_problems.bin", 0, 3},
        {"sku_put_2.bin", 0, 0},
        {"error.bin", 0, 0},
        {"bad_magic.bin", RUSH_EPROTO, 0},
        {"bad_version.bin", RUSH_EPROTO, 0},
        {"truncated.bin", RUSH_EPROTO, 0},
        {"count_mismatch.bin", RUSH_EPROTO, 0},
        {"reserved_nonzero.bin", RUSH_EPROTO, 0},
        {"header_only.bin", RUSH_EPROTO, 0},
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        size_t len = read_seed(seeds[i].name);
        struct rush_wire_view view;
        struct rush_wire_error error;
        int rc = rush_wire_decode(SCRATCH, len, &view, &error);
        cr_expect_eq(rc, seeds[i].rc, "%s: %s", seeds[i].name, error.text);
        if (rc == 0)
            cr_expect_eq(view.invalid_count, seeds[i].invalid_count, "%s", seeds[i].name);
    }
}
