/*
 * snapshot.c — writing, verifying and loading shard snapshots (see snapshot.h for the format,
 * the workload and the invariants).
 *
 * The file around the shard's records: names, the header, a checksum per section, buffered
 * writing and syncing, decoding and verifying. What the records are, and how a shard is rebuilt
 * from them, is the shard's (shard/shard_image.h); this file sees only their sizes and counts.
 *
 * Thread: see snapshot.h.
 */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t by value: no malloc in a forked writer */
#include <xxhash.h>

#include "base/clock.h"
#include "base/memory.h"
#include "base/why.h"
#include "rush/assert.h"
#include "shard/shard_image.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the snapshot format is little-endian");
#define WRITE_BUFFER_BYTES ((size_t)1 << 20)

/* Says why in why[] and returns RUSH_ECORRUPT. */
#define refuse(why, why_size, ...) rush__refuse(RUSH_ECORRUPT, why, why_size, __VA_ARGS__)

void rush_snapshot_header_seal(struct rush_snapshot_header *header)
{
    RUSH_ASSERT(header->magic == RUSH_SNAPSHOT_MAGIC);
    header->header_checksum =
        XXH3_64bits(header, offsetof(struct rush_snapshot_header, header_checksum));
}

/* ---- names ---------------------------------------------------------------------------------- */

int rush_snapshot_name(char *out, size_t size, uint32_t shard_index, uint64_t lsn)
{
    RUSH_ASSERT(out != NULL && size >= RUSH_SNAPSHOT_NAME_MAX);
    int n = snprintf(out, size, "snap-%02" PRIu32 "-%016" PRIx64 ".snap", shard_index, lsn);
    RUSH_ASSERT(n > 0 && n < RUSH_SNAPSHOT_NAME_MAX - 4); /* room for ".tmp" */
    return n;
}

bool rush_snapshot_parse(const char *name, uint32_t shard_index, uint64_t *lsn)
{
    uint32_t shard = 0;
    uint64_t value = 0;
    if (strlen(name) >= RUSH_SNAPSHOT_NAME_MAX)
        return false;
    if (sscanf(name, "snap-%" SCNu32 "-%" SCNx64 ".snap", &shard, &value) != 2 ||
        shard != shard_index)
        return false;
    char canonical[RUSH_SNAPSHOT_NAME_MAX];
    rush_snapshot_name(canonical, sizeof(canonical), shard, value);
    if (strcmp(canonical, name) != 0) /* also rejects the .tmp files */
        return false;
    *lsn = value;
    return true;
}

static int lsn_compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int rush_snapshot_list(const char *dir, uint32_t shard_index, uint64_t **lsns_out)
{
    *lsns_out = NULL;
    DIR *listing = opendir(dir);
    if (listing == NULL)
        return -errno;
    uint64_t *lsns = calloc(RUSH_SNAPSHOTS_MAX, sizeof(*lsns));
    if (lsns == NULL) {
        closedir(listing);
        return -ENOMEM;
    }
    uint32_t count = 0;
    int rc = 0;
    /* Bounded: a listing ends; each entry is looked at once. */
    for (struct dirent *entry = readdir(listing); entry != NULL; entry = readdir(listing)) {
        uint64_t lsn;
        if (!rush_snapshot_parse(entry->d_name, shard_index, &lsn))
            continue;
        if (count == RUSH_SNAPSHOTS_MAX) {
            rc = -EMFILE;
            break;
        }
        lsns[count++] = lsn;
    }
    closedir(listing);
    if (rc < 0 || count == 0) {
        free(lsns);
        return rc;
    }
    qsort(lsns, count, sizeof(*lsns), lsn_compare);
    *lsns_out = lsns;
    return (int)count;
}

/* ---- writing -------------------------------------------------------------------------------- */

