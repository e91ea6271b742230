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
 * Threads, JSON and routing: a run on several driver threads must add up exactly (ok == stock,
 * every request answered once, --verify clean); --json drives the JSON endpoint with the same
 * books; --nodes against a fake node (a raw REP socket in this process that answers every request
 * redirect, first naming no leader, then naming rushd) must follow the redirects with the same
 * keys and count them; a fake node that never answers must be routed around after --timeout-ms
 * with nothing lost, and one that answers outcome_unknown must see each request again after a
 * wait; bench-echo answers every request of either protocol; --verify over the same rushd listed
 * as two nodes merges two streams that agree on every seq.
 *
 * Library pieces: option parsing (hostile flags, node lists), the decision gaps, the Zipf pick, the
 * arrival schedule, the ledger's duplicate check, the routing table and the JSON answer reader,
 * with no rushd.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <pthread.h>
#include <stdatomic.h>

#include "rushd_child.h"

#include "arrivals.h"
#include "codec/json.h"
#include "json_result.h"
#include "ledger.h"
#include "options.h"
#include "report.h"
#include "route.h"
#include "rush/engine.h"
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
    if (status != 0) { /* what it said, for the failure that follows */
        char command[2 * CHILD_PATH_BYTES];
        snprintf(command, sizeof command, "cat '%s' >&2", log);
        cr_log_info("rush-loadgen exited %d; its log: %s", status, log);
        (void)!system(command);
    }
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

/* The fake-node runs' books: nothing given up, every one of the 2000 requests sent once (a
 * resend is not a new request) and answered, 800 units sold, no key decided twice. */
