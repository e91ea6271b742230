/*
 * wal_replay.c — reading a shard's log back: recovery, torn-tail detection, segment removal.
 *
 * Workload: once per start per shard, over everything since the last snapshot (up to some
 * GiB). Segments are mapped read-only and decoded in place; each 64-byte slot after the end of
 * a segment's data is looked at once more to tell a torn tail from damage, so a replay reads
 * every byte at most twice.
 *
 * How the end of the log is told from damage. Batches are written in order, each segment is
 * complete on disk before the next holds anything (wal.h invariant 4), and only the last
 * write can be cut by a crash. A cut write leaves what it did not reach as it was: zeros (segments
 * are preallocated, and a cut tail is zeroed), or the end of the file. So where decoding stops in
 * a segment:
 *   - all-zero bytes to the end of the segment: the segment's clean end; go on to the next;
 *   - a batch cut short (its extent runs past the end of the file, or holds an all-zero 64-byte
 *     slot: never written, since a written header or event is never all zero), or non-zero
 *     garbage, with no valid batch header after it in this segment nor in any later segment: a
 *     torn tail; cut (reported, done by rush_wal_open);
 *   - a complete batch (every slot of its extent present) that fails its header or events
 *     checksum, or a sealed header this build refuses (version, shard, length): damage, even as
 *     the last batch of the log: a crash does not flip bits, and that batch may have been
 *     acknowledged and published. RUSH_ECORRUPT naming the file and offset;
 *   - anything else (a valid header after the bad spot, a later segment with valid batches, an
 *     lsn gap, a chain break, a name that does not match the first batch): damage before the
 *     tail, RUSH_ECORRUPT naming the file and offset.
 * Caveat: a crash inside one large write can in principle persist a later sector of it but not
 * an earlier one; that shows as damage, not a torn tail, and stops the start for an operator.
 *
 * Invariants:
 *   1. The callback sees batches in lsn order, without gaps, each verified and chained.
 *   2. Nothing here writes to the log directory except rush_wal_remove_below.
 *
 * Thread: any; no shared state.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/memory.h"
#include "rush/assert.h"
#include "rush/stream.h"
#include "wal.h"
#include "wal_record.h"

struct replay {
    int dir_fd;
    uint32_t shard_index;
    rush_wal_replay_fn fn;
    void *context;
    struct rush_wal_recovery *out;
    uint64_t *lsns; /* segment first lsns, ascending */
    uint32_t segment_count;
    bool have_batch;
};

struct segment_map {
    const uint8_t *bytes;
    size_t size;
    uint32_t index;
    uint64_t first_lsn;
    char name[RUSH_WAL_SEGMENT_NAME_MAX];
};

/* What a scan of the slots after the end of a segment's data found. */
struct slot_scan {
    int64_t valid_at;     /* offset of the first valid batch header, -1: none */
    uint64_t garbage_end; /* end of the last non-zero 64-byte slot (the start if none) */
};

__attribute__((format(printf, 4, 5))) static int replay_corrupt(struct replay *replay,
                                                                const struct segment_map *map,
                                                                uint64_t offset, const char *format,
                                                                ...)
{
    char what[160];
    va_list args;
    va_start(args, format);
    vsnprintf(what, sizeof(what), format, args);
    va_end(args);
    snprintf(replay->out->message, sizeof(replay->out->message), "%s: offset %" PRIu64 ": %s",
             map->name, offset, what);
    rush_log(RUSH_LOG_ERROR, "rush wal: shard %" PRIu32 ": corrupt log: %s", replay->shard_index,
             replay->out->message);
    return RUSH_ECORRUPT;
}

static int segment_map_open(struct replay *replay, uint32_t index, struct segment_map *map)
{
    memset(map, 0, sizeof(*map));
    map->index = index;
    map->first_lsn = replay->lsns[index];
    rush_wal_segment_name(map->name, sizeof(map->name), replay->shard_index, map->first_lsn);
    struct rush_mapped_file file;
    int rc = rush_memory_map_file(replay->dir_fd, map->name, MADV_SEQUENTIAL, &file);
    map->bytes = file.bytes;
    map->size = file.size;
    return rc;
}

