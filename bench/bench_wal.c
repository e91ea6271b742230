/*
 * bench_wal.c — what the write-ahead log costs on this disk, next to what the disk can do.
 *
 * Usage: bench-wal [dir]   (else $RUSH_BENCH_DIR, else a fresh directory under /var/tmp, removed
 * at the end). Prints one JSON object per line:
 *   raw      sequential pwrite + fdatasync of 4 KiB .. 1 MiB into a preallocated file: syncs/s,
 * MB/s wal      one shard appending batches of 64 / 1024 / 16384 events as fast as group commit
 *            lets it (fsync mode, io_uring unless refused; 'none' mode for the CPU ceiling):
 *            records/s, MB/s, fdatasync latency p50/p99, ack latency p50/p99, ratio to raw
 *   replay   reading the 1024-event case's log back (page cache warm): records/s
 * Each case runs about 1.5-2.5 s; the whole program stays well under a minute.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "rush/assert.h"
#include "wal/wal.h"

#define RAW_SECONDS 1.5
#define WAL_SECONDS 2.5
#define RAW_FILE_BYTES (UINT64_C(256) << 20)
#define WAL_BYTES_MAX (UINT64_C(768) << 20) /* per case, bounds disk use */
#define SAMPLES_MAX 200000u
#define BATCH_EVENTS_MAX 16384u

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Percentile (0..100) of samples, in microseconds; sorts in place. */
static double percentile_us(uint64_t *samples_ns, uint32_t count, double p)
{
    if (count == 0)
        return 0.0;
    qsort(samples_ns, count, sizeof(*samples_ns), compare_u64);
    uint32_t index = (uint32_t)((p / 100.0) * (count - 1) + 0.5);
    return (double)samples_ns[index] / 1e3;
}

static uint64_t samples[SAMPLES_MAX];

