/*
 * The group-buy machine: seats taken atomically, exact sizes, completion confirms every member
 * at once, join_any packs the closest-to-full group, deadlines complete by policy or fail with
 * refunds.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "rush/stream.h"
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
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 3, 0).outcome, RUSH_GROUP_FULL);
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

static struct rush_sku_ledger ledger_of(uint64_t sku)
{
    struct rush_sku_ledger l;
    cr_assert_eq(rush_shard_ledger(shard, sku, &l), 0);
    return l;
}

/* The events the sink saw from index `from` on, of `type`. */
static uint32_t count_from(uint32_t from, uint8_t type)
{
    uint32_t n = 0;
    for (uint32_t i = from; i < recorder.count; i++)
        n += recorder.events[i].type == type;
    return n;
}

Test(group, the_open_group_cap_is_a_business_outcome_not_overload)
{
    struct rush_sku sku = sku_group(1, 100, 3);
    sku.groups_open_max = 1;
    put_at(shard, T0_NS, sku);
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    cr_assert_eq(open.outcome, RUSH_OK);
    struct rush_request second = request_of(RUSH_OP_GROUP_OPEN, 1, 2, 0, 0, 500);
    struct rush_result full = decide_at(shard, T0_NS, second);
    cr_assert_eq(full.outcome, RUSH_GROUP_FULL, "no room for another group: join one");
    cr_assert_eq(full.group_id, 0);
    /* join_any by the only group's leader cannot join it and may not open another. */
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 1, 1, 0).outcome, RUSH_GROUP_FULL);
    /* Another user's join_any still joins the open group. */
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 1, 3, 0).group_id, open.group_id);
    const struct rush_shard_stats *stats = rush_shard_stats(shard);
    cr_assert_eq(stats->outcomes[RUSH_BUSY], 0, "not counted as overload");
    cr_assert_eq(stats->outcomes[RUSH_GROUP_FULL], 2);
    /* It changed nothing, so it is not remembered (decide.c rule 1): a retry is decided again. */
    struct rush_result again = decide_at(shard, T0_NS, second);
    cr_assert_not(again.flags & RUSH_RESULT_DUPLICATE, "an answer that changed nothing is new");
    cr_assert_eq(again.outcome, RUSH_GROUP_FULL);
    cr_assert_eq(ledger_of(1).available, 98, "a refused open takes no stock");
}

Test(group, a_full_shard_group_table_is_capacity_and_answers_busy)
{
    rush_shard_destroy(shard);
    struct rush_shard_limits limits = small_limits();
    limits.groups_max = 1;
    shard = shard_new(limits, 7, &recorder);
    put_at(shard, T0_NS, sku_group(1, 100, 3));
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0).outcome, RUSH_OK);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 2, 0).outcome, RUSH_BUSY);
}

Test(group, a_join_a_fraction_of_a_tick_after_the_deadline_is_refused)
{
    put_at(shard, T0_NS, sku_group(1, 10, 3));
    int64_t at = T0_NS + 300000; /* the deadline falls 0.3 ms into a tick */
    struct rush_result open = decide_at(shard, at, request_of(RUSH_OP_GROUP_OPEN, 1, 1, 0, 0, 1));
    int64_t deadline = at + 10 * 60 * SECOND;
    cr_assert_eq(query_group(open.group_id).reserved, deadline);
    struct rush_result in_time =
        decide_at(shard, deadline - 1, request_of(RUSH_OP_GROUP_JOIN, 0, 2, 0, open.group_id, 2));
    cr_assert_eq(in_time.outcome, RUSH_OK, "a nanosecond before the deadline is in time");
    uint32_t from = recorder.count;
    struct rush_result late = decide_at(shard, deadline + 699000,
                                        request_of(RUSH_OP_GROUP_JOIN, 0, 3, 0, open.group_id, 3));
    cr_assert_eq(late.outcome, RUSH_GROUP_CLOSED, "0.7 ms late, within the deadline's tick");
    cr_assert_eq(late.order_id, 0);
    cr_assert_eq(query_group(open.group_id).state, RUSH_GROUP_FAILED,
                 "the deadline settled the group at the join's nanosecond");
    cr_assert_eq(count_from(from, RUSH_EV_REFUND_DUE), 2);
    cr_assert_eq(count_from(from, RUSH_EV_GROUP_FAILED), 1);
    for (uint32_t i = from; i < recorder.count; i++)
        if (recorder.events[i].type != RUSH_EV_REJECTED)
            cr_assert_eq(recorder.events[i].op, RUSH_OP_NONE, "the deadline decided event %u", i);
    cr_assert_eq(ledger_of(1).available, 10);
    /* The timer, when its tick passes, finds nothing left to do. */
    uint32_t events_before = recorder.count;
    rush_shard_begin(shard, deadline + 5 * MS);
    rush_shard_end(shard);
    cr_assert_eq(recorder.count, events_before);
}

