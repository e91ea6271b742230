/*
 * sku.c — the one rule set for a SKU definition. The campaign file, the JSON sku_put and the
 * binary SKU_PUT all check a definition here, so a SKU the file refuses is refused on the wire
 * with the same reason (see sku.h). It also says what a put names (rush_sku_merge), so that the
 * JSON codec, the wire and the engine share one meaning of a partial put.
 *
 * Threads: none; pure functions of their arguments.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/why.h"
#include "rush/assert.h"
#include "sku.h"

/*
 * One stock, several prices: a group-buy SKU's seats pay group_price (when set), its leader
 * leader_price (when set; 0 = the leader is free), and with solo_allowed a plain reserve buys
 * from the same stock at price. No price is above the list price: the difference is the deal.
 */
static int sku_check_prices(const struct rush_sku *sku, char *why, size_t why_size)
{
    if (sku->solo_allowed > 1)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "solo_allowed must be 0 or 1");
    if ((sku->prices & ~(RUSH_SKU_GROUP_PRICE | RUSH_SKU_LEADER_PRICE)) != 0)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "prices holds unknown bits 0x%x",
                            sku->prices & ~(RUSH_SKU_GROUP_PRICE | RUSH_SKU_LEADER_PRICE));
    if (sku->group_size == 0 && (sku->solo_allowed || sku->prices != 0))
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "solo_allowed, group_price and leader_price need group_size (this is "
                            "not a group-buy SKU: it sells at price)");
    if (!(sku->prices & RUSH_SKU_GROUP_PRICE) && sku->group_price_fen != 0)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "group_price_fen must be 0 unless the group price is set");
    if (!(sku->prices & RUSH_SKU_LEADER_PRICE) && sku->leader_price_fen != 0)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "leader_price_fen must be 0 unless the leader price is set");
    if (sku->group_price_fen < 0 || sku->group_price_fen > sku->price_fen)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "group_price must be 0..%" PRId64 " fen (at most the list price)",
                            sku->price_fen);
    if (sku->leader_price_fen < 0 || sku->leader_price_fen > sku->price_fen)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "leader_price must be 0..%" PRId64 " fen (at most the list price)",
                            sku->price_fen);
    return 0;
}

static int sku_check_group(const struct rush_sku *sku, char *why, size_t why_size)
{
    int rc = sku_check_prices(sku, why, why_size);
    if (rc < 0)
        return rc;
    if (sku->group_size == 0) {
        if (sku->group_ttl_ns != 0 || sku->groups_open_max != 0 || sku->virtual_policy != 0 ||
            sku->virtual_seats_max != 0 || sku->virtual_budget != 0)
            return rush__refuse(RUSH_ECONFIG, why, why_size,
                                "group_ttl, groups_open_max and virtual_* need group_size "
                                "(this is not a group-buy SKU)");
        return 0;
    }
    if (sku->group_size < 2 || sku->group_size > RUSH_GROUP_SIZE_MAX)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "group_size must be 2..%d",
                            RUSH_GROUP_SIZE_MAX);
    if (sku->group_ttl_ns < RUSH_GROUP_TTL_NS_MIN || sku->group_ttl_ns > RUSH_TTL_NS_MAX)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "group_ttl must be 1s..168h for a group-buy SKU");
    if (sku->groups_open_max < 1 || sku->groups_open_max > RUSH_GROUPS_OPEN_MAX)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "groups_open_max must be 1..%u",
                            RUSH_GROUPS_OPEN_MAX);
    if (sku->virtual_policy > RUSH_VIRTUAL_AT_MOST)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "virtual_policy must be none, fill or at_most");
    switch ((enum rush_virtual_policy)sku->virtual_policy) {
    case RUSH_VIRTUAL_NONE:
        if (sku->virtual_seats_max != 0 || sku->virtual_budget != 0)
            return rush__refuse(RUSH_ECONFIG, why, why_size,
                                "virtual_seats_max and virtual_budget need virtual_policy fill or "
                                "at_most");
        return 0;
    case RUSH_VIRTUAL_FILL:
        if (sku->virtual_seats_max != 0)
            return rush__refuse(RUSH_ECONFIG, why, why_size,
                                "virtual_seats_max applies to virtual_policy at_most only (fill "
                                "fills every empty seat)");
        break;
    case RUSH_VIRTUAL_AT_MOST:
        if (sku->virtual_seats_max < 1 || sku->virtual_seats_max >= sku->group_size)
            return rush__refuse(RUSH_ECONFIG, why, why_size,
                                "virtual_seats_max must be 1..%u (below group_size) for at_most",
                                sku->group_size - 1);
        break;
    }
    if (sku->virtual_budget < 1)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "virtual_budget must be at least 1 with virtual_policy %s",
                            sku->virtual_policy == RUSH_VIRTUAL_FILL ? "fill" : "at_most");
    return 0;
}

