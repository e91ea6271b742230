/*
 * The write-ahead log: round trips through both I/O engines, segment rolls, torn tails cut at
 * every byte, damage before the tail, sticky failures (injected and a real ENOSPC on a small
 * tmpfs), async and none modes, segment removal. Each test works in its own mkdtemp directory.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rush/stream.h"
#include "uring_probe.h"
#include "wal/wal.h"
#include "wal/wal_record.h"

#define BATCHES_MAX 4096u
#define EVENTS_PER_BATCH_MAX 64u

/* ---- fixtures -------------------------------------------------------------------------- */

static char test_dir[256];

static void dir_make(void)
{
    snprintf(test_dir, sizeof(test_dir), "/tmp/rush-test-wal-XXXXXX");
    cr_assert_not_null(mkdtemp(test_dir));
}

static void dir_remove(void)
{
    char mount_point[320];
    snprintf(mount_point, sizeof(mount_point), "%s/small", test_dir);
    umount2(mount_point, MNT_DETACH); /* the ENOSPC test's tmpfs, if it is still there */
    char command[320];
    snprintf(command, sizeof(command), "rm -rf '%s'", test_dir);
    cr_assert_eq(system(command), 0);
}

TestSuite(wal, .init = dir_make, .fini = dir_remove, .timeout = 60);

static struct rush_wal_config config_small(bool no_uring)
{
    struct rush_wal_config config;
    rush_wal_config_default(&config, test_dir, 3);
    config.segment_bytes = 16384;
    config.buffer_bytes_max = 4096;
    config.force_no_uring = no_uring;
    return config;
}

/* Event i of batch `lsn`, deterministic so that replay can check every byte. */
static struct rush_event event_of(uint64_t lsn, uint32_t i)
{
    struct rush_event event;
    memset(&event, 0, sizeof(event));
    event.type = (uint8_t)(1 + (lsn + i) % (RUSH_EV_TYPE_COUNT_ - 1));
    event.qty = i;
    event.order_id = lsn * 1000003u + i;
    event.sku_id = lsn ^ 0x5a5a5a5aull;
    event.user_id = ~lsn;
    event.amount = -(int64_t)(lsn * 7 + i);
    memset(event.key.bytes, (int)(lsn & 0xff), sizeof(event.key.bytes));
    return event;
}

static uint32_t count_of(uint64_t lsn)
{
    return (uint32_t)((lsn * 2654435761u) % 13); /* 0..12 events: includes empty batches */
}

static int64_t time_of(uint64_t lsn)
{
    return 1700000000000000000ll + (int64_t)lsn * 1000;
}

/* Appends the batch for `lsn` as event_of/count_of/time_of describe it. */
static int append_lsn(struct rush_wal *wal, uint64_t lsn, uint32_t count)
{
    struct rush_event events[EVENTS_PER_BATCH_MAX];
    cr_assert_leq(count, EVENTS_PER_BATCH_MAX);
    for (uint32_t i = 0; i < count; i++)
        events[i] = event_of(lsn, i);
    return rush_wal_append(wal, time_of(lsn), events, count);
}

/* Waits until `lsn` is durable; returns the final poll value. */
static int64_t wait_durable(struct rush_wal *wal, uint64_t lsn)
{
    int64_t durable = rush_wal_poll(wal, false);
    for (int round = 0; round < 8 && durable >= 0 && (uint64_t)durable < lsn; round++)
        durable = rush_wal_poll(wal, true);
    return durable;
}

/* What a replay saw, checked against event_of as it goes. */
struct seen {
    uint64_t batches;
    uint64_t last_lsn;
    uint32_t counts[BATCHES_MAX + 1];
    bool (*expect)(uint64_t lsn, uint32_t count); /* NULL: count_of(lsn) */
    bool mismatch;
};

static int seen_batch(void *context, uint64_t lsn, int64_t time_ns, const struct rush_event *events,
                      uint32_t count)
{
    struct seen *seen = context;
    if (lsn > BATCHES_MAX || time_ns != time_of(lsn) ||
        (seen->last_lsn != 0 && lsn != seen->last_lsn + 1))
        seen->mismatch = true;
    for (uint32_t i = 0; i < count && !seen->mismatch; i++) {
        struct rush_event want = event_of(lsn, i);
        if (memcmp(&want, &events[i], sizeof(want)) != 0)
            seen->mismatch = true;
    }
    if (lsn <= BATCHES_MAX)
        seen->counts[lsn] = count;
    seen->batches++;
    seen->last_lsn = lsn;
    return 0;
}

static int replay_into(struct seen *seen, struct rush_wal_recovery *recovery)
{
    memset(seen, 0, sizeof(*seen));
    return rush_wal_replay(test_dir, 3, seen_batch, seen, recovery);
}

