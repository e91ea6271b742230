/*
 * rush/engine.h — the in-process engine: shards, their threads and the rings between them.
 *
 * Shape. One front-end thread (the server's network loop, a benchmark, a test) submits batches
 * of requests. The engine splits each batch by shard (a SKU's shard is XXH3 of its id; an order
 * or group id carries its shard in its top byte) into work items, and pushes each onto that
 * shard's inbound SPSC ring. Each shard thread is the sole writer of its state: it stamps a work
 * item with the engine clock, decides its requests in order, hands the events to the shard's
 * event sink, and pushes the item back on its outbound ring. rush_engine_poll() gathers the
 * results into the caller's batch and returns the batches that are whole.
 *
 * Threads. rush_engine_submit, rush_engine_poll, rush_engine_execute and rush_engine_sku_put
 * are called from one front-end thread only. The event sink runs on the shard's thread.
 *
 * Limits. Every table and ring is sized here and allocated at rush_engine_create(); nothing is
 * allocated while deciding. A full ring or work pool makes submit return -RUSH_EFULL before any
 * part of the batch is queued; a full table answers the request with outcome RUSH_BUSY.
 */
#ifndef RUSH_ENGINE_H
#define RUSH_ENGINE_H

#include "rush/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A clock source: nanoseconds (since the Unix epoch for a wall clock). Injected so that tests
 * never sleep.
 *
 * The engine clock, which stamps every batch (and so every logged decision) and against which
 * sale windows, pay TTLs and group deadlines are compared, is
 *     base + (monotonic_clock now - monotonic_clock at create),
 *     base = the later of `clock` (the wall clock) at create and the newest batch time recovered
 *            from the data directory's log.
 * It never goes back, across restarts either, and a step of the wall clock while the engine runs
 * (forward or back) changes nothing until the next start: a sale does not end early and an
 * in-time payment does not expire because NTP or an operator moved the clock.
 */
typedef int64_t (*rush_clock_fn)(void *context);

/*
 * Called on the shard's thread with the events of decisions, stamped with the batch time.
 * One work item may be handed over in several calls (bounded by events_buffer_max); all of a
 * work item's calls come before its results are visible to the front end.
 */
typedef void (*rush_event_sink_fn)(void *context, uint32_t shard_index, int64_t time_ns,
                                   const struct rush_event *events, uint32_t count);

/* Sizes of one shard's tables. All are hard limits. */
struct rush_shard_limits {
    uint32_t skus_max;
    uint32_t orders_max;      /* orders ever created on the shard, seats included */
    uint32_t groups_max;      /* groups ever opened on the shard */
    uint32_t keys_max;        /* idempotency entries */
    uint32_t user_limits_max; /* (sku, user) pairs holding stock */
    uint32_t events_buffer_max;
};

/*
 * How long ended orders are kept and what one user may hold or churn (proto/PROTOCOL.md, "What
 * is remembered"). Decisions read it; replaying the log does not, so it may change on a restart.
 */
struct rush_shard_policy {
    int64_t retain_ns;        /* an ended order (and its keys) is kept this long; 0: 30 minutes */
    uint32_t user_unpaid_max; /* unpaid flash-sale orders per (SKU, user); 0: no cap */
    uint32_t user_churn_max;  /* cancelled + expired flash-sale orders per (SKU, user); 0: none */
    /* The activities (at most RUSH_ACTIVITIES_MAX, distinct families); each shard copies them at
     * create. Limits only: what users took is shard state (logged, in snapshots). */
    const struct rush_activity *activities;
    uint32_t activity_count;
};
#define RUSH_RETAIN_NS_DEFAULT (INT64_C(30) * 60 * 1000000000)

/*
 * The replicated log (durability replicated; engine/cluster provides it, ARCHITECTURE.md
 * "Cluster"). `append` runs on the shard's thread right after a batch is appended to the local log
 * at `lsn` (events valid during the call only); the replica copies it, ships it, and reports the
 * acknowledged lsn with rush_engine_replica_acked. Never called in any other mode.
 */
struct rush_engine_replica {
    void (*append)(void *context, uint32_t shard_index, uint64_t lsn, int64_t time_ns,
                   const struct rush_event *events, uint32_t count);
    void *context;
};

