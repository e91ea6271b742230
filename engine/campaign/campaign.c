/*
 * campaign.c — loads and checks the campaign file (see campaign.h for the format).
 *
 * Workload: start-up and reload only; O(file bytes) plus one hash-set probe per SKU.
 *
 * Flow. libinih drives the parse; reader() hands it one line at a time and checks the line
 * (length, NUL, indentation) and notes section headers; on_value() receives each key. A section
 * opens at its first key and closes when the reader meets the next header or the text ends;
 * closing a [sku] section applies its defaults and runs rush_sku_check, so the first
 * problem in file order is the one reported. Cross-section checks (endpoints) run at the end.
 *
 * Invariants.
 *   1. Once `failed` is set the reader hands inih no more lines and nothing else is recorded.
 *   2. sku_count <= sku_capacity <= RUSH_CAMPAIGN_SKUS_MAX; the id set is at most half full.
 *   3. Every SKU in out->skus passed rush_sku_check when its section closed.
 *
 * Threads: none owned; no static mutable state.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/clock.h"
#include "base/number.h"
#include "campaign.h"
#include "codec/sku.h"
#include "rush/assert.h"

#define NS_PER_S INT64_C(1000000000)
#define DURATION_BYTES_MAX 64
#define PAY_TTL_DEFAULT_NS (15 * 60 * NS_PER_S)
#define GROUPS_OPEN_DEFAULT 1000
#define SHARD_TABLE_MAX (1u << 30)
#define RING_SLOTS_MAX 65536

/* ---- small parsers ---- */

/* Numbers in the file are strict decimal integers (base/number.h); the reasons below name the
 * range of each key. */
static int parse_integer(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return rush_number_parse_i64(s, strlen(s), min, max, out, NULL, 0);
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    return rush_number_parse_u32(s, min, max, out, NULL, 0);
}

static int64_t unit_ns(const char *unit, size_t len)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {
        {"ns", 1},       {"us", 1000},         {"ms", 1000000},
        {"s", NS_PER_S}, {"m", 60 * NS_PER_S}, {"h", 3600 * NS_PER_S},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strlen(units[i].name) == len && memcmp(units[i].name, unit, len) == 0)
            return units[i].ns;
    return 0;
}

int rush_duration_parse(const char *text, int64_t *out_ns)
{
    RUSH_ASSERT(text != NULL && out_ns != NULL);
    if (strcmp(text, "0") == 0) {
        *out_ns = 0;
        return 0;
    }
    size_t len = strlen(text);
    if (len == 0 || len > DURATION_BYTES_MAX)
        return -EINVAL;
    int64_t total = 0;
    size_t i = 0;
    while (i < len) { /* each part consumes >= 2 bytes; len is bounded */
        size_t number_start = i;
        for (; i < len && text[i] >= '0' && text[i] <= '9'; i++)
            ;
        int64_t number = 0;
        int rc = rush_number_parse_i64(text + number_start, i - number_start, 0, INT64_MAX, &number,
                                       NULL, 0);
        if (rc != 0)
            return rc; /* -EINVAL: no digits; -ERANGE: too large */
        size_t unit_start = i;
        for (; i < len && text[i] >= 'a' && text[i] <= 'z'; i++)
            ;
        int64_t unit = unit_ns(text + unit_start, i - unit_start);
        if (unit == 0)
            return -EINVAL;
        if (number > (INT64_MAX - total) / unit)
            return -ERANGE;
        total += number * unit;
    }
    *out_ns = total;
    return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t year_of_era = y - era * 400;
    int64_t day_of_year = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

static int days_in_month(int64_t y, int64_t m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return days[m - 1] + (m == 2 && leap);
}

/* Exactly `count` digits at s into *out. 0 or -1. */
static int fixed_digits(const char *s, int count, int64_t *out)
{
    return rush_number_parse_i64(s, (size_t)count, 0, INT64_MAX, out, NULL, 0) == 0 ? 0 : -1;
}

/* ".123" (1..9 digits) at *s into ns; advances *s. 0 or -1. */
static int fraction_ns(const char **s, int64_t *out)
{
    *out = 0;
    if (**s != '.')
        return 0;
    (*s)++;
    int digits = 0;
    int64_t scale = NS_PER_S;
    for (; **s >= '0' && **s <= '9'; (*s)++, digits++) {
        if (digits == 9)
            return -1;
        scale /= 10;
        *out += (**s - '0') * scale;
    }
    return digits == 0 ? -1 : 0;
}

/* "Z" or "+08:00" at s, the whole rest of the text, into seconds east of UTC. 0 or -1. */
static int offset_seconds(const char *s, int64_t *out)
{
    if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
        *out = 0;
        return 0;
    }
    int64_t hours, minutes;
    if ((s[0] != '+' && s[0] != '-') || fixed_digits(s + 1, 2, &hours) < 0 || s[3] != ':' ||
        fixed_digits(s + 4, 2, &minutes) < 0 || s[6] != '\0' || hours > 23 || minutes > 59)
        return -1;
    *out = (s[0] == '-' ? -1 : 1) * (hours * 3600 + minutes * 60);
    return 0;
}

/* YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM), years 1970..2200. */
static int parse_rfc3339(const char *s, int64_t *out_ns)
{
    int64_t y, mo, d, h, mi, sec, fraction, offset;
    if (strlen(s) < 20 || fixed_digits(s, 4, &y) < 0 || s[4] != '-' ||
        fixed_digits(s + 5, 2, &mo) < 0 || s[7] != '-' || fixed_digits(s + 8, 2, &d) < 0 ||
        (s[10] != 'T' && s[10] != 't') || fixed_digits(s + 11, 2, &h) < 0 || s[13] != ':' ||
        fixed_digits(s + 14, 2, &mi) < 0 || s[16] != ':' || fixed_digits(s + 17, 2, &sec) < 0)
        return -EINVAL;
    const char *rest = s + 19;
    if (fraction_ns(&rest, &fraction) < 0 || offset_seconds(rest, &offset) < 0)
        return -EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
        return -EINVAL;
    if (y < 1970 || y > 2200)
        return -ERANGE;
    int64_t seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    if (seconds < 0)
        return -ERANGE;
    *out_ns = seconds * NS_PER_S + fraction;
    return 0;
}

int rush_time_parse(const char *text, int64_t now_ns, int64_t *out_ns)
{
    RUSH_ASSERT(text != NULL && out_ns != NULL);
    if (strcmp(text, "now") == 0) {
        *out_ns = now_ns;
        return 0;
    }
    if (strcmp(text, "never") == 0) {
        *out_ns = RUSH_TIME_NEVER;
        return 0;
    }
    if (text[0] >= '0' && text[0] <= '9' && strchr(text, '-') == NULL)
        return parse_integer(text, 0, INT64_MAX, out_ns) < 0 ? -EINVAL : 0;
    return parse_rfc3339(text, out_ns);
}

/* ---- the loader ---- */

enum section_kind {
    SECTION_NONE,
    SECTION_ENGINE,
    SECTION_ENDPOINTS,
    SECTION_SKU,
    SECTION_CLUSTER,
    SECTION_ACTIVITY,
};

enum engine_key {
    E_SHARDS,
    E_RING_SLOTS,
    E_ORDERS_MAX,
    E_GROUPS_MAX,
    E_KEYS_MAX,
    E_USER_LIMITS_MAX,
    E_ENDED_RETAIN,
    E_USER_UNPAID_MAX,
    E_USER_CHURN_MAX,
    E_DURABILITY,
    E_DATA_DIR,
    E_SNAPSHOT_EVERY_EVENTS,
    E_SNAPSHOT_BACKGROUND,
    E_COUNT_,
};

