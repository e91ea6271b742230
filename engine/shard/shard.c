/*
 * shard.c — the shard's life cycle, its single mutator (apply), queries, check and digest.
 * The header shard.h states the workload and invariants; shard_internal.h the records.
 *
 * Order states and the events that move them (applied here, decided in decide.c and by timers):
 *
 *                  ORDER_CONFIRMED
 *   (none) --ORDER_RESERVED--> reserved ------------> confirmed
 *                                 |  \--ORDER_RELEASED--> released   (cancel, group failed)
 *                                 \----ORDER_EXPIRED----> expired    (pay TTL)
 *
 * A GROUP_OPENED event creates the group and its leader's seat (an order in `reserved`).
 *
 * An order's amount (what its buyer pays) is fixed by its ORDER_RESERVED event (a leader's seat:
 * its GROUP_OPENED event, at the price then) and every later event about the order carries that
 * amount, whatever the SKU's price has become since.
 *
 * Timers decide too: a pay TTL running out expires its order, a group's deadline completes or
 * fails it. Those events carry op 0 and are emitted here (shard__order_expire,
 * shard__group_settle) at the first batch whose time has passed the deadline's tick, or earlier by
 * a decision (decide.c) that finds the deadline passed at its own nanosecond. Group records and
 * their buckets belong to group.c, which this file calls and which calls nothing here.
 *
 * Slots: an order that leaves `reserved` joins the retired list (retire()); a later reservation
 * takes the list's head slot once it has been ended for policy.retain_ns (its pay timer was
 * cancelled or fired when it ended; shard__next_order_id), and applying that reservation removes
 * the old order's key (reuse_slot()). The id carries the slot's generation, so the old id becomes
 * unknown.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/memory.h"
#include "rush/assert.h"
#include "shard_internal.h"

static int limits_check(const struct rush_shard_limits *limits)
{
    if (limits->skus_max == 0 || limits->orders_max == 0 || limits->groups_max == 0 ||
        limits->keys_max == 0 || limits->user_limits_max == 0)
        return RUSH_ECONFIG;
    if (limits->orders_max > (UINT32_MAX - 2) / 2 || limits->groups_max > (UINT32_MAX - 2) / 2)
        return RUSH_ECONFIG;
    if (limits->events_buffer_max < 2 * EVENTS_PER_DECISION_MAX)
        return RUSH_ECONFIG;
    return 0;
}

int rush_shard_create(const struct rush_shard_config *config, struct rush_shard **out)
{
    int rc = limits_check(&config->limits);
    if (rc < 0)
        return rc;
    const struct rush_shard_limits *limits = &config->limits;
    struct rush_shard *shard = calloc(1, sizeof(*shard));
    if (shard == NULL)
        return -ENOMEM;
    shard->index = config->index;
    shard->limits = *limits;
    shard->policy = config->policy;
    if (config->policy.activity_count > RUSH_ACTIVITIES_MAX) {
        free(shard);
        return RUSH_ECONFIG;
    }
    if (config->policy.activity_count > 0)
        memcpy(shard->activities, config->policy.activities,
               config->policy.activity_count * sizeof(struct rush_activity));
    shard->policy.activities = shard->activities;
    if (shard->policy.retain_ns <= 0)
        shard->policy.retain_ns = RUSH_RETAIN_NS_DEFAULT;
    shard->retired_head = shard->retired_tail = NONE;
    shard->ring.capacity = limits->keys_max / 8 > 0 ? limits->keys_max / 8 : 1;
    shard->ring.keys = rush_memory_zeroed(shard->ring.capacity, sizeof(rush_key));
    shard->now_ns = config->start_ns;
    shard->sink = config->sink;
    shard->sink_context = config->sink_context;
    shard->skus = calloc(limits->skus_max, sizeof(*shard->skus));
    shard->orders = rush_memory_zeroed((size_t)limits->orders_max + 1, sizeof(*shard->orders));
    shard->groups = rush_memory_zeroed((size_t)limits->groups_max + 1, sizeof(*shard->groups));
    shard->due = malloc(sizeof(uint32_t) * ((size_t)limits->orders_max + limits->groups_max + 2));
    shard->events = malloc(sizeof(struct rush_event) * limits->events_buffer_max);
    rc = -ENOMEM;
    if (!shard->skus || !shard->orders || !shard->groups || !shard->due || !shard->events ||
        !shard->ring.keys)
        goto out_destroy;
    uint64_t seed = config->seed;
    if ((rc = rush_table_init(&shard->sku_ids, limits->skus_max, sizeof(struct sku_entry),
                              seed ^ 0x736b75)) < 0 ||
        (rc = rush_table_init(&shard->keys, limits->keys_max, sizeof(struct key_entry),
                              seed ^ 0x6b6579)) < 0 ||
        (rc = rush_table_init(&shard->user_limits, limits->user_limits_max,
                              sizeof(struct limit_entry), seed ^ 0x6c696d)) < 0)
        goto out_destroy;
    rc = rush_timer_wheel_init(&shard->timers, limits->orders_max + limits->groups_max + 2,
                               TIMER_SLOTS, TIMER_TICK_NS, config->start_ns);
    if (rc < 0)
        goto out_destroy;
    *out = shard;
    return 0;

out_destroy:
    rush_shard_destroy(shard);
    return rc;
}

void rush_shard_destroy(struct rush_shard *shard)
{
    if (shard == NULL)
        return;
    rush_table_free(&shard->sku_ids);
    rush_table_free(&shard->keys);
    rush_table_free(&shard->user_limits);
    rush_timer_wheel_free(&shard->timers);
    free(shard->skus);
    rush_memory_free(shard->orders);
    rush_memory_free(shard->groups);
    free(shard->due);
    free(shard->events);
    rush_memory_free(shard->ring.keys);
    free(shard);
}

/* ---- lookups ---------------------------------------------------------------------------- */

/* shard__sku past its inline test of the SKU found last: the memo, then the table. */
struct sku_state *shard__sku_find(const struct rush_shard *shard, uint64_t sku_id)
{
    if (sku_id == 0)
        return NULL;
    struct rush_shard *cache = (struct rush_shard *)shard; /* the cache is not state */
    struct sku_memo *memo = sku_memo_of(shard, sku_id);
    if (memo->id != sku_id) {
        rush_key key = rush_key_pair(0, sku_id);
        const struct sku_entry *entry = rush_table_find(&shard->sku_ids, &key);
        if (entry == NULL)
            return NULL;
        *memo = (struct sku_memo){.id = sku_id, .index = entry->index};
    }
    cache->sku_cached = &shard->skus[memo->index];
    return cache->sku_cached;
}

/* ---- lookahead: the stages of a pipelined batch (shard_internal.h, struct shard_look) ---- */

/* The order or group a request names, prefetched: a confirm's or cancel's order, a join's group
 * (stage 2 reads the group's SKU). Ids out of range prefetch nothing. */
static void look_target(const struct rush_shard *shard, const struct rush_request *request)
{
    uint64_t index = request->target_id & ID_INDEX_MASK;
    if (request->op == RUSH_OP_CONFIRM || request->op == RUSH_OP_CANCEL) {
        index &= UINT32_MAX;
        if (index != 0 && index <= shard->order_count)
            __builtin_prefetch(&shard->orders[index], 1, 3);
    } else if (request->op == RUSH_OP_GROUP_JOIN && index != 0 && index <= shard->group_count) {
        __builtin_prefetch(&shard->groups[index], 1, 3);
    }
}

/* Stage 1: hash the key and the SKU id; prefetch the key's bitmap word, the SKU id's slot and
 * the request's target. */
static void look_far(const struct rush_shard *shard, struct shard_lookahead *ahead,
                     const struct rush_request *request, struct shard_look *look)
{
    look->sku = NULL;
    look->key_home = look->sku_home = look->limit_home = NONE;
    if (request->op >= RUSH_OP_COUNT_)
        return;
    if (!rush_key_is_zero(&request->key)) {
        look->key_home = rush_table_home(&shard->keys, &request->key);
        rush_table_prefetch_used(&shard->keys, look->key_home);
    }
    look_target(shard, request);
    if (request->sku_id == 0)
        return;
    if (request->sku_id != ahead->far_sku_id) {
        ahead->far_sku_id = request->sku_id;
        ahead->far_sku_home = LOOK_SKU_MEMO; /* most SKUs of a many-SKU sale: no hash, no miss */
        if (sku_memo_of(shard, request->sku_id)->id != request->sku_id) {
            rush_key id = rush_key_pair(0, request->sku_id);
            ahead->far_sku_home = rush_table_home(&shard->sku_ids, &id);
            rush_table_prefetch_home(&shard->sku_ids, ahead->far_sku_home, true);
        }
    }
    look->sku_home = ahead->far_sku_home;
}

