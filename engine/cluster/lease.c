/*
 * lease.c — the lease thread: who leads each shard, following the shards this node does not lead,
 * promotion after reading to the end of the subject, fencing on a lost lease, hand-over
 * (ARCHITECTURE.md "Cluster").
 *
 * A lease is the key shard.<n> of the bucket <stream>_leases, whose TTL is lease_ms: its value is
 * the holder's node name, "-" (released) or "->NAME" (offered to NAME by a hand-over). Taking is
 * a compare-and-set: kvStore_Create when the key is gone (expired or never written), else
 * kvStore_Update on the revision read. The holder renews with kvStore_Update on its revision every
 * lease_ms / 4; its engine shard decides only until (the send time of its last successful renewal
 * + lease_ms * 9 / 10), so it stops before the key can expire on the servers and another node can
 * take it. A promotion first appends a fence (rush/replicated.h) expecting the subject's end it
 * read, so a fenced leader's late batch is either in what it read and applied, or refused.
 * Preferred leader: shard % node count; another node takes a free shard too, but only
 * once it has run for two lease periods (so both nodes starting together split the shards).
 *
 *   follower --key free, taken--> catching up --applied == subject's last lsn, fence
 *      ^                               |         appended expecting its sequence--> leader
 *      ^                               |-- fence refused (a late batch): catching up again
 *      ^                               |-- local log ahead of the subject --> released
 *      +--- engine fenced it (refused append, lapsed lease), lease released --+
 *      +--- hand-over: asked (rushctl), or fail-back to the preferred node ----+
 *
 * Fail-back ([cluster] failback, default on): a leader that is not the shard's preferred node
 * hands the shard over to it once that node's status key shows it up and caught up for
 * FAILBACK_LEASES lease periods in a row. Every round also watches each shard: one that nobody
 * leads for cluster_stall_ms, and a round that outlasted the lease, are logged (rate-limited).
 *
 * Thread: the lease thread only, except the follower callback (libnats' delivery thread, which
 * only calls rush_engine_follow) and rush_cluster_handover (sets handover_asked).
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

#define CATCH_UP_POLL_MS 1
#define FOLLOW_FULL_WAIT_MS 1
#define FOLLOW_FULL_ROUNDS_MAX 60000 /* a minute of a full follow queue: the shard is stuck */
#define FAILBACK_LEASES 3            /* the preferred node ready this long before a fail-back */
/* ... and at most this many batches behind the leader. Its status is up to a lease round old (more
 * on a loaded machine) while a leader may append hundreds of batches a second: 256 was too tight
 * for an ASan build under CI's load (no fail-back within 70 s, twice). A bigger lag only
 * lengthens the hand-over's catch-up: the heir reads to the end before it decides. */
#define FAILBACK_LAG_MAX 8192
#define FENCE_TRIES 3 /* fences refused by late batches of the fenced leader, then released */

static void sleep_ms(uint32_t ms)
{
    struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

static int64_t lease_ns(const struct rush_cluster *cluster)
{
    return (int64_t)cluster->settings.lease_ms * 1000000;
}

static int node_index_of(const struct rush_cluster *cluster, const char *name, size_t len)
{
    for (uint32_t i = 0; i < cluster->settings.node_count; i++)
        if (strlen(cluster->settings.names[i]) == len &&
            memcmp(cluster->settings.names[i], name, len) == 0)
            return (int)i;
    return -1;
}

/* ---- following ---------------------------------------------------------------------------- */

/* libnats' delivery thread: each record of a replicated message goes to the engine in order. */
static void on_followed(natsConnection *connection, natsSubscription *sub, natsMsg *msg,
                        void *closure)
{
    (void)connection;
    (void)sub;
    struct cluster_shard *shard = closure;
    struct rush_cluster *cluster = shard->cluster;
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg), at = 0;
    struct rush_replicated_view record = {0};
    int rc;
    while ((rc = rush_replicated_next(data, len, &at, record.lsn, &record)) == 1) {
        size_t events_bytes = (size_t)record.count * sizeof(struct rush_event);
        struct rush_event *events = malloc(events_bytes);
        RUSH_ASSERT(events != NULL);
        memcpy(events, record.events, events_bytes); /* aligned for the engine */
        for (uint32_t round = 0; round < FOLLOW_FULL_ROUNDS_MAX; round++) {
            if (rush_engine_follow(cluster->engine, shard->index, record.lsn, record.time_ns,
                                   events, record.count) != RUSH_EFULL ||
                atomic_load(&cluster->stopping))
                break;
            sleep_ms(FOLLOW_FULL_WAIT_MS);
        }
        free(events);
    }
    const char *fence = NULL;
    uint64_t fence_lsn = 0;
    if (len == 0 && (natsMsgHeader_Get(msg, RUSH_REPLICATED_FENCE_HEADER, &fence) != NATS_OK ||
                     rush_replicated_fence_lsn(fence, &fence_lsn) != 0))
        rc = RUSH_ECORRUPT; /* empty and no fence */
    if (rc < 0)             /* the engine sees the gap and does not apply past it */
        rush_log(RUSH_LOG_ERROR, "cluster: shard %u: a malformed message on %s after lsn %llu",
                 shard->index, shard->subject, (unsigned long long)record.lsn);
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        atomic_store(&shard->followed_seq, meta->Sequence.Stream);
        jsMsgMetaData_Destroy(meta);
    }
    natsMsg_Destroy(msg);
}

