/*
 * test_histogram.c — the log-linear histogram: exact small values, bounded relative error, merge.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "histogram.h"

static struct rush_histogram histogram;

static int compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

Test(histogram, empty_reports_zero)
{
    rush_histogram_reset(&histogram);
    cr_assert_eq(rush_histogram_percentile(&histogram, 99.0), 0);
    cr_assert_eq(histogram.count, 0);
}

Test(histogram, small_values_are_exact)
{
    rush_histogram_reset(&histogram);
    for (uint64_t v = 1; v <= 60; v++)
        rush_histogram_record(&histogram, v);
    cr_assert_eq(rush_histogram_percentile(&histogram, 50.0), 30);
    cr_assert_eq(rush_histogram_percentile(&histogram, 100.0), 60);
    cr_assert_eq(histogram.min, 1);
}

Test(histogram, percentiles_within_precision_of_sorted_samples)
{
    enum { N = 100000 };
    static uint64_t samples[N];
    rush_histogram_reset(&histogram);
    srandom(7);
    for (int i = 0; i < N; i++) {
        samples[i] = (uint64_t)random() % 50000000u; /* up to 50 ms in ns */
        rush_histogram_record(&histogram, samples[i]);
    }
    qsort(samples, N, sizeof(samples[0]), compare);
    const double percents[] = {50.0, 90.0, 99.0, 99.9};
    for (size_t i = 0; i < sizeof(percents) / sizeof(percents[0]); i++) {
        uint64_t exact = samples[(size_t)(percents[i] / 100.0 * N) - 1];
        uint64_t got = rush_histogram_percentile(&histogram, percents[i]);
        cr_assert_geq(got, exact, "p%.1f: %lu below the true %lu", percents[i], got, exact);
        cr_assert_leq((double)got, (double)exact * 1.0313 + 1, "p%.1f: %lu vs %lu", percents[i],
                      got, exact);
    }
    cr_assert_eq(rush_histogram_percentile(&histogram, 100.0), samples[N - 1], "max is exact");
}

Test(histogram, huge_values_land_in_the_last_bucket_and_max_stays_exact)
{
    rush_histogram_reset(&histogram);
    rush_histogram_record(&histogram, UINT64_MAX - 5);
    rush_histogram_record(&histogram, 3);
    cr_assert_eq(histogram.max, UINT64_MAX - 5);
    cr_assert_eq(rush_histogram_percentile(&histogram, 100.0), UINT64_MAX - 5);
    cr_assert_eq(rush_histogram_percentile(&histogram, 50.0), 3);
}

Test(histogram, merge_adds_counts)
{
    static struct rush_histogram other;
    rush_histogram_reset(&histogram);
    rush_histogram_reset(&other);
    for (uint64_t v = 0; v < 1000; v++)
        rush_histogram_record(v % 2 ? &histogram : &other, v * 1000);
    rush_histogram_merge(&histogram, &other);
    cr_assert_eq(histogram.count, 1000);
    cr_assert_eq(histogram.min, 0);
    cr_assert_eq(histogram.max, 999000);
    uint64_t median = rush_histogram_percentile(&histogram, 50.0);
    cr_assert(median >= 499000 && median <= 499000 * 1.016 + 1, "median %lu", median);
}
