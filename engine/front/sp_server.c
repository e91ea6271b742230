/*
 * sp_server.c — the REP side of the SP-over-TCP mapping that nanomsg and NNG speak
 * (proto/PROTOCOL.md section 7; the bytes in proto/codec/sp.c), served from the caller's thread
 * with epoll, so that every reply queued in a turn leaves in one send(2) per connection. rushd
 * serves its tcp:// endpoints with it (engine/front/server.c); bench-echo too.
 *
 * Why. Through a nanomsg raw REP socket every reply is its own sendmsg(2) and, with TCP_NODELAY,
 * its own TCP segment, and every message crosses nanomsg's I/O thread; a gateway connection with
 * 16 one-order messages in flight cost 16 segments each way and as many thread hand-offs. Here a
 * connection's bytes are read in one recv(2) per turn, all its whole messages are taken, and the
 * replies the turn produces are written together. Clients keep their nanomsg or NNG REQ sockets:
 * on the wire nothing changes.
 *
 * Connection life (every transition here):
 *
 *   accept --> greeting (our 8 bytes queued) --peer's 8 bytes valid--> open
 *                  |  invalid, or none within SP_GREETING_MS             |  (not read while
 *                  v                                                      |   its unsent replies
 *                closed <-- peer closed, error, oversize, no request id -+   pass SP_UNSENT_HIGH)
 *
 * Invariants.
 *   1. A message's origin names its connection by index and generation; a connection's
 *      generation changes when it closes, so a reply to a closed connection is dropped, never
 *      sent to the next peer on that index.
 *   2. Replies to one connection leave in the order they were queued; a partly sent buffer is
 *      finished (EPOLLOUT) before anything after it.
 *   3. A connection's input holds at most one incomplete message, of at most its listener's
 *      message_max: a longer announced length closes the connection before anything is read.
 *   4. Every origin handed to on_message comes back through rush_sp_server_reply exactly once;
 *      the pool is sized by the caller for what it holds at once (no allocation per message).
 *
 * Workload: one epoll_wait per turn, one recv per readable connection (up to SP_READS_MAX while
 * its buffer fills), one send per connection with replies. Hostile peers cost a connection each,
 * up to RUSH_SP_SERVER_CONNECTIONS_MAX, and a greeting that never comes is closed after
 * SP_GREETING_MS. Threads: the one that created it, only.
 *
 * Direction: calls the codec, the logger and on_message; nothing else in the front end.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "codec/sp.h"
#include "rush/assert.h"
#include "sp_server.h"

#define SP_GREETING_MS 5000
#define SP_PAUSE_MS 100                   /* no accepting for this long after running out of fds */
#define SP_INPUT_BYTES_MIN 16384          /* a connection's first input buffer */
#define SP_READS_MAX 4                    /* recv calls per connection per turn */
#define SP_ACCEPTS_MAX 64                 /* connections accepted per listener per turn */
#define SP_EVENTS_MAX 256                 /* epoll events taken per turn */
#define SP_UNSENT_HIGH (4u << 20)         /* reads pause while a peer leaves this much unread */
#define SP_BUFFER_KEEP_BYTES (256u << 10) /* an emptied buffer above this is freed */
/* All connections' input buffers together: a peer announcing a long message and sending it slowly
 * holds its length; past this budget such a connection is closed instead. */
#define SP_INPUT_BYTES_MAX (256u << 20)
#define SP_LISTENER_TAG (1ull << 63) /* epoll data: a listener, not a connection */

struct sp_origin {
    uint32_t connection;
    uint32_t generation;
    uint32_t backtrace_bytes;
    uint8_t backtrace[RUSH_SP_BACKTRACE_BYTES_MAX];
};

struct sp_connection {
    int fd; /* -1: free */
    uint32_t generation;
    uint32_t endpoint;
    bool greeted; /* the peer's greeting came and was a REQ's */
    bool queued;  /* on the flush list (which holds each index at most once) */
    bool reading; /* EPOLLIN wanted (not paused) */
    bool writing; /* EPOLLOUT wanted (a send was partial) */
    int64_t accepted_ns;
    uint8_t *input;
    size_t input_len, input_cap;
    size_t input_need; /* what the frame the input starts with takes, once its length is in */
    uint8_t *output;
    size_t output_len, output_sent, output_cap;
};

