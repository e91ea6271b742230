/*
 * cluster.c — the cluster's life cycle: the NATS connection, the stream and the lease bucket,
 * the threads (see cluster.h; ARCHITECTURE.md "Cluster").
 *
 * The stream <stream> holds subjects <stream>.shard.*, file storage, replicated on
 * min(3, servers) servers; the bucket <stream>_leases is memory storage with History 1 and
 * TTL = lease_ms, on as many replicas. Both are created if missing (by whichever node comes
 * first; the other finds them).
 *
 * Thread: the creating thread (rushd's main).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "cluster_internal.h"
#include "rush/assert.h"

#define CLUSTER_SERVERS_MAX 16
#define CLUSTER_API_WAIT_MS 2000
#define CLUSTER_LEASE_WAIT_MIN_MS 100
#define CLUSTER_RECONNECT_WAIT_MS 100
/* A JetStream cluster that just started has no meta leader for a few seconds: set-up is retried
 * every CLUSTER_SETUP_RETRY_MS for up to CLUSTER_SETUP_WAIT_MS. */
#define CLUSTER_SETUP_WAIT_MS 20000
#define CLUSTER_SETUP_RETRY_MS 200

static void setup_pause(void)
{
    struct timespec pause = {.tv_nsec = CLUSTER_SETUP_RETRY_MS * 1000000L};
    nanosleep(&pause, NULL);
}

static int connect_servers(struct rush_cluster *cluster, char *why, size_t why_size)
{
    char urls[RUSH_CLUSTER_NATS_BYTES];
    snprintf(urls, sizeof(urls), "%s", cluster->settings.nats);
    const char *servers[CLUSTER_SERVERS_MAX];
    int count = 0;
    for (char *save = NULL, *url = strtok_r(urls, ",", &save);
         url != NULL && count < CLUSTER_SERVERS_MAX; url = strtok_r(NULL, ",", &save))
        servers[count++] = url;
    cluster->replicas = count < 3 ? count : 3;
    natsOptions *options = NULL;
    natsStatus status = natsOptions_Create(&options);
    if (status == NATS_OK)
        status = natsOptions_SetServers(options, servers, count);
    if (status == NATS_OK)
        status = natsOptions_SetMaxReconnect(options, -1); /* for ever: the lease decides */
    if (status == NATS_OK)
        status = natsOptions_SetReconnectWait(options, CLUSTER_RECONNECT_WAIT_MS);
    if (status == NATS_OK)
        status = natsOptions_SetTimeout(options, CLUSTER_API_WAIT_MS);
    if (status == NATS_OK)
        status = natsConnection_Connect(&cluster->connection, options);
    natsOptions_Destroy(options);
    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = CLUSTER_API_WAIT_MS;
    if (status == NATS_OK)
        status = natsConnection_JetStream(&cluster->js, cluster->connection, &js_options);
    /* The lease thread's calls wait at most half a lease: a call that outlasts the lease
     * would let the leases this node holds lapse while it waits on another one. */
    uint32_t lease_wait_ms = cluster->settings.lease_ms / 2;
    js_options.Wait = lease_wait_ms < CLUSTER_LEASE_WAIT_MIN_MS ? CLUSTER_LEASE_WAIT_MIN_MS
                      : lease_wait_ms > CLUSTER_API_WAIT_MS     ? CLUSTER_API_WAIT_MS
                                                                : lease_wait_ms;
    if (status == NATS_OK)
        status = natsConnection_JetStream(&cluster->lease_js, cluster->connection, &js_options);
    if (status != NATS_OK) {
        snprintf(why, why_size, "cluster: cannot connect to %s: %s", cluster->settings.nats,
                 natsStatus_GetText(status));
        return RUSH_ECONFIG;
    }
    return 0;
}

