/*
 * router.c — librush over several nodes (rush/client.h, "Several nodes: the router"): one client
 * per node, each request sent to the node that leads its shard, redirects followed with the same
 * request and key.
 *
 * Workload. A gateway in front of a cluster of a few nodes. A submit runs in rounds: each round
 * sends every unanswered request to its current node (one async submit per node, all at once),
 * waits for them, and reads the answers. A request leaves the rounds when it is decided, or when
 * it used up its hops (redirects and node failures) or its leaderless waits; each round costs
 * every request still in it a hop or a wait, so a submit ends within hops_max +
 * leaderless_retries_max + 1 rounds.
 *
 * Invariants.
 *  1. A request is sent again only after its node answered "redirect" (nothing decided there) or
 *     failed as a whole (the same key makes a resend safe), and always with the caller's bytes.
 *  2. leader[s] is -1 or a node index below node_count.
 *  3. results[i] is written once per request: its final answer (the last redirect for a request
 *     given up).
 *
 * Threads. leader[] and the counters are atomics shared by concurrent submits; a submit's
 * scratch is its own; the node clients' I/O threads run the callbacks, which touch only the
 * round they belong to (under its lock).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client_internal.h"
#include "rush/assert.h"
#include "rush/client.h"
#include "rush/wire.h"

#define ROUTER_WAIT_MS_MAX 60000u
#define ROUTER_LEADERLESS_RETRIES_MAX 10000u
#define SHARD_UNKNOWN UINT32_MAX

struct rush_router {
    struct rush_router_config config;
    char urls[RUSH_ROUTER_NODES_MAX][RUSH_CLIENT_URL_BYTES_MAX];
    struct rush_client *clients[RUSH_ROUTER_NODES_MAX];
    _Atomic int32_t leader[RUSH_SHARDS_MAX];
    _Atomic uint64_t submits, redirects, leaderless, node_failures, unreachable;
};

/* One request's route within a submit. */
struct route {
    uint32_t node;
    uint32_t shard; /* SHARD_UNKNOWN until computed or learnt */
    uint32_t hops;
    uint32_t waits;
    uint32_t failed_nodes; /* a bit per node that failed this request in this submit */
    bool done;
};

/* One round: the node submits in flight and their answers. */
struct round {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t calls_left;
};

struct node_call {
    struct round *round;
    uint32_t first; /* its requests are scratch[first .. first + count) */
    uint32_t count;
    int status;
    char error[RUSH_CLIENT_ERROR_BYTES];
};

/* A submit's scratch, one allocation. */
struct scratch {
    struct route *routes;
    uint32_t *index; /* position in the round -> the caller's request index */
    struct rush_request *requests;
    struct rush_result *results;
};

static _Thread_local char router_error[RUSH_CLIENT_ERROR_BYTES];

void rush_router_config_default(struct rush_router_config *config)
{
    RUSH_ASSERT(config != NULL);
    *config = (struct rush_router_config){
        .hops_max = 8, .leaderless_wait_ms = 100, .leaderless_retries_max = 50};
    rush_client_config_default(&config->client);
}

int rush_router_config_check(const struct rush_router_config *config, char *why, size_t why_size)
{
    RUSH_ASSERT(config != NULL);
    const char *problem = NULL;
    if (config->urls == NULL || config->node_count < 1 ||
        config->node_count > RUSH_ROUTER_NODES_MAX)
        problem = "node_count must be 1..16, with that many urls";
    else if (config->shard_count > RUSH_SHARDS_MAX)
        problem = "shard_count must be 0 (unknown) .. 64";
    else if (config->hops_max < 1 || config->hops_max > RUSH_ROUTER_HOPS_MAX)
        problem = "hops_max must be 1..64";
    else if (config->leaderless_wait_ms < 1 || config->leaderless_wait_ms > ROUTER_WAIT_MS_MAX)
        problem = "leaderless_wait_ms must be 1..60000";
    else if (config->leaderless_retries_max > ROUTER_LEADERLESS_RETRIES_MAX)
        problem = "leaderless_retries_max must be 0..10000";
    for (uint32_t i = 0; problem == NULL && i < config->node_count; i++)
        if (config->urls[i] == NULL || strlen(config->urls[i]) >= RUSH_CLIENT_URL_BYTES_MAX)
            problem = "a node url is missing or too long";
    if (problem == NULL) {
        struct rush_client_config client = config->client;
        client.url = config->urls[0];
        return rush_client_config_check(&client, why, why_size);
    }
    if (why != NULL && why_size > 0)
        snprintf(why, why_size, "%s", problem);
    return RUSH_ECONFIG;
}

