/*
 * rush/wire.h — the binary wire protocol between gateways and rushd (proto/PROTOCOL.md).
 *
 * What it is. A message is a fixed 32-byte little-endian header followed by `count` fixed-size
 * records. REQUEST carries struct rush_request records, RESULT struct rush_result records (one
 * per request, in request order), SKU_PUT struct rush_sku records, ERROR one struct
 * rush_wire_error. Records travel exactly as laid out in rush/types.h, so the server hands the
 * records of a REQUEST to the engine without re-encoding a field.
 *
 * Workload. Gateways batch: one message carries up to RUSH_WIRE_REQUESTS_MAX requests and is at
 * most RUSH_WIRE_MESSAGE_BYTES_MAX bytes. rushd decodes every message it receives on its
 * network thread, so decoding is one pass over the header and one over the records, with no
 * allocation; a hostile peer can make it do at most RUSH_WIRE_MESSAGE_BYTES_MAX / 56 record
 * checks per message.
 *
 * Invariants.
 *  1. rush_wire_decode() reads only buf[0 .. len) and never writes to it; the view it returns
 *     points into buf and is valid as long as buf is.
 *  2. A message that decodes re-encodes to the same bytes (the encoders write exactly what the
 *     decoder accepts; the fuzz target checks this).
 *  3. Structural problems (framing, header, reserved bytes, counts) refuse the whole message with
 *     a RUSH_EPROTO and a struct rush_wire_error naming the problem and, where there is one, the
 *     record. Field problems in a REQUEST or SKU_PUT record (unknown op, qty out of range, a SKU
 *     definition that is not even well-formed) do not refuse the message: they are counted in
 *     the view and answered per record with outcome RUSH_INVALID and a reason.
 *  4. Alignment: the decoder accepts a message at any address. nanomsg's NN_MSG bodies on
 *     REQ/REP sockets start 4 bytes past an 8-byte boundary (the 4-byte request id is trimmed
 *     off the front), so a view's typed record pointers are set only when the records are
 *     8-byte aligned; otherwise copy them out with rush_wire_view_copy(), or receive with
 *     nn_recvmsg() into an 8-byte aligned buffer of your own.
 *
 * Threads. Stateless and reentrant: any thread, no shared state.
 */
#ifndef RUSH_WIRE_H
#define RUSH_WIRE_H

#include "rush/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The first four bytes of every message are "RUSH"; read as a little-endian u32: */
#define RUSH_WIRE_MAGIC UINT32_C(0x48535552)
#define RUSH_WIRE_VERSION 1
#define RUSH_WIRE_HEADER_BYTES 32
/* Every message, header included, is at most this long. */
#define RUSH_WIRE_MESSAGE_BYTES_MAX (1024 * 1024)
#define RUSH_WIRE_BODY_BYTES_MAX (RUSH_WIRE_MESSAGE_BYTES_MAX - RUSH_WIRE_HEADER_BYTES)
/* Records per message, by kind; each is what fits in RUSH_WIRE_MESSAGE_BYTES_MAX. */
#define RUSH_WIRE_REQUESTS_MAX (RUSH_WIRE_BODY_BYTES_MAX / 64) /* 16383 */
#define RUSH_WIRE_RESULTS_MAX (RUSH_WIRE_BODY_BYTES_MAX / 56)  /* 18724 */
#define RUSH_WIRE_SKUS_MAX (RUSH_WIRE_BODY_BYTES_MAX / 224)    /* 4681 */
/* A reserve asks for 1 .. RUSH_WIRE_QTY_MAX units; every other op carries qty 0. */
#define RUSH_WIRE_QTY_MAX 1000000u
/* Error texts are at most this many bytes before their NUL. */
#define RUSH_WIRE_ERROR_TEXT_BYTES 120
#define RUSH_WIRE_NO_RECORD UINT32_MAX

