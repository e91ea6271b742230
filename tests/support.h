/*
 * support.h — helpers shared by the engine tests: a shard with small limits, an event
 * recorder, SKU and request builders. Header-only so each test program stays one file.
 */
#ifndef RUSH_TEST_SUPPORT_H
#define RUSH_TEST_SUPPORT_H

#include <stdlib.h>
#include <string.h>

#include "rush/engine.h"
#include "shard/shard.h"

#define T0_NS INT64_C(1700000000000000000) /* a fixed engine time origin */
#define MS (INT64_C(1000000))
#define SECOND (1000 * MS)

/* Records every event the sink sees, with its batch time. */
struct recorder {
    struct rush_event *events;
    int64_t *times;
    uint32_t count;
    uint32_t capacity;
};

static inline void recorder_sink(void *context, uint32_t shard_index, int64_t time_ns,
                                 const struct rush_event *events, uint32_t count)
{
    (void)shard_index;
    struct recorder *recorder = context;
    for (uint32_t i = 0; i < count && recorder->count < recorder->capacity; i++) {
        recorder->times[recorder->count] = time_ns;
        recorder->events[recorder->count++] = events[i];
    }
}

static inline void recorder_init(struct recorder *recorder, uint32_t capacity)
{
    recorder->events = calloc(capacity, sizeof(*recorder->events));
    recorder->times = calloc(capacity, sizeof(*recorder->times));
    recorder->count = 0;
    recorder->capacity = capacity;
}

static inline void recorder_free(struct recorder *recorder)
{
    free(recorder->events);
    free(recorder->times);
}

static inline uint32_t recorder_count_type(const struct recorder *recorder, uint8_t type)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < recorder->count; i++)
        n += recorder->events[i].type == type;
    return n;
}

static inline struct rush_shard_limits small_limits(void)
{
    return (struct rush_shard_limits){.skus_max = 64,
                                      .orders_max = 4096,
                                      .groups_max = 1024,
                                      .keys_max = 8192,
                                      .user_limits_max = 4096,
                                      .events_buffer_max = 1024};
}

static inline struct rush_shard *shard_new(struct rush_shard_limits limits, uint64_t seed,
                                           struct recorder *recorder)
{
    struct rush_shard_config config = {.index = 0,
                                       .limits = limits,
                                       .seed = seed,
                                       .start_ns = T0_NS,
                                       .sink = recorder ? recorder_sink : NULL,
                                       .sink_context = recorder};
    struct rush_shard *shard = NULL;
    if (rush_shard_create(&config, &shard) != 0)
        abort();
    return shard;
}

static inline struct rush_sku sku_solo(uint64_t id, int64_t stock)
{
    return (struct rush_sku){.id = id,
                             .name = "item",
                             .stock = stock,
                             .price_fen = 100,
                             .start_ns = T0_NS,
                             .end_ns = INT64_MAX,
                             .pay_ttl_ns = 15 * 60 * SECOND,
                             .order_qty_max = 5,
                             .user_qty_max = 5};
}

static inline struct rush_sku sku_group(uint64_t id, int64_t stock, uint32_t size)
{
    struct rush_sku sku = sku_solo(id, stock);
    sku.group_size = size;
    sku.group_ttl_ns = 10 * 60 * SECOND;
    sku.groups_open_max = 100;
    sku.pay_ttl_ns = 0;
    return sku;
}

static inline rush_key key_of(uint64_t n)
{
    rush_key key = {{0}};
    memcpy(key.bytes, &n, sizeof(n));
    key.bytes[15] = 0x5a;
    return key;
}

static inline struct rush_request request_of(uint8_t op, uint64_t sku, uint64_t user, uint32_t qty,
                                             uint64_t target, uint64_t key)
{
    return (struct rush_request){.op = op,
                                 .sku_id = sku,
                                 .user_id = user,
                                 .qty = qty,
                                 .target_id = target,
                                 .key = key_of(key)};
}

/* Decides one request in a batch of its own at `now`. */
static inline struct rush_result decide_at(struct rush_shard *shard, int64_t now,
                                           struct rush_request request)
{
    struct rush_result result;
    rush_shard_begin(shard, now);
    rush_shard_decide(shard, &request, &result);
    rush_shard_end(shard);
    return result;
}

static inline struct rush_result put_at(struct rush_shard *shard, int64_t now, struct rush_sku sku)
{
    struct rush_result result;
    rush_shard_begin(shard, now);
    rush_shard_sku_put(shard, &sku, &result);
    rush_shard_end(shard);
    return result;
}

#endif
