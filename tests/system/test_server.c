/*
 * test_server.c — rushd end to end: the real binary as a child process, driven over nanomsg.
 *
 * Each test starts build/bin/rushd (found beside this test binary: build/tests/../bin) on
 * ipc:// endpoints in a fresh temporary directory (tcp://127.0.0.1 on a free port where the test
 * says so), waits until it answers, talks to it with plain REQ sockets (and nanocat / nngcat for
 * interop), and stops it. The fixture's fini kills and reaps the child even when an assertion
 * failed, and the child asks the kernel to kill it if the test process dies (PR_SET_PDEATHSIG).
 *
 * Covered: every op and outcome of ARCHITECTURE.md "Operations and outcomes" through the binary
 * endpoint; the same
 * over TCP; the JSON endpoint; nanocat and nngcat; hostile binary and JSON messages, each
 * answered with its error while the next valid request succeeds; 8 concurrent clients on one hot
 * SKU with no oversell; the admin token; --check-config; a bad campaign; SIGTERM.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "codec/json.h"
#include "rush/types.h"
#include "rush/wire.h"
#include "rushd_child.h"

#define PATH_BYTES CHILD_PATH_BYTES
#define TEXT_MAX 4096
#define WAIT_EXIT_MS CHILD_EXIT_MS
#define REPLY_TIMEOUT_MS 10000
#define TEST_TOKEN "test-admin-token-0123456789"

/* ---- the child process (rushd_child.h) ---------------------------------------------------- */

static struct rushd_child server = {.pid = -1};

static const char *const campaign_skus =
    "[sku 1001]\nname = tiny\nstock = 2\nprice = 100\nstart = now\nend = never\n"
    "order_qty_max = 1\nuser_qty_max = 1\npay_ttl = 15m\n\n"
    "[sku 1005]\nname = hot\nstock = 1000\nprice = 100\nstart = now\nend = never\n"
    "order_qty_max = 1\nuser_qty_max = 1\npay_ttl = 15m\n\n"
    "[sku 1006]\nname = short pay ttl\nstock = 10\nprice = 100\nstart = now\nend = never\n"
    "pay_ttl = 300ms\n\n"
    "[sku 3001]\nname = coupon\nstock = unlimited\nprice = 990\nstart = now\nend = never\n"
    "user_qty_max = 3\npay_ttl = 0\n\n"
    "[sku 4001]\nname = group\nstock = 30\nprice = 5900\nstart = now\nend = never\n"
    "group_size = 3\ngroup_ttl = 10m\ngroups_open_max = 10\nuser_qty_max = 2\npay_ttl = 0\n\n"
    "[sku 4002]\nname = deal\nstock = 30\nprice = 3990\nstart = now\nend = never\n"
    "group_size = 2\ngroup_ttl = 10m\nsolo_allowed = true\ngroup_price = 990\n"
    "leader_price = 0\nuser_qty_max = 2\npay_ttl = 15m\n\n"
    "[sku 5001]\nname = later\nstock = 5\nprice = 100\nstart = 2199-01-01T00:00:00Z\n"
    "end = never\n\n"
    "[sku 5002]\nname = over\nstock = 5\nprice = 100\nstart = 2000-01-01T00:00:00Z\n"
    "end = 2000-01-02T00:00:00Z\n\n"
    "[sku 5003]\nname = paused\nstock = 5\nprice = 100\nstart = now\nend = never\n"
    "paused = true\n";

static void make_dir(struct rushd_child *s)
{
    child_make_dir(s, "server");
}

static void write_file(const char *path, const char *text)
{
    child_write_file(path, text);
}

/* Writes the test campaign; endpoints are tcp on `port` when port != 0, else ipc in the dir. */
static void write_campaign(struct rushd_child *s, int port, const char *token)
{
    if (port != 0)
        child_use_tcp(s, port, port + 1, port + 2);
    child_write_campaign(s, CHILD_ENGINE, token, campaign_skus);
}

/* Runs rushd with argv (argv[0] is ignored); stderr goes to s->log. */
static pid_t spawn(struct rushd_child *s, char **argv, const char *stdout_path)
{
    return child_exec(s, argv + 1, stdout_path);
}

static int wait_exit(pid_t pid, int timeout_ms)
{
    return child_wait_exit(pid, timeout_ms);
}

static void sleep_ms(int ms)
{
    child_sleep_ms(ms);
}

static void start(int port, const char *token)
{
    make_dir(&server);
    write_campaign(&server, port, token);
    char *args[] = {"--config", server.config, "--log-level", "debug", NULL};
    child_run(&server, args);
}

/* SIGTERM and wait; the exit status. */
static int stop(struct rushd_child *s)
{
    return child_stop(s, SIGTERM);
}

static void cleanup(void)
{
    child_cleanup(&server);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
}

TestSuite(server, .init = setup, .fini = cleanup, .timeout = 60);

static int req_socket(const char *url)
{
    int s = nn_socket(AF_SP, NN_REQ);
    cr_assert(s >= 0);
    int timeout = REPLY_TIMEOUT_MS;
    cr_assert(nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof(timeout)) == 0);
    cr_assert(nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout, sizeof(timeout)) == 0);
    cr_assert(nn_connect(s, url) >= 0, "connect %s: %s", url, nn_strerror(errno));
    return s;
}

/* ---- clients ------------------------------------------------------------------------------ */

/* Sends raw bytes, returns the reply (nn_freemsg it) and its length. */
static int call_raw(int sock, const void *bytes, size_t len, void **reply)
{
    cr_assert(nn_send(sock, bytes, len, 0) == (int)len, "send: %s", nn_strerror(errno));
    int n = nn_recv(sock, reply, NN_MSG, 0);
    cr_assert(n >= 0, "no reply: %s", nn_strerror(errno));
    return n;
}

