/*
 * catalog.h — the SKUs a load run trades in: chosen, put into rushd, and looked up.
 *
 * What and why. A scenario needs SKUs whose rules it knows (stock, limits, group size, pay TTL)
 * and whose state no earlier run has touched, or its figures (ok == stock, no oversell) mean
 * nothing. So by default a run puts FRESH SKUs through rushd's admin endpoint (JSON sku_put
 * with the admin token): ids base .. base + count - 1, where base comes from the wall clock in
 * milliseconds shifted left 22 bits (runs started a millisecond apart never share an id, for up
 * to 4M SKUs each) unless --sku-base says otherwise; sale window open since a minute ago, never
 * ending. With --campaign-skus nothing is put: the run uses the built-in double11 campaign's
 * SKUs for its scenario (hot 1001..1003 for midnight, 4001/4002 for groups, ...), whatever
 * stock earlier runs left them.
 *
 * Either way rush_catalog_query() asks rushd (binary query_sku on the orders endpoint) for each
 * SKU's available, reserved and confirmed units: before the run (which is also the check that
 * rushd answers at all, and that the campaign SKUs exist) and after it, for the report.
 *
 * Workload: set-up and tear-down only; one admin exchange per fresh SKU (a thousand SKUs take
 * well under a second), one query message per RUSH_CATALOG_QUERY_BATCH SKUs.
 *
 * Threads: the caller's; each call opens and closes its own socket.
 */
#ifndef RUSH_CATALOG_H
#define RUSH_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "rush/types.h"

#define RUSH_CATALOG_QUERY_BATCH 4096
#define RUSH_CATALOG_SETUP_TIMEOUT_MS 5000
#define RUSH_CATALOG_SETUP_TIMEOUT_MIN_MS 1000 /* a short --timeout-ms is for the load only */
#define RUSH_CATALOG_ROUTE_MS 20000 /* a cluster: a SKU's put or query follows leaders so long */
#define RUSH_CATALOG_LEADER_WAIT_MS 100 /* a redirect naming no leader: ask again after this */
#define RUSH_CATALOG_ID_SHIFT 22 /* fresh ids: (clock ms mod 2^30) << 22, up to 4M SKUs a run */

/*
 * The social scenario's catalogue, by index: the deal (solo and groups of 2), the tiered group,
 * the new-users-only SKU, then three colours of one activity. The colours are ids of family
 * RUSH_CATALOG_SOCIAL_FAMILY, whose activity rushd's campaign must define: the built-in one's
 * [activity rmb1-phone] (user_qty_max 1), so RUSH_CATALOG_SOCIAL_ACTIVITY_QTY_MAX is 1.
 */
#define RUSH_CATALOG_SOCIAL_DEAL 0
#define RUSH_CATALOG_SOCIAL_TIERED 1
#define RUSH_CATALOG_SOCIAL_NEW_USERS 2
#define RUSH_CATALOG_SOCIAL_COLOUR 3
#define RUSH_CATALOG_SOCIAL_SKUS 6
#define RUSH_CATALOG_SOCIAL_FAMILY UINT64_C(5000000000001)
#define RUSH_CATALOG_SOCIAL_ACTIVITY_QTY_MAX 1
#define RUSH_CATALOG_SOCIAL_COLOUR_STOCK INT64_C(1000000000)

/* What rushd says about one SKU (query_sku). */
struct rush_catalog_figures {
    int64_t available;
    int64_t reserved;
    int64_t confirmed;
    bool unlimited;
    bool known; /* false: rushd answered unknown_sku */
};

struct rush_catalog_sku {
    struct rush_sku def; /* fresh SKUs: what is put; campaign SKUs: id only */
    struct rush_catalog_figures before;
    struct rush_catalog_figures after;
};

struct rush_catalog {
    struct rush_catalog_sku *skus;
    uint32_t count;
    bool fresh; /* put by this run (else the campaign's) */
    uint64_t base_id;
    int timeout_ms; /* per set-up exchange: --timeout-ms, within SETUP_TIMEOUT_MIN_MS.._MS */
};

/*
 * Chooses the SKUs for options->scenario: fresh definitions (ids from options->sku_base or the
 * clock), or the campaign's ids. Allocates skus. 0, -ENOMEM.
 */
RUSH_MUST_USE int rush_catalog_plan(struct rush_catalog *catalog,
                                    const struct rush_loadgen_options *options);
void rush_catalog_free(struct rush_catalog *catalog);

/*
 * Puts every fresh SKU through the admin endpoint with options->token: --admin-url, or with
 * --admins the admin endpoint of the node that leads the SKU's shard (a redirect names it, a
 * silent node passes the SKU to the next; RUSH_CATALOG_ROUTE_MS per SKU at most). 0, or a
 * negative code with the reason in why: RUSH_ETIMEDOUT (no answer), RUSH_EPROTO (refused: bad
 * token, ...).
 */
RUSH_MUST_USE int rush_catalog_put(const struct rush_catalog *catalog,
                                   const struct rush_loadgen_options *options, char *why,
                                   size_t why_size);

/*
 * Queries every SKU on the orders endpoint into ->before (after == false) or ->after: --url, or
 * with binary --nodes the node that leads each SKU's shard (redirects followed, a silent node's
 * SKUs asked of the next, RUSH_CATALOG_ROUTE_MS at most), so that a cluster's figures are its
 * leaders' whichever node died. 0, or RUSH_ETIMEDOUT / RUSH_EPROTO with the reason in why.
 */
RUSH_MUST_USE int rush_catalog_query(struct rush_catalog *catalog,
                                     const struct rush_loadgen_options *options, bool after,
                                     char *why, size_t why_size);

/* Sums over the SKUs: stock put (fresh), and the before/after figures. */
struct rush_catalog_totals {
    int64_t stock_put;
    int64_t available_before;
    int64_t held_before; /* reserved + confirmed */
    int64_t available_after;
    int64_t reserved_after;
    int64_t confirmed_after;
    uint32_t unlimited_count;
    uint32_t unknown_count;
};
void rush_catalog_totals(const struct rush_catalog *catalog, struct rush_catalog_totals *out);

#endif
