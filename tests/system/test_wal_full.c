/*
 * test_wal_full.c — a full disk through rushd: replies never claim what is not known.
 *
 * rushd runs with two shards on a data directory that is a tmpfs just big enough for each shard's
 * first 64 MiB log segment. Binary messages of 16,383 reserves, three quarters on a SKU of shard
 * A and a quarter on a SKU of shard B, fill shard A's segment first; the roll to a second segment
 * finds no room and A's log fails (sticky) while B's keeps working. From then on every reply is
 * still a RESULT: B's requests carry their decisions, A's the outcome `outcome_unknown` — never an
 * ERROR, never `invalid` or `busy`, which a gateway would read as "not ordered"; the JSON
 * endpoint, the C client (librush) and rushctl (exit 3, the key printed) say the same. After a kill
 * -9, a bigger disk and a restart, every request is sent again with its key: each decision answered
 * before comes back the same (duplicate, same order id), and each unknown one is decided (found
 * in the log as a duplicate, or decided afresh), never refused.
 *
 * Needs root for mount(8) (skips otherwise, like test_durability's full-disk test).
 */
#include <criterion/criterion.h>

#include "rush/client.h"
#include "rush/engine.h"
#include "rush/types.h"
#include "rush/wire.h"
#include "rushd_child.h"

#define PER_MESSAGE RUSH_WIRE_REQUESTS_MAX
#define A_PER_MESSAGE (PER_MESSAGE - PER_MESSAGE / 4) /* i % 4 != 3 */
#define MESSAGES_MAX 200                              /* shard A's 64 MiB fill in well under this */
#define REPLY_TIMEOUT_MS 60000
#define DISK_SMALL "144m" /* two 64 MiB segments, not a third */
#define DISK_BIG "400m"

static bool mounted;
static uint64_t sku_a, sku_b;
static uint64_t order_ids[MESSAGES_MAX][PER_MESSAGE];
static uint8_t outcomes[MESSAGES_MAX][PER_MESSAGE];

static void unmount_and_clean(void)
{
    if (rushd.pid > 0) {
        kill(rushd.pid, SIGKILL);
        child_wait_exit(rushd.pid, CHILD_EXIT_MS);
        rushd.pid = -1;
    }
    if (mounted) {
        char command[CHILD_PATH_BYTES];
        snprintf(command, sizeof command, "umount '%s/data'", rushd.dir);
        cr_expect(system(command) == 0, "umount the test's tmpfs");
        mounted = false;
    }
    rushd_cleanup();
}

TestSuite(wal_full, .fini = unmount_and_clean, .timeout = 600);

static int disk(const char *options)
{
    char command[CHILD_PATH_BYTES + 64];
    snprintf(command, sizeof command, "mount -t tmpfs -o %s tmpfs '%s/data' 2>/dev/null", options,
             rushd.dir);
    return system(command);
}

static void write_campaign(void)
{
    snprintf(rushd.orders, sizeof rushd.orders, "ipc://%s/orders.ipc", rushd.dir);
    snprintf(rushd.json, sizeof rushd.json, "ipc://%s/json.ipc", rushd.dir);
    snprintf(rushd.admin, sizeof rushd.admin, "ipc://%s/admin.ipc", rushd.dir);
    snprintf(rushd.config, sizeof rushd.config, "%s/campaign.ini", rushd.dir);
    FILE *file = fopen(rushd.config, "w");
    cr_assert(file != NULL);
    fprintf(file,
            "[engine]\nshards = 2\ndurability = fsync\ndata_dir = %s/data\n\n"
            "[endpoints]\norders = %s\njson = %s\nadmin = %s\npublisher = ipc://%s/pub.ipc\n"
            "replay = ipc://%s/replay.ipc\nhttp =\nadmin_token = %s\n\n",
            rushd.dir, rushd.orders, rushd.json, rushd.admin, rushd.dir, rushd.dir, CHILD_TOKEN);
    for (int i = 0; i < 2; i++)
        fprintf(file,
                "[sku %llu]\nname = instant\nstock = unlimited\nprice = 100\nstart = now\n"
                "end = never\norder_qty_max = 1\nuser_qty_max = 1\npay_ttl = 0\n\n",
                (unsigned long long)(i == 0 ? sku_a : sku_b));
    fclose(file);
}

/* Request i of message m: three in four on SKU A; every user and key distinct. */
static struct rush_request request_of(uint32_t m, uint32_t i)
{
    uint64_t n = (uint64_t)m * PER_MESSAGE + i + 1;
    struct rush_request request = {
        .op = RUSH_OP_RESERVE, .qty = 1, .sku_id = i % 4 == 3 ? sku_b : sku_a, .user_id = n};
    request.tag = n;
    memcpy(request.key.bytes, &n, sizeof n);
    request.key.bytes[15] = 0x5a;
    return request;
}

