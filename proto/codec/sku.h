/*
 * sku.h — the one validator of a SKU definition (struct rush_sku, include/rush/types.h), used by
 * the campaign loader, the JSON codec and the engine's sku_put decider: every limit a definition
 * must respect is checked here and nowhere else.
 */
#ifndef RUSH_CODEC_SKU_H
#define RUSH_CODEC_SKU_H

#include <stdbool.h>
#include <stddef.h>

#include "rush/types.h"

/* Internal to rush: linked into librush for the wire decoder, not exported from it. */
#pragma GCC visibility push(hidden)

/* 0 when `sku` is a valid definition; otherwise RUSH_ECONFIG with the first problem in `why`
 * (which may be NULL when why_size is 0). */
RUSH_MUST_USE int rush_sku_check(const struct rush_sku *sku, char *why, size_t why_size);

/*
 * The fields (RUSH_SKU_FIELD_*) that `put`, a sku_put of a SKU not yet defined, lacks for a
 * whole definition: 0 when it is whole (fields 0, or the required ones named, with STOCK unless
 * it names UNLIMITED set). Only a whole put creates a SKU.
 */
uint32_t rush_sku_fields_missing(const struct rush_sku *put);

/* Whether the record's reserved bytes (pad) are all zero, as every sender must leave them. */
bool rush_sku_pad_is_zero(const struct rush_sku *sku);

/*
 * The definition a put of a live SKU leaves: `live` with the fields `put` names replaced
 * (fields 0 names them all). `stock_total` is the live SKU's stock (its definition plus
 * adjustments): an unnamed STOCK keeps it, a named one replaces it. The result has fields 0 and
 * is what the engine checks (rush_sku_check) and logs.
 */
struct rush_sku rush_sku_merge(const struct rush_sku *live, int64_t stock_total,
                               const struct rush_sku *put);

/* Tiers as the campaign and JSON write them, "3:990, 5:890, 10:790" (size:price in fen; ""
 * for none), into sku's tier fields (checked by rush_sku_check, not here). 0, or -1 when the
 * text is not of that form or has more than RUSH_TIERS_MAX tiers. */
int rush_sku_tiers_parse(const char *text, struct rush_sku *sku);
/* The tiers in that form into out[0..cap); its length, or -1 when cap is too small. */
int rush_sku_tiers_format(const struct rush_sku *sku, char *out, size_t cap);

#pragma GCC visibility pop

#endif
