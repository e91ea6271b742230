/*
 * The shard state machine, one rule at a time: every op and outcome of ARCHITECTURE.md
 * "Operations and outcomes", their boundaries, and hostile arguments. The model test drives long
 * random sequences; these pin down each rule by name.
 */
#include <criterion/criterion.h>

#include "rush/stream.h"
#include "support.h"

static struct recorder recorder;
static struct rush_shard *shard;

static void setup(void)
{
    recorder_init(&recorder, 1 << 16);
    shard = shard_new(small_limits(), 42, &recorder);
}

static void teardown(void)
{
    char why[256] = "";
    int rc = rush_shard_check(shard, why, sizeof(why));
    rush_shard_destroy(shard);
    recorder_free(&recorder);
    cr_assert_eq(rc, 0, "invariant broken: %s", why);
}

TestSuite(shard, .init = setup, .fini = teardown);

static struct rush_result reserve(uint64_t sku, uint64_t user, uint32_t qty, uint64_t key)
{
    return decide_at(shard, T0_NS, request_of(RUSH_OP_RESERVE, sku, user, qty, 0, key));
}

static struct rush_sku_ledger ledger(uint64_t sku)
{
    struct rush_sku_ledger l;
    cr_assert_eq(rush_shard_ledger(shard, sku, &l), 0);
    return l;
}

Test(shard, reserve_takes_stock_and_names_the_order)
{
    cr_assert_eq(put_at(shard, T0_NS, sku_solo(1, 10)).outcome, RUSH_OK);
    struct rush_result r = reserve(1, 7, 3, 1);
    cr_assert_eq(r.outcome, RUSH_OK);
    cr_assert_eq(r.remaining, 7);
    cr_assert_eq(r.qty, 3);
    cr_assert_neq(r.order_id, 0);
    struct rush_sku_ledger l = ledger(1);
    cr_assert_eq(l.available, 7);
    cr_assert_eq(l.reserved, 3);
    cr_assert_eq(rush_shard_user_held(shard, 1, 7), 3);
    struct rush_result q =
        decide_at(shard, T0_NS, request_of(RUSH_OP_QUERY_ORDER, 0, 0, 0, r.order_id, 0));
    cr_assert_eq(q.outcome, RUSH_OK);
    cr_assert_eq(q.state, RUSH_ORDER_RESERVED);
    cr_assert_eq(q.reserved, 7);  /* user */
    cr_assert_eq(q.confirmed, 1); /* sku */
}

Test(shard, no_oversell_the_last_unit_goes_to_exactly_one_buyer)
{
    put_at(shard, T0_NS, sku_solo(1, 2));
    cr_assert_eq(reserve(1, 1, 1, 1).outcome, RUSH_OK);
    cr_assert_eq(reserve(1, 2, 1, 2).outcome, RUSH_OK);
    struct rush_result r = reserve(1, 3, 1, 3);
    cr_assert_eq(r.outcome, RUSH_SOLD_OUT);
    cr_assert_eq(r.remaining, 0);
    cr_assert_eq(reserve(1, 4, 2, 4).outcome, RUSH_SOLD_OUT);
    cr_assert_eq(ledger(1).available, 0);
    cr_assert_eq(ledger(1).reserved, 2);
}

Test(shard, a_partial_quantity_that_does_not_fit_is_sold_out_and_takes_nothing)
{
    put_at(shard, T0_NS, sku_solo(1, 2));
    cr_assert_eq(reserve(1, 1, 3, 1).outcome, RUSH_SOLD_OUT);
    cr_assert_eq(ledger(1).available, 2);
}

Test(shard, a_repeated_key_returns_the_original_result_and_takes_nothing_more)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    struct rush_result first = reserve(1, 7, 2, 99);
    reserve(1, 8, 1, 100);
    struct rush_result again = reserve(1, 7, 2, 99);
    cr_assert_eq(again.flags & RUSH_RESULT_DUPLICATE, RUSH_RESULT_DUPLICATE);
    again.flags &= (uint8_t)~RUSH_RESULT_DUPLICATE;
    cr_assert_eq(memcmp(&first, &again, sizeof(first)), 0, "a retry answers the same bytes");
    cr_assert_eq(ledger(1).available, 7);
    cr_assert_eq(rush_shard_user_held(shard, 1, 7), 2);
}

Test(shard, a_rejection_is_not_remembered_and_its_retry_is_decided_afresh)
{
    put_at(shard, T0_NS, sku_solo(1, 1));
    reserve(1, 1, 1, 1);
    cr_assert_eq(reserve(1, 2, 1, 2).outcome, RUSH_SOLD_OUT);
    /* Stock comes back: sold_out changed nothing and took no key, so the retry is a new click. */
    cr_assert_eq(decide_at(shard, T0_NS,
                           (struct rush_request){
                               .op = RUSH_OP_ADJUST, .sku_id = 1, .amount = 5, .key = key_of(3)})
                     .outcome,
                 RUSH_OK);
    struct rush_result again = reserve(1, 2, 1, 2);
    cr_assert_eq(again.outcome, RUSH_OK);
    cr_assert_not(again.flags & RUSH_RESULT_DUPLICATE);
    struct rush_result third = reserve(1, 2, 1, 2);
    cr_assert_eq(third.outcome, RUSH_OK);
    cr_assert(third.flags & RUSH_RESULT_DUPLICATE, "the ok is remembered: one order per key");
    cr_assert_eq(third.order_id, again.order_id);
    cr_assert_eq(ledger(1).reserved, 2);
}

