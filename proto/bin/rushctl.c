/*
 * rushctl — the operator's command line for a running rushd.
 *
 *   rushctl [--admin URL] [--json URL] [--token T | --token-file F] [--timeout MS] COMMAND ...
 *
 *   stats [--json]                 engine and server counters (a table, or rushd's raw JSON)
 *   sku ID | order ID | group ID   show one SKU, order or group
 *   reserve --sku ID --user U [--qty N] [--new-user] [--key K]
 *                                  reserve by hand (a random key unless K is given)
 *   group-open --sku ID --user U, join --group G --user U [--inviter I],
 *   join-any --sku ID --user U [--inviter I]  the group ops; --new-user: the gateway's flag
 *   register --sku ID --user U     a registration (预约) for a registration_required SKU
 *   list-groups SKU [--limit N]    the SKU's open groups, closest to full first (N <= 20)
 *   confirm ORDER | cancel ORDER   settle or release an order by hand
 *   pause SKU | resume SKU         stop or restart sales of a SKU (admin)
 *   adjust SKU DELTA               add (or with a negative DELTA remove) stock (admin)
 *   sku-put FILE.json              create or redefine a SKU (admin): FILE holds the SKU object
 *                                  {"id":5001,"name":...} or a whole {"op":"sku_put",...}
 *   snapshot                       every shard writes a snapshot now (admin); prints the shard
 *                                  count and how long it took
 *   cluster [--nats URLS] [--stream NAME]
 *                                  a cluster's nodes, leases (holder, revision, age), leaders
 *                                  and standby lag, read from JetStream (cluster_view.c)
 *   cluster handover SHARD NODE    the shard's leader (--admin) drains it and hands its lease
 *                                  to NODE (admin; audited)
 *   tail [--pub URL] [--replay URL] [--cursor FILE] [--from-now] [--out FILE] [--count N]
 *        [--idle-exit MS] [--skip-lost]
 *                                  follow the confirmed-order stream (see "tail" below)
 *
 * Why. An operator at midnight of Double-11 must pause a SKU or add stock with one command, see
 * at once whether it took effect, and script it: the answer is printed as "name: value" lines
 * and the exit status says what happened: 0 done (outcome ok), 1 refused (any other outcome, or
 * the server's refusal such as a wrong token), 2 usage error or rushd not reachable within the
 * timeout, 3 outcome unknown (rushd's log failed before the request was durable: it may or may
 * not have taken effect; the key used is printed on stderr, resend with it once rushd runs again).
 *
 * Where each command goes. Order-taking ops and queries go to the JSON orders endpoint (default
 * tcp://127.0.0.1:7101); stats, pause, resume, adjust and sku-put go to the admin endpoint
 * (default tcp://127.0.0.1:7102) with the token (--token, --token-file, or the environment
 * variable RUSH_ADMIN_TOKEN). Every message is one JSON object on a nanomsg REQ socket with
 * send and receive timeouts; requests are encoded with proto/codec/json.h, so the words are the
 * engine's own.
 *
 * tail. Prints every stream event (rush/stream.h) once, in order per shard, as one JSON object
 * per line: {"shard":0,"seq":1,"type":"order_confirmed","op":"confirm","order":"...",
 * "group":"...","sku":1001,"user":42,"qty":1,"price_fen":100,"time_ns":...}; "op" (absent when a
 * timer decided), "order", "group" and "user" appear when set; ids are decimal strings and other
 * 64-bit figures are numbers up to 2^53 - 1, as in the JSON form (proto/codec/json.h). It listens
 * to rushd's PUB endpoint (--pub, default tcp://127.0.0.1:7103) and fills gaps through the replay
 * endpoint (--replay, default tcp://127.0.0.1:7104; --timeout is the replay timeout) with
 * rush/subscriber.h.
 *   --cursor FILE   where it resumes: loaded at start (a missing file starts at seq 1 of every
 *                   shard, or at the current heads with --from-now; a damaged file is refused),
 *                   saved atomically after every batch once that batch is flushed (and fsynced
 *                   with --out), so a kill loses nothing. Without it: from seq 1 (or the heads
 *                   with --from-now), nothing saved.
 *   --out FILE      append the lines to FILE instead of stdout. With --cursor, the cursor records
 *                   FILE's size after each batch, and a restart first cuts FILE back to that size,
 *                   so a batch written but not recorded before a kill is written again once,
 *                   not twice. (On stdout a kill between the two may repeat one batch: dedup on
 *                   shard and seq.)
 *   --count N       stop after N events.     --idle-exit MS   stop after MS without an event.
 *   --skip-lost     skip events the publisher no longer serves (counted on stderr) instead of
 *                   stopping.
 * SIGINT and SIGTERM stop it cleanly after the batch in hand. Exit status: 0 stopped as asked
 * (count, idle, signal); 1 the stream cannot go on (events lost, a damaged cursor, a shard count
 * that is not the cursor's); 2 usage, a file that cannot be written, or the replay endpoint never
 * answered.
 *
 * Workload: one request per run; tail: one event stream, batches of up to TAIL_BATCH_MAX events.
 * Threads: one.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/number.h"
#include "codec/json.h"
#include "codec/stream_json.h"
#include "rush/assert.h"
#include "rush/client.h"
#include "rush/subscriber.h"
#include "rush/types.h"
#include "rushctl/views.h"

#define EXIT_DONE 0
#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_UNKNOWN 3

#define DEFAULT_ADMIN_URL "tcp://127.0.0.1:7102"
#define DEFAULT_JSON_URL "tcp://127.0.0.1:7101"
#define DEFAULT_TIMEOUT_MS 3000
#define TIMEOUT_MS_MAX 600000
#define TOKEN_BYTES_MAX 256
#define FILE_BYTES_MAX RUSH_JSON_MESSAGE_BYTES_MAX
#define FLATTEN_DEPTH_MAX 4
#define STATS_NAME_BYTES 128

struct options {
    const char *operator_name; /* --operator: who, in the audit of admin actions */
    const char *reason;        /* --reason: why (NULL: none given) */
    char login[64];
    const char *admin_url;
    const char *json_url;
    const char *token;
    char token_buf[TOKEN_BYTES_MAX];
    int timeout_ms;
};