/* An ordered consumer on the shard's subject from its start; the engine skips what it has. */
static void follow_start(struct cluster_shard *shard)
{
    struct rush_cluster *cluster = shard->cluster;
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Ordered = true;
    options.Config.DeliverPolicy = js_DeliverAll;
    options.Stream = cluster->stream;
    jsErrCode code = 0;
    natsStatus status = js_Subscribe(&shard->follow, cluster->lease_js, shard->subject, on_followed,
                                     shard, NULL, &options, &code);
    if (status != NATS_OK) {
        shard->follow = NULL; /* tried again next round */
        rush_log(RUSH_LOG_WARN, "cluster: shard %u: cannot follow %s: %s (%d)", shard->index,
                 shard->subject, natsStatus_GetText(status), (int)code);
    }
}

static void follow_stop(struct cluster_shard *shard)
{
    if (shard->follow == NULL)
        return;
    (void)natsSubscription_Unsubscribe(shard->follow);
    natsSubscription_Destroy(shard->follow);
    shard->follow = NULL;
}

static bool subject_end(struct cluster_shard *shard, uint64_t *seq, uint64_t *lsn);

/*
 * A follower whose applied lsn has not moved for a lease period while the subject holds more
 * (its consumer lived on a server that died, or a batch came after a gap): subscribed again,
 * from the subject's start (the engine skips what it holds).
 */
static void follow_check(struct cluster_shard *shard)
{
    struct rush_cluster *cluster = shard->cluster;
    uint64_t applied = rush_engine_applied_lsn(cluster->engine, shard->index);
    int64_t now_ns = rush_clock_monotonic_ns();
    if (applied != shard->progress_lsn || shard->follow == NULL) {
        shard->progress_lsn = applied;
        shard->progress_ns = now_ns;
        return;
    }
    if (now_ns - shard->progress_ns < lease_ns(cluster))
        return;
    shard->progress_ns = now_ns;
    uint64_t seq, last_lsn;
    if (!subject_end(shard, &seq, &last_lsn) || last_lsn <= applied)
        return;
    rush_log(RUSH_LOG_WARN,
             "cluster: shard %u: standby stalled at lsn %" PRIu64 " (the log is at %" PRIu64
             "): following again",
             shard->index, applied, last_lsn);
    follow_stop(shard);
    follow_start(shard);
}

/* ---- taking, promoting, releasing ---------------------------------------------------------- */

/* The subject's last stream sequence and the last lsn in it (0, 0: empty). False on an error. */
static bool subject_end(struct cluster_shard *shard, uint64_t *seq, uint64_t *lsn)
{
    struct rush_cluster *cluster = shard->cluster;
    natsMsg *msg = NULL;
    jsErrCode code = 0;
    natsStatus status =
        js_GetLastMsg(&msg, cluster->lease_js, cluster->stream, shard->subject, NULL, &code);
    *seq = *lsn = 0;
    if (status == NATS_NOT_FOUND)
        return true;
    if (status != NATS_OK)
        return false;
    *seq = natsMsg_GetSequence(msg);
    const char *fence = NULL;
    if (natsMsgHeader_Get(msg, RUSH_REPLICATED_FENCE_HEADER, &fence) != NATS_OK)
        fence = NULL;
    int rc = rush_replicated_end_lsn(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                                     fence, lsn);
    natsMsg_Destroy(msg);
    return rc == 0; /* a malformed last message: its end is not known */
}

