/*
 * The engine's side of a cluster (rush/engine.h "Cluster roles"), without NATS: a fake replica
 * records what a leading shard ships and the test acknowledges it by hand. A reply waits for the
 * local fdatasync and the acknowledgement; a fenced leader answers what it held outcome_unknown
 * and then redirects; a follower applies shipped batches through apply and reaches the leader's
 * state; a drained leader answers what it holds, then follows.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>

#include "base/clock.h"
#include "rush/replicated.h"
#include "support.h"

#define BATCHES_MAX 4096

struct shipped {
    uint64_t lsn;
    int64_t time_ns;
    uint32_t count;
    struct rush_event *events;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct shipped batches[BATCHES_MAX];
static uint32_t batch_count;
static struct rush_engine *leader_engine; /* auto-acknowledged when `auto_ack` */
static _Atomic bool auto_ack;
static char dirs[2][64];

static void ship(void *context, uint32_t shard_index, uint64_t lsn, int64_t time_ns,
                 const struct rush_event *events, uint32_t count)
{
    (void)context;
    cr_assert_eq(shard_index, 0);
    pthread_mutex_lock(&lock);
    cr_assert_lt(batch_count, BATCHES_MAX);
    struct shipped *b = &batches[batch_count++];
    *b = (struct shipped){.lsn = lsn, .time_ns = time_ns, .count = count};
    b->events = malloc(sizeof(*events) * count);
    memcpy(b->events, events, sizeof(*events) * count);
    pthread_mutex_unlock(&lock);
    if (atomic_load(&auto_ack)) /* the ack may come before the fdatasync: both are awaited */
        rush_engine_replica_acked(leader_engine, 0, lsn);
}

static uint64_t last_shipped(void)
{
    pthread_mutex_lock(&lock);
    uint64_t lsn = batch_count ? batches[batch_count - 1].lsn : 0;
    pthread_mutex_unlock(&lock);
    return lsn;
}

static void setup(void)
{
    for (int i = 0; i < 2; i++) {
        snprintf(dirs[i], sizeof dirs[i], "/tmp/rush-replica-XXXXXX");
        cr_assert_not_null(mkdtemp(dirs[i]));
    }
    batch_count = 0;
    atomic_store(&auto_ack, true);
}

static void teardown(void)
{
    for (uint32_t i = 0; i < batch_count; i++)
        free(batches[i].events);
    for (int i = 0; i < 2; i++) {
        char command[192];
        snprintf(command, sizeof command, "rm -rf %s", dirs[i]);
        cr_assert_eq(system(command), 0);
    }
}

TestSuite(replica, .init = setup, .fini = teardown, .timeout = 60);

static struct rush_engine *open_engine(const char *dir)
{
    struct rush_engine_config config;
    rush_engine_config_default(&config, 1);
    config.limits = small_limits();
    config.ring_slots = 16;
    config.work_requests_max = 64;
    config.data_dir = dir;
    config.durability = RUSH_DURABILITY_REPLICATED;
    config.replica = (struct rush_engine_replica){.append = ship};
    struct rush_engine *engine = NULL;
    cr_assert_eq(rush_engine_create(&config, &engine), 0);
    cr_assert_eq(rush_engine_start(engine), 0);
    cr_assert_eq(rush_engine_role(engine, 0), RUSH_ROLE_FOLLOWER);
    return engine;
}

static int64_t in_seconds(int seconds)
{
    return rush_clock_monotonic_ns() + seconds * SECOND;
}

/* A leader with SKU 1 on it (auto-acknowledged). */
static struct rush_engine *open_leader(void)
{
    struct rush_engine *engine = leader_engine = open_engine(dirs[0]);
    rush_engine_lead(engine, 0, in_seconds(60));
    struct rush_result result;
    struct rush_sku sku = sku_solo(1, 100);
    cr_assert_eq(rush_engine_sku_put(engine, &sku, &result), 0);
    cr_assert_eq(result.outcome, RUSH_OK);
    return engine;
}