struct command {
    const char *name;
    const char *usage;
    int (*run)(const struct options *options, int argc, char **argv);
};

static const struct command commands[];

static void usage(FILE *out)
{
    fprintf(out, "usage: rushctl [--admin URL] [--json URL] [--token T | --token-file F] "
                 "[--timeout MS]\n               [--operator NAME] [--reason TEXT] COMMAND ...\n"
                 "commands:\n");
    for (const struct command *c = commands; c->name != NULL; c++)
        fprintf(out, "  %s\n", c->usage);
    fprintf(out,
            "defaults:\n"
            "  --admin %s   --json %s   --timeout %d ms\n"
            "  --pub %s   --replay %s   --http %s\n"
            "  token: --token, else --token-file, else $RUSH_ADMIN_TOKEN (rushd writes a\n"
            "         random one to DATA_DIR/admin.token, data/admin.token by default)\n"
            "  --operator: the login name; --reason: none (both go into rushd's audit of\n"
            "  adjust, pause, resume, sku-put and snapshot: DATA_DIR/audit.log and the stream)\n",
            DEFAULT_ADMIN_URL, DEFAULT_JSON_URL, DEFAULT_TIMEOUT_MS, RUSHCTL_DEFAULT_PUB_URL,
            RUSHCTL_DEFAULT_REPLAY_URL, RUSHCTL_DEFAULT_HTTP);
}

static int fail_usage(const char *format, ...) __attribute__((format(printf, 1, 2)));
static int fail_usage(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "rushctl: ");
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
    return EXIT_USAGE;
}

/* ---- talking to rushd ---- */

/* One REQ/REP exchange. 0 and *reply (free it), or EXIT_USAGE with the reason on stderr. */
static int exchange(const struct options *options, const char *url, const char *text, char **reply)
{
    int sock = nn_socket(AF_SP, NN_REQ);
    if (sock < 0)
        return fail_usage("cannot make a socket: %s", nn_strerror(nn_errno()));
    int rc = EXIT_USAGE;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_SNDTIMEO, &options->timeout_ms, sizeof(int));
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &options->timeout_ms, sizeof(int));
    if (nn_connect(sock, url) < 0) {
        fprintf(stderr, "rushctl: bad address '%s': %s\n", url, nn_strerror(nn_errno()));
        goto out_close;
    }
    if (nn_send(sock, text, strlen(text), 0) < 0) {
        fprintf(stderr, "rushctl: cannot reach %s within %d ms: %s\n", url, options->timeout_ms,
                nn_strerror(nn_errno()));
        goto out_close;
    }
    void *buf = NULL;
    int len = nn_recv(sock, &buf, NN_MSG, 0);
    if (len < 0) {
        fprintf(stderr, "rushctl: no answer from %s within %d ms (is rushd running there?): %s\n",
                url, options->timeout_ms, nn_strerror(nn_errno()));
        goto out_close;
    }
    *reply = malloc((size_t)len + 1);
    RUSH_ASSERT(*reply != NULL);
    memcpy(*reply, buf, (size_t)len);
    (*reply)[len] = '\0';
    nn_freemsg(buf);
    rc = 0;
out_close:
    nn_close(sock);
    return rc;
}

static void print_value(const char *name, const json_t *value)
{
    if (json_is_string(value)) {
        printf("%s: %s\n", name, json_string_value(value));
        return;
    }
    char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s: %s\n", name, text != NULL ? text : "?");
    free(text);
}

/* Prints an answer as "name: value" lines, outcome first; the exit status it means. */
static int print_answer(const char *reply)
{
    json_error_t error;
    json_t *root = json_loads(reply, 0, &error);
    const json_t *outcome = json_object_get(root, "outcome");
    if (!json_is_string(outcome)) {
        fprintf(stderr, "rushctl: unexpected answer: %s\n", reply);
        json_decref(root);
        return EXIT_REFUSED;
    }
    print_value("outcome", outcome);
    const char *name;
    json_t *value;
    json_object_foreach(root, name, value)
    {
        if (strcmp(name, "outcome") != 0)
            print_value(name, value);
    }
    int rc = strcmp(json_string_value(outcome), "ok") == 0 ? EXIT_DONE : EXIT_REFUSED;
    if (strcmp(json_string_value(outcome), rush_outcome_name(RUSH_OUTCOME_UNKNOWN)) == 0) {
        fprintf(stderr, "rushctl: outcome unknown: rushd's log failed before this was durable; "
                        "resend with the same key to learn what happened\n");
        rc = EXIT_UNKNOWN;
    } else if (rc != EXIT_DONE) {
        const json_t *reason = json_object_get(root, "reason");
        fprintf(stderr, "rushctl: refused: %s%s%s\n", json_string_value(outcome),
                json_is_string(reason) ? ": " : "",
                json_is_string(reason) ? json_string_value(reason) : "");
    }
    json_decref(root);
    return rc;
}