static const char *const engine_keys[E_COUNT_] = {
    [E_SHARDS] = "shards",
    [E_RING_SLOTS] = "ring_slots",
    [E_ORDERS_MAX] = "orders_max",
    [E_GROUPS_MAX] = "groups_max",
    [E_KEYS_MAX] = "keys_max",
    [E_USER_LIMITS_MAX] = "user_limits_max",
    [E_DURABILITY] = "durability",
    [E_DATA_DIR] = "data_dir",
    [E_ENDED_RETAIN] = "ended_retain",
    [E_USER_UNPAID_MAX] = "user_unpaid_max",
    [E_USER_CHURN_MAX] = "user_churn_max",
    [E_SNAPSHOT_EVERY_EVENTS] = "snapshot_every_events",
    [E_SNAPSHOT_BACKGROUND] = "snapshot_background",
};

enum endpoint_key {
    P_ORDERS,
    P_JSON,
    P_ADMIN,
    P_PUBLISHER,
    P_REPLAY,
    P_ADMIN_TOKEN,
    P_HTTP,
    P_COUNT_,
};

static const char *const endpoint_keys[P_COUNT_] = {
    [P_ORDERS] = "orders",       [P_JSON] = "json",     [P_ADMIN] = "admin",
    [P_PUBLISHER] = "publisher", [P_REPLAY] = "replay", [P_ADMIN_TOKEN] = "admin_token",
    [P_HTTP] = "http",
};

enum cluster_key {
    C_NODE,
    C_NODES,
    C_NATS,
    C_LEASE_MS,
    C_STREAM,
    C_FAILBACK,
    C_COUNT_,
};

static const char *const cluster_keys[C_COUNT_] = {
    [C_NODE] = "node",         [C_NODES] = "nodes",   [C_NATS] = "nats",
    [C_LEASE_MS] = "lease_ms", [C_STREAM] = "stream", [C_FAILBACK] = "failback",
};

enum sku_key {
    K_NAME,
    K_STOCK,
    K_PRICE,
    K_START,
    K_END,
    K_ORDER_QTY_MAX,
    K_USER_QTY_MAX,
    K_PAY_TTL,
    K_PAUSED,
    K_GROUP_SIZE,
    K_GROUP_TTL,
    K_GROUPS_OPEN_MAX,
    K_VIRTUAL_POLICY,
    K_VIRTUAL_SEATS_MAX,
    K_VIRTUAL_BUDGET,
    K_SOLO_ALLOWED,
    K_GROUP_PRICE,
    K_LEADER_PRICE,
    K_ACTIVITY,
    K_NEW_USERS_ONLY,
    K_REGISTRATION_REQUIRED,
    K_REGISTER_FROM,
    K_REGISTER_UNTIL,
    K_TIERS,
    K_SUBSIDY_BUDGET,
    K_COUNT_,
};

static const char *const sku_keys[K_COUNT_] = {
    [K_NAME] = "name",
    [K_STOCK] = "stock",
    [K_PRICE] = "price",
    [K_START] = "start",
    [K_END] = "end",
    [K_ORDER_QTY_MAX] = "order_qty_max",
    [K_USER_QTY_MAX] = "user_qty_max",
    [K_PAY_TTL] = "pay_ttl",
    [K_PAUSED] = "paused",
    [K_GROUP_SIZE] = "group_size",
    [K_GROUP_TTL] = "group_ttl",
    [K_GROUPS_OPEN_MAX] = "groups_open_max",
    [K_VIRTUAL_POLICY] = "virtual_policy",
    [K_VIRTUAL_SEATS_MAX] = "virtual_seats_max",
    [K_VIRTUAL_BUDGET] = "virtual_budget",
    [K_SOLO_ALLOWED] = "solo_allowed",
    [K_GROUP_PRICE] = "group_price",
    [K_LEADER_PRICE] = "leader_price",
    [K_ACTIVITY] = "activity",
    [K_NEW_USERS_ONLY] = "new_users_only",
    [K_REGISTRATION_REQUIRED] = "registration_required",
    [K_REGISTER_FROM] = "register_from",
    [K_REGISTER_UNTIL] = "register_until",
    [K_TIERS] = "tiers",
    [K_SUBSIDY_BUDGET] = "subsidy_budget_fen",
};

enum activity_key {
    A_USER_QTY_MAX,
    A_DAY_QTY_MAX,
    A_DAY_OFFSET_HOURS,
    A_SUBSIDY_BUDGET,
    A_COUNT_,
};

static const char *const activity_keys[A_COUNT_] = {
    [A_USER_QTY_MAX] = "user_qty_max",
    [A_DAY_QTY_MAX] = "day_qty_max",
    [A_DAY_OFFSET_HOURS] = "day_offset_hours",
    [A_SUBSIDY_BUDGET] = "subsidy_budget_fen",
};

#define KEY_BIT(key) (UINT32_C(1) << (key))
#define SKU_KEYS_REQUIRED                                                                          \
    (KEY_BIT(K_NAME) | KEY_BIT(K_STOCK) | KEY_BIT(K_PRICE) | KEY_BIT(K_START) | KEY_BIT(K_END))

struct loader {
    const char *name; /* the file name in reasons */
    const char *text;
    size_t len;
    size_t pos;
    uint32_t line;        /* lines handed to inih so far: the line being parsed */
    uint32_t header_line; /* the current section's header; 0 before the first */
    uint32_t keys_in_section;
    enum section_kind kind;
    uint32_t seen; /* keys given in the current section */
    uint32_t engine_line, endpoints_line, cluster_line;
    uint32_t durability_line;
    uint32_t cluster_seen; /* keys given in [cluster] */
    uint32_t endpoint_lines[P_COUNT_];
    int64_t now_ns;
    struct rush_campaign *out;
    uint32_t sku_capacity;
    uint32_t *sku_lines;                                /* header line of each SKU */
    uint32_t *sku_activity_lines;                       /* the line of its `activity` key, or 0 */
    char (*sku_activity_names)[RUSH_ACTIVITY_NAME_MAX]; /* the activity it names */
    uint32_t activity_lines[RUSH_ACTIVITIES_MAX];       /* header line of each activity */
    uint32_t *id_slots; /* open addressing: index + 1 into out->skus, 0 empty */
    uint32_t id_slot_mask;
    bool failed;
    uint32_t detect_line; /* the line being read when the error was found */
    char *why;
    size_t why_size;
};

__attribute__((format(printf, 3, 4))) static void fail_at(struct loader *ld, uint32_t line,
                                                          const char *format, ...)
{
    if (ld->failed)
        return;
    ld->failed = true;
    ld->detect_line = ld->line;
    char reason[RUSH_CAMPAIGN_WHY_BYTES];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    if (ld->why_size > 0)
        snprintf(ld->why, ld->why_size, "%s:%u: %s", ld->name, line, reason);
}

