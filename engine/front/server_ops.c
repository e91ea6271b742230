/*
 * server_ops.c — the front end's side of the HTTP console (engine/ops/ops.h): creating it with
 * the server, the counters only the front-end thread can read, and the ledger batch.
 *
 * Cost per loop turn: a handful of relaxed stores and one clock comparison; per decided
 * message: one clock read, one histogram record and one relaxed add per request. The ledger
 * batch (one QUERY_SKU per tracked SKU every RUSH_OPS_LEDGER_MS) goes through the engine like
 * any other batch, and is refused, not queued, when the rings are full.
 *
 * Calls only engine/ops/ and server_reply.c (rush_server_now_ns).
 */
#include <string.h>

#include "base/log.h"
#include "rush/assert.h"
#include "server_internal.h"

static const char *http_address(const struct rush_server *server,
                                const struct rush_server_options *options)
{
    return options->http_address ? options->http_address : server->campaign->endpoints.http;
}

int rush_server_ops_open(struct rush_server *server, const struct rush_server_options *options)
{
    struct rush_ops_config config = {
        .http_address = http_address(server, options),
        .engine = server->engine,
        .campaign = server->campaign,
        .data_dir = server->data_dir,
    };
    if (config.http_address[0] == '\0')
        return 0; /* no console: no ledger queries, no counting */
    int rc = rush_ops_create(&config, &server->ops);
    if (rc == 0)
        atomic_store_explicit(&rush_ops_front(server->ops)->in_flight_max, server->in_flight_max,
                              memory_order_relaxed);
    return rc;
}

int rush_server_ops_start(struct rush_server *server, const struct rush_server_options *options,
                          char *why, size_t why_size)
{
    int rc = server->ops ? rush_ops_start(server->ops, server->publisher, why, why_size) : 0;
    const char *address = http_address(server, options);
    if (rc == 0 && address[0] != '\0')
        rush_log(RUSH_LOG_INFO, "http console on http://%s/ (metrics: /metrics)", address);
    else if (rc == 0)
        rush_log(RUSH_LOG_INFO, "http console: off (no http address)");
    return rc;
}

void rush_server_ops_turn(struct rush_server *server)
{
    if (server->ops == NULL)
        return;
    struct rush_ops_front *front = rush_ops_front(server->ops);
    const struct rush_server_counters *c = &server->counters;
    for (int e = 0; e < RUSH_ENDPOINT_COUNT_; e++)
        atomic_store_explicit(&front->messages[e], c->messages[e], memory_order_relaxed);
    atomic_store_explicit(&front->errors, c->errors, memory_order_relaxed);
    atomic_store_explicit(&front->busy_messages, c->busy_messages, memory_order_relaxed);
    atomic_store_explicit(&front->busy_no_slot, c->busy_no_slot, memory_order_relaxed);
    atomic_store_explicit(&front->in_flight, server->in_flight, memory_order_relaxed);
    struct rush_sp_server_figures tcp;
    rush_sp_server_figures(server->tcp, &tcp);
    atomic_store_explicit(&front->tcp_connections, tcp.connections, memory_order_relaxed);
    atomic_store_explicit(&front->tcp_accepted, tcp.accepted, memory_order_relaxed);
    atomic_store_explicit(&front->tcp_refused, tcp.refused, memory_order_relaxed);
    atomic_store_explicit(&front->tcp_closed_protocol, tcp.closed_protocol, memory_order_relaxed);
    atomic_store_explicit(&front->tcp_dropped_replies, tcp.dropped_replies, memory_order_relaxed);
    if (server->ops_pending || atomic_load(&server->stopping))
        return;
    struct rush_batch *batch = rush_ops_ledger_due(server->ops, rush_server_now_ns());
    if (batch == NULL)
        return;
    if (rush_engine_submit(server->engine, batch) == 0)
        server->ops_pending = true;
    else
        rush_ops_ledger_refused(server->ops); /* busy: the next turn after the interval */
}

bool rush_server_ops_delivered(struct rush_server *server, struct rush_batch *batch)
{
    if (!rush_ops_owns(server->ops, batch))
        return false;
    RUSH_ASSERT(server->ops_pending);
    server->ops_pending = false;
    rush_ops_ledger_back(server->ops, batch);
    return true;
}

void rush_server_ops_decided(struct rush_server *server, const struct rush_server_slot *slot)
{
    if (server->ops == NULL)
        return;
    struct rush_ops_front *front = rush_ops_front(server->ops);
    rush_latency_record(&front->request_latency,
                        (uint64_t)(rush_server_now_ns() - slot->received_ns));
    for (uint32_t i = 0; i < slot->valid_count; i++) {
        uint8_t op = slot->requests[i].op, outcome = slot->results[i].outcome;
        if (op < RUSH_OP_COUNT_ && outcome < RUSH_OUTCOME_COUNT_)
            rush_ops_count(&front->requests[op][outcome], 1);
    }
}
