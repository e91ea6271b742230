/*
 * The shard's timer wheel (engine/shard/timer.c): settings refused; a timer fires once, never
 * early and at most one tick late; due timers come out sorted by (deadline, handle) whatever
 * the order they were added in; deadlines more than a turn of the wheel away wait for their
 * lap; a jump over many turns fires everything due; a deadline already passed fires when the
 * next tick ends; a timer not cancelled stays scheduled until it fires, then never again; a
 * handle fired (or cancelled) may be added again, one still scheduled or out of range is refused;
 * and a seeded run against a plain reference. (rush_timer_wheel_cancel: tests/unit/test_keys.c.)
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include "shard/timer.h"

#define TICK 10 /* ns: small numbers keep the arithmetic readable */

static struct rush_timer_wheel wheel;
static uint32_t due[4096];

static void wheel_new(uint32_t handles, uint32_t slots, int64_t now)
{
    cr_assert_eq(rush_timer_wheel_init(&wheel, handles, slots, TICK, now), 0);
}

static void wheel_free(void)
{
    rush_timer_wheel_free(&wheel);
}

TestSuite(timer, .fini = wheel_free);

Test(timer, settings_out_of_range_are_refused)
{
    struct rush_timer_wheel w;
    cr_expect_eq(rush_timer_wheel_init(&w, 0, 8, TICK, 0), RUSH_ECONFIG);
    cr_expect_eq(rush_timer_wheel_init(&w, 8, 0, TICK, 0), RUSH_ECONFIG);
    cr_expect_eq(rush_timer_wheel_init(&w, 8, 12, TICK, 0), RUSH_ECONFIG);
    cr_expect_eq(rush_timer_wheel_init(&w, 8, 8, 0, 0), RUSH_ECONFIG);
    cr_expect_eq(rush_timer_wheel_init(&w, 8, 8, -5, 0), RUSH_ECONFIG);
}

Test(timer, fires_once_never_early_and_at_most_one_tick_late)
{
    wheel_new(4, 8, 1000);
    rush_timer_wheel_add(&wheel, 2, 1005); /* inside tick 100: [1000, 1010) */
    cr_assert(rush_timer_wheel_scheduled(&wheel, 2));
    cr_assert_eq(rush_timer_deadline(&wheel, 2), 1005);
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 1005, due), 0, "not at its deadline");
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 1009, due), 0, "not before its tick ends");
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 1010, due), 1, "when its tick has passed");
    cr_assert_eq(due[0], 2);
    cr_assert_not(rush_timer_wheel_scheduled(&wheel, 2));
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 5000, due), 0, "never twice");
    cr_assert_eq(wheel.scheduled_count, 0);
}

Test(timer, due_timers_come_out_by_deadline_then_handle_whatever_the_order_added)
{
    wheel_new(16, 8, 0);
    /* added in an order unrelated to the firing order; 9 and 3 share a deadline, 12 and 1 too */
    uint32_t handles[] = {9, 12, 3, 7, 1, 15, 0};
    int64_t deadlines[] = {55, 57, 55, 41, 57, 40, 79};
    for (int i = 0; i < 7; i++)
        rush_timer_wheel_add(&wheel, handles[i], deadlines[i]);
    uint32_t n = rush_timer_wheel_advance(&wheel, 80, due);
    uint32_t expected[] = {15, 7, 3, 9, 1, 12, 0};
    cr_assert_eq(n, 7);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(due[i], expected[i], "position %u: handle %u, expected %u", i, due[i],
                     expected[i]);
}

/* 8 slots of 10 ns: a deadline 100 ticks away shares its slot with ticks 4, 12, ... 92. */
Test(timer, a_deadline_many_turns_away_waits_for_its_lap_tick_by_tick)
{
    wheel_new(4, 8, 0);
    rush_timer_wheel_add(&wheel, 1, 100 * TICK + 3);
    rush_timer_wheel_add(&wheel, 2, 4 * TICK + 3); /* the same slot, this lap */
    int64_t fired_at[3] = {0};
    for (int64_t now = TICK; now <= 110 * TICK; now += TICK) {
        uint32_t n = rush_timer_wheel_advance(&wheel, now, due);
        for (uint32_t i = 0; i < n; i++) {
            cr_assert_eq(fired_at[due[i]], 0, "handle %u fired twice", due[i]);
            fired_at[due[i]] = now;
        }
    }
    cr_assert_eq(fired_at[2], 5 * TICK);
    cr_assert_eq(fired_at[1], 101 * TICK);
}

Test(timer, a_jump_over_many_turns_fires_everything_due_and_nothing_else)
{
    wheel_new(1000, 16, 0);
    for (uint32_t h = 0; h < 1000; h++)
        rush_timer_wheel_add(&wheel, h, (int64_t)h * 37 + 1); /* up to ~37,000 ns: 230 turns */
    uint32_t n = rush_timer_wheel_advance(&wheel, 20000, due);
    uint32_t expected = 0;
    for (uint32_t h = 0; h < 1000; h++)
        expected += (int64_t)h * 37 + 1 < 20000 / TICK * TICK;
    cr_assert_eq(n, expected);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(due[i], i, "sorted by deadline (here: by handle)");
        cr_assert_not(rush_timer_wheel_scheduled(&wheel, i));
    }
    cr_assert(rush_timer_wheel_scheduled(&wheel, n));
    n = rush_timer_wheel_advance(&wheel, INT64_MAX / 2, due);
    cr_assert_eq(n, 1000 - expected, "the rest, at a very late advance");
    cr_assert_eq(wheel.scheduled_count, 0);
}

