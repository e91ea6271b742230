/*
 * options.h — rush-loadgen's command line: what a run is asked to do, parsed and range-checked.
 *
 * What and why. Benchmark scripts call rush-loadgen with a fixed set of long options (the names
 * below are a contract: keep them). Every value is checked here, once, against a named limit, so
 * the rest of the load generator can size its tables from the options and never meet a value it
 * did not expect. A bad flag is refused with a sentence naming it ("--batch 0 is out of range
 * 1..16383"), never silently clamped.
 *
 * Defaults that depend on the scenario (buyers, SKUs) are filled in after parsing by
 * rush_loadgen_options_finish(), so "--skus" given explicitly always wins.
 *
 * Threads: none; no state.
 */
#ifndef RUSH_LOADGEN_OPTIONS_H
#define RUSH_LOADGEN_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rush/types.h"

#define RUSH_LOADGEN_URL_BYTES_MAX 256
#define RUSH_LOADGEN_TOKEN_BYTES_MAX 256
#define RUSH_LOADGEN_WHY_BYTES 300

/* Limits on the options; each sizes a table the run allocates at start-up. */
#define RUSH_LOADGEN_CONNECTIONS_MAX 256u
#define RUSH_LOADGEN_INFLIGHT_MAX 1024u        /* messages outstanding per connection */
#define RUSH_LOADGEN_BUYERS_MAX 16000000u      /* ledger: 2 entries per buyer at most */
#define RUSH_LOADGEN_SKUS_MAX 100000u          /* the engine's SKU tables are smaller anyway */
#define RUSH_LOADGEN_STOCK_MAX 1000000000000LL /* RUSH_STOCK_MAX of the campaign */
#define RUSH_LOADGEN_RATE_MAX 100000000.0      /* requests per second */
#define RUSH_LOADGEN_DURATION_S_MAX 86400.0    /* one day */
#define RUSH_LOADGEN_TIMEOUT_MS_MAX 600000u    /* per message */
#define RUSH_LOADGEN_ZIPF_S_MAX 10.0
#define RUSH_LOADGEN_PAY_TTL_MS_MAX 604800000u /* 168 h, the campaign's limit */
#define RUSH_LOADGEN_SKU_BASE_MAX ((UINT64_C(1) << 52) - 1)
#define RUSH_LOADGEN_THREADS_MAX 64u /* driver threads; each owns connections / threads of them */
#define RUSH_LOADGEN_NODES_MAX 16u   /* --nodes: orders endpoints of a cluster */
#define RUSH_LOADGEN_THREADS_DEFAULT_MAX                                                           \
    4u /* the default --threads is the online CPUs, at most this */

enum rush_loadgen_scenario {
    RUSH_SCENARIO_MIDNIGHT = 0,   /* a crowd of distinct buyers on a few hot SKUs at t0 */
    RUSH_SCENARIO_ZIPF = 1,       /* Zipf-skewed popularity over many SKUs */
    RUSH_SCENARIO_GROUPS = 2,     /* group_open, group_join, group_join_any */
    RUSH_SCENARIO_DUPLICATES = 3, /* some requests resent with the same key */
    RUSH_SCENARIO_PAYMENTS = 4,   /* reserve, then confirm or abandon */
    RUSH_SCENARIO_SOCIAL = 5,     /* solo and group buyers, invitations, new users, an activity */
    RUSH_SCENARIO_COUNT_ = 6,
};

enum rush_loadgen_mode {
    RUSH_MODE_CLOSED = 0, /* N messages outstanding per connection; the next when one returns */
    RUSH_MODE_OPEN = 1,   /* messages on a schedule, whatever the server does */
};

enum rush_loadgen_arrivals {
    RUSH_ARRIVALS_FIXED = 0,   /* evenly spaced */
    RUSH_ARRIVALS_POISSON = 1, /* exponential gaps */
};