static void segment_map_close(struct segment_map *map)
{
    struct rush_mapped_file file = {.bytes = map->bytes, .size = map->size};
    rush_memory_unmap_file(&file);
    map->bytes = NULL;
}

static bool slot_nonzero(const uint8_t *bytes, size_t len)
{
    uint64_t any = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t word;
        memcpy(&word, bytes + i, sizeof(word));
        any |= word;
    }
    for (; i < len; i++)
        any |= bytes[i];
    return any != 0;
}

/* Scans the 64-byte slots from `from`; valid headers count only at offsets >= valid_from. */
static struct slot_scan slots_scan(const struct segment_map *map, uint32_t shard_index,
                                   uint64_t from, uint64_t valid_from)
{
    struct slot_scan scan = {.valid_at = -1, .garbage_end = from};
    RUSH_ASSERT(from % RUSH_WAL_ALIGN_BYTES == 0);
    /* Bounded: one step per slot of the mapped segment. */
    for (uint64_t offset = from; offset < map->size; offset += RUSH_WAL_ALIGN_BYTES) {
        size_t left = map->size - offset;
        size_t len = left < RUSH_WAL_ALIGN_BYTES ? left : RUSH_WAL_ALIGN_BYTES;
        if (!slot_nonzero(map->bytes + offset, len))
            continue;
        scan.garbage_end = offset + len;
        struct rush_wal_header header;
        if (len == RUSH_WAL_HEADER_BYTES && offset >= valid_from &&
            rush_wal_header_decode(map->bytes + offset, shard_index, &header) ==
                RUSH_WAL_DECODE_OK) {
            scan.valid_at = (int64_t)offset;
            return scan;
        }
    }
    return scan;
}

/* Finds a later segment that holds any valid batch header; *found = its index or UINT32_MAX. */
static int later_valid(struct replay *replay, uint32_t from_index, uint32_t *found)
{
    *found = UINT32_MAX;
    for (uint32_t i = from_index; i < replay->segment_count && *found == UINT32_MAX; i++) {
        struct segment_map map;
        int rc = segment_map_open(replay, i, &map);
        if (rc < 0)
            return rc;
        if (slots_scan(&map, replay->shard_index, 0, 0).valid_at >= 0)
            *found = i;
        segment_map_close(&map);
    }
    return 0;
}

/* Checks one decoded batch against the log so far, hands it over, records it. */
static int replay_batch(struct replay *replay, const struct segment_map *map, uint64_t offset,
                        const struct rush_wal_batch_view *view)
{
    struct rush_wal_recovery *out = replay->out;
    const struct rush_wal_header *header = &view->header;
    if (offset == 0 && header->lsn != map->first_lsn)
        return replay_corrupt(replay, map, offset,
                              "first batch has lsn %" PRIu64 ", the file name says %" PRIu64,
                              header->lsn, map->first_lsn);
    if (!replay->have_batch && map->index > 0)
        return replay_corrupt(replay, map, offset, "batches after an empty segment");
    if (replay->have_batch && header->lsn != out->last_lsn + 1)
        return replay_corrupt(replay, map, offset, "lsn %" PRIu64 " follows lsn %" PRIu64,
                              header->lsn, out->last_lsn);
    if (replay->have_batch && header->prev_checksum != out->last_checksum)
        return replay_corrupt(replay, map, offset, "chain break at lsn %" PRIu64, header->lsn);
    if (replay->have_batch && header->seq_before != out->last_seq)
        return replay_corrupt(replay, map, offset,
                              "lsn %" PRIu64 " says %" PRIu64 " stream events came before it, "
                              "the log holds %" PRIu64,
                              header->lsn, header->seq_before, out->last_seq);
    if (replay->fn != NULL) {
        int rc = replay->fn(replay->context, header->lsn, header->time_ns, view->events,
                            header->event_count);
        if (rc < 0)
            return rc;
    }
    if (!replay->have_batch)
        out->first_lsn = header->lsn;
    replay->have_batch = true;
    out->last_lsn = header->lsn;
    out->last_checksum = header->header_checksum;
    out->last_seq = header->seq_before + rush_stream_count(view->events, header->event_count);
    out->batch_count++;
    out->event_count += header->event_count;
    out->tail_segment_lsn = map->first_lsn;
    out->tail_offset = offset + rush_wal_batch_bytes(header->event_count);
    return 0;
}

