/*
 * decide.c — requests into events: validation, idempotency, the order machine and the group
 * decisions (open, join, join_any; group.c keeps the records and chooses the group).
 *
 * Every mutating request goes: key lookup (a retry is answered from its entry before anything
 * else is looked at: dedup before decrement) -> the op's decider -> events applied at once -> the
 * answer built from the key entry, so an original answer and a retried one are the same bytes.
 *
 * What is remembered under a key, and for how long (also proto/PROTOCOL.md, "What is
 * remembered"; the figures are struct rush_shard_policy's):
 *
 *   1. Only decisions that changed something: those that logged events (ok, and `expired` with
 *      its refund_due). An answer that changed nothing (sold_out, limit_exceeded, hoarding,
 *      not_started, ended, paused, group_full, group_closed, already_in_group, unknown_*,
 *      invalid, busy) takes no slot and is not remembered: deciding it again gives an answer of
 *      the same kind against the same state. A retry of such an answer is a new decision, not a
 *      duplicate: when the state changed in between (a cancel returned a unit, a pause ended) it
 *      may be decided differently, e.g. a retried sold_out may be ok. That is the answer a new
 *      click would get, and a key still gets at most one ok.
 *   2. The key of a reservation (reserve, group_open, group_join, group_join_any) belongs to the
 *      order it created and is found as long as the order's slot is: always while the order is
 *      live (reserved), and for at least policy.retain_ns after it ended; it is forgotten when
 *      the slot is reused (shard.c, reuse_slot).
 *   3. The key of a confirm or cancel that ended an order is kept in the order record itself, so
 *      a payment or a cancel never needs a table slot; its retry names the same order and is
 *      answered from it for as long as the order is kept. (The same key sent to confirm another
 *      order is decided as that order's confirm: it is never answered with this order's answer.)
 *   4. The keys of other decisions (adjust, pause, resume, a late payment's `expired` +
 *      refund_due) go to a ring of keys_max / 8 places kept out of reach of reservations; the
 *      oldest is forgotten when the ring needs room, never refused.
 *   5. A reservation needs an order slot and, unless it reuses one whose key it frees, a key
 *      place outside the ring; without them it answers busy. Confirm, cancel and admin ops never
 *      answer busy for want of a slot.
 *
 * A retry must be the same request: the op and every field it reads are stored with the key and
 * compared whole (shard__fields); a different request under a remembered key is invalid with
 * reason key_reused.
 *
 * Anti-hoarding: a flash-sale reserve answers `hoarding` when the user already holds
 * policy.user_unpaid_max unpaid orders of the SKU, or has had policy.user_churn_max of them
 * cancelled or expired. Not remembered, counted in the outcome figures.
 *
 * Deadlines are compared at the batch's nanosecond, not at the timer wheel's tick: a decision
 * about an order whose pay deadline has passed, or a group whose deadline has passed, first emits
 * the events its timer would have (op 0: the deadline decided them) and then decides against the
 * settled state. A hold lasts [reserved, reserved + pay_ttl); a group is open [opened, deadline).
 *
 * Thread: the shard's.
 */
#include <string.h>

#include "codec/sku.h"
#include "rush/assert.h"
#include "shard_internal.h"

typedef struct verdict (*decide_fn)(struct rush_shard *shard, const struct rush_request *request);

/* The first event of a decision: carries the key, the op and the fields a retry must repeat. */
struct rush_event decide__event(const struct rush_request *request, uint8_t type)
{
    struct rush_event event = {
        .type = type,
        .op = request->op,
        .flags = RUSH_EVENT_DECISION,
        .qty = request->qty,
        .sku_id = request->sku_id,
        .user_id = request->user_id,
        .key = request->key,
    };
    switch ((enum rush_op)request->op) {
    case RUSH_OP_CONFIRM:
    case RUSH_OP_CANCEL:
        event.order_id = request->target_id;
        break;
    case RUSH_OP_GROUP_JOIN:
        event.group_id = request->target_id;
        break;
    case RUSH_OP_ADJUST:
        event.amount = request->amount;
        break;
    case RUSH_OP_NONE:
    case RUSH_OP_RESERVE:
    case RUSH_OP_GROUP_OPEN:
    case RUSH_OP_GROUP_JOIN_ANY:
    case RUSH_OP_QUERY_ORDER:
    case RUSH_OP_QUERY_GROUP:
    case RUSH_OP_QUERY_SKU:
    case RUSH_OP_PAUSE:
    case RUSH_OP_RESUME:
    case RUSH_OP_LIST_GROUPS:
    case RUSH_OP_REGISTER:
    case RUSH_OP_COUNT_:
        break;
    }
    return event;
}

struct verdict decide__sale_window(const struct rush_shard *shard, const struct sku_state *sku)
{
    if (shard->now_ns < sku->def.start_ns)
        return verdict_of(RUSH_NOT_STARTED);
    if (shard->now_ns >= sku->def.end_ns)
        return verdict_of(RUSH_ENDED);
    if (sku->def.paused)
        return verdict_of(RUSH_PAUSED);
    return verdict_of(RUSH_OK);
}

/*
 * Room for one more order (rule 5): a slot, and a key place outside the ring unless the slot
 * reused frees its old order's key.
 */
static bool order_room(const struct rush_shard *shard)
{
    uint64_t id = shard__next_order_id(shard);
    if (id == 0)
        return false;
    uint32_t index = (uint32_t)(id & UINT32_MAX);
    if (index <= shard->order_count && !rush_key_is_zero(&shard->orders[index].key))
        return true;
    uint32_t owned_by_orders = shard->keys.count - shard->ring.count;
    return owned_by_orders < shard->keys.capacity - shard->ring.capacity;
}

/*
 * An activity SKU: the user's units over all of the activity's SKUs, and those taken today, stay
 * within the activity's limits (limit_exceeded, reason activity_limit or activity_day_limit). A
 * SKU whose activity the campaign no longer defines takes nothing (not_eligible, reason
 * activity_limit): its limits are unknown, so it is not sold unlimited.
 */