/* The SKU whose id is in the slot stage 1 prefetched (a join's: its group's), or NULL. */
static const struct sku_state *look_sku(const struct rush_shard *shard,
                                        struct shard_lookahead *ahead,
                                        const struct rush_request *request,
                                        const struct shard_look *look)
{
    if (request->op == RUSH_OP_GROUP_JOIN) {
        const struct group *group = shard__group(shard, request->target_id);
        return group != NULL && group->sku_index < shard->sku_count ? &shard->skus[group->sku_index]
                                                                    : NULL;
    }
    if (look->sku_home == NONE)
        return NULL;
    if (request->sku_id != ahead->near_sku_id) {
        ahead->near_sku_id = request->sku_id;
        struct sku_memo *memo = sku_memo_of(shard, request->sku_id);
        if (memo->id != request->sku_id) { /* the memo (a cache) takes what the table says */
            rush_key id = rush_key_pair(0, request->sku_id);
            const struct sku_entry *entry =
                look->sku_home == LOOK_SKU_MEMO
                    ? rush_table_find(&shard->sku_ids, &id) /* its place was taken since */
                    : rush_table_find_home(&shard->sku_ids, &id, look->sku_home);
            if (entry != NULL)
                *memo = (struct sku_memo){.id = request->sku_id, .index = entry->index};
        }
        ahead->near_sku = memo->id == request->sku_id ? &shard->skus[memo->index] : NULL;
    }
    return ahead->near_sku;
}

/* Whether the op's decision looks up the user's (SKU, user) limit. */
static bool look_limit_wanted(uint8_t op)
{
    return op == RUSH_OP_RESERVE || op == RUSH_OP_GROUP_OPEN || op == RUSH_OP_GROUP_JOIN ||
           op == RUSH_OP_GROUP_JOIN_ANY;
}

/*
 * Stage 2: the SKU from the memo or its slot; the lines holding the fields a decision reads (the
 * definition's id, window, limits, kind and rules, and the ledger's available and reserved; not
 * the name, tiers or group buckets between them) are prefetched, and the limit's bitmap word.
 */
static void look_near(const struct rush_shard *shard, struct shard_lookahead *ahead,
                      const struct rush_request *request, struct shard_look *look)
{
    if (request->op >= RUSH_OP_COUNT_)
        return;
    const struct sku_state *previous = ahead->near_sku;
    look->sku = look_sku(shard, ahead, request, look);
    if (look->sku == NULL)
        return;
    if (look->sku != previous) { /* the previous request's SKU was prefetched just now */
        const struct sku_state *sku = look->sku; /* the fields a decision reads, straight-line */
        __builtin_prefetch(&sku->def.id, 1, 3);
        __builtin_prefetch(&sku->def.start_ns, 1, 3); /* the window, TTL and quantity limits */
        __builtin_prefetch(&sku->def.unlimited, 1, 3);
        __builtin_prefetch(&sku->def.rules, 1, 3);
        __builtin_prefetch(&sku->available, 1, 3);
        __builtin_prefetch(&sku->reserved, 1, 3);
    }
    if (!look_limit_wanted(request->op))
        return;
    look->limit_key = rush_key_pair((uint64_t)(look->sku - shard->skus) + 1, request->user_id);
    look->limit_home = rush_table_home(&shard->user_limits, &look->limit_key);
    rush_table_prefetch_used(&shard->user_limits, look->limit_home);
}

/*
 * Stage 3: the entries the key's and the limit's probes will read, their bitmap words now in
 * cache. An empty home slot is prefetched only when the decision may insert there: a new order
 * needs stock, so the users of a sold-out SKU cost no miss on either table (a guess that only
 * decides what is prefetched). The next fresh order slot too, once per slot.
 */
static void look_close(const struct rush_shard *shard, struct shard_lookahead *ahead,
                       const struct rush_request *request, const struct shard_look *look)
{
    const struct sku_state *sku = look->sku;
    bool may_insert =
        request->op < RUSH_OP_COUNT_ && (sku == NULL || sku->def.unlimited || sku->available > 0);
    if (look->key_home != NONE)
        rush_table_prefetch_home(&shard->keys, look->key_home, may_insert);
    if (look->limit_home == NONE)
        return;
    rush_table_prefetch_home(&shard->user_limits, look->limit_home, may_insert);
    uint32_t fresh = shard->order_count + LOOK_CLOSE;
    if (may_insert && fresh != ahead->close_fresh && fresh <= shard->limits.orders_max)
        __builtin_prefetch(&shard->orders[fresh], 1, 3);
    ahead->close_fresh = fresh;
}

/* Just before the decision: the tables take the homes as hints, the SKU cache the SKU. */
static void look_use(struct rush_shard *shard, const struct rush_request *request,
                     const struct shard_look *look)
{
    if (look->key_home != NONE)
        rush_table_hint(&shard->keys, &request->key, look->key_home);
    if (look->limit_home != NONE)
        rush_table_hint(&shard->user_limits, &look->limit_key, look->limit_home);
    if (look->sku != NULL)
        shard->sku_cached = (struct sku_state *)look->sku; /* a cache: shard__sku checks the id */
}

void shard__look_start(const struct rush_shard *shard, struct shard_lookahead *ahead,
                       const struct rush_request *requests, uint32_t count)
{
    ahead->far_sku_id = 0;
    ahead->far_sku_home = NONE;
    ahead->near_sku_id = 0;
    ahead->near_sku = NULL;
    ahead->close_fresh = 0;
    for (uint32_t j = 0; j < count && j < LOOK_FAR; j++)
        look_far(shard, ahead, &requests[j], &ahead->ring[j % LOOK_RING]);
    for (uint32_t j = 0; j < count && j < LOOK_NEAR; j++)
        look_near(shard, ahead, &requests[j], &ahead->ring[j % LOOK_RING]);
    for (uint32_t j = 0; j < count && j < LOOK_CLOSE; j++)
        look_close(shard, ahead, &requests[j], &ahead->ring[j % LOOK_RING]);
}

void shard__look_step(struct rush_shard *shard, struct shard_lookahead *ahead,
                      const struct rush_request *requests, uint32_t count, uint32_t i)
{
    RUSH_ASSERT(i < count);
    if (i + LOOK_FAR < count)
        look_far(shard, ahead, &requests[i + LOOK_FAR], &ahead->ring[(i + LOOK_FAR) % LOOK_RING]);
    if (i + LOOK_NEAR < count)
        look_near(shard, ahead, &requests[i + LOOK_NEAR],
                  &ahead->ring[(i + LOOK_NEAR) % LOOK_RING]);
    if (i + LOOK_CLOSE < count)
        look_close(shard, ahead, &requests[i + LOOK_CLOSE],
                   &ahead->ring[(i + LOOK_CLOSE) % LOOK_RING]);
    look_use(shard, &requests[i], &ahead->ring[i % LOOK_RING]);
}

/* The activity of an id family: at most RUSH_ACTIVITIES_MAX compared, for activity SKUs only. */
const struct rush_activity *shard__activity(const struct rush_shard *shard, uint64_t family)
{
    for (uint32_t a = 0; a < shard->policy.activity_count; a++)
        if (shard->activities[a].family == family)
            return &shard->activities[a];
    return NULL;
}

uint32_t shard__activity_budgeted(const struct rush_shard *shard, const struct sku_state *sku)
{
    if (!(sku->def.rules & RUSH_SKU_IN_ACTIVITY))
        return NONE;
    const struct rush_activity *activity = shard__activity(shard, rush_sku_family(sku->def.id));
    if (activity == NULL || activity->subsidy_budget_fen == 0)
        return NONE;
    return (uint32_t)(activity - shard->activities);
}

struct limit_entry *shard__activity_limit(const struct rush_shard *shard, uint64_t family,
                                          uint64_t user_id)
{
    rush_key key = rush_key_pair(LIMIT_ACTIVITY | family, user_id);
    return rush_table_find(&shard->user_limits, &key);
}

/* The activity's day number at engine time now_ns (ns since the epoch, UTC): days start at
 * midnight of UTC + day_offset_ns (8h: China's calendar day). */
uint32_t shard__activity_day(const struct rush_activity *activity, int64_t now_ns)
{
    const int64_t day_ns = INT64_C(86400) * 1000000000;
    int64_t local_ns = now_ns + activity->day_offset_ns;
    return local_ns <= 0 ? 0 : (uint32_t)(local_ns / day_ns);
}

bool shard__registered(const struct rush_shard *shard, const struct sku_state *sku,
                       uint64_t user_id)
{
    rush_key key = rush_key_pair(LIMIT_REGISTERED | ((uint64_t)(sku - shard->skus) + 1), user_id);
    return rush_table_find(&shard->user_limits, &key) != NULL;
}

