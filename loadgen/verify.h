/*
 * verify.h — rush-loadgen --verify: the run checked end to end, through the stream downstream
 * services consume (rush/subscriber.h), not through the engine's own word.
 *
 * What it checks, after the load, against the ledger (what was sent and answered), the catalog
 * (each SKU's rules and its figures before and after) and every stream event of the run's SKUs:
 *   1. no oversell: per SKU, reserved + confirmed never above the stock, and the units confirmed
 *      in the stream no more than the stock;
 *   2. every acknowledged confirmed order (an ok reserve on a pay-TTL-0 SKU, an ok confirm) is
 *      in the stream exactly once, with its SKU, buyer and quantity; no order is confirmed twice;
 *      the units confirmed in the stream equal the engine's confirmed figure, per SKU;
 *   3. no buyer over a limit: per (SKU, buyer) the units still held at the end (ok reserves and
 *      seats, less those released or expired in the stream) and the units confirmed are within
 *      the SKU's per-user limit;
 *   4. every completed group has exactly N members (confirmed seats + virtual seats), and no
 *      failed group has a confirmed seat;
 *   5. every resend with the same key was answered duplicate with the original's result;
 *   6. an ok on a new-users-only SKU answered a request the gateway flagged new;
 *   7. no buyer holds more units of the social activity (RUSH_CATALOG_SOCIAL_FAMILY) than its
 *      per-user limit (ok answers less releases and expiries in the stream);
 *   8. every tier_refund_due is the first tier's price less the price of the tier its group
 *      reached (its confirmed seats in the stream), and such a group refunds every seat (a tiered
 *      group completes at a tier, with no virtual seat: check 4);
 *   9. a seat of a completed group has an inviter_due naming its inviter exactly when its join
 *      named one;
 *  10. the stream exactly once: every (shard, seq) of the run is served by some node, and by
 *      every node that serves it with the same 64 bytes; with several nodes, no seq is held only
 *      by a node that is gone (an event no live node's log has). No order confirmed twice is
 *      check 2, over the merged stream.
 * Each violation is printed (the first few of each kind in full) and counted; any makes the run
 * exit with status 4.
 *
 * How the stream is followed. rush_verify_start() opens a subscriber at the publisher's current
 * heads before the first request, so it sees this run's events and the history before it costs
 * nothing; a thread polls it during the run (its events land in memory, in order). After the
 * run, rush_verify_finish() joins that thread and polls, asking replay for the heads again, until
 * every acknowledged confirmation has been seen or RUSH_VERIFY_SETTLE_MS passed (the publisher
 * runs a moment behind the durable point).
 *
 * A cluster (--pubs and --replays, one per node of --nodes). Every node's publisher serves its
 * local log, which holds every batch of every shard the node leads or follows, numbered alike on
 * every node (the seqs come from the replicated batches). So each node gets its own subscriber
 * and thread, all opened at their heads before the first request, and after the run their events
 * are merged per (shard, seq): each seq from whichever node served it, compared byte for byte
 * where several did. A node may die during the run: its subscriber's failure (replay silent after
 * its retries, or a fatal error) marks it gone, what it delivered is kept, and it is no longer
 * waited for; the live nodes must cover every seq of the run, from the highest of the start heads
 * to the highest seq any node served. The checks then run over the merged stream as over one
 * node's, and the figures they compare with are the shard leaders' (rush_catalog_query routes).
 * The report prints per node what it delivered and whether it was followed to the end.
 *
 * Limits: events kept in memory up to RUSH_VERIFY_EVENTS_MAX (64 bytes each). SKUs of the
 * built-in campaign (--campaign-skus) have no known rules here, so checks 1, 3 and 4 use what
 * the figures say and skip what needs the rules.
 *
 * Threads: start/finish on the driver's thread; one collector thread per node in between.
 */
#ifndef RUSH_VERIFY_H
#define RUSH_VERIFY_H

#include <stdio.h>

#include "catalog.h"
#include "ledger.h"
#include "options.h"

#define RUSH_VERIFY_EVENTS_MAX (64u << 20) /* 4 GiB of events: far beyond any one run */
#define RUSH_VERIFY_SETTLE_MS 20000
#define RUSH_VERIFY_SHOWN_MAX 5 /* violations printed in full per check */

struct rush_verify;

/* Subscribes from the publisher's current heads and starts collecting. 0, or < 0 with why. */
RUSH_MUST_USE int rush_verify_start(const struct rush_loadgen_options *options,
                                    struct rush_verify **out, char *why, size_t why_size);
/*
 * Stops collecting once the stream has caught up, runs the checks and prints them to `out`.
 * Returns the number of violations (0: the run verified), or < 0 when the stream could not be
 * followed (that too is a failed verification).
 */
RUSH_MUST_USE int64_t rush_verify_finish(struct rush_verify *verify,
                                         const struct rush_catalog *catalog,
                                         const struct rush_ledger *ledger, FILE *out);
void rush_verify_free(struct rush_verify *verify);

#endif
