/*
 * stream_reader.c — see stream_reader.h for the workload, the position and its states.
 */
#include "stream_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rush/assert.h"
#include "rush/stream.h"

#define BUFFER_BYTES_FIRST (4u << 20) /* the WAL's default buffer: its largest batch */

__attribute__((format(printf, 3, 4))) static int reader_fail(struct rush_stream_reader *reader,
                                                             int rc, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(reader->why, sizeof(reader->why), format, args);
    va_end(args);
    return rc;
}

int rush_stream_reader_open(struct rush_stream_reader *reader, const char *dir,
                            uint32_t shard_index)
{
    memset(reader, 0, sizeof(*reader));
    reader->segment_fd = -1;
    reader->shard_index = shard_index;
    reader->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (reader->dir_fd < 0)
        return reader_fail(reader, -errno, "%s: %s", dir, strerror(errno));
    return 0;
}

static void segment_close(struct rush_stream_reader *reader)
{
    if (reader->segment_fd >= 0)
        close(reader->segment_fd);
    reader->segment_fd = -1;
}

void rush_stream_reader_close(struct rush_stream_reader *reader)
{
    segment_close(reader);
    if (reader->dir_fd >= 0)
        close(reader->dir_fd);
    reader->dir_fd = -1;
    free(reader->buffer);
    reader->buffer = NULL;
}

static int segment_open(struct rush_stream_reader *reader, uint64_t first_lsn)
{
    segment_close(reader);
    char name[RUSH_WAL_SEGMENT_NAME_MAX];
    rush_wal_segment_name(name, sizeof(name), reader->shard_index, first_lsn);
    int fd = openat(reader->dir_fd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int rc = -errno;
        if (fd >= 0)
            close(fd);
        return reader_fail(reader, rc, "%s: %s", name, strerror(-rc));
    }
    reader->segment_fd = fd;
    reader->segment_first_lsn = first_lsn;
    reader->segment_bytes = (uint64_t)st.st_size;
    reader->offset = 0;
    return 0;
}

/* The first lsns of the shard's segments, ascending (the caller frees); the count or < 0. */
static int segments(struct rush_stream_reader *reader, uint64_t **lsns)
{
    int rc = rush_wal_segments_list(reader->dir_fd, reader->shard_index, lsns);
    return rc < 0 ? reader_fail(reader, rc, "listing the log: %s", strerror(-rc)) : rc;
}

/* Reads the header at `offset` of the open segment: 1 read, 0 none there (end of data). */
static int header_at(struct rush_stream_reader *reader, uint64_t offset,
                     struct rush_wal_header *header)
{
    uint8_t bytes[RUSH_WAL_HEADER_BYTES];
    if (offset + sizeof(bytes) > reader->segment_bytes)
        return 0;
    ssize_t got = pread(reader->segment_fd, bytes, sizeof(bytes), (off_t)offset);
    if (got < 0)
        return reader_fail(reader, -errno, "reading lsn %" PRIu64 ": %s", reader->next_lsn,
                           strerror(errno));
    if ((size_t)got < sizeof(bytes))
        return 0;
    enum rush_wal_decode decode = rush_wal_header_decode(bytes, reader->shard_index, header);
    if (decode == RUSH_WAL_DECODE_OK)
        return 1;
    static const uint8_t zero[RUSH_WAL_HEADER_BYTES];
    if (memcmp(bytes, zero, sizeof(zero)) == 0)
        return 0;
    return reader_fail(reader, RUSH_ECORRUPT, "segment %" PRIu64 " offset %" PRIu64 ": %s",
                       reader->segment_first_lsn, offset, rush_wal_decode_name(decode));
}

/* Opens the segment that starts with the batch `lsn`; -ENOENT when there is none. */
static int segment_starting_at(struct rush_stream_reader *reader, uint64_t lsn)
{
    uint64_t *lsns = NULL;
    int count = segments(reader, &lsns);
    bool found = false;
    for (int i = 0; i < count && !found; i++)
        found = lsns[i] == lsn;
    free(lsns);
    if (count < 0)
        return count;
    if (!found)
        return reader_fail(reader, -ENOENT, "no segment starts at lsn %" PRIu64, lsn);
    return segment_open(reader, lsn);
}

