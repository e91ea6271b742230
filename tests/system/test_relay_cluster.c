/*
 * rush-relay on a cluster's replicated log (relay.h, "Sources"; ARCHITECTURE.md "The relay"):
 * three nats-servers, two rushd nodes (durability replicated, lease 1 s), a router load of
 * coupon reserves on both shards, and build/bin/rush-relay reading the shards' subjects on
 * JetStream (--cluster-nats, --cluster-stream) into librdkafka's mock cluster (kafka-mock) and a
 * JetStream stream of its own. Mid-stream the leader of shard 0 is killed with -9 (its standby
 * takes over; the relay, which reads no node, goes on), then the relay itself is killed with -9
 * and started again (it reads the log from its start and resumes after what the sinks hold).
 * Checked at the end, against the surviving node's own stream (PUB + replay, from seq 1):
 *   - deduped on (shard, seq), each sink holds every seq 1..head of every shard and nothing
 *     beyond, and each event's JSON is byte for byte what the node's stream gives for that seq
 *     (so the relay's source cannot be told from the node's);
 *   - JetStream stored no (shard, seq) twice; Kafka's copies (in flight at the relay's kill)
 *     are counted and printed;
 *   - every order the load was told "ok" is an order_confirmed event of its shard.
 * Bounded: each wait has a deadline; a run takes 15-30 s on a loaded 2-core machine.
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

#include "cluster_child.h"
#include "codec/stream_json.h"
#include "rush/client.h"
#include "rush/replicated.h"
#include "rush/subscriber.h"

#define SHARDS 2
#define TOPIC "rush.cluster.confirmed"
#define JS_STREAM "RUSH_CLUSTER_TEST"
#define JS_SUBJECT "rush.cluster"
#define BATCH 128        /* requests per router submit, half on each shard */
#define EVENTS_MAX 65536 /* per shard: above what ORDERS_MAX orders make */
/* The load stops at this many orders: the mock cluster keeps about 5 MB a partition (some
 * 16,000 messages of ~300 bytes) and drops the oldest beyond that. */
#define ORDERS_MAX (188 * BATCH)
#define PAUSE_MS 2            /* between two submits: a steady load, not a flood */
#define PROGRESS_EVENTS 1000  /* what each phase waits to see reach the JetStream sink */
#define WAIT_MS 30000         /* one phase's bound */
#define SUBMIT_ROUNDS_MAX 200 /* resubmits of one batch (busy, outcome_unknown) */
#define SINK_SEQ_MAX EVENTS_MAX

#include "relay_sinks.h"

static void stop_children(void)
{
    sinks_stop_children();
    cluster_cleanup();
}

TestSuite(relay_cluster, .fini = stop_children, .timeout = 110);

/* ---- the children ---------------------------------------------------------------------------- */

/* The cluster of cluster_child.h, in directories of its own, with room for ORDERS_MAX orders. */
static void relay_cluster_start(void)
{
    cluster_dirs = "relay";
    cluster_orders_max = 262144;
    /* The 1 s lease, not scaled: the router's load gives a request 8 hops of 300 ms, and with a
     * sanitizer's 4 s lease the survivor names the dead leader for longer than that (the router
     * counts a redirect to a node that just timed out as a hop, not as a leaderless wait). */
    cluster_lease_ms = LEASE_MS;
    cluster_start();
}

static pid_t start_relay(void)
{
    const char *const args[] = {"rush-relay",   "--cluster-nats", nats.urls, "--cluster-stream",
                                cluster_stream, "--shards",       "2",       "--kafka",
                                bootstrap,      "--topic",        TOPIC,     "--nats",
                                nats.urls,      "--js-stream",    JS_STREAM, "--js-subject",
                                JS_SUBJECT,     "--inflight-max", "500",     NULL};
    return relay_spawn(nodes[0].bin, nodes[0].dir, args);
}

static void print_all_logs(void)
{
    print_relay_log(nodes[0].dir);
    print_logs();
}

/* ---- the load: a router, coupons on both shards (each ok is one order_confirmed) ----------- */

static struct {
    struct rush_router *router;
    uint64_t orders[ORDERS_MAX];
    _Atomic uint32_t count;
    atomic_bool stop;
    atomic_bool leader_killed; /* until then the load holds at a third of ORDERS_MAX */
    char failure[256];
} load;

