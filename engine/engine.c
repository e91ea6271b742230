/*
 * engine.c — shards on their threads, and the front end that feeds them (see rush/engine.h).
 *
 * Workload: one front-end thread handing batches of up to RUSH_ENGINE_BATCH_MAX requests to N
 * shard threads; at full rate a work item carries thousands of requests, so the per-item costs
 * (ring hand-off, futex wake-up, clock read, sink call) are paid once per thousands of decisions.
 *
 * A work item's life (each step is one thread's):
 *
 *   free (front end) --fill + push inbound--> queued --pop--> deciding (shard)
 *        ^                                                        | push outbound
 *        +---------- results copied into the batch <-- decided --+
 *
 * Invariants:
 *   1. Each shard has ring_slots work items; both its rings have ring_slots slots, so a push of
 *      an item the front end holds never finds a ring full.
 *   2. A batch's pending_ count is the number of its work items not yet back; the batch is
 *      handed back exactly when it reaches zero.
 *   3. Only the front end touches free lists, batches and the ready queue; only the shard thread
 *      touches its shard.
 *
 * Idle threads sleep on a futex word after re-checking their ring (so a wake-up is never lost);
 * a sleeping shard also wakes every RUSH_ENGINE_IDLE_TICK_MS to fire due timers.
 *
 * The engine clock (engine_now; rush/engine.h). Every batch is stamped with it, sale windows and
 * pay and group deadlines are compared with it, and the stamp is logged. It is the wall clock read
 * once, at create, moved forward by CLOCK_MONOTONIC since then:
 *
 *   engine_now = base + (monotonic_now - monotonic_at_create)
 *   base       = max(wall clock at create, the latest batch time recovered from the log)
 *
 * so a step of the wall clock while running (NTP, an operator, a VM resumed) neither ends a sale
 * early nor expires an in-time payment, and a restart never goes back in time, whatever the wall
 * clock says then. The cost: a step is only taken in at the next start (the engine drifts from the
 * wall clock by the step until then). Tests inject both sources (config.clock, monotonic_clock).
 */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/clock.h"
#include "base/log.h"
#include "engine_figures.h"
#include "ring.h"
#include "rush/assert.h"
#include "rush/engine.h"
#include "rush/wire.h"
#include "shard/shard.h"
#include "wal/data_dir.h"
#include "wal/shard_log.h"
#include "wal/snapshot.h"
#include "wal/snapshot_child.h"

#define RUSH_ENGINE_BATCH_MAX 65536
#define RUSH_ENGINE_IDLE_TICK_MS 10
#define SPIN_MAX 256
#define RENEW_GAP_NS 4000000 /* between renewal steps (wal/snapshot_renew.h): ~1 s per 512 MiB */
#define RENEW_WAIT_NS INT64_C(2000000000) /* the most a fork waits for the last renewal */
#define POP_MAX 64                        /* work items decided under one batch time */
/* The front end's waits (a batch to come back, a ring to have room): rounds of at most
 * ENGINE_WAIT_ROUND_MS, ENGINE_WAIT_MS_MAX in all; the round count guards the time bound. */
#define ENGINE_WAIT_ROUND_MS 100
#define ENGINE_WAIT_MS_MAX (10 * 60 * 1000)
#define ENGINE_WAIT_ROUNDS_MAX (UINT32_C(1) << 26)

enum work_kind { WORK_REQUESTS, WORK_SKU_PUT, WORK_INSPECT, WORK_SNAPSHOT, WORK_ADMIN };

struct work {
    enum work_kind kind;
    uint32_t count;
    struct rush_batch *batch;
    uint32_t *positions; /* index in the batch of each request */
    struct rush_request *requests;
    struct rush_result *results;
    struct rush_sku sku;
    struct rush_request admin; /* WORK_ADMIN: the admin request */
    struct rush_audit audit;   /* WORK_ADMIN, and the others when audited: who and why */
    bool audited;              /* WORK_SKU_PUT, WORK_SNAPSHOT: an admin's, recorded with audit */
    rush_shard_inspect_fn inspect;
    /* WORK_SNAPSHOT: the int that receives the snapshot's result */
    void *inspect_context;
    int status; /* 0, or RUSH_EWAL when the log failed before this work was durable */
};

/* A replicated batch waiting for a follower's thread (rush_engine_follow). */
struct followed {
    struct followed *next;
    uint64_t lsn;
    int64_t time_ns;
    uint32_t count;
    struct rush_event events[];
};

struct shard_thread {
    struct rush_engine *engine;
    uint32_t index;
    struct rush_shard *shard;
    struct rush_shard_log log;
    struct rush_ring inbound;
    struct rush_ring outbound;
    struct work *works;
    struct work **free_works; /* front end's */
    uint32_t free_count;
    struct work *filling; /* front end's: the item being filled by submit */
    _Atomic uint32_t sleeping;
    uint64_t events_at_snapshot; /* shard's: its event count when it last took a snapshot */
    /* The operators' figures (engine_figures.h): written by the shard, read by anyone. */
    struct rush_latency decide_latency;
    struct rush_latency sync_latency;
    _Atomic uint64_t wal_bytes_written;
    _Atomic uint64_t wal_syncs;
    uint64_t syncs_seen; /* shard's: the WAL's sync count when it last looked */
    _Atomic uint32_t table_used[RUSH_TABLE_COUNT_];
    _Atomic uint32_t table_max[RUSH_TABLE_COUNT_];
    struct rush_snapshot_child snapshot_child; /* shard's: a background snapshot */
    int64_t renewed_ns;                        /* shard's: when the last renewal step ended */
    /* Cluster (durability replicated only; rush/engine.h "Cluster roles"). */
    _Atomic uint32_t role;             /* enum rush_shard_role: the cluster and the shard write */
    uint32_t role_seen;                /* shard's: the role its last round acted on */
    _Atomic int64_t lease_deadline_ns; /* monotonic: a leader decides only before it */
    _Atomic uint32_t leader_index;     /* named in redirects; UINT32_MAX: nobody */
    _Atomic uint64_t applied_lsn;      /* the local log's last batch */
    pthread_mutex_t follow_lock;       /* guards the three below: any thread -> shard */
    struct followed *follow_head;
    struct followed *follow_tail;
    uint32_t follow_count;
    bool follow_lock_made;
    pthread_t thread;
    bool started;
};

struct rush_engine {
    struct rush_engine_config config;
    struct shard_thread *shards;
    _Atomic bool stopping;
    _Atomic uint32_t front_sleeping; /* 1: the front end sleeps on wake_fd */
    int wake_fd;               /* eventfd written when work comes back to a sleeping front end */
    struct rush_batch **ready; /* FIFO of whole batches not yet returned by poll */
    uint32_t ready_head;
    uint32_t ready_count;
    uint32_t ready_capacity;
    uint8_t *route; /* scratch: shard of each request of the batch being submitted */
    uint32_t *needed;
    _Atomic uint64_t busy_rings;
    /* The engine clock (see the top of this file); set at create, read-only afterwards. */
    int64_t clock_base_ns;
    int64_t clock_origin_ns; /* monotonic_clock at create */
    rush_clock_fn monotonic_clock;
    void *monotonic_context;
};

static int64_t realtime_ns(void *context)
{
    (void)context;
    return rush_clock_wall_ns();
}

static int64_t monotonic_ns(void *context)
{
    (void)context;
    return rush_clock_monotonic_ns();
}

/* The engine clock: any thread, once rush_engine_create has set the base. */
static int64_t engine_now(const struct rush_engine *engine)
{
    int64_t elapsed_ns =
        engine->monotonic_clock(engine->monotonic_context) - engine->clock_origin_ns;
    return engine->clock_base_ns + (elapsed_ns > 0 ? elapsed_ns : 0);
}

