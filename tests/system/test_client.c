/*
 * The client library (include/rush/client.h): configuration checks, keys, and the batching core
 * against a fake rushd on inproc:// that answers, refuses, drops requests or swallows replies on
 * command, so batching, splitting, scattering, retries with the same keys, timeouts, async
 * callbacks and close can be checked without a server; then end to end against the real
 * build/bin/rushd as a child process (tests/system/rushd_child.h): every op and outcome over
 * ipc://, a hot SKU hammered by 8 threads over tcp:// (no oversell, fewer messages than requests),
 * a retry across SIGSTOP/SIGCONT that orders exactly once, and the installed library used through
 * pkg-config.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codec/json.h"
#include "rush/client.h"
#include "rush/wire.h"
#include "rushd_child.h"

/* ---- a fake rushd: a plain REP socket on its own thread ---- */

#define FAKE_KEYS_MAX 65536
#define FAKE_RECEIVE_TIMEOUT_MS 20

struct fake {
    char url[64];
    int socket;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool refuse;          /* answer every message with ERROR */
    atomic_uint drop_requests;   /* ignore the next N messages entirely */
    atomic_uint swallow_replies; /* decide the next N messages but send no reply */
    atomic_uint messages;        /* messages received */
    atomic_uint orders;          /* new keys decided */
    /* server thread only: key -> order id, linear (tests stay small) */
    rush_key *keys;
    uint64_t *order_ids;
    uint32_t key_count;
};

static uint64_t fake_decide(struct fake *fake, const rush_key *key, bool *duplicate)
{
    for (uint32_t i = 0; i < fake->key_count; i++) {
        if (memcmp(&fake->keys[i], key, sizeof *key) == 0) {
            *duplicate = true;
            return fake->order_ids[i];
        }
    }
    cr_assert_lt(fake->key_count, FAKE_KEYS_MAX);
    *duplicate = false;
    fake->keys[fake->key_count] = *key;
    fake->order_ids[fake->key_count] = (UINT64_C(1) << 56) + fake->key_count + 1;
    atomic_fetch_add(&fake->orders, 1);
    return fake->order_ids[fake->key_count++];
}

static void fake_answer(struct fake *fake, const struct rush_wire_view *view, void *out, size_t cap)
{
    static _Thread_local struct rush_request requests[RUSH_WIRE_REQUESTS_MAX];
    static _Thread_local struct rush_result results[RUSH_WIRE_REQUESTS_MAX];
    cr_assert_gt(rush_wire_view_copy(view, requests, sizeof requests), 0);
    for (uint32_t i = 0; i < view->count; i++) {
        bool duplicate = false;
        results[i] = (struct rush_result){.outcome = RUSH_OK, .tag = requests[i].tag};
        results[i].order_id = fake_decide(fake, &requests[i].key, &duplicate);
        results[i].flags = duplicate ? RUSH_RESULT_DUPLICATE : 0;
        results[i].qty = requests[i].qty;
        results[i].remaining = (int64_t)requests[i].sku_id;
    }
    int bytes = rush_wire_encode_results(out, cap, view->message_id, results, view->count);
    cr_assert_gt(bytes, 0);
    if (atomic_load(&fake->swallow_replies) > 0) {
        atomic_fetch_sub(&fake->swallow_replies, 1);
        return;
    }
    cr_assert_eq(nn_send(fake->socket, out, (size_t)bytes, 0), bytes);
}

static void fake_refuse(struct fake *fake, uint64_t message_id, void *out, size_t cap)
{
    struct rush_wire_error error;
    rush_wire_error_set(&error, RUSH_WIRE_E_REFUSED, RUSH_WIRE_NO_RECORD, "refused by fake");
    int bytes = rush_wire_encode_error(out, cap, message_id, &error);
    cr_assert_gt(bytes, 0);
    cr_assert_eq(nn_send(fake->socket, out, (size_t)bytes, 0), bytes);
}

static void *fake_main(void *arg)
{
    struct fake *fake = arg;
    static _Thread_local uint8_t out[RUSH_WIRE_MESSAGE_BYTES_MAX];
    while (!atomic_load(&fake->stop)) {
        void *buf = NULL;
        int len = nn_recv(fake->socket, &buf, NN_MSG, 0);
        if (len < 0)
            continue; /* receive timeout: look at stop again */
        atomic_fetch_add(&fake->messages, 1);
        struct rush_wire_view view;
        struct rush_wire_error error;
        int rc = rush_wire_decode(buf, (size_t)len, &view, &error);
        if (atomic_load(&fake->drop_requests) > 0) {
            atomic_fetch_sub(&fake->drop_requests, 1);
        } else if (rc < 0 || atomic_load(&fake->refuse)) {
            fake_refuse(fake, view.message_id, out, sizeof out);
        } else {
            fake_answer(fake, &view, out, sizeof out);
        }
        nn_freemsg(buf);
    }
    return NULL;
}

