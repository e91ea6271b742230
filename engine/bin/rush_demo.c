/*
 * rush-demo — a Double-11 midnight rush through the engine, in one process, and its books.
 *
 * Loads the campaign (the built-in Double-11 sample unless --config FILE), starts the engine with
 * its write-ahead log in a fresh data directory, and replays a midnight: a crowd of buyers
 * hitting the RMB-1 items at once (a tenth of them clicking twice), payments for most winners
 * and cancellations for some, and a group-buy crowd joining groups. Then it prints what
 * happened per SKU and checks the books: no SKU oversold, every retry answered with its
 * original result, every shard's invariants intact. Exit status 0 only when all hold.
 *
 * Usage: rush-demo [--config FILE] [--data-dir DIR] [--buyers N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/number.h"
#include "campaign/campaign.h"
#include "drive.h"
#include "rush/engine.h"
#include "shard/shard.h"

#define BATCH 4096

static uint64_t random_state = 0x853c49e6748fea9b;

static rush_key key_of(uint64_t n)
{
    return rush_drive_key(n, 0x51);
}

struct demo {
    struct rush_engine *engine;
    const struct rush_campaign *campaign;
    uint64_t hot[16], groups[16];
    uint32_t hot_count, group_count;
    uint64_t requests, duplicates_checked, mismatches;
    double busy_seconds;
};

static void run(struct demo *demo, struct rush_request *requests, struct rush_result *results,
                uint32_t count)
{
    double start = rush_clock_monotonic_seconds();
    int rc = rush_engine_execute(demo->engine, requests, count, results);
    demo->busy_seconds += rush_clock_monotonic_seconds() - start;
    demo->requests += count;
    if (rc != 0) {
        fprintf(stderr, "rush-demo: the engine refused the batch: %s\n", rush_strerror(rc));
        exit(1);
    }
}

/* The midnight burst: every buyer clicks once on a hot item; one in ten clicks twice. */
static uint32_t midnight(struct demo *demo, uint32_t buyers, struct rush_request *requests,
                         struct rush_result *results)
{
    uint32_t n = 0;
    for (uint32_t buyer = 1; buyer <= buyers; buyer++) {
        uint64_t sku = demo->hot[rush_drive_random(&random_state) % demo->hot_count];
        requests[n++] = (struct rush_request){
            .op = RUSH_OP_RESERVE, .sku_id = sku, .user_id = buyer, .qty = 1, .key = key_of(buyer)};
        if (rush_drive_random(&random_state) % 10 == 0) { /* the impatient second click, same key */
            requests[n] = requests[n - 1];
            n++;
        }
    }
    for (uint32_t offset = 0; offset < n; offset += BATCH)
        run(demo, requests + offset, results + offset, n - offset < BATCH ? n - offset : BATCH);
    for (uint32_t i = 1; i < n; i++) { /* a second click answers exactly the first */
        if (memcmp(&requests[i].key, &requests[i - 1].key, sizeof(rush_key)) != 0)
            continue;
        demo->duplicates_checked++;
        bool same = results[i].outcome == results[i - 1].outcome &&
                    results[i].order_id == results[i - 1].order_id &&
                    (results[i].flags & RUSH_RESULT_DUPLICATE);
        demo->mismatches += !same;
    }
    return n;
}

/* Payments: 70% of the winners pay, 10% cancel, the rest leave it to the pay TTL. */
static void pay_or_cancel(struct demo *demo, const struct rush_request *burst,
                          const struct rush_result *won, uint32_t n, struct rush_request *requests,
                          struct rush_result *results)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (won[i].outcome != RUSH_OK || (won[i].flags & RUSH_RESULT_DUPLICATE))
            continue;
        uint64_t roll = rush_drive_random(&random_state) % 10;
        if (roll >= 8)
            continue;
        requests[m++] = (struct rush_request){.op = roll < 7 ? RUSH_OP_CONFIRM : RUSH_OP_CANCEL,
                                              .target_id = won[i].order_id,
                                              .key = key_of(burst[i].user_id | (1ull << 40))};
    }
    for (uint32_t offset = 0; offset < m; offset += BATCH)
        run(demo, requests + offset, results + offset, m - offset < BATCH ? m - offset : BATCH);
}

static void group_crowd(struct demo *demo, uint32_t buyers, struct rush_request *requests,
                        struct rush_result *results)
{
    if (demo->group_count == 0)
        return;
    for (uint32_t i = 0; i < buyers; i++)
        requests[i] = (struct rush_request){.op = RUSH_OP_GROUP_JOIN_ANY,
                                            .sku_id = demo->groups[i % demo->group_count],
                                            .user_id = 5000000 + i,
                                            .key = key_of(5000000 + i)};
    for (uint32_t offset = 0; offset < buyers; offset += BATCH)
        run(demo, requests + offset, results + offset,
            buyers - offset < BATCH ? buyers - offset : BATCH);
}

static void check_shard(struct rush_shard *shard, void *context)
{
    char why[256];
    if (rush_shard_check(shard, why, sizeof(why)) != 0) {
        fprintf(stderr, "rush-demo: invariant broken: %s\n", why);
        (*(int *)context)++;
    }
}

