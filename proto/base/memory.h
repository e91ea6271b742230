/*
 * memory.h — start-up allocation of the shard's large tables.
 *
 * Workload: a few regions per shard of tens to hundreds of MiB (orders, idempotency keys, user
 * limits, timers) hit at random on every decision. With 4 KiB pages each random access is a TLB
 * miss on top of a cache miss, and first touches are page faults on the decision path. So large
 * regions are 2 MiB aligned, advised as transparent huge pages, and zeroed (touched) here, at
 * start-up: the decision path then neither faults nor walks page tables for them.
 *
 * Memory comes from the process allocator (jemalloc outside sanitizer builds).
 * Thread: any; called only while creating or destroying a shard.
 */
#ifndef RUSH_MEMORY_H
#define RUSH_MEMORY_H

#include <stddef.h>
#include <stdint.h>

/* `count` zeroed elements of `size` bytes, or NULL (also on overflow). Free with rush_memory_free.
 */
void *rush_memory_zeroed(size_t count, size_t size);
void rush_memory_free(void *memory);

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
