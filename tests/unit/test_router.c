/*
 * librush's router (rush/client.h, "Several nodes: the router") against fake nodes: each node is
 * a nanomsg REP socket on its own thread that decides the requests of the shards it leads (an ok
 * result naming the node) and answers the others with the redirect of the cluster design
 * (outcome RUSH_REDIRECT, reason RUSH_REASON_WRONG_SHARD, state = the shard, qty = the leader's
 * index or UINT32_MAX while none leads). Checks: requests reach their shard's leader, redirects
 * are followed with the same request and key and learnt, a leaderless shard is waited for, a
 * silent node is routed around, and a redirect loop or a shard that never gets a leader ends in
 * -EHOSTUNREACH within the configured bounds while the other requests are answered. Every key
 * is decided exactly once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rush/client.h"
#include "rush/wire.h"

#define NODES 3
#define SHARDS 4
#define LEADER_NONE (-1)     /* no node leads: answer qty UINT32_MAX */
#define LEADER_PINGPONG (-2) /* each node names the next one: a loop */
#define DECIDED_MAX 4096

struct fake_node {
    int index;
    int socket;
    char url[128];
    pthread_t thread;
    atomic_bool mute; /* receive, never answer (a dead node) */
    atomic_uint received;
};

static struct {
    char dir[64];
    struct fake_node nodes[NODES];
    atomic_bool stop;
    _Atomic int leader[SHARDS];
    _Atomic int leaderless_answers_left[SHARDS]; /* answer "no leader" this many times first */
    pthread_mutex_t lock;
    rush_key decided[DECIDED_MAX]; /* every key decided, by any node */
    uint32_t decided_count;
} fake;

static void decide(const struct fake_node *node, const struct rush_request *request,
                   struct rush_result *result)
{
    uint32_t shard = rush_wire_shard_of(SHARDS, request);
    int leader = atomic_load(&fake.leader[shard]);
    if (leader >= 0 && atomic_load(&fake.leaderless_answers_left[shard]) > 0) {
        atomic_fetch_sub(&fake.leaderless_answers_left[shard], 1);
        leader = LEADER_NONE;
    }
    *result = (struct rush_result){.tag = request->tag};
    if (leader == node->index) {
        result->outcome = RUSH_OK;
        result->qty = (uint32_t)node->index; /* who decided */
        result->order_id = ((uint64_t)shard << RUSH_ID_SHARD_SHIFT) | request->user_id;
        pthread_mutex_lock(&fake.lock);
        cr_assert_lt(fake.decided_count, DECIDED_MAX);
        fake.decided[fake.decided_count++] = request->key;
        pthread_mutex_unlock(&fake.lock);
        return;
    }
    result->outcome = RUSH_REDIRECT;
    result->reason = RUSH_REASON_WRONG_SHARD;
    result->state = (uint8_t)shard;
    if (leader == LEADER_PINGPONG)
        result->qty = (uint32_t)((node->index + 1) % NODES);
    else
        result->qty = leader == LEADER_NONE ? UINT32_MAX : (uint32_t)leader;
}

static void *node_main(void *argument)
{
    struct fake_node *node = argument;
    static _Thread_local struct rush_result results[RUSH_WIRE_REQUESTS_MAX];
    static _Thread_local uint8_t reply[1 << 20];
    while (!atomic_load(&fake.stop)) {
        void *buf = NULL;
        int len = nn_recv(node->socket, &buf, NN_MSG, 0);
        if (len < 0)
            continue; /* the receive timeout: look at stop */
        atomic_fetch_add(&node->received, 1);
        struct rush_wire_view view;
        struct rush_wire_error error;
        int rc = rush_wire_decode(buf, (size_t)len, &view, &error);
        if (rc == 0 && !atomic_load(&node->mute)) {
            for (uint32_t i = 0; i < view.count; i++) {
                struct rush_request request;
                memcpy(&request, (const uint8_t *)view.records + (size_t)i * sizeof request,
                       sizeof request);
                decide(node, &request, &results[i]);
            }
            int bytes =
                rush_wire_encode_results(reply, sizeof reply, view.message_id, results, view.count);
            if (bytes > 0)
                nn_send(node->socket, reply, (size_t)bytes, 0);
        }
        nn_freemsg(buf);
    }
    return NULL;
}