static int create_stream(struct rush_cluster *cluster, char *why, size_t why_size)
{
    char subjects[RUSH_CLUSTER_STREAM_BYTES + 16];
    snprintf(subjects, sizeof(subjects), "%s.shard.*", cluster->stream);
    const char *list[] = {subjects};
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = cluster->stream;
    config.Subjects = list;
    config.SubjectsLen = 1;
    config.Storage = js_FileStorage;
    config.Replicas = cluster->replicas;
    config.AllowDirect = true; /* the replicator's look-up of a refused batch (replicator.c) */
    int64_t deadline_ms = rush_clock_monotonic_ms() + CLUSTER_SETUP_WAIT_MS;
    natsStatus status;
    jsErrCode code;
    do { /* bounded by the deadline */
        jsStreamInfo *info = NULL;
        code = 0;
        status = js_AddStream(&info, cluster->js, &config, NULL, &code);
        jsStreamInfo_Destroy(info);
        if (status == NATS_OK || code == JSStreamNameExistErr)
            return 0;
        setup_pause();
    } while (rush_clock_monotonic_ms() < deadline_ms);
    snprintf(why, why_size, "cluster: cannot create the stream %s: %s (%d)", cluster->stream,
             natsStatus_GetText(status), (int)code);
    return RUSH_ECONFIG;
}

static int create_bucket(struct rush_cluster *cluster, char *why, size_t why_size)
{
    kvConfig config;
    kvConfig_Init(&config);
    config.Bucket = cluster->bucket;
    config.History = 1;
    config.TTL = (int64_t)cluster->settings.lease_ms * 1000000; /* ns: it becomes MaxAge */
    config.StorageType = js_MemoryStorage;
    config.Replicas = cluster->replicas;
    int64_t deadline_ms = rush_clock_monotonic_ms() + CLUSTER_SETUP_WAIT_MS;
    natsStatus status;
    do { /* bounded by the deadline */
        kvStore *created = NULL;
        status = js_CreateKeyValue(&created, cluster->js, &config);
        kvStore_Destroy(created);
        /* Made here or by the other node with the same settings: opened on the lease context. */
        status = js_KeyValue(&cluster->leases, cluster->lease_js, cluster->bucket);
        if (status != NATS_OK)
            setup_pause();
    } while (status != NATS_OK && rush_clock_monotonic_ms() < deadline_ms);
    if (status != NATS_OK) {
        snprintf(why, why_size, "cluster: cannot create the lease bucket %s: %s", cluster->bucket,
                 natsStatus_GetText(status));
        return RUSH_ECONFIG;
    }
    return 0;
}

static int shards_init(struct rush_cluster *cluster)
{
    cluster->shards = calloc(cluster->shard_count, sizeof(*cluster->shards));
    if (cluster->shards == NULL)
        return -ENOMEM;
    for (uint32_t s = 0; s < cluster->shard_count; s++) {
        struct cluster_shard *shard = &cluster->shards[s];
        shard->cluster = cluster;
        shard->index = s;
        shard->handover_to = -1;
        shard->holder = -1;
        atomic_init(&shard->handover_asked, -1);
        snprintf(shard->subject, sizeof(shard->subject), "%s.shard.%u", cluster->stream, s);
        snprintf(shard->key, sizeof(shard->key), "shard.%u", s);
        if (pthread_mutex_init(&shard->lock, NULL) != 0 ||
            pthread_cond_init(&shard->ready, NULL) != 0)
            return -ENOMEM;
    }
    return 0;
}

int rush_cluster_create(const struct rush_campaign_cluster *settings, uint32_t shard_count,
                        struct rush_cluster **out, char *why, size_t why_size)
{
    RUSH_ASSERT(settings != NULL && settings->node_count > 0 && shard_count > 0);
    struct rush_cluster *cluster = calloc(1, sizeof(*cluster));
    if (cluster == NULL)
        return -ENOMEM;
    cluster->settings = *settings;
    cluster->shard_count = shard_count;
    snprintf(cluster->stream, sizeof(cluster->stream), "%s", settings->stream);
    snprintf(cluster->bucket, sizeof(cluster->bucket), "%s_leases", settings->stream);
    int rc = shards_init(cluster);
    if (rc < 0)
        snprintf(why, why_size, "cluster: out of memory");
    if (rc == 0)
        rc = connect_servers(cluster, why, why_size);
    if (rc == 0)
        rc = create_stream(cluster, why, why_size);
    if (rc == 0)
        rc = create_bucket(cluster, why, why_size);
    if (rc < 0) {
        rush_cluster_destroy(cluster);
        return rc;
    }
    rush_log(RUSH_LOG_INFO, "cluster: node %s (%u of %u), stream %s on %d replicas, lease %u ms",
             settings->node, settings->node_index, settings->node_count, cluster->stream,
             cluster->replicas, settings->lease_ms);
    *out = cluster;
    return 0;
}