/* Text from the file inside a reason: printable ASCII, cut at 40 bytes. */
static const char *shown(char *dst, size_t dst_size, const char *src)
{
    RUSH_ASSERT(dst_size >= 44);
    size_t i = 0;
    for (; src[i] != '\0' && i < 40; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    if (src[i] != '\0') {
        memcpy(dst + i, "...", 3);
        i += 3;
    }
    dst[i] = '\0';
    return dst;
}

static int key_index(const char *const *keys, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (strcmp(keys[i], name) == 0)
            return i;
    return -1;
}

/* ---- [engine] ---- */

static const char *engine_value(struct rush_campaign_engine *engine, enum engine_key key,
                                const char *value)
{
    switch (key) {
    case E_SHARDS:
        return parse_u32(value, 1, RUSH_SHARDS_MAX, &engine->shards) < 0 ? "must be 1..64" : NULL;
    case E_RING_SLOTS:
        if (parse_u32(value, 2, RING_SLOTS_MAX, &engine->ring_slots) < 0 ||
            (engine->ring_slots & (engine->ring_slots - 1)) != 0)
            return "must be a power of two 2..65536";
        return NULL;
    case E_ORDERS_MAX:
        return parse_u32(value, 1, SHARD_TABLE_MAX, &engine->orders_max) < 0
                   ? "must be 1..1073741824 (per shard)"
                   : NULL;
    case E_GROUPS_MAX:
        return parse_u32(value, 1, SHARD_TABLE_MAX, &engine->groups_max) < 0
                   ? "must be 1..1073741824 (per shard)"
                   : NULL;
    case E_KEYS_MAX:
        return parse_u32(value, 1, SHARD_TABLE_MAX, &engine->keys_max) < 0
                   ? "must be 1..1073741824 (per shard)"
                   : NULL;
    case E_USER_LIMITS_MAX:
        return parse_u32(value, 1, SHARD_TABLE_MAX, &engine->user_limits_max) < 0
                   ? "must be 1..1073741824 (per shard)"
                   : NULL;
    case E_ENDED_RETAIN:
        return rush_duration_parse(value, &engine->ended_retain_ns) < 0 ||
                       engine->ended_retain_ns <= 0
                   ? "must be a duration 1ms..168h such as 30m"
                   : NULL;
    case E_USER_UNPAID_MAX:
        engine->user_caps_given |= 1;
        return parse_u32(value, 0, UINT32_MAX, &engine->user_unpaid_max) < 0
                   ? "must be 0 (no cap) or a count"
                   : NULL;
    case E_USER_CHURN_MAX:
        engine->user_caps_given |= 2;
        return parse_u32(value, 0, UINT32_MAX, &engine->user_churn_max) < 0
                   ? "must be 0 (no cap) or a count"
                   : NULL;
    case E_DURABILITY:
        if (strcmp(value, "fsync") == 0)
            engine->durability = RUSH_DURABILITY_FSYNC;
        else if (strcmp(value, "async") == 0)
            engine->durability = RUSH_DURABILITY_ASYNC;
        else if (strcmp(value, "none") == 0)
            engine->durability = RUSH_DURABILITY_NONE;
        else if (strcmp(value, "replicated") == 0)
            engine->durability = RUSH_DURABILITY_REPLICATED;
        else
            return "must be fsync, async, none or replicated";
        return NULL;
    case E_DATA_DIR:
        if (value[0] == '\0' || strlen(value) >= sizeof engine->data_dir)
            return "must be a path of 1..255 bytes";
        memcpy(engine->data_dir, value, strlen(value) + 1);
        return NULL;
    case E_SNAPSHOT_EVERY_EVENTS: {
        int64_t events;
        if (parse_integer(value, 0, INT64_MAX, &events) < 0)
            return "must be an integer 0..9223372036854775807 (0: never)";
        engine->snapshot_every_events = (uint64_t)events;
        return NULL;
    }
    case E_SNAPSHOT_BACKGROUND:
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return "must be true or false";
        engine->snapshot_background = strcmp(value, "true") == 0;
        return NULL;
    case E_COUNT_:
        break;
    }
    RUSH_ASSERT(!"engine key out of range");
    return "unknown";
}

/* ---- [endpoints] ---- */

static char *endpoint_slot(struct rush_campaign_endpoints *endpoints, enum endpoint_key key)
{
    switch (key) {
    case P_ORDERS:
        return endpoints->orders;
    case P_JSON:
        return endpoints->json;
    case P_ADMIN:
        return endpoints->admin;
    case P_PUBLISHER:
        return endpoints->publisher;
    case P_REPLAY:
        return endpoints->replay;
    case P_ADMIN_TOKEN:
        return endpoints->admin_token;
    case P_HTTP:
        return endpoints->http;
    case P_COUNT_:
        break;
    }
    RUSH_ASSERT(!"endpoint key out of range");
    return NULL;
}

/* tcp://HOST:PORT, ipc://PATH or inproc://NAME, as nanomsg takes them: printable ASCII without
 * spaces (an address is quoted in reasons and logs as it is). */
static bool endpoint_valid(const char *value)
{
    size_t len = strlen(value);
    if (len >= RUSH_ENDPOINT_BYTES_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (value[i] <= 0x20 || value[i] >= 0x7f)
            return false;
    if (strncmp(value, "ipc://", 6) == 0)
        return value[6] != '\0';
    if (strncmp(value, "inproc://", 9) == 0)
        return value[9] != '\0';
    if (strncmp(value, "tcp://", 6) != 0)
        return false;
    const char *colon = strrchr(value + 6, ':');
    uint32_t port;
    return colon != NULL && colon > value + 6 && parse_u32(colon + 1, 1, 65535, &port) == 0;
}

static bool endpoint_loopback(const char *value)
{
    return strncmp(value, "tcp://127.", 10) == 0 || strncmp(value, "tcp://localhost:", 16) == 0 ||
           strncmp(value, "tcp://[::1]:", 12) == 0 || strncmp(value, "ipc://", 6) == 0 ||
           strncmp(value, "inproc://", 9) == 0;
}

static const char *endpoint_value(struct rush_campaign_endpoints *endpoints, enum endpoint_key key,
                                  const char *value)
{
    if (key == P_ADMIN_TOKEN) {
        size_t len = strlen(value);
        if (len < RUSH_ADMIN_TOKEN_BYTES_MIN || len > RUSH_ADMIN_TOKEN_BYTES_MAX)
            return "must be 16..128 bytes";
        for (size_t i = 0; i < len; i++)
            if (value[i] <= 0x20 || value[i] >= 0x7f)
                return "must be printable ASCII without spaces";
    } else if (key == P_HTTP) {
        if (!rush_campaign_http_valid(value))
            return "must be HOST:PORT with a numeric IPv4 host (127.0.0.1:7180), or empty: off";
    } else if (!endpoint_valid(value)) {
        return "must be tcp://HOST:PORT, ipc://PATH or inproc://NAME (under 128 bytes)";
    }
    char *slot = endpoint_slot(endpoints, key);
    memcpy(slot, value, strlen(value) + 1);
    return NULL;
}

/* After the whole file: distinct addresses, and a token when admin leaves loopback. */
static void endpoints_check(struct loader *ld)
{
    struct rush_campaign_endpoints *endpoints = &ld->out->endpoints;
    for (int a = 0; a < P_ADMIN_TOKEN; a++) {
        for (int b = a + 1; b < P_ADMIN_TOKEN; b++) {
            if (strcmp(endpoint_slot(endpoints, a), endpoint_slot(endpoints, b)) != 0)
                continue;
            uint32_t line = ld->endpoint_lines[a] > ld->endpoint_lines[b] ? ld->endpoint_lines[a]
                                                                          : ld->endpoint_lines[b];
            fail_at(ld, line, "endpoints %s and %s are the same address %s", endpoint_keys[a],
                    endpoint_keys[b], endpoint_slot(endpoints, a));
            return;
        }
    }
    if (!endpoint_loopback(endpoints->admin) && endpoints->admin_token[0] == '\0')
        fail_at(ld, ld->endpoint_lines[P_ADMIN],
                "admin endpoint %s is not on loopback: set admin_token", endpoints->admin);
}

static void endpoints_default(struct rush_campaign_endpoints *endpoints)
{
    snprintf(endpoints->orders, sizeof endpoints->orders, "tcp://127.0.0.1:7100");
    snprintf(endpoints->json, sizeof endpoints->json, "tcp://127.0.0.1:7101");
    snprintf(endpoints->admin, sizeof endpoints->admin, "tcp://127.0.0.1:7102");
    snprintf(endpoints->publisher, sizeof endpoints->publisher, "tcp://127.0.0.1:7103");
    snprintf(endpoints->replay, sizeof endpoints->replay, "tcp://127.0.0.1:7104");
    snprintf(endpoints->http, sizeof endpoints->http, "%s", RUSH_CAMPAIGN_HTTP_DEFAULT);
}

bool rush_campaign_http_valid(const char *value)
{
    if (value[0] == '\0')
        return true; /* off */
    if (strlen(value) >= RUSH_ENDPOINT_BYTES_MAX)
        return false;
    const char *colon = strrchr(value, ':');
    uint32_t port;
    if (colon == NULL || colon == value || parse_u32(colon + 1, 1, 65535, &port) != 0)
        return false;
    char host[RUSH_ENDPOINT_BYTES_MAX];
    memcpy(host, value, (size_t)(colon - value));
    host[colon - value] = '\0';
    struct in_addr address;
    return inet_pton(AF_INET, host, &address) == 1;
}

/* ---- [cluster] ---- */

/* A node or stream name: [A-Za-z0-9_-], 1..size-1 bytes (names go into JetStream keys). */
static bool cluster_name_valid(const char *value, size_t len, size_t size)
{
    if (len == 0 || len >= size)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)value[i]) && value[i] != '_' && value[i] != '-')
            return false;
    return true;
}

