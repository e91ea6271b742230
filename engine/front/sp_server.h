/*
 * sp_server.h — a REP server of the SP-over-TCP mapping (what nanomsg and NNG REQ sockets
 * connect to), run on the caller's thread with epoll: listeners, connections, framing, replies
 * coalesced per connection. rushd's tcp:// endpoints use it (server.c), and so does bench-echo.
 * The design and invariants are in sp_server.c.
 *
 * Use: create with an on_message callback and the number of messages the caller may hold
 * unanswered at once; listen on up to RUSH_SP_SERVER_ENDPOINTS_MAX tcp:// URLs; poll(2) the fd;
 * when it is readable call rush_sp_server_receive (each whole message goes to on_message with an
 * origin); answer every origin exactly once with rush_sp_server_reply, now or later; call
 * rush_sp_server_flush once per turn (every reply queued since leaves, one send per connection)
 * and rush_sp_server_timers once per turn (or at least once a second).
 *
 * Threads: everything on one thread.
 */
#ifndef RUSH_SP_SERVER_H
#define RUSH_SP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RUSH_SP_SERVER_ENDPOINTS_MAX 4
#define RUSH_SP_SERVER_CONNECTIONS_MAX 4096

struct rush_sp_server;

/* What the transport has seen (for the console's /metrics). */
struct rush_sp_server_figures {
    uint32_t connections;     /* open now */
    uint64_t accepted;        /* connections taken */
    uint64_t refused;         /* closed at once: over RUSH_SP_SERVER_CONNECTIONS_MAX */
    uint64_t closed_protocol; /* closed for what they sent (or did not: no greeting) */
    uint64_t dropped_replies; /* their peer gone, or no memory */
};

/* A whole message from a connection of `endpoint`: its body (valid only during the call) and
 * the origin to reply to. */
typedef void (*rush_sp_server_message_fn)(void *context, uint32_t endpoint, void *origin,
                                          const void *body, size_t len);

/* 0, or -ENOMEM. origins_max: messages the caller holds unanswered at once, at most. */
int rush_sp_server_create(uint32_t origins_max, rush_sp_server_message_fn on_message, void *context,
                          struct rush_sp_server **out);
/* Binds tcp://HOST:PORT ("*", an address, [IPv6] or a name) for `endpoint`, whose messages are
 * at most message_max bytes (backtrace included; a longer one closes its connection). 0, or < 0
 * with the reason in why. */
int rush_sp_server_listen(struct rush_sp_server *server, uint32_t endpoint, const char *url,
                          size_t message_max, char *why, size_t why_size);
/* The fd that polls readable when a listener or connection has something; -1 for NULL. */
int rush_sp_server_fd(const struct rush_sp_server *server);
/* Accepts, reads and hands every whole message to on_message; closes what must close. */
void rush_sp_server_receive(struct rush_sp_server *server);
/* Closes peers that never greeted; resumes accepting after running out of fds. NULL: nothing. */
void rush_sp_server_timers(struct rush_sp_server *server);
/* Queues the reply to `origin` (given back). false when it is dropped: its connection closed, or
 * no memory for it. */
bool rush_sp_server_reply(struct rush_sp_server *server, void *origin, const void *body,
                          size_t len);
/* Writes every connection's queued replies (one send per connection). NULL: nothing. */
void rush_sp_server_flush(struct rush_sp_server *server);
/* Shutdown: flushes, then keeps writing what the kernel did not take, for up to wait_ms. */
void rush_sp_server_linger(struct rush_sp_server *server, int wait_ms);
/* Its figures so far (all zero for NULL). */
void rush_sp_server_figures(const struct rush_sp_server *server,
                            struct rush_sp_server_figures *out);
/* Closes every connection and listener. Safe on NULL. */
void rush_sp_server_destroy(struct rush_sp_server *server);

#endif
