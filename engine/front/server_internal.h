/*
 * server_internal.h — the server's state, shared by the front end's files. Calls go one way:
 *
 *   server.c (loop, endpoints, create)  --handler table-->  server_orders.c, server_admin.c
 *        |                                                        |
 *        +--> server_config.c (campaign to engine, token)         |
 *        +--> server_slots.c (slot life) <------------------------+
 *        |         |  replies through the handler table            |
 *        |         +--> server_reply.c (send, error replies) <-----+
 *        |         |
 *        +---------+--> server_pack.c (coalescing into engine batches; calls the engine only)
 *
 * No file calls a function of a file above it; server_slots.c reaches an endpoint's reply only
 * through server->handlers. Not for use outside engine/front/.
 *
 * Threads: everything here belongs to the front-end thread, except `stopping` and the wake pipe,
 * which rush_server_stop() touches from any thread or a signal handler.
 */
#ifndef RUSH_SERVER_INTERNAL_H
#define RUSH_SERVER_INTERNAL_H

#include <stdatomic.h>

#include "cluster/cluster.h"
#include "codec/json.h"
#include "ops/ops.h"
#include "rush/wire.h"
#include "server.h"
#include "sp_server.h"
#include "stream/publisher.h"

enum rush_endpoint {
    RUSH_ENDPOINT_ORDERS = 0,
    RUSH_ENDPOINT_JSON = 1,
    RUSH_ENDPOINT_ADMIN = 2,
    RUSH_ENDPOINT_COUNT_ = 3,
};

/* Replies to JSON messages are at most this long (a query answer is well under 1 KiB). */
#define RUSH_SERVER_TEXT_BYTES_MAX 4096
/* nanomsg counts a REQ's request id (4 bytes of backtrace, one more per device hop) against the
 * receive limit: a direct client's message of exactly twice the limit needs these on top. */
#define RUSH_SERVER_BACKTRACE_BYTES 4
/* Admin and JSON endpoints take messages up to twice the JSON limit, so that an oversized one is
 * answered by the decoder's reason instead of nanomsg dropping the connection. */
#define RUSH_SERVER_JSON_RECEIVE_BYTES_MAX                                                         \
    (2 * RUSH_JSON_MESSAGE_BYTES_MAX + RUSH_SERVER_BACKTRACE_BYTES)
/* The same for the binary endpoint. */
#define RUSH_SERVER_WIRE_RECEIVE_BYTES_MAX                                                         \
    (2 * RUSH_WIRE_MESSAGE_BYTES_MAX + RUSH_SERVER_BACKTRACE_BYTES)

/* A received message: body and control header (backtrace) as nanomsg allocated them. */
struct rush_server_message {
    enum rush_endpoint endpoint;
    void *control; /* NN_MSG chunk, owned until a reply is sent with it */
    const void *body;
    size_t len;
};

/* Slot sizes: a one-record message (every JSON one, most gateways' binary ones), a small one
 * (up to RUSH_SERVER_SMALL_RECORDS records), a medium one (up to RUSH_SERVER_MEDIUM_RECORDS), a
 * large one (up to RUSH_WIRE_REQUESTS_MAX). */
enum rush_slot_class {
    RUSH_SLOT_ONE = 0,
    RUSH_SLOT_SMALL = 1,
    RUSH_SLOT_MEDIUM = 2,
    RUSH_SLOT_LARGE = 3,
    RUSH_SLOT_CLASS_COUNT_ = 4,
};

/* One message in flight (see the slot life in server.h). */
struct rush_server_slot {
    struct rush_batch batch; /* a large message's own batch; batch.context points at the slot */
    enum rush_endpoint endpoint;
    void *control;
    uint64_t message_id;
    uint32_t count;       /* records in the message */
    uint32_t valid_count; /* records handed to the engine: requests[0 .. valid_count) */
    uint32_t capacity;
    uint32_t bytes;   /* the message's size, counted against the bytes budget */
    uint32_t pending; /* packed requests not yet back from the engine */
    bool packed;      /* its requests went into packs (else into its own batch) */
    enum rush_slot_class slot_class;
    struct rush_request *requests;
    struct rush_result *results; /* [0, valid_count): the engine's; then the invalid ones' */
    uint8_t *reasons;            /* per message record: why it is invalid, or REASON_NONE */
    int64_t received_ns;         /* when its message was taken (end-to-end latency) */
};