static void release(struct cluster_shard *shard, const char *value)
{
    struct rush_cluster *cluster = shard->cluster;
    if (shard->revision != 0)
        (void)kvStore_Update(NULL, cluster->leases, shard->key, value, (int)strlen(value),
                             shard->revision);
    shard->revision = 0;
    shard->leading = false;
    atomic_store(&shard->leads, false);
}

enum fence_result { FENCE_APPENDED, FENCE_REFUSED, FENCE_FAILED };

/*
 * Appends the promotion's fence (rush/replicated.h): no payload, Rush-Fence "<node> <lsn>",
 * expecting `expected` as the subject's last sequence. Appended: *seq is its sequence, the new
 * leader's first expected one, and any append still expecting `expected` (a fenced leader's late
 * batch) is refused from now on. Refused: something landed after `expected`.
 */
static enum fence_result append_fence(struct cluster_shard *shard, uint64_t expected, uint64_t lsn,
                                      uint64_t *seq)
{
    struct rush_cluster *cluster = shard->cluster;
    char value[RUSH_REPLICATED_FENCE_BYTES], id[RUSH_REPLICATED_FENCE_BYTES + 48];
    RUSH_VERIFY(rush_replicated_fence_put(value, sizeof(value), cluster->settings.node, lsn));
    snprintf(id, sizeof(id), "%s.%u.fence.%" PRIu64, cluster->settings.node, shard->index,
             expected);
    natsMsg *msg = NULL;
    if (natsMsg_Create(&msg, shard->subject, NULL, NULL, 0) != NATS_OK)
        return FENCE_FAILED;
    natsMsgHeader_Set(msg, RUSH_REPLICATED_FENCE_HEADER, value);
    jsErrCode code = 0;
    natsStatus status = cluster_append(cluster->lease_js, msg, expected, id, 0, seq, &code);
    if (status == NATS_OK)
        return FENCE_APPENDED;
    if (code == JSStreamWrongLastSequenceErr)
        return FENCE_REFUSED;
    rush_log(RUSH_LOG_WARN, "cluster: shard %u: cannot append the fence: %s (%d)", shard->index,
             natsStatus_GetText(status), (int)code);
    return FENCE_FAILED;
}

/*
 * Reads the subject's end and waits (until deadline_ns) until the engine applied it. True with
 * *seq, *last_lsn when it did; false (logged) when this node cannot take the shard now.
 */
static bool catch_up(struct cluster_shard *shard, int64_t taken_ns, int64_t deadline_ns,
                     bool *restarted, uint64_t *seq, uint64_t *last_lsn)
{
    struct rush_cluster *cluster = shard->cluster;
    uint64_t applied = 0;
    /* Read twice at most: a late batch may land (and be applied) just after the first read. */
    for (int read = 0; read < 2 && (read == 0 || applied > *last_lsn); read++) {
        if (!subject_end(shard, seq, last_lsn))
            return false;
        applied = rush_engine_applied_lsn(cluster->engine, shard->index);
        while (applied < *last_lsn && rush_clock_monotonic_ns() < deadline_ns) {
            if (!*restarted && rush_clock_monotonic_ns() > taken_ns + lease_ns(cluster) / 4) {
                follow_stop(shard); /* no progress: its consumer may be gone with a server */
                follow_start(shard);
                *restarted = true;
            }
            sleep_ms(CATCH_UP_POLL_MS);
            applied = rush_engine_applied_lsn(cluster->engine, shard->index);
        }
    }
    if (applied == *last_lsn &&
        rush_engine_role(cluster->engine, shard->index) == RUSH_ROLE_FOLLOWER)
        return true;
    rush_log(applied > *last_lsn ? RUSH_LOG_ERROR : RUSH_LOG_WARN,
             "cluster: shard %u: local log at lsn %" PRIu64 ", replicated log at %" PRIu64
             ": not taking it%s",
             shard->index, applied, *last_lsn,
             applied > *last_lsn ? " (the local log is ahead: move this data dir away)" : "");
    return false;
}

