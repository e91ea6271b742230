/*
 * Time across restarts and clock steps (issue 11, items 2 and 9; rush/engine.h "the engine
 * clock"). A restart restores every pending timer from the times in the log or snapshot, never
 * from the restart's clock; timers that fell due while the engine was down fire at the first
 * tick, in deadline order, before any new request. A step of the wall clock, forward or back,
 * neither ends a sale nor expires an in-time payment, and the engine clock never goes back across
 * a restart. In process with injected clocks, and through rushd killed with -9.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>

#include "base/clock.h"
#include "rushd_child.h"
#include "support.h"

static char dir[64];
static _Atomic int64_t wall_now = T0_NS;
static _Atomic int64_t monotonic_now = 1000 * SECOND;
static struct recorder recorder;

static int64_t wall_clock(void *context)
{
    (void)context;
    return atomic_load(&wall_now);
}

static int64_t monotonic_clock(void *context)
{
    (void)context;
    return atomic_load(&monotonic_now);
}

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rush-restart-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    recorder_init(&recorder, 1 << 16);
    atomic_store(&wall_now, T0_NS);
    atomic_store(&monotonic_now, 1000 * SECOND);
}

static void remove_dir(void)
{
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", dir);
    cr_assert_eq(system(command), 0);
    recorder_free(&recorder);
}

TestSuite(restart, .init = make_dir, .fini = remove_dir);

/* One shard, logged in `dir`; `two_clocks`: the wall clock steps, the monotonic one does not. */
static struct rush_engine *open_engine(bool two_clocks)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, 1);
    config.limits = small_limits();
    config.ring_slots = 16;
    config.work_requests_max = 64;
    config.data_dir = dir;
    config.clock = wall_clock;
    if (two_clocks)
        config.monotonic_clock = monotonic_clock;
    config.sink = recorder_sink;
    config.sink_context = &recorder;
    recorder.count = 0;
    struct rush_engine *engine = NULL;
    cr_assert_eq(rush_engine_create(&config, &engine), 0);
    cr_assert_eq(rush_engine_start(engine), 0);
    return engine;
}

static struct rush_result execute(struct rush_engine *engine, struct rush_request request)
{
    struct rush_result result;
    cr_assert_eq(rush_engine_execute(engine, &request, 1, &result), 0);
    return result;
}

static void put(struct rush_engine *engine, struct rush_sku sku)
{
    struct rush_result result;
    cr_assert_eq(rush_engine_sku_put(engine, &sku, &result), 0);
    cr_assert_eq(result.outcome, RUSH_OK);
}

static void digest_of(struct rush_shard *shard, void *context)
{
    *(uint64_t *)context = rush_shard_digest(shard);
}

static void check_of(struct rush_shard *shard, void *context)
{
    char *why = context;
    if (rush_shard_check(shard, why, 256) != 0)
        return;
    why[0] = '\0';
}

static void expect_consistent(struct rush_engine *engine)
{
    char why[256] = "not run";
    rush_engine_inspect(engine, 0, check_of, why);
    cr_assert_str_empty(why, "%s", why);
}

static uint64_t digest(struct rush_engine *engine)
{
    uint64_t value = 0;
    rush_engine_inspect(engine, 0, digest_of, &value);
    return value;
}

/* Index of the first recorded event of `type` about `id` (order or group), or -1. */
static int64_t event_index(uint8_t type, uint64_t order_id, uint64_t group_id)
{
    for (uint32_t i = 0; i < recorder.count; i++) {
        const struct rush_event *event = &recorder.events[i];
        if (event->type == type && (order_id == 0 || event->order_id == order_id) &&
            (group_id == 0 || event->group_id == group_id))
            return i;
    }
    return -1;
}

static struct rush_sku sku_with_ttl(uint64_t id, int64_t stock, int64_t pay_ttl_ns)
{
    struct rush_sku sku = sku_solo(id, stock);
    sku.pay_ttl_ns = pay_ttl_ns;
    return sku;
}