/*
 * Reads both sources once, after recovery: the base is the later of the wall clock and the newest
 * time the shards recovered (so the clock never goes back across restarts).
 */
static void engine_clock_start(struct rush_engine *engine)
{
    const struct rush_engine_config *config = &engine->config;
    engine->monotonic_clock = config->monotonic_clock;
    engine->monotonic_context = config->monotonic_clock_context;
    if (engine->monotonic_clock == NULL && config->clock != realtime_ns) {
        engine->monotonic_clock = config->clock; /* one injected clock: the test owns time */
        engine->monotonic_context = config->clock_context;
    }
    if (engine->monotonic_clock == NULL)
        engine->monotonic_clock = monotonic_ns;
    int64_t base_ns = config->clock(config->clock_context);
    for (uint32_t s = 0; s < config->shard_count; s++) {
        int64_t recovered_ns = rush_shard_now(engine->shards[s].shard);
        if (recovered_ns > base_ns)
            base_ns = recovered_ns;
    }
    engine->clock_base_ns = base_ns;
    engine->clock_origin_ns = engine->monotonic_clock(engine->monotonic_context);
}

/* ---- futex sleep and wake ----------------------------------------------------------------- */

static void futex_wait(_Atomic uint32_t *word, uint32_t value, int timeout_ms)
{
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, value, &ts, NULL, 0);
}

static void wake(_Atomic uint32_t *sleeping)
{
    if (atomic_load_explicit(sleeping, memory_order_seq_cst) && atomic_exchange(sleeping, 0) == 1)
        syscall(SYS_futex, (uint32_t *)sleeping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/*
 * Wakes a front end that sleeps on the engine's eventfd (front_wait, or a caller's own poll(2)
 * between rush_engine_sleep_begin and _end): one write per sleep, never one per work item.
 */
static void wake_front(struct rush_engine *engine)
{
    if (atomic_load_explicit(&engine->front_sleeping, memory_order_seq_cst) &&
        atomic_exchange(&engine->front_sleeping, 0) == 1) {
        uint64_t one = 1;
        ssize_t written = write(engine->wake_fd, &one, sizeof(one));
        (void)written; /* a counter at its maximum is readable already */
    }
}

/* ---- configuration ------------------------------------------------------------------------ */

void rush_engine_config_default(struct rush_engine_config *config, uint32_t shard_count)
{
    *config = (struct rush_engine_config){
        .shard_count = shard_count,
        .ring_slots = 64,
        .work_requests_max = 4096,
        .limits = {.skus_max = 4096,
                   .orders_max = 2000000,
                   .groups_max = 262144,
                   .keys_max = 4000000,
                   .user_limits_max = 2000000,
                   .events_buffer_max = 16384},
        .policy = {.retain_ns = RUSH_RETAIN_NS_DEFAULT, .user_unpaid_max = 8, .user_churn_max = 16},
    };
}

int rush_engine_config_check(const struct rush_engine_config *config, char *why, size_t why_size)
{
    const char *problem = NULL;
    if (config->shard_count == 0 || config->shard_count > RUSH_SHARDS_MAX)
        problem = "shard_count must be 1..64";
    else if (config->ring_slots < 2 || config->ring_slots > 65536 ||
             (config->ring_slots & (config->ring_slots - 1)) != 0)
        problem = "ring_slots must be a power of two, 2..65536";
    else if (config->work_requests_max == 0 || config->work_requests_max > RUSH_ENGINE_BATCH_MAX)
        problem = "work_requests_max must be 1..65536";
    else if (config->limits.events_buffer_max < 512)
        problem = "events_buffer_max must be at least 512";
    else if (config->limits.skus_max == 0 || config->limits.orders_max == 0 ||
             config->limits.groups_max == 0 || config->limits.keys_max == 0 ||
             config->limits.user_limits_max == 0)
        problem = "every table limit must be at least 1";
    else if (config->limits.orders_max > (1u << 30) || config->limits.groups_max > (1u << 30) ||
             config->limits.keys_max > (1u << 30) || config->limits.user_limits_max > (1u << 30))
        problem = "table limits must be at most 2^30";
    else if (config->durability > RUSH_DURABILITY_REPLICATED)
        problem = "durability must be fsync, async, none or replicated";
    else if (config->durability == RUSH_DURABILITY_REPLICATED &&
             (config->replica.append == NULL || config->data_dir == NULL))
        problem = "durability replicated needs a data_dir and a replica (engine/cluster)";
    if (problem == NULL)
        return 0;
    if (why != NULL && why_size > 0)
        snprintf(why, why_size, "%s", problem);
    return RUSH_ECONFIG;
}

/* ---- routing ------------------------------------------------------------------------------ */

uint32_t rush_engine_shard_of_sku(uint32_t shard_count, uint64_t sku_id)
{
    return rush_wire_shard_of_sku(shard_count, sku_id); /* the one rule: proto/codec/route.c */
}

/* This build's routing for `shard_count` shards, as the data directory records it. */
static void routing_layout(uint32_t shard_count, struct rush_data_dir_layout *layout)
{
    uint64_t shards[RUSH_ROUTING_PROBE_SKUS];
    for (uint32_t i = 0; i < RUSH_ROUTING_PROBE_SKUS; i++)
        shards[i] = rush_engine_shard_of_sku(shard_count, (uint64_t)i + 1);
    *layout = (struct rush_data_dir_layout){
        .shard_count = shard_count,
        .routing = RUSH_ROUTING_VERSION,
        .routing_check = XXH3_64bits(shards, sizeof(shards)),
        .id_shard_shift = RUSH_ID_SHARD_SHIFT,
    };
}

/* A data directory serves one shard count for its whole life (wal/data_dir.h). */
static int claim_data_dir(const struct rush_engine_config *config)
{
    if (config->data_dir == NULL)
        return 0;
    struct rush_data_dir_layout layout;
    routing_layout(config->shard_count, &layout);
    char why[768];
    int rc = rush_data_dir_claim(config->data_dir, &layout,
                                 config->durability != RUSH_DURABILITY_NONE, why, sizeof(why));
    if (rc < 0)
        fprintf(stderr, "rush: start refused: %s\n", why);
    return rc;
}

uint32_t rush_engine_shard_of(uint32_t shard_count, const struct rush_request *request)
{
    return rush_wire_shard_of(shard_count, request);
}

uint64_t rush_engine_durable_lsn(const struct rush_engine *engine, uint32_t shard_index)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    const struct rush_shard_log *log = &engine->shards[shard_index].log;
    uint64_t synced = atomic_load_explicit(&log->synced_lsn, memory_order_acquire);
    if (log->replica.append == NULL)
        return synced;
    /* Replicated: only what JetStream holds too (a follower's batches came from it, so its
     * replica_lsn follows its log; a leader's is what its replicator had acknowledged). */
    uint64_t replicated = atomic_load_explicit(&log->replica_lsn, memory_order_acquire);
    return synced < replicated ? synced : replicated;
}

void rush_engine_retain_log(struct rush_engine *engine, uint32_t shard_index, uint64_t lsn)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    atomic_store_explicit(&engine->shards[shard_index].log.retain_lsn, lsn, memory_order_release);
}

uint32_t rush_engine_shard_count(const struct rush_engine *engine)
{
    return engine->config.shard_count;
}

/* ---- the shard thread --------------------------------------------------------------------- */

