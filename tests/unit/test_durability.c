/*
 * Durability through the engine: state survives a clean restart byte for byte, and kill -9 at
 * seeded moments under load loses no acknowledged decision — every acknowledged request, resent
 * with its key, answers its original result, and the ledgers hold. Damage before the log's tail
 * refuses the start.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rush-durability-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char command[192];
    snprintf(command, sizeof(command), "umount %s 2>/dev/null; rm -rf %s", dir, dir);
    cr_assert_eq(system(command), 0);
}

TestSuite(durability, .init = make_dir, .fini = remove_dir);

static uint64_t segment_bytes; /* 0: the default */

static struct rush_engine *open_engine(int *rc)
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
    config.wal_segment_bytes = segment_bytes;
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

static void check_of(struct rush_shard *shard, void *context)
{
    char why[256];
    if (rush_shard_check(shard, why, sizeof(why)) != 0) {
        cr_log_error("%s", why);
        (*(int *)context)++;
    }
}

static void put_catalogue(struct rush_engine *engine)
{
    struct rush_result result;
    struct rush_sku hot = sku_solo(1, 3000);
    hot.order_qty_max = hot.user_qty_max = 2; /* order <= user, as every SKU must have */
    struct rush_sku group = sku_group(2, 3000, 3);
    cr_assert_eq(rush_engine_sku_put(engine, &hot, &result), 0);
    cr_assert_eq(rush_engine_sku_put(engine, &group, &result), 0);
}

/* Request n of a fixed mixed workload: reserves, group joins, confirms of earlier orders. */
static struct rush_request workload(uint64_t n, const uint64_t *orders, uint64_t order_count)
{
    if (n % 7 == 3 && order_count > 0)
        return request_of(RUSH_OP_CONFIRM, 0, 0, 0, orders[(n * 31) % order_count], n);
    if (n % 5 == 0)
        return request_of(RUSH_OP_GROUP_JOIN_ANY, 2, n % 4000, 0, 0, n);
    return request_of(RUSH_OP_RESERVE, 1, n % 5000, 1, 0, n);
}

Test(durability, a_clean_restart_restores_the_same_state)
{
    int rc;
    struct rush_engine *engine = open_engine(&rc);
    cr_assert_eq(rc, 0);
    put_catalogue(engine);
    enum { N = 3000 };
    static struct rush_request requests[N];
    static struct rush_result results[N];
    uint64_t orders[N], order_count = 0;
    for (uint64_t n = 0; n < N; n++) {
        requests[n] = workload(n + 1, orders, order_count);
        cr_assert_eq(rush_engine_execute(engine, &requests[n], 1, &results[n]), 0);
        if (requests[n].op == RUSH_OP_RESERVE && results[n].outcome == RUSH_OK)
            orders[order_count++] = results[n].order_id;
    }
    uint64_t before[2], after[2];
    for (uint32_t s = 0; s < 2; s++)
        rush_engine_inspect(engine, s, digest_of, &before[s]);
    rush_engine_destroy(engine);

    engine = open_engine(&rc);
    cr_assert_eq(rc, 0);
    for (uint32_t s = 0; s < 2; s++) {
        rush_engine_inspect(engine, s, digest_of, &after[s]);
        cr_assert_eq(before[s], after[s], "shard %u state differs after replay", s);
    }
    struct rush_engine_stats stats;
    rush_engine_stats(engine, &stats);
    cr_assert_gt(stats.recovered_events, N / 2);
    for (uint64_t n = 0; n < N; n += 97) {
        struct rush_result again;
        cr_assert_eq(rush_engine_execute(engine, &requests[n], 1, &again), 0);
        if (results[n].outcome == RUSH_OK || results[n].outcome == RUSH_SOLD_OUT)
            cr_assert(again.flags & RUSH_RESULT_DUPLICATE, "request %lu", n);
        cr_assert_eq(again.outcome, results[n].outcome, "request %lu", n);
        cr_assert_eq(again.order_id, results[n].order_id, "request %lu", n);
    }
    rush_engine_destroy(engine);
}

