/*
 * wal.c — the write-ahead log writer: group commit over two buffers, io_uring or pwrite.
 *
 * Workload and state diagram: see wal.h. This file owns the append path (append, submit, poll),
 * the I/O engines and segment rolling; wal_open.c sets up and tears down (config, open of the
 * tail, close) and calls into this file; segment.c makes and removes segment files and calls
 * neither; wal_replay.c reads.
 *
 * Invariants (checked by wal_check):
 *   1. flight.op == IDLE or exactly one operation is in flight, from buffers[!filling].
 *   2. durable_lsn <= submitted_lsn < next_lsn; synced_lsn <= written_lsn <= submitted_lsn.
 *   3. buffers[filling].file_offset + used == segment_reserved <= segment_capacity (fsync and
 *      async modes, once the filling buffer holds a batch).
 *   4. failed is sticky: nothing issues I/O once it is set.
 *
 * Thread: the shard's thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "rush/assert.h"
#include "rush/stream.h"
#include "wal_internal.h"

/* io_uring_wait_cqe may return -EINTR; give up (as a failure) after this many in a row. */
#define WAL_REAP_ROUNDS_MAX 1024u
/* pwrite on a regular file is short only at ENOSPC or a signal; retry the rest this often. */
#define WAL_WRITE_ATTEMPTS_MAX 16u

int wal_fail(struct rush_wal *wal, int error, const char *format, ...)
{
    RUSH_ASSERT(error < 0);
    if (!wal->failed) {
        va_list args;
        va_start(args, format);
        vsnprintf(wal->error_text, sizeof(wal->error_text), format, args);
        va_end(args);
        wal->failed = true;
        wal->error = error;
        rush_log(RUSH_LOG_ERROR, "rush wal: shard %" PRIu32 ": FAILED (sticky): %s: %s",
                 wal->config.shard_index, wal->error_text, rush_strerror(error));
    }
    return RUSH_EWAL;
}

int wal_fault(struct rush_wal *wal, enum rush_wal_io io, uint64_t lsn)
{
    if (wal->config.fault == NULL)
        return 0;
    int rc = wal->config.fault(wal->config.fault_context, io, lsn);
    RUSH_ASSERT(rc <= 0);
    return rc;
}

int64_t wal_now_ns(const struct rush_wal *wal)
{
    if (wal->config.clock != NULL)
        return wal->config.clock(wal->config.clock_context);
    return rush_clock_monotonic_ns();
}

void wal_check(const struct rush_wal *wal)
{
    const struct rush_wal_buffer *filling = &wal->buffers[wal->filling];
    RUSH_ASSERT(wal->durable_lsn <= wal->submitted_lsn && wal->submitted_lsn < wal->next_lsn);
    RUSH_ASSERT(wal->synced_lsn <= wal->written_lsn && wal->written_lsn <= wal->submitted_lsn);
    RUSH_ASSERT(filling->used <= wal->config.buffer_bytes_max);
    RUSH_ASSERT(wal->flight.op == WAL_OP_IDLE || wal->flight.buffer_index != wal->filling ||
                wal->flight.op == WAL_OP_SYNC);
    RUSH_ASSERT(!wal->flush.in_flight || (wal->use_uring && wal->config.mode == RUSH_WAL_ASYNC &&
                                          wal->flush.lsn <= wal->written_lsn));
    if (wal->config.mode != RUSH_WAL_NONE && filling->used > 0)
        RUSH_ASSERT(filling->file_offset + filling->used == wal->segment_reserved &&
                    wal->segment_reserved <= wal->segment_capacity);
}

static void wal_update_durable(struct rush_wal *wal)
{
    switch (wal->config.mode) {
    case RUSH_WAL_FSYNC:
        wal->durable_lsn = wal->synced_lsn;
        break;
    case RUSH_WAL_ASYNC:
        wal->durable_lsn = wal->written_lsn;
        break;
    case RUSH_WAL_NONE:
        wal->durable_lsn = wal->submitted_lsn;
        break;
    }
}

