/*
 * why.h — the one way a decoder or checker says why it refused: format the reason into the
 * caller's buffer (which may be NULL) and return the error code. Internal to rush; linked into
 * both the engine library and librush.
 */
#ifndef RUSH_WHY_H
#define RUSH_WHY_H

#include <stddef.h>

/* Writes the reason into why[0 .. why_size) when why is not NULL; returns `code`. */
__attribute__((format(printf, 4, 5))) int rush__refuse(int code, char *why, size_t why_size,
                                                       const char *format, ...);

#endif