static struct verdict activity_can_take(const struct rush_shard *shard, const struct sku_state *sku,
                                        uint64_t user_id, uint32_t qty, uint32_t *entries_new)
{
    uint64_t family = rush_sku_family(sku->def.id);
    const struct rush_activity *activity = shard__activity(shard, family);
    if (activity == NULL)
        return (struct verdict){.outcome = RUSH_NOT_ELIGIBLE, .reason = RUSH_REASON_ACTIVITY_LIMIT};
    const struct limit_entry *entry = shard__activity_limit(shard, family, user_id);
    *entries_new += entry == NULL;
    uint64_t held = entry ? entry->held : 0;
    if (held + qty > activity->user_qty_max)
        return (struct verdict){.outcome = RUSH_LIMIT_EXCEEDED,
                                .reason = RUSH_REASON_ACTIVITY_LIMIT};
    uint32_t today = shard__activity_day(activity, shard->now_ns);
    uint64_t taken = entry != NULL && entry->day == today ? entry->day_taken : 0;
    if (activity->day_qty_max != 0 && taken + qty > activity->day_qty_max)
        return (struct verdict){.outcome = RUSH_LIMIT_EXCEEDED, .reason = RUSH_REASON_ACTIVITY_DAY};
    return verdict_of(RUSH_OK);
}

/*
 * Who may buy a SKU with rules: a new_users_only SKU only with the gateway's attestation on the
 * request (RUSH_REQUEST_NEW_USER: the engine trusts the gateway, it keeps no user histories), a
 * registration_required SKU only a user who registered. One flag test for a SKU without rules.
 */
static struct verdict eligible(const struct rush_shard *shard, const struct sku_state *sku,
                               const struct rush_request *request)
{
    if (sku->def.rules == 0)
        return verdict_of(RUSH_OK);
    if ((sku->def.rules & RUSH_SKU_NEW_USERS_ONLY) && !(request->flags & RUSH_REQUEST_NEW_USER))
        return (struct verdict){.outcome = RUSH_NOT_ELIGIBLE, .reason = RUSH_REASON_NOT_NEW_USER};
    if ((sku->def.rules & RUSH_SKU_REGISTRATION) &&
        !shard__registered(shard, sku, request->user_id))
        return (struct verdict){.outcome = RUSH_NOT_ELIGIBLE, .reason = RUSH_REASON_NOT_REGISTERED};
    return verdict_of(RUSH_OK);
}

/* can_hold with the user's limit entry of the SKU already looked up (NULL: none) by a
 * rush_table_find_noting of its key, so that taking the stock inserts it without a probe. */
static struct verdict can_hold_given(struct rush_shard *shard, const struct sku_state *sku,
                                     uint64_t user_id, uint32_t qty,
                                     const struct limit_entry *limit)
{
    if (qty == 0 || qty > RUSH_QTY_MAX)
        return invalid_because(RUSH_REASON_QTY);
    uint64_t held = limit ? limit->held : 0;
    if (qty > sku->def.order_qty_max || held + qty > sku->def.user_qty_max)
        return verdict_of(RUSH_LIMIT_EXCEEDED);
    uint32_t entries_new = limit == NULL;
    if (sku->def.rules & RUSH_SKU_IN_ACTIVITY) {
        struct verdict verdict = activity_can_take(shard, sku, user_id, qty, &entries_new);
        if (verdict.outcome != RUSH_OK)
            return verdict;
    }
    if (!sku->def.unlimited && sku->available < (int64_t)qty)
        return verdict_of(RUSH_SOLD_OUT);
    if (!order_room(shard) ||
        (uint64_t)shard->user_limits.count + entries_new > shard->user_limits.capacity)
        return verdict_of(RUSH_BUSY);
    return verdict_of(RUSH_OK);
}

/* The user's limit entry of the SKU, noted (a miss notes where taking the stock inserts it). */
static const struct limit_entry *limit_noting(struct rush_shard *shard, const struct sku_state *sku,
                                              uint64_t user_id)
{
    rush_key limit_key = rush_key_pair((uint64_t)(sku - shard->skus) + 1, user_id);
    return rush_table_find_noting(&shard->user_limits, &limit_key);
}

/* Whether `user` may take `qty` more units of `sku` now, and whether the tables have room. */
struct verdict decide__can_hold(struct rush_shard *shard, const struct sku_state *sku,
                                uint64_t user_id, uint32_t qty)
{
    if (qty == 0 || qty > RUSH_QTY_MAX)
        return invalid_because(RUSH_REASON_QTY);
    return can_hold_given(shard, sku, user_id, qty, limit_noting(shard, sku, user_id));
}

/* The user's unpaid holds and churn of a flash-sale SKU (their limit entry, NULL: none) against
 * the policy's caps. */
static struct verdict hoarding_check(const struct rush_shard *shard,
                                     const struct limit_entry *limit)
{
    const struct rush_shard_policy *policy = &shard->policy;
    if (limit != NULL && ((policy->user_unpaid_max && limit->unpaid >= policy->user_unpaid_max) ||
                          (policy->user_churn_max && limit->churn >= policy->user_churn_max)))
        return verdict_of(RUSH_HOARDING);
    return verdict_of(RUSH_OK);
}

/* The window, eligibility, hoarding and holding checks of a reserve, in that order; the limit
 * entry is looked up once for the last two. */
static struct verdict reserve_verdict(struct rush_shard *shard, const struct sku_state *sku,
                                      const struct rush_request *request)
{
    struct verdict verdict = decide__sale_window(shard, sku);
    if (verdict.outcome == RUSH_OK)
        verdict = eligible(shard, sku, request);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    const struct limit_entry *limit = limit_noting(shard, sku, request->user_id);
    verdict = hoarding_check(shard, limit);
    if (verdict.outcome == RUSH_OK)
        verdict = can_hold_given(shard, sku, request->user_id, request->qty, limit);
    return verdict;
}

