/*
 * relay.c — rush-relay's loop (relay.h): resume from what the sinks hold, then read the source
 * (rushd's stream, or a cluster's replicated log: relay_source_ops) and hand each event to every
 * sink that does not hold it yet, within the in-flight bound.
 *
 * States:
 *
 *     start --(open the source; shard count: configured, or rushd's INFO)--> open sinks
 *     --(held seqs)--> resume (source starts at min held + 1 per shard) --> relaying <-->
 *     waiting (a sink is full)
 *     relaying --(signal, idle_exit_ms, error)--> flushing --> closed
 *
 * Invariants:
 *   1. Per sink and shard, held[sink][shard] is the highest seq the sink holds or was handed;
 *      an event is handed to a sink only when its seq is held + 1 (the source delivers each
 *      shard's seqs consecutively from where it started, the smallest held + 1).
 *   2. No sink ever has more than inflight_max messages handed over and not acknowledged.
 *   3. A lost range (the subscriber's -ENODATA, a replicated log's gap) or a sink's failure
 *      stops the relay: an event is never passed over.
 */
#include "relay/relay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "relay/relay_internal.h"
#include "rush/assert.h"

#define RELAY_SINKS_MAX 2
#define RELAY_POLL_MS 100     /* a poll slice: how soon a signal or idleness is seen */
#define RELAY_WAIT_MS 10      /* a full sink: how long one wait for acknowledgements is */
#define RELAY_REPORT_MS 10000 /* a progress line this often */

struct relay_sink {
    const struct relay_sink_ops *ops;
    void *state;
    uint64_t held[RUSH_SHARDS_MAX];
};

struct relay {
    const struct rush_relay_config *config;
    const struct relay_source_ops *source;
    void *source_state;
    struct relay_sink sinks[RELAY_SINKS_MAX];
    uint32_t sink_count;
    uint32_t shards;
    struct rush_relay_stats *stats;
    struct rush_stream_json_audit audits[RUSH_SHARDS_MAX];
    struct relay_message message;
    int64_t first_event_ns; /* 0: none yet */
    int64_t last_event_ns;
    char *why;
    size_t why_size;
};

void rush_relay_config_default(struct rush_relay_config *config)
{
    *config = (struct rush_relay_config){
        .kafka_topic = RUSH_RELAY_TOPIC_DEFAULT,
        .js_stream = RUSH_RELAY_JS_STREAM_DEFAULT,
        .js_subject = RUSH_RELAY_JS_SUBJECT_DEFAULT,
        .js_duplicate_window_s = RUSH_RELAY_DUPLICATE_WINDOW_S_DEFAULT,
        .inflight_max = RUSH_RELAY_INFLIGHT_DEFAULT,
        .flush_ms = RUSH_RELAY_FLUSH_MS_DEFAULT,
    };
    rush_subscriber_config_default(&config->stream);
}

static int check_name(const char *what, const char *name, char *why, size_t why_size)
{
    size_t len = name != NULL ? strlen(name) : 0;
    if (len == 0 || len >= RUSH_RELAY_NAME_BYTES_MAX || strpbrk(name, " \t*>") != NULL) {
        snprintf(why, why_size, "%s '%s' must be 1..%d bytes without spaces, '*' or '>'", what,
                 name != NULL ? name : "", RUSH_RELAY_NAME_BYTES_MAX - 1);
        return RUSH_ECONFIG;
    }
    return 0;
}

