/*
 * shard_internal.h — the shard's records, shared by its files:
 *   decide.c  requests -> events: validation, the order machine and the group decisions
 *   shard.c   life cycle, apply (the only mutator), timers and the events they decide, check,
 *             digest
 *   group.c   group records: open-group buckets, seats, the join_any choice, the deadline and
 *             virtual-seat policy (pure: it emits nothing)
 *   shard_image.c  the state as sections of records for a snapshot, and a fresh shard rebuilt
 *             from them (calls shard.c's check only)
 * Calls go one way, decide.c -> shard.c -> group.c (decide.c also calls group.c); group.c calls
 * neither, so shard.c's apply can keep the buckets without a call loop.
 *
 * Records are indexed, not pointed to: an order's or group's index is the low bits of its id
 * (index 0 is never used), a SKU's index is its put order. Indexes are deterministic given the
 * inputs, so two replicas fed the same events lay out the same arrays.
 */
#ifndef RUSH_SHARD_INTERNAL_H
#define RUSH_SHARD_INTERNAL_H

#include "shard.h"
#include "table.h"
#include "timer.h"

#define NONE UINT32_MAX
/* A join that completes its group: its seat and invitation, then per seat confirmed,
 * inviter_due and (tiered) tier_refund_due, then group_completed. */
#define EVENTS_PER_DECISION_MAX (3 * RUSH_GROUP_SIZE_MAX + 3)
/* The most one decision emits: a join that finds its group's deadline passed settles it first
 * (a release and a refund per seat, then group_failed) and then answers group_closed. */
static_assert(2 * (RUSH_GROUP_SIZE_MAX - 1) + 1 + 1 <= EVENTS_PER_DECISION_MAX, "event room");
static_assert(2 + 3 * RUSH_GROUP_SIZE_MAX + 1 <= EVENTS_PER_DECISION_MAX, "a completing join");
#define TIMER_SLOTS 65536
#define TIMER_TICK_NS 1000000 /* 1 ms */
#define ID_INDEX_MASK ((UINT64_C(1) << 55) - 1)

struct sku_state {
    struct rush_sku def;
    int64_t stock_total;
    int64_t available;
    int64_t reserved;
    int64_t confirmed;
    int64_t
        confirmed_retired; /* units of confirmed orders whose slots were reused (in confirmed) */
    uint32_t groups_open;
    uint32_t virtual_used;
    /* Open groups with k seats taken sit in list k (1..N-1), oldest first. */
    uint32_t bucket_head[RUSH_GROUP_SIZE_MAX];
    uint32_t bucket_tail[RUSH_GROUP_SIZE_MAX];
    int64_t subsidy_spent_fen;  /* with a subsidy budget: what held and sold seats cost below the
                                   list price (shard__seat_subsidy); 0 without one */
    int64_t activity_spent_fen; /* an activity SKU whose activity has a subsidy budget: the same
                                   charge counted against the activity's; 0 otherwise */
};

/*
 * An order slot. Live while reserved; ended (confirmed, released, expired) it joins the retired
 * list and its slot is reused once it has been ended for the policy's retain_ns (decide.c). The
 * id names slot and generation, so an id of a reused slot's earlier order is unknown.
 */
struct order {
    uint64_t user_id;
    int64_t amount_fen;    /* what its buyer pays, fixed at reservation (a seat: at join) */
    rush_key key;          /* the key of the decision that created it; removed with the slot */
    rush_key end_key;      /* the key of the confirm or cancel that ended it; zero otherwise */
    int64_t ended_ns;      /* engine time it left reserved; 0 while reserved */
    int64_t end_remaining; /* `remaining` of the answer to end_key, for its retries
                              (SHARD_REMAINING_UNLIMITED: the SKU was unlimited then) */
    uint32_t sku_index;
    uint32_t qty;
    uint32_t group_index;  /* NONE for a flash-sale order */
    uint32_t member_next;  /* next seat of the same group, NONE at the end */
    uint32_t retired_next; /* next ended order, later ended; NONE at the end or while live */
    uint16_t generation;   /* times the slot was reused (wraps) */
    uint8_t state;         /* enum rush_order_state */
    uint8_t end_op;        /* RUSH_OP_CONFIRM or RUSH_OP_CANCEL with end_key, else 0 */
    uint64_t inviter_id;   /* a seat: who invited its buyer (SEAT_INVITED); 0: nobody */
};
static_assert(sizeof(struct order) == 96, "order record stays small");

