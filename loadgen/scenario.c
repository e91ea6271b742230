/*
 * scenario.c — the request streams of the load scenarios (see scenario.h): new buyers, and the
 * follow-ups their answers call for.
 */
#include "scenario.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "drive.h"
#include "rush/assert.h"

#define KEY_MARKER 0x4c    /* 'L': keys made by rush-loadgen */
#define USER_BASE_SHIFT 24 /* user ids: (run id low bits) << 24 + buyer index */
static_assert(RUSH_LOADGEN_BUYERS_MAX < (1u << USER_BASE_SHIFT), "buyers fit under the shift");

uint64_t rush_scenario_requests_max(const struct rush_loadgen_options *options)
{
    switch (options->scenario) {
    case RUSH_SCENARIO_MIDNIGHT:
    case RUSH_SCENARIO_ZIPF:
    case RUSH_SCENARIO_GROUPS:
        return options->buyers;
    case RUSH_SCENARIO_DUPLICATES:
    case RUSH_SCENARIO_PAYMENTS:
    case RUSH_SCENARIO_SOCIAL:
        return 2 * options->buyers; /* one follow-up per answer at most */
    case RUSH_SCENARIO_COUNT_:
        break;
    }
    RUSH_ASSERT(false);
    return 0;
}

static double uniform(struct rush_scenario *scenario)
{
    return (double)(rush_drive_random(&scenario->random) >> 11) * 0x1.0p-53;
}

static int zipf_init(struct rush_scenario *scenario, uint32_t count, double s)
{
    scenario->zipf_cdf = malloc(count * sizeof(double));
    if (scenario->zipf_cdf == NULL)
        return -ENOMEM;
    double sum = 0;
    for (uint32_t k = 0; k < count; k++) {
        sum += 1.0 / pow((double)(k + 1), s);
        scenario->zipf_cdf[k] = sum;
    }
    for (uint32_t k = 0; k < count; k++)
        scenario->zipf_cdf[k] /= sum;
    scenario->zipf_cdf[count - 1] = 1.0;
    return 0;
}

int rush_scenario_init(struct rush_scenario *scenario, const struct rush_loadgen_options *options,
                       const struct rush_catalog *catalog, uint64_t run_id)
{
    RUSH_ASSERT(scenario != NULL && options != NULL && catalog != NULL && catalog->count >= 1);
    RUSH_ASSERT(options->buyers >= 1 && options->buyers <= RUSH_LOADGEN_BUYERS_MAX);
    memset(scenario, 0, sizeof(*scenario));
    scenario->kind = options->scenario;
    scenario->catalog = catalog;
    scenario->buyers = options->buyers;
    scenario->run_id = run_id & ((UINT64_C(1) << 56) - 1);
    scenario->user_base = (run_id & 0xffffffffffu) << USER_BASE_SHIFT;
    scenario->random = options->seed * 0x9e3779b97f4a7c15u + 0x2545f4914f6cdd1du;
    scenario->random = scenario->random != 0 ? scenario->random : 1;
    scenario->duplicate_rate = options->duplicate_rate;
    scenario->confirm_rate = options->confirm_rate;
    scenario->group_size = options->group_size;
    scenario->follow_capacity = options->buyers;
    scenario->follow = malloc(scenario->follow_capacity * sizeof(uint32_t));
    if (scenario->follow == NULL)
        return -ENOMEM;
    if (scenario->kind == RUSH_SCENARIO_ZIPF &&
        zipf_init(scenario, catalog->count, options->zipf_s) < 0) {
        free(scenario->follow);
        return -ENOMEM;
    }
    return 0;
}

void rush_scenario_free(struct rush_scenario *scenario)
{
    if (scenario == NULL)
        return;
    free(scenario->follow);
    free(scenario->zipf_cdf);
    scenario->follow = NULL;
    scenario->zipf_cdf = NULL;
}

