/*
 * The data directory keeps its shard count (issue 11 item 5; engine/wal/data_dir.h): the first
 * start records it, a start with another count is refused naming both, a damaged record is
 * corruption, and a directory made before the record existed is judged by the shards its files
 * name. In process through rush_engine_create, and through rushd.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "rushd_child.h"
#include "support.h"
#include "wal/data_dir.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rush-data-dir-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    cr_assert_eq(system(command), 0);
}

TestSuite(data_dir, .init = make_dir, .fini = remove_dir);

static int create(uint32_t shards, uint8_t durability)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, shards);
    config.limits = small_limits();
    config.ring_slots = 16;
    config.work_requests_max = 64;
    config.data_dir = dir;
    config.durability = durability;
    struct rush_engine *engine = NULL;
    int rc = rush_engine_create(&config, &engine);
    if (rc == 0) {
        cr_assert_eq(rush_engine_start(engine), 0);
        struct rush_result result;
        struct rush_sku sku = sku_solo(42, 10);
        cr_assert_eq(rush_engine_sku_put(engine, &sku, &result), 0);
        rush_engine_destroy(engine);
    }
    return rc;
}

static void record_path(char *out, size_t size)
{
    snprintf(out, size, "%s/%s", dir, RUSH_DATA_DIR_FILE);
}

Test(data_dir, the_first_start_records_the_shard_count_and_another_count_is_refused)
{
    cr_assert_eq(create(2, RUSH_DURABILITY_FSYNC), 0);
    char path[128];
    record_path(path, sizeof(path));
    cr_assert_eq(access(path, R_OK), 0, "no %s after the first start", path);
    cr_assert_eq(create(2, RUSH_DURABILITY_FSYNC), 0, "the same count is accepted");
    cr_assert_eq(create(3, RUSH_DURABILITY_FSYNC), RUSH_ECONFIG, "3 shards on a 2-shard dir");
    cr_assert_eq(create(1, RUSH_DURABILITY_FSYNC), RUSH_ECONFIG, "1 shard on a 2-shard dir");
    cr_assert_eq(create(3, RUSH_DURABILITY_NONE), RUSH_ECONFIG, "none mode replays it too");
    cr_assert_eq(create(2, RUSH_DURABILITY_ASYNC), 0);
}

Test(data_dir, the_refusal_names_both_counts_and_says_there_is_no_reshard_tool)
{
    struct rush_data_dir_layout two = {.shard_count = 2, .routing = 1, .routing_check = 7};
    struct rush_data_dir_layout three = two;
    three.shard_count = 3;
    char why[768] = "";
    cr_assert_eq(rush_data_dir_claim(dir, &two, true, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(rush_data_dir_claim(dir, &three, true, why, sizeof(why)), RUSH_ECONFIG);
    cr_assert_not_null(strstr(why, "created with 2 shards; this start asks for 3"), "%s", why);
    cr_assert_not_null(strstr(why, "no re-shard tool"), "%s", why);
    struct rush_data_dir_layout rehashed = two;
    rehashed.routing_check = 8;
    cr_assert_eq(rush_data_dir_claim(dir, &rehashed, true, why, sizeof(why)), RUSH_ECONFIG);
    cr_assert_not_null(strstr(why, "routing"), "%s", why);
}

Test(data_dir, a_damaged_record_is_corruption)
{
    cr_assert_eq(create(2, RUSH_DURABILITY_FSYNC), 0);
    char path[128];
    record_path(path, sizeof(path));
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t byte;
    cr_assert_eq(pread(fd, &byte, 1, 8), 1);
    byte ^= 0x01; /* 2 shards -> 3, checksum not updated */
    cr_assert_eq(pwrite(fd, &byte, 1, 8), 1);
    close(fd);
    struct rush_data_dir_layout three = {.shard_count = 3};
    char why[768] = "";
    cr_assert_eq(rush_data_dir_claim(dir, &three, true, why, sizeof(why)), RUSH_ECORRUPT);
    cr_assert_not_null(strstr(why, "damaged"), "%s", why);
    cr_assert_eq(create(2, RUSH_DURABILITY_FSYNC), RUSH_ECORRUPT);
}

