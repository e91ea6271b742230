/*
 * stress_publisher — the publisher's threads under load, as a plain program so that the
 * thread-sanitizer build runs it (Criterion cannot start under TSan).
 *
 * An engine with 2 shards writing a real log, the publisher (live and replay threads), a
 * subscriber on its own thread, and the main thread deciding orders as fast as it can, with a
 * snapshot in the middle. Checks that the subscriber gets every confirmation exactly once, in
 * order per shard, and that the publisher's heads agree. Exit 0 or an assertion failure.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drive.h"
#include "rush/assert.h"
#include "rush/engine.h"
#include "rush/subscriber.h"
#include "stream/publisher.h"

#define SHARDS 2
#define ORDERS 20000u
#define BATCH 500u
#define SKUS 8u

static char pub_url[128], replay_url[128];
static _Atomic uint64_t delivered;
static _Atomic bool stop;

static void *subscriber_main(void *argument)
{
    (void)argument;
    struct rush_subscriber_config config;
    rush_subscriber_config_default(&config);
    config.pub_url = pub_url;
    config.replay_url = replay_url;
    config.receive_buffer_bytes = RUSH_SUBSCRIBER_RECEIVE_BYTES_MIN; /* drops: replay works */
    struct rush_subscriber *sub = NULL;
    RUSH_VERIFY(rush_subscriber_open(&config, &sub) == 0);
    uint64_t last[SHARDS] = {0};
    static struct rush_stream_event events[1024];
    while (!atomic_load(&stop)) {
        int n = rush_subscriber_poll(sub, events, 1024, 50);
        RUSH_ASSERT(n >= 0 || n == RUSH_ETIMEDOUT);
        for (int i = 0; i < n; i++) {
            RUSH_ASSERT(events[i].shard < SHARDS && events[i].seq == last[events[i].shard] + 1);
            RUSH_ASSERT(events[i].type == RUSH_EV_ORDER_CONFIRMED);
            last[events[i].shard] = events[i].seq;
        }
        if (n > 0)
            atomic_fetch_add(&delivered, (uint64_t)n);
        if (n == 0) /* quiet: make sure the heads are caught up too */
            rush_subscriber_resync(sub);
    }
    rush_subscriber_close(sub);
    return NULL;
}

static void order_all(struct rush_engine *engine)
{
    static struct rush_request requests[BATCH];
    static struct rush_result results[BATCH];
    for (uint64_t first = 1; first <= ORDERS; first += BATCH) {
        for (uint32_t i = 0; i < BATCH; i++)
            requests[i] = (struct rush_request){.op = RUSH_OP_RESERVE,
                                                .qty = 1,
                                                .sku_id = 1 + (first + i) % SKUS,
                                                .user_id = first + i,
                                                .key = rush_drive_key(first + i, 9)};
        RUSH_VERIFY(rush_engine_execute(engine, requests, BATCH, results) == 0);
        for (uint32_t i = 0; i < BATCH; i++)
            RUSH_ASSERT(results[i].outcome == RUSH_OK);
        if (first == ORDERS / 2 + 1)
            RUSH_VERIFY(rush_engine_snapshot(engine) == 0);
    }
}

int main(void)
{
    char dir[] = "/tmp/rush-stress-publisher-XXXXXX";
    RUSH_VERIFY(mkdtemp(dir) != NULL);
    snprintf(pub_url, sizeof(pub_url), "ipc://%s/pub.ipc", dir);
    snprintf(replay_url, sizeof(replay_url), "ipc://%s/replay.ipc", dir);
    struct rush_engine_config config;
    rush_engine_config_default(&config, SHARDS);
    config.limits.orders_max = 65536;
    config.limits.keys_max = 131072;
    config.limits.user_limits_max = 65536;
    config.data_dir = dir;
    config.durability = RUSH_DURABILITY_ASYNC;
    struct rush_engine *engine = NULL;
    RUSH_VERIFY(rush_engine_create(&config, &engine) == 0 && rush_engine_start(engine) == 0);
    rush_drive_put_instant_skus(engine, SKUS);
    struct rush_publisher_config pub = {
        .pub_url = pub_url, .replay_url = replay_url, .data_dir = dir, .memory_events_max = 1024};
    struct rush_publisher *publisher = NULL;
    char why[256];
    RUSH_VERIFY(rush_publisher_create(&pub, engine, &publisher, why, sizeof(why)) == 0);
    pthread_t thread;
    RUSH_VERIFY(pthread_create(&thread, NULL, subscriber_main, NULL) == 0);
    order_all(engine);
    double deadline = rush_clock_monotonic_seconds() + 60;
    while (atomic_load(&delivered) < ORDERS && rush_clock_monotonic_seconds() < deadline)
        usleep(10000);
    atomic_store(&stop, true);
    pthread_join(thread, NULL);
    uint64_t heads = rush_publisher_head_seq(publisher, 0) + rush_publisher_head_seq(publisher, 1);
    printf("stress_publisher: %lu of %u confirmations delivered once and in order; heads %lu\n",
           atomic_load(&delivered), ORDERS, heads);
    RUSH_ASSERT(atomic_load(&delivered) == ORDERS && heads == ORDERS);
    rush_publisher_destroy(publisher);
    rush_engine_destroy(engine);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    RUSH_VERIFY(system(command) == 0);
    return 0;
}
