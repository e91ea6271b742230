/*
 * The rules of issue 11 through a real rushd: one test per item that had none at the level of
 * the server (items 2, 5, 9, 12 and 14 are in test_restart, test_data_dir, test_wal_full and
 * test_rushctl). Each test writes its own campaign (small tables where a table is the point),
 * sends orders on the binary endpoint through the client library, admin commands as JSON with
 * the token, and reads what was published through the subscriber library: the stream is where
 * money shows, so amounts, users and refunds are checked there, not only in the replies.
 *
 * Waiting: every wait is for an event in the stream, an answer or an exit, with a deadline; the
 * one wait for a time (item 8) is for the pay deadline the stream itself reported.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "rush/client.h"
#include "rush/subscriber.h"
#include "rushd_child.h"

#define SEEN_MAX 8192
#define WAIT_MS 10000
#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define ENGINE_ROOMY                                                                               \
    "shards = 1\nring_slots = 64\norders_max = 4096\ngroups_max = 1024\nkeys_max = 16384\n"        \
    "user_limits_max = 4096\n"

static struct rushd_child child = {.pid = -1};
static struct rush_client *client;
static struct rush_subscriber *sub;
static struct rush_stream_event seen[SEEN_MAX];
static uint32_t seen_count;

/* ---- the rushd, its client and its stream ---------------------------------------------------- */

static void start(const char *engine, const char *skus)
{
    signal(SIGPIPE, SIG_IGN);
    seen_count = 0;
    child_make_dir(&child, "rules");
    child.durability = "fsync";
    child_write_campaign(&child, engine, CHILD_TOKEN, skus);
    child_run(&child, NULL);

    struct rush_client_config config;
    rush_client_config_default(&config);
    config.url = child.orders;
    config.timeout_ms = 2000;
    config.retries_max = 10; /* across a restart of rushd */
    cr_assert_eq(rush_client_open(&config, &client), 0);

    struct rush_subscriber_config sub_config;
    rush_subscriber_config_default(&sub_config);
    sub_config.pub_url = child.pub;
    sub_config.replay_url = child.replay;
    cr_assert_eq(rush_subscriber_open(&sub_config, &sub), 0);
}

static void stop(void)
{
    rush_client_close(client);
    client = NULL;
    rush_subscriber_close(sub);
    sub = NULL;
    child_cleanup(&child);
}

TestSuite(rules, .fini = stop, .timeout = 60);

static struct rush_result submit(struct rush_request request)
{
    struct rush_result result;
    cr_assert_eq(rush_client_submit(client, &request, 1, &result), 0, "submit: %s",
                 rush_client_last_error());
    return result;
}

static struct rush_request reserve(uint64_t sku, uint64_t user, uint32_t qty, const char *key)
{
    return (struct rush_request){.op = RUSH_OP_RESERVE,
                                 .sku_id = sku,
                                 .user_id = user,
                                 .qty = qty,
                                 .key = rush_client_key(key)};
}

static struct rush_request on_order(uint8_t op, uint64_t order, const char *key)
{
    return (struct rush_request){.op = op, .target_id = order, .key = rush_client_key(key)};
}

static struct rush_request on_sku(uint8_t op, uint64_t sku, uint64_t user, const char *key)
{
    return (struct rush_request){
        .op = op, .sku_id = sku, .user_id = user, .key = rush_client_key(key)};
}

static struct rush_result query(uint8_t op, uint64_t sku, uint64_t target)
{
    return submit((struct rush_request){.op = op, .sku_id = sku, .target_id = target});
}

static struct rush_result group_op(uint8_t op, uint64_t sku, uint64_t user, const char *key)
{
    return submit(on_sku(op, sku, user, key));
}

#define EXPECT_OUTCOME(result, want)                                                               \
    cr_assert_eq((result).outcome, (want), "%s: %s (reason %s), expected %s", #result,             \
                 rush_outcome_name((result).outcome), rush_reason_name((result).reason),           \
                 rush_outcome_name(want))

/* An admin command (JSON with the token); its reply must contain `expect`. */
static void admin(const char *body, const char *expect)
{
    char text[1024], reply[2048];
    snprintf(text, sizeof(text), "{\"token\":\"" CHILD_TOKEN "\",%s}", body);
    cr_assert_eq(child_json(child.admin, text, reply, sizeof(reply), 5000), 0, "no reply: %s",
                 text);
    cr_assert(strstr(reply, expect) != NULL, "%s -> %s (expected %s)", text, reply, expect);
}