static int buffer_fit(struct rush_stream_reader *reader, uint64_t bytes)
{
    if (reader->buffer != NULL && bytes <= reader->buffer_bytes)
        return 0;
    if (bytes > RUSH_STREAM_READER_BATCH_BYTES_MAX)
        return reader_fail(reader, RUSH_ECORRUPT, "lsn %" PRIu64 ": a batch of %" PRIu64 " bytes",
                           reader->next_lsn, bytes);
    uint64_t want = bytes > BUFFER_BYTES_FIRST ? bytes : BUFFER_BYTES_FIRST;
    void *buffer = NULL;
    if (posix_memalign(&buffer, RUSH_WAL_ALIGN_BYTES, want) != 0)
        return reader_fail(reader, -ENOMEM, "no memory for a batch of %" PRIu64 " bytes", bytes);
    free(reader->buffer);
    reader->buffer = buffer;
    reader->buffer_bytes = want;
    return 0;
}

/* Reads and verifies the whole batch whose header is at the reader's offset. */
static int batch_read(struct rush_stream_reader *reader, const struct rush_wal_header *header,
                      struct rush_wal_batch_view *out)
{
    uint64_t bytes = rush_wal_batch_bytes(header->event_count);
    int rc = buffer_fit(reader, bytes);
    if (rc < 0)
        return rc;
    ssize_t got = pread(reader->segment_fd, reader->buffer, bytes, (off_t)reader->offset);
    if (got < 0)
        return reader_fail(reader, -errno, "reading lsn %" PRIu64 ": %s", header->lsn,
                           strerror(errno));
    enum rush_wal_decode decode =
        rush_wal_batch_decode(reader->buffer, (size_t)got, reader->shard_index, out);
    if (decode != RUSH_WAL_DECODE_OK || out->header.lsn != header->lsn)
        return reader_fail(
            reader, RUSH_ECORRUPT, "segment %" PRIu64 " offset %" PRIu64 ": lsn %" PRIu64 ": %s",
            reader->segment_first_lsn, reader->offset, header->lsn, rush_wal_decode_name(decode));
    return 0;
}

/*
 * The header of batch next_lsn: in the open segment, or at the start of the segment named for
 * it when the open one has ended. 1 found; -ENOENT / RUSH_ECORRUPT when it should be there.
 */
static int next_header(struct rush_stream_reader *reader, struct rush_wal_header *header)
{
    int rc = reader->segment_fd >= 0 ? header_at(reader, reader->offset, header) : 0;
    if (rc == 0) {
        rc = segment_starting_at(reader, reader->next_lsn);
        if (rc == 0)
            rc = header_at(reader, 0, header);
        if (rc == 0)
            rc = reader_fail(reader, RUSH_ECORRUPT, "lsn %" PRIu64 " is missing from its segment",
                             reader->next_lsn);
    }
    if (rc < 0)
        return rc;
    if (header->lsn != reader->next_lsn ||
        (header->seq_before != reader->next_seq_before && reader->next_seq_before != UINT64_MAX))
        return reader_fail(reader, RUSH_ECORRUPT,
                           "segment %" PRIu64 " offset %" PRIu64 ": lsn %" PRIu64 " (seq %" PRIu64
                           ") where lsn %" PRIu64 " (seq %" PRIu64 ") belongs",
                           reader->segment_first_lsn, reader->offset, header->lsn,
                           header->seq_before, reader->next_lsn, reader->next_seq_before);
    return 1;
}

int rush_stream_reader_next(struct rush_stream_reader *reader, uint64_t lsn_limit,
                            struct rush_wal_batch_view *out, struct rush_stream_position *at)
{
    RUSH_ASSERT(reader->next_lsn != 0);
    if (reader->next_lsn > lsn_limit)
        return 0;
    struct rush_wal_header header;
    int rc = next_header(reader, &header);
    if (rc == 1)
        rc = batch_read(reader, &header, out);
    if (rc < 0) {
        reader->next_lsn = 0; /* unpositioned: the caller seeks again */
        return rc;
    }
    if (at != NULL)
        *at = (struct rush_stream_position){.segment_first_lsn = reader->segment_first_lsn,
                                            .offset = reader->offset,
                                            .lsn = header.lsn,
                                            .seq_before = header.seq_before};
    reader->offset += rush_wal_batch_bytes(header.event_count);
    reader->next_lsn++;
    reader->next_seq_before =
        header.seq_before + rush_stream_count(out->events, header.event_count);
    return 1;
}

int rush_stream_reader_seek_position(struct rush_stream_reader *reader,
                                     const struct rush_stream_position *position)
{
    reader->next_lsn = 0;
    int rc = reader->segment_fd >= 0 && reader->segment_first_lsn == position->segment_first_lsn
                 ? 0
                 : segment_open(reader, position->segment_first_lsn);
    if (rc < 0)
        return rc;
    reader->offset = position->offset;
    reader->next_lsn = position->lsn;
    reader->next_seq_before = position->seq_before;
    return 0;
}

/*
 * The last segment whose first batch satisfies `before` (its first lsn <= key, or its first
 * seq_before < key), opened at offset 0 with its first header in *first. -ERANGE when even the
 * oldest does not (its header in *first), -ENOENT when the log has no batch.
 */