/* Raw: sequential pwrite + fdatasync of `size` bytes; returns MB/s. */
static double bench_raw(const char *dir, uint32_t size)
{
    char path[1100];
    snprintf(path, sizeof(path), "%s/raw.bin", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    RUSH_ASSERT(fd >= 0);
    RUSH_VERIFY(fallocate(fd, 0, 0, (off_t)RAW_FILE_BYTES) == 0 || errno == EOPNOTSUPP);
    RUSH_VERIFY(fsync(fd) == 0);
    void *buffer = NULL;
    RUSH_VERIFY(posix_memalign(&buffer, 4096, size) == 0);
    memset(buffer, 0x5a, size);
    uint64_t offset = 0;
    uint32_t ops = 0;
    double start = rush_clock_monotonic_seconds();
    double elapsed = 0;
    for (; ops < SAMPLES_MAX && elapsed < RAW_SECONDS; ops++) {
        if (offset + size > RAW_FILE_BYTES)
            offset = 0;
        double t0 = rush_clock_monotonic_seconds();
        RUSH_VERIFY(pwrite(fd, buffer, size, (off_t)offset) == (ssize_t)size);
        RUSH_VERIFY(fdatasync(fd) == 0);
        elapsed = rush_clock_monotonic_seconds() - start;
        samples[ops] = (uint64_t)((rush_clock_monotonic_seconds() - t0) * 1e9);
        offset += size;
    }
    double mb_per_s = (double)ops * size / elapsed / 1e6;
    printf("{\"bench\":\"wal\",\"case\":\"raw_pwrite_fdatasync_%ukib\",\"ops_per_sec\":%.1f,"
           "\"fdatasync_per_sec\":%.1f,\"mb_per_sec\":%.2f,\"write_bytes\":%u,"
           "\"latency_us_p50\":%.1f,\"latency_us_p99\":%.1f,\"seconds\":%.2f}\n",
           size / 1024, ops / elapsed, ops / elapsed, mb_per_s, size,
           percentile_us(samples, ops, 50), percentile_us(samples, ops, 99), elapsed);
    fflush(stdout);
    free(buffer);
    close(fd);
    unlink(path);
    return mb_per_s;
}

static struct rush_event events[BATCH_EVENTS_MAX];

struct wal_run {
    uint64_t batches;
    uint64_t syncs;
    uint64_t bytes;
    uint32_t sync_samples;
    double seconds;
    double ack_p50_us;
    double ack_p99_us;
};

/* Removes the shard-0 segments a case left. */
static void cleanup_dir(const char *dir)
{
    char command[1200];
    snprintf(command, sizeof(command), "rm -f '%s'/wal-00-*.log", dir);
    RUSH_VERIFY(system(command) == 0);
}

/* Appends batches of `count` events until the time or byte budget runs out. */
static void wal_drive(struct rush_wal *wal, uint32_t count, struct wal_run *run)
{
    static uint64_t append_ns[SAMPLES_MAX];
    static uint64_t ack_ns[SAMPLES_MAX];
    uint32_t acks = 0;
    uint64_t acked = 0;
    uint64_t syncs_seen = 0;
    double start = rush_clock_monotonic_seconds();
    uint64_t batch_bytes = 64 + (uint64_t)count * 64;
    uint64_t batches_max = WAL_BYTES_MAX / batch_bytes;
    for (uint64_t lsn = 1; lsn <= batches_max && lsn < SAMPLES_MAX; lsn++) {
        RUSH_VERIFY(rush_wal_append(wal, (int64_t)lsn, events, count) == 0);
        RUSH_VERIFY(rush_wal_submit(wal) == 0);
        int64_t durable = rush_wal_poll(wal, false);
        RUSH_ASSERT(durable >= 0);
        double t = rush_clock_monotonic_seconds();
        append_ns[lsn] = (uint64_t)((t - start) * 1e9);
        for (; acked < (uint64_t)durable; acked++)
            ack_ns[acks++] = (uint64_t)((t - start) * 1e9) - append_ns[acked + 1];
        struct rush_wal_stats stats;
        rush_wal_stats(wal, &stats);
        if (stats.syncs != syncs_seen && run->sync_samples < SAMPLES_MAX)
            samples[run->sync_samples++] = stats.sync_latency_ns_last;
        syncs_seen = stats.syncs;
        run->batches = lsn;
        if (t - start >= WAL_SECONDS)
            break;
    }
    for (int64_t durable = 0; durable < (int64_t)run->batches;) {
        durable = rush_wal_poll(wal, true);
        RUSH_ASSERT(durable >= 0);
    }
    run->seconds = rush_clock_monotonic_seconds() - start;
    struct rush_wal_stats stats;
    rush_wal_stats(wal, &stats);
    run->syncs = stats.syncs;
    run->bytes = stats.bytes_written;
    run->ack_p50_us = percentile_us(ack_ns, acks, 50);
    run->ack_p99_us = percentile_us(ack_ns, acks, 99);
}

static void bench_wal(const char *dir, uint32_t count, enum rush_wal_mode mode, double raw_mb)
{
    struct rush_wal_config config;
    rush_wal_config_default(&config, dir, 0);
    config.mode = mode;
    struct rush_wal *wal = NULL;
    RUSH_VERIFY(rush_wal_open(&config, NULL, &wal) == 0);
    bool uring = rush_wal_uses_uring(wal);
    struct wal_run run = {0};
    wal_drive(wal, count, &run);
    RUSH_VERIFY(rush_wal_close(wal) == 0);
    double records = (double)run.batches * count;
    double log_bytes = (double)run.batches * (64.0 + 64.0 * count);
    double mb_per_s = log_bytes / run.seconds / 1e6;
    printf("{\"bench\":\"wal\",\"case\":\"wal_%s_%u_events\",\"ops_per_sec\":%.1f,"
           "\"records_per_sec\":%.1f,\"batches_per_sec\":%.1f,\"mb_per_sec\":%.2f,"
           "\"io_uring\":%s,\"fdatasyncs\":%" PRIu64 ",\"batches_per_fdatasync\":%.2f,"
           "\"avg_write_bytes\":%.0f,\"fdatasync_latency_us_p50\":%.1f,"
           "\"fdatasync_latency_us_p99\":%.1f,\"ack_latency_us_p50\":%.1f,"
           "\"ack_latency_us_p99\":%.1f,\"ratio_to_raw_mb\":%.3f,\"seconds\":%.2f}\n",
           mode == RUSH_WAL_NONE ? "none" : "fsync", count, records / run.seconds,
           records / run.seconds, run.batches / run.seconds, mb_per_s, uring ? "true" : "false",
           run.syncs, run.syncs ? (double)run.batches / run.syncs : 0.0,
           run.syncs ? (double)run.bytes / run.syncs : 0.0,
           percentile_us(samples, run.sync_samples, 50),
           percentile_us(samples, run.sync_samples, 99), run.ack_p50_us, run.ack_p99_us,
           raw_mb > 0 ? mb_per_s / raw_mb : 0.0, run.seconds);
    fflush(stdout);
}

static int count_events(void *context, uint64_t lsn, int64_t time_ns,
                        const struct rush_event *batch, uint32_t count)
{
    (void)lsn;
    (void)time_ns;
    (void)batch;
    *(uint64_t *)context += count;
    return 0;
}

static void bench_replay(const char *dir)
{
    uint64_t records = 0;
    struct rush_wal_recovery recovery;
    double start = rush_clock_monotonic_seconds();
    RUSH_VERIFY(rush_wal_replay(dir, 0, count_events, &records, &recovery) == 0);
    double seconds = rush_clock_monotonic_seconds() - start;
    double mb = (double)(recovery.batch_count * 64 + recovery.event_count * 64) / 1e6;
    printf("{\"bench\":\"wal\",\"case\":\"replay\",\"ops_per_sec\":%.1f,\"records_per_sec\":%.1f,"
           "\"mb_per_sec\":%.1f,\"records\":%" PRIu64 ",\"batches\":%" PRIu64
           ",\"segments\":%u,\"seconds\":%.3f}\n",
           records / seconds, records / seconds, mb / seconds, records, recovery.batch_count,
           recovery.segment_count, seconds);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    char made[64] = "";
    const char *dir = argc > 1 ? argv[1] : getenv("RUSH_BENCH_DIR");
    if (dir == NULL) {
        snprintf(made, sizeof(made), "/var/tmp/rush-bench-wal-XXXXXX");
        RUSH_VERIFY(mkdtemp(made) != NULL);
        dir = made;
    }
    for (uint32_t i = 0; i < BATCH_EVENTS_MAX; i++) {
        events[i].type = RUSH_EV_ORDER_RESERVED;
        events[i].order_id = i;
        events[i].amount = 100;
    }
    static const uint32_t raw_sizes[] = {4096, 65536, 262144, 1048576};
    double raw_mb[4];
    for (uint32_t i = 0; i < 4; i++)
        raw_mb[i] = bench_raw(dir, raw_sizes[i]);
    /* Matching sizes: 64 events = 4 KiB, 1024 = 64 KiB, 16384 = 1 MiB (plus the header). */
    bench_wal(dir, 64, RUSH_WAL_FSYNC, raw_mb[0]);
    cleanup_dir(dir);
    bench_wal(dir, 16384, RUSH_WAL_FSYNC, raw_mb[3]);
    cleanup_dir(dir);
    bench_wal(dir, 1024, RUSH_WAL_FSYNC, raw_mb[1]);
    bench_replay(dir);
    cleanup_dir(dir);
    bench_wal(dir, 1024, RUSH_WAL_NONE, raw_mb[1]);
    if (made[0] != '\0')
        rmdir(made);
    return 0;
}
