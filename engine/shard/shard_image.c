/*
 * shard_image.c — the shard's state as sections of records, and back (see shard_image.h for the
 * sections, the workload and the invariants).
 *
 * A part of the shard's files (shard_internal.h): emit() reads the shard's records directly, and
 * restore() is the one path besides apply() that sets business state — it copies a verified state
 * into a fresh shard and then asserts the shard's invariants with rush_shard_check().
 *
 * Thread: see shard_image.h.
 */
#include "shard_image.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/why.h"
#include "rush/assert.h"
#include "shard_internal.h"

/* The records are stored as laid out in memory: a change of layout is a new format version. */
static_assert(sizeof(struct sku_state) == 800, "sku_state layout is part of snapshot version 6");
static_assert(sizeof(struct order) == 96, "order layout is part of snapshot version 6");
static_assert(sizeof(struct group) == 32, "group layout is part of snapshot version 6");
static_assert(sizeof(struct sku_entry) == 24, "sku_entry layout is part of snapshot version 6");
static_assert(sizeof(struct key_entry) == 64, "key_entry layout is part of snapshot version 6");
static_assert(sizeof(struct limit_entry) == 32, "limit_entry layout is part of snapshot version 6");

#define TIMER_KIND_ORDER 0u
#define TIMER_KIND_GROUP 1u

/* Says why in why[] and returns RUSH_ECORRUPT. */
#define refuse(why, why_size, ...) rush__refuse(RUSH_ECORRUPT, why, why_size, __VA_ARGS__)

uint32_t rush_shard_image_record_bytes(enum rush_shard_image_section section)
{
    switch (section) {
    case RUSH_IMAGE_SKUS:
        return sizeof(struct sku_state);
    case RUSH_IMAGE_ORDERS:
        return sizeof(struct order);
    case RUSH_IMAGE_GROUPS:
        return sizeof(struct group);
    case RUSH_IMAGE_SKU_IDS:
        return sizeof(struct sku_entry);
    case RUSH_IMAGE_KEYS:
        return sizeof(struct key_entry);
    case RUSH_IMAGE_USER_LIMITS:
        return sizeof(struct limit_entry);
    case RUSH_IMAGE_TIMERS:
        return sizeof(struct rush_image_timer);
    case RUSH_IMAGE_SECTION_COUNT:
        break;
    }
    RUSH_ASSERT(!"unknown image section");
    return 0;
}

const char *rush_shard_image_section_name(enum rush_shard_image_section section)
{
    switch (section) {
    case RUSH_IMAGE_SKUS:
        return "skus";
    case RUSH_IMAGE_ORDERS:
        return "orders";
    case RUSH_IMAGE_GROUPS:
        return "groups";
    case RUSH_IMAGE_SKU_IDS:
        return "sku_ids";
    case RUSH_IMAGE_KEYS:
        return "keys";
    case RUSH_IMAGE_USER_LIMITS:
        return "user_limits";
    case RUSH_IMAGE_TIMERS:
        return "timers";
    case RUSH_IMAGE_SECTION_COUNT:
        break;
    }
    return "unknown";
}

uint64_t rush_shard_image_count_max(const struct rush_shard_limits *limits,
                                    enum rush_shard_image_section section)
{
    switch (section) {
    case RUSH_IMAGE_SKUS:
    case RUSH_IMAGE_SKU_IDS:
        return limits->skus_max;
    case RUSH_IMAGE_ORDERS:
        return limits->orders_max;
    case RUSH_IMAGE_GROUPS:
        return limits->groups_max;
    case RUSH_IMAGE_KEYS:
        return limits->keys_max;
    case RUSH_IMAGE_USER_LIMITS:
        return limits->user_limits_max;
    case RUSH_IMAGE_TIMERS:
        return (uint64_t)limits->orders_max + limits->groups_max;
    case RUSH_IMAGE_SECTION_COUNT:
        break;
    }
    return 0;
}

struct rush_shard_limits rush_shard_image_limits(const struct rush_shard *shard)
{
    RUSH_ASSERT(shard != NULL);
    return shard->limits;
}

