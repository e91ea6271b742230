/*
 * The SPSC ring (engine/ring.c): sizes refused, empty and full, FIFO order, index wrap (slots
 * and the 64-bit counters), a NULL item refused, and one producer and one consumer thread
 * handing over two million items in order with none lost or repeated.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>

#include "ring.h"

static void *item(uint64_t n)
{
    return (void *)(uintptr_t)n;
}

static uint64_t number(void *p)
{
    return (uint64_t)(uintptr_t)p;
}

Test(ring, sizes_that_are_not_a_power_of_two_of_at_least_two_are_refused)
{
    struct rush_ring ring;
    uint32_t bad[] = {0, 1, 3, 6, 100, UINT32_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(rush_ring_init(&ring, bad[i]), RUSH_ECONFIG, "slot_count %u", bad[i]);
    cr_assert_eq(rush_ring_init(&ring, 2), 0);
    rush_ring_free(&ring);
    cr_assert_eq(rush_ring_init(&ring, 1u << 16), 0);
    rush_ring_free(&ring);
}

Test(ring, empty_then_full_then_drained_in_order)
{
    struct rush_ring ring;
    cr_assert_eq(rush_ring_init(&ring, 8), 0);
    cr_assert(rush_ring_empty(&ring));
    cr_assert_null(rush_ring_pop(&ring));
    for (uint64_t n = 1; n <= 8; n++)
        cr_assert(rush_ring_push(&ring, item(n)), "push %lu of 8", n);
    cr_assert_not(rush_ring_push(&ring, item(9)), "full: a ninth item is refused");
    cr_assert_not(rush_ring_empty(&ring));
    cr_assert_eq(number(rush_ring_pop(&ring)), 1);
    cr_assert(rush_ring_push(&ring, item(9)), "one slot freed, one push fits");
    cr_assert_not(rush_ring_push(&ring, item(10)));
    for (uint64_t n = 2; n <= 9; n++)
        cr_assert_eq(number(rush_ring_pop(&ring)), n);
    cr_assert_null(rush_ring_pop(&ring));
    cr_assert(rush_ring_empty(&ring));
    rush_ring_free(&ring);
    cr_assert_null(ring.slots);
}

/* Runs of 3 pushes and 3 pops on 4 slots: every slot index is reused many times. */
Test(ring, order_survives_many_wraps_of_the_slot_index)
{
    struct rush_ring ring;
    cr_assert_eq(rush_ring_init(&ring, 4), 0);
    uint64_t pushed = 0, popped = 0;
    for (int round = 0; round < 1000; round++) {
        for (int i = 0; i < 3; i++)
            cr_assert(rush_ring_push(&ring, item(++pushed)));
        for (int i = 0; i < 3; i++)
            cr_assert_eq(number(rush_ring_pop(&ring)), ++popped);
        cr_assert_null(rush_ring_pop(&ring));
    }
    cr_assert_eq(popped, 3000);
    rush_ring_free(&ring);
}

/* The counters only grow; their unsigned differences stay right when they pass UINT64_MAX. */
Test(ring, the_64_bit_counters_wrap_around)
{
    struct rush_ring ring;
    cr_assert_eq(rush_ring_init(&ring, 4), 0);
    uint64_t start = UINT64_MAX - 5;
    atomic_store(&ring.head, start);
    atomic_store(&ring.tail, start);
    ring.head_cached = start;
    ring.tail_cached = start;
    uint64_t pushed = 0, popped = 0;
    for (int round = 0; round < 6; round++) {
        while (rush_ring_push(&ring, item(pushed + 1)))
            pushed++;
        cr_assert_eq(pushed - popped, 4, "round %d: full at exactly 4 items", round);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(number(rush_ring_pop(&ring)), ++popped);
        cr_assert(rush_ring_empty(&ring));
    }
    cr_assert_lt(atomic_load(&ring.tail), start, "the tail counter wrapped");
    rush_ring_free(&ring);
}

Test(ring, a_null_item_is_refused, .signal = SIGABRT)
{
    struct rush_ring ring;
    cr_assert_eq(rush_ring_init(&ring, 4), 0);
    bool pushed = rush_ring_push(&ring, NULL);
    cr_assert_fail("pushed a NULL item (%d)", pushed);
}

#define HANDOVER_ITEMS 2000000u

struct handover {
    struct rush_ring ring;
    uint64_t full_seen; /* producer: pushes refused because the ring was full */
};

static void *producer_main(void *argument)
{
    struct handover *h = argument;
    for (uint64_t n = 1; n <= HANDOVER_ITEMS; n++) {
        while (!rush_ring_push(&h->ring, item(n))) {
            h->full_seen++;
            sched_yield();
        }
    }
    return NULL;
}

Test(ring, two_threads_hand_over_every_item_once_in_order, .timeout = 120)
{
    static struct handover h;
    cr_assert_eq(rush_ring_init(&h.ring, 64), 0);
    pthread_t producer;
    cr_assert_eq(pthread_create(&producer, NULL, producer_main, &h), 0);
    uint64_t expected = 1, empty_seen = 0;
    while (expected <= HANDOVER_ITEMS) {
        void *p = rush_ring_pop(&h.ring);
        if (p == NULL) {
            empty_seen++;
            sched_yield();
            continue;
        }
        cr_assert_eq(number(p), expected, "item %lu where %lu belongs", number(p), expected);
        expected++;
    }
    pthread_join(producer, NULL);
    cr_assert_null(rush_ring_pop(&h.ring), "nothing beyond the last item");
    cr_assert(rush_ring_empty(&h.ring));
    cr_log_info("ring handover: producer found it full %lu times, consumer empty %lu times",
                h.full_seen, empty_seen);
    rush_ring_free(&h.ring);
}
