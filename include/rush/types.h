/*
 * rush/types.h — the records every part of rush agrees on.
 *
 * A request, a result and an event are fixed-size little-endian records. The engine decides
 * requests into results and events; the wire protocol (proto/) carries requests and results
 * as they are laid out here; the write-ahead log stores events as they are laid out here. Nothing
 * is re-encoded field by field between those layers, so every layout is pinned with a
 * static_assert and every enum value is part of the format: append, never renumber.
 *
 * Outcomes are values, not errors. Errors (a full ring, a bad config, a failed write) are
 * negative ints: -errno or a RUSH_E* code, named by rush_strerror().
 */
#ifndef RUSH_TYPES_H
#define RUSH_TYPES_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RUSH_MUST_USE __attribute__((warn_unused_result))

/* Library errors live in a reserved negative range below every -errno value. */
enum rush_error {
    RUSH_EBASE = -30000,
    RUSH_ECONFIG = -30001,   /* the configuration is out of range or inconsistent */
    RUSH_EFULL = -30002,     /* a bounded table or ring is full */
    RUSH_ESTOPPED = -30003,  /* the engine is stopping or stopped */
    RUSH_EWAL = -30004,      /* the write-ahead log is in its sticky failed state */
    RUSH_ECORRUPT = -30005,  /* a log, snapshot or message failed its checks */
    RUSH_EPROTO = -30006,    /* a peer broke the wire protocol */
    RUSH_ETIMEDOUT = -30007, /* no answer within the deadline */
    RUSH_EFENCED = -30008,   /* a cluster leader lost its shard before the batch was replicated */
};

/* Returns a static string naming a negative rush or errno code. */
const char *rush_strerror(int error);

/* Operations. Values are on the wire and in the log. */
enum rush_op {
    RUSH_OP_NONE = 0,
    RUSH_OP_RESERVE = 1,        /* sku, user, qty */
    RUSH_OP_CONFIRM = 2,        /* target = order id */
    RUSH_OP_CANCEL = 3,         /* target = order id */
    RUSH_OP_GROUP_OPEN = 4,     /* sku, user */
    RUSH_OP_GROUP_JOIN = 5,     /* target = group id, user */
    RUSH_OP_GROUP_JOIN_ANY = 6, /* sku, user */
    RUSH_OP_QUERY_ORDER = 7,    /* target = order id */
    RUSH_OP_QUERY_GROUP = 8,    /* target = group id */
    RUSH_OP_QUERY_SKU = 9,      /* sku */
    RUSH_OP_ADJUST = 10,        /* sku, amount = signed change of stock_total */
    RUSH_OP_PAUSE = 11,         /* sku */
    RUSH_OP_RESUME = 12,        /* sku */
    RUSH_OP_LIST_GROUPS = 13,   /* sku, qty = rank: the rank-th open group to join (0-based) */
    RUSH_OP_REGISTER = 14, /* sku, user: a registration (预约) for a registration_required SKU */
    RUSH_OP_COUNT_ = 15,
    /* sku_put carries a whole struct rush_sku and travels on its own path. */
};

/* Outcomes. Values are on the wire and in the log. */
enum rush_outcome {
    RUSH_OK = 0,
    RUSH_SOLD_OUT = 1,
    RUSH_LIMIT_EXCEEDED = 2,
    RUSH_NOT_STARTED = 3,
    RUSH_ENDED = 4,
    RUSH_PAUSED = 5,
    RUSH_UNKNOWN_SKU = 6,
    RUSH_UNKNOWN_ORDER = 7,
    RUSH_UNKNOWN_GROUP = 8,
    RUSH_GROUP_FULL = 9,
    RUSH_GROUP_CLOSED = 10,
    RUSH_ALREADY_IN_GROUP = 11,
    RUSH_EXPIRED = 12,
    RUSH_BUSY = 13,
    RUSH_INVALID = 14,
    /*
     * Never decided by a shard; set by the engine for a request whose fate it cannot know: its
     * shard's write-ahead log failed (a full disk) before the request's batch was durable, so the
     * request may or may not be in the log (and in the stream). Not a refusal: resend the same
     * request with the same key once rushd runs again, and the answer is the original decision
     * (flag duplicate) if it was logged, or a fresh one if it was not.
     */
    RUSH_OUTCOME_UNKNOWN = 15,
    RUSH_HOARDING = 16, /* the user's unpaid holds or cancels + expiries of this SKU hit the cap */
    RUSH_NOT_ELIGIBLE = 17, /* the SKU's rules exclude this buyer; `reason` names the rule */
    /*
     * Not decided here: this node does not lead the request's shard (a cluster, ARCHITECTURE.md
     * "Cluster"). reason RUSH_REASON_WRONG_SHARD, state = the shard, qty = the index of the node
     * that leads it in the campaign's [cluster] nodes, or UINT32_MAX when none does right now.
     * Resend the same request, same key, to that node (after ~100 ms when none leads).
     */
    RUSH_REDIRECT = 18,
    RUSH_OUTCOME_COUNT_ = 19,
};