static uint32_t segment_files(void)
{
    char command[320];
    snprintf(command, sizeof(command), "ls '%s' | grep -c '^wal-03-' ", test_dir);
    FILE *pipe = popen(command, "r");
    cr_assert_not_null(pipe);
    unsigned count = 0;
    cr_assert_eq(fscanf(pipe, "%u", &count), 1);
    pclose(pipe);
    return count;
}

static void segment_path(char *out, size_t size, uint64_t first_lsn)
{
    char name[RUSH_WAL_SEGMENT_NAME_MAX];
    rush_wal_segment_name(name, sizeof(name), 3, first_lsn);
    snprintf(out, size, "%s/%s", test_dir, name);
}

/* Writes `batches` batches (submitting every `group` appends) and closes cleanly. */
static void write_log(bool no_uring, uint64_t batches, uint32_t group)
{
    struct rush_wal_config config = config_small(no_uring);
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), 0);
    cr_assert_eq(rush_wal_uses_uring(wal), !no_uring && uring_refused() == 0);
    for (uint64_t lsn = 1; lsn <= batches; lsn++) {
        cr_assert_eq(append_lsn(wal, lsn, count_of(lsn)), 0);
        cr_assert_eq(rush_wal_appended_lsn(wal), lsn);
        if (lsn % group == 0)
            cr_assert_eq(rush_wal_submit(wal), 0);
        cr_assert_geq(rush_wal_poll(wal, false), 0);
    }
    cr_assert_eq(rush_wal_submit(wal), 0);
    cr_assert_eq(wait_durable(wal, batches), (int64_t)batches);
    cr_assert_eq(rush_wal_synced_lsn(wal), batches);
    cr_assert_eq(rush_wal_close(wal), 0);
}

static void check_full_replay(uint64_t batches)
{
    struct seen seen;
    struct rush_wal_recovery recovery;
    cr_assert_eq(replay_into(&seen, &recovery), 0, "%s", recovery.message);
    cr_assert_not(seen.mismatch);
    cr_assert_eq(seen.batches, batches);
    cr_assert_eq(recovery.last_lsn, batches);
    cr_assert_eq(recovery.first_lsn, batches > 0 ? 1u : 0u);
    cr_assert_not(recovery.torn);
    for (uint64_t lsn = 1; lsn <= batches; lsn++)
        cr_assert_eq(seen.counts[lsn], count_of(lsn));
}

/* ---- round trips ----------------------------------------------------------------------- */

static void round_trip(bool no_uring)
{
    write_log(no_uring, 40, 4);
    check_full_replay(40);
}

Test(wal, round_trip_io_uring)
{
    SKIP_WITHOUT_URING();
    round_trip(false);
}

Test(wal, round_trip_fallback)
{
    round_trip(true);
}

static void many_rolls(bool no_uring)
{
    /* ~6 events average * 64 B over 1500 batches: ~700 KiB in 16 KiB segments. */
    write_log(no_uring, 1500, 7);
    cr_assert_gt(segment_files(), 20);
    check_full_replay(1500);
}

Test(wal, many_batches_across_segment_rolls_io_uring)
{
    SKIP_WITHOUT_URING();
    many_rolls(false);
}

Test(wal, many_batches_across_segment_rolls_fallback)
{
    many_rolls(true);
}

Test(wal, reopen_continues_the_chain_and_the_lsns)
{
    write_log(false, 30, 3);
    for (int restart = 0; restart < 3; restart++) {
        struct seen seen;
        struct rush_wal_recovery recovery;
        cr_assert_eq(replay_into(&seen, &recovery), 0);
        uint64_t next = recovery.last_lsn + 1;
        struct rush_wal_config config = config_small(restart % 2 == 1);
        struct rush_wal *wal = NULL;
        cr_assert_eq(rush_wal_open(&config, &recovery, &wal), 0);
        for (uint64_t lsn = next; lsn < next + 25; lsn++)
            cr_assert_eq(append_lsn(wal, lsn, count_of(lsn)), 0);
        cr_assert_eq(rush_wal_submit(wal), 0);
        cr_assert_eq(rush_wal_close(wal), 0);
    }
    check_full_replay(30 + 3 * 25);
}

Test(wal, open_without_recovery_refuses_a_directory_with_segments)
{
    write_log(true, 3, 1);
    struct rush_wal_config config = config_small(true);
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), -EEXIST);
    cr_assert_null(wal);
}

