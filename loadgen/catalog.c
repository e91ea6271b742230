/*
 * catalog.c — the SKUs of a load run (see catalog.h): planning ids and rules, sku_put through
 * the admin endpoint, query_sku through the orders endpoint.
 */
#include "catalog.h"
#include "base/clock.h"

#include <errno.h>
#include <jansson.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/json.h"
#include "rush/assert.h"
#include "rush/wire.h"

#define NS_PER_S INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)
#define WINDOW_OPENED_AGO_NS (60 * NS_PER_S) /* tolerate a server clock a minute behind */
#define GROUP_TTL_NS (10 * 60 * NS_PER_S)
#define GROUPS_OPEN_MAX 65536u
#define PRICE_FEN 100
#define REPLY_TEXT_MAX 200

/* The built-in double11 campaign's SKUs that suit each scenario (2003 is loaded paused). */
static const uint64_t campaign_hot[] = {1001, 1002, 1003};
static const uint64_t campaign_zipf[] = {1001, 1002, 1003, 2001, 2002, 3001};
static const uint64_t campaign_groups[] = {4001, 4002};
static const uint64_t campaign_payments[] = {1001, 1002, 1003, 2001, 2002};

/*
 * The social catalogue (RUSH_CATALOG_SOCIAL_*): a deal sold solo at 39.90 and in groups of 2 at
 * 9.90 with the leader free; a tiered group of up to 4 (2:90, 3:80, 4:70); a new-users-only
 * SKU; three colours of the activity of family RUSH_CATALOG_SOCIAL_FAMILY. The colours keep
 * their ids from run to run (a family has 1000 ids): each run's put redefines them with a
 * stock no run exhausts, and its buyers are new users of the activity.
 */
static void social_def(struct rush_sku *def, uint32_t index)
{
    switch (index) {
    case RUSH_CATALOG_SOCIAL_DEAL:
        def->price_fen = 3990;
        def->group_size = 2;
        def->solo_allowed = 1;
        def->prices = RUSH_SKU_GROUP_PRICE | RUSH_SKU_LEADER_PRICE;
        def->group_price_fen = 990;
        def->leader_price_fen = 0;
        def->user_qty_max = 2; /* one solo, one seat */
        break;
    case RUSH_CATALOG_SOCIAL_TIERED:
        def->group_size = 4;
        def->tier_count = 3;
        def->tier_size[0] = 2, def->tier_price_fen[0] = 90;
        def->tier_size[1] = 3, def->tier_price_fen[1] = 80;
        def->tier_size[2] = 4, def->tier_price_fen[2] = 70;
        break;
    case RUSH_CATALOG_SOCIAL_NEW_USERS:
        def->rules = RUSH_SKU_NEW_USERS_ONLY;
        return;
    default:
        def->id = RUSH_CATALOG_SOCIAL_FAMILY * 1000 + 101 + (index - RUSH_CATALOG_SOCIAL_COLOUR);
        def->rules = RUSH_SKU_IN_ACTIVITY;
        def->stock = RUSH_CATALOG_SOCIAL_COLOUR_STOCK;
        return;
    }
    def->group_ttl_ns = GROUP_TTL_NS;
    def->groups_open_max = GROUPS_OPEN_MAX;
}