struct rush_sp_server {
    int epoll_fd;
    int listeners[RUSH_SP_SERVER_ENDPOINTS_MAX]; /* -1: none */
    size_t message_max[RUSH_SP_SERVER_ENDPOINTS_MAX];
    rush_sp_server_message_fn on_message;
    void *context;
    uint32_t origins_max;
    struct sp_connection *connections;
    uint32_t *free_connections;
    uint32_t free_connection_count;
    uint32_t *flush_list; /* connections with replies queued this turn */
    uint32_t flush_count;
    uint32_t greeting_count; /* connections still waiting for the peer's greeting */
    int64_t greeting_check_ns;
    int64_t listeners_paused_ns; /* 0, or when accepting stopped for want of fds */
    struct sp_origin *origins;
    struct sp_origin **free_origins;
    uint32_t free_origin_count;
    struct rush_sp_server_figures figures;
    size_t input_bytes; /* the input buffers' capacities, within SP_INPUT_BYTES_MAX */
};

/* ---- connections ----------------------------------------------------------------------------- */

/* Frees an input buffer (only input buffers count against SP_INPUT_BYTES_MAX). */
static void buffer_drop(struct rush_sp_server *server, uint8_t **buffer, size_t *cap)
{
    server->input_bytes -= *cap;
    free(*buffer);
    *buffer = NULL;
    *cap = 0;
}

static void interest(struct rush_sp_server *server, uint32_t index)
{
    struct sp_connection *c = &server->connections[index];
    struct epoll_event event = {.events = (c->reading ? EPOLLIN : 0) | (c->writing ? EPOLLOUT : 0),
                                .data.u64 = index};
    int rc = epoll_ctl(server->epoll_fd, EPOLL_CTL_MOD, c->fd, &event);
    RUSH_ASSERT(rc == 0); /* a registered fd of ours: only EBADF or ENOMEM could refuse */
}

/* protocol: closed for what the peer sent or did not send (counted), not for leaving. */
static void connection_close(struct rush_sp_server *server, uint32_t index, bool protocol,
                             const char *why)
{
    struct sp_connection *c = &server->connections[index];
    RUSH_ASSERT(c->fd >= 0);
    server->figures.connections--;
    server->figures.closed_protocol += protocol;
    rush_log(RUSH_LOG_DEBUG, "tcp connection %u closed: %s", index, why);
    close(c->fd); /* also takes it out of the epoll set */
    if (!c->greeted)
        server->greeting_count--;
    buffer_drop(server, &c->input, &c->input_cap);
    free(c->output);
    /* Still on this turn's flush list if queued: the flag stays, so that a connection taking
     * the index before the flush is not listed twice (the list holds each index once). */
    *c = (struct sp_connection){.fd = -1, .generation = c->generation + 1, .queued = c->queued};
    server->free_connections[server->free_connection_count++] = index;
}

/* Queues `len` bytes in front of nothing else: the caller writes them at the returned place. */
static uint8_t *output_reserve(struct rush_sp_server *server, uint32_t index, size_t len)
{
    struct sp_connection *c = &server->connections[index];
    if (c->output_len + len > c->output_cap) {
        size_t cap = c->output_cap > 0 ? c->output_cap : SP_INPUT_BYTES_MIN;
        while (cap < c->output_len + len)
            cap *= 2;
        uint8_t *output = realloc(c->output, cap);
        if (output == NULL)
            return NULL;
        c->output = output;
        c->output_cap = cap;
    }
    if (!c->queued) {
        c->queued = true;
        server->flush_list[server->flush_count++] = index;
    }
    uint8_t *at = c->output + c->output_len;
    c->output_len += len;
    return at;
}

/* Out of fds (or kernel memory) the listeners leave the epoll set for SP_PAUSE_MS: a
 * listener that stays readable would otherwise wake every turn. */
static void listeners_watch(struct rush_sp_server *server, bool watch)
{
    for (int e = 0; e < RUSH_SP_SERVER_ENDPOINTS_MAX; e++) {
        if (server->listeners[e] < 0)
            continue;
        struct epoll_event event = {.events = EPOLLIN, .data.u64 = SP_LISTENER_TAG | (uint64_t)e};
        int rc = epoll_ctl(server->epoll_fd, watch ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
                           server->listeners[e], &event);
        RUSH_ASSERT(rc == 0);
    }
    server->listeners_paused_ns = watch ? 0 : rush_clock_monotonic_ns();
}