/* Adds "token" to a JSON object text. A new string (free it), or NULL when text is not one. */
static char *with_token(const struct options *options, const char *text)
{
    json_error_t error;
    json_t *root = json_loads(text, 0, &error);
    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    if (options->token != NULL)
        json_object_set_new(root, "token", json_string(options->token));
    if (options->operator_name != NULL && options->operator_name[0] != '\0')
        json_object_set_new(root, "operator", json_string(options->operator_name));
    if (options->reason != NULL && options->reason[0] != '\0')
        json_object_set_new(root, "reason", json_string(options->reason));
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return out;
}

/* Sends text (to admin with the token, or to the JSON endpoint) and prints the answer. */
static int send_and_print(const struct options *options, bool admin, const char *text)
{
    char *message = admin ? with_token(options, text) : strdup(text);
    RUSH_ASSERT(message != NULL);
    char *reply = NULL;
    int rc = exchange(options, admin ? options->admin_url : options->json_url, message, &reply);
    free(message);
    if (rc != 0)
        return rc;
    rc = print_answer(reply);
    free(reply);
    return rc;
}

static int send_request(const struct options *options, bool admin, struct rush_request *request)
{
    static const rush_key zero;
    bool mutating = request->op != RUSH_OP_QUERY_ORDER && request->op != RUSH_OP_QUERY_GROUP &&
                    request->op != RUSH_OP_QUERY_SKU && request->op != RUSH_OP_LIST_GROUPS;
    if (mutating && memcmp(&request->key, &zero, sizeof zero) == 0 &&
        rush_client_key_random(&request->key) != 0)
        return fail_usage("cannot draw a random key: %s", strerror(errno));
    char text[1024];
    int len = rush_json_encode_request(request, text, sizeof text);
    RUSH_ASSERT(len > 0);
    int rc = send_and_print(options, admin, text);
    if (rc == EXIT_UNKNOWN) { /* the key to resend with, in the form --key takes literally */
        fprintf(stderr, "rushctl: key 0x");
        for (size_t i = 0; i < sizeof request->key.bytes; i++)
            fprintf(stderr, "%02x", request->key.bytes[i]);
        fprintf(stderr, "\n");
    }
    return rc;
}

/* ---- arguments ---- */

/* A positive decimal integer (base/number.h); EXIT_USAGE with the reason otherwise. */
static int parse_u64(const char *what, const char *text, uint64_t *out)
{
    char why[128];
    if (rush_number_parse_u64(text, strlen(text), 1, UINT64_MAX, out, why, sizeof(why)) != 0) {
        fprintf(stderr, "rushctl: %s must be a positive integer: %s\n", what, why);
        return EXIT_USAGE;
    }
    return 0;
}

/* A nonzero decimal integer, either sign. */
static int parse_i64(const char *what, const char *text, int64_t *out)
{
    char why[128] = "it is 0";
    int64_t value = 0;
    if (rush_number_parse_i64(text, strlen(text), INT64_MIN, INT64_MAX, &value, why, sizeof(why)) !=
            0 ||
        value == 0) {
        fprintf(stderr, "rushctl: %s must be a nonzero integer: %s\n", what, why);
        return EXIT_USAGE;
    }
    *out = value;
    return 0;
}

/* Exactly `wanted` operands after the command name. */
static int operands(int argc, char **argv, int wanted)
{
    if (argc - 1 == wanted)
        return 0;
    for (const struct command *c = commands; c->name != NULL; c++)
        if (strcmp(c->name, argv[0]) == 0)
            fprintf(stderr, "rushctl: %s: %s\nusage: rushctl %s\n", argv[0],
                    argc - 1 < wanted ? "missing argument" : "too many arguments", c->usage);
    return EXIT_USAGE;
}

/* ---- commands ---- */

static int run_query(const struct options *options, int argc, char **argv)
{
    int rc = operands(argc, argv, 1);
    struct rush_request request = {0};
    if (rc == 0)
        rc = parse_u64(argv[0], argv[1],
                       strcmp(argv[0], "sku") == 0 ? &request.sku_id : &request.target_id);
    if (rc != 0)
        return rc;
    request.op = strcmp(argv[0], "sku") == 0     ? RUSH_OP_QUERY_SKU
                 : strcmp(argv[0], "order") == 0 ? RUSH_OP_QUERY_ORDER
                                                 : RUSH_OP_QUERY_GROUP;
    return send_request(options, false, &request);
}

static int run_order_op(const struct options *options, int argc, char **argv)
{
    int rc = operands(argc, argv, 1);
    struct rush_request request = {0};
    if (rc == 0)
        rc = parse_u64("ORDER", argv[1], &request.target_id);
    if (rc != 0)
        return rc;
    request.op = strcmp(argv[0], "confirm") == 0 ? RUSH_OP_CONFIRM : RUSH_OP_CANCEL;
    return send_request(options, false, &request);
}

static int run_sku_op(const struct options *options, int argc, char **argv)
{
    bool adjust = strcmp(argv[0], "adjust") == 0;
    int rc = operands(argc, argv, adjust ? 2 : 1);
    struct rush_request request = {0};
    if (rc == 0)
        rc = parse_u64("SKU", argv[1], &request.sku_id);
    if (rc == 0 && adjust)
        rc = parse_i64("DELTA", argv[2], &request.amount);
    if (rc != 0)
        return rc;
    request.op = adjust                          ? RUSH_OP_ADJUST
                 : strcmp(argv[0], "pause") == 0 ? RUSH_OP_PAUSE
                                                 : RUSH_OP_RESUME;
    return send_request(options, true, &request);
}

