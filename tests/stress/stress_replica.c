/*
 * stress_replica — the engine's cluster roles under concurrency, as a plain program so that it
 * runs under the thread sanitizer (Criterion cannot). No NATS: a fake replica records the last
 * lsn each shard shipped, an acknowledging thread acknowledges it after a short random delay, and
 * a chaos thread fences a leading shard now and then and, once the shard follows again, makes it
 * lead again (what the lease thread does in engine/cluster). Meanwhile the main thread keeps
 * batches of reserves in flight.
 *
 * Checks: every answer is a decision (ok, sold_out), outcome_unknown (only in a batch whose status
 * is RUSH_EFENCED) or a redirect; no SKU sells more than its stock; at the end each shard's
 * invariants hold (rush_shard_check on its own thread). Exit 0 when all pass; prints
 * "N passed, N failed".
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "drive.h"
#include "rush/engine.h"
#include "shard/shard.h"

#define SHARDS 2
#define SKUS 8
#define STOCK 400
#define ROUNDS 400
#define PER 32
#define LEASE_NS (INT64_C(3600) * 1000000000)

static struct rush_engine *engine;
static _Atomic uint64_t shipped[SHARDS];
static atomic_bool stop;
static int passed, failed;
static uint64_t counted[RUSH_OUTCOME_COUNT_];

static void expect(bool condition, const char *what)
{
    if (condition) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAILED: %s\n", what);
    }
}

static void ship(void *context, uint32_t shard, uint64_t lsn, int64_t time_ns,
                 const struct rush_event *events, uint32_t count)
{
    (void)context;
    (void)time_ns;
    (void)events;
    (void)count;
    atomic_store(&shipped[shard], lsn);
}

static void pause_us(long us)
{
    struct timespec ts = {.tv_nsec = us * 1000};
    nanosleep(&ts, NULL);
}

static void *acker_main(void *argument)
{
    (void)argument;
    unsigned seed = 7;
    /* Bounded by `stop`, which main sets after its last round. */
    while (!atomic_load(&stop)) {
        for (uint32_t s = 0; s < SHARDS; s++)
            rush_engine_replica_acked(engine, s, atomic_load(&shipped[s]));
        pause_us(50 + rand_r(&seed) % 400);
    }
    return NULL;
}

static void *chaos_main(void *argument)
{
    (void)argument;
    unsigned seed = 11;
    while (!atomic_load(&stop)) {
        uint32_t s = (uint32_t)(rand_r(&seed) % SHARDS);
        if (rush_engine_role(engine, s) == RUSH_ROLE_LEADER) {
            if (rand_r(&seed) % 2)
                rush_engine_fence(engine, s);
            else
                rush_engine_drain(engine, s);
        } else if (rush_engine_role(engine, s) == RUSH_ROLE_FOLLOWER) {
            rush_engine_lead(engine, s, rush_clock_monotonic_ns() + LEASE_NS);
        }
        pause_us(10000 + rand_r(&seed) % 20000);
    }
    return NULL;
}

static void check_shard(struct rush_shard *shard, void *context)
{
    char why[256];
    int *bad = context;
    if (rush_shard_check(shard, why, sizeof(why)) != 0) {
        fprintf(stderr, "shard check: %s\n", why);
        (*bad)++;
    }
}

static void run_rounds(int64_t *sold)
{
    static struct rush_request requests[PER];
    static struct rush_result results[PER];
    for (uint32_t round = 0; round < ROUNDS; round++) {
        for (uint32_t i = 0; i < PER; i++) {
            uint64_t n = (uint64_t)round * PER + i;
            requests[i] = (struct rush_request){.op = RUSH_OP_RESERVE,
                                                .sku_id = 1 + n % SKUS,
                                                .user_id = n + 1,
                                                .qty = 1,
                                                .key = rush_drive_key(n, 0x33),
                                                .tag = n + 1};
        }
        int rc = rush_engine_execute(engine, requests, PER, results);
        expect(rc == 0 || rc == RUSH_EFENCED, "execute returns 0 or RUSH_EFENCED");
        for (uint32_t i = 0; i < PER; i++) {
            uint8_t outcome = results[i].outcome;
            bool known = outcome == RUSH_OK || outcome == RUSH_SOLD_OUT ||
                         outcome == RUSH_REDIRECT ||
                         (outcome == RUSH_OUTCOME_UNKNOWN && rc == RUSH_EFENCED);
            if (!known)
                fprintf(stderr, "request %u: outcome %u (rc %d)\n", i, outcome, rc);
            expect(known, "every answer is a decision, a redirect or (fenced) unknown");
            expect(results[i].tag == requests[i].tag, "the tag comes back");
            if (outcome == RUSH_OK)
                sold[requests[i].sku_id - 1]++;
            if (outcome < RUSH_OUTCOME_COUNT_)
                counted[outcome]++;
        }
    }
}

int main(void)
{
    char dir[] = "/tmp/rush-stress-replica-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 2;
    struct rush_engine_config config;
    rush_engine_config_default(&config, SHARDS);
    config.limits.orders_max = 65536;
    config.limits.keys_max = 131072;
    config.limits.user_limits_max = 65536;
    config.limits.skus_max = 64;
    config.ring_slots = 16;
    config.work_requests_max = 64;
    config.data_dir = dir;
    config.durability = RUSH_DURABILITY_REPLICATED;
    config.replica = (struct rush_engine_replica){.append = ship};
    if (rush_engine_create(&config, &engine) != 0 || rush_engine_start(engine) != 0)
        return 2;
    for (uint32_t s = 0; s < SHARDS; s++)
        rush_engine_lead(engine, s, rush_clock_monotonic_ns() + LEASE_NS);
    pthread_t acker, chaos;
    pthread_create(&acker, NULL, acker_main, NULL);
    for (uint64_t id = 1; id <= SKUS; id++) {
        struct rush_sku sku = {.id = id,
                               .name = "hot",
                               .stock = STOCK,
                               .price_fen = 100,
                               .start_ns = 0,
                               .end_ns = INT64_MAX,
                               .order_qty_max = 1,
                               .user_qty_max = 1};
        struct rush_result result;
        expect(rush_engine_sku_put(engine, &sku, &result) == 0 && result.outcome == RUSH_OK,
               "sku put while every shard leads");
    }
    pthread_create(&chaos, NULL, chaos_main, NULL);
    int64_t sold[SKUS] = {0};
    run_rounds(sold);
    atomic_store(&stop, true);
    pthread_join(chaos, NULL);
    pthread_join(acker, NULL);
    for (uint32_t i = 0; i < SKUS; i++)
        expect(sold[i] <= STOCK, "no SKU sold more than its stock");
    int bad = 0;
    for (uint32_t s = 0; s < SHARDS; s++)
        rush_engine_inspect(engine, s, check_shard, &bad);
    expect(bad == 0, "every shard's invariants hold");
    for (uint32_t s = 0; s < SHARDS; s++) /* acknowledge the rest so that destroy ends */
        rush_engine_replica_acked(engine, s, atomic_load(&shipped[s]));
    rush_engine_destroy(engine);
    char command[96];
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    if (system(command) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    printf("stress_replica: ok %llu, sold_out %llu, redirect %llu, outcome_unknown %llu\n",
           (unsigned long long)counted[RUSH_OK], (unsigned long long)counted[RUSH_SOLD_OUT],
           (unsigned long long)counted[RUSH_REDIRECT],
           (unsigned long long)counted[RUSH_OUTCOME_UNKNOWN]);
    printf("stress_replica: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