struct rush_engine_config {
    uint32_t shard_count;       /* 1..RUSH_SHARDS_MAX */
    uint32_t ring_slots;        /* work items in flight per shard; a power of two */
    uint32_t work_requests_max; /* requests in one work item */
    struct rush_shard_limits limits;
    struct rush_shard_policy policy;
    uint64_t seed;       /* hash seed; 0 draws one from getrandom() */
    rush_clock_fn clock; /* the wall clock, read at create; NULL: CLOCK_REALTIME */
    void *clock_context;
    /* What moves the engine clock after create. NULL: CLOCK_MONOTONIC, or `clock` itself when
     * `clock` is injected (a test with one manual clock owns engine time). */
    rush_clock_fn monotonic_clock;
    void *monotonic_clock_context;
    rush_event_sink_fn sink; /* NULL: events are dropped after they are applied */
    void *sink_context;
    /*
     * Durability. With a data_dir, each shard replays its write-ahead log there at create and
     * appends every decided batch to it; a batch comes back from poll only once its events are
     * durable in the chosen mode (ARCHITECTURE.md "Durability"). NULL: memory only (tests,
     * benchmarks).
     */
    const char *data_dir;
    uint8_t durability;      /* enum rush_durability */
    bool wal_force_no_uring; /* the pwrite + fdatasync path even where io_uring works */
    /*
     * Snapshots (with a data_dir, fsync or async durability): each shard writes its whole state
     * to data_dir once this many events were decided on it since its last snapshot (counted from
     * the start of the process), then removes the log segments the snapshot covers; recovery then
     * replays only the log after it. The shard's thread is blocked while it writes: O(state),
     * about 0.4 s per million orders held, mostly writing and
     * fdatasyncing ~93 bytes per order (bench-recovery measures it). 0: never.
     */
    uint64_t snapshot_every_events;
    /*
     * Automatic snapshots written without stopping the shard: the shard thread waits for the log
     * to be synced (one fdatasync), then fork(2)s; the child writes the snapshot from the
     * copy-on-write image of the state and exits, while the shard goes on deciding (each page it
     * then changes is copied once). The covered segments are removed when the child is done.
     * An on-demand rush_engine_snapshot() still writes on the shard's thread. false: automatic
     * snapshots block the shard as above.
     */
    bool snapshot_in_background;
    uint64_t wal_segment_bytes;         /* size of each log segment file; 0: 64 MiB */
    struct rush_engine_replica replica; /* durability replicated only */
};

enum rush_durability {
    RUSH_DURABILITY_FSYNC = 0, /* reply after write + fdatasync (default) */
    RUSH_DURABILITY_ASYNC = 1, /* reply after write; fdatasync every few ms */
    RUSH_DURABILITY_NONE = 2,  /* no log I/O: benchmarks only */
    /* fsync, and each batch also appended to the cluster's replicated log (engine/cluster): a
     * reply waits for both. Needs config.replica. */
    RUSH_DURABILITY_REPLICATED = 3,
};

/* A sensible configuration for `shard_count` shards sized for a campaign of a few million orders.
 */
void rush_engine_config_default(struct rush_engine_config *config, uint32_t shard_count);

/* Returns 0, or RUSH_ECONFIG naming nothing: call with a message buffer for the reason. */
RUSH_MUST_USE int rush_engine_config_check(const struct rush_engine_config *config, char *why,
                                           size_t why_size);

/*
 * A batch is the caller's: requests in, results out, in the same order. The engine fills
 * results[i] for every i before the batch comes back from rush_engine_poll().
 */
struct rush_batch {
    const struct rush_request *requests;
    struct rush_result *results;
    uint32_t count;
    void *context; /* the caller's */
    /* 0, or RUSH_EWAL: a shard's log failed before part of the batch was durable. Then the
     * results of that part are RUSH_OUTCOME_UNKNOWN (logged or not, nobody knows: resend with the
     * same keys after a restart); every other result is a durable decision. */
    int status;
    uint32_t pending_; /* the engine's: work items not yet back */
};

struct rush_engine;

RUSH_MUST_USE int rush_engine_create(const struct rush_engine_config *config,
                                     struct rush_engine **out);
/* Starts the shard threads. */
RUSH_MUST_USE int rush_engine_start(struct rush_engine *engine);
/* Stops the shard threads after they finish what was submitted, then frees everything. */
void rush_engine_destroy(struct rush_engine *engine);

uint32_t rush_engine_shard_count(const struct rush_engine *engine);
/* The shard that owns a SKU: stable across restarts and seeds; a pure function clients may
 * compute: XXH3 of the id (of rush_sku_family(id) from RUSH_SKU_FAMILY_ID_MIN up, so that an
 * activity's SKUs share a shard) scaled to shard_count. */
