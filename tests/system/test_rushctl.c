/*
 * rushctl end to end: build/bin/rushctl run as a process against the real rushd (a child, see
 * rushd_child.h), each command's output and exit status (0 ok, 1 refused, 2 usage or
 * unreachable); usage errors and an unreachable endpoint without any server.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "rush/engine.h"
#include "rushd_child.h"

#define OUTPUT_BYTES 16384

struct ran {
    int status;
    char out[OUTPUT_BYTES];
    char err[OUTPUT_BYTES];
};

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *file = fopen(path, "r");
    size_t len = file != NULL ? fread(buf, 1, cap - 1, file) : 0;
    buf[len] = '\0';
    if (file != NULL)
        fclose(file);
}

/* Runs rushctl with the endpoints of `rushd` (when started) and `args`. */
static struct ran *rushctl(const char *args)
{
    static struct ran ran;
    char bin[CHILD_PATH_BYTES], dir[] = "/tmp/rush-test-rushctl-XXXXXX";
    child_bin_dir(bin, sizeof bin);
    cr_assert(mkdtemp(dir) != NULL);
    char command[4 * CHILD_PATH_BYTES];
    snprintf(command, sizeof command,
             "'%s/rushctl' --admin '%s' --json '%s' --timeout 3000 %s >%s/out 2>%s/err", bin,
             rushd.admin[0] ? rushd.admin : "tcp://127.0.0.1:1",
             rushd.json[0] ? rushd.json : "tcp://127.0.0.1:1", args, dir, dir);
    int status = system(command);
    ran.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    char path[sizeof dir + 8];
    snprintf(path, sizeof path, "%s/out", dir);
    slurp(path, ran.out, sizeof ran.out);
    unlink(path);
    snprintf(path, sizeof path, "%s/err", dir);
    slurp(path, ran.err, sizeof ran.err);
    unlink(path);
    rmdir(dir);
    return &ran;
}

#define HAS(text, what) cr_assert(strstr((text), (what)) != NULL, "'%s' in:\n%s", (what), (text))

/* The value of "name: value" in rushctl's output. */
static const char *field(const char *out, const char *name)
{
    static char value[128];
    char pattern[64];
    snprintf(pattern, sizeof pattern, "%s: ", name);
    const char *at = strstr(out, pattern);
    cr_assert(at != NULL, "no %s in:\n%s", name, out);
    at += strlen(pattern);
    size_t len = strcspn(at, "\n");
    snprintf(value, sizeof value, "%.*s", (int)len, at);
    return value;
}

TestSuite(rushctl, .fini = rushd_cleanup, .timeout = 120);

Test(rushctl, usage_errors_without_a_server)
{
    struct ran *r = rushctl("");
    cr_assert_eq(r->status, 2);
    HAS(r->err, "missing command");
    r = rushctl("frobnicate");
    cr_assert_eq(r->status, 2);
    HAS(r->err, "unknown command 'frobnicate'");
    HAS(r->err, "usage: rushctl");
    r = rushctl("sku");
    cr_assert_eq(r->status, 2);
    HAS(r->err, "sku: missing argument");
    r = rushctl("adjust 1001");
    cr_assert_eq(r->status, 2);
    r = rushctl("adjust 1001 0");
    cr_assert_eq(r->status, 2);
    HAS(r->err, "DELTA must be a nonzero integer");
    r = rushctl("order abc");
    cr_assert_eq(r->status, 2);
    HAS(r->err, "positive integer");
    r = rushctl("reserve --sku 1001");
    cr_assert_eq(r->status, 2);
    HAS(r->err, "--user");
    r = rushctl("stats --yaml");
    cr_assert_eq(r->status, 2);
    r = rushctl("sku-put /nonexistent/file.json");
    cr_assert_eq(r->status, 2);
    HAS(r->err, "cannot open /nonexistent/file.json");
    r = rushctl("--token-file /nonexistent/token stats");
    cr_assert_eq(r->status, 2);
    r = rushctl("--help");
    cr_assert_eq(r->status, 0);
    HAS(r->out, "sku-put FILE.json");
}