/* Submits one reserve; returns the batch (its storage is static). */
static struct rush_batch *submit_reserve(struct rush_engine *engine, uint64_t user)
{
    static struct rush_request request;
    static struct rush_result result;
    static struct rush_batch batch;
    request = request_of(RUSH_OP_RESERVE, 1, user, 1, 0, user);
    request.tag = user;
    batch = (struct rush_batch){.requests = &request, .results = &result, .count = 1};
    cr_assert_eq(rush_engine_submit(engine, &batch), 0);
    return &batch;
}

static struct rush_batch *poll_one(struct rush_engine *engine, int timeout_ms)
{
    struct rush_batch *done = NULL;
    int n = rush_engine_poll(engine, &done, 1, timeout_ms);
    cr_assert_geq(n, 0);
    return n == 1 ? done : NULL;
}

Test(replica, a_reply_waits_for_the_replica_acknowledgement)
{
    struct rush_engine *engine = open_leader();
    atomic_store(&auto_ack, false);
    struct rush_batch *batch = submit_reserve(engine, 7);
    /* Decided and fdatasync'ed locally well within this, but not acknowledged: not released. */
    cr_assert_null(poll_one(engine, 300));
    cr_assert_gt(last_shipped(), 0);
    rush_engine_replica_acked(engine, 0, last_shipped());
    cr_assert_eq(poll_one(engine, 5000), batch);
    cr_assert_eq(batch->status, 0);
    cr_assert_eq(batch->results[0].outcome, RUSH_OK);
    rush_engine_destroy(engine);
}

Test(replica, a_fenced_leader_answers_unknown_then_redirects)
{
    struct rush_engine *engine = open_leader();
    atomic_store(&auto_ack, false);
    struct rush_batch *batch = submit_reserve(engine, 8);
    cr_assert_null(poll_one(engine, 200));
    rush_engine_set_leader(engine, 0, 1);
    rush_engine_fence(engine, 0);
    cr_assert_eq(poll_one(engine, 5000), batch);
    cr_assert_eq(batch->status, RUSH_EFENCED);
    cr_assert_eq(batch->results[0].outcome, RUSH_OUTCOME_UNKNOWN);
    cr_assert_eq(batch->results[0].tag, 8);
    /* Its batch is not acknowledged: it stays fenced (its replicator would keep sending it). */
    cr_assert_eq(rush_engine_role(engine, 0), RUSH_ROLE_FENCED);
    batch = submit_reserve(engine, 9);
    cr_assert_eq(poll_one(engine, 5000), batch);
    struct rush_result *r = &batch->results[0];
    cr_assert_eq(r->outcome, RUSH_REDIRECT);
    cr_assert_eq(r->reason, RUSH_REASON_WRONG_SHARD);
    cr_assert_eq(r->state, 0);
    cr_assert_eq(r->qty, 1);
    cr_assert_eq(r->tag, 9);
    /* Acknowledged at last: its state is the log's again, and it follows. */
    rush_engine_replica_acked(engine, 0, last_shipped());
    int64_t deadline = rush_clock_monotonic_ms() + 5000;
    while (rush_engine_role(engine, 0) != RUSH_ROLE_FOLLOWER &&
           rush_clock_monotonic_ms() < deadline)
        (void)poll_one(engine, 10);
    cr_assert_eq(rush_engine_role(engine, 0), RUSH_ROLE_FOLLOWER);
    rush_engine_diverge(engine, 0); /* a follower does not diverge: only a leader's batch can */
    cr_assert_eq(rush_engine_role(engine, 0), RUSH_ROLE_FOLLOWER);
    rush_engine_destroy(engine);
}

Test(replica, a_lease_deadline_in_the_past_stops_the_leader)
{
    struct rush_engine *engine = open_leader();
    rush_engine_lease_renewed(engine, 0, rush_clock_monotonic_ns() - 1);
    struct rush_batch *batch = submit_reserve(engine, 10);
    cr_assert_eq(poll_one(engine, 5000), batch);
    cr_assert_eq(batch->results[0].outcome, RUSH_REDIRECT);
    cr_assert_eq(batch->results[0].qty, UINT32_MAX, "nobody named as leader yet");
    rush_engine_destroy(engine);
}

