/*
 * segment.c — the WAL's segment files: creating and preallocating the next one, zeroing a torn
 * tail, removing the segments a recovery found nothing valid in.
 *
 * Workload: a segment is created every segment_bytes of log (64 MiB by default), synchronously on
 * the shard thread; the tail is zeroed and later segments removed once per start.
 *
 * Layering: this file is the bottom of the writer. It calls nothing in wal.c or wal_open.c and
 * never fails the log itself: it returns -errno and the caller (wal.c for a roll, wal_open.c at
 * open) decides what the failure means (wal_fail, a refused open). The fault hook is consulted by
 * the caller too, so that every injected failure goes through one place (wal_fault in wal.c).
 *
 * Invariants:
 *   1. A segment is preallocated, fsync'ed, and its directory entry fsync'ed before
 *      wal_segment_create returns it; on failure the half-made file is removed.
 *   2. Segment names come from rush_wal_segment_name only (wal_record.c), one name per first lsn.
 *
 * Thread: the shard's thread (or the thread opening the log).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rush/assert.h"
#include "wal_internal.h"

/* Zeroing goes a buffer at a time; a few spare rounds absorb EINTR. */
#define SEGMENT_ZERO_SPARE_ROUNDS_MAX 8u

int wal_segment_preallocate(int fd, uint64_t bytes)
{
    RUSH_ASSERT(fd >= 0 && bytes > 0);
    if (fallocate(fd, 0, 0, (off_t)bytes) == 0)
        return 0;
    if (errno != EOPNOTSUPP)
        return -errno;
    /* A file system without fallocate: a sparse file of the right size. */
    return ftruncate(fd, (off_t)bytes) == 0 ? 0 : -errno;
}

int wal_segment_create(struct rush_wal *wal)
{
    RUSH_ASSERT(wal->segment_fd < 0 && wal->dir_fd >= 0);
    char name[RUSH_WAL_SEGMENT_NAME_MAX];
    rush_wal_segment_name(name, sizeof(name), wal->config.shard_index, wal->next_lsn);
    int fd = openat(wal->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = wal_segment_preallocate(fd, wal->config.segment_bytes);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (rc == 0 && fsync(wal->dir_fd) < 0)
        rc = -errno;
    if (rc < 0)
        goto out_remove_file;
    wal->segment_fd = fd;
    memcpy(wal->segment_name, name, sizeof(name));
    wal->segment_capacity = wal->config.segment_bytes;
    wal->segment_reserved = 0;
    wal->stats.segments_created++;
    return 0;
out_remove_file:
    close(fd);
    unlinkat(wal->dir_fd, name, 0);
    return rc;
}

int wal_segment_zero(struct rush_wal *wal, uint64_t offset, uint64_t bytes)
{
    RUSH_ASSERT(wal->segment_fd >= 0);
    uint8_t *zeros = wal->buffers[0].bytes;
    uint32_t chunk_max = wal->config.buffer_bytes_max;
    memset(zeros, 0, chunk_max);
    uint64_t rounds_max = bytes / chunk_max + SEGMENT_ZERO_SPARE_ROUNDS_MAX;
    for (uint64_t done = 0, round = 0; done < bytes; round++) {
        if (round == rounds_max)
            return -EIO;
        uint64_t left = bytes - done;
        size_t chunk = left < chunk_max ? (size_t)left : chunk_max;
        ssize_t n = pwrite(wal->segment_fd, zeros, chunk, (off_t)(offset + done));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0)
            done += (uint64_t)n;
    }
    return 0;
}

int wal_segment_remove_after(struct rush_wal *wal, uint64_t tail_lsn, uint32_t *removed)
{
    uint64_t *lsns = NULL;
    int count = rush_wal_segments_list(wal->dir_fd, wal->config.shard_index, &lsns);
    if (count < 0)
        return count;
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        if (lsns[i] <= tail_lsn)
            continue;
        char name[RUSH_WAL_SEGMENT_NAME_MAX];
        rush_wal_segment_name(name, sizeof(name), wal->config.shard_index, lsns[i]);
        if (unlinkat(wal->dir_fd, name, 0) < 0)
            rc = -errno;
        else
            (*removed)++;
    }
    free(lsns);
    return rc;
}