Test(wal, full_buffers_apply_back_pressure_and_oversized_batches_are_refused)
{
    struct rush_wal_config config = config_small(false);
    config.buffer_bytes_max = 1024; /* 15 events at most */
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), 0);
    cr_assert_eq(rush_wal_batch_events_max(wal), 15);
    cr_assert_eq(append_lsn(wal, 1, 16), -EMSGSIZE);
    cr_assert_eq(rush_wal_appended_lsn(wal), 0);
    /* Never submitted by the caller: appends submit and wait for themselves. */
    for (uint64_t lsn = 1; lsn <= 200; lsn++)
        cr_assert_eq(append_lsn(wal, lsn, 12), 0);
    cr_assert_gt(rush_wal_durable_lsn(wal), 150);
    cr_assert_eq(rush_wal_close(wal), 0);
    struct seen seen;
    struct rush_wal_recovery recovery;
    cr_assert_eq(replay_into(&seen, &recovery), 0);
    cr_assert_eq(seen.batches, 200);
    cr_assert_not(seen.mismatch);
}

Test(wal, config_check_names_what_is_wrong)
{
    struct rush_wal_config config = config_small(false);
    char why[128];
    cr_assert_eq(rush_wal_config_check(&config, why, sizeof(why)), 0);
    config.segment_bytes = 5000;
    cr_assert_eq(rush_wal_config_check(&config, why, sizeof(why)), RUSH_ECONFIG);
    cr_assert_not_null(strstr(why, "segment_bytes"));
    config = config_small(false);
    config.buffer_bytes_max = 32768;
    cr_assert_eq(rush_wal_config_check(&config, why, sizeof(why)), RUSH_ECONFIG);
    config = config_small(false);
    config.mode = RUSH_WAL_ASYNC;
    config.flush_interval_ms = 0;
    cr_assert_eq(rush_wal_config_check(&config, why, sizeof(why)), RUSH_ECONFIG);
    config = config_small(false);
    config.shard_index = RUSH_SHARDS_MAX;
    cr_assert_eq(rush_wal_config_check(&config, why, sizeof(why)), RUSH_ECONFIG);
}

/* ---- torn tails and damage ------------------------------------------------------------- */

static size_t file_read(const char *path, uint8_t *bytes, size_t size)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "%s", path);
    ssize_t n = read(fd, bytes, size);
    cr_assert_geq(n, 0);
    close(fd);
    return (size_t)n;
}

static void file_write(const char *path, const uint8_t *bytes, size_t size)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT, 0644);
    cr_assert_geq(fd, 0, "%s", path);
    cr_assert_eq(write(fd, bytes, size), (ssize_t)size);
    close(fd);
}

/* Offsets of the batches in a segment's bytes; returns how many. */
static uint32_t batch_offsets(const uint8_t *bytes, size_t size, uint64_t *offsets, uint32_t max)
{
    uint32_t n = 0;
    uint64_t offset = 0;
    struct rush_wal_batch_view view;
    while (n < max &&
           rush_wal_batch_decode(bytes + offset, size - offset, 3, &view) == RUSH_WAL_DECODE_OK) {
        offsets[n++] = offset;
        offset += rush_wal_batch_bytes(view.header.event_count);
    }
    return n;
}

/* 19 batches as count_of says, then batch 20 with 3 events (256 bytes), in one segment. */
static void write_log_last_three(void)
{
    struct rush_wal_config config = config_small(true);
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), 0);
    for (uint64_t lsn = 1; lsn <= 20; lsn++)
        cr_assert_eq(append_lsn(wal, lsn, lsn == 20 ? 3 : count_of(lsn)), 0);
    cr_assert_eq(rush_wal_submit(wal), 0);
    cr_assert_eq(rush_wal_close(wal), 0);
}

/* Appends lsn 20 and 21 after a cut and checks the whole log replays as one. */
static void continue_after_cut(const struct rush_wal_recovery *recovery, bool no_uring)
{
    struct rush_wal_config config = config_small(no_uring);
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, recovery, &wal), 0);
    cr_assert_eq(append_lsn(wal, 20, 1), 0);
    cr_assert_eq(append_lsn(wal, 21, 2), 0);
    cr_assert_eq(rush_wal_submit(wal), 0);
    cr_assert_eq(wait_durable(wal, 21), 21);
    cr_assert_eq(rush_wal_close(wal), 0);
    struct seen seen;
    struct rush_wal_recovery again;
    cr_assert_eq(replay_into(&seen, &again), 0, "%s", again.message);
    cr_assert_eq(seen.batches, 21);
    cr_assert_not(seen.mismatch);
    cr_assert_not(again.torn);
    cr_assert_eq(seen.counts[20], 1);
    cr_assert_eq(seen.counts[21], 2);
}

