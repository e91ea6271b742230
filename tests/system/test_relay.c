/*
 * rush-relay end to end (issue 15): a real rushd (fsync durability) takes a verified coupon load
 * through librush while build/bin/rush-relay publishes its confirmed-order stream to librdkafka's
 * mock cluster (build/tests/kafka-mock, a process of its own) and to one real nats-server with
 * JetStream. The relay is killed with -9 mid-stream, while orders still come in, and started
 * again. Then other processes read what the sinks hold: kcat (Debian's) from Kafka, a JetStream
 * ordered consumer from NATS. Checked:
 *   - deduped on (shard, seq), each sink holds exactly the stream's events: every seq 1..head of
 *     every shard, nothing beyond, each with the stream's order id as key / in its payload;
 *   - every order the load was told "ok" is there, and their count equals the engine's
 *     confirmed units for the SKU;
 *   - JetStream stored no (shard, seq) twice (the relay resumes after the last one it holds and
 *     the duplicate window drops a copy in flight at the kill); Kafka may hold copies of what was
 *     in flight at the kill: they are counted and printed, and the dedup above absorbs them.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <inttypes.h>
#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nats_child.h"
#include "rush/client.h"
#include "rush/subscriber.h"
#include "rushd_child.h"

#define SHARDS 2 /* the child campaign's */
#define TOPIC "rush.test.confirmed"
#define JS_STREAM "RUSH_TEST"
#define JS_SUBJECT "rush.test"
#define BATCHES 40
#define BATCH_ORDERS 250
#define ORDERS_MAX (BATCHES * BATCH_ORDERS)
#define KILL_AFTER_EVENTS 1000 /* the relay dies once JetStream holds this many */
#define WAIT_MS 60000
#define SINK_SEQ_MAX ORDERS_MAX

#include "relay_sinks.h"

static struct nats_servers nats;

static void stop_children(void)
{
    sinks_stop_children();
    nats_stop(&nats);
    rushd_cleanup();
}

TestSuite(relay, .fini = stop_children, .timeout = 110);

/* ---- the children --------------------------------------------------------------------------- */

static pid_t start_relay(void)
{
    const char *const args[] = {"rush-relay", "--pub",        rushd.pub,  "--replay",
                                rushd.replay, "--kafka",      bootstrap,  "--topic",
                                TOPIC,        "--nats",       nats.urls,  "--js-stream",
                                JS_STREAM,    "--js-subject", JS_SUBJECT, "--inflight-max",
                                "500",        "--log-level",  "warn",     NULL};
    return relay_spawn(rushd.bin, rushd.dir, args);
}

/* ---- the load: coupons (pay TTL 0: each reserve is one order_confirmed event) ------------- */

static struct {
    uint64_t order_ids[ORDERS_MAX];
    _Atomic uint32_t count;
    _Atomic bool done;
    _Atomic bool relay_killed; /* the second half of the load waits for it */
} load;

static void *load_run(void *unused)
{
    (void)unused;
    struct rush_client_config config;
    rush_client_config_default(&config);
    config.url = rushd.orders;
    config.timeout_ms = 2000;
    config.retries_max = 10;
    struct rush_client *client = NULL;
    RUSH_VERIFY(rush_client_open(&config, &client) == 0);
    static struct rush_request requests[BATCH_ORDERS];
    static struct rush_result results[BATCH_ORDERS];
    for (uint32_t b = 0; b < BATCHES; b++) {
        int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
        while (b == BATCHES / 2 && !atomic_load(&load.relay_killed) &&
               rush_clock_monotonic_ms() < deadline)
            child_sleep_ms(CHILD_POLL_MS);
        for (uint32_t i = 0; i < BATCH_ORDERS; i++) {
            char key[64];
            uint64_t user = 1 + b * BATCH_ORDERS + i;
            snprintf(key, sizeof key, "relay-coupon-%" PRIu64, user);
            requests[i] = (struct rush_request){.op = RUSH_OP_RESERVE,
                                                .qty = 1,
                                                .sku_id = 3001,
                                                .user_id = user,
                                                .key = rush_client_key(key)};
        }
        RUSH_VERIFY(rush_client_submit(client, requests, BATCH_ORDERS, results) == 0);
        for (uint32_t i = 0; i < BATCH_ORDERS; i++) {
            RUSH_VERIFY(results[i].outcome == RUSH_OK);
            load.order_ids[atomic_load(&load.count)] = results[i].order_id;
            atomic_fetch_add(&load.count, 1);
        }
    }
    rush_client_close(client);
    atomic_store(&load.done, true);
    return NULL;
}

