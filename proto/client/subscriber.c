/*
 * subscriber.c — the stream consumer (rush/subscriber.h): PUB messages in, replay for the gaps,
 * every event out once, in order per shard.
 *
 * Why. PUB drops messages for a slow subscriber and says nothing; a downstream order service
 * must still see every confirmed order exactly once. The subscriber therefore treats PUB as a
 * fast path and a source of news about each shard's head, and the replay endpoint as the truth:
 * whatever PUB cannot deliver contiguously is fetched again, from the cursor.
 *
 * Workload. One consumer process per subscriber: up to PUB_MESSAGES_PER_PASS_MAX PUB messages
 * received per pass, one replay request in flight at a time (up to replay_events_max events),
 * one received message held for delivery. Nothing is allocated after open except nanomsg's own
 * message buffers (one held at a time).
 *
 * State of a shard (delivered = the cursor, head = the newest seq announced):
 *
 *            PUB message starting at <= delivered + 1 (held, then delivered)
 *          +-------------+
 *          v             |
 *     CURRENT (delivered >= head) --PUB later than delivered + 1, or heartbeat head > delivered-->
 *     BEHIND (head > delivered) --REPLAY from delivered + 1, paged--> ... --> CURRENT
 *     BEHIND --TOO_OLD--> LOST (poll answers -ENODATA) --set_cursor--> CURRENT or BEHIND
 *     BEHIND --TOO_OLD with skip_lost--> BEHIND from oldest_seq (events_skipped)
 *
 *   transition      function
 *   news of head    message_handle(), info_apply(), replay_apply()
 *   hold, deliver   held_take(), held_deliver()
 *   replay request  request_drive() -> request_send()
 *   lost            replay_lost()
 *
 * Invariants.
 *  1. Per shard, delivered_seq only grows (except through set_cursor), by exactly 1 per event
 *     handed out: nothing is delivered twice or skipped (except a lost range with skip_lost).
 *  2. The held message, when there is one, is of one shard, its events are consecutive (the
 *     decoder checked) and it covers delivered_seq + 1 of that shard.
 *  3. At most one request is in flight; its reply is matched by the cooked REQ socket (a late
 *     reply to an earlier attempt is dropped by nanomsg).
 *  4. Nothing is delivered while the shard count is unknown.
 *
 * Threads: one at a time (the caller's); no lock, no thread of its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/why.h"
#include "rush/assert.h"
#include "rush/subscriber.h"

#define PUB_MESSAGES_PER_PASS_MAX 64
#define NS_PER_MS INT64_C(1000000)
#define WHY_BYTES 120

struct shard_state {
    uint64_t delivered_seq;
    uint64_t head_seq;
    uint64_t oldest_seq;
    uint64_t synced_head_seq; /* the head the INFO answering the last resync reported */
    bool lost;
    bool gap_open; /* a gap was detected and is not filled yet */
};

struct request {
    bool in_flight;
    bool sync; /* an INFO asked after the last resync */
    uint32_t attempts;
    int64_t deadline_ns;
    struct rush_stream_request message;
};

struct held {
    void *message; /* a nanomsg message; NULL: none */
    struct rush_stream_view view;
    uint32_t index;
    bool replayed;
};

struct rush_subscriber {
    struct rush_subscriber_config config;
    char pub_url[RUSH_SUBSCRIBER_URL_BYTES_MAX];
    char replay_url[RUSH_SUBSCRIBER_URL_BYTES_MAX];
    int pub_socket;
    int replay_socket;
    int pub_fd;
    int replay_fd;
    uint32_t shard_count; /* 0: unknown */
    uint64_t output_bytes;
    struct shard_state shards[RUSH_SHARDS_MAX];
    struct request request;
    struct held held;
    bool info_wanted;
    bool sync_pending;
    uint32_t replay_next_shard; /* round robin over the shards that are behind */
    int64_t activity_ns;        /* the last PUB message or INFO answer */
    int sticky;                 /* RUSH_ECONFIG once the shard counts disagree */
    struct rush_subscriber_stats stats;
    char error[RUSH_SUBSCRIBER_ERROR_BYTES];
};

static _Thread_local char open_error[RUSH_SUBSCRIBER_ERROR_BYTES];