/* Judges a finished operation: advances the lsns, or fails the log. Never retries. */
static int wal_complete(struct rush_wal *wal)
{
    struct rush_wal_flight *flight = &wal->flight;
    enum wal_op op = flight->op;
    flight->op = WAL_OP_IDLE;
    bool writes = op == WAL_OP_WRITE_SYNC || op == WAL_OP_WRITE;
    bool syncs = op == WAL_OP_WRITE_SYNC || op == WAL_OP_SYNC;
    RUSH_ASSERT(writes || syncs);
    if (writes && flight->write_result < 0)
        return wal_fail(wal, flight->write_result,
                        "write of %" PRIu32 " bytes at offset %" PRIu64 " in %s", flight->length,
                        flight->offset, wal->segment_name);
    if (writes && (uint32_t)flight->write_result != flight->length)
        return wal_fail(wal, -EIO,
                        "short write: %" PRId32 " of %" PRIu32 " bytes at offset %" PRIu64 " in %s",
                        flight->write_result, flight->length, flight->offset, wal->segment_name);
    if (writes) {
        wal->written_lsn = flight->lsn;
        wal->stats.writes++;
        wal->stats.bytes_written += flight->length;
    }
    if (syncs && flight->sync_result < 0)
        return wal_fail(wal, flight->sync_result, "fdatasync of %s", wal->segment_name);
    if (syncs) {
        wal->synced_lsn = flight->lsn;
        wal->stats.syncs++;
        wal->last_sync_ns = wal_now_ns(wal);
        wal->stats.sync_latency_ns_last = (uint64_t)(wal->last_sync_ns - flight->issued_ns);
    }
    wal_update_durable(wal);
    return 0;
}

/* The fallback engine: does the operation now, on this thread. */
static int wal_plain_run(struct rush_wal *wal)
{
    struct rush_wal_flight *flight = &wal->flight;
    const uint8_t *bytes = wal->buffers[flight->buffer_index].bytes;
    if (flight->op == WAL_OP_WRITE_SYNC || flight->op == WAL_OP_WRITE) {
        uint32_t done = 0;
        int rc = wal_fault(wal, RUSH_WAL_IO_WRITE, flight->lsn);
        for (uint32_t i = 0; rc == 0 && done < flight->length && i < WAL_WRITE_ATTEMPTS_MAX; i++) {
            ssize_t n = pwrite(wal->segment_fd, bytes + done, flight->length - done,
                               (off_t)(flight->offset + done));
            if (n < 0 && errno != EINTR)
                rc = -errno;
            if (n == 0)
                break;
            if (n > 0)
                done += (uint32_t)n;
        }
        flight->write_result = rc < 0 ? rc : (int32_t)done;
        if (flight->write_result != (int32_t)flight->length)
            return wal_complete(wal); /* never sync after a failed write */
    }
    if (flight->op == WAL_OP_WRITE_SYNC || flight->op == WAL_OP_SYNC) {
        int rc = wal_fault(wal, RUSH_WAL_IO_SYNC, flight->lsn);
        if (rc == 0 && fdatasync(wal->segment_fd) < 0)
            rc = -errno;
        flight->sync_result = rc;
    }
    return wal_complete(wal);
}

