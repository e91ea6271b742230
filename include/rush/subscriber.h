/*
 * rush/subscriber.h — the consumer side of the confirmed-order stream (rush/stream.h): every
 * event exactly once, in order per shard, across lost messages and restarts.
 *
 * This header is the manual. Link with `pkg-config --cflags --libs rush`.
 *
 * What it does. rushd publishes each shard's events on a lossy PUB endpoint and serves any
 * range again on a REP replay endpoint. A subscriber listens to the first and asks the second
 * for what it missed:
 *   - It keeps a cursor: per shard, the last seq it handed to the caller (`delivered_seq`).
 *     The next event the caller gets from a shard is always delivered_seq + 1.
 *   - A PUB message that starts at or before delivered_seq + 1 is delivered from there; the
 *     events at or before delivered_seq are duplicates and are dropped (counted).
 *   - A PUB message that starts later, or a heartbeat whose head_seq is past delivered_seq, is a
 *     gap: the subscriber asks replay for delivered_seq + 1 onwards, replay_events_max events
 *     at a time, until it reaches the head, and only then delivers later events of that shard.
 *     The PUB message that revealed the gap is dropped; replay serves its events too.
 *   - At open, after rush_subscriber_resync(), and whenever no PUB message has arrived for
 *     info_interval_ms (the publisher restarted or the connection dropped), it asks replay for
 *     INFO: the shard count and every shard's head. So a quiet shard is caught up from the
 *     cursor to its head even if no PUB message for it ever arrives.
 * Nothing is delivered before the shard count is known (from the cursor, or from INFO).
 *
 * Single-threaded, caller-driven. There is no I/O thread: rush_subscriber_poll() receives,
 * sends replay requests, resends them after replay_timeout_ms and gives up after
 * replay_retries_max resends. One thread at a time may use a subscriber; different subscribers
 * are independent.
 *
 * Lost ranges. When replay answers TOO_OLD (the range before oldest_seq is no longer served),
 * the shard's events delivered_seq + 1 .. oldest_seq - 1 cannot be delivered. By default that
 * is an error, -ENODATA ("no data available"; rush/types.h has no code for it and -errno codes
 * are part of the API), returned by every poll until the caller moves the cursor past the gap
 * with rush_subscriber_set_cursor(); rush_subscriber_shard() gives the oldest seq still served.
 * With skip_lost set the subscriber moves the cursor to oldest_seq - 1 itself and counts the
 * events lost in events_skipped.
 *
 * Trust. Every message is checked with rush_stream_decode() and against what was asked (kind,
 * shard, first seq, count); one that fails is dropped and counted in `malformed`, never acted on.
 * A replay reply that fails makes poll return RUSH_EPROTO once; the request is asked again on the
 * next poll.
 *
 * Errors. 0 or a count, or a negative -errno / RUSH_E* code (rush/types.h), named by
 * rush_strerror(); rush_subscriber_last_error() gives a sentence about the last one.
 * RUSH_ETIMEDOUT, RUSH_EPROTO are transient: poll again. -ENODATA lasts until the cursor is
 * moved. RUSH_ECONFIG (the cursor's shard count is not the publisher's) lasts until the cursor is
 * replaced.
 *
 * Not detected: a cursor ahead of the publisher (a publisher whose log was wiped restarts at
 * seq 1): its events up to the cursor are taken as duplicates.
 *
 * Memory. rush_subscriber_open() allocates the subscriber; polling allocates nothing of its
 * own (nanomsg allocates the messages it receives; the subscriber holds at most one at a time).
 */
#ifndef RUSH_SUBSCRIBER_H
#define RUSH_SUBSCRIBER_H

#include "rush/stream.h"
#include "rush/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits on struct rush_subscriber_config. */
#define RUSH_SUBSCRIBER_URL_BYTES_MAX 256         /* an url, NUL included */
#define RUSH_SUBSCRIBER_TIMEOUT_MS_MAX 3600000u   /* one replay attempt: one hour */
#define RUSH_SUBSCRIBER_RETRIES_MAX 100u          /* resends after the first send */
#define RUSH_SUBSCRIBER_INFO_INTERVAL_MS_MIN 100u /* one heartbeat interval or more */
#define RUSH_SUBSCRIBER_INFO_INTERVAL_MS_MAX 3600000u
#define RUSH_SUBSCRIBER_RECEIVE_BYTES_MIN 262144u     /* one full PUB message */
#define RUSH_SUBSCRIBER_RECEIVE_BYTES_MAX 1073741824u /* 1 GiB */
#define RUSH_SUBSCRIBER_ERROR_BYTES 200