struct rush_loadgen_options {
    char url[RUSH_LOADGEN_URL_BYTES_MAX];      /* binary orders endpoint */
    char json_url[RUSH_LOADGEN_URL_BYTES_MAX]; /* --json: the JSON orders endpoint */
    bool json;                                 /* drive the JSON endpoint, one request each */
    /* --nodes: the cluster's orders endpoints in its node order (binary, or JSON with --json);
     * node_count 0: none given, the load goes to --url (or --json-url) alone. */
    char nodes[RUSH_LOADGEN_NODES_MAX][RUSH_LOADGEN_URL_BYTES_MAX];
    uint32_t node_count;
    /* --admins, --pubs, --replays: each node's admin, stream PUB and replay endpoints, in the
     * order of --nodes (0: not given; then --admin-url, --pub and --replay, one node's). */
    char admins[RUSH_LOADGEN_NODES_MAX][RUSH_LOADGEN_URL_BYTES_MAX];
    uint32_t admin_count;
    char pubs[RUSH_LOADGEN_NODES_MAX][RUSH_LOADGEN_URL_BYTES_MAX];
    uint32_t pub_count;
    char replays[RUSH_LOADGEN_NODES_MAX][RUSH_LOADGEN_URL_BYTES_MAX];
    uint32_t replay_count;
    uint32_t shards;  /* routing: the engine's shard count (rushd's default 2) */
    uint32_t threads; /* driver threads; 0 until finished: then the default (see options.c) */
    bool batch_given; /* --batch was on the command line */
    char admin_url[RUSH_LOADGEN_URL_BYTES_MAX];  /* admin endpoint (JSON + token) */
    char pub_url[RUSH_LOADGEN_URL_BYTES_MAX];    /* --verify: the stream's PUB endpoint */
    char replay_url[RUSH_LOADGEN_URL_BYTES_MAX]; /* --verify: its replay endpoint */
    bool verify;
    char token[RUSH_LOADGEN_TOKEN_BYTES_MAX]; /* "" until found */
    const char *token_file;                   /* --admin-token-file, or NULL */
    enum rush_loadgen_scenario scenario;
    enum rush_loadgen_mode mode;
    enum rush_loadgen_arrivals arrivals;
    double rate_per_s; /* open mode: requests per second; 0 in closed mode */
    uint32_t connections;
    uint32_t batch;    /* requests per wire message */
    uint32_t inflight; /* messages outstanding per connection (open mode: the most) */
    uint64_t buyers;   /* 0 until finished: then the scenario's default or the flag */
    uint32_t skus;     /* 0 until finished */
    int64_t stock;     /* per SKU */
    double duration_s; /* 0: no cap */
    const char *report_path;
    uint64_t seed;
    bool quiet;
    uint32_t timeout_ms; /* a message without a reply this long is given up */
    double zipf_s;
    double duplicate_rate; /* duplicates: share of answered requests resent */
    double confirm_rate;   /* payments: share of reservations confirmed */
    uint32_t pay_ttl_ms;   /* payments: the fresh SKUs' pay TTL */
    uint32_t group_size;   /* groups: seats per group */
    bool campaign_skus;    /* use the built-in double11 campaign's SKUs, put nothing */
    uint64_t sku_base;     /* first fresh SKU id; 0: chosen from the clock */
};

/* Fills the defaults: tcp://127.0.0.1:7100 and :7102, midnight, closed, 4 connections, ... */
void rush_loadgen_options_default(struct rush_loadgen_options *options);

/*
 * Parses argv into options (which should hold the defaults). Returns 0, 1 when --help was asked
 * (the usage is printed on stdout), or -EINVAL with the reason in why[0 .. why_size).
 */
RUSH_MUST_USE int rush_loadgen_options_parse(struct rush_loadgen_options *options, int argc,
                                             char **argv, char *why, size_t why_size);

/*
 * Fills the scenario-dependent defaults and checks the options against each other (open mode
 * needs --rate, --rate is for open mode only, ...). Returns 0 or -EINVAL with the reason.
 */
RUSH_MUST_USE int rush_loadgen_options_finish(struct rush_loadgen_options *options, char *why,
                                              size_t why_size);

/* Reads the first line of a token file into options->token. 0, or -errno with the reason. */
RUSH_MUST_USE int rush_loadgen_options_read_token(struct rush_loadgen_options *options,
                                                  const char *path, char *why, size_t why_size);

void rush_loadgen_usage(FILE *out);

const char *rush_loadgen_scenario_name(enum rush_loadgen_scenario scenario);
const char *rush_loadgen_mode_name(enum rush_loadgen_mode mode);
const char *rush_loadgen_arrivals_name(enum rush_loadgen_arrivals arrivals);

#endif
