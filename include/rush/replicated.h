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
 * "<node>.<shard>.<first lsn>.<last lsn>".
 *
 * A fence message (written once by each promotion before the new leader decides anything) has
 * no payload and the header Rush-Fence: "<node> <lsn>", lsn being the last one in the log before
 * it (0: an empty log); its message id is "<node>.<shard>.fence.<expected sequence>". It holds no
 * record: readers skip it, the next record's lsn follows the one before the fence. An empty
 * message without a readable Rush-Fence is malformed. The lease bucket <stream>_leases holds
 * shard.<n> = the leading node's name ("-": released, "->NAME": offered to NAME) and node.<name> =
 * that node's applied lsn per shard, comma-separated.
 */
#ifndef RUSH_REPLICATED_H
#define RUSH_REPLICATED_H

#include <assert.h>
#include <stdbool.h>
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

/* The fence message's header (its value: "<node> <lsn>"), and the bytes its value may take. */
#define RUSH_REPLICATED_FENCE_HEADER "Rush-Fence"
#define RUSH_REPLICATED_FENCE_BYTES 96

/* Writes a fence's header value into out (size bytes); false when it does not fit. */
bool rush_replicated_fence_put(char *out, size_t size, const char *node, uint64_t lsn);

/*
 * Reads a fence's header value ("<node> <lsn>": a non-empty name without spaces, one space, a
 * decimal lsn, nothing after): 0 with *lsn set, RUSH_ECORRUPT otherwise (NULL too).
 */
RUSH_MUST_USE int rush_replicated_fence_lsn(const char *value, uint64_t *lsn);

/*
 * The lsn the log ends at after this message: its last record's, or for a fence (len 0, fence
 * the Rush-Fence header's value or NULL) the lsn the fence names. 0 with *lsn set; RUSH_ECORRUPT
 * for a malformed message (a bad record, an empty message that is no fence, a fence with a
 * payload).
 */
RUSH_MUST_USE int rush_replicated_end_lsn(const void *buf, size_t len, const char *fence,
                                          uint64_t *lsn);

#endif