/* Submits until no request is busy or outcome_unknown (resent with its key); 0 or -1. */
static int submit_decided(struct rush_request *requests, struct rush_result *results)
{
    static struct rush_request again[BATCH];
    static struct rush_result answers[BATCH];
    static uint32_t where[BATCH];
    int rc = rush_router_submit(load.router, requests, BATCH, results);
    for (int round = 0; rc == 0 && round < SUBMIT_ROUNDS_MAX; round++) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < BATCH; i++)
            if (results[i].outcome == RUSH_BUSY || results[i].outcome == RUSH_OUTCOME_UNKNOWN) {
                again[n] = requests[i];
                where[n++] = i;
            }
        if (n == 0)
            return 0;
        child_sleep_ms(10);
        rc = rush_router_submit(load.router, again, n, answers);
        for (uint32_t j = 0; rc == 0 && j < n; j++)
            results[where[j]] = answers[j];
    }
    return -1;
}

static void *load_run(void *unused)
{
    (void)unused;
    static struct rush_request requests[BATCH];
    static struct rush_result results[BATCH];
    /* Bounded by ORDERS_MAX acknowledged orders, or the test's stop. */
    for (uint32_t user = 1; !atomic_load(&load.stop) && user - 1 + BATCH <= ORDERS_MAX;) {
        /* A fast machine would finish the load before the relay has shown its first events and
         * the leader is killed: two thirds of it are kept for after the kill. */
        while (!atomic_load(&load.leader_killed) && !atomic_load(&load.stop) &&
               atomic_load(&load.count) >= ORDERS_MAX / 3)
            child_sleep_ms(CHILD_POLL_MS);
        for (uint32_t i = 0; i < BATCH; i++, user++) {
            char key[64];
            snprintf(key, sizeof key, "relay-cluster-%u", user);
            requests[i] = (struct rush_request){.op = RUSH_OP_RESERVE,
                                                .qty = 1,
                                                .sku_id = skus[i % SHARDS],
                                                .user_id = user,
                                                .key = rush_client_key(key)};
        }
        if (submit_decided(requests, results) != 0) {
            snprintf(load.failure, sizeof load.failure, "a batch was not decided: %s",
                     rush_client_last_error());
            break;
        }
        for (uint32_t i = 0; i < BATCH; i++) {
            uint32_t at = atomic_load(&load.count);
            if (results[i].outcome != RUSH_OK) {
                snprintf(load.failure, sizeof load.failure, "user %u: outcome %u", user,
                         results[i].outcome);
                atomic_store(&load.stop, true);
                break;
            }
            load.orders[at] = results[i].order_id;
            atomic_store(&load.count, at + 1);
        }
        child_sleep_ms(PAUSE_MS);
    }
    return NULL;
}

static void load_open(void)
{
    struct rush_router_config config;
    rush_router_config_default(&config);
    const char *urls[NODES] = {nodes[0].orders, nodes[1].orders};
    config.urls = urls;
    config.node_count = NODES;
    config.shard_count = SHARDS;
    config.client.timeout_ms = 300;
    config.client.retries_max = 2;
    config.leaderless_retries_max = 300; /* 30 s without a leader at most */
    cr_assert_eq(rush_router_open(&config, &load.router), 0);
}

/* ---- the JetStream sink ------------------------------------------------------------------ */

/* Waits until the sink holds `want` seqs of `shard` (or of both shards with SHARDS). */
static void wait_held(uint32_t shard, uint64_t want)
{
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    for (;;) {
        uint64_t held = shard < SHARDS ? js_held(shard) : js_held_total();
        if (held >= want)
            return;
        if (rush_clock_monotonic_ms() >= deadline || load.failure[0] != '\0')
            print_all_logs();
        cr_assert_eq(load.failure[0], '\0', "load: %s", load.failure);
        cr_assert_lt(rush_clock_monotonic_ms(), deadline, "the sink holds %" PRIu64 " of %" PRIu64,
                     held, want);
        child_sleep_ms(CHILD_POLL_MS);
    }
}

/* ---- the surviving node's stream: what the sinks must hold ---------------------------------- */

static char *node_json[SHARDS][EVENTS_MAX + 1]; /* [shard][seq] */
static uint64_t node_head[SHARDS];
static uint64_t confirmed[2 * EVENTS_MAX];
static uint32_t confirmed_count;

