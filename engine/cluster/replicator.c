/*
 * replicator.c — ships a leading shard's log batches to its JetStream subject, in order, and
 * tells the engine what JetStream acknowledged (ARCHITECTURE.md "Cluster").
 *
 * Workload: every WAL batch of a leading shard (one per shard pass). The shard thread only copies
 * the batch into this shard's queue (cluster_replica_append: one malloc and memcpy per batch,
 * never a network call); the replicator thread takes everything queued, up to
 * RUSH_CLUSTER_MESSAGE_BYTES_MAX, publishes it as one message and waits for the acknowledgement,
 * so batches appended meanwhile ride the next message (group commit, like the WAL's).
 *
 * Each message states Nats-Expected-Last-Subject-Sequence = the subject's last sequence this
 * leader knows (the previous acknowledgement, or what it read at promotion) and a message id
 * (node, shard, lsns) for JetStream's duplicate window, so:
 *   1. a writer that is not current (another node appended since) is refused, error 10071: the
 *      shard is fenced at once and never ships again in this term;
 *   2. a publish that timed out is sent again with the same id: stored once at most (a refusal
 *      of the second send is checked against the subject: if the first send was stored, it is
 *      the acknowledgement);
 *   3. the engine hears rush_engine_replica_acked(last lsn) only after JetStream stored the
 *      message on a quorum, and replies wait for that and the local fdatasync.
 *
 *   queued --take--> publishing --ack--> acked (engine told)
 *                        |--10071--> dropped; the shard diverged (rush_engine_diverge)
 *                        '--timeout / connection lost--> publishing again (same id), also once
 *                           the shard is fenced (its lease ran out): acknowledged at last, the
 *                           fenced shard is clean and follows again
 *
 * A fenced shard answered its held requests outcome_unknown at once; its batches are still sent,
 * so that its state and the log agree again and it can lead later without a restart. Retries
 * back off from 20 to 200 ms; a message unacknowledged for cluster_stall_ms is logged with the
 * last failure, again each period; after REPLICATOR_GIVE_UP_MS the shard diverges.
 *
 * Thread: one replicator per shard; cluster_replica_append on the shard's thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "cluster_internal.h"
#include "rush/assert.h"

#define REPLICATOR_WAIT_MS 100      /* a queue wait, so that stopping is seen */
#define REPLICATOR_RETRY_MS 20      /* between publishes of the same message, at first ... */
#define REPLICATOR_RETRY_MAX_MS 200 /* ... doubling up to this (servers electing a leader) */
/* 5 minutes of retries of one message, then the shard diverges (each retry waits at most
 * lease_ms for JetStream, so this also bounds the retries' count). */
#define REPLICATOR_GIVE_UP_MS 300000

void cluster_replica_append(void *context, uint32_t shard_index, uint64_t lsn, int64_t time_ns,
                            const struct rush_event *events, uint32_t count)
{
    struct rush_cluster *cluster = context;
    RUSH_ASSERT(shard_index < cluster->shard_count);
    struct cluster_shard *shard = &cluster->shards[shard_index];
    struct cluster_pending *p = malloc(sizeof(*p) + (size_t)count * sizeof(*events));
    RUSH_ASSERT(p != NULL); /* the shard cannot go on without shipping its batch */
    *p = (struct cluster_pending){
        .term = atomic_load(&shard->term), .lsn = lsn, .time_ns = time_ns, .count = count};
    memcpy(p->events, events, (size_t)count * sizeof(*events));
    pthread_mutex_lock(&shard->lock);
    if (shard->tail != NULL)
        shard->tail->next = p;
    else
        shard->head = p;
    shard->tail = p;
    shard->pending_count++;
    pthread_cond_signal(&shard->ready);
    pthread_mutex_unlock(&shard->lock);
}

void cluster_replicator_promote(struct cluster_shard *shard, uint64_t seq)
{
    pthread_mutex_lock(&shard->lock);
    shard->last_seq = seq;
    atomic_fetch_add(&shard->term, 1);
    pthread_mutex_unlock(&shard->lock);
}

static size_t record_bytes(const struct cluster_pending *p)
{
    return rush_replicated_bytes(p->count);
}

/* Takes the queued batches of `term` that fit one message (at least one); frees older terms'. */
static struct cluster_pending *take(struct cluster_shard *shard, uint32_t *term, uint64_t *seq,
                                    size_t *bytes)
{
    struct rush_cluster *cluster = shard->cluster;
    struct timespec until;
    pthread_mutex_lock(&shard->lock);
    if (shard->head == NULL && !atomic_load(&cluster->stopping)) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += REPLICATOR_WAIT_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&shard->ready, &shard->lock, &until);
    }
    *term = atomic_load(&shard->term);
    *seq = shard->last_seq;
    struct cluster_pending *first = NULL, **link = &first;
    *bytes = 0;
    while (shard->head != NULL) {
        struct cluster_pending *p = shard->head;
        if (p->term == *term && first != NULL &&
            *bytes + record_bytes(p) > RUSH_CLUSTER_MESSAGE_BYTES_MAX)
            break;
        shard->head = p->next;
        shard->pending_count--;
        p->next = NULL;
        if (p->term != *term) { /* a fenced term's batch: its requests were answered unknown */
            free(p);
            continue;
        }
        *bytes += record_bytes(p);
        *link = p;
        link = &p->next;
    }
    if (shard->head == NULL)
        shard->tail = NULL;
    pthread_mutex_unlock(&shard->lock);
    return first;
}