/*
 * Who may buy: new users only, registered users only (a registration window that closes no later
 * than the sale opens is not required: registering during the sale is allowed), and membership
 * of the activity of the id's family.
 */
static int sku_check_rules(const struct rush_sku *sku, char *why, size_t why_size)
{
    if ((sku->rules & ~RUSH_SKU_RULES_ALL) != 0)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "rules holds unknown bits 0x%x",
                            sku->rules & ~RUSH_SKU_RULES_ALL);
    if ((sku->rules & RUSH_SKU_IN_ACTIVITY) && rush_sku_family(sku->id) == 0)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "an activity's SKU needs a family id (%" PRIu64 "..%" PRIu64
                            ": its SKUs share id / %" PRIu64 ")",
                            RUSH_SKU_FAMILY_ID_MIN, RUSH_SKU_ID_MAX, RUSH_SKU_FAMILY_SIZE);
    if (!(sku->rules & RUSH_SKU_REGISTRATION)) {
        if (sku->register_from_ns != 0 || sku->register_until_ns != 0)
            return rush__refuse(RUSH_ECONFIG, why, why_size,
                                "register_from and register_until need registration_required");
        return 0;
    }
    if (sku->register_from_ns < 0 || sku->register_from_ns == RUSH_TIME_NEVER)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "register_from must be a time (not never)");
    if (sku->register_until_ns <= sku->register_from_ns || sku->register_until_ns > sku->end_ns)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "register_until must be after register_from and not after end");
    return 0;
}

/*
 * Tiers (阶梯团): 2..RUSH_TIERS_MAX tiers... or one; sizes strictly increasing from 2, the last
 * group_size; prices strictly decreasing, the first at most the list price. Seats pay the first
 * tier's price, so a tiered SKU sets no group or leader price; empty seats are not filled with
 * virtual buyers (the tiers are its answer to a group that does not fill).
 */
static int sku_check_tiers(const struct rush_sku *sku, char *why, size_t why_size)
{
    if (!rush_sku_pad_is_zero(sku))
        return rush__refuse(RUSH_ECONFIG, why, why_size, "reserved bytes must be 0");
    if (sku->subsidy_budget_fen < 0 || sku->subsidy_budget_fen > RUSH_SUBSIDY_FEN_MAX ||
        (sku->subsidy_budget_fen != 0 && sku->group_size == 0))
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "subsidy_budget_fen must be 0..%" PRId64 " on a group-buy SKU (solo "
                            "orders pay the list price)",
                            RUSH_SUBSIDY_FEN_MAX);
    if (sku->tier_count > RUSH_TIERS_MAX)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "at most %d tiers", RUSH_TIERS_MAX);
    for (uint32_t t = sku->tier_count; t < RUSH_TIERS_MAX; t++)
        if (sku->tier_size[t] != 0 || sku->tier_price_fen[t] != 0)
            return rush__refuse(RUSH_ECONFIG, why, why_size, "tiers past tier_count must be 0");
    if (sku->tier_count == 0)
        return 0;
    if (sku->group_size == 0)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "tiers need a group-buy SKU");
    if (sku->prices != 0 || sku->virtual_policy != RUSH_VIRTUAL_NONE)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "tiers set the seats' prices and take no virtual seats: no "
                            "group_price, leader_price or virtual_policy with tiers");
    for (uint32_t t = 0; t < sku->tier_count; t++) {
        if (sku->tier_size[t] < 2 || (t > 0 && sku->tier_size[t] <= sku->tier_size[t - 1]))
            return rush__refuse(RUSH_ECONFIG, why, why_size,
                                "tier sizes must be at least 2 and strictly increasing");
        if (sku->tier_price_fen[t] < 0 ||
            (t == 0 ? sku->tier_price_fen[t] > sku->price_fen
                    : sku->tier_price_fen[t] >= sku->tier_price_fen[t - 1]))
            return rush__refuse(RUSH_ECONFIG, why, why_size,
                                "tier prices must be strictly decreasing, the first at most the "
                                "list price %" PRId64 " fen",
                                sku->price_fen);
    }
    if (sku->tier_size[sku->tier_count - 1] != sku->group_size)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "the last tier's size must be group_size %u", sku->group_size);
    return 0;
}

