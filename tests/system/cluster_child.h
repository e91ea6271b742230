/*
 * cluster_child.h — two rushd nodes (A, B) on three nats-servers with durability replicated, as
 * the cluster system tests start them (ARCHITECTURE.md "Cluster"): tests/system/test_cluster.c
 * (its own retrying clients) and tests/system/test_cluster_verify.c (rush-loadgen --nodes
 * --verify). Each node's campaign holds two shards, a SKU of each (skus[s], STOCK units, pay TTL
 * 0) and a [cluster] section naming both nodes' binary orders endpoints in node order (A = 0,
 * B = 1: the leader index of a redirect); every endpoint is an ipc file in the node's own
 * directory (rushd_child.h). leader_seen_by() asks a node who leads a shard.
 * tests/system/test_relay_cluster.c starts the same cluster under its own directory names and a
 * larger orders table (cluster_dirs, cluster_orders_max) and reads its log (cluster_stream).
 *
 * One process runs one cluster at a time: the state is file-scope, like rushd_child.h's.
 */
#ifndef RUSH_TEST_CLUSTER_CHILD_H
#define RUSH_TEST_CLUSTER_CHILD_H

#include <stdatomic.h>

#include "nats_child.h"
#include "rush/engine.h"
#include "rushd_child.h"

#define NODES 2
#define LEASE_MS 1000 /* times RUSH_TEST_SCALE: see slowness() */
#define STOCK 1000000
#define EXCHANGE_MS 300 /* one request's wait before trying another node (scaled too) */
#define JSON_REPLY_BYTES 1024

static struct nats_servers nats;

/*
 * How many times slower than a release build this one runs: RUSH_TEST_SCALE (1 to 8; the
 * sanitizer stage sets 4). The lease and a request's wait grow with it, so that a lease measures
 * lost nodes and servers, not the sanitizer's cost: under ASan, on two loaded cores, the lease
 * bucket's updates after a nats-server kill took longer than a 1 s lease and the leases churned.
 * The failover figures in the README are from release builds with the 1 s lease.
 */
static inline int slowness(void)
{
    const char *text = getenv("RUSH_TEST_SCALE");
    int scale = text != NULL ? atoi(text) : 1;
    return scale < 1 ? 1 : scale > 8 ? 8 : scale;
}
static struct rushd_child nodes[NODES];
static char nats_dir[128];
static uint64_t skus[2];                     /* sku_of_shard[s]: a SKU on shard s of 2 */
static const char *failback = "on";          /* [cluster] failback for the next cluster_start */
static const char *cluster_dirs = "cluster"; /* the nodes' directories: <cluster_dirs>A, B */
static uint32_t cluster_orders_max = 131072; /* the campaign's orders_max and user_limits_max */
static char cluster_stream[32];              /* the nodes' [cluster] stream: t<pid> */
static int cluster_lease_ms;     /* the nodes' [cluster] lease_ms; 0: LEASE_MS * slowness() */
static atomic_bool clients_stop; /* a test's own load threads stop (cluster_cleanup sets it) */

/* ---- the cluster --------------------------------------------------------------------------- */

static inline void write_node(int n)
{
    struct rushd_child *c = &nodes[n];
    static char extra[4096], shape[256];
    snprintf(
        extra, sizeof extra,
        "[cluster]\nnode = %s\nnodes = A=%s, B=%s\nnats = %s\nlease_ms = %d\nstream = %s\n"
        "failback = %s\n\n"
        "[sku %llu]\nname = x\nstock = %d\nprice = 100\nstart = now\nend = never\npay_ttl = 0\n"
        "user_qty_max = 1\n\n"
        "[sku %llu]\nname = y\nstock = %d\nprice = 100\nstart = now\nend = never\npay_ttl = 0\n"
        "user_qty_max = 1\n",
        n == 0 ? "A" : "B", nodes[0].orders, nodes[1].orders, nats.urls,
        cluster_lease_ms > 0 ? cluster_lease_ms : LEASE_MS * slowness(), cluster_stream, failback,
        (unsigned long long)skus[0], STOCK, (unsigned long long)skus[1], STOCK);
    snprintf(shape, sizeof shape,
             "shards = 2\nring_slots = 64\norders_max = %u\ngroups_max = 1024\n"
             "keys_max = 262144\nuser_limits_max = %u\n",
             cluster_orders_max, cluster_orders_max);
    c->durability = "replicated";
    child_write_campaign(c, shape, CHILD_TOKEN, extra);
}