static void digest_of(struct rush_shard *shard, void *context)
{
    *(uint64_t *)context = rush_shard_digest(shard);
}

/*
 * Feeds the follower every batch the leader shipped so far (the first one twice with
 * `first_twice`: skipped as already held) and waits until it applied them.
 */
static void follow_all(struct rush_engine *follower, bool first_twice)
{
    pthread_mutex_lock(&lock);
    uint32_t count = batch_count;
    pthread_mutex_unlock(&lock);
    for (uint32_t i = 0; i < count; i++)
        for (int again = 0; again < (i == 0 && first_twice ? 2 : 1); again++)
            cr_assert_eq(rush_engine_follow(follower, 0, batches[i].lsn, batches[i].time_ns,
                                            batches[i].events, batches[i].count),
                         0);
    int64_t deadline = rush_clock_monotonic_ms() + 5000;
    while (rush_engine_applied_lsn(follower, 0) < batches[count - 1].lsn &&
           rush_clock_monotonic_ms() < deadline)
        (void)poll_one(follower, 10);
    cr_assert_eq(rush_engine_applied_lsn(follower, 0), batches[count - 1].lsn);
}

Test(replica, a_follower_applies_what_the_leader_shipped_and_reaches_its_state)
{
    struct rush_engine *leader = open_leader();
    for (uint64_t user = 100; user < 160; user++) {
        struct rush_batch *batch = submit_reserve(leader, user);
        cr_assert_eq(poll_one(leader, 5000), batch);
        cr_assert_eq(batch->results[0].outcome, RUSH_OK);
    }
    uint64_t leader_digest = 0, follower_digest = 1;
    rush_engine_inspect(leader, 0, digest_of, &leader_digest);
    struct rush_engine *follower = open_engine(dirs[1]);
    follow_all(follower, true);
    rush_engine_inspect(follower, 0, digest_of, &follower_digest);
    cr_assert_eq(follower_digest, leader_digest, "the standby's state is the leader's");
    rush_engine_destroy(follower);
    rush_engine_destroy(leader);
}

Test(replica, a_drained_leader_answers_what_it_holds_then_follows)
{
    struct rush_engine *engine = open_leader();
    atomic_store(&auto_ack, false);
    struct rush_batch *batch = submit_reserve(engine, 11);
    cr_assert_null(poll_one(engine, 200));
    rush_engine_drain(engine, 0);
    cr_assert_null(poll_one(engine, 200), "a drained request still waits for its ack");
    rush_engine_replica_acked(engine, 0, last_shipped());
    cr_assert_eq(poll_one(engine, 5000), batch);
    cr_assert_eq(batch->status, 0);
    cr_assert_eq(batch->results[0].outcome, RUSH_OK, "answered as decided, not unknown");
    int64_t deadline = rush_clock_monotonic_ms() + 5000;
    while (rush_engine_role(engine, 0) != RUSH_ROLE_FOLLOWER &&
           rush_clock_monotonic_ms() < deadline)
        (void)poll_one(engine, 10);
    cr_assert_eq(rush_engine_role(engine, 0), RUSH_ROLE_FOLLOWER);
    rush_engine_destroy(engine);
}

static void wait_role(struct rush_engine *engine, enum rush_shard_role role)
{
    int64_t deadline = rush_clock_monotonic_ms() + 5000;
    while (rush_engine_role(engine, 0) != role && rush_clock_monotonic_ms() < deadline)
        (void)poll_one(engine, 10);
    cr_assert_eq(rush_engine_role(engine, 0), role);
}

/*
 * A follower promoted with a deadline that passed before its thread saw it lead (a slow
 * promotion on a loaded machine) is fenced at once; it shipped nothing, so it follows again and
 * can lead later, instead of waiting for the acknowledgement of batches nobody ships.
 */
