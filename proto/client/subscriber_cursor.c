/*
 * subscriber_cursor.c — a stream cursor on disk (rush/subscriber.h): saved atomically, loaded
 * strictly.
 *
 * Why. A consumer that restarts must resume exactly where it stopped: the cursor file is the
 * only record of that, so it must be either the old cursor or the new one after a crash
 * (write a temporary file, fsync, rename, fsync the directory), and a damaged one must stop the
 * consumer rather than silently restart it from seq 1 (which would deliver everything again) or
 * from a wrong seq (which would lose events).
 *
 * Format: text a person can read in an incident, ending with a checksum of what precedes it.
 *
 *     rush-stream-cursor 1
 *     shards 2
 *     output_bytes 1234
 *     0 15
 *     1 7
 *     xxh3 9d1c0a55e2f3b7a4
 *
 * One line per shard in shard order, decimal numbers without sign or leading zeros, "\n" line
 * ends, XXH3-64 of every byte before the "xxh3 " line in 16 lower-case hex digits.
 *
 * Workload: one save per delivered batch (three fsyncs), one load at start. Files are at most
 * CURSOR_BYTES_MAX bytes; nothing is allocated.
 *
 * Threads: stateless; any thread (two savers of the same path race on path.tmp: don't).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/number.h"
#include "base/why.h"
#include "rush/assert.h"
#include "rush/subscriber.h"
#include "subscriber_cursor.h"

#define CURSOR_MAGIC_LINE "rush-stream-cursor 1\n"
#define CURSOR_LINE_BYTES_MAX 48 /* "output_bytes " + 20 digits + "\n" */
#define CURSOR_BYTES_MAX RUSH_STREAM_CURSOR_BYTES_MAX
static_assert(CURSOR_BYTES_MAX == (4 + RUSH_SHARDS_MAX) * CURSOR_LINE_BYTES_MAX, "one size");
#define DIGITS_MAX 20 /* UINT64_MAX has 20 decimal digits */

/* Says why in why[] and returns RUSH_ECORRUPT. */
#define damaged(why, why_size, ...) rush__refuse(RUSH_ECORRUPT, why, why_size, __VA_ARGS__)

/* ---- save ---- */