static void decide_work(struct rush_shard *shard, struct work *work)
{
    switch (work->kind) {
    case WORK_REQUESTS:
        rush_shard_decide_batch(shard, work->requests, work->count, work->results);
        break;
    case WORK_SKU_PUT:
        rush_shard_sku_put(shard, &work->sku, &work->results[0]);
        if (work->audited)
            rush_shard_audit(shard, RUSH_OP_NONE, work->sku.id, 0, &work->results[0], &work->audit);
        break;
    case WORK_ADMIN:
        rush_shard_decide_batch(shard, &work->admin, 1, work->results);
        rush_shard_audit(shard, work->admin.op, work->admin.sku_id, work->admin.amount,
                         &work->results[0], &work->audit);
        break;
    case WORK_INSPECT:
        work->inspect(shard, work->inspect_context);
        break;
    case WORK_SNAPSHOT: /* taken at the end of the pass: see snapshot_after_pass */
        if (work->audited)
            rush_shard_audit(shard, RUSH_AUDIT_OP_SNAPSHOT, 0, 0, &(struct rush_result){0},
                             &work->audit);
        break;
    }
}

/* A background snapshot's child is done (or, with wait, once it is): report it. */
static void snapshot_child_reap(struct shard_thread *thread, bool wait)
{
    struct rush_snapshot_child *child = &thread->snapshot_child;
    if (!rush_snapshot_child_running(child) || !rush_snapshot_child_poll(child, &thread->log, wait))
        return;
    if (child->status < 0)
        rush_log(RUSH_LOG_ERROR, "rush: shard %u: background snapshot at lsn %lu failed: %s",
                 thread->index, child->lsn, rush_strerror(child->status));
    else
        rush_log(RUSH_LOG_INFO,
                 "rush: shard %u: snapshot at lsn %lu written in the background in %.1f ms (the "
                 "shard stopped %.2f ms to start it; %lu chunks of 2 MiB renewed so far, in %.1f "
                 "ms)",
                 thread->index, child->lsn, (double)child->took_ns / 1e6,
                 (double)child->fork_ns / 1e6, child->renew.chunks_renewed,
                 (double)child->renew.steps_ns / 1e6);
}

/* Starts a background snapshot; false when it could not (the caller writes it on the thread). */
static bool snapshot_fork(struct shard_thread *thread)
{
    int rc = rush_snapshot_child_start(&thread->snapshot_child, &thread->log, thread->shard);
    if (rc == 0)
        return true;
    rush_log(RUSH_LOG_WARN, "rush: shard %u: background snapshot not started: %s", thread->index,
             rush_strerror(rc));
    return rc == RUSH_ECONFIG || rc == RUSH_EWAL; /* the thread would fail the same way */
}

/*
 * At a pass boundary (every event decided so far is appended): writes the snapshots asked for in
 * this pass, or the automatic one when snapshot_every_events have been decided since the last.
 * The shard thread blocks while it writes, except for automatic snapshots in the background
 * (snapshot_in_background), which stop it only for a fork (wal/snapshot_child.h).
 */
static void snapshot_after_pass(struct shard_thread *thread, struct work **items, uint32_t count)
{
    const struct rush_engine_config *config = &thread->engine->config;
    const struct rush_shard_stats *stats = rush_shard_stats(thread->shard);
    uint64_t events = atomic_load_explicit(&stats->events, memory_order_relaxed);
    bool automatic = config->snapshot_every_events > 0 && config->data_dir != NULL &&
                     config->durability != RUSH_DURABILITY_NONE &&
                     events - thread->events_at_snapshot >= config->snapshot_every_events;
    bool asked = false;
    for (uint32_t i = 0; i < count; i++)
        asked = asked || items[i]->kind == WORK_SNAPSHOT;
    if (!automatic && !asked)
        return;
    if (!asked && config->snapshot_in_background) {
        if (rush_snapshot_child_running(&thread->snapshot_child))
            return; /* one at a time: the next pass asks again */
        /* A fork before the last one's renewal is done would copy split page tables (stopping
         * the shard for 10-20 ms per 512 MiB); wait for it, up to RENEW_WAIT_NS after the last
         * child ended (a later pass asks again). */
        const struct rush_snapshot_child *last = &thread->snapshot_child;
        if (rush_snapshot_child_renewing(last) &&
            rush_clock_monotonic_ns() - (last->start_ns + last->took_ns) < RENEW_WAIT_NS)
            return;
        thread->events_at_snapshot = events;
        if (snapshot_fork(thread))
            return;
    }
    snapshot_child_reap(thread, true); /* an on-demand one waits for the background one */
    char why[512];
    int rc = rush_shard_log_snapshot(&thread->log, thread->shard, why, sizeof(why));
    thread->events_at_snapshot = events;
    if (rc < 0)
        rush_log(RUSH_LOG_ERROR, "rush: shard %u: snapshot failed: %s", thread->index, why);
    else
        rush_log(RUSH_LOG_INFO, "rush: shard %u: snapshot at lsn %lu written in %.1f ms",
                 thread->index, thread->log.snapshot_lsn,
                 (double)thread->log.snapshot_ns_last / 1e6);
    for (uint32_t i = 0; i < count; i++)
        if (items[i]->kind == WORK_SNAPSHOT)
            *(int *)items[i]->inspect_context = rc;
}

/* Sleeps until the ring may hold work or an idle tick passes; false on an idle tick. */
static bool shard_idle(struct shard_thread *thread)
{
    for (int spin = 0; spin < SPIN_MAX; spin++) {
        if (!rush_ring_empty(&thread->inbound))
            return true;
        __builtin_ia32_pause();
    }
    atomic_store(&thread->sleeping, 1);
    if (!rush_ring_empty(&thread->inbound) || atomic_load(&thread->engine->stopping)) {
        atomic_store(&thread->sleeping, 0);
        return true;
    }
    futex_wait(&thread->sleeping, 1, RUSH_ENGINE_IDLE_TICK_MS);
    return atomic_exchange(&thread->sleeping, 0) == 0; /* 0: somebody woke us */
}

/* Copies the shard's table occupancy where other threads read it (engine_figures.h). */
static void publish_occupancy(struct shard_thread *thread)
{
    struct rush_shard_occupancy occupancy;
    rush_shard_occupancy(thread->shard, &occupancy);
    for (int t = 0; t < RUSH_TABLE_COUNT_; t++) {
        atomic_store_explicit(&thread->table_used[t], occupancy.used[t], memory_order_relaxed);
        atomic_store_explicit(&thread->table_max[t], occupancy.max[t], memory_order_relaxed);
    }
}

/* Decides a group of work items under one batch time, logs them, and holds them. */
static void decide_pass(struct shard_thread *thread, struct work **items, uint32_t count)
{
    bool failed = rush_shard_log_error(&thread->log, NULL) != 0;
    if (!failed) { /* a failed log stops deciding: the state would run ahead of the log */
        uint64_t started_ns = (uint64_t)rush_clock_monotonic_ns();
        rush_shard_begin(thread->shard, engine_now(thread->engine));
        for (uint32_t i = 0; i < count; i++)
            decide_work(thread->shard, items[i]);
        rush_shard_end(thread->shard);
        rush_shard_log_commit(&thread->log);
        rush_latency_record(&thread->decide_latency,
                            (uint64_t)rush_clock_monotonic_ns() - started_ns);
        publish_occupancy(thread);
    }
    snapshot_after_pass(thread, items, count);
    for (uint32_t i = 0; i < count; i++)
        rush_shard_log_hold(&thread->log, items[i]);
}

/* Copies the WAL's counters into the shard's figures; records the last sync's latency. */
static void observe_wal(struct shard_thread *thread)
{
    if (thread->log.wal == NULL)
        return;
    struct rush_wal_stats stats;
    rush_wal_stats(thread->log.wal, &stats);
    if (stats.syncs == thread->syncs_seen)
        return;
    thread->syncs_seen = stats.syncs;
    rush_latency_record(&thread->sync_latency, stats.sync_latency_ns_last);
    atomic_store_explicit(&thread->wal_bytes_written, stats.bytes_written, memory_order_relaxed);
    atomic_store_explicit(&thread->wal_syncs, stats.syncs, memory_order_relaxed);
}

