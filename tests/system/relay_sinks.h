/*
 * relay_sinks.h — what the relay system tests (tests/system/test_relay.c on one rushd,
 * tests/system/test_relay_cluster.c on a cluster's log) share: the kafka-mock and rush-relay
 * children, the JetStream sink's stream, and the checks of what each sink holds. A sink's
 * messages are counted per (shard, seq) against the stream's heads: deduped, a sink must hold
 * every seq 1..head of every shard and nothing beyond; what a message carries is checked by the
 * test's own take callback, which counts it with holding_add().
 *
 * The including file defines SHARDS, SINK_SEQ_MAX (the most seqs of one shard), TOPIC (the Kafka
 * topic, SHARDS partitions), JS_STREAM and JS_SUBJECT (the JetStream sink's) before including it.
 * One process runs one relay at a time: the state is file-scope, like rushd_child.h's.
 */
#ifndef RUSH_TEST_RELAY_SINKS_H
#define RUSH_TEST_RELAY_SINKS_H

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <inttypes.h>
#include <jansson.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rushd_child.h"

#define SINK_ANY UINT64_MAX /* holding_complete(): no expected count of distinct seqs */

static pid_t mock_pid = -1, relay_pid = -1;
static char bootstrap[128]; /* kafka-mock's address */
static natsConnection *nats_connection;
static jsCtx *js;

/* ---- the children ---------------------------------------------------------------------------- */

/* Kills the relay and kafka-mock if they run. */
static inline void sinks_stop_children(void)
{
    pid_t pids[2] = {relay_pid, mock_pid};
    for (int i = 0; i < 2; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            child_wait_exit(pids[i], CHILD_EXIT_MS);
        }
}

