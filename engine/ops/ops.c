/*
 * ops.c — the console's life, its SKU table, the stream hook and the ledger batch (ops.h).
 *
 * Workload: the stream hook runs once per published run (up to RUSH_STREAM_EVENTS_MAX events)
 * and does one index probe and a few counter adds per event; the ledger batch is one QUERY_SKU
 * per tracked SKU every RUSH_OPS_LEDGER_MS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "base/clock.h"
#include "ops_internal.h"
#include "rush/assert.h"

/* ---- the SKU table ---- */

static uint32_t index_home(uint64_t id)
{
    return (uint32_t)(XXH3_64bits(&id, sizeof(id)) & (OPS_INDEX_SLOTS - 1));
}

/* The entry of `id`, or NULL. Bounded: at most OPS_INDEX_SLOTS probes. */
static struct ops_sku *sku_find(struct rush_ops *ops, uint64_t id)
{
    uint32_t slot = index_home(id);
    for (uint32_t probe = 0; probe < OPS_INDEX_SLOTS; probe++) {
        uint32_t entry = atomic_load_explicit(&ops->index[slot], memory_order_acquire);
        if (entry == 0)
            return NULL;
        if (ops->skus[entry - 1].id == id)
            return &ops->skus[entry - 1];
        slot = (slot + 1) & (OPS_INDEX_SLOTS - 1);
    }
    return NULL;
}

/* Adds an entry (invariants 1, 3); NULL when the table is full. Under add_lock. */
static struct ops_sku *sku_add_locked(struct rush_ops *ops, const struct rush_sku *def, uint64_t id)
{
    struct ops_sku *found = sku_find(ops, id);
    if (found != NULL)
        return found;
    uint32_t count = atomic_load_explicit(&ops->sku_count, memory_order_relaxed);
    if (count == RUSH_OPS_SKUS_MAX)
        return NULL;
    struct ops_sku *sku = &ops->skus[count];
    sku->id = id;
    if (def != NULL) {
        memcpy(sku->name, def->name, RUSH_SKU_NAME_MAX);
        sku->name[RUSH_SKU_NAME_MAX] = '\0';
        sku->price_fen = def->price_fen;
        sku->start_ns = def->start_ns;
        sku->group_size = def->group_size;
        sku->virtual_budget = def->virtual_budget;
    }
    uint32_t slot = index_home(id);
    while (atomic_load_explicit(&ops->index[slot], memory_order_relaxed) != 0) /* half full */
        slot = (slot + 1) & (OPS_INDEX_SLOTS - 1);
    atomic_store_explicit(&ops->sku_count, count + 1, memory_order_release);
    atomic_store_explicit(&ops->index[slot], count + 1, memory_order_release);
    return sku;
}

static struct ops_sku *sku_add(struct rush_ops *ops, const struct rush_sku *def, uint64_t id)
{
    if (atomic_load_explicit(&ops->sku_count, memory_order_relaxed) == RUSH_OPS_SKUS_MAX)
        return NULL; /* full: totals only, and no lock per event of an untracked SKU */
    pthread_mutex_lock(&ops->add_lock);
    struct ops_sku *sku = sku_add_locked(ops, def, id);
    pthread_mutex_unlock(&ops->add_lock);
    return sku;
}

void rush_ops_sku_put(struct rush_ops *ops, const struct rush_sku *def)
{
    if (ops != NULL && sku_find(ops, def->id) == NULL)
        (void)sku_add(ops, def, def->id);
}

/* ---- life ---- */

int rush_ops_create(const struct rush_ops_config *config, struct rush_ops **out)
{
    RUSH_ASSERT(config->engine != NULL && config->campaign != NULL);
    struct rush_ops *ops = calloc(1, sizeof(*ops));
    if (ops == NULL)
        return -ENOMEM;
    pthread_mutex_init(&ops->add_lock, NULL);
    ops->engine = config->engine;
    ops->shard_count = rush_engine_shard_count(config->engine);
    ops->started_wall_ns = rush_clock_wall_ns();
    snprintf(ops->http_address, sizeof(ops->http_address), "%s",
             config->http_address ? config->http_address : "");
    snprintf(ops->data_dir, sizeof(ops->data_dir), "%s", config->data_dir ? config->data_dir : "");
    ops->skus = calloc(RUSH_OPS_SKUS_MAX, sizeof(*ops->skus));
    ops->index = calloc(OPS_INDEX_SLOTS, sizeof(*ops->index));
    ops->ledger_requests = calloc(RUSH_OPS_SKUS_MAX, sizeof(*ops->ledger_requests));
    ops->ledger_results = calloc(RUSH_OPS_SKUS_MAX, sizeof(*ops->ledger_results));
    if (!ops->skus || !ops->index || !ops->ledger_requests || !ops->ledger_results) {
        rush_ops_destroy(ops);
        return -ENOMEM;
    }
    const struct rush_campaign *campaign = config->campaign;
    for (uint32_t i = 0; i < campaign->sku_count && i < RUSH_OPS_SKUS_MAX; i++)
        if (sku_find(ops, campaign->skus[i].id) == NULL)
            (void)sku_add(ops, &campaign->skus[i], campaign->skus[i].id);
    *out = ops;
    return 0;
}