/* ---- emitting ------------------------------------------------------------------------------- */

/* The caller's sink, counting the records handed to it. */
struct sink {
    rush_shard_image_put_fn put;
    void *context;
    uint32_t record_bytes;
    uint32_t count;
};

static void sink_put(struct sink *sink, const void *record, size_t bytes)
{
    RUSH_ASSERT(bytes == sink->record_bytes);
    sink->put(sink->context, record, bytes);
    sink->count++;
}

static void put_table(struct sink *sink, const struct rush_table *table)
{
    for (uint32_t s = 0; s < table->slot_count; s++) {
        const void *entry = rush_table_slot(table, s);
        if (entry == NULL)
            continue;
        sink_put(sink, entry, table->entry_bytes);
    }
    RUSH_ASSERT(sink->count == table->count);
}

static void put_timers(struct sink *sink, const struct rush_shard *shard)
{
    const struct rush_timer_wheel *wheel = &shard->timers;
    for (uint32_t handle = 0; handle < wheel->handles_max; handle++) {
        if (!rush_timer_wheel_scheduled(wheel, handle))
            continue;
        struct rush_image_timer timer = {.deadline_ns = rush_timer_deadline(wheel, handle)};
        if (handle <= shard->limits.orders_max) {
            timer.index = handle;
            timer.kind = TIMER_KIND_ORDER;
        } else {
            timer.index = handle - shard->limits.orders_max - 1;
            timer.kind = TIMER_KIND_GROUP;
        }
        sink_put(sink, &timer, sizeof(timer));
    }
    RUSH_ASSERT(sink->count == wheel->scheduled_count);
}

uint32_t rush_shard_image_emit(const struct rush_shard *shard,
                               enum rush_shard_image_section section, rush_shard_image_put_fn put,
                               void *context)
{
    RUSH_ASSERT(shard != NULL && put != NULL);
    struct sink sink = {
        .put = put, .context = context, .record_bytes = rush_shard_image_record_bytes(section)};
    switch (section) {
    case RUSH_IMAGE_SKUS:
        for (uint32_t i = 0; i < shard->sku_count; i++)
            sink_put(&sink, &shard->skus[i], sizeof(shard->skus[i]));
        break;
    case RUSH_IMAGE_ORDERS:
        for (uint32_t i = 1; i <= shard->order_count; i++)
            sink_put(&sink, &shard->orders[i], sizeof(shard->orders[i]));
        break;
    case RUSH_IMAGE_GROUPS:
        for (uint32_t i = 1; i <= shard->group_count; i++)
            sink_put(&sink, &shard->groups[i], sizeof(shard->groups[i]));
        break;
    case RUSH_IMAGE_SKU_IDS:
        put_table(&sink, &shard->sku_ids);
        break;
    case RUSH_IMAGE_KEYS:
        put_table(&sink, &shard->keys);
        break;
    case RUSH_IMAGE_USER_LIMITS:
        put_table(&sink, &shard->user_limits);
        break;
    case RUSH_IMAGE_TIMERS:
        put_timers(&sink, shard);
        break;
    case RUSH_IMAGE_SECTION_COUNT:
        RUSH_ASSERT(!"not a section");
        break;
    }
    return sink.count;
}

/* ---- restoring ------------------------------------------------------------------------------ */

/* An index field that is either NONE or one of 1..count. */
static bool link_ok(uint32_t index, uint32_t count)
{
    return index == NONE || (index >= 1 && index <= count);
}

static int fits(const struct rush_shard *shard, const uint32_t *counts, char *why, size_t why_size)
{
    const struct rush_shard_limits *limits = &shard->limits;
    struct {
        const char *what;
        uint32_t need;
        uint32_t have;
    } rows[] = {
        {"skus_max", counts[RUSH_IMAGE_SKUS], limits->skus_max},
        {"orders_max", counts[RUSH_IMAGE_ORDERS], limits->orders_max},
        {"groups_max", counts[RUSH_IMAGE_GROUPS], limits->groups_max},
        {"keys_max", counts[RUSH_IMAGE_KEYS], limits->keys_max},
        {"user_limits_max", counts[RUSH_IMAGE_USER_LIMITS], limits->user_limits_max},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].need > rows[i].have) {
            snprintf(why, why_size,
                     "the snapshot holds %u entries against %s; this shard's limit is %u: raise "
                     "the limit",
                     rows[i].need, rows[i].what, rows[i].have);
            return RUSH_ECONFIG;
        }
    }
    return 0;
}