/*
 * True when the batch whose header is at `offset` is wholly present: its header has the magic and
 * a possible event count, its extent lies inside the file, and none of its 64-byte slots is all
 * zero (unwritten). Its checksums are not looked at: this is what tells a flipped bit in a
 * complete batch from a write cut short.
 */
static bool batch_complete(const struct segment_map *map, uint64_t offset)
{
    struct rush_wal_header header;
    if (map->size < RUSH_WAL_HEADER_BYTES || offset > map->size - RUSH_WAL_HEADER_BYTES)
        return false;
    memcpy(&header, map->bytes + offset, sizeof(header));
    if (header.magic != RUSH_WAL_MAGIC || header.event_count > RUSH_WAL_BATCH_EVENTS_MAX)
        return false;
    uint64_t extent = rush_wal_batch_bytes(header.event_count);
    if (extent > map->size - offset)
        return false;
    /* Bounded: one step per slot of the batch, at most RUSH_WAL_BATCH_EVENTS_MAX + 1. */
    for (uint64_t at = offset; at < offset + extent; at += RUSH_WAL_ALIGN_BYTES) {
        if (!slot_nonzero(map->bytes + at, RUSH_WAL_ALIGN_BYTES))
            return false;
    }
    return true;
}

/* A stop that no crash can cause: a sealed header refused, or a complete batch failing a checksum.
 */
static bool damage_not_tear(const struct segment_map *map, uint64_t offset,
                            enum rush_wal_decode decode)
{
    switch (decode) {
    case RUSH_WAL_DECODE_VERSION:
    case RUSH_WAL_DECODE_SHARD:
    case RUSH_WAL_DECODE_LENGTH:
        return true;
    case RUSH_WAL_DECODE_HEADER_CHECKSUM:
    case RUSH_WAL_DECODE_EVENTS_CHECKSUM:
        return batch_complete(map, offset);
    case RUSH_WAL_DECODE_OK:
    case RUSH_WAL_DECODE_END:
    case RUSH_WAL_DECODE_SHORT:
    case RUSH_WAL_DECODE_MAGIC:
        return false;
    }
    return false;
}

/* Decides what the end of a segment's data at `offset` is; sets *stop at a torn tail. */
static int segment_end(struct replay *replay, const struct segment_map *map, uint64_t offset,
                       enum rush_wal_decode decode, bool *stop)
{
    struct rush_wal_recovery *out = replay->out;
    struct slot_scan scan =
        slots_scan(map, replay->shard_index, offset, offset + RUSH_WAL_HEADER_BYTES);
    if (scan.valid_at >= 0)
        return replay_corrupt(replay, map, offset,
                              "%s, but a valid batch follows at offset %" PRId64,
                              rush_wal_decode_name(decode), scan.valid_at);
    if (damage_not_tear(map, offset, decode))
        return replay_corrupt(replay, map, offset,
                              "%s in a complete batch (after lsn %" PRIu64
                              "): damage, not a torn write",
                              rush_wal_decode_name(decode), out->last_lsn);
    bool last = map->index + 1 == replay->segment_count;
    if (decode == RUSH_WAL_DECODE_END && scan.garbage_end == offset)
        return last || offset > 0 ? 0
                                  : replay_corrupt(replay, map, offset,
                                                   "empty segment before "
                                                   "later segments");
    uint32_t found = UINT32_MAX;
    int rc = later_valid(replay, map->index + 1, &found);
    if (rc < 0)
        return rc;
    if (found != UINT32_MAX)
        return replay_corrupt(replay, map, offset,
                              "%s, but later segment %" PRIu32 " of %" PRIu32
                              " holds valid batches",
                              rush_wal_decode_name(decode), found + 1, replay->segment_count);
    bool is_tail = replay->have_batch ? out->tail_segment_lsn == map->first_lsn : map->index == 0;
    uint64_t cut = scan.garbage_end - offset;
    if (is_tail)
        out->tail_cut_bytes = cut;
    out->torn = true;
    *stop = true;
    snprintf(out->message, sizeof(out->message),
             "%s: offset %" PRIu64 ": %s: torn tail of %" PRIu64 " bytes cut after lsn %" PRIu64,
             map->name, offset, rush_wal_decode_name(decode), cut, out->last_lsn);
    rush_log(RUSH_LOG_WARN, "rush wal: shard %" PRIu32 ": %s", replay->shard_index, out->message);
    return 0;
}

