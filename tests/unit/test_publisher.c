/*
 * The publisher on a real engine writing a real log, seen through real nanomsg SUB and REQ
 * sockets: only durable stream events are published, with gap-free per-shard seqs that match
 * the engine's decisions; replay serves the same events from memory and, after a restart, from
 * the log, with the numbering continuing; old ranges removed by a snapshot answer too_old;
 * hostile replay requests get a clear status and cost nothing.
 */
#include <criterion/criterion.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rush/stream.h"
#include "stream/publisher.h"
#include "support.h"

#define SHARDS 2
#define RECEIVE_MS 10000

static char dir[64];
static char pub_url[128];
static char replay_url[128];
static struct rush_engine *engine;
static struct rush_publisher *publisher;

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rush-publisher-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(pub_url, sizeof(pub_url), "ipc://%s/pub.ipc", dir);
    snprintf(replay_url, sizeof(replay_url), "ipc://%s/replay.ipc", dir);
}

static void stop_all(void)
{
    rush_publisher_destroy(publisher);
    publisher = NULL;
    if (engine != NULL)
        rush_engine_destroy(engine);
    engine = NULL;
}

static void remove_dir(void)
{
    stop_all();
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    cr_assert_eq(system(command), 0);
}

TestSuite(publisher, .init = make_dir, .fini = remove_dir, .timeout = 120);

static void start_all(uint64_t segment_bytes)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, SHARDS);
    config.limits = small_limits();
    config.data_dir = dir;
    config.durability = RUSH_DURABILITY_FSYNC;
    config.wal_segment_bytes = segment_bytes;
    cr_assert_eq(rush_engine_create(&config, &engine), 0);
    cr_assert_eq(rush_engine_start(engine), 0);
    struct rush_publisher_config pub = {
        .pub_url = pub_url, .replay_url = replay_url, .data_dir = dir, .memory_events_max = 256};
    char why[256] = "";
    cr_assert_eq(rush_publisher_create(&pub, engine, &publisher, why, sizeof(why)), 0, "%s", why);
}

/* SKU `id` with pay TTL 0 (a reserve is the confirmed order), unlimited, price 990. */
static void put_instant_sku(uint64_t id)
{
    struct rush_sku sku = sku_solo(id, 0);
    sku.unlimited = 1;
    sku.pay_ttl_ns = 0;
    sku.price_fen = 990;
    sku.user_qty_max = 1000;
    struct rush_result result;
    cr_assert_eq(rush_engine_sku_put(engine, &sku, &result), 0);
    cr_assert_eq(result.outcome, RUSH_OK);
}

/* `count` reserves of qty 2 by users first.. on SKUs 1..4; returns confirmed orders. */
static uint32_t order(uint64_t first, uint32_t count)
{
    static struct rush_request requests[4096];
    static struct rush_result results[4096];
    cr_assert_leq(count, 4096);
    for (uint32_t i = 0; i < count; i++)
        requests[i] =
            request_of(RUSH_OP_RESERVE, 1 + (first + i) % 4, first + i, 2, 0, 1000000 + first + i);
    cr_assert_eq(rush_engine_execute(engine, requests, count, results), 0);
    uint32_t ok = 0;
    for (uint32_t i = 0; i < count; i++)
        ok += results[i].outcome == RUSH_OK;
    return ok;
}

static int sub_open(void)
{
    int sock = nn_socket(AF_SP, NN_SUB);
    cr_assert_geq(sock, 0);
    cr_assert_eq(nn_setsockopt(sock, NN_SUB, NN_SUB_SUBSCRIBE, "", 0), 0);
    int timeout_ms = 200, rcvbuf = 16 << 20;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    cr_assert_geq(nn_connect(sock, pub_url), 0);
    return sock;
}

/* The pause between two polls of a condition (never a wait for an event by itself). */
static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * Waits until a message (a heartbeat: every shard gets one each RUSH_STREAM_HEARTBEAT_MS while
 * quiet) reaches the subscriber: from then on the connection is up and nothing published is
 * missed. Asserts that it came within RECEIVE_MS and that it was a heartbeat.
 */
static void wait_connected(int sock)
{
    int64_t deadline = (int64_t)time(NULL) + RECEIVE_MS / 1000;
    void *buf = NULL;
    int len = -1;
    while (len < 0 && (int64_t)time(NULL) < deadline)
        len = nn_recv(sock, &buf, NN_MSG, 0);
    cr_assert_geq(len, 0, "no heartbeat reached the subscriber");
    struct rush_stream_view view;
    cr_assert_eq(rush_stream_decode(buf, (size_t)len, &view, NULL, 0), 0);
    cr_assert_eq(view.header.count, 0, "a heartbeat, before any event");
    nn_freemsg(buf);
}

