/*
 * report.c — the progress line, the text report and the JSON report (see report.h for the
 * meaning of each figure). The JSON is built with jansson after the run, off the load path.
 */
#include "report.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "rush/assert.h"

#define NS_PER_S 1e9
#define NS_PER_US 1e3
#define NS_PER_MS 1e6
#define PROGRESS_OUTCOMES_MAX 5 /* the progress line names at most this many outcomes */
#define CATALOG_IDS_MAX 16      /* SKU ids listed in the JSON report */

void rush_tally_init(struct rush_tally *tally, int64_t start_ns)
{
    memset(tally, 0, sizeof(*tally));
    tally->start_ns = start_ns;
    tally->last_send_ns = start_ns;
    tally->end_ns = start_ns;
    rush_histogram_reset(&tally->latency_ns);
}

static void add_counts(uint64_t *into, const uint64_t *from, size_t count)
{
    for (size_t i = 0; i < count; i++)
        into[i] += from[i];
}

static int64_t later(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

void rush_tally_merge(struct rush_tally *into, const struct rush_tally *from, bool latency)
{
    /* The counters up to in_flight are uint64_t in a row (checked by the two asserts). */
    static_assert(offsetof(struct rush_tally, in_flight) % sizeof(uint64_t) == 0, "layout");
    static_assert(offsetof(struct rush_tally, start_ns) ==
                      offsetof(struct rush_tally, in_flight) + sizeof(uint64_t),
                  "in_flight is the last counter before the times");
    add_counts(&into->requests_offered, &from->requests_offered,
               offsetof(struct rush_tally, start_ns) / sizeof(uint64_t));
    into->last_send_ns = later(into->last_send_ns, from->last_send_ns);
    into->schedule_end_ns = later(into->schedule_end_ns, from->schedule_end_ns);
    into->end_ns = later(into->end_ns, from->end_ns);
    into->backlog_messages += from->backlog_messages;
    into->requests_due += from->requests_due;
    if (latency)
        rush_histogram_merge(&into->latency_ns, &from->latency_ns);
    if (into->first_error[0] == '\0')
        memcpy(into->first_error, from->first_error, sizeof(into->first_error));
}

void rush_decision_gaps_record(struct rush_decision_gaps *gaps, uint32_t shard, bool ok,
                               int64_t now_ns)
{
    RUSH_ASSERT(shard < RUSH_SHARDS_MAX);
    int64_t last_ns = gaps->last_ns[shard];
    int64_t gap_ns = last_ns != 0 && now_ns > last_ns ? now_ns - last_ns : 0;
    if (gap_ns > gaps->longest_ns[shard])
        gaps->longest_ns[shard] = gap_ns;
    if (gap_ns > gaps->gap_ns) {
        gaps->shard = shard;
        gaps->gap_ns = gap_ns;
        gaps->began_ns = last_ns;
        gaps->decided_before = gaps->decided[shard];
        gaps->ok_before = gaps->ok[shard];
    }
    gaps->last_ns[shard] = now_ns > last_ns ? now_ns : last_ns;
    gaps->decided[shard]++;
    gaps->ok[shard] += ok;
}

void rush_tally_error(struct rush_tally *tally, const char *text)
{
    if (tally->first_error[0] == '\0')
        snprintf(tally->first_error, sizeof(tally->first_error), "%s", text);
}

void rush_progress_init(struct rush_progress *progress, const struct rush_tally *tally,
                        int64_t now_ns)
{
    memcpy(&progress->previous, tally, offsetof(struct rush_tally, latency_ns));
    rush_histogram_reset(&progress->second_ns);
    progress->second_start_ns = now_ns;
    progress->seconds = 0;
}

static double rate(uint64_t count, double seconds)
{
    return seconds > 0 ? (double)count / seconds : 0.0;
}

void rush_progress_print(struct rush_progress *progress, const struct rush_tally *tally,
                         int64_t now_ns, FILE *out)
{
    const struct rush_tally *p = &progress->previous;
    double seconds = (double)(now_ns - progress->second_start_ns) / NS_PER_S;
    progress->seconds++;
    fprintf(out, "[%5us] offered %.0f/s sent %.0f/s answered %.0f/s |", progress->seconds,
            rate(tally->requests_due - p->requests_due, seconds),
            rate(tally->requests_sent - p->requests_sent, seconds),
            rate(tally->requests_answered - p->requests_answered, seconds));
    int named = 0;
    for (int o = 0; o < RUSH_OUTCOME_COUNT_ && named < PROGRESS_OUTCOMES_MAX; o++) {
        uint64_t n = tally->outcomes[o] - p->outcomes[o];
        if (n == 0)
            continue;
        fprintf(out, " %s %llu", rush_outcome_name((enum rush_outcome)o), (unsigned long long)n);
        named++;
    }
    uint64_t errors =
        (tally->timeouts - p->timeouts) + (tally->protocol_errors - p->protocol_errors);
    fprintf(out, " | p99 %.0f us | in flight %llu",
            (double)rush_histogram_percentile(&progress->second_ns, 99.0) / NS_PER_US,
            (unsigned long long)tally->in_flight);
    if (tally->backlog_messages > 0)
        fprintf(out, " | %llu messages late", (unsigned long long)tally->backlog_messages);
    fprintf(out, "%s\n", errors ? " | ERRORS" : "");
    fflush(out);
    memcpy(&progress->previous, tally, offsetof(struct rush_tally, latency_ns));
    rush_histogram_reset(&progress->second_ns);
    progress->second_start_ns = now_ns;
}

/* ---- derived figures ---------------------------------------------------------------------- */

struct figures {
    double elapsed_s;
    double send_s;
    double offered_s;
    uint64_t accepted;
    uint64_t errors_total;
    double p50_us, p90_us, p99_us, p999_us, max_us, mean_us;
};

static void derive(const struct rush_tally *tally, struct figures *f)
{
    const struct rush_histogram *h = &tally->latency_ns;
    f->elapsed_s = (double)(tally->end_ns - tally->start_ns) / NS_PER_S;
    f->send_s = (double)(tally->last_send_ns - tally->start_ns) / NS_PER_S;
    f->offered_s = tally->schedule_end_ns > tally->start_ns
                       ? (double)(tally->schedule_end_ns - tally->start_ns) / NS_PER_S
                       : f->send_s;
    f->accepted = tally->requests_answered - tally->outcomes[RUSH_BUSY];
    f->errors_total =
        tally->timeouts + tally->protocol_errors + tally->send_errors + tally->redirect_gave_up;
    f->p50_us = (double)rush_histogram_percentile(h, 50.0) / NS_PER_US;
    f->p90_us = (double)rush_histogram_percentile(h, 90.0) / NS_PER_US;
    f->p99_us = (double)rush_histogram_percentile(h, 99.0) / NS_PER_US;
    f->p999_us = (double)rush_histogram_percentile(h, 99.9) / NS_PER_US;
    f->max_us = h->count ? (double)h->max / NS_PER_US : 0.0;
    f->mean_us = rush_histogram_mean(h) / NS_PER_US;
}

/* ---- text --------------------------------------------------------------------------------- */

static void print_scenario(const struct rush_report_input *in, FILE *out)
{
    const struct rush_scenario_stats *s = in->scenario;
    switch (in->options->scenario) {
    case RUSH_SCENARIO_MIDNIGHT:
    case RUSH_SCENARIO_ZIPF:
        return;
    case RUSH_SCENARIO_DUPLICATES:
        fprintf(out,
                "  resent       %llu: %llu flagged duplicate with the original answer, "
                "%llu mismatched\n",
                (unsigned long long)s->resends_queued, (unsigned long long)s->resends_matching,
                (unsigned long long)s->resends_mismatched);
        return;
    case RUSH_SCENARIO_PAYMENTS:
        fprintf(out, "  payments     %llu confirms sent, %llu reservations abandoned\n",
                (unsigned long long)s->confirms_queued, (unsigned long long)s->abandoned);
        return;
    case RUSH_SCENARIO_SOCIAL:
        fprintf(out,
                "  social       %llu solo, %llu joins_any (%llu invited), %llu new-user asks, "
                "%llu activity asks (%llu second colours)\n",
                (unsigned long long)s->solo, (unsigned long long)s->group_joins_any,
                (unsigned long long)s->invited, (unsigned long long)s->new_user_asks,
                (unsigned long long)s->activity_asks, (unsigned long long)s->second_colours);
        return;
    case RUSH_SCENARIO_GROUPS:
        fprintf(out, "  groups       %llu opens, %llu joins, %llu joins_any\n",
                (unsigned long long)s->group_opens, (unsigned long long)s->group_joins,
                (unsigned long long)s->group_joins_any);
        return;
    case RUSH_SCENARIO_COUNT_:
        break;
    }
    RUSH_ASSERT(false);
}

static void print_catalog(const struct rush_report_input *in, FILE *out)
{
    struct rush_catalog_totals t;
    rush_catalog_totals(in->catalog, &t);
    fprintf(out, "  skus         %u %s (ids %llu..), stock before %lld available + %lld held\n",
            in->catalog->count, in->catalog->fresh ? "fresh" : "campaign",
            (unsigned long long)in->catalog->skus[0].def.id, (long long)t.available_before,
            (long long)t.held_before);
    fprintf(out, "  skus after   %lld available, %lld reserved, %lld confirmed%s\n",
            (long long)t.available_after, (long long)t.reserved_after, (long long)t.confirmed_after,
            t.unlimited_count ? " (some unlimited)" : "");
}

/* The longest decision gap (report.h), and each shard's when there are several. */
static void print_gaps(const struct rush_report_input *in, FILE *out)
{
    const struct rush_decision_gaps *g = &in->tally->gaps;
    if (g->gap_ns == 0)
        return;
    fprintf(out,
            "  decisions    longest gap %.1f ms on shard %u, from +%.3f s (%llu decided, %llu ok "
            "before it; %llu, %llu after)\n",
            (double)g->gap_ns / NS_PER_MS, g->shard,
            (double)(g->began_ns - in->tally->start_ns) / NS_PER_S,
            (unsigned long long)g->decided_before, (unsigned long long)g->ok_before,
            (unsigned long long)(g->decided[g->shard] - g->decided_before),
            (unsigned long long)(g->ok[g->shard] - g->ok_before));
    if (in->options->shards < 2)
        return;
    fprintf(out, "  gaps ms     ");
    for (uint32_t s = 0; s < in->options->shards && s < RUSH_SHARDS_MAX; s++)
        fprintf(out, " %u:%.1f", s, (double)g->longest_ns[s] / NS_PER_MS);
    fprintf(out, "\n");
}

void rush_report_print(const struct rush_report_input *in, FILE *out)
{
    const struct rush_tally *t = in->tally;
    const struct rush_loadgen_options *o = in->options;
    struct figures f;
    derive(t, &f);
    fprintf(out, "rush-loadgen: scenario %s, %s loop", rush_loadgen_scenario_name(o->scenario),
            rush_loadgen_mode_name(o->mode));
    if (o->mode == RUSH_MODE_OPEN)
        fprintf(out, " at %.0f requests/s (%s)", o->rate_per_s,
                rush_loadgen_arrivals_name(o->arrivals));
    fprintf(out, ", %s, %u connections, batch %u, inflight %u, %u threads, %llu buyers\n",
            o->json ? "JSON" : "binary", o->connections, o->batch, o->inflight, o->threads,
            (unsigned long long)o->buyers);
    fprintf(out, "  offered      %llu requests (%.0f/s)\n", (unsigned long long)t->requests_offered,
            rate(t->requests_offered, f.offered_s));
    fprintf(out, "  sent         %llu requests in %llu messages (%.0f/s over %.3f s)\n",
            (unsigned long long)t->requests_sent, (unsigned long long)t->messages_sent,
            rate(t->requests_sent, f.send_s), f.send_s);
    fprintf(out, "  answered     %llu (%.0f/s over %.3f s), accepted %llu (%.0f/s)\n",
            (unsigned long long)t->requests_answered, rate(t->requests_answered, f.elapsed_s),
            f.elapsed_s, (unsigned long long)f.accepted, rate(f.accepted, f.elapsed_s));
    fprintf(out, "  latency us   p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  mean %.0f\n",
            f.p50_us, f.p90_us, f.p99_us, f.p999_us, f.max_us, f.mean_us);
    fprintf(out, "  outcomes    ");
    for (int i = 0; i < RUSH_OUTCOME_COUNT_; i++)
        if (t->outcomes[i] != 0 || i == RUSH_OK)
            fprintf(out, " %s %llu", rush_outcome_name((enum rush_outcome)i),
                    (unsigned long long)t->outcomes[i]);
    fprintf(out, "\n  duplicates   %llu results flagged duplicate\n",
            (unsigned long long)t->duplicates_flagged);
    print_scenario(in, out);
    print_catalog(in, out);
    fprintf(out, "  cpu          %.2f s of rush-loadgen's threads (%.2f cores)\n",
            (double)t->cpu_ns / NS_PER_S,
            f.elapsed_s > 0 ? (double)t->cpu_ns / NS_PER_S / f.elapsed_s : 0);
    if (t->redirects != 0 || t->redirect_gave_up != 0 || t->timeouts_rerouted != 0 ||
        t->unknown_retried != 0)
        fprintf(out,
                "  redirects    %llu followed (%llu after a wait for a leader), %llu timeouts "
                "sent to the next node, %llu outcome_unknown resent, %llu requests given up\n",
                (unsigned long long)t->redirects, (unsigned long long)t->leader_waits,
                (unsigned long long)t->timeouts_rerouted, (unsigned long long)t->unknown_retried,
                (unsigned long long)t->redirect_gave_up);
    print_gaps(in, out);
    fprintf(
        out,
        "  errors       %llu (timeouts %llu, protocol %llu, send %llu; stale replies %llu)%s%s\n",
        (unsigned long long)f.errors_total, (unsigned long long)t->timeouts,
        (unsigned long long)t->protocol_errors, (unsigned long long)t->send_errors,
        (unsigned long long)t->stale_replies, t->first_error[0] ? ": " : "", t->first_error);
}

/* ---- JSON --------------------------------------------------------------------------------- */

static json_t *outcomes_json(const struct rush_tally *t)
{
    json_t *outcomes = json_object();
    for (int i = 0; i < RUSH_OUTCOME_COUNT_; i++)
        json_object_set_new(outcomes, rush_outcome_name((enum rush_outcome)i),
                            json_integer((json_int_t)t->outcomes[i]));
    return outcomes;
}

static json_t *reasons_json(const struct rush_tally *t)
{
    json_t *reasons = json_object();
    for (int i = 1; i < RUSH_REASON_COUNT_; i++)
        if (t->reasons[i] != 0)
            json_object_set_new(reasons, rush_reason_name((enum rush_reason)i),
                                json_integer((json_int_t)t->reasons[i]));
    return reasons;
}

static json_t *ops_json(const struct rush_tally *t)
{
    json_t *ops = json_object();
    for (int i = 1; i < RUSH_OP_COUNT_; i++)
        if (t->ops_sent[i] != 0)
            json_object_set_new(ops, rush_op_name((enum rush_op)i),
                                json_integer((json_int_t)t->ops_sent[i]));
    return ops;
}

static json_t *catalog_json(const struct rush_catalog *catalog)
{
    struct rush_catalog_totals t;
    rush_catalog_totals(catalog, &t);
    json_t *ids = json_array();
    for (uint32_t i = 0; i < catalog->count && i < CATALOG_IDS_MAX; i++)
        json_array_append_new(ids, json_integer((json_int_t)catalog->skus[i].def.id));
    return json_pack("{s:b, s:I, s:I, s:o, s:I, s:{s:I, s:I}, s:{s:I, s:I, s:I}, s:I, s:I}",
                     "fresh", catalog->fresh, "base_id", (json_int_t)catalog->skus[0].def.id,
                     "count", (json_int_t)catalog->count, "ids", ids, "stock_put",
                     (json_int_t)t.stock_put, "before", "available", (json_int_t)t.available_before,
                     "held", (json_int_t)t.held_before, "after", "available",
                     (json_int_t)t.available_after, "reserved", (json_int_t)t.reserved_after,
                     "confirmed", (json_int_t)t.confirmed_after, "unlimited",
                     (json_int_t)t.unlimited_count, "unknown", (json_int_t)t.unknown_count);
}

static json_t *scenario_json(const struct rush_scenario_stats *s, json_t *root)
{
    json_object_set_new(root, "duplicates",
                        json_pack("{s:I, s:I, s:I}", "resent", (json_int_t)s->resends_queued,
                                  "matching", (json_int_t)s->resends_matching, "mismatched",
                                  (json_int_t)s->resends_mismatched));
    json_object_set_new(root, "payments",
                        json_pack("{s:I, s:I}", "confirms", (json_int_t)s->confirms_queued,
                                  "abandoned", (json_int_t)s->abandoned));
    json_object_set_new(root, "groups",
                        json_pack("{s:I, s:I, s:I}", "opens", (json_int_t)s->group_opens, "joins",
                                  (json_int_t)s->group_joins, "joins_any",
                                  (json_int_t)s->group_joins_any));
    return root;
}

static void set_count(json_t *object, const char *name, uint64_t value)
{
    json_object_set_new(object, name, json_integer((json_int_t)value));
}

static void set_real(json_t *object, const char *name, double value)
{
    json_object_set_new(object, name, json_real(value));
}

static json_t *latency_json(const struct figures *f)
{
    json_t *latency = json_object();
    set_real(latency, "p50", f->p50_us);
    set_real(latency, "p90", f->p90_us);
    set_real(latency, "p99", f->p99_us);
    set_real(latency, "p999", f->p999_us);
    set_real(latency, "max", f->max_us);
    set_real(latency, "mean", f->mean_us);
    return latency;
}

static json_t *errors_json(const struct rush_tally *t, const struct figures *f)
{
    json_t *errors = json_object();
    set_count(errors, "timeouts", t->timeouts);
    set_count(errors, "protocol", t->protocol_errors);
    set_count(errors, "send", t->send_errors);
    set_count(errors, "stale_replies", t->stale_replies);
    set_count(errors, "total", f->errors_total);
    return errors;
}

static json_t *gaps_json(const struct rush_report_input *in)
{
    const struct rush_decision_gaps *g = &in->tally->gaps;
    json_t *per_shard = json_array();
    for (uint32_t s = 0; s < in->options->shards && s < RUSH_SHARDS_MAX; s++)
        json_array_append_new(per_shard, json_real((double)g->longest_ns[s] / NS_PER_MS));
    json_t *gap = json_object();
    set_real(gap, "longest_ms", (double)g->gap_ns / NS_PER_MS);
    set_count(gap, "shard", g->shard);
    set_real(gap, "began_s",
             g->gap_ns > 0 ? (double)(g->began_ns - in->tally->start_ns) / NS_PER_S : 0);
    set_count(gap, "decided_before", g->decided_before);
    set_count(gap, "decided_after", g->decided[g->shard] - g->decided_before);
    set_count(gap, "ok_before", g->ok_before);
    set_count(gap, "ok_after", g->ok[g->shard] - g->ok_before);
    json_object_set_new(gap, "per_shard_ms", per_shard);
    return gap;
}

static json_t *figures_json(const struct rush_report_input *in, const struct figures *f)
{
    const struct rush_tally *t = in->tally;
    json_t *root = json_object();
    set_count(root, "requests_offered", t->requests_offered);
    set_count(root, "requests_sent", t->requests_sent);
    set_count(root, "requests_answered", t->requests_answered);
    set_count(root, "requests_accepted", f->accepted);
    set_count(root, "messages_sent", t->messages_sent);
    set_count(root, "messages_answered", t->messages_answered);
    set_real(root, "elapsed_s", f->elapsed_s);
    set_real(root, "send_s", f->send_s);
    set_real(root, "offered_per_s", rate(t->requests_offered, f->offered_s));
    set_real(root, "sent_rate_per_s", rate(t->requests_sent, f->send_s));
    set_real(root, "throughput_per_s", rate(t->requests_answered, f->elapsed_s));
    set_real(root, "accepted_per_s", rate(f->accepted, f->elapsed_s));
    json_object_set_new(root, "latency_us", latency_json(f));
    set_count(root, "duplicates_flagged", t->duplicates_flagged);
    json_object_set_new(root, "errors", errors_json(t, f));
    set_count(root, "arrivals_idle", t->arrivals_idle);
    set_count(root, "ledger_full", t->ledger_full);
    set_real(root, "cpu_s", (double)t->cpu_ns / NS_PER_S);
    set_real(root, "cpu_cores", f->elapsed_s > 0 ? (double)t->cpu_ns / NS_PER_S / f->elapsed_s : 0);
    json_object_set_new(root, "redirects",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "followed", (json_int_t)t->redirects,
                                  "leader_waits", (json_int_t)t->leader_waits, "gave_up",
                                  (json_int_t)t->redirect_gave_up, "rerouted",
                                  (json_int_t)t->timeouts_rerouted, "unknown_retried",
                                  (json_int_t)t->unknown_retried));
    json_object_set_new(root, "decision_gap", gaps_json(in));
    return root;
}

