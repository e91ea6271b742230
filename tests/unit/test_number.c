/*
 * The one strict decimal parser (proto/base/number.c): exact boundaries of both types, the whole
 * text or nothing, and hostile text (signs, spaces, hex, NUL bytes, overlong and overflowing
 * digit runs) refused with a reason that quotes it safely. A seeded round trip against
 * snprintf checks every magnitude class.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/number.h"

static int u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    return rush_number_parse_u64(text, strlen(text), min, max, out, NULL, 0);
}

static int i64(const char *text, int64_t *out)
{
    return rush_number_parse_i64(text, strlen(text), INT64_MIN, INT64_MAX, out, NULL, 0);
}

Test(number, u64_reads_whole_decimal_texts_up_to_the_type_limit)
{
    uint64_t v = 1;
    cr_assert_eq(u64("0", 0, UINT64_MAX, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(u64("007", 0, UINT64_MAX, &v), 0, "leading zeros are decimal");
    cr_assert_eq(v, 7);
}

Test(number, u64_refuses_one_past_the_type_limit_and_overlong_runs)
{
    uint64_t v = 42;
    cr_assert_eq(u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
    cr_assert_eq(u64("99999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
    cr_assert_eq(u64("000000000000000000001", 0, UINT64_MAX, &v), -ERANGE, "21 digits");
    char many[5000];
    memset(many, '7', sizeof(many));
    cr_assert_eq(rush_number_parse_u64(many, sizeof(many), 0, UINT64_MAX, &v, NULL, 0), -ERANGE);
    many[4999] = 'x';
    cr_assert_eq(rush_number_parse_u64(many, sizeof(many), 0, UINT64_MAX, &v, NULL, 0), -EINVAL);
    cr_assert_eq(v, 42, "out is untouched on failure");
}

Test(number, range_is_inclusive_and_answers_erange)
{
    uint32_t v = 0;
    cr_assert_eq(rush_number_parse_u32("1", 1, 64, &v, NULL, 0), 0);
    cr_assert_eq(rush_number_parse_u32("64", 1, 64, &v, NULL, 0), 0);
    cr_assert_eq(v, 64);
    cr_assert_eq(rush_number_parse_u32("0", 1, 64, &v, NULL, 0), -ERANGE);
    cr_assert_eq(rush_number_parse_u32("65", 1, 64, &v, NULL, 0), -ERANGE);
    cr_assert_eq(rush_number_parse_u32("4294967296", 0, UINT32_MAX, &v, NULL, 0), -ERANGE,
                 "no silent truncation to 32 bits");
    cr_assert_eq(v, 64);
}

Test(number, i64_reaches_both_ends_and_no_further)
{
    int64_t v = 0;
    cr_assert_eq(i64("9223372036854775807", &v), 0);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(i64("-9223372036854775808", &v), 0);
    cr_assert_eq(v, INT64_MIN);
    cr_assert_eq(i64("-0", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(i64("9223372036854775808", &v), -ERANGE);
    cr_assert_eq(i64("-9223372036854775809", &v), -ERANGE);
    cr_assert_eq(i64("-18446744073709551616", &v), -ERANGE);
    cr_assert_eq(rush_number_parse_i64("-5", 2, 0, 10, &v, NULL, 0), -ERANGE);
}

Test(number, hostile_texts_are_not_integers)
{
    static const char *const bad[] = {
        "",    "-",  "+1", " 1",  "1 ",  "1\n", "0x10", "1e3", "1.0", "1_000",
        "--1", "1-", "١",  "\t7", "12a", "a12", "-+1",  "0b1", "∞",   "- 1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t u = 5;
        int64_t s = 5;
        cr_assert_eq(u64(bad[i], 0, UINT64_MAX, &u), -EINVAL, "u64 took '%s'", bad[i]);
        cr_assert_eq(i64(bad[i], &s), -EINVAL, "i64 took '%s'", bad[i]);
        cr_assert_eq(u, 5);
        cr_assert_eq(s, 5);
    }
    uint64_t u;
    cr_assert_eq(u64("-1", 0, UINT64_MAX, &u), -EINVAL, "no wrap of -1 to UINT64_MAX");
}

Test(number, the_length_bounds_the_read_and_a_nul_inside_is_refused)
{
    uint64_t v = 0;
    cr_assert_eq(rush_number_parse_u64("12345", 2, 0, UINT64_MAX, &v, NULL, 0), 0);
    cr_assert_eq(v, 12, "only text[0 .. len) is read");
    cr_assert_eq(rush_number_parse_u64("1\0002", 3, 0, UINT64_MAX, &v, NULL, 0), -EINVAL);
    cr_assert_eq(rush_number_parse_u64(NULL, 0, 0, UINT64_MAX, &v, NULL, 0), -EINVAL);
}

Test(number, reasons_quote_the_text_safely_and_name_the_range)
{
    char why[96];
    uint64_t v;
    cr_assert_eq(rush_number_parse_u64("12x", 3, 0, 9, &v, why, sizeof(why)), -EINVAL);
    cr_assert_str_eq(why, "'12x' is not a decimal integer");
    cr_assert_eq(rush_number_parse_u64("65", 2, 1, 64, &v, why, sizeof(why)), -ERANGE);
    cr_assert_str_eq(why, "'65' is out of range 1..64");
    int64_t s;
    cr_assert_eq(rush_number_parse_i64("-5", 2, -4, 4, &s, why, sizeof(why)), -ERANGE);
    cr_assert_str_eq(why, "'-5' is out of range -4..4");
    cr_assert_eq(rush_number_parse_u64("a\033[2Jb", 6, 0, 9, &v, why, sizeof(why)), -EINVAL);
    cr_assert_str_eq(why, "'a?[2Jb' is not a decimal integer", "control bytes are not echoed");
    char longer[200];
    memset(longer, '9', sizeof(longer));
    cr_assert_eq(rush_number_parse_u64(longer, sizeof(longer), 0, 9, &v, why, sizeof(why)),
                 -ERANGE);
    cr_assert_lt(strlen(why), 80, "a long text is cut in the reason: %s", why);
    cr_assert_eq(rush_number_parse_u64("7", 1, 0, 9, &v, why, 1), 0, "a tiny buffer is fine");
}

Test(number, seeded_round_trip_through_snprintf)
{
    uint64_t seed = 0x9e3779b97f4a7c15u, state = seed;
    for (int i = 0; i < 100000; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        uint64_t value = state >> (state % 64); /* every magnitude class */
        char text[32];
        snprintf(text, sizeof(text), "%" PRIu64, value);
        uint64_t u;
        cr_assert_eq(u64(text, 0, UINT64_MAX, &u), 0, "seed %" PRIx64 " text %s", seed, text);
        cr_assert_eq(u, value, "seed %" PRIx64 " text %s", seed, text);
        int64_t s = (int64_t)value, back;
        snprintf(text, sizeof(text), "%" PRId64, s);
        cr_assert_eq(i64(text, &back), 0, "seed %" PRIx64 " text %s", seed, text);
        cr_assert_eq(back, s, "seed %" PRIx64 " text %s", seed, text);
    }
}
