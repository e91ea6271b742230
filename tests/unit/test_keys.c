/*
 * The idempotency keys and order slots over a long night (issue 11, items 3, 4 and 10): what is
 * remembered and for how long, room kept for payments, cancels and admin ops, slots of ended
 * orders reused, anti-hoarding caps, and retries compared on every field. The rules are written
 * at the top of engine/shard/decide.c and in proto/PROTOCOL.md section 10.1.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "shard/table.h"
#include "shard/timer.h"
#include "support.h"
#include "wal/snapshot.h"

static struct recorder recorder;
static struct rush_shard *shard;

static struct rush_shard *shard_with(struct rush_shard_limits limits,
                                     struct rush_shard_policy policy)
{
    struct rush_shard_config config = {.limits = limits,
                                       .policy = policy,
                                       .seed = 7,
                                       .start_ns = T0_NS,
                                       .sink = recorder_sink,
                                       .sink_context = &recorder};
    struct rush_shard *made = NULL;
    cr_assert_eq(rush_shard_create(&config, &made), 0);
    return made;
}

static void setup(void)
{
    recorder_init(&recorder, 1 << 20);
    shard = NULL;
}

static void teardown(void)
{
    char why[256] = "";
    int rc = shard ? rush_shard_check(shard, why, sizeof(why)) : 0;
    rush_shard_destroy(shard);
    recorder_free(&recorder);
    cr_assert_eq(rc, 0, "invariant broken: %s", why);
}

TestSuite(keys, .init = setup, .fini = teardown);

static struct rush_result at(int64_t now, uint8_t op, uint64_t sku, uint64_t user, uint32_t qty,
                             uint64_t target, uint64_t key)
{
    return decide_at(shard, now, request_of(op, sku, user, qty, target, key));
}

static struct rush_result adjust_at(int64_t now, uint64_t sku, int64_t amount, uint64_t key)
{
    struct rush_request request = request_of(RUSH_OP_ADJUST, sku, 0, 0, 0, key);
    request.amount = amount;
    return decide_at(shard, now, request);
}

static void assert_check(void)
{
    char why[256] = "";
    cr_assert_eq(rush_shard_check(shard, why, sizeof(why)), 0, "%s", why);
}

/* Item 3: ten thousand sold_out clicks take no key; then payments, cancels, admin all go. */
Test(keys, sold_out_clicks_fill_nothing_and_payments_cancels_and_admin_still_go)
{
    struct rush_shard_limits limits = small_limits();
    limits.keys_max = 16; /* 2 places in the ring, 14 for reservations */
    shard = shard_with(limits, (struct rush_shard_policy){0});
    put_at(shard, T0_NS, sku_solo(1, 1000));
    put_at(shard, T0_NS, sku_solo(2, 0));
    uint64_t orders[14];
    for (uint64_t u = 0; u < 14; u++) {
        struct rush_result r = at(T0_NS, RUSH_OP_RESERVE, 1, u + 1, 1, 0, 100 + u);
        cr_assert_eq(r.outcome, RUSH_OK);
        orders[u] = r.order_id;
    }
    cr_assert_eq(at(T0_NS, RUSH_OP_RESERVE, 1, 99, 1, 0, 200).outcome, RUSH_BUSY,
                 "reservations stop where the ring's room begins");
    for (uint64_t click = 0; click < 10000; click++)
        cr_assert_eq(at(T0_NS, RUSH_OP_RESERVE, 2, click + 1, 1, 0, 1000 + click).outcome,
                     RUSH_SOLD_OUT);
    cr_assert_eq(rush_shard_keys_held(shard), 14, "a sold_out takes no key");
    for (int i = 0; i < 7; i++) {
        struct rush_result paid = at(T0_NS, RUSH_OP_CONFIRM, 0, 0, 0, orders[i], 300 + i);
        cr_assert_eq(paid.outcome, RUSH_OK, "confirm %d", i);
        struct rush_result again = at(T0_NS, RUSH_OP_CONFIRM, 0, 0, 0, orders[i], 300 + i);
        cr_assert_eq(again.outcome, RUSH_OK);
        cr_assert(again.flags & RUSH_RESULT_DUPLICATE);
        cr_assert_eq(memcmp(&again.remaining, &paid.remaining, sizeof(paid.remaining)), 0);
        struct rush_result cancelled = at(T0_NS, RUSH_OP_CANCEL, 0, 0, 0, orders[7 + i], 400 + i);
        cr_assert_eq(cancelled.outcome, RUSH_OK, "cancel %d", i);
        cr_assert(at(T0_NS, RUSH_OP_CANCEL, 0, 0, 0, orders[7 + i], 400 + i).flags &
                  RUSH_RESULT_DUPLICATE);
    }
    for (uint64_t k = 0; k < 20; k++) { /* more admin ops than the ring holds */
        cr_assert_eq(adjust_at(T0_NS, 1, 1, 500 + k).outcome, RUSH_OK);
        cr_assert_eq(at(T0_NS, k % 2 ? RUSH_OP_RESUME : RUSH_OP_PAUSE, 1, 0, 0, 0, 600 + k).outcome,
                     RUSH_OK);
    }
    cr_assert_eq(adjust_at(T0_NS, 1, 1, 519).flags & RUSH_RESULT_DUPLICATE, RUSH_RESULT_DUPLICATE,
                 "the newest admin keys are remembered");
    const struct rush_shard_stats *stats = rush_shard_stats(shard);
    cr_assert_eq(stats->outcomes[RUSH_BUSY], 1, "only the one reservation was busy");
    struct rush_sku_ledger l;
    cr_assert_eq(rush_shard_ledger(shard, 1, &l), 0);
    cr_assert_eq(l.confirmed, 7);
    cr_assert_eq(l.stock_total, 1020);
}

