/*
 * verify.c — see verify.h for the checks and how the stream is followed.
 */
#include "verify.h"
#include "base/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "rush/assert.h"
#include "rush/subscriber.h"

#define POLL_EVENTS_MAX 4096
#define POLL_MS 100
#define HEADS_TIMEOUT_MS 5000
#define CLUSTER_REPLAY_TIMEOUT_MS 500 /* several nodes: a dead one is found in 2 s, not 4 */
#define WHY_BYTES 160

/* One node's stream, followed by its own subscriber and thread. */
struct node_stream {
    struct rush_verify *v;
    uint32_t index;
    const char *pub_url;
    struct rush_subscriber *sub;
    pthread_t thread;
    bool thread_started;
    struct rush_stream_event *events; /* in delivery order: per shard, consecutive seqs */
    uint64_t count;
    uint64_t capacity;
    uint64_t start_seq[RUSH_SHARDS_MAX]; /* the heads at start: it delivers from start + 1 */
    uint64_t last_seq[RUSH_SHARDS_MAX];  /* the last seq delivered (start_seq: none) */
    uint32_t shard_count;
    uint64_t retried; /* transient errors (replay timeouts, bad replies) polled through */
    int error;        /* the collector's first fatal error (0: none) */
    bool gone;        /* several nodes: its subscriber failed; what it delivered is kept */
    char why[WHY_BYTES];
    struct rush_stream_event batch[POLL_EVENTS_MAX];
};

/* Per shard of the merged stream: what the nodes together served. */
struct merged_shard {
    uint64_t first_seq;     /* the lowest seq any node delivers (its start + 1) */
    uint64_t run_first_seq; /* the highest start + 1: every seq from here is the run's */
    uint64_t last_seq;      /* the highest seq any node delivered */
    uint64_t live_last_seq; /* the highest seq a live node delivered */
    uint64_t missing;       /* seqs in run_first_seq .. last_seq no node served */
    uint64_t disagreements; /* seqs two nodes served with different bytes */
    uint64_t first_missing; /* the first of them (0: none) */
};

struct rush_verify {
    struct node_stream *nodes;
    uint32_t node_count;
    bool cluster; /* --pubs: several nodes, a node may be gone */
    _Atomic bool stop;
    struct rush_stream_event *events; /* merged: per shard in seq order, shards in order */
    uint64_t count;
    uint32_t shard_count;
    struct merged_shard shards[RUSH_SHARDS_MAX];
};

/* ---- a small open-addressing table: (a, b) -> two counters ------------------------------- */

struct tally_slot {
    uint64_t a; /* 0: empty */
    uint64_t b;
    int64_t v1;
    int64_t v2;
};

struct tally {
    struct tally_slot *slots;
    uint64_t mask;
};

static int tally_init(struct tally *t, uint64_t items)
{
    uint64_t size = 64;
    while (size < 2 * items + 64)
        size <<= 1;
    t->slots = calloc(size, sizeof(*t->slots));
    t->mask = size - 1;
    return t->slots ? 0 : -ENOMEM;
}

/* The slot of (a, b), made when absent. Bounded: the table is never more than half full. */
static struct tally_slot *tally_at(struct tally *t, uint64_t a, uint64_t b)
{
    RUSH_ASSERT(a != 0);
    uint64_t key[2] = {a, b};
    for (uint64_t i = XXH3_64bits(key, sizeof(key));; i++) {
        struct tally_slot *slot = &t->slots[i & t->mask];
        if (slot->a == 0)
            *slot = (struct tally_slot){.a = a, .b = b};
        if (slot->a == a && slot->b == b)
            return slot;
    }
}

/* ---- collecting ---------------------------------------------------------------------------- */

static int keep(struct node_stream *n, const struct rush_stream_event *events, int count)
{
    if (n->count + (uint64_t)count > n->capacity) {
        uint64_t capacity = n->capacity ? n->capacity * 2 : 65536;
        if (capacity > RUSH_VERIFY_EVENTS_MAX)
            return -E2BIG;
        void *grown = realloc(n->events, capacity * sizeof(*n->events));
        if (grown == NULL)
            return -ENOMEM;
        n->events = grown;
        n->capacity = capacity;
    }
    memcpy(&n->events[n->count], events, (size_t)count * sizeof(*events));
    n->count += (uint64_t)count;
    uint32_t shard = events[0].shard; /* a poll's events are one shard's, consecutive */
    if (shard < RUSH_SHARDS_MAX)
        n->last_seq[shard] = events[count - 1].seq;
    return 0;
}

static bool transient(int rc)
{
    return rc == RUSH_ETIMEDOUT || rc == RUSH_EPROTO;
}