static struct verdict decide_reserve(struct rush_shard *shard, const struct rush_request *request)
{
    struct sku_state *sku = shard__sku(shard, request->sku_id);
    if (sku == NULL)
        return verdict_of(RUSH_UNKNOWN_SKU);
    if (sku->def.group_size != 0 && !sku->def.solo_allowed)
        return invalid_because(RUSH_REASON_GROUP_SKU);
    struct verdict verdict = reserve_verdict(shard, sku, request);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    struct rush_event event = decide__event(request, RUSH_EV_ORDER_RESERVED);
    event.order_id = shard__next_order_id(shard);
    event.amount = shard__price_of(sku, request->qty);
    shard__emit(shard, &event);
    if (sku->def.pay_ttl_ns == 0) { /* the reservation is the confirmed order */
        event.type = RUSH_EV_ORDER_CONFIRMED;
        event.flags = 0;
        memset(&event.key, 0, sizeof(event.key));
        shard__emit(shard, &event);
    }
    return verdict_of(RUSH_OK);
}

/* An order event for `order`, as the publisher wants it: who, what, how much. */
static struct rush_event order_event(const struct rush_shard *shard,
                                     const struct rush_request *request, uint8_t type,
                                     uint64_t order_id, const struct order *order)
{
    const struct sku_state *sku = &shard->skus[order->sku_index];
    struct rush_event event = decide__event(request, type);
    event.order_id = order_id;
    event.sku_id = sku->def.id;
    event.user_id = order->user_id;
    event.qty = order->qty;
    event.amount = order->amount_fen; /* what the buyer pays, fixed at reservation */
    return event;
}

/* A reserved order whose pay deadline is not after now expires now, as its timer would later. */
static void expire_if_due(struct rush_shard *shard, const struct order *order)
{
    uint32_t index = (uint32_t)(order - shard->orders);
    if (order->state == RUSH_ORDER_RESERVED && rush_timer_wheel_scheduled(&shard->timers, index) &&
        rush_timer_deadline(&shard->timers, index) <= shard->now_ns)
        shard__order_expire(shard, index);
}

/*
 * The payment fence: confirm and the pay-TTL expiry are both decided on this thread, and a
 * confirm compares the deadline at its own nanosecond, so exactly one of them wins. A payment
 * that cannot buy the order — its hold ended (expired, cancelled) or an earlier payment with
 * another key confirmed it — answers `expired` and logs refund_due for the money that arrived;
 * the result's state says which (expired, released or confirmed). A retry with the same key is
 * answered from its entry and logs nothing more: one payment, one refund.
 */
static struct verdict decide_confirm(struct rush_shard *shard, const struct rush_request *request)
{
    const struct order *order = shard__order(shard, request->target_id);
    if (order == NULL)
        return verdict_of(RUSH_UNKNOWN_ORDER);
    if (order->group_index != NONE)
        return invalid_because(RUSH_REASON_GROUP_ORDER);
    expire_if_due(shard, order);
    switch ((enum rush_order_state)order->state) {
    case RUSH_ORDER_RESERVED: {
        struct rush_event event =
            order_event(shard, request, RUSH_EV_ORDER_CONFIRMED, request->target_id, order);
        shard__emit(shard, &event);
        return verdict_of(RUSH_OK);
    }
    case RUSH_ORDER_EXPIRED:
    case RUSH_ORDER_RELEASED:
    case RUSH_ORDER_CONFIRMED: {
        struct rush_event event =
            order_event(shard, request, RUSH_EV_REFUND_DUE, request->target_id, order);
        event.outcome = RUSH_EXPIRED;
        shard__emit(shard, &event);
        return verdict_of(RUSH_EXPIRED);
    }
    case RUSH_ORDER_NONE:
        break;
    }
    return invalid_because(RUSH_REASON_ORDER_STATE);
}

static struct verdict decide_cancel(struct rush_shard *shard, const struct rush_request *request)
{
    const struct order *order = shard__order(shard, request->target_id);
    if (order == NULL)
        return verdict_of(RUSH_UNKNOWN_ORDER);
    if (order->group_index != NONE)
        return invalid_because(RUSH_REASON_GROUP_ORDER);
    expire_if_due(shard, order); /* a cancel after the deadline finds the hold expired */
    if (order->state != RUSH_ORDER_RESERVED)
        return invalid_because(RUSH_REASON_ORDER_STATE);
    struct rush_event event =
        order_event(shard, request, RUSH_EV_ORDER_RELEASED, request->target_id, order);
    shard__emit(shard, &event);
    return verdict_of(RUSH_OK);
}

/* ---- groups: the decisions (group.c keeps the records and chooses the group) ------------- */

/*
 * Opens a group with the requester's seat (its leader); the window and the SKU's kind were
 * checked. The SKU's cap on open groups is a business outcome (group_full: join one instead);
 * the shard's group table being full is capacity (busy).
 */
/* After a join's seat (`seat`, just emitted): who invited its buyer, when the request says. */
static void note_inviter(struct rush_shard *shard, const struct rush_request *request,
                         const struct rush_event *seat)
{
    if (request->inviter_id == 0 ||
        (request->op != RUSH_OP_GROUP_JOIN && request->op != RUSH_OP_GROUP_JOIN_ANY))
        return;
    RUSH_ASSERT(request->inviter_id != request->user_id); /* refused before (inviter_self) */
    shard__emit(shard, &(struct rush_event){.type = RUSH_EV_SEAT_INVITED,
                                            .op = request->op,
                                            .qty = 1,
                                            .order_id = seat->order_id,
                                            .group_id = seat->group_id,
                                            .sku_id = seat->sku_id,
                                            .user_id = request->inviter_id});
}

