/*
 * fuzz_campaign.c — libFuzzer target for the campaign file loader (engine/campaign/campaign.c)
 * on arbitrary text, through rush_campaign_parse (the in-memory form every loader calls).
 *
 * Checks, with always-on asserts:
 *  1. nothing is read outside the input (ASan: the text is not NUL-terminated), no undefined
 *     behaviour (UBSan), nothing leaks after rush_campaign_free (LeakSanitizer);
 *  2. a refusal names its problem in printable text;
 *  3. a loaded campaign keeps the loader's invariants (campaign.h): every SKU passes the one
 *     validator rush_sku_check, ids are unique, the engine section's counts are in range.
 * Seeds: tests/fuzz/corpus/campaign/ (the sample file, a small file, broken ones).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "campaign/campaign.h"
#include "codec/sku.h"
#include "rush/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_NS INT64_C(1794326400000000000) /* a fixed "now": runs repeat exactly */

static void check_loaded(const struct rush_campaign *campaign)
{
    RUSH_ASSERT(campaign->sku_count <= RUSH_CAMPAIGN_SKUS_MAX);
    RUSH_ASSERT(campaign->engine.shards <= RUSH_SHARDS_MAX); /* 0: not given */
    for (uint32_t i = 0; i < campaign->sku_count; i++) {
        char why[256];
        int rc = rush_sku_check(&campaign->skus[i], why, sizeof why);
        RUSH_ASSERT(rc == 0);
        for (uint32_t j = 0; j < i; j++) /* a fuzz input holds few SKUs: O(n^2) is fine */
            RUSH_ASSERT(campaign->skus[j].id != campaign->skus[i].id);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rush_campaign campaign;
    char why[RUSH_CAMPAIGN_WHY_BYTES] = "";
    int rc = rush_campaign_parse("fuzz.ini", (const char *)data, size, NOW_NS, &campaign, why,
                                 sizeof why);
    if (rc == 0) {
        check_loaded(&campaign);
    } else {
        RUSH_ASSERT(rc < 0 && why[0] != '\0');
        for (const char *p = why; *p != '\0'; p++)
            RUSH_ASSERT(*p >= 0x20 && *p < 0x7f);
    }
    rush_campaign_free(&campaign);
    return 0;
}
