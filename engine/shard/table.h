/*
 * table.h — a fixed-capacity, seeded, open-addressing hash table with 128-bit keys.
 *
 * Workload: the shard's lookups by key on the decision path (idempotency keys, SKU ids,
 * (sku, user) limits): one probe sequence per request, millions per second, one thread.
 *
 * Shape: `slot_count` entries of `entry_bytes` each, laid out inline; the first 16 bytes of an
 * entry are its key, an all-zero key marks an empty slot, and a bitmap beside them has a bit set
 * for each slot that holds an entry (invariant 4). A lookup reads the bitmap first, so a key
 * whose home slot is empty (most lookups in a table far from full: a sold-out rush's users)
 * costs no miss on the entries at all. Linear probing from a position drawn
 * from XXH3 of the key seeded at start-up, so clients choosing keys cannot aim at one chain.
 * An entry is removed by backward-shift deletion (the entries after it in its run move back to
 * where their probe would reach them first), so probing never meets a tombstone and a table that
 * is filled and emptied for a whole night probes as short as a fresh one.
 *
 * The shard's key table removes entries when an order slot is reused or the ring of other keys
 * wraps; what it keeps and for how long is written at the top of decide.c.
 *
 * Invariants:
 *   1. count <= capacity < slot_count, so every probe sequence ends at an empty slot.
 *   2. No entry has an all-zero key.
 *   3. No decision depends on where an entry sits: callers find, never iterate, except for
 *      order-independent digests and checks.
 *   4. A slot's bit in `used` is set exactly when its key is not all-zero.
 *
 * Thread: owned by one shard thread; no locking.
 */
#ifndef RUSH_TABLE_H
#define RUSH_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rush/assert.h"
#include "rush/types.h"

struct rush_table {
    uint8_t *slots;
    uint64_t *used; /* a bit per slot, set while it holds an entry: a probe reads these (a few
                       hundred KB: they stay in cache) and touches no empty slot's line */
    uint64_t seed;
    uint32_t entry_bytes;
    uint32_t slot_count;
    uint32_t capacity;
    uint32_t count;
    uint32_t changes;     /* inserts and removals so far (wraps): a note from before is stale */
    uint8_t *noted_slot;  /* where the last find_noting missed */
    uint32_t noted_index; /* its index */
    rush_key noted_key;
    uint32_t noted_changes; /* `changes` at that moment */
    rush_key hint_key;      /* a key whose home slot is known (rush_table_hint): its lookups skip
                               the hash; all-zero (no key) when none */
    uint32_t hint_home;
};

/* Allocates room for `capacity` entries at a load factor of at most 3/4. */
RUSH_MUST_USE int rush_table_init(struct rush_table *table, uint32_t capacity, uint32_t entry_bytes,
                                  uint64_t seed);
void rush_table_free(struct rush_table *table);

/* The entry with this key, or NULL. */
void *rush_table_find(const struct rush_table *table, const rush_key *key);

/*
 * Inserts an entry for a key that is not present: returns it with the key set and the rest
 * zeroed, or NULL when the table holds `capacity` entries already.
 */
void *rush_table_insert(struct rush_table *table, const rush_key *key);

/* The entry with this key, inserted (key set, rest zero; *created true) if absent; NULL when
 * absent and the table is full. One probe sequence. */
void *rush_table_upsert(struct rush_table *table, const rush_key *key, bool *created);

/*
 * Like rush_table_find, but on a miss also notes where the key would go, so that an insert of
 * that key with no other insert in between needs no second probe (rush_table_insert_noted).
 */
void *rush_table_find_noting(struct rush_table *table, const rush_key *key);
/* Inserts `key` (absent) where the last find_noting of it missed; probes when that note is stale
 * or was of another key. */
void *rush_table_insert_noted(struct rush_table *table, const rush_key *key);
/* Find-or-insert that uses the note of a missed find_noting of the same key. */
void *rush_table_upsert_noted(struct rush_table *table, const rush_key *key, bool *created);

/*
 * Removes the entry with this key; returns whether there was one. Entries after it in its run may
 * move (pointers into the table are stale afterwards). Visits at most count + 1 slots.
 */
bool rush_table_remove(struct rush_table *table, const rush_key *key);

/* Whether slot `home` holds an entry (a bitmap read: no miss on the entries). */
static inline bool rush_table_used(const struct rush_table *table, uint32_t home)
{
    return (table->used[home >> 6] >> (home & 63)) & 1;
}

