/*
 * wire.c — encoder and bounds-checked, zero-copy decoder of the binary wire protocol.
 *
 * Why. Gateways send batches of fixed-size records; rushd must check a message from an untrusted
 * peer and hand its records to the engine without re-encoding them. Every byte layout is in
 * proto/PROTOCOL.md; this file is its executable form.
 *
 * Workload. One decode per received message on rushd's network thread, up to
 * RUSH_WIRE_MESSAGE_BYTES_MAX bytes: the header is checked first, so a record loop runs only
 * once count * record size is known to equal the bytes received (at most RUSH_WIRE_RESULTS_MAX
 * iterations). No allocation; records are read through memcpy so any alignment is safe.
 *
 * Invariants.
 *  1. Nothing is read before its offset is known to be below len: the header only when
 *     len >= RUSH_WIRE_HEADER_BYTES, records only when 32 + count * record size == len.
 *  2. The decoder's checks are a superset of the encoders': whatever decodes re-encodes to the
 *     same bytes, and whatever an encoder writes decodes.
 *  3. Every refusal fills a struct rush_wire_error whose text names the problem.
 *
 * Threads. Stateless; any thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/why.h"
#include "rush/assert.h"
#include "rush/wire.h"
#include "sku.h"

/* Records travel as they lie in memory: this build must be little-endian. */
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format is little-endian");

/* The header as it lies on the wire. Read and written with memcpy only. */
struct wire_header {
    uint32_t magic;
    uint16_t version;
    uint16_t kind;
    uint32_t count;
    uint32_t body_bytes;
    uint64_t message_id;
    uint32_t flags;    /* none defined in version 1: zero */
    uint32_t reserved; /* zero */
};
static_assert(sizeof(struct wire_header) == RUSH_WIRE_HEADER_BYTES, "header is 32 bytes");
static_assert(offsetof(struct wire_header, message_id) == 16, "message id at offset 16");
static_assert(RUSH_WIRE_REQUESTS_MAX == 16383, "documented in PROTOCOL.md");
static_assert(RUSH_WIRE_RESULTS_MAX >= RUSH_WIRE_REQUESTS_MAX, "every batch can be answered");
static_assert(RUSH_WIRE_MESSAGE_BYTES_MAX <= INT32_MAX, "sizes fit the int returns");

struct kind_shape {
    uint32_t record_bytes;
    uint32_t count_max;
};

/* Indexed by enum rush_wire_kind; NONE has no shape. */
static const struct kind_shape kind_shapes[RUSH_WIRE_KIND_COUNT_] = {
    [RUSH_WIRE_KIND_NONE] = {0, 0},
    [RUSH_WIRE_REQUEST] = {sizeof(struct rush_request), RUSH_WIRE_REQUESTS_MAX},
    [RUSH_WIRE_RESULT] = {sizeof(struct rush_result), RUSH_WIRE_RESULTS_MAX},
    [RUSH_WIRE_ERROR] = {sizeof(struct rush_wire_error), 1},
    [RUSH_WIRE_SKU_PUT] = {sizeof(struct rush_sku), RUSH_WIRE_SKUS_MAX},
};

static const char *const kind_names[RUSH_WIRE_KIND_COUNT_] = {
    [RUSH_WIRE_KIND_NONE] = "none", [RUSH_WIRE_REQUEST] = "request", [RUSH_WIRE_RESULT] = "result",
    [RUSH_WIRE_ERROR] = "error",    [RUSH_WIRE_SKU_PUT] = "sku_put",
};

static const char *const code_names[RUSH_WIRE_CODE_COUNT_] = {
    [RUSH_WIRE_OK] = "ok",
    [RUSH_WIRE_E_SHORT] = "short",
    [RUSH_WIRE_E_OVERSIZE] = "oversize",
    [RUSH_WIRE_E_MAGIC] = "magic",
    [RUSH_WIRE_E_VERSION] = "version",
    [RUSH_WIRE_E_KIND] = "kind",
    [RUSH_WIRE_E_HEADER] = "header",
    [RUSH_WIRE_E_COUNT] = "count",
    [RUSH_WIRE_E_LENGTH] = "length",
    [RUSH_WIRE_E_RECORD] = "record",
    [RUSH_WIRE_E_FIELD] = "field",
    [RUSH_WIRE_E_REFUSED] = "refused",
    [RUSH_WIRE_E_SERVER] = "server",
};

