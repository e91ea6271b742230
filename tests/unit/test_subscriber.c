/*
 * The stream subscriber (include/rush/subscriber.h) and `rushctl tail`, against a fake
 * publisher in this process: a real nanomsg PUB socket driven by the test (which drops,
 * reorders and forges messages on purpose) and a REP replay server on its own thread serving
 * REPLAY and INFO from in-memory event arrays, that can answer TOO_OLD, stay silent or answer
 * nonsense on command. Checked: every event exactly once and in order per shard (each event
 * compared with the publisher's copy), paging, quiet shards caught up through INFO, cursor files
 * (round trip, atomic save, damage refused), resume across close and reopen, lost ranges, a
 * silent replay endpoint, hostile replies; then rushctl tail as a process: JSON lines, the
 * cursor file, resume without loss or duplicate, a torn batch cut back, exit statuses.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "rush/subscriber.h"

#define SHARDS 3
#define EVENTS_MAX (RUSH_STREAM_REPLAY_MAX + 100) /* per shard: one full replay reply and more */
#define COLLECT_MS 10000
#define PATH_BYTES 256

/* ---- a fake publisher ---- */

enum fake_mode {
    FAKE_SERVE = 0,
    FAKE_MUTE = 1,        /* receive requests, answer none */
    FAKE_GARBAGE = 2,     /* answer bytes that do not decode */
    FAKE_WRONG_SEQ = 3,   /* answer a REPLAY with events one seq later than asked */
    FAKE_WRONG_SHARD = 4, /* answer a REPLAY with another shard's events */
};

struct fake {
    char dir[64];
    char pub_url[PATH_BYTES];
    char replay_url[PATH_BYTES];
    uint32_t shard_count;
    int pub;
    int rep;
    pthread_t thread;
    atomic_bool stop;
    atomic_int mode;
    atomic_uint requests;
    _Atomic uint64_t head[SHARDS];
    _Atomic uint64_t oldest[SHARDS];
    struct rush_stream_event events[SHARDS][EVENTS_MAX]; /* events[s][i].seq == i + 1 */
};

static struct fake *fake;

/* A reply: the header then `count` records of record_bytes from records. */
static void fake_send(struct fake *f, const struct rush_stream_header *header, const void *records,
                      size_t record_bytes)
{
    size_t len = sizeof *header + header->count * record_bytes;
    uint8_t *buf = nn_allocmsg(len, 0);
    cr_assert(buf != NULL);
    memcpy(buf, header, sizeof *header);
    if (header->count > 0)
        memcpy(buf + sizeof *header, records, header->count * record_bytes);
    cr_assert(nn_send(f->rep, &buf, NN_MSG, 0) >= 0);
}

static void fake_info(struct fake *f)
{
    struct rush_stream_header header;
    rush_stream_header_init(&header, RUSH_STREAM_INFO, 0, f->shard_count);
    header.shard_count = f->shard_count;
    struct rush_stream_shard_info info[SHARDS];
    for (uint32_t s = 0; s < f->shard_count; s++) {
        info[s].head_seq = atomic_load(&f->head[s]);
        info[s].oldest_seq = info[s].head_seq == 0 ? 0 : atomic_load(&f->oldest[s]);
    }
    fake_send(f, &header, info, sizeof info[0]);
}

static void fake_replay(struct fake *f, const struct rush_stream_request *request, int mode)
{
    uint32_t shard = request->shard;
    struct rush_stream_header header;
    rush_stream_header_init(&header, RUSH_STREAM_REPLAY, shard, 0);
    header.shard_count = f->shard_count;
    if (shard >= f->shard_count) {
        header.status = RUSH_STREAM_NO_SHARD;
        header.shard = 0;
        fake_send(f, &header, NULL, 0);
        return;
    }
    uint64_t head = atomic_load(&f->head[shard]);
    header.head_seq = head;
    header.oldest_seq = head == 0 ? 0 : atomic_load(&f->oldest[shard]);
    if (head > 0 && request->from_seq < header.oldest_seq) {
        header.status = RUSH_STREAM_TOO_OLD;
        fake_send(f, &header, NULL, 0);
        return;
    }
    uint64_t from = request->from_seq + (mode == FAKE_WRONG_SEQ);
    uint64_t available = from > head ? 0 : head - from + 1;
    header.count = available < request->count_max ? (uint32_t)available : request->count_max;
    if (mode == FAKE_WRONG_SHARD) {
        uint32_t other = (shard + 1) % f->shard_count;
        uint64_t other_head = atomic_load(&f->head[other]);
        header.shard = (uint8_t)other;
        header.head_seq = other_head;
        header.count = from > other_head ? 0 : 1;
        fake_send(f, &header, &f->events[other][from - 1], sizeof(struct rush_stream_event));
        return;
    }
    fake_send(f, &header, header.count > 0 ? &f->events[shard][from - 1] : NULL,
              sizeof(struct rush_stream_event));
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) { /* one request per pass; stop ends it */
        void *buf = NULL;
        int len = nn_recv(f->rep, &buf, NN_MSG, 0);
        if (len < 0)
            continue; /* the receive timeout: look at stop */
        atomic_fetch_add(&f->requests, 1);
        struct rush_stream_request request;
        int rc = rush_stream_request_decode(buf, (size_t)len, &request, NULL, 0);
        nn_freemsg(buf);
        cr_assert_eq(rc, 0, "the subscriber sent a request that does not decode");
        int mode = atomic_load(&f->mode);
        if (mode == FAKE_MUTE)
            continue;
        if (mode == FAKE_GARBAGE) {
            cr_assert(nn_send(f->rep, "garbage!", 8, 0) == 8);
            continue;
        }
        if (request.kind == RUSH_STREAM_INFO)
            fake_info(f);
        else
            fake_replay(f, &request, mode);
    }
    return NULL;
}

