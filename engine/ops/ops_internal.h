/*
 * ops_internal.h — the console's state and the files that share it. Calls go one way:
 *
 *   ops.c (life, SKU table, stream hook, ledger batch) --> ops_http.c (the daemon, routes)
 *   ops_http.c --> ops_figures.c (one consistent-enough copy of every figure)
 *              --> ops_metrics.c, ops_dashboard.c (render a copy) --> ops_text.c (a growing
 *                  text buffer)
 *
 * Not for use outside engine/ops/.
 *
 * Invariants.
 *   1. sku_count only grows; entries [0, sku_count) are fully written before sku_count is
 *      stored (release), so a reader that loads it (acquire) sees whole entries.
 *   2. Each per-SKU counter has one writer: the publisher's live thread for the stream figures,
 *      the front-end thread for the ledger figures.
 *   3. SKUs are added under add_lock (by the live thread when the stream shows a new one, by the
 *      front end on an admin sku_put); an index slot is written once, 0 -> entry + 1 (release),
 *      so sku_find needs no lock (acquire loads) and add re-checks under the lock.
 */
#ifndef RUSH_OPS_INTERNAL_H
#define RUSH_OPS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine_figures.h"
#include "ops.h"

#define OPS_INDEX_SLOTS (2 * RUSH_OPS_SKUS_MAX) /* open addressing, at most half full */

struct ops_sku {
    /* set before the entry is published (invariant 1), then constant */
    uint64_t id;
    char name[RUSH_SKU_NAME_MAX + 1];
    int64_t price_fen; /* the campaign's; 0 for a SKU first seen on the stream */
    int64_t start_ns;
    uint32_t group_size;
    uint32_t virtual_budget;
    /* the stream (live thread) */
    _Atomic uint64_t units_sold, orders_confirmed, gmv_fen;
    _Atomic uint64_t orders_released, orders_expired, refunds, refunds_fen;
    _Atomic uint64_t groups_completed, groups_failed, virtual_seats;
    /* the ledger (front-end thread) */
    _Atomic int64_t available, reserved, confirmed;
    _Atomic uint64_t groups_open;
    _Atomic uint32_t flags;      /* OPS_SKU_* */
    _Atomic int64_t sold_out_ns; /* wall clock when the ledger first showed 0 available; 0: not */
};

#define OPS_SKU_KNOWN 1u /* a ledger answer arrived */
#define OPS_SKU_PAUSED 2u
#define OPS_SKU_UNLIMITED 4u
#define OPS_SKU_UNKNOWN 8u /* the engine answered unknown_sku */

/* Stream totals, SKUs beyond RUSH_OPS_SKUS_MAX included (live thread writes). */
struct ops_totals {
    _Atomic uint64_t units_sold, orders_confirmed, gmv_fen, orders_released, orders_expired;
    _Atomic uint64_t refunds, refunds_fen, groups_completed, groups_failed, virtual_seats;
    _Atomic uint64_t events;
};

struct rush_ops {
    struct rush_engine *engine;
    struct rush_publisher *publisher; /* NULL: none */
    char http_address[RUSH_ENDPOINT_BYTES_MAX];
    char data_dir[RUSH_DATA_DIR_BYTES_MAX];
    int64_t started_wall_ns;
    uint32_t shard_count;
    struct rush_ops_front front;
    struct ops_totals totals;
    struct ops_sku *skus;       /* RUSH_OPS_SKUS_MAX */
    _Atomic uint32_t sku_count; /* invariant 1 */
    _Atomic uint32_t *index;    /* OPS_INDEX_SLOTS entries: sku index + 1, 0 empty (invariant 3) */
    pthread_mutex_t add_lock;
    _Atomic int64_t ledger_wall_ns; /* when the last ledger batch came back (0: none yet) */
    _Atomic uint64_t ledger_rounds;
    /* the front end's ledger batch */
    struct rush_batch ledger;
    struct rush_request *ledger_requests;
    struct rush_result *ledger_results;
    bool ledger_out;
    int64_t ledger_next_ns;
    void *daemon; /* struct MHD_Daemon */
};

/* ---- ops_figures.c: a copy of everything, for one response ---- */

struct ops_sku_row {
    uint64_t id;
    char name[RUSH_SKU_NAME_MAX + 1];
    int64_t price_fen, start_ns, available, reserved, confirmed, sold_out_ns;
    uint32_t group_size, virtual_budget, flags;
    uint64_t units_sold, orders_confirmed, gmv_fen, orders_released, orders_expired;
    uint64_t refunds, refunds_fen, groups_completed, groups_failed, virtual_seats, groups_open;
};

struct ops_shard_row {
    struct rush_engine_shard_figures engine;
    uint64_t head_seq; /* the publisher's; 0 without one */
};

struct ops_figures {
    int64_t wall_ns, started_wall_ns, ledger_wall_ns;
    uint64_t ledger_rounds;
    uint32_t shard_count;
    struct rush_engine_stats engine;
    bool has_publisher;
    struct rush_publisher_stats publisher;
    uint64_t requests[RUSH_OP_COUNT_][RUSH_OUTCOME_COUNT_];
    uint64_t messages[RUSH_OPS_ENDPOINTS];
    uint64_t errors, busy_no_slot, busy_messages, in_flight, in_flight_max;
    uint64_t tcp_connections, tcp_accepted, tcp_refused, tcp_closed_protocol, tcp_dropped_replies;
    struct rush_latency_figures request_latency, decide_latency, sync_latency;
    struct ops_totals_copy {
        uint64_t units_sold, orders_confirmed, gmv_fen, orders_released, orders_expired;
        uint64_t refunds, refunds_fen, groups_completed, groups_failed, virtual_seats, events;
    } totals;
    const char *data_dir;
    struct ops_shard_row shards[RUSH_SHARDS_MAX];
    uint32_t sku_count;
    struct ops_sku_row skus[]; /* sku_count */
};

/* malloc'ed; NULL when out of memory. Any thread (the HTTP thread). */
struct ops_figures *ops_figures_collect(struct rush_ops *ops);

/* ---- ops_text.c: a growing text buffer (the HTTP thread's) ---- */

struct ops_text {
    char *bytes;
    size_t len, cap;
    bool failed; /* out of memory: the response is a 500 */
};
void ops_text_printf(struct ops_text *text, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* s as the inside of a JSON string (or a Prometheus label value: same escapes). */
void ops_text_escaped(struct ops_text *text, const char *s);

/* ---- the renderers ---- */
void ops_metrics_render(const struct ops_figures *figures, struct ops_text *text);
void ops_dashboard_render(const struct ops_figures *figures, struct ops_text *text);

/* ---- ops_http.c ---- */
RUSH_MUST_USE int ops_http_start(struct rush_ops *ops, char *why, size_t why_size);
void ops_http_stop(struct rush_ops *ops);

/* ---- the page (generated at build time from dashboard.html) ---- */
extern const char rush_ops_dashboard_page[];
extern const size_t rush_ops_dashboard_page_bytes;

#endif