/* One poll: keeps what it got. 0, or the subscriber's error (transient ones too). */
static int collect_once(struct node_stream *n, int timeout_ms)
{
    int got = rush_subscriber_poll(n->sub, n->batch, POLL_EVENTS_MAX, timeout_ms);
    if (got > 0)
        return keep(n, n->batch, got);
    return got;
}

/* Polls until stopped or a fatal error; transient ones (a node restarting, or dead) counted. */
static void *collector_main(void *argument)
{
    struct node_stream *n = argument;
    while (!atomic_load(&n->v->stop) && n->error == 0) {
        int rc = collect_once(n, POLL_MS);
        if (transient(rc))
            n->retried++;
        else
            n->error = rc;
    }
    return NULL;
}

/* Opens node n's subscriber at its publisher's heads and starts its collector. */
static int node_start(struct node_stream *n, const char *pub_url, const char *replay_url,
                      bool cluster)
{
    struct rush_subscriber_config config;
    rush_subscriber_config_default(&config);
    config.pub_url = pub_url;
    config.replay_url = replay_url;
    if (cluster)
        config.replay_timeout_ms = CLUSTER_REPLAY_TIMEOUT_MS;
    n->pub_url = pub_url;
    int rc = rush_subscriber_open(&config, &n->sub);
    if (rc == 0)
        rc = rush_subscriber_seek_heads(n->sub, HEADS_TIMEOUT_MS);
    n->shard_count = rc == 0 ? rush_subscriber_shard_count(n->sub) : 0;
    for (uint32_t s = 0; rc == 0 && s < n->shard_count && s < RUSH_SHARDS_MAX; s++) {
        struct rush_subscriber_shard shard;
        rc = rush_subscriber_shard(n->sub, s, &shard);
        n->start_seq[s] = n->last_seq[s] = shard.delivered_seq;
    }
    if (rc == 0)
        rc = -pthread_create(&n->thread, NULL, collector_main, n);
    n->thread_started = rc == 0;
    return rc;
}

