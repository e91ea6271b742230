/*
 * sp.h — the bytes of the SP-over-TCP mapping, as nanomsg and NNG put them on a connection
 * (proto/PROTOCOL.md section 7): an 8-byte greeting each way, then messages framed by a 64-bit
 * big-endian length; a request's message opens with its backtrace (32-bit big-endian words, the
 * last, the request id, with its top bit set), which the reply repeats.
 *
 * rushd's own tcp:// transport (engine/front/sp_server.c) decodes with these; so does the
 * fuzz target tests/fuzz/fuzz_sp.c. Decoders take (buf, len), never read past it, and return
 * views into it. Pure functions: any thread.
 */
#ifndef RUSH_CODEC_SP_H
#define RUSH_CODEC_SP_H

#include <stddef.h>
#include <stdint.h>

#define RUSH_SP_GREETING_BYTES 8
#define RUSH_SP_LENGTH_BYTES 8
#define RUSH_SP_PROTOCOL_REQ 48
#define RUSH_SP_PROTOCOL_REP 49
/* A backtrace of at most 8 words: the request id and up to 7 device hops (NNG's limit). */
#define RUSH_SP_BACKTRACE_BYTES_MAX 32

/* Writes the greeting of `protocol`. */
void rush_sp_greeting(uint8_t out[RUSH_SP_GREETING_BYTES], uint16_t protocol);
/* NULL when `in` is the greeting of `protocol`, else why not. */
const char *rush_sp_greeting_check(const uint8_t in[RUSH_SP_GREETING_BYTES], uint16_t protocol);

/* One whole request message, viewed in the buffer it was decoded from. */
struct rush_sp_frame {
    size_t bytes; /* the length field and the message: where the next frame starts */
    const uint8_t *backtrace;
    size_t backtrace_bytes; /* 4 .. RUSH_SP_BACKTRACE_BYTES_MAX */
    const uint8_t *body;
    size_t body_bytes;
};

/*
 * Decodes the request frame at the start of (buf, len), whose message may be at most
 * message_max bytes (backtrace included). Returns 1 with *frame set; 0 when buf holds only part
 * of it, with *need the bytes the whole frame takes (RUSH_SP_LENGTH_BYTES while its length is
 * not in yet); RUSH_EPROTO with *why when the length is over message_max or the message has no
 * request id within RUSH_SP_BACKTRACE_BYTES_MAX.
 */
int rush_sp_frame_decode(const uint8_t *buf, size_t len, size_t message_max,
                         struct rush_sp_frame *frame, size_t *need, const char **why);

/* Bytes a reply of body_bytes with this backtrace takes on the wire. */
size_t rush_sp_reply_bytes(size_t backtrace_bytes, size_t body_bytes);
/* Writes the reply frame (length, backtrace, body) into out, which has rush_sp_reply_bytes(). */
void rush_sp_reply_encode(uint8_t *out, const uint8_t *backtrace, size_t backtrace_bytes,
                          const void *body, size_t body_bytes);

#endif