/*
 * Sequential writes through one buffer, one section's checksum at a time. A forked writer opens
 * the file with O_DIRECT where the file system takes it: the bytes go to the device as they are
 * written, so the page cache never holds a snapshot's worth of dirty pages that a later fdatasync
 * of the WAL (the same ext4 journal) would have to wait for, and each 1 MiB write is one request in
 * the device's queue, not hundreds, so the log's small writes never queue behind the whole file
 * (ARCHITECTURE.md "Durability"). The shard's own thread writes through the page cache instead
 * (it stops deciding meanwhile, so it wants the fastest write). O_DIRECT wants aligned buffers,
 * offsets and lengths: every write but the last is a full buffer, the last is padded to a block and
 * the file cut back to its length; the first block is kept and written again at the end with the
 * sealed header in it. A paced writer (idle_per_busy > 0) sleeps after each write for that many
 * times as long as the write took, so that the log's writes seldom find the device busy and, on a
 * VM, the host's work for the disk does not take the shard's CPU away (ARCHITECTURE.md).
 */
struct writer {
    int fd;
    uint8_t *buffer; /* WRITE_BUFFER_BYTES, page aligned; buffer[0] is file offset `offset` */
    size_t used;
    uint64_t offset;
    uint8_t *first_block; /* a copy of the file's first WRITE_BLOCK_BYTES once written */
    XXH3_state_t *hash;
    int error;                             /* first write error (-errno) */
    const struct rush_snapshot_pace *pace; /* NULL: full speed (rush_snapshot_stage) */
};

#define WRITE_BLOCK_BYTES 4096u
static_assert(WRITE_BUFFER_BYTES % WRITE_BLOCK_BYTES == 0, "whole blocks per buffer");
static_assert(RUSH_SNAPSHOT_HEADER_BYTES <= WRITE_BLOCK_BYTES, "the header is in block 0");

/* pwrite of all `length` bytes at `offset`; a direct write the file system refuses (EINVAL)
 * switches the file to buffered writes once and is tried again. */