/* A fresh SKU's rules for the scenario: one unit per order and per buyer, window open. */
static void fresh_def(struct rush_sku *def, uint64_t id, uint32_t index,
                      const struct rush_loadgen_options *options, int64_t now_ns)
{
    *def = (struct rush_sku){
        .id = id,
        .stock = options->stock,
        .price_fen = PRICE_FEN,
        .start_ns = now_ns - WINDOW_OPENED_AGO_NS,
        .end_ns = INT64_MAX,
        .pay_ttl_ns = 0, /* a won reservation is the order, confirmed and published at once */
        .order_qty_max = 1,
        .user_qty_max = 1,
    };
    snprintf(def->name, sizeof(def->name), "loadgen %s %u",
             rush_loadgen_scenario_name(options->scenario), index + 1);
    switch (options->scenario) {
    case RUSH_SCENARIO_MIDNIGHT:
    case RUSH_SCENARIO_ZIPF:
    case RUSH_SCENARIO_DUPLICATES:
        break;
    case RUSH_SCENARIO_PAYMENTS:
        def->pay_ttl_ns = (int64_t)options->pay_ttl_ms * NS_PER_MS;
        break;
    case RUSH_SCENARIO_GROUPS:
        def->group_size = options->group_size;
        def->group_ttl_ns = GROUP_TTL_NS;
        def->groups_open_max = GROUPS_OPEN_MAX;
        break;
    case RUSH_SCENARIO_SOCIAL:
        social_def(def, index);
        break;
    case RUSH_SCENARIO_COUNT_:
        RUSH_ASSERT(false);
    }
}

static void campaign_ids(enum rush_loadgen_scenario scenario, const uint64_t **ids, uint32_t *n)
{
    switch (scenario) {
    case RUSH_SCENARIO_MIDNIGHT:
    case RUSH_SCENARIO_DUPLICATES:
        *ids = campaign_hot;
        *n = sizeof(campaign_hot) / sizeof(campaign_hot[0]);
        return;
    case RUSH_SCENARIO_ZIPF:
        *ids = campaign_zipf;
        *n = sizeof(campaign_zipf) / sizeof(campaign_zipf[0]);
        return;
    case RUSH_SCENARIO_GROUPS:
        *ids = campaign_groups;
        *n = sizeof(campaign_groups) / sizeof(campaign_groups[0]);
        return;
    case RUSH_SCENARIO_PAYMENTS:
        *ids = campaign_payments;
        *n = sizeof(campaign_payments) / sizeof(campaign_payments[0]);
        return;
    case RUSH_SCENARIO_SOCIAL: /* options refuse it: the scenario puts its own */
    case RUSH_SCENARIO_COUNT_:
        break;
    }
    RUSH_ASSERT(false);
}

int rush_catalog_plan(struct rush_catalog *catalog, const struct rush_loadgen_options *options)
{
    RUSH_ASSERT(catalog != NULL && options != NULL && options->skus >= 1);
    memset(catalog, 0, sizeof(*catalog));
    const uint64_t *ids = NULL;
    uint32_t count = options->skus;
    if (options->campaign_skus) {
        uint32_t listed = 0;
        campaign_ids(options->scenario, &ids, &listed);
        count = count < listed ? count : listed;
    }
    catalog->skus = calloc(count, sizeof(*catalog->skus));
    if (catalog->skus == NULL)
        return -ENOMEM;
    catalog->count = count;
    catalog->fresh = !options->campaign_skus;
    uint32_t timeout_ms = options->timeout_ms;
    timeout_ms = timeout_ms < RUSH_CATALOG_SETUP_TIMEOUT_MIN_MS ? RUSH_CATALOG_SETUP_TIMEOUT_MIN_MS
                                                                : timeout_ms;
    timeout_ms =
        timeout_ms > RUSH_CATALOG_SETUP_TIMEOUT_MS ? RUSH_CATALOG_SETUP_TIMEOUT_MS : timeout_ms;
    catalog->timeout_ms = (int)timeout_ms;
    int64_t now_ns = rush_clock_wall_ns();
    uint64_t clock_base = ((uint64_t)(now_ns / NS_PER_MS) % (UINT64_C(1) << 30))
                          << RUSH_CATALOG_ID_SHIFT;
    catalog->base_id = options->sku_base != 0 ? options->sku_base : clock_base + 1;
    for (uint32_t i = 0; i < count; i++) {
        if (ids != NULL)
            catalog->skus[i].def.id = ids[i];
        else
            fresh_def(&catalog->skus[i].def, catalog->base_id + i, i, options, now_ns);
    }
    return 0;
}

