/*
 * wal_open.c — setting up and tearing down a WAL writer.
 *
 * Workload: open and close once per process run per shard. Everything the writer needs is
 * allocated here, in rush_wal_open.
 *
 * Layering (no call loops): wal_open.c calls wal.c (drain, fail, the first segment) and
 * segment.c (files); wal.c calls segment.c (rolls); segment.c calls neither.
 *
 * Invariants:
 *   1. A segment is preallocated, fsync'ed, and its directory entry fsync'ed before a batch is
 *      written to it (segment.c).
 *   2. Open continues exactly after the last good batch replay found: the torn bytes after it
 *      are zeroed and the segments after it removed before anything is appended.
 *   3. Close never fdatasyncs a failed log (wal.h invariant 3).
 *
 * Thread: the shard's thread (open and close may run on the thread that starts the shard).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/why.h"
#include "rush/assert.h"
#include "wal_internal.h"

#define WAL_RING_ENTRIES 8u
#define WAL_BUFFER_ALIGN_BYTES 4096u

void rush_wal_config_default(struct rush_wal_config *config, const char *dir, uint32_t shard_index)
{
    RUSH_ASSERT(config != NULL);
    memset(config, 0, sizeof(*config));
    config->dir = dir;
    config->shard_index = shard_index;
    config->segment_bytes = UINT64_C(64) << 20;
    config->buffer_bytes_max = 4u << 20;
    config->mode = RUSH_WAL_FSYNC;
    config->flush_interval_ms = 5;
}

static int config_refuse(char *why, size_t why_size, const char *reason)
{
    return rush__refuse(RUSH_ECONFIG, why, why_size, "wal config: %s", reason);
}

int rush_wal_config_check(const struct rush_wal_config *config, char *why, size_t why_size)
{
    RUSH_ASSERT(config != NULL);
    if (config->dir == NULL || config->dir[0] == '\0' || strlen(config->dir) >= RUSH_WAL_DIR_MAX)
        return config_refuse(why, why_size, "dir is missing or too long");
    if (config->shard_index >= RUSH_SHARDS_MAX)
        return config_refuse(why, why_size, "shard_index >= RUSH_SHARDS_MAX");
    if (config->segment_bytes < RUSH_WAL_SEGMENT_BYTES_MIN ||
        config->segment_bytes > RUSH_WAL_SEGMENT_BYTES_MAX || config->segment_bytes % 4096 != 0)
        return config_refuse(why, why_size, "segment_bytes must be a multiple of 4096 in range");
    if (config->buffer_bytes_max < RUSH_WAL_BUFFER_BYTES_MIN ||
        config->buffer_bytes_max > RUSH_WAL_BUFFER_BYTES_MAX ||
        config->buffer_bytes_max % RUSH_WAL_ALIGN_BYTES != 0)
        return config_refuse(why, why_size, "buffer_bytes_max must be a multiple of 64 in range");
    if (config->buffer_bytes_max > config->segment_bytes)
        return config_refuse(why, why_size, "buffer_bytes_max exceeds segment_bytes");
    if ((unsigned)config->mode > RUSH_WAL_NONE)
        return config_refuse(why, why_size, "unknown mode");
    switch (config->mode) {
    case RUSH_WAL_FSYNC:
        break;
    case RUSH_WAL_NONE:
        break;
    case RUSH_WAL_ASYNC:
        if (config->flush_interval_ms == 0 ||
            config->flush_interval_ms > RUSH_WAL_FLUSH_INTERVAL_MS_MAX)
            return config_refuse(why, why_size, "flush_interval_ms out of range");
        break;
    }
    return 0;
}

/* Decides the I/O engine: io_uring unless refused or disabled. */
static void wal_uring_init(struct rush_wal *wal)
{
    static atomic_bool told;
    const char *env = getenv("RUSH_WAL_NO_URING");
    wal->use_uring = false;
    if (wal->config.force_no_uring || (env != NULL && strcmp(env, "1") == 0))
        return;
    int rc = io_uring_queue_init(WAL_RING_ENTRIES, &wal->ring, 0);
    if (rc == 0) {
        wal->use_uring = true;
        return;
    }
    if (!atomic_exchange(&told, true))
        rush_log(RUSH_LOG_WARN,
                 "rush wal: io_uring refused (%s%s); using pwrite + fdatasync, one batch at a "
                 "time (allow io_uring_setup/io_uring_enter in the seccomp profile to fix)",
                 strerror(-rc),
                 rc == -EPERM || rc == -ENOSYS ? ", e.g. a container's seccomp" : "");
}

/* A fresh log: the directory must hold no segment of this shard. */
static int wal_open_fresh(struct rush_wal *wal)
{
    uint64_t *lsns = NULL;
    int count = rush_wal_segments_list(wal->dir_fd, wal->config.shard_index, &lsns);
    free(lsns);
    if (count < 0)
        return count;
    if (count > 0) {
        rush_log(RUSH_LOG_ERROR, "rush wal: shard %" PRIu32 ": %s holds %d segments; replay first",
                 wal->config.shard_index, wal->dir, count);
        return -EEXIST;
    }
    return wal_segment_next(wal) < 0 ? wal->error : 0;
}