/* Polls the stream into seen[] until an event matches (0 ids match any); fails at WAIT_MS. */
static const struct rush_stream_event *wait_event(uint8_t type, uint64_t order, uint64_t group)
{
    static struct rush_stream_event batch[512];
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    for (uint32_t next = 0;;) {
        for (; next < seen_count; next++) {
            const struct rush_stream_event *e = &seen[next];
            if (e->type == type && (order == 0 || e->order_id == order) &&
                (group == 0 || e->group_id == group))
                return e;
        }
        cr_assert_lt(rush_clock_monotonic_ms(), deadline,
                     "no %s event for order %#lx group %#lx in %d ms", rush_event_type_name(type),
                     order, group, WAIT_MS);
        int n = rush_subscriber_poll(sub, batch, 512, 50);
        cr_assert(n >= 0 || n == RUSH_ETIMEDOUT || n == RUSH_EPROTO, "poll: %s", rush_strerror(n));
        for (int i = 0; i < n; i++) {
            cr_assert_lt(seen_count, SEEN_MAX);
            seen[seen_count++] = batch[i];
        }
    }
}

/* Every event published so far (asks INFO, then polls until caught up). */
static void catch_up(void)
{
    static struct rush_stream_event batch[512];
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    rush_subscriber_resync(sub);
    while (!rush_subscriber_caught_up(sub)) {
        cr_assert_lt(rush_clock_monotonic_ms(), deadline, "the stream did not catch up");
        int n = rush_subscriber_poll(sub, batch, 512, 50);
        cr_assert(n >= 0 || n == RUSH_ETIMEDOUT || n == RUSH_EPROTO, "poll: %s", rush_strerror(n));
        for (int i = 0; i < n; i++) {
            cr_assert_lt(seen_count, SEEN_MAX);
            seen[seen_count++] = batch[i];
        }
    }
}

static uint32_t count_events(uint8_t type, uint64_t order)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < seen_count; i++)
        n += seen[i].type == type && (order == 0 || seen[i].order_id == order);
    return n;
}

/* A whole SKU definition as a JSON sku_put body (solo SKU, window from 0 to `end_ns`). */
static void put_solo(uint64_t id, int64_t stock, int64_t price, int64_t pay_ttl_ns, int64_t end_ns)
{
    char body[768];
    snprintf(body, sizeof(body),
             "\"op\":\"sku_put\",\"sku\":{\"id\":%lu,\"name\":\"s%lu\",\"stock\":%ld,"
             "\"price_fen\":%ld,\"start_ns\":0,\"end_ns\":\"%ld\",\"pay_ttl_ns\":%ld,"
             "\"order_qty_max\":3,\"user_qty_max\":3}",
             id, id, stock, price, end_ns, pay_ttl_ns);
    admin(body, "\"outcome\":\"ok\"");
}

/* ---- 1. money is fixed at the order ---------------------------------------------------------- */

Test(rules, item1_an_order_pays_and_is_refunded_at_its_own_price_after_a_price_change)
{
    start(ENGINE_ROOMY, "");
    put_solo(101, 10, 100, 15 * 60 * NS_PER_S, INT64_MAX); /* paid later, at the old price */
    put_solo(102, 10, 100, NS_PER_S, INT64_MAX);           /* expires, then paid: refund */
    struct rush_result kept = submit(reserve(101, 7, 2, "1-a"));
    struct rush_result lapsed = submit(reserve(102, 8, 2, "1-b"));
    EXPECT_OUTCOME(kept, RUSH_OK);
    EXPECT_OUTCOME(lapsed, RUSH_OK);

    put_solo(101, 10, 5000, 15 * 60 * NS_PER_S, INT64_MAX); /* the price fix */
    put_solo(102, 10, 5000, NS_PER_S, INT64_MAX);
    EXPECT_OUTCOME(submit(on_order(RUSH_OP_CONFIRM, kept.order_id, "1-pay-a")), RUSH_OK);
    const struct rush_stream_event *confirmed =
        wait_event(RUSH_EV_ORDER_CONFIRMED, kept.order_id, 0);
    cr_assert_eq(confirmed->price_fen, 100, "confirmed at %ld fen a unit, reserved at 100",
                 confirmed->price_fen);
    cr_assert_eq(confirmed->qty, 2);
    cr_assert_eq(confirmed->user_id, 7);

    wait_event(RUSH_EV_ORDER_EXPIRED, lapsed.order_id, 0);
    EXPECT_OUTCOME(submit(on_order(RUSH_OP_CONFIRM, lapsed.order_id, "1-pay-b")), RUSH_EXPIRED);
    const struct rush_stream_event *refund = wait_event(RUSH_EV_REFUND_DUE, lapsed.order_id, 0);
    cr_assert_eq(refund->price_fen, 100, "refund_due of %ld fen a unit, paid 100",
                 refund->price_fen);
    cr_assert_eq(refund->qty, 2);
    cr_assert_eq(refund->user_id, 8);
    /* A new order takes the new price. */
    struct rush_result later = submit(reserve(101, 9, 1, "1-c"));
    EXPECT_OUTCOME(later, RUSH_OK);
    EXPECT_OUTCOME(submit(on_order(RUSH_OP_CONFIRM, later.order_id, "1-pay-c")), RUSH_OK);
    cr_assert_eq(wait_event(RUSH_EV_ORDER_CONFIRMED, later.order_id, 0)->price_fen, 5000);
}