/* Hands back every held item that is durable (or failed); waits for I/O when told to. */
static void release_durable(struct shard_thread *thread, bool wait)
{
    struct work *work;
    int status;
    uint32_t released = 0;
    uint32_t released_max = thread->engine->config.ring_slots; /* the most it can hold */
    while (released < released_max &&
           (work = rush_shard_log_release(&thread->log, wait && released == 0, &status)) != NULL) {
        work->status = status;
        bool pushed = rush_ring_push(&thread->outbound, work);
        RUSH_ASSERT(pushed); /* invariant 1 */
        released++;
    }
    if (released > 0) {
        wake_front(thread->engine);
        observe_wal(thread);
    }
}

/* ---- the shard thread in a cluster (durability replicated) ------------------------------- */

static bool replicated(const struct shard_thread *thread)
{
    return thread->log.replica.append != NULL;
}

/*
 * Answers work the shard does not decide: every request RUSH_REDIRECT to the leader; inspection
 * still runs (it reads the state, decides nothing), a snapshot is refused.
 */
static void redirect_work(struct shard_thread *thread, struct work *work)
{
    uint32_t leader = atomic_load_explicit(&thread->leader_index, memory_order_relaxed);
    struct rush_result redirect = {.outcome = RUSH_REDIRECT,
                                   .reason = RUSH_REASON_WRONG_SHARD,
                                   .state = (uint8_t)thread->index,
                                   .qty = leader};
    switch (work->kind) {
    case WORK_REQUESTS:
        for (uint32_t i = 0; i < work->count; i++) {
            work->results[i] = redirect;
            work->results[i].tag = work->requests[i].tag;
        }
        break;
    case WORK_SKU_PUT:
    case WORK_ADMIN:
        work->results[0] = redirect;
        break;
    case WORK_INSPECT:
        work->inspect(thread->shard, work->inspect_context);
        break;
    case WORK_SNAPSHOT:
        *(int *)work->inspect_context = RUSH_EFENCED;
        break;
    }
    work->status = 0;
    bool pushed = rush_ring_push(&thread->outbound, work);
    RUSH_ASSERT(pushed); /* invariant 1 */
}

/*
 * Sleeps until the replica acknowledges (rush_engine_replica_acked wakes it), work arrives or an
 * idle tick passes. The condition is read again after announcing the sleep, so an acknowledgement
 * that lands in between is never lost.
 */
static void await_replica(struct shard_thread *thread)
{
    atomic_store(&thread->sleeping, 1);
    if (!rush_shard_log_awaiting_replica(&thread->log) || !rush_ring_empty(&thread->inbound) ||
        atomic_load(&thread->engine->stopping)) {
        atomic_store(&thread->sleeping, 0);
        return;
    }
    futex_wait(&thread->sleeping, 1, RUSH_ENGINE_IDLE_TICK_MS);
    atomic_store(&thread->sleeping, 0);
}

/* Takes the followed batches queued so far (the list, in order). */
static struct followed *follow_take(struct shard_thread *thread)
{
    pthread_mutex_lock(&thread->follow_lock);
    struct followed *list = thread->follow_head;
    thread->follow_head = thread->follow_tail = NULL;
    thread->follow_count = 0;
    pthread_mutex_unlock(&thread->follow_lock);
    return list;
}

/*
 * A follower applies each replicated batch through apply (as recovery does) and logs it under the
 * same lsn. Batches it holds already (lsn <= its log's) are skipped; a batch after a gap is
 * dropped (the cluster sees the follower stall and reads the subject again). A batch the log
 * refuses leaves the shard diverged: it serves nothing for this shard until a restart.
 */
static void follow_apply(struct shard_thread *thread, struct followed *list)
{
    bool appended = false;
    for (struct followed *next; list != NULL; list = next) {
        next = list->next;
        uint64_t applied = rush_shard_log_appended_lsn(&thread->log);
        bool ok = atomic_load(&thread->role) == RUSH_ROLE_FOLLOWER && list->lsn == applied + 1;
        for (uint32_t i = 0; ok && i < list->count; i++)
            ok = list->events[i].type != RUSH_EV_NONE && list->events[i].type < RUSH_EV_TYPE_COUNT_;
        if (ok && rush_shard_log_append_followed(&thread->log, list->lsn, list->time_ns,
                                                 list->events, list->count) != 0) {
            rush_log(RUSH_LOG_ERROR,
                     "rush: shard %u: the local log refused replicated batch %lu: diverged, "
                     "serving nothing for this shard until a restart",
                     thread->index, list->lsn);
            atomic_store(&thread->role, RUSH_ROLE_DIVERGED);
            ok = false;
        }
        for (uint32_t i = 0; ok && i < list->count; i++)
            rush_shard_apply(thread->shard, list->time_ns, &list->events[i]);
        appended = appended || ok;
        free(list);
    }
    if (appended) {
        rush_shard_log_commit(&thread->log);
        /* Every batch it followed is in the replicated log (the publisher's bound). */
        atomic_store(&thread->log.replica_lsn, rush_shard_log_appended_lsn(&thread->log));
    }
}

/*
 * Acts on the role the cluster (or the lease clock) set. Runs once per round of the shard loop;
 * returns the role this round works in.
 */
static uint32_t role_round(struct shard_thread *thread)
{
    uint32_t role = atomic_load(&thread->role);
    if ((role == RUSH_ROLE_LEADER || role == RUSH_ROLE_DRAINING) &&
        rush_clock_monotonic_ns() > atomic_load(&thread->lease_deadline_ns)) {
        uint32_t expected = role; /* the lease ran out here first: stop at once */
        if (atomic_compare_exchange_strong(&thread->role, &expected, RUSH_ROLE_FENCED))
            rush_log(RUSH_LOG_WARN, "rush: shard %u: lease not renewed in time: fenced",
                     thread->index);
        role = atomic_load(&thread->role);
    }
    if (role != thread->role_seen) {
        /* Leaving the follower's role, everything it holds came from the replicated log. Also
         * when the shard never saw itself lead (the deadline passed, or it was fenced, before
         * this round): else a fenced shard would wait for acknowledgements of batches nobody
         * ships and never follow again. */
        if (role == RUSH_ROLE_LEADER || thread->role_seen == RUSH_ROLE_FOLLOWER)
            atomic_store(&thread->log.replica_lsn, rush_shard_log_appended_lsn(&thread->log));
        thread->log.fenced = role != RUSH_ROLE_LEADER && role != RUSH_ROLE_DRAINING;
        thread->role_seen = role;
    }
    if ((role == RUSH_ROLE_FENCED || role == RUSH_ROLE_DRAINING) && thread->log.held_count == 0 &&
        atomic_load(&thread->log.replica_lsn) >= rush_shard_log_appended_lsn(&thread->log)) {
        /* Every batch it appended is in the replicated log: its state is the log's. Until then
         * the replicator keeps sending them (or reports them refused: rush_engine_diverge). */
        uint32_t expected = role;
        atomic_compare_exchange_strong(&thread->role, &expected, RUSH_ROLE_FOLLOWER);
    }
    if (role == RUSH_ROLE_FOLLOWER) {
        struct followed *list = follow_take(thread);
        if (list != NULL)
            follow_apply(thread, list);
    }
    atomic_store_explicit(&thread->applied_lsn, rush_shard_log_appended_lsn(&thread->log),
                          memory_order_release);
    return role;
}

/* Pops the work waiting; a shard that does not lead answers it at once. Returns what to decide. */
static uint32_t take_round(struct shard_thread *thread, struct work **items, bool leading)
{
    uint32_t count = 0, redirected = 0;
    while (count < POP_MAX && (items[count] = rush_ring_pop(&thread->inbound)) != NULL) {
        if (leading) {
            count++;
        } else {
            redirect_work(thread, items[count]);
            redirected++;
        }
    }
    if (redirected > 0)
        wake_front(thread->engine);
    return count;
}

