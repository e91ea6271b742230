/*
 * fuzz_sp.c — libFuzzer target for the SP-over-TCP framing (proto/codec/sp.c), the first thing
 * rushd's tcp:// transport runs on a peer's bytes.
 *
 * The input is a connection's byte stream after the greeting, decoded the way
 * engine/front/sp_server.c does: frames one after another until one is incomplete or refused.
 * Checks, with always-on asserts:
 *  1. nothing is read outside the input (ASan), no undefined behaviour (UBSan);
 *  2. a frame lies inside what is left, its backtrace is 4..32 bytes of whole words whose last
 *     (and only that one) has its top bit set, and its body follows the backtrace to the frame's
 *     end; an incomplete frame asks for more than what is left, a refusal gives a reason;
 *  3. the same bytes arriving one by one decode to the same frames (the transport sees any
 *     split);
 *  4. a frame's reply encoding carries the same backtrace and decodes back to the same frame.
 * The message limit is taken from the first byte, so that small and large limits are both hit.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec/sp.h"
#include "rush/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FRAMES_MAX 4096

static uint8_t reply[RUSH_SP_LENGTH_BYTES + 4096 + RUSH_SP_BACKTRACE_BYTES_MAX];

static void check_frame(const uint8_t *at, size_t left, const struct rush_sp_frame *f)
{
    RUSH_ASSERT(f->bytes >= RUSH_SP_LENGTH_BYTES + 4 && f->bytes <= left);
    RUSH_ASSERT(f->backtrace == at + RUSH_SP_LENGTH_BYTES);
    RUSH_ASSERT(f->backtrace_bytes >= 4 && f->backtrace_bytes <= RUSH_SP_BACKTRACE_BYTES_MAX);
    RUSH_ASSERT(f->backtrace_bytes % 4 == 0);
    for (size_t w = 0; w + 4 < f->backtrace_bytes; w += 4)
        RUSH_ASSERT((f->backtrace[w] & 0x80) == 0);
    RUSH_ASSERT(f->backtrace[f->backtrace_bytes - 4] & 0x80);
    RUSH_ASSERT(f->body == f->backtrace + f->backtrace_bytes);
    RUSH_ASSERT(f->body + f->body_bytes == at + f->bytes);
    size_t bytes = rush_sp_reply_bytes(f->backtrace_bytes, f->body_bytes);
    if (bytes > sizeof(reply))
        return;
    rush_sp_reply_encode(reply, f->backtrace, f->backtrace_bytes, f->body, f->body_bytes);
    struct rush_sp_frame back;
    size_t need = 0;
    const char *why = NULL;
    RUSH_VERIFY(rush_sp_frame_decode(reply, bytes, bytes, &back, &need, &why) == 1);
    RUSH_ASSERT(back.bytes == bytes && back.backtrace_bytes == f->backtrace_bytes);
    RUSH_ASSERT(memcmp(back.backtrace, f->backtrace, f->backtrace_bytes) == 0);
    RUSH_ASSERT(back.body_bytes == f->body_bytes);
}

/* Decodes the stream whole; the frames' sizes in sizes[], their count returned; *end_rc the last
 * call's answer (0 incomplete, < 0 refused). */
static size_t decode_whole(const uint8_t *data, size_t size, size_t max, size_t *sizes, int *end_rc)
{
    size_t at = 0, count = 0;
    for (;;) {
        struct rush_sp_frame f;
        size_t need = 0;
        const char *why = NULL;
        int rc = rush_sp_frame_decode(data + at, size - at, max, &f, &need, &why);
        if (rc != 1 || count == FRAMES_MAX) {
            RUSH_ASSERT(rc != 0 || need > size - at);
            RUSH_ASSERT(rc >= 0 || (why != NULL && why[0] != '\0'));
            *end_rc = rc;
            return count;
        }
        check_frame(data + at, size - at, &f);
        sizes[count++] = f.bytes;
        at += f.bytes;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max = (size_t)data[0] * 16; /* 0 .. 4080 */
    data++;
    size--;
    static size_t sizes[FRAMES_MAX];
    int end_rc = 0;
    size_t count = decode_whole(data, size, max, sizes, &end_rc);
    /* One byte at a time: the buffer grows by one and every whole frame is taken at once. */
    size_t start = 0, seen = 0;
    int rc = 0;
    for (size_t have = 0; have <= size && seen < count; have++) {
        struct rush_sp_frame f;
        size_t need = 0;
        const char *why = NULL;
        while (seen < count &&
               (rc = rush_sp_frame_decode(data + start, have - start, max, &f, &need, &why)) == 1) {
            RUSH_ASSERT(f.bytes == sizes[seen]);
            start += f.bytes;
            seen++;
        }
        RUSH_ASSERT(rc >= 0 || seen == count);
    }
    RUSH_ASSERT(seen == count);
    (void)end_rc;
    return 0;
}
