/*
 * Money follows the order: an order records what its buyer pays when it is reserved (a seat:
 * when it joins), and that amount survives what rebuilds a shard — replaying the log into a new
 * shard, and a snapshot written and loaded — so a confirm, expiry or refund after a restart
 * still carries it, whatever the SKU's price became.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "support.h"
#include "wal/snapshot.h"

#define TTL_NS (15 * 60 * SECOND)

static struct recorder log_events;
static struct recorder seen;
static char dir[64];

static void setup(void)
{
    recorder_init(&log_events, 4096);
    recorder_init(&seen, 4096);
    snprintf(dir, sizeof(dir), "/tmp/rush-money-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    cr_assert_eq(system(command), 0);
    recorder_free(&log_events);
    recorder_free(&seen);
}

TestSuite(money, .init = setup, .fini = teardown);

/*
 * On `shard`: SKU 1 at 100 fen (orders 1 and 2), SKU 2 a group of 3 at 100 fen (a leader and
 * one seat), then both SKUs re-priced at 5000 fen.
 */
static void reserve_then_reprice(struct rush_shard *shard)
{
    put_at(shard, T0_NS, sku_solo(1, 10));
    put_at(shard, T0_NS, sku_group(2, 10, 3));
    cr_assert_eq(decide_at(shard, T0_NS, request_of(RUSH_OP_RESERVE, 1, 7, 2, 0, 1)).outcome,
                 RUSH_OK);
    cr_assert_eq(decide_at(shard, T0_NS, request_of(RUSH_OP_RESERVE, 1, 8, 3, 0, 2)).outcome,
                 RUSH_OK);
    struct rush_result open =
        decide_at(shard, T0_NS, request_of(RUSH_OP_GROUP_OPEN, 2, 9, 0, 0, 3));
    cr_assert_eq(
        decide_at(shard, T0_NS, request_of(RUSH_OP_GROUP_JOIN, 0, 10, 0, open.group_id, 4)).outcome,
        RUSH_OK);
    struct rush_sku solo = sku_solo(1, 10), group = sku_group(2, 10, 3);
    solo.price_fen = group.price_fen = 5000;
    put_at(shard, T0_NS + MS, solo);
    put_at(shard, T0_NS + MS, group);
}

/* After the re-price: confirm order 1, let order 2 expire and pay it late, fail the group. */
static void settle(struct rush_shard *shard)
{
    uint64_t first = 1, second = 2; /* shard 0: an order id is its index */
    cr_assert_eq(
        decide_at(shard, T0_NS + 2 * MS, request_of(RUSH_OP_CONFIRM, 0, 0, 0, first, 11)).outcome,
        RUSH_OK);
    cr_assert_eq(
        decide_at(shard, T0_NS + TTL_NS + 5 * MS, request_of(RUSH_OP_CONFIRM, 0, 0, 0, second, 12))
            .outcome,
        RUSH_EXPIRED);
    rush_shard_begin(shard, T0_NS + 3600 * SECOND); /* the group's deadline: it fails */
    rush_shard_end(shard);
}

/* Every order event `seen` recorded carries 100 fen a unit, none the new price. */
static void expect_amounts_at_100(uint32_t expected_count)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < seen.count; i++) {
        const struct rush_event *e = &seen.events[i];
        if (e->type != RUSH_EV_ORDER_CONFIRMED && e->type != RUSH_EV_ORDER_EXPIRED &&
            e->type != RUSH_EV_ORDER_RELEASED && e->type != RUSH_EV_REFUND_DUE)
            continue;
        cr_assert_eq(e->amount, 100 * (int64_t)e->qty, "%s of order %lu: %ld fen",
                     rush_event_type_name(e->type), e->order_id, e->amount);
        count++;
    }
    cr_assert_eq(count, expected_count);
}

/* confirmed 1; expired 2 and refund due; the group's 2 seats released and refunds due. */
#define SETTLED_ORDER_EVENTS 7u

Test(money, the_amount_survives_a_replay_of_the_log)
{
    struct rush_shard *live = shard_new(small_limits(), 1, &log_events);
    reserve_then_reprice(live);
    struct rush_shard *replica = shard_new(small_limits(), 99, &seen);
    for (uint32_t i = 0; i < log_events.count; i++)
        rush_shard_apply(replica, log_events.times[i], &log_events.events[i]);
    cr_assert_eq(rush_shard_digest(replica), rush_shard_digest(live));
    cr_assert_eq(seen.count, 0, "applying logged events emits nothing");
    settle(replica);
    expect_amounts_at_100(SETTLED_ORDER_EVENTS);
    rush_shard_destroy(replica);
    rush_shard_destroy(live);
}

