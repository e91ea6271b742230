/*
 * test_cluster_verify.c — rush-loadgen itself verifies a cluster across a leader's kill -9
 * (issue 15's first test): three nats-servers, two rushd nodes with durability replicated
 * (cluster_child.h), and rush-loadgen --nodes --verify following both nodes' streams while the
 * test kills the leader of shard 0 with -9 under its load. rush-loadgen must exit 0: every
 * acknowledged order in the merged stream exactly once, nothing decided twice, nothing
 * oversold, every (shard, seq) of the run served by some node and identically by every node
 * that served it (loadgen/verify.h). The kill falls inside the run: shard 0's leader has
 * confirmed orders of the run when it is killed, rush-loadgen still running, and the survivor
 * holds more at the end; rush-loadgen's JSON report shows ok answers before and after its
 * longest decision gap, and requests that moved to the other node (redirects followed or
 * timeouts rerouted).
 *
 * The gap (the client's view of the failover: the old leader's last answer to the new leader's
 * first) is printed, never asserted.
 */
#include <fcntl.h>
#include <jansson.h>
#include <sys/wait.h>

#include "cluster_child.h"

#define PHASE_MS 30000        /* the bound on each wait for an event */
#define LOADGEN_EXIT_MS 90000 /* the run (RUN_S), the routed set-up and the verify settle */
#define ORDERS_BEFORE_KILL 50 /* confirmed units of a shard-0 SKU that show the load runs */
#define RUN_S "15"
#define TIMEOUT_MS 500 /* rush-loadgen's --timeout-ms (scaled): a dead node's messages move */
#define FRESH_SKUS 5
#define ARGS_MAX 64

static char report_path[CHILD_PATH_BYTES + 32];
static char log_path[CHILD_PATH_BYTES + 32];

/* A first fresh SKU id whose FRESH_SKUS ids cover both shards; the first on shard 0 in *probe. */
static uint64_t sku_base(uint64_t *probe)
{
    for (uint64_t base = 7000001;; base += FRESH_SKUS) {
        int on_shard[2] = {0, 0};
        for (uint64_t id = base; id < base + FRESH_SKUS; id++)
            on_shard[rush_engine_shard_of_sku(2, id)]++;
        if (on_shard[0] == 0 || on_shard[1] == 0)
            continue;
        for (*probe = base; rush_engine_shard_of_sku(2, *probe) != 0; (*probe)++) {
        }
        return base;
    }
}

