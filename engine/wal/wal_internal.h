/*
 * wal_internal.h — the writer's state, shared by wal.c (append path, rolls), wal_open.c (set-up,
 * tear-down) and segment.c (segment files). Not for use outside the WAL module.
 *
 * Thread: the shard's thread only.
 */
#ifndef RUSH_WAL_INTERNAL_H
#define RUSH_WAL_INTERNAL_H

#include <liburing.h>

#include "wal.h"
#include "wal_record.h"

enum wal_op {
    WAL_OP_IDLE = 0,
    WAL_OP_WRITE_SYNC = 1, /* fsync mode: write linked to fdatasync */
    WAL_OP_WRITE = 2,      /* async mode */
    WAL_OP_SYNC = 3,       /* async mode flush */
};

/* user_data tags of the three kinds of completion. */
#define WAL_TAG_WRITE 1u
#define WAL_TAG_SYNC 2u
#define WAL_TAG_FLUSH 3u /* the async mode's side flush (struct rush_wal_flush) */

struct rush_wal_buffer {
    uint8_t *bytes;       /* buffer_bytes_max, 4096-aligned */
    uint32_t used;        /* bytes of whole batches */
    uint64_t file_offset; /* where bytes[0] goes in the current segment */
    uint64_t lsn_last;    /* last batch in it (0: empty) */
};

/* The operation in flight (or, for the fallback engine, being done). */
struct rush_wal_flight {
    enum wal_op op;
    uint32_t buffer_index;
    uint32_t cqes_pending;
    uint32_t length;
    uint64_t offset;
    uint64_t lsn;         /* what completing it makes written / synced */
    int32_t write_result; /* bytes, or -errno */
    int32_t sync_result;  /* 0, or -errno */
    int64_t issued_ns;
    int write_fault; /* injected by the test hook */
    int sync_fault;
};

/*
 * Async mode with io_uring: the flush timer's fdatasync, in flight beside the write operation, so
 * that a slow fdatasync (one ext4 journal shared with every other file) never holds up the writes
 * the replies wait for (wal.h invariant 1).
 */
struct rush_wal_flush {
    bool in_flight;
    uint64_t lsn; /* written_lsn when issued: what its completion makes synced */
    int64_t issued_ns;
    int fault; /* injected by the test hook */
};

struct rush_wal {
    struct rush_wal_config config;
    char dir[RUSH_WAL_DIR_MAX];
    int dir_fd;
    int segment_fd;
    char segment_name[RUSH_WAL_SEGMENT_NAME_MAX];
    uint64_t segment_capacity; /* bytes */
    uint64_t segment_reserved; /* bytes taken by batches, written or still in a buffer */

    struct rush_wal_buffer buffers[2];
    uint32_t filling;   /* index of the filling buffer */
    bool submit_wanted; /* submit was called while an operation was in flight */
    bool use_uring;
    struct io_uring ring;
    struct rush_wal_flight flight;
    struct rush_wal_flush flush;

    uint64_t next_lsn;     /* the lsn the next append gets */
    uint64_t appended_seq; /* stream events appended so far: seq_before of the next batch */
    uint64_t chain;        /* header checksum of the last batch appended */
    uint64_t submitted_lsn;
    uint64_t written_lsn;
    uint64_t synced_lsn;
    uint64_t durable_lsn;
    int64_t last_sync_ns;

    bool failed;
    int error;
    char error_text[256];
    struct rush_wal_stats stats;
};

/* Fails the log (sticky), prints one line; returns RUSH_EWAL. */
__attribute__((format(printf, 3, 4))) int wal_fail(struct rush_wal *wal, int error,
                                                   const char *format, ...);
/* The test hook's verdict on an I/O: 0 or -errno. */
int wal_fault(struct rush_wal *wal, enum rush_wal_io io, uint64_t lsn);
int64_t wal_now_ns(const struct rush_wal *wal);
void wal_check(const struct rush_wal *wal);
/* Waits until no write (or fsync-mode write + fdatasync) is in flight; a side flush may be. */
RUSH_MUST_USE int wal_wait_idle(struct rush_wal *wal);
/* Waits until the side flush (if any) has completed. */
RUSH_MUST_USE int wal_wait_flushed(struct rush_wal *wal);
/* Writes out everything appended and waits; async mode also fdatasyncs. */
RUSH_MUST_USE int wal_drain(struct rush_wal *wal);
/* Creates the segment whose first batch is next_lsn (asking the fault hook first); fails the
 * log on error. */
RUSH_MUST_USE int wal_segment_next(struct rush_wal *wal);

/* segment.c: files only; -errno, never fails the log itself. */
RUSH_MUST_USE int wal_segment_preallocate(int fd, uint64_t bytes);
/* Creates the segment whose first batch is next_lsn and makes it current. */
RUSH_MUST_USE int wal_segment_create(struct rush_wal *wal);
/* Zeroes [offset, offset + bytes) of the current segment, using buffers[0] as the zeros. */
RUSH_MUST_USE int wal_segment_zero(struct rush_wal *wal, uint64_t offset, uint64_t bytes);
/* Removes the shard's segments whose first lsn is after tail_lsn; counts them in *removed. */
RUSH_MUST_USE int wal_segment_remove_after(struct rush_wal *wal, uint64_t tail_lsn,
                                           uint32_t *removed);

#endif
