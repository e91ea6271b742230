/*
 * driver.c — connections, pacing and replies of a load run (shape, slot life and invariants in
 * driver.h).
 */
#include "driver.h"
#include "base/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arrivals.h"
#include "rush/assert.h"
#include "rush/wire.h"

#define NS_PER_S INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)
#define NO_SLOT UINT32_MAX
#define SLOT_BITS 16  /* message_id = sequence << SLOT_BITS | slot index */
#define FRAME_BYTES 4 /* a raw REQ socket sends the request id in front of the body */
static_assert(RUSH_LOADGEN_INFLIGHT_MAX <= (1u << SLOT_BITS), "slot index fits the id");

struct slot {
    uint64_t message_id; /* 0 when free */
    int64_t intended_ns;
    int64_t deadline_ns;
    uint32_t first; /* ledger index of its first request */
    uint32_t count;
};

struct connection {
    int sock;
    int receive_fd;
    int send_fd;
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

struct driver {
    const struct rush_driver_input *in;
    const struct rush_loadgen_options *o;
    struct rush_tally *tally;
    struct connection *connections;
    uint32_t count;
    struct pollfd *fds;           /* 2 per connection at most */
    uint32_t *fd_connection;      /* which connection each pollfd is for */
    struct rush_request *scratch; /* one message's requests */
    struct rush_arrivals arrivals;
    struct rush_progress progress;
    bool sending;
    uint32_t next_connection; /* open mode: round robin cursor */
    int64_t stop_send_ns;
    int64_t next_progress_ns;
    int64_t next_scan_ns;
};

/* ---- slots -------------------------------------------------------------------------------- */

static void release_slot(struct driver *d, struct connection *c, uint32_t index)
{
    RUSH_ASSERT(index < d->o->inflight && c->slots[index].message_id != 0);
    RUSH_ASSERT(c->in_flight > 0 && d->tally->in_flight > 0);
    c->slots[index].message_id = 0;
    c->free[c->free_count++] = index;
    c->in_flight--;
    d->tally->in_flight--;
    if (c->pending_slot == index)
        c->pending_slot = NO_SLOT;
    RUSH_ASSERT(c->in_flight + c->free_count == d->o->inflight);
}

/* Marks a slot's requests lost or refused and frees it. */
static void fail_slot(struct driver *d, struct connection *c, uint32_t index,
                      enum rush_ledger_status status)
{
    const struct slot *slot = &c->slots[index];
    for (uint32_t i = 0; i < slot->count; i++)
        rush_ledger_fail(d->in->ledger, slot->first + i, status);
    release_slot(d, c, index);
}

/*
 * Fills a message of up to --batch requests from the scenario into a free slot of c, PENDING.
 * Returns the requests in it; 0 when the scenario has nothing now (or the ledger is full).
 */
static uint32_t build_message(struct driver *d, struct connection *c, int64_t intended_ns,
                              int64_t now)
{
    struct rush_ledger *ledger = d->in->ledger;
    RUSH_ASSERT(c->pending_slot == NO_SLOT && c->free_count > 0);
    uint32_t limit = d->o->batch;
    if (ledger->capacity - ledger->count < limit)
        limit = ledger->capacity - ledger->count;
    if (limit == 0 && rush_scenario_exhausted(d->in->scenario))
        return 0;
    if (limit == 0) {
        d->tally->ledger_full = 1;
        rush_tally_error(d->tally, "the ledger is full: the run stopped generating requests");
        d->sending = false;
        return 0;
    }
    uint32_t first = ledger->count, n = 0;
    uint32_t original;
    while (n < limit && rush_scenario_next(d->in->scenario, ledger, &d->scratch[n], &original)) {
        int64_t index = rush_ledger_append(ledger, &d->scratch[n], original);
        RUSH_ASSERT(index == (int64_t)first + n);
        d->scratch[n].tag = (uint64_t)index;
        d->tally->ops_sent[d->scratch[n].op]++;
        n++;
    }
    if (n == 0)
        return 0;
    uint32_t index = c->free[--c->free_count];
    c->in_flight++;
    d->tally->in_flight++;
    uint64_t message_id = (++c->sequence << SLOT_BITS) | index;
    int len = rush_wire_encode_requests(c->buf + FRAME_BYTES, c->buf_bytes - FRAME_BYTES,
                                        message_id, d->scratch, n);
    RUSH_ASSERT(len > 0);
    uint32_t request_id = htonl((uint32_t)c->sequence | 0x80000000u);
    memcpy(c->buf, &request_id, FRAME_BYTES);
    c->slots[index] = (struct slot){.message_id = message_id,
                                    .intended_ns = intended_ns,
                                    .deadline_ns = now + (int64_t)d->o->timeout_ms * NS_PER_MS,
                                    .first = first,
                                    .count = n};
    c->pending_slot = index;
    c->pending_bytes = (size_t)len + FRAME_BYTES;
    d->tally->requests_offered += n;
    return n;
}

/* PENDING -> IN FLIGHT when nanomsg takes the message; stays PENDING on EAGAIN. */
static void try_send(struct driver *d, struct connection *c, int64_t now)
{
    if (c->pending_slot == NO_SLOT)
        return;
    struct slot *slot = &c->slots[c->pending_slot];
    int rc = nn_send(c->sock, c->buf, c->pending_bytes, NN_DONTWAIT);
    if (rc == (int)c->pending_bytes) {
        c->pending_slot = NO_SLOT;
        d->tally->requests_sent += slot->count;
        d->tally->messages_sent++;
        d->tally->last_send_ns = now;
        return;
    }
    if (rc < 0 && nn_errno() == EAGAIN)
        return;
    char text[RUSH_REPORT_ERROR_BYTES];
    snprintf(text, sizeof(text), "nn_send: %s", nn_strerror(nn_errno()));
    rush_tally_error(d->tally, text);
    d->tally->send_errors += slot->count;
    fail_slot(d, c, c->pending_slot, RUSH_LEDGER_LOST);
}

/* ---- replies ------------------------------------------------------------------------------ */

/* Checks a RESULT reply against its slot; NULL when it fits, else what is wrong. */
static const char *reply_problem(const struct slot *slot, int rc, const struct rush_wire_view *view,
                                 const struct rush_wire_error *error)
{
    if (rc != 0)
        return error->text;
    if (view->kind == RUSH_WIRE_ERROR)
        return view->error.text;
    if (view->kind != RUSH_WIRE_RESULT || view->count != slot->count)
        return "a reply that does not answer its request (kind or count)";
    for (uint32_t i = 0; i < view->count; i++) {
        uint64_t tag;
        memcpy(&tag,
               (const uint8_t *)view->records + (size_t)i * sizeof(struct rush_result) +
                   offsetof(struct rush_result, tag),
               sizeof(tag));
        if (tag != (uint64_t)slot->first + i)
            return "a result whose tag is not its request's";
    }
    return NULL;
}

static void take_result(struct driver *d, uint32_t index, const struct rush_result *result,
                        uint64_t latency_ns)
{
    struct rush_tally *t = d->tally;
    RUSH_ASSERT(result->outcome < RUSH_OUTCOME_COUNT_);
    rush_ledger_answer(d->in->ledger, index, result);
    t->outcomes[result->outcome]++;
    if (result->outcome == RUSH_INVALID && result->reason < RUSH_REASON_COUNT_)
        t->reasons[result->reason]++;
    if (result->flags & RUSH_RESULT_DUPLICATE)
        t->duplicates_flagged++;
    rush_histogram_record(&t->latency_ns, latency_ns);
    rush_histogram_record(&d->progress.second_ns, latency_ns);
    rush_scenario_on_answer(d->in->scenario, d->in->ledger, index);
}

static void on_reply(struct driver *d, struct connection *c, const void *reply, size_t len,
                     int64_t now)
{
    struct rush_wire_view view;
    struct rush_wire_error error;
    memset(&view, 0, sizeof(view));
    int rc = rush_wire_decode(reply, len, &view, &error);
    uint32_t index = (uint32_t)(view.message_id & ((1u << SLOT_BITS) - 1));
    if (view.message_id == 0 || index >= d->o->inflight ||
        c->slots[index].message_id != view.message_id || c->pending_slot == index) {
        d->tally->stale_replies++;
        return;
    }
    const struct slot *slot = &c->slots[index];
    const char *problem = reply_problem(slot, rc, &view, &error);
    if (problem != NULL) {
        rush_tally_error(d->tally, problem);
        d->tally->protocol_errors += slot->count;
        fail_slot(d, c, index, RUSH_LEDGER_REFUSED);
        return;
    }
    uint64_t latency_ns = now > slot->intended_ns ? (uint64_t)(now - slot->intended_ns) : 0;
    for (uint32_t i = 0; i < slot->count; i++) {
        struct rush_result result;
        memcpy(&result, (const uint8_t *)view.records + (size_t)i * sizeof(result), sizeof(result));
        take_result(d, slot->first + i, &result, latency_ns);
    }
    d->tally->requests_answered += slot->count;
    d->tally->messages_answered++;
    release_slot(d, c, index);
}

static void receive(struct driver *d, struct connection *c, int64_t now)
{
    for (int i = 0; i < RUSH_DRIVER_RECEIVE_BURST_MAX; i++) {
        void *reply = NULL;
        int len = nn_recv(c->sock, &reply, NN_MSG, NN_DONTWAIT);
        if (len < 0)
            return; /* EAGAIN: nothing more now; anything else shows up as timeouts */
        on_reply(d, c, reply, (size_t)len, now);
        nn_freemsg(reply);
    }
}

/* Gives up every message past its deadline. Visits connections x inflight slots. */
static void expire_slots(struct driver *d, int64_t now)
{
    for (uint32_t k = 0; k < d->count; k++) {
        struct connection *c = &d->connections[k];
        for (uint32_t i = 0; i < d->o->inflight && c->in_flight > 0; i++) {
            const struct slot *slot = &c->slots[i];
            if (slot->message_id == 0 || slot->deadline_ns > now)
                continue;
            d->tally->timeouts += slot->count;
            rush_tally_error(d->tally, "a message got no reply within --timeout-ms");
            fail_slot(d, c, i, RUSH_LEDGER_LOST);
        }
    }
}

/* ---- pacing ------------------------------------------------------------------------------- */

static void fill_closed(struct driver *d, int64_t now)
{
    for (uint32_t k = 0; k < d->count && d->sending; k++) {
        struct connection *c = &d->connections[k];
        while (d->sending && c->pending_slot == NO_SLOT && c->free_count > 0) {
            if (build_message(d, c, now, now) == 0)
                return; /* the scenario has nothing more for now */
            try_send(d, c, now);
        }
    }
}

/* A connection with a free slot and nothing pending, round robin; NULL when none. */
static struct connection *next_free_connection(struct driver *d)
{
    for (uint32_t tries = 0; tries < d->count; tries++) {
        struct connection *c = &d->connections[d->next_connection];
        d->next_connection = (d->next_connection + 1) % d->count;
        if (c->pending_slot == NO_SLOT && c->free_count > 0)
            return c;
    }
    return NULL;
}

static void fill_open(struct driver *d, int64_t now)
{
    while (d->sending && rush_arrivals_peek(&d->arrivals) <= now) {
        if (rush_scenario_exhausted(d->in->scenario))
            return;
        struct connection *c = next_free_connection(d);
        if (c == NULL)
            return; /* due messages wait; their latency runs from their intended time */
        if (build_message(d, c, rush_arrivals_peek(&d->arrivals), now) == 0) {
            if (d->sending)
                d->tally->arrivals_idle++; /* waiting for answers that make follow-ups */
        }
        rush_arrivals_take(&d->arrivals);
        d->tally->schedule_end_ns = rush_arrivals_peek(&d->arrivals);
        try_send(d, c, now);
    }
}

/*
 * --duration or *stop: no more new messages. Open mode counts the messages that were due but
 * not sent as offered (from the mean gap: exact for fixed arrivals; no loop over them).
 */
static void stop_sending(struct driver *d, int64_t now)
{
    d->sending = false;
    if (d->o->mode != RUSH_MODE_OPEN || rush_scenario_exhausted(d->in->scenario))
        return;
    int64_t until = now < d->stop_send_ns ? now : d->stop_send_ns;
    double late_ns = (double)(until - rush_arrivals_peek(&d->arrivals));
    if (late_ns < 0)
        return;
    uint64_t due = (uint64_t)(late_ns / d->arrivals.gap_ns) + 1;
    d->tally->requests_offered += due * d->o->batch;
    d->tally->schedule_end_ns =
        rush_arrivals_peek(&d->arrivals) + (int64_t)((double)due * d->arrivals.gap_ns);
}

/* ---- the loop ----------------------------------------------------------------------------- */

static uint32_t gather_fds(struct driver *d)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < d->count; k++) {
        struct connection *c = &d->connections[k];
        d->fds[n] = (struct pollfd){.fd = c->receive_fd, .events = POLLIN};
        d->fd_connection[n++] = k;
        if (c->pending_slot != NO_SLOT) {
            d->fds[n] = (struct pollfd){.fd = c->send_fd, .events = POLLIN};
            d->fd_connection[n++] = k;
        }
    }
    return n;
}

