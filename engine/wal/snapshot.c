/*
 * snapshot.c — writing, verifying and loading shard snapshots (see snapshot.h for the format,
 * the workload and the invariants).
 *
 * A part of the shard's files (shard_internal.h): it reads the shard's records directly to write
 * them, and restore() is the one path besides apply() that sets business state — it copies a
 * verified state into a fresh shard and then asserts the shard's invariants with
 * rush_shard_check().
 *
 * Thread: see snapshot.h.
 */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/memory.h"
#include "base/why.h"
#include "rush/assert.h"
#include "shard/shard_internal.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the snapshot format is little-endian");
/* The records are stored as laid out in memory: a change of layout is a new format version. */
static_assert(sizeof(struct sku_state) == 712, "sku_state layout is part of snapshot version 4");
static_assert(sizeof(struct order) == 96, "order layout is part of snapshot version 4");
static_assert(sizeof(struct group) == 32, "group layout is part of snapshot version 4");
static_assert(sizeof(struct sku_entry) == 24, "sku_entry layout is part of snapshot version 4");
static_assert(sizeof(struct key_entry) == 64, "key_entry layout is part of snapshot version 4");
static_assert(sizeof(struct limit_entry) == 32, "limit_entry layout is part of snapshot version 4");

#define WRITE_BUFFER_BYTES ((size_t)1 << 20)
#define TIMER_KIND_ORDER 0u
#define TIMER_KIND_GROUP 1u

/* Says why in why[] and returns RUSH_ECORRUPT. */
#define refuse(why, why_size, ...) rush__refuse(RUSH_ECORRUPT, why, why_size, __VA_ARGS__)

uint32_t rush_snapshot_record_bytes(enum rush_snapshot_section section)
{
    switch (section) {
    case RUSH_SNAPSHOT_SKUS:
        return sizeof(struct sku_state);
    case RUSH_SNAPSHOT_ORDERS:
        return sizeof(struct order);
    case RUSH_SNAPSHOT_GROUPS:
        return sizeof(struct group);
    case RUSH_SNAPSHOT_SKU_IDS:
        return sizeof(struct sku_entry);
    case RUSH_SNAPSHOT_KEYS:
        return sizeof(struct key_entry);
    case RUSH_SNAPSHOT_USER_LIMITS:
        return sizeof(struct limit_entry);
    case RUSH_SNAPSHOT_TIMERS:
        return sizeof(struct rush_snapshot_timer);
    case RUSH_SNAPSHOT_SECTION_COUNT:
        break;
    }
    RUSH_ASSERT(!"unknown snapshot section");
    return 0;
}

const char *rush_snapshot_section_name(enum rush_snapshot_section section)
{
    switch (section) {
    case RUSH_SNAPSHOT_SKUS:
        return "skus";
    case RUSH_SNAPSHOT_ORDERS:
        return "orders";
    case RUSH_SNAPSHOT_GROUPS:
        return "groups";
    case RUSH_SNAPSHOT_SKU_IDS:
        return "sku_ids";
    case RUSH_SNAPSHOT_KEYS:
        return "keys";
    case RUSH_SNAPSHOT_USER_LIMITS:
        return "user_limits";
    case RUSH_SNAPSHOT_TIMERS:
        return "timers";
    case RUSH_SNAPSHOT_SECTION_COUNT:
        break;
    }
    return "unknown";
}

void rush_snapshot_header_seal(struct rush_snapshot_header *header)
{
    RUSH_ASSERT(header->magic == RUSH_SNAPSHOT_MAGIC);
    header->header_checksum =
        XXH3_64bits(header, offsetof(struct rush_snapshot_header, header_checksum));
}

/* ---- names ---------------------------------------------------------------------------------- */

int rush_snapshot_name(char *out, size_t size, uint32_t shard_index, uint64_t lsn)
{
    RUSH_ASSERT(out != NULL && size >= RUSH_SNAPSHOT_NAME_MAX);
    int n = snprintf(out, size, "snap-%02" PRIu32 "-%016" PRIx64 ".snap", shard_index, lsn);
    RUSH_ASSERT(n > 0 && n < RUSH_SNAPSHOT_NAME_MAX - 4); /* room for ".tmp" */
    return n;
}

