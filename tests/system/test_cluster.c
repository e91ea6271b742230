/*
 * test_cluster.c — two rushd nodes on three nats-servers (durability replicated), under load from
 * retrying clients, across (a) kill -9 of a leader, (b) SIGSTOP of a leader past its lease, then
 * SIGCONT (then a restart of that node: see below), (d) a planned hand-over of a shard,
 * (c) kill -9 of one nats-server (ARCHITECTURE.md "Cluster").
 *
 * The clients are plain JSON REQ sockets, one per node, each sending reserves with its own keys
 * and following the answers as a gateway would: a redirect goes to the named leader (or, with no
 * leader, to the other node after a pause); outcome_unknown, busy and silence resend the same
 * request with the same key; a key ends only with a decision (ok or sold_out). At the end the
 * surviving leaders must hold exactly what was acknowledged:
 *   - every acknowledged order is there (query_order finds it, confirmed): nothing lost;
 *   - each SKU's confirmed units equal the acknowledged orders of that SKU, and no two keys got
 *     the same order: nothing decided twice;
 *   - available + reserved + confirmed = stock: nothing oversold.
 * With failback = on (the default), (e) the restarted node A gets shard 0 back once it has been
 * up and caught up for 3 leases, and again after (d) handed it to B.
 * Timings are printed, never asserted: the time from the kill to the first decision of the new
 * leader, the fail-back's, and how long decisions paused around the lost nats-server.
 *
 * A second test (failback = off) kills the leader of shard 0 with -9 KILLS times in a row under
 * the same load,
 * restarting each victim (it rejoins as a standby rebuilt from JetStream) and waiting until both
 * nodes agree on every shard's leader, the survivor leading shard 0; so every kill after the first
 * falls on a node that was itself rebuilt from the replicated log. The same checks end it.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "cluster_child.h"

#define CLIENTS 3
#define KEYS_MAX 40000         /* per client; a client stops issuing at this many */
#define DECIDE_MS 30000        /* one key's bound: every retry of it within this */
#define PHASE_MS 30000         /* each phase's bound on the event it waits for */
#define SERVER_LOSS_MS 60000   /* (c): JetStream elections on a loaded machine take longer */
#define ORDERS_PER_PHASE 300   /* acknowledged orders that show a phase made progress */
#define NO_LEADER_PAUSE_MS 100 /* a redirect naming no leader: the documented client pause */
#define KILLS 3                /* leader kills in a row in the second test */

struct client {
    int index;
    pthread_t thread;
    int sockets[NODES];
    int node; /* where its last decision came from */
    uint32_t count;
    uint8_t shard[KEYS_MAX];
    uint64_t order[KEYS_MAX];            /* 0: sold_out */
    char failure[JSON_REPLY_BYTES + 64]; /* set when it stopped on something wrong */
};

static struct client clients[CLIENTS];
static _Atomic uint64_t acknowledged;
static _Atomic int64_t kill_ms;        /* when the watched event happened (0: none) */
static _Atomic int watched_shard;      /* the shard whose next decision is timed */
static _Atomic int watched_node;       /* ... by this node */
static _Atomic int64_t first_after_ms; /* its first decision after kill_ms */

/* ---- a gateway's retries ----------------------------------------------------------------------
 */

/*
 * Sends `text` until a node decides it, following redirects; the deciding node in *node.
 * 0, or -1 when DECIDE_MS passed (the caller fails the test).
 */
static int decide(int sockets[NODES], int *node, const char *text, char *reply, size_t cap)
{
    int target = *node;
    int64_t deadline = rush_clock_monotonic_ms() + DECIDE_MS;
    while (rush_clock_monotonic_ms() < deadline) {
        if (exchange(sockets[target], text, reply, cap) != 0) {
            /* A fresh socket: a REQ socket reused after a receive timeout while its peer comes
             * and goes has tripped nanomsg's own chunk assertion here. */
            char url[CHILD_PATH_BYTES];
            snprintf(url, sizeof url, "%s", nodes[target].json);
            nn_close(sockets[target]);
            sockets[target] = open_socket(url);
            target = (target + 1) % NODES; /* dead, stopped or partitioned: the other one */
            continue;
        }
        if (has(reply, "\"outcome\":\"redirect\"")) {
            const char *leader = strstr(reply, "\"leader\":");
            int index = -1;
            if (leader != NULL && sscanf(leader, "\"leader\":%d", &index) == 1 && index >= 0 &&
                index < NODES && index != target) {
                target = index;
            } else {
                child_sleep_ms(NO_LEADER_PAUSE_MS);
                target = (target + 1) % NODES;
            }
            continue;
        }
        if (has(reply, "\"outcome\":\"outcome_unknown\"") || has(reply, "\"outcome\":\"busy\"")) {
            child_sleep_ms(10); /* the same key again: the answer is the original if it was kept */
            continue;
        }
        *node = target;
        return 0;
    }
    return -1;
}