static struct fake *fake_start(void)
{
    static atomic_uint fake_seq;
    struct fake *fake = calloc(1, sizeof *fake);
    fake->keys = calloc(FAKE_KEYS_MAX, sizeof *fake->keys);
    fake->order_ids = calloc(FAKE_KEYS_MAX, sizeof *fake->order_ids);
    snprintf(fake->url, sizeof fake->url, "inproc://fake-%u-%u", (unsigned)getpid(),
             atomic_fetch_add(&fake_seq, 1));
    fake->socket = nn_socket(AF_SP, NN_REP);
    cr_assert_geq(fake->socket, 0);
    int timeout_ms = FAKE_RECEIVE_TIMEOUT_MS;
    cr_assert_eq(
        nn_setsockopt(fake->socket, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof timeout_ms), 0);
    int size_max = RUSH_WIRE_MESSAGE_BYTES_MAX;
    cr_assert_eq(
        nn_setsockopt(fake->socket, NN_SOL_SOCKET, NN_RCVMAXSIZE, &size_max, sizeof size_max), 0);
    cr_assert_geq(nn_bind(fake->socket, fake->url), 0);
    cr_assert_eq(pthread_create(&fake->thread, NULL, fake_main, fake), 0);
    return fake;
}

static void fake_stop(struct fake *fake)
{
    atomic_store(&fake->stop, true);
    pthread_join(fake->thread, NULL);
    nn_close(fake->socket);
    free(fake->keys);
    free(fake->order_ids);
    free(fake);
}

static struct rush_client *client_for(const char *url, uint32_t timeout_ms, uint32_t retries_max,
                                      uint32_t batch_delay_us, uint32_t batch_requests_max)
{
    struct rush_client_config config;
    rush_client_config_default(&config);
    config.url = url;
    config.timeout_ms = timeout_ms;
    config.retries_max = retries_max;
    config.batch_delay_us = batch_delay_us;
    config.batch_requests_max = batch_requests_max;
    struct rush_client *client = NULL;
    int rc = rush_client_open(&config, &client);
    cr_assert_eq(rc, 0, "open: %s (%s)", rush_strerror(rc), rush_client_last_error());
    return client;
}

static struct rush_request reserve(uint64_t sku, uint64_t user, uint64_t tag)
{
    struct rush_request request = {
        .op = RUSH_OP_RESERVE, .qty = 1, .sku_id = sku, .user_id = user, .tag = tag};
    char text[64];
    snprintf(text, sizeof text, "t-%llu-%llu-%llu", (unsigned long long)sku,
             (unsigned long long)user, (unsigned long long)tag);
    request.key = rush_client_key(text);
    return request;
}

/* ---- configuration ---- */

Test(client_config, defaults_pass_and_each_limit_is_checked)
{
    struct rush_client_config config;
    rush_client_config_default(&config);
    char why[128];
    cr_assert_eq(rush_client_config_check(&config, why, sizeof why), 0);
    cr_assert_str_empty(why);

    struct {
        size_t offset;
        uint32_t bad;
        const char *name;
    } cases[] = {
        {offsetof(struct rush_client_config, timeout_ms), 0, "timeout_ms 0"},
        {offsetof(struct rush_client_config, timeout_ms), RUSH_CLIENT_TIMEOUT_MS_MAX + 1,
         "timeout_ms"},
        {offsetof(struct rush_client_config, retries_max), RUSH_CLIENT_RETRIES_MAX + 1,
         "retries_max"},
        {offsetof(struct rush_client_config, batch_delay_us), RUSH_CLIENT_BATCH_DELAY_US_MAX + 1,
         "batch_delay_us"},
        {offsetof(struct rush_client_config, batch_requests_max), 0, "batch_requests_max 0"},
        {offsetof(struct rush_client_config, batch_requests_max), RUSH_WIRE_REQUESTS_MAX + 1,
         "batch_requests_max"},
        {offsetof(struct rush_client_config, inflight_max), 0, "inflight_max 0"},
        {offsetof(struct rush_client_config, inflight_max), RUSH_CLIENT_INFLIGHT_MAX + 1,
         "inflight_max"},
        {offsetof(struct rush_client_config, async_max), 0, "async_max 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rush_client_config bad = config;
        memcpy((char *)&bad + cases[i].offset, &cases[i].bad, sizeof(uint32_t));
        cr_assert_eq(rush_client_config_check(&bad, why, sizeof why), RUSH_ECONFIG, "%s",
                     cases[i].name);
        cr_assert(strstr(why, cases[i].name) != NULL, "'%s' names '%s'", why, cases[i].name);
    }
    /* the edges themselves pass */
    config.timeout_ms = RUSH_CLIENT_TIMEOUT_MS_MAX;
    config.retries_max = RUSH_CLIENT_RETRIES_MAX;
    config.batch_delay_us = 0;
    config.batch_requests_max = RUSH_WIRE_REQUESTS_MAX;
    config.inflight_max = 1;
    cr_assert_eq(rush_client_config_check(&config, NULL, 0), 0);
}

Test(client_config, url_is_required_and_bounded)
{
    struct rush_client_config config;
    rush_client_config_default(&config);
    char why[128];
    config.url = NULL;
    cr_assert_eq(rush_client_config_check(&config, why, sizeof why), RUSH_ECONFIG);
    cr_assert(strstr(why, "url") != NULL);
    config.url = "";
    cr_assert_eq(rush_client_config_check(&config, why, sizeof why), RUSH_ECONFIG);
    char long_url[RUSH_CLIENT_URL_BYTES_MAX + 8];
    memset(long_url, 'a', sizeof long_url - 1);
    long_url[sizeof long_url - 1] = '\0';
    config.url = long_url;
    cr_assert_eq(rush_client_config_check(&config, why, sizeof why), RUSH_ECONFIG);
}

Test(client_config, open_refuses_a_bad_config_and_a_bad_url)
{
    struct rush_client_config config;
    rush_client_config_default(&config);
    config.timeout_ms = 0;
    struct rush_client *client = (struct rush_client *)1;
    cr_assert_eq(rush_client_open(&config, &client), RUSH_ECONFIG);
    cr_assert_null(client);
    cr_assert(strstr(rush_client_last_error(), "timeout_ms") != NULL);

    rush_client_config_default(&config);
    config.url = "nonsense://where";
    int rc = rush_client_open(&config, &client);
    cr_assert_lt(rc, 0);
    cr_assert_null(client);
    cr_assert(strstr(rush_client_last_error(), "nonsense://where") != NULL, "%s",
              rush_client_last_error());
}

/* ---- keys ---- */

Test(client_key, text_keys_match_the_json_form)
{
    const char *texts[] = {"k-42",   "gw7-000123",
                           "x",      "0x0123456789abcdef0123456789ABCDEF",
                           "0x0123", "0xzz23456789abcdef0123456789abcdef"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"op\":\"reserve\",\"sku\":1,\"user\":2,\"qty\":1,\"key\":\"%s\"}", texts[i]);
        struct rush_request request;
        char why[RUSH_JSON_WHY_BYTES];
        cr_assert_eq(rush_json_decode_request(json, strlen(json), &request, why, sizeof why), 0,
                     "%s", why);
        rush_key key = rush_client_key(texts[i]);
        cr_assert_arr_eq(key.bytes, request.key.bytes, 16, "key of '%s'", texts[i]);
    }
    rush_key literal = rush_client_key("0x000102030405060708090a0b0c0d0e0f");
    for (int i = 0; i < 16; i++)
        cr_assert_eq(literal.bytes[i], i);
    rush_key a = rush_client_key("k-1"), b = rush_client_key("k-2"), c = rush_client_key("k-1");
    cr_assert_arr_neq(a.bytes, b.bytes, 16);
    cr_assert_arr_eq(a.bytes, c.bytes, 16);
}

