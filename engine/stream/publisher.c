/*
 * publisher.c — see publisher.h for why the publisher reads the log, its workload and invariants.
 *
 * A stream event's life:
 *
 *   decided (shard) --> durable in the log --live thread reads it--> in the ring + sent on PUB
 *                                                                      |
 *                        replay thread serves it <-- ring (newest) or log (older) <--+
 */
#include "publisher.h"
#include "base/clock.h"
#include "base/log.h"

#include <errno.h>
#include <inttypes.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rush/assert.h"
#include "stream_reader.h"

#define LIVE_BATCHES_PER_PASS_MAX 256 /* per shard, so that one busy shard cannot starve others */
#define PUB_SNDBUF_BYTES (1 << 20)    /* per subscriber; one further behind catches up by replay */
#define REPLAY_RCVTIMEO_MS 100        /* how soon the replay thread notices a stop */
#define HEARTBEAT_NS ((int64_t)RUSH_STREAM_HEARTBEAT_MS * 1000000)

/* What both threads share about one shard, under `lock`. */
struct shard_feed {
    pthread_mutex_t lock;
    struct rush_stream_event *ring; /* memory_events_max, indexed by seq & mask */
    uint64_t ring_oldest_seq;       /* the oldest seq in the ring (head_seq + 1: empty) */
    uint64_t head_seq;              /* the newest seq sent */
    uint64_t oldest_seq;            /* the log's oldest, as the replay thread last saw it */
};

/* The live thread's per-shard state. */
struct live_shard {
    struct rush_stream_reader reader;
    uint64_t read_lsn; /* the last batch read whole */
    int64_t sent_ns;   /* when the last message went */
    bool failing;      /* the last read failed (reported once until it recovers) */
};

/* The replay thread's per-shard state: where the last page from the log ended. */
struct replay_shard {
    struct rush_stream_reader reader;
    bool positioned;
    struct rush_stream_position position; /* the batch holding next_seq */
    uint64_t next_seq;
};

struct rush_publisher {
    struct rush_engine *engine;
    uint32_t shard_count;
    uint64_t ring_mask;
    int pub_socket;
    int replay_socket;
    pthread_t live_thread;
    pthread_t replay_thread;
    bool live_started;
    bool replay_started;
    _Atomic bool stopping;
    struct shard_feed feeds[RUSH_SHARDS_MAX];
    struct live_shard live[RUSH_SHARDS_MAX];
    struct replay_shard replay[RUSH_SHARDS_MAX];
    uint8_t *message; /* the live thread's: header + RUSH_STREAM_EVENTS_MAX events */
    uint8_t *reply;   /* the replay thread's: RUSH_STREAM_MESSAGE_BYTES_MAX */
    rush_publisher_events_fn on_events; /* the live thread calls it; NULL: none */
    void *on_events_context;
    struct {
        _Atomic uint64_t events_published, messages_sent, heartbeats_sent, sends_dropped;
        _Atomic uint64_t replay_requests, replay_from_memory, replay_from_log, replay_too_old;
        _Atomic uint64_t replay_bad_requests, read_errors;
    } counters;
};

