/*
 * publisher.h — rushd's downstream delivery: the live stream on a nanomsg PUB socket and the
 * replay service on a REP socket (the format is rush/stream.h; the consumer side is
 * rush/subscriber.h).
 *
 * Why it reads the log. An event may be published only once it is durable, and its sequence
 * number must survive restarts and snapshots. Both hold by construction when the publisher
 * reads the shards' write-ahead logs itself, behind each shard's durable lsn: the log is the
 * order of record, and each batch header carries the stream numbering (wal_record.h). The shards
 * do nothing for the publisher but store their durable lsn in an atomic (shard_log.h), so a slow
 * publisher or a slow consumer can never stall a shard; the only thing a lagging publisher holds
 * back is the removal of log segments it has not read yet (rush_engine_retain_log).
 *
 * Workload. One live thread for all shards: it reads each shard's new durable batches
 * (stream_reader.h), turns the events the stream carries into 64-byte stream events, and sends
 * them in runs of up to RUSH_STREAM_EVENTS_MAX per message; a quiet shard gets a heartbeat every
 * RUSH_STREAM_HEARTBEAT_MS. It keeps the newest memory_events_max events of each shard in a ring.
 * One replay thread answers REPLAY requests from that ring when it can, else from the log files
 * (a look-up costs one header read per segment and header hops inside one; a consumer paging
 * through an old range continues where its last page ended), and INFO requests.
 *
 * Invariants.
 *   1. Nothing beyond a shard's durable lsn is ever read, sent or served.
 *   2. Per shard, the live stream sends seqs in increasing order without gaps (PUB may still
 *      drop whole messages on the way; replay fills those).
 *   3. head_seq (shared with the replay thread under the shard's mutex) is the newest seq sent;
 *      everything from the log's oldest seq to head_seq can be served.
 *
 * Threads: create, stop and stats from one thread (rushd's main); the two threads own their
 * sockets and readers.
 */
#ifndef RUSH_PUBLISHER_H
#define RUSH_PUBLISHER_H

#include <stdint.h>

#include "rush/engine.h"
#include "rush/stream.h"

#define RUSH_PUBLISHER_MEMORY_EVENTS_DEFAULT (1u << 18) /* per shard: 16 MiB */
#define RUSH_PUBLISHER_IDLE_SLEEP_US 500                /* the live thread, when nothing is new */

/*
 * Called on the live thread with each run of events it publishes, in seq order per shard, after
 * they are in the memory ring and before they are sent (engine/ops/ counts GMV and sell-outs
 * from them, so the shards pay nothing). Must not block: the stream waits for it.
 */
typedef void (*rush_publisher_events_fn)(void *context, uint32_t shard,
                                         const struct rush_stream_event *events, uint32_t count);

struct rush_publisher_config {
    const char *pub_url;                /* e.g. tcp://127.0.0.1:7103 */
    const char *replay_url;             /* e.g. tcp://127.0.0.1:7104 */
    const char *data_dir;               /* the engine's: where the logs are */
    uint32_t memory_events_max;         /* per shard; a power of two; 0: the default */
    rush_publisher_events_fn on_events; /* NULL: none */
    void *on_events_context;
};

struct rush_publisher_stats {
    uint64_t events_published;
    uint64_t messages_sent;
    uint64_t heartbeats_sent;
    uint64_t sends_dropped; /* PUB refused a message (it never blocks) */
    uint64_t replay_requests;
    uint64_t replay_events_from_memory;
    uint64_t replay_events_from_log;
    uint64_t replay_too_old;
    uint64_t replay_bad_requests;
    uint64_t read_errors; /* the log could not be read: printed on stderr, retried */
};

struct rush_publisher;

/*
 * Binds both endpoints and starts the threads at the end of every shard's log as it is now
 * (what came before is served by replay). The engine must have a data_dir and write a log
 * (durability fsync or async) and outlive the publisher. 0, or < 0 with why.
 */
RUSH_MUST_USE int rush_publisher_create(const struct rush_publisher_config *config,
                                        struct rush_engine *engine, struct rush_publisher **out,
                                        char *why, size_t why_size);
/* Publishes what is durable, stops the threads, closes the sockets, frees. Safe on NULL. */
void rush_publisher_destroy(struct rush_publisher *publisher);
/* Counters (approximate while running) and each shard's newest published seq. */
void rush_publisher_stats(const struct rush_publisher *publisher,
                          struct rush_publisher_stats *stats);
uint64_t rush_publisher_head_seq(struct rush_publisher *publisher, uint32_t shard_index);

#endif
