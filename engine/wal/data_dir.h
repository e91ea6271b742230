/*
 * data_dir.h — what a data directory was made for: its shard count and the routing that put each
 * SKU on a shard, recorded once so that a start with another shard count cannot oversell.
 *
 * Why. A SKU lives on the shard XXH3(sku id) * shard_count >> 64 (rush_engine_shard_of_sku) and
 * an order or group id carries its shard in its top byte. Started on the same directory with
 * another count, SKUs land on shards whose logs never saw them: rushd would put them again from
 * the campaign with full stock and sell the same units twice, and orders would be lost. So the
 * first start writes the file `rush-data-dir` and every later start compares: a different shard
 * count, routing version or routing result refuses the start with a message naming both.
 *
 * There is no re-shard tool (no `rush-wal reshard`): to change the shard count, finish the sale,
 * keep the old directory for the books, and start on a new, empty data directory.
 *
 * File: 64 bytes, little-endian, written as rush-data-dir.tmp, fsync'ed, renamed, the directory
 * fsync'ed:
 *
 *   offset  size  field
 *        0     4  magic           "RDIR"
 *        4     2  version         RUSH_DATA_DIR_VERSION
 *        6     2  flags           zero
 *        8     4  shard_count     1..RUSH_SHARDS_MAX
 *       12     4  routing         RUSH_ROUTING_VERSION: the SKU hash and the id layout
 *       16     8  routing_check   XXH3-64 of the shards of SKUs 1..RUSH_ROUTING_PROBE_SKUS
 *       24     4  id_shard_shift  RUSH_ID_SHARD_SHIFT
 *       28    28  reserved        zero
 *       56     8  checksum        XXH3-64 of bytes 0..55
 *
 * routing_check catches a change of the hash itself (a library that hashes differently) that the
 * version number would not.
 *
 * Thread: the thread creating the engine, before any shard opens its log.
 */
#ifndef RUSH_DATA_DIR_H
#define RUSH_DATA_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rush/types.h"

#define RUSH_DATA_DIR_FILE "rush-data-dir"
#define RUSH_DATA_DIR_VERSION 1
#define RUSH_ROUTING_VERSION 2 /* 2: ids from RUSH_SKU_FAMILY_ID_MIN route by family */
#define RUSH_ROUTING_PROBE_SKUS 1024u

/* The routing a data directory records. */
struct rush_data_dir_layout {
    uint32_t shard_count;
    uint32_t routing;
    uint64_t routing_check;
    uint32_t id_shard_shift;
};

/*
 * Compares the directory's recorded layout with `layout` (this build's, for its shard count: the
 * engine fills it, since routing is the engine's); records it
 * when the directory has none (when `write` is false, a missing file is accepted and nothing is
 * written). A directory with log or snapshot files but no record (made by an older build) is
 * accepted only if no file names a shard >= layout->shard_count, and then recorded. Returns 0;
 * RUSH_ECONFIG (a different count or routing: why[] names both) ; RUSH_ECORRUPT (a damaged
 * record: why[] names the file); -errno.
 */
/*
 * Moves every log segment and snapshot of `dir` into its subdirectory `aside` (made if needed),
 * and fsyncs `dir`: a cluster node's start (ARCHITECTURE.md "Cluster": the replicated log is the
 * truth, the node rebuilds its shards from it). *moved counts the files. 0, or -errno with why.
 */
RUSH_MUST_USE int rush_data_dir_set_aside(const char *dir, const char *aside, uint32_t *moved,
                                          char *why, size_t why_size);

RUSH_MUST_USE int rush_data_dir_claim(const char *dir, const struct rush_data_dir_layout *layout,
                                      bool write, char *why, size_t why_size);

/*
 * Reads the directory's record into *out without judging it. 0; -ENOENT when there is none;
 * RUSH_ECORRUPT when it is damaged; -errno. For tools (rush-wal verify).
 */
RUSH_MUST_USE int rush_data_dir_read(const char *dir, struct rush_data_dir_layout *out);

#endif
