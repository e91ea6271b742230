/*
 * replicated.c — the records of the replicated log's messages (rush/replicated.h, ARCHITECTURE.md
 * "Cluster"): written by the leader's replicator, read by standbys, by a node starting from the
 * subject and by `rushctl cluster`. One reader, so that every one of them refuses the same
 * malformed message the same way: a short header, a count of zero or past the message's end, a
 * checksum that does not hold, an lsn that does not increase; and the fence messages of a
 * promotion (no payload, header Rush-Fence "<node> <lsn>"), whose value is read here. xxHash is
 * compiled in (as in key.c). Stateless; any thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "rush/replicated.h"

static uint32_t checksum_of(uint64_t lsn, const void *events, uint32_t count)
{
    return XXH32(events, (size_t)count * RUSH_REPLICATED_EVENT_BYTES, (uint32_t)lsn);
}

size_t rush_replicated_put(void *out, uint64_t lsn, int64_t time_ns,
                           const struct rush_event *events, uint32_t count)
{
    RUSH_ASSERT(count >= 1 && count <= RUSH_REPLICATED_EVENTS_MAX && lsn > 0);
    struct rush_replicated_record record = {.lsn = lsn,
                                            .time_ns = time_ns,
                                            .count = count,
                                            .checksum = checksum_of(lsn, events, count)};
    memcpy(out, &record, sizeof(record));
    memcpy((char *)out + sizeof(record), events, (size_t)count * RUSH_REPLICATED_EVENT_BYTES);
    return rush_replicated_bytes(count);
}

int rush_replicated_next(const void *buf, size_t len, size_t *at, uint64_t after,
                         struct rush_replicated_view *out)
{
    RUSH_ASSERT(*at <= len);
    if (*at == len)
        return 0;
    struct rush_replicated_record record;
    if (len - *at < sizeof(record))
        return RUSH_ECORRUPT;
    memcpy(&record, (const char *)buf + *at, sizeof(record));
    if (record.count == 0 || record.count > RUSH_REPLICATED_EVENTS_MAX ||
        rush_replicated_bytes(record.count) > len - *at || record.lsn <= after)
        return RUSH_ECORRUPT;
    const char *events = (const char *)buf + *at + sizeof(record);
    if (checksum_of(record.lsn, events, record.count) != record.checksum)
        return RUSH_ECORRUPT;
    *out = (struct rush_replicated_view){
        .lsn = record.lsn, .time_ns = record.time_ns, .count = record.count, .events = events};
    *at += rush_replicated_bytes(record.count);
    return 1;
}

bool rush_replicated_fence_put(char *out, size_t size, const char *node, uint64_t lsn)
{
    int n = snprintf(out, size, "%s %" PRIu64, node, lsn);
    return n > 0 && (size_t)n < size;
}

int rush_replicated_fence_lsn(const char *value, uint64_t *lsn)
{
    if (value == NULL)
        return RUSH_ECORRUPT;
    const char *space = strchr(value, ' ');
    if (space == NULL || space == value || space[1] < '0' || space[1] > '9')
        return RUSH_ECORRUPT;
    char *end = NULL;
    errno = 0;
    unsigned long long parsed = strtoull(space + 1, &end, 10);
    if (errno != 0 || *end != '\0')
        return RUSH_ECORRUPT;
    *lsn = (uint64_t)parsed;
    return 0;
}

int rush_replicated_end_lsn(const void *buf, size_t len, const char *fence, uint64_t *lsn)
{
    if (len == 0)
        return rush_replicated_fence_lsn(fence, lsn);
    if (fence != NULL)
        return RUSH_ECORRUPT; /* a fence holds no records */
    size_t at = 0;
    struct rush_replicated_view record = {0};
    int rc;
    while ((rc = rush_replicated_next(buf, len, &at, record.lsn, &record)) == 1)
        *lsn = record.lsn;
    return rc; /* 0 at the end: at least one record was read, since len > 0 */
}
