/*
 * driver.h — rush-loadgen's engine room: the threads, the sockets, the pacing and the replies.
 *
 * What and why. --threads driver threads share the run; each owns a fixed share of the
 * connections (connection k to node k % nodes; thread t takes the k in [t x total / threads,
 * (t + 1) x total / threads)), its own poll loop, pacing and figures, so that a load generator
 * on a many-core gateway box is not one core's worth of encoding and nn_send. What the threads
 * share is the crowd: the scenario (who asks what next, follow-ups) and the ledger (every request
 * and its answer), behind one mutex taken once per message built and once per reply; entries are
 * appended under it, so a message's requests are consecutive ledger entries whatever the thread.
 * Each connection is its own nanomsg raw REQ socket (AF_SP_RAW, NN_REQ) on one TCP connection,
 * many messages in flight at once; replies are matched by the wire header's message_id (binary)
 * or by the REQ request id nanomsg hands back with the reply (JSON, --json: one request per
 * message, as the JSON endpoint takes them).
 *
 *   closed  every connection keeps --inflight messages outstanding; a reply frees its slot and
 *           the next message goes at once. Latency is measured from the actual send.
 *   open    each thread runs its own schedule at --rate / threads (arrivals.h): fixed arrivals
 *           offset by one gap per thread, so that together they are the one evenly spaced
 *           schedule asked for; Poisson arrivals with a seed per thread, whose superposition is
 *           Poisson at --rate. A due message goes to a connection of its node with a free slot;
 *           when none is free it waits, and its latency still runs from the intended time, so a
 *           stall shows in the figures instead of hiding (no coordinated omission, per thread).
 *
 * Figures are exact: each thread counts in its own tally (outcomes, histogram, errors), and the
 * tallies are added up after the threads are joined (rush_tally_merge). For the progress line
 * each thread publishes a copy of its counters and the latencies of the last 100 ms under its
 * own lock; the calling thread adds them up once a second.
 *
 * Routing (loadgen/route.h). A message goes to the node that leads its first request's shard
 * (one node without --nodes). A result answered redirect is not an answer: the request (same 64
 * bytes, same key: kept in `requests`, one copy per ledger entry, only with --nodes) goes again,
 * alone in its message, to the node named, at once or after a wait, at most RUSH_ROUTE_HOPS_MAX
 * times. With several nodes a message unanswered by its deadline is not lost: its requests go
 * again the same way to the next node for their shards (route.h), and an outcome_unknown goes
 * again after a wait. A batched message whose requests span shards led by different nodes is
 * answered partly by redirects; batch per shard (or --batch 1) against a cluster.
 *
 * A message slot's life:
 *
 *     attach       nn_send ok             RESULT (or ERROR) reply
 *   --------> PENDING ---------> IN FLIGHT ---------------------------> free
 *                |  EAGAIN: retried when        |  deadline (--timeout-ms after attach)
 *                |  the socket can send         +-------------------------> free (requests LOST)
 *                +--> free (requests LOST) on deadline or a hard send error
 *
 *   attach              free -> PENDING (a held message or a resend, on a connection of its node)
 *   try_send            PENDING -> IN FLIGHT
 *   on_results          IN FLIGHT -> free (ledger answered or refused; redirects queued again)
 *   expire_slots        PENDING or IN FLIGHT -> free (ledger lost; with several nodes each
 *                       request queued again for the next node of its shard instead)
 *
 * Invariants (per thread):
 *   1. Per connection, in_flight + free_count == inflight, and at most one slot is PENDING.
 *   2. A slot's requests are ledger entries [first, first + count): a new message's are
 *      consecutive because they are appended under the crowd lock in one go; a resend is one.
 *      Result i of a reply must carry tag first + i.
 *   3. tally.in_flight is the sum of the thread's connections' in_flight; requests_in_flight the
 *      sum of their slots' counts; requests_in_flight + resends waiting + held <= resend_max.
 *
 * A thread ends when the scenario is exhausted (every buyer sent, no follow-up waiting) and it
 * has nothing in flight, held or waiting to be resent; or, after --duration or a stop, when what
 * it has in flight is answered or has timed out. Nothing is allocated once the run has started.
 */
#ifndef RUSH_DRIVER_H
#define RUSH_DRIVER_H

#include <signal.h>

#include "ledger.h"
#include "options.h"
#include "report.h"
#include "scenario.h"

#define RUSH_DRIVER_RECEIVE_BURST_MAX 64      /* replies taken from one socket per loop turn */
#define RUSH_DRIVER_TIMEOUT_SCAN_NS 100000000 /* deadlines checked (and figures published) */
#define RUSH_DRIVER_IDLE_WAIT_NS 100000000    /* longest poll wait */
#define RUSH_DRIVER_SOCKET_BUFFER_BYTES (4 * 1024 * 1024)
#define RUSH_DRIVER_JSON_REQUEST_BYTES_MAX 1024 /* one encoded JSON request (about 250 bytes) */

struct rush_driver_input {
    const struct rush_loadgen_options *options;
    struct rush_ledger *ledger;
    struct rush_scenario *scenario;
    struct rush_tally *tally;
    volatile sig_atomic_t *stop; /* set (by a signal handler) to stop sending; may be NULL */
};

/*
 * Runs the load to its end (see above) on options->threads threads and fills input->tally with
 * the sum of theirs. Returns 0, or a negative code when the connections or threads could not be
 * set up (-ENOMEM, -EINVAL for an address nanomsg refuses, -errno of pthread_create).
 */
RUSH_MUST_USE int rush_driver_run(const struct rush_driver_input *input);

#endif