static void fake_start(void)
{
    memset(&fake, 0, sizeof fake);
    pthread_mutex_init(&fake.lock, NULL);
    snprintf(fake.dir, sizeof fake.dir, "/tmp/rush-test-router-XXXXXX");
    cr_assert(mkdtemp(fake.dir) != NULL);
    for (int s = 0; s < SHARDS; s++)
        atomic_store(&fake.leader[s], (s + 1) % 2); /* node s % 2, the first guess, is wrong */
    for (int i = 0; i < NODES; i++) {
        struct fake_node *node = &fake.nodes[i];
        node->index = i;
        snprintf(node->url, sizeof node->url, "ipc://%s/node%d.ipc", fake.dir, i);
        node->socket = nn_socket(AF_SP, NN_REP);
        cr_assert(node->socket >= 0);
        int timeout_ms = 20;
        nn_setsockopt(node->socket, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
        cr_assert(nn_bind(node->socket, node->url) >= 0);
        cr_assert_eq(pthread_create(&node->thread, NULL, node_main, node), 0);
    }
}

static void fake_stop(void)
{
    atomic_store(&fake.stop, true);
    for (int i = 0; i < NODES; i++) {
        if (fake.nodes[i].socket <= 0)
            continue;
        pthread_join(fake.nodes[i].thread, NULL);
        nn_close(fake.nodes[i].socket);
    }
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", fake.dir);
    int rc = system(command);
    (void)rc;
}

TestSuite(router, .init = fake_start, .fini = fake_stop, .timeout = 60);

static struct rush_router *router_open(uint32_t shard_count, uint32_t hops_max,
                                       uint32_t leaderless_retries_max)
{
    static const char *urls[NODES];
    for (int i = 0; i < NODES; i++)
        urls[i] = fake.nodes[i].url;
    struct rush_router_config config;
    rush_router_config_default(&config);
    config.urls = urls;
    config.node_count = NODES;
    config.shard_count = shard_count;
    config.hops_max = hops_max;
    config.leaderless_wait_ms = 5;
    config.leaderless_retries_max = leaderless_retries_max;
    config.client.timeout_ms = 200;
    config.client.retries_max = 1;
    config.client.batch_delay_us = 0;
    struct rush_router *router = NULL;
    cr_assert_eq(rush_router_open(&config, &router), 0, "%s", rush_client_last_error());
    return router;
}

/* count reserves by users first.., SKUs spread over the shards; keys "router-<user>". */
static void reserves(struct rush_request *requests, uint32_t count, uint64_t first)
{
    for (uint32_t i = 0; i < count; i++) {
        char key[48];
        snprintf(key, sizeof key, "router-%lu", (unsigned long)(first + i));
        requests[i] = (struct rush_request){.op = RUSH_OP_RESERVE,
                                            .qty = 1,
                                            .sku_id = 1000 + i % 16,
                                            .user_id = first + i,
                                            .key = rush_client_key(key)};
    }
}

/* Every request decided once, by its shard's leader, with the caller's key. */
static void check_decided(const struct rush_request *requests, const struct rush_result *results,
                          uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        uint32_t shard = rush_wire_shard_of(SHARDS, &requests[i]);
        cr_assert_eq(results[i].outcome, RUSH_OK, "request %u: %s", i,
                     rush_outcome_name(results[i].outcome));
        cr_assert_eq(results[i].qty, (uint32_t)atomic_load(&fake.leader[shard]),
                     "request %u decided by node %u", i, results[i].qty);
        uint32_t seen = 0;
        pthread_mutex_lock(&fake.lock);
        for (uint32_t d = 0; d < fake.decided_count; d++)
            seen += memcmp(&fake.decided[d], &requests[i].key, sizeof(rush_key)) == 0;
        pthread_mutex_unlock(&fake.lock);
        cr_assert_eq(seen, 1, "request %u's key decided %u times", i, seen);
    }
}