void rush_catalog_free(struct rush_catalog *catalog)
{
    if (catalog == NULL)
        return;
    free(catalog->skus);
    memset(catalog, 0, sizeof(*catalog));
}

/* A plain REQ socket to url with send and receive timeouts; < 0 and why on failure. */
static int open_req(const char *url, int timeout_ms, char *why, size_t why_size)
{
    int sock = nn_socket(AF_SP, NN_REQ);
    if (sock < 0) {
        snprintf(why, why_size, "cannot make a socket: %s", nn_strerror(nn_errno()));
        return -1;
    }
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout_ms, sizeof(timeout_ms));
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    if (nn_connect(sock, url) < 0) {
        snprintf(why, why_size, "bad address '%s': %s", url, nn_strerror(nn_errno()));
        nn_close(sock);
        return -1;
    }
    return sock;
}

/* One exchange: 0 and *reply (nn_freemsg it) of *len bytes, or RUSH_ETIMEDOUT with why. */
static int exchange(int sock, const char *url, int timeout_ms, const void *message, size_t len,
                    void **reply, int *reply_len, char *why, size_t why_size)
{
    if (nn_send(sock, message, len, 0) < 0 || (*reply_len = nn_recv(sock, reply, NN_MSG, 0)) < 0) {
        snprintf(why, why_size, "no answer from %s within %d ms (is rushd running there?): %s", url,
                 timeout_ms, nn_strerror(nn_errno()));
        return RUSH_ETIMEDOUT;
    }
    return 0;
}

/* {"op":"sku_put","sku":{...},"token":"..."} for one SKU: a new string (free it), or NULL. */
static char *sku_put_text(const struct rush_sku *def, const char *token)
{
    char text[2048];
    if (rush_json_encode_sku_put(def, text, sizeof(text)) < 0)
        return NULL;
    json_error_t error;
    json_t *root = json_loads(text, 0, &error);
    if (root == NULL)
        return NULL;
    json_object_set_new(root, "token", json_string(token));
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}

/* Checks a JSON answer's outcome is "ok"; else RUSH_EPROTO with the answer in why. */
static int expect_ok(uint64_t id, const char *reply, int len, char *why, size_t why_size)
{
    json_error_t error;
    json_t *root = json_loadb(reply, (size_t)len, 0, &error);
    const char *outcome = json_string_value(json_object_get(root, "outcome"));
    int rc = outcome != NULL && strcmp(outcome, "ok") == 0 ? 0 : RUSH_EPROTO;
    json_decref(root);
    if (rc != 0)
        snprintf(why, why_size, "sku_put of SKU %llu refused: %.*s", (unsigned long long)id,
                 len < REPLY_TEXT_MAX ? len : REPLY_TEXT_MAX, reply);
    return rc;
}

static void pause_ms(int ms)
{
    struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * NS_PER_MS};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
}

/* The JSON answer's outcome; for a redirect, *leader = the node named (-1: none). */
static bool answer_is_redirect(const char *reply, int len, int *leader)
{
    json_error_t error;
    json_t *root = json_loadb(reply, (size_t)len, 0, &error);
    const char *outcome = json_string_value(json_object_get(root, "outcome"));
    bool redirect = outcome != NULL && strcmp(outcome, "redirect") == 0;
    json_t *named = json_object_get(root, "leader");
    *leader = json_is_integer(named) ? (int)json_integer_value(named) : -1;
    json_decref(root);
    return redirect;
}

