/*
 * test_sp.c — the SP-over-TCP greeting and framing (proto/codec/sp.c): what rushd's own tcp://
 * transport decodes a peer's bytes with. Happy path, every boundary (a message of exactly the
 * limit and one byte over, a backtrace of 8 words and of 9, an empty body, a frame one byte
 * short), and the greetings of other protocols. Byte-level checks against the real peers
 * (nanomsg, NNG) are in tests/system/test_tcp.c and test_server.c.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "codec/sp.h"
#include "rush/types.h"

static size_t frame(uint8_t *out, const uint32_t *words, int word_count, const char *body)
{
    size_t len = strlen(body);
    uint64_t message = (uint64_t)word_count * 4 + len;
    for (int i = 7; i >= 0; i--, message >>= 8)
        out[i] = (uint8_t)message;
    for (int w = 0; w < word_count; w++)
        for (int b = 0; b < 4; b++)
            out[8 + 4 * w + b] = (uint8_t)(words[w] >> (24 - 8 * b));
    memcpy(out + 8 + 4 * word_count, body, len);
    return 8 + (size_t)word_count * 4 + len;
}

static int decode(const uint8_t *buf, size_t len, size_t max, struct rush_sp_frame *f, size_t *need,
                  const char **why)
{
    *why = NULL;
    return rush_sp_frame_decode(buf, len, max, f, need, why);
}

Test(sp, greetings)
{
    uint8_t g[RUSH_SP_GREETING_BYTES];
    rush_sp_greeting(g, RUSH_SP_PROTOCOL_REP);
    const uint8_t rep[8] = {0, 'S', 'P', 0, 0, 49, 0, 0};
    cr_assert(memcmp(g, rep, sizeof(rep)) == 0);
    cr_expect_null(rush_sp_greeting_check(g, RUSH_SP_PROTOCOL_REP));
    cr_expect_str_eq(rush_sp_greeting_check(g, RUSH_SP_PROTOCOL_REQ),
                     "the peer speaks another SP protocol");
    g[7] = 1;
    cr_expect_str_eq(rush_sp_greeting_check(g, RUSH_SP_PROTOCOL_REP), "reserved greeting bits set");
    const uint8_t http[8] = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T'};
    cr_expect_str_eq(rush_sp_greeting_check(http, RUSH_SP_PROTOCOL_REQ),
                     "not an SP peer (bad greeting)");
}

Test(sp, frames_one_after_another_and_their_replies)
{
    uint8_t buf[256];
    const uint32_t hops[3] = {5, 9, 0x80001234u};
    size_t first = frame(buf, hops, 3, "hello");
    size_t second = frame(buf + first, &(uint32_t){0x80000001u}, 1, "");
    struct rush_sp_frame f;
    size_t need;
    const char *why;
    cr_assert_eq(decode(buf, first + second, 100, &f, &need, &why), 1);
    cr_expect_eq(f.bytes, first);
    cr_expect_eq(f.backtrace_bytes, 12);
    cr_expect_eq(f.body_bytes, 5);
    cr_expect(memcmp(f.body, "hello", 5) == 0);
    uint8_t reply[64];
    size_t bytes = rush_sp_reply_bytes(f.backtrace_bytes, 2);
    cr_assert_eq(bytes, 8 + 12 + 2);
    rush_sp_reply_encode(reply, f.backtrace, f.backtrace_bytes, "ok", 2);
    cr_expect(memcmp(reply + 8, buf + 8, 12) == 0, "the backtrace goes back as it came");
    cr_expect_eq(reply[7], 14);
    cr_assert_eq(decode(buf + first, second, 100, &f, &need, &why), 1);
    cr_expect_eq(f.backtrace_bytes, 4);
    cr_expect_eq(f.body_bytes, 0, "an empty body is a message");
}

Test(sp, an_incomplete_frame_says_what_it_needs)
{
    uint8_t buf[64];
    size_t len = frame(buf, &(uint32_t){0x80000001u}, 1, "abc");
    struct rush_sp_frame f;
    size_t need = 0;
    const char *why;
    cr_expect_eq(decode(buf, 0, 100, &f, &need, &why), 0);
    cr_expect_eq(need, RUSH_SP_LENGTH_BYTES);
    cr_expect_eq(decode(buf, 7, 100, &f, &need, &why), 0);
    cr_expect_eq(need, RUSH_SP_LENGTH_BYTES);
    cr_expect_eq(decode(buf, len - 1, 100, &f, &need, &why), 0);
    cr_expect_eq(need, len);
    cr_expect_eq(decode(buf, len, 100, &f, &need, &why), 1);
}

Test(sp, the_limit_and_one_byte_over)
{
    uint8_t buf[64];
    size_t len = frame(buf, &(uint32_t){0x80000001u}, 1, "abcd"); /* a message of 8 bytes */
    struct rush_sp_frame f;
    size_t need;
    const char *why;
    cr_expect_eq(decode(buf, len, 8, &f, &need, &why), 1);
    cr_expect_eq(decode(buf, 8, 7, &f, &need, &why), RUSH_EPROTO,
                 "refused on the length alone, before the message is in");
    cr_expect_str_eq(why, "a message over the endpoint's limit");
    const uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    cr_expect_eq(decode(huge, 8, SIZE_MAX / 2, &f, &need, &why), RUSH_EPROTO);
}

Test(sp, a_request_id_within_eight_words)
{
    uint32_t words[9] = {1, 2, 3, 4, 5, 6, 7, 0x80000008u, 0x80000009u};
    uint8_t buf[128];
    struct rush_sp_frame f;
    size_t need;
    const char *why;
    size_t len = frame(buf, words, 8, "x");
    cr_expect_eq(decode(buf, len, 100, &f, &need, &why), 1);
    cr_expect_eq(f.backtrace_bytes, 32);
    words[7] = 8; /* the id only in the ninth word */
    len = frame(buf, words, 9, "x");
    cr_expect_eq(decode(buf, len, 100, &f, &need, &why), RUSH_EPROTO);
    cr_expect_str_eq(why, "a message without a request id (not from a REQ socket)");
    len = frame(buf, NULL, 0, "ab"); /* shorter than a word */
    cr_expect_eq(decode(buf, len, 100, &f, &need, &why), RUSH_EPROTO);
}