/* `count` nats-servers in a new directory of their own (nats_dir). */
static inline void cluster_nats_start(int count)
{
    snprintf(nats_dir, sizeof nats_dir, "/tmp/rush-test-nats-XXXXXX");
    cr_assert(mkdtemp(nats_dir) != NULL);
    nats_start(&nats, nats_dir, count);
}

static inline void cluster_start(void)
{
    signal(SIGPIPE, SIG_IGN);
    for (uint32_t s = 0; s < 2; s++)
        for (uint64_t id = 100; skus[s] == 0; id++)
            if (rush_engine_shard_of_sku(2, id) == s)
                skus[s] = id;
    snprintf(cluster_stream, sizeof cluster_stream, "t%d", (int)getpid());
    cluster_nats_start(NATS_SERVERS_MAX);
    for (int n = 0; n < NODES; n++) {
        char name[64];
        snprintf(name, sizeof name, "%s%c", cluster_dirs, 'A' + n);
        child_make_dir(&nodes[n], name);
    }
    for (int n = 0; n < NODES; n++)
        write_node(n);
    for (int n = 0; n < NODES; n++)
        nodes[n].pid = child_exec(&nodes[n], NULL, NULL);
    for (int n = 0; n < NODES; n++) {
        int rc = child_wait_ready(&nodes[n], CHILD_READY_MS);
        if (rc != 0)
            child_print_log(&nodes[n]);
        cr_assert_eq(rc, 0, "node %d did not start", n);
    }
}

static inline void cluster_cleanup(void)
{
    atomic_store(&clients_stop, true);
    for (int n = 0; n < NODES; n++)
        child_cleanup(&nodes[n]);
    nats_stop(&nats);
    if (nats_dir[0] != '\0') {
        char command[256];
        snprintf(command, sizeof command, "rm -rf '%s'", nats_dir);
        int rc = system(command);
        (void)rc;
    }
}

static inline int open_socket(const char *url)
{
    int sock = nn_socket(AF_SP, NN_REQ);
    cr_assert(sock >= 0);
    int timeout_ms = EXCHANGE_MS * slowness();
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
    cr_assert(nn_connect(sock, url) >= 0);
    return sock;
}

/* One exchange; 0 with the reply, -1 when the node did not answer in time. */
static inline int exchange(int sock, const char *text, char *reply, size_t cap)
{
    if (nn_send(sock, text, strlen(text), 0) < 0)
        return -1;
    void *message = NULL;
    int len = nn_recv(sock, &message, NN_MSG, 0);
    if (len < 0)
        return -1;
    snprintf(reply, cap, "%.*s", len, (const char *)message);
    nn_freemsg(message);
    return 0;
}

static inline bool has(const char *reply, const char *text)
{
    return strstr(reply, text) != NULL;
}

/* What a failed wait shows: both nodes' logs. */
static inline void print_logs(void)
{
    for (int n = 0; n < NODES; n++) {
        fprintf(stderr, "---- node %c ----\n", 'A' + n);
        child_print_log(&nodes[n]);
    }
}

/*
 * The node that node n says leads `shard` (itself when it answers, the named one on a redirect),
 * or -1 when n did not answer in time or named no leader.
 */
static inline int leader_seen_by(int n, int shard)
{
    char text[160], reply[JSON_REPLY_BYTES];
    snprintf(text, sizeof text, "{\"op\":\"query_sku\",\"sku\":%llu}",
             (unsigned long long)skus[shard]);
    int sock = open_socket(nodes[n].json);
    int rc = exchange(sock, text, reply, sizeof reply);
    nn_close(sock);
    if (rc != 0)
        return -1;
    if (!has(reply, "\"outcome\":\"redirect\""))
        return n;
    const char *leader = strstr(reply, "\"leader\":");
    int index = -1;
    if (leader == NULL || sscanf(leader, "\"leader\":%d", &index) != 1 || index < 0 ||
        index >= NODES)
        return -1;
    return index;
}

#endif
