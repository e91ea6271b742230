/*
 * The threaded engine: routing, batches split across shards and gathered back in order, several
 * batches in flight, full rings, idle timer passes, and determinism across hash seeds. Runs
 * under the thread sanitizer in CI.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>

#include "support.h"

static _Atomic int64_t manual_now = T0_NS;

static int64_t manual_clock(void *context)
{
    (void)context;
    return atomic_load(&manual_now);
}

/* One recorder per shard: each is written only by its shard's thread. */
static struct recorder recorders[RUSH_SHARDS_MAX];

static void per_shard_sink(void *context, uint32_t shard_index, int64_t time_ns,
                           const struct rush_event *events, uint32_t count)
{
    (void)context;
    recorder_sink(&recorders[shard_index], shard_index, time_ns, events, count);
}

static struct rush_engine *engine_new(uint32_t shards, uint64_t seed, bool record)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, shards);
    config.limits = small_limits();
    config.limits.orders_max = 200000;
    config.limits.keys_max = 400000;
    config.limits.user_limits_max = 200000;
    config.ring_slots = 16;
    config.work_requests_max = 256;
    config.seed = seed;
    config.clock = manual_clock;
    if (record) {
        config.sink = per_shard_sink;
        for (uint32_t s = 0; s < shards; s++)
            recorder_init(&recorders[s], 1 << 20);
    }
    struct rush_engine *engine = NULL;
    cr_assert_eq(rush_engine_create(&config, &engine), 0);
    cr_assert_eq(rush_engine_start(engine), 0);
    return engine;
}

static void put_skus(struct rush_engine *engine, uint64_t first, uint32_t count, int64_t stock)
{
    for (uint32_t i = 0; i < count; i++) {
        struct rush_result result;
        cr_assert_eq(rush_engine_sku_put(engine, &(struct rush_sku){0}, &result), 0);
        cr_assert_eq(result.outcome, RUSH_INVALID, "an empty definition is refused");
        struct rush_sku sku = sku_solo(first + i, stock);
        sku.user_qty_max = 1000;
        cr_assert_eq(rush_engine_sku_put(engine, &sku, &result), 0);
        cr_assert_eq(result.outcome, RUSH_OK);
    }
}

static void check_shard(struct rush_shard *shard, void *context)
{
    int *failures = context;
    char why[256];
    if (rush_shard_check(shard, why, sizeof(why)) != 0) {
        (*failures)++;
        cr_log_error("%s", why);
    }
}

static void check_all(struct rush_engine *engine)
{
    int failures = 0;
    for (uint32_t s = 0; s < rush_engine_shard_count(engine); s++)
        rush_engine_inspect(engine, s, check_shard, &failures);
    cr_assert_eq(failures, 0);
}

Test(engine, routing_is_stable_and_spreads_skus)
{
    uint32_t counts[4] = {0};
    for (uint64_t sku = 1; sku <= 10000; sku++) {
        uint32_t s = rush_engine_shard_of_sku(4, sku);
        cr_assert_eq(s, rush_engine_shard_of_sku(4, sku));
        counts[s]++;
    }
    for (int s = 0; s < 4; s++)
        cr_assert(counts[s] > 2000 && counts[s] < 3000, "shard %d has %u of 10000", s, counts[s]);
    struct rush_request confirm = {.op = RUSH_OP_CONFIRM,
                                   .target_id = (UINT64_C(3) << RUSH_ID_SHARD_SHIFT) | 9};
    cr_assert_eq(rush_engine_shard_of(4, &confirm), 3);
    confirm.target_id = (UINT64_C(200) << RUSH_ID_SHARD_SHIFT) | 9;
    cr_assert_eq(rush_engine_shard_of(4, &confirm), 0, "a bogus shard goes to shard 0");
}

Test(engine, configuration_is_checked)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, 0);
    char why[128];
    cr_assert_eq(rush_engine_config_check(&config, why, sizeof(why)), RUSH_ECONFIG);
    cr_assert_str_eq(why, "shard_count must be 1..64");
    rush_engine_config_default(&config, 2);
    config.ring_slots = 48;
    cr_assert_eq(rush_engine_config_check(&config, why, sizeof(why)), RUSH_ECONFIG);
    struct rush_engine *engine = NULL;
    cr_assert_eq(rush_engine_create(&config, &engine), RUSH_ECONFIG);
}

