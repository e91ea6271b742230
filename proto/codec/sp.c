/*
 * sp.c — the SP-over-TCP mapping's greeting and framing (sp.h). No allocation; every length is
 * checked against the buffer before it is read.
 */
#include "codec/sp.h"

#include <string.h>

#include "rush/assert.h"
#include "rush/types.h"

static void put_be(uint8_t *out, uint64_t value, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, value >>= 8)
        out[i] = (uint8_t)value;
}

static uint64_t get_be(const uint8_t *in, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value = value << 8 | in[i];
    return value;
}

void rush_sp_greeting(uint8_t out[RUSH_SP_GREETING_BYTES], uint16_t protocol)
{
    const uint8_t magic[4] = {0, 'S', 'P', 0};
    memcpy(out, magic, sizeof(magic));
    put_be(out + 4, protocol, 2);
    out[6] = out[7] = 0;
}

const char *rush_sp_greeting_check(const uint8_t in[RUSH_SP_GREETING_BYTES], uint16_t protocol)
{
    if (in[0] != 0 || in[1] != 'S' || in[2] != 'P' || in[3] != 0)
        return "not an SP peer (bad greeting)";
    if (in[6] != 0 || in[7] != 0)
        return "reserved greeting bits set";
    if (get_be(in + 4, 2) != protocol)
        return "the peer speaks another SP protocol";
    return NULL;
}

int rush_sp_frame_decode(const uint8_t *buf, size_t len, size_t message_max,
                         struct rush_sp_frame *frame, size_t *need, const char **why)
{
    RUSH_ASSERT(buf != NULL || len == 0);
    *need = RUSH_SP_LENGTH_BYTES;
    if (len < RUSH_SP_LENGTH_BYTES)
        return 0;
    uint64_t message = get_be(buf, RUSH_SP_LENGTH_BYTES);
    if (message > message_max) {
        *why = "a message over the endpoint's limit";
        return RUSH_EPROTO;
    }
    *need = RUSH_SP_LENGTH_BYTES + (size_t)message;
    if (len < *need)
        return 0;
    const uint8_t *at = buf + RUSH_SP_LENGTH_BYTES;
    size_t backtrace_bytes = 0;
    bool id_found = false;
    while (!id_found && backtrace_bytes + 4 <= message &&
           backtrace_bytes < RUSH_SP_BACKTRACE_BYTES_MAX) {
        id_found = (at[backtrace_bytes] & 0x80) != 0;
        backtrace_bytes += 4;
    }
    if (!id_found) {
        *why = "a message without a request id (not from a REQ socket)";
        return RUSH_EPROTO;
    }
    *frame = (struct rush_sp_frame){.bytes = *need,
                                    .backtrace = at,
                                    .backtrace_bytes = backtrace_bytes,
                                    .body = at + backtrace_bytes,
                                    .body_bytes = (size_t)message - backtrace_bytes};
    return 1;
}

size_t rush_sp_reply_bytes(size_t backtrace_bytes, size_t body_bytes)
{
    return RUSH_SP_LENGTH_BYTES + backtrace_bytes + body_bytes;
}

void rush_sp_reply_encode(uint8_t *out, const uint8_t *backtrace, size_t backtrace_bytes,
                          const void *body, size_t body_bytes)
{
    RUSH_ASSERT(backtrace_bytes <= RUSH_SP_BACKTRACE_BYTES_MAX);
    put_be(out, backtrace_bytes + body_bytes, RUSH_SP_LENGTH_BYTES);
    memcpy(out + RUSH_SP_LENGTH_BYTES, backtrace, backtrace_bytes);
    memcpy(out + RUSH_SP_LENGTH_BYTES + backtrace_bytes, body, body_bytes);
}
