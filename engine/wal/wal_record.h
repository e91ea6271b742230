/*
 * wal_record.h — the on-disk form of a write-ahead log batch and of segment names.
 *
 * Shared by the writer (wal.c) and the reader (wal_replay.c), and by tests that forge damage.
 *
 * A batch is a 64-byte header followed by `event_count` 64-byte struct rush_event records, so
 * every batch starts on a 64-byte boundary of its segment. All fields are little-endian (the
 * engine only builds on little-endian hosts; see the static_assert in wal_record.c).
 *
 *   offset  size  field
 *        0     4  magic            "RWAL"
 *        4     2  version          RUSH_WAL_VERSION
 *        6     2  flags            zero
 *        8     4  shard_index      the shard that wrote it
 *       12     4  event_count
 *       16     8  lsn              batch sequence number: 1, 2, 3, ... per shard, no gaps
 *       24     8  time_ns          engine clock stamp of the batch
 *       32     8  events_checksum  XXH3-64 of the event bytes
 *       40     8  prev_checksum    header_checksum of the batch before (0 before the first)
 *       48     8  seq_before       stream events (rush/stream.h) in all earlier batches
 *       56     8  header_checksum  XXH3-64 of bytes 0..55
 *
 * The batch is 64 + 64 * event_count bytes long. The header checksum covers the events checksum
 * and the previous header checksum, so the header checksums form a hash chain over the whole log.
 * seq_before numbers the stream: the i-th event the stream carries in this batch (counting from 1)
 * has stream seq seq_before + i, so a reader of any one segment knows the seqs it holds, and
 * seq_before of a batch equals seq_before + carried events of the batch before it.
 *
 * Segment files are named wal-<shard, 2+ decimal digits>-<first lsn, 16 hex digits>.log.
 *
 * Thread: none of its own; pure functions.
 */
#ifndef RUSH_WAL_RECORD_H
#define RUSH_WAL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rush/types.h"

#define RUSH_WAL_MAGIC UINT32_C(0x4c415752) /* "RWAL" read as a little-endian u32 */
#define RUSH_WAL_VERSION 2
#define RUSH_WAL_HEADER_BYTES 64u
#define RUSH_WAL_ALIGN_BYTES 64u
/* A hard limit so that a forged count cannot overflow arithmetic: 16 Mi events (1 GiB). */
#define RUSH_WAL_BATCH_EVENTS_MAX (UINT32_C(1) << 24)
#define RUSH_WAL_SEGMENT_NAME_MAX 64

struct rush_wal_header {
    uint32_t magic;
    uint16_t version;
    uint16_t flags;
    uint32_t shard_index;
    uint32_t event_count;
    uint64_t lsn;
    int64_t time_ns;
    uint64_t events_checksum;
    uint64_t prev_checksum;
    uint64_t seq_before;
    uint64_t header_checksum;
};
static_assert(sizeof(struct rush_wal_header) == RUSH_WAL_HEADER_BYTES, "batch header is 64 bytes");
static_assert(offsetof(struct rush_wal_header, header_checksum) == 56, "checksum is last");

/* What decoding the bytes at one offset found. */
enum rush_wal_decode {
    RUSH_WAL_DECODE_OK = 0,
    RUSH_WAL_DECODE_END = 1,             /* an all-zero header, or nothing left: no batch here */
    RUSH_WAL_DECODE_SHORT = 2,           /* the bytes end inside the header or the events */
    RUSH_WAL_DECODE_MAGIC = 3,           /* not a batch header */
    RUSH_WAL_DECODE_VERSION = 4,         /* a version this build does not read */
    RUSH_WAL_DECODE_HEADER_CHECKSUM = 5, /* the header is damaged */
    RUSH_WAL_DECODE_SHARD = 6,           /* written by another shard */
    RUSH_WAL_DECODE_LENGTH = 7,          /* event_count beyond the limit, or flags set */
    RUSH_WAL_DECODE_EVENTS_CHECKSUM = 8, /* the events are damaged */
};

/* A decoded batch: a view into the caller's bytes. */
struct rush_wal_batch_view {
    struct rush_wal_header header;
    const struct rush_event *events; /* points into the decoded buffer */
};

/* Bytes a batch of `event_count` events takes on disk. */
static inline uint64_t rush_wal_batch_bytes(uint32_t event_count)
{
    return RUSH_WAL_HEADER_BYTES + (uint64_t)event_count * sizeof(struct rush_event);
}

uint64_t rush_wal_events_checksum(const struct rush_event *events, uint32_t event_count);
/* Computes and stores header->header_checksum. */
void rush_wal_header_seal(struct rush_wal_header *header);
/* Checks only the 64 header bytes at `bytes` (len >= 64): magic, version, checksum, shard. */
enum rush_wal_decode rush_wal_header_decode(const uint8_t *bytes, uint32_t shard_index,
                                            struct rush_wal_header *out);
/*
 * Decodes the batch at bytes[0..len): never reads past len. On OK, `out` holds the header and
 * a view of the events (bytes must be 8-byte aligned for that view, as mmap'd segments are).
 */
enum rush_wal_decode rush_wal_batch_decode(const uint8_t *bytes, size_t len, uint32_t shard_index,
                                           struct rush_wal_batch_view *out);
const char *rush_wal_decode_name(enum rush_wal_decode decode);

/* Writes the segment file name; returns the length (always < RUSH_WAL_SEGMENT_NAME_MAX). */
int rush_wal_segment_name(char *out, size_t size, uint32_t shard_index, uint64_t first_lsn);
/* True when `name` is exactly a segment name of this shard; stores its first lsn. */
bool rush_wal_segment_parse(const char *name, uint32_t shard_index, uint64_t *first_lsn);
/*
 * Lists the shard's segments in the directory open at dir_fd: stores a malloc'd array of their
 * first lsns, ascending, in *lsns_out (the caller frees it; NULL when none). Returns the count
 * (at most RUSH_WAL_SEGMENTS_MAX) or -errno (-EMFILE beyond the limit).
 */
#define RUSH_WAL_SEGMENTS_MAX (1u << 20)
RUSH_MUST_USE int rush_wal_segments_list(int dir_fd, uint32_t shard_index, uint64_t **lsns_out);

#endif