/* One "NAME=URL" of the nodes list, [start, end) of the value, spaces trimmed. */
static const char *cluster_node_value(struct rush_campaign_cluster *cluster, const char *start,
                                      const char *end)
{
    while (start < end && *start == ' ')
        start++;
    while (end > start && end[-1] == ' ')
        end--;
    const char *equals = memchr(start, '=', (size_t)(end - start));
    if (equals == NULL)
        return "must list NAME=ORDERS_URL, separated by commas";
    if (cluster->node_count == RUSH_CLUSTER_NODES_MAX)
        return "must list at most 8 nodes";
    uint32_t n = cluster->node_count;
    size_t name_len = (size_t)(equals - start), url_len = (size_t)(end - equals - 1);
    if (!cluster_name_valid(start, name_len, RUSH_CLUSTER_NAME_BYTES))
        return "a node name must be 1..31 bytes of letters, digits, '_' or '-'";
    if (url_len >= RUSH_ENDPOINT_BYTES_MAX)
        return "a node's orders URL must be under 128 bytes";
    memcpy(cluster->names[n], start, name_len);
    cluster->names[n][name_len] = '\0';
    memcpy(cluster->orders[n], equals + 1, url_len);
    cluster->orders[n][url_len] = '\0';
    if (!endpoint_valid(cluster->orders[n]))
        return "a node's orders URL must be tcp://HOST:PORT, ipc://PATH or inproc://NAME";
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(cluster->names[i], cluster->names[n]) == 0)
            return "a node name is given twice";
    cluster->node_count++;
    return NULL;
}

static const char *cluster_nodes_value(struct rush_campaign_cluster *cluster, const char *value)
{
    cluster->node_count = 0;
    const char *start = value;
    /* Bounded: one round per comma of a line of at most 199 bytes. */
    for (;;) {
        const char *comma = strchr(start, ',');
        const char *end = comma != NULL ? comma : start + strlen(start);
        const char *problem = cluster_node_value(cluster, start, end);
        if (problem != NULL)
            return problem;
        if (comma == NULL)
            return NULL;
        start = comma + 1;
    }
}

/* nats://HOST:PORT[,nats://HOST:PORT...]: printable, no spaces, each part with the scheme. */
static const char *cluster_nats_value(struct rush_campaign_cluster *cluster, const char *value)
{
    size_t len = strlen(value);
    if (len == 0 || len >= sizeof cluster->nats)
        return "must be nats://HOST:PORT[,nats://HOST:PORT...] under 192 bytes";
    for (const char *part = value; part != NULL; part = strchr(part, ',')) {
        if (*part == ',')
            part++;
        if (strncmp(part, "nats://", 7) != 0 || strchr(part + 7, ':') == NULL)
            return "must be nats://HOST:PORT[,nats://HOST:PORT...]";
    }
    for (size_t i = 0; i < len; i++)
        if (value[i] <= 0x20 || value[i] >= 0x7f)
            return "must be nats://HOST:PORT[,nats://HOST:PORT...] without spaces";
    memcpy(cluster->nats, value, len + 1);
    return NULL;
}

static const char *cluster_value(struct rush_campaign_cluster *cluster, enum cluster_key key,
                                 const char *value)
{
    switch (key) {
    case C_NODE:
        if (!cluster_name_valid(value, strlen(value), RUSH_CLUSTER_NAME_BYTES))
            return "must be 1..31 bytes of letters, digits, '_' or '-'";
        memcpy(cluster->node, value, strlen(value) + 1);
        return NULL;
    case C_NODES:
        return cluster_nodes_value(cluster, value);
    case C_NATS:
        return cluster_nats_value(cluster, value);
    case C_LEASE_MS:
        return parse_u32(value, 100, 60000, &cluster->lease_ms) < 0 ? "must be 100..60000" : NULL;
    case C_STREAM:
        if (!cluster_name_valid(value, strlen(value), RUSH_CLUSTER_STREAM_BYTES) ||
            strchr(value, '-') != NULL)
            return "must be 1..24 bytes of letters, digits or '_'";
        memcpy(cluster->stream, value, strlen(value) + 1);
        return NULL;
    case C_FAILBACK:
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
            return "must be on or off";
        cluster->failback = strcmp(value, "on") == 0;
        return NULL;
    case C_COUNT_:
        break;
    }
    RUSH_ASSERT(!"cluster key out of range");
    return "unknown";
}

/* After the whole file: [cluster] complete and consistent, and durability replicated with it. */
static void cluster_check(struct loader *ld)
{
    struct rush_campaign_cluster *cluster = &ld->out->cluster;
    bool replicated = ld->out->engine.durability == RUSH_DURABILITY_REPLICATED;
    if (ld->cluster_line == 0) {
        if (replicated)
            fail_at(ld, ld->durability_line, "durability = replicated needs a [cluster] section");
        return;
    }
    static const uint32_t required = (1u << C_NODE) | (1u << C_NODES) | (1u << C_NATS);
    uint32_t missing = required & ~ld->cluster_seen;
    if (missing != 0) {
        fail_at(ld, ld->cluster_line, "[cluster]: missing key '%s'",
                cluster_keys[__builtin_ctz(missing)]);
        return;
    }
    if (!replicated) {
        fail_at(ld, ld->cluster_line,
                "[cluster] needs durability = replicated in [engine] (a cluster shares its log)");
        return;
    }
    uint32_t i = 0;
    while (i < cluster->node_count && strcmp(cluster->names[i], cluster->node) != 0)
        i++;
    if (i == cluster->node_count) {
        fail_at(ld, ld->cluster_line, "[cluster]: node %s is not in nodes", cluster->node);
        return;
    }
    cluster->node_index = i;
}

/* ---- [sku NNNN] ---- */

static const char *sku_name_value(struct rush_sku *sku, const char *value)
{
    size_t len = strlen(value);
    if (len >= 2 && value[0] == '"' && value[len - 1] == '"') { /* "quoted" names */
        value++;
        len -= 2;
    }
    if (len == 0 || len > RUSH_SKU_NAME_MAX)
        return "must be 1..40 bytes (a CJK character takes 3)";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
            return "must not hold control characters";
    json_t *utf8 = json_stringn(value, len); /* names travel in JSON: valid UTF-8 only */
    if (utf8 == NULL)
        return "must be valid UTF-8";
    json_decref(utf8);
    memcpy(sku->name, value, len);
    return NULL;
}

