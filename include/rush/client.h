/*
 * rush/client.h — the C client library of rush (librush): send orders to rushd, get results.
 *
 * This header is the manual. Link with `pkg-config --cflags --libs rush`.
 *
 * What it does. A gateway process opens one client per rushd endpoint and shares it between
 * all of its threads. Each call to rush_client_submit() hands a few requests (often one) to the
 * client and blocks until their results are back. Concurrent submits are batched: the client's
 * I/O thread packs the requests of many callers into ONE binary wire message (PROTOCOL.md), sends
 * it, and scatters the results of the reply back to each caller. A gateway serving 10,000 users
 * at once therefore pays one syscall, one wake-up and one engine batch per message, not per
 * order. rush_client_submit_async() does the same without blocking: a callback gets the results.
 *
 * Batching rule. When requests wait and a message slot is free, the I/O thread sends at once if
 * batch_requests_max requests are waiting; otherwise it waits at most batch_delay_us after the
 * oldest waiting request arrived, then sends what is there. While all inflight_max message slots
 * are in flight, requests keep collecting, so under load messages fill up without any delay.
 * A submit of more than batch_requests_max requests is split over several messages; one call
 * still gets one answer. Requests of one call stay in their order; requests of different calls
 * carry no order between them.
 *
 * Timeouts and retries (safe by construction). A message without a reply within timeout_ms is
 * sent again, byte for byte: same message id, same requests, same idempotency keys. rushd
 * answers a key it has already decided with the original result, flagged
 * RUSH_RESULT_DUPLICATE, so a retry can never order twice. After retries_max resends without a
 * reply the callers get RUSH_ETIMEDOUT; their requests may or may not have been decided, and
 * submitting them again with the same keys is the way to find out. Every mutating request must
 * therefore carry a key (rush_client_key(), rush_client_key_random()); queries carry the zero
 * key.
 *
 * Errors. Functions return 0, or a negative -errno or RUSH_E* code (rush/types.h); name it with
 * rush_strerror(). Business outcomes (sold_out, duplicate, ...) are not errors: they are in each
 * struct rush_result. When rushd refuses a whole message with an ERROR reply, every caller whose
 * requests were in it gets RUSH_EPROTO and rush_client_last_error() gives the server's text; an
 * ERROR means nothing in the message was decided.
 *
 * Outcome unknown. A result with outcome RUSH_OUTCOME_UNKNOWN is neither a refusal nor a
 * decision: rushd's write-ahead log failed (a full disk) before that request's batch was durable,
 * so it may or may not have taken effect (and may be in the confirmed-order stream). Never tell a
 * buyer "failed" and never sell the units elsewhere on it: submit the same request with the same
 * key again once rushd runs again; the answer is the original decision (RUSH_RESULT_DUPLICATE) if
 * it was logged, a fresh one if not. The other results of the same submit are real decisions.
 *
 * Threads. Every function may be called from any thread, except that rush_client_close() must
 * not race with a submit on the same client, and a callback must not call rush_client_submit()
 * or rush_client_close() (it runs on the I/O thread: -EDEADLK). The client owns one I/O thread,
 * which runs every callback; keep callbacks short.
 *
 * Memory. rush_client_open() allocates everything the client needs (inflight_max message
 * buffers of batch_requests_max requests, async_max async submissions); nothing is allocated per
 * submit. Requests and results arrays stay the caller's: they must stay valid until the submit
 * returns (sync) or the callback has run (async).
 */
#ifndef RUSH_CLIENT_H
#define RUSH_CLIENT_H

#include "rush/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits on struct rush_client_config. */
#define RUSH_CLIENT_URL_BYTES_MAX 256          /* url, NUL included */
#define RUSH_CLIENT_TIMEOUT_MS_MAX 3600000u    /* one hour per attempt */
#define RUSH_CLIENT_RETRIES_MAX 100u           /* resends after the first send */
#define RUSH_CLIENT_BATCH_DELAY_US_MAX 100000u /* 100 ms */
#define RUSH_CLIENT_INFLIGHT_MAX 256u          /* messages in flight at once */
#define RUSH_CLIENT_ASYNC_MAX 65536u           /* async submissions waiting at once */
/* batch_requests_max is at most RUSH_WIRE_REQUESTS_MAX (16383, rush/wire.h). */

