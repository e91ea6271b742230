/*
 * client.c — the client library's batching core: submissions, message slots, the I/O thread.
 *
 * Why. A gateway has thousands of threads or coroutines each holding one order; rushd is fast
 * when it gets orders in batches. The client turns the first into the second: submitters queue
 * their requests and sleep; one I/O thread packs what is queued into one wire message per free
 * slot, sends it on a raw nanomsg REQ socket (many messages in flight, replies in any order),
 * matches each reply to its slot by message id, copies the results straight into the callers'
 * arrays and wakes them (or runs their callbacks).
 *
 * Workload. Sized for one gateway process: up to RUSH_CLIENT_INFLIGHT_MAX messages in flight,
 * each of up to batch_requests_max requests; per wake-up the I/O thread receives at most
 * replies_per_pass_max replies and forms at most inflight_max messages. Everything is allocated
 * at open; a submit allocates nothing (a sync submission lives on the caller's stack, an async one
 * comes from a pool of async_max).
 *
 * State of a message slot (owned by the I/O thread):
 *
 *      FREE --form--> SENT --reply--> FREE        (results or ERROR scattered to callers)
 *                      |  ^
 *              timeout |  | resend, same bytes (attempts <= retries_max)
 *                      v  |
 *                     (expired) --attempts > retries_max--> FREE  (RUSH_ETIMEDOUT)
 *
 *   transition    function
 *   form          slot_form() under the lock, slot_encode() outside it
 *   send/resend   slot_send(), slots_expire()
 *   reply         reply_handle() -> slot_finish()
 *   close         io_main() tail -> slot_finish(RUSH_ESTOPPED), queue_fail()
 *
 * Invariants.
 *  1. A submission's requests are each in exactly one place: the pending queue (index >= sliced)
 *     or one busy slot's slice; `unanswered` counts those not yet answered, and the submission
 *     completes exactly once, when it reaches 0.
 *  2. pending_requests == sum over queued submissions of (count - sliced).
 *  3. A busy slot's message id is (sequence << 8) | slot index, so a reply finds its slot in O(1);
 *     a reply whose id matches no busy slot (late, after a resend completed it) is dropped.
 *  4. A resend carries the same bytes as the first send: same message id, same keys.
 *
 * Threads. `lock` guards the pending queue, the async pool, `stopping` and the sync
 * submissions' `done`. Slots, `sliced`, `unanswered` and the socket are the I/O thread's alone.
 */
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "client/client_internal.h"
#include "rush/assert.h"
#include "rush/client.h"
#include "rush/wire.h"

#define SLOT_INDEX_BITS 8
static_assert(RUSH_CLIENT_INFLIGHT_MAX <= (1u << SLOT_INDEX_BITS), "slot index fits the id");
#define REPLIES_PER_PASS_MAX (2 * RUSH_CLIENT_INFLIGHT_MAX)
#define UNSENT_POLL_NS (1000 * 1000) /* retry a send refused for want of a connection */
#define NS_PER_MS INT64_C(1000000)

struct submission {
    struct submission *next; /* pending queue, pool free list, or finished list */
    const struct rush_request *requests;
    struct rush_result *results;
    uint32_t count;
    uint32_t sliced;     /* requests handed to slots (I/O thread, under lock) */
    uint32_t unanswered; /* requests not yet answered (I/O thread) */
    int status;
    int64_t enqueued_ns;
    rush_client_callback *callback; /* NULL: a sync submission */
    void *context;
    bool done;           /* sync: under lock */
    pthread_cond_t cond; /* sync: signalled when done */
    char error[RUSH_CLIENT_ERROR_BYTES];
};

struct slice {
    struct submission *submission;
    uint32_t offset;
    uint32_t count;
};

struct slot {
    bool busy;
    bool unsent; /* the last send was refused (no connection yet) */
    uint32_t attempts;
    uint64_t message_id;
    int64_t deadline_ns;
    uint32_t request_count;
    uint32_t slice_count;
    struct slice *slices; /* batch_requests_max */
    uint8_t *buf;
    size_t bytes;
};

