/*
 * server.h — rushd's front end: nanomsg endpoints in, the threaded engine behind, replies out.
 *
 * What and why. Gateways talk to rush over nanomsg REQ/REP (proto/PROTOCOL.md section 7). The
 * server binds three endpoints, each a raw REP socket (AF_SP_RAW, NN_REP) so that many requests
 * are in flight at once and each is answered as soon as its batch is decided, in any order:
 *
 *   orders  binary protocol: REQUEST messages, answered by RESULT (or ERROR)
 *   json    one JSON object per message (proto/codec/json.h), answered by one JSON object
 *   admin   JSON admin commands carrying "token": sku_put, adjust, pause, resume, queries, stats,
 *           snapshot
 *
 * and starts the publisher (publisher.h: its own PUB and replay endpoints and threads) when the
 * engine writes a log, and the read-only HTTP console (engine/ops/ops.h: /metrics, the
 * dashboard) on its own thread.
 *
 * A plain REQ socket from any nanomsg or NNG client works unchanged: the raw socket hands the
 * backtrace (the request id and any device hops) to the server as control data, and the server
 * sends it back with the reply. A tcp:// endpoint is served by rushd itself (sp_server.c: the
 * same SP-over-TCP wire, read and written on the front-end thread so that a turn's replies to
 * one connection leave in one send); ipc:// and the rest, or every endpoint with
 * options.tcp_nanomsg, go through the raw REP socket.
 *
 * Workload. One front-end thread runs rush_server_run(): poll(2) over the sockets' receive fds,
 * sp_server.c's epoll fd and the engine's eventfd, receive up to RUSH_SERVER_RECEIVE_BURST_MAX
 * messages per socket per turn (every whole message a tcp:// connection's reads brought), copy
 * each message's records into an in-flight slot, and reply to every batch that rush_engine_poll()
 * hands back. Most gateways send one order per message, so small messages
 * (up to RUSH_SERVER_SMALL_RECORDS requests) are coalesced: every one taken in a turn goes into
 * one engine batch per shard (a pack, server_pack.c), and each message is answered as soon as
 * the packs holding its requests are decided. A large message (up to RUSH_WIRE_REQUESTS_MAX
 * requests) is its own batch. Slots come in four sizes (RUSH_SERVER_ONE_SLOTS one-record,
 * RUSH_SERVER_SMALL_SLOTS small, RUSH_SERVER_MEDIUM_SLOTS medium, RUSH_SERVER_LARGE_SLOTS
 * large), all allocated at create; a message takes the smallest free one that holds it.
 *
 * Budgets. What is held in flight is counted in requests (RUSH_SERVER_REQUESTS_IN_FLIGHT_MAX)
 * and message bytes (RUSH_SERVER_BYTES_IN_FLIGHT_MAX), not in messages, so a thousand one-order
 * messages take no more of the budget than one thousand-order message. A message over a budget,
 * one that finds no slot of its size, or a large one whose batch the engine refuses (full ring)
 * is answered at once with every request `busy`: nothing queues without bound. A small message
 * that finds every pack of its shard in flight waits, in its slot, for one to come back.
 *
 * Admin commands are rare and run synchronously on the front-end thread (rush_engine_execute,
 * rush_engine_sku_put); batches of other messages decided meanwhile stay queued in the engine
 * and are answered on the next turn.
 *
 * Slot life (server_slots.c makes every transition; server.c hands back decided batches):
 *
 *   free --slot_take (receive)--> filled --rush_engine_submit--> in flight
 *     ^                             |  busy / all invalid               | rush_engine_poll
 *     +------- slot_give <----------+------------- replied <------------+
 *
 * Invariants.
 *   1. Every message received gets exactly one reply, sent with the control header it came with.
 *   2. in_flight counts the slots submitted (packed, waiting for a pack, or in their own batch)
 *      and not yet replied, requests_in_flight and bytes_in_flight their requests and bytes;
 *      each stays within its maximum. batches_in_flight (packs and large messages' batches)
 *      never exceeds what the engine's ready queue can hold (shards * ring_slots).
 *   3. Results go back in request order: result i answers request i of the message.
 *   4. After rush_server_stop() no new message is received; rush_server_run() returns once every
 *      in-flight slot is replied (or RUSH_SERVER_DRAIN_MS_MAX has passed).
 *
 * Threads. rush_server_create, _run and _destroy on one thread; rush_server_stop from any thread
 * or a signal handler (it is async-signal-safe).
 */
#ifndef RUSH_SERVER_H
#define RUSH_SERVER_H

#include "campaign/campaign.h"
#include "rush/engine.h"
#include "rush/types.h"

