/*
 * fuzz_snapshot.c — libFuzzer target for the snapshot reader (engine/wal/snapshot.c, and the
 * restore of engine/shard/shard_image.c behind it).
 *
 * Feeds arbitrary bytes to rush_snapshot_decode() as they are, and "repaired" — magic, version,
 * header size, file length and every checksum recomputed over what the bytes claim — so that the
 * fuzzer reaches the structural checks and rush_snapshot_restore(), which copies a decoded file
 * into a fresh shard with small limits. Checks, with always-on asserts:
 *  1. nothing is read outside the input (ASan), no undefined behaviour (UBSan), no abort: a
 *     hostile file is refused with RUSH_ECORRUPT or RUSH_ECONFIG and a reason, never asserted on;
 *  2. on a successful decode the sections lie inside the input, back to back;
 *  3. a successful restore leaves a shard that passes rush_shard_check().
 * Seeds: tests/fuzz/corpus/snapshot/, small snapshots written by rush_snapshot_write.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#include "rush/assert.h"
#include "shard/shard.h"
#include "wal/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BYTES_MAX 65536

static uint64_t copy_words[FUZZ_BYTES_MAX / 8];

static void try_restore(const struct rush_snapshot_view *view)
{
    struct rush_shard_config config = {
        .limits = {.skus_max = 8,
                   .orders_max = 64,
                   .groups_max = 16,
                   .keys_max = 128,
                   .user_limits_max = 64,
                   .events_buffer_max = 512},
        .seed = 99,
        .start_ns = 1,
    };
    struct rush_shard *shard = NULL;
    RUSH_VERIFY(rush_shard_create(&config, &shard) == 0);
    char why[256] = "";
    int rc = rush_snapshot_restore(shard, view, why, sizeof(why));
    RUSH_ASSERT(rc == 0 || rc == RUSH_ECORRUPT || rc == RUSH_ECONFIG);
    RUSH_ASSERT(rc == 0 || why[0] != '\0');
    if (rc == 0)
        RUSH_ASSERT(rush_shard_check(shard, why, sizeof(why)) == 0);
    rush_shard_destroy(shard);
}

static void check(const uint8_t *bytes, size_t len)
{
    struct rush_snapshot_view view;
    char why[256] = "";
    int rc = rush_snapshot_decode(bytes, len, &view, why, sizeof(why));
    RUSH_ASSERT(rc == 0 || (rc == RUSH_ECORRUPT && why[0] != '\0'));
    if (rc < 0)
        return;
    const uint8_t *at = bytes + RUSH_SNAPSHOT_HEADER_BYTES;
    for (int s = 0; s < RUSH_IMAGE_SECTION_COUNT; s++) {
        RUSH_ASSERT(view.sections[s] == at);
        at += (size_t)view.header.counts[s] * view.header.record_bytes[s];
    }
    RUSH_ASSERT(at == bytes + len);
    try_restore(&view);
}

/* Makes the header agree with the bytes: format fields, length, section checksums, seal. */
static void repair(uint8_t *bytes, size_t len)
{
    struct rush_snapshot_header header;
    if (len < sizeof(header))
        return;
    memcpy(&header, bytes, sizeof(header));
    header.magic = RUSH_SNAPSHOT_MAGIC;
    header.version = RUSH_SNAPSHOT_VERSION;
    header.flags = 0;
    header.header_bytes = RUSH_SNAPSHOT_HEADER_BYTES;
    header.file_bytes = len;
    uint64_t offset = RUSH_SNAPSHOT_HEADER_BYTES;
    for (int s = 0; s < RUSH_IMAGE_SECTION_COUNT; s++) {
        header.record_bytes[s] = rush_shard_image_record_bytes((enum rush_shard_image_section)s);
        uint64_t room = (len - offset) / header.record_bytes[s];
        if (header.counts[s] > room)
            header.counts[s] = (uint32_t)room;
        uint64_t bytes_of = (uint64_t)header.counts[s] * header.record_bytes[s];
        header.checksums[s] = XXH3_64bits(bytes + offset, bytes_of);
        offset += bytes_of;
    }
    rush_snapshot_header_seal(&header);
    memcpy(bytes, &header, sizeof(header));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_BYTES_MAX)
        return -1;
    uint8_t *copy = (uint8_t *)copy_words;
    memcpy(copy, data, size);
    check(copy, size);
    repair(copy, size);
    check(copy, size);
    return 0;
}
