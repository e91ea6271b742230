/*
 * The stream reader (engine/stream/stream_reader.c) over a real log written by rush_wal in
 * small segments: every batch read in order across segment ends with the stream numbering
 * checked; the lsn limit honoured; seek_after, seek_seq (inside, at the edges, beyond the head,
 * removed ranges) and seek_position; the oldest seq before and after segments are removed; an
 * empty log; and hostile files: a flipped byte, a batch missing, a directory that is not there.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rush/stream.h"
#include "stream/stream_reader.h"
#include "wal/wal.h"
#include "wal/wal_record.h"

#define SHARD 2
#define BATCHES 400u
#define EVENTS_MAX 12u

static char dir[256];
static struct rush_stream_reader reader;
static uint64_t seq_after[BATCHES + 1]; /* stream events up to and including batch lsn */

static void dir_make(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rush-test-stream-reader-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    reader.dir_fd = -1;
    reader.segment_fd = -1;
}

static void dir_remove(void)
{
    rush_stream_reader_close(&reader);
    char command[320];
    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    cr_assert_eq(system(command), 0);
}

TestSuite(stream_reader, .init = dir_make, .fini = dir_remove, .timeout = 60);

/* Batch lsn carries 0..11 events; every third is a reservation, which the stream skips. */
static uint32_t count_of(uint64_t lsn)
{
    return (uint32_t)((lsn * 2654435761u) % EVENTS_MAX);
}

static struct rush_event event_of(uint64_t lsn, uint32_t i)
{
    struct rush_event event;
    memset(&event, 0, sizeof(event));
    event.type = i % 3 == 2 ? RUSH_EV_ORDER_RESERVED : RUSH_EV_ORDER_CONFIRMED;
    event.qty = 1;
    event.order_id = lsn * 1000 + i;
    event.sku_id = 7;
    event.user_id = lsn;
    return event;
}

/* Writes BATCHES batches in 8 KiB segments (a few dozen files) and closes the log. */
static void write_log(void)
{
    struct rush_wal_config config;
    rush_wal_config_default(&config, dir, SHARD);
    config.segment_bytes = 8192;
    config.buffer_bytes_max = 4096;
    config.force_no_uring = true;
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), 0);
    for (uint64_t lsn = 1; lsn <= BATCHES; lsn++) {
        struct rush_event events[EVENTS_MAX];
        uint32_t count = count_of(lsn);
        for (uint32_t i = 0; i < count; i++)
            events[i] = event_of(lsn, i);
        cr_assert_eq(rush_wal_append(wal, 1700000000000000000ll + (int64_t)lsn, events, count), 0);
        cr_assert_eq(rush_wal_appended_lsn(wal), lsn);
        seq_after[lsn] = seq_after[lsn - 1] + rush_stream_count(events, count);
        cr_assert_eq(rush_wal_appended_seq(wal), seq_after[lsn]);
    }
    cr_assert_eq(rush_wal_close(wal), 0);
    cr_assert_eq(rush_stream_reader_open(&reader, dir, SHARD), 0);
}

/* Reads the next batch and checks it is batch `lsn`, event for event. */
static void expect_next(uint64_t lsn, struct rush_stream_position *at)
{
    struct rush_wal_batch_view view;
    int rc = rush_stream_reader_next(&reader, BATCHES, &view, at);
    cr_assert_eq(rc, 1, "lsn %lu: %d %s", lsn, rc, reader.why);
    cr_assert_eq(view.header.lsn, lsn);
    cr_assert_eq(view.header.seq_before, seq_after[lsn - 1], "lsn %lu", lsn);
    cr_assert_eq(view.header.event_count, count_of(lsn));
    for (uint32_t i = 0; i < view.header.event_count; i++) {
        struct rush_event want = event_of(lsn, i);
        cr_assert_eq(memcmp(&view.events[i], &want, sizeof(want)), 0, "lsn %lu event %u", lsn, i);
    }
}

/* The batch holding stream seq `seq`. */
static uint64_t lsn_of_seq(uint64_t seq)
{
    for (uint64_t lsn = 1; lsn <= BATCHES; lsn++)
        if (seq_after[lsn] >= seq)
            return lsn;
    return 0;
}

