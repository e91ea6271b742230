/*
 * The shard's hash table (engine/shard/table.c): sizes refused, insert and find, exactly
 * `capacity` entries, upsert, the find_noting / insert_noted pair (fresh, stale and foreign
 * notes), probe sequences that wrap past the last slot, keys a client chose to collide under one
 * seed (still all found, and spread under another seed), a zero key refused, the bitmap of used
 * slots through inserts and removals.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "shard/table.h"

struct entry {
    rush_key key;
    uint64_t value;
    uint64_t spare;
};

static rush_key key_n(uint64_t n)
{
    return rush_key_pair(n * 0x9e3779b97f4a7c15ull, n + 1);
}

/* The slot a key's probe sequence starts at: where a miss in an empty table notes it. */
static uint32_t home_slot(struct rush_table *empty, const rush_key *key)
{
    cr_assert_eq(empty->count, 0);
    cr_assert_null(rush_table_find_noting(empty, key));
    return (uint32_t)((empty->noted_slot - empty->slots) / empty->entry_bytes);
}

Test(table, sizes_out_of_range_are_refused)
{
    struct rush_table table;
    cr_expect_eq(rush_table_init(&table, 0, sizeof(struct entry), 1), RUSH_ECONFIG);
    cr_expect_eq(rush_table_init(&table, UINT32_MAX / 2 + 1, sizeof(struct entry), 1),
                 RUSH_ECONFIG);
    cr_assert_eq(rush_table_init(&table, 1, sizeof(struct entry), 1), 0);
    cr_assert_gt(table.slot_count, table.capacity, "room for an empty slot on every probe");
    rush_table_free(&table);
}

Test(table, keys_round_trip_and_absent_keys_are_not_found)
{
    struct rush_table table;
    cr_assert_eq(rush_table_init(&table, 1000, sizeof(struct entry), 42), 0);
    for (uint64_t n = 1; n <= 1000; n++) {
        rush_key key = key_n(n);
        struct entry *e = rush_table_insert(&table, &key);
        cr_assert_not_null(e);
        cr_assert_eq(memcmp(&e->key, &key, sizeof(key)), 0);
        cr_assert_eq(e->value, 0, "a new entry is zeroed");
        e->value = n * 3;
    }
    cr_assert_eq(table.count, 1000);
    for (uint64_t n = 1; n <= 1000; n++) {
        rush_key key = key_n(n);
        struct entry *e = rush_table_find(&table, &key);
        cr_assert_not_null(e, "key %lu", n);
        cr_assert_eq(e->value, n * 3);
    }
    for (uint64_t n = 1001; n <= 3000; n++) {
        rush_key key = key_n(n);
        cr_assert_null(rush_table_find(&table, &key), "key %lu was never inserted", n);
    }
    uint32_t occupied = 0;
    for (uint32_t i = 0; i < table.slot_count; i++)
        occupied += rush_table_slot(&table, i) != NULL;
    cr_assert_eq(occupied, 1000);
    rush_table_free(&table);
}

Test(table, holds_exactly_capacity_entries_and_upsert_still_finds_old_ones_when_full)
{
    struct rush_table table;
    cr_assert_eq(rush_table_init(&table, 64, sizeof(struct entry), 7), 0);
    bool created = false;
    for (uint64_t n = 1; n <= 64; n++) {
        cr_assert_not(rush_table_full(&table));
        rush_key key = key_n(n);
        cr_assert_not_null(rush_table_upsert(&table, &key, &created));
        cr_assert(created);
    }
    cr_assert(rush_table_full(&table));
    rush_key extra = key_n(65);
    cr_assert_null(rush_table_insert(&table, &extra), "a 65th entry is refused");
    cr_assert_null(rush_table_upsert(&table, &extra, &created));
    rush_key old = key_n(17);
    struct entry *e = rush_table_upsert(&table, &old, &created);
    cr_assert_not_null(e);
    cr_assert_not(created, "an existing key is found, not created");
    cr_assert_eq(table.count, 64);
    rush_table_free(&table);
}

Test(table, a_noted_miss_inserts_in_place_and_a_stale_or_foreign_note_probes_again)
{
    struct rush_table table;
    cr_assert_eq(rush_table_init(&table, 100, sizeof(struct entry), 3), 0);
    rush_key a = key_n(1), b = key_n(2), c = key_n(3);
    cr_assert_null(rush_table_find_noting(&table, &a));
    void *noted = table.noted_slot;
    struct entry *ea = rush_table_insert_noted(&table, &a);
    cr_assert_eq((void *)ea, noted, "the fresh note is used");
    cr_assert_eq(rush_table_find(&table, &a), (void *)ea);

    /* a note made stale by another insert: b may now sit where c was noted */
    cr_assert_null(rush_table_find_noting(&table, &c));
    cr_assert_not_null(rush_table_insert(&table, &b));
    struct entry *ec = rush_table_insert_noted(&table, &c);
    cr_assert_not_null(ec);
    cr_assert_eq(rush_table_find(&table, &c), (void *)ec);
    cr_assert_eq(rush_table_find(&table, &b) == (void *)ec, false, "b and c hold their own slots");

    /* a note of another key is not used for this one */
    rush_key d = key_n(4), e = key_n(5);
    cr_assert_null(rush_table_find_noting(&table, &d));
    void *noted_d = table.noted_slot;
    bool created = false;
    struct entry *ee = rush_table_upsert_noted(&table, &e, &created);
    cr_assert(created);
    cr_assert_neq((void *)ee, noted_d, "e went to its own place, not to d's");
    cr_assert_eq(rush_table_find(&table, &e), (void *)ee);
    cr_assert_null(rush_table_find(&table, &d));
    cr_assert_eq(table.count, 4);
    rush_table_free(&table);
}