Test(router, routes_to_the_leader_follows_redirects_and_learns)
{
    struct rush_router *router = router_open(SHARDS, 4, 0);
    struct rush_request requests[64];
    struct rush_result results[64];
    reserves(requests, 64, 1);
    cr_assert_eq(rush_router_submit(router, requests, 64, results), 0, "%s",
                 rush_client_last_error());
    check_decided(requests, results, 64);
    struct rush_router_stats first;
    rush_router_stats(router, &first);
    cr_assert_gt(first.redirects, 0, "the first guesses were wrong: redirects followed");
    for (uint32_t s = 0; s < SHARDS; s++)
        cr_assert_eq(rush_router_leader(router, s), atomic_load(&fake.leader[s]));

    /* learnt: the next submit goes straight to the leaders */
    reserves(requests, 64, 1001);
    cr_assert_eq(rush_router_submit(router, requests, 64, results), 0);
    check_decided(requests, results, 64);
    struct rush_router_stats second;
    rush_router_stats(router, &second);
    cr_assert_eq(second.redirects, first.redirects, "no redirect once the leaders are known");

    /* a leader moves (a failover): one more redirect each, then the new leader decides */
    atomic_store(&fake.leader[0], 2);
    reserves(requests, 64, 2001);
    cr_assert_eq(rush_router_submit(router, requests, 64, results), 0);
    check_decided(requests, results, 64);
    cr_assert_eq(rush_router_leader(router, 0), 2);
    rush_router_close(router);
}

Test(router, without_the_shard_count_it_learns_from_the_redirects)
{
    struct rush_router *router = router_open(0, 4, 0);
    struct rush_request requests[32];
    struct rush_result results[32];
    reserves(requests, 32, 1);
    cr_assert_eq(rush_router_submit(router, requests, 32, results), 0);
    check_decided(requests, results, 32);
    /* node 0, asked first, decided its own shards unnamed; the redirects named the others */
    for (uint32_t s = 0; s < SHARDS; s++) {
        int leader = atomic_load(&fake.leader[s]);
        cr_assert_eq(rush_router_leader(router, s), leader == 0 ? -1 : leader, "shard %u", s);
    }
    rush_router_close(router);
}

Test(router, a_shard_without_a_leader_is_waited_for)
{
    struct rush_router *router = router_open(SHARDS, 4, 10);
    atomic_store(&fake.leaderless_answers_left[1], 3);
    struct rush_request requests[16];
    struct rush_result results[16];
    reserves(requests, 16, 1);
    cr_assert_eq(rush_router_submit(router, requests, 16, results), 0, "%s",
                 rush_client_last_error());
    check_decided(requests, results, 16);
    struct rush_router_stats stats;
    rush_router_stats(router, &stats);
    cr_assert_eq(stats.leaderless, 3);
    rush_router_close(router);
}

Test(router, a_redirect_loop_or_no_leader_ever_is_unreachable_within_bounds)
{
    struct rush_router *router = router_open(SHARDS, 3, 2);
    atomic_store(&fake.leader[2], LEADER_PINGPONG);
    atomic_store(&fake.leader[3], LEADER_NONE);
    struct rush_request requests[32];
    struct rush_result results[32];
    reserves(requests, 32, 1);
    cr_assert_eq(rush_router_submit(router, requests, 32, results), -EHOSTUNREACH);
    cr_assert(strstr(rush_client_last_error(), "shard") != NULL, "%s", rush_client_last_error());
    uint32_t given_up = 0;
    for (uint32_t i = 0; i < 32; i++) {
        uint32_t shard = rush_wire_shard_of(SHARDS, &requests[i]);
        if (shard >= 2) {
            cr_assert_eq(results[i].outcome, RUSH_REDIRECT); /* its last answer */
            cr_assert_eq(results[i].state, shard);
            given_up++;
        } else {
            check_decided(&requests[i], &results[i], 1); /* the others are answered */
        }
    }
    struct rush_router_stats stats;
    rush_router_stats(router, &stats);
    cr_assert_eq(stats.unreachable, given_up);
    rush_router_close(router);
}