/* The buyer's ops by command name: reserve, group-open, join, join-any, register. */
static uint8_t buyer_op(const char *name)
{
    return strcmp(name, "reserve") == 0      ? RUSH_OP_RESERVE
           : strcmp(name, "group-open") == 0 ? RUSH_OP_GROUP_OPEN
           : strcmp(name, "join") == 0       ? RUSH_OP_GROUP_JOIN
           : strcmp(name, "join-any") == 0   ? RUSH_OP_GROUP_JOIN_ANY
                                             : RUSH_OP_REGISTER;
}

/* What the op needs besides --user: --group for join, --sku for the others. */
static int buyer_check(const struct rush_request *request, const char *name, bool operands_left)
{
    bool join = request->op == RUSH_OP_GROUP_JOIN;
    bool joins = join || request->op == RUSH_OP_GROUP_JOIN_ANY;
    bool unit = request->op != RUSH_OP_REGISTER;
    if (operands_left || request->user_id == 0 ||
        (join ? request->target_id == 0 : request->sku_id == 0))
        return fail_usage("%s needs --user U and %s, and takes no operand", name,
                          join ? "--group G" : "--sku ID");
    if ((join && request->sku_id != 0) || (!join && request->target_id != 0))
        return fail_usage("%s takes %s", name, join ? "--group, not --sku" : "--sku, not --group");
    if (request->inviter_id != 0 && !joins)
        return fail_usage("--inviter is for join and join-any, not %s", name);
    if (request->flags != 0 && !unit)
        return fail_usage("--new-user is for the ops that buy, not %s", name);
    if (request->qty != 1 && request->op != RUSH_OP_RESERVE)
        return fail_usage("--qty is for reserve, not %s", name);
    return 0;
}

static int run_buyer(const struct options *options, int argc, char **argv)
{
    static const struct option long_options[] = {
        {"sku", required_argument, NULL, 's'},   {"user", required_argument, NULL, 'u'},
        {"qty", required_argument, NULL, 'q'},   {"key", required_argument, NULL, 'k'},
        {"group", required_argument, NULL, 'g'}, {"inviter", required_argument, NULL, 'i'},
        {"new-user", no_argument, NULL, 'n'},    {NULL, 0, NULL, 0}};
    struct rush_request request = {.op = buyer_op(argv[0])};
    uint64_t qty = 1;
    int rc = 0, option;
    optind = 1;
    while (rc == 0 && (option = getopt_long(argc, argv, "+", long_options, NULL)) != -1) {
        if (option == 's')
            rc = parse_u64("--sku", optarg, &request.sku_id);
        else if (option == 'u')
            rc = parse_u64("--user", optarg, &request.user_id);
        else if (option == 'q')
            rc = parse_u64("--qty", optarg, &qty);
        else if (option == 'g')
            rc = parse_u64("--group", optarg, &request.target_id);
        else if (option == 'i')
            rc = parse_u64("--inviter", optarg, &request.inviter_id);
        else if (option == 'n')
            request.flags = RUSH_REQUEST_NEW_USER;
        else if (option == 'k')
            request.key = rush_client_key(optarg);
        else
            rc = EXIT_USAGE;
    }
    if (rc == 0 && qty > RUSH_JSON_QTY_MAX)
        rc = fail_usage("--qty must be 1..%d", RUSH_JSON_QTY_MAX);
    request.qty = (uint32_t)qty;
    if (rc == 0)
        rc = buyer_check(&request, argv[0], optind != argc);
    if (rc != 0)
        return rc;
    if (request.op != RUSH_OP_RESERVE)
        request.qty = 0;
    return send_request(options, false, &request);
}

/* list-groups SKU [--limit N]: the SKU's "join this group" list, up to N (default 10). */
static int run_list_groups(const struct options *options, int argc, char **argv)
{
    static const struct option long_options[] = {{"limit", required_argument, NULL, 'l'},
                                                 {NULL, 0, NULL, 0}};
    struct rush_request request = {.op = RUSH_OP_LIST_GROUPS, .qty = 10};
    uint64_t limit = 10;
    int rc = 0, option;
    optind = 0; /* a fresh scan that lets the SKU come before or after --limit */
    while (rc == 0 && (option = getopt_long(argc, argv, "", long_options, NULL)) != -1)
        rc = option == 'l' ? parse_u64("--limit", optarg, &limit) : EXIT_USAGE;
    if (rc == 0 && (optind + 1 != argc || limit > RUSH_LIST_GROUPS_MAX))
        rc = fail_usage("usage: rushctl list-groups SKU [--limit 1..%d]", RUSH_LIST_GROUPS_MAX);
    if (rc == 0)
        rc = parse_u64("SKU", argv[optind], &request.sku_id);
    if (rc != 0)
        return rc;
    request.qty = (uint32_t)limit;
    return send_request(options, false, &request);
}

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        fprintf(stderr, "rushctl: cannot open %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    size_t len = fread(buf, 1, cap - 1, file);
    bool more = fgetc(file) != EOF;
    fclose(file);
    if (more) {
        fprintf(stderr, "rushctl: %s is over %zu bytes\n", path, cap - 1);
        return EXIT_USAGE;
    }
    buf[len] = '\0';
    return 0;
}