/* A binary REQUEST; fills results (count records) and checks the reply's framing. */
static void call(int sock, const struct rush_request *requests, uint32_t count,
                 struct rush_result *results)
{
    static uint8_t message[RUSH_WIRE_MESSAGE_BYTES_MAX];
    static uint64_t message_id = 1000;
    message_id++;
    int len = rush_wire_encode_requests(message, sizeof(message), message_id, requests, count);
    cr_assert(len > 0);
    void *reply = NULL;
    int n = call_raw(sock, message, (size_t)len, &reply);
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert(rush_wire_decode(reply, (size_t)n, &view, &error) == 0, "reply: %s", error.text);
    cr_assert(view.kind == RUSH_WIRE_RESULT, "reply kind %u: %s", view.kind, view.error.text);
    cr_assert(view.message_id == message_id);
    cr_assert(view.count == count);
    cr_assert(rush_wire_view_copy(&view, results, count * sizeof(*results)) > 0);
    nn_freemsg(reply);
}

static struct rush_result call_one(int sock, struct rush_request request)
{
    struct rush_result result;
    call(sock, &request, 1, &result);
    cr_assert(result.tag == request.tag);
    return result;
}

/* The ERROR a hostile message gets. */
static struct rush_wire_error call_error(int sock, const void *bytes, size_t len,
                                         uint64_t *message_id)
{
    void *reply = NULL;
    int n = call_raw(sock, bytes, len, &reply);
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert(rush_wire_decode(reply, (size_t)n, &view, &error) == 0, "reply: %s", error.text);
    cr_assert(view.kind == RUSH_WIRE_ERROR, "expected an ERROR, got kind %u", view.kind);
    if (message_id != NULL)
        *message_id = view.message_id;
    nn_freemsg(reply);
    return view.error;
}

/* A JSON message; the reply text in out. */
static void call_json(int sock, const char *text, char *out, size_t size)
{
    void *reply = NULL;
    int n = call_raw(sock, text, strlen(text), &reply);
    cr_assert((size_t)n < size);
    memcpy(out, reply, (size_t)n);
    out[n] = '\0';
    nn_freemsg(reply);
}

static rush_key key(uint64_t n)
{
    rush_key k = {{0}};
    memcpy(k.bytes, &n, sizeof(n));
    k.bytes[15] = 0x7e;
    return k;
}

static struct rush_request reserve(uint64_t sku, uint64_t user, uint32_t qty, uint64_t k)
{
    return (struct rush_request){
        .op = RUSH_OP_RESERVE, .sku_id = sku, .user_id = user, .qty = qty, .tag = k, .key = key(k)};
}

static struct rush_request on_target(uint8_t op, uint64_t target, uint64_t user, uint64_t k)
{
    return (struct rush_request){
        .op = op, .target_id = target, .user_id = user, .tag = k, .key = key(k)};
}

static struct rush_request on_sku(uint8_t op, uint64_t sku, uint64_t user, uint64_t k)
{
    return (struct rush_request){.op = op, .sku_id = sku, .user_id = user, .tag = k, .key = key(k)};
}

static struct rush_request query(uint8_t op, uint64_t sku, uint64_t target)
{
    return (struct rush_request){.op = op, .sku_id = sku, .target_id = target, .tag = 77};
}

#define EXPECT_OUTCOME(result, expected)                                                           \
    cr_expect_eq((result).outcome, (expected), "line %d: outcome %s, expected %s", __LINE__,       \
                 rush_outcome_name((enum rush_outcome)(result).outcome),                           \
                 rush_outcome_name(expected))

/* ---- every op and outcome through the binary endpoint ------------------------------------- */

static void check_orders(int sock)
{
    struct rush_result r = call_one(sock, reserve(1001, 1, 1, 1));
    EXPECT_OUTCOME(r, RUSH_OK);
    cr_expect_eq(r.remaining, 1);
    uint64_t order1 = r.order_id;
    r = call_one(sock, reserve(1001, 1, 1, 1)); /* the same click again */
    EXPECT_OUTCOME(r, RUSH_OK);
    cr_expect(r.flags & RUSH_RESULT_DUPLICATE);
    cr_expect_eq(r.order_id, order1);
    r = call_one(sock, reserve(1001, 9, 1, 1)); /* the same key, another request */
    EXPECT_OUTCOME(r, RUSH_INVALID);
    cr_expect_eq(r.reason, RUSH_REASON_KEY_REUSED);
    EXPECT_OUTCOME(call_one(sock, reserve(1001, 1, 1, 2)), RUSH_LIMIT_EXCEEDED);
    r = call_one(sock, reserve(1001, 2, 1, 3));
    EXPECT_OUTCOME(r, RUSH_OK);
    uint64_t order2 = r.order_id;
    EXPECT_OUTCOME(call_one(sock, reserve(1001, 3, 1, 4)), RUSH_SOLD_OUT);
    r = call_one(sock, on_target(RUSH_OP_CONFIRM, order1, 0, 5));
    EXPECT_OUTCOME(r, RUSH_OK);
    r = call_one(sock, on_target(RUSH_OP_CANCEL, order2, 0, 6));
    EXPECT_OUTCOME(r, RUSH_OK);
    r = call_one(sock, query(RUSH_OP_QUERY_ORDER, 0, order2));
    EXPECT_OUTCOME(r, RUSH_OK);
    cr_expect_eq(r.state, RUSH_ORDER_RELEASED);
    r = call_one(sock, query(RUSH_OP_QUERY_ORDER, 0, order1));
    EXPECT_OUTCOME(r, RUSH_OK);
    cr_expect_eq(r.state, RUSH_ORDER_CONFIRMED);
    r = call_one(sock, query(RUSH_OP_QUERY_SKU, 1001, 0));
    EXPECT_OUTCOME(r, RUSH_OK);
    cr_expect_eq(r.remaining, 1);
    cr_expect_eq(r.reserved, 0);
    cr_expect_eq(r.confirmed, 1);
    r = call_one(sock, reserve(3001, 1, 1, 7));
    EXPECT_OUTCOME(r, RUSH_OK);
    cr_expect(r.flags & RUSH_RESULT_UNLIMITED);
}

