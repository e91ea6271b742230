/*
 * campaign.h — the campaign file: engine settings, endpoints and the SKUs on sale.
 *
 * What and why. Operators write the campaign by hand (ARCHITECTURE.md "Campaign"), so it is an
 * INI file read with libinih, checked completely before the engine starts, and refused with
 * "FILE:LINE: reason" for the first problem (ARCHITECTURE.md "Bad input and faults").
 *
 *   [engine]      shards, ring_slots, orders_max, groups_max, keys_max, user_limits_max (per
 *                 shard, as struct rush_shard_limits; 0 or absent: the engine's default),
 *                 durability = fsync | async | none | replicated (replicated: only with
 *                 [cluster]; the local log is fsync'ed and also appended to JetStream), data_dir,
 * ended_retain (a duration), user_unpaid_max, user_churn_max (0: no cap; as struct
 * rush_shard_policy), snapshot_every_events (each shard writes a snapshot once it has logged this
 *                 many events since its last one; 0 or absent: never, the default),
 * snapshot_background = true | false (true: those snapshots are written by a forked child while the
 * shard goes on deciding; default false, the shard stops while it writes) [endpoints]   orders,
 * json, admin, publisher, replay (tcp://HOST:PORT, ipc://PATH or inproc://NAME; defaults
 * tcp://127.0.0.1:7100..7104), admin_token (16..128 printable bytes; required when admin is not on
 * loopback), http (HOST:PORT of the read-only metrics and dashboard endpoint, numeric IPv4; default
 *                 127.0.0.1:7180; empty: off)
 *   [cluster]     node (this node's name), nodes = NAME=ORDERS_URL, NAME=ORDERS_URL, ... (1..8
 *                 nodes; a node's index in this list is what redirects name), nats (the
 *                 JetStream servers, nats://HOST:PORT separated by commas), lease_ms (100..60000,
 *                 default 1000), stream (the JetStream names' prefix, [A-Za-z0-9_] 1..24 bytes,
 *                 default rush), failback (on|off, default on: a shard goes back to its
 *                 preferred node, shard % node count, once that node has been up and caught up
 *                 for 3 lease periods). Requires durability = replicated (ARCHITECTURE.md
 *                 "Cluster").
 *   [sku NNNN]    one per SKU, NNNN its id (1..RUSH_SKU_ID_MAX): name, stock (an integer, or
 *                 `unlimited`), price (integer fen), start, end (times), order_qty_max (default
 *                 1), user_qty_max (default order_qty_max), pay_ttl (duration, default 15m),
 *                 paused (true|false, default false); group-buy: group_size (2..64),
 *                 group_ttl (required with group_size), groups_open_max (default 1000),
 *                 virtual_policy = none|fill|at_most, virtual_seats_max (at_most only),
 *                 virtual_budget (fill and at_most only, >= 1), solo_allowed (true|false: a
 *                 reserve also buys from the same stock at price), group_price (integer fen,
 *                 what a seat pays; default price), leader_price (integer fen, what the opener
 *                 pays, 0 = free; default group_price); the prices at most price. name, stock,
 *                 price, start and end are required. Who may buy: activity = NAME (an
 *                 [activity NAME] anywhere in the file; the SKU's id must be of the activity's
 *                 id family, rush_sku_family), new_users_only (true|false),
 *                 registration_required (true|false) with register_from and register_until
 *                 (times: registrations are taken in [from, until), until not after end);
 *                 tiers = SIZE:PRICE, ... (up to 4, sizes strictly up, prices strictly down in
 *                 fen, the first at most price; group_size defaults to the last size and must
 *                 equal it; no group_price, leader_price or virtual_policy with tiers);
 *                 subsidy_budget_fen (group-buy: integer fen 0..10^15, the most its seats may
 *                 cost below price; 0 or absent: no cap).
 *   [activity NAME] NAME is 1..31 letters, digits, '_' or '-': user_qty_max (required,
 *                 1..1000000: units one user holds over all of its SKUs), day_qty_max (units a
 *                 user may take per day, at most user_qty_max; absent: no daily limit),
 *                 day_offset_hours (-12..14, default 0: a day starts at midnight UTC + this;
 *                 8 for China), subsidy_budget_fen (integer fen 0..10^15, the most the group
 *                 seats of all its SKUs may cost below their list prices, counted beside each
 *                 SKU's own budget; 0 or absent: no cap). Every SKU naming an activity shares
 *                 one id family, so that one shard holds them all; two activities never share a
 *                 family.
 *
 * Times: RFC 3339 with an offset ("2026-11-11T00:00:00+08:00", "...Z", up to 9 fraction
 * digits), "now" (the time of loading, kept in rush_campaign.loaded_ns), or an integer of ns
 * since the Unix epoch; end may also be "never" (RUSH_TIME_NEVER). Durations: "0" or one or more
 * number-unit parts with units ns, us, ms, s, m, h ("500ms", "15m", "1h30m").
 *
 * The file, line by line. Comments are lines starting with ';' or '#', or " ; text" after a
 * value. Lines must not be indented: the Debian build of inih has INI_ALLOW_MULTILINE on, so an
 * indented line would silently continue the previous value; lines over 199 bytes (inih would
 * split them) and NUL bytes are refused too. Hence the parser is fed through ini_parse_stream
 * with a reader that checks each line and knows its number (the build has no
 * INI_HANDLER_LINENO). Unknown sections and keys, a key given twice, a section given twice, a
 * section with no keys, and a SKU id defined twice are errors.
 *
 * Workload: once at start-up and on reload; up to RUSH_CAMPAIGN_SKUS_MAX SKUs in a file of at
 * most RUSH_CAMPAIGN_FILE_BYTES_MAX bytes. The SKU array is allocated once, sized from the
 * number of section headers; loading is O(file bytes).
 *
 * Invariants. After a successful load: every SKU passes rush_sku_check (proto/codec/sku.h); ids are
 * unique; skus[] is in file order; endpoint addresses are distinct. After a failed load `out` is
 * zeroed and owns nothing.
 *
 * Threads: loading uses no shared state; call from any one thread per campaign.
 */
