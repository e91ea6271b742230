/*
 * ops.h — the operators' console inside rushd: a read-only HTTP endpoint (libmicrohttpd) serving
 *
 *   GET /                     the big-screen dashboard page (dashboard.html, built into rushd)
 *   GET /api/dashboard.json   the figures the page draws, once a second
 *   GET /metrics              the same figures in the Prometheus text format (names rush_*)
 *
 * Anything else is 404; a method other than GET or HEAD is 405. It never sees the admin token.
 *
 * Where the figures come from, and what each costs (ARCHITECTURE.md "Operations console"):
 *   - engine counters (rush_engine_stats) and per-shard figures (engine_figures.h): atomics the
 *     shards already keep, plus one clock read per pass; read here without a lock;
 *   - per-SKU ledger (available / reserved / confirmed, open groups, paused): one QUERY_SKU
 *     batch for the tracked SKUs, submitted by the front end every RUSH_OPS_LEDGER_MS like any
 *     other batch (rush_ops_ledger_due / _back), so the shards answer it between real work
 *     (these queries count among the engine's requests; rushd makes no console, and asks
 *     nothing, when the http address is empty);
 *   - per-SKU stream figures (units sold, GMV in fen, released, expired, refunds, groups
 *     completed and failed, virtual seats): counted on the publisher's live thread from the
 *     events it publishes (rush_ops_on_events), since this start of rushd;
 *   - front-end figures (requests by op and outcome, end-to-end latency, busy answers by cause):
 *     written by the front-end thread into struct rush_ops_front.
 *
 * Threads. rush_ops_create / _start / _stop / _destroy and the rush_ops_front / ledger calls
 * belong to the front-end thread; rush_ops_on_events to the publisher's live thread; the HTTP
 * daemon runs on its own thread (MHD's internal polling thread) and only reads. Each figure has
 * one writer; readers load atomics, so nobody waits for anybody.
 *
 * Bounds. At most RUSH_OPS_HTTP_CONNECTIONS_MAX connections at once, each closed after
 * RUSH_OPS_HTTP_TIMEOUT_S idle seconds; a request has RUSH_OPS_HTTP_MEMORY_BYTES of buffer;
 * RUSH_OPS_SKUS_MAX SKUs are tracked one by one (the campaign's first, then those the stream
 * shows), the rest only in totals.
 */
#ifndef RUSH_OPS_H
#define RUSH_OPS_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/latency.h"
#include "campaign/campaign.h"
#include "rush/engine.h"
#include "rush/stream.h"
#include "stream/publisher.h"

#define RUSH_OPS_SKUS_MAX 1024
#define RUSH_OPS_LEDGER_MS 500 /* how often the front end asks the shards for the ledgers */
#define RUSH_OPS_HTTP_CONNECTIONS_MAX 32
#define RUSH_OPS_HTTP_TIMEOUT_S 5
#define RUSH_OPS_HTTP_MEMORY_BYTES (32 * 1024)
#define RUSH_OPS_ENDPOINTS 3 /* orders, json, admin */

/* What the front-end thread counts (its only writer); any thread reads. */
struct rush_ops_front {
    _Atomic uint64_t requests[RUSH_OP_COUNT_][RUSH_OUTCOME_COUNT_]; /* by op and outcome */
    _Atomic uint64_t messages[RUSH_OPS_ENDPOINTS];
    _Atomic uint64_t errors;       /* messages answered with a decode error */
    _Atomic uint64_t busy_no_slot; /* messages answered busy: every in-flight slot taken */
    _Atomic uint64_t busy_messages;
    _Atomic uint64_t in_flight;
    _Atomic uint64_t in_flight_max;
    struct rush_latency request_latency; /* message received to reply sent */
    /* rushd's own tcp:// transport (engine/front/sp_server.c). */
    _Atomic uint64_t tcp_connections;
    _Atomic uint64_t tcp_accepted;
    _Atomic uint64_t tcp_refused;
    _Atomic uint64_t tcp_closed_protocol;
    _Atomic uint64_t tcp_dropped_replies;
};

/* One writer: a relaxed load and store, no locked instruction. */
static inline void rush_ops_count(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

struct rush_ops_config {
    const char *http_address;             /* HOST:PORT (numeric IPv4); "" or NULL: no HTTP */
    struct rush_engine *engine;           /* outlives the ops */
    const struct rush_campaign *campaign; /* its SKUs are tracked first; outlives the ops */
    const char *data_dir;                 /* shown on the page */
};

struct rush_ops;

/* Allocates the figures and tracks the campaign's SKUs; no thread yet. 0 or -ENOMEM. */
RUSH_MUST_USE int rush_ops_create(const struct rush_ops_config *config, struct rush_ops **out);
/*
 * Starts the HTTP daemon (when an address was given) reading `publisher` (NULL: none) too.
 * 0, or < 0 with why (the address cannot be bound, ...).
 */
RUSH_MUST_USE int rush_ops_start(struct rush_ops *ops, struct rush_publisher *publisher, char *why,
                                 size_t why_size);
/* Stops the HTTP daemon (it reads the engine and publisher: stop it before they go). */
void rush_ops_stop(struct rush_ops *ops);
/* Frees everything; after the engine is destroyed (it may still write a ledger batch). */
void rush_ops_destroy(struct rush_ops *ops);

/* The publisher's live thread: a run of published events (rush_publisher_events_fn). */
void rush_ops_on_events(void *ops, uint32_t shard, const struct rush_stream_event *events,
                        uint32_t count);

/* Front-end thread. A SKU an admin sku_put created: tracked from now on (if there is room). */
void rush_ops_sku_put(struct rush_ops *ops, const struct rush_sku *def);
struct rush_ops_front *rush_ops_front(struct rush_ops *ops);
/* A QUERY_SKU batch to submit when one is due and none is out; else NULL. */
struct rush_batch *rush_ops_ledger_due(struct rush_ops *ops, int64_t now_ns);
/* True for the batch rush_ops_ledger_due handed out. */
bool rush_ops_owns(const struct rush_ops *ops, const struct rush_batch *batch);
/* The batch came back (decided or refused: status); the ledgers are published. */
void rush_ops_ledger_back(struct rush_ops *ops, struct rush_batch *batch);
/* The batch could not be submitted (a full ring): try again next time. */
void rush_ops_ledger_refused(struct rush_ops *ops);

#endif