static void *client_main(void *argument)
{
    struct client *c = argument;
    char text[256], reply[JSON_REPLY_BYTES];
    /* One key per round, until told to stop; bounded by KEYS_MAX. */
    while (!atomic_load(&clients_stop) && c->count < KEYS_MAX) {
        uint32_t i = c->count;
        uint8_t shard = (uint8_t)(i % 2);
        snprintf(text, sizeof text,
                 "{\"op\":\"reserve\",\"sku\":%llu,\"user\":%u,\"qty\":1,\"key\":\"c%d-%u\"}",
                 (unsigned long long)skus[shard], (unsigned)(c->index * KEYS_MAX + i + 1), c->index,
                 i);
        if (decide(c->sockets, &c->node, text, reply, sizeof reply) != 0) {
            snprintf(c->failure, sizeof c->failure, "key c%d-%u undecided after %d ms", c->index, i,
                     DECIDE_MS);
            break;
        }
        c->shard[i] = shard;
        unsigned long long order = 0;
        const char *field = strstr(reply, "\"order\":\"");
        if (has(reply, "\"outcome\":\"ok\"") && field != NULL) {
            sscanf(field, "\"order\":\"%llu\"", &order);
        } else if (!has(reply,
                        "\"outcome\":\"sold_out\"")) { /* asserts belong to the test thread */
            snprintf(c->failure, sizeof c->failure, "key c%d-%u: %s", c->index, i, reply);
            break;
        }
        c->order[i] = order;
        c->count++;
        if (order == 0)
            continue;
        atomic_fetch_add(&acknowledged, 1);
        int64_t now = rush_clock_monotonic_ms();
        int64_t since = atomic_load(&kill_ms);
        int64_t unset = 0;
        if (since != 0 && shard == atomic_load(&watched_shard) &&
            c->node == atomic_load(&watched_node) && now >= since)
            atomic_compare_exchange_strong(&first_after_ms, &unset, now);
    }
    return NULL;
}

static void clients_start(void)
{
    atomic_store(&clients_stop, false);
    for (int i = 0; i < CLIENTS; i++) {
        struct client *c = &clients[i];
        c->index = i;
        for (int n = 0; n < NODES; n++)
            c->sockets[n] = open_socket(nodes[n].json);
        cr_assert_eq(pthread_create(&c->thread, NULL, client_main, c), 0);
    }
}

static void clients_join(void)
{
    atomic_store(&clients_stop, true);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(clients[i].thread, NULL);
}

/* Waits up to bound_ms until `more` orders beyond `from` are acknowledged; the ms, or -1. */
static int64_t wait_acknowledged_within(uint64_t from, uint64_t more, int64_t bound_ms)
{
    int64_t start = rush_clock_monotonic_ms();
    while (rush_clock_monotonic_ms() - start < bound_ms) {
        if (atomic_load(&acknowledged) >= from + more)
            return rush_clock_monotonic_ms() - start;
        child_sleep_ms(5);
    }
    print_logs();
    return -1;
}

static int64_t wait_acknowledged(uint64_t from, uint64_t more)
{
    return wait_acknowledged_within(from, more, PHASE_MS);
}

/* Times the first decision on `shard` by `node` after now; call before the event. */
static void watch(int shard, int node)
{
    atomic_store(&first_after_ms, 0);
    atomic_store(&watched_shard, shard);
    atomic_store(&watched_node, node);
    atomic_store(&kill_ms, rush_clock_monotonic_ms());
}

