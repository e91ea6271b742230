/*
 * names.c — the text names of codes and enums, for logs, JSON and rushctl.
 *
 * The names are part of the JSON form (ARCHITECTURE.md "Interfaces"): changing one breaks
 * clients.
 * Switches carry no default so that a new enum value is a compiler warning here.
 */
#include <string.h>

#include "rush/types.h"

const char *rush_strerror(int error)
{
    switch (error) {
    case 0:
        return "success";
    case RUSH_ECONFIG:
        return "configuration out of range";
    case RUSH_EFULL:
        return "a bounded table or ring is full";
    case RUSH_ESTOPPED:
        return "engine stopped";
    case RUSH_EWAL:
        return "write-ahead log failed (sticky)";
    case RUSH_ECORRUPT:
        return "data failed its checks";
    case RUSH_EPROTO:
        return "protocol error";
    case RUSH_ETIMEDOUT:
        return "timed out";
    case RUSH_EFENCED:
        return "fenced: this node lost the shard's lease before the batch was replicated";
    default:
        break;
    }
    if (error < 0 && error > RUSH_EBASE)
        return strerror(-error);
    return "unknown error";
}

static const char *const op_names[RUSH_OP_COUNT_] = {
    [RUSH_OP_NONE] = "none",
    [RUSH_OP_RESERVE] = "reserve",
    [RUSH_OP_CONFIRM] = "confirm",
    [RUSH_OP_CANCEL] = "cancel",
    [RUSH_OP_GROUP_OPEN] = "group_open",
    [RUSH_OP_GROUP_JOIN] = "group_join",
    [RUSH_OP_GROUP_JOIN_ANY] = "group_join_any",
    [RUSH_OP_QUERY_ORDER] = "query_order",
    [RUSH_OP_QUERY_GROUP] = "query_group",
    [RUSH_OP_QUERY_SKU] = "query_sku",
    [RUSH_OP_ADJUST] = "adjust",
    [RUSH_OP_PAUSE] = "pause",
    [RUSH_OP_RESUME] = "resume",
    [RUSH_OP_LIST_GROUPS] = "list_groups",
    [RUSH_OP_REGISTER] = "register",
};

static const char *const outcome_names[RUSH_OUTCOME_COUNT_] = {
    [RUSH_OK] = "ok",
    [RUSH_SOLD_OUT] = "sold_out",
    [RUSH_LIMIT_EXCEEDED] = "limit_exceeded",
    [RUSH_NOT_STARTED] = "not_started",
    [RUSH_ENDED] = "ended",
    [RUSH_PAUSED] = "paused",
    [RUSH_UNKNOWN_SKU] = "unknown_sku",
    [RUSH_UNKNOWN_ORDER] = "unknown_order",
    [RUSH_UNKNOWN_GROUP] = "unknown_group",
    [RUSH_GROUP_FULL] = "group_full",
    [RUSH_GROUP_CLOSED] = "group_closed",
    [RUSH_ALREADY_IN_GROUP] = "already_in_group",
    [RUSH_EXPIRED] = "expired",
    [RUSH_BUSY] = "busy",
    [RUSH_INVALID] = "invalid",
    [RUSH_OUTCOME_UNKNOWN] = "outcome_unknown",
    [RUSH_HOARDING] = "hoarding",
    [RUSH_NOT_ELIGIBLE] = "not_eligible",
    [RUSH_REDIRECT] = "redirect",
};

static const char *const reason_names[RUSH_REASON_COUNT_] = {
    [RUSH_REASON_NONE] = "none",
    [RUSH_REASON_OP] = "unknown_op",
    [RUSH_REASON_QTY] = "qty_out_of_range",
    [RUSH_REASON_KEY_REUSED] = "key_reused",
    [RUSH_REASON_KEY_MISSING] = "key_missing",
    [RUSH_REASON_NOT_GROUP_SKU] = "not_group_sku",
    [RUSH_REASON_GROUP_SKU] = "group_sku",
    [RUSH_REASON_GROUP_ORDER] = "group_order",
    [RUSH_REASON_ORDER_STATE] = "order_state",
    [RUSH_REASON_BELOW_RESERVED] = "below_reserved",
    [RUSH_REASON_UNLIMITED] = "unlimited",
    [RUSH_REASON_SKU_DEF] = "sku_definition",
    [RUSH_REASON_WRONG_SHARD] = "wrong_shard",
    [RUSH_REASON_SKU_HAS_GROUPS] = "sku_has_groups",
    [RUSH_REASON_LIMIT_BELOW_HELD] = "limit_below_held",
    [RUSH_REASON_INVITER_SELF] = "inviter_self",
    [RUSH_REASON_FIELD] = "field",
    [RUSH_REASON_NOT_NEW_USER] = "not_new_user",
    [RUSH_REASON_NOT_REGISTERED] = "not_registered",
    [RUSH_REASON_REGISTER_WINDOW] = "register_window",
    [RUSH_REASON_NOT_REGISTRABLE] = "not_registrable",
    [RUSH_REASON_ACTIVITY_LIMIT] = "activity_limit",
    [RUSH_REASON_ACTIVITY_DAY] = "activity_day_limit",
    [RUSH_REASON_SUBSIDY] = "subsidy_spent",
    [RUSH_REASON_ACTIVITY_SUBSIDY] = "activity_subsidy_spent",
};

