/*
 * why.c — see why.h.
 */
#include "why.h"

#include <stdarg.h>
#include <stdio.h>

int rush__refuse(int code, char *why, size_t why_size, const char *format, ...)
{
    if (why != NULL && why_size > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(why, why_size, format, args);
        va_end(args);
    }
    return code;
}