__attribute__((format(printf, 3, 4))) static int fail(struct rush_subscriber *sub, int rc,
                                                      const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(sub->error, sizeof sub->error, format, args);
    va_end(args);
    return rc;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* ---- configuration ---- */

void rush_subscriber_config_default(struct rush_subscriber_config *config)
{
    RUSH_ASSERT(config != NULL);
    *config = (struct rush_subscriber_config){
        .pub_url = "tcp://127.0.0.1:7103",
        .replay_url = "tcp://127.0.0.1:7104",
        .replay_timeout_ms = 1000,
        .replay_retries_max = 3,
        .replay_events_max = RUSH_STREAM_REPLAY_MAX,
        .info_interval_ms = 1000,
        .receive_buffer_bytes = 64u << 20,
        .skip_lost = false,
    };
}

/* Says why in why[] and returns RUSH_ECONFIG. */
#define refuse(why, why_size, ...) rush__refuse(RUSH_ECONFIG, why, why_size, __VA_ARGS__)

static bool url_fits(const char *url)
{
    return url != NULL && url[0] != '\0' && strlen(url) < RUSH_SUBSCRIBER_URL_BYTES_MAX;
}

int rush_subscriber_config_check(const struct rush_subscriber_config *config, char *why,
                                 size_t why_size)
{
    RUSH_ASSERT(config != NULL);
    if (!url_fits(config->pub_url) || !url_fits(config->replay_url))
        return refuse(why, why_size, "pub_url and replay_url must be 1..%d bytes",
                      RUSH_SUBSCRIBER_URL_BYTES_MAX - 1);
    if (config->replay_timeout_ms < 1 || config->replay_timeout_ms > RUSH_SUBSCRIBER_TIMEOUT_MS_MAX)
        return refuse(why, why_size, "replay_timeout_ms %u is out of range 1..%u",
                      config->replay_timeout_ms, RUSH_SUBSCRIBER_TIMEOUT_MS_MAX);
    if (config->replay_retries_max > RUSH_SUBSCRIBER_RETRIES_MAX)
        return refuse(why, why_size, "replay_retries_max %u is out of range 0..%u",
                      config->replay_retries_max, RUSH_SUBSCRIBER_RETRIES_MAX);
    if (config->replay_events_max < 1 || config->replay_events_max > RUSH_STREAM_REPLAY_MAX)
        return refuse(why, why_size, "replay_events_max %u is out of range 1..%d",
                      config->replay_events_max, RUSH_STREAM_REPLAY_MAX);
    if (config->info_interval_ms < RUSH_SUBSCRIBER_INFO_INTERVAL_MS_MIN ||
        config->info_interval_ms > RUSH_SUBSCRIBER_INFO_INTERVAL_MS_MAX)
        return refuse(why, why_size, "info_interval_ms %u is out of range %u..%u",
                      config->info_interval_ms, RUSH_SUBSCRIBER_INFO_INTERVAL_MS_MIN,
                      RUSH_SUBSCRIBER_INFO_INTERVAL_MS_MAX);
    if (config->receive_buffer_bytes < RUSH_SUBSCRIBER_RECEIVE_BYTES_MIN ||
        config->receive_buffer_bytes > RUSH_SUBSCRIBER_RECEIVE_BYTES_MAX)
        return refuse(why, why_size, "receive_buffer_bytes %u is out of range %u..%u",
                      config->receive_buffer_bytes, RUSH_SUBSCRIBER_RECEIVE_BYTES_MIN,
                      RUSH_SUBSCRIBER_RECEIVE_BYTES_MAX);
    return 0;
}

/* ---- delivering ---- */

static void held_release(struct rush_subscriber *sub)
{
    if (sub->held.message != NULL)
        nn_freemsg(sub->held.message);
    memset(&sub->held, 0, sizeof sub->held);
}

/* Holds a message that covers its shard's delivered_seq + 1 (invariant 2). Takes `message`. */
static void held_take(struct rush_subscriber *sub, void *message,
                      const struct rush_stream_view *view, bool replayed)
{
    RUSH_ASSERT(sub->held.message == NULL && view->header.count > 0);
    struct rush_stream_event first;
    rush_stream_view_event(view, 0, &first);
    RUSH_ASSERT(first.seq <= sub->shards[view->header.shard].delivered_seq + 1);
    sub->held = (struct held){.message = message, .view = *view, .replayed = replayed};
}

/* True when events first_seq .. first_seq + count - 1 cover the shard's next seq. */
static bool covers_next(const struct shard_state *state, uint64_t first_seq, uint32_t count)
{
    return count > 0 && first_seq <= state->delivered_seq + 1 &&
           first_seq + count - 1 > state->delivered_seq;
}

/* Copies up to max events of the held message out, dropping those already delivered. */
static uint32_t held_deliver(struct rush_subscriber *sub, struct rush_stream_event *out,
                             uint32_t max)
{
    if (sub->held.message == NULL)
        return 0;
    struct held *held = &sub->held;
    struct shard_state *state = &sub->shards[held->view.header.shard];
    uint32_t n = 0;
    while (held->index < held->view.header.count && n < max) { /* bounded by count */
        rush_stream_view_event(&held->view, held->index++, &out[n]);
        if (out[n].seq <= state->delivered_seq) {
            sub->stats.duplicates_dropped++;
            continue;
        }
        RUSH_ASSERT(out[n].seq == state->delivered_seq + 1); /* invariant 1 */
        state->delivered_seq = out[n].seq;
        n++;
    }
    sub->stats.events_delivered += n;
    if (held->replayed)
        sub->stats.events_replayed += n;
    if (held->index == held->view.header.count)
        held_release(sub);
    if (state->gap_open && state->delivered_seq >= state->head_seq) {
        state->gap_open = false;
        sub->stats.gaps_filled++;
    }
    return n;
}

/* ---- PUB messages ---- */

/* 0 when a decoded PUB message is an event run of the publisher's shard count. */
static int message_check(const struct rush_subscriber *sub, const struct rush_stream_header *header,
                         char *why, size_t why_size)
{
    if (header->kind != RUSH_STREAM_EVENTS || header->status != RUSH_STREAM_OK) {
        snprintf(why, why_size, "kind %u, status %u on PUB", header->kind, header->status);
        return RUSH_EPROTO;
    }
    if (sub->shard_count != 0 && header->shard_count != sub->shard_count) {
        snprintf(why, why_size, "%u shards, not %u", header->shard_count, sub->shard_count);
        return RUSH_EPROTO;
    }
    return 0;
}

static void message_handle(struct rush_subscriber *sub, void *message, size_t len, int64_t now)
{
    struct rush_stream_view view;
    char why[WHY_BYTES] = "";
    int rc = rush_stream_decode(message, len, &view, why, sizeof why);
    const struct rush_stream_header *header = &view.header;
    if (rc == 0)
        rc = message_check(sub, header, why, sizeof why);
    if (rc < 0) {
        sub->stats.malformed++;
        fail(sub, 0, "PUB message dropped: %s", why);
        nn_freemsg(message);
        return;
    }
    sub->stats.messages_received++;
    sub->stats.heartbeats += header->count == 0;
    sub->stats.events_received += header->count;
    sub->activity_ns = now;
    struct shard_state *state = &sub->shards[header->shard];
    state->head_seq = max_u64(state->head_seq, header->head_seq);
    struct rush_stream_event first = {.seq = 0};
    if (header->count > 0)
        rush_stream_view_event(&view, 0, &first);
    if (sub->shard_count != 0 && !state->lost && covers_next(state, first.seq, header->count)) {
        held_take(sub, message, &view, false);
        return;
    }
    if (header->count > 0 && first.seq + header->count - 1 <= state->delivered_seq)
        sub->stats.duplicates_dropped += header->count;
    if (state->head_seq > state->delivered_seq && !state->gap_open) {
        state->gap_open = true;
        sub->stats.gaps_detected++;
    }
    nn_freemsg(message);
}

static void messages_receive(struct rush_subscriber *sub, int64_t now)
{
    for (uint32_t i = 0; i < PUB_MESSAGES_PER_PASS_MAX && sub->held.message == NULL; i++) {
        void *message = NULL;
        int len = nn_recv(sub->pub_socket, &message, NN_MSG, NN_DONTWAIT);
        if (len < 0) {
            RUSH_ASSERT(nn_errno() == EAGAIN || nn_errno() == EINTR || nn_errno() == ETERM);
            return;
        }
        message_handle(sub, message, (size_t)len, now);
    }
}

/* ---- replay requests ---- */

static void request_send(struct rush_subscriber *sub, int64_t now)
{
    struct request *request = &sub->request;
    request->attempts++;
    request->deadline_ns = now + (int64_t)sub->config.replay_timeout_ms * NS_PER_MS;
    /* a cooked REQ socket queues the request until it has a peer, and a new send cancels the
     * previous attempt, whose late reply nanomsg then drops (invariant 3) */
    int rc = nn_send(sub->replay_socket, &request->message, sizeof request->message, NN_DONTWAIT);
    RUSH_ASSERT(rc == (int)sizeof request->message || nn_errno() == EAGAIN || nn_errno() == EINTR);
    request->in_flight = true;
}

/* The next shard that is behind its head, round robin; shard_count when none. */
static uint32_t shard_behind(struct rush_subscriber *sub)
{
    for (uint32_t k = 0; k < sub->shard_count; k++) {
        uint32_t s = (sub->replay_next_shard + k) % sub->shard_count;
        const struct shard_state *state = &sub->shards[s];
        if (!state->lost && state->head_seq > state->delivered_seq) {
            sub->replay_next_shard = s + 1;
            return s;
        }
    }
    return sub->shard_count;
}

/* Resends or gives up the request in flight, or sends the next one that is wanted. */
static int request_drive(struct rush_subscriber *sub, int64_t now)
{
    struct request *request = &sub->request;
    if (request->in_flight) {
        if (now < request->deadline_ns)
            return 0;
        if (request->attempts > sub->config.replay_retries_max) {
            request->in_flight = false;
            sub->stats.request_timeouts++;
            return fail(sub, RUSH_ETIMEDOUT, "no answer from %s after %u attempts of %u ms",
                        sub->replay_url, request->attempts, sub->config.replay_timeout_ms);
        }
        sub->stats.request_retries++;
        request_send(sub, now);
        return 0;
    }
    if (now - sub->activity_ns >= (int64_t)sub->config.info_interval_ms * NS_PER_MS)
        sub->info_wanted = true;
    uint32_t shard = sub->info_wanted ? sub->shard_count : shard_behind(sub);
    if (sub->info_wanted) {
        rush_stream_request_init(&request->message, RUSH_STREAM_INFO, 0, 0, 0);
        request->sync = sub->sync_pending;
        sub->info_wanted = false;
        sub->stats.info_requests++;
    } else if (shard < sub->shard_count) {
        const struct shard_state *state = &sub->shards[shard];
        uint64_t behind = state->head_seq - state->delivered_seq;
        uint32_t count = behind < sub->config.replay_events_max ? (uint32_t)behind
                                                                : sub->config.replay_events_max;
        rush_stream_request_init(&request->message, RUSH_STREAM_REPLAY, shard,
                                 state->delivered_seq + 1, count);
        sub->stats.replay_requests++;
    } else {
        return 0;
    }
    request->attempts = 0;
    request_send(sub, now);
    return 0;
}

/* ---- replay replies ---- */

static int info_apply(struct rush_subscriber *sub, const struct rush_stream_view *view, int64_t now)
{
    const struct rush_stream_header *header = &view->header;
    if (header->count != header->shard_count)
        return fail(sub, RUSH_EPROTO, "INFO reply with %u records for %u shards", header->count,
                    header->shard_count);
    struct rush_stream_shard_info info[RUSH_SHARDS_MAX];
    for (uint32_t s = 0; s < header->count; s++) {
        rush_stream_view_info(view, s, &info[s]);
        if (info[s].oldest_seq > info[s].head_seq + 1)
            return fail(sub, RUSH_EPROTO,
                        "INFO reply: shard %u oldest %" PRIu64 " after head %" PRIu64, s,
                        info[s].oldest_seq, info[s].head_seq);
    }
    if (sub->shard_count != 0 && sub->shard_count != header->shard_count) {
        sub->sticky = fail(sub, RUSH_ECONFIG, "the cursor has %u shards, the publisher %u",
                           sub->shard_count, header->shard_count);
        return sub->sticky;
    }
    sub->shard_count = header->shard_count;
    for (uint32_t s = 0; s < header->count; s++) {
        struct shard_state *state = &sub->shards[s];
        state->head_seq = max_u64(state->head_seq, info[s].head_seq);
        state->oldest_seq = info[s].oldest_seq;
        if (sub->request.sync)
            state->synced_head_seq = info[s].head_seq;
    }
    if (sub->request.sync)
        sub->sync_pending = false;
    sub->activity_ns = now;
    return 0;
}

/* TOO_OLD for the shard's next seq: skip to oldest_seq (skip_lost) or stop with -ENODATA. */
static int replay_lost(struct rush_subscriber *sub, uint32_t shard, uint64_t oldest_seq)
{
    struct shard_state *state = &sub->shards[shard];
    state->oldest_seq = oldest_seq;
    if (state->delivered_seq + 1 >= oldest_seq)
        return 0; /* the cursor moved past the gap meanwhile (set_cursor) */
    if (sub->config.skip_lost) {
        sub->stats.events_skipped += oldest_seq - 1 - state->delivered_seq;
        state->delivered_seq = oldest_seq - 1;
        return 0;
    }
    state->lost = true;
    return fail(sub, -ENODATA,
                "shard %u: events %" PRIu64 "..%" PRIu64 " are gone; the oldest served is %" PRIu64,
                shard, state->delivered_seq + 1, oldest_seq - 1, oldest_seq);
}

/* A REPLAY reply: checked against the request, then held (or dropped as duplicates). */
static int replay_apply(struct rush_subscriber *sub, void *message,
                        const struct rush_stream_view *view)
{
    const struct rush_stream_header *header = &view->header;
    const struct rush_stream_request *asked = &sub->request.message;
    struct shard_state *state = &sub->shards[asked->shard];
    struct rush_stream_event first = {.seq = 0};
    if (header->count > 0)
        rush_stream_view_event(view, 0, &first);
    bool fits = header->shard == asked->shard && header->count <= asked->count_max &&
                (header->count == 0 || first.seq == asked->from_seq);
    /* "nothing from from_seq" must agree with the head; TOO_OLD must name a later oldest */
    if (header->status == RUSH_STREAM_OK && header->count == 0)
        fits = fits && header->head_seq < asked->from_seq;
    if (header->status == RUSH_STREAM_TOO_OLD)
        fits = fits && header->count == 0 && header->oldest_seq > asked->from_seq;
    if (!fits) {
        sub->stats.malformed++;
        return fail(sub, RUSH_EPROTO,
                    "replay of shard %u from %" PRIu64
                    " answered with shard %u, %u events from %" PRIu64 ", head %" PRIu64,
                    asked->shard, asked->from_seq, header->shard, header->count, first.seq,
                    header->head_seq);
    }
    if (header->status == RUSH_STREAM_TOO_OLD)
        return replay_lost(sub, asked->shard, header->oldest_seq);
    if (header->status != RUSH_STREAM_OK)
        return fail(sub, RUSH_EPROTO, "replay of shard %u from %" PRIu64 " refused: %s",
                    asked->shard, asked->from_seq,
                    rush_stream_status_name((enum rush_stream_status)header->status));
    if (header->count == 0) /* nothing from from_seq: trust the answer over PUB's news */
        state->head_seq = max_u64(state->delivered_seq, header->head_seq);
    else
        state->head_seq = max_u64(state->head_seq, header->head_seq);
    if (header->oldest_seq != 0)
        state->oldest_seq = header->oldest_seq;
    if (covers_next(state, first.seq, header->count))
        held_take(sub, message, view, true);
    else if (header->count > 0 && first.seq <= state->delivered_seq)
        sub->stats.duplicates_dropped += header->count;
    return 0;
}

/* 0 when a decoded reply answers the request in flight's kind. */
static int reply_check(const struct rush_subscriber *sub, const struct rush_stream_header *header,
                       char *why, size_t why_size)
{
    if (header->kind != sub->request.message.kind) {
        snprintf(why, why_size, "a reply of kind %u to a request of kind %u", header->kind,
                 sub->request.message.kind);
        return RUSH_EPROTO;
    }
    if (header->kind == RUSH_STREAM_INFO && header->status != RUSH_STREAM_OK) {
        snprintf(why, why_size, "INFO refused: %s",
                 rush_stream_status_name((enum rush_stream_status)header->status));
        return RUSH_EPROTO;
    }
    return 0;
}

static int reply_handle(struct rush_subscriber *sub, void *message, size_t len, int64_t now)
{
    struct rush_stream_view view;
    char why[WHY_BYTES] = "";
    int rc = rush_stream_decode(message, len, &view, why, sizeof why);
    if (rc == 0)
        rc = reply_check(sub, &view.header, why, sizeof why);
    if (rc < 0) {
        sub->stats.malformed++;
        return fail(sub, RUSH_EPROTO, "replay reply dropped: %s", why);
    }
    if (view.header.kind == RUSH_STREAM_INFO)
        return info_apply(sub, &view, now);
    return replay_apply(sub, message, &view);
}

static int replies_receive(struct rush_subscriber *sub, int64_t now)
{
    if (!sub->request.in_flight)
        return 0;
    void *message = NULL;
    int len = nn_recv(sub->replay_socket, &message, NN_MSG, NN_DONTWAIT);
    if (len < 0) {
        RUSH_ASSERT(nn_errno() == EAGAIN || nn_errno() == EINTR || nn_errno() == ETERM);
        return 0;
    }
    sub->request.in_flight = false;
    sub->stats.replies++;
    int rc = reply_handle(sub, message, (size_t)len, now);
    if (sub->held.message != message)
        nn_freemsg(message);
    return rc;
}

/* ---- polling ---- */

/* Waits for a socket or until_ns. -EINTR when a signal came. */
static int io_wait(struct rush_subscriber *sub, int64_t now, int64_t until_ns, bool pub)
{
    struct pollfd fds[2] = {{.fd = sub->replay_fd, .events = POLLIN},
                            {.fd = pub ? sub->pub_fd : -1, .events = POLLIN}};
    int64_t wait_ns = until_ns > now ? until_ns - now : 0;
    struct timespec timeout = {.tv_sec = wait_ns / 1000000000, .tv_nsec = wait_ns % 1000000000};
    fds[0].fd = sub->request.in_flight ? sub->replay_fd : -1;
    int rc = ppoll(fds, 2, until_ns == INT64_MAX ? NULL : &timeout, NULL);
    return rc < 0 ? -errno : 0;
}

/* The next moment something is due without a message arriving. */
static int64_t timer_next(const struct rush_subscriber *sub, int64_t until_ns)
{
    int64_t at = sub->request.in_flight
                     ? sub->request.deadline_ns
                     : sub->activity_ns + (int64_t)sub->config.info_interval_ms * NS_PER_MS;
    return at < until_ns ? at : until_ns;
}

static int sticky_error(struct rush_subscriber *sub)
{
    if (sub->sticky < 0)
        return sub->sticky;
    for (uint32_t s = 0; s < sub->shard_count; s++)
        if (sub->shards[s].lost)
            return fail(sub, -ENODATA,
                        "shard %u: events from %" PRIu64 " are gone; the oldest served is %" PRIu64,
                        s, sub->shards[s].delivered_seq + 1, sub->shards[s].oldest_seq);
    return 0;
}

int rush_subscriber_poll(struct rush_subscriber *sub, struct rush_stream_event *out, uint32_t max,
                         int timeout_ms)
{
    RUSH_ASSERT(sub != NULL && out != NULL && max > 0 && timeout_ms >= -1);
    int rc = sticky_error(sub);
    if (rc < 0)
        return rc;
    int64_t deadline =
        timeout_ms < 0 ? INT64_MAX : rush_clock_monotonic_ns() + (int64_t)timeout_ms * NS_PER_MS;
    for (;;) { /* each pass delivers, fails or waits; the deadline ends it */
        uint32_t n = held_deliver(sub, out, max);
        if (n > 0)
            return (int)n;
        int64_t now = rush_clock_monotonic_ns();
        rc = replies_receive(sub, now);
        if (rc < 0 || sub->held.message != NULL) {
            if (rc < 0)
                return rc;
            continue;
        }
        rc = request_drive(sub, now);
        if (rc < 0)
            return rc;
        messages_receive(sub, now);
        if (sub->held.message != NULL)
            continue;
        now = rush_clock_monotonic_ns();
        if (now >= deadline || io_wait(sub, now, timer_next(sub, deadline), true) == -EINTR)
            return 0;
    }
}

int rush_subscriber_seek_heads(struct rush_subscriber *sub, int timeout_ms)
{
    RUSH_ASSERT(sub != NULL && timeout_ms >= -1);
    if (sub->sticky < 0)
        return sub->sticky;
    rush_subscriber_resync(sub);
    int64_t deadline =
        timeout_ms < 0 ? INT64_MAX : rush_clock_monotonic_ns() + (int64_t)timeout_ms * NS_PER_MS;
    while (sub->sync_pending) { /* one exchange per pass; the deadline ends it */
        int64_t now = rush_clock_monotonic_ns();
        int rc = replies_receive(sub, now);
        if (rc == 0 && sub->sync_pending)
            rc = request_drive(sub, now);
        if (rc < 0 && rc != -ENODATA)
            return rc;
        if (!sub->sync_pending)
            break;
        if (now >= deadline)
            return fail(sub, RUSH_ETIMEDOUT, "no INFO answer from %s within %d ms", sub->replay_url,
                        timeout_ms);
        io_wait(sub, now, timer_next(sub, deadline), false);
    }
    held_release(sub);
    for (uint32_t s = 0; s < sub->shard_count; s++) {
        struct shard_state *state = &sub->shards[s];
        state->delivered_seq = max_u64(state->delivered_seq, state->synced_head_seq);
        state->lost = false;
        state->gap_open = false;
    }
    return 0;
}

void rush_subscriber_resync(struct rush_subscriber *sub)
{
    RUSH_ASSERT(sub != NULL);
    sub->info_wanted = true;
    sub->sync_pending = true;
}

bool rush_subscriber_caught_up(const struct rush_subscriber *sub)
{
    RUSH_ASSERT(sub != NULL);
    if (sub->sync_pending || sub->held.message != NULL || sub->shard_count == 0)
        return false;
    for (uint32_t s = 0; s < sub->shard_count; s++) {
        const struct shard_state *state = &sub->shards[s];
        if (state->lost || state->delivered_seq < state->synced_head_seq)
            return false;
    }
    return true;
}

/* ---- cursor, state, counters ---- */

int rush_subscriber_set_cursor(struct rush_subscriber *sub, const struct rush_stream_cursor *cursor)
{
    RUSH_ASSERT(sub != NULL && cursor != NULL);
    if (cursor->shard_count > RUSH_SHARDS_MAX)
        return fail(sub, RUSH_ECONFIG, "a cursor of %u shards (at most %d)", cursor->shard_count,
                    RUSH_SHARDS_MAX);
    uint32_t known = sub->sticky < 0 ? 0 : sub->shard_count;
    if (cursor->shard_count != 0 && known != 0 && cursor->shard_count != known)
        return fail(sub, RUSH_ECONFIG, "the cursor has %u shards, the publisher %u",
                    cursor->shard_count, known);
    held_release(sub);
    sub->sticky = 0;
    sub->shard_count = cursor->shard_count; /* 0: INFO will tell */
    sub->info_wanted = true;                /* the heads, for the new cursor */
    sub->output_bytes = cursor->output_bytes;
    for (uint32_t s = 0; s < RUSH_SHARDS_MAX; s++) {
        struct shard_state *state = &sub->shards[s];
        state->delivered_seq = s < cursor->shard_count ? cursor->delivered_seq[s] : 0;
        state->lost = false;
        state->gap_open = false;
    }
    return 0;
}

void rush_subscriber_get_cursor(const struct rush_subscriber *sub, struct rush_stream_cursor *out)
{
    RUSH_ASSERT(sub != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    out->shard_count = sub->shard_count;
    out->output_bytes = sub->output_bytes;
    for (uint32_t s = 0; s < sub->shard_count; s++)
        out->delivered_seq[s] = sub->shards[s].delivered_seq;
}

uint32_t rush_subscriber_shard_count(const struct rush_subscriber *sub)
{
    RUSH_ASSERT(sub != NULL);
    return sub->shard_count;
}

int rush_subscriber_shard(const struct rush_subscriber *sub, uint32_t shard,
                          struct rush_subscriber_shard *out)
{
    RUSH_ASSERT(sub != NULL && out != NULL);
    if (shard >= sub->shard_count)
        return -EINVAL;
    const struct shard_state *state = &sub->shards[shard];
    *out = (struct rush_subscriber_shard){.delivered_seq = state->delivered_seq,
                                          .head_seq = state->head_seq,
                                          .oldest_seq = state->oldest_seq,
                                          .lost = state->lost};
    return 0;
}

void rush_subscriber_stats(const struct rush_subscriber *sub, struct rush_subscriber_stats *out)
{
    RUSH_ASSERT(sub != NULL && out != NULL);
    *out = sub->stats;
}

const char *rush_subscriber_last_error(const struct rush_subscriber *sub)
{
    return sub != NULL ? sub->error : open_error;
}

/* ---- open and close ---- */

static int socket_connect(int *out, int protocol, const char *url, int *fd)
{
    int sock = nn_socket(AF_SP, protocol);
    if (sock < 0)
        return -nn_errno();
    *out = sock;
    if (nn_connect(sock, url) < 0) {
        int rc = -nn_errno();
        snprintf(open_error, sizeof open_error, "cannot connect to '%s': %s", url,
                 nn_strerror(-rc));
        return rc;
    }
    /*
     * nanomsg's default, like a plain client's: nanomsg counts the REP socket's 4-byte request id
     * in this limit, so exactly RUSH_STREAM_MESSAGE_BYTES_MAX would drop a full replay page (and
     * the connection) without a word (test_subscriber: a_full_replay_page_arrives).
     */
    int receive_bytes_max = RUSH_STREAM_NN_RECEIVE_BYTES_DEFAULT;
    size_t size = sizeof *fd;
    if (nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &receive_bytes_max,
                      sizeof receive_bytes_max) < 0 ||
        nn_getsockopt(sock, NN_SOL_SOCKET, NN_RCVFD, fd, &size) < 0)
        return -nn_errno();
    return 0;
}

static int sockets_open(struct rush_subscriber *sub)
{
    int rc = socket_connect(&sub->pub_socket, NN_SUB, sub->pub_url, &sub->pub_fd);
    if (rc < 0)
        return rc;
    int buffer_bytes = (int)sub->config.receive_buffer_bytes;
    if (nn_setsockopt(sub->pub_socket, NN_SUB, NN_SUB_SUBSCRIBE, "", 0) < 0 ||
        nn_setsockopt(sub->pub_socket, NN_SOL_SOCKET, NN_RCVBUF, &buffer_bytes,
                      sizeof buffer_bytes) < 0)
        return -nn_errno();
    rc = socket_connect(&sub->replay_socket, NN_REQ, sub->replay_url, &sub->replay_fd);
    if (rc < 0)
        return rc;
    int resend_never_ms = INT32_MAX; /* the subscriber resends itself, counting attempts */
    if (nn_setsockopt(sub->replay_socket, NN_REQ, NN_REQ_RESEND_IVL, &resend_never_ms,
                      sizeof resend_never_ms) < 0)
        return -nn_errno();
    return 0;
}

int rush_subscriber_open(const struct rush_subscriber_config *config, struct rush_subscriber **out)
{
    RUSH_ASSERT(config != NULL && out != NULL);
    *out = NULL;
    open_error[0] = '\0';
    int rc = rush_subscriber_config_check(config, open_error, sizeof open_error);
    if (rc < 0)
        return rc;
    struct rush_subscriber *sub = calloc(1, sizeof *sub);
    if (sub == NULL)
        return -ENOMEM;
    sub->config = *config;
    snprintf(sub->pub_url, sizeof sub->pub_url, "%s", config->pub_url);
    snprintf(sub->replay_url, sizeof sub->replay_url, "%s", config->replay_url);
    sub->config.pub_url = sub->pub_url;
    sub->config.replay_url = sub->replay_url;
    sub->pub_socket = sub->replay_socket = -1;
    rc = sockets_open(sub);
    if (rc < 0)
        goto out_close_sockets;
    sub->activity_ns = rush_clock_monotonic_ns();
    rush_subscriber_resync(sub);
    *out = sub;
    return 0;
out_close_sockets:
    if (open_error[0] == '\0')
        snprintf(open_error, sizeof open_error, "cannot open the sockets: %s", nn_strerror(-rc));
    if (sub->replay_socket >= 0)
        nn_close(sub->replay_socket);
    if (sub->pub_socket >= 0)
        nn_close(sub->pub_socket);
    free(sub);
    return rc;
}

void rush_subscriber_close(struct rush_subscriber *sub)
{
    if (sub == NULL)
        return;
    held_release(sub);
    nn_close(sub->replay_socket);
    nn_close(sub->pub_socket);
    free(sub);
}
