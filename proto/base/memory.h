/*
 * memory.h — start-up allocation of the shard's large tables.
 *
 * Workload: a few regions per shard of tens to hundreds of MiB (orders, idempotency keys, user
 * limits, timers) hit at random on every decision. With 4 KiB pages each random access is a TLB
 * miss on top of a cache miss, and first touches are page faults on the decision path. So large
 * regions are 2 MiB aligned, advised as transparent huge pages, and zeroed (touched) here, at
 * start-up: the decision path then neither faults nor walks page tables for them.
 *
 * Regions of 2 MiB and more are mapped on their own (mmap, 2 MiB aligned, whole 2 MiB chunks) and
 * recorded here, so that a chunk can be renewed: copied into a fresh page and mapped in its place
 * (rush_memory_chunk_renew). A background snapshot's fork shares every page with the child; the
 * shard's first write to a shared huge page splits it into 512 small ones, which stay split, and
 * every later fork copies one page-table entry per 4 KiB (12-23 ms for 512 MiB, with the shard
 * stopped) instead of one per 2 MiB. Renewing each chunk once the child has ended gives the shard
 * its own huge page again and keeps the next fork short (wal/snapshot_renew.h). Smaller regions
 * come from the process allocator (jemalloc outside sanitizer builds).
 *
 * Invariants:
 *   1. A renewed chunk holds exactly the bytes it held before, at the same address.
 *   2. Only the thread that writes a region renews its chunks, between its writes.
 *
 * Thread: zeroed and free while creating or destroying a shard (any thread, a lock guards the
 * record of regions); the chunk functions on the thread that owns the region.
 */
#ifndef RUSH_MEMORY_H
#define RUSH_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* `count` zeroed elements of `size` bytes, or NULL (also on overflow). Free with rush_memory_free.
 */
void *rush_memory_zeroed(size_t count, size_t size);
void rush_memory_free(void *memory);

#define RUSH_MEMORY_CHUNK_BYTES ((size_t)2 << 20) /* one x86-64 huge page */

/* The bytes of a region from rush_memory_zeroed that was mapped on its own (a whole number of
 * chunks, 2 MiB aligned), or 0 (a small region, or NULL). */
size_t rush_memory_region_bytes(const void *memory);

/* True when the kernel may back advised regions with transparent huge pages (the setting
 * /sys/kernel/mm/transparent_hugepage/enabled, read once, is not "never") and the environment
 * does not say RUSH_HUGE_PAGES=off (then regions are not advised huge and nothing is renewed). */
bool rush_memory_huge_available(void);

/*
 * A fresh chunk (2 MiB aligned, advised huge, faulted in, zeroed) from a pool of eight that a
 * maker thread refills (started by the first take; SCHED_IDLE; it faults a chunk in only while no
 * renewal is moving one, see memory.c), or NULL when none is ready yet. Never waits. Either renew
 * a chunk with it or drop it (back to the pool).
 */
void *rush_memory_chunk_take(void);
void rush_memory_chunk_drop(void *fresh);

/*
 * Copies the chunk at `at` (2 MiB aligned, inside a region from rush_memory_zeroed) into `fresh`
 * (from rush_memory_chunk_take) and moves `fresh` onto `at`, so `at` keeps its bytes in the
 * fresh page and `fresh` is used up. 0; -EBUSY, doing nothing, while the pool's maker is faulting
 * a chunk in (the move would wait for it: try again later); -errno when the move failed (then
 * `at` is untouched and `fresh` is still the caller's).
 */
int rush_memory_chunk_renew(void *at, void *fresh);

/* A file mapped read-only, for readers of logs and snapshots. */
struct rush_mapped_file {
    const uint8_t *bytes; /* NULL for an empty file */
    size_t size;
};

/*
 * Maps `name` (relative to dir_fd, or AT_FDCWD) read-only; `advice` is an madvise hint such as
 * MADV_SEQUENTIAL or MADV_WILLNEED (0: none). 0, or -errno.
 */
int rush_memory_map_file(int dir_fd, const char *name, int advice, struct rush_mapped_file *map);
void rush_memory_unmap_file(struct rush_mapped_file *map);

#endif