static const char *sku_stock_value(struct rush_sku *sku, const char *value)
{
    if (strcmp(value, "unlimited") == 0) {
        sku->unlimited = 1;
        sku->stock = 0;
        return NULL;
    }
    if (parse_integer(value, 0, RUSH_STOCK_MAX, &sku->stock) < 0)
        return "must be an integer 0..1000000000000 or unlimited";
    return NULL;
}

static const char *fen_value(const char *value, int64_t *out)
{
    if (strchr(value, '.') != NULL)
        return "must be whole fen, an integer: write 100 for 1.00 yuan";
    if (parse_integer(value, 0, RUSH_PRICE_FEN_MAX, out) < 0)
        return "must be an integer number of fen 0..100000000000";
    return NULL;
}

/* group_price and leader_price: present means set (0 is a price: free). */
static const char *sku_group_price_value(struct rush_sku *sku, uint8_t bit, const char *value,
                                         int64_t *out)
{
    sku->prices |= bit;
    return fen_value(value, out);
}

static const char *bool_value(const char *value, uint8_t *out)
{
    if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
        return "must be true or false";
    *out = strcmp(value, "true") == 0;
    return NULL;
}

static const char *time_value(struct loader *ld, const char *value, bool end, int64_t *out)
{
    if (!end && strcmp(value, "never") == 0)
        return "must be a time: never is for end only";
    int rc = rush_time_parse(value, ld->now_ns, out);
    if (rc == -ERANGE)
        return "is out of range (years 1970..2200)";
    if (rc < 0)
        return end ? "must be an RFC 3339 time (2026-11-11T00:00:00+08:00), now, never or ns "
                     "since the epoch"
                   : "must be an RFC 3339 time (2026-11-11T00:00:00+08:00), now or ns since the "
                     "epoch";
    return NULL;
}

static const char *duration_value(const char *value, int64_t *out)
{
    int rc = rush_duration_parse(value, out);
    if (rc < 0 || *out > RUSH_TTL_NS_MAX)
        return "must be a duration 0..168h such as 0, 500ms, 30s, 15m, 1h30m";
    return NULL;
}

static const char *sku_policy_value(struct rush_sku *sku, const char *value)
{
    if (strcmp(value, "none") == 0)
        sku->virtual_policy = RUSH_VIRTUAL_NONE;
    else if (strcmp(value, "fill") == 0)
        sku->virtual_policy = RUSH_VIRTUAL_FILL;
    else if (strcmp(value, "at_most") == 0)
        sku->virtual_policy = RUSH_VIRTUAL_AT_MOST;
    else
        return "must be none, fill or at_most";
    return NULL;
}

/* An activity name: 1..31 bytes of letters, digits, '_' and '-'. */
static bool activity_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= RUSH_ACTIVITY_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}

/* `activity = NAME`: resolved once the whole file is read (activities_resolve). */
static const char *sku_activity_value(struct loader *ld, struct rush_sku *sku, const char *value)
{
    if (!activity_name_valid(value))
        return "must name an activity: 1..31 letters, digits, '_' or '-'";
    uint32_t index = ld->out->sku_count - 1;
    ld->sku_activity_lines[index] = ld->line;
    snprintf(ld->sku_activity_names[index], RUSH_ACTIVITY_NAME_MAX, "%s", value);
    sku->rules |= RUSH_SKU_IN_ACTIVITY;
    return NULL;
}

static const char *rule_value(struct rush_sku *sku, uint8_t rule, const char *value)
{
    uint8_t on = 0;
    const char *problem = bool_value(value, &on);
    if (problem == NULL && on)
        sku->rules |= rule;
    return problem;
}

static const char *sku_value(struct loader *ld, struct rush_sku *sku, enum sku_key key,
                             const char *value)
{
    switch (key) {
    case K_NAME:
        return sku_name_value(sku, value);
    case K_STOCK:
        return sku_stock_value(sku, value);
    case K_PRICE:
        return fen_value(value, &sku->price_fen);
    case K_START:
        return time_value(ld, value, false, &sku->start_ns);
    case K_END:
        return time_value(ld, value, true, &sku->end_ns);
    case K_ORDER_QTY_MAX:
        return parse_u32(value, 1, RUSH_QTY_MAX, &sku->order_qty_max) < 0 ? "must be 1..1000000"
                                                                          : NULL;
    case K_USER_QTY_MAX:
        return parse_u32(value, 1, RUSH_QTY_MAX, &sku->user_qty_max) < 0 ? "must be 1..1000000"
                                                                         : NULL;
    case K_PAY_TTL:
        return duration_value(value, &sku->pay_ttl_ns);
    case K_PAUSED:
        return bool_value(value, &sku->paused);
    case K_GROUP_SIZE:
        return parse_u32(value, 2, RUSH_GROUP_SIZE_MAX, &sku->group_size) < 0 ? "must be 2..64"
                                                                              : NULL;
    case K_GROUP_TTL:
        return duration_value(value, &sku->group_ttl_ns);
    case K_GROUPS_OPEN_MAX:
        return parse_u32(value, 1, RUSH_GROUPS_OPEN_MAX, &sku->groups_open_max) < 0
                   ? "must be 1..16777216"
                   : NULL;
    case K_VIRTUAL_POLICY:
        return sku_policy_value(sku, value);
    case K_VIRTUAL_SEATS_MAX:
        return parse_u32(value, 1, RUSH_GROUP_SIZE_MAX - 1, &sku->virtual_seats_max) < 0
                   ? "must be 1..63"
                   : NULL;
    case K_VIRTUAL_BUDGET:
        return parse_u32(value, 1, UINT32_MAX, &sku->virtual_budget) < 0 ? "must be 1..4294967295"
                                                                         : NULL;
    case K_SOLO_ALLOWED:
        return bool_value(value, &sku->solo_allowed);
    case K_GROUP_PRICE:
        return sku_group_price_value(sku, RUSH_SKU_GROUP_PRICE, value, &sku->group_price_fen);
    case K_LEADER_PRICE:
        return sku_group_price_value(sku, RUSH_SKU_LEADER_PRICE, value, &sku->leader_price_fen);
    case K_ACTIVITY:
        return sku_activity_value(ld, sku, value);
    case K_NEW_USERS_ONLY:
        return rule_value(sku, RUSH_SKU_NEW_USERS_ONLY, value);
    case K_REGISTRATION_REQUIRED:
        return rule_value(sku, RUSH_SKU_REGISTRATION, value);
    case K_REGISTER_FROM:
        return time_value(ld, value, false, &sku->register_from_ns);
    case K_REGISTER_UNTIL:
        return time_value(ld, value, false, &sku->register_until_ns);
    case K_SUBSIDY_BUDGET:
        return parse_integer(value, 0, RUSH_SUBSIDY_FEN_MAX, &sku->subsidy_budget_fen) < 0
                   ? "must be an integer number of fen 0..1000000000000000 (0: no cap)"
                   : NULL;
    case K_TIERS:
        return value[0] == '\0' || rush_sku_tiers_parse(value, sku) < 0
                   ? "must be SIZE:PRICE tiers (fen), at most 4, such as 3:990, 5:890, 10:790"
                   : NULL;
    case K_COUNT_:
        break;
    }
    RUSH_ASSERT(!"sku key out of range");
    return "unknown";
}

