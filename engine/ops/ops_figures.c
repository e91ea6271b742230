/*
 * ops_figures.c — one copy of every figure the console shows, taken for one response on the
 * HTTP thread: atomics loaded one by one (no lock, so figures of different sources may be a few
 * microseconds apart), the engine's through rush_engine_stats / rush_engine_shard_figures.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "ops_internal.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void copy_sku(struct ops_sku_row *row, const struct ops_sku *sku)
{
    row->id = sku->id;
    memcpy(row->name, sku->name, sizeof(row->name));
    row->price_fen = sku->price_fen;
    row->start_ns = sku->start_ns;
    row->group_size = sku->group_size;
    row->virtual_budget = sku->virtual_budget;
    row->units_sold = LOAD(sku->units_sold);
    row->orders_confirmed = LOAD(sku->orders_confirmed);
    row->gmv_fen = LOAD(sku->gmv_fen);
    row->orders_released = LOAD(sku->orders_released);
    row->orders_expired = LOAD(sku->orders_expired);
    row->refunds = LOAD(sku->refunds);
    row->refunds_fen = LOAD(sku->refunds_fen);
    row->groups_completed = LOAD(sku->groups_completed);
    row->groups_failed = LOAD(sku->groups_failed);
    row->virtual_seats = LOAD(sku->virtual_seats);
    row->available = LOAD(sku->available);
    row->reserved = LOAD(sku->reserved);
    row->confirmed = LOAD(sku->confirmed);
    row->groups_open = LOAD(sku->groups_open);
    row->flags = LOAD(sku->flags);
    row->sold_out_ns = LOAD(sku->sold_out_ns);
}

static void copy_front(struct ops_figures *f, const struct rush_ops_front *front)
{
    for (int op = 0; op < RUSH_OP_COUNT_; op++)
        for (int o = 0; o < RUSH_OUTCOME_COUNT_; o++)
            f->requests[op][o] = LOAD(front->requests[op][o]);
    for (int e = 0; e < RUSH_OPS_ENDPOINTS; e++)
        f->messages[e] = LOAD(front->messages[e]);
    f->errors = LOAD(front->errors);
    f->busy_no_slot = LOAD(front->busy_no_slot);
    f->busy_messages = LOAD(front->busy_messages);
    f->in_flight = LOAD(front->in_flight);
    f->in_flight_max = LOAD(front->in_flight_max);
    f->tcp_connections = LOAD(front->tcp_connections);
    f->tcp_accepted = LOAD(front->tcp_accepted);
    f->tcp_refused = LOAD(front->tcp_refused);
    f->tcp_closed_protocol = LOAD(front->tcp_closed_protocol);
    f->tcp_dropped_replies = LOAD(front->tcp_dropped_replies);
    rush_latency_read(&front->request_latency, &f->request_latency);
}

static void copy_totals(struct ops_figures *f, const struct ops_totals *t)
{
    f->totals = (struct ops_totals_copy){
        .units_sold = LOAD(t->units_sold),
        .orders_confirmed = LOAD(t->orders_confirmed),
        .gmv_fen = LOAD(t->gmv_fen),
        .orders_released = LOAD(t->orders_released),
        .orders_expired = LOAD(t->orders_expired),
        .refunds = LOAD(t->refunds),
        .refunds_fen = LOAD(t->refunds_fen),
        .groups_completed = LOAD(t->groups_completed),
        .groups_failed = LOAD(t->groups_failed),
        .virtual_seats = LOAD(t->virtual_seats),
        .events = LOAD(t->events),
    };
}

static void copy_shards(struct ops_figures *f, struct rush_ops *ops)
{
    for (uint32_t s = 0; s < f->shard_count; s++) {
        struct ops_shard_row *row = &f->shards[s];
        rush_engine_shard_figures(ops->engine, s, &row->engine);
        rush_latency_add(&f->decide_latency, &row->engine.decide_latency);
        rush_latency_add(&f->sync_latency, &row->engine.sync_latency);
        row->head_seq = ops->publisher ? rush_publisher_head_seq(ops->publisher, s) : 0;
    }
}

struct ops_figures *ops_figures_collect(struct rush_ops *ops)
{
    uint32_t count = atomic_load_explicit(&ops->sku_count, memory_order_acquire);
    struct ops_figures *f = calloc(1, sizeof(*f) + (size_t)count * sizeof(f->skus[0]));
    if (f == NULL)
        return NULL;
    f->wall_ns = rush_clock_wall_ns();
    f->started_wall_ns = ops->started_wall_ns;
    f->ledger_wall_ns = atomic_load_explicit(&ops->ledger_wall_ns, memory_order_acquire);
    f->ledger_rounds = LOAD(ops->ledger_rounds);
    f->data_dir = ops->data_dir;
    f->shard_count = ops->shard_count;
    rush_engine_stats(ops->engine, &f->engine);
    f->has_publisher = ops->publisher != NULL;
    if (f->has_publisher)
        rush_publisher_stats(ops->publisher, &f->publisher);
    copy_front(f, &ops->front);
    copy_totals(f, &ops->totals);
    copy_shards(f, ops);
    f->sku_count = count;
    for (uint32_t i = 0; i < count; i++)
        copy_sku(&f->skus[i], &ops->skus[i]);
    return f;
}