static int write_all(int fd, const uint8_t *bytes, size_t length, uint64_t offset)
{
    size_t done = 0;
    bool retried = false;
    /* Bounded: each round writes at least one byte or ends the loop. */
    while (done < length) {
        ssize_t n = pwrite(fd, bytes + done, length - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EINVAL && !retried) {
            retried = true;
            int flags = fcntl(fd, F_GETFL);
            if (flags >= 0 && (flags & O_DIRECT) && fcntl(fd, F_SETFL, flags & ~O_DIRECT) == 0)
                continue;
        }
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}

/*
 * After a write that took busy_ns: sleeps idle_per_busy times as long, within the pace limits, so
 * that a background writer leaves the device idle most of the time (see rush_snapshot_stage); not
 * at all once someone is waiting for the file (*hurry).
 */
static void pace_after(const struct rush_snapshot_pace *pace, int64_t busy_ns)
{
    RUSH_ASSERT(pace->idle_per_busy <= RUSH_SNAPSHOT_IDLE_PER_BUSY_MAX && busy_ns >= 0);
    if (pace->hurry != NULL && atomic_load_explicit(pace->hurry, memory_order_relaxed))
        return;
    int64_t idle_ns = busy_ns * (int64_t)pace->idle_per_busy;
    if (idle_ns < RUSH_SNAPSHOT_PACE_SLEEP_MIN_NS)
        idle_ns = RUSH_SNAPSHOT_PACE_SLEEP_MIN_NS;
    if (idle_ns > RUSH_SNAPSHOT_PACE_SLEEP_MAX_NS)
        idle_ns = RUSH_SNAPSHOT_PACE_SLEEP_MAX_NS;
    struct timespec idle = {.tv_sec = idle_ns / 1000000000, .tv_nsec = idle_ns % 1000000000};
    /* Bounded: a signal shortens the sleep and leaves what is left in `idle`; the pace is only a
     * bound on the device's share, so a few short sleeps are fine. */
    for (int round = 0; round < 4 && nanosleep(&idle, &idle) < 0 && errno == EINTR; round++)
        ;
}

/* Writes the buffer, padded with zeros to whole blocks (only the file's last write is partial). */
static void writer_flush(struct writer *writer)
{
    size_t padded = (writer->used + WRITE_BLOCK_BYTES - 1) / WRITE_BLOCK_BYTES * WRITE_BLOCK_BYTES;
    memset(writer->buffer + writer->used, 0, padded - writer->used);
    if (writer->offset == 0 && padded > 0)
        memcpy(writer->first_block, writer->buffer, WRITE_BLOCK_BYTES);
    if (writer->error == 0 && padded > 0) {
        int64_t start_ns = rush_clock_monotonic_ns();
        writer->error = write_all(writer->fd, writer->buffer, padded, writer->offset);
        if (writer->pace != NULL && writer->pace->idle_per_busy > 0 && writer->error == 0)
            pace_after(writer->pace, rush_clock_monotonic_ns() - start_ns);
    }
    writer->offset += writer->used;
    writer->used = 0;
}

/* The shard's sink (rush_shard_image_put_fn): context is the writer. */
static void writer_put(void *context, const void *record, size_t bytes)
{
    struct writer *writer = context;
    RUSH_ASSERT(bytes <= WRITE_BUFFER_BYTES);
    XXH3_64bits_update(writer->hash, record, bytes);
    size_t room = WRITE_BUFFER_BYTES - writer->used;
    size_t head = bytes < room ? bytes : room;
    memcpy(writer->buffer + writer->used, record, head);
    writer->used += head;
    if (writer->used < WRITE_BUFFER_BYTES)
        return;
    writer_flush(writer); /* a full buffer: whole blocks, so offsets stay aligned */
    memcpy(writer->buffer, (const uint8_t *)record + head, bytes - head);
    writer->used = bytes - head;
}

/* Writes one section after the header, filling in its count and checksum. */
static void put_section(struct writer *writer, const struct rush_shard *shard,
                        struct rush_snapshot_header *header, enum rush_shard_image_section section)
{
    XXH3_64bits_reset(writer->hash);
    header->counts[section] = rush_shard_image_emit(shard, section, writer_put, writer);
    header->record_bytes[section] = rush_shard_image_record_bytes(section);
    header->checksums[section] = XXH3_64bits_digest(writer->hash);
}

/* The last write, the header in block 0, the length, one fdatasync. */
static int finish_file(struct writer *writer, struct rush_snapshot_header *header)
{
    writer_flush(writer);
    header->file_bytes = writer->offset;
    rush_snapshot_header_seal(header);
    memcpy(writer->first_block, header, sizeof(*header));
    int rc = writer->error;
    if (rc == 0)
        rc = write_all(writer->fd, writer->first_block, WRITE_BLOCK_BYTES, 0);
    if (rc == 0 && ftruncate(writer->fd, (off_t)header->file_bytes) < 0)
        rc = -errno;
    if (rc == 0 && fdatasync(writer->fd) < 0)
        rc = -errno;
    return rc;
}

/* Writes header and sections to fd and fdatasyncs it. No malloc: a forked child runs this. */
static int write_file(int fd, const struct rush_shard *shard, uint32_t shard_index, uint64_t lsn,
                      const struct rush_snapshot_pace *pace)
{
    struct rush_snapshot_header header = {.magic = RUSH_SNAPSHOT_MAGIC,
                                          .version = RUSH_SNAPSHOT_VERSION,
                                          .shard_index = shard_index,
                                          .header_bytes = RUSH_SNAPSHOT_HEADER_BYTES,
                                          .lsn = lsn,
                                          .now_ns = rush_shard_now(shard),
                                          .limits = rush_shard_image_limits(shard)};
    static_assert(sizeof(XXH3_state_t) <= WRITE_BLOCK_BYTES, "the hash state fits a block");
    size_t bytes = WRITE_BUFFER_BYTES + 2 * WRITE_BLOCK_BYTES;
    uint8_t *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED)
        return -ENOMEM;
    struct writer writer = {.fd = fd,
                            .buffer = memory,
                            .used = RUSH_SNAPSHOT_HEADER_BYTES, /* zeros until finish_file */
                            .first_block = memory + WRITE_BUFFER_BYTES,
                            .pace = pace,
                            .hash =
                                (XXH3_state_t *)(memory + WRITE_BUFFER_BYTES + WRITE_BLOCK_BYTES)};
    XXH3_INITSTATE(writer.hash);
    for (int s = 0; s < RUSH_IMAGE_SECTION_COUNT; s++)
        put_section(&writer, shard, &header, (enum rush_shard_image_section)s);
    int rc = finish_file(&writer, &header);
    munmap(memory, bytes);
    return rc;
}