/* ---- 3. sold_out clicks beyond keys_max stop no payment, cancel or admin command ----------- */

#define ENGINE_FEW_KEYS                                                                            \
    "shards = 1\nring_slots = 64\norders_max = 4096\ngroups_max = 1024\nkeys_max = 64\n"           \
    "user_limits_max = 4096\n"
#define CLICKS 600 /* ten times keys_max */

Test(rules, item3_sold_out_clicks_beyond_keys_max_leave_payments_cancels_and_admin_ok)
{
    start(ENGINE_FEW_KEYS, "");
    put_solo(301, 2, 100, 15 * 60 * NS_PER_S, INT64_MAX);
    put_solo(302, 5, 100, NS_PER_S, INT64_MAX);
    struct rush_result paid = submit(reserve(301, 1, 1, "3-a"));
    struct rush_result kept = submit(reserve(301, 2, 1, "3-b"));
    struct rush_result lapsing = submit(reserve(302, 3, 1, "3-c"));
    EXPECT_OUTCOME(paid, RUSH_OK);
    EXPECT_OUTCOME(kept, RUSH_OK);
    EXPECT_OUTCOME(lapsing, RUSH_OK);

    /* The hot SKU is sold out: a flood of clicks, each with its own key. */
    static struct rush_request clicks[CLICKS];
    static struct rush_result answers[CLICKS];
    for (uint32_t i = 0; i < CLICKS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "3-click-%u", i);
        clicks[i] = reserve(301, 100 + i, 1, key);
    }
    cr_assert_eq(rush_client_submit(client, clicks, CLICKS, answers), 0);
    for (uint32_t i = 0; i < CLICKS; i++)
        EXPECT_OUTCOME(answers[i], RUSH_SOLD_OUT);

    /* Payments, cancels, an expiry's refund and every admin command still go through. */
    EXPECT_OUTCOME(submit(on_order(RUSH_OP_CONFIRM, paid.order_id, "3-pay-a")), RUSH_OK);
    EXPECT_OUTCOME(submit(on_order(RUSH_OP_CANCEL, kept.order_id, "3-cancel-b")), RUSH_OK);
    admin("\"op\":\"adjust\",\"sku\":301,\"amount\":3,\"key\":\"3-adj\"", "\"outcome\":\"ok\"");
    admin("\"op\":\"pause\",\"sku\":301,\"key\":\"3-pause\"", "\"outcome\":\"ok\"");
    admin("\"op\":\"resume\",\"sku\":301,\"key\":\"3-resume\"", "\"outcome\":\"ok\"");
    admin("\"op\":\"sku_put\",\"sku\":{\"id\":301,\"price_fen\":120}", "\"outcome\":\"ok\"");
    wait_event(RUSH_EV_ORDER_EXPIRED, lapsing.order_id, 0);
    EXPECT_OUTCOME(submit(on_order(RUSH_OP_CONFIRM, lapsing.order_id, "3-pay-c")), RUSH_EXPIRED);
    const struct rush_stream_event *refund = wait_event(RUSH_EV_REFUND_DUE, lapsing.order_id, 0);
    cr_assert_eq(refund->price_fen, 100);
    /* The units that came back sell again. */
    EXPECT_OUTCOME(submit(reserve(301, 9, 1, "3-d")), RUSH_OK);
    cr_assert_eq(wait_event(RUSH_EV_ORDER_CONFIRMED, paid.order_id, 0)->price_fen, 100);
}