static int64_t confirmed_units(void)
{
    struct rush_client_config config;
    rush_client_config_default(&config);
    config.url = rushd.orders;
    struct rush_client *client = NULL;
    cr_assert_eq(rush_client_open(&config, &client), 0);
    struct rush_request query = {.op = RUSH_OP_QUERY_SKU, .sku_id = 3001};
    struct rush_result result;
    cr_assert_eq(rush_client_submit(client, &query, 1, &result), 0);
    rush_client_close(client);
    return result.confirmed;
}

/* ---- the stream itself: what the sinks must hold ------------------------------------------- */

static uint64_t stream_order[SHARDS][ORDERS_MAX + 1]; /* [shard][seq]: the event's order id */
static uint64_t stream_head[SHARDS];

static void read_stream(void)
{
    struct rush_subscriber_config config;
    rush_subscriber_config_default(&config);
    config.pub_url = rushd.pub;
    config.replay_url = rushd.replay;
    struct rush_subscriber *sub = NULL;
    cr_assert_eq(rush_subscriber_open(&config, &sub), 0);
    static struct rush_stream_event events[1024];
    uint64_t total = 0;
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    while (total < atomic_load(&load.count)) { /* acknowledged orders are a moment from published */
        rush_subscriber_resync(sub);
        while (!rush_subscriber_caught_up(sub)) {
            int n = rush_subscriber_poll(sub, events, 1024, 100);
            cr_assert(n >= 0 || n == RUSH_ETIMEDOUT || n == RUSH_EPROTO, "poll: %s",
                      rush_strerror(n));
            for (int i = 0; i < n; i++) {
                cr_assert_lt(events[i].shard, SHARDS);
                cr_assert_leq(events[i].seq, ORDERS_MAX);
                stream_order[events[i].shard][events[i].seq] = events[i].order_id;
                stream_head[events[i].shard] = events[i].seq;
            }
            total += n > 0 ? (uint64_t)n : 0;
            cr_assert_lt(rush_clock_monotonic_ms(), deadline, "stream not read in time");
        }
    }
    cr_assert_eq(total, atomic_load(&load.count), "one event per confirmed order");
    rush_subscriber_close(sub);
}

/* ---- checking what a sink holds -------------------------------------------------------------- */

/* Counts (shard, seq), which must carry the stream's order id at that seq. */
static void take_order(struct holding *h, uint64_t shard, uint64_t seq, uint64_t order_id,
                       const char *sink)
{
    holding_add(h, stream_head, shard, seq, sink);
    cr_assert_eq(order_id, stream_order[shard][seq],
                 "%s: shard %" PRIu64 " seq %" PRIu64 " carries order %" PRIu64
                 ", the stream %" PRIu64,
                 sink, shard, seq, order_id, stream_order[shard][seq]);
}

static uint64_t json_u64_field(json_t *object, const char *name)
{
    json_t *value = json_object_get(object, name);
    if (json_is_string(value))
        return strtoull(json_string_value(value), NULL, 10);
    cr_assert(json_is_integer(value), "no field %s", name);
    return (uint64_t)json_integer_value(value);
}

/* A Kafka message: its key is the stream's order id, its payload the event's JSON. */
static void take_kafka(struct holding *h, uint64_t shard, uint64_t seq, json_t *record)
{
    json_error_t error;
    uint64_t key = strtoull(json_string_value(json_object_get(record, "key")), NULL, 10);
    json_t *payload = json_loads(json_string_value(json_object_get(record, "payload")), 0, &error);
    cr_assert(payload != NULL);
    cr_assert_eq(json_u64_field(payload, "seq"), seq);
    cr_assert_eq(json_u64_field(payload, "order"), key);
    take_order(h, shard, seq, key, "kafka");
    json_decref(payload);
}

/* A JetStream message: the event's JSON, its Nats-Msg-Id "<shard>:<seq>". */
static void take_jetstream(struct holding *h, uint64_t shard, uint64_t seq, natsMsg *msg)
{
    json_error_t error;
    json_t *payload =
        json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, &error);
    cr_assert(payload != NULL);
    char id[48];
    snprintf(id, sizeof id, "%" PRIu64 ":%" PRIu64, shard, seq);
    const char *msg_id = NULL;
    cr_assert_eq(natsMsgHeader_Get(msg, "Nats-Msg-Id", &msg_id), NATS_OK);
    cr_assert_str_eq(msg_id, id);
    take_order(h, shard, seq, json_u64_field(payload, "order"), "jetstream");
    json_decref(payload);
}

/* ---- the test ------------------------------------------------------------------------------- */

static void wait_held(uint64_t want)
{
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    while (js_held_total() < want) {
        if (rush_clock_monotonic_ms() >= deadline) {
            print_relay_log(rushd.dir);
            nats_print_log(&nats, 0);
        }
        cr_assert_lt(rush_clock_monotonic_ms(), deadline,
                     "JetStream holds %" PRIu64 " of %" PRIu64 " events", js_held_total(), want);
        child_sleep_ms(CHILD_POLL_MS);
    }
}

