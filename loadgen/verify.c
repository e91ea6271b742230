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

struct rush_verify {
    struct rush_subscriber *sub;
    pthread_t thread;
    bool thread_started;
    _Atomic bool stop;
    struct rush_stream_event *events; /* in delivery order */
    uint64_t count;
    uint64_t capacity;
    int error; /* the collector's first fatal error (0: none) */
    struct rush_stream_event batch[POLL_EVENTS_MAX];
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

static int keep(struct rush_verify *v, const struct rush_stream_event *events, int n)
{
    if (v->count + (uint64_t)n > v->capacity) {
        uint64_t capacity = v->capacity ? v->capacity * 2 : 65536;
        if (capacity > RUSH_VERIFY_EVENTS_MAX)
            return -E2BIG;
        void *grown = realloc(v->events, capacity * sizeof(*v->events));
        if (grown == NULL)
            return -ENOMEM;
        v->events = grown;
        v->capacity = capacity;
    }
    memcpy(&v->events[v->count], events, (size_t)n * sizeof(*events));
    v->count += (uint64_t)n;
    return 0;
}

/* One poll: keeps what it got. Transient errors (timeouts, a bad reply) are retried. */
static int collect_once(struct rush_verify *v, int timeout_ms)
{
    int n = rush_subscriber_poll(v->sub, v->batch, POLL_EVENTS_MAX, timeout_ms);
    if (n > 0)
        return keep(v, v->batch, n);
    return n == RUSH_ETIMEDOUT || n == RUSH_EPROTO ? 0 : n;
}

static void *collector_main(void *argument)
{
    struct rush_verify *v = argument;
    while (!atomic_load(&v->stop) && v->error == 0)
        v->error = collect_once(v, POLL_MS);
    return NULL;
}

int rush_verify_start(const struct rush_loadgen_options *options, struct rush_verify **out,
                      char *why, size_t why_size)
{
    *out = NULL;
    struct rush_verify *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    struct rush_subscriber_config config;
    rush_subscriber_config_default(&config);
    config.pub_url = options->pub_url;
    config.replay_url = options->replay_url;
    int rc = rush_subscriber_open(&config, &v->sub);
    if (rc == 0)
        rc = rush_subscriber_seek_heads(v->sub, HEADS_TIMEOUT_MS);
    if (rc == 0)
        rc = -pthread_create(&v->thread, NULL, collector_main, v);
    v->thread_started = rc == 0;
    if (rc < 0) {
        snprintf(why, why_size,
                 "cannot follow the stream at %s (replay %s): %s; is rushd "
                 "running with its publisher and a log?",
                 options->pub_url, options->replay_url, rush_strerror(rc));
        rush_verify_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void rush_verify_free(struct rush_verify *verify)
{
    if (verify == NULL)
        return;
    atomic_store(&verify->stop, true);
    if (verify->thread_started)
        pthread_join(verify->thread, NULL);
    rush_subscriber_close(verify->sub);
    free(verify->events);
    free(verify);
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
    int64_t shown[10];
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
    struct tally_slot *slot = tally_at(&c->skus, sku_id, 1);
    if (slot->v1 == 0)
        return NULL;
    *index = (uint32_t)(slot->v1 - 1);
    return &c->catalog->skus[*index];
}

/* Whether an ok answer to this entry is an order confirmed at once (the stream must carry it). */
static uint64_t acknowledged_confirmation(struct check *c, const struct rush_ledger_entry *e)
{
    if (e->status != RUSH_LEDGER_ANSWERED || e->outcome != RUSH_OK ||
        (e->flags & RUSH_RESULT_DUPLICATE))
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
        bool decided_ok = e->status == RUSH_LEDGER_ANSWERED && e->outcome == RUSH_OK &&
                          !(e->flags & RUSH_RESULT_DUPLICATE);
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

/* Polls until the stream holds every confirmation the engine reported, or the settle time ends. */
static int settle(struct check *c)
{
    int64_t deadline = rush_clock_monotonic_ms() + RUSH_VERIFY_SETTLE_MS;
    int64_t want = expected_units(c);
    int rc = 0;
    while (rc == 0 && rush_clock_monotonic_ms() < deadline) {
        rush_subscriber_resync(c->v->sub);
        while (rc == 0 && !rush_subscriber_caught_up(c->v->sub) &&
               rush_clock_monotonic_ms() < deadline)
            rc = collect_once(c->v, POLL_MS);
        if (rush_subscriber_caught_up(c->v->sub) && stream_units_now(c) >= want)
            break;
    }
    return rc;
}

/* ---- the social rules (checks 6..9): new users, the activity, tiers, inviters -------------- */

static bool answered_ok(const struct rush_ledger_entry *e)
{
    return e->status == RUSH_LEDGER_ANSWERED && e->outcome == RUSH_OK &&
           !(e->flags & RUSH_RESULT_DUPLICATE);
}

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
            if (sku == NULL || sku->def.tier_count == 0 || !c->catalog->fresh)
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
    atomic_store(&verify->stop, true);
    if (verify->thread_started)
        pthread_join(verify->thread, NULL);
    verify->thread_started = false;
    struct check c = {.catalog = catalog, .ledger = ledger, .v = verify, .out = out};
    int rc = verify->error;
    if (rc == 0)
        rc = skus_init(&c);
    if (rc == 0)
        rc = settle(&c);
    if (rc == 0)
        rc = check_init(&c);
    if (rc < 0) {
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
    fprintf(out,
            "verify: %lu stream events (%ld units confirmed on the run's SKUs) checked against "
            "%u requests and %u SKUs; %lu resends compared\n",
            verify->count, stream_units_now(&c), ledger->count, catalog->count, resends);
    fprintf(out, "verify: %s (%ld violations)\n", c.violations ? "FAILED" : "ok", c.violations);
    check_free(&c);
    return c.violations;
}