/* false: stop accepting for now. */
static bool connection_accept(struct rush_sp_server *server, int listener, uint32_t e)
{
    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
        rush_log(RUSH_LOG_WARN, "tcp: accept: %s; not accepting for %d ms", strerror(errno),
                 SP_PAUSE_MS);
        listeners_watch(server, false);
        return false;
    }
    if (fd < 0)
        return errno == ECONNABORTED || errno == EINTR; /* else EAGAIN: none left */
    if (server->free_connection_count == 0) {
        if (server->figures.refused++ % 1024 == 0)
            rush_log(RUSH_LOG_WARN, "tcp: %d connections open, refusing more (%llu refused)",
                     RUSH_SP_SERVER_CONNECTIONS_MAX, (unsigned long long)server->figures.refused);
        close(fd);
        return true;
    }
    int on = 1; /* replies are already coalesced per turn: nothing gains by waiting */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    uint32_t index = server->free_connections[--server->free_connection_count];
    server->figures.connections++;
    server->figures.accepted++;
    struct sp_connection *c = &server->connections[index];
    *c = (struct sp_connection){.fd = fd,
                                .generation = c->generation,
                                .queued = c->queued,
                                .endpoint = e,
                                .reading = true,
                                .accepted_ns = rush_clock_monotonic_ns()};
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = index};
    uint8_t *greeting = output_reserve(server, index, RUSH_SP_GREETING_BYTES);
    if (epoll_ctl(server->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0 || greeting == NULL) {
        server->greeting_count++; /* connection_close counts it out again */
        connection_close(server, index, false, "no memory for it");
        return true;
    }
    server->greeting_count++;
    rush_sp_greeting(greeting, RUSH_SP_PROTOCOL_REP);
    return true;
}

void rush_sp_server_timers(struct rush_sp_server *server)
{
    if (server == NULL || (server->greeting_count == 0 && server->listeners_paused_ns == 0))
        return;
    int64_t now_ns = rush_clock_monotonic_ns();
    if (server->listeners_paused_ns != 0 &&
        now_ns - server->listeners_paused_ns > (int64_t)SP_PAUSE_MS * 1000000)
        listeners_watch(server, true);
    if (server->greeting_count == 0 || now_ns < server->greeting_check_ns)
        return;
    server->greeting_check_ns = now_ns + 1000000000;
    for (uint32_t i = 0; i < RUSH_SP_SERVER_CONNECTIONS_MAX; i++) {
        struct sp_connection *c = &server->connections[i];
        if (c->fd >= 0 && !c->greeted &&
            now_ns - c->accepted_ns > (int64_t)SP_GREETING_MS * 1000000)
            connection_close(server, i, true, "no SP greeting");
    }
}

/* ---- receiving ------------------------------------------------------------------------------- */

/* One whole message: its backtrace into an origin, its body to the endpoint. */
static void take_message(struct rush_sp_server *server, uint32_t index,
                         const struct rush_sp_frame *frame)
{
    struct sp_connection *c = &server->connections[index];
    RUSH_ASSERT(server->free_origin_count > 0); /* invariant 4 */
    struct sp_origin *origin = server->free_origins[--server->free_origin_count];
    *origin = (struct sp_origin){.connection = index,
                                 .generation = c->generation,
                                 .backtrace_bytes = (uint32_t)frame->backtrace_bytes};
    memcpy(origin->backtrace, frame->backtrace, frame->backtrace_bytes);
    server->on_message(server->context, c->endpoint, origin, frame->body, frame->body_bytes);
}

/* Takes the greeting and every whole message in the input, keeps the incomplete rest and notes
 * in c->input_need what the next frame takes. Returns a reason to close the connection, or NULL. */
