/*
 * bench_echo — a trivial orders endpoint, to show what rush-loadgen can offer when the server
 * costs next to nothing (issue 12: "rush-loadgen is not the bottleneck").
 *
 * It serves --url (binary) and, with --json-url, another endpoint for JSON the way rushd does:
 * tcp:// with rushd's own SP-over-TCP server (engine/front/sp_server.c, replies coalesced per
 * connection), anything else (or everything, with --transport nanomsg) with a raw nanomsg REP
 * socket; and answers every request message at once with a result of the right shape: binary, one
 * RESULT record per request, outcome ok, the request's tag, a made-up order id, state confirmed,
 * the qty asked and 1000 remaining; JSON, {"outcome":"ok","order":"N","remaining":1000,"tag":T}
 * with the request's tag found by a scan for "tag": (no JSON parser: the echo must cost less
 * than the load generator's side, or it would measure itself). It decides nothing, keeps
 * nothing and never answers busy. Run rush-loadgen against it with
 * --campaign-skus (there is no admin endpoint to put SKUs on): its query_sku answers are ok, so
 * the catalogue check passes.
 *
 * Why a program of its own rather than a rush-loadgen mode: it is a server with a server's life
 * (bind, run until stopped, one line of figures), driven from a script like rushd and Redis, and
 * rush-loadgen's options stay a contract about load. One thread: per message one decode
 * (binary) or scan (JSON) and one encode; per turn one read and one send per connection (tcp://)
 * or one receive and one send per message (nanomsg); its rate is a floor on what rush-loadgen
 * can drive on this machine.
 *
 * Usage: bench-echo --url URL [--json-url URL] [--seconds S] [--transport rush|nanomsg]
 *   Runs until SIGINT/SIGTERM (or S seconds), then prints one JSON line:
 *   {"bench":"echo","messages":N,"requests":R,"json_messages":J,"seconds":T}
 */
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "codec/json.h"
#include "codec/sp.h"
#include "front/sp_server.h"
#include "rush/assert.h"
#include "rush/wire.h"

#define ECHO_BURST_MAX 256 /* messages taken from one socket per turn */
#define ECHO_BUFFER_BYTES (4 * 1024 * 1024)
#define ECHO_REMAINING 1000
#define ECHO_TEXT_BYTES 4096

static volatile sig_atomic_t stop_requested;

static void on_signal(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

enum { ECHO_BINARY = 0, ECHO_JSON = 1 };

struct echo {
    int binary; /* nanomsg sockets, or -1 */
    int json;
    struct rush_sp_server *tcp; /* the tcp:// endpoints, or NULL */
    uint64_t messages;
    uint64_t requests;
    uint64_t json_messages;
    uint64_t order_seq;
    struct rush_request *requests_buf;
    struct rush_result *results;
    uint8_t *reply;
    char text[ECHO_TEXT_BYTES];
};

static struct rush_result answer(struct echo *e, const struct rush_request *request)
{
    return (struct rush_result){.outcome = RUSH_OK,
                                .state = RUSH_ORDER_CONFIRMED,
                                .qty = request->qty,
                                .order_id = ++e->order_seq,
                                .remaining = ECHO_REMAINING,
                                .tag = request->tag};
}

static void send_reply(int sock, void **control, const void *body, size_t len)
{
    struct nn_iovec iov = {.iov_base = (void *)body, .iov_len = len};
    struct nn_msghdr header = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = NN_MSG};
    if (nn_sendmsg(sock, &header, NN_DONTWAIT) < 0 && *control != NULL)
        nn_freemsg(*control);
    *control = NULL;
}

/* The RESULT for a REQUEST message; an ERROR for anything else. Returns the reply's bytes. */
static int binary_reply(struct echo *e, const void *body, size_t len)
{
    struct rush_wire_view view;
    struct rush_wire_error error;
    if (rush_wire_decode(body, len, &view, &error) != 0 || view.kind != RUSH_WIRE_REQUEST) {
        if (view.kind != RUSH_WIRE_REQUEST)
            rush_wire_error_set(&error, RUSH_WIRE_E_REFUSED, RUSH_WIRE_NO_RECORD, "requests only");
        return rush_wire_encode_error(e->reply, RUSH_WIRE_MESSAGE_BYTES_MAX, view.message_id,
                                      &error);
    }
    int copied = rush_wire_view_copy(&view, e->requests_buf,
                                     RUSH_WIRE_REQUESTS_MAX * sizeof(struct rush_request));
    RUSH_ASSERT(copied >= 0);
    for (uint32_t i = 0; i < view.count; i++)
        e->results[i] = answer(e, &e->requests_buf[i]);
    e->requests += view.count;
    return rush_wire_encode_results(e->reply, RUSH_WIRE_MESSAGE_BYTES_MAX, view.message_id,
                                    e->results, view.count);
}

