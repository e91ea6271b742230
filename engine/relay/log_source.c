/*
 * log_source.c — the relay's source in a cluster (relay.h, "Sources"): the order of record
 * itself, each shard's replicated log on JetStream (stream <stream>, subjects <stream>.shard.<n>,
 * records in rush/replicated.h), read with the one checked reader (codec/replicated.c) and turned
 * into stream events by the publisher's own rule (rush_stream_batch_*), so that the seqs and
 * the bytes are those any node's publisher gives for the same log.
 *
 * Workload. One ordered consumer (no acks, flow control; libnats re-creates it after a gap or a
 * lost server) on <stream>.shard.* from the stream's first message: messages of up to 900 KiB,
 * each one or more WAL batches of one shard. Numbering needs every carried event before a seq
 * (the replicated records carry no seq_before), so every start reads each subject from lsn 1 and
 * passes over the seqs the sinks hold: a restart costs a read of the whole log (measured in
 * README "Figures"), never a guess.
 *
 * Invariants (per shard):
 *   1. Records are taken in lsn order 1, 2, 3, ... with none missing: a subject that does not
 *      start at lsn 1, a gap, a repeat or a malformed message stops the relay (never skipped).
 *      A promotion's fence (an empty message, rush/replicated.h) is skipped only when it names
 *      the last lsn taken.
 *   2. seq = the carried events of every record taken before the current one, plus those of it
 *      looked at: the next carried event is seq + 1, as in the WAL header's seq_before.
 *   3. Events with seq < from_seq (held by every sink) are counted, never handed out; from there
 *      each seq is handed out once, consecutively.
 * A stream that is not there yet (rushd creates it when it starts) is waited for, as the stream
 * source waits for rushd.
 * Only messages JetStream stored reach a consumer, so a fenced leader's unacknowledged batches
 * (ARCHITECTURE.md "Cluster") never reach a sink.
 *
 * Thread: the relay's. libnats' own threads fill the subscription's queue.
 */
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/number.h"
#include "relay/relay_internal.h"
#include "rush/assert.h"
#include "rush/replicated.h"

#define LOG_SUBJECT_BYTES (RUSH_RELAY_NAME_BYTES_MAX + 16)
#define LOG_MESSAGES_PER_POLL_MAX 256 /* messages one poll takes before it returns */
#define LOG_EVENTS_FIRST 4096u        /* the aligned copy of a record's events, grown on need */

struct log_shard {
    uint64_t next_lsn; /* the lsn the next record must carry */
    uint64_t seq;      /* invariant 2 */
    uint64_t from_seq; /* the first seq handed out */
};

struct log_source {
    natsConnection *connection;
    jsCtx *js;
    natsSubscription *sub;
    const char *stream;
    char prefix[LOG_SUBJECT_BYTES]; /* "<stream>.shard." */
    uint32_t shards;
    struct log_shard shard[RUSH_SHARDS_MAX];
    natsMsg *msg; /* the message being read, of shard msg_shard, at offset `at` */
    uint32_t msg_shard;
    size_t at;
    struct rush_stream_batch batch; /* the record being read (done: none) */
    struct rush_event *events;      /* its events, copied aligned */
    uint32_t events_max;
    uint64_t messages, records, fences;
    bool told; /* that the stream cannot be followed yet */
    int error; /* sticky: returned by every poll once the events before it were handed out */
    char why[RELAY_WHY_BYTES];
};

static int log_status(natsStatus s, const char *what, char *why, size_t why_size)
{
    if (s == NATS_OK)
        return 0;
    snprintf(why, why_size, "cluster log: %s: %s", what, natsStatus_GetText(s));
    return -EIO;
}

static int log_open(void **state, const struct rush_relay_config *config, char *why,
                    size_t why_size)
{
    struct log_source *source = calloc(1, sizeof *source);
    if (source == NULL)
        return -ENOMEM;
    source->stream = config->cluster_stream;
    snprintf(source->prefix, sizeof source->prefix, "%s.shard.", config->cluster_stream);
    int rc = relay_nats_connect(config->cluster_nats, &source->connection, why, why_size);
    if (rc == 0) {
        jsOptions js_options;
        jsOptions_Init(&js_options);
        js_options.Wait = RELAY_OPEN_TIMEOUT_MS;
        rc = log_status(natsConnection_JetStream(&source->js, source->connection, &js_options),
                        "no JetStream context", why, why_size);
    }
    if (rc != 0) {
        natsConnection_Destroy(source->connection);
        free(source);
        return rc;
    }
    *state = source;
    return 0;
}

static int log_shards(void *state, volatile sig_atomic_t *stopping, uint32_t *shards, char *why,
                      size_t why_size)
{
    (void)state;
    (void)stopping;
    (void)shards;
    snprintf(why, why_size, "the log source needs the shard count (--shards)");
    return RUSH_ECONFIG; /* rush_relay_config_check refuses this first */
}

