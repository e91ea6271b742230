/*
 * The confirmed-order stream end to end: a real rushd (fsync durability, its publisher on
 * ipc://), orders through the client library, events through the subscriber library and
 * `rushctl tail`. Checks what the issue promises downstream services:
 *   - a deliberately slow consumer under load still gets every event exactly once, in order per
 *     shard (PUB drops for it; replay fills the gaps);
 *   - the confirmations published per SKU equal the engine's confirmed count for that SKU;
 *   - a consumer (rushctl tail) killed with -9 and restarted resumes from its cursor with no
 *     loss and no duplicate;
 *   - rushd killed with -9 and restarted: the stream goes on with the next seqs, and every order
 *     acknowledged as confirmed before the crash is in the stream exactly once.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rush/client.h"
#include "rush/subscriber.h"
#include "rushd_child.h"

#define EVENTS_MAX 250000
#define SHARDS 2 /* the child campaign's */

TestSuite(stream, .init = NULL, .fini = rushd_cleanup, .timeout = 240);

static void start_rushd(void)
{
    rushd.durability = "fsync";
    rushd_start(false);
}

static struct rush_client *client_open(void)
{
    struct rush_client_config config;
    rush_client_config_default(&config);
    config.url = rushd.orders;
    config.timeout_ms = 2000;
    config.retries_max = 10;
    struct rush_client *client = NULL;
    cr_assert_eq(rush_client_open(&config, &client), 0);
    return client;
}

static struct rush_subscriber *subscriber_open(uint32_t receive_bytes)
{
    struct rush_subscriber_config config;
    rush_subscriber_config_default(&config);
    config.pub_url = rushd.pub;
    config.replay_url = rushd.replay;
    config.receive_buffer_bytes = receive_bytes;
    config.replay_events_max = 500; /* many pages */
    struct rush_subscriber *sub = NULL;
    cr_assert_eq(rush_subscriber_open(&config, &sub), 0);
    return sub;
}

/* Errors rush/subscriber.h calls transient: poll again. */
static bool transient(int rc)
{
    return rc == RUSH_ETIMEDOUT || rc == RUSH_EPROTO;
}

/* Everything a consumer was handed, checked as it arrives: per shard, seq = previous + 1. */
struct consumed {
    struct rush_stream_event events[EVENTS_MAX];
    uint32_t count;
    uint64_t last_seq[SHARDS];
};
static struct consumed consumed;

static void take(const struct rush_stream_event *events, int n)
{
    for (int i = 0; i < n; i++) {
        const struct rush_stream_event *e = &events[i];
        cr_assert_lt(e->shard, SHARDS);
        cr_assert_eq(e->seq, consumed.last_seq[e->shard] + 1, "shard %u: seq %lu after %lu",
                     e->shard, e->seq, consumed.last_seq[e->shard]);
        consumed.last_seq[e->shard] = e->seq;
        cr_assert_lt(consumed.count, EVENTS_MAX);
        consumed.events[consumed.count++] = *e;
    }
}

/*
 * Polls until the subscriber has delivered `want` events in all. An acknowledged order is durable
 * but may be a moment from published (the publisher reads the log behind the durable point), so
 * this asks INFO again until the heads include everything expected.
 */
static void catch_up(struct rush_subscriber *sub, uint32_t want)
{
    static struct rush_stream_event batch[1024];
    int64_t deadline = rush_clock_monotonic_ms() + 60000;
    while (consumed.count < want) {
        rush_subscriber_resync(sub);
        while (!rush_subscriber_caught_up(sub)) {
            int n = rush_subscriber_poll(sub, batch, 1024, 100);
            cr_assert(n >= 0 || transient(n), "poll: %s", rush_strerror(n));
            take(batch, n > 0 ? n : 0);
            cr_assert_lt(rush_clock_monotonic_ms(), deadline, "not caught up in 60 s");
        }
        cr_assert_lt(rush_clock_monotonic_ms(), deadline, "%u of %u events in 60 s", consumed.count,
                     want);
    }
    cr_assert_eq(consumed.count, want, "no more than expected");
}

/* The engine's confirmed units of a SKU, asked through the client. */
static int64_t confirmed_units(struct rush_client *client, uint64_t sku)
{
    struct rush_request query = {.op = RUSH_OP_QUERY_SKU, .sku_id = sku};
    struct rush_result result;
    cr_assert_eq(rush_client_submit(client, &query, 1, &result), 0);
    return result.confirmed;
}