struct limit_entry *shard__limit(const struct rush_shard *shard, uint32_t sku_index,
                                 uint64_t user_id)
{
    rush_key key = rush_key_pair((uint64_t)sku_index + 1, user_id);
    return rush_table_find(&shard->user_limits, &key);
}

/*
 * What makes two requests "the same" for an idempotency key: the op (stored beside these) and
 * every field that op reads, stored whole; tags and unread fields do not count.
 */
struct request_fields shard__fields(uint8_t op, uint64_t sku_id, uint64_t user_id, uint32_t qty,
                                    uint64_t target_id, int64_t amount)
{
    struct request_fields fields = {0};
    switch ((enum rush_op)op) {
    case RUSH_OP_RESERVE:
        fields.c = qty; /* fall through */
    case RUSH_OP_GROUP_OPEN:
        fields.a = sku_id;
        fields.b = user_id;
        break;
    case RUSH_OP_GROUP_JOIN_ANY:
        fields.a = sku_id;
        fields.b = user_id;
        fields.c = shard__inviter_fold((uint64_t)amount); /* the request's inviter_id */
        break;
    case RUSH_OP_GROUP_JOIN:
        fields.a = target_id;
        fields.b = user_id;
        fields.c = shard__inviter_fold((uint64_t)amount);
        break;
    case RUSH_OP_CONFIRM:
    case RUSH_OP_CANCEL:
        fields.a = target_id;
        break;
    case RUSH_OP_ADJUST:
        fields.b = (uint64_t)amount; /* fall through */
    case RUSH_OP_PAUSE:
    case RUSH_OP_RESUME:
        fields.a = sku_id;
        break;
    case RUSH_OP_REGISTER:
        fields.a = sku_id;
        fields.b = user_id;
        break;
    case RUSH_OP_NONE:
    case RUSH_OP_QUERY_ORDER:
    case RUSH_OP_QUERY_GROUP:
    case RUSH_OP_QUERY_SKU:
    case RUSH_OP_LIST_GROUPS:
    case RUSH_OP_COUNT_:
        break;
    }
    return fields;
}

/* A join's inviter as its key entry keeps it (32 bits: a retry naming another inviter is a
 * reused key unless the two fold alike); 0 for none. */
uint32_t shard__inviter_fold(uint64_t inviter_id)
{
    uint32_t fold = (uint32_t)(inviter_id ^ (inviter_id >> 32));
    return inviter_id == 0 ? 0 : fold | 1u;
}

/*
 * What a seat paying `amount` is charged against its SKU's subsidy budget when it is taken:
 * the list price less what it pays, and for a tiered group the list price less the last tier's
 * price (the most it can cost); the group's completion gives back what the tier reached did not
 * cost (apply_group_closed), a released seat all of it. Prices and tiers cannot change under
 * held seats of a SKU with a budget (decide.c, sku_put), so the charge taken is the one given
 * back.
 */
int64_t shard__seat_subsidy(const struct sku_state *sku, int64_t amount)
{
    if (sku->def.tier_count != 0)
        return sku->def.price_fen - sku->def.tier_price_fen[sku->def.tier_count - 1];
    return sku->def.price_fen > amount ? sku->def.price_fen - amount : 0;
}

/* ---- events ----------------------------------------------------------------------------- */

void shard__flush(struct rush_shard *shard)
{
    if (shard->event_count == 0)
        return;
    if (shard->sink != NULL)
        shard->sink(shard->sink_context, shard->index, shard->now_ns, shard->events,
                    shard->event_count);
    shard->event_count = 0;
}

/* Appends an event to the batch's log and applies it. Callers made room beforehand. */
void shard__emit(struct rush_shard *shard, const struct rush_event *event)
{
    RUSH_ASSERT(shard->event_count < shard->limits.events_buffer_max);
    shard->events[shard->event_count++] = *event;
    count_one(&shard->stats.events);
    shard__apply(shard, event);
}

void rush_shard_begin(struct rush_shard *shard, int64_t now_ns)
{
    if (now_ns > shard->now_ns)
        shard->now_ns = now_ns;
    count_one(&shard->stats.batches);
    uint32_t due_count = rush_timer_wheel_advance(&shard->timers, shard->now_ns, shard->due);
    for (uint32_t i = 0; i < due_count; i++) {
        if (shard->event_count + EVENTS_PER_DECISION_MAX > shard->limits.events_buffer_max)
            shard__flush(shard);
        uint32_t handle = shard->due[i];
        if (handle <= shard->limits.orders_max) {
            if (shard->orders[handle].state != RUSH_ORDER_RESERVED)
                continue; /* confirmed or cancelled before its TTL: a guard: retire() cancelled its
                             timer */
            shard__order_expire(shard, handle);
        } else {
            uint32_t group_index = handle - shard->limits.orders_max - 1;
            if (shard->groups[group_index].state != RUSH_GROUP_OPEN)
                continue; /* it completed, or a decision settled it, before its timer */
            shard__group_settle(shard, group_index);
        }
        count_one(&shard->stats.timers_fired);
    }
}

void rush_shard_end(struct rush_shard *shard)
{
    shard__flush(shard);
}

/* ---- timer-decided events ------------------------------------------------------------------ */

/* An event about order `order_index` for the publisher: who, what, and the amount it recorded. */
static struct rush_event order_event_of(const struct rush_shard *shard, uint8_t type,
                                        uint32_t order_index)
{
    const struct order *order = &shard->orders[order_index];
    const struct sku_state *sku = &shard->skus[order->sku_index];
    return (struct rush_event){
        .type = type,
        .qty = order->qty,
        .order_id = order_id_of(shard, order_index),
        .group_id = order->group_index == NONE ? 0 : group_id_of(shard, order->group_index),
        .sku_id = sku->def.id,
        .user_id = order->user_id,
        .amount = order->amount_fen};
}

/* The pay TTL of a reserved order ran out: its stock returns. */
void shard__order_expire(struct rush_shard *shard, uint32_t order_index)
{
    RUSH_ASSERT(shard->orders[order_index].state == RUSH_ORDER_RESERVED);
    RUSH_ASSERT(shard->orders[order_index].group_index == NONE);
    struct rush_event event = order_event_of(shard, RUSH_EV_ORDER_EXPIRED, order_index);
    shard__emit(shard, &event);
}

void shard__group_complete(struct rush_shard *shard, uint32_t group_index, uint32_t virtual_seats,
                           uint8_t op)
{
    const struct group *group = &shard->groups[group_index];
    const struct sku_state *sku = &shard->skus[group->sku_index];
    uint32_t tier = group__tier_reached(sku, group->seats);
    RUSH_ASSERT(sku->def.tier_count == 0 || tier != NONE);
    uint32_t seen = 0;
    for (uint32_t o = group->member_first; o != NONE && seen < RUSH_GROUP_SIZE_MAX;
         o = shard->orders[o].member_next, seen++) {
        struct rush_event event = order_event_of(shard, RUSH_EV_ORDER_CONFIRMED, o);
        event.op = op;
        shard__emit(shard, &event);
        const struct order *seat = &shard->orders[o];
        if (seat->inviter_id != 0) {
            event.type = RUSH_EV_INVITER_DUE; /* the group completed: its inviter's reward is due */
            event.user_id = seat->inviter_id;
            shard__emit(shard, &event);
        }
        if (tier != NONE && seat->amount_fen > sku->def.tier_price_fen[tier]) {
            event.type = RUSH_EV_TIER_REFUND_DUE; /* paid the first tier, owes the one reached */
            event.user_id = seat->user_id;
            event.amount = seat->amount_fen - sku->def.tier_price_fen[tier];
            shard__emit(shard, &event);
        }
    }
    shard__emit(shard, &(struct rush_event){.type = RUSH_EV_GROUP_COMPLETED,
                                            .op = op,
                                            .qty = virtual_seats,
                                            .group_id = group_id_of(shard, group_index),
                                            .sku_id = shard->skus[group->sku_index].def.id});
}

/* Every seat is released and its money (taken at join) is due back. */
static void group_fail(struct rush_shard *shard, uint32_t group_index)
{
    const struct group *group = &shard->groups[group_index];
    uint32_t seen = 0;
    for (uint32_t o = group->member_first; o != NONE && seen < RUSH_GROUP_SIZE_MAX;
         o = shard->orders[o].member_next, seen++) {
        struct rush_event event = order_event_of(shard, RUSH_EV_ORDER_RELEASED, o);
        shard__emit(shard, &event);
        event.type = RUSH_EV_REFUND_DUE;
        shard__emit(shard, &event);
    }
    shard__emit(shard, &(struct rush_event){.type = RUSH_EV_GROUP_FAILED,
                                            .group_id = group_id_of(shard, group_index),
                                            .sku_id = shard->skus[group->sku_index].def.id});
}