uint32_t rush_scenario_zipf_pick(const double *cdf, uint32_t count, double u)
{
    RUSH_ASSERT(cdf != NULL && count >= 1);
    uint32_t low = 0, high = count - 1; /* the first k with cdf[k] > u lies in [low, high] */
    while (low < high) {                /* at most log2(count) + 1 turns */
        uint32_t middle = low + (high - low) / 2;
        if (cdf[middle] > u)
            high = middle;
        else
            low = middle + 1;
    }
    return low;
}

static rush_key fresh_key(struct rush_scenario *scenario)
{
    rush_key key;
    uint64_t seq = ++scenario->key_seq;
    memcpy(key.bytes, &seq, 8);
    memcpy(key.bytes + 8, &scenario->run_id, 7);
    key.bytes[15] = KEY_MARKER;
    return key;
}

static uint64_t pick_sku(struct rush_scenario *scenario)
{
    const struct rush_catalog *catalog = scenario->catalog;
    uint32_t index =
        scenario->kind == RUSH_SCENARIO_ZIPF
            ? rush_scenario_zipf_pick(scenario->zipf_cdf, catalog->count, uniform(scenario))
            : (uint32_t)(rush_drive_random(&scenario->random) % catalog->count);
    return catalog->skus[index].def.id;
}

/* The oldest known open group with a seat nobody has asked for yet; 0 when none. */
static uint64_t take_known_group(struct rush_scenario *scenario)
{
    if (scenario->groups_count == 0)
        return 0;
    struct rush_known_group *group = &scenario->groups[scenario->groups_head];
    uint64_t id = group->group_id;
    if (++group->seats_asked + 1 >= scenario->group_size) { /* the leader holds one seat */
        scenario->groups_head = (scenario->groups_head + 1) % RUSH_SCENARIO_KNOWN_GROUPS_MAX;
        scenario->groups_count--;
    }
    return id;
}

static void group_request(struct rush_scenario *scenario, struct rush_request *out)
{
    uint32_t roll = (uint32_t)(rush_drive_random(&scenario->random) % 100);
    uint64_t group_id = 0;
    if (roll >= GROUPS_OPEN_PERCENT && roll < GROUPS_OPEN_PERCENT + GROUPS_JOIN_PERCENT)
        group_id = take_known_group(scenario);
    if (roll < GROUPS_OPEN_PERCENT) {
        out->op = RUSH_OP_GROUP_OPEN;
        out->sku_id = pick_sku(scenario);
        scenario->stats.group_opens++;
    } else if (group_id != 0) {
        out->op = RUSH_OP_GROUP_JOIN;
        out->target_id = group_id;
        scenario->stats.group_joins++;
    } else {
        out->op = RUSH_OP_GROUP_JOIN_ANY;
        out->sku_id = pick_sku(scenario);
        scenario->stats.group_joins_any++;
    }
}

/* The catalogue's SKU id at a RUSH_CATALOG_SOCIAL_* index. */
static uint64_t social_sku(const struct rush_scenario *scenario, uint32_t index)
{
    RUSH_ASSERT(index < scenario->catalog->count);
    return scenario->catalog->skus[index].def.id;
}