/* ---- 4. one user's reserve+cancel loop: the anti-hoarding cap, not a full order table ------- */

#define ENGINE_FEW_ORDERS                                                                          \
    "shards = 1\nring_slots = 64\norders_max = 64\ngroups_max = 64\nkeys_max = 4096\n"             \
    "user_limits_max = 4096\nuser_unpaid_max = 2\nuser_churn_max = 5\n"
#define LOOPS 200

static void json_order(const char *text, char *reply, size_t size)
{
    cr_assert_eq(child_json(child.json, text, reply, size, 5000), 0, "no reply to %s", text);
}

static bool reply_is(const char *reply, const char *outcome)
{
    char want[64];
    snprintf(want, sizeof(want), "\"outcome\":\"%s\"", outcome);
    return strstr(reply, want) != NULL;
}

/* The "order" of a JSON reply (a decimal string). */
static uint64_t json_order_id(const char *reply)
{
    const char *at = strstr(reply, "\"order\":\"");
    cr_assert_not_null(at, "%s", reply);
    return strtoull(at + strlen("\"order\":\""), NULL, 10);
}

Test(rules, item4_a_reserve_cancel_loop_meets_the_hoarding_cap_and_never_fills_the_order_table)
{
    start(ENGINE_FEW_ORDERS, "");
    put_solo(401, 1000, 100, 15 * 60 * NS_PER_S, INT64_MAX);
    char text[256], reply[1024];
    uint32_t loops = 0;
    for (; loops < LOOPS; loops++) {
        snprintf(text, sizeof(text),
                 "{\"op\":\"reserve\",\"sku\":401,\"user\":7,\"qty\":1,\"key\":\"4-r-%u\"}", loops);
        json_order(text, reply, sizeof(reply));
        if (!reply_is(reply, "ok"))
            break;
        snprintf(text, sizeof(text), "{\"op\":\"cancel\",\"order\":\"%lu\",\"key\":\"4-c-%u\"}",
                 json_order_id(reply), loops);
        json_order(text, reply, sizeof(reply));
        cr_assert(reply_is(reply, "ok"), "cancel %u: %s", loops, reply);
    }
    cr_assert(reply_is(reply, "hoarding"), "after %u reserve+cancel rounds: %s", loops, reply);
    cr_assert_eq(loops, 5, "the churn cap is 5, the loop ran %u rounds", loops);
    /* Not remembered: the resend is decided again, the same way. */
    json_order(text, reply, sizeof(reply));
    cr_assert(reply_is(reply, "hoarding") && strstr(reply, "duplicate") == NULL, "%s", reply);

    /* Unpaid holds are capped too. */
    for (int i = 0; i < 3; i++) {
        snprintf(text, sizeof(text),
                 "{\"op\":\"reserve\",\"sku\":401,\"user\":8,\"qty\":1,\"key\":\"4-u-%d\"}", i);
        json_order(text, reply, sizeof(reply));
        cr_assert(reply_is(reply, i < 2 ? "ok" : "hoarding"), "unpaid hold %d: %s", i, reply);
    }
    /* Everybody else still buys: the order table was not exhausted by one user. */
    for (int user = 100; user < 150; user++) {
        snprintf(text, sizeof(text),
                 "{\"op\":\"reserve\",\"sku\":401,\"user\":%d,\"qty\":1,\"key\":\"4-o-%d\"}", user,
                 user);
        json_order(text, reply, sizeof(reply));
        cr_assert(reply_is(reply, "ok"), "user %d: %s", user, reply);
    }
    /* Counted among the outcomes, not as overload. */
    cr_assert_eq(child_json(child.admin, "{\"op\":\"stats\",\"token\":\"" CHILD_TOKEN "\"}", reply,
                            sizeof(reply), 5000),
                 0);
    const char *hoarding = strstr(reply, "\"hoarding\":");
    cr_assert_not_null(hoarding, "%s", reply);
    cr_assert_geq(strtol(hoarding + strlen("\"hoarding\":"), NULL, 10), 3, "%s", reply);
}

/* ---- 6. a put on a live SKU changes only what it names, across a snapshot and a restart ---- */