Test(shard, the_same_key_on_a_different_request_is_invalid)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    reserve(1, 7, 1, 5);
    struct rush_result r = reserve(1, 7, 2, 5);
    cr_assert_eq(r.outcome, RUSH_INVALID);
    cr_assert_eq(r.reason, RUSH_REASON_KEY_REUSED);
    r = decide_at(shard, T0_NS, request_of(RUSH_OP_CANCEL, 0, 0, 0, 12345, 5));
    cr_assert_eq(r.reason, RUSH_REASON_KEY_REUSED);
    cr_assert_eq(ledger(1).reserved, 1);
}

Test(shard, the_tag_is_echoed_and_does_not_count_for_the_key)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    struct rush_request request = request_of(RUSH_OP_RESERVE, 1, 7, 1, 0, 5);
    request.tag = 111;
    cr_assert_eq(decide_at(shard, T0_NS, request).tag, 111);
    request.tag = 222;
    struct rush_result again = decide_at(shard, T0_NS, request);
    cr_assert_eq(again.tag, 222);
    cr_assert(again.flags & RUSH_RESULT_DUPLICATE);
}

Test(shard, per_user_and_per_order_limits)
{
    struct rush_sku sku = sku_solo(1, 100);
    sku.order_qty_max = 2;
    sku.user_qty_max = 3;
    put_at(shard, T0_NS, sku);
    cr_assert_eq(reserve(1, 7, 3, 1).outcome, RUSH_LIMIT_EXCEEDED);
    cr_assert_eq(reserve(1, 7, 2, 2).outcome, RUSH_OK);
    cr_assert_eq(reserve(1, 7, 2, 3).outcome, RUSH_LIMIT_EXCEEDED);
    cr_assert_eq(reserve(1, 7, 1, 4).outcome, RUSH_OK);
    cr_assert_eq(reserve(1, 7, 1, 5).outcome, RUSH_LIMIT_EXCEEDED);
    cr_assert_eq(reserve(1, 8, 2, 6).outcome, RUSH_OK, "limits are per user");
    cr_assert_eq(ledger(1).reserved, 5);
}

Test(shard, before_the_window_costs_nothing_and_is_not_remembered)
{
    struct rush_sku sku = sku_solo(1, 10);
    sku.start_ns = T0_NS + SECOND;
    sku.end_ns = T0_NS + 2 * SECOND;
    put_at(shard, T0_NS, sku);
    uint32_t events_before = recorder.count;
    struct rush_result early = reserve(1, 7, 1, 1);
    cr_assert_eq(early.outcome, RUSH_NOT_STARTED);
    cr_assert_eq(recorder.count, events_before, "nothing logged before the start");
    cr_assert_eq(ledger(1).available, 10);
    struct rush_result at_start =
        decide_at(shard, T0_NS + SECOND, request_of(RUSH_OP_RESERVE, 1, 7, 1, 0, 1));
    cr_assert_eq(at_start.outcome, RUSH_OK, "the same key is decided afresh once open");
    cr_assert_eq(
        decide_at(shard, T0_NS + 2 * SECOND, request_of(RUSH_OP_RESERVE, 1, 8, 1, 0, 2)).outcome,
        RUSH_ENDED);
}

Test(shard, pause_and_resume)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    cr_assert_eq(decide_at(shard, T0_NS, request_of(RUSH_OP_PAUSE, 1, 0, 0, 0, 1)).outcome,
                 RUSH_OK);
    cr_assert_eq(reserve(1, 7, 1, 2).outcome, RUSH_PAUSED);
    cr_assert(ledger(1).paused);
    cr_assert_eq(decide_at(shard, T0_NS, request_of(RUSH_OP_RESUME, 1, 0, 0, 0, 3)).outcome,
                 RUSH_OK);
    cr_assert_eq(reserve(1, 7, 1, 4).outcome, RUSH_OK);
}

Test(shard, unknown_things_are_named)
{
    cr_assert_eq(reserve(5, 7, 1, 1).outcome, RUSH_UNKNOWN_SKU);
    cr_assert_eq(decide_at(shard, T0_NS, request_of(RUSH_OP_CONFIRM, 0, 0, 0, 77, 2)).outcome,
                 RUSH_UNKNOWN_ORDER);
    cr_assert_eq(
        decide_at(shard, T0_NS, request_of(RUSH_OP_GROUP_JOIN, 0, 1, 0, RUSH_ID_GROUP_BIT | 3, 3))
            .outcome,
        RUSH_UNKNOWN_GROUP);
    uint64_t other_shard = (UINT64_C(5) << RUSH_ID_SHARD_SHIFT) | 1;
    cr_assert_eq(
        decide_at(shard, T0_NS, request_of(RUSH_OP_QUERY_ORDER, 0, 0, 0, other_shard, 0)).outcome,
        RUSH_UNKNOWN_ORDER);
}

