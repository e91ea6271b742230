/*
 * driver.c — threads, connections, pacing and replies of a load run (shape, slot life and
 * invariants in driver.h).
 */
#include "driver.h"
#include "base/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "arrivals.h"
#include "codec/json.h"
#include "json_result.h"
#include "route.h"
#include "rush/assert.h"
#include "rush/wire.h"

#define NS_PER_S INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)
#define NO_SLOT UINT32_MAX
#define SLOT_BITS 16  /* message_id = sequence << SLOT_BITS | slot index */
#define FRAME_BYTES 4 /* a raw REQ socket sends the request id in front of the body */
#define REQUEST_ID_BIT 0x80000000u
#define REQUEST_SEQUENCE_MASK 0x7fffu /* request id = bit | (sequence & mask) << 16 | slot */
static_assert(RUSH_LOADGEN_INFLIGHT_MAX <= (1u << SLOT_BITS), "slot index fits the id");

struct slot {
    uint64_t message_id; /* 0 when free; binary: the wire message id; JSON: the request id */
    int64_t intended_ns;
    int64_t deadline_ns;
    uint32_t first; /* ledger index of its first request */
    uint32_t count;
    uint32_t hops; /* a resend: redirects and waits behind it; 0 for a new message */
};

struct connection {
    int sock;
    int receive_fd;
    int send_fd;
    uint32_t node;      /* index in --nodes (0 without) */
    struct slot *slots; /* inflight of them */
    uint32_t *free;     /* stack of free slot indices */
    uint32_t free_count;
    uint32_t in_flight;    /* slots in use, the pending one included */
    uint32_t pending_slot; /* built but not yet taken by nanomsg, or NO_SLOT */
    size_t pending_bytes;
    uint8_t *buf; /* FRAME_BYTES + one encoded message */
    size_t buf_bytes;
    uint64_t sequence;
};

/* A request answered redirect, to be sent again alone (loadgen/route.h). */
struct resend {
    uint32_t index; /* ledger entry */
    uint32_t node;
    uint32_t hops;
    int64_t intended_ns; /* its first message's: latency counts every hop */
    int64_t due_ns;
};

/* A FIFO of resends; `waiting` ones become due in the order they were queued. */
struct resend_queue {
    struct resend *items;
    uint32_t head;
    uint32_t count;
};

/* What every thread shares (driver.h): the crowd behind `lock`, and the stop flag. */
struct crowd {
    pthread_mutex_t lock; /* scenario, ledger, requests */
    const struct rush_driver_input *in;
    const struct rush_loadgen_options *o;
    struct rush_request *requests; /* --nodes: each ledger entry's request, for resends */
    size_t requests_bytes;
    struct rush_decision_gaps gaps; /* per shard, the longest time without a decision */
    atomic_bool stop;
    atomic_uint running; /* threads not yet finished */
};

/* A message generated but not yet on a connection: its requests are in scratch. */
struct held {
    uint32_t first;
    uint32_t count;
    int64_t intended_ns;
};

struct worker {
    struct crowd *crowd;
    const struct rush_loadgen_options *o;
    uint32_t index;
    struct rush_tally tally;
    struct connection *connections;
    uint32_t count;
    struct pollfd *fds;           /* 2 per connection at most */
    uint32_t *fd_connection;      /* which connection each pollfd is for */
    struct rush_request *scratch; /* the held message's requests */
    struct held held;             /* count 0: none */
    struct rush_arrivals arrivals;
    struct rush_route route;
    struct resend_queue now;     /* resends to send at once */
    struct resend_queue waiting; /* resends after a wait for a leader */
    uint32_t resend_max;
    uint64_t requests_in_flight;
    struct rush_histogram second_ns; /* latencies since the last publication */
    bool sending;
    uint32_t next_connection; /* round robin cursor */
    int64_t stop_send_ns;
    int64_t next_scan_ns;
    pthread_t thread;
    bool started;
    /* Published every RUSH_DRIVER_TIMEOUT_SCAN_NS for the progress line. */
    pthread_mutex_t share_lock;
    struct rush_tally share; /* counters only */
    struct rush_histogram share_second_ns;
};

/* ---- resend queues ------------------------------------------------------------------------ */

static void resend_push(struct worker *w, struct resend_queue *q, struct resend item)
{
    RUSH_ASSERT(w->now.count + w->waiting.count < w->resend_max);
    q->items[(q->head + q->count) % w->resend_max] = item;
    q->count++;
}

static const struct resend *resend_peek(const struct resend_queue *q)
{
    return q->count > 0 ? &q->items[q->head] : NULL;
}

static void resend_pop(struct worker *w, struct resend_queue *q)
{
    RUSH_ASSERT(q->count > 0);
    q->head = (q->head + 1) % w->resend_max;
    q->count--;
}

/* ---- slots -------------------------------------------------------------------------------- */

static void release_slot(struct worker *w, struct connection *c, uint32_t index)
{
    RUSH_ASSERT(index < w->o->inflight && c->slots[index].message_id != 0);
    RUSH_ASSERT(c->in_flight > 0 && w->tally.in_flight > 0);
    RUSH_ASSERT(w->requests_in_flight >= c->slots[index].count);
    w->requests_in_flight -= c->slots[index].count;
    c->slots[index].message_id = 0;
    c->free[c->free_count++] = index;
    c->in_flight--;
    w->tally.in_flight--;
    if (c->pending_slot == index)
        c->pending_slot = NO_SLOT;
    RUSH_ASSERT(c->in_flight + c->free_count == w->o->inflight);
}