static const char *const event_names[RUSH_EV_TYPE_COUNT_] = {
    [RUSH_EV_NONE] = "none",
    [RUSH_EV_REJECTED] = "rejected",
    [RUSH_EV_ORDER_RESERVED] = "order_reserved",
    [RUSH_EV_ORDER_CONFIRMED] = "order_confirmed",
    [RUSH_EV_ORDER_RELEASED] = "order_released",
    [RUSH_EV_ORDER_EXPIRED] = "order_expired",
    [RUSH_EV_GROUP_OPENED] = "group_opened",
    [RUSH_EV_GROUP_COMPLETED] = "group_completed",
    [RUSH_EV_GROUP_FAILED] = "group_failed",
    [RUSH_EV_REFUND_DUE] = "refund_due",
    [RUSH_EV_STOCK_ADJUSTED] = "stock_adjusted",
    [RUSH_EV_SKU_PAUSED] = "sku_paused",
    [RUSH_EV_SKU_RESUMED] = "sku_resumed",
    [RUSH_EV_SKU_PUT] = "sku_put",
    [RUSH_EV_SKU_PART] = "sku_part",
    [RUSH_EV_SEAT_INVITED] = "seat_invited",
    [RUSH_EV_INVITER_DUE] = "inviter_due",
    [RUSH_EV_ADMIN_AUDIT] = "admin_audit",
    [RUSH_EV_AUDIT_PART] = "admin_audit_part",
    [RUSH_EV_REGISTERED] = "registered",
    [RUSH_EV_TIER_REFUND_DUE] = "tier_refund_due",
};

static const char *const order_state_names[] = {"none", "reserved", "confirmed", "released",
                                                "expired"};
static const char *const group_state_names[] = {"none", "open", "completed", "failed"};

/* A value out of the table, or a gap in it (an outcome reserved for another branch): "unknown". */
#define NAME_OF(table, value)                                                                      \
    ((unsigned)(value) < sizeof(table) / sizeof((table)[0]) && (table)[value] != NULL              \
         ? (table)[value]                                                                          \
         : "unknown")

const char *rush_op_name(enum rush_op op)
{
    return NAME_OF(op_names, op);
}

const char *rush_audit_action_name(uint8_t op)
{
    if (op == RUSH_OP_NONE)
        return "sku_put";
    return op == RUSH_AUDIT_OP_SNAPSHOT ? "snapshot" : rush_op_name(op);
}

const char *rush_outcome_name(enum rush_outcome outcome)
{
    return NAME_OF(outcome_names, outcome);
}

const char *rush_reason_name(enum rush_reason reason)
{
    return NAME_OF(reason_names, reason);
}

const char *rush_event_type_name(enum rush_event_type type)
{
    return NAME_OF(event_names, type);
}

const char *rush_order_state_name(enum rush_order_state state)
{
    return NAME_OF(order_state_names, state);
}

const char *rush_group_state_name(enum rush_group_state state)
{
    return NAME_OF(group_state_names, state);
}

static int index_of(const char *const *names, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (names[i] != NULL && strcmp(names[i], name) == 0)
            return i;
    return -1;
}

int rush_op_from_name(const char *name)
{
    int op = index_of(op_names, RUSH_OP_COUNT_, name);
    return op == RUSH_OP_NONE ? -1 : op;
}

int rush_outcome_from_name(const char *name)
{
    return index_of(outcome_names, RUSH_OUTCOME_COUNT_, name);
}
