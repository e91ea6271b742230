/*
 * relay.h — rush-relay: the confirmed-order stream (rush/stream.h) published to Kafka and/or a
 * NATS JetStream stream, each event once per (shard, seq) for a consumer that dedups on that pair
 * (ARCHITECTURE.md, "The relay").
 *
 * What it does. An outside stage: it reads the confirmed-order stream from one of two sources
 * (below) and hands every event to each configured sink:
 *   - Kafka (librdkafka): an idempotent producer (enable.idempotence, acks=all, gapless
 *     guarantee), partition = the event's shard (the topic needs at least one partition per
 *     shard), key = the order id (a group event: "group:ID"; an admin event: "sku:ID"), headers
 *     shard, seq and type, value = the event as JSON (codec/stream_json.h).
 *   - JetStream (libnats): subject SUBJECT.<shard> in stream NAME (created when missing, with
 *     subjects SUBJECT.> and a duplicate window), header Nats-Msg-Id = "shard:seq" so that the
 *     server drops a copy inside its duplicate window, headers Rush-Shard, Rush-Seq and
 *     Rush-Type, the same JSON as data.
 *
 * Sources. Both give each shard's events with the stream's seqs, the same bytes for the same
 * log, so a consumer cannot tell which one the relay used:
 *   - one rushd's stream (default): librush's subscriber on its PUB and replay endpoints. If
 *     that rushd dies the relay waits for it.
 *   - a cluster's replicated log (cluster_nats + cluster_stream; log_source.c): an ordered
 *     JetStream consumer on <stream>.shard.* (rush/replicated.h), the order of record itself, so
 *     no node's death stops the relay, and only what JetStream stored (acknowledged to a quorum)
 *     is read: a fenced leader's unacknowledged batches never reach a sink. Each record is
 *     checked (codec/replicated.c: a malformed message, a gap or a subject that no longer starts
 *     at lsn 1 stops the relay) and numbered by the publisher's rule (rush_stream_batch_*,
 *     rush/stream.h): the carried events counted from lsn 1. The records carry no seq_before,
 *     so every start reads each subject from its first message and passes over what the sinks
 *     hold (a restart costs a read of the whole log: README "Figures").
 *
 * Resume (the relay keeps no file). At start it asks each sink for the last (shard, seq) it
 * holds: Kafka the last message of partition `shard` (its headers), JetStream the last message of
 * subject SUBJECT.<shard>. It reads from the smallest of those plus one and gives each sink
 * only the events after its own. Within a partition or subject the events are stored in seq order
 * (one producer, in order; a JetStream publish that failed is resent before it can be passed
 * over), so the last message is the highest seq held and everything before it is held: nothing
 * is skipped. A range rushd no longer serves (TOO_OLD), or a replicated log that lost its start,
 * stops the relay with an error: it never skips one.
 *
 * Duplicates. Kafka's idempotence covers the retries of one producer session; messages in flight
 * when the relay dies may be stored after the restarted relay read the partition's end, and are
 * then sent again: Kafka may hold a (shard, seq) twice. JetStream drops such a copy when it comes
 * within the stream's duplicate window. A consumer that dedups on (shard, seq) sees each event
 * once.
 *
 * Memory. At most inflight_max messages per sink are handed over and not yet acknowledged; when a
 * sink has that many the relay stops reading the stream (rushd's publisher keeps the events; the
 * subscriber replays what PUB dropped meanwhile; JetStream's flow control holds the log source's
 * consumer back).
 *
 * Threads: the caller's thread runs everything; librdkafka and libnats run their own I/O threads
 * (JetStream acknowledgements arrive on one of them; the log source's messages are queued by
 * one).
 */
#ifndef RUSH_RELAY_H
#define RUSH_RELAY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "rush/subscriber.h"

