/*
 * drive.h — small helpers for the programs that drive the engine with made-up crowds
 * (rush-demo, the benchmarks, the stress programs): a seeded xorshift64 generator, a key made from
 * a number, and a monotonic clock in seconds. Header-only; not part of the public API.
 */
#ifndef RUSH_DRIVE_H
#define RUSH_DRIVE_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "rush/assert.h"
#include "rush/engine.h"
#include "rush/types.h"

/* xorshift64: fast, seeded, reproducible; the state must start non-zero. */
static inline uint64_t rush_drive_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* A distinct non-zero idempotency key for each (n, salt); salt keeps programs' keys apart. */
static inline rush_key rush_drive_key(uint64_t n, uint8_t salt)
{
    rush_key key = {{0}};
    memcpy(key.bytes, &n, sizeof(n));
    key.bytes[15] = salt | 0x80;
    return key;
}

/*
 * Puts SKUs 1..count: unlimited, price 100 fen, one per buyer, pay TTL 0 (a reserve is the
 * confirmed order, so every won reserve is also a stream event). Asserts each is accepted.
 */
static inline void rush_drive_put_instant_skus(struct rush_engine *engine, uint64_t count)
{
    for (uint64_t id = 1; id <= count; id++) {
        struct rush_sku sku = {.id = id,
                               .name = "instant",
                               .price_fen = 100,
                               .end_ns = INT64_MAX,
                               .order_qty_max = 1,
                               .user_qty_max = 1,
                               .unlimited = 1};
        struct rush_result result;
        int rc = rush_engine_sku_put(engine, &sku, &result);
        RUSH_ASSERT(rc == 0 && result.outcome == RUSH_OK);
    }
}

#endif