/* A group's deadline: complete with virtual seats if the policy and the budget allow, else fail. */
void shard__group_settle(struct rush_shard *shard, uint32_t group_index)
{
    RUSH_ASSERT(shard->groups[group_index].state == RUSH_GROUP_OPEN);
    int64_t virtual_seats = group__virtual_fill(shard, group_index);
    if (virtual_seats >= 0)
        shard__group_complete(shard, group_index, (uint32_t)virtual_seats, RUSH_OP_NONE);
    else
        group_fail(shard, group_index);
}

/* ---- apply: the only code that changes state --------------------------------------------- */

/*
 * A user's units over an activity: held follows the SKU entries (a release gives back), the day's
 * count only grows within the day (a release does not give it back: the daily limit caps what is
 * taken per day). The day is the activity's at this batch's time, so a replay counts the same.
 */
static void activity_take(struct rush_shard *shard, const struct sku_state *sku, uint64_t user_id,
                          uint32_t qty)
{
    uint64_t family = rush_sku_family(sku->def.id);
    rush_key key = rush_key_pair(LIMIT_ACTIVITY | family, user_id);
    bool created;
    struct limit_entry *entry = rush_table_upsert(&shard->user_limits, &key, &created);
    RUSH_ASSERT(entry != NULL); /* decisions check room first */
    entry->held += qty;
    const struct rush_activity *activity = shard__activity(shard, family);
    uint32_t day = activity ? shard__activity_day(activity, shard->now_ns) : 0;
    if (entry->day != day) {
        entry->day = day;
        entry->day_taken = 0;
    }
    entry->day_taken += qty;
}

static void activity_give_back(struct rush_shard *shard, const struct sku_state *sku,
                               uint64_t user_id, uint32_t qty)
{
    struct limit_entry *entry = shard__activity_limit(shard, rush_sku_family(sku->def.id), user_id);
    RUSH_ASSERT(entry != NULL && entry->held >= qty);
    entry->held -= qty;
}

/*
 * Moves a seat's subsidy charge (shard__seat_subsidy) on the SKU's budget and on its activity's,
 * each counted only under a budget. The activity's budget is policy, not logged: one given at a
 * restart over held seats did not count them, so what such a seat gives back stops at what its
 * SKU counted (within a run the charge given back is the one taken: decide.c, sku_put).
 */
static void subsidy_charge(struct rush_shard *shard, struct sku_state *sku, int64_t fen)
{
    if (sku->def.subsidy_budget_fen != 0) {
        sku->subsidy_spent_fen += fen;
        RUSH_ASSERT(sku->subsidy_spent_fen >= 0);
    }
    uint32_t a = shard__activity_budgeted(shard, sku);
    if (a == NONE)
        return;
    if (fen < -sku->activity_spent_fen)
        fen = -sku->activity_spent_fen;
    sku->activity_spent_fen += fen;
    shard->activity_spent_fen[a] += fen;
}

static void take_stock(struct rush_shard *shard, struct sku_state *sku, uint64_t user_id,
                       uint32_t qty, bool flash)
{
    if (!sku->def.unlimited) {
        RUSH_ASSERT(sku->available >= qty);
        sku->available -= qty;
    }
    sku->reserved += qty;
    uint32_t sku_index = (uint32_t)(sku - shard->skus);
    rush_key key = rush_key_pair((uint64_t)sku_index + 1, user_id);
    bool created;
    struct limit_entry *limit = rush_table_upsert_noted(&shard->user_limits, &key, &created);
    RUSH_ASSERT(limit != NULL); /* decisions check room first */
    limit->held += qty;
    limit->unpaid += flash;
    if (sku->def.rules & RUSH_SKU_IN_ACTIVITY)
        activity_take(shard, sku, user_id, qty);
}

/* The order has left `reserved`: it joins the tail of the retired list (invariant 5) and its pay
 * timer, if still set, is cancelled. */
static void retire(struct rush_shard *shard, struct order *order)
{
    uint32_t index = (uint32_t)(order - shard->orders);
    order->ended_ns = shard->now_ns;
    order->retired_next = NONE;
    if (shard->retired_tail == NONE)
        shard->retired_head = index;
    else
        shard->orders[shard->retired_tail].retired_next = index;
    shard->retired_tail = index;
    if (order->group_index != NONE)
        return;
    if (rush_timer_wheel_scheduled(&shard->timers, index)) /* paid or cancelled within its TTL */
        rush_timer_wheel_cancel(&shard->timers, index);
    struct limit_entry *limit = shard__limit(shard, order->sku_index, order->user_id);
    RUSH_ASSERT(limit != NULL && limit->unpaid > 0);
    limit->unpaid--;
    if (order->state != RUSH_ORDER_CONFIRMED && limit->churn < UINT32_MAX)
        limit->churn++;
}

/* Takes the head of the retired list for a new order: its key is forgotten with it. */
static void reuse_slot(struct rush_shard *shard, uint32_t index, uint16_t generation)
{
    struct order *old = &shard->orders[index];
    RUSH_ASSERT(index == shard->retired_head && generation == (uint16_t)(old->generation + 1));
    RUSH_ASSERT(!rush_timer_wheel_scheduled(&shard->timers, index));
    shard->retired_head = old->retired_next;
    if (shard->retired_head == NONE)
        shard->retired_tail = NONE;
    if (old->state == RUSH_ORDER_CONFIRMED)
        shard->skus[old->sku_index].confirmed_retired += old->qty;
    if (!rush_key_is_zero(&old->key)) {
        bool removed = rush_table_remove(&shard->keys, &old->key);
        RUSH_ASSERT(removed);
        count_one(&shard->stats.keys_forgotten);
    }
    count_one(&shard->stats.orders_reclaimed);
}

static void return_stock(struct rush_shard *shard, struct order *order, uint8_t state)
{
    RUSH_ASSERT(order->state == RUSH_ORDER_RESERVED);
    struct sku_state *sku = &shard->skus[order->sku_index];
    sku->reserved -= order->qty;
    if (!sku->def.unlimited)
        sku->available += order->qty;
    struct limit_entry *limit = shard__limit(shard, order->sku_index, order->user_id);
    RUSH_ASSERT(limit != NULL && limit->held >= order->qty);
    limit->held -= order->qty;
    if (sku->def.rules & RUSH_SKU_IN_ACTIVITY)
        activity_give_back(shard, sku, order->user_id, order->qty);
    if (order->group_index != NONE && shard__subsidy_counted(sku))
        subsidy_charge(shard, sku, -shard__seat_subsidy(sku, order->amount_fen));
    order->state = state;
    retire(shard, order);
}

static void apply_reserved(struct rush_shard *shard, const struct rush_event *event)
{
    struct sku_state *sku = shard__sku(shard, event->sku_id);
    uint64_t index = event->order_id & UINT32_MAX;
    uint16_t generation = (uint16_t)((event->order_id & ID_INDEX_MASK) >> ID_SLOT_BITS);
    RUSH_ASSERT(sku != NULL && index <= shard->limits.orders_max);
    if (index <= shard->order_count) {
        reuse_slot(shard, (uint32_t)index, generation);
    } else {
        RUSH_ASSERT(index == (uint64_t)shard->order_count + 1 && generation == 0);
        shard->order_count = (uint32_t)index;
    }
    struct order *order = &shard->orders[index];
    RUSH_ASSERT(event->amount >= 0);
    /* Field by field: a compound literal of the whole record (or a copy of a constant blank)
     * compiles to `rep stos`, whose start-up cost more than these stores on every reserve. */
    static_assert(sizeof(struct order) == 96 && offsetof(struct order, inviter_id) == 88,
                  "every field of an order is set below");
    order->user_id = event->user_id;
    order->amount_fen = event->amount;
    memset(&order->key, 0, sizeof(order->key)); /* remember() sets it */
    memset(&order->end_key, 0, sizeof(order->end_key));
    order->ended_ns = 0;
    order->end_remaining = 0;
    order->sku_index = (uint32_t)(sku - shard->skus);
    order->qty = event->qty;
    order->group_index = NONE;
    order->member_next = NONE;
    order->retired_next = NONE;
    order->generation = generation;
    order->state = RUSH_ORDER_RESERVED;
    order->end_op = 0;
    order->inviter_id = 0;
    take_stock(shard, sku, event->user_id, event->qty, event->group_id == 0);
    if (event->group_id != 0 && shard__subsidy_counted(sku))
        subsidy_charge(shard, sku, shard__seat_subsidy(sku, event->amount));
    if (event->group_id != 0) {
        order->group_index = (uint32_t)(event->group_id & ID_INDEX_MASK);
        group__seat_add(shard, order->group_index, (uint32_t)index);
    } else if (sku->def.pay_ttl_ns > 0) {
        rush_timer_wheel_add(&shard->timers, (uint32_t)index, shard->now_ns + sku->def.pay_ttl_ns);
    }
}