/* Item 3: a paid order is confirmed even when the reservation room is full. */
Test(keys, a_payment_needs_no_key_room)
{
    struct rush_shard_limits limits = small_limits();
    limits.keys_max = 9; /* ring 1, reservations 8 */
    shard = shard_with(limits, (struct rush_shard_policy){0});
    put_at(shard, T0_NS, sku_solo(1, 100));
    uint64_t first = at(T0_NS, RUSH_OP_RESERVE, 1, 1, 1, 0, 1).order_id;
    for (uint64_t u = 2; u <= 8; u++)
        cr_assert_eq(at(T0_NS, RUSH_OP_RESERVE, 1, u, 1, 0, u).outcome, RUSH_OK);
    cr_assert_eq(at(T0_NS, RUSH_OP_RESERVE, 1, 9, 1, 0, 9).outcome, RUSH_BUSY);
    struct rush_result paid = at(T0_NS + 60 * SECOND, RUSH_OP_CONFIRM, 0, 0, 0, first, 10);
    cr_assert_eq(paid.outcome, RUSH_OK);
    /* No expiry for it when the pay TTL passes: it was paid. */
    at(T0_NS + 20 * 60 * SECOND, RUSH_OP_QUERY_SKU, 1, 0, 0, 0, 0);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ORDER_EXPIRED), 7);
    cr_assert_eq(recorder_count_type(&recorder, RUSH_EV_ORDER_CONFIRMED), 1);
}

/* Item 4: one user reserving and cancelling in a loop reuses ended slots, never exhausts them. */
Test(keys, reserve_and_cancel_in_a_loop_never_exhausts_orders_max)
{
    struct rush_shard_limits limits = small_limits();
    limits.orders_max = 8;
    struct rush_shard_policy policy = {.retain_ns = SECOND};
    shard = shard_with(limits, policy);
    put_at(shard, T0_NS, sku_solo(1, 10));
    int64_t now = T0_NS;
    uint64_t first_id = 0;
    for (uint64_t i = 0; i < 2000; i++, now += 200 * MS) {
        struct rush_result r = at(now, RUSH_OP_RESERVE, 1, 42, 1, 0, 2 * i + 1);
        cr_assert_eq(r.outcome, RUSH_OK, "round %lu: %s", i, rush_outcome_name(r.outcome));
        first_id = first_id ? first_id : r.order_id;
        cr_assert_eq(at(now, RUSH_OP_CANCEL, 0, 0, 0, r.order_id, 2 * i + 2).outcome, RUSH_OK);
        struct rush_result q = at(now, RUSH_OP_QUERY_ORDER, 0, 0, 0, r.order_id, 0);
        cr_assert_eq(q.state, RUSH_ORDER_RELEASED, "the ended order stays queryable");
    }
    cr_assert_leq(rush_shard_order_slots_used(shard), 8);
    cr_assert_gt(rush_shard_stats(shard)->orders_reclaimed, 1900);
    cr_assert_eq(at(now, RUSH_OP_QUERY_ORDER, 0, 0, 0, first_id, 0).outcome, RUSH_UNKNOWN_ORDER,
                 "the id of a reused slot's earlier order is unknown");
    cr_assert_eq(at(now, RUSH_OP_CONFIRM, 0, 0, 0, first_id, 99999).outcome, RUSH_UNKNOWN_ORDER);
    cr_assert_leq(rush_shard_keys_held(shard), 8);
    assert_check();
}

