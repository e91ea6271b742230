/*
 * route.c — which shard a request belongs to (rush/wire.h, PROTOCOL.md): the one routing rule,
 * shared by the engine (which splits a batch by shard) and librush (which sends a request to the
 * node that leads its shard).
 *
 * A SKU op goes to the shard XXH3-64(sku id, or its family's number for a SKU of an activity's
 * family: types.h rush_sku_family) * shard_count >> 64 (unseeded: stable across
 * restarts, builds and processes); an op on an order or group to the shard in the top byte of its
 * id (RUSH_ID_SHARD_SHIFT), or shard 0 when that is not below shard_count (shard 0 answers
 * unknown_order / unknown_group). xxHash is compiled in, as in key.c, so librush needs none at
 * run time. Stateless; any thread.
 */
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "rush/assert.h"
#include "rush/wire.h"

uint32_t rush_wire_shard_of_sku(uint32_t shard_count, uint64_t sku_id)
{
    RUSH_ASSERT(shard_count >= 1);
    /* A family's SKUs (an activity's) hash as one: their family number (types.h). */
    uint64_t route = rush_sku_family(sku_id) != 0 ? rush_sku_family(sku_id) : sku_id;
    uint64_t hash = XXH3_64bits(&route, sizeof(route));
    return (uint32_t)(((unsigned __int128)hash * shard_count) >> 64);
}

static uint32_t shard_of_id(uint32_t shard_count, uint64_t id)
{
    uint32_t shard = rush_id_shard(id);
    return shard < shard_count ? shard : 0;
}

uint32_t rush_wire_shard_of(uint32_t shard_count, const struct rush_request *request)
{
    RUSH_ASSERT(shard_count >= 1 && request != NULL);
    switch ((enum rush_op)request->op) {
    case RUSH_OP_RESERVE:
    case RUSH_OP_GROUP_OPEN:
    case RUSH_OP_GROUP_JOIN_ANY:
    case RUSH_OP_QUERY_SKU:
    case RUSH_OP_LIST_GROUPS:
    case RUSH_OP_ADJUST:
    case RUSH_OP_PAUSE:
    case RUSH_OP_RESUME:
    case RUSH_OP_REGISTER:
        return rush_wire_shard_of_sku(shard_count, request->sku_id);
    case RUSH_OP_CONFIRM:
    case RUSH_OP_CANCEL:
    case RUSH_OP_QUERY_ORDER:
    case RUSH_OP_GROUP_JOIN:
    case RUSH_OP_QUERY_GROUP:
        return shard_of_id(shard_count, request->target_id);
    case RUSH_OP_NONE:
    case RUSH_OP_COUNT_:
        break;
    }
    return 0; /* shard 0 answers invalid */
}