/*
 * Just took the lease (at taken_ns): reads the subject to its end, waits until the engine applied
 * it, appends the fence expecting that end, then promotes. A fence refused means a late batch of
 * the fenced leader landed after the end was read: nothing was decided here, so the end is read
 * again (the batch is applied by the follower) and the fence tried again, FENCE_TRIES times in
 * all. A local log ahead of the subject, a catch-up past half a lease, or a fence that cannot be
 * appended: released.
 */
static void promote(struct cluster_shard *shard, int64_t taken_ns)
{
    struct rush_cluster *cluster = shard->cluster;
    int64_t deadline_ns = taken_ns + lease_ns(cluster) / 2;
    bool restarted = false;
    uint64_t seq = 0, last_lsn = 0, fence_seq = 0;
    enum fence_result fenced = FENCE_REFUSED;
    for (uint32_t attempt = 1; attempt <= FENCE_TRIES && fenced == FENCE_REFUSED; attempt++) {
        if (!catch_up(shard, taken_ns, deadline_ns, &restarted, &seq, &last_lsn))
            break;
        fenced = append_fence(shard, seq, last_lsn, &fence_seq);
        if (fenced == FENCE_REFUSED)
            rush_log(RUSH_LOG_WARN,
                     "cluster: shard %u: fence after stream sequence %" PRIu64
                     " refused (a late batch of the previous leader): reading the end again "
                     "(try %u of %u)",
                     shard->index, seq, attempt, FENCE_TRIES);
    }
    if (fenced != FENCE_APPENDED) {
        release(shard, "-");
        return;
    }
    follow_stop(shard);
    cluster_replicator_promote(shard, fence_seq);
    shard->leading = true;
    atomic_store(&shard->leads, true);
    rush_engine_set_leader(cluster->engine, shard->index, cluster->settings.node_index);
    rush_engine_lead(cluster->engine, shard->index, taken_ns + lease_ns(cluster) * 9 / 10);
    rush_log(RUSH_LOG_INFO,
             "cluster: shard %u: leading from lsn %" PRIu64 " (fence at stream sequence %" PRIu64
             ")",
             shard->index, last_lsn, fence_seq);
}

/* Tries to take a free lease (revision 0: the key is gone). */
static void take(struct cluster_shard *shard, uint64_t revision)
{
    struct rush_cluster *cluster = shard->cluster;
    const char *me = cluster->settings.node;
    int64_t sent_ns = rush_clock_monotonic_ns();
    uint64_t taken = 0;
    natsStatus status =
        revision == 0
            ? kvStore_Create(&taken, cluster->leases, shard->key, me, (int)strlen(me))
            : kvStore_Update(&taken, cluster->leases, shard->key, me, (int)strlen(me), revision);
    if (status != NATS_OK)
        return; /* another node was first */
    shard->revision = taken;
    promote(shard, sent_ns);
}

/* ---- one round per shard ------------------------------------------------------------------- */

static void renew(struct cluster_shard *shard)
{
    struct rush_cluster *cluster = shard->cluster;
    const char *me = cluster->settings.node;
    int64_t sent_ns = rush_clock_monotonic_ns();
    uint64_t revision = 0;
    natsStatus status = kvStore_Update(&revision, cluster->leases, shard->key, me, (int)strlen(me),
                                       shard->revision);
    if (status == NATS_OK) {
        shard->revision = revision;
        rush_engine_lease_renewed(cluster->engine, shard->index,
                                  sent_ns + lease_ns(cluster) * 9 / 10);
        return;
    }
    kvEntry *entry = NULL;
    if (kvStore_Get(&entry, cluster->leases, shard->key) != NATS_OK) {
        kvEntry_Destroy(entry); /* the servers are away (or the key expired): the engine stops at
                                 * the deadline; a free key is taken again as a follower */
        return;
    }
    if (strcmp(kvEntry_ValueString(entry), me) == 0) {
        /* Our own update landed after its wait ran out: that revision is ours, renew on it. */
        shard->revision = kvEntry_Revision(entry);
        sent_ns = rush_clock_monotonic_ns();
        if (kvStore_Update(&revision, cluster->leases, shard->key, me, (int)strlen(me),
                           shard->revision) == NATS_OK) {
            shard->revision = revision;
            rush_engine_lease_renewed(cluster->engine, shard->index,
                                      sent_ns + lease_ns(cluster) * 9 / 10);
        }
    } else {
        rush_log(RUSH_LOG_WARN, "cluster: shard %u: lease taken by %s: fenced", shard->index,
                 kvEntry_ValueString(entry));
        rush_engine_fence(cluster->engine, shard->index);
        shard->revision = 0;
    }
    kvEntry_Destroy(entry);
}

