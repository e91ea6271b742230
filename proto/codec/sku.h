/*
 * sku.h — the one validator of a SKU definition (struct rush_sku, include/rush/types.h), used by
 * the campaign loader, the JSON codec and the engine's sku_put decider: every limit a definition
 * must respect is checked here and nowhere else.
 */
#ifndef RUSH_CODEC_SKU_H
#define RUSH_CODEC_SKU_H

#include <stddef.h>

#include "rush/types.h"

/* 0 when `sku` is a valid definition; otherwise RUSH_ECONFIG with the first problem in `why`
 * (which may be NULL when why_size is 0). */
RUSH_MUST_USE int rush_sku_check(const struct rush_sku *sku, char *why, size_t why_size);

#endif
