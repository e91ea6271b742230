/*
 * Snapshots: a round trip restores the same state (digest, invariants, timers) whatever the hash
 * seed; through the engine, snapshot + more load + restart gives the pre-restart state and the
 * covered segments are gone; a damaged snapshot, one larger than the limits, or a log that does
 * not continue the snapshot refuse the start with a message naming the problem.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/memory.h"
#include "support.h"
#include "wal/snapshot.h"
#include "wal/snapshot_renew.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rush-snapshot-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    cr_assert_eq(system(command), 0);
}

TestSuite(snapshot, .init = make_dir, .fini = remove_dir);

/* Counts the files in dir whose names start with `prefix`. */
static uint32_t files_with_prefix(const char *prefix)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    uint32_t count = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL)
        count += strncmp(entry->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return count;
}

/* A mixed history on one shard: solo orders with pay TTLs, confirms, cancels, groups. */
static void drive(struct rush_shard *shard, uint64_t first, uint64_t count)
{
    int64_t now = T0_NS + (int64_t)first * MS;
    if (first == 1) {
        put_at(shard, now, sku_solo(1, 100000));
        put_at(shard, now, sku_group(2, 100000, 3));
        struct rush_sku unlimited = sku_solo(3, 0);
        unlimited.unlimited = 1;
        put_at(shard, now, unlimited);
    }
    for (uint64_t n = first; n < first + count; n++) {
        now = T0_NS + (int64_t)n * MS;
        uint64_t earlier = n > 10 ? ((n * 7919) % (n - 1)) + 1 : 1;
        uint64_t order = earlier; /* shard 0: the order id is its index */
        struct rush_request request;
        switch (n % 6) {
        case 0:
            request = request_of(RUSH_OP_CONFIRM, 0, 0, 0, order, n);
            break;
        case 1:
            request = request_of(RUSH_OP_CANCEL, 0, 0, 0, order, n);
            break;
        case 2:
            request = request_of(RUSH_OP_GROUP_JOIN_ANY, 2, n % 500, 0, 0, n);
            break;
        case 3:
            request = request_of(RUSH_OP_RESERVE, 3, n % 300, 1, 0, n);
            break;
        default:
            request = request_of(RUSH_OP_RESERVE, 1, n % 700, 1 + n % 2, 0, n);
            break;
        }
        decide_at(shard, now, request);
    }
}

static struct rush_shard *loaded(struct rush_shard_limits limits, uint64_t seed, int *rc,
                                 uint64_t *lsn, char *why, size_t why_size)
{
    struct rush_shard *shard = shard_new(limits, seed, NULL);
    *rc = rush_snapshot_load(shard, dir, 0, lsn, why, why_size);
    return shard;
}

static void assert_checks(const struct rush_shard *shard)
{
    char why[256] = "";
    cr_assert_eq(rush_shard_check(shard, why, sizeof(why)), 0, "%s", why);
}