/* A seat (the leader's or another) within the SKU's subsidy budget, if it has one
 * (shard__seat_subsidy), and within its activity's, if that has one (both must have room; the
 * reason names which refused); one test for a SKU with neither (shard__subsidy_counted). */
static struct verdict subsidy_room(const struct rush_shard *shard, const struct sku_state *sku,
                                   bool leader)
{
    if (!shard__subsidy_counted(sku))
        return verdict_of(RUSH_OK);
    int64_t charge = shard__seat_subsidy(sku, shard__seat_price(sku, leader));
    if (sku->def.subsidy_budget_fen != 0 &&
        sku->subsidy_spent_fen + charge > sku->def.subsidy_budget_fen)
        return (struct verdict){.outcome = RUSH_SOLD_OUT, .reason = RUSH_REASON_SUBSIDY};
    uint32_t a =
        (sku->def.rules & RUSH_SKU_IN_ACTIVITY) ? shard__activity_budgeted(shard, sku) : NONE;
    if (a != NONE &&
        shard->activity_spent_fen[a] + charge > shard->activities[a].subsidy_budget_fen)
        return (struct verdict){.outcome = RUSH_SOLD_OUT, .reason = RUSH_REASON_ACTIVITY_SUBSIDY};
    return verdict_of(RUSH_OK);
}

/* `held_checked`: the caller (join_any) has just had decide__can_hold say ok for this user. */
static struct verdict open_group(struct rush_shard *shard, const struct rush_request *request,
                                 struct sku_state *sku, bool held_checked)
{
    struct verdict verdict =
        held_checked ? verdict_of(RUSH_OK) : decide__can_hold(shard, sku, request->user_id, 1);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    verdict = subsidy_room(shard, sku, true);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    if (sku->groups_open >= sku->def.groups_open_max)
        return verdict_of(RUSH_GROUP_FULL);
    if (shard->group_count >= shard->limits.groups_max)
        return verdict_of(RUSH_BUSY);
    struct rush_event event = decide__event(request, RUSH_EV_GROUP_OPENED);
    event.qty = 1;
    event.group_id = group_id_of(shard, shard->group_count + 1);
    event.order_id = shard__next_order_id(shard);
    event.amount = group__deadline_for(sku, shard->now_ns); /* fixed at open */
    shard__emit(shard, &event);
    note_inviter(shard, request, &event); /* a join_any that opened: its leader was invited */
    return verdict_of(RUSH_OK);
}

/* Takes a seat for the requester in an open group (checks done); completes it when full. */
static struct verdict take_seat(struct rush_shard *shard, const struct rush_request *request,
                                uint32_t group_index)
{
    const struct group *group = &shard->groups[group_index];
    const struct sku_state *sku = &shard->skus[group->sku_index];
    struct verdict verdict = subsidy_room(shard, sku, false);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    struct rush_event event = decide__event(request, RUSH_EV_ORDER_RESERVED);
    event.qty = 1;
    event.sku_id = sku->def.id;
    event.group_id = group_id_of(shard, group_index);
    event.order_id = shard__next_order_id(shard);
    event.amount = shard__seat_price(sku, false); /* the seat's amount, fixed at join */
    shard__emit(shard, &event);
    note_inviter(shard, request, &event);
    if (group->seats == sku->def.group_size) /* this join completed it: its events carry the op */
        shard__group_complete(shard, group_index, 0, request->op);
    return verdict_of(RUSH_OK);
}

static struct verdict decide_group_open(struct rush_shard *shard,
                                        const struct rush_request *request)
{
    struct sku_state *sku = shard__sku(shard, request->sku_id);
    if (sku == NULL)
        return verdict_of(RUSH_UNKNOWN_SKU);
    if (sku->def.group_size == 0)
        return invalid_because(RUSH_REASON_NOT_GROUP_SKU);
    struct verdict verdict = decide__sale_window(shard, sku);
    if (verdict.outcome == RUSH_OK)
        verdict = eligible(shard, sku, request);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    return open_group(shard, request, sku, false);
}

static struct verdict decide_group_join(struct rush_shard *shard,
                                        const struct rush_request *request)
{
    if (request->inviter_id != 0 && request->inviter_id == request->user_id)
        return invalid_because(RUSH_REASON_INVITER_SELF); /* nobody invites themselves */
    const struct group *group = shard__group(shard, request->target_id);
    if (group == NULL)
        return verdict_of(RUSH_UNKNOWN_GROUP);
    struct sku_state *sku = &shard->skus[group->sku_index];
    struct verdict verdict = decide__sale_window(shard, sku);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    uint32_t group_index = (uint32_t)(group - shard->groups);
    if (group->state == RUSH_GROUP_OPEN && group->deadline_ns <= shard->now_ns)
        shard__group_settle(shard, group_index); /* its deadline passed at this nanosecond */
    if (group->state != RUSH_GROUP_OPEN)
        return verdict_of(RUSH_GROUP_CLOSED);
    if (group->seats >= sku->def.group_size)
        return verdict_of(RUSH_GROUP_FULL);
    if (group__has_user(shard, group, request->user_id))
        return verdict_of(RUSH_ALREADY_IN_GROUP);
    verdict = eligible(shard, sku, request);
    if (verdict.outcome == RUSH_OK)
        verdict = decide__can_hold(shard, sku, request->user_id, 1);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    return take_seat(shard, request, group_index);
}

static struct verdict decide_group_join_any(struct rush_shard *shard,
                                            const struct rush_request *request)
{
    if (request->inviter_id != 0 && request->inviter_id == request->user_id)
        return invalid_because(RUSH_REASON_INVITER_SELF);
    struct sku_state *sku = shard__sku(shard, request->sku_id);
    if (sku == NULL)
        return verdict_of(RUSH_UNKNOWN_SKU);
    if (sku->def.group_size == 0)
        return invalid_because(RUSH_REASON_NOT_GROUP_SKU);
    struct verdict verdict = decide__sale_window(shard, sku);
    if (verdict.outcome == RUSH_OK)
        verdict = eligible(shard, sku, request);
    if (verdict.outcome == RUSH_OK)
        verdict = decide__can_hold(shard, sku, request->user_id, 1);
    if (verdict.outcome != RUSH_OK)
        return verdict;
    uint32_t group_index = group__best(shard, sku, request->user_id);
    if (group_index == NONE)
        return open_group(shard, request, sku, true);
    return take_seat(shard, request, group_index);
}