/* <bin>/../tests/kafka-mock TOPIC SHARDS; its first stdout line is the bootstrap address. */
static inline void start_mock(const char *bin)
{
    char path[CHILD_PATH_BYTES + 32], partitions[16];
    snprintf(path, sizeof path, "%s/../tests/kafka-mock", bin);
    snprintf(partitions, sizeof partitions, "%d", SHARDS);
    int out[2];
    cr_assert(pipe(out) == 0);
    mock_pid = fork();
    cr_assert(mock_pid >= 0);
    if (mock_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        execl(path, path, TOPIC, partitions, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *reader = fdopen(out[0], "r");
    cr_assert(fgets(bootstrap, sizeof bootstrap, reader) != NULL, "kafka-mock printed nothing");
    fclose(reader);
    bootstrap[strcspn(bootstrap, "\n")] = '\0';
    cr_log_info("kafka mock cluster at %s", bootstrap);
}

/* <bin>/rush-relay with `args` (NULL-ended, args[0] the program's name), output in <dir>/relay.log.
 */
static inline pid_t relay_spawn(const char *bin, const char *dir, const char *const args[])
{
    char path[CHILD_PATH_BYTES + 16], log[CHILD_PATH_BYTES + 16];
    snprintf(path, sizeof path, "%s/rush-relay", bin);
    snprintf(log, sizeof log, "%s/relay.log", dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
        execv(path, (char *const *)args);
        _exit(127);
    }
    return pid;
}

static inline void print_relay_log(const char *dir)
{
    char command[CHILD_PATH_BYTES + 32];
    snprintf(command, sizeof command, "cat '%s/relay.log' >&2", dir);
    int rc = system(command);
    (void)rc;
}

/* Runs <bin>/rush-relay with `args` (shell words); its exit status, its stdout and stderr in out.
 */
static inline int relay_run_in(const char *bin, const char *dir, const char *args, char *out,
                               size_t cap)
{
    char command[4096], path[CHILD_PATH_BYTES + 32];
    snprintf(path, sizeof path, "%s/relay.out", dir);
    snprintf(command, sizeof command, "timeout 60 '%s/rush-relay' %s > '%s' 2>&1", bin, args, path);
    int status = system(command);
    FILE *file = fopen(path, "r");
    cr_assert(file != NULL);
    size_t n = fread(out, 1, cap - 1, file);
    out[n] = '\0';
    fclose(file);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- JetStream --------------------------------------------------------------------------------
 */

/*
 * Connects, and makes the stream as an operator would before starting the relay (the relay makes
 * a missing one itself; nats-server 2.9.10 can crash when a message get reaches a stream being
 * created, so a test's polling must not race with that).
 */
static inline void js_open(const char *urls)
{
    cr_assert_eq(natsConnection_ConnectTo(&nats_connection, urls), NATS_OK);
    cr_assert_eq(natsConnection_JetStream(&js, nats_connection, NULL), NATS_OK);
    const char *subjects[1] = {JS_SUBJECT ".>"};
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = JS_STREAM;
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    config.Storage = js_FileStorage;
    config.Duplicates = INT64_C(120) * 1000000000; /* two minutes */
    cr_assert_eq(js_AddStream(NULL, js, &config, NULL, NULL), NATS_OK);
}

static inline void js_close(void)
{
    jsCtx_Destroy(js);
    natsConnection_Destroy(nats_connection);
    js = NULL;
    nats_connection = NULL;
}

static inline uint64_t header_u64(natsMsg *msg, const char *name)
{
    const char *value = NULL;
    cr_assert_eq(natsMsgHeader_Get(msg, name, &value), NATS_OK, "no %s header", name);
    return strtoull(value, NULL, 10);
}

/* The seq of subject JS_SUBJECT.<shard>'s last message (0: none or no stream yet). */
static inline uint64_t js_held(uint32_t shard)
{
    char subject[64];
    snprintf(subject, sizeof subject, JS_SUBJECT ".%u", shard);
    natsMsg *msg = NULL;
    jsErrCode code = 0;
    if (js_GetLastMsg(&msg, js, JS_STREAM, subject, NULL, &code) != NATS_OK)
        return 0;
    uint64_t seq = header_u64(msg, "Rush-Seq");
    natsMsg_Destroy(msg);
    return seq;
}

static inline uint64_t js_held_total(void)
{
    uint64_t total = 0;
    for (uint32_t shard = 0; shard < SHARDS; shard++)
        total += js_held(shard);
    return total;
}

/* ---- what a sink holds ---------------------------------------------------------------------- */

struct holding {
    uint8_t seen[SHARDS][SINK_SEQ_MAX + 1];
    uint64_t messages;
    uint64_t duplicates;
};

/* Counts one message of (shard, seq), which must lie within the stream's heads. */
static inline void holding_add(struct holding *h, const uint64_t *heads, uint64_t shard,
                               uint64_t seq, const char *sink)
{
    cr_assert_lt(shard, SHARDS, "%s: shard %" PRIu64, sink, shard);
    cr_assert(seq >= 1 && seq <= heads[shard],
              "%s: shard %" PRIu64 " seq %" PRIu64 " beyond the stream's head %" PRIu64, sink,
              shard, seq, heads[shard]);
    h->messages++;
    h->duplicates += h->seen[shard][seq] != 0;
    h->seen[shard][seq] = 1;
}

/*
 * Deduped, the sink holds every seq of every shard: the stream's events, no gap; and, unless
 * `expect` is SINK_ANY, that many distinct (shard, seq).
 */
static inline void holding_complete(const struct holding *h, const uint64_t *heads, uint64_t expect,
                                    const char *sink)
{
    uint64_t distinct = 0;
    for (uint32_t shard = 0; shard < SHARDS; shard++)
        for (uint64_t seq = 1; seq <= heads[shard]; seq++) {
            cr_assert(h->seen[shard][seq], "%s: shard %u seq %" PRIu64 " is missing", sink, shard,
                      seq);
            distinct++;
        }
    if (expect != SINK_ANY)
        cr_assert_eq(distinct, expect, "%s: one event per confirmed order", sink);
    cr_assert_eq(h->messages - h->duplicates, distinct);
    cr_log_info("%s: %" PRIu64 " messages, %" PRIu64 " duplicates, %" PRIu64
                " distinct (shard, seq)",
                sink, h->messages, h->duplicates, distinct);
}

/*
 * Everything in TOPIC, read by kcat (-J: a JSON line a message, headers
 * ["shard","0","seq","12",...], partition, key, payload): each message's partition is its shard
 * header; take() checks the rest and counts it. Then holding_complete().
 */
static inline void check_kafka(void (*take)(struct holding *, uint64_t shard, uint64_t seq,
                                            json_t *record),
                               const uint64_t *heads, uint64_t expect)
{
    static struct holding h;
    char command[512];
    snprintf(command, sizeof command, "kcat -C -b %s -t %s -e -J -q 2>/dev/null", bootstrap, TOPIC);
    FILE *kcat = popen(command, "r");
    cr_assert(kcat != NULL);
    static char line[8192];
    while (fgets(line, sizeof line, kcat) != NULL) {
        json_error_t error;
        json_t *record = json_loads(line, 0, &error);
        cr_assert(record != NULL, "kcat printed %s", line);
        json_t *headers = json_object_get(record, "headers");
        uint64_t shard = UINT64_MAX, seq = 0;
        for (size_t i = 0; i + 1 < json_array_size(headers); i += 2) {
            const char *name = json_string_value(json_array_get(headers, i));
            const char *value = json_string_value(json_array_get(headers, i + 1));
            if (strcmp(name, "shard") == 0)
                shard = strtoull(value, NULL, 10);
            if (strcmp(name, "seq") == 0)
                seq = strtoull(value, NULL, 10);
        }
        cr_assert_eq(json_integer_value(json_object_get(record, "partition")), (json_int_t)shard);
        take(&h, shard, seq, record);
        json_decref(record);
    }
    cr_assert_eq(pclose(kcat), 0, "kcat failed");
    holding_complete(&h, heads, expect, "kafka");
}

/*
 * Everything JS_STREAM stored, through an ordered push consumer from its first message: take()
 * checks each message (its Rush-Shard and Rush-Seq given) and counts it. Then holding_complete(),
 * and no (shard, seq) stored twice.
 */
static inline void check_jetstream(void (*take)(struct holding *, uint64_t shard, uint64_t seq,
                                                natsMsg *msg),
                                   const uint64_t *heads, uint64_t expect)
{
    static struct holding h;
    jsStreamInfo *info = NULL;
    cr_assert_eq(js_GetStreamInfo(&info, js, JS_STREAM, NULL, NULL), NATS_OK);
    uint64_t stored = info->State.Msgs;
    jsStreamInfo_Destroy(info);
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = JS_STREAM;
    options.Ordered = true;
    natsSubscription *sub = NULL;
    cr_assert_eq(js_SubscribeSync(&sub, js, JS_SUBJECT ".>", NULL, &options, NULL), NATS_OK);
    for (uint64_t i = 0; i < stored; i++) {
        natsMsg *msg = NULL;
        cr_assert_eq(natsSubscription_NextMsg(&msg, sub, 5000), NATS_OK,
                     "message %" PRIu64 " of %" PRIu64 " did not come", i, stored);
        take(&h, header_u64(msg, "Rush-Shard"), header_u64(msg, "Rush-Seq"), msg);
        natsMsg_Destroy(msg);
    }
    natsSubscription_Destroy(sub);
    holding_complete(&h, heads, expect, "jetstream");
    cr_assert_eq(h.duplicates, 0, "JetStream stored a (shard, seq) twice");
}

#endif