static int64_t watched_within_ms(int64_t bound_ms)
{
    int64_t start = atomic_load(&kill_ms);
    while (rush_clock_monotonic_ms() - start < bound_ms) {
        int64_t first = atomic_load(&first_after_ms);
        if (first != 0)
            return first - start;
        child_sleep_ms(5);
    }
    print_logs();
    return -1;
}

static int64_t watched_ms(void)
{
    return watched_within_ms(PHASE_MS);
}

/* ---- the checks -------------------------------------------------------------------------------
 */

static int order_compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t field_i64(const char *reply, const char *name)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", name);
    const char *at = strstr(reply, pattern);
    cr_assert_not_null(at, "no %s in %s", name, reply);
    return strtoll(at + strlen(pattern), NULL, 10);
}

static void check_ledgers(void)
{
    int sockets[NODES], node = 0;
    for (int n = 0; n < NODES; n++)
        sockets[n] = open_socket(nodes[n].json);
    char text[256], reply[JSON_REPLY_BYTES];
    uint64_t acknowledged_by_shard[2] = {0, 0}, total = 0;
    for (int i = 0; i < CLIENTS; i++)
        total += clients[i].count;
    uint64_t *orders = calloc(total + 1, sizeof *orders);
    cr_assert_not_null(orders);
    uint64_t count = 0;
    for (int i = 0; i < CLIENTS; i++) {
        for (uint32_t k = 0; k < clients[i].count; k++) {
            if (clients[i].order[k] == 0)
                continue;
            acknowledged_by_shard[clients[i].shard[k]]++;
            orders[count++] = clients[i].order[k];
            snprintf(text, sizeof text, "{\"op\":\"query_order\",\"order\":\"%llu\"}",
                     (unsigned long long)clients[i].order[k]);
            cr_assert_eq(decide(sockets, &node, text, reply, sizeof reply), 0);
            cr_assert(has(reply, "\"state\":\"confirmed\""), "acknowledged order lost: %s", reply);
        }
    }
    qsort(orders, count, sizeof *orders, order_compare);
    for (uint64_t i = 1; i < count; i++)
        cr_assert_neq(orders[i], orders[i - 1], "two keys got order %llu",
                      (unsigned long long)orders[i]);
    free(orders);
    for (int s = 0; s < 2; s++) {
        snprintf(text, sizeof text, "{\"op\":\"query_sku\",\"sku\":%llu}",
                 (unsigned long long)skus[s]);
        cr_assert_eq(decide(sockets, &node, text, reply, sizeof reply), 0);
        int64_t available = field_i64(reply, "available"), reserved = field_i64(reply, "reserved"),
                confirmed = field_i64(reply, "confirmed");
        cr_assert_eq(confirmed, (int64_t)acknowledged_by_shard[s],
                     "sku %llu: %lld confirmed, %llu acknowledged: %s", (unsigned long long)skus[s],
                     (long long)confirmed, (unsigned long long)acknowledged_by_shard[s], reply);
        cr_assert_eq(available + reserved + confirmed, STOCK, "oversold: %s", reply);
    }
    printf("cluster: %llu orders acknowledged (%llu keys), every one found once on the leaders\n",
           (unsigned long long)count, (unsigned long long)total);
    for (int n = 0; n < NODES; n++)
        nn_close(sockets[n]);
}

/* Asks node n directly (no retry) for a SKU of `shard`; the reply. */
static void ask(int n, int shard, char *reply, size_t cap)
{
    char text[160];
    snprintf(text, sizeof text, "{\"op\":\"query_sku\",\"sku\":%llu}",
             (unsigned long long)skus[shard]);
    int sock = open_socket(nodes[n].json);
    cr_assert_eq(exchange(sock, text, reply, cap), 0, "node %d did not answer", n);
    nn_close(sock);
}

/*
 * Waits until both nodes name the same live leader for every shard, `leader` for shard 0; false
 * at PHASE_MS. The other shard may have gone back to its preferred node (a node takes a free
 * lease of a shard it does not prefer only once it has run two leases).
 */
static bool wait_agreed(int leader)
{
    int64_t deadline = rush_clock_monotonic_ms() + PHASE_MS;
    while (rush_clock_monotonic_ms() < deadline) {
        bool agreed = leader_seen_by(0, 0) == leader && leader_seen_by(1, 0) == leader;
        int other = leader_seen_by(0, 1);
        agreed = agreed && other >= 0 && leader_seen_by(1, 1) == other;
        if (agreed)
            return true;
        child_sleep_ms(50);
    }
    print_logs();
    return false;
}

