/*
 * clock.h — the one way rush reads a clock.
 *
 * Two clocks, two jobs:
 *   monotonic  elapsed time: timeouts, flush intervals, rates, benchmarks. Never steps.
 *   wall       the time of day (CLOCK_REALTIME): log timestamps, the engine's sale clock (SKU
 *              windows are wall-clock nanoseconds since the Unix epoch), seeds.
 * Units are in the name (_ns, _ms, _seconds); nanoseconds fit an int64_t until 2262.
 *
 * Invariants: clock_gettime on these clocks cannot fail on Linux; a failure is a broken system
 * and stops the process (RUSH_ASSERT) instead of returning a time that is not one.
 *
 * Threads: any; no state. Header-only so that librush, the engine, tools, tests and benchmarks
 * all share it without a link dependency.
 */
#ifndef RUSH_CLOCK_H
#define RUSH_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "rush/assert.h"

#define RUSH_CLOCK_NS_PER_S INT64_C(1000000000)
#define RUSH_CLOCK_NS_PER_MS INT64_C(1000000)

static inline int64_t rush_clock_read_ns(clockid_t clock)
{
    struct timespec now;
    int rc = clock_gettime(clock, &now);
    RUSH_ASSERT(rc == 0);
    return (int64_t)now.tv_sec * RUSH_CLOCK_NS_PER_S + now.tv_nsec;
}

/* Nanoseconds on the monotonic clock (since an unspecified start, typically boot). */
static inline int64_t rush_clock_monotonic_ns(void)
{
    return rush_clock_read_ns(CLOCK_MONOTONIC);
}

/* Milliseconds on the monotonic clock. */
static inline int64_t rush_clock_monotonic_ms(void)
{
    return rush_clock_monotonic_ns() / RUSH_CLOCK_NS_PER_MS;
}

/* Seconds on the monotonic clock, as a double: for rates and benchmark figures. */
static inline double rush_clock_monotonic_seconds(void)
{
    return (double)rush_clock_monotonic_ns() / 1e9;
}

/* Nanoseconds since the Unix epoch on the wall clock (may step). */
static inline int64_t rush_clock_wall_ns(void)
{
    return rush_clock_read_ns(CLOCK_REALTIME);
}

#endif