/* The io_uring engine: queues the write (linked to the fdatasync) and/or the fdatasync. */
static int wal_uring_issue(struct rush_wal *wal)
{
    struct rush_wal_flight *flight = &wal->flight;
    uint32_t count = 0;
    if (flight->op == WAL_OP_WRITE_SYNC || flight->op == WAL_OP_WRITE) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&wal->ring);
        RUSH_ASSERT(sqe != NULL); /* the ring has room for 8; at most 2 are ever queued */
        flight->write_fault = wal_fault(wal, RUSH_WAL_IO_WRITE, flight->lsn);
        if (flight->write_fault < 0)
            io_uring_prep_nop(sqe);
        else
            io_uring_prep_write(sqe, wal->segment_fd, wal->buffers[flight->buffer_index].bytes,
                                flight->length, flight->offset);
        sqe->user_data = WAL_TAG_WRITE;
        if (flight->op == WAL_OP_WRITE_SYNC)
            sqe->flags |= IOSQE_IO_LINK; /* a failed or short write cancels the fdatasync */
        count++;
    }
    if (flight->op == WAL_OP_WRITE_SYNC || flight->op == WAL_OP_SYNC) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&wal->ring);
        RUSH_ASSERT(sqe != NULL);
        /* An injected write failure cancels the linked fdatasync, as a real one would. */
        flight->sync_fault =
            flight->write_fault < 0 ? -ECANCELED : wal_fault(wal, RUSH_WAL_IO_SYNC, flight->lsn);
        if (flight->sync_fault < 0)
            io_uring_prep_nop(sqe);
        else
            io_uring_prep_fsync(sqe, wal->segment_fd, IORING_FSYNC_DATASYNC);
        sqe->user_data = WAL_TAG_SYNC;
        count++;
    }
    int rc = io_uring_submit(&wal->ring);
    flight->cqes_pending = rc > 0 ? (uint32_t)rc : 0;
    if (rc < 0)
        return wal_fail(wal, rc, "io_uring_submit");
    if ((uint32_t)rc != count)
        return wal_fail(wal, -EIO, "io_uring_submit took %d of %" PRIu32 " entries", rc, count);
    return 0;
}

/* Starts `op` on the buffer `buffer_index` (ignored for SYNC). */
static int wal_issue(struct rush_wal *wal, enum wal_op op, uint32_t buffer_index)
{
    RUSH_ASSERT(wal->flight.op == WAL_OP_IDLE && !wal->failed);
    const struct rush_wal_buffer *buffer = &wal->buffers[buffer_index];
    struct rush_wal_flight *flight = &wal->flight;
    memset(flight, 0, sizeof(*flight));
    flight->op = op;
    flight->buffer_index = buffer_index;
    flight->write_result = -ECANCELED;
    flight->sync_result = -ECANCELED;
    flight->issued_ns = wal_now_ns(wal);
    if (op == WAL_OP_SYNC) {
        flight->lsn = wal->written_lsn;
    } else {
        flight->lsn = buffer->lsn_last;
        flight->length = buffer->used;
        flight->offset = buffer->file_offset;
    }
    if (wal->use_uring)
        return wal_uring_issue(wal);
    return wal_plain_run(wal);
}

/* Hands the filling buffer over (nothing may be in flight) and starts filling the other. */
static int wal_issue_filling(struct rush_wal *wal)
{
    uint32_t index = wal->filling;
    struct rush_wal_buffer *buffer = &wal->buffers[index];
    RUSH_ASSERT(buffer->used > 0 && wal->flight.op == WAL_OP_IDLE);
    wal->filling = index ^ 1u;
    struct rush_wal_buffer *next = &wal->buffers[wal->filling];
    next->used = 0;
    next->lsn_last = 0;
    wal->submit_wanted = false;
    wal->submitted_lsn = buffer->lsn_last;
    if (wal->config.mode == RUSH_WAL_NONE) {
        wal_update_durable(wal);
        return 0;
    }
    return wal_issue(wal, wal->config.mode == RUSH_WAL_FSYNC ? WAL_OP_WRITE_SYNC : WAL_OP_WRITE,
                     index);
}

/* The side flush completed: what was written when it was issued is synced. */
static int wal_flush_complete(struct rush_wal *wal, int32_t result)
{
    struct rush_wal_flush *flush = &wal->flush;
    RUSH_ASSERT(flush->in_flight);
    flush->in_flight = false;
    if (wal->failed) /* durable_lsn never advances after a failure (invariant 2) */
        return RUSH_EWAL;
    if (result < 0)
        return wal_fail(wal, result, "fdatasync of %s", wal->segment_name);
    if (flush->lsn > wal->synced_lsn)
        wal->synced_lsn = flush->lsn;
    wal->stats.syncs++;
    wal->last_sync_ns = wal_now_ns(wal);
    wal->stats.sync_latency_ns_last = (uint64_t)(wal->last_sync_ns - flush->issued_ns);
    return 0;
}