static uint64_t heads_sum(void)
{
    return rush_publisher_head_seq(publisher, 0) + rush_publisher_head_seq(publisher, 1);
}

/*
 * Waits until the publisher has sent `want` events in all, then until its thread sends one more
 * heartbeat: that comes after the pass that sent the last event and recorded how far it read
 * the log (rush_engine_retain_log). Both waits are bounded by RECEIVE_MS.
 */
static void wait_published(uint64_t want)
{
    int64_t deadline = (int64_t)time(NULL) + RECEIVE_MS / 1000;
    while (heads_sum() < want && (int64_t)time(NULL) < deadline)
        pause_ms(1);
    cr_assert_eq(heads_sum(), want, "published");
    struct rush_publisher_stats stats;
    rush_publisher_stats(publisher, &stats);
    uint64_t beats = stats.heartbeats_sent;
    while (stats.heartbeats_sent == beats && (int64_t)time(NULL) < deadline) {
        pause_ms(1);
        rush_publisher_stats(publisher, &stats);
    }
    cr_assert_gt(stats.heartbeats_sent, beats, "the publisher's thread went on");
}

/* What a subscriber saw: every event by shard and seq, and the heartbeats. */
struct seen {
    struct rush_stream_event events[SHARDS][8192];
    uint64_t count[SHARDS]; /* events seen; seqs must be 1..count in order */
};

/* Receives until `want` events arrived in all (or RECEIVE_MS passed); checks the order. */
static void receive(int sock, struct seen *seen, uint64_t want)
{
    int64_t deadline = (int64_t)time(NULL) + RECEIVE_MS / 1000;
    while (seen->count[0] + seen->count[1] < want && (int64_t)time(NULL) < deadline) {
        void *buf = NULL;
        int len = nn_recv(sock, &buf, NN_MSG, 0);
        if (len < 0)
            continue;
        struct rush_stream_view view;
        char why[160];
        cr_assert_eq(rush_stream_decode(buf, (size_t)len, &view, why, sizeof(why)), 0, "%s", why);
        cr_assert_eq(view.header.kind, RUSH_STREAM_EVENTS);
        cr_assert_eq(view.header.shard_count, SHARDS);
        uint32_t shard = view.header.shard;
        for (uint32_t i = 0; i < view.header.count; i++) {
            struct rush_stream_event event;
            rush_stream_view_event(&view, i, &event);
            cr_assert_eq(event.seq, seen->count[shard] + 1, "shard %u: seq %lu after %lu", shard,
                         event.seq, seen->count[shard]);
            cr_assert_lt(seen->count[shard], 8192);
            seen->events[shard][seen->count[shard]++] = event;
        }
        nn_freemsg(buf);
    }
}

/* One replay exchange; the reply's header in *header and its events in events[]. */
static void replay(uint32_t shard, uint64_t from, uint32_t count_max,
                   struct rush_stream_header *header, struct rush_stream_event *events)
{
    int sock = nn_socket(AF_SP, NN_REQ);
    int timeout_ms = 5000;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    cr_assert_geq(nn_connect(sock, replay_url), 0);
    struct rush_stream_request request;
    rush_stream_request_init(&request, RUSH_STREAM_REPLAY, shard, from, count_max);
    cr_assert_eq(nn_send(sock, &request, sizeof(request), 0), (int)sizeof(request));
    void *buf = NULL;
    int len = nn_recv(sock, &buf, NN_MSG, 0);
    cr_assert_geq(len, 0, "no replay reply");
    struct rush_stream_view view;
    char why[160];
    cr_assert_eq(rush_stream_decode(buf, (size_t)len, &view, why, sizeof(why)), 0, "%s", why);
    *header = view.header;
    for (uint32_t i = 0; i < view.header.count; i++)
        rush_stream_view_event(&view, i, &events[i]);
    nn_freemsg(buf);
    nn_close(sock);
}

static struct seen seen;
static struct rush_stream_event replayed[8192];