/*
 * Whether the shard's preferred node is up and caught up on it: its status key (rewritten every
 * lease round, so gone within a lease of its death: the bucket's TTL) names an applied lsn at
 * most FAILBACK_LAG_MAX batches behind ours.
 */
static bool preferred_ready(struct cluster_shard *shard, uint32_t preferred)
{
    struct rush_cluster *cluster = shard->cluster;
    char key[CLUSTER_KEY_BYTES + RUSH_CLUSTER_NAME_BYTES];
    snprintf(key, sizeof(key), "node.%s", cluster->settings.names[preferred]);
    kvEntry *entry = NULL;
    if (kvStore_Get(&entry, cluster->leases, key) != NATS_OK) {
        kvEntry_Destroy(entry);
        return false;
    }
    const char *at = kvEntry_ValueString(entry);
    for (uint32_t s = 0; s < shard->index && at != NULL; s++) { /* bounded by the shard count */
        at = strchr(at, ',');
        at = at != NULL ? at + 1 : NULL;
    }
    char *end = NULL;
    uint64_t applied = at != NULL ? strtoull(at, &end, 10) : 0;
    bool read = at != NULL && end != at;
    kvEntry_Destroy(entry);
    uint64_t ours = rush_engine_applied_lsn(cluster->engine, shard->index);
    return read && applied + FAILBACK_LAG_MAX >= ours;
}

/*
 * Fail-back ([cluster] failback = on): a leader that is not the shard's preferred node hands it
 * back once the preferred node has been up and caught up for FAILBACK_LEASES lease periods in a
 * row (so a node that comes and goes does not pull the shard to and fro). The hand-over is the
 * planned one (drain, then offer the lease). Returns the node to hand over to, or -1.
 */
static int32_t failback_target(struct cluster_shard *shard)
{
    struct rush_cluster *cluster = shard->cluster;
    uint32_t preferred = shard->index % cluster->settings.node_count;
    if (!cluster->settings.failback || preferred == cluster->settings.node_index) {
        shard->preferred_ready_ns = 0;
        return -1;
    }
    int64_t now_ns = rush_clock_monotonic_ns();
    if (!preferred_ready(shard, preferred)) {
        shard->preferred_ready_ns = 0;
        return -1;
    }
    if (shard->preferred_ready_ns == 0)
        shard->preferred_ready_ns = now_ns;
    /* A fail-back the preferred node did not take (its copy of the shard diverged, say) is
     * tried again after twice as long each time, up to 32 times as long. */
    uint32_t doubling = shard->failbacks < 5 ? shard->failbacks : 5;
    if (now_ns - shard->preferred_ready_ns < (FAILBACK_LEASES << doubling) * lease_ns(cluster))
        return -1;
    shard->preferred_ready_ns = 0;
    shard->failbacks++;
    rush_log(RUSH_LOG_INFO, "cluster: shard %u: fail-back to its preferred node %s", shard->index,
             cluster->settings.names[preferred]);
    return (int32_t)preferred;
}

/* A leader's round: renew, or hand over, or notice the engine fenced the shard. */
static void lead_round(struct cluster_shard *shard)
{
    struct rush_cluster *cluster = shard->cluster;
    enum rush_shard_role role = rush_engine_role(cluster->engine, shard->index);
    int32_t asked = atomic_exchange(&shard->handover_asked, -1);
    if (asked < 0 && role == RUSH_ROLE_LEADER && shard->handover_to < 0)
        asked = failback_target(shard);
    if (asked >= 0 && role == RUSH_ROLE_LEADER) {
        shard->handover_to = asked; /* drain: the engine answers new requests redirect */
        rush_engine_set_leader(cluster->engine, shard->index, (uint32_t)asked);
        rush_engine_drain(cluster->engine, shard->index);
        rush_log(RUSH_LOG_INFO, "cluster: shard %u: draining for a hand-over to %s", shard->index,
                 cluster->settings.names[asked]);
        return;
    }
    if (role == RUSH_ROLE_LEADER || role == RUSH_ROLE_DRAINING) {
        renew(shard); /* a draining shard keeps its lease until it is empty */
        return;
    }
    if (role == RUSH_ROLE_FENCED)
        return; /* still answering what it held */
    char offer[RUSH_CLUSTER_NAME_BYTES + 2] = "-";
    if (shard->handover_to >= 0 && role == RUSH_ROLE_FOLLOWER)
        snprintf(offer, sizeof(offer), "->%s", cluster->settings.names[shard->handover_to]);
    rush_log(RUSH_LOG_INFO, "cluster: shard %u: %s (lease value %s)", shard->index,
             role == RUSH_ROLE_FOLLOWER ? "stepped down" : "diverged, stepped down", offer);
    release(shard, offer);
    shard->handover_to = -1;
}