/* Marks a slot's requests lost or refused and frees it. */
static void fail_slot(struct worker *w, struct connection *c, uint32_t index,
                      enum rush_ledger_status status)
{
    const struct slot *slot = &c->slots[index];
    pthread_mutex_lock(&w->crowd->lock);
    for (uint32_t i = 0; i < slot->count; i++)
        rush_ledger_fail(w->crowd->in->ledger, slot->first + i, status);
    pthread_mutex_unlock(&w->crowd->lock);
    release_slot(w, c, index);
}

/* ---- building messages -------------------------------------------------------------------- */

/* Room for one more message of --batch: every request in flight may come back redirected. */
static bool room_for_message(const struct worker *w)
{
    return w->requests_in_flight + w->now.count + w->waiting.count + 2u * w->o->batch <=
           w->resend_max;
}

/*
 * Generates a message of up to --batch requests from the scenario into w->held (under the crowd
 * lock: the ledger entries are consecutive). Returns the requests in it; 0 when the scenario has
 * nothing now (or the ledger is full: then sending stops).
 */
static uint32_t generate(struct worker *w, int64_t intended_ns)
{
    struct crowd *crowd = w->crowd;
    struct rush_ledger *ledger = crowd->in->ledger;
    RUSH_ASSERT(w->held.count == 0);
    pthread_mutex_lock(&crowd->lock);
    uint32_t limit = w->o->batch;
    if (ledger->capacity - ledger->count < limit)
        limit = ledger->capacity - ledger->count;
    uint32_t first = ledger->count, n = 0;
    uint32_t original;
    while (n < limit &&
           rush_scenario_next(crowd->in->scenario, ledger, &w->scratch[n], &original)) {
        int64_t index = rush_ledger_append(ledger, &w->scratch[n], original);
        RUSH_ASSERT(index == (int64_t)first + n);
        w->scratch[n].tag = (uint64_t)index;
        if (crowd->requests != NULL)
            crowd->requests[index] = w->scratch[n];
        n++;
    }
    bool full = limit == 0 && !rush_scenario_exhausted(crowd->in->scenario);
    pthread_mutex_unlock(&crowd->lock);
    if (full) {
        w->tally.ledger_full = 1;
        rush_tally_error(&w->tally, "the ledger is full: the run stopped generating requests");
        w->sending = false;
        return 0;
    }
    for (uint32_t i = 0; i < n; i++)
        w->tally.ops_sent[w->scratch[i].op]++;
    w->held = (struct held){.first = first, .count = n, .intended_ns = intended_ns};
    w->tally.requests_offered += n;
    return n;
}

/* A connection of `node` with a free slot and nothing pending, round robin; NULL when none. */
static struct connection *free_connection(struct worker *w, uint32_t node)
{
    for (uint32_t tries = 0; tries < w->count; tries++) {
        struct connection *c = &w->connections[w->next_connection];
        w->next_connection = (w->next_connection + 1) % w->count;
        if (c->node == node && c->pending_slot == NO_SLOT && c->free_count > 0)
            return c;
    }
    return NULL;
}

/* Encodes requests[0, n) into c->buf behind the frame; the slot's ids. Returns the bytes. */
static size_t encode(const struct worker *w, struct connection *c, uint32_t index,
                     const struct rush_request *requests, uint32_t n, uint64_t *message_id)
{
    c->sequence++;
    uint32_t request_id =
        REQUEST_ID_BIT | (uint32_t)(c->sequence & REQUEST_SEQUENCE_MASK) << SLOT_BITS | index;
    int len;
    if (w->o->json) {
        RUSH_ASSERT(n == 1);
        len = rush_json_encode_request(&requests[0], (char *)c->buf + FRAME_BYTES,
                                       c->buf_bytes - FRAME_BYTES);
        *message_id = request_id;
    } else {
        *message_id = (c->sequence << SLOT_BITS) | index;
        len = rush_wire_encode_requests(c->buf + FRAME_BYTES, c->buf_bytes - FRAME_BYTES,
                                        *message_id, requests, n);
    }
    RUSH_ASSERT(len > 0);
    uint32_t frame = htonl(request_id);
    memcpy(c->buf, &frame, FRAME_BYTES);
    return (size_t)len + FRAME_BYTES;
}

/* free -> PENDING: requests[0, n) = ledger entries [first, first + n) on a free slot of c. */
static void attach(struct worker *w, struct connection *c, const struct rush_request *requests,
                   struct slot shape, int64_t now)
{
    RUSH_ASSERT(c->pending_slot == NO_SLOT && c->free_count > 0 && shape.count > 0);
    uint32_t index = c->free[--c->free_count];
    c->in_flight++;
    w->tally.in_flight++;
    w->requests_in_flight += shape.count;
    shape.deadline_ns = now + (int64_t)w->o->timeout_ms * NS_PER_MS;
    c->pending_bytes = encode(w, c, index, requests, shape.count, &shape.message_id);
    c->slots[index] = shape;
    c->pending_slot = index;
}

/* ---- sending ------------------------------------------------------------------------------ */