/* Starts loading the key's home slot into cache, for a lookup a few requests from now. */
void rush_table_prefetch(const struct rush_table *table, const rush_key *key);

/*
 * Batched lookups (the shard's pipelined decide, decide.c): the home slot of a key is computed
 * once, its line prefetched well before the lookup, and handed back as a hint so that the
 * lookups of that key (a decision makes up to four) skip the hash. The home is a pure function
 * of the key and the table's seed and size: a hint changes where nothing is, only how fast it is
 * found.
 */
uint32_t rush_table_home(const struct rush_table *table, const rush_key *key);
/* The bitmap word of `home` (stage 1), then the entries a probe from it walks (stage 2: none
 * when its bit says the home slot is empty, unless an insert there is `expected`). Inline and
 * straight-line: they run two or three times for every request of a batch. */
static inline void rush_table_prefetch_used(const struct rush_table *table, uint32_t home)
{
    RUSH_ASSERT(home < table->slot_count);
    __builtin_prefetch(&table->used[home >> 6], 0, 3);
}

/*
 * The lines a probe from `home` will read, from the bitmap word (in cache by now): none when the
 * home slot is empty (the probe stops at its bit) unless an insert there is `expected`; else the
 * run of used slots from home (a key that is absent, as every new order's key and limit is,
 * walks all of it) and, when an insert is expected, the empty slot after it. At most 4 lines:
 * each takes a line fill buffer, and a core keeps only a couple of dozen misses in flight, so a
 * guess by load (the run is 2.5 slots long on average at half full, 4.8 at two thirds) wasted
 * them. A run that goes on in the next bitmap word is cut at this word's end. A prefetch never
 * faults: a run that wraps at the table's end prefetches past it, which costs a wasted fill.
 */
static inline void rush_table_prefetch_home(const struct rush_table *table, uint32_t home,
                                            bool expected)
{
    RUSH_ASSERT(home < table->slot_count);
    uintptr_t first = (uintptr_t)table->slots + (uintptr_t)home * table->entry_bytes;
    uint64_t word = table->used[home >> 6] >> (home & 63); /* bit 0: home */
    if (!(word & 1)) {
        if (expected)
            __builtin_prefetch((const void *)first, 1, 3);
        return;
    }
    uintptr_t slots = (uintptr_t)__builtin_ctzll(~word) + expected; /* ~word has a top bit set */
    uintptr_t last = first + slots * table->entry_bytes - 1;
    uintptr_t line = (first | 63) + 1;
    __builtin_prefetch((const void *)first, 1, 3);
    if (line <= last)
        __builtin_prefetch((const void *)line, 1, 3);
    if (line + 64 <= last)
        __builtin_prefetch((const void *)(line + 64), 1, 3);
    if (line + 128 <= last)
        __builtin_prefetch((const void *)(line + 128), 1, 3);
}

/* The entry with this key, whose home (rush_table_home) is given, or NULL. */
void *rush_table_find_home(const struct rush_table *table, const rush_key *key, uint32_t home);
/* Lookups of `key` take `home` (its rush_table_home) until the next hint. */
static inline void rush_table_hint(struct rush_table *table, const rush_key *key, uint32_t home)
{
    table->hint_key = *key;
    table->hint_home = home;
}

static inline bool rush_table_full(const struct rush_table *table)
{
    return table->count >= table->capacity;
}

/* The entry at slot `index` (0 <= index < slot_count), or NULL when that slot is empty. */
void *rush_table_slot(const struct rush_table *table, uint32_t index);

/* Bytes the table holds, for memory accounting. */
uint64_t rush_table_bytes(const struct rush_table *table);

/* Builds a key from two 64-bit halves: low in bytes 0..7, high in 8..15, each little-endian
 * (two stores: the byte loop it replaces cost about 50 instructions on every lookup). */
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "keys are built little-endian");
static inline rush_key rush_key_pair(uint64_t high, uint64_t low)
{
    rush_key key;
    memcpy(key.bytes, &low, sizeof(low));
    memcpy(key.bytes + 8, &high, sizeof(high));
    return key;
}

/* Inline: every lookup asserts it and every request asks it. */
static inline bool rush_key_is_zero(const rush_key *key)
{
    uint64_t w[2];
    memcpy(w, key->bytes, sizeof(w));
    return (w[0] | w[1]) == 0;
}

#endif
