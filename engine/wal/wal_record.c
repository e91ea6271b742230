/*
 * wal_record.c — encode and verify write-ahead log batch headers; name segment files.
 *
 * Workload: called once per batch on the append path (seal, events checksum) and once per batch
 * and per 64-byte slot scanned in recovery (decode). Pure functions: no allocation, no I/O.
 *
 * Invariants:
 *   1. A decoder reads only bytes[0..len) and reports END only for all-zero bytes.
 *   2. OK is returned only when the header checksum, the length and the events checksum agree.
 *
 * Thread: any; no state.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "rush/assert.h"
#include "wal_record.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the log format is little-endian");

uint64_t rush_wal_events_checksum(const struct rush_event *events, uint32_t event_count)
{
    RUSH_ASSERT(events != NULL || event_count == 0);
    if (event_count == 0)
        return XXH3_64bits("", 0);
    return XXH3_64bits(events, (size_t)event_count * sizeof(struct rush_event));
}

void rush_wal_header_seal(struct rush_wal_header *header)
{
    RUSH_ASSERT(header->magic == RUSH_WAL_MAGIC);
    header->header_checksum =
        XXH3_64bits(header, offsetof(struct rush_wal_header, header_checksum));
}

static bool bytes_all_zero(const uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] != 0)
            return false;
    }
    return true;
}

enum rush_wal_decode rush_wal_header_decode(const uint8_t *bytes, uint32_t shard_index,
                                            struct rush_wal_header *out)
{
    RUSH_ASSERT(bytes != NULL && out != NULL);
    memcpy(out, bytes, sizeof(*out));
    if (out->magic != RUSH_WAL_MAGIC)
        return bytes_all_zero(bytes, RUSH_WAL_HEADER_BYTES) ? RUSH_WAL_DECODE_END
                                                            : RUSH_WAL_DECODE_MAGIC;
    uint64_t sum = XXH3_64bits(bytes, offsetof(struct rush_wal_header, header_checksum));
    if (sum != out->header_checksum)
        return RUSH_WAL_DECODE_HEADER_CHECKSUM;
    if (out->version != RUSH_WAL_VERSION)
        return RUSH_WAL_DECODE_VERSION;
    if (out->shard_index != shard_index)
        return RUSH_WAL_DECODE_SHARD;
    return RUSH_WAL_DECODE_OK;
}

enum rush_wal_decode rush_wal_batch_decode(const uint8_t *bytes, size_t len, uint32_t shard_index,
                                           struct rush_wal_batch_view *out)
{
    RUSH_ASSERT(out != NULL && (bytes != NULL || len == 0));
    memset(out, 0, sizeof(*out));
    if (len < RUSH_WAL_HEADER_BYTES)
        return bytes_all_zero(bytes, len) ? RUSH_WAL_DECODE_END : RUSH_WAL_DECODE_SHORT;
    enum rush_wal_decode decode = rush_wal_header_decode(bytes, shard_index, &out->header);
    if (decode != RUSH_WAL_DECODE_OK)
        return decode;
    const struct rush_wal_header *header = &out->header;
    if (header->event_count > RUSH_WAL_BATCH_EVENTS_MAX || header->flags != 0)
        return RUSH_WAL_DECODE_LENGTH;
    if (rush_wal_batch_bytes(header->event_count) > len)
        return RUSH_WAL_DECODE_SHORT;
    const struct rush_event *events = (const struct rush_event *)(bytes + RUSH_WAL_HEADER_BYTES);
    if (rush_wal_events_checksum(events, header->event_count) != header->events_checksum)
        return RUSH_WAL_DECODE_EVENTS_CHECKSUM;
    out->events = events;
    return RUSH_WAL_DECODE_OK;
}

const char *rush_wal_decode_name(enum rush_wal_decode decode)
{
    switch (decode) {
    case RUSH_WAL_DECODE_OK:
        return "ok";
    case RUSH_WAL_DECODE_END:
        return "zeroed space";
    case RUSH_WAL_DECODE_SHORT:
        return "batch cut short";
    case RUSH_WAL_DECODE_MAGIC:
        return "bad magic";
    case RUSH_WAL_DECODE_VERSION:
        return "unknown version";
    case RUSH_WAL_DECODE_HEADER_CHECKSUM:
        return "header checksum mismatch";
    case RUSH_WAL_DECODE_SHARD:
        return "written by another shard";
    case RUSH_WAL_DECODE_LENGTH:
        return "event count beyond the limit, or flags set";
    case RUSH_WAL_DECODE_EVENTS_CHECKSUM:
        return "events checksum mismatch";
    }
    return "unknown";
}

int rush_wal_segment_name(char *out, size_t size, uint32_t shard_index, uint64_t first_lsn)
{
    RUSH_ASSERT(out != NULL && size >= RUSH_WAL_SEGMENT_NAME_MAX);
    int n = snprintf(out, size, "wal-%02" PRIu32 "-%016" PRIx64 ".log", shard_index, first_lsn);
    RUSH_ASSERT(n > 0 && n < RUSH_WAL_SEGMENT_NAME_MAX);
    return n;
}

bool rush_wal_segment_parse(const char *name, uint32_t shard_index, uint64_t *first_lsn)
{
    RUSH_ASSERT(name != NULL && first_lsn != NULL);
    uint32_t shard = 0;
    uint64_t lsn = 0;
    if (strlen(name) >= RUSH_WAL_SEGMENT_NAME_MAX)
        return false;
    if (sscanf(name, "wal-%" SCNu32 "-%" SCNx64 ".log", &shard, &lsn) != 2 || shard != shard_index)
        return false;
    /* Accept only the canonical spelling, so that one lsn has exactly one file name. */
    char canonical[RUSH_WAL_SEGMENT_NAME_MAX];
    rush_wal_segment_name(canonical, sizeof(canonical), shard, lsn);
    if (strcmp(canonical, name) != 0)
        return false;
    *first_lsn = lsn;
    return true;
}