/* Continues the log where replay left it (wal.h, rush_wal_open). */
static int wal_open_tail(struct rush_wal *wal, const struct rush_wal_recovery *recovery)
{
    uint32_t removed = 0;
    int rc = wal_segment_remove_after(wal, recovery->tail_segment_lsn, &removed);
    if (rc < 0)
        return rc;
    char name[RUSH_WAL_SEGMENT_NAME_MAX];
    rush_wal_segment_name(name, sizeof(name), wal->config.shard_index, recovery->tail_segment_lsn);
    int fd = openat(wal->dir_fd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    if (rc == 0 && (recovery->tail_offset > (uint64_t)st.st_size ||
                    recovery->tail_offset % RUSH_WAL_ALIGN_BYTES != 0))
        rc = -EINVAL; /* a recovery that does not describe this directory */
    wal->segment_fd = fd;
    if (rc == 0 && (uint64_t)st.st_size < wal->config.segment_bytes)
        rc = wal_segment_preallocate(fd, wal->config.segment_bytes);
    if (rc == 0 && recovery->tail_cut_bytes > 0)
        rc = wal_segment_zero(wal, recovery->tail_offset, recovery->tail_cut_bytes);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (rc == 0 && removed > 0 && fsync(wal->dir_fd) < 0)
        rc = -errno;
    if (rc < 0)
        return rc; /* the caller closes segment_fd */
    memcpy(wal->segment_name, name, sizeof(name));
    uint64_t size = (uint64_t)st.st_size;
    wal->segment_capacity = size > wal->config.segment_bytes ? size : wal->config.segment_bytes;
    wal->segment_reserved = recovery->tail_offset;
    return 0;
}

static void wal_start_lsns(struct rush_wal *wal, const struct rush_wal_recovery *recovery)
{
    wal->next_lsn = recovery != NULL ? recovery->last_lsn + 1 : 1;
    wal->chain = recovery != NULL ? recovery->last_checksum : 0;
    wal->appended_seq = recovery != NULL ? recovery->last_seq : 0;
    /* What replay found is on disk: it counts as written and synced. */
    wal->submitted_lsn = wal->next_lsn - 1;
    wal->written_lsn = wal->next_lsn - 1;
    wal->synced_lsn = wal->next_lsn - 1;
    wal->durable_lsn = wal->next_lsn - 1;
    wal->last_sync_ns = wal_now_ns(wal);
}

int rush_wal_open(const struct rush_wal_config *config, const struct rush_wal_recovery *recovery,
                  struct rush_wal **out)
{
    RUSH_ASSERT(config != NULL && out != NULL);
    *out = NULL;
    int rc = rush_wal_config_check(config, NULL, 0);
    if (rc < 0)
        return rc;
    struct rush_wal *wal = calloc(1, sizeof(*wal));
    if (wal == NULL)
        return -ENOMEM;
    wal->config = *config;
    snprintf(wal->dir, sizeof(wal->dir), "%s", config->dir);
    wal->config.dir = wal->dir;
    wal->dir_fd = -1;
    wal->segment_fd = -1;
    size_t buffer_bytes = (config->buffer_bytes_max + WAL_BUFFER_ALIGN_BYTES - 1) /
                          WAL_BUFFER_ALIGN_BYTES * WAL_BUFFER_ALIGN_BYTES;
    for (uint32_t i = 0; i < 2; i++) {
        void *bytes = NULL;
        rc = -posix_memalign(&bytes, WAL_BUFFER_ALIGN_BYTES, buffer_bytes);
        if (rc < 0)
            goto out_free_buffers;
        wal->buffers[i].bytes = bytes;
    }
    wal_start_lsns(wal, recovery);
    if (config->mode != RUSH_WAL_NONE) {
        wal->dir_fd = open(wal->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (wal->dir_fd < 0) {
            rc = -errno;
            goto out_free_buffers;
        }
        bool fresh = recovery == NULL || recovery->tail_segment_lsn == 0;
        rc = fresh ? wal_open_fresh(wal) : wal_open_tail(wal, recovery);
        if (rc < 0)
            goto out_close_files;
        wal_uring_init(wal);
    }
    wal_check(wal);
    *out = wal;
    return 0;
out_close_files:
    if (wal->segment_fd >= 0)
        close(wal->segment_fd);
    close(wal->dir_fd);
out_free_buffers:
    free(wal->buffers[0].bytes);
    free(wal->buffers[1].bytes);
    free(wal);
    return rc;
}

/* Takes in the completions of an operation left in flight by a failure, so buffers can go. */
static void wal_ring_exit(struct rush_wal *wal)
{
    for (uint32_t round = 0; (wal->flight.cqes_pending > 0 || wal->flush.in_flight) && round < 1024;
         round++) {
        struct io_uring_cqe *cqe = NULL;
        int rc = io_uring_wait_cqe(&wal->ring, &cqe);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            break;
        if (cqe->user_data == WAL_TAG_FLUSH)
            wal->flush.in_flight = false;
        else if (wal->flight.cqes_pending > 0)
            wal->flight.cqes_pending--;
        io_uring_cqe_seen(&wal->ring, cqe);
    }
    io_uring_queue_exit(&wal->ring);
}

int rush_wal_close(struct rush_wal *wal)
{
    if (wal == NULL)
        return 0;
    int rc = 0;
    if (!wal->failed && wal->config.mode != RUSH_WAL_NONE)
        rc = wal_drain(wal);
    if (wal->failed)
        rc = RUSH_EWAL;
    if (wal->use_uring)
        wal_ring_exit(wal);
    if (wal->segment_fd >= 0)
        close(wal->segment_fd);
    if (wal->dir_fd >= 0)
        close(wal->dir_fd);
    free(wal->buffers[0].bytes);
    free(wal->buffers[1].bytes);
    free(wal);
    return rc;
}