static const char *take_input(struct rush_sp_server *server, uint32_t index)
{
    struct sp_connection *c = &server->connections[index];
    size_t at = 0;
    if (!c->greeted) {
        if (c->input_len < RUSH_SP_GREETING_BYTES)
            return NULL;
        const char *why = rush_sp_greeting_check(c->input, RUSH_SP_PROTOCOL_REQ);
        if (why != NULL)
            return why;
        c->greeted = true;
        server->greeting_count--;
        at = RUSH_SP_GREETING_BYTES;
    }
    size_t message_max = server->message_max[c->endpoint];
    struct rush_sp_frame frame;
    const char *why = NULL;
    int rc;
    while ((rc = rush_sp_frame_decode(c->input + at, c->input_len - at, message_max, &frame,
                                      &c->input_need, &why)) == 1) {
        take_message(server, index, &frame);
        at += frame.bytes;
    }
    memmove(c->input, c->input + at, c->input_len - at);
    c->input_len -= at;
    return rc < 0 ? why : NULL;
}

/* Room for the frame the input starts with (at least SP_INPUT_BYTES_MIN, and some room
 * to read into); false: over the input budget, or no memory. */
static bool input_room(struct rush_sp_server *server, struct sp_connection *c)
{
    /* Bounded: rush_sp_frame_decode refused a length over the endpoint's limit. */
    size_t need = c->input_need > SP_INPUT_BYTES_MIN ? c->input_need : SP_INPUT_BYTES_MIN;
    if (c->input_cap > c->input_len && c->input_cap >= need)
        return true;
    size_t cap = c->input_cap > need ? c->input_cap * 2 : need;
    if (server->input_bytes - c->input_cap + cap > SP_INPUT_BYTES_MAX)
        return false;
    uint8_t *input = realloc(c->input, cap);
    if (input == NULL)
        return false;
    server->input_bytes += cap - c->input_cap;
    c->input = input;
    c->input_cap = cap;
    return true;
}

static void connection_read(struct rush_sp_server *server, uint32_t index)
{
    for (int round = 0; round < SP_READS_MAX; round++) {
        struct sp_connection *c = &server->connections[index];
        if (!input_room(server, c)) {
            connection_close(server, index, true, "over the input memory budget");
            return;
        }
        size_t room = c->input_cap - c->input_len;
        ssize_t n = recv(c->fd, c->input + c->input_len, room, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            connection_close(server, index, false, n == 0 ? "closed by the peer" : strerror(errno));
            return;
        }
        c->input_len += (size_t)n;
        const char *why = take_input(server, index);
        if (why != NULL) {
            connection_close(server, index, true, why);
            return;
        }
        c = &server->connections[index];
        if (c->input_len == 0 && c->input_cap > SP_BUFFER_KEEP_BYTES)
            buffer_drop(server, &c->input, &c->input_cap);
        if ((size_t)n < room)
            return; /* drained */
    }
}

/* ---- sending --------------------------------------------------------------------------------- */

bool rush_sp_server_reply(struct rush_sp_server *server, void *from, const void *body, size_t len)
{
    struct sp_origin *origin = from;
    RUSH_ASSERT(origin >= server->origins && origin < server->origins + server->origins_max);
    bool queued = false;
    struct sp_connection *c = &server->connections[origin->connection];
    if (c->fd >= 0 && c->generation == origin->generation) { /* invariant 1 */
        uint8_t *at = output_reserve(server, origin->connection,
                                     rush_sp_reply_bytes(origin->backtrace_bytes, len));
        if (at != NULL)
            rush_sp_reply_encode(at, origin->backtrace, origin->backtrace_bytes, body, len);
        queued = at != NULL;
    }
    server->figures.dropped_replies += !queued;
    server->free_origins[server->free_origin_count++] = origin;
    return queued;
}

/* Sends what the connection has queued; a partial send waits for EPOLLOUT. */
static void connection_flush(struct rush_sp_server *server, uint32_t index)
{
    struct sp_connection *c = &server->connections[index];
    c->queued = false;
    if (c->fd < 0)
        return;
    while (c->output_sent < c->output_len) {
        ssize_t n = send(c->fd, c->output + c->output_sent, c->output_len - c->output_sent,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0) {
            connection_close(server, index, false, strerror(errno));
            return;
        }
        c->output_sent += (size_t)n;
    }
    bool unsent = c->output_sent < c->output_len;
    if (!unsent) {
        c->output_len = c->output_sent = 0;
        if (c->output_cap > SP_BUFFER_KEEP_BYTES) {
            free(c->output);
            c->output = NULL;
            c->output_cap = 0;
        }
    }
    /* Paused above the high mark, resumed below half of it. */
    size_t unsent_max = c->reading ? SP_UNSENT_HIGH : SP_UNSENT_HIGH / 2;
    bool reading = c->output_len - c->output_sent <= unsent_max;
    if (unsent != c->writing || reading != c->reading) {
        c->writing = unsent;
        c->reading = reading;
        interest(server, index);
    }
}

