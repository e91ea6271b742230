/*
 * server_slots.c — the in-flight slots of the front end: allocated at create, taken by a received
 * message, submitted to the engine, given back once replied. The slot life and its invariants are
 * in server.h; this file makes every transition.
 *
 * Direction. The endpoint files (server_orders.c) take and submit slots; the loop (server.c)
 * hands back decided ones. A slot's reply is its endpoint's business, reached only through the
 * handler table registered at create (server->handlers), so this file calls no endpoint and
 * nothing in server.c.
 *
 * Workload: one take, one submit and one give per order message; all memory is allocated at
 * create (RUSH_SERVER_SMALL_SLOTS x RUSH_SERVER_SMALL_RECORDS plus RUSH_SERVER_LARGE_SLOTS + 1
 * full-size slots). Threads: the front end only.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/log.h"
#include "rush/assert.h"
#include "server_internal.h"

static void slot_init(struct rush_server_slot *slot, uint32_t capacity, bool large,
                      struct rush_request *requests, struct rush_result *results, uint8_t *reasons)
{
    *slot = (struct rush_server_slot){.capacity = capacity,
                                      .large = large,
                                      .requests = requests,
                                      .results = results,
                                      .reasons = reasons};
}

int rush_server_slots_create(struct rush_server *server)
{
    const size_t small = (size_t)RUSH_SERVER_SMALL_SLOTS * RUSH_SERVER_SMALL_RECORDS;
    const size_t large = (size_t)(RUSH_SERVER_LARGE_SLOTS + 1) * RUSH_WIRE_REQUESTS_MAX;
    server->slots = calloc(RUSH_SERVER_IN_FLIGHT_MAX, sizeof(*server->slots));
    server->free_small = calloc(RUSH_SERVER_SMALL_SLOTS, sizeof(*server->free_small));
    server->free_large = calloc(RUSH_SERVER_LARGE_SLOTS, sizeof(*server->free_large));
    server->small_requests = calloc(small, sizeof(struct rush_request));
    server->small_results = calloc(small, sizeof(struct rush_result));
    server->small_reasons = calloc(small, 1);
    server->large_requests = calloc(large, sizeof(struct rush_request));
    server->large_results = calloc(large, sizeof(struct rush_result));
    server->large_reasons = calloc(large, 1);
    server->merged = calloc(RUSH_WIRE_REQUESTS_MAX, sizeof(struct rush_result));
    server->reply = aligned_alloc(8, RUSH_WIRE_MESSAGE_BYTES_MAX);
    if (!server->slots || !server->free_small || !server->free_large || !server->small_requests ||
        !server->small_results || !server->small_reasons || !server->large_requests ||
        !server->large_results || !server->large_reasons || !server->merged || !server->reply)
        return -ENOMEM;
    for (uint32_t i = 0; i < RUSH_SERVER_SMALL_SLOTS; i++) {
        size_t first = (size_t)i * RUSH_SERVER_SMALL_RECORDS;
        slot_init(&server->slots[i], RUSH_SERVER_SMALL_RECORDS, false,
                  server->small_requests + first, server->small_results + first,
                  server->small_reasons + first);
        server->free_small[server->free_small_count++] = &server->slots[i];
    }
    for (uint32_t i = 0; i <= RUSH_SERVER_LARGE_SLOTS; i++) {
        size_t first = (size_t)i * RUSH_WIRE_REQUESTS_MAX;
        struct rush_server_slot *slot = i < RUSH_SERVER_LARGE_SLOTS
                                            ? &server->slots[RUSH_SERVER_SMALL_SLOTS + i]
                                            : &server->overflow;
        slot_init(slot, RUSH_WIRE_REQUESTS_MAX, true, server->large_requests + first,
                  server->large_results + first, server->large_reasons + first);
        if (i < RUSH_SERVER_LARGE_SLOTS)
            server->free_large[server->free_large_count++] = slot;
    }
    return 0;
}

void rush_server_slots_free(struct rush_server *server)
{
    free(server->slots);
    free(server->free_small);
    free(server->free_large);
    free(server->small_requests);
    free(server->small_results);
    free(server->small_reasons);
    free(server->large_requests);
    free(server->large_results);
    free(server->large_reasons);
    free(server->merged);
    free(server->reply);
}

/* A free slot for a message of `count` records, or the overflow slot (to be answered busy). */
struct rush_server_slot *rush_server_slot_take(struct rush_server *server, uint32_t count)
{
    RUSH_ASSERT(count <= RUSH_WIRE_REQUESTS_MAX);
    struct rush_server_slot *slot = &server->overflow;
    if (server->in_flight >= server->in_flight_max)
        slot = &server->overflow;
    else if (count <= RUSH_SERVER_SMALL_RECORDS && server->free_small_count > 0)
        slot = server->free_small[--server->free_small_count];
    else if (count > RUSH_SERVER_SMALL_RECORDS && server->free_large_count > 0)
        slot = server->free_large[--server->free_large_count];
    RUSH_ASSERT(slot->control == NULL);
    slot->count = count;
    slot->valid_count = count;
    slot->message_id = 0;
    slot->batch.status = 0; /* a slot answered without the engine never reads as a failed log */
    slot->received_ns = rush_server_now_ns();
    return slot;
}

void rush_server_slot_give(struct rush_server *server, struct rush_server_slot *slot)
{
    RUSH_ASSERT(slot->control == NULL);
    if (slot == &server->overflow)
        return;
    if (slot->large) {
        RUSH_ASSERT(server->free_large_count < RUSH_SERVER_LARGE_SLOTS);
        server->free_large[server->free_large_count++] = slot;
    } else {
        RUSH_ASSERT(server->free_small_count < RUSH_SERVER_SMALL_SLOTS);
        server->free_small[server->free_small_count++] = slot;
    }
}

static void answer_busy(struct rush_server *server, struct rush_server_slot *slot)
{
    for (uint32_t i = 0; i < slot->valid_count; i++)
        slot->results[i] = (struct rush_result){.outcome = RUSH_BUSY, .tag = slot->requests[i].tag};
    server->counters.busy_messages++;
}

void rush_server_slot_submit(struct rush_server *server, struct rush_server_slot *slot)
{
    RUSH_ASSERT(slot->valid_count <= slot->count && slot->count <= slot->capacity);
    if (slot == &server->overflow) {
        server->counters.busy_no_slot++;
        answer_busy(server, slot);
    } else if (slot->valid_count > 0) {
        slot->batch = (struct rush_batch){.requests = slot->requests,
                                          .results = slot->results,
                                          .count = slot->valid_count,
                                          .context = slot};
        int rc = rush_engine_submit(server->engine, &slot->batch);
        if (rc == 0) {
            server->in_flight++;
            RUSH_ASSERT(server->in_flight <= server->in_flight_max);
            return;
        }
        if (rc != RUSH_EFULL)
            rush_log(RUSH_LOG_WARN, "engine refused a batch of %u: %s", slot->valid_count,
                     rush_strerror(rc));
        answer_busy(server, slot);
    }
    rush_server_slot_decided(server, slot);
}

void rush_server_slot_decided(struct rush_server *server, struct rush_server_slot *slot)
{
    const struct rush_server_handlers *handlers = server->handlers[slot->endpoint];
    RUSH_ASSERT(handlers != NULL && handlers->on_decided != NULL); /* admin never waits */
    handlers->on_decided(server, slot);
    rush_server_ops_decided(server, slot);
    RUSH_ASSERT(slot->control == NULL); /* replied */
    rush_server_slot_give(server, slot);
}