static void read_node_stream(const struct rushd_child *node)
{
    struct rush_subscriber_config config;
    rush_subscriber_config_default(&config);
    config.pub_url = node->pub;
    config.replay_url = node->replay;
    struct rush_subscriber *sub = NULL;
    cr_assert_eq(rush_subscriber_open(&config, &sub), 0);
    static struct rush_stream_event events[1024];
    static struct rush_stream_json_audit audits[SHARDS];
    char json[RUSH_STREAM_JSON_BYTES_MAX + 1];
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    rush_subscriber_resync(sub);
    while (!rush_subscriber_caught_up(sub)) { /* bounded by the deadline */
        int n = rush_subscriber_poll(sub, events, 1024, 100);
        cr_assert(n >= 0 || n == RUSH_ETIMEDOUT || n == RUSH_EPROTO, "poll: %s", rush_strerror(n));
        for (int i = 0; i < n; i++) {
            const struct rush_stream_event *e = &events[i];
            cr_assert(e->shard < SHARDS && e->seq == node_head[e->shard] + 1 &&
                      e->seq <= EVENTS_MAX);
            size_t len = rush_stream_event_json(&audits[e->shard], e, json, sizeof json);
            node_json[e->shard][e->seq] = strndup(json, len);
            node_head[e->shard] = e->seq;
            if (e->type == RUSH_EV_ORDER_CONFIRMED && confirmed_count < 2 * EVENTS_MAX)
                confirmed[confirmed_count++] = e->order_id;
        }
        cr_assert_lt(rush_clock_monotonic_ms(), deadline, "the node's stream not read in time");
    }
    rush_subscriber_close(sub);
}

static int u64_compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every acknowledged order is a confirmed event of the node's stream. */
static void check_acknowledged(void)
{
    qsort(confirmed, confirmed_count, sizeof confirmed[0], u64_compare);
    uint32_t count = atomic_load(&load.count);
    for (uint32_t i = 0; i < count; i++)
        cr_assert(bsearch(&load.orders[i], confirmed, confirmed_count, sizeof confirmed[0],
                          u64_compare) != NULL,
                  "acknowledged order %" PRIu64 " is not in the stream", load.orders[i]);
    cr_log_info("%u acknowledged orders, %u confirmed events", count, confirmed_count);
}

/* ---- what a sink holds: each event byte for byte as the node's stream has it -------------- */

static void take_json(struct holding *h, uint64_t shard, uint64_t seq, const char *json, size_t len,
                      const char *sink)
{
    holding_add(h, node_head, shard, seq, sink);
    const char *want = node_json[shard][seq];
    cr_assert(strlen(want) == len && memcmp(want, json, len) == 0,
              "%s: shard %" PRIu64 " seq %" PRIu64 ": %.*s where the node's stream has %s", sink,
              shard, seq, (int)len, json, want);
}

static void take_kafka(struct holding *h, uint64_t shard, uint64_t seq, json_t *record)
{
    const char *payload = json_string_value(json_object_get(record, "payload"));
    cr_assert(payload != NULL);
    take_json(h, shard, seq, payload, strlen(payload), "kafka");
}

static void take_jetstream(struct holding *h, uint64_t shard, uint64_t seq, natsMsg *msg)
{
    take_json(h, shard, seq, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), "jetstream");
}

/* ---- the test ------------------------------------------------------------------------------- */