struct counters {
    _Atomic uint64_t submits, requests_sent, messages_sent, retries, replies, replies_stale, errors,
        timeouts, batch_requests_max_seen;
};

struct rush_client {
    struct rush_client_config config;
    char url[RUSH_CLIENT_URL_BYTES_MAX];
    int socket;
    int wake_fd; /* eventfd: submitters and close wake the I/O thread */
    int receive_fd;
    pthread_t io_thread;

    pthread_mutex_t lock;
    bool stopping;
    struct submission *queue_head, *queue_tail;
    uint64_t pending_requests;
    struct submission *pool; /* async_max */
    struct submission *pool_free;
    uint32_t async_waiting;

    /* I/O thread only. */
    struct slot *slots;
    struct rush_request *staging; /* batch_requests_max */
    uint64_t message_seq;
    size_t message_bytes_max;
    struct counters counters;
};

static _Thread_local char last_error[RUSH_CLIENT_ERROR_BYTES];
static _Thread_local const struct rush_client *io_self; /* set on each client's I/O thread */

static void error_set(char *buf, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void error_set(char *buf, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(buf, RUSH_CLIENT_ERROR_BYTES, format, args);
    va_end(args);
}

const char *rush_client_last_error(void)
{
    return last_error;
}

void rush__client_error_set(const char *text)
{
    snprintf(last_error, sizeof last_error, "%s", text);
}

static void counter_add(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static void wake(struct rush_client *client)
{
    uint64_t one = 1;
    ssize_t rc = write(client->wake_fd, &one, sizeof one);
    (void)rc; /* EAGAIN: the counter is already nonzero, the thread will wake anyway */
}

/* ---- completion (I/O thread) ---- */

/* Answers n requests of s with status; puts s on *finished when it has no request left. */
static void submission_answer(struct submission *s, uint32_t n, int status, const char *text,
                              struct submission **finished)
{
    RUSH_ASSERT(n <= s->unanswered);
    if (status < 0 && s->status == 0) {
        s->status = status;
        snprintf(s->error, sizeof s->error, "%s", text);
    }
    s->unanswered -= n;
    if (s->unanswered == 0) {
        s->next = *finished;
        *finished = s;
    }
}

/* Wakes the sync callers and runs the async callbacks of a finished list. */
static void submissions_complete(struct rush_client *client, struct submission *finished)
{
    struct submission *async_list = NULL;
    pthread_mutex_lock(&client->lock);
    while (finished != NULL) { /* bounded: each submission is on the list once */
        struct submission *s = finished;
        finished = s->next;
        if (s->callback == NULL) {
            s->done = true;
            pthread_cond_signal(&s->cond); /* s may vanish once the lock is released */
        } else {
            s->next = async_list;
            async_list = s;
        }
    }
    pthread_mutex_unlock(&client->lock);
    for (struct submission *s = async_list; s != NULL; s = s->next) {
        snprintf(last_error, sizeof last_error, "%s", s->status < 0 ? s->error : "");
        s->callback(s->context, s->status, s->results, s->count);
    }
    pthread_mutex_lock(&client->lock);
    while (async_list != NULL) {
        struct submission *s = async_list;
        async_list = s->next;
        s->next = client->pool_free;
        client->pool_free = s;
        client->async_waiting--;
    }
    pthread_mutex_unlock(&client->lock);
}

/* Frees a slot, answering its slices with status (0: results already scattered). */
static void slot_finish(struct rush_client *client, struct slot *slot, int status, const char *text)
{
    RUSH_ASSERT(slot->busy);
    struct submission *finished = NULL;
    for (uint32_t i = 0; i < slot->slice_count; i++)
        submission_answer(slot->slices[i].submission, slot->slices[i].count, status, text,
                          &finished);
    slot->busy = false;
    slot->slice_count = 0;
    submissions_complete(client, finished);
}

/* Answers every queued request with status (close). */
static void queue_fail(struct rush_client *client, int status, const char *text)
{
    pthread_mutex_lock(&client->lock);
    struct submission *s = client->queue_head;
    client->queue_head = client->queue_tail = NULL;
    client->pending_requests = 0;
    pthread_mutex_unlock(&client->lock);
    struct submission *finished = NULL;
    while (s != NULL) { /* bounded by the queue's length */
        struct submission *next = s->next;
        uint32_t left = s->count - s->sliced;
        s->sliced = s->count;
        submission_answer(s, left, status, text, &finished);
        s = next;
    }
    submissions_complete(client, finished);
}

/* ---- forming and sending messages (I/O thread) ---- */

/* Takes up to batch_requests_max queued requests into a free slot. Under lock. */
static void slot_form(struct rush_client *client, struct slot *slot)
{
    uint32_t taken = 0;
    slot->slice_count = 0;
    while (client->queue_head != NULL && taken < client->config.batch_requests_max) {
        struct submission *s = client->queue_head;
        uint32_t take = s->count - s->sliced;
        if (take > client->config.batch_requests_max - taken)
            take = client->config.batch_requests_max - taken;
        slot->slices[slot->slice_count++] =
            (struct slice){.submission = s, .offset = s->sliced, .count = take};
        s->sliced += take;
        taken += take;
        client->pending_requests -= take;
        if (s->sliced == s->count) {
            client->queue_head = s->next;
            if (client->queue_head == NULL)
                client->queue_tail = NULL;
        }
    }
    RUSH_ASSERT(taken > 0);
    slot->request_count = taken;
    slot->busy = true;
}

/* Encodes a formed slot's requests into its buffer. Outside the lock: the arrays are fixed. */
static void slot_encode(struct rush_client *client, struct slot *slot, uint32_t slot_index)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < slot->slice_count; i++) {
        const struct slice *slice = &slot->slices[i];
        memcpy(&client->staging[n], slice->submission->requests + slice->offset,
               slice->count * sizeof(struct rush_request));
        n += slice->count;
    }
    RUSH_ASSERT(n == slot->request_count);
    slot->message_id = (++client->message_seq << SLOT_INDEX_BITS) | slot_index;
    int bytes = rush_wire_encode_requests(slot->buf, client->message_bytes_max, slot->message_id,
                                          client->staging, n);
    RUSH_ASSERT(bytes > 0); /* requests were checked at submit */
    slot->bytes = (size_t)bytes;
    slot->attempts = 0;
    counter_add(&client->counters.messages_sent, 1);
    counter_add(&client->counters.requests_sent, n);
    uint64_t seen =
        atomic_load_explicit(&client->counters.batch_requests_max_seen, memory_order_relaxed);
    if (n > seen)
        atomic_store_explicit(&client->counters.batch_requests_max_seen, n, memory_order_relaxed);
}