Test(snapshot, a_round_trip_restores_the_digest_whatever_the_seed)
{
    struct rush_shard *shard = shard_new(small_limits(), 11, NULL);
    drive(shard, 1, 3000);
    char why[512] = "";
    cr_assert_eq(rush_snapshot_write(shard, dir, 0, 42, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(files_with_prefix("snap-00-"), 1);
    uint64_t seeds[] = {11, 0x9e3779b97f4a7c15};
    for (int i = 0; i < 2; i++) {
        int rc;
        uint64_t lsn = 0;
        struct rush_shard *copy = loaded(small_limits(), seeds[i], &rc, &lsn, why, sizeof(why));
        cr_assert_eq(rc, 0, "%s", why);
        cr_assert_eq(lsn, 42);
        cr_assert_eq(rush_shard_digest(copy), rush_shard_digest(shard), "seed %lu", seeds[i]);
        assert_checks(copy);
        /* Timers came across: an hour later both expire and fail the same orders and groups. */
        struct recorder a, b;
        recorder_init(&a, 100000);
        recorder_init(&b, 100000);
        struct rush_shard *original = shard_new(small_limits(), 11, &a);
        cr_assert_eq(rush_snapshot_load(original, dir, 0, &lsn, why, sizeof(why)), 0, "%s", why);
        struct rush_shard *other = shard_new(small_limits(), seeds[i], &b);
        cr_assert_eq(rush_snapshot_load(other, dir, 0, &lsn, why, sizeof(why)), 0, "%s", why);
        drive(original, 3001, 50);
        drive(other, 3001, 50);
        rush_shard_begin(original, T0_NS + 3600 * SECOND);
        rush_shard_end(original);
        rush_shard_begin(other, T0_NS + 3600 * SECOND);
        rush_shard_end(other);
        cr_assert_gt(recorder_count_type(&a, RUSH_EV_ORDER_EXPIRED), 0);
        cr_assert_eq(a.count, b.count);
        cr_assert_eq(memcmp(a.events, b.events, a.count * sizeof(*a.events)), 0);
        cr_assert_eq(rush_shard_digest(original), rush_shard_digest(other));
        assert_checks(other);
        rush_shard_destroy(original);
        rush_shard_destroy(other);
        recorder_free(&a);
        recorder_free(&b);
        rush_shard_destroy(copy);
    }
    rush_shard_destroy(shard);
}

/* The background writer's way (wal/snapshot_child.c): O_DIRECT where the file system takes it,
 * paced after each buffer; staged, committed and loaded, the file restores the same state. */
Test(snapshot, a_paced_direct_snapshot_restores_the_digest)
{
    struct rush_shard_limits limits = small_limits();
    limits.orders_max = 65536;
    limits.keys_max = 131072;
    limits.user_limits_max = 65536;
    struct rush_shard *shard = shard_new(limits, 3, NULL);
    drive(shard, 1, 3000);
    for (uint64_t n = 3001; n <= 40000; n++) /* distinct buyers of the unlimited SKU */
        decide_at(shard, T0_NS + (int64_t)n * MS,
                  request_of(RUSH_OP_RESERVE, 3, 1000 + n, 1, 0, n));
    char why[512] = "";
    struct rush_snapshot_pace pace = {.idle_per_busy = 2, .hurry = NULL};
    cr_assert_eq(rush_snapshot_stage(shard, dir, 0, 12, true, &pace, why, sizeof(why)), 0, "%s",
                 why);
    cr_assert_eq(rush_snapshot_commit(dir, 0, 12, why, sizeof(why)), 0, "%s", why);
    char name[RUSH_SNAPSHOT_NAME_MAX], path[160];
    rush_snapshot_name(name, sizeof(name), 0, 12);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct stat file;
    cr_assert_eq(stat(path, &file), 0);
    cr_assert_gt(file.st_size, 1 << 20, "%ld bytes: more than one buffer, so paced writes",
                 (long)file.st_size);
    int rc;
    uint64_t lsn = 0;
    struct rush_shard *copy = loaded(limits, 3, &rc, &lsn, why, sizeof(why));
    cr_assert_eq(rc, 0, "%s", why);
    cr_assert_eq(lsn, 12);
    cr_assert_eq(rush_shard_digest(copy), rush_shard_digest(shard));
    assert_checks(copy);
    rush_shard_destroy(copy);
    /* Someone waiting (hurry set before the first write, as at shutdown): the same file. */
    atomic_bool hurry = true;
    pace = (struct rush_snapshot_pace){.idle_per_busy = RUSH_SNAPSHOT_IDLE_PER_BUSY_MAX,
                                       .hurry = &hurry};
    cr_assert_eq(rush_snapshot_stage(shard, dir, 0, 13, true, &pace, why, sizeof(why)), 0, "%s",
                 why);
    cr_assert_eq(rush_snapshot_commit(dir, 0, 13, why, sizeof(why)), 0, "%s", why);
    copy = loaded(limits, 3, &rc, &lsn, why, sizeof(why));
    cr_assert_eq(rc, 0, "%s", why);
    cr_assert_eq(lsn, 13);
    cr_assert_eq(rush_shard_digest(copy), rush_shard_digest(shard));
    rush_shard_destroy(copy);
    rush_shard_destroy(shard);
}

Test(snapshot, a_newer_snapshot_replaces_the_older_one)
{
    struct rush_shard *shard = shard_new(small_limits(), 5, NULL);
    drive(shard, 1, 200);
    char why[512] = "";
    cr_assert_eq(rush_snapshot_write(shard, dir, 0, 7, why, sizeof(why)), 0, "%s", why);
    drive(shard, 201, 200);
    cr_assert_eq(rush_snapshot_write(shard, dir, 0, 9, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(files_with_prefix("snap-00-"), 1);
    int rc;
    uint64_t lsn;
    struct rush_shard *copy = loaded(small_limits(), 5, &rc, &lsn, why, sizeof(why));
    cr_assert_eq(rc, 0, "%s", why);
    cr_assert_eq(lsn, 9);
    cr_assert_eq(rush_shard_digest(copy), rush_shard_digest(shard));
    rush_shard_destroy(copy);
    rush_shard_destroy(shard);
}

Test(snapshot, no_snapshot_loads_nothing)
{
    int rc;
    uint64_t lsn = 99;
    char why[256] = "";
    struct rush_shard *shard = loaded(small_limits(), 1, &rc, &lsn, why, sizeof(why));
    cr_assert_eq(rc, 0);
    cr_assert_eq(lsn, 0);
    rush_shard_destroy(shard);
}

/* The snapshot file of shard `shard`. */
static void snapshot_path(uint32_t shard, char *path, size_t size)
{
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "snap-%02u-", shard);
    DIR *d = opendir(dir);
    struct dirent *entry;
    path[0] = 0;
    while ((entry = readdir(d)) != NULL)
        if (strncmp(entry->d_name, prefix, strlen(prefix)) == 0)
            snprintf(path, size, "%s/%s", dir, entry->d_name);
    closedir(d);
    cr_assert_neq(path[0], 0);
}

static void flip_byte(const char *path, off_t offset)
{
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t byte;
    cr_assert_eq(pread(fd, &byte, 1, offset), 1);
    byte ^= 0x10;
    cr_assert_eq(pwrite(fd, &byte, 1, offset), 1);
    close(fd);
}

Test(snapshot, a_damaged_snapshot_is_refused_naming_the_file)
{
    struct rush_shard *shard = shard_new(small_limits(), 3, NULL);
    drive(shard, 1, 500);
    char why[512] = "";
    cr_assert_eq(rush_snapshot_write(shard, dir, 0, 5, why, sizeof(why)), 0, "%s", why);
    rush_shard_destroy(shard);
    char path[512];
    snapshot_path(0, path, sizeof(path));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    off_t places[] = {10, RUSH_SNAPSHOT_HEADER_BYTES + 5, st.st_size - 3};
    for (int i = 0; i < 3; i++) {
        flip_byte(path, places[i]);
        int rc;
        uint64_t lsn;
        shard = loaded(small_limits(), 3, &rc, &lsn, why, sizeof(why));
        cr_assert_eq(rc, RUSH_ECORRUPT, "offset %ld", (long)places[i]);
        cr_assert_not_null(strstr(why, "snap-00-0000000000000005.snap"), "%s", why);
        cr_log_info("refused: %s", why);
        rush_shard_destroy(shard);
        flip_byte(path, places[i]);
    }
    cr_assert_eq(truncate(path, st.st_size - 64), 0); /* cut short */
    int rc;
    uint64_t lsn;
    shard = loaded(small_limits(), 3, &rc, &lsn, why, sizeof(why));
    cr_assert_eq(rc, RUSH_ECORRUPT, "%s", why);
    rush_shard_destroy(shard);
}

Test(snapshot, a_snapshot_larger_than_the_limits_is_refused)
{
    struct rush_shard *shard = shard_new(small_limits(), 3, NULL);
    drive(shard, 1, 500);
    char why[512] = "";
    cr_assert_eq(rush_snapshot_write(shard, dir, 0, 5, why, sizeof(why)), 0, "%s", why);
    struct rush_shard_limits smaller = small_limits();
    smaller.orders_max = 100;
    int rc;
    uint64_t lsn;
    struct rush_shard *copy = loaded(smaller, 3, &rc, &lsn, why, sizeof(why));
    cr_assert_eq(rc, RUSH_ECONFIG);
    cr_assert_not_null(strstr(why, "orders_max"), "%s", why);
    rush_shard_destroy(copy);
    /* Larger limits than the writer's are fine: group timers move with orders_max. */
    struct rush_shard_limits larger = small_limits();
    larger.orders_max *= 2;
    larger.keys_max *= 2;
    copy = loaded(larger, 4, &rc, &lsn, why, sizeof(why));
    cr_assert_eq(rc, 0, "%s", why);
    assert_checks(copy);
    rush_shard_destroy(copy);
    rush_shard_destroy(shard);
}

/* ---- the shard's side, without a file ------------------------------------------------------ */

/* One section's records, collected in memory by the shard's sink. */
struct collected {
    uint8_t *bytes;
    size_t used;
    size_t capacity;
};

static void collect(void *context, const void *record, size_t bytes)
{
    struct collected *section = context;
    if (section->used + bytes > section->capacity) {
        section->capacity = 2 * (section->used + bytes);
        section->bytes = realloc(section->bytes, section->capacity);
        cr_assert_not_null(section->bytes);
    }
    memcpy(section->bytes + section->used, record, bytes);
    section->used += bytes;
}

Test(snapshot, a_shard_image_restores_the_digest_without_a_file)
{
    struct rush_shard *shard = shard_new(small_limits(), 11, NULL);
    drive(shard, 1, 2000);
    struct collected sections[RUSH_IMAGE_SECTION_COUNT] = {0};
    struct rush_shard_image image = {.now_ns = rush_shard_now(shard)};
    for (int s = 0; s < RUSH_IMAGE_SECTION_COUNT; s++) {
        enum rush_shard_image_section section = (enum rush_shard_image_section)s;
        image.counts[s] = rush_shard_image_emit(shard, section, collect, &sections[s]);
        cr_assert_gt(image.counts[s], 0, "%s", rush_shard_image_section_name(section));
        cr_assert_eq(sections[s].used,
                     (size_t)image.counts[s] * rush_shard_image_record_bytes(section));
        image.sections[s] = sections[s].bytes;
    }
    char why[256] = "";
    struct rush_shard *copy = shard_new(small_limits(), 77, NULL);
    cr_assert_eq(rush_shard_image_restore(copy, &image, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(rush_shard_digest(copy), rush_shard_digest(shard));
    rush_shard_destroy(copy);
    /* One SKU id entry fewer than SKUs: refused, without reading past the section. */
    image.counts[RUSH_IMAGE_SKU_IDS]--;
    copy = shard_new(small_limits(), 77, NULL);
    cr_assert_eq(rush_shard_image_restore(copy, &image, why, sizeof(why)), RUSH_ECORRUPT);
    cr_assert_not_null(strstr(why, "SKU ids"), "%s", why);
    rush_shard_destroy(copy);
    for (int s = 0; s < RUSH_IMAGE_SECTION_COUNT; s++)
        free(sections[s].bytes);
    rush_shard_destroy(shard);
}

/*
 * What a background snapshot's fork is followed by (wal/snapshot_renew.h): with a child sharing
 * every page, the shard's tables are renewed chunk by chunk while the shard goes on deciding; the
 * shard then holds, checks and decides exactly what a twin that never renewed does.
 */
Test(snapshot, renewing_the_tables_after_a_fork_changes_nothing_the_shard_holds, .timeout = 120)
{
    struct rush_shard_limits limits = small_limits();
    limits.orders_max = 100000;
    limits.keys_max = 200000;
    limits.user_limits_max = 100000;
    struct rush_shard *shard = shard_new(limits, 5, NULL);
    struct rush_shard *twin = shard_new(limits, 5, NULL);
    drive(shard, 1, 20000);
    drive(twin, 1, 20000);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork(); /* shares every page, as a snapshot's child does */
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char byte;
        close(go[1]);
        _exit(read(go[0], &byte, 1) == 1 ? 0 : 1);
    }
    close(go[0]);
    struct rush_snapshot_renew renew;
    rush_snapshot_renew_init(&renew);
    rush_snapshot_renew_start(&renew, shard);
    if (!rush_memory_huge_available()) { /* the kernel's THP setting is "never": the fall-back */
        cr_assert(!rush_snapshot_renew_pending(&renew), "nothing to renew without huge pages");
        cr_assert(!rush_snapshot_renew_step(&renew));
    }
    uint64_t chunks = 0;
    for (uint32_t r = 0; r < renew.region_count; r++)
        chunks += renew.region_bytes[r] / RUSH_MEMORY_CHUNK_BYTES;
    cr_assert(!rush_memory_huge_available() || chunks > 4, "the tables span several chunks");
    uint64_t next = 20001;
    int64_t deadline = rush_clock_monotonic_ns() + INT64_C(60000000000);
    /* Bounded: one chunk per step taken; a step without a fresh chunk yields to the maker. */
    while (rush_snapshot_renew_pending(&renew) && rush_clock_monotonic_ns() < deadline) {
        if (!rush_snapshot_renew_step(&renew))
            sched_yield();
        drive(shard, next, 7); /* decisions between the steps, as on the shard thread */
        drive(twin, next, 7);
        next += 7;
    }
    cr_assert(!rush_snapshot_renew_pending(&renew), "renewal did not finish in time");
    cr_assert_eq(renew.chunks_renewed, rush_memory_huge_available() ? chunks : 0);
    assert_checks(shard);
    cr_assert_eq(rush_shard_digest(shard), rush_shard_digest(twin));
    drive(shard, next, 3000);
    drive(twin, next, 3000);
    assert_checks(shard);
    cr_assert_eq(rush_shard_digest(shard), rush_shard_digest(twin));
    cr_assert_eq(write(go[1], "g", 1), 1);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(go[1]);
    rush_snapshot_renew_stop(&renew);
    rush_shard_destroy(twin);
    rush_shard_destroy(shard);
}

/* ---- through the engine -------------------------------------------------------------------- */

static bool snapshots_in_background; /* set by the tests of background snapshots */
static int rush_wal_tool(const char *command);

static struct rush_engine *open_engine(int *rc, uint64_t every)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, 2);
    config.limits = small_limits();
    config.limits.orders_max = 100000;
    config.limits.keys_max = 200000;
    config.limits.user_limits_max = 100000;
    config.ring_slots = 16;
    config.work_requests_max = 256;
    config.data_dir = dir;
    config.wal_segment_bytes = 256 << 10;
    config.snapshot_every_events = every;
    config.snapshot_in_background = snapshots_in_background;
    struct rush_engine *engine = NULL;
    *rc = rush_engine_create(&config, &engine);
    if (*rc == 0)
        *rc = rush_engine_start(engine);
    return engine;
}

static void digest_of(struct rush_shard *shard, void *context)
{
    *(uint64_t *)context = rush_shard_digest(shard);
}

static void load(struct rush_engine *engine, uint64_t first, uint64_t count)
{
    enum { PER = 64 };
    for (uint64_t n = first; n < first + count; n += PER) {
        struct rush_request requests[PER];
        struct rush_result results[PER];
        for (uint32_t i = 0; i < PER; i++) {
            uint64_t k = n + i;
            requests[i] = k % 5 == 0 ? request_of(RUSH_OP_GROUP_JOIN_ANY, 2, k % 4000, 0, 0, k)
                                     : request_of(RUSH_OP_RESERVE, 1, k % 5000, 1, 0, k);
        }
        cr_assert_eq(rush_engine_execute(engine, requests, PER, results), 0);
    }
}

static void put_catalogue(struct rush_engine *engine)
{
    struct rush_result result;
    struct rush_sku hot = sku_solo(1, 300000);
    struct rush_sku group = sku_group(2, 300000, 3);
    cr_assert_eq(rush_engine_sku_put(engine, &hot, &result), 0);
    cr_assert_eq(rush_engine_sku_put(engine, &group, &result), 0);
}

Test(snapshot, engine_restart_from_snapshot_and_tail, .timeout = 120)
{
    int rc;
    struct rush_engine *engine = open_engine(&rc, 0);
    cr_assert_eq(rc, 0);
    put_catalogue(engine);
    load(engine, 1, 20000);
    uint32_t segments_before = files_with_prefix("wal-");
    cr_assert_gt(segments_before, 4, "the test needs several segments");
    cr_assert_eq(rush_engine_snapshot(engine), 0);
    cr_assert_eq(files_with_prefix("snap-"), 2);
    cr_assert_lt(files_with_prefix("wal-"), segments_before, "covered segments are removed");
    cr_assert_leq(files_with_prefix("wal-"), 2 + 2);
    load(engine, 20001, 3000);
    uint64_t before[2], after[2];
    for (uint32_t s = 0; s < 2; s++)
        rush_engine_inspect(engine, s, digest_of, &before[s]);
    rush_engine_destroy(engine);

    engine = open_engine(&rc, 0);
    cr_assert_eq(rc, 0);
    struct rush_engine_stats stats;
    rush_engine_stats(engine, &stats);
    cr_assert_lt(stats.recovered_events, 6000, "only the tail is replayed");
    cr_assert_gt(stats.recovered_events, 0);
    for (uint32_t s = 0; s < 2; s++) {
        rush_engine_inspect(engine, s, digest_of, &after[s]);
        cr_assert_eq(before[s], after[s], "shard %u state differs after restart", s);
    }
    /* A retry of a request decided before the snapshot is answered as a duplicate. */
    struct rush_request again = request_of(RUSH_OP_RESERVE, 1, 1 % 5000, 1, 0, 1);
    struct rush_result result;
    cr_assert_eq(rush_engine_execute(engine, &again, 1, &result), 0);
    cr_assert(result.flags & RUSH_RESULT_DUPLICATE);
    rush_engine_destroy(engine);
}

Test(snapshot, the_engine_takes_snapshots_every_n_events, .timeout = 120)
{
    int rc;
    struct rush_engine *engine = open_engine(&rc, 2000);
    cr_assert_eq(rc, 0);
    put_catalogue(engine);
    load(engine, 1, 10000);
    uint64_t before[2], after[2];
    for (uint32_t s = 0; s < 2; s++)
        rush_engine_inspect(engine, s, digest_of, &before[s]);
    rush_engine_destroy(engine);
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "snap-%02u-", rush_engine_shard_of_sku(2, 1));
    cr_assert_eq(files_with_prefix(prefix), 1, "one snapshot per shard is kept");
    engine = open_engine(&rc, 2000);
    cr_assert_eq(rc, 0);
    for (uint32_t s = 0; s < 2; s++) {
        rush_engine_inspect(engine, s, digest_of, &after[s]);
        cr_assert_eq(before[s], after[s]);
    }
    rush_engine_destroy(engine);
}

/*
 * Background snapshots (a forked child writes from the copy-on-write image while the shard goes
 * on deciding): the restart from the last one plus the log after it gives exactly the state the
 * engine had, so the child wrote the state as of its lsn, not a mix of before and after.
 */
Test(snapshot, background_snapshots_restart_to_the_same_state, .timeout = 120)
{
    snapshots_in_background = true;
    int rc;
    struct rush_engine *engine = open_engine(&rc, 2000);
    cr_assert_eq(rc, 0);
    put_catalogue(engine);
    load(engine, 1, 20000);
    uint64_t before[2], after[2];
    for (uint32_t s = 0; s < 2; s++)
        rush_engine_inspect(engine, s, digest_of, &before[s]);
    struct rush_engine_stats stats;
    rush_engine_stats(engine, &stats);
    uint64_t events = stats.events;
    rush_engine_destroy(engine); /* waits for a child still writing */
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "snap-%02u-", rush_engine_shard_of_sku(2, 1));
    cr_assert_eq(files_with_prefix(prefix), 1, "one snapshot per shard is kept");
    cr_assert_eq(rush_wal_tool("verify"), 0);
    snapshots_in_background = false;
    engine = open_engine(&rc, 0);
    cr_assert_eq(rc, 0);
    rush_engine_stats(engine, &stats);
    cr_assert_lt(stats.recovered_events, events, "the snapshots cut the replay");
    for (uint32_t s = 0; s < 2; s++) {
        rush_engine_inspect(engine, s, digest_of, &after[s]);
        cr_assert_eq(before[s], after[s], "shard %u differs after the restart", s);
    }
    rush_engine_destroy(engine);
}