/* Text of the last error; see rush_client_last_error(). */
#define RUSH_CLIENT_ERROR_BYTES 160

/*
 * Configuration. Start from rush_client_config_default() and change what you need.
 *
 *   url                 nanomsg address of rushd's binary orders endpoint, e.g.
 *                       "tcp://127.0.0.1:7100" or "ipc:///tmp/rush-orders.ipc". Copied.
 *   timeout_ms          1 .. RUSH_CLIENT_TIMEOUT_MS_MAX: how long one attempt waits for a reply.
 *   retries_max         0 .. RUSH_CLIENT_RETRIES_MAX: resends after the first send. A caller
 *                       waits at most about (retries_max + 1) * timeout_ms + batch_delay_us.
 *   batch_delay_us      0 .. RUSH_CLIENT_BATCH_DELAY_US_MAX: how long the oldest waiting request
 *                       may wait for others to join its message. 0 sends at once.
 *   batch_requests_max  1 .. RUSH_WIRE_REQUESTS_MAX: requests per message.
 *   inflight_max        1 .. RUSH_CLIENT_INFLIGHT_MAX: messages awaiting replies at once.
 *   async_max           1 .. RUSH_CLIENT_ASYNC_MAX: async submissions not yet called back;
 *                       one more is refused with RUSH_EFULL.
 */
struct rush_client_config {
    const char *url;
    uint32_t timeout_ms;
    uint32_t retries_max;
    uint32_t batch_delay_us;
    uint32_t batch_requests_max;
    uint32_t inflight_max;
    uint32_t async_max;
};

/*
 * Fills `config` with the defaults: url "tcp://127.0.0.1:7100", timeout_ms 1000, retries_max 3,
 * batch_delay_us 200, batch_requests_max 1024, inflight_max 16, async_max 4096.
 */
void rush_client_config_default(struct rush_client_config *config);

/*
 * Checks a configuration against the limits above. Returns 0 or RUSH_ECONFIG, and when `why` is
 * not NULL writes the reason (e.g. "timeout_ms 0 is out of range 1..3600000") into
 * why[0 .. why_size).
 */
RUSH_MUST_USE int rush_client_config_check(const struct rush_client_config *config, char *why,
                                           size_t why_size);

struct rush_client;

/*
 * Opens a client: checks the configuration, allocates the client, connects a nanomsg socket to
 * config->url and starts the I/O thread. Connecting is asynchronous: rushd need not be up yet,
 * and a message sent while it is down is retried like any other. Returns 0 and sets *out, or
 * RUSH_ECONFIG (bad configuration; rush_client_last_error() says why), -EINVAL (a url nanomsg
 * does not take), -ENOMEM, or another -errno.
 */
RUSH_MUST_USE int rush_client_open(const struct rush_client_config *config,
                                   struct rush_client **out);

/*
 * Stops the I/O thread and frees the client. Submissions still waiting or in flight are
 * answered RUSH_ESTOPPED (async callbacks run before this returns). NULL is a no-op.
 */
void rush_client_close(struct rush_client *client);

/*
 * Submits `count` requests (1 .. RUSH_WIRE_REQUESTS_MAX) and waits for their results:
 * results[i] answers requests[i]. Returns 0 when every result is filled in (look at each
 * outcome), or:
 *   -EINVAL          count out of range, a NULL array, or a request whose reserved fields
 *                    (flags, pad) are not zero — nothing was sent
 *   RUSH_ETIMEDOUT   no reply after retries_max resends
 *   RUSH_EPROTO      rushd refused the message, nothing in it decided (rush_client_last_error()
 *                    has its text), or sent a reply that is not a valid answer
 * A request whose fate rushd could not learn comes back with 0 and outcome RUSH_OUTCOME_UNKNOWN
 * (see "Outcome unknown" above): resend it with the same key, never treat it as refused.
 *   RUSH_ESTOPPED    the client is closing
 *   -EDEADLK         called from a callback, on the I/O thread
 * On an error the contents of results are unspecified.
 */