Test(replica, a_promotion_fenced_before_the_shard_saw_it_follows_again)
{
    struct rush_engine *leader = open_leader();
    for (uint64_t user = 200; user < 210; user++) {
        struct rush_batch *batch = submit_reserve(leader, user);
        cr_assert_eq(poll_one(leader, 5000), batch);
    }
    struct rush_engine *follower = open_engine(dirs[1]);
    follow_all(follower, false);
    rush_engine_lead(follower, 0, rush_clock_monotonic_ns() - 1);
    wait_role(follower, RUSH_ROLE_FOLLOWER);
    rush_engine_lead(follower, 0, in_seconds(60)); /* and leads when asked again */
    wait_role(follower, RUSH_ROLE_LEADER);
    leader_engine = follower;
    struct rush_batch *batch = submit_reserve(follower, 300);
    cr_assert_eq(poll_one(follower, 5000), batch);
    cr_assert_eq(batch->results[0].outcome, RUSH_OK);
    rush_engine_destroy(follower);
    rush_engine_destroy(leader);
}

/* The publisher's bound: a leader's batch is readable once JetStream acknowledged it, not when
 * it is only fdatasync'ed here; a follower's batches (from JetStream) once they are synced. */
Test(replica, the_publisher_reads_only_what_the_replica_acknowledged)
{
    struct rush_engine *engine = open_leader();
    int64_t deadline = rush_clock_monotonic_ms() + 5000;
    while (rush_engine_durable_lsn(engine, 0) < last_shipped() &&
           rush_clock_monotonic_ms() < deadline)
        (void)poll_one(engine, 10);
    uint64_t before = last_shipped();
    cr_assert_eq(rush_engine_durable_lsn(engine, 0), before, "the SKU's batch, acknowledged");
    atomic_store(&auto_ack, false);
    struct rush_batch *batch = submit_reserve(engine, 12);
    cr_assert_null(poll_one(engine, 300)); /* decided and synced here, not acknowledged */
    cr_assert_gt(last_shipped(), before);
    cr_assert_eq(rush_engine_durable_lsn(engine, 0), before, "an unacknowledged batch is hidden");
    rush_engine_replica_acked(engine, 0, last_shipped());
    cr_assert_eq(poll_one(engine, 5000), batch);
    cr_assert_eq(rush_engine_durable_lsn(engine, 0), last_shipped());
    struct rush_engine *follower = open_engine(dirs[1]);
    cr_assert_eq(rush_engine_durable_lsn(follower, 0), 0);
    follow_all(follower, false);
    deadline = rush_clock_monotonic_ms() + 5000;
    while (rush_engine_durable_lsn(follower, 0) < last_shipped() &&
           rush_clock_monotonic_ms() < deadline)
        (void)poll_one(follower, 10);
    cr_assert_eq(rush_engine_durable_lsn(follower, 0), last_shipped());
    rush_engine_destroy(follower);
    rush_engine_destroy(engine);
}

/* ---- the replicated log's records (proto/codec/replicated.c) ------------------------------ */

static size_t two_records(uint8_t *buf, uint64_t first_lsn)
{
    struct rush_event events[3] = {{.type = RUSH_EV_ORDER_RESERVED, .sku_id = 7, .qty = 1},
                                   {.type = RUSH_EV_ORDER_CONFIRMED, .sku_id = 7, .qty = 1},
                                   {.type = RUSH_EV_ORDER_RESERVED, .sku_id = 8, .qty = 2}};
    size_t at = rush_replicated_put(buf, first_lsn, 100, events, 2);
    return at + rush_replicated_put(buf + at, first_lsn + 1, 200, events + 2, 1);
}

Test(replicated, records_read_back_as_written)
{
    uint8_t buf[2 * sizeof(struct rush_replicated_record) + 3 * sizeof(struct rush_event)];
    size_t len = two_records(buf, 41);
    cr_assert_eq(len, sizeof buf);
    size_t at = 0;
    struct rush_replicated_view view;
    cr_assert_eq(rush_replicated_next(buf, len, &at, 0, &view), 1);
    cr_assert(view.lsn == 41 && view.time_ns == 100 && view.count == 2);
    struct rush_event event;
    memcpy(&event, (const char *)view.events + sizeof event, sizeof event);
    cr_assert_eq(event.type, RUSH_EV_ORDER_CONFIRMED);
    cr_assert_eq(rush_replicated_next(buf, len, &at, view.lsn, &view), 1);
    cr_assert(view.lsn == 42 && view.count == 1);
    cr_assert_eq(rush_replicated_next(buf, len, &at, view.lsn, &view), 0);
}

