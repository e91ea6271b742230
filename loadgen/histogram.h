/*
 * histogram.h — a log-linear latency histogram: fixed memory, O(1) record, ~1.6% precision.
 *
 * What it is for. rush-loadgen and the side-by-side benchmark record one latency per request
 * (millions per second) and report p50 / p90 / p99 / p99.9 / max. Keeping every sample would cost
 * gigabytes; a log-linear histogram keeps a count per bucket instead. Values below
 * 2^RUSH_HISTOGRAM_SUB_BITS are exact; above, each power of two [2^k, 2^(k+1)) is split into
 * 2^RUSH_HISTOGRAM_SUB_BITS equal buckets, so a bucket is at most 1/64 of its values wide. The
 * reported percentile is the upper edge of its bucket (never below the true value); max is exact.
 *
 * Limits: values up to 2^RUSH_HISTOGRAM_BITS_MAX - 1 (about 18 minutes in nanoseconds); larger
 * values are counted in the last bucket (and in max, exactly). 2,304 buckets: 18 KiB.
 *
 * Thread: a histogram belongs to one thread; merge per-thread histograms for a report.
 */
#ifndef RUSH_HISTOGRAM_H
#define RUSH_HISTOGRAM_H

#include <stdint.h>

#define RUSH_HISTOGRAM_SUB_BITS 6
#define RUSH_HISTOGRAM_BITS_MAX 40
#define RUSH_HISTOGRAM_BUCKETS                                                                     \
    ((RUSH_HISTOGRAM_BITS_MAX - RUSH_HISTOGRAM_SUB_BITS + 2) << RUSH_HISTOGRAM_SUB_BITS)

struct rush_histogram {
    uint64_t counts[RUSH_HISTOGRAM_BUCKETS];
    uint64_t count;
    uint64_t min;
    uint64_t max;
    long double sum;
};

void rush_histogram_reset(struct rush_histogram *histogram);
void rush_histogram_record(struct rush_histogram *histogram, uint64_t value);
/* Adds every count of `from` into `into`. */
void rush_histogram_merge(struct rush_histogram *into, const struct rush_histogram *from);
/*
 * The smallest bucket upper edge at or below which `percent` (0..100) of the values lie, capped
 * at max. 0 for an empty histogram.
 */
uint64_t rush_histogram_percentile(const struct rush_histogram *histogram, double percent);
double rush_histogram_mean(const struct rush_histogram *histogram);

#endif