static void apply_group_opened(struct rush_shard *shard, const struct rush_event *event)
{
    struct sku_state *sku = shard__sku(shard, event->sku_id);
    uint64_t index = event->group_id & ID_INDEX_MASK;
    RUSH_ASSERT(sku != NULL && index == (uint64_t)shard->group_count + 1);
    RUSH_ASSERT(index <= shard->limits.groups_max);
    shard->group_count = (uint32_t)index;
    group__opened(shard, sku, (uint32_t)index, event->amount);
    struct rush_event seat = *event;
    seat.type = RUSH_EV_ORDER_RESERVED;
    RUSH_ASSERT(event->qty == 1);
    seat.amount = shard__seat_price(sku, true); /* the leader's price, fixed at open */
    apply_reserved(shard, &seat);
}

static void apply_group_closed(struct rush_shard *shard, const struct rush_event *event,
                               uint8_t state)
{
    struct group *group = shard__group(shard, event->group_id);
    RUSH_ASSERT(group != NULL);
    struct sku_state *sku = &shard->skus[group->sku_index];
    if (state == RUSH_GROUP_COMPLETED && sku->def.tier_count != 0) { /* the tier reached cost
                                                                        less than the last one */
        uint32_t tier = group__tier_reached(sku, group->seats);
        RUSH_ASSERT(tier != NONE);
        subsidy_charge(shard, sku,
                       -(int64_t)group->seats * (sku->def.tier_price_fen[tier] -
                                                 sku->def.tier_price_fen[sku->def.tier_count - 1]));
    }
    group__closed(shard, (uint32_t)(group - shard->groups), state,
                  state == RUSH_GROUP_COMPLETED ? event->qty : 0);
}

/* Makes an absent SKU, or redefines one: stock_total follows def.stock, never below held. */
static void apply_sku_put(struct rush_shard *shard, const struct rush_sku *def)
{
    struct sku_state *sku = shard__sku(shard, def->id);
    if (sku == NULL) {
        rush_key key = rush_key_pair(0, def->id);
        struct sku_entry *entry = rush_table_insert(&shard->sku_ids, &key);
        RUSH_ASSERT(entry != NULL && shard->sku_count < shard->limits.skus_max);
        entry->index = shard->sku_count++;
        sku = &shard->skus[entry->index];
        for (int k = 0; k < RUSH_GROUP_SIZE_MAX; k++)
            sku->bucket_head[k] = sku->bucket_tail[k] = NONE;
    }
    if (def->subsidy_budget_fen == 0)
        sku->subsidy_spent_fen = 0; /* counted only under a budget (decide.c, sku_put) */
    sku->def = *def;
    int64_t held = sku->reserved + sku->confirmed;
    sku->stock_total = def->unlimited ? held : def->stock;
    sku->available = def->unlimited ? 0 : def->stock - held;
    RUSH_ASSERT(sku->available >= 0);
}

static void apply_sku_part(struct rush_shard *shard, const struct rush_event *event)
{
    uint32_t part = event->qty;
    RUSH_ASSERT(part < shard->sku_parts_expected && part == shard->sku_parts_seen);
    size_t offset = (size_t)part * RUSH_SKU_PART_BYTES;
    size_t bytes = sizeof(struct rush_sku) - offset;
    if (bytes > RUSH_SKU_PART_BYTES)
        bytes = RUSH_SKU_PART_BYTES;
    memcpy((uint8_t *)&shard->sku_pending + offset, event->payload, bytes);
    if (++shard->sku_parts_seen == shard->sku_parts_expected)
        apply_sku_put(shard, &shard->sku_pending);
}

/*
 * The state a decision leaves its order in (rush_result.state), known when its first event is
 * applied so that replay rebuilds the same entry: a seat that fills its group, and a reservation
 * of a SKU without a pay TTL, are confirmed by the events that follow in the same decision.
 */
static uint8_t decided_state(const struct rush_shard *shard, const struct rush_event *event,
                             const struct order *order)
{
    if (order == NULL)
        return RUSH_ORDER_NONE;
    if (order->state != RUSH_ORDER_RESERVED)
        return order->state;
    const struct sku_state *sku = &shard->skus[order->sku_index];
    if (order->group_index != NONE)
        return shard->groups[order->group_index].seats == sku->def.group_size ? RUSH_ORDER_CONFIRMED
                                                                              : RUSH_ORDER_RESERVED;
    if (event->type == RUSH_EV_ORDER_RESERVED && sku->def.pay_ttl_ns == 0)
        return RUSH_ORDER_CONFIRMED;
    return RUSH_ORDER_RESERVED;
}

/* Makes room in the ring of other keys by forgetting its oldest when it is full. */
static uint64_t ring_push(struct rush_shard *shard, const rush_key *key)
{
    struct rush_key_ring *ring = &shard->ring;
    if (ring->count == ring->capacity) {
        bool removed =
            rush_table_remove(&shard->keys, &ring->keys[ring->seq_first % ring->capacity]);
        RUSH_ASSERT(removed);
        ring->seq_first++;
        ring->count--;
        count_one(&shard->stats.keys_forgotten);
    }
    uint64_t seq = ring->seq_first + ring->count;
    ring->keys[seq % ring->capacity] = *key;
    ring->count++;
    return seq + 1;
}

/* A confirm or cancel that ended an order keeps its key in the order: it needs no table room. */
static void remember_with_order(struct rush_shard *shard, const struct rush_event *event)
{
    struct order *order = shard__order(shard, event->order_id);
    RUSH_ASSERT(order != NULL && rush_key_is_zero(&order->end_key));
    const struct sku_state *sku = &shard->skus[order->sku_index];
    order->end_key = event->key;
    order->end_op = event->op;
    order->end_remaining = sku->def.unlimited ? SHARD_REMAINING_UNLIMITED : sku->available;
    shard->end_answer = (struct key_entry){.key = event->key,
                                           .op = event->op,
                                           .outcome = RUSH_OK,
                                           .state = order->state,
                                           .order_id = event->order_id,
                                           .remaining = order->end_remaining};
    shard->last_entry = &shard->end_answer;
}

/*
 * Writes the idempotency entry of a decision: after its state change, so `remaining` is right.
 * Who owns it (invariant 4): the order a reservation created, the order a confirm or cancel
 * ended, else the ring.
 */
static void remember(struct rush_shard *shard, const struct rush_event *event)
{
    bool ends = (event->type == RUSH_EV_ORDER_CONFIRMED && event->op == RUSH_OP_CONFIRM) ||
                (event->type == RUSH_EV_ORDER_RELEASED && event->op == RUSH_OP_CANCEL);
    if (ends) {
        remember_with_order(shard, event);
        return;
    }
    bool creates = event->type == RUSH_EV_ORDER_RESERVED || event->type == RUSH_EV_GROUP_OPENED;
    uint64_t ring_seq = creates ? 0 : ring_push(shard, &event->key);
    uint64_t target = event->op == RUSH_OP_GROUP_JOIN ? event->group_id
                      : (event->op == RUSH_OP_CONFIRM || event->op == RUSH_OP_CANCEL)
                          ? event->order_id
                          : 0;
    struct key_entry *entry = rush_table_insert_noted(&shard->keys, &event->key);
    RUSH_ASSERT(entry != NULL); /* decisions check room first; the ring made its own */
    shard->last_entry = entry;
    /* A join's inviter comes in the SEAT_INVITED event that follows (apply_seat_invited). */
    int64_t amount = event->op == RUSH_OP_ADJUST ? event->amount : 0;
    struct request_fields fields =
        shard__fields(event->op, event->sku_id, event->user_id, event->qty, target, amount);
    entry->field_a = fields.a;
    entry->field_b = fields.b;
    entry->field_c = fields.c;
    entry->op = event->op;
    entry->outcome = event->outcome;
    struct order *order = shard__order(shard, event->order_id);
    entry->state = decided_state(shard, event, order);
    entry->order_id = event->order_id;
    entry->ring_seq = ring_seq;
    const struct sku_state *sku = shard__sku(shard, event->sku_id);
    entry->remaining = sku == NULL          ? 0
                       : sku->def.unlimited ? SHARD_REMAINING_UNLIMITED
                                            : sku->available;
    if (creates) {
        RUSH_ASSERT(order != NULL);
        order->key = event->key;
    }
}

/* The seat just reserved was bought on an invitation: the order and its key entry keep it. */
static void apply_seat_invited(struct rush_shard *shard, const struct rush_event *event)
{
    struct order *order = shard__order(shard, event->order_id);
    RUSH_ASSERT(order != NULL && order->group_index != NONE && event->user_id != 0);
    RUSH_ASSERT(order->user_id != event->user_id);
    order->inviter_id = event->user_id;
    struct key_entry *entry = (struct key_entry *)shard->last_entry;
    RUSH_ASSERT(entry != NULL && entry->order_id == event->order_id);
    entry->field_c = shard__inviter_fold(event->user_id);
}