Test(router, a_silent_node_is_routed_around_with_the_same_keys)
{
    struct rush_router *router = router_open(SHARDS, 4, 0);
    atomic_store(&fake.nodes[0].mute, true); /* the first guess for shards 0 and 2... */
    for (int s = 0; s < SHARDS; s++)
        atomic_store(&fake.leader[s], 1); /* ...and node 1 leads everything */
    struct rush_request requests[32];
    struct rush_result results[32];
    reserves(requests, 32, 1);
    cr_assert_eq(rush_router_submit(router, requests, 32, results), 0, "%s",
                 rush_client_last_error());
    check_decided(requests, results, 32);
    struct rush_router_stats stats;
    rush_router_stats(router, &stats);
    cr_assert_geq(stats.node_failures, 1);
    cr_assert_gt(atomic_load(&fake.nodes[0].received), 0, "node 0 was asked first");
    rush_router_close(router);
}

/* The leader dies and the others keep naming it until its lease lapses (here 1.5 s): the
 * router waits on a live node instead of spending its hops on the dead one. */
static void *lease_lapses(void *argument)
{
    (void)argument;
    usleep(1500 * 1000);
    for (int s = 0; s < SHARDS; s++)
        atomic_store(&fake.leader[s], 2);
    return NULL;
}

Test(router, a_redirect_to_a_node_that_just_failed_is_waited_out)
{
    struct rush_router *router = router_open(SHARDS, 3, 1000); /* 1000 waits of 5 ms */
    atomic_store(&fake.nodes[0].mute, true);
    for (int s = 0; s < SHARDS; s++)
        atomic_store(&fake.leader[s], 0); /* the dead node, still named by the others */
    pthread_t lapse;
    cr_assert_eq(pthread_create(&lapse, NULL, lease_lapses, NULL), 0);
    struct rush_request requests[32];
    struct rush_result results[32];
    reserves(requests, 32, 1);
    int rc = rush_router_submit(router, requests, 32, results);
    pthread_join(lapse, NULL);
    cr_assert_eq(rc, 0, "gave up before the lease lapsed: %s", rush_client_last_error());
    check_decided(requests, results, 32);
    for (uint32_t i = 0; i < 32; i++)
        cr_assert_eq(results[i].qty, 2, "decided by node %u, not the new leader", results[i].qty);
    struct rush_router_stats stats;
    rush_router_stats(router, &stats);
    cr_assert_geq(stats.node_failures, 1);
    cr_assert_gt(stats.leaderless, 0, "the wait for the lapse counts as leaderless");
    rush_router_close(router);
}

Test(router, configuration_checks)
{
    const char *urls[2] = {"ipc:///tmp/a", "ipc:///tmp/b"};
    struct rush_router_config config;
    rush_router_config_default(&config);
    char why[160];
    cr_assert_eq(rush_router_config_check(&config, why, sizeof why), RUSH_ECONFIG, "no urls");
    config.urls = urls;
    config.node_count = 2;
    cr_assert_eq(rush_router_config_check(&config, why, sizeof why), 0, "%s", why);
    config.node_count = RUSH_ROUTER_NODES_MAX + 1;
    cr_assert_eq(rush_router_config_check(&config, why, sizeof why), RUSH_ECONFIG);
    config.node_count = 2;
    config.hops_max = 0;
    cr_assert_eq(rush_router_config_check(&config, why, sizeof why), RUSH_ECONFIG);
    config.hops_max = 8;
    config.shard_count = RUSH_SHARDS_MAX + 1;
    cr_assert_eq(rush_router_config_check(&config, why, sizeof why), RUSH_ECONFIG);
    config.shard_count = 0;
    config.client.timeout_ms = 0;
    cr_assert_eq(rush_router_config_check(&config, why, sizeof why), RUSH_ECONFIG);
    struct rush_router *router = NULL;
    cr_assert_eq(rush_router_open(&config, &router), RUSH_ECONFIG);
    cr_assert_null(router);
}