Test(wal, torn_tail_truncated_at_every_byte_of_the_last_batch_is_cut_and_the_log_goes_on)
{
    write_log_last_three();
    char path[320];
    segment_path(path, sizeof(path), 1);
    static uint8_t original[16384];
    size_t size = file_read(path, original, sizeof(original));
    uint64_t offsets[32];
    cr_assert_eq(batch_offsets(original, size, offsets, 32), 20);
    uint64_t start = offsets[19];
    uint64_t end = start + rush_wal_batch_bytes(3);
    for (uint64_t cut = start; cut < end; cut++) {
        file_write(path, original, (size_t)cut);
        struct seen seen;
        struct rush_wal_recovery recovery;
        cr_assert_eq(replay_into(&seen, &recovery), 0, "cut %" PRIu64 ": %s", cut,
                     recovery.message);
        cr_assert_eq(seen.batches, 19, "cut at %" PRIu64, cut);
        cr_assert_not(seen.mismatch);
        cr_assert_eq(recovery.last_lsn, 19);
        cr_assert_eq(recovery.tail_offset, start);
        cr_assert_eq(recovery.torn, cut > start, "cut at %" PRIu64, cut);
        continue_after_cut(&recovery, cut % 2 == 0);
    }
}

Test(wal, torn_tail_of_garbage_is_zeroed_by_open)
{
    write_log_last_three();
    char path[320];
    segment_path(path, sizeof(path), 1);
    static uint8_t bytes[16384];
    size_t size = file_read(path, bytes, sizeof(bytes));
    uint64_t offsets[32];
    cr_assert_eq(batch_offsets(bytes, size, offsets, 32), 20);
    /* The write of the last batch stopped before its last event (that slot is still zero), and
     * a few slots after it hold garbage. */
    memset(bytes + offsets[19] + 64 + 2 * 64, 0, 64);
    memset(bytes + offsets[19] + rush_wal_batch_bytes(3), 0xa5, 3 * 64);
    file_write(path, bytes, size);
    struct seen seen;
    struct rush_wal_recovery recovery;
    cr_assert_eq(replay_into(&seen, &recovery), 0, "%s", recovery.message);
    cr_assert(recovery.torn);
    cr_assert_eq(recovery.tail_cut_bytes, rush_wal_batch_bytes(3) + 3 * 64);
    cr_assert_not_null(strstr(recovery.message, "events checksum"));
    continue_after_cut(&recovery, false);
}

static void flip_and_expect_corrupt(uint32_t batch_index, uint32_t byte_in_batch)
{
    write_log_last_three();
    char path[320];
    segment_path(path, sizeof(path), 1);
    static uint8_t bytes[16384];
    size_t size = file_read(path, bytes, sizeof(bytes));
    uint64_t offsets[32];
    cr_assert_eq(batch_offsets(bytes, size, offsets, 32), 20);
    bytes[offsets[batch_index] + byte_in_batch] ^= 0x10;
    file_write(path, bytes, size);
    struct seen seen;
    struct rush_wal_recovery recovery;
    cr_assert_eq(replay_into(&seen, &recovery), RUSH_ECORRUPT);
    char want[128];
    snprintf(want, sizeof(want), "wal-03-0000000000000001.log: offset %" PRIu64 ":",
             offsets[batch_index]);
    cr_assert_not_null(strstr(recovery.message, want), "message: %s", recovery.message);
    cr_assert_eq(seen.batches, batch_index);
}

Test(wal, flipped_byte_in_a_middle_header_is_corruption_naming_file_and_offset)
{
    flip_and_expect_corrupt(7, 20);
}

