/*
 * data_dir.c — see data_dir.h: the record of a data directory's shard count and routing.
 *
 * Invariants:
 *   1. Once the record exists, no start with another shard count, routing version or routing
 *      result gets past rush_data_dir_claim; the record is never rewritten.
 *   2. The record is complete on disk (file and directory entry synced) before any shard's log is
 *      opened, so a crash cannot leave logs without it.
 *
 * Thread: the thread creating the engine.
 */
#include "data_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "rush/assert.h"
#include "snapshot.h"
#include "wal_record.h"

#define DATA_DIR_MAGIC UINT32_C(0x52494452) /* "RDIR" read as a little-endian u32 */

struct data_dir_record {
    uint32_t magic;
    uint16_t version;
    uint16_t flags;
    uint32_t shard_count;
    uint32_t routing;
    uint64_t routing_check;
    uint32_t id_shard_shift;
    uint8_t reserved[28];
    uint64_t checksum;
};
static_assert(sizeof(struct data_dir_record) == 64, "the record is 64 bytes");
static_assert(offsetof(struct data_dir_record, checksum) == 56, "checksum is last");

static uint64_t record_checksum(const struct data_dir_record *record)
{
    return XXH3_64bits(record, offsetof(struct data_dir_record, checksum));
}

__attribute__((format(printf, 4, 5))) static int refuse(char *why, size_t why_size, int rc,
                                                        const char *format, ...)
{
    va_list args;
    va_start(args, format);
    if (why != NULL && why_size > 0)
        vsnprintf(why, why_size, format, args);
    va_end(args);
    return rc;
}

