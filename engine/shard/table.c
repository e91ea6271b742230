/*
 * table.c — see table.h for the workload, shape and invariants.
 */
#include "table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL /* the hash is on every lookup: let it inline */
#include <xxhash.h>

#include "base/memory.h"
#include "rush/assert.h"

/* Keys compare as two 64-bit words; memcpy keeps it free of alignment and aliasing traps. */
static inline void key_words(const void *key, uint64_t words[2])
{
    memcpy(words, key, 16);
}

int rush_table_init(struct rush_table *table, uint32_t capacity, uint32_t entry_bytes,
                    uint64_t seed)
{
    RUSH_ASSERT(entry_bytes >= sizeof(rush_key) && entry_bytes % 8 == 0);
    if (capacity == 0 || capacity > UINT32_MAX / 2)
        return RUSH_ECONFIG;
    uint64_t slot_count = (uint64_t)capacity + capacity / 3 + 1;
    memset(table, 0, sizeof(*table));
    table->slots = rush_memory_zeroed(slot_count, entry_bytes);
    table->used = rush_memory_zeroed((slot_count + 63) / 64, sizeof(uint64_t));
    if (table->slots == NULL || table->used == NULL) {
        rush_table_free(table);
        return -ENOMEM;
    }
    table->seed = seed;
    table->entry_bytes = entry_bytes;
    table->slot_count = (uint32_t)slot_count;
    table->capacity = capacity;
    return 0;
}

void rush_table_free(struct rush_table *table)
{
    rush_memory_free(table->slots);
    rush_memory_free(table->used);
    memset(table, 0, sizeof(*table));
}

/* Maps a hash onto [0, slot_count) without a division (multiply-shift). */
static uint32_t hash_home(const struct rush_table *table, const rush_key *key)
{
    uint64_t hash = XXH3_64bits_withSeed(key, sizeof(*key), table->seed);
    return (uint32_t)(((unsigned __int128)hash * table->slot_count) >> 64);
}

/* The key's home slot: the hint's when it is of this key (two compares instead of a hash). */
static inline __attribute__((always_inline)) uint32_t home_of(const struct rush_table *table,
                                                              const rush_key *key)
{
    uint64_t want[2], hint[2];
    key_words(key, want);
    key_words(&table->hint_key, hint);
    if (want[0] == hint[0] && want[1] == hint[1])
        return table->hint_home;
    return hash_home(table, key);
}

uint32_t rush_table_home(const struct rush_table *table, const rush_key *key)
{
    return hash_home(table, key);
}

static uint8_t *slot_at(const struct rush_table *table, uint32_t index)
{
    return table->slots + (uint64_t)index * table->entry_bytes;
}

/* Sets or clears slot `index`'s bit (invariant 4), as its key is written or zeroed. */
static void set_used(struct rush_table *table, uint32_t index, bool used)
{
    uint64_t bit = UINT64_C(1) << (index & 63);
    table->used[index >> 6] = used ? table->used[index >> 6] | bit : table->used[index >> 6] & ~bit;
}

/*
 * Walks the probe sequence of `key` and stops at its entry or at the first empty slot, whose
 * index it returns. The walk visits at most count + 1 slots (invariant 1).
 */
static inline __attribute__((always_inline)) uint32_t
probe_from(const struct rush_table *table, const rush_key *key, uint32_t index)
{
    uint64_t want[2], have[2];
    key_words(key, want);
    for (uint32_t step = 0; step <= table->count; step++) {
        if (!rush_table_used(table, index))
            return index; /* empty: its line is not read */
        key_words(slot_at(table, index), have);
        if (have[0] == want[0] && have[1] == want[1])
            return index;
        index = index + 1 == table->slot_count ? 0 : index + 1;
    }
    RUSH_ASSERT(!"probe passed every entry without an empty slot");
    return 0;
}

static inline __attribute__((always_inline)) uint32_t probe(const struct rush_table *table,
                                                            const rush_key *key)
{
    return probe_from(table, key, home_of(table, key));
}

void rush_table_prefetch(const struct rush_table *table, const rush_key *key)
{
    uint32_t home = hash_home(table, key);
    rush_table_prefetch_used(table, home);
    rush_table_prefetch_home(table, home, false);
}

void *rush_table_find(const struct rush_table *table, const rush_key *key)
{
    RUSH_ASSERT(!rush_key_is_zero(key));
    uint32_t index = probe(table, key);
    return rush_table_used(table, index) ? slot_at(table, index) : NULL;
}