Test(publisher, publishes_every_confirmation_once_with_gap_free_seqs_per_shard)
{
    start_all(0);
    for (uint64_t sku = 1; sku <= 4; sku++)
        put_instant_sku(sku);
    int sock = sub_open();
    wait_connected(sock); /* the subscription reaches the publisher before the first event */
    uint32_t ok = order(1, 3000);
    cr_assert_eq(ok, 3000);
    memset(&seen, 0, sizeof(seen));
    receive(sock, &seen, ok);
    cr_assert_eq(seen.count[0] + seen.count[1], ok, "every confirmation published");
    uint64_t per_sku[5] = {0};
    for (uint32_t s = 0; s < SHARDS; s++) {
        for (uint64_t i = 0; i < seen.count[s]; i++) {
            const struct rush_stream_event *e = &seen.events[s][i];
            cr_assert_eq(e->type, RUSH_EV_ORDER_CONFIRMED);
            cr_assert_eq(e->shard, s);
            cr_assert_eq(rush_id_shard(e->order_id), s, "the order id names its shard");
            cr_assert_eq(e->qty, 2);
            cr_assert_eq(e->price_fen, 990, "unit price, not price * qty");
            cr_assert_eq(e->sku_id, 1 + e->user_id % 4);
            cr_assert_eq(e->op, RUSH_OP_RESERVE);
            cr_assert_gt(e->time_ns, 0);
            per_sku[e->sku_id]++;
        }
        cr_assert_eq(rush_publisher_head_seq(publisher, s), seen.count[s]);
    }
    for (uint64_t sku = 1; sku <= 4; sku++)
        cr_assert_eq(per_sku[sku], 750, "sku %lu", sku);
    nn_close(sock);
}

Test(publisher, quiet_shards_send_heartbeats_with_their_head)
{
    start_all(0);
    put_instant_sku(1);
    cr_assert_eq(order(4, 1), 1); /* sku 1 <- user 4 */
    wait_published(1);            /* published before the subscriber comes */
    int sock = sub_open();
    uint32_t beats[SHARDS] = {0};
    int64_t deadline = (int64_t)time(NULL) + 5;
    while ((beats[0] < 3 || beats[1] < 3) && (int64_t)time(NULL) < deadline) {
        void *buf = NULL;
        int len = nn_recv(sock, &buf, NN_MSG, 0);
        if (len < 0)
            continue;
        struct rush_stream_view view;
        cr_assert_eq(rush_stream_decode(buf, (size_t)len, &view, NULL, 0), 0);
        cr_assert_eq(view.header.count, 0, "nothing new: heartbeats only");
        uint32_t shard = view.header.shard;
        cr_assert_eq(view.header.head_seq, rush_publisher_head_seq(publisher, shard));
        beats[shard]++;
        nn_freemsg(buf);
    }
    cr_assert(beats[0] >= 3 && beats[1] >= 3, "heartbeats %u %u", beats[0], beats[1]);
    cr_assert_eq(rush_publisher_head_seq(publisher, 0) + rush_publisher_head_seq(publisher, 1), 1);
    nn_close(sock);
}

Test(publisher, replay_serves_memory_then_the_log_and_numbering_survives_a_restart)
{
    start_all(0);
    for (uint64_t sku = 1; sku <= 4; sku++)
        put_instant_sku(sku);
    int sock = sub_open();
    wait_connected(sock);
    cr_assert_eq(order(1, 3000), 3000);
    memset(&seen, 0, sizeof(seen));
    receive(sock, &seen, 3000);
    nn_close(sock);
    struct rush_stream_header header;
    /* the ring holds the newest 256: the first 100 come from the log, the last 100 from memory */
    for (uint32_t s = 0; s < SHARDS; s++) {
        replay(s, 1, 100, &header, replayed);
        cr_assert_eq(header.status, RUSH_STREAM_OK);
        cr_assert_eq(header.count, 100);
        cr_assert_eq(header.head_seq, seen.count[s]);
        cr_assert_eq(memcmp(replayed, seen.events[s], 100 * sizeof(replayed[0])), 0);
        uint64_t from = seen.count[s] - 99;
        replay(s, from, 500, &header, replayed);
        cr_assert_eq(header.count, 100, "capped at the head");
        cr_assert_eq(memcmp(replayed, &seen.events[s][from - 1], 100 * sizeof(replayed[0])), 0);
        replay(s, seen.count[s] + 1, 10, &header, replayed);
        cr_assert_eq(header.status, RUSH_STREAM_OK);
        cr_assert_eq(header.count, 0, "beyond the head: nothing yet");
    }
    struct rush_publisher_stats stats;
    rush_publisher_stats(publisher, &stats);
    cr_assert_eq(stats.replay_events_from_log, 200, "%lu from log, %lu from memory (heads %lu %lu)",
                 stats.replay_events_from_log, stats.replay_events_from_memory, seen.count[0],
                 seen.count[1]);
    cr_assert_eq(stats.replay_events_from_memory, 200);

    uint64_t heads[SHARDS] = {seen.count[0], seen.count[1]};
    stop_all();
    start_all(0);
    for (uint32_t s = 0; s < SHARDS; s++) {
        cr_assert_eq(rush_publisher_head_seq(publisher, s), heads[s], "the head survives");
        /* page through the whole history from the log, 700 at a time */
        for (uint64_t from = 1; from <= heads[s]; from += header.count) {
            replay(s, from, 700, &header, replayed);
            cr_assert_eq(header.status, RUSH_STREAM_OK);
            cr_assert_gt(header.count, 0);
            cr_assert_eq(
                memcmp(replayed, &seen.events[s][from - 1], header.count * sizeof(replayed[0])), 0,
                "shard %u from %lu", s, from);
        }
    }
    sock = sub_open();
    wait_connected(sock);
    cr_assert_eq(order(5000, 1000), 1000);
    memset(&seen, 0, sizeof(seen));
    seen.count[0] = heads[0]; /* receive() checks that seqs continue from the old heads */
    seen.count[1] = heads[1];
    receive(sock, &seen, heads[0] + heads[1] + 1000);
    cr_assert_eq(seen.count[0] + seen.count[1], heads[0] + heads[1] + 1000);
    nn_close(sock);
}