/* Item 4: the slot and the key of an ended order are kept for the window, then reused. */
Test(keys, an_ended_order_and_its_key_are_kept_for_the_window)
{
    struct rush_shard_limits limits = small_limits();
    limits.orders_max = 1;
    shard = shard_with(limits, (struct rush_shard_policy){.retain_ns = 10 * SECOND});
    put_at(shard, T0_NS, sku_solo(1, 10));
    struct rush_result first = at(T0_NS, RUSH_OP_RESERVE, 1, 1, 1, 0, 1);
    cr_assert_eq(at(T0_NS, RUSH_OP_CONFIRM, 0, 0, 0, first.order_id, 2).outcome, RUSH_OK);
    int64_t later = T0_NS + 10 * SECOND - 1;
    cr_assert_eq(at(later, RUSH_OP_RESERVE, 1, 2, 1, 0, 3).outcome, RUSH_BUSY, "inside the window");
    struct rush_result retry = at(later, RUSH_OP_RESERVE, 1, 1, 1, 0, 1);
    cr_assert(retry.flags & RUSH_RESULT_DUPLICATE);
    cr_assert_eq(retry.order_id, first.order_id);
    cr_assert(at(later, RUSH_OP_CONFIRM, 0, 0, 0, first.order_id, 2).flags & RUSH_RESULT_DUPLICATE);
    struct rush_result second = at(T0_NS + 10 * SECOND, RUSH_OP_RESERVE, 1, 2, 1, 0, 3);
    cr_assert_eq(second.outcome, RUSH_OK, "the window has passed: the slot is reused");
    cr_assert_neq(second.order_id, first.order_id);
    cr_assert_eq(at(T0_NS + 10 * SECOND, RUSH_OP_QUERY_ORDER, 0, 0, 0, first.order_id, 0).outcome,
                 RUSH_UNKNOWN_ORDER);
    /* Key 1 was forgotten with its slot; held units are not: user 1 keeps its purchase. */
    cr_assert_eq(rush_shard_user_held(shard, 1, 1), 1);
    struct rush_sku_ledger l;
    cr_assert_eq(rush_shard_ledger(shard, 1, &l), 0);
    cr_assert_eq(l.confirmed, 1);
    cr_assert_eq(l.available, 8);
    assert_check();
}

/* A live order is never reused, however old: its key is always found. */
Test(keys, a_live_order_keeps_its_slot_and_key)
{
    struct rush_shard_limits limits = small_limits();
    limits.orders_max = 2;
    shard = shard_with(limits, (struct rush_shard_policy){.retain_ns = MS});
    struct rush_sku sku = sku_solo(1, 100);
    sku.pay_ttl_ns = 0; /* reservations are confirmed at once: ended at birth */
    put_at(shard, T0_NS, sku);
    struct rush_sku slow = sku_solo(2, 10);
    slow.pay_ttl_ns = 24 * 3600 * SECOND;
    put_at(shard, T0_NS, slow);
    struct rush_result live = at(T0_NS, RUSH_OP_RESERVE, 2, 1, 1, 0, 1);
    for (uint64_t i = 0; i < 50; i++)
        cr_assert_eq(
            at(T0_NS + (int64_t)(i + 1) * SECOND, RUSH_OP_RESERVE, 1, 100 + i, 1, 0, 10 + i)
                .outcome,
            RUSH_OK);
    struct rush_result again = at(T0_NS + 3600 * SECOND, RUSH_OP_RESERVE, 2, 1, 1, 0, 1);
    cr_assert(again.flags & RUSH_RESULT_DUPLICATE);
    cr_assert_eq(again.order_id, live.order_id);
    cr_assert_eq(at(T0_NS + 3600 * SECOND, RUSH_OP_CONFIRM, 0, 0, 0, live.order_id, 99).outcome,
                 RUSH_OK);
}