/* Appends n events to a shard (not published). */
static void fake_append(struct fake *f, uint32_t shard, uint32_t n)
{
    uint64_t head = atomic_load(&f->head[shard]);
    cr_assert_leq(head + n, EVENTS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t seq = head + i + 1;
        f->events[shard][seq - 1] = (struct rush_stream_event){
            .seq = seq,
            .time_ns = INT64_C(1700000000000000000) + (int64_t)seq,
            .order_id = ((uint64_t)shard << 56) | seq,
            .group_id = seq % 5 == 0 ? ((uint64_t)shard << 56) | (UINT64_C(1) << 55) | seq : 0,
            .sku_id = 1000 + shard,
            .user_id = seq,
            .price_fen = 100 + (int64_t)shard,
            .qty = 1 + (uint32_t)(seq % 3),
            .type = seq % 7 == 0 ? RUSH_EV_ORDER_RELEASED : RUSH_EV_ORDER_CONFIRMED,
            .shard = (uint8_t)shard,
            .op = seq % 7 == 0 ? RUSH_OP_CANCEL : RUSH_OP_CONFIRM,
        };
    }
    atomic_store(&f->head[shard], head + n);
}

/* Publishes events from..from+count-1 of a shard (count 0: a heartbeat) with head `head`. */
static void fake_publish_head(struct fake *f, uint32_t shard, uint64_t from, uint32_t count,
                              uint64_t head)
{
    size_t len = RUSH_STREAM_HEADER_BYTES + (size_t)count * sizeof(struct rush_stream_event);
    uint8_t *buf = nn_allocmsg(len, 0);
    struct rush_stream_header header;
    rush_stream_header_init(&header, RUSH_STREAM_EVENTS, shard, count);
    header.shard_count = f->shard_count;
    header.head_seq = head;
    memcpy(buf, &header, sizeof header);
    if (count > 0)
        memcpy(buf + sizeof header, &f->events[shard][from - 1], count * sizeof(f->events[0][0]));
    cr_assert(nn_send(f->pub, &buf, NN_MSG, 0) >= 0);
}

static void fake_publish(struct fake *f, uint32_t shard, uint64_t from, uint32_t count)
{
    fake_publish_head(f, shard, from, count, atomic_load(&f->head[shard]));
}

static void fake_publish_raw(struct fake *f, const void *bytes, size_t len)
{
    cr_assert(nn_send(f->pub, bytes, len, 0) == (int)len);
}