/* The child: drives the engine and writes each acknowledged result to the pipe. */
static void child_load(int fd)
{
    int rc;
    struct rush_engine *engine = open_engine(&rc);
    if (rc != 0)
        _exit(3);
    put_catalogue(engine);
    static uint64_t orders[200000];
    uint64_t order_count = 0;
    enum { PER = 16 };
    for (uint64_t n = 1; n < 200000; n += PER) {
        struct rush_request requests[PER];
        struct rush_result results[PER];
        for (uint32_t i = 0; i < PER; i++)
            requests[i] = workload(n + i, orders, order_count);
        if (rush_engine_execute(engine, requests, PER, results) != 0)
            _exit(4);
        for (uint32_t i = 0; i < PER; i++) {
            if (requests[i].op == RUSH_OP_RESERVE && results[i].outcome == RUSH_OK)
                orders[order_count++] = results[i].order_id;
            if (write(fd, &requests[i], sizeof(requests[i])) != sizeof(requests[i]) ||
                write(fd, &results[i], sizeof(results[i])) != sizeof(results[i]))
                _exit(5);
        }
    }
    _exit(0);
}

struct acknowledged {
    struct rush_request request;
    struct rush_result result;
};

/* Reads what the child acknowledged until `wanted` records came or the child died. */
static uint32_t read_acknowledged(int fd, struct acknowledged *acks, uint32_t wanted)
{
    uint32_t count = 0;
    while (count < wanted) {
        if (read(fd, &acks[count].request, sizeof(acks[count].request)) !=
                sizeof(acks[count].request) ||
            read(fd, &acks[count].result, sizeof(acks[count].result)) != sizeof(acks[count].result))
            break;
        count++;
    }
    return count;
}

static void verify_after_crash(struct acknowledged *acks, uint32_t count, uint32_t seed)
{
    int rc;
    struct rush_engine *engine = open_engine(&rc);
    cr_assert_eq(rc, 0, "seed %u: restart after kill -9 refused: %d", seed, rc);
    int broken = 0;
    for (uint32_t s = 0; s < 2; s++)
        rush_engine_inspect(engine, s, check_of, &broken);
    cr_assert_eq(broken, 0, "seed %u: invariants after recovery", seed);
    for (uint32_t i = 0; i < count; i++) {
        const struct rush_result *original = &acks[i].result;
        if (original->outcome == RUSH_NOT_STARTED || original->outcome == RUSH_BUSY ||
            original->outcome == RUSH_INVALID || original->outcome == RUSH_UNKNOWN_ORDER)
            continue; /* not remembered by design */
        struct rush_result again;
        cr_assert_eq(rush_engine_execute(engine, &acks[i].request, 1, &again), 0);
        cr_assert(again.flags & RUSH_RESULT_DUPLICATE,
                  "seed %u: acknowledged request %u (%s) was lost", seed, i,
                  rush_outcome_name(original->outcome));
        cr_assert_eq(again.outcome, original->outcome, "seed %u: request %u", seed, i);
        cr_assert_eq(again.order_id, original->order_id, "seed %u: request %u", seed, i);
    }
    struct rush_request query = request_of(RUSH_OP_QUERY_SKU, 1, 0, 0, 0, 0);
    struct rush_result sku;
    cr_assert_eq(rush_engine_execute(engine, &query, 1, &sku), 0);
    cr_assert_eq(sku.remaining + sku.reserved + sku.confirmed, 3000, "seed %u: oversold", seed);
    rush_engine_destroy(engine);
}

Test(durability, kill_9_under_load_loses_no_acknowledged_decision, .timeout = 300)
{
    enum { KILLS = 20 };
    static struct acknowledged acks[100000];
    const char *scale = getenv("RUSH_TEST_SCALE");
    uint32_t kills = KILLS / (scale ? (uint32_t)atoi(scale) : 1);
    for (uint32_t seed = 1; seed <= kills; seed++) {
        remove_dir();
        make_dir();
        int pipe_fds[2];
        cr_assert_eq(pipe(pipe_fds), 0);
        pid_t child = fork();
        cr_assert_geq(child, 0);
        if (child == 0) {
            close(pipe_fds[0]);
            child_load(pipe_fds[1]);
        }
        close(pipe_fds[1]);
        /* Kill after a seeded number of acknowledgements: anywhere from the first batches on. */
        uint32_t wanted = 16 + (seed * 2654435761u) % 1500;
        uint32_t count = read_acknowledged(pipe_fds[0], acks, wanted);
        kill(child, SIGKILL);
        count += read_acknowledged(pipe_fds[0], acks + count, 100000 - count); /* in the pipe */
        int status;
        waitpid(child, &status, 0);
        close(pipe_fds[0]);
        cr_assert(WIFSIGNALED(status), "seed %u: the child ended before the kill (%d)", seed,
                  WEXITSTATUS(status));
        cr_assert_geq(count, 16, "seed %u: acknowledged %u", seed, count);
        verify_after_crash(acks, count, seed);
    }
}

