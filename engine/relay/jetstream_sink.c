/*
 * jetstream_sink.c — the relay's JetStream sink (relay.h): asynchronous publishes with
 * Nats-Msg-Id = "shard:seq", and the resume look-up that reads each subject's last message.
 *
 * Order and gaps. Publishes go out in seq order on one connection, and JetStream stores them in
 * the order it receives them. A publish that fails (no acknowledgement within
 * JETSTREAM_ACK_WAIT_MS, or an error answer) is resent from the acknowledgement handler with the
 * same message id, so it is stored (or dropped as a duplicate of a copy already stored) rather
 * than passed over: a subject may then hold a seq after a later one, never lack one that a later
 * one follows. After JETSTREAM_FAILURES_MAX failures in a row with no success between, the sink
 * fails for good and the relay stops.
 *
 * Threads. libnats calls the acknowledgement handler on its own thread: it touches only the
 * atomic counters and, under `lock`, the sticky error.
 */
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/number.h"
#include "relay/relay_internal.h"
#include "rush/assert.h"

#define JETSTREAM_ACK_WAIT_MS 5000 /* one publish's acknowledgement */
#define JETSTREAM_FAILURES_MAX 50  /* failed publishes in a row before the sink gives up */
#define JETSTREAM_SUBJECT_BYTES (RUSH_RELAY_NAME_BYTES_MAX + 8)
#define JETSTREAM_NS_PER_S INT64_C(1000000000)

struct jetstream_sink {
    natsConnection *connection;
    jsCtx *js;
    const char *subject;
    uint64_t published; /* the relay's thread only */
    _Atomic uint64_t acknowledged;
    _Atomic uint64_t duplicates;
    _Atomic uint64_t resends;
    _Atomic uint32_t failures_in_row;
    pthread_mutex_t lock; /* error, why */
    int error;
    char why[RELAY_WHY_BYTES];
};

static void jetstream_fail(struct jetstream_sink *sink, const char *what, const char *detail)
{
    pthread_mutex_lock(&sink->lock);
    if (sink->error == 0) {
        sink->error = -EIO;
        snprintf(sink->why, sizeof sink->why, "jetstream: %s: %s", what, detail);
    }
    pthread_mutex_unlock(&sink->lock);
}

static void jetstream_on_ack(jsCtx *js, natsMsg *msg, jsPubAck *ack, jsPubAckErr *failure,
                             void *closure)
{
    struct jetstream_sink *sink = closure;
    if (ack != NULL) {
        atomic_store(&sink->failures_in_row, 0);
        if (ack->Duplicate)
            atomic_fetch_add(&sink->duplicates, 1);
        atomic_fetch_add(&sink->acknowledged, 1);
    } else if (atomic_fetch_add(&sink->failures_in_row, 1) + 1 >= JETSTREAM_FAILURES_MAX) {
        jetstream_fail(sink, "publish failed too often in a row",
                       failure != NULL && failure->ErrText != NULL
                           ? failure->ErrText
                           : natsStatus_GetText(failure != NULL ? failure->Err : NATS_ERR));
        atomic_fetch_add(&sink->acknowledged, 1); /* given up: no longer in flight */
    } else {
        jsPubOptions options;
        jsPubOptions_Init(&options);
        options.MaxWait = JETSTREAM_ACK_WAIT_MS;
        natsStatus s = js_PublishMsgAsync(js, &msg, &options); /* takes msg on success */
        if (s == NATS_OK)
            atomic_fetch_add(&sink->resends, 1);
        else
            jetstream_fail(sink, "cannot resend a failed publish", natsStatus_GetText(s));
        if (s != NATS_OK)
            atomic_fetch_add(&sink->acknowledged, 1);
    }
    natsMsg_Destroy(msg); /* NULL after a resend took it */
}

static int jetstream_status(natsStatus s, const char *what, char *why, size_t why_size)
{
    if (s == NATS_OK)
        return 0;
    snprintf(why, why_size, "jetstream: %s: %s", what, natsStatus_GetText(s));
    return -EIO;
}