static void check_groups(int sock)
{
    struct rush_result r = call_one(sock, on_sku(RUSH_OP_GROUP_OPEN, 4001, 10, 20));
    EXPECT_OUTCOME(r, RUSH_OK);
    uint64_t group = r.group_id;
    cr_expect(group & RUSH_ID_GROUP_BIT);
    r = call_one(sock, query(RUSH_OP_QUERY_GROUP, 0, group));
    cr_expect_eq(r.state, RUSH_GROUP_OPEN);
    cr_expect_eq(r.remaining, 2, "seats still free");
    EXPECT_OUTCOME(call_one(sock, on_target(RUSH_OP_GROUP_JOIN, group, 10, 21)),
                   RUSH_ALREADY_IN_GROUP);
    EXPECT_OUTCOME(call_one(sock, on_target(RUSH_OP_GROUP_JOIN, group, 11, 22)), RUSH_OK);
    r = call_one(sock, on_sku(RUSH_OP_GROUP_JOIN_ANY, 4001, 12, 23)); /* the third seat */
    EXPECT_OUTCOME(r, RUSH_OK);
    cr_expect_eq(r.group_id, group);
    r = call_one(sock, query(RUSH_OP_QUERY_GROUP, 0, group));
    EXPECT_OUTCOME(r, RUSH_OK);
    cr_expect_eq(r.state, RUSH_GROUP_COMPLETED);
    cr_expect_eq(r.qty, 3);
    /* The N-th seat completes a group at once, so a full group answers group_closed. */
    EXPECT_OUTCOME(call_one(sock, on_target(RUSH_OP_GROUP_JOIN, group, 13, 24)), RUSH_GROUP_CLOSED);
    r = call_one(sock, reserve(4001, 14, 1, 25));
    EXPECT_OUTCOME(r, RUSH_INVALID);
    cr_expect_eq(r.reason, RUSH_REASON_GROUP_SKU);
}

static void check_unknowns_and_windows(int sock)
{
    EXPECT_OUTCOME(call_one(sock, reserve(9999, 1, 1, 30)), RUSH_UNKNOWN_SKU);
    EXPECT_OUTCOME(call_one(sock, query(RUSH_OP_QUERY_ORDER, 0, 12345)), RUSH_UNKNOWN_ORDER);
    EXPECT_OUTCOME(call_one(sock, query(RUSH_OP_QUERY_GROUP, 0, RUSH_ID_GROUP_BIT | 5)),
                   RUSH_UNKNOWN_GROUP);
    EXPECT_OUTCOME(call_one(sock, reserve(5001, 1, 1, 31)), RUSH_NOT_STARTED);
    EXPECT_OUTCOME(call_one(sock, reserve(5002, 1, 1, 32)), RUSH_ENDED);
    EXPECT_OUTCOME(call_one(sock, reserve(5003, 1, 1, 33)), RUSH_PAUSED);
}

static void check_batch_with_field_problems(int sock)
{
    struct rush_request requests[5] = {
        reserve(1005, 100, 1, 40),         reserve(1005, 101, 0, 41), /* qty 0: a field problem */
        query(RUSH_OP_QUERY_SKU, 1005, 0), {.op = 99, .tag = 43},     /* unknown op */
        reserve(1005, 102, 1, 44),
    };
    struct rush_result results[5];
    call(sock, requests, 5, results);
    EXPECT_OUTCOME(results[0], RUSH_OK);
    EXPECT_OUTCOME(results[1], RUSH_INVALID);
    cr_expect_eq(results[1].reason, RUSH_REASON_QTY);
    EXPECT_OUTCOME(results[2], RUSH_OK);
    cr_expect_eq(results[2].remaining, 999);
    EXPECT_OUTCOME(results[3], RUSH_INVALID);
    cr_expect_eq(results[3].reason, RUSH_REASON_OP);
    EXPECT_OUTCOME(results[4], RUSH_OK);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(results[i].tag, requests[i].tag, "result %d answers request %d", i, i);
}

static void check_expiry(int sock)
{
    struct rush_result r = call_one(sock, reserve(1006, 1, 1, 50));
    EXPECT_OUTCOME(r, RUSH_OK);
    /* The SKU's pay TTL is 300ms; the engine's idle tick fires the timer: wait for the state. */
    int64_t deadline = rush_clock_monotonic_ms() + CHILD_READY_MS;
    uint8_t state = RUSH_ORDER_RESERVED;
    while (state == RUSH_ORDER_RESERVED && rush_clock_monotonic_ms() < deadline) {
        sleep_ms(CHILD_POLL_MS);
        state = call_one(sock, query(RUSH_OP_QUERY_ORDER, 0, r.order_id)).state;
    }
    cr_expect_eq(state, RUSH_ORDER_EXPIRED);
    EXPECT_OUTCOME(call_one(sock, on_target(RUSH_OP_CONFIRM, r.order_id, 0, 51)), RUSH_EXPIRED);
}

static void check_every_op(const char *url)
{
    int sock = req_socket(url);
    check_orders(sock);
    check_groups(sock);
    check_unknowns_and_windows(sock);
    check_batch_with_field_problems(sock);
    check_expiry(sock);
    nn_close(sock);
}

Test(server, binary_every_op_and_outcome_over_ipc)
{
    start(0, TEST_TOKEN);
    check_every_op(server.orders);
    cr_expect_eq(stop(&server), 0);
}

static int free_port_base(void)
{
    /* Three consecutive free ports, below the ephemeral range (rushd_child.h). */
    for (int attempt = 0; attempt < 100; attempt++) {
        int base = child_free_port();
        if (base + 2 < CHILD_PORT_HIGH && child_port_free(base + 1) && child_port_free(base + 2))
            return base;
    }
    cr_assert_fail("no three free ports in a row");
    return 0;
}

Test(server, binary_every_op_and_outcome_over_tcp)
{
    start(free_port_base(), TEST_TOKEN);
    check_every_op(server.orders);
    cr_expect_eq(stop(&server), 0);
}

/* ---- the JSON endpoint -------------------------------------------------------------------- */