Test(shard, hostile_requests_are_invalid_and_change_nothing)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    uint32_t events_before = recorder.count;
    struct rush_request bad[] = {
        {.op = 0, .sku_id = 1, .qty = 1, .key = key_of(1)},
        {.op = 200, .sku_id = 1, .qty = 1, .key = key_of(2)},
        {.op = RUSH_OP_COUNT_, .sku_id = 1, .qty = 1, .key = key_of(3)},
        {.op = RUSH_OP_RESERVE, .sku_id = 1, .user_id = 1, .qty = 0, .key = key_of(4)},
        {.op = RUSH_OP_RESERVE, .sku_id = 1, .user_id = 1, .qty = UINT32_MAX, .key = key_of(5)},
        {.op = RUSH_OP_RESERVE, .sku_id = 1, .user_id = 1, .qty = 1}, /* no key */
        {.op = RUSH_OP_ADJUST, .sku_id = 1, .amount = INT64_MIN, .key = key_of(6)},
        {.op = RUSH_OP_ADJUST, .sku_id = 1, .amount = INT64_MAX, .key = key_of(7)},
        {.op = RUSH_OP_ADJUST, .sku_id = 1, .amount = 0, .key = key_of(8)},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rush_result r = decide_at(shard, T0_NS, bad[i]);
        cr_assert_eq(r.outcome, RUSH_INVALID, "request %zu", i);
        cr_assert_neq(r.reason, RUSH_REASON_NONE, "request %zu names its reason", i);
    }
    cr_assert_eq(recorder.count, events_before);
    cr_assert_eq(ledger(1).available, 10);
}

Test(shard, pay_ttl_zero_makes_the_reservation_the_order)
{
    struct rush_sku sku = sku_solo(1, 10);
    sku.pay_ttl_ns = 0;
    put_at(shard, T0_NS, sku);
    struct rush_result r = reserve(1, 7, 1, 1);
    cr_assert_eq(r.outcome, RUSH_OK);
    cr_assert_eq(ledger(1).confirmed, 1);
    cr_assert_eq(ledger(1).reserved, 0);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ORDER_CONFIRMED), 1);
}

Test(shard, confirm_before_the_ttl_wins_and_the_timer_then_does_nothing)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    struct rush_result r = reserve(1, 7, 2, 1);
    int64_t ttl = 15 * 60 * SECOND;
    struct rush_result c =
        decide_at(shard, T0_NS + ttl - MS, request_of(RUSH_OP_CONFIRM, 0, 0, 0, r.order_id, 2));
    cr_assert_eq(c.outcome, RUSH_OK);
    rush_shard_begin(shard, T0_NS + 2 * ttl);
    rush_shard_end(shard);
    cr_assert_eq(ledger(1).confirmed, 2);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ORDER_EXPIRED), 0);
}

Test(shard, a_second_payment_is_refunded_not_lost)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    struct rush_result r = reserve(1, 7, 2, 1);
    struct rush_request first = request_of(RUSH_OP_CONFIRM, 0, 0, 0, r.order_id, 2);
    cr_assert_eq(decide_at(shard, T0_NS + MS, first).outcome, RUSH_OK);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_REFUND_DUE), 0);
    struct rush_request second = request_of(RUSH_OP_CONFIRM, 0, 0, 0, r.order_id, 3);
    struct rush_result answer = decide_at(shard, T0_NS + 2 * MS, second);
    cr_assert_eq(answer.outcome, RUSH_EXPIRED, "the second payment does not buy anything");
    cr_assert_eq(answer.state, RUSH_ORDER_CONFIRMED, "and the order stays confirmed");
    cr_assert_eq(answer.order_id, r.order_id);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_REFUND_DUE), 1);
    const struct rush_event *refund = &recorder.events[recorder.count - 1];
    cr_assert_eq(refund->type, RUSH_EV_REFUND_DUE);
    cr_assert_eq(refund->op, RUSH_OP_CONFIRM);
    cr_assert_eq(refund->order_id, r.order_id);
    cr_assert_eq(refund->user_id, 7);
    cr_assert_eq(refund->qty, 2);
    cr_assert_eq(refund->amount, 200);
    cr_assert(rush_stream_carries(refund->type), "the refund is published");
    cr_assert_eq(ledger(1).confirmed, 2, "not a second order");
    /* The same payment resent is a retry: one payment, one refund. */
    struct rush_result again = decide_at(shard, T0_NS + 3 * MS, second);
    cr_assert(again.flags & RUSH_RESULT_DUPLICATE);
    cr_assert_eq(again.outcome, RUSH_EXPIRED);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_REFUND_DUE), 1);
    /* A third payment with its own key is refunded too. */
    decide_at(shard, T0_NS + 4 * MS, request_of(RUSH_OP_CONFIRM, 0, 0, 0, r.order_id, 4));
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_REFUND_DUE), 2);
}

Test(shard, the_payment_fence_a_late_confirm_is_expired_with_a_refund)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    struct rush_result r = reserve(1, 7, 2, 1);
    int64_t ttl = 15 * 60 * SECOND;
    /* Within the deadline's tick the order still holds: timers never fire early. */
    struct rush_result q =
        decide_at(shard, T0_NS + ttl, request_of(RUSH_OP_QUERY_ORDER, 0, 0, 0, r.order_id, 0));
    cr_assert_eq(q.state, RUSH_ORDER_RESERVED);
    struct rush_result late =
        decide_at(shard, T0_NS + ttl + 2 * MS, request_of(RUSH_OP_CONFIRM, 0, 0, 0, r.order_id, 2));
    cr_assert_eq(late.outcome, RUSH_EXPIRED);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ORDER_EXPIRED), 1);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_REFUND_DUE), 1);
    cr_assert_eq(ledger(1).available, 10, "the stock came back");
    cr_assert_eq(rush_shard_user_held(shard, 1, 7), 0);
    struct rush_result again =
        decide_at(shard, T0_NS + ttl + 3 * MS, request_of(RUSH_OP_CONFIRM, 0, 0, 0, r.order_id, 2));
    cr_assert_eq(again.outcome, RUSH_EXPIRED);
    cr_assert(again.flags & RUSH_RESULT_DUPLICATE);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_REFUND_DUE), 1, "refund once");
}