/* Ledger figures small enough that the checks' sums cannot overflow. */
static bool ledger_ok(const struct sku_state *sku)
{
    const int64_t max = INT64_MAX / 4;
    int64_t figures[] = {sku->stock_total, sku->available, sku->reserved, sku->confirmed,
                         sku->confirmed_retired};
    for (size_t i = 0; i < sizeof(figures) / sizeof(figures[0]); i++)
        if (figures[i] > max || figures[i] < -max)
            return false;
    return true;
}

static int restore_skus(struct rush_shard *shard, const struct rush_shard_image *image, char *why,
                        size_t why_size)
{
    uint32_t count = image->counts[RUSH_IMAGE_SKUS];
    uint32_t groups = image->counts[RUSH_IMAGE_GROUPS];
    if (image->counts[RUSH_IMAGE_SKU_IDS] != count) /* one id entry per SKU, read below */
        return refuse(why, why_size, "%u SKU ids for %u SKUs", image->counts[RUSH_IMAGE_SKU_IDS],
                      count);
    memcpy(shard->skus, image->sections[RUSH_IMAGE_SKUS], (size_t)count * sizeof(*shard->skus));
    shard->sku_count = count;
    for (uint32_t i = 0; i < count; i++) {
        struct sku_state *sku = &shard->skus[i];
        if (sku->def.id == 0 || sku->def.group_size > RUSH_GROUP_SIZE_MAX)
            return refuse(why, why_size, "sku %u: id 0 or group size %u", i, sku->def.group_size);
        if (!ledger_ok(sku) || sku->activity_spent_fen < 0 ||
            sku->activity_spent_fen > RUSH_SUBSIDY_FEN_MAX)
            return refuse(why, why_size, "sku %u: ledger figures out of range", i);
        /* The activities are this run's policy: a budget it no longer has counts nothing. */
        uint32_t a = shard__activity_budgeted(shard, sku);
        if (a == NONE)
            sku->activity_spent_fen = 0;
        else
            shard->activity_spent_fen[a] += sku->activity_spent_fen;
        for (int k = 0; k < RUSH_GROUP_SIZE_MAX; k++)
            if (!link_ok(sku->bucket_head[k], groups) || !link_ok(sku->bucket_tail[k], groups))
                return refuse(why, why_size, "sku %u: bucket %d names a group out of range", i, k);
    }
    const uint8_t *entries = image->sections[RUSH_IMAGE_SKU_IDS];
    for (uint32_t i = 0; i < count; i++) {
        struct sku_entry entry;
        memcpy(&entry, entries + (size_t)i * sizeof(entry), sizeof(entry));
        rush_key want = rush_key_pair(0, entry.index < count ? shard->skus[entry.index].def.id : 0);
        if (entry.index >= count || memcmp(&want, &entry.key, sizeof(want)) != 0)
            return refuse(why, why_size, "sku id entry %u does not name its SKU", i);
        bool created;
        struct sku_entry *slot = rush_table_upsert(&shard->sku_ids, &entry.key, &created);
        if (slot == NULL || !created)
            return refuse(why, why_size, "sku id entry %u: a duplicate", i);
        *slot = entry;
    }
    return 0;
}

/*
 * The retired list is stored in the orders' links; its ends are found again: the head is the one
 * ended order no other names, the tail the one that names none. rush_shard_check then walks it.
 */