static int jetstream_connect(struct jetstream_sink *sink, const struct rush_relay_config *config,
                             char *why, size_t why_size)
{
    int rc = relay_nats_connect(config->nats_urls, &sink->connection, why, why_size);
    if (rc != 0)
        return rc;
    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = RELAY_OPEN_TIMEOUT_MS;
    js_options.PublishAsync.MaxPending = (int64_t)config->inflight_max;
    js_options.PublishAsync.AckHandler = jetstream_on_ack;
    js_options.PublishAsync.AckHandlerClosure = sink;
    return jetstream_status(natsConnection_JetStream(&sink->js, sink->connection, &js_options),
                            "no JetStream context", why, why_size);
}

/* Uses the stream when it exists, else creates it with subjects SUBJECT.> . */
static int jetstream_stream(struct jetstream_sink *sink, const struct rush_relay_config *config,
                            char *why, size_t why_size)
{
    jsStreamInfo *info = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetStreamInfo(&info, sink->js, config->js_stream, NULL, &code);
    if (s == NATS_OK) {
        rush_log(RUSH_LOG_INFO,
                 "relay: jetstream: stream %s exists, duplicate window %" PRId64 " s",
                 config->js_stream, info->Config->Duplicates / JETSTREAM_NS_PER_S);
        jsStreamInfo_Destroy(info);
        return 0;
    }
    if (s != NATS_NOT_FOUND)
        return jetstream_status(s, config->js_stream, why, why_size);
    char subjects[JETSTREAM_SUBJECT_BYTES];
    snprintf(subjects, sizeof subjects, "%s.>", config->js_subject);
    const char *list[1] = {subjects};
    jsStreamConfig stream;
    jsStreamConfig_Init(&stream);
    stream.Name = config->js_stream;
    stream.Subjects = list;
    stream.SubjectsLen = 1;
    stream.Storage = js_FileStorage;
    stream.Duplicates = (int64_t)config->js_duplicate_window_s * JETSTREAM_NS_PER_S;
    s = js_AddStream(&info, sink->js, &stream, NULL, &code);
    jsStreamInfo_Destroy(info);
    if (s == NATS_OK)
        rush_log(RUSH_LOG_INFO, "relay: jetstream: created stream %s on %s", config->js_stream,
                 subjects);
    return jetstream_status(s, "cannot create the stream", why, why_size);
}

/* held_seq[shard]: the seq in the Nats-Msg-Id of subject SUBJECT.<shard>'s last message. */
static int jetstream_held(struct jetstream_sink *sink, const struct rush_relay_config *config,
                          uint32_t shard, uint64_t *held_seq, char *why, size_t why_size)
{
    char subject[JETSTREAM_SUBJECT_BYTES];
    snprintf(subject, sizeof subject, "%s.%" PRIu32, config->js_subject, shard);
    natsMsg *last = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetLastMsg(&last, sink->js, config->js_stream, subject, NULL, &code);
    if (s == NATS_NOT_FOUND) {
        *held_seq = 0;
        return 0;
    }
    int rc = jetstream_status(s, subject, why, why_size);
    const char *id = NULL;
    if (rc == 0 && natsMsgHeader_Get(last, "Nats-Msg-Id", &id) == NATS_OK && id != NULL) {
        const char *colon = strchr(id, ':');
        uint64_t id_shard = UINT64_MAX;
        if (colon == NULL ||
            rush_number_parse_u64(id, (size_t)(colon - id), 0, UINT64_MAX, &id_shard, NULL, 0) !=
                0 ||
            rush_number_parse_u64(colon + 1, strlen(colon + 1), 1, UINT64_MAX, held_seq, NULL, 0) !=
                0 ||
            id_shard != shard)
            id = NULL;
    }
    if (rc == 0 && id == NULL) {
        snprintf(why, why_size,
                 "jetstream: the last message on %s has no Nats-Msg-Id "
                 "\"%" PRIu32 ":SEQ\" (written by someone else?)",
                 subject, shard);
        rc = RUSH_EPROTO;
    }
    natsMsg_Destroy(last);
    return rc;
}