/* `rush-wal verify` on the test directory: its exit status, its output in out[]. */
static int rush_wal_verify(char *out, size_t size)
{
    char self[256];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert_gt(n, 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    char command[768];
    snprintf(command, sizeof(command), "%s/../bin/rush-wal verify '%s' 2>&1", self, test_dir);
    FILE *pipe = popen(command, "r");
    cr_assert_not_null(pipe);
    size_t used = fread(out, 1, size - 1, pipe);
    out[used] = '\0';
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * Issue 11 item 13: a flipped bit in the last, complete batch is damage, not a torn tail. The
 * batch was whole on disk, so it may have been acknowledged and published: a start must refuse,
 * and rush-wal verify must fail, naming the file and the offset.
 */
static void flip_in_last_batch_and_expect_corrupt(uint32_t byte_in_batch)
{
    flip_and_expect_corrupt(19, byte_in_batch);
    struct rush_wal_recovery recovery;
    struct seen seen;
    cr_assert_eq(replay_into(&seen, &recovery), RUSH_ECORRUPT);
    cr_assert_not(recovery.torn);
    cr_assert_not_null(strstr(recovery.message, "complete batch"), "%s", recovery.message);
    char output[4096];
    cr_assert_neq(rush_wal_verify(output, sizeof(output)), 0, "rush-wal verify passed: %s", output);
    cr_assert_not_null(strstr(output, "CORRUPT"), "%s", output);
    cr_assert_not_null(strstr(output, "wal-03-0000000000000001.log: offset "), "%s", output);
}

Test(wal, flipped_bit_in_the_events_of_the_last_complete_batch_is_corruption_not_a_torn_tail)
{
    flip_in_last_batch_and_expect_corrupt(64 + 64 + 17);
}

Test(wal, flipped_bit_in_the_header_of_the_last_complete_batch_is_corruption_not_a_torn_tail)
{
    flip_in_last_batch_and_expect_corrupt(30);
}

Test(wal, the_last_batch_cut_short_inside_the_file_is_a_torn_tail)
{
    write_log_last_three();
    char path[320];
    segment_path(path, sizeof(path), 1);
    static uint8_t bytes[16384];
    size_t size = file_read(path, bytes, sizeof(bytes));
    uint64_t offsets[32];
    cr_assert_eq(batch_offsets(bytes, size, offsets, 32), 20);
    /* The header and the first event reached the disk; the rest of the write did not. */
    memset(bytes + offsets[19] + 128, 0, 128);
    file_write(path, bytes, size);
    struct seen seen;
    struct rush_wal_recovery recovery;
    cr_assert_eq(replay_into(&seen, &recovery), 0, "%s", recovery.message);
    cr_assert(recovery.torn);
    cr_assert_eq(recovery.last_lsn, 19);
    char output[4096];
    cr_assert_eq(rush_wal_verify(output, sizeof(output)), 0, "%s", output);
    cr_assert_not_null(strstr(output, "torn tail"), "%s", output);
    continue_after_cut(&recovery, true);
}

Test(wal, flipped_byte_in_middle_events_is_corruption_naming_file_and_offset)
{
    uint32_t index = 7;
    while (count_of(index + 1) == 0)
        index++;
    flip_and_expect_corrupt(index, 64 + 5);
}

/*
 * Rewrites the header of batch `batch` of the first segment of write_log_last_three() with
 * `change` applied and the header resealed (so only that field is wrong), then expects replay to
 * refuse the log naming `problem`, after the batches before it.
 */
static void forge_header_and_expect_corrupt(uint32_t batch,
                                            void (*change)(struct rush_wal_header *header),
                                            const char *problem)
{
    write_log_last_three();
    char path[320];
    segment_path(path, sizeof(path), 1);
    static uint8_t bytes[16384];
    size_t size = file_read(path, bytes, sizeof(bytes));
    uint64_t offsets[32];
    cr_assert_eq(batch_offsets(bytes, size, offsets, 32), 20);
    struct rush_wal_header header;
    memcpy(&header, bytes + offsets[batch], sizeof(header));
    change(&header);
    rush_wal_header_seal(&header);
    memcpy(bytes + offsets[batch], &header, sizeof(header));
    file_write(path, bytes, size);
    struct seen seen;
    struct rush_wal_recovery recovery;
    cr_assert_eq(replay_into(&seen, &recovery), RUSH_ECORRUPT);
    cr_assert_not_null(strstr(recovery.message, problem), "%s", recovery.message);
    cr_assert_eq(seen.batches, batch);
}

/* A well-formed batch that does not chain: as if a batch had been dropped and resealed. */
static void break_chain(struct rush_wal_header *header)
{
    header->prev_checksum ^= 1;
}

Test(wal, chain_break_is_corruption)
{
    forge_header_and_expect_corrupt(10, break_chain, "chain break");
}

/* Stream events in batches 1..lsn as event_of/count_of make them. */
static uint64_t carried_through(uint64_t lsn)
{
    uint64_t carried = 0;
    for (uint64_t l = 1; l <= lsn; l++)
        for (uint32_t i = 0; i < count_of(l); i++)
            carried += rush_stream_carries(event_of(l, i).type);
    return carried;
}

Test(wal, stream_numbering_is_in_every_header_and_survives_reopen)
{
    write_log(false, 30, 3);
    for (int restart = 0; restart < 2; restart++) {
        struct seen seen;
        struct rush_wal_recovery recovery;
        cr_assert_eq(replay_into(&seen, &recovery), 0);
        cr_assert_eq(recovery.last_seq, carried_through(recovery.last_lsn));
        struct rush_wal_config config = config_small(restart == 1);
        struct rush_wal *wal = NULL;
        cr_assert_eq(rush_wal_open(&config, &recovery, &wal), 0);
        cr_assert_eq(rush_wal_appended_seq(wal), recovery.last_seq, "numbering continues");
        uint64_t next = recovery.last_lsn + 1;
        for (uint64_t lsn = next; lsn < next + 20; lsn++)
            cr_assert_eq(append_lsn(wal, lsn, count_of(lsn)), 0);
        cr_assert_eq(rush_wal_appended_seq(wal), carried_through(next + 19));
        cr_assert_eq(rush_wal_submit(wal), 0);
        cr_assert_eq(rush_wal_close(wal), 0);
    }
    /* every header on disk holds the count of stream events before its batch */
    char path[320];
    segment_path(path, sizeof(path), 1);
    static uint8_t bytes[16384];
    size_t size = file_read(path, bytes, sizeof(bytes));
    uint64_t offsets[64];
    uint32_t count = batch_offsets(bytes, size, offsets, 64);
    cr_assert_gt(count, 5);
    for (uint32_t b = 0; b < count; b++) {
        struct rush_wal_header header;
        memcpy(&header, bytes + offsets[b], sizeof(header));
        cr_assert_eq(header.seq_before, carried_through(header.lsn - 1), "lsn %lu", header.lsn);
    }
}

static void skip_a_seq(struct rush_wal_header *header)
{
    header->seq_before += 1;
}

Test(wal, a_header_whose_stream_numbering_does_not_follow_is_corruption)
{
    forge_header_and_expect_corrupt(7, skip_a_seq, "stream events came before it");
}

Test(wal, damaged_end_of_a_segment_followed_by_valid_segments_is_corruption)
{
    write_log(false, 300, 5);
    cr_assert_gt(segment_files(), 3);
    char path[320];
    segment_path(path, sizeof(path), 1);
    static uint8_t bytes[16384];
    size_t size = file_read(path, bytes, sizeof(bytes));
    uint64_t offsets[256];
    uint32_t n = batch_offsets(bytes, size, offsets, 256);
    cr_assert_gt(n, 2);
    bytes[offsets[n - 1] + 3] ^= 0xff; /* the magic of the segment's last batch */
    file_write(path, bytes, size);
    struct seen seen;
    struct rush_wal_recovery recovery;
    cr_assert_eq(replay_into(&seen, &recovery), RUSH_ECORRUPT);
    cr_assert_not_null(strstr(recovery.message, "later segment"), "%s", recovery.message);
}

Test(wal, crash_right_after_a_segment_was_created_loses_nothing)
{
    write_log(true, 300, 5);
    struct seen seen;
    struct rush_wal_recovery recovery;
    cr_assert_eq(replay_into(&seen, &recovery), 0);
    /* The next segment exists, preallocated, but its first write never happened. */
    char path[320];
    segment_path(path, sizeof(path), 301);
    static uint8_t zeros[16384];
    file_write(path, zeros, sizeof(zeros));
    cr_assert_eq(replay_into(&seen, &recovery), 0, "%s", recovery.message);
    cr_assert_eq(seen.batches, 300);
    cr_assert_not(recovery.torn);
    /* A torn first batch in it is a torn tail too. */
    memset(zeros, 0x33, 100);
    file_write(path, zeros, sizeof(zeros));
    cr_assert_eq(replay_into(&seen, &recovery), 0, "%s", recovery.message);
    cr_assert(recovery.torn);
    struct rush_wal_config config = config_small(false);
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, &recovery, &wal), 0);
    for (uint64_t lsn = 301; lsn <= 400; lsn++)
        cr_assert_eq(append_lsn(wal, lsn, count_of(lsn)), 0);
    cr_assert_eq(rush_wal_close(wal), 0);
    check_full_replay(400);
}

