/*
 * scenario.h — what the simulated crowd asks rushd, request by request.
 *
 * What and why. Each scenario is a Double-11 traffic shape the engine must survive:
 *
 *   midnight    --buyers distinct buyers, one reserve each, on a few hot SKUs with small stock
 *               (SKU picked uniformly): almost everybody gets sold_out, exactly stock get ok.
 *   zipf        one reserve per buyer on a SKU drawn from a Zipf(s) law over --skus SKUs: SKU k
 *               (0-based) has weight 1 / (k + 1)^s, so a few SKUs are hot and sell out while the
 *               long tail keeps stock.
 *   groups      group-buy traffic: GROUPS_OPEN_PERCENT of buyers open a group, GROUPS_JOIN_PERCENT
 *               join a group they know is open (the oldest known group with a seat not yet asked
 *               for), the rest send group_join_any.
 *   duplicates  reserves as in midnight; --duplicate-rate of the answered requests are sent
 *               again, byte for byte with the same idempotency key (a new tag), after their first
 *               answer came back. Each resend must come back flagged duplicate with the original
 *               answer (rush_ledger_duplicate_matches); the scenario counts both cases.
 *   payments    reserves as in midnight; --confirm-rate of the reservations that come back ok are
 *               confirmed (confirm with the order id, a new key) as soon as they come back, the
 *               rest are abandoned, so the SKU's pay TTL expires them and the stock returns.
 *   social      Pinduoduo-style buyers on the catalogue of catalog.h (RUSH_CATALOG_SOCIAL_*):
 *               SOCIAL_SOLO_PERCENT buy the deal solo, SOCIAL_DEAL_PERCENT join_any its groups
 *               of 2 and SOCIAL_TIERED_PERCENT the tiered group (half of the joins on the
 *               invitation of the buyer before them), SOCIAL_NEW_USERS_PERCENT ask for the
 *               new-users-only SKU (half flagged new user by the "gateway"), the rest reserve
 *               a colour of the activity and, when that is ok, a second colour (a follow-up:
 *               the activity's limit of one must refuse it).
 *
 * Follow-ups (resends, confirms) wait in a FIFO and go before the next new buyer. Every new
 * request gets a fresh key: the run id (7 bytes), a sequence number (8 bytes) and a marker
 * byte, so keys of two runs never meet. User ids are run-specific too (user_base + buyer index)
 * so that per-user limits left by an earlier run on campaign SKUs do not skew a new one.
 *
 * Workload and limits. At most `buyers` new requests and at most one follow-up per answered
 * request, and follow-ups spawn none: so a run makes at most 2 x buyers requests
 * (rush_scenario_requests_max) and the follow-up FIFO holds at most `buyers`. Both are allocated
 * at init. Picking a request is O(1), or O(log skus) for Zipf (binary search in the CDF).
 *
 * Threads: the driver's thread only.
 */
#ifndef RUSH_SCENARIO_H
#define RUSH_SCENARIO_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "ledger.h"
#include "options.h"

#define SOCIAL_SOLO_PERCENT 20
#define SOCIAL_DEAL_PERCENT 25
#define SOCIAL_TIERED_PERCENT 20
#define SOCIAL_NEW_USERS_PERCENT 15
#define GROUPS_OPEN_PERCENT 20
#define GROUPS_JOIN_PERCENT 50
#define RUSH_SCENARIO_KNOWN_GROUPS_MAX 4096 /* open groups remembered for group_join */

struct rush_scenario_stats {
    uint64_t buyers_sent;        /* new requests (one per buyer) */
    uint64_t resends_queued;     /* duplicates */
    uint64_t resends_matching;   /* flagged duplicate with the original answer */
    uint64_t resends_mismatched; /* not flagged, or a different answer */
    uint64_t confirms_queued;    /* payments */
    uint64_t abandoned;          /* payments: ok reservations left to expire */
    uint64_t group_opens;        /* groups */
    uint64_t group_joins;
    uint64_t group_joins_any;
    uint64_t solo;           /* social: solo buyers of the deal */
    uint64_t invited;        /* social: joins naming an inviter */
    uint64_t new_user_asks;  /* social: requests for the new-users-only SKU */
    uint64_t activity_asks;  /* social: first colours asked */
    uint64_t second_colours; /* social: second colours asked (over the activity's limit) */
};

struct rush_known_group {
    uint64_t group_id;
    uint32_t seats_asked; /* joins sent to it so far */
};

struct rush_scenario {
    enum rush_loadgen_scenario kind;
    const struct rush_catalog *catalog;
    uint64_t buyers;
    uint64_t buyers_next;
    uint64_t user_base;
    uint64_t run_id;
    uint64_t key_seq;
    uint64_t random; /* xorshift64 state */
    double duplicate_rate;
    double confirm_rate;
    uint32_t group_size;
    double *zipf_cdf; /* zipf: cumulative weights over the catalogue, last = 1 */
    uint32_t *follow; /* FIFO of ledger indices to follow up */
    uint64_t follow_capacity;
    uint64_t follow_head;
    uint64_t follow_count;
    struct rush_known_group groups[RUSH_SCENARIO_KNOWN_GROUPS_MAX]; /* FIFO */
    uint32_t groups_head;
    uint32_t groups_count;
    struct rush_scenario_stats stats;
};

/* Requests a run of these options can make at most: the ledger's capacity. */
uint64_t rush_scenario_requests_max(const struct rush_loadgen_options *options);

/* Allocates the tables. run_id keeps keys and users apart between runs. 0, -ENOMEM. */
RUSH_MUST_USE int rush_scenario_init(struct rush_scenario *scenario,
                                     const struct rush_loadgen_options *options,
                                     const struct rush_catalog *catalog, uint64_t run_id);
void rush_scenario_free(struct rush_scenario *scenario);

/*
 * The next request (tag left 0) into *out, and in *original the ledger index it resends
 * (RUSH_LEDGER_NO_ORIGINAL for a new request). Returns true, or false when nothing is to be sent
 * now (every buyer has been sent and no follow-up waits; more may come with later answers).
 */
bool rush_scenario_next(struct rush_scenario *scenario, const struct rush_ledger *ledger,
                        struct rush_request *out, uint32_t *original);

/* Tells the scenario that ledger entry `index` was answered; may queue a follow-up. */
void rush_scenario_on_answer(struct rush_scenario *scenario, const struct rush_ledger *ledger,
                             uint32_t index);

/* True when every buyer has been sent and no follow-up waits. */
bool rush_scenario_exhausted(const struct rush_scenario *scenario);

/* The SKU index (0 .. count - 1) for a uniform draw u in [0, 1) under the Zipf CDF. */
uint32_t rush_scenario_zipf_pick(const double *cdf, uint32_t count, double u);

#endif
