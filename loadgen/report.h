/*
 * report.h — what a load run counted, and how it is shown: a progress line every second on
 * stderr, a text report on stdout, and the same figures as a JSON file (--report).
 *
 * Words used in the figures:
 *   offered    requests the run meant to send: in open mode every request of every message
 *              whose intended time fell within the run (sent or not), and the offered rate is
 *              over the schedule's span (first intended time to the last one plus one gap); in
 *              closed mode offered = sent.
 *   sent       requests handed to nanomsg.
 *   answered   requests whose result came back (any outcome, busy included).
 *   accepted   answered with an outcome other than busy: the engine decided them.
 *   latency    per answered request, from its message's INTENDED send time (open mode) or its
 *              actual send time (closed mode) to the arrival of the reply; in microseconds.
 *   errors     timeouts (requests of messages unanswered within --timeout-ms, or still out when
 *              the run ended), protocol (requests of messages answered with an ERROR or a reply
 *              that does not match), send (requests nanomsg refused to send), stale replies
 *              (replies to messages already given up).
 *
 * JSON keys (a contract for benchmark scripts): scenario, mode, arrivals, connections, batch,
 * inflight, threads, protocol (binary or json), nodes, offered_rate (open mode; null in closed
 * mode), buyers, skus, seed, requests_offered, requests_sent, requests_answered, requests_accepted,
 * messages_sent, messages_answered, elapsed_s, send_s, offered_per_s, sent_rate_per_s,
 * throughput_per_s, accepted_per_s, latency_us {p50, p90, p99, p999, max, mean}, outcomes {name:
 * count, all 15}, invalid_reasons {name: count, nonzero only}, ops_sent {name: count},
 * duplicates_flagged, duplicates {resent, matching, mismatched}, payments {confirms, abandoned},
 * groups {opens, joins, joins_any}, cpu_s, cpu_cores (cpu_s / elapsed_s: what the load generator
 * itself used, all its threads, nanomsg's included), errors {timeouts, protocol, send,
 * stale_replies, total}, redirects {followed, leader_waits, gave_up,
 * rerouted, unknown_retried}, decision_gap {longest_ms, shard, began_s (since the run's start),
 * decided_before, decided_after, ok_before, ok_after, per_shard_ms [...]}, catalog {fresh, base_id,
 * count, stock_put, before {...}, after {...}}, ledger {entries, capacity}, first_error.
 *
 * Threads: each driver thread fills its own tally; rush_tally_merge adds them up after the run
 * (and, for the progress line, copies each thread publishes under its own lock).
 */
#ifndef RUSH_REPORT_H
#define RUSH_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "catalog.h"
#include "histogram.h"
#include "ledger.h"
#include "options.h"
#include "rush/types.h"
#include "scenario.h"

#define RUSH_REPORT_ERROR_BYTES 160

/*
 * Decision gaps: the client's view of a failover. Per shard, the longest time between two
 * consecutive decisions the run was answered (any outcome but busy, redirect and
 * outcome_unknown, which decide nothing), and for the longest of all, the decisions and ok
 * answers of its shard before it began and after it ended. A kill -9 of a shard's leader under
 * load shows here as the time from the old leader's last answer to the new leader's first
 * (ARCHITECTURE.md "Cluster": lease expiry + a poll + catch-up), ok before and after nonzero.
 * Filled by the driver threads under the crowd lock; gaps before a shard's first decision and
 * after its last are not counted.
 */
struct rush_decision_gaps {
    int64_t last_ns[RUSH_SHARDS_MAX]; /* the shard's latest decision (0: none yet) */
    int64_t longest_ns[RUSH_SHARDS_MAX];
    uint64_t decided[RUSH_SHARDS_MAX];
    uint64_t ok[RUSH_SHARDS_MAX];
    uint32_t shard;          /* the longest gap of all: its shard, */
    int64_t gap_ns;          /* length (0: no shard decided twice), */
    int64_t began_ns;        /* the decision before it (monotonic), */
    uint64_t decided_before; /* and its shard's decisions and oks up to that decision */
    uint64_t ok_before;
};