void rush_router_close(struct rush_router *router)
{
    if (router == NULL)
        return;
    for (uint32_t i = 0; i < router->config.node_count; i++)
        rush_client_close(router->clients[i]);
    free(router);
}

int rush_router_open(const struct rush_router_config *config, struct rush_router **out)
{
    RUSH_ASSERT(config != NULL && out != NULL);
    *out = NULL;
    char why[RUSH_CLIENT_ERROR_BYTES];
    int rc = rush_router_config_check(config, why, sizeof why);
    if (rc < 0)
        return rc;
    struct rush_router *router = calloc(1, sizeof *router);
    if (router == NULL)
        return -ENOMEM;
    router->config = *config;
    router->config.urls = NULL; /* copied below; the caller's array may go */
    for (uint32_t s = 0; s < RUSH_SHARDS_MAX; s++)
        atomic_init(&router->leader[s], -1);
    for (uint32_t i = 0; rc == 0 && i < config->node_count; i++) {
        snprintf(router->urls[i], sizeof router->urls[i], "%s", config->urls[i]);
        struct rush_client_config client = config->client;
        client.url = router->urls[i];
        rc = rush_client_open(&client, &router->clients[i]);
    }
    if (rc < 0) {
        rush_router_close(router); /* closes the clients opened so far (the rest are NULL) */
        return rc;
    }
    *out = router;
    return 0;
}

int rush_router_leader(const struct rush_router *router, uint32_t shard)
{
    RUSH_ASSERT(router != NULL && shard < RUSH_SHARDS_MAX);
    return atomic_load(&router->leader[shard]);
}

void rush_router_stats(const struct rush_router *router, struct rush_router_stats *stats)
{
    RUSH_ASSERT(router != NULL && stats != NULL);
    *stats = (struct rush_router_stats){
        .submits = atomic_load(&router->submits),
        .redirects = atomic_load(&router->redirects),
        .leaderless = atomic_load(&router->leaderless),
        .node_failures = atomic_load(&router->node_failures),
        .unreachable = atomic_load(&router->unreachable),
    };
}

/* ---- a submit ------------------------------------------------------------------------------ */

static void route_start(const struct rush_router *router, struct route *route,
                        const struct rush_request *request)
{
    uint32_t nodes = router->config.node_count;
    *route = (struct route){.shard = SHARD_UNKNOWN};
    if (router->config.shard_count != 0)
        route->shard = rush_wire_shard_of(router->config.shard_count, request);
    int leader = route->shard != SHARD_UNKNOWN ? atomic_load(&router->leader[route->shard]) : -1;
    if (leader >= 0)
        route->node = (uint32_t)leader;
    else
        route->node = route->shard != SHARD_UNKNOWN ? route->shard % nodes : 0;
}

static void on_node_answer(void *context, int status, struct rush_result *results, uint32_t count)
{
    (void)results;
    (void)count;
    struct node_call *call = context;
    call->status = status;
    snprintf(call->error, sizeof call->error, "%s", status < 0 ? rush_client_last_error() : "");
    pthread_mutex_lock(&call->round->lock);
    call->round->calls_left--;
    pthread_cond_signal(&call->round->cond);
    pthread_mutex_unlock(&call->round->lock);
}