bool rush_snapshot_parse(const char *name, uint32_t shard_index, uint64_t *lsn)
{
    uint32_t shard = 0;
    uint64_t value = 0;
    if (strlen(name) >= RUSH_SNAPSHOT_NAME_MAX)
        return false;
    if (sscanf(name, "snap-%" SCNu32 "-%" SCNx64 ".snap", &shard, &value) != 2 ||
        shard != shard_index)
        return false;
    char canonical[RUSH_SNAPSHOT_NAME_MAX];
    rush_snapshot_name(canonical, sizeof(canonical), shard, value);
    if (strcmp(canonical, name) != 0) /* also rejects the .tmp files */
        return false;
    *lsn = value;
    return true;
}

static int lsn_compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int rush_snapshot_list(const char *dir, uint32_t shard_index, uint64_t **lsns_out)
{
    *lsns_out = NULL;
    DIR *listing = opendir(dir);
    if (listing == NULL)
        return -errno;
    uint64_t *lsns = calloc(RUSH_SNAPSHOTS_MAX, sizeof(*lsns));
    if (lsns == NULL) {
        closedir(listing);
        return -ENOMEM;
    }
    uint32_t count = 0;
    int rc = 0;
    /* Bounded: a listing ends; each entry is looked at once. */
    for (struct dirent *entry = readdir(listing); entry != NULL; entry = readdir(listing)) {
        uint64_t lsn;
        if (!rush_snapshot_parse(entry->d_name, shard_index, &lsn))
            continue;
        if (count == RUSH_SNAPSHOTS_MAX) {
            rc = -EMFILE;
            break;
        }
        lsns[count++] = lsn;
    }
    closedir(listing);
    if (rc < 0 || count == 0) {
        free(lsns);
        return rc;
    }
    qsort(lsns, count, sizeof(*lsns), lsn_compare);
    *lsns_out = lsns;
    return (int)count;
}

/* ---- writing -------------------------------------------------------------------------------- */

/* Sequential writes through a buffer, one section's checksum at a time. */
struct writer {
    int fd;
    uint8_t *buffer;
    size_t used;
    uint64_t offset; /* file offset of buffer[0] */
    XXH3_state_t *hash;
    int error; /* first write error (-errno) */
};