Test(rushctl, an_unreachable_endpoint_is_exit_2)
{
    char bin[CHILD_PATH_BYTES];
    child_bin_dir(bin, sizeof bin);
    char command[2 * CHILD_PATH_BYTES];
    snprintf(command, sizeof command,
             "'%s/rushctl' --json tcp://127.0.0.1:%d --timeout 200 sku 1 2>/dev/null", bin,
             child_free_port());
    int status = system(command);
    cr_assert_eq(WEXITSTATUS(status), 2);
    struct ran *r = rushctl("--timeout 200 stats");
    cr_assert_eq(r->status, 2);
    HAS(r->err, "no answer from tcp://127.0.0.1:1 within 200 ms");
}

Test(rushctl, order_commands)
{
    rushd_start(false);
    struct ran *r = rushctl("sku 1001");
    cr_assert_eq(r->status, 0, "%s", r->err);
    HAS(r->out, "outcome: ok");
    cr_assert_str_eq(field(r->out, "available"), "2");

    r = rushctl("reserve --sku 1001 --user 1 --key k-1");
    cr_assert_eq(r->status, 0, "%s", r->err);
    char order[64];
    snprintf(order, sizeof order, "%s", field(r->out, "order"));
    cr_assert_str_eq(field(r->out, "remaining"), "1");
    r = rushctl("reserve --sku 1001 --user 1 --key k-1");
    cr_assert_eq(r->status, 0);
    cr_assert_str_eq(field(r->out, "duplicate"), "true");
    cr_assert_str_eq(field(r->out, "order"), order);
    r = rushctl("reserve --sku 1001 --user 1");
    cr_assert_eq(r->status, 1);
    HAS(r->out, "outcome: limit_exceeded");
    HAS(r->err, "refused: limit_exceeded");

    char args[128];
    snprintf(args, sizeof args, "order %s", order);
    r = rushctl(args);
    cr_assert_eq(r->status, 0);
    cr_assert_str_eq(field(r->out, "state"), "reserved");
    snprintf(args, sizeof args, "confirm %s", order);
    r = rushctl(args);
    cr_assert_eq(r->status, 0, "%s", r->err);
    snprintf(args, sizeof args, "order %s", order);
    cr_assert_str_eq(field(rushctl(args)->out, "state"), "confirmed");
    snprintf(args, sizeof args, "cancel %s", order);
    r = rushctl(args);
    cr_assert_eq(r->status, 1);
    HAS(r->out, "outcome: invalid");

    r = rushctl("reserve --sku 1002 --user 5 --qty 2");
    cr_assert_eq(r->status, 0, "%s", r->err);
    snprintf(args, sizeof args, "cancel %s", field(r->out, "order"));
    cr_assert_eq(rushctl(args)->status, 0);
    cr_assert_str_eq(field(rushctl("sku 1002")->out, "available"), "100");

    r = rushctl("order 72057594037927999");
    cr_assert_eq(r->status, 1);
    HAS(r->out, "outcome: unknown_order");
    r = rushctl("group 72057594037927999");
    cr_assert_eq(r->status, 1);
    r = rushctl("sku 424242");
    cr_assert_eq(r->status, 1);
    HAS(r->out, "unknown_sku");
}