/* One decision of `shard` received at now_ns (its outcome ok or not). */
void rush_decision_gaps_record(struct rush_decision_gaps *gaps, uint32_t shard, bool ok,
                               int64_t now_ns);

struct rush_tally {
    uint64_t requests_offered; /* open mode: of messages due, sent or not */
    uint64_t requests_sent;
    uint64_t requests_answered;
    uint64_t messages_sent;
    uint64_t messages_answered;
    uint64_t outcomes[RUSH_OUTCOME_COUNT_];
    uint64_t reasons[RUSH_REASON_COUNT_];
    uint64_t ops_sent[RUSH_OP_COUNT_];
    uint64_t duplicates_flagged; /* results carrying RUSH_RESULT_DUPLICATE */
    uint64_t timeouts;           /* requests */
    uint64_t protocol_errors;    /* requests */
    uint64_t send_errors;        /* requests */
    uint64_t stale_replies;      /* messages */
    uint64_t arrivals_idle;      /* open mode: messages due with nothing to send yet */
    uint64_t ledger_full;        /* 1 when the run stopped because the ledger filled */
    uint64_t redirects;          /* results answered redirect and sent again (loadgen/route.h) */
    uint64_t leader_waits;       /* of those, the ones that named no leader: resent after a wait */
    uint64_t redirect_gave_up;   /* requests given up after RUSH_ROUTE_HOPS_MAX hops */
    uint64_t timeouts_rerouted;  /* --nodes: requests unanswered in time, sent to the next node */
    uint64_t unknown_retried;    /* --nodes: outcome_unknown answers, resent after a wait */
    uint64_t in_flight;          /* messages outstanding now */
    int64_t start_ns;
    int64_t last_send_ns;
    int64_t schedule_end_ns; /* open mode: intended time of the last message due + one gap */
    int64_t end_ns;
    uint64_t backlog_messages; /* open mode: messages due but not yet sent (at the last tick) */
    uint64_t requests_due;     /* requests_offered + backlog_messages x batch (at the last tick) */
    int64_t cpu_ns; /* CPU time (user + system) rush-loadgen's threads used during the run */
    struct rush_histogram latency_ns;
    struct rush_decision_gaps gaps; /* set once after the run (not merged per thread) */
    char first_error[RUSH_REPORT_ERROR_BYTES];
};

/* The figures of one second, for the progress line. */
struct rush_progress {
    struct rush_tally previous; /* counters at the start of the second (histogram unused) */
    struct rush_histogram second_ns;
    int64_t second_start_ns;
    uint32_t seconds;
};

void rush_tally_init(struct rush_tally *tally, int64_t start_ns);
/*
 * Adds the counts of `from` (one driver thread's) into `into`: every counter summed, the
 * latest of the end times, the first error kept; the latency histogram merged when asked. Exact:
 * nothing is sampled or averaged.
 */
void rush_tally_merge(struct rush_tally *into, const struct rush_tally *from, bool latency);
/* Records the first error text only (the rest are counted). */
void rush_tally_error(struct rush_tally *tally, const char *text);

void rush_progress_init(struct rush_progress *progress, const struct rush_tally *tally,
                        int64_t now_ns);
/* Prints "[   3s] offered ... p99 ... us" for the second that ends now, and starts the next. */
void rush_progress_print(struct rush_progress *progress, const struct rush_tally *tally,
                         int64_t now_ns, FILE *out);

/* Everything the final report shows. */
struct rush_report_input {
    const struct rush_loadgen_options *options;
    const struct rush_tally *tally;
    const struct rush_scenario_stats *scenario;
    const struct rush_catalog *catalog;
    const struct rush_ledger *ledger;
};

void rush_report_print(const struct rush_report_input *input, FILE *out);
/* Writes the JSON report to path. 0, or -errno / -ENOMEM. */
RUSH_MUST_USE int rush_report_write_json(const struct rush_report_input *input, const char *path);

#endif