/* A registration: an entry of its own in the user-limit table (a repeat finds it there). */
static void apply_registered(struct rush_shard *shard, const struct rush_event *event)
{
    const struct sku_state *sku = shard__sku(shard, event->sku_id);
    RUSH_ASSERT(sku != NULL && event->user_id != 0);
    rush_key key =
        rush_key_pair(LIMIT_REGISTERED | ((uint64_t)(sku - shard->skus) + 1), event->user_id);
    bool created;
    struct limit_entry *entry = rush_table_upsert(&shard->user_limits, &key, &created);
    RUSH_ASSERT(entry != NULL); /* the decision checked room */
}

void shard__apply(struct rush_shard *shard, const struct rush_event *event)
{
    struct order *order = NULL;
    struct sku_state *sku = NULL;
    if (event->type >= RUSH_EV_ORDER_CONFIRMED && event->type <= RUSH_EV_ORDER_EXPIRED)
        order = shard__order(shard, event->order_id);
    if (event->type >= RUSH_EV_STOCK_ADJUSTED && event->type <= RUSH_EV_SKU_RESUMED)
        sku = shard__sku(shard, event->sku_id);
    switch ((enum rush_event_type)event->type) {
    case RUSH_EV_REJECTED:
    case RUSH_EV_REFUND_DUE:
        break;
    case RUSH_EV_ORDER_RESERVED:
        apply_reserved(shard, event);
        break;
    case RUSH_EV_ORDER_CONFIRMED:
        RUSH_ASSERT(order != NULL && order->state == RUSH_ORDER_RESERVED);
        order->state = RUSH_ORDER_CONFIRMED;
        shard->skus[order->sku_index].reserved -= order->qty;
        shard->skus[order->sku_index].confirmed += order->qty;
        retire(shard, order);
        break;
    case RUSH_EV_ORDER_RELEASED:
        RUSH_ASSERT(order != NULL);
        return_stock(shard, order, RUSH_ORDER_RELEASED);
        break;
    case RUSH_EV_ORDER_EXPIRED:
        RUSH_ASSERT(order != NULL);
        return_stock(shard, order, RUSH_ORDER_EXPIRED);
        break;
    case RUSH_EV_GROUP_OPENED:
        apply_group_opened(shard, event);
        break;
    case RUSH_EV_GROUP_COMPLETED:
        apply_group_closed(shard, event, RUSH_GROUP_COMPLETED);
        break;
    case RUSH_EV_GROUP_FAILED:
        apply_group_closed(shard, event, RUSH_GROUP_FAILED);
        break;
    case RUSH_EV_STOCK_ADJUSTED:
        RUSH_ASSERT(sku != NULL && sku->available + event->amount >= 0);
        sku->stock_total += event->amount;
        sku->available += event->amount;
        break;
    case RUSH_EV_SKU_PAUSED:
    case RUSH_EV_SKU_RESUMED:
        RUSH_ASSERT(sku != NULL);
        sku->def.paused = event->type == RUSH_EV_SKU_PAUSED;
        break;
    case RUSH_EV_SKU_PUT:
        shard->sku_parts_seen = 0;
        shard->sku_parts_expected = event->qty != 0 ? event->qty : RUSH_SKU_PUT_PARTS_V0;
        RUSH_ASSERT(shard->sku_parts_expected <= RUSH_SKU_PUT_PARTS);
        memset(&shard->sku_pending, 0, sizeof(shard->sku_pending));
        break;
    case RUSH_EV_SKU_PART:
        apply_sku_part(shard, event);
        break;
    case RUSH_EV_SEAT_INVITED:
        apply_seat_invited(shard, event);
        break;
    case RUSH_EV_INVITER_DUE:
        break; /* a reward to pay: changes nothing here */
    case RUSH_EV_TIER_REFUND_DUE:
        break; /* money to give back: changes nothing here */
    case RUSH_EV_ADMIN_AUDIT:
    case RUSH_EV_AUDIT_PART:
        break; /* who did an admin action and why: changes nothing here */
    case RUSH_EV_REGISTERED:
        apply_registered(shard, event);
        break;
    case RUSH_EV_NONE:
    case RUSH_EV_TYPE_COUNT_:
        RUSH_ASSERT(!"unknown event type");
        break;
    }
    if (event->flags & RUSH_EVENT_DECISION)
        remember(shard, event);
}

/*
 * Replay restores the timers from the log's times: the shard's clock follows the logged batch
 * times (the recovering shard is created at time 0), so a pay deadline is the reserving batch's
 * time + pay TTL and a group's the logged one, as they were live. Timers that fell due while the
 * process was down stay in the wheel; the first rush_shard_begin after the start fires them, in
 * deadline order, before it decides anything new.
 */
void rush_shard_apply(struct rush_shard *shard, int64_t time_ns, const struct rush_event *event)
{
    if (time_ns > shard->now_ns)
        shard->now_ns = time_ns;
    /* Timers due by this batch's time were fired live, at the start of this batch or earlier, and
     * their events are in the log: advance without firing twice. */
    rush_timer_wheel_advance(&shard->timers, shard->now_ns, shard->due);
    shard__apply(shard, event);
}

/* ---- answers ------------------------------------------------------------------------------ */

/* The answer of a remembered decision: the same bytes for the original and for every retry. */
void shard__answer_of(const struct rush_shard *shard, const struct key_entry *entry,
                      const struct order *order, const struct rush_request *request,
                      struct rush_result *result)
{
    result->outcome = entry->outcome;
    result->reason = entry->reason;
    result->state = entry->state;
    result->order_id = entry->order_id;
    /* The SKU's kind as it was at the decision, not as a later sku_put left it. */
    bool unlimited = entry->remaining == SHARD_REMAINING_UNLIMITED;
    result->remaining = unlimited ? 0 : entry->remaining;
    if (unlimited)
        result->flags |= RUSH_RESULT_UNLIMITED;
    if (order != NULL) {
        result->qty = order->qty;
        if (order->group_index != NONE)
            result->group_id = group_id_of(shard, order->group_index);
    } else if (request->op == RUSH_OP_GROUP_JOIN) {
        result->group_id = request->target_id;
    }
}

void shard__answer(const struct rush_shard *shard, const struct key_entry *entry,
                   const struct rush_request *request, struct rush_result *result)
{
    shard__answer_of(shard, entry, shard__order(shard, entry->order_id), request, result);
}

/* ---- check and digest --------------------------------------------------------------------- */

#define CHECK(condition, ...)                                                                      \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            snprintf(why, why_size, __VA_ARGS__);                                                  \
            return RUSH_ECORRUPT;                                                                  \
        }                                                                                          \
    } while (0)

/* Sums of held stock recomputed from the orders, one pair per SKU. */
struct held_sums {
    int64_t reserved;
    int64_t confirmed;
};

static int check_skus(const struct rush_shard *shard, const struct held_sums *sums, char *why,
                      size_t why_size)
{
    for (uint32_t i = 0; i < shard->sku_count; i++) {
        const struct sku_state *sku = &shard->skus[i];
        uint64_t id = sku->def.id;
        CHECK(sku->reserved == sums[i].reserved &&
                  sku->confirmed == sums[i].confirmed + sku->confirmed_retired,
              "sku %lu: reserved %ld confirmed %ld but orders hold %ld and %ld (+%ld reused)", id,
              sku->reserved, sku->confirmed, sums[i].reserved, sums[i].confirmed,
              sku->confirmed_retired);
        if (sku->def.unlimited)
            continue;
        CHECK(sku->available >= 0 && sku->reserved >= 0 && sku->confirmed >= 0,
              "sku %lu: negative ledger", id);
        CHECK(sku->stock_total == sku->available + sku->reserved + sku->confirmed,
              "sku %lu: oversold: total %ld != available %ld + reserved %ld + confirmed %ld", id,
              sku->stock_total, sku->available, sku->reserved, sku->confirmed);
    }
    return 0;
}

/* A completed group has N seats counting virtual ones; a tiered one reached a tier. */
static bool completed_size_ok(const struct group *group, const struct sku_state *sku)
{
    if (sku->def.tier_count != 0)
        return group->virtual_seats == 0 && group__tier_reached(sku, group->seats) != NONE;
    return group->seats + group->virtual_seats == sku->def.group_size;
}