RUSH_MUST_USE int rush_client_submit(struct rush_client *client,
                                     const struct rush_request *requests, uint32_t count,
                                     struct rush_result *results);

/*
 * Called once per async submission, on the client's I/O thread: status is 0 (results[0 ..
 * count) are filled in) or an error as for rush_client_submit(); `results` is the array given
 * to rush_client_submit_async(). Inside the callback rush_client_last_error() names a failure.
 */
typedef void rush_client_callback(void *context, int status, struct rush_result *results,
                                  uint32_t count);

/*
 * Like rush_client_submit(), but returns at once: 0 when the submission is queued (the callback
 * will run exactly once), or -EINVAL, RUSH_ESTOPPED, or RUSH_EFULL when async_max async
 * submissions are already waiting (the callback will not run). requests and results must stay
 * valid until the callback runs.
 */
RUSH_MUST_USE int rush_client_submit_async(struct rush_client *client,
                                           const struct rush_request *requests, uint32_t count,
                                           struct rush_result *results,
                                           rush_client_callback *callback, void *context);

/*
 * The text of the last failed submit or open on the calling thread (any client): the server's
 * ERROR text for RUSH_EPROTO, else a description of the local failure. "" when there is none.
 * Thread-local; valid until the thread's next failing call.
 */
const char *rush_client_last_error(void);

/* Counters since open; each is read atomically, the set is not a snapshot. */
struct rush_client_stats {
    uint64_t submits;                 /* calls accepted (sync and async) */
    uint64_t requests_sent;           /* requests in messages sent (first sends only) */
    uint64_t messages_sent;           /* wire messages sent (first sends only) */
    uint64_t retries;                 /* resends after a timeout */
    uint64_t replies;                 /* replies matched to a message in flight */
    uint64_t replies_stale;           /* replies to no message in flight (late, after a resend) */
    uint64_t errors;                  /* messages answered with ERROR or an invalid reply */
    uint64_t timeouts;                /* messages given up after retries_max resends */
    uint64_t batch_requests_max_seen; /* the most requests one message carried */
};

void rush_client_stats(const struct rush_client *client, struct rush_client_stats *stats);

/*
 * Several nodes: the router. A cluster of rushd nodes (README.md, "Cluster") spreads the shards
 * over nodes, and each shard is led by one node at a time. A router holds one client per node (in
 * the campaign's [cluster] nodes order: node i is urls[i]) and sends each request to the node
 * that leads its shard:
 *   - the shard is rush_wire_shard_of(shard_count, request) (rush/wire.h); with shard_count 0
 *     (unknown) every request first goes to node 0, and the router learns shards from answers;
 *   - the leader of a shard is learnt from answers: a decision from node i for shard s means i
 *     leads s; a redirect (outcome RUSH_REDIRECT, reason RUSH_REASON_WRONG_SHARD, state = the
 *     shard, qty = the leading node's index) names it. Before anything is known, shard s is
 *     tried on node s % node_count;
 *   - a redirect is followed: the same request, same key, goes to the named node. Nothing was
 *     decided by the node that redirected, so this can never order twice. qty UINT32_MAX means
 *     no node leads the shard right now (a failover): the router waits leaderless_wait_ms and
 *     tries again, at most leaderless_retries_max times per request;
 *   - a node that does not answer (RUSH_ETIMEDOUT after its client's retries) is forgotten as
 *     the leader of the shards it was asked for, and those requests go to the next node, same
 *     keys (rushd answers a decided key with its original result, flagged duplicate). A
 *     redirect back to a node that failed the request in this submit (the cluster still names
 *     it: its lease has not lapsed) counts as no leader: a wait on the redirecting node, not a
 *     hop to the dead one, so a submit outlasts a lease of up to leaderless_retries_max x
 *     leaderless_wait_ms.
 * Each request follows at most hops_max redirects and node failures; past that, or past its
 * leaderless waits, the submit returns -EHOSTUNREACH ("no route to host") and
 * rush_client_last_error() names the shard. The results of the other requests are filled in.
 *
 * A submit allocates its scratch (about 150 bytes per request) and blocks until every request is
 * answered; the per-node clients batch concurrent submits as rush_client_submit() does. Any
 * thread; rush_router_close() must not race with a submit.
 */