/* The sku_put message for a file holding a SKU object or a whole sku_put command. */
static char *sku_put_message(const char *path, const char *text)
{
    json_error_t error;
    json_t *root = json_loads(text, 0, &error);
    if (root == NULL) {
        fprintf(stderr, "rushctl: %s:%d: %s\n", path, error.line, error.text);
        return NULL;
    }
    if (json_object_get(root, "op") == NULL) {
        json_t *command = json_pack("{s:s, s:o}", "op", "sku_put", "sku", root);
        root = command;
    }
    char *message = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    struct rush_json_command decoded;
    char why[RUSH_JSON_WHY_BYTES];
    if (message != NULL &&
        rush_json_decode(message, strlen(message), &decoded, why, sizeof why) != 0) {
        fprintf(stderr, "rushctl: %s: %s\n", path, why);
        free(message);
        return NULL;
    }
    if (message != NULL && decoded.kind != RUSH_JSON_SKU_PUT) {
        fprintf(stderr, "rushctl: %s: not a sku_put command\n", path);
        free(message);
        return NULL;
    }
    return message;
}

static int run_sku_put(const struct options *options, int argc, char **argv)
{
    int rc = operands(argc, argv, 1);
    if (rc != 0)
        return rc;
    static char text[FILE_BYTES_MAX];
    rc = read_file(argv[1], text, sizeof text);
    if (rc != 0)
        return rc;
    char *message = sku_put_message(argv[1], text);
    if (message == NULL)
        return EXIT_USAGE;
    rc = send_and_print(options, true, message);
    free(message);
    return rc;
}

static int run_snapshot(const struct options *options, int argc, char **argv)
{
    int rc = operands(argc, argv, 0);
    return rc != 0 ? rc : send_and_print(options, true, "{\"op\":\"snapshot\"}");
}

/* Prints nested objects as "a.b  value" lines, depth-bounded. */
static void print_flat(const char *prefix, const json_t *object, int depth)
{
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)object, name, value)
    {
        char full[STATS_NAME_BYTES];
        int len = snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", name);
        if (len < 0 || (size_t)len >= sizeof full)
            continue; /* a name this long is not one of rushd's counters */
        if (json_is_object(value) && depth < FLATTEN_DEPTH_MAX) {
            print_flat(full, value, depth + 1);
        } else if (json_is_string(value)) {
            printf("%-40s %s\n", full, json_string_value(value));
        } else {
            char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(6));
            printf("%-40s %s\n", full, text != NULL ? text : "?");
            free(text);
        }
    }
}

static int run_stats(const struct options *options, int argc, char **argv)
{
    bool raw = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc > 2 || (argc == 2 && !raw))
        return fail_usage("stats: unknown argument '%s'\nusage: rushctl stats [--json]",
                          argv[argc - 1]);
    char *message = with_token(options, "{\"op\":\"stats\"}");
    char *reply = NULL;
    int rc = exchange(options, options->admin_url, message, &reply);
    free(message);
    if (rc != 0)
        return rc;
    json_error_t error;
    json_t *root = json_loads(reply, 0, &error);
    const json_t *outcome = json_object_get(root, "outcome");
    if (!json_is_string(outcome) || strcmp(json_string_value(outcome), "ok") != 0) {
        json_decref(root);
        rc = print_answer(reply);
        free(reply);
        return rc == EXIT_DONE ? EXIT_REFUSED : rc;
    }
    if (raw)
        printf("%s\n", reply);
    else
        print_flat("", root, 0);
    json_decref(root);
    free(reply);
    return EXIT_DONE;
}

/* ---- tail: the confirmed-order stream ---- */

#define DEFAULT_PUB_URL RUSHCTL_DEFAULT_PUB_URL
#define DEFAULT_REPLAY_URL RUSHCTL_DEFAULT_REPLAY_URL
#define TAIL_BATCH_MAX 4096
#define TAIL_SLICE_MS 100 /* poll slice: how soon a signal or the idle limit is seen */
#define TAIL_LINE_BYTES_MAX (RUSH_STREAM_JSON_BYTES_MAX + 2) /* the object, its newline */
#define EXIT_LOST 1
#define TAIL_OUTPUT_NONE UINT64_MAX /* output_bytes of a cursor saved while writing to stdout */

static volatile sig_atomic_t tail_stopping;

static void tail_on_signal(int signal_number)
{
    (void)signal_number;
    tail_stopping = 1;
}

struct tail {
    struct rush_subscriber_config config;
    struct rush_stream_json_audit audits[RUSH_SHARDS_MAX]; /* per shard */
    const char *cursor_path;
    const char *out_path;
    bool from_now;
    uint64_t count_max;    /* 0: no limit */
    uint64_t idle_exit_ms; /* 0: never */
    FILE *out;
    struct rush_stream_cursor cursor;
    bool cursor_found;
    struct rush_subscriber *sub;
    uint64_t written;
    bool unanswered; /* the last poll timed out and no event came since */
};

