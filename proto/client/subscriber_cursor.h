/*
 * subscriber_cursor.h — the cursor file's text form in memory, internal to rush (librush does
 * not export rush__ names). rush_stream_cursor_save/_load (rush/subscriber.h) are these plus the
 * file; tests/fuzz/fuzz_cursor.c drives the decoder with arbitrary bytes.
 */
#ifndef RUSH_SUBSCRIBER_CURSOR_H
#define RUSH_SUBSCRIBER_CURSOR_H

#include <stddef.h>

#include "rush/subscriber.h"

/* The largest cursor file: the magic, shards, output_bytes and checksum lines and one line per
 * shard, each at most 48 bytes. */
#define RUSH_STREAM_CURSOR_BYTES_MAX ((4 + RUSH_SHARDS_MAX) * 48)

/* Decodes a cursor file's bytes buf[0 .. len). 0, or RUSH_ECORRUPT with the reason in `why`
 * (may be NULL) and *out zeroed. Reads nothing outside buf[0 .. len). */
RUSH_MUST_USE int rush__stream_cursor_decode(const char *buf, size_t len,
                                             struct rush_stream_cursor *out, char *why,
                                             size_t why_size);

/* The bytes rush_stream_cursor_save writes for `cursor` (shard_count <= RUSH_SHARDS_MAX), into
 * buf[0 .. cap) with cap >= RUSH_STREAM_CURSOR_BYTES_MAX; returns their length. */
size_t rush__stream_cursor_encode(const struct rush_stream_cursor *cursor, char *buf, size_t cap);

#endif
