/*
 * json_result.h — the JSON endpoint's answer to one request, read back into a struct
 * rush_result, so that rush-loadgen's ledger, scenarios and verifier treat a JSON run exactly as
 * a binary one.
 *
 * What is read (proto/codec/json.h writes it): "outcome" (a name from names.c, or "redirect"),
 * "reason", "duplicate", "unlimited", "order" and "group" (decimal strings or numbers),
 * "remaining", "state" (an order state name), "qty", "tag"; a redirect's "shard" and "leader"
 * (a node index, or null) become `state` and `qty` as in the binary redirect (loadgen/route.h).
 * Members not listed are skipped; a missing member leaves its field zero. An answer without an
 * outcome, or with a name this build does not know, is refused.
 *
 * Workload: one small object per reply, parsed with jansson (a tree allocated and freed per
 * call). Threads: no state; any thread.
 */
#ifndef RUSH_JSON_RESULT_H
#define RUSH_JSON_RESULT_H

#include <stddef.h>

#include "rush/types.h"

/* 0 with *out filled, or RUSH_EPROTO with a reason in why. */
RUSH_MUST_USE int rush_json_result_decode(const char *text, size_t len, struct rush_result *out,
                                          char *why, size_t why_size);

#endif