/*
 * Sends every request not done to its node (grouped: scratch positions per node) and waits for
 * every node's answer. calls[node].count 0: nothing sent there.
 */
static void round_send(struct rush_router *router, const struct rush_request *requests,
                       uint32_t count, struct scratch *scratch, struct node_call *calls)
{
    struct round round = {.calls_left = 0};
    pthread_mutex_init(&round.lock, NULL);
    pthread_cond_init(&round.cond, NULL);
    uint32_t at = 0;
    for (uint32_t node = 0; node < router->config.node_count; node++) {
        calls[node] = (struct node_call){.round = &round, .first = at};
        for (uint32_t i = 0; i < count; i++) {
            if (scratch->routes[i].done || scratch->routes[i].node != node)
                continue;
            scratch->index[at] = i;
            scratch->requests[at++] = requests[i];
        }
        calls[node].count = at - calls[node].first;
    }
    for (uint32_t node = 0; node < router->config.node_count; node++) {
        struct node_call *call = &calls[node];
        if (call->count == 0)
            continue;
        pthread_mutex_lock(&round.lock);
        round.calls_left++;
        pthread_mutex_unlock(&round.lock);
        int rc = rush_client_submit_async(router->clients[node], scratch->requests + call->first,
                                          call->count, scratch->results + call->first,
                                          on_node_answer, call);
        if (rc < 0) { /* no callback will come: answer it here (a full async pool, closing) */
            rc = rush_client_submit(router->clients[node], scratch->requests + call->first,
                                    call->count, scratch->results + call->first);
            on_node_answer(call, rc, NULL, 0);
        }
    }
    pthread_mutex_lock(&round.lock);
    while (round.calls_left > 0) /* every async submit calls back exactly once */
        pthread_cond_wait(&round.cond, &round.lock);
    pthread_mutex_unlock(&round.lock);
    pthread_cond_destroy(&round.cond);
    pthread_mutex_destroy(&round.lock);
}

/* Gives up a request: its last answer stays in results; the submit returns -EHOSTUNREACH. */
static void route_give_up(struct rush_router *router, struct route *route, int *status)
{
    route->done = true;
    atomic_fetch_add(&router->unreachable, 1);
    if (*status == 0) {
        *status = -EHOSTUNREACH;
        snprintf(router_error, sizeof router_error,
                 "shard %d: no node decided the request after %u hops and %u leaderless waits",
                 route->shard == SHARD_UNKNOWN ? -1 : (int)route->shard, route->hops, route->waits);
    }
}

/* A node failed as a whole: forget it as its shards' leader, move its requests to the next. */
static void node_failed(struct rush_router *router, const struct scratch *scratch,
                        const struct node_call *call, uint32_t node, int *status)
{
    atomic_fetch_add(&router->node_failures, 1);
    for (uint32_t at = call->first; at < call->first + call->count; at++) {
        struct route *route = &scratch->routes[scratch->index[at]];
        int expected = (int)node;
        if (route->shard != SHARD_UNKNOWN)
            atomic_compare_exchange_strong(&router->leader[route->shard], &expected, -1);
        route->failed_nodes |= 1u << node;
        route->node = (node + 1) % router->config.node_count;
        if (++route->hops > router->config.hops_max)
            route_give_up(router, route, status);
    }
}

