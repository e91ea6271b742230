/*
 * test_loadgen.c — rush-loadgen end to end against a real rushd, and its library pieces.
 *
 * End to end: each test starts build/bin/rushd (tests/system/rushd_child.h: ipc endpoints, a known
 * admin token, fsync durability and its publisher) and runs build/bin/rush-loadgen against it
 * exactly as a benchmark script would, then reads the --report JSON: every request answered,
 * outcome counts adding up, no oversell (ok reservations == the stock put, never more), resends
 * flagged duplicate with their original answer, an open-loop schedule at the rate asked. Rates are
 * compared as ratios with generous bounds and nothing is timed, so a busy 2-core box does not
 * make them flake; every run is a few seconds at most.
 *
 * Library pieces: option parsing (hostile flags), the Zipf pick, the arrival schedule and the
 * ledger's duplicate check, with no rushd.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>

#include "rushd_child.h"

#include "arrivals.h"
#include "ledger.h"
#include "options.h"
#include "scenario.h"

#define LOADGEN_ARGS_MAX 48
#define LOADGEN_EXIT_MS 60000

static char token_path[CHILD_PATH_BYTES + 32];
static char report_path[CHILD_PATH_BYTES + 32];

static void start(void)
{
    rushd.durability = "fsync"; /* a log, so that the publisher runs for --verify */
    rushd_start(false);
    snprintf(token_path, sizeof token_path, "%s/token", rushd.dir);
    snprintf(report_path, sizeof report_path, "%s/report.json", rushd.dir);
    FILE *file = fopen(token_path, "w");
    cr_assert(file != NULL);
    fprintf(file, "%s\n", CHILD_TOKEN);
    fclose(file);
}

/*
 * Runs rush-loadgen with the endpoints, token file, --report and --quiet of this rushd, then
 * `extra` (NULL-terminated). Returns its exit status; its output goes to DIR/loadgen.log.
 */