/* --admin-url, one node: every SKU put there. */
static int put_one_node(const struct rush_catalog *catalog, const char *url, const char *token,
                        char *why, size_t why_size)
{
    int sock = open_req(url, catalog->timeout_ms, why, why_size);
    if (sock < 0)
        return RUSH_EPROTO;
    int rc = 0;
    for (uint32_t i = 0; i < catalog->count && rc == 0; i++) {
        char *text = sku_put_text(&catalog->skus[i].def, token);
        RUSH_ASSERT(text != NULL);
        void *reply = NULL;
        int len = 0;
        rc = exchange(sock, url, catalog->timeout_ms, text, strlen(text), &reply, &len, why,
                      why_size);
        free(text);
        if (rc == 0) {
            rc = expect_ok(catalog->skus[i].def.id, reply, len, why, why_size);
            nn_freemsg(reply);
        }
    }
    nn_close(sock);
    return rc;
}

/*
 * --admins, a cluster: one SKU put on the leader of its shard. First guess shard % nodes; a
 * redirect names the leader (or none: wait RUSH_CATALOG_LEADER_WAIT_MS), a node that does not
 * answer passes the SKU to the next; for at most RUSH_CATALOG_ROUTE_MS.
 */
static int put_routed(const struct rush_catalog *catalog,
                      const struct rush_loadgen_options *options, const struct rush_sku *def,
                      char *why, size_t why_size)
{
    uint32_t n = options->admin_count;
    uint32_t node = rush_wire_shard_of_sku(options->shards, def->id) % n;
    int64_t deadline = rush_clock_monotonic_ms() + RUSH_CATALOG_ROUTE_MS;
    char *text = sku_put_text(def, options->token);
    RUSH_ASSERT(text != NULL);
    int rc = RUSH_ETIMEDOUT;
    while (rc == RUSH_ETIMEDOUT && rush_clock_monotonic_ms() < deadline) {
        int sock = open_req(options->admins[node], catalog->timeout_ms, why, why_size);
        if (sock < 0) {
            rc = RUSH_EPROTO;
            break;
        }
        void *reply = NULL;
        int len = 0, leader = -1;
        rc = exchange(sock, options->admins[node], catalog->timeout_ms, text, strlen(text), &reply,
                      &len, why, why_size);
        nn_close(sock);
        if (rc != 0) {
            node = (node + 1) % n; /* dead or hung: its shards are someone else's soon */
            continue;
        }
        if (answer_is_redirect(reply, len, &leader)) {
            rc = RUSH_ETIMEDOUT;
            if (leader >= 0 && (uint32_t)leader < n)
                node = (uint32_t)leader;
            else
                pause_ms(RUSH_CATALOG_LEADER_WAIT_MS);
            snprintf(why, why_size, "sku_put of SKU %llu: redirected for %d ms",
                     (unsigned long long)def->id, RUSH_CATALOG_ROUTE_MS);
        } else {
            rc = expect_ok(def->id, reply, len, why, why_size);
        }
        nn_freemsg(reply);
    }
    free(text);
    return rc;
}

int rush_catalog_put(const struct rush_catalog *catalog, const struct rush_loadgen_options *options,
                     char *why, size_t why_size)
{
    RUSH_ASSERT(catalog->fresh);
    if (options->token[0] == '\0') {
        snprintf(why, why_size,
                 "fresh SKUs need the admin token: give --admin-token-file DATA_DIR/admin.token "
                 "(or --admin-token, or $RUSH_ADMIN_TOKEN), or use --campaign-skus");
        return -EINVAL;
    }
    if (options->admin_count == 0)
        return put_one_node(catalog, options->admin_url, options->token, why, why_size);
    int rc = 0;
    for (uint32_t i = 0; i < catalog->count && rc == 0; i++)
        rc = put_routed(catalog, options, &catalog->skus[i].def, why, why_size);
    return rc;
}

static void take_figures(struct rush_catalog_figures *figures, const struct rush_result *result)
{
    *figures = (struct rush_catalog_figures){
        .known = result->outcome == RUSH_OK,
        .unlimited = (result->flags & RUSH_RESULT_UNLIMITED) != 0,
        .available = result->outcome == RUSH_OK ? result->remaining : 0,
        .reserved = result->outcome == RUSH_OK ? result->reserved : 0,
        .confirmed = result->outcome == RUSH_OK ? result->confirmed : 0,
    };
}

