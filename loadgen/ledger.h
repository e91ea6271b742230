/*
 * ledger.h — what rush-loadgen sent and what rushd answered, one compact entry per request.
 *
 * What and why. A load run is only worth its figures if the engine's answers were right: no
 * oversell, a duplicate answered with its original result, every confirmed order exactly once
 * downstream. Checking that needs, for each request, what was asked (key, op, SKU, user, qty,
 * target) and what came back (outcome, order id, group id, flags). The ledger keeps exactly
 * that, in send order, so that a verifier (loadgen/verify.h) can run after the load without the
 * load path doing anything but two stores per request.
 *
 * Workload. One entry per request: up to 2 x RUSH_LOADGEN_BUYERS_MAX entries of 88 bytes. The
 * table is reserved once at start-up (an anonymous mapping: pages are touched as entries are
 * written, so a short run costs little however large the capacity) and never grows; when it is
 * full the run stops generating requests (rush_ledger_append returns -ENOSPC).
 *
 * Entry index = the request's tag on the wire. rushd echoes the tag in each result, so a reply
 * finds its entries without a search, and a result whose tag is not the index expected is a
 * protocol error.
 *
 * States of an entry:
 *
 *     append          answer
 *   ---------> SENT ----------> ANSWERED   (outcome, order_id, ... filled)
 *                |
 *                +------------> LOST       (no reply within the timeout, or the run stopped)
 *                +------------> REFUSED    (rushd answered the message with an ERROR)
 *
 *   rush_ledger_append   (none) -> SENT
 *   rush_ledger_answer   SENT -> ANSWERED
 *   rush_ledger_fail     SENT -> LOST or REFUSED
 *
 * Invariants (rush_ledger_check verifies them):
 *   1. count <= capacity; entries [0, count) are in one of the states above, none beyond.
 *   2. An entry with original_index != RUSH_LEDGER_NO_ORIGINAL is a resend: original_index <
 *      its own index, and the original's key equals its key.
 *
 * Threads: the driver's threads, under its crowd lock (loadgen/driver.h); the verifier after them.
 */
#ifndef RUSH_LEDGER_H
#define RUSH_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include "rush/types.h"

#define RUSH_LEDGER_NO_ORIGINAL UINT32_MAX
#define RUSH_LEDGER_CAPACITY_MAX (UINT32_MAX - 1u)

enum rush_ledger_status {
    RUSH_LEDGER_FREE = 0,
    RUSH_LEDGER_SENT = 1,
    RUSH_LEDGER_ANSWERED = 2,
    RUSH_LEDGER_LOST = 3,
    RUSH_LEDGER_REFUSED = 4,
};

struct rush_ledger_entry {
    rush_key key;            /* the request's idempotency key */
    uint64_t sku_id;         /* request: reserve, group_open, group_join_any */
    uint64_t user_id;        /* request */
    uint64_t target_id;      /* request: order (confirm) or group (group_join) */
    uint64_t order_id;       /* result */
    uint64_t group_id;       /* result */
    int64_t remaining;       /* result: available stock right after the decision */
    uint32_t qty;            /* request */
    uint32_t original_index; /* a resend: the entry it repeats; else RUSH_LEDGER_NO_ORIGINAL */
    uint8_t op;              /* enum rush_op */
    uint8_t status;          /* enum rush_ledger_status */
    uint8_t outcome;         /* enum rush_outcome, when ANSWERED */
    uint8_t flags;           /* RUSH_RESULT_* of the result */
    uint8_t reason;          /* enum rush_reason when invalid */
    uint8_t state;           /* order or group state in the result */
    uint8_t request_flags;   /* request: RUSH_REQUEST_* (the gateway's new-user flag) */
    uint8_t pad[1];
    uint64_t inviter_id; /* request: group_join, group_join_any (0: nobody) */
};
static_assert(sizeof(struct rush_ledger_entry) == 88, "ledger entries stay compact");

struct rush_ledger {
    struct rush_ledger_entry *entries;
    uint32_t count;
    uint32_t capacity;
    size_t mapped_bytes;
};

/* Reserves room for `capacity` entries (1 .. RUSH_LEDGER_CAPACITY_MAX). 0, -EINVAL or -ENOMEM. */
RUSH_MUST_USE int rush_ledger_init(struct rush_ledger *ledger, uint32_t capacity);
void rush_ledger_free(struct rush_ledger *ledger);

/*
 * Appends a SENT entry for `request` (resend of original_index, or RUSH_LEDGER_NO_ORIGINAL).
 * Returns its index (>= 0), or -ENOSPC when the ledger is full.
 */
RUSH_MUST_USE int64_t rush_ledger_append(struct rush_ledger *ledger,
                                         const struct rush_request *request,
                                         uint32_t original_index);

/* SENT -> ANSWERED with the result's fields. */
void rush_ledger_answer(struct rush_ledger *ledger, uint32_t index,
                        const struct rush_result *result);
/* SENT -> status (LOST or REFUSED). */
void rush_ledger_fail(struct rush_ledger *ledger, uint32_t index, enum rush_ledger_status status);

static inline const struct rush_ledger_entry *rush_ledger_get(const struct rush_ledger *ledger,
                                                              uint32_t index)
{
    return index < ledger->count ? &ledger->entries[index] : NULL;
}

/*
 * True when a resend's answer is the original's: same outcome, reason, state, qty, order, group
 * and remaining, and the resend is flagged RUSH_RESULT_DUPLICATE. Both must be ANSWERED. An
 * original that changed nothing (not ok or expired) is not remembered: its resend is a new
 * decision, not flagged (proto/PROTOCOL.md, "What is remembered").
 */
bool rush_ledger_duplicate_matches(const struct rush_ledger_entry *original,
                                   const struct rush_ledger_entry *resend);

/* Checks the invariants above over every entry (O(count)). 0, or -EINVAL. */
RUSH_MUST_USE int rush_ledger_check(const struct rush_ledger *ledger);

#endif
