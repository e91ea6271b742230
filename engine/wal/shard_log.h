/*
 * shard_log.h — a shard's durability: its write-ahead log, replayed at start, appended to from
 * the shard's event sink, and the queue of work held until its events are durable.
 *
 * Workload: one per shard, on the shard's thread. Each pass of the shard loop decides a group of
 * work items, appends their events (one WAL batch per sink call), submits one write + fdatasync,
 * and holds the items; items come back out in order once the WAL's durable lsn reaches the lsn
 * they were held at. Items decided while a sync is in flight ride the next one (group commit).
 * An item whose decisions appended nothing is held at the lsn before it: its answers reflect
 * state that must be durable first (a duplicate's original, a query).
 *
 *   hold(item) at appended lsn L --> held --(durable >= L)--> released (replies may go)
 *                                      \---(WAL failed)-----> released with status RUSH_EWAL
 *   replicated: durable >= L AND replica_lsn >= L; fenced and replica_lsn < L: RUSH_EFENCED
 *
 * Snapshots (snapshot.h) bound the replay: open loads the newest snapshot, then replays only the
 * batches after its lsn; rush_shard_log_snapshot writes one at a pass boundary and removes the
 * segments it covers.
 *
 * Invariants:
 *   1. Held lsns never decrease, so release in hold order is release in lsn order.
 *   2. Once the WAL has failed, the log stays failed and every item is released failed.
 *   3. Without a WAL (memory-only engine) an item is released as soon as it is held.
 *   4. synced_lsn only grows, and every batch up to it is fdatasync'ed; the shard keeps polling
 *      while batches are appended and not durable, held items or not (timer decisions on an idle
 *      tick hold none), and polls on every idle tick (rush_shard_log_poll: the async mode's flush
 *      timer), so synced_lsn catches up without new requests.
 *   5. Only batches up to synced_lsn are handed to readers that publish (rush_engine_durable_lsn):
 *      nothing published can be lost to a crash or a power loss and cut as a torn tail, so a
 *      stream sequence number is never given to two different events. In async mode replies go
 *      at write, the stream at fdatasync (within flush_interval_ms, or the next idle tick).
 *      Replicated: only batches up to min(synced_lsn, replica_lsn) (engine.c keeps replica_lsn at
 *      the log's end for a follower, whose batches all came from the replicated log).
 *
 * Thread: the shard's (open and replay run on the creating thread before the shard's starts).
 */
#ifndef RUSH_SHARD_LOG_H
#define RUSH_SHARD_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rush/engine.h"
#include "shard/shard.h"
#include "wal.h"

struct shard_log_held {
    void *item;
    uint64_t lsn;
};

struct rush_shard_log {
    struct rush_wal *wal;         /* NULL: memory only */
    rush_event_sink_fn user_sink; /* called after each append, with the same events */
    void *user_context;
    struct shard_log_held *held; /* FIFO, capacity items */
    uint32_t held_head;
    uint32_t held_count;
    uint32_t capacity;
    _Atomic int error;         /* sticky: the WAL's failure (the front end reads it for stats) */
    uint64_t recovered_events; /* applied from the WAL (those after the snapshot) */
    uint64_t recovered_batches;
    const char *dir; /* the engine config's data_dir (NULL: memory only) */
    uint32_t shard_index;
    bool writes_nothing;       /* none mode: no log on disk, so no snapshot either */
    uint64_t snapshot_lsn;     /* of the last snapshot loaded or written (0: none) */
    uint64_t snapshot_ns_last; /* how long the last snapshot write blocked the shard */
    /* For readers of the log files on other threads (the publisher): */
    _Atomic uint64_t synced_lsn; /* every batch up to it is fdatasync'ed (invariant 5) */
    _Atomic uint64_t retain_lsn; /* snapshots keep the segments holding it and later batches */
    /* Durability replicated (ARCHITECTURE.md "Cluster"): an item also waits until replica_lsn
     * reaches its lsn; once fenced, the held items beyond it are released RUSH_EFENCED. */
    struct rush_engine_replica replica;
    _Atomic uint64_t replica_lsn; /* every batch up to it is acknowledged by the replica */
    bool fenced;                  /* the shard's: no acknowledgement will come for the rest */
};