const char *rush_wire_kind_name(enum rush_wire_kind kind)
{
    return (unsigned)kind < RUSH_WIRE_KIND_COUNT_ ? kind_names[kind] : "unknown";
}

const char *rush_wire_code_name(enum rush_wire_code code)
{
    return (unsigned)code < RUSH_WIRE_CODE_COUNT_ ? code_names[code] : "unknown";
}

static bool text_is_printable(char c)
{
    return c >= 0x20 && c <= 0x7e;
}

void rush_wire_error_set(struct rush_wire_error *error, enum rush_wire_code code,
                         uint32_t record_index, const char *format, ...)
{
    RUSH_ASSERT(error != NULL);
    RUSH_ASSERT(format != NULL);
    memset(error, 0, sizeof(*error));
    error->code = code;
    error->record_index = record_index;
    va_list args;
    va_start(args, format);
    int written = vsnprintf(error->text, sizeof(error->text), format, args);
    va_end(args);
    if (written < 0)
        error->text[0] = '\0';
    /* Bounded by the text size; the last byte stays NUL. */
    for (size_t i = 0; i < sizeof(error->text) - 1 && error->text[i] != '\0'; i++)
        if (!text_is_printable(error->text[i]))
            error->text[i] = '?';
    RUSH_ASSERT(error->text[sizeof(error->text) - 1] == '\0');
}

size_t rush_wire_message_bytes(enum rush_wire_kind kind, uint32_t count)
{
    if (kind <= RUSH_WIRE_KIND_NONE || kind >= RUSH_WIRE_KIND_COUNT_)
        return 0;
    const struct kind_shape *shape = &kind_shapes[kind];
    if (count == 0 || count > shape->count_max)
        return 0;
    size_t bytes = RUSH_WIRE_HEADER_BYTES + (size_t)count * shape->record_bytes;
    RUSH_ASSERT(bytes <= RUSH_WIRE_MESSAGE_BYTES_MAX);
    return bytes;
}

/* ---- record checks, shared by the decoder and the encoders ---- */

enum request_field {
    USES_SKU = 1,
    USES_USER = 2,
    USES_TARGET = 4,
    USES_AMOUNT = 8,
    USES_KEY = 16,
};

/* The fields besides qty and tag that `op` reads (PROTOCOL.md section 4); no default, so a new
 * op does not compile until it says which. */
static unsigned request_fields_used(enum rush_op op)
{
    switch (op) {
    case RUSH_OP_RESERVE:
    case RUSH_OP_GROUP_OPEN:
        return USES_SKU | USES_USER | USES_KEY;
    case RUSH_OP_GROUP_JOIN_ANY: /* amount: the inviter, or 0 */
        return USES_SKU | USES_USER | USES_AMOUNT | USES_KEY;
    case RUSH_OP_CONFIRM:
    case RUSH_OP_CANCEL:
        return USES_TARGET | USES_KEY;
    case RUSH_OP_GROUP_JOIN: /* amount: the inviter, or 0 */
        return USES_TARGET | USES_USER | USES_AMOUNT | USES_KEY;
    case RUSH_OP_QUERY_ORDER:
    case RUSH_OP_QUERY_GROUP:
        return USES_TARGET;
    case RUSH_OP_QUERY_SKU:
    case RUSH_OP_LIST_GROUPS: /* qty: the rank asked for */
        return USES_SKU;
    case RUSH_OP_ADJUST:
        return USES_SKU | USES_AMOUNT | USES_KEY;
    case RUSH_OP_PAUSE:
    case RUSH_OP_RESUME:
        return USES_SKU | USES_KEY;
    case RUSH_OP_REGISTER:
        return USES_SKU | USES_USER | USES_KEY;
    case RUSH_OP_NONE:
    case RUSH_OP_COUNT_:
        break;
    }
    RUSH_ASSERT(!"op out of range");
    return 0;
}

/* The ops a gateway may mark RUSH_REQUEST_NEW_USER: those that take a unit. */
static bool takes_new_user(enum rush_op op)
{
    return op == RUSH_OP_RESERVE || op == RUSH_OP_GROUP_OPEN || op == RUSH_OP_GROUP_JOIN ||
           op == RUSH_OP_GROUP_JOIN_ANY;
}

