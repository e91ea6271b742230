/*
 * shard_image.h — a shard's whole state as sections of fixed-size records, and a fresh shard
 * rebuilt from them: the shard's side of a snapshot (wal/snapshot.h owns the file around it).
 *
 * Workload: emitting walks every table once, O(state), handing each record to the caller's sink
 * (the snapshot writer buffers and checksums them); restoring copies and checks each record once,
 * O(state) (the load figures are in wal/snapshot.h). No I/O and no allocation besides one scratch
 * array while restoring.
 *
 * Sections, in this order (the records are the shard's in-memory records, so a change of layout
 * is a new snapshot format version; shard_image.c pins them with static_asserts):
 *
 *   section      records                                   record
 *   skus         the SKU states, index order               struct sku_state
 *   orders       orders 1..order_count                     struct order
 *   groups       groups 1..group_count                     struct group
 *   sku_ids      the occupied entries of the SKU id table  struct sku_entry
 *   keys         the occupied idempotency entries          struct key_entry
 *   user_limits  the occupied (sku, user) limit entries    struct limit_entry
 *   timers       the scheduled timers                      struct rush_image_timer
 *
 * The three tables are re-inserted on restore, so the restoring shard's hash seed may differ.
 *
 * Invariants:
 *   1. Emitting reads the shard and changes nothing; a section's count is its table's count.
 *   2. Restoring never reads past counts[s] records of a section and refuses (never asserts on)
 *      records that name indexes out of range or do not fit the shard's limits.
 *   3. A restored shard passes rush_shard_check and has the digest of the shard emitted.
 *
 * Thread: the shard's owner.
 */
#ifndef RUSH_SHARD_IMAGE_H
#define RUSH_SHARD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "rush/engine.h"
#include "rush/types.h"
#include "shard.h"

enum rush_shard_image_section {
    RUSH_IMAGE_SKUS = 0,
    RUSH_IMAGE_ORDERS = 1,
    RUSH_IMAGE_GROUPS = 2,
    RUSH_IMAGE_SKU_IDS = 3,
    RUSH_IMAGE_KEYS = 4,
    RUSH_IMAGE_USER_LIMITS = 5,
    RUSH_IMAGE_TIMERS = 6,
    RUSH_IMAGE_SECTION_COUNT = 7,
};

/* A timer as stored: which order or group, and its deadline. */
struct rush_image_timer {
    uint32_t index; /* order or group index (>= 1) */
    uint32_t kind;  /* 0: an order's pay TTL, 1: a group's deadline */
    int64_t deadline_ns;
};
static_assert(sizeof(struct rush_image_timer) == 16, "timer record is 16 bytes");

/* Record size of each section in this build. */
uint32_t rush_shard_image_record_bytes(enum rush_shard_image_section section);
const char *rush_shard_image_section_name(enum rush_shard_image_section section);
/* The most records a section holds for a shard with these limits. */
uint64_t rush_shard_image_count_max(const struct rush_shard_limits *limits,
                                    enum rush_shard_image_section section);

/* The limits the shard was created with (a snapshot records them). */
struct rush_shard_limits rush_shard_image_limits(const struct rush_shard *shard);

/*
 * Hands every record of `section` to put(context, record, record_bytes), in section order, and
 * returns how many it handed.
 */
typedef void (*rush_shard_image_put_fn)(void *context, const void *record, size_t bytes);
uint32_t rush_shard_image_emit(const struct rush_shard *shard,
                               enum rush_shard_image_section section, rush_shard_image_put_fn put,
                               void *context);

/* Decoded sections to restore: counts[s] records of rush_shard_image_record_bytes(s) each. */
struct rush_shard_image {
    int64_t now_ns; /* the emitting shard's clock */
    uint32_t counts[RUSH_IMAGE_SECTION_COUNT];
    const uint8_t *sections[RUSH_IMAGE_SECTION_COUNT];
};

/*
 * Copies an image into a fresh shard (just created, nothing applied), checking every index it
 * holds and, at the end, rush_shard_check. 0; RUSH_ECONFIG when it does not fit the shard's
 * limits; RUSH_ECORRUPT; -ENOMEM. On error why[] says why and the shard must be destroyed.
 */
RUSH_MUST_USE int rush_shard_image_restore(struct rush_shard *fresh_shard,
                                           const struct rush_shard_image *image, char *why,
                                           size_t why_size);

#endif
