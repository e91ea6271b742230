/*
 * server_reply.c — what every endpoint uses to answer: sending a reply with the control header
 * the message came with, the binary and JSON error replies, and the rule of which ops only the
 * admin endpoint takes.
 *
 * Direction: the bottom of the front end but for sp_server.c (a tcp:// endpoint's replies are
 * queued there). It calls nanomsg, the codecs and the logger, never a function of server.c,
 * server_slots.c or an endpoint file.
 *
 * Workload: one call per reply. Threads: the front end only.
 */
#include <errno.h>
#include <nanomsg/nn.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "rush/assert.h"
#include "server_internal.h"

static const char *const endpoint_names[RUSH_ENDPOINT_COUNT_] = {"orders", "json", "admin"};

const char *rush_server_endpoint_name(enum rush_endpoint endpoint)
{
    RUSH_ASSERT(endpoint < RUSH_ENDPOINT_COUNT_);
    return endpoint_names[endpoint];
}

int64_t rush_server_now_ns(void)
{
    return rush_clock_monotonic_ns();
}

void rush_server_send(struct rush_server *server, enum rush_endpoint endpoint, void **control,
                      const void *body, size_t len)
{
    if (server->on_tcp[endpoint]) {
        if (!rush_sp_server_reply(server->tcp, *control, body, len))
            server->counters.send_failures++; /* its peer went away before its answer */
        *control = NULL;
        return;
    }
    struct nn_iovec iov = {.iov_base = (void *)body, .iov_len = len};
    struct nn_msghdr header = {.msg_iov = &iov, .msg_iovlen = 1};
    if (*control != NULL) {
        header.msg_control = control;
        header.msg_controllen = NN_MSG;
    }
    /* From here the chunk is nanomsg's, sent or freed (nn_sendmsg's checks that keep it can
     * only fail on arguments this function never passes). */
    int rc = nn_sendmsg(server->sockets[endpoint], &header, NN_DONTWAIT);
    *control = NULL;
    if (rc < 0) {
        server->counters.send_failures++;
        rush_log(RUSH_LOG_DEBUG, "%s: reply of %zu bytes not sent: %s",
                 rush_server_endpoint_name(endpoint), len, nn_strerror(errno));
    }
}

bool rush_server_op_is_admin(uint8_t op)
{
    return op == RUSH_OP_ADJUST || op == RUSH_OP_PAUSE || op == RUSH_OP_RESUME;
}

void rush_server_send_wire_error(struct rush_server *server, struct rush_server_message *message,
                                 uint64_t message_id, const struct rush_wire_error *error)
{
    server->counters.errors++;
    rush_log(RUSH_LOG_DEBUG, "refused a message of %zu bytes: %s", message->len, error->text);
    int n = rush_wire_encode_error(server->reply, RUSH_WIRE_MESSAGE_BYTES_MAX, message_id, error);
    RUSH_ASSERT(n > 0);
    rush_server_send(server, message->endpoint, &message->control, server->reply, (size_t)n);
}

void rush_server_send_json_error(struct rush_server *server, struct rush_server_message *message,
                                 const char *why)
{
    server->counters.errors++;
    int n = rush_json_encode_error(why, server->text, sizeof(server->text));
    RUSH_ASSERT(n > 0);
    rush_server_send(server, message->endpoint, &message->control, server->text, (size_t)n);
}