Test(data_dir, a_directory_without_a_record_is_judged_by_the_shards_its_files_name)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/wal-02-0000000000000001.log", dir); /* shard 2: >= 3 */
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    struct rush_data_dir_layout two = {.shard_count = 2};
    char why[768] = "";
    cr_assert_eq(rush_data_dir_claim(dir, &two, true, why, sizeof(why)), RUSH_ECONFIG);
    cr_assert_not_null(strstr(why, "at least 3 shards"), "%s", why);
    struct rush_data_dir_layout three = {.shard_count = 3};
    cr_assert_eq(rush_data_dir_claim(dir, &three, true, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(rush_data_dir_claim(dir, &two, true, why, sizeof(why)), RUSH_ECONFIG,
                 "the record now says 3");
}

/* `rush-wal verify` on the test directory: its exit status, its output in out[]. */
static int rush_wal_verify(char *out, size_t size)
{
    char bin[CHILD_PATH_BYTES], command[CHILD_PATH_BYTES + 128];
    child_bin_dir(bin, sizeof(bin));
    snprintf(command, sizeof(command), "%s/rush-wal verify '%s' 2>&1", bin, dir);
    FILE *pipe = popen(command, "r");
    cr_assert_not_null(pipe);
    size_t used = fread(out, 1, size - 1, pipe);
    out[used] = '\0';
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(data_dir, rush_wal_verify_reports_the_count_and_files_of_shards_beyond_it)
{
    cr_assert_eq(create(2, RUSH_DURABILITY_FSYNC), 0);
    char output[8192];
    cr_assert_eq(rush_wal_verify(output, sizeof(output)), 0, "%s", output);
    cr_assert_not_null(strstr(output, "data dir: 2 shards"), "%s", output);
    char path[160];
    snprintf(path, sizeof(path), "%s/wal-02-0000000000000001.log", dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(rush_wal_verify(output, sizeof(output)), 1, "%s", output);
    cr_assert_not_null(strstr(output, "shard 2: CORRUPT: files of a shard beyond the recorded 2"),
                       "%s", output);
}

/* ---- through rushd ------------------------------------------------------------------------ */

TestSuite(rushd_data_dir, .fini = rushd_cleanup, .timeout = 120);

/* Rewrites "shards = 2" in the campaign rushd_child.h wrote. */
static void campaign_shards(uint32_t shards)
{
    char path[CHILD_PATH_BYTES], text[8192];
    snprintf(path, sizeof(path), "%s/campaign.ini", rushd.dir);
    FILE *file = fopen(path, "r");
    cr_assert_not_null(file);
    size_t len = fread(text, 1, sizeof(text) - 1, file);
    fclose(file);
    text[len] = '\0';
    char *at = strstr(text, "shards = ");
    cr_assert_not_null(at, "%s", text);
    at[strlen("shards = ")] = (char)('0' + shards);
    file = fopen(path, "w");
    cr_assert_not_null(file);
    fputs(text, file);
    fclose(file);
}

Test(rushd_data_dir, rushd_refuses_to_start_a_2_shard_data_directory_with_3_shards)
{
    rushd.durability = "fsync";
    rushd_start(false);
    char reply[512];
    cr_assert_eq(child_json(rushd.json,
                            "{\"op\":\"reserve\",\"sku\":1002,\"user\":1,\"qty\":1,\"key\":\"d1\"}",
                            reply, sizeof(reply), 5000),
                 0);
    cr_assert(strstr(reply, "\"outcome\":\"ok\""), "%s", reply);
    kill(rushd.pid, SIGKILL);
    cr_assert_eq(child_wait_exit(rushd.pid, CHILD_EXIT_MS), 128 + SIGKILL);
    rushd.pid = -1;

    campaign_shards(3);
    pid_t pid = child_exec(&rushd, NULL, NULL);
    int status = child_wait_exit(pid, CHILD_READY_MS);
    if (status < 0) { /* it started: the bug; stop it before failing */
        rushd.pid = pid;
        cr_assert_fail("rushd started a 2-shard data directory with 3 shards");
    }
    cr_assert_neq(status, 0);
    char log[16384];
    FILE *file = fopen(rushd.log, "r");
    cr_assert_not_null(file);
    size_t len = fread(log, 1, sizeof(log) - 1, file);
    fclose(file);
    log[len] = '\0';
    cr_assert_not_null(strstr(log, "created with 2 shards; this start asks for 3"), "%s", log);

    campaign_shards(2); /* the right count starts, and the order is still there */
    rushd_spawn();
    cr_assert_eq(child_json(rushd.json,
                            "{\"op\":\"reserve\",\"sku\":1002,\"user\":1,\"qty\":1,\"key\":\"d1\"}",
                            reply, sizeof(reply), 5000),
                 0);
    cr_assert(strstr(reply, "\"duplicate\":true"), "%s", reply);
}