static void writer_flush(struct writer *writer)
{
    size_t done = 0;
    /* Bounded: each round writes at least one byte or stops. */
    while (done < writer->used && writer->error == 0) {
        ssize_t n = pwrite(writer->fd, writer->buffer + done, writer->used - done,
                           (off_t)(writer->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            writer->error = n < 0 ? -errno : -EIO;
        else
            done += (size_t)n;
    }
    writer->offset += writer->used;
    writer->used = 0;
}

static void writer_put(struct writer *writer, const void *record, size_t bytes)
{
    RUSH_ASSERT(bytes <= WRITE_BUFFER_BYTES);
    if (writer->used + bytes > WRITE_BUFFER_BYTES)
        writer_flush(writer);
    memcpy(writer->buffer + writer->used, record, bytes);
    writer->used += bytes;
    XXH3_64bits_update(writer->hash, record, bytes);
}

static void put_table(struct writer *writer, const struct rush_table *table, uint32_t *count)
{
    for (uint32_t s = 0; s < table->slot_count; s++) {
        const void *entry = rush_table_slot(table, s);
        if (entry == NULL)
            continue;
        writer_put(writer, entry, table->entry_bytes);
        (*count)++;
    }
    RUSH_ASSERT(*count == table->count);
}

static void put_timers(struct writer *writer, const struct rush_shard *shard, uint32_t *count)
{
    const struct rush_timer_wheel *wheel = &shard->timers;
    for (uint32_t handle = 0; handle < wheel->handles_max; handle++) {
        if (!rush_timer_wheel_scheduled(wheel, handle))
            continue;
        struct rush_snapshot_timer timer = {.deadline_ns = rush_timer_deadline(wheel, handle)};
        if (handle <= shard->limits.orders_max) {
            timer.index = handle;
            timer.kind = TIMER_KIND_ORDER;
        } else {
            timer.index = handle - shard->limits.orders_max - 1;
            timer.kind = TIMER_KIND_GROUP;
        }
        writer_put(writer, &timer, sizeof(timer));
        (*count)++;
    }
    RUSH_ASSERT(*count == wheel->scheduled_count);
}

/* Writes one section after the header, filling in its count and checksum. */
static void put_section(struct writer *writer, const struct rush_shard *shard,
                        struct rush_snapshot_header *header, enum rush_snapshot_section section)
{
    XXH3_64bits_reset(writer->hash);
    uint32_t *count = &header->counts[section];
    switch (section) {
    case RUSH_SNAPSHOT_SKUS:
        for (uint32_t i = 0; i < shard->sku_count; i++)
            writer_put(writer, &shard->skus[i], sizeof(shard->skus[i]));
        *count = shard->sku_count;
        break;
    case RUSH_SNAPSHOT_ORDERS:
        for (uint32_t i = 1; i <= shard->order_count; i++)
            writer_put(writer, &shard->orders[i], sizeof(shard->orders[i]));
        *count = shard->order_count;
        break;
    case RUSH_SNAPSHOT_GROUPS:
        for (uint32_t i = 1; i <= shard->group_count; i++)
            writer_put(writer, &shard->groups[i], sizeof(shard->groups[i]));
        *count = shard->group_count;
        break;
    case RUSH_SNAPSHOT_SKU_IDS:
        put_table(writer, &shard->sku_ids, count);
        break;
    case RUSH_SNAPSHOT_KEYS:
        put_table(writer, &shard->keys, count);
        break;
    case RUSH_SNAPSHOT_USER_LIMITS:
        put_table(writer, &shard->user_limits, count);
        break;
    case RUSH_SNAPSHOT_TIMERS:
        put_timers(writer, shard, count);
        break;
    case RUSH_SNAPSHOT_SECTION_COUNT:
        RUSH_ASSERT(!"not a section");
        break;
    }
    header->record_bytes[section] = rush_snapshot_record_bytes(section);
    header->checksums[section] = XXH3_64bits_digest(writer->hash);
}

/* Writes header and sections to fd and fdatasyncs it. */
static int write_file(int fd, const struct rush_shard *shard, uint32_t shard_index, uint64_t lsn)
{
    struct rush_snapshot_header header = {.magic = RUSH_SNAPSHOT_MAGIC,
                                          .version = RUSH_SNAPSHOT_VERSION,
                                          .shard_index = shard_index,
                                          .header_bytes = RUSH_SNAPSHOT_HEADER_BYTES,
                                          .lsn = lsn,
                                          .now_ns = shard->now_ns,
                                          .limits = shard->limits};
    struct writer writer = {.fd = fd, .offset = RUSH_SNAPSHOT_HEADER_BYTES};
    writer.buffer = malloc(WRITE_BUFFER_BYTES);
    writer.hash = XXH3_createState();
    int rc = -ENOMEM;
    if (writer.buffer == NULL || writer.hash == NULL)
        goto out_free;
    for (int s = 0; s < RUSH_SNAPSHOT_SECTION_COUNT; s++)
        put_section(&writer, shard, &header, (enum rush_snapshot_section)s);
    writer_flush(&writer);
    header.file_bytes = writer.offset;
    rush_snapshot_header_seal(&header);
    rc = writer.error;
    if (rc == 0 && pwrite(fd, &header, sizeof(header), 0) != (ssize_t)sizeof(header))
        rc = -EIO;
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
out_free:
    free(writer.buffer);
    XXH3_freeState(writer.hash);
    return rc;
}

/* Removes the shard's snapshots older than `lsn` and its leftover .tmp files; best effort. */
static void remove_older(int dir_fd, uint32_t shard_index, uint64_t lsn)
{
    DIR *listing = fdopendir(dup(dir_fd));
    if (listing == NULL)
        return;
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "snap-%02" PRIu32 "-", shard_index);
    int removed = 0;
    for (struct dirent *entry = readdir(listing); entry != NULL; entry = readdir(listing)) {
        uint64_t old;
        size_t length = strlen(entry->d_name);
        bool tmp = strncmp(entry->d_name, prefix, strlen(prefix)) == 0 && length > 9 &&
                   strcmp(entry->d_name + length - 9, ".snap.tmp") == 0;
        bool older = rush_snapshot_parse(entry->d_name, shard_index, &old) && old < lsn;
        if ((tmp || older) && unlinkat(dir_fd, entry->d_name, 0) == 0)
            removed++;
    }
    closedir(listing);
    if (removed > 0)
        (void)fsync(dir_fd); /* a crash before this only leaves an old file to remove again */
}

int rush_snapshot_write(const struct rush_shard *shard, const char *dir, uint32_t shard_index,
                        uint64_t lsn, char *why, size_t why_size)
{
    RUSH_ASSERT(shard != NULL && dir != NULL);
    char name[RUSH_SNAPSHOT_NAME_MAX], tmp[RUSH_SNAPSHOT_NAME_MAX + 8];
    rush_snapshot_name(name, sizeof(name), shard_index, lsn);
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    const char *step = "opening the directory";
    int rc = 0;
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        rc = -errno;
        goto out_report;
    }
    step = "creating";
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out_close_dir;
    }
    step = "writing";
    rc = write_file(fd, shard, shard_index, lsn);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0)
        goto out_unlink_tmp;
    step = "renaming";
    if (renameat(dir_fd, tmp, dir_fd, name) < 0) {
        rc = -errno;
        goto out_unlink_tmp;
    }
    step = "syncing the directory";
    if (fsync(dir_fd) < 0) {
        rc = -errno;
        goto out_close_dir;
    }
    remove_older(dir_fd, shard_index, lsn);
    close(dir_fd);
    return 0;