/* The digits after "tag": in a JSON request, or 0 (rush-loadgen writes tags as numbers). */
static uint64_t json_tag(const char *text, size_t len)
{
    static const char name[] = "\"tag\":";
    const char *at = memmem(text, len, name, sizeof(name) - 1);
    uint64_t tag = 0;
    if (at == NULL)
        return 0;
    for (at += sizeof(name) - 1; at < text + len && *at >= '0' && *at <= '9'; at++)
        tag = tag * 10 + (uint64_t)(*at - '0');
    return tag;
}

static int json_reply(struct echo *e, const void *body, size_t len)
{
    uint64_t tag = json_tag(body, len);
    e->requests++;
    e->json_messages++;
    int n = snprintf(e->text, sizeof(e->text),
                     "{\"outcome\":\"ok\",\"order\":\"%llu\",\"remaining\":%d",
                     (unsigned long long)++e->order_seq, ECHO_REMAINING);
    n += tag != 0 ? snprintf(e->text + n, sizeof(e->text) - (size_t)n, ",\"tag\":%llu}",
                             (unsigned long long)tag)
                  : snprintf(e->text + n, sizeof(e->text) - (size_t)n, "}");
    return n;
}

/* A message on a tcp:// endpoint: answered at once (sent at the turn's flush). */
static void tcp_message(void *context, uint32_t endpoint, void *origin, const void *body,
                        size_t len)
{
    struct echo *e = context;
    e->messages++;
    bool json = endpoint == ECHO_JSON;
    int n = json ? json_reply(e, body, len) : binary_reply(e, body, len);
    RUSH_ASSERT(n > 0);
    (void)rush_sp_server_reply(e->tcp, origin, json ? (const void *)e->text : e->reply, (size_t)n);
}

/* Answers up to ECHO_BURST_MAX messages waiting on sock. */
static void serve(struct echo *e, int sock)
{
    for (int i = 0; i < ECHO_BURST_MAX; i++) {
        void *body = NULL;
        void *control = NULL;
        struct nn_iovec iov = {.iov_base = &body, .iov_len = NN_MSG};
        struct nn_msghdr header = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = NN_MSG};
        int n = nn_recvmsg(sock, &header, NN_DONTWAIT);
        if (n < 0)
            return;
        e->messages++;
        bool json = sock == e->json;
        int len = json ? json_reply(e, body, (size_t)n) : binary_reply(e, body, (size_t)n);
        RUSH_ASSERT(len > 0);
        send_reply(sock, &control, json ? (const void *)e->text : e->reply, (size_t)len);
        nn_freemsg(body);
    }
}

static int bind_rep(const char *url)
{
    int sock = nn_socket(AF_SP_RAW, NN_REP);
    int buffer = ECHO_BUFFER_BYTES;
    int receive_max = 2 * RUSH_WIRE_MESSAGE_BYTES_MAX + 64;
    if (sock < 0)
        return -1;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVBUF, &buffer, sizeof(buffer));
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_SNDBUF, &buffer, sizeof(buffer));
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &receive_max, sizeof(receive_max));
    int nodelay = 1; /* as rushd's endpoints: replies at once */
    nn_setsockopt(sock, NN_TCP, NN_TCP_NODELAY, &nodelay, sizeof(nodelay));
    if (nn_bind(sock, url) < 0) {
        fprintf(stderr, "bench-echo: cannot bind %s: %s\n", url, nn_strerror(nn_errno()));
        nn_close(sock);
        return -1;
    }
    return sock;
}

static int receive_fd(int sock)
{
    int fd = -1;
    size_t size = sizeof(fd);
    if (sock >= 0)
        RUSH_VERIFY(nn_getsockopt(sock, NN_SOL_SOCKET, NN_RCVFD, &fd, &size) == 0);
    return fd;
}

