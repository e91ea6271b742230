/*
 * fuzz_wire.c — libFuzzer target for the wire decoder (proto/codec/wire.c).
 *
 * Feeds arbitrary bytes to rush_wire_decode() and checks, with always-on asserts:
 *  1. nothing is read outside the input (ASan), and no undefined behaviour (UBSan);
 *  2. the same bytes one byte off alignment decode to the same answer (rc, error text);
 *  3. a refusal carries a code and a NUL-terminated text, and round-trips as an ERROR message;
 *  4. a message that decodes re-encodes to exactly the same bytes, and the per-record field
 *     count agrees with rush_wire_request_reason() / rush_wire_sku_reason().
 * Inputs are at most RUSH_WIRE_MESSAGE_BYTES_MAX + 1 bytes (longer ones are refused unread).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rush/assert.h"
#include "rush/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BYTES_MAX (RUSH_WIRE_MESSAGE_BYTES_MAX + 16)

/* 8-byte aligned scratch: a shifted copy of the input, copied records, a re-encoding. */
static uint64_t shifted_words[FUZZ_BYTES_MAX / 8];
static uint64_t records_words[FUZZ_BYTES_MAX / 8];
static uint64_t encoded_words[FUZZ_BYTES_MAX / 8];

static void check_refusal(const struct rush_wire_view *view, const struct rush_wire_error *error)
{
    RUSH_ASSERT(error->code != RUSH_WIRE_OK && error->code < RUSH_WIRE_CODE_COUNT_);
    RUSH_ASSERT(error->code != RUSH_WIRE_E_FIELD);
    RUSH_ASSERT(memchr(error->text, '\0', sizeof(error->text)) != NULL);
    RUSH_ASSERT(error->text[0] != '\0');

    uint8_t *encoded = (uint8_t *)encoded_words;
    int bytes = rush_wire_encode_error(encoded, sizeof(encoded_words), view->message_id, error);
    RUSH_ASSERT(bytes == RUSH_WIRE_HEADER_BYTES + (int)sizeof(struct rush_wire_error));
    struct rush_wire_view back;
    struct rush_wire_error back_error;
    RUSH_VERIFY(rush_wire_decode(encoded, (size_t)bytes, &back, &back_error) == 0);
    RUSH_ASSERT(back.kind == RUSH_WIRE_ERROR);
    RUSH_ASSERT(back.message_id == view->message_id);
    RUSH_ASSERT(memcmp(&back.error, error, sizeof(*error)) == 0);
}

/* Counts the records with a field problem, from an aligned copy of them. */
static uint32_t count_invalid(const struct rush_wire_view *view, const void *records)
{
    uint32_t invalid = 0;
    for (uint32_t i = 0; i < view->count; i++) {
        if (view->kind == RUSH_WIRE_REQUEST)
            invalid += rush_wire_request_reason((const struct rush_request *)records + i) !=
                       RUSH_REASON_NONE;
        else if (view->kind == RUSH_WIRE_SKU_PUT)
            invalid +=
                rush_wire_sku_reason((const struct rush_sku *)records + i) != RUSH_REASON_NONE;
    }
    return invalid;
}

static int reencode(const struct rush_wire_view *view, const void *records)
{
    void *out = encoded_words;
    size_t cap = sizeof(encoded_words);
    switch ((enum rush_wire_kind)view->kind) {
    case RUSH_WIRE_REQUEST:
        return rush_wire_encode_requests(out, cap, view->message_id, records, view->count);
    case RUSH_WIRE_RESULT:
        return rush_wire_encode_results(out, cap, view->message_id, records, view->count);
    case RUSH_WIRE_SKU_PUT:
        return rush_wire_encode_skus(out, cap, view->message_id, records, view->count);
    case RUSH_WIRE_ERROR:
        return rush_wire_encode_error(out, cap, view->message_id, &view->error);
    case RUSH_WIRE_KIND_NONE:
    case RUSH_WIRE_KIND_COUNT_:
        break;
    }
    RUSH_ASSERT(!"a decoded view has a known kind");
    return -1;
}

static void check_accepted(const uint8_t *data, size_t size, const struct rush_wire_view *view,
                           const struct rush_wire_error *error)
{
    RUSH_ASSERT(view->count > 0);
    RUSH_ASSERT(rush_wire_message_bytes(view->kind, view->count) == size);
    RUSH_ASSERT(view->invalid_count <= view->count);
    if (view->invalid_count > 0) {
        RUSH_ASSERT(error->code == RUSH_WIRE_E_FIELD);
        RUSH_ASSERT(error->record_index == view->invalid_first_index);
    } else {
        RUSH_ASSERT(error->code == RUSH_WIRE_OK);
        RUSH_ASSERT(view->invalid_first_index == RUSH_WIRE_NO_RECORD);
    }
    if (view->kind != RUSH_WIRE_ERROR) {
        int copied = rush_wire_view_copy(view, records_words, sizeof(records_words));
        RUSH_ASSERT(copied >= 0 && (size_t)copied == size - RUSH_WIRE_HEADER_BYTES);
        RUSH_ASSERT(count_invalid(view, records_words) == view->invalid_count);
    }
    int bytes = reencode(view, records_words);
    RUSH_ASSERT(bytes >= 0 && (size_t)bytes == size);
    RUSH_ASSERT(memcmp(encoded_words, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > RUSH_WIRE_MESSAGE_BYTES_MAX + 1)
        return -1;
    struct rush_wire_view view;
    struct rush_wire_error error;
    int rc = rush_wire_decode(data, size, &view, &error);
    RUSH_ASSERT(rc == 0 || rc == RUSH_EPROTO);

    /* The same bytes at an address one past an 8-byte boundary: the same answer. */
    uint8_t *shifted = (uint8_t *)shifted_words + 1;
    memcpy(shifted, data, size);
    struct rush_wire_view shifted_view;
    struct rush_wire_error shifted_error;
    RUSH_VERIFY(rush_wire_decode(shifted, size, &shifted_view, &shifted_error) == rc);
    RUSH_ASSERT(memcmp(&shifted_error, &error, sizeof(error)) == 0);
    RUSH_ASSERT(shifted_view.message_id == view.message_id);
    RUSH_ASSERT(rc < 0 || !shifted_view.aligned);

    if (rc < 0)
        check_refusal(&view, &error);
    else
        check_accepted(data, size, &view, &error);
    return 0;
}
