/*
 * rush/stream.h — the confirmed-order stream: what rushd publishes downstream, and how a
 * consumer asks for what it missed (proto/PROTOCOL.md, "The stream").
 *
 * What it is. Every decision that order, payment and logistics services must act on becomes a
 * stream event once its log batch is durable: an order confirmed (a paid flash-sale order, or a
 * member of a completed group), released (cancelled, or its group failed), expired (its pay TTL
 * ran out), a refund due, a group completed or failed. Each carries its shard and a sequence
 * number: 1, 2, 3, ... per shard, without gaps, never renumbered and never reused. The numbers
 * come from the write-ahead log itself (each log batch header records how many stream events came
 * before it), so a restart, a crash or a snapshot cannot change them.
 *
 * Two endpoints carry it:
 *   - PUB (live): EVENTS messages, each a run of consecutive events of one shard, and a
 *     heartbeat per shard (an EVENTS message with no events) every RUSH_STREAM_HEARTBEAT_MS when
 *     the shard is quiet, so that a consumer sees a lost tail. PUB drops messages for a slow
 *     subscriber without telling anyone: gaps are normal and are filled through replay.
 *   - REP (replay): a REPLAY request names a shard and a first seq and gets up to
 *     RUSH_STREAM_REPLAY_MAX consecutive events from there, served from the publisher's memory or
 *     read back from the log; an INFO request gets the shard count and each shard's oldest and
 *     newest seq. A range older than the log still holds answers RUSH_STREAM_TOO_OLD with the
 *     oldest seq that is still served.
 *
 * Message layout (little-endian): a 32-byte header, then `count` records — 64-byte struct
 * rush_stream_event for EVENTS and REPLAY replies, 16-byte struct rush_stream_shard_info for INFO
 * replies. A request is one 32-byte struct rush_stream_request.
 *
 * Alignment: decoders accept a message at any address and copy records out (nanomsg's REP/REQ
 * bodies are not 8-byte aligned).
 *
 * Threads: stateless and reentrant.
 */
#ifndef RUSH_STREAM_H
#define RUSH_STREAM_H

#include "rush/types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RUSH_STREAM_MAGIC UINT32_C(0x52545352) /* "RSTR" read as a little-endian u32 */
#define RUSH_STREAM_VERSION 1
#define RUSH_STREAM_HEADER_BYTES 32
#define RUSH_STREAM_EVENTS_MAX 4096 /* events in one PUB message */
/*
 * Events in one replay reply: as many as fit, header included, in nanomsg's default receive limit
 * (NN_RCVMAXSIZE, 1 MiB), so that a plain client that never raises it (nanocat, a REQ socket
 * with default options) receives the biggest reply: 32 + 16,383 x 64 = 1,048,544 bytes.
 */
#define RUSH_STREAM_REPLAY_MAX 16383
#define RUSH_STREAM_HEARTBEAT_MS 100
#define RUSH_STREAM_MESSAGE_BYTES_MAX (RUSH_STREAM_HEADER_BYTES + RUSH_STREAM_REPLAY_MAX * 64)
#define RUSH_STREAM_NN_RECEIVE_BYTES_DEFAULT (1024 * 1024) /* nanomsg's NN_RCVMAXSIZE default */
static_assert(RUSH_STREAM_MESSAGE_BYTES_MAX + 4 <=
                  RUSH_STREAM_NN_RECEIVE_BYTES_DEFAULT, /* + REP id */
              "a replay reply fits a plain nanomsg client's receive limit");

/* Message kinds. Append, never renumber. */
enum rush_stream_kind {
    RUSH_STREAM_EVENTS = 1, /* PUB: a run of one shard's events (0 events: a heartbeat) */
    RUSH_STREAM_REPLAY = 2, /* request: replay a range; reply: the events */
    RUSH_STREAM_INFO = 3,   /* request: the shards; reply: RUSH_STREAM_INFO records */
    RUSH_STREAM_KIND_COUNT_ = 4,
};

/* Replay reply status. Append, never renumber. */
enum rush_stream_status {
    RUSH_STREAM_OK = 0,
    RUSH_STREAM_TOO_OLD = 1,     /* from_seq is older than oldest_seq: that range is gone */
    RUSH_STREAM_NO_SHARD = 2,    /* the shard does not exist */
    RUSH_STREAM_BAD_REQUEST = 3, /* the request did not decode */
    RUSH_STREAM_UNAVAILABLE = 4, /* the log could not be read (see rushd's log) */
    RUSH_STREAM_STATUS_COUNT_ = 5,
};

/*
 * One event. `type` is one of the rush_event_type values the stream carries (see
 * rush_stream_carries). For order events: order, sku, user, qty, and the unit price the order was
 * reserved at (a seat: joined at), whatever the SKU's price is now; group_id is set for a seat of
 * a group-buy. For group events: group, sku, and qty = virtual seats used (completed).
 * An admin action (adjust, pause, resume, sku_put, snapshot: rush_audit_action_name(op)) is one
 * admin_audit (op, sku, price_fen = the
 * amount of an adjust, 0 otherwise) followed, at the next seqs, by RUSH_AUDIT_PARTS
 * admin_audit_part events whose text holds, in order of qty (the part's index), the bytes of a
 * struct rush_audit: who did it and why.
 */
