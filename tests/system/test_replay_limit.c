/*
 * test_replay_limit.c — the biggest REPLAY reply reaches a plain nanomsg client.
 *
 * A client written from PROTOCOL.md section 11 with a default REQ socket (nanomsg's receive
 * limit NN_RCVMAXSIZE is 1 MiB unless raised) asks rushd's replay endpoint for the most events a
 * request may ask for. The reply must arrive whole: RUSH_STREAM_REPLAY_MAX events are capped so
 * that header and events fit the default limit. Checked with a C REQ socket left at its defaults
 * and with nanocat reading the request from a file; one more than the limit is answered
 * bad_request (a reply, not silence).
 */
#include <criterion/criterion.h>

#include "rush/engine.h"
#include "rush/stream.h"
#include "rush/wire.h"
#include "rushd_child.h"

#define SKU_INSTANT 3001 /* rushd_child.h: unlimited, pay_ttl 0: a reserve is a confirmed order */
#define ORDERS 20000     /* more events than one replay reply holds */
#define PER_MESSAGE 10000
#define HEAD_WAIT_MS 20000
#define REPLY_TIMEOUT_MS 10000

TestSuite(replay_limit, .fini = rushd_cleanup, .timeout = 120);

static void order_many(void)
{
    int sock = nn_socket(AF_SP, NN_REQ);
    cr_assert(sock >= 0);
    int timeout = REPLY_TIMEOUT_MS;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof timeout);
    cr_assert(nn_connect(sock, rushd.orders) >= 0);
    static struct rush_request requests[PER_MESSAGE];
    static struct rush_result results[PER_MESSAGE];
    static uint8_t message[RUSH_WIRE_MESSAGE_BYTES_MAX];
    for (uint32_t m = 0; m < ORDERS / PER_MESSAGE; m++) {
        for (uint32_t i = 0; i < PER_MESSAGE; i++) {
            uint64_t n = (uint64_t)m * PER_MESSAGE + i + 1;
            requests[i] = (struct rush_request){
                .op = RUSH_OP_RESERVE, .qty = 1, .sku_id = SKU_INSTANT, .user_id = n, .tag = n};
            memcpy(requests[i].key.bytes, &n, sizeof n);
            requests[i].key.bytes[15] = 0x77;
        }
        int len = rush_wire_encode_requests(message, sizeof message, m + 1, requests, PER_MESSAGE);
        cr_assert(len > 0 && nn_send(sock, message, (size_t)len, 0) == len);
        void *reply = NULL;
        int n = nn_recv(sock, &reply, NN_MSG, 0);
        cr_assert(n > 0, "no reply: %s", nn_strerror(errno));
        struct rush_wire_view view;
        struct rush_wire_error error;
        cr_assert(rush_wire_decode(reply, (size_t)n, &view, &error) == 0, "%s", error.text);
        cr_assert(view.kind == RUSH_WIRE_RESULT && view.count == PER_MESSAGE);
        cr_assert(rush_wire_view_copy(&view, results, sizeof results) > 0);
        nn_freemsg(reply);
        for (uint32_t i = 0; i < PER_MESSAGE; i++)
            cr_assert(results[i].outcome == RUSH_OK, "%s", rush_outcome_name(results[i].outcome));
    }
    nn_close(sock);
}

/* One request on a REQ socket left at nanomsg's defaults; the reply's length, or -1. */
static int plain_exchange(const struct rush_stream_request *request, struct rush_stream_view *view,
                          void **reply)
{
    int sock = nn_socket(AF_SP, NN_REQ);
    cr_assert(sock >= 0);
    int timeout = REPLY_TIMEOUT_MS;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof timeout);
    cr_assert(nn_connect(sock, rushd.replay) >= 0);
    cr_assert(nn_send(sock, request, sizeof *request, 0) == (int)sizeof *request);
    int n = nn_recv(sock, reply, NN_MSG, 0);
    nn_close(sock);
    if (n < 0)
        return -1;
    char why[200];
    cr_assert(rush_stream_decode(*reply, (size_t)n, view, why, sizeof why) == 0, "%s", why);
    return n;
}