#define RUSH_ROUTER_NODES_MAX 16u
#define RUSH_ROUTER_HOPS_MAX 64u

/*
 * client                   each node's client settings (client.url is ignored)
 * urls, node_count         1 .. RUSH_ROUTER_NODES_MAX orders endpoints, copied
 * shard_count              the campaign's shard count; 0: unknown (learnt from answers)
 * hops_max                 1 .. RUSH_ROUTER_HOPS_MAX redirects and node failures per request
 * leaderless_wait_ms       1 .. 60000: the pause before asking again about a shard no node leads
 * leaderless_retries_max   0 .. 10000 such pauses per request
 */
struct rush_router_config {
    struct rush_client_config client;
    const char *const *urls;
    uint32_t node_count;
    uint32_t shard_count;
    uint32_t hops_max;
    uint32_t leaderless_wait_ms;
    uint32_t leaderless_retries_max;
};

/* Defaults: rush_client_config_default() for each node, no urls, shard_count 0, hops_max 8,
 * leaderless_wait_ms 100, leaderless_retries_max 50 (5 s without a leader). */
void rush_router_config_default(struct rush_router_config *config);
RUSH_MUST_USE int rush_router_config_check(const struct rush_router_config *config, char *why,
                                           size_t why_size);

struct rush_router;

/* Opens one client per node. 0 and *out, or an error as rush_client_open() returns. */
RUSH_MUST_USE int rush_router_open(const struct rush_router_config *config,
                                   struct rush_router **out);
/* Closes every node's client and frees the router. NULL is a no-op. */
void rush_router_close(struct rush_router *router);

/*
 * Like rush_client_submit(), routed (see above). 0 when every result is filled in; -EINVAL,
 * -ENOMEM, RUSH_ESTOPPED, RUSH_EPROTO as rush_client_submit() returns them; -EHOSTUNREACH when
 * a request ran out of hops or leaderless waits. A result is never a redirect when 0 is returned.
 */
RUSH_MUST_USE int rush_router_submit(struct rush_router *router,
                                     const struct rush_request *requests, uint32_t count,
                                     struct rush_result *results);

/* The node the router believes leads `shard` (below RUSH_SHARDS_MAX), or -1 when it does not know.
 */
int rush_router_leader(const struct rush_router *router, uint32_t shard);

struct rush_router_stats {
    uint64_t submits;       /* rush_router_submit calls */
    uint64_t redirects;     /* redirect answers followed to a named node */
    uint64_t leaderless;    /* redirect answers naming no node: waited and retried */
    uint64_t node_failures; /* node submits that failed (requests moved to the next node) */
    uint64_t unreachable;   /* requests given up: -EHOSTUNREACH */
};
void rush_router_stats(const struct rush_router *router, struct rush_router_stats *stats);

/*
 * Idempotency keys. rush_client_key() makes the key rushd's JSON form makes of the same text:
 * "0x" followed by exactly 32 hex digits is taken literally (big-endian), any other text is
 * hashed with XXH3-128 (canonical byte order). So a gateway may derive keys from its own order
 * numbers ("gw7-000123") and a JSON client sending the same string gets the same key.
 * rush_client_key_random() fills *key with 128 random bits (getrandom), never all zero; it
 * returns 0 or -errno.
 */
rush_key rush_client_key(const char *text);
/* The same for `len` bytes of text that need not be NUL-terminated (what rushd's JSON form uses).
 */
rush_key rush_client_key_of(const char *text, size_t len);
RUSH_MUST_USE int rush_client_key_random(rush_key *key);

#ifdef __cplusplus
}
#endif
#endif