Test(group, join_any_skips_a_group_past_its_deadline)
{
    put_at(shard, T0_NS, sku_group(1, 10, 3));
    int64_t at = T0_NS + 300000;
    struct rush_result old = decide_at(shard, at, request_of(RUSH_OP_GROUP_OPEN, 1, 1, 0, 0, 1));
    int64_t deadline = at + 10 * 60 * SECOND;
    struct rush_result r =
        decide_at(shard, deadline + 100000, request_of(RUSH_OP_GROUP_JOIN_ANY, 1, 2, 0, 0, 2));
    cr_assert_eq(r.outcome, RUSH_OK);
    cr_assert_neq(r.group_id, old.group_id, "a new group, not a seat in the expired one");
    cr_assert_eq(query_group(r.group_id).qty, 1);
}

Test(group, a_group_opened_near_the_end_of_the_sale_ends_with_the_sale)
{
    struct rush_sku sku = sku_group(1, 10, 3);
    int64_t end = T0_NS + 60 * SECOND;
    sku.end_ns = end;
    put_at(shard, T0_NS, sku);
    struct rush_result early = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    cr_assert_eq(query_group(early.group_id).reserved, end, "a whole TTL would pass the end");
    struct rush_result last = op_at(end - SECOND, RUSH_OP_GROUP_OPEN, 1, 2, 0);
    cr_assert_eq(last.outcome, RUSH_OK);
    cr_assert_eq(query_group(last.group_id).reserved, end, "capped at the window's end");
    cr_assert_eq(op_at(end - 1, RUSH_OP_GROUP_JOIN, 0, 3, last.group_id).outcome, RUSH_OK,
                 "joins run until the deadline, which is the end");
    cr_assert_eq(op_at(end, RUSH_OP_GROUP_JOIN, 0, 4, last.group_id).outcome, RUSH_ENDED);
    /* At the end every open group settles: the leader's money is not held for a TTL. */
    uint32_t from = recorder.count;
    rush_shard_begin(shard, end + 2 * MS);
    rush_shard_end(shard);
    cr_assert_eq(query_group(early.group_id).state, RUSH_GROUP_FAILED);
    cr_assert_eq(query_group(last.group_id).state, RUSH_GROUP_FAILED);
    cr_assert_eq(count_from(from, RUSH_EV_REFUND_DUE), 3);
    cr_assert_eq(ledger_of(1).available, 10);
    cr_assert_eq(ledger_of(1).groups_open, 0);
}

Test(group, a_pause_refuses_joins_and_keeps_the_deadline)
{
    put_at(shard, T0_NS, sku_group(1, 10, 3));
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    int64_t deadline = T0_NS + 10 * 60 * SECOND;
    cr_assert_eq(op_at(T0_NS + SECOND, RUSH_OP_PAUSE, 1, 0, 0).outcome, RUSH_OK);
    cr_assert_eq(op_at(T0_NS + 2 * SECOND, RUSH_OP_GROUP_JOIN, 0, 2, open.group_id).outcome,
                 RUSH_PAUSED, "no new money while paused");
    cr_assert_eq(op_at(T0_NS + 2 * SECOND, RUSH_OP_GROUP_JOIN_ANY, 1, 3, 0).outcome, RUSH_PAUSED);
    cr_assert_eq(op_at(T0_NS + 2 * SECOND, RUSH_OP_GROUP_OPEN, 1, 4, 0).outcome, RUSH_PAUSED);
    cr_assert_eq(query_group(open.group_id).reserved, deadline, "the deadline does not move");
    /* The deadline passes during the pause: the group settles by its policy and refunds. */
    rush_shard_begin(shard, deadline + 2 * MS);
    rush_shard_end(shard);
    cr_assert_eq(query_group(open.group_id).state, RUSH_GROUP_FAILED);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_REFUND_DUE), 1);
    cr_assert_eq(op_at(deadline + 3 * MS, RUSH_OP_RESUME, 1, 0, 0).outcome, RUSH_OK);
    cr_assert_eq(op_at(deadline + 3 * MS, RUSH_OP_GROUP_JOIN, 0, 2, open.group_id).outcome,
                 RUSH_GROUP_CLOSED);
}

