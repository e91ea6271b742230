/*
 * The SKU definition: one validator (proto/codec/sku.c) and what a sku_put may change.
 *
 * 1. Agreement: a definition the campaign file refuses is refused by the JSON sku_put, the
 *    binary SKU_PUT and the engine's decider, with the same words where the form carries words.
 * 2. A put on a live SKU (in-process, on a shard): it changes only the fields it names; a pause
 *    and stock adjustments survive a put that does not name them; a change that would break what
 *    is held is refused with its reason, and the shard's invariants hold after every test.
 * 3. The same through rushd's admin JSON endpoint.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/number.h"
#include "campaign/campaign.h"
#include "codec/json.h"
#include "codec/sku.h"
#include "rush/wire.h"
#include "rushd_child.h"
#include "support.h"

/* ---- 1. one validator ---------------------------------------------------------------------- */

static struct rush_sku def_solo(void)
{
    return (struct rush_sku){.id = 7001,
                             .name = "solo",
                             .stock = 10,
                             .price_fen = 100,
                             .start_ns = 1000,
                             .end_ns = INT64_C(4000000000000000000),
                             .pay_ttl_ns = 60 * SECOND,
                             .order_qty_max = 2,
                             .user_qty_max = 4};
}

static struct rush_sku def_group(uint8_t policy)
{
    struct rush_sku sku = def_solo();
    sku.group_size = 3;
    sku.group_ttl_ns = 60 * SECOND;
    sku.groups_open_max = 8;
    sku.virtual_policy = policy;
    sku.virtual_seats_max = policy == RUSH_VIRTUAL_AT_MOST ? 1 : 0;
    sku.virtual_budget = policy == RUSH_VIRTUAL_NONE ? 0 : 10;
    return sku;
}

/* The campaign file's text for a definition. */
static void campaign_text(const struct rush_sku *s, char *out, size_t cap)
{
    static const char *const policies[] = {"none", "fill", "at_most"};
    size_t n = (size_t)snprintf(out, cap, "[sku %" PRIu64 "]\nname = %s\n", s->id, s->name);
    if (s->unlimited)
        n += (size_t)snprintf(out + n, cap - n, "stock = unlimited\n");
    else
        n += (size_t)snprintf(out + n, cap - n, "stock = %" PRId64 "\n", s->stock);
    n += (size_t)snprintf(out + n, cap - n,
                          "price = %" PRId64 "\nstart = %" PRId64 "\nend = %" PRId64
                          "\npay_ttl = %" PRId64 "ns\norder_qty_max = %u\nuser_qty_max = %u\n",
                          s->price_fen, s->start_ns, s->end_ns, s->pay_ttl_ns, s->order_qty_max,
                          s->user_qty_max);
    if (s->group_size != 0)
        n += (size_t)snprintf(out + n, cap - n,
                              "group_size = %u\ngroup_ttl = %" PRId64 "ns\ngroups_open_max = %u\n",
                              s->group_size, s->group_ttl_ns, s->groups_open_max);
    if (s->virtual_policy != RUSH_VIRTUAL_NONE)
        n += (size_t)snprintf(out + n, cap - n, "virtual_policy = %s\n",
                              policies[s->virtual_policy]);
    if (s->virtual_seats_max != 0)
        n += (size_t)snprintf(out + n, cap - n, "virtual_seats_max = %u\n", s->virtual_seats_max);
    if (s->virtual_budget != 0)
        n += (size_t)snprintf(out + n, cap - n, "virtual_budget = %u\n", s->virtual_budget);
    cr_assert_lt(n, cap);
}

static bool ends_with(const char *text, const char *tail)
{
    size_t a = strlen(text), b = strlen(tail);
    return a >= b && strcmp(text + a - b, tail) == 0;
}