static int64_t wait_until(const struct driver *d)
{
    int64_t until = d->next_progress_ns < d->next_scan_ns ? d->next_progress_ns : d->next_scan_ns;
    if (d->sending && d->stop_send_ns < until)
        until = d->stop_send_ns;
    if (d->sending && d->o->mode == RUSH_MODE_OPEN && rush_arrivals_peek(&d->arrivals) < until)
        until = rush_arrivals_peek(&d->arrivals);
    return until;
}

static void poll_once(struct driver *d, int64_t now)
{
    uint32_t n = gather_fds(d);
    int64_t wait_ns = wait_until(d) - now;
    wait_ns = wait_ns < 0                          ? 0
              : wait_ns > RUSH_DRIVER_IDLE_WAIT_NS ? RUSH_DRIVER_IDLE_WAIT_NS
                                                   : wait_ns;
    struct timespec timeout = {.tv_sec = wait_ns / NS_PER_S, .tv_nsec = wait_ns % NS_PER_S};
    if (ppoll(d->fds, n, &timeout, NULL) <= 0)
        return; /* timeout, or EINTR from a signal: the loop looks at *stop */
    int64_t after = rush_clock_monotonic_ns();
    for (uint32_t i = 0; i < n; i++) {
        if (!(d->fds[i].revents & POLLIN))
            continue;
        struct connection *c = &d->connections[d->fd_connection[i]];
        if (d->fds[i].fd == c->receive_fd)
            receive(d, c, after);
        else
            try_send(d, c, after);
    }
}