struct group {
    int64_t deadline_ns;
    uint32_t sku_index;
    uint32_t member_first;
    uint32_t member_last;
    uint32_t bucket_prev;
    uint32_t bucket_next;
    uint8_t seats; /* real seats taken */
    uint8_t state; /* enum rush_group_state */
    uint8_t virtual_seats;
    uint8_t pad[1];
};
static_assert(sizeof(struct group) == 32, "group record stays small");

/*
 * list_groups asks for a list one rank per request, in one work item: the list is computed for
 * rank 0 and the next ranks read it while nothing has changed (same SKU, clock and event count).
 */
struct group_list {
    uint32_t sku_index;
    uint32_t count;
    int64_t now_ns;
    uint64_t events_seen; /* stats.events when it was computed */
    uint32_t groups[RUSH_LIST_GROUPS_MAX];
};

/*
 * Idempotency entry: the key, the request's fields that its op reads (compared whole on a retry,
 * see decide.c), and what is needed to answer again. `ring_seq` is 0 for a key that belongs to an
 * order slot (it is removed with the slot), else its place in the ring of other keys (+1).
 */
struct key_entry {
    rush_key key;
    uint64_t field_a; /* per op, see request_fields() in decide.c */
    uint64_t field_b;
    uint32_t field_c;
    uint8_t op;
    uint8_t outcome;
    uint8_t reason;
    uint8_t state; /* the order's state the decision left (rush_result.state) */
    uint64_t order_id;
    int64_t remaining; /* SHARD_REMAINING_UNLIMITED: the SKU was unlimited at the decision */
    uint64_t ring_seq;
};

/*
 * A remembered answer's `remaining` when its SKU was unlimited at the decision: the answer and
 * every retry carry RUSH_RESULT_UNLIMITED and remaining 0, whatever a later sku_put made of the
 * SKU (available stock is never negative, so the value is free).
 */
#define SHARD_REMAINING_UNLIMITED INT64_C(-1)
static_assert(sizeof(struct key_entry) == 64, "idempotency entry stays one cache line");

/* A key's request fields, as stored and compared. */
struct request_fields {
    uint64_t a;
    uint64_t b;
    uint32_t c;
};

/*
 * The user_limits table holds three kinds of entry, told apart by the key's first word:
 *   (sku index + 1, user)                     a user's units of one SKU
 *   (LIMIT_ACTIVITY | family, user)           a user's units over an activity's SKUs, and the
 *                                             units taken on the current day
 *   (LIMIT_REGISTERED | sku index + 1, user)  a registration (op register); no counts
 */
#define LIMIT_ACTIVITY (UINT64_C(1) << 63)
#define LIMIT_REGISTERED (UINT64_C(1) << 62)
struct limit_entry {
    rush_key key;
    uint32_t held; /* units reserved or confirmed, over the whole sale */
    union {
        struct {
            uint32_t unpaid; /* flash-sale orders reserved and not yet paid */
            uint32_t churn;  /* flash-sale orders cancelled or expired (saturates) */
        };
        struct {                /* an activity's entry */
            uint32_t day;       /* the activity's day number of day_taken */
            uint32_t day_taken; /* units taken that day: a release does not give them back */
        };
    };
    uint32_t pad;
};

struct sku_entry { /* key: (0, sku id) */
    rush_key key;
    uint32_t index;
    uint32_t pad;
};

/*
 * A direct-mapped memo of SKU ids and their indexes, in front of the sku_ids table: a sale over
 * many SKUs (Zipf popularity) finds most of its SKUs here without hashing the id or reading the
 * table: one line of a 64 KiB array that mostly stays in cache. A SKU is never removed and its
 * index never changes, so a filled place is right until another id takes it; an id of 0 marks it
 * empty.
 */
#define SKU_MEMO_SLOTS 4096 /* a power of two */
struct sku_memo {
    uint64_t id;
    uint32_t index;
    uint32_t pad;
};

