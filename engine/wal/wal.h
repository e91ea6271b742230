/*
 * wal.h — the per-shard write-ahead log: group commit with io_uring, segments, recovery.
 *
 * What it is for. A shard decides a batch of requests in memory, appends the batch's events
 * here, and holds the replies until the batch is durable (ARCHITECTURE.md "Durability"). One
 * write and one fdatasync cover every batch appended since the previous write (group commit).
 *
 * Workload. One writer thread per shard appending batches of 1..~16k events (64 B each) at up to
 * a few hundred thousand events per second; fdatasync latency (0.05..10 ms) is the cost being
 * shared. Two buffers of buffer_bytes_max each, allocated at open; the append path does not
 * allocate.
 *
 * LSN. Every rush_wal_append() makes one batch with the next batch sequence number (lsn): 1, 2,
 * 3, ... per shard, without gaps, across segments and restarts. "durable_lsn" is the highest
 * lsn such that it and every batch before it count as durable for the configured mode:
 *   RUSH_WAL_FSYNC  written and fdatasync'ed (the default; what replies must wait for).
 *   RUSH_WAL_ASYNC  written to the page cache; an fdatasync follows within flush_interval_ms
 *                   (driven by rush_wal_poll). Risk: a power loss (not a process crash) can lose
 *                   the last flush_interval_ms of acknowledged batches, and since the page cache
 *                   writes back in any order, can leave a hole that recovery reports as
 *                   corruption.
 *   RUSH_WAL_NONE   no I/O at all: batches are encoded and dropped. Benchmarks only.
 * rush_wal_synced_lsn() is the lsn really covered by a completed fdatasync in every mode.
 *
 * State of the writer (the two buffers alternate between filling and in flight):
 *
 *        append              submit (nothing in flight)         completion
 *   EMPTY ------> FILLING ----------------------------> IN FLIGHT ---------> EMPTY (durable)
 *                   |  submit while one is in flight: queued; poll() issues it when the
 *                   |  in-flight one completes
 *   any failed write, fdatasync, segment creation ----> FAILED (sticky; every call returns
 *                                                        RUSH_EWAL; rush_wal_error says why)
 *
 *   function                 transition
 *   rush_wal_append          EMPTY/FILLING -> FILLING (may submit and wait when full or rolling)
 *   rush_wal_submit          FILLING -> IN FLIGHT, or marks it queued
 *   rush_wal_poll            IN FLIGHT -> EMPTY; issues a queued buffer; async flush timer
 *
 * Invariants:
 *   1. At most one operation (write+fdatasync, write, or fdatasync) is in flight; in async mode
 *      with io_uring the flush timer's fdatasync runs beside it (the side flush, at most one),
 *      covering what was written when it was issued, so no write ever waits for an fdatasync
 *      (a snapshot's or another file's I/O can make one take a few hundred ms on ext4).
 *   2. durable_lsn <= submitted lsn <= appended lsn; durable_lsn never advances past an
 *      operation that completed in full; after a failure it never advances again.
 *   3. No fdatasync is issued on any file after a write or fdatasync failed (Linux may drop
 *      the dirty pages and report the error only once; a retry would falsely succeed).
 *   4. Batches of one buffer go to one segment at consecutive offsets; a roll drains every
 *      buffer (and, in async mode, fdatasyncs) before the next segment is created, so a segment
 *      is complete on disk before the next one holds anything.
 *
 * io_uring. The write and the fdatasync are submitted together as one linked pair
 * (IOSQE_IO_LINK). When io_uring_queue_init() fails (-EPERM or -ENOSYS under a default Docker
 * seccomp profile, or anything else) one line is printed to stderr and the WAL uses the
 * fallback: rush_wal_submit() does pwrite + fdatasync synchronously on the calling thread. The
 * semantics are the same; only the overlap of filling and writing is lost. force_no_uring or
 * RUSH_WAL_NO_URING=1 in the environment selects the fallback without the message.
 *
 * Segments are preallocated with fallocate (ftruncate where unsupported); the directory is
 * fsync'ed when one is created. Creating a segment is synchronous on the shard thread (once per
 * segment_bytes).
 *
 * Thread: a struct rush_wal is used by one thread only (its shard's). rush_wal_replay and
 * rush_wal_remove_below work on files and may run on any thread; remove may run while the
 * writer is open (it never removes the newest segment).
 */
#ifndef RUSH_WAL_H
#define RUSH_WAL_H

#include <stdbool.h>
#include <stdint.h>