Test(engine, a_batch_across_shards_comes_back_in_request_order)
{
    struct rush_engine *engine = engine_new(4, 1, false);
    put_skus(engine, 1, 64, 100);
    enum { N = 20000 };
    struct rush_request *requests = calloc(N, sizeof(*requests));
    struct rush_result *results = calloc(N, sizeof(*results));
    uint32_t demand[65] = {0};
    for (uint32_t i = 0; i < N; i++) {
        uint64_t sku = 1 + (i * 7919u) % 64;
        requests[i] = request_of(RUSH_OP_RESERVE, sku, i, 1, 0, i + 1);
        requests[i].tag = i;
        demand[sku]++;
    }
    cr_assert_eq(rush_engine_execute(engine, requests, N, results), 0);
    uint32_t ok[65] = {0};
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_eq(results[i].tag, i, "result %u is in its request's place", i);
        if (results[i].outcome == RUSH_OK) {
            ok[requests[i].sku_id]++;
            uint32_t shard = rush_engine_shard_of_sku(4, requests[i].sku_id);
            cr_assert_eq(rush_id_shard(results[i].order_id), shard);
        } else {
            cr_assert_eq(results[i].outcome, RUSH_SOLD_OUT);
        }
    }
    for (uint64_t sku = 1; sku <= 64; sku++)
        cr_assert_eq(ok[sku], demand[sku] < 100 ? demand[sku] : 100, "sku %lu", sku);
    check_all(engine);
    rush_engine_destroy(engine);
    free(requests);
    free(results);
}

Test(engine, many_batches_in_flight_on_a_hot_sku_never_oversell)
{
    struct rush_engine *engine = engine_new(2, 2, false);
    put_skus(engine, 1001, 1, 500);
    enum { BATCHES = 40, PER = 100 };
    static struct rush_request requests[BATCHES][PER];
    static struct rush_result results[BATCHES][PER];
    static struct rush_batch batches[BATCHES];
    uint32_t submitted = 0, finished = 0;
    while (finished < BATCHES) {
        while (submitted < BATCHES) {
            for (uint32_t i = 0; i < PER; i++)
                requests[submitted][i] = request_of(RUSH_OP_RESERVE, 1001, submitted * PER + i, 1,
                                                    0, submitted * PER + i + 1);
            batches[submitted] = (struct rush_batch){
                .requests = requests[submitted], .results = results[submitted], .count = PER};
            int rc = rush_engine_submit(engine, &batches[submitted]);
            if (rc == RUSH_EFULL)
                break;
            cr_assert_eq(rc, 0);
            submitted++;
        }
        struct rush_batch *done[8];
        int count = rush_engine_poll(engine, done, 8, 100);
        cr_assert_geq(count, 0);
        finished += (uint32_t)count;
    }
    uint32_t ok = 0;
    for (uint32_t b = 0; b < BATCHES; b++)
        for (uint32_t i = 0; i < PER; i++)
            ok += results[b][i].outcome == RUSH_OK;
    cr_assert_eq(ok, 500, "exactly the stock is sold");
    struct rush_request query = request_of(RUSH_OP_QUERY_SKU, 1001, 0, 0, 0, 0);
    struct rush_result sku;
    cr_assert_eq(rush_engine_execute(engine, &query, 1, &sku), 0);
    cr_assert_eq(sku.remaining, 0);
    cr_assert_eq(sku.reserved, 500);
    check_all(engine);
    struct rush_engine_stats stats;
    rush_engine_stats(engine, &stats);
    cr_assert_eq(stats.outcomes[RUSH_OK], 500 + 1, "the reserves and the query");
    cr_assert_eq(stats.outcomes[RUSH_SOLD_OUT], BATCHES * PER - 500);
    rush_engine_destroy(engine);
}

Test(engine, a_full_ring_refuses_the_whole_batch)
{
    struct rush_engine *engine = engine_new(1, 3, false);
    put_skus(engine, 1, 1, 100000);
    enum { PER = 256 * 16 }; /* exactly one shard's whole pool */
    static struct rush_request requests[PER];
    static struct rush_result results[PER], more_results[1];
    for (uint32_t i = 0; i < PER; i++)
        requests[i] = request_of(RUSH_OP_RESERVE, 1, i, 1, 0, i + 1);
    struct rush_batch batch = {.requests = requests, .results = results, .count = PER};
    cr_assert_eq(rush_engine_submit(engine, &batch), 0);
    struct rush_request one = request_of(RUSH_OP_RESERVE, 1, 99999, 1, 0, 99999);
    struct rush_batch more = {.requests = &one, .results = more_results, .count = 1};
    cr_assert_eq(rush_engine_submit(engine, &more), RUSH_EFULL);
    struct rush_batch *done;
    while (rush_engine_poll(engine, &done, 1, 100) != 1)
        ;
    cr_assert_eq(done, &batch);
    cr_assert_eq(rush_engine_submit(engine, &more), 0, "room again once the pool is back");
    while (rush_engine_poll(engine, &done, 1, 100) != 1)
        ;
    cr_assert_eq(more_results[0].outcome, RUSH_OK);
    rush_engine_destroy(engine);
}