struct rush_shard {
    uint32_t index;
    struct rush_shard_limits limits;
    int64_t now_ns;
    uint32_t sku_count;
    uint32_t order_count;  /* slots ever used: 1..order_count (reused slots included) */
    uint32_t retired_head; /* the ended order that ended first, NONE when none */
    uint32_t retired_tail; /* the one that ended last */
    struct rush_key_ring { /* keys not held by an order slot: admin ops, late payments */
        rush_key *keys;    /* capacity entries, the oldest at seq_first % capacity */
        uint32_t capacity; /* keys_max / 8, at least 1: the room kept from new orders */
        uint32_t count;
        uint64_t seq_first; /* ring_seq - 1 of the oldest */
    } ring;
    struct rush_shard_policy policy; /* policy.activities points at `activities` below */
    struct rush_activity activities[RUSH_ACTIVITIES_MAX];
    /* activities[a]'s subsidy spent: the sum of its SKUs' activity_spent_fen (derived: apply
     * keeps it, a restore sums it again, rush_shard_check compares) */
    int64_t activity_spent_fen[RUSH_ACTIVITIES_MAX];
    uint32_t group_count;
    struct sku_state *skus;
    struct order *orders;
    struct group *groups;
    struct rush_table sku_ids;
    struct rush_table keys;
    struct rush_table user_limits;
    struct rush_timer_wheel timers;
    uint32_t *due; /* scratch for timers firing */
    struct rush_event *events;
    uint32_t event_count;
    struct sku_state *sku_cached;             /* the SKU found last (a lookup cache, not state) */
    struct sku_memo sku_memo[SKU_MEMO_SLOTS]; /* SKU id -> index, direct-mapped (a cache) */
    struct group_list listed;                 /* the last list_groups answer (a cache, not state) */
    const struct key_entry *last_entry;       /* the entry the last decision event wrote */
    struct key_entry end_answer; /* the answer of a confirm or cancel kept with its order */
    struct rush_sku sku_pending; /* assembled from SKU_PUT parts while applying */
    uint32_t sku_parts_seen;
    uint32_t sku_parts_expected; /* the SKU_PUT's qty, or RUSH_SKU_PUT_PARTS_V0 for 0 */
    rush_event_sink_fn sink;
    void *sink_context;
    struct rush_shard_stats stats;
};

/*
 * What the pipelined batch (decide.c, rush_shard_decide_batch) learns of a request before
 * deciding it: the home slots of its key, its SKU id and its (SKU, user) limit, and its SKU.
 * Stage 1 (look_far in shard.c, LOOK_FAR requests ahead) hashes the key and the SKU id (unless
 * the SKU memo has the id) and prefetches the key's bitmap word (table.h), the SKU id's slot and
 * the order or group a request names; stage 2 (look_near, LOOK_NEAR ahead) finds the SKU in the
 * memo or in its now cached slot, prefetches the SKU's hot lines and hashes the limit key,
 * prefetching its bitmap word; stage 3 (look_close, LOOK_CLOSE ahead) prefetches the key's and
 * the limit's entries that the bitmap's run of used slots says a probe will read; look_use hands
 * the homes to the tables as hints just before the decision. Nothing here is state: a stale or
 * missing look only costs a hash or a miss.
 */
#define LOOK_FAR 16
#define LOOK_NEAR 8
#define LOOK_CLOSE 4
#define LOOK_RING 32             /* a power of two above LOOK_FAR */
#define LOOK_SKU_MEMO (NONE - 1) /* sku_home: stage 1 found the SKU id in the memo, not hashed */
static_assert(LOOK_RING > LOOK_FAR && LOOK_FAR > LOOK_NEAR && LOOK_NEAR > LOOK_CLOSE &&
                  (LOOK_RING & (LOOK_RING - 1)) == 0,
              "lookahead ring");
struct shard_look {
    const struct sku_state *sku; /* NULL: none found (yet) */
    rush_key limit_key;
    uint32_t key_home;   /* NONE: no key */
    uint32_t sku_home;   /* NONE: no SKU id */
    uint32_t limit_home; /* NONE: no limit looked up */
};
/* The stages' memory of the request before (a rush hits few SKUs: one hash for a run). */
struct shard_lookahead {
    struct shard_look ring[LOOK_RING];
    uint64_t far_sku_id;
    uint32_t far_sku_home;
    uint64_t near_sku_id;
    const struct sku_state *near_sku;
    uint32_t close_fresh; /* the fresh order slot prefetched last */
};

static inline struct sku_memo *sku_memo_of(const struct rush_shard *shard, uint64_t sku_id)
{
    uint64_t place = (sku_id * UINT64_C(0x9E3779B97F4A7C15)) >> 52; /* Fibonacci hashing */
    static_assert(SKU_MEMO_SLOTS == 1 << (64 - 52), "the memo's places are the top 12 bits");
    return (struct sku_memo *)&shard->sku_memo[place];
}

/* An outcome with its reason, as a decision returns it. */
struct verdict {
    uint8_t outcome;
    uint8_t reason;
};

static inline struct verdict verdict_of(enum rush_outcome outcome)
{
    return (struct verdict){.outcome = (uint8_t)outcome};
}