/* PENDING -> IN FLIGHT when nanomsg takes the message; stays PENDING on EAGAIN. */
static void try_send(struct worker *w, struct connection *c, int64_t now)
{
    if (c->pending_slot == NO_SLOT)
        return;
    struct slot *slot = &c->slots[c->pending_slot];
    int rc = nn_send(c->sock, c->buf, c->pending_bytes, NN_DONTWAIT);
    if (rc == (int)c->pending_bytes) {
        c->pending_slot = NO_SLOT;
        if (slot->hops == 0)
            w->tally.requests_sent += slot->count;
        w->tally.messages_sent++;
        w->tally.last_send_ns = now;
        return;
    }
    if (rc < 0 && nn_errno() == EAGAIN)
        return;
    char text[RUSH_REPORT_ERROR_BYTES];
    snprintf(text, sizeof(text), "nn_send: %s", nn_strerror(nn_errno()));
    rush_tally_error(&w->tally, text);
    w->tally.send_errors += slot->count;
    fail_slot(w, c, c->pending_slot, RUSH_LEDGER_LOST);
}

/* The held message onto a connection of its node; false when none has room now. */
static bool place_held(struct worker *w, int64_t now)
{
    uint32_t node = rush_route_node(&w->route, &w->scratch[0]);
    struct connection *c = free_connection(w, node);
    if (c == NULL)
        return false;
    attach(w, c, w->scratch,
           (struct slot){
               .intended_ns = w->held.intended_ns, .first = w->held.first, .count = w->held.count},
           now);
    w->held.count = 0;
    try_send(w, c, now);
    return true;
}

/* Resends that are due, in order, while their nodes have room. */
static void send_resends(struct worker *w, struct resend_queue *q, int64_t now)
{
    const struct resend *r;
    while ((r = resend_peek(q)) != NULL && r->due_ns <= now) {
        struct rush_request request = w->crowd->requests[r->index]; /* written before queued */
        uint32_t node =
            r->node == RUSH_ROUTE_NO_LEADER ? rush_route_node(&w->route, &request) : r->node;
        struct connection *c = free_connection(w, node);
        if (c == NULL)
            return;
        attach(w, c, &request,
               (struct slot){
                   .intended_ns = r->intended_ns, .first = r->index, .count = 1, .hops = r->hops},
               now);
        resend_pop(w, q);
        try_send(w, c, now);
    }
}

/* ---- replies ------------------------------------------------------------------------------ */

static void take_result(struct worker *w, uint32_t index, const struct rush_result *result,
                        uint64_t latency_ns)
{
    struct rush_tally *t = &w->tally;
    RUSH_ASSERT(result->outcome < RUSH_OUTCOME_COUNT_);
    rush_ledger_answer(w->crowd->in->ledger, index, result);
    t->outcomes[result->outcome]++;
    if (result->outcome == RUSH_INVALID && result->reason < RUSH_REASON_COUNT_)
        t->reasons[result->reason]++;
    if (result->flags & RUSH_RESULT_DUPLICATE)
        t->duplicates_flagged++;
    t->requests_answered++;
    rush_histogram_record(&t->latency_ns, latency_ns);
    rush_histogram_record(&w->second_ns, latency_ns);
    rush_scenario_on_answer(w->crowd->in->scenario, w->crowd->in->ledger, index);
}

/* Whether a result is not an answer but a reason to send the request again (route.h). */
static bool moves_on(const struct worker *w, const struct rush_result *result)
{
    return result->outcome == RUSH_REDIRECT ||
           (result->outcome == RUSH_OUTCOME_UNKNOWN && w->crowd->requests != NULL &&
            w->route.node_count > 1);
}

/*
 * A redirect or, with several nodes, an outcome_unknown (route.h): queued to go again, or given
 * up. An outcome_unknown given up goes into the ledger as it came. Under the crowd lock.
 */
static void redirected(struct worker *w, const struct connection *c, const struct slot *slot,
                       uint32_t index, const struct rush_result *result, uint64_t latency_ns,
                       int64_t now)
{
    uint32_t node = 0;
    enum rush_route_verdict verdict =
        w->crowd->requests == NULL
            ? RUSH_ROUTE_GIVE_UP
            : rush_route_answer(&w->route, result, c->node, slot->hops, &node);
    struct resend item = {
        .index = index, .node = node, .hops = slot->hops + 1, .intended_ns = slot->intended_ns};
    switch (verdict) {
    case RUSH_ROUTE_RESEND:
        item.due_ns = now;
        resend_push(w, &w->now, item);
        w->tally.redirects++;
        return;
    case RUSH_ROUTE_WAIT:
        item.due_ns = now + RUSH_ROUTE_LEADER_WAIT_NS;
        resend_push(w, &w->waiting, item);
        if (result->outcome == RUSH_OUTCOME_UNKNOWN) {
            w->tally.unknown_retried++;
            return;
        }
        w->tally.redirects++;
        w->tally.leader_waits++;
        return;
    case RUSH_ROUTE_GIVE_UP:
    case RUSH_ROUTE_DECIDED:
        break;
    }
    w->tally.redirect_gave_up++;
    if (result->outcome == RUSH_OUTCOME_UNKNOWN) {
        take_result(w, index, result, latency_ns);
        rush_tally_error(&w->tally, "a request answered outcome_unknown too many times");
        return;
    }
    rush_ledger_fail(w->crowd->in->ledger, index, RUSH_LEDGER_REFUSED);
    rush_tally_error(&w->tally, w->crowd->requests == NULL
                                    ? "rushd answered redirect: give the cluster's --nodes"
                                    : "a request was redirected too many times: given up");
}

