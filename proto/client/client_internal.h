/*
 * client_internal.h — what client.c lends the rest of librush (router.c), never exported
 * (librush.map exports rush_* names without a second underscore).
 */
#ifndef RUSH_CLIENT_INTERNAL_H
#define RUSH_CLIENT_INTERNAL_H

/* Sets the calling thread's rush_client_last_error() text. */
void rush__client_error_set(const char *text);

#endif
