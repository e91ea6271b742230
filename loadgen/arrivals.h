/*
 * arrivals.h — when an open-loop run means to send each message.
 *
 * What and why. An open-loop load generator must not let the server's speed decide when
 * requests are sent: if it waited for replies before sending more, a stalled server would
 * simply see fewer requests and the stall would vanish from the figures (coordinated
 * omission). So the schedule is fixed in advance: message k is INTENDED to leave at
 * start + t_k, whatever happens, and its requests' latency is measured from t_k. When the
 * generator cannot send on time (every connection's window is full), the message waits and
 * that wait is part of its latency.
 *
 * Messages carry `batch` requests, so messages arrive at rate_per_s / batch per second:
 *   fixed    t_k = k * gap                          gap = batch / rate_per_s
 *   poisson  t_k = t_{k-1} + Exp(mean gap)          (inverse transform of a uniform draw)
 * Times are nanoseconds on CLOCK_MONOTONIC, kept as double so that a gap of a few ns does not
 * drift by rounding.
 *
 * Threads: the driver's thread only. No allocation.
 */
#ifndef RUSH_ARRIVALS_H
#define RUSH_ARRIVALS_H

#include <stdint.h>

#include "options.h"

struct rush_arrivals {
    enum rush_loadgen_arrivals kind;
    double gap_ns;  /* mean gap between messages */
    double next_ns; /* intended send time of the next message */
    uint64_t random;
    uint64_t count; /* messages scheduled so far (those before next_ns) */
};

/* A schedule of messages of `batch` requests at rate_per_s requests/s, the first at start_ns. */
void rush_arrivals_init(struct rush_arrivals *arrivals, enum rush_loadgen_arrivals kind,
                        double rate_per_s, uint32_t batch, int64_t start_ns, uint64_t seed);

/* The intended time of the next message (not consumed). */
static inline int64_t rush_arrivals_peek(const struct rush_arrivals *arrivals)
{
    return (int64_t)arrivals->next_ns;
}

/* Consumes the next message's slot in the schedule; returns its intended time. */
int64_t rush_arrivals_take(struct rush_arrivals *arrivals);

#endif