/* Item 4: anti-hoarding caps unpaid holds and churn per (SKU, user), with its own outcome. */
Test(keys, hoarding_caps_unpaid_holds_and_churn)
{
    shard = shard_with(small_limits(),
                       (struct rush_shard_policy){.user_unpaid_max = 2, .user_churn_max = 3});
    struct rush_sku sku = sku_solo(1, 100);
    sku.user_qty_max = 50;
    put_at(shard, T0_NS, sku);
    uint64_t key = 1;
    uint64_t a = at(T0_NS, RUSH_OP_RESERVE, 1, 7, 1, 0, key++).order_id;
    at(T0_NS, RUSH_OP_RESERVE, 1, 7, 1, 0, key++);
    struct rush_result third = at(T0_NS, RUSH_OP_RESERVE, 1, 7, 1, 0, key++);
    cr_assert_eq(third.outcome, RUSH_HOARDING, "two unpaid holds already");
    cr_assert_str_eq(rush_outcome_name(RUSH_HOARDING), "hoarding");
    cr_assert_eq(at(T0_NS, RUSH_OP_RESERVE, 1, 8, 1, 0, key++).outcome, RUSH_OK, "others may");
    cr_assert_eq(at(T0_NS, RUSH_OP_CONFIRM, 0, 0, 0, a, key++).outcome, RUSH_OK);
    uint64_t b = at(T0_NS, RUSH_OP_RESERVE, 1, 7, 1, 0, key++).order_id;
    cr_assert_neq(b, 0, "paying one makes room");
    /* Churn: cancels and expiries count; the third makes the user a hoarder of this SKU. */
    cr_assert_eq(at(T0_NS, RUSH_OP_CANCEL, 0, 0, 0, b, key++).outcome, RUSH_OK);
    uint64_t c = at(T0_NS, RUSH_OP_RESERVE, 1, 7, 1, 0, key++).order_id;
    cr_assert_eq(at(T0_NS, RUSH_OP_CANCEL, 0, 0, 0, c, key++).outcome, RUSH_OK);
    at(T0_NS, RUSH_OP_RESERVE, 1, 7, 1, 0, key++); /* left to expire */
    int64_t later = T0_NS + 16 * 60 * SECOND;
    struct rush_result r = at(later, RUSH_OP_RESERVE, 1, 7, 1, 0, key++);
    cr_assert_eq(r.outcome, RUSH_HOARDING, "two cancels and two expiries");
    cr_assert_not(r.flags & RUSH_RESULT_DUPLICATE);
    cr_assert_eq(at(later, RUSH_OP_RESERVE, 1, 7, 1, 0, key - 1).outcome, RUSH_HOARDING,
                 "not remembered: decided again, the same way");
    cr_assert_eq(rush_shard_stats(shard)->outcomes[RUSH_HOARDING], 3);
    struct rush_sku other = sku_solo(2, 10);
    put_at(shard, later, other);
    cr_assert_eq(at(later, RUSH_OP_RESERVE, 2, 7, 1, 0, key++).outcome, RUSH_OK, "per SKU");
}