/*
 * A deadline already passed when it is added goes in the slot of the next tick to pass: it fires
 * at the first advance that ends a tick, not at an advance within the same tick. (timer.h's
 * invariant 2 does not hold for it in between; see the report of issue 10.)
 */
Test(timer, a_deadline_already_passed_fires_when_the_next_tick_ends)
{
    wheel_new(4, 8, 0);
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 500, due), 0);
    rush_timer_wheel_add(&wheel, 3, 100); /* 40 ticks ago */
    rush_timer_wheel_add(&wheel, 0, -7);  /* before the epoch */
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 509, due), 0, "tick 50 has not ended");
    uint32_t n = rush_timer_wheel_advance(&wheel, 510, due);
    cr_assert_eq(n, 2);
    cr_assert_eq(due[0], 0);
    cr_assert_eq(due[1], 3);
}

/* Without a cancel a timer stays: a closed group's owner ignores its timer when it fires. */
Test(timer, a_timer_not_cancelled_stays_until_it_fires)
{
    wheel_new(4, 8, 0);
    rush_timer_wheel_add(&wheel, 1, 50);
    rush_timer_wheel_add(&wheel, 2, 50);
    cr_assert_eq(wheel.scheduled_count, 2);
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 40, due), 0);
    cr_assert(rush_timer_wheel_scheduled(&wheel, 1), "still scheduled: nothing takes it out");
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 60, due), 2);
    cr_assert_not(rush_timer_wheel_scheduled(&wheel, 1));
    cr_assert_not(rush_timer_wheel_scheduled(&wheel, 3), "never added");
}

/* A reused order slot schedules its handle again once the old timer fired or was cancelled. */
Test(timer, a_fired_handle_is_added_again_and_fires_again)
{
    wheel_new(4, 8, 0);
    rush_timer_wheel_add(&wheel, 1, 50);
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 100, due), 1);
    cr_assert_not(rush_timer_wheel_scheduled(&wheel, 1));
    rush_timer_wheel_add(&wheel, 1, 500);
    cr_assert(rush_timer_wheel_scheduled(&wheel, 1));
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 400, due), 0, "not early");
    cr_assert_eq(rush_timer_wheel_advance(&wheel, 600, due), 1);
    cr_assert_eq(due[0], 1);
    cr_assert_eq(wheel.scheduled_count, 0);
}

Test(timer, a_scheduled_handle_is_not_added_twice, .signal = SIGABRT)
{
    wheel_new(4, 8, 0);
    rush_timer_wheel_add(&wheel, 1, 50);
    rush_timer_wheel_add(&wheel, 1, 500); /* still scheduled: refused */
    cr_assert_fail("a scheduled handle was added again");
}

Test(timer, a_handle_out_of_range_is_refused, .signal = SIGABRT)
{
    wheel_new(4, 8, 0);
    rush_timer_wheel_add(&wheel, 4, 50);
    cr_assert_fail("handle 4 of 4 was added");
}

/*
 * The reference: a handle fires at the first advance that ends its due tick: its deadline's tick,
 * or the tick after the last one passed when it was added, whichever is later.
 */
static int compare_reference(const void *a, const void *b, void *context)
{
    const int64_t *deadline = context;
    uint32_t ha = *(const uint32_t *)a, hb = *(const uint32_t *)b;
    if (deadline[ha] != deadline[hb])
        return deadline[ha] < deadline[hb] ? -1 : 1;
    return ha < hb ? -1 : ha > hb;
}

Test(timer, seeded_random_adds_and_advances_match_a_plain_reference, .timeout = 60)
{
    enum { HANDLES = 3000 };
    static int64_t deadline[HANDLES], due_tick[HANDLES];
    static bool added[HANDLES], fired[HANDLES];
    static uint32_t expected[HANDLES];
    unsigned seed = 20261201;
    srand(seed);
    wheel_new(HANDLES, 64, 0);
    int64_t now = 0, passed_tick = -1; /* the last tick wholly passed */
    uint32_t next_handle = 0, fired_total = 0;
    for (int step = 0; step < 2000 && fired_total < HANDLES; step++) {
        for (int k = rand() % 4; k > 0 && next_handle < HANDLES; k--) {
            uint32_t h = next_handle++;
            deadline[h] = now - 50 + rand() % 3000; /* some already past, some laps away */
            int64_t tick = deadline[h] < 0 ? 0 : deadline[h] / TICK;
            due_tick[h] = tick > passed_tick ? tick : passed_tick + 1;
            added[h] = true;
            rush_timer_wheel_add(&wheel, h, deadline[h]);
        }
        now += rand() % (rand() % 10 == 0 ? 2000 : 40);
        uint32_t n = rush_timer_wheel_advance(&wheel, now, due);
        uint32_t want = 0;
        if (now / TICK - 1 > passed_tick)
            passed_tick = now / TICK - 1;
        for (uint32_t h = 0; h < next_handle; h++)
            if (added[h] && !fired[h] && due_tick[h] <= passed_tick)
                expected[want++] = h;
        qsort_r(expected, want, sizeof(expected[0]), compare_reference, deadline);
        cr_assert_eq(n, want, "seed %u step %d: %u due, the reference says %u", seed, step, n,
                     want);
        for (uint32_t i = 0; i < n; i++) {
            cr_assert_eq(due[i], expected[i], "seed %u step %d position %u", seed, step, i);
            fired[due[i]] = true;
        }
        fired_total += n;
    }
    cr_assert_gt(fired_total, HANDLES / 2, "the run fired most timers");
}
