/*
 * shard_log.c — see shard_log.h for the workload, states and invariants.
 */
#include "shard_log.h"
#include "base/clock.h"
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rush/assert.h"
#include "snapshot.h"

#define SNAPSHOT_SYNC_WAIT_NS (INT64_C(30) * 1000000000) /* async mode flushes every few ms */

int rush_shard_log_init(struct rush_shard_log *log, uint32_t capacity, rush_event_sink_fn user_sink,
                        void *user_context)
{
    memset(log, 0, sizeof(*log));
    log->held = calloc(capacity, sizeof(*log->held));
    if (log->held == NULL)
        return -ENOMEM;
    log->capacity = capacity;
    atomic_init(&log->synced_lsn, 0);
    atomic_init(&log->retain_lsn, UINT64_MAX);
    log->user_sink = user_sink;
    log->user_context = user_context;
    return 0;
}

struct replay_target {
    struct rush_shard *shard;
    uint64_t snapshot_lsn; /* batches up to this one are in the snapshot */
    uint64_t applied_events;
    uint64_t applied_batches;
};

static int replay_batch(void *context, uint64_t lsn, int64_t time_ns,
                        const struct rush_event *events, uint32_t count)
{
    struct replay_target *target = context;
    struct rush_shard *shard = target->shard;
    if (lsn <= target->snapshot_lsn)
        return 0;
    for (uint32_t i = 0; i < count; i++) {
        if (events[i].type == RUSH_EV_NONE || events[i].type >= RUSH_EV_TYPE_COUNT_)
            return RUSH_ECORRUPT; /* checksummed, so written by a newer or broken build */
        rush_shard_apply(shard, time_ns, &events[i]);
    }
    target->applied_events += count;
    target->applied_batches++;
    return 0;
}

static enum rush_wal_mode wal_mode(uint8_t durability)
{
    switch ((enum rush_durability)durability) {
    case RUSH_DURABILITY_FSYNC:
    case RUSH_DURABILITY_REPLICATED: /* locally fsync'ed; the cluster adds the second copy */
        return RUSH_WAL_FSYNC;
    case RUSH_DURABILITY_ASYNC:
        return RUSH_WAL_ASYNC;
    case RUSH_DURABILITY_NONE:
        return RUSH_WAL_NONE;
    }
    return RUSH_WAL_FSYNC;
}

/*
 * The log must hold every batch after the snapshot, without a gap: else new batches would get
 * lsns the snapshot already covers and be skipped by the next recovery.
 */
static int continues_snapshot(const struct rush_wal_recovery *recovery, uint64_t snapshot_lsn,
                              uint32_t shard_index, char *why, size_t why_size)
{
    if (snapshot_lsn == 0)
        return 0;
    if (recovery->batch_count > 0 && recovery->first_lsn > snapshot_lsn + 1) {
        snprintf(why, why_size,
                 "shard %u: the log starts at lsn %lu but the snapshot ends at lsn %lu: batches "
                 "are missing",
                 shard_index, recovery->first_lsn, snapshot_lsn);
        return RUSH_ECORRUPT;
    }
    if (recovery->last_lsn < snapshot_lsn) {
        snprintf(why, why_size,
                 "shard %u: the log ends at lsn %lu, before the snapshot's lsn %lu: the log was "
                 "lost or cut",
                 shard_index, recovery->last_lsn, snapshot_lsn);
        return RUSH_ECORRUPT;
    }
    return 0;
}

int rush_shard_log_open(struct rush_shard_log *log, struct rush_shard *shard,
                        const struct rush_engine_config *config, uint32_t shard_index, char *why,
                        size_t why_size)
{
    log->dir = config->data_dir;
    log->shard_index = shard_index;
    log->writes_nothing = config->durability == RUSH_DURABILITY_NONE;
    struct replay_target target = {.shard = shard};
    char reason[400];
    int rc = rush_snapshot_load(shard, config->data_dir, shard_index, &target.snapshot_lsn, reason,
                                sizeof(reason));
    if (rc < 0) {
        snprintf(why, why_size, "shard %u: %s", shard_index, reason);
        return rc;
    }
    log->snapshot_lsn = target.snapshot_lsn;
    struct rush_wal_recovery recovery;
    rc = rush_wal_replay(config->data_dir, shard_index, replay_batch, &target, &recovery);
    if (rc < 0) {
        snprintf(why, why_size, "shard %u: %s", shard_index,
                 recovery.message[0] ? recovery.message : rush_strerror(rc));
        return rc;
    }
    if ((rc = continues_snapshot(&recovery, target.snapshot_lsn, shard_index, why, why_size)) < 0)
        return rc;
    log->recovered_events = target.applied_events;
    log->recovered_batches = target.applied_batches;
    struct rush_wal_config wal_config;
    rush_wal_config_default(&wal_config, config->data_dir, shard_index);
    wal_config.mode = wal_mode(config->durability);
    wal_config.force_no_uring = config->wal_force_no_uring;
    if (config->wal_segment_bytes != 0)
        wal_config.segment_bytes = config->wal_segment_bytes;
    if (wal_config.buffer_bytes_max > wal_config.segment_bytes) /* small segments (tests) */
        wal_config.buffer_bytes_max = (uint32_t)wal_config.segment_bytes;
    rc = rush_wal_open(&wal_config, recovery.segment_count ? &recovery : NULL, &log->wal);
    if (rc == 0)
        atomic_store(&log->synced_lsn, rush_wal_synced_lsn(log->wal));
    if (rc < 0)
        snprintf(why, why_size, "shard %u: cannot open the log in %s: %s", shard_index,
                 config->data_dir, rush_strerror(rc));
    return rc;
}

