/*
 * fuzz_replicated.c — libFuzzer target for the replicated log's record reader
 * (proto/codec/replicated.c), which standbys run on every message of a shard's subject.
 *
 * Each input is read as a message twice: as it is, and "sealed" (every whole 64-byte event group
 * behind a header given the checksum it needs), which takes the input past the checksum to the
 * count and lsn checks behind it.
 *
 * Checks, with always-on asserts:
 *  1. nothing is read outside the input (ASan), and no undefined behaviour (UBSan);
 *  2. the reader ends: each record read moves past at least one event, and a refusal is
 *     RUSH_ECORRUPT that leaves the position where it was;
 *  3. the format is canonical: every record read writes back (rush_replicated_put) to exactly the
 *     bytes read, and lsns increase.
 * Seeds: tests/fuzz/corpus/replicated/ (one and two records; damaged).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "rush/assert.h"
#include "rush/replicated.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *buf, size_t len)
{
    size_t at = 0;
    uint64_t last_lsn = 0;
    struct rush_replicated_view view;
    for (;;) {
        size_t before = at;
        int rc = rush_replicated_next(buf, len, &at, last_lsn, &view);
        if (rc <= 0) {
            RUSH_ASSERT(rc == 0 || rc == RUSH_ECORRUPT);
            RUSH_ASSERT(at == before && (rc != 0 || at == len));
            return;
        }
        RUSH_ASSERT(view.count >= 1 && view.lsn > last_lsn);
        RUSH_ASSERT(at == before + rush_replicated_bytes(view.count) && at <= len);
        struct rush_event *events = malloc((size_t)view.count * sizeof(*events));
        uint8_t *again = malloc(rush_replicated_bytes(view.count));
        RUSH_ASSERT(events != NULL && again != NULL);
        memcpy(events, view.events, (size_t)view.count * sizeof(*events));
        size_t n = rush_replicated_put(again, view.lsn, view.time_ns, events, view.count);
        RUSH_ASSERT(n == at - before && memcmp(again, buf + before, n) == 0);
        free(again);
        free(events);
        last_lsn = view.lsn;
    }
}

/* Gives each header whose events fit the checksum they need (headers with count 0 stay). */
static void seal(uint8_t *buf, size_t len)
{
    size_t at = 0;
    struct rush_replicated_record record;
    while (len - at >= sizeof(record)) {
        memcpy(&record, buf + at, sizeof(record));
        size_t count = record.count % 8; /* keep records small so that several fit */
        if (rush_replicated_bytes((uint32_t)count) > len - at)
            count = (len - at - sizeof(record)) / RUSH_REPLICATED_EVENT_BYTES;
        record.count = (uint32_t)count;
        record.checksum = XXH32(buf + at + sizeof(record), count * RUSH_REPLICATED_EVENT_BYTES,
                                (uint32_t)record.lsn);
        memcpy(buf + at, &record, sizeof(record));
        at += rush_replicated_bytes((uint32_t)count);
        if (count == 0)
            return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size);
    uint8_t *sealed = malloc(size ? size : 1);
    RUSH_ASSERT(sealed != NULL);
    memcpy(sealed, data, size);
    seal(sealed, size);
    check(sealed, size);
    free(sealed);
    return 0;
}