static void fake_start(uint32_t shard_count)
{
    signal(SIGPIPE, SIG_IGN);
    fake = calloc(1, sizeof *fake);
    cr_assert(fake != NULL);
    fake->shard_count = shard_count;
    snprintf(fake->dir, sizeof fake->dir, "/tmp/rush-test-subscriber-XXXXXX");
    cr_assert(mkdtemp(fake->dir) != NULL);
    snprintf(fake->pub_url, sizeof fake->pub_url, "ipc://%s/pub.ipc", fake->dir);
    snprintf(fake->replay_url, sizeof fake->replay_url, "ipc://%s/replay.ipc", fake->dir);
    for (uint32_t s = 0; s < SHARDS; s++)
        atomic_store(&fake->oldest[s], 1);
    fake->pub = nn_socket(AF_SP, NN_PUB);
    fake->rep = nn_socket(AF_SP, NN_REP);
    cr_assert(fake->pub >= 0 && fake->rep >= 0);
    cr_assert(nn_bind(fake->pub, fake->pub_url) >= 0);
    cr_assert(nn_bind(fake->rep, fake->replay_url) >= 0);
    int timeout_ms = 20;
    nn_setsockopt(fake->rep, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    int bytes_max = -1;
    nn_setsockopt(fake->rep, NN_SOL_SOCKET, NN_RCVMAXSIZE, &bytes_max, sizeof bytes_max);
    cr_assert(pthread_create(&fake->thread, NULL, fake_main, fake) == 0);
}

static void fake_cleanup(void)
{
    if (fake == NULL)
        return;
    atomic_store(&fake->stop, true);
    pthread_join(fake->thread, NULL);
    nn_close(fake->pub);
    nn_close(fake->rep);
    char command[PATH_BYTES];
    snprintf(command, sizeof command, "rm -rf '%s'", fake->dir);
    int rc = system(command);
    (void)rc;
    free(fake);
    fake = NULL;
}

/* ---- the consumer's side ---- */

static struct rush_subscriber_config test_config(void)
{
    struct rush_subscriber_config config;
    rush_subscriber_config_default(&config);
    config.pub_url = fake->pub_url;
    config.replay_url = fake->replay_url;
    config.replay_timeout_ms = 200;
    config.replay_retries_max = 5;
    config.info_interval_ms = 200;
    return config;
}

static struct rush_subscriber *test_open(const struct rush_subscriber_config *config)
{
    struct rush_subscriber *sub = NULL;
    int rc = rush_subscriber_open(config, &sub);
    cr_assert_eq(rc, 0, "open: %s", rush_subscriber_last_error(NULL));
    return sub;
}

/* What the consumer has: per shard the last seq seen. Checks order, no dup, content. */
struct seen {
    uint64_t last[SHARDS];
    uint64_t total;
};

static void seen_take(struct seen *seen, const struct rush_stream_event *events, int n)
{
    for (int i = 0; i < n; i++) {
        const struct rush_stream_event *e = &events[i];
        cr_assert_lt(e->shard, fake->shard_count);
        cr_assert_eq(e->seq, seen->last[e->shard] + 1, "shard %u: seq %lu after %lu", e->shard,
                     e->seq, seen->last[e->shard]);
        cr_assert(i == 0 || e->shard == events[0].shard, "one shard per poll");
        cr_assert_eq(memcmp(e, &fake->events[e->shard][e->seq - 1], sizeof *e), 0,
                     "shard %u seq %lu differs from what was published", e->shard, e->seq);
        seen->last[e->shard] = e->seq;
        seen->total++;
    }
}

/* Polls until every shard is seen up to the fake's head. */
static void collect_all(struct rush_subscriber *sub, struct seen *seen, uint32_t max)
{
    static struct rush_stream_event events[RUSH_STREAM_REPLAY_MAX];
    int64_t deadline = rush_clock_monotonic_ms() + COLLECT_MS;
    for (;;) {
        bool done = true;
        for (uint32_t s = 0; s < fake->shard_count; s++)
            done = done && seen->last[s] == atomic_load(&fake->head[s]);
        if (done)
            return;
        cr_assert_lt(rush_clock_monotonic_ms(), deadline, "not caught up: %s",
                     rush_subscriber_last_error(sub));
        int n = rush_subscriber_poll(sub, events, max, 50);
        cr_assert_geq(n, 0, "poll: %s: %s", rush_strerror(n), rush_subscriber_last_error(sub));
        seen_take(seen, events, n);
    }
}

static uint64_t xorshift(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static uint64_t seed_of_time(void)
{
    return (uint64_t)rush_clock_wall_ns() * 2654435761u + 1;
}

/* Sends heartbeats until the subscriber has received a PUB message: the SUB is connected. */
static void wait_connected(struct rush_subscriber *sub, struct seen *seen)
{
    struct rush_stream_event events[64];
    struct rush_subscriber_stats stats;
    int64_t deadline = rush_clock_monotonic_ms() + COLLECT_MS;
    do {
        cr_assert_lt(rush_clock_monotonic_ms(), deadline, "the SUB socket never connected");
        fake_publish(fake, 0, 0, 0);
        int n = rush_subscriber_poll(sub, events, 64, 20);
        cr_assert_geq(n, 0);
        seen_take(seen, events, n);
        rush_subscriber_stats(sub, &stats);
    } while (stats.messages_received == 0);
}

TestSuite(subscriber, .fini = fake_cleanup, .timeout = 120);

Test(subscriber, config_checks)
{
    struct rush_subscriber_config config;
    rush_subscriber_config_default(&config);
    cr_assert_eq(rush_subscriber_config_check(&config, NULL, 0), 0);
    cr_assert_str_eq(config.pub_url, "tcp://127.0.0.1:7103");
    cr_assert_str_eq(config.replay_url, "tcp://127.0.0.1:7104");
    char why[RUSH_SUBSCRIBER_ERROR_BYTES];
    config.replay_timeout_ms = 0;
    cr_assert_eq(rush_subscriber_config_check(&config, why, sizeof why), RUSH_ECONFIG);
    cr_assert(strstr(why, "replay_timeout_ms 0") != NULL, "%s", why);
    rush_subscriber_config_default(&config);
    config.replay_events_max = RUSH_STREAM_REPLAY_MAX + 1;
    cr_assert_eq(rush_subscriber_config_check(&config, why, sizeof why), RUSH_ECONFIG);
    rush_subscriber_config_default(&config);
    config.pub_url = "";
    cr_assert_eq(rush_subscriber_config_check(&config, why, sizeof why), RUSH_ECONFIG);
    rush_subscriber_config_default(&config);
    config.info_interval_ms = 10;
    struct rush_subscriber *sub = NULL;
    cr_assert_eq(rush_subscriber_open(&config, &sub), RUSH_ECONFIG);
    cr_assert_null(sub);
    cr_assert(strstr(rush_subscriber_last_error(NULL), "info_interval_ms") != NULL);
    rush_subscriber_config_default(&config);
    config.pub_url = "nonsense://x";
    cr_assert_lt(rush_subscriber_open(&config, &sub), 0);
    cr_assert(strstr(rush_subscriber_last_error(NULL), "nonsense://x") != NULL);
}

Test(subscriber, quiet_shards_are_caught_up_through_info_and_paged_replay)
{
    fake_start(3);
    fake_append(fake, 0, 100);
    fake_append(fake, 2, 37);
    struct rush_subscriber_config config = test_config();
    config.replay_events_max = 16; /* 7 pages for shard 0 */
    struct rush_subscriber *sub = test_open(&config);
    struct seen seen = {0};
    struct rush_stream_event events[64];
    int64_t deadline = rush_clock_monotonic_ms() + COLLECT_MS;
    cr_assert_not(rush_subscriber_caught_up(sub));
    while (!rush_subscriber_caught_up(sub)) {
        cr_assert_lt(rush_clock_monotonic_ms(), deadline);
        int n = rush_subscriber_poll(sub, events, 64, 50);
        cr_assert_geq(n, 0, "%s", rush_subscriber_last_error(sub));
        cr_assert_leq(n, 16);
        seen_take(&seen, events, n);
    }
    cr_assert_eq(seen.last[0], 100);
    cr_assert_eq(seen.last[1], 0);
    cr_assert_eq(seen.last[2], 37);
    struct rush_subscriber_stats stats;
    rush_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.events_delivered, 137);
    cr_assert_eq(stats.events_replayed, 137);
    cr_assert_eq(stats.replay_requests, 7 + 3);
    cr_assert_eq(rush_subscriber_shard_count(sub), 3);
    struct rush_subscriber_shard shard;
    cr_assert_eq(rush_subscriber_shard(sub, 0, &shard), 0);
    cr_assert_eq(shard.delivered_seq, 100);
    cr_assert_eq(shard.head_seq, 100);
    cr_assert_eq(shard.oldest_seq, 1);
    cr_assert_eq(rush_subscriber_shard(sub, 3, &shard), -EINVAL);

    /* more later, no PUB at all: resync finds them */
    fake_append(fake, 1, 5);
    rush_subscriber_resync(sub);
    cr_assert_not(rush_subscriber_caught_up(sub));
    collect_all(sub, &seen, 64);
    cr_assert_eq(seen.last[1], 5);
    rush_subscriber_close(sub);
}

/*
 * The biggest reply replay may send (RUSH_STREAM_REPLAY_MAX events, what the default
 * replay_events_max asks) arrives: nanomsg counts the REP socket's 4-byte request id in the
 * receive limit, so a limit of exactly RUSH_STREAM_MESSAGE_BYTES_MAX dropped it in silence and the
 * subscriber timed out on any backlog longer than one page.
 */
Test(subscriber, a_full_replay_page_arrives)
{
    fake_start(1);
    fake_append(fake, 0, RUSH_STREAM_REPLAY_MAX + 50);
    struct rush_subscriber_config config = test_config();
    config.replay_events_max = RUSH_STREAM_REPLAY_MAX;
    struct rush_subscriber *sub = test_open(&config);
    struct seen seen = {0};
    collect_all(sub, &seen, RUSH_STREAM_REPLAY_MAX);
    struct rush_subscriber_stats stats;
    rush_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.events_replayed, RUSH_STREAM_REPLAY_MAX + 50);
    cr_assert_eq(stats.request_retries, 0);
    rush_subscriber_close(sub);
}