static uint64_t published_units(uint64_t sku)
{
    uint64_t units = 0;
    for (uint32_t i = 0; i < consumed.count; i++)
        if (consumed.events[i].type == RUSH_EV_ORDER_CONFIRMED && consumed.events[i].sku_id == sku)
            units += consumed.events[i].qty;
    return units;
}

/* `count` reserves on the unlimited coupon SKU (pay TTL 0: confirmed at once), users from first. */
static uint32_t buy_coupons(struct rush_client *client, uint64_t first, uint32_t count,
                            uint64_t *order_ids)
{
    static struct rush_request requests[4096];
    static struct rush_result results[4096];
    cr_assert_leq(count, 4096);
    for (uint32_t i = 0; i < count; i++) {
        char key[64];
        snprintf(key, sizeof(key), "coupon-%lu", first + i);
        requests[i] = (struct rush_request){.op = RUSH_OP_RESERVE,
                                            .qty = 1,
                                            .sku_id = 3001,
                                            .user_id = first + i,
                                            .key = rush_client_key(key)};
    }
    cr_assert_eq(rush_client_submit(client, requests, count, results), 0);
    uint32_t ok = 0;
    for (uint32_t i = 0; i < count; i++) {
        cr_assert_eq(results[i].outcome, RUSH_OK);
        if (order_ids != NULL)
            order_ids[ok] = results[i].order_id;
        ok++;
    }
    return ok;
}

Test(stream, a_slow_consumer_gets_every_event_once_in_order_and_counts_match_the_engine)
{
    start_rushd();
    struct rush_client *client = client_open();
    struct rush_subscriber *sub = subscriber_open(RUSH_SUBSCRIBER_RECEIVE_BYTES_MIN);
    memset(&consumed, 0, sizeof(consumed));
    catch_up(sub, 0); /* connected, nothing yet */
    /* group-buys too: pairs complete, publishing each member and the group */
    static struct rush_request groups[400];
    static struct rush_result group_results[400];
    for (uint32_t i = 0; i < 400; i++)
        groups[i] = (struct rush_request){.op = RUSH_OP_GROUP_JOIN_ANY,
                                          .sku_id = 4001,
                                          .user_id = 900000 + i,
                                          .key = rush_client_key_of((char *)&i, sizeof(i))};
    static struct rush_stream_event slow[100];
    uint32_t bought = 0;
    for (uint64_t round = 0; round < 14; round++) {
        bought += buy_coupons(client, 1 + round * 4000, 4000, NULL);
        if (round == 3)
            cr_assert_eq(rush_client_submit(client, groups, 15, group_results), 0);
        if (round < 7)
            continue; /* the consumer is away: ~28,000 events pile up, more than PUB buffers */
        /* then slow: a few small polls with naps while 4,000 more arrive each round */
        for (int p = 0; p < 3; p++) {
            int n = rush_subscriber_poll(sub, slow, 100, 0);
            cr_assert(n >= 0 || transient(n), "poll: %s", rush_strerror(n));
            take(slow, n > 0 ? n : 0);
            child_sleep_ms(20);
        }
    }
    /* coupons, 7 groups of 2 members + 1 completion each; the open seat publishes nothing */
    catch_up(sub, bought + 7 * 3);
    struct rush_subscriber_stats stats;
    rush_subscriber_stats(sub, &stats);
    cr_assert_gt(stats.gaps_detected, 0,
                 "the consumer was slow enough to lose PUB messages (received %lu in %lu "
                 "messages, replayed %lu)",
                 stats.events_received, stats.messages_received, stats.events_replayed);
    cr_assert_gt(stats.events_replayed, 0);
    cr_assert_eq(published_units(3001), bought);
    cr_assert_eq(published_units(3001), (uint64_t)confirmed_units(client, 3001));
    cr_assert_eq(published_units(4001), (uint64_t)confirmed_units(client, 4001));
    uint32_t completed = 0;
    for (uint32_t i = 0; i < consumed.count; i++)
        completed += consumed.events[i].type == RUSH_EV_GROUP_COMPLETED;
    cr_assert_eq(completed, 7, "15 join_any make 7 pairs and one open seat");
    rush_subscriber_close(sub);
    rush_client_close(client);
}