Test(wal, remove_below_drops_whole_old_segments_only)
{
    write_log(true, 1500, 7);
    int dir_fd = open(test_dir, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(dir_fd, 0);
    uint64_t *lsns = NULL;
    int count = rush_wal_segments_list(dir_fd, 3, &lsns);
    close(dir_fd);
    cr_assert_gt(count, 6);
    /* Everything below the 5th segment's first lsn, plus one batch into it: 4 files go. */
    cr_assert_eq(rush_wal_remove_below(test_dir, 3, lsns[4] + 1), 4);
    struct seen seen;
    struct rush_wal_recovery recovery;
    cr_assert_eq(replay_into(&seen, &recovery), 0, "%s", recovery.message);
    cr_assert_eq(recovery.first_lsn, lsns[4]);
    cr_assert_eq(recovery.last_lsn, 1500);
    cr_assert_not(seen.mismatch);
    /* Never the newest segment. */
    cr_assert_eq(rush_wal_remove_below(test_dir, 3, UINT64_MAX), count - 5);
    cr_assert_eq(segment_files(), 1);
    cr_assert_eq(replay_into(&seen, &recovery), 0, "%s", recovery.message);
    cr_assert_eq(recovery.last_lsn, 1500);
    free(lsns);
}

/* ---- failures -------------------------------------------------------------------------- */

struct fault_plan {
    enum rush_wal_io io;
    uint64_t from_lsn;
    int error;
    bool fired;
    uint32_t calls_after; /* any I/O attempted after the failure */
};

static int fault_hook(void *context, enum rush_wal_io io, uint64_t lsn)
{
    struct fault_plan *plan = context;
    if (plan->fired) {
        plan->calls_after++;
        return 0;
    }
    if (io == plan->io && lsn >= plan->from_lsn) {
        plan->fired = true;
        return plan->error;
    }
    return 0;
}

static void fault_is_sticky(bool no_uring, enum rush_wal_io io)
{
    struct fault_plan plan = {.io = io, .from_lsn = 6, .error = -EIO};
    struct rush_wal_config config = config_small(no_uring);
    config.fault = fault_hook;
    config.fault_context = &plan;
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), 0);
    for (uint64_t lsn = 1; lsn <= 5; lsn++)
        cr_assert_eq(append_lsn(wal, lsn, count_of(lsn)), 0);
    cr_assert_eq(rush_wal_submit(wal), 0);
    cr_assert_eq(wait_durable(wal, 5), 5);
    cr_assert_eq(append_lsn(wal, 6, 4), 0);
    int submitted = rush_wal_submit(wal); /* the fallback fails here, io_uring in poll */
    cr_assert(submitted == 0 || submitted == RUSH_EWAL);
    cr_assert_eq(rush_wal_poll(wal, true), RUSH_EWAL);
    cr_assert(plan.fired);
    cr_assert_eq(rush_wal_durable_lsn(wal), 5);
    cr_assert_eq(rush_wal_synced_lsn(wal), 5);
    const char *text = NULL;
    cr_assert_eq(rush_wal_error(wal, &text), -EIO);
    cr_assert_not_null(strstr(text, io == RUSH_WAL_IO_WRITE ? "write" : "fdatasync"), "%s", text);
    /* Sticky: nothing is accepted, nothing is retried, durable_lsn stays. */
    cr_assert_eq(append_lsn(wal, 7, 1), RUSH_EWAL);
    cr_assert_eq(rush_wal_submit(wal), RUSH_EWAL);
    cr_assert_eq(rush_wal_poll(wal, true), RUSH_EWAL);
    cr_assert_eq(rush_wal_appended_lsn(wal), 6);
    cr_assert_eq(rush_wal_close(wal), RUSH_EWAL);
    cr_assert_eq(plan.calls_after, 0, "I/O after the failure");
    struct seen seen;
    struct rush_wal_recovery recovery;
    cr_assert_eq(replay_into(&seen, &recovery), 0, "%s", recovery.message);
    cr_assert_geq(seen.batches, 5); /* a write that completed before a failed sync may be there */
    cr_assert_not(seen.mismatch);
}

