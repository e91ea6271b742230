/*
 * server.c — rushd's front-end loop: endpoints, in-flight slots, the engine, replies.
 * The shape, the slot life and the invariants are in server.h; the endpoints' message handling is
 * in server_orders.c and server_admin.c, reached only through the handler table registered in
 * rush_server_create(); slots are in server_slots.c, start-up configuration in server_config.c.
 *
 * One turn of the loop:
 *   1. poll(2) the endpoints' receive fds, the wake pipe and the engine's eventfd
 *      (rush_engine_wake_fd): one sleep that a message, a decided batch or rush_server_stop()
 *      ends, up to RUSH_SERVER_IDLE_POLL_MS when nothing is in flight, else up to
 *      RUSH_SERVER_ENGINE_WAIT_MS (a bound only: the engine writes the eventfd once per sleep).
 *      It does not sleep when a decided batch is already waiting.
 *   2. From each readable endpoint take up to RUSH_SERVER_RECEIVE_BURST_MAX messages, each
 *      answered at once (errors, busy, admin), packed (small messages, server_pack.c) or
 *      submitted in its own batch (large ones).
 *   3. Submit the open packs: everything taken in this turn is one engine batch per shard.
 *   4. Reply to every decided batch (rush_engine_poll without waiting).
 * So a batch is answered within microseconds of being decided, a message is taken within
 * microseconds of arriving, and the front end is woken once per turn, not once per message.
 */
#include <errno.h>
#include <fcntl.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "codec/sp.h"
#include "rush/assert.h"
#include "server_internal.h"
#include "wal/data_dir.h"

#define RUSH_SERVER_IDLE_POLL_MS 1000
#define RUSH_SERVER_ENGINE_WAIT_MS 100
#define RUSH_SERVER_DRAIN_WAIT_MS 10
/* After the last reply of a shutdown, time for nanomsg's I/O thread to write it out (nanomsg 1.x
 * drops what is still queued when a socket is closed), and the longest sp_server.c keeps
 * writing replies a slow peer has not taken. */
#define RUSH_SERVER_LINGER_MS 200
/*
 * Kernel send buffer asked for each endpoint's connections (SO_SNDBUF, capped by
 * net.core.wmem_max). nanomsg 1.x's raw REP hands a connection one message at a time and drops
 * a reply sent while the previous one is still being written; a buffer that takes several whole
 * replies at once keeps pipelining clients (raw REQ, many messages in flight on one connection)
 * from losing replies. Plain REQ clients have one request in flight and are never affected.
 */
#define RUSH_SERVER_SEND_BUFFER_BYTES (4 * 1024 * 1024)

/* ---- sending and receiving ---------------------------------------------------------------- */

/* Takes one message; 1 when one was handled, 0 when there was none, < 0 on a socket error. */
static int receive_one(struct rush_server *server, enum rush_endpoint endpoint)
{
    void *body = NULL;
    void *control = NULL;
    struct nn_iovec iov = {.iov_base = &body, .iov_len = NN_MSG};
    struct nn_msghdr header = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = NN_MSG};
    int n = nn_recvmsg(server->sockets[endpoint], &header, NN_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    struct rush_server_message message = {
        .endpoint = endpoint, .control = control, .body = body, .len = (size_t)n};
    server->counters.messages[endpoint]++;
    server->handlers[endpoint]->on_message(server, &message);
    RUSH_ASSERT(message.control == NULL); /* replied, or kept by an in-flight slot */
    nn_freemsg(body);
    return 1;
}

static int receive_burst(struct rush_server *server, enum rush_endpoint endpoint)
{
    for (uint32_t i = 0; i < RUSH_SERVER_RECEIVE_BURST_MAX; i++) {
        int rc = receive_one(server, endpoint);
        if (rc <= 0)
            return rc;
    }
    return 0;
}

