/*
 * server_config.c — from a checked campaign to a running engine: engine sizes, durability
 * settings, the SKUs on sale and the admin token.
 *
 * Workload: once at start-up. Nothing here runs per request.
 *
 * Invariants.
 *   1. The engine configuration is rush_engine_config_default() plus the campaign's non-zero
 *      [engine] numbers (plus --shards); it passes rush_engine_config_check() before use.
 *   2. Every campaign SKU is put before any endpoint is bound: the first request sees the whole
 *      catalogue.
 *   3. The admin token is never empty: the campaign's, or RUSH_SERVER_TOKEN_RANDOM_BYTES random
 *      bytes in hex, written to DATA_DIR/admin.token readable by its owner only.
 *
 * Threads: the thread that calls rush_server_create().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "rush/assert.h"
#include "server_internal.h"
#include "shard/shard.h"

#define RUSH_SERVER_TOKEN_RANDOM_BYTES 24 /* 192 bits, 48 hex digits */
#define RUSH_SERVER_MKDIR_DEPTH_MAX 32

int rush_server_engine_config(const struct rush_campaign *campaign, uint32_t shards,
                              struct rush_engine_config *config, char *why, size_t why_size)
{
    RUSH_ASSERT(campaign != NULL && config != NULL);
    const struct rush_campaign_engine *settings = &campaign->engine;
    uint32_t shard_count = shards != 0             ? shards
                           : settings->shards != 0 ? settings->shards
                                                   : RUSH_SERVER_SHARDS_DEFAULT;
    rush_engine_config_default(config, shard_count);
    if (settings->ring_slots != 0)
        config->ring_slots = settings->ring_slots;
    if (settings->orders_max != 0)
        config->limits.orders_max = settings->orders_max;
    if (settings->groups_max != 0)
        config->limits.groups_max = settings->groups_max;
    if (settings->keys_max != 0)
        config->limits.keys_max = settings->keys_max;
    if (settings->user_limits_max != 0)
        config->limits.user_limits_max = settings->user_limits_max;
    rush_campaign_policy(campaign, &config->policy);
    config->snapshot_every_events = settings->snapshot_every_events;
    config->snapshot_in_background = settings->snapshot_background;
    /* Any number of the campaign's SKUs may hash to one shard; leave room for sku_put too. */
    uint32_t skus_needed = campaign->sku_count + RUSH_SERVER_SKUS_HEADROOM;
    if (config->limits.skus_max < skus_needed)
        config->limits.skus_max = skus_needed;
    return rush_engine_config_check(config, why, why_size);
}

const char *rush_server_data_dir(const struct rush_campaign *campaign,
                                 const struct rush_server_options *args)
{
    if (args->data_dir != NULL)
        return args->data_dir;
    if (campaign->engine.data_dir[0] != '\0')
        return campaign->engine.data_dir;
    return RUSH_SERVER_DATA_DIR_DEFAULT;
}

static const char *durability_name(enum rush_durability durability)
{
    switch (durability) {
    case RUSH_DURABILITY_FSYNC:
        return "fsync";
    case RUSH_DURABILITY_ASYNC:
        return "async";
    case RUSH_DURABILITY_NONE:
        return "none";
    case RUSH_DURABILITY_REPLICATED:
        return "replicated";
    }
    return NULL;
}

/*
 * The durability hook. The engine's configuration is about to gain `data_dir` and `durability`
 * (0 fsync, 1 async, 2 none) for the write-ahead log; once it has them, this function sets them
 * from the values checked here: config->data_dir = data_dir; config->durability = durability.
 * Until then it checks and logs them, so that a bad value refuses the start today as it will then.
 */
/* mkdir -p with mode 0700 for the directories it creates. */
static int make_dirs(const char *path)
{
    char partial[RUSH_DATA_DIR_BYTES_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(partial))
        return -ENAMETOOLONG;
    memcpy(partial, path, len + 1);
    uint32_t depth = 0;
    for (size_t i = 1; i <= len; i++) {
        if (partial[i] != '/' && partial[i] != '\0')
            continue;
        if (++depth > RUSH_SERVER_MKDIR_DEPTH_MAX)
            return -ENAMETOOLONG;
        char saved = partial[i];
        partial[i] = '\0';
        if (mkdir(partial, 0700) != 0 && errno != EEXIST)
            return -errno;
        partial[i] = saved;
    }
    return 0;
}

int rush_server_apply_durability(struct rush_engine_config *config,
                                 const struct rush_campaign *campaign,
                                 const struct rush_server_options *args, char *why, size_t why_size)
{
    RUSH_ASSERT(config != NULL && campaign != NULL && args != NULL);
    const char *data_dir = rush_server_data_dir(campaign, args);
    const char *mode = durability_name(campaign->engine.durability);
    if (mode == NULL) {
        snprintf(why, why_size, "durability %d is not fsync, async or none",
                 (int)campaign->engine.durability);
        return RUSH_ECONFIG;
    }
    if (data_dir[0] == '\0' || strlen(data_dir) >= RUSH_DATA_DIR_BYTES_MAX) {
        snprintf(why, why_size, "data dir must be 1..%d bytes", RUSH_DATA_DIR_BYTES_MAX - 1);
        return RUSH_ECONFIG;
    }
    int rc = make_dirs(data_dir); /* the engine opens its logs there */
    if (rc < 0) {
        snprintf(why, why_size, "cannot create data dir %s: %s", data_dir, strerror(-rc));
        return rc;
    }
    config->data_dir = data_dir; /* the campaign and options live as long as the server */
    config->durability = (uint8_t)campaign->engine.durability;
    rush_log(RUSH_LOG_INFO, "durability %s, data dir %s (%u shards)", mode, data_dir,
             config->shard_count);
    if (campaign->engine.durability == RUSH_DURABILITY_NONE)
        rush_log(RUSH_LOG_WARN, "durability none: NOTHING is logged; every decision is lost on "
                                "exit. For benchmarks only.");
    else if (config->snapshot_every_events != 0)
        rush_log(RUSH_LOG_INFO, "snapshots: each shard every %llu logged events",
                 (unsigned long long)config->snapshot_every_events);
    return 0;
}

