/*
 * ops_text.c — a growing text buffer for one HTTP response (the HTTP thread's).
 * Grows by doubling from 16 KiB; a failed allocation marks the buffer failed (the response is
 * then a 500) and later writes do nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops_internal.h"

#define OPS_TEXT_BYTES_FIRST 16384
#define OPS_TEXT_BYTES_MAX (64u << 20) /* far above any real response: a runaway is a failure */

static bool text_reserve(struct ops_text *text, size_t more)
{
    if (text->failed)
        return false;
    size_t need = text->len + more + 1;
    if (need <= text->cap)
        return true;
    size_t cap = text->cap ? text->cap : OPS_TEXT_BYTES_FIRST;
    while (cap < need && cap <= OPS_TEXT_BYTES_MAX)
        cap *= 2;
    char *bytes = cap > OPS_TEXT_BYTES_MAX ? NULL : realloc(text->bytes, cap);
    if (bytes == NULL) {
        text->failed = true;
        return false;
    }
    text->bytes = bytes;
    text->cap = cap;
    return true;
}

void ops_text_printf(struct ops_text *text, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    va_list again;
    va_copy(again, args);
    int n = vsnprintf(NULL, 0, format, args);
    va_end(args);
    if (n >= 0 && text_reserve(text, (size_t)n)) {
        vsnprintf(text->bytes + text->len, text->cap - text->len, format, again);
        text->len += (size_t)n;
    }
    va_end(again);
}

void ops_text_escaped(struct ops_text *text, const char *s)
{
    for (size_t i = 0; s[i] != '\0' && i < RUSH_ENDPOINT_BYTES_MAX * 4; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            ops_text_printf(text, "\\%c", c);
        else if (c == '\n')
            ops_text_printf(text, "\\n");
        else if (c < 0x20 || c == 0x7f)
            ops_text_printf(text, " ");
        else
            ops_text_printf(text, "%c", c);
    }
}
