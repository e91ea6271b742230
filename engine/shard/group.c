/*
 * group.c — the group-buy machine: seats, completion, and the deadline policy.
 *
 * Workload: Pinduoduo-style groups of N (2..64) buyers on a SKU; join_any packs joiners into the
 * open group closest to full, then oldest, so groups fill fast and few expire.
 *
 *                 seat N taken                       deadline, policy fills it
 *   open (1..N-1 seats) ---------> completed <--------------------------------+
 *        |                                                                    |
 *        +-- deadline ----------------------------------------------- open ---+
 *                                    \--- policy cannot fill ---> failed
 *
 * | transition               | decided by         | events                                   |
 * |--------------------------|--------------------|------------------------------------------|
 * | (none) -> open           | group__open        | GROUP_OPENED (group + leader seat)       |
 * | open -> open (seat)      | group__join[_any]  | ORDER_RESERVED with group id             |
 * | open -> completed        | complete()         | ORDER_CONFIRMED per member, COMPLETED    |
 * | open -> failed           | fail()             | ORDER_RELEASED + REFUND_DUE per member, FAILED
 * |
 *
 * Invariants: a seat is taken in one applied event, so a group never exceeds N; completion
 * confirms every member in the same decision as the N-th seat; the deadline is fixed at open.
 * Seats hold stock from the moment they are taken (stock reserved at join); a seat's order has no
 * pay TTL of its own (the money is taken at join), and only its group confirms or releases it.
 *
 * Open groups of a SKU sit in bucket k by seats taken, oldest (lowest index) first; the walk to
 * keep a bucket sorted is bounded by the SKU's groups_open_max.
 *
 * Thread: the shard's.
 */
#include "rush/assert.h"
#include "shard_internal.h"

void group__bucket_remove(struct rush_shard *shard, struct sku_state *sku, uint32_t group_index)
{
    struct group *group = &shard->groups[group_index];
    uint32_t k = group->seats;
    RUSH_ASSERT(k >= 1 && k < RUSH_GROUP_SIZE_MAX);
    if (group->bucket_prev != NONE)
        shard->groups[group->bucket_prev].bucket_next = group->bucket_next;
    else
        sku->bucket_head[k] = group->bucket_next;
    if (group->bucket_next != NONE)
        shard->groups[group->bucket_next].bucket_prev = group->bucket_prev;
    else
        sku->bucket_tail[k] = group->bucket_prev;
    group->bucket_prev = group->bucket_next = NONE;
}

void group__bucket_insert(struct rush_shard *shard, struct sku_state *sku, uint32_t group_index)
{
    struct group *group = &shard->groups[group_index];
    uint32_t k = group->seats;
    RUSH_ASSERT(k >= 1 && k < RUSH_GROUP_SIZE_MAX);
    uint32_t after = sku->bucket_tail[k];
    while (after != NONE && after > group_index) /* at most groups_open_max steps */
        after = shard->groups[after].bucket_prev;
    uint32_t before = after == NONE ? sku->bucket_head[k] : shard->groups[after].bucket_next;
    group->bucket_prev = after;
    group->bucket_next = before;
    if (after == NONE)
        sku->bucket_head[k] = group_index;
    else
        shard->groups[after].bucket_next = group_index;
    if (before == NONE)
        sku->bucket_tail[k] = group_index;
    else
        shard->groups[before].bucket_prev = group_index;
}

static bool user_in_group(const struct rush_shard *shard, const struct group *group,
                          uint64_t user_id)
{
    uint32_t seen = 0;
    for (uint32_t o = group->member_first; o != NONE && seen < RUSH_GROUP_SIZE_MAX;
         o = shard->orders[o].member_next, seen++)
        if (shard->orders[o].user_id == user_id)
            return true;
    return false;
}

/* A member event for the publisher: no key, no op; the decision's first event carried those. */
static struct rush_event member_event(const struct rush_shard *shard, uint8_t type,
                                      uint32_t order_index, uint64_t group_id)
{
    const struct order *order = &shard->orders[order_index];
    const struct sku_state *sku = &shard->skus[order->sku_index];
    return (struct rush_event){.type = type,
                               .qty = order->qty,
                               .order_id = order_id_of(shard, order_index),
                               .group_id = group_id,
                               .sku_id = sku->def.id,
                               .user_id = order->user_id,
                               .amount = shard__price_of(sku, order->qty)};
}

static void complete(struct rush_shard *shard, uint32_t group_index, uint32_t virtual_seats)
{
    const struct group *group = &shard->groups[group_index];
    uint64_t group_id = group_id_of(shard, group_index);
    uint32_t seen = 0;
    for (uint32_t o = group->member_first; o != NONE && seen < RUSH_GROUP_SIZE_MAX;
         o = shard->orders[o].member_next, seen++) {
        struct rush_event event = member_event(shard, RUSH_EV_ORDER_CONFIRMED, o, group_id);
        shard__emit(shard, &event);
    }
    shard__emit(shard, &(struct rush_event){.type = RUSH_EV_GROUP_COMPLETED,
                                            .qty = virtual_seats,
                                            .group_id = group_id,
                                            .sku_id = shard->skus[group->sku_index].def.id});
}

