/*
 * ring.c — see ring.h for the workload, shape and invariants.
 */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rush/assert.h"

int rush_ring_init(struct rush_ring *ring, uint32_t slot_count)
{
    if (slot_count < 2 || (slot_count & (slot_count - 1)) != 0)
        return RUSH_ECONFIG;
    memset(ring, 0, sizeof(*ring));
    ring->slots = calloc(slot_count, sizeof(void *));
    if (ring->slots == NULL)
        return -ENOMEM;
    ring->mask = slot_count - 1;
    return 0;
}

void rush_ring_free(struct rush_ring *ring)
{
    free(ring->slots);
    ring->slots = NULL;
}

bool rush_ring_push(struct rush_ring *ring, void *item)
{
    RUSH_ASSERT(item != NULL);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    if (tail - ring->head_cached > ring->mask) {
        ring->head_cached = atomic_load_explicit(&ring->head, memory_order_acquire);
        if (tail - ring->head_cached > ring->mask)
            return false;
    }
    ring->slots[tail & ring->mask] = item;
    atomic_store_explicit(&ring->tail, tail + 1, memory_order_release);
    return true;
}

void *rush_ring_pop(struct rush_ring *ring)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    if (head == ring->tail_cached) {
        ring->tail_cached = atomic_load_explicit(&ring->tail, memory_order_acquire);
        if (head == ring->tail_cached)
            return NULL;
    }
    void *item = ring->slots[head & ring->mask];
    atomic_store_explicit(&ring->head, head + 1, memory_order_release);
    return item;
}

bool rush_ring_empty(struct rush_ring *ring)
{
    return atomic_load_explicit(&ring->head, memory_order_acquire) ==
           atomic_load_explicit(&ring->tail, memory_order_acquire);
}

uint32_t rush_ring_depth(const struct rush_ring *ring)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    return tail > head ? (uint32_t)(tail - head) : 0; /* the two loads may cross */
}