/* A tiny table filled to capacity many times over: runs wrap past the last slot to slot 0. */
Test(table, probe_sequences_wrap_past_the_last_slot)
{
    for (uint64_t seed = 1; seed <= 200; seed++) {
        struct rush_table table;
        cr_assert_eq(rush_table_init(&table, 3, sizeof(struct entry), seed), 0);
        for (uint64_t n = 1; n <= 3; n++) {
            rush_key key = key_n(seed * 10 + n);
            cr_assert_not_null(rush_table_insert(&table, &key), "seed %lu key %lu", seed, n);
        }
        for (uint64_t n = 1; n <= 3; n++) {
            rush_key key = key_n(seed * 10 + n);
            cr_assert_not_null(rush_table_find(&table, &key), "seed %lu key %lu", seed, n);
        }
        rush_key absent = key_n(seed * 10 + 9);
        cr_assert_null(rush_table_find(&table, &absent));
        rush_table_free(&table);
    }
}

/*
 * A client that learned one seed's layout sends 48 keys that all start at slot 0 under it: they
 * form one long run and are all still found; under another seed the same keys scatter.
 */
Test(table, keys_aimed_at_one_chain_are_found_and_another_seed_scatters_them)
{
    enum { CAPACITY = 256, AIMED = 48 };
    struct rush_table probe_a, table;
    cr_assert_eq(rush_table_init(&probe_a, CAPACITY, sizeof(struct entry), 1111), 0);
    static rush_key aimed[AIMED];
    uint32_t found = 0;
    for (uint64_t n = 1; found < AIMED && n < 10000000; n++) {
        rush_key key = key_n(n);
        if (home_slot(&probe_a, &key) == 0)
            aimed[found++] = key;
    }
    cr_assert_eq(found, AIMED);
    cr_assert_eq(rush_table_init(&table, CAPACITY, sizeof(struct entry), 1111), 0);
    for (uint32_t i = 0; i < AIMED; i++)
        cr_assert_not_null(rush_table_insert(&table, &aimed[i]));
    for (uint32_t i = 0; i < AIMED; i++) {
        struct entry *e = rush_table_find(&table, &aimed[i]);
        cr_assert_not_null(e, "aimed key %u", i);
        cr_assert_eq((uint32_t)(((uint8_t *)e - table.slots) / table.entry_bytes), i,
                     "one run from slot 0, in insertion order");
    }
    struct rush_table probe_b;
    cr_assert_eq(rush_table_init(&probe_b, CAPACITY, sizeof(struct entry), 2222), 0);
    uint32_t at_zero = 0;
    for (uint32_t i = 0; i < AIMED; i++)
        at_zero += home_slot(&probe_b, &aimed[i]) == 0;
    cr_assert_lt(at_zero, 4, "%u of %u keys still start at slot 0 under another seed", at_zero,
                 AIMED);
    rush_table_free(&probe_a);
    rush_table_free(&probe_b);
    rush_table_free(&table);
}

Test(table, key_pair_and_zero_key)
{
    rush_key key = rush_key_pair(0x0102030405060708ull, 0x1112131415161718ull);
    cr_assert_eq(key.bytes[0], 0x18);
    cr_assert_eq(key.bytes[7], 0x11);
    cr_assert_eq(key.bytes[8], 0x08);
    cr_assert_eq(key.bytes[15], 0x01);
    cr_assert_not(rush_key_is_zero(&key));
    rush_key zero = rush_key_pair(0, 0);
    cr_assert(rush_key_is_zero(&zero));
}

Test(table, a_zero_key_is_refused, .signal = SIGABRT)
{
    struct rush_table table;
    cr_assert_eq(rush_table_init(&table, 8, sizeof(struct entry), 1), 0);
    rush_key zero = rush_key_pair(0, 0);
    void *e = rush_table_find(&table, &zero);
    cr_assert_fail("found %p for the empty-slot key", e);
}

/* Invariant 4: a slot's bit is set exactly when it holds an entry, through inserts, noted
 * inserts, upserts and removals that shift runs back; every entry stays findable, also from a
 * hinted home, and a prefetch of any home is harmless. */
static void bits_match_entries(const struct rush_table *table)
{
    for (uint32_t s = 0; s < table->slot_count; s++)
        cr_assert_eq(rush_table_used(table, s), rush_table_slot(table, s) != NULL, "slot %u", s);
}

Test(table, the_used_bitmap_follows_every_insert_and_removal)
{
    struct rush_table table;
    cr_assert_eq(rush_table_init(&table, 300, sizeof(struct entry), 5), 0);
    bool present[1000] = {false};
    uint64_t state = 12345;
    for (uint32_t round = 0; round < 20000; round++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t n = (uint32_t)(state >> 33) % 1000;
        rush_key key = key_n(n);
        uint32_t home = rush_table_home(&table, &key);
        rush_table_prefetch_used(&table, home);
        rush_table_prefetch_home(&table, home, (state & 1) != 0);
        if (present[n]) {
            cr_assert_not_null(rush_table_find_home(&table, &key, home));
            cr_assert(rush_table_remove(&table, &key));
            present[n] = false;
        } else if (!rush_table_full(&table)) {
            cr_assert_null(rush_table_find_noting(&table, &key));
            rush_table_hint(&table, &key, home);
            bool created;
            cr_assert_not_null(rush_table_upsert_noted(&table, &key, &created));
            cr_assert(created);
            present[n] = true;
        }
        if (round % 1000 == 0)
            bits_match_entries(&table);
    }
    bits_match_entries(&table);
    for (uint32_t n = 0; n < 1000; n++) {
        rush_key key = key_n(n);
        cr_assert_eq(rush_table_find(&table, &key) != NULL, present[n], "key %u", n);
    }
    rush_table_free(&table);
}
