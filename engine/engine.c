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
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine_figures.h"
#include "ring.h"
#include "rush/assert.h"
#include "rush/engine.h"
#include "shard/shard.h"
#include "wal/shard_log.h"

#define RUSH_ENGINE_BATCH_MAX 65536
#define RUSH_ENGINE_IDLE_TICK_MS 10
#define SPIN_MAX 256
#define POP_MAX 64 /* work items decided under one batch time */

enum work_kind { WORK_REQUESTS, WORK_SKU_PUT, WORK_INSPECT, WORK_SNAPSHOT };

struct work {
    enum work_kind kind;
    uint32_t count;
    struct rush_batch *batch;
    uint32_t *positions; /* index in the batch of each request */
    struct rush_request *requests;
    struct rush_result *results;
    struct rush_sku sku;
    rush_shard_inspect_fn inspect;
    /* WORK_SNAPSHOT: the int that receives the snapshot's result */
    void *inspect_context;
    int status; /* 0, or RUSH_EWAL when the log failed before this work was durable */
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
    pthread_t thread;
    bool started;
};

struct rush_engine {
    struct rush_engine_config config;
    struct shard_thread *shards;
    _Atomic bool stopping;
    _Atomic uint32_t front_sleeping;
    struct rush_batch **ready; /* FIFO of whole batches not yet returned by poll */
    uint32_t ready_head;
    uint32_t ready_count;
    uint32_t ready_capacity;
    uint8_t *route; /* scratch: shard of each request of the batch being submitted */
    uint32_t *needed;
    _Atomic uint64_t busy_rings;
};

static int64_t realtime_ns(void *context)
{
    (void)context;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    else if (config->durability > RUSH_DURABILITY_NONE)
        problem = "durability must be fsync, async or none";
    if (problem == NULL)
        return 0;
    if (why != NULL && why_size > 0)
        snprintf(why, why_size, "%s", problem);
    return RUSH_ECONFIG;
}

/* ---- routing ------------------------------------------------------------------------------ */

uint32_t rush_engine_shard_of_sku(uint32_t shard_count, uint64_t sku_id)
{
    uint64_t hash = XXH3_64bits(&sku_id, sizeof(sku_id)); /* unseeded: stable across restarts */
    return (uint32_t)(((unsigned __int128)hash * shard_count) >> 64);
}

static uint32_t shard_of_id(uint32_t shard_count, uint64_t id)
{
    uint32_t shard = rush_id_shard(id);
    return shard < shard_count ? shard : 0; /* shard 0 answers unknown_order / unknown_group */
}

uint32_t rush_engine_shard_of(uint32_t shard_count, const struct rush_request *request)
{
    switch ((enum rush_op)request->op) {
    case RUSH_OP_RESERVE:
    case RUSH_OP_GROUP_OPEN:
    case RUSH_OP_GROUP_JOIN_ANY:
    case RUSH_OP_QUERY_SKU:
    case RUSH_OP_ADJUST:
    case RUSH_OP_PAUSE:
    case RUSH_OP_RESUME:
        return rush_engine_shard_of_sku(shard_count, request->sku_id);
    case RUSH_OP_CONFIRM:
    case RUSH_OP_CANCEL:
    case RUSH_OP_QUERY_ORDER:
    case RUSH_OP_GROUP_JOIN:
    case RUSH_OP_QUERY_GROUP:
        return shard_of_id(shard_count, request->target_id);
    case RUSH_OP_NONE:
    case RUSH_OP_COUNT_:
        break;
    }
    return 0; /* shard 0 answers invalid */
}

uint64_t rush_engine_durable_lsn(const struct rush_engine *engine, uint32_t shard_index)
{
    RUSH_ASSERT(shard_index < engine->config.shard_count);
    return atomic_load_explicit(&engine->shards[shard_index].log.durable_lsn, memory_order_acquire);
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
        break;
    case WORK_INSPECT:
        work->inspect(shard, work->inspect_context);
        break;
    case WORK_SNAPSHOT: /* taken at the end of the pass: see snapshot_after_pass */
        break;
    }
}

/*
 * At a pass boundary (every event decided so far is appended): writes the snapshots asked for in
 * this pass, or the automatic one when snapshot_every_events have been decided since the last.
 * The shard thread blocks while it writes.
 */
