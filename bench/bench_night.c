/*
 * bench_night — a whole Double-11 night on one shard: do the keys and the order slots last?
 *
 * One shard in-process (keys_max 4 Mi, orders_max 2 Mi, user_limits_max 6 Mi), 100 million
 * requests (or the count given) spread evenly over a simulated twelve-hour night of engine time,
 * decided in batches of BATCH under one engine time each:
 *   - reserve clicks by 1 M users on 4 hot SKUs with small stock, restocked by adjusts (most clicks
 *     are sold_out; an ok is paid (60%), cancelled (15%) or abandoned to its 15-minute pay TTL);
 *   - payments, some after the TTL (they answer expired and log refund_due), and cancels, sent at
 *     their own simulated times;
 *   - group join_any on a group SKU (2% of requests; groups of 3, deadline 10 minutes);
 *   - admin adjust, pause and resume;
 *   - resends of recent requests (duplicates, or a new decision when the first changed nothing).
 *
 * Prints JSON lines: every tenth of the run (10 M requests at full size) a "progress" line with
 * resident memory (/proc/self/statm), keys held, order slots used and busy answers per op; at the
 * end a "night" line with ops_per_sec, the totals and the memory bound. Exits non-zero when a
 * confirm, cancel or admin request answered busy, or resident memory grew after warm-up (the
 * first two tenths) by more than 1% + 8 MiB.
 *
 * Memory bound (per shard; rush_shard_memory() computes the same from the limits):
 *   bytes ~= 85.3 x keys_max + 117 x orders_max + 53 x groups_max + 42.7 x user_limits_max
 *            + 744 x skus_max + 64 x events_buffer_max + 2 x keys_max (ring) + 256 KiB (wheel)
 * where 85.3 = 64-byte key entry / 0.75 load, 117 = 96-byte order + 17-byte timer (next, prev,
 * deadline, state) + 4-byte due slot, 53 = 32-byte group + 21 timer/due, 42.7 = 32-byte limit
 * entry / 0.75, 744 = 712-byte SKU state + its id entry, 2 = the ring's 16 bytes per 8 keys.
 * All of it is allocated and zeroed at start, so resident memory is flat by construction; what
 * the night shows is that the occupancy stays below the limits: order slots in use stay below
 * (ended orders per second x ended_retain) + live orders, keys below order slots + keys_max / 8.
 *
 * Usage: bench-night [requests, default 100000000] [orders_max, default 2097152]
 * A small orders_max puts the night under pressure: reservations then answer busy for want of an
 * order slot, and payments, cancels and admin ops still must not.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/number.h"
#include "drive.h"
#include "rush/engine.h"
#include "shard/shard.h"

#define BATCH 1024
#define NIGHT_NS (INT64_C(12) * 3600 * 1000000000)
#define MINUTE_NS (INT64_C(60) * 1000000000)
#define HOT_SKUS 4
#define GROUP_SKU 900
#define USERS 1000000
#define RECENT_MAX 65536       /* requests kept for resends */
#define FOLLOW_UPS_MAX 4000000 /* payments and cancels waiting for their time */
#define REPORTS 10

static uint64_t random_state = 0x9e3779b97f4a7c15;

static uint64_t below(uint64_t n)
{
    return rush_drive_random(&random_state) % n;
}

/* A payment or cancel to send at `due_ns`: a binary min-heap by time. */
struct follow_up {
    int64_t due_ns;
    uint64_t order_id;
    uint8_t op;
};

struct heap {
    struct follow_up *items;
    uint32_t count;
};

static void heap_push(struct heap *heap, struct follow_up item)
{
    if (heap->count == FOLLOW_UPS_MAX)
        return; /* dropped: an abandoned order */
    uint32_t i = heap->count++;
    while (i > 0 && heap->items[(i - 1) / 2].due_ns > item.due_ns) {
        heap->items[i] = heap->items[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap->items[i] = item;
}

static struct follow_up heap_pop(struct heap *heap)
{
    struct follow_up top = heap->items[0];
    struct follow_up last = heap->items[--heap->count];
    uint32_t i = 0;
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= heap->count)
            break;
        if (child + 1 < heap->count && heap->items[child + 1].due_ns < heap->items[child].due_ns)
            child++;
        if (heap->items[child].due_ns >= last.due_ns)
            break;
        heap->items[i] = heap->items[child];
        i = child;
    }
    if (heap->count > 0)
        heap->items[i] = last;
    return top;
}