/* Reads the record: 0, -ENOENT when there is none, RUSH_ECORRUPT when it is damaged. */
static int record_read(int dir_fd, struct data_dir_record *record)
{
    int fd = openat(dir_fd, RUSH_DATA_DIR_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = pread(fd, record, sizeof(*record), 0);
    int rc = n < 0 ? -errno : 0;
    char extra;
    if (rc == 0 && (n != (ssize_t)sizeof(*record) || pread(fd, &extra, 1, sizeof(*record)) != 0))
        rc = RUSH_ECORRUPT; /* not exactly 64 bytes */
    close(fd);
    if (rc == 0 &&
        (record->magic != DATA_DIR_MAGIC || record->checksum != record_checksum(record) ||
         record->version != RUSH_DATA_DIR_VERSION || record->flags != 0))
        rc = RUSH_ECORRUPT;
    return rc;
}

static int record_write(int dir_fd, const struct data_dir_record *record)
{
    static const char temporary[] = RUSH_DATA_DIR_FILE ".tmp";
    int fd = openat(dir_fd, temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    ssize_t n = pwrite(fd, record, sizeof(*record), 0);
    int rc = n == (ssize_t)sizeof(*record) ? 0 : n < 0 ? -errno : -EIO;
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && renameat(dir_fd, temporary, dir_fd, RUSH_DATA_DIR_FILE) < 0)
        rc = -errno;
    if (rc == 0 && fsync(dir_fd) < 0)
        rc = -errno;
    if (rc < 0)
        unlinkat(dir_fd, temporary, 0);
    return rc;
}

/* The highest shard index + 1 that any log segment or snapshot in the directory names. */
static int shards_in_files(const char *dir, int dir_fd, uint32_t *count)
{
    *count = 0;
    for (uint32_t shard = 0; shard < RUSH_SHARDS_MAX; shard++) {
        uint64_t *lsns = NULL;
        int segments = rush_wal_segments_list(dir_fd, shard, &lsns);
        free(lsns);
        lsns = NULL;
        int snapshots = segments < 0 ? 0 : rush_snapshot_list(dir, shard, &lsns);
        free(lsns);
        if (segments < 0 || snapshots < 0)
            return segments < 0 ? segments : snapshots;
        if (segments > 0 || snapshots > 0)
            *count = shard + 1;
    }
    return 0;
}

static void record_of(const struct rush_data_dir_layout *layout, struct data_dir_record *record)
{
    memset(record, 0, sizeof(*record));
    record->magic = DATA_DIR_MAGIC;
    record->version = RUSH_DATA_DIR_VERSION;
    record->shard_count = layout->shard_count;
    record->routing = layout->routing;
    record->routing_check = layout->routing_check;
    record->id_shard_shift = layout->id_shard_shift;
    record->checksum = record_checksum(record);
}

static int compare(const char *dir, const struct data_dir_record *found,
                   const struct rush_data_dir_layout *layout, char *why, size_t why_size)
{
    if (found->shard_count != layout->shard_count)
        return refuse(why, why_size, RUSH_ECONFIG,
                      "data directory %s was created with %u shards; this start asks for %u. A "
                      "SKU's shard depends on the shard count, so the logs of %u shards cannot "
                      "be read with %u (units would sell twice). rush has no re-shard tool: start "
                      "with %u shards, or on a new, empty data directory",
                      dir, found->shard_count, layout->shard_count, found->shard_count,
                      layout->shard_count, found->shard_count);
    if (found->routing != layout->routing || found->routing_check != layout->routing_check ||
        found->id_shard_shift != layout->id_shard_shift)
        return refuse(why, why_size, RUSH_ECONFIG,
                      "data directory %s was written with routing version %u (check %016lx, id "
                      "shift %u); this build routes with version %u (check %016lx, id shift %u): "
                      "SKUs would move shard. Use the build that wrote it, or a new data directory",
                      dir, found->routing, (unsigned long)found->routing_check,
                      found->id_shard_shift, layout->routing, (unsigned long)layout->routing_check,
                      layout->id_shard_shift);
    return 0;
}

int rush_data_dir_claim(const char *dir, const struct rush_data_dir_layout *layout, bool write,
                        char *why, size_t why_size)
{
    RUSH_ASSERT(dir != NULL && layout != NULL);
    RUSH_ASSERT(layout->shard_count >= 1 && layout->shard_count <= RUSH_SHARDS_MAX);
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return refuse(why, why_size, -errno, "data directory %s: %s", dir, strerror(errno));
    struct data_dir_record found;
    int rc = record_read(dir_fd, &found);
    if (rc == 0) {
        rc = compare(dir, &found, layout, why, why_size);
    } else if (rc == RUSH_ECORRUPT) {
        rc = refuse(why, why_size, rc, "%s/%s is damaged (not the 64-byte record of data_dir.h)",
                    dir, RUSH_DATA_DIR_FILE);
    } else if (rc == -ENOENT) {
        uint32_t in_files = 0;
        rc = shards_in_files(dir, dir_fd, &in_files);
        if (rc == 0 && in_files > layout->shard_count)
            rc = refuse(why, why_size, RUSH_ECONFIG,
                        "data directory %s holds logs of at least %u shards; this start asks for "
                        "%u. rush has no re-shard tool: start with the count that wrote them, or "
                        "on a new, empty data directory",
                        dir, in_files, layout->shard_count);
        struct data_dir_record record;
        record_of(layout, &record);
        if (rc == 0 && write)
            rc = record_write(dir_fd, &record);
        if (rc < 0 && rc != RUSH_ECONFIG)
            refuse(why, why_size, rc, "recording the shard count in %s/%s: %s", dir,
                   RUSH_DATA_DIR_FILE, rush_strerror(rc));
    } else {
        refuse(why, why_size, rc, "reading %s/%s: %s", dir, RUSH_DATA_DIR_FILE, rush_strerror(rc));
    }
    close(dir_fd);
    return rc;
}

int rush_data_dir_read(const char *dir, struct rush_data_dir_layout *out)
{
    RUSH_ASSERT(dir != NULL && out != NULL);
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return -errno;
    struct data_dir_record record;
    int rc = record_read(dir_fd, &record);
    close(dir_fd);
    if (rc == 0)
        *out = (struct rush_data_dir_layout){.shard_count = record.shard_count,
                                             .routing = record.routing,
                                             .routing_check = record.routing_check,
                                             .id_shard_shift = record.id_shard_shift};
    return rc;
}

/* A log segment or snapshot file name: wal-SS-*.log, snap-SS-*.snap (and their .tmp). */
static bool is_log_file(const char *name)
{
    return (strncmp(name, "wal-", 4) == 0 && strstr(name, ".log") != NULL) ||
           (strncmp(name, "snap-", 5) == 0 && strstr(name, ".snap") != NULL);
}

int rush_data_dir_set_aside(const char *dir, const char *aside, uint32_t *moved, char *why,
                            size_t why_size)
{
    *moved = 0;
    DIR *listing = opendir(dir);
    if (listing == NULL) {
        snprintf(why, why_size, "%s: %s", dir, strerror(errno));
        return -errno;
    }
    int rc = 0;
    struct dirent *entry;
    /* Bounded by the directory's entries (each rename moves one out of it). */
    while (rc == 0 && (entry = readdir(listing)) != NULL) {
        if (!is_log_file(entry->d_name))
            continue;
        char to[NAME_MAX * 2 + 2];
        snprintf(to, sizeof(to), "%s/%s", aside, entry->d_name);
        if (*moved == 0 && mkdirat(dirfd(listing), aside, 0700) != 0 && errno != EEXIST)
            rc = -errno;
        else if (renameat(dirfd(listing), entry->d_name, dirfd(listing), to) != 0)
            rc = -errno;
        else
            (*moved)++;
    }
    if (rc == 0 && *moved > 0 && fsync(dirfd(listing)) != 0)
        rc = -errno;
    closedir(listing);
    if (rc < 0)
        snprintf(why, why_size, "setting the log in %s aside to %s/%s: %s", dir, dir, aside,
                 strerror(-rc));
    return rc;
}