/*
 * Sends (or resends) a slot's message with a nanomsg request id in the SP header, as a raw REQ
 * socket must; rushd's raw REP echoes it and our header's message id. A send refused for want
 * of a connection leaves the slot unsent; its deadline runs all the same.
 */
static void slot_send(struct rush_client *client, struct slot *slot, int64_t now, bool new_attempt)
{
    uint32_t id = 0x80000000u | (uint32_t)slot->message_id;
    uint8_t header[4] = {(uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    size_t header_bytes = sizeof header;
    union {
        struct nn_cmsghdr cmsg;
        uint8_t bytes[NN_CMSG_SPACE(sizeof(size_t) + sizeof header)];
    } control;
    memset(&control, 0, sizeof control);
    control.cmsg.cmsg_len = NN_CMSG_LEN(sizeof(size_t) + sizeof header);
    control.cmsg.cmsg_level = PROTO_SP;
    control.cmsg.cmsg_type = SP_HDR;
    memcpy(NN_CMSG_DATA(&control.cmsg), &header_bytes, sizeof header_bytes);
    memcpy(NN_CMSG_DATA(&control.cmsg) + sizeof header_bytes, header, sizeof header);
    struct nn_iovec iov = {.iov_base = slot->buf, .iov_len = slot->bytes};
    struct nn_msghdr message = {.msg_iov = &iov,
                                .msg_iovlen = 1,
                                .msg_control = &control,
                                .msg_controllen = sizeof control};
    if (new_attempt) {
        slot->attempts++;
        slot->deadline_ns = now + (int64_t)client->config.timeout_ms * NS_PER_MS;
    }
    slot->unsent = nn_sendmsg(client->socket, &message, NN_DONTWAIT) < 0;
}

/* Forms messages while requests wait, a slot is free and the batch is due. Returns the
 * deadline at which the oldest waiting request's batch is due, or INT64_MAX. */
static int64_t messages_form(struct rush_client *client, int64_t now)
{
    uint32_t formed[RUSH_CLIENT_INFLIGHT_MAX];
    uint32_t formed_count = 0;
    int64_t due_ns = INT64_MAX;
    int64_t delay_ns = (int64_t)client->config.batch_delay_us * 1000;
    pthread_mutex_lock(&client->lock);
    for (uint32_t i = 0; i < client->config.inflight_max && client->queue_head != NULL; i++) {
        if (client->slots[i].busy)
            continue;
        bool full = client->pending_requests >= client->config.batch_requests_max;
        if (!full && now < client->queue_head->enqueued_ns + delay_ns) {
            due_ns = client->queue_head->enqueued_ns + delay_ns;
            break;
        }
        slot_form(client, &client->slots[i]);
        formed[formed_count++] = i;
    }
    pthread_mutex_unlock(&client->lock);
    for (uint32_t i = 0; i < formed_count; i++) {
        struct slot *slot = &client->slots[formed[i]];
        slot_encode(client, slot, formed[i]);
        slot_send(client, slot, now, true);
    }
    return due_ns;
}

/* Resends expired slots, gives up on those out of retries. Returns the next deadline. */
static int64_t slots_expire(struct rush_client *client, int64_t now)
{
    int64_t next_ns = INT64_MAX;
    for (uint32_t i = 0; i < client->config.inflight_max; i++) {
        struct slot *slot = &client->slots[i];
        if (!slot->busy)
            continue;
        if (now >= slot->deadline_ns && slot->attempts > client->config.retries_max) {
            char text[RUSH_CLIENT_ERROR_BYTES];
            error_set(text, "no reply from %s after %u attempts of %u ms", client->url,
                      slot->attempts, client->config.timeout_ms);
            counter_add(&client->counters.timeouts, 1);
            slot_finish(client, slot, RUSH_ETIMEDOUT, text);
            continue;
        }
        if (now >= slot->deadline_ns) {
            counter_add(&client->counters.retries, 1);
            slot_send(client, slot, now, true);
        } else if (slot->unsent) {
            slot_send(client, slot, now, false);
        }
        int64_t at = slot->unsent ? now + UNSENT_POLL_NS : slot->deadline_ns;
        if (at < next_ns)
            next_ns = at;
    }
    return next_ns;
}

/* ---- replies (I/O thread) ---- */

static void reply_scatter(struct slot *slot, const struct rush_wire_view *view)
{
    const uint8_t *records = view->records;
    uint32_t at = 0;
    for (uint32_t i = 0; i < slot->slice_count; i++) {
        const struct slice *slice = &slot->slices[i];
        memcpy(slice->submission->results + slice->offset,
               records + (size_t)at * sizeof(struct rush_result),
               slice->count * sizeof(struct rush_result));
        at += slice->count;
    }
}

static void reply_handle(struct rush_client *client, const void *buf, size_t len)
{
    struct rush_wire_view view;
    struct rush_wire_error error;
    memset(&view, 0, sizeof view);
    int rc = rush_wire_decode(buf, len, &view, &error);
    struct slot *slot = &client->slots[view.message_id & ((1u << SLOT_INDEX_BITS) - 1)];
    if ((view.message_id & ((1u << SLOT_INDEX_BITS) - 1)) >= client->config.inflight_max ||
        !slot->busy || slot->message_id != view.message_id) {
        counter_add(&client->counters.replies_stale, 1);
        return;
    }
    counter_add(&client->counters.replies, 1);
    char text[RUSH_CLIENT_ERROR_BYTES];
    if (rc < 0) {
        error_set(text, "invalid reply: %s", error.text);
    } else if (view.kind == RUSH_WIRE_ERROR) {
        error_set(text, "%s", view.error.text);
    } else if (view.kind != RUSH_WIRE_RESULT || view.count != slot->request_count) {
        error_set(text, "reply of kind %s with %u records to %u requests",
                  rush_wire_kind_name(view.kind), view.count, slot->request_count);
    } else {
        reply_scatter(slot, &view);
        slot_finish(client, slot, 0, "");
        return;
    }
    counter_add(&client->counters.errors, 1);
    slot_finish(client, slot, RUSH_EPROTO, text);
}

static void replies_receive(struct rush_client *client)
{
    for (uint32_t i = 0; i < REPLIES_PER_PASS_MAX; i++) {
        void *buf = NULL;
        int len = nn_recv(client->socket, &buf, NN_MSG, NN_DONTWAIT);
        if (len < 0) {
            RUSH_ASSERT(nn_errno() == EAGAIN || nn_errno() == EINTR || nn_errno() == ETERM);
            return;
        }
        reply_handle(client, buf, (size_t)len);
        nn_freemsg(buf);
    }
}

/* ---- the I/O thread ---- */

static void io_wait(struct rush_client *client, int64_t now, int64_t until_ns)
{
    struct pollfd fds[2] = {{.fd = client->wake_fd, .events = POLLIN},
                            {.fd = client->receive_fd, .events = POLLIN}};
    struct timespec timeout = {0, 0};
    if (until_ns > now) {
        int64_t wait_ns = until_ns - now;
        timeout.tv_sec = wait_ns / 1000000000;
        timeout.tv_nsec = wait_ns % 1000000000;
    }
    int rc = ppoll(fds, 2, until_ns == INT64_MAX ? NULL : &timeout, NULL);
    if (rc > 0 && (fds[0].revents & POLLIN)) {
        uint64_t value;
        ssize_t got = read(client->wake_fd, &value, sizeof value);
        (void)got;
    }
}

static void *io_main(void *arg)
{
    struct rush_client *client = arg;
    io_self = client;
    for (;;) { /* one pass per wake-up; ends at close */
        pthread_mutex_lock(&client->lock);
        bool stopping = client->stopping;
        pthread_mutex_unlock(&client->lock);
        if (stopping)
            break;
        replies_receive(client);
        int64_t now = rush_clock_monotonic_ns();
        /* form first: the deadlines slots_expire() returns must include the new messages' */
        int64_t due_ns = messages_form(client, now);
        int64_t next_ns = slots_expire(client, now);
        if (due_ns < next_ns)
            next_ns = due_ns;
        io_wait(client, now, next_ns);
    }
    for (uint32_t i = 0; i < client->config.inflight_max; i++)
        if (client->slots[i].busy)
            slot_finish(client, &client->slots[i], RUSH_ESTOPPED, "client closed");
    queue_fail(client, RUSH_ESTOPPED, "client closed");
    return NULL;
}

/* ---- open and close ---- */

static int client_allocate(struct rush_client *client)
{
    const struct rush_client_config *config = &client->config;
    client->message_bytes_max =
        rush_wire_message_bytes(RUSH_WIRE_REQUEST, config->batch_requests_max);
    client->slots = calloc(config->inflight_max, sizeof *client->slots);
    client->staging = calloc(config->batch_requests_max, sizeof *client->staging);
    client->pool = calloc(config->async_max, sizeof *client->pool);
    if (client->slots == NULL || client->staging == NULL || client->pool == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < config->inflight_max; i++) {
        struct slot *slot = &client->slots[i];
        slot->slices = calloc(config->batch_requests_max, sizeof *slot->slices);
        slot->buf = malloc(client->message_bytes_max);
        if (slot->slices == NULL || slot->buf == NULL)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < config->async_max; i++) {
        client->pool[i].next = client->pool_free;
        client->pool_free = &client->pool[i];
    }
    return 0;
}

static void client_free(struct rush_client *client)
{
    if (client->slots != NULL)
        for (uint32_t i = 0; i < client->config.inflight_max; i++) {
            free(client->slots[i].slices);
            free(client->slots[i].buf);
        }
    free(client->slots);
    free(client->staging);
    free(client->pool);
    free(client);
}

static int socket_open(struct rush_client *client)
{
    client->socket = nn_socket(AF_SP_RAW, NN_REQ);
    if (client->socket < 0)
        return -nn_errno();
    /* Pipelined small requests: without it Nagle holds one back until the reply's ACK. */
    int nodelay = 1;
    (void)nn_setsockopt(client->socket, NN_TCP, NN_TCP_NODELAY, &nodelay, sizeof(nodelay));
    int rc = nn_connect(client->socket, client->url);
    if (rc < 0) {
        rc = -nn_errno();
        error_set(last_error, "cannot connect to '%s': %s", client->url, nn_strerror(-rc));
        return rc;
    }
    size_t size = sizeof client->receive_fd;
    if (nn_getsockopt(client->socket, NN_SOL_SOCKET, NN_RCVFD, &client->receive_fd, &size) < 0)
        return -nn_errno();
    int receive_bytes_max = (int)RUSH_WIRE_MESSAGE_BYTES_MAX;
    if (nn_setsockopt(client->socket, NN_SOL_SOCKET, NN_RCVMAXSIZE, &receive_bytes_max,
                      sizeof receive_bytes_max) < 0)
        return -nn_errno();
    return 0;
}

static uint64_t sequence_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (uint64_t)rush_clock_monotonic_ns();
    return seed >> 24; /* leaves room for the slot index and 2^16 messages per unit */
}

/* Starts the I/O thread with every signal blocked: a library thread must not take them. */
static int thread_start(struct rush_client *client)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&client->io_thread, NULL, io_main, client);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