#define SKUS_ITEM6                                                                                 \
    "[sku 601]\nname = solo\nstock = 10\nprice = 100\nstart = now\nend = never\n"                  \
    "order_qty_max = 1\nuser_qty_max = 1\npay_ttl = 15m\n\n"                                       \
    "[sku 602]\nname = pair\nstock = 20\nprice = 500\nstart = now\nend = never\n"                  \
    "group_size = 2\ngroup_ttl = 10m\ngroups_open_max = 5\nuser_qty_max = 2\npay_ttl = 0\n"

Test(rules, item6_a_live_put_keeps_the_pause_and_adjustments_across_a_snapshot_and_a_restart)
{
    start(ENGINE_ROOMY, SKUS_ITEM6);
    struct rush_result first = submit(reserve(601, 1, 1, "6-a"));
    EXPECT_OUTCOME(first, RUSH_OK);
    admin("\"op\":\"adjust\",\"sku\":601,\"amount\":5,\"key\":\"6-adj\"", "\"outcome\":\"ok\"");
    admin("\"op\":\"pause\",\"sku\":601,\"key\":\"6-pause\"", "\"outcome\":\"ok\"");
    admin("\"op\":\"sku_put\",\"sku\":{\"id\":601,\"price_fen\":300}", "\"outcome\":\"ok\"");
    EXPECT_OUTCOME(group_op(RUSH_OP_GROUP_OPEN, 602, 1, "6-open"), RUSH_OK);
    EXPECT_OUTCOME(group_op(RUSH_OP_GROUP_JOIN_ANY, 602, 2, "6-join"), RUSH_OK); /* completed */
    admin("\"op\":\"sku_put\",\"sku\":{\"id\":602,\"group_size\":3}", "sku_has_groups");
    admin("\"op\":\"snapshot\"", "\"outcome\":\"ok\"");

    /* kill -9 and start again: the snapshot loads, and the campaign's own definitions of 601
     * and 602 do not overwrite what the operator changed. */
    cr_assert_eq(child_stop(&child, SIGKILL), 128 + SIGKILL);
    child_run(&child, NULL);
    struct rush_result sku = query(RUSH_OP_QUERY_SKU, 601, 0);
    cr_assert_eq(sku.state, 1, "the pause was lost");
    cr_assert_eq(sku.remaining, 14, "available %ld: 10 + 5 adjusted - 1 held", sku.remaining);
    EXPECT_OUTCOME(submit(reserve(601, 2, 1, "6-b")), RUSH_PAUSED);
    EXPECT_OUTCOME(group_op(RUSH_OP_GROUP_OPEN, 602, 3, "6-open-2"), RUSH_OK);

    admin("\"op\":\"resume\",\"sku\":601,\"key\":\"6-resume\"", "\"outcome\":\"ok\"");
    struct rush_result second = submit(reserve(601, 2, 1, "6-c"));
    EXPECT_OUTCOME(second, RUSH_OK);
    EXPECT_OUTCOME(submit(on_order(RUSH_OP_CONFIRM, second.order_id, "6-pay-c")), RUSH_OK);
    EXPECT_OUTCOME(submit(on_order(RUSH_OP_CONFIRM, first.order_id, "6-pay-a")), RUSH_OK);
    cr_assert_eq(wait_event(RUSH_EV_ORDER_CONFIRMED, second.order_id, 0)->price_fen, 300);
    cr_assert_eq(wait_event(RUSH_EV_ORDER_CONFIRMED, first.order_id, 0)->price_fen, 100);
}

/* ---- 7. a second payment is refunded ------------------------------------------------------- */

Test(rules, item7_a_second_payment_of_a_confirmed_order_leaves_a_refund_due)
{
    start(ENGINE_ROOMY, "");
    put_solo(701, 5, 250, 15 * 60 * NS_PER_S, INT64_MAX);
    struct rush_result order = submit(reserve(701, 3, 1, "7-a"));
    EXPECT_OUTCOME(order, RUSH_OK);
    EXPECT_OUTCOME(submit(on_order(RUSH_OP_CONFIRM, order.order_id, "7-pay-1")), RUSH_OK);
    struct rush_result second = submit(on_order(RUSH_OP_CONFIRM, order.order_id, "7-pay-2"));
    cr_assert_neq(second.outcome, RUSH_OK, "a second payment confirmed again");
    const struct rush_stream_event *refund = wait_event(RUSH_EV_REFUND_DUE, order.order_id, 0);
    cr_assert_eq(refund->price_fen, 250);
    cr_assert_eq(refund->qty, 1);
    cr_assert_eq(refund->user_id, 3);
    cr_assert_eq(refund->op, RUSH_OP_CONFIRM, "the refund names the payment that caused it");
    catch_up();
    cr_assert_eq(count_events(RUSH_EV_ORDER_CONFIRMED, order.order_id), 1);
    cr_assert_eq(count_events(RUSH_EV_REFUND_DUE, order.order_id), 1);
    /* The retry of the second payment is the same answer and no second refund. */
    struct rush_result again = submit(on_order(RUSH_OP_CONFIRM, order.order_id, "7-pay-2"));
    cr_assert(again.flags & RUSH_RESULT_DUPLICATE);
    cr_assert_eq(again.outcome, second.outcome);
    catch_up();
    cr_assert_eq(count_events(RUSH_EV_REFUND_DUE, order.order_id), 1);
}