/* A decision of its request's shard, for the decision gaps (report.h). Under the crowd lock. */
static void count_decision(struct worker *w, uint32_t index, const struct rush_result *result,
                           int64_t now)
{
    if (result->outcome == RUSH_BUSY || result->outcome == RUSH_OUTCOME_UNKNOWN)
        return; /* nothing decided */
    const struct rush_ledger_entry *e = rush_ledger_get(w->crowd->in->ledger, index);
    struct rush_request request = {.op = e->op, .sku_id = e->sku_id, .target_id = e->target_id};
    uint32_t shard = rush_wire_shard_of(w->o->shards, &request);
    rush_decision_gaps_record(&w->crowd->gaps, shard, result->outcome == RUSH_OK, now);
}

/* The results of a reply that fits its slot: answers, redirects; then the slot is free. */
static void on_results(struct worker *w, struct connection *c, uint32_t index, const void *records,
                       int64_t now)
{
    const struct slot *slot = &c->slots[index];
    uint64_t latency_ns = now > slot->intended_ns ? (uint64_t)(now - slot->intended_ns) : 0;
    pthread_mutex_lock(&w->crowd->lock);
    for (uint32_t i = 0; i < slot->count; i++) {
        struct rush_result result;
        memcpy(&result, (const uint8_t *)records + (size_t)i * sizeof(result), sizeof(result));
        if (moves_on(w, &result)) {
            redirected(w, c, slot, slot->first + i, &result, latency_ns, now);
        } else {
            take_result(w, slot->first + i, &result, latency_ns);
            count_decision(w, slot->first + i, &result, now);
        }
    }
    pthread_mutex_unlock(&w->crowd->lock);
    w->tally.messages_answered++;
    release_slot(w, c, index);
}

/* A reply that does not fit its slot: its requests refused, the slot free. */
static void reply_refused(struct worker *w, struct connection *c, uint32_t index,
                          const char *problem)
{
    rush_tally_error(&w->tally, problem);
    w->tally.protocol_errors += c->slots[index].count;
    fail_slot(w, c, index, RUSH_LEDGER_REFUSED);
}

/* Whether result tags are the slot's ledger indices; records may be unaligned. */
static bool tags_match(const struct slot *slot, const void *records)
{
    for (uint32_t i = 0; i < slot->count; i++) {
        uint64_t tag;
        memcpy(&tag,
               (const uint8_t *)records + (size_t)i * sizeof(struct rush_result) +
                   offsetof(struct rush_result, tag),
               sizeof(tag));
        if (tag != (uint64_t)slot->first + i)
            return false;
    }
    return true;
}

/* The slot a binary reply answers, or NO_SLOT (stale). */
static uint32_t slot_of_message(const struct worker *w, const struct connection *c,
                                uint64_t message_id)
{
    uint32_t index = (uint32_t)(message_id & ((1u << SLOT_BITS) - 1));
    if (message_id == 0 || index >= w->o->inflight || c->slots[index].message_id != message_id ||
        c->pending_slot == index)
        return NO_SLOT;
    return index;
}

static void on_binary_reply(struct worker *w, struct connection *c, const void *reply, size_t len,
                            int64_t now)
{
    struct rush_wire_view view;
    struct rush_wire_error error;
    memset(&view, 0, sizeof(view));
    int rc = rush_wire_decode(reply, len, &view, &error);
    uint32_t index = slot_of_message(w, c, view.message_id);
    if (index == NO_SLOT) {
        w->tally.stale_replies++;
        return;
    }
    const struct slot *slot = &c->slots[index];
    if (rc != 0)
        reply_refused(w, c, index, error.text);
    else if (view.kind == RUSH_WIRE_ERROR)
        reply_refused(w, c, index, view.error.text);
    else if (view.kind != RUSH_WIRE_RESULT || view.count != slot->count)
        reply_refused(w, c, index, "a reply that does not answer its request (kind or count)");
    else if (!tags_match(slot, view.records))
        reply_refused(w, c, index, "a result whose tag is not its request's");
    else
        on_results(w, c, index, view.records, now);
}

/* The REQ request id nanomsg returns with a raw socket's reply (its SP header), or 0. */
static uint32_t request_id_of(struct nn_msghdr *header)
{
    for (struct nn_cmsghdr *cmsg = NN_CMSG_FIRSTHDR(header); cmsg != NULL;
         cmsg = NN_CMSG_NXTHDR(header, cmsg)) {
        if (cmsg->cmsg_level != PROTO_SP || cmsg->cmsg_type != SP_HDR)
            continue;
        size_t bytes;
        memcpy(&bytes, NN_CMSG_DATA(cmsg), sizeof(bytes));
        if (bytes < FRAME_BYTES)
            return 0;
        uint32_t id;
        memcpy(&id, NN_CMSG_DATA(cmsg) + sizeof(bytes), sizeof(id));
        return ntohl(id);
    }
    return 0;
}