/* Submits the open packs, then replies to every batch the engine hands back within timeout_ms. */
static void deliver(struct rush_server *server, int timeout_ms)
{
    rush_server_packs_flush(server);
    if (server->batches_in_flight == 0 && !server->ops_pending)
        return;
    struct rush_batch *done[RUSH_SERVER_DONE_MAX];
    int count = rush_engine_poll(server->engine, done, RUSH_SERVER_DONE_MAX, timeout_ms);
    if (count < 0) {
        rush_log(RUSH_LOG_ERROR, "engine poll: %s", rush_strerror(count));
        return;
    }
    for (int i = 0; i < count; i++) {
        if (!rush_server_ops_delivered(server, done[i]))
            rush_server_batch_decided(server, done[i]);
    }
    if (count > 0)
        rush_server_packs_flush(server); /* messages that waited for the packs now back */
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void drain_wake_pipe(struct rush_server *server)
{
    char bytes[64];
    for (uint32_t i = 0; i < 16 && read(server->wake_pipe[0], bytes, sizeof(bytes)) > 0; i++)
        continue;
}

/* Step 1 of a turn: sleeps until a message, a decided batch or a stop (see the file comment). */
static int wait_for_work(struct rush_server *server, struct pollfd *fds, int count)
{
    int timeout_ms = RUSH_SERVER_IDLE_POLL_MS;
    bool asleep = false;
    if (server->batches_in_flight > 0 || server->ops_pending) {
        asleep = rush_engine_sleep_begin(server->engine);
        timeout_ms = asleep ? RUSH_SERVER_ENGINE_WAIT_MS : 0;
    }
    int ready = poll(fds, (nfds_t)count, timeout_ms);
    int poll_errno = errno;
    if (asleep)
        rush_engine_sleep_end(server->engine);
    errno = poll_errno; /* the caller tells EINTR (a signal: SIGTERM) from a failure */
    return ready;
}

/* One turn (see the file comment). Returns < 0 only on a fatal socket or poll error. */
static int turn(struct rush_server *server)
{
    /* An endpoint's fd is -1 (poll skips it) when sp_server.c serves it: its epoll fd is TCP. */
    enum { WAKE = RUSH_ENDPOINT_COUNT_, ENGINE, TCP, FD_COUNT };
    struct pollfd fds[FD_COUNT];
    for (int e = 0; e < RUSH_ENDPOINT_COUNT_; e++)
        fds[e] = (struct pollfd){.fd = server->receive_fds[e], .events = POLLIN};
    fds[WAKE] = (struct pollfd){.fd = server->wake_pipe[0], .events = POLLIN};
    fds[ENGINE] = (struct pollfd){.fd = rush_engine_wake_fd(server->engine), .events = POLLIN};
    fds[TCP] = (struct pollfd){.fd = rush_sp_server_fd(server->tcp), .events = POLLIN};
    int ready = wait_for_work(server, fds, FD_COUNT);
    if (ready < 0 && errno != EINTR) {
        rush_log(RUSH_LOG_ERROR, "poll: %s", strerror(errno));
        return -errno;
    }
    for (int e = 0; ready > 0 && e < RUSH_ENDPOINT_COUNT_; e++) {
        if ((fds[e].revents & POLLIN) == 0 || atomic_load(&server->stopping))
            continue;
        int rc = receive_burst(server, (enum rush_endpoint)e);
        if (rc < 0) {
            rush_log(RUSH_LOG_ERROR, "%s: receive: %s",
                     rush_server_endpoint_name((enum rush_endpoint)e), nn_strerror(-rc));
            return rc;
        }
    }
    if (ready > 0 && (fds[TCP].revents & POLLIN) && !atomic_load(&server->stopping))
        rush_sp_server_receive(server->tcp);
    rush_sp_server_timers(server->tcp);
    if (ready > 0 && (fds[WAKE].revents & POLLIN))
        drain_wake_pipe(server);
    rush_server_ops_turn(server);
    if (server->in_flight > 0 || server->ops_pending)
        deliver(server, 0);
    rush_sp_server_flush(server->tcp); /* this turn's replies: one send per connection */
    return 0;
}

static void drain(struct rush_server *server)
{
    int64_t deadline_ns = rush_server_now_ns() + (int64_t)RUSH_SERVER_DRAIN_MS_MAX * 1000000;
    uint32_t waiting = server->in_flight;
    while (server->in_flight > 0 && rush_server_now_ns() < deadline_ns) {
        deliver(server, RUSH_SERVER_DRAIN_WAIT_MS);
        rush_sp_server_flush(server->tcp);
    }
    if (server->in_flight > 0)
        rush_log(RUSH_LOG_WARN, "%u messages still undecided after %d ms", server->in_flight,
                 RUSH_SERVER_DRAIN_MS_MAX);
    else
        rush_log(RUSH_LOG_INFO, "stopping: answered the %u messages in flight", waiting);
    rush_sp_server_linger(server->tcp, RUSH_SERVER_LINGER_MS);
    for (int e = 0; e < RUSH_ENDPOINT_COUNT_; e++) {
        if (server->sockets[e] >= 0) {
            usleep(RUSH_SERVER_LINGER_MS * 1000);
            break;
        }
    }
}

int rush_server_run(struct rush_server *server)
{
    RUSH_ASSERT(server != NULL);
    rush_log(RUSH_LOG_INFO,
             "serving: orders %s, json %s, admin %s (in flight at most %u messages, %llu "
             "requests, %llu bytes)",
             server->urls[RUSH_ENDPOINT_ORDERS], server->urls[RUSH_ENDPOINT_JSON],
             server->urls[RUSH_ENDPOINT_ADMIN], server->in_flight_max,
             (unsigned long long)server->requests_in_flight_max,
             (unsigned long long)server->bytes_in_flight_max);
    int rc = 0;
    while (rc == 0 && !atomic_load(&server->stopping))
        rc = turn(server);
    rush_log(RUSH_LOG_INFO, "stopping: no new requests taken");
    drain(server);
    return rc;
}

void rush_server_stop(struct rush_server *server)
{
    atomic_store(&server->stopping, true);
    char byte = 1;
    ssize_t written = write(server->wake_pipe[1], &byte, 1);
    (void)written; /* a full pipe already wakes the loop */
}

/* ---- create and destroy ------------------------------------------------------------------- */

/* A whole message on a tcp:// endpoint (sp_server.c); its origin is the message's control. */
static void tcp_message(void *context, uint32_t endpoint, void *origin, const void *body,
                        size_t len)
{
    struct rush_server *server = context;
    struct rush_server_message message = {
        .endpoint = (enum rush_endpoint)endpoint, .control = origin, .body = body, .len = len};
    server->counters.messages[endpoint]++;
    server->handlers[endpoint]->on_message(server, &message);
    RUSH_ASSERT(message.control == NULL); /* replied, or kept by an in-flight slot */
}

static int endpoint_open_tcp(struct rush_server *server, enum rush_endpoint endpoint,
                             const char *url, char *why, size_t why_size)
{
    /* Every slot may hold a message, and one more is being taken. */
    if (server->tcp == NULL && rush_sp_server_create(RUSH_SERVER_IN_FLIGHT_MAX + 2, tcp_message,
                                                     server, &server->tcp) < 0) {
        snprintf(why, why_size, "out of memory for %d tcp connections",
                 RUSH_SP_SERVER_CONNECTIONS_MAX);
        return -ENOMEM;
    }
    size_t message_max = (endpoint == RUSH_ENDPOINT_ORDERS ? RUSH_SERVER_WIRE_RECEIVE_BYTES_MAX
                                                           : RUSH_SERVER_JSON_RECEIVE_BYTES_MAX) +
                         RUSH_SP_BACKTRACE_BYTES_MAX;
    char reason[RUSH_SERVER_WHY_BYTES];
    int rc = rush_sp_server_listen(server->tcp, endpoint, url, message_max, reason, sizeof(reason));
    if (rc < 0)
        snprintf(why, why_size, "%s endpoint %s", rush_server_endpoint_name(endpoint), reason);
    server->on_tcp[endpoint] = rc == 0;
    return rc;
}

static int endpoint_open(struct rush_server *server, enum rush_endpoint endpoint, const char *url,
                         bool tcp_nanomsg, char *why, size_t why_size)
{
    snprintf(server->urls[endpoint], sizeof(server->urls[endpoint]), "%s", url);
    if (!tcp_nanomsg && strncmp(url, "tcp://", strlen("tcp://")) == 0)
        return endpoint_open_tcp(server, endpoint, url, why, why_size);
    int s = nn_socket(AF_SP_RAW, NN_REP);
    if (s < 0)
        goto out_error;
    server->sockets[endpoint] = s;
    int max = endpoint == RUSH_ENDPOINT_ORDERS ? RUSH_SERVER_WIRE_RECEIVE_BYTES_MAX
                                               : RUSH_SERVER_JSON_RECEIVE_BYTES_MAX;
    if (nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max, sizeof(max)) < 0)
        goto out_error;
    int send_buffer = RUSH_SERVER_SEND_BUFFER_BYTES;
    if (nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDBUF, &send_buffer, sizeof(send_buffer)) < 0)
        goto out_error;
    /* Replies go at once: with Nagle on, a small reply waits while the previous one is unacked,
     * i.e. until the client's next message carries the ACK (or its 40 ms delayed-ACK timer): a
     * gateway sending a message every few ms per connection saw that gap added to every reply. */
    int nodelay = 1;
    if (nn_setsockopt(s, NN_TCP, NN_TCP_NODELAY, &nodelay, sizeof(nodelay)) < 0)
        goto out_error;
    if (nn_bind(s, url) < 0)
        goto out_error;
    size_t size = sizeof(server->receive_fds[endpoint]);
    if (nn_getsockopt(s, NN_SOL_SOCKET, NN_RCVFD, &server->receive_fds[endpoint], &size) < 0)
        goto out_error;
    return 0;