Test(group, a_paused_groups_deadline_fills_it_by_its_policy)
{
    struct rush_sku sku = sku_group(1, 10, 3);
    sku.virtual_policy = RUSH_VIRTUAL_FILL;
    sku.virtual_budget = 5;
    put_at(shard, T0_NS, sku);
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    op_at(T0_NS, RUSH_OP_PAUSE, 1, 0, 0);
    rush_shard_begin(shard, T0_NS + 11 * 60 * SECOND);
    rush_shard_end(shard);
    cr_assert_eq(query_group(open.group_id).state, RUSH_GROUP_COMPLETED);
}

Test(group, events_of_a_group_completed_by_a_join_carry_the_joins_op)
{
    put_at(shard, T0_NS, sku_group(1, 10, 3));
    put_at(shard, T0_NS, sku_group(2, 10, 2));
    struct rush_result a = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 2, a.group_id);
    uint32_t from = recorder.count;
    struct rush_result last = op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 3, a.group_id);
    cr_assert_eq(last.state, RUSH_ORDER_CONFIRMED, "the seat that completes it is confirmed");
    cr_assert_eq(count_from(from, RUSH_EV_ORDER_CONFIRMED), 3);
    cr_assert_eq(count_from(from, RUSH_EV_GROUP_COMPLETED), 1);
    for (uint32_t i = from; i < recorder.count; i++)
        cr_assert_eq(recorder.events[i].op, RUSH_OP_GROUP_JOIN, "event %u", i);
    op_at(T0_NS, RUSH_OP_GROUP_OPEN, 2, 1, 0);
    from = recorder.count;
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 2, 2, 0).outcome, RUSH_OK);
    cr_assert_eq(count_from(from, RUSH_EV_GROUP_COMPLETED), 1);
    for (uint32_t i = from; i < recorder.count; i++)
        cr_assert_eq(recorder.events[i].op, RUSH_OP_GROUP_JOIN_ANY, "event %u", i);
}

Test(group, a_seat_pays_the_price_at_its_join_whatever_the_price_becomes)
{
    put_at(shard, T0_NS, sku_group(1, 10, 3)); /* 100 fen */
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    cr_assert_eq(open.state, RUSH_ORDER_RESERVED);
    struct rush_sku dearer = sku_group(1, 10, 3);
    dearer.price_fen = 5000;
    put_at(shard, T0_NS + MS, dearer);
    struct rush_result second = op_at(T0_NS + MS, RUSH_OP_GROUP_JOIN, 0, 2, open.group_id);
    struct rush_sku cheaper = sku_group(1, 10, 3);
    cheaper.price_fen = 1;
    put_at(shard, T0_NS + 2 * MS, cheaper);
    uint32_t from = recorder.count;
    op_at(T0_NS + 2 * MS, RUSH_OP_GROUP_JOIN, 0, 3, open.group_id);
    int64_t seen = 0;
    for (uint32_t i = from; i < recorder.count; i++) {
        const struct rush_event *e = &recorder.events[i];
        if (e->type != RUSH_EV_ORDER_CONFIRMED)
            continue;
        int64_t want = e->order_id == open.order_id     ? 100
                       : e->order_id == second.order_id ? 5000
                                                        : 1;
        cr_assert_eq(e->amount, want, "seat %lx", e->order_id);
        seen++;
    }
    cr_assert_eq(seen, 3);
}

Test(group, a_failed_group_refunds_what_each_seat_paid)
{
    put_at(shard, T0_NS, sku_group(1, 10, 3));
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0);
    struct rush_sku dearer = sku_group(1, 10, 3);
    dearer.price_fen = 5000;
    put_at(shard, T0_NS + MS, dearer);
    struct rush_result second = op_at(T0_NS + MS, RUSH_OP_GROUP_JOIN, 0, 2, open.group_id);
    uint32_t from = recorder.count;
    rush_shard_begin(shard, T0_NS + 11 * 60 * SECOND);
    rush_shard_end(shard);
    cr_assert_eq(count_from(from, RUSH_EV_REFUND_DUE), 2);
    for (uint32_t i = from; i < recorder.count; i++) {
        const struct rush_event *e = &recorder.events[i];
        if (e->type == RUSH_EV_REFUND_DUE || e->type == RUSH_EV_ORDER_RELEASED)
            cr_assert_eq(e->amount, e->order_id == second.order_id ? 5000 : 100);
    }
}