/* Item 10: a retry is the same request in every field the op reads. */
Test(keys, a_reused_key_differing_in_any_read_field_is_invalid)
{
    shard = shard_with(small_limits(), (struct rush_shard_policy){0});
    put_at(shard, T0_NS, sku_solo(1, 100));
    put_at(shard, T0_NS, sku_solo(2, 100));
    put_at(shard, T0_NS, sku_group(3, 100, 3));
    struct rush_request base[] = {
        request_of(RUSH_OP_RESERVE, 1, 5, 2, 0, 1),
        request_of(RUSH_OP_GROUP_OPEN, 3, 5, 0, 0, 2),
        request_of(RUSH_OP_ADJUST, 1, 0, 0, 0, 3),
        request_of(RUSH_OP_PAUSE, 1, 0, 0, 0, 4),
    };
    base[2].amount = 10;
    struct rush_result first[4];
    for (int i = 0; i < 4; i++) {
        first[i] = decide_at(shard, T0_NS, base[i]);
        cr_assert_eq(first[i].outcome, RUSH_OK, "request %d", i);
    }
    struct rush_request join = request_of(RUSH_OP_GROUP_JOIN, 0, 6, 0, first[1].group_id, 5);
    cr_assert_eq(decide_at(shard, T0_NS, join).outcome, RUSH_OK);
    struct rush_request changed[] = {
        base[0], base[0], base[0], base[0], base[1], base[1], base[2], base[3], join, join,
    };
    changed[0].sku_id = 2;
    changed[1].user_id = 6;
    changed[2].qty = 1;
    changed[3].op = RUSH_OP_GROUP_JOIN_ANY;
    changed[4].user_id = 6;
    changed[5].sku_id = 1;
    changed[6].amount = 11;
    changed[7].sku_id = 2;
    changed[8].target_id ^= 1;
    changed[9].user_id = 7;
    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
        struct rush_result r = decide_at(shard, T0_NS, changed[i]);
        cr_assert_eq(r.outcome, RUSH_INVALID, "change %zu", i);
        cr_assert_eq(r.reason, RUSH_REASON_KEY_REUSED, "change %zu", i);
    }
    /* Fields the op does not read, and the tag, do not make another request. */
    struct rush_request same = base[0];
    same.tag = 77;
    same.target_id = 1234;
    struct rush_result r = decide_at(shard, T0_NS, same);
    cr_assert(r.flags & RUSH_RESULT_DUPLICATE);
    cr_assert_eq(r.order_id, first[0].order_id);
    /* A confirm's key, sent as a cancel of the same order, is reused; a retry is answered. */
    uint64_t order = first[0].order_id;
    cr_assert_eq(at(T0_NS, RUSH_OP_CONFIRM, 0, 0, 0, order, 9).outcome, RUSH_OK);
    cr_assert_eq(at(T0_NS, RUSH_OP_CANCEL, 0, 0, 0, order, 9).reason, RUSH_REASON_KEY_REUSED);
    cr_assert(at(T0_NS, RUSH_OP_CONFIRM, 9, 9, 0, order, 9).flags & RUSH_RESULT_DUPLICATE);
    /* A reservation's key sent as a confirm is reused, not a confirm. */
    cr_assert_eq(at(T0_NS, RUSH_OP_CONFIRM, 0, 0, 0, order, 1).reason, RUSH_REASON_KEY_REUSED);
}

/* The fingerprint the shard used to compare retries by: 32 bits of XXH3 over the read fields. */
static uint32_t old_fingerprint(uint64_t sku, uint64_t user, uint32_t qty)
{
    struct {
        uint64_t op, sku_id, user_id, qty, target_id;
        int64_t amount;
    } fields = {.op = RUSH_OP_RESERVE, .sku_id = sku, .user_id = user, .qty = qty};
    return (uint32_t)XXH3_64bits(&fields, sizeof(fields));
}

/* Item 10: two users whose reserves collide on the old 32-bit fingerprint are told apart. */
Test(keys, requests_colliding_on_the_old_fingerprint_are_not_retries)
{
    enum { SLOTS = 1 << 22 };
    uint64_t *seen = calloc(SLOTS, sizeof(uint64_t)); /* user by fingerprint bucket */
    cr_assert_not_null(seen);
    uint64_t user_a = 0, user_b = 0;
    for (uint64_t user = 1; user < 4000000 && user_a == 0; user++) {
        uint32_t fingerprint = old_fingerprint(1, user, 1);
        for (uint32_t slot = fingerprint % SLOTS;; slot = (slot + 1) % SLOTS) {
            if (seen[slot] == 0) {
                seen[slot] = user;
                break;
            }
            if (old_fingerprint(1, seen[slot], 1) == fingerprint) {
                user_a = seen[slot];
                user_b = user;
                break;
            }
        }
    }
    free(seen);
    cr_assert_neq(user_a, 0, "a birthday search of 4M users finds a 32-bit collision");
    cr_assert_eq(old_fingerprint(1, user_a, 1), old_fingerprint(1, user_b, 1));
    shard = shard_with(small_limits(), (struct rush_shard_policy){0});
    put_at(shard, T0_NS, sku_solo(1, 100));
    struct rush_result a = at(T0_NS, RUSH_OP_RESERVE, 1, user_a, 1, 0, 77);
    cr_assert_eq(a.outcome, RUSH_OK);
    struct rush_result b = at(T0_NS, RUSH_OP_RESERVE, 1, user_b, 1, 0, 77);
    cr_assert_eq(b.outcome, RUSH_INVALID, "user %lu is not user %lu's retry", user_b, user_a);
    cr_assert_eq(b.reason, RUSH_REASON_KEY_REUSED);
    cr_assert_eq(b.order_id, 0, "B never sees A's order");
}

