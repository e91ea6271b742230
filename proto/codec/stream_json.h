/*
 * stream_json.h — one stream event (rush/stream.h) as one JSON object: the form `rushctl tail`
 * prints and rush-relay publishes to Kafka and JetStream (proto/PROTOCOL.md, "The stream").
 *
 * Fields: shard, seq, type, then for order and group events op (when a request decided it),
 * order and group (decimal strings, when set), sku, user (when set), qty, price_fen, time_ns;
 * for an admin_audit: action, sku, amount; for an admin_audit_part: part, and on the last part of
 * an audit seen whole, action, sku, operator and reason. 64-bit figures follow json.h's rule
 * (a number up to RUSH_JSON_EXACT_MAX, else a decimal string).
 *
 * An admin action's text comes in RUSH_AUDIT_PARTS parts at consecutive seqs; the caller keeps
 * one struct rush_stream_json_audit per shard (zeroed at start) so that the last part can name
 * the operator and reason. A reader that starts between an audit and its parts prints the parts
 * without that text.
 *
 * Encoding allocates (jansson builds the object, freed before returning). Reentrant; one audit
 * per shard per caller.
 */
#ifndef RUSH_CODEC_STREAM_JSON_H
#define RUSH_CODEC_STREAM_JSON_H

#include <stddef.h>

#include "rush/stream.h"

/* One object, NUL excluded: an audit's text escaped 6 bytes a byte stays under 700. */
#define RUSH_STREAM_JSON_BYTES_MAX 1024

/* An admin_audit being put together from its parts (they follow it at seq + 1 ...). */
struct rush_stream_json_audit {
    uint64_t seq; /* the admin_audit's; 0: none */
    uint64_t sku_id;
    uint8_t op;
    uint8_t text[RUSH_AUDIT_PARTS * RUSH_AUDIT_PART_BYTES];
};

/*
 * Writes `event` as compact JSON into out[0 .. cap) (cap > RUSH_STREAM_JSON_BYTES_MAX), without a
 * newline or NUL, and returns its length. `audit` is the event's shard's.
 */
size_t rush_stream_event_json(struct rush_stream_json_audit *audit,
                              const struct rush_stream_event *event, char *out, size_t cap);

#endif
