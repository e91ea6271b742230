/*
 * shard.h — one shard: the single-threaded, deterministic flash-sale and group-buy state machine.
 *
 * Workload: every decision about the SKUs hashed to this shard — millions of reserves a second
 * on a handful of hot SKUs at midnight, group joins, confirms from payment, pay-TTL expiries —
 * on one thread with no locks. Sized at creation; nothing is allocated while deciding.
 *
 * How state changes: a decision validates a request against the state and emits events; each
 * event is applied at once by rush_shard__apply(), the only code that mutates state. Recovery
 * feeds logged events to rush_shard_apply() and so runs the same code. Time is an input: a batch
 * is opened with rush_shard_begin(now), which fires the timers due by then; every decision of the
 * batch sees that one time.
 *
 * Invariants (checked by rush_shard_check()):
 *   1. Ledger: per limited SKU, stock_total = available + reserved + confirmed, each >= 0.
 *      reserved and confirmed equal the sums over the SKU's orders in those states.
 *   2. Limits: a user's held quantity for a SKU (reserved + confirmed) equals the sum over
 *      their orders and never exceeds user_qty_max at the time it was taken.
 *   3. Groups: an open group has 1..N-1 seats; a completed group has N seats counting virtual
 *      ones; seats equal its member orders; a SKU's open-group count matches its buckets.
 *   4. Dedup: each idempotency key has one entry; a key's entry never changes once written. Every
 *      entry belongs to exactly one owner: the order slot it created (removed when the slot is
 *      reused), or the ring of other keys (removed when the ring needs its place). A confirm or
 *      cancel that ended an order keeps its key in the order record instead (decide.c).
 *   5. Slots: every ended order is on the retired list once, in the order it ended, with no pay
 *      timer set; a slot is reused only from the head of that list, after policy.retain_ns.
 *   6. Timers: an open group's deadline timer is scheduled at its deadline; only existing orders
 *      and groups have timers. Pending timers (reserved orders' pay TTLs, open groups') are part
 *      of the digest: a replay restores them from the logged batch times, never from the clock
 *      of the restart.
 *   7. Activity subsidy: an activity with a subsidy budget has spent the sum of its SKUs'
 *      activity_spent_fen, never more than its budget when a seat was taken.
 *
 * Thread: owned by one shard thread (the engine's) or by one test/recovery thread.
 */
#ifndef RUSH_SHARD_H
#define RUSH_SHARD_H

#include <stdatomic.h>
#include <stddef.h>

#include "rush/engine.h"
#include "rush/types.h"

struct rush_shard;

struct rush_shard_config {
    uint32_t index;
    struct rush_shard_limits limits;
    struct rush_shard_policy policy;
    uint64_t seed;    /* hash-table seed; decisions never depend on it */
    int64_t start_ns; /* engine time at creation (the timer wheel's origin); 0 for a shard that
                         will replay a log, whose clock then follows the logged batch times */
    rush_event_sink_fn sink;
    void *sink_context;
};

/* Counters, written by the owner with relaxed atomics so other threads may read them. */
struct rush_shard_stats {
    _Atomic uint64_t requests;
    _Atomic uint64_t duplicates;
    _Atomic uint64_t events;
    _Atomic uint64_t batches;
    _Atomic uint64_t timers_fired;
    _Atomic uint64_t orders_reclaimed; /* ended order slots reused */
    _Atomic uint64_t keys_forgotten;   /* keys removed: with their order slot or out of the ring */
    _Atomic uint64_t outcomes[RUSH_OUTCOME_COUNT_];
};

RUSH_MUST_USE int rush_shard_create(const struct rush_shard_config *config,
                                    struct rush_shard **out);
void rush_shard_destroy(struct rush_shard *shard);

/* Opens a batch at engine time now_ns (clamped to never go back) and fires the timers due. */
void rush_shard_begin(struct rush_shard *shard, int64_t now_ns);
/* Decides one request of the open batch. */
void rush_shard_decide(struct rush_shard *shard, const struct rush_request *request,
                       struct rush_result *result);
/* Decides requests[0..count) in order, as rush_shard_decide each, overlapping their lookups. */
void rush_shard_decide_batch(struct rush_shard *shard, const struct rush_request *requests,
                             uint32_t count, struct rush_result *results);
/*
 * Only the lookups deciding the batch would start with (key, SKU id, user limit; prefetched the
 * same way), for bench-engine's breakdown (shard_probe.c); changes nothing. Returns how many
 * entries it found.
 */
