/*
 * drive.h — small helpers for the programs that drive the engine with made-up crowds
 * (rush-demo, bench-engine, stress_engine): a seeded xorshift64 generator, a key made from a
 * number, and a monotonic clock in seconds. Header-only; not part of the public API.
 */
#ifndef RUSH_DRIVE_H
#define RUSH_DRIVE_H

#include <stdint.h>
#include <string.h>
#include <time.h>

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

static inline double rush_drive_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
