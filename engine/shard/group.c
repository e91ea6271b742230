/*
 * group.c — group records: the open-group buckets, seats, the join_any choice, and the deadline
 * policy (how long a group stays open, what fills it at its deadline).
 *
 * Workload: Pinduoduo-style groups of N (2..64) buyers on a SKU; join_any packs joiners into the
 * open group closest to full, then oldest, so groups fill fast and few expire.
 *
 * Layering: this file is the bottom of the shard's three. It reads and writes group records and
 * answers questions about them; it emits no events and calls nothing in shard.c or decide.c.
 * shard.c's apply (the only mutator) calls it to open, seat and close groups; decide.c calls it
 * to choose a group; both emit the events.
 *
 *                 seat N taken                       deadline, policy fills it
 *   open (1..N-1 seats) ---------> completed <--------------------------------+
 *        |                                                                    |
 *        +-- deadline ----------------------------------------------- open ---+
 *                                    \--- policy cannot fill ---> failed
 *
 * | transition          | decided by                  | applied by      | events                  |
 * |---------------------|-----------------------------|-----------------|-------------------------|
 * | (none) -> open      | decide.c open_group         | group__opened   | GROUP_OPENED (+ leader) |
 * | open -> open (seat) | decide.c take_seat          | group__seat_add | ORDER_RESERVED + group  |
 * | open -> completed   | shard__group_complete: the  | group__closed   | ORDER_CONFIRMED each    |
 * |                     | N-th seat, or the deadline  |                 | member, GROUP_COMPLETED |
 * |                     | with virtual seats          |                 |                         |
 * | open -> failed      | shard__group_settle at the  | group__closed   | ORDER_RELEASED and      |
 * |                     | deadline                    |                 | REFUND_DUE each member, |
 * |                     |                             |                 | GROUP_FAILED            |
 *
 * Invariants: a seat is taken in one applied event, so a group never exceeds N; completion
 * confirms every member in the same decision as the N-th seat; the deadline is fixed at open.
 * Seats hold stock from the moment they are taken (stock reserved at join); a seat's order has no
 * pay TTL of its own (the money is taken at join, and the seat records that amount), and only its
 * group confirms or releases it.
 *
 * The deadline policy (proto/PROTOCOL.md section 4.1 says the same to clients):
 *   - A group's deadline is min(open time + group_ttl, the sale window's end), fixed at open. A
 *     group is open for joins in [open, deadline): a join decided at or after the deadline's
 *     nanosecond is refused (group_closed), even before the timer wheel's tick has settled it.
 *     Capping rather than letting joins run past the end protects the buyer's money: the sale's
 *     end is when every buyer can count on knowing the outcome, no money is taken for a seat
 *     after the sale ended, and a leader who opens a second before the end has their money back
 *     (or their group virtually completed) at the end instead of held for a whole TTL in a group
 *     nobody may join. query_group shows the leader the capped deadline.
 *   - A pause stops all new money for the SKU: group_open, group_join and join_any answer
 *     `paused`. Open groups keep their deadline (it is the promise of how long a seat's money is
 *     held, and a pause has no known end); one whose deadline passes during the pause completes
 *     by its virtual policy or fails and refunds, as at any deadline.
 *   - At groups_open_max open groups, group_open and a join_any that would open answer
 *     `group_full` (no room for another group: join one), a business outcome, not remembered
 *     (it changed nothing: decide.c rule 1); a full shard group table (groups_max) is capacity
 *     and answers `busy`.
 *
 * Open groups of a SKU sit in bucket k by seats taken, oldest (lowest index) first; the walk to
 * keep a bucket sorted is bounded by the SKU's groups_open_max.
 *
 * Thread: the shard's.
 */
#include "rush/assert.h"
#include "shard_internal.h"

static void bucket_remove(struct rush_shard *shard, struct sku_state *sku, uint32_t group_index)
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

static void bucket_insert(struct rush_shard *shard, struct sku_state *sku, uint32_t group_index)
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

/* The deadline of a group opened now: its TTL, capped at the end of the sale window. */
int64_t group__deadline_for(const struct sku_state *sku, int64_t now_ns)
{
    RUSH_ASSERT(sku->def.group_ttl_ns > 0 && now_ns < sku->def.end_ns);
    int64_t deadline = now_ns + sku->def.group_ttl_ns;
    return deadline < sku->def.end_ns ? deadline : sku->def.end_ns;
}

/* Apply: a new open group with no seat yet (its leader's seat is applied next). */
void group__opened(struct rush_shard *shard, struct sku_state *sku, uint32_t group_index,
                   int64_t deadline_ns)
{
    RUSH_ASSERT(group_index >= 1 && group_index <= shard->limits.groups_max);
    shard->groups[group_index] = (struct group){.deadline_ns = deadline_ns,
                                                .sku_index = (uint32_t)(sku - shard->skus),
                                                .member_first = NONE,
                                                .member_last = NONE,
                                                .bucket_prev = NONE,
                                                .bucket_next = NONE,
                                                .state = RUSH_GROUP_OPEN};
    sku->groups_open++;
    rush_timer_wheel_add(&shard->timers, group_timer_handle(shard, group_index), deadline_ns);
}

/* Apply: order `order_index` takes the next seat; the group moves up one bucket. */
void group__seat_add(struct rush_shard *shard, uint32_t group_index, uint32_t order_index)
{
    struct group *group = &shard->groups[group_index];
    struct sku_state *sku = &shard->skus[group->sku_index];
    RUSH_ASSERT(group->state == RUSH_GROUP_OPEN && group->seats < sku->def.group_size);
    if (group->seats > 0)
        bucket_remove(shard, sku, group_index);
    if (group->member_last == NONE)
        group->member_first = order_index;
    else
        shard->orders[group->member_last].member_next = order_index;
    group->member_last = order_index;
    group->seats++;
    if (group->seats < sku->def.group_size)
        bucket_insert(shard, sku, group_index);
}