static void fail(struct rush_shard *shard, uint32_t group_index)
{
    const struct group *group = &shard->groups[group_index];
    uint64_t group_id = group_id_of(shard, group_index);
    uint32_t seen = 0;
    for (uint32_t o = group->member_first; o != NONE && seen < RUSH_GROUP_SIZE_MAX;
         o = shard->orders[o].member_next, seen++) {
        struct rush_event event = member_event(shard, RUSH_EV_ORDER_RELEASED, o, group_id);
        shard__emit(shard, &event);
        event.type = RUSH_EV_REFUND_DUE;
        shard__emit(shard, &event);
    }
    shard__emit(shard, &(struct rush_event){.type = RUSH_EV_GROUP_FAILED,
                                            .group_id = group_id,
                                            .sku_id = shard->skus[group->sku_index].def.id});
}

struct verdict group__open(struct rush_shard *shard, const struct rush_request *request,
                           struct sku_state *sku)
{
    struct verdict verdict = decide__can_hold(shard, sku, request->user_id, 1);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    if (sku->groups_open >= sku->def.groups_open_max ||
        shard->group_count >= shard->limits.groups_max)
        return verdict_of(RUSH_BUSY);
    struct rush_event event = decide__event(request, RUSH_EV_GROUP_OPENED);
    event.qty = 1;
    event.group_id = group_id_of(shard, shard->group_count + 1);
    event.order_id = shard__next_order_id(shard);
    event.amount = shard->now_ns + sku->def.group_ttl_ns; /* the deadline, fixed at open */
    shard__emit(shard, &event);
    return verdict_of(RUSH_OK);
}

/* Takes a seat for the requester in an open group (checks done); completes it when full. */
static struct verdict take_seat(struct rush_shard *shard, const struct rush_request *request,
                                uint32_t group_index)
{
    struct group *group = &shard->groups[group_index];
    struct sku_state *sku = &shard->skus[group->sku_index];
    struct rush_event event = decide__event(request, RUSH_EV_ORDER_RESERVED);
    event.qty = 1;
    event.sku_id = sku->def.id;
    event.group_id = group_id_of(shard, group_index);
    event.order_id = shard__next_order_id(shard);
    event.amount = shard__price_of(sku, 1);
    shard__emit(shard, &event);
    if (group->seats == sku->def.group_size)
        complete(shard, group_index, 0);
    return verdict_of(RUSH_OK);
}

struct verdict group__join(struct rush_shard *shard, const struct rush_request *request)
{
    const struct group *group = shard__group(shard, request->target_id);
    if (group == NULL)
        return verdict_of(RUSH_UNKNOWN_GROUP);
    struct sku_state *sku = &shard->skus[group->sku_index];
    struct verdict verdict = decide__sale_window(shard, sku);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    if (group->state != RUSH_GROUP_OPEN)
        return verdict_of(RUSH_GROUP_CLOSED);
    if (group->seats >= sku->def.group_size)
        return verdict_of(RUSH_GROUP_FULL);
    if (user_in_group(shard, group, request->user_id))
        return verdict_of(RUSH_ALREADY_IN_GROUP);
    verdict = decide__can_hold(shard, sku, request->user_id, 1);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    return take_seat(shard, request, (uint32_t)(group - shard->groups));
}

/* The open group closest to full, then oldest, that the user is not in; NONE if there is none. */
static uint32_t best_group(const struct rush_shard *shard, const struct sku_state *sku,
                           uint64_t user_id)
{
    uint32_t visited = 0;
    for (uint32_t k = sku->def.group_size - 1; k >= 1; k--) {
        for (uint32_t g = sku->bucket_head[k]; g != NONE && visited <= sku->groups_open;
             g = shard->groups[g].bucket_next, visited++)
            if (!user_in_group(shard, &shard->groups[g], user_id))
                return g;
    }
    return NONE;
}

struct verdict group__join_any(struct rush_shard *shard, const struct rush_request *request)
{
    struct sku_state *sku = shard__sku(shard, request->sku_id);
    if (sku == NULL)
        return verdict_of(RUSH_UNKNOWN_SKU);
    if (sku->def.group_size == 0)
        return invalid_because(RUSH_REASON_NOT_GROUP_SKU);
    struct verdict verdict = decide__sale_window(shard, sku);
    if (verdict.outcome == RUSH_OK)
        verdict = decide__can_hold(shard, sku, request->user_id, 1);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    uint32_t group_index = best_group(shard, sku, request->user_id);
    if (group_index == NONE)
        return group__open(shard, request, sku);
    return take_seat(shard, request, group_index);
}

/* The deadline: complete with virtual seats if the policy and the budget allow, else fail. */
void group__deadline(struct rush_shard *shard, uint32_t group_index)
{
    const struct group *group = &shard->groups[group_index];
    if (group->state != RUSH_GROUP_OPEN)
        return; /* it completed before its deadline */
    const struct sku_state *sku = &shard->skus[group->sku_index];
    uint32_t missing = sku->def.group_size - group->seats;
    bool budget_allows = (uint64_t)sku->virtual_used + missing <= sku->def.virtual_budget;
    bool fill = false;
    switch ((enum rush_virtual_policy)sku->def.virtual_policy) {
    case RUSH_VIRTUAL_NONE:
        break;
    case RUSH_VIRTUAL_FILL:
        fill = budget_allows;
        break;
    case RUSH_VIRTUAL_AT_MOST:
        fill = budget_allows && missing <= sku->def.virtual_seats_max;
        break;
    }
    if (fill)
        complete(shard, group_index, missing);
    else
        fail(shard, group_index);
}