Test(restart, a_restart_from_the_log_keeps_the_pay_deadline_of_a_hold)
{
    struct rush_engine *engine = open_engine(false);
    put(engine, sku_with_ttl(1, 2, 10 * SECOND));
    atomic_store(&wall_now, T0_NS + SECOND);
    struct rush_result held = execute(engine, request_of(RUSH_OP_RESERVE, 1, 1, 1, 0, 1));
    cr_assert_eq(held.outcome, RUSH_OK);
    uint64_t before = digest(engine);
    rush_engine_destroy(engine);

    /* Crashes less than a TTL apart: each restart must keep the deadline, not restart it. */
    for (int64_t restart_s = 5; restart_s <= 9; restart_s += 4) {
        atomic_store(&wall_now, T0_NS + restart_s * SECOND);
        engine = open_engine(false);
        cr_assert_eq(digest(engine), before, "the hold's timer was not restored from the log");
        expect_consistent(engine);
        if (restart_s < 9)
            rush_engine_destroy(engine);
    }
    /* The deadline is T0 + 11 s (reserved at T0 + 1 s), not the restart's T0 + 15 s. */
    atomic_store(&wall_now, T0_NS + 12 * SECOND);
    struct rush_result paid =
        execute(engine, request_of(RUSH_OP_CONFIRM, 0, 0, 0, held.order_id, 2));
    cr_assert_eq(paid.outcome, RUSH_EXPIRED, "a payment after the TTL was %s",
                 rush_outcome_name(paid.outcome));
    cr_assert_geq(event_index(RUSH_EV_ORDER_EXPIRED, held.order_id, 0), 0);
    cr_assert_geq(event_index(RUSH_EV_REFUND_DUE, held.order_id, 0), 0, "no refund_due");
    expect_consistent(engine);
    rush_engine_destroy(engine);
}

Test(restart, timers_that_fell_due_while_down_fire_first_in_deadline_order_from_a_snapshot)
{
    struct rush_engine *engine = open_engine(false);
    put(engine, sku_with_ttl(1, 2, 10 * SECOND));
    struct rush_sku group_sku = sku_group(2, 30, 3);
    group_sku.group_ttl_ns = 5 * SECOND;
    put(engine, group_sku);
    atomic_store(&wall_now, T0_NS + SECOND);
    struct rush_result a = execute(engine, request_of(RUSH_OP_RESERVE, 1, 1, 1, 0, 1));
    cr_assert_eq(a.outcome, RUSH_OK); /* pay deadline T0 + 11 s */
    cr_assert_eq(rush_engine_snapshot(engine), 0);
    atomic_store(&wall_now, T0_NS + 2 * SECOND);
    struct rush_result g = execute(engine, request_of(RUSH_OP_GROUP_OPEN, 2, 5, 1, 0, 2));
    cr_assert_eq(g.outcome, RUSH_OK); /* group deadline T0 + 7 s */
    atomic_store(&wall_now, T0_NS + 3 * SECOND);
    struct rush_result b = execute(engine, request_of(RUSH_OP_RESERVE, 1, 2, 1, 0, 3));
    cr_assert_eq(b.outcome, RUSH_OK); /* pay deadline T0 + 13 s; the SKU is sold out now */
    rush_engine_destroy(engine);

    /* Down for a minute: every timer fell due. The snapshot holds a's timer, the log g's and b's.
     */
    atomic_store(&wall_now, T0_NS + 60 * SECOND);
    engine = open_engine(false);
    struct rush_result c = execute(engine, request_of(RUSH_OP_RESERVE, 1, 3, 1, 0, 4));
    cr_assert_eq(c.outcome, RUSH_OK, "the expired holds were not released before a new request: %s",
                 rush_outcome_name(c.outcome));
    int64_t failed = event_index(RUSH_EV_GROUP_FAILED, 0, g.group_id);
    int64_t expired_a = event_index(RUSH_EV_ORDER_EXPIRED, a.order_id, 0);
    int64_t expired_b = event_index(RUSH_EV_ORDER_EXPIRED, b.order_id, 0);
    int64_t reserved_c = event_index(RUSH_EV_ORDER_RESERVED, c.order_id, 0);
    cr_assert(failed >= 0 && expired_a >= 0 && expired_b >= 0 && reserved_c >= 0,
              "group failed %ld, a expired %ld, b expired %ld, c reserved %ld", failed, expired_a,
              expired_b, reserved_c);
    cr_assert(failed < expired_a && expired_a < expired_b && expired_b < reserved_c,
              "not in deadline order: group %ld (T0+7s), a %ld (T0+11s), b %ld (T0+13s), c %ld",
              failed, expired_a, expired_b, reserved_c);
    struct rush_result paid = execute(engine, request_of(RUSH_OP_CONFIRM, 0, 0, 0, a.order_id, 5));
    cr_assert_eq(paid.outcome, RUSH_EXPIRED, "a payment after the TTL was %s",
                 rush_outcome_name(paid.outcome));
    cr_assert_geq(event_index(RUSH_EV_REFUND_DUE, a.order_id, 0), 0, "no refund_due");
    expect_consistent(engine);
    rush_engine_destroy(engine);
}