out_unlink_tmp:
    (void)unlinkat(dir_fd, tmp, 0);
out_close_dir:
    close(dir_fd);
out_report:
    snprintf(why, why_size, "snapshot %s/%s: %s: %s", dir, name, step, rush_strerror(rc));
    return rc;
}

/* ---- decoding ------------------------------------------------------------------------------- */

/* The most records a section may hold for the writer's limits. */
static uint64_t section_count_max(const struct rush_snapshot_header *header,
                                  enum rush_snapshot_section section)
{
    const struct rush_shard_limits *limits = &header->limits;
    switch (section) {
    case RUSH_SNAPSHOT_SKUS:
    case RUSH_SNAPSHOT_SKU_IDS:
        return limits->skus_max;
    case RUSH_SNAPSHOT_ORDERS:
        return limits->orders_max;
    case RUSH_SNAPSHOT_GROUPS:
        return limits->groups_max;
    case RUSH_SNAPSHOT_KEYS:
        return limits->keys_max;
    case RUSH_SNAPSHOT_USER_LIMITS:
        return limits->user_limits_max;
    case RUSH_SNAPSHOT_TIMERS:
        return (uint64_t)limits->orders_max + limits->groups_max;
    case RUSH_SNAPSHOT_SECTION_COUNT:
        break;
    }
    return 0;
}

static int decode_header(const uint8_t *bytes, size_t len, struct rush_snapshot_header *header,
                         char *why, size_t why_size)
{
    if (len < RUSH_SNAPSHOT_HEADER_BYTES)
        return refuse(why, why_size, "%zu bytes: shorter than a header", len);
    memcpy(header, bytes, sizeof(*header));
    if (header->magic != RUSH_SNAPSHOT_MAGIC)
        return refuse(why, why_size, "bad magic");
    uint64_t sum = XXH3_64bits(bytes, offsetof(struct rush_snapshot_header, header_checksum));
    if (sum != header->header_checksum)
        return refuse(why, why_size, "header checksum mismatch");
    if (header->version != RUSH_SNAPSHOT_VERSION)
        return refuse(why, why_size, "version %u, this build reads %u", header->version,
                      RUSH_SNAPSHOT_VERSION);
    if (header->flags != 0 || header->header_bytes != RUSH_SNAPSHOT_HEADER_BYTES)
        return refuse(why, why_size, "unknown flags or header size");
    if (header->counts[RUSH_SNAPSHOT_SKU_IDS] != header->counts[RUSH_SNAPSHOT_SKUS])
        return refuse(why, why_size, "%u SKU ids for %u SKUs",
                      header->counts[RUSH_SNAPSHOT_SKU_IDS], header->counts[RUSH_SNAPSHOT_SKUS]);
    return 0;
}