static void run(struct echo *e, double seconds)
{
    struct pollfd fds[3] = {{.fd = receive_fd(e->binary), .events = POLLIN},
                            {.fd = receive_fd(e->json), .events = POLLIN},
                            {.fd = rush_sp_server_fd(e->tcp), .events = POLLIN}};
    int64_t end_ns = seconds > 0 ? rush_clock_monotonic_ns() + (int64_t)(seconds * 1e9) : INT64_MAX;
    while (!stop_requested && rush_clock_monotonic_ns() < end_ns) {
        rush_sp_server_timers(e->tcp);
        if (poll(fds, 3, 100) <= 0) /* poll skips the fds that are -1 */
            continue;
        if (fds[0].revents & POLLIN)
            serve(e, e->binary);
        if (fds[1].revents & POLLIN)
            serve(e, e->json);
        if (fds[2].revents & POLLIN) {
            rush_sp_server_receive(e->tcp);
            rush_sp_server_flush(e->tcp);
        }
    }
    rush_sp_server_linger(e->tcp, 200);
}

/* Binds url for `endpoint` on the tcp server (tcp://, unless nanomsg is asked) or a nanomsg
 * socket (stored in *sock). false: it could not. */
static bool endpoint_bind(struct echo *e, uint32_t endpoint, const char *url, bool nanomsg,
                          int *sock)
{
    *sock = -1;
    if (nanomsg || strncmp(url, "tcp://", strlen("tcp://")) != 0)
        return (*sock = bind_rep(url)) >= 0;
    char why[256];
    if (e->tcp == NULL && rush_sp_server_create(2, tcp_message, e, &e->tcp) < 0)
        return false;
    size_t message_max = (endpoint == ECHO_BINARY ? 2 * RUSH_WIRE_MESSAGE_BYTES_MAX
                                                  : 2 * RUSH_JSON_MESSAGE_BYTES_MAX) +
                         RUSH_SP_BACKTRACE_BYTES_MAX;
    if (rush_sp_server_listen(e->tcp, endpoint, url, message_max, why, sizeof(why)) < 0) {
        fprintf(stderr, "bench-echo: cannot bind %s\n", why);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *json_url = NULL;
    double seconds = 0;
    bool nanomsg = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--json-url") == 0)
            json_url = argv[i + 1];
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--transport") == 0)
            nanomsg = strcmp(argv[i + 1], "nanomsg") == 0;
    }
    if (url == NULL || argc % 2 == 0) {
        fprintf(stderr, "usage: bench-echo --url URL [--json-url URL] [--seconds S] "
                        "[--transport rush|nanomsg]\n");
        return 2;
    }
    struct sigaction action = {.sa_handler = on_signal};
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    static struct echo e;
    e.requests_buf = calloc(RUSH_WIRE_REQUESTS_MAX, sizeof(*e.requests_buf));
    e.results = calloc(RUSH_WIRE_REQUESTS_MAX, sizeof(*e.results));
    e.reply = aligned_alloc(8, RUSH_WIRE_MESSAGE_BYTES_MAX);
    e.json = -1;
    if (!e.requests_buf || !e.results || !e.reply ||
        !endpoint_bind(&e, ECHO_BINARY, url, nanomsg, &e.binary) ||
        (json_url != NULL && !endpoint_bind(&e, ECHO_JSON, json_url, nanomsg, &e.json)))
        return 1;
    int64_t start_ns = rush_clock_monotonic_ns();
    run(&e, seconds);
    printf("{\"bench\":\"echo\",\"messages\":%llu,\"requests\":%llu,\"json_messages\":%llu,"
           "\"seconds\":%.3f}\n",
           (unsigned long long)e.messages, (unsigned long long)e.requests,
           (unsigned long long)e.json_messages,
           (double)(rush_clock_monotonic_ns() - start_ns) / 1e9);
    if (e.binary >= 0)
        nn_close(e.binary);
    if (e.json >= 0)
        nn_close(e.json);
    rush_sp_server_destroy(e.tcp);
    free(e.requests_buf);
    free(e.results);
    free(e.reply);
    return 0;
}