/*
 * Heavy mutation in rounds of 512: reserves and group joins, and confirms and cancels of orders
 * reserved in earlier rounds, so that pages the snapshot child is reading are written meanwhile.
 */
static bool load_mixed(struct rush_engine *engine, uint32_t rounds)
{
    enum { PER = 512, KEPT = 4096 };
    static uint64_t orders[KEPT];
    uint32_t kept = 0;
    static struct rush_request requests[PER];
    static struct rush_result results[PER];
    static uint64_t key = 1; /* keys go on across calls */
    for (uint64_t round = 0; round < rounds; round++) {
        for (uint32_t i = 0; i < PER; i++, key++) {
            uint64_t earlier = kept > 0 ? orders[(key * 7919) % kept] : 0;
            switch (key % 8) {
            case 0:
                requests[i] = request_of(RUSH_OP_CONFIRM, 0, 0, 0, earlier, key);
                break;
            case 1:
                requests[i] = request_of(RUSH_OP_CANCEL, 0, 0, 0, earlier, key);
                break;
            case 2:
            case 3:
                requests[i] = request_of(RUSH_OP_GROUP_JOIN_ANY, 2, key % 9000, 0, 0, key);
                break;
            default:
                requests[i] = request_of(RUSH_OP_RESERVE, 1, key % 20000, 1, 0, key);
                break;
            }
            if (earlier == 0 && key % 8 < 2) /* nothing to pay yet: reserve instead */
                requests[i] = request_of(RUSH_OP_RESERVE, 1, key % 20000, 1, 0, key);
        }
        if (rush_engine_execute(engine, requests, PER, results) != 0)
            return false;
        for (uint32_t i = 0; i < PER; i++)
            if (requests[i].op == RUSH_OP_RESERVE && results[i].outcome == RUSH_OK)
                orders[kept < KEPT ? kept++ : (i * 31) % KEPT] = results[i].order_id;
    }
    return true;
}