Test(rushctl, admin_commands)
{
    rushd_start(true);
    struct ran *r = rushctl("--token " CHILD_TOKEN " stats");
    cr_assert_eq(r->status, 0, "%s", r->err);
    HAS(r->out, "requests");
    HAS(r->out, "outcomes.ok");
    /* Only clients' requests count: not the campaign's SKU puts nor the look-ups before them. */
    char engine_requests[32], server_requests[32], unknown_sku[32];
    cr_assert_eq(sscanf(strstr(r->out, "\nrequests ") + 1, "requests %31s", engine_requests), 1);
    cr_assert_eq(
        sscanf(strstr(r->out, "server.requests "), "server.requests %31s", server_requests), 1);
    cr_assert_str_eq(engine_requests, server_requests, "%s", r->out);
    cr_assert_eq(sscanf(strstr(r->out, "\noutcomes.unknown_sku ") + 1, "outcomes.unknown_sku %31s",
                        unknown_sku),
                 1);
    cr_assert_str_eq(unknown_sku, "0", "the campaign's SKUs were never unknown to a client");
    r = rushctl("--token " CHILD_TOKEN " stats --json");
    cr_assert_eq(r->status, 0);
    cr_assert_eq(r->out[0], '{');
    HAS(r->out, "\"outcome\":\"ok\"");

    r = rushctl("--token wrong-token-0123456789 pause 1001");
    cr_assert_eq(r->status, 1);
    HAS(r->err, "admin token required");
    r = rushctl("pause 1001");
    cr_assert_eq(r->status, 1);

    r = rushctl("--token " CHILD_TOKEN " pause 1001");
    cr_assert_eq(r->status, 0, "%s", r->err);
    r = rushctl("reserve --sku 1001 --user 3");
    cr_assert_eq(r->status, 1);
    HAS(r->out, "outcome: paused");
    cr_assert_eq(rushctl("--token " CHILD_TOKEN " resume 1001")->status, 0);
    cr_assert_eq(rushctl("reserve --sku 1001 --user 3")->status, 0);

    r = rushctl("--token " CHILD_TOKEN " adjust 1001 10");
    cr_assert_eq(r->status, 0, "%s", r->err);
    cr_assert_str_eq(field(rushctl("sku 1001")->out, "available"), "11");
    r = rushctl("--token " CHILD_TOKEN " adjust 1001 -100");
    cr_assert_eq(r->status, 1);
    HAS(r->out, "below_reserved");

    /* the token from a file */
    char path[CHILD_PATH_BYTES], args[2 * CHILD_PATH_BYTES];
    snprintf(path, sizeof path, "%s/token", rushd.dir);
    FILE *file = fopen(path, "w");
    fprintf(file, "%s\n", CHILD_TOKEN);
    fclose(file);
    snprintf(args, sizeof args, "--token-file %s pause 1002", path);
    cr_assert_eq(rushctl(args)->status, 0);

    /* durability none writes no log: nothing to snapshot, and rushctl says so */
    r = rushctl("--token " CHILD_TOKEN " snapshot");
    cr_assert_eq(r->status, 1);
    HAS(r->err, "no write-ahead log");
}

Test(rushctl, sku_put_from_a_file)
{
    rushd_start(false);
    char path[CHILD_PATH_BYTES], args[2 * CHILD_PATH_BYTES];
    snprintf(path, sizeof path, "%s/sku.json", rushd.dir);
    FILE *file = fopen(path, "w");
    fputs("{\"id\":6001,\"name\":\"Flash socks\",\"stock\":7,\"price_fen\":990,\"start_ns\":0,"
          "\"end_ns\":\"9223372036854775807\",\"pay_ttl_ns\":0,\"order_qty_max\":1,"
          "\"user_qty_max\":2}\n",
          file);
    fclose(file);
    snprintf(args, sizeof args, "--token %s sku-put %s", CHILD_TOKEN, path);
    struct ran *r = rushctl(args);
    cr_assert_eq(r->status, 0, "%s%s", r->out, r->err);
    cr_assert_str_eq(field(rushctl("sku 6001")->out, "available"), "7");

    /* a definition the engine's check refuses is refused before sending, with its words */
    file = fopen(path, "w");
    fputs("{\"id\":6002,\"name\":\"bad\",\"stock\":-5}\n", file);
    fclose(file);
    r = rushctl(args);
    cr_assert_eq(r->status, 2);
    HAS(r->err, path);
    file = fopen(path, "w");
    fputs("{not json\n", file);
    fclose(file);
    r = rushctl(args);
    cr_assert_eq(r->status, 2);
    HAS(r->err, path);
}