int rush_verify_start(const struct rush_loadgen_options *options, struct rush_verify **out,
                      char *why, size_t why_size)
{
    *out = NULL;
    struct rush_verify *v = calloc(1, sizeof(*v));
    if (v != NULL) {
        v->cluster = options->pub_count > 0;
        v->node_count = v->cluster ? options->pub_count : 1;
        v->nodes = calloc(v->node_count, sizeof(*v->nodes));
    }
    if (v == NULL || v->nodes == NULL) {
        rush_verify_free(v);
        return -ENOMEM;
    }
    int rc = 0;
    for (uint32_t i = 0; i < v->node_count && rc == 0; i++) {
        const char *pub = v->cluster ? options->pubs[i] : options->pub_url;
        const char *replay = v->cluster ? options->replays[i] : options->replay_url;
        v->nodes[i].v = v;
        v->nodes[i].index = i;
        rc = node_start(&v->nodes[i], pub, replay, v->cluster);
        if (rc < 0)
            snprintf(why, why_size,
                     "cannot follow the stream at %s (replay %s): %s; is rushd "
                     "running with its publisher and a log?",
                     pub, replay, rush_strerror(rc));
    }
    if (rc < 0) {
        rush_verify_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* Stops every collector (idempotent). */
static void stop_collectors(struct rush_verify *v)
{
    atomic_store(&v->stop, true);
    for (uint32_t i = 0; i < v->node_count; i++) {
        if (v->nodes[i].thread_started)
            pthread_join(v->nodes[i].thread, NULL);
        v->nodes[i].thread_started = false;
    }
}

void rush_verify_free(struct rush_verify *verify)
{
    if (verify == NULL)
        return;
    if (verify->nodes != NULL) {
        stop_collectors(verify);
        for (uint32_t i = 0; i < verify->node_count; i++) {
            rush_subscriber_close(verify->nodes[i].sub);
            free(verify->nodes[i].events);
        }
    }
    free(verify->nodes);
    free(verify->events);
    free(verify);
}

/* ---- merging the nodes' streams per (shard, seq) ------------------------------------------- */

/* The seq range each shard's merge covers, from what every node delivered. */
static void merge_ranges(struct rush_verify *v)
{
    v->shard_count = 0;
    for (uint32_t i = 0; i < v->node_count; i++)
        if (v->nodes[i].shard_count > v->shard_count)
            v->shard_count = v->nodes[i].shard_count;
    for (uint32_t s = 0; s < v->shard_count; s++) {
        struct merged_shard *m = &v->shards[s];
        *m = (struct merged_shard){.first_seq = UINT64_MAX};
        for (uint32_t i = 0; i < v->node_count; i++) {
            const struct node_stream *n = &v->nodes[i];
            if (s >= n->shard_count)
                continue;
            m->first_seq = n->start_seq[s] + 1 < m->first_seq ? n->start_seq[s] + 1 : m->first_seq;
            m->run_first_seq =
                n->start_seq[s] + 1 > m->run_first_seq ? n->start_seq[s] + 1 : m->run_first_seq;
            m->last_seq = n->last_seq[s] > m->last_seq ? n->last_seq[s] : m->last_seq;
            if (!n->gone && n->last_seq[s] > m->live_last_seq)
                m->live_last_seq = n->last_seq[s];
        }
    }
}

/*
 * Builds v->events: every seq of every shard from whichever node served it, in (shard, seq)
 * order; where two nodes served a seq their bytes are compared. Counts, per shard, the seqs of
 * the run no node served and those the nodes disagree on. 0 or -ENOMEM.
 */
static int merge(struct rush_verify *v)
{
    merge_ranges(v);
    uint64_t offsets[RUSH_SHARDS_MAX + 1] = {0};
    for (uint32_t s = 0; s < v->shard_count; s++) {
        const struct merged_shard *m = &v->shards[s];
        offsets[s + 1] =
            offsets[s] + (m->last_seq >= m->first_seq ? m->last_seq - m->first_seq + 1 : 0);
    }
    uint64_t slots = offsets[v->shard_count];
    const struct rush_stream_event **at = calloc(slots + 1, sizeof(*at));
    struct rush_stream_event *events = malloc((slots + 1) * sizeof(*events));
    if (at == NULL || events == NULL) {
        free(at);
        free(events);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < v->node_count; i++) {
        const struct node_stream *n = &v->nodes[i];
        for (uint64_t k = 0; k < n->count; k++) {
            const struct rush_stream_event *e = &n->events[k];
            RUSH_ASSERT(e->shard < v->shard_count && e->seq >= v->shards[e->shard].first_seq);
            const struct rush_stream_event **slot =
                &at[offsets[e->shard] + e->seq - v->shards[e->shard].first_seq];
            if (*slot == NULL)
                *slot = e;
            else if (memcmp(*slot, e, sizeof(*e)) != 0)
                v->shards[e->shard].disagreements++;
        }
    }
    uint64_t count = 0;
    for (uint32_t s = 0; s < v->shard_count; s++) {
        struct merged_shard *m = &v->shards[s];
        for (uint64_t k = offsets[s]; k < offsets[s + 1]; k++) {
            uint64_t seq = m->first_seq + (k - offsets[s]);
            if (at[k] == NULL && seq >= m->run_first_seq && m->missing++ == 0)
                m->first_missing = seq;
            if (at[k] != NULL && at[k]->type != RUSH_EV_AUDIT_PART)
                events[count++] = *at[k]; /* an audit part is text, no order: compared only */
        }
    }
    free(at);
    free(v->events);
    v->events = events;
    v->count = count;
    return 0;
}

/* Whether some shard has seqs only a gone node served (a live one may still catch up). */
static bool live_behind(const struct rush_verify *v)
{
    for (uint32_t s = 0; s < v->shard_count; s++)
        if (v->shards[s].live_last_seq < v->shards[s].last_seq)
            return true;
    return false;
}

/* ---- checking ------------------------------------------------------------------------------ */

/* What the checks share: the run's SKUs by id, and the violations so far. */
struct check {
    const struct rush_catalog *catalog;
    const struct rush_ledger *ledger;
    struct rush_verify *v;
    FILE *out;
    struct tally skus;     /* (sku id, 1) -> v1 = catalog index + 1 */
    struct tally orders;   /* (order id, 0) -> v1 = times confirmed, v2 = event index + 1 */
    struct tally holders;  /* (sku id, user) -> v1 = units held at the end, v2 = confirmed */
    struct tally groups;   /* (group id, 2) -> v1 = confirmed seats, v2 = its SKU id */
    struct tally social;   /* (user, 3): activity units held; (group, 4): tier refunds;
                              (order, 5): the inviter its inviter_due names */
    int64_t *stream_units; /* per catalog SKU: units confirmed in the stream */
    int64_t violations;
    int64_t shown[11];
};

__attribute__((format(printf, 3, 4))) static void violation(struct check *c, int kind,
                                                            const char *format, ...)
{
    c->violations++;
    if (c->shown[kind]++ >= RUSH_VERIFY_SHOWN_MAX)
        return;
    va_list args;
    va_start(args, format);
    fprintf(c->out, "verify: VIOLATION: ");
    vfprintf(c->out, format, args);
    fprintf(c->out, "\n");
    va_end(args);
}

/* The run's SKU with this id, or NULL (an event of another SKU: not this run's). */
static const struct rush_catalog_sku *sku_of(struct check *c, uint64_t sku_id, uint32_t *index)
{
    if (sku_id == 0)
        return NULL; /* an event of no SKU (an audit of a snapshot) */
    struct tally_slot *slot = tally_at(&c->skus, sku_id, 1);
    if (slot->v1 == 0)
        return NULL;
    *index = (uint32_t)(slot->v1 - 1);
    return &c->catalog->skus[*index];
}

/*
 * An ok that is this entry's decision. A duplicate-flagged ok is one only when the entry is not
 * a resend of another (the scenario's duplicates): then the flag means that an earlier send of
 * this same entry, unanswered in time or sent again by the router (route.h), was decided, and
 * this answer is that decision, the only one the client got.
 */
static bool answered_ok(const struct rush_ledger_entry *e)
{
    return e->status == RUSH_LEDGER_ANSWERED && e->outcome == RUSH_OK &&
           (!(e->flags & RUSH_RESULT_DUPLICATE) || e->original_index == RUSH_LEDGER_NO_ORIGINAL);
}

/* Whether an ok answer to this entry is an order confirmed at once (the stream must carry it). */
static uint64_t acknowledged_confirmation(struct check *c, const struct rush_ledger_entry *e)
{
    if (!answered_ok(e))
        return 0;
    uint32_t index;
    const struct rush_catalog_sku *sku =
        e->op == RUSH_OP_RESERVE ? sku_of(c, e->sku_id, &index) : NULL;
    if (e->op == RUSH_OP_CONFIRM)
        return e->target_id;
    bool instant =
        sku != NULL && c->catalog->fresh && sku->def.pay_ttl_ns == 0 && sku->def.group_size == 0;
    return instant ? e->order_id : 0;
}

/* Pass over the stream: confirmations per order, SKU, buyer and group; releases per buyer. */
static void count_stream(struct check *c)
{
    for (uint64_t i = 0; i < c->v->count; i++) {
        const struct rush_stream_event *e = &c->v->events[i];
        uint32_t index;
        if (sku_of(c, e->sku_id, &index) == NULL)
            continue;
        if (e->type == RUSH_EV_ORDER_CONFIRMED) {
            struct tally_slot *order = tally_at(&c->orders, e->order_id, 0);
            if (++order->v1 > 1)
                violation(c, 1, "order %lu confirmed %ld times in the stream", e->order_id,
                          order->v1);
            order->v2 = (int64_t)i + 1;
            c->stream_units[index] += e->qty;
            tally_at(&c->holders, e->sku_id, e->user_id)->v2 += e->qty;
            if (e->group_id != 0)
                tally_at(&c->groups, e->group_id, 2)->v1++;
        } else if (e->type == RUSH_EV_ORDER_RELEASED || e->type == RUSH_EV_ORDER_EXPIRED) {
            tally_at(&c->holders, e->sku_id, e->user_id)->v1 -= e->qty;
        }
    }
}

/* A join names its group, not its SKU: the SKU of the group's open (or join_any), or 0. */
static uint64_t sku_of_group(struct check *c, uint64_t group_id)
{
    return group_id != 0 ? (uint64_t)tally_at(&c->groups, group_id, 2)->v2 : 0;
}

/* Which SKU each group of the run belongs to, from the answers that name both. */
static void learn_group_skus(struct check *c)
{
    for (uint32_t i = 0; i < c->ledger->count; i++) {
        const struct rush_ledger_entry *e = rush_ledger_get(c->ledger, i);
        if (e->status == RUSH_LEDGER_ANSWERED && e->group_id != 0 && e->sku_id != 0)
            tally_at(&c->groups, e->group_id, 2)->v2 = (int64_t)e->sku_id;
    }
}

/* Check 2 (ledger side) and the held units of check 3. */
static void check_ledger(struct check *c)
{
    for (uint32_t i = 0; i < c->ledger->count; i++) {
        const struct rush_ledger_entry *e = rush_ledger_get(c->ledger, i);
        bool decided_ok = answered_ok(e);
        bool holds = e->op == RUSH_OP_RESERVE || e->op == RUSH_OP_GROUP_OPEN ||
                     e->op == RUSH_OP_GROUP_JOIN || e->op == RUSH_OP_GROUP_JOIN_ANY;
        uint64_t sku_id = e->sku_id ? e->sku_id : sku_of_group(c, e->group_id);
        if (decided_ok && holds && sku_id != 0) /* a seat is one unit */
            tally_at(&c->holders, sku_id, e->user_id)->v1 += e->qty ? e->qty : 1;
        uint64_t order_id = acknowledged_confirmation(c, e);
        if (order_id == 0)
            continue;
        struct tally_slot *order = tally_at(&c->orders, order_id, 0);
        if (order->v1 == 0) {
            violation(c, 1,
                      "order %lu was acknowledged confirmed (request %u) but never "
                      "published",
                      order_id, i);
            continue;
        }
        const struct rush_stream_event *ev = &c->v->events[order->v2 - 1];
        if (e->op == RUSH_OP_RESERVE &&
            (ev->sku_id != e->sku_id || ev->user_id != e->user_id || ev->qty != e->qty))
            violation(c, 1,
                      "order %lu: published as sku %lu user %lu qty %u, ordered as sku "
                      "%lu user %lu qty %u",
                      order_id, ev->sku_id, ev->user_id, ev->qty, e->sku_id, e->user_id, e->qty);
    }
}

/* Check 1 and the per-SKU half of check 2. */
static void check_skus(struct check *c)
{
    for (uint32_t i = 0; i < c->catalog->count; i++) {
        const struct rush_catalog_sku *sku = &c->catalog->skus[i];
        const struct rush_catalog_figures *b = &sku->before, *a = &sku->after;
        if (!a->known || !b->known)
            continue;
        if (a->confirmed - b->confirmed != c->stream_units[i])
            violation(c, 2, "sku %lu: the engine confirmed %ld units in the run, the stream %ld",
                      sku->def.id, a->confirmed - b->confirmed, c->stream_units[i]);
        if (a->unlimited)
            continue;
        int64_t stock =
            c->catalog->fresh ? sku->def.stock : b->available + b->reserved + b->confirmed;
        if (a->reserved + a->confirmed > stock || a->available < 0)
            violation(c, 0, "sku %lu oversold: %ld reserved + %ld confirmed of %ld", sku->def.id,
                      a->reserved, a->confirmed, stock);
        if (c->stream_units[i] > stock)
            violation(c, 0, "sku %lu: %ld units confirmed in the stream, stock %ld", sku->def.id,
                      c->stream_units[i], stock);
    }
}

/* Check 3: per (SKU, buyer), within the SKU's per-user limit. */
static void check_limits(struct check *c)
{
    if (!c->catalog->fresh)
        return; /* the campaign's limits are not known here */
    for (uint64_t i = 0; i <= c->holders.mask; i++) {
        const struct tally_slot *slot = &c->holders.slots[i];
        uint32_t index;
        const struct rush_catalog_sku *sku = slot->a ? sku_of(c, slot->a, &index) : NULL;
        if (sku == NULL)
            continue;
        int64_t limit = sku->def.user_qty_max ? sku->def.user_qty_max : INT64_MAX;
        if (slot->v1 > limit || slot->v2 > limit)
            violation(c, 3, "sku %lu user %lu: %ld units held, %ld confirmed, limit %ld", slot->a,
                      slot->b, slot->v1, slot->v2, limit);
    }
}

/* What a seat of a tiered group of `seats` confirmed seats is due back, or -1 below tier 1. */
static int64_t tier_refund_of(const struct rush_sku *def, int64_t seats)
{
    int64_t refund = -1;
    for (uint32_t t = 0; t < def->tier_count && t < RUSH_TIERS_MAX; t++)
        if (seats >= def->tier_size[t])
            refund = def->tier_price_fen[0] - def->tier_price_fen[t];
    return refund;
}

/* Check 4: completed groups have exactly N members, failed ones none confirmed. */
static void check_groups(struct check *c)
{
    for (uint64_t i = 0; i < c->v->count; i++) {
        const struct rush_stream_event *e = &c->v->events[i];
        uint32_t index;
        const struct rush_catalog_sku *sku = sku_of(c, e->sku_id, &index);
        if (sku == NULL || (e->type != RUSH_EV_GROUP_COMPLETED && e->type != RUSH_EV_GROUP_FAILED))
            continue;
        int64_t seats = tally_at(&c->groups, e->group_id, 2)->v1;
        if (e->type == RUSH_EV_GROUP_FAILED && seats != 0)
            violation(c, 4, "group %lu failed with %ld confirmed seats", e->group_id, seats);
        bool size_ok = sku->def.tier_count != 0
                           ? e->qty == 0 && tier_refund_of(&sku->def, seats) >= 0
                           : seats + e->qty == sku->def.group_size;
        if (e->type == RUSH_EV_GROUP_COMPLETED && c->catalog->fresh && !size_ok)
            violation(c, 4, "group %lu completed with %ld members + %u virtual, size %u",
                      e->group_id, seats, e->qty, sku->def.group_size);
    }
}

/* Check 5: every resend answered duplicate with the original's result. */
static void check_duplicates(struct check *c, uint64_t *resends)
{
    for (uint32_t i = 0; i < c->ledger->count; i++) {
        const struct rush_ledger_entry *e = rush_ledger_get(c->ledger, i);
        if (e->original_index == RUSH_LEDGER_NO_ORIGINAL || e->status != RUSH_LEDGER_ANSWERED)
            continue;
        const struct rush_ledger_entry *original = rush_ledger_get(c->ledger, e->original_index);
        if (original->status != RUSH_LEDGER_ANSWERED)
            continue;
        (*resends)++;
        if (!rush_ledger_duplicate_matches(original, e))
            violation(c, 5,
                      "request %u (a resend of %u) was not answered with the original "
                      "result",
                      i, e->original_index);
    }
}

/* Units of confirmations the run should show in the stream: the engine's, else the ledger's. */
static int64_t expected_units(struct check *c)
{
    int64_t units = 0;
    for (uint32_t i = 0; i < c->catalog->count; i++) {
        const struct rush_catalog_sku *sku = &c->catalog->skus[i];
        if (sku->after.known && sku->before.known)
            units += sku->after.confirmed - sku->before.confirmed;
    }
    return units;
}

static int64_t stream_units_now(struct check *c)
{
    int64_t units = 0;
    for (uint64_t i = 0; i < c->v->count; i++) {
        uint32_t index;
        if (c->v->events[i].type == RUSH_EV_ORDER_CONFIRMED &&
            sku_of(c, c->v->events[i].sku_id, &index) != NULL)
            units += c->v->events[i].qty;
    }
    return units;
}

/*
 * Node n, resynced, polled until it has delivered everything its publisher holds now. One node:
 * transient errors are polled through, others returned. Several: a node whose subscriber fails
 * (replay silent: dead; or a fatal error) is marked gone and 0 returned.
 */
static int catch_up(struct rush_verify *v, struct node_stream *n, int64_t deadline)
{
    rush_subscriber_resync(n->sub);
    while (!rush_subscriber_caught_up(n->sub) && rush_clock_monotonic_ms() < deadline) {
        int rc = collect_once(n, POLL_MS);
        if (rc == 0 || rc == RUSH_EPROTO || (!v->cluster && rc == RUSH_ETIMEDOUT))
            continue;
        if (!v->cluster)
            return rc;
        n->gone = true;
        snprintf(n->why, sizeof(n->why), "its stream failed after the run: %s", rush_strerror(rc));
        return 0;
    }
    return 0;
}

/* One pass over the nodes still followed: caught up (or gone). True when every live node is. */
static int catch_up_all(struct rush_verify *v, int64_t deadline, bool *caught_up)
{
    *caught_up = true;
    uint32_t live = 0;
    for (uint32_t i = 0; i < v->node_count; i++) {
        struct node_stream *n = &v->nodes[i];
        if (n->error != 0 && !v->cluster)
            return n->error;
        if (n->error != 0 && !n->gone) {
            n->gone = true;
            snprintf(n->why, sizeof(n->why), "its stream failed during the run: %s",
                     rush_strerror(n->error));
        }
        int rc = n->gone ? 0 : catch_up(v, n, deadline);
        if (rc < 0)
            return rc;
        live += !n->gone;
        *caught_up = *caught_up && (n->gone || rush_subscriber_caught_up(n->sub));
    }
    return live > 0 ? 0 : -ENOTCONN;
}

/*
 * Polls until the merged stream holds every confirmation the engine reported and no seq is
 * held only by a gone node (a live follower may be a moment behind), or the settle time ends.
 */
static int settle(struct check *c)
{
    int64_t deadline = rush_clock_monotonic_ms() + RUSH_VERIFY_SETTLE_MS;
    int64_t want = expected_units(c);
    stop_collectors(c->v);
    for (;;) {
        bool caught_up = false;
        int rc = catch_up_all(c->v, deadline, &caught_up);
        if (rc == 0)
            rc = merge(c->v);
        if (rc < 0)
            return rc;
        bool done = caught_up && stream_units_now(c) >= want && !live_behind(c->v);
        if (done || rush_clock_monotonic_ms() >= deadline)
            return 0;
    }
}

/* The stream exactly once: every seq of the run served, identically by every node serving it. */
static void check_stream(struct check *c)
{
    const struct rush_verify *v = c->v;
    for (uint32_t i = 0; i < v->node_count; i++)
        if (v->nodes[i].shard_count != v->shard_count)
            violation(c, 10, "node %u's publisher has %u shards, another's %u", i,
                      v->nodes[i].shard_count, v->shard_count);
    for (uint32_t s = 0; s < v->shard_count; s++) {
        const struct merged_shard *m = &v->shards[s];
        if (m->missing != 0)
            violation(c, 10, "shard %u: %lu seqs of the run served by no node (first %lu)", s,
                      m->missing, m->first_missing);
        if (m->disagreements != 0)
            violation(c, 10, "shard %u: %lu seqs served with different events by two nodes", s,
                      m->disagreements);
        if (m->live_last_seq < m->last_seq)
            violation(c, 10,
                      "shard %u: seqs %lu..%lu were published only by a node that is gone: no "
                      "live node holds them",
                      s, m->live_last_seq + 1, m->last_seq);
    }
}

/* Per node: what its stream delivered, and whether it was followed to the end. */
static void print_nodes(const struct rush_verify *v, FILE *out)
{
    for (uint32_t i = 0; i < v->node_count && v->cluster; i++) {
        const struct node_stream *n = &v->nodes[i];
        fprintf(out, "verify: node %u (%s): %lu events, %lu transient errors;", i, n->pub_url,
                n->count, n->retried);
        for (uint32_t s = 0; s < n->shard_count && s < RUSH_SHARDS_MAX; s++)
            if (n->last_seq[s] > n->start_seq[s])
                fprintf(out, " shard %u seqs %lu..%lu", s, n->start_seq[s] + 1, n->last_seq[s]);
            else
                fprintf(out, " shard %u none after %lu", s, n->start_seq[s]);
        fprintf(out, "; %s%s\n", n->gone ? "gone: " : "followed to the end", n->why);
    }
    uint64_t missing = 0, disagreements = 0;
    for (uint32_t s = 0; s < v->shard_count; s++)
        missing += v->shards[s].missing, disagreements += v->shards[s].disagreements;
    if (v->cluster)
        fprintf(out,
                "verify: merged stream: %lu events over %u shards, %lu seqs missing, %lu "
                "disagreements\n",
                v->count, v->shard_count, missing, disagreements);
}

/* ---- the social rules (checks 6..9): new users, the activity, tiers, inviters -------------- */

/* Check 6: an ok on a new-users-only SKU went to a request the gateway flagged new; and the
 * ledger side of check 7: units taken of the social activity, per buyer. */
static void check_new_users_and_activity_takes(struct check *c)
{
    for (uint32_t i = 0; i < c->ledger->count; i++) {
        const struct rush_ledger_entry *e = rush_ledger_get(c->ledger, i);
        uint32_t index;
        const struct rush_catalog_sku *sku = e->sku_id ? sku_of(c, e->sku_id, &index) : NULL;
        if (sku == NULL || !answered_ok(e) || !c->catalog->fresh)
            continue;
        if ((sku->def.rules & RUSH_SKU_NEW_USERS_ONLY) &&
            !(e->request_flags & RUSH_REQUEST_NEW_USER))
            violation(c, 6, "sku %lu is for new users only, but user %lu (not flagged new) got it",
                      e->sku_id, e->user_id);
        if (rush_sku_family(e->sku_id) == RUSH_CATALOG_SOCIAL_FAMILY)
            tally_at(&c->social, e->user_id, 3)->v1 += e->qty ? e->qty : 1;
    }
}

/* Check 7: no buyer holds more of the activity than its per-user limit. */
static void check_activity(struct check *c)
{
    for (uint64_t i = 0; i < c->v->count; i++) { /* what the stream gave back */
        const struct rush_stream_event *e = &c->v->events[i];
        uint32_t index;
        if (rush_sku_family(e->sku_id) == RUSH_CATALOG_SOCIAL_FAMILY &&
            sku_of(c, e->sku_id, &index) != NULL &&
            (e->type == RUSH_EV_ORDER_RELEASED || e->type == RUSH_EV_ORDER_EXPIRED))
            tally_at(&c->social, e->user_id, 3)->v1 -= e->qty;
    }
    for (uint64_t i = 0; i <= c->social.mask; i++) {
        const struct tally_slot *slot = &c->social.slots[i];
        if (slot->a != 0 && slot->b == 3 && slot->v1 > RUSH_CATALOG_SOCIAL_ACTIVITY_QTY_MAX)
            violation(c, 7, "user %lu holds %ld units of the activity, its limit is %d", slot->a,
                      slot->v1, RUSH_CATALOG_SOCIAL_ACTIVITY_QTY_MAX);
    }
}

/* Check 8: each tier refund is the first tier's price less the tier its group reached, and a
 * completed group whose tier is cheaper than the first refunds every seat. */
static void check_tiers(struct check *c)
{
    for (uint64_t pass = 0; pass < 2; pass++) {
        for (uint64_t i = 0; i < c->v->count; i++) {
            const struct rush_stream_event *e = &c->v->events[i];
            uint32_t index;
            const struct rush_catalog_sku *sku = sku_of(c, e->sku_id, &index);
            if (sku == NULL || sku->def.tier_count == 0 || !c->catalog->fresh || e->group_id == 0)
                continue;
            int64_t seats = tally_at(&c->groups, e->group_id, 2)->v1;
            int64_t due = tier_refund_of(&sku->def, seats);
            struct tally_slot *refunds = tally_at(&c->social, e->group_id, 4);
            if (pass == 0 && e->type == RUSH_EV_TIER_REFUND_DUE) {
                refunds->v1++;
                if (e->price_fen != due || e->qty != 1)
                    violation(c, 8, "group %lu of %ld seats: a refund of %ld x %u, due %ld",
                              e->group_id, seats, e->price_fen, e->qty, due);
            }
            if (pass == 1 && e->type == RUSH_EV_GROUP_COMPLETED &&
                refunds->v1 != (due > 0 ? seats : 0))
                violation(c, 8, "group %lu completed with %ld seats and %ld tier refunds",
                          e->group_id, seats, refunds->v1);
        }
    }
}

/* Check 9: a seat of a completed group has an inviter_due exactly when its join named one. */
static void check_inviters(struct check *c)
{
    for (uint64_t i = 0; i < c->v->count; i++) {
        const struct rush_stream_event *e = &c->v->events[i];
        uint32_t index;
        if (e->type == RUSH_EV_INVITER_DUE && sku_of(c, e->sku_id, &index) != NULL)
            tally_at(&c->social, e->order_id, 5)->v1 = (int64_t)e->user_id;
    }
    for (uint32_t i = 0; i < c->ledger->count; i++) {
        const struct rush_ledger_entry *e = rush_ledger_get(c->ledger, i);
        bool join = e->op == RUSH_OP_GROUP_JOIN || e->op == RUSH_OP_GROUP_JOIN_ANY;
        if (!join || !answered_ok(e) || tally_at(&c->orders, e->order_id, 0)->v1 == 0)
            continue; /* its group has not completed (yet) */
        int64_t paid_to = tally_at(&c->social, e->order_id, 5)->v1;
        if (paid_to != (int64_t)e->inviter_id)
            violation(c, 9, "seat %lu of user %lu invited by %lu: inviter_due names %ld",
                      e->order_id, e->user_id, e->inviter_id, paid_to);
    }
}

/* The run's SKUs by id: needed first, to know which events to wait for. */
static int skus_init(struct check *c)
{
    int rc = tally_init(&c->skus, c->catalog->count);
    for (uint32_t i = 0; rc == 0 && i < c->catalog->count; i++)
        tally_at(&c->skus, c->catalog->skus[i].def.id, 1)->v1 = i + 1;
    return rc;
}

/* The other tables, sized once the stream has settled. */
static int check_init(struct check *c)
{
    uint64_t n = c->catalog->count + c->v->count + c->ledger->count;
    int rc = tally_init(&c->orders, c->v->count + c->ledger->count);
    if (rc == 0)
        rc = tally_init(&c->holders, n);
    if (rc == 0)
        rc = tally_init(&c->groups, c->v->count + c->ledger->count);
    if (rc == 0)
        rc = tally_init(&c->social, c->v->count + c->ledger->count);
    c->stream_units = calloc(c->catalog->count + 1, sizeof(*c->stream_units));
    return rc < 0 || c->stream_units == NULL ? -ENOMEM : 0;
}

static void check_free(struct check *c)
{
    free(c->skus.slots);
    free(c->orders.slots);
    free(c->holders.slots);
    free(c->groups.slots);
    free(c->social.slots);
    free(c->stream_units);
}

int64_t rush_verify_finish(struct rush_verify *verify, const struct rush_catalog *catalog,
                           const struct rush_ledger *ledger, FILE *out)
{
    struct check c = {.catalog = catalog, .ledger = ledger, .v = verify, .out = out};
    int rc = skus_init(&c);
    if (rc == 0)
        rc = settle(&c);
    if (rc == 0)
        rc = check_init(&c);
    if (rc < 0) {
        print_nodes(verify, out);
        fprintf(out, "verify: FAILED: the stream could not be followed: %s\n", rush_strerror(rc));
        check_free(&c);
        return rc;
    }
    uint64_t resends = 0;
    learn_group_skus(&c);
    count_stream(&c);
    check_ledger(&c);
    check_skus(&c);
    check_limits(&c);
    check_groups(&c);
    check_duplicates(&c, &resends);
    check_new_users_and_activity_takes(&c);
    check_activity(&c);
    check_tiers(&c);
    check_inviters(&c);
    check_stream(&c);
    print_nodes(verify, out);
    fprintf(out,
            "verify: %lu stream events (%ld units confirmed on the run's SKUs) checked against "
            "%u requests and %u SKUs; %lu resends compared\n",
            verify->count, stream_units_now(&c), ledger->count, catalog->count, resends);
    fprintf(out, "verify: %s (%ld violations)\n", c.violations ? "FAILED" : "ok", c.violations);
    check_free(&c);
    return c.violations;
}