Test(money, the_amount_survives_a_snapshot)
{
    struct rush_shard *live = shard_new(small_limits(), 1, NULL);
    reserve_then_reprice(live);
    char why[256] = "";
    cr_assert_eq(rush_snapshot_write(live, dir, 0, 1, why, sizeof(why)), 0, "%s", why);
    struct rush_shard *loaded = shard_new(small_limits(), 5, &seen);
    uint64_t lsn = 0;
    cr_assert_eq(rush_snapshot_load(loaded, dir, 0, &lsn, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(rush_shard_digest(loaded), rush_shard_digest(live));
    settle(loaded);
    expect_amounts_at_100(SETTLED_ORDER_EVENTS);
    rush_shard_destroy(loaded);
    rush_shard_destroy(live);
}

Test(money, a_snapshot_of_an_older_version_is_refused)
{
    struct rush_shard *live = shard_new(small_limits(), 1, NULL);
    reserve_then_reprice(live);
    char why[256] = "";
    cr_assert_eq(rush_snapshot_write(live, dir, 0, 1, why, sizeof(why)), 0, "%s", why);
    char name[RUSH_SNAPSHOT_NAME_MAX], path[160];
    cr_assert_gt(rush_snapshot_name(name, sizeof(name), 0, 1), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *file = fopen(path, "r+b");
    cr_assert_not_null(file);
    struct rush_snapshot_header header;
    cr_assert_eq(fread(&header, sizeof(header), 1, file), 1);
    header.version = 1; /* 32-byte orders without their amount */
    rush_snapshot_header_seal(&header);
    cr_assert_eq(fseek(file, 0, SEEK_SET), 0);
    cr_assert_eq(fwrite(&header, sizeof(header), 1, file), 1);
    cr_assert_eq(fclose(file), 0);
    struct rush_shard *loaded = shard_new(small_limits(), 5, NULL);
    uint64_t lsn = 0;
    cr_assert_eq(rush_snapshot_load(loaded, dir, 0, &lsn, why, sizeof(why)), RUSH_ECORRUPT);
    cr_assert(strstr(why, "version 1") != NULL, "%s", why);
    rush_shard_destroy(loaded);
    rush_shard_destroy(live);
}

/*
 * An activity's subsidy budget over two SKUs of its family: each seat costs 20 fen below the
 * list price, the activity may spend 100 fen (five seats), each SKU 1000 fen of its own. The
 * activity's spent figure is rebuilt by a replay of the log and carried by a snapshot.
 */
#define FAMILY UINT64_C(5000000000042)
#define SKU_RED (FAMILY * 1000 + 1)
#define SKU_BLUE (FAMILY * 1000 + 2)
#define GROUP_TTL_NS (10 * 60 * SECOND)

static const struct rush_activity budgeted[] = {
    {.name = "colours", .family = FAMILY, .user_qty_max = 5, .subsidy_budget_fen = 100}};

static struct rush_shard *activity_shard(uint64_t seed, struct recorder *recorder)
{
    struct rush_shard_config config = {.limits = small_limits(),
                                       .policy = {.activities = budgeted, .activity_count = 1},
                                       .seed = seed,
                                       .start_ns = T0_NS,
                                       .sink = recorder ? recorder_sink : NULL,
                                       .sink_context = recorder};
    struct rush_shard *shard = NULL;
    cr_assert_eq(rush_shard_create(&config, &shard), 0);
    return shard;
}

static struct rush_sku activity_sku(uint64_t id)
{
    struct rush_sku sku = sku_group(id, 50, 3);
    sku.rules = RUSH_SKU_IN_ACTIVITY;
    sku.prices = RUSH_SKU_GROUP_PRICE;
    sku.group_price_fen = 80;
    sku.subsidy_budget_fen = 1000; /* room on its own: the activity's budget binds */
    return sku;
}

static struct rush_result open_at(struct rush_shard *shard, int64_t now, uint64_t sku,
                                  uint64_t user)
{
    return decide_at(shard, now, request_of(RUSH_OP_GROUP_OPEN, sku, user, 0, 0, 100 + user));
}

static struct rush_result join_at(struct rush_shard *shard, int64_t now, uint64_t group,
                                  uint64_t user)
{
    return decide_at(shard, now, request_of(RUSH_OP_GROUP_JOIN, 0, user, 0, group, 100 + user));
}

static void expect_activity_spent(struct rush_result result)
{
    cr_assert_eq(result.outcome, RUSH_SOLD_OUT, "%s", rush_outcome_name(result.outcome));
    cr_assert_eq(result.reason, RUSH_REASON_ACTIVITY_SUBSIDY, "%s",
                 rush_reason_name(result.reason));
}

/* Red: a group of 3 completes (60 fen); blue: a group holds 2 seats (40 fen). Spent: 100. */
static uint64_t spend_the_activity(struct rush_shard *shard)
{
    put_at(shard, T0_NS, activity_sku(SKU_RED));
    put_at(shard, T0_NS, activity_sku(SKU_BLUE));
    struct rush_result red = open_at(shard, T0_NS, SKU_RED, 1);
    cr_assert_eq(red.outcome, RUSH_OK);
    cr_assert_eq(join_at(shard, T0_NS, red.group_id, 2).outcome, RUSH_OK);
    struct rush_result blue = open_at(shard, T0_NS, SKU_BLUE, 3);
    cr_assert_eq(blue.outcome, RUSH_OK);
    cr_assert_eq(join_at(shard, T0_NS, blue.group_id, 4).outcome, RUSH_OK);
    cr_assert_eq(join_at(shard, T0_NS, red.group_id, 5).outcome, RUSH_OK); /* red completes */
    return blue.group_id;
}

/* Both SKUs refused by the activity's budget; blue's group fails and gives its 40 fen back. */
static void expect_the_budget_held(struct rush_shard *shard, uint64_t blue_group)
{
    expect_activity_spent(join_at(shard, T0_NS + MS, blue_group, 6));
    expect_activity_spent(open_at(shard, T0_NS + MS, SKU_RED, 7));
    rush_shard_begin(shard, T0_NS + GROUP_TTL_NS + SECOND); /* blue's deadline: it fails */
    rush_shard_end(shard);
    int64_t later = T0_NS + GROUP_TTL_NS + 2 * SECOND;
    struct rush_result blue = open_at(shard, later, SKU_BLUE, 8);
    cr_assert_eq(blue.outcome, RUSH_OK);
    cr_assert_eq(join_at(shard, later, blue.group_id, 9).outcome, RUSH_OK);
    expect_activity_spent(join_at(shard, later, blue.group_id, 10));
    char why[256] = "";
    cr_assert_eq(rush_shard_check(shard, why, sizeof(why)), 0, "%s", why);
}

Test(money, an_activity_budget_spent_by_two_skus_holds_on_a_live_shard)
{
    struct rush_shard *live = activity_shard(1, NULL);
    expect_the_budget_held(live, spend_the_activity(live));
    rush_shard_destroy(live);
}

Test(money, an_activity_budget_survives_a_replay_of_the_log)
{
    struct rush_shard *live = activity_shard(1, &log_events);
    uint64_t blue_group = spend_the_activity(live);
    struct rush_shard *replica = activity_shard(99, NULL);
    for (uint32_t i = 0; i < log_events.count; i++)
        rush_shard_apply(replica, log_events.times[i], &log_events.events[i]);
    cr_assert_eq(rush_shard_digest(replica), rush_shard_digest(live));
    expect_the_budget_held(replica, blue_group);
    rush_shard_destroy(replica);
    rush_shard_destroy(live);
}

Test(money, an_activity_budget_survives_a_snapshot)
{
    struct rush_shard *live = activity_shard(1, NULL);
    uint64_t blue_group = spend_the_activity(live);
    char why[256] = "";
    cr_assert_eq(rush_snapshot_write(live, dir, 0, 1, why, sizeof(why)), 0, "%s", why);
    struct rush_shard *loaded = activity_shard(5, NULL);
    uint64_t lsn = 0;
    cr_assert_eq(rush_snapshot_load(loaded, dir, 0, &lsn, why, sizeof(why)), 0, "%s", why);
    cr_assert_eq(rush_shard_digest(loaded), rush_shard_digest(live));
    expect_the_budget_held(loaded, blue_group);
    rush_shard_destroy(loaded);
    rush_shard_destroy(live);
}

/* The list price of an activity SKU cannot move under seats the activity's budget counted. */
Test(money, an_activity_budget_keeps_the_list_price_under_held_seats)
{
    struct rush_shard *shard = activity_shard(1, NULL);
    put_at(shard, T0_NS, activity_sku(SKU_BLUE));
    cr_assert_eq(open_at(shard, T0_NS, SKU_BLUE, 1).outcome, RUSH_OK);
    struct rush_sku moved = activity_sku(SKU_BLUE);
    moved.price_fen = 120;
    struct rush_result result = put_at(shard, T0_NS, moved);
    cr_assert_eq(result.outcome, RUSH_INVALID);
    cr_assert_eq(result.reason, RUSH_REASON_LIMIT_BELOW_HELD);
    rush_shard_destroy(shard);
}