int rush_sku_check(const struct rush_sku *sku, char *why, size_t why_size)
{
    RUSH_ASSERT(sku != NULL);
    RUSH_ASSERT(why != NULL || why_size == 0);
    if (sku->id < 1 || sku->id > RUSH_SKU_ID_MAX)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "sku id must be 1..%" PRIu64,
                            RUSH_SKU_ID_MAX);
    if (sku->name[0] == '\0')
        return rush__refuse(RUSH_ECONFIG, why, why_size, "name must not be empty");
    if (sku->unlimited > 1 || sku->paused > 1)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "unlimited and paused must be 0 or 1");
    if (sku->unlimited && sku->stock != 0)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "stock must be 0 when unlimited");
    if (sku->stock < 0 || sku->stock > RUSH_STOCK_MAX)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "stock must be 0..%" PRId64 " or unlimited", RUSH_STOCK_MAX);
    if (sku->price_fen < 0 || sku->price_fen > RUSH_PRICE_FEN_MAX)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "price must be 0..%" PRId64 " fen",
                            RUSH_PRICE_FEN_MAX);
    if (sku->start_ns < 0 || sku->start_ns == RUSH_TIME_NEVER)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "start must be a time (not never)");
    if (sku->end_ns <= sku->start_ns)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "end must be after start");
    if (sku->order_qty_max < 1 || sku->order_qty_max > RUSH_QTY_MAX)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "order_qty_max must be 1..%d",
                            RUSH_QTY_MAX);
    if (sku->user_qty_max < sku->order_qty_max || sku->user_qty_max > RUSH_QTY_MAX)
        return rush__refuse(RUSH_ECONFIG, why, why_size,
                            "user_qty_max must be %u..%d (at least order_qty_max)",
                            sku->order_qty_max, RUSH_QTY_MAX);
    if (sku->pay_ttl_ns < 0 || sku->pay_ttl_ns > RUSH_TTL_NS_MAX)
        return rush__refuse(RUSH_ECONFIG, why, why_size, "pay_ttl must be 0..168h");
    int rc = sku_check_rules(sku, why, why_size);
    if (rc == 0)
        rc = sku_check_group(sku, why, why_size);
    return rc < 0 ? rc : sku_check_tiers(sku, why, why_size);
}

uint32_t rush_sku_fields_missing(const struct rush_sku *put)
{
    RUSH_ASSERT(put != NULL);
    if (put->fields == 0)
        return 0;
    bool unlimited = (put->fields & RUSH_SKU_FIELD_UNLIMITED) != 0 && put->unlimited;
    uint32_t required = RUSH_SKU_FIELDS_REQUIRED | (unlimited ? 0 : RUSH_SKU_FIELD_STOCK);
    return required & ~put->fields;
}

bool rush_sku_pad_is_zero(const struct rush_sku *sku)
{
    for (size_t i = 0; i < sizeof(sku->pad); i++)
        if (sku->pad[i] != 0)
            return false;
    for (size_t i = 0; i < sizeof(sku->pad2); i++)
        if (sku->pad2[i] != 0)
            return false;
    for (size_t i = 0; i < sizeof(sku->pad3); i++)
        if (sku->pad3[i] != 0)
            return false;
    return true;
}

int rush_sku_tiers_parse(const char *text, struct rush_sku *sku)
{
    uint8_t sizes[RUSH_TIERS_MAX] = {0};
    int64_t prices[RUSH_TIERS_MAX] = {0};
    uint32_t count = 0;
    const char *p = text + strspn(text, " ");
    while (*p != '\0') {
        char *end;
        if (count == RUSH_TIERS_MAX || *p < '0' || *p > '9')
            return -1;
        unsigned long size = strtoul(p, &end, 10);
        if (*end != ':' || end[1] < '0' || end[1] > '9' || size > RUSH_GROUP_SIZE_MAX)
            return -1;
        long long price = strtoll(end + 1, &end, 10);
        if (price > RUSH_PRICE_FEN_MAX)
            return -1;
        sizes[count] = (uint8_t)size;
        prices[count++] = price;
        p = end + strspn(end, " ");
        if (*p == ',') {
            p += 1 + strspn(p + 1, " ");
            if (*p == '\0')
                return -1; /* a trailing comma */
        } else if (*p != '\0') {
            return -1;
        }
    }
    memcpy(sku->tier_size, sizes, sizeof(sizes));
    memcpy(sku->tier_price_fen, prices, sizeof(prices));
    sku->tier_count = (uint8_t)count;
    return 0;
}

int rush_sku_tiers_format(const struct rush_sku *sku, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (uint32_t t = 0; t < sku->tier_count && t < RUSH_TIERS_MAX; t++) {
        int n = snprintf(out + used, cap - used, "%s%u:%" PRId64, t ? ", " : "", sku->tier_size[t],
                         sku->tier_price_fen[t]);
        if (n < 0 || (size_t)n >= cap - used)
            return -1;
        used += (size_t)n;
    }
    return (int)used;
}

/* Where each named field lives in the record: a put copies these bytes and no others. */
#define SKU_FIELD(bit, member)                                                                     \
    {                                                                                              \
        bit, offsetof(struct rush_sku, member), sizeof(((struct rush_sku *)0)->member)             \
    }