/* Starts rush-loadgen --nodes --verify on both nodes; its pid (output in log_path). */
static pid_t loadgen_spawn(uint64_t base)
{
    static char nodes_arg[4 * CHILD_PATH_BYTES], admins[4 * CHILD_PATH_BYTES],
        pubs[4 * CHILD_PATH_BYTES], replays[4 * CHILD_PATH_BYTES], path[CHILD_PATH_BYTES + 32],
        base_arg[32], timeout_arg[32];
    snprintf(nodes_arg, sizeof nodes_arg, "%s,%s", nodes[0].orders, nodes[1].orders);
    snprintf(admins, sizeof admins, "%s,%s", nodes[0].admin, nodes[1].admin);
    snprintf(pubs, sizeof pubs, "%s,%s", nodes[0].pub, nodes[1].pub);
    snprintf(replays, sizeof replays, "%s,%s", nodes[0].replay, nodes[1].replay);
    snprintf(path, sizeof path, "%s/rush-loadgen", nodes[0].bin);
    snprintf(base_arg, sizeof base_arg, "%llu", (unsigned long long)base);
    snprintf(timeout_arg, sizeof timeout_arg, "%d", TIMEOUT_MS * slowness());
    snprintf(report_path, sizeof report_path, "%s/loadgen.json", nats_dir);
    snprintf(log_path, sizeof log_path, "%s/loadgen.log", nats_dir);
    const char *argv[ARGS_MAX] = {
        path,         "--nodes",   nodes_arg,      "--admins",  admins,          "--pubs",
        pubs,         "--replays", replays,        "--verify",  "--admin-token", CHILD_TOKEN,
        "--shards",   "2",         "--batch",      "1",         "--connections", "2",
        "--threads",  "2",         "--inflight",   "4",         "--buyers",      "100000",
        "--stock",    "1000000",   "--skus",       "5",         "--sku-base",    base_arg,
        "--duration", RUN_S,       "--timeout-ms", timeout_arg, "--report",      report_path,
        "--quiet",    NULL};
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void print_loadgen_log(void)
{
    char command[2 * CHILD_PATH_BYTES];
    snprintf(command, sizeof command, "cat '%s' >&2", log_path);
    (void)!system(command);
}

/* Node n's confirmed units of `sku` (JSON query_sku), or -1 when it does not answer them. */
static int64_t confirmed_on(int n, uint64_t sku)
{
    char text[160], reply[JSON_REPLY_BYTES];
    snprintf(text, sizeof text, "{\"op\":\"query_sku\",\"sku\":%llu}", (unsigned long long)sku);
    int sock = open_socket(nodes[n].json);
    int rc = exchange(sock, text, reply, sizeof reply);
    nn_close(sock);
    const char *at = strstr(reply, "\"confirmed\":");
    if (rc != 0 || !has(reply, "\"outcome\":\"ok\"") || at == NULL)
        return -1;
    return strtoll(at + strlen("\"confirmed\":"), NULL, 10);
}

static int64_t report_field(const json_t *report, const char *object, const char *name)
{
    const json_t *node = json_object_get(json_object_get(report, object), name);
    cr_assert(json_is_number(node), "report field %s.%s is missing", object, name);
    return json_is_integer(node) ? json_integer_value(node) : (int64_t)json_number_value(node);
}

TestSuite(cluster_verify, .fini = cluster_cleanup, .timeout = 150);

Test(cluster_verify, loadgen_verifies_both_streams_across_a_leader_kill)
{
    cluster_start();
    int victim = -1;
    for (int64_t deadline = rush_clock_monotonic_ms() + PHASE_MS;
         victim < 0 && rush_clock_monotonic_ms() < deadline;)
        victim = leader_seen_by(0, 0);
    cr_assert_geq(victim, 0, "nobody leads shard 0");
    uint64_t probe = 0;
    uint64_t base = sku_base(&probe);
    pid_t loadgen = loadgen_spawn(base);

    /* The load runs on shard 0's leader: then kill -9 it, rush-loadgen still running. */
    int64_t at_kill = -1;
    for (int64_t deadline = rush_clock_monotonic_ms() + PHASE_MS;
         at_kill < ORDERS_BEFORE_KILL && rush_clock_monotonic_ms() < deadline; child_sleep_ms(20))
        at_kill = confirmed_on(victim, probe);
    bool running = waitpid(loadgen, NULL, WNOHANG) == 0;
    if (at_kill < ORDERS_BEFORE_KILL || !running) {
        print_loadgen_log();
        print_logs();
        cr_assert_fail("no load on shard 0's leader within %d ms, or rush-loadgen ended first",
                       PHASE_MS);
    }
    kill(nodes[victim].pid, SIGKILL);
    cr_assert(child_wait_exit(nodes[victim].pid, CHILD_EXIT_MS) == 128 + SIGKILL);
    nodes[victim].pid = -1;

    int status = child_wait_exit(loadgen, LOADGEN_EXIT_MS);
    print_loadgen_log(); /* its report and what --verify found, node by node */
    if (status != 0)
        print_logs();
    cr_assert_eq(status, 0, "rush-loadgen --verify exited %d (4: a violation)", status);

    json_error_t error;
    json_t *report = json_load_file(report_path, 0, &error);
    cr_assert_not_null(report, "report %s: %s", report_path, error.text);
    int64_t ok_before = report_field(report, "decision_gap", "ok_before");
    int64_t ok_after = report_field(report, "decision_gap", "ok_after");
    int64_t moved = report_field(report, "redirects", "followed") +
                    report_field(report, "redirects", "rerouted");
    const json_t *gap = json_object_get(report, "decision_gap");
    double longest_ms = json_real_value(json_object_get(gap, "longest_ms"));
    double shard0_ms = json_real_value(json_array_get(json_object_get(gap, "per_shard_ms"), 0));
    printf("cluster_verify: kill -9 of node %c (leader of shard 0) under rush-loadgen: shard 0 "
           "went %.1f ms without a decision (longest gap %.1f ms, shard %lld: ok %lld before, "
           "%lld after; %lld requests moved; lease %d ms)\n",
           'A' + victim, shard0_ms, longest_ms,
           (long long)report_field(report, "decision_gap", "shard"), (long long)ok_before,
           (long long)ok_after, (long long)moved, LEASE_MS * slowness());
    fflush(stdout);
    cr_assert_gt(ok_before, 0, "no order acknowledged before the longest gap");
    cr_assert_gt(ok_after, 0, "no order acknowledged after the longest gap");
    cr_assert_gt(moved, 0, "no request moved to the surviving node");
    cr_assert_eq(report_field(report, "redirects", "gave_up"), 0);
    json_decref(report);

    /* The survivor leads shard 0 and holds orders of the probe SKU decided after the kill. */
    int64_t after_kill = -1;
    for (int64_t deadline = rush_clock_monotonic_ms() + PHASE_MS;
         after_kill < 0 && rush_clock_monotonic_ms() < deadline;)
        after_kill = confirmed_on(1 - victim, probe);
    cr_assert_gt(after_kill, at_kill, "shard 0: %lld confirmed at the kill, %lld at the end",
                 (long long)at_kill, (long long)after_kill);
}
