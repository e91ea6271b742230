/*
 * stress_engine — the multi-shard concurrency test, as a plain program so that it runs under
 * the thread sanitizer (Criterion cannot: its shared arena clashes with TSan's memory layout).
 *
 * Four shards on the real clock, many batches in flight, hot SKUs with small stock, a short pay
 * TTL so idle-tick expiries race confirms and cancels, group joins, and duplicate resubmissions.
 * At the end every shard's invariants are checked on its own thread and the books must balance:
 * per SKU, units sold (from the results) equal confirmed + reserved (from the engine), and never
 * more than the stock. Exit status 0 when all checks pass; prints "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drive.h"
#include "rush/engine.h"
#include "shard/shard.h"

#define SHARDS 4
#define SKUS 16
#define STOCK 300
#define BATCHES 600
#define PER 64
#define GROUP_SKU 900

static uint64_t random_state = 0x9e3779b97f4a7c15;

static rush_key key_of(uint64_t n)
{
    return rush_drive_key(n, 0x01);
}

static int passed, failed;

static void expect(bool condition, const char *what)
{
    if (condition) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAILED: %s\n", what);
    }
}

static struct rush_request requests[BATCHES][PER];
static struct rush_result results[BATCHES][PER];
static struct rush_batch batches[BATCHES];
static uint64_t order_ids[BATCHES * PER];
static uint32_t order_id_count;

/* Fills batch b: mostly reserves on hot SKUs, confirms and cancels of earlier orders, group
 * joins, and resubmissions of earlier requests with their keys. */
static void fill(uint32_t b)
{
    for (uint32_t i = 0; i < PER; i++) {
        uint64_t n = (uint64_t)b * PER + i + 1, roll = rush_drive_random(&random_state) % 100;
        struct rush_request *r = &requests[b][i];
        *r = (struct rush_request){.op = RUSH_OP_RESERVE,
                                   .sku_id = 1 + rush_drive_random(&random_state) % SKUS,
                                   .user_id = rush_drive_random(&random_state) % 5000,
                                   .qty = 1 + (uint32_t)(rush_drive_random(&random_state) % 2),
                                   .key = key_of(n)};
        if (roll < 15 && order_id_count > 0) {
            r->op = roll < 10 ? RUSH_OP_CONFIRM : RUSH_OP_CANCEL;
            r->target_id = order_ids[rush_drive_random(&random_state) % order_id_count];
            r->sku_id = r->user_id = r->qty = 0;
        } else if (roll < 30) {
            r->op = RUSH_OP_GROUP_JOIN_ANY;
            r->sku_id = GROUP_SKU;
            r->qty = 0;
        } else if (roll < 35 && b > 0) {
            *r = requests[rush_drive_random(&random_state) % b]
                         [rush_drive_random(&random_state) % PER]; /* a retry */
        }
    }
}

static void collect(uint32_t b)
{
    for (uint32_t i = 0; i < PER; i++)
        if (results[b][i].outcome == RUSH_OK && requests[b][i].op == RUSH_OP_RESERVE &&
            !(results[b][i].flags & RUSH_RESULT_DUPLICATE))
            order_ids[order_id_count++] = results[b][i].order_id;
}

static void check_shard(struct rush_shard *shard, void *context)
{
    char why[256];
    int *bad = context;
    if (rush_shard_check(shard, why, sizeof(why)) != 0) {
        fprintf(stderr, "invariant: %s\n", why);
        (*bad)++;
    }
}

static void put_catalogue(struct rush_engine *engine)
{
    for (uint64_t id = 1; id <= SKUS + 1; id++) {
        bool group = id == SKUS + 1;
        struct rush_sku sku = {.id = group ? GROUP_SKU : id,
                               .name = "stress",
                               .stock = STOCK,
                               .price_fen = 100,
                               .start_ns = 0,
                               .end_ns = INT64_MAX,
                               .pay_ttl_ns = group ? 0 : 3000000, /* 3 ms: expiries race */
                               .order_qty_max = 2,
                               .user_qty_max = 4,
                               .group_size = group ? 3 : 0,
                               /* the shortest group TTL a SKU may have (sku.c) */
                               .group_ttl_ns = group ? RUSH_GROUP_TTL_NS_MIN : 0,
                               .groups_open_max = group ? 50 : 0};
        struct rush_result result;
        if (rush_engine_sku_put(engine, &sku, &result) != 0 || result.outcome != RUSH_OK)
            abort();
    }
}

static void run_batches(struct rush_engine *engine)
{
    uint32_t submitted = 0, finished = 0;
    while (finished < BATCHES) {
        while (submitted < BATCHES && submitted < finished + 24) {
            fill(submitted);
            batches[submitted] = (struct rush_batch){
                .requests = requests[submitted], .results = results[submitted], .count = PER};
            if (rush_engine_submit(engine, &batches[submitted]) != 0)
                break;
            submitted++;
        }
        struct rush_batch *done[16];
        int count = rush_engine_poll(engine, done, 16, 50);
        for (int d = 0; d < count; d++)
            collect((uint32_t)(done[d] - batches));
        finished += count > 0 ? (uint32_t)count : 0;
    }
}

int main(void)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, SHARDS);
    config.limits.orders_max = 100000;
    config.limits.keys_max = 100000;
    config.limits.user_limits_max = 100000;
    config.limits.groups_max = 20000;
    config.ring_slots = 32;
    config.work_requests_max = 64;
    struct rush_engine *engine = NULL;
    if (rush_engine_create(&config, &engine) != 0 || rush_engine_start(engine) != 0)
        return 2;
    put_catalogue(engine);
    run_batches(engine);

    int bad = 0;
    for (uint32_t s = 0; s < SHARDS; s++)
        rush_engine_inspect(engine, s, check_shard, &bad);
    expect(bad == 0, "every shard's invariants hold");
    for (uint64_t id = 1; id <= SKUS; id++) {
        struct rush_request query = {.op = RUSH_OP_QUERY_SKU, .sku_id = id};
        struct rush_result sku;
        expect(rush_engine_execute(engine, &query, 1, &sku) == 0, "query executes");
        expect(sku.remaining >= 0 && sku.remaining + sku.reserved + sku.confirmed == STOCK,
               "ledger balances: no oversell");
    }
    struct rush_engine_stats stats;
    rush_engine_stats(engine, &stats);
    expect(stats.requests >= BATCHES * PER, "every request was decided");
    expect(stats.duplicates > 0, "retries were answered from their keys");
    expect(stats.outcomes[RUSH_SOLD_OUT] > 0, "the hot SKUs sold out");
    rush_engine_destroy(engine);
    printf("stress_engine: %lu requests, %lu duplicates, %lu sold_out\n", stats.requests,
           stats.duplicates, stats.outcomes[RUSH_SOLD_OUT]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