static int tail_parse(struct tail *tail, int argc, char **argv)
{
    static const struct option long_options[] = {{"pub", required_argument, NULL, 'p'},
                                                 {"replay", required_argument, NULL, 'r'},
                                                 {"cursor", required_argument, NULL, 'c'},
                                                 {"out", required_argument, NULL, 'o'},
                                                 {"count", required_argument, NULL, 'n'},
                                                 {"idle-exit", required_argument, NULL, 'i'},
                                                 {"from-now", no_argument, NULL, 'f'},
                                                 {"skip-lost", no_argument, NULL, 's'},
                                                 {NULL, 0, NULL, 0}};
    int rc = 0, option;
    optind = 1;
    while (rc == 0 && (option = getopt_long(argc, argv, "+", long_options, NULL)) != -1) {
        if (option == 'p')
            tail->config.pub_url = optarg;
        else if (option == 'r')
            tail->config.replay_url = optarg;
        else if (option == 'c')
            tail->cursor_path = optarg;
        else if (option == 'o')
            tail->out_path = optarg;
        else if (option == 'n')
            rc = parse_u64("--count", optarg, &tail->count_max);
        else if (option == 'i')
            rc = parse_u64("--idle-exit", optarg, &tail->idle_exit_ms);
        else if (option == 'f')
            tail->from_now = true;
        else if (option == 's')
            tail->config.skip_lost = true;
        else
            rc = EXIT_USAGE;
    }
    if (rc == 0 && optind != argc)
        rc = fail_usage("tail takes no operand ('%s')", argv[optind]);
    char why[RUSH_SUBSCRIBER_ERROR_BYTES];
    if (rc == 0 && rush_subscriber_config_check(&tail->config, why, sizeof why) != 0)
        rc = fail_usage("tail: %s", why);
    return rc;
}

/* Opens --out; with a saved cursor, cuts it back to the size that cursor recorded. */
static int tail_open_out(struct tail *tail)
{
    if (tail->out_path == NULL) {
        tail->out = stdout;
        return 0;
    }
    int fd = open(tail->out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "rushctl: cannot open %s: %s\n", tail->out_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return EXIT_USAGE;
    }
    uint64_t size = (uint64_t)st.st_size;
    /* a cursor saved while writing to stdout tracked no file: append */
    bool tracked = tail->cursor_found && tail->cursor.output_bytes != TAIL_OUTPUT_NONE;
    if (tracked && size < tail->cursor.output_bytes) {
        fprintf(stderr,
                "rushctl: %s has %" PRIu64 " bytes, fewer than the %" PRIu64
                " the cursor recorded: replaced or cut? Refusing to guess.\n",
                tail->out_path, size, tail->cursor.output_bytes);
        close(fd);
        return EXIT_LOST;
    }
    if (tracked && size > tail->cursor.output_bytes) {
        fprintf(stderr,
                "rushctl: %s: dropping %" PRIu64 " bytes written after the last saved "
                "cursor; they follow again\n",
                tail->out_path, size - tail->cursor.output_bytes);
        if (ftruncate(fd, (off_t)tail->cursor.output_bytes) != 0) {
            fprintf(stderr, "rushctl: cannot cut %s: %s\n", tail->out_path, strerror(errno));
            close(fd);
            return EXIT_USAGE;
        }
    }
    tail->out = fdopen(fd, "a");
    RUSH_ASSERT(tail->out != NULL);
    return 0;
}

/* One event as a JSON line (with its newline) into line[0 .. cap). Its length. */
static size_t tail_line(struct tail *tail, const struct rush_stream_event *event, char *line,
                        size_t cap)
{
    RUSH_ASSERT(cap > RUSH_STREAM_JSON_BYTES_MAX + 1);
    size_t len =
        rush_stream_event_json(&tail->audits[event->shard % RUSH_SHARDS_MAX], event, line, cap - 1);
    line[len++] = '\n';
    return len;
}

/*
 * Records in the cursor file the subscriber's cursor and how long the output file is now (a
 * restart cuts the file back to that). Without --cursor, nothing.
 */
static int tail_save_cursor(struct tail *tail)
{
    if (tail->cursor_path == NULL)
        return 0;
    struct stat st;
    uint64_t output_bytes = TAIL_OUTPUT_NONE;
    if (tail->out_path != NULL) {
        if (fstat(fileno(tail->out), &st) != 0) {
            fprintf(stderr, "rushctl: cannot stat %s: %s\n", tail->out_path, strerror(errno));
            return EXIT_USAGE;
        }
        output_bytes = (uint64_t)st.st_size;
    }
    rush_subscriber_get_cursor(tail->sub, &tail->cursor);
    tail->cursor.output_bytes = output_bytes;
    int rc = rush_stream_cursor_save(tail->cursor_path, &tail->cursor);
    if (rc != 0) {
        fprintf(stderr, "rushctl: cannot save the cursor %s: %s\n", tail->cursor_path,
                rush_strerror(rc));
        return EXIT_USAGE;
    }
    return EXIT_DONE;
}

/* Writes a batch, makes it durable, then records it in the cursor file. */
static int tail_write(struct tail *tail, const struct rush_stream_event *events, uint32_t count)
{
    char line[TAIL_LINE_BYTES_MAX];
    for (uint32_t i = 0; i < count; i++) {
        size_t len = tail_line(tail, &events[i], line, sizeof line);
        if (fwrite(line, 1, len, tail->out) != len)
            break;
    }
    if (fflush(tail->out) != 0 || ferror(tail->out) ||
        (tail->out_path != NULL && fsync(fileno(tail->out)) != 0)) {
        fprintf(stderr, "rushctl: cannot write %s: %s\n",
                tail->out_path != NULL ? tail->out_path : "stdout", strerror(errno));
        return EXIT_USAGE;
    }
    tail->written += count;
    return tail_save_cursor(tail);
}