/* One step of the huge-page renewal after a fork (wal/snapshot_renew.h) once the child has
 * ended, if the last step ended at least RENEW_GAP_NS ago; true if it did one. Renewing while the
 * child lives was measured worse: 10-50 ms stalls in bursts during its first second. */
static bool renew_step(struct shard_thread *thread)
{
    int64_t now_ns = rush_clock_monotonic_ns();
    if (rush_snapshot_child_running(&thread->snapshot_child) ||
        now_ns - thread->renewed_ns < RENEW_GAP_NS ||
        !rush_snapshot_child_renew(&thread->snapshot_child))
        return false;
    thread->renewed_ns = rush_clock_monotonic_ns();
    return true;
}

static void *shard_main(void *argument)
{
    struct shard_thread *thread = argument;
    struct rush_engine *engine = thread->engine;
    struct work *items[POP_MAX];
    /* The thread's life: one round per pass or idle tick, until the engine stops. */
    for (;;) {
        snapshot_child_reap(thread, false);
        bool leading = !replicated(thread) || role_round(thread) == RUSH_ROLE_LEADER;
        uint32_t count = take_round(thread, items, leading);
        if (count > 0)
            decide_pass(thread, items, count);
        bool holding = rush_shard_log_holding(&thread->log);
        /* With nothing new to decide, wait for the sync in flight; else let the next pass
         * gather what arrives meanwhile into one write (group commit). */
        release_durable(thread, count == 0 && holding);
        if (count == 0 && rush_shard_log_awaiting_replica(&thread->log)) {
            await_replica(thread);
            continue;
        }
        if (count > 0 || rush_shard_log_holding(&thread->log))
            continue;
        if (atomic_load(&engine->stopping)) {
            snapshot_child_reap(thread, true);
            rush_snapshot_child_stop(&thread->snapshot_child);
            break;
        }
        /* Nothing to decide: give the shard a huge page back (one step of 0.1-0.7 ms), then look
         * again; at most one step per RENEW_GAP_NS, so a step seldom holds up a request. */
        if (renew_step(thread))
            continue;
        if (!shard_idle(thread) && rush_shard_log_error(&thread->log, NULL) == 0 && leading) {
            /* an idle tick: the async flush timer; fire the timers that are due, and log what
             * they decided */
            rush_shard_log_poll(&thread->log);
            rush_shard_begin(thread->shard, engine_now(engine));
            rush_shard_end(thread->shard);
            rush_shard_log_commit(&thread->log);
        }
    }
    return NULL;
}

/* ---- life cycle --------------------------------------------------------------------------- */

static int shard_thread_init(struct rush_engine *engine, uint32_t index, uint64_t seed)
{
    const struct rush_engine_config *config = &engine->config;
    struct shard_thread *thread = &engine->shards[index];
    thread->engine = engine;
    thread->index = index;
    rush_snapshot_child_init(&thread->snapshot_child);
    int rc =
        rush_shard_log_init(&thread->log, config->ring_slots, config->sink, config->sink_context);
    if (rc < 0)
        return rc;
    atomic_init(&thread->leader_index, UINT32_MAX);
    if (config->durability == RUSH_DURABILITY_REPLICATED) {
        thread->log.replica = config->replica; /* every shard starts a follower */
        atomic_init(&thread->role, RUSH_ROLE_FOLLOWER);
        thread->role_seen = RUSH_ROLE_FOLLOWER;
        thread->log.fenced = true;
    }
    if (pthread_mutex_init(&thread->follow_lock, NULL) != 0)
        return -ENOMEM;
    thread->follow_lock_made = true;
    struct rush_shard_config shard_config = {
        .index = index,
        .limits = config->limits,
        .policy = config->policy,
        .seed = seed + index,
        .start_ns = 0, /* the clock follows the log's times in replay: see rush_shard_apply */
        .sink = rush_shard_log_sink,
        .sink_context = &thread->log,
    };
    if ((rc = rush_shard_create(&shard_config, &thread->shard)) < 0)
        return rc;
    if (config->data_dir != NULL) {
        char why[512];
        if ((rc = rush_shard_log_open(&thread->log, thread->shard, config, index, why,
                                      sizeof(why))) < 0) {
            rush_log(RUSH_LOG_ERROR, "rush: recovery refused: %s", why);
            return rc;
        }
    }
    if ((rc = rush_ring_init(&thread->inbound, config->ring_slots)) < 0 ||
        (rc = rush_ring_init(&thread->outbound, config->ring_slots)) < 0)
        return rc;
    uint32_t slots = config->ring_slots, per = config->work_requests_max;
    thread->works = calloc(slots, sizeof(*thread->works));
    thread->free_works = calloc(slots, sizeof(*thread->free_works));
    if (thread->works == NULL || thread->free_works == NULL)
        return -ENOMEM;
    for (uint32_t w = 0; w < slots; w++) {
        struct work *work = &thread->works[w];
        work->positions = malloc(sizeof(*work->positions) * per);
        work->requests = malloc(sizeof(*work->requests) * per);
        work->results = malloc(sizeof(*work->results) * per);
        if (!work->positions || !work->requests || !work->results)
            return -ENOMEM;
        thread->free_works[thread->free_count++] = work;
    }
    return 0;
}

int rush_engine_create(const struct rush_engine_config *config, struct rush_engine **out)
{
    int rc = rush_engine_config_check(config, NULL, 0);
    if (rc < 0)
        return rc;
    struct rush_engine *engine = calloc(1, sizeof(*engine));
    if (engine == NULL)
        return -ENOMEM;
    engine->config = *config;
    engine->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (engine->wake_fd < 0) {
        rc = -errno;
        free(engine);
        return rc;
    }
    if (engine->config.clock == NULL)
        engine->config.clock = realtime_ns;
    uint64_t seed = config->seed;
    if (seed == 0 && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)realtime_ns(NULL) ^ (uint64_t)getpid();
    engine->ready_capacity = config->shard_count * config->ring_slots + 1;
    engine->ready = calloc(engine->ready_capacity, sizeof(*engine->ready));
    engine->route = malloc(RUSH_ENGINE_BATCH_MAX);
    engine->needed = calloc(config->shard_count, sizeof(*engine->needed));
    engine->shards = calloc(config->shard_count, sizeof(*engine->shards));
    rc = -ENOMEM;
    if (!engine->ready || !engine->route || !engine->needed || !engine->shards)
        goto out_destroy;
    if ((rc = claim_data_dir(config)) < 0)
        goto out_destroy;
    for (uint32_t s = 0; s < config->shard_count; s++)
        if ((rc = shard_thread_init(engine, s, seed)) < 0)
            goto out_destroy;
    engine_clock_start(engine);
    *out = engine;
    return 0;

out_destroy:
    rush_engine_destroy(engine);
    return rc;
}

int rush_engine_start(struct rush_engine *engine)
{
    for (uint32_t s = 0; s < engine->config.shard_count; s++) {
        struct shard_thread *thread = &engine->shards[s];
        int rc = pthread_create(&thread->thread, NULL, shard_main, thread);
        if (rc != 0)
            return -rc;
        thread->started = true;
    }
    return 0;
}

