/*
 * driver.h — rush-loadgen's engine room: the sockets, the pacing and the replies.
 *
 * What and why. One thread drives every connection. Each connection is its own nanomsg raw REQ
 * socket (AF_SP_RAW, NN_REQ) connected to rushd's orders endpoint, so each is one TCP
 * connection on which many messages are in flight at once (rushd's REP side is raw as well);
 * replies are matched by the wire header's message_id. One thread is enough: per message the
 * work is one encode, one nn_send and one decode, and it leaves the second core of a small box
 * to rushd.
 *
 *   closed  every connection keeps --inflight messages outstanding; a reply frees its slot and
 *           the next message goes at once. Latency is measured from the actual send.
 *   open    messages leave on the schedule of arrivals.h, round robin over the connections
 *           with a free slot. When no slot is free the due messages wait; their latency still
 *           runs from the intended time, so a stall shows in the figures instead of hiding.
 *
 * A message slot's life:
 *
 *     build        nn_send ok             RESULT (or ERROR) reply
 *   --------> PENDING ---------> IN FLIGHT ---------------------------> free
 *                |  EAGAIN: retried when        |  deadline (--timeout-ms after build)
 *                |  the socket can send         +-------------------------> free (requests LOST)
 *                +--> free (requests LOST) on deadline or a hard send error
 *
 *   build_message       free -> PENDING (ledger entries appended, tags = ledger indices)
 *   try_send            PENDING -> IN FLIGHT
 *   on_reply            IN FLIGHT -> free (ledger answered or refused; scenario told)
 *   expire_slots        PENDING or IN FLIGHT -> free (ledger lost)
 *
 * Invariants:
 *   1. Per connection, in_flight + free_count == inflight, and at most one slot is PENDING.
 *   2. A slot's requests are ledger entries [first, first + count): consecutive, because one
 *      thread appends them in one go; result i of a reply must carry tag first + i.
 *   3. tally.in_flight is the sum of the connections' in_flight.
 *
 * The run ends when the scenario is exhausted (every buyer sent, no follow-up waiting) and
 * nothing is in flight; or, after --duration or *stop, when what is in flight is answered or
 * has timed out. Nothing is allocated once rush_driver_run has set up.
 */
#ifndef RUSH_DRIVER_H
#define RUSH_DRIVER_H

#include <signal.h>

#include "ledger.h"
#include "options.h"
#include "report.h"
#include "scenario.h"

#define RUSH_DRIVER_RECEIVE_BURST_MAX 64      /* replies taken from one socket per loop turn */
#define RUSH_DRIVER_TIMEOUT_SCAN_NS 100000000 /* deadlines checked every 100 ms */
#define RUSH_DRIVER_IDLE_WAIT_NS 100000000    /* longest poll wait */
#define RUSH_DRIVER_SOCKET_BUFFER_BYTES (4 * 1024 * 1024)

struct rush_driver_input {
    const struct rush_loadgen_options *options;
    struct rush_ledger *ledger;
    struct rush_scenario *scenario;
    struct rush_tally *tally;
    volatile sig_atomic_t *stop; /* set (by a signal handler) to stop sending; may be NULL */
};

/*
 * Runs the load to its end (see above) and fills input->tally. Returns 0, or a negative code
 * when the connections could not be set up (-ENOMEM, -EINVAL for an address nanomsg refuses).
 */
RUSH_MUST_USE int rush_driver_run(const struct rush_driver_input *input);

#endif