void rush_sp_server_flush(struct rush_sp_server *server)
{
    if (server == NULL)
        return;
    for (uint32_t i = 0; i < server->flush_count; i++)
        connection_flush(server, server->flush_list[i]);
    server->flush_count = 0;
}

void rush_sp_server_linger(struct rush_sp_server *server, int wait_ms)
{
    rush_sp_server_flush(server);
    int64_t deadline_ns = rush_clock_monotonic_ns() + (int64_t)wait_ms * 1000000;
    bool unsent = server != NULL;
    while (unsent && rush_clock_monotonic_ns() < deadline_ns) {
        unsent = false;
        for (uint32_t i = 0; i < RUSH_SP_SERVER_CONNECTIONS_MAX; i++) {
            struct sp_connection *c = &server->connections[i];
            if (c->fd >= 0 && c->output_sent < c->output_len)
                connection_flush(server, i);
            unsent = unsent || (c->fd >= 0 && c->output_sent < c->output_len);
        }
        if (unsent)
            usleep(1000);
    }
}

/* ---- the turn -------------------------------------------------------------------------------- */

int rush_sp_server_fd(const struct rush_sp_server *server)
{
    return server != NULL ? server->epoll_fd : -1;
}

void rush_sp_server_receive(struct rush_sp_server *server)
{
    struct epoll_event events[SP_EVENTS_MAX];
    int count = epoll_wait(server->epoll_fd, events, SP_EVENTS_MAX, 0);
    for (int i = 0; i < count; i++) {
        uint64_t data = events[i].data.u64;
        if (data & SP_LISTENER_TAG) {
            uint32_t e = (uint32_t)(data & ~SP_LISTENER_TAG);
            for (int a = 0; a < SP_ACCEPTS_MAX && server->listeners_paused_ns == 0; a++)
                if (!connection_accept(server, server->listeners[e], e))
                    break;
            continue;
        }
        uint32_t index = (uint32_t)data;
        struct sp_connection *c = &server->connections[index];
        if (c->fd < 0)
            continue; /* closed earlier in this batch of events */
        uint32_t what = events[i].events;
        if ((what & EPOLLOUT) && !c->queued)
            connection_flush(server, index);
        if (c->fd >= 0 && c->reading && (what & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            connection_read(server, index); /* a hang-up reads as the end of the stream */
        else if (c->fd >= 0 && (what & (EPOLLHUP | EPOLLERR)))
            connection_close(server, index, false, "hung up"); /* paused: epoll repeats it */
    }
}

/* ---- open and close -------------------------------------------------------------------------- */

/* HOST:PORT after "tcp://": "*" (every IPv4 address, as nanomsg does), an address, or a name. */
static int listener_open(const char *url, int *out, char *why, size_t why_size)
{
    const char *hostport = url + strlen("tcp://");
    const char *colon = strrchr(hostport, ':');
    char host[256];
    size_t host_len = colon != NULL ? (size_t)(colon - hostport) : 0;
    if (colon == NULL || host_len == 0 || host_len >= sizeof(host) || colon[1] == '\0') {
        snprintf(why, why_size, "%s: expected tcp://HOST:PORT", url);
        return -EINVAL;
    }
    memcpy(host, hostport, host_len);
    host[host_len] = '\0';
    if (host[0] == '[' && host[host_len - 1] == ']') { /* [::1] */
        memmove(host, host + 1, host_len - 2);
        host[host_len - 2] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    bool any = strcmp(host, "*") == 0;
    if (any)
        hints.ai_family = AF_INET;
    struct addrinfo *found = NULL;
    int rc = getaddrinfo(any ? NULL : host, colon + 1, &hints, &found);
    if (rc != 0) {
        snprintf(why, why_size, "%s: %s", url, gai_strerror(rc));
        return -EINVAL;
    }
    int fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        rc = -errno;
        snprintf(why, why_size, "%s: %s", url, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(found);
        return rc;
    }
    freeaddrinfo(found);
    *out = fd;
    return 0;
}

int rush_sp_server_create(uint32_t origins_max, rush_sp_server_message_fn on_message, void *context,
                          struct rush_sp_server **out)
{
    RUSH_ASSERT(origins_max > 0 && on_message != NULL);
    struct rush_sp_server *server = calloc(1, sizeof(*server));
    if (server == NULL)
        return -ENOMEM;
    *server = (struct rush_sp_server){
        .on_message = on_message, .context = context, .origins_max = origins_max};
    for (int e = 0; e < RUSH_SP_SERVER_ENDPOINTS_MAX; e++)
        server->listeners[e] = -1;
    server->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    server->connections = calloc(RUSH_SP_SERVER_CONNECTIONS_MAX, sizeof(*server->connections));
    server->free_connections = calloc(RUSH_SP_SERVER_CONNECTIONS_MAX, sizeof(uint32_t));
    server->flush_list = calloc(RUSH_SP_SERVER_CONNECTIONS_MAX, sizeof(uint32_t));
    server->origins = calloc(origins_max, sizeof(*server->origins));
    server->free_origins = calloc(origins_max, sizeof(*server->free_origins));
    if (server->epoll_fd < 0 || !server->connections || !server->free_connections ||
        !server->flush_list || !server->origins || !server->free_origins) {
        rush_sp_server_destroy(server);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < RUSH_SP_SERVER_CONNECTIONS_MAX; i++) {
        server->connections[i].fd = -1;
        server->free_connections[i] = RUSH_SP_SERVER_CONNECTIONS_MAX - 1 - i;
    }
    server->free_connection_count = RUSH_SP_SERVER_CONNECTIONS_MAX;
    for (uint32_t i = 0; i < origins_max; i++)
        server->free_origins[i] = &server->origins[i];
    server->free_origin_count = origins_max;
    /* Room for every connection: a soft fd limit of 1024 (a login shell's) would cap them. */
    struct rlimit files;
    rlim_t wanted = RUSH_SP_SERVER_CONNECTIONS_MAX + 256;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < wanted) {
        files.rlim_cur = files.rlim_max < wanted ? files.rlim_max : wanted;
        (void)setrlimit(RLIMIT_NOFILE, &files); /* best effort: accepting copes with EMFILE */
    }
    *out = server;
    return 0;
}

int rush_sp_server_listen(struct rush_sp_server *server, uint32_t endpoint, const char *url,
                          size_t message_max, char *why, size_t why_size)
{
    RUSH_ASSERT(endpoint < RUSH_SP_SERVER_ENDPOINTS_MAX && server->listeners[endpoint] < 0);
    int rc = listener_open(url, &server->listeners[endpoint], why, why_size);
    if (rc < 0)
        return rc;
    server->message_max[endpoint] = message_max;
    struct epoll_event event = {.events = EPOLLIN,
                                .data.u64 = SP_LISTENER_TAG | (uint64_t)endpoint};
    if (epoll_ctl(server->epoll_fd, EPOLL_CTL_ADD, server->listeners[endpoint], &event) != 0) {
        snprintf(why, why_size, "%s: epoll: %s", url, strerror(errno));
        return -errno;
    }
    return 0;
}

void rush_sp_server_figures(const struct rush_sp_server *server, struct rush_sp_server_figures *out)
{
    *out = server != NULL ? server->figures : (struct rush_sp_server_figures){0};
}

void rush_sp_server_destroy(struct rush_sp_server *server)
{
    if (server == NULL)
        return;
    for (uint32_t i = 0; server->connections != NULL && i < RUSH_SP_SERVER_CONNECTIONS_MAX; i++)
        if (server->connections[i].fd >= 0)
            connection_close(server, i, false, "the server is stopping");
    for (int e = 0; e < RUSH_SP_SERVER_ENDPOINTS_MAX; e++)
        if (server->listeners[e] >= 0)
            close(server->listeners[e]);
    if (server->epoll_fd >= 0)
        close(server->epoll_fd);
    free(server->connections);
    free(server->free_connections);
    free(server->flush_list);
    free(server->origins);
    free(server->free_origins);
    free(server);
}
