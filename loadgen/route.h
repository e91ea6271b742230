/*
 * route.h — which node a request goes to, and what a redirect answer asks of the sender.
 *
 * What and why. A rush cluster spreads its shards over nodes, each shard led by one node at a
 * time (issue 15). A node that does not lead a request's shard decides nothing and answers a
 * redirect: outcome RUSH_REDIRECT (18), reason wrong_shard, `state` = the request's shard,
 * `qty` = the index of the node that leads it in the cluster's node list, or UINT32_MAX when no
 * node holds the shard's lease right now (JSON: "outcome":"redirect","shard":S,"leader":L or
 * null). rush-loadgen is given the same node list (--nodes) and keeps one table per driver
 * thread: shard -> the node believed to lead it. A request goes to its shard's node; a redirect
 * teaches the table and the request is sent again, the same 64 bytes with the same key, to the
 * node named (at once), or after RUSH_ROUTE_LEADER_WAIT_NS to the same node when none was named.
 * Nothing was decided by a redirect, so the resend is safe; a request is given up (nothing
 * decided) after RUSH_ROUTE_HOPS_MAX redirects and waits, counted in the report.
 *
 * Two more answers move a request with more than one node. A message with no reply within
 * --timeout-ms is sent again, each request alone, to the NEXT node for its shard: the table
 * points the shard away from the silent node (rush_route_timeout), so new requests stop going
 * there too. An outcome_unknown (a fenced leader answering for requests it held) is treated as
 * a redirect naming no leader: after RUSH_ROUTE_LEADER_WAIT_NS the request goes again to its
 * shard's node as the table has it then. Both are hops. The resend carries the same key, so a
 * node that did decide it answers the first decision again (flagged duplicate), never a second.
 *
 * Before any redirect the table guesses shard s -> node s % nodes (the two-node layout: A leads
 * the even shards, B the odd ones). The shard of a request is rush_wire_shard_of() over
 * --shards; a wrong --shards only costs redirects, because the table learns from each
 * redirect's own shard number.
 *
 * Workload: one lookup per request sent, one verdict per result. Threads: each driver thread
 * owns its table; no state is shared.
 */
#ifndef RUSH_ROUTE_H
#define RUSH_ROUTE_H

#include <stdint.h>

#include "rush/types.h"

#define RUSH_ROUTE_NO_LEADER UINT32_MAX
#define RUSH_ROUTE_LEADER_WAIT_NS INT64_C(100000000) /* no leader named: wait, then retry */
#define RUSH_ROUTE_HOPS_MAX 64 /* redirects + waits per request: over 6 s without a leader */

enum rush_route_verdict {
    RUSH_ROUTE_DECIDED = 0, /* a real answer: take it */
    RUSH_ROUTE_RESEND = 1,  /* send again at once to *node */
    RUSH_ROUTE_WAIT = 2,    /* send again to *node after RUSH_ROUTE_LEADER_WAIT_NS */
    RUSH_ROUTE_GIVE_UP = 3, /* too many hops: nothing was decided */
};

struct rush_route {
    uint32_t node_count;
    uint32_t shard_count;
    uint32_t leaders[RUSH_SHARDS_MAX]; /* believed leader per shard */
};

void rush_route_init(struct rush_route *route, uint32_t node_count, uint32_t shard_count);

/* The node a request goes to now. */
uint32_t rush_route_node(const struct rush_route *route, const struct rush_request *request);

/*
 * What to do with a result of a request that went to node `from` after `hops` redirects and
 * waits. A redirect teaches the table (a leader index out of range counts as none named). With
 * more than one node an outcome_unknown is RUSH_ROUTE_WAIT with *node = RUSH_ROUTE_NO_LEADER:
 * route it again (rush_route_node) when the wait is over.
 */
enum rush_route_verdict rush_route_answer(struct rush_route *route,
                                          const struct rush_result *result, uint32_t from,
                                          uint32_t hops, uint32_t *node);

/*
 * A request sent to node `from` got no reply in time: the shard is pointed at the node after
 * `from` (unless the table already moved it). Returns the node to send it to now.
 */
uint32_t rush_route_timeout(struct rush_route *route, const struct rush_request *request,
                            uint32_t from);

#endif
