/*
 * replicated.h — the replicated log's message format (durability replicated, ARCHITECTURE.md
 * "Cluster"): what rushd's engine/cluster publishes on JetStream and what `rushctl cluster`
 * reads back.
 *
 * Stream <stream>, one subject per shard, <stream>.shard.<n>. Each message holds one or more of
 * the shard's WAL batches in lsn order, each as this 24-byte header (little-endian, as the host
 * writes it) followed by `count` 64-byte struct rush_event. Message id (Nats-Msg-Id):
 * "<node>.<shard>.<first lsn>.<last lsn>". The lease bucket <stream>_leases holds shard.<n> =
 * the leading node's name ("-": released, "->NAME": offered to NAME) and node.<name> = that
 * node's applied lsn per shard, comma-separated.
 */
#ifndef RUSH_REPLICATED_H
#define RUSH_REPLICATED_H

#include <assert.h>
#include <stdint.h>

struct rush_replicated_record {
    uint64_t lsn;
    int64_t time_ns;
    uint32_t count;    /* events after this header, at least 1 */
    uint32_t reserved; /* 0 */
};
static_assert(sizeof(struct rush_replicated_record) == 24, "replicated record header is 24 bytes");

#define RUSH_REPLICATED_EVENT_BYTES 64 /* sizeof(struct rush_event) */

#endif