Test(shard, cancel_returns_stock_and_the_users_limit)
{
    put_at(shard, T0_NS, sku_solo(1, 3));
    struct rush_result r = reserve(1, 7, 3, 1);
    cr_assert_eq(reserve(1, 8, 1, 2).outcome, RUSH_SOLD_OUT);
    cr_assert_eq(
        decide_at(shard, T0_NS, request_of(RUSH_OP_CANCEL, 0, 0, 0, r.order_id, 3)).outcome,
        RUSH_OK);
    cr_assert_eq(ledger(1).available, 3);
    cr_assert_eq(rush_shard_user_held(shard, 1, 7), 0);
    cr_assert_eq(decide_at(shard, T0_NS, request_of(RUSH_OP_CANCEL, 0, 0, 0, r.order_id, 4)).reason,
                 RUSH_REASON_ORDER_STATE);
    cr_assert_eq(reserve(1, 8, 1, 5).outcome, RUSH_OK);
}

Test(shard, adjust_never_goes_below_what_is_held)
{
    put_at(shard, T0_NS, sku_solo(1, 5));
    reserve(1, 7, 3, 1);
    struct rush_request adjust = {.op = RUSH_OP_ADJUST, .sku_id = 1, .amount = -3};
    adjust.key = key_of(2);
    cr_assert_eq(decide_at(shard, T0_NS, adjust).reason, RUSH_REASON_BELOW_RESERVED);
    adjust.amount = -2;
    adjust.key = key_of(3);
    cr_assert_eq(decide_at(shard, T0_NS, adjust).outcome, RUSH_OK);
    struct rush_sku_ledger l = ledger(1);
    cr_assert_eq(l.stock_total, 3);
    cr_assert_eq(l.available, 0);
    adjust.amount = 10;
    adjust.key = key_of(4);
    cr_assert_eq(decide_at(shard, T0_NS, adjust).remaining, 10);
}

/* An adjust cannot take the total above RUSH_STOCK_MAX, which no put may set either. */
Test(shard, adjust_stays_within_what_a_put_allows)
{
    put_at(shard, T0_NS, sku_solo(1, 5));
    struct rush_request adjust = {
        .op = RUSH_OP_ADJUST, .sku_id = 1, .amount = RUSH_STOCK_MAX - 4, .key = key_of(2)};
    cr_assert_eq(decide_at(shard, T0_NS, adjust).reason, RUSH_REASON_QTY);
    cr_assert_eq(ledger(1).stock_total, 5);
    adjust.amount = RUSH_STOCK_MAX - 5;
    adjust.key = key_of(3);
    cr_assert_eq(decide_at(shard, T0_NS, adjust).outcome, RUSH_OK);
    cr_assert_eq(ledger(1).stock_total, RUSH_STOCK_MAX);
    adjust.amount = 1;
    adjust.key = key_of(4);
    cr_assert_eq(decide_at(shard, T0_NS, adjust).reason, RUSH_REASON_QTY);
}

Test(shard, unlimited_stock_is_a_flag_not_a_number)
{
    struct rush_sku sku = sku_solo(1, 0);
    sku.unlimited = 1;
    sku.user_qty_max = 1000;
    sku.order_qty_max = 1000;
    put_at(shard, T0_NS, sku);
    struct rush_result r = reserve(1, 7, 1000, 1);
    cr_assert_eq(r.outcome, RUSH_OK);
    cr_assert(r.flags & RUSH_RESULT_UNLIMITED);
    struct rush_request adjust = {.op = RUSH_OP_ADJUST, .sku_id = 1, .amount = 5, .key = key_of(2)};
    cr_assert_eq(decide_at(shard, T0_NS, adjust).reason, RUSH_REASON_UNLIMITED);
}

Test(shard, sku_put_validates_and_redefines_without_dropping_holds)
{
    struct rush_sku bad = sku_solo(0, 5);
    cr_assert_eq(put_at(shard, T0_NS, bad).reason, RUSH_REASON_SKU_DEF);
    bad = sku_solo(2, -1);
    cr_assert_eq(put_at(shard, T0_NS, bad).reason, RUSH_REASON_SKU_DEF);
    bad = sku_group(3, 5, 1);
    cr_assert_eq(put_at(shard, T0_NS, bad).reason, RUSH_REASON_SKU_DEF);
    bad = sku_group(3, 5, RUSH_GROUP_SIZE_MAX + 1);
    cr_assert_eq(put_at(shard, T0_NS, bad).reason, RUSH_REASON_SKU_DEF);
    bad = sku_solo(4, 5);
    bad.end_ns = bad.start_ns;
    cr_assert_eq(put_at(shard, T0_NS, bad).reason, RUSH_REASON_SKU_DEF);

    put_at(shard, T0_NS, sku_solo(1, 5));
    reserve(1, 7, 4, 1);
    cr_assert_eq(put_at(shard, T0_NS, sku_solo(1, 3)).reason, RUSH_REASON_BELOW_RESERVED);
    struct rush_sku more = sku_solo(1, 8);
    more.price_fen = 1;
    cr_assert_eq(put_at(shard, T0_NS, more).outcome, RUSH_OK);
    struct rush_sku_ledger l = ledger(1);
    cr_assert_eq(l.stock_total, 8);
    cr_assert_eq(l.available, 4);
    cr_assert_eq(l.reserved, 4);
}