int rush_ops_start(struct rush_ops *ops, struct rush_publisher *publisher, char *why,
                   size_t why_size)
{
    ops->publisher = publisher;
    if (ops->http_address[0] == '\0')
        return 0;
    return ops_http_start(ops, why, why_size);
}

void rush_ops_stop(struct rush_ops *ops)
{
    if (ops != NULL)
        ops_http_stop(ops);
}

void rush_ops_destroy(struct rush_ops *ops)
{
    if (ops == NULL)
        return;
    ops_http_stop(ops);
    free(ops->skus);
    free(ops->index);
    free(ops->ledger_requests);
    free(ops->ledger_results);
    pthread_mutex_destroy(&ops->add_lock);
    free(ops);
}

/* ---- the stream (the publisher's live thread) ---- */

static void count_event(struct ops_totals *t, struct ops_sku *sku,
                        const struct rush_stream_event *event)
{
    uint64_t fen = (uint64_t)event->price_fen * event->qty;
    rush_ops_count(&t->events, 1);
    switch ((enum rush_event_type)event->type) {
    case RUSH_EV_ORDER_CONFIRMED:
        rush_ops_count(&t->orders_confirmed, 1);
        rush_ops_count(&t->units_sold, event->qty);
        rush_ops_count(&t->gmv_fen, fen);
        if (sku != NULL) {
            rush_ops_count(&sku->orders_confirmed, 1);
            rush_ops_count(&sku->units_sold, event->qty);
            rush_ops_count(&sku->gmv_fen, fen);
        }
        break;
    case RUSH_EV_ORDER_RELEASED:
        rush_ops_count(&t->orders_released, 1);
        if (sku != NULL)
            rush_ops_count(&sku->orders_released, 1);
        break;
    case RUSH_EV_ORDER_EXPIRED:
        rush_ops_count(&t->orders_expired, 1);
        if (sku != NULL)
            rush_ops_count(&sku->orders_expired, 1);
        break;
    case RUSH_EV_REFUND_DUE:
    case RUSH_EV_TIER_REFUND_DUE: /* amount: the difference due back, qty 1 */
        rush_ops_count(&t->refunds, 1);
        rush_ops_count(&t->refunds_fen, fen);
        if (sku != NULL) {
            rush_ops_count(&sku->refunds, 1);
            rush_ops_count(&sku->refunds_fen, fen);
        }
        break;
    case RUSH_EV_GROUP_COMPLETED: /* qty: the virtual seats it used */
        rush_ops_count(&t->groups_completed, 1);
        rush_ops_count(&t->virtual_seats, event->qty);
        if (sku != NULL) {
            rush_ops_count(&sku->groups_completed, 1);
            rush_ops_count(&sku->virtual_seats, event->qty);
        }
        break;
    case RUSH_EV_GROUP_FAILED:
        rush_ops_count(&t->groups_failed, 1);
        if (sku != NULL)
            rush_ops_count(&sku->groups_failed, 1);
        break;
    case RUSH_EV_NONE:
    case RUSH_EV_REJECTED:
    case RUSH_EV_ORDER_RESERVED:
    case RUSH_EV_GROUP_OPENED:
    case RUSH_EV_STOCK_ADJUSTED:
    case RUSH_EV_SKU_PAUSED:
    case RUSH_EV_SKU_RESUMED:
    case RUSH_EV_SKU_PUT:
    case RUSH_EV_SKU_PART:
    case RUSH_EV_SEAT_INVITED:
    case RUSH_EV_INVITER_DUE: /* a reward for the inviter: not an order's count */
    case RUSH_EV_ADMIN_AUDIT: /* counted by rush_ops_on_events */
    case RUSH_EV_AUDIT_PART:
    case RUSH_EV_REGISTERED: /* a registration: not an order */
    case RUSH_EV_TYPE_COUNT_:
        break; /* not on the stream */
    }
}