Test(server, json_endpoint)
{
    start(0, TEST_TOKEN);
    int sock = req_socket(server.json);
    char reply[TEXT_MAX];
    call_json(sock, "{\"op\":\"reserve\",\"sku\":1005,\"user\":42,\"qty\":1,\"key\":\"k-42\"}",
              reply, sizeof(reply));
    cr_expect(strstr(reply, "\"outcome\":\"ok\"") != NULL, "%s", reply);
    cr_expect(strstr(reply, "\"remaining\":999") != NULL, "%s", reply);
    call_json(sock, "{\"op\":\"reserve\",\"sku\":1005,\"user\":42,\"qty\":1,\"key\":\"k-42\"}",
              reply, sizeof(reply));
    cr_expect(strstr(reply, "\"duplicate\":true") != NULL, "%s", reply);
    call_json(sock, "{\"op\":\"query_sku\",\"sku\":1005}", reply, sizeof(reply));
    cr_expect(strstr(reply, "\"reserved\":1") != NULL, "%s", reply);
    call_json(sock, "{\"op\":\"reserve\",\"sku\":9999,\"user\":1,\"qty\":1,\"key\":\"x\"}", reply,
              sizeof(reply));
    cr_expect(strstr(reply, "\"outcome\":\"unknown_sku\"") != NULL, "%s", reply);
    call_json(sock, "{\"op\":\"pause\",\"sku\":1005,\"key\":\"p\"}", reply, sizeof(reply));
    cr_expect(strstr(reply, "admin endpoint") != NULL, "%s", reply);
    nn_close(sock);
    cr_expect_eq(stop(&server), 0);
}

Test(server, json_one_stock_several_prices_and_list_groups)
{
    start(0, TEST_TOKEN);
    int sock = req_socket(server.json);
    char reply[TEXT_MAX];
    call_json(sock, "{\"op\":\"reserve\",\"sku\":4002,\"user\":7,\"qty\":1,\"key\":\"s-7\"}", reply,
              sizeof(reply));
    cr_expect(strstr(reply, "\"outcome\":\"ok\"") != NULL, "solo on a group SKU: %s", reply);
    cr_expect(strstr(reply, "\"remaining\":29") != NULL, "one stock: %s", reply);
    call_json(sock, "{\"op\":\"group_open\",\"sku\":4001,\"user\":1,\"key\":\"g-1\"}", reply,
              sizeof(reply));
    call_json(sock, "{\"op\":\"group_open\",\"sku\":4001,\"user\":2,\"key\":\"g-2\"}", reply,
              sizeof(reply));
    call_json(sock, "{\"op\":\"group_join_any\",\"sku\":4001,\"user\":3,\"key\":\"j-3\"}", reply,
              sizeof(reply));
    call_json(sock, "{\"op\":\"list_groups\",\"sku\":4001,\"limit\":5,\"tag\":9}", reply,
              sizeof(reply));
    cr_expect(strncmp(reply, "{\"outcome\":\"ok\",\"sku\":4001,\"groups\":[{\"group\":", 46) == 0,
              "%s", reply);
    const char *first = strstr(reply, "\"seats\":2,\"free\":1,");
    const char *second = strstr(reply, "\"seats\":1,\"free\":2,");
    cr_expect(first != NULL && second != NULL && first < second, "fullest first: %s", reply);
    cr_expect(strstr(reply, "\"leader\":1}") != NULL && strstr(reply, "\"leader\":2}") != NULL,
              "%s", reply);
    cr_expect(strstr(reply, "}],\"tag\":9}") != NULL, "two groups, then the tag: %s", reply);
    call_json(sock,
              "{\"op\":\"group_join_any\",\"sku\":4002,\"user\":8,\"inviter\":8,\"key\":\"i-8\"}",
              reply, sizeof(reply));
    cr_expect(strstr(reply, "\"reason\":\"inviter_self\"") != NULL, "%s", reply);
    call_json(sock,
              "{\"op\":\"group_join_any\",\"sku\":4002,\"user\":8,\"inviter\":7,\"key\":\"i-9\"}",
              reply, sizeof(reply));
    cr_expect(strstr(reply, "\"outcome\":\"ok\"") != NULL, "an invited join: %s", reply);
    call_json(sock, "{\"op\":\"list_groups\",\"sku\":1005,\"limit\":5}", reply, sizeof(reply));
    cr_expect(strstr(reply, "\"reason\":\"not_group_sku\"") != NULL, "%s", reply);
    call_json(sock, "{\"op\":\"list_groups\",\"sku\":4001,\"limit\":21}", reply, sizeof(reply));
    cr_expect(strstr(reply, "field 'limit' must be an integer 1..20") != NULL, "%s", reply);
    nn_close(sock);
    cr_expect_eq(stop(&server), 0);
}

/* ---- interop: nanocat and nngcat ---------------------------------------------------------- */

static bool have_tool(const char *name)
{
    char command[128];
    snprintf(command, sizeof(command), "command -v %s >/dev/null 2>&1", name);
    return system(command) == 0;
}

/* Runs a shell command line; its standard output in out. */
static void run_tool(const char *command, char *out, size_t size)
{
    FILE *pipe = popen(command, "r");
    cr_assert(pipe != NULL);
    size_t n = fread(out, 1, size - 1, pipe);
    out[n] = '\0';
    int status = pclose(pipe);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %d", command, status);
}

Test(server, interop_nanocat_and_nngcat)
{
    start(free_port_base(), TEST_TOKEN); /* rushd's own TCP transport against nanomsg and NNG */
    char command[2048];
    char out[4096];
    cr_assert(have_tool("nanocat"), "nanocat is not installed (scripts/install-deps.sh)");
    snprintf(command, sizeof(command),
             "timeout 10 nanocat --req --connect '%s' --data "
             "'{\"op\":\"reserve\",\"sku\":1005,\"user\":42,\"qty\":1,\"key\":\"k-42\"}' -A",
             server.json);
    run_tool(command, out, sizeof(out));
    cr_expect(strstr(out, "{\"outcome\":\"ok\",\"order\":\"") != NULL, "nanocat: %s", out);
    cr_expect(strstr(out, "\"sku\":1005,\"remaining\":999}") != NULL, "nanocat: %s", out);
    if (have_tool("nngcat")) {
        snprintf(command, sizeof(command),
                 "timeout 10 nngcat --req0 --dial '%s' --data "
                 "'{\"op\":\"query_sku\",\"sku\":1005}' --ascii",
                 server.json);
        run_tool(command, out, sizeof(out));
        cr_expect(strstr(out, "\"available\":999,\"reserved\":1") != NULL, "nngcat: %s", out);
    }
    snprintf(command, sizeof(command),
             "timeout 10 nanocat --req --connect '%s' --data '{\"op\":\"stats\",\"token\":\"%s\"}'"
             " -A",
             server.admin, TEST_TOKEN);
    run_tool(command, out, sizeof(out));
    cr_expect(strstr(out, "\"uptime_s\":") != NULL, "nanocat admin: %s", out);
    cr_expect_eq(stop(&server), 0);
}

