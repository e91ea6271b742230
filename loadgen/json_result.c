/*
 * json_result.c — a JSON answer into a struct rush_result (see json_result.h).
 */
#include "json_result.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/number.h"
#include "base/why.h"
#include "route.h"
#include "rush/assert.h"

#define fail(why, why_size, ...) rush__refuse(RUSH_EPROTO, why, why_size, __VA_ARGS__)

/* A name's index in 0..count-1 through the names.c lookup `name_of`, or -1. */
static int index_of(const char *name, int count, const char *(*name_of)(int))
{
    for (int i = 0; i < count; i++) {
        const char *known = name_of(i);
        if (known != NULL && strcmp(known, name) == 0)
            return i;
    }
    return -1;
}

static const char *reason_name(int i)
{
    return rush_reason_name((enum rush_reason)i);
}

static const char *order_state_name(int i)
{
    return rush_order_state_name((enum rush_order_state)i);
}

/* A u64 written as a JSON number or a decimal string (json.h "64-bit numbers"); 0 if neither. */
static uint64_t u64_of(const json_t *value)
{
    if (json_is_integer(value))
        return (uint64_t)json_integer_value(value);
    uint64_t out = 0;
    char reason[64];
    if (json_is_string(value) &&
        rush_number_parse_u64(json_string_value(value), json_string_length(value), 0, UINT64_MAX,
                              &out, reason, sizeof(reason)) == 0)
        return out;
    return 0;
}

static int outcome_of(const json_t *root, struct rush_result *out, char *why, size_t why_size)
{
    const char *outcome = json_string_value(json_object_get(root, "outcome"));
    if (outcome == NULL)
        return fail(why, why_size, "an answer without an outcome");
    if (strcmp(outcome, "redirect") == 0) {
        const json_t *leader = json_object_get(root, "leader");
        out->outcome = RUSH_REDIRECT;
        out->reason = RUSH_REASON_WRONG_SHARD;
        out->state = (uint8_t)u64_of(json_object_get(root, "shard"));
        out->qty =
            json_is_integer(leader) ? (uint32_t)json_integer_value(leader) : RUSH_ROUTE_NO_LEADER;
        return 0;
    }
    int o = rush_outcome_from_name(outcome);
    if (o < 0)
        return fail(why, why_size, "an answer with an unknown outcome '%.40s'", outcome);
    out->outcome = (uint8_t)o;
    const char *reason = json_string_value(json_object_get(root, "reason"));
    if (o == RUSH_INVALID && reason != NULL) {
        int r = index_of(reason, RUSH_REASON_COUNT_, reason_name);
        out->reason = (uint8_t)(r < 0 ? RUSH_REASON_NONE : r); /* a decode error's free text */
    }
    return 0;
}

int rush_json_result_decode(const char *text, size_t len, struct rush_result *out, char *why,
                            size_t why_size)
{
    RUSH_ASSERT(text != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    json_error_t error;
    json_t *root = json_loadb(text, len, 0, &error);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return fail(why, why_size, "an answer that is not a JSON object");
    }
    int rc = outcome_of(root, out, why, why_size);
    if (rc == 0 && out->outcome != RUSH_REDIRECT) {
        if (json_is_true(json_object_get(root, "duplicate")))
            out->flags |= RUSH_RESULT_DUPLICATE;
        if (json_is_true(json_object_get(root, "unlimited")))
            out->flags |= RUSH_RESULT_UNLIMITED;
        out->order_id = u64_of(json_object_get(root, "order"));
        out->group_id = u64_of(json_object_get(root, "group"));
        out->remaining = (int64_t)u64_of(json_object_get(root, "remaining"));
        out->qty = (uint32_t)u64_of(json_object_get(root, "qty"));
        const char *state = json_string_value(json_object_get(root, "state"));
        int s = state != NULL ? index_of(state, RUSH_ORDER_EXPIRED + 1, order_state_name) : -1;
        out->state = (uint8_t)(s < 0 ? 0 : s);
    }
    if (rc == 0)
        out->tag = u64_of(json_object_get(root, "tag"));
    json_decref(root);
    return rc;
}
