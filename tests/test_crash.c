/*
 * The crash test: the real rushd, fsync durability, killed with -9 at seeded moments while a
 * client keeps messages of orders (reserves, group joins, confirms, retries) in flight; restarted
 * on the same data directory each time. After every restart, every request acknowledged in any
 * earlier round is resent with its key and must answer its original outcome and order, flagged
 * duplicate; and no SKU is oversold. Crashes stack: 20 rounds on one log (fewer with
 * RUSH_TEST_SCALE).
 */
#include <criterion/criterion.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rush/types.h"
#include "rush/wire.h"
#include "support.h"

#define STOCK 4000
#define PER_MESSAGE 16
#define ACKS_MAX 200000

static char dir[64];
static char config_path[128];
static char orders_url[160];
static pid_t child = -1;

struct ack {
    struct rush_request request;
    struct rush_result result;
};
static struct ack acks[ACKS_MAX];
static uint32_t ack_count;

static void write_campaign(void)
{
    snprintf(config_path, sizeof(config_path), "%s/campaign.ini", dir);
    snprintf(orders_url, sizeof(orders_url), "ipc://%s/orders.ipc", dir);
    FILE *file = fopen(config_path, "w");
    cr_assert_not_null(file);
    fprintf(file,
            "[engine]\nshards = 2\nring_slots = 64\norders_max = 200000\ngroups_max = 20000\n"
            "keys_max = 400000\nuser_limits_max = 200000\ndurability = fsync\ndata_dir = %s\n"
            "[endpoints]\norders = ipc://%s/orders.ipc\njson = ipc://%s/json.ipc\n"
            "admin = ipc://%s/admin.ipc\npublisher = ipc://%s/pub.ipc\n"
            "replay = ipc://%s/replay.ipc\nadmin_token = crash-test-token-0123456789\n"
            "[sku 1]\nname = hot\nstock = %d\nprice = 100\nstart = now\nend = never\n"
            "order_qty_max = 1\nuser_qty_max = 2\npay_ttl = 15m\n"
            "[sku 2]\nname = group\nstock = %d\nprice = 100\nstart = now\nend = never\n"
            "group_size = 3\ngroup_ttl = 10m\ngroups_open_max = 1000\n",
            dir, dir, dir, dir, dir, dir, STOCK, STOCK);
    fclose(file);
}

static void start_rushd(void)
{
    char rushd[600], self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert_gt(n, 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(rushd, sizeof(rushd), "%s/../bin/rushd", self);
    child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char log[128];
        snprintf(log, sizeof(log), "%s/rushd.log", dir);
        if (freopen(log, "a", stderr) == NULL)
            _exit(126);
        execl(rushd, rushd, "--config", config_path, (char *)NULL);
        _exit(127);
    }
}

static void stop_rushd(int sig)
{
    if (child <= 0)
        return;
    kill(child, sig);
    int status;
    waitpid(child, &status, 0);
    child = -1;
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rush-crash-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    write_campaign();
}

