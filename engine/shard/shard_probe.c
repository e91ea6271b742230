/*
 * shard_probe.c — the table lookups of a batch alone, for bench-engine's breakdown of where a
 * decision's nanoseconds go (bench/bench_engine.c): the same lookups the decision path makes
 * first (the idempotency key, the SKU id, the (SKU, user) limit), with the same prefetching,
 * and nothing else. Never on the decision path; changes nothing.
 *
 * Thread: the shard's owner.
 */
#include "rush/assert.h"
#include "shard_internal.h"

uint32_t rush_shard_probe_batch(const struct rush_shard *shard, const struct rush_request *requests,
                                uint32_t count)
{
    RUSH_ASSERT(shard != NULL && (requests != NULL || count == 0));
    struct rush_shard *cache = (struct rush_shard *)shard; /* hints and the SKU cache, not state */
    struct shard_lookahead ahead;
    shard__look_start(shard, &ahead, requests, count);
    uint32_t found = 0;
    for (uint32_t i = 0; i < count; i++) {
        shard__look_step(cache, &ahead, requests, count, i);
        const struct rush_request *request = &requests[i];
        if (!rush_key_is_zero(&request->key))
            found += rush_table_find(&shard->keys, &request->key) != NULL;
        const struct sku_state *sku = shard__sku(shard, request->sku_id);
        if (sku != NULL)
            found += shard__limit(shard, (uint32_t)(sku - shard->skus), request->user_id) != NULL;
    }
    return found;
}