#define RUSH_SERVER_ONE_SLOTS 16384     /* one-record messages in flight at once */
#define RUSH_SERVER_SMALL_RECORDS 64    /* requests a small slot holds */
#define RUSH_SERVER_SMALL_SLOTS 1024    /* small messages in flight at once */
#define RUSH_SERVER_MEDIUM_RECORDS 1024 /* requests a medium slot holds */
#define RUSH_SERVER_MEDIUM_SLOTS 256    /* medium messages in flight at once */
#define RUSH_SERVER_LARGE_SLOTS 16      /* large messages in flight at once */
#define RUSH_SERVER_IN_FLIGHT_MAX                                                                  \
    (RUSH_SERVER_ONE_SLOTS + RUSH_SERVER_SMALL_SLOTS + RUSH_SERVER_MEDIUM_SLOTS +                  \
     RUSH_SERVER_LARGE_SLOTS)
/* The budgets: requests and message bytes held at once, whatever the number of messages. */
#define RUSH_SERVER_REQUESTS_IN_FLIGHT_MAX 262144
#define RUSH_SERVER_BYTES_IN_FLIGHT_MAX (64u << 20)
#define RUSH_SERVER_RECEIVE_BURST_MAX 1024 /* messages taken from one socket per loop turn */
/* Packs: engine batches of many small messages' requests, per shard (server_pack.c). 64 of
 * 1024 requests per shard: a turn every few microseconds while an fdatasync takes a millisecond
 * or more keeps dozens in flight, each a work item. */
#define RUSH_SERVER_PACKS_PER_SHARD 64
#define RUSH_SERVER_PACK_REQUESTS_MAX 1024 /* and at most the engine's work_requests_max */
#define RUSH_SERVER_DONE_MAX 64            /* decided batches taken per rush_engine_poll */
#define RUSH_SERVER_DRAIN_MS_MAX 10000     /* shutdown: longest wait for in-flight batches */
#define RUSH_SERVER_SHARDS_DEFAULT 2       /* neither --shards nor [engine] shards given */
#define RUSH_SERVER_SKUS_HEADROOM 1024     /* SKU slots per shard beyond the campaign's count */
/* In a cluster, rushd waits up to this many lease periods (+ the lease rounds) at start for every
 * shard to have a leader (its own or another node) before it puts the campaign's SKUs. */
#define RUSH_SERVER_CLUSTER_WAIT_LEASES 4
#define RUSH_SERVER_DATA_DIR_DEFAULT "data"
#define RUSH_SERVER_TOKEN_FILE "admin.token"
#define RUSH_SERVER_WHY_BYTES 600

/* What rushd's command line adds to the campaign. NULL or 0: the campaign's value. */
struct rush_server_options {
    const struct rush_campaign *campaign; /* borrowed; must outlive the server */
    const char *orders_url;
    const char *json_url;
    const char *admin_url;
    const char *publisher_url; /* "": no publisher */
    const char *replay_url;
    const char *http_address; /* HOST:PORT of the HTTP console; "": off; NULL: the campaign's */
    const char *data_dir;     /* NULL: the campaign's data_dir, else RUSH_SERVER_DATA_DIR_DEFAULT */
    uint32_t shards;
    bool tcp_nanomsg; /* tcp:// endpoints through nanomsg instead of sp_server.c */
};

struct rush_server;

/*
 * Builds the engine configuration for a campaign: rush_engine_config_default() with the
 * campaign's [engine] numbers applied where they are not zero, `shards` (when not 0) overriding
 * the campaign's shard count, and enough SKU slots for every campaign SKU. Checks the result.
 * 0, or RUSH_ECONFIG with the reason in why.
 */
RUSH_MUST_USE int rush_server_engine_config(const struct rush_campaign *campaign, uint32_t shards,
                                            struct rush_engine_config *config, char *why,
                                            size_t why_size);

/*
 * Creates the engine, starts it, puts every campaign SKU, prepares the admin token (the
 * campaign's, or a random one written to DATA_DIR/admin.token with mode 0600) and binds the
 * endpoints. 0, or < 0 with the reason in why (nothing is left running).
 */
RUSH_MUST_USE int rush_server_create(const struct rush_server_options *options,
                                     struct rush_server **out, char *why, size_t why_size);
/* Serves until rush_server_stop(), then answers what is in flight. 0, or < 0 on a fatal error. */
RUSH_MUST_USE int rush_server_run(struct rush_server *server);
/* Asks rush_server_run() to stop taking requests. Async-signal-safe. */
void rush_server_stop(struct rush_server *server);
/* Stops the engine and closes everything. Safe on NULL. */
void rush_server_destroy(struct rush_server *server);

/* The admin token in force (for logs and tests). */
const char *rush_server_admin_token(const struct rush_server *server);

#endif