/* A social buyer (scenario.h): solo, a group join maybe invited, a new user, or a colour. */
static void social_request(struct rush_scenario *scenario, struct rush_request *out)
{
    uint32_t roll = (uint32_t)(rush_drive_random(&scenario->random) % 100);
    bool invited = rush_drive_random(&scenario->random) % 2 == 0 && scenario->buyers_next > 1;
    if (roll < SOCIAL_SOLO_PERCENT) {
        *out = (struct rush_request){.op = RUSH_OP_RESERVE,
                                     .qty = 1,
                                     .sku_id = social_sku(scenario, RUSH_CATALOG_SOCIAL_DEAL),
                                     .user_id = out->user_id,
                                     .key = out->key};
        scenario->stats.solo++;
    } else if (roll < SOCIAL_SOLO_PERCENT + SOCIAL_DEAL_PERCENT + SOCIAL_TIERED_PERCENT) {
        out->op = RUSH_OP_GROUP_JOIN_ANY;
        out->sku_id = social_sku(scenario, roll < SOCIAL_SOLO_PERCENT + SOCIAL_DEAL_PERCENT
                                               ? RUSH_CATALOG_SOCIAL_DEAL
                                               : RUSH_CATALOG_SOCIAL_TIERED);
        out->inviter_id = invited ? out->user_id - 1 : 0; /* the buyer before shared it */
        scenario->stats.group_joins_any++;
        scenario->stats.invited += invited;
    } else if (roll < SOCIAL_SOLO_PERCENT + SOCIAL_DEAL_PERCENT + SOCIAL_TIERED_PERCENT +
                          SOCIAL_NEW_USERS_PERCENT) {
        out->op = RUSH_OP_RESERVE;
        out->qty = 1;
        out->sku_id = social_sku(scenario, RUSH_CATALOG_SOCIAL_NEW_USERS);
        out->flags = invited ? RUSH_REQUEST_NEW_USER : 0; /* the gateway knows half are new */
        scenario->stats.new_user_asks++;
    } else {
        out->op = RUSH_OP_RESERVE;
        out->qty = 1;
        out->sku_id = social_sku(scenario, RUSH_CATALOG_SOCIAL_COLOUR + roll % 3);
        scenario->stats.activity_asks++;
    }
}

/* A new buyer's request. */
static void new_request(struct rush_scenario *scenario, struct rush_request *out)
{
    *out = (struct rush_request){.user_id = scenario->user_base + scenario->buyers_next + 1};
    scenario->buyers_next++;
    scenario->stats.buyers_sent++;
    out->key = fresh_key(scenario);
    if (scenario->kind == RUSH_SCENARIO_GROUPS) {
        group_request(scenario, out);
        return;
    }
    if (scenario->kind == RUSH_SCENARIO_SOCIAL) {
        social_request(scenario, out);
        return;
    }
    out->op = RUSH_OP_RESERVE;
    out->qty = 1;
    out->sku_id = pick_sku(scenario);
}

/* The follow-up of ledger entry `index`: the same request again, or the confirm of its order. */
static void follow_up(struct rush_scenario *scenario, const struct rush_ledger *ledger,
                      uint32_t index, struct rush_request *out, uint32_t *original)
{
    const struct rush_ledger_entry *entry = rush_ledger_get(ledger, index);
    RUSH_ASSERT(entry != NULL && entry->status == RUSH_LEDGER_ANSWERED);
    if (scenario->kind == RUSH_SCENARIO_DUPLICATES) {
        *out = (struct rush_request){.op = entry->op,
                                     .qty = entry->qty,
                                     .sku_id = entry->sku_id,
                                     .user_id = entry->user_id,
                                     .target_id = entry->target_id,
                                     .key = entry->key};
        *original = index;
        return;
    }
    if (scenario->kind == RUSH_SCENARIO_SOCIAL) { /* the next colour, by the same buyer */
        uint32_t colour = 0;
        while (social_sku(scenario, RUSH_CATALOG_SOCIAL_COLOUR + colour) != entry->sku_id)
            colour++;
        *out = (struct rush_request){
            .op = RUSH_OP_RESERVE,
            .qty = 1,
            .sku_id = social_sku(scenario, RUSH_CATALOG_SOCIAL_COLOUR + (colour + 1) % 3),
            .user_id = entry->user_id,
            .key = fresh_key(scenario)};
        return;
    }
    RUSH_ASSERT(scenario->kind == RUSH_SCENARIO_PAYMENTS && entry->outcome == RUSH_OK);
    *out = (struct rush_request){
        .op = RUSH_OP_CONFIRM, .target_id = entry->order_id, .key = fresh_key(scenario)};
}

bool rush_scenario_next(struct rush_scenario *scenario, const struct rush_ledger *ledger,
                        struct rush_request *out, uint32_t *original)
{
    RUSH_ASSERT(scenario != NULL && out != NULL && original != NULL);
    *original = RUSH_LEDGER_NO_ORIGINAL;
    if (scenario->follow_count > 0) {
        uint32_t index = scenario->follow[scenario->follow_head];
        scenario->follow_head = (scenario->follow_head + 1) % scenario->follow_capacity;
        scenario->follow_count--;
        follow_up(scenario, ledger, index, out, original);
        return true;
    }
    if (scenario->buyers_next >= scenario->buyers)
        return false;
    new_request(scenario, out);
    return true;
}