/* Message kinds: the u16 at offset 6. Append, never renumber. */
enum rush_wire_kind {
    RUSH_WIRE_KIND_NONE = 0,
    RUSH_WIRE_REQUEST = 1, /* client -> server: count x struct rush_request */
    RUSH_WIRE_RESULT = 2,  /* server -> client: count x struct rush_result, in request order */
    RUSH_WIRE_ERROR = 3,   /* server -> client: 1 x struct rush_wire_error */
    RUSH_WIRE_SKU_PUT = 4, /* admin -> server: count x struct rush_sku; answered by RESULT */
    RUSH_WIRE_KIND_COUNT_ = 5,
};

/* What an ERROR names: the u32 `code` of struct rush_wire_error. Append, never renumber. */
enum rush_wire_code {
    RUSH_WIRE_OK = 0,         /* no error (never sent) */
    RUSH_WIRE_E_SHORT = 1,    /* shorter than the header */
    RUSH_WIRE_E_OVERSIZE = 2, /* longer than RUSH_WIRE_MESSAGE_BYTES_MAX */
    RUSH_WIRE_E_MAGIC = 3,    /* the first four bytes are not "RUSH" */
    RUSH_WIRE_E_VERSION = 4,  /* a version this peer does not speak */
    RUSH_WIRE_E_KIND = 5,     /* an unknown kind */
    RUSH_WIRE_E_HEADER = 6,   /* header flags or reserved bytes not zero */
    RUSH_WIRE_E_COUNT = 7,    /* count zero, over its limit, or not matching the body */
    RUSH_WIRE_E_LENGTH = 8,   /* body_bytes does not match the bytes received */
    RUSH_WIRE_E_RECORD = 9,   /* a record is malformed (reserved bytes, out-of-range enum) */
    RUSH_WIRE_E_FIELD = 10,   /* a record's field is out of range: answered per record */
    RUSH_WIRE_E_REFUSED = 11, /* a well-formed message this endpoint does not take */
    RUSH_WIRE_E_SERVER = 12,  /* the server could not answer (stopping, failed log) */
    RUSH_WIRE_CODE_COUNT_ = 13,
};

/*
 * A problem, as the decoder reports it and as an ERROR message carries it (the one record of an
 * ERROR is exactly this struct). `text` is printable ASCII, NUL-terminated and NUL-padded.
 */
struct rush_wire_error {
    uint32_t code;         /* enum rush_wire_code */
    uint32_t record_index; /* the record at fault, or RUSH_WIRE_NO_RECORD */
    char text[RUSH_WIRE_ERROR_TEXT_BYTES];
};
static_assert(sizeof(struct rush_wire_error) == 128, "error record is 128 bytes");

/*
 * A decoded message. Points into the decoded buffer.
 *
 * `records` is always set (count records of record_bytes each, at any alignment). The typed
 * pointer that matches `kind` (requests, results or skus) is set only when `aligned`; the
 * others are NULL. For ERROR, the record is copied into `error`.
 */
struct rush_wire_view {
    uint64_t message_id; /* the client's, echoed in the reply */
    uint16_t version;
    uint16_t kind; /* enum rush_wire_kind */
    uint32_t count;
    uint32_t record_bytes;
    bool aligned; /* records start on an 8-byte boundary */
    const void *records;
    const struct rush_request *requests;
    const struct rush_result *results;
    const struct rush_sku *skus;
    struct rush_wire_error error;
    /* REQUEST and SKU_PUT: records with a field problem, to be answered RUSH_INVALID. */
    uint32_t invalid_count;
    uint32_t invalid_first_index; /* RUSH_WIRE_NO_RECORD when invalid_count is 0 */
};

/*
 * Decodes and checks the message in buf[0 .. len). Returns 0 and fills `out`, or RUSH_EPROTO
 * and fills `error` (code, record index, text such as "bad magic 0x20544547" or
 * "record 3: reserved bytes not zero"). On success `error` names the first record with a field
 * problem (code RUSH_WIRE_E_FIELD, e.g. "record 5: unknown op 99") or is RUSH_WIRE_OK with an
 * empty text. Even on failure, out->message_id holds the header's id when len reaches it, so
 * the ERROR reply can echo it. Reads nothing outside buf[0 .. len).
 */
