/*
 * server_pack.c — coalescing: the requests of every small message taken in one turn of the loop
 * are packed into one engine batch per shard, so that a thousand one-order messages cost one work
 * item, one log append and one fdatasync per shard, like one thousand-order message does.
 *
 * Why. A gateway sends one order per click, one message each. Submitted one by one, every
 * message is a work item: a ring hand-off, a shard wake-up, a sink call and a log batch each, and
 * on two cores the threads spend their time switching. Packed, those costs are paid once per
 * turn and shard, whatever the number of messages.
 *
 * Shape. Each shard owns RUSH_SERVER_PACKS_PER_SHARD packs of pack_requests_max requests (at most
 * the engine's work_requests_max, so a pack is exactly one work item). At most one pack per
 * shard is open (filling). A message of up to pack_requests_max requests (larger ones are their
 * own batch, server_slots.c) has its valid requests go to the open packs of their shards
 * (a message may span shards: each request remembers its slot and its index there); at the end
 * of the turn rush_server_packs_flush() submits every open pack. When a pack comes back, each
 * result is written into its slot, and every slot whose last request it was is handed to the
 * caller to reply: a message is answered as soon as the packs holding its requests are decided.
 *
 * Pack life (this file makes every transition):
 *
 *   free --pack_open (a request for its shard)--> open --flush: rush_engine_submit--> in flight
 *     ^                                             |  refused (engine full): stays open   |
 *     +--------------- rush_server_pack_scatter <------------------------------------------+
 *
 * Invariants.
 *   1. A slot's pending count is the number of its requests in packs not yet scattered; it is
 *      whole (replied) exactly when that reaches zero.
 *   2. At most one open pack per shard; it holds at most pack_requests_max requests (none only
 *      when a message spanning shards found no room on another one).
 *   3. batches_in_flight never exceeds batches_in_flight_max (the engine's ready queue).
 *   4. A message is packed whole or not at all (room is checked for every shard first).
 *   5. A message is never refused here: when its shard has no pack free it waits in the
 *      `waiting` FIFO (it holds its slot, so the budgets bound it) and is packed, before any
 *      later message, as soon as a pack comes back.
 *
 * Direction: called by server_slots.c (add, scatter) and server.c (flush); calls the engine and
 * nothing in the front end. Workload: per request one 64-byte copy in, one 56-byte copy out.
 * Threads: the front end only.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/log.h"
#include "rush/assert.h"
#include "server_internal.h"

int rush_server_packs_create(struct rush_server *server)
{
    uint32_t shards = server->engine_config.shard_count;
    uint32_t per = server->engine_config.work_requests_max;
    server->pack_requests_max =
        per < RUSH_SERVER_PACK_REQUESTS_MAX ? per : RUSH_SERVER_PACK_REQUESTS_MAX;
    server->pack_count = shards * RUSH_SERVER_PACKS_PER_SHARD;
    server->packs = calloc(server->pack_count, sizeof(*server->packs));
    server->free_packs = calloc(server->pack_count, sizeof(*server->free_packs));
    server->whole = calloc(server->pack_requests_max, sizeof(*server->whole));
    server->waiting = calloc(RUSH_SERVER_IN_FLIGHT_MAX, sizeof(*server->waiting));
    if (!server->packs || !server->free_packs || !server->whole || !server->waiting)
        return -ENOMEM;
    size_t n = server->pack_requests_max;
    for (uint32_t i = 0; i < server->pack_count; i++) {
        struct rush_server_pack *pack = &server->packs[i];
        pack->shard = i / RUSH_SERVER_PACKS_PER_SHARD;
        pack->requests = malloc(n * sizeof(*pack->requests));
        pack->results = malloc(n * sizeof(*pack->results));
        pack->owners = malloc(n * sizeof(*pack->owners));
        pack->positions = malloc(n * sizeof(*pack->positions));
        if (!pack->requests || !pack->results || !pack->owners || !pack->positions)
            return -ENOMEM;
        server->free_packs[pack->shard * RUSH_SERVER_PACKS_PER_SHARD +
                           server->free_pack_counts[pack->shard]++] = pack;
    }
    return 0;
}

void rush_server_packs_free(struct rush_server *server)
{
    for (uint32_t i = 0; server->packs != NULL && i < server->pack_count; i++) {
        free(server->packs[i].requests);
        free(server->packs[i].results);
        free(server->packs[i].owners);
        free(server->packs[i].positions);
    }
    free(server->packs);
    free(server->free_packs);
    free(server->whole);
    free(server->waiting);
}

struct rush_server_pack *rush_server_pack_of(struct rush_server *server, struct rush_batch *batch)
{
    struct rush_server_pack *pack = batch->context;
    if (server->packs == NULL || pack < server->packs || pack >= server->packs + server->pack_count)
        return NULL;
    RUSH_ASSERT(&pack->batch == batch);
    return pack;
}

/* Submits the shard's open pack; false (it stays open) when the engine takes no more now. */
static bool pack_submit(struct rush_server *server, uint32_t shard)
{
    struct rush_server_pack *pack = server->open_packs[shard];
    RUSH_ASSERT(pack != NULL && pack->count > 0 && pack->count <= server->pack_requests_max);
    if (server->batches_in_flight >= server->batches_in_flight_max)
        return false;
    pack->batch = (struct rush_batch){.requests = pack->requests,
                                      .results = pack->results,
                                      .count = pack->count,
                                      .context = pack};
    int rc = rush_engine_submit(server->engine, &pack->batch);
    if (rc == RUSH_EFULL)
        return false;
    RUSH_ASSERT(rc == 0); /* a pack is within every engine limit */
    server->batches_in_flight++;
    server->counters.packs++;
    server->open_packs[shard] = NULL;
    return true;
}