out_error:
    snprintf(why, why_size, "%s endpoint %s: %s", rush_server_endpoint_name(endpoint), url,
             nn_strerror(errno));
    return errno > 0 ? -errno : -EIO;
}

static int endpoints_open(struct rush_server *server, const struct rush_server_options *options,
                          char *why, size_t why_size)
{
    const struct rush_campaign_endpoints *urls = &server->campaign->endpoints;
    const char *chosen[RUSH_ENDPOINT_COUNT_] = {
        [RUSH_ENDPOINT_ORDERS] = options->orders_url ? options->orders_url : urls->orders,
        [RUSH_ENDPOINT_JSON] = options->json_url ? options->json_url : urls->json,
        [RUSH_ENDPOINT_ADMIN] = options->admin_url ? options->admin_url : urls->admin};
    int rc = 0;
    for (int e = 0; rc == 0 && e < RUSH_ENDPOINT_COUNT_; e++)
        rc = endpoint_open(server, (enum rush_endpoint)e, chosen[e], options->tcp_nanomsg, why,
                           why_size);
    return rc;
}

/*
 * In a cluster the replicated log is the truth: the local log of a node killed mid-append may
 * hold batches JetStream never took, so the node starts empty and rebuilds each shard from its
 * subject (ARCHITECTURE.md "Cluster"); the old files are kept in superseded-<unix seconds>/.
 */