/* A non-leader's round: learn the leader (for redirects), take a free or offered lease. */
static void follow_round(struct cluster_shard *shard)
{
    struct rush_cluster *cluster = shard->cluster;
    const struct rush_campaign_cluster *settings = &cluster->settings;
    enum rush_shard_role role = rush_engine_role(cluster->engine, shard->index);
    if (role == RUSH_ROLE_FOLLOWER && shard->follow == NULL)
        follow_start(shard);
    else if (role == RUSH_ROLE_FOLLOWER)
        follow_check(shard);
    kvEntry *entry = NULL;
    natsStatus status = kvStore_Get(&entry, cluster->leases, shard->key);
    if (status != NATS_OK && status != NATS_NOT_FOUND) {
        kvEntry_Destroy(entry);
        shard->holder = -1; /* not known: the stall watch counts it as no leader */
        return;             /* the servers are away: try again next round */
    }
    const char *value = status == NATS_OK ? kvEntry_ValueString(entry) : "-";
    uint64_t revision = status == NATS_OK ? kvEntry_Revision(entry) : 0;
    bool offered = strncmp(value, "->", 2) == 0;
    bool free_lease = strcmp(value, "-") == 0 || value[0] == '\0';
    int holder = free_lease || offered ? -1 : node_index_of(cluster, value, strlen(value));
    rush_engine_set_leader(cluster->engine, shard->index,
                           holder < 0 ? UINT32_MAX : (uint32_t)holder);
    shard->holder = holder;
    if (holder >= 0 && (uint32_t)holder == shard->index % settings->node_count)
        shard->failbacks = 0; /* its preferred node leads it: a later fail-back starts afresh */
    /* Our own name on a lease we do not lead: a release that did not reach the servers. */
    bool to_me =
        (offered && strcmp(value + 2, settings->node) == 0) || strcmp(value, settings->node) == 0;
    bool preferred = shard->index % settings->node_count == settings->node_index;
    bool settled = rush_clock_monotonic_ns() - cluster->started_ns > 2 * lease_ns(cluster);
    kvEntry_Destroy(entry); /* value is not read past here */
    if (role == RUSH_ROLE_FOLLOWER && (to_me || (free_lease && (preferred || settled))))
        take(shard, revision);
}

/* The node's status key node.<name>: each shard's applied lsn, for `rushctl cluster`. */
static void publish_status(struct rush_cluster *cluster)
{
    char key[CLUSTER_KEY_BYTES + RUSH_CLUSTER_NAME_BYTES];
    char value[RUSH_SHARDS_MAX * 24];
    snprintf(key, sizeof(key), "node.%s", cluster->settings.node);
    size_t at = 0;
    for (uint32_t s = 0; s < cluster->shard_count && at < sizeof(value); s++)
        at += (size_t)snprintf(value + at, sizeof(value) - at, "%s%" PRIu64, s ? "," : "",
                               rush_engine_applied_lsn(cluster->engine, s));
    (void)kvStore_PutString(NULL, cluster->leases, key, value);
}

static const char *role_name(enum rush_shard_role role)
{
    switch (role) {
    case RUSH_ROLE_LEADER:
        return "leader";
    case RUSH_ROLE_FOLLOWER:
        return "follower";
    case RUSH_ROLE_FENCED:
        return "fenced";
    case RUSH_ROLE_DIVERGED:
        return "diverged";
    case RUSH_ROLE_DRAINING:
        return "draining";
    }
    return "?";
}

/*
 * The stall watch: a shard that nobody has led (as this node sees it: not leading here, and the
 * bucket names no other holder) for cluster_stall_ms is logged with this node's view of it, again
 * each period, so a cluster that stopped deciding is never silent.
 */