uint32_t rush_engine_shard_of_sku(uint32_t shard_count, uint64_t sku_id);
/* The shard a request goes to. */
uint32_t rush_engine_shard_of(uint32_t shard_count, const struct rush_request *request);

/* Queues a batch. 0, or -RUSH_EFULL when a ring or work pool has no room (nothing queued). */
RUSH_MUST_USE int rush_engine_submit(struct rush_engine *engine, struct rush_batch *batch);
/*
 * Collects finished work; stores up to `done_max` whole batches in done[]. Waits up to
 * timeout_ms for the first (0: do not wait; < 0: up to ten minutes). Returns the number stored,
 * or < 0.
 */
RUSH_MUST_USE int rush_engine_poll(struct rush_engine *engine, struct rush_batch **done,
                                   uint32_t done_max, int timeout_ms);
/*
 * For a front end that sleeps in its own poll(2) over sockets and the engine at once: an eventfd
 * that becomes readable when a shard hands work back while the caller is between
 * rush_engine_sleep_begin() (true: nothing is waiting, poll the fd with the sockets; false: call
 * rush_engine_poll at once) and rush_engine_sleep_end() (always called after begin; drains the
 * fd). A shard writes the fd once per sleep, not once per work item. Front-end thread only.
 */
int rush_engine_wake_fd(const struct rush_engine *engine);
RUSH_MUST_USE bool rush_engine_sleep_begin(struct rush_engine *engine);
void rush_engine_sleep_end(struct rush_engine *engine);
/* Submits and waits: the simple synchronous form. Returns 0, RUSH_EWAL (a log failed: results
 * whose fate is unknown are RUSH_OUTCOME_UNKNOWN, the others are decisions), or < 0. */
RUSH_MUST_USE int rush_engine_execute(struct rush_engine *engine,
                                      const struct rush_request *requests, uint32_t count,
                                      struct rush_result *results);
/* Puts (creates or redefines) a SKU on its shard and waits for the decision. */
RUSH_MUST_USE int rush_engine_sku_put(struct rush_engine *engine, const struct rush_sku *sku,
                                      struct rush_result *result);
/*
 * An admin action recorded with who did it and why: like rush_engine_sku_put and
 * rush_engine_execute of one request (adjust, pause, resume), and the shard logs `audit` right
 * after the decision's events (RUSH_EV_ADMIN_AUDIT and its parts; the stream publishes them),
 * whatever the outcome. Front-end thread only.
 */
RUSH_MUST_USE int rush_engine_admin_sku_put(struct rush_engine *engine, const struct rush_sku *sku,
                                            const struct rush_audit *audit,
                                            struct rush_result *result);
RUSH_MUST_USE int rush_engine_admin_execute(struct rush_engine *engine,
                                            const struct rush_request *request,
                                            const struct rush_audit *audit,
                                            struct rush_result *result);

/*
 * Writes a snapshot of every shard, one after another, each on its shard's own thread at a batch
 * boundary once the log is synced up to it, and removes the segments it covers (see
 * snapshot_every_events for the cost: each shard stops deciding while it writes). Front-end
 * thread only. 0; RUSH_ECONFIG without a data_dir or in none mode; RUSH_EWAL; -errno (the first
 * shard's error; the reason is printed on stderr).
 */
RUSH_MUST_USE int rush_engine_snapshot(struct rush_engine *engine);
/*
 * rush_engine_snapshot asked by an admin: each shard first logs `audit` (an admin_audit event with
 * op RUSH_AUDIT_OP_SNAPSHOT and its parts, which the stream publishes) at the point of its log
 * where the snapshot is asked, then writes the snapshot. Whether it was written is in the return
 * value, rushd's log and its audit.log, not in the event.
 */
RUSH_MUST_USE int rush_engine_admin_snapshot(struct rush_engine *engine,
                                             const struct rush_audit *audit);

/*
 * For a reader of a shard's log files on another thread (the publisher, engine/stream/publisher.h):
 * every batch up to the returned lsn is fdatasync'ed (0: none yet), so what a reader publishes
 * from them can never be lost to a crash or power loss and cut as a torn tail: a stream sequence
 * number is never reused. In fsync mode that is what replies wait for; in async mode replies go
 * at write and this follows within flush_interval_ms. In replicated mode it is also no further than
 * what JetStream acknowledged (a leading, fenced or draining shard) or what the shard followed
 * from it (a follower): nothing is published that the cluster could lose to a fence or a failover.
 * Any thread.
 */