Test(group, a_late_join_settles_the_largest_group_within_the_smallest_event_buffer)
{
    rush_shard_destroy(shard);
    struct rush_shard_limits limits = small_limits();
    limits.events_buffer_max = 2 * (3 * RUSH_GROUP_SIZE_MAX + 3); /* the least rush accepts */
    shard = shard_new(limits, 7, &recorder);
    struct rush_sku sku = sku_group(1, 100, RUSH_GROUP_SIZE_MAX);
    sku.order_qty_max = 1;
    sku.user_qty_max = 1;
    put_at(shard, T0_NS, sku);
    int64_t at = T0_NS + 300000;
    struct rush_result open = decide_at(shard, at, request_of(RUSH_OP_GROUP_OPEN, 1, 1, 0, 0, 1));
    rush_shard_begin(shard, at);
    for (uint64_t user = 2; user < RUSH_GROUP_SIZE_MAX; user++) {
        struct rush_request join = request_of(RUSH_OP_GROUP_JOIN, 0, user, 0, open.group_id, user);
        struct rush_result r;
        rush_shard_decide(shard, &join, &r);
        cr_assert_eq(r.outcome, RUSH_OK);
    }
    rush_shard_end(shard);
    cr_assert_eq(query_group(open.group_id).qty, RUSH_GROUP_SIZE_MAX - 1);
    uint32_t from = recorder.count;
    struct rush_result late =
        decide_at(shard, at + 10 * 60 * SECOND + 100000,
                  request_of(RUSH_OP_GROUP_JOIN, 0, 99, 0, open.group_id, 99));
    cr_assert_eq(late.outcome, RUSH_GROUP_CLOSED);
    cr_assert_eq(count_from(from, RUSH_EV_REFUND_DUE), RUSH_GROUP_SIZE_MAX - 1);
    cr_assert_eq(ledger_of(1).available, 100);
}

/* A Pinduoduo deal: one stock sold solo at the list price, seats at the group price, the
 * leader free. Each order records what its buyer pays; the stream shows it as the unit price. */
static struct rush_sku deal_sku(int64_t stock)
{
    struct rush_sku sku = sku_group(1, stock, 2);
    sku.pay_ttl_ns = 60 * SECOND; /* solo orders pay within a minute; seats pay at join */
    sku.solo_allowed = 1;
    sku.prices = RUSH_SKU_GROUP_PRICE | RUSH_SKU_LEADER_PRICE;
    sku.group_price_fen = 60;
    sku.leader_price_fen = 0;
    return sku;
}

static int64_t amount_of(uint8_t type, uint64_t order_id)
{
    for (uint32_t i = 0; i < recorder.count; i++)
        if (recorder.events[i].type == type && recorder.events[i].order_id == order_id)
            return recorder.events[i].amount;
    cr_assert_fail("no %s event for order %lx", rush_event_type_name(type), order_id);
    return -1;
}