/* Snapshot files in rushd's data directory: of one shard, or of all (shard < 0). */
static int snapshot_files(int shard)
{
    char path[CHILD_PATH_BYTES], prefix[16];
    snprintf(path, sizeof path, "%s/data", rushd.dir);
    snprintf(prefix, sizeof prefix, shard < 0 ? "snap-" : "snap-%02d-", shard);
    DIR *dir = opendir(path);
    cr_assert(dir != NULL);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        size_t len = strlen(entry->d_name);
        count += strncmp(entry->d_name, prefix, strlen(prefix)) == 0 && len > 5 &&
                 strcmp(entry->d_name + len - 5, ".snap") == 0;
    }
    closedir(dir);
    return count;
}

/* "recovered_events" of rushctl stats: events replayed from the log at the last start. */
static const char *recovered_events(void)
{
    struct ran *r = rushctl("--token " CHILD_TOKEN " stats");
    cr_assert_eq(r->status, 0, "%s", r->err);
    const char *at = strstr(r->out, "recovered_events");
    cr_assert(at != NULL, "%s", r->out);
    static char value[32];
    sscanf(at, "recovered_events %31s", value);
    return value;
}

Test(rushctl, snapshot_then_a_restart_starts_from_it)
{
    rushd.durability = "fsync";
    rushd_start(false);
    struct ran *r = rushctl("reserve --sku 1002 --user 5 --qty 2 --key snap-1");
    cr_assert_eq(r->status, 0, "%s", r->err);
    char order[64], args[128];
    snprintf(order, sizeof order, "%s", field(r->out, "order"));
    cr_assert_eq(rushctl("reserve --sku 1001 --user 1 --key snap-2")->status, 0);
    cr_assert_eq(snapshot_files(-1), 0);

    r = rushctl("--token " CHILD_TOKEN " snapshot");
    cr_assert_eq(r->status, 0, "%s%s", r->out, r->err);
    HAS(r->out, "outcome: ok");
    cr_assert_str_eq(field(r->out, "shards"), "2");
    cr_assert_eq(snapshot_files(0), 1, "one snapshot per shard");
    cr_assert_eq(snapshot_files(1), 1, "one snapshot per shard");
    r = rushctl("snapshot");
    cr_assert_eq(r->status, 1, "the token is required");
    HAS(r->err, "admin token required");

    /* rush-wal reads each snapshot back */
    char command[3 * CHILD_PATH_BYTES];
    snprintf(command, sizeof command,
             "for f in '%s'/data/snap-*.snap; do '%s/rush-wal' snapshot-info \"$f\" || exit 1; "
             "done >/dev/null",
             rushd.dir, rushd.bin);
    cr_assert_eq(system(command), 0, "rush-wal snapshot-info refused a snapshot");

    /* Everything was in the snapshots: the restart replays no event from the log. */
    rushd_crash_and_restart();
    cr_assert_str_eq(recovered_events(), "0");
    snprintf(args, sizeof args, "order %s", order);
    r = rushctl(args);
    cr_assert_eq(r->status, 0, "%s", r->err);
    cr_assert_str_eq(field(r->out, "state"), "reserved");
    cr_assert_str_eq(field(rushctl("sku 1002")->out, "available"), "98");
    r = rushctl("reserve --sku 1002 --user 5 --qty 2 --key snap-1");
    cr_assert_str_eq(field(r->out, "duplicate"), "true", "the key survived in the snapshot");
    cr_assert_str_eq(field(r->out, "order"), order);

    /* What comes after the snapshot is replayed from the log on top of it. */
    cr_assert_eq(rushctl("reserve --sku 1002 --user 6 --key snap-3")->status, 0);
    rushd_crash_and_restart();
    cr_assert_str_neq(recovered_events(), "0");
    cr_assert_str_eq(field(rushctl("sku 1002")->out, "available"), "97");
}