#define RUSH_RELAY_TOPIC_DEFAULT "rush.confirmed"
#define RUSH_RELAY_JS_STREAM_DEFAULT "RUSH_CONFIRMED"
#define RUSH_RELAY_JS_SUBJECT_DEFAULT "rush.confirmed"
#define RUSH_RELAY_NAME_BYTES_MAX 200              /* a topic, stream or subject prefix */
#define RUSH_RELAY_INFLIGHT_DEFAULT 10000u         /* messages per sink not yet acknowledged */
#define RUSH_RELAY_INFLIGHT_MAX 1000000u           /* about 1 GB of queued messages at most */
#define RUSH_RELAY_DUPLICATE_WINDOW_S_DEFAULT 120u /* JetStream's own default: two minutes */
#define RUSH_RELAY_DUPLICATE_WINDOW_S_MAX 604800u  /* one week */
#define RUSH_RELAY_FLUSH_MS_DEFAULT 10000u         /* at stop: wait for the acknowledgements */
#define RUSH_RELAY_TIMEOUT_MS_MAX 3600000u         /* one hour */
#define RUSH_RELAY_BATCH_MAX 1024u                 /* events taken from the stream at once */

/*
 * Configuration. Start from rush_relay_config_default(). At least one sink: kafka_brokers
 * and/or nats_urls (NULL: that sink is off).
 *   stream         rushd's PUB and replay endpoints and the subscriber's knobs (skip_lost must
 *                  stay false)
 *   cluster_nats, cluster_stream
 *                  both set: read the replicated log (see "Sources") instead of `stream`
 *   shards         0: rushd's (asked at start through replay INFO); else it must be rushd's;
 *                  required with the log source
 *   inflight_max   1 .. RUSH_RELAY_INFLIGHT_MAX
 *   flush_ms       at stop, how long to wait for the sinks' acknowledgements
 *   idle_exit_ms   0: run until a signal; else stop (and flush) after that long without an event
 */
struct rush_relay_config {
    struct rush_subscriber_config stream;
    const char *cluster_nats;   /* the log source: the cluster's NATS servers (NULL: off) */
    const char *cluster_stream; /* ... and its stream (rushd's [cluster] stream) */
    const char *kafka_brokers;
    const char *kafka_topic;
    const char *nats_urls;
    const char *js_stream;
    const char *js_subject;
    uint32_t js_duplicate_window_s;
    uint32_t shards;
    uint32_t inflight_max;
    uint32_t flush_ms;
    uint32_t idle_exit_ms;
};

/* What a run did. */
struct rush_relay_stats {
    uint64_t events_read;                 /* events the subscriber delivered */
    uint64_t kafka_published;             /* messages handed to librdkafka */
    uint64_t jetstream_published;         /* messages handed to libnats */
    uint64_t jetstream_duplicates;        /* acknowledged as duplicates by JetStream */
    uint64_t jetstream_resends;           /* publishes sent again after an error */
    uint64_t backpressure_waits;          /* times a full sink stopped the reading */
    uint64_t resume_seq[RUSH_SHARDS_MAX]; /* per shard: the first seq asked of rushd */
    uint32_t shards;
    double seconds; /* busy: first event read to the last, plus the final flush */
};

void rush_relay_config_default(struct rush_relay_config *config);

/* 0, or RUSH_ECONFIG with the reason in why[0 .. why_size). */
RUSH_MUST_USE int rush_relay_config_check(const struct rush_relay_config *config, char *why,
                                          size_t why_size);

/*
 * Runs the relay until *stopping becomes non-zero (a signal handler sets it), idle_exit_ms
 * passes without an event, or an error; then waits up to flush_ms for the sinks. Returns 0 when
 * it stopped and every handed-over message was acknowledged; else a negative code with the
 * reason in why (a sink refused or failed, rushd lost a range, the flush ran out of time).
 * `stats` (may be NULL) gets what it did.
 */
RUSH_MUST_USE int rush_relay_run(const struct rush_relay_config *config,
                                 volatile sig_atomic_t *stopping, struct rush_relay_stats *stats,
                                 char *why, size_t why_size);

#endif