/*
 * An ordered consumer on every shard's subject from the stream's start (invariant 1). 1 when it
 * follows; 0 when it could not (the stream is not there yet, JetStream has no leader yet: rushd
 * creates the stream when it starts), said once, tried again at the next poll.
 */
static int log_follow(struct log_source *source)
{
    char subject[LOG_SUBJECT_BYTES + 2];
    snprintf(subject, sizeof subject, "%s*", source->prefix);
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = source->stream;
    options.Ordered = true;
    options.Config.DeliverPolicy = js_DeliverAll;
    jsErrCode code = 0;
    natsStatus s = js_SubscribeSync(&source->sub, source->js, subject, NULL, &options, &code);
    if (s != NATS_OK) {
        source->sub = NULL;
        if (!source->told)
            rush_log(RUSH_LOG_WARN,
                     "relay: cluster log: cannot follow %s in stream %s: %s (%d); "
                     "waiting for it",
                     subject, source->stream, natsStatus_GetText(s), (int)code);
        source->told = true;
        return 0;
    }
    /* Allow a burst of the largest messages before flow control holds the server back. */
    (void)natsSubscription_SetPendingLimits(source->sub, 65536, 256 * 1024 * 1024);
    rush_log(RUSH_LOG_INFO, "relay: reading the replicated log %s from its start", subject);
    return 1;
}

static int log_start(void *state, const uint64_t *delivered_seq, uint32_t shards, char *why,
                     size_t why_size)
{
    (void)why;
    (void)why_size;
    struct log_source *source = state;
    RUSH_ASSERT(shards >= 1 && shards <= RUSH_SHARDS_MAX && source->sub == NULL);
    source->shards = shards;
    for (uint32_t s = 0; s < shards; s++)
        source->shard[s] = (struct log_shard){.next_lsn = 1, .from_seq = delivered_seq[s] + 1};
    (void)log_follow(source);
    return 0;
}

static int log_corrupt(struct log_source *source, char *why, size_t why_size, const char *what,
                       uint64_t lsn)
{
    const struct log_shard *shard = &source->shard[source->msg_shard];
    snprintf(why, why_size,
             "cluster log: shard %" PRIu32 ": %s (record lsn %" PRIu64 " where lsn %" PRIu64
             " belongs): nothing is skipped, the relay stops",
             source->msg_shard, what, lsn, shard->next_lsn);
    return RUSH_ECORRUPT;
}

static int events_fit(struct log_source *source, uint32_t count)
{
    if (count <= source->events_max)
        return 0;
    uint32_t want = count > LOG_EVENTS_FIRST ? count : LOG_EVENTS_FIRST;
    void *events = NULL;
    if (posix_memalign(&events, 64, (size_t)want * sizeof(struct rush_event)) != 0)
        return -ENOMEM;
    free(source->events);
    source->events = events;
    source->events_max = want;
    return 0;
}

/* The next record of the message: 1 begun in source->batch, 0 the message is done, < 0 bad. */
static int log_next_record(struct log_source *source, char *why, size_t why_size)
{
    struct log_shard *shard = &source->shard[source->msg_shard];
    const void *data = natsMsg_GetData(source->msg);
    size_t len = (size_t)natsMsg_GetDataLength(source->msg);
    struct rush_replicated_view record;
    int rc = rush_replicated_next(data, len, &source->at, shard->next_lsn - 1, &record);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        snprintf(why, why_size,
                 "cluster log: shard %" PRIu32 ": a malformed message where lsn %" PRIu64
                 " belongs (codec/replicated.c refused it): nothing is skipped, the relay stops",
                 source->msg_shard, shard->next_lsn);
        return RUSH_ECORRUPT;
    }
    if (record.lsn != shard->next_lsn)
        return log_corrupt(source, why, why_size,
                           shard->next_lsn == 1 ? "the subject does not start at lsn 1"
                                                : "a gap in the log",
                           record.lsn);
    if (events_fit(source, record.count) != 0) {
        snprintf(why, why_size, "cluster log: no memory for %" PRIu32 " events", record.count);
        return -ENOMEM;
    }
    memcpy(source->events, record.events, (size_t)record.count * sizeof(struct rush_event));
    rush_stream_batch_begin(&source->batch, source->msg_shard, shard->seq, record.time_ns,
                            source->events, record.count);
    shard->next_lsn++;
    source->records++;
    return 1;
}

/*
 * An empty message: a promotion's fence (rush/replicated.h), skipped (it holds no record) when it
 * names the lsn the log is at; anything else stops the relay (invariant 1).
 */