void rush_cluster_replica(struct rush_cluster *cluster, struct rush_engine_replica *replica)
{
    *replica = (struct rush_engine_replica){.append = cluster_replica_append, .context = cluster};
}

/* Every shard has a holder, and the shards this node holds are promoted (it put their SKUs). */
static bool every_shard_led(struct rush_cluster *cluster)
{
    for (uint32_t s = 0; s < cluster->shard_count; s++) {
        kvEntry *entry = NULL;
        natsStatus status = kvStore_Get(&entry, cluster->leases, cluster->shards[s].key);
        bool held = status == NATS_OK && kvEntry_ValueString(entry)[0] != '-';
        if (held && strcmp(kvEntry_ValueString(entry), cluster->settings.node) == 0)
            held = atomic_load(&cluster->shards[s].leads);
        kvEntry_Destroy(entry);
        if (!held)
            return false;
    }
    return true;
}

int rush_cluster_start(struct rush_cluster *cluster, struct rush_engine *engine, uint32_t wait_ms,
                       char *why, size_t why_size)
{
    cluster->engine = engine;
    cluster->started_ns = rush_clock_monotonic_ns();
    for (uint32_t s = 0; s < cluster->shard_count; s++) {
        int rc = cluster_replicator_start(&cluster->shards[s]);
        if (rc < 0) {
            snprintf(why, why_size, "cluster: cannot start a replicator: %s", strerror(-rc));
            return rc;
        }
    }
    int rc = cluster_lease_start(cluster);
    if (rc < 0) {
        snprintf(why, why_size, "cluster: cannot start the lease thread: %s", strerror(-rc));
        return rc;
    }
    int64_t deadline_ms = rush_clock_monotonic_ms() + wait_ms;
    while (!every_shard_led(cluster)) { /* bounded by wait_ms */
        if (rush_clock_monotonic_ms() > deadline_ms) {
            rush_log(RUSH_LOG_WARN, "cluster: not every shard has a leader after %u ms", wait_ms);
            break;
        }
        struct timespec pause = {.tv_nsec = 20 * 1000000L};
        nanosleep(&pause, NULL);
    }
    return 0;
}

bool rush_cluster_leads(const struct rush_cluster *cluster, uint32_t shard_index)
{
    RUSH_ASSERT(shard_index < cluster->shard_count);
    return atomic_load(&cluster->shards[shard_index].leads);
}

int rush_cluster_handover(struct rush_cluster *cluster, uint32_t shard_index, uint32_t target,
                          char *why, size_t why_size)
{
    if (shard_index >= cluster->shard_count || target >= cluster->settings.node_count ||
        target == cluster->settings.node_index) {
        snprintf(why, why_size, "shard must be 0..%u and node another node of [cluster]",
                 cluster->shard_count - 1);
        return RUSH_ECONFIG;
    }
    if (!rush_cluster_leads(cluster, shard_index)) {
        snprintf(why, why_size, "this node does not lead shard %u", shard_index);
        return RUSH_ECONFIG;
    }
    atomic_store(&cluster->shards[shard_index].handover_asked, (int32_t)target);
    return 0;
}

void rush_cluster_stop(struct rush_cluster *cluster)
{
    if (cluster == NULL || !cluster->lease_started)
        return;
    cluster_lease_stop(cluster);
}

void rush_cluster_destroy(struct rush_cluster *cluster)
{
    if (cluster == NULL)
        return;
    cluster_lease_stop(cluster);
    atomic_store(&cluster->stopping, true);
    for (uint32_t s = 0; cluster->shards != NULL && s < cluster->shard_count; s++) {
        cluster_replicator_stop(&cluster->shards[s]);
        pthread_mutex_destroy(&cluster->shards[s].lock);
        pthread_cond_destroy(&cluster->shards[s].ready);
    }
    kvStore_Destroy(cluster->leases);
    jsCtx_Destroy(cluster->js);
    jsCtx_Destroy(cluster->lease_js);
    natsConnection_Destroy(cluster->connection);
    free(cluster->shards);
    free(cluster);
}