static void on_json_reply(struct worker *w, struct connection *c, uint32_t request_id,
                          const char *text, size_t len, int64_t now)
{
    uint32_t index = request_id & ((1u << SLOT_BITS) - 1);
    if ((request_id & REQUEST_ID_BIT) == 0 || index >= w->o->inflight ||
        c->slots[index].message_id != request_id || c->pending_slot == index) {
        w->tally.stale_replies++;
        return;
    }
    struct rush_result result;
    char why[RUSH_REPORT_ERROR_BYTES];
    if (rush_json_result_decode(text, len, &result, why, sizeof(why)) != 0)
        reply_refused(w, c, index, why);
    else if (result.tag != c->slots[index].first)
        reply_refused(w, c, index, "a JSON answer whose tag is not its request's");
    else
        on_results(w, c, index, &result, now);
}

/* One reply from c; false when there was none. */
static bool receive_one(struct worker *w, struct connection *c, int64_t now)
{
    void *body = NULL;
    void *control = NULL;
    struct nn_iovec iov = {.iov_base = &body, .iov_len = NN_MSG};
    struct nn_msghdr header = {.msg_iov = &iov, .msg_iovlen = 1};
    if (w->o->json) {
        header.msg_control = &control;
        header.msg_controllen = NN_MSG;
    }
    int len = nn_recvmsg(c->sock, &header, NN_DONTWAIT);
    if (len < 0)
        return false; /* EAGAIN: nothing more now; anything else shows up as timeouts */
    if (w->o->json)
        on_json_reply(w, c, request_id_of(&header), body, (size_t)len, now);
    else
        on_binary_reply(w, c, body, (size_t)len, now);
    nn_freemsg(body);
    if (control != NULL)
        nn_freemsg(control);
    return true;
}

static void receive(struct worker *w, struct connection *c, int64_t now)
{
    for (int i = 0; i < RUSH_DRIVER_RECEIVE_BURST_MAX && receive_one(w, c, now); i++)
        continue;
}

/*
 * Several nodes: a message past its deadline goes again, each request alone, to the next node
 * for its shard (route.h), which from now on takes that shard's new requests too; a request out
 * of hops is lost. The slot is free: a late reply to it is stale (its message id is gone).
 */
static void reroute_slot(struct worker *w, struct connection *c, uint32_t index, int64_t now)
{
    const struct slot *slot = &c->slots[index];
    pthread_mutex_lock(&w->crowd->lock);
    for (uint32_t i = 0; i < slot->count; i++) {
        uint32_t entry = slot->first + i;
        if (slot->hops + 1 >= RUSH_ROUTE_HOPS_MAX) {
            rush_ledger_fail(w->crowd->in->ledger, entry, RUSH_LEDGER_LOST);
            w->tally.redirect_gave_up++;
            rush_tally_error(&w->tally, "a request went unanswered by every node: given up");
            continue;
        }
        uint32_t node = rush_route_timeout(&w->route, &w->crowd->requests[entry], c->node);
        resend_push(w, &w->now,
                    (struct resend){.index = entry,
                                    .node = node,
                                    .hops = slot->hops + 1,
                                    .intended_ns = slot->intended_ns,
                                    .due_ns = now});
        w->tally.timeouts_rerouted++;
    }
    pthread_mutex_unlock(&w->crowd->lock);
    release_slot(w, c, index);
}

/*
 * Gives up every message past its deadline (several nodes: sends it to the next node instead).
 * Visits connections x inflight slots.
 */
static void expire_slots(struct worker *w, int64_t now)
{
    bool reroute = w->crowd->requests != NULL && w->route.node_count > 1;
    for (uint32_t k = 0; k < w->count; k++) {
        struct connection *c = &w->connections[k];
        for (uint32_t i = 0; i < w->o->inflight && c->in_flight > 0; i++) {
            const struct slot *slot = &c->slots[i];
            if (slot->message_id == 0 || slot->deadline_ns > now)
                continue;
            if (reroute) {
                reroute_slot(w, c, i, now);
                continue;
            }
            w->tally.timeouts += slot->count;
            rush_tally_error(&w->tally, "a message got no reply within --timeout-ms");
            fail_slot(w, c, i, RUSH_LEDGER_LOST);
        }
    }
}

/* ---- pacing ------------------------------------------------------------------------------- */

static void fill_closed(struct worker *w, int64_t now)
{
    while (w->sending) {
        if (w->held.count == 0 && (!room_for_message(w) || generate(w, now) == 0))
            return; /* the scenario has nothing more for now, or every slot is taken */
        if (!place_held(w, now))
            return;
    }
}

static bool exhausted(struct worker *w)
{
    pthread_mutex_lock(&w->crowd->lock);
    bool done = rush_scenario_exhausted(w->crowd->in->scenario);
    pthread_mutex_unlock(&w->crowd->lock);
    return done;
}

static void fill_open(struct worker *w, int64_t now)
{
    if (w->held.count > 0 && !place_held(w, now))
        return; /* due messages wait; their latency runs from their intended time */
    while (w->sending && rush_arrivals_peek(&w->arrivals) <= now) {
        if (!room_for_message(w))
            return;
        if (generate(w, rush_arrivals_peek(&w->arrivals)) == 0) {
            if (exhausted(w))
                return;
            if (w->sending)
                w->tally.arrivals_idle++; /* waiting for answers that make follow-ups */
        }
        rush_arrivals_take(&w->arrivals);
        w->tally.schedule_end_ns = rush_arrivals_peek(&w->arrivals);
        if (w->held.count > 0 && !place_held(w, now))
            return;
    }
}

/*
 * --duration or a stop: no more new messages; a held one is given up unsent. Open mode counts
 * the messages that were due but not sent as offered (from the mean gap: exact for fixed
 * arrivals; no loop over them).
 */