/* Stock adjustments change stock_total; they never take it below what orders hold. */
static struct verdict decide_adjust(struct rush_shard *shard, const struct rush_request *request)
{
    const struct sku_state *sku = shard__sku(shard, request->sku_id);
    if (sku == NULL)
        return verdict_of(RUSH_UNKNOWN_SKU);
    if (sku->def.unlimited)
        return invalid_because(RUSH_REASON_UNLIMITED);
    int64_t amount = request->amount;
    /* A total above RUSH_STOCK_MAX is one a put could not set: refused the same way. */
    if (amount == 0 || amount > RUSH_STOCK_MAX || amount < -RUSH_STOCK_MAX ||
        sku->stock_total + amount > RUSH_STOCK_MAX)
        return invalid_because(RUSH_REASON_QTY);
    if (sku->available + amount < 0)
        return invalid_because(RUSH_REASON_BELOW_RESERVED);
    struct rush_event event = decide__event(request, RUSH_EV_STOCK_ADJUSTED);
    shard__emit(shard, &event);
    return verdict_of(RUSH_OK);
}

static struct verdict decide_pause_or_resume(struct rush_shard *shard,
                                             const struct rush_request *request)
{
    if (shard__sku(shard, request->sku_id) == NULL)
        return verdict_of(RUSH_UNKNOWN_SKU);
    uint8_t type = request->op == RUSH_OP_PAUSE ? RUSH_EV_SKU_PAUSED : RUSH_EV_SKU_RESUMED;
    struct rush_event event = decide__event(request, type);
    shard__emit(shard, &event);
    return verdict_of(RUSH_OK);
}

/*
 * A registration (预约) for a registration_required SKU, taken in [register_from, register_until)
 * (outside it: invalid, register_window). Registering again, with another key, logs again and
 * changes nothing more: the user stays registered. Its key goes to the ring of other keys.
 */
static struct verdict decide_register(struct rush_shard *shard, const struct rush_request *request)
{
    const struct sku_state *sku = shard__sku(shard, request->sku_id);
    if (sku == NULL)
        return verdict_of(RUSH_UNKNOWN_SKU);
    if (!(sku->def.rules & RUSH_SKU_REGISTRATION))
        return invalid_because(RUSH_REASON_NOT_REGISTRABLE);
    if (shard->now_ns < sku->def.register_from_ns || shard->now_ns >= sku->def.register_until_ns)
        return invalid_because(RUSH_REASON_REGISTER_WINDOW);
    if (!shard__registered(shard, sku, request->user_id) && rush_table_full(&shard->user_limits))
        return verdict_of(RUSH_BUSY);
    struct rush_event event = decide__event(request, RUSH_EV_REGISTERED);
    shard__emit(shard, &event);
    return verdict_of(RUSH_OK);
}

static const decide_fn deciders[RUSH_OP_COUNT_] = {
    [RUSH_OP_RESERVE] = decide_reserve,        [RUSH_OP_CONFIRM] = decide_confirm,
    [RUSH_OP_CANCEL] = decide_cancel,          [RUSH_OP_GROUP_OPEN] = decide_group_open,
    [RUSH_OP_GROUP_JOIN] = decide_group_join,  [RUSH_OP_GROUP_JOIN_ANY] = decide_group_join_any,
    [RUSH_OP_ADJUST] = decide_adjust,          [RUSH_OP_PAUSE] = decide_pause_or_resume,
    [RUSH_OP_RESUME] = decide_pause_or_resume, [RUSH_OP_REGISTER] = decide_register,
};

/* ---- queries: read-only, never remembered ------------------------------------------------- */

static struct verdict query_order(const struct rush_shard *shard,
                                  const struct rush_request *request, struct rush_result *result)
{
    const struct order *order = shard__order(shard, request->target_id);
    if (order == NULL)
        return verdict_of(RUSH_UNKNOWN_ORDER);
    result->state = order->state;
    result->qty = order->qty;
    result->order_id = request->target_id;
    if (order->group_index != NONE)
        result->group_id = group_id_of(shard, order->group_index);
    result->reserved = (int64_t)order->user_id;
    result->confirmed = (int64_t)shard->skus[order->sku_index].def.id;
    return verdict_of(RUSH_OK);
}

static struct verdict query_group(const struct rush_shard *shard,
                                  const struct rush_request *request, struct rush_result *result)
{
    const struct group *group = shard__group(shard, request->target_id);
    if (group == NULL)
        return verdict_of(RUSH_UNKNOWN_GROUP);
    const struct sku_state *sku = &shard->skus[group->sku_index];
    result->state = group->state;
    result->qty = group->seats;
    result->group_id = request->target_id;
    result->remaining =
        group->state == RUSH_GROUP_OPEN ? (int64_t)sku->def.group_size - group->seats : 0;
    result->reserved = group->deadline_ns;
    result->confirmed = (int64_t)sku->def.id;
    return verdict_of(RUSH_OK);
}

static struct verdict query_sku(const struct rush_shard *shard, const struct rush_request *request,
                                struct rush_result *result)
{
    const struct sku_state *sku = shard__sku(shard, request->sku_id);
    if (sku == NULL)
        return verdict_of(RUSH_UNKNOWN_SKU);
    result->state = sku->def.paused;
    result->qty = sku->groups_open;
    result->remaining = sku->available;
    result->reserved = sku->reserved;
    result->confirmed = sku->confirmed;
    if (sku->def.unlimited)
        result->flags |= RUSH_RESULT_UNLIMITED;
    return verdict_of(RUSH_OK);
}