#include "rush/engine.h"
#include "rush/types.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rush_wal_mode {
    RUSH_WAL_FSYNC = 0, /* ack after fdatasync (default) */
    RUSH_WAL_ASYNC = 1, /* ack after write; fdatasync every flush_interval_ms */
    RUSH_WAL_NONE = 2,  /* no I/O; benchmarks only */
};

/* The I/O a test fault hook may fail. */
enum rush_wal_io {
    RUSH_WAL_IO_WRITE = 0,
    RUSH_WAL_IO_SYNC = 1,
    RUSH_WAL_IO_CREATE = 2, /* creating and preallocating a segment */
};

/*
 * Test hook: called before each I/O; returning -errno makes that I/O fail with that error as if
 * the kernel had returned it (the write or fdatasync is then not done). `lsn` is the last lsn the
 * I/O covers (CREATE: the new segment's first lsn). NULL in production.
 */
typedef int (*rush_wal_fault_fn)(void *context, enum rush_wal_io io, uint64_t lsn);

#define RUSH_WAL_SEGMENT_BYTES_MIN (UINT64_C(4096))
#define RUSH_WAL_SEGMENT_BYTES_MAX (UINT64_C(1) << 40)
#define RUSH_WAL_BUFFER_BYTES_MIN 128u       /* one header and one event */
#define RUSH_WAL_BUFFER_BYTES_MAX (1u << 30) /* 1 GiB */
#define RUSH_WAL_FLUSH_INTERVAL_MS_MAX 60000u
#define RUSH_WAL_DIR_MAX 1024

struct rush_wal_config {
    const char *dir;           /* must exist; copied at open */
    uint32_t shard_index;      /* < RUSH_SHARDS_MAX */
    uint64_t segment_bytes;    /* a multiple of 4096; >= buffer_bytes_max */
    uint32_t buffer_bytes_max; /* one of the two batch buffers; a multiple of 64 */
    enum rush_wal_mode mode;
    uint32_t flush_interval_ms; /* async mode: 1..RUSH_WAL_FLUSH_INTERVAL_MS_MAX */
    bool force_no_uring;        /* use the pwrite + fdatasync fallback */
    rush_clock_fn clock;        /* async flush timer; NULL: CLOCK_MONOTONIC */
    void *clock_context;
    rush_wal_fault_fn fault; /* tests only */
    void *fault_context;
};

/* 64 MiB segments, 4 MiB buffers, fsync mode, 5 ms async interval. */
void rush_wal_config_default(struct rush_wal_config *config, const char *dir, uint32_t shard_index);
/* 0, or RUSH_ECONFIG with the reason in why[] (why may be NULL). */
RUSH_MUST_USE int rush_wal_config_check(const struct rush_wal_config *config, char *why,
                                        size_t why_size);

/*
 * What replay found; what rush_wal_open needs to continue the log. All zero for an empty
 * directory.
 */
struct rush_wal_recovery {
    uint64_t first_lsn;        /* first batch replayed (0: none) */
    uint64_t last_lsn;         /* last good batch; the next append gets last_lsn + 1 */
    uint64_t last_checksum;    /* its header checksum: the chain the next batch continues */
    uint64_t last_seq;         /* stream events up to and including the last good batch */
    uint64_t batch_count;      /* batches replayed */
    uint64_t event_count;      /* events replayed */
    uint32_t segment_count;    /* segment files found */
    uint64_t tail_segment_lsn; /* first lsn (name) of the segment to continue (0: none) */
    uint64_t tail_offset;      /* byte offset after the last good batch in that segment */
    uint64_t tail_cut_bytes;   /* torn bytes found after tail_offset there, zeroed by open */
    bool torn;                 /* a torn tail was cut (a warning was printed) */
    char message[256];         /* the corruption, or the cut; empty when clean */
};

/*
 * Called for each good batch in lsn order. `events` points into a read-only mapping of the
 * segment and is valid during the call only. Return 0 to go on, < 0 to stop the replay with
 * that value.
 */
typedef int (*rush_wal_replay_fn)(void *context, uint64_t lsn, int64_t time_ns,
                                  const struct rush_event *events, uint32_t count);

/*
 * Reads the shard's segments in order, verifying every checksum, the lsn sequence and the chain.
 * A torn tail (a last batch cut short: past the end of the file or into never-written zero
 * slots, with nothing valid after it anywhere, or non-zero garbage after the last batch) is cut
 * with a warning on stderr: out->torn, tail_offset and tail_cut_bytes say where; nothing is
 * written here, rush_wal_open() does the cut. A complete batch that fails a checksum, even the
 * last one, and damage before the tail (a bad batch followed by a valid one, an lsn gap, a chain
 * break, a segment that does not continue the one before) return RUSH_ECORRUPT with out->message
 * naming the segment file and byte offset (wal_replay.c says how a tear is told from damage). The
 * callback sees every good batch before the damage, so a caller must treat its state as unusable on
 * error. Returns 0, RUSH_ECORRUPT, -errno, or the callback's value.
 */