/* What the engine process hands the test after each round. */
struct crash_report {
    uint64_t digests[2];
    uint64_t events;
};

/*
 * The engine process: rounds of heavy mutation with background snapshots every 1,500 events;
 * after each round it reports the shards' digests and waits for the test's go (so that nothing
 * is in flight when the test kills it); it never ends by itself.
 */
static _Noreturn void crash_engine_main(int report_fd, int go_fd, bool huge_pages)
{
    if (!huge_pages && setenv("RUSH_HUGE_PAGES", "off", 1) != 0)
        _exit(13);
    snapshots_in_background = true;
    int rc;
    struct rush_engine *engine = open_engine(&rc, 1500);
    if (rc != 0)
        _exit(10);
    put_catalogue(engine);
    for (;;) {
        if (!load_mixed(engine, 1))
            _exit(11);
        struct crash_report report;
        for (uint32_t s = 0; s < 2; s++)
            rush_engine_inspect(engine, s, digest_of, &report.digests[s]);
        struct rush_engine_stats stats;
        rush_engine_stats(engine, &stats);
        report.events = stats.events;
        char go;
        if (write(report_fd, &report, sizeof(report)) != (ssize_t)sizeof(report) ||
            read(go_fd, &go, 1) != 1)
            _exit(12);
    }
}