Test(shard, full_tables_answer_busy_to_reservations_only)
{
    rush_shard_destroy(shard);
    struct rush_shard_limits limits = small_limits();
    limits.orders_max = 2;
    limits.keys_max = 4;
    shard = shard_new(limits, 1, &recorder);
    put_at(shard, T0_NS, sku_solo(1, 10));
    cr_assert_eq(reserve(1, 1, 1, 1).outcome, RUSH_OK);
    cr_assert_eq(reserve(1, 2, 1, 2).outcome, RUSH_OK);
    struct rush_result busy = reserve(1, 3, 1, 3);
    cr_assert_eq(busy.outcome, RUSH_BUSY, "no room for a third order");
    cr_assert_eq(ledger(1).available, 8);
    /* Admin ops use the ring kept out of reach of reservations: never busy. */
    for (uint64_t k = 4; k < 10; k++)
        cr_assert_eq(decide_at(shard, T0_NS,
                               request_of(k % 2 ? RUSH_OP_RESUME : RUSH_OP_PAUSE, 1, 0, 0, 0, k))
                         .outcome,
                     RUSH_OK);
    cr_assert_not(ledger(1).paused);
    cr_assert_eq(reserve(1, 1, 1, 1).flags & RUSH_RESULT_DUPLICATE, RUSH_RESULT_DUPLICATE,
                 "known keys still answer when the table is full");
}

/* The last event of `type` the sink saw. */
static const struct rush_event *last_of(uint8_t type)
{
    for (uint32_t i = recorder.count; i > 0; i--)
        if (recorder.events[i - 1].type == type)
            return &recorder.events[i - 1];
    cr_assert_fail("no %s event", rush_event_type_name(type));
    return NULL;
}

static struct rush_result decide_op(int64_t now, uint8_t op, uint64_t target, uint64_t key)
{
    return decide_at(shard, now, request_of(op, 0, 0, 0, target, key));
}

Test(shard, money_follows_the_order_not_the_current_price)
{
    put_at(shard, T0_NS, sku_solo(1, 20)); /* 100 fen a unit */
    uint64_t paid = reserve(1, 7, 2, 1).order_id;
    uint64_t cancelled = reserve(1, 8, 1, 2).order_id;
    uint64_t expiring = reserve(1, 9, 3, 3).order_id;
    cr_assert_eq(last_of(RUSH_EV_ORDER_RESERVED)->amount, 300);
    struct rush_sku dearer = sku_solo(1, 20);
    dearer.price_fen = 5000;
    cr_assert_eq(put_at(shard, T0_NS + MS, dearer).outcome, RUSH_OK);

    cr_assert_eq(decide_op(T0_NS + 2 * MS, RUSH_OP_CONFIRM, paid, 4).outcome, RUSH_OK);
    cr_assert_eq(last_of(RUSH_EV_ORDER_CONFIRMED)->amount, 200, "confirmed at 100 a unit");
    cr_assert_eq(decide_op(T0_NS + 2 * MS, RUSH_OP_CANCEL, cancelled, 5).outcome, RUSH_OK);
    cr_assert_eq(last_of(RUSH_EV_ORDER_RELEASED)->amount, 100, "released at 100");
    int64_t ttl = 15 * 60 * SECOND;
    struct rush_result late = decide_op(T0_NS + ttl + 5 * MS, RUSH_OP_CONFIRM, expiring, 6);
    cr_assert_eq(late.outcome, RUSH_EXPIRED);
    const struct rush_event *expired = last_of(RUSH_EV_ORDER_EXPIRED);
    cr_assert_eq(expired->order_id, expiring);
    cr_assert_eq(expired->amount, 300, "expired at 100 a unit");
    const struct rush_event *refund = last_of(RUSH_EV_REFUND_DUE);
    cr_assert_eq(refund->amount, 300, "the refund is what was paid, not 3 x 5000");
    struct rush_stream_event published;
    rush_stream_event_from_log(&published, 0, 1, T0_NS, refund);
    cr_assert_eq(published.price_fen, 100, "the stream's unit price is the order's");

    uint64_t fresh = reserve(1, 10, 1, 7).order_id;
    cr_assert_neq(fresh, 0);
    cr_assert_eq(last_of(RUSH_EV_ORDER_RESERVED)->amount, 5000, "a new order pays the new price");
}