/* The message's payload: each batch as a record header and its events. */
static char *payload_of(const struct cluster_pending *list, size_t bytes)
{
    char *payload = malloc(bytes);
    RUSH_ASSERT(payload != NULL);
    size_t at = 0;
    for (const struct cluster_pending *p = list; p != NULL; p = p->next)
        at += rush_replicated_put(payload + at, p->lsn, p->time_ns, p->events, p->count);
    RUSH_ASSERT(at == bytes);
    return payload;
}

enum publish_result { PUBLISHED, REFUSED, FAILED };

/*
 * A refusal of a message sent again: JetStream checks the expected sequence before its duplicate
 * window, so a first send that was stored (its acknowledgement lost to a timeout, a stopped
 * process or a lost server) makes the second one "wrong last sequence". The subject's first
 * message after `expected` tells: ours (same message id) means stored, at its sequence.
 */
static bool stored_already(struct cluster_shard *shard, const char *id, uint64_t expected,
                           uint64_t *seq)
{
    struct rush_cluster *cluster = shard->cluster;
    jsDirectGetMsgOptions options = {.Sequence = expected + 1, .NextBySubject = shard->subject};
    natsMsg *msg = NULL;
    if (js_DirectGetMsg(&msg, cluster->js, cluster->stream, NULL, &options) != NATS_OK)
        return false;
    const char *stored_id = NULL;
    bool ours =
        natsMsgHeader_Get(msg, "Nats-Msg-Id", &stored_id) == NATS_OK && strcmp(stored_id, id) == 0;
    if (ours)
        *seq = natsMsg_GetSequence(msg);
    natsMsg_Destroy(msg);
    return ours;
}

/* Why the last publish failed, for the stall warning. */
struct publish_failure {
    natsStatus status;
    jsErrCode code;
};

natsStatus cluster_append(jsCtx *js, natsMsg *msg, uint64_t expected, const char *id,
                          int64_t max_wait_ms, uint64_t *seq, jsErrCode *code)
{
    /* Set by hand: the option's 0 means "no check", and 0 must mean "an empty subject". */
    char text[24];
    snprintf(text, sizeof(text), "%" PRIu64, expected);
    natsMsgHeader_Set(msg, "Nats-Expected-Last-Subject-Sequence", text);
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MsgId = id;
    options.MaxWait = max_wait_ms;
    jsPubAck *ack = NULL;
    *code = 0;
    natsStatus status = js_PublishMsg(&ack, js, msg, &options, code);
    natsMsg_Destroy(msg);
    if (status == NATS_OK)
        *seq = ack->Sequence;
    jsPubAck_Destroy(ack);
    return status;
}

static enum publish_result publish_once(struct cluster_shard *shard, const char *payload,
                                        size_t bytes, const char *id, uint64_t expected,
                                        uint64_t *seq, struct publish_failure *failure)
{
    struct rush_cluster *cluster = shard->cluster;
    natsMsg *msg = NULL;
    failure->status = natsMsg_Create(&msg, shard->subject, NULL, payload, (int)bytes);
    failure->code = 0;
    if (failure->status != NATS_OK)
        return FAILED;
    failure->status = cluster_append(cluster->js, msg, expected, id, cluster->settings.lease_ms,
                                     seq, &failure->code);
    if (failure->status == NATS_OK)
        return PUBLISHED;
    if (failure->code == JSStreamWrongLastSequenceErr)
        return stored_already(shard, id, expected, seq) ? PUBLISHED : REFUSED;
    return FAILED;
}

/* The message of lsns first..last has not been acknowledged for a while: say so, and why. */
static void warn_stalled(const struct cluster_shard *shard, uint64_t first, uint64_t last,
                         int64_t waited_ms, uint32_t attempts, const struct publish_failure *why)
{
    rush_log(RUSH_LOG_WARN,
             "cluster: shard %u: lsns %" PRIu64 "..%" PRIu64 " not acknowledged by JetStream "
             "after %lld ms and %u sends (last: %s, JetStream error %d; role %d), still sending",
             shard->index, first, last, (long long)waited_ms, attempts,
             natsStatus_GetText(why->status), (int)why->code,
             (int)rush_engine_role(shard->cluster->engine, shard->index));
}