Test(subscriber, every_event_once_in_order_across_drops_reorders_and_forgeries)
{
    const uint64_t seed_first = seed_of_time();
    uint64_t seed = seed_first;
    cr_log_info("seed %lu", seed_first);
    fake_start(3);
    struct rush_subscriber_config config = test_config();
    config.replay_events_max = 7;
    struct rush_subscriber *sub = test_open(&config);
    struct seen seen = {0};
    wait_connected(sub, &seen);
    struct rush_stream_event events[16];
    uint32_t forged = 0;
    for (int round = 0; round < 600; round++) { /* bounded: 600 rounds */
        uint32_t shard = (uint32_t)(xorshift(&seed) % 3);
        uint32_t n = 1 + (uint32_t)(xorshift(&seed) % 5);
        uint64_t from = atomic_load(&fake->head[shard]) + 1;
        uint64_t stale_head = from - 1;
        fake_append(fake, shard, n);
        uint64_t roll = xorshift(&seed) % 100;
        if (roll < 60) {
            fake_publish(fake, shard, from, n); /* delivered live */
        } else if (roll < 70) {
            fake_publish(fake, shard, from, n); /* twice: duplicates */
            fake_publish(fake, shard, from, n);
        } else if (roll < 80) {
            fake_publish(fake, shard, from, 0); /* a heartbeat, then a stale one */
            fake_publish_head(fake, shard, 0, 0, stale_head);
        } else if (roll < 85) {
            uint8_t junk[40];
            for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (uint8_t)xorshift(&seed);
            fake_publish_raw(fake, junk, 1 + xorshift(&seed) % sizeof junk);
            forged++;
        } else if (roll < 88) {
            /* a run whose seqs do not follow each other: the decoder refuses it */
            struct {
                struct rush_stream_header header;
                struct rush_stream_event events[2];
            } bad;
            rush_stream_header_init(&bad.header, RUSH_STREAM_EVENTS, shard, 2);
            bad.header.shard_count = 3;
            bad.header.head_seq = from + 10;
            bad.events[0] = fake->events[shard][from - 1];
            bad.events[1] = fake->events[shard][from - 1];
            fake_publish_raw(fake, &bad, sizeof bad);
            forged++;
        } /* else: dropped */
        /* take what has arrived: poll until a poll finds nothing for 2 ms (bounded) */
        for (int polls = 0; polls < 1000; polls++) {
            uint32_t max = 1 + (uint32_t)(xorshift(&seed) % 16);
            int got = rush_subscriber_poll(sub, events, max, 2);
            cr_assert_geq(got, 0, "seed %lu: %s", seed_first, rush_subscriber_last_error(sub));
            seen_take(&seen, events, got);
            if (got == 0)
                break;
        }
    }
    for (uint32_t s = 0; s < 3; s++)
        fake_publish(fake, s, 0, 0); /* final heartbeats; INFO would find the tails anyway */
    collect_all(sub, &seen, 16);
    struct rush_subscriber_stats stats;
    rush_subscriber_stats(sub, &stats);
    cr_log_info("received %lu replayed %lu duplicates %lu gaps %lu/%lu malformed %lu",
                stats.messages_received, stats.events_replayed, stats.duplicates_dropped,
                stats.gaps_detected, stats.gaps_filled, stats.malformed);
    cr_assert_eq(stats.events_delivered, seen.total);
    cr_assert_gt(stats.events_replayed, 0, "seed %lu", seed_first);
    cr_assert_gt(stats.gaps_detected, 0, "seed %lu", seed_first);
    cr_assert_gt(stats.duplicates_dropped, 0, "seed %lu", seed_first);
    cr_assert_gt(stats.malformed, 0, "seed %lu", seed_first);
    cr_assert_leq(stats.malformed, forged, "seed %lu: PUB may drop, never invent", seed_first);
    cr_assert_lt(stats.events_replayed, stats.events_delivered, "PUB delivered some live");
    rush_subscriber_close(sub);
}