static int replay_segment(struct replay *replay, uint32_t index, bool *stop)
{
    struct segment_map map;
    int rc = segment_map_open(replay, index, &map);
    if (rc < 0)
        return rc;
    uint64_t offset = 0;
    enum rush_wal_decode decode = RUSH_WAL_DECODE_END;
    /* Bounded: every batch takes at least one 64-byte slot. */
    for (uint64_t n = 0; n <= map.size / RUSH_WAL_ALIGN_BYTES; n++) {
        struct rush_wal_batch_view view;
        const uint8_t *at = map.bytes != NULL ? map.bytes + offset : NULL; /* empty file */
        decode = rush_wal_batch_decode(at, map.size - offset, replay->shard_index, &view);
        if (decode != RUSH_WAL_DECODE_OK)
            break;
        rc = replay_batch(replay, &map, offset, &view);
        if (rc < 0)
            goto out_unmap;
        offset += rush_wal_batch_bytes(view.header.event_count);
    }
    RUSH_ASSERT(decode != RUSH_WAL_DECODE_OK);
    rc = segment_end(replay, &map, offset, decode, stop);
out_unmap:
    segment_map_close(&map);
    return rc;
}

/* No good batch anywhere: continue in the first segment, at its first lsn. */
static void replay_empty_tail(struct replay *replay)
{
    struct rush_wal_recovery *out = replay->out;
    if (replay->have_batch || replay->segment_count == 0)
        return;
    uint64_t first = replay->lsns[0];
    out->tail_segment_lsn = first;
    out->tail_offset = 0;
    out->last_lsn = first > 0 ? first - 1 : 0;
}

int rush_wal_replay(const char *dir, uint32_t shard_index, rush_wal_replay_fn fn, void *context,
                    struct rush_wal_recovery *out)
{
    RUSH_ASSERT(dir != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    struct replay replay = {.shard_index = shard_index, .fn = fn, .context = context, .out = out};
    replay.dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (replay.dir_fd < 0)
        return -errno;
    int rc = rush_wal_segments_list(replay.dir_fd, shard_index, &replay.lsns);
    if (rc < 0)
        goto out_close_dir;
    replay.segment_count = (uint32_t)rc;
    out->segment_count = replay.segment_count;
    rc = 0;
    bool stop = false;
    for (uint32_t i = 0; i < replay.segment_count && rc == 0 && !stop; i++)
        rc = replay_segment(&replay, i, &stop);
    if (rc == 0)
        replay_empty_tail(&replay);
    free(replay.lsns);
out_close_dir:
    close(replay.dir_fd);
    return rc;
}

int rush_wal_remove_below(const char *dir, uint32_t shard_index, uint64_t lsn)
{
    RUSH_ASSERT(dir != NULL);
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        return -errno;
    uint64_t *lsns = NULL;
    int rc = rush_wal_segments_list(dir_fd, shard_index, &lsns);
    if (rc < 0)
        goto out_close_dir;
    uint32_t count = (uint32_t)rc;
    int removed = 0;
    rc = 0;
    /* Segment i holds lsns [lsns[i], lsns[i + 1]); the newest is never removed. */
    for (uint32_t i = 0; i + 1 < count && lsns[i + 1] <= lsn && rc == 0; i++) {
        char name[RUSH_WAL_SEGMENT_NAME_MAX];
        rush_wal_segment_name(name, sizeof(name), shard_index, lsns[i]);
        if (unlinkat(dir_fd, name, 0) < 0)
            rc = -errno;
        else
            removed++;
    }
    if (removed > 0 && fsync(dir_fd) < 0 && rc == 0)
        rc = -errno;
    free(lsns);
    if (rc == 0)
        rc = removed;
out_close_dir:
    close(dir_fd);
    return rc;
}