int rush_client_open(const struct rush_client_config *config, struct rush_client **out)
{
    RUSH_ASSERT(config != NULL && out != NULL);
    *out = NULL;
    last_error[0] = '\0';
    int rc = rush_client_config_check(config, last_error, sizeof last_error);
    if (rc < 0)
        return rc;
    struct rush_client *client = calloc(1, sizeof *client);
    if (client == NULL)
        return -ENOMEM;
    client->config = *config;
    snprintf(client->url, sizeof client->url, "%s", config->url);
    client->config.url = client->url;
    client->socket = -1;
    client->wake_fd = -1;
    client->message_seq = sequence_seed();
    rc = client_allocate(client);
    if (rc < 0)
        goto out_free;
    client->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (client->wake_fd < 0) {
        rc = -errno;
        goto out_free;
    }
    rc = socket_open(client);
    if (rc < 0)
        goto out_close_socket;
    pthread_mutex_init(&client->lock, NULL);
    rc = thread_start(client);
    if (rc < 0)
        goto out_destroy_lock;
    *out = client;
    return 0;
out_destroy_lock:
    pthread_mutex_destroy(&client->lock);
out_close_socket:
    if (client->socket >= 0)
        nn_close(client->socket);
    close(client->wake_fd);
out_free:
    client_free(client);
    return rc;
}

