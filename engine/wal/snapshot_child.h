/*
 * snapshot_child.h — a shard's snapshot written by a forked child from the copy-on-write image,
 * so the shard stops only for the fork (ARCHITECTURE.md "Durability").
 *
 * Workload: one child at a time per shard, every `snapshot_every_events` events; a child writes
 * O(state) bytes (about 160 per order) and lives for as long as that takes: it sleeps twice as
 * long as each 1 MiB write took (rush_snapshot_stage's pace), 2-4 s per million orders on the
 * 2-core development VM (1-2 s at full speed, which cost the shard stolen CPU: ARCHITECTURE.md).
 * The shard thread pays: one fork (it copies the page tables: 2-3 ms for 512 MiB of tables in 2 MiB
 * pages, 15-26 ms once copy-on-write faults have split them into 4 KiB entries, which is why each
 * fork is followed by a renewal of the tables' huge pages, wal/snapshot_renew.h), a pipe write and
 * a waitpid per pass, plus the copy of each page it first writes while the child lives.
 *
 *   none --start: commit the log, fork--> staging (child: .tmp written, fdatasync'ed)
 *   staging --poll: log synced to lsn, go byte sent--> committing (child: rename, directory fsync,
 *                                                      older snapshots and covered segments
 * removed) staging --poll: the log failed, pipe closed--> abandoned (child removes the .tmp, exits
 * 2) committing --poll: exit 0 reaped--> none (log->snapshot_lsn = lsn)
 *
 * Invariants:
 *   1. The snapshot file is named (renamed from .tmp) only after the WAL is fdatasync'ed up to
 *      its lsn: the child waits for the go byte, which the parent sends only then; so a crash at
 *      any point leaves a named snapshot whose batches are all in the synced log (snapshot.h 1).
 *   2. The shard thread never waits for the disk to start a snapshot (no fdatasync, no file
 *      system call besides pipe2), and never while one runs except at shutdown or before an
 *      on-demand snapshot (poll with wait).
 *   3. Segments are removed by the child after the rename, below min(lsn + 1, retain_lsn as it was
 *      at the fork); retain_lsn only grows, so nothing the publisher still needs is removed.
 *   4. The child touches no lock another thread may have held at the fork: no malloc, no stdio;
 *      it runs at low CPU and I/O priority, paces its writes, and leaves with _exit. It dies
 *      with its creator thread (PR_SET_PDEATHSIG), leaving at most a .tmp file, which the next
 *      snapshot removes.
 *
 * Thread: the shard's (the one that owns `shard` and `log`).
 */
#ifndef RUSH_SNAPSHOT_CHILD_H
#define RUSH_SNAPSHOT_CHILD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shard/shard.h"
#include "shard_log.h"
#include "snapshot_renew.h"

struct rush_snapshot_child {
    pid_t pid;        /* 0: none running */
    int go_fd;        /* the pipe's write end until the go byte is sent (or it is closed): -1 */
    uint64_t lsn;     /* the batch the snapshot is of */
    int64_t start_ns; /* monotonic, at the start */
    int64_t fork_ns;  /* how long the shard stopped to start it */
    int64_t took_ns;  /* when finished: from start to the child's exit */
    int status;       /* when finished: 0 written; < 0 failed (RUSH_EWAL, -errno, -ECHILD) */
    uint32_t idle_per_busy; /* the child's pace (rush_snapshot_stage); 0: full speed */
    atomic_bool *hurry;     /* a page shared with the children: set when the shard waits for one */
    struct rush_snapshot_renew renew; /* the shard's huge pages given back after each fork */
};

/*
 * A child that is not running. Its writes will be paced (SNAPSHOT_CHILD_IDLE_PER_BUSY in
 * snapshot_child.c) unless the environment says RUSH_SNAPSHOT_PACE=off (full speed) or =N (N
 * times the write's time, 0..RUSH_SNAPSHOT_IDLE_PER_BUSY_MAX); read here, not in the child. For
 * measuring the difference.
 */
void rush_snapshot_child_init(struct rush_snapshot_child *child);

/*
 * Starts a child writing the snapshot of `shard` at the end of the log (between passes: nothing
 * decided may wait in the shard's buffer). 0; RUSH_ECONFIG without a log on disk; RUSH_EWAL when
 * the log failed; -errno when the pipe or fork failed (write the snapshot on the thread instead).
 */
RUSH_MUST_USE int rush_snapshot_child_start(struct rush_snapshot_child *child,
                                            struct rush_shard_log *log,
                                            const struct rush_shard *shard);

/*
 * Moves a running child on: sends the go once the log is synced to its lsn (or closes the pipe
 * when the log failed), and reaps it when it exited. With `wait`, waits for the sync and the
 * exit. True when no child is running any more (this call finished one, or none ran): then
 * `status` and `took_ns` describe the one finished.
 */
bool rush_snapshot_child_poll(struct rush_snapshot_child *child, struct rush_shard_log *log,
                              bool wait);

/* True while a child runs. */
bool rush_snapshot_child_running(const struct rush_snapshot_child *child);

/*
 * One step of giving the shard its huge pages back after the last fork (wal/snapshot_renew.h),
 * for the shard thread to call between passes when it has nothing to decide. True if it did one
 * (call again once the ring is looked at); false when nothing is left.
 */
bool rush_snapshot_child_renew(struct rush_snapshot_child *child);

/* True while chunks wait for renewal after the last fork (the next fork had better wait). */
bool rush_snapshot_child_renewing(const struct rush_snapshot_child *child);

/* At the shard thread's end, after the last poll: releases what renewal and the pace hold. */
void rush_snapshot_child_stop(struct rush_snapshot_child *child);

#endif
