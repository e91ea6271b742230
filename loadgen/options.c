/*
 * options.c — rush-loadgen's command line (see options.h): getopt_long over a table of long
 * options, each value parsed strictly (the whole text must be a number in range) by a leaf
 * function, so that "--batch 10x", "--rate -5" or "--buyers 1e99" are refused by name.
 *
 * Threads: none. getopt_long keeps global state; parse resets it (optind = 0) so that tests
 * may call rush_loadgen_options_parse() more than once.
 */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/number.h"
#include "base/why.h"
#include "rush/assert.h"
#include "rush/wire.h"

#define DEFAULT_URL "tcp://127.0.0.1:7100"
#define DEFAULT_JSON_URL "tcp://127.0.0.1:7101"
#define DEFAULT_ADMIN_URL "tcp://127.0.0.1:7102"
#define DEFAULT_PUB_URL "tcp://127.0.0.1:7103"
#define DEFAULT_REPLAY_URL "tcp://127.0.0.1:7104"

static const char *const scenario_names[RUSH_SCENARIO_COUNT_] = {
    [RUSH_SCENARIO_MIDNIGHT] = "midnight", [RUSH_SCENARIO_ZIPF] = "zipf",
    [RUSH_SCENARIO_GROUPS] = "groups",     [RUSH_SCENARIO_DUPLICATES] = "duplicates",
    [RUSH_SCENARIO_PAYMENTS] = "payments", [RUSH_SCENARIO_SOCIAL] = "social",
};

/* Per scenario: buyers and SKUs when the flags do not say. */
static const uint64_t buyers_default[RUSH_SCENARIO_COUNT_] = {1000000, 100000, 100000,
                                                              100000,  100000, 100000};
/* social: a fixed catalogue of RUSH_CATALOG_SOCIAL_SKUS (catalog.h). */
static const uint32_t skus_default[RUSH_SCENARIO_COUNT_] = {5, 1000, 5, 5, 5, 6};

const char *rush_loadgen_scenario_name(enum rush_loadgen_scenario scenario)
{
    return (unsigned)scenario < RUSH_SCENARIO_COUNT_ ? scenario_names[scenario] : "unknown";
}

const char *rush_loadgen_mode_name(enum rush_loadgen_mode mode)
{
    switch (mode) {
    case RUSH_MODE_CLOSED:
        return "closed";
    case RUSH_MODE_OPEN:
        return "open";
    }
    return "unknown";
}

const char *rush_loadgen_arrivals_name(enum rush_loadgen_arrivals arrivals)
{
    switch (arrivals) {
    case RUSH_ARRIVALS_FIXED:
        return "fixed";
    case RUSH_ARRIVALS_POISSON:
        return "poisson";
    }
    return "unknown";
}

