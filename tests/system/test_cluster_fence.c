/*
 * test_cluster_fence.c — the promotion's fence (ARCHITECTURE.md "Cluster", "Fencing argument"):
 * two rushd nodes on three nats-servers (cluster_child.h). Each first promotion appends a fence on
 * its empty subject; after one order on shard 0, the leader of shard 0 is killed with -9 and the
 * other node takes the shard: the subject's last message is then its fence (no payload, header
 * Rush-Fence "<node> <lsn>" naming the lsn of the order), a batch appended by a stale writer that
 * expects the end the new leader read (the sequence of the order's message, as the killed
 * leader's late batch would) is refused with JetStream's error 10071, and the new leader's own
 * next decision lands right after the fence, at the next lsn.
 */
#include <nats/nats.h>

#include "cluster_child.h"
#include "rush/replicated.h"

#define PHASE_MS 30000 /* the bound on each wait for an event */

static natsConnection *connection;
static jsCtx *js;
static char stream[32], subject[48];

static void js_cleanup(void)
{
    jsCtx_Destroy(js);
    natsConnection_Destroy(connection);
    cluster_cleanup();
}

/* The node both nodes name as the leader of `shard` (one of them dead: the live one's view). */
static int wait_leader(int shard, int live)
{
    for (int64_t deadline = rush_clock_monotonic_ms() + PHASE_MS;
         rush_clock_monotonic_ms() < deadline; child_sleep_ms(20)) {
        int leader = leader_seen_by(live, shard);
        if (leader >= 0 && nodes[leader].pid > 0 && leader_seen_by(leader, shard) == leader)
            return leader;
    }
    print_logs();
    return -1;
}

/* The subject's last message (the caller destroys it). */
static natsMsg *last_message(void)
{
    natsMsg *msg = NULL;
    jsErrCode code = 0;
    cr_assert_eq(js_GetLastMsg(&msg, js, stream, subject, NULL, &code), NATS_OK, "code %d",
                 (int)code);
    return msg;
}

/* Asserts msg is a fence by `node` (-1: any) after `lsn`. */
static void assert_fence(natsMsg *msg, int node, uint64_t lsn)
{
    cr_assert_eq(natsMsg_GetDataLength(msg), 0, "a fence has no payload");
    const char *value = NULL;
    cr_assert_eq(natsMsgHeader_Get(msg, RUSH_REPLICATED_FENCE_HEADER, &value), NATS_OK);
    uint64_t named = UINT64_MAX;
    cr_assert_eq(rush_replicated_fence_lsn(value, &named), 0, "%s", value);
    cr_assert_eq(named, lsn, "%s", value);
    if (node < 0)
        return;
    char want[RUSH_REPLICATED_FENCE_BYTES];
    cr_assert(rush_replicated_fence_put(want, sizeof want, node == 0 ? "A" : "B", lsn));
    cr_assert_str_eq(value, want);
}

/* One reserve on shard 0 through `leader`, which must decide it. */
static void reserve(int leader, unsigned user)
{
    char text[160], reply[JSON_REPLY_BYTES];
    snprintf(text, sizeof text,
             "{\"op\":\"reserve\",\"sku\":%llu,\"user\":%u,\"qty\":1,\"key\":\"k%u\"}",
             (unsigned long long)skus[0], user, user);
    cr_assert_eq(child_json(nodes[leader].json, text, reply, sizeof reply, PHASE_MS), 0);
    cr_assert(has(reply, "\"outcome\":\"ok\""), "%s", reply);
}

/* The lsn a batch message leaves the log at. */
static uint64_t end_lsn(natsMsg *msg)
{
    uint64_t lsn = 0;
    cr_assert_eq(rush_replicated_end_lsn(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                                         NULL, &lsn),
                 0, "a batch message");
    return lsn;
}

TestSuite(cluster_fence, .fini = js_cleanup, .timeout = 120);

Test(cluster_fence, a_promotion_fences_the_log_and_a_stale_writer_is_refused)
{
    failback = "off";
    cluster_start();
    snprintf(stream, sizeof stream, "t%d", (int)getpid());
    snprintf(subject, sizeof subject, "%s.shard.0", stream);
    cr_assert_eq(natsConnection_ConnectTo(&connection, nats.urls), NATS_OK);
    cr_assert_eq(natsConnection_JetStream(&js, connection, NULL), NATS_OK);
    int first = wait_leader(0, 0);
    cr_assert_geq(first, 0, "nobody leads shard 0");

    /* The first promotion, on an empty subject: a fence after lsn 0 is its first message (by
     * whichever node promoted first). */
    jsDirectGetMsgOptions options = {.Sequence = 1, .NextBySubject = subject};
    natsMsg *msg = NULL;
    cr_assert_eq(js_DirectGetMsg(&msg, js, stream, NULL, &options), NATS_OK);
    assert_fence(msg, -1, 0);
    natsMsg_Destroy(msg);

    reserve(first, 1);
    msg = last_message();
    uint64_t order_seq = natsMsg_GetSequence(msg), order_lsn = end_lsn(msg);
    natsMsg_Destroy(msg);
    cr_assert_geq(order_lsn, 1);

    /* The leader dies; the other node reads the end (order_seq), then fences it. */
    kill(nodes[first].pid, SIGKILL);
    cr_assert(child_wait_exit(nodes[first].pid, CHILD_EXIT_MS) == 128 + SIGKILL);
    nodes[first].pid = -1;
    int heir = wait_leader(0, 1 - first);
    cr_assert_eq(heir, 1 - first, "the survivor does not lead shard 0");
    msg = last_message();
    uint64_t fence_seq = natsMsg_GetSequence(msg);
    assert_fence(msg, heir, order_lsn);
    natsMsg_Destroy(msg);
    cr_assert_gt(fence_seq, order_seq);

    /* A late batch of the old leader, expecting the end the new leader read: refused. */
    uint8_t payload[sizeof(struct rush_replicated_record) + sizeof(struct rush_event)];
    struct rush_event event = {.type = RUSH_EV_ORDER_RESERVED, .qty = 1, .sku_id = skus[0]};
    size_t len = rush_replicated_put(payload, order_lsn + 1, 1, &event, 1);
    cr_assert_eq(natsMsg_Create(&msg, subject, NULL, (const char *)payload, (int)len), NATS_OK);
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)order_seq);
    natsMsgHeader_Set(msg, "Nats-Expected-Last-Subject-Sequence", text);
    jsErrCode code = 0;
    cr_assert_neq(js_PublishMsg(NULL, js, msg, NULL, &code), NATS_OK);
    natsMsg_Destroy(msg);
    cr_assert_eq(code, JSStreamWrongLastSequenceErr, "refused as a stale writer: %d", (int)code);

    /* The new leader decides on: its batch follows the fence at the next lsn. */
    reserve(heir, 2);
    options = (jsDirectGetMsgOptions){.Sequence = fence_seq + 1, .NextBySubject = subject};
    cr_assert_eq(js_DirectGetMsg(&msg, js, stream, NULL, &options), NATS_OK);
    size_t at = 0;
    struct rush_replicated_view record;
    cr_assert_eq(rush_replicated_next(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &at,
                                      0, &record),
                 1);
    cr_assert_eq(record.lsn, order_lsn + 1, "lsns grow across the fence");
    natsMsg_Destroy(msg);
}