static int log_fence(struct log_source *source, char *why, size_t why_size)
{
    const struct log_shard *shard = &source->shard[source->msg_shard];
    const char *value = NULL;
    uint64_t lsn = 0;
    if (natsMsgHeader_Get(source->msg, RUSH_REPLICATED_FENCE_HEADER, &value) != NATS_OK ||
        rush_replicated_fence_lsn(value, &lsn) != 0) {
        snprintf(why, why_size,
                 "cluster log: shard %" PRIu32 ": an empty message that is no fence where lsn "
                 "%" PRIu64 " belongs: nothing is skipped, the relay stops",
                 source->msg_shard, shard->next_lsn);
        return RUSH_ECORRUPT;
    }
    if (lsn != shard->next_lsn - 1) {
        snprintf(why, why_size,
                 "cluster log: shard %" PRIu32 ": a fence after lsn %" PRIu64 " where lsn %" PRIu64
                 " belongs: nothing is skipped, the relay stops",
                 source->msg_shard, lsn, shard->next_lsn);
        return RUSH_ECORRUPT;
    }
    source->fences++;
    return 1; /* no record in it: the next read finds the message done */
}

/* Takes the next message: 1, 0 none within timeout_ms, < 0 the relay must stop. */
static int log_next_message(struct log_source *source, int timeout_ms, char *why, size_t why_size)
{
    natsMsg_Destroy(source->msg);
    source->msg = NULL;
    natsStatus s = natsSubscription_NextMsg(&source->msg, source->sub, timeout_ms);
    if (s == NATS_TIMEOUT)
        return 0;
    if (s == NATS_SLOW_CONSUMER || s == NATS_MISSED_HEARTBEAT) {
        /* The ordered consumer sees the gap or the silence and starts again after the last
         * message it delivered: nothing is lost or repeated here. */
        rush_log(RUSH_LOG_WARN, "relay: cluster log: %s (the library resumes)",
                 natsStatus_GetText(s));
        return 0;
    }
    if (s != NATS_OK)
        return log_status(s, "reading the log", why, why_size);
    const char *subject = natsMsg_GetSubject(source->msg);
    size_t prefix_len = strlen(source->prefix);
    uint32_t index = UINT32_MAX;
    if (strncmp(subject, source->prefix, prefix_len) != 0 ||
        rush_number_parse_u32(subject + prefix_len, 0, source->shards - 1, &index, NULL, 0) != 0) {
        snprintf(why, why_size, "cluster log: a message on %s, not a shard below %" PRIu32, subject,
                 source->shards);
        return RUSH_EPROTO;
    }
    source->msg_shard = index;
    source->at = 0;
    source->messages++;
    if (natsMsg_GetDataLength(source->msg) == 0)
        return log_fence(source, why, why_size);
    return 1;
}

static int log_poll(void *state, struct rush_stream_event *events, uint32_t max, int timeout_ms,
                    char *why, size_t why_size)
{
    struct log_source *source = state;
    uint32_t got = 0;
    int rc = source->error;
    if (rc != 0) {
        snprintf(why, why_size, "%s", source->why);
        return rc;
    }
    if (source->sub == NULL && log_follow(source) == 0) {
        nats_Sleep(timeout_ms); /* the poll's wait, then the caller polls again */
        return 0;
    }
    /* Bounded: max events, and LOG_MESSAGES_PER_POLL_MAX messages. */
    for (uint32_t messages = 0; got < max && messages < LOG_MESSAGES_PER_POLL_MAX;) {
        if (!rush_stream_batch_done(&source->batch)) {
            struct log_shard *shard = &source->shard[source->batch.shard];
            got += rush_stream_batch_take(&source->batch, shard->from_seq, events + got, max - got);
            shard->seq = source->batch.seq; /* invariant 2 */
            if (shard->seq >= shard->from_seq)
                shard->from_seq = shard->seq + 1; /* invariant 3 */
            continue;
        }
        rc = source->msg != NULL ? log_next_record(source, source->why, sizeof source->why) : 0;
        if (rc == 1)
            continue;
        if (rc == 0)
            rc = log_next_message(source, got > 0 || messages > 0 ? 0 : timeout_ms, source->why,
                                  sizeof source->why);
        if (rc <= 0)
            break;
        messages++;
    }
    if (rc < 0)
        source->error = rc; /* the events before it go out first (invariant 3) */
    if (rc < 0 && got == 0) {
        snprintf(why, why_size, "%s", source->why);
        return rc;
    }
    return (int)got;
}

static void log_close(void *state)
{
    struct log_source *source = state;
    rush_log(RUSH_LOG_INFO,
             "relay: cluster log: %" PRIu64 " messages, %" PRIu64 " records, %" PRIu64
             " fences read",
             source->messages, source->records, source->fences);
    natsMsg_Destroy(source->msg);
    if (source->sub != NULL) {
        (void)natsSubscription_Unsubscribe(source->sub);
        natsSubscription_Destroy(source->sub);
    }
    jsCtx_Destroy(source->js);
    natsConnection_Destroy(source->connection);
    free(source->events);
    free(source);
}

const struct relay_source_ops relay_log_source = {
    .name = "cluster log",
    .open = log_open,
    .shards = log_shards,
    .start = log_start,
    .poll = log_poll,
    .close = log_close,
};