struct expired_count {
    uint32_t shard;
    uint32_t expired;
};

/* Runs on the shard's thread, so reading its recorder is ordered after its writes. */
static void count_expired(struct rush_shard *shard, void *context)
{
    (void)shard;
    struct expired_count *count = context;
    count->expired = recorder_count_type(&recorders[count->shard], RUSH_EV_ORDER_EXPIRED);
}

Test(engine, confirm_finds_the_orders_shard_and_idle_ticks_fire_timers)
{
    atomic_store(&manual_now, T0_NS);
    struct rush_engine *engine = engine_new(4, 4, true);
    put_skus(engine, 1, 8, 10);
    struct rush_request reserve[8];
    struct rush_result reserved[8];
    for (uint32_t i = 0; i < 8; i++)
        reserve[i] = request_of(RUSH_OP_RESERVE, 1 + i, 5, 1, 0, 100 + i);
    cr_assert_eq(rush_engine_execute(engine, reserve, 8, reserved), 0);
    struct rush_request confirm = request_of(RUSH_OP_CONFIRM, 0, 0, 0, reserved[3].order_id, 200);
    struct rush_result confirmed;
    cr_assert_eq(rush_engine_execute(engine, &confirm, 1, &confirmed), 0);
    cr_assert_eq(confirmed.outcome, RUSH_OK);
    /* Past every pay TTL: with no traffic at all, the idle ticks expire the other seven. */
    atomic_store(&manual_now, T0_NS + 16 * 60 * SECOND);
    uint32_t expired = 0;
    for (int tries = 0; tries < 500 && expired < 7; tries++) {
        struct rush_batch *done;
        cr_assert_geq(rush_engine_poll(engine, &done, 1, 10), 0);
        expired = 0;
        for (uint32_t s = 0; s < 4; s++) {
            struct expired_count count = {.shard = s};
            rush_engine_inspect(engine, s, count_expired, &count);
            expired += count.expired;
        }
    }
    cr_assert_eq(expired, 7);
    rush_engine_destroy(engine);
    for (uint32_t s = 0; s < 4; s++)
        recorder_free(&recorders[s]);
}

static void digest_of(struct rush_shard *shard, void *context)
{
    *(uint64_t *)context = rush_shard_digest(shard);
}

/* Runs a fixed mixed workload with the engine clock stepping; returns per-shard digests. */
static void run_fixed_workload(uint64_t seed, uint64_t digests[2], struct recorder copies[2])
{
    atomic_store(&manual_now, T0_NS);
    struct rush_engine *engine = engine_new(2, seed, true);
    put_skus(engine, 1, 6, 30);
    struct rush_sku group = sku_group(50, 40, 3);
    struct rush_result result;
    cr_assert_eq(rush_engine_sku_put(engine, &group, &result), 0);
    enum { N = 600 };
    struct rush_request requests[N];
    struct rush_result results[N];
    for (uint32_t i = 0; i < N; i++) {
        uint8_t op = i % 5 == 0 ? RUSH_OP_GROUP_JOIN_ANY : RUSH_OP_RESERVE;
        uint64_t sku = op == RUSH_OP_RESERVE ? 1 + (i * 31u) % 6 : 50;
        requests[i] = request_of(op, sku, i % 97, 1 + i % 2, 0, 1 + i % 450); /* dup keys */
    }
    for (uint32_t step = 0; step < 6; step++) {
        atomic_store(&manual_now, T0_NS + step * 5 * 60 * SECOND); /* timers fire in between */
        cr_assert_eq(rush_engine_execute(engine, requests + step * 100, 100, results + step * 100),
                     0);
    }
    for (uint32_t s = 0; s < 2; s++)
        rush_engine_inspect(engine, s, digest_of, &digests[s]);
    rush_engine_destroy(engine);
    for (uint32_t s = 0; s < 2; s++)
        copies[s] = recorders[s];
}

Test(engine, same_inputs_same_events_and_state_whatever_the_hash_seed)
{
    uint64_t first[2], second[2];
    struct recorder a[2], b[2];
    run_fixed_workload(11, first, a);
    run_fixed_workload(987654321, second, b);
    for (uint32_t s = 0; s < 2; s++) {
        cr_assert_gt(a[s].count, 100, "shard %u logged events", s);
        cr_assert_eq(a[s].count, b[s].count, "shard %u event count", s);
        cr_assert_eq(memcmp(a[s].events, b[s].events, a[s].count * sizeof(*a[s].events)), 0,
                     "shard %u events differ", s);
        cr_assert_eq(memcmp(a[s].times, b[s].times, a[s].count * sizeof(*a[s].times)), 0);
        cr_assert_eq(first[s], second[s], "shard %u state digest differs", s);
        recorder_free(&a[s]);
        recorder_free(&b[s]);
    }
}