void rush_engine_destroy(struct rush_engine *engine)
{
    if (engine == NULL)
        return;
    atomic_store(&engine->stopping, true);
    for (uint32_t s = 0; engine->shards != NULL && s < engine->config.shard_count; s++) {
        struct shard_thread *thread = &engine->shards[s];
        if (thread->started) {
            atomic_store(&thread->sleeping, 1);
            wake(&thread->sleeping);
            pthread_join(thread->thread, NULL);
        }
        for (uint32_t w = 0; thread->works != NULL && w < engine->config.ring_slots; w++) {
            free(thread->works[w].positions);
            free(thread->works[w].requests);
            free(thread->works[w].results);
        }
        free(thread->works);
        free(thread->free_works);
        rush_ring_free(&thread->inbound);
        rush_ring_free(&thread->outbound);
        if (thread->follow_lock_made) {
            for (struct followed *f = follow_take(thread), *next; f != NULL; f = next) {
                next = f->next;
                free(f);
            }
            pthread_mutex_destroy(&thread->follow_lock);
        }
        rush_shard_log_close(&thread->log);
        rush_shard_destroy(thread->shard);
    }
    free(engine->shards);
    free(engine->ready);
    free(engine->route);
    free(engine->needed);
    close(engine->wake_fd);
    free(engine);
}

/* ---- the front end ------------------------------------------------------------------------ */

static struct work *take_work(struct shard_thread *thread, struct rush_batch *batch,
                              enum work_kind kind)
{
    RUSH_ASSERT(thread->free_count > 0);
    struct work *work = thread->free_works[--thread->free_count];
    work->kind = kind;
    work->batch = batch;
    work->count = 0;
    work->status = 0;
    return work;
}

static void push_work(struct rush_engine *engine, struct shard_thread *thread, struct work *work)
{
    bool pushed = rush_ring_push(&thread->inbound, work);
    RUSH_ASSERT(pushed); /* invariant 1 */
    (void)engine;
    wake(&thread->sleeping);
}

static void ready_push(struct rush_engine *engine, struct rush_batch *batch)
{
    RUSH_ASSERT(engine->ready_count < engine->ready_capacity);
    uint32_t tail = (engine->ready_head + engine->ready_count) % engine->ready_capacity;
    engine->ready[tail] = batch;
    engine->ready_count++;
}

/* Counts the work items each shard needs; false if some shard has too few free. */
static bool route_batch(struct rush_engine *engine, const struct rush_batch *batch)
{
    uint32_t shard_count = engine->config.shard_count, per = engine->config.work_requests_max;
    uint32_t requests[RUSH_SHARDS_MAX] = {0};
    for (uint32_t i = 0; i < batch->count; i++) {
        engine->route[i] = (uint8_t)rush_engine_shard_of(shard_count, &batch->requests[i]);
        requests[engine->route[i]]++;
    }
    bool room = true;
    for (uint32_t s = 0; s < shard_count; s++) {
        engine->needed[s] = (requests[s] + per - 1) / per;
        room = room && engine->needed[s] <= engine->shards[s].free_count;
    }
    return room;
}

int rush_engine_submit(struct rush_engine *engine, struct rush_batch *batch)
{
    if (batch->count > RUSH_ENGINE_BATCH_MAX)
        return -EMSGSIZE;
    batch->pending_ = 0;
    batch->status = 0;
    if (batch->count == 0) {
        ready_push(engine, batch);
        return 0;
    }
    if (!route_batch(engine, batch)) {
        atomic_fetch_add_explicit(&engine->busy_rings, 1, memory_order_relaxed);
        return RUSH_EFULL;
    }
    uint32_t per = engine->config.work_requests_max;
    for (uint32_t s = 0; s < engine->config.shard_count; s++)
        batch->pending_ += engine->needed[s];
    for (uint32_t i = 0; i < batch->count; i++) {
        struct shard_thread *thread = &engine->shards[engine->route[i]];
        struct work *work = thread->filling;
        if (work == NULL)
            work = thread->filling = take_work(thread, batch, WORK_REQUESTS);
        work->requests[work->count] = batch->requests[i];
        work->positions[work->count++] = i;
        if (work->count == per) {
            push_work(engine, thread, work);
            thread->filling = NULL;
        }
    }
    for (uint32_t s = 0; s < engine->config.shard_count; s++) {
        struct shard_thread *thread = &engine->shards[s];
        if (thread->filling != NULL) {
            push_work(engine, thread, thread->filling);
            thread->filling = NULL;
        }
    }
    return 0;
}

/*
 * A work item whose log failed before it was durable may or may not be in the log: its results
 * are not decisions. Each becomes RUSH_OUTCOME_UNKNOWN (tag kept), never a refusal, while the
 * results of the batch's other, durable items stay the decisions they are.
 */
static void mark_unknown(struct work *work)
{
    uint32_t count = work->kind == WORK_REQUESTS ? work->count : 1;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t tag = work->kind == WORK_REQUESTS ? work->requests[i].tag : 0;
        work->results[i] = (struct rush_result){.outcome = RUSH_OUTCOME_UNKNOWN, .tag = tag};
    }
}

/* Moves decided work back into its batches; returns how many items came back. */
static uint32_t collect(struct rush_engine *engine)
{
    uint32_t collected = 0;
    for (uint32_t s = 0; s < engine->config.shard_count; s++) {
        struct shard_thread *thread = &engine->shards[s];
        struct work *work;
        /* Bounded: a shard owns ring_slots work items, so its ring holds at most that many. */
        for (uint32_t n = 0;
             n < engine->config.ring_slots && (work = rush_ring_pop(&thread->outbound)) != NULL;
             n++) {
            struct rush_batch *batch = work->batch;
            if (work->status != 0) {
                batch->status = work->status;
                mark_unknown(work);
            }
            if (work->kind != WORK_REQUESTS)
                batch->results[0] = work->results[0];
            for (uint32_t i = 0; work->kind == WORK_REQUESTS && i < work->count; i++)
                batch->results[work->positions[i]] = work->results[i];
            thread->free_works[thread->free_count++] = work;
            RUSH_ASSERT(batch->pending_ > 0);
            if (--batch->pending_ == 0) /* invariant 2 */
                ready_push(engine, batch);
            collected++;
        }
    }
    return collected;
}

static bool outbound_empty(struct rush_engine *engine)
{
    for (uint32_t s = 0; s < engine->config.shard_count; s++)
        if (!rush_ring_empty(&engine->shards[s].outbound))
            return false;
    return true;
}

/* Announces a sleep on wake_fd; false (and no sleep) when a shard has handed work back. */
static bool front_sleep_begin(struct rush_engine *engine)
{
    atomic_store(&engine->front_sleeping, 1);
    if (outbound_empty(engine))
        return true;
    atomic_store(&engine->front_sleeping, 0);
    return false;
}

bool rush_engine_sleep_begin(struct rush_engine *engine)
{
    return engine->ready_count == 0 && front_sleep_begin(engine);
}

void rush_engine_sleep_end(struct rush_engine *engine)
{
    atomic_store(&engine->front_sleeping, 0);
    int saved_errno = errno; /* the caller's poll(2) result is still to be read */
    uint64_t count;
    ssize_t got = read(engine->wake_fd, &count, sizeof(count)); /* non-blocking: drains */
    (void)got;
    errno = saved_errno;
}

int rush_engine_wake_fd(const struct rush_engine *engine)
{
    return engine->wake_fd;
}

/* Sleeps until a shard hands work back or timeout_ms pass (never while work is waiting). */
static void front_wait(struct rush_engine *engine, int timeout_ms)
{
    if (front_sleep_begin(engine)) {
        struct pollfd fd = {.fd = engine->wake_fd, .events = POLLIN};
        (void)poll(&fd, 1, timeout_ms);
    }
    rush_engine_sleep_end(engine);
}