static int run_loadgen(const char *const *extra)
{
    char path[CHILD_PATH_BYTES + 32], log[CHILD_PATH_BYTES + 32];
    snprintf(path, sizeof path, "%s/rush-loadgen", rushd.bin);
    snprintf(log, sizeof log, "%s/loadgen.log", rushd.dir);
    const char *argv[LOADGEN_ARGS_MAX] = {
        path,       "--url",     rushd.orders, "--admin-url", rushd.admin, "--admin-token-file",
        token_path, "--report",  report_path,  "--quiet",     "--pub",     rushd.pub,
        "--replay", rushd.replay};
    int argc = 14;
    for (int i = 0; extra[i] != NULL; i++) {
        cr_assert(argc < LOADGEN_ARGS_MAX - 1);
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;
    unlink(report_path);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    int status = child_wait_exit(pid, LOADGEN_EXIT_MS);
    cr_assert(status >= 0, "rush-loadgen did not finish (see %s)", log);
    return status;
}

static json_t *load_report(void)
{
    json_error_t error;
    json_t *report = json_load_file(report_path, 0, &error);
    cr_assert(report != NULL, "report %s: %s", report_path, error.text);
    return report;
}

static int64_t field(const json_t *report, const char *path)
{
    char copy[128];
    snprintf(copy, sizeof copy, "%s", path);
    const json_t *node = report;
    for (char *save = NULL, *name = strtok_r(copy, ".", &save); name != NULL;
         name = strtok_r(NULL, ".", &save))
        node = json_object_get(node, name);
    cr_assert(json_is_number(node), "report field %s is missing", path);
    return json_is_integer(node) ? json_integer_value(node) : (int64_t)json_number_value(node);
}

static double real_field(const json_t *report, const char *name)
{
    const json_t *node = json_object_get(report, name);
    cr_assert(json_is_number(node), "report field %s is missing", name);
    return json_number_value(node);
}

/* answered == sent, no errors, outcome counts add up to answered. */
static void assert_all_answered(const json_t *report)
{
    int64_t sent = field(report, "requests_sent");
    cr_assert_gt(sent, 0);
    cr_assert_eq(field(report, "requests_answered"), sent);
    cr_assert_eq(field(report, "errors.total"), 0);
    int64_t sum = 0;
    const char *name;
    json_t *count;
    json_object_foreach(json_object_get(report, "outcomes"), name, count)
    {
        sum += json_integer_value(count);
    }
    cr_assert_eq(sum, sent, "outcomes add up to %lld, %lld sent", (long long)sum, (long long)sent);
}

TestSuite(loadgen, .init = start, .fini = rushd_cleanup, .timeout = 120);

Test(loadgen, midnight_sells_exactly_the_stock)
{
    const char *args[] = {"--scenario", "midnight", "--buyers", "20000", "--skus",        "5",
                          "--stock",    "1000",     "--batch",  "16",    "--connections", "4",
                          "--verify",   NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_eq(field(report, "requests_sent"), 20000);
    cr_assert_eq(field(report, "outcomes.ok"), 5000, "ok must equal the stock put: no oversell");
    cr_assert_eq(field(report, "outcomes.sold_out"), 15000);
    cr_assert_eq(field(report, "catalog.stock_put"), 5000);
    cr_assert_eq(field(report, "catalog.after.available"), 0);
    cr_assert_eq(field(report, "catalog.after.confirmed"), 5000, "pay TTL 0: won is bought");
    cr_assert_eq(field(report, "catalog.after.reserved"), 0);
    cr_assert_eq(field(report, "duplicates_flagged"), 0);
    cr_assert_eq(field(report, "ledger.entries"), 20000);
    cr_assert_gt(field(report, "latency_us.p99"), 0);
    cr_assert_leq(field(report, "latency_us.p50"), field(report, "latency_us.max"));
    json_decref(report);
}

Test(loadgen, midnight_unbatched_many_connections)
{
    const char *args[] = {"--buyers", "3000", "--skus",        "2",  "--stock",    "100",
                          "--batch",  "1",    "--connections", "16", "--inflight", "4",
                          NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_eq(field(report, "messages_sent"), 3000);
    cr_assert_eq(field(report, "outcomes.ok"), 200);
    json_decref(report);
}

Test(loadgen, duplicates_come_back_flagged_with_the_original_answer)
{
    const char *args[] = {"--scenario",       "duplicates", "--buyers", "5000", "--stock",  "200",
                          "--duplicate-rate", "0.5",        "--batch",  "8",    "--verify", NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    int64_t resent = field(report, "duplicates.resent");
    cr_assert_gt(resent, 1000); /* about 2500 expected */
    cr_assert_eq(field(report, "duplicates.matching"), resent);
    cr_assert_eq(field(report, "duplicates.mismatched"), 0);
    /* Only resends of what changed something (ok) come back flagged; sold_out is decided again. */
    cr_assert_gt(field(report, "duplicates_flagged"), 0);
    cr_assert_lt(field(report, "duplicates_flagged"), resent);
    cr_assert_eq(field(report, "requests_sent"), 5000 + resent);
    /* A resend never consumes a second unit. */
    cr_assert_eq(field(report, "catalog.after.confirmed"), 1000);
    json_decref(report);
}

Test(loadgen, payments_confirm_some_and_abandon_the_rest)
{
    const char *args[] = {"--scenario",     "payments", "--buyers",     "5000",   "--stock", "300",
                          "--confirm-rate", "0.5",      "--pay-ttl-ms", "600000", NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    int64_t confirms = field(report, "payments.confirms");
    int64_t abandoned = field(report, "payments.abandoned");
    cr_assert_eq(confirms + abandoned, 1500, "every ok reservation is confirmed or abandoned");
    cr_assert_gt(confirms, 0);
    cr_assert_gt(abandoned, 0);
    cr_assert_eq(field(report, "ops_sent.confirm"), confirms);
    cr_assert_eq(field(report, "catalog.after.confirmed"), confirms);
    cr_assert_eq(field(report, "catalog.after.reserved"), abandoned);
    cr_assert_eq(field(report, "outcomes.ok"), 1500 + confirms);
    json_decref(report);
}

Test(loadgen, groups_never_oversell)
{
    const char *args[] = {"--scenario", "groups", "--buyers",     "6000", "--skus",   "3",
                          "--stock",    "600",    "--group-size", "3",    "--verify", NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_gt(field(report, "groups.opens"), 0);
    cr_assert_gt(field(report, "groups.joins"), 0);
    cr_assert_gt(field(report, "groups.joins_any"), 0);
    int64_t held =
        field(report, "catalog.after.reserved") + field(report, "catalog.after.confirmed");
    cr_assert_leq(held, 1800);
    cr_assert_eq(held + field(report, "catalog.after.available"), 1800);
    cr_assert_gt(field(report, "catalog.after.confirmed"), 0, "some groups completed");
    json_decref(report);
}

/*
 * The social scenario needs rushd's campaign to define the activity of the family its colours
 * use (loadgen/catalog.h): the fixture's SKUs plus one SKU of that family in an activity.
 */
static void start_social(void)
{
    static char skus[CHILD_CAMPAIGN_BYTES / 2];
    snprintf(skus, sizeof skus,
             "%s\n[activity phone]\nuser_qty_max = 1\n\n"
             "[sku 5000000000001001]\nname = red\nstock = 10\nprice = 100\nstart = now\n"
             "end = never\nactivity = phone\n",
             child_skus);
    signal(SIGPIPE, SIG_IGN);
    rushd.durability = "fsync";
    child_make_dir(&rushd, "social");
    child_write_campaign(&rushd, CHILD_ENGINE, CHILD_TOKEN, skus);
    rushd_spawn();
    snprintf(token_path, sizeof token_path, "%s/token", rushd.dir);
    snprintf(report_path, sizeof report_path, "%s/report.json", rushd.dir);
    FILE *file = fopen(token_path, "w");
    cr_assert(file != NULL);
    fprintf(file, "%s\n", CHILD_TOKEN);
    fclose(file);
}

TestSuite(loadgen_social, .init = start_social, .fini = rushd_cleanup, .timeout = 120);

/* Solo and group buyers, invitations, new users and an activity's colours, checked against the
 * stream: no one over the activity's limit, tier refunds exact, inviters recorded (--verify). */
Test(loadgen_social, social_buyers_verify_clean)
{
    const char *args[] = {"--scenario", "social", "--buyers", "6000",
                          "--stock",    "400",    "--verify", NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_gt(field(report, "outcomes.not_eligible"), 0, "new users only refused some");
    cr_assert_gt(field(report, "outcomes.limit_exceeded"), 0, "second colours were refused");
    cr_assert_gt(field(report, "catalog.after.confirmed"), 0);
    json_decref(report);
}

Test(loadgen, zipf_sells_out_the_head_first)
{
    const char *args[] = {"--scenario", "zipf", "--buyers", "8000", "--skus", "50",
                          "--stock",    "100",  "--zipf-s", "1.2",  NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    int64_t ok = field(report, "outcomes.ok");
    cr_assert_leq(ok, 5000);
    cr_assert_gt(field(report, "outcomes.sold_out"), 0, "the hot head sells out");
    cr_assert_gt(field(report, "catalog.after.available"), 0, "the long tail keeps stock");
    cr_assert_eq(field(report, "catalog.after.confirmed"), ok);
    json_decref(report);
}

Test(loadgen, open_loop_offers_the_rate_asked)
{
    /* 6000 requests at 3000/s in messages of 10: 300 messages/s for about two seconds. */
    const char *args[] = {"--mode",  "open",     "--rate", "3000",    "--arrivals",
                          "fixed",   "--buyers", "6000",   "--batch", "10",
                          "--stock", "100",      NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_eq(field(report, "requests_offered"), 6000);
    double offered = real_field(report, "offered_per_s") / 3000.0;
    double sent = real_field(report, "sent_rate_per_s") / 3000.0;
    cr_assert(offered > 0.95 && offered < 1.05, "offered %.3f of the rate asked", offered);
    cr_assert(sent > 0.6 && sent < 1.5, "sent %.3f of the rate asked", sent);
    cr_assert_eq(json_number_value(json_object_get(report, "offered_rate")), 3000.0);
    cr_assert_str_eq(json_string_value(json_object_get(report, "mode")), "open");
    json_decref(report);
}

Test(loadgen, open_loop_poisson_keeps_the_mean_rate)
{
    const char *args[] = {"--mode",  "open",     "--rate", "4000",    "--arrivals",
                          "poisson", "--buyers", "6000",   "--batch", "4",
                          "--seed",  "7",        NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    double offered = real_field(report, "offered_per_s") / 4000.0;
    cr_assert(offered > 0.8 && offered < 1.25, "offered %.3f of the rate asked", offered);
    json_decref(report);
}

Test(loadgen, duration_caps_a_long_run)
{
    const char *args[] = {"--buyers", "16000000", "--duration", "0.5", "--stock", "10", NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_lt(field(report, "requests_sent"), 16000000);
    cr_assert_eq(field(report, "outcomes.ok"), 50);
    json_decref(report);
}

Test(loadgen, campaign_skus_missing_from_the_catalogue_is_refused)
{
    /* The test campaign has 1001 and 1002 but not 1003, the third hot SKU of double11. */
    const char *args[] = {"--campaign-skus", "--buyers", "10", NULL};
    cr_assert_eq(run_loadgen(args), 3);
}

Test(loadgen, campaign_skus_are_used_as_they_are)
{
    const char *args[] = {"--campaign-skus", "--skus", "2", "--buyers", "500", NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_eq(field(report, "catalog.count"), 2);
    /* 1001 has 2 units, 1002 has 100 with 3 per user: one unit per buyer here. */
    cr_assert_eq(field(report, "outcomes.ok"), 102);
    json_decref(report);
}

Test(loadgen, a_wrong_token_is_refused)
{
    FILE *file = fopen(token_path, "w");
    cr_assert(file != NULL);
    fprintf(file, "not-the-token-at-all\n");
    fclose(file);
    const char *args[] = {"--buyers", "10", NULL};
    cr_assert_eq(run_loadgen(args), 3);
}

/* ---- no rushd ----------------------------------------------------------------------------- */

static int parse(const char *const *args, struct rush_loadgen_options *options, char *why,
                 size_t why_size)
{
    char *argv[LOADGEN_ARGS_MAX] = {"rush-loadgen"};
    int argc = 1;
    for (int i = 0; args[i] != NULL; i++)
        argv[argc++] = (char *)args[i];
    rush_loadgen_options_default(options);
    int rc = rush_loadgen_options_parse(options, argc, argv, why, why_size);
    return rc == 0 ? rush_loadgen_options_finish(options, why, why_size) : rc;
}

Test(loadgen_options, the_contract_names_parse)
{
    struct rush_loadgen_options o;
    char why[RUSH_LOADGEN_WHY_BYTES] = "";
    const char *args[] = {"--url",         "tcp://127.0.0.1:7100",
                          "--admin-url",   "tcp://127.0.0.1:7102",
                          "--admin-token", "0123456789abcdef",
                          "--scenario",    "zipf",
                          "--mode",        "open",
                          "--rate",        "250000",
                          "--arrivals",    "poisson",
                          "--connections", "8",
                          "--batch",       "64",
                          "--inflight",    "16",
                          "--buyers",      "1000",
                          "--skus",        "200",
                          "--stock",       "50",
                          "--duration",    "2.5",
                          "--report",      "x.json",
                          "--seed",        "42",
                          "--quiet",       NULL};
    cr_assert_eq(parse(args, &o, why, sizeof why), 0, "%s", why);
    cr_assert_eq(o.scenario, RUSH_SCENARIO_ZIPF);
    cr_assert_eq(o.mode, RUSH_MODE_OPEN);
    cr_assert_eq(o.arrivals, RUSH_ARRIVALS_POISSON);
    cr_assert_eq(o.rate_per_s, 250000.0);
    cr_assert_eq(o.connections, 8);
    cr_assert_eq(o.batch, 64);
    cr_assert_eq(o.inflight, 16);
    cr_assert_eq(o.buyers, 1000);
    cr_assert_eq(o.skus, 200);
    cr_assert_eq(o.stock, 50);
    cr_assert_eq(o.duration_s, 2.5);
    cr_assert_str_eq(o.report_path, "x.json");
    cr_assert_eq(o.seed, 42);
    cr_assert(o.quiet);
}

Test(loadgen_options, scenario_defaults)
{
    struct rush_loadgen_options o;
    char why[RUSH_LOADGEN_WHY_BYTES] = "";
    const char *midnight[] = {NULL};
    cr_assert_eq(parse(midnight, &o, why, sizeof why), 0, "%s", why);
    cr_assert_eq(o.buyers, 1000000);
    cr_assert_eq(o.skus, 5);
    cr_assert_eq(o.stock, 1000);
    const char *zipf[] = {"--scenario", "zipf", "--skus", "7", NULL};
    cr_assert_eq(parse(zipf, &o, why, sizeof why), 0, "%s", why);
    cr_assert_eq(o.skus, 7);
}

Test(loadgen_options, hostile_flags_are_refused_by_name)
{
    static const struct {
        const char *args[4];
        const char *named;
    } cases[] = {
        {{"--batch", "0"}, "--batch"},
        {{"--batch", "16384"}, "--batch"},
        {{"--batch", "12abc"}, "--batch"},
        {{"--connections", "-1"}, "--connections"},
        {{"--connections", "257"}, "--connections"},
        {{"--inflight", "99999999999999999999999"}, "--inflight"},
        {{"--buyers", "0"}, "--buyers"},
        {{"--buyers", "16000001"}, "--buyers"},
        {{"--rate", "nan", "--mode"}, "--rate"},
        {{"--mode", "open", "--rate"}, "--rate"},
        {{"--mode", "open"}, "--rate"},
        {{"--rate", "100"}, "--rate"},
        {{"--duration", "-3"}, "--duration"},
        {{"--duration", "inf"}, "--duration"},
        {{"--zipf-s", "11"}, "--zipf-s"},
        {{"--duplicate-rate", "1.5"}, "--duplicate-rate"},
        {{"--scenario", "flash"}, "--scenario"},
        {{"--mode", "half-open"}, "--mode"},
        {{"--arrivals", "bursty"}, "--arrivals"},
        {{"--url", "localhost"}, "--url"},
        {{"--group-size", "65"}, "--group-size"},
        {{"--bogus"}, "--bogus"},
        {{"stray"}, "stray"},
        {{"--admin-token-file", "/nonexistent/token"}, "/nonexistent/token"},
        {{"--campaign-skus", "--sku-base", "5"}, "--sku-base"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rush_loadgen_options o;
        char why[RUSH_LOADGEN_WHY_BYTES] = "";
        cr_assert_lt(parse(cases[i].args, &o, why, sizeof why), 0, "case %zu accepted", i);
        cr_assert(strstr(why, cases[i].named) != NULL, "case %zu: '%s' does not name %s", i, why,
                  cases[i].named);
    }
}

Test(loadgen_options, usage_errors_exit_2_without_a_server)
{
    char path[CHILD_PATH_BYTES + 32], bin[CHILD_PATH_BYTES];
    child_bin_dir(bin, sizeof bin);
    snprintf(path, sizeof path, "%s/rush-loadgen", bin);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, STDERR_FILENO);
        execl(path, path, "--batch", "0", (char *)NULL);
        _exit(127);
    }
    cr_assert_eq(child_wait_exit(pid, LOADGEN_EXIT_MS), 2);
}

Test(loadgen_pieces, zipf_pick_follows_the_weights)
{
    enum { SKUS = 100, DRAWS = 200000 };
    static double cdf[SKUS];
    static uint32_t hits[SKUS];
    double sum = 0;
    for (int k = 0; k < SKUS; k++)
        cdf[k] = (sum += 1.0 / (k + 1));
    for (int k = 0; k < SKUS; k++)
        cdf[k] /= sum;
    cr_assert_eq(rush_scenario_zipf_pick(cdf, SKUS, 0.0), 0);
    cr_assert_eq(rush_scenario_zipf_pick(cdf, SKUS, 0.999999999), SKUS - 1);
    uint64_t state = 12345;
    for (int i = 0; i < DRAWS; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        hits[rush_scenario_zipf_pick(cdf, SKUS, (double)(state >> 11) * 0x1.0p-53)]++;
    }
    /* s = 1: SKU 0 is twice as popular as SKU 1 and ten times SKU 9. */
    cr_assert(fabs((double)hits[0] / hits[1] - 2.0) < 0.15, "%u vs %u", hits[0], hits[1]);
    cr_assert(fabs((double)hits[0] / hits[9] - 10.0) < 1.5, "%u vs %u", hits[0], hits[9]);
}

Test(loadgen_pieces, fixed_arrivals_are_evenly_spaced)
{
    struct rush_arrivals arrivals;
    rush_arrivals_init(&arrivals, RUSH_ARRIVALS_FIXED, 1000.0, 10, 5000, 1); /* 100 msgs/s */
    cr_assert_eq(rush_arrivals_take(&arrivals), 5000);
    cr_assert_eq(rush_arrivals_take(&arrivals), 5000 + 10000000);
    for (int i = 2; i < 1000; i++)
        rush_arrivals_take(&arrivals);
    cr_assert_eq(rush_arrivals_peek(&arrivals), 5000 + INT64_C(10000000000));
}

Test(loadgen_pieces, poisson_arrivals_keep_the_mean_gap)
{
    struct rush_arrivals arrivals;
    rush_arrivals_init(&arrivals, RUSH_ARRIVALS_POISSON, 1e6, 1, 0, 99); /* mean gap 1000 ns */
    int64_t previous = rush_arrivals_take(&arrivals);
    for (int i = 1; i < 100000; i++) {
        int64_t next = rush_arrivals_take(&arrivals);
        cr_assert_geq(next, previous);
        previous = next;
    }
    double mean = (double)previous / 99999.0;
    cr_assert(mean > 970 && mean < 1030, "mean gap %.1f ns", mean);
}

Test(loadgen_pieces, ledger_matches_duplicates_and_fills_up)
{
    struct rush_ledger ledger;
    cr_assert_eq(rush_ledger_init(&ledger, 3), 0);
    struct rush_request request = {.op = RUSH_OP_RESERVE, .qty = 1, .sku_id = 9, .user_id = 4};
    request.key.bytes[0] = 7;
    cr_assert_eq(rush_ledger_append(&ledger, &request, RUSH_LEDGER_NO_ORIGINAL), 0);
    cr_assert_eq(rush_ledger_append(&ledger, &request, 0), 1);
    struct rush_result result = {.outcome = RUSH_OK, .order_id = 77, .remaining = 5, .tag = 0};
    rush_ledger_answer(&ledger, 0, &result);
    result.flags = RUSH_RESULT_DUPLICATE;
    result.tag = 1;
    rush_ledger_answer(&ledger, 1, &result);
    cr_assert(
        rush_ledger_duplicate_matches(rush_ledger_get(&ledger, 0), rush_ledger_get(&ledger, 1)));
    ledger.entries[1].order_id = 78; /* a different answer is not the original's */
    cr_assert_not(
        rush_ledger_duplicate_matches(rush_ledger_get(&ledger, 0), rush_ledger_get(&ledger, 1)));
    cr_assert_eq(rush_ledger_append(&ledger, &request, RUSH_LEDGER_NO_ORIGINAL), 2);
    cr_assert_eq(rush_ledger_append(&ledger, &request, RUSH_LEDGER_NO_ORIGINAL), -ENOSPC);
    rush_ledger_fail(&ledger, 2, RUSH_LEDGER_LOST);
    cr_assert_eq(rush_ledger_check(&ledger), 0);
    ledger.entries[1].key.bytes[0] = 8; /* a resend with another key breaks invariant 2 */
    cr_assert_eq(rush_ledger_check(&ledger), -EINVAL);
    rush_ledger_free(&ledger);
    cr_assert_eq(rush_ledger_init(&ledger, 0), -EINVAL);
}
