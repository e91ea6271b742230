/*
 * rush-loadgen's verifier (loadgen/verify.h) against a real rushd and its real stream: real
 * orders with their real answers verify clean; a ledger and catalog that claim what did not
 * happen (an acknowledged order never published, more confirmed than the stream shows, an
 * oversold SKU, a buyer over the limit, a resend answered differently) are each caught.
 */
#include <criterion/criterion.h>

#include "ledger.h"
#include "rush/client.h"
#include "rushd_child.h"
#include "verify.h"

static struct rush_verify *verify_open(void)
{
    struct rush_loadgen_options options;
    rush_loadgen_options_default(&options);
    snprintf(options.pub_url, sizeof(options.pub_url), "%.200s", rushd.pub);
    snprintf(options.replay_url, sizeof(options.replay_url), "%.200s", rushd.replay);
    struct rush_verify *opened = NULL;
    char why[300];
    cr_assert_eq(rush_verify_start(&options, &opened, why, sizeof(why)), 0, "%s", why);
    return opened;
}

/* The coupon SKU of the child campaign, as a fresh catalog entry: unlimited, pay TTL 0. */
static void catalog_of_coupon(struct rush_catalog *out, struct rush_catalog_sku *coupon)
{
    memset(coupon, 0, sizeof(*coupon));
    coupon->def = (struct rush_sku){.id = 3001, .pay_ttl_ns = 0, .user_qty_max = 3, .unlimited = 1};
    coupon->before = (struct rush_catalog_figures){.known = true, .unlimited = true};
    coupon->after = coupon->before;
    *out = (struct rush_catalog){.skus = coupon, .count = 1, .fresh = true};
}

/* Sends `count` coupon reserves and logs each with its answer, as the driver does. */
static void order_and_log(struct rush_ledger *into, uint64_t first_user, uint32_t count,
                          int64_t *confirmed)
{
    struct rush_client_config config;
    rush_client_config_default(&config);
    config.url = rushd.orders;
    struct rush_client *client = NULL;
    cr_assert_eq(rush_client_open(&config, &client), 0);
    static struct rush_request requests[1000];
    static struct rush_result results[1000];
    for (uint32_t i = 0; i < count; i++) {
        char key[32];
        snprintf(key, sizeof(key), "verify-%lu", first_user + i);
        requests[i] = (struct rush_request){.op = RUSH_OP_RESERVE,
                                            .qty = 1,
                                            .sku_id = 3001,
                                            .user_id = first_user + i,
                                            .key = rush_client_key(key)};
    }
    cr_assert_eq(rush_client_submit(client, requests, count, results), 0);
    for (uint32_t i = 0; i < count; i++) {
        int64_t index = rush_ledger_append(into, &requests[i], RUSH_LEDGER_NO_ORIGINAL);
        cr_assert_geq(index, 0);
        rush_ledger_answer(into, (uint32_t)index, &results[i]);
        *confirmed += results[i].outcome == RUSH_OK;
    }
    rush_client_close(client);
}

/* Each test: a rushd with a log, a verifier following its stream, an empty ledger, the coupon. */
static struct rush_verify *verify;
static struct rush_ledger ledger;
static struct rush_catalog catalog;
static struct rush_catalog_sku sku;

static void set_up(void)
{
    rushd.durability = "fsync";
    rushd_start(false);
    verify = verify_open();
    cr_assert_eq(rush_ledger_init(&ledger, 4096), 0);
    catalog_of_coupon(&catalog, &sku);
}

static void tear_down(void)
{
    rush_verify_free(verify);
    verify = NULL;
    rush_ledger_free(&ledger);
    rushd_cleanup();
}

TestSuite(verify, .init = set_up, .fini = tear_down, .timeout = 120);

/* Logs a request (a resend of `original`, or RUSH_LEDGER_NO_ORIGINAL) with its answer. */
static uint32_t log_answered(const struct rush_request *request, uint32_t original,
                             const struct rush_result *result)
{
    int64_t index = rush_ledger_append(&ledger, request, original);
    cr_assert_geq(index, 0);
    rush_ledger_answer(&ledger, (uint32_t)index, result);
    return (uint32_t)index;
}

Test(verify, real_orders_with_their_real_answers_verify_clean)
{
    order_and_log(&ledger, 1, 1000, &sku.after.confirmed);
    cr_assert_eq(sku.after.confirmed, 1000);
    cr_assert_eq(rush_verify_finish(verify, &catalog, &ledger, stdout), 0);
}

Test(verify, each_kind_of_false_claim_is_a_violation)
{
    order_and_log(&ledger, 1, 10, &sku.after.confirmed); /* real: 10 confirmed, published */
    /* 1. an ok reserve nobody published */
    struct rush_request ghost = {.op = RUSH_OP_RESERVE, .qty = 1, .sku_id = 3001, .user_id = 77};
    log_answered(&ghost, RUSH_LEDGER_NO_ORIGINAL,
                 &(struct rush_result){.outcome = RUSH_OK, .order_id = 0x0100000000abcdefull});
    /* 2. the same buyer holding 4 units of a 3-per-user SKU (after a sold_out) */
    struct rush_request greedy = {.op = RUSH_OP_RESERVE, .qty = 4, .sku_id = 3001, .user_id = 99};
    uint32_t first = log_answered(&greedy, RUSH_LEDGER_NO_ORIGINAL,
                                  &(struct rush_result){.outcome = RUSH_SOLD_OUT});
    log_answered(&greedy, RUSH_LEDGER_NO_ORIGINAL, &(struct rush_result){.outcome = RUSH_OK});
    /* 3. a resend answered with something else than the original */
    log_answered(&greedy, first,
                 &(struct rush_result){.outcome = RUSH_OK, .flags = RUSH_RESULT_DUPLICATE});
    /* 4. the engine claiming more confirmed than the stream carries */
    sku.after.confirmed += 5;
    cr_assert_eq(rush_verify_finish(verify, &catalog, &ledger, stdout), 4,
                 "ghost order, buyer over the limit, bad resend, confirmed count");
}

Test(verify, an_oversold_sku_is_a_violation)
{
    sku.def.unlimited = 0;
    sku.def.stock = 5;
    sku.before.unlimited = sku.after.unlimited = false;
    sku.before.available = 5;
    sku.after.reserved = 6; /* figures that say more is held than there was */
    cr_assert_eq(rush_verify_finish(verify, &catalog, &ledger, stdout), 1);
}