Test(restart, the_state_replayed_from_a_snapshot_and_log_has_the_same_timers)
{
    struct rush_engine *engine = open_engine(false);
    put(engine, sku_with_ttl(1, 20, 10 * SECOND));
    for (uint64_t user = 1; user <= 6; user++) {
        atomic_store(&wall_now, T0_NS + (int64_t)user * 333 * MS);
        cr_assert_eq(execute(engine, request_of(RUSH_OP_RESERVE, 1, user, 1, 0, user)).outcome,
                     RUSH_OK);
        if (user == 3)
            cr_assert_eq(rush_engine_snapshot(engine), 0);
    }
    uint64_t before = digest(engine);
    rush_engine_destroy(engine);
    atomic_store(&wall_now, T0_NS + 4 * SECOND); /* none due yet */
    engine = open_engine(false);
    cr_assert_eq(digest(engine), before, "timers differ after a restart from snapshot + log");
    expect_consistent(engine);
    rush_engine_destroy(engine);
}

Test(restart, a_wall_clock_step_ends_no_sale_and_expires_no_payment)
{
    struct rush_engine *engine = open_engine(true);
    struct rush_sku sku = sku_with_ttl(1, 10, 10 * 60 * SECOND);
    sku.end_ns = T0_NS + 30 * 60 * SECOND; /* the sale ends at T0 + 30 min */
    put(engine, sku);
    atomic_store(&monotonic_now, atomic_load(&monotonic_now) + SECOND);
    struct rush_result held = execute(engine, request_of(RUSH_OP_RESERVE, 1, 1, 1, 0, 1));
    cr_assert_eq(held.outcome, RUSH_OK);

    /* +1 h for one tick, then back. */
    atomic_store(&wall_now, T0_NS + 3600 * SECOND);
    atomic_store(&monotonic_now, atomic_load(&monotonic_now) + 10 * MS);
    cr_assert_eq(execute(engine, request_of(RUSH_OP_QUERY_SKU, 1, 0, 0, 0, 2)).outcome, RUSH_OK);
    atomic_store(&wall_now, T0_NS + SECOND + 20 * MS);
    atomic_store(&monotonic_now, atomic_load(&monotonic_now) + 10 * MS);
    struct rush_result paid =
        execute(engine, request_of(RUSH_OP_CONFIRM, 0, 0, 0, held.order_id, 3));
    cr_assert_eq(paid.outcome, RUSH_OK, "an in-time payment was %s after the step",
                 rush_outcome_name(paid.outcome));
    struct rush_result late = execute(engine, request_of(RUSH_OP_RESERVE, 1, 2, 1, 0, 4));
    cr_assert_eq(late.outcome, RUSH_OK, "the sale answered %s after the step",
                 rush_outcome_name(late.outcome));

    /* -1 h: the sale has not "not started" again, and the hold keeps its deadline. */
    atomic_store(&wall_now, T0_NS - 3600 * SECOND);
    atomic_store(&monotonic_now, atomic_load(&monotonic_now) + 10 * MS);
    cr_assert_eq(execute(engine, request_of(RUSH_OP_RESERVE, 1, 3, 1, 0, 5)).outcome, RUSH_OK);
    int64_t last_ns = recorder.times[recorder.count - 1];
    rush_engine_destroy(engine);

    /* A restart while the wall clock reads an hour back: the engine clock does not go back. */
    engine = open_engine(true);
    struct rush_result after = execute(engine, request_of(RUSH_OP_RESERVE, 1, 4, 1, 0, 6));
    cr_assert_eq(after.outcome, RUSH_OK, "after a restart with the clock back: %s",
                 rush_outcome_name(after.outcome));
    cr_assert_geq(recorder.times[recorder.count - 1], last_ns, "the engine clock went back");
    /* The first hold (reserved at T0 + 1 s) still expires at T0 + 10 min 1 s of engine time. */
    atomic_store(&monotonic_now, atomic_load(&monotonic_now) + 10 * 60 * SECOND);
    struct rush_result second =
        execute(engine, request_of(RUSH_OP_QUERY_ORDER, 0, 0, 0, late.order_id, 7));
    cr_assert_eq(second.state, RUSH_ORDER_EXPIRED);
    expect_consistent(engine);
    rush_engine_destroy(engine);
}