Test(stream_reader, reads_every_batch_in_order_across_segments)
{
    write_log();
    uint64_t seq = 0;
    cr_assert_eq(rush_stream_reader_seek_after(&reader, 0, &seq), 0);
    cr_assert_eq(seq, 0);
    uint64_t segments_seen = 0, last_segment = 0;
    for (uint64_t lsn = 1; lsn <= BATCHES; lsn++) {
        struct rush_stream_position at;
        expect_next(lsn, &at);
        segments_seen += at.segment_first_lsn != last_segment;
        last_segment = at.segment_first_lsn;
        cr_assert_eq(at.lsn, lsn);
    }
    cr_assert_gt(segments_seen, 10, "the log rolled over many segments");
    struct rush_wal_batch_view view;
    cr_assert_eq(rush_stream_reader_next(&reader, BATCHES, &view, NULL), 0, "nothing beyond");
}

Test(stream_reader, stops_at_the_lsn_limit_and_goes_on_when_it_rises)
{
    write_log();
    uint64_t seq;
    cr_assert_eq(rush_stream_reader_seek_after(&reader, 0, &seq), 0);
    struct rush_wal_batch_view view;
    for (uint64_t lsn = 1; lsn <= 50; lsn++)
        cr_assert_eq(rush_stream_reader_next(&reader, 50, &view, NULL), 1);
    cr_assert_eq(rush_stream_reader_next(&reader, 50, &view, NULL), 0, "batch 51 is not durable");
    cr_assert_eq(rush_stream_reader_next(&reader, 50, &view, NULL), 0);
    expect_next(51, NULL);
}

Test(stream_reader, seek_after_a_batch_gives_its_seq_and_reads_the_next)
{
    write_log();
    uint64_t lsns[] = {1, 2, 37, 199, 200, 201, BATCHES - 1, BATCHES};
    for (size_t i = 0; i < sizeof(lsns) / sizeof(lsns[0]); i++) {
        uint64_t seq = 0;
        int rc = rush_stream_reader_seek_after(&reader, lsns[i], &seq);
        cr_assert_eq(rc, 0, "lsn %lu: %s", lsns[i], reader.why);
        cr_assert_eq(seq, seq_after[lsns[i]], "lsn %lu", lsns[i]);
        if (lsns[i] < BATCHES)
            expect_next(lsns[i] + 1, NULL);
    }
    uint64_t seq = 99;
    cr_assert_eq(rush_stream_reader_seek_after(&reader, BATCHES + 1, &seq), RUSH_ECORRUPT,
                 "a batch the log never had");
    cr_assert_eq(seq, 0);
    cr_assert_neq(reader.why[0], '\0');
}

Test(stream_reader, seek_seq_finds_the_batch_holding_each_seq)
{
    write_log();
    uint64_t head = seq_after[BATCHES], oldest = 0;
    for (uint64_t seq = 1; seq <= head; seq += 1 + seq / 7) {
        int rc = rush_stream_reader_seek_seq(&reader, seq, BATCHES, &oldest);
        cr_assert_eq(rc, 0, "seq %lu: %d %s", seq, rc, reader.why);
        uint64_t lsn = lsn_of_seq(seq);
        cr_assert_eq(reader.next_lsn, lsn, "seq %lu is in batch %lu", seq, lsn);
        expect_next(lsn, NULL);
    }
    /* beyond the head: the last batch at or below the limit */
    cr_assert_eq(rush_stream_reader_seek_seq(&reader, head + 100, BATCHES, &oldest), 0);
    cr_assert_eq(reader.next_lsn, BATCHES);
    /* and when the newest batch is not durable yet (a limit inside the newest segment) */
    cr_assert_eq(rush_stream_reader_seek_seq(&reader, head + 100, BATCHES - 1, &oldest), 0);
    cr_assert_eq(reader.next_lsn, BATCHES - 1);
}

Test(stream_reader, seek_position_returns_to_a_batch_read_before)
{
    write_log();
    uint64_t seq;
    cr_assert_eq(rush_stream_reader_seek_after(&reader, 0, &seq), 0);
    struct rush_stream_position positions[BATCHES + 1];
    for (uint64_t lsn = 1; lsn <= BATCHES; lsn++)
        expect_next(lsn, &positions[lsn]);
    uint64_t back[] = {BATCHES, 1, 123, 124, 300};
    for (size_t i = 0; i < sizeof(back) / sizeof(back[0]); i++) {
        cr_assert_eq(rush_stream_reader_seek_position(&reader, &positions[back[i]]), 0);
        expect_next(back[i], NULL);
    }
}