/* The SKU's "join this group" list, computed at rank 0 and reused by the ranks that follow it
 * in the same work item while nothing changed (group.c group__list bounds the work). */
static const struct group_list *listed_groups(const struct rush_shard *shard,
                                              const struct sku_state *sku, uint32_t rank)
{
    struct group_list *list = &((struct rush_shard *)shard)->listed; /* a cache, not state */
    uint32_t sku_index = (uint32_t)(sku - shard->skus);
    uint64_t events = atomic_load_explicit(&shard->stats.events, memory_order_relaxed);
    if (rank == 0 || list->sku_index != sku_index || list->now_ns != shard->now_ns ||
        list->events_seen != events) {
        list->sku_index = sku_index;
        list->now_ns = shard->now_ns;
        list->events_seen = events;
        list->count = group__list(shard, sku, list->groups, RUSH_LIST_GROUPS_MAX);
    }
    return list;
}

static struct verdict query_list_groups(const struct rush_shard *shard,
                                        const struct rush_request *request,
                                        struct rush_result *result)
{
    const struct sku_state *sku = shard__sku(shard, request->sku_id);
    if (sku == NULL)
        return verdict_of(RUSH_UNKNOWN_SKU);
    if (sku->def.group_size == 0)
        return invalid_because(RUSH_REASON_NOT_GROUP_SKU);
    if (request->qty >= RUSH_LIST_GROUPS_MAX)
        return invalid_because(RUSH_REASON_QTY);
    const struct group_list *list = listed_groups(shard, sku, request->qty);
    if (request->qty >= list->count)
        return verdict_of(RUSH_UNKNOWN_GROUP); /* no open group at this rank */
    uint32_t g = list->groups[request->qty];
    const struct group *group = &shard->groups[g];
    RUSH_ASSERT(group->state == RUSH_GROUP_OPEN && group->member_first != NONE);
    result->state = group->state;
    result->qty = group->seats;
    result->group_id = group_id_of(shard, g);
    result->remaining = (int64_t)sku->def.group_size - group->seats;
    result->reserved = group->deadline_ns;
    result->confirmed = (int64_t)shard->orders[group->member_first].user_id;
    return verdict_of(RUSH_OK);
}

static bool is_query(uint8_t op)
{
    return op == RUSH_OP_QUERY_ORDER || op == RUSH_OP_QUERY_GROUP || op == RUSH_OP_QUERY_SKU ||
           op == RUSH_OP_LIST_GROUPS;
}

static struct verdict answer_query(const struct rush_shard *shard,
                                   const struct rush_request *request, struct rush_result *result)
{
    switch ((enum rush_op)request->op) {
    case RUSH_OP_QUERY_ORDER:
        return query_order(shard, request, result);
    case RUSH_OP_QUERY_GROUP:
        return query_group(shard, request, result);
    case RUSH_OP_QUERY_SKU:
        return query_sku(shard, request, result);
    case RUSH_OP_LIST_GROUPS:
        return query_list_groups(shard, request, result);
    case RUSH_OP_NONE:
    case RUSH_OP_RESERVE:
    case RUSH_OP_CONFIRM:
    case RUSH_OP_CANCEL:
    case RUSH_OP_GROUP_OPEN:
    case RUSH_OP_GROUP_JOIN:
    case RUSH_OP_GROUP_JOIN_ANY:
    case RUSH_OP_ADJUST:
    case RUSH_OP_PAUSE:
    case RUSH_OP_RESUME:
    case RUSH_OP_REGISTER:
    case RUSH_OP_COUNT_:
        break;
    }
    return invalid_because(RUSH_REASON_OP);
}

/* ---- the entry point ---------------------------------------------------------------------- */

/* A mutating request that is new: decide, remember (when it logged events), answer. */
static void decide_new(struct rush_shard *shard, const struct rush_request *request,
                       struct rush_result *result)
{
    if (shard->event_count + EVENTS_PER_DECISION_MAX > shard->limits.events_buffer_max)
        shard__flush(shard);
    shard->last_entry = NULL;
    struct verdict verdict = deciders[request->op](shard, request);
    const struct key_entry *entry = shard->last_entry; /* written by the decision's first event */
    if (entry != NULL) {
        const struct order *order = shard__order(shard, entry->order_id);
        RUSH_ASSERT(entry->state == (order ? order->state : RUSH_ORDER_NONE));
        shard__answer_of(shard, entry, order, request, result);
        return;
    }
    RUSH_ASSERT(verdict.outcome != RUSH_OK); /* every ok decision is remembered */
    result->outcome = verdict.outcome;
    result->reason = verdict.reason;
    const struct sku_state *sku = shard__sku(shard, request->sku_id);
    if (sku != NULL && !sku->def.unlimited)
        result->remaining = sku->available;
}

/* Whether a remembered entry is of this very request (rule: compared whole). */
static bool same_request(const struct key_entry *entry, const struct rush_request *request)
{
    struct request_fields fields = shard__fields(request->op, request->sku_id, request->user_id,
                                                 request->qty, request->target_id, request->amount);
    return entry->op == request->op && entry->field_a == fields.a && entry->field_b == fields.b &&
           entry->field_c == fields.c;
}

/*
 * A confirm or cancel whose key is kept by the order it names (rule 3): the same op is a retry
 * answered from the order; another op is a reused key. False when the order does not keep it.
 */
static bool answer_from_order(struct rush_shard *shard, const struct rush_request *request,
                              struct rush_result *result)
{
    if (request->op != RUSH_OP_CONFIRM && request->op != RUSH_OP_CANCEL)
        return false;
    const struct order *order = shard__order(shard, request->target_id);
    if (order == NULL || memcmp(&order->end_key, &request->key, sizeof(rush_key)) != 0)
        return false;
    if (order->end_op != request->op) {
        result->outcome = RUSH_INVALID;
        result->reason = RUSH_REASON_KEY_REUSED;
        return true;
    }
    struct key_entry entry = {.key = request->key,
                              .op = request->op,
                              .outcome = RUSH_OK,
                              .state = order->state,
                              .order_id = request->target_id,
                              .remaining = order->end_remaining};
    shard__answer(shard, &entry, request, result);
    result->flags |= RUSH_RESULT_DUPLICATE;
    count_one(&shard->stats.duplicates);
    return true;
}