Test(client_key, random_keys_are_nonzero_and_differ)
{
    static const rush_key zero;
    rush_key keys[64];
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(rush_client_key_random(&keys[i]), 0);
        cr_assert_arr_neq(keys[i].bytes, zero.bytes, 16);
        for (int j = 0; j < i; j++)
            cr_assert_arr_neq(keys[i].bytes, keys[j].bytes, 16);
    }
}

/* ---- submitting to the fake ---- */

Test(client_submit, refuses_bad_arguments_without_sending)
{
    struct fake *fake = fake_start();
    struct rush_client *client = client_for(fake->url, 1000, 0, 0, 64);
    struct rush_request request = reserve(1, 2, 3);
    struct rush_result result;
    cr_assert_eq(rush_client_submit(client, &request, 0, &result), -EINVAL);
    cr_assert_eq(rush_client_submit(client, NULL, 1, &result), -EINVAL);
    cr_assert_eq(rush_client_submit(client, &request, 1, NULL), -EINVAL);
    cr_assert_eq(rush_client_submit(client, &request, RUSH_WIRE_REQUESTS_MAX + 1, &result),
                 -EINVAL);
    request.flags = 1;
    cr_assert_eq(rush_client_submit(client, &request, 1, &result), -EINVAL);
    cr_assert(strstr(rush_client_last_error(), "request 0") != NULL);
    request.flags = 0;
    request.pad = 7;
    cr_assert_eq(rush_client_submit(client, &request, 1, &result), -EINVAL);
    struct rush_client_stats stats;
    rush_client_stats(client, &stats);
    cr_assert_eq(stats.messages_sent, 0);
    cr_assert_eq(stats.submits, 0);
    rush_client_close(client);
    fake_stop(fake);
}

Test(client_submit, results_come_back_in_request_order)
{
    struct fake *fake = fake_start();
    struct rush_client *client = client_for(fake->url, 2000, 0, 0, 64);
    struct rush_request requests[5];
    struct rush_result results[5];
    for (uint64_t i = 0; i < 5; i++)
        requests[i] = reserve(100 + i, 7, i + 1);
    cr_assert_eq(rush_client_submit(client, requests, 5, results), 0);
    for (uint64_t i = 0; i < 5; i++) {
        cr_assert_eq(results[i].outcome, RUSH_OK);
        cr_assert_eq(results[i].tag, i + 1);
        cr_assert_eq(results[i].remaining, (int64_t)(100 + i));
        cr_assert_eq(results[i].flags, 0);
    }
    /* the same keys again: answered as duplicates with the same orders */
    struct rush_result again[5];
    cr_assert_eq(rush_client_submit(client, requests, 5, again), 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(again[i].flags, RUSH_RESULT_DUPLICATE);
        cr_assert_eq(again[i].order_id, results[i].order_id);
    }
    struct rush_client_stats stats;
    rush_client_stats(client, &stats);
    cr_assert_eq(stats.messages_sent, 2);
    cr_assert_eq(stats.requests_sent, 10);
    cr_assert_eq(stats.replies, 2);
    rush_client_close(client);
    fake_stop(fake);
}

