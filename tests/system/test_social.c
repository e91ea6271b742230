/*
 * test_social.c — social retail rules through the real rushd (issue 14): activity limits over
 * the colours of one phone, a new-users-only variant, registration (预约) and its window, and a
 * sku_put into an activity, over the JSON endpoint; then a restart from the log keeps the
 * registrations and what each user took of the activity.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "rushd_child.h"

#define REPLY_BYTES 2048
#define ANSWER_MS 5000
#define DEADLINE_MS 15000

static struct rushd_child social = {.pid = -1};

/* Three colours of one phone (family 5000000000001), one of them for new users only; a SKU
 * that needs a registration, whose window is open; one whose window has closed. */
static const char *const social_campaign =
    "[activity phone]\nuser_qty_max = 2\nday_qty_max = 2\nday_offset_hours = 8\n\n"
    "[sku 5000000000001001]\nname = red\nstock = 10\nprice = 100\nstart = now\nend = never\n"
    "pay_ttl = 15m\nuser_qty_max = 2\norder_qty_max = 2\nactivity = phone\n\n"
    "[sku 5000000000001002]\nname = blue\nstock = 10\nprice = 100\nstart = now\nend = never\n"
    "pay_ttl = 15m\nactivity = phone\n\n"
    "[sku 5000000000001003]\nname = gold\nstock = 10\nprice = 100\nstart = now\nend = never\n"
    "pay_ttl = 15m\nactivity = phone\nnew_users_only = true\n\n"
    "[sku 6001]\nname = console\nstock = 5\nprice = 299900\nstart = now\nend = never\n"
    "registration_required = true\nregister_from = now\n"
    "register_until = 2199-01-01T00:00:00Z\n\n"
    "[sku 6002]\nname = closed\nstock = 5\nprice = 100\nstart = now\nend = never\n"
    "registration_required = true\nregister_from = 2000-01-01T00:00:00Z\n"
    "register_until = 2000-01-02T00:00:00Z\n\n"
    "[sku 7001]\nname = tiered\nstock = 20\nprice = 100\nstart = now\nend = never\n"
    "group_ttl = 1s\ntiers = 2:90, 3:80, 4:70\n";

static void social_cleanup(void)
{
    child_cleanup(&social);
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
}

TestSuite(social, .init = setup, .fini = social_cleanup, .timeout = 90);

static void run_rushd(void)
{
    char *args[] = {"--config", social.config, NULL};
    child_run(&social, args);
}

static void ask(const char *url, const char *text, char *reply)
{
    cr_assert_eq(child_json(url, text, reply, REPLY_BYTES, ANSWER_MS), 0, "no answer to %s", text);
}

#define EXPECT_IN(reply, text) cr_expect(strstr(reply, text) != NULL, "want %s in %s", text, reply)