#ifndef RUSH_CAMPAIGN_H
#define RUSH_CAMPAIGN_H

#include "rush/engine.h"
#include "rush/types.h"

#define RUSH_CAMPAIGN_SKUS_MAX 100000
#define RUSH_CAMPAIGN_FILE_BYTES_MAX (64u << 20)
#define RUSH_CAMPAIGN_WHY_BYTES 512
#define RUSH_ENDPOINT_BYTES_MAX 128 /* including the NUL */
#define RUSH_DATA_DIR_BYTES_MAX 256 /* including the NUL */
#define RUSH_ADMIN_TOKEN_BYTES_MIN 16
#define RUSH_ADMIN_TOKEN_BYTES_MAX 128

/* [engine]. Zero: not given in the file, use the engine's default. */
struct rush_campaign_engine {
    uint32_t shards;
    uint32_t ring_slots;
    uint32_t orders_max; /* per shard, like struct rush_shard_limits */
    uint32_t groups_max;
    uint32_t keys_max;
    uint32_t user_limits_max;
    int64_t ended_retain_ns;  /* like struct rush_shard_policy's retain_ns */
    uint32_t user_unpaid_max; /* 0 in the file: no cap */
    uint32_t user_churn_max;
    uint8_t user_caps_given; /* bit 0: user_unpaid_max, bit 1: user_churn_max */
    enum rush_durability durability;
    uint64_t snapshot_every_events;         /* 0: never */
    bool snapshot_background;               /* automatic snapshots by a forked child */
    char data_dir[RUSH_DATA_DIR_BYTES_MAX]; /* "" when not given */
};

struct rush_campaign_endpoints {
    char orders[RUSH_ENDPOINT_BYTES_MAX];
    char json[RUSH_ENDPOINT_BYTES_MAX];
    char admin[RUSH_ENDPOINT_BYTES_MAX];
    char publisher[RUSH_ENDPOINT_BYTES_MAX];
    char replay[RUSH_ENDPOINT_BYTES_MAX];
    char admin_token[RUSH_ADMIN_TOKEN_BYTES_MAX + 1]; /* "" when not given */
    char http[RUSH_ENDPOINT_BYTES_MAX]; /* HOST:PORT of the read-only HTTP endpoint; "": off */
};