static int cluster_set_log_aside(const char *data_dir, char *why, size_t why_size)
{
    char aside[64];
    snprintf(aside, sizeof(aside), "superseded-%lld",
             (long long)(rush_clock_wall_ns() / 1000000000));
    uint32_t moved = 0;
    int rc = rush_data_dir_set_aside(data_dir, aside, &moved, why, why_size);
    if (rc == 0 && moved > 0)
        rush_log(RUSH_LOG_INFO,
                 "cluster: %u local log files set aside in %s/%s; rebuilding from "
                 "the replicated log",
                 moved, data_dir, aside);
    return rc;
}

static int engine_open(struct rush_server *server, const struct rush_server_options *options,
                       char *why, size_t why_size)
{
    struct rush_engine_config *config = &server->engine_config;
    int rc = rush_server_engine_config(server->campaign, options->shards, config, why, why_size);
    if (rc == 0)
        rc = rush_server_apply_durability(config, server->campaign, options, why, why_size);
    if (rc < 0)
        return rc;
    if (server->campaign->cluster.node_count > 0) {
        /* Replicated (ARCHITECTURE.md "Cluster"): the cluster's hooks go into the engine. */
        rc = rush_cluster_create(&server->campaign->cluster, config->shard_count, &server->cluster,
                                 why, why_size);
        if (rc < 0)
            return rc;
        rush_cluster_replica(server->cluster, &config->replica);
        if ((rc = cluster_set_log_aside(config->data_dir, why, why_size)) < 0)
            return rc;
        if (config->limits.events_buffer_max > RUSH_CLUSTER_EVENTS_BUFFER_MAX)
            config->limits.events_buffer_max = RUSH_CLUSTER_EVENTS_BUFFER_MAX;
    }
    rush_log(RUSH_LOG_INFO,
             "engine: %u shards, %u ring slots; per shard %u SKUs, %u orders, %u groups, %u keys",
             config->shard_count, config->ring_slots, config->limits.skus_max,
             config->limits.orders_max, config->limits.groups_max, config->limits.keys_max);
    rc = rush_engine_create(config, &server->engine);
    if (rc == 0) {
        rc = rush_engine_start(server->engine);
        if (rc < 0)
            snprintf(why, why_size, "engine start: %s", rush_strerror(rc));
        if (rc == 0 && server->cluster != NULL)
            rc = rush_cluster_start(server->cluster, server->engine,
                                    RUSH_SERVER_CLUSTER_WAIT_LEASES *
                                        server->campaign->cluster.lease_ms,
                                    why, why_size);
    } else {
        snprintf(why, why_size, "engine create: %s", rush_strerror(rc));
    }
    /* Every batch in flight holds a work item until it is back in the ready queue, which holds
     * one per work item: so no more batches than work items (server.h, invariant 2). */
    uint64_t ready_max = (uint64_t)config->shard_count * config->ring_slots;
    server->batches_in_flight_max = ready_max < UINT32_MAX ? (uint32_t)ready_max : UINT32_MAX;
    if (rc == 0 && rush_server_packs_create(server) < 0) {
        snprintf(why, why_size, "out of memory for %u packs", config->shard_count);
        rc = -ENOMEM;
    }
    return rc;
}