Test(client_submit, a_large_submit_is_split_over_messages)
{
    struct fake *fake = fake_start();
    struct rush_client *client = client_for(fake->url, 5000, 0, 0, 1000);
    enum { N = 2500 };
    static struct rush_request requests[N];
    static struct rush_result results[N];
    for (uint64_t i = 0; i < N; i++)
        requests[i] = reserve(1, i + 1, i + 1);
    cr_assert_eq(rush_client_submit(client, requests, N, results), 0);
    for (uint64_t i = 0; i < N; i++)
        cr_assert_eq(results[i].tag, i + 1);
    struct rush_client_stats stats;
    rush_client_stats(client, &stats);
    cr_assert_eq(stats.messages_sent, 3);
    cr_assert_eq(stats.batch_requests_max_seen, 1000);
    rush_client_close(client);
    fake_stop(fake);
}

#define THREADS 8
#define SUBMITS_PER_THREAD 300

struct worker {
    struct rush_client *client;
    uint32_t index;
    uint32_t failures;
};

static void *worker_main(void *arg)
{
    struct worker *worker = arg;
    for (uint32_t i = 0; i < SUBMITS_PER_THREAD; i++) {
        uint64_t tag = (uint64_t)worker->index * 1000000 + i + 1;
        struct rush_request request = reserve(5, tag, tag);
        struct rush_result result;
        int rc = rush_client_submit(worker->client, &request, 1, &result);
        if (rc != 0 || result.tag != tag || result.outcome != RUSH_OK)
            worker->failures++;
    }
    return NULL;
}

Test(client_submit, concurrent_submits_share_messages)
{
    struct fake *fake = fake_start();
    struct rush_client *client = client_for(fake->url, 5000, 0, 2000, 256);
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (uint32_t t = 0; t < THREADS; t++) {
        workers[t] = (struct worker){.client = client, .index = t};
        cr_assert_eq(pthread_create(&threads[t], NULL, worker_main, &workers[t]), 0);
    }
    for (uint32_t t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        cr_assert_eq(workers[t].failures, 0, "thread %u", t);
    }
    struct rush_client_stats stats;
    rush_client_stats(client, &stats);
    cr_assert_eq(stats.submits, THREADS * SUBMITS_PER_THREAD);
    cr_assert_eq(stats.requests_sent, THREADS * SUBMITS_PER_THREAD);
    cr_assert_lt(stats.messages_sent, stats.requests_sent, "%llu messages for %llu requests",
                 (unsigned long long)stats.messages_sent, (unsigned long long)stats.requests_sent);
    cr_assert_gt(stats.batch_requests_max_seen, 1);
    cr_assert_eq(atomic_load(&fake->orders), THREADS * SUBMITS_PER_THREAD);
    rush_client_close(client);
    fake_stop(fake);
}

/* ---- failures ---- */

Test(client_submit, an_error_reply_is_eproto_with_the_server_text)
{
    struct fake *fake = fake_start();
    atomic_store(&fake->refuse, true);
    struct rush_client *client = client_for(fake->url, 2000, 0, 0, 64);
    struct rush_request request = reserve(1, 1, 1);
    struct rush_result result;
    cr_assert_eq(rush_client_submit(client, &request, 1, &result), RUSH_EPROTO);
    cr_assert_str_eq(rush_client_last_error(), "refused by fake");
    struct rush_client_stats stats;
    rush_client_stats(client, &stats);
    cr_assert_eq(stats.errors, 1);
    rush_client_close(client);
    fake_stop(fake);
}

Test(client_retry, a_lost_request_is_resent_and_decided_once)
{
    struct fake *fake = fake_start();
    atomic_store(&fake->drop_requests, 1);
    struct rush_client *client = client_for(fake->url, 100, 3, 0, 64);
    struct rush_request request = reserve(1, 1, 1);
    struct rush_result result;
    cr_assert_eq(rush_client_submit(client, &request, 1, &result), 0);
    cr_assert_eq(result.outcome, RUSH_OK);
    cr_assert_eq(result.flags, 0);
    struct rush_client_stats stats;
    rush_client_stats(client, &stats);
    cr_assert_eq(stats.retries, 1);
    cr_assert_eq(stats.messages_sent, 1);
    cr_assert_eq(atomic_load(&fake->messages), 2);
    cr_assert_eq(atomic_load(&fake->orders), 1);
    rush_client_close(client);
    fake_stop(fake);
}

Test(client_retry, a_lost_reply_is_answered_by_the_original_decision)
{
    struct fake *fake = fake_start();
    atomic_store(&fake->swallow_replies, 2);
    struct rush_client *client = client_for(fake->url, 100, 3, 0, 64);
    struct rush_request request = reserve(1, 1, 1);
    struct rush_result result;
    cr_assert_eq(rush_client_submit(client, &request, 1, &result), 0);
    cr_assert_eq(result.flags, RUSH_RESULT_DUPLICATE, "answered from the key table");
    cr_assert_eq(result.order_id, (UINT64_C(1) << 56) + 1);
    cr_assert_eq(atomic_load(&fake->orders), 1, "decided once");
    struct rush_client_stats stats;
    rush_client_stats(client, &stats);
    cr_assert_eq(stats.retries, 2);
    rush_client_close(client);
    fake_stop(fake);
}