/*
 * What each of the four doors says about `def`: all accept it or all refuse it; the JSON and
 * binary forms refuse with rush_sku_check's words, and so does the campaign file for a rule
 * across fields (`campaign_words`; a single value out of range it refuses while reading it, with
 * the value's line and the accepted form instead).
 */
static void expect_agreement_as(const struct rush_sku *def, const char *label, bool campaign_words)
{
    char reason[256] = "";
    bool valid = rush_sku_check(def, reason, sizeof reason) == 0;

    char text[2048], why[512] = "";
    campaign_text(def, text, sizeof text);
    struct rush_campaign campaign;
    int rc = rush_campaign_parse("t.ini", text, strlen(text), T0_NS, &campaign, why, sizeof why);
    cr_expect_eq(rc == 0, valid, "%s: campaign: %s", label, why);
    if (rc == 0)
        rush_campaign_free(&campaign);
    else if (campaign_words)
        cr_expect(ends_with(why, reason), "%s: campaign says '%s', want '%s'", label, why, reason);

    cr_assert_gt(rush_json_encode_sku_put(def, text, sizeof text), 0);
    struct rush_json_command command;
    rc = rush_json_decode(text, strlen(text), &command, why, sizeof why);
    cr_expect_eq(rc == 0, valid, "%s: json: %s", label, why);
    if (rc != 0)
        cr_expect(ends_with(why, reason), "%s: json says '%s', want '%s'", label, why, reason);

    uint8_t message[32 + sizeof(struct rush_sku)];
    cr_assert_eq(rush_wire_encode_skus(message, sizeof message, 1, def, 1), (int)sizeof message);
    struct rush_wire_view view;
    struct rush_wire_error error;
    cr_assert_eq(rush_wire_decode(message, sizeof message, &view, &error), 0);
    cr_expect_eq(view.invalid_count == 0, valid, "%s: wire: %s", label, error.text);
    cr_expect_eq(rush_wire_sku_reason(def), valid ? RUSH_REASON_NONE : RUSH_REASON_SKU_DEF);
    if (!valid)
        cr_expect(ends_with(error.text, reason), "%s: wire says '%s', want '%s'", label, error.text,
                  reason);

    struct rush_shard *shard = shard_new(small_limits(), 1, NULL);
    struct rush_result result = put_at(shard, T0_NS, *def);
    cr_expect_eq(result.outcome, valid ? RUSH_OK : RUSH_INVALID, "%s: engine", label);
    if (!valid)
        cr_expect_eq(result.reason, RUSH_REASON_SKU_DEF, "%s: engine", label);
    rush_shard_destroy(shard);
}

static void expect_agreement(const struct rush_sku *def, const char *label)
{
    expect_agreement_as(def, label, true);
}

Test(sku, valid_definitions_pass_every_door)
{
    struct rush_sku solo = def_solo(), fill = def_group(RUSH_VIRTUAL_FILL);
    expect_agreement(&solo, "solo");
    expect_agreement(&fill, "fill");
    struct rush_sku at_most = def_group(RUSH_VIRTUAL_AT_MOST);
    expect_agreement(&at_most, "at_most");
    struct rush_sku unlimited = def_solo();
    unlimited.unlimited = 1;
    unlimited.stock = 0;
    expect_agreement(&unlimited, "unlimited");
}