/* Why a request was `invalid`, `not_eligible`, or (activity limits) `limit_exceeded`. */
enum rush_reason {
    RUSH_REASON_NONE = 0,
    RUSH_REASON_OP = 1,                /* unknown op */
    RUSH_REASON_QTY = 2,               /* qty is zero or out of range */
    RUSH_REASON_KEY_REUSED = 3,        /* the idempotency key was used for a different request */
    RUSH_REASON_KEY_MISSING = 4,       /* a mutating request without an idempotency key */
    RUSH_REASON_NOT_GROUP_SKU = 5,     /* a group op on a SKU that is not a group-buy */
    RUSH_REASON_GROUP_SKU = 6,         /* a solo reserve on a group-buy SKU */
    RUSH_REASON_GROUP_ORDER = 7,       /* confirm or cancel of a seat: its group decides it */
    RUSH_REASON_ORDER_STATE = 8,       /* the order is not in a state the op applies to */
    RUSH_REASON_BELOW_RESERVED = 9,    /* adjust or sku_put would take stock below what is held */
    RUSH_REASON_UNLIMITED = 10,        /* adjust on an unlimited SKU */
    RUSH_REASON_SKU_DEF = 11,          /* sku_put with an inconsistent definition */
    RUSH_REASON_WRONG_SHARD = 12,      /* an id that names another shard */
    RUSH_REASON_SKU_HAS_GROUPS = 13,   /* sku_put would change group_size of a SKU with groups */
    RUSH_REASON_LIMIT_BELOW_HELD = 14, /* sku_put would set user_qty_max below what a user
                                          holds, or virtual_budget below what groups used */
    RUSH_REASON_INVITER_SELF = 15,     /* group_join or join_any whose inviter is the joiner */
    RUSH_REASON_FIELD = 16,            /* a field the op does not use is not zero, or user 0 */
    RUSH_REASON_NOT_NEW_USER = 17,     /* not_eligible: a new_users_only SKU, the gateway did not
                                          attest the buyer as new (RUSH_REQUEST_NEW_USER) */
    RUSH_REASON_NOT_REGISTERED = 18,   /* not_eligible: registration_required, none made */
    RUSH_REASON_REGISTER_WINDOW =
        19, /* invalid: register outside [register_from, register_until) */
    RUSH_REASON_NOT_REGISTRABLE = 20,  /* invalid: register on a SKU that takes no registrations */
    RUSH_REASON_ACTIVITY_LIMIT = 21,   /* limit_exceeded: the activity's per-user limit */
    RUSH_REASON_ACTIVITY_DAY = 22,     /* limit_exceeded: the activity's per-user, per-day limit */
    RUSH_REASON_SUBSIDY = 23,          /* sold_out: the SKU's subsidy budget is spent */
    RUSH_REASON_ACTIVITY_SUBSIDY = 24, /* sold_out: the SKU's activity's subsidy budget is spent */
    RUSH_REASON_COUNT_ = 25,
};

enum rush_order_state {
    RUSH_ORDER_NONE = 0,
    RUSH_ORDER_RESERVED = 1,
    RUSH_ORDER_CONFIRMED = 2,
    RUSH_ORDER_RELEASED = 3, /* cancelled, or its group failed */
    RUSH_ORDER_EXPIRED = 4,  /* its pay TTL ran out */
};

enum rush_group_state {
    RUSH_GROUP_NONE = 0,
    RUSH_GROUP_OPEN = 1,
    RUSH_GROUP_COMPLETED = 2,
    RUSH_GROUP_FAILED = 3,
};