/* ---- 8. deadlines at the nanosecond --------------------------------------------------------- */

Test(rules, item8_a_confirm_just_after_the_pay_deadline_is_expired_with_a_refund)
{
    start(ENGINE_ROOMY, "");
    const int64_t ttl = 300 * NS_PER_MS;
    put_solo(801, 5, 100, ttl, INT64_MAX);
    /* The engine clock is the wall clock at start plus monotonic time: the reservation's time,
     * and so its deadline, lies between the clock read before sending and after the answer. */
    int64_t sent = rush_clock_wall_ns();
    struct rush_result order = submit(reserve(801, 4, 1, "8-a"));
    EXPECT_OUTCOME(order, RUSH_OK);
    int64_t deadline_earliest = sent + ttl, deadline_latest = rush_clock_wall_ns() + ttl;
    while (rush_clock_wall_ns() <= deadline_latest + NS_PER_MS) /* pay just after it */
        child_sleep_ms(0);
    struct rush_result paid = submit(on_order(RUSH_OP_CONFIRM, order.order_id, "8-pay"));
    EXPECT_OUTCOME(paid, RUSH_EXPIRED);
    const struct rush_stream_event *expired = wait_event(RUSH_EV_ORDER_EXPIRED, order.order_id, 0);
    cr_assert_geq(expired->time_ns, deadline_earliest, "expired %ld ns before its deadline",
                  deadline_earliest - expired->time_ns);
    const struct rush_stream_event *refund = wait_event(RUSH_EV_REFUND_DUE, order.order_id, 0);
    cr_assert_eq(refund->price_fen, 100);
    cr_assert_eq(refund->op, RUSH_OP_CONFIRM);
    /* The unit came back. */
    EXPECT_OUTCOME(submit(reserve(801, 5, 1, "8-b")), RUSH_OK);
    cr_assert_eq(query(RUSH_OP_QUERY_SKU, 801, 0).remaining, 4);
}

/* ---- 10. a retry is the whole request ------------------------------------------------------- */

Test(rules, item10_the_same_key_on_a_different_request_is_invalid_and_takes_nothing)
{
    start(ENGINE_ROOMY, "");
    put_solo(1001, 10, 100, 15 * 60 * NS_PER_S, INT64_MAX);
    put_solo(1002, 10, 100, 15 * 60 * NS_PER_S, INT64_MAX);
    struct rush_result first = submit(reserve(1001, 1, 1, "10-k"));
    EXPECT_OUTCOME(first, RUSH_OK);
    struct rush_request others[] = {
        reserve(1001, 2, 1, "10-k"),                       /* another user */
        reserve(1001, 1, 2, "10-k"),                       /* another quantity */
        reserve(1002, 1, 1, "10-k"),                       /* another SKU */
        on_order(RUSH_OP_CONFIRM, first.order_id, "10-k"), /* another op */
        on_sku(RUSH_OP_GROUP_JOIN_ANY, 1001, 1, "10-k"),   /* another op on the same SKU */
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        struct rush_result r = submit(others[i]);
        cr_assert_eq(r.outcome, RUSH_INVALID, "request %zu with a reused key: %s", i,
                     rush_outcome_name(r.outcome));
        cr_assert_eq(r.reason, RUSH_REASON_KEY_REUSED, "request %zu: %s", i,
                     rush_reason_name(r.reason));
        cr_assert_neq(r.order_id, first.order_id, "request %zu got the first buyer's order", i);
    }
    struct rush_result retry = submit(reserve(1001, 1, 1, "10-k"));
    cr_assert(retry.flags & RUSH_RESULT_DUPLICATE);
    cr_assert_eq(retry.order_id, first.order_id);
    struct rush_result sku = query(RUSH_OP_QUERY_SKU, 1001, 0);
    cr_assert_eq(sku.reserved, 1, "the reused key took stock: %ld reserved", sku.reserved);
    cr_assert_eq(query(RUSH_OP_QUERY_SKU, 1002, 0).reserved, 0);
}

