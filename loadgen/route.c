/*
 * route.c — shard -> node table and the redirect verdict (see route.h).
 */
#include "route.h"

#include <stdbool.h>

#include "rush/assert.h"
#include "rush/wire.h"

void rush_route_init(struct rush_route *route, uint32_t node_count, uint32_t shard_count)
{
    RUSH_ASSERT(route != NULL && node_count >= 1);
    RUSH_ASSERT(shard_count >= 1 && shard_count <= RUSH_SHARDS_MAX);
    route->node_count = node_count;
    route->shard_count = shard_count;
    for (uint32_t s = 0; s < RUSH_SHARDS_MAX; s++)
        route->leaders[s] = s % node_count;
}

uint32_t rush_route_node(const struct rush_route *route, const struct rush_request *request)
{
    if (route->node_count == 1)
        return 0;
    uint32_t shard = rush_wire_shard_of(route->shard_count, request);
    RUSH_ASSERT(shard < RUSH_SHARDS_MAX && route->leaders[shard] < route->node_count);
    return route->leaders[shard];
}

enum rush_route_verdict rush_route_answer(struct rush_route *route,
                                          const struct rush_result *result, uint32_t from,
                                          uint32_t hops, uint32_t *node)
{
    RUSH_ASSERT(from < route->node_count && node != NULL);
    bool unknown = result->outcome == RUSH_OUTCOME_UNKNOWN && route->node_count > 1;
    if (result->outcome != RUSH_REDIRECT && !unknown)
        return RUSH_ROUTE_DECIDED;
    if (hops + 1 >= RUSH_ROUTE_HOPS_MAX)
        return RUSH_ROUTE_GIVE_UP;
    if (unknown) {
        *node = RUSH_ROUTE_NO_LEADER; /* wherever the table says after the wait */
        return RUSH_ROUTE_WAIT;
    }
    uint32_t shard = result->state;
    uint32_t leader = result->qty;
    if (leader == RUSH_ROUTE_NO_LEADER || leader >= route->node_count) {
        *node = from; /* ask again where we asked: the next leader tells us */
        return RUSH_ROUTE_WAIT;
    }
    if (shard < RUSH_SHARDS_MAX)
        route->leaders[shard] = leader;
    *node = leader;
    return RUSH_ROUTE_RESEND;
}

uint32_t rush_route_timeout(struct rush_route *route, const struct rush_request *request,
                            uint32_t from)
{
    RUSH_ASSERT(from < route->node_count);
    uint32_t shard = rush_wire_shard_of(route->shard_count, request);
    RUSH_ASSERT(shard < RUSH_SHARDS_MAX);
    if (route->leaders[shard] == from)
        route->leaders[shard] = (from + 1) % route->node_count;
    return route->leaders[shard];
}
