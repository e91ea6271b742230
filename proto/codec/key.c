/*
 * client_key.c — idempotency keys and configuration checks for the client library.
 *
 * Why here. Keys must be the same whichever form a gateway speaks: rush_client_key("k-42") is
 * the key rushd's JSON decoder makes of "key":"k-42" (proto/codec/json.h), so a gateway can move
 * from JSON to the binary client without its retries turning into new orders. xxHash is compiled in
 * (XXH_INLINE_ALL) so librush needs no xxhash at run time.
 *
 * Workload. One key per order on the gateway's threads: a hash of a short string or one
 * getrandom() call. No state, no allocation.
 *
 * Invariants.
 *  1. rush_client_key(t) equals the JSON key of t, for every t accepted by the JSON form.
 *  2. rush_client_key_random() never returns the zero key (the key of a query).
 *
 * Threads. Stateless; any thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/why.h"
#include "rush/assert.h"
#include "rush/client.h"
#include "rush/wire.h"

#define KEY_LITERAL_BYTES 34   /* "0x" + 32 hex digits */
#define KEY_RANDOM_TRIES_MAX 4 /* an all-zero draw is 2^-128: more tries never run */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "0x" and 32 hex digits, big-endian. 0, or -1 when `text` is not that form. */
static int key_literal(const char *text, size_t len, rush_key *key)
{
    if (len != KEY_LITERAL_BYTES || text[0] != '0' || text[1] != 'x')
        return -1;
    for (size_t i = 0; i < sizeof key->bytes; i++) {
        int high = hex_value(text[2 + 2 * i]);
        int low = hex_value(text[3 + 2 * i]);
        if (high < 0 || low < 0)
            return -1;
        key->bytes[i] = (uint8_t)(high << 4 | low);
    }
    return 0;
}

rush_key rush_client_key(const char *text)
{
    RUSH_ASSERT(text != NULL);
    return rush_client_key_of(text, strlen(text));
}

rush_key rush_client_key_of(const char *text, size_t len)
{
    RUSH_ASSERT(text != NULL);
    rush_key key;
    if (key_literal(text, len, &key) == 0)
        return key;
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits(text, len));
    static_assert(sizeof canonical.digest == sizeof key.bytes, "key is 128 bits");
    memcpy(key.bytes, canonical.digest, sizeof key.bytes);
    return key;
}

static bool key_is_zero(const rush_key *key)
{
    static const rush_key zero;
    return memcmp(key, &zero, sizeof zero) == 0;
}

int rush_client_key_random(rush_key *key)
{
    RUSH_ASSERT(key != NULL);
    for (int try = 0; try < KEY_RANDOM_TRIES_MAX; try++) {
        ssize_t got = getrandom(key->bytes, sizeof key->bytes, 0);
        if (got < 0)
            return -errno;
        if (got == (ssize_t)sizeof key->bytes && !key_is_zero(key))
            return 0;
    }
    return -EIO;
}

void rush_client_config_default(struct rush_client_config *config)
{
    RUSH_ASSERT(config != NULL);
    *config = (struct rush_client_config){.url = "tcp://127.0.0.1:7100",
                                          .timeout_ms = 1000,
                                          .retries_max = 3,
                                          .batch_delay_us = 200,
                                          .batch_requests_max = 1024,
                                          .inflight_max = 16,
                                          .async_max = 4096};
}

static int out_of_range(char *why, size_t why_size, const char *field, uint32_t value, uint32_t low,
                        uint32_t high)
{
    return rush__refuse(RUSH_ECONFIG, why, why_size, "%s %u is out of range %u..%u", field, value,
                        low, high);
}

static int check_url(const char *url, char *why, size_t why_size)
{
    size_t len = url == NULL ? 0 : strnlen(url, RUSH_CLIENT_URL_BYTES_MAX);
    if (len > 0 && len < RUSH_CLIENT_URL_BYTES_MAX)
        return 0;
    if (why != NULL && why_size > 0)
        snprintf(why, why_size, "url must be 1..%d bytes", RUSH_CLIENT_URL_BYTES_MAX - 1);
    return RUSH_ECONFIG;
}

int rush_client_config_check(const struct rush_client_config *config, char *why, size_t why_size)
{
    RUSH_ASSERT(config != NULL);
    if (why != NULL && why_size > 0)
        why[0] = '\0';
    int rc = check_url(config->url, why, why_size);
    if (rc < 0)
        return rc;
    if (config->timeout_ms < 1 || config->timeout_ms > RUSH_CLIENT_TIMEOUT_MS_MAX)
        return out_of_range(why, why_size, "timeout_ms", config->timeout_ms, 1,
                            RUSH_CLIENT_TIMEOUT_MS_MAX);
    if (config->retries_max > RUSH_CLIENT_RETRIES_MAX)
        return out_of_range(why, why_size, "retries_max", config->retries_max, 0,
                            RUSH_CLIENT_RETRIES_MAX);
    if (config->batch_delay_us > RUSH_CLIENT_BATCH_DELAY_US_MAX)
        return out_of_range(why, why_size, "batch_delay_us", config->batch_delay_us, 0,
                            RUSH_CLIENT_BATCH_DELAY_US_MAX);
    if (config->batch_requests_max < 1 || config->batch_requests_max > RUSH_WIRE_REQUESTS_MAX)
        return out_of_range(why, why_size, "batch_requests_max", config->batch_requests_max, 1,
                            RUSH_WIRE_REQUESTS_MAX);
    if (config->inflight_max < 1 || config->inflight_max > RUSH_CLIENT_INFLIGHT_MAX)
        return out_of_range(why, why_size, "inflight_max", config->inflight_max, 1,
                            RUSH_CLIENT_INFLIGHT_MAX);
    if (config->async_max < 1 || config->async_max > RUSH_CLIENT_ASYNC_MAX)
        return out_of_range(why, why_size, "async_max", config->async_max, 1,
                            RUSH_CLIENT_ASYNC_MAX);
    return 0;
}