struct rush_stream_event {
    uint64_t seq;    /* per shard: 1, 2, 3, ... */
    int64_t time_ns; /* engine clock of the decision (its log batch) */
    union {
        struct {
            uint64_t order_id; /* 0 for group events */
            uint64_t group_id; /* 0 for a flash-sale order */
            uint64_t sku_id;
            uint64_t user_id;  /* 0 for group events */
            int64_t price_fen; /* unit price; 0 for group events */
        };
        char text[RUSH_AUDIT_PART_BYTES]; /* admin_audit_part: bytes of a struct rush_audit */
    };
    uint32_t qty;
    uint8_t type;  /* enum rush_event_type */
    uint8_t shard; /* the shard that decided it */
    uint8_t op;  /* the deciding request's op; 0 when a deadline decided (expiry, group deadline) */
    uint8_t pad; /* zero */
};
static_assert(sizeof(struct rush_stream_event) == 64, "stream event is 64 bytes");

struct rush_stream_header {
    uint32_t magic;
    uint8_t version;
    uint8_t kind;   /* enum rush_stream_kind */
    uint8_t status; /* enum rush_stream_status (replies); 0 on PUB */
    uint8_t shard;  /* EVENTS, REPLAY: the shard; INFO: 0 */
    uint32_t count; /* records that follow */
    uint32_t shard_count;
    uint64_t oldest_seq; /* REPLAY: the oldest seq still served (0: none yet) */
    uint64_t head_seq;   /* EVENTS, REPLAY: the shard's newest published seq (0: none yet) */
};
static_assert(sizeof(struct rush_stream_header) == RUSH_STREAM_HEADER_BYTES, "header is 32 bytes");

struct rush_stream_request {
    uint32_t magic;
    uint8_t version;
    uint8_t kind;       /* RUSH_STREAM_REPLAY or RUSH_STREAM_INFO */
    uint8_t shard;      /* REPLAY */
    uint8_t pad;        /* zero */
    uint32_t count_max; /* REPLAY: 1 .. RUSH_STREAM_REPLAY_MAX */
    uint32_t pad2;      /* zero */
    uint64_t from_seq;  /* REPLAY: >= 1 */
    uint64_t reserved;  /* zero */
};
static_assert(sizeof(struct rush_stream_request) == 32, "request is 32 bytes");

struct rush_stream_shard_info {
    uint64_t oldest_seq; /* 0: nothing published yet */
    uint64_t head_seq;
};
static_assert(sizeof(struct rush_stream_shard_info) == 16, "shard info is 16 bytes");

/* True for the log event types the stream carries. */
bool rush_stream_carries(uint8_t event_type);
/* The number of events in events[0..count) that the stream carries. */
uint32_t rush_stream_count(const struct rush_event *events, uint32_t count);
/* The stream form of a log event the stream carries. */
void rush_stream_event_from_log(struct rush_stream_event *out, uint32_t shard, uint64_t seq,
                                int64_t time_ns, const struct rush_event *event);

/*
 * A log batch read as stream events: the carried events of events[0..count), the first one
 * numbered seq_before + 1, each stamped with the batch's time. seq_before is what the WAL header
 * records (engine/wal/wal_record.h), or, for the replicated log, the carried events of every
 * earlier batch counted from lsn 1: one numbering rule for rushd's publisher, its replay and
 * rush-relay's log source, so that each gives the same seqs for the same log.
 */
struct rush_stream_batch {
    const struct rush_event *events; /* aligned */
    uint32_t count;
    uint32_t index; /* the next event to look at */
    uint32_t shard;
    int64_t time_ns;
    uint64_t seq; /* the last carried event's seq looked at (seq_before at the start) */
};

void rush_stream_batch_begin(struct rush_stream_batch *batch, uint32_t shard, uint64_t seq_before,
                             int64_t time_ns, const struct rush_event *events, uint32_t count);
/*
 * Writes the next stream events with seq >= from_seq (those below are passed over) into
 * out[0 .. out_max) and returns how many; fewer than out_max only when the batch is done.
 */
uint32_t rush_stream_batch_take(struct rush_stream_batch *batch, uint64_t from_seq,
                                struct rush_stream_event *out, uint32_t out_max);
static inline bool rush_stream_batch_done(const struct rush_stream_batch *batch)
{
    return batch->index == batch->count;
}

/* A decoded message: the header and where the records are in the caller's bytes. */
struct rush_stream_view {
    struct rush_stream_header header;
    const uint8_t *records; /* count records; possibly unaligned: use the copy functions */
};

/*
 * Decodes a message (a PUB message or a reply): magic, version, kind, status, sizes; for event
 * runs also that the events belong to the header's shard, carry a stream type and have
 * consecutive seqs ending at or before head_seq. Reads only buf[0..len). 0, or RUSH_EPROTO with
 * the reason in why (may be NULL).
 */
RUSH_MUST_USE int rush_stream_decode(const void *buf, size_t len, struct rush_stream_view *out,
                                     char *why, size_t why_size);
void rush_stream_view_event(const struct rush_stream_view *view, uint32_t i,
                            struct rush_stream_event *out);
void rush_stream_view_info(const struct rush_stream_view *view, uint32_t i,
                           struct rush_stream_shard_info *out);

/* Decodes a request; 0 or RUSH_EPROTO with why. */
RUSH_MUST_USE int rush_stream_request_decode(const void *buf, size_t len,
                                             struct rush_stream_request *out, char *why,
                                             size_t why_size);
/* A REPLAY or INFO request. */
void rush_stream_request_init(struct rush_stream_request *out, enum rush_stream_kind kind,
                              uint32_t shard, uint64_t from_seq, uint32_t count_max);
void rush_stream_header_init(struct rush_stream_header *out, enum rush_stream_kind kind,
                             uint32_t shard, uint32_t count);

const char *rush_stream_status_name(enum rush_stream_status status);

#ifdef __cplusplus
}
#endif
#endif