/*
 * A pack: one engine batch carrying the requests of many messages bound for one shard
 * (server_pack.c). Each request remembers its slot and its index there, so the results go back
 * to every message as soon as the pack is decided.
 */
struct rush_server_pack {
    struct rush_batch batch; /* batch.context points back at the pack */
    uint32_t shard;
    uint32_t count; /* requests packed */
    struct rush_request *requests;
    struct rush_result *results;
    struct rush_server_slot **owners; /* per request: the slot it came in */
    uint32_t *positions;              /* per request: its index in that slot's requests */
};

struct rush_server_counters {
    uint64_t messages[RUSH_ENDPOINT_COUNT_];
    uint64_t requests;
    uint64_t errors;        /* messages answered with an ERROR or a JSON decode error */
    uint64_t busy_messages; /* messages answered busy: over a budget, or the engine full */
    uint64_t busy_no_slot;  /* of those, the ones that found every slot taken */
    uint64_t packs;         /* packs submitted */
    uint64_t packed_messages;
    uint64_t outcomes[RUSH_OUTCOME_COUNT_];
    uint64_t send_failures;
    uint64_t wal_failed_replies; /* replies with outcome_unknown results: a log failed */
    uint64_t fenced_replies;     /* replies with outcome_unknown results: a shard was fenced */
};

struct rush_server {
    const struct rush_campaign *campaign;
    struct rush_engine *engine;
    struct rush_engine_config engine_config;
    struct rush_publisher *publisher;  /* NULL: none (no log, or no endpoint) */
    struct rush_cluster *cluster;      /* NULL: a single machine (no [cluster]) */
    int sockets[RUSH_ENDPOINT_COUNT_]; /* nanomsg's, or -1: the endpoint is `tcp`'s */
    int receive_fds[RUSH_ENDPOINT_COUNT_];
    struct rush_sp_server *tcp; /* rushd's own tcp:// transport; NULL: no endpoint on it */
    bool on_tcp[RUSH_ENDPOINT_COUNT_];
    char urls[RUSH_ENDPOINT_COUNT_][RUSH_ENDPOINT_BYTES_MAX];
    const struct rush_server_handlers *handlers[RUSH_ENDPOINT_COUNT_]; /* set at create */
    int wake_pipe[2];
    atomic_bool stopping;
    char admin_token[RUSH_ADMIN_TOKEN_BYTES_MAX + 1];
    char data_dir[RUSH_DATA_DIR_BYTES_MAX];
    int64_t started_ns;

    struct rush_server_slot *slots; /* RUSH_SERVER_IN_FLIGHT_MAX: one-record, small, large */
    struct rush_server_slot **free_slots[RUSH_SLOT_CLASS_COUNT_];
    uint32_t free_counts[RUSH_SLOT_CLASS_COUNT_];
    struct rush_request *slot_requests[RUSH_SLOT_CLASS_COUNT_];
    struct rush_result *slot_results[RUSH_SLOT_CLASS_COUNT_];
    uint8_t *slot_reasons[RUSH_SLOT_CLASS_COUNT_];
    struct rush_server_slot overflow; /* a message answered busy at once; never submitted */
    /* The in-flight budgets (server.h): messages held, their requests and their bytes. */
    uint32_t in_flight;
    uint32_t in_flight_max;
    uint64_t requests_in_flight;
    uint64_t requests_in_flight_max;
    uint64_t bytes_in_flight;
    uint64_t bytes_in_flight_max;
    /* Engine batches submitted and not yet handed back (packs and large messages' own). */
    uint32_t batches_in_flight;
    uint32_t batches_in_flight_max; /* what the engine's ready queue holds */