/* ---- hostile input ------------------------------------------------------------------------ */

struct hostile {
    const char *name;
    size_t len;
    void (*mangle)(uint8_t *message, size_t *len);
    uint32_t code;
    const char *text; /* a piece of the error text */
};

static void put_u32(uint8_t *at, uint32_t value)
{
    memcpy(at, &value, sizeof(value));
}

static void empty(uint8_t *m, size_t *len)
{
    (void)m;
    *len = 0;
}
static void wrong_magic(uint8_t *m, size_t *len)
{
    (void)len;
    memcpy(m, "GET ", 4);
}
static void wrong_version(uint8_t *m, size_t *len)
{
    (void)len;
    m[4] = 7;
}
static void truncated(uint8_t *m, size_t *len)
{
    (void)m;
    *len -= 10;
}
static void short_header(uint8_t *m, size_t *len)
{
    (void)m;
    *len = 20;
}
static void count_mismatch(uint8_t *m, size_t *len)
{
    (void)len;
    put_u32(m + 8, 3);
}
static void oversized(uint8_t *m, size_t *len)
{
    (void)m;
    *len = RUSH_WIRE_MESSAGE_BYTES_MAX + 64;
}
static void unknown_kind(uint8_t *m, size_t *len)
{
    (void)len;
    m[6] = 9;
}
static void header_flags(uint8_t *m, size_t *len)
{
    (void)len;
    put_u32(m + 24, 1);
}
static void reserved_record(uint8_t *m, size_t *len)
{
    (void)len;
    m[RUSH_WIRE_HEADER_BYTES + 1] = 0xff; /* record 0's flags */
}
static void result_kind(uint8_t *m, size_t *len)
{
    /* A well-formed RESULT sent to the server: refused. */
    struct rush_result result = {.outcome = RUSH_OK, .tag = 1};
    int n = rush_wire_encode_results(m, RUSH_WIRE_MESSAGE_BYTES_MAX, 5, &result, 1);
    cr_assert(n > 0);
    *len = (size_t)n;
}
static void admin_op(uint8_t *m, size_t *len)
{
    struct rush_request pause = {.op = RUSH_OP_PAUSE, .sku_id = 1005, .key = key(99)};
    int n = rush_wire_encode_requests(m, RUSH_WIRE_MESSAGE_BYTES_MAX, 5, &pause, 1);
    cr_assert(n > 0);
    *len = (size_t)n;
}

static const struct hostile hostile_binary[] = {
    {"empty", 0, empty, RUSH_WIRE_E_SHORT, "shorter than the 32-byte header"},
    {"short header", 0, short_header, RUSH_WIRE_E_SHORT, "20 bytes"},
    {"wrong magic", 0, wrong_magic, RUSH_WIRE_E_MAGIC, "bad magic"},
    {"wrong version", 0, wrong_version, RUSH_WIRE_E_VERSION, "version 7 not supported"},
    {"unknown kind", 0, unknown_kind, RUSH_WIRE_E_KIND, "unknown kind 9"},
    {"header flags", 0, header_flags, RUSH_WIRE_E_HEADER, "flags"},
    {"truncated", 0, truncated, RUSH_WIRE_E_LENGTH, "received"},
    {"count mismatch", 0, count_mismatch, RUSH_WIRE_E_COUNT, "count 3 needs"},
    {"oversized", 0, oversized, RUSH_WIRE_E_OVERSIZE, "over the limit"},
    {"reserved bytes in a record", 0, reserved_record, RUSH_WIRE_E_RECORD, "record 0"},
    {"a result sent to the server", 0, result_kind, RUSH_WIRE_E_REFUSED, "not accepted"},
    {"an admin op on the orders endpoint", 0, admin_op, RUSH_WIRE_E_REFUSED, "admin endpoint"},
};

Test(server, hostile_binary_messages)
{
    start(free_port_base(), TEST_TOKEN);
    int sock = req_socket(server.orders);
    static uint8_t message[RUSH_WIRE_MESSAGE_BYTES_MAX + 1024];
    uint64_t user = 500;
    for (size_t i = 0; i < sizeof(hostile_binary) / sizeof(hostile_binary[0]); i++) {
        const struct hostile *h = &hostile_binary[i];
        struct rush_request requests[2] = {reserve(1005, 1, 1, 60 + i), reserve(1005, 2, 1, 90)};
        memset(message, 0, sizeof(message));
        int n = rush_wire_encode_requests(message, sizeof(message), 0xabcdef, requests, 2);
        cr_assert(n > 0);
        size_t len = (size_t)n;
        h->mangle(message, &len);
        uint64_t message_id = 0;
        struct rush_wire_error error = call_error(sock, message, len, &message_id);
        cr_expect_eq(error.code, h->code, "%s: code %u (%s), expected %u", h->name, error.code,
                     error.text, h->code);
        cr_expect(strstr(error.text, h->text) != NULL, "%s: text '%s'", h->name, error.text);
        if (len >= 24 && h->mangle != result_kind && h->mangle != admin_op)
            cr_expect_eq(message_id, 0xabcdef, "%s: message id echoed", h->name);
        /* The connection and the server carry on. */
        struct rush_result r = call_one(sock, reserve(1005, user++, 1, 1000 + i));
        EXPECT_OUTCOME(r, RUSH_OK);
    }
    nn_close(sock);
    cr_expect_eq(stop(&server), 0);
}