static void count_add(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

/* ---- the live thread ---------------------------------------------------------------------- */

static struct rush_stream_event *message_events(struct rush_publisher *publisher)
{
    return (struct rush_stream_event *)(publisher->message + RUSH_STREAM_HEADER_BYTES);
}

/* Sends the run of `count` events in the message buffer (0: a heartbeat) for `shard`. */
static void send_run(struct rush_publisher *publisher, uint32_t shard, uint32_t count)
{
    struct shard_feed *feed = &publisher->feeds[shard];
    const struct rush_stream_event *events = message_events(publisher);
    pthread_mutex_lock(&feed->lock);
    for (uint32_t i = 0; i < count; i++) {
        RUSH_ASSERT(events[i].seq == feed->head_seq + 1); /* invariant 2 */
        feed->ring[events[i].seq & publisher->ring_mask] = events[i];
        feed->head_seq = events[i].seq;
    }
    if (feed->head_seq - feed->ring_oldest_seq + 1 > publisher->ring_mask + 1)
        feed->ring_oldest_seq = feed->head_seq - publisher->ring_mask;
    uint64_t head_seq = feed->head_seq;
    pthread_mutex_unlock(&feed->lock);
    if (count > 0 && publisher->on_events != NULL)
        publisher->on_events(publisher->on_events_context, shard, events, count);

    struct rush_stream_header header;
    rush_stream_header_init(&header, RUSH_STREAM_EVENTS, shard, count);
    header.shard_count = publisher->shard_count;
    header.head_seq = head_seq;
    memcpy(publisher->message, &header, sizeof(header));
    size_t bytes = RUSH_STREAM_HEADER_BYTES + (size_t)count * sizeof(struct rush_stream_event);
    if (nn_send(publisher->pub_socket, publisher->message, bytes, NN_DONTWAIT) < 0)
        count_add(&publisher->counters.sends_dropped, 1);
    count_add(count > 0 ? &publisher->counters.messages_sent : &publisher->counters.heartbeats_sent,
              1);
    count_add(&publisher->counters.events_published, count);
    publisher->live[shard].sent_ns = rush_clock_monotonic_ns();
}

/* Turns the carried events of one batch into stream events, sending each full run. */
static uint32_t add_batch(struct rush_publisher *publisher, uint32_t shard,
                          const struct rush_wal_batch_view *view, uint32_t count)
{
    struct rush_stream_event *events = message_events(publisher);
    struct rush_stream_batch batch;
    rush_stream_batch_begin(&batch, shard, view->header.seq_before, view->header.time_ns,
                            view->events, view->header.event_count);
    /* Bounded: each call takes at least one event or ends the batch. */
    while (!rush_stream_batch_done(&batch)) {
        count += rush_stream_batch_take(&batch, 0, events + count, RUSH_STREAM_EVENTS_MAX - count);
        if (count == RUSH_STREAM_EVENTS_MAX) {
            send_run(publisher, shard, count);
            count = 0;
        }
    }
    return count;
}

static void report_read_error(struct rush_publisher *publisher, uint32_t shard, int rc)
{
    struct live_shard *live = &publisher->live[shard];
    count_add(&publisher->counters.read_errors, 1);
    if (!live->failing)
        rush_log(RUSH_LOG_WARN,
                 "rush publisher: shard %u: reading the log after lsn %" PRIu64 ": %s (%s); "
                 "retrying",
                 shard, live->read_lsn, live->reader.why, rush_strerror(rc));
    live->failing = true;
}

/* Publishes what became durable on one shard since the last pass. True when it sent anything. */
static bool live_pass(struct rush_publisher *publisher, uint32_t shard)
{
    struct live_shard *live = &publisher->live[shard];
    uint64_t limit = rush_engine_durable_lsn(publisher->engine, shard);
    if (live->reader.next_lsn == 0) { /* after a read error: find our place again */
        uint64_t seq;
        int rc = rush_stream_reader_seek_after(&live->reader, live->read_lsn, &seq);
        if (rc < 0) {
            report_read_error(publisher, shard, rc);
            return false;
        }
    }
    uint32_t count = 0;
    int rc = 0;
    struct rush_wal_batch_view view;
    for (uint32_t b = 0; b < LIVE_BATCHES_PER_PASS_MAX; b++) {
        rc = rush_stream_reader_next(&live->reader, limit, &view, NULL);
        if (rc <= 0)
            break;
        count = add_batch(publisher, shard, &view, count);
        live->read_lsn = view.header.lsn;
    }
    if (count > 0)
        send_run(publisher, shard, count);
    if (rc < 0) {
        /* the events of the failed batch were not added; those of earlier ones were sent */
        report_read_error(publisher, shard, rc);
        return false;
    }
    live->failing = false;
    rush_engine_retain_log(publisher->engine, shard, live->read_lsn + 1);
    return live->reader.next_lsn <= limit || count > 0;
}

static void heartbeats(struct rush_publisher *publisher)
{
    int64_t now_ns = rush_clock_monotonic_ns();
    for (uint32_t shard = 0; shard < publisher->shard_count; shard++)
        if (now_ns - publisher->live[shard].sent_ns >= HEARTBEAT_NS)
            send_run(publisher, shard, 0);
}

static void *live_main(void *argument)
{
    struct rush_publisher *publisher = argument;
    bool stopping = false;
    while (!stopping) {
        /* read the flag first: the pass after it publishes everything durable before the stop */
        stopping = atomic_load(&publisher->stopping);
        bool busy = false;
        for (uint32_t shard = 0; shard < publisher->shard_count; shard++)
            busy |= live_pass(publisher, shard);
        heartbeats(publisher);
        if (!busy && !stopping)
            usleep(RUSH_PUBLISHER_IDLE_SLEEP_US);
    }
    return NULL;
}

/* ---- the replay thread -------------------------------------------------------------------- */

static size_t reply_header(struct rush_publisher *publisher, uint8_t kind, uint32_t shard,
                           enum rush_stream_status status, uint32_t count, uint64_t oldest_seq,
                           uint64_t head_seq)
{
    struct rush_stream_header header;
    rush_stream_header_init(&header, kind, shard, count);
    header.status = (uint8_t)status;
    header.shard_count = publisher->shard_count;
    header.oldest_seq = oldest_seq;
    header.head_seq = head_seq;
    memcpy(publisher->reply, &header, sizeof(header));
    size_t record = kind == RUSH_STREAM_INFO ? sizeof(struct rush_stream_shard_info)
                                             : sizeof(struct rush_stream_event);
    return RUSH_STREAM_HEADER_BYTES + (size_t)count * record;
}

static struct rush_stream_event *reply_events(struct rush_publisher *publisher)
{
    return (struct rush_stream_event *)(publisher->reply + RUSH_STREAM_HEADER_BYTES);
}

/* The log's oldest seq for a shard (remembered in the feed for replies served from memory). */
static uint64_t oldest_seq(struct rush_publisher *publisher, uint32_t shard)
{
    struct replay_shard *replay = &publisher->replay[shard];
    uint64_t oldest = 0;
    if (rush_stream_reader_oldest_seq(&replay->reader, &oldest) < 0)
        return 0;
    replay->positioned = false; /* the look-up moved the reader */
    pthread_mutex_lock(&publisher->feeds[shard].lock);
    publisher->feeds[shard].oldest_seq = oldest;
    pthread_mutex_unlock(&publisher->feeds[shard].lock);
    return oldest;
}

/* Places the shard's reader at the batch holding `from`; 0, -ERANGE (too old) or < 0. */
static int replay_seek(struct rush_publisher *publisher, uint32_t shard, uint64_t from,
                       uint64_t *oldest)
{
    struct replay_shard *replay = &publisher->replay[shard];
    uint64_t limit = rush_engine_durable_lsn(publisher->engine, shard);
    if (replay->positioned && replay->next_seq == from)
        return rush_stream_reader_seek_position(&replay->reader, &replay->position);
    replay->positioned = false;
    return rush_stream_reader_seek_seq(&replay->reader, from, limit, oldest);
}

/* Copies events [from, from + want) out of the shard's log into the reply; returns the count. */
static int replay_from_log(struct rush_publisher *publisher, uint32_t shard, uint64_t from,
                           uint32_t want)
{
    struct replay_shard *replay = &publisher->replay[shard];
    uint64_t limit = rush_engine_durable_lsn(publisher->engine, shard);
    struct rush_stream_event *events = reply_events(publisher);
    struct rush_wal_batch_view view;
    struct rush_stream_position at;
    uint32_t got = 0;
    int rc = 0;
    /* Bounded: by the log's batches up to the durable lsn. */
    while (got < want && (rc = rush_stream_reader_next(&replay->reader, limit, &view, &at)) == 1) {
        struct rush_stream_batch batch;
        rush_stream_batch_begin(&batch, shard, view.header.seq_before, view.header.time_ns,
                                view.events, view.header.event_count);
        got += rush_stream_batch_take(&batch, from + got, events + got, want - got);
        replay->position = at; /* the next page starts in this batch or the next */
        replay->positioned = true;
        replay->next_seq = from + got;
    }
    if (rc < 0) {
        replay->positioned = false;
        rush_log(RUSH_LOG_WARN, "rush publisher: replay of shard %u from seq %" PRIu64 ": %s",
                 shard, from, replay->reader.why);
        return rc;
    }
    return (int)got;
}

static size_t serve_replay(struct rush_publisher *publisher, const struct rush_stream_request *req)
{
    uint32_t shard = req->shard;
    if (shard >= publisher->shard_count)
        return reply_header(publisher, RUSH_STREAM_REPLAY, 0, RUSH_STREAM_NO_SHARD, 0, 0, 0);
    struct shard_feed *feed = &publisher->feeds[shard];
    pthread_mutex_lock(&feed->lock);
    uint64_t head = feed->head_seq, oldest = feed->oldest_seq;
    uint64_t from = req->from_seq;
    uint32_t want = from > head ? 0
                                : (uint32_t)(head - from + 1 < req->count_max ? head - from + 1
                                                                              : req->count_max);
    bool in_memory = want == 0 || from >= feed->ring_oldest_seq;
    struct rush_stream_event *events = reply_events(publisher);
    for (uint32_t i = 0; in_memory && i < want; i++)
        events[i] = feed->ring[(from + i) & publisher->ring_mask];
    pthread_mutex_unlock(&feed->lock);
    if (in_memory) {
        count_add(&publisher->counters.replay_from_memory, want);
        return reply_header(publisher, RUSH_STREAM_REPLAY, shard, RUSH_STREAM_OK, want, oldest,
                            head);
    }
    int rc = replay_seek(publisher, shard, from, &oldest);
    if (rc == -ERANGE) {
        count_add(&publisher->counters.replay_too_old, 1);
        return reply_header(publisher, RUSH_STREAM_REPLAY, shard, RUSH_STREAM_TOO_OLD, 0, oldest,
                            head);
    }
    if (rc == 0)
        rc = replay_from_log(publisher, shard, from, want);
    if (rc < 0)
        return reply_header(publisher, RUSH_STREAM_REPLAY, shard, RUSH_STREAM_UNAVAILABLE, 0, 0,
                            head);
    count_add(&publisher->counters.replay_from_log, (uint64_t)rc);
    uint64_t known_oldest = oldest != 0 && oldest <= from ? oldest : from;
    return reply_header(publisher, RUSH_STREAM_REPLAY, shard, RUSH_STREAM_OK, (uint32_t)rc,
                        known_oldest, head);
}

static size_t serve_info(struct rush_publisher *publisher)
{
    struct rush_stream_shard_info *infos =
        (struct rush_stream_shard_info *)(publisher->reply + RUSH_STREAM_HEADER_BYTES);
    for (uint32_t shard = 0; shard < publisher->shard_count; shard++) {
        uint64_t oldest = oldest_seq(publisher, shard);
        pthread_mutex_lock(&publisher->feeds[shard].lock);
        infos[shard] = (struct rush_stream_shard_info){
            .oldest_seq = oldest, .head_seq = publisher->feeds[shard].head_seq};
        pthread_mutex_unlock(&publisher->feeds[shard].lock);
    }
    return reply_header(publisher, RUSH_STREAM_INFO, 0, RUSH_STREAM_OK, publisher->shard_count, 0,
                        0);
}

static size_t serve(struct rush_publisher *publisher, const void *buf, size_t len)
{
    struct rush_stream_request req;
    char why[160];
    count_add(&publisher->counters.replay_requests, 1);
    if (rush_stream_request_decode(buf, len, &req, why, sizeof(why)) < 0) {
        count_add(&publisher->counters.replay_bad_requests, 1);
        return reply_header(publisher, RUSH_STREAM_REPLAY, 0, RUSH_STREAM_BAD_REQUEST, 0, 0, 0);
    }
    return req.kind == RUSH_STREAM_INFO ? serve_info(publisher) : serve_replay(publisher, &req);
}

static void *replay_main(void *argument)
{
    struct rush_publisher *publisher = argument;
    while (!atomic_load(&publisher->stopping)) {
        void *buf = NULL;
        int len = nn_recv(publisher->replay_socket, &buf, NN_MSG, 0);
        if (len < 0) {
            if (errno == EAGAIN || errno == ETIMEDOUT || errno == EINTR)
                continue;
            rush_log(RUSH_LOG_ERROR, "rush publisher: replay endpoint: %s", nn_strerror(errno));
            break;
        }
        size_t bytes = serve(publisher, buf, (size_t)len);
        nn_freemsg(buf);
        if (nn_send(publisher->replay_socket, publisher->reply, bytes, 0) < 0 && errno != ETERM)
            rush_log(RUSH_LOG_ERROR, "rush publisher: replay reply: %s", nn_strerror(errno));
    }
    return NULL;
}

/* ---- life cycle --------------------------------------------------------------------------- */

static int bind_socket(int protocol, const char *url, int *out, char *why, size_t why_size)
{
    int socket = nn_socket(AF_SP, protocol);
    if (socket < 0) {
        snprintf(why, why_size, "nn_socket: %s", nn_strerror(errno));
        return -errno;
    }
    int sndbuf = PUB_SNDBUF_BYTES, rcvtimeo = REPLAY_RCVTIMEO_MS, rcvmax = -1;
    if (protocol == NN_PUB)
        (void)nn_setsockopt(socket, NN_SOL_SOCKET, NN_SNDBUF, &sndbuf, sizeof(sndbuf));
    else
        (void)nn_setsockopt(socket, NN_SOL_SOCKET, NN_RCVTIMEO, &rcvtimeo, sizeof(rcvtimeo));
    (void)nn_setsockopt(socket, NN_SOL_SOCKET, NN_RCVMAXSIZE, &rcvmax, sizeof(rcvmax));
    int nodelay = 1; /* events and replay pages leave at once (server.c: endpoint_open) */
    (void)nn_setsockopt(socket, NN_TCP, NN_TCP_NODELAY, &nodelay, sizeof(nodelay));
    if (nn_bind(socket, url) < 0) {
        int error = errno;
        snprintf(why, why_size, "cannot bind %s: %s", url, nn_strerror(error));
        nn_close(socket);
        return -error;
    }
    *out = socket;
    return 0;
}

/* Each shard's readers, its ring, and the start: the end of its log as it is now. */
static int shard_start(struct rush_publisher *publisher, const char *dir, uint32_t shard,
                       uint32_t ring_events, char *why, size_t why_size)
{
    struct shard_feed *feed = &publisher->feeds[shard];
    struct live_shard *live = &publisher->live[shard];
    pthread_mutex_init(&feed->lock, NULL);
    feed->ring = calloc(ring_events, sizeof(*feed->ring));
    int rc = feed->ring == NULL ? -ENOMEM : 0;
    if (rc == 0)
        rc = rush_stream_reader_open(&live->reader, dir, shard);
    if (rc == 0)
        rc = rush_stream_reader_open(&publisher->replay[shard].reader, dir, shard);
    live->read_lsn = rush_engine_durable_lsn(publisher->engine, shard);
    uint64_t head = 0;
    if (rc == 0)
        rc = rush_stream_reader_seek_after(&live->reader, live->read_lsn, &head);
    if (rc < 0) {
        snprintf(why, why_size, "shard %u: %s", shard,
                 live->reader.why[0] ? live->reader.why : rush_strerror(rc));
        return rc;
    }
    feed->head_seq = head;
    feed->ring_oldest_seq = head + 1;
    rush_engine_retain_log(publisher->engine, shard, live->read_lsn + 1);
    return 0;
}

static int start_threads(struct rush_publisher *publisher, char *why, size_t why_size)
{
    int rc = pthread_create(&publisher->live_thread, NULL, live_main, publisher);
    publisher->live_started = rc == 0;
    if (rc == 0)
        rc = pthread_create(&publisher->replay_thread, NULL, replay_main, publisher);
    publisher->replay_started = publisher->live_started && rc == 0;
    if (rc != 0)
        snprintf(why, why_size, "pthread_create: %s", strerror(rc));
    return -rc;
}

int rush_publisher_create(const struct rush_publisher_config *config, struct rush_engine *engine,
                          struct rush_publisher **out, char *why, size_t why_size)
{
    *out = NULL;
    uint32_t ring_events = config->memory_events_max ? config->memory_events_max
                                                     : RUSH_PUBLISHER_MEMORY_EVENTS_DEFAULT;
    if (config->data_dir == NULL || (ring_events & (ring_events - 1)) != 0 ||
        config->pub_url == NULL || config->replay_url == NULL) {
        snprintf(why, why_size,
                 "the publisher needs a data directory, both endpoints and a "
                 "power-of-two memory_events_max");
        return RUSH_ECONFIG;
    }
    struct rush_publisher *publisher = calloc(1, sizeof(*publisher));
    if (publisher == NULL)
        return -ENOMEM;
    publisher->engine = engine;
    publisher->on_events = config->on_events;
    publisher->on_events_context = config->on_events_context;
    publisher->shard_count = rush_engine_shard_count(engine);
    publisher->ring_mask = ring_events - 1;
    publisher->pub_socket = publisher->replay_socket = -1;
    publisher->message = malloc(RUSH_STREAM_HEADER_BYTES +
                                RUSH_STREAM_EVENTS_MAX * sizeof(struct rush_stream_event));
    publisher->reply = malloc(RUSH_STREAM_MESSAGE_BYTES_MAX);
    int rc = publisher->message && publisher->reply ? 0 : -ENOMEM;
    for (uint32_t shard = 0; shard < publisher->shard_count; shard++) { /* nothing open yet */
        publisher->live[shard].reader.dir_fd = publisher->live[shard].reader.segment_fd = -1;
        publisher->replay[shard].reader.dir_fd = publisher->replay[shard].reader.segment_fd = -1;
    }
    for (uint32_t shard = 0; shard < publisher->shard_count && rc == 0; shard++)
        rc = shard_start(publisher, config->data_dir, shard, ring_events, why, why_size);
    if (rc == 0)
        rc = bind_socket(NN_PUB, config->pub_url, &publisher->pub_socket, why, why_size);
    if (rc == 0)
        rc = bind_socket(NN_REP, config->replay_url, &publisher->replay_socket, why, why_size);
    if (rc == 0)
        rc = start_threads(publisher, why, why_size);
    if (rc < 0) {
        rush_publisher_destroy(publisher);
        return rc;
    }
    *out = publisher;
    return 0;
}

void rush_publisher_destroy(struct rush_publisher *publisher)
{
    if (publisher == NULL)
        return;
    atomic_store(&publisher->stopping, true);
    if (publisher->live_started)
        pthread_join(publisher->live_thread, NULL);
    if (publisher->replay_started)
        pthread_join(publisher->replay_thread, NULL);
    if (publisher->pub_socket >= 0)
        nn_close(publisher->pub_socket);
    if (publisher->replay_socket >= 0)
        nn_close(publisher->replay_socket);
    for (uint32_t shard = 0; shard < publisher->shard_count; shard++) {
        rush_stream_reader_close(&publisher->live[shard].reader);
        rush_stream_reader_close(&publisher->replay[shard].reader);
        if (publisher->feeds[shard].ring != NULL)
            pthread_mutex_destroy(&publisher->feeds[shard].lock);
        free(publisher->feeds[shard].ring);
    }
    free(publisher->message);
    free(publisher->reply);
    free(publisher);
}

static uint64_t count_of(const _Atomic uint64_t *counter)
{
    return atomic_load_explicit(counter, memory_order_relaxed);
}

void rush_publisher_stats(const struct rush_publisher *publisher,
                          struct rush_publisher_stats *stats)
{
    *stats = (struct rush_publisher_stats){
        .events_published = count_of(&publisher->counters.events_published),
        .messages_sent = count_of(&publisher->counters.messages_sent),
        .heartbeats_sent = count_of(&publisher->counters.heartbeats_sent),
        .sends_dropped = count_of(&publisher->counters.sends_dropped),
        .replay_requests = count_of(&publisher->counters.replay_requests),
        .replay_events_from_memory = count_of(&publisher->counters.replay_from_memory),
        .replay_events_from_log = count_of(&publisher->counters.replay_from_log),
        .replay_too_old = count_of(&publisher->counters.replay_too_old),
        .replay_bad_requests = count_of(&publisher->counters.replay_bad_requests),
        .read_errors = count_of(&publisher->counters.read_errors),
    };
}

uint64_t rush_publisher_head_seq(struct rush_publisher *publisher, uint32_t shard_index)
{
    RUSH_ASSERT(shard_index < publisher->shard_count);
    struct shard_feed *feed = &publisher->feeds[shard_index];
    pthread_mutex_lock(&feed->lock);
    uint64_t head = feed->head_seq;
    pthread_mutex_unlock(&feed->lock);
    return head;
}
