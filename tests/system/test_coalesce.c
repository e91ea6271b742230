/*
 * test_coalesce.c — rushd's coalescing and in-flight budgets, end to end (engine/front/
 * server_pack.c, server_slots.c).
 *
 * rushd runs with ring_slots = 2 on 2 shards, so at most 4 engine batches are ever in flight:
 * before coalescing that was also the number of messages rushd held (shards x ring_slots), and
 * anything more was answered `busy`. Here 128 plain REQ connections (binary and JSON) each send
 * one message before any reply is read, round after round, so many messages wait on the
 * endpoints at every turn of the loop and most of them find every batch of their shard in flight.
 *
 * Covered: every one-order message from many connections is answered, with its own message id
 * and tag, and exactly the stock is sold, with no `busy` (the budget counts requests, so 128
 * messages are far below it); identical requests (one idempotency key) sent at once from two
 * connections are decided once, the later answer flagged duplicate with the same order; messages
 * whose requests span both shards are answered in request order; every small message went
 * through a pack (the stats' packed_messages), and the budgets are back to zero afterwards.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rush/engine.h"
#include "rush/types.h"
#include "rush/wire.h"
#include "rushd_child.h"

#define CONNECTIONS 128
#define ROUNDS 6
#define SKU_COUNT 4
#define STOCK 150
#define TIMEOUT_MS 20000
#define TOKEN "coalesce-test-token-0123456789"
#define SPAN_MAX 8

static struct rushd_child server = {.pid = -1};

static const uint64_t skus[SKU_COUNT] = {2001, 2002, 2003, 2004};

static const char *const campaign_skus =
    "[sku 2001]\nname = a\nstock = 150\nprice = 100\nstart = now\nend = never\npay_ttl = 0\n\n"
    "[sku 2002]\nname = b\nstock = 150\nprice = 100\nstart = now\nend = never\npay_ttl = 0\n\n"
    "[sku 2003]\nname = c\nstock = 150\nprice = 100\nstart = now\nend = never\npay_ttl = 0\n\n"
    "[sku 2004]\nname = d\nstock = 150\nprice = 100\nstart = now\nend = never\npay_ttl = 0\n";

static void start(void)
{
    child_make_dir(&server, "coalesce");
    server.durability = "fsync";
    child_write_campaign(&server,
                         "shards = 2\nring_slots = 2\norders_max = 65536\ngroups_max = 1024\n"
                         "keys_max = 131072\nuser_limits_max = 65536\n",
                         TOKEN, campaign_skus);
    char *args[] = {"--config", server.config, "--log-level", "info", NULL};
    child_run(&server, args);
}

static void cleanup(void)
{
    child_cleanup(&server);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
}

TestSuite(coalesce, .init = setup, .fini = cleanup, .timeout = 120);

static int connect_req(const char *url)
{
    int s = nn_socket(AF_SP, NN_REQ);
    cr_assert(s >= 0);
    int timeout = TIMEOUT_MS;
    cr_assert(nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof(timeout)) == 0);
    cr_assert(nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout, sizeof(timeout)) == 0);
    cr_assert(nn_connect(s, url) >= 0, "connect %s: %s", url, nn_strerror(errno));
    return s;
}

static rush_key key_of(uint64_t n)
{
    rush_key k = {{0}};
    memcpy(k.bytes, &n, sizeof(n));
    k.bytes[15] = 0x5c;
    return k;
}

static struct rush_request reserve(uint64_t sku, uint64_t user, uint64_t key, uint64_t tag)
{
    return (struct rush_request){.op = RUSH_OP_RESERVE,
                                 .sku_id = sku,
                                 .user_id = user,
                                 .qty = 1,
                                 .tag = tag,
                                 .key = key_of(key)};
}

static void send_requests(int sock, uint64_t message_id, const struct rush_request *requests,
                          uint32_t count)
{
    static uint8_t message[RUSH_WIRE_MESSAGE_BYTES_MAX];
    int len = rush_wire_encode_requests(message, sizeof(message), message_id, requests, count);
    cr_assert(len > 0);
    cr_assert(nn_send(sock, message, (size_t)len, 0) == len, "send: %s", nn_strerror(errno));
}

/* Receives a RESULT for message_id with `count` records into results. */
static void receive_results(int sock, uint64_t message_id, struct rush_result *results,
                            uint32_t count)
{
    void *reply = NULL;
    int n = nn_recv(sock, &reply, NN_MSG, 0);
    cr_assert(n >= 0, "no reply: %s", nn_strerror(errno));
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert(rush_wire_decode(reply, (size_t)n, &view, &error) == 0, "reply: %s", error.text);
    cr_assert_eq(view.kind, RUSH_WIRE_RESULT);
    cr_assert_eq(view.message_id, message_id, "a reply went to the wrong message");
    cr_assert_eq(view.count, count);
    cr_assert(rush_wire_view_copy(&view, results, count * sizeof(*results)) > 0);
    nn_freemsg(reply);
}