static int publisher_open(struct rush_server *server, const struct rush_server_options *options,
                          char *why, size_t why_size)
{
    const struct rush_campaign_endpoints *urls = &server->campaign->endpoints;
    struct rush_publisher_config config = {
        .pub_url = options->publisher_url ? options->publisher_url : urls->publisher,
        .replay_url = options->replay_url ? options->replay_url : urls->replay,
        .data_dir = server->engine_config.data_dir,
        .on_events = server->ops ? rush_ops_on_events : NULL,
        .on_events_context = server->ops,
    };
    if (config.pub_url[0] == '\0' || config.replay_url[0] == '\0') {
        rush_log(RUSH_LOG_INFO, "publisher: off (no publisher or replay endpoint)");
        return 0;
    }
    if (server->engine_config.durability == RUSH_DURABILITY_NONE) {
        rush_log(RUSH_LOG_WARN, "publisher: off: durability none writes no log to publish from");
        return 0;
    }
    char reason[400];
    int rc =
        rush_publisher_create(&config, server->engine, &server->publisher, reason, sizeof(reason));
    if (rc < 0) {
        snprintf(why, why_size, "publisher: %s", reason);
        return rc;
    }
    rush_log(RUSH_LOG_INFO, "publisher on %s, replay on %s", config.pub_url, config.replay_url);
    return 0;
}

