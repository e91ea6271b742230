/*
 * rush-wal — verify and read a data directory's write-ahead logs and snapshots.
 *
 *   rush-wal verify DIR [--shard N]
 *       For each shard with files in DIR (or shard N): replays its segments verifying every
 *       checksum, lsn and chain link, and verifies each of its snapshots and that the log
 *       continues the newest one. Prints per shard: segments, batches, events, first and last
 *       lsn, a torn tail or the corruption with file and offset; and the recorded shard count
 *       (rush-data-dir), with files of shards beyond it as corruption. Exit 0 clean (a torn
 *       tail is a warning), 1 corruption, 2 usage or I/O error.
 *   rush-wal dump DIR --shard N [--from LSN] [--limit N]
 *       One line per event, in log order, from batch LSN on, at most N events (default all).
 *   rush-wal snapshot-info FILE
 *       Verifies one snapshot file and prints its header and sections.
 *   rush-wal reshard
 *       Not built: a data directory keeps the shard count it was created with (wal/data_dir.h);
 *       to change it, start on a new, empty data directory. Says so and exits 2.
 *
 * Read-only: it never cuts a torn tail or writes anything. Workload: an operator's tool; a verify
 * reads every byte of the logs once (twice near a segment's end), like a start does.
 * Thread: one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/memory.h"
#include "base/number.h"
#include "rush/types.h"
#include "wal/data_dir.h"
#include "wal/snapshot.h"
#include "wal/wal.h"
#include "wal/wal_record.h"

#define EXIT_CORRUPT 1
#define EXIT_USAGE 2
#define STOP_DUMP (-ECANCELED) /* the callback's "enough": not an error */

struct options {
    const char *command;
    const char *path;
    int64_t shard; /* -1: every shard */
    uint64_t from_lsn;
    uint64_t limit; /* events; 0: no limit */
};

static int usage(void)
{
    fprintf(stderr, "usage: rush-wal verify DIR [--shard N]\n"
                    "       rush-wal dump DIR --shard N [--from LSN] [--limit N]\n"
                    "       rush-wal snapshot-info FILE\n"
                    "       (no reshard: a data directory keeps its shard count)\n");
    return EXIT_USAGE;
}

/* A decimal LSN, shard or count (base/number.h). */
static bool parse_u64(const char *text, uint64_t *out)
{
    return rush_number_parse_u64(text, strlen(text), 0, UINT64_MAX, out, NULL, 0) == 0;
}

static bool parse_options(int argc, char **argv, struct options *options)
{
    *options = (struct options){.shard = -1};
    if (argc < 3)
        return false;
    options->command = argv[1];
    options->path = argv[2];
    for (int i = 3; i < argc; i += 2) {
        uint64_t value;
        if (i + 1 >= argc || !parse_u64(argv[i + 1], &value))
            return false;
        if (strcmp(argv[i], "--shard") == 0 && value < RUSH_SHARDS_MAX)
            options->shard = (int64_t)value;
        else if (strcmp(argv[i], "--from") == 0)
            options->from_lsn = value;
        else if (strcmp(argv[i], "--limit") == 0)
            options->limit = value;
        else
            return false;
    }
    return true;
}

/* A whole file, mapped read-only. */
/* ---- snapshot-info ----------------------------------------------------------------------------
 */

static void print_header(const struct rush_snapshot_header *header)
{
    const struct rush_shard_limits *limits = &header->limits;
    printf("shard %" PRIu32 "\nlsn %" PRIu64 "\nclock_ns %" PRId64 "\nbytes %" PRIu64 "\n",
           header->shard_index, header->lsn, header->now_ns, header->file_bytes);
    printf("limits skus_max %" PRIu32 " orders_max %" PRIu32 " groups_max %" PRIu32
           " keys_max %" PRIu32 " user_limits_max %" PRIu32 "\n",
           limits->skus_max, limits->orders_max, limits->groups_max, limits->keys_max,
           limits->user_limits_max);
    for (int s = 0; s < RUSH_IMAGE_SECTION_COUNT; s++)
        printf("section %-12s records %10" PRIu32 " x %3" PRIu32 " bytes  xxh3 %016" PRIx64 "\n",
               rush_shard_image_section_name((enum rush_shard_image_section)s), header->counts[s],
               header->record_bytes[s], header->checksums[s]);
}

static int snapshot_info(const char *path)
{
    struct rush_mapped_file map;
    int rc = rush_memory_map_file(AT_FDCWD, path, MADV_SEQUENTIAL, &map);
    if (rc < 0) {
        fprintf(stderr, "rush-wal: %s: %s\n", path, rush_strerror(rc));
        return EXIT_USAGE;
    }
    struct rush_snapshot_view view;
    char why[256] = "";
    rc = rush_snapshot_decode(map.bytes, map.size, &view, why, sizeof(why));
    if (rc == 0)
        print_header(&view.header);
    rush_memory_unmap_file(&map);
    if (rc < 0) {
        printf("%s: CORRUPT: %s\n", path, why);
        return EXIT_CORRUPT;
    }
    printf("%s: ok\n", path);
    return 0;
}