static int lsn_compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Appends to a growing array; bounded by RUSH_WAL_SEGMENTS_MAX. */
static int lsns_push(uint64_t **lsns, uint32_t *count, uint32_t *capacity, uint64_t lsn)
{
    if (*count == *capacity) {
        if (*capacity >= RUSH_WAL_SEGMENTS_MAX)
            return -EMFILE;
        uint32_t grown = *capacity == 0 ? 16 : *capacity * 2;
        uint64_t *more = realloc(*lsns, (size_t)grown * sizeof(**lsns));
        if (more == NULL)
            return -ENOMEM;
        *lsns = more;
        *capacity = grown;
    }
    (*lsns)[(*count)++] = lsn;
    return 0;
}

int rush_wal_segments_list(int dir_fd, uint32_t shard_index, uint64_t **lsns_out)
{
    RUSH_ASSERT(dir_fd >= 0 && lsns_out != NULL);
    *lsns_out = NULL;
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int error = -errno;
        close(fd);
        return error;
    }
    uint64_t *lsns = NULL;
    uint32_t count = 0;
    uint32_t capacity = 0;
    int rc = 0;
    /* Bounded: a directory listing ends; each entry is looked at once. */
    for (struct dirent *entry = readdir(dir); entry != NULL && rc == 0; entry = readdir(dir)) {
        uint64_t lsn = 0;
        if (rush_wal_segment_parse(entry->d_name, shard_index, &lsn))
            rc = lsns_push(&lsns, &count, &capacity, lsn);
    }
    closedir(dir);
    if (rc < 0) {
        free(lsns);
        return rc;
    }
    if (count > 1)
        qsort(lsns, count, sizeof(*lsns), lsn_compare);
    *lsns_out = lsns;
    return (int)count;
}