Test(replicated, a_fence_names_the_lsn_it_follows_and_holds_no_record)
{
    char value[RUSH_REPLICATED_FENCE_BYTES];
    cr_assert(rush_replicated_fence_put(value, sizeof value, "B", 42));
    cr_assert_str_eq(value, "B 42");
    cr_assert(!rush_replicated_fence_put(value, 4, "B", 42), "does not fit");
    uint64_t lsn = 7;
    cr_assert_eq(rush_replicated_fence_lsn("B 42", &lsn), 0);
    cr_assert_eq(lsn, 42);
    cr_assert_eq(rush_replicated_fence_lsn("node-1 0", &lsn), 0);
    cr_assert_eq(lsn, 0, "the fence of an empty log");
    const char *bad[] = {"", "B", "B ", " 42", "B 42 ", "B -1", "B 4x", "B 99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(rush_replicated_fence_lsn(bad[i], &lsn), RUSH_ECORRUPT, "'%s'", bad[i]);
    cr_assert_eq(rush_replicated_fence_lsn(NULL, &lsn), RUSH_ECORRUPT);

    /* The end a message leaves the log at: its last record's lsn, or the lsn a fence names. */
    uint8_t buf[2 * sizeof(struct rush_replicated_record) + 3 * sizeof(struct rush_event)];
    size_t len = two_records(buf, 41);
    cr_assert_eq(rush_replicated_end_lsn(buf, len, NULL, &lsn), 0);
    cr_assert_eq(lsn, 42);
    cr_assert_eq(rush_replicated_end_lsn(buf, 0, "B 42", &lsn), 0);
    cr_assert_eq(lsn, 42);
    cr_assert_eq(rush_replicated_end_lsn(buf, 0, NULL, &lsn), RUSH_ECORRUPT, "empty, no fence");
    cr_assert_eq(rush_replicated_end_lsn(buf, len, "B 42", &lsn), RUSH_ECORRUPT,
                 "a fence with records");
    cr_assert_eq(rush_replicated_end_lsn(buf, len - 1, NULL, &lsn), RUSH_ECORRUPT);
    size_t at = 0;
    struct rush_replicated_view view;
    cr_assert_eq(rush_replicated_next(buf, 0, &at, 42, &view), 0, "a fence's payload: no record");
}

Test(replicated, damaged_records_are_refused_without_reading_past_the_message)
{
    uint8_t buf[2 * sizeof(struct rush_replicated_record) + 3 * sizeof(struct rush_event)];
    size_t len = two_records(buf, 41);
    struct rush_replicated_view view;
    for (size_t cut = 1; cut < len; cut++) { /* a message cut anywhere inside a record */
        size_t at = 0;
        int rc = rush_replicated_next(buf, cut, &at, 0, &view);
        if (rc == 1)
            rc = rush_replicated_next(buf, cut, &at, view.lsn, &view);
        cr_assert_eq(rc, cut == rush_replicated_bytes(2) ? 0 : RUSH_ECORRUPT, "cut %zu", cut);
    }
    size_t at = 0;
    cr_assert_eq(rush_replicated_next(buf, len, &at, 41, &view), RUSH_ECORRUPT, "lsn must grow");
    cr_assert_eq(at, 0, "a refusal does not move on");
    buf[sizeof(struct rush_replicated_record) + 5] ^= 1; /* one bit of an event */
    cr_assert_eq(rush_replicated_next(buf, len, &at, 0, &view), RUSH_ECORRUPT);
    two_records(buf, 41);
    struct rush_replicated_record header;
    memcpy(&header, buf, sizeof header);
    header.count = 0;
    memcpy(buf, &header, sizeof header);
    cr_assert_eq(rush_replicated_next(buf, len, &at, 0, &view), RUSH_ECORRUPT, "no events");
    header.count = UINT32_MAX;
    memcpy(buf, &header, sizeof header);
    cr_assert_eq(rush_replicated_next(buf, len, &at, 0, &view), RUSH_ECORRUPT, "past the end");
}