Test(relay_cluster, leader_and_relay_killed_then_each_event_once_as_the_node_streams_it)
{
    relay_cluster_start();
    start_mock(nodes[0].bin);
    js_open(nats.urls);
    load_open();
    relay_pid = start_relay();
    pthread_t loader;
    cr_assert_eq(pthread_create(&loader, NULL, load_run, NULL), 0);

    wait_held(SHARDS, PROGRESS_EVENTS);
    int victim = rush_router_leader(load.router, 0);
    cr_assert(victim >= 0 && victim < NODES, "no known leader of shard 0");
    uint64_t shard0_at_kill = js_held(0);
    cr_assert_eq(child_stop(&nodes[victim], SIGKILL), 128 + SIGKILL);
    atomic_store(&load.leader_killed, true);
    int64_t killed_ms = rush_clock_monotonic_ms();
    uint32_t acknowledged_at_kill = atomic_load(&load.count);
    uint64_t shard0_more = shard0_at_kill + PROGRESS_EVENTS;
    wait_held(0, shard0_more < ORDERS_MAX / 2 ? shard0_more : ORDERS_MAX / 2); /* the survivor's */
    cr_log_info("leader %c of shard 0 killed at seq %" PRIu64 "; %" PRIu64
                " more shard-0 events in the sink %" PRId64 " ms later",
                'A' + victim, shard0_at_kill, (uint64_t)PROGRESS_EVENTS,
                rush_clock_monotonic_ms() - killed_ms);

    int64_t deadline = killed_ms + WAIT_MS;
    while (atomic_load(&load.count) < acknowledged_at_kill + 2 * BATCH) { /* both shards decide */
        cr_assert_lt(rush_clock_monotonic_ms(), deadline, "no decision after the kill (load: %s)",
                     load.failure);
        child_sleep_ms(CHILD_POLL_MS);
    }
    cr_assert_eq(kill(relay_pid, 0), 0, "the relay died");
    kill(relay_pid, SIGKILL); /* mid-stream: the load goes on */
    cr_assert_eq(child_wait_exit(relay_pid, CHILD_EXIT_MS), 128 + SIGKILL);
    uint64_t held_at_kill = js_held_total();
    cr_log_info("relay killed with the sink holding %" PRIu64 " events, %u orders acknowledged",
                held_at_kill, atomic_load(&load.count));
    relay_pid = start_relay();
    uint64_t more = held_at_kill + PROGRESS_EVENTS; /* the load ends at ORDERS_MAX orders */
    wait_held(SHARDS, more < ORDERS_MAX ? more : ORDERS_MAX);
    atomic_store(&load.stop, true);
    cr_assert_eq(pthread_join(loader, NULL), 0);
    cr_assert_eq(load.failure[0], '\0', "load: %s", load.failure);

    read_node_stream(&nodes[1 - victim]);
    for (uint32_t shard = 0; shard < SHARDS; shard++)
        wait_held(shard, node_head[shard]);
    kill(relay_pid, SIGTERM); /* stops and flushes: Kafka has all it was handed */
    int status = child_wait_exit(relay_pid, CHILD_EXIT_MS);
    if (status != 0)
        print_all_logs();
    cr_assert_eq(status, 0, "the relay stopped with %d", status);
    relay_pid = -1;
    for (uint32_t shard = 0; shard < SHARDS; shard++)
        cr_assert_eq(js_held(shard), node_head[shard], "the sink went past the node's head");

    check_kafka(take_kafka, node_head, SINK_ANY);
    check_jetstream(take_jetstream, node_head, SINK_ANY);
    check_acknowledged();
    rush_router_close(load.router);
    js_close();
}

/* ---- a log the relay must refuse ------------------------------------------------------------ */

/* Publishes one message of records (lsn first .. first + count - 1) on SUBJECT. */
static void forge(const char *subject, uint64_t first, uint32_t count, bool damage)
{
    static uint8_t payload[4096];
    size_t at = 0;
    for (uint64_t lsn = first; lsn < first + count; lsn++) {
        struct rush_event events[2] = {
            {.type = RUSH_EV_ORDER_CONFIRMED, .qty = 1, .order_id = lsn, .sku_id = 9, .amount = 5},
            {.type = RUSH_EV_ORDER_RESERVED, .qty = 1, .order_id = lsn, .sku_id = 9, .amount = 5},
        };
        at += rush_replicated_put(payload + at, lsn, 1000 + (int64_t)lsn, events, 2);
    }
    if (damage)
        payload[at - 1] ^= 1; /* the last record's checksum no longer holds */
    cr_assert_eq(js_Publish(NULL, js, subject, payload, (int)at, NULL, NULL), NATS_OK);
}

/* Publishes an empty message on SUBJECT: a promotion's fence after `lsn`, or (NULL node) none. */
static void forge_fence(const char *subject, const char *node, uint64_t lsn)
{
    natsMsg *msg = NULL;
    cr_assert_eq(natsMsg_Create(&msg, subject, NULL, NULL, 0), NATS_OK);
    char value[RUSH_REPLICATED_FENCE_BYTES];
    if (node != NULL) {
        cr_assert(rush_replicated_fence_put(value, sizeof value, node, lsn));
        natsMsgHeader_Set(msg, RUSH_REPLICATED_FENCE_HEADER, value);
    }
    cr_assert_eq(js_PublishMsg(NULL, js, msg, NULL, NULL), NATS_OK);
    natsMsg_Destroy(msg);
}

static void forge_stream(const char *name)
{
    char subjects[64];
    snprintf(subjects, sizeof subjects, "%s.shard.*", name);
    const char *list[1] = {subjects};
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = name;
    config.Subjects = list;
    config.SubjectsLen = 1;
    cr_assert_eq(js_AddStream(NULL, js, &config, NULL, NULL), NATS_OK);
}