static const char *const hostile_json[][2] = {
    {"", "invalid JSON"},
    {"not json", "invalid JSON"},
    {"[1,2]", "not a JSON object"},
    {"{\"op\":\"buy\",\"sku\":1}", "unknown op"},
    {"{\"op\":\"reserve\",\"sku\":1005,\"user\":1,\"qty\":0,\"key\":\"a\"}", "qty"},
    {"{\"op\":\"reserve\",\"sku\":1005,\"user\":1,\"key\":\"a\"}", "missing field 'qty'"},
    {"{\"op\":\"reserve\",\"sku\":1005,\"user\":1,\"qty\":1,\"key\":\"a\",\"foo\":1}",
     "unknown field 'foo'"},
    {"{\"op\":\"stats\"}", "stats"},
    {"\x01\x02\xff", "invalid JSON"},
};

Test(server, hostile_json_messages)
{
    start(free_port_base(), TEST_TOKEN);
    int sock = req_socket(server.json);
    char reply[TEXT_MAX];
    for (size_t i = 0; i < sizeof(hostile_json) / sizeof(hostile_json[0]); i++) {
        call_json(sock, hostile_json[i][0], reply, sizeof(reply));
        cr_expect(strncmp(reply, "{\"outcome\":\"invalid\",\"reason\":\"", 31) == 0, "%zu: %s", i,
                  reply);
        cr_expect(strstr(reply, hostile_json[i][1]) != NULL, "%zu: '%s' not in %s", i,
                  hostile_json[i][1], reply);
        char valid[256];
        snprintf(valid, sizeof(valid),
                 "{\"op\":\"reserve\",\"sku\":1005,\"user\":%zu,\"qty\":1,\"key\":\"h-%zu\"}",
                 600 + i, i);
        call_json(sock, valid, reply, sizeof(reply));
        cr_expect(strstr(reply, "\"outcome\":\"ok\"") != NULL, "after %zu: %s", i, reply);
    }
    /* Over the JSON size limit: refused by name. */
    static char big[RUSH_JSON_MESSAGE_BYTES_MAX + 100];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    call_json(sock, big, reply, sizeof(reply));
    cr_expect(strstr(reply, "over the limit") != NULL, "%s", reply);
    nn_close(sock);
    cr_expect_eq(stop(&server), 0);
}

/* PROTOCOL.md 3.1 and 10.1: a retry may carry a new tag (the tag is not part of what its key
 * remembers) and is answered with the retry's tag; user 0 is refused alike in binary and JSON;
 * a field an op does not use must be zero. */
Test(server, retry_tags_user_zero_and_unused_fields)
{
    start(0, TEST_TOKEN);
    int sock = req_socket(server.orders);
    struct rush_request first = reserve(1005, 700, 1, 700);
    struct rush_result r = call_one(sock, first);
    EXPECT_OUTCOME(r, RUSH_OK);
    struct rush_request retry = first;
    retry.tag = 0x7e7e;
    struct rush_result again = call_one(sock, retry); /* asserts the answer's tag is 0x7e7e */
    EXPECT_OUTCOME(again, RUSH_OK);
    cr_expect(again.flags & RUSH_RESULT_DUPLICATE);
    cr_expect_eq(again.order_id, r.order_id);

    struct rush_request no_user = reserve(1005, 0, 1, 701);
    struct rush_result refused = call_one(sock, no_user);
    EXPECT_OUTCOME(refused, RUSH_INVALID);
    cr_expect_eq(refused.reason, RUSH_REASON_FIELD);
    struct rush_request stray = query(RUSH_OP_QUERY_ORDER, 1005, r.order_id); /* sku unused */
    refused = call_one(sock, stray);
    EXPECT_OUTCOME(refused, RUSH_INVALID);
    cr_expect_eq(refused.reason, RUSH_REASON_FIELD);
    nn_close(sock);

    sock = req_socket(server.json);
    char reply[TEXT_MAX];
    call_json(sock, "{\"op\":\"reserve\",\"sku\":1005,\"user\":0,\"qty\":1,\"key\":\"u0\"}", reply,
              sizeof(reply));
    cr_expect(strstr(reply, "\"outcome\":\"invalid\"") != NULL, "%s", reply);
    call_json(sock, "{\"op\":\"query_sku\",\"sku\":1005}", reply, sizeof(reply));
    cr_expect(strstr(reply, "\"paused\":false") != NULL, "%s", reply);
    nn_close(sock);
    cr_expect_eq(stop(&server), 0);
}

/* SERVER.md: a message of up to twice the limit is still read and answered "over the limit".
 * Exactly twice, on both endpoints (nanomsg counts a REQ's 4-byte request id against its
 * receive limit, so the server must allow for it). */
/* Over ipc (nanomsg's receive limit) and over tcp (rushd's own transport's). */
static void twice_the_limit_is_answered(int port)
{
    start(port, TEST_TOKEN);
    static uint8_t message[2 * RUSH_WIRE_MESSAGE_BYTES_MAX];
    struct rush_request request = reserve(1005, 1, 1, 1);
    cr_assert(rush_wire_encode_requests(message, sizeof(message), 77, &request, 1) > 0);
    int sock = req_socket(server.orders);
    struct rush_wire_error error = call_error(sock, message, sizeof(message), NULL);
    cr_expect_eq(error.code, RUSH_WIRE_E_OVERSIZE, "code %u: %s", error.code, error.text);
    nn_close(sock);
    static char text[2 * RUSH_JSON_MESSAGE_BYTES_MAX + 1];
    memset(text, ' ', sizeof(text) - 1);
    text[0] = '{';
    text[sizeof(text) - 2] = '}';
    sock = req_socket(server.json);
    char reply[TEXT_MAX];
    call_json(sock, text, reply, sizeof(reply));
    cr_expect(strstr(reply, "over the limit") != NULL, "%s", reply);
    nn_close(sock);
    cr_expect_eq(stop(&server), 0);
}

Test(server, twice_the_limit_is_answered_over_ipc)
{
    twice_the_limit_is_answered(0);
}

Test(server, twice_the_limit_is_answered_over_tcp)
{
    twice_the_limit_is_answered(free_port_base());
}

/* ---- concurrency: no oversell ------------------------------------------------------------- */

#define CLIENTS 8
#define RESERVES_PER_CLIENT 500
#define HOT_STOCK 1000

struct client {
    int index;
    uint32_t ok;
    uint32_t sold_out;
    uint32_t other;
};

