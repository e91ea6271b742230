/*
 * nats_connect.c — one NATS connection for the relay's JetStream sink and its log source: the
 * servers given as a comma-separated list (libnats' SetURL takes one url, SetServers a list),
 * reconnecting for ever (a server that comes back is used again; meanwhile the sink's
 * back-pressure or the source's silence holds the relay).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "relay/relay_internal.h"

#define NATS_SERVERS_MAX 16
#define NATS_URLS_BYTES 2048
#define NATS_RECONNECT_WAIT_MS 100

int relay_nats_connect(const char *urls, natsConnection **out, char *why, size_t why_size)
{
    char list[NATS_URLS_BYTES];
    if (urls == NULL || strlen(urls) >= sizeof list) {
        snprintf(why, why_size, "NATS urls: at most %d bytes", NATS_URLS_BYTES - 1);
        return RUSH_ECONFIG;
    }
    snprintf(list, sizeof list, "%s", urls);
    const char *servers[NATS_SERVERS_MAX];
    int count = 0;
    for (char *save = NULL, *url = strtok_r(list, ", ", &save); url != NULL;
         url = strtok_r(NULL, ", ", &save)) {
        if (count == NATS_SERVERS_MAX) {
            snprintf(why, why_size, "%s: at most %d NATS servers", urls, NATS_SERVERS_MAX);
            return RUSH_ECONFIG;
        }
        servers[count++] = url;
    }
    natsOptions *options = NULL;
    natsStatus s = count > 0 ? natsOptions_Create(&options) : NATS_INVALID_ARG;
    if (s == NATS_OK)
        s = natsOptions_SetServers(options, servers, count);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(options, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(options, NATS_RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(options, RELAY_OPEN_TIMEOUT_MS);
    if (s == NATS_OK)
        s = natsConnection_Connect(out, options);
    natsOptions_Destroy(options);
    if (s == NATS_OK)
        return 0;
    snprintf(why, why_size, "%s: %s", urls, natsStatus_GetText(s));
    return -EIO;
}
