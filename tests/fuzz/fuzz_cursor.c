/*
 * fuzz_cursor.c — libFuzzer target for the subscriber's cursor file decoder
 * (proto/client/subscriber_cursor.c).
 *
 * The file ends with an XXH3 checksum of what precedes it, which random bytes almost never
 * match; so each input is tried twice: as a whole file, and "sealed" (the magic line, the input,
 * and the checksum line it needs), which takes the input to the line parser behind the checksum.
 *
 * Checks, with always-on asserts:
 *  1. nothing is read outside the input (ASan), and no undefined behaviour (UBSan);
 *  2. a refusal is RUSH_ECORRUPT with a reason, and leaves the cursor zeroed;
 *  3. the format is canonical: a decoded cursor encodes (as rush_stream_cursor_save writes it)
 *     to exactly the bytes decoded, and has at most RUSH_SHARDS_MAX shards.
 * Seeds: tests/fuzz/corpus/cursor/ (bodies of sealed files: 0, 1, 2 and 64 shards; damaged).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "client/subscriber_cursor.h"
#include "rush/assert.h"
#include "rush/types.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAGIC "rush-stream-cursor 1\n"

static void check(const char *buf, size_t len)
{
    struct rush_stream_cursor cursor;
    char why[160] = "";
    int rc = rush__stream_cursor_decode(buf, len, &cursor, why, sizeof why);
    if (rc != 0) {
        static const struct rush_stream_cursor zero;
        RUSH_ASSERT(rc == RUSH_ECORRUPT && why[0] != '\0');
        RUSH_ASSERT(memcmp(&cursor, &zero, sizeof zero) == 0);
        return;
    }
    RUSH_ASSERT(cursor.shard_count <= RUSH_SHARDS_MAX);
    char again[RUSH_STREAM_CURSOR_BYTES_MAX];
    size_t n = rush__stream_cursor_encode(&cursor, again, sizeof again);
    RUSH_ASSERT(n == len && memcmp(again, buf, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check((const char *)data, size);
    static char sealed[RUSH_STREAM_CURSOR_BYTES_MAX + 64];
    size_t magic = strlen(MAGIC);
    if (magic + size + 22 > sizeof sealed)
        return 0;
    memcpy(sealed, MAGIC, magic);
    memcpy(sealed + magic, data, size);
    size_t len = magic + size;
    uint64_t sum = (uint64_t)XXH3_64bits(sealed, len);
    len += (size_t)snprintf(sealed + len, sizeof sealed - len, "xxh3 %016" PRIx64 "\n", sum);
    char *exact = malloc(len); /* exactly len bytes, so ASan sees a read past the end */
    RUSH_ASSERT(exact != NULL);
    memcpy(exact, sealed, len);
    check(exact, len);
    free(exact);
    return 0;
}
