/* The campaign file: the sample loads, every kind of mistake is refused with FILE:LINE: reason. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign/campaign.h"
#include "codec/sku.h"

#define NOW_NS INT64_C(1794326400000000000) /* 2026-11-10T16:00:00Z = 11-11 00:00 +08:00 */
#define S INT64_C(1000000000)

static struct rush_campaign load_ok(const char *text)
{
    struct rush_campaign campaign;
    char why[RUSH_CAMPAIGN_WHY_BYTES];
    int rc = rush_campaign_parse("t.ini", text, strlen(text), NOW_NS, &campaign, why, sizeof why);
    cr_assert_eq(rc, 0, "%s\n--\n%s", why, text);
    return campaign;
}

static const struct rush_sku *find(const struct rush_campaign *campaign, uint64_t id)
{
    for (uint32_t i = 0; i < campaign->sku_count; i++)
        if (campaign->skus[i].id == id)
            return &campaign->skus[i];
    return NULL;
}

static char *read_source(const char *relative)
{
    const char *root = getenv("RUSH_SOURCE_DIR");
    cr_assert_not_null(root, "ctest sets RUSH_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, relative);
    FILE *file = fopen(path, "rb");
    cr_assert_not_null(file, "%s", path);
    char *text = calloc(1, 1 << 20);
    size_t len = fread(text, 1, (1 << 20) - 1, file);
    fclose(file);
    text[len] = '\0';
    return text;
}

Test(campaign, the_sample_file_loads_and_says_what_it_promises)
{
    const char *root = getenv("RUSH_SOURCE_DIR");
    cr_assert_not_null(root);
    char path[4096];
    snprintf(path, sizeof path, "%s/engine/campaign/double11.ini", root);
    struct rush_campaign campaign;
    char why[RUSH_CAMPAIGN_WHY_BYTES];
    cr_assert_eq(rush_campaign_load_file(path, &campaign, why, sizeof why), 0, "%s", why);

    cr_assert_eq(campaign.engine.shards, 2);
    cr_assert_eq(campaign.engine.durability, RUSH_DURABILITY_FSYNC);
    cr_assert_str_eq(campaign.engine.data_dir, "data");
    cr_assert_str_eq(campaign.endpoints.json, "tcp://127.0.0.1:7101");
    cr_assert_gt(campaign.sku_count, 6);

    const struct rush_sku *hot = find(&campaign, 1001);
    cr_assert_not_null(hot);
    cr_assert_eq(hot->price_fen, 100);
    cr_assert_eq(hot->stock, 1000);
    cr_assert_eq(hot->start_ns, campaign.loaded_ns);
    cr_assert_eq(hot->end_ns, RUSH_TIME_NEVER);
    cr_assert_eq(hot->pay_ttl_ns, 15 * 60 * S);

    int unlimited = 0, fill = 0, at_most = 0;
    for (uint32_t i = 0; i < campaign.sku_count; i++) {
        const struct rush_sku *sku = &campaign.skus[i];
        unlimited += sku->unlimited;
        fill += sku->group_size == 3 && sku->virtual_policy == RUSH_VIRTUAL_FILL;
        at_most += sku->group_size == 5 && sku->virtual_policy == RUSH_VIRTUAL_AT_MOST;
        cr_assert(sku->group_size == 0 || sku->group_ttl_ns == 10 * 60 * S);
        cr_assert_eq(rush_sku_check(sku, why, sizeof why), 0, "%s", why);
    }
    cr_assert_eq(unlimited, 1);
    cr_assert_eq(fill, 1);
    const struct rush_sku *deal = find(&campaign, 4003); /* one stock, solo and group prices */
    cr_assert_not_null(deal);
    cr_assert(deal->solo_allowed && deal->group_size == 2);
    cr_assert_eq(deal->group_price_fen, 990);
    cr_assert_eq(deal->leader_price_fen, 0);
    cr_assert_eq(deal->prices, RUSH_SKU_GROUP_PRICE | RUSH_SKU_LEADER_PRICE);
    cr_assert_eq(at_most, 1);
    rush_campaign_free(&campaign);
    cr_assert_null(campaign.skus);
}

Test(campaign, the_built_in_default_equals_the_sample_file)
{
    char *file = read_source("engine/campaign/double11.ini");
    cr_assert_str_eq(rush_campaign_default_text(), file,
                     "engine/campaign/campaign_default.c is stale: run scripts/embed-campaign.sh");
    free(file);
    struct rush_campaign campaign;
    char why[RUSH_CAMPAIGN_WHY_BYTES];
    cr_assert_eq(rush_campaign_load_default(&campaign, why, sizeof why), 0, "%s", why);
    cr_assert_not_null(find(&campaign, 4002));
    rush_campaign_free(&campaign);
}

Test(campaign, defaults_and_the_unlimited_flag)
{
    struct rush_campaign campaign = load_ok("[sku 9]\n"
                                            "name = \"Coupon\"\n"
                                            "stock = unlimited\n"
                                            "price = 0\n"
                                            "start = 0\n"
                                            "end = 2026-11-12T00:00:00+08:00 ; inline comment\n");
    const struct rush_sku *sku = &campaign.skus[0];
    cr_assert_eq(campaign.sku_count, 1);
    cr_assert_str_eq(sku->name, "Coupon");
    cr_assert_eq(sku->unlimited, 1);
    cr_assert_eq(sku->stock, 0);
    cr_assert_eq(sku->order_qty_max, 1);
    cr_assert_eq(sku->user_qty_max, 1);
    cr_assert_eq(sku->pay_ttl_ns, 15 * 60 * S);
    cr_assert_eq(sku->end_ns, NOW_NS + 24 * 3600 * S);
    cr_assert_eq(campaign.engine.shards, 0, "not given: the engine's default");
    cr_assert_str_eq(campaign.endpoints.replay, "tcp://127.0.0.1:7104");
    rush_campaign_free(&campaign);
}

Test(campaign, ended_orders_and_hoarding_rules_reach_the_engine)
{
    struct rush_engine_config config;
    struct rush_campaign campaign = load_ok("[engine]\nended_retain = 1h30m\n"
                                            "user_unpaid_max = 0\nuser_churn_max = 5\n");
    rush_campaign_engine_config(&campaign, &config);
    cr_assert_eq(config.policy.retain_ns, 90 * 60 * S);
    cr_assert_eq(config.policy.user_unpaid_max, 0, "0: no cap");
    cr_assert_eq(config.policy.user_churn_max, 5);
    rush_campaign_free(&campaign);
    campaign = load_ok("[engine]\nshards = 1\n");
    rush_campaign_engine_config(&campaign, &config);
    cr_assert_eq(config.policy.retain_ns, RUSH_RETAIN_NS_DEFAULT, "not given: the default");
    cr_assert_eq(config.policy.user_unpaid_max, 8);
    cr_assert_eq(config.policy.user_churn_max, 16);
    rush_campaign_free(&campaign);
}

#define BOUNDARY_FORMAT                                                                            \
    "[engine]\nshards = 64\nring_slots = 65536\norders_max = 1073741824\n"                         \
    "[endpoints]\nadmin = tcp://0.0.0.0:1\nadmin_token = 0123456789abcdef\n"                       \
    "[sku 9007199254740991]\nname = 1234567890123456789012345678901234567890\n"                    \
    "stock = 1000000000000\nprice = 100000000000\nstart = now\nend = %s\n"                         \
    "group_size = 64\ngroup_ttl = 1s\nvirtual_policy = at_most\nvirtual_seats_max = 63\n"          \
    "virtual_budget = 1\norder_qty_max = 1000000\nuser_qty_max = 1000000\npay_ttl = 168h\n"

Test(campaign, boundary_values_are_accepted)
{
    char text[2048];
    struct rush_campaign campaign;
    char why[RUSH_CAMPAIGN_WHY_BYTES];
    /* end = now = start is an empty window: refused at the section's header. */
    snprintf(text, sizeof text, BOUNDARY_FORMAT, "now");
    cr_assert_eq(
        rush_campaign_parse("t.ini", text, strlen(text), NOW_NS, &campaign, why, sizeof why),
        RUSH_ECONFIG);
    cr_assert_str_eq(why, "t.ini:8: [sku 9007199254740991]: end must be after start");

    snprintf(text, sizeof text, BOUNDARY_FORMAT, "never");
    campaign = load_ok(text);
    const struct rush_sku *sku = &campaign.skus[0];
    cr_assert_eq(sku->id, RUSH_SKU_ID_MAX);
    cr_assert_eq(memcmp(sku->name, "1234567890123456789012345678901234567890", 40), 0);
    cr_assert_eq(sku->group_size, RUSH_GROUP_SIZE_MAX);
    cr_assert_eq(sku->groups_open_max, 1000);
    cr_assert_eq(sku->pay_ttl_ns, RUSH_TTL_NS_MAX);
    cr_assert_eq(campaign.engine.ring_slots, 65536);
    cr_assert_str_eq(campaign.endpoints.admin_token, "0123456789abcdef");
    rush_campaign_free(&campaign);
}

struct broken {
    const char *text;
    const char *why;
};

#define SKU_HEAD "[sku 7]\nname = thing\nstock = 10\nprice = 100\nstart = now\nend = never\n"

static const struct broken broken_files[] = {
    {"[engine]\nshards = 0\n", "t.ini:2: shards = 0: must be 1..64"},
    {"[engine]\nshards = 65\n", "t.ini:2: shards = 65: must be 1..64"},
    {"[engine]\nring_slots = 1000\n", "t.ini:2: ring_slots = 1000: must be a power of two"},
    {"[engine]\ndurability = sometimes\n",
     "t.ini:2: durability = sometimes: must be fsync, async, none or replicated"},
    {"[engine]\ndurability = replicated\n",
     "t.ini:2: durability = replicated needs a [cluster] section"},
    {"[cluster]\nnode = A\nnodes = A=tcp://127.0.0.1:7100\nnats = nats://127.0.0.1:4222\n",
     "t.ini:1: [cluster] needs durability = replicated in [engine]"},
    {"[engine]\ndurability = replicated\n[cluster]\nnode = A\nnats = nats://127.0.0.1:4222\n",
     "t.ini:3: [cluster]: missing key 'nodes'"},
    {"[engine]\ndurability = replicated\n[cluster]\nnode = C\n"
     "nodes = A=tcp://127.0.0.1:7100, B=tcp://127.0.0.1:7200\nnats = nats://127.0.0.1:4222\n",
     "t.ini:3: [cluster]: node C is not in nodes"},
    {"[cluster]\nnodes = A=tcp://127.0.0.1:7100, A=tcp://127.0.0.1:7200\n",
     "t.ini:2: nodes = A=tcp://127.0.0.1:7100, A=tcp://127.0.0....: a node name is given twice"},
    {"[cluster]\nnodes = A tcp://127.0.0.1:7100\n",
     "t.ini:2: nodes = A tcp://127.0.0.1:7100: must list"},
    {"[cluster]\nnodes = A=http://x\n", "t.ini:2: nodes = A=http://x: a node's orders URL must be"},
    {"[cluster]\nnode = a.b\n", "t.ini:2: node = a.b: must be 1..31 bytes"},
    {"[cluster]\nnats = tcp://127.0.0.1:4222\n", "t.ini:2: nats = tcp://127.0.0.1:4222: must be"},
    {"[cluster]\nnats = nats://127.0.0.1:4222,http://x\n",
     "t.ini:2: nats = nats://127.0.0.1:4222,http://x: must be"},
    {"[cluster]\nlease_ms = 50\n", "t.ini:2: lease_ms = 50: must be 100..60000"},
    {"[cluster]\nfailback = yes\n", "t.ini:2: failback = yes: must be on or off"},
    {"[cluster]\nstream = a-b\n", "t.ini:2: stream = a-b: must be 1..24 bytes"},
    {"[cluster]\nquorum = 2\n", "t.ini:2: unknown key 'quorum' in [cluster]"},
    {"[engine]\nsnapshot_every_events = -1\n",
     "t.ini:2: snapshot_every_events = -1: must be an integer 0..9223372036854775807 (0: never)"},
    {"[engine]\nsnapshot_every_events = 1e6\n", "t.ini:2: snapshot_every_events = 1e6: must be"},
    {"[engine]\nsnapshot_every_events = 9223372036854775808\n",
     "t.ini:2: snapshot_every_events = 9223372036854775808: must be"},
    {"[engine]\nsnapshot_every_events =\n", "t.ini:2: snapshot_every_events = : must be"},
    {"[engine]\nsnapshot_background = yes\n",
     "t.ini:2: snapshot_background = yes: must be true or false"},
    {"[engine]\nshards = 4\nshards = 5\n", "t.ini:3: key 'shards' is given twice"},
    {"[engine]\nthreads = 4\n", "t.ini:2: unknown key 'threads' in [engine]"},
    {"[engine]\nended_retain = 0\n", "t.ini:2: ended_retain = 0: must be a duration 1ms..168h"},
    {"[engine]\nuser_churn_max = -1\n", "t.ini:2: user_churn_max = -1: must be 0 (no cap)"},
    {"[engine]\nshards = 4\n[engine]\nkeys_max = 5\n",
     "t.ini:3: section [engine] is given twice (first at line 1)"},
    {"[engines]\nshards = 4\n", "t.ini:1: unknown section [engines]"},
    {"shards = 4\n", "t.ini:1: a key before any section"},
    {"[engine]\nshards 4\n", "t.ini:2: expected [section], key = value or a comment"},
    {"[engine\nshards = 4\n", "t.ini:1: expected [section], key = value or a comment"},
    {"[engine]\n  shards = 4\n", "t.ini:2: indented line"},
    {"[engine]\nshards = 2\n\v[sku 7]\nname = x\n", "t.ini:3: indented line"},
    {"[engine]\n[sku 7]\nname = x\n", "t.ini:1: section has no keys"},
    {"[endpoints]\njson = http://x:1\n", "t.ini:2: json = http://x:1: must be tcp://HOST:PORT"},
    {"[endpoints]\njson = tcp://127.0.0.1:70000\n", "t.ini:2: json = tcp://127.0.0.1:70000"},
    /* Found by fuzz_campaign: an address is quoted in later reasons, so it must be printable. */
    {"[endpoints]\nadmin = tcp://\xbc"
     "10.0.0.1:7102\n",
     "t.ini:2: admin = tcp://?10.0.0.1:7102: must be tcp://HOST:PORT"},
    {"[endpoints]\nadmin = tcp://my host:7102\n", "t.ini:2: admin = tcp://my host:7102: must be"},
    {"[endpoints]\njson = tcp://127.0.0.1:7100\n",
     "t.ini:2: endpoints orders and json are the same address tcp://127.0.0.1:7100"},
    {"[endpoints]\nadmin = tcp://0.0.0.0:7102\n",
     "t.ini:2: admin endpoint tcp://0.0.0.0:7102 is not on loopback: set admin_token"},
    {"[endpoints]\nadmin_token = short\n", "t.ini:2: admin_token = short: must be 16..128 bytes"},
    {"[sku 7]\nname = x\n", "t.ini:1: [sku 7]: missing key 'stock'"},
    {"[sku 0]\nname = x\n", "t.ini:1: [sku 0]: sku id must be an integer 1..9007199254740991"},
    {"[sku 9007199254740992]\nname = x\n", "t.ini:1: [sku 9007199254740992]: sku id must be"},
    {"[sku abc]\nname = x\n", "t.ini:1: [sku abc]: sku id must be an integer"},
    {SKU_HEAD "[sku 7]\nname = z\n", "t.ini:7: [sku 7] is defined twice (first at line 1)"},
    {SKU_HEAD "[sku 8]\nname = y\nstock = 1\nprice = 1\nstart = now\nend = never\n[sku 7]\n"
              "name = z\n",
     "t.ini:13: [sku 7] is defined twice (first at line 1)"},
    {SKU_HEAD "colour = red\n", "t.ini:7: unknown key 'colour' in [sku]"},
    {SKU_HEAD "stock = 11\n", "t.ini:7: key 'stock' is given twice in this section"},
    {"[sku 7]\nstock = -1\n", "t.ini:2: stock = -1: must be an integer 0..1000000000000 or "
                              "unlimited"},
    {"[sku 7]\nprice = 1.00\n", "t.ini:2: price = 1.00: must be whole fen, an integer: write 100 "
                                "for 1.00 yuan"},
    {"[sku 7]\nprice = 1e2\n", "t.ini:2: price = 1e2: must be an integer number of fen"},
    {"[sku 7]\nname = 12345678901234567890123456789012345678901\n",
     "t.ini:2: name = 1234567890123456789012345678901234567890...: must be 1..40 bytes"},
    {"[sku 7]\nname = \xff\xfe\n", "t.ini:2: name = ??: must be valid UTF-8"},
    {"[sku 7]\nstart = 2026-02-30T00:00:00Z\n", "t.ini:2: start = 2026-02-30T00:00:00Z: must be "
                                                "an RFC 3339 time"},
    {"[sku 7]\nstart = 2026-11-11T00:00:00\n", "t.ini:2: start = 2026-11-11T00:00:00: must be an "
                                               "RFC 3339 time"},
    {"[sku 7]\nstart = never\n", "t.ini:2: start = never: must be a time: never is for end only"},
    {"[sku 7]\nstart = 1900-01-01T00:00:00Z\n", "t.ini:2: start = 1900-01-01T00:00:00Z: is out "
                                                "of range"},
    {"[sku 7]\nname = x\nstock = 1\nprice = 1\nstart = 2026-11-12T00:00:00+08:00\n"
     "end = 2026-11-11T00:00:00+08:00\n",
     "t.ini:1: [sku 7]: end must be after start"},
    {"[sku 7]\npay_ttl = 15\n", "t.ini:2: pay_ttl = 15: must be a duration"},
    {"[sku 7]\npay_ttl = 169h\n", "t.ini:2: pay_ttl = 169h: must be a duration 0..168h"},
    {"[sku 7]\npaused = yes\n", "t.ini:2: paused = yes: must be true or false"},
    {"[sku 7]\ngroup_size = 1\n", "t.ini:2: group_size = 1: must be 2..64"},
    {"[sku 7]\ngroup_size = 65\n", "t.ini:2: group_size = 65: must be 2..64"},
    {SKU_HEAD "group_size = 3\n", "t.ini:1: [sku 7]: missing key 'group_ttl' (group_size is set)"},
    {SKU_HEAD "group_ttl = 10m\n", "t.ini:1: [sku 7]: group_ttl, groups_open_max and virtual_* "
                                   "need group_size"},
    {SKU_HEAD "group_size = 3\ngroup_ttl = 10m\nvirtual_policy = fill\n",
     "t.ini:1: [sku 7]: virtual_budget must be at least 1 with virtual_policy fill"},
    {SKU_HEAD "group_size = 3\ngroup_ttl = 10m\nvirtual_policy = at_most\nvirtual_budget = 9\n"
              "virtual_seats_max = 3\n",
     "t.ini:1: [sku 7]: virtual_seats_max must be 1..2 (below group_size) for at_most"},
    {SKU_HEAD "group_size = 3\ngroup_ttl = 0\n",
     "t.ini:1: [sku 7]: group_ttl must be 1s..168h for a group-buy SKU"},
    {SKU_HEAD "virtual_policy = maybe\n", "t.ini:7: virtual_policy = maybe: must be none, fill "
                                          "or at_most"},
    {SKU_HEAD "order_qty_max = 3\nuser_qty_max = 2\n",
     "t.ini:1: [sku 7]: user_qty_max must be 3..1000000 (at least order_qty_max)"},
    {SKU_HEAD "order_qty_max = 0\n", "t.ini:7: order_qty_max = 0: must be 1..1000000"},
    {SKU_HEAD "leader_price = 0\n", "t.ini:1: [sku 7]: solo_allowed, group_price and "
                                    "leader_price need group_size"},
    {SKU_HEAD "solo_allowed = true\n", "t.ini:1: [sku 7]: solo_allowed, group_price and "
                                       "leader_price need group_size"},
    {SKU_HEAD "group_size = 3\ngroup_ttl = 10m\ngroup_price = 101\n",
     "t.ini:1: [sku 7]: group_price must be 0..100 fen (at most the list price)"},
    {SKU_HEAD "group_size = 3\ngroup_ttl = 10m\nleader_price = 150\n",
     "t.ini:1: [sku 7]: leader_price must be 0..100 fen (at most the list price)"},
    {SKU_HEAD "group_size = 3\ngroup_ttl = 10m\ngroup_price = 9.90\n",
     "t.ini:9: group_price = 9.90: must be whole fen"},
    {SKU_HEAD "group_size = 3\ngroup_ttl = 10m\nsolo_allowed = yes\n",
     "t.ini:9: solo_allowed = yes: must be true or false"},
    /* Activities and eligibility (issue 14). */
    {"[activity colours]\nuser_qty_max = 2\n[sku 5000000000007001]\nname = red\nstock = 1\n"
     "price = 1\nstart = now\nend = never\nactivity = colour\n",
     "t.ini:9: activity = colour: unknown activity (no [activity colour] section)"},
    {"[activity colours]\nday_qty_max = 2\n",
     "t.ini:1: [activity colours]: missing key 'user_qty_max'"},
    {"[activity colours]\nuser_qty_max = 2\nday_qty_max = 3\n",
     "t.ini:1: [activity colours]: day_qty_max 3 is over user_qty_max 2"},
    {"[activity colours]\nuser_qty_max = 2\nday_offset_hours = 15\n",
     "t.ini:3: day_offset_hours = 15: must be an integer -12..14"},
    {"[activity colours]\nuser_qty_max = 2\n[activity colours]\nuser_qty_max = 3\n",
     "t.ini:3: [activity colours] is defined twice (first at line 1)"},
    {"[activity two words]\nuser_qty_max = 2\n", "t.ini:1: [activity two words]: an activity name"},
    {"[activity colours]\nuser_qty_max = 2\nsubsidy_budget_fen = -5\n",
     "t.ini:3: subsidy_budget_fen = -5: must be an integer number of fen 0..1000000000000000"},
    {"[activity colours]\nuser_qty_max = 2\nsubsidy_budget_fen = 1000000000000001\n",
     "t.ini:3: subsidy_budget_fen = 1000000000000001: must be an integer number of fen"},
    {"[activity colours]\nuser_qty_max = 2\nsubsidy_budget_fen = 9.5\n",
     "t.ini:3: subsidy_budget_fen = 9.5: must be an integer number of fen"},
    {"[activity colours]\nuser_qty_max = 2\nlimit = 3\n",
     "t.ini:3: unknown key 'limit' in [activity]"},
    {"[activity colours]\nuser_qty_max = 2\n" SKU_HEAD "activity = colours\n",
     "t.ini:3: [sku 7]: an activity's SKU needs a family id"},
    {"[activity colours]\nuser_qty_max = 2\n[sku 5000000000007001]\nname = red\nstock = 1\n"
     "price = 1\nstart = now\nend = never\nactivity = colours\n[sku 5000000000008001]\n"
     "name = blue\nstock = 1\nprice = 1\nstart = now\nend = never\nactivity = colours\n",
     "t.ini:16: activity = colours: sku 5000000000008001 is not of the family of sku "
     "5000000000007001"},
    {"[activity a]\nuser_qty_max = 2\n[activity b]\nuser_qty_max = 2\n"
     "[sku 5000000000007001]\nname = red\nstock = 1\n"
     "price = 1\nstart = now\nend = never\nactivity = a\n[sku 5000000000007002]\n"
     "name = blue\nstock = 1\nprice = 1\nstart = now\nend = never\nactivity = b\n",
     "t.ini:18: activity = b: sku 5000000000007002 is of family 5000000000007, which activity a"},
    {SKU_HEAD "new_users_only = yes\n", "t.ini:7: new_users_only = yes: must be true or false"},
    {SKU_HEAD "register_from = now\nregister_until = never\n",
     "t.ini:8: register_until = never: must be a time"},
    {SKU_HEAD "register_from = now\n",
     "t.ini:1: [sku 7]: register_from and register_until need registration_required"},
    {SKU_HEAD "registration_required = true\n",
     "t.ini:1: [sku 7]: register_until must be after register_from"},
    {"[sku 7]\nname = thing\nstock = 10\nprice = 100\nstart = now\n"
     "end = 2027-01-01T00:00:00Z\nregistration_required = true\nregister_from = now\n"
     "register_until = 2027-01-02T00:00:00Z\n",
     "t.ini:1: [sku 7]: register_until must be after register_from and not after end"},
    {SKU_HEAD "leader_price = 10\n", "t.ini:1: [sku 7]: solo_allowed, group_price and "
                                     "leader_price need group_size"},
    /* Tiers (阶梯团). */
    {SKU_HEAD "group_ttl = 10m\ntiers = 5:89, 3:99\n",
     "t.ini:1: [sku 7]: tier sizes must be at least 2 and strictly increasing"},
    {SKU_HEAD "group_ttl = 10m\ntiers = 3:90, 5:95\n",
     "t.ini:1: [sku 7]: tier prices must be strictly decreasing"},
    {SKU_HEAD "group_ttl = 10m\ntiers = 3:190, 5:95\n",
     "t.ini:1: [sku 7]: tier prices must be strictly decreasing, the first at most the list "
     "price 100 fen"},
    {SKU_HEAD "group_ttl = 10m\ngroup_size = 6\ntiers = 3:90, 5:80\n",
     "t.ini:1: [sku 7]: the last tier's size must be group_size 6"},
    {SKU_HEAD "group_ttl = 10m\ntiers = 3:90, 5:80\nleader_price = 0\n",
     "t.ini:1: [sku 7]: tiers set the seats' prices and take no virtual seats"},
    {SKU_HEAD "group_ttl = 10m\ntiers = 3:90, 5:80,\n", "t.ini:8: tiers = 3:90, 5:80,: must be"},
    {SKU_HEAD "group_ttl = 10m\ntiers = 2:9, 3:8, 4:7, 5:6, 6:5\n", "t.ini:8: tiers = "},
    {SKU_HEAD "tiers = 3:90\n", "t.ini:1: [sku 7]: missing key 'group_ttl'"},
    /* Subsidy budgets. */
    {SKU_HEAD "subsidy_budget_fen = 500\n",
     "t.ini:1: [sku 7]: subsidy_budget_fen must be 0..1000000000000000 on a group-buy SKU"},
    {SKU_HEAD "group_ttl = 10m\ngroup_size = 2\nsubsidy_budget_fen = -1\n",
     "t.ini:9: subsidy_budget_fen = -1: must be an integer number of fen"},
    /* The first error in file order wins, even when a later section is also broken. */
    {"[sku 7]\nname = x\n[sku 8]\nname = y\nprice = 1.5\n", "t.ini:1: [sku 7]: missing key"},
    {"[engine]\nshards 4\n[sku 7]\nstock = -1\n", "t.ini:2: expected [section]"},
};

Test(campaign, broken_files_are_refused_with_file_line_and_reason)
{
    size_t count = sizeof broken_files / sizeof broken_files[0];
    for (size_t i = 0; i < count; i++) {
        struct rush_campaign campaign;
        char why[RUSH_CAMPAIGN_WHY_BYTES];
        int rc =
            rush_campaign_load_string("t.ini", broken_files[i].text, &campaign, why, sizeof why);
        cr_assert_eq(rc, RUSH_ECONFIG, "case %zu loaded:\n%s", i, broken_files[i].text);
        cr_assert_eq(strncmp(why, broken_files[i].why, strlen(broken_files[i].why)), 0,
                     "case %zu: got \"%s\" want \"%s\"", i, why, broken_files[i].why);
        cr_assert_null(campaign.skus, "a failed load owns nothing");
        cr_assert_eq(campaign.sku_count, 0);
    }
}

/* An activity across the colours of one phone, a new-users-only variant, a registration. */
Test(campaign, activities_and_eligibility_reach_the_skus_and_the_engine)
{
    struct rush_campaign campaign = load_ok(
        "[sku 5000000000007001]\nname = red\nstock = 5\nprice = 100\nstart = now\n"
        "end = never\nactivity = phone\n"
        "[activity phone]\nuser_qty_max = 2\nday_qty_max = 1\nday_offset_hours = 8\n"
        "subsidy_budget_fen = 250000\n"
        "[sku 5000000000007002]\nname = blue\nstock = 5\nprice = 100\nstart = now\n"
        "end = never\nactivity = phone\nnew_users_only = true\n"
        "[activity empty]\nuser_qty_max = 9\n"
        "[sku 8]\nname = booked\nstock = 5\nprice = 100\nstart = 2026-11-11T00:00:00+08:00\n"
        "end = never\nregistration_required = true\nregister_from = 2026-11-01T00:00:00+08:00\n"
        "register_until = 2026-11-11T00:00:00+08:00\n");
    cr_assert_eq(campaign.activity_count, 2);
    const struct rush_activity *phone = &campaign.activities[0];
    cr_assert_str_eq(phone->name, "phone");
    cr_assert_eq(phone->family, UINT64_C(5000000000007));
    cr_assert_eq(phone->user_qty_max, 2);
    cr_assert_eq(phone->day_qty_max, 1);
    cr_assert_eq(phone->day_offset_ns, 8 * 3600 * S);
    cr_assert_eq(phone->subsidy_budget_fen, 250000);
    cr_assert_eq(campaign.activities[1].subsidy_budget_fen, 0, "absent: no cap");
    cr_assert_eq(campaign.activities[1].family, 0, "an activity no SKU names has no family");
    cr_assert_eq(find(&campaign, UINT64_C(5000000000007001))->rules, RUSH_SKU_IN_ACTIVITY);
    cr_assert_eq(find(&campaign, UINT64_C(5000000000007002))->rules,
                 RUSH_SKU_IN_ACTIVITY | RUSH_SKU_NEW_USERS_ONLY);
    const struct rush_sku *booked = find(&campaign, 8);
    cr_assert_eq(booked->rules, RUSH_SKU_REGISTRATION);
    cr_assert_eq(booked->register_from_ns, NOW_NS - 10 * 86400 * S);
    cr_assert_eq(booked->register_until_ns, NOW_NS);
    struct rush_engine_config config;
    rush_campaign_engine_config(&campaign, &config);
    cr_assert_eq(config.policy.activity_count, 2);
    cr_assert_eq(config.policy.activities, campaign.activities);
    rush_campaign_free(&campaign);
}

Test(campaign, tiers_set_the_group_size_and_the_seat_prices)
{
    struct rush_campaign campaign = load_ok(SKU_HEAD "group_ttl = 10m\ntiers = 3:99, 5:89,10:79\n");
    const struct rush_sku *sku = find(&campaign, 7);
    cr_assert_eq(sku->group_size, 10, "the last tier is the group's size");
    cr_assert_eq(sku->tier_count, 3);
    cr_assert_eq(sku->tier_size[1], 5);
    cr_assert_eq(sku->tier_price_fen[2], 79);
    char text[64];
    cr_assert_gt(rush_sku_tiers_format(sku, text, sizeof text), 0);
    cr_assert_str_eq(text, "3:99, 5:89, 10:79");
    rush_campaign_free(&campaign);
}

Test(campaign, one_stock_sells_at_solo_group_and_leader_prices)
{
    struct rush_campaign campaign =
        load_ok(SKU_HEAD "group_size = 2\ngroup_ttl = 10m\nsolo_allowed = true\n"
                         "group_price = 60\nleader_price = 0\n"
                         "[sku 8]\nname = y\nstock = 1\nprice = 50\nstart = now\nend = never\n"
                         "group_size = 3\ngroup_ttl = 1m\n");
    const struct rush_sku *deal = find(&campaign, 7);
    cr_assert_eq(deal->solo_allowed, 1);
    cr_assert_eq(deal->prices, RUSH_SKU_GROUP_PRICE | RUSH_SKU_LEADER_PRICE);
    cr_assert_eq(deal->group_price_fen, 60);
    cr_assert_eq(deal->leader_price_fen, 0, "a leader price of 0 is a price: the leader is free");
    const struct rush_sku *plain = find(&campaign, 8);
    cr_assert_eq(plain->solo_allowed, 0);
    cr_assert_eq(plain->prices, 0, "no group or leader price: every seat pays price");
    rush_campaign_free(&campaign);
}

Test(campaign, lines_inih_would_misread_are_refused)
{
    char text[512];
    memset(text, 'x', sizeof text);
    memcpy(text, "[sku 7]\nname = ", 15);
    text[15 + 300] = '\n';
    text[15 + 301] = '\0';
    struct rush_campaign campaign;
    char why[RUSH_CAMPAIGN_WHY_BYTES];
    cr_assert_eq(rush_campaign_load_string("t.ini", text, &campaign, why, sizeof why),
                 RUSH_ECONFIG);
    cr_assert_str_eq(why, "t.ini:2: line is longer than 199 bytes");

    const char nul[] = "[sku 7]\nname = a\0b\n";
    cr_assert_eq(
        rush_campaign_parse("t.ini", nul, sizeof nul - 1, NOW_NS, &campaign, why, sizeof why),
        RUSH_ECONFIG);
    cr_assert_str_eq(why, "t.ini:2: NUL byte in line");
}

Test(campaign, a_missing_file_is_an_errno)
{
    struct rush_campaign campaign;
    char why[RUSH_CAMPAIGN_WHY_BYTES];
    cr_assert_eq(rush_campaign_load_file("/nonexistent/x.ini", &campaign, why, sizeof why),
                 -ENOENT);
    cr_assert_str_eq(why, "/nonexistent/x.ini: No such file or directory");
}

Test(campaign, durations_parse)
{
    static const struct {
        const char *text;
        int rc;
        int64_t ns;
    } cases[] = {
        {"0", 0, 0},
        {"500ms", 0, 500000000},
        {"30s", 0, 30 * S},
        {"15m", 0, 900 * S},
        {"2h", 0, 7200 * S},
        {"1h30m", 0, 5400 * S},
        {"250us", 0, 250000},
        {"7ns", 0, 7},
        {"15", -EINVAL, 0},
        {"", -EINVAL, 0},
        {"m", -EINVAL, 0},
        {"-5s", -EINVAL, 0},
        {"1.5s", -EINVAL, 0},
        {"5 s", -EINVAL, 0},
        {"3d", -EINVAL, 0},
        {"10000000000h", -ERANGE, 0},
        {"99999999999999999999s", -ERANGE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ns = -1;
        int rc = rush_duration_parse(cases[i].text, &ns);
        cr_assert_eq(rc, cases[i].rc, "'%s': rc %d", cases[i].text, rc);
        if (rc == 0)
            cr_assert_eq(ns, cases[i].ns, "'%s': %ld", cases[i].text, (long)ns);
    }
}

Test(campaign, times_parse)
{
    static const struct {
        const char *text;
        int rc;
        int64_t ns;
    } cases[] = {
        {"now", 0, NOW_NS},
        {"never", 0, RUSH_TIME_NEVER},
        {"0", 0, 0},
        {"1794326400000000000", 0, NOW_NS},
        {"2026-11-11T00:00:00+08:00", 0, NOW_NS},
        {"2026-11-10T16:00:00Z", 0, NOW_NS},
        {"2026-11-10t16:00:00z", 0, NOW_NS},
        {"2026-11-10T10:30:00-05:30", 0, NOW_NS},
        {"2026-11-10T16:00:00.5Z", 0, NOW_NS + 500000000},
        {"2026-11-10T16:00:00.123456789Z", 0, NOW_NS + 123456789},
        {"1970-01-01T00:00:00Z", 0, 0},
        {"2024-02-29T00:00:00Z", 0, INT64_C(1709164800) * S},
        {"2100-02-29T00:00:00Z", -EINVAL, 0},
        {"2026-11-10T16:00:00.1234567891Z", -EINVAL, 0},
        {"2026-11-10T16:00:00.Z", -EINVAL, 0},
        {"2026-11-10T24:00:00Z", -EINVAL, 0},
        {"2026-11-10T16:00:60Z", -EINVAL, 0},
        {"2026-13-10T16:00:00Z", -EINVAL, 0},
        {"2026-11-10 16:00:00Z", -EINVAL, 0},
        {"2026-11-10T16:00:00+8:00", -EINVAL, 0},
        {"2026-11-10T16:00:00+08:00x", -EINVAL, 0},
        {"2026-11-10", -EINVAL, 0},
        {"tomorrow", -EINVAL, 0},
        {"1969-12-31T23:59:59Z", -ERANGE, 0},
        {"1970-01-01T00:00:00+01:00", -ERANGE, 0},
        {"2201-01-01T00:00:00Z", -ERANGE, 0},
        {"99999999999999999999", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ns = -1;
        int rc = rush_time_parse(cases[i].text, NOW_NS, &ns);
        cr_assert_eq(rc, cases[i].rc, "'%s': rc %d", cases[i].text, rc);
        if (rc == 0)
            cr_assert_eq(ns, cases[i].ns, "'%s': %ld", cases[i].text, (long)ns);
    }
}

Test(campaign, many_skus_load_and_ids_stay_unique)
{
    size_t count = 5000;
    size_t cap = count * 120 + 1;
    char *text = malloc(cap);
    size_t len = 0;
    for (size_t i = 0; i < count; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "[sku %zu]\nname = item %zu\nstock = %zu\nprice = 1\n"
                                "start = now\nend = never\n",
                                1000 + i * 7919, i, i);
    struct rush_campaign campaign;
    char why[RUSH_CAMPAIGN_WHY_BYTES];
    cr_assert_eq(rush_campaign_parse("big.ini", text, len, NOW_NS, &campaign, why, sizeof why), 0,
                 "%s", why);
    cr_assert_eq(campaign.sku_count, count);
    cr_assert_eq(campaign.skus[count - 1].stock, (int64_t)count - 1);
    rush_campaign_free(&campaign);
    free(text);
}

Test(campaign, snapshot_background_reaches_the_engine_config)
{
    struct rush_campaign campaign = load_ok("[engine]\nshards = 1\n");
    struct rush_engine_config config;
    rush_campaign_engine_config(&campaign, &config);
    cr_assert(!config.snapshot_in_background, "absent: the shard writes its own");
    rush_campaign_free(&campaign);
    campaign = load_ok("[engine]\nsnapshot_every_events = 1000\nsnapshot_background = true\n");
    rush_campaign_engine_config(&campaign, &config);
    cr_assert(config.snapshot_in_background);
    rush_campaign_free(&campaign);
}

Test(campaign, snapshot_every_events_reaches_the_engine_config)
{
    struct rush_campaign campaign = load_ok("[engine]\nshards = 1\n");
    struct rush_engine_config config;
    rush_campaign_engine_config(&campaign, &config);
    cr_assert_eq(config.snapshot_every_events, 0, "absent: never");
    rush_campaign_free(&campaign);

    campaign = load_ok("[engine]\nsnapshot_every_events = 0\n");
    cr_assert_eq(campaign.engine.snapshot_every_events, 0);
    rush_campaign_free(&campaign);

    campaign = load_ok("[engine]\nsnapshot_every_events = 1000000\n");
    rush_campaign_engine_config(&campaign, &config);
    cr_assert_eq(config.snapshot_every_events, 1000000);
    rush_campaign_free(&campaign);

    campaign = load_ok("[engine]\nsnapshot_every_events = 9223372036854775807\n");
    cr_assert_eq(campaign.engine.snapshot_every_events, UINT64_C(9223372036854775807));
    rush_campaign_free(&campaign);
}

Test(campaign, a_cluster_section_names_this_node_and_its_peers)
{
    static const char text[] =
        "[engine]\ndurability = replicated\ndata_dir = d\n\n[cluster]\nnode = B\n"
        "nodes = A=tcp://10.0.0.1:7100, B=tcp://10.0.0.2:7100,C=ipc:///tmp/c\n"
        "nats = nats://10.0.0.1:4222,nats://10.0.0.2:4222\nlease_ms = 500\nstream = sale11\n"
        "failback = off\n";
    struct rush_campaign campaign;
    char why[RUSH_CAMPAIGN_WHY_BYTES];
    cr_assert_eq(rush_campaign_load_string("c.ini", text, &campaign, why, sizeof(why)), 0, "%s",
                 why);
    const struct rush_campaign_cluster *cluster = &campaign.cluster;
    cr_assert_eq(campaign.engine.durability, RUSH_DURABILITY_REPLICATED);
    cr_assert_eq(cluster->node_count, 3);
    cr_assert_eq(cluster->node_index, 1);
    cr_assert_str_eq(cluster->names[2], "C");
    cr_assert_str_eq(cluster->orders[0], "tcp://10.0.0.1:7100");
    cr_assert_str_eq(cluster->orders[2], "ipc:///tmp/c");
    cr_assert_str_eq(cluster->nats, "nats://10.0.0.1:4222,nats://10.0.0.2:4222");
    cr_assert_eq(cluster->lease_ms, 500);
    cr_assert_str_eq(cluster->stream, "sale11");
    cr_assert(!cluster->failback);
    rush_campaign_free(&campaign);
    /* Without [cluster]: a single machine, no NATS; lease and stream keep their defaults. */
    cr_assert_eq(
        rush_campaign_load_string("s.ini", "[engine]\nshards = 2\n", &campaign, why, sizeof(why)),
        0);
    cr_assert_eq(campaign.cluster.node_count, 0);
    cr_assert_eq(campaign.cluster.lease_ms, RUSH_CLUSTER_LEASE_MS_DEFAULT);
    cr_assert(campaign.cluster.failback);
    rush_campaign_free(&campaign);
}

Test(campaign, the_http_endpoint_defaults_to_loopback_and_can_be_turned_off)
{
    struct rush_campaign campaign = load_ok("[engine]\nshards = 2\n");
    cr_assert_str_eq(campaign.endpoints.http, "127.0.0.1:7180");
    rush_campaign_free(&campaign);
    campaign = load_ok("[endpoints]\nhttp =\n");
    cr_assert_str_eq(campaign.endpoints.http, "");
    rush_campaign_free(&campaign);
    campaign = load_ok("[endpoints]\nhttp = 0.0.0.0:9180\n");
    cr_assert_str_eq(campaign.endpoints.http, "0.0.0.0:9180");
    rush_campaign_free(&campaign);
    static const char *const bad[] = {
        "[endpoints]\nhttp = localhost:7180\n", "[endpoints]\nhttp = 127.0.0.1\n",
        "[endpoints]\nhttp = 127.0.0.1:0\n", "[endpoints]\nhttp = 127.0.0.1:65536\n",
        "[endpoints]\nhttp = tcp://127.0.0.1:7180\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[RUSH_CAMPAIGN_WHY_BYTES];
        cr_assert_eq(rush_campaign_load_string("t.ini", bad[i], &campaign, why, sizeof why),
                     RUSH_ECONFIG, "%s", bad[i]);
        cr_assert(strstr(why, "t.ini:2: http = ") != NULL, "%s", why);
    }
}