/* Reads a tail output file: every (shard, seq) must appear once, 1..head per shard. */
static uint32_t check_tail_file(const char *path, uint64_t *heads)
{
    FILE *file = fopen(path, "r");
    cr_assert_not_null(file);
    char line[1024];
    uint64_t last[SHARDS] = {0};
    uint32_t lines = 0;
    while (fgets(line, sizeof(line), file) != NULL) {
        json_error_t error;
        json_t *object = json_loads(line, 0, &error);
        cr_assert_not_null(object, "line %u is not JSON: %s", lines + 1, line);
        uint32_t shard = (uint32_t)json_integer_value(json_object_get(object, "shard"));
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(object, "seq"));
        cr_assert_lt(shard, SHARDS);
        cr_assert_eq(seq, last[shard] + 1, "line %u: shard %u seq %lu after %lu", lines + 1, shard,
                     seq, last[shard]);
        last[shard] = seq;
        json_decref(object);
        lines++;
    }
    fclose(file);
    for (uint32_t s = 0; s < SHARDS; s++)
        heads[s] = last[s];
    return lines;
}

static off_t file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

static pid_t tail_spawn(const char *cursor, const char *out, const char *idle_exit_ms)
{
    char rushctl[CHILD_PATH_BYTES + 16];
    snprintf(rushctl, sizeof(rushctl), "%s/rushctl", rushd.bin);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(rushctl, rushctl, "tail", "--pub", rushd.pub, "--replay", rushd.replay, "--cursor",
              cursor, "--out", out, "--idle-exit", idle_exit_ms, (char *)NULL);
        _exit(127);
    }
    return pid;
}

Test(stream, a_tail_killed_and_restarted_resumes_from_its_cursor_without_loss_or_duplicate)
{
    start_rushd();
    struct rush_client *client = client_open();
    char cursor[CHILD_PATH_BYTES], out[CHILD_PATH_BYTES];
    snprintf(cursor, sizeof(cursor), "%s/tail.cursor", rushd.dir);
    snprintf(out, sizeof(out), "%s/tail.jsonl", rushd.dir);
    uint32_t bought = 0;
    for (int kill_round = 0; kill_round < 4; kill_round++) {
        off_t before = file_bytes(out);
        pid_t tail = tail_spawn(cursor, out, "60000");
        bought += buy_coupons(client, 1 + (uint64_t)kill_round * 3000, 3000, NULL);
        /* killed mid-stream, at different points: once it wrote 16, 32, 48, 64 KiB more */
        off_t wanted = before + (off_t)(kill_round + 1) * 16384;
        int64_t deadline = rush_clock_monotonic_ms() + CHILD_READY_MS;
        while (file_bytes(out) < wanted && rush_clock_monotonic_ms() < deadline)
            child_sleep_ms(1);
        cr_assert_geq(file_bytes(out), wanted, "round %d: the tail wrote too little", kill_round);
        kill(tail, SIGKILL);
        cr_assert_eq(child_wait_exit(tail, CHILD_EXIT_MS), 128 + SIGKILL);
    }
    pid_t tail = tail_spawn(cursor, out, "1500"); /* the last one runs until the stream is quiet */
    cr_assert_eq(child_wait_exit(tail, 60000), 0);
    uint64_t heads[SHARDS];
    uint32_t lines = check_tail_file(out, heads);
    cr_assert_eq(lines, bought, "every confirmation exactly once across 4 kills");
    rush_client_close(client);
}

static int compare_ids(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

Test(stream, rushd_killed_and_restarted_the_stream_continues_and_nothing_acknowledged_is_missing)
{
    start_rushd();
    struct rush_client *client = client_open();
    static uint64_t acknowledged[16000];
    uint32_t acked = 0;
    struct rush_subscriber *sub = subscriber_open(64u << 20);
    memset(&consumed, 0, sizeof(consumed));
    for (int crash = 0; crash < 3; crash++) {
        acked += buy_coupons(client, 1 + (uint64_t)crash * 5000, 4000, &acknowledged[acked]);
        rushd_crash_and_restart(); /* the subscriber stays open across it */
        rush_client_close(client);
        client = client_open();
    }
    acked += buy_coupons(client, 900000, 1000, &acknowledged[acked]);
    catch_up(sub, acked); /* each acknowledged order once, and nothing else */
    /* every acknowledged order id is in the stream (ids are unique, so once) */
    static uint64_t published[16000];
    for (uint32_t i = 0; i < consumed.count; i++)
        published[i] = consumed.events[i].order_id;
    qsort(published, consumed.count, sizeof(uint64_t), compare_ids);
    qsort(acknowledged, acked, sizeof(uint64_t), compare_ids);
    cr_assert_eq(memcmp(published, acknowledged, acked * sizeof(uint64_t)), 0);
    cr_assert_eq(published_units(3001), (uint64_t)confirmed_units(client, 3001));
    rush_subscriber_close(sub);
    rush_client_close(client);
}