/*
 * Background snapshots written while the shards mutate heavily (every round writes pages the
 * child is reading), then kill -9 of the whole engine process between two rounds, with a snapshot
 * child likely still writing: recovery (the newest snapshot + the log after its lsn) gives
 * exactly the state the engine had at its last report, the one that never crashed.
 */
static void crash_and_recover(bool huge_pages)
{
    enum { ROUNDS = 80 };
    int reports[2], gos[2];
    cr_assert_eq(pipe(reports), 0);
    cr_assert_eq(pipe(gos), 0);
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); /* the snapshot children come back here */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(reports[0]);
        close(gos[1]);
        crash_engine_main(reports[1], gos[0], huge_pages);
    }
    close(reports[1]);
    close(gos[0]);
    struct crash_report report;
    for (uint32_t round = 1; round <= ROUNDS; round++) {
        struct pollfd ready = {.fd = reports[0], .events = POLLIN};
        cr_assert_eq(poll(&ready, 1, 60 * 1000), 1, "no report for round %u", round);
        cr_assert_eq(read(reports[0], &report, sizeof(report)), (ssize_t)sizeof(report));
        if (round < ROUNDS)
            cr_assert_eq(write(gos[1], "g", 1), 1);
    }
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "the engine process ended early: %d", status);
    /* Its snapshot children die with it (PR_SET_PDEATHSIG); reap them before recovering. */
    while (waitpid(-1, &status, 0) > 0 || errno == EINTR)
        continue;
    close(reports[0]);
    close(gos[1]);
    cr_assert_gt(files_with_prefix("snap-"), 0, "snapshots were written during the load");
    cr_assert_eq(rush_wal_tool("verify"), 0);

    snapshots_in_background = false;
    int rc;
    struct rush_engine *engine = open_engine(&rc, 0);
    cr_assert_eq(rc, 0);
    struct rush_engine_stats stats;
    rush_engine_stats(engine, &stats);
    cr_assert_lt(stats.recovered_events, report.events, "a snapshot cut the replay");
    for (uint32_t s = 0; s < 2; s++) {
        uint64_t digest;
        rush_engine_inspect(engine, s, digest_of, &digest);
        cr_assert_eq(digest, report.digests[s], "shard %u differs from the state before the kill",
                     s);
    }
    rush_engine_destroy(engine);
}