/* ---- 11. groups near the end of the sale; the open-group cap --------------------------------- */

static void put_group(uint64_t id, uint32_t size, uint32_t open_max, int64_t ttl_ns, int64_t end_ns)
{
    char body[768];
    snprintf(body, sizeof(body),
             "\"op\":\"sku_put\",\"sku\":{\"id\":%lu,\"name\":\"g%lu\",\"stock\":100,"
             "\"price_fen\":900,\"start_ns\":0,\"end_ns\":\"%ld\",\"pay_ttl_ns\":0,"
             "\"order_qty_max\":1,\"user_qty_max\":3,\"group_size\":%u,\"group_ttl_ns\":%ld,"
             "\"groups_open_max\":%u}",
             id, id, end_ns, size, ttl_ns, open_max);
    admin(body, "\"outcome\":\"ok\"");
}

Test(rules, item11_a_group_opened_near_the_end_settles_at_the_end)
{
    start(ENGINE_ROOMY, "");
    int64_t end = rush_clock_wall_ns() + 1500 * NS_PER_MS;
    put_group(1101, 3, 10, 10 * 60 * NS_PER_S, end);
    struct rush_result opened = group_op(RUSH_OP_GROUP_OPEN, 1101, 1, "11-open");
    EXPECT_OUTCOME(opened, RUSH_OK);
    struct rush_result group = query(RUSH_OP_QUERY_GROUP, 0, opened.group_id);
    cr_assert_eq(group.reserved, end, "the deadline %ld is not the sale's end %ld", group.reserved,
                 end);
    EXPECT_OUTCOME(submit((struct rush_request){.op = RUSH_OP_GROUP_JOIN,
                                                .target_id = opened.group_id,
                                                .user_id = 2,
                                                .key = rush_client_key("11-join")}),
                   RUSH_OK);
    /* Settled at the end of the sale, not ten minutes later: the leader's money comes back. */
    const struct rush_stream_event *failed = wait_event(RUSH_EV_GROUP_FAILED, 0, opened.group_id);
    cr_assert_geq(failed->time_ns, end);
    cr_assert_eq(failed->op, 0, "a deadline decided it");
    const struct rush_stream_event *refund = wait_event(RUSH_EV_REFUND_DUE, opened.order_id, 0);
    cr_assert_eq(refund->price_fen, 900);
    cr_assert_eq(refund->user_id, 1);
    cr_assert_eq(query(RUSH_OP_QUERY_GROUP, 0, opened.group_id).state, RUSH_GROUP_FAILED);
    EXPECT_OUTCOME(group_op(RUSH_OP_GROUP_JOIN_ANY, 1101, 3, "11-late"), RUSH_ENDED);
}

Test(rules, item11_at_groups_open_max_open_and_join_any_answer_group_full)
{
    start(ENGINE_ROOMY, "");
    put_group(1102, 3, 2, 10 * 60 * NS_PER_S, INT64_MAX);
    EXPECT_OUTCOME(group_op(RUSH_OP_GROUP_OPEN, 1102, 1, "11-a"), RUSH_OK);
    EXPECT_OUTCOME(group_op(RUSH_OP_GROUP_OPEN, 1102, 2, "11-b"), RUSH_OK);
    struct rush_result capped = group_op(RUSH_OP_GROUP_OPEN, 1102, 3, "11-c");
    EXPECT_OUTCOME(capped, RUSH_GROUP_FULL);
    /* A join_any that finds no group it may join would open one: the cap again. */
    EXPECT_OUTCOME(group_op(RUSH_OP_GROUP_JOIN_ANY, 1102, 4, "11-d"), RUSH_OK);
    EXPECT_OUTCOME(group_op(RUSH_OP_GROUP_JOIN_ANY, 1102, 4, "11-e"), RUSH_OK);
    EXPECT_OUTCOME(group_op(RUSH_OP_GROUP_JOIN_ANY, 1102, 4, "11-f"), RUSH_GROUP_FULL);
    /* A business outcome: the resend gets it again, and it is not counted as overload. */
    EXPECT_OUTCOME(group_op(RUSH_OP_GROUP_OPEN, 1102, 3, "11-c"), RUSH_GROUP_FULL);
    char reply[4096];
    cr_assert_eq(child_json(child.admin, "{\"op\":\"stats\",\"token\":\"" CHILD_TOKEN "\"}", reply,
                            sizeof(reply), 5000),
                 0);
    const char *busy = strstr(reply, "\"busy\":");
    cr_assert_not_null(busy, "%s", reply);
    cr_assert_eq(strtol(busy + strlen("\"busy\":"), NULL, 10), 0, "busy counted: %s", reply);
}