/* ---- the tests --------------------------------------------------------------------------------
 */

TestSuite(cluster, .fini = cluster_cleanup, .timeout = 180);

Test(cluster, leader_loss_fencing_and_a_lost_server_keep_every_acknowledged_order)
{
    failback = "on";
    cluster_start();
    clients_start();
    cr_assert_geq(wait_acknowledged(0, ORDERS_PER_PHASE), 0, "no load before the kill");

    /* (a) kill -9 node A, which leads shard 0: B takes it over. */
    watch(0, 1);
    kill(nodes[0].pid, SIGKILL);
    cr_assert(child_wait_exit(nodes[0].pid, CHILD_EXIT_MS) == 128 + SIGKILL);
    nodes[0].pid = -1;
    int64_t failover_ms = watched_ms();
    cr_assert_geq(failover_ms, 0, "shard 0 got no new leader within %d ms", PHASE_MS);
    printf("cluster: (a) kill -9 of the leader of shard 0 -> first decision by the new leader "
           "after %lld ms (lease %d ms)\n",
           (long long)failover_ms, LEASE_MS * slowness());
    child_run(&nodes[0], NULL); /* back as a standby of both shards */

    /* (e) fail-back: A, up and caught up for 3 leases, gets shard 0 back (a planned hand-over
     * by B) while the load runs. */
    watch(0, 0);
    /* A rebuild, 3 leases up and caught up, a hand-over, and a second offer at twice the wait
     * if the first was not taken: longer than a phase once the lease is scaled. */
    int64_t failback_ms = watched_within_ms(PHASE_MS + 10 * LEASE_MS * slowness());
    cr_assert_geq(failback_ms, 0, "shard 0 did not go back to node A");
    printf("cluster: (e) node A restarted -> shard 0 back on it (fail-back) after %lld ms\n",
           (long long)failback_ms);
    cr_assert_geq(wait_acknowledged(atomic_load(&acknowledged), ORDERS_PER_PHASE), 0);

    /* (b) SIGSTOP node B (leading shard 1) past its lease: A takes it; B, continued, is fenced
     * and answers redirect. */
    watch(1, 0);
    kill(nodes[1].pid, SIGSTOP);
    int64_t stopped_ms = watched_ms();
    cr_assert_geq(stopped_ms, 0, "shard 1 got no new leader while its leader was stopped");
    child_sleep_ms(LEASE_MS *
                   slowness()); /* past the lease for certain, whatever the clients saw */
    kill(nodes[1].pid, SIGCONT);
    printf("cluster: (b) SIGSTOP of the leader of shard 1 -> first decision by the new leader "
           "after %lld ms\n",
           (long long)stopped_ms);
    char reply[JSON_REPLY_BYTES];
    int64_t deadline = rush_clock_monotonic_ms() + PHASE_MS;
    do { /* the redirect names the new leader once B has read its lease again */
        ask(1, 1, reply, sizeof reply);
        cr_assert(has(reply, "\"outcome\":\"redirect\""), "a fenced node decided: %s", reply);
    } while (!has(reply, "\"leader\":0") && rush_clock_monotonic_ms() < deadline);
    cr_assert(has(reply, "\"leader\":0"), "%s", reply);
    cr_assert_geq(wait_acknowledged(atomic_load(&acknowledged), ORDERS_PER_PHASE), 0);

    /* B may hold a batch the log refused (decided before the stop, appended by A since):
     * diverged on that shard until a restart, which rebuilds it from the replicated log. */
    cr_assert_eq(child_stop(&nodes[1], SIGTERM), 0, "node B did not stop cleanly");
    child_run(&nodes[1], NULL);
    cr_assert_geq(wait_acknowledged(atomic_load(&acknowledged), ORDERS_PER_PHASE), 0);

    /* (d) a planned hand-over of shard 0 to the node that does not lead it, under load. */
    int target = -1;
    for (int leader = 0; leader < NODES && target < 0; leader++) {
        char command[256];
        snprintf(command, sizeof command,
                 "{\"token\":\"%s\",\"op\":\"cluster_handover\",\"shard\":0,\"node\":\"%c\","
                 "\"operator\":\"test\",\"reason\":\"maintenance\"}",
                 CHILD_TOKEN, 'A' + (1 - leader));
        watch(0, 1 - leader);
        cr_assert_eq(child_json(nodes[leader].admin, command, reply, sizeof reply, 5000), 0);
        if (has(reply, "\"outcome\":\"ok\""))
            target = 1 - leader;
    }
    cr_assert_geq(target, 0, "neither node leads shard 0: %s", reply);
    int64_t handover_ms = watched_ms();
    cr_assert_geq(handover_ms, 0, "shard 0 did not move to node %d", target);
    printf("cluster: (d) hand-over of shard 0 -> first decision by node %c after %lld ms\n",
           'A' + target, (long long)handover_ms);
    /* ... which lasts while its preferred node is away: A is up, so fail-back returns it. */
    watch(0, 0);
    cr_assert_geq(watched_within_ms(PHASE_MS + 10 * LEASE_MS * slowness()), 0,
                  "shard 0 did not go back to node A after the hand-over");

    /* (c) kill -9 one nats-server under load: decisions go on after a pause. */
    uint64_t before = atomic_load(&acknowledged);
    int64_t killed_ms = rush_clock_monotonic_ms();
    nats_kill(&nats, 0, SIGKILL);
    int64_t resumed_ms = wait_acknowledged_within(before, ORDERS_PER_PHASE, SERVER_LOSS_MS);
    cr_assert_geq(resumed_ms, 0, "decisions stopped after a nats-server was killed");
    printf("cluster: (c) kill -9 of a nats-server -> %d more orders acknowledged within %lld ms\n",
           ORDERS_PER_PHASE, (long long)(rush_clock_monotonic_ms() - killed_ms));

    clients_join();
    for (int i = 0; i < CLIENTS; i++)
        cr_assert_eq(clients[i].failure[0], '\0', "client %d: %s", i, clients[i].failure);
    check_ledgers();
}