/* What a group-buy does with empty seats at its deadline. */
enum rush_virtual_policy {
    RUSH_VIRTUAL_NONE = 0,   /* fail unless full */
    RUSH_VIRTUAL_FILL = 1,   /* fill every empty seat with a virtual buyer (within budget) */
    RUSH_VIRTUAL_AT_MOST = 2 /* fill at most virtual_seats_max seats (within budget) */
};

typedef struct rush_key {
    uint8_t bytes[16];
} rush_key;
static_assert(sizeof(rush_key) == 16, "idempotency keys are 128 bits");

/*
 * A request. Which fields count depends on the op (see enum rush_op); the others must be zero.
 * A retry repeats every field its op reads (compared whole with the key's). `tag` is the
 * caller's and is echoed.
 */
struct rush_request {
    uint8_t op;    /* enum rush_op */
    uint8_t flags; /* RUSH_REQUEST_*; zero for ops other than reservations */
    uint16_t pad;  /* zero */
    uint32_t qty;  /* units; reserve only */
    uint64_t sku_id;
    uint64_t user_id;
    uint64_t target_id; /* order id or group id */
    union {
        int64_t amount;      /* adjust: signed change of stock_total */
        uint64_t inviter_id; /* group_join, group_join_any: who invited the joiner (0: nobody) */
    };
    uint64_t tag; /* echoed in the result */
    rush_key key; /* idempotency key; all zero for queries */
};
static_assert(sizeof(struct rush_request) == 64, "request record is 64 bytes");

/*
 * rush_request.flags. NEW_USER: the gateway attests that the buyer is a new user (reserve,
 * group_open, group_join, group_join_any only). The engine does not know users' histories and
 * trusts the gateway (proto/PROTOCOL.md, "Eligibility"); it is not part of a retry's fields.
 */
#define RUSH_REQUEST_NEW_USER 0x01
#define RUSH_REQUEST_FLAGS_ALL 0x01

#define RUSH_RESULT_DUPLICATE 0x01 /* answered from the idempotency table */
#define RUSH_RESULT_UNLIMITED 0x02 /* the SKU has no stock limit; remaining is meaningless */

/*
 * A result, one per request and in request order. For decisions: the order (and group) made or
 * touched, the state the decision left that order in (reserved; confirmed by a SKU without a pay
 * TTL, a confirm, or a seat that completed its group; released; expired; 0 when no order), and
 * the SKU's available stock right after the decision; a duplicate carries exactly the original
 * answer. For queries the fields hold the figures of what was asked:
 *   query_order: state, qty, order_id, group_id, reserved = user id, confirmed = sku id
 *   query_group: state, qty = seats taken, group_id, remaining = seats still free,
 *                reserved = deadline (ns), confirmed = sku id
 *   query_sku:   state = 1 when paused, qty = open groups, remaining = available,
 *                reserved, confirmed (units)
 *   list_groups: the rank-th open group (unknown_group past the last): state = open,
 *                qty = seats taken, group_id, remaining = seats free, reserved = deadline (ns),
 *                confirmed = the leader's user id
 */
struct rush_result {
    uint8_t outcome; /* enum rush_outcome */
    uint8_t flags;   /* RUSH_RESULT_* */
    uint8_t reason;  /* enum rush_reason when outcome is RUSH_INVALID */
    uint8_t state;   /* decisions and query_order: order state; query_group: group state */
    uint32_t qty;
    uint64_t order_id;
    uint64_t group_id;
    int64_t remaining;
    int64_t reserved;
    int64_t confirmed;
    uint64_t tag; /* the request's tag */
};
static_assert(sizeof(struct rush_result) == 56, "result record is 56 bytes");

