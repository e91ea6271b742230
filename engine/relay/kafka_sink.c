/*
 * kafka_sink.c — the relay's Kafka sink (relay.h): librdkafka's idempotent producer, one
 * partition per shard, and the resume look-up that reads each partition's last message.
 *
 * Why partition = shard. The resume rule needs "the last message of a shard" to be cheap and
 * exact: with one shard per partition it is the partition's last offset, and an idempotent
 * producer keeps a partition's messages in the order they were produced (seq order) without
 * gaps (enable.gapless.guarantee turns a possible gap into a fatal error instead). Consumers
 * still get the order id as the key.
 *
 * Counters: published counts messages handed to producev, delivered counts delivery reports; the
 * reports run inside rd_kafka_poll/rd_kafka_flush on the relay's thread, so no lock is needed.
 */
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/number.h"
#include "relay/relay_internal.h"
#include "rush/assert.h"

#define KAFKA_QUEUE_FULL_TRIES_MAX 1000 /* 10 ms polls: 10 s of a full local queue */
#define KAFKA_LINGER_MS "5"

struct kafka_sink {
    rd_kafka_t *producer;
    const char *topic;
    uint64_t published;
    uint64_t delivered;
    int error; /* sticky: 0 or a negative code */
    char why[RELAY_WHY_BYTES];
};

static void kafka_fail(struct kafka_sink *sink, const char *what, const char *detail)
{
    if (sink->error != 0)
        return;
    sink->error = -EIO;
    snprintf(sink->why, sizeof sink->why, "kafka: %s: %s", what, detail);
}

static void kafka_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque)
{
    (void)rk;
    struct kafka_sink *sink = opaque;
    sink->delivered++;
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR)
        kafka_fail(sink, "a message was not delivered", rd_kafka_err2str(message->err));
}

static void kafka_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_sink *sink = opaque;
    if (err != RD_KAFKA_RESP_ERR__FATAL) {
        rush_log(RUSH_LOG_WARN, "relay: kafka: %s (librdkafka retries)", reason);
        return;
    }
    char text[RELAY_WHY_BYTES / 2];
    rd_kafka_fatal_error(rk, text, sizeof text);
    kafka_fail(sink, "fatal producer error", text);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *why,
                    size_t why_size)
{
    char text[RELAY_WHY_BYTES];
    if (rd_kafka_conf_set(conf, name, value, text, sizeof text) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(why, why_size, "kafka: %s=%s: %s", name, value, text);
    return RUSH_ECONFIG;
}

/* A handle on the brokers: the producer (with the sink's callbacks) or a plain consumer. */
static rd_kafka_t *kafka_handle(const struct rush_relay_config *config, struct kafka_sink *sink,
                                rd_kafka_type_t type, char *why, size_t why_size)
{
    char queue[16];
    snprintf(queue, sizeof queue, "%" PRIu32, config->inflight_max + 1000);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = conf_set(conf, "bootstrap.servers", config->kafka_brokers, why, why_size);
    if (rc == 0 && type == RD_KAFKA_PRODUCER) {
        const char *settings[][2] = {
            {"enable.idempotence", "true"},          {"acks", "all"},
            {"enable.gapless.guarantee", "true"},    {"linger.ms", KAFKA_LINGER_MS},
            {"queue.buffering.max.messages", queue},
        };
        for (size_t i = 0; rc == 0 && i < sizeof settings / sizeof settings[0]; i++)
            rc = conf_set(conf, settings[i][0], settings[i][1], why, why_size);
        rd_kafka_conf_set_opaque(conf, sink);
        rd_kafka_conf_set_dr_msg_cb(conf, kafka_on_delivery);
        rd_kafka_conf_set_error_cb(conf, kafka_on_error);
    }
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char text[RELAY_WHY_BYTES];
    rd_kafka_t *rk = rd_kafka_new(type, conf, text, sizeof text); /* takes conf on success */
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        snprintf(why, why_size, "kafka: %s", text);
    }
    return rk;
}