void rush_client_close(struct rush_client *client)
{
    if (client == NULL)
        return;
    RUSH_ASSERT(io_self != client);
    pthread_mutex_lock(&client->lock);
    client->stopping = true;
    pthread_mutex_unlock(&client->lock);
    wake(client);
    pthread_join(client->io_thread, NULL);
    RUSH_ASSERT(client->async_waiting == 0 && client->queue_head == NULL);
    nn_close(client->socket);
    close(client->wake_fd);
    pthread_mutex_destroy(&client->lock);
    client_free(client);
}

/* ---- submitting ---- */

static int requests_check(const struct rush_request *requests, uint32_t count,
                          const struct rush_result *results)
{
    if (requests == NULL || results == NULL || count < 1 || count > RUSH_WIRE_REQUESTS_MAX) {
        error_set(last_error, "count %u out of range 1..%u, or a NULL array", count,
                  RUSH_WIRE_REQUESTS_MAX);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (requests[i].flags != 0 || requests[i].pad != 0) {
            error_set(last_error, "request %u: reserved fields flags and pad must be zero", i);
            return -EINVAL;
        }
    }
    return 0;
}

/* Queues s. Under lock; wakes the I/O thread when the queue was empty or is now a full batch. */
static void queue_push(struct rush_client *client, struct submission *s)
{
    bool was_empty = client->queue_head == NULL;
    bool was_short = client->pending_requests < client->config.batch_requests_max;
    s->next = NULL;
    s->enqueued_ns = rush_clock_monotonic_ns();
    if (client->queue_tail != NULL)
        client->queue_tail->next = s;
    else
        client->queue_head = s;
    client->queue_tail = s;
    client->pending_requests += s->count;
    bool now_full = client->pending_requests >= client->config.batch_requests_max;
    if (was_empty || (was_short && now_full))
        wake(client);
}