    /* Packs (server_pack.c): per shard RUSH_SERVER_PACKS_PER_SHARD, one of them open. */
    struct rush_server_pack *packs;
    uint32_t pack_count;
    uint32_t pack_requests_max;
    struct rush_server_pack **free_packs; /* per shard, RUSH_SERVER_PACKS_PER_SHARD each */
    uint32_t free_pack_counts[RUSH_SHARDS_MAX];
    struct rush_server_pack *open_packs[RUSH_SHARDS_MAX]; /* filling, not yet submitted */
    struct rush_server_slot **whole;   /* scratch: slots a returning pack completed */
    struct rush_server_slot **waiting; /* FIFO of small messages waiting for a free pack */
    uint32_t waiting_head;
    uint32_t waiting_count;

    struct rush_result *merged; /* RUSH_WIRE_REQUESTS_MAX results in message order */
    uint8_t *reply;             /* RUSH_WIRE_MESSAGE_BYTES_MAX, 8-byte aligned */
    char text[RUSH_SERVER_TEXT_BYTES_MAX];
    struct rush_server_counters counters;
    struct rush_ops *ops; /* the HTTP console (engine/ops/); NULL: none */
    int audit_fd;         /* DATA_DIR/audit.log: -1 not open yet, -2 failed (server_audit.c) */
    bool ops_pending;     /* its ledger batch is with the engine */
};

/*
 * One endpoint's handlers: the loop (server.c) reaches the endpoints only through this table,
 * registered at create, so that no endpoint file calls back into the loop (ARCHITECTURE: arrows
 * go one way). on_message answers a received message or takes it into a slot; on_decided replies
 * to a slot of this endpoint once its batch is decided (or refused); NULL for an endpoint whose
 * messages never wait in a slot.
 */
struct rush_server_handlers {
    void (*on_message)(struct rush_server *server, struct rush_server_message *message);
    void (*on_decided)(struct rush_server *server, struct rush_server_slot *slot);
};

/* server_orders.c */
extern const struct rush_server_handlers rush_server_binary_handlers;
extern const struct rush_server_handlers rush_server_json_handlers;

/* server_admin.c */
extern const struct rush_server_handlers rush_server_admin_handlers;

/* server_slots.c: the slot life (server.h); calls nothing above it but through the table. */
RUSH_MUST_USE int rush_server_slots_create(struct rush_server *server);
void rush_server_slots_free(struct rush_server *server);
/* A free slot for a message of `count` records and `bytes` bytes, or the overflow slot (to be
 * answered busy) when no slot is free or the message would pass a budget. */
struct rush_server_slot *rush_server_slot_take(struct rush_server *server, uint32_t count,
                                               size_t bytes);
void rush_server_slot_give(struct rush_server *server, struct rush_server_slot *slot);
/* Packs the slot's valid requests (or submits a large message's own batch), or answers at once
 * (none valid, busy). Takes the slot. */
void rush_server_slot_submit(struct rush_server *server, struct rush_server_slot *slot);
/* A batch rush_engine_poll handed back (a pack or a large message's own): every message it
 * completes is replied, and its slot is free again. */
void rush_server_batch_decided(struct rush_server *server, struct rush_batch *batch);

/* server_pack.c: packs; calls the engine, nothing in the front end. */
RUSH_MUST_USE int rush_server_packs_create(struct rush_server *server);
void rush_server_packs_free(struct rush_server *server);
/* Packs the slot's valid requests into their shards' open packs, or queues the message until a
 * pack is free (it is never refused). */
void rush_server_pack_add(struct rush_server *server, struct rush_server_slot *slot);
/* Packs the waiting messages that fit, then submits every open pack the engine takes now; a
 * refused one stays open for the next turn. */