/* Queries the SKUs skus[indexes[0 .. n)] in one message; their results in results[0 .. n). */
static int query_some(const struct rush_catalog *catalog, int sock, const char *url,
                      const uint32_t *indexes, uint32_t n, struct rush_result *results, char *why,
                      size_t why_size)
{
    static struct rush_request requests[RUSH_CATALOG_QUERY_BATCH];
    static uint8_t message[RUSH_WIRE_HEADER_BYTES + sizeof(requests)];
    RUSH_ASSERT(n >= 1 && n <= RUSH_CATALOG_QUERY_BATCH);
    for (uint32_t i = 0; i < n; i++)
        requests[i] = (struct rush_request){.op = RUSH_OP_QUERY_SKU,
                                            .sku_id = catalog->skus[indexes[i]].def.id};
    int len = rush_wire_encode_requests(message, sizeof(message), indexes[0] + 1, requests, n);
    RUSH_ASSERT(len > 0);
    void *reply = NULL;
    int reply_len = 0;
    int rc = exchange(sock, url, catalog->timeout_ms, message, (size_t)len, &reply, &reply_len, why,
                      why_size);
    if (rc != 0)
        return rc;
    struct rush_wire_view view;
    struct rush_wire_error error;
    rc = rush_wire_decode(reply, (size_t)reply_len, &view, &error);
    if (rc != 0 || view.kind != RUSH_WIRE_RESULT || view.count != n) {
        snprintf(why, why_size, "query_sku on %s: %s", url,
                 rc != 0                        ? error.text
                 : view.kind == RUSH_WIRE_ERROR ? view.error.text
                                                : "reply does not match the request");
        nn_freemsg(reply);
        return RUSH_EPROTO;
    }
    memcpy(results, view.records, (size_t)n * sizeof(*results));
    nn_freemsg(reply);
    return 0;
}

/* One node (--url): every SKU asked there. */
static int query_one_node(struct rush_catalog *catalog, const char *url, bool after, char *why,
                          size_t why_size)
{
    static uint32_t indexes[RUSH_CATALOG_QUERY_BATCH];
    static struct rush_result results[RUSH_CATALOG_QUERY_BATCH];
    int sock = open_req(url, catalog->timeout_ms, why, why_size);
    if (sock < 0)
        return RUSH_EPROTO;
    int rc = 0;
    for (uint32_t first = 0; first < catalog->count && rc == 0; first += RUSH_CATALOG_QUERY_BATCH) {
        uint32_t n = catalog->count - first;
        n = n < RUSH_CATALOG_QUERY_BATCH ? n : RUSH_CATALOG_QUERY_BATCH;
        for (uint32_t i = 0; i < n; i++)
            indexes[i] = first + i;
        rc = query_some(catalog, sock, url, indexes, n, results, why, why_size);
        for (uint32_t i = 0; rc == 0 && i < n; i++) {
            struct rush_catalog_sku *sku = &catalog->skus[first + i];
            take_figures(after ? &sku->after : &sku->before, &results[i]);
        }
    }
    nn_close(sock);
    return rc;
}

/*
 * Where SKU i goes next after node `node` gave `result` (NULL: no answer): answered (taken;
 * route UINT32_MAX), to the leader named, to the next node, or again after a wait (returns 1).
 */
static uint32_t route_answer(struct rush_catalog *catalog, uint32_t node_count,
                             const struct rush_result *result, uint32_t node, uint32_t i,
                             uint32_t *route, bool after)
{
    struct rush_catalog_sku *sku = &catalog->skus[i];
    if (result == NULL) {
        route[i] = (node + 1) % node_count; /* dead or hung: its shards move soon */
        return 0;
    }
    if (result->outcome != RUSH_REDIRECT) {
        take_figures(after ? &sku->after : &sku->before, result);
        route[i] = UINT32_MAX;
        return 0;
    }
    if (result->qty < node_count) {
        route[i] = result->qty;
        return 0;
    }
    return 1; /* no leader named: ask the same node again after a pause */
}