/* Fields an op does not use must be zero, and an op that names a user names one (the JSON
 * decoder refuses user 0 too). A zero key on a mutating op is the engine's KEY_MISSING. */
static bool request_fields_ok(const struct rush_request *request)
{
    unsigned used = request_fields_used((enum rush_op)request->op);
    rush_key zero_key = {0};
    if ((used & USES_USER) != 0 && request->user_id == 0)
        return false;
    return ((used & USES_SKU) != 0 || request->sku_id == 0) &&
           ((used & USES_USER) != 0 || request->user_id == 0) &&
           ((used & USES_TARGET) != 0 || request->target_id == 0) &&
           ((used & USES_AMOUNT) != 0 || request->amount == 0) &&
           ((used & USES_KEY) != 0 || memcmp(&request->key, &zero_key, sizeof zero_key) == 0) &&
           (request->flags == 0 || takes_new_user((enum rush_op)request->op));
}

enum rush_reason rush_wire_request_reason(const struct rush_request *request)
{
    RUSH_ASSERT(request != NULL);
    if (request->op == RUSH_OP_NONE || request->op >= RUSH_OP_COUNT_)
        return RUSH_REASON_OP;
    if (request->op == RUSH_OP_RESERVE) {
        if (request->qty == 0 || request->qty > RUSH_WIRE_QTY_MAX)
            return RUSH_REASON_QTY;
    } else if (request->op == RUSH_OP_LIST_GROUPS) {
        if (request->qty >= RUSH_LIST_GROUPS_MAX) /* qty is the rank asked for */
            return RUSH_REASON_QTY;
    } else if (request->qty != 0) {
        return RUSH_REASON_QTY;
    }
    if (!request_fields_ok(request))
        return RUSH_REASON_FIELD;
    return RUSH_REASON_NONE;
}

/*
 * A whole definition (fields 0, or every required field named) must pass the one validator,
 * rush_sku_check, as in the campaign file and the JSON sku_put; `why` gets its reason. A partial
 * put is checked field by field for what the wire can see (flags and enums), and the engine
 * checks the definition it merges into.
 */
static enum rush_reason sku_reason(const struct rush_sku *sku, char *why, size_t why_size)
{
    if (rush_sku_fields_missing(sku) == 0)
        return rush_sku_check(sku, why, why_size) < 0 ? RUSH_REASON_SKU_DEF : RUSH_REASON_NONE;
    if (sku->unlimited > 1 || sku->paused > 1) {
        rush__refuse(0, why, why_size, "unlimited and paused must be 0 or 1");
        return RUSH_REASON_SKU_DEF;
    }
    if (sku->virtual_policy > RUSH_VIRTUAL_AT_MOST) {
        rush__refuse(0, why, why_size, "virtual_policy must be none, fill or at_most");
        return RUSH_REASON_SKU_DEF;
    }
    if (sku->solo_allowed > 1 || (sku->prices & ~(RUSH_SKU_GROUP_PRICE | RUSH_SKU_LEADER_PRICE))) {
        rush__refuse(0, why, why_size, "solo_allowed must be 0 or 1, prices bits 0x01 and 0x02");
        return RUSH_REASON_SKU_DEF;
    }
    if ((sku->rules & ~RUSH_SKU_RULES_ALL) != 0) {
        rush__refuse(0, why, why_size, "rules bits are 0x01, 0x02 and 0x04");
        return RUSH_REASON_SKU_DEF;
    }
    return RUSH_REASON_NONE;
}

enum rush_reason rush_wire_sku_reason(const struct rush_sku *sku)
{
    RUSH_ASSERT(sku != NULL);
    return sku_reason(sku, NULL, 0);
}

static bool request_is_well_formed(const struct rush_request *request)
{
    return (request->flags & ~RUSH_REQUEST_FLAGS_ALL) == 0 && request->pad == 0;
}

static bool result_is_well_formed(const struct rush_result *result)
{
    return result->outcome < RUSH_OUTCOME_COUNT_ && result->reason < RUSH_REASON_COUNT_;
}

static bool sku_is_well_formed(const struct rush_sku *sku)
{
    return rush_sku_pad_is_zero(sku) && (sku->fields & ~RUSH_SKU_FIELDS_ALL) == 0;
}