/* The server's stats object (admin endpoint). */
static void stats(char *out, size_t cap)
{
    cr_assert(child_json(server.admin, "{\"op\":\"stats\",\"token\":\"" TOKEN "\"}", out, cap,
                         TIMEOUT_MS) == 0);
}

static uint64_t stat_u64(const char *text, const char *name)
{
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "\"%s\":", name);
    const char *at = strstr(text, pattern);
    cr_assert(at != NULL, "no %s in %s", name, text);
    return strtoull(at + strlen(pattern), NULL, 10);
}

/* The SKUs must live on both shards for the mixed tests to mean anything. */
static void check_skus_span_shards(void)
{
    bool on[2] = {false, false};
    for (int i = 0; i < SKU_COUNT; i++)
        on[rush_engine_shard_of_sku(2, skus[i])] = true;
    cr_assert(on[0] && on[1], "pick SKU ids that hash to both shards");
}

static void open_all(int *socks, const char *url)
{
    for (int c = 0; c < CONNECTIONS; c++)
        socks[c] = connect_req(url);
}

static void close_all(const int *socks)
{
    for (int c = 0; c < CONNECTIONS; c++)
        nn_close(socks[c]);
}

Test(coalesce, one_order_messages_from_many_connections_are_each_answered_without_busy)
{
    check_skus_span_shards();
    start();
    int socks[CONNECTIONS];
    open_all(socks, server.orders);
    uint32_t ok[SKU_COUNT] = {0};
    uint32_t outcomes[RUSH_OUTCOME_COUNT_] = {0};
    for (uint32_t round = 0; round < ROUNDS; round++) {
        for (uint32_t c = 0; c < CONNECTIONS; c++) {
            uint64_t n = (uint64_t)round * CONNECTIONS + c + 1;
            struct rush_request request = reserve(skus[n % SKU_COUNT], n, n, n * 7);
            send_requests(socks[c], n, &request, 1);
        }
        for (uint32_t c = 0; c < CONNECTIONS; c++) {
            uint64_t n = (uint64_t)round * CONNECTIONS + c + 1;
            struct rush_result result;
            receive_results(socks[c], n, &result, 1);
            cr_assert_eq(result.tag, n * 7, "a result went to the wrong request");
            cr_assert(result.outcome < RUSH_OUTCOME_COUNT_);
            outcomes[result.outcome]++;
            if (result.outcome == RUSH_OK)
                ok[n % SKU_COUNT]++;
        }
    }
    close_all(socks);
    cr_expect_eq(outcomes[RUSH_BUSY], 0, "busy below the budget");
    for (int i = 0; i < SKU_COUNT; i++)
        cr_expect_eq(ok[i], STOCK, "SKU %llu sold %u of %d", (unsigned long long)skus[i], ok[i],
                     STOCK);
    cr_expect_eq(outcomes[RUSH_OK] + outcomes[RUSH_SOLD_OUT], ROUNDS * CONNECTIONS);
    char text[8192];
    stats(text, sizeof(text));
    cr_expect_eq(stat_u64(text, "packed_messages"), ROUNDS * CONNECTIONS, "%s", text);
    cr_expect_eq(stat_u64(text, "busy_messages"), 0, "%s", text);
    cr_expect_eq(stat_u64(text, "requests_in_flight"), 0, "%s", text);
    cr_expect(stat_u64(text, "packs") >= 1, "%s", text);
    cr_expect_eq(child_stop(&server, SIGTERM), 0);
}

