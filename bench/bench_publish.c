/*
 * bench_publish.c — what publishing the confirmed-order stream costs the engine: durable orders
 * per second without a publisher, with the publisher and no subscriber, and with a subscriber
 * attached that receives every message, in one run on the same machine.
 *
 * Usage: bench-publish [seconds per case, default 2, at most 10] [shards, default 2]
 *
 * The three cases run interleaved, ROUNDS times, and the medians are compared (the machine is
 * shared and noisy). Each case starts a fresh engine (fsync durability, a fresh directory under
 * /var/tmp) and drives it from one front-end thread with 8 batches of 4,096 reserves in flight,
 * every reserve on a pay-TTL-0 SKU, so every order is confirmed at once and becomes a stream event:
 * the publisher's worst case. The subscriber is a plain nanomsg SUB socket on its own thread
 * counting events (PUB may drop for it; drops are printed, replay is not exercised here). Prints
 * one JSON object per case, then the medians and their ratios; on a 2-core machine the publisher
 * and subscriber threads share the cores with the shards, so the cost shown includes that
 * contention.
 */
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/number.h"
#include "drive.h"
#include "rush/assert.h"
#include "rush/engine.h"
#include "rush/stream.h"
#include "stream/publisher.h"

#define BATCH 4096u
#define IN_FLIGHT 8u
#define SKUS 64u
#define ROUNDS 3 /* the cases interleaved, so that noise hits each alike; medians */
#define ORDERS_PER_SHARD_MAX 6000000u

enum bench_case { NO_PUBLISHER, PUBLISHER_ONLY, WITH_SUBSCRIBER, CASE_COUNT };
static const char *case_names[CASE_COUNT] = {"no_publisher", "publisher_no_subscriber",
                                             "publisher_with_subscriber"};

struct subscriber {
    char url[128];
    pthread_t thread;
    _Atomic bool stop;
    _Atomic uint64_t events;
    uint64_t gaps; /* events PUB dropped on the way, from the seq jumps */
};

static void *subscriber_main(void *argument)
{
    struct subscriber *sub = argument;
    int sock = nn_socket(AF_SP, NN_SUB);
    int timeout_ms = 100, rcvbuf = 64 << 20;
    nn_setsockopt(sock, NN_SUB, NN_SUB_SUBSCRIBE, "", 0);
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    RUSH_VERIFY(nn_connect(sock, sub->url) >= 0);
    uint64_t next[RUSH_SHARDS_MAX] = {0};
    while (!atomic_load(&sub->stop)) {
        void *buf = NULL;
        int len = nn_recv(sock, &buf, NN_MSG, 0);
        if (len < 0)
            continue;
        struct rush_stream_view view;
        if (rush_stream_decode(buf, (size_t)len, &view, NULL, 0) == 0 && view.header.count > 0) {
            struct rush_stream_event first;
            rush_stream_view_event(&view, 0, &first);
            uint32_t shard = view.header.shard;
            if (next[shard] != 0 && first.seq > next[shard])
                sub->gaps += first.seq - next[shard];
            next[shard] = first.seq + view.header.count;
            atomic_fetch_add(&sub->events, view.header.count);
        }
        nn_freemsg(buf);
    }
    nn_close(sock);
    return NULL;
}

struct driver {
    struct rush_request requests[IN_FLIGHT][BATCH];
    struct rush_result results[IN_FLIGHT][BATCH];
    struct rush_batch batches[IN_FLIGHT];
    uint64_t next_user;
};

static void fill(struct driver *driver, uint32_t slot)
{
    for (uint32_t i = 0; i < BATCH; i++) {
        uint64_t user = ++driver->next_user;
        driver->requests[slot][i] = (struct rush_request){.op = RUSH_OP_RESERVE,
                                                          .qty = 1,
                                                          .sku_id = 1 + user % SKUS,
                                                          .user_id = user,
                                                          .key = rush_drive_key(user, 7)};
    }
    driver->batches[slot] = (struct rush_batch){.requests = driver->requests[slot],
                                                .results = driver->results[slot],
                                                .count = BATCH,
                                                .context = (void *)(uintptr_t)slot};
}

/* Keeps IN_FLIGHT batches queued for `seconds`; returns orders confirmed per second. */
static double drive(struct rush_engine *engine, struct driver *driver, double seconds)
{
    uint64_t confirmed = 0;
    for (uint32_t slot = 0; slot < IN_FLIGHT; slot++) {
        fill(driver, slot);
        RUSH_VERIFY(rush_engine_submit(engine, &driver->batches[slot]) == 0);
    }
    uint32_t in_flight = IN_FLIGHT;
    double start = rush_clock_monotonic_seconds(), end = start + seconds;
    while (in_flight > 0) {
        struct rush_batch *done[IN_FLIGHT];
        int n = rush_engine_poll(engine, done, IN_FLIGHT, 10);
        RUSH_ASSERT(n >= 0);
        for (int i = 0; i < n; i++) {
            for (uint32_t r = 0; r < done[i]->count; r++)
                confirmed += done[i]->results[r].outcome == RUSH_OK;
            in_flight--;
            if (rush_clock_monotonic_seconds() >= end)
                continue;
            uint32_t slot = (uint32_t)(uintptr_t)done[i]->context;
            fill(driver, slot);
            RUSH_VERIFY(rush_engine_submit(engine, &driver->batches[slot]) == 0);
            in_flight++;
        }
    }
    return (double)confirmed / (rush_clock_monotonic_seconds() - start);
}