/* The [sku] section being read: its keys are all in; apply defaults and check it. */
static void sku_close(struct loader *ld)
{
    struct rush_sku *sku = &ld->out->skus[ld->out->sku_count - 1];
    uint32_t line = ld->sku_lines[ld->out->sku_count - 1];
    uint32_t missing = SKU_KEYS_REQUIRED & ~ld->seen;
    if (missing != 0) {
        fail_at(ld, line, "[sku %" PRIu64 "]: missing key '%s'", sku->id,
                sku_keys[__builtin_ctz(missing)]);
        return;
    }
    if (sku->tier_count != 0 && (ld->seen & KEY_BIT(K_GROUP_SIZE)) == 0)
        sku->group_size = sku->tier_size[sku->tier_count - 1]; /* the last tier is the size */
    if (sku->group_size != 0 && (ld->seen & KEY_BIT(K_GROUP_TTL)) == 0) {
        fail_at(ld, line, "[sku %" PRIu64 "]: missing key 'group_ttl' (group_size is set)",
                sku->id);
        return;
    }
    if ((ld->seen & KEY_BIT(K_ORDER_QTY_MAX)) == 0)
        sku->order_qty_max = 1;
    if ((ld->seen & KEY_BIT(K_USER_QTY_MAX)) == 0)
        sku->user_qty_max = sku->order_qty_max;
    if ((ld->seen & KEY_BIT(K_PAY_TTL)) == 0)
        sku->pay_ttl_ns = PAY_TTL_DEFAULT_NS;
    if (sku->group_size != 0 && (ld->seen & KEY_BIT(K_GROUPS_OPEN_MAX)) == 0)
        sku->groups_open_max = GROUPS_OPEN_DEFAULT;
    char reason[RUSH_CAMPAIGN_WHY_BYTES];
    if (rush_sku_check(sku, reason, sizeof reason) < 0)
        fail_at(ld, line, "[sku %" PRIu64 "]: %s", sku->id, reason);
}