/* Removes the shard's snapshots older than `lsn` and its leftover .tmp files; best effort. */
static void remove_older(int dir_fd, uint32_t shard_index, uint64_t lsn)
{
    DIR *listing = fdopendir(dup(dir_fd));
    if (listing == NULL)
        return;
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "snap-%02" PRIu32 "-", shard_index);
    int removed = 0;
    for (struct dirent *entry = readdir(listing); entry != NULL; entry = readdir(listing)) {
        uint64_t old;
        size_t length = strlen(entry->d_name);
        bool tmp = strncmp(entry->d_name, prefix, strlen(prefix)) == 0 && length > 9 &&
                   strcmp(entry->d_name + length - 9, ".snap.tmp") == 0;
        bool older = rush_snapshot_parse(entry->d_name, shard_index, &old) && old < lsn;
        if ((tmp || older) && unlinkat(dir_fd, entry->d_name, 0) == 0)
            removed++;
    }
    closedir(listing);
    if (removed > 0)
        (void)fsync(dir_fd); /* a crash before this only leaves an old file to remove again */
}

static void tmp_name(char *out, size_t size, uint32_t shard_index, uint64_t lsn)
{
    char name[RUSH_SNAPSHOT_NAME_MAX];
    rush_snapshot_name(name, sizeof(name), shard_index, lsn);
    snprintf(out, size, "%s.tmp", name);
}

int rush_snapshot_stage(const struct rush_shard *shard, const char *dir, uint32_t shard_index,
                        uint64_t lsn, bool direct, const struct rush_snapshot_pace *pace, char *why,
                        size_t why_size)
{
    RUSH_ASSERT(shard != NULL && dir != NULL);
    RUSH_ASSERT(pace == NULL || pace->idle_per_busy <= RUSH_SNAPSHOT_IDLE_PER_BUSY_MAX);
    char tmp[RUSH_SNAPSHOT_NAME_MAX + 8];
    tmp_name(tmp, sizeof(tmp), shard_index, lsn);
    const char *step = "opening the directory";
    int rc = 0;
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        rc = -errno;
        goto out_report;
    }
    step = "creating";
    int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    int fd = openat(dir_fd, tmp, flags | (direct ? O_DIRECT : 0), 0644);
    if (fd < 0 && direct && errno == EINVAL) /* a file system without direct I/O (tmpfs) */
        fd = openat(dir_fd, tmp, flags, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out_close_dir;
    }
    step = "writing";
    rc = write_file(fd, shard, shard_index, lsn, pace);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0) {
        close(dir_fd);
        return 0;
    }
    (void)unlinkat(dir_fd, tmp, 0);
out_close_dir:
    close(dir_fd);
out_report:
    snprintf(why, why_size, "snapshot %s/%s: %s: %s", dir, tmp, step, rush_strerror(rc));
    return rc;
}