/* Prints each SKU's books; returns how many SKUs do not balance. */
static int report(struct demo *demo)
{
    printf("\n%-6s %-26s %8s %9s %9s %9s %7s\n", "sku", "name", "stock", "available", "reserved",
           "confirmed", "groups");
    int unbalanced = 0;
    for (uint32_t i = 0; i < demo->campaign->sku_count; i++) {
        const struct rush_sku *sku = &demo->campaign->skus[i];
        struct rush_request query = {.op = RUSH_OP_QUERY_SKU, .sku_id = sku->id};
        struct rush_result r;
        run(demo, &query, &r, 1);
        bool unlimited = r.flags & RUSH_RESULT_UNLIMITED;
        bool balanced = unlimited || r.remaining + r.reserved + r.confirmed == sku->stock;
        unbalanced += !balanced;
        char stock[24];
        snprintf(stock, sizeof(stock), unlimited ? "unlimited" : "%ld", sku->stock);
        printf("%-6lu %-26.26s %8s %9ld %9ld %9ld %7u%s\n", sku->id, sku->name, stock,
               unlimited ? 0 : r.remaining, r.reserved, r.confirmed, r.qty,
               balanced ? "" : "  OVERSOLD");
    }
    return unbalanced;
}

static void print_outcomes(struct rush_engine *engine)
{
    struct rush_engine_stats stats;
    rush_engine_stats(engine, &stats);
    printf("\noutcomes:");
    for (int o = 0; o < RUSH_OUTCOME_COUNT_; o++)
        if (stats.outcomes[o] > 0)
            printf(" %s=%lu", rush_outcome_name(o), stats.outcomes[o]);
    printf("\nduplicates answered from their keys: %lu\n", stats.duplicates);
}

static int setup(struct demo *demo, const char *config_path, const char *data_dir,
                 struct rush_campaign *campaign)
{
    char why[512];
    int rc = config_path ? rush_campaign_load_file(config_path, campaign, why, sizeof(why))
                         : rush_campaign_load_default(campaign, why, sizeof(why));
    if (rc < 0) {
        fprintf(stderr, "rush-demo: %s\n", why);
        return 2;
    }
    struct rush_engine_config config;
    rush_campaign_engine_config(campaign, &config);
    config.data_dir = data_dir;
    char command[600];
    snprintf(command, sizeof(command), "rm -rf '%s' && mkdir -p '%s'", data_dir, data_dir);
    if (system(command) != 0)
        return 2;
    if ((rc = rush_engine_create(&config, &demo->engine)) < 0 ||
        (rc = rush_engine_start(demo->engine)) < 0) {
        fprintf(stderr, "rush-demo: engine: %s\n", rush_strerror(rc));
        return 2;
    }
    demo->campaign = campaign;
    for (uint32_t i = 0; i < campaign->sku_count; i++) {
        const struct rush_sku *sku = &campaign->skus[i];
        struct rush_result result;
        if (rush_engine_sku_put(demo->engine, sku, &result) != 0 || result.outcome != RUSH_OK)
            return 2;
        if (sku->group_size == 0 && !sku->unlimited && sku->price_fen <= 100 &&
            demo->hot_count < 16)
            demo->hot[demo->hot_count++] = sku->id;
        if (sku->group_size != 0 && demo->group_count < 16)
            demo->groups[demo->group_count++] = sku->id;
    }
    printf("rush-demo: %u SKUs, %u shards, durability %s, log in %s\n", campaign->sku_count,
           config.shard_count, config.durability == 0 ? "fsync" : "async/none", data_dir);
    return demo->hot_count > 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *data_dir = "data/demo";
    uint32_t buyers = 300000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--config") == 0)
            config_path = argv[i + 1];
        else if (strcmp(argv[i], "--data-dir") == 0)
            data_dir = argv[i + 1];
        else if (strcmp(argv[i], "--buyers") == 0 &&
                 rush_number_parse_u32(argv[i + 1], 1, 10000000, &buyers, NULL, 0) != 0)
            buyers = 0; /* refused below with the usage */
    }
    if (buyers == 0 || buyers > 10000000 || argc % 2 == 0) {
        fprintf(stderr,
                "usage: rush-demo [--config FILE] [--data-dir DIR] [--buyers 1..10000000]\n");
        return 2;
    }
    struct demo demo = {0};
    struct rush_campaign campaign;
    int rc = setup(&demo, config_path, data_dir, &campaign);
    if (rc != 0)
        return rc;
    size_t slots = (size_t)buyers * 2;
    struct rush_request *burst = calloc(slots, sizeof(*burst)),
                        *more = calloc(slots, sizeof(*more));
    struct rush_result *won = calloc(slots, sizeof(*won)),
                       *answers = calloc(slots, sizeof(*answers));
    printf("midnight: %u buyers on %u RMB-1 items, %u group-buy SKUs\n", buyers, demo.hot_count,
           demo.group_count);
    uint32_t n = midnight(&demo, buyers, burst, won);
    pay_or_cancel(&demo, burst, won, n, more, answers);
    group_crowd(&demo, buyers / 4, more, answers);
    int unbalanced = report(&demo);
    print_outcomes(demo.engine);
    int broken = 0;
    for (uint32_t s = 0; s < rush_engine_shard_count(demo.engine); s++)
        rush_engine_inspect(demo.engine, s, check_shard, &broken);
    printf("%lu requests decided and logged (fsync) in %.2f s: %.0f per second\n", demo.requests,
           demo.busy_seconds, demo.requests / demo.busy_seconds);
    printf("checks: oversold SKUs %d, retries answered differently %lu of %lu, broken shards %d\n",
           unbalanced, demo.mismatches, demo.duplicates_checked, broken);
    rush_engine_destroy(demo.engine);
    rush_campaign_free(&campaign);
    free(burst), free(more), free(won), free(answers);
    bool ok = unbalanced == 0 && demo.mismatches == 0 && broken == 0 && demo.duplicates_checked;
    printf("%s\n", ok ? "rush-demo: all checks passed" : "rush-demo: CHECKS FAILED");
    return ok ? 0 : 1;
}
