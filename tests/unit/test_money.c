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
