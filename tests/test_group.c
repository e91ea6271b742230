/*
 * The group-buy machine: seats taken atomically, exact sizes, completion confirms every member
 * at once, join_any packs the closest-to-full group, deadlines complete by policy or fail with
 * refunds.
 */
#include <criterion/criterion.h>

#include "support.h"

static struct recorder recorder;
static struct rush_shard *shard;
static uint64_t next_key = 1000;

static void setup(void)
{
    recorder_init(&recorder, 1 << 16);
    shard = shard_new(small_limits(), 7, &recorder);
}

static void teardown(void)
{
    char why[256] = "";
    int rc = rush_shard_check(shard, why, sizeof(why));
    rush_shard_destroy(shard);
    recorder_free(&recorder);
    cr_assert_eq(rc, 0, "invariant broken: %s", why);
}

TestSuite(group, .init = setup, .fini = teardown);

static struct rush_result op_at(int64_t now, uint8_t op, uint64_t sku, uint64_t user,
                                uint64_t target)
{
    return decide_at(shard, now, request_of(op, sku, user, 0, target, next_key++));
}

static struct rush_result query_group(uint64_t group)
{
    return decide_at(shard, T0_NS, request_of(RUSH_OP_QUERY_GROUP, 0, 0, 0, group, 0));
}

Test(group, the_nth_seat_confirms_every_member_at_once)
{
    put_at(shard, T0_NS, sku_group(1, 10, 3));
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 100, 0);
    cr_assert_eq(open.outcome, RUSH_OK);
    cr_assert_neq(open.group_id, 0);
    cr_assert_neq(open.order_id, 0);
    cr_assert_eq(open.remaining, 9, "stock is reserved at join");
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 101, open.group_id).outcome, RUSH_OK);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ORDER_CONFIRMED), 0);
    struct rush_result last = op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 102, open.group_id);
    cr_assert_eq(last.outcome, RUSH_OK);
    cr_assert_eq(last.group_id, open.group_id);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ORDER_CONFIRMED), 3);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_GROUP_COMPLETED), 1);
    struct rush_result q = query_group(open.group_id);
    cr_assert_eq(q.state, RUSH_GROUP_COMPLETED);
    cr_assert_eq(q.qty, 3);
    struct rush_sku_ledger l;
    cr_assert_eq(rush_shard_ledger(shard, 1, &l), 0);
    cr_assert_eq(l.confirmed, 3);
    cr_assert_eq(l.groups_open, 0);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 103, open.group_id).outcome, RUSH_GROUP_CLOSED,
                 "a completed group takes no fourth seat");
}

Test(group, a_user_takes_one_seat_per_group)
{
    put_at(shard, T0_NS, sku_group(1, 10, 3));
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 100, 0);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 100, open.group_id).outcome,
                 RUSH_ALREADY_IN_GROUP);
    cr_assert_eq(query_group(open.group_id).qty, 1);
}

Test(group, group_ops_check_the_sku_kind)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    put_at(shard, T0_NS, sku_group(2, 10, 2));
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 5, 0).reason, RUSH_REASON_NOT_GROUP_SKU);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 1, 5, 0).reason, RUSH_REASON_NOT_GROUP_SKU);
    struct rush_request reserve = request_of(RUSH_OP_RESERVE, 2, 5, 1, 0, next_key++);
    cr_assert_eq(decide_at(shard, T0_NS, reserve).reason, RUSH_REASON_GROUP_SKU);
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 2, 5, 0);
    cr_assert_eq(
        decide_at(shard, T0_NS, request_of(RUSH_OP_CONFIRM, 0, 0, 0, open.order_id, next_key++))
            .reason,
        RUSH_REASON_GROUP_ORDER, "a seat is confirmed by its group, not by hand");
}

Test(group, join_any_fills_the_group_closest_to_full_then_the_oldest)
{
    struct rush_sku sku = sku_group(1, 100, 4);
    put_at(shard, T0_NS, sku);
    uint64_t a = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0).group_id;
    uint64_t b = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 2, 0).group_id;
    uint64_t c = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 3, 0).group_id;
    op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 4, c); /* c has 2 seats, a and b have 1 */
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 1, 5, 0).group_id, c);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 1, 6, 0).group_id, c, "c completes");
    cr_assert_eq(query_group(c).state, RUSH_GROUP_COMPLETED);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 1, 7, 0).group_id, a, "oldest of equals");
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 1, 8, 0).group_id, a);
    /* user 1 leads a, so join_any skips a for them and picks b */
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 1, 1, 0).group_id, b);
}