Test(client_retry, no_reply_after_retries_max_is_etimedout)
{
    struct fake *fake = fake_start();
    atomic_store(&fake->drop_requests, 1000);
    struct rush_client *client = client_for(fake->url, 50, 2, 0, 64);
    struct rush_request request = reserve(1, 1, 1);
    struct rush_result result;
    cr_assert_eq(rush_client_submit(client, &request, 1, &result), RUSH_ETIMEDOUT);
    cr_assert(strstr(rush_client_last_error(), "3 attempts") != NULL, "%s",
              rush_client_last_error());
    struct rush_client_stats stats;
    rush_client_stats(client, &stats);
    cr_assert_eq(stats.retries, 2);
    cr_assert_eq(stats.timeouts, 1);
    cr_assert_eq(atomic_load(&fake->messages), 3);
    rush_client_close(client);
    fake_stop(fake);
}

Test(client_retry, no_server_at_all_is_etimedout)
{
    struct rush_client *client = client_for("inproc://nobody-listens-here", 30, 1, 0, 64);
    struct rush_request request = reserve(1, 1, 1);
    struct rush_result result;
    cr_assert_eq(rush_client_submit(client, &request, 1, &result), RUSH_ETIMEDOUT);
    rush_client_close(client);
}

/* ---- async ---- */

struct async_state {
    atomic_uint calls;
    atomic_uint failures;
    atomic_int last_status;
    struct rush_client *client;
    int nested_rc;
};

static void async_done(void *context, int status, struct rush_result *results, uint32_t count)
{
    struct async_state *state = context;
    atomic_store(&state->last_status, status);
    if (status != 0 || count != 1 || results[0].outcome != RUSH_OK)
        atomic_fetch_add(&state->failures, 1);
    atomic_fetch_add(&state->calls, 1);
}

static void wait_calls(struct async_state *state, unsigned calls)
{
    for (int i = 0; i < 5000 && atomic_load(&state->calls) < calls; i++)
        usleep(1000);
    cr_assert_eq(atomic_load(&state->calls), calls);
}

Test(client_async, callbacks_run_once_each)
{
    struct fake *fake = fake_start();
    struct rush_client *client = client_for(fake->url, 2000, 0, 500, 64);
    enum { N = 200 };
    static struct rush_request requests[N];
    static struct rush_result results[N];
    struct async_state state = {0};
    for (uint64_t i = 0; i < N; i++) {
        requests[i] = reserve(9, i + 1, i + 1);
        cr_assert_eq(
            rush_client_submit_async(client, &requests[i], 1, &results[i], async_done, &state), 0);
    }
    wait_calls(&state, N);
    cr_assert_eq(atomic_load(&state.failures), 0);
    for (uint64_t i = 0; i < N; i++)
        cr_assert_eq(results[i].tag, i + 1);
    struct rush_client_stats stats;
    rush_client_stats(client, &stats);
    cr_assert_lt(stats.messages_sent, N);
    rush_client_close(client);
    fake_stop(fake);
}

Test(client_async, a_full_pool_is_efull_and_close_answers_estopped)
{
    struct fake *fake = fake_start();
    atomic_store(&fake->drop_requests, 1000);
    struct rush_client_config config;
    rush_client_config_default(&config);
    config.url = fake->url;
    config.timeout_ms = 60000;
    config.async_max = 1;
    struct rush_client *client = NULL;
    cr_assert_eq(rush_client_open(&config, &client), 0);
    struct rush_request request = reserve(1, 1, 1);
    struct rush_result results[2];
    struct async_state state = {0};
    cr_assert_eq(rush_client_submit_async(client, &request, 1, &results[0], async_done, &state), 0);
    cr_assert_eq(rush_client_submit_async(client, &request, 1, &results[1], async_done, &state),
                 RUSH_EFULL);
    rush_client_close(client);
    cr_assert_eq(atomic_load(&state.calls), 1);
    cr_assert_eq(atomic_load(&state.last_status), RUSH_ESTOPPED);
    fake_stop(fake);
}

static void nested_submit(void *context, int status, struct rush_result *results, uint32_t count)
{
    struct async_state *state = context;
    (void)status;
    (void)count;
    struct rush_request request = reserve(1, 2, 2);
    state->nested_rc = rush_client_submit(state->client, &request, 1, results);
    atomic_fetch_add(&state->calls, 1);
}

Test(client_async, a_sync_submit_from_a_callback_is_edeadlk)
{
    struct fake *fake = fake_start();
    struct rush_client *client = client_for(fake->url, 2000, 0, 0, 64);
    struct async_state state = {.client = client};
    struct rush_request request = reserve(1, 1, 1);
    struct rush_result result;
    cr_assert_eq(rush_client_submit_async(client, &request, 1, &result, nested_submit, &state), 0);
    wait_calls(&state, 1);
    cr_assert_eq(state.nested_rc, -EDEADLK);
    rush_client_close(client);
    fake_stop(fake);
}

/* ---- end to end against the real rushd ---- */

TestSuite(client_rushd, .fini = rushd_cleanup, .timeout = 120);

static struct rush_result one(struct rush_client *client, struct rush_request request)
{
    static uint64_t key_seq;
    static const rush_key zero;
    bool query = request.op == RUSH_OP_QUERY_ORDER || request.op == RUSH_OP_QUERY_GROUP ||
                 request.op == RUSH_OP_QUERY_SKU;
    if (!query && memcmp(&request.key, &zero, sizeof zero) == 0) {
        char text[48];
        snprintf(text, sizeof text, "e2e-%d-%llu", (int)getpid(), (unsigned long long)++key_seq);
        request.key = rush_client_key(text);
    }
    request.tag = ++key_seq;
    struct rush_result result;
    int rc = rush_client_submit(client, &request, 1, &result);
    cr_assert_eq(rc, 0, "%s: %s", rush_strerror(rc), rush_client_last_error());
    cr_assert_eq(result.tag, request.tag);
    return result;
}