Test(subscriber, cursor_files_round_trip_and_refuse_damage)
{
    fake_start(2);
    char path[PATH_BYTES];
    snprintf(path, sizeof path, "%s/cursor", fake->dir);
    struct rush_stream_cursor cursor = {.shard_count = 3, .output_bytes = UINT64_MAX}, loaded;
    cursor.delivered_seq[0] = 15;
    cursor.delivered_seq[2] = UINT64_C(18446744073709551614);
    char why[128];
    cr_assert_eq(rush_stream_cursor_load(path, &loaded, why, sizeof why), 0, "missing: fresh");
    cr_assert_eq(loaded.shard_count, 0);
    cr_assert_eq(rush_stream_cursor_save(path, &cursor), 0);
    cr_assert_eq(rush_stream_cursor_load(path, &loaded, why, sizeof why), 1, "%s", why);
    cr_assert_eq(memcmp(&loaded, &cursor, sizeof cursor), 0);
    char tmp[PATH_BYTES + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_neq(access(tmp, F_OK), 0, "no temporary file left behind");

    /* every single-byte change is caught */
    FILE *file = fopen(path, "r+");
    char text[4096];
    size_t len = fread(text, 1, sizeof text, file);
    cr_assert_gt(len, 0);
    for (size_t i = 0; i < len; i++) {
        char damaged[4096];
        memcpy(damaged, text, len);
        damaged[i] ^= 0x04;
        FILE *out = fopen(path, "w");
        fwrite(damaged, 1, len, out);
        fclose(out);
        cr_assert_eq(rush_stream_cursor_load(path, &loaded, why, sizeof why), RUSH_ECORRUPT,
                     "byte %zu", i);
    }
    fclose(file);
    /* cut short, empty, over-long, another file */
    const struct {
        const char *text;
        size_t len;
    } bad[] = {{text, len - 1}, {text, len / 2}, {"", 0}, {"hello\n", 6}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *out = fopen(path, "w");
        fwrite(bad[i].text, 1, bad[i].len, out);
        fclose(out);
        cr_assert_eq(rush_stream_cursor_load(path, &loaded, why, sizeof why), RUSH_ECORRUPT,
                     "case %zu", i);
    }
    /* a good checksum over a bad value: shard 65 */
    struct rush_stream_cursor big = {.shard_count = RUSH_SHARDS_MAX};
    cr_assert_eq(rush_stream_cursor_save(path, &big), 0);
    cr_assert_eq(rush_stream_cursor_load(path, &loaded, why, sizeof why), 1);
    cr_assert_eq(rush_stream_cursor_load(fake->dir, &loaded, why, sizeof why), -EISDIR);
}

Test(subscriber, resume_from_a_saved_cursor_neither_loses_nor_repeats)
{
    fake_start(2);
    fake_append(fake, 0, 40);
    fake_append(fake, 1, 25);
    char path[PATH_BYTES];
    snprintf(path, sizeof path, "%s/cursor", fake->dir);
    struct rush_subscriber_config config = test_config();
    config.replay_events_max = 10;
    struct seen seen = {0};
    struct rush_stream_event events[8];
    for (int life = 0; life < 4; life++) { /* open, take some, save, close; four times */
        struct rush_subscriber *sub = test_open(&config);
        struct rush_stream_cursor cursor;
        char why[128];
        int rc = rush_stream_cursor_load(path, &cursor, why, sizeof why);
        cr_assert_eq(rc, life == 0 ? 0 : 1, "%s", why);
        if (rc == 1)
            cr_assert_eq(rush_subscriber_set_cursor(sub, &cursor), 0);
        uint64_t taken = 0;
        int64_t deadline = rush_clock_monotonic_ms() + COLLECT_MS;
        while (taken < 12) {
            cr_assert_lt(rush_clock_monotonic_ms(), deadline);
            int n = rush_subscriber_poll(sub, events,
                                         12 - (uint32_t)taken < 8 ? 12 - (uint32_t)taken : 8, 50);
            cr_assert_geq(n, 0, "%s", rush_subscriber_last_error(sub));
            seen_take(&seen, events, n);
            taken += (uint64_t)n;
        }
        rush_subscriber_get_cursor(sub, &cursor);
        cr_assert_eq(cursor.shard_count, 2);
        cr_assert_eq(cursor.delivered_seq[0], seen.last[0]);
        cr_assert_eq(cursor.delivered_seq[1], seen.last[1]);
        cr_assert_eq(rush_stream_cursor_save(path, &cursor), 0);
        rush_subscriber_close(sub);
        fake_append(fake, life % 2, 3);
    }
    struct rush_subscriber *sub = test_open(&config);
    struct rush_stream_cursor cursor;
    cr_assert_eq(rush_stream_cursor_load(path, &cursor, NULL, 0), 1);
    cr_assert_eq(rush_subscriber_set_cursor(sub, &cursor), 0);
    collect_all(sub, &seen, 8);
    cr_assert_eq(seen.total, 40 + 25 + 12);
    /* a cursor of another shard count is refused once the publisher's is known */
    struct rush_stream_cursor wrong = {.shard_count = 3};
    cr_assert_eq(rush_subscriber_set_cursor(sub, &wrong), RUSH_ECONFIG);
    rush_subscriber_close(sub);
}

Test(subscriber, a_cursor_of_another_shard_count_is_an_error)
{
    fake_start(2);
    fake_append(fake, 0, 3);
    struct rush_subscriber_config config = test_config();
    struct rush_subscriber *sub = test_open(&config);
    struct rush_stream_cursor cursor = {.shard_count = 3};
    cr_assert_eq(rush_subscriber_set_cursor(sub, &cursor), 0, "not known yet");
    struct rush_stream_event events[8];
    int64_t deadline = rush_clock_monotonic_ms() + COLLECT_MS;
    int n;
    while ((n = rush_subscriber_poll(sub, events, 8, 50)) == 0)
        cr_assert_lt(rush_clock_monotonic_ms(), deadline);
    cr_assert_eq(n, RUSH_ECONFIG, "%d", n);
    cr_assert(strstr(rush_subscriber_last_error(sub), "3 shards") != NULL, "%s",
              rush_subscriber_last_error(sub));
    cr_assert_eq(rush_subscriber_poll(sub, events, 8, 0), RUSH_ECONFIG, "sticky");
    struct rush_stream_cursor fresh = {.shard_count = 0};
    cr_assert_eq(rush_subscriber_set_cursor(sub, &fresh), 0);
    struct seen seen = {0};
    collect_all(sub, &seen, 8);
    cr_assert_eq(seen.total, 3);
    rush_subscriber_close(sub);
}

Test(subscriber, a_range_too_old_is_an_error_unless_skip_lost)
{
    fake_start(2);
    fake_append(fake, 0, 20);
    fake_append(fake, 1, 4);
    atomic_store(&fake->oldest[0], 9); /* events 1..8 of shard 0 are gone */
    struct rush_subscriber_config config = test_config();
    struct rush_subscriber *sub = test_open(&config);
    struct rush_stream_event events[32];
    struct seen seen = {0};
    int64_t deadline = rush_clock_monotonic_ms() + COLLECT_MS;
    int n;
    while ((n = rush_subscriber_poll(sub, events, 32, 50)) >= 0) {
        cr_assert_lt(rush_clock_monotonic_ms(), deadline);
        seen_take(&seen, events, n);
    }
    cr_assert_eq(n, -ENODATA, "%s", rush_strerror(n));
    cr_assert(strstr(rush_subscriber_last_error(sub), "oldest served is 9") != NULL, "%s",
              rush_subscriber_last_error(sub));
    cr_assert_eq(rush_subscriber_poll(sub, events, 32, 0), -ENODATA, "until the cursor moves");
    struct rush_subscriber_shard shard;
    cr_assert_eq(rush_subscriber_shard(sub, 0, &shard), 0);
    cr_assert(shard.lost);
    cr_assert_eq(shard.oldest_seq, 9);
    cr_assert_eq(shard.delivered_seq, 0);
    cr_assert_not(rush_subscriber_caught_up(sub));
    /* the caller accepts the loss: moves the cursor past it */
    struct rush_stream_cursor cursor;
    rush_subscriber_get_cursor(sub, &cursor);
    cursor.delivered_seq[0] = shard.oldest_seq - 1;
    cr_assert_eq(rush_subscriber_set_cursor(sub, &cursor), 0);
    seen.last[0] = 8;
    collect_all(sub, &seen, 32);
    rush_subscriber_close(sub);

    /* skip_lost: the subscriber moves on by itself and counts the loss */
    config.skip_lost = true;
    sub = test_open(&config);
    struct seen again = {.last = {8, 0}};
    collect_all(sub, &again, 32);
    struct rush_subscriber_stats stats;
    rush_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.events_skipped, 8);
    cr_assert_eq(stats.events_delivered, 12 + 4);
    rush_subscriber_close(sub);
}