void *rush_table_find_home(const struct rush_table *table, const rush_key *key, uint32_t home)
{
    RUSH_ASSERT(!rush_key_is_zero(key) && home < table->slot_count);
    uint32_t index = probe_from(table, key, home);
    return rush_table_used(table, index) ? slot_at(table, index) : NULL;
}

void *rush_table_find_noting(struct rush_table *table, const rush_key *key)
{
    RUSH_ASSERT(!rush_key_is_zero(key));
    uint32_t index = probe(table, key);
    uint8_t *slot = slot_at(table, index);
    if (rush_table_used(table, index))
        return slot;
    table->noted_slot = slot;
    table->noted_index = index;
    table->noted_key = *key;
    table->noted_changes = table->changes;
    return NULL;
}

/* The noted empty slot of `key` if the note still holds, else NULL; the note is used up. */
static uint8_t *take_note(struct rush_table *table, const rush_key *key)
{
    uint8_t *slot = table->noted_slot;
    table->noted_slot = NULL;
    if (slot == NULL || table->noted_changes != table->changes ||
        memcmp(&table->noted_key, key, sizeof(*key)) != 0)
        return NULL;
    RUSH_ASSERT(rush_key_is_zero((const rush_key *)slot)); /* empty (invariant 4) */
    return slot;
}

void *rush_table_upsert_noted(struct rush_table *table, const rush_key *key, bool *created)
{
    uint8_t *slot = take_note(table, key);
    if (slot == NULL || rush_table_full(table))
        return rush_table_upsert(table, key, created);
    memcpy(slot, key, sizeof(*key));
    set_used(table, table->noted_index, true); /* the note was of this slot (take_note) */
    table->count++;
    table->changes++;
    *created = true;
    return slot;
}

void *rush_table_insert_noted(struct rush_table *table, const rush_key *key)
{
    bool created;
    void *entry = rush_table_upsert_noted(table, key, &created);
    RUSH_ASSERT(entry == NULL || created); /* callers insert absent keys only */
    return entry;
}

void *rush_table_insert(struct rush_table *table, const rush_key *key)
{
    bool created;
    void *entry = rush_table_upsert(table, key, &created);
    RUSH_ASSERT(entry == NULL || created); /* callers insert absent keys only */
    return entry;
}

void *rush_table_upsert(struct rush_table *table, const rush_key *key, bool *created)
{
    RUSH_ASSERT(!rush_key_is_zero(key));
    uint32_t index = probe(table, key);
    uint8_t *slot = slot_at(table, index);
    *created = !rush_table_used(table, index);
    if (!*created)
        return slot;
    if (rush_table_full(table))
        return NULL;
    memcpy(slot, key, sizeof(*key));
    set_used(table, index, true);
    table->count++;
    table->changes++;
    return slot;
}

/* Whether `home` lies cyclically in (gap, index]: then the entry at index may not move to gap. */
static bool home_between(uint32_t gap, uint32_t home, uint32_t index)
{
    return gap <= index ? (home > gap && home <= index) : (home > gap || home <= index);
}

bool rush_table_remove(struct rush_table *table, const rush_key *key)
{
    RUSH_ASSERT(!rush_key_is_zero(key));
    uint32_t gap = probe(table, key);
    if (!rush_table_used(table, gap))
        return false;
    uint32_t index = gap;
    /* Each step looks at one more slot of the run; a run is at most count long (invariant 1). */
    for (uint32_t step = 0; step < table->count; step++) {
        index = index + 1 == table->slot_count ? 0 : index + 1;
        uint8_t *slot = slot_at(table, index);
        if (!rush_table_used(table, index))
            break;
        if (home_between(gap, home_of(table, (const rush_key *)slot), index))
            continue;
        memcpy(slot_at(table, gap), slot, table->entry_bytes);
        gap = index;
    }
    memset(slot_at(table, gap), 0, table->entry_bytes);
    set_used(table, gap, false);
    table->count--;
    table->changes++;
    return true;
}

void *rush_table_slot(const struct rush_table *table, uint32_t index)
{
    RUSH_ASSERT(index < table->slot_count);
    uint8_t *slot = slot_at(table, index);
    return rush_key_is_zero((const rush_key *)slot) ? NULL : slot;
}

uint64_t rush_table_bytes(const struct rush_table *table)
{
    return (uint64_t)table->slot_count * table->entry_bytes + (table->slot_count + 63) / 64 * 8;
}