void rush_loadgen_usage(FILE *out)
{
    fprintf(out,
            "usage: rush-loadgen [options]\n"
            "  --url URL               binary orders endpoint (default " DEFAULT_URL ")\n"
            "  --json                  send the load as JSON, one request per message, to\n"
            "                          --json-url (set-up queries stay on --url)\n"
            "  --json-url URL          JSON orders endpoint (default " DEFAULT_JSON_URL ")\n"
            "  --nodes URL,URL,...     a cluster's orders endpoints in its node order (binary,\n"
            "                          or JSON with --json): route by shard, follow redirects;\n"
            "                          --connections connections to each node\n"
            "  --admins URL,URL,...    each node's admin endpoint, in --nodes order: a fresh SKU\n"
            "                          is put on the leader of its shard\n"
            "  --pubs URL,URL,...      --verify: each node's publisher, in --nodes order\n"
            "  --replays URL,URL,...   --verify: each node's replay endpoint, in --nodes order:\n"
            "                          every node's stream followed and merged per (shard, seq)\n"
            "  --shards N              the engine's shard count, for routing (2)\n"
            "  --threads N             driver threads, 1..%u, at most --connections (default:\n"
            "                          the online CPUs, at most 4 and at most --connections)\n"
            "  --admin-url URL         admin endpoint (default " DEFAULT_ADMIN_URL ")\n"
            "  --admin-token-file PATH admin token file (default: $RUSH_ADMIN_TOKEN, else\n"
            "                          data/admin.token when it exists)\n"
            "  --admin-token TOKEN     the admin token itself\n"
            "  --verify                subscribe to the stream during the run and check it end to\n"
            "                          end afterwards (exit 4 on any violation)\n"
            "  --pub URL               --verify: publisher endpoint (default " DEFAULT_PUB_URL ")\n"
            "  --replay URL            --verify: replay endpoint (default " DEFAULT_REPLAY_URL ")\n"
            "  --scenario NAME         midnight|zipf|groups|duplicates|payments|social\n"
            "                          (midnight)\n"
            "  --mode closed|open      closed: --inflight messages outstanding per connection;\n"
            "                          open: --rate requests/s whatever the server does\n"
            "  --rate N                open mode: requests per second\n"
            "  --arrivals fixed|poisson  open mode: message spacing (fixed)\n"
            "  --connections N         nanomsg connections, 1..%u (4)\n"
            "  --batch N               requests per wire message, 1..%u (1 = unbatched; 16)\n"
            "  --inflight N            messages outstanding per connection, 1..%u (8)\n"
            "  --buyers N              distinct buyers (midnight 1000000, others 100000)\n"
            "  --skus N                SKUs the scenario uses (zipf 1000, others 5)\n"
            "  --stock N               stock per fresh SKU (1000)\n"
            "  --duration SECONDS      stop sending after this long (default: no cap)\n"
            "  --report FILE.json      also write the report as JSON\n"
            "  --seed N                random seed (1)\n"
            "  --quiet                 no progress line on stderr\n"
            "  --timeout-ms N          give up a message unanswered this long (10000)\n"
            "  --zipf-s X              zipf: skew exponent, 0..10 (1.0)\n"
            "  --duplicate-rate X      duplicates: share of answered requests resent (0.2)\n"
            "  --confirm-rate X        payments: share of reservations confirmed (0.8)\n"
            "  --pay-ttl-ms N          payments: pay TTL of the fresh SKUs (2000)\n"
            "  --group-size N          groups: seats per group, 2..%d (3)\n"
            "  --campaign-skus         use the built-in double11 campaign's SKUs, put none\n"
            "  --sku-base ID           first fresh SKU id (default: chosen from the clock)\n"
            "exit status: 0 the run finished and was reported; 1 nothing was answered or the\n"
            "report could not be written; 2 usage error; 3 rushd unreachable or set-up refused;\n"
            "4 --verify found a violation\n",
            RUSH_LOADGEN_THREADS_MAX, RUSH_LOADGEN_CONNECTIONS_MAX, RUSH_WIRE_REQUESTS_MAX,
            RUSH_LOADGEN_INFLIGHT_MAX, RUSH_GROUP_SIZE_MAX);
}

void rush_loadgen_options_default(struct rush_loadgen_options *options)
{
    RUSH_ASSERT(options != NULL);
    *options = (struct rush_loadgen_options){
        .scenario = RUSH_SCENARIO_MIDNIGHT,
        .mode = RUSH_MODE_CLOSED,
        .arrivals = RUSH_ARRIVALS_FIXED,
        .connections = 4,
        .batch = 16,
        .inflight = 8,
        .stock = 1000,
        .seed = 1,
        .timeout_ms = 10000,
        .zipf_s = 1.0,
        .duplicate_rate = 0.2,
        .confirm_rate = 0.8,
        .pay_ttl_ms = 2000,
        .group_size = 3,
        .shards = 2,
    };
    snprintf(options->url, sizeof(options->url), "%s", DEFAULT_URL);
    snprintf(options->json_url, sizeof(options->json_url), "%s", DEFAULT_JSON_URL);
    snprintf(options->admin_url, sizeof(options->admin_url), "%s", DEFAULT_ADMIN_URL);
    snprintf(options->pub_url, sizeof(options->pub_url), "%s", DEFAULT_PUB_URL);
    snprintf(options->replay_url, sizeof(options->replay_url), "%s", DEFAULT_REPLAY_URL);
}

