/*
 * number.c — strict decimal integers (see number.h).
 *
 * One digit loop (digits_value) serves both signs: the magnitude is read as a u64 with an
 * overflow check before each step, so no input can wrap; the signed parser then checks the
 * magnitude against INT64_MAX (or INT64_MAX + 1 after '-') before negating.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "number.h"
#include "rush/assert.h"
#include "why.h"

#define SHOWN_BYTES_MAX 40

/* text[0 .. len) as printable ASCII for a reason, cut to SHOWN_BYTES_MAX bytes. */
static const char *shown(char *dst, size_t dst_size, const char *text, size_t len)
{
    RUSH_ASSERT(dst_size > SHOWN_BYTES_MAX + 3);
    size_t n = len < SHOWN_BYTES_MAX ? len : SHOWN_BYTES_MAX;
    for (size_t i = 0; i < n; i++)
        dst[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
    if (n < len)
        memcpy(dst + n, "...", 3), n += 3;
    dst[n] = '\0';
    return dst;
}

static int not_integer(const char *text, size_t len, char *why, size_t why_size)
{
    char quoted[SHOWN_BYTES_MAX + 4];
    return rush__refuse(-EINVAL, why, why_size, "'%s' is not a decimal integer",
                        shown(quoted, sizeof(quoted), text, len));
}

/* Digits and nothing else into a u64: 0; -EINVAL when text[0 .. len) is empty or holds a
 * non-digit; -ERANGE when it is all digits but more than RUSH_NUMBER_DIGITS_MAX of them or
 * above UINT64_MAX. */
static int digits_value(const char *text, size_t len, uint64_t *out)
{
    if (len == 0)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) /* at most len steps */
        if (text[i] < '0' || text[i] > '9')
            return -EINVAL;
    if (len > RUSH_NUMBER_DIGITS_MAX)
        return -ERANGE;
    uint64_t value = 0;
    for (size_t i = 0; i < len; i++) { /* at most RUSH_NUMBER_DIGITS_MAX steps */
        uint64_t digit = (uint64_t)(text[i] - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return -ERANGE;
        value = value * 10 + digit;
    }
    *out = value;
    return 0;
}

static int out_of_range(const char *text, size_t len, const char *min, const char *max, char *why,
                        size_t why_size)
{
    char quoted[SHOWN_BYTES_MAX + 4];
    return rush__refuse(-ERANGE, why, why_size, "'%s' is out of range %s..%s",
                        shown(quoted, sizeof(quoted), text, len), min, max);
}

int rush_number_parse_u64(const char *text, size_t len, uint64_t min, uint64_t max, uint64_t *out,
                          char *why, size_t why_size)
{
    RUSH_ASSERT(text != NULL || len == 0);
    RUSH_ASSERT(out != NULL && min <= max);
    uint64_t value = 0;
    int rc = digits_value(text, len, &value);
    if (rc == -EINVAL)
        return not_integer(text, len, why, why_size);
    if (rc == -ERANGE || value < min || value > max) {
        char low[24], high[24];
        snprintf(low, sizeof(low), "%" PRIu64, min);
        snprintf(high, sizeof(high), "%" PRIu64, max);
        return out_of_range(text, len, low, high, why, why_size);
    }
    *out = value;
    return 0;
}

int rush_number_parse_i64(const char *text, size_t len, int64_t min, int64_t max, int64_t *out,
                          char *why, size_t why_size)
{
    RUSH_ASSERT(text != NULL || len == 0);
    RUSH_ASSERT(out != NULL && min <= max);
    size_t negative = len > 0 && text[0] == '-';
    uint64_t magnitude = 0;
    int rc = digits_value(text + negative, len - negative, &magnitude);
    if (rc == -EINVAL)
        return not_integer(text, len, why, why_size);
    bool fits = rc == 0 && magnitude <= (uint64_t)INT64_MAX + negative;
    int64_t value = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    if (!fits || value < min || value > max) {
        char low[24], high[24];
        snprintf(low, sizeof(low), "%" PRId64, min);
        snprintf(high, sizeof(high), "%" PRId64, max);
        return out_of_range(text, len, low, high, why, why_size);
    }
    *out = value;
    return 0;
}

int rush_number_parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out, char *why,
                          size_t why_size)
{
    RUSH_ASSERT(text != NULL && out != NULL);
    uint64_t value;
    int rc = rush_number_parse_u64(text, strlen(text), min, max, &value, why, why_size);
    if (rc == 0)
        *out = (uint32_t)value;
    return rc;
}