/*
 * Configuration. Start from rush_subscriber_config_default() and change what you need.
 *
 *   pub_url               rushd's PUB endpoint, e.g. "tcp://127.0.0.1:7103". Copied.
 *   replay_url            rushd's replay endpoint, e.g. "tcp://127.0.0.1:7104". Copied.
 *   replay_timeout_ms     1 .. RUSH_SUBSCRIBER_TIMEOUT_MS_MAX: one attempt's wait for a reply.
 *   replay_retries_max    0 .. RUSH_SUBSCRIBER_RETRIES_MAX: resends of a request without a reply;
 *                         then poll returns RUSH_ETIMEDOUT (after about (retries_max + 1) *
 *                         timeout_ms) and the next poll starts over.
 *   replay_events_max     1 .. RUSH_STREAM_REPLAY_MAX: events asked per replay request.
 *   info_interval_ms      RUSH_SUBSCRIBER_INFO_INTERVAL_MS_MIN .. _MAX: ask INFO again after
 *                         this long without a PUB message (heartbeats count).
 *   receive_buffer_bytes  RUSH_SUBSCRIBER_RECEIVE_BYTES_MIN .. _MAX: the PUB socket's receive
 *                         buffer (NN_RCVBUF). Larger rides out longer pauses without gaps.
 *   skip_lost             false: a TOO_OLD range is the error -ENODATA. true: skip it, counted.
 */
struct rush_subscriber_config {
    const char *pub_url;
    const char *replay_url;
    uint32_t replay_timeout_ms;
    uint32_t replay_retries_max;
    uint32_t replay_events_max;
    uint32_t info_interval_ms;
    uint32_t receive_buffer_bytes;
    bool skip_lost;
};

/*
 * Fills `config` with the defaults: pub_url "tcp://127.0.0.1:7103", replay_url
 * "tcp://127.0.0.1:7104", replay_timeout_ms 1000, replay_retries_max 3, replay_events_max
 * RUSH_STREAM_REPLAY_MAX, info_interval_ms 1000, receive_buffer_bytes 64 MiB, skip_lost false.
 */
void rush_subscriber_config_default(struct rush_subscriber_config *config);

/* 0, or RUSH_ECONFIG with the reason in why[0 .. why_size) (why may be NULL). */
RUSH_MUST_USE int rush_subscriber_config_check(const struct rush_subscriber_config *config,
                                               char *why, size_t why_size);

/*
 * A cursor: per shard, the last seq delivered (0: nothing yet, start at seq 1). shard_count 0
 * is a fresh cursor that takes the publisher's shard count. output_bytes is the caller's own
 * progress mark, saved and loaded with the seqs and otherwise ignored (rushctl tail keeps the
 * size of its output file there, so that file and cursor agree after a crash).
 */
struct rush_stream_cursor {
    uint32_t shard_count;
    uint64_t output_bytes;
    uint64_t delivered_seq[RUSH_SHARDS_MAX];
};

/*
 * Saves a cursor to `path` atomically: writes path.tmp, fsyncs it, renames it over path and
 * fsyncs the directory, so that after a crash `path` holds this cursor or the one before.
 * The file is text ("rush-stream-cursor 1", the shard count, output_bytes, one "shard seq" line
 * per shard) ending with an XXH3-64 checksum of the lines above it. 0 or -errno.
 */
RUSH_MUST_USE int rush_stream_cursor_save(const char *path,
                                          const struct rush_stream_cursor *cursor);

/*
 * Loads a cursor saved by rush_stream_cursor_save(). Returns 1 when loaded; 0 when `path` does
 * not exist (*out is then a fresh cursor: start at seq 1 of every shard); RUSH_ECORRUPT when the
 * file is damaged (bad format, out-of-range values, checksum mismatch: never silently ignored);
 * or -errno. `why` (may be NULL) gets the reason of a failure.
 */
RUSH_MUST_USE int rush_stream_cursor_load(const char *path, struct rush_stream_cursor *out,
                                          char *why, size_t why_size);

struct rush_subscriber;

/*
 * Opens a subscriber starting from a fresh cursor: checks the configuration, connects a SUB
 * socket (all messages) to pub_url and a REQ socket to replay_url, and asks INFO at the first
 * poll. Connecting is asynchronous: rushd need not be up yet. Returns 0 and sets *out, or
 * RUSH_ECONFIG (rush_subscriber_last_error(NULL) says why), -EINVAL (an url nanomsg refuses),
 * -ENOMEM, or another -errno.
 */
RUSH_MUST_USE int rush_subscriber_open(const struct rush_subscriber_config *config,
                                       struct rush_subscriber **out);

/* Closes the sockets and frees the subscriber. NULL is a no-op. */
void rush_subscriber_close(struct rush_subscriber *sub);

/*
 * Replaces the cursor (e.g. with one loaded from a file). Anything received and not yet
 * delivered is dropped, to be delivered again from the new cursor; a lost range (-ENODATA) is
 * cleared. RUSH_ECONFIG when the cursor's shard count is over RUSH_SHARDS_MAX or differs from the
 * publisher's known one; 0 otherwise.
 */