Test(group, one_stock_sells_solo_and_in_groups_at_their_own_prices)
{
    put_at(shard, T0_NS, deal_sku(3));
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 100, 0);
    cr_assert_eq(open.remaining, 2);
    struct rush_request reserve = request_of(RUSH_OP_RESERVE, 1, 200, 1, 0, next_key++);
    struct rush_result solo = decide_at(shard, T0_NS, reserve);
    cr_assert_eq(solo.outcome, RUSH_OK, "solo_allowed: a reserve buys from the group SKU");
    cr_assert_eq(solo.state, RUSH_ORDER_RESERVED, "a solo order has its pay TTL");
    cr_assert_eq(solo.remaining, 1, "from the same stock");
    struct rush_result join = op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 101, open.group_id);
    cr_assert_eq(join.state, RUSH_ORDER_CONFIRMED);
    cr_assert_eq(join.remaining, 0);
    cr_assert_eq(amount_of(RUSH_EV_ORDER_CONFIRMED, open.order_id), 0, "the leader is free");
    cr_assert_eq(amount_of(RUSH_EV_ORDER_CONFIRMED, join.order_id), 60, "a seat: group price");
    cr_assert_eq(amount_of(RUSH_EV_ORDER_RESERVED, solo.order_id), 100, "solo: list price");
    for (uint32_t i = 0; i < recorder.count; i++) { /* the stream carries each seat's price */
        const struct rush_event *e = &recorder.events[i];
        if (e->type != RUSH_EV_ORDER_CONFIRMED)
            continue;
        struct rush_stream_event published;
        rush_stream_event_from_log(&published, 7, i + 1, T0_NS, e);
        cr_assert_eq(published.price_fen, e->order_id == open.order_id ? 0 : 60);
    }
    struct rush_request another = request_of(RUSH_OP_RESERVE, 1, 201, 1, 0, next_key++);
    cr_assert_eq(decide_at(shard, T0_NS, another).outcome, RUSH_SOLD_OUT);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 102, 0).outcome, RUSH_SOLD_OUT);
    struct rush_request pay = request_of(RUSH_OP_CONFIRM, 0, 0, 0, solo.order_id, next_key++);
    cr_assert_eq(decide_at(shard, T0_NS, pay).outcome, RUSH_OK);
    cr_assert_eq(amount_of(RUSH_EV_ORDER_CONFIRMED, solo.order_id), 100);
    struct rush_sku_ledger ledger;
    cr_assert_eq(rush_shard_ledger(shard, 1, &ledger), 0);
    cr_assert_eq(ledger.confirmed, 3);
    cr_assert_eq(ledger.available, 0);
}

Test(group, solo_and_seats_share_the_users_limit)
{
    struct rush_sku sku = deal_sku(10);
    sku.order_qty_max = 1;
    sku.user_qty_max = 2;
    put_at(shard, T0_NS, sku);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 100, 0).outcome, RUSH_OK);
    struct rush_request one = request_of(RUSH_OP_RESERVE, 1, 100, 1, 0, next_key++);
    cr_assert_eq(decide_at(shard, T0_NS, one).outcome, RUSH_OK);
    struct rush_request two = request_of(RUSH_OP_RESERVE, 1, 100, 1, 0, next_key++);
    cr_assert_eq(decide_at(shard, T0_NS, two).outcome, RUSH_LIMIT_EXCEEDED);
    cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_JOIN_ANY, 1, 100, 0).outcome, RUSH_LIMIT_EXCEEDED);
}

Test(group, without_a_leader_price_the_leader_pays_the_group_price)
{
    struct rush_sku sku = deal_sku(10);
    sku.prices = RUSH_SKU_GROUP_PRICE;
    sku.leader_price_fen = 0;
    put_at(shard, T0_NS, sku);
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 100, 0);
    uint32_t from = recorder.count;
    rush_shard_begin(shard, T0_NS + 11 * 60 * SECOND); /* the group fails: refunds */
    rush_shard_end(shard);
    cr_assert_eq(count_from(from, RUSH_EV_REFUND_DUE), 1);
    cr_assert_eq(amount_of(RUSH_EV_REFUND_DUE, open.order_id), 60, "refund what the seat paid");
}

Test(group, a_failed_free_leader_is_refunded_nothing)
{
    put_at(shard, T0_NS, deal_sku(10));
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 100, 0);
    rush_shard_begin(shard, T0_NS + 11 * 60 * SECOND);
    rush_shard_end(shard);
    cr_assert_eq(amount_of(RUSH_EV_REFUND_DUE, open.order_id), 0);
    cr_assert_eq(amount_of(RUSH_EV_ORDER_RELEASED, open.order_id), 0);
}

Test(group, sku_put_refuses_prices_the_validator_refuses)
{
    struct rush_sku solo = sku_solo(1, 10);
    solo.prices = RUSH_SKU_LEADER_PRICE; /* a leader price on a solo SKU */
    struct rush_result r;
    rush_shard_sku_put(shard, &solo, &r);
    cr_assert_eq(r.outcome, RUSH_INVALID);
    cr_assert_eq(r.reason, RUSH_REASON_SKU_DEF);
    struct rush_sku dear = deal_sku(10);
    dear.group_price_fen = dear.price_fen + 1; /* above the list price */
    rush_shard_sku_put(shard, &dear, &r);
    cr_assert_eq(r.reason, RUSH_REASON_SKU_DEF);
    dear = deal_sku(10);
    dear.prices = 0; /* a price that is not set must be zero */
    rush_shard_sku_put(shard, &dear, &r);
    cr_assert_eq(r.reason, RUSH_REASON_SKU_DEF);
    dear = deal_sku(10);
    dear.solo_allowed = 2;
    rush_shard_sku_put(shard, &dear, &r);
    cr_assert_eq(r.reason, RUSH_REASON_SKU_DEF);
    cr_assert_eq(rush_shard_ledger(shard, 1, &(struct rush_sku_ledger){0}), -ENOENT,
                 "nothing half-applied");
}