/* Sends message m (a RESULT is required: an ERROR fails the test) and fills results. */
static void exchange(int sock, uint32_t m, struct rush_result *results)
{
    static struct rush_request requests[PER_MESSAGE];
    static uint8_t message[RUSH_WIRE_MESSAGE_BYTES_MAX];
    for (uint32_t i = 0; i < PER_MESSAGE; i++)
        requests[i] = request_of(m, i);
    int len = rush_wire_encode_requests(message, sizeof message, m + 1, requests, PER_MESSAGE);
    cr_assert(len > 0);
    cr_assert(nn_send(sock, message, (size_t)len, 0) == len, "send: %s", nn_strerror(errno));
    void *reply = NULL;
    int n = nn_recv(sock, &reply, NN_MSG, 0);
    cr_assert(n >= 0, "no reply to message %u: %s", m, nn_strerror(errno));
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert(rush_wire_decode(reply, (size_t)n, &view, &error) == 0, "reply: %s", error.text);
    cr_assert(view.kind == RUSH_WIRE_RESULT, "message %u answered by an ERROR: %s", m,
              view.error.text);
    cr_assert(view.count == PER_MESSAGE && view.message_id == m + 1);
    cr_assert(rush_wire_view_copy(&view, results, PER_MESSAGE * sizeof(*results)) > 0);
    nn_freemsg(reply);
}

static int orders_socket(void)
{
    int sock = nn_socket(AF_SP, NN_REQ);
    cr_assert(sock >= 0);
    int timeout = REPLY_TIMEOUT_MS;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof timeout);
    cr_assert(nn_connect(sock, rushd.orders) >= 0);
    return sock;
}

/* Checks one reply after the failure: B decided, A unknown or decided; returns A's unknowns. */
static uint32_t check_after_failure(uint32_t m, const struct rush_result *results)
{
    uint32_t unknown = 0;
    for (uint32_t i = 0; i < PER_MESSAGE; i++) {
        const struct rush_result *r = &results[i];
        cr_assert(r->tag == (uint64_t)m * PER_MESSAGE + i + 1, "results in request order");
        if (i % 4 == 3) {
            cr_assert(r->outcome == RUSH_OK, "shard B's log works: message %u record %u is %s", m,
                      i, rush_outcome_name(r->outcome));
            continue;
        }
        cr_assert(r->outcome == RUSH_OK || r->outcome == RUSH_OUTCOME_UNKNOWN,
                  "message %u record %u: %s claims more than is known", m, i,
                  rush_outcome_name(r->outcome));
        unknown += r->outcome == RUSH_OUTCOME_UNKNOWN;
        cr_assert(r->outcome == RUSH_OK || r->order_id == 0, "an unknown result names no order");
    }
    return unknown;
}

/* Fills shard A's disk; returns the number of messages sent (the last two hold unknowns). */
static uint32_t fill_the_disk(int sock)
{
    static struct rush_result results[PER_MESSAGE];
    uint32_t failed_at = MESSAGES_MAX;
    uint32_t m = 0;
    for (; m < MESSAGES_MAX && m <= failed_at + 1; m++) {
        exchange(sock, m, results);
        uint32_t unknown = check_after_failure(m, results);
        if (unknown > 0 && failed_at == MESSAGES_MAX)
            failed_at = m;
        if (m == failed_at + 1) /* sticky: nothing of A is decided once its log failed */
            cr_assert(unknown == A_PER_MESSAGE,
                      "every A request after the failure (message %u after %u: %u unknown)", m,
                      failed_at, unknown);
        for (uint32_t i = 0; i < PER_MESSAGE; i++) {
            order_ids[m][i] = results[i].order_id;
            outcomes[m][i] = results[i].outcome;
        }
    }
    cr_assert(failed_at < MESSAGES_MAX, "shard A's log never filled the disk");
    return m;
}

/* rushctl: exit 3 (unknown), never 1 (refused), and the key to resend with. */
static void check_rushctl(void)
{
    char command[4 * CHILD_PATH_BYTES], err[CHILD_PATH_BYTES + 8];
    snprintf(err, sizeof err, "%s/rushctl.err", rushd.dir);
    snprintf(command, sizeof command,
             "'%s/rushctl' --json '%s' --timeout %d reserve --sku %llu --user 4000000003 "
             "--key 0x000102030405060708090a0b0c0d0e0f >/dev/null 2>'%s'",
             rushd.bin, rushd.json, REPLY_TIMEOUT_MS, (unsigned long long)sku_a, err);
    int status = system(command);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 3, "rushctl exit %d",
              WEXITSTATUS(status));
    char said[1024] = "";
    FILE *file = fopen(err, "r");
    cr_assert(file != NULL);
    size_t len = fread(said, 1, sizeof said - 1, file);
    said[len] = '\0';
    fclose(file);
    cr_assert(strstr(said, "outcome unknown") != NULL, "%s", said);
    cr_assert(strstr(said, "key 0x000102030405060708090a0b0c0d0e0f") != NULL, "%s", said);
}

