/*
 * timer.c — see timer.h for the workload, shape and invariants.
 */
#include "timer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "rush/assert.h"

enum { TIMER_IDLE = 0, TIMER_FIRED = 2 }; /* and RUSH_RUSH_TIMER_SCHEDULED (timer.h) */

/* prev[] of a list's first handle: this bit and the slot; of the others, the handle before. */
#define HEAD_BIT UINT32_C(0x80000000)

/* Makes `next` (maybe NONE) follow whatever `prev_link` names, in both directions. */
static void link_after(struct rush_timer_wheel *wheel, uint32_t prev_link, uint32_t next)
{
    if (prev_link & HEAD_BIT)
        wheel->heads[prev_link & ~HEAD_BIT] = next;
    else
        wheel->next[prev_link] = next;
    if (next != RUSH_TIMER_NONE)
        wheel->prev[next] = prev_link;
}

/* Ticks are floor(ns / tick_ns); engine times are positive, so plain division floors. */
static int64_t tick_of(const struct rush_timer_wheel *wheel, int64_t ns)
{
    return ns <= 0 ? 0 : ns / wheel->tick_ns;
}

int rush_timer_wheel_init(struct rush_timer_wheel *wheel, uint32_t handles_max, uint32_t slot_count,
                          int64_t tick_ns, int64_t now_ns)
{
    if (handles_max == 0 || slot_count == 0 || (slot_count & (slot_count - 1)) != 0 ||
        tick_ns <= 0 || handles_max >= HEAD_BIT || slot_count >= HEAD_BIT)
        return RUSH_ECONFIG;
    memset(wheel, 0, sizeof(*wheel));
    wheel->heads = malloc(sizeof(uint32_t) * slot_count);
    wheel->next = rush_memory_zeroed(handles_max, sizeof(uint32_t));
    wheel->prev = rush_memory_zeroed(handles_max, sizeof(uint32_t));
    wheel->deadline_ns = rush_memory_zeroed(handles_max, sizeof(int64_t));
    wheel->state = rush_memory_zeroed(handles_max, 1);
    if (!wheel->heads || !wheel->next || !wheel->prev || !wheel->deadline_ns || !wheel->state) {
        rush_timer_wheel_free(wheel);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < slot_count; i++)
        wheel->heads[i] = RUSH_TIMER_NONE;
    wheel->handles_max = handles_max;
    wheel->slot_count = slot_count;
    wheel->tick_ns = tick_ns;
    wheel->last_tick = tick_of(wheel, now_ns) - 1;
    return 0;
}

void rush_timer_wheel_free(struct rush_timer_wheel *wheel)
{
    free(wheel->heads);
    rush_memory_free(wheel->next);
    rush_memory_free(wheel->prev);
    rush_memory_free(wheel->deadline_ns);
    rush_memory_free(wheel->state);
    memset(wheel, 0, sizeof(*wheel));
}

void rush_timer_wheel_add(struct rush_timer_wheel *wheel, uint32_t handle, int64_t deadline_ns)
{
    RUSH_ASSERT(handle < wheel->handles_max);
    RUSH_ASSERT(wheel->state[handle] != RUSH_TIMER_SCHEDULED); /* fired: its slot was reused */
    /* A deadline already passed goes in the next slot advanced over, so it still fires. */
    int64_t tick = tick_of(wheel, deadline_ns);
    if (tick <= wheel->last_tick)
        tick = wheel->last_tick + 1;
    uint32_t slot = (uint32_t)tick & (wheel->slot_count - 1);
    wheel->deadline_ns[handle] = deadline_ns;
    wheel->state[handle] = RUSH_TIMER_SCHEDULED;
    wheel->next[handle] = wheel->heads[slot];
    wheel->prev[handle] = HEAD_BIT | slot;
    if (wheel->heads[slot] != RUSH_TIMER_NONE)
        wheel->prev[wheel->heads[slot]] = handle;
    wheel->heads[slot] = handle;
    wheel->scheduled_count++;
}

void rush_timer_wheel_cancel(struct rush_timer_wheel *wheel, uint32_t handle)
{
    RUSH_ASSERT(handle < wheel->handles_max && wheel->state[handle] == RUSH_TIMER_SCHEDULED);
    link_after(wheel, wheel->prev[handle], wheel->next[handle]);
    wheel->state[handle] = TIMER_IDLE;
    RUSH_ASSERT(wheel->scheduled_count > 0);
    wheel->scheduled_count--;
}

/* Unlinks from one slot list every handle due by now; returns how many it appended to due[]. */
static uint32_t take_due(struct rush_timer_wheel *wheel, uint32_t slot, int64_t through_tick,
                         uint32_t *due, uint32_t due_count)
{
    uint32_t prev_link = HEAD_BIT | slot;
    uint32_t handle = wheel->heads[slot];
    uint32_t taken = 0;
    uint32_t visited_max = wheel->scheduled_count; /* a list is never longer than that */
    for (uint32_t visited = 0; handle != RUSH_TIMER_NONE && visited <= visited_max; visited++) {
        uint32_t next = wheel->next[handle];
        if (tick_of(wheel, wheel->deadline_ns[handle]) <= through_tick) {
            link_after(wheel, prev_link, next);
            wheel->state[handle] = TIMER_FIRED;
            due[due_count + taken++] = handle;
        } else {
            prev_link = handle;
        }
        handle = next;
    }
    return taken;
}

/* Orders due handles by (deadline, handle). The wheel rides along: qsort_r keeps this re-entrant.
 */
static int compare_due(const void *a, const void *b, void *context)
{
    const struct rush_timer_wheel *wheel = context;
    uint32_t ha = *(const uint32_t *)a, hb = *(const uint32_t *)b;
    int64_t da = wheel->deadline_ns[ha], db = wheel->deadline_ns[hb];
    if (da != db)
        return da < db ? -1 : 1;
    return ha < hb ? -1 : ha > hb;
}

/*
 * Only ticks that have wholly passed are walked: a timer fires at the first advance at or after
 * the end of its deadline's tick, so never early and at most one tick late.
 */
uint32_t rush_timer_wheel_advance(struct rush_timer_wheel *wheel, int64_t now_ns, uint32_t *due)
{
    int64_t through_tick = tick_of(wheel, now_ns) - 1;
    if (through_tick <= wheel->last_tick)
        return 0;
    /* Walk the passed ticks, or each slot once when more than a turn has passed. */
    int64_t ticks = through_tick - wheel->last_tick;
    if (ticks > wheel->slot_count)
        ticks = wheel->slot_count;
    uint32_t count = 0;
    for (int64_t t = through_tick - ticks + 1; t <= through_tick; t++) {
        uint32_t slot = (uint32_t)t & (wheel->slot_count - 1);
        count += take_due(wheel, slot, through_tick, due, count);
    }
    wheel->last_tick = through_tick;
    RUSH_ASSERT(count <= wheel->scheduled_count);
    wheel->scheduled_count -= count;
    qsort_r(due, count, sizeof(*due), compare_due, wheel);
    return count;
}

uint64_t rush_timer_wheel_bytes(const struct rush_timer_wheel *wheel)
{
    return (uint64_t)wheel->slot_count * 4 + (uint64_t)wheel->handles_max * (4 + 4 + 8 + 1);
}