/* Option problems are -EINVAL with a reason: the one rush__refuse (base/why.h). */
#define refuse(why, why_size, ...) rush__refuse(-EINVAL, why, why_size, __VA_ARGS__)

/* The whole of text as a decimal integer in [min, max] (base/number.h). */
static int parse_u64(const char *name, const char *text, uint64_t min, uint64_t max, uint64_t *out,
                     char *why, size_t why_size)
{
    char reason[128];
    if (rush_number_parse_u64(text, strlen(text), min, max, out, reason, sizeof(reason)) != 0)
        return refuse(why, why_size, "%s: %s", name, reason);
    return 0;
}

static int parse_u32(const char *name, const char *text, uint32_t min, uint32_t max, uint32_t *out,
                     char *why, size_t why_size)
{
    uint64_t value = 0;
    int rc = parse_u64(name, text, min, max, &value, why, why_size);
    if (rc == 0)
        *out = (uint32_t)value;
    return rc;
}

/* The whole of text as a finite decimal number in [min, max]. */
static int parse_double(const char *name, const char *text, double min, double max, double *out,
                        char *why, size_t why_size)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    bool digits = (text[0] >= '0' && text[0] <= '9') || text[0] == '.';
    if (!digits || errno != 0 || *end != '\0' || !isfinite(value) || value < min || value > max)
        return refuse(why, why_size, "%s '%.40s' is not a number in %g..%g", name, text, min, max);
    *out = value;
    return 0;
}

static int parse_url(const char *name, const char *text, char *out, char *why, size_t why_size)
{
    size_t len = strlen(text);
    if (len == 0 || len >= RUSH_LOADGEN_URL_BYTES_MAX || strstr(text, "://") == NULL)
        return refuse(why, why_size, "%s '%.60s' is not a nanomsg address like tcp://HOST:PORT",
                      name, text);
    memcpy(out, text, len + 1);
    return 0;
}

/* A list URL1,URL2,...: each a nanomsg address, 1..RUSH_LOADGEN_NODES_MAX of them (--nodes,
 * --admins, --pubs, --replays). */
static int parse_list(const char *name, const char *text, char (*urls)[RUSH_LOADGEN_URL_BYTES_MAX],
                      uint32_t *count, char *why, size_t why_size)
{
    *count = 0;
    const char *at = text;
    for (;;) {
        const char *comma = strchr(at, ',');
        size_t len = comma != NULL ? (size_t)(comma - at) : strlen(at);
        if (*count == RUSH_LOADGEN_NODES_MAX)
            return refuse(why, why_size, "%s names more than %u nodes", name,
                          RUSH_LOADGEN_NODES_MAX);
        char url[RUSH_LOADGEN_URL_BYTES_MAX];
        if (len >= sizeof(url))
            return refuse(why, why_size, "%s: an address of %zu bytes is too long", name, len);
        memcpy(url, at, len);
        url[len] = '\0';
        int rc = parse_url(name, url, urls[*count], why, why_size);
        if (rc != 0)
            return rc;
        (*count)++;
        if (comma == NULL)
            return 0;
        at = comma + 1;
    }
}

/* An index into names[count] for text, or -EINVAL naming the choices. */
static int parse_name(const char *name, const char *text, const char *const *names, int count,
                      int *out, char *why, size_t why_size)
{
    for (int i = 0; i < count; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    char choices[128] = "";
    size_t used = 0;
    for (int i = 0; i < count && used < sizeof(choices); i++)
        used += (size_t)snprintf(choices + used, sizeof(choices) - used, "%s%s", i ? "|" : "",
                                 names[i]);
    return refuse(why, why_size, "%s '%.40s' is not one of %s", name, text, choices);
}

int rush_loadgen_options_read_token(struct rush_loadgen_options *options, const char *path,
                                    char *why, size_t why_size)
{
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        int rc = -errno;
        snprintf(why, why_size, "cannot open admin token file %s: %s", path, strerror(errno));
        return rc;
    }
    char *line = fgets(options->token, sizeof(options->token), file);
    fclose(file);
    options->token[line == NULL ? 0 : strcspn(options->token, "\r\n")] = '\0';
    if (options->token[0] == '\0')
        return refuse(why, why_size, "admin token file %s is empty", path);
    return 0;
}