#define RUSH_SKU_NAME_MAX 40
#define RUSH_TIERS_MAX 4
#define RUSH_GROUP_SIZE_MAX 64
/* The limits of a SKU definition, checked in one place (rush_sku_check, proto/codec/sku.c). */
#define RUSH_SKU_ID_MAX ((UINT64_C(1) << 53) - 1) /* ids stay exact as JSON numbers */
#define RUSH_STOCK_MAX INT64_C(1000000000000)
#define RUSH_PRICE_FEN_MAX INT64_C(100000000000) /* one billion yuan */
#define RUSH_QTY_MAX 1000000                     /* per order and per user */
#define RUSH_TTL_NS_MAX (INT64_C(7) * 24 * 3600 * 1000000000)
#define RUSH_GROUP_TTL_NS_MIN INT64_C(1000000000)
#define RUSH_GROUPS_OPEN_MAX (1u << 24)
/* list_groups: at most this many groups per list (ranks 0..RUSH_LIST_GROUPS_MAX - 1), found by
 * visiting at most RUSH_LIST_GROUPS_VISIT_MAX open groups of the SKU per list. */
#define RUSH_LIST_GROUPS_MAX 20
#define RUSH_LIST_GROUPS_VISIT_MAX 1024
#define RUSH_TIME_NEVER INT64_MAX

/* A SKU, as the campaign file and sku_put give it. Times are engine-clock nanoseconds. */
struct rush_sku {
    uint64_t id;
    char name[RUSH_SKU_NAME_MAX]; /* NUL-padded, need not be NUL-terminated when full */
    int64_t stock;                /* units on sale; ignored when unlimited */
    int64_t price_fen;
    int64_t start_ns; /* sale window [start_ns, end_ns) */
    int64_t end_ns;
    int64_t pay_ttl_ns;         /* 0: a reservation is the confirmed order */
    int64_t group_ttl_ns;       /* group-buy: deadline after open */
    uint32_t order_qty_max;     /* per order */
    uint32_t user_qty_max;      /* per user, over all of their live and confirmed orders */
    uint32_t group_size;        /* 0: not a group-buy; else 2..RUSH_GROUP_SIZE_MAX */
    uint32_t groups_open_max;   /* open groups at once for this SKU */
    uint32_t virtual_seats_max; /* AT_MOST: per group */
    uint32_t virtual_budget;    /* virtual seats over the whole campaign for this SKU */
    uint8_t unlimited;          /* 1: no stock limit */
    uint8_t virtual_policy;     /* enum rush_virtual_policy */
    uint8_t paused;             /* 1: starts paused */
    uint8_t solo_allowed;       /* group-buy: 1 = reserve also sells solo, at price_fen, from the
                                   same stock */
    uint32_t fields;            /* sku_put: the RUSH_SKU_FIELD_* it names; 0: a whole definition */
    int64_t group_price_fen;    /* with RUSH_SKU_GROUP_PRICE: what a seat pays (else price_fen) */
    int64_t leader_price_fen;   /* with RUSH_SKU_LEADER_PRICE: what the leader's seat pays (0: the
                                   leader is free); else the leader pays what a seat pays */
    uint8_t prices;             /* group-buy: RUSH_SKU_GROUP_PRICE | RUSH_SKU_LEADER_PRICE */
    uint8_t rules;              /* RUSH_SKU_NEW_USERS_ONLY | _REGISTRATION | _IN_ACTIVITY */
    uint8_t pad[6];             /* 0 */
    int64_t register_from_ns;   /* with RUSH_SKU_REGISTRATION: registrations taken in */
    int64_t register_until_ns;  /* [register_from_ns, register_until_ns); else both 0 */
    /* Tiered group-buy (阶梯团): tier_count tiers of strictly increasing sizes and strictly
     * decreasing prices, the last size group_size. Every seat pays tier_price_fen[0] at join;
     * the group completes at the highest tier its seats reach (at its deadline, or at once when
     * the last tier fills) and each seat is due the difference. 0: not tiered. */
    int64_t tier_price_fen[RUSH_TIERS_MAX];
    uint8_t tier_size[RUSH_TIERS_MAX];
    uint8_t tier_count;
    uint8_t pad2[3];            /* 0 */
    int64_t subsidy_budget_fen; /* group-buy: the most the seats held or sold may cost below the
                                   list price (price_fen - what a seat pays, summed); 0: no cap */
    uint8_t pad3[8];            /* 0 */
};
static_assert(sizeof(struct rush_sku) == 224, "sku record is 224 bytes");
static_assert(offsetof(struct rush_sku, fields) == 124, "fields sits in the old padding");