RUSH_MUST_USE int rush_subscriber_set_cursor(struct rush_subscriber *sub,
                                             const struct rush_stream_cursor *cursor);

/*
 * The cursor as of the last event poll returned: save it after the caller has made those events
 * durable, and a restart from it neither loses nor repeats one. output_bytes is what the last
 * set_cursor gave (0 after open).
 */
void rush_subscriber_get_cursor(const struct rush_subscriber *sub, struct rush_stream_cursor *out);

/*
 * Waits up to timeout_ms (0: do not wait; -1: no limit) for events and copies up to `max` of
 * them into out[0 .. max): consecutive seqs of one shard, each the next after that shard's
 * cursor. Returns their number (> 0), 0 when the time ran out or a signal interrupted the wait,
 * or an error:
 *   RUSH_ETIMEDOUT  replay did not answer a request after replay_retries_max resends
 *   RUSH_EPROTO     replay answered something that is not a valid answer, or a status other
 *                   than ok and too_old (no_shard, bad_request, unavailable)
 *   -ENODATA        a shard's next events are gone from the publisher (see Lost ranges)
 *   RUSH_ECONFIG    the publisher's shard count is not the cursor's
 * Events polled are delivered: the cursor moves past them. A replay request still waiting for
 * its reply when the time runs out stays in flight for the next poll.
 */
RUSH_MUST_USE int rush_subscriber_poll(struct rush_subscriber *sub, struct rush_stream_event *out,
                                       uint32_t max, int timeout_ms);

/*
 * Asks INFO again at the next poll and makes rush_subscriber_caught_up() false until it is
 * answered and every shard's events up to the head it reports are delivered. Use it to wait for
 * "everything published so far": resync, then poll until caught_up.
 */
void rush_subscriber_resync(struct rush_subscriber *sub);

/*
 * True when the INFO asked at open or at the last resync has been answered and every shard's
 * cursor is at or past the head it reported (nothing received is waiting to be delivered).
 */
bool rush_subscriber_caught_up(const struct rush_subscriber *sub);

/*
 * Moves the cursor to the publisher's current heads (start "from now"): asks INFO, waits up to
 * timeout_ms for the answer, sets every shard's cursor to its head. 0, RUSH_ETIMEDOUT,
 * RUSH_EPROTO or RUSH_ECONFIG.
 */
RUSH_MUST_USE int rush_subscriber_seek_heads(struct rush_subscriber *sub, int timeout_ms);

/* The shard count: the cursor's, or the publisher's once INFO answered; 0 while unknown. */
uint32_t rush_subscriber_shard_count(const struct rush_subscriber *sub);

/* What the subscriber knows about one shard. */
struct rush_subscriber_shard {
    uint64_t delivered_seq; /* the cursor */
    uint64_t head_seq;      /* the newest seq the publisher announced */
    uint64_t oldest_seq;    /* the oldest seq replay serves (last INFO or TOO_OLD; 0: unknown) */
    bool lost;              /* replay said TOO_OLD for delivered_seq + 1 (-ENODATA) */
};

/* 0, or -EINVAL when shard is not below rush_subscriber_shard_count(). */
RUSH_MUST_USE int rush_subscriber_shard(const struct rush_subscriber *sub, uint32_t shard,
                                        struct rush_subscriber_shard *out);

/* Counters since open. */
struct rush_subscriber_stats {
    uint64_t messages_received;  /* PUB messages that decoded, heartbeats included */
    uint64_t heartbeats;         /* PUB messages without events */
    uint64_t events_received;    /* events in PUB messages */
    uint64_t events_delivered;   /* events poll returned */
    uint64_t events_replayed;    /* of those, the ones replay served */
    uint64_t duplicates_dropped; /* events at or before the cursor (PUB or replay) */
    uint64_t gaps_detected;      /* a PUB message or heartbeat showed events never received */
    uint64_t gaps_filled;        /* such a shard caught up again through replay */
    uint64_t malformed;          /* messages dropped by the checks (PUB and replay) */
    uint64_t replay_requests;    /* REPLAY requests (first sends) */
    uint64_t info_requests;      /* INFO requests (first sends) */
    uint64_t replies;            /* replay replies received, valid or not */
    uint64_t request_retries;    /* resends after replay_timeout_ms */
    uint64_t request_timeouts;   /* requests given up (RUSH_ETIMEDOUT) */
    uint64_t events_skipped;     /* lost ranges skipped with skip_lost */
};

void rush_subscriber_stats(const struct rush_subscriber *sub, struct rush_subscriber_stats *out);

/*
 * The sentence about sub's last error ("" when none). With NULL: the last failed
 * rush_subscriber_open() on the calling thread.
 */
const char *rush_subscriber_last_error(const struct rush_subscriber *sub);

#ifdef __cplusplus
}
#endif
#endif