Test(subscriber, a_silent_replay_endpoint_is_a_timeout_not_a_hang)
{
    fake_start(2);
    fake_append(fake, 0, 3);
    atomic_store(&fake->mode, FAKE_MUTE);
    struct rush_subscriber_config config = test_config();
    config.replay_timeout_ms = 50;
    config.replay_retries_max = 2;
    struct rush_subscriber *sub = test_open(&config);
    struct rush_stream_event events[8];
    int64_t start = rush_clock_monotonic_ms();
    int n = rush_subscriber_poll(sub, events, 8, 10000);
    int64_t elapsed = rush_clock_monotonic_ms() - start;
    cr_assert_eq(n, RUSH_ETIMEDOUT, "%s", rush_strerror(n));
    cr_assert_geq(elapsed, 140);
    cr_assert_lt(elapsed, 2000, "%ld ms", (long)elapsed);
    cr_assert(strstr(rush_subscriber_last_error(sub), "after 3 attempts") != NULL, "%s",
              rush_subscriber_last_error(sub));
    struct rush_subscriber_stats stats;
    rush_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.request_retries, 2);
    cr_assert_eq(stats.request_timeouts, 1);
    cr_assert_geq(atomic_load(&fake->requests), 3);
    /* a short poll returns on time with the request still in flight */
    start = rush_clock_monotonic_ms();
    cr_assert_eq(rush_subscriber_poll(sub, events, 8, 20), 0);
    cr_assert_lt(rush_clock_monotonic_ms() - start, 500,
                 "returns near its timeout, not after the replay's");
    /* the endpoint comes back: the next polls deliver */
    atomic_store(&fake->mode, FAKE_SERVE);
    struct seen seen = {0};
    int64_t deadline = rush_clock_monotonic_ms() + COLLECT_MS;
    while (seen.total < 3) {
        cr_assert_lt(rush_clock_monotonic_ms(), deadline);
        n = rush_subscriber_poll(sub, events, 8, 50);
        if (n == RUSH_ETIMEDOUT)
            continue; /* the attempt that was muted */
        cr_assert_geq(n, 0, "%s", rush_strerror(n));
        seen_take(&seen, events, n);
    }
    rush_subscriber_close(sub);
}