/* A night of reserves, payments, cancels, expiries, groups and adjusts from `now`. */
static int64_t busy_night(int64_t now, uint64_t first_key, uint32_t steps)
{
    for (uint64_t i = 0; i < steps; i++, now += 50 * MS) {
        uint64_t key = first_key + 10 * i;
        struct rush_result r = at(now, RUSH_OP_RESERVE, 1, i % 5 + 1, 1, 0, key);
        cr_assert_eq(r.outcome, RUSH_OK, "%lu: %s", i, rush_outcome_name(r.outcome));
        if (i % 3 == 0)
            at(now, RUSH_OP_CANCEL, 0, 0, 0, r.order_id, key + 1);
        else if (i % 3 == 1)
            at(now, RUSH_OP_CONFIRM, 0, 0, 0, r.order_id, key + 1);
        if (i % 7 == 0)
            adjust_at(now, 1, 1, key + 2);
        if (i % 4 == 0)
            at(now, RUSH_OP_GROUP_JOIN_ANY, 2, i % 9 + 1, 0, 0, key + 3);
    }
    return now;
}

static const struct rush_shard_limits night_limits = {.skus_max = 64,
                                                      .orders_max = 64,
                                                      .groups_max = 1024,
                                                      .keys_max = 128, /* a ring of 16 */
                                                      .user_limits_max = 4096,
                                                      .events_buffer_max = 1024};

static void put_night_catalogue(void)
{
    struct rush_sku sku = sku_solo(1, 100000);
    sku.user_qty_max = 100000;
    sku.pay_ttl_ns = 2 * SECOND; /* a third of the orders expire */
    put_at(shard, T0_NS, sku);
    put_at(shard, T0_NS, sku_group(2, 1000, 2));
}

/* A snapshot of a shard with reused slots and a wrapped ring loads to the same state, and both
 * go on to decide the same way. */
Test(keys, a_snapshot_with_reused_slots_and_a_wrapped_ring_loads_the_same)
{
    struct rush_shard_policy policy = {.retain_ns = SECOND};
    shard = shard_with(night_limits, policy);
    put_night_catalogue();
    int64_t now = busy_night(T0_NS, 1, 1500);
    cr_assert_gt(rush_shard_stats(shard)->keys_forgotten, rush_shard_stats(shard)->orders_reclaimed,
                 "the ring wrapped");
    char dir[] = "/tmp/rush-keys-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char why[512] = "";
    cr_assert_eq(rush_snapshot_write(shard, dir, 0, 1, why, sizeof(why)), 0, "%s", why);
    struct rush_shard *loaded = shard_with(night_limits, policy);
    uint64_t lsn = 0;
    cr_assert_eq(rush_snapshot_load(loaded, dir, 0, &lsn, why, sizeof(why)), 0, "%s", why);
    char command[64];
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    cr_assert_eq(system(command), 0);
    cr_assert_eq(rush_shard_digest(loaded), rush_shard_digest(shard));
    struct rush_shard *original = shard;
    uint32_t recorded = recorder.count;
    busy_night(now, 100000, 300);
    uint32_t count = recorder.count - recorded;
    struct rush_event *want = malloc(sizeof(*want) * count);
    cr_assert_not_null(want);
    memcpy(want, &recorder.events[recorded], sizeof(*want) * count);
    shard = loaded;
    recorder.count = recorded;
    busy_night(now, 100000, 300);
    cr_assert_eq(recorder.count - recorded, count);
    cr_assert_eq(memcmp(want, &recorder.events[recorded], sizeof(*want) * count), 0,
                 "the loaded shard logs the same events as the original");
    free(want);
    cr_assert_eq(rush_shard_digest(loaded), rush_shard_digest(original));
    rush_shard_destroy(original);
}

