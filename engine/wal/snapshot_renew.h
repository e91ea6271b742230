/*
 * snapshot_renew.h — after a background snapshot's child has ended, the shard thread gives itself
 * its huge pages back, 2 MiB at a time in its idle moments, so that the next fork copies one
 * page-table entry per 2 MiB rather than per 4 KiB (ARCHITECTURE.md "Durability").
 *
 * Why: the fork (wal/snapshot_child.h) shares every page of the shard's tables with the child.
 * The shard's first write to a shared transparent huge page splits it into 512 small entries and
 * copies 4 KiB, and the split pages stay split, so the next fork copies 131k page-table entries
 * for 512 MiB (15-22 ms with the shard stopped) instead of 256 (2-3 ms). Renewing a chunk
 * (base/memory.h: copy its 2 MiB into a fresh huge page, move that onto the same address) undoes
 * the split for that chunk. Renewing while the child still lived (which would also have ended
 * its copy-on-write faults sooner) was measured worse: bursts of 10-50 ms stalls in its first
 * second, so the steps wait for the child's end.
 *
 * Workload: one pass over the shard's large tables after each child, one 2 MiB chunk per step:
 * the step copies the chunk into a fresh one from base/memory.h's pool (made ahead by a maker
 * thread: a fresh huge page costs 0.6-4 ms to allocate and zero on the development VM) and moves
 * it into place, 0.3-0.7 ms there; 256 steps for 512 MiB of tables, taken only when no child runs
 * and the shard has nothing to decide, at most one per 4 ms (engine.c), so about 1 s per 512 MiB;
 * the next fork waits for the renewal, at most 2 s after the last child ended.
 *
 *   idle --start (at the fork)--> renewing --step: last chunk moved--> idle
 *   renewing --start (a newer fork)--> renewing from the first chunk
 *
 * Invariants:
 *   1. A step runs on the shard thread between passes: no pointer into a chunk is held across it
 *      and nothing else writes the tables, so a renewed chunk holds exactly what it held (memory.h
 *      invariant 1) and the shard's state, its digest and every snapshot are unchanged by it.
 *   2. A child still alive is unaffected: the move only drops the parent's references to the
 *      pages they share.
 *   3. Without transparent huge pages (rush_memory_huge_available false) nothing is renewed and
 *      the fork behaves as before (split-page cost, counted in the fork's time).
 *
 * Thread: the shard's.
 */
#ifndef RUSH_SNAPSHOT_RENEW_H
#define RUSH_SNAPSHOT_RENEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shard/shard.h"

struct rush_snapshot_renew {
    void *regions[RUSH_SHARD_REGIONS_MAX];
    size_t region_bytes[RUSH_SHARD_REGIONS_MAX];
    uint32_t region_count;
    uint32_t region_index;   /* the region being renewed; == region_count: none left */
    size_t offset;           /* the next chunk's offset in it */
    void *fresh;             /* a faulted-in chunk waiting for its place, or NULL */
    uint64_t chunks_renewed; /* since the engine started */
    uint64_t steps_ns;       /* time spent in steps since the engine started */
    bool disabled;           /* no transparent huge pages, or a move failed: stop renewing */
};

/* Nothing to renew. */
void rush_snapshot_renew_init(struct rush_snapshot_renew *renew);

/* At a fork: every chunk of the shard's large tables is to be renewed, from the first. */
void rush_snapshot_renew_start(struct rush_snapshot_renew *renew, const struct rush_shard *shard);

/* True while chunks wait for renewal. */
bool rush_snapshot_renew_pending(const struct rush_snapshot_renew *renew);

/* One step (a chunk copied into a fresh one from the pool, moved into place), between passes.
 * True if it did one; false when nothing is left or no fresh chunk is ready yet. */
bool rush_snapshot_renew_step(struct rush_snapshot_renew *renew);

/* Drops the waiting fresh chunk (at the shard thread's end). */
void rush_snapshot_renew_stop(struct rush_snapshot_renew *renew);

#endif