Test(sku, a_definition_the_campaign_refuses_is_refused_by_json_wire_and_engine)
{
    struct rush_sku d = def_solo();
    d.order_qty_max = 3;
    d.user_qty_max = 2; /* the rule decide.c used to skip */
    expect_agreement(&d, "user_qty_max below order_qty_max");

    d = def_solo();
    d.end_ns = d.start_ns;
    expect_agreement(&d, "empty window");

    d = def_solo();
    d.pay_ttl_ns = RUSH_TTL_NS_MAX + 1;
    expect_agreement_as(&d, "pay_ttl over 168h", false);

    d = def_solo();
    d.price_fen = RUSH_PRICE_FEN_MAX + 1;
    expect_agreement_as(&d, "price over the limit", false);

    d = def_group(RUSH_VIRTUAL_FILL);
    d.virtual_budget = 0; /* the budget check decide.c used to skip */
    expect_agreement(&d, "fill without a budget");

    d = def_group(RUSH_VIRTUAL_FILL);
    d.virtual_seats_max = 1;
    expect_agreement(&d, "seats max with fill");

    d = def_group(RUSH_VIRTUAL_AT_MOST);
    d.virtual_seats_max = d.group_size;
    expect_agreement(&d, "at_most as large as the group");

    d = def_group(RUSH_VIRTUAL_NONE);
    d.group_ttl_ns = SECOND / 2;
    expect_agreement(&d, "group ttl under 1s");
}

/* ---- 2. a put on a live SKU, in-process ----------------------------------------------------- */

static struct rush_shard *shard;
static uint64_t next_key = 1;

static void shard_setup(void)
{
    shard = shard_new(small_limits(), 7, NULL);
}

static void shard_teardown(void)
{
    char why[256] = "";
    int rc = rush_shard_check(shard, why, sizeof why);
    rush_shard_destroy(shard);
    cr_assert_eq(rc, 0, "invariant broken: %s", why);
}

TestSuite(live, .init = shard_setup, .fini = shard_teardown);

static struct rush_result op(uint8_t kind, uint64_t sku, uint64_t user, uint32_t qty,
                             uint64_t target)
{
    return decide_at(shard, T0_NS, request_of(kind, sku, user, qty, target, next_key++));
}

static struct rush_sku_ledger ledger(uint64_t sku)
{
    struct rush_sku_ledger l;
    cr_assert_eq(rush_shard_ledger(shard, sku, &l), 0);
    return l;
}

/* A put naming `fields` of `values` (the rest of `values` is ignored). */
static struct rush_result put_fields(struct rush_sku values, uint32_t fields)
{
    values.fields = fields;
    return put_at(shard, T0_NS, values);
}

Test(live, a_put_that_does_not_name_paused_or_stock_keeps_the_pause_and_the_adjustments)
{
    cr_assert_eq(put_at(shard, T0_NS, sku_solo(1, 10)).outcome, RUSH_OK);
    struct rush_request adjust = request_of(RUSH_OP_ADJUST, 1, 0, 0, 0, next_key++);
    adjust.amount = 5;
    cr_assert_eq(decide_at(shard, T0_NS, adjust).outcome, RUSH_OK);
    cr_assert_eq(op(RUSH_OP_PAUSE, 1, 0, 0, 0).outcome, RUSH_OK);

    struct rush_sku again = sku_solo(1, 10); /* the campaign's definition, price fixed */
    again.price_fen = 250;
    struct rush_result r =
        put_fields(again, RUSH_SKU_FIELDS_ALL & ~(RUSH_SKU_FIELD_PAUSED | RUSH_SKU_FIELD_STOCK));
    cr_assert_eq(r.outcome, RUSH_OK, "reason %u", r.reason);
    cr_assert_eq(r.remaining, 15);
    struct rush_sku_ledger l = ledger(1);
    cr_assert_eq(l.stock_total, 15, "the +5 adjustment survives");
    cr_assert(l.paused, "the pause survives");
    cr_assert_eq(op(RUSH_OP_RESERVE, 1, 7, 1, 0).outcome, RUSH_PAUSED);

    cr_assert_eq(put_fields(again, RUSH_SKU_FIELD_PAUSED).outcome, RUSH_OK); /* paused 0 */
    struct rush_result order = op(RUSH_OP_RESERVE, 1, 7, 1, 0);
    cr_assert_eq(order.outcome, RUSH_OK);
    cr_assert_eq(order.remaining, 14);
}

