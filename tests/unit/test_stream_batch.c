/*
 * rush_stream_batch (proto/codec/stream.c): a log batch read as stream events, the one numbering
 * rule of rushd's publisher, its replay and rush-relay's log source. A seeded model test against
 * a plain loop: random batches, taken in random slices from a random first seq, give the same
 * events and seqs as numbering every carried event from seq_before + 1 and keeping those at or
 * after from_seq. The seed is printed on failure.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rush/stream.h"

#define EVENTS_MAX 300
#define ROUNDS 2000

static const uint8_t types[] = {RUSH_EV_ORDER_RESERVED, RUSH_EV_ORDER_CONFIRMED,
                                RUSH_EV_GROUP_OPENED,   RUSH_EV_GROUP_COMPLETED,
                                RUSH_EV_ORDER_RELEASED, RUSH_EV_REJECTED};

static uint32_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*state >> 33);
}

Test(stream_batch, slices_from_any_seq_equal_the_plain_numbering)
{
    uint64_t seed = (uint64_t)time(NULL), state = seed;
    static struct rush_event events[EVENTS_MAX];
    static struct rush_stream_event want[EVENTS_MAX], got[EVENTS_MAX];
    for (int round = 0; round < ROUNDS; round++) {
        uint32_t count = next_random(&state) % EVENTS_MAX;
        for (uint32_t i = 0; i < count; i++)
            events[i] = (struct rush_event){.type = types[next_random(&state) % sizeof types],
                                            .order_id = i + 1,
                                            .sku_id = 7,
                                            .qty = 1,
                                            .amount = 100};
        uint64_t seq_before = next_random(&state) % 1000;
        uint64_t from = seq_before + next_random(&state) % (count + 2);
        uint32_t want_count = 0;
        uint64_t seq = seq_before;
        for (uint32_t i = 0; i < count; i++)
            if (rush_stream_carries(events[i].type) && ++seq >= from)
                rush_stream_event_from_log(&want[want_count++], 3, seq, 42, &events[i]);

        struct rush_stream_batch batch;
        rush_stream_batch_begin(&batch, 3, seq_before, 42, events, count);
        uint32_t got_count = 0;
        for (int slices = 0; !rush_stream_batch_done(&batch); slices++) {
            cr_assert_leq(slices, EVENTS_MAX, "seed %llu: no progress", (unsigned long long)seed);
            uint32_t slice = 1 + next_random(&state) % 8;
            uint32_t n = rush_stream_batch_take(&batch, from, got + got_count, slice);
            cr_assert(n <= slice && (n == slice || rush_stream_batch_done(&batch)),
                      "seed %llu: %u of a slice of %u before the end", (unsigned long long)seed, n,
                      slice);
            got_count += n;
        }
        cr_assert_eq(got_count, want_count, "seed %llu round %d", (unsigned long long)seed, round);
        cr_assert(memcmp(got, want, (size_t)want_count * sizeof want[0]) == 0,
                  "seed %llu round %d: the events differ", (unsigned long long)seed, round);
        cr_assert_eq(batch.seq, seq, "seed %llu: the batch ends at the plain count",
                     (unsigned long long)seed);
    }
}