static void snapshot_after_pass(struct shard_thread *thread, struct work **items, uint32_t count)
{
    const struct rush_engine_config *config = &thread->engine->config;
    const struct rush_shard_stats *stats = rush_shard_stats(thread->shard);
    uint64_t events = atomic_load_explicit(&stats->events, memory_order_relaxed);
    bool wanted = config->snapshot_every_events > 0 && config->data_dir != NULL &&
                  config->durability != RUSH_DURABILITY_NONE &&
                  events - thread->events_at_snapshot >= config->snapshot_every_events;
    for (uint32_t i = 0; i < count; i++)
        wanted = wanted || items[i]->kind == WORK_SNAPSHOT;
    if (!wanted)
        return;
    char why[512];
    int rc = rush_shard_log_snapshot(&thread->log, thread->shard, why, sizeof(why));
    thread->events_at_snapshot = events;
    if (rc < 0)
        fprintf(stderr, "rush: shard %u: snapshot failed: %s\n", thread->index, why);
    else
        fprintf(stderr, "rush: shard %u: snapshot at lsn %lu written in %.1f ms\n", thread->index,
                thread->log.snapshot_lsn, (double)thread->log.snapshot_ns_last / 1e6);
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
    const struct rush_engine_config *config = &thread->engine->config;
    bool failed = rush_shard_log_error(&thread->log, NULL) != 0;
    if (!failed) { /* a failed log stops deciding: the state would run ahead of the log */
        uint64_t started_ns = monotonic_ns();
        rush_shard_begin(thread->shard, config->clock(config->clock_context));
        for (uint32_t i = 0; i < count; i++)
            decide_work(thread->shard, items[i]);
        rush_shard_end(thread->shard);
        rush_shard_log_commit(&thread->log);
        rush_latency_record(&thread->decide_latency, monotonic_ns() - started_ns);
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
    while ((work = rush_shard_log_release(&thread->log, wait && released == 0, &status)) != NULL) {
        work->status = status;
        RUSH_ASSERT(rush_ring_push(&thread->outbound, work)); /* invariant 1 */
        released++;
    }
    if (released > 0) {
        wake(&thread->engine->front_sleeping);
        observe_wal(thread);
    }
}

static void *shard_main(void *argument)
{
    struct shard_thread *thread = argument;
    struct rush_engine *engine = thread->engine;
    const struct rush_engine_config *config = &engine->config;
    struct work *items[POP_MAX];
    for (;;) {
        uint32_t count = 0;
        while (count < POP_MAX && (items[count] = rush_ring_pop(&thread->inbound)) != NULL)
            count++;
        if (count > 0)
            decide_pass(thread, items, count);
        bool holding = rush_shard_log_holding(&thread->log);
        /* With nothing new to decide, wait for the sync in flight; else let the next pass
         * gather what arrives meanwhile into one write (group commit). */
        release_durable(thread, count == 0 && holding);
        if (count > 0 || rush_shard_log_holding(&thread->log))
            continue;
        if (atomic_load(&engine->stopping))
            break;
        if (!shard_idle(thread) && rush_shard_log_error(&thread->log, NULL) == 0) {
            /* an idle tick: fire the timers that are due, and log what they decided */
            rush_shard_begin(thread->shard, config->clock(config->clock_context));
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
    int rc =
        rush_shard_log_init(&thread->log, config->ring_slots, config->sink, config->sink_context);
    if (rc < 0)
        return rc;
    struct rush_shard_config shard_config = {
        .index = index,
        .limits = config->limits,
        .seed = seed + index,
        .start_ns = config->clock(config->clock_context),
        .sink = rush_shard_log_sink,
        .sink_context = &thread->log,
    };
    if ((rc = rush_shard_create(&shard_config, &thread->shard)) < 0)
        return rc;
    if (config->data_dir != NULL) {
        char why[512];
        if ((rc = rush_shard_log_open(&thread->log, thread->shard, config, index, why,
                                      sizeof(why))) < 0) {
            fprintf(stderr, "rush: recovery refused: %s\n", why);
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
    for (uint32_t s = 0; s < config->shard_count; s++)
        if ((rc = shard_thread_init(engine, s, seed)) < 0)
            goto out_destroy;
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
        rush_shard_log_close(&thread->log);
        rush_shard_destroy(thread->shard);
    }
    free(engine->shards);
    free(engine->ready);
    free(engine->route);
    free(engine->needed);
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
    RUSH_ASSERT(rush_ring_push(&thread->inbound, work)); /* invariant 1 */
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
        while ((work = rush_ring_pop(&thread->outbound)) != NULL) {
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

int rush_engine_poll(struct rush_engine *engine, struct rush_batch **done, uint32_t done_max,
                     int timeout_ms)
{
    int64_t deadline_ms = monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    collect(engine);
    while (engine->ready_count == 0 && timeout_ms != 0) {
        int64_t left_ms = deadline_ms - monotonic_ms();
        if (timeout_ms > 0 && left_ms <= 0)
            break;
        atomic_store(&engine->front_sleeping, 1);
        if (outbound_empty(engine))
            futex_wait(&engine->front_sleeping, 1,
                       timeout_ms < 0 || left_ms > 100 ? 100 : (int)left_ms);
        atomic_store(&engine->front_sleeping, 0);
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

/* Submits, retrying while rings are full, and waits for this batch (others are kept ready). */
static int submit_and_wait(struct rush_engine *engine, struct rush_batch *batch)
{
    int rc;
    while ((rc = rush_engine_submit(engine, batch)) == RUSH_EFULL) {
        struct rush_batch *done[16];
        int count = rush_engine_poll(engine, done, 16, 1);
        for (int i = 0; i < count; i++)
            ready_push(engine, done[i]);
    }
    if (rc < 0)
        return rc;
    for (;;) {
        struct rush_batch *done;
        if (rush_engine_poll(engine, &done, 1, -1) != 1)
            continue;
        if (done == batch)
            return batch->status;
        ready_push(engine, done); /* someone else's: keep it for their poll */
    }
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
        if (rc < 0 && rc != RUSH_EWAL)
            return rc;
        /* A failed log leaves its part unknown; the other shards still decide the rest. */
        if (rc == RUSH_EWAL)
            status = rc;
        offset += n;
    }
    return status;
}

/* Sends one work item of its own to a shard and waits until it is back. */
static int send_and_wait(struct rush_engine *engine, uint32_t shard_index, struct work *model)
{
    struct shard_thread *thread = &engine->shards[shard_index];
    while (thread->free_count == 0) {
        struct rush_batch *done[16];
        int count = rush_engine_poll(engine, done, 16, 1);
        for (int i = 0; i < count; i++)
            ready_push(engine, done[i]);
    }
    struct rush_result result;
    struct rush_batch batch = {.results = &result, .count = 1, .pending_ = 1};
    struct work *work = take_work(thread, &batch, model->kind);
    work->sku = model->sku;
    work->inspect = model->inspect;
    work->inspect_context = model->inspect_context;
    push_work(engine, thread, work);
    for (;;) {
        struct rush_batch *done;
        if (rush_engine_poll(engine, &done, 1, -1) != 1)
            continue;
        if (done == &batch)
            break;
        ready_push(engine, done);
    }
    model->results[0] = result;
    return batch.status;
}

int rush_engine_sku_put(struct rush_engine *engine, const struct rush_sku *sku,
                        struct rush_result *result)
{
    struct work model = {.kind = WORK_SKU_PUT, .sku = *sku, .results = result};
    return send_and_wait(engine, rush_engine_shard_of_sku(engine->config.shard_count, sku->id),
                         &model);
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
    if (engine->config.data_dir == NULL || engine->config.durability == RUSH_DURABILITY_NONE)
        return RUSH_ECONFIG;
    int first_error = 0;
    for (uint32_t s = 0; s < engine->config.shard_count; s++) {
        int rc = RUSH_EWAL; /* stays so if the shard could not take it */
        struct rush_result unused;
        struct work model = {.kind = WORK_SNAPSHOT, .inspect_context = &rc, .results = &unused};
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
    out->durable_lsn = atomic_load_explicit(&thread->log.durable_lsn, memory_order_acquire);
    out->inbound_depth = rush_ring_depth(&thread->inbound);
    out->outbound_depth = rush_ring_depth(&thread->outbound);
    out->ring_slots = engine->config.ring_slots;
    for (int t = 0; t < RUSH_TABLE_COUNT_; t++) {
        out->tables.used[t] = atomic_load_explicit(&thread->table_used[t], memory_order_relaxed);
        out->tables.max[t] = atomic_load_explicit(&thread->table_max[t], memory_order_relaxed);
    }
}