static void stop_sending(struct worker *w, int64_t now)
{
    w->sending = false;
    if (w->held.count > 0) {
        pthread_mutex_lock(&w->crowd->lock);
        for (uint32_t i = 0; i < w->held.count; i++)
            rush_ledger_fail(w->crowd->in->ledger, w->held.first + i, RUSH_LEDGER_REFUSED);
        pthread_mutex_unlock(&w->crowd->lock);
        w->held.count = 0;
    }
    if (w->o->mode != RUSH_MODE_OPEN || exhausted(w))
        return;
    int64_t until = now < w->stop_send_ns ? now : w->stop_send_ns;
    double late_ns = (double)(until - rush_arrivals_peek(&w->arrivals));
    if (late_ns < 0)
        return;
    uint64_t due = (uint64_t)(late_ns / w->arrivals.gap_ns) + 1;
    w->tally.requests_offered += due * w->o->batch;
    w->tally.schedule_end_ns =
        rush_arrivals_peek(&w->arrivals) + (int64_t)((double)due * w->arrivals.gap_ns);
}

/* ---- the loop ----------------------------------------------------------------------------- */

static uint32_t gather_fds(struct worker *w)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < w->count; k++) {
        struct connection *c = &w->connections[k];
        w->fds[n] = (struct pollfd){.fd = c->receive_fd, .events = POLLIN};
        w->fd_connection[n++] = k;
        if (c->pending_slot != NO_SLOT) {
            w->fds[n] = (struct pollfd){.fd = c->send_fd, .events = POLLIN};
            w->fd_connection[n++] = k;
        }
    }
    return n;
}

static int64_t wait_until(const struct worker *w)
{
    int64_t until = w->next_scan_ns;
    if (w->sending && w->stop_send_ns < until)
        until = w->stop_send_ns;
    if (w->sending && w->o->mode == RUSH_MODE_OPEN && rush_arrivals_peek(&w->arrivals) < until)
        until = rush_arrivals_peek(&w->arrivals);
    const struct resend *r = resend_peek(&w->waiting);
    if (r != NULL && r->due_ns < until)
        until = r->due_ns;
    return until;
}

static void poll_once(struct worker *w, int64_t now)
{
    uint32_t n = gather_fds(w);
    int64_t wait_ns = wait_until(w) - now;
    wait_ns = wait_ns < 0                          ? 0
              : wait_ns > RUSH_DRIVER_IDLE_WAIT_NS ? RUSH_DRIVER_IDLE_WAIT_NS
                                                   : wait_ns;
    struct timespec timeout = {.tv_sec = wait_ns / NS_PER_S, .tv_nsec = wait_ns % NS_PER_S};
    if (ppoll(w->fds, n, &timeout, NULL) <= 0)
        return; /* timeout, or EINTR from a signal */
    int64_t after = rush_clock_monotonic_ns();
    for (uint32_t i = 0; i < n; i++) {
        if (!(w->fds[i].revents & POLLIN))
            continue;
        struct connection *c = &w->connections[w->fd_connection[i]];
        if (w->fds[i].fd == c->receive_fd)
            receive(w, c, after);
        else
            try_send(w, c, after);
    }
}

/* Open mode: messages whose intended time has passed but which are not sent yet (estimated
 * from the mean gap, so exact for fixed arrivals). */
static uint64_t backlog(struct worker *w, int64_t now)
{
    if (w->o->mode != RUSH_MODE_OPEN || !w->sending || exhausted(w))
        return 0;
    double late_ns = (double)(now - rush_arrivals_peek(&w->arrivals));
    return late_ns < 0 ? 0 : (uint64_t)(late_ns / w->arrivals.gap_ns) + 1;
}

/* Copies the counters and the latest latencies where the progress line reads them. */
static void publish(struct worker *w, int64_t now)
{
    w->tally.backlog_messages = backlog(w, now);
    w->tally.requests_due = w->tally.requests_offered + w->tally.backlog_messages * w->o->batch;
    pthread_mutex_lock(&w->share_lock);
    memcpy(&w->share, &w->tally, offsetof(struct rush_tally, latency_ns));
    rush_histogram_merge(&w->share_second_ns, &w->second_ns);
    pthread_mutex_unlock(&w->share_lock);
    rush_histogram_reset(&w->second_ns);
}

static void tick(struct worker *w, int64_t now)
{
    if (now < w->next_scan_ns)
        return;
    expire_slots(w, now);
    publish(w, now);
    w->next_scan_ns = now + RUSH_DRIVER_TIMEOUT_SCAN_NS;
}

static bool finished(struct worker *w)
{
    if (w->tally.in_flight > 0 || w->held.count > 0 || w->now.count > 0 || w->waiting.count > 0)
        return false;
    return !w->sending || exhausted(w);
}

static void *worker_main(void *argument)
{
    struct worker *w = argument;
    for (;;) {
        int64_t now = rush_clock_monotonic_ns();
        if (w->sending && (now >= w->stop_send_ns || atomic_load(&w->crowd->stop)))
            stop_sending(w, now);
        for (uint32_t k = 0; k < w->count; k++)
            try_send(w, &w->connections[k], now);
        send_resends(w, &w->now, now);
        send_resends(w, &w->waiting, now);
        if (w->sending && w->o->mode == RUSH_MODE_CLOSED)
            fill_closed(w, now);
        else if (w->sending)
            fill_open(w, now);
        if (finished(w))
            break;
        poll_once(w, now);
        tick(w, rush_clock_monotonic_ns());
    }
    w->tally.end_ns = rush_clock_monotonic_ns();
    publish(w, w->tally.end_ns);
    atomic_fetch_sub(&w->crowd->running, 1);
    return NULL;
}

