/*
 * shard_log.c — see shard_log.h for the workload, states and invariants.
 */
#include "shard_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rush/assert.h"

int rush_shard_log_init(struct rush_shard_log *log, uint32_t capacity, rush_event_sink_fn user_sink,
                        void *user_context)
{
    memset(log, 0, sizeof(*log));
    log->held = calloc(capacity, sizeof(*log->held));
    if (log->held == NULL)
        return -ENOMEM;
    log->capacity = capacity;
    log->user_sink = user_sink;
    log->user_context = user_context;
    return 0;
}

static int replay_batch(void *context, uint64_t lsn, int64_t time_ns,
                        const struct rush_event *events, uint32_t count)
{
    (void)lsn;
    struct rush_shard *shard = context;
    for (uint32_t i = 0; i < count; i++) {
        if (events[i].type == RUSH_EV_NONE || events[i].type >= RUSH_EV_TYPE_COUNT_)
            return RUSH_ECORRUPT; /* checksummed, so written by a newer or broken build */
        rush_shard_apply(shard, time_ns, &events[i]);
    }
    return 0;
}

static enum rush_wal_mode wal_mode(uint8_t durability)
{
    switch ((enum rush_durability)durability) {
    case RUSH_DURABILITY_FSYNC:
        return RUSH_WAL_FSYNC;
    case RUSH_DURABILITY_ASYNC:
        return RUSH_WAL_ASYNC;
    case RUSH_DURABILITY_NONE:
        return RUSH_WAL_NONE;
    }
    return RUSH_WAL_FSYNC;
}

int rush_shard_log_open(struct rush_shard_log *log, struct rush_shard *shard,
                        const struct rush_engine_config *config, uint32_t shard_index, char *why,
                        size_t why_size)
{
    struct rush_wal_recovery recovery;
    int rc = rush_wal_replay(config->data_dir, shard_index, replay_batch, shard, &recovery);
    if (rc < 0) {
        snprintf(why, why_size, "shard %u: %s", shard_index,
                 recovery.message[0] ? recovery.message : rush_strerror(rc));
        return rc;
    }
    log->recovered_events = recovery.event_count;
    log->recovered_batches = recovery.batch_count;
    struct rush_wal_config wal_config;
    rush_wal_config_default(&wal_config, config->data_dir, shard_index);
    wal_config.mode = wal_mode(config->durability);
    wal_config.force_no_uring = config->wal_force_no_uring;
    rc = rush_wal_open(&wal_config, recovery.segment_count ? &recovery : NULL, &log->wal);
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
            log->error = rc; /* the shard stops deciding: see shard_main */
    }
    if (log->user_sink != NULL)
        log->user_sink(log->user_context, shard_index, time_ns, events, count);
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

bool rush_shard_log_holding(const struct rush_shard_log *log)
{
    return log->held_count > 0;
}

void *rush_shard_log_release(struct rush_shard_log *log, bool wait, int *status)
{
    if (log->held_count == 0)
        return NULL;
    struct shard_log_held *oldest = &log->held[log->held_head];
    *status = 0;
    if (log->wal != NULL && log->error == 0) {
        int64_t durable = (int64_t)rush_wal_durable_lsn(log->wal);
        if ((uint64_t)durable < oldest->lsn)
            durable = rush_wal_poll(log->wal, wait);
        if (durable < 0)
            log->error = rush_wal_error(log->wal, NULL);
        else if ((uint64_t)durable < oldest->lsn)
            return NULL;
    }
    if (log->error != 0)
        *status = RUSH_EWAL;
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

void rush_shard_log_close(struct rush_shard_log *log)
{
    if (log->wal != NULL) {
        int rc = rush_wal_close(log->wal);
        if (rc < 0 && log->error == 0)
            fprintf(stderr, "rush: closing the log: %s\n", rush_strerror(rc));
        log->wal = NULL;
    }
    free(log->held);
    log->held = NULL;
}
