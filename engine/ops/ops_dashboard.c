/*
 * ops_dashboard.c — the figures as one JSON object, for GET /api/dashboard.json (what the page
 * draws, and what `rushctl top` prints). Money in integer fen, times in ns or seconds as named,
 * latencies as p50/p99 in microseconds (interpolated in log buckets: proto/base/latency.h).
 *
 *   {"time_ns","started_ns","ledger_ns","ledger_rounds","shards","data_dir",
 *    "totals":{gmv_fen, orders_confirmed, units_sold, orders_released, orders_expired, refunds,
 *              refunds_fen, groups_completed, groups_failed, virtual_seats, requests, events},
 *    "outcomes":{name: count}, "busy":{no_slot, ring_full, table_full},
 *    "latency_us":{decide_p50, decide_p99, request_p50, request_p99, sync_p50, sync_p99},
 *    "wal":{failed, bytes, syncs}, "stream":{on, published, dropped, replay_requests, heads:[]},
 *    "rings":{inbound, outbound, slots}, "in_flight", "in_flight_max", "table_full" (the fullest
 *    table of any shard, 0..1),
 *    "skus":[{id, name, price_fen, known, paused, unlimited, available, reserved, confirmed,
 *             sold_out_s, units_sold, orders_confirmed, gmv_fen, released, expired, refunds,
 *             refunds_fen, group_size, groups_open, groups_completed, groups_failed,
 *             virtual_seats, virtual_budget}]}
 */
#include <inttypes.h>

#include "ops_internal.h"

static void totals(struct ops_text *t, const struct ops_figures *f)
{
    const struct ops_totals_copy *x = &f->totals;
    ops_text_printf(t,
                    "\"totals\":{\"gmv_fen\":%" PRIu64 ",\"orders_confirmed\":%" PRIu64
                    ",\"units_sold\":%" PRIu64 ",\"orders_released\":%" PRIu64
                    ",\"orders_expired\":%" PRIu64 ",\"refunds\":%" PRIu64
                    ",\"refunds_fen\":%" PRIu64 ",\"groups_completed\":%" PRIu64
                    ",\"groups_failed\":%" PRIu64 ",\"virtual_seats\":%" PRIu64
                    ",\"requests\":%" PRIu64 ",\"events\":%" PRIu64 "},",
                    x->gmv_fen, x->orders_confirmed, x->units_sold, x->orders_released,
                    x->orders_expired, x->refunds, x->refunds_fen, x->groups_completed,
                    x->groups_failed, x->virtual_seats, f->engine.requests, x->events);
}