static double run_case(enum bench_case which, double seconds, uint32_t shards,
                       struct driver *driver, struct subscriber *sub)
{
    char dir[] = "/var/tmp/rush-bench-publish-XXXXXX";
    RUSH_VERIFY(mkdtemp(dir) != NULL);
    struct rush_engine_config config;
    rush_engine_config_default(&config, shards);
    config.data_dir = dir;
    config.durability = RUSH_DURABILITY_FSYNC;
    config.limits.orders_max = ORDERS_PER_SHARD_MAX; /* room for every order of a case */
    config.limits.keys_max = ORDERS_PER_SHARD_MAX + ORDERS_PER_SHARD_MAX / 2;
    config.limits.user_limits_max = ORDERS_PER_SHARD_MAX;
    struct rush_engine *engine = NULL;
    RUSH_VERIFY(rush_engine_create(&config, &engine) == 0 && rush_engine_start(engine) == 0);
    rush_drive_put_instant_skus(engine, SKUS);
    struct rush_publisher *publisher = NULL;
    char pub_url[128], replay_url[128], why[256];
    snprintf(pub_url, sizeof(pub_url), "ipc://%s/pub.ipc", dir);
    snprintf(replay_url, sizeof(replay_url), "ipc://%s/replay.ipc", dir);
    if (which != NO_PUBLISHER) {
        struct rush_publisher_config pub = {
            .pub_url = pub_url, .replay_url = replay_url, .data_dir = dir};
        RUSH_VERIFY(rush_publisher_create(&pub, engine, &publisher, why, sizeof(why)) == 0);
    }
    if (which == WITH_SUBSCRIBER) {
        snprintf(sub->url, sizeof(sub->url), "%s", pub_url);
        RUSH_VERIFY(pthread_create(&sub->thread, NULL, subscriber_main, sub) == 0);
        usleep(200000);
    }
    driver->next_user = 0;
    double rate = drive(engine, driver, seconds);
    struct rush_publisher_stats stats = {0};
    if (publisher != NULL) {
        usleep(300000); /* let the publisher and the subscriber finish the tail */
        rush_publisher_stats(publisher, &stats);
    }
    if (which == WITH_SUBSCRIBER) {
        atomic_store(&sub->stop, true);
        pthread_join(sub->thread, NULL);
    }
    printf("{\"case\":\"%s\",\"shards\":%u,\"durable_orders_per_sec\":%.0f,\"published\":%lu,"
           "\"received\":%lu,\"lost_by_pub\":%lu}\n",
           case_names[which], shards, rate, stats.events_published,
           which == WITH_SUBSCRIBER ? atomic_load(&sub->events) : 0,
           which == WITH_SUBSCRIBER ? sub->gaps : 0);
    fflush(stdout);
    rush_publisher_destroy(publisher);
    rush_engine_destroy(engine);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    RUSH_VERIFY(system(command) == 0);
    return rate;
}

static int compare_rates(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    uint32_t shards = 2;
    if (seconds <= 0 || seconds > 10 ||
        (argc > 2 && rush_number_parse_u32(argv[2], 1, RUSH_SHARDS_MAX, &shards, NULL, 0) != 0)) {
        fprintf(stderr, "usage: bench-publish [seconds per case, 0..10] [shards]\n");
        return 2;
    }
    static struct driver driver;
    static struct subscriber sub;
    double rates[CASE_COUNT][ROUNDS];
    for (int round = 0; round < ROUNDS; round++)
        for (int which = 0; which < CASE_COUNT; which++) {
            memset(&sub, 0, sizeof(sub));
            rates[which][round] = run_case((enum bench_case)which, seconds, shards, &driver, &sub);
        }
    double median[CASE_COUNT];
    for (int which = 0; which < CASE_COUNT; which++) {
        qsort(rates[which], ROUNDS, sizeof(double), compare_rates);
        median[which] = rates[which][ROUNDS / 2];
    }
    printf("{\"median_no_publisher\":%.0f,\"median_publisher_no_subscriber\":%.0f,"
           "\"median_publisher_with_subscriber\":%.0f,\"ratio_publisher_no_subscriber\":%.3f,"
           "\"ratio_publisher_with_subscriber\":%.3f}\n",
           median[NO_PUBLISHER], median[PUBLISHER_ONLY], median[WITH_SUBSCRIBER],
           median[PUBLISHER_ONLY] / median[NO_PUBLISHER],
           median[WITH_SUBSCRIBER] / median[NO_PUBLISHER]);
    return 0;
}
