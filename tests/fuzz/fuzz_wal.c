/*
 * fuzz_wal.c — libFuzzer target for the WAL batch decoder (engine/wal/wal_record.c).
 *
 * Feeds arbitrary bytes to rush_wal_batch_decode() twice: as they are, and "repaired" — magic,
 * version and both checksums recomputed over what the bytes claim — so that the fuzzer gets past
 * the checksums to the length, shard and short-input paths. Checks, with always-on asserts:
 *  1. nothing is read outside the input (ASan), and no undefined behaviour (UBSan);
 *  2. END only for all-zero input; OK only when the header checksum, event_count and the
 *     events checksum agree, with the batch's length <= len and the view inside the input;
 *  3. on OK, rush_wal_header_decode() agrees and re-sealing the header gives the same bytes.
 * Seeds: tests/fuzz/corpus/wal/, cut from segments the engine wrote (one batch, a few batches,
 * a lone header, zeroes).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rush/assert.h"
#include "wal/wal_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BYTES_MAX 65536

static uint64_t copy_words[FUZZ_BYTES_MAX / 8]; /* batches are decoded 8-byte aligned */

static bool all_zero(const uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != 0)
            return false;
    return true;
}

static void check(const uint8_t *bytes, size_t len, uint32_t shard_index)
{
    struct rush_wal_batch_view view;
    enum rush_wal_decode decode = rush_wal_batch_decode(bytes, len, shard_index, &view);
    RUSH_ASSERT(decode <= RUSH_WAL_DECODE_EVENTS_CHECKSUM);
    RUSH_ASSERT(rush_wal_decode_name(decode)[0] != '\0');
    if (decode == RUSH_WAL_DECODE_END)
        RUSH_ASSERT(all_zero(bytes, len < RUSH_WAL_HEADER_BYTES ? len : RUSH_WAL_HEADER_BYTES));
    if (decode != RUSH_WAL_DECODE_OK)
        return;
    const struct rush_wal_header *header = &view.header;
    RUSH_ASSERT(header->event_count <= RUSH_WAL_BATCH_EVENTS_MAX);
    RUSH_ASSERT(rush_wal_batch_bytes(header->event_count) <= len);
    RUSH_ASSERT((const uint8_t *)view.events == bytes + RUSH_WAL_HEADER_BYTES);
    RUSH_ASSERT(rush_wal_events_checksum(view.events, header->event_count) ==
                header->events_checksum);
    struct rush_wal_header again;
    RUSH_VERIFY(rush_wal_header_decode(bytes, shard_index, &again) == RUSH_WAL_DECODE_OK);
    struct rush_wal_header sealed = again;
    rush_wal_header_seal(&sealed);
    RUSH_ASSERT(memcmp(&sealed, bytes, sizeof(sealed)) == 0);
}

/* Makes the header's magic, version and checksums agree with the bytes that follow it. */
static void repair(uint8_t *bytes, size_t len)
{
    if (len < RUSH_WAL_HEADER_BYTES)
        return;
    struct rush_wal_header header;
    memcpy(&header, bytes, sizeof(header));
    header.magic = RUSH_WAL_MAGIC;
    header.version = RUSH_WAL_VERSION;
    uint64_t room = (len - RUSH_WAL_HEADER_BYTES) / sizeof(struct rush_event);
    uint32_t count = header.event_count < room ? header.event_count : (uint32_t)room;
    header.events_checksum =
        rush_wal_events_checksum((const struct rush_event *)(bytes + RUSH_WAL_HEADER_BYTES), count);
    rush_wal_header_seal(&header);
    memcpy(bytes, &header, sizeof(header));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_BYTES_MAX)
        return -1;
    uint8_t *copy = (uint8_t *)copy_words;
    memcpy(copy, data, size);
    uint32_t shard_index = size > 8 ? data[8] % 4 : 0; /* mostly the shard the header names */
    check(copy, size, shard_index);
    repair(copy, size);
    check(copy, size, shard_index);
    return 0;
}