Test(stream_reader, removed_segments_move_the_oldest_seq_and_answer_erange)
{
    write_log();
    uint64_t oldest = 0;
    cr_assert_eq(rush_stream_reader_oldest_seq(&reader, &oldest), 0);
    cr_assert_eq(oldest, 1);
    int removed = rush_wal_remove_below(dir, SHARD, 200);
    cr_assert_gt(removed, 0);
    cr_assert_eq(rush_stream_reader_oldest_seq(&reader, &oldest), 0);
    cr_assert_gt(oldest, 1);
    cr_assert_leq(oldest, seq_after[199] + 1, "batches from 200 on are all kept");
    uint64_t told = 0;
    cr_assert_eq(rush_stream_reader_seek_seq(&reader, 1, BATCHES, &told), -ERANGE);
    cr_assert_eq(told, oldest);
    cr_assert_eq(rush_stream_reader_seek_seq(&reader, oldest, BATCHES, &told), 0);
    expect_next(lsn_of_seq(oldest), NULL);
}

Test(stream_reader, an_empty_log_has_oldest_seq_1_and_no_batch_to_seek)
{
    cr_assert_eq(rush_stream_reader_open(&reader, dir, SHARD), 0);
    uint64_t oldest = 0;
    cr_assert_eq(rush_stream_reader_oldest_seq(&reader, &oldest), 0);
    cr_assert_eq(oldest, 1);
    cr_assert_eq(rush_stream_reader_seek_seq(&reader, 1, 100, &oldest), -ENOENT);
    uint64_t seq;
    cr_assert_eq(rush_stream_reader_seek_after(&reader, 0, &seq), 0, "before the first batch");
    struct rush_wal_batch_view view;
    cr_assert_eq(rush_stream_reader_next(&reader, 0, &view, NULL), 0, "nothing durable yet");
}

Test(stream_reader, a_directory_that_is_not_there_is_refused)
{
    struct rush_stream_reader other;
    cr_assert_eq(rush_stream_reader_open(&other, "/nonexistent/rush-test", SHARD), -ENOENT);
    cr_assert(strstr(other.why, "/nonexistent/rush-test") != NULL, "%s", other.why);
}

/* The path of the segment holding batch `lsn`, found by reading up to it. */
static void segment_of(uint64_t lsn, char *path, size_t size, uint64_t *offset)
{
    uint64_t seq;
    cr_assert_eq(rush_stream_reader_seek_after(&reader, lsn - 1, &seq), 0);
    struct rush_stream_position at;
    expect_next(lsn, &at);
    char name[RUSH_WAL_SEGMENT_NAME_MAX];
    rush_wal_segment_name(name, sizeof(name), SHARD, at.segment_first_lsn);
    snprintf(path, size, "%s/%s", dir, name);
    *offset = at.offset;
}

Test(stream_reader, a_flipped_byte_in_a_batch_is_damage_and_unpositions_the_reader)
{
    write_log();
    uint64_t lsn = 150;
    while (count_of(lsn) == 0)
        lsn++;
    char path[512];
    uint64_t offset;
    segment_of(lsn, path, sizeof(path), &offset);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t byte;
    off_t at = (off_t)(offset + RUSH_WAL_HEADER_BYTES + 9); /* inside the first event */
    cr_assert_eq(pread(fd, &byte, 1, at), 1);
    byte ^= 0x10;
    cr_assert_eq(pwrite(fd, &byte, 1, at), 1);
    close(fd);
    uint64_t seq;
    cr_assert_eq(rush_stream_reader_seek_after(&reader, lsn - 1, &seq), 0);
    struct rush_wal_batch_view view;
    cr_assert_eq(rush_stream_reader_next(&reader, BATCHES, &view, NULL), RUSH_ECORRUPT);
    cr_assert_neq(reader.why[0], '\0');
    cr_assert_eq(reader.next_lsn, 0, "unpositioned: the caller must seek again");
    cr_assert_eq(rush_stream_reader_seek_after(&reader, lsn, &seq), RUSH_ECORRUPT,
                 "seeking after the damaged batch reads it");
    cr_assert_eq(rush_stream_reader_seek_after(&reader, lsn + 1, &seq), 0, "later ones are fine");
    expect_next(lsn + 2, NULL);
}

Test(stream_reader, a_segment_missing_in_the_middle_is_damage)
{
    write_log();
    char path[512];
    uint64_t offset;
    segment_of(200, path, sizeof(path), &offset);
    cr_assert_eq(unlink(path), 0);
    uint64_t seq;
    cr_assert_eq(rush_stream_reader_seek_after(&reader, 100, &seq), 0);
    int rc = 1;
    uint64_t read = 100;
    struct rush_wal_batch_view view;
    while (rc == 1 && read < BATCHES) {
        rc = rush_stream_reader_next(&reader, BATCHES, &view, NULL);
        read += rc == 1;
    }
    cr_assert_lt(rc, 0, "the gap is reported, not skipped");
    cr_assert_lt(read, 200);
    cr_assert_neq(reader.why[0], '\0');
}