static void jetstream_close(void *state, struct rush_relay_stats *stats)
{
    struct jetstream_sink *sink = state;
    if (sink == NULL)
        return;
    if (stats != NULL) {
        stats->jetstream_published = sink->published;
        stats->jetstream_duplicates = atomic_load(&sink->duplicates);
        stats->jetstream_resends = atomic_load(&sink->resends);
    }
    jsCtx_Destroy(sink->js);
    natsConnection_Destroy(sink->connection);
    pthread_mutex_destroy(&sink->lock);
    free(sink);
}

static int jetstream_open(void **state, const struct rush_relay_config *config, uint32_t shards,
                          uint64_t *held_seq, char *why, size_t why_size)
{
    struct jetstream_sink *sink = calloc(1, sizeof *sink);
    if (sink == NULL)
        return -ENOMEM;
    RUSH_VERIFY(pthread_mutex_init(&sink->lock, NULL) == 0);
    sink->subject = config->js_subject;
    int rc = jetstream_connect(sink, config, why, why_size);
    rc = rc == 0 ? jetstream_stream(sink, config, why, why_size) : rc;
    for (uint32_t shard = 0; rc == 0 && shard < shards; shard++)
        rc = jetstream_held(sink, config, shard, &held_seq[shard], why, why_size);
    if (rc != 0) {
        jetstream_close(sink, NULL);
        return rc;
    }
    *state = sink;
    return 0;
}

static int jetstream_sticky(struct jetstream_sink *sink, char *why, size_t why_size)
{
    pthread_mutex_lock(&sink->lock);
    int rc = sink->error;
    if (rc != 0)
        snprintf(why, why_size, "%s", sink->why);
    pthread_mutex_unlock(&sink->lock);
    return rc;
}

static int jetstream_publish(void *state, const struct relay_message *message, char *why,
                             size_t why_size)
{
    struct jetstream_sink *sink = state;
    char subject[JETSTREAM_SUBJECT_BYTES];
    snprintf(subject, sizeof subject, "%s.%s", sink->subject, message->shard);
    natsMsg *msg = NULL;
    natsStatus s = natsMsg_Create(&msg, subject, NULL, message->json, (int)message->json_len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Nats-Msg-Id", message->msg_id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Rush-Shard", message->shard);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Rush-Seq", message->seq);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(msg, "Rush-Type", message->type);
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MaxWait = JETSTREAM_ACK_WAIT_MS;
    if (s == NATS_OK)
        s = js_PublishMsgAsync(sink->js, &msg, &options); /* takes msg on success */
    natsMsg_Destroy(msg);
    if (s == NATS_OK)
        sink->published++;
    else
        jetstream_fail(sink, "cannot publish", natsStatus_GetText(s));
    return jetstream_sticky(sink, why, why_size);
}

static uint64_t jetstream_inflight(void *state)
{
    struct jetstream_sink *sink = state;
    uint64_t acknowledged = atomic_load(&sink->acknowledged);
    RUSH_ASSERT(acknowledged <= sink->published);
    return sink->published - acknowledged;
}

static int jetstream_serve(void *state, int timeout_ms, char *why, size_t why_size)
{
    struct jetstream_sink *sink = state;
    if (timeout_ms > 0 && jetstream_inflight(sink) > 0)
        nats_Sleep(1); /* acknowledgements arrive on libnats' thread; a short pause, no more */
    return jetstream_sticky(sink, why, why_size);
}

static int jetstream_flush(void *state, int timeout_ms, char *why, size_t why_size)
{
    struct jetstream_sink *sink = state;
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MaxWait = timeout_ms;
    natsStatus s = js_PublishAsyncComplete(sink->js, &options);
    int rc = jetstream_sticky(sink, why, why_size);
    if (rc == 0 && s != NATS_OK) {
        snprintf(why, why_size, "jetstream: %" PRIu64 " messages not acknowledged after %d ms",
                 jetstream_inflight(sink), timeout_ms);
        rc = RUSH_ETIMEDOUT;
    }
    return rc;
}

const struct relay_sink_ops relay_jetstream_sink = {
    .name = "jetstream",
    .open = jetstream_open,
    .publish = jetstream_publish,
    .serve = jetstream_serve,
    .inflight = jetstream_inflight,
    .flush = jetstream_flush,
    .close = jetstream_close,
};