/* Printable ASCII, then at least one NUL, then only NULs. */
static bool error_text_is_well_formed(const char *text)
{
    size_t i = 0;
    while (i < RUSH_WIRE_ERROR_TEXT_BYTES && text[i] != '\0') {
        if (!text_is_printable(text[i]))
            return false;
        i++;
    }
    if (i == RUSH_WIRE_ERROR_TEXT_BYTES)
        return false;
    for (; i < RUSH_WIRE_ERROR_TEXT_BYTES; i++)
        if (text[i] != '\0')
            return false;
    return true;
}

static bool error_is_well_formed(const struct rush_wire_error *error)
{
    return error->code > RUSH_WIRE_OK && error->code < RUSH_WIRE_CODE_COUNT_ &&
           error_text_is_well_formed(error->text);
}

/* ---- decoder ---- */

/* Checks the header and that the body holds exactly `count` records. */
static int decode_header(const uint8_t *bytes, size_t len, struct rush_wire_view *out,
                         struct rush_wire_error *error)
{
    struct wire_header header;
    if (len >= offsetof(struct wire_header, flags))
        memcpy(&out->message_id, bytes + offsetof(struct wire_header, message_id), 8);
    if (len < RUSH_WIRE_HEADER_BYTES) {
        rush_wire_error_set(error, RUSH_WIRE_E_SHORT, RUSH_WIRE_NO_RECORD,
                            "message is %zu bytes, shorter than the %d-byte header", len,
                            RUSH_WIRE_HEADER_BYTES);
        return RUSH_EPROTO;
    }
    if (len > RUSH_WIRE_MESSAGE_BYTES_MAX) {
        rush_wire_error_set(error, RUSH_WIRE_E_OVERSIZE, RUSH_WIRE_NO_RECORD,
                            "message is %zu bytes, over the limit of %d", len,
                            RUSH_WIRE_MESSAGE_BYTES_MAX);
        return RUSH_EPROTO;
    }
    memcpy(&header, bytes, sizeof(header));
    out->version = header.version;
    out->kind = header.kind;
    out->count = header.count;
    if (header.magic != RUSH_WIRE_MAGIC) {
        rush_wire_error_set(error, RUSH_WIRE_E_MAGIC, RUSH_WIRE_NO_RECORD, "bad magic 0x%08x",
                            header.magic);
        return RUSH_EPROTO;
    }
    if (header.version != RUSH_WIRE_VERSION) {
        rush_wire_error_set(error, RUSH_WIRE_E_VERSION, RUSH_WIRE_NO_RECORD,
                            "version %u not supported", header.version);
        return RUSH_EPROTO;
    }
    if (header.kind == RUSH_WIRE_KIND_NONE || header.kind >= RUSH_WIRE_KIND_COUNT_) {
        rush_wire_error_set(error, RUSH_WIRE_E_KIND, RUSH_WIRE_NO_RECORD, "unknown kind %u",
                            header.kind);
        return RUSH_EPROTO;
    }
    if (header.flags != 0) {
        rush_wire_error_set(error, RUSH_WIRE_E_HEADER, RUSH_WIRE_NO_RECORD,
                            "header flags 0x%08x not supported", header.flags);
        return RUSH_EPROTO;
    }
    if (header.reserved != 0) {
        rush_wire_error_set(error, RUSH_WIRE_E_HEADER, RUSH_WIRE_NO_RECORD,
                            "header reserved bytes not zero");
        return RUSH_EPROTO;
    }
    return 0;
}