Test(subscriber, hostile_replay_replies_are_dropped_never_trusted)
{
    fake_start(2);
    fake_append(fake, 0, 60);
    fake_append(fake, 1, 60);
    struct rush_subscriber_config config = test_config();
    config.replay_events_max = 4;
    struct rush_subscriber *sub = test_open(&config);
    struct rush_stream_event events[8];
    struct seen seen = {0};
    /* INFO first, so that the next requests are REPLAYs */
    int64_t deadline = rush_clock_monotonic_ms() + COLLECT_MS;
    while (rush_subscriber_shard_count(sub) == 0) {
        cr_assert_lt(rush_clock_monotonic_ms(), deadline);
        atomic_store(&fake->mode, FAKE_SERVE);
        int n = rush_subscriber_poll(sub, events, 1, 20);
        cr_assert_geq(n, 0);
        seen_take(&seen, events, n);
    }
    const int modes[] = {FAKE_GARBAGE, FAKE_WRONG_SEQ, FAKE_WRONG_SHARD};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        atomic_store(&fake->mode, modes[i]);
        int n;
        deadline = rush_clock_monotonic_ms() + COLLECT_MS;
        while ((n = rush_subscriber_poll(sub, events, 8, 50)) >= 0) { /* the reply in flight */
            cr_assert_lt(rush_clock_monotonic_ms(), deadline);
            seen_take(&seen, events, n);
        }
        cr_assert_eq(n, RUSH_EPROTO, "mode %d: %d", modes[i], n);
    }
    struct rush_subscriber_stats stats;
    rush_subscriber_stats(sub, &stats);
    cr_assert_eq(stats.malformed, 3);
    cr_assert_eq(stats.events_delivered, seen.total, "nothing taken from a bad reply");
    atomic_store(&fake->mode, FAKE_SERVE);
    collect_all(sub, &seen, 8);
    rush_subscriber_close(sub);
}

Test(subscriber, seek_heads_starts_from_now)
{
    fake_start(2);
    fake_append(fake, 0, 10);
    fake_append(fake, 1, 4);
    struct rush_subscriber_config config = test_config();
    struct rush_subscriber *sub = test_open(&config);
    cr_assert_eq(rush_subscriber_seek_heads(sub, 5000), 0, "%s", rush_subscriber_last_error(sub));
    fake_append(fake, 1, 2);
    struct seen seen = {.last = {10, 4}};
    collect_all(sub, &seen, 8);
    cr_assert_eq(seen.total, 2);
    rush_subscriber_close(sub);
    atomic_store(&fake->mode, FAKE_MUTE);
    config.replay_timeout_ms = 20;
    config.replay_retries_max = 0;
    sub = test_open(&config);
    cr_assert_eq(rush_subscriber_seek_heads(sub, 300), RUSH_ETIMEDOUT);
    rush_subscriber_close(sub);
}

/* ---- rushctl tail, as a process ---- */