/* rush_sku.prices: which of the group-buy prices are set (a price of 0 is a price: free). */
#define RUSH_SKU_GROUP_PRICE 0x01
#define RUSH_SKU_LEADER_PRICE 0x02

/*
 * rush_sku.rules: who may buy. NEW_USERS_ONLY: only requests with RUSH_REQUEST_NEW_USER.
 * REGISTRATION: only users who registered (op register) within the registration window.
 * IN_ACTIVITY: the SKU belongs to the activity of its id family (rush_sku_family), whose limits
 * (struct rush_activity) count over all of its SKUs; fixed when the SKU is created.
 */
#define RUSH_SKU_NEW_USERS_ONLY 0x01
#define RUSH_SKU_REGISTRATION 0x02
#define RUSH_SKU_IN_ACTIVITY 0x04
#define RUSH_SKU_RULES_ALL 0x07

/*
 * SKU id families: ids from RUSH_SKU_FAMILY_ID_MIN up are grouped by id / RUSH_SKU_FAMILY_SIZE
 * (the last three decimal digits name the member) and a family routes to one shard, so that an
 * activity's SKUs (all of one family) are decided by one thread. Below: no family (0), each id
 * routes on its own. The range starts above 2^52, where rush-loadgen's fresh ids stay, so a run's
 * consecutive fresh ids keep spreading over the shards.
 */
#define RUSH_SKU_FAMILY_ID_MIN UINT64_C(5000000000000000)
#define RUSH_SKU_FAMILY_SIZE UINT64_C(1000)
static inline uint64_t rush_sku_family(uint64_t sku_id)
{
    return sku_id >= RUSH_SKU_FAMILY_ID_MIN ? sku_id / RUSH_SKU_FAMILY_SIZE : 0;
}

/*
 * An activity: limits over all the SKUs of one id family, per user. From the campaign's
 * [activity NAME] sections, handed to every shard in struct rush_shard_policy (like the other
 * policy figures, not logged: the log records the SKUs' membership and the units taken).
 */
#define RUSH_ACTIVITIES_MAX 64
#define RUSH_ACTIVITY_NAME_MAX 32
struct rush_activity {
    char name[RUSH_ACTIVITY_NAME_MAX]; /* NUL-terminated */
    uint64_t family;                   /* rush_sku_family of its SKUs */
    uint32_t user_qty_max;             /* units per user over the activity's SKUs */
    uint32_t day_qty_max;              /* units a user may take per day; 0: no daily limit */
    int64_t day_offset_ns;             /* a day runs [k*24h - offset, (k+1)*24h - offset) UTC */
    int64_t subsidy_budget_fen; /* the most the group seats of all its SKUs may cost below their
                                   list prices, 0..RUSH_SUBSIDY_FEN_MAX; 0: no cap */
};

/*
 * What a sku_put names (struct rush_sku.fields); fields 0 names every field. On a SKU the engine
 * does not know, a put must be a whole definition: every field of RUSH_SKU_FIELDS_REQUIRED named
 * (and STOCK unless UNLIMITED is named and set), the others taking 0. On a live SKU, a put
 * changes only what it names: leave PAUSED and STOCK out to keep a pause and the adjustments
 * (proto/PROTOCOL.md, "SKU_PUT on a live SKU"). The id is always named.
 */