int rush_relay_config_check(const struct rush_relay_config *config, char *why, size_t why_size)
{
    RUSH_ASSERT(config != NULL);
    int rc = rush_subscriber_config_check(&config->stream, why, why_size);
    if (rc == 0 && config->stream.skip_lost)
        rc = (snprintf(why, why_size, "the relay never skips a lost range"), RUSH_ECONFIG);
    if (rc == 0 && (config->cluster_nats == NULL) != (config->cluster_stream == NULL))
        rc = (snprintf(why, why_size,
                       "the log source needs both --cluster-nats and "
                       "--cluster-stream"),
              RUSH_ECONFIG);
    if (rc == 0 && config->cluster_stream != NULL)
        rc = check_name("the cluster stream", config->cluster_stream, why, why_size);
    if (rc == 0 && config->cluster_stream != NULL && config->shards == 0)
        rc = (snprintf(why, why_size, "the log source needs --shards (the cluster's count)"),
              RUSH_ECONFIG);
    if (rc == 0 && config->kafka_brokers == NULL && config->nats_urls == NULL)
        rc = (snprintf(why, why_size, "no sink: give --kafka BROKERS and/or --nats URLS"),
              RUSH_ECONFIG);
    if (rc == 0 && config->kafka_brokers != NULL)
        rc = check_name("the Kafka topic", config->kafka_topic, why, why_size);
    if (rc == 0 && config->nats_urls != NULL)
        rc = check_name("the JetStream stream", config->js_stream, why, why_size);
    if (rc == 0 && config->nats_urls != NULL)
        rc = check_name("the JetStream subject prefix", config->js_subject, why, why_size);
    if (rc == 0 && (config->js_duplicate_window_s == 0 ||
                    config->js_duplicate_window_s > RUSH_RELAY_DUPLICATE_WINDOW_S_MAX))
        rc = (snprintf(why, why_size, "duplicate window %" PRIu32 " s is out of range 1..%u",
                       config->js_duplicate_window_s, RUSH_RELAY_DUPLICATE_WINDOW_S_MAX),
              RUSH_ECONFIG);
    if (rc == 0 && config->shards > RUSH_SHARDS_MAX)
        rc = (snprintf(why, why_size, "shards %" PRIu32 " is over %d", config->shards,
                       RUSH_SHARDS_MAX),
              RUSH_ECONFIG);
    if (rc == 0 && (config->inflight_max == 0 || config->inflight_max > RUSH_RELAY_INFLIGHT_MAX))
        rc = (snprintf(why, why_size, "in-flight limit %" PRIu32 " is out of range 1..%u",
                       config->inflight_max, RUSH_RELAY_INFLIGHT_MAX),
              RUSH_ECONFIG);
    if (rc == 0 && (config->flush_ms > RUSH_RELAY_TIMEOUT_MS_MAX ||
                    config->idle_exit_ms > RUSH_RELAY_TIMEOUT_MS_MAX))
        rc = (snprintf(why, why_size, "flush and idle times are at most %u ms",
                       RUSH_RELAY_TIMEOUT_MS_MAX),
              RUSH_ECONFIG);
    return rc;
}

/* The shard count: configured, or the source's (rushd's INFO). */
static int relay_shards(struct relay *relay, volatile sig_atomic_t *stopping)
{
    if (relay->config->shards != 0) {
        relay->shards = relay->config->shards;
        return 0;
    }
    return relay->source->shards(relay->source_state, stopping, &relay->shards, relay->why,
                                 relay->why_size);
}

