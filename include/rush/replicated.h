/*
 * replicated.h — the replicated log's message format (durability replicated, ARCHITECTURE.md
 * "Cluster"): what rushd's engine/cluster publishes on JetStream and what `rushctl cluster`
 * reads back.
 *
 * Stream <stream>, one subject per shard, <stream>.shard.<n>. Each message holds one or more of
 * the shard's WAL batches in lsn order, each as this 24-byte header (little-endian, as the host
 * writes it) followed by `count` 64-byte struct rush_event; each record's checksum covers its
 * events, and lsns increase within a message (proto/codec/replicated.c writes and reads them).
 * Message id (Nats-Msg-Id):
 * "<node>.<shard>.<first lsn>.<last lsn>". The lease bucket <stream>_leases holds shard.<n> =
 * the leading node's name ("-": released, "->NAME": offered to NAME) and node.<name> = that
 * node's applied lsn per shard, comma-separated.
 */
#ifndef RUSH_REPLICATED_H
#define RUSH_REPLICATED_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "rush/assert.h"
#include "rush/types.h"

struct rush_replicated_record {
    uint64_t lsn;
    int64_t time_ns;
    uint32_t count;    /* events after this header, 1 .. RUSH_REPLICATED_EVENTS_MAX */
    uint32_t checksum; /* XXH32 of the events' bytes, seeded with the low 32 bits of lsn */
};
static_assert(sizeof(struct rush_replicated_record) == 24, "replicated record header is 24 bytes");

#define RUSH_REPLICATED_EVENT_BYTES 64 /* sizeof(struct rush_event) */
static_assert(sizeof(struct rush_event) == RUSH_REPLICATED_EVENT_BYTES, "event bytes");
#define RUSH_REPLICATED_EVENTS_MAX (UINT32_C(1) << 20) /* far above any WAL batch */

/* One record of a message, as read: its events stay in the message (not aligned: copy them). */
struct rush_replicated_view {
    uint64_t lsn;
    int64_t time_ns;
    uint32_t count;
    const void *events; /* count * RUSH_REPLICATED_EVENT_BYTES bytes */
};

/* The bytes a record of `count` events takes. */
static inline size_t rush_replicated_bytes(uint32_t count)
{
    return sizeof(struct rush_replicated_record) + (size_t)count * RUSH_REPLICATED_EVENT_BYTES;
}

/* Writes one record (header and events) at out, which has rush_replicated_bytes(count) bytes. */
size_t rush_replicated_put(void *out, uint64_t lsn, int64_t time_ns,
                           const struct rush_event *events, uint32_t count);

/*
 * Reads the record at buf[*at .. len) and moves *at past it. 1 with *out set; 0 at the end of the
 * message; RUSH_ECORRUPT when what is there is not a whole record whose checksum holds, or its lsn
 * does not follow `after` (the previous record's, 0 for the first). Reads nothing outside buf.
 */
RUSH_MUST_USE int rush_replicated_next(const void *buf, size_t len, size_t *at, uint64_t after,
                                       struct rush_replicated_view *out);

#endif