static int restore_retired(struct rush_shard *shard, char *why, size_t why_size)
{
    uint32_t count = shard->order_count;
    uint8_t *named = calloc((size_t)count + 1, 1);
    if (named == NULL)
        return -ENOMEM;
    for (uint32_t i = 1; i <= count; i++)
        if (shard->orders[i].state != RUSH_ORDER_RESERVED && shard->orders[i].retired_next != NONE)
            named[shard->orders[i].retired_next] = 1; /* a second name shows as a second head */
    uint32_t heads = 0, tails = 0;
    shard->retired_head = shard->retired_tail = NONE;
    for (uint32_t i = 1; i <= count; i++) {
        const struct order *order = &shard->orders[i];
        if (order->state == RUSH_ORDER_RESERVED)
            continue;
        if (named[i] == 0 && heads++ == 0)
            shard->retired_head = i;
        if (order->retired_next == NONE && tails++ == 0)
            shard->retired_tail = i;
    }
    free(named);
    if (heads > 1 || tails > 1 || (heads == 0) != (tails == 0))
        return refuse(why, why_size, "the retired orders are not one list");
    return 0;
}

/* The ring of other keys is stored in its entries' ring_seq; its places are found again. */
static int restore_ring(struct rush_shard *shard, char *why, size_t why_size)
{
    struct rush_key_ring *ring = &shard->ring;
    uint64_t first = UINT64_MAX, last = 0;
    uint32_t count = 0;
    for (uint32_t s = 0; s < shard->keys.slot_count; s++) {
        const struct key_entry *entry = rush_table_slot(&shard->keys, s);
        if (entry == NULL || entry->ring_seq == 0)
            continue;
        first = entry->ring_seq < first ? entry->ring_seq : first;
        last = entry->ring_seq > last ? entry->ring_seq : last;
        count++;
    }
    if (count == 0)
        return 0;
    if (count > ring->capacity || last - first + 1 != count)
        return refuse(why, why_size, "%u ring keys, places %" PRIu64 "..%" PRIu64 ", room %u",
                      count, first, last, ring->capacity);
    for (uint32_t s = 0; s < shard->keys.slot_count; s++) {
        const struct key_entry *entry = rush_table_slot(&shard->keys, s);
        if (entry == NULL || entry->ring_seq == 0)
            continue;
        rush_key *place = &ring->keys[(entry->ring_seq - 1) % ring->capacity];
        if (!rush_key_is_zero(place)) /* a place twice means another one is missing */
            return refuse(why, why_size, "ring place %" PRIu64 " is named twice", entry->ring_seq);
        *place = entry->key;
    }
    ring->seq_first = first - 1;
    ring->count = count;
    return 0;
}

static int restore_orders(struct rush_shard *shard, const struct rush_shard_image *image, char *why,
                          size_t why_size)
{
    uint32_t count = image->counts[RUSH_IMAGE_ORDERS];
    uint32_t groups = image->counts[RUSH_IMAGE_GROUPS];
    memcpy(&shard->orders[1], image->sections[RUSH_IMAGE_ORDERS],
           (size_t)count * sizeof(*shard->orders));
    shard->order_count = count;
    for (uint32_t i = 1; i <= count; i++) {
        const struct order *order = &shard->orders[i];
        if (order->sku_index >= shard->sku_count || order->state > RUSH_ORDER_EXPIRED ||
            order->state == RUSH_ORDER_NONE || !link_ok(order->group_index, groups) ||
            !link_ok(order->member_next, count) || !link_ok(order->retired_next, count) ||
            order->amount_fen < 0)
            return refuse(why, why_size, "order %u: an index, state or amount out of range", i);
    }
    return restore_retired(shard, why, why_size);
}

static int restore_groups(struct rush_shard *shard, const struct rush_shard_image *image, char *why,
                          size_t why_size)
{
    uint32_t count = image->counts[RUSH_IMAGE_GROUPS];
    memcpy(&shard->groups[1], image->sections[RUSH_IMAGE_GROUPS],
           (size_t)count * sizeof(*shard->groups));
    shard->group_count = count;
    for (uint32_t i = 1; i <= count; i++) {
        const struct group *group = &shard->groups[i];
        if (group->sku_index >= shard->sku_count || group->state > RUSH_GROUP_FAILED ||
            group->state == RUSH_GROUP_NONE || group->seats > RUSH_GROUP_SIZE_MAX ||
            !link_ok(group->member_first, shard->order_count) ||
            !link_ok(group->member_last, shard->order_count) ||
            !link_ok(group->bucket_prev, count) || !link_ok(group->bucket_next, count))
            return refuse(why, why_size, "group %u: an index or state out of range", i);
    }
    return 0;
}