static uint32_t id_slot(const struct loader *ld, uint64_t id)
{
    return (uint32_t)((id * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & ld->id_slot_mask;
}

/* Adds a SKU for "[sku NNNN]"; refuses a bad or repeated id. */
static void sku_open(struct loader *ld, const char *section)
{
    char text[48];
    int64_t id;
    if (parse_integer(section + 4, 1, (int64_t)RUSH_SKU_ID_MAX, &id) < 0) {
        fail_at(ld, ld->header_line, "[%s]: sku id must be an integer 1..%" PRIu64,
                shown(text, sizeof text, section), RUSH_SKU_ID_MAX);
        return;
    }
    if (ld->out->sku_count == RUSH_CAMPAIGN_SKUS_MAX) {
        fail_at(ld, ld->header_line, "more than %d SKUs", RUSH_CAMPAIGN_SKUS_MAX);
        return;
    }
    RUSH_ASSERT(ld->out->sku_count < ld->sku_capacity);
    uint32_t slot = id_slot(ld, (uint64_t)id);
    for (uint32_t probe = 0; ld->id_slots[slot] != 0; probe++) { /* set is under half full */
        RUSH_ASSERT(probe <= ld->id_slot_mask);
        uint32_t index = ld->id_slots[slot] - 1;
        if (ld->out->skus[index].id == (uint64_t)id) {
            fail_at(ld, ld->header_line, "[sku %" PRId64 "] is defined twice (first at line %u)",
                    id, ld->sku_lines[index]);
            return;
        }
        slot = (slot + 1) & ld->id_slot_mask;
    }
    uint32_t index = ld->out->sku_count++;
    ld->id_slots[slot] = index + 1;
    ld->sku_lines[index] = ld->header_line;
    memset(&ld->out->skus[index], 0, sizeof ld->out->skus[index]);
    ld->out->skus[index].id = (uint64_t)id;
}

/* ---- [activity NAME] ---- */

static const char *activity_value(struct rush_activity *activity, enum activity_key key,
                                  const char *value)
{
    int64_t hours;
    switch (key) {
    case A_USER_QTY_MAX:
        return parse_u32(value, 1, RUSH_QTY_MAX, &activity->user_qty_max) < 0 ? "must be 1..1000000"
                                                                              : NULL;
    case A_DAY_QTY_MAX:
        return parse_u32(value, 1, RUSH_QTY_MAX, &activity->day_qty_max) < 0 ? "must be 1..1000000"
                                                                             : NULL;
    case A_DAY_OFFSET_HOURS:
        if (parse_integer(value, -12, 14, &hours) < 0)
            return "must be an integer -12..14 (hours east of UTC where the day starts; 8: China)";
        activity->day_offset_ns = hours * 3600 * INT64_C(1000000000);
        return NULL;
    case A_SUBSIDY_BUDGET:
        return parse_integer(value, 0, RUSH_SUBSIDY_FEN_MAX, &activity->subsidy_budget_fen) < 0
                   ? "must be an integer number of fen 0..1000000000000000 (0: no cap)"
                   : NULL;
    case A_COUNT_:
        break;
    }
    RUSH_ASSERT(!"activity key out of range");
    return "unknown";
}

static void activity_open(struct loader *ld, const char *section)
{
    char text[48];
    const char *name = section + strlen("activity ");
    if (!activity_name_valid(name)) {
        fail_at(ld, ld->header_line, "[%s]: an activity name is 1..31 letters, digits, '_' or '-'",
                shown(text, sizeof text, section));
        return;
    }
    struct rush_campaign *out = ld->out;
    for (uint32_t a = 0; a < out->activity_count; a++) {
        if (strcmp(out->activities[a].name, name) == 0) {
            fail_at(ld, ld->header_line, "[activity %s] is defined twice (first at line %u)", name,
                    ld->activity_lines[a]);
            return;
        }
    }
    if (out->activity_count == RUSH_ACTIVITIES_MAX) {
        fail_at(ld, ld->header_line, "more than %d activities", RUSH_ACTIVITIES_MAX);
        return;
    }
    ld->activity_lines[out->activity_count] = ld->header_line;
    struct rush_activity *activity = &out->activities[out->activity_count++];
    memset(activity, 0, sizeof *activity);
    snprintf(activity->name, sizeof activity->name, "%s", name);
}

static void activity_close(struct loader *ld)
{
    const struct rush_activity *activity = &ld->out->activities[ld->out->activity_count - 1];
    uint32_t line = ld->activity_lines[ld->out->activity_count - 1];
    if ((ld->seen & KEY_BIT(A_USER_QTY_MAX)) == 0)
        fail_at(ld, line, "[activity %s]: missing key 'user_qty_max'", activity->name);
    else if (activity->day_qty_max > activity->user_qty_max)
        fail_at(ld, line, "[activity %s]: day_qty_max %u is over user_qty_max %u", activity->name,
                activity->day_qty_max, activity->user_qty_max);
}

/* Every SKU naming an activity finds it, and an activity's SKUs share one id family (so one
 * shard decides them all: rush_engine_shard_of_sku); two activities never share a family. */
static void activities_resolve(struct loader *ld)
{
    struct rush_campaign *out = ld->out;
    uint64_t first_sku[RUSH_ACTIVITIES_MAX] = {0};
    for (uint32_t i = 0; i < out->sku_count && !ld->failed; i++) {
        if (ld->sku_activity_lines[i] == 0)
            continue;
        const struct rush_sku *sku = &out->skus[i];
        const char *name = ld->sku_activity_names[i];
        uint32_t a = 0;
        while (a < out->activity_count && strcmp(out->activities[a].name, name) != 0)
            a++;
        if (a == out->activity_count) {
            fail_at(ld, ld->sku_activity_lines[i],
                    "activity = %s: unknown activity (no [activity %s] section)", name, name);
            return;
        }
        struct rush_activity *activity = &out->activities[a];
        uint64_t family = rush_sku_family(sku->id);
        if (activity->family == 0) {
            for (uint32_t b = 0; b < out->activity_count; b++)
                if (out->activities[b].family == family)
                    fail_at(ld, ld->sku_activity_lines[i],
                            "activity = %s: sku %" PRIu64 " is of family %" PRIu64
                            ", which activity %s already has",
                            name, sku->id, family, out->activities[b].name);
            activity->family = family;
            first_sku[a] = sku->id;
        } else if (activity->family != family) {
            fail_at(ld, ld->sku_activity_lines[i],
                    "activity = %s: sku %" PRIu64 " is not of the family of sku %" PRIu64
                    " (an activity's SKUs share id / %" PRIu64 ", so one shard holds them)",
                    name, sku->id, first_sku[a], RUSH_SKU_FAMILY_SIZE);
        }
    }
}

/* ---- sections and keys ---- */

static void section_open(struct loader *ld, const char *section)
{
    char text[48];
    ld->seen = 0;
    if (strcmp(section, "cluster") == 0) {
        if (ld->cluster_line != 0) {
            fail_at(ld, ld->header_line, "section [cluster] is given twice (first at line %u)",
                    ld->cluster_line);
            return;
        }
        ld->cluster_line = ld->header_line;
        ld->kind = SECTION_CLUSTER;
    } else if (strcmp(section, "engine") == 0 || strcmp(section, "endpoints") == 0) {
        bool engine = strcmp(section, "engine") == 0;
        uint32_t *first = engine ? &ld->engine_line : &ld->endpoints_line;
        if (*first != 0) {
            fail_at(ld, ld->header_line, "section [%s] is given twice (first at line %u)", section,
                    *first);
            return;
        }
        *first = ld->header_line;
        ld->kind = engine ? SECTION_ENGINE : SECTION_ENDPOINTS;
    } else if (strncmp(section, "sku ", 4) == 0) {
        ld->kind = SECTION_SKU;
        sku_open(ld, section);
    } else if (strncmp(section, "activity ", 9) == 0) {
        ld->kind = SECTION_ACTIVITY;
        activity_open(ld, section);
    } else if (section[0] == '\0') {
        ld->kind = SECTION_NONE;
        fail_at(ld, ld->line, "a key before any section");
    } else {
        ld->kind = SECTION_NONE;
        fail_at(
            ld, ld->header_line,
            "unknown section [%s] (expected engine, endpoints, cluster, sku N or activity NAME)",
            shown(text, sizeof text, section));
    }
}

/* The reader met a header or the end: the section before it is complete. */
static void section_close(struct loader *ld)
{
    if (ld->header_line == 0 || ld->failed)
        return;
    if (ld->keys_in_section == 0) {
        fail_at(ld, ld->header_line, "section has no keys");
        return;
    }
    if (ld->kind == SECTION_SKU)
        sku_close(ld);
    if (ld->kind == SECTION_ACTIVITY)
        activity_close(ld);
}

static void key_value(struct loader *ld, const char *name, const char *value)
{
    static const char *const *const tables[] = {
        [SECTION_ENGINE] = engine_keys,     [SECTION_ENDPOINTS] = endpoint_keys,
        [SECTION_SKU] = sku_keys,           [SECTION_CLUSTER] = cluster_keys,
        [SECTION_ACTIVITY] = activity_keys,
    };
    static const int counts[] = {[SECTION_ENGINE] = E_COUNT_,
                                 [SECTION_ENDPOINTS] = P_COUNT_,
                                 [SECTION_SKU] = K_COUNT_,
                                 [SECTION_CLUSTER] = C_COUNT_,
                                 [SECTION_ACTIVITY] = A_COUNT_};
    static const char *const section_names[] = {[SECTION_ENGINE] = "engine",
                                                [SECTION_ENDPOINTS] = "endpoints",
                                                [SECTION_SKU] = "sku",
                                                [SECTION_CLUSTER] = "cluster",
                                                [SECTION_ACTIVITY] = "activity"};
    char text[48];
    RUSH_ASSERT(ld->kind != SECTION_NONE);
    int key = key_index(tables[ld->kind], counts[ld->kind], name);
    if (key < 0) {
        fail_at(ld, ld->line, "unknown key '%s' in [%s]", shown(text, sizeof text, name),
                section_names[ld->kind]);
        return;
    }
    if (ld->seen & KEY_BIT(key)) {
        fail_at(ld, ld->line, "key '%s' is given twice in this section", name);
        return;
    }
    ld->seen |= KEY_BIT(key);
    const char *problem = NULL;
    switch (ld->kind) {
    case SECTION_ENGINE:
        problem = engine_value(&ld->out->engine, key, value);
        if (key == E_DURABILITY)
            ld->durability_line = ld->line;
        break;
    case SECTION_CLUSTER:
        problem = cluster_value(&ld->out->cluster, key, value);
        ld->cluster_seen |= KEY_BIT(key);
        break;
    case SECTION_ENDPOINTS:
        problem = endpoint_value(&ld->out->endpoints, key, value);
        ld->endpoint_lines[key] = ld->line;
        break;
    case SECTION_SKU:
        problem = sku_value(ld, &ld->out->skus[ld->out->sku_count - 1], key, value);
        break;
    case SECTION_ACTIVITY:
        problem = activity_value(&ld->out->activities[ld->out->activity_count - 1], key, value);
        break;
    case SECTION_NONE:
        break;
    }
    if (problem != NULL)
        fail_at(ld, ld->line, "%s = %s: %s", name, shown(text, sizeof text, value), problem);
}

static int on_value(void *user, const char *section, const char *name, const char *value)
{
    struct loader *ld = user;
    if (ld->failed)
        return 0;
    if (ld->keys_in_section++ == 0)
        section_open(ld, section);
    if (!ld->failed)
        key_value(ld, name, value);
    return !ld->failed;
}

/*
 * Hands inih the next line. Refuses what this inih build would misread: lines over num - 1
 * bytes (it would split them), NUL bytes, indented lines (it would glue them to the previous
 * value). Notes section headers so that a section is closed, and its errors reported, in file
 * order.
 */
static char *reader(char *str, int num, void *stream)
{
    struct loader *ld = stream;
    if (ld->failed || ld->pos >= ld->len)
        return NULL;
    const char *start = ld->text + ld->pos;
    const char *newline = memchr(start, '\n', ld->len - ld->pos);
    size_t line_len = newline != NULL ? (size_t)(newline - start) : ld->len - ld->pos;
    ld->pos += line_len + (newline != NULL);
    ld->line++;
    RUSH_ASSERT(num > 1);
    if (line_len > (size_t)num - 1) {
        fail_at(ld, ld->line, "line is longer than %d bytes", num - 1);
        return NULL;
    }
    if (memchr(start, '\0', line_len) != NULL) {
        fail_at(ld, ld->line, "NUL byte in line");
        return NULL;
    }
    memcpy(str, start, line_len);
    str[line_len] = '\0';
    const char *content = str;
    if (ld->line == 1 && strncmp(content, "\xEF\xBB\xBF", 3) == 0)
        content += 3;
    /* inih skips every isspace() byte before a header or key: so must this reader, or a line
     * such as "\v[sku 1]" would open a section here unseen (found by fuzz_campaign). */
    size_t indent = strspn(content, " \t\v\f\r");
    char first = content[indent];
    if (indent > 0 && first != '\0' && first != '\r' && first != ';' && first != '#') {
        fail_at(ld, ld->line, "indented line: start keys and sections in the first column");
        return NULL;
    }
    if (first == '[') {
        section_close(ld);
        ld->header_line = ld->line;
        ld->keys_in_section = 0;
        ld->kind = SECTION_NONE;
    }
    return ld->failed ? NULL : str;
}

/* ---- loading ---- */

/* Section headers in the text: an upper bound on the SKUs, to size the arrays once. */
static uint32_t headers_in(const char *text, size_t len)
{
    uint32_t count = 0;
    bool line_start = true;
    for (size_t i = 0; i < len && count <= RUSH_CAMPAIGN_SKUS_MAX; i++) {
        if (line_start && text[i] == '[')
            count++;
        line_start = text[i] == '\n';
    }
    return count < RUSH_CAMPAIGN_SKUS_MAX ? count : RUSH_CAMPAIGN_SKUS_MAX;
}

static int loader_alloc(struct loader *ld)
{
    ld->sku_capacity = headers_in(ld->text, ld->len) + 1;
    uint32_t slots = 4;
    while (slots < 2 * ld->sku_capacity) /* at most 2^18 for the SKU bound */
        slots *= 2;
    ld->id_slot_mask = slots - 1;
    ld->out->skus = calloc(ld->sku_capacity, sizeof *ld->out->skus);
    ld->sku_lines = calloc(ld->sku_capacity, sizeof *ld->sku_lines);
    ld->sku_activity_lines = calloc(ld->sku_capacity, sizeof *ld->sku_activity_lines);
    ld->sku_activity_names = calloc(ld->sku_capacity, sizeof *ld->sku_activity_names);
    ld->id_slots = calloc(slots, sizeof *ld->id_slots);
    if (ld->out->skus == NULL || ld->sku_lines == NULL || ld->id_slots == NULL ||
        ld->sku_activity_lines == NULL || ld->sku_activity_names == NULL)
        return -ENOMEM;
    return 0;
}

static void campaign_start(struct rush_campaign *out, int64_t now_ns)
{
    memset(out, 0, sizeof *out);
    out->loaded_ns = now_ns;
    out->engine.durability = RUSH_DURABILITY_FSYNC;
    endpoints_default(&out->endpoints);
    out->cluster.lease_ms = RUSH_CLUSTER_LEASE_MS_DEFAULT;
    out->cluster.failback = true;
    snprintf(out->cluster.stream, sizeof out->cluster.stream, "rush");
}

int rush_campaign_parse(const char *name, const char *text, size_t len, int64_t now_ns,
                        struct rush_campaign *out, char *why, size_t why_size)
{
    RUSH_ASSERT(name != NULL && out != NULL);
    RUSH_ASSERT(text != NULL || len == 0);
    RUSH_ASSERT(why != NULL || why_size == 0);
    campaign_start(out, now_ns);
    if (why_size > 0)
        why[0] = '\0';
    struct loader ld = {.name = name,
                        .text = text,
                        .len = len,
                        .now_ns = now_ns,
                        .out = out,
                        .why = why,
                        .why_size = why_size};
    int rc = loader_alloc(&ld);
    if (rc < 0) {
        snprintf(why, why_size, "%s: out of memory", name);
        goto out_free;
    }
    int syntax_line = ini_parse_stream(reader, &ld, on_value, &ld);
    if (syntax_line > 0 && (!ld.failed || (uint32_t)syntax_line < ld.detect_line)) {
        ld.failed = false; /* inih saw an earlier line it could not read */
        fail_at(&ld, (uint32_t)syntax_line, "expected [section], key = value or a comment");
    }
    section_close(&ld);
    if (!ld.failed)
        activities_resolve(&ld);
    if (!ld.failed)
        endpoints_check(&ld);
    if (!ld.failed)
        cluster_check(&ld);
    rc = ld.failed ? RUSH_ECONFIG : 0;
out_free:
    free(ld.sku_lines);
    free(ld.sku_activity_lines);
    free(ld.sku_activity_names);
    free(ld.id_slots);
    if (rc < 0)
        rush_campaign_free(out);
    return rc;
}

int rush_campaign_load_string(const char *name, const char *text, struct rush_campaign *out,
                              char *why, size_t why_size)
{
    RUSH_ASSERT(text != NULL);
    return rush_campaign_parse(name, text, strlen(text), rush_clock_wall_ns(), out, why, why_size);
}

int rush_campaign_load_default(struct rush_campaign *out, char *why, size_t why_size)
{
    return rush_campaign_load_string("double11.ini (built in)", rush_campaign_default_text(), out,
                                     why, why_size);
}

/* Reads a whole file of at most RUSH_CAMPAIGN_FILE_BYTES_MAX bytes. */
static int read_file(const char *path, char **text, size_t *len, char *why, size_t why_size)
{
    int rc = 0;
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        rc = -errno;
        snprintf(why, why_size, "%s: %s", path, strerror(-rc));
        return rc;
    }
    struct stat st;
    if (fstat(fileno(file), &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > RUSH_CAMPAIGN_FILE_BYTES_MAX) {
        rc = RUSH_ECONFIG;
        snprintf(why, why_size, "%s: not a regular file of at most %u bytes", path,
                 RUSH_CAMPAIGN_FILE_BYTES_MAX);
        goto out_close;
    }
    *text = malloc((size_t)st.st_size + 1);
    if (*text == NULL) {
        rc = -ENOMEM;
        snprintf(why, why_size, "%s: out of memory", path);
        goto out_close;
    }
    *len = fread(*text, 1, (size_t)st.st_size, file);
    if (ferror(file)) {
        rc = -EIO;
        snprintf(why, why_size, "%s: read error", path);
        free(*text);
        *text = NULL;
    }
out_close:
    fclose(file);
    return rc;
}

int rush_campaign_load_file(const char *path, struct rush_campaign *out, char *why, size_t why_size)
{
    RUSH_ASSERT(path != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, why, why_size);
    if (rc < 0)
        return rc;
    rc = rush_campaign_parse(path, text, len, rush_clock_wall_ns(), out, why, why_size);
    free(text);
    return rc;
}

void rush_campaign_free(struct rush_campaign *campaign)
{
    RUSH_ASSERT(campaign != NULL);
    free(campaign->skus);
    memset(campaign, 0, sizeof *campaign);
}

void rush_campaign_policy(const struct rush_campaign *campaign, struct rush_shard_policy *policy)
{
    const struct rush_campaign_engine *engine = &campaign->engine;
    policy->activities = campaign->activities;
    policy->activity_count = campaign->activity_count;
    if (engine->ended_retain_ns)
        policy->retain_ns = engine->ended_retain_ns;
    if (engine->user_caps_given & 1)
        policy->user_unpaid_max = engine->user_unpaid_max;
    if (engine->user_caps_given & 2)
        policy->user_churn_max = engine->user_churn_max;
}

void rush_campaign_engine_config(const struct rush_campaign *campaign,
                                 struct rush_engine_config *config)
{
    const struct rush_campaign_engine *engine = &campaign->engine;
    rush_engine_config_default(config, engine->shards ? engine->shards : 2);
    if (engine->ring_slots)
        config->ring_slots = engine->ring_slots;
    if (engine->orders_max)
        config->limits.orders_max = engine->orders_max;
    if (engine->groups_max)
        config->limits.groups_max = engine->groups_max;
    if (engine->keys_max)
        config->limits.keys_max = engine->keys_max;
    if (engine->user_limits_max)
        config->limits.user_limits_max = engine->user_limits_max;
    rush_campaign_policy(campaign, &config->policy);
    if (campaign->sku_count + 16 > config->limits.skus_max)
        config->limits.skus_max = campaign->sku_count + 16;
    config->durability = (uint8_t)engine->durability;
    config->data_dir = engine->data_dir[0] ? engine->data_dir : NULL;
    config->snapshot_every_events = engine->snapshot_every_events;
    config->snapshot_in_background = engine->snapshot_background;
}