int rush_snapshot_commit(const char *dir, uint32_t shard_index, uint64_t lsn, char *why,
                         size_t why_size)
{
    RUSH_ASSERT(dir != NULL);
    char name[RUSH_SNAPSHOT_NAME_MAX], tmp[RUSH_SNAPSHOT_NAME_MAX + 8];
    rush_snapshot_name(name, sizeof(name), shard_index, lsn);
    tmp_name(tmp, sizeof(tmp), shard_index, lsn);
    const char *step = "opening the directory";
    int rc = 0;
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        rc = -errno;
        goto out_report;
    }
    step = "renaming";
    if (renameat(dir_fd, tmp, dir_fd, name) < 0) {
        rc = -errno;
        (void)unlinkat(dir_fd, tmp, 0);
        goto out_close_dir;
    }
    step = "syncing the directory";
    if (fsync(dir_fd) < 0) {
        rc = -errno;
        goto out_close_dir;
    }
    remove_older(dir_fd, shard_index, lsn);
    close(dir_fd);
    return 0;

out_close_dir:
    close(dir_fd);
out_report:
    snprintf(why, why_size, "snapshot %s/%s: %s: %s", dir, name, step, rush_strerror(rc));
    return rc;
}

void rush_snapshot_abandon(const char *dir, uint32_t shard_index, uint64_t lsn)
{
    char tmp[RUSH_SNAPSHOT_NAME_MAX + 8];
    tmp_name(tmp, sizeof(tmp), shard_index, lsn);
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return;
    (void)unlinkat(dir_fd, tmp, 0);
    close(dir_fd);
}

int rush_snapshot_write(const struct rush_shard *shard, const char *dir, uint32_t shard_index,
                        uint64_t lsn, char *why, size_t why_size)
{
    int rc = rush_snapshot_stage(shard, dir, shard_index, lsn, false, NULL, why, why_size);
    if (rc == 0)
        rc = rush_snapshot_commit(dir, shard_index, lsn, why, why_size);
    return rc;
}

/* ---- decoding ------------------------------------------------------------------------------- */

static int decode_header(const uint8_t *bytes, size_t len, struct rush_snapshot_header *header,
                         char *why, size_t why_size)
{
    if (len < RUSH_SNAPSHOT_HEADER_BYTES)
        return refuse(why, why_size, "%zu bytes: shorter than a header", len);
    memcpy(header, bytes, sizeof(*header));
    if (header->magic != RUSH_SNAPSHOT_MAGIC)
        return refuse(why, why_size, "bad magic");
    uint64_t sum = XXH3_64bits(bytes, offsetof(struct rush_snapshot_header, header_checksum));
    if (sum != header->header_checksum)
        return refuse(why, why_size, "header checksum mismatch");
    if (header->version != RUSH_SNAPSHOT_VERSION)
        return refuse(why, why_size, "version %u, this build reads %u", header->version,
                      RUSH_SNAPSHOT_VERSION);
    if (header->flags != 0 || header->header_bytes != RUSH_SNAPSHOT_HEADER_BYTES)
        return refuse(why, why_size, "unknown flags or header size");
    if (header->counts[RUSH_IMAGE_SKU_IDS] != header->counts[RUSH_IMAGE_SKUS])
        return refuse(why, why_size, "%u SKU ids for %u SKUs", header->counts[RUSH_IMAGE_SKU_IDS],
                      header->counts[RUSH_IMAGE_SKUS]);
    return 0;
}

int rush_snapshot_decode(const uint8_t *bytes, size_t len, struct rush_snapshot_view *out,
                         char *why, size_t why_size)
{
    RUSH_ASSERT(out != NULL && (bytes != NULL || len == 0));
    memset(out, 0, sizeof(*out));
    int rc = decode_header(bytes, len, &out->header, why, why_size);
    if (rc < 0)
        return rc;
    const struct rush_snapshot_header *header = &out->header;
    uint64_t offset = RUSH_SNAPSHOT_HEADER_BYTES;
    for (int s = 0; s < RUSH_IMAGE_SECTION_COUNT; s++) {
        enum rush_shard_image_section section = (enum rush_shard_image_section)s;
        const char *name = rush_shard_image_section_name(section);
        if (header->record_bytes[s] != rush_shard_image_record_bytes(section))
            return refuse(why, why_size, "%s: records of %u bytes, this build's are %u", name,
                          header->record_bytes[s], rush_shard_image_record_bytes(section));
        if (header->counts[s] > rush_shard_image_count_max(&header->limits, section))
            return refuse(why, why_size, "%s: %u records exceed the writer's limit %" PRIu64, name,
                          header->counts[s], rush_shard_image_count_max(&header->limits, section));
        uint64_t bytes_of = (uint64_t)header->counts[s] * header->record_bytes[s];
        if (offset + bytes_of > len)
            return refuse(why, why_size, "%s: ends at %" PRIu64 ", past the file's %zu bytes", name,
                          offset + bytes_of, len);
        if (XXH3_64bits(bytes + offset, bytes_of) != header->checksums[s])
            return refuse(why, why_size, "%s: checksum mismatch (at offset %" PRIu64 ")", name,
                          offset);
        out->sections[s] = bytes + offset;
        offset += bytes_of;
    }
    if (offset != len || header->file_bytes != len)
        return refuse(why, why_size, "length %zu, the header says %" PRIu64 ", sections %" PRIu64,
                      len, header->file_bytes, offset);
    return 0;
}

