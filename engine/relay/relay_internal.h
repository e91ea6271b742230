/*
 * relay_internal.h — what the relay's sinks share with its loop (relay.h): one message form and
 * a handler table per sink, so that relay.c calls the sinks and they never call back into it.
 *
 * A sink's life: open (connect, and find per shard the last seq it holds) -> publish ... with
 * serve between (deliver the library's acknowledgements, report a sticky failure) -> flush ->
 * close. A failure is sticky: once serve, publish or flush returned an error, every later call
 * returns it. Only the relay's thread calls a sink; a sink's own callbacks may run on its
 * library's threads and touch only its counters and its sticky error (under the sink's lock).
 */
#ifndef RUSH_RELAY_INTERNAL_H
#define RUSH_RELAY_INTERNAL_H

#include <nats/nats.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/stream_json.h"
#include "relay/relay.h"

#define RELAY_WHY_BYTES 256
#define RELAY_OPEN_TIMEOUT_MS 10000 /* one sink's metadata or last-message look-up */

/* One event in the form every sink sends. Text fields are NUL-terminated. */
struct relay_message {
    const struct rush_stream_event *event;
    char key[32];     /* order id, "group:ID" or "sku:ID" */
    char shard[4];    /* decimal */
    char seq[24];     /* decimal */
    char msg_id[32];  /* "shard:seq" */
    const char *type; /* rush_event_type_name */
    size_t json_len;
    char json[RUSH_STREAM_JSON_BYTES_MAX + 1];
};

struct relay_sink_ops {
    const char *name;
    /*
     * Connects and fills held_seq[0 .. shards): the last seq of each shard the sink holds (0:
     * none). 0, or a negative code with why; *state is set on success only.
     */
    int (*open)(void **state, const struct rush_relay_config *config, uint32_t shards,
                uint64_t *held_seq, char *why, size_t why_size);
    /* Hands one message over (copied). 0 or the sticky error. */
    int (*publish)(void *state, const struct relay_message *message, char *why, size_t why_size);
    /* Delivers acknowledgements, waiting up to timeout_ms for one. 0 or the sticky error. */
    int (*serve)(void *state, int timeout_ms, char *why, size_t why_size);
    /* Messages handed over and not yet acknowledged. */
    uint64_t (*inflight)(void *state);
    /* Waits up to timeout_ms until nothing is in flight. 0, RUSH_ETIMEDOUT or the sticky error. */
    int (*flush)(void *state, int timeout_ms, char *why, size_t why_size);
    void (*close)(void *state, struct rush_relay_stats *stats);
};

/*
 * Where the events come from: rushd's stream (stream_source.c, librush's subscriber) or the
 * cluster's replicated log on JetStream (log_source.c). Both give each shard's events with the
 * stream's seqs, consecutively from the seq start() names, the same bytes for the same log.
 * Only the relay's thread calls a source.
 */
struct relay_source_ops {
    const char *name;
    /* Connects. 0, or a negative code with why; *state is set on success only. */
    int (*open)(void **state, const struct rush_relay_config *config, char *why, size_t why_size);
    /* The shard count: configured or learnt; waits (until *stopping) for what it asks. */
    int (*shards)(void *state, volatile sig_atomic_t *stopping, uint32_t *shards, char *why,
                  size_t why_size);
    /* Starts each shard after delivered_seq[shard] (0: from seq 1). 0 or an error with why. */
    int (*start)(void *state, const uint64_t *delivered_seq, uint32_t shards, char *why,
                 size_t why_size);
    /*
     * Up to max events, waiting up to timeout_ms for the first: the count (0: none yet), or a
     * negative code with why when the relay must stop (a passing fault is retried inside).
     */
    int (*poll)(void *state, struct rush_stream_event *events, uint32_t max, int timeout_ms,
                char *why, size_t why_size);
    void (*close)(void *state);
};

/* Connects to the comma-separated NATS servers `urls`. 0, or a negative code with why. */
RUSH_MUST_USE int relay_nats_connect(const char *urls, natsConnection **out, char *why,
                                     size_t why_size);

extern const struct relay_source_ops relay_stream_source;
extern const struct relay_source_ops relay_log_source;

extern const struct relay_sink_ops relay_kafka_sink;
extern const struct relay_sink_ops relay_jetstream_sink;

#endif