/* ---- 13. a flipped bit in the last complete batch is corruption ------------------------------ */

/* The newest segment of shard 0 in the data directory. */
static void last_segment(char *path, size_t size)
{
    DIR *dir = opendir(child.data);
    cr_assert_not_null(dir);
    char best[256] = "";
    for (struct dirent *entry; (entry = readdir(dir)) != NULL;)
        if (strncmp(entry->d_name, "wal-00-", 7) == 0 && strcmp(entry->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", entry->d_name);
    closedir(dir);
    cr_assert_neq(best[0], '\0', "no log segment in %s", child.data);
    snprintf(path, size, "%s/%s", child.data, best);
}

/*
 * The offset of the last batch in a segment, read from the documented layout (wal_record.h: a
 * 64-byte header with the magic "RWAL" and the event count at 12, then 64 bytes per event; an
 * all-zero header ends the segment). Its event count in *events.
 */
static long last_batch(FILE *file, uint32_t *events)
{
    long offset = 0, last = -1;
    for (int guard = 0; guard < 1000000; guard++) {
        unsigned char header[64];
        if (fseek(file, offset, SEEK_SET) != 0 || fread(header, 1, 64, file) != 64 ||
            memcmp(header, "RWAL", 4) != 0)
            break;
        uint32_t count;
        memcpy(&count, header + 12, sizeof(count));
        last = offset;
        *events = count;
        offset += 64 + 64 * (long)count;
    }
    return last;
}

Test(rules, item13_a_flipped_bit_in_the_last_complete_batch_stops_rushd_and_fails_verify)
{
    start(ENGINE_ROOMY, "");
    put_solo(1301, 10, 100, 15 * 60 * NS_PER_S, INT64_MAX);
    for (int i = 0; i < 3; i++) { /* one batch each: the last one is acknowledged and published */
        char key[16];
        snprintf(key, sizeof(key), "13-%d", i);
        EXPECT_OUTCOME(submit(reserve(1301, 1 + (uint64_t)i, 1, key)), RUSH_OK);
    }
    cr_assert_eq(child_stop(&child, SIGTERM), 0);

    char segment[CHILD_PATH_BYTES + 300];
    last_segment(segment, sizeof(segment));
    FILE *file = fopen(segment, "r+b");
    cr_assert_not_null(file);
    uint32_t events = 0;
    long batch = last_batch(file, &events);
    cr_assert_gt(batch, 0, "no batch found in %s", segment);
    cr_assert_gt(events, 0);
    long at = batch + 64 + 17; /* a byte inside the batch's first event */
    cr_assert_eq(fseek(file, at, SEEK_SET), 0);
    int byte = fgetc(file);
    cr_assert_neq(byte, EOF);
    cr_assert_eq(fseek(file, at, SEEK_SET), 0);
    fputc(byte ^ 0x10, file);
    cr_assert_eq(fclose(file), 0);

    /* rushd refuses to start and names the file. */
    child.pid = child_exec(&child, NULL, NULL);
    int status = child_wait_ready(&child, CHILD_READY_MS);
    cr_assert_gt(status, 0, "rushd started on a damaged log (%d)", status);
    child.pid = -1;
    char text[8192] = "";
    FILE *log = fopen(child.log, "r");
    cr_assert_not_null(log);
    size_t len = fread(text, 1, sizeof(text) - 1, log);
    text[len] = '\0';
    fclose(log);
    const char *name = strrchr(segment, '/') + 1;
    cr_assert_not_null(strstr(text, name), "the refusal does not name %s:\n%s", name, text);

    /* rush-wal verify fails too. */
    char command[5 * CHILD_PATH_BYTES];
    snprintf(command, sizeof(command), "'%s/rush-wal' verify '%s' >>'%s' 2>&1", child.bin,
             child.data, child.log);
    int rc = system(command);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) != 0, "rush-wal verify passed a damaged log");
}