uint32_t rush_shard_probe_batch(const struct rush_shard *shard, const struct rush_request *requests,
                                uint32_t count);
/* Creates a SKU from a whole definition, or changes the fields a put names on a live SKU
 * (admin sku_put; the rules are in decide.c), in the open batch. */
/*
 * Records who did an admin action and why (adjust, pause, resume, sku_put, decided just before
 * with `result`): an ADMIN_AUDIT event and its AUDIT_PART events in the open batch. They change no
 * state; the stream publishes them.
 */
void rush_shard_audit(struct rush_shard *shard, uint8_t op, uint64_t sku_id, int64_t amount,
                      const struct rush_result *result, const struct rush_audit *audit);
void rush_shard_sku_put(struct rush_shard *shard, const struct rush_sku *sku,
                        struct rush_result *result);
/* Closes the batch: hands the remaining events to the sink. */
void rush_shard_end(struct rush_shard *shard);

/* Recovery: applies one logged event at its batch's time, as the live decision did. */
void rush_shard_apply(struct rush_shard *shard, int64_t time_ns, const struct rush_event *event);

/* Verifies invariants 1-5 by walking every table: O(state). 0, or RUSH_ECORRUPT with why. */
RUSH_MUST_USE int rush_shard_check(const struct rush_shard *shard, char *why, size_t why_size);
/* A digest of the whole state, independent of hash seeds and table layout. */
uint64_t rush_shard_digest(const struct rush_shard *shard);

const struct rush_shard_stats *rush_shard_stats(const struct rush_shard *shard);
int64_t rush_shard_now(const struct rush_shard *shard);

/* Bytes allocated, and the share per order and per idempotency entry (for the 64-byte budget). */
struct rush_shard_memory {
    uint64_t total_bytes;
    uint64_t order_bytes_each; /* order record + its timer */
    uint64_t key_bytes_each;   /* idempotency entry at the table's load factor */
};
void rush_shard_memory(const struct rush_shard *shard, struct rush_shard_memory *memory);

/* The shard's large tables (each from rush_memory_zeroed), for the snapshot's page renewal
 * (wal/snapshot_renew.h): up to `regions_max` start addresses, and how many it wrote. */
#define RUSH_SHARD_REGIONS_MAX 12u
uint32_t rush_shard_regions(const struct rush_shard *shard, void **regions, uint32_t regions_max);

/* How full the shard's tables are (used, and the hard limit of each), for the operators. */
enum rush_shard_table {
    RUSH_TABLE_SKUS = 0,
    RUSH_TABLE_ORDERS = 1,
    RUSH_TABLE_GROUPS = 2,
    RUSH_TABLE_KEYS = 3,
    RUSH_TABLE_USER_LIMITS = 4,
    RUSH_TABLE_COUNT_ = 5,
};
struct rush_shard_occupancy {
    uint32_t used[RUSH_TABLE_COUNT_];
    uint32_t max[RUSH_TABLE_COUNT_];
};
/* The shard's thread only (or a quiet shard). */
void rush_shard_occupancy(const struct rush_shard *shard, struct rush_shard_occupancy *out);

/* A SKU's ledger, for tests and tools. 0, or -ENOENT. */
struct rush_sku_ledger {
    int64_t stock_total;
    int64_t available;
    int64_t reserved;
    int64_t confirmed;
    uint32_t groups_open;
    uint32_t virtual_used;
    bool unlimited;
    bool paused;
};
RUSH_MUST_USE int rush_shard_ledger(const struct rush_shard *shard, uint64_t sku_id,
                                    struct rush_sku_ledger *ledger);
/* The quantity a user holds (reserved + confirmed) of a SKU. */
uint32_t rush_shard_user_held(const struct rush_shard *shard, uint64_t sku_id, uint64_t user_id);
/* Idempotency entries held, and order slots in use (live or retained). */
uint32_t rush_shard_keys_held(const struct rush_shard *shard);
uint32_t rush_shard_order_slots_used(const struct rush_shard *shard);

/*
 * Runs `inspect` on shard `shard_index`'s own thread, between batches, and waits for it: the safe
 * way for tests and tools to read a running shard (check, digest, ledger). Front-end thread only.
 */
typedef void (*rush_shard_inspect_fn)(struct rush_shard *shard, void *context);
void rush_engine_inspect(struct rush_engine *engine, uint32_t shard_index,
                         rush_shard_inspect_fn inspect, void *context);

#endif
