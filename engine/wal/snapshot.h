/*
 * snapshot.h — a shard's whole state in one checksummed file, so recovery replays only the log
 * written after it.
 *
 * Workload: written every `snapshot_every_events` events (or on demand) by the shard's own thread,
 * which blocks while it writes, or by a forked child (wal/snapshot_child.h): sequential writes of
 * the shard's tables, O(state), ~160 bytes per order (an 88-byte order, its 64-byte key entry, its
 * timer) — 10 million orders make about 1.6 GB (at ~101 bytes per order, before version 3, 1 GB was
 * written and fdatasync'ed in about 4 s on the 2-core development VM; bench/bench_recovery.c). Read
 * once per start per shard, mapped and verified, then copied into a fresh shard (10 million orders:
 * 0.9 s with a warm page cache, against 4.4 s to replay them from the log).
 *
 * File: snap-<shard, 2+ decimal digits>-<lsn, 16 hex digits>.snap in the data directory, next to
 * the WAL segments. `lsn` is the last WAL batch whose effect the snapshot holds: recovery loads it
 * and replays only batches with lsn > it. Written as <name>.tmp, fdatasync'ed, renamed, the
 * directory fsync'ed; only then are older snapshots (and the caller then the covered segments)
 * removed, so a crash at any point leaves a complete snapshot or the log that covers it.
 *
 * Layout (little-endian; records are the shard's in-memory records, emitted and restored by
 * shard/shard_image.c and pinned there by static_asserts, so changing one of them means a new
 * RUSH_SNAPSHOT_VERSION):
 *
 *   offset  size  field
 *        0   256  header (struct rush_snapshot_header), sealed by header_checksum (XXH3-64 of
 *                 bytes 0..247); it holds the count, record size and XXH3-64 of each section
 *      256     *  sections, back to back, in enum rush_shard_image_section order:
 *                   skus          sku_count SKU states (index order)
 *                   orders        orders 1..order_count
 *                   groups        groups 1..group_count
 *                   sku_ids       the occupied entries of the SKU id table   } re-inserted on
 *                   keys          the occupied idempotency entries           } load: the loading
 *                   user_limits   the occupied (sku, user) limit entries     } shard's seed may
 *                 timers        scheduled timers: (index, kind, deadline)  } differ
 *
 * Which snapshot a start uses: the newest (highest lsn). If it fails its checks the start is
 * refused with RUSH_ECORRUPT naming the file; there is no silent fall-back to an older one, because
 * the segments it would need were removed when the newer snapshot was written. An operator who
 * moves the damaged file aside gets the older snapshot (or none) and the replay then proves
 * whether the log still covers it: shard_log.c refuses a start whose log does not continue the
 * snapshot (a gap, or a log that ends before it).
 *
 * Invariants:
 *   1. A file named .snap is complete and synced; its lsn's batch and all before it were durable
 *      in the WAL when it was written.
 *   2. Loading never reads outside the file, and refuses (never asserts on) a file that fails a
 *      checksum, names indexes out of range, or holds more than the loading shard's limits.
 *   3. A loaded shard passes rush_shard_check and has the digest of the shard that was written.
 *
 * Writing: a forked writer writes with O_DIRECT where the file system allows it (1 MiB writes, the
 * last padded to a block and the file cut back), so a snapshot never leaves hundreds of MB of
 * dirty page cache for the WAL's next fdatasync to wait behind (one ext4 journal).
 *
 * Thread: write runs on the shard's thread (it reads the shard), or stage and commit in a forked
 * child (wal/snapshot_child.h); load on the thread creating the shard; decode is pure.
 */
#ifndef RUSH_SNAPSHOT_H
#define RUSH_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rush/engine.h"
#include "rush/types.h"
#include "shard/shard.h"
#include "shard/shard_image.h"

#define RUSH_SNAPSHOT_MAGIC UINT32_C(0x504e5352) /* "RSNP" read as a little-endian u32 */
/*
 * Version 3: an order records its amount, its keys, slot generation and retired link (88-byte
 * orders); a key entry holds the request's fields and its ring place (64 bytes); a limit entry
 * counts unpaid and churned orders (32 bytes). Version 4: a SKU definition carries solo_allowed
 * and its group and leader prices (152-byte rush_sku in the sku_state); a seat records its
 * inviter (96-byte orders). Version 5: a SKU definition carries its rules (new users only,
 * registration, activity membership), registration window, tiers and subsidy budget (224-byte
 * rush_sku), the sku_state what the budget spent (792 bytes); the user-limit table also holds
 * activity and registration entries. Version 6: the sku_state also counts what its seats spent
 * of its activity's subsidy budget (800 bytes). A file of an earlier version is refused.
 */
#define RUSH_SNAPSHOT_VERSION 6
#define RUSH_SNAPSHOT_HEADER_BYTES 256u
#define RUSH_SNAPSHOT_NAME_MAX 64

struct rush_snapshot_header {
    uint32_t magic;
    uint16_t version;
    uint16_t flags; /* zero */
    uint32_t shard_index;
    uint32_t header_bytes;           /* RUSH_SNAPSHOT_HEADER_BYTES */
    uint64_t lsn;                    /* the last WAL batch the state includes (0: none) */
    int64_t now_ns;                  /* the shard clock */
    uint64_t file_bytes;             /* header + every section */
    struct rush_shard_limits limits; /* of the shard that wrote it (informational) */
    uint32_t counts[RUSH_IMAGE_SECTION_COUNT];
    uint32_t record_bytes[RUSH_IMAGE_SECTION_COUNT];
    uint64_t checksums[RUSH_IMAGE_SECTION_COUNT]; /* XXH3-64 of each section's bytes */
    uint8_t reserved[72];                         /* zero */
    uint64_t header_checksum;                     /* XXH3-64 of bytes 0..247 */
};
static_assert(sizeof(struct rush_snapshot_header) == RUSH_SNAPSHOT_HEADER_BYTES, "header size");
static_assert(offsetof(struct rush_snapshot_header, header_checksum) == 248, "checksum is last");