int rush_snapshot_decode(const uint8_t *bytes, size_t len, struct rush_snapshot_view *out,
                         char *why, size_t why_size)
{
    RUSH_ASSERT(out != NULL && (bytes != NULL || len == 0));
    memset(out, 0, sizeof(*out));
    int rc = decode_header(bytes, len, &out->header, why, why_size);
    if (rc < 0)
        return rc;
    const struct rush_snapshot_header *header = &out->header;
    uint64_t offset = RUSH_SNAPSHOT_HEADER_BYTES;
    for (int s = 0; s < RUSH_SNAPSHOT_SECTION_COUNT; s++) {
        enum rush_snapshot_section section = (enum rush_snapshot_section)s;
        const char *name = rush_snapshot_section_name(section);
        if (header->record_bytes[s] != rush_snapshot_record_bytes(section))
            return refuse(why, why_size, "%s: records of %u bytes, this build's are %u", name,
                          header->record_bytes[s], rush_snapshot_record_bytes(section));
        if (header->counts[s] > section_count_max(header, section))
            return refuse(why, why_size, "%s: %u records exceed the writer's limit %" PRIu64, name,
                          header->counts[s], section_count_max(header, section));
        uint64_t bytes_of = (uint64_t)header->counts[s] * header->record_bytes[s];
        if (offset + bytes_of > len)
            return refuse(why, why_size, "%s: ends at %" PRIu64 ", past the file's %zu bytes", name,
                          offset + bytes_of, len);
        if (XXH3_64bits(bytes + offset, bytes_of) != header->checksums[s])
            return refuse(why, why_size, "%s: checksum mismatch (at offset %" PRIu64 ")", name,
                          offset);
        out->sections[s] = bytes + offset;
        offset += bytes_of;
    }
    if (offset != len || header->file_bytes != len)
        return refuse(why, why_size, "length %zu, the header says %" PRIu64 ", sections %" PRIu64,
                      len, header->file_bytes, offset);
    return 0;
}

/* ---- restoring ------------------------------------------------------------------------------ */

/* An index field that is either NONE or one of 1..count. */
static bool link_ok(uint32_t index, uint32_t count)
{
    return index == NONE || (index >= 1 && index <= count);
}

static int fits(const struct rush_shard *shard, const struct rush_snapshot_header *header,
                char *why, size_t why_size)
{
    const struct rush_shard_limits *limits = &shard->limits;
    const uint32_t *counts = header->counts;
    struct {
        const char *what;
        uint32_t need;
        uint32_t have;
    } rows[] = {
        {"skus_max", counts[RUSH_SNAPSHOT_SKUS], limits->skus_max},
        {"orders_max", counts[RUSH_SNAPSHOT_ORDERS], limits->orders_max},
        {"groups_max", counts[RUSH_SNAPSHOT_GROUPS], limits->groups_max},
        {"keys_max", counts[RUSH_SNAPSHOT_KEYS], limits->keys_max},
        {"user_limits_max", counts[RUSH_SNAPSHOT_USER_LIMITS], limits->user_limits_max},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].need > rows[i].have) {
            snprintf(why, why_size,
                     "the snapshot holds %u entries against %s; this shard's limit is %u: raise "
                     "the limit",
                     rows[i].need, rows[i].what, rows[i].have);
            return RUSH_ECONFIG;
        }
    }
    return 0;
}

/* Ledger figures small enough that the checks' sums cannot overflow. */
static bool ledger_ok(const struct sku_state *sku)
{
    const int64_t max = INT64_MAX / 4;
    int64_t figures[] = {sku->stock_total, sku->available, sku->reserved, sku->confirmed,
                         sku->confirmed_retired};
    for (size_t i = 0; i < sizeof(figures) / sizeof(figures[0]); i++)
        if (figures[i] > max || figures[i] < -max)
            return false;
    return true;
}