/* What a failed poll means for tail: go on (0) or stop with an exit status. */
static int tail_poll_failed(struct tail *tail, int rc)
{
    fprintf(stderr, "rushctl: tail: %s: %s\n", rush_strerror(rc),
            rush_subscriber_last_error(tail->sub));
    if (rc == -ENODATA || rc == RUSH_ECONFIG)
        return EXIT_LOST;
    tail->unanswered = rc == RUSH_ETIMEDOUT;
    return 0;
}

/* Polls and writes until --count, --idle-exit, a signal, or an error that ends the stream. */
static int tail_follow(struct tail *tail)
{
    static struct rush_stream_event events[TAIL_BATCH_MAX];
    int64_t last_event_ms = rush_clock_monotonic_ms();
    while (!tail_stopping) { /* ends by count, idle time, signal or error */
        uint64_t left = tail->count_max == 0 ? TAIL_BATCH_MAX : tail->count_max - tail->written;
        if (left == 0)
            return EXIT_DONE;
        uint32_t max = left < TAIL_BATCH_MAX ? (uint32_t)left : TAIL_BATCH_MAX;
        int n = rush_subscriber_poll(tail->sub, events, max, TAIL_SLICE_MS);
        int rc = n < 0 ? tail_poll_failed(tail, n) : 0;
        if (rc == 0 && n > 0) {
            tail->unanswered = false;
            last_event_ms = rush_clock_monotonic_ms();
            rc = tail_write(tail, events, (uint32_t)n);
        }
        if (rc != 0)
            return rc;
        if (n <= 0 && tail->idle_exit_ms != 0 &&
            rush_clock_monotonic_ms() - last_event_ms >= (int64_t)tail->idle_exit_ms)
            break;
    }
    struct rush_subscriber_stats stats;
    rush_subscriber_stats(tail->sub, &stats);
    if (tail->unanswered || stats.replies == 0) {
        fprintf(stderr, "rushctl: tail: the replay endpoint %s never answered\n",
                tail->config.replay_url);
        return EXIT_USAGE;
    }
    return EXIT_DONE;
}

/* Loads --cursor (missing: fresh), opens --out and the subscriber, and follows the stream. */
static int tail_start(struct tail *tail, const struct options *options)
{
    char why[RUSH_SUBSCRIBER_ERROR_BYTES] = "";
    if (tail->cursor_path != NULL) {
        int rc = rush_stream_cursor_load(tail->cursor_path, &tail->cursor, why, sizeof why);
        if (rc < 0) {
            fprintf(stderr, "rushctl: cursor %s: %s\n", tail->cursor_path, why);
            return rc == RUSH_ECORRUPT ? EXIT_LOST : EXIT_USAGE;
        }
        tail->cursor_found = rc == 1;
    }
    int rc = tail_open_out(tail);
    if (rc != 0)
        return rc;
    tail->config.replay_timeout_ms = (uint32_t)options->timeout_ms;
    if (rush_subscriber_open(&tail->config, &tail->sub) != 0) {
        fprintf(stderr, "rushctl: tail: %s\n", rush_subscriber_last_error(NULL));
        return EXIT_USAGE;
    }
    if (tail->cursor_found && rush_subscriber_set_cursor(tail->sub, &tail->cursor) != 0) {
        fprintf(stderr, "rushctl: cursor %s: %s\n", tail->cursor_path,
                rush_subscriber_last_error(tail->sub));
        return EXIT_LOST;
    }
    if (!tail->cursor_found && tail->from_now &&
        rush_subscriber_seek_heads(tail->sub, options->timeout_ms) != 0) {
        fprintf(stderr, "rushctl: tail --from-now: %s\n", rush_subscriber_last_error(tail->sub));
        return EXIT_USAGE;
    }
    /* A first run records where it starts before writing anything, so that a kill before its
     * first saved batch still leaves a cursor to cut a torn output file back to. */
    if (!tail->cursor_found && (rc = tail_save_cursor(tail)) != EXIT_DONE)
        return rc;
    return tail_follow(tail);
}

static int run_tail(const struct options *options, int argc, char **argv)
{
    struct tail tail = {.out = NULL};
    rush_subscriber_config_default(&tail.config);
    tail.config.pub_url = DEFAULT_PUB_URL;
    tail.config.replay_url = DEFAULT_REPLAY_URL;
    int rc = tail_parse(&tail, argc, argv);
    if (rc != 0)
        return rc;
    struct sigaction action = {.sa_handler = tail_on_signal}; /* no SA_RESTART: wake the poll */
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    rc = tail_start(&tail, options);
    rush_subscriber_close(tail.sub);
    if (tail.out != NULL && tail.out != stdout)
        fclose(tail.out);
    else if (tail.out == stdout)
        fflush(stdout);
    return rc;
}

static int run_top(const struct options *options, int argc, char **argv)
{
    return rushctl_top(argc, argv, options->timeout_ms);
}

static int run_report(const struct options *options, int argc, char **argv)
{
    return rushctl_report(argc, argv, options->timeout_ms);
}

/* cluster [--nats URLS] [--stream NAME] | cluster handover SHARD NODE (admin) */
static int run_cluster(const struct options *options, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "handover") == 0) {
        uint64_t shard = 0;
        if (argc != 4)
            return fail_usage("cluster handover SHARD NODE");
        if (strcmp(argv[2], "0") != 0 && parse_u64("SHARD", argv[2], &shard) != 0)
            return EXIT_USAGE;
        json_t *command = json_pack("{sssIss}", "op", "cluster_handover", "shard",
                                    (json_int_t)shard, "node", argv[3]);
        char *text = command != NULL ? json_dumps(command, JSON_COMPACT) : NULL;
        json_decref(command);
        if (text == NULL)
            return fail_usage("cannot encode the hand-over");
        int rc = send_and_print(options, true, text);
        free(text);
        return rc;
    }
    return rushctl_cluster(argc, argv, options->timeout_ms);
}