static void *client_main(void *arg)
{
    struct client *client = arg;
    int sock = nn_socket(AF_SP, NN_REQ);
    int timeout = REPLY_TIMEOUT_MS;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof(timeout));
    if (nn_connect(sock, server.orders) < 0)
        return NULL;
    uint8_t message[RUSH_WIRE_HEADER_BYTES + sizeof(struct rush_request)];
    for (int i = 0; i < RESERVES_PER_CLIENT; i++) {
        uint64_t user = 100000 + (uint64_t)client->index * RESERVES_PER_CLIENT + (uint64_t)i;
        struct rush_request request = reserve(1005, user, 1, user);
        int len = rush_wire_encode_requests(message, sizeof(message), user, &request, 1);
        void *reply = NULL;
        int n = -1;
        if (len > 0 && nn_send(sock, message, (size_t)len, 0) == len)
            n = nn_recv(sock, &reply, NN_MSG, 0);
        struct rush_wire_view view;
        struct rush_wire_error error;
        struct rush_result result = {.outcome = RUSH_INVALID};
        if (n > 0 && rush_wire_decode(reply, (size_t)n, &view, &error) == 0 &&
            view.kind == RUSH_WIRE_RESULT && view.count == 1 && view.message_id == user)
            memcpy(&result, view.records, sizeof(result));
        if (reply != NULL)
            nn_freemsg(reply);
        client->ok += result.outcome == RUSH_OK;
        client->sold_out += result.outcome == RUSH_SOLD_OUT;
        client->other += result.outcome != RUSH_OK && result.outcome != RUSH_SOLD_OUT;
    }
    nn_close(sock);
    return NULL;
}

Test(server, concurrent_clients_never_oversell)
{
    start(0, TEST_TOKEN);
    pthread_t threads[CLIENTS];
    struct client clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = (struct client){.index = i};
        cr_assert(pthread_create(&threads[i], NULL, client_main, &clients[i]) == 0);
    }
    uint32_t ok = 0, sold_out = 0, other = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        ok += clients[i].ok;
        sold_out += clients[i].sold_out;
        other += clients[i].other;
    }
    uint32_t demand = CLIENTS * RESERVES_PER_CLIENT;
    cr_expect_eq(ok, demand < HOT_STOCK ? demand : HOT_STOCK, "ok %u", ok);
    cr_expect_eq(sold_out, demand - ok, "sold_out %u", sold_out);
    cr_expect_eq(other, 0, "other outcomes %u", other);
    int sock = req_socket(server.orders);
    struct rush_result r = call_one(sock, query(RUSH_OP_QUERY_SKU, 1005, 0));
    cr_expect_eq(r.remaining, 0);
    cr_expect_eq(r.reserved, HOT_STOCK, "stock_total = available + reserved + confirmed");
    cr_expect_eq(r.confirmed, 0);
    nn_close(sock);
    cr_expect_eq(stop(&server), 0);
}

/* ---- admin -------------------------------------------------------------------------------- */

Test(server, admin_needs_the_token)
{
    start(0, TEST_TOKEN);
    int sock = req_socket(server.admin);
    char reply[TEXT_MAX];
    const char *refused = "{\"outcome\":\"invalid\",\"reason\":\"admin token required\"}";
    call_json(sock, "{\"op\":\"stats\"}", reply, sizeof(reply));
    cr_expect_str_eq(reply, refused);
    call_json(sock, "{\"op\":\"pause\",\"sku\":1005,\"key\":\"p1\",\"token\":\"wrong-token\"}",
              reply, sizeof(reply));
    cr_expect_str_eq(reply, refused);
    call_json(sock, "{\"op\":\"stats\",\"token\":12}", reply, sizeof(reply));
    cr_expect_str_eq(reply, refused);
    call_json(sock, "{\"op\":\"stats\",\"token\":\"" TEST_TOKEN "\"}", reply, sizeof(reply));
    cr_expect(strstr(reply, "\"outcome\":\"ok\"") && strstr(reply, "\"uptime_s\":") &&
                  strstr(reply, "\"in_flight\":0"),
              "%s", reply);
    call_json(sock, "{\"op\":\"pause\",\"sku\":1005,\"key\":\"p1\",\"token\":\"" TEST_TOKEN "\"}",
              reply, sizeof(reply));
    cr_expect(strstr(reply, "\"outcome\":\"ok\""), "%s", reply);
    int orders = req_socket(server.orders);
    EXPECT_OUTCOME(call_one(orders, reserve(1005, 1, 1, 70)), RUSH_PAUSED);
    call_json(sock, "{\"op\":\"resume\",\"sku\":1005,\"key\":\"r1\",\"token\":\"" TEST_TOKEN "\"}",
              reply, sizeof(reply));
    EXPECT_OUTCOME(call_one(orders, reserve(1005, 1, 1, 71)), RUSH_OK);
    call_json(
        sock,
        "{\"op\":\"adjust\",\"sku\":1005,\"amount\":-10,\"key\":\"a1\",\"token\":\"" TEST_TOKEN
        "\"}",
        reply, sizeof(reply));
    cr_expect(strstr(reply, "\"remaining\":989"), "%s", reply);
    call_json(sock,
              "{\"op\":\"sku_put\",\"token\":\"" TEST_TOKEN "\",\"sku\":{\"id\":7001,\"name\":"
              "\"new\",\"stock\":5,\"price_fen\":100,\"start_ns\":0,\"end_ns\":"
              "\"9223372036854775807\",\"pay_ttl_ns\":0,\"order_qty_max\":1,\"user_qty_max\":1}}",
              reply, sizeof(reply));
    cr_expect(strstr(reply, "\"outcome\":\"ok\""), "%s", reply);
    EXPECT_OUTCOME(call_one(orders, reserve(7001, 1, 1, 72)), RUSH_OK);
    call_json(sock, "{\"op\":\"query_sku\",\"sku\":7001,\"token\":\"" TEST_TOKEN "\"}", reply,
              sizeof(reply));
    cr_expect(strstr(reply, "\"available\":4"), "%s", reply);
    call_json(sock,
              "{\"op\":\"reserve\",\"sku\":1005,\"user\":1,\"qty\":1,\"key\":\"z\",\"token\":"
              "\"" TEST_TOKEN "\"}",
              reply, sizeof(reply));
    cr_expect(strstr(reply, "not an admin command"), "%s", reply);
    nn_close(orders);
    nn_close(sock);
    cr_expect_eq(stop(&server), 0);
}