/*
 * One round over a cluster's nodes: each node asked for the SKUs routed to it (at most
 * RUSH_CATALOG_QUERY_BATCH); an answer is taken, a redirect moves the SKU to the leader named
 * (*waits counts those naming none), silence moves the node's SKUs to the next node. Returns the
 * SKUs still unanswered.
 */
static uint32_t query_round(struct rush_catalog *catalog, const struct rush_loadgen_options *o,
                            uint32_t *route, bool after, uint32_t *waits, char *why,
                            size_t why_size)
{
    static uint32_t indexes[RUSH_CATALOG_QUERY_BATCH];
    static struct rush_result results[RUSH_CATALOG_QUERY_BATCH];
    uint32_t left = 0;
    for (uint32_t node = 0; node < o->node_count; node++) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < catalog->count && n < RUSH_CATALOG_QUERY_BATCH; i++)
            if (route[i] == node)
                indexes[n++] = i;
        int sock = n > 0 ? open_req(o->nodes[node], catalog->timeout_ms, why, why_size) : -1;
        int rc = sock >= 0
                     ? query_some(catalog, sock, o->nodes[node], indexes, n, results, why, why_size)
                     : RUSH_ETIMEDOUT;
        if (sock >= 0)
            nn_close(sock);
        for (uint32_t k = 0; k < n; k++)
            *waits += route_answer(catalog, o->node_count, rc == 0 ? &results[k] : NULL, node,
                                   indexes[k], route, after);
    }
    for (uint32_t i = 0; i < catalog->count; i++)
        left += route[i] != UINT32_MAX;
    return left;
}

/* --nodes (binary): each SKU asked of the leader of its shard, following redirects. */
static int query_nodes(struct rush_catalog *catalog, const struct rush_loadgen_options *o,
                       bool after, char *why, size_t why_size)
{
    uint32_t *route = calloc(catalog->count, sizeof(*route));
    if (route == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < catalog->count; i++)
        route[i] = rush_wire_shard_of_sku(o->shards, catalog->skus[i].def.id) % o->node_count;
    int64_t deadline = rush_clock_monotonic_ms() + RUSH_CATALOG_ROUTE_MS;
    uint32_t left = catalog->count;
    while (left > 0 && rush_clock_monotonic_ms() < deadline) {
        uint32_t waits = 0;
        left = query_round(catalog, o, route, after, &waits, why, why_size);
        if (waits > 0)
            pause_ms(RUSH_CATALOG_LEADER_WAIT_MS);
    }
    free(route);
    if (left > 0)
        snprintf(why, why_size, "query_sku: %u SKUs found no leader within %d ms", left,
                 RUSH_CATALOG_ROUTE_MS);
    return left > 0 ? RUSH_ETIMEDOUT : 0;
}

int rush_catalog_query(struct rush_catalog *catalog, const struct rush_loadgen_options *options,
                       bool after, char *why, size_t why_size)
{
    RUSH_ASSERT(catalog != NULL && options != NULL);
    if (options->node_count > 0 && !options->json)
        return query_nodes(catalog, options, after, why, why_size);
    return query_one_node(catalog, options->url, after, why, why_size);
}

void rush_catalog_totals(const struct rush_catalog *catalog, struct rush_catalog_totals *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < catalog->count; i++) {
        const struct rush_catalog_sku *sku = &catalog->skus[i];
        out->stock_put += catalog->fresh ? sku->def.stock : 0;
        out->available_before += sku->before.available;
        out->held_before += sku->before.reserved + sku->before.confirmed;
        out->available_after += sku->after.available;
        out->reserved_after += sku->after.reserved;
        out->confirmed_after += sku->after.confirmed;
        out->unlimited_count += sku->before.unlimited;
        out->unknown_count += !sku->before.known;
    }
}