/* One answer. Returns true when it asks for a leaderless wait. */
static bool answer_read(struct rush_router *router, struct route *route, uint32_t node,
                        const struct rush_result *result, struct rush_result *out, int *status)
{
    *out = *result;
    if (result->outcome != RUSH_REDIRECT) {
        route->done = true;
        if (route->shard != SHARD_UNKNOWN)
            atomic_store(&router->leader[route->shard], (int32_t)node);
        return false;
    }
    if (result->state < RUSH_SHARDS_MAX)
        route->shard = result->state;
    if (result->qty < router->config.node_count && (route->failed_nodes & (1u << result->qty))) {
        /* It names a node that just failed this request: the cluster has not moved the shard
         * yet (its lease has not lapsed). Ask this node again after a wait, as for no leader,
         * rather than spend a hop on the dead one. */
        route->node = node;
    } else if (result->qty < router->config.node_count) {
        atomic_fetch_add(&router->redirects, 1);
        if (route->shard != SHARD_UNKNOWN)
            atomic_store(&router->leader[route->shard], (int32_t)result->qty);
        route->node = result->qty;
        if (++route->hops > router->config.hops_max)
            route_give_up(router, route, status);
        return false;
    }
    atomic_fetch_add(&router->leaderless, 1);
    if (route->shard != SHARD_UNKNOWN)
        atomic_store(&router->leader[route->shard], -1);
    if (++route->waits > router->config.leaderless_retries_max)
        route_give_up(router, route, status);
    return !route->done;
}

/* Reads a round's answers. Returns true when a request waits for a leader. */
static bool round_read(struct rush_router *router, struct scratch *scratch,
                       const struct node_call *calls, struct rush_result *results, int *status)
{
    bool wait = false;
    for (uint32_t node = 0; node < router->config.node_count; node++) {
        const struct node_call *call = &calls[node];
        if (call->count == 0)
            continue;
        if (call->status == RUSH_ETIMEDOUT) {
            node_failed(router, scratch, call, node, status);
            continue;
        }
        if (call->status < 0) { /* refused as a whole or closing: nothing to route around */
            for (uint32_t at = call->first; at < call->first + call->count; at++)
                scratch->routes[scratch->index[at]].done = true;
            if (*status == 0 || *status == -EHOSTUNREACH) {
                *status = call->status;
                snprintf(router_error, sizeof router_error, "node %u: %.120s", node, call->error);
            }
            continue;
        }
        for (uint32_t at = call->first; at < call->first + call->count; at++) {
            uint32_t i = scratch->index[at];
            wait |= answer_read(router, &scratch->routes[i], node, &scratch->results[at],
                                &results[i], status);
        }
    }
    return wait;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int rush_router_submit(struct rush_router *router, const struct rush_request *requests,
                       uint32_t count, struct rush_result *results)
{
    RUSH_ASSERT(router != NULL);
    if (requests == NULL || results == NULL || count < 1 || count > RUSH_WIRE_REQUESTS_MAX)
        return rush_client_submit(router->clients[0], requests, count, results); /* -EINVAL */
    atomic_fetch_add(&router->submits, 1);
    router_error[0] = '\0';
    struct scratch scratch = {
        .routes = calloc(count, sizeof *scratch.routes),
        .index = calloc(count, sizeof *scratch.index),
        .requests = calloc(count, sizeof *scratch.requests),
        .results = calloc(count, sizeof *scratch.results),
    };
    struct node_call calls[RUSH_ROUTER_NODES_MAX];
    int status =
        scratch.routes && scratch.index && scratch.requests && scratch.results ? 0 : -ENOMEM;
    for (uint32_t i = 0; status == 0 && i < count; i++)
        route_start(router, &scratch.routes[i], &requests[i]);
    uint32_t rounds_max = router->config.hops_max + router->config.leaderless_retries_max + 1;
    bool pending = status == 0;
    for (uint32_t round = 0; pending && round < rounds_max; round++) { /* see "Workload" */
        round_send(router, requests, count, &scratch, calls);
        bool wait = round_read(router, &scratch, calls, results, &status);
        pending = false;
        for (uint32_t i = 0; i < count; i++)
            pending |= !scratch.routes[i].done;
        if (pending && wait)
            sleep_ms(router->config.leaderless_wait_ms);
    }
    RUSH_ASSERT(!pending); /* each round costs every request a hop or a wait, or ends it */
    free(scratch.routes);
    free(scratch.index);
    free(scratch.requests);
    free(scratch.results);
    if (status < 0 && router_error[0] != '\0')
        rush__client_error_set(router_error);
    return status;
}