Test(live, a_partial_put_changes_only_what_it_names)
{
    struct rush_sku def = sku_solo(1, 10);
    def.paused = 1;
    cr_assert_eq(put_at(shard, T0_NS, def).outcome, RUSH_OK);
    struct rush_sku price = {.id = 1, .price_fen = 999}; /* everything else zero: not named */
    cr_assert_eq(put_fields(price, RUSH_SKU_FIELD_PRICE).outcome, RUSH_OK);
    struct rush_sku_ledger l = ledger(1);
    cr_assert_eq(l.stock_total, 10);
    cr_assert(l.paused);
    cr_assert(!l.unlimited);

    struct rush_sku stock = {.id = 1, .stock = 30};
    cr_assert_eq(put_fields(stock, RUSH_SKU_FIELD_STOCK).outcome, RUSH_OK);
    cr_assert_eq(ledger(1).stock_total, 30, "a named stock replaces the total");

    struct rush_sku limits = {.id = 1, .user_qty_max = 1}; /* below order_qty_max 5 */
    cr_assert_eq(put_fields(limits, RUSH_SKU_FIELD_USER_QTY_MAX).reason, RUSH_REASON_SKU_DEF,
                 "the merged definition meets the one validator");
    cr_assert_eq(ledger(1).stock_total, 30, "a refused put changes nothing");
}

Test(live, a_partial_put_cannot_create_a_sku)
{
    struct rush_sku price = {.id = 2, .price_fen = 5};
    cr_assert_eq(put_fields(price, RUSH_SKU_FIELD_PRICE).reason, RUSH_REASON_SKU_DEF);
    struct rush_sku_ledger l;
    cr_assert_eq(rush_shard_ledger(shard, 2, &l), -ENOENT);
    struct rush_sku whole = sku_solo(2, 3); /* every required field named: a whole definition */
    cr_assert_eq(put_fields(whole, RUSH_SKU_FIELDS_REQUIRED | RUSH_SKU_FIELD_STOCK).outcome,
                 RUSH_OK);
    cr_assert_eq(ledger(2).stock_total, 3);
    struct rush_sku bad = sku_solo(3, 3);
    cr_assert_eq(put_fields(bad, RUSH_SKU_FIELDS_ALL + 1).reason, RUSH_REASON_SKU_DEF,
                 "an unknown field bit");
}

Test(live, stock_below_what_is_held_is_refused)
{
    cr_assert_eq(put_at(shard, T0_NS, sku_solo(1, 10)).outcome, RUSH_OK);
    cr_assert_eq(op(RUSH_OP_RESERVE, 1, 7, 4, 0).outcome, RUSH_OK);
    struct rush_sku stock = {.id = 1, .stock = 3};
    cr_assert_eq(put_fields(stock, RUSH_SKU_FIELD_STOCK).reason, RUSH_REASON_BELOW_RESERVED);
    stock.stock = 4;
    cr_assert_eq(put_fields(stock, RUSH_SKU_FIELD_STOCK).outcome, RUSH_OK, "exactly what is held");
    cr_assert_eq(ledger(1).available, 0);
}

Test(live, a_user_limit_below_what_a_user_holds_is_refused)
{
    cr_assert_eq(put_at(shard, T0_NS, sku_solo(1, 10)).outcome, RUSH_OK); /* 5 per order/user */
    cr_assert_eq(op(RUSH_OP_RESERVE, 1, 7, 3, 0).outcome, RUSH_OK);
    cr_assert_eq(op(RUSH_OP_RESERVE, 1, 8, 1, 0).outcome, RUSH_OK);
    struct rush_sku limits = {.id = 1, .order_qty_max = 2, .user_qty_max = 2};
    uint32_t both = RUSH_SKU_FIELD_ORDER_QTY_MAX | RUSH_SKU_FIELD_USER_QTY_MAX;
    cr_assert_eq(put_fields(limits, both).reason, RUSH_REASON_LIMIT_BELOW_HELD, "user 7 holds 3");
    limits.order_qty_max = limits.user_qty_max = 3;
    cr_assert_eq(put_fields(limits, both).outcome, RUSH_OK, "user 7 holds exactly 3");
    cr_assert_eq(op(RUSH_OP_RESERVE, 1, 7, 1, 0).outcome, RUSH_LIMIT_EXCEEDED);
    cr_assert_eq(op(RUSH_OP_RESERVE, 1, 8, 2, 0).outcome, RUSH_OK);
}

