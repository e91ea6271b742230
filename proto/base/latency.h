/*
 * latency.h — a fixed-bucket latency histogram that one thread records into and any thread
 * reads, for the operators' figures (/metrics, the dashboard, rushctl top).
 *
 * Workload: a record per engine pass (thousands of decisions), per fdatasync and per message in
 * the front end; a read about once a second per scraper. So recording is a short bounded search
 * over RUSH_LATENCY_BUCKETS bounds and three relaxed atomic adds by the one writer (no locked
 * instruction: the writer loads and stores), and reading is a copy.
 *
 * Buckets: the Prometheus convention, upper bounds 1-2-5 per decade from 1 us to 10 s, then
 * +Inf. bucket_count[b] counts records with latency <= bounds[b] and > bounds[b-1] (not
 * cumulative; the renderer accumulates).
 *
 * Invariants: 1. only one thread records into a histogram; 2. count is the sum of the buckets
 * once the writer is quiet (a reader during writes may see them a record apart).
 */
#ifndef RUSH_LATENCY_H
#define RUSH_LATENCY_H

#include <stdatomic.h>
#include <stdint.h>

#define RUSH_LATENCY_BOUNDS 22                         /* finite upper bounds */
#define RUSH_LATENCY_BUCKETS (RUSH_LATENCY_BOUNDS + 1) /* + the +Inf bucket */

struct rush_latency {
    _Atomic uint64_t bucket_count[RUSH_LATENCY_BUCKETS];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
};

/* A copy for reading. */
struct rush_latency_figures {
    uint64_t bucket_count[RUSH_LATENCY_BUCKETS];
    uint64_t count;
    uint64_t sum_ns;
};

/* The upper bound of bucket b < RUSH_LATENCY_BOUNDS, in ns. */
uint64_t rush_latency_bound_ns(uint32_t b);
/* The writer's: one record. */
void rush_latency_record(struct rush_latency *histogram, uint64_t latency_ns);
/* Any thread: a copy (approximate while the writer is busy). */
void rush_latency_read(const struct rush_latency *histogram, struct rush_latency_figures *out);
/* Adds `from` into `into` (summing shards). */
void rush_latency_add(struct rush_latency_figures *into, const struct rush_latency_figures *from);
/*
 * The q-quantile (0 < q < 1) in ns, interpolated inside its bucket; 0 when empty; the last
 * finite bound when it falls in +Inf.
 */
uint64_t rush_latency_quantile_ns(const struct rush_latency_figures *figures, double q);

#endif