/* Takes in one completion: the side flush's, or one of the operation in flight's. */
static int wal_take(struct rush_wal *wal, struct io_uring_cqe *cqe)
{
    struct rush_wal_flight *flight = &wal->flight;
    uint64_t tag = cqe->user_data;
    int32_t res = cqe->res;
    io_uring_cqe_seen(&wal->ring, cqe);
    if (tag == WAL_TAG_FLUSH)
        return wal_flush_complete(wal, wal->flush.fault < 0 ? wal->flush.fault : res);
    bool is_write = tag == WAL_TAG_WRITE;
    RUSH_ASSERT((is_write || tag == WAL_TAG_SYNC) && flight->cqes_pending > 0);
    int fault = is_write ? flight->write_fault : flight->sync_fault;
    int32_t result = fault < 0 ? fault : res;
    if (is_write)
        flight->write_result = result;
    else
        flight->sync_result = result;
    flight->cqes_pending--;
    return flight->cqes_pending == 0 ? wal_complete(wal) : 0;
}

/*
 * Takes in the completions that are there. With `wait`, waits until the operation in flight is
 * complete, or, with none in flight, the side flush.
 */
static int wal_reap(struct rush_wal *wal, bool wait)
{
    struct rush_wal_flight *flight = &wal->flight;
    if (!wal->use_uring)
        return 0;
    bool for_flight = flight->op != WAL_OP_IDLE;
    for (uint32_t round = 0; flight->op != WAL_OP_IDLE || wal->flush.in_flight; round++) {
        if (round == WAL_REAP_ROUNDS_MAX)
            return wal_fail(wal, -EINTR, "waiting for io_uring completions");
        bool block = wait && (for_flight ? flight->op != WAL_OP_IDLE : wal->flush.in_flight);
        struct io_uring_cqe *cqe = NULL;
        int rc = block ? io_uring_wait_cqe(&wal->ring, &cqe) : io_uring_peek_cqe(&wal->ring, &cqe);
        if (rc == -EAGAIN && !block)
            return 0;
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            return wal_fail(wal, rc, "waiting for io_uring completions");
        rc = wal_take(wal, cqe);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Async mode with io_uring: issues the flush timer's fdatasync beside the writes. */
static int wal_flush_issue(struct rush_wal *wal)
{
    struct rush_wal_flush *flush = &wal->flush;
    RUSH_ASSERT(!flush->in_flight && !wal->failed && wal->use_uring);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&wal->ring);
    RUSH_ASSERT(sqe != NULL); /* the ring has room for 8; at most 3 are ever queued */
    flush->lsn = wal->written_lsn;
    flush->issued_ns = wal_now_ns(wal);
    flush->fault = wal_fault(wal, RUSH_WAL_IO_SYNC, flush->lsn);
    if (flush->fault < 0)
        io_uring_prep_nop(sqe);
    else
        io_uring_prep_fsync(sqe, wal->segment_fd, IORING_FSYNC_DATASYNC);
    sqe->user_data = WAL_TAG_FLUSH;
    int rc = io_uring_submit(&wal->ring);
    if (rc < 0)
        return wal_fail(wal, rc, "io_uring_submit");
    if (rc != 1)
        return wal_fail(wal, -EIO, "io_uring_submit took %d of 1 entries", rc);
    flush->in_flight = true;
    return 0;
}

static bool wal_flush_due(const struct rush_wal *wal)
{
    if (wal->config.mode != RUSH_WAL_ASYNC || wal->synced_lsn == wal->written_lsn ||
        wal->flush.in_flight)
        return false;
    int64_t interval_ns = (int64_t)wal->config.flush_interval_ms * 1000000;
    return wal_now_ns(wal) - wal->last_sync_ns >= interval_ns;
}

/*
 * With nothing in flight: issues the async flush when due (first, so that a steady stream of
 * writes cannot starve it), then a queued buffer. Two rounds: the fallback engine finishes an
 * operation inside wal_issue, so both can go in one call.
 */
static int wal_pump(struct rush_wal *wal)
{
    if (wal->use_uring && wal_flush_due(wal)) { /* beside the writes: see rush_wal_flush */
        int rc = wal_flush_issue(wal);
        if (rc < 0)
            return rc;
    }
    for (uint32_t round = 0; round < 2 && wal->flight.op == WAL_OP_IDLE; round++) {
        int rc = 0;
        if (wal_flush_due(wal))
            rc = wal_issue(wal, WAL_OP_SYNC, wal->filling);
        else if (wal->submit_wanted && wal->buffers[wal->filling].used > 0)
            rc = wal_issue_filling(wal);
        else
            return 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}

int wal_wait_idle(struct rush_wal *wal)
{
    /* One operation is in flight at most; reaping with wait finishes it (and not the flush). */
    if (wal->flight.op == WAL_OP_IDLE)
        return 0;
    int rc = wal_reap(wal, true);
    RUSH_ASSERT(rc < 0 || wal->flight.op == WAL_OP_IDLE);
    return rc;
}

int wal_wait_flushed(struct rush_wal *wal)
{
    int rc = 0;
    /* Bounded: each round takes in one completion (wal_reap); one flush is in flight at most. */
    for (uint32_t round = 0; rc == 0 && wal->flush.in_flight && round < WAL_REAP_ROUNDS_MAX;
         round++)
        rc = wal_reap(wal, true);
    return rc;
}

int wal_drain(struct rush_wal *wal)
{
    int rc = wal_wait_idle(wal);
    if (rc == 0)
        rc = wal_wait_flushed(wal);
    if (rc == 0 && wal->buffers[wal->filling].used > 0)
        rc = wal_issue_filling(wal);
    if (rc == 0)
        rc = wal_wait_idle(wal);
    if (rc == 0 && wal->config.mode == RUSH_WAL_ASYNC && wal->synced_lsn < wal->written_lsn) {
        rc = wal_issue(wal, WAL_OP_SYNC, wal->filling);
        if (rc == 0)
            rc = wal_wait_idle(wal);
    }
    return rc;
}

int wal_segment_next(struct rush_wal *wal)
{
    int rc = wal_fault(wal, RUSH_WAL_IO_CREATE, wal->next_lsn);
    if (rc == 0)
        rc = wal_segment_create(wal);
    if (rc < 0) {
        char name[RUSH_WAL_SEGMENT_NAME_MAX];
        rush_wal_segment_name(name, sizeof(name), wal->config.shard_index, wal->next_lsn);
        return wal_fail(wal, rc, "creating and preallocating %" PRIu64 " bytes for %s/%s",
                        wal->config.segment_bytes, wal->dir, name);
    }
    return 0;
}

/* Drains, closes the current segment, creates the next one at next_lsn (wal.h invariant 4). */
static int wal_roll(struct rush_wal *wal)
{
    RUSH_ASSERT(wal->config.mode != RUSH_WAL_NONE);
    int rc = wal_drain(wal);
    if (rc < 0)
        return rc;
    RUSH_ASSERT(wal->written_lsn == wal->next_lsn - 1 && wal->flight.op == WAL_OP_IDLE);
    if (wal->segment_fd >= 0)
        close(wal->segment_fd);
    wal->segment_fd = -1;
    return wal_segment_next(wal);
}

/* Makes room for `bytes` in the filling buffer and the segment: may roll, submit and wait. */
static int wal_make_room(struct rush_wal *wal, uint32_t bytes)
{
    struct rush_wal_buffer *filling = &wal->buffers[wal->filling];
    int rc = 0;
    if (wal->config.mode != RUSH_WAL_NONE &&
        wal->segment_reserved + bytes > wal->segment_capacity) {
        rc = wal_roll(wal);
        if (rc < 0)
            return rc;
        filling = &wal->buffers[wal->filling];
    }
    if (filling->used + bytes <= wal->config.buffer_bytes_max)
        return 0;
    rc = wal_wait_idle(wal);
    if (rc == 0)
        rc = wal_issue_filling(wal);
    return rc;
}

int rush_wal_append(struct rush_wal *wal, int64_t time_ns, const struct rush_event *events,
                    uint32_t count)
{
    RUSH_ASSERT(wal != NULL && (events != NULL || count == 0));
    if (wal->failed)
        return RUSH_EWAL;
    if (count > rush_wal_batch_events_max(wal))
        return -EMSGSIZE;
    uint32_t bytes = (uint32_t)rush_wal_batch_bytes(count);
    int rc = wal_make_room(wal, bytes);
    if (rc < 0)
        return rc;
    struct rush_wal_buffer *filling = &wal->buffers[wal->filling];
    if (filling->used == 0)
        filling->file_offset = wal->segment_reserved;
    struct rush_wal_header header = {
        .magic = RUSH_WAL_MAGIC,
        .version = RUSH_WAL_VERSION,
        .shard_index = wal->config.shard_index,
        .event_count = count,
        .lsn = wal->next_lsn,
        .time_ns = time_ns,
        .events_checksum = rush_wal_events_checksum(events, count),
        .prev_checksum = wal->chain,
        .seq_before = wal->appended_seq,
    };
    rush_wal_header_seal(&header);
    uint8_t *at = filling->bytes + filling->used;
    memcpy(at, &header, sizeof(header));
    if (count > 0)
        memcpy(at + RUSH_WAL_HEADER_BYTES, events, (size_t)count * sizeof(*events));
    filling->used += bytes;
    filling->lsn_last = wal->next_lsn;
    wal->segment_reserved += bytes;
    wal->chain = header.header_checksum;
    wal->next_lsn++;
    wal->appended_seq += rush_stream_count(events, count);
    wal->stats.batches++;
    wal->stats.events += count;
    wal_check(wal);
    return 0;
}

int rush_wal_submit(struct rush_wal *wal)
{
    RUSH_ASSERT(wal != NULL);
    if (wal->failed)
        return RUSH_EWAL;
    if (wal->buffers[wal->filling].used == 0)
        return 0;
    wal->submit_wanted = true;
    int rc = wal_pump(wal);
    wal_check(wal);
    return rc;
}

int64_t rush_wal_poll(struct rush_wal *wal, bool wait)
{
    RUSH_ASSERT(wal != NULL);
    if (wal->failed)
        return RUSH_EWAL;
    int rc = wal_reap(wal, wait);
    if (rc == 0)
        rc = wal_pump(wal);
    if (rc < 0)
        return rc;
    wal_check(wal);
    RUSH_ASSERT(wal->durable_lsn < (uint64_t)INT64_MAX);
    return (int64_t)wal->durable_lsn;
}

uint32_t rush_wal_batch_events_max(const struct rush_wal *wal)
{
    return (wal->config.buffer_bytes_max - RUSH_WAL_HEADER_BYTES) / sizeof(struct rush_event);
}

uint64_t rush_wal_appended_lsn(const struct rush_wal *wal)
{
    return wal->next_lsn - 1;
}

uint64_t rush_wal_appended_seq(const struct rush_wal *wal)
{
    return wal->appended_seq;
}

uint64_t rush_wal_durable_lsn(const struct rush_wal *wal)
{
    return wal->durable_lsn;
}

uint64_t rush_wal_synced_lsn(const struct rush_wal *wal)
{
    return wal->synced_lsn;
}

int rush_wal_error(const struct rush_wal *wal, const char **text)
{
    if (text != NULL)
        *text = wal->failed ? wal->error_text : "";
    return wal->failed ? wal->error : 0;
}

bool rush_wal_uses_uring(const struct rush_wal *wal)
{
    return wal->use_uring;
}

void rush_wal_stats(const struct rush_wal *wal, struct rush_wal_stats *stats)
{
    *stats = wal->stats;
}