static void watch_shard(struct cluster_shard *shard, int64_t now_ns)
{
    struct rush_cluster *cluster = shard->cluster;
    enum rush_shard_role role = rush_engine_role(cluster->engine, shard->index);
    bool led = shard->leading
                   ? role == RUSH_ROLE_LEADER
                   : shard->holder >= 0 && (uint32_t)shard->holder != cluster->settings.node_index;
    if (led || shard->healthy_ns == 0) {
        shard->healthy_ns = now_ns;
        shard->warned_ns = now_ns;
        return;
    }
    int64_t stall_ns = cluster_stall_ms(cluster) * 1000000;
    if (now_ns - shard->warned_ns < stall_ns)
        return;
    shard->warned_ns = now_ns;
    rush_log(RUSH_LOG_WARN,
             "cluster: shard %u: no leader for %lld ms as node %s sees it (role %s, %s, "
             "applied lsn %" PRIu64 ")",
             shard->index, (long long)((now_ns - shard->healthy_ns) / 1000000),
             cluster->settings.node, role_name(role),
             shard->leading ? "holding its lease" : "lease free or not readable",
             rush_engine_applied_lsn(cluster->engine, shard->index));
}

/* A round that outlasted the lease (NATS calls waiting on lost servers): logged, rate-limited. */
static void watch_round(struct rush_cluster *cluster, int64_t start_ns, int64_t now_ns)
{
    if (now_ns - start_ns <= lease_ns(cluster) ||
        now_ns - cluster->slow_round_warned_ns < cluster_stall_ms(cluster) * 1000000)
        return;
    cluster->slow_round_warned_ns = now_ns;
    rush_log(RUSH_LOG_WARN,
             "cluster: a lease round took %lld ms (lease %u ms): the NATS servers answer slowly",
             (long long)((now_ns - start_ns) / 1000000), cluster->settings.lease_ms);
}

static void *lease_main(void *argument)
{
    struct rush_cluster *cluster = argument;
    uint32_t round_ms = cluster->settings.lease_ms / 4;
    /* One round per lease_ms / 4 until the cluster stops. */
    while (!atomic_load(&cluster->leases_stopping)) {
        int64_t start_ns = rush_clock_monotonic_ns();
        for (uint32_t s = 0; s < cluster->shard_count; s++) {
            struct cluster_shard *shard = &cluster->shards[s];
            if (shard->leading)
                lead_round(shard);
            else
                follow_round(shard);
            watch_shard(shard, rush_clock_monotonic_ns());
        }
        publish_status(cluster);
        watch_round(cluster, start_ns, rush_clock_monotonic_ns());
        int64_t spent_ms = (rush_clock_monotonic_ns() - start_ns) / 1000000;
        if (spent_ms < round_ms)
            sleep_ms(round_ms - (uint32_t)spent_ms);
    }
    return NULL;
}

int cluster_lease_start(struct rush_cluster *cluster)
{
    int rc = pthread_create(&cluster->lease_thread, NULL, lease_main, cluster);
    if (rc != 0)
        return -rc;
    cluster->lease_started = true;
    return 0;
}

/* A clean stop: the shards this node leads stop deciding, then their leases are released. */
static void step_down(struct rush_cluster *cluster)
{
    for (uint32_t s = 0; s < cluster->shard_count; s++)
        if (cluster->shards[s].leading)
            rush_engine_fence(cluster->engine, s);
    int64_t deadline_ns = rush_clock_monotonic_ns() + lease_ns(cluster);
    for (uint32_t s = 0; s < cluster->shard_count; s++) {
        struct cluster_shard *shard = &cluster->shards[s];
        if (!shard->leading)
            continue;
        while (rush_engine_role(cluster->engine, s) == RUSH_ROLE_FENCED &&
               rush_clock_monotonic_ns() < deadline_ns)
            sleep_ms(CATCH_UP_POLL_MS);
        release(shard, "-");
    }
}

void cluster_lease_stop(struct rush_cluster *cluster)
{
    if (cluster->lease_started) {
        atomic_store(&cluster->leases_stopping, true);
        pthread_join(cluster->lease_thread, NULL);
        cluster->lease_started = false;
        step_down(cluster);
    }
    for (uint32_t s = 0; s < cluster->shard_count; s++)
        follow_stop(&cluster->shards[s]);
}