/* Replaying the log of a night with reused slots and a wrapped ring rebuilds the same state. */
Test(keys, a_replay_with_reused_slots_has_the_same_digest)
{
    struct rush_shard_limits limits = night_limits;
    struct rush_shard_policy policy = {.retain_ns = SECOND};
    shard = shard_with(limits, policy);
    put_night_catalogue();
    busy_night(T0_NS, 1, 3000);
    assert_check();
    cr_assert_gt(rush_shard_stats(shard)->orders_reclaimed, 2000);
    cr_assert_gt(recorder_count_type(&recorder, RUSH_EV_ORDER_EXPIRED), 500);
    struct rush_shard *replayed = shard_with(limits, policy);
    for (uint32_t i = 0; i < recorder.count; i++)
        rush_shard_apply(replayed, recorder.times[i], &recorder.events[i]);
    char why[256] = "";
    cr_assert_eq(rush_shard_check(replayed, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(rush_shard_digest(replayed), rush_shard_digest(shard));
    rush_shard_destroy(replayed);
}

/* The table's removal keeps every other key findable (backward shift, no tombstones). */
Test(keys, table_remove_keeps_the_rest_findable)
{
    struct rush_table table;
    cr_assert_eq(rush_table_init(&table, 1000, 24, 99), 0);
    static bool present[5000];
    uint64_t state = 12345;
    for (int round = 0; round < 200000; round++) {
        state = state * 6364136223846793005u + 1442695040888963407u;
        uint64_t n = (state >> 33) % 5000 + 1;
        rush_key key = rush_key_pair(n, n * 31);
        if (present[n - 1]) {
            cr_assert(rush_table_remove(&table, &key));
            present[n - 1] = false;
        } else if (!rush_table_full(&table)) {
            uint64_t *entry = rush_table_insert(&table, &key);
            cr_assert_not_null(entry);
            entry[2] = n;
            present[n - 1] = true;
        }
        if (round % 10000 == 0) {
            uint32_t count = 0;
            for (uint64_t m = 1; m <= 5000; m++) {
                rush_key probe = rush_key_pair(m, m * 31);
                const uint64_t *found = rush_table_find(&table, &probe);
                cr_assert_eq(found != NULL, present[m - 1], "key %lu", m);
                cr_assert(found == NULL || found[2] == m);
                count += present[m - 1];
            }
            cr_assert_eq(count, table.count);
        }
    }
    rush_key absent = rush_key_pair(9999, 1);
    cr_assert_not(rush_table_remove(&table, &absent));
    rush_table_free(&table);
}

/* The wheel's O(1) cancel (a paid or cancelled order's pay timer) unlinks from any list place. */
Test(keys, a_cancelled_timer_never_fires_and_its_handle_can_be_added_again)
{
    struct rush_timer_wheel wheel;
    cr_assert_eq(rush_timer_wheel_init(&wheel, 64, 4, MS, T0_NS), 0);
    for (uint32_t h = 1; h < 64; h++) /* 4 slots: long lists, heads, middles and tails */
        rush_timer_wheel_add(&wheel, h, T0_NS + (int64_t)(h % 13 + 1) * MS);
    for (uint32_t h = 1; h < 64; h += 2)
        rush_timer_wheel_cancel(&wheel, h);
    cr_assert_eq(wheel.scheduled_count, 31);
    rush_timer_wheel_add(&wheel, 3, T0_NS + 20 * MS);
    uint32_t due[64];
    uint32_t count = rush_timer_wheel_advance(&wheel, T0_NS + 15 * MS, due);
    cr_assert_eq(count, 31);
    for (uint32_t i = 0; i < count; i++)
        cr_assert_eq(due[i] % 2, 0, "handle %u was cancelled", due[i]);
    count = rush_timer_wheel_advance(&wheel, T0_NS + 30 * MS, due);
    cr_assert_eq(count, 1);
    cr_assert_eq(due[0], 3);
    cr_assert_eq(wheel.scheduled_count, 0);
    rush_timer_wheel_free(&wheel);
}
