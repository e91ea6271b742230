/*
 * timer.h — the shard's timer wheel: pay-TTL expiries and group deadlines.
 *
 * Workload: one timer per reserved order with a pay TTL and one per open group; millions live,
 * added on the decision path (O(1)), fired in bulk when the engine clock passes them.
 *
 * Shape: a hashed wheel of `slot_count` slots (a power of two) of `tick_ns` each. A timer is a
 * handle (the caller's index of an order or group) with a deadline; it sits in the singly linked
 * list of slot (deadline tick mod slot_count). Advancing to `now` walks the slots of the ticks
 * passed (all slots once at most) and takes out the handles whose deadline tick has come; it
 * returns them sorted by (deadline, handle), so firing order never depends on list order — a
 * wheel rebuilt in another order (after a snapshot) fires the same way.
 *
 * Cancellation is O(1) (the slot lists are doubly linked): the shard cancels an order's pay timer
 * when the order is confirmed or cancelled, so that its slot can be reused before the TTL would
 * have passed. A handle is added again only when it is not scheduled (fired or cancelled).
 *
 * Invariants:
 *   1. A handle is in at most one slot list, and only if its state is SCHEDULED.
 *   2. Every handle with deadline tick <= last_tick has been returned by advance.
 *
 * Thread: owned by one shard thread.
 */
#ifndef RUSH_TIMER_H
#define RUSH_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "rush/assert.h"
#include "rush/types.h"

#define RUSH_TIMER_NONE UINT32_MAX

struct rush_timer_wheel {
    uint32_t *heads;      /* slot_count list heads */
    uint32_t *next;       /* per handle: next in its slot list */
    uint32_t *prev;       /* per handle: the one before, or HEAD_BIT | slot for the first */
    int64_t *deadline_ns; /* per handle */
    uint8_t *state;       /* per handle: idle, scheduled or fired */
    uint32_t handles_max;
    uint32_t slot_count;
    int64_t tick_ns;
    int64_t last_tick; /* every tick up to this one has been advanced over */
    uint32_t scheduled_count;
};

RUSH_MUST_USE int rush_timer_wheel_init(struct rush_timer_wheel *wheel, uint32_t handles_max,
                                        uint32_t slot_count, int64_t tick_ns, int64_t now_ns);
void rush_timer_wheel_free(struct rush_timer_wheel *wheel);

/* Schedules `handle` (< handles_max, not scheduled now) to fire at deadline_ns. */
void rush_timer_wheel_add(struct rush_timer_wheel *wheel, uint32_t handle, int64_t deadline_ns);

/* Takes a scheduled `handle` out of the wheel: it will not fire. */
void rush_timer_wheel_cancel(struct rush_timer_wheel *wheel, uint32_t handle);

/*
 * Takes out every timer whose deadline tick has wholly passed by now_ns (so deadline < now_ns,
 * fired at most one tick late, never early), stores the handles in due[] (room for handles_max)
 * sorted by (deadline, handle), and returns how many.
 */
uint32_t rush_timer_wheel_advance(struct rush_timer_wheel *wheel, int64_t now_ns, uint32_t *due);

/* True when `handle` (< handles_max) is scheduled: added and not yet fired. For snapshots, which
 * store the scheduled timers and re-add them to a fresh wheel on load, and for the decision path
 * (inline: a new order asks it). */
#define RUSH_TIMER_SCHEDULED 1 /* a handle's state while it sits in a slot list */
static inline bool rush_timer_wheel_scheduled(const struct rush_timer_wheel *wheel, uint32_t handle)
{
    RUSH_ASSERT(handle < wheel->handles_max);
    return wheel->state[handle] == RUSH_TIMER_SCHEDULED;
}

static inline int64_t rush_timer_deadline(const struct rush_timer_wheel *wheel, uint32_t handle)
{
    return wheel->deadline_ns[handle];
}

uint64_t rush_timer_wheel_bytes(const struct rush_timer_wheel *wheel);

#endif
