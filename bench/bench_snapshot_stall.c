/*
 * bench_snapshot_stall.c — what a snapshot does to the latency of the orders decided meanwhile:
 * p99 with no snapshot, with snapshots written on the shard's thread (it stops deciding while it
 * writes), and with snapshots written in the background (snapshot_in_background: a fork, the
 * child writes from the copy-on-write image).
 *
 * Usage: bench-snapshot-stall [orders held, default 1000000] [seconds measured, default 5]
 *                             [case: none | on_thread | background, default all three]
 * Each case: a fresh engine (one shard, async durability, a fresh directory under /var/tmp,
 * removed at the end), `orders` reserves put in first, then rush_engine_execute calls of BATCH
 * reserves on a fixed schedule (CALLS_PER_S) for `seconds`, each timed from when it was due (so
 * a stall counts for every call it holds up); the caller sleeps until each call is due (polling
 * would take half a CPU, which on a small VM is itself a cause of stalls). The snapshot cases
 * take one every SNAPSHOT_EVERY events, so with a million orders held a snapshot is being written
 * for much of the measured time (the count is printed). One JSON object per case:
 *   {"bench":"snapshot_stall","case":"none"|"on_thread"|"background","p50_us":..,"p99_us":..,
 *    "p999_us":..,"max_us":..,"calls":..,"snapshot_files":..,"steal_ms":..}
 * steal_ms is the CPU time the hypervisor took from the machine while the calls ran (/proc/stat):
 * on a VM, p99 follows it. RUSH_BENCH_STALL_TRACE_US=N prints each call slower than N us to
 * stderr with its due time (CLOCK_MONOTONIC s, as in `perf record -k CLOCK_MONOTONIC`).
 * RUSH_SNAPSHOT_PACE=off makes the background child write at full speed (wal/snapshot_child.h).
 * Compare p99 within one run: the machine is shared.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rush/assert.h"
#include "rush/engine.h"

#define CHUNK 65536u
#define BATCH 16u
#define SKUS 100u
#define SNAPSHOT_EVERY 30000u
#define CALLS_MAX 4000000u
#define CALLS_PER_S 500.0 /* 8,000 orders/s offered: well below what one shard takes */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Sleeps until `due` (CLOCK_MONOTONIC seconds); returns at once when it has passed. */
static void sleep_until(double due)
{
    struct timespec t = {.tv_sec = (time_t)due,
                         .tv_nsec = (long)((due - (double)(time_t)due) * 1e9)};
    /* Bounded: only a signal repeats the sleep. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
        ;
}

static struct rush_engine *open_engine(const char *dir, uint64_t orders, int mode)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, 1);
    config.limits.orders_max = (uint32_t)(orders + CALLS_MAX / 4);
    config.limits.keys_max = (uint32_t)(orders + CALLS_MAX / 4);
    config.limits.user_limits_max = (uint32_t)(orders + CALLS_MAX / 4);
    config.limits.skus_max = SKUS + 16;
    config.data_dir = dir;
    config.durability = RUSH_DURABILITY_ASYNC;
    config.seed = 7;
    config.snapshot_every_events = mode == 0 ? 0 : SNAPSHOT_EVERY;
    config.snapshot_in_background = mode == 2;
    struct rush_engine *engine = NULL;
    int rc = rush_engine_create(&config, &engine);
    if (rc != 0) {
        fprintf(stderr, "bench-snapshot-stall: create: %s\n", rush_strerror(rc));
        exit(1);
    }
    RUSH_VERIFY(rush_engine_start(engine) == 0);
    for (uint64_t s = 1; s <= SKUS; s++) {
        struct rush_sku sku = {.id = s,
                               .name = "bench",
                               .unlimited = 1,
                               .price_fen = 990,
                               .end_ns = INT64_MAX,
                               .order_qty_max = 5,
                               .user_qty_max = 5};
        struct rush_result result;
        RUSH_VERIFY(rush_engine_sku_put(engine, &sku, &result) == 0);
        RUSH_ASSERT(result.outcome == RUSH_OK);
    }
    return engine;
}

static void fill_requests(struct rush_request *requests, uint32_t count, uint64_t first)
{
    for (uint32_t i = 0; i < count; i++) {
        uint64_t k = first + i;
        requests[i] = (struct rush_request){
            .op = RUSH_OP_RESERVE, .qty = 1, .sku_id = 1 + k % SKUS, .user_id = 1 + k};
        memcpy(requests[i].key.bytes, &k, sizeof(k));
        requests[i].key.bytes[12] = 0xc3;
    }
}

/* The machine's stolen CPU time so far (all CPUs, /proc/stat), in ms; 0 where unknown. */
static uint64_t steal_ms(void)
{
    FILE *stat = fopen("/proc/stat", "r");
    if (stat == NULL)
        return 0;
    unsigned long long field[8] = {0};
    int n = fscanf(stat, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &field[0], &field[1],
                   &field[2], &field[3], &field[4], &field[5], &field[6], &field[7]);
    fclose(stat);
    long ticks_per_s = sysconf(_SC_CLK_TCK);
    return n == 8 && ticks_per_s > 0 ? field[7] * 1000 / (uint64_t)ticks_per_s : 0;
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static uint32_t snapshot_files(const char *dir)
{
    DIR *d = opendir(dir);
    RUSH_ASSERT(d != NULL);
    uint32_t count = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL)
        count += strncmp(entry->d_name, "snap-", 5) == 0 && strstr(entry->d_name, ".tmp") == NULL;
    closedir(d);
    return count;
}

static void run_case(int mode, uint64_t orders, double seconds, uint32_t *latencies_us)
{
    static const char *const names[] = {"none", "on_thread", "background"};
    char dir[] = "/var/tmp/rush-bench-stall-XXXXXX";
    RUSH_VERIFY(mkdtemp(dir) != NULL);
    struct rush_engine *engine = open_engine(dir, orders, mode);
    static struct rush_request requests[CHUNK];
    static struct rush_result results[CHUNK];
    for (uint64_t n = 0; n < orders; n += CHUNK) {
        uint32_t chunk = orders - n < CHUNK ? (uint32_t)(orders - n) : CHUNK;
        fill_requests(requests, chunk, n);
        RUSH_VERIFY(rush_engine_execute(engine, requests, chunk, results) == 0);
    }
    /* Open loop: call i is due at start + i / CALLS_PER_S and its latency runs from then, so a
     * stall is charged to every call it delays, not only to the one it caught. */
    uint64_t next = orders;
    uint32_t calls = 0;
    uint64_t steal_start_ms = steal_ms();
    double start = now_s();
    uint32_t due_max = (uint32_t)(seconds * CALLS_PER_S);
    const char *trace = getenv("RUSH_BENCH_STALL_TRACE_US");
    uint32_t trace_us = trace != NULL ? (uint32_t)strtoul(trace, NULL, 10) : 0;
    for (; calls < due_max && calls < CALLS_MAX; calls++) {
        double due = start + (double)calls / CALLS_PER_S;
        sleep_until(due);
        fill_requests(requests, BATCH, next);
        next += BATCH;
        RUSH_VERIFY(rush_engine_execute(engine, requests, BATCH, results) == 0);
        latencies_us[calls] = (uint32_t)((now_s() - due) * 1e6);
        if (trace_us > 0 && latencies_us[calls] >= trace_us)
            fprintf(stderr, "stall %.6f +%u us\n", due, latencies_us[calls]);
    }
    uint64_t stolen_ms = steal_ms() - steal_start_ms;
    rush_engine_destroy(engine); /* waits for a background snapshot still being written */
    uint32_t snapshots = snapshot_files(dir);
    qsort(latencies_us, calls, sizeof(*latencies_us), compare_u32);
    printf("{\"bench\":\"snapshot_stall\",\"case\":\"%s\",\"orders_held\":%llu,\"p50_us\":%u,"
           "\"p99_us\":%u,\"p999_us\":%u,\"max_us\":%u,\"calls\":%u,\"snapshot_files\":%u,"
           "\"steal_ms\":%llu}\n",
           names[mode], (unsigned long long)orders, latencies_us[calls / 2],
           latencies_us[(uint64_t)calls * 99 / 100], latencies_us[(uint64_t)calls * 999 / 1000],
           latencies_us[calls - 1], calls, snapshots, (unsigned long long)stolen_ms);
    fflush(stdout);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    if (system(command) != 0)
        fprintf(stderr, "bench-snapshot-stall: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    uint64_t orders = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    double seconds = argc > 2 ? atof(argv[2]) : 5.0;
    if (orders == 0 || orders > 50000000 || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "usage: bench-snapshot-stall [orders 1..50000000] [seconds]\n");
        return 2;
    }
    static const char *const cases[] = {"none", "on_thread", "background"};
    int only = -1;
    for (int mode = 0; argc > 3 && mode < 3; mode++)
        only = strcmp(argv[3], cases[mode]) == 0 ? mode : only;
    if (argc > 3 && only < 0) {
        fprintf(stderr, "bench-snapshot-stall: unknown case %s\n", argv[3]);
        return 2;
    }
    uint32_t *latencies = malloc(sizeof(uint32_t) * CALLS_MAX);
    RUSH_VERIFY(latencies != NULL);
    for (int mode = 0; mode < 3; mode++)
        if (only < 0 || only == mode)
            run_case(mode, orders, seconds, latencies);
    free(latencies);
    return 0;
}