/* Open mode: messages whose intended time has passed but which are not sent yet (estimated
 * from the mean gap, so exact for fixed arrivals). */
static uint64_t backlog(const struct driver *d, int64_t now)
{
    if (d->o->mode != RUSH_MODE_OPEN || !d->sending || rush_scenario_exhausted(d->in->scenario))
        return 0;
    double late_ns = (double)(now - rush_arrivals_peek(&d->arrivals));
    return late_ns < 0 ? 0 : (uint64_t)(late_ns / d->arrivals.gap_ns) + 1;
}

static void tick(struct driver *d, int64_t now)
{
    if (now >= d->next_scan_ns) {
        expire_slots(d, now);
        d->next_scan_ns = now + RUSH_DRIVER_TIMEOUT_SCAN_NS;
    }
    if (now >= d->next_progress_ns) {
        d->tally->backlog_messages = backlog(d, now);
        d->tally->requests_due =
            d->tally->requests_offered + d->tally->backlog_messages * d->o->batch;
        if (!d->o->quiet)
            rush_progress_print(&d->progress, d->tally, now, stderr);
        d->next_progress_ns += NS_PER_S;
    }
}

static bool finished(const struct driver *d)
{
    return d->tally->in_flight == 0 && (!d->sending || rush_scenario_exhausted(d->in->scenario));
}