Test(group, join_any_opens_a_group_when_none_is_open_and_respects_the_open_limit)
{
    struct rush_sku sku = sku_group(1, 100, 3);
    sku.groups_open_max = 2;
    put_at(shard, T0_NS, sku);
    struct rush_result first = op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 1, 1, 0);
    cr_assert_eq(first.outcome, RUSH_OK);
    cr_assert_eq(query_group(first.group_id).qty, 1);
    op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 2, 0);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 3, 0).outcome, RUSH_BUSY);
}

Test(group, a_group_never_takes_more_stock_than_there_is)
{
    put_at(shard, T0_NS, sku_group(1, 2, 3));
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 2, open.group_id).outcome, RUSH_OK);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 3, open.group_id).outcome, RUSH_SOLD_OUT);
    cr_assert_eq(query_group(open.group_id).state, RUSH_GROUP_OPEN);
}

Test(group, the_deadline_fails_an_unfilled_group_and_refunds_every_seat)
{
    put_at(shard, T0_NS, sku_group(1, 10, 3));
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 2, open.group_id);
    int64_t deadline = T0_NS + 10 * 60 * SECOND;
    cr_assert_eq(query_group(open.group_id).reserved, deadline, "the deadline is fixed at open");
    /* A join within the deadline's tick still lands; after it, the group is closed. */
    rush_shard_begin(shard, deadline + 2 * MS);
    rush_shard_end(shard);
    cr_assert_eq(query_group(open.group_id).state, RUSH_GROUP_FAILED);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ORDER_RELEASED), 2);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_REFUND_DUE), 2);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_GROUP_FAILED), 1);
    struct rush_sku_ledger l;
    cr_assert_eq(rush_shard_ledger(shard, 1, &l), 0);
    cr_assert_eq(l.available, 10);
    cr_assert_eq(rush_shard_user_held(shard, 1, 1), 0);
    cr_assert_eq(op_at(deadline + 3 * MS, RUSH_OP_GROUP_JOIN, 0, 3, open.group_id).outcome,
                 RUSH_GROUP_CLOSED);
}

Test(group, fill_policy_completes_with_virtual_seats_within_budget)
{
    struct rush_sku sku = sku_group(1, 10, 3);
    sku.virtual_policy = RUSH_VIRTUAL_FILL;
    sku.virtual_budget = 3;
    put_at(shard, T0_NS, sku);
    uint64_t a = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0).group_id; /* needs 2 virtual */
    uint64_t b = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 2, 0).group_id; /* needs 2: over budget */
    rush_shard_begin(shard, T0_NS + 11 * 60 * SECOND);
    rush_shard_end(shard);
    cr_assert_eq(query_group(a).state, RUSH_GROUP_COMPLETED);
    cr_assert_eq(query_group(b).state, RUSH_GROUP_FAILED);
    struct rush_sku_ledger l;
    cr_assert_eq(rush_shard_ledger(shard, 1, &l), 0);
    cr_assert_eq(l.virtual_used, 2);
    cr_assert_eq(l.confirmed, 1, "virtual seats take no stock");
    cr_assert_eq(l.available, 9);
}

Test(group, at_most_policy_fills_only_small_gaps)
{
    struct rush_sku sku = sku_group(1, 10, 4);
    sku.virtual_policy = RUSH_VIRTUAL_AT_MOST;
    sku.virtual_seats_max = 1;
    sku.virtual_budget = 100;
    put_at(shard, T0_NS, sku);
    uint64_t a = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0).group_id;
    op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 2, a);
    op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 3, a); /* 3 of 4: one virtual seat */
    uint64_t b = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 4, 0).group_id;
    op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 5, b); /* 2 of 4: two missing */
    rush_shard_begin(shard, T0_NS + 11 * 60 * SECOND);
    rush_shard_end(shard);
    cr_assert_eq(query_group(a).state, RUSH_GROUP_COMPLETED);
    cr_assert_eq(query_group(b).state, RUSH_GROUP_FAILED);
}

Test(group, a_user_limit_counts_seats)
{
    struct rush_sku sku = sku_group(1, 10, 2);
    sku.order_qty_max = sku.user_qty_max = 1;
    cr_assert_eq(put_at(shard, T0_NS, sku).outcome, RUSH_OK);
    op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0).outcome, RUSH_LIMIT_EXCEEDED);
}

Test(group, a_repeated_join_key_answers_the_same_seat)
{
    put_at(shard, T0_NS, sku_group(1, 10, 3));
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    struct rush_request join = request_of(RUSH_OP_GROUP_JOIN, 0, 2, 0, open.group_id, 77);
    struct rush_result first = decide_at(shard, T0_NS, join);
    struct rush_result again = decide_at(shard, T0_NS, join);
    cr_assert(again.flags & RUSH_RESULT_DUPLICATE);
    cr_assert_eq(again.order_id, first.order_id);
    cr_assert_eq(again.group_id, first.group_id);
    cr_assert_eq(query_group(open.group_id).qty, 2);
}