int rush_engine_poll(struct rush_engine *engine, struct rush_batch **done, uint32_t done_max,
                     int timeout_ms)
{
    int64_t wait_ms = timeout_ms < 0 ? ENGINE_WAIT_MS_MAX : timeout_ms;
    int64_t deadline_ms = rush_clock_monotonic_ms() + wait_ms;
    collect(engine);
    /* Bounded by the deadline; the round count guards against a clock that stands still. */
    for (uint32_t round = 0; engine->ready_count == 0 && wait_ms > 0; round++) {
        int64_t left_ms = deadline_ms - rush_clock_monotonic_ms();
        if (left_ms <= 0 || round == ENGINE_WAIT_ROUNDS_MAX)
            break;
        front_wait(engine, left_ms > ENGINE_WAIT_ROUND_MS ? ENGINE_WAIT_ROUND_MS : (int)left_ms);
        collect(engine);
    }
    uint32_t count = 0;
    while (count < done_max && engine->ready_count > 0) {
        done[count++] = engine->ready[engine->ready_head];
        engine->ready_head = (engine->ready_head + 1) % engine->ready_capacity;
        engine->ready_count--;
    }
    return (int)count;
}

/* Takes `batch` out of the ready FIFO, keeping the order of the others. */
static void ready_remove(struct rush_engine *engine, const struct rush_batch *batch)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < engine->ready_count; i++) {
        uint32_t from = (engine->ready_head + i) % engine->ready_capacity;
        uint32_t to = (engine->ready_head + kept) % engine->ready_capacity;
        if (engine->ready[from] != batch) {
            engine->ready[to] = engine->ready[from];
            kept++;
        }
    }
    RUSH_ASSERT(kept + 1 == engine->ready_count);
    engine->ready_count = kept;
}

/*
 * Waits until `batch` (already submitted) is whole, leaving other batches ready for their poll.
 * Bounded: ENGINE_WAIT_MS_MAX, then a clear message and an abort: the batch lives on the caller's
 * stack and a shard still holds it, so returning would be a use after return; a shard that hands
 * nothing back for that long is stuck (a hung disk), not slow.
 */
static int wait_for_batch(struct rush_engine *engine, struct rush_batch *batch)
{
    int64_t deadline_ms = rush_clock_monotonic_ms() + ENGINE_WAIT_MS_MAX;
    uint32_t round = 0;
    for (; round < ENGINE_WAIT_ROUNDS_MAX; round++) {
        collect(engine);
        if (batch->pending_ == 0) {
            ready_remove(engine, batch);
            return batch->status;
        }
        if (rush_clock_monotonic_ms() > deadline_ms)
            break;
        front_wait(engine, ENGINE_WAIT_ROUND_MS);
    }
    fprintf(stderr, "rush: no answer from a shard for %d ms (%u rounds): stuck, aborting\n",
            ENGINE_WAIT_MS_MAX, round);
    RUSH_ASSERT(!"engine wait bound exceeded");
    return RUSH_ETIMEDOUT;
}

/* Collects and sleeps until ready(context) holds; RUSH_ETIMEDOUT after ENGINE_WAIT_MS_MAX. */
static int wait_for_room(struct rush_engine *engine, bool (*ready)(void *), void *context)
{
    int64_t deadline_ms = rush_clock_monotonic_ms() + ENGINE_WAIT_MS_MAX;
    for (uint32_t round = 0; round < ENGINE_WAIT_ROUNDS_MAX; round++) {
        if (ready(context))
            return 0;
        if (rush_clock_monotonic_ms() > deadline_ms)
            break;
        front_wait(engine, 1);
        collect(engine);
    }
    return RUSH_ETIMEDOUT; /* nothing was queued: the caller may return */
}

struct submit_attempt {
    struct rush_engine *engine;
    struct rush_batch *batch;
    int rc;
};

static bool submit_taken(void *context)
{
    struct submit_attempt *attempt = context;
    attempt->rc = rush_engine_submit(attempt->engine, attempt->batch);
    return attempt->rc != RUSH_EFULL;
}

/* Submits, retrying while rings are full, and waits for this batch (others are kept ready). */
static int submit_and_wait(struct rush_engine *engine, struct rush_batch *batch)
{
    struct submit_attempt attempt = {.engine = engine, .batch = batch};
    int rc = wait_for_room(engine, submit_taken, &attempt);
    if (rc == 0)
        rc = attempt.rc;
    if (rc < 0)
        return rc;
    return wait_for_batch(engine, batch);
}

int rush_engine_execute(struct rush_engine *engine, const struct rush_request *requests,
                        uint32_t count, struct rush_result *results)
{
    /* A chunk never needs more work items of one shard than it has. */
    uint64_t chunk_max = (uint64_t)engine->config.work_requests_max * engine->config.ring_slots;
    if (chunk_max > RUSH_ENGINE_BATCH_MAX)
        chunk_max = RUSH_ENGINE_BATCH_MAX;
    int status = 0;
    for (uint32_t offset = 0; offset < count;) {
        uint32_t n = count - offset < chunk_max ? count - offset : (uint32_t)chunk_max;
        struct rush_batch batch = {
            .requests = requests + offset, .results = results + offset, .count = n};
        int rc = submit_and_wait(engine, &batch);
        if (rc < 0 && rc != RUSH_EWAL && rc != RUSH_EFENCED)
            return rc;
        /* A failed log leaves its part unknown; the other shards still decide the rest. */
        if (rc == RUSH_EWAL || rc == RUSH_EFENCED)
            status = rc;
        offset += n;
    }
    return status;
}

static bool has_free_work(void *context)
{
    const struct shard_thread *thread = context;
    return thread->free_count > 0;
}

/* Sends one work item of its own to a shard and waits until it is back. */
static int send_and_wait(struct rush_engine *engine, uint32_t shard_index, struct work *model)
{
    struct shard_thread *thread = &engine->shards[shard_index];
    int rc = wait_for_room(engine, has_free_work, thread);
    if (rc < 0)
        return rc;
    struct rush_result result;
    struct rush_batch batch = {.results = &result, .count = 1, .pending_ = 1};
    struct work *work = take_work(thread, &batch, model->kind);
    work->sku = model->sku;
    work->admin = model->admin;
    work->audit = model->audit;
    work->audited = model->audited;
    work->inspect = model->inspect;
    work->inspect_context = model->inspect_context;
    push_work(engine, thread, work);
    rc = wait_for_batch(engine, &batch);
    model->results[0] = result;
    return rc;
}

int rush_engine_sku_put(struct rush_engine *engine, const struct rush_sku *sku,
                        struct rush_result *result)
{
    struct work model = {.kind = WORK_SKU_PUT, .sku = *sku, .results = result};
    return send_and_wait(engine, rush_engine_shard_of_sku(engine->config.shard_count, sku->id),
                         &model);
}

int rush_engine_admin_sku_put(struct rush_engine *engine, const struct rush_sku *sku,
                              const struct rush_audit *audit, struct rush_result *result)
{
    struct work model = {
        .kind = WORK_SKU_PUT, .sku = *sku, .audit = *audit, .audited = true, .results = result};
    return send_and_wait(engine, rush_engine_shard_of_sku(engine->config.shard_count, sku->id),
                         &model);
}

int rush_engine_admin_execute(struct rush_engine *engine, const struct rush_request *request,
                              const struct rush_audit *audit, struct rush_result *result)
{
    struct work model = {.kind = WORK_ADMIN, .admin = *request, .audit = *audit, .results = result};
    return send_and_wait(engine, rush_engine_shard_of(engine->config.shard_count, request), &model);
}

void rush_engine_inspect(struct rush_engine *engine, uint32_t shard_index,
                         rush_shard_inspect_fn inspect, void *context)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    struct rush_result unused;
    struct work model = {
        .kind = WORK_INSPECT, .inspect = inspect, .inspect_context = context, .results = &unused};
    (void)send_and_wait(engine, shard_index, &model); /* inspection runs even on a failed log */
}

int rush_engine_snapshot(struct rush_engine *engine)
{
    return rush_engine_admin_snapshot(engine, NULL);
}

