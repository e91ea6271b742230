/*
 * histogram.c — see histogram.h for the bucket layout and its precision.
 */
#include "histogram.h"

#include <string.h>

#include "rush/assert.h"

#define SUB_COUNT (UINT64_C(1) << RUSH_HISTOGRAM_SUB_BITS)

/* Bucket of a value: values < SUB_COUNT are their own bucket; above, (octave, top bits). */
static uint32_t bucket_of(uint64_t value)
{
    if (value < SUB_COUNT)
        return (uint32_t)value;
    uint32_t octave = 63u - (uint32_t)__builtin_clzll(value); /* >= SUB_BITS */
    if (octave >= RUSH_HISTOGRAM_BITS_MAX)
        return RUSH_HISTOGRAM_BUCKETS - 1;
    uint32_t sub = (uint32_t)(value >> (octave - RUSH_HISTOGRAM_SUB_BITS)) & (SUB_COUNT - 1);
    return ((octave - RUSH_HISTOGRAM_SUB_BITS + 1) << RUSH_HISTOGRAM_SUB_BITS) + sub;
}

/* The largest value that falls in `bucket`. */
static uint64_t bucket_upper(uint32_t bucket)
{
    if (bucket < SUB_COUNT)
        return bucket;
    if (bucket == RUSH_HISTOGRAM_BUCKETS - 1)
        return UINT64_MAX; /* the overflow bucket */
    uint32_t octave = (bucket >> RUSH_HISTOGRAM_SUB_BITS) + RUSH_HISTOGRAM_SUB_BITS - 1;
    uint64_t sub = bucket & (SUB_COUNT - 1);
    uint32_t shift = octave - RUSH_HISTOGRAM_SUB_BITS;
    return ((SUB_COUNT + sub + 1) << shift) - 1;
}

void rush_histogram_reset(struct rush_histogram *histogram)
{
    memset(histogram, 0, sizeof(*histogram));
    histogram->min = UINT64_MAX;
}

void rush_histogram_record(struct rush_histogram *histogram, uint64_t value)
{
    histogram->counts[bucket_of(value)]++;
    histogram->count++;
    histogram->sum += (long double)value;
    if (value < histogram->min)
        histogram->min = value;
    if (value > histogram->max)
        histogram->max = value;
}

void rush_histogram_merge(struct rush_histogram *into, const struct rush_histogram *from)
{
    for (uint32_t i = 0; i < RUSH_HISTOGRAM_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t rush_histogram_percentile(const struct rush_histogram *histogram, double percent)
{
    RUSH_ASSERT(percent >= 0.0 && percent <= 100.0);
    if (histogram->count == 0)
        return 0;
    uint64_t rank = (uint64_t)((percent / 100.0) * (double)histogram->count + 0.5);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < RUSH_HISTOGRAM_BUCKETS; i++) {
        seen += histogram->counts[i];
        if (seen >= rank) {
            uint64_t upper = bucket_upper(i);
            return upper < histogram->max ? upper : histogram->max;
        }
    }
    return histogram->max;
}

double rush_histogram_mean(const struct rush_histogram *histogram)
{
    return histogram->count ? (double)(histogram->sum / (long double)histogram->count) : 0.0;
}