RUSH_MUST_USE int rush_wire_decode(const void *buf, size_t len, struct rush_wire_view *out,
                                   struct rush_wire_error *error);

/*
 * Copies a view's records into dst (dst_bytes long; any alignment, 8 for engine use).
 * Returns the number of bytes copied (count * record_bytes), -ENOSPC when dst is too small, or
 * -EINVAL for an ERROR view (it has no records to copy).
 */
RUSH_MUST_USE int rush_wire_view_copy(const struct rush_wire_view *view, void *dst,
                                      size_t dst_bytes);

/*
 * The field check the decoder applies to each REQUEST record: RUSH_REASON_OP for an op outside
 * 1 .. RUSH_OP_COUNT_ - 1, RUSH_REASON_QTY for a reserve whose qty is outside
 * 1 .. RUSH_WIRE_QTY_MAX or another op with a nonzero qty, RUSH_REASON_FIELD for a nonzero field
 * the op does not use (PROTOCOL.md section 4) or user_id 0 on an op that names a user, else
 * RUSH_REASON_NONE.
 */
enum rush_reason rush_wire_request_reason(const struct rush_request *request);
/* The same for SKU_PUT: RUSH_REASON_SKU_DEF when a whole definition (fields 0, or every required
 * field named) fails the one SKU validator (the campaign file's and JSON sku_put's rules), or when
 * a partial put has unlimited or paused not 0 or 1 or an unknown virtual_policy. The engine
 * checks the definition a partial put merges into. */
enum rush_reason rush_wire_sku_reason(const struct rush_sku *sku);

/*
 * Exact size of a message of `kind` with `count` records (ERROR: count must be 1), or 0 when
 * the kind is unknown or the count is 0 or over that kind's limit.
 */
size_t rush_wire_message_bytes(enum rush_wire_kind kind, uint32_t count);

/*
 * Encoders. Each writes a whole message into buf[0 .. cap) and returns the bytes written, or
 * -EINVAL (count 0, a record the decoder would refuse as malformed, an error text that is not
 * printable ASCII), -EMSGSIZE (count over the kind's limit) or -ENOSPC (cap too small). Nothing
 * is promised about buf's contents after an error.
 */
RUSH_MUST_USE int rush_wire_encode_requests(void *buf, size_t cap, uint64_t message_id,
                                            const struct rush_request *requests, uint32_t count);
RUSH_MUST_USE int rush_wire_encode_results(void *buf, size_t cap, uint64_t message_id,
                                           const struct rush_result *results, uint32_t count);
RUSH_MUST_USE int rush_wire_encode_skus(void *buf, size_t cap, uint64_t message_id,
                                        const struct rush_sku *skus, uint32_t count);
RUSH_MUST_USE int rush_wire_encode_error(void *buf, size_t cap, uint64_t message_id,
                                         const struct rush_wire_error *error);

/*
 * Fills an error: code, record index (RUSH_WIRE_NO_RECORD for none) and a printf-formatted
 * text, truncated to fit and with any non-printable byte replaced by '?'.
 */
void rush_wire_error_set(struct rush_wire_error *error, enum rush_wire_code code,
                         uint32_t record_index, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Routing (proto/codec/route.c): the shard, below shard_count (>= 1), that decides a request. A
 * SKU op: XXH3-64(sku id) * shard_count >> 64; an op on an order or group: the top byte of its id
 * (shard 0 when that is not below shard_count). rushd and librush's router use this one rule.
 */
uint32_t rush_wire_shard_of_sku(uint32_t shard_count, uint64_t sku_id);
uint32_t rush_wire_shard_of(uint32_t shard_count, const struct rush_request *request);

const char *rush_wire_kind_name(enum rush_wire_kind kind);
const char *rush_wire_code_name(enum rush_wire_code code);

#ifdef __cplusplus
}
#endif
#endif