Test(publisher, ranges_a_snapshot_removed_answer_too_old_with_the_oldest_kept)
{
    start_all(64 * 1024); /* small segments, so that a snapshot removes some */
    for (uint64_t sku = 1; sku <= 4; sku++)
        put_instant_sku(sku);
    for (uint64_t round = 0; round < 10; round++)
        cr_assert_eq(order(1 + round * 400, 400), 400);
    wait_published(4000); /* the publisher read everything: nothing retained */
    cr_assert_eq(rush_engine_snapshot(engine), 0);
    cr_assert_eq(order(9000, 100), 100); /* later batches */
    struct rush_stream_header header;
    for (uint32_t s = 0; s < SHARDS; s++) {
        replay(s, 1, 10, &header, replayed);
        cr_assert_eq(header.status, RUSH_STREAM_TOO_OLD, "shard %u", s);
        cr_assert_gt(header.oldest_seq, 1);
        uint64_t oldest = header.oldest_seq;
        replay(s, oldest, 10, &header, replayed);
        cr_assert_eq(header.status, RUSH_STREAM_OK);
        cr_assert_eq(header.count, 10);
        cr_assert_eq(replayed[0].seq, oldest);
    }
}

Test(publisher, hostile_replay_requests_get_a_status_and_the_service_goes_on)
{
    start_all(0);
    int sock = nn_socket(AF_SP, NN_REQ);
    int timeout_ms = 5000;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    cr_assert_geq(nn_connect(sock, replay_url), 0);
    struct rush_stream_request good;
    rush_stream_request_init(&good, RUSH_STREAM_REPLAY, 0, 1, 10);
    struct rush_stream_request bad[6];
    for (int i = 0; i < 6; i++)
        bad[i] = good;
    bad[0].magic ^= 1;
    bad[1].from_seq = 0;
    bad[2].count_max = RUSH_STREAM_REPLAY_MAX + 1;
    bad[3].pad = 7;
    bad[4].kind = RUSH_STREAM_EVENTS;
    bad[5].shard = 60; /* decodes; no such shard */
    for (int i = 0; i < 7; i++) {
        const void *message = i < 6 ? (const void *)&bad[i] : "short";
        size_t len = i < 6 ? sizeof(bad[i]) : 5;
        cr_assert_eq(nn_send(sock, message, len, 0), (int)len);
        void *buf = NULL;
        int got = nn_recv(sock, &buf, NN_MSG, 0);
        cr_assert_geq(got, 0, "request %d unanswered", i);
        struct rush_stream_view view;
        cr_assert_eq(rush_stream_decode(buf, (size_t)got, &view, NULL, 0), 0);
        cr_assert_eq(view.header.status, i == 5 ? RUSH_STREAM_NO_SHARD : RUSH_STREAM_BAD_REQUEST,
                     "request %d", i);
        nn_freemsg(buf);
    }
    struct rush_stream_request info;
    rush_stream_request_init(&info, RUSH_STREAM_INFO, 0, 0, 0);
    cr_assert_eq(nn_send(sock, &info, sizeof(info), 0), (int)sizeof(info));
    void *buf = NULL;
    int got = nn_recv(sock, &buf, NN_MSG, 0);
    struct rush_stream_view view;
    cr_assert_eq(rush_stream_decode(buf, (size_t)got, &view, NULL, 0), 0);
    cr_assert_eq(view.header.kind, RUSH_STREAM_INFO);
    cr_assert_eq(view.header.count, SHARDS);
    nn_freemsg(buf);
    nn_close(sock);
    struct rush_publisher_stats stats;
    rush_publisher_stats(publisher, &stats);
    cr_assert_eq(stats.replay_bad_requests, 6);
}
