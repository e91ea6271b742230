/*
 * latency.c — the operators' latency histogram (latency.h).
 */
#include "latency.h"

#include "rush/assert.h"

static const uint64_t bounds_ns[RUSH_LATENCY_BOUNDS] = {
    1000,      2000,      5000,       10000,      20000,      50000,       100000,   200000,
    500000,    1000000,   2000000,    5000000,    10000000,   20000000,    50000000, 100000000,
    200000000, 500000000, 1000000000, 2000000000, 5000000000, 10000000000,
};

uint64_t rush_latency_bound_ns(uint32_t b)
{
    RUSH_ASSERT(b < RUSH_LATENCY_BOUNDS);
    return bounds_ns[b];
}

static void add_relaxed(_Atomic uint64_t *counter, uint64_t n)
{
    /* one writer (invariant 1): a plain load and store, no locked instruction */
    uint64_t value = atomic_load_explicit(counter, memory_order_relaxed);
    atomic_store_explicit(counter, value + n, memory_order_relaxed);
}

void rush_latency_record(struct rush_latency *histogram, uint64_t latency_ns)
{
    uint32_t b = 0;
    while (b < RUSH_LATENCY_BOUNDS && latency_ns > bounds_ns[b])
        b++;
    add_relaxed(&histogram->bucket_count[b], 1);
    add_relaxed(&histogram->count, 1);
    add_relaxed(&histogram->sum_ns, latency_ns);
}

void rush_latency_read(const struct rush_latency *histogram, struct rush_latency_figures *out)
{
    for (uint32_t b = 0; b < RUSH_LATENCY_BUCKETS; b++)
        out->bucket_count[b] =
            atomic_load_explicit(&histogram->bucket_count[b], memory_order_relaxed);
    out->count = atomic_load_explicit(&histogram->count, memory_order_relaxed);
    out->sum_ns = atomic_load_explicit(&histogram->sum_ns, memory_order_relaxed);
}

void rush_latency_add(struct rush_latency_figures *into, const struct rush_latency_figures *from)
{
    for (uint32_t b = 0; b < RUSH_LATENCY_BUCKETS; b++)
        into->bucket_count[b] += from->bucket_count[b];
    into->count += from->count;
    into->sum_ns += from->sum_ns;
}

uint64_t rush_latency_quantile_ns(const struct rush_latency_figures *figures, double q)
{
    RUSH_ASSERT(q > 0 && q < 1);
    uint64_t total = 0;
    for (uint32_t b = 0; b < RUSH_LATENCY_BUCKETS; b++)
        total += figures->bucket_count[b];
    if (total == 0)
        return 0;
    double rank = q * (double)total, below = 0;
    for (uint32_t b = 0; b < RUSH_LATENCY_BOUNDS; b++) {
        double here = (double)figures->bucket_count[b];
        if (below + here >= rank && here > 0) {
            double low = b == 0 ? 0 : (double)bounds_ns[b - 1];
            return (uint64_t)(low + ((double)bounds_ns[b] - low) * (rank - below) / here);
        }
        below += here;
    }
    return bounds_ns[RUSH_LATENCY_BOUNDS - 1];
}
