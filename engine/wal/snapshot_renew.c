/*
 * snapshot_renew.c — huge pages given back to the shard after a snapshot's fork (see
 * snapshot_renew.h for the why, the states and the invariants).
 *
 * Thread: the shard's.
 */
#include "snapshot_renew.h"

#include <errno.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/memory.h"
#include "rush/assert.h"

void rush_snapshot_renew_init(struct rush_snapshot_renew *renew)
{
    *renew = (struct rush_snapshot_renew){.disabled = !rush_memory_huge_available()};
}

void rush_snapshot_renew_start(struct rush_snapshot_renew *renew, const struct rush_shard *shard)
{
    renew->region_count = 0;
    renew->region_index = 0;
    renew->offset = 0;
    if (renew->disabled)
        return;
    void *regions[RUSH_SHARD_REGIONS_MAX];
    uint32_t count = rush_shard_regions(shard, regions, RUSH_SHARD_REGIONS_MAX);
    for (uint32_t i = 0; i < count; i++) {
        size_t bytes = rush_memory_region_bytes(regions[i]);
        if (bytes == 0) /* a small table from the allocator: no huge page to keep */
            continue;
        renew->regions[renew->region_count] = regions[i];
        renew->region_bytes[renew->region_count++] = bytes;
    }
}

bool rush_snapshot_renew_pending(const struct rush_snapshot_renew *renew)
{
    return !renew->disabled && renew->region_index < renew->region_count;
}

bool rush_snapshot_renew_step(struct rush_snapshot_renew *renew)
{
    if (!rush_snapshot_renew_pending(renew))
        return false;
    if (renew->fresh == NULL)
        renew->fresh = rush_memory_chunk_take();
    if (renew->fresh == NULL)
        return false; /* none ready yet: the next idle round looks again */
    int64_t start_ns = rush_clock_monotonic_ns();
    uint8_t *at = (uint8_t *)renew->regions[renew->region_index] + renew->offset;
    int rc = rush_memory_chunk_renew(at, renew->fresh);
    renew->steps_ns += (uint64_t)(rush_clock_monotonic_ns() - start_ns);
    if (rc == -EBUSY)
        return false; /* the pool is faulting a chunk in: the next idle round tries again */
    if (rc < 0) {     /* the fresh chunk stays for the stop to drop */
        rush_log(RUSH_LOG_WARN, "rush: huge-page renewal after snapshots stops: %s",
                 rush_strerror(rc));
        renew->disabled = true;
        return true;
    }
    renew->fresh = NULL;
    renew->chunks_renewed++;
    renew->offset += RUSH_MEMORY_CHUNK_BYTES;
    RUSH_ASSERT(renew->offset <= renew->region_bytes[renew->region_index]);
    if (renew->offset == renew->region_bytes[renew->region_index]) {
        renew->region_index++;
        renew->offset = 0;
    }
    return true;
}

void rush_snapshot_renew_stop(struct rush_snapshot_renew *renew)
{
    rush_memory_chunk_drop(renew->fresh);
    renew->fresh = NULL;
    renew->region_index = renew->region_count;
}