/* ---- through rushd, killed with -9 ----------------------------------------------------------- */

static void admin_json(const char *text, const char *expect)
{
    char reply[1024];
    cr_assert_eq(child_json(rushd.admin, text, reply, sizeof(reply), 5000), 0, "no reply to %s",
                 text);
    cr_assert(strstr(reply, expect) != NULL, "%s -> %s", text, reply);
}

static void orders_json(const char *text, char *reply, size_t size)
{
    cr_assert_eq(child_json(rushd.json, text, reply, size, 5000), 0, "no reply to %s", text);
}

/* The "order" member of a JSON reply (a number or a decimal string). */
static uint64_t order_of(const char *reply)
{
    const char *at = strstr(reply, "\"order\":");
    cr_assert_not_null(at, "%s", reply);
    at += strlen("\"order\":");
    if (*at == '"')
        at++;
    return strtoull(at, NULL, 10);
}

static void put_sku_json(uint64_t id, int64_t pay_ttl_ns)
{
    char text[512];
    snprintf(text, sizeof(text),
             "{\"op\":\"sku_put\",\"token\":\"" CHILD_TOKEN "\",\"sku\":{\"id\":%lu,\"name\":"
             "\"hold\",\"stock\":1,\"price_fen\":100,\"start_ns\":0,\"end_ns\":"
             "\"9223372036854775807\",\"pay_ttl_ns\":%ld,\"order_qty_max\":1,"
             "\"user_qty_max\":1}}",
             id, pay_ttl_ns);
    admin_json(text, "\"outcome\":\"ok\"");
}

TestSuite(rushd_restart, .fini = rushd_cleanup, .timeout = 120);