Test(group, a_partial_put_sets_or_unsets_one_price_and_keeps_the_rest)
{
    put_at(shard, T0_NS, deal_sku(10));
    struct rush_result r;
    struct rush_sku cheaper = {.id = 1,
                               .fields = RUSH_SKU_FIELD_GROUP_PRICE,
                               .prices = RUSH_SKU_GROUP_PRICE,
                               .group_price_fen = 50};
    rush_shard_sku_put(shard, &cheaper, &r);
    cr_assert_eq(r.outcome, RUSH_OK);
    struct rush_sku no_leader_deal = {.id = 1, .fields = RUSH_SKU_FIELD_LEADER_PRICE};
    rush_shard_sku_put(shard, &no_leader_deal, &r);
    cr_assert_eq(r.outcome, RUSH_OK);
    struct rush_sku too_dear = cheaper;
    too_dear.group_price_fen = 101;
    rush_shard_sku_put(shard, &too_dear, &r);
    cr_assert_eq(r.reason, RUSH_REASON_SKU_DEF, "the merged definition breaks the price rule");
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 100, 0);
    struct rush_result join = op_at(T0_NS, RUSH_OP_GROUP_JOIN, 0, 101, open.group_id);
    cr_assert_eq(amount_of(RUSH_EV_ORDER_CONFIRMED, open.order_id), 50, "no leader price now");
    cr_assert_eq(amount_of(RUSH_EV_ORDER_CONFIRMED, join.order_id), 50);
    struct rush_request solo = request_of(RUSH_OP_RESERVE, 1, 200, 1, 0, next_key++);
    cr_assert_eq(decide_at(shard, T0_NS, solo).outcome, RUSH_OK, "solo_allowed kept");
}

/* list_groups as the server asks it: ranks 0..n-1 in one batch. */
static uint32_t list_groups(uint64_t sku, int64_t now, struct rush_result *out, uint32_t limit)
{
    struct rush_request requests[RUSH_LIST_GROUPS_MAX];
    for (uint32_t rank = 0; rank < limit; rank++)
        requests[rank] =
            (struct rush_request){.op = RUSH_OP_LIST_GROUPS, .sku_id = sku, .qty = rank};
    rush_shard_begin(shard, now);
    rush_shard_decide_batch(shard, requests, limit, out);
    rush_shard_end(shard);
    uint32_t listed = 0;
    while (listed < limit && out[listed].outcome == RUSH_OK)
        listed++;
    return listed;
}