#define OUTCOME(result, expected)                                                                  \
    cr_assert_eq((result).outcome, (expected), "outcome %s, expected %s",                          \
                 rush_outcome_name((enum rush_outcome)(result).outcome),                           \
                 rush_outcome_name(expected))

static struct rush_request op_sku(uint8_t op, uint64_t sku, uint64_t user, uint32_t qty)
{
    return (struct rush_request){.op = op, .sku_id = sku, .user_id = user, .qty = qty};
}

static struct rush_request op_target(uint8_t op, uint64_t target, uint64_t user)
{
    return (struct rush_request){.op = op, .target_id = target, .user_id = user};
}

static void every_order_op(struct rush_client *client)
{
    struct rush_request first = op_sku(RUSH_OP_RESERVE, 1001, 1, 1);
    first.key = rush_client_key("e2e-first");
    struct rush_result r1 = one(client, first);
    OUTCOME(r1, RUSH_OK);
    cr_assert_eq(r1.remaining, 1);
    struct rush_result again = one(client, first);
    OUTCOME(again, RUSH_OK);
    cr_assert_eq(again.flags & RUSH_RESULT_DUPLICATE, RUSH_RESULT_DUPLICATE);
    cr_assert_eq(again.order_id, r1.order_id);
    struct rush_request reused = op_sku(RUSH_OP_RESERVE, 1001, 9, 1);
    reused.key = first.key;
    struct rush_result bad_key = one(client, reused);
    OUTCOME(bad_key, RUSH_INVALID);
    cr_assert_eq(bad_key.reason, RUSH_REASON_KEY_REUSED);
    OUTCOME(one(client, op_sku(RUSH_OP_RESERVE, 1001, 1, 1)), RUSH_LIMIT_EXCEEDED);
    struct rush_result r2 = one(client, op_sku(RUSH_OP_RESERVE, 1001, 2, 1));
    OUTCOME(r2, RUSH_OK);
    OUTCOME(one(client, op_sku(RUSH_OP_RESERVE, 1001, 3, 1)), RUSH_SOLD_OUT);
    OUTCOME(one(client, op_target(RUSH_OP_CONFIRM, r1.order_id, 0)), RUSH_OK);
    OUTCOME(one(client, op_target(RUSH_OP_CANCEL, r2.order_id, 0)), RUSH_OK);
    struct rush_result twice = one(client, op_target(RUSH_OP_CANCEL, r2.order_id, 0));
    OUTCOME(twice, RUSH_INVALID);
    cr_assert_eq(twice.reason, RUSH_REASON_ORDER_STATE);
    OUTCOME(one(client, op_target(RUSH_OP_CONFIRM, r2.order_id, 0)), RUSH_EXPIRED);
    OUTCOME(one(client, op_target(RUSH_OP_CONFIRM, r1.order_id | 0xfffff, 0)), RUSH_UNKNOWN_ORDER);
    struct rush_result order = one(client, op_target(RUSH_OP_QUERY_ORDER, r1.order_id, 0));
    OUTCOME(order, RUSH_OK);
    cr_assert_eq(order.state, RUSH_ORDER_CONFIRMED);
    struct rush_result sku = one(client, op_sku(RUSH_OP_QUERY_SKU, 1001, 0, 0));
    OUTCOME(sku, RUSH_OK);
    cr_assert_eq(sku.remaining, 1);
    cr_assert_eq(sku.confirmed, 1);
    cr_assert_eq(sku.reserved, 0);
}

static void every_refusal(struct rush_client *client)
{
    OUTCOME(one(client, op_sku(RUSH_OP_RESERVE, 9999, 1, 1)), RUSH_UNKNOWN_SKU);
    OUTCOME(one(client, op_sku(RUSH_OP_RESERVE, 5001, 1, 1)), RUSH_NOT_STARTED);
    OUTCOME(one(client, op_sku(RUSH_OP_RESERVE, 5002, 1, 1)), RUSH_ENDED);
    OUTCOME(one(client, op_sku(RUSH_OP_RESERVE, 5003, 1, 1)), RUSH_PAUSED);
    struct rush_result qty = one(client, op_sku(RUSH_OP_RESERVE, 1002, 1, 0));
    OUTCOME(qty, RUSH_INVALID);
    cr_assert_eq(qty.reason, RUSH_REASON_QTY);
    struct rush_result unlimited = one(client, op_sku(RUSH_OP_RESERVE, 3001, 1, 1));
    OUTCOME(unlimited, RUSH_OK);
    cr_assert(unlimited.flags & RUSH_RESULT_UNLIMITED);
    struct rush_result group_sku = one(client, op_sku(RUSH_OP_RESERVE, 4001, 1, 1));
    OUTCOME(group_sku, RUSH_INVALID);
    cr_assert_eq(group_sku.reason, RUSH_REASON_GROUP_SKU);
}