Test(rushctl, snapshot_every_events_from_the_campaign)
{
    rushd.durability = "fsync";
    rushd_start(false);
    kill(rushd.pid, SIGKILL);
    cr_assert(child_wait_exit(rushd.pid, CHILD_EXIT_MS) == 128 + SIGKILL);
    rushd.pid = -1;
    char command[2 * CHILD_PATH_BYTES];
    snprintf(command, sizeof command,
             "sed -i 's/^\\[engine\\]$/[engine]\\nsnapshot_every_events = 3/' '%s/campaign.ini'",
             rushd.dir);
    cr_assert_eq(system(command), 0);
    rushd_spawn();
    int shard = (int)rush_engine_shard_of_sku(2, 1002);
    cr_assert_eq(snapshot_files(-1), 0);
    char args[128];
    for (int user = 1; user <= 2; user++) {
        snprintf(args, sizeof args, "reserve --sku 1002 --user %d --key every-%d", user, user);
        cr_assert_eq(rushctl(args)->status, 0);
    }
    cr_assert_eq(snapshot_files(-1), 0, "2 events: not yet");
    for (int user = 3; user <= 4; user++) {
        snprintf(args, sizeof args, "reserve --sku 1002 --user %d --key every-%d", user, user);
        cr_assert_eq(rushctl(args)->status, 0);
    }
    cr_assert_eq(snapshot_files(shard), 1, "the shard that logged 3 events took a snapshot");
    cr_assert_eq(snapshot_files(1 - shard), 0, "the other logged nothing");
}

/* The audited actions: who paused and why reach the stream, and rushctl tail prints them.
 */
Test(rushctl, an_admin_action_is_audited_on_the_stream)
{
    rushd.durability = "fsync"; /* the publisher reads the log */
    rushd_start(false);
    struct ran *r =
        rushctl("--token " CHILD_TOKEN " --operator alice --reason 'fix price' pause 1001");
    cr_assert_eq(r->status, 0, "%s", r->err);
    /* nothing else is on the stream yet: the campaign's own SKU puts are not admin actions */
    char args[4 * CHILD_PATH_BYTES];
    snprintf(args, sizeof args, "tail --pub '%s' --replay '%s' --count 4 --idle-exit 10000",
             rushd.pub, rushd.replay);
    r = rushctl(args);
    cr_assert_eq(r->status, 0, "%s", r->err);
    HAS(r->out, "\"type\":\"admin_audit\",\"action\":\"pause\",\"sku\":1001,\"amount\":0");
    HAS(r->out, "\"type\":\"admin_audit_part\",\"part\":2,\"action\":\"pause\",\"sku\":1001,"
                "\"operator\":\"alice\",\"reason\":\"fix price\"");
    /* a refused action is audited too, with its default operator (the login name) */
    r = rushctl("--token " CHILD_TOKEN " --reason 'too much' adjust 1001 -1000000");
    cr_assert_eq(r->status, 1, "%s", r->out);
    snprintf(args, sizeof args, "tail --pub '%s' --replay '%s' --count 8 --idle-exit 10000",
             rushd.pub, rushd.replay);
    r = rushctl(args);
    cr_assert_eq(r->status, 0, "%s", r->err);
    HAS(r->out, "\"action\":\"adjust\",\"sku\":1001,\"amount\":-1000000");
    HAS(r->out, "\"reason\":\"too much\"");
    /* a snapshot is audited on every shard's stream, where its log asked for it */
    r = rushctl("--token " CHILD_TOKEN " --operator bob --reason 'before midnight' snapshot");
    cr_assert_eq(r->status, 0, "%s", r->err);
    snprintf(args, sizeof args, "tail --pub '%s' --replay '%s' --count 16 --idle-exit 10000",
             rushd.pub, rushd.replay);
    r = rushctl(args);
    cr_assert_eq(r->status, 0, "%s", r->err);
    int audits = 0;
    for (const char *at = r->out; (at = strstr(at, "\"part\":2,\"action\":\"snapshot\"")); at++) {
        HAS(at, "\"operator\":\"bob\",\"reason\":\"before midnight\"");
        audits++;
    }
    cr_assert_eq(audits, 2, "one audit a shard:\n%s", r->out);
}