Test(wal, failed_write_is_sticky_io_uring)
{
    SKIP_WITHOUT_URING();
    fault_is_sticky(false, RUSH_WAL_IO_WRITE);
}

Test(wal, failed_write_is_sticky_fallback)
{
    fault_is_sticky(true, RUSH_WAL_IO_WRITE);
}

Test(wal, failed_fdatasync_is_sticky_and_never_retried_io_uring)
{
    SKIP_WITHOUT_URING();
    fault_is_sticky(false, RUSH_WAL_IO_SYNC);
}

Test(wal, failed_fdatasync_is_sticky_and_never_retried_fallback)
{
    fault_is_sticky(true, RUSH_WAL_IO_SYNC);
}

Test(wal, failed_segment_creation_is_sticky)
{
    struct fault_plan plan = {.io = RUSH_WAL_IO_CREATE, .from_lsn = 2, .error = -ENOSPC};
    struct rush_wal_config config = config_small(false);
    config.fault = fault_hook;
    config.fault_context = &plan;
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), 0);
    int rc = 0;
    uint64_t lsn = 1;
    for (; lsn <= 1000 && rc == 0; lsn++)
        rc = append_lsn(wal, lsn, 12);
    cr_assert_eq(rc, RUSH_EWAL);
    cr_assert_eq(rush_wal_error(wal, NULL), -ENOSPC);
    /* The roll drained everything before the batch that did not fit. */
    cr_assert_eq(rush_wal_durable_lsn(wal), lsn - 2);
    cr_assert_eq(rush_wal_appended_lsn(wal), lsn - 2);
    cr_assert_eq(rush_wal_close(wal), RUSH_EWAL);
}

Test(wal, real_enospc_on_a_small_tmpfs_is_sticky)
{
    char mount_point[320];
    snprintf(mount_point, sizeof(mount_point), "%s/small", test_dir);
    cr_assert_eq(mkdir(mount_point, 0700), 0);
    if (mount("tmpfs", mount_point, "tmpfs", 0, "size=1m") < 0)
        cr_skip("mount -t tmpfs not permitted here (%s); write failures are covered by the "
                "injected-fault tests",
                strerror(errno));
    struct rush_wal_config config = config_small(false);
    config.dir = mount_point;
    config.segment_bytes = 256 * 1024;
    config.buffer_bytes_max = 16384;
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), 0);
    int rc = 0;
    uint64_t lsn = 1;
    for (; lsn <= 1000 && rc == 0; lsn++) {
        rc = append_lsn(wal, lsn, 60);
        if (rc == 0)
            rc = rush_wal_submit(wal);
        if (rc == 0)
            rc = (int)(rush_wal_poll(wal, false) < 0 ? RUSH_EWAL : 0);
    }
    cr_assert_eq(rc, RUSH_EWAL);
    const char *text = NULL;
    cr_assert_eq(rush_wal_error(wal, &text), -ENOSPC, "%s", text);
    uint64_t durable = rush_wal_durable_lsn(wal);
    cr_assert_eq(durable, rush_wal_appended_lsn(wal));
    cr_assert_gt(durable, 100);
    cr_assert_eq(append_lsn(wal, durable + 1, 1), RUSH_EWAL);
    cr_assert_eq(rush_wal_close(wal), RUSH_EWAL);
    struct seen seen;
    memset(&seen, 0, sizeof(seen));
    struct rush_wal_recovery recovery;
    cr_assert_eq(rush_wal_replay(mount_point, 3, seen_batch, &seen, &recovery), 0, "%s",
                 recovery.message);
    cr_assert_eq(seen.batches, durable);
    cr_assert_not(seen.mismatch);
    cr_assert_eq(umount(mount_point), 0);
}