/* The topic's partition count: 0 and a reason when it is missing or has too few. */
static int kafka_partitions(rd_kafka_t *rk, const char *topic, uint32_t shards, char *why,
                            size_t why_size)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *metadata = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &metadata, RELAY_OPEN_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, why_size, "kafka: no metadata for topic %s: %s", topic,
                 rd_kafka_err2str(err));
        return -EIO;
    }
    int rc = 0;
    if (metadata->topic_cnt != 1 || metadata->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(
            why, why_size,
            "kafka: topic %s: %s (create it with at least %" PRIu32 " partitions, one per shard)",
            topic, metadata->topic_cnt == 1 ? rd_kafka_err2str(metadata->topics[0].err) : "missing",
            shards);
        rc = RUSH_ECONFIG;
    } else if ((uint32_t)metadata->topics[0].partition_cnt < shards) {
        snprintf(why, why_size,
                 "kafka: topic %s has %d partitions; the relay needs one per shard"
                 " (%" PRIu32 ")",
                 topic, metadata->topics[0].partition_cnt, shards);
        rc = RUSH_ECONFIG;
    }
    rd_kafka_metadata_destroy(metadata);
    return rc;
}

/* A header's decimal value. */
static int kafka_header_u64(const rd_kafka_message_t *message, const char *name, uint64_t *out)
{
    rd_kafka_headers_t *headers = NULL;
    const void *value = NULL;
    size_t size = 0;
    if (rd_kafka_message_headers(message, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        value == NULL)
        return RUSH_EPROTO;
    return rush_number_parse_u64(value, size, 0, UINT64_MAX, out, NULL, 0);
}

/* The message at `offset` of the partition (the legacy simple consumer: no group needed). */
static int kafka_read_seq(rd_kafka_topic_t *rkt, uint32_t shard, int64_t offset, uint64_t *seq,
                          char *why, size_t why_size)
{
    if (rd_kafka_consume_start(rkt, (int32_t)shard, offset) != 0) {
        snprintf(why, why_size, "kafka: cannot read partition %" PRIu32 ": %s", shard,
                 rd_kafka_err2str(rd_kafka_last_error()));
        return -EIO;
    }
    int rc = RUSH_ETIMEDOUT;
    snprintf(why, why_size,
             "kafka: partition %" PRIu32 " offset %" PRId64 " did not arrive in %d ms", shard,
             offset, RELAY_OPEN_TIMEOUT_MS);
    rd_kafka_message_t *message = rd_kafka_consume(rkt, (int32_t)shard, RELAY_OPEN_TIMEOUT_MS);
    if (message != NULL && message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        uint64_t header_shard = 0;
        rc = kafka_header_u64(message, "shard", &header_shard);
        rc = rc == 0 ? kafka_header_u64(message, "seq", seq) : rc;
        if (rc != 0 || header_shard != shard) {
            snprintf(why, why_size,
                     "kafka: partition %" PRIu32 " offset %" PRId64 " has no shard %" PRIu32
                     " and seq headers (written by someone else?)",
                     shard, offset, shard);
            rc = RUSH_EPROTO;
        }
    } else if (message != NULL) {
        snprintf(why, why_size, "kafka: partition %" PRIu32 ": %s", shard,
                 rd_kafka_message_errstr(message));
        rc = -EIO;
    }
    if (message != NULL)
        rd_kafka_message_destroy(message);
    rd_kafka_consume_stop(rkt, (int32_t)shard);
    return rc;
}

/* held_seq[shard]: the seq header of the last message of partition `shard` (0: empty). */
static int kafka_held(const struct rush_relay_config *config, uint32_t shards, uint64_t *held_seq,
                      char *why, size_t why_size)
{
    rd_kafka_t *consumer = kafka_handle(config, NULL, RD_KAFKA_CONSUMER, why, why_size);
    if (consumer == NULL)
        return RUSH_ECONFIG;
    int rc = kafka_partitions(consumer, config->kafka_topic, shards, why, why_size);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(consumer, config->kafka_topic, NULL);
    for (uint32_t shard = 0; rc == 0 && shard < shards; shard++) {
        int64_t low = 0, high = 0;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            consumer, config->kafka_topic, (int32_t)shard, &low, &high, RELAY_OPEN_TIMEOUT_MS);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(why, why_size, "kafka: offsets of partition %" PRIu32 ": %s", shard,
                     rd_kafka_err2str(err));
            rc = -EIO;
        } else if (high > low) {
            rc = kafka_read_seq(rkt, shard, high - 1, &held_seq[shard], why, why_size);
        } else {
            held_seq[shard] = 0; /* empty (or emptied by retention: sent again from seq 1) */
        }
    }
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(consumer);
    return rc;
}

