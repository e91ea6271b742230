/*
 * The client library (include/rush/client.h): configuration checks, keys, and the batching core
 * against a fake rushd on inproc:// that answers, refuses, drops requests or swallows replies on
 * command, so batching, splitting, scattering, retries with the same keys, timeouts, async
 * callbacks and close can be checked without a server. The end-to-end tests against a real
 * rushd are in test_client_e2e.c.
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

#include "json.h"
#include "rush/client.h"
#include "rush/wire.h"

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