/* Checks count against the kind's limits and the body length. The header is valid. */
static int decode_sizes(size_t len, struct rush_wire_view *out, uint32_t body_bytes,
                        struct rush_wire_error *error)
{
    const struct kind_shape *shape = &kind_shapes[out->kind];
    const char *name = kind_names[out->kind];
    if (out->count == 0) {
        rush_wire_error_set(error, RUSH_WIRE_E_COUNT, RUSH_WIRE_NO_RECORD,
                            "count 0: a %s message carries at least one record", name);
        return RUSH_EPROTO;
    }
    if (out->count > shape->count_max) {
        rush_wire_error_set(error, RUSH_WIRE_E_COUNT, RUSH_WIRE_NO_RECORD,
                            "count %u over the limit of %u for %s", out->count, shape->count_max,
                            name);
        return RUSH_EPROTO;
    }
    if (body_bytes != len - RUSH_WIRE_HEADER_BYTES) {
        rush_wire_error_set(error, RUSH_WIRE_E_LENGTH, RUSH_WIRE_NO_RECORD,
                            "header says body is %u bytes, %zu received", body_bytes,
                            len - RUSH_WIRE_HEADER_BYTES);
        return RUSH_EPROTO;
    }
    /* count <= count_max keeps the product below RUSH_WIRE_MESSAGE_BYTES_MAX. */
    uint32_t needed = out->count * shape->record_bytes;
    if (body_bytes != needed) {
        rush_wire_error_set(error, RUSH_WIRE_E_COUNT, RUSH_WIRE_NO_RECORD,
                            "body is %u bytes, count %u needs %u", body_bytes, out->count, needed);
        return RUSH_EPROTO;
    }
    out->record_bytes = shape->record_bytes;
    return 0;
}

static void note_invalid(struct rush_wire_view *out, uint32_t index)
{
    if (out->invalid_count == 0)
        out->invalid_first_index = index;
    out->invalid_count++;
}

static void describe_request_field(const struct rush_request *request, uint32_t index,
                                   enum rush_reason reason, struct rush_wire_error *error)
{
    if (reason == RUSH_REASON_OP)
        rush_wire_error_set(error, RUSH_WIRE_E_FIELD, index, "record %u: unknown op %u", index,
                            request->op);
    else if (reason == RUSH_REASON_FIELD)
        rush_wire_error_set(error, RUSH_WIRE_E_FIELD, index,
                            "record %u: %s with a field it does not use not zero, or user 0", index,
                            rush_op_name(request->op));
    else if (request->op == RUSH_OP_RESERVE || request->op == RUSH_OP_LIST_GROUPS)
        rush_wire_error_set(error, RUSH_WIRE_E_FIELD, index, "record %u: qty %u out of range",
                            index, request->qty);
    else
        rush_wire_error_set(error, RUSH_WIRE_E_FIELD, index, "record %u: qty %u for %s, must be 0",
                            index, request->qty, rush_op_name(request->op));
}

static int decode_requests(const uint8_t *records, struct rush_wire_view *out,
                           struct rush_wire_error *error)
{
    for (uint32_t i = 0; i < out->count; i++) {
        struct rush_request request;
        memcpy(&request, records + (size_t)i * sizeof(request), sizeof(request));
        if (!request_is_well_formed(&request)) {
            rush_wire_error_set(error, RUSH_WIRE_E_RECORD, i,
                                "record %u: reserved bytes not zero (flags 0x%02x, pad 0x%04x)", i,
                                request.flags, request.pad);
            return RUSH_EPROTO;
        }
        enum rush_reason reason = rush_wire_request_reason(&request);
        if (reason == RUSH_REASON_NONE)
            continue;
        if (out->invalid_count == 0)
            describe_request_field(&request, i, reason, error);
        note_invalid(out, i);
    }
    return 0;
}

static int decode_results(const uint8_t *records, struct rush_wire_view *out,
                          struct rush_wire_error *error)
{
    for (uint32_t i = 0; i < out->count; i++) {
        struct rush_result result;
        memcpy(&result, records + (size_t)i * sizeof(result), sizeof(result));
        if (result.outcome >= RUSH_OUTCOME_COUNT_) {
            rush_wire_error_set(error, RUSH_WIRE_E_RECORD, i, "record %u: unknown outcome %u", i,
                                result.outcome);
            return RUSH_EPROTO;
        }
        if (result.reason >= RUSH_REASON_COUNT_) {
            rush_wire_error_set(error, RUSH_WIRE_E_RECORD, i, "record %u: unknown reason %u", i,
                                result.reason);
            return RUSH_EPROTO;
        }
        RUSH_ASSERT(result_is_well_formed(&result));
    }
    return 0;
}

static void describe_sku_field(const struct rush_sku *sku, uint32_t index,
                               struct rush_wire_error *error)
{
    char why[RUSH_WIRE_ERROR_TEXT_BYTES];
    enum rush_reason reason = sku_reason(sku, why, sizeof(why));
    RUSH_ASSERT(reason != RUSH_REASON_NONE);
    rush_wire_error_set(error, RUSH_WIRE_E_FIELD, index, "record %u: %s", index, why);
}