/* The JSON endpoint and the C client say the same: unknown on A, decided on B. */
static void check_json_and_client(void)
{
    struct rush_client_config config;
    rush_client_config_default(&config);
    config.url = rushd.orders;
    config.timeout_ms = REPLY_TIMEOUT_MS;
    struct rush_client *client = NULL;
    cr_assert(rush_client_open(&config, &client) == 0);
    struct rush_request requests[2] = {request_of(MESSAGES_MAX, 0), request_of(MESSAGES_MAX, 3)};
    struct rush_result results[2];
    cr_assert(rush_client_submit(client, requests, 2, results) == 0,
              "the client reports results, not a refusal: %s", rush_client_last_error());
    cr_assert(results[0].outcome == RUSH_OUTCOME_UNKNOWN, "%s",
              rush_outcome_name(results[0].outcome));
    cr_assert(results[1].outcome == RUSH_OK, "%s", rush_outcome_name(results[1].outcome));
    rush_client_close(client);

    char text[512], reply[1024];
    snprintf(text, sizeof text,
             "{\"op\":\"reserve\",\"sku\":%llu,\"user\":4000000001,\"qty\":1,\"key\":\"json-a\"}",
             (unsigned long long)sku_a);
    cr_assert(child_json(rushd.json, text, reply, sizeof reply, REPLY_TIMEOUT_MS) == 0);
    cr_assert(strstr(reply, "\"outcome\":\"outcome_unknown\"") != NULL, "A over JSON: %s", reply);
    cr_assert(strstr(reply, "\"retry\"") != NULL, "the reply says what to do: %s", reply);
    snprintf(text, sizeof text,
             "{\"op\":\"reserve\",\"sku\":%llu,\"user\":4000000002,\"qty\":1,\"key\":\"json-b\"}",
             (unsigned long long)sku_b);
    cr_assert(child_json(rushd.json, text, reply, sizeof reply, REPLY_TIMEOUT_MS) == 0);
    cr_assert(strstr(reply, "\"outcome\":\"ok\"") != NULL, "B over JSON: %s", reply);
}

Test(wal_full, a_full_disk_answers_unknown_never_refused_and_resends_find_the_truth)
{
    signal(SIGPIPE, SIG_IGN);
    sku_a = 1;
    sku_b = 2;
    while (rush_engine_shard_of_sku(2, sku_b) == rush_engine_shard_of_sku(2, sku_a))
        sku_b++;
    snprintf(rushd.dir, sizeof rushd.dir, "/tmp/rush-test-walfull-XXXXXX");
    cr_assert(mkdtemp(rushd.dir) != NULL);
    char data[CHILD_PATH_BYTES];
    snprintf(data, sizeof data, "%s/data", rushd.dir);
    cr_assert(mkdir(data, 0700) == 0);
    if (disk("size=" DISK_SMALL) != 0)
        cr_skip_test("mounting a tmpfs is not permitted here");
    mounted = true;
    snprintf(rushd.log, sizeof rushd.log, "%s/rushd.log", rushd.dir);
    child_bin_dir(rushd.bin, sizeof rushd.bin);
    write_campaign();
    rushd_spawn();

    int sock = orders_socket();
    uint32_t sent = fill_the_disk(sock);
    check_json_and_client();
    check_rushctl();
    nn_close(sock);

    kill(rushd.pid, SIGKILL);
    cr_assert(child_wait_exit(rushd.pid, CHILD_EXIT_MS) == 128 + SIGKILL);
    rushd.pid = -1;
    cr_assert(disk("remount,size=" DISK_BIG) == 0, "a bigger disk");
    rushd_spawn();
    sock = orders_socket();
    static struct rush_result again[PER_MESSAGE];
    uint32_t known = 0, unknown = 0, unknown_logged = 0;
    for (uint32_t m = 0; m < sent; m++) {
        exchange(sock, m, again);
        for (uint32_t i = 0; i < PER_MESSAGE; i++) {
            cr_assert(again[i].outcome == RUSH_OK, "resent message %u record %u: %s", m, i,
                      rush_outcome_name(again[i].outcome));
            if (outcomes[m][i] == RUSH_OUTCOME_UNKNOWN) {
                unknown++;
                unknown_logged += (again[i].flags & RUSH_RESULT_DUPLICATE) != 0;
                continue;
            }
            known++;
            cr_assert(again[i].flags & RUSH_RESULT_DUPLICATE, "a decision answered was lost");
            cr_assert(again[i].order_id == order_ids[m][i], "the same order, not a new one");
        }
    }
    nn_close(sock);
    cr_assert(unknown > 0 && known > 0);
    cr_log_info("%u messages: %u decisions answered and kept, %u answered unknown (%u of them "
                "had been logged)",
                sent, known, unknown, unknown_logged);
}