static int check_groups(const struct rush_shard *shard, char *why, size_t why_size)
{
    uint32_t *open = calloc(shard->sku_count + 1, sizeof(uint32_t));
    RUSH_ASSERT(open != NULL); /* a checking aid, not the decision path */
    int rc = 0;
    for (uint32_t g = 1; g <= shard->group_count && rc == 0; g++) {
        const struct group *group = &shard->groups[g];
        uint32_t size = shard->skus[group->sku_index].def.group_size;
        uint32_t members = group->seats; /* a closed group's seats may be reused slots */
        if (group->state == RUSH_GROUP_OPEN) {
            members = 0;
            for (uint32_t o = group->member_first; o != NONE && members <= size;
                 o = shard->orders[o].member_next)
                members++;
        }
        open[group->sku_index] += group->state == RUSH_GROUP_OPEN;
        if (members != group->seats || group->seats > size ||
            (group->state == RUSH_GROUP_OPEN && group->seats >= size) ||
            (group->state == RUSH_GROUP_COMPLETED &&
             !completed_size_ok(group, &shard->skus[group->sku_index]))) {
            snprintf(why, why_size, "group %u: %u members, %u seats, %u virtual, size %u, state %u",
                     g, members, group->seats, group->virtual_seats, size, group->state);
            rc = RUSH_ECORRUPT;
        }
    }
    for (uint32_t i = 0; i < shard->sku_count && rc == 0; i++) {
        if (open[i] != shard->skus[i].groups_open) {
            snprintf(why, why_size, "sku %lu: %u open groups counted, %u recorded",
                     shard->skus[i].def.id, open[i], shard->skus[i].groups_open);
            rc = RUSH_ECORRUPT;
        }
    }
    free(open);
    return rc;
}

/* The first word of a user-limit key: its kind (LIMIT_*) and SKU index or family. */
static uint64_t limit_kind_of(const struct limit_entry *entry)
{
    uint64_t high;
    memcpy(&high, entry->key.bytes + 8, sizeof(high));
    return high;
}

/*
 * Invariant 2: each (sku, user) entry holds what that user's orders hold (reused slots too), and
 * the activity entries hold what the orders of activity SKUs hold.
 */
static int check_limits(const struct rush_shard *shard, char *why, size_t why_size)
{
    uint64_t entries_held = 0, orders_held = 0, entries_unpaid = 0, orders_unpaid = 0;
    uint64_t activity_entries_held = 0, activity_orders_held = 0;
    for (uint32_t s = 0; s < shard->user_limits.slot_count; s++) {
        const struct limit_entry *entry = rush_table_slot(&shard->user_limits, s);
        if (entry == NULL || (limit_kind_of(entry) & LIMIT_REGISTERED))
            continue;
        if (limit_kind_of(entry) & LIMIT_ACTIVITY) {
            activity_entries_held += entry->held;
            continue;
        }
        entries_held += entry->held;
        entries_unpaid += entry->unpaid;
    }
    for (uint32_t o = 1; o <= shard->order_count; o++) {
        const struct order *order = &shard->orders[o];
        bool held = order->state == RUSH_ORDER_RESERVED || order->state == RUSH_ORDER_CONFIRMED;
        orders_held += held ? order->qty : 0;
        if (held && (shard->skus[order->sku_index].def.rules & RUSH_SKU_IN_ACTIVITY))
            activity_orders_held += order->qty;
        orders_unpaid += order->state == RUSH_ORDER_RESERVED && order->group_index == NONE;
    }
    for (uint32_t i = 0; i < shard->sku_count; i++) {
        orders_held += (uint64_t)shard->skus[i].confirmed_retired;
        if (shard->skus[i].def.rules & RUSH_SKU_IN_ACTIVITY)
            activity_orders_held += (uint64_t)shard->skus[i].confirmed_retired;
    }
    CHECK(entries_held == orders_held, "user limits hold %lu units, orders hold %lu", entries_held,
          orders_held);
    CHECK(activity_entries_held == activity_orders_held,
          "activity limits hold %lu units, orders of activity SKUs hold %lu", activity_entries_held,
          activity_orders_held);
    CHECK(entries_unpaid == orders_unpaid, "user limits count %lu unpaid orders, there are %lu",
          entries_unpaid, orders_unpaid);
    return 0;
}

/* Invariant 5: the retired list holds every ended order once, in the order they ended. */
static int check_retired(const struct rush_shard *shard, char *why, size_t why_size)
{
    uint32_t ended = 0, listed = 0, last = NONE;
    for (uint32_t o = 1; o <= shard->order_count; o++)
        ended += shard->orders[o].state != RUSH_ORDER_RESERVED;
    for (uint32_t o = shard->retired_head; o != NONE && listed <= ended;
         o = shard->orders[o].retired_next, listed++) {
        CHECK(o >= 1 && o <= shard->order_count && shard->orders[o].state != RUSH_ORDER_RESERVED,
              "retired list: slot %u is not an ended order", o);
        CHECK(!rush_timer_wheel_scheduled(&shard->timers, o),
              "retired list: slot %u ended with its pay timer still set", o);
        CHECK(last == NONE || shard->orders[last].ended_ns <= shard->orders[o].ended_ns,
              "retired list: slot %u ended before slot %u", o, last);
        last = o;
    }
    CHECK(listed == ended && last == shard->retired_tail,
          "retired list: %u listed of %u ended orders", listed, ended);
    return 0;
}

/* Invariant 4: every key entry has one owner, an order slot or the ring, and the owner has it. */
static int check_keys(const struct rush_shard *shard, char *why, size_t why_size)
{
    uint32_t owned = 0;
    for (uint32_t o = 1; o <= shard->order_count; o++) {
        const struct order *order = &shard->orders[o];
        if (rush_key_is_zero(&order->key))
            continue;
        const struct key_entry *entry = rush_table_find(&shard->keys, &order->key);
        CHECK(entry != NULL && entry->ring_seq == 0 && entry->order_id == order_id_of(shard, o),
              "order slot %u: its key has no entry naming it", o);
        owned++;
    }
    const struct rush_key_ring *ring = &shard->ring;
    for (uint32_t i = 0; i < ring->count; i++) {
        uint64_t seq = ring->seq_first + i;
        const struct key_entry *entry =
            rush_table_find(&shard->keys, &ring->keys[seq % ring->capacity]);
        CHECK(entry != NULL && entry->ring_seq == seq + 1, "ring place %lu: no entry", seq);
    }
    CHECK(shard->keys.count == owned + ring->count,
          "%u key entries, %u owned by orders and %u by the ring", shard->keys.count, owned,
          ring->count);
    return 0;
}

/*
 * Invariant 6: timers are state. An open group's deadline timer is scheduled at the group's
 * deadline; only orders and groups that exist have scheduled timers. (A reserved order's pay timer
 * is restored from the log's times, not recomputed: see rush_shard_apply.)
 */
static int check_timers(const struct rush_shard *shard, char *why, size_t why_size)
{
    const struct rush_timer_wheel *wheel = &shard->timers;
    uint32_t scheduled = 0;
    for (uint32_t o = 1; o <= shard->order_count; o++)
        scheduled += rush_timer_wheel_scheduled(wheel, o);
    for (uint32_t g = 1; g <= shard->group_count; g++) {
        const struct group *group = &shard->groups[g];
        uint32_t handle = group_timer_handle(shard, g);
        bool is_scheduled = rush_timer_wheel_scheduled(wheel, handle);
        scheduled += is_scheduled;
        CHECK(group->state != RUSH_GROUP_OPEN ||
                  (is_scheduled && rush_timer_deadline(wheel, handle) == group->deadline_ns),
              "group %u: open, but its deadline timer is %s", g,
              is_scheduled ? "at another time" : "not scheduled");
    }
    CHECK(scheduled == wheel->scheduled_count,
          "%u timers scheduled for existing orders and groups, the wheel holds %u", scheduled,
          wheel->scheduled_count);
    return 0;
}

/* Invariant 7: each budgeted activity's spent figure is the sum of its SKUs' (O(SKUs)). */
static int check_activity_subsidy(const struct rush_shard *shard, char *why, size_t why_size)
{
    int64_t sums[RUSH_ACTIVITIES_MAX] = {0};
    for (uint32_t i = 0; i < shard->sku_count; i++) {
        const struct sku_state *sku = &shard->skus[i];
        uint32_t a = shard__activity_budgeted(shard, sku);
        CHECK(sku->activity_spent_fen >= 0 && (a != NONE || sku->activity_spent_fen == 0),
              "sku %lu: activity subsidy %ld without a budgeted activity", sku->def.id,
              sku->activity_spent_fen);
        if (a != NONE)
            sums[a] += sku->activity_spent_fen;
    }
    for (uint32_t a = 0; a < shard->policy.activity_count; a++)
        CHECK(sums[a] == shard->activity_spent_fen[a],
              "activity %s: spent %ld fen of subsidy, its SKUs count %ld",
              shard->activities[a].name, shard->activity_spent_fen[a], sums[a]);
    return 0;
}