enum option_id {
    O_URL = 256,
    O_VERIFY,
    O_PUB_URL,
    O_REPLAY_URL,
    O_ADMIN_URL,
    O_TOKEN_FILE,
    O_TOKEN,
    O_SCENARIO,
    O_MODE,
    O_RATE,
    O_ARRIVALS,
    O_CONNECTIONS,
    O_BATCH,
    O_INFLIGHT,
    O_BUYERS,
    O_SKUS,
    O_STOCK,
    O_DURATION,
    O_REPORT,
    O_SEED,
    O_QUIET,
    O_TIMEOUT,
    O_ZIPF_S,
    O_DUPLICATE_RATE,
    O_CONFIRM_RATE,
    O_PAY_TTL,
    O_GROUP_SIZE,
    O_CAMPAIGN_SKUS,
    O_SKU_BASE,
    O_JSON,
    O_JSON_URL,
    O_NODES,
    O_ADMINS,
    O_PUBS,
    O_REPLAYS,
    O_SHARDS,
    O_THREADS,
    O_HELP,
};

static const struct option long_options[] = {
    {"url", required_argument, NULL, O_URL},
    {"verify", no_argument, NULL, O_VERIFY},
    {"pub", required_argument, NULL, O_PUB_URL},
    {"replay", required_argument, NULL, O_REPLAY_URL},
    {"admin-url", required_argument, NULL, O_ADMIN_URL},
    {"admin-token-file", required_argument, NULL, O_TOKEN_FILE},
    {"admin-token", required_argument, NULL, O_TOKEN},
    {"scenario", required_argument, NULL, O_SCENARIO},
    {"mode", required_argument, NULL, O_MODE},
    {"rate", required_argument, NULL, O_RATE},
    {"arrivals", required_argument, NULL, O_ARRIVALS},
    {"connections", required_argument, NULL, O_CONNECTIONS},
    {"batch", required_argument, NULL, O_BATCH},
    {"inflight", required_argument, NULL, O_INFLIGHT},
    {"buyers", required_argument, NULL, O_BUYERS},
    {"skus", required_argument, NULL, O_SKUS},
    {"stock", required_argument, NULL, O_STOCK},
    {"duration", required_argument, NULL, O_DURATION},
    {"report", required_argument, NULL, O_REPORT},
    {"seed", required_argument, NULL, O_SEED},
    {"quiet", no_argument, NULL, O_QUIET},
    {"timeout-ms", required_argument, NULL, O_TIMEOUT},
    {"zipf-s", required_argument, NULL, O_ZIPF_S},
    {"duplicate-rate", required_argument, NULL, O_DUPLICATE_RATE},
    {"confirm-rate", required_argument, NULL, O_CONFIRM_RATE},
    {"pay-ttl-ms", required_argument, NULL, O_PAY_TTL},
    {"group-size", required_argument, NULL, O_GROUP_SIZE},
    {"campaign-skus", no_argument, NULL, O_CAMPAIGN_SKUS},
    {"sku-base", required_argument, NULL, O_SKU_BASE},
    {"json", no_argument, NULL, O_JSON},
    {"json-url", required_argument, NULL, O_JSON_URL},
    {"nodes", required_argument, NULL, O_NODES},
    {"admins", required_argument, NULL, O_ADMINS},
    {"pubs", required_argument, NULL, O_PUBS},
    {"replays", required_argument, NULL, O_REPLAYS},
    {"shards", required_argument, NULL, O_SHARDS},
    {"threads", required_argument, NULL, O_THREADS},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* Options that pick among names or addresses. 0, or -EINVAL; 1 when the id is not one of them. */
static int apply_choice(struct rush_loadgen_options *o, int id, const char *arg, char *why,
                        size_t why_size)
{
    static const char *const modes[] = {"closed", "open"};
    static const char *const arrivals[] = {"fixed", "poisson"};
    int index = 0, rc = 0;
    switch (id) {
    case O_URL:
        return parse_url("--url", arg, o->url, why, why_size);
    case O_JSON_URL:
        return parse_url("--json-url", arg, o->json_url, why, why_size);
    case O_NODES:
        return parse_list("--nodes", arg, o->nodes, &o->node_count, why, why_size);
    case O_ADMINS:
        return parse_list("--admins", arg, o->admins, &o->admin_count, why, why_size);
    case O_PUBS:
        return parse_list("--pubs", arg, o->pubs, &o->pub_count, why, why_size);
    case O_REPLAYS:
        return parse_list("--replays", arg, o->replays, &o->replay_count, why, why_size);
    case O_PUB_URL:
        return parse_url("--pub", arg, o->pub_url, why, why_size);
    case O_REPLAY_URL:
        return parse_url("--replay", arg, o->replay_url, why, why_size);
    case O_ADMIN_URL:
        return parse_url("--admin-url", arg, o->admin_url, why, why_size);
    case O_TOKEN_FILE:
        o->token_file = arg;
        return rush_loadgen_options_read_token(o, arg, why, why_size) < 0 ? -EINVAL : 0;
    case O_TOKEN:
        if (arg[0] == '\0' || strlen(arg) >= sizeof(o->token))
            return refuse(why, why_size, "--admin-token must be 1..%zu bytes",
                          sizeof(o->token) - 1);
        snprintf(o->token, sizeof(o->token), "%s", arg);
        return 0;
    case O_SCENARIO:
        rc = parse_name("--scenario", arg, scenario_names, RUSH_SCENARIO_COUNT_, &index, why,
                        why_size);
        o->scenario = (enum rush_loadgen_scenario)index;
        return rc;
    case O_MODE:
        rc = parse_name("--mode", arg, modes, 2, &index, why, why_size);
        o->mode = (enum rush_loadgen_mode)index;
        return rc;
    case O_ARRIVALS:
        rc = parse_name("--arrivals", arg, arrivals, 2, &index, why, why_size);
        o->arrivals = (enum rush_loadgen_arrivals)index;
        return rc;
    case O_REPORT:
        if (arg[0] == '\0')
            return refuse(why, why_size, "--report needs a file name");
        o->report_path = arg;
        return 0;
    }
    return 1;
}

/* Options that take a number. 0, or -EINVAL; 1 when the id is not one of them. */
static int apply_number(struct rush_loadgen_options *o, int id, const char *arg, char *why,
                        size_t why_size)
{
    uint64_t stock = 0;
    int rc = 0;
    switch (id) {
    case O_RATE:
        return parse_double("--rate", arg, 1.0, RUSH_LOADGEN_RATE_MAX, &o->rate_per_s, why,
                            why_size);
    case O_CONNECTIONS:
        return parse_u32("--connections", arg, 1, RUSH_LOADGEN_CONNECTIONS_MAX, &o->connections,
                         why, why_size);
    case O_BATCH:
        o->batch_given = true;
        return parse_u32("--batch", arg, 1, RUSH_WIRE_REQUESTS_MAX, &o->batch, why, why_size);
    case O_SHARDS:
        return parse_u32("--shards", arg, 1, RUSH_SHARDS_MAX, &o->shards, why, why_size);
    case O_THREADS:
        return parse_u32("--threads", arg, 1, RUSH_LOADGEN_THREADS_MAX, &o->threads, why, why_size);
    case O_INFLIGHT:
        return parse_u32("--inflight", arg, 1, RUSH_LOADGEN_INFLIGHT_MAX, &o->inflight, why,
                         why_size);
    case O_BUYERS:
        return parse_u64("--buyers", arg, 1, RUSH_LOADGEN_BUYERS_MAX, &o->buyers, why, why_size);
    case O_SKUS:
        return parse_u32("--skus", arg, 1, RUSH_LOADGEN_SKUS_MAX, &o->skus, why, why_size);
    case O_STOCK:
        rc = parse_u64("--stock", arg, 0, RUSH_LOADGEN_STOCK_MAX, &stock, why, why_size);
        o->stock = (int64_t)stock;
        return rc;
    case O_DURATION:
        return parse_double("--duration", arg, 0.001, RUSH_LOADGEN_DURATION_S_MAX, &o->duration_s,
                            why, why_size);
    case O_SEED:
        return parse_u64("--seed", arg, 0, UINT64_MAX, &o->seed, why, why_size);
    case O_TIMEOUT:
        return parse_u32("--timeout-ms", arg, 1, RUSH_LOADGEN_TIMEOUT_MS_MAX, &o->timeout_ms, why,
                         why_size);
    case O_ZIPF_S:
        return parse_double("--zipf-s", arg, 0.0, RUSH_LOADGEN_ZIPF_S_MAX, &o->zipf_s, why,
                            why_size);
    case O_DUPLICATE_RATE:
        return parse_double("--duplicate-rate", arg, 0.0, 1.0, &o->duplicate_rate, why, why_size);
    case O_CONFIRM_RATE:
        return parse_double("--confirm-rate", arg, 0.0, 1.0, &o->confirm_rate, why, why_size);
    case O_PAY_TTL:
        return parse_u32("--pay-ttl-ms", arg, 1, RUSH_LOADGEN_PAY_TTL_MS_MAX, &o->pay_ttl_ms, why,
                         why_size);
    case O_GROUP_SIZE:
        return parse_u32("--group-size", arg, 2, RUSH_GROUP_SIZE_MAX, &o->group_size, why,
                         why_size);
    case O_SKU_BASE:
        return parse_u64("--sku-base", arg, 1, RUSH_LOADGEN_SKU_BASE_MAX, &o->sku_base, why,
                         why_size);
    }
    return 1;
}

int rush_loadgen_options_parse(struct rush_loadgen_options *options, int argc, char **argv,
                               char *why, size_t why_size)
{
    RUSH_ASSERT(options != NULL && argv != NULL && why != NULL);
    optind = 0; /* glibc: a full re-initialisation, so parse may run more than once */
    opterr = 0;
    int id;
    while ((id = getopt_long(argc, argv, ":", long_options, NULL)) != -1) {
        if (id == O_HELP) {
            rush_loadgen_usage(stdout);
            return 1;
        }
        if (id == O_QUIET || id == O_VERIFY) {
            *(id == O_QUIET ? &options->quiet : &options->verify) = true;
            continue;
        }
        if (id == O_CAMPAIGN_SKUS || id == O_JSON) {
            *(id == O_JSON ? &options->json : &options->campaign_skus) = true;
            continue;
        }
        if (id == ':')
            return refuse(why, why_size, "%s needs a value", argv[optind - 1]);
        if (id == '?')
            return refuse(why, why_size, "unknown option '%.60s'", argv[optind - 1]);
        int rc = apply_choice(options, id, optarg, why, why_size);
        if (rc == 1)
            rc = apply_number(options, id, optarg, why, why_size);
        RUSH_ASSERT(rc != 1); /* every table entry is handled by one of the two */
        if (rc < 0)
            return rc;
    }
    if (optind < argc)
        return refuse(why, why_size, "unexpected argument '%.60s'", argv[optind]);
    return 0;
}

/* No token given: $RUSH_ADMIN_TOKEN, else data/admin.token (where a default rushd writes it). */
static void find_token(struct rush_loadgen_options *options)
{
    if (options->token[0] != '\0')
        return;
    const char *env = getenv("RUSH_ADMIN_TOKEN");
    if (env != NULL && env[0] != '\0' && strlen(env) < sizeof(options->token)) {
        snprintf(options->token, sizeof(options->token), "%s", env);
        return;
    }
    char unused[RUSH_LOADGEN_WHY_BYTES];
    if (rush_loadgen_options_read_token(options, "data/admin.token", unused, sizeof(unused)) < 0)
        options->token[0] = '\0';
}

/* --admins, --pubs, --replays: one entry per node of --nodes; the stream lists go together. */
static int finish_node_lists(const struct rush_loadgen_options *o, char *why, size_t why_size)
{
    const char *names[3] = {"--admins", "--pubs", "--replays"};
    uint32_t counts[3] = {o->admin_count, o->pub_count, o->replay_count};
    for (int i = 0; i < 3; i++)
        if (counts[i] != 0 && counts[i] != o->node_count)
            return refuse(why, why_size, "%s names %u nodes, --nodes %u: give one per node",
                          names[i], counts[i], o->node_count);
    if ((o->pub_count == 0) != (o->replay_count == 0))
        return refuse(why, why_size, "--pubs and --replays go together (one of each per node)");
    return 0;
}

/*
 * --threads: given, at most --connections; by default the online CPUs, at most
 * RUSH_LOADGEN_THREADS_DEFAULT_MAX (past that nanomsg's one I/O thread per process is the limit,
 * and a load generator beside the server on a small box must leave it cores), at most
 * --connections. --json: one request per message.
 */
static int finish_transport(struct rush_loadgen_options *options, char *why, size_t why_size)
{
    if (options->threads > options->connections)
        return refuse(why, why_size,
                      "--threads %u is more than --connections %u: a thread owns "
                      "whole connections",
                      options->threads, options->connections);
    if (options->threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        uint32_t threads = cpus < 1 ? 1 : (uint32_t)cpus;
        if (threads > RUSH_LOADGEN_THREADS_DEFAULT_MAX)
            threads = RUSH_LOADGEN_THREADS_DEFAULT_MAX;
        options->threads = threads < options->connections ? threads : options->connections;
    }
    if (options->json && options->batch_given && options->batch != 1)
        return refuse(why, why_size,
                      "--json sends one request per message: --batch %u is not 1 "
                      "(the JSON endpoint takes one object per message)",
                      options->batch);
    if (options->json)
        options->batch = 1;
    if ((uint64_t)options->connections * (options->node_count > 0 ? options->node_count : 1) >
        RUSH_LOADGEN_CONNECTIONS_MAX)
        return refuse(why, why_size,
                      "--connections %u to each of %u nodes is more than %u "
                      "connections",
                      options->connections, options->node_count, RUSH_LOADGEN_CONNECTIONS_MAX);
    return finish_node_lists(options, why, why_size);
}

int rush_loadgen_options_finish(struct rush_loadgen_options *options, char *why, size_t why_size)
{
    RUSH_ASSERT((unsigned)options->scenario < RUSH_SCENARIO_COUNT_);
    if (options->mode == RUSH_MODE_OPEN && options->rate_per_s <= 0)
        return refuse(why, why_size, "--mode open needs --rate N (requests per second)");
    if (options->mode == RUSH_MODE_CLOSED && options->rate_per_s > 0)
        return refuse(why, why_size, "--rate is for --mode open; closed mode has no rate");
    if (options->buyers == 0)
        options->buyers = buyers_default[options->scenario];
    if (options->skus == 0 || options->scenario == RUSH_SCENARIO_SOCIAL)
        options->skus = skus_default[options->scenario];
    if (options->scenario == RUSH_SCENARIO_SOCIAL && options->campaign_skus)
        return refuse(why, why_size, "--scenario social puts its own SKUs: drop --campaign-skus");
    if (options->scenario == RUSH_SCENARIO_GROUPS && options->stock > 0 &&
        options->stock < options->group_size)
        return refuse(why, why_size, "--stock %lld is below --group-size %u: no group could fill",
                      (long long)options->stock, options->group_size);
    if (options->sku_base != 0 && options->sku_base + options->skus > RUSH_LOADGEN_SKU_BASE_MAX)
        return refuse(why, why_size, "--sku-base %llu leaves no room for %u SKUs",
                      (unsigned long long)options->sku_base, options->skus);
    if (options->campaign_skus && options->sku_base != 0)
        return refuse(why, why_size, "--sku-base is for fresh SKUs, not --campaign-skus");
    int rc = finish_transport(options, why, why_size);
    if (rc != 0)
        return rc;
    if (!options->campaign_skus)
        find_token(options);
    return 0;
}