/* ---- set-up ------------------------------------------------------------------------------- */

static const char *connection_url(const struct rush_loadgen_options *o, uint32_t node)
{
    if (o->node_count > 0)
        return o->nodes[node];
    return o->json ? o->json_url : o->url;
}

static int connection_open(struct connection *c, const struct rush_loadgen_options *o)
{
    int buffer = RUSH_DRIVER_SOCKET_BUFFER_BYTES;
    size_t size = sizeof(int);
    c->pending_slot = NO_SLOT;
    c->sock = nn_socket(AF_SP_RAW, NN_REQ);
    if (c->sock < 0)
        return -nn_errno();
    nn_setsockopt(c->sock, NN_SOL_SOCKET, NN_RCVBUF, &buffer, sizeof(buffer));
    nn_setsockopt(c->sock, NN_SOL_SOCKET, NN_SNDBUF, &buffer, sizeof(buffer));
    /* Pipelined small messages: without it Nagle holds one back until the peer's delayed ACK
     * (about 40 ms). Only tcp:// has the option; other transports ignore it. */
    int nodelay = 1;
    nn_setsockopt(c->sock, NN_TCP, NN_TCP_NODELAY, &nodelay, sizeof(nodelay));
    if (nn_connect(c->sock, connection_url(o, c->node)) < 0 ||
        nn_getsockopt(c->sock, NN_SOL_SOCKET, NN_RCVFD, &c->receive_fd, &size) < 0 ||
        nn_getsockopt(c->sock, NN_SOL_SOCKET, NN_SNDFD, &c->send_fd, &size) < 0)
        return -nn_errno();
    c->slots = calloc(o->inflight, sizeof(*c->slots));
    c->free = calloc(o->inflight, sizeof(*c->free));
    c->buf_bytes = FRAME_BYTES + (o->json ? RUSH_DRIVER_JSON_REQUEST_BYTES_MAX
                                          : rush_wire_message_bytes(RUSH_WIRE_REQUEST, o->batch));
    c->buf = malloc(c->buf_bytes);
    if (c->slots == NULL || c->free == NULL || c->buf == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < o->inflight; i++)
        c->free[c->free_count++] = o->inflight - 1 - i;
    return 0;
}

static void connection_close(struct connection *c)
{
    if (c->sock >= 0)
        nn_close(c->sock);
    free(c->slots);
    free(c->free);
    free(c->buf);
}

/* Worker t's connections (driver.h), its tables, its schedule. */
static int worker_open(struct worker *w, struct crowd *crowd, uint32_t t, int64_t start_ns)
{
    const struct rush_loadgen_options *o = crowd->o;
    uint32_t nodes = o->node_count > 0 ? o->node_count : 1;
    uint32_t total = o->connections * nodes;
    uint32_t from = (uint32_t)((uint64_t)t * total / o->threads);
    uint32_t to = (uint32_t)((uint64_t)(t + 1) * total / o->threads);
    *w = (struct worker){.crowd = crowd, .o = o, .index = t, .count = to - from};
    w->resend_max = (w->count * o->inflight + 2) * o->batch;
    w->connections = calloc(w->count, sizeof(*w->connections));
    w->fds = calloc(2 * (size_t)w->count, sizeof(*w->fds));
    w->fd_connection = calloc(2 * (size_t)w->count, sizeof(*w->fd_connection));
    w->scratch = calloc(o->batch, sizeof(*w->scratch));
    w->now.items = calloc(w->resend_max, sizeof(struct resend));
    w->waiting.items = calloc(w->resend_max, sizeof(struct resend));
    pthread_mutex_init(&w->share_lock, NULL);
    int rc = w->connections && w->fds && w->fd_connection && w->scratch && w->now.items &&
                     w->waiting.items
                 ? 0
                 : -ENOMEM;
    for (uint32_t k = 0; k < w->count && w->connections != NULL; k++)
        w->connections[k] = (struct connection){.sock = -1, .node = (from + k) % nodes};
    for (uint32_t k = 0; k < w->count && rc == 0; k++)
        rc = connection_open(&w->connections[k], o);
    rush_route_init(&w->route, nodes, o->shards);
    rush_tally_init(&w->tally, start_ns);
    rush_tally_init(&w->share, start_ns);
    rush_histogram_reset(&w->second_ns);
    rush_histogram_reset(&w->share_second_ns);
    w->sending = true;
    w->stop_send_ns = o->duration_s > 0 ? start_ns + (int64_t)(o->duration_s * 1e9) : INT64_MAX;
    w->next_scan_ns = start_ns + RUSH_DRIVER_TIMEOUT_SCAN_NS;
    if (o->mode == RUSH_MODE_OPEN) {
        /* Thread t's fixed schedule is the whole one's messages t, t + threads, ... */
        double gap_ns = (double)o->batch * 1e9 / o->rate_per_s;
        rush_arrivals_init(&w->arrivals, o->arrivals, o->rate_per_s / o->threads, o->batch,
                           start_ns + (int64_t)(gap_ns * t), o->seed + t);
    }
    return rc;
}