/* Apply: the group completes (with `virtual_seats` virtual buyers) or fails. */
void group__closed(struct rush_shard *shard, uint32_t group_index, uint8_t state,
                   uint32_t virtual_seats)
{
    struct group *group = &shard->groups[group_index];
    RUSH_ASSERT(group->state == RUSH_GROUP_OPEN);
    RUSH_ASSERT(state == RUSH_GROUP_COMPLETED || state == RUSH_GROUP_FAILED);
    struct sku_state *sku = &shard->skus[group->sku_index];
    if (group->seats < sku->def.group_size)
        bucket_remove(shard, sku, group_index);
    group->state = state;
    sku->groups_open--;
    if (state == RUSH_GROUP_COMPLETED) {
        group->virtual_seats = (uint8_t)virtual_seats;
        sku->virtual_used += virtual_seats;
    }
}

bool group__has_user(const struct rush_shard *shard, const struct group *group, uint64_t user_id)
{
    uint32_t seen = 0;
    for (uint32_t o = group->member_first; o != NONE && seen < RUSH_GROUP_SIZE_MAX;
         o = shard->orders[o].member_next, seen++)
        if (shard->orders[o].user_id == user_id)
            return true;
    return false;
}

/*
 * join_any's choice: the open group closest to full, then oldest, that the user is not in and
 * whose deadline has not passed (one past it waits for its timer to settle it); NONE if none.
 */
uint32_t group__best(const struct rush_shard *shard, const struct sku_state *sku, uint64_t user_id)
{
    uint32_t visited = 0;
    for (uint32_t k = sku->def.group_size - 1; k >= 1; k--) {
        for (uint32_t g = sku->bucket_head[k]; g != NONE && visited <= sku->groups_open;
             g = shard->groups[g].bucket_next, visited++) {
            const struct group *group = &shard->groups[g];
            if (group->deadline_ns > shard->now_ns && !group__has_user(shard, group, user_id))
                return g;
        }
    }
    return NONE;
}

/* Whether open group a comes before b in a "join this group" list: more seats, then the
 * earlier deadline, then the older. */
static bool listed_before(const struct group *a, uint32_t a_index, const struct group *b,
                          uint32_t b_index)
{
    if (a->seats != b->seats)
        return a->seats > b->seats;
    if (a->deadline_ns != b->deadline_ns)
        return a->deadline_ns < b->deadline_ns;
    return a_index < b_index;
}

/* Inserts group g into the sorted list out[0..count) of at most `max`; returns the new count. */
static uint32_t list_insert(const struct rush_shard *shard, uint32_t *out, uint32_t count,
                            uint32_t max, uint32_t g)
{
    uint32_t at = count;
    while (at > 0 && listed_before(&shard->groups[g], g, &shard->groups[out[at - 1]], out[at - 1]))
        at--; /* at most max steps */
    if (at >= max)
        return count;
    uint32_t last = count < max ? count : max - 1;
    for (uint32_t i = last; i > at; i--)
        out[i] = out[i - 1];
    out[at] = g;
    return count < max ? count + 1 : count;
}

/*
 * list_groups: the SKU's open groups that take joins now (deadline after now), closest to full
 * first, then closest to the deadline, at most `max`, into out[]; returns how many. Buckets are
 * walked from the fullest down and the walk stops once a bucket leaves the list full (a less full
 * bucket cannot rank higher) or after RUSH_LIST_GROUPS_VISIT_MAX groups: the work is bounded
 * whatever groups_open_max is, and exact while the buckets it needs hold at most that many.
 */
uint32_t group__list(const struct rush_shard *shard, const struct sku_state *sku, uint32_t *out,
                     uint32_t max)
{
    RUSH_ASSERT(max >= 1 && max <= RUSH_LIST_GROUPS_MAX && sku->def.group_size >= 2);
    uint32_t count = 0;
    uint32_t visited = 0;
    for (uint32_t k = sku->def.group_size - 1; k >= 1 && count < max; k--) {
        for (uint32_t g = sku->bucket_head[k]; g != NONE && visited < RUSH_LIST_GROUPS_VISIT_MAX;
             g = shard->groups[g].bucket_next, visited++) {
            if (shard->groups[g].deadline_ns > shard->now_ns)
                count = list_insert(shard, out, count, max, g);
        }
    }
    RUSH_ASSERT(count <= max && visited <= RUSH_LIST_GROUPS_VISIT_MAX);
    return count;
}

/* The highest tier (index) whose size `seats` reach, or NONE below the first. */
uint32_t group__tier_reached(const struct sku_state *sku, uint32_t seats)
{
    uint32_t reached = NONE;
    for (uint32_t t = 0; t < sku->def.tier_count && t < RUSH_TIERS_MAX; t++)
        if (seats >= sku->def.tier_size[t])
            reached = t;
    return reached;
}

/*
 * The deadline policy: how many virtual seats complete the group, or -1 when it fails (no
 * policy, over the SKU's virtual budget, or more empty seats than AT_MOST allows).
 */
int64_t group__virtual_fill(const struct rush_shard *shard, uint32_t group_index)
{
    const struct group *group = &shard->groups[group_index];
    RUSH_ASSERT(group->state == RUSH_GROUP_OPEN);
    const struct sku_state *sku = &shard->skus[group->sku_index];
    if (sku->def.tier_count != 0) /* tiered: complete at the tier reached, with no virtual seat */
        return group__tier_reached(sku, group->seats) != NONE ? 0 : -1;
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
    return fill ? (int64_t)missing : -1;
}