static size_t cursor_format(const struct rush_stream_cursor *cursor, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "%sshards %" PRIu32 "\noutput_bytes %" PRIu64 "\n",
                                  CURSOR_MAGIC_LINE, cursor->shard_count, cursor->output_bytes);
    for (uint32_t i = 0; i < cursor->shard_count; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%" PRIu32 " %" PRIu64 "\n", i,
                                cursor->delivered_seq[i]);
    len += (size_t)snprintf(buf + len, cap - len, "xxh3 %016" PRIx64 "\n",
                            (uint64_t)XXH3_64bits(buf, len));
    RUSH_ASSERT(len < cap);
    return len;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) { /* each pass writes >= 1 byte or fails */
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsync of the directory holding path, so that a rename in it is durable. */
static int directory_sync(const char *path)
{
    char directory[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(directory, sizeof directory, ".");
    else if (slash == path)
        snprintf(directory, sizeof directory, "/");
    else
        snprintf(directory, sizeof directory, "%.*s", (int)(slash - path), path);
    int fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int rush_stream_cursor_save(const char *path, const struct rush_stream_cursor *cursor)
{
    RUSH_ASSERT(path != NULL && cursor != NULL);
    if (cursor->shard_count > RUSH_SHARDS_MAX)
        return -EINVAL;
    char temporary[PATH_MAX];
    if ((size_t)snprintf(temporary, sizeof temporary, "%s.tmp", path) >= sizeof temporary)
        return -ENAMETOOLONG;
    char buf[CURSOR_BYTES_MAX];
    size_t len = cursor_format(cursor, buf, sizeof buf);
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, buf, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(temporary, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(temporary);
        return rc;
    }
    return directory_sync(path);
}

/* ---- load ---- */

/* A decimal u64 without sign or leading zero at *at (base/number.h), then `end_char`; advances
 * *at. */
static int parse_u64(const char **at, const char *end, char end_char, uint64_t *out)
{
    const char *p = *at;
    while (p < end && *p >= '0' && *p <= '9' && p - *at <= DIGITS_MAX) /* at most 21 steps */
        p++;
    size_t digits = (size_t)(p - *at);
    if ((digits > 1 && **at == '0') || p >= end || *p != end_char ||
        rush_number_parse_u64(*at, digits, 0, UINT64_MAX, out, NULL, 0) != 0)
        return -1;
    *at = p + 1;
    return 0;
}

/* The literal `word` at *at; advances *at. */
static int parse_word(const char **at, const char *end, const char *word)
{
    size_t len = strlen(word);
    if ((size_t)(end - *at) < len || memcmp(*at, word, len) != 0)
        return -1;
    *at += len;
    return 0;
}

/* Everything after the magic line and before the checksum line. */
static int cursor_parse(const char *at, const char *end, struct rush_stream_cursor *out, char *why,
                        size_t why_size)
{
    uint64_t shard_count = 0;
    if (parse_word(&at, end, "shards ") != 0 || parse_u64(&at, end, '\n', &shard_count) != 0 ||
        shard_count > RUSH_SHARDS_MAX)
        return damaged(why, why_size, "bad 'shards' line (0..%d)", RUSH_SHARDS_MAX);
    out->shard_count = (uint32_t)shard_count;
    if (parse_word(&at, end, "output_bytes ") != 0 ||
        parse_u64(&at, end, '\n', &out->output_bytes) != 0)
        return damaged(why, why_size, "bad 'output_bytes' line");
    for (uint32_t i = 0; i < out->shard_count; i++) {
        uint64_t shard = 0;
        if (parse_u64(&at, end, ' ', &shard) != 0 || shard != i ||
            parse_u64(&at, end, '\n', &out->delivered_seq[i]) != 0)
            return damaged(why, why_size, "bad line for shard %u", i);
    }
    if (at != end)
        return damaged(why, why_size, "unexpected text after shard %u", out->shard_count);
    return 0;
}

static int file_read(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    *len = 0;
    int rc = 0;
    while (*len < cap) { /* each pass reads >= 1 byte, or ends */
        ssize_t n = read(fd, buf + *len, cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        *len += (size_t)n;
    }
    close(fd);
    return rc;
}

int rush__stream_cursor_decode(const char *buf, size_t len, struct rush_stream_cursor *out,
                               char *why, size_t why_size)
{
    RUSH_ASSERT(buf != NULL || len == 0);
    RUSH_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    if (len > CURSOR_BYTES_MAX)
        return damaged(why, why_size, "over %d bytes", CURSOR_BYTES_MAX);
    const char *magic = CURSOR_MAGIC_LINE;
    if (len < strlen(magic) || memcmp(buf, magic, strlen(magic)) != 0)
        return damaged(why, why_size, "not a stream cursor");
    /* the checksum line: "xxh3 " + 16 hex digits + "\n" at the very end */
    const size_t sum_bytes = 5 + 16 + 1;
    uint64_t sum = 0;
    char tail[sizeof "xxh3 0123456789abcdef\n"];
    snprintf(tail, sizeof tail, "xxh3 %016" PRIx64 "\n",
             len >= sum_bytes ? (uint64_t)XXH3_64bits(buf, len - sum_bytes) : sum);
    if (len < strlen(magic) + sum_bytes || memcmp(buf + len - sum_bytes, tail, sum_bytes) != 0)
        return damaged(why, why_size, "checksum mismatch (damaged or cut short)");
    int rc = cursor_parse(buf + strlen(magic), buf + len - sum_bytes, out, why, why_size);
    if (rc < 0) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    return 0;
}

size_t rush__stream_cursor_encode(const struct rush_stream_cursor *cursor, char *buf, size_t cap)
{
    RUSH_ASSERT(cursor != NULL && cursor->shard_count <= RUSH_SHARDS_MAX);
    RUSH_ASSERT(cap >= RUSH_STREAM_CURSOR_BYTES_MAX);
    return cursor_format(cursor, buf, cap);
}

int rush_stream_cursor_load(const char *path, struct rush_stream_cursor *out, char *why,
                            size_t why_size)
{
    RUSH_ASSERT(path != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    char buf[CURSOR_BYTES_MAX + 1];
    size_t len = 0;
    int rc = file_read(path, buf, sizeof buf, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        if (why != NULL && why_size > 0)
            snprintf(why, why_size, "cannot read %s: %s", path, strerror(-rc));
        return rc;
    }
    char reason[128];
    rc = rush__stream_cursor_decode(buf, len, out, reason, sizeof reason);
    if (rc < 0)
        return rush__refuse(rc, why, why_size, "%s: %s", path, reason);
    return 1;
}