Test(cluster, three_leader_kills_in_a_row_lose_nothing_and_decide_nothing_twice)
{
    failback = "off"; /* the survivor keeps shard 0: the next kill falls on a rebuilt node */
    cluster_start();
    clients_start();
    cr_assert_geq(wait_acknowledged(0, ORDERS_PER_PHASE), 0, "no load before the first kill");
    for (int round = 0; round < KILLS; round++) {
        int victim = -1;
        for (int64_t deadline = rush_clock_monotonic_ms() + PHASE_MS;
             victim < 0 && rush_clock_monotonic_ms() < deadline;)
            victim = leader_seen_by(round % NODES, 0);
        cr_assert_geq(victim, 0, "kill %d: nobody leads shard 0", round + 1);
        int heir = 1 - victim;
        watch(0, heir);
        kill(nodes[victim].pid, SIGKILL);
        cr_assert(child_wait_exit(nodes[victim].pid, CHILD_EXIT_MS) == 128 + SIGKILL);
        nodes[victim].pid = -1;
        int64_t takeover_ms = watched_ms();
        cr_assert_geq(takeover_ms, 0, "kill %d: shard 0 got no new leader within %d ms", round + 1,
                      PHASE_MS);
        printf("cluster: kill %d of %d: kill -9 of node %c (leader of shard 0) -> first decision "
               "by node %c after %lld ms (lease %d ms)\n",
               round + 1, KILLS, 'A' + victim, 'A' + heir, (long long)takeover_ms,
               LEASE_MS * slowness());
        fflush(stdout);
        child_run(&nodes[victim], NULL); /* rebuilt from JetStream, a standby of both shards */
        cr_assert(wait_agreed(heir), "kill %d: the nodes do not agree that %c leads shard 0",
                  round + 1, 'A' + heir);
        cr_assert_geq(wait_acknowledged(atomic_load(&acknowledged), ORDERS_PER_PHASE), 0,
                      "kill %d: no load after the restart", round + 1);
    }
    clients_join();
    for (int i = 0; i < CLIENTS; i++)
        cr_assert_eq(clients[i].failure[0], '\0', "client %d: %s", i, clients[i].failure);
    check_ledgers();
}