static int restore_skus(struct rush_shard *shard, const struct rush_snapshot_view *view, char *why,
                        size_t why_size)
{
    uint32_t count = view->header.counts[RUSH_SNAPSHOT_SKUS];
    uint32_t groups = view->header.counts[RUSH_SNAPSHOT_GROUPS];
    memcpy(shard->skus, view->sections[RUSH_SNAPSHOT_SKUS], (size_t)count * sizeof(*shard->skus));
    shard->sku_count = count;
    for (uint32_t i = 0; i < count; i++) {
        const struct sku_state *sku = &shard->skus[i];
        if (sku->def.id == 0 || sku->def.group_size > RUSH_GROUP_SIZE_MAX)
            return refuse(why, why_size, "sku %u: id 0 or group size %u", i, sku->def.group_size);
        if (!ledger_ok(sku))
            return refuse(why, why_size, "sku %u: ledger figures out of range", i);
        for (int k = 0; k < RUSH_GROUP_SIZE_MAX; k++)
            if (!link_ok(sku->bucket_head[k], groups) || !link_ok(sku->bucket_tail[k], groups))
                return refuse(why, why_size, "sku %u: bucket %d names a group out of range", i, k);
    }
    const uint8_t *entries = view->sections[RUSH_SNAPSHOT_SKU_IDS];
    for (uint32_t i = 0; i < count; i++) {
        struct sku_entry entry;
        memcpy(&entry, entries + (size_t)i * sizeof(entry), sizeof(entry));
        rush_key want = rush_key_pair(0, entry.index < count ? shard->skus[entry.index].def.id : 0);
        if (entry.index >= count || memcmp(&want, &entry.key, sizeof(want)) != 0)
            return refuse(why, why_size, "sku id entry %u does not name its SKU", i);
        bool created;
        struct sku_entry *slot = rush_table_upsert(&shard->sku_ids, &entry.key, &created);
        if (slot == NULL || !created)
            return refuse(why, why_size, "sku id entry %u: a duplicate", i);
        *slot = entry;
    }
    return 0;
}

/*
 * The retired list is stored in the orders' links; its ends are found again: the head is the one
 * ended order no other names, the tail the one that names none. rush_shard_check then walks it.
 */
static int restore_retired(struct rush_shard *shard, char *why, size_t why_size)
{
    uint32_t count = shard->order_count;
    uint8_t *named = calloc((size_t)count + 1, 1);
    if (named == NULL)
        return -ENOMEM;
    for (uint32_t i = 1; i <= count; i++)
        if (shard->orders[i].state != RUSH_ORDER_RESERVED && shard->orders[i].retired_next != NONE)
            named[shard->orders[i].retired_next] = 1; /* a second name shows as a second head */
    uint32_t heads = 0, tails = 0;
    shard->retired_head = shard->retired_tail = NONE;
    for (uint32_t i = 1; i <= count; i++) {
        const struct order *order = &shard->orders[i];
        if (order->state == RUSH_ORDER_RESERVED)
            continue;
        if (named[i] == 0 && heads++ == 0)
            shard->retired_head = i;
        if (order->retired_next == NONE && tails++ == 0)
            shard->retired_tail = i;
    }
    free(named);
    if (heads > 1 || tails > 1 || (heads == 0) != (tails == 0))
        return refuse(why, why_size, "the retired orders are not one list");
    return 0;
}

/* The ring of other keys is stored in its entries' ring_seq; its places are found again. */
static int restore_ring(struct rush_shard *shard, char *why, size_t why_size)
{
    struct rush_key_ring *ring = &shard->ring;
    uint64_t first = UINT64_MAX, last = 0;
    uint32_t count = 0;
    for (uint32_t s = 0; s < shard->keys.slot_count; s++) {
        const struct key_entry *entry = rush_table_slot(&shard->keys, s);
        if (entry == NULL || entry->ring_seq == 0)
            continue;
        first = entry->ring_seq < first ? entry->ring_seq : first;
        last = entry->ring_seq > last ? entry->ring_seq : last;
        count++;
    }
    if (count == 0)
        return 0;
    if (count > ring->capacity || last - first + 1 != count)
        return refuse(why, why_size, "%u ring keys, places %" PRIu64 "..%" PRIu64 ", room %u",
                      count, first, last, ring->capacity);
    for (uint32_t s = 0; s < shard->keys.slot_count; s++) {
        const struct key_entry *entry = rush_table_slot(&shard->keys, s);
        if (entry == NULL || entry->ring_seq == 0)
            continue;
        rush_key *place = &ring->keys[(entry->ring_seq - 1) % ring->capacity];
        if (!rush_key_is_zero(place)) /* a place twice means another one is missing */
            return refuse(why, why_size, "ring place %" PRIu64 " is named twice", entry->ring_seq);
        *place = entry->key;
    }
    ring->seq_first = first - 1;
    ring->count = count;
    return 0;
}