static int decode_skus(const uint8_t *records, struct rush_wire_view *out,
                       struct rush_wire_error *error)
{
    for (uint32_t i = 0; i < out->count; i++) {
        struct rush_sku sku;
        memcpy(&sku, records + (size_t)i * sizeof(sku), sizeof(sku));
        if (!sku_is_well_formed(&sku)) {
            rush_wire_error_set(error, RUSH_WIRE_E_RECORD, i, "record %u: reserved bytes not zero",
                                i);
            return RUSH_EPROTO;
        }
        if (rush_wire_sku_reason(&sku) == RUSH_REASON_NONE)
            continue;
        if (out->invalid_count == 0)
            describe_sku_field(&sku, i, error);
        note_invalid(out, i);
    }
    return 0;
}

static int decode_error(const uint8_t *records, struct rush_wire_view *out,
                        struct rush_wire_error *error)
{
    memcpy(&out->error, records, sizeof(out->error));
    if (out->error.code == RUSH_WIRE_OK || out->error.code >= RUSH_WIRE_CODE_COUNT_) {
        rush_wire_error_set(error, RUSH_WIRE_E_RECORD, 0, "record 0: unknown error code %u",
                            out->error.code);
        return RUSH_EPROTO;
    }
    if (!error_text_is_well_formed(out->error.text)) {
        rush_wire_error_set(error, RUSH_WIRE_E_RECORD, 0,
                            "record 0: error text is not NUL-padded printable ASCII");
        return RUSH_EPROTO;
    }
    RUSH_ASSERT(error_is_well_formed(&out->error));
    return 0;
}

static int decode_records(const uint8_t *records, struct rush_wire_view *out,
                          struct rush_wire_error *error)
{
    switch ((enum rush_wire_kind)out->kind) {
    case RUSH_WIRE_REQUEST:
        return decode_requests(records, out, error);
    case RUSH_WIRE_RESULT:
        return decode_results(records, out, error);
    case RUSH_WIRE_ERROR:
        return decode_error(records, out, error);
    case RUSH_WIRE_SKU_PUT:
        return decode_skus(records, out, error);
    case RUSH_WIRE_KIND_NONE:
    case RUSH_WIRE_KIND_COUNT_:
        break;
    }
    RUSH_ASSERT(!"decode_header refuses unknown kinds");
    return RUSH_EPROTO;
}

static void set_typed_pointers(const uint8_t *records, struct rush_wire_view *out)
{
    out->records = records;
    out->aligned = ((uintptr_t)records % 8) == 0;
    if (!out->aligned)
        return;
    if (out->kind == RUSH_WIRE_REQUEST)
        out->requests = (const struct rush_request *)(const void *)records;
    else if (out->kind == RUSH_WIRE_RESULT)
        out->results = (const struct rush_result *)(const void *)records;
    else if (out->kind == RUSH_WIRE_SKU_PUT)
        out->skus = (const struct rush_sku *)(const void *)records;
}

int rush_wire_decode(const void *buf, size_t len, struct rush_wire_view *out,
                     struct rush_wire_error *error)
{
    RUSH_ASSERT(out != NULL);
    RUSH_ASSERT(error != NULL);
    RUSH_ASSERT(buf != NULL || len == 0);
    const uint8_t *bytes = buf;
    memset(out, 0, sizeof(*out));
    out->invalid_first_index = RUSH_WIRE_NO_RECORD;
    /* No refusal yet (not through rush_wire_error_set: a format per message costs more than the
     * rest of decoding a one-order one). */
    *error = (struct rush_wire_error){.code = RUSH_WIRE_OK, .record_index = RUSH_WIRE_NO_RECORD};

    int rc = decode_header(bytes, len, out, error);
    if (rc < 0)
        return rc;
    uint32_t body_bytes;
    memcpy(&body_bytes, bytes + offsetof(struct wire_header, body_bytes), sizeof(body_bytes));
    rc = decode_sizes(len, out, body_bytes, error);
    if (rc < 0)
        return rc;
    const uint8_t *records = bytes + RUSH_WIRE_HEADER_BYTES;
    rc = decode_records(records, out, error);
    if (rc < 0)
        return rc;
    set_typed_pointers(records, out);
    RUSH_ASSERT((size_t)out->count * out->record_bytes + RUSH_WIRE_HEADER_BYTES == len);
    RUSH_ASSERT(out->invalid_count <= out->count);
    return 0;
}