void rush_ops_on_events(void *context, uint32_t shard, const struct rush_stream_event *events,
                        uint32_t count)
{
    struct rush_ops *ops = context;
    (void)shard;
    for (uint32_t i = 0; i < count; i++) {
        if (events[i].type == RUSH_EV_ADMIN_AUDIT || events[i].type == RUSH_EV_AUDIT_PART) {
            rush_ops_count(&ops->totals.events, 1); /* no SKU figure (a part's sku_id is text) */
            continue;
        }
        struct ops_sku *sku = sku_find(ops, events[i].sku_id);
        if (sku == NULL)
            sku = sku_add(ops, NULL, events[i].sku_id); /* NULL when full: totals only */
        count_event(&ops->totals, sku, &events[i]);
    }
}

/* ---- the front end ---- */

struct rush_ops_front *rush_ops_front(struct rush_ops *ops)
{
    return &ops->front;
}

struct rush_batch *rush_ops_ledger_due(struct rush_ops *ops, int64_t now_ns)
{
    if (ops->ledger_out || now_ns < ops->ledger_next_ns)
        return NULL;
    ops->ledger_next_ns = now_ns + (int64_t)RUSH_OPS_LEDGER_MS * 1000000;
    uint32_t count = atomic_load_explicit(&ops->sku_count, memory_order_acquire);
    if (count == 0)
        return NULL;
    for (uint32_t i = 0; i < count; i++)
        ops->ledger_requests[i] =
            (struct rush_request){.op = RUSH_OP_QUERY_SKU, .sku_id = ops->skus[i].id, .tag = i};
    ops->ledger = (struct rush_batch){.requests = ops->ledger_requests,
                                      .results = ops->ledger_results,
                                      .count = count,
                                      .context = ops};
    ops->ledger_out = true;
    return &ops->ledger;
}

bool rush_ops_owns(const struct rush_ops *ops, const struct rush_batch *batch)
{
    return ops != NULL && batch == &ops->ledger;
}

void rush_ops_ledger_refused(struct rush_ops *ops)
{
    ops->ledger_out = false;
}

static void ledger_store(struct ops_sku *sku, const struct rush_result *result, int64_t now_ns)
{
    if (result->outcome != RUSH_OK) {
        atomic_store_explicit(&sku->flags, OPS_SKU_KNOWN | OPS_SKU_UNKNOWN, memory_order_relaxed);
        return;
    }
    bool unlimited = (result->flags & RUSH_RESULT_UNLIMITED) != 0;
    uint32_t flags =
        OPS_SKU_KNOWN | (result->state ? OPS_SKU_PAUSED : 0) | (unlimited ? OPS_SKU_UNLIMITED : 0);
    atomic_store_explicit(&sku->available, unlimited ? 0 : result->remaining, memory_order_relaxed);
    atomic_store_explicit(&sku->reserved, result->reserved, memory_order_relaxed);
    atomic_store_explicit(&sku->confirmed, result->confirmed, memory_order_relaxed);
    atomic_store_explicit(&sku->groups_open, result->qty, memory_order_relaxed);
    atomic_store_explicit(&sku->flags, flags, memory_order_relaxed);
    int64_t sold_out = atomic_load_explicit(&sku->sold_out_ns, memory_order_relaxed);
    bool empty = !unlimited && result->remaining == 0 && result->reserved + result->confirmed > 0;
    if (empty && sold_out == 0)
        atomic_store_explicit(&sku->sold_out_ns, now_ns, memory_order_relaxed);
    else if (!empty && sold_out != 0)
        atomic_store_explicit(&sku->sold_out_ns, 0, memory_order_relaxed); /* stock came back */
}

void rush_ops_ledger_back(struct rush_ops *ops, struct rush_batch *batch)
{
    RUSH_ASSERT(batch == &ops->ledger && ops->ledger_out);
    ops->ledger_out = false;
    if (batch->status != 0)
        return; /* a failed log: the answers are unknown */
    int64_t now_ns = rush_clock_wall_ns();
    for (uint32_t i = 0; i < batch->count; i++) {
        RUSH_ASSERT(ops->ledger_results[i].tag == i);
        ledger_store(&ops->skus[i], &ops->ledger_results[i], now_ns);
    }
    atomic_store_explicit(&ops->ledger_wall_ns, now_ns, memory_order_release);
    rush_ops_count(&ops->ledger_rounds, 1);
}