int rush_server_create(const struct rush_server_options *options, struct rush_server **out,
                       char *why, size_t why_size)
{
    RUSH_ASSERT(options != NULL && options->campaign != NULL && out != NULL);
    *out = NULL;
    struct rush_server *server = calloc(1, sizeof(*server));
    if (server == NULL)
        return -ENOMEM;
    server->campaign = options->campaign;
    server->wake_pipe[0] = server->wake_pipe[1] = -1;
    server->audit_fd = -1;
    for (int e = 0; e < RUSH_ENDPOINT_COUNT_; e++)
        server->sockets[e] = server->receive_fds[e] = -1;
    snprintf(server->data_dir, sizeof(server->data_dir), "%s",
             rush_server_data_dir(options->campaign, options));
    server->handlers[RUSH_ENDPOINT_ORDERS] = &rush_server_binary_handlers;
    server->handlers[RUSH_ENDPOINT_JSON] = &rush_server_json_handlers;
    server->handlers[RUSH_ENDPOINT_ADMIN] = &rush_server_admin_handlers;
    int rc = rush_server_slots_create(server);
    if (rc < 0) {
        snprintf(why, why_size, "out of memory for %d in-flight slots", RUSH_SERVER_IN_FLIGHT_MAX);
        goto out_destroy;
    }
    if (pipe2(server->wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        rc = -errno;
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        goto out_destroy;
    }
    rc = engine_open(server, options, why, why_size);
    if (rc == 0)
        rc = rush_server_put_campaign(server, why, why_size);
    if (rc == 0)
        rc = rush_server_prepare_token(server, why, why_size);
    if (rc == 0)
        rc = endpoints_open(server, options, why, why_size);
    if (rc == 0 && (rc = rush_server_ops_open(server, options)) < 0)
        snprintf(why, why_size, "out of memory for the HTTP console");
    if (rc == 0)
        rc = publisher_open(server, options, why, why_size);
    if (rc == 0)
        rc = rush_server_ops_start(server, options, why, why_size);
    if (rc < 0)
        goto out_destroy;
    server->started_ns = rush_server_now_ns();
    *out = server;
    return 0;
out_destroy:
    rush_server_destroy(server);
    return rc;
}

void rush_server_destroy(struct rush_server *server)
{
    if (server == NULL)
        return;
    rush_ops_stop(server->ops); /* its thread reads the publisher and the engine */
    for (int e = 0; e < RUSH_ENDPOINT_COUNT_; e++)
        if (server->sockets[e] >= 0)
            nn_close(server->sockets[e]);
    /* Publishes what is durable; reads the engine, so it goes first. */
    rush_publisher_destroy(server->publisher);
    /* No lease is renewed after this: the shards it leads stop by their lease deadline. */
    rush_cluster_stop(server->cluster);
    /* Finishes what was submitted, so no shard writes into a slot after this. */
    if (server->engine != NULL)
        rush_engine_destroy(server->engine);
    rush_cluster_destroy(server->cluster); /* its replicators ship until the engine is gone */
    rush_ops_destroy(server->ops);         /* after the engine: a ledger batch may have been out */
    for (uint32_t i = 0; server->slots != NULL && i < RUSH_SERVER_IN_FLIGHT_MAX; i++) {
        if (server->slots[i].control != NULL && !server->on_tcp[server->slots[i].endpoint])
            nn_freemsg(server->slots[i].control); /* sp_server.c's origins are in its pool */
    }
    if (server->wake_pipe[0] >= 0)
        close(server->wake_pipe[0]);
    if (server->wake_pipe[1] >= 0)
        close(server->wake_pipe[1]);
    rush_sp_server_destroy(server->tcp);
    rush_server_slots_free(server);
    rush_server_audit_close(server);
    rush_server_packs_free(server);
    explicit_bzero(server->admin_token, sizeof(server->admin_token));
    free(server);
}

const char *rush_server_admin_token(const struct rush_server *server)
{
    return server->admin_token;
}