/* With transparent huge pages: the tables' chunks are renewed after each fork meanwhile. */
Test(snapshot, a_crash_amid_background_snapshots_recovers_the_live_state, .timeout = 120)
{
    crash_and_recover(true);
}

/* The fall-back without huge pages (RUSH_HUGE_PAGES=off): small pages, nothing renewed. */
Test(snapshot, a_crash_amid_background_snapshots_without_huge_pages_recovers_the_live_state,
     .timeout = 120)
{
    crash_and_recover(false);
}

/* Runs the rush-wal tool (built beside the tests; ctest runs in the build directory) on dir. */
static int rush_wal_tool(const char *command)
{
    char line[256];
    snprintf(line, sizeof(line), "bin/rush-wal %s %s >/dev/null", command, dir);
    int status = system(line);
    cr_assert(WIFEXITED(status), "rush-wal did not run: %d", status);
    return WEXITSTATUS(status);
}

Test(snapshot, a_damaged_snapshot_refuses_the_engine_start, .timeout = 60)
{
    int rc;
    struct rush_engine *engine = open_engine(&rc, 0);
    cr_assert_eq(rc, 0);
    put_catalogue(engine);
    load(engine, 1, 2000);
    cr_assert_eq(rush_engine_snapshot(engine), 0);
    rush_engine_destroy(engine);
    char path[512];
    snapshot_path(rush_engine_shard_of_sku(2, 1), path, sizeof(path));
    cr_assert_eq(rush_wal_tool("verify"), 0);
    flip_byte(path, RUSH_SNAPSHOT_HEADER_BYTES + 100);
    cr_assert_eq(rush_wal_tool("verify"), 1, "rush-wal verify reports the damage");
    engine = open_engine(&rc, 0);
    cr_assert_eq(rc, RUSH_ECORRUPT);
    cr_assert_null(engine);
}

Test(snapshot, a_log_that_does_not_continue_the_snapshot_is_refused, .timeout = 60)
{
    int rc;
    struct rush_engine *engine = open_engine(&rc, 0);
    cr_assert_eq(rc, 0);
    put_catalogue(engine);
    load(engine, 1, 2000);
    cr_assert_eq(rush_engine_snapshot(engine), 0);
    rush_engine_destroy(engine);
    char command[256];
    snprintf(command, sizeof(command), "rm -f %s/wal-*", dir);
    cr_assert_eq(system(command), 0);
    engine = open_engine(&rc, 0);
    cr_assert_eq(rc, RUSH_ECORRUPT);
    cr_assert_null(engine);
}

Test(snapshot, no_data_dir_no_snapshot)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, 1);
    config.limits = small_limits();
    struct rush_engine *engine = NULL;
    cr_assert_eq(rush_engine_create(&config, &engine), 0);
    cr_assert_eq(rush_engine_start(engine), 0);
    cr_assert_eq(rush_engine_snapshot(engine), RUSH_ECONFIG);
    rush_engine_destroy(engine);
}