/* Waits until the shard's head seq reaches `seq` (the publisher reads the log behind the shard). */
static void wait_head(uint32_t shard, uint64_t seq)
{
    int64_t deadline = rush_clock_monotonic_ms() + HEAD_WAIT_MS;
    for (;;) {
        struct rush_stream_request info;
        rush_stream_request_init(&info, RUSH_STREAM_INFO, 0, 0, 0);
        struct rush_stream_view view;
        void *reply = NULL;
        cr_assert(plain_exchange(&info, &view, &reply) > 0, "INFO answered");
        struct rush_stream_shard_info shard_info;
        rush_stream_view_info(&view, shard, &shard_info);
        nn_freemsg(reply);
        if (shard_info.head_seq >= seq)
            return;
        cr_assert(rush_clock_monotonic_ms() < deadline, "head seq %lu, waiting for %lu",
                  (unsigned long)shard_info.head_seq, (unsigned long)seq);
        child_sleep_ms(20);
    }
}

static bool have_nanocat(void)
{
    return system("command -v nanocat >/dev/null 2>&1") == 0;
}

Test(replay_limit, the_biggest_replay_reaches_a_plain_client)
{
    rushd.durability = "fsync";
    rushd_start(false);
    order_many();
    uint32_t shard = rush_engine_shard_of_sku(2, SKU_INSTANT);
    wait_head(shard, RUSH_STREAM_REPLAY_MAX);

    struct rush_stream_request replay;
    rush_stream_request_init(&replay, RUSH_STREAM_REPLAY, shard, 1, RUSH_STREAM_REPLAY_MAX);
    struct rush_stream_view view;
    void *reply = NULL;
    int n = plain_exchange(&replay, &view, &reply);
    cr_assert(n > 0, "a default REQ socket received no reply to the biggest replay");
    cr_assert_eq(view.header.status, RUSH_STREAM_OK);
    cr_assert_eq(view.header.count, RUSH_STREAM_REPLAY_MAX);
    cr_assert_eq((size_t)n, RUSH_STREAM_MESSAGE_BYTES_MAX);
    cr_assert_leq(n, 1024 * 1024, "within nanomsg's default NN_RCVMAXSIZE");
    struct rush_stream_event last;
    rush_stream_view_event(&view, RUSH_STREAM_REPLAY_MAX - 1, &last);
    cr_assert_eq(last.seq, RUSH_STREAM_REPLAY_MAX);
    nn_freemsg(reply);

    /* one more than the limit: a bad_request reply, never silence */
    rush_stream_request_init(&replay, RUSH_STREAM_REPLAY, shard, 1, RUSH_STREAM_REPLAY_MAX + 1);
    cr_assert(plain_exchange(&replay, &view, &reply) > 0);
    cr_assert_eq(view.header.status, RUSH_STREAM_BAD_REQUEST);
    nn_freemsg(reply);

    if (!have_nanocat()) {
        cr_log_warn("nanocat not installed: its half of the check skipped");
        return;
    }
    char request_path[CHILD_PATH_BYTES], out_path[CHILD_PATH_BYTES];
    char command[4 * CHILD_PATH_BYTES];
    snprintf(request_path, sizeof request_path, "%s/replay.bin", rushd.dir);
    snprintf(out_path, sizeof out_path, "%s/replay.out", rushd.dir);
    rush_stream_request_init(&replay, RUSH_STREAM_REPLAY, shard, 1, RUSH_STREAM_REPLAY_MAX);
    FILE *file = fopen(request_path, "wb");
    cr_assert(file != NULL && fwrite(&replay, sizeof replay, 1, file) == 1);
    fclose(file);
    snprintf(command, sizeof command,
             "timeout 20 nanocat --req --connect '%s' -F '%s' --raw --recv-timeout 10 >'%s'",
             rushd.replay, request_path, out_path);
    cr_assert_eq(system(command), 0, "nanocat: %s", command);
    struct stat st;
    cr_assert_eq(stat(out_path, &st), 0);
    cr_assert_eq((size_t)st.st_size, RUSH_STREAM_MESSAGE_BYTES_MAX,
                 "nanocat received the whole reply (%ld bytes)", (long)st.st_size);
}