/* A decoded snapshot: the header and views of its sections in the caller's bytes. */
struct rush_snapshot_view {
    struct rush_snapshot_header header;
    const uint8_t *sections[RUSH_IMAGE_SECTION_COUNT];
};

/*
 * Writes the shard's state, which must be that after WAL batch `lsn` with nothing decided since,
 * as the shard's snapshot for `lsn` (see the file comment for the steps), then removes older
 * snapshots of the shard. Returns 0, or -errno with why[] naming the file and the step.
 */
RUSH_MUST_USE int rush_snapshot_write(const struct rush_shard *shard, const char *dir,
                                      uint32_t shard_index, uint64_t lsn, char *why,
                                      size_t why_size);

/*
 * The two halves of rush_snapshot_write, for a writer that must not publish the file before the
 * log is synced to `lsn` (a forked child, wal/snapshot_child.h): _stage writes and fdatasyncs
 * <name>.tmp (removing it on failure); _commit renames it, fsyncs the directory and removes older
 * snapshots. With `direct`, _stage writes with O_DIRECT where the file system allows it (see the
 * file comment). With a `pace` whose idle_per_busy > 0, _stage sleeps after each buffer it
 * writes for that many times as long as the write took (within RUSH_SNAPSHOT_PACE_SLEEP_MIN_NS..
 * MAX_NS), so that it keeps the device, and the host behind a virtual disk, busy about
 * 1 / (1 + idle_per_busy) of the time (ARCHITECTURE.md "Durability"), until *hurry turns true
 * (someone waits for the file: no more sleeps); NULL writes at full speed. _abandon removes a
 * staged file that will not be committed. Neither allocates from the heap. 0, or -errno with why[]
 * naming the file and the step.
 */
#define RUSH_SNAPSHOT_PACE_SLEEP_MIN_NS 2000000   /* 2 ms */
#define RUSH_SNAPSHOT_PACE_SLEEP_MAX_NS 100000000 /* 100 ms */
#define RUSH_SNAPSHOT_IDLE_PER_BUSY_MAX 100u
struct rush_snapshot_pace {
    uint32_t idle_per_busy;   /* 0..RUSH_SNAPSHOT_IDLE_PER_BUSY_MAX; 0: full speed */
    const atomic_bool *hurry; /* NULL, or a flag another process may set: stop sleeping */
};
RUSH_MUST_USE int rush_snapshot_stage(const struct rush_shard *shard, const char *dir,
                                      uint32_t shard_index, uint64_t lsn, bool direct,
                                      const struct rush_snapshot_pace *pace, char *why,
                                      size_t why_size);
RUSH_MUST_USE int rush_snapshot_commit(const char *dir, uint32_t shard_index, uint64_t lsn,
                                       char *why, size_t why_size);
void rush_snapshot_abandon(const char *dir, uint32_t shard_index, uint64_t lsn);

/*
 * Loads the newest snapshot of the shard in dir into `fresh_shard` (just created, nothing applied)
 * and stores its lsn in *lsn_out (0 and nothing loaded when there is none). Returns 0;
 * RUSH_ECORRUPT when the newest snapshot fails its checks; RUSH_ECONFIG when it holds more than
 * the shard's limits; -errno. On error why[] names the file and the reason, and the shard must be
 * destroyed.
 */
RUSH_MUST_USE int rush_snapshot_load(struct rush_shard *fresh_shard, const char *dir,
                                     uint32_t shard_index, uint64_t *lsn_out, char *why,
                                     size_t why_size);

/*
 * Verifies the snapshot in bytes[0..len): header checksum, format, counts against the writer's
 * limits, the length, every section checksum. Never reads past len. On success `out` holds the
 * header and views of the sections (8-byte aligned if bytes is). 0, or RUSH_ECORRUPT with why.
 */
RUSH_MUST_USE int rush_snapshot_decode(const uint8_t *bytes, size_t len,
                                       struct rush_snapshot_view *out, char *why, size_t why_size);

/*
 * Copies a decoded snapshot into a fresh shard (rush_shard_image_restore: every index it holds is
 * checked and, at the end, rush_shard_check). 0; RUSH_ECONFIG when it does not fit the shard's
 * limits; RUSH_ECORRUPT; -ENOMEM.
 */
RUSH_MUST_USE int rush_snapshot_restore(struct rush_shard *fresh_shard,
                                        const struct rush_snapshot_view *view, char *why,
                                        size_t why_size);

/* Computes and stores header->header_checksum. */
void rush_snapshot_header_seal(struct rush_snapshot_header *header);

/* Writes the file name (always < RUSH_SNAPSHOT_NAME_MAX); returns its length. */
int rush_snapshot_name(char *out, size_t size, uint32_t shard_index, uint64_t lsn);
/* True when `name` is exactly a snapshot name of this shard; stores its lsn. */
bool rush_snapshot_parse(const char *name, uint32_t shard_index, uint64_t *lsn);
/*
 * Lists the shard's snapshots in dir: a malloc'd array of their lsns, ascending, in *lsns_out
 * (the caller frees it; NULL when none). Returns the count (at most RUSH_SNAPSHOTS_MAX) or -errno.
 */
#define RUSH_SNAPSHOTS_MAX 4096u
RUSH_MUST_USE int rush_snapshot_list(const char *dir, uint32_t shard_index, uint64_t **lsns_out);

#endif