Test(relay, kill_mid_stream_then_each_event_once_in_kafka_and_jetstream)
{
    rushd.durability = "fsync";
    rushd_start(false);
    start_mock(rushd.bin);
    nats_start(&nats, rushd.dir, 1);
    js_open(nats.urls);

    relay_pid = start_relay();
    pthread_t loader;
    cr_assert_eq(pthread_create(&loader, NULL, load_run, NULL), 0);
    wait_held(KILL_AFTER_EVENTS);
    cr_assert_eq(kill(relay_pid, 0), 0, "the relay died");
    kill(relay_pid, SIGKILL); /* mid-stream: the load goes on */
    cr_assert_eq(child_wait_exit(relay_pid, CHILD_EXIT_MS), 128 + SIGKILL);
    uint64_t held_at_kill = js_held_total(), sent_at_kill = atomic_load(&load.count);
    atomic_store(&load.relay_killed, true);
    relay_pid = start_relay();
    cr_assert_eq(pthread_join(loader, NULL), 0);
    cr_log_info("relay killed with JetStream holding %" PRIu64 " of %" PRIu64 " events",
                held_at_kill, sent_at_kill);

    read_stream();
    wait_held(atomic_load(&load.count));
    kill(relay_pid, SIGTERM); /* stops and flushes: Kafka has all it was handed */
    int status = child_wait_exit(relay_pid, CHILD_EXIT_MS);
    if (status != 0)
        print_relay_log(rushd.dir);
    cr_assert_eq(status, 0, "the relay stopped with %d", status);
    relay_pid = -1;

    check_kafka(take_kafka, stream_head, atomic_load(&load.count));
    check_jetstream(take_jetstream, stream_head, atomic_load(&load.count));
    cr_assert_eq(confirmed_units(), (int64_t)atomic_load(&load.count));
    js_close();
}

/* ---- usage and clear errors ------------------------------------------------------------------ */

static int relay_run(const char *args, char *out, size_t cap)
{
    return relay_run_in(rushd.bin, rushd.dir, args, out, cap);
}

Test(relay, help_names_every_default_and_mistakes_are_named)
{
    child_make_dir(&rushd, "relay-usage");
    static char out[8192];
    cr_assert_eq(relay_run("--help", out, sizeof out), 0);
    static const char *const defaults[] = {"default tcp://127.0.0.1:7103",
                                           "default tcp://127.0.0.1:7104",
                                           "default 0: ask rushd",
                                           "--cluster-nats URLS",
                                           "--cluster-stream NAME",
                                           "default rush.confirmed",
                                           "default RUSH_CONFIRMED",
                                           "default 120",
                                           "default 10000, 1..1000000",
                                           "default 0: never",
                                           "default info"};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        cr_assert(strstr(out, defaults[i]) != NULL, "--help lacks '%s':\n%s", defaults[i], out);

    cr_assert_eq(relay_run("", out, sizeof out), 2);
    cr_assert(strstr(out, "no sink") != NULL, "%s", out);
    cr_assert_eq(relay_run("--nats nats://127.0.0.1:1 --inflight-max 0", out, sizeof out), 2);
    cr_assert(strstr(out, "in-flight limit 0") != NULL, "%s", out);
    cr_assert_eq(relay_run("--kafka x --stream only-one-url", out, sizeof out), 2);
    cr_assert(strstr(out, "PUB_URL,REPLAY_URL") != NULL, "%s", out);
    /* the cluster's log as the source: both names and the shard count, or a clear refusal */
    cr_assert_eq(relay_run("--kafka x --cluster-stream rush", out, sizeof out), 2);
    cr_assert(strstr(out, "needs both --cluster-nats and --cluster-stream") != NULL, "%s", out);
    cr_assert_eq(relay_run("--kafka x --cluster-nats nats://127.0.0.1:1 --cluster-stream rush", out,
                           sizeof out),
                 2);
    cr_assert(strstr(out, "the log source needs --shards") != NULL, "%s", out);
    cr_assert_eq(
        relay_run("--kafka x --cluster-nats n --cluster-stream 'a b' --shards 2", out, sizeof out),
        2);
    cr_assert(strstr(out, "the cluster stream 'a b'") != NULL, "%s", out);

    /* a topic with fewer partitions than shards: refused before anything is published */
    start_mock(rushd.bin); /* TOPIC with 2 partitions */
    char args[512];
    snprintf(args, sizeof args, "--shards 3 --kafka %s --topic %s", bootstrap, TOPIC);
    cr_assert_eq(relay_run(args, out, sizeof out), 1);
    cr_assert(strstr(out, "has 2 partitions; the relay needs one per shard (3)") != NULL, "%s",
              out);
}
