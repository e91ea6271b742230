/*
 * bench_engine — how many decisions a second the engine makes in-process.
 *
 * Cases (one JSON object per line: bench, case, shards, ops_per_sec, ns_per_op, ...):
 *   shard_*   one shard driven directly on this thread: the single-writer ceiling, no rings.
 *   engine_*  the threaded engine through its rings with 1, 2 and 4 shards, batches of
 *             `work` requests, several in flight, like the server's front end.
 * Workloads: reserves by distinct users on one hot SKU (plenty of stock, and the midnight case
 * where stock is small and nearly all are sold_out), reserves over 10,000 SKUs with Zipf(0.99)
 * popularity, and group joins (join_any, groups of 5). Requests are generated before timing.
 * Also prints the memory each live order and each idempotency entry costs. Each shard_* case
 * also says where a decision's nanoseconds go (bench_shard): probe_ns (the table lookups alone),
 * rules_ns (everything else the decision does) and encode_ns (writing its events as a WAL batch,
 * which the engine adds on top). The probe pass changes nothing, so its SKUs never sell out and
 * it prefetches the entries an insert would need (shard.c, look_close) where deciding, once
 * stock is gone, does not: for the midnight case probe_ns overstates the lookups and rules_ns
 * can come out below zero.
 *
 * Usage: bench-engine [requests per case, default 2000000] [shard: only the one-shard cases]
 *                     [workload: only this one, e.g. hot_sku_midnight]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drive.h"
#include "rush/engine.h"
#include "shard/shard.h"
#include "wal/wal.h"

#define SKUS_ZIPF 10000
#define GROUP_SKU 777777
#define BATCH 4096

static uint64_t random_state = 0x2545f4914f6cdd1d;

static rush_key key_of(uint64_t n)
{
    return rush_drive_key(n, 0x77);
}

enum workload { HOT_PLENTY, HOT_SOLD_OUT, ZIPF, GROUPS };
static const char *const workload_names[] = {"hot_sku_plenty", "hot_sku_midnight", "zipf_10k_skus",
                                             "group_join_any"};

/* Zipf(s) over 1..n by inverting a precomputed cumulative table. */
static uint32_t *zipf_table(uint32_t n, double s, uint32_t resolution)
{
    double total = 0;
    for (uint32_t k = 1; k <= n; k++)
        total += 1.0 / pow(k, s);
    uint32_t *table = malloc(sizeof(uint32_t) * resolution);
    double cumulative = 0;
    uint32_t k = 1;
    for (uint32_t i = 0; i < resolution; i++) {
        double target = (i + 0.5) / resolution * total;
        while (cumulative + 1.0 / pow(k, s) < target && k < n)
            cumulative += 1.0 / pow(k++, s);
        table[i] = k;
    }
    return table;
}

static struct rush_request *make_requests(enum workload workload, uint32_t count)
{
    static uint32_t *zipf;
    if (zipf == NULL)
        zipf = zipf_table(SKUS_ZIPF, 0.99, 1 << 20);
    struct rush_request *requests = calloc(count, sizeof(*requests));
    for (uint32_t i = 0; i < count; i++) {
        struct rush_request *r = &requests[i];
        *r = (struct rush_request){
            .op = RUSH_OP_RESERVE, .sku_id = 1, .user_id = i + 1, .qty = 1, .key = key_of(i + 1)};
        if (workload == HOT_SOLD_OUT)
            r->sku_id = 2;
        if (workload == ZIPF)
            r->sku_id = 100 + zipf[rush_drive_random(&random_state) & ((1 << 20) - 1)];
        if (workload == GROUPS) {
            r->op = RUSH_OP_GROUP_JOIN_ANY;
            r->sku_id = GROUP_SKU;
            r->qty = 0;
        }
    }
    return requests;
}

static struct rush_sku sku_of(uint64_t id, int64_t stock)
{
    return (struct rush_sku){.id = id,
                             .name = "bench",
                             .stock = stock,
                             .price_fen = 100,
                             .start_ns = 0,
                             .end_ns = INT64_MAX,
                             .pay_ttl_ns = 900000000000LL,
                             .order_qty_max = 2,
                             .user_qty_max = 2};
}