static void queue_follow_up(struct rush_scenario *scenario, uint32_t index)
{
    /* One follow-up per new request at most, and follow-ups make none: the FIFO cannot fill. */
    RUSH_ASSERT(scenario->follow_count < scenario->follow_capacity);
    uint64_t tail = (scenario->follow_head + scenario->follow_count) % scenario->follow_capacity;
    scenario->follow[tail] = index;
    scenario->follow_count++;
}

static void remember_group(struct rush_scenario *scenario, uint64_t group_id)
{
    if (scenario->groups_count == RUSH_SCENARIO_KNOWN_GROUPS_MAX) { /* forget the oldest */
        scenario->groups_head = (scenario->groups_head + 1) % RUSH_SCENARIO_KNOWN_GROUPS_MAX;
        scenario->groups_count--;
    }
    uint32_t tail =
        (scenario->groups_head + scenario->groups_count) % RUSH_SCENARIO_KNOWN_GROUPS_MAX;
    scenario->groups[tail] = (struct rush_known_group){.group_id = group_id};
    scenario->groups_count++;
}

static void answer_resend(struct rush_scenario *scenario, const struct rush_ledger *ledger,
                          const struct rush_ledger_entry *entry)
{
    const struct rush_ledger_entry *original = rush_ledger_get(ledger, entry->original_index);
    RUSH_ASSERT(original != NULL);
    if (rush_ledger_duplicate_matches(original, entry))
        scenario->stats.resends_matching++;
    else
        scenario->stats.resends_mismatched++;
}

void rush_scenario_on_answer(struct rush_scenario *scenario, const struct rush_ledger *ledger,
                             uint32_t index)
{
    const struct rush_ledger_entry *entry = rush_ledger_get(ledger, index);
    RUSH_ASSERT(entry != NULL && entry->status == RUSH_LEDGER_ANSWERED);
    if (entry->original_index != RUSH_LEDGER_NO_ORIGINAL) {
        answer_resend(scenario, ledger, entry);
        return;
    }
    switch (scenario->kind) {
    case RUSH_SCENARIO_MIDNIGHT:
    case RUSH_SCENARIO_ZIPF:
        return;
    case RUSH_SCENARIO_GROUPS:
        if (entry->op == RUSH_OP_GROUP_OPEN && entry->outcome == RUSH_OK)
            remember_group(scenario, entry->group_id);
        return;
    case RUSH_SCENARIO_DUPLICATES:
        if (uniform(scenario) < scenario->duplicate_rate) {
            queue_follow_up(scenario, index);
            scenario->stats.resends_queued++;
        }
        return;
    case RUSH_SCENARIO_SOCIAL: /* a first colour taken: ask for a second */
        if (entry->op == RUSH_OP_RESERVE && entry->outcome == RUSH_OK &&
            entry->sku_id >= RUSH_CATALOG_SOCIAL_FAMILY * 1000 &&
            entry->sku_id < (RUSH_CATALOG_SOCIAL_FAMILY + 1) * 1000 &&
            scenario->stats.second_colours < scenario->stats.activity_asks) {
            queue_follow_up(scenario, index);
            scenario->stats.second_colours++;
        }
        return;
    case RUSH_SCENARIO_PAYMENTS:
        if (entry->op != RUSH_OP_RESERVE || entry->outcome != RUSH_OK)
            return;
        if (uniform(scenario) < scenario->confirm_rate) {
            queue_follow_up(scenario, index);
            scenario->stats.confirms_queued++;
        } else {
            scenario->stats.abandoned++;
        }
        return;
    case RUSH_SCENARIO_COUNT_:
        break;
    }
    RUSH_ASSERT(false);
}

bool rush_scenario_exhausted(const struct rush_scenario *scenario)
{
    return scenario->buyers_next >= scenario->buyers && scenario->follow_count == 0;
}