int rush_engine_admin_snapshot(struct rush_engine *engine, const struct rush_audit *audit)
{
    if (engine->config.data_dir == NULL || engine->config.durability == RUSH_DURABILITY_NONE)
        return RUSH_ECONFIG;
    int first_error = 0;
    for (uint32_t s = 0; s < engine->config.shard_count; s++) {
        int rc = RUSH_EWAL; /* stays so if the shard could not take it */
        struct rush_result unused;
        struct work model = {.kind = WORK_SNAPSHOT, .inspect_context = &rc, .results = &unused};
        if (audit != NULL) {
            model.audited = true;
            model.audit = *audit;
        }
        (void)send_and_wait(engine, s, &model); /* the outcome is rc */
        if (rc < 0 && first_error == 0)
            first_error = rc;
    }
    return first_error;
}

void rush_engine_stats(const struct rush_engine *engine, struct rush_engine_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    for (uint32_t s = 0; s < engine->config.shard_count; s++) {
        const struct shard_thread *thread = &engine->shards[s];
        const struct rush_shard_stats *shard = rush_shard_stats(thread->shard);
        stats->requests += atomic_load_explicit(&shard->requests, memory_order_relaxed);
        stats->duplicates += atomic_load_explicit(&shard->duplicates, memory_order_relaxed);
        stats->events += atomic_load_explicit(&shard->events, memory_order_relaxed);
        stats->work_items += atomic_load_explicit(&shard->batches, memory_order_relaxed);
        for (int o = 0; o < RUSH_OUTCOME_COUNT_; o++)
            stats->outcomes[o] += atomic_load_explicit(&shard->outcomes[o], memory_order_relaxed);
        stats->recovered_events += thread->log.recovered_events;
        if (stats->wal_error == 0)
            stats->wal_error = atomic_load(&thread->log.error);
    }
    stats->busy_rings = atomic_load_explicit(&engine->busy_rings, memory_order_relaxed);
}

void rush_engine_shard_figures(const struct rush_engine *engine, uint32_t shard_index,
                               struct rush_engine_shard_figures *out)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    const struct shard_thread *thread = &engine->shards[shard_index];
    rush_latency_read(&thread->decide_latency, &out->decide_latency);
    rush_latency_read(&thread->sync_latency, &out->sync_latency);
    out->wal_bytes_written = atomic_load_explicit(&thread->wal_bytes_written, memory_order_relaxed);
    out->wal_syncs = atomic_load_explicit(&thread->wal_syncs, memory_order_relaxed);
    out->durable_lsn = atomic_load_explicit(&thread->log.synced_lsn, memory_order_acquire);
    out->inbound_depth = rush_ring_depth(&thread->inbound);
    out->outbound_depth = rush_ring_depth(&thread->outbound);
    out->ring_slots = engine->config.ring_slots;
    for (int t = 0; t < RUSH_TABLE_COUNT_; t++) {
        out->tables.used[t] = atomic_load_explicit(&thread->table_used[t], memory_order_relaxed);
        out->tables.max[t] = atomic_load_explicit(&thread->table_max[t], memory_order_relaxed);
    }
}

/* ---- cluster roles (rush/engine.h) -------------------------------------------------------- */

enum rush_shard_role rush_engine_role(const struct rush_engine *engine, uint32_t shard_index)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    return (enum rush_shard_role)atomic_load(&engine->shards[shard_index].role);
}

void rush_engine_replica_acked(struct rush_engine *engine, uint32_t shard_index, uint64_t lsn)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    struct shard_thread *thread = &engine->shards[shard_index];
    uint64_t known = atomic_load(&thread->log.replica_lsn);
    while (known < lsn && !atomic_compare_exchange_weak(&thread->log.replica_lsn, &known, lsn))
        ;
    wake(&thread->sleeping);
}

uint64_t rush_engine_applied_lsn(const struct rush_engine *engine, uint32_t shard_index)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    return atomic_load_explicit(&engine->shards[shard_index].applied_lsn, memory_order_acquire);
}

void rush_engine_lead(struct rush_engine *engine, uint32_t shard_index, int64_t lease_deadline_ns)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    struct shard_thread *thread = &engine->shards[shard_index];
    atomic_store(&thread->lease_deadline_ns, lease_deadline_ns);
    uint32_t expected = RUSH_ROLE_FOLLOWER;
    if (atomic_compare_exchange_strong(&thread->role, &expected, RUSH_ROLE_LEADER))
        wake(&thread->sleeping);
}

void rush_engine_lease_renewed(struct rush_engine *engine, uint32_t shard_index,
                               int64_t lease_deadline_ns)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    atomic_store(&engine->shards[shard_index].lease_deadline_ns, lease_deadline_ns);
}

void rush_engine_drain(struct rush_engine *engine, uint32_t shard_index)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    struct shard_thread *thread = &engine->shards[shard_index];
    uint32_t expected = RUSH_ROLE_LEADER;
    if (atomic_compare_exchange_strong(&thread->role, &expected, RUSH_ROLE_DRAINING))
        wake(&thread->sleeping);
}

void rush_engine_fence(struct rush_engine *engine, uint32_t shard_index)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    struct shard_thread *thread = &engine->shards[shard_index];
    uint32_t expected = RUSH_ROLE_LEADER;
    if (atomic_compare_exchange_strong(&thread->role, &expected, RUSH_ROLE_FENCED) ||
        (expected == RUSH_ROLE_DRAINING &&
         atomic_compare_exchange_strong(&thread->role, &expected, RUSH_ROLE_FENCED)))
        wake(&thread->sleeping);
}

void rush_engine_diverge(struct rush_engine *engine, uint32_t shard_index)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    struct shard_thread *thread = &engine->shards[shard_index];
    uint32_t role = atomic_load(&thread->role);
    /* Bounded: the role only moves on to DIVERGED or FOLLOWER, each once per term. */
    while ((role == RUSH_ROLE_LEADER || role == RUSH_ROLE_FENCED || role == RUSH_ROLE_DRAINING) &&
           !atomic_compare_exchange_weak(&thread->role, &role, RUSH_ROLE_DIVERGED))
        ;
    if (role == RUSH_ROLE_LEADER || role == RUSH_ROLE_FENCED || role == RUSH_ROLE_DRAINING) {
        rush_log(RUSH_LOG_ERROR,
                 "rush: shard %u: the replicated log refused a batch this node applied: "
                 "diverged, serving nothing for this shard until a restart",
                 shard_index);
        wake(&thread->sleeping);
    }
}

void rush_engine_set_leader(struct rush_engine *engine, uint32_t shard_index, uint32_t node_index)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    atomic_store_explicit(&engine->shards[shard_index].leader_index, node_index,
                          memory_order_relaxed);
}

int rush_engine_follow(struct rush_engine *engine, uint32_t shard_index, uint64_t lsn,
                       int64_t time_ns, const struct rush_event *events, uint32_t count)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    struct shard_thread *thread = &engine->shards[shard_index];
    struct followed *f = malloc(sizeof(*f) + (size_t)count * sizeof(*events));
    if (f == NULL)
        return -ENOMEM;
    *f = (struct followed){.lsn = lsn, .time_ns = time_ns, .count = count};
    memcpy(f->events, events, (size_t)count * sizeof(*events));
    pthread_mutex_lock(&thread->follow_lock);
    bool full = thread->follow_count >= RUSH_ENGINE_FOLLOW_MAX;
    if (!full) {
        if (thread->follow_tail != NULL)
            thread->follow_tail->next = f;
        else
            thread->follow_head = f;
        thread->follow_tail = f;
        thread->follow_count++;
    }
    pthread_mutex_unlock(&thread->follow_lock);
    if (full) {
        free(f);
        return RUSH_EFULL;
    }
    wake(&thread->sleeping);
    return 0;
}