enum rush_sku_field {
    RUSH_SKU_FIELD_NAME = 1u << 0,
    RUSH_SKU_FIELD_STOCK = 1u << 1,
    RUSH_SKU_FIELD_UNLIMITED = 1u << 2,
    RUSH_SKU_FIELD_PRICE = 1u << 3,
    RUSH_SKU_FIELD_START = 1u << 4,
    RUSH_SKU_FIELD_END = 1u << 5,
    RUSH_SKU_FIELD_PAY_TTL = 1u << 6,
    RUSH_SKU_FIELD_ORDER_QTY_MAX = 1u << 7,
    RUSH_SKU_FIELD_USER_QTY_MAX = 1u << 8,
    RUSH_SKU_FIELD_PAUSED = 1u << 9,
    RUSH_SKU_FIELD_GROUP_SIZE = 1u << 10,
    RUSH_SKU_FIELD_GROUP_TTL = 1u << 11,
    RUSH_SKU_FIELD_GROUPS_OPEN_MAX = 1u << 12,
    RUSH_SKU_FIELD_VIRTUAL_POLICY = 1u << 13,
    RUSH_SKU_FIELD_VIRTUAL_SEATS_MAX = 1u << 14,
    RUSH_SKU_FIELD_VIRTUAL_BUDGET = 1u << 15,
    RUSH_SKU_FIELD_SOLO_ALLOWED = 1u << 16,
    RUSH_SKU_FIELD_GROUP_PRICE = 1u << 17,  /* group_price_fen and the GROUP_PRICE bit of prices */
    RUSH_SKU_FIELD_LEADER_PRICE = 1u << 18, /* leader_price_fen and the LEADER_PRICE bit */
    RUSH_SKU_FIELD_RULES = 1u << 19,        /* rules (IN_ACTIVITY cannot change on a live SKU) */
    RUSH_SKU_FIELD_REGISTER_FROM = 1u << 20,
    RUSH_SKU_FIELD_REGISTER_UNTIL = 1u << 21,
    RUSH_SKU_FIELD_TIERS = 1u << 22, /* tier_count, tier_size, tier_price_fen */
    RUSH_SKU_FIELD_SUBSIDY_BUDGET = 1u << 23,
};
#define RUSH_SKU_FIELDS_ALL 0xffffffu
#define RUSH_SUBSIDY_FEN_MAX INT64_C(1000000000000000)
#define RUSH_SKU_FIELDS_REQUIRED                                                                   \
    (RUSH_SKU_FIELD_NAME | RUSH_SKU_FIELD_PRICE | RUSH_SKU_FIELD_START | RUSH_SKU_FIELD_END |      \
     RUSH_SKU_FIELD_ORDER_QTY_MAX | RUSH_SKU_FIELD_USER_QTY_MAX)

/* Event types: the engine's log format. Values are in the log: append, never renumber. */
enum rush_event_type {
    RUSH_EV_NONE = 0,
    RUSH_EV_REJECTED = 1,        /* older logs only: a remembered rejection (none are now) */
    RUSH_EV_ORDER_RESERVED = 2,  /* stock held for an order (a flash-sale order or a seat) */
    RUSH_EV_ORDER_CONFIRMED = 3, /* paid, or its group completed */
    RUSH_EV_ORDER_RELEASED = 4,  /* cancelled, or its group failed; stock returns */
    RUSH_EV_ORDER_EXPIRED = 5,   /* pay TTL ran out; stock returns */
    RUSH_EV_GROUP_OPENED = 6,
    RUSH_EV_GROUP_COMPLETED = 7, /* qty = virtual seats used */
    RUSH_EV_GROUP_FAILED = 8,
    RUSH_EV_REFUND_DUE = 9,      /* a payment to give back: its order will not ship, or (op
                                    confirm, order confirmed before) it was a second payment */
    RUSH_EV_STOCK_ADJUSTED = 10, /* amount = change of stock_total */
    RUSH_EV_SKU_PAUSED = 11,
    RUSH_EV_SKU_RESUMED = 12,
    RUSH_EV_SKU_PUT = 13,      /* followed by RUSH_SKU_PUT_PARTS raw records of the SKU */
    RUSH_EV_SKU_PART = 14,     /* RUSH_SKU_PART_BYTES bytes of a struct rush_sku */
    RUSH_EV_SEAT_INVITED = 15, /* right after a seat's reservation: user_id = its inviter */
    RUSH_EV_INVITER_DUE = 16,  /* after a completed group's seat that was invited: user_id = the
                                  inviter, order_id, amount and qty the seat's (the reward is due) */
    RUSH_EV_ADMIN_AUDIT = 17,  /* right after an admin action's decision (adjust, pause, resume,
                                  sku_put): op, outcome, sku_id and amount (adjust: the change);
                                  followed by RUSH_AUDIT_PARTS AUDIT_PART records; changes nothing */
    RUSH_EV_AUDIT_PART = 18,   /* qty = the part's index; payload: RUSH_AUDIT_PART_BYTES bytes of a
                                  struct rush_audit */
    RUSH_EV_REGISTERED = 19,   /* op register: user_id registered for sku_id */
    RUSH_EV_TIER_REFUND_DUE = 20, /* after a tiered group's seat is confirmed: amount = what its
                                     buyer is due back (paid at join minus the tier reached) */
    RUSH_EV_TYPE_COUNT_ = 21,
};

