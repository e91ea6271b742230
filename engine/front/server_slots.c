/*
 * server_slots.c — the in-flight slots of the front end: allocated at create, taken by a received
 * message, submitted to the engine, given back once replied. The slot life and its invariants are
 * in server.h; this file makes every transition.
 *
 * Direction. The endpoint files (server_orders.c) take and submit slots; the loop (server.c)
 * hands back decided batches. A slot's reply is its endpoint's business, reached only through the
 * handler table registered at create (server->handlers), so this file calls no endpoint and
 * nothing in server.c. Messages of up to pack_requests_max requests go into packs
 * (server_pack.c), larger ones into their own engine batch.
 *
 * Budgets (server.h). A message is answered busy only when taking it would pass the requests or
 * the bytes budget, when no slot of its size is free, or when the engine takes no more now (the
 * shard's packs are all in flight and the open one is full; a large message's work items or the
 * ready queue). The message count itself is not a budget: a one-record slot is 121 bytes of
 * records, so there are RUSH_SERVER_ONE_SLOTS of them.
 *
 * Workload: one take, one submit and one give per order message; all memory is allocated at
 * create (RUSH_SERVER_ONE_SLOTS one-record slots, RUSH_SERVER_SMALL_SLOTS x
 * RUSH_SERVER_SMALL_RECORDS, RUSH_SERVER_MEDIUM_SLOTS x RUSH_SERVER_MEDIUM_RECORDS,
 * RUSH_SERVER_LARGE_SLOTS + 1 full-size slots: about 70 MiB). Threads: the front end only.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/log.h"
#include "rush/assert.h"
#include "server_internal.h"

static const uint32_t class_slots[RUSH_SLOT_CLASS_COUNT_] = {
    RUSH_SERVER_ONE_SLOTS, RUSH_SERVER_SMALL_SLOTS, RUSH_SERVER_MEDIUM_SLOTS,
    RUSH_SERVER_LARGE_SLOTS};
static const uint32_t class_records[RUSH_SLOT_CLASS_COUNT_] = {
    1, RUSH_SERVER_SMALL_RECORDS, RUSH_SERVER_MEDIUM_RECORDS, RUSH_WIRE_REQUESTS_MAX};

static void slot_init(struct rush_server_slot *slot, enum rush_slot_class slot_class,
                      struct rush_request *requests, struct rush_result *results, uint8_t *reasons)
{
    *slot = (struct rush_server_slot){.capacity = class_records[slot_class],
                                      .slot_class = slot_class,
                                      .requests = requests,
                                      .results = results,
                                      .reasons = reasons};
}

/* One class's records and free list; the large class has one more slot: the overflow. */
static int class_create(struct rush_server *server, enum rush_slot_class c,
                        struct rush_server_slot *first)
{
    size_t slots = class_slots[c] + (c == RUSH_SLOT_LARGE ? 1 : 0);
    size_t records = slots * class_records[c];
    server->free_slots[c] = calloc(class_slots[c], sizeof(*server->free_slots[c]));
    server->slot_requests[c] = calloc(records, sizeof(struct rush_request));
    server->slot_results[c] = calloc(records, sizeof(struct rush_result));
    server->slot_reasons[c] = calloc(records, 1);
    if (!server->free_slots[c] || !server->slot_requests[c] || !server->slot_results[c] ||
        !server->slot_reasons[c])
        return -ENOMEM;
    for (uint32_t i = 0; i < slots; i++) {
        size_t at = (size_t)i * class_records[c];
        struct rush_server_slot *slot = i < class_slots[c] ? &first[i] : &server->overflow;
        slot_init(slot, c, server->slot_requests[c] + at, server->slot_results[c] + at,
                  server->slot_reasons[c] + at);
        if (i < class_slots[c])
            server->free_slots[c][server->free_counts[c]++] = slot;
    }
    return 0;
}

int rush_server_slots_create(struct rush_server *server)
{
    server->slots = calloc(RUSH_SERVER_IN_FLIGHT_MAX, sizeof(*server->slots));
    server->merged = calloc(RUSH_WIRE_REQUESTS_MAX, sizeof(struct rush_result));
    server->reply = aligned_alloc(8, RUSH_WIRE_MESSAGE_BYTES_MAX);
    if (!server->slots || !server->merged || !server->reply)
        return -ENOMEM;
    struct rush_server_slot *first = server->slots;
    for (int c = 0; c < RUSH_SLOT_CLASS_COUNT_; c++) {
        int rc = class_create(server, (enum rush_slot_class)c, first);
        if (rc < 0)
            return rc;
        first += class_slots[c];
    }
    RUSH_ASSERT(first == server->slots + RUSH_SERVER_IN_FLIGHT_MAX);
    server->in_flight_max = RUSH_SERVER_IN_FLIGHT_MAX;
    server->requests_in_flight_max = RUSH_SERVER_REQUESTS_IN_FLIGHT_MAX;
    server->bytes_in_flight_max = RUSH_SERVER_BYTES_IN_FLIGHT_MAX;
    return 0;
}

void rush_server_slots_free(struct rush_server *server)
{
    for (int c = 0; c < RUSH_SLOT_CLASS_COUNT_; c++) {
        free(server->free_slots[c]);
        free(server->slot_requests[c]);
        free(server->slot_results[c]);
        free(server->slot_reasons[c]);
    }
    free(server->slots);
    free(server->merged);
    free(server->reply);
}