static void run_loop(struct driver *d)
{
    int64_t now = rush_clock_monotonic_ns();
    rush_tally_init(d->tally, now);
    rush_progress_init(&d->progress, d->tally, now);
    if (d->o->mode == RUSH_MODE_OPEN)
        rush_arrivals_init(&d->arrivals, d->o->arrivals, d->o->rate_per_s, d->o->batch, now,
                           d->o->seed);
    d->sending = true;
    d->stop_send_ns = d->o->duration_s > 0 ? now + (int64_t)(d->o->duration_s * 1e9) : INT64_MAX;
    d->next_progress_ns = now + NS_PER_S;
    d->next_scan_ns = now + RUSH_DRIVER_TIMEOUT_SCAN_NS;
    for (;;) {
        now = rush_clock_monotonic_ns();
        bool stop = d->in->stop != NULL && *d->in->stop;
        if (d->sending && (now >= d->stop_send_ns || stop))
            stop_sending(d, now);
        for (uint32_t k = 0; k < d->count; k++)
            try_send(d, &d->connections[k], now);
        if (d->sending && d->o->mode == RUSH_MODE_CLOSED)
            fill_closed(d, now);
        else if (d->sending)
            fill_open(d, now);
        if (finished(d))
            break;
        poll_once(d, now);
        tick(d, rush_clock_monotonic_ns());
    }
    d->tally->end_ns = rush_clock_monotonic_ns();
}