/* Prepares an unopened log holding at most `capacity` items; chains events to user_sink. */
RUSH_MUST_USE int rush_shard_log_init(struct rush_shard_log *log, uint32_t capacity,
                                      rush_event_sink_fn user_sink, void *user_context);

/*
 * Loads the shard's newest snapshot in data_dir into `shard` (which must be fresh), replays the
 * log batches after it, and opens the log for appending. A torn tail is cut with a warning; damage
 * before it fails with RUSH_ECORRUPT and `why` naming the segment and offset; so does a damaged
 * newest snapshot (naming the file) or a log that does not continue the snapshot (a gap after
 * its lsn, or a log ending before it). A snapshot larger than the limits fails with RUSH_ECONFIG.
 */
RUSH_MUST_USE int rush_shard_log_open(struct rush_shard_log *log, struct rush_shard *shard,
                                      const struct rush_engine_config *config, uint32_t shard_index,
                                      char *why, size_t why_size);

/* The event sink to give the shard: appends to the WAL, then calls the user's sink. */
void rush_shard_log_sink(void *context, uint32_t shard_index, int64_t time_ns,
                         const struct rush_event *events, uint32_t count);

/*
 * A follower's batch (replicated from the leader): appended to the WAL as the next lsn, `lsn`,
 * without calling the sinks or the replica. RUSH_ECORRUPT when lsn is not the next one.
 */
RUSH_MUST_USE int rush_shard_log_append_followed(struct rush_shard_log *log, uint64_t lsn,
                                                 int64_t time_ns, const struct rush_event *events,
                                                 uint32_t count);
/* The last lsn appended to the WAL (0 without one). */
uint64_t rush_shard_log_appended_lsn(const struct rush_shard_log *log);
/* True when every held item is durable locally and only the replica's acknowledgement is due. */
bool rush_shard_log_awaiting_replica(const struct rush_shard_log *log);

/* Submits what was appended. Call once per pass, after holding that pass's items. */
void rush_shard_log_commit(struct rush_shard_log *log);
void rush_shard_log_hold(struct rush_shard_log *log, void *item);
/*
 * The oldest held item if it may go (durable, or failed: then *status = RUSH_EWAL), else NULL.
 * With `wait`, waits for the I/O in flight once before answering. Advances durable_lsn.
 */
void *rush_shard_log_release(struct rush_shard_log *log, bool wait, int *status);
/* Polls the WAL without waiting (an idle tick): runs the async flush timer, updates synced_lsn. */
void rush_shard_log_poll(struct rush_shard_log *log);
/* True while items are held or appended batches are not yet durable (invariant 4). */
bool rush_shard_log_holding(const struct rush_shard_log *log);
/* The WAL's failure (0 when healthy) and why. */
int rush_shard_log_error(const struct rush_shard_log *log, const char **why);
/*
 * Writes a snapshot of `shard` at the current end of the log, on the shard's thread, between
 * passes (no decided event may be waiting in the shard's buffer): submits what was appended,
 * waits until an fdatasync covers it (in async mode too: the snapshot must never be ahead of the
 * synced log), writes the snapshot for that lsn, removes the segments it covers. Blocks the shard
 * for the whole write. 0; RUSH_ECONFIG without a log or in none mode; RUSH_EWAL when the log
 * failed; -errno with why.
 */
RUSH_MUST_USE int rush_shard_log_snapshot(struct rush_shard_log *log,
                                          const struct rush_shard *shard, char *why,
                                          size_t why_size);
/*
 * The two halves of rush_shard_log_snapshot, for a writer that runs elsewhere (a forked child,
 * engine.c): _begin commits and waits until the log is synced to its end and gives the lsn the
 * snapshot is for; once the snapshot of that lsn is on disk, _end removes the segments it covers.
 */
RUSH_MUST_USE int rush_shard_log_snapshot_begin(struct rush_shard_log *log, uint64_t *lsn,
                                                char *why, size_t why_size);
void rush_shard_log_snapshot_end(struct rush_shard_log *log, uint64_t lsn);
/* Waits (polling the WAL, at most 30 s) until an fdatasync covers `lsn`. 0; RUSH_EWAL when the
 * log failed; RUSH_ETIMEDOUT. */
RUSH_MUST_USE int rush_shard_log_wait_synced(struct rush_shard_log *log, uint64_t lsn);

/* Flushes and closes the WAL; frees the queue. */
void rush_shard_log_close(struct rush_shard_log *log);

#endif