/* A mutating request with a key: a retry, a reused key, or new. */
static void decide_keyed(struct rush_shard *shard, const struct rush_request *request,
                         struct rush_result *result)
{
    const struct key_entry *entry = rush_table_find_noting(&shard->keys, &request->key);
    if (entry == NULL) {
        if (!answer_from_order(shard, request, result))
            decide_new(shard, request, result);
        return;
    }
    if (!same_request(entry, request)) {
        result->outcome = RUSH_INVALID;
        result->reason = RUSH_REASON_KEY_REUSED;
        return;
    }
    shard__answer(shard, entry, request, result);
    result->flags |= RUSH_RESULT_DUPLICATE;
    count_one(&shard->stats.duplicates);
}

void rush_shard_decide(struct rush_shard *shard, const struct rush_request *request,
                       struct rush_result *result)
{
    memset(result, 0, sizeof(*result));
    result->tag = request->tag;
    count_one(&shard->stats.requests);
    struct verdict verdict = verdict_of(RUSH_OK);
    if (request->op >= RUSH_OP_COUNT_ || request->op == RUSH_OP_NONE) {
        verdict = invalid_because(RUSH_REASON_OP);
    } else if (is_query(request->op)) {
        verdict = answer_query(shard, request, result);
    } else if (rush_key_is_zero(&request->key)) {
        verdict = invalid_because(RUSH_REASON_KEY_MISSING);
    } else {
        decide_keyed(shard, request, result);
        count_one(&shard->stats.outcomes[result->outcome]);
        return;
    }
    result->outcome = verdict.outcome;
    result->reason = verdict.reason;
    count_one(&shard->stats.outcomes[verdict.outcome]);
}

/* ---- sku_put ------------------------------------------------------------------------------ */

/*
 * A put of a SKU the shard does not know must be a whole definition; a put of a live SKU changes
 * only the fields it names (rush_sku_merge, proto/codec/sku.h) and is refused when the result
 * would break what the SKU already holds:
 *   - group_size, once the SKU has had any group (open, completed or failed): the snapshot and
 *     rush_shard_check compare each group's seats with its SKU's size;
 *   - stock below reserved + confirmed (BELOW_RESERVED, as adjust);
 *   - user_qty_max below what some user holds, virtual_budget below what groups used
 *     (LIMIT_BELOW_HELD).
 * Every definition, whole or merged, passes the one validator rush_sku_check. The logged
 * SKU_PUT carries the merged definition, so applying it (live or in recovery) is a plain replace.
 */
static bool sku_has_groups(const struct rush_shard *shard, const struct sku_state *sku)
{
    if (sku->groups_open > 0)
        return true;
    uint32_t index = (uint32_t)(sku - shard->skus);
    for (uint32_t g = 1; g <= shard->group_count; g++) /* at most groups_max; admin only */
        if (shard->groups[g].sku_index == index)
            return true;
    return false;
}

/* Whether some user holds more than `qty_max` units of `sku`: one pass over the limit table,
 * taken only when a put lowers user_qty_max (an operator action, not the decision path). */
static bool sku_user_holds_over(const struct rush_shard *shard, const struct sku_state *sku,
                                uint32_t qty_max)
{
    rush_key mine = rush_key_pair((uint64_t)(sku - shard->skus) + 1, 0);
    for (uint32_t s = 0; s < shard->user_limits.slot_count; s++) {
        const struct limit_entry *entry = rush_table_slot(&shard->user_limits, s);
        if (entry != NULL && memcmp(entry->key.bytes + 8, mine.bytes + 8, 8) == 0 &&
            entry->held > qty_max)
            return true;
    }
    return false;
}

/*
 * A subsidy budget counts the seats taken under it: it cannot go below what was spent, cannot
 * be set while seats are held that were not counted, and the list price cannot move under held
 * seats that were (their charge must come back as it was taken) — nor under held seats its
 * activity's budget counted.
 */
static bool subsidy_put_breaks(const struct rush_shard *shard, const struct sku_state *sku,
                               const struct rush_sku *def)
{
    if (sku->groups_open > 0 && def->price_fen != sku->def.price_fen &&
        shard__activity_budgeted(shard, sku) != NONE)
        return true;
    if (def->subsidy_budget_fen == 0)
        return false;
    if (def->subsidy_budget_fen < sku->subsidy_spent_fen)
        return true;
    bool seats_held = sku->groups_open > 0;
    return seats_held && (sku->def.subsidy_budget_fen == 0 || def->price_fen != sku->def.price_fen);
}

static struct verdict sku_live_put_verdict(const struct rush_shard *shard,
                                           const struct sku_state *sku, const struct rush_sku *def)
{
    if ((def->rules ^ sku->def.rules) & RUSH_SKU_IN_ACTIVITY)
        return invalid_because(RUSH_REASON_SKU_DEF); /* membership is fixed at creation */
    bool tiers_change =
        def->tier_count != sku->def.tier_count ||
        memcmp(def->tier_size, sku->def.tier_size, sizeof(def->tier_size)) != 0 ||
        memcmp(def->tier_price_fen, sku->def.tier_price_fen, sizeof(def->tier_price_fen)) != 0;
    if ((def->group_size != sku->def.group_size || tiers_change) && sku_has_groups(shard, sku))
        return invalid_because(RUSH_REASON_SKU_HAS_GROUPS); /* its seats paid by the tiers */
    if (!def->unlimited && def->stock < sku->reserved + sku->confirmed)
        return invalid_because(RUSH_REASON_BELOW_RESERVED);
    if (def->virtual_budget < sku->virtual_used)
        return invalid_because(RUSH_REASON_LIMIT_BELOW_HELD);
    if (subsidy_put_breaks(shard, sku, def))
        return invalid_because(RUSH_REASON_LIMIT_BELOW_HELD);
    if (def->user_qty_max < sku->def.user_qty_max &&
        sku_user_holds_over(shard, sku, def->user_qty_max))
        return invalid_because(RUSH_REASON_LIMIT_BELOW_HELD);
    return verdict_of(RUSH_OK);
}