RUSH_MUST_USE int rush_wal_replay(const char *dir, uint32_t shard_index, rush_wal_replay_fn fn,
                                  void *context, struct rush_wal_recovery *out);

/*
 * Removes the segments whose batches all have lsn < `lsn` (those followed by a segment whose
 * first lsn is <= lsn), never the newest one, then fsyncs the directory. For snapshots: pass
 * the lsn after the snapshot's last batch. Returns the number of files removed, or < 0.
 */
RUSH_MUST_USE int rush_wal_remove_below(const char *dir, uint32_t shard_index, uint64_t lsn);

struct rush_wal;

/*
 * Opens the shard's log for appending after `recovery` (from rush_wal_replay on the same
 * directory; NULL when the directory holds no segment of this shard, which is checked). Cuts a
 * torn tail: zeroes tail_cut_bytes, removes segments after the tail segment, syncs. Returns 0,
 * RUSH_ECONFIG, -EEXIST (segments but no recovery), or -errno.
 */
RUSH_MUST_USE int rush_wal_open(const struct rush_wal_config *config,
                                const struct rush_wal_recovery *recovery, struct rush_wal **out);
/*
 * Writes and syncs whatever was appended (unless failed), waits for I/O in flight, frees. Returns
 * 0, or RUSH_EWAL when the log failed before or during close (what was appended after
 * rush_wal_durable_lsn() may be lost).
 */
RUSH_MUST_USE int rush_wal_close(struct rush_wal *wal);

/*
 * Copies one batch (header + events) into the filling buffer; the batch gets lsn
 * rush_wal_appended_lsn(wal) afterwards. When the buffer has no room, or the segment is full,
 * submits and waits for I/O first (back-pressure). count may be 0 (a time stamp only). Returns
 * 0; -EMSGSIZE when the batch can never fit a buffer (nothing appended; not sticky); RUSH_EWAL
 * when failed.
 */
RUSH_MUST_USE int rush_wal_append(struct rush_wal *wal, int64_t time_ns,
                                  const struct rush_event *events, uint32_t count);
/* Most events one rush_wal_append can take with this configuration. */
uint32_t rush_wal_batch_events_max(const struct rush_wal *wal);
/* The lsn of the last batch appended (0 before the first ever). */
uint64_t rush_wal_appended_lsn(const struct rush_wal *wal);
/* Stream events (rush/stream.h) in every batch appended so far: the newest appended seq. */
uint64_t rush_wal_appended_seq(const struct rush_wal *wal);

/*
 * Hands the filling buffer to the kernel if nothing is in flight, else marks it to go as soon
 * as the operation in flight completes (in rush_wal_poll). Without io_uring, writes and syncs
 * here. Returns 0 or RUSH_EWAL.
 */
RUSH_MUST_USE int rush_wal_submit(struct rush_wal *wal);

/*
 * Reaps completions (waiting for the operation in flight when `wait`), issues a queued buffer,
 * runs the async flush timer. Returns durable_lsn (>= 0) or RUSH_EWAL. A caller waiting for
 * lsn L loops `while (durable < L) durable = rush_wal_poll(wal, true)` after rush_wal_submit;
 * it takes at most two rounds. In async mode call it at least every flush_interval_ms.
 */
RUSH_MUST_USE int64_t rush_wal_poll(struct rush_wal *wal, bool wait);

/* durable_lsn as poll last found it (see the mode table above). */
uint64_t rush_wal_durable_lsn(const struct rush_wal *wal);
/* The lsn covered by a completed fdatasync, in any mode (0 in none mode). */
uint64_t rush_wal_synced_lsn(const struct rush_wal *wal);
/* 0 when healthy; else the -errno or RUSH_E* that failed it, and *text (if not NULL) says why. */
int rush_wal_error(const struct rush_wal *wal, const char **text);
bool rush_wal_uses_uring(const struct rush_wal *wal);

struct rush_wal_stats {
    uint64_t batches;       /* appended */
    uint64_t events;        /* appended */
    uint64_t writes;        /* completed */
    uint64_t syncs;         /* completed fdatasyncs */
    uint64_t bytes_written; /* completed */
    uint64_t segments_created;
    uint64_t sync_latency_ns_last; /* issue to completion of the last fdatasync'ing operation */
};
void rush_wal_stats(const struct rush_wal *wal, struct rush_wal_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