int rush_wire_view_copy(const struct rush_wire_view *view, void *dst, size_t dst_bytes)
{
    RUSH_ASSERT(view != NULL);
    if (view->kind == RUSH_WIRE_ERROR || view->records == NULL)
        return -EINVAL;
    size_t bytes = (size_t)view->count * view->record_bytes;
    RUSH_ASSERT(bytes <= RUSH_WIRE_BODY_BYTES_MAX);
    if (bytes > dst_bytes)
        return -ENOSPC;
    RUSH_ASSERT(dst != NULL);
    memcpy(dst, view->records, bytes);
    return (int)bytes;
}

/* ---- encoders ---- */

/* Checked before any record is read, so a count over the limit reads nothing. */
static int count_check(enum rush_wire_kind kind, uint32_t count, const void *records)
{
    if (count == 0 || records == NULL)
        return -EINVAL;
    if (count > kind_shapes[kind].count_max)
        return -EMSGSIZE;
    return 0;
}

static int encode_frame(void *buf, size_t cap, uint64_t message_id, enum rush_wire_kind kind,
                        const void *records, uint32_t count)
{
    RUSH_ASSERT(count_check(kind, count, records) == 0);
    size_t bytes = rush_wire_message_bytes(kind, count);
    RUSH_ASSERT(bytes > RUSH_WIRE_HEADER_BYTES);
    if (buf == NULL || cap < bytes)
        return -ENOSPC;
    struct wire_header header = {
        .magic = RUSH_WIRE_MAGIC,
        .version = RUSH_WIRE_VERSION,
        .kind = (uint16_t)kind,
        .count = count,
        .body_bytes = (uint32_t)(bytes - RUSH_WIRE_HEADER_BYTES),
        .message_id = message_id,
    };
    memcpy(buf, &header, sizeof(header));
    memcpy((uint8_t *)buf + RUSH_WIRE_HEADER_BYTES, records, bytes - RUSH_WIRE_HEADER_BYTES);
    return (int)bytes;
}

int rush_wire_encode_requests(void *buf, size_t cap, uint64_t message_id,
                              const struct rush_request *requests, uint32_t count)
{
    int rc = count_check(RUSH_WIRE_REQUEST, count, requests);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < count; i++)
        if (!request_is_well_formed(&requests[i]))
            return -EINVAL;
    return encode_frame(buf, cap, message_id, RUSH_WIRE_REQUEST, requests, count);
}

int rush_wire_encode_results(void *buf, size_t cap, uint64_t message_id,
                             const struct rush_result *results, uint32_t count)
{
    int rc = count_check(RUSH_WIRE_RESULT, count, results);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < count; i++)
        if (!result_is_well_formed(&results[i]))
            return -EINVAL;
    return encode_frame(buf, cap, message_id, RUSH_WIRE_RESULT, results, count);
}

int rush_wire_encode_skus(void *buf, size_t cap, uint64_t message_id, const struct rush_sku *skus,
                          uint32_t count)
{
    int rc = count_check(RUSH_WIRE_SKU_PUT, count, skus);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < count; i++)
        if (!sku_is_well_formed(&skus[i]))
            return -EINVAL;
    return encode_frame(buf, cap, message_id, RUSH_WIRE_SKU_PUT, skus, count);
}

int rush_wire_encode_error(void *buf, size_t cap, uint64_t message_id,
                           const struct rush_wire_error *error)
{
    if (error == NULL)
        return -EINVAL;
    /* The text up to its NUL, NUL-padded: garbage after the NUL never reaches the wire. */
    struct rush_wire_error record = {.code = error->code, .record_index = error->record_index};
    size_t text_bytes = strnlen(error->text, sizeof(error->text));
    memcpy(record.text, error->text, text_bytes);
    if (!error_is_well_formed(&record))
        return -EINVAL;
    return encode_frame(buf, cap, message_id, RUSH_WIRE_ERROR, &record, 1);
}