/* ---- restoring ------------------------------------------------------------------------------ */

int rush_snapshot_restore(struct rush_shard *fresh_shard, const struct rush_snapshot_view *view,
                          char *why, size_t why_size)
{
    RUSH_ASSERT(view != NULL);
    struct rush_shard_image image = {.now_ns = view->header.now_ns};
    static_assert(sizeof(image.counts) == sizeof(view->header.counts), "one count per section");
    memcpy(image.counts, view->header.counts, sizeof(image.counts));
    memcpy(image.sections, view->sections, sizeof(image.sections));
    return rush_shard_image_restore(fresh_shard, &image, why, why_size);
}

/* ---- loading -------------------------------------------------------------------------------- */

/* Maps, decodes and restores one snapshot file. */
static int load_file(struct rush_shard *shard, int dir_fd, const char *name, uint32_t shard_index,
                     uint64_t lsn, char *why, size_t why_size)
{
    struct rush_mapped_file map;
    int rc = rush_memory_map_file(dir_fd, name, MADV_WILLNEED, &map);
    if (rc < 0)
        return rc;
    struct rush_snapshot_view view;
    rc = rush_snapshot_decode(map.bytes, map.size, &view, why, why_size);
    if (rc == 0 && (view.header.shard_index != shard_index || view.header.lsn != lsn))
        rc = refuse(why, why_size, "holds shard %u lsn %" PRIu64 ", the name says otherwise",
                    view.header.shard_index, view.header.lsn);
    if (rc == 0)
        rc = rush_snapshot_restore(shard, &view, why, why_size);
    rush_memory_unmap_file(&map);
    return rc;
}

int rush_snapshot_load(struct rush_shard *fresh_shard, const char *dir, uint32_t shard_index,
                       uint64_t *lsn_out, char *why, size_t why_size)
{
    RUSH_ASSERT(fresh_shard != NULL && dir != NULL && lsn_out != NULL);
    *lsn_out = 0;
    uint64_t *lsns = NULL;
    int rc = rush_snapshot_list(dir, shard_index, &lsns);
    if (rc <= 0) {
        if (rc < 0)
            snprintf(why, why_size, "listing snapshots in %s: %s", dir, rush_strerror(rc));
        return rc;
    }
    uint64_t lsn = lsns[rc - 1];
    free(lsns);
    char name[RUSH_SNAPSHOT_NAME_MAX];
    rush_snapshot_name(name, sizeof(name), shard_index, lsn);
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        rc = -errno;
        snprintf(why, why_size, "%s: %s", dir, rush_strerror(rc));
        return rc;
    }
    char reason[256] = "";
    rc = load_file(fresh_shard, dir_fd, name, shard_index, lsn, reason, sizeof(reason));
    close(dir_fd);
    if (rc < 0) {
        snprintf(why, why_size, "snapshot %s/%s: %s", dir, name,
                 reason[0] ? reason : rush_strerror(rc));
        return rc;
    }
    *lsn_out = lsn;
    return 0;
}