Test(coalesce, json_one_order_messages_are_coalesced_and_answered)
{
    start();
    int socks[CONNECTIONS];
    open_all(socks, server.json);
    uint32_t ok = 0;
    for (uint32_t round = 0; round < ROUNDS; round++) {
        for (uint32_t c = 0; c < CONNECTIONS; c++) {
            uint64_t n = (uint64_t)round * CONNECTIONS + c + 1;
            char text[256];
            int len = snprintf(text, sizeof(text),
                               "{\"op\":\"reserve\",\"sku\":%llu,\"user\":%llu,\"qty\":1,"
                               "\"key\":\"j-%llu\",\"tag\":%llu}",
                               (unsigned long long)skus[0], (unsigned long long)n,
                               (unsigned long long)n, (unsigned long long)n * 3);
            cr_assert(nn_send(socks[c], text, (size_t)len, 0) == len);
        }
        for (uint32_t c = 0; c < CONNECTIONS; c++) {
            uint64_t n = (uint64_t)round * CONNECTIONS + c + 1;
            char *reply = NULL;
            int len = nn_recv(socks[c], &reply, NN_MSG, 0);
            cr_assert(len > 0, "no reply: %s", nn_strerror(errno));
            char expected_tag[48];
            snprintf(expected_tag, sizeof(expected_tag), "\"tag\":%llu", (unsigned long long)n * 3);
            cr_assert(memmem(reply, (size_t)len, expected_tag, strlen(expected_tag)) != NULL,
                      "%.*s", len, reply);
            cr_assert(memmem(reply, (size_t)len, "\"busy\"", 6) == NULL, "%.*s", len, reply);
            if (memmem(reply, (size_t)len, "\"outcome\":\"ok\"", 14) != NULL)
                ok++;
            nn_freemsg(reply);
        }
    }
    close_all(socks);
    cr_expect_eq(ok, STOCK);
    char text[8192];
    stats(text, sizeof(text));
    cr_expect_eq(stat_u64(text, "packed_messages"), ROUNDS * CONNECTIONS, "%s", text);
    cr_expect_eq(child_stop(&server, SIGTERM), 0);
}

Test(coalesce, one_key_sent_at_once_from_two_connections_is_decided_once)
{
    start();
    int socks[CONNECTIONS];
    open_all(socks, server.orders);
    /* Connections 2i and 2i+1 send the same request (same key, user, SKU) at the same time. */
    for (uint32_t c = 0; c < CONNECTIONS; c++) {
        uint64_t pair = c / 2 + 1;
        struct rush_request request = reserve(skus[pair % SKU_COUNT], pair, pair, pair);
        send_requests(socks[c], c + 1, &request, 1);
    }
    struct rush_result results[CONNECTIONS];
    for (uint32_t c = 0; c < CONNECTIONS; c++)
        receive_results(socks[c], c + 1, &results[c], 1);
    close_all(socks);
    for (uint32_t c = 0; c < CONNECTIONS; c += 2) {
        const struct rush_result *a = &results[c], *b = &results[c + 1];
        cr_expect_eq(a->outcome, RUSH_OK, "pair %u: %s", c / 2,
                     rush_outcome_name((enum rush_outcome)a->outcome));
        cr_expect_eq(a->outcome, b->outcome);
        cr_expect_eq(a->order_id, b->order_id, "pair %u: two orders for one key", c / 2);
        bool a_dup = (a->flags & RUSH_RESULT_DUPLICATE) != 0;
        bool b_dup = (b->flags & RUSH_RESULT_DUPLICATE) != 0;
        cr_expect(a_dup != b_dup, "pair %u: exactly one answer is the duplicate", c / 2);
    }
    char text[8192];
    stats(text, sizeof(text));
    cr_expect_eq(stat_u64(text, "duplicates"), CONNECTIONS / 2, "%s", text);
    cr_expect_eq(child_stop(&server, SIGTERM), 0);
}