static void outcomes(struct ops_text *t, const struct ops_figures *f)
{
    ops_text_printf(t, "\"outcomes\":{");
    for (int o = 0; o < RUSH_OUTCOME_COUNT_; o++) {
        uint64_t sum = 0;
        for (int op = 1; op < RUSH_OP_COUNT_; op++)
            sum += f->requests[op][o];
        ops_text_printf(t, "%s\"%s\":%" PRIu64, o ? "," : "",
                        rush_outcome_name((enum rush_outcome)o), sum);
    }
    ops_text_printf(t,
                    "},\"busy\":{\"no_slot\":%" PRIu64 ",\"ring_full\":%" PRIu64
                    ",\"table_full\":%" PRIu64 "},",
                    f->busy_no_slot, f->busy_messages - f->busy_no_slot,
                    f->engine.outcomes[RUSH_BUSY]);
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void health(struct ops_text *t, const struct ops_figures *f)
{
    ops_text_printf(t,
                    "\"latency_us\":{\"decide_p50\":%.1f,\"decide_p99\":%.1f,\"request_p50\":%.1f,"
                    "\"request_p99\":%.1f,\"sync_p50\":%.1f,\"sync_p99\":%.1f},",
                    us(rush_latency_quantile_ns(&f->decide_latency, 0.5)),
                    us(rush_latency_quantile_ns(&f->decide_latency, 0.99)),
                    us(rush_latency_quantile_ns(&f->request_latency, 0.5)),
                    us(rush_latency_quantile_ns(&f->request_latency, 0.99)),
                    us(rush_latency_quantile_ns(&f->sync_latency, 0.5)),
                    us(rush_latency_quantile_ns(&f->sync_latency, 0.99)));
    uint64_t bytes = 0, syncs = 0, inbound = 0, outbound = 0, slots = 0;
    double table_full = 0; /* the fullest table of any shard, 0..1 */
    for (uint32_t s = 0; s < f->shard_count; s++)
        for (int k = 0; k < RUSH_TABLE_COUNT_; k++) {
            const struct rush_shard_occupancy *o = &f->shards[s].engine.tables;
            double share = o->max[k] ? (double)o->used[k] / o->max[k] : 0;
            table_full = share > table_full ? share : table_full;
        }
    for (uint32_t s = 0; s < f->shard_count; s++) {
        bytes += f->shards[s].engine.wal_bytes_written;
        syncs += f->shards[s].engine.wal_syncs;
        inbound += f->shards[s].engine.inbound_depth;
        outbound += f->shards[s].engine.outbound_depth;
        slots += f->shards[s].engine.ring_slots;
    }
    ops_text_printf(t, "\"wal\":{\"failed\":%s,\"bytes\":%" PRIu64 ",\"syncs\":%" PRIu64 "},",
                    f->engine.wal_error ? "true" : "false", bytes, syncs);
    ops_text_printf(t,
                    "\"rings\":{\"inbound\":%" PRIu64 ",\"outbound\":%" PRIu64 ",\"slots\":%" PRIu64
                    "},\"in_flight\":%" PRIu64 ",\"in_flight_max\":%" PRIu64
                    ",\"table_full\":%.4f,",
                    inbound, outbound, slots, f->in_flight, f->in_flight_max, table_full);
    const struct rush_publisher_stats *p = &f->publisher;
    ops_text_printf(t,
                    "\"stream\":{\"on\":%s,\"published\":%" PRIu64 ",\"dropped\":%" PRIu64
                    ",\"replay_requests\":%" PRIu64 ",\"heads\":[",
                    f->has_publisher ? "true" : "false", p->events_published, p->sends_dropped,
                    p->replay_requests);
    for (uint32_t s = 0; s < f->shard_count; s++)
        ops_text_printf(t, "%s%" PRIu64, s ? "," : "", f->shards[s].head_seq);
    ops_text_printf(t, "]},");
}

static void sku(struct ops_text *t, const struct ops_figures *f, const struct ops_sku_row *r)
{
    ops_text_printf(t, "{\"id\":%" PRIu64 ",\"name\":\"", r->id);
    ops_text_escaped(t, r->name);
    double sold_out_s = -1;
    if (r->sold_out_ns != 0)
        sold_out_s =
            (double)(r->sold_out_ns - (r->start_ns ? r->start_ns : f->started_wall_ns)) / 1e9;
    ops_text_printf(t,
                    "\",\"price_fen\":%" PRId64 ",\"known\":%s,\"paused\":%s,\"unlimited\":%s,"
                    "\"available\":%" PRId64 ",\"reserved\":%" PRId64 ",\"confirmed\":%" PRId64
                    ",\"sold_out_s\":%.3f,",
                    r->price_fen,
                    (r->flags & OPS_SKU_KNOWN) && !(r->flags & OPS_SKU_UNKNOWN) ? "true" : "false",
                    r->flags & OPS_SKU_PAUSED ? "true" : "false",
                    r->flags & OPS_SKU_UNLIMITED ? "true" : "false", r->available, r->reserved,
                    r->confirmed, sold_out_s);
    ops_text_printf(t,
                    "\"units_sold\":%" PRIu64 ",\"orders_confirmed\":%" PRIu64
                    ",\"gmv_fen\":%" PRIu64 ",\"released\":%" PRIu64 ",\"expired\":%" PRIu64
                    ",\"refunds\":%" PRIu64 ",\"refunds_fen\":%" PRIu64 ",\"group_size\":%u,"
                    "\"groups_open\":%" PRIu64 ",\"groups_completed\":%" PRIu64
                    ",\"groups_failed\":%" PRIu64 ",\"virtual_seats\":%" PRIu64
                    ",\"virtual_budget\":%u}",
                    r->units_sold, r->orders_confirmed, r->gmv_fen, r->orders_released,
                    r->orders_expired, r->refunds, r->refunds_fen, r->group_size, r->groups_open,
                    r->groups_completed, r->groups_failed, r->virtual_seats, r->virtual_budget);
}

void ops_dashboard_render(const struct ops_figures *f, struct ops_text *t)
{
    ops_text_printf(t,
                    "{\"time_ns\":%" PRId64 ",\"started_ns\":%" PRId64 ",\"ledger_ns\":%" PRId64
                    ",\"ledger_rounds\":%" PRIu64 ",\"shards\":%u,\"data_dir\":\"",
                    f->wall_ns, f->started_wall_ns, f->ledger_wall_ns, f->ledger_rounds,
                    f->shard_count);
    ops_text_escaped(t, f->data_dir);
    ops_text_printf(t, "\",");
    totals(t, f);
    outcomes(t, f);
    health(t, f);
    ops_text_printf(t, "\"skus\":[");
    for (uint32_t i = 0; i < f->sku_count; i++) {
        if (i > 0)
            ops_text_printf(t, ",");
        sku(t, f, &f->skus[i]);
    }
    ops_text_printf(t, "]}\n");
}