void rush_shard_log_sink(void *context, uint32_t shard_index, int64_t time_ns,
                         const struct rush_event *events, uint32_t count)
{
    struct rush_shard_log *log = context;
    if (log->wal != NULL && log->error == 0) {
        int rc = rush_wal_append(log->wal, time_ns, events, count);
        if (rc < 0)
            log->error = rc;                  /* the shard stops deciding: see shard_main */
        else if (log->replica.append != NULL) /* durability replicated only */
            log->replica.append(log->replica.context, shard_index, rush_wal_appended_lsn(log->wal),
                                time_ns, events, count);
    }
    if (log->user_sink != NULL)
        log->user_sink(log->user_context, shard_index, time_ns, events, count);
}

int rush_shard_log_append_followed(struct rush_shard_log *log, uint64_t lsn, int64_t time_ns,
                                   const struct rush_event *events, uint32_t count)
{
    RUSH_ASSERT(log->wal != NULL);
    if (log->error != 0)
        return RUSH_EWAL;
    if (lsn != rush_wal_appended_lsn(log->wal) + 1)
        return RUSH_ECORRUPT;
    int rc = rush_wal_append(log->wal, time_ns, events, count);
    if (rc < 0)
        log->error = rc;
    return rc < 0 ? rc : 0;
}

uint64_t rush_shard_log_appended_lsn(const struct rush_shard_log *log)
{
    return log->wal != NULL ? rush_wal_appended_lsn(log->wal) : 0;
}

bool rush_shard_log_awaiting_replica(const struct rush_shard_log *log)
{
    if (log->replica.append == NULL || log->fenced || log->held_count == 0 || log->error != 0)
        return false;
    const struct shard_log_held *oldest = &log->held[log->held_head];
    return rush_wal_durable_lsn(log->wal) >= oldest->lsn &&
           atomic_load_explicit(&log->replica_lsn, memory_order_acquire) < oldest->lsn;
}

void rush_shard_log_commit(struct rush_shard_log *log)
{
    if (log->wal != NULL && log->error == 0 && rush_wal_submit(log->wal) < 0)
        log->error = rush_wal_error(log->wal, NULL);
}

void rush_shard_log_hold(struct rush_shard_log *log, void *item)
{
    RUSH_ASSERT(log->held_count < log->capacity);
    uint64_t lsn = log->wal ? rush_wal_appended_lsn(log->wal) : 0;
    uint32_t tail = (log->held_head + log->held_count) % log->capacity;
    log->held[tail] = (struct shard_log_held){.item = item, .lsn = lsn};
    log->held_count++;
}

static bool unsynced(const struct rush_shard_log *log)
{
    return log->wal != NULL && log->error == 0 &&
           rush_wal_durable_lsn(log->wal) < rush_wal_appended_lsn(log->wal);
}

bool rush_shard_log_holding(const struct rush_shard_log *log)
{
    return log->held_count > 0 || unsynced(log);
}

/* Polls the WAL until `lsn` is durable (or once, without `wait`); false while it is not. */
static bool durable_up_to(struct rush_shard_log *log, uint64_t lsn, bool wait)
{
    if (log->wal == NULL || log->error != 0)
        return true;
    int64_t durable = (int64_t)rush_wal_durable_lsn(log->wal);
    if ((uint64_t)durable < lsn)
        durable = rush_wal_poll(log->wal, wait);
    if (durable < 0) {
        log->error = rush_wal_error(log->wal, NULL);
        return true;
    }
    atomic_store_explicit(&log->synced_lsn, rush_wal_synced_lsn(log->wal), memory_order_release);
    return (uint64_t)durable >= lsn;
}