Test(shard, a_confirm_a_fraction_of_a_tick_after_the_deadline_is_expired_with_a_refund)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    int64_t ttl = 15 * 60 * SECOND;
    int64_t at = T0_NS + 100000; /* 0.1 ms: the deadline falls inside a tick */
    uint64_t late = decide_at(shard, at, request_of(RUSH_OP_RESERVE, 1, 7, 2, 0, 1)).order_id;
    uint64_t on_time = decide_at(shard, at, request_of(RUSH_OP_RESERVE, 1, 8, 1, 0, 2)).order_id;
    uint64_t at_deadline =
        decide_at(shard, at, request_of(RUSH_OP_RESERVE, 1, 9, 1, 0, 3)).order_id;
    int64_t deadline = at + ttl;
    cr_assert_eq(decide_op(deadline - 1, RUSH_OP_CONFIRM, on_time, 4).outcome, RUSH_OK,
                 "a nanosecond before the deadline is in time");
    cr_assert_eq(decide_op(deadline, RUSH_OP_CONFIRM, at_deadline, 5).outcome, RUSH_EXPIRED,
                 "the deadline's own nanosecond is late");
    uint32_t expired_before = recorder_count_type(&recorder, RUSH_EV_ORDER_EXPIRED);
    struct rush_result r = decide_op(deadline + 850000, RUSH_OP_CONFIRM, late, 6);
    cr_assert_eq(r.outcome, RUSH_EXPIRED, "0.85 ms late, within the deadline's tick");
    cr_assert_eq(r.state, RUSH_ORDER_EXPIRED);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ORDER_EXPIRED), expired_before + 1);
    const struct rush_event *expiry = &recorder.events[recorder.count - 2];
    const struct rush_event *refund = &recorder.events[recorder.count - 1];
    cr_assert_eq(expiry->type, RUSH_EV_ORDER_EXPIRED);
    cr_assert_eq(expiry->op, RUSH_OP_NONE, "the deadline decided the expiry");
    cr_assert_eq(expiry->order_id, late);
    cr_assert_eq(refund->type, RUSH_EV_REFUND_DUE);
    cr_assert_eq(refund->op, RUSH_OP_CONFIRM);
    cr_assert_eq(refund->amount, 200);
    cr_assert_eq(ledger(1).confirmed, 1);
    cr_assert_eq(ledger(1).reserved, 0);
    cr_assert_eq(ledger(1).available, 9);
    /* The timer, when its tick passes, finds nothing left to do. */
    uint32_t events_before = recorder.count;
    rush_shard_begin(shard, deadline + 5 * MS);
    rush_shard_end(shard);
    cr_assert_eq(recorder.count, events_before);
}

Test(shard, a_cancel_after_the_deadline_finds_the_hold_expired)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    int64_t at = T0_NS + 300000;
    uint64_t order = decide_at(shard, at, request_of(RUSH_OP_RESERVE, 1, 7, 2, 0, 1)).order_id;
    int64_t deadline = at + 15 * 60 * SECOND;
    struct rush_result r = decide_op(deadline + 500000, RUSH_OP_CANCEL, order, 2);
    cr_assert_eq(r.outcome, RUSH_INVALID);
    cr_assert_eq(r.reason, RUSH_REASON_ORDER_STATE);
    cr_assert_eq(last_of(RUSH_EV_ORDER_EXPIRED)->order_id, order);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ORDER_RELEASED), 0);
    cr_assert_eq(ledger(1).available, 10);
}

Test(shard, a_decision_names_the_state_it_left_its_order_in)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    struct rush_sku now = sku_solo(2, 10);
    now.pay_ttl_ns = 0;
    put_at(shard, T0_NS, now);
    struct rush_result held = reserve(1, 7, 1, 1);
    cr_assert_eq(held.state, RUSH_ORDER_RESERVED);
    cr_assert_eq(reserve(2, 7, 1, 2).state, RUSH_ORDER_CONFIRMED, "no pay TTL: confirmed at once");
    cr_assert_eq(decide_op(T0_NS, RUSH_OP_CONFIRM, held.order_id, 3).state, RUSH_ORDER_CONFIRMED);
    struct rush_result retried = reserve(1, 7, 1, 1);
    cr_assert(retried.flags & RUSH_RESULT_DUPLICATE);
    cr_assert_eq(retried.state, RUSH_ORDER_RESERVED, "a retry answers the original bytes");
    uint64_t other = reserve(1, 8, 1, 4).order_id;
    cr_assert_eq(decide_op(T0_NS, RUSH_OP_CANCEL, other, 5).state, RUSH_ORDER_RELEASED);
    cr_assert_eq(reserve(1, 9, 9, 6).state, RUSH_ORDER_NONE, "no order, no state");
}

/* Admin actions with their audits (as the engine decides them for the admin endpoint). */
static void audited_actions(struct rush_shard *s, bool audited)
{
    struct rush_audit audit = {.operator_name = "alice", .reason = "fix price"};
    struct rush_request actions[] = {
        request_of(RUSH_OP_PAUSE, 1, 0, 0, 0, 1), request_of(RUSH_OP_ADJUST, 1, 0, 0, 0, 2),
        request_of(RUSH_OP_RESUME, 1, 0, 0, 0, 3), request_of(RUSH_OP_ADJUST, 1, 0, 0, 0, 4)};
    actions[1].amount = 5;
    actions[3].amount = -1000; /* refused (below what is held): audited all the same */
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        struct rush_result result;
        rush_shard_begin(s, T0_NS + (int64_t)i);
        rush_shard_decide(s, &actions[i], &result);
        if (audited)
            rush_shard_audit(s, actions[i].op, actions[i].sku_id, actions[i].amount, &result,
                             &audit);
        rush_shard_end(s);
    }
    struct rush_sku redefined = sku_solo(1, 10);
    redefined.price_fen = 777;
    struct rush_result result;
    rush_shard_begin(s, T0_NS + 10);
    rush_shard_sku_put(s, &redefined, &result);
    if (audited)
        rush_shard_audit(s, RUSH_OP_NONE, redefined.id, 0, &result, &audit);
    rush_shard_end(s);
}