void rush_server_packs_flush(struct rush_server *server);
/* The pack a batch is, or NULL (a large message's own batch). */
struct rush_server_pack *rush_server_pack_of(struct rush_server *server, struct rush_batch *batch);
/* A pack is back: its results go to their slots; the slots it completed are stored in
 * server->whole (returns how many), and the pack is free again. */
uint32_t rush_server_pack_scatter(struct rush_server *server, struct rush_server_pack *pack);

/* server_reply.c: sending, shared by every endpoint; calls nothing in the front end but
 * sp_server.c. */
/* Sends body with *control (consumed: set to NULL) on the endpoint's socket. */
void rush_server_send(struct rush_server *server, enum rush_endpoint endpoint, void **control,
                      const void *body, size_t len);
/* Sends a binary ERROR echoing message_id. */
void rush_server_send_wire_error(struct rush_server *server, struct rush_server_message *message,
                                 uint64_t message_id, const struct rush_wire_error *error);
/* Sends {"outcome":"invalid","reason":why}. */
void rush_server_send_json_error(struct rush_server *server, struct rush_server_message *message,
                                 const char *why);
/* True for the ops only the admin endpoint takes. */
bool rush_server_op_is_admin(uint8_t op);
/* CLOCK_MONOTONIC in nanoseconds (uptime, drain deadline). */
int64_t rush_server_now_ns(void);
/* The endpoint's name in logs: "orders", "json", "admin". */
const char *rush_server_endpoint_name(enum rush_endpoint endpoint);

/* server_ops.c: the console's hooks; calls nothing in the front end but server_reply.c. */
RUSH_MUST_USE int rush_server_ops_open(struct rush_server *server,
                                       const struct rush_server_options *options);
RUSH_MUST_USE int rush_server_ops_start(struct rush_server *server,
                                        const struct rush_server_options *options, char *why,
                                        size_t why_size);
/* Once per loop turn: publishes the front end's counters, submits a due ledger batch. */
void rush_server_ops_turn(struct rush_server *server);
/* True (and handled) when `batch` is the console's ledger batch. */
bool rush_server_ops_delivered(struct rush_server *server, struct rush_batch *batch);
/* A slot's batch is decided: counts its requests by op and outcome, and its latency. */
void rush_server_ops_decided(struct rush_server *server, const struct rush_server_slot *slot);

/* server_audit.c: who did what and why on the admin endpoint; calls nothing in the front end. */
#define RUSH_AUDIT_OPERATOR_BYTES_MAX 64
#define RUSH_AUDIT_REASON_BYTES_MAX 256
struct rush_server_audit {
    char operator_name[RUSH_AUDIT_OPERATOR_BYTES_MAX + 1];
    char reason[RUSH_AUDIT_REASON_BYTES_MAX + 1];
};
struct json_t;
/* Takes "operator" and "reason" out of `root` ("-" when absent); 0, or RUSH_EPROTO with why. */
RUSH_MUST_USE int rush_server_audit_take(struct json_t *root, struct rush_server_audit *audit,
                                         char *why, size_t why_size);
/* One admin action: a line in DATA_DIR/audit.log (fdatasync'ed) and in rushd's log. */
void rush_server_audit_record(struct rush_server *server, const struct rush_server_audit *audit,
                              const char *action, uint64_t sku_id, int64_t amount,
                              const char *outcome);
void rush_server_audit_close(struct rush_server *server);

/* server_config.c */
RUSH_MUST_USE int rush_server_prepare_token(struct rush_server *server, char *why, size_t why_size);
RUSH_MUST_USE int rush_server_put_campaign(struct rush_server *server, char *why, size_t why_size);
/* --data-dir, else the campaign's data_dir, else RUSH_SERVER_DATA_DIR_DEFAULT. */
const char *rush_server_data_dir(const struct rush_campaign *campaign,
                                 const struct rush_server_options *args);
RUSH_MUST_USE int rush_server_apply_durability(struct rush_engine_config *config,
                                               const struct rush_campaign *campaign,
                                               const struct rush_server_options *args, char *why,
                                               size_t why_size);

#endif