Test(group, list_groups_shows_the_closest_to_full_then_the_closest_deadline)
{
    struct rush_sku sku = sku_group(1, 100, 4);
    put_at(shard, T0_NS, sku);
    uint64_t a = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 1, 0).group_id; /* 1 seat */
    uint64_t b = op_at(T0_NS + MS, RUSH_OP_GROUP_OPEN, 1, 2, 0).group_id;
    op_at(T0_NS + MS, RUSH_OP_GROUP_JOIN, 0, 3, b); /* b: 2 seats */
    sku.group_ttl_ns = 60 * SECOND;                 /* later groups close sooner than a and b */
    put_at(shard, T0_NS + 2 * MS, sku);
    uint64_t c = op_at(T0_NS + 2 * MS, RUSH_OP_GROUP_OPEN, 1, 4, 0).group_id; /* 1 seat */
    uint64_t d = op_at(T0_NS + 3 * MS, RUSH_OP_GROUP_OPEN, 1, 5, 0).group_id;
    op_at(T0_NS + 3 * MS, RUSH_OP_GROUP_JOIN, 0, 6, d);
    op_at(T0_NS + 3 * MS, RUSH_OP_GROUP_JOIN, 0, 7, d); /* d: 3 seats */
    uint64_t full = op_at(T0_NS + 3 * MS, RUSH_OP_GROUP_OPEN, 1, 8, 0).group_id;
    for (uint64_t u = 9; u <= 11; u++)
        op_at(T0_NS + 3 * MS, RUSH_OP_GROUP_JOIN, 0, u, full); /* completed: not listed */

    struct rush_result r[RUSH_LIST_GROUPS_MAX];
    cr_assert_eq(list_groups(1, T0_NS + 4 * MS, r, 10), 4);
    cr_assert_eq(r[0].group_id, d, "closest to full first");
    cr_assert_eq(r[0].qty, 3);
    cr_assert_eq(r[0].remaining, 1);
    cr_assert_eq(r[0].confirmed, 5, "the leader");
    cr_assert_eq(r[1].group_id, b);
    cr_assert_eq(r[2].group_id, c, "of equals, the closest deadline first (c opened later)");
    cr_assert_eq(r[2].reserved, T0_NS + 2 * MS + 60 * SECOND);
    cr_assert_eq(r[3].group_id, a);
    cr_assert_eq(r[4].outcome, RUSH_UNKNOWN_GROUP, "no group at this rank");
    cr_assert_eq(list_groups(1, T0_NS + 4 * MS, r, 2), 2, "the limit");

    /* c's deadline passes: it takes no join, so it is not listed, even before its timer */
    cr_assert_eq(list_groups(1, T0_NS + 2 * MS + 60 * SECOND, r, 10), 3);
    cr_assert(r[0].group_id == d && r[1].group_id == b && r[2].group_id == a);
}

Test(group, list_groups_refuses_what_is_not_a_group_buy)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    put_at(shard, T0_NS, sku_group(2, 10, 3));
    struct rush_result r[2];
    list_groups(1, T0_NS, r, 1);
    cr_assert_eq(r[0].reason, RUSH_REASON_NOT_GROUP_SKU);
    list_groups(9, T0_NS, r, 1);
    cr_assert_eq(r[0].outcome, RUSH_UNKNOWN_SKU);
    cr_assert_eq(list_groups(2, T0_NS, r, 1), 0);
    cr_assert_eq(r[0].outcome, RUSH_UNKNOWN_GROUP, "an empty list");
    struct rush_request past = {
        .op = RUSH_OP_LIST_GROUPS, .sku_id = 2, .qty = RUSH_LIST_GROUPS_MAX};
    cr_assert_eq(decide_at(shard, T0_NS, past).reason, RUSH_REASON_QTY);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_REJECTED), 0, "queries log nothing");
}

Test(group, list_groups_visits_a_bounded_number_of_groups)
{
    struct rush_shard_limits limits = small_limits();
    limits.groups_max = 2 * RUSH_LIST_GROUPS_VISIT_MAX;
    limits.orders_max = 4 * RUSH_LIST_GROUPS_VISIT_MAX;
    rush_shard_destroy(shard);
    shard = shard_new(limits, 7, &recorder);
    struct rush_sku sku = sku_group(1, 10000, 2);
    sku.groups_open_max = 3000;
    put_at(shard, T0_NS, sku);
    for (uint64_t u = 1; u <= RUSH_LIST_GROUPS_VISIT_MAX; u++)
        cr_assert_eq(op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, u, 0).outcome, RUSH_OK);
    sku.group_ttl_ns = 60 * SECOND; /* the groups opened next close first... */
    put_at(shard, T0_NS, sku);
    for (uint64_t u = 1; u <= 30; u++)
        op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 5000 + u, 0);
    struct rush_result r[RUSH_LIST_GROUPS_MAX];
    cr_assert_eq(list_groups(1, T0_NS + MS, r, RUSH_LIST_GROUPS_MAX), RUSH_LIST_GROUPS_MAX);
    /* ...but they lie past the visit bound of their bucket, which is walked oldest first */
    for (uint32_t i = 0; i < RUSH_LIST_GROUPS_MAX; i++)
        cr_assert_leq(r[i].group_id & 0xffffff, RUSH_LIST_GROUPS_VISIT_MAX, "rank %u", i);
    for (uint32_t i = 1; i < RUSH_LIST_GROUPS_MAX; i++)
        cr_assert_lt(r[i - 1].group_id, r[i].group_id, "equal seats and deadlines: oldest first");
}