static struct rush_sku *catalogue(uint32_t *count, uint32_t requests)
{
    struct rush_sku *skus = calloc(SKUS_ZIPF + 3, sizeof(*skus));
    uint32_t n = 0;
    skus[n++] = sku_of(1, requests); /* plenty: every reserve succeeds */
    skus[n++] = sku_of(2, 1000);     /* midnight: 1000 units, the rest sold_out */
    for (uint32_t k = 1; k <= SKUS_ZIPF; k++)
        skus[n++] = sku_of(100 + k, 1000000);
    struct rush_sku group = sku_of(GROUP_SKU, requests);
    group.group_size = 5;
    group.group_ttl_ns = 600000000000LL;
    group.groups_open_max = 1000;
    group.pay_ttl_ns = 0;
    skus[n++] = group;
    *count = n;
    return skus;
}

static struct rush_shard_limits limits_for(uint32_t requests)
{
    return (struct rush_shard_limits){.skus_max = SKUS_ZIPF + 16,
                                      .orders_max = requests + 16,
                                      .groups_max = requests / 4 + 16,
                                      .keys_max = requests + 16,
                                      .user_limits_max = requests + 16,
                                      .events_buffer_max = 65536};
}

static void report(const char *kind, enum workload workload, uint32_t shards, uint32_t count,
                   double seconds, uint64_t ok)
{
    printf("{\"bench\":\"engine\",\"case\":\"%s_%s\",\"shards\":%u,\"requests\":%u,\"ok\":%lu,"
           "\"seconds\":%.4f,\"ops_per_sec\":%.0f,\"ns_per_op\":%.1f}\n",
           kind, workload_names[workload], shards, count, ok, seconds, count / seconds,
           seconds * 1e9 / count);
    fflush(stdout);
}

/* The encode pass's sink: the events of each sink call become one WAL batch (header, checksums,
 * copy into the buffer) in a log of mode none, which encodes and drops them. */
static void encode_sink(void *context, uint32_t shard_index, int64_t time_ns,
                        const struct rush_event *events, uint32_t count)
{
    (void)shard_index;
    if (rush_wal_append(context, time_ns, events, count) != 0)
        abort();
}

/* A shard with the catalogue put, and the sink given (NULL: events dropped after apply). */
static struct rush_shard *shard_for(uint32_t count, rush_event_sink_fn sink, void *context)
{
    struct rush_shard_config config = {.limits = limits_for(count),
                                       .seed = 1,
                                       .start_ns = 1,
                                       .sink = sink,
                                       .sink_context = context};
    struct rush_shard *shard;
    if (rush_shard_create(&config, &shard) != 0)
        abort();
    uint32_t sku_count;
    struct rush_sku *skus = catalogue(&sku_count, count);
    struct rush_result result;
    rush_shard_begin(shard, 1);
    for (uint32_t i = 0; i < sku_count; i++)
        rush_shard_sku_put(shard, &skus[i], &result);
    rush_shard_end(shard);
    free(skus);
    return shard;
}

/* Decides every request in batches of BATCH under one engine time each; seconds taken. */
static double decide_all(struct rush_shard *shard, const struct rush_request *requests,
                         uint32_t count, struct rush_result *results, struct rush_wal *wal,
                         uint64_t *ok)
{
    double start = rush_clock_monotonic_seconds();
    for (uint32_t offset = 0; offset < count; offset += BATCH) {
        uint32_t n = count - offset < BATCH ? count - offset : BATCH;
        rush_shard_begin(shard, 2);
        rush_shard_decide_batch(shard, &requests[offset], n, results);
        rush_shard_end(shard);
        if (wal != NULL && rush_wal_submit(wal) != 0)
            abort();
        for (uint32_t i = 0; i < n; i++)
            *ok += results[i].outcome == RUSH_OK;
    }
    return rush_clock_monotonic_seconds() - start;
}

