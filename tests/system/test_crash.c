/*
 * The crash test: the real rushd, fsync durability, killed with -9 at seeded moments while a
 * client keeps messages of orders (reserves, group joins, confirms, retries) in flight; restarted
 * on the same data directory each time. After every restart, every request acknowledged in any
 * earlier round is resent with its key and must answer its original outcome and order, flagged
 * duplicate; and no SKU is oversold. Crashes stack: 20 rounds on one log (fewer with
 * RUSH_TEST_SCALE). The endpoints are tcp:// (rushd's own transport, engine/front/sp_server.c).
 */
#include <criterion/criterion.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rush/types.h"
#include "rush/wire.h"
#include "rushd_child.h"
#include "support.h"

#define STOCK 4000
#define PER_MESSAGE 16
#define ACKS_MAX 200000

static struct rushd_child crashed = {.pid = -1, .durability = "fsync"};

struct ack {
    struct rush_request request;
    struct rush_result result;
};
static struct ack acks[ACKS_MAX];
static uint32_t ack_count;

#define STRINGIFY(x) #x
#define STRING(x) STRINGIFY(x)

static void setup(void)
{
    child_make_dir(&crashed, "crash");
    /* tcp://, as a gateway connects: rushd's own transport is the one killed mid-reply. */
    child_use_tcp(&crashed, child_free_port(), child_free_port(), child_free_port());
    child_write_campaign(
        &crashed,
        "shards = 2\nring_slots = 64\norders_max = 200000\ngroups_max = 20000\n"
        "keys_max = 400000\nuser_limits_max = 200000\n",
        "crash-test-token-0123456789",
        "[sku 1]\nname = hot\nstock = " STRING(
            STOCK) "\nprice = 100\nstart = now\n"
                   "end = never\norder_qty_max = 1\nuser_qty_max = 2\npay_ttl = 15m\n"
                   "[sku 2]\nname = group\nstock = " STRING(
                       STOCK) "\nprice = 100\n"
                              "start = now\nend = never\ngroup_size = 3\ngroup_ttl = 10m\n"
                              "groups_open_max = 1000\n");
}

static void teardown(void)
{
    child_cleanup(&crashed);
}

TestSuite(crash, .init = setup, .fini = teardown, .timeout = 600);

static int connect_orders(int timeout_ms)
{
    int socket = nn_socket(AF_SP, NN_REQ);
    cr_assert_geq(socket, 0);
    cr_assert_geq(nn_setsockopt(socket, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout_ms, sizeof(int)), 0);
    cr_assert_geq(nn_setsockopt(socket, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof(int)), 0);
    cr_assert_geq(nn_connect(socket, crashed.orders), 0);
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
    pid_t victim = crashed.pid;
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
    int status = child_wait_exit(crashed.pid, CHILD_EXIT_MS);
    cr_assert_eq(status, 128 + SIGKILL, "round %u: rushd exited (%d)", round, status);
    crashed.pid = -1;
    nn_close(socket);
}

Test(crash, kill_9_at_seeded_moments_loses_nothing_acknowledged)
{
    const char *scale = getenv("RUSH_TEST_SCALE");
    uint32_t rounds = 20 / (scale ? (uint32_t)atoi(scale) : 1);
    uint64_t n = 1;
    for (uint32_t round = 1; round <= rounds; round++) {
        child_run(&crashed, NULL);
        verify_all(round);
        load_until_killed(round, &n);
    }
    child_run(&crashed, NULL);
    verify_all(rounds + 1);
    cr_assert_gt(ack_count, rounds * PER_MESSAGE, "load was acknowledged between the kills");
    cr_assert_eq(child_stop(&crashed, SIGTERM), 0);
    cr_log_info("%u requests acknowledged across %u kills, all recovered", ack_count, rounds);
}
