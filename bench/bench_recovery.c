/*
 * bench_recovery.c — how long a restart takes with 10 million orders in one shard's log, from
 * the log alone and from a snapshot plus a short log tail; what the snapshot costs to write.
 *
 * Usage: bench-recovery [orders, default 10000000] [dir]   (else $RUSH_BENCH_DIR, else a fresh
 * directory under /var/tmp, removed at the end). One engine, one shard, async durability (the
 * fill is not what is measured); orders are reserves with a 15-minute pay TTL on 100 SKUs by 2
 * million users, so the state holds `orders` orders, idempotency entries and live timers.
 * Prints one JSON object per line:
 *   fill                 writing the log through the engine: ops_per_sec
 *   restart_wal_only     rush_engine_create replaying the whole log: seconds, records_per_sec
 *   snapshot_write       rush_engine_snapshot (the shard thread is blocked for this): seconds,
 *                        bytes
 *   restart_snapshot     rush_engine_create loading the snapshot and replaying the tail
 * Restarts read a warm page cache (the files were just written); the state digest is checked
 * equal to the pre-restart one every time.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/number.h"
#include "rush/assert.h"
#include "rush/engine.h"
#include "shard/shard.h"

#define CHUNK 65536u
#define SKUS 100u
#define USERS 2000000u
#define TAIL_ORDERS 200000u

static struct rush_engine_config config_for(const char *dir, uint64_t orders)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, 1);
    config.limits.orders_max = (uint32_t)(orders + TAIL_ORDERS + 16);
    config.limits.keys_max = (uint32_t)(orders + TAIL_ORDERS + 1024);
    config.limits.user_limits_max = USERS + 1024;
    config.limits.skus_max = SKUS + 16;
    config.data_dir = dir;
    config.durability = RUSH_DURABILITY_ASYNC;
    config.seed = 7;
    return config;
}

static struct rush_engine *open_engine(const char *dir, uint64_t orders, double *seconds)
{
    struct rush_engine_config config = config_for(dir, orders);
    struct rush_engine *engine = NULL;
    double start = rush_clock_monotonic_seconds();
    int rc = rush_engine_create(&config, &engine);
    *seconds = rush_clock_monotonic_seconds() - start;
    if (rc != 0) {
        fprintf(stderr, "bench-recovery: create: %s\n", rush_strerror(rc));
        exit(1);
    }
    RUSH_VERIFY(rush_engine_start(engine) == 0);
    return engine;
}

static void put_skus(struct rush_engine *engine)
{
    for (uint64_t s = 1; s <= SKUS; s++) {
        struct rush_sku sku = {.id = s,
                               .name = "bench",
                               .stock = 1000000000,
                               .price_fen = 990,
                               .start_ns = 0,
                               .end_ns = INT64_MAX,
                               .pay_ttl_ns = INT64_C(15) * 60 * 1000000000,
                               .order_qty_max = 5,
                               .user_qty_max = 1000};
        struct rush_result result;
        RUSH_VERIFY(rush_engine_sku_put(engine, &sku, &result) == 0);
        RUSH_ASSERT(result.outcome == RUSH_OK);
    }
}

/* Reserves orders [first, first + count): one request each, keyed by its number. */
static void fill(struct rush_engine *engine, uint64_t first, uint64_t count)
{
    static struct rush_request requests[CHUNK];
    static struct rush_result results[CHUNK];
    for (uint64_t n = first; n < first + count;) {
        uint32_t chunk = first + count - n < CHUNK ? (uint32_t)(first + count - n) : CHUNK;
        for (uint32_t i = 0; i < chunk; i++) {
            uint64_t k = n + i;
            requests[i] = (struct rush_request){
                .op = RUSH_OP_RESERVE, .qty = 1, .sku_id = 1 + k % SKUS, .user_id = 1 + k % USERS};
            memcpy(requests[i].key.bytes, &k, sizeof(k));
            requests[i].key.bytes[12] = 0xb7;
        }
        RUSH_VERIFY(rush_engine_execute(engine, requests, chunk, results) == 0);
        RUSH_ASSERT(results[chunk - 1].outcome == RUSH_OK);
        n += chunk;
    }
}