uint64_t rush_engine_durable_lsn(const struct rush_engine *engine, uint32_t shard_index);
/*
 * Asks the shard's snapshots to keep the log segments holding batch `lsn` and every later one
 * (UINT64_MAX, the default: no reader to wait for). The reader moves it forward as it goes, so
 * a slow reader costs disk space, never a stalled shard. Any thread.
 */
void rush_engine_retain_log(struct rush_engine *engine, uint32_t shard_index, uint64_t lsn);

/*
 * Cluster roles (durability replicated; ARCHITECTURE.md "Cluster"). Without a replica every shard
 * is a leader for ever and none of this runs. With one, each shard starts a follower:
 *
 *   follower --rush_engine_lead--> leader --rush_engine_fence, or the lease deadline--> fenced
 *      ^                                                                                  |
 *      +---- every batch it appended was acknowledged, nothing held (the shard thread) ---+
 *   leader --rush_engine_drain--> draining --nothing held, all acknowledged--> follower
 *   (a draining shard redirects new requests; its lease deadline passing fences it)
 *   leader or fenced --rush_engine_diverge (the replicated log refused a batch it applied)-->
 *   diverged (until a restart)
 *
 * A leader decides; the others answer every request RUSH_REDIRECT naming the leader index set
 * with rush_engine_set_leader. A fenced shard answers its held, unacknowledged requests
 * RUSH_OUTCOME_UNKNOWN (batch status RUSH_EFENCED). A follower applies the batches given to
 * rush_engine_follow (lsn = its log's next) through apply, as recovery does, and logs them.
 */
enum rush_shard_role {
    RUSH_ROLE_LEADER = 0,
    RUSH_ROLE_FOLLOWER = 1,
    RUSH_ROLE_FENCED = 2,
    RUSH_ROLE_DIVERGED = 3,
    RUSH_ROLE_DRAINING = 4, /* a planned hand-over: no new decision, held requests still answered */
};
/* Any thread. */
enum rush_shard_role rush_engine_role(const struct rush_engine *engine, uint32_t shard_index);
/* Every batch up to `lsn` is in the replicated log; wakes the shard. Any thread. */
void rush_engine_replica_acked(struct rush_engine *engine, uint32_t shard_index, uint64_t lsn);
/* The lsn of the last batch in the shard's local log (decided or followed). Any thread. */
uint64_t rush_engine_applied_lsn(const struct rush_engine *engine, uint32_t shard_index);
/*
 * A follower becomes leader, deciding until `lease_deadline_ns` (CLOCK_MONOTONIC) unless renewed
 * by rush_engine_lease_renewed. Call once it has applied the replicated log to its end.
 */
void rush_engine_lead(struct rush_engine *engine, uint32_t shard_index, int64_t lease_deadline_ns);
void rush_engine_lease_renewed(struct rush_engine *engine, uint32_t shard_index,
                               int64_t lease_deadline_ns);
/* A leader stops taking requests, answers what it holds once replicated, then follows. */
void rush_engine_drain(struct rush_engine *engine, uint32_t shard_index);
/* A leader stops deciding at once (its lease or an append was refused). Any thread. */
void rush_engine_fence(struct rush_engine *engine, uint32_t shard_index);
/* The replicated log refused a batch this shard applied: it serves nothing more. Any thread. */
void rush_engine_diverge(struct rush_engine *engine, uint32_t shard_index);
/* The node index redirects name for this shard (UINT32_MAX: nobody holds it now). Any thread. */
void rush_engine_set_leader(struct rush_engine *engine, uint32_t shard_index, uint32_t node_index);
/*
 * Queues a replicated batch for a follower's thread (copied). One caller thread per shard.
 * 0, or RUSH_EFULL when RUSH_ENGINE_FOLLOW_MAX batches wait already (try again later).
 */
#define RUSH_ENGINE_FOLLOW_MAX 4096
RUSH_MUST_USE int rush_engine_follow(struct rush_engine *engine, uint32_t shard_index, uint64_t lsn,
                                     int64_t time_ns, const struct rush_event *events,
                                     uint32_t count);

/* Engine-wide counters, summed over shards at the moment of the call (approximate while busy). */
struct rush_engine_stats {
    uint64_t requests;
    uint64_t duplicates;
    uint64_t outcomes[RUSH_OUTCOME_COUNT_];
    uint64_t events;
    uint64_t work_items;
    uint64_t busy_rings;       /* submits refused for a full ring */
    uint64_t recovered_events; /* events replayed from the logs at create */
    int wal_error;             /* 0, or the error that failed a shard's log (sticky) */
};
void rush_engine_stats(const struct rush_engine *engine, struct rush_engine_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