static int restore_orders(struct rush_shard *shard, const struct rush_snapshot_view *view,
                          char *why, size_t why_size)
{
    uint32_t count = view->header.counts[RUSH_SNAPSHOT_ORDERS];
    uint32_t groups = view->header.counts[RUSH_SNAPSHOT_GROUPS];
    memcpy(&shard->orders[1], view->sections[RUSH_SNAPSHOT_ORDERS],
           (size_t)count * sizeof(*shard->orders));
    shard->order_count = count;
    for (uint32_t i = 1; i <= count; i++) {
        const struct order *order = &shard->orders[i];
        if (order->sku_index >= shard->sku_count || order->state > RUSH_ORDER_EXPIRED ||
            order->state == RUSH_ORDER_NONE || !link_ok(order->group_index, groups) ||
            !link_ok(order->member_next, count) || !link_ok(order->retired_next, count) ||
            order->amount_fen < 0)
            return refuse(why, why_size, "order %u: an index, state or amount out of range", i);
    }
    return restore_retired(shard, why, why_size);
}

static int restore_groups(struct rush_shard *shard, const struct rush_snapshot_view *view,
                          char *why, size_t why_size)
{
    uint32_t count = view->header.counts[RUSH_SNAPSHOT_GROUPS];
    memcpy(&shard->groups[1], view->sections[RUSH_SNAPSHOT_GROUPS],
           (size_t)count * sizeof(*shard->groups));
    shard->group_count = count;
    for (uint32_t i = 1; i <= count; i++) {
        const struct group *group = &shard->groups[i];
        if (group->sku_index >= shard->sku_count || group->state > RUSH_GROUP_FAILED ||
            group->state == RUSH_GROUP_NONE || group->seats > RUSH_GROUP_SIZE_MAX ||
            !link_ok(group->member_first, shard->order_count) ||
            !link_ok(group->member_last, shard->order_count) ||
            !link_ok(group->bucket_prev, count) || !link_ok(group->bucket_next, count))
            return refuse(why, why_size, "group %u: an index or state out of range", i);
    }
    return 0;
}

/* Re-inserts a table's entries: the loading table's seed decides where they land. */
static int restore_table(struct rush_table *table, const struct rush_snapshot_view *view,
                         enum rush_snapshot_section section, char *why, size_t why_size)
{
    uint32_t count = view->header.counts[section];
    const uint8_t *entries = view->sections[section];
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *entry = entries + (size_t)i * table->entry_bytes;
        rush_key key;
        memcpy(&key, entry, sizeof(key));
        bool created = false;
        uint8_t *slot = rush_key_is_zero(&key) ? NULL : rush_table_upsert(table, &key, &created);
        if (slot == NULL || !created)
            return refuse(why, why_size, "%s entry %u: a zero or duplicate key",
                          rush_snapshot_section_name(section), i);
        memcpy(slot, entry, table->entry_bytes);
    }
    return 0;
}

static int restore_timers(struct rush_shard *shard, const struct rush_snapshot_view *view,
                          char *why, size_t why_size)
{
    uint32_t count = view->header.counts[RUSH_SNAPSHOT_TIMERS];
    const uint8_t *records = view->sections[RUSH_SNAPSHOT_TIMERS];
    for (uint32_t i = 0; i < count; i++) {
        struct rush_snapshot_timer timer;
        memcpy(&timer, records + (size_t)i * sizeof(timer), sizeof(timer));
        bool order = timer.kind == TIMER_KIND_ORDER;
        uint32_t limit = order ? shard->order_count : shard->group_count;
        if ((!order && timer.kind != TIMER_KIND_GROUP) || timer.index == 0 || timer.index > limit)
            return refuse(why, why_size, "timer %u: kind %u index %u out of range", i, timer.kind,
                          timer.index);
        uint32_t handle = order ? timer.index : group_timer_handle(shard, timer.index);
        if (rush_timer_wheel_scheduled(&shard->timers, handle))
            return refuse(why, why_size, "timer %u: scheduled twice", i);
        rush_timer_wheel_add(&shard->timers, handle, timer.deadline_ns);
    }
    return 0;
}