/* ---- set-up ------------------------------------------------------------------------------- */

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
    if (nn_connect(c->sock, o->url) < 0 ||
        nn_getsockopt(c->sock, NN_SOL_SOCKET, NN_RCVFD, &c->receive_fd, &size) < 0 ||
        nn_getsockopt(c->sock, NN_SOL_SOCKET, NN_SNDFD, &c->send_fd, &size) < 0)
        return -nn_errno();
    c->slots = calloc(o->inflight, sizeof(*c->slots));
    c->free = calloc(o->inflight, sizeof(*c->free));
    c->buf_bytes = FRAME_BYTES + rush_wire_message_bytes(RUSH_WIRE_REQUEST, o->batch);
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

static void driver_free(struct driver *d)
{
    for (uint32_t k = 0; d->connections != NULL && k < d->count; k++)
        connection_close(&d->connections[k]);
    free(d->connections);
    free(d->fds);
    free(d->fd_connection);
    free(d->scratch);
}

int rush_driver_run(const struct rush_driver_input *input)
{
    RUSH_ASSERT(input != NULL && input->options != NULL && input->ledger != NULL &&
                input->scenario != NULL && input->tally != NULL);
    const struct rush_loadgen_options *o = input->options;
    RUSH_ASSERT(o->connections >= 1 && o->connections <= RUSH_LOADGEN_CONNECTIONS_MAX);
    RUSH_ASSERT(o->inflight >= 1 && o->inflight <= RUSH_LOADGEN_INFLIGHT_MAX);
    struct driver d = {.in = input, .o = o, .tally = input->tally, .count = o->connections};
    d.connections = calloc(d.count, sizeof(*d.connections));
    d.fds = calloc(2 * (size_t)d.count, sizeof(*d.fds));
    d.fd_connection = calloc(2 * (size_t)d.count, sizeof(*d.fd_connection));
    d.scratch = calloc(o->batch, sizeof(*d.scratch));
    int rc = d.connections && d.fds && d.fd_connection && d.scratch ? 0 : -ENOMEM;
    for (uint32_t k = 0; k < d.count && d.connections != NULL; k++)
        d.connections[k].sock = -1;
    for (uint32_t k = 0; k < d.count && rc == 0; k++)
        rc = connection_open(&d.connections[k], o);
    if (rc == 0)
        run_loop(&d);
    driver_free(&d);
    return rc;
}