/*
 * Publishes until acknowledged, refused, or the shard stops leading this term. Bounded by
 * REPLICATOR_GIVE_UP_MS; a message waiting longer than cluster_stall_ms is logged (again each
 * period), so a shard whose replies wait on JetStream is never silent.
 */
static void ship(struct cluster_shard *shard, struct cluster_pending *list, size_t bytes,
                 uint32_t term, uint64_t expected)
{
    struct rush_cluster *cluster = shard->cluster;
    uint64_t first = list->lsn, last = list->lsn;
    for (const struct cluster_pending *p = list; p != NULL; p = p->next)
        last = p->lsn;
    char id[96];
    snprintf(id, sizeof(id), "%s.%u.%" PRIu64 ".%" PRIu64, cluster->settings.node, shard->index,
             first, last);
    char *payload = payload_of(list, bytes);
    int64_t start_ms = rush_clock_monotonic_ms(), warned_ms = start_ms;
    long retry_ms = REPLICATOR_RETRY_MS;
    struct publish_failure failure = {0};
    for (uint32_t attempt = 1;; attempt++) { /* bounded by REPLICATOR_GIVE_UP_MS */
        enum rush_shard_role role = rush_engine_role(cluster->engine, shard->index);
        if (atomic_load(&shard->term) != term ||
            (role != RUSH_ROLE_LEADER && role != RUSH_ROLE_FENCED && role != RUSH_ROLE_DRAINING))
            break; /* a new term, or diverged: these will never be in the log */
        uint64_t seq = 0;
        enum publish_result result =
            publish_once(shard, payload, bytes, id, expected, &seq, &failure);
        if (result == PUBLISHED) {
            pthread_mutex_lock(&shard->lock);
            if (atomic_load(&shard->term) == term)
                shard->last_seq = seq;
            pthread_mutex_unlock(&shard->lock);
            rush_engine_replica_acked(cluster->engine, shard->index, last);
            if (warned_ms != start_ms)
                rush_log(
                    RUSH_LOG_INFO,
                    "cluster: shard %u: lsns %" PRIu64 "..%" PRIu64 " acknowledged after %lld ms",
                    shard->index, first, last, (long long)(rush_clock_monotonic_ms() - start_ms));
            break;
        }
        if (result == REFUSED) {
            rush_log(RUSH_LOG_WARN,
                     "cluster: shard %u: JetStream refused lsns %" PRIu64 "..%" PRIu64
                     " (another node appended since sequence %" PRIu64 ")",
                     shard->index, first, last, expected);
            rush_engine_diverge(cluster->engine, shard->index);
            break;
        }
        int64_t now_ms = rush_clock_monotonic_ms();
        if (now_ms - start_ms > REPLICATOR_GIVE_UP_MS) {
            warn_stalled(shard, first, last, now_ms - start_ms, attempt, &failure);
            rush_engine_diverge(cluster->engine, shard->index); /* logs: serves nothing more */
            break;
        }
        if (now_ms - warned_ms >= cluster_stall_ms(cluster)) {
            warn_stalled(shard, first, last, now_ms - start_ms, attempt, &failure);
            warned_ms = now_ms;
        }
        struct timespec pause = {.tv_nsec = retry_ms * 1000000L};
        nanosleep(&pause, NULL); /* the engine fences the shard when its lease runs out */
        retry_ms = retry_ms * 2 > REPLICATOR_RETRY_MAX_MS ? REPLICATOR_RETRY_MAX_MS : retry_ms * 2;
    }
    free(payload);
}

static void *replicator_main(void *argument)
{
    struct cluster_shard *shard = argument;
    struct rush_cluster *cluster = shard->cluster;
    /* One round per message shipped or queue wait, until the cluster stops. */
    while (!atomic_load(&cluster->stopping)) {
        uint32_t term;
        uint64_t expected;
        size_t bytes;
        struct cluster_pending *list = take(shard, &term, &expected, &bytes);
        if (list == NULL)
            continue;
        ship(shard, list, bytes, term, expected);
        for (struct cluster_pending *next; list != NULL; list = next) {
            next = list->next;
            free(list);
        }
    }
    return NULL;
}

int cluster_replicator_start(struct cluster_shard *shard)
{
    int rc = pthread_create(&shard->replicator, NULL, replicator_main, shard);
    if (rc != 0)
        return -rc;
    shard->replicator_started = true;
    return 0;
}

void cluster_replicator_stop(struct cluster_shard *shard)
{
    if (shard->replicator_started) {
        pthread_mutex_lock(&shard->lock);
        pthread_cond_signal(&shard->ready);
        pthread_mutex_unlock(&shard->lock);
        pthread_join(shard->replicator, NULL);
        shard->replicator_started = false;
    }
    for (struct cluster_pending *p = shard->head, *next; p != NULL; p = next) {
        next = p->next;
        free(p);
    }
    shard->head = shard->tail = NULL;
}