Test(live, group_size_is_fixed_once_the_sku_has_had_a_group)
{
    cr_assert_eq(put_at(shard, T0_NS, sku_group(1, 10, 2)).outcome, RUSH_OK);
    struct rush_sku size = {.id = 1, .group_size = 3};
    cr_assert_eq(put_fields(size, RUSH_SKU_FIELD_GROUP_SIZE).outcome, RUSH_OK, "no group yet");
    size.group_size = 2;
    cr_assert_eq(put_fields(size, RUSH_SKU_FIELD_GROUP_SIZE).outcome, RUSH_OK);

    struct rush_result open = op(RUSH_OP_GROUP_OPEN, 1, 100, 0, 0);
    cr_assert_eq(open.outcome, RUSH_OK);
    cr_assert_eq(op(RUSH_OP_GROUP_JOIN, 0, 101, 0, open.group_id).outcome, RUSH_OK);
    cr_assert_eq(ledger(1).groups_open, 0, "completed: no group is open any more");
    size.group_size = 3;
    cr_assert_eq(put_fields(size, RUSH_SKU_FIELD_GROUP_SIZE).reason, RUSH_REASON_SKU_HAS_GROUPS,
                 "a completed group of 2 must stay consistent with its SKU");
    struct rush_sku price = {.id = 1, .price_fen = 7};
    cr_assert_eq(put_fields(price, RUSH_SKU_FIELD_PRICE).outcome, RUSH_OK,
                 "other fields still change");
}

Test(live, a_virtual_budget_below_what_groups_used_is_refused)
{
    struct rush_sku def = sku_group(1, 10, 3);
    def.virtual_policy = RUSH_VIRTUAL_FILL;
    def.virtual_budget = 5;
    def.group_ttl_ns = SECOND;
    cr_assert_eq(put_at(shard, T0_NS, def).outcome, RUSH_OK);
    cr_assert_eq(op(RUSH_OP_GROUP_OPEN, 1, 100, 0, 0).outcome, RUSH_OK);
    struct rush_result tick;
    rush_shard_begin(shard, T0_NS + 2 * SECOND); /* the deadline: fill 2 virtual seats */
    rush_shard_end(shard);
    cr_assert_eq(ledger(1).virtual_used, 2);
    struct rush_sku budget = {.id = 1, .virtual_budget = 1};
    cr_assert_eq(put_fields(budget, RUSH_SKU_FIELD_VIRTUAL_BUDGET).reason,
                 RUSH_REASON_LIMIT_BELOW_HELD);
    budget.virtual_budget = 2;
    tick = put_fields(budget, RUSH_SKU_FIELD_VIRTUAL_BUDGET);
    cr_assert_eq(tick.outcome, RUSH_OK);
}

/* ---- 3. through rushd's admin JSON endpoint ------------------------------------------------ */

TestSuite(json_put, .init = NULL, .fini = rushd_cleanup, .timeout = 120);

/* One admin command: `body` is the JSON object without its closing brace's token. */
static void admin(const char *body, char *reply, size_t cap)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"token\":\"%s\",%s}", CHILD_TOKEN, body);
    cr_assert_eq(child_json(rushd.admin, text, reply, cap, 5000), 0, "no answer to %s", text);
}

static void order(const char *body, char *reply, size_t cap)
{
    cr_assert_eq(child_json(rushd.json, body, reply, cap, 5000), 0, "no answer to %s", body);
}

#define EXPECT_IN(reply, text) cr_expect(strstr(reply, text) != NULL, "want %s in %s", text, reply)