static void submission_init(struct submission *s, const struct rush_request *requests,
                            uint32_t count, struct rush_result *results)
{
    s->requests = requests;
    s->results = results;
    s->count = count;
    s->sliced = 0;
    s->unanswered = count;
    s->status = 0;
    s->error[0] = '\0';
    s->done = false;
}

int rush_client_submit(struct rush_client *client, const struct rush_request *requests,
                       uint32_t count, struct rush_result *results)
{
    RUSH_ASSERT(client != NULL);
    if (io_self == client) {
        error_set(last_error, "rush_client_submit called from a callback");
        return -EDEADLK;
    }
    int rc = requests_check(requests, count, results);
    if (rc < 0)
        return rc;
    struct submission s = {.callback = NULL};
    submission_init(&s, requests, count, results);
    pthread_cond_init(&s.cond, NULL);
    pthread_mutex_lock(&client->lock);
    if (client->stopping) {
        pthread_mutex_unlock(&client->lock);
        pthread_cond_destroy(&s.cond);
        error_set(last_error, "client closed");
        return RUSH_ESTOPPED;
    }
    counter_add(&client->counters.submits, 1);
    queue_push(client, &s);
    while (!s.done) /* the I/O thread answers every submission: by reply, timeout or close */
        pthread_cond_wait(&s.cond, &client->lock);
    pthread_mutex_unlock(&client->lock);
    pthread_cond_destroy(&s.cond);
    if (s.status < 0)
        snprintf(last_error, sizeof last_error, "%s", s.error);
    return s.status;
}