static int run(const char *command)
{
    int status = system(command);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int tail(const char *args)
{
    char self[PATH_BYTES];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(n > 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    char command[4 * PATH_BYTES];
    snprintf(command, sizeof command,
             "'%s/../bin/rushctl' --timeout 500 tail --pub '%s' --replay '%s' %s 2>>'%s/err'", self,
             fake->pub_url, fake->replay_url, args, fake->dir);
    return run(command);
}

/* Reads the JSON lines of path; checks each against the publisher; returns their number. */
static uint64_t check_lines(const char *path, struct seen *seen)
{
    FILE *file = fopen(path, "r");
    cr_assert(file != NULL, "%s", path);
    char line[1024];
    uint64_t count = 0;
    while (fgets(line, sizeof line, file) != NULL) {
        json_error_t error;
        json_t *root = json_loads(line, 0, &error);
        cr_assert(json_is_object(root), "line %lu: %s", count + 1, line);
        uint32_t shard = (uint32_t)json_integer_value(json_object_get(root, "shard"));
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(root, "seq"));
        cr_assert_lt(shard, fake->shard_count);
        cr_assert_eq(seq, seen->last[shard] + 1, "shard %u: %s", shard, line);
        const struct rush_stream_event *e = &fake->events[shard][seq - 1];
        char order[24];
        snprintf(order, sizeof order, "%lu", e->order_id);
        cr_assert_str_eq(json_string_value(json_object_get(root, "order")), order);
        cr_assert_str_eq(json_string_value(json_object_get(root, "type")),
                         rush_event_type_name(e->type));
        cr_assert_eq(json_integer_value(json_object_get(root, "sku")), (json_int_t)e->sku_id);
        cr_assert_eq(json_integer_value(json_object_get(root, "user")), (json_int_t)e->user_id);
        cr_assert_eq(json_integer_value(json_object_get(root, "qty")), e->qty);
        cr_assert_eq(json_integer_value(json_object_get(root, "price_fen")), e->price_fen);
        char time[24];
        snprintf(time, sizeof time, "%ld", e->time_ns);
        cr_assert_str_eq(json_string_value(json_object_get(root, "time_ns")), time,
                         "over 2^53: a string");
        cr_assert_eq(json_object_get(root, "group") != NULL, e->group_id != 0);
        seen->last[shard] = seq;
        count++;
        json_decref(root);
    }
    fclose(file);
    return count;
}

Test(subscriber, rushctl_tail_writes_json_lines_saves_its_cursor_and_resumes)
{
    fake_start(2);
    fake_append(fake, 0, 30);
    fake_append(fake, 1, 12);
    char out[PATH_BYTES], cursor_path[PATH_BYTES], args[4 * PATH_BYTES];
    snprintf(out, sizeof out, "%s/events.jsonl", fake->dir);
    snprintf(cursor_path, sizeof cursor_path, "%s/cursor", fake->dir);
    snprintf(args, sizeof args, "--cursor '%s' --out '%s' --idle-exit 400", cursor_path, out);
    cr_assert_eq(tail(args), 0);
    struct seen seen = {0};
    cr_assert_eq(check_lines(out, &seen), 42);
    struct rush_stream_cursor cursor;
    cr_assert_eq(rush_stream_cursor_load(cursor_path, &cursor, NULL, 0), 1);
    cr_assert_eq(cursor.shard_count, 2);
    cr_assert_eq(cursor.delivered_seq[0], 30);
    cr_assert_eq(cursor.delivered_seq[1], 12);
    struct stat st;
    cr_assert_eq(stat(out, &st), 0);
    cr_assert_eq(cursor.output_bytes, (uint64_t)st.st_size);

    /* more events, and a batch written after the last cursor save (a kill in between) */
    fake_append(fake, 1, 8);
    fake_append(fake, 0, 1);
    FILE *file = fopen(out, "a");
    fputs("{\"shard\":1,\"seq\":13,\"torn", file);
    fclose(file);
    cr_assert_eq(tail(args), 0);
    struct seen all = {0};
    cr_assert_eq(check_lines(out, &all), 51, "each event once");
    cr_assert_eq(all.last[0], 31);
    cr_assert_eq(all.last[1], 20);

    /* --count stops after N; the cursor says exactly where */
    fake_append(fake, 0, 10);
    snprintf(args, sizeof args, "--cursor '%s' --out '%s' --count 4", cursor_path, out);
    cr_assert_eq(tail(args), 0);
    struct seen counted = {0};
    cr_assert_eq(check_lines(out, &counted), 55);
    cr_assert_eq(rush_stream_cursor_load(cursor_path, &cursor, NULL, 0), 1);
    cr_assert_eq(cursor.delivered_seq[0] + cursor.delivered_seq[1], 55);

    /* to stdout, without a cursor, from now: only what comes after */
    snprintf(args, sizeof args, "--from-now --idle-exit 300 >'%s/stdout'", fake->dir);
    cr_assert_eq(tail(args), 0);
    char path[2 * PATH_BYTES];
    snprintf(path, sizeof path, "%s/stdout", fake->dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, 0);

    /* a damaged cursor stops it (1); a shrunken output file too; usage errors are 2 */
    file = fopen(cursor_path, "r+");
    fseek(file, 25, SEEK_SET);
    fputc('9', file);
    fclose(file);
    snprintf(args, sizeof args, "--cursor '%s' --out '%s' --idle-exit 200", cursor_path, out);
    cr_assert_eq(tail(args), 1);
    cursor.output_bytes = (uint64_t)st.st_size + 1000000;
    cr_assert_eq(rush_stream_cursor_save(cursor_path, &cursor), 0);
    cr_assert_eq(tail(args), 1);
    cr_assert_eq(tail("--count x"), 2);
    cr_assert_eq(tail("extra"), 2);
    snprintf(path, sizeof path, "grep -q 'checksum mismatch' '%s/err'", fake->dir);
    cr_assert_eq(run(path), 0);
}

Test(subscriber, rushctl_tail_stops_on_a_lost_range_and_on_sigterm)
{
    fake_start(1);
    fake_append(fake, 0, 5);
    atomic_store(&fake->oldest[0], 3);
    cr_assert_eq(tail("--idle-exit 2000 >/dev/null"), 1);
    cr_assert_eq(tail("--skip-lost --idle-exit 300 >/dev/null"), 0);
    atomic_store(&fake->mode, FAKE_MUTE);
    cr_assert_eq(tail("--idle-exit 300 >/dev/null"), 2, "never answered");
    atomic_store(&fake->mode, FAKE_SERVE);
    char self[PATH_BYTES];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    char command[4 * PATH_BYTES];
    snprintf(command, sizeof command,
             "'%s/../bin/rushctl' tail --skip-lost --pub '%s' --replay '%s' >/dev/null & "
             "pid=$!; sleep 0.5; kill -TERM $pid; wait $pid",
             self, fake->pub_url, fake->replay_url);
    int64_t start = rush_clock_monotonic_ms();
    cr_assert_eq(run(command), 0);
    cr_assert_lt(rush_clock_monotonic_ms() - start, 3000);
}