static int write_token_file(const char *path, const char *token)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    size_t len = strlen(token);
    if (fchmod(fd, 0600) != 0)
        rc = -errno;
    else if (write(fd, token, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
        rc = -EIO;
    else if (fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

int rush_server_prepare_token(struct rush_server *server, char *why, size_t why_size)
{
    const char *configured = server->campaign->endpoints.admin_token;
    if (configured[0] != '\0') {
        snprintf(server->admin_token, sizeof(server->admin_token), "%s", configured);
        rush_log(RUSH_LOG_INFO, "admin token: the campaign's");
        return 0;
    }
    uint8_t random[RUSH_SERVER_TOKEN_RANDOM_BYTES];
    if (getrandom(random, sizeof(random), 0) != (ssize_t)sizeof(random)) {
        snprintf(why, why_size, "getrandom for the admin token: %s", strerror(errno));
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(random); i++)
        snprintf(server->admin_token + 2 * i, 3, "%02x", random[i]);
    char path[RUSH_DATA_DIR_BYTES_MAX + sizeof(RUSH_SERVER_TOKEN_FILE) + 1];
    snprintf(path, sizeof(path), "%s/%s", server->data_dir, RUSH_SERVER_TOKEN_FILE);
    int rc = make_dirs(server->data_dir);
    if (rc == 0)
        rc = write_token_file(path, server->admin_token);
    if (rc < 0) {
        snprintf(why, why_size, "cannot write the admin token to %s: %s", path, strerror(-rc));
        return rc;
    }
    rush_log(RUSH_LOG_INFO, "admin token: generated, written to %s (mode 0600)", path);
    return 0;
}

struct sku_lookup {
    uint64_t sku_id;
    bool known;
};

static void look_up_sku(struct rush_shard *shard, void *context)
{
    struct sku_lookup *lookup = context;
    struct rush_sku_ledger ledger;
    lookup->known = rush_shard_ledger(shard, lookup->sku_id, &ledger) == 0;
}

/*
 * Whether the engine already knows the SKU (recovered from its log). Read on the shard's thread
 * (rush_engine_inspect), not asked as a query_sku: the server's own look-ups are not requests and
 * must not show in the stats as requests answered unknown_sku.
 */
static bool sku_known(struct rush_server *server, uint64_t sku_id)
{
    struct sku_lookup lookup = {.sku_id = sku_id};
    uint32_t shard = rush_engine_shard_of_sku(rush_engine_shard_count(server->engine), sku_id);
    rush_engine_inspect(server->engine, shard, look_up_sku, &lookup);
    return lookup.known;
}

/*
 * Puts the campaign's SKUs that the engine does not know. After a restart the log is the truth:
 * a recovered SKU keeps its stock adjustments, pauses and holds instead of being reset to the
 * file (change a live SKU with the admin sku_put).
 */
int rush_server_put_campaign(struct rush_server *server, char *why, size_t why_size)
{
    const struct rush_campaign *campaign = server->campaign;
    uint32_t recovered = 0;
    uint32_t elsewhere = 0;
    for (uint32_t i = 0; i < campaign->sku_count; i++) {
        const struct rush_sku *sku = &campaign->skus[i];
        uint32_t shard = rush_engine_shard_of_sku(rush_engine_shard_count(server->engine), sku->id);
        if (server->cluster != NULL && !rush_cluster_leads(server->cluster, shard)) {
            elsewhere++; /* its leader puts it (ARCHITECTURE.md "Cluster") */
            continue;
        }
        if (sku_known(server, sku->id)) {
            recovered++;
            continue;
        }
        struct rush_result result;
        int rc = rush_engine_sku_put(server->engine, sku, &result);
        if (rc < 0) {
            snprintf(why, why_size, "sku %llu: %s", (unsigned long long)sku->id, rush_strerror(rc));
            return rc;
        }
        if (result.outcome != RUSH_OK) {
            snprintf(why, why_size, "sku %llu refused by the engine: %s %s",
                     (unsigned long long)sku->id, rush_outcome_name(result.outcome),
                     rush_reason_name(result.reason));
            return RUSH_ECONFIG;
        }
    }
    rush_log(RUSH_LOG_INFO,
             "%u SKUs put from the campaign, %u kept as recovered from the log, %u left to the "
             "nodes leading their shards",
             campaign->sku_count - recovered - elsewhere, recovered, elsewhere);
    return 0;
}