/* rush-relay on log `stream` into the JetStream sink SINK; its exit status, its output in out. */
static int relay_on(const char *stream, const char *sink, char *out, size_t cap)
{
    char args[1024];
    snprintf(args, sizeof args,
             "--cluster-nats %s --cluster-stream %s --shards 1 --nats %s --js-stream %s "
             "--js-subject %s --idle-exit 500",
             nats.urls, stream, nats.urls, sink, sink);
    return relay_run_in(nodes[0].bin, nodes[0].dir, args, out, cap);
}

Test(relay_cluster, fences_are_skipped_and_a_gap_a_lost_start_or_a_damaged_record_stops_the_relay)
{
    child_make_dir(&nodes[0], "relay-forged");
    cluster_nats_start(1);
    cr_assert_eq(natsConnection_ConnectTo(&nats_connection, nats.urls), NATS_OK);
    cr_assert_eq(natsConnection_JetStream(&js, nats_connection, NULL), NATS_OK);
    static char out[16384];

    /* no such stream yet (rushd not started): the relay waits for it, as for rushd's stream */
    cr_assert_eq(relay_on("absent", "sinkabsent", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "waiting for it") != NULL, "%s", out);

    forge_stream("good"); /* lsns 1-3 in two messages: seqs 1, 2, 3 (one carried event each) */
    forge("good.shard.0", 1, 2, false);
    forge("good.shard.0", 3, 1, false);
    cr_assert_eq(relay_on("good", "sinkgood", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "3 events read") != NULL, "%s", out);

    forge_stream("fenced"); /* promotions' fences (no records) between and after lsns 1-3 */
    forge_fence("fenced.shard.0", "A", 0);
    forge("fenced.shard.0", 1, 2, false);
    forge_fence("fenced.shard.0", "B", 2);
    forge("fenced.shard.0", 3, 1, false);
    forge_fence("fenced.shard.0", "A", 3);
    cr_assert_eq(relay_on("fenced", "sinkfenced", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "3 events read") != NULL, "%s", out);
    cr_assert(strstr(out, "3 fences read") != NULL, "%s", out);

    forge_stream("badfence"); /* a fence naming an lsn the log is not at: a gap */
    forge("badfence.shard.0", 1, 1, false);
    forge_fence("badfence.shard.0", "B", 5);
    cr_assert_eq(relay_on("badfence", "sinkbadfence", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "a fence after lsn 5 where lsn 2 belongs") != NULL, "%s", out);

    forge_stream("empty"); /* an empty message that is no fence */
    forge("empty.shard.0", 1, 1, false);
    forge_fence("empty.shard.0", NULL, 0);
    cr_assert_eq(relay_on("empty", "sinkempty", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "an empty message that is no fence") != NULL, "%s", out);
    cr_assert(strstr(out, "1 events read") != NULL, "what came before it: %s", out);

    forge_stream("gap"); /* lsn 1, then lsn 3 */
    forge("gap.shard.0", 1, 1, false);
    forge("gap.shard.0", 3, 1, false);
    cr_assert_eq(relay_on("gap", "sinkgap", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "a gap in the log (record lsn 3 where lsn 2 belongs)") != NULL, "%s",
              out);
    cr_assert(strstr(out, "1 events read") != NULL, "what came before the gap: %s", out);

    forge_stream("late"); /* the subject starts at lsn 2: the seqs cannot be counted */
    forge("late.shard.0", 2, 2, false);
    cr_assert_eq(relay_on("late", "sinklate", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "does not start at lsn 1") != NULL, "%s", out);

    forge_stream("damaged"); /* lsns 1-2 fine, then a message whose second record is damaged */
    forge("damaged.shard.0", 1, 2, false);
    forge("damaged.shard.0", 3, 2, true);
    cr_assert_eq(relay_on("damaged", "sinkdamaged", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "a malformed message") != NULL, "%s", out);
    cr_assert(strstr(out, "3 events read") != NULL, "the good records before it: %s", out);

    forge_stream("wide"); /* a message on shard 1 while the relay was told of one shard */
    forge("wide.shard.1", 1, 1, false);
    cr_assert_eq(relay_on("wide", "sinkwide", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "not a shard below 1") != NULL, "%s", out);
    js_close();
}