static void every_group_op(struct rush_client *client)
{
    struct rush_result open = one(client, op_sku(RUSH_OP_GROUP_OPEN, 4001, 10, 0));
    OUTCOME(open, RUSH_OK);
    cr_assert_neq(open.group_id, 0);
    OUTCOME(one(client, op_target(RUSH_OP_GROUP_JOIN, open.group_id, 10)), RUSH_ALREADY_IN_GROUP);
    OUTCOME(one(client, op_target(RUSH_OP_GROUP_JOIN, open.group_id, 11)), RUSH_OK);
    OUTCOME(one(client, op_target(RUSH_OP_GROUP_JOIN, open.group_id, 12)), RUSH_GROUP_CLOSED);
    struct rush_result group = one(client, op_target(RUSH_OP_QUERY_GROUP, open.group_id, 0));
    OUTCOME(group, RUSH_OK);
    cr_assert_eq(group.state, RUSH_GROUP_COMPLETED);
    struct rush_result any = one(client, op_sku(RUSH_OP_GROUP_JOIN_ANY, 4001, 13, 0));
    OUTCOME(any, RUSH_OK);
    cr_assert_neq(any.group_id, open.group_id);
    OUTCOME(one(client, op_target(RUSH_OP_QUERY_GROUP, open.group_id ^ 0xffff, 0)),
            RUSH_UNKNOWN_GROUP);
    struct rush_result not_group = one(client, op_sku(RUSH_OP_GROUP_OPEN, 1002, 1, 0));
    OUTCOME(not_group, RUSH_INVALID);
    cr_assert_eq(not_group.reason, RUSH_REASON_NOT_GROUP_SKU);
}

Test(client_rushd, every_op_and_outcome_over_ipc)
{
    rushd_start(false);
    struct rush_client *client = client_for(rushd.orders, 3000, 2, 0, 64);
    every_order_op(client);
    every_refusal(client);
    every_group_op(client);
    /* admin ops are refused on the orders endpoint: an ERROR reply, RUSH_EPROTO with its text */
    struct rush_request pause = op_sku(RUSH_OP_PAUSE, 1002, 0, 0);
    pause.key = rush_client_key("e2e-pause");
    struct rush_result result;
    cr_assert_eq(rush_client_submit(client, &pause, 1, &result), RUSH_EPROTO);
    cr_assert_str_neq(rush_client_last_error(), "");
    /* and the connection carries on */
    OUTCOME(one(client, op_sku(RUSH_OP_QUERY_SKU, 1002, 0, 0)), RUSH_OK);
    rush_client_close(client);
}

#define HOT_THREADS 8
#define HOT_REQUESTS_PER_THREAD 1000
#define HOT_STOCK 50

struct hot_worker {
    struct rush_client *client;
    uint32_t index;
    uint32_t ok, sold_out, other, errors;
};

static void *hot_main(void *arg)
{
    struct hot_worker *w = arg;
    for (uint32_t i = 0; i < HOT_REQUESTS_PER_THREAD; i++) {
        uint64_t user = 100000 + (uint64_t)w->index * HOT_REQUESTS_PER_THREAD + i;
        struct rush_request request = reserve(1005, user, user);
        struct rush_result result;
        if (rush_client_submit(w->client, &request, 1, &result) != 0)
            w->errors++;
        else if (result.outcome == RUSH_OK)
            w->ok++;
        else if (result.outcome == RUSH_SOLD_OUT)
            w->sold_out++;
        else
            w->other++;
    }
    return NULL;
}

Test(client_rushd, eight_threads_on_a_hot_sku_over_tcp)
{
    rushd_start(true);
    struct rush_client *client = client_for(rushd.orders, 2000, 5, 1000, 512);
    pthread_t threads[HOT_THREADS];
    struct hot_worker workers[HOT_THREADS];
    for (uint32_t t = 0; t < HOT_THREADS; t++) {
        workers[t] = (struct hot_worker){.client = client, .index = t};
        cr_assert_eq(pthread_create(&threads[t], NULL, hot_main, &workers[t]), 0);
    }
    uint32_t ok = 0, sold_out = 0, other = 0, errors = 0;
    for (uint32_t t = 0; t < HOT_THREADS; t++) {
        pthread_join(threads[t], NULL);
        ok += workers[t].ok;
        sold_out += workers[t].sold_out;
        other += workers[t].other;
        errors += workers[t].errors;
    }
    cr_assert_eq(errors, 0);
    cr_assert_eq(other, 0);
    cr_assert_eq(ok, HOT_STOCK, "no oversell: %u orders for a stock of %d", ok, HOT_STOCK);
    cr_assert_eq(sold_out, HOT_THREADS * HOT_REQUESTS_PER_THREAD - HOT_STOCK);
    struct rush_result sku = one(client, op_sku(RUSH_OP_QUERY_SKU, 1005, 0, 0));
    cr_assert_eq(sku.remaining, 0);
    cr_assert_eq(sku.reserved, HOT_STOCK);
    struct rush_client_stats stats;
    rush_client_stats(client, &stats);
    cr_assert_lt(stats.messages_sent, stats.requests_sent);
    fprintf(stderr,
            "hot sku: %u requests in %llu messages (at most %llu per message), %llu retries, "
            "%llu stale replies\n",
            HOT_THREADS * HOT_REQUESTS_PER_THREAD, (unsigned long long)stats.messages_sent,
            (unsigned long long)stats.batch_requests_max_seen, (unsigned long long)stats.retries,
            (unsigned long long)stats.replies_stale);
    rush_client_close(client);
}

struct stopped_call {
    struct rush_client *client;
    struct rush_request request;
    struct rush_result result;
    int rc;
};