void rush_shard_log_poll(struct rush_shard_log *log)
{
    if (log->wal == NULL || log->error != 0 ||
        rush_wal_synced_lsn(log->wal) == rush_wal_appended_lsn(log->wal))
        return;
    if (rush_wal_poll(log->wal, false) < 0) {
        log->error = rush_wal_error(log->wal, NULL);
        return;
    }
    atomic_store_explicit(&log->synced_lsn, rush_wal_synced_lsn(log->wal), memory_order_release);
}

void *rush_shard_log_release(struct rush_shard_log *log, bool wait, int *status)
{
    if (log->held_count == 0) {
        if (unsynced(log))
            (void)durable_up_to(log, rush_wal_appended_lsn(log->wal), wait);
        return NULL;
    }
    struct shard_log_held *oldest = &log->held[log->held_head];
    *status = 0;
    if (!durable_up_to(log, oldest->lsn, wait))
        return NULL;
    if (log->error != 0) {
        *status = RUSH_EWAL;
    } else if (log->replica.append != NULL &&
               oldest->lsn > atomic_load_explicit(&log->replica_lsn, memory_order_acquire)) {
        if (!log->fenced)
            return NULL; /* durable here, not yet in the replicated log */
        *status = RUSH_EFENCED;
    }
    log->held_head = (log->held_head + 1) % log->capacity;
    log->held_count--;
    return oldest->item;
}

int rush_shard_log_error(const struct rush_shard_log *log, const char **why)
{
    if (why != NULL)
        *why = NULL;
    if (log->error != 0 && log->wal != NULL && why != NULL)
        (void)rush_wal_error(log->wal, why);
    return log->error;
}

static int64_t monotonic_ns(void)
{
    return rush_clock_monotonic_ns();
}

int rush_shard_log_wait_synced(struct rush_shard_log *log, uint64_t lsn)
{
    if (log->wal == NULL)
        return RUSH_ECONFIG;
    if (log->error != 0)
        return RUSH_EWAL;
    int64_t deadline_ns = monotonic_ns() + SNAPSHOT_SYNC_WAIT_NS;
    while (rush_wal_synced_lsn(log->wal) < lsn) {
        if (rush_wal_poll(log->wal, true) < 0) {
            log->error = rush_wal_error(log->wal, NULL);
            return RUSH_EWAL;
        }
        if (monotonic_ns() > deadline_ns)
            return RUSH_ETIMEDOUT;
    }
    atomic_store_explicit(&log->synced_lsn, rush_wal_synced_lsn(log->wal), memory_order_release);
    return 0;
}

int rush_shard_log_snapshot_begin(struct rush_shard_log *log, uint64_t *lsn, char *why,
                                  size_t why_size)
{
    if (log->wal == NULL || log->dir == NULL || log->writes_nothing) {
        snprintf(why, why_size, "no log on disk (no data_dir, or durability none)");
        return RUSH_ECONFIG;
    }
    rush_shard_log_commit(log);
    int rc = log->error != 0 ? RUSH_EWAL : 0;
    *lsn = rush_wal_appended_lsn(log->wal);
    if (rc == 0)
        rc = rush_shard_log_wait_synced(log, *lsn);
    if (rc < 0)
        snprintf(why, why_size, "waiting for the log to be synced: %s", rush_strerror(rc));
    return rc;
}

void rush_shard_log_snapshot_end(struct rush_shard_log *log, uint64_t lsn)
{
    log->snapshot_lsn = lsn;
    uint64_t retain = atomic_load_explicit(&log->retain_lsn, memory_order_acquire);
    int rc = rush_wal_remove_below(log->dir, log->shard_index, retain < lsn + 1 ? retain : lsn + 1);
    if (rc < 0) { /* the snapshot stands; the segments are only kept longer than needed */
        rush_log(RUSH_LOG_WARN, "rush: shard %u: removing segments below lsn %lu: %s",
                 log->shard_index, lsn + 1, rush_strerror(rc));
    }
}

int rush_shard_log_snapshot(struct rush_shard_log *log, const struct rush_shard *shard, char *why,
                            size_t why_size)
{
    int64_t start_ns = monotonic_ns();
    uint64_t lsn = 0;
    int rc = rush_shard_log_snapshot_begin(log, &lsn, why, why_size);
    if (rc < 0)
        return rc;
    if ((rc = rush_snapshot_write(shard, log->dir, log->shard_index, lsn, why, why_size)) < 0)
        return rc;
    rush_shard_log_snapshot_end(log, lsn);
    log->snapshot_ns_last = (uint64_t)(monotonic_ns() - start_ns);
    return 0;
}

void rush_shard_log_close(struct rush_shard_log *log)
{
    if (log->wal != NULL) {
        int rc = rush_wal_close(log->wal);
        if (rc < 0 && log->error == 0)
            rush_log(RUSH_LOG_ERROR, "rush: closing the log: %s", rush_strerror(rc));
        log->wal = NULL;
    }
    free(log->held);
    log->held = NULL;
}
