/*
 * stream_json.c — one stream event as one JSON object (stream_json.h), shared by rushctl tail and
 * rush-relay so that every consumer of the stream reads the same form.
 */
#include "codec/stream_json.h"

#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "codec/json.h"
#include "rush/assert.h"

static json_t *json_u64(uint64_t value)
{
    if (value <= (uint64_t)RUSH_JSON_EXACT_MAX)
        return json_integer((json_int_t)value);
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, value);
    return json_string(text);
}

static json_t *json_i64(int64_t value)
{
    if (value >= -RUSH_JSON_EXACT_MAX && value <= RUSH_JSON_EXACT_MAX)
        return json_integer((json_int_t)value);
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, value);
    return json_string(text);
}

static json_t *json_id(uint64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, value);
    return json_string(text);
}

/* Text of a field cut at its first NUL, as a JSON string; a UTF-8 sequence cut short is left out.
 */
static json_t *json_field(const uint8_t *bytes, size_t size)
{
    size_t len = strnlen((const char *)bytes, size);
    json_t *text = NULL;
    for (int cut = 0; cut < 4 && text == NULL && (size_t)cut <= len; cut++)
        text = json_stringn((const char *)bytes, len - (size_t)cut);
    return text != NULL ? text : json_string("?");
}

/*
 * An admin_audit and its parts: the admin_audit's line names the action and its SKU; the last
 * part's line adds who did it and why ("operator", "reason") once every part came in order.
 */
static void audit_fields(json_t *object, struct rush_stream_json_audit *audit,
                         const struct rush_stream_event *event)
{
    if (event->type == RUSH_EV_ADMIN_AUDIT) {
        *audit = (struct rush_stream_json_audit){
            .seq = event->seq, .sku_id = event->sku_id, .op = event->op};
        json_object_set_new(object, "action", json_string(rush_audit_action_name(event->op)));
        json_object_set_new(object, "sku", json_u64(event->sku_id));
        json_object_set_new(object, "amount", json_i64(event->price_fen));
        return;
    }
    json_object_set_new(object, "part", json_integer(event->qty));
    if (audit->seq == 0 || event->qty >= RUSH_AUDIT_PARTS ||
        event->seq != audit->seq + 1 + event->qty)
        return; /* its admin_audit was not seen (a cursor between them): no text */
    memcpy(audit->text + (size_t)event->qty * RUSH_AUDIT_PART_BYTES, event->text,
           RUSH_AUDIT_PART_BYTES);
    if (event->qty + 1 < RUSH_AUDIT_PARTS)
        return;
    json_object_set_new(object, "action", json_string(rush_audit_action_name(audit->op)));
    json_object_set_new(object, "sku", json_u64(audit->sku_id));
    /* the parts' bytes are a struct rush_audit */
    json_object_set_new(object, "operator",
                        json_field(audit->text + offsetof(struct rush_audit, operator_name),
                                   RUSH_AUDIT_OPERATOR_BYTES));
    json_object_set_new(
        object, "reason",
        json_field(audit->text + offsetof(struct rush_audit, reason), RUSH_AUDIT_REASON_BYTES));
    audit->seq = 0;
}

static void order_fields(json_t *object, const struct rush_stream_event *event)
{
    if (event->op != RUSH_OP_NONE)
        json_object_set_new(object, "op", json_string(rush_op_name(event->op)));
    if (event->order_id != 0)
        json_object_set_new(object, "order", json_id(event->order_id));
    if (event->group_id != 0)
        json_object_set_new(object, "group", json_id(event->group_id));
    json_object_set_new(object, "sku", json_u64(event->sku_id));
    if (event->user_id != 0)
        json_object_set_new(object, "user", json_u64(event->user_id));
    json_object_set_new(object, "qty", json_integer(event->qty));
    json_object_set_new(object, "price_fen", json_i64(event->price_fen));
}

size_t rush_stream_event_json(struct rush_stream_json_audit *audit,
                              const struct rush_stream_event *event, char *out, size_t cap)
{
    RUSH_ASSERT(audit != NULL && event != NULL && out != NULL);
    RUSH_ASSERT(cap > RUSH_STREAM_JSON_BYTES_MAX);
    json_t *object = json_object();
    json_object_set_new(object, "shard", json_integer(event->shard));
    json_object_set_new(object, "seq", json_u64(event->seq));
    json_object_set_new(object, "type", json_string(rush_event_type_name(event->type)));
    if (event->type == RUSH_EV_ADMIN_AUDIT || event->type == RUSH_EV_AUDIT_PART)
        audit_fields(object, audit, event);
    else
        order_fields(object, event);
    json_object_set_new(object, "time_ns", json_i64(event->time_ns));
    size_t len =
        json_dumpb(object, out, RUSH_STREAM_JSON_BYTES_MAX, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(object);
    RUSH_ASSERT(len > 0 && len < RUSH_STREAM_JSON_BYTES_MAX); /* bounded text: well under it */
    return len;
}