struct night {
    struct rush_shard *shard;
    struct heap follow_ups;
    struct rush_request *recent;
    uint64_t recent_count;
    uint64_t next_key;
    uint64_t sent;
    uint64_t busy[RUSH_OP_COUNT_];
    uint64_t by_op[RUSH_OP_COUNT_];
    uint64_t refunds_due;
    uint32_t paused_sku; /* 0: none paused */
};

static void on_events(void *context, uint32_t shard_index, int64_t time_ns,
                      const struct rush_event *events, uint32_t count)
{
    (void)shard_index;
    (void)time_ns;
    struct night *night = context;
    for (uint32_t i = 0; i < count; i++)
        night->refunds_due += events[i].type == RUSH_EV_REFUND_DUE;
}

static struct rush_sku sku_of(uint64_t id, int64_t stock)
{
    return (struct rush_sku){.id = id,
                             .name = "night",
                             .stock = stock,
                             .price_fen = 990,
                             .start_ns = 0,
                             .end_ns = INT64_MAX,
                             .pay_ttl_ns = 15 * MINUTE_NS,
                             .order_qty_max = 1,
                             .user_qty_max = 4};
}

static void put_catalogue(struct rush_shard *shard, int64_t now)
{
    struct rush_result result;
    rush_shard_begin(shard, now);
    for (uint64_t s = 1; s <= HOT_SKUS; s++) {
        struct rush_sku sku = sku_of(s, 500);
        rush_shard_sku_put(shard, &sku, &result);
    }
    struct rush_sku group = sku_of(GROUP_SKU, 1000000000);
    group.group_size = 3;
    group.group_ttl_ns = 10 * MINUTE_NS;
    group.groups_open_max = 20000;
    group.pay_ttl_ns = 0;
    group.user_qty_max = 1000;
    rush_shard_sku_put(shard, &group, &result);
    rush_shard_end(shard);
}

/* The next request of the night's mix (payments and cancels come from the follow-up heap). */
static struct rush_request next_request(struct night *night)
{
    uint64_t dice = below(10000);
    struct rush_request r = {.key = rush_drive_key(++night->next_key, 0x4e)};
    if (dice < 600 && night->recent_count > 0) { /* a resend */
        uint64_t back = below(night->recent_count < RECENT_MAX ? night->recent_count : RECENT_MAX);
        return night->recent[(night->recent_count - 1 - back) % RECENT_MAX];
    }
    if (dice < 800) {
        r.op = RUSH_OP_GROUP_JOIN_ANY;
        r.sku_id = GROUP_SKU;
        r.user_id = 1 + below(USERS);
    } else if (dice < 820) {
        r.op = RUSH_OP_ADJUST;
        r.sku_id = 1 + below(HOT_SKUS);
        r.amount = 40;
    } else if (dice < 822) {
        r.op = night->paused_sku ? RUSH_OP_RESUME : RUSH_OP_PAUSE;
        r.sku_id = night->paused_sku ? night->paused_sku : 1 + below(HOT_SKUS);
        night->paused_sku = night->paused_sku ? 0 : (uint32_t)r.sku_id;
    } else {
        r.op = RUSH_OP_RESERVE;
        r.sku_id = 1 + below(HOT_SKUS);
        r.user_id = 1 + below(USERS);
        r.qty = 1;
    }
    return r;
}

/* An ok reservation's fate: paid (some late), cancelled, or abandoned to its TTL. */
static void plan_follow_up(struct night *night, int64_t now, uint64_t order_id)
{
    uint64_t fate = below(100);
    if (fate < 60)
        heap_push(&night->follow_ups,
                  (struct follow_up){.due_ns = now + (int64_t)below(17 * MINUTE_NS),
                                     .order_id = order_id,
                                     .op = RUSH_OP_CONFIRM});
    else if (fate < 75)
        heap_push(&night->follow_ups,
                  (struct follow_up){.due_ns = now + (int64_t)below(5 * MINUTE_NS),
                                     .order_id = order_id,
                                     .op = RUSH_OP_CANCEL});
}