Test(rushd_restart, holds_that_fell_due_while_rushd_was_killed_expire_at_the_first_tick)
{
    rushd.durability = "fsync";
    rushd_start(false);
    put_sku_json(7001, 1000 * MS);        /* falls due while rushd is down */
    put_sku_json(7002, 30 * 60 * SECOND); /* does not */
    char reply[1024];
    orders_json("{\"op\":\"reserve\",\"sku\":7001,\"user\":1,\"qty\":1,\"key\":\"h1\"}", reply,
                sizeof(reply));
    cr_assert(strstr(reply, "\"outcome\":\"ok\""), "%s", reply);
    uint64_t short_hold = order_of(reply);
    orders_json("{\"op\":\"reserve\",\"sku\":7002,\"user\":1,\"qty\":1,\"key\":\"h2\"}", reply,
                sizeof(reply));
    cr_assert(strstr(reply, "\"outcome\":\"ok\""), "%s", reply);
    uint64_t long_hold = order_of(reply);
    int64_t acknowledged_ms =
        (rush_clock_wall_ns() / 1000000); /* the short hold's deadline is before this + 1 s */

    kill(rushd.pid, SIGKILL);
    cr_assert_eq(child_wait_exit(rushd.pid, CHILD_EXIT_MS), 128 + SIGKILL);
    /* The downtime is the scenario: stay down past the deadline, then start again. */
    while ((rush_clock_wall_ns() / 1000000) < acknowledged_ms + 1300)
        child_sleep_ms(50);
    rushd_spawn();

    char text[256];
    snprintf(text, sizeof(text), "{\"op\":\"query_order\",\"order\":\"%lu\"}", short_hold);
    orders_json(text, reply, sizeof(reply));
    cr_assert(strstr(reply, "\"state\":\"expired\""),
              "a hold that fell due while rushd was down was not expired at the start: %s", reply);
    snprintf(text, sizeof(text), "{\"op\":\"query_order\",\"order\":\"%lu\"}", long_hold);
    orders_json(text, reply, sizeof(reply));
    cr_assert(strstr(reply, "\"state\":\"reserved\""), "%s", reply);
    orders_json("{\"op\":\"reserve\",\"sku\":7001,\"user\":2,\"qty\":1,\"key\":\"h3\"}", reply,
                sizeof(reply));
    cr_assert(strstr(reply, "\"outcome\":\"ok\""), "the expired unit did not return: %s", reply);
    snprintf(text, sizeof(text), "{\"op\":\"confirm\",\"order\":\"%lu\",\"key\":\"h4\"}",
             short_hold);
    orders_json(text, reply, sizeof(reply));
    cr_assert(strstr(reply, "\"outcome\":\"expired\""), "a late payment: %s", reply);
}

/*
 * Issue 11 item 13: the stream never reuses a sequence number. Readers that publish get only
 * fdatasync'ed batches (rush_engine_durable_lsn), so nothing published can be cut as a torn tail
 * and numbered again. In async mode replies go at write; an idle shard's flush timer still runs
 * (on its idle tick), so the published limit reaches the last batch without new requests.
 */
Test(restart, async_mode_publishes_only_synced_batches_and_an_idle_shard_still_flushes)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, 1);
    config.limits = small_limits();
    config.ring_slots = 16;
    config.work_requests_max = 64;
    config.data_dir = dir;
    config.durability = RUSH_DURABILITY_ASYNC;
    struct rush_engine *engine = NULL;
    cr_assert_eq(rush_engine_create(&config, &engine), 0);
    cr_assert_eq(rush_engine_start(engine), 0);
    struct rush_sku sku = sku_solo(1, 10);
    sku.start_ns = 0;
    put(engine, sku);
    cr_assert_eq(execute(engine, request_of(RUSH_OP_RESERVE, 1, 1, 1, 0, 1)).outcome, RUSH_OK);
    /* Two batches were logged (the put, the reserve); wait for the flush, bounded. */
    int64_t deadline_ms = rush_clock_monotonic_ms() + 10000;
    while (rush_engine_durable_lsn(engine, 0) < 2 && rush_clock_monotonic_ms() < deadline_ms)
        child_sleep_ms(1);
    cr_assert_eq(rush_engine_durable_lsn(engine, 0), 2, "the idle shard never flushed");
    rush_engine_destroy(engine);
}

/*
 * Seeded: the same requests at the same times, to an engine that is restarted (from the log,
 * sometimes after a snapshot) at random points with holds and groups pending, and to a memory-only
 * engine that never stops. Every answer and the final state must be the same: a restart changes
 * no deadline. Prints the seed on failure; RUSH_TEST_SEED=<seed> replays it.
 */