static inline struct verdict invalid_because(enum rush_reason reason)
{
    return (struct verdict){.outcome = RUSH_INVALID, .reason = (uint8_t)reason};
}

static inline void count_one(_Atomic uint64_t *counter)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Timer handles: order i is handle i; group g is handle orders_max + 1 + g. */
static inline uint32_t group_timer_handle(const struct rush_shard *shard, uint32_t group_index)
{
    return shard->limits.orders_max + 1 + group_index;
}

/* An order id: shard, slot generation (bits 32..47) and slot index (bits 0..31). */
#define ID_SLOT_BITS 32
static inline uint64_t order_id_in(const struct rush_shard *shard, uint32_t index,
                                   uint16_t generation)
{
    return ((uint64_t)shard->index << RUSH_ID_SHARD_SHIFT) |
           ((uint64_t)generation << ID_SLOT_BITS) | index;
}

static inline uint64_t order_id_of(const struct rush_shard *shard, uint32_t index)
{
    return order_id_in(shard, index, shard->orders[index].generation);
}

static inline uint64_t group_id_of(const struct rush_shard *shard, uint32_t index)
{
    return ((uint64_t)shard->index << RUSH_ID_SHARD_SHIFT) | RUSH_ID_GROUP_BIT | index;
}

/*
 * The order an id names, or NULL: this shard's, not a group's (bits 48..55 of an order id are
 * zero, the group bit among them), a slot in use, and the slot's generation. Inline and
 * branch-light: a decision asks it three to five times.
 */
static inline struct order *shard__order(const struct rush_shard *shard, uint64_t order_id)
{
    static_assert(RUSH_ID_SHARD_SHIFT == 56 && RUSH_ID_GROUP_BIT == UINT64_C(1) << 55 &&
                      ID_SLOT_BITS == 32,
                  "an order id: shard 56..63, zero 48..55, generation 32..47, slot 0..31");
    uint64_t index = order_id & UINT32_MAX;
    if ((order_id >> 48) != (uint64_t)shard->index << (RUSH_ID_SHARD_SHIFT - 48) ||
        index - 1 >= shard->order_count ||
        (uint16_t)(order_id >> ID_SLOT_BITS) != shard->orders[index].generation)
        return NULL;
    return &shard->orders[index];
}

/*
 * The id the next order will get, 0 when there is no slot: the oldest ended order's slot once it
 * has been ended for retain_ns (and its pay timer has fired or was never set), else a fresh slot.
 * Inline: a new order asks it twice (room, then its id).
 */
static inline uint64_t shard__next_order_id(const struct rush_shard *shard)
{
    uint32_t head = shard->retired_head;
    if (head != NONE) {
        const struct order *oldest = &shard->orders[head];
        if (shard->now_ns - oldest->ended_ns >= shard->policy.retain_ns &&
            !rush_timer_wheel_scheduled(&shard->timers, head))
            return order_id_in(shard, head, (uint16_t)(oldest->generation + 1));
    }
    if (shard->order_count < shard->limits.orders_max)
        return order_id_in(shard, shard->order_count + 1, 0);
    return 0;
}

static inline struct group *shard__group(const struct rush_shard *shard, uint64_t group_id)
{
    uint64_t index = group_id & ID_INDEX_MASK;
    if (rush_id_shard(group_id) != shard->index || !(group_id & RUSH_ID_GROUP_BIT) || index == 0 ||
        index > shard->group_count)
        return NULL;
    return &shard->groups[index];
}

/* Whether a subsidy budget may count this SKU's seats: its own, or its activity's. A SKU with
 * neither (most) skips pricing the subsidy of every seat it takes or gives back. */
static inline bool shard__subsidy_counted(const struct sku_state *sku)
{
    return sku->def.subsidy_budget_fen != 0 || (sku->def.rules & RUSH_SKU_IN_ACTIVITY);
}

/* shard.c */
/* Stages 1 to 3 of the first requests of a batch; then, before deciding requests[i], step i runs
 * stage 1 of i + LOOK_FAR, 2 of i + LOOK_NEAR, 3 of i + LOOK_CLOSE and hands i's look to the
 * tables. */
void shard__look_start(const struct rush_shard *shard, struct shard_lookahead *ahead,
                       const struct rush_request *requests, uint32_t count);
void shard__look_step(struct rush_shard *shard, struct shard_lookahead *ahead,
                      const struct rush_request *requests, uint32_t count, uint32_t i);
const struct rush_activity *shard__activity(const struct rush_shard *shard, uint64_t family);
struct limit_entry *shard__activity_limit(const struct rush_shard *shard, uint64_t family,
                                          uint64_t user_id);
