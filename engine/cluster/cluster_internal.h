/*
 * cluster_internal.h — the cluster's state, shared by its files (cluster.h for what they do):
 * cluster.c (connection, stream and bucket, life cycle), replicator.c (the append hook and the
 * replicator threads), lease.c (the lease thread: leases, following, promotion, hand-over).
 *
 * Ownership: a cluster_shard's queue is guarded by its lock (shard thread -> replicator); its
 * lease fields are the lease thread's; last_seq and term are written by the lease thread under
 * the lock at promotion, read by the replicator under it.
 */
#ifndef RUSH_CLUSTER_INTERNAL_H
#define RUSH_CLUSTER_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>

#include "cluster.h"

#include "rush/replicated.h"

/* One record per WAL batch in a replicated message (rush/replicated.h). */
static_assert(RUSH_REPLICATED_EVENT_BYTES == sizeof(struct rush_event), "events are 64 bytes");

/* A batch copied by the append hook, waiting for the replicator. */
struct cluster_pending {
    struct cluster_pending *next;
    uint32_t term;
    uint64_t lsn;
    int64_t time_ns;
    uint32_t count;
    struct rush_event events[];
};

#define CLUSTER_SUBJECT_BYTES 64
#define CLUSTER_KEY_BYTES 48
#define CLUSTER_PENDING_MAX 65536 /* batches queued per shard before the shard thread waits */

struct cluster_shard {
    struct rush_cluster *cluster;
    uint32_t index;
    char subject[CLUSTER_SUBJECT_BYTES]; /* <stream>.shard.<n> */
    char key[CLUSTER_KEY_BYTES];         /* shard.<n> in the lease bucket */
    /* The replicator's queue. */
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct cluster_pending *head;
    struct cluster_pending *tail;
    uint32_t pending_count;
    _Atomic uint32_t term; /* bumped at each promotion: older batches are never shipped */
    uint64_t last_seq;     /* the subject's last stream sequence as this leader knows it */
    pthread_t replicator;
    bool replicator_started;
    /* The lease thread's. */
    uint64_t revision; /* of our lease entry; 0: not held */
    bool leading;
    int32_t handover_to;            /* node index being handed the lease, -1: none */
    _Atomic int32_t handover_asked; /* set by rush_cluster_handover, -1: none */
    natsSubscription *follow;
    _Atomic uint64_t followed_seq; /* stream sequence of the last message followed */
    uint64_t progress_lsn;         /* the applied lsn when it last moved ... */
    int64_t progress_ns;           /* ... and when (monotonic): a stalled follower restarts */
    _Atomic bool leads;            /* for rush_cluster_leads */
    int32_t holder;                /* node index the bucket names (follow_round), -1: none */
    int64_t healthy_ns;            /* last round someone led the shard (monotonic) ... */
    int64_t warned_ns;             /* ... and when its absence was last logged */
    int64_t preferred_ready_ns;    /* since when the preferred node is up and caught up, 0: not */
    uint32_t failbacks;            /* fail-backs started since the preferred node last led it */
};

struct rush_cluster {
    struct rush_campaign_cluster settings;
    uint32_t shard_count;
    int replicas; /* JetStream replicas: min(3, servers) */
    char stream[RUSH_CLUSTER_STREAM_BYTES];
    char bucket[RUSH_CLUSTER_STREAM_BYTES + 8];
    natsConnection *connection;
    jsCtx *js;
    jsCtx *lease_js; /* the lease thread's calls (bucket, last message, follow): half a lease */
    kvStore *leases;
    struct rush_engine *engine;
    struct cluster_shard *shards;
    _Atomic bool stopping;        /* the replicators stop */
    _Atomic bool leases_stopping; /* the lease thread stops */
    int64_t started_ns;
    int64_t slow_round_warned_ns; /* the lease thread's: last "a round took too long" */
    pthread_t lease_thread;
    bool lease_started;
};

/*
 * How long a shard may go without progress (a message unacknowledged, no leader anywhere, fenced)
 * before rushd's log says so, and again each period after: 5 leases, at least 5 s.
 */
static inline int64_t cluster_stall_ms(const struct rush_cluster *cluster)
{
    int64_t ms = 5 * (int64_t)cluster->settings.lease_ms;
    return ms < 5000 ? 5000 : ms;
}

/* replicator.c */
void cluster_replica_append(void *context, uint32_t shard_index, uint64_t lsn, int64_t time_ns,
                            const struct rush_event *events, uint32_t count);
RUSH_MUST_USE int cluster_replicator_start(struct cluster_shard *shard);
void cluster_replicator_stop(struct cluster_shard *shard);
/* The lease thread, at promotion: the subject ends at `seq`; batches of older terms are dropped. */
void cluster_replicator_promote(struct cluster_shard *shard, uint64_t seq);
/*
 * Appends `msg` (destroyed) to its subject only if the subject's last sequence is `expected`
 * (Nats-Expected-Last-Subject-Sequence), with message id `id` for JetStream's duplicate window;
 * max_wait_ms 0: the context's wait. NATS_OK with *seq its sequence; else the status, and
 * JetStream's error in *code (JSStreamWrongLastSequenceErr: another append came first).
 */
natsStatus cluster_append(jsCtx *js, natsMsg *msg, uint64_t expected, const char *id,
                          int64_t max_wait_ms, uint64_t *seq, jsErrCode *code);

/* lease.c */
RUSH_MUST_USE int cluster_lease_start(struct rush_cluster *cluster);
void cluster_lease_stop(struct rush_cluster *cluster);

#endif