/* One batch at engine time `now`: due follow-ups first, then the mix. */
static uint32_t run_batch(struct night *night, int64_t now, uint32_t size,
                          struct rush_request *requests, struct rush_result *results)
{
    uint32_t n = 0;
    while (n < size / 2 && night->follow_ups.count > 0 &&
           night->follow_ups.items[0].due_ns <= now) {
        struct follow_up f = heap_pop(&night->follow_ups);
        requests[n++] = (struct rush_request){
            .op = f.op, .target_id = f.order_id, .key = rush_drive_key(++night->next_key, 0x4e)};
    }
    while (n < size)
        requests[n++] = next_request(night);
    rush_shard_begin(night->shard, now);
    rush_shard_decide_batch(night->shard, requests, n, results);
    rush_shard_end(night->shard);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t op = requests[i].op;
        night->by_op[op]++;
        night->busy[op] += results[i].outcome == RUSH_BUSY;
        if (op == RUSH_OP_RESERVE && results[i].outcome == RUSH_OK &&
            !(results[i].flags & RUSH_RESULT_DUPLICATE))
            plan_follow_up(night, now, results[i].order_id);
        night->recent[night->recent_count++ % RECENT_MAX] = requests[i];
    }
    return n;
}

static uint64_t resident_bytes(void)
{
    FILE *file = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (file == NULL)
        return 0;
    if (fscanf(file, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(file);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void print_busy(const struct night *night)
{
    printf("\"busy\":{");
    for (int op = RUSH_OP_RESERVE; op < RUSH_OP_COUNT_; op++)
        printf("%s\"%s\":%" PRIu64, op == RUSH_OP_RESERVE ? "" : ",",
               rush_op_name((enum rush_op)op), night->busy[op]);
    printf("}");
}

static void print_progress(const struct night *night, int64_t now, uint64_t resident)
{
    const struct rush_shard_stats *stats = rush_shard_stats(night->shard);
    printf("{\"bench\":\"night\",\"case\":\"progress\",\"requests\":%" PRIu64
           ",\"night_hours\":%.2f,\"resident_bytes\":%" PRIu64 ",\"keys_held\":%u"
           ",\"order_slots_used\":%u,\"orders_reclaimed\":%" PRIu64 ",\"keys_forgotten\":%" PRIu64
           ",\"ok\":%" PRIu64 ",\"sold_out\":%" PRIu64 ",\"hoarding\":%" PRIu64
           ",\"duplicates\":%" PRIu64 ",\"refunds_due\":%" PRIu64 ",",
           night->sent, (double)now / 3600e9, resident, rush_shard_keys_held(night->shard),
           rush_shard_order_slots_used(night->shard), stats->orders_reclaimed,
           stats->keys_forgotten, stats->outcomes[RUSH_OK], stats->outcomes[RUSH_SOLD_OUT],
           stats->outcomes[RUSH_HOARDING], stats->duplicates, night->refunds_due);
    print_busy(night);
    printf("}\n");
    fflush(stdout);
}

/* The bound of the header, evaluated for these limits. */
static double bound_bytes(const struct rush_shard_limits *l)
{
    return 85.3 * l->keys_max + 117.0 * l->orders_max + 53.0 * l->groups_max +
           42.7 * l->user_limits_max + 744.0 * l->skus_max + 64.0 * l->events_buffer_max +
           2.0 * l->keys_max + 262144.0;
}

int main(int argc, char **argv)
{
    uint64_t total = 100000000;
    if (argc > 1 && rush_number_parse_u64(argv[1], strlen(argv[1]), 10 * BATCH, UINT64_MAX, &total,
                                          NULL, 0) != 0) {
        fprintf(stderr, "usage: bench-night [requests >= %d] [orders_max 1..2^30]\n", 10 * BATCH);
        return 2;
    }
    uint64_t orders_max = 2097152;
    if (argc > 2 && rush_number_parse_u64(argv[2], strlen(argv[2]), 1, UINT64_C(1) << 30,
                                          &orders_max, NULL, 0) != 0) {
        fprintf(stderr, "bench-night: orders_max must be 1..2^30\n");
        return 2;
    }
    struct night night = {0};
    struct rush_shard_limits limits = {.skus_max = 64,
                                       .orders_max = (uint32_t)orders_max,
                                       .groups_max = 1048576,
                                       .keys_max = 4194304,
                                       .user_limits_max = 6291456,
                                       .events_buffer_max = 16384};
    struct rush_shard_config config = {
        .limits = limits,
        .policy = {.retain_ns = 30 * MINUTE_NS, .user_unpaid_max = 8, .user_churn_max = 16},
        .seed = 11,
        .start_ns = 1,
        .sink = on_events,
        .sink_context = &night};
    if (rush_shard_create(&config, &night.shard) != 0)
        return 2;
    night.follow_ups.items = malloc(sizeof(struct follow_up) * FOLLOW_UPS_MAX);
    night.recent = malloc(sizeof(struct rush_request) * RECENT_MAX);
    struct rush_request *requests = malloc(sizeof(*requests) * BATCH);
    struct rush_result *results = malloc(sizeof(*results) * BATCH);
    if (!night.follow_ups.items || !night.recent || !requests || !results)
        return 2;
    /* Touched now, like the shard's tables, so that resident memory shows only what grows. */
    memset(night.follow_ups.items, 0, sizeof(struct follow_up) * FOLLOW_UPS_MAX);
    memset(night.recent, 0, sizeof(struct rush_request) * RECENT_MAX);
    put_catalogue(night.shard, 1);
    uint64_t report_every = total / REPORTS, next_report = report_every;
    uint64_t warm_resident = 0, max_resident = 0;
    int reports = 0;
    int64_t now = 1;
    double start = rush_clock_monotonic_seconds();
    while (night.sent < total) {
        uint32_t size = total - night.sent < BATCH ? (uint32_t)(total - night.sent) : BATCH;
        now = 1 + (int64_t)((double)NIGHT_NS * (double)night.sent / (double)total);
        night.sent += run_batch(&night, now, size, requests, results);
        if (night.sent >= next_report) {
            uint64_t resident = resident_bytes();
            print_progress(&night, now, resident);
            if (++reports == 2)
                warm_resident = resident;
            if (reports > 2 && resident > max_resident)
                max_resident = resident;
            next_report += report_every;
        }
    }
    double seconds = rush_clock_monotonic_seconds() - start;
    struct rush_shard_memory memory;
    rush_shard_memory(night.shard, &memory);
    char why[256] = "";
    int check = rush_shard_check(night.shard, why, sizeof(why));
    uint64_t guarded_busy = night.busy[RUSH_OP_CONFIRM] + night.busy[RUSH_OP_CANCEL] +
                            night.busy[RUSH_OP_ADJUST] + night.busy[RUSH_OP_PAUSE] +
                            night.busy[RUSH_OP_RESUME];
    bool flat = max_resident <= warm_resident + warm_resident / 100 + (8u << 20);
    printf("{\"bench\":\"night\",\"case\":\"night_%" PRIu64 "_orders_max_%" PRIu64
           "\",\"requests\":%" PRIu64 ",\"seconds\":%.2f,\"ops_per_sec\":%.0f,\"confirms\":%" PRIu64
           ",\"cancels\":%" PRIu64 ",\"admin\":%" PRIu64 ",\"shard_bytes\":%" PRIu64
           ",\"bound_bytes\":%.0f"
           ",\"warm_resident_bytes\":%" PRIu64 ",\"max_resident_bytes_after_warmup\":%" PRIu64
           ",\"memory_flat\":%s,\"payments_cancels_admin_busy\":%" PRIu64 ",\"check\":\"%s\","
           "\"bound\":\"85.3*keys_max + 117*orders_max + 53*groups_max + 42.7*user_limits_max + "
           "744*skus_max + 64*events_buffer_max + 2*keys_max + 256KiB\",",
           total, orders_max, night.sent, seconds, (double)night.sent / seconds,
           night.by_op[RUSH_OP_CONFIRM], night.by_op[RUSH_OP_CANCEL],
           night.by_op[RUSH_OP_ADJUST] + night.by_op[RUSH_OP_PAUSE] + night.by_op[RUSH_OP_RESUME],
           memory.total_bytes, bound_bytes(&limits), warm_resident, max_resident,
           flat ? "true" : "false", guarded_busy, check == 0 ? "ok" : why);
    print_busy(&night);
    printf("}\n");
    rush_shard_destroy(night.shard);
    free(night.follow_ups.items);
    free(night.recent);
    free(requests);
    free(results);
    if (guarded_busy != 0 || !flat || check != 0) {
        fprintf(stderr, "bench-night: %s\n",
                guarded_busy ? "a payment, cancel or admin request answered busy"
                : !flat      ? "resident memory grew after warm-up"
                             : why);
        return 1;
    }
    return 0;
}