Test(shard, an_audit_follows_its_action_changes_nothing_and_replays_to_the_same_digest)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    audited_actions(shard, true);
    /* each action is followed by its ADMIN_AUDIT and the parts of who and why */
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ADMIN_AUDIT), 5);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_AUDIT_PART), 5 * RUSH_AUDIT_PARTS);
    uint32_t audits = 0;
    for (uint32_t i = 0; i < recorder.count && audits < 5; i++) {
        const struct rush_event *e = &recorder.events[i];
        if (e->type != RUSH_EV_ADMIN_AUDIT)
            continue;
        cr_assert_eq(e->sku_id, 1);
        cr_assert_eq(e->outcome, audits == 3 ? RUSH_INVALID : RUSH_OK, "audit %u", audits);
        static const uint8_t ops[] = {RUSH_OP_PAUSE, RUSH_OP_ADJUST, RUSH_OP_RESUME, RUSH_OP_ADJUST,
                                      RUSH_OP_NONE};
        static const int64_t amounts[] = {0, 5, 0, -1000, 0};
        cr_assert_eq(e->op, ops[audits]);
        cr_assert_eq(e->amount, amounts[audits]);
        struct rush_audit text;
        uint8_t bytes[RUSH_AUDIT_PARTS * RUSH_AUDIT_PART_BYTES];
        for (uint32_t p = 0; p < RUSH_AUDIT_PARTS; p++) {
            cr_assert_eq(e[1 + p].type, RUSH_EV_AUDIT_PART);
            cr_assert_eq(e[1 + p].qty, p);
            memcpy(bytes + p * RUSH_AUDIT_PART_BYTES, e[1 + p].payload, RUSH_AUDIT_PART_BYTES);
        }
        memcpy(&text, bytes, sizeof(text));
        cr_assert_str_eq(text.operator_name, "alice");
        cr_assert_str_eq(text.reason, "fix price");
        audits++;
    }
    /* the same actions without audits leave the same state */
    struct rush_shard *plain = shard_new(small_limits(), 43, NULL);
    put_at(plain, T0_NS, sku_solo(1, 10));
    audited_actions(plain, false);
    cr_assert_eq(rush_shard_digest(plain), rush_shard_digest(shard));
    rush_shard_destroy(plain);
    /* replaying the log, audits and all, rebuilds the same state */
    struct rush_shard *replayed = shard_new(small_limits(), 44, NULL);
    for (uint32_t i = 0; i < recorder.count; i++)
        rush_shard_apply(replayed, recorder.times[i], &recorder.events[i]);
    char why[256] = "";
    cr_assert_eq(rush_shard_check(replayed, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(rush_shard_digest(replayed), rush_shard_digest(shard));
    rush_shard_destroy(replayed);
}

/*
 * The pipelined batch (rush_shard_decide_batch: lookups prefetched and hashed requests ahead)
 * decides exactly as one request at a time: same results, same events, same digest, over a
 * seeded mix of every mutating op, retries, reused keys, queries and hostile requests across
 * SKUs of both kinds, in batches of random sizes.
 */
static uint64_t mix_next(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static struct rush_request mixed_request(uint64_t *state, uint32_t i)
{
    static const uint8_t ops[] = {RUSH_OP_RESERVE,        RUSH_OP_RESERVE,    RUSH_OP_CONFIRM,
                                  RUSH_OP_CANCEL,         RUSH_OP_GROUP_OPEN, RUSH_OP_GROUP_JOIN,
                                  RUSH_OP_GROUP_JOIN_ANY, RUSH_OP_QUERY_SKU,  RUSH_OP_QUERY_ORDER,
                                  RUSH_OP_ADJUST,         RUSH_OP_COUNT_,     RUSH_OP_RESERVE};
    uint64_t r = mix_next(state);
    uint8_t op = ops[r % sizeof(ops)];
    uint64_t sku = 1 + (r >> 8) % 10; /* 1..8 exist: 1..5 solo, 6..8 groups; 9, 10 unknown */
    uint64_t user = 1 + (r >> 16) % 300;
    uint64_t key = (r >> 24) % 8 == 0 ? 1 + (r >> 32) % (i + 1) : 1000000 + i; /* some retries */
    uint64_t target = 1 + (r >> 40) % 400;
    if (op == RUSH_OP_GROUP_JOIN)
        target |= RUSH_ID_GROUP_BIT;
    struct rush_request request = request_of(op, sku, user, 1 + (r >> 48) % 3, target, key);
    if (op == RUSH_OP_ADJUST)
        request.amount = (int64_t)((r >> 50) % 5) - 2;
    if ((r >> 56) % 16 == 0)
        memset(&request.key, 0, sizeof(request.key)); /* missing key */
    return request;
}

static void put_mixed_skus(struct rush_shard *s)
{
    for (uint64_t id = 1; id <= 8; id++) {
        struct rush_sku sku = id <= 5 ? sku_solo(id, id == 1 ? 20 : 500) : sku_group(id, 400, 3);
        cr_assert_eq(put_at(s, T0_NS, sku).outcome, RUSH_OK);
    }
}

/* One pass at `now` on each shard: `shard` decides the requests as a pipelined batch, `single`
 * one request at a time. */
static void decide_both(struct rush_shard *single, int64_t now, const struct rush_request *requests,
                        uint32_t count, struct rush_result *batched, struct rush_result *alone)
{
    rush_shard_begin(shard, now);
    rush_shard_decide_batch(shard, requests, count, batched);
    rush_shard_end(shard);
    rush_shard_begin(single, now);
    for (uint32_t i = 0; i < count; i++)
        rush_shard_decide(single, &requests[i], &alone[i]);
    rush_shard_end(single);
}

/* The twins logged the same events and reached the same state; frees what the test made. */
static void twins_agree_then_free(struct rush_shard *single, struct recorder *other,
                                  struct rush_request *requests, struct rush_result *batched,
                                  struct rush_result *alone)
{
    cr_assert_eq(recorder.count, other->count);
    cr_assert(memcmp(recorder.events, other->events, sizeof(*other->events) * other->count) == 0);
    cr_assert_eq(rush_shard_digest(shard), rush_shard_digest(single));
    rush_shard_destroy(single);
    recorder_free(other);
    free(requests);
    free(batched);
    free(alone);
}

Test(shard, a_pipelined_batch_decides_exactly_as_one_request_at_a_time)
{
    enum { COUNT = 6000 };
    struct recorder other;
    recorder_init(&other, 1 << 16);
    struct rush_shard *single = shard_new(small_limits(), 42, &other);
    put_mixed_skus(shard);
    put_mixed_skus(single);
    uint64_t state = 0x9e3779b97f4a7c15;
    struct rush_request *requests = calloc(COUNT, sizeof(*requests));
    struct rush_result *batched = calloc(COUNT, sizeof(*batched));
    struct rush_result *alone = calloc(COUNT, sizeof(*alone));
    for (uint32_t i = 0; i < COUNT; i++)
        requests[i] = mixed_request(&state, i);
    int64_t now = T0_NS;
    for (uint32_t done = 0, size; done < COUNT; done += size) {
        size = 1 + (uint32_t)(mix_next(&state) % 120);
        size = size < COUNT - done ? size : COUNT - done;
        now += (int64_t)(mix_next(&state) % (2 * 60)) * SECOND;
        decide_both(single, now, &requests[done], size, &batched[done], &alone[done]);
    }
    uint32_t ok = 0;
    for (uint32_t i = 0; i < COUNT; i++) {
        cr_assert(memcmp(&batched[i], &alone[i], sizeof(alone[i])) == 0, "request %u differs", i);
        ok += alone[i].outcome == RUSH_OK;
    }
    cr_assert_gt(ok, COUNT / 10, "the mix decides real work (%u ok)", ok);
    twins_agree_then_free(single, &other, requests, batched, alone);
}

/*
 * SKU ids that share one place in the shard's direct-mapped SKU memo (shard_internal.h,
 * sku_memo_of: the top 12 bits of id x 0x9E3779B97F4A7C15) evict each other on every request of
 * a pipelined batch, and between a stage's look and the decision: each request still reaches its
 * own SKU, and the batch decides as one request at a time does.
 */
Test(shard, skus_that_share_a_memo_place_are_told_apart)
{
    enum { SKUS = 24, COUNT = 1200 };
    uint64_t ids[SKUS];
    uint64_t place = (UINT64_C(1000) * UINT64_C(0x9E3779B97F4A7C15)) >> 52;
    for (uint64_t id = 1000, found = 0; found < SKUS; id++) /* about 4096 ids per find */
        if (((id * UINT64_C(0x9E3779B97F4A7C15)) >> 52) == place)
            ids[found++] = id;
    struct recorder other;
    recorder_init(&other, 1 << 16);
    struct rush_shard *single = shard_new(small_limits(), 42, &other);
    for (uint32_t k = 0; k < SKUS; k++) {
        cr_assert_eq(put_at(shard, T0_NS, sku_solo(ids[k], 1000)).outcome, RUSH_OK);
        cr_assert_eq(put_at(single, T0_NS, sku_solo(ids[k], 1000)).outcome, RUSH_OK);
    }
    uint64_t state = 0x2545f4914f6cdd1d;
    struct rush_request *requests = calloc(COUNT, sizeof(*requests));
    struct rush_result *batched = calloc(COUNT, sizeof(*batched));
    struct rush_result *alone = calloc(COUNT, sizeof(*alone));
    for (uint32_t i = 0; i < COUNT; i++) {
        uint64_t r = mix_next(&state);
        uint8_t op = r % 5 == 0 ? RUSH_OP_QUERY_SKU : RUSH_OP_RESERVE;
        requests[i] = request_of(op, ids[(r >> 8) % SKUS], 1 + (r >> 16) % 500, 1, 0, 1 + i);
    }
    decide_both(single, T0_NS, requests, COUNT, batched, alone);
    uint64_t reserved = 0;
    for (uint32_t i = 0; i < COUNT; i++) {
        cr_assert(memcmp(&batched[i], &alone[i], sizeof(alone[i])) == 0, "request %u differs", i);
        cr_assert_neq(alone[i].outcome, RUSH_UNKNOWN_SKU, "request %u lost its SKU", i);
        reserved += requests[i].op == RUSH_OP_RESERVE && alone[i].outcome == RUSH_OK;
    }
    uint64_t held = 0;
    for (uint32_t k = 0; k < SKUS; k++)
        held += (uint64_t)ledger(ids[k]).reserved;
    cr_assert_eq(held, reserved, "each reservation took stock of its own SKU");
    cr_assert_gt(reserved, COUNT / 2);
    twins_agree_then_free(single, &other, requests, batched, alone);
}