/* Makes room for `need` more requests on the shard: the open pack, or a fresh one. */
static bool pack_room(struct rush_server *server, uint32_t shard, uint32_t need)
{
    struct rush_server_pack *open = server->open_packs[shard];
    if (open != NULL && open->count + need <= server->pack_requests_max)
        return true;
    if (open != NULL && !pack_submit(server, shard))
        return false;
    if (server->free_pack_counts[shard] == 0)
        return false;
    struct rush_server_pack *pack =
        server->free_packs[shard * RUSH_SERVER_PACKS_PER_SHARD + --server->free_pack_counts[shard]];
    RUSH_ASSERT(pack->shard == shard);
    pack->count = 0;
    server->open_packs[shard] = pack;
    return true;
}

/* Packs a slot whole (invariant 4); false when some shard has no room now. */
static bool pack_place(struct rush_server *server, struct rush_server_slot *slot)
{
    RUSH_ASSERT(slot->valid_count > 0 && slot->valid_count <= server->pack_requests_max);
    uint32_t shards = server->engine_config.shard_count;
    uint8_t route[RUSH_SERVER_PACK_REQUESTS_MAX];
    uint32_t need[RUSH_SHARDS_MAX] = {0};
    RUSH_ASSERT(slot->valid_count <= RUSH_SERVER_PACK_REQUESTS_MAX);
    for (uint32_t i = 0; i < slot->valid_count; i++) {
        route[i] = (uint8_t)rush_engine_shard_of(shards, &slot->requests[i]);
        need[route[i]]++;
    }
    for (uint32_t s = 0; s < shards; s++) /* invariant 4: room everywhere before any copy */
        if (need[s] > 0 && !pack_room(server, s, need[s]))
            return false;
    for (uint32_t i = 0; i < slot->valid_count; i++) {
        struct rush_server_pack *pack = server->open_packs[route[i]];
        pack->requests[pack->count] = slot->requests[i];
        pack->owners[pack->count] = slot;
        pack->positions[pack->count++] = i;
    }
    slot->pending = slot->valid_count;
    server->counters.packed_messages++;
    return true;
}

void rush_server_pack_add(struct rush_server *server, struct rush_server_slot *slot)
{
    slot->packed = true;
    if (server->waiting_count == 0 && pack_place(server, slot))
        return;
    /* Every pack of a shard is in flight and its open one full: the message waits, in order,
     * for a pack to come back (invariant 5). Bounded: each waiting message holds a slot. */
    RUSH_ASSERT(server->waiting_count < RUSH_SERVER_IN_FLIGHT_MAX);
    uint32_t tail = (server->waiting_head + server->waiting_count) % RUSH_SERVER_IN_FLIGHT_MAX;
    server->waiting[tail] = slot;
    server->waiting_count++;
}

/* Packs the waiting messages, oldest first, while there is room. */
static void pack_waiting(struct rush_server *server)
{
    while (server->waiting_count > 0 && pack_place(server, server->waiting[server->waiting_head])) {
        server->waiting_head = (server->waiting_head + 1) % RUSH_SERVER_IN_FLIGHT_MAX;
        server->waiting_count--;
    }
}

uint32_t rush_server_pack_scatter(struct rush_server *server, struct rush_server_pack *pack)
{
    uint32_t whole = 0;
    for (uint32_t i = 0; i < pack->count; i++) {
        struct rush_server_slot *slot = pack->owners[i];
        RUSH_ASSERT(slot->packed && slot->pending > 0 && pack->positions[i] < slot->valid_count);
        slot->results[pack->positions[i]] = pack->results[i];
        if (pack->batch.status != 0)
            slot->batch.status = pack->batch.status;
        if (--slot->pending == 0) /* invariant 1 */
            server->whole[whole++] = slot;
    }
    RUSH_ASSERT(whole <= server->pack_requests_max);
    uint32_t shard = pack->shard;
    RUSH_ASSERT(server->free_pack_counts[shard] < RUSH_SERVER_PACKS_PER_SHARD);
    server->free_packs[shard * RUSH_SERVER_PACKS_PER_SHARD + server->free_pack_counts[shard]++] =
        pack;
    return whole;
}

void rush_server_packs_flush(struct rush_server *server)
{
    pack_waiting(server);
    for (uint32_t s = 0; s < server->engine_config.shard_count; s++)
        if (server->open_packs[s] != NULL && server->open_packs[s]->count > 0)
            (void)pack_submit(server, s);
}