static int relay_open_sinks(struct relay *relay)
{
    const struct rush_relay_config *config = relay->config;
    if (config->kafka_brokers != NULL)
        relay->sinks[relay->sink_count++].ops = &relay_kafka_sink;
    if (config->nats_urls != NULL)
        relay->sinks[relay->sink_count++].ops = &relay_jetstream_sink;
    for (uint32_t i = 0; i < relay->sink_count; i++) {
        struct relay_sink *sink = &relay->sinks[i];
        int rc = sink->ops->open(&sink->state, config, relay->shards, sink->held, relay->why,
                                 relay->why_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The cursor: per shard, the smallest seq any sink holds. */
static int relay_resume(struct relay *relay)
{
    uint64_t delivered_seq[RUSH_SHARDS_MAX] = {0};
    for (uint32_t shard = 0; shard < relay->shards; shard++) {
        uint64_t low = UINT64_MAX;
        for (uint32_t i = 0; i < relay->sink_count; i++) {
            const struct relay_sink *sink = &relay->sinks[i];
            low = sink->held[shard] < low ? sink->held[shard] : low;
            rush_log(RUSH_LOG_INFO, "relay: shard %" PRIu32 ": %s holds up to seq %" PRIu64, shard,
                     sink->ops->name, sink->held[shard]);
        }
        delivered_seq[shard] = low;
        relay->stats->resume_seq[shard] = low + 1;
    }
    relay->stats->shards = relay->shards;
    return relay->source->start(relay->source_state, delivered_seq, relay->shards, relay->why,
                                relay->why_size);
}

/* Key, headers and JSON of one event, in relay->message. */
static void relay_message_fill(struct relay *relay, const struct rush_stream_event *event)
{
    struct relay_message *m = &relay->message;
    m->event = event;
    if (event->type == RUSH_EV_ADMIN_AUDIT || event->type == RUSH_EV_AUDIT_PART)
        snprintf(m->key, sizeof m->key, "sku:%" PRIu64,
                 event->type == RUSH_EV_ADMIN_AUDIT ? event->sku_id : 0);
    else if (event->order_id != 0)
        snprintf(m->key, sizeof m->key, "%" PRIu64, event->order_id);
    else
        snprintf(m->key, sizeof m->key, "group:%" PRIu64, event->group_id);
    snprintf(m->shard, sizeof m->shard, "%u", event->shard);
    snprintf(m->seq, sizeof m->seq, "%" PRIu64, event->seq);
    snprintf(m->msg_id, sizeof m->msg_id, "%u:%" PRIu64, event->shard, event->seq);
    m->type = rush_event_type_name(event->type);
    m->json_len =
        rush_stream_event_json(&relay->audits[event->shard], event, m->json, sizeof m->json);
}

static int relay_hand_over(struct relay *relay, const struct rush_stream_event *events, int count)
{
    for (int e = 0; e < count; e++) {
        const struct rush_stream_event *event = &events[e];
        RUSH_ASSERT(event->shard < relay->shards);
        relay_message_fill(relay, event);
        for (uint32_t i = 0; i < relay->sink_count; i++) {
            struct relay_sink *sink = &relay->sinks[i];
            if (event->seq <= sink->held[event->shard])
                continue; /* this sink has it already (it was ahead of the other) */
            RUSH_ASSERT(event->seq == sink->held[event->shard] + 1); /* invariant 1 */
            int rc = sink->ops->publish(sink->state, &relay->message, relay->why, relay->why_size);
            if (rc != 0)
                return rc;
            sink->held[event->shard] = event->seq;
        }
    }
    relay->stats->events_read += (uint64_t)count;
    return 0;
}

/* Room for how many more messages: the fullest sink's. Serves the sinks first. */
static int relay_room(struct relay *relay, int wait_ms, uint32_t *room)
{
    *room = relay->config->inflight_max;
    for (uint32_t i = 0; i < relay->sink_count; i++) {
        struct relay_sink *sink = &relay->sinks[i];
        int rc = sink->ops->serve(sink->state, wait_ms, relay->why, relay->why_size);
        if (rc != 0)
            return rc;
        uint64_t inflight = sink->ops->inflight(sink->state);
        RUSH_ASSERT(inflight <= relay->config->inflight_max); /* invariant 2 */
        uint64_t left = relay->config->inflight_max - inflight;
        *room = left < *room ? (uint32_t)left : *room;
    }
    return 0;
}

static void relay_report(const struct relay *relay, double seconds)
{
    rush_log(RUSH_LOG_INFO, "relay: %" PRIu64 " events in %.1f s (%.0f/s)",
             relay->stats->events_read, seconds,
             seconds > 0 ? (double)relay->stats->events_read / seconds : 0.0);
}

/* Reads and hands over until a signal, idleness or an error. */
static int relay_follow(struct relay *relay, volatile sig_atomic_t *stopping)
{
    static struct rush_stream_event events[RUSH_RELAY_BATCH_MAX];
    int64_t last_event_ms = rush_clock_monotonic_ms(), last_report_ms = last_event_ms;
    int rc = 0;
    while (rc == 0 && !*stopping) { /* ends by signal, idle time or error */
        uint32_t room = 0;
        rc = relay_room(relay, 0, &room);
        if (rc == 0 && room == 0) {
            relay->stats->backpressure_waits++;
            rc = relay_room(relay, RELAY_WAIT_MS, &room);
            continue;
        }
        uint32_t max = room < RUSH_RELAY_BATCH_MAX ? room : RUSH_RELAY_BATCH_MAX;
        int n = rc == 0 ? relay->source->poll(relay->source_state, events, max, RELAY_POLL_MS,
                                              relay->why, relay->why_size)
                        : 0;
        rc = n < 0 ? n : rc;
        if (n > 0) {
            if (relay->first_event_ns == 0)
                relay->first_event_ns = rush_clock_monotonic_ns();
            relay->last_event_ns = rush_clock_monotonic_ns();
            last_event_ms = relay->last_event_ns / 1000000;
            rc = relay_hand_over(relay, events, n);
        }
        int64_t now_ms = rush_clock_monotonic_ms();
        if (now_ms - last_report_ms >= RELAY_REPORT_MS && relay->first_event_ns != 0) {
            relay_report(relay, (double)(rush_clock_monotonic_ns() - relay->first_event_ns) / 1e9);
            last_report_ms = now_ms;
        }
        if (relay->config->idle_exit_ms != 0 &&
            now_ms - last_event_ms >= (int64_t)relay->config->idle_exit_ms)
            break;
    }
    return rc;
}

static int relay_flush(struct relay *relay)
{
    int rc = 0;
    for (uint32_t i = 0; i < relay->sink_count; i++) {
        struct relay_sink *sink = &relay->sinks[i];
        int flushed = sink->state != NULL
                          ? sink->ops->flush(sink->state, (int)relay->config->flush_ms, relay->why,
                                             relay->why_size)
                          : 0;
        rc = rc == 0 ? flushed : rc;
    }
    return rc;
}

int rush_relay_run(const struct rush_relay_config *config, volatile sig_atomic_t *stopping,
                   struct rush_relay_stats *stats, char *why, size_t why_size)
{
    RUSH_ASSERT(config != NULL && stopping != NULL && why != NULL);
    static struct relay relay; /* one relay per process: its message buffer is large */
    struct rush_relay_stats local_stats;
    relay = (struct relay){.config = config, .why = why, .why_size = why_size};
    relay.stats = stats != NULL ? stats : &local_stats;
    *relay.stats = (struct rush_relay_stats){0};
    int rc = rush_relay_config_check(config, why, why_size);
    relay.source = config->cluster_stream != NULL ? &relay_log_source : &relay_stream_source;
    if (rc == 0)
        rc = relay.source->open(&relay.source_state, config, why, why_size);
    rc = rc == 0 ? relay_shards(&relay, stopping) : rc;
    rc = rc == 0 ? relay_open_sinks(&relay) : rc;
    rc = rc == 0 ? relay_resume(&relay) : rc;
    rc = rc == 0 ? relay_follow(&relay, stopping) : rc;
    int64_t flush_ns = rush_clock_monotonic_ns();
    int flushed = relay_flush(&relay); /* what was handed over reaches the sinks, error or not */
    rc = rc == 0 ? flushed : rc;
    if (relay.first_event_ns != 0) /* busy time: first to last event, and the final flush */
        relay.stats->seconds = (double)(relay.last_event_ns - relay.first_event_ns +
                                        rush_clock_monotonic_ns() - flush_ns) /
                               1e9;
    relay_report(&relay, relay.stats->seconds);
    for (uint32_t i = 0; i < relay.sink_count; i++)
        relay.sinks[i].ops->close(relay.sinks[i].state, relay.stats);
    if (relay.source_state != NULL)
        relay.source->close(relay.source_state);
    return rc;
}