static const struct command commands[] = {
    {"stats", "stats [--json]", run_stats},
    {"sku", "sku ID", run_query},
    {"order", "order ID", run_query},
    {"group", "group ID", run_query},
    {"reserve", "reserve --sku ID --user U [--qty N] [--new-user] [--key K]", run_buyer},
    {"group-open", "group-open --sku ID --user U [--new-user] [--key K]", run_buyer},
    {"join", "join --group G --user U [--inviter I] [--new-user] [--key K]", run_buyer},
    {"join-any", "join-any --sku ID --user U [--inviter I] [--new-user] [--key K]", run_buyer},
    {"register", "register --sku ID --user U [--key K]", run_buyer},
    {"list-groups", "list-groups SKU [--limit N]", run_list_groups},
    {"confirm", "confirm ORDER", run_order_op},
    {"cancel", "cancel ORDER", run_order_op},
    {"pause", "pause SKU", run_sku_op},
    {"resume", "resume SKU", run_sku_op},
    {"adjust", "adjust SKU DELTA", run_sku_op},
    {"sku-put", "sku-put FILE.json", run_sku_put},
    {"snapshot", "snapshot", run_snapshot},
    {"cluster",
     "cluster [--nats URLS] [--stream NAME] | cluster handover SHARD NODE\n"
     "                 leases, leaders and standby lag (read from JetStream); or move a\n"
     "                 shard's leadership to NODE (admin, on the shard's leader)",
     run_cluster},
    {"tail",
     "tail [--pub URL] [--replay URL] [--cursor FILE] [--from-now] [--out FILE] [--count N]\n"
     "       [--idle-exit MS] [--skip-lost]\n"
     "                 print the confirmed-order stream as JSON lines, resuming from FILE",
     run_tail},
    {"top",
     "top [--http HOST:PORT] [--once] [--interval MS]\n"
     "                 a live view of rushd's figures (its HTTP console), like top",
     run_top},
    {"report",
     "report [--pub URL] [--replay URL] [--json | --csv]\n"
     "                 the reconciliation: per SKU, what the confirmed-order stream "
     "carries",
     run_report},
    {NULL, NULL, NULL},
};

/* ---- global options ---- */

static int read_token_file(struct options *options, const char *path)
{
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        fprintf(stderr, "rushctl: cannot open token file %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    char *line = fgets(options->token_buf, sizeof options->token_buf, file);
    fclose(file);
    if (line == NULL)
        return fail_usage("token file %s is empty", path);
    options->token_buf[strcspn(options->token_buf, "\r\n")] = '\0';
    options->token = options->token_buf;
    return 0;
}

static int parse_options(int argc, char **argv, struct options *options)
{
    static const struct option long_options[] = {{"admin", required_argument, NULL, 'a'},
                                                 {"json", required_argument, NULL, 'j'},
                                                 {"token", required_argument, NULL, 't'},
                                                 {"token-file", required_argument, NULL, 'f'},
                                                 {"timeout", required_argument, NULL, 'w'},
                                                 {"operator", required_argument, NULL, 'u'},
                                                 {"reason", required_argument, NULL, 'r'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {NULL, 0, NULL, 0}};
    int option, rc = 0;
    uint64_t timeout_ms = 0;
    while (rc == 0 && (option = getopt_long(argc, argv, "+h", long_options, NULL)) != -1) {
        switch (option) {
        case 'a':
            options->admin_url = optarg;
            break;
        case 'j':
            options->json_url = optarg;
            break;
        case 't':
            options->token = optarg;
            break;
        case 'f':
            rc = read_token_file(options, optarg);
            break;
        case 'w':
            rc = parse_u64("--timeout", optarg, &timeout_ms);
            if (rc == 0 && timeout_ms > TIMEOUT_MS_MAX)
                rc = fail_usage("--timeout is at most %d ms", TIMEOUT_MS_MAX);
            options->timeout_ms = (int)timeout_ms;
            break;
        case 'u':
            options->operator_name = optarg;
            break;
        case 'r':
            options->reason = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(EXIT_DONE);
        default:
            rc = EXIT_USAGE;
        }
    }
    return rc;
}

int main(int argc, char **argv)
{
    struct options options = {.admin_url = DEFAULT_ADMIN_URL,
                              .json_url = DEFAULT_JSON_URL,
                              .token = getenv("RUSH_ADMIN_TOKEN"),
                              .timeout_ms = DEFAULT_TIMEOUT_MS};
    if (getlogin_r(options.login, sizeof options.login) != 0) {
        const char *user = getenv("USER");
        snprintf(options.login, sizeof options.login, "%s", user != NULL ? user : "");
    }
    options.operator_name = options.login;
    int rc = parse_options(argc, argv, &options);
    if (rc != 0) {
        usage(stderr);
        return rc;
    }
    if (optind >= argc) {
        fprintf(stderr, "rushctl: missing command\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    char **command_argv = argv + optind;
    int command_argc = argc - optind;
    for (const struct command *c = commands; c->name != NULL; c++)
        if (strcmp(c->name, command_argv[0]) == 0)
            return c->run(&options, command_argc, command_argv);
    fprintf(stderr, "rushctl: unknown command '%s'\n", command_argv[0]);
    usage(stderr);
    return EXIT_USAGE;
}