static void teardown(void)
{
    stop_rushd(SIGKILL);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    if (system(command) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(crash, .init = setup, .fini = teardown, .timeout = 600);

static int connect_orders(int timeout_ms)
{
    int socket = nn_socket(AF_SP, NN_REQ);
    cr_assert_geq(socket, 0);
    cr_assert_geq(nn_setsockopt(socket, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout_ms, sizeof(int)), 0);
    cr_assert_geq(nn_setsockopt(socket, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof(int)), 0);
    cr_assert_geq(nn_connect(socket, orders_url), 0);
    return socket;
}

/* One message of requests; 0 with results filled, or -1 when no reply came (rushd died). */
static int exchange(int socket, const struct rush_request *requests, uint32_t count,
                    struct rush_result *results)
{
    static uint64_t message_id;
    uint8_t buffer[RUSH_WIRE_HEADER_BYTES + PER_MESSAGE * sizeof(struct rush_request)];
    int bytes = rush_wire_encode_requests(buffer, sizeof(buffer), ++message_id, requests, count);
    cr_assert_gt(bytes, 0);
    if (nn_send(socket, buffer, (size_t)bytes, 0) != bytes)
        return -1;
    void *reply = NULL;
    int got = nn_recv(socket, &reply, NN_MSG, 0);
    if (got < 0)
        return -1;
    struct rush_wire_view view;
    struct rush_wire_error error;
    int rc = rush_wire_decode(reply, (size_t)got, &view, &error);
    cr_assert_eq(rc, 0, "reply refused: %s", error.text);
    cr_assert_eq(view.kind, RUSH_WIRE_RESULT, "error reply: %s", view.error.text);
    cr_assert_eq(view.count, count);
    cr_assert_geq(rush_wire_view_copy(&view, results, sizeof(*results) * count), 0);
    nn_freemsg(reply);
    return 0;
}

static int wait_ready(void)
{
    for (int tries = 0; tries < 300; tries++) {
        int socket = connect_orders(200);
        struct rush_request query = {.op = RUSH_OP_QUERY_SKU, .sku_id = 1};
        struct rush_result result;
        int rc = exchange(socket, &query, 1, &result);
        nn_close(socket);
        if (rc == 0)
            return 0;
    }
    return -1;
}

/* Request number n of the load: reserves, group joins, confirms of acknowledged orders. */
static struct rush_request next_request(uint64_t n)
{
    if (n % 9 == 4 && ack_count > 0) { /* a retry of something acknowledged */
        return acks[(n * 7919) % ack_count].request;
    }
    if (n % 7 == 3 && ack_count > 0) {
        const struct ack *a = &acks[(n * 104729) % ack_count];
        if (a->request.op == RUSH_OP_RESERVE && a->result.outcome == RUSH_OK)
            return request_of(RUSH_OP_CONFIRM, 0, 0, 0, a->result.order_id, n);
    }
    if (n % 5 == 0)
        return request_of(RUSH_OP_GROUP_JOIN_ANY, 2, n % 9000, 0, 0, n);
    return request_of(RUSH_OP_RESERVE, 1, n % 9000, 1, 0, n);
}

/* Only decisions that changed something are remembered (engine/shard/decide.c). */
static bool remembered(uint8_t outcome)
{
    return outcome == RUSH_OK || outcome == RUSH_EXPIRED;
}

static void verify_all(uint32_t round)
{
    int socket = connect_orders(10000);
    for (uint32_t i = 0; i < ack_count; i += PER_MESSAGE) {
        uint32_t n = ack_count - i < PER_MESSAGE ? ack_count - i : PER_MESSAGE;
        struct rush_request requests[PER_MESSAGE];
        struct rush_result results[PER_MESSAGE];
        for (uint32_t j = 0; j < n; j++)
            requests[j] = acks[i + j].request;
        cr_assert_eq(exchange(socket, requests, n, results), 0, "round %u: no reply", round);
        for (uint32_t j = 0; j < n; j++) {
            const struct rush_result *original = &acks[i + j].result;
            if (!remembered(original->outcome))
                continue;
            cr_assert(results[j].flags & RUSH_RESULT_DUPLICATE,
                      "round %u: acknowledged request %u (%s) was lost", round, i + j,
                      rush_outcome_name(original->outcome));
            cr_assert_eq(results[j].outcome, original->outcome, "round %u: request %u", round,
                         i + j);
            cr_assert_eq(results[j].order_id, original->order_id, "round %u: request %u", round,
                         i + j);
        }
    }
    for (uint64_t sku = 1; sku <= 2; sku++) {
        struct rush_request query = {.op = RUSH_OP_QUERY_SKU, .sku_id = sku};
        struct rush_result r;
        cr_assert_eq(exchange(socket, &query, 1, &r), 0);
        cr_assert_eq(r.remaining + r.reserved + r.confirmed, STOCK, "round %u: sku %lu oversold",
                     round, sku);
    }
    nn_close(socket);
}

/* Sends load until rushd dies under it; records what was acknowledged. */
static void load_until_killed(uint32_t round, uint64_t *n)
{
    /* A short receive timeout: the killer always kills, so a timeout only ends the round early. */
    int socket = connect_orders(400);
    pid_t victim = child;
    uint32_t kill_after_ms = 5 + (round * 2654435761u) % 120; /* seeded kill moment */
    pid_t killer = fork();
    cr_assert_geq(killer, 0);
    if (killer == 0) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)kill_after_ms * 1000000L};
        nanosleep(&ts, NULL);
        kill(victim, SIGKILL);
        _exit(0);
    }
    for (;;) {
        struct rush_request requests[PER_MESSAGE];
        struct rush_result results[PER_MESSAGE];
        for (uint32_t j = 0; j < PER_MESSAGE; j++)
            requests[j] = next_request((*n)++);
        if (exchange(socket, requests, PER_MESSAGE, results) != 0)
            break; /* killed: this message may or may not have been decided */
        for (uint32_t j = 0; j < PER_MESSAGE && ack_count < ACKS_MAX; j++)
            acks[ack_count++] = (struct ack){.request = requests[j], .result = results[j]};
    }
    waitpid(killer, NULL, 0);
    int status;
    waitpid(child, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "round %u: rushd exited", round);
    child = -1;
    nn_close(socket);
}

Test(crash, kill_9_at_seeded_moments_loses_nothing_acknowledged)
{
    const char *scale = getenv("RUSH_TEST_SCALE");
    uint32_t rounds = 20 / (scale ? (uint32_t)atoi(scale) : 1);
    uint64_t n = 1;
    for (uint32_t round = 1; round <= rounds; round++) {
        start_rushd();
        cr_assert_eq(wait_ready(), 0, "round %u: rushd did not answer (see %s/rushd.log)", round,
                     dir);
        verify_all(round);
        load_until_killed(round, &n);
    }
    start_rushd();
    cr_assert_eq(wait_ready(), 0);
    verify_all(rounds + 1);
    cr_assert_gt(ack_count, rounds * PER_MESSAGE, "load was acknowledged between the kills");
    stop_rushd(SIGTERM);
    cr_log_info("%u requests acknowledged across %u kills, all recovered", ack_count, rounds);
}
