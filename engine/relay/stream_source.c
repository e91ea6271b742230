/*
 * stream_source.c — the relay's source when it reads one rushd's stream (relay.h): librush's
 * subscriber on the PUB and replay endpoints, which fills PUB's gaps through replay and delivers
 * each shard's seqs consecutively from a cursor. A timeout or a malformed message is passed
 * (the subscriber asks again); a range rushd no longer serves stops the relay.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "relay/relay_internal.h"
#include "rush/assert.h"

#define STREAM_SEEK_MS 1000 /* one INFO attempt while rushd is not answering */

struct stream_source {
    struct rush_subscriber *sub;
    const char *replay_url; /* for the waiting message */
};

static int stream_open(void **state, const struct rush_relay_config *config, char *why,
                       size_t why_size)
{
    struct stream_source *source = calloc(1, sizeof *source);
    if (source == NULL)
        return -ENOMEM;
    source->replay_url = config->stream.replay_url;
    int rc = rush_subscriber_open(&config->stream, &source->sub);
    if (rc != 0) {
        snprintf(why, why_size, "stream: %s", rush_subscriber_last_error(NULL));
        free(source);
        return rc;
    }
    *state = source;
    return 0;
}

/* rushd's shard count (INFO), waiting for rushd until a signal. */
static int stream_shards(void *state, volatile sig_atomic_t *stopping, uint32_t *shards, char *why,
                         size_t why_size)
{
    struct stream_source *source = state;
    struct rush_subscriber *sub = source->sub;
    bool told = false;
    while (!*stopping) { /* ends when rushd answers or on a signal */
        int rc = rush_subscriber_seek_heads(sub, STREAM_SEEK_MS);
        if (rc == 0) {
            *shards = rush_subscriber_shard_count(sub);
            return 0;
        }
        if (rc != RUSH_ETIMEDOUT && rc != RUSH_EPROTO) {
            snprintf(why, why_size, "stream: %s", rush_subscriber_last_error(sub));
            return rc;
        }
        if (!told)
            rush_log(RUSH_LOG_WARN, "relay: waiting for rushd's replay endpoint %s",
                     source->replay_url);
        told = true;
    }
    snprintf(why, why_size, "stopped before rushd answered");
    return -EINTR;
}

static int stream_start(void *state, const uint64_t *delivered_seq, uint32_t shards, char *why,
                        size_t why_size)
{
    struct rush_subscriber *sub = ((struct stream_source *)state)->sub;
    struct rush_stream_cursor cursor = {.shard_count = shards};
    for (uint32_t shard = 0; shard < shards; shard++)
        cursor.delivered_seq[shard] = delivered_seq[shard];
    int rc = rush_subscriber_set_cursor(sub, &cursor);
    if (rc != 0)
        snprintf(why, why_size, "stream: %s", rush_subscriber_last_error(sub));
    return rc;
}

static int stream_poll(void *state, struct rush_stream_event *events, uint32_t max, int timeout_ms,
                       char *why, size_t why_size)
{
    struct rush_subscriber *sub = ((struct stream_source *)state)->sub;
    int n = rush_subscriber_poll(sub, events, max, timeout_ms);
    if (n >= 0)
        return n;
    if (n == RUSH_ETIMEDOUT || n == RUSH_EPROTO) {
        rush_log(RUSH_LOG_WARN, "relay: stream: %s (trying again)",
                 rush_subscriber_last_error(sub));
        return 0;
    }
    snprintf(why, why_size, "stream: %s: %s", rush_strerror(n), rush_subscriber_last_error(sub));
    return n;
}

static void stream_close(void *state)
{
    struct stream_source *source = state;
    rush_subscriber_close(source->sub);
    free(source);
}

const struct relay_source_ops relay_stream_source = {
    .name = "stream",
    .open = stream_open,
    .shards = stream_shards,
    .start = stream_start,
    .poll = stream_poll,
    .close = stream_close,
};