/* ---- verify -----------------------------------------------------------------------------------
 */

/* Verifies the shard's snapshots; returns the newest good lsn in *newest, false on corruption. */
static bool verify_snapshots(const char *dir, uint32_t shard, const uint64_t *lsns, int count,
                             uint64_t *newest)
{
    bool clean = true;
    *newest = 0;
    for (int i = 0; i < count; i++) {
        char name[RUSH_SNAPSHOT_NAME_MAX], path[RUSH_WAL_DIR_MAX + RUSH_SNAPSHOT_NAME_MAX + 2];
        rush_snapshot_name(name, sizeof(name), shard, lsns[i]);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        struct rush_mapped_file map;
        struct rush_snapshot_view view;
        char why[256] = "";
        int rc = rush_memory_map_file(AT_FDCWD, path, MADV_SEQUENTIAL, &map);
        if (rc == 0)
            rc = rush_snapshot_decode(map.bytes, map.size, &view, why, sizeof(why));
        if (rc == 0 && (view.header.lsn != lsns[i] || view.header.shard_index != shard))
            rc = snprintf(why, sizeof(why), "header names another shard or lsn") * 0 - 1;
        if (rc < 0) {
            printf("shard %" PRIu32 ": snapshot %s: CORRUPT: %s\n", shard, name,
                   why[0] ? why : rush_strerror(rc));
            clean = false;
        } else {
            const uint32_t *counts = view.header.counts;
            printf("shard %" PRIu32 ": snapshot %s: lsn %" PRIu64 ", %zu bytes, %" PRIu32
                   " skus, %" PRIu32 " orders, %" PRIu32 " groups, %" PRIu32 " keys, %" PRIu32
                   " timers: ok\n",
                   shard, name, lsns[i], map.size, counts[RUSH_IMAGE_SKUS],
                   counts[RUSH_IMAGE_ORDERS], counts[RUSH_IMAGE_GROUPS], counts[RUSH_IMAGE_KEYS],
                   counts[RUSH_IMAGE_TIMERS]);
            *newest = lsns[i];
        }
        rush_memory_unmap_file(&map);
    }
    return clean;
}

static int count_batch(void *context, uint64_t lsn, int64_t time_ns,
                       const struct rush_event *events, uint32_t count)
{
    (void)context, (void)lsn, (void)time_ns, (void)events, (void)count;
    return 0;
}

/* Verifies one shard's files; false on corruption. */
static bool verify_shard(const char *dir, uint32_t shard, bool always)
{
    uint64_t *lsns = NULL;
    int snapshots = rush_snapshot_list(dir, shard, &lsns);
    struct rush_wal_recovery recovery;
    int rc = rush_wal_replay(dir, shard, count_batch, NULL, &recovery);
    if (rc == 0 && recovery.segment_count == 0 && snapshots <= 0 && !always) {
        free(lsns);
        return true;
    }
    printf("shard %" PRIu32 ": segments %" PRIu32 ", batches %" PRIu64 ", events %" PRIu64
           ", lsn %" PRIu64 "..%" PRIu64 ": %s%s\n",
           shard, recovery.segment_count, recovery.batch_count, recovery.event_count,
           recovery.first_lsn, recovery.last_lsn,
           rc < 0          ? "CORRUPT: "
           : recovery.torn ? "torn tail (a start cuts it): "
                           : "clean",
           rc < 0 && !recovery.message[0] ? rush_strerror(rc) : recovery.message);
    bool clean = rc == 0;
    uint64_t newest = 0;
    if (snapshots > 0)
        clean = verify_snapshots(dir, shard, lsns, snapshots, &newest) && clean;
    free(lsns);
    if (rc == 0 && newest > 0 &&
        ((recovery.batch_count > 0 && recovery.first_lsn > newest + 1) ||
         recovery.last_lsn < newest)) {
        printf("shard %" PRIu32 ": CORRUPT: the log (lsn %" PRIu64 "..%" PRIu64
               ") does not continue the snapshot at lsn %" PRIu64 "\n",
               shard, recovery.first_lsn, recovery.last_lsn, newest);
        clean = false;
    }
    return clean;
}

/* True when the shard has no segment and no snapshot in dir. */
static bool shard_clean_and_empty(const char *dir, uint32_t shard)
{
    uint64_t *lsns = NULL;
    int snapshots = rush_snapshot_list(dir, shard, &lsns);
    free(lsns);
    struct rush_wal_recovery recovery;
    int rc = rush_wal_replay(dir, shard, NULL, NULL, &recovery);
    return snapshots == 0 && rc == 0 && recovery.segment_count == 0;
}