#define RUSH_EVENT_DECISION 0x01 /* first event of a keyed decision: carries key and op */

/*
 * An event. A decision produces one or more; the first carries the request's idempotency key
 * and op (flag RUSH_EVENT_DECISION) so that replaying the log rebuilds the idempotency table.
 * Applying the events of a decision, in order, is the only way shard state changes, live or in
 * recovery. The batch header (not the event) carries the engine time.
 */
struct rush_event {
    uint8_t type;    /* enum rush_event_type */
    uint8_t op;      /* the deciding request's op (a group completed by a join: the join's), or 0
                        when a deadline decided (an expiry, a group's deadline) */
    uint8_t outcome; /* REJECTED and REFUND_DUE decisions: the outcome remembered */
    uint8_t flags;   /* RUSH_EVENT_* */
    uint32_t qty;    /* SKU_PART, AUDIT_PART: the part's index */
    union {
        struct {
            uint64_t order_id;
            uint64_t group_id;
            uint64_t sku_id;
            uint64_t user_id;
            int64_t amount; /* order events: the order's amount, price_fen * qty when it was
                               reserved; STOCK_ADJUSTED: change; GROUP_OPENED: deadline */
            rush_key key;   /* decision events */
        };
        uint8_t payload[56]; /* SKU_PART: bytes of a struct rush_sku; AUDIT_PART: of a rush_audit */
    };
};
static_assert(sizeof(struct rush_event) == 64, "event record is 64 bytes");

#define RUSH_SKU_PART_BYTES 56
/* 4 * 56 bytes == sizeof(struct rush_sku). A SKU_PUT event's qty says how many parts follow; 0
 * (a log written before the tiers) means 3, whose bytes past them read as zero. */
#define RUSH_SKU_PUT_PARTS 4
#define RUSH_SKU_PUT_PARTS_V0 3
static_assert(RUSH_SKU_PUT_PARTS * RUSH_SKU_PART_BYTES >= sizeof(struct rush_sku), "parts");

/*
 * Who did an admin action and why, as the log and the stream carry it: NUL-padded text, not
 * terminated when it fills its field (longer text is cut at the field's end).
 */
#define RUSH_AUDIT_OPERATOR_BYTES 32
#define RUSH_AUDIT_REASON_BYTES 80
struct rush_audit {
    char operator_name[RUSH_AUDIT_OPERATOR_BYTES];
    char reason[RUSH_AUDIT_REASON_BYTES];
};
/*
 * The op of an admin_audit event: the request's op (adjust, pause, resume), RUSH_OP_NONE for a
 * sku_put, and this value, which no request carries, for a snapshot.
 */
#define RUSH_AUDIT_OP_SNAPSHOT 255
/* An AUDIT_PART carries this many bytes (the stream's text field is as wide); 3 * 40 >= 112. */
#define RUSH_AUDIT_PART_BYTES 40
#define RUSH_AUDIT_PARTS 3
static_assert(RUSH_AUDIT_PARTS * RUSH_AUDIT_PART_BYTES >= sizeof(struct rush_audit), "parts");

/* Ids carry their shard in the top byte so that confirm, cancel and join route without lookup. */
#define RUSH_ID_SHARD_SHIFT 56
#define RUSH_ID_GROUP_BIT (UINT64_C(1) << 55)
#define RUSH_SHARDS_MAX 64

static inline uint32_t rush_id_shard(uint64_t id)
{
    return (uint32_t)(id >> RUSH_ID_SHARD_SHIFT);
}

const char *rush_op_name(enum rush_op op);
/* The admin action an admin_audit's op names: sku_put, snapshot, or the op's name. */
const char *rush_audit_action_name(uint8_t op);
const char *rush_outcome_name(enum rush_outcome outcome);
const char *rush_reason_name(enum rush_reason reason);
const char *rush_event_type_name(enum rush_event_type type);
const char *rush_order_state_name(enum rush_order_state state);
const char *rush_group_state_name(enum rush_group_state state);

/* Name lookups for text forms (JSON, rushctl). Return -1 when the name is unknown. */
int rush_op_from_name(const char *name);
int rush_outcome_from_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