static void assert_each_key_once(const json_t *report)
{
    cr_assert_eq(field(report, "redirects.gave_up"), 0);
    cr_assert_eq(field(report, "requests_sent"), 2000, "a resend is not a new request");
    cr_assert_eq(field(report, "requests_answered"), 2000);
    cr_assert_eq(field(report, "outcomes.ok"), 800);
    cr_assert_eq(field(report, "duplicates_flagged"), 0, "each key decided once");
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

Test(loadgen, threads_add_up_exactly)
{
    const char *args[] = {"--buyers",   "9000", "--skus",        "3", "--stock",   "500",
                          "--batch",    "4",    "--connections", "6", "--threads", "3",
                          "--inflight", "4",    "--verify",      NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_eq(field(report, "threads"), 3);
    cr_assert_eq(field(report, "requests_sent"), 9000);
    cr_assert_eq(field(report, "ledger.entries"), 9000);
    cr_assert_eq(field(report, "outcomes.ok"), 1500, "ok must equal the stock put");
    cr_assert_eq(field(report, "outcomes.sold_out"), 7500);
    cr_assert_eq(field(report, "catalog.after.confirmed"), 1500);
    json_decref(report);
}

Test(loadgen, json_one_request_per_message_keeps_the_books)
{
    const char *args[] = {"--json", "--json-url", rushd.json, "--buyers",      "3000", "--skus",
                          "2",      "--stock",    "100",      "--connections", "8",    "--inflight",
                          "4",      "--threads",  "2",        "--verify",      NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_str_eq(json_string_value(json_object_get(report, "protocol")), "json");
    cr_assert_eq(field(report, "batch"), 1);
    cr_assert_eq(field(report, "messages_sent"), 3000);
    cr_assert_eq(field(report, "outcomes.ok"), 200);
    cr_assert_eq(field(report, "outcomes.sold_out"), 2800);
    cr_assert_eq(field(report, "catalog.after.confirmed"), 200);
    json_decref(report);
}

/* ---- a fake cluster node: every request answered redirect -------------------------------- */

enum fake_mode {
    FAKE_REDIRECT = 0, /* every request answered redirect */
    FAKE_SILENT = 1,   /* every request read and dropped: a hung node */
    FAKE_UNKNOWN = 2, /* a request's first visit outcome_unknown (a fenced leader), then redirect */
};

#define FAKE_TAGS_MAX 8192

struct fake_node {
    int sock;
    enum fake_mode mode;
    atomic_uint received;
    atomic_uint answered;
    atomic_uint unknown;
    atomic_bool stop;
    pthread_t thread;
    bool seen[FAKE_TAGS_MAX]; /* FAKE_UNKNOWN: tags answered outcome_unknown (fake thread only) */
};

/* The first redirect names no leader (wait and retry), every later one names node 1. */
static void *fake_node_main(void *argument)
{
    struct fake_node *fake = argument;
    while (!atomic_load(&fake->stop)) {
        void *body = NULL, *control = NULL;
        struct nn_iovec iov = {.iov_base = &body, .iov_len = NN_MSG};
        struct nn_msghdr header = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = NN_MSG};
        int len = nn_recvmsg(fake->sock, &header, 0);
        if (len < 0)
            continue; /* the receive timeout: look at stop */
        struct rush_request request;
        char why[RUSH_JSON_WHY_BYTES], text[256];
        cr_assert_eq(rush_json_decode_request(body, (size_t)len, &request, why, sizeof why), 0,
                     "%s", why);
        atomic_fetch_add(&fake->received, 1);
        if (fake->mode == FAKE_SILENT) {
            nn_freemsg(body);
            nn_freemsg(control);
            continue;
        }
        cr_assert_lt(request.tag, FAKE_TAGS_MAX);
        if (fake->mode == FAKE_UNKNOWN && !fake->seen[request.tag]) {
            fake->seen[request.tag] = true;
            atomic_fetch_add(&fake->unknown, 1);
            len = snprintf(text, sizeof text, "{\"outcome\":\"outcome_unknown\",\"tag\":%llu}",
                           (unsigned long long)request.tag);
            struct nn_iovec out = {.iov_base = text, .iov_len = (size_t)len};
            struct nn_msghdr reply = {.msg_iov = &out,
                                      .msg_iovlen = 1,
                                      .msg_control = &control,
                                      .msg_controllen = NN_MSG};
            cr_assert(nn_sendmsg(fake->sock, &reply, 0) == len);
            nn_freemsg(body);
            continue;
        }
        unsigned n = atomic_fetch_add(&fake->answered, 1);
        if (fake->mode == FAKE_UNKNOWN)
            n++; /* only redirects naming rushd */
        len = snprintf(text, sizeof text,
                       "{\"outcome\":\"redirect\",\"reason\":\"wrong_shard\",\"shard\":%u,"
                       "\"leader\":%s,\"tag\":%llu}",
                       rush_engine_shard_of(2, &request), n == 0 ? "null" : "1",
                       (unsigned long long)request.tag);
        struct nn_iovec out = {.iov_base = text, .iov_len = (size_t)len};
        struct nn_msghdr reply = {
            .msg_iov = &out, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = NN_MSG};
        cr_assert(nn_sendmsg(fake->sock, &reply, 0) == len);
        nn_freemsg(body);
    }
    return NULL;
}

/*
 * Node 0 is the fake, node 1 rushd's JSON endpoint; the table first guesses shard s on node
 * s % 2, so shard 0's requests meet the fake first (16 fresh SKUs: the chance that none is on
 * shard 0 is 2^-16). Returns rush-loadgen's exit status.
 */
static int run_with_fake(struct fake_node *fake, const char *timeout_ms_arg)
{
    char url[CHILD_PATH_BYTES + 32], nodes[2 * CHILD_PATH_BYTES + 64];
    snprintf(url, sizeof url, "ipc://%s/fake-node.ipc", rushd.dir);
    fake->sock = nn_socket(AF_SP_RAW, NN_REP);
    int timeout_ms = 50;
    cr_assert(
        nn_setsockopt(fake->sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof timeout_ms) == 0);
    cr_assert(nn_bind(fake->sock, url) >= 0);
    cr_assert_eq(pthread_create(&fake->thread, NULL, fake_node_main, fake), 0);
    snprintf(nodes, sizeof nodes, "%s,%s", url, rushd.json);
    const char *args[] = {"--json",       "--nodes",       nodes,      "--shards",  "2",
                          "--buyers",     "2000",          "--skus",   "16",        "--stock",
                          "50",           "--connections", "2",        "--threads", "1",
                          "--timeout-ms", timeout_ms_arg,  "--verify", NULL};
    int status = run_loadgen(args);
    atomic_store(&fake->stop, true);
    pthread_join(fake->thread, NULL);
    nn_close(fake->sock);
    return status;
}

Test(loadgen, redirects_are_followed_to_the_leader_with_the_same_keys)
{
    static struct fake_node fake = {.mode = FAKE_REDIRECT};
    int status = run_with_fake(&fake, "10000");
    cr_assert_eq(status, 0);
    json_t *report = load_report();
    assert_all_answered(report);
    unsigned answered = atomic_load(&fake.answered);
    cr_assert_gt(answered, 0, "the fake node saw no request");
    cr_assert_eq(field(report, "redirects.followed"), answered);
    cr_assert_eq(field(report, "redirects.leader_waits"), 1);
    assert_each_key_once(report);
    json_decref(report);
}

/* A hung node 0: what it never answers goes to node 1 after --timeout-ms, and so does the rest
 * of its shard; nothing is lost, every key decided once, by rushd. */
Test(loadgen, a_silent_node_is_routed_around_with_the_same_keys)
{
    static struct fake_node fake = {.mode = FAKE_SILENT};
    int status = run_with_fake(&fake, "300");
    cr_assert_eq(status, 0);
    json_t *report = load_report();
    assert_all_answered(report);
    unsigned received = atomic_load(&fake.received);
    cr_assert_gt(received, 0, "the silent node saw no request");
    cr_assert_geq(field(report, "redirects.rerouted"), received);
    /* Its connections fill their slots, then the first timeout moves shard 0 for good. */
    cr_assert_leq(received, field(report, "connections") * field(report, "inflight"),
                  "the silent node kept taking requests");
    cr_assert_eq(field(report, "errors.timeouts"), 0, "a rerouted request is not lost");
    assert_each_key_once(report);
    json_decref(report);
}

/* A fenced node 0 answers outcome_unknown once per request: each goes again after a wait, to
 * the fake (which then redirects to rushd); no outcome_unknown reaches the ledger. */
Test(loadgen, outcome_unknown_is_resent_with_the_same_key)
{
    static struct fake_node fake = {.mode = FAKE_UNKNOWN};
    int status = run_with_fake(&fake, "10000");
    cr_assert_eq(status, 0);
    json_t *report = load_report();
    assert_all_answered(report);
    unsigned unknown = atomic_load(&fake.unknown);
    cr_assert_gt(unknown, 0, "the fake node answered no outcome_unknown");
    cr_assert_eq(field(report, "redirects.unknown_retried"), unknown);
    cr_assert_eq(field(report, "redirects.followed"), atomic_load(&fake.answered));
    assert_each_key_once(report);
    json_decref(report);
}

Test(loadgen, echo_answers_every_request_of_either_protocol)
{
    char path[CHILD_PATH_BYTES + 32], binary[CHILD_PATH_BYTES + 32], json[CHILD_PATH_BYTES + 32];
    snprintf(path, sizeof path, "%s/bench-echo", rushd.bin);
    snprintf(binary, sizeof binary, "ipc://%s/echo.ipc", rushd.dir);
    snprintf(json, sizeof json, "ipc://%s/echo-json.ipc", rushd.dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, STDOUT_FILENO);
        execl(path, path, "--url", binary, "--json-url", json, "--seconds", "60", (char *)NULL);
        _exit(127);
    }
    const char *binary_args[] = {"--url",    binary, "--campaign-skus", "--skus", "2",
                                 "--buyers", "4000", "--batch",         "1",      "--connections",
                                 "4",        NULL};
    const char *json_args[] = {"--url",  binary, "--json",   "--json-url", json, "--campaign-skus",
                               "--skus", "2",    "--buyers", "2000",       NULL};
    cr_assert_eq(run_loadgen(binary_args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_eq(field(report, "outcomes.ok"), 4000, "the echo answers ok to everything");
    json_decref(report);
    cr_assert_eq(run_loadgen(json_args), 0);
    report = load_report();
    assert_all_answered(report);
    cr_assert_eq(field(report, "outcomes.ok"), 2000);
    json_decref(report);
    kill(pid, SIGTERM);
    cr_assert_eq(child_wait_exit(pid, LOADGEN_EXIT_MS), 0);
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

/*
 * --verify over "two nodes" that are the same rushd listed twice: every seq is served by both
 * subscribers, so the merge compares each pair byte for byte and must find them equal; the
 * figures come through the routed query (binary --nodes) and the SKUs through --admins.
 */
Test(loadgen, verify_merges_the_streams_of_every_node)
{
    char nodes[2 * CHILD_PATH_BYTES + 2], admins[2 * CHILD_PATH_BYTES + 2],
        pubs[2 * CHILD_PATH_BYTES + 2], replays[2 * CHILD_PATH_BYTES + 2];
    snprintf(nodes, sizeof nodes, "%s,%s", rushd.orders, rushd.orders);
    snprintf(admins, sizeof admins, "%s,%s", rushd.admin, rushd.admin);
    snprintf(pubs, sizeof pubs, "%s,%s", rushd.pub, rushd.pub);
    snprintf(replays, sizeof replays, "%s,%s", rushd.replay, rushd.replay);
    const char *args[] = {"--nodes",   nodes,     "--admins", admins,     "--pubs", pubs,
                          "--replays", replays,   "--verify", "--buyers", "3000",   "--stock",
                          "100",       "--batch", "1",        "--shards", "2",      NULL};
    cr_assert_eq(run_loadgen(args), 0);
    json_t *report = load_report();
    assert_all_answered(report);
    cr_assert_eq(field(report, "outcomes.ok"), 500);
    cr_assert_eq(field(report, "catalog.after.confirmed"), 500, "the routed query's figures");
    cr_assert_gt(field(report, "decision_gap.decided_before") +
                     field(report, "decision_gap.decided_after"),
                 0);
    json_decref(report);
    char command[2 * CHILD_PATH_BYTES];
    snprintf(command, sizeof command,
             "grep -q 'merged stream: .* 0 seqs missing, 0 disagreements' '%s/loadgen.log' && "
             "test $(grep -c 'followed to the end' '%s/loadgen.log') -ge 2",
             rushd.dir, rushd.dir);
    cr_assert_eq(system(command), 0, "rush-loadgen did not merge two followed streams");
}

/* A second rushd's orders: JSON reserves of the unlimited SKU 3001 until told to stop. */
struct other_load {
    const char *url;
    atomic_bool stop;
    atomic_uint decided;
};

static void *other_load_main(void *argument)
{
    struct other_load *load = argument;
    for (unsigned user = 1; !atomic_load(&load->stop); user++) {
        char text[160], reply[512];
        snprintf(text, sizeof text,
                 "{\"op\":\"reserve\",\"sku\":3001,\"user\":%u,\"qty\":1,\"key\":\"o%u\"}", user,
                 user);
        if (child_json(load->url, text, reply, sizeof reply, 2000) == 0 &&
            strstr(reply, "\"outcome\":\"ok\"") != NULL)
            atomic_fetch_add(&load->decided, 1);
        child_sleep_ms(2);
    }
    return NULL;
}

/*
 * Two "nodes" whose logs are not one log: the fixture takes the load, a second rushd with the
 * same campaign (so the same seqs before the run) decides other orders meanwhile. Their streams
 * carry different events under the same (shard, seq): the merge must call that a violation.
 */
Test(loadgen, verify_refuses_nodes_whose_streams_disagree)
{
    static struct rushd_child other = {.pid = -1};
    child_make_dir(&other, "other");
    other.durability = "fsync";
    child_write_campaign(&other, CHILD_ENGINE, CHILD_TOKEN, child_skus);
    child_run(&other, NULL);
    uint32_t shard = rush_engine_shard_of_sku(2, 3001);
    uint64_t base = 9000001;
    while (rush_engine_shard_of_sku(2, base) != shard)
        base++; /* the run's first SKU on the shard the other rushd writes */
    static struct other_load load;
    load.url = other.json;
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, other_load_main, &load), 0);
    char nodes[2 * CHILD_PATH_BYTES + 2], admins[2 * CHILD_PATH_BYTES + 2],
        pubs[2 * CHILD_PATH_BYTES + 2], replays[2 * CHILD_PATH_BYTES + 2], base_arg[32];
    snprintf(nodes, sizeof nodes, "%s,%s", rushd.orders, rushd.orders);
    snprintf(admins, sizeof admins, "%s,%s", rushd.admin, rushd.admin);
    snprintf(pubs, sizeof pubs, "%s,%s", rushd.pub, other.pub);
    snprintf(replays, sizeof replays, "%s,%s", rushd.replay, other.replay);
    snprintf(base_arg, sizeof base_arg, "%llu", (unsigned long long)base);
    const char *args[] = {"--nodes",  nodes,       "--admins",   admins,     "--pubs",
                          pubs,       "--replays", replays,      "--verify", "--buyers",
                          "3000",     "--stock",   "100",        "--batch",  "1",
                          "--shards", "2",         "--sku-base", base_arg,   NULL};
    int status = run_loadgen(args);
    atomic_store(&load.stop, true);
    pthread_join(thread, NULL);
    child_cleanup(&other);
    cr_assert_eq(status, 4, "two disagreeing streams verified");
    cr_assert_gt(atomic_load(&load.decided), 0, "the other rushd decided nothing");
    char command[2 * CHILD_PATH_BYTES];
    snprintf(command, sizeof command,
             "grep -q 'seqs served with different events by two nodes' '%s/loadgen.log'",
             rushd.dir);
    cr_assert_eq(system(command), 0, "the disagreement was not named");
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
        {{"--threads", "0"}, "--threads"},
        {{"--threads", "5", "--connections", "4"}, "--threads"},
        {{"--json", "--batch", "16"}, "--json"},
        {{"--nodes", "tcp://a:1,localhost"}, "--nodes"},
        {{"--shards", "65"}, "--shards"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rush_loadgen_options o;
        char why[RUSH_LOADGEN_WHY_BYTES] = "";
        cr_assert_lt(parse(cases[i].args, &o, why, sizeof why), 0, "case %zu accepted", i);
        cr_assert(strstr(why, cases[i].named) != NULL, "case %zu: '%s' does not name %s", i, why,
                  cases[i].named);
    }
}

Test(loadgen_options, node_lists_are_one_per_node)
{
    struct rush_loadgen_options o;
    char why[RUSH_LOADGEN_WHY_BYTES] = "";
    const char *good[] = {"--nodes", "tcp://a:1,tcp://b:1", "--admins",  "tcp://a:2,tcp://b:2",
                          "--pubs",  "tcp://a:3,tcp://b:3", "--replays", "tcp://a:4,tcp://b:4",
                          NULL};
    cr_assert_eq(parse(good, &o, why, sizeof why), 0, "%s", why);
    cr_assert_eq(o.node_count, 2);
    cr_assert_eq(o.pub_count, 2);
    cr_assert_str_eq(o.admins[1], "tcp://b:2");
    cr_assert_str_eq(o.replays[0], "tcp://a:4");
    static const struct {
        const char *args[7];
        const char *named;
    } cases[] = {
        {{"--nodes", "tcp://a:1,tcp://b:1", "--admins", "tcp://a:2", NULL}, "--admins"},
        {{"--nodes", "tcp://a:1,tcp://b:1", "--pubs", "tcp://a:3,tcp://b:3", NULL}, "--replays"},
        {{"--pubs", "tcp://a:3", "--replays", "tcp://a:4", NULL}, "--pubs"},
        {{"--nodes", "tcp://a:1", "--replays", "a:4", NULL}, "--replays"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
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

Test(loadgen_pieces, route_learns_leaders_from_redirects)
{
    struct rush_route route;
    rush_route_init(&route, 2, 4);
    /* Before any redirect: shard s on node s % 2. */
    struct rush_request request = {.op = RUSH_OP_RESERVE, .sku_id = 1};
    uint32_t shard = rush_engine_shard_of(4, &request);
    cr_assert_eq(rush_route_node(&route, &request), shard % 2);
    /* An order id routes by its top byte. */
    struct rush_request confirm = {.op = RUSH_OP_CONFIRM, .target_id = UINT64_C(3) << 56};
    cr_assert_eq(rush_route_node(&route, &confirm), 1);
    uint32_t node = 99;
    struct rush_result ok = {.outcome = RUSH_OK};
    cr_assert_eq(rush_route_answer(&route, &ok, 0, 0, &node), RUSH_ROUTE_DECIDED);
    /* A redirect naming node 1 for shard 3 teaches the table; the request goes there at once. */
    struct rush_result redirect = {
        .outcome = RUSH_REDIRECT, .reason = RUSH_REASON_WRONG_SHARD, .state = 3, .qty = 0};
    cr_assert_eq(rush_route_answer(&route, &redirect, 1, 0, &node), RUSH_ROUTE_RESEND);
    cr_assert_eq(node, 0);
    cr_assert_eq(rush_route_node(&route, &confirm), 0, "shard 3 now on node 0");
    /* No leader named (or one out of range): wait, then ask the same node again. */
    redirect.qty = RUSH_ROUTE_NO_LEADER;
    cr_assert_eq(rush_route_answer(&route, &redirect, 1, 5, &node), RUSH_ROUTE_WAIT);
    cr_assert_eq(node, 1);
    redirect.qty = 7;
    cr_assert_eq(rush_route_answer(&route, &redirect, 0, 5, &node), RUSH_ROUTE_WAIT);
    cr_assert_eq(rush_route_node(&route, &confirm), 0, "an unknown leader teaches nothing");
    /* Bounded hops. */
    redirect.qty = 1;
    cr_assert_eq(rush_route_answer(&route, &redirect, 0, RUSH_ROUTE_HOPS_MAX - 1, &node),
                 RUSH_ROUTE_GIVE_UP);
    /* outcome_unknown with two nodes: wait, then route again; bounded like a redirect. */
    struct rush_result unknown = {.outcome = RUSH_OUTCOME_UNKNOWN};
    cr_assert_eq(rush_route_answer(&route, &unknown, 0, 3, &node), RUSH_ROUTE_WAIT);
    cr_assert_eq(node, RUSH_ROUTE_NO_LEADER, "routed again when the wait is over");
    cr_assert_eq(rush_route_node(&route, &confirm), 0, "an outcome_unknown teaches nothing");
    cr_assert_eq(rush_route_answer(&route, &unknown, 0, RUSH_ROUTE_HOPS_MAX - 1, &node),
                 RUSH_ROUTE_GIVE_UP);
    /* A timeout moves the shard to the next node, once per silent node. */
    cr_assert_eq(rush_route_timeout(&route, &confirm, 0), 1);
    cr_assert_eq(rush_route_node(&route, &confirm), 1, "new requests avoid the silent node");
    cr_assert_eq(rush_route_timeout(&route, &confirm, 0), 1, "already moved: stays");
    cr_assert_eq(rush_route_timeout(&route, &confirm, 1), 0, "wraps to the first node");
    /* One node: everything on it, and outcome_unknown is an answer. */
    rush_route_init(&route, 1, 4);
    cr_assert_eq(rush_route_node(&route, &confirm), 0);
    cr_assert_eq(rush_route_answer(&route, &unknown, 0, 0, &node), RUSH_ROUTE_DECIDED);
}

Test(loadgen_pieces, decision_gaps_keep_each_shards_longest)
{
    static struct rush_decision_gaps gaps;
    memset(&gaps, 0, sizeof gaps);
    rush_decision_gaps_record(&gaps, 0, true, 1000);
    rush_decision_gaps_record(&gaps, 1, false, 1500);
    rush_decision_gaps_record(&gaps, 0, true, 1100);
    rush_decision_gaps_record(&gaps, 1, true, 1600);
    rush_decision_gaps_record(&gaps, 0, true, 5100); /* shard 0: 4000 without a decision */
    rush_decision_gaps_record(&gaps, 1, true, 5200); /* shard 1: 3600 */
    rush_decision_gaps_record(&gaps, 0, false, 5150);
    cr_assert_eq(gaps.longest_ns[0], 4000);
    cr_assert_eq(gaps.longest_ns[1], 3600);
    cr_assert_eq(gaps.gap_ns, 4000);
    cr_assert_eq(gaps.shard, 0);
    cr_assert_eq(gaps.began_ns, 1100);
    cr_assert_eq(gaps.decided_before, 2);
    cr_assert_eq(gaps.ok_before, 2);
    cr_assert_eq(gaps.decided[0], 4, "two after it");
    cr_assert_eq(gaps.ok[0], 3);
    cr_assert_eq(gaps.decided[1], 3);
    cr_assert_eq(gaps.ok[1], 2);
    rush_decision_gaps_record(&gaps, 1, true, 5000); /* out of order across threads: no gap */
    cr_assert_eq(gaps.last_ns[1], 5200);
    cr_assert_eq(gaps.longest_ns[1], 3600);
}

Test(loadgen_pieces, json_answers_read_back_into_results)
{
    struct rush_result r;
    char why[256];
    const char ok[] = "{\"outcome\":\"ok\",\"order\":\"72057594037927937\",\"sku\":1001,"
                      "\"remaining\":9,\"duplicate\":true,\"tag\":12}";
    cr_assert_eq(rush_json_result_decode(ok, strlen(ok), &r, why, sizeof why), 0, "%s", why);
    cr_assert_eq(r.outcome, RUSH_OK);
    cr_assert_eq(r.order_id, UINT64_C(72057594037927937));
    cr_assert_eq(r.remaining, 9);
    cr_assert_eq(r.flags, RUSH_RESULT_DUPLICATE);
    cr_assert_eq(r.tag, 12);
    const char invalid[] = "{\"outcome\":\"invalid\",\"reason\":\"wrong_shard\"}";
    cr_assert_eq(rush_json_result_decode(invalid, strlen(invalid), &r, why, sizeof why), 0);
    cr_assert_eq(r.outcome, RUSH_INVALID);
    cr_assert_eq(r.reason, RUSH_REASON_WRONG_SHARD);
    const char redirect[] = "{\"outcome\":\"redirect\",\"reason\":\"wrong_shard\",\"shard\":3,"
                            "\"leader\":null,\"tag\":5}";
    cr_assert_eq(rush_json_result_decode(redirect, strlen(redirect), &r, why, sizeof why), 0);
    cr_assert_eq(r.outcome, RUSH_REDIRECT);
    cr_assert_eq(r.state, 3);
    cr_assert_eq(r.qty, RUSH_ROUTE_NO_LEADER);
    cr_assert_eq(r.tag, 5);
    const char *hostile[] = {"", "[]", "{\"outcome\":7}", "{\"outcome\":\"bought\"}", "{\"x\":1}"};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++)
        cr_assert_eq(rush_json_result_decode(hostile[i], strlen(hostile[i]), &r, why, sizeof why),
                     RUSH_EPROTO, "case %zu accepted", i);
}