/* ---- modes ----------------------------------------------------------------------------- */

static int64_t fake_clock(void *context)
{
    return *(const int64_t *)context;
}

static void async_mode(bool no_uring)
{
    int64_t now_ns = 1000;
    struct rush_wal_config config = config_small(no_uring);
    config.mode = RUSH_WAL_ASYNC;
    config.flush_interval_ms = 2;
    config.clock = fake_clock;
    config.clock_context = &now_ns;
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), 0);
    for (uint64_t lsn = 1; lsn <= 3; lsn++)
        cr_assert_eq(append_lsn(wal, lsn, count_of(lsn)), 0);
    cr_assert_eq(rush_wal_submit(wal), 0);
    cr_assert_eq(wait_durable(wal, 3), 3); /* acknowledged after the write */
    cr_assert_eq(rush_wal_synced_lsn(wal), 0);
    now_ns += 1999999;
    cr_assert_eq(rush_wal_poll(wal, true), 3);
    cr_assert_eq(rush_wal_synced_lsn(wal), 0, "flushed before the interval");
    now_ns += 1;
    for (int round = 0; round < 4 && rush_wal_synced_lsn(wal) < 3; round++)
        cr_assert_eq(rush_wal_poll(wal, true), 3);
    cr_assert_eq(rush_wal_synced_lsn(wal), 3);
    cr_assert_eq(append_lsn(wal, 4, count_of(4)), 0);
    cr_assert_eq(rush_wal_submit(wal), 0);
    cr_assert_eq(wait_durable(wal, 4), 4);
    cr_assert_eq(rush_wal_synced_lsn(wal), 3);
    cr_assert_eq(rush_wal_close(wal), 0); /* syncs the rest */
    check_full_replay(4);
}

Test(wal, async_mode_acks_after_write_and_flushes_on_the_interval_io_uring)
{
    SKIP_WITHOUT_URING();
    async_mode(false);
}

Test(wal, async_mode_acks_after_write_and_flushes_on_the_interval_fallback)
{
    async_mode(true);
}

Test(wal, async_mode_rolls_segments_and_replays)
{
    int64_t now_ns = 0;
    struct rush_wal_config config = config_small(false);
    config.mode = RUSH_WAL_ASYNC;
    config.clock = fake_clock;
    config.clock_context = &now_ns;
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), 0);
    for (uint64_t lsn = 1; lsn <= 600; lsn++) {
        cr_assert_eq(append_lsn(wal, lsn, count_of(lsn)), 0);
        cr_assert_eq(rush_wal_submit(wal), 0);
        now_ns += 1000000;
        cr_assert_geq(rush_wal_poll(wal, false), 0);
    }
    cr_assert_gt(rush_wal_synced_lsn(wal), 0);
    cr_assert_eq(rush_wal_close(wal), 0);
    check_full_replay(600);
}

Test(wal, none_mode_does_no_io_and_acks_at_submit)
{
    struct rush_wal_config config = config_small(false);
    config.mode = RUSH_WAL_NONE;
    struct rush_wal *wal = NULL;
    cr_assert_eq(rush_wal_open(&config, NULL, &wal), 0);
    cr_assert_not(rush_wal_uses_uring(wal));
    for (uint64_t lsn = 1; lsn <= 2000; lsn++) {
        cr_assert_eq(append_lsn(wal, lsn, count_of(lsn)), 0);
        if (lsn % 10 == 0) {
            cr_assert_eq(rush_wal_submit(wal), 0);
            cr_assert_eq(rush_wal_poll(wal, false), (int64_t)lsn);
        }
    }
    cr_assert_eq(rush_wal_synced_lsn(wal), 0);
    struct rush_wal_stats stats;
    rush_wal_stats(wal, &stats);
    cr_assert_eq(stats.batches, 2000);
    cr_assert_eq(stats.bytes_written, 0);
    cr_assert_eq(rush_wal_close(wal), 0);
    cr_assert_eq(segment_files(), 0);
}