/* The newest segment file of shard `shard` in dir. */
static void segment_path(uint32_t shard, char *path, size_t size)
{
    DIR *d = opendir(dir);
    struct dirent *entry;
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "wal-%02u-", shard);
    path[0] = 0;
    while ((entry = readdir(d)) != NULL)
        if (strncmp(entry->d_name, prefix, strlen(prefix)) == 0)
            snprintf(path, size, "%s/%s", dir, entry->d_name);
    closedir(d);
}

Test(durability, damage_before_the_tail_refuses_the_start)
{
    int rc;
    struct rush_engine *engine = open_engine(&rc);
    cr_assert_eq(rc, 0);
    put_catalogue(engine);
    for (uint64_t n = 1; n <= 200; n++) {
        struct rush_request request = request_of(RUSH_OP_RESERVE, 1, n, 1, 0, n);
        struct rush_result result;
        cr_assert_eq(rush_engine_execute(engine, &request, 1, &result), 0);
    }
    rush_engine_destroy(engine);
    uint32_t shard = rush_engine_shard_of_sku(2, 1);
    char path[512];
    segment_path(shard, path, sizeof(path));
    cr_assert_neq(path[0], 0);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t byte;
    cr_assert_eq(pread(fd, &byte, 1, 4000), 1); /* inside an early batch's events */
    byte ^= 0x40;
    cr_assert_eq(pwrite(fd, &byte, 1, 4000), 1);
    close(fd);
    engine = open_engine(&rc);
    cr_assert_eq(rc, RUSH_ECORRUPT);
    cr_assert_null(engine);
}

/*
 * A real full disk: a 1 MiB tmpfs as the data directory and 128 KiB segments. Orders go in until
 * the log cannot grow; from then on every batch comes back RUSH_EWAL (no more answers), and a
 * restart on the same disk holds every order acknowledged before.
 */
Test(durability, a_full_disk_fails_the_log_and_loses_nothing_acknowledged)
{
    char command[160];
    snprintf(command, sizeof(command), "mount -t tmpfs -o size=1m tmpfs %s 2>/dev/null", dir);
    if (system(command) != 0)
        cr_skip_test("mounting a tmpfs is not permitted here");
    segment_bytes = 128 * 1024;
    int rc;
    struct rush_engine *engine = open_engine(&rc);
    cr_assert_eq(rc, 0);
    put_catalogue(engine);
    /* Stock that outlasts the disk: a sold_out changes nothing and logs nothing (decide.c). */
    struct rush_sku deep = sku_solo(3, 1000000);
    struct rush_result put;
    cr_assert_eq(rush_engine_sku_put(engine, &deep, &put), 0);
    static struct rush_request acked[100000];
    static struct rush_result answers[100000];
    uint32_t acked_count = 0;
    int status = 0;
    for (uint64_t n = 1; n < 100000 && status == 0; n++) {
        struct rush_request request = request_of(RUSH_OP_RESERVE, 3, n, 1, 0, n);
        struct rush_result result;
        status = rush_engine_execute(engine, &request, 1, &result);
        if (status == 0) {
            acked[acked_count] = request;
            answers[acked_count++] = result;
        }
    }
    cr_assert_eq(status, RUSH_EWAL, "the log filled the disk and failed");
    cr_assert_gt(acked_count, 100);
    struct rush_request more = request_of(RUSH_OP_RESERVE, 1, 999999, 1, 0, 999999);
    struct rush_result ignored;
    cr_assert_eq(rush_engine_execute(engine, &more, 1, &ignored), RUSH_EWAL, "failure is sticky");
    struct rush_engine_stats stats;
    rush_engine_stats(engine, &stats);
    cr_assert_neq(stats.wal_error, 0);
    rush_engine_destroy(engine);

    engine = open_engine(&rc);
    cr_assert_eq(rc, 0, "restart on the full disk: %d", rc);
    uint32_t verified = 0, sampled = 0;
    for (uint32_t i = 0; i < acked_count; i += 37, sampled++) {
        struct rush_result again;
        /* A duplicate logs nothing, so it is answered even while the disk is still full. */
        cr_assert_eq(rush_engine_execute(engine, &acked[i], 1, &again), 0, "resend %u", i);
        cr_assert(again.flags & RUSH_RESULT_DUPLICATE, "acknowledged order %u lost", i);
        cr_assert_eq(again.order_id, answers[i].order_id);
        verified++;
    }
    cr_assert_eq(verified, sampled);
    rush_engine_destroy(engine);
    segment_bytes = 0; /* the fixture unmounts the tmpfs */
}