static int kafka_open(void **state, const struct rush_relay_config *config, uint32_t shards,
                      uint64_t *held_seq, char *why, size_t why_size)
{
    struct kafka_sink *sink = calloc(1, sizeof *sink);
    if (sink == NULL)
        return -ENOMEM;
    sink->topic = config->kafka_topic;
    int rc = kafka_held(config, shards, held_seq, why, why_size);
    if (rc == 0) {
        sink->producer = kafka_handle(config, sink, RD_KAFKA_PRODUCER, why, why_size);
        rc = sink->producer != NULL ? 0 : RUSH_ECONFIG;
    }
    if (rc != 0) {
        free(sink);
        return rc;
    }
    *state = sink;
    return 0;
}

static int kafka_sticky(const struct kafka_sink *sink, char *why, size_t why_size)
{
    if (sink->error != 0)
        snprintf(why, why_size, "%s", sink->why);
    return sink->error;
}

static int kafka_publish(void *state, const struct relay_message *message, char *why,
                         size_t why_size)
{
    struct kafka_sink *sink = state;
    for (int tries = 0; sink->error == 0; tries++) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(sink->producer, RD_KAFKA_V_TOPIC(sink->topic),
                              RD_KAFKA_V_PARTITION((int32_t)message->event->shard),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(message->key, strlen(message->key)),
                              RD_KAFKA_V_VALUE((void *)message->json, message->json_len),
                              RD_KAFKA_V_HEADER("shard", message->shard, -1),
                              RD_KAFKA_V_HEADER("seq", message->seq, -1),
                              RD_KAFKA_V_HEADER("type", message->type, -1), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            sink->published++;
            break;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries >= KAFKA_QUEUE_FULL_TRIES_MAX)
            kafka_fail(sink, "cannot produce", rd_kafka_err2str(err));
        else
            rd_kafka_poll(sink->producer, 10);
    }
    return kafka_sticky(sink, why, why_size);
}

static int kafka_serve(void *state, int timeout_ms, char *why, size_t why_size)
{
    struct kafka_sink *sink = state;
    rd_kafka_poll(sink->producer, timeout_ms);
    return kafka_sticky(sink, why, why_size);
}

static uint64_t kafka_inflight(void *state)
{
    const struct kafka_sink *sink = state;
    RUSH_ASSERT(sink->delivered <= sink->published);
    return sink->published - sink->delivered;
}

static int kafka_flush(void *state, int timeout_ms, char *why, size_t why_size)
{
    struct kafka_sink *sink = state;
    rd_kafka_resp_err_t err = rd_kafka_flush(sink->producer, timeout_ms);
    int rc = kafka_sticky(sink, why, why_size);
    if (rc == 0 && err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, why_size, "kafka: %" PRIu64 " messages not acknowledged after %d ms",
                 kafka_inflight(sink), timeout_ms);
        rc = RUSH_ETIMEDOUT;
    }
    return rc;
}

static void kafka_close(void *state, struct rush_relay_stats *stats)
{
    struct kafka_sink *sink = state;
    if (sink == NULL)
        return;
    if (stats != NULL)
        stats->kafka_published = sink->published;
    rd_kafka_destroy(sink->producer);
    free(sink);
}

const struct relay_sink_ops relay_kafka_sink = {
    .name = "kafka",
    .open = kafka_open,
    .publish = kafka_publish,
    .serve = kafka_serve,
    .inflight = kafka_inflight,
    .flush = kafka_flush,
    .close = kafka_close,
};