int rush_shard_check(const struct rush_shard *shard, char *why, size_t why_size)
{
    struct held_sums *sums = calloc(shard->sku_count + 1, sizeof(*sums));
    RUSH_ASSERT(sums != NULL);
    for (uint32_t o = 1; o <= shard->order_count; o++) {
        const struct order *order = &shard->orders[o];
        if (order->state == RUSH_ORDER_RESERVED)
            sums[order->sku_index].reserved += order->qty;
        if (order->state == RUSH_ORDER_CONFIRMED)
            sums[order->sku_index].confirmed += order->qty;
    }
    int rc = check_skus(shard, sums, why, why_size);
    free(sums);
    if (rc == 0)
        rc = check_groups(shard, why, why_size);
    if (rc == 0)
        rc = check_limits(shard, why, why_size);
    if (rc == 0)
        rc = check_retired(shard, why, why_size);
    if (rc == 0)
        rc = check_keys(shard, why, why_size);
    if (rc == 0)
        rc = check_timers(shard, why, why_size);
    if (rc == 0)
        rc = check_activity_subsidy(shard, why, why_size);
    return rc;
}

/* Sum of per-entry hashes: the same whatever slot each entry landed in. */
static uint64_t table_digest(const struct rush_table *table)
{
    uint64_t sum = 0;
    for (uint32_t s = 0; s < table->slot_count; s++) {
        const void *entry = rush_table_slot(table, s);
        if (entry != NULL)
            sum += XXH3_64bits(entry, table->entry_bytes);
    }
    return sum;
}

/*
 * The orders, but for when each ended: that is the time of the batch that logged the end, which a
 * replay sees as the batch's logged time (the live shard may have moved on within the batch). It
 * only delays when the slot may be reused; the reservation that reuses it names the slot.
 */
static void digest_orders(const struct rush_shard *shard, XXH3_state_t *state)
{
    enum { CHUNK = 256 };
    struct order chunk[CHUNK];
    for (uint32_t first = 0; first <= shard->order_count; first += CHUNK) {
        uint32_t count =
            shard->order_count + 1 - first < CHUNK ? shard->order_count + 1 - first : CHUNK;
        memcpy(chunk, &shard->orders[first], sizeof(chunk[0]) * count);
        for (uint32_t i = 0; i < count; i++)
            chunk[i].ended_ns = 0;
        XXH3_64bits_update(state, chunk, sizeof(chunk[0]) * count);
    }
}

/*
 * The pending timers, as (handle, deadline) pairs in handle order: every reserved order's pay
 * timer and every open group's deadline. Timers of groups that have closed are left out: they
 * are cancelled lazily (timer.h), and an idle pass takes them out of the wheel without logging
 * anything, so a replica may still hold them. (An order's pay timer is cancelled when it ends.)
 */
static uint64_t timers_digest(const struct rush_shard *shard)
{
    const struct rush_timer_wheel *wheel = &shard->timers;
    XXH3_state_t *state = XXH3_createState();
    RUSH_ASSERT(state != NULL);
    XXH3_64bits_reset(state);
    for (uint32_t o = 1; o <= shard->order_count; o++) {
        if (shard->orders[o].state != RUSH_ORDER_RESERVED || !rush_timer_wheel_scheduled(wheel, o))
            continue;
        int64_t pair[2] = {o, rush_timer_deadline(wheel, o)};
        XXH3_64bits_update(state, pair, sizeof(pair));
    }
    for (uint32_t g = 1; g <= shard->group_count; g++) {
        uint32_t handle = group_timer_handle(shard, g);
        if (shard->groups[g].state != RUSH_GROUP_OPEN || !rush_timer_wheel_scheduled(wheel, handle))
            continue;
        int64_t pair[2] = {handle, rush_timer_deadline(wheel, handle)};
        XXH3_64bits_update(state, pair, sizeof(pair));
    }
    uint64_t digest = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    return digest;
}

/*
 * The clock is left out: idle passes move it without deciding (or logging) anything, and it
 * only ever floors the next batch's time. The pending timers are in: a restart must restore
 * them from the log's times, not restart them.
 */
uint64_t rush_shard_digest(const struct rush_shard *shard)
{
    XXH3_state_t *state = XXH3_createState();
    RUSH_ASSERT(state != NULL);
    XXH3_64bits_reset(state);
    XXH3_64bits_update(state, shard->skus, sizeof(*shard->skus) * shard->sku_count);
    digest_orders(shard, state);
    XXH3_64bits_update(state, shard->groups, sizeof(*shard->groups) * (shard->group_count + 1));
    uint64_t tables[7] = {table_digest(&shard->sku_ids),
                          table_digest(&shard->keys),
                          table_digest(&shard->user_limits),
                          timers_digest(shard),
                          shard->retired_head,
                          shard->retired_tail,
                          shard->ring.seq_first};
    XXH3_64bits_update(state, tables, sizeof(tables));
    for (uint32_t i = 0; i < shard->ring.count; i++)
        XXH3_64bits_update(state,
                           &shard->ring.keys[(shard->ring.seq_first + i) % shard->ring.capacity],
                           sizeof(rush_key));
    uint64_t digest = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    return digest;
}

/* ---- figures ------------------------------------------------------------------------------ */

const struct rush_shard_stats *rush_shard_stats(const struct rush_shard *shard)
{
    return &shard->stats;
}

int64_t rush_shard_now(const struct rush_shard *shard)
{
    return shard->now_ns;
}

void rush_shard_memory(const struct rush_shard *shard, struct rush_shard_memory *memory)
{
    const struct rush_shard_limits *limits = &shard->limits;
    uint64_t timer_bytes = rush_timer_wheel_bytes(&shard->timers);
    memory->total_bytes = sizeof(*shard) + (uint64_t)limits->skus_max * sizeof(*shard->skus) +
                          ((uint64_t)limits->orders_max + 1) * sizeof(struct order) +
                          ((uint64_t)limits->groups_max + 1) * sizeof(struct group) +
                          ((uint64_t)limits->orders_max + limits->groups_max + 2) * 4 +
                          (uint64_t)limits->events_buffer_max * sizeof(struct rush_event) +
                          rush_table_bytes(&shard->sku_ids) + rush_table_bytes(&shard->keys) +
                          rush_table_bytes(&shard->user_limits) + timer_bytes +
                          (uint64_t)shard->ring.capacity * sizeof(rush_key);
    /* An order: its record, its timer (next, deadline, state) and its slot in the due scratch. */
    memory->order_bytes_each = sizeof(struct order) + 4 + 4 + 8 + 1 + 4;
    memory->key_bytes_each = rush_table_bytes(&shard->keys) / shard->keys.capacity;
}

uint32_t rush_shard_regions(const struct rush_shard *shard, void **regions, uint32_t regions_max)
{
    void *all[] = {shard->orders,        shard->groups,      shard->ring.keys,
                   shard->sku_ids.slots, shard->keys.slots,  shard->user_limits.slots,
                   shard->timers.next,   shard->timers.prev, shard->timers.deadline_ns,
                   shard->timers.state};
    static_assert(sizeof(all) / sizeof(all[0]) <= RUSH_SHARD_REGIONS_MAX, "regions fit the max");
    uint32_t count = 0;
    for (uint32_t i = 0; i < sizeof(all) / sizeof(all[0]) && count < regions_max; i++)
        if (all[i] != NULL)
            regions[count++] = all[i];
    return count;
}

int rush_shard_ledger(const struct rush_shard *shard, uint64_t sku_id,
                      struct rush_sku_ledger *ledger)
{
    const struct sku_state *sku = shard__sku(shard, sku_id);
    if (sku == NULL)
        return -ENOENT;
    *ledger = (struct rush_sku_ledger){.stock_total = sku->stock_total,
                                       .available = sku->available,
                                       .reserved = sku->reserved,
                                       .confirmed = sku->confirmed,
                                       .groups_open = sku->groups_open,
                                       .virtual_used = sku->virtual_used,
                                       .unlimited = sku->def.unlimited,
                                       .paused = sku->def.paused};
    return 0;
}

uint32_t rush_shard_user_held(const struct rush_shard *shard, uint64_t sku_id, uint64_t user_id)
{
    const struct sku_state *sku = shard__sku(shard, sku_id);
    if (sku == NULL)
        return 0;
    const struct limit_entry *limit = shard__limit(shard, (uint32_t)(sku - shard->skus), user_id);
    return limit ? limit->held : 0;
}

uint32_t rush_shard_keys_held(const struct rush_shard *shard)
{
    return shard->keys.count;
}

uint32_t rush_shard_order_slots_used(const struct rush_shard *shard)
{
    return shard->order_count;
}

void rush_shard_occupancy(const struct rush_shard *shard, struct rush_shard_occupancy *out)
{
    const struct rush_shard_limits *limits = &shard->limits;
    *out = (struct rush_shard_occupancy){
        .used = {shard->sku_count, shard->order_count, shard->group_count, shard->keys.count,
                 shard->user_limits.count},
        .max = {limits->skus_max, limits->orders_max, limits->groups_max, shard->keys.capacity,
                shard->user_limits.capacity},
    };
}
