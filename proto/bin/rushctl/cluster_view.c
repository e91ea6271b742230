/*
 * cluster_view.c — `rushctl cluster`: who leads which shard of a rush cluster, read from NATS
 * JetStream itself (the lease bucket and the shards' subjects, rush/replicated.h), so it works
 * with any node down.
 *
 *   rushctl cluster [--nats URLS] [--stream NAME]
 *
 * Prints the nodes (from their status keys: each shard's applied lsn, and the key's age), then
 * one line per shard: its leader (the lease value), the lease revision and age, the last lsn in
 * the replicated log, and each node's lag (last lsn - that node's applied lsn). Exit status: 0,
 * 2 usage or the servers not reachable, 1 no lease bucket for that stream.
 *
 * Workload: one run reads every key once and one message per shard. Thread: one.
 */
#include <getopt.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rush/replicated.h"
#include "views.h"

#define CLUSTER_SHARDS_MAX 64
#define CLUSTER_NODES_MAX 8
#define CLUSTER_NAME_BYTES 32
#define CLUSTER_SERVERS_MAX 16

struct node_status {
    char name[CLUSTER_NAME_BYTES];
    uint64_t applied[CLUSTER_SHARDS_MAX];
    uint32_t shards;
    int64_t age_ms;
};

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The last lsn on the shard's subject (0: empty). */
static uint64_t subject_last_lsn(jsCtx *js, const char *stream, uint32_t shard)
{
    char subject[96];
    snprintf(subject, sizeof subject, "%s.shard.%u", stream, shard);
    natsMsg *msg = NULL;
    jsErrCode code = 0;
    if (js_GetLastMsg(&msg, js, stream, subject, NULL, &code) != NATS_OK)
        return 0;
    const char *fence = NULL; /* a promotion's fence names the lsn it follows */
    if (natsMsgHeader_Get(msg, RUSH_REPLICATED_FENCE_HEADER, &fence) != NATS_OK)
        fence = NULL;
    uint64_t lsn = 0;
    if (rush_replicated_end_lsn(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), fence,
                                &lsn) != 0)
        lsn = 0;
    natsMsg_Destroy(msg);
    return lsn;
}

static void read_node(kvStore *kv, const char *key, struct node_status *node)
{
    memset(node, 0, sizeof *node);
    snprintf(node->name, sizeof node->name, "%s", key + 5);
    kvEntry *entry = NULL;
    if (kvStore_Get(&entry, kv, key) != NATS_OK)
        return;
    node->age_ms = (wall_ns() - kvEntry_Created(entry)) / 1000000;
    const char *value = kvEntry_ValueString(entry);
    for (char *end = NULL; *value != '\0' && node->shards < CLUSTER_SHARDS_MAX; value = end) {
        node->applied[node->shards++] = strtoull(value, &end, 10);
        if (end == value)
            break;
        if (*end == ',')
            end++;
    }
    kvEntry_Destroy(entry);
}

static void print_shard(kvStore *kv, jsCtx *js, const char *stream, const char *key,
                        const struct node_status *nodes, int node_count)
{
    uint32_t shard = (uint32_t)strtoul(key + 6, NULL, 10);
    kvEntry *entry = NULL;
    natsStatus status = kvStore_Get(&entry, kv, key);
    uint64_t last = subject_last_lsn(js, stream, shard);
    printf("%5u  %-10s", shard, status == NATS_OK ? kvEntry_ValueString(entry) : "(none)");
    if (status == NATS_OK)
        printf(" %8" PRIu64 " %7lld", kvEntry_Revision(entry),
               (long long)((wall_ns() - kvEntry_Created(entry)) / 1000000));
    else
        printf(" %8s %7s", "-", "-");
    printf(" %10" PRIu64, last);
    for (int n = 0; n < node_count; n++)
        if (shard < nodes[n].shards)
            printf("  %s:%" PRId64, nodes[n].name, (int64_t)(last - nodes[n].applied[shard]));
    printf("\n");
    kvEntry_Destroy(entry);
}

static int show(jsCtx *js, const char *stream)
{
    char bucket[64];
    snprintf(bucket, sizeof bucket, "%s_leases", stream);
    kvStore *kv = NULL;
    if (js_KeyValue(&kv, js, bucket) != NATS_OK) {
        fprintf(stderr, "rushctl: no lease bucket %s (is a rush cluster using stream %s?)\n",
                bucket, stream);
        return 1;
    }
    kvKeysList keys = {0};
    if (kvStore_Keys(&keys, kv, NULL) != NATS_OK)
        keys.Count = 0;
    struct node_status nodes[CLUSTER_NODES_MAX];
    int node_count = 0;
    for (int k = 0; k < keys.Count && node_count < CLUSTER_NODES_MAX; k++)
        if (strncmp(keys.Keys[k], "node.", 5) == 0)
            read_node(kv, keys.Keys[k], &nodes[node_count++]);
    printf("nodes (status written every lease / 4)\n");
    for (int n = 0; n < node_count; n++) {
        printf("  %-10s %lld ms ago, applied lsn", nodes[n].name, (long long)nodes[n].age_ms);
        for (uint32_t s = 0; s < nodes[n].shards; s++)
            printf("%s%" PRIu64, s ? "," : " ", nodes[n].applied[s]);
        printf("\n");
    }
    printf("shard  leader     revision  age_ms   last_lsn  lag per node\n");
    for (int k = 0; k < keys.Count; k++)
        if (strncmp(keys.Keys[k], "shard.", 6) == 0)
            print_shard(kv, js, stream, keys.Keys[k], nodes, node_count);
    kvKeysList_Destroy(&keys);
    kvStore_Destroy(kv);
    return 0;
}

int rushctl_cluster(int argc, char **argv, int timeout_ms)
{
    static const struct option long_options[] = {{"nats", required_argument, NULL, 'n'},
                                                 {"stream", required_argument, NULL, 's'},
                                                 {NULL, 0, NULL, 0}};
    const char *urls = RUSHCTL_DEFAULT_NATS, *stream = "rush";
    optind = 1;
    for (int option; (option = getopt_long(argc, argv, "", long_options, NULL)) != -1;) {
        if (option == 'n')
            urls = optarg;
        else if (option == 's')
            stream = optarg;
        else
            return 2;
    }
    natsOptions *options = NULL;
    natsConnection *connection = NULL;
    jsCtx *js = NULL;
    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = timeout_ms;
    char list[512];
    snprintf(list, sizeof list, "%s", urls);
    const char *servers[CLUSTER_SERVERS_MAX];
    int count = 0;
    for (char *save = NULL, *url = strtok_r(list, ",", &save);
         url != NULL && count < CLUSTER_SERVERS_MAX; url = strtok_r(NULL, ",", &save))
        servers[count++] = url;
    natsStatus status = natsOptions_Create(&options);
    if (status == NATS_OK)
        status = natsOptions_SetServers(options, servers, count);
    if (status == NATS_OK)
        status = natsOptions_SetTimeout(options, timeout_ms);
    if (status == NATS_OK)
        status = natsConnection_Connect(&connection, options);
    if (status == NATS_OK)
        status = natsConnection_JetStream(&js, connection, &js_options);
    int rc = 2;
    if (status == NATS_OK)
        rc = show(js, stream);
    else
        fprintf(stderr, "rushctl: cannot reach %s: %s\n", urls, natsStatus_GetText(status));
    jsCtx_Destroy(js);
    natsConnection_Destroy(connection);
    natsOptions_Destroy(options);
    return rc;
}