/*
 * One shard on this thread, and where its time goes, from three passes over the same requests
 * on three fresh shards: the lookups alone (rush_shard_probe_batch: key, SKU id and user limit,
 * prefetched as the decision does), the decisions (the figure of the case), and the decisions
 * with every event encoded as a WAL batch (a log of mode none). probe_ns is the first; rules_ns
 * (the rules, the state changes, the events and results) is the second minus the first;
 * encode_ns is the third minus the second.
 */
static double probe_pass(const struct rush_request *requests, uint32_t count, uint32_t *found)
{
    struct rush_shard *shard = shard_for(count, NULL, NULL);
    double start = rush_clock_monotonic_seconds();
    *found = 0;
    for (uint32_t offset = 0; offset < count; offset += BATCH)
        *found += rush_shard_probe_batch(shard, &requests[offset],
                                         count - offset < BATCH ? count - offset : BATCH);
    double seconds = rush_clock_monotonic_seconds() - start;
    rush_shard_destroy(shard);
    return seconds;
}

static double decide_pass(bool print_memory, const struct rush_request *requests, uint32_t count,
                          struct rush_result *results, uint64_t *ok)
{
    struct rush_shard *shard = shard_for(count, NULL, NULL);
    *ok = 0;
    double seconds = decide_all(shard, requests, count, results, NULL, ok);
    if (print_memory) {
        struct rush_shard_memory memory;
        rush_shard_memory(shard, &memory);
        printf("{\"bench\":\"engine\",\"case\":\"memory\",\"order_bytes_each\":%lu,"
               "\"key_bytes_each\":%lu,\"shard_bytes_total\":%lu,\"ops_per_sec\":0}\n",
               memory.order_bytes_each, memory.key_bytes_each, memory.total_bytes);
    }
    rush_shard_destroy(shard);
    return seconds;
}