/* Re-inserts a table's entries: the loading table's seed decides where they land. */
static int restore_table(struct rush_table *table, const struct rush_shard_image *image,
                         enum rush_shard_image_section section, char *why, size_t why_size)
{
    uint32_t count = image->counts[section];
    const uint8_t *entries = image->sections[section];
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *entry = entries + (size_t)i * table->entry_bytes;
        rush_key key;
        memcpy(&key, entry, sizeof(key));
        bool created = false;
        uint8_t *slot = rush_key_is_zero(&key) ? NULL : rush_table_upsert(table, &key, &created);
        if (slot == NULL || !created)
            return refuse(why, why_size, "%s entry %u: a zero or duplicate key",
                          rush_shard_image_section_name(section), i);
        memcpy(slot, entry, table->entry_bytes);
    }
    return 0;
}

static int restore_timers(struct rush_shard *shard, const struct rush_shard_image *image, char *why,
                          size_t why_size)
{
    uint32_t count = image->counts[RUSH_IMAGE_TIMERS];
    const uint8_t *records = image->sections[RUSH_IMAGE_TIMERS];
    for (uint32_t i = 0; i < count; i++) {
        struct rush_image_timer timer;
        memcpy(&timer, records + (size_t)i * sizeof(timer), sizeof(timer));
        bool order = timer.kind == TIMER_KIND_ORDER;
        uint32_t limit = order ? shard->order_count : shard->group_count;
        if ((!order && timer.kind != TIMER_KIND_GROUP) || timer.index == 0 || timer.index > limit)
            return refuse(why, why_size, "timer %u: kind %u index %u out of range", i, timer.kind,
                          timer.index);
        uint32_t handle = order ? timer.index : group_timer_handle(shard, timer.index);
        if (rush_timer_wheel_scheduled(&shard->timers, handle))
            return refuse(why, why_size, "timer %u: scheduled twice", i);
        rush_timer_wheel_add(&shard->timers, handle, timer.deadline_ns);
    }
    return 0;
}

static bool shard_is_fresh(const struct rush_shard *shard)
{
    return shard->sku_count == 0 && shard->order_count == 0 && shard->group_count == 0 &&
           shard->keys.count == 0 && shard->user_limits.count == 0 && shard->sku_ids.count == 0 &&
           shard->timers.scheduled_count == 0;
}

int rush_shard_image_restore(struct rush_shard *fresh_shard, const struct rush_shard_image *image,
                             char *why, size_t why_size)
{
    struct rush_shard *shard = fresh_shard;
    RUSH_ASSERT(shard != NULL && image != NULL);
    RUSH_ASSERT(shard_is_fresh(shard));
    int rc = fits(shard, image->counts, why, why_size);
    if (rc == 0)
        rc = restore_skus(shard, image, why, why_size);
    if (rc == 0)
        rc = restore_orders(shard, image, why, why_size);
    if (rc == 0)
        rc = restore_groups(shard, image, why, why_size);
    if (rc == 0)
        rc = restore_table(&shard->keys, image, RUSH_IMAGE_KEYS, why, why_size);
    if (rc == 0)
        rc = restore_ring(shard, why, why_size);
    if (rc == 0)
        rc = restore_table(&shard->user_limits, image, RUSH_IMAGE_USER_LIMITS, why, why_size);
    if (rc == 0)
        rc = restore_timers(shard, image, why, why_size);
    if (rc < 0)
        return rc;
    if (image->now_ns > shard->now_ns)
        shard->now_ns = image->now_ns;
    shard->sku_cached = NULL;
    memset(shard->sku_memo, 0, sizeof(shard->sku_memo)); /* caches: what restore put there goes */
    return rush_shard_check(shard, why, why_size);
}