static void digest_of(struct rush_shard *shard, void *context)
{
    *(uint64_t *)context = rush_shard_digest(shard);
}

static uint64_t digest(struct rush_engine *engine)
{
    uint64_t value = 0;
    rush_engine_inspect(engine, 0, digest_of, &value);
    return value;
}

/* Bytes of the files in dir whose name starts with prefix. */
static uint64_t bytes_of(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    RUSH_ASSERT(d != NULL);
    uint64_t total = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (strncmp(entry->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char path[2048];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
        if (stat(path, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

static uint64_t recovered(struct rush_engine *engine)
{
    struct rush_engine_stats stats;
    rush_engine_stats(engine, &stats);
    return stats.recovered_events;
}

int main(int argc, char **argv)
{
    uint64_t orders = 10000000;
    if (argc > 1 &&
        rush_number_parse_u64(argv[1], strlen(argv[1]), 1, UINT32_MAX, &orders, NULL, 0) != 0) {
        fprintf(stderr, "usage: bench-recovery [orders 1..4294967295] [dir]\n");
        return 2;
    }
    char made[64] = "";
    const char *dir = argc > 2 ? argv[2] : getenv("RUSH_BENCH_DIR");
    if (dir == NULL) {
        snprintf(made, sizeof(made), "/var/tmp/rush-bench-recovery-XXXXXX");
        RUSH_VERIFY(mkdtemp(made) != NULL);
        dir = made;
    }
    double seconds;
    struct rush_engine *engine = open_engine(dir, orders, &seconds);
    put_skus(engine);
    double start = rush_clock_monotonic_seconds();
    fill(engine, 0, orders);
    double fill_s = rush_clock_monotonic_seconds() - start;
    printf("{\"bench\":\"recovery\",\"case\":\"fill\",\"orders\":%" PRIu64
           ",\"seconds\":%.3f,\"ops_per_sec\":%.0f,\"wal_bytes\":%" PRIu64 "}\n",
           orders, fill_s, (double)orders / fill_s, bytes_of(dir, "wal-"));
    fflush(stdout);
    uint64_t before = digest(engine);
    rush_engine_destroy(engine);

    engine = open_engine(dir, orders, &seconds);
    RUSH_VERIFY(digest(engine) == before);
    uint64_t events = recovered(engine);
    printf("{\"bench\":\"recovery\",\"case\":\"restart_wal_only\",\"events\":%" PRIu64
           ",\"seconds\":%.3f,\"records_per_sec\":%.0f}\n",
           events, seconds, (double)events / seconds);
    fflush(stdout);

    start = rush_clock_monotonic_seconds();
    RUSH_VERIFY(rush_engine_snapshot(engine) == 0);
    double snapshot_s = rush_clock_monotonic_seconds() - start;
    uint64_t snapshot_bytes = bytes_of(dir, "snap-");
    printf("{\"bench\":\"recovery\",\"case\":\"snapshot_write\",\"orders\":%" PRIu64
           ",\"seconds\":%.3f,\"bytes\":%" PRIu64 ",\"records_per_sec\":%.0f,\"mb_per_sec\":%.0f,"
           "\"wal_bytes_left\":%" PRIu64 "}\n",
           orders, snapshot_s, snapshot_bytes, (double)orders / snapshot_s,
           (double)snapshot_bytes / 1e6 / snapshot_s, bytes_of(dir, "wal-"));
    fflush(stdout);
    fill(engine, orders, TAIL_ORDERS);
    before = digest(engine);
    rush_engine_destroy(engine);

    engine = open_engine(dir, orders, &seconds);
    RUSH_VERIFY(digest(engine) == before);
    events = recovered(engine);
    printf("{\"bench\":\"recovery\",\"case\":\"restart_snapshot\",\"orders\":%" PRIu64
           ",\"tail_events\":%" PRIu64 ",\"seconds\":%.3f,\"records_per_sec\":%.0f}\n",
           orders + TAIL_ORDERS, events, seconds, (double)(orders + TAIL_ORDERS) / seconds);
    rush_engine_destroy(engine);
    if (made[0] != 0) {
        char command[128];
        snprintf(command, sizeof(command), "rm -rf %s", made);
        RUSH_VERIFY(system(command) == 0);
    }
    return 0;
}
