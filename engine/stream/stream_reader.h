/*
 * stream_reader.h — reading a shard's log files from another thread while the shard appends:
 * the publisher's live tail and the replay service's look-ups by stream seq.
 *
 * Workload. The live tail reads every batch once, right after it became durable (up to about a
 * million events a second per shard, in batches of hundreds to thousands); a replay look-up
 * finds the batch holding a seq by reading one header per segment, then hopping from header to
 * header inside one segment (a 64 MiB segment of 1,000-event batches is ~1,000 hops of 64 bytes),
 * and reads whole batches only where events are served. Reads are pread(2) into one buffer
 * allocated at open (a batch is never larger than a WAL buffer): no mapping whose file could be
 * removed under it, and an open descriptor keeps a removed segment readable.
 *
 * The reader only ever reads batches at or below the `lsn_limit` its caller passes: the
 * shard's durable lsn, so every byte it reads was completely written (wal.h).
 *
 * Position. `next_lsn` is the batch the next read returns; `next_seq_before` what its header
 * must say (the stream events before it), checked so that the numbering the reader hands out
 * never jumps.
 *
 *   unpositioned --seek_after(lsn) / seek_seq(seq)--> positioned --next--> positioned (+1 batch)
 *        (a failed seek leaves it unpositioned)          | segment ends: the next segment is
 *                                                        | the one named next_lsn
 * Thread: a reader belongs to one thread; any number of readers may read one shard's log.
 */
#ifndef RUSH_STREAM_READER_H
#define RUSH_STREAM_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "rush/types.h"
#include "wal/wal.h"
#include "wal/wal_record.h"

/* A batch read is at most one WAL buffer. */
#define RUSH_STREAM_READER_BATCH_BYTES_MAX ((uint64_t)RUSH_WAL_BUFFER_BYTES_MAX)

struct rush_stream_reader {
    int dir_fd;
    uint32_t shard_index;
    int segment_fd;             /* -1: none open */
    uint64_t segment_first_lsn; /* of the open segment */
    uint64_t segment_bytes;     /* its size when opened */
    uint64_t offset;            /* of the next batch in it */
    uint64_t next_lsn;          /* 0: unpositioned */
    uint64_t next_seq_before;
    uint8_t *buffer; /* 64-byte aligned; grows to the largest batch read */
    uint64_t buffer_bytes;
    char why[200]; /* the last error */
};

/* Where a batch lies, to come back to it (see rush_stream_reader_last). */
struct rush_stream_position {
    uint64_t segment_first_lsn;
    uint64_t offset;
    uint64_t lsn;
    uint64_t seq_before;
};

RUSH_MUST_USE int rush_stream_reader_open(struct rush_stream_reader *reader, const char *dir,
                                          uint32_t shard_index);
void rush_stream_reader_close(struct rush_stream_reader *reader);

/*
 * Positions the reader after batch `lsn` (0: before the first batch ever) and stores the stream
 * seq of the last event carried up to and including it. 0, or < 0 (the batch is not in the
 * log: RUSH_ECORRUPT with reader->why).
 */
RUSH_MUST_USE int rush_stream_reader_seek_after(struct rush_stream_reader *reader, uint64_t lsn,
                                                uint64_t *seq_out);
/*
 * Positions the reader at the batch holding stream seq `seq` (>= 1), or the last batch at or
 * below lsn_limit when seq is beyond them. -ERANGE when the log no longer holds it, with
 * *oldest_seq the oldest seq it does hold; -ENOENT when the log has no batch at all.
 */
RUSH_MUST_USE int rush_stream_reader_seek_seq(struct rush_stream_reader *reader, uint64_t seq,
                                              uint64_t lsn_limit, uint64_t *oldest_seq);
/* Positions the reader at a batch rush_stream_reader_next returned before. */
RUSH_MUST_USE int rush_stream_reader_seek_position(struct rush_stream_reader *reader,
                                                   const struct rush_stream_position *position);

/*
 * Reads the next batch when its lsn is at or below lsn_limit: 1, and `out` views it in the
 * reader's buffer until the next call; 0 when it is beyond the limit; < 0 on damage or I/O
 * error (RUSH_ECORRUPT / -errno, reader->why says which file and offset). `at` (may be NULL)
 * gets where the batch lies.
 */
RUSH_MUST_USE int rush_stream_reader_next(struct rush_stream_reader *reader, uint64_t lsn_limit,
                                          struct rush_wal_batch_view *out,
                                          struct rush_stream_position *at);

/* The oldest stream seq the log still holds (1 when it starts at the beginning). */
RUSH_MUST_USE int rush_stream_reader_oldest_seq(struct rush_stream_reader *reader,
                                                uint64_t *oldest_seq);

#endif