static int segment_before(struct rush_stream_reader *reader, bool by_seq, uint64_t key,
                          struct rush_wal_header *first)
{
    uint64_t *lsns = NULL;
    int count = segments(reader, &lsns);
    int rc = count > 0 ? -ERANGE : -ENOENT;
    /* Bounded: one header read per segment, newest first. */
    for (int i = count - 1; i >= 0; i--) {
        int found = segment_open(reader, lsns[i]);
        if (found == 0)
            found = header_at(reader, 0, first);
        if (found < 0) {
            rc = found;
            break;
        }
        if (found == 0) /* a segment created just now, not yet written */
            continue;
        if (by_seq ? first->seq_before < key : first->lsn <= key) {
            rc = 0;
            break;
        }
    }
    free(lsns);
    if (count <= 0)
        return count < 0 ? count : rc;
    return rc;
}

/* Moves to the batch header at the reader's offset + `skip` if it exists and is within limits. */
static int hop(struct rush_stream_reader *reader, const struct rush_wal_header *from,
               uint64_t lsn_limit, struct rush_wal_header *to)
{
    if (from->lsn + 1 > lsn_limit)
        return 0;
    uint64_t offset = reader->offset + rush_wal_batch_bytes(from->event_count);
    int rc = header_at(reader, offset, to);
    if (rc == 1 && to->lsn != from->lsn + 1)
        return reader_fail(reader, RUSH_ECORRUPT,
                           "segment %" PRIu64 " offset %" PRIu64 ": lsn %" PRIu64 " after %" PRIu64,
                           reader->segment_first_lsn, offset, to->lsn, from->lsn);
    if (rc == 1)
        reader->offset = offset;
    return rc;
}

int rush_stream_reader_seek_seq(struct rush_stream_reader *reader, uint64_t seq, uint64_t lsn_limit,
                                uint64_t *oldest_seq)
{
    RUSH_ASSERT(seq >= 1);
    reader->next_lsn = 0;
    struct rush_wal_header header;
    int rc = segment_before(reader, true, seq, &header);
    if (rc == -ERANGE)
        *oldest_seq = header.seq_before + 1;
    if (rc < 0 || header.lsn > lsn_limit)
        return rc < 0 ? rc : -ENOENT;
    /* Hop while the next batch still starts before seq. Bounded: batches in one segment. */
    struct rush_wal_header next;
    while ((rc = hop(reader, &header, lsn_limit, &next)) == 1 && next.seq_before < seq)
        header = next;
    if (rc < 0)
        return rc;
    if (rc == 1) /* hop moved onto `next`, which starts at or after seq: step back */
        reader->offset -= rush_wal_batch_bytes(header.event_count);
    reader->next_lsn = header.lsn;
    reader->next_seq_before = header.seq_before;
    return 0;
}

int rush_stream_reader_seek_after(struct rush_stream_reader *reader, uint64_t lsn,
                                  uint64_t *seq_out)
{
    reader->next_lsn = 0;
    *seq_out = 0;
    if (lsn == 0) { /* before the first batch ever: it will start segment 1 */
        segment_close(reader);
        reader->next_lsn = 1;
        reader->next_seq_before = 0;
        return 0;
    }
    struct rush_wal_header header;
    int rc = segment_before(reader, false, lsn, &header);
    if (rc < 0)
        return reader_fail(reader, RUSH_ECORRUPT, "lsn %" PRIu64 " is not in the log", lsn);
    struct rush_wal_header next;
    while (header.lsn < lsn && (rc = hop(reader, &header, lsn, &next)) == 1)
        header = next;
    if (rc < 0 || header.lsn != lsn)
        return reader_fail(reader, RUSH_ECORRUPT, "lsn %" PRIu64 " is not in the log", lsn);
    reader->next_lsn = lsn;
    reader->next_seq_before = header.seq_before;
    struct rush_wal_batch_view view;
    rc = rush_stream_reader_next(reader, lsn, &view, NULL);
    if (rc < 0)
        return rc;
    *seq_out = reader->next_seq_before;
    return 0;
}

int rush_stream_reader_oldest_seq(struct rush_stream_reader *reader, uint64_t *oldest_seq)
{
    struct rush_wal_header header;
    int rc = segment_before(reader, true, 0, &header); /* no seq_before < 0: ends at the oldest */
    reader->next_lsn = 0;
    if (rc == -ENOENT) {
        *oldest_seq = 1;
        return 0;
    }
    if (rc == -ERANGE) {
        *oldest_seq = header.seq_before + 1;
        return 0;
    }
    return rc;
}