static const struct {
    uint32_t bit;
    uint16_t offset;
    uint16_t bytes;
} sku_fields[] = {
    SKU_FIELD(RUSH_SKU_FIELD_NAME, name),
    SKU_FIELD(RUSH_SKU_FIELD_STOCK, stock),
    SKU_FIELD(RUSH_SKU_FIELD_UNLIMITED, unlimited),
    SKU_FIELD(RUSH_SKU_FIELD_PRICE, price_fen),
    SKU_FIELD(RUSH_SKU_FIELD_START, start_ns),
    SKU_FIELD(RUSH_SKU_FIELD_END, end_ns),
    SKU_FIELD(RUSH_SKU_FIELD_PAY_TTL, pay_ttl_ns),
    SKU_FIELD(RUSH_SKU_FIELD_ORDER_QTY_MAX, order_qty_max),
    SKU_FIELD(RUSH_SKU_FIELD_USER_QTY_MAX, user_qty_max),
    SKU_FIELD(RUSH_SKU_FIELD_PAUSED, paused),
    SKU_FIELD(RUSH_SKU_FIELD_GROUP_SIZE, group_size),
    SKU_FIELD(RUSH_SKU_FIELD_GROUP_TTL, group_ttl_ns),
    SKU_FIELD(RUSH_SKU_FIELD_GROUPS_OPEN_MAX, groups_open_max),
    SKU_FIELD(RUSH_SKU_FIELD_VIRTUAL_POLICY, virtual_policy),
    SKU_FIELD(RUSH_SKU_FIELD_VIRTUAL_SEATS_MAX, virtual_seats_max),
    SKU_FIELD(RUSH_SKU_FIELD_VIRTUAL_BUDGET, virtual_budget),
    SKU_FIELD(RUSH_SKU_FIELD_SOLO_ALLOWED, solo_allowed),
    SKU_FIELD(RUSH_SKU_FIELD_GROUP_PRICE, group_price_fen),
    SKU_FIELD(RUSH_SKU_FIELD_LEADER_PRICE, leader_price_fen),
    SKU_FIELD(RUSH_SKU_FIELD_RULES, rules),
    SKU_FIELD(RUSH_SKU_FIELD_REGISTER_FROM, register_from_ns),
    SKU_FIELD(RUSH_SKU_FIELD_REGISTER_UNTIL, register_until_ns),
    SKU_FIELD(RUSH_SKU_FIELD_TIERS, tier_price_fen),
    SKU_FIELD(RUSH_SKU_FIELD_TIERS, tier_size),
    SKU_FIELD(RUSH_SKU_FIELD_TIERS, tier_count),
    SKU_FIELD(RUSH_SKU_FIELD_SUBSIDY_BUDGET, subsidy_budget_fen),
};
static_assert(sizeof(sku_fields) / sizeof(sku_fields[0]) == 26, "every field bit's bytes");

/* A named group or leader price brings its `prices` bit with it (set: the put's price applies). */
static uint8_t merged_prices(uint8_t live, uint8_t put, uint32_t fields)
{
    uint8_t named = (uint8_t)(((fields & RUSH_SKU_FIELD_GROUP_PRICE) ? RUSH_SKU_GROUP_PRICE : 0) |
                              ((fields & RUSH_SKU_FIELD_LEADER_PRICE) ? RUSH_SKU_LEADER_PRICE : 0));
    return (uint8_t)((live & ~named) | (put & named));
}

struct rush_sku rush_sku_merge(const struct rush_sku *live, int64_t stock_total,
                               const struct rush_sku *put)
{
    RUSH_ASSERT(live != NULL && put != NULL && live->id == put->id);
    uint32_t fields = put->fields != 0 ? put->fields : RUSH_SKU_FIELDS_ALL;
    struct rush_sku merged = *live;
    merged.stock = live->unlimited ? 0 : stock_total;
    for (size_t i = 0; i < sizeof(sku_fields) / sizeof(sku_fields[0]); i++)
        if (fields & sku_fields[i].bit)
            memcpy((uint8_t *)&merged + sku_fields[i].offset,
                   (const uint8_t *)put + sku_fields[i].offset, sku_fields[i].bytes);
    if (merged.unlimited && (fields & RUSH_SKU_FIELD_STOCK) == 0)
        merged.stock = 0; /* becoming unlimited: the old stock figure no longer applies */
    merged.prices = merged_prices(live->prices, put->prices, fields);
    memset(merged.pad, 0, sizeof(merged.pad));
    memset(merged.pad2, 0, sizeof(merged.pad2));
    memset(merged.pad3, 0, sizeof(merged.pad3));
    merged.fields = 0;
    return merged;
}