/*
 * The smallest free slot that holds `count` records: its own class, else a larger one up to the
 * medium class (a large slot is kept for the messages only it holds), else the overflow.
 */
static struct rush_server_slot *slot_pop(struct rush_server *server, uint32_t count)
{
    int c = 0;
    while (c < RUSH_SLOT_LARGE && count > class_records[c])
        c++;
    for (int tried = c; tried < RUSH_SLOT_CLASS_COUNT_; tried++) {
        if (tried == RUSH_SLOT_LARGE && c < RUSH_SLOT_LARGE)
            break;
        if (server->free_counts[tried] > 0)
            return server->free_slots[tried][--server->free_counts[tried]];
    }
    return &server->overflow;
}

struct rush_server_slot *rush_server_slot_take(struct rush_server *server, uint32_t count,
                                               size_t bytes)
{
    RUSH_ASSERT(count <= RUSH_WIRE_REQUESTS_MAX);
    struct rush_server_slot *slot = &server->overflow;
    if (server->requests_in_flight + count <= server->requests_in_flight_max &&
        server->bytes_in_flight + bytes <= server->bytes_in_flight_max)
        slot = slot_pop(server, count);
    RUSH_ASSERT(slot->control == NULL && count <= slot->capacity);
    slot->count = count;
    slot->valid_count = count;
    slot->bytes = (uint32_t)bytes;
    slot->message_id = 0;
    slot->pending = 0;
    slot->packed = false;
    slot->batch.status = 0; /* a slot answered without the engine never reads as a failed log */
    slot->received_ns = rush_server_now_ns();
    return slot;
}

void rush_server_slot_give(struct rush_server *server, struct rush_server_slot *slot)
{
    RUSH_ASSERT(slot->control == NULL);
    if (slot == &server->overflow)
        return;
    enum rush_slot_class c = slot->slot_class;
    RUSH_ASSERT(server->free_counts[c] < class_slots[c]);
    server->free_slots[c][server->free_counts[c]++] = slot;
}

static void answer_busy(struct rush_server *server, struct rush_server_slot *slot)
{
    for (uint32_t i = 0; i < slot->valid_count; i++)
        slot->results[i] = (struct rush_result){.outcome = RUSH_BUSY, .tag = slot->requests[i].tag};
    server->counters.busy_messages++;
}

/* Replies (through the endpoint's handler) and frees the slot. */
static void slot_decided(struct rush_server *server, struct rush_server_slot *slot)
{
    const struct rush_server_handlers *handlers = server->handlers[slot->endpoint];
    RUSH_ASSERT(handlers != NULL && handlers->on_decided != NULL); /* admin never waits */
    handlers->on_decided(server, slot);
    rush_server_ops_decided(server, slot);
    RUSH_ASSERT(slot->control == NULL); /* replied */
    rush_server_slot_give(server, slot);
}

/* A large message's own batch; false when the engine takes no more now. */
static bool submit_own(struct rush_server *server, struct rush_server_slot *slot)
{
    if (server->batches_in_flight >= server->batches_in_flight_max)
        return false;
    slot->batch = (struct rush_batch){.requests = slot->requests,
                                      .results = slot->results,
                                      .count = slot->valid_count,
                                      .context = slot};
    int rc = rush_engine_submit(server->engine, &slot->batch);
    if (rc == 0) {
        server->batches_in_flight++;
        return true;
    }
    if (rc != RUSH_EFULL)
        rush_log(RUSH_LOG_WARN, "engine refused a batch of %u: %s", slot->valid_count,
                 rush_strerror(rc));
    return false;
}

void rush_server_slot_submit(struct rush_server *server, struct rush_server_slot *slot)
{
    RUSH_ASSERT(slot->valid_count <= slot->count && slot->count <= slot->capacity);
    if (slot == &server->overflow) {
        server->counters.busy_no_slot++;
        answer_busy(server, slot);
    } else if (slot->valid_count > 0) {
        bool small = slot->valid_count <= server->pack_requests_max;
        if (small)
            rush_server_pack_add(server, slot); /* never refused: see server_pack.c */
        if (small || submit_own(server, slot)) {
            server->in_flight++;
            server->requests_in_flight += slot->count;
            server->bytes_in_flight += slot->bytes;
            RUSH_ASSERT(server->in_flight <= server->in_flight_max);
            return;
        }
        answer_busy(server, slot);
    }
    slot_decided(server, slot);
}

/* A slot that was in flight is whole: out of the budgets, replied, free. */
static void in_flight_decided(struct rush_server *server, struct rush_server_slot *slot)
{
    RUSH_ASSERT(server->in_flight > 0 && server->requests_in_flight >= slot->count &&
                server->bytes_in_flight >= slot->bytes);
    server->in_flight--;
    server->requests_in_flight -= slot->count;
    server->bytes_in_flight -= slot->bytes;
    slot_decided(server, slot);
}

void rush_server_batch_decided(struct rush_server *server, struct rush_batch *batch)
{
    RUSH_ASSERT(server->batches_in_flight > 0);
    server->batches_in_flight--;
    struct rush_server_pack *pack = rush_server_pack_of(server, batch);
    if (pack == NULL) {
        struct rush_server_slot *slot = batch->context;
        RUSH_ASSERT(slot != NULL && &slot->batch == batch && !slot->packed);
        in_flight_decided(server, slot);
        return;
    }
    uint32_t whole = rush_server_pack_scatter(server, pack);
    for (uint32_t i = 0; i < whole; i++)
        in_flight_decided(server, server->whole[i]);
}