static double encode_pass(const struct rush_request *requests, uint32_t count,
                          struct rush_result *results, uint64_t *ok)
{
    struct rush_wal_config wal_config;
    rush_wal_config_default(&wal_config, "/nonexistent", 0);
    wal_config.mode = RUSH_WAL_NONE;
    struct rush_wal *wal;
    if (rush_wal_open(&wal_config, NULL, &wal) != 0)
        abort();
    struct rush_shard *shard = shard_for(count, encode_sink, wal);
    *ok = 0;
    double seconds = decide_all(shard, requests, count, results, wal, ok);
    rush_shard_destroy(shard);
    if (rush_wal_close(wal) != 0)
        abort();
    return seconds;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * One shard on this thread, and where its time goes: three passes over the same requests, each
 * on a fresh shard, ROUNDS times interleaved, medians: the lookups alone (rush_shard_probe_batch:
 * key, SKU id and user limit, prefetched as the decision does), the decisions (the figure of the
 * case), and the decisions with every event encoded as a WAL batch (a log of mode none).
 * probe_ns is the first; rules_ns (the rules, the state changes, the events and results) is the
 * second minus the first; encode_ns is the third minus the second.
 */
static void bench_shard(enum workload workload, uint32_t count)
{
    enum { ROUNDS = 3 };
    struct rush_request *requests = make_requests(workload, count);
    struct rush_result *results = malloc(sizeof(*results) * BATCH);
    double probe_s[ROUNDS], decide_s[ROUNDS], encode_s[ROUNDS];
    uint32_t found = 0;
    uint64_t ok = 0, ok_encoded = 0;
    for (int r = 0; r < ROUNDS; r++) {
        probe_s[r] = probe_pass(requests, count, &found);
        decide_s[r] = decide_pass(r == 0 && workload == HOT_PLENTY, requests, count, results, &ok);
        encode_s[r] = encode_pass(requests, count, results, &ok_encoded);
        if (ok_encoded != ok)
            abort();
    }
    qsort(probe_s, ROUNDS, sizeof(double), compare_double);
    qsort(decide_s, ROUNDS, sizeof(double), compare_double);
    qsort(encode_s, ROUNDS, sizeof(double), compare_double);
    double probe = probe_s[ROUNDS / 2], decide = decide_s[ROUNDS / 2];
    double encode = encode_s[ROUNDS / 2], per = 1e9 / count;
    printf("{\"bench\":\"engine\",\"case\":\"shard_%s\",\"shards\":1,\"requests\":%u,\"ok\":%lu,"
           "\"seconds\":%.4f,\"ops_per_sec\":%.0f,\"ns_per_op\":%.1f,\"probe_ns\":%.1f,"
           "\"rules_ns\":%.1f,\"encode_ns\":%.1f,\"with_encode_ops_per_sec\":%.0f,"
           "\"probe_found\":%u}\n",
           workload_names[workload], count, ok, decide, count / decide, decide * per, probe * per,
           (decide - probe) * per, (encode - decide) * per, count / encode, found);
    fflush(stdout);
    free(requests);
    free(results);
}

/* Keeps up to 8 batches in flight through the engine's rings, as the server's front end does. */
static uint64_t drive(struct rush_engine *engine, struct rush_request *requests, uint32_t count,
                      struct rush_result *results)
{
    enum { IN_FLIGHT = 8 };
    struct rush_batch batches[IN_FLIGHT];
    uint32_t next = 0, outstanding = 0;
    bool used[IN_FLIGHT] = {false};
    while (next < count || outstanding > 0) {
        for (uint32_t b = 0; b < IN_FLIGHT && next < count; b++) {
            if (used[b])
                continue;
            uint32_t n = count - next < BATCH ? count - next : BATCH;
            batches[b] = (struct rush_batch){
                .requests = requests + next, .results = results + next, .count = n};
            if (rush_engine_submit(engine, &batches[b]) != 0)
                break;
            used[b] = true;
            outstanding++;
            next += n;
        }
        struct rush_batch *done[IN_FLIGHT];
        int finished = rush_engine_poll(engine, done, IN_FLIGHT, 10);
        for (int d = 0; d < finished; d++)
            used[done[d] - batches] = false;
        outstanding -= finished > 0 ? (uint32_t)finished : 0;
    }
    uint64_t ok = 0;
    for (uint32_t i = 0; i < count; i++)
        ok += results[i].outcome == RUSH_OK;
    return ok;
}

static void bench_engine(enum workload workload, uint32_t shards, uint32_t count)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, shards);
    config.limits = limits_for(count);
    config.work_requests_max = BATCH;
    config.ring_slots = 16;
    struct rush_engine *engine;
    if (rush_engine_create(&config, &engine) != 0 || rush_engine_start(engine) != 0)
        abort();
    uint32_t sku_count;
    struct rush_sku *skus = catalogue(&sku_count, count);
    struct rush_result result;
    for (uint32_t i = 0; i < sku_count; i++)
        if (rush_engine_sku_put(engine, &skus[i], &result) != 0)
            abort();
    struct rush_request *requests = make_requests(workload, count);
    struct rush_result *results = malloc(sizeof(*results) * count);
    double start = rush_clock_monotonic_seconds();
    uint64_t ok = drive(engine, requests, count, results);
    report("engine", workload, shards, count, rush_clock_monotonic_seconds() - start, ok);
    rush_engine_destroy(engine);
    free(requests);
    free(results);
    free(skus);
}

int main(int argc, char **argv)
{
    uint32_t count = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 2000000;
    if (count < BATCH)
        count = BATCH;
    for (enum workload w = HOT_PLENTY; w <= GROUPS; w++)
        if (argc <= 3 || strcmp(argv[3], workload_names[w]) == 0)
            bench_shard(w, count);
    if (argc > 2 && strcmp(argv[2], "shard") == 0)
        return 0;
    uint32_t shard_counts[] = {1, 2, 4};
    for (uint32_t i = 0; i < 3; i++)
        for (enum workload w = HOT_PLENTY; w <= GROUPS; w++)
            if (w != HOT_PLENTY || shard_counts[i] == 1) /* one hot SKU lives on one shard */
                bench_engine(w, shard_counts[i], count);
    return 0;
}