static void check_activity_and_new_users(void)
{
    char reply[REPLY_BYTES];
    ask(social.json,
        "{\"op\":\"reserve\",\"sku\":5000000000001001,\"user\":7,\"qty\":1,\"key\":\"a1\"}", reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    ask(social.json,
        "{\"op\":\"reserve\",\"sku\":5000000000001003,\"user\":7,\"qty\":1,\"key\":\"a2\"}", reply);
    EXPECT_IN(reply, "\"outcome\":\"not_eligible\",\"reason\":\"not_new_user\"");
    ask(social.json,
        "{\"op\":\"reserve\",\"sku\":5000000000001003,\"user\":7,\"qty\":1,\"new_user\":true,"
        "\"key\":\"a3\"}",
        reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    /* Two colours held: a third colour is over the activity's limit of 2. */
    ask(social.json,
        "{\"op\":\"reserve\",\"sku\":5000000000001002,\"user\":7,\"qty\":1,\"key\":\"a4\"}", reply);
    EXPECT_IN(reply, "\"outcome\":\"limit_exceeded\",\"reason\":\"activity_limit\"");
    /* Another user is not touched by user 7's limit. */
    ask(social.json,
        "{\"op\":\"reserve\",\"sku\":5000000000001002,\"user\":8,\"qty\":1,\"key\":\"a5\"}", reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
}

static void check_registration(void)
{
    char reply[REPLY_BYTES];
    ask(social.json, "{\"op\":\"reserve\",\"sku\":6001,\"user\":9,\"qty\":1,\"key\":\"r1\"}",
        reply);
    EXPECT_IN(reply, "\"outcome\":\"not_eligible\",\"reason\":\"not_registered\"");
    ask(social.json, "{\"op\":\"register\",\"sku\":6001,\"user\":9,\"key\":\"r2\"}", reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    ask(social.json, "{\"op\":\"register\",\"sku\":6001,\"user\":9,\"key\":\"r2\"}", reply);
    EXPECT_IN(reply, "\"duplicate\":true");
    ask(social.json, "{\"op\":\"register\",\"sku\":6002,\"user\":9,\"key\":\"r3\"}", reply);
    EXPECT_IN(reply, "\"outcome\":\"invalid\",\"reason\":\"register_window\"");
    ask(social.json, "{\"op\":\"register\",\"sku\":5000000000001001,\"user\":9,\"key\":\"r4\"}",
        reply);
    EXPECT_IN(reply, "\"outcome\":\"invalid\",\"reason\":\"not_registrable\"");
    ask(social.json,
        "{\"op\":\"register\",\"sku\":6001,\"user\":9,\"new_user\":true,\"key\":\"r5\"}", reply);
    EXPECT_IN(reply, "field 'new_user' does not apply to op 'register'");
}

/* sku_put into the activity: a colour of the family joins it; an id of no activity's family
 * cannot; membership cannot change on a live SKU. */
static void check_sku_put(void)
{
    char reply[REPLY_BYTES];
    char text[1024];
    snprintf(text, sizeof text,
             "{\"token\":\"%s\",\"op\":\"sku_put\",\"sku\":{\"id\":5000000000001004,"
             "\"name\":\"green\",\"stock\":5,\"price_fen\":100,\"start_ns\":0,"
             "\"end_ns\":\"9223372036854775807\",\"order_qty_max\":1,\"user_qty_max\":1,"
             "\"rules\":\"activity\"}}",
             CHILD_TOKEN);
    ask(social.admin, text, reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    ask(social.json,
        "{\"op\":\"reserve\",\"sku\":5000000000001004,\"user\":7,\"qty\":1,\"key\":\"p1\"}", reply);
    EXPECT_IN(reply, "\"reason\":\"activity_limit\"");
    snprintf(text, sizeof text,
             "{\"token\":\"%s\",\"op\":\"sku_put\",\"sku\":{\"id\":5000000000002001,"
             "\"name\":\"other\",\"stock\":5,\"price_fen\":100,\"start_ns\":0,"
             "\"end_ns\":\"9223372036854775807\",\"order_qty_max\":1,\"user_qty_max\":1,"
             "\"rules\":\"activity\"}}",
             CHILD_TOKEN);
    ask(social.admin, text, reply);
    EXPECT_IN(reply, "\"reason\":\"sku_definition\"");
    snprintf(text, sizeof text,
             "{\"token\":\"%s\",\"op\":\"sku_put\",\"sku\":{\"id\":5000000000001002,"
             "\"rules\":\"\"}}",
             CHILD_TOKEN);
    ask(social.admin, text, reply);
    EXPECT_IN(reply, "\"reason\":\"sku_definition\"");
}

/* Three seats of a 2:90, 3:80, 4:70 group: it completes at its deadline at 80, and each seat,
 * which paid 90, is due 10 back (tier_refund_due on the stream, counted by rushctl report). */
static void check_tiers(void)
{
    char reply[REPLY_BYTES];
    ask(social.json, "{\"op\":\"group_open\",\"sku\":7001,\"user\":1,\"key\":\"t1\"}", reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    const char *group = strstr(reply, "\"group\":\"");
    cr_assert_not_null(group, "%s", reply);
    char group_id[32] = "";
    sscanf(group + strlen("\"group\":\""), "%31[0-9]", group_id);
    char text[256];
    for (int user = 2; user <= 3; user++) {
        snprintf(text, sizeof text,
                 "{\"op\":\"group_join\",\"group\":\"%s\",\"user\":%d,\"key\":\"t%d\"}", group_id,
                 user, user);
        ask(social.json, text, reply);
        EXPECT_IN(reply, "\"outcome\":\"ok\"");
    }
    snprintf(text, sizeof text, "{\"op\":\"query_group\",\"group\":\"%s\"}", group_id);
    int64_t deadline = rush_clock_monotonic_ms() + DEADLINE_MS;
    for (ask(social.json, text, reply); strstr(reply, "\"state\":\"completed\"") == NULL;
         ask(social.json, text, reply)) {
        cr_assert(rush_clock_monotonic_ms() < deadline, "the tiered group never settled: %s",
                  reply);
        child_sleep_ms(CHILD_POLL_MS);
    }
    char command[6 * CHILD_PATH_BYTES], out[CHILD_PATH_BYTES + 16];
    snprintf(out, sizeof out, "%s/report.csv", social.dir);
    snprintf(command, sizeof command,
             "'%s/rushctl' --timeout 5000 report --pub '%s' --replay '%s' --csv > '%s'", social.bin,
             social.pub, social.replay, out);
    cr_assert_eq(system(command), 0, "%s", command);
    FILE *file = fopen(out, "r");
    cr_assert_not_null(file);
    char line[512];
    uint64_t units = 0, refunds = 0, refunds_fen = 0, orders, gmv, released, expired;
    while (fgets(line, sizeof line, file) != NULL)
        if (strncmp(line, "7001,", 5) == 0)
            sscanf(line + 5,
                   "%" SCNu64 ",%" SCNu64 ",%" SCNu64 ",%" SCNu64 ",%" SCNu64 ",%" SCNu64
                   ",%" SCNu64,
                   &units, &orders, &gmv, &released, &expired, &refunds, &refunds_fen);
    fclose(file);
    cr_expect_eq(units, 3, "three seats confirmed");
    cr_expect_eq(refunds, 3, "one tier refund per seat");
    cr_expect_eq(refunds_fen, 30, "each seat paid 90 and owes 80");
}

/* rushctl's buyer commands: its output (stdout) in `out`. */
static void rushctl(const char *args, char *out, size_t cap)
{
    char command[6 * CHILD_PATH_BYTES], path[CHILD_PATH_BYTES + 16];
    snprintf(path, sizeof path, "%s/rushctl.out", social.dir);
    snprintf(command, sizeof command, "'%s/rushctl' --json '%s' %s > '%s'", social.bin, social.json,
             args, path);
    cr_assert_eq(system(command), 0, "%s", command);
    FILE *file = fopen(path, "r");
    cr_assert_not_null(file);
    size_t n = fread(out, 1, cap - 1, file);
    out[n] = '\0';
    fclose(file);
}

static void check_rushctl(void)
{
    char out[REPLY_BYTES];
    rushctl("register --sku 6001 --user 21", out, sizeof out);
    EXPECT_IN(out, "outcome: ok");
    rushctl("join-any --sku 7001 --user 22 --inviter 23 --new-user", out, sizeof out);
    EXPECT_IN(out, "outcome: ok");
    rushctl("list-groups 7001 --limit 3", out, sizeof out);
    EXPECT_IN(out, "groups: [{\"group\":");
    EXPECT_IN(out, "\"leader\":22");
}

Test(social, activity_limits_eligibility_and_registration_survive_a_restart)
{
    child_make_dir(&social, "social");
    social.durability = "async";
    child_write_campaign(&social, CHILD_ENGINE, CHILD_TOKEN, social_campaign);
    run_rushd();
    check_activity_and_new_users();
    check_registration();
    check_sku_put();
    check_tiers();
    check_rushctl();
    cr_expect_eq(child_stop(&social, SIGTERM), 0);

    run_rushd(); /* the log rebuilds registrations and the activity's counts */
    char reply[REPLY_BYTES];
    ask(social.json, "{\"op\":\"reserve\",\"sku\":6001,\"user\":9,\"qty\":1,\"key\":\"x1\"}",
        reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    ask(social.json,
        "{\"op\":\"reserve\",\"sku\":5000000000001002,\"user\":7,\"qty\":1,\"key\":\"x2\"}", reply);
    EXPECT_IN(reply, "\"reason\":\"activity_limit\"");
    ask(social.json,
        "{\"op\":\"reserve\",\"sku\":5000000000001001,\"user\":8,\"qty\":1,\"key\":\"x3\"}", reply);
    EXPECT_IN(reply, "\"outcome\":\"ok\"");
    /* User 8 now holds 2 of the activity, one from before the restart. */
    ask(social.json,
        "{\"op\":\"reserve\",\"sku\":5000000000001001,\"user\":8,\"qty\":1,\"key\":\"x4\"}", reply);
    EXPECT_IN(reply, "\"outcome\":\"limit_exceeded\",\"reason\":\"activity_limit\"");
    cr_expect_eq(child_stop(&social, SIGTERM), 0);
}