int rush_report_write_json(const struct rush_report_input *in, const char *path)
{
    const struct rush_loadgen_options *o = in->options;
    struct figures f;
    derive(in->tally, &f);
    json_t *root = figures_json(in, &f);
    if (root == NULL)
        return -ENOMEM;
    json_object_set_new(root, "scenario", json_string(rush_loadgen_scenario_name(o->scenario)));
    json_object_set_new(root, "mode", json_string(rush_loadgen_mode_name(o->mode)));
    json_object_set_new(root, "arrivals",
                        o->mode == RUSH_MODE_OPEN
                            ? json_string(rush_loadgen_arrivals_name(o->arrivals))
                            : json_null());
    json_object_set_new(root, "offered_rate",
                        o->mode == RUSH_MODE_OPEN ? json_real(o->rate_per_s) : json_null());
    json_object_set_new(root, "connections", json_integer(o->connections));
    json_object_set_new(root, "batch", json_integer(o->batch));
    json_object_set_new(root, "inflight", json_integer(o->inflight));
    json_object_set_new(root, "threads", json_integer(o->threads));
    json_object_set_new(root, "protocol", json_string(o->json ? "json" : "binary"));
    json_object_set_new(root, "nodes", json_integer(o->node_count > 0 ? o->node_count : 1));
    json_object_set_new(root, "buyers", json_integer((json_int_t)o->buyers));
    json_object_set_new(root, "skus", json_integer(o->skus));
    json_object_set_new(root, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(root, "outcomes", outcomes_json(in->tally));
    json_object_set_new(root, "invalid_reasons", reasons_json(in->tally));
    json_object_set_new(root, "ops_sent", ops_json(in->tally));
    json_object_set_new(root, "catalog", catalog_json(in->catalog));
    json_object_set_new(root, "ledger",
                        json_pack("{s:I, s:I}", "entries", (json_int_t)in->ledger->count,
                                  "capacity", (json_int_t)in->ledger->capacity));
    json_object_set_new(root, "first_error", json_string(in->tally->first_error));
    scenario_json(in->scenario, root);
    errno = 0;
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 ? 0
             : errno != 0                                                     ? -errno
                                                                              : -EIO;
    json_decref(root);
    return rc;
}