static bool shard_is_fresh(const struct rush_shard *shard)
{
    return shard->sku_count == 0 && shard->order_count == 0 && shard->group_count == 0 &&
           shard->keys.count == 0 && shard->user_limits.count == 0 && shard->sku_ids.count == 0 &&
           shard->timers.scheduled_count == 0;
}

int rush_snapshot_restore(struct rush_shard *fresh_shard, const struct rush_snapshot_view *view,
                          char *why, size_t why_size)
{
    struct rush_shard *shard = fresh_shard;
    RUSH_ASSERT(shard != NULL && view != NULL);
    RUSH_ASSERT(shard_is_fresh(shard));
    int rc = fits(shard, &view->header, why, why_size);
    if (rc == 0)
        rc = restore_skus(shard, view, why, why_size);
    if (rc == 0)
        rc = restore_orders(shard, view, why, why_size);
    if (rc == 0)
        rc = restore_groups(shard, view, why, why_size);
    if (rc == 0)
        rc = restore_table(&shard->keys, view, RUSH_SNAPSHOT_KEYS, why, why_size);
    if (rc == 0)
        rc = restore_ring(shard, why, why_size);
    if (rc == 0)
        rc = restore_table(&shard->user_limits, view, RUSH_SNAPSHOT_USER_LIMITS, why, why_size);
    if (rc == 0)
        rc = restore_timers(shard, view, why, why_size);
    if (rc < 0)
        return rc;
    if (view->header.now_ns > shard->now_ns)
        shard->now_ns = view->header.now_ns;
    shard->sku_cached = NULL;
    return rush_shard_check(shard, why, why_size);
}

/* ---- loading -------------------------------------------------------------------------------- */

/* Maps, decodes and restores one snapshot file. */
static int load_file(struct rush_shard *shard, int dir_fd, const char *name, uint32_t shard_index,
                     uint64_t lsn, char *why, size_t why_size)
{
    struct rush_mapped_file map;
    int rc = rush_memory_map_file(dir_fd, name, MADV_WILLNEED, &map);
    if (rc < 0)
        return rc;
    struct rush_snapshot_view view;
    rc = rush_snapshot_decode(map.bytes, map.size, &view, why, why_size);
    if (rc == 0 && (view.header.shard_index != shard_index || view.header.lsn != lsn))
        rc = refuse(why, why_size, "holds shard %u lsn %" PRIu64 ", the name says otherwise",
                    view.header.shard_index, view.header.lsn);
    if (rc == 0)
        rc = rush_snapshot_restore(shard, &view, why, why_size);
    rush_memory_unmap_file(&map);
    return rc;
}

int rush_snapshot_load(struct rush_shard *fresh_shard, const char *dir, uint32_t shard_index,
                       uint64_t *lsn_out, char *why, size_t why_size)
{
    RUSH_ASSERT(fresh_shard != NULL && dir != NULL && lsn_out != NULL);
    *lsn_out = 0;
    uint64_t *lsns = NULL;
    int rc = rush_snapshot_list(dir, shard_index, &lsns);
    if (rc <= 0) {
        if (rc < 0)
            snprintf(why, why_size, "listing snapshots in %s: %s", dir, rush_strerror(rc));
        return rc;
    }
    uint64_t lsn = lsns[rc - 1];
    free(lsns);
    char name[RUSH_SNAPSHOT_NAME_MAX];
    rush_snapshot_name(name, sizeof(name), shard_index, lsn);
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        rc = -errno;
        snprintf(why, why_size, "%s: %s", dir, rush_strerror(rc));
        return rc;
    }
    char reason[256] = "";
    rc = load_file(fresh_shard, dir_fd, name, shard_index, lsn, reason, sizeof(reason));
    close(dir_fd);
    if (rc < 0) {
        snprintf(why, why_size, "snapshot %s/%s: %s", dir, name,
                 reason[0] ? reason : rush_strerror(rc));
        return rc;
    }
    *lsn_out = lsn;
    return 0;
}