static void *stopped_main(void *arg)
{
    struct stopped_call *call = arg;
    call->rc = rush_client_submit(call->client, &call->request, 1, &call->result);
    return NULL;
}

Test(client_rushd, a_retry_across_sigstop_orders_exactly_once)
{
    rushd_start(false);
    struct rush_client *client = client_for(rushd.orders, 200, 20, 0, 64);
    struct stopped_call call = {.client = client, .request = reserve(1002, 77, 1)};
    call.request.qty = 2;
    cr_assert_eq(kill(rushd.pid, SIGSTOP), 0);
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, stopped_main, &call), 0);
    /* Each 200 ms timeout resends the request with the same key: wait until two resends. */
    struct rush_client_stats stats = {0};
    int64_t deadline = rush_clock_monotonic_ms() + CHILD_READY_MS;
    for (rush_client_stats(client, &stats);
         stats.retries < 2 && rush_clock_monotonic_ms() < deadline;
         rush_client_stats(client, &stats))
        child_sleep_ms(CHILD_POLL_MS);
    cr_assert_geq(stats.retries, 2);
    cr_assert_eq(kill(rushd.pid, SIGCONT), 0);
    pthread_join(thread, NULL);
    cr_assert_eq(call.rc, 0, "%s: %s", rush_strerror(call.rc), rush_client_last_error());
    OUTCOME(call.result, RUSH_OK);
    struct rush_result sku = one(client, op_sku(RUSH_OP_QUERY_SKU, 1002, 0, 0));
    cr_assert_eq(sku.reserved, 2, "exactly one order of 2 units, not one per attempt");
    cr_assert_eq(sku.remaining, 98);
    struct rush_result order = one(client, op_target(RUSH_OP_QUERY_ORDER, call.result.order_id, 0));
    OUTCOME(order, RUSH_OK);
    cr_assert_eq(order.qty, 2);
    rush_client_close(client);
}

/* ---- the installed library, through pkg-config ---- */

static const char *const pkg_program =
    "#include <rush/client.h>\n#include <stdio.h>\n#include <string.h>\n"
    "int main(void) {\n"
    "    struct rush_client_config config;\n"
    "    rush_client_config_default(&config);\n"
    "    config.url = \"inproc://nobody\";\n"
    "    config.timeout_ms = 20;\n"
    "    config.retries_max = 0;\n"
    "    struct rush_client *client;\n"
    "    if (rush_client_open(&config, &client) != 0) return 1;\n"
    "    struct rush_request request = {.op = RUSH_OP_QUERY_SKU, .sku_id = 1};\n"
    "    struct rush_result result;\n"
    "    int rc = rush_client_submit(client, &request, 1, &result);\n"
    "    rush_client_close(client);\n"
    "    rush_key key = rush_client_key(\"0x000102030405060708090a0b0c0d0e0f\");\n"
    "    printf(\"%s %d\\n\", rush_strerror(rc), key.bytes[15]);\n"
    "    return rc == RUSH_ETIMEDOUT ? 0 : 2;\n"
    "}\n";

static int run(const char *command)
{
    int status = system(command);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(client_install, pkg_config_compiles_and_links_a_program, .fini = rushd_cleanup, .timeout = 120)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    cr_skip_test("librush is built with a sanitizer here; a plain cc program cannot link it");
#endif
    char bin[CHILD_PATH_BYTES];
    child_bin_dir(bin, sizeof bin);
    snprintf(rushd.dir, sizeof rushd.dir, "/tmp/rush-test-install-XXXXXX");
    cr_assert(mkdtemp(rushd.dir) != NULL);
    char command[4 * CHILD_PATH_BYTES];
    snprintf(command, sizeof command, "cmake --install '%s/..' --prefix '%s/prefix' >'%s/log' 2>&1",
             bin, rushd.dir, rushd.dir);
    cr_assert_eq(run(command), 0, "%s", command);
    snprintf(command, sizeof command, "%s/main.c", rushd.dir);
    FILE *file = fopen(command, "w");
    cr_assert(file != NULL);
    fputs(pkg_program, file);
    fclose(file);
    snprintf(command, sizeof command,
             "cd '%s' && export PKG_CONFIG_PATH=\"$(dirname $(find prefix -name rush.pc))\" && "
             "cc -std=c17 -Wall -Werror main.c $(pkg-config --cflags --libs rush) -o main >>log "
             "2>&1 && LD_LIBRARY_PATH=\"$(dirname $(find prefix -name 'librush.so'))\" ./main "
             ">out 2>>log && grep -qx 'timed out 15' out",
             rushd.dir);
    int rc = run(command);
    if (rc != 0) {
        snprintf(command, sizeof command, "cat '%s/log' '%s/out' >&2", rushd.dir, rushd.dir);
        run(command);
    }
    cr_assert_eq(rc, 0);
    /* The package is consistent: the server's programs, no header of a library it lacks, and
     * nothing of librush's internals (rush__*) exported. */
    snprintf(
        command, sizeof command,
        "cd '%s/prefix' && test -x bin/rushd && test -x bin/rushctl && test -x bin/rush-wal && "
        "test ! -e include/rush/engine.h && "
        "! nm -D --defined-only $(find . -name 'librush.so') | grep -q ' rush__'",
        rushd.dir);
    cr_assert_eq(run(command), 0, "%s", command);
}