static struct rush_engine *open_reference(void)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, 1);
    config.limits = small_limits();
    config.ring_slots = 16;
    config.work_requests_max = 64;
    config.clock = wall_clock;
    struct rush_engine *engine = NULL;
    cr_assert_eq(rush_engine_create(&config, &engine), 0);
    cr_assert_eq(rush_engine_start(engine), 0);
    return engine;
}

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static struct rush_request random_request(uint64_t *state, uint64_t step, const uint64_t *orders,
                                          uint32_t order_count)
{
    uint64_t pick = next_random(state) % 10;
    uint64_t user = 1 + next_random(state) % 40;
    uint64_t order = order_count > 0 ? orders[next_random(state) % order_count] : 0;
    if (pick < 4 || order == 0)
        return request_of(RUSH_OP_RESERVE, 1, user, 1, 0, 1000 + step);
    if (pick < 6)
        return request_of(RUSH_OP_GROUP_JOIN_ANY, 2, user, 1, 0, 1000 + step);
    if (pick < 9)
        return request_of(RUSH_OP_CONFIRM, 0, 0, 0, order, 1000 + step);
    return request_of(RUSH_OP_CANCEL, 0, 0, 0, order, 1000 + step);
}

Test(restart, seeded_restarts_and_snapshots_answer_like_an_engine_that_never_stopped,
     .timeout = 120)
{
    const char *forced = getenv("RUSH_TEST_SEED"); /* to replay a printed seed */
    uint64_t seed = forced != NULL ? strtoull(forced, NULL, 10) : (uint64_t)time(NULL) | 1;
    uint64_t state = seed | 1; /* xorshift never leaves 0 */
    struct rush_engine *engine = open_engine(false);
    struct rush_engine *reference = open_reference();
    struct rush_sku solo = sku_with_ttl(1, 50, 10 * SECOND);
    solo.user_qty_max = 100;
    struct rush_sku group = sku_group(2, 60, 3);
    group.group_ttl_ns = 5 * SECOND;
    group.user_qty_max = 100;
    put(engine, solo), put(reference, solo);
    put(engine, group), put(reference, group);
    static uint64_t orders[400];
    uint32_t order_count = 0, restarts = 0;
    for (uint64_t step = 0; step < 400; step++) {
        atomic_store(&wall_now,
                     atomic_load(&wall_now) + (int64_t)(next_random(&state) % 4000) * MS);
        struct rush_request request = random_request(&state, step, orders, order_count);
        struct rush_result got = execute(engine, request);
        struct rush_result want = execute(reference, request);
        cr_assert(got.outcome == want.outcome && got.order_id == want.order_id,
                  "seed %lu step %lu op %u: restarted engine %s order %lx, reference %s order %lx",
                  seed, step, request.op, rush_outcome_name(got.outcome), got.order_id,
                  rush_outcome_name(want.outcome), want.order_id);
        if (got.outcome == RUSH_OK && got.order_id != 0 && order_count < 400)
            orders[order_count++] = got.order_id;
        uint64_t dice = next_random(&state) % 20;
        if (dice == 0)
            cr_assert_eq(rush_engine_snapshot(engine), 0);
        if (dice == 1 || dice == 2) {
            rush_engine_destroy(engine);
            atomic_store(&wall_now, atomic_load(&wall_now) + (int64_t)(dice * 3) * SECOND);
            engine = open_engine(false);
            restarts++;
        }
    }
    atomic_store(&wall_now, atomic_load(&wall_now) + 60 * SECOND); /* let every timer fire */
    execute(engine, request_of(RUSH_OP_QUERY_SKU, 1, 0, 0, 0, 1));
    execute(reference, request_of(RUSH_OP_QUERY_SKU, 1, 0, 0, 0, 1));
    cr_assert_eq(digest(engine), digest(reference), "seed %lu: states differ after %u restarts",
                 seed, restarts);
    expect_consistent(engine);
    rush_engine_destroy(engine);
    rush_engine_destroy(reference);
}
