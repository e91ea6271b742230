/*
 * ring.h — a bounded single-producer single-consumer ring of pointers.
 *
 * Workload: work items between the front-end thread and a shard thread, one ring each way per
 * shard; tens of millions of hand-offs per second at most, usually far fewer (items are batches).
 *
 * Shape: `slot_count` (a power of two) pointer slots; `tail` is written only by the producer,
 * `head` only by the consumer, each on its own cache line. The producer publishes a slot with a
 * release store of tail, the consumer takes it after an acquire load (and the reverse for
 * freeing slots). Each side caches the other's index to touch the shared line only when the
 * cached view says full (or empty).
 *
 * Invariants:
 *   1. head <= tail <= head + slot_count.
 *   2. Slots in [head, tail) hold published, not yet consumed items.
 *
 * Threads: exactly one producer thread and one consumer thread.
 */
#ifndef RUSH_RING_H
#define RUSH_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rush/types.h"

struct rush_ring {
    alignas(64) _Atomic uint64_t tail; /* producer writes */
    uint64_t head_cached;              /* producer's view of head */
    alignas(64) _Atomic uint64_t head; /* consumer writes */
    uint64_t tail_cached;              /* consumer's view of tail */
    alignas(64) void **slots;
    uint64_t mask;
};

RUSH_MUST_USE int rush_ring_init(struct rush_ring *ring, uint32_t slot_count);
void rush_ring_free(struct rush_ring *ring);

/* Producer: false when full (nothing pushed). */
bool rush_ring_push(struct rush_ring *ring, void *item);
/* Consumer: the oldest item, or NULL when empty. */
void *rush_ring_pop(struct rush_ring *ring);
/* Either side: true when no item is waiting (a snapshot; may change at once). */
bool rush_ring_empty(struct rush_ring *ring);
/* Any thread: items waiting (a snapshot; at most slot_count). */
uint32_t rush_ring_depth(const struct rush_ring *ring);

#endif