static struct rush_result join_invited(uint8_t op, uint64_t target, uint64_t user, uint64_t inviter,
                                       uint64_t key)
{
    struct rush_request join = request_of(op, op == RUSH_OP_GROUP_JOIN ? 0 : 1, user, 0,
                                          op == RUSH_OP_GROUP_JOIN ? target : 0, key);
    join.inviter_id = inviter;
    return decide_at(shard, T0_NS, join);
}

Test(group, an_inviter_is_logged_with_the_seat_and_paid_only_when_the_group_completes)
{
    put_at(shard, T0_NS, deal_sku(10)); /* groups of 2 */
    struct rush_result lead = join_invited(RUSH_OP_GROUP_JOIN_ANY, 0, 100, 900, 1);
    cr_assert_eq(lead.outcome, RUSH_OK, "join_any opened: its leader was invited by 900");
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_SEAT_INVITED), 1);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_INVITER_DUE), 0, "not before completion");
    struct rush_result seat = join_invited(RUSH_OP_GROUP_JOIN, lead.group_id, 101, 100, 2);
    cr_assert_eq(seat.state, RUSH_ORDER_CONFIRMED, "the group completed");
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_INVITER_DUE), 2);
    for (uint32_t i = 0; i < recorder.count; i++) {
        const struct rush_event *e = &recorder.events[i];
        if (e->type == RUSH_EV_SEAT_INVITED || e->type == RUSH_EV_INVITER_DUE)
            cr_assert_eq(e->user_id, e->order_id == lead.order_id ? 900 : 100, "%s",
                         rush_event_type_name(e->type));
        if (e->type == RUSH_EV_INVITER_DUE) {
            cr_assert_eq(e->amount, e->order_id == lead.order_id ? 0 : 60, "the seat's amount");
            cr_assert_eq(recorder.events[i - 1].type, RUSH_EV_ORDER_CONFIRMED, "after its seat");
            struct rush_stream_event published;
            rush_stream_event_from_log(&published, 7, i + 1, T0_NS, e);
            cr_assert_eq(published.user_id, e->user_id, "the stream names the inviter");
        }
    }
}

Test(group, a_failed_group_pays_no_inviter)
{
    put_at(shard, T0_NS, deal_sku(10));
    struct rush_result lead = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 100, 0);
    cr_assert_eq(lead.outcome, RUSH_OK);
    struct rush_sku trio = deal_sku(10);
    trio.id = 2;
    trio.group_size = 3;
    put_at(shard, T0_NS, trio);
    struct rush_result open = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 2, 100, 0);
    cr_assert_eq(join_invited(RUSH_OP_GROUP_JOIN, open.group_id, 101, 100, 3).outcome, RUSH_OK);
    rush_shard_begin(shard, T0_NS + 11 * 60 * SECOND);
    rush_shard_end(shard);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_GROUP_FAILED), 2);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_INVITER_DUE), 0);
}

Test(group, an_inviter_is_never_the_joiner_and_is_part_of_the_request)
{
    put_at(shard, T0_NS, deal_sku(10));
    struct rush_result self = join_invited(RUSH_OP_GROUP_JOIN_ANY, 0, 100, 100, 1);
    cr_assert_eq(self.outcome, RUSH_INVALID);
    cr_assert_eq(self.reason, RUSH_REASON_INVITER_SELF);
    struct rush_result lead = op_at(T0_NS, RUSH_OP_GROUP_OPEN, 1, 100, 0);
    self = join_invited(RUSH_OP_GROUP_JOIN, lead.group_id, 101, 101, 2);
    cr_assert_eq(self.reason, RUSH_REASON_INVITER_SELF);
    cr_assert_eq(rush_shard_ledger(shard, 1, &(struct rush_sku_ledger){0}), 0);
    struct rush_result first = join_invited(RUSH_OP_GROUP_JOIN, lead.group_id, 101, 555, 3);
    cr_assert_eq(first.outcome, RUSH_OK);
    struct rush_result retry = join_invited(RUSH_OP_GROUP_JOIN, lead.group_id, 101, 555, 3);
    cr_assert(retry.flags & RUSH_RESULT_DUPLICATE);
    struct rush_result other = join_invited(RUSH_OP_GROUP_JOIN, lead.group_id, 101, 556, 3);
    cr_assert_eq(other.reason, RUSH_REASON_KEY_REUSED, "another inviter is another request");
}