/* The HTTP endpoint's default: loopback only (the dashboard and /metrics are read-only). */
#define RUSH_CAMPAIGN_HTTP_DEFAULT "127.0.0.1:7180"
/* "" (off) or HOST:PORT with a numeric IPv4 host. */
bool rush_campaign_http_valid(const char *value);

#define RUSH_CLUSTER_NODES_MAX 8
#define RUSH_CLUSTER_NAME_BYTES 32 /* including the NUL */
#define RUSH_CLUSTER_NATS_BYTES 192
#define RUSH_CLUSTER_STREAM_BYTES 25
#define RUSH_CLUSTER_LEASE_MS_DEFAULT 1000

/* [cluster]: absent (node_count 0) on a single machine, the default. */
struct rush_campaign_cluster {
    uint32_t node_count;
    uint32_t node_index; /* this node's place in nodes */
    char node[RUSH_CLUSTER_NAME_BYTES];
    char names[RUSH_CLUSTER_NODES_MAX][RUSH_CLUSTER_NAME_BYTES];
    char orders[RUSH_CLUSTER_NODES_MAX][RUSH_ENDPOINT_BYTES_MAX];
    char nats[RUSH_CLUSTER_NATS_BYTES];
    uint32_t lease_ms;
    char stream[RUSH_CLUSTER_STREAM_BYTES];
    bool failback; /* a shard goes back to its preferred node once that one is healthy again */
};

struct rush_campaign {
    struct rush_campaign_engine engine;
    struct rush_campaign_cluster cluster;
    struct rush_campaign_endpoints endpoints;
    int64_t loaded_ns; /* what "now" meant */
    uint32_t activity_count;
    struct rush_activity activities[RUSH_ACTIVITIES_MAX]; /* in file order; family from SKUs */
    uint32_t sku_count;
    struct rush_sku *skus; /* sku_count entries in file order; owned */
};

/* Loads and checks a campaign file. 0; RUSH_ECONFIG with "FILE:LINE: reason"; or -errno. */
RUSH_MUST_USE int rush_campaign_load_file(const char *path, struct rush_campaign *out, char *why,
                                          size_t why_size);
/* The same from a NUL-terminated text; `name` stands for the file name in reasons. */
RUSH_MUST_USE int rush_campaign_load_string(const char *name, const char *text,
                                            struct rush_campaign *out, char *why, size_t why_size);
/* The built-in sample (engine/campaign/double11.ini), as the text rush_campaign_default_text. */
RUSH_MUST_USE int rush_campaign_load_default(struct rush_campaign *out, char *why, size_t why_size);
/* The core: text[0..len) with "now" = now_ns. The others call this. */
RUSH_MUST_USE int rush_campaign_parse(const char *name, const char *text, size_t len,
                                      int64_t now_ns, struct rush_campaign *out, char *why,
                                      size_t why_size);
/* Frees what a load allocated and zeroes the campaign; safe on a zeroed or freed one. */
void rush_campaign_free(struct rush_campaign *campaign);

/* Overrides the policy's fields the [engine] section gives (ended_retain, user_*_max) and
 * points it at the campaign's activities (which must outlive the engine's creation). */
void rush_campaign_policy(const struct rush_campaign *campaign, struct rush_shard_policy *policy);

/*
 * The engine configuration a campaign asks for: rush_engine_config_default() with the [engine]
 * values the file gives. data_dir points into the campaign (NULL when the file names none).
 */
void rush_campaign_engine_config(const struct rush_campaign *campaign,
                                 struct rush_engine_config *config);

/* The text of engine/campaign/double11.ini, built in (engine/campaign/campaign_default.c). */
const char *rush_campaign_default_text(void);

/* "0", "500ms", "15m", "1h30m" into ns. 0, -EINVAL (not a duration) or -ERANGE (over int64). */
RUSH_MUST_USE int rush_duration_parse(const char *text, int64_t *out_ns);
/* "now", "never", ns digits or RFC 3339 into ns since the epoch. 0, -EINVAL or -ERANGE. */
RUSH_MUST_USE int rush_time_parse(const char *text, int64_t now_ns, int64_t *out_ns);

#endif