Test(json_put, a_named_field_changes_and_nothing_else_does)
{
    rushd_start(false);
    char reply[1024];
    admin("\"op\":\"adjust\",\"sku\":1002,\"amount\":5,\"key\":\"a1\"", reply, sizeof reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    admin("\"op\":\"pause\",\"sku\":1002,\"key\":\"p1\"", reply, sizeof reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");

    admin("\"op\":\"sku_put\",\"sku\":{\"id\":1002,\"price_fen\":250}", reply, sizeof reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    order("{\"op\":\"query_sku\",\"sku\":1002}", reply, sizeof reply);
    EXPECT_IN(reply, "\"available\":105"); /* the adjustment kept */
    order("{\"op\":\"reserve\",\"sku\":1002,\"user\":7,\"qty\":2,\"key\":\"r1\"}", reply,
          sizeof reply);
    EXPECT_IN(reply, "\"outcome\":\"paused\""); /* the pause kept */

    admin("\"op\":\"sku_put\",\"sku\":{\"id\":1002,\"paused\":false}", reply, sizeof reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    order("{\"op\":\"reserve\",\"sku\":1002,\"user\":7,\"qty\":2,\"key\":\"r2\"}", reply,
          sizeof reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    EXPECT_IN(reply, "\"remaining\":103");
    admin("\"op\":\"sku_put\",\"sku\":{\"id\":1002,\"stock\":50}", reply, sizeof reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    order("{\"op\":\"query_sku\",\"sku\":1002}", reply, sizeof reply);
    EXPECT_IN(reply, "\"available\":48"); /* a named stock replaces the total; 2 are held */
}

Test(json_put, changes_that_break_what_is_held_are_refused_with_a_reason)
{
    rushd_start(false);
    char reply[1024];
    order("{\"op\":\"reserve\",\"sku\":1002,\"user\":7,\"qty\":2,\"key\":\"r1\"}", reply,
          sizeof reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    admin("\"op\":\"sku_put\",\"sku\":{\"id\":1002,\"order_qty_max\":1,\"user_qty_max\":1}", reply,
          sizeof reply);
    EXPECT_IN(reply, "\"reason\":\"limit_below_held\"");
    admin("\"op\":\"sku_put\",\"sku\":{\"id\":1002,\"stock\":1}", reply, sizeof reply);
    EXPECT_IN(reply, "\"reason\":\"below_reserved\"");
    admin("\"op\":\"sku_put\",\"sku\":{\"id\":9999,\"price_fen\":1}", reply, sizeof reply);
    EXPECT_IN(reply, "\"reason\":\"sku_definition\""); /* a partial put creates nothing */

    order("{\"op\":\"group_open\",\"sku\":4001,\"user\":1,\"key\":\"g1\"}", reply, sizeof reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    const char *group = strstr(reply, "\"group\":\"");
    cr_assert_not_null(group, "%s", reply);
    group += strlen("\"group\":\"");
    char join[256];
    snprintf(join, sizeof join,
             "{\"op\":\"group_join\",\"group\":\"%.*s\",\"user\":2,\"key\":\"g2\"}",
             (int)strcspn(group, "\""), group);
    order(join, reply, sizeof reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    admin("\"op\":\"sku_put\",\"sku\":{\"id\":4001,\"group_size\":3}", reply, sizeof reply);
    EXPECT_IN(reply, "\"reason\":\"sku_has_groups\"");

    admin("\"op\":\"sku_put\",\"sku\":{\"id\":8001,\"name\":\"x\",\"stock\":1,\"price_fen\":1,"
          "\"start_ns\":0,\"end_ns\":1,\"order_qty_max\":3,\"user_qty_max\":2}",
          reply, sizeof reply);
    EXPECT_IN(reply, "sku_put of sku 8001: user_qty_max must be 3..1000000 (at least "
                     "order_qty_max)");
}
