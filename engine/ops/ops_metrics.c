/*
 * ops_metrics.c — the figures in the Prometheus text exposition format (version 0.0.4), for
 * GET /metrics. Every name starts with rush_; counters end in _total; units are base units
 * (seconds, bytes) except money, which stays integer fen (_fen). Each family is written whole
 * (HELP, TYPE, samples) once, so `promtool check metrics` finds no duplicate or unordered family.
 */
#include <inttypes.h>

#include "ops_internal.h"

static void family(struct ops_text *t, const char *name, const char *type, const char *help)
{
    ops_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void plain(struct ops_text *t, const char *name, const char *type, const char *help,
                  uint64_t value)
{
    family(t, name, type, help);
    ops_text_printf(t, "%s %" PRIu64 "\n", name, value);
}

static void histogram(struct ops_text *t, const char *name, const char *help,
                      const struct rush_latency_figures *h)
{
    family(t, name, "histogram", help);
    uint64_t cumulative = 0;
    for (uint32_t b = 0; b < RUSH_LATENCY_BOUNDS; b++) {
        cumulative += h->bucket_count[b];
        ops_text_printf(t, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
                        (double)rush_latency_bound_ns(b) / 1e9, cumulative);
    }
    cumulative += h->bucket_count[RUSH_LATENCY_BOUNDS];
    ops_text_printf(t, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
    ops_text_printf(t, "%s_sum %.9f\n%s_count %" PRIu64 "\n", name, (double)h->sum_ns / 1e9, name,
                    cumulative);
}

static void requests(struct ops_text *t, const struct ops_figures *f)
{
    family(t, "rush_requests_total", "counter",
           "Requests answered by the order and JSON endpoints, by op and outcome.");
    for (int op = 1; op < RUSH_OP_COUNT_; op++)
        for (int o = 0; o < RUSH_OUTCOME_COUNT_; o++)
            if (f->requests[op][o] > 0)
                ops_text_printf(t, "rush_requests_total{op=\"%s\",outcome=\"%s\"} %" PRIu64 "\n",
                                rush_op_name((enum rush_op)op),
                                rush_outcome_name((enum rush_outcome)o), f->requests[op][o]);
    family(t, "rush_engine_outcomes_total", "counter",
           "Decisions by outcome, as the shards count them (admin requests included).");
    for (int o = 0; o < RUSH_OUTCOME_COUNT_; o++)
        ops_text_printf(t, "rush_engine_outcomes_total{outcome=\"%s\"} %" PRIu64 "\n",
                        rush_outcome_name((enum rush_outcome)o), f->engine.outcomes[o]);
    static const char *const endpoints[RUSH_OPS_ENDPOINTS] = {"orders", "json", "admin"};
    family(t, "rush_messages_total", "counter", "Messages received, by endpoint.");
    for (int e = 0; e < RUSH_OPS_ENDPOINTS; e++)
        ops_text_printf(t, "rush_messages_total{endpoint=\"%s\"} %" PRIu64 "\n", endpoints[e],
                        f->messages[e]);
    family(t, "rush_busy_total", "counter", "Busy answers by cause.");
    uint64_t ring_full = f->busy_messages - f->busy_no_slot;
    ops_text_printf(t, "rush_busy_total{cause=\"no_slot\"} %" PRIu64 "\n", f->busy_no_slot);
    ops_text_printf(t, "rush_busy_total{cause=\"ring_full\"} %" PRIu64 "\n", ring_full);
    ops_text_printf(t, "rush_busy_total{cause=\"table_full\"} %" PRIu64 "\n",
                    f->engine.outcomes[RUSH_BUSY]);
    plain(t, "rush_decode_errors_total", "counter", "Messages answered with a decode error.",
          f->errors);
    plain(t, "rush_engine_requests_total", "counter", "Requests decided by the shards.",
          f->engine.requests);
    plain(t, "rush_engine_duplicates_total", "counter", "Retries answered from the key table.",
          f->engine.duplicates);
    plain(t, "rush_engine_events_total", "counter", "Events the shards decided.", f->engine.events);
    plain(t, "rush_recovered_events_total", "counter", "Events replayed from the log at start.",
          f->engine.recovered_events);
}

/* One per-SKU family: `pick` chooses the figure of a row. */
static void sku_family(struct ops_text *t, const struct ops_figures *f, const char *name,
                       const char *type, const char *help,
                       int64_t (*pick)(const struct ops_sku_row *), bool ledger)
{
    family(t, name, type, help);
    for (uint32_t i = 0; i < f->sku_count; i++) {
        const struct ops_sku_row *row = &f->skus[i];
        if (ledger && ((row->flags & OPS_SKU_KNOWN) == 0 || (row->flags & OPS_SKU_UNKNOWN)))
            continue;
        ops_text_printf(t, "%s{sku=\"%" PRIu64 "\",name=\"", name, row->id);
        ops_text_escaped(t, row->name);
        ops_text_printf(t, "\"} %" PRId64 "\n", pick(row));
    }
}

#define PICK(field)                                                                                \
    static int64_t pick_##field(const struct ops_sku_row *row)                                     \
    {                                                                                              \
        return (int64_t)row->field;                                                                \
    }
PICK(available)
PICK(reserved)
PICK(confirmed)
PICK(units_sold)
PICK(orders_confirmed)
PICK(gmv_fen)
PICK(orders_released)
PICK(orders_expired)
PICK(refunds)
PICK(refunds_fen)
PICK(groups_open)
PICK(groups_completed)
PICK(groups_failed)
PICK(virtual_seats)
PICK(virtual_budget)
PICK(price_fen)

static int64_t pick_groups_opened(const struct ops_sku_row *row)
{
    return (int64_t)(row->groups_open + row->groups_completed + row->groups_failed);
}

static void skus(struct ops_text *t, const struct ops_figures *f)
{
    sku_family(t, f, "rush_sku_available_units", "gauge", "Units on sale now (ledger).",
               pick_available, true);
    sku_family(t, f, "rush_sku_reserved_units", "gauge", "Units held, not yet paid (ledger).",
               pick_reserved, true);
    sku_family(t, f, "rush_sku_confirmed_units", "gauge", "Units confirmed (ledger).",
               pick_confirmed, true);
    sku_family(t, f, "rush_sku_price_fen", "gauge", "Unit price in the campaign, fen.",
               pick_price_fen, false);
    sku_family(t, f, "rush_sku_sold_units_total", "counter",
               "Units of confirmed orders on the stream since rushd started.", pick_units_sold,
               false);
    sku_family(t, f, "rush_sku_orders_confirmed_total", "counter",
               "Confirmed orders on the stream since rushd started.", pick_orders_confirmed, false);
    sku_family(t, f, "rush_sku_gmv_fen_total", "counter",
               "GMV of confirmed orders in fen (stream, since rushd started).", pick_gmv_fen,
               false);
    sku_family(t, f, "rush_sku_orders_released_total", "counter", "Orders released (stream).",
               pick_orders_released, false);
    sku_family(t, f, "rush_sku_orders_expired_total", "counter", "Orders expired (stream).",
               pick_orders_expired, false);
    sku_family(t, f, "rush_sku_refunds_total", "counter", "Refunds due (stream).", pick_refunds,
               false);
    sku_family(t, f, "rush_sku_refunds_fen_total", "counter", "Refunds due in fen (stream).",
               pick_refunds_fen, false);
    sku_family(t, f, "rush_sku_groups_open", "gauge", "Groups open now (ledger).", pick_groups_open,
               true);
    sku_family(t, f, "rush_sku_groups_opened", "gauge",
               "Groups opened: open now + completed + failed since rushd started.",
               pick_groups_opened, true);
    sku_family(t, f, "rush_sku_groups_completed_total", "counter", "Groups completed (stream).",
               pick_groups_completed, false);
    sku_family(t, f, "rush_sku_groups_failed_total", "counter", "Groups failed (stream).",
               pick_groups_failed, false);
    sku_family(t, f, "rush_sku_virtual_seats_used_total", "counter",
               "Virtual seats used by completed groups (stream).", pick_virtual_seats, false);
    sku_family(t, f, "rush_sku_virtual_seats_budget", "gauge",
               "Virtual seats the campaign allows the SKU.", pick_virtual_budget, false);
    family(t, "rush_sku_sellout_seconds", "gauge",
           "Seconds from the sale's start (or rushd's) to the ledger first showing none left.");
    for (uint32_t i = 0; i < f->sku_count; i++) {
        const struct ops_sku_row *row = &f->skus[i];
        if (row->sold_out_ns == 0)
            continue;
        int64_t from = row->start_ns != 0 ? row->start_ns : f->started_wall_ns;
        ops_text_printf(t, "rush_sku_sellout_seconds{sku=\"%" PRIu64 "\",name=\"", row->id);
        ops_text_escaped(t, row->name);
        ops_text_printf(t, "\"} %.3f\n", (double)(row->sold_out_ns - from) / 1e9);
    }
}

static void totals(struct ops_text *t, const struct ops_figures *f)
{
    plain(t, "rush_gmv_fen_total", "counter", "GMV of every confirmed order, fen (stream).",
          f->totals.gmv_fen);
    plain(t, "rush_orders_confirmed_total", "counter", "Confirmed orders (stream).",
          f->totals.orders_confirmed);
    plain(t, "rush_units_sold_total", "counter", "Units confirmed (stream).", f->totals.units_sold);
    plain(t, "rush_groups_completed_total", "counter", "Groups completed (stream).",
          f->totals.groups_completed);
    plain(t, "rush_groups_failed_total", "counter", "Groups failed (stream).",
          f->totals.groups_failed);
    plain(t, "rush_virtual_seats_used_total", "counter", "Virtual seats used (stream).",
          f->totals.virtual_seats);
}

static void shards(struct ops_text *t, const struct ops_figures *f)
{
    static const struct {
        const char *name, *type, *help;
    } rows[] = {
        {"rush_wal_bytes_written_total", "counter", "Bytes the shard's log wrote."},
        {"rush_wal_syncs_total", "counter", "fdatasyncs the shard's log completed."},
        {"rush_wal_durable_lsn", "gauge", "The shard's durable log sequence number."},
        {"rush_stream_head_seq", "gauge", "The newest stream seq published for the shard."},
        {"rush_ring_inbound_items", "gauge", "Work items queued for the shard."},
        {"rush_ring_outbound_items", "gauge", "Decided work items not yet collected."},
        {"rush_ring_slots", "gauge", "Slots of each of the shard's rings."},
    };
    for (uint32_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        family(t, rows[r].name, rows[r].type, rows[r].help);
        for (uint32_t s = 0; s < f->shard_count; s++) {
            const struct ops_shard_row *row = &f->shards[s];
            uint64_t values[] = {row->engine.wal_bytes_written, row->engine.wal_syncs,
                                 row->engine.durable_lsn,       row->head_seq,
                                 row->engine.inbound_depth,     row->engine.outbound_depth,
                                 row->engine.ring_slots};
            ops_text_printf(t, "%s{shard=\"%u\"} %" PRIu64 "\n", rows[r].name, s, values[r]);
        }
    }
}

static void tables(struct ops_text *t, const struct ops_figures *f)
{
    static const char *const names[RUSH_TABLE_COUNT_] = {"skus", "orders", "groups", "keys",
                                                         "user_limits"};
    family(t, "rush_table_used", "gauge", "Entries used in a shard's table (its last pass).");
    for (uint32_t s = 0; s < f->shard_count; s++)
        for (int k = 0; k < RUSH_TABLE_COUNT_; k++)
            ops_text_printf(t, "rush_table_used{shard=\"%u\",table=\"%s\"} %u\n", s, names[k],
                            f->shards[s].engine.tables.used[k]);
    family(t, "rush_table_capacity", "gauge", "Entries a shard's table holds at most.");
    for (uint32_t s = 0; s < f->shard_count; s++)
        for (int k = 0; k < RUSH_TABLE_COUNT_; k++)
            ops_text_printf(t, "rush_table_capacity{shard=\"%u\",table=\"%s\"} %u\n", s, names[k],
                            f->shards[s].engine.tables.max[k]);
}

static void publisher(struct ops_text *t, const struct ops_figures *f)
{
    if (!f->has_publisher)
        return;
    const struct rush_publisher_stats *p = &f->publisher;
    plain(t, "rush_stream_events_published_total", "counter", "Events sent on the live stream.",
          p->events_published);
    plain(t, "rush_stream_sends_dropped_total", "counter", "Stream messages PUB dropped.",
          p->sends_dropped);
    plain(t, "rush_stream_replay_requests_total", "counter", "Replay requests served.",
          p->replay_requests);
    family(t, "rush_stream_replay_events_total", "counter", "Events replayed, by source.");
    ops_text_printf(t, "rush_stream_replay_events_total{source=\"memory\"} %" PRIu64 "\n",
                    p->replay_events_from_memory);
    ops_text_printf(t, "rush_stream_replay_events_total{source=\"log\"} %" PRIu64 "\n",
                    p->replay_events_from_log);
    plain(t, "rush_stream_replay_too_old_total", "counter", "Replays answered too_old.",
          p->replay_too_old);
    plain(t, "rush_stream_read_errors_total", "counter", "Log read errors of the publisher.",
          p->read_errors);
}

/* rushd's own tcp:// transport (zero when its endpoints go through nanomsg). */
static void tcp(struct ops_text *t, const struct ops_figures *f)
{
    plain(t, "rush_tcp_connections", "gauge", "Client connections open on tcp:// endpoints.",
          f->tcp_connections);
    family(t, "rush_tcp_connections_total", "counter",
           "Connections to tcp:// endpoints: accepted, or refused (over the connection limit).");
    ops_text_printf(t, "rush_tcp_connections_total{result=\"accepted\"} %" PRIu64 "\n",
                    f->tcp_accepted);
    ops_text_printf(t, "rush_tcp_connections_total{result=\"refused\"} %" PRIu64 "\n",
                    f->tcp_refused);
    plain(t, "rush_tcp_protocol_closes_total", "counter",
          "Connections closed for what they sent: a bad greeting, length or request id, no "
          "greeting in time, or a message the input memory budget cannot hold.",
          f->tcp_closed_protocol);
    plain(t, "rush_tcp_replies_dropped_total", "counter",
          "Replies not sent: their connection closed before they were decided.",
          f->tcp_dropped_replies);
}

void ops_metrics_render(const struct ops_figures *f, struct ops_text *t)
{
    plain(t, "rush_up", "gauge", "1 while rushd serves.", 1);
    family(t, "rush_start_time_seconds", "gauge", "When rushd started, Unix seconds.");
    ops_text_printf(t, "rush_start_time_seconds %.3f\n", (double)f->started_wall_ns / 1e9);
    plain(t, "rush_wal_failed", "gauge", "1 once a shard's log failed (sticky).",
          f->engine.wal_error != 0);
    requests(t, f);
    plain(t, "rush_in_flight_messages", "gauge", "Messages submitted and not yet answered.",
          f->in_flight);
    plain(t, "rush_in_flight_messages_max", "gauge", "In-flight slots.", f->in_flight_max);
    tcp(t, f);
    plain(t, "rush_ring_full_total", "counter", "Submits the engine refused for a full ring.",
          f->engine.busy_rings);
    histogram(t, "rush_decision_latency_seconds",
              "One shard pass: deciding its requests and appending them to the log.",
              &f->decide_latency);
    histogram(t, "rush_request_latency_seconds",
              "End to end in rushd: a message received to its reply sent.", &f->request_latency);
    histogram(t, "rush_wal_sync_latency_seconds", "A log write + fdatasync, issue to completion.",
              &f->sync_latency);
    totals(t, f);
    skus(t, f);
    shards(t, f);
    tables(t, f);
    publisher(t, f);
}
