/*
 * number.h — the one strict decimal integer parser.
 *
 * What and why. Numbers reach rush as text from the campaign file, command lines (rushd, rushctl,
 * rush-loadgen, rush-wal, rush-demo), JSON strings carrying 64-bit ids, and the subscriber's
 * cursor file. Each once had its own parser, and strtoul-based ones accept " 12", "+12", "12abc"
 * (with a forgotten end check) or "-1" as 18446744073709551615. Here a number is exactly:
 *
 *     [-] digit{1..20}        the whole text, nothing before or after it
 *
 * where '-' is accepted only by the signed parser, and the value must lie in [min, max].
 * Leading zeros are accepted ("007" is 7); spaces, '+', "0x", '_' and an empty text are not.
 *
 * Errors: -EINVAL when the text is not a decimal integer, -ERANGE when it is one but outside
 * [min, max] (or longer than 20 digits, or beyond the type). `why` (may be NULL) receives a
 * sentence such as
 * "'12x' is not a decimal integer" or "'65' is out of range 1..64"; callers put their field's
 * name in front. Texts are quoted cut to 40 bytes, non-printable bytes shown as '?'.
 *
 * Invariants: reads text[0 .. len) only (no NUL needed); *out is written only on success.
 * Threads: any; pure functions.
 */
#ifndef RUSH_NUMBER_H
#define RUSH_NUMBER_H

#include <stddef.h>
#include <stdint.h>

#include "rush/types.h"

#define RUSH_NUMBER_DIGITS_MAX 20 /* UINT64_MAX has 20 decimal digits */

/* Internal to rush: linked into librush for the cursor file, not exported from it. */
#pragma GCC visibility push(hidden)

RUSH_MUST_USE int rush_number_parse_u64(const char *text, size_t len, uint64_t min, uint64_t max,
                                        uint64_t *out, char *why, size_t why_size);
RUSH_MUST_USE int rush_number_parse_i64(const char *text, size_t len, int64_t min, int64_t max,
                                        int64_t *out, char *why, size_t why_size);
/* The same for a NUL-terminated text, into a u32. */
RUSH_MUST_USE int rush_number_parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out,
                                        char *why, size_t why_size);

#pragma GCC visibility pop

#endif