Test(server, admin_token_generated_when_not_configured)
{
    start(0, NULL);
    char path[PATH_BYTES + 32];
    snprintf(path, sizeof(path), "%s/data/admin.token", server.dir);
    struct stat st;
    cr_assert(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    char token[256] = {0};
    FILE *file = fopen(path, "r");
    cr_assert(file != NULL && fgets(token, sizeof(token), file) != NULL);
    fclose(file);
    token[strcspn(token, "\n")] = '\0';
    cr_expect_geq(strlen(token), 32);
    int sock = req_socket(server.admin);
    char command[512];
    char reply[TEXT_MAX];
    call_json(sock, "{\"op\":\"stats\"}", reply, sizeof(reply));
    cr_expect(strstr(reply, "admin token required"), "%s", reply);
    snprintf(command, sizeof(command), "{\"op\":\"stats\",\"token\":\"%s\"}", token);
    call_json(sock, command, reply, sizeof(reply));
    cr_expect(strstr(reply, "\"outcome\":\"ok\""), "%s", reply);
    nn_close(sock);
    cr_expect_eq(stop(&server), 0);
}

/* ---- start-up and shutdown ---------------------------------------------------------------- */

Test(server, check_config_and_bad_campaign)
{
    make_dir(&server);
    write_campaign(&server, 0, TEST_TOKEN);
    char out_path[PATH_BYTES + 16];
    snprintf(out_path, sizeof(out_path), "%s/out.txt", server.dir);
    char *argv[] = {NULL, "--check-config", server.config, NULL};
    pid_t pid = spawn(&server, argv, out_path);
    cr_expect_eq(wait_exit(pid, WAIT_EXIT_MS), 0);
    char out[1024] = {0};
    FILE *file = fopen(out_path, "r");
    cr_assert(file != NULL);
    size_t n = fread(out, 1, sizeof(out) - 1, file);
    fclose(file);
    out[n] = '\0';
    char expected[PATH_BYTES + 32];
    snprintf(expected, sizeof(expected), "%s: ok (9 SKUs)\n", server.config);
    cr_expect_str_eq(out, expected);

    char bad[PATH_BYTES + 16];
    snprintf(bad, sizeof(bad), "%s/bad.ini", server.dir);
    write_file(bad, "[engine]\nshards = 2\n\n[sku 1]\nname = x\nstock = -5\n");
    truncate(server.log, 0);
    char *check_bad[] = {NULL, "--check-config", bad, NULL};
    cr_expect_eq(wait_exit(spawn(&server, check_bad, out_path), WAIT_EXIT_MS), 1);
    char *start_bad[] = {NULL, "--config", bad, NULL};
    cr_expect_eq(wait_exit(spawn(&server, start_bad, out_path), WAIT_EXIT_MS), 1);
    file = fopen(server.log, "r");
    cr_assert(file != NULL);
    n = fread(out, 1, sizeof(out) - 1, file);
    fclose(file);
    out[n] = '\0';
    snprintf(expected, sizeof(expected), "%s:6: ", bad);
    cr_expect(strstr(out, expected) != NULL, "no '%s' in: %s", expected, out);
}

/* Messages rushd has taken from its orders endpoint (the admin stats' "server" counters). */
static uint64_t orders_taken(void)
{
    int sock = req_socket(server.admin);
    char command[256], reply[TEXT_MAX];
    snprintf(command, sizeof(command), "{\"op\":\"stats\",\"token\":\"%s\"}", TEST_TOKEN);
    call_json(sock, command, reply, sizeof(reply));
    nn_close(sock);
    const char *at = strstr(reply, "\"messages\":{\"orders\":");
    cr_assert(at != NULL, "no message counters in %s", reply);
    return strtoull(at + strlen("\"messages\":{\"orders\":"), NULL, 10);
}

static void sigterm_answers_in_flight_then_exits_zero(int port)
{
    start(port, TEST_TOKEN);
    /* A big batch in flight when SIGTERM arrives still gets its reply. */
    uint64_t taken = orders_taken();
    int sock = req_socket(server.orders);
    enum { BIG = 4000 };
    static struct rush_request requests[BIG];
    static uint8_t message[RUSH_WIRE_HEADER_BYTES + BIG * sizeof(struct rush_request)];
    for (int i = 0; i < BIG; i++)
        requests[i] = reserve(3001, 20000 + (uint64_t)i, 1, 20000 + (uint64_t)i);
    int len = rush_wire_encode_requests(message, sizeof(message), 77, requests, BIG);
    cr_assert(len > 0);
    cr_assert(nn_send(sock, message, (size_t)len, 0) == len);
    int64_t deadline =
        rush_clock_monotonic_ms() + CHILD_READY_MS; /* SIGTERM once rushd has taken it */
    while (orders_taken() == taken && rush_clock_monotonic_ms() < deadline)
        sleep_ms(1);
    kill(server.pid, SIGTERM);
    void *reply = NULL;
    int n = nn_recv(sock, &reply, NN_MSG, 0);
    cr_expect(n > 0, "no reply after SIGTERM: %s", nn_strerror(errno));
    if (n > 0) {
        struct rush_wire_view view;
        struct rush_wire_error error;
        cr_expect(rush_wire_decode(reply, (size_t)n, &view, &error) == 0);
        cr_expect_eq(view.count, BIG);
        nn_freemsg(reply);
    }
    nn_close(sock);
    int status = wait_exit(server.pid, WAIT_EXIT_MS);
    server.pid = -1;
    cr_expect_eq(status, 0, "exit status %d", status);
}

Test(server, sigterm_answers_in_flight_then_exits_zero_over_ipc)
{
    sigterm_answers_in_flight_then_exits_zero(0);
}

Test(server, sigterm_answers_in_flight_then_exits_zero_over_tcp)
{
    sigterm_answers_in_flight_then_exits_zero(free_port_base());
}