/* Message m carries 1 + m % SPAN_MAX requests over every SKU (so over both shards). */
static uint32_t span_fill(uint64_t m, struct rush_request *requests)
{
    uint32_t count = 1 + (uint32_t)(m % SPAN_MAX);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t n = m * SPAN_MAX + i;
        requests[i] = reserve(skus[(m + i) % SKU_COUNT], n, n, n * 5 + 1);
    }
    return count;
}

Test(coalesce, messages_spanning_shards_are_answered_in_request_order)
{
    check_skus_span_shards();
    start();
    int socks[CONNECTIONS];
    open_all(socks, server.orders);
    uint32_t ok = 0, total = 0;
    for (uint32_t round = 0; round < 2; round++) {
        for (uint32_t c = 0; c < CONNECTIONS; c++) {
            uint64_t m = (uint64_t)round * CONNECTIONS + c + 1;
            struct rush_request requests[SPAN_MAX];
            send_requests(socks[c], m, requests, span_fill(m, requests));
        }
        for (uint32_t c = 0; c < CONNECTIONS; c++) {
            uint64_t m = (uint64_t)round * CONNECTIONS + c + 1;
            struct rush_request requests[SPAN_MAX];
            uint32_t count = span_fill(m, requests);
            struct rush_result results[SPAN_MAX];
            receive_results(socks[c], m, results, count);
            for (uint32_t i = 0; i < count; i++) {
                cr_assert_eq(results[i].tag, requests[i].tag, "message %llu record %u",
                             (unsigned long long)m, i);
                cr_assert(results[i].outcome == RUSH_OK || results[i].outcome == RUSH_SOLD_OUT,
                          "%s", rush_outcome_name((enum rush_outcome)results[i].outcome));
                ok += results[i].outcome == RUSH_OK;
            }
            total += count;
        }
    }
    close_all(socks);
    cr_expect(total > SKU_COUNT * STOCK); /* enough to sell out: the books are checked */
    cr_expect_eq(ok, SKU_COUNT * STOCK);
    cr_expect_eq(child_stop(&server, SIGTERM), 0);
}

/*
 * The budget counts requests: 128 messages of 100 requests each in flight at once (12,800
 * requests, far below RUSH_SERVER_REQUESTS_IN_FLIGHT_MAX) are never busy, where 16 large slots
 * used to be all a message over 64 requests could have.
 */
Test(coalesce, hundred_order_messages_from_many_connections_are_not_busy)
{
    start();
    int socks[CONNECTIONS];
    open_all(socks, server.orders);
    enum { PER = 100 };
    static struct rush_request requests[CONNECTIONS][PER];
    static struct rush_result results[PER];
    uint32_t busy = 0, decided = 0;
    for (uint32_t round = 0; round < 2; round++) {
        for (uint32_t c = 0; c < CONNECTIONS; c++) {
            uint64_t m = (uint64_t)round * CONNECTIONS + c + 1;
            for (uint32_t i = 0; i < PER; i++) {
                uint64_t n = m * PER + i;
                requests[c][i] = reserve(skus[n % SKU_COUNT], n, n, n + 11);
            }
            send_requests(socks[c], m, requests[c], PER);
        }
        for (uint32_t c = 0; c < CONNECTIONS; c++) {
            uint64_t m = (uint64_t)round * CONNECTIONS + c + 1;
            receive_results(socks[c], m, results, PER);
            for (uint32_t i = 0; i < PER; i++) {
                cr_assert_eq(results[i].tag, requests[c][i].tag);
                busy += results[i].outcome == RUSH_BUSY;
                decided += results[i].outcome == RUSH_OK || results[i].outcome == RUSH_SOLD_OUT;
            }
        }
    }
    close_all(socks);
    cr_expect_eq(busy, 0, "busy below the budget");
    cr_expect_eq(decided, 2 * CONNECTIONS * PER);
    cr_expect_eq(child_stop(&server, SIGTERM), 0);
}