uint32_t shard__activity_day(const struct rush_activity *activity, int64_t now_ns);
bool shard__registered(const struct rush_shard *shard, const struct sku_state *sku,
                       uint64_t user_id);
struct sku_state *shard__sku_find(const struct rush_shard *shard, uint64_t sku_id);
/* The SKU with this id, or NULL. A decision looks its SKU up several times and a rush hits few
 * SKUs: the one found last is tested inline (a SKU's id is never 0, so a match is not of id 0). */
static inline struct sku_state *shard__sku(const struct rush_shard *shard, uint64_t sku_id)
{
    if (shard->sku_cached != NULL && shard->sku_cached->def.id == sku_id)
        return shard->sku_cached;
    return shard__sku_find(shard, sku_id);
}
struct limit_entry *shard__limit(const struct rush_shard *shard, uint32_t sku_index,
                                 uint64_t user_id);
struct request_fields shard__fields(uint8_t op, uint64_t sku_id, uint64_t user_id, uint32_t qty,
                                    uint64_t target_id, int64_t amount);
uint32_t shard__inviter_fold(uint64_t inviter_id);
void shard__emit(struct rush_shard *shard, const struct rush_event *event);
void shard__flush(struct rush_shard *shard);
void shard__apply(struct rush_shard *shard, const struct rush_event *event);
static inline int64_t shard__price_of(const struct sku_state *sku, uint32_t qty)
{
    return sku->def.price_fen * (int64_t)qty;
}

/* What one seat pays: the leader's price for the opener, else the group price, else the list. */
static inline int64_t shard__seat_price(const struct sku_state *sku, bool leader)
{
    RUSH_ASSERT(sku->def.group_size != 0);
    if (sku->def.tier_count != 0)
        return sku->def.tier_price_fen[0]; /* every seat pays the first tier; refunds follow */
    if (leader && (sku->def.prices & RUSH_SKU_LEADER_PRICE))
        return sku->def.leader_price_fen;
    if (sku->def.prices & RUSH_SKU_GROUP_PRICE)
        return sku->def.group_price_fen;
    return sku->def.price_fen;
}
int64_t shard__seat_subsidy(const struct sku_state *sku, int64_t amount);
/* The index in activities[] of the SKU's activity if it has a subsidy budget, else NONE. */
uint32_t shard__activity_budgeted(const struct rush_shard *shard, const struct sku_state *sku);
void shard__answer(const struct rush_shard *shard, const struct key_entry *entry,
                   const struct rush_request *request, struct rush_result *result);
/* The same, with the entry's order (shard__order of its order_id) already looked up. */
void shard__answer_of(const struct rush_shard *shard, const struct key_entry *entry,
                      const struct order *order, const struct rush_request *request,
                      struct rush_result *result);
/* Timer-decided events (op 0), also emitted by a decision that finds a deadline passed. */
void shard__order_expire(struct rush_shard *shard, uint32_t order_index);
void shard__group_settle(struct rush_shard *shard, uint32_t group_index);
/* Confirms every member and closes the group; `op` is the deciding request's (0: a timer). */
void shard__group_complete(struct rush_shard *shard, uint32_t group_index, uint32_t virtual_seats,
                           uint8_t op);

/* group.c */
int64_t group__deadline_for(const struct sku_state *sku, int64_t now_ns);
void group__opened(struct rush_shard *shard, struct sku_state *sku, uint32_t group_index,
                   int64_t deadline_ns);
void group__seat_add(struct rush_shard *shard, uint32_t group_index, uint32_t order_index);
void group__closed(struct rush_shard *shard, uint32_t group_index, uint8_t state,
                   uint32_t virtual_seats);
bool group__has_user(const struct rush_shard *shard, const struct group *group, uint64_t user_id);
uint32_t group__best(const struct rush_shard *shard, const struct sku_state *sku, uint64_t user_id);
uint32_t group__list(const struct rush_shard *shard, const struct sku_state *sku, uint32_t *out,
                     uint32_t max);
int64_t group__virtual_fill(const struct rush_shard *shard, uint32_t group_index);
uint32_t group__tier_reached(const struct sku_state *sku, uint32_t seats);

/* decide.c */
struct verdict decide__sale_window(const struct rush_shard *shard, const struct sku_state *sku);
struct verdict decide__can_hold(struct rush_shard *shard, const struct sku_state *sku,
                                uint64_t user_id, uint32_t qty);
struct rush_event decide__event(const struct rush_request *request, uint8_t type);

#endif