/* The verdict on `put`, and in `def` the definition to log when it is ok. */
static struct verdict sku_put_verdict(const struct rush_shard *shard, const struct rush_sku *put,
                                      struct rush_sku *def)
{
    if (!rush_sku_pad_is_zero(put) || (put->fields & ~RUSH_SKU_FIELDS_ALL) != 0)
        return invalid_because(RUSH_REASON_SKU_DEF);
    bool whole = rush_sku_fields_missing(put) == 0;
    if (whole && rush_sku_check(put, NULL, 0) < 0) /* a whole put is valid on its own */
        return invalid_because(RUSH_REASON_SKU_DEF);
    const struct sku_state *sku = shard__sku(shard, put->id);
    if (sku == NULL) {
        if (!whole)
            return invalid_because(RUSH_REASON_SKU_DEF);
        struct rush_sku blank = {.id = put->id};
        *def = put->fields == 0 ? *put : rush_sku_merge(&blank, 0, put);
        def->fields = 0;
        RUSH_ASSERT(rush_sku_check(def, NULL, 0) == 0);
        if ((def->rules & RUSH_SKU_IN_ACTIVITY) &&
            shard__activity(shard, rush_sku_family(def->id)) == NULL)
            return invalid_because(RUSH_REASON_SKU_DEF); /* no activity of its family here */
        return verdict_of(shard->sku_count >= shard->limits.skus_max ? RUSH_BUSY : RUSH_OK);
    }
    *def = rush_sku_merge(&sku->def, sku->stock_total, put);
    if (rush_sku_check(def, NULL, 0) < 0)
        return invalid_because(RUSH_REASON_SKU_DEF);
    return sku_live_put_verdict(shard, sku, def);
}

void rush_shard_sku_put(struct rush_shard *shard, const struct rush_sku *put,
                        struct rush_result *result)
{
    memset(result, 0, sizeof(*result));
    struct rush_sku def;
    struct verdict verdict = sku_put_verdict(shard, put, &def);
    result->outcome = verdict.outcome;
    result->reason = verdict.reason;
    if (verdict.outcome != RUSH_OK)
        return;
    if (shard->event_count + 1 + RUSH_SKU_PUT_PARTS > shard->limits.events_buffer_max)
        shard__flush(shard);
    shard__emit(shard, &(struct rush_event){
                           .type = RUSH_EV_SKU_PUT, .qty = RUSH_SKU_PUT_PARTS, .sku_id = def.id});
    for (uint32_t part = 0; part < RUSH_SKU_PUT_PARTS; part++) {
        struct rush_event event = {.type = RUSH_EV_SKU_PART, .qty = part};
        size_t offset = (size_t)part * RUSH_SKU_PART_BYTES;
        size_t bytes = sizeof(def) - offset;
        memcpy(event.payload, (const uint8_t *)&def + offset,
               bytes < RUSH_SKU_PART_BYTES ? bytes : RUSH_SKU_PART_BYTES);
        shard__emit(shard, &event);
    }
    const struct sku_state *state = shard__sku(shard, def.id);
    result->remaining = state->available;
    if (def.unlimited)
        result->flags |= RUSH_RESULT_UNLIMITED;
}

/* ---- batches ------------------------------------------------------------------------------ */

/*
 * A batch is decided in a software pipeline (shard_internal.h, struct shard_look): a request's
 * key and SKU-id slots are prefetched LOOK_FAR requests before it is decided, its SKU's lines
 * and its limit's slot LOOK_NEAR before, so that the cache misses of about a dozen requests are
 * in flight at once instead of each decision stalling on its own. The decisions themselves run
 * one at a time in order, exactly as rush_shard_decide alone would make them.
 */
void rush_shard_decide_batch(struct rush_shard *shard, const struct rush_request *requests,
                             uint32_t count, struct rush_result *results)
{
    struct shard_lookahead ahead;
    shard__look_start(shard, &ahead, requests, count);
    for (uint32_t i = 0; i < count; i++) {
        shard__look_step(shard, &ahead, requests, count, i);
        rush_shard_decide(shard, &requests[i], &results[i]);
    }
}

/* ---- audit of an admin action ------------------------------------------------------------- */

void rush_shard_audit(struct rush_shard *shard, uint8_t op, uint64_t sku_id, int64_t amount,
                      const struct rush_result *result, const struct rush_audit *audit)
{
    if (shard->event_count + 1 + RUSH_AUDIT_PARTS > shard->limits.events_buffer_max)
        shard__flush(shard);
    shard__emit(shard, &(struct rush_event){.type = RUSH_EV_ADMIN_AUDIT,
                                            .op = op,
                                            .outcome = result->outcome,
                                            .sku_id = sku_id,
                                            .amount = amount});
    for (uint32_t part = 0; part < RUSH_AUDIT_PARTS; part++) {
        struct rush_event event = {.type = RUSH_EV_AUDIT_PART, .qty = part};
        size_t offset = (size_t)part * RUSH_AUDIT_PART_BYTES;
        size_t bytes = sizeof(*audit) - offset;
        memcpy(event.payload, (const uint8_t *)audit + offset,
               bytes < RUSH_AUDIT_PART_BYTES ? bytes : RUSH_AUDIT_PART_BYTES);
        shard__emit(shard, &event);
    }
}