int rush_client_submit_async(struct rush_client *client, const struct rush_request *requests,
                             uint32_t count, struct rush_result *results,
                             rush_client_callback *callback, void *context)
{
    RUSH_ASSERT(client != NULL && callback != NULL);
    int rc = requests_check(requests, count, results);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&client->lock);
    if (client->stopping || client->pool_free == NULL) {
        rc = client->stopping ? RUSH_ESTOPPED : RUSH_EFULL;
        pthread_mutex_unlock(&client->lock);
        error_set(last_error, "%s",
                  rc == RUSH_EFULL ? "async_max submissions waiting" : "client closed");
        return rc;
    }
    struct submission *s = client->pool_free;
    client->pool_free = s->next;
    client->async_waiting++;
    submission_init(s, requests, count, results);
    s->callback = callback;
    s->context = context;
    counter_add(&client->counters.submits, 1);
    queue_push(client, s);
    pthread_mutex_unlock(&client->lock);
    return 0;
}

void rush_client_stats(const struct rush_client *client, struct rush_client_stats *stats)
{
    RUSH_ASSERT(client != NULL && stats != NULL);
    const struct counters *c = &client->counters;
    *stats = (struct rush_client_stats){
        .submits = atomic_load_explicit(&c->submits, memory_order_relaxed),
        .requests_sent = atomic_load_explicit(&c->requests_sent, memory_order_relaxed),
        .messages_sent = atomic_load_explicit(&c->messages_sent, memory_order_relaxed),
        .retries = atomic_load_explicit(&c->retries, memory_order_relaxed),
        .replies = atomic_load_explicit(&c->replies, memory_order_relaxed),
        .replies_stale = atomic_load_explicit(&c->replies_stale, memory_order_relaxed),
        .errors = atomic_load_explicit(&c->errors, memory_order_relaxed),
        .timeouts = atomic_load_explicit(&c->timeouts, memory_order_relaxed),
        .batch_requests_max_seen =
            atomic_load_explicit(&c->batch_requests_max_seen, memory_order_relaxed),
    };
}