static void worker_close(struct worker *w)
{
    for (uint32_t k = 0; w->connections != NULL && k < w->count; k++)
        connection_close(&w->connections[k]);
    free(w->connections);
    free(w->fds);
    free(w->fd_connection);
    free(w->scratch);
    free(w->now.items);
    free(w->waiting.items);
    pthread_mutex_destroy(&w->share_lock);
}

/* ---- the calling thread: stop flag, progress line, the sum ---------------------------------- */

static void progress_line(struct worker *workers, uint32_t count, struct rush_progress *progress,
                          int64_t now)
{
    struct rush_tally sum;
    rush_tally_init(&sum, progress->previous.start_ns);
    for (uint32_t t = 0; t < count; t++) {
        struct worker *w = &workers[t];
        pthread_mutex_lock(&w->share_lock);
        rush_tally_merge(&sum, &w->share, false);
        rush_histogram_merge(&progress->second_ns, &w->share_second_ns);
        rush_histogram_reset(&w->share_second_ns);
        pthread_mutex_unlock(&w->share_lock);
    }
    rush_progress_print(progress, &sum, now, stderr);
}

/* Waits for the workers, passing on a stop and printing a progress line a second. */
static void watch(struct crowd *crowd, struct worker *workers, int64_t start_ns)
{
    struct rush_progress progress;
    struct rush_tally zero;
    rush_tally_init(&zero, start_ns);
    rush_progress_init(&progress, &zero, start_ns);
    int64_t next_progress_ns = start_ns + NS_PER_S;
    while (atomic_load(&crowd->running) > 0) {
        struct timespec pause = {.tv_nsec = 20 * NS_PER_MS};
        nanosleep(&pause, NULL);
        if (crowd->in->stop != NULL && *crowd->in->stop)
            atomic_store(&crowd->stop, true);
        int64_t now = rush_clock_monotonic_ns();
        if (now < next_progress_ns)
            continue;
        if (!crowd->o->quiet)
            progress_line(workers, crowd->o->threads, &progress, now);
        next_progress_ns += NS_PER_S;
    }
}

/* --nodes: a copy of every request, for resends (an anonymous mapping: touched as written). */
static int requests_open(struct crowd *crowd)
{
    if (crowd->o->node_count == 0)
        return 0;
    crowd->requests_bytes = (size_t)crowd->in->ledger->capacity * sizeof(struct rush_request);
    void *map = mmap(NULL, crowd->requests_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return -ENOMEM;
    crowd->requests = map;
    return 0;
}

static int start_workers(struct crowd *crowd, struct worker *workers, int64_t start_ns)
{
    int rc = 0;
    for (uint32_t t = 0; t < crowd->o->threads && rc == 0; t++)
        rc = worker_open(&workers[t], crowd, t, start_ns);
    atomic_store(&crowd->running, crowd->o->threads);
    for (uint32_t t = 0; t < crowd->o->threads; t++) {
        if (rc == 0)
            rc = -pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]);
        if (rc == 0)
            workers[t].started = true;
        else
            atomic_fetch_sub(&crowd->running, 1);
    }
    if (rc != 0)
        atomic_store(&crowd->stop, true); /* the started ones stop sending and drain */
    return rc;
}

/* CPU time of the whole process, every thread. */
static int64_t process_cpu_ns(void)
{
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0)
        return 0;
    return ((int64_t)usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * NS_PER_S +
           ((int64_t)usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1000;
}

int rush_driver_run(const struct rush_driver_input *input)
{
    RUSH_ASSERT(input != NULL && input->options != NULL && input->ledger != NULL &&
                input->scenario != NULL && input->tally != NULL);
    const struct rush_loadgen_options *o = input->options;
    RUSH_ASSERT(o->connections >= 1 && o->connections <= RUSH_LOADGEN_CONNECTIONS_MAX);
    RUSH_ASSERT(o->inflight >= 1 && o->inflight <= RUSH_LOADGEN_INFLIGHT_MAX);
    RUSH_ASSERT(o->threads >= 1 && o->threads <= o->connections);
    struct crowd crowd = {.in = input, .o = o};
    pthread_mutex_init(&crowd.lock, NULL);
    struct worker *workers = calloc(o->threads, sizeof(*workers));
    int rc = workers != NULL ? requests_open(&crowd) : -ENOMEM;
    int64_t start_ns = rush_clock_monotonic_ns();
    int64_t cpu_start_ns = process_cpu_ns();
    if (rc == 0)
        rc = start_workers(&crowd, workers, start_ns);
    if (workers != NULL)
        watch(&crowd, workers, start_ns);
    rush_tally_init(input->tally, start_ns);
    for (uint32_t t = 0; workers != NULL && t < o->threads; t++) {
        if (workers[t].started) {
            pthread_join(workers[t].thread, NULL);
            rush_tally_merge(input->tally, &workers[t].tally, true);
        }
        if (workers[t].o != NULL)
            worker_close(&workers[t]);
    }
    input->tally->gaps = crowd.gaps; /* every thread joined */
    input->tally->ledger_full = input->tally->ledger_full > 0;
    input->tally->cpu_ns = process_cpu_ns() - cpu_start_ns;
    if (crowd.requests != NULL)
        munmap(crowd.requests, crowd.requests_bytes);
    free(workers);
    pthread_mutex_destroy(&crowd.lock);
    return rc;
}
