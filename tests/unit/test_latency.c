/* proto/base/latency.c: the operators' histogram — buckets at their bounds, quantiles, sums. */
#include <criterion/criterion.h>

#include "base/latency.h"

Test(latency, records_fall_in_the_bucket_of_their_upper_bound)
{
    static struct rush_latency h;
    rush_latency_record(&h, 0);
    rush_latency_record(&h, 1000);                  /* le 1 us */
    rush_latency_record(&h, 1001);                  /* le 2 us */
    rush_latency_record(&h, 10000);                 /* le 10 us */
    rush_latency_record(&h, UINT64_C(20000000000)); /* beyond 10 s: +Inf */
    struct rush_latency_figures f;
    rush_latency_read(&h, &f);
    cr_assert_eq(f.count, 5);
    cr_assert_eq(f.bucket_count[0], 2);
    cr_assert_eq(f.bucket_count[1], 1);
    cr_assert_eq(f.bucket_count[3], 1);
    cr_assert_eq(f.bucket_count[RUSH_LATENCY_BOUNDS], 1);
    cr_assert_eq(f.sum_ns, UINT64_C(20000012001));
    for (uint32_t b = 1; b < RUSH_LATENCY_BOUNDS; b++)
        cr_assert_gt(rush_latency_bound_ns(b), rush_latency_bound_ns(b - 1));
    cr_assert_eq(rush_latency_bound_ns(RUSH_LATENCY_BOUNDS - 1), UINT64_C(10000000000));
}

Test(latency, quantiles_interpolate_inside_their_bucket)
{
    static struct rush_latency h;
    struct rush_latency_figures f;
    rush_latency_read(&h, &f);
    cr_assert_eq(rush_latency_quantile_ns(&f, 0.5), 0, "empty: 0");
    for (int i = 0; i < 100; i++) /* all in (50 us, 100 us] */
        rush_latency_record(&h, 60000 + (uint64_t)i * 100);
    rush_latency_read(&h, &f);
    uint64_t p50 = rush_latency_quantile_ns(&f, 0.5), p99 = rush_latency_quantile_ns(&f, 0.99);
    cr_assert(p50 > 50000 && p50 <= 100000, "p50 %llu", (unsigned long long)p50);
    cr_assert(p99 >= p50 && p99 <= 100000, "p99 %llu", (unsigned long long)p99);
    rush_latency_record(&h, UINT64_C(50000000000));
    rush_latency_read(&h, &f);
    cr_assert_eq(rush_latency_quantile_ns(&f, 0.999), UINT64_C(10000000000),
                 "+Inf: the last bound");
}

Test(latency, shards_add_up)
{
    static struct rush_latency a, b;
    rush_latency_record(&a, 1500);
    rush_latency_record(&b, 1500);
    rush_latency_record(&b, 3000000);
    struct rush_latency_figures fa, fb;
    rush_latency_read(&a, &fa);
    rush_latency_read(&b, &fb);
    rush_latency_add(&fa, &fb);
    cr_assert_eq(fa.count, 3);
    cr_assert_eq(fa.bucket_count[1], 2);
    cr_assert_eq(fa.sum_ns, 3003000);
}