static int verify(const struct options *options)
{
    struct stat st;
    if (stat(options->path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "rush-wal: %s: not a directory\n", options->path);
        return EXIT_USAGE;
    }
    struct rush_data_dir_layout layout = {0};
    int rc = rush_data_dir_read(options->path, &layout);
    bool clean = rc == 0 || rc == -ENOENT;
    if (rc == 0)
        printf("data dir: %" PRIu32 " shards, routing version %" PRIu32 "\n", layout.shard_count,
               layout.routing);
    else
        printf("data dir: %s\n", rc == -ENOENT ? "no " RUSH_DATA_DIR_FILE
                                                 " (made by an older build)"
                                               : "CORRUPT: " RUSH_DATA_DIR_FILE " is damaged");
    for (uint32_t shard = 0; shard < RUSH_SHARDS_MAX; shard++) {
        if (options->shard >= 0 && options->shard != shard)
            continue;
        bool shard_clean = verify_shard(options->path, shard, options->shard >= 0);
        if (rc == 0 && shard >= layout.shard_count &&
            !shard_clean_and_empty(options->path, shard)) {
            printf("shard %" PRIu32 ": CORRUPT: files of a shard beyond the recorded %" PRIu32 "\n",
                   shard, layout.shard_count);
            shard_clean = false;
        }
        clean = shard_clean && clean;
    }
    return clean ? 0 : EXIT_CORRUPT;
}

/* ---- dump -------------------------------------------------------------------------------------
 */

struct dump {
    const struct options *options;
    uint64_t printed;
};

static void format_time(int64_t time_ns, char *out, size_t size)
{
    time_t seconds = (time_t)(time_ns / 1000000000);
    long nanos = (long)(time_ns % 1000000000);
    if (nanos < 0) {
        nanos += 1000000000;
        seconds--;
    }
    struct tm tm;
    char date[32] = "?";
    if (gmtime_r(&seconds, &tm) != NULL)
        strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%09ldZ", date, nanos);
}

static void print_event(uint64_t lsn, const char *time, const struct rush_event *event)
{
    printf("lsn=%" PRIu64 " time=%s type=%s", lsn, time,
           rush_event_type_name((enum rush_event_type)event->type));
    if (event->type == RUSH_EV_SKU_PART || event->type == RUSH_EV_AUDIT_PART) {
        printf(" part=%" PRIu32 " bytes=", event->qty);
        int bytes = event->type == RUSH_EV_SKU_PART ? RUSH_SKU_PART_BYTES : RUSH_AUDIT_PART_BYTES;
        for (int i = 0; i < bytes; i++)
            printf("%02x", event->payload[i]);
        printf("\n");
        return;
    }
    printf(" op=%s outcome=%s flags=%u order=0x%" PRIx64 " group=0x%" PRIx64 " sku=%" PRIu64
           " user=%" PRIu64 " qty=%" PRIu32 " amount=%" PRId64 " key=",
           event->type == RUSH_EV_ADMIN_AUDIT ? rush_audit_action_name(event->op)
                                              : rush_op_name((enum rush_op)event->op),
           rush_outcome_name((enum rush_outcome)event->outcome), event->flags, event->order_id,
           event->group_id, event->sku_id, event->user_id, event->qty, event->amount);
    for (int i = 0; i < 16; i++)
        printf("%02x", event->key.bytes[i]);
    printf("\n");
}

static int dump_batch(void *context, uint64_t lsn, int64_t time_ns, const struct rush_event *events,
                      uint32_t count)
{
    struct dump *dump = context;
    if (lsn < dump->options->from_lsn)
        return 0;
    char time[64];
    format_time(time_ns, time, sizeof(time));
    for (uint32_t i = 0; i < count; i++) {
        if (dump->options->limit != 0 && dump->printed >= dump->options->limit)
            return STOP_DUMP;
        print_event(lsn, time, &events[i]);
        dump->printed++;
    }
    return 0;
}

static int dump(const struct options *options)
{
    if (options->shard < 0)
        return usage();
    struct dump state = {.options = options};
    struct rush_wal_recovery recovery;
    int rc =
        rush_wal_replay(options->path, (uint32_t)options->shard, dump_batch, &state, &recovery);
    if (rc == STOP_DUMP)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "rush-wal: shard %" PRId64 ": %s\n", options->shard,
                recovery.message[0] ? recovery.message : rush_strerror(rc));
        return rc == RUSH_ECORRUPT ? EXIT_CORRUPT : EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "reshard") == 0) {
        fprintf(stderr, "rush-wal: reshard is not built: a data directory keeps the shard count "
                        "it was created with; to change it, finish the sale and start rushd on "
                        "a new, empty data directory\n");
        return EXIT_USAGE;
    }
    struct options options;
    if (!parse_options(argc, argv, &options))
        return usage();
    if (strcmp(options.command, "verify") == 0)
        return verify(&options);
    if (strcmp(options.command, "dump") == 0)
        return dump(&options);
    if (strcmp(options.command, "snapshot-info") == 0 && argc == 3)
        return snapshot_info(options.path);
    return usage();
}
