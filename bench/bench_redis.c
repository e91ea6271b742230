/*
 * bench_redis — the usual seckill stack (Redis + a Lua script) under rush's midnight load.
 *
 * What it is for. bench/side_by_side.sh compares rush end to end with what flash sales run on
 * today: Redis, one EVALSHA of bench/redis/seckill.lua per click (check the buyer set, check the
 * stock, decrement, add the buyer, append the order to a stream). This program is the Redis
 * half's load generator, shaped like rush-loadgen's midnight scenario so that both sides see the
 * same traffic: --buyers distinct users, each clicking once, on --skus hot SKUs holding --stock
 * units each. Request i is user 1 + i % buyers (so a run longer than the crowd repeats clicks,
 * answered duplicate or sold_out) on the SKU a hash of the user picks.
 *
 * Load shapes (the same notions as rush-loadgen):
 *   --mode closed  --connections N --pipeline P: every connection keeps P EVALSHAs in flight;
 *                  latency is from the moment a request is written.
 *   --mode open    --rate R [--arrivals fixed|poisson]: requests are due on a schedule of R per
 *                  second, spread over the connections (at most P in flight on each). Latency
 *                  is from the intended send time, so a server that falls behind is charged for
 *                  the queue in front of it (no coordinated omission). Requests still waiting
 *                  to be sent when the run ends are not sent; each is recorded with its wait so
 *                  far (a lower bound) and counted as "unsent".
 *
 * One thread, non-blocking sockets and epoll; requests are written as raw RESP, replies parsed
 * with hiredis's reader. Set-up (SCRIPT LOAD, resetting the keys) and the final check use a
 * plain hiredis connection. At the end it checks the books: per SKU, Redis must have sold exactly
 * min(stock, distinct buyers who clicked it) units: stock left, buyer set size and stream length
 * must all agree with that, and with the ok answers counted here. Any difference (an oversell)
 * fails the run with exit status 1.
 *
 * Output: one JSON line (bench, case, ops_per_sec, latency percentiles in µs, outcomes, the
 * check), and with --report FILE the same figures as a JSON object in rush-loadgen's report
 * shape (requests_answered, elapsed_s, throughput_per_s, latency_us{...}, outcomes{...}).
 *
 * Limits: CONNECTIONS_MAX connections, PIPELINE_MAX in flight on each, SKUS_MAX SKUs. Memory is
 * allocated before the clock starts; the load loop does not allocate except inside hiredis's
 * reply parser.
 *
 * Usage: bench-redis [--host H] [--port P] [--script FILE] [--mode closed|open] [--rate R]
 *        [--arrivals fixed|poisson] [--connections N] [--pipeline P] [--duration S]
 *        [--buyers N] [--skus N] [--stock N] [--seed N] [--report FILE] [--quiet]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/number.h"
#include "histogram.h"
#include "rush/assert.h"

#ifndef RUSH_SOURCE_DIR
#define RUSH_SOURCE_DIR "."
#endif

#define CONNECTIONS_MAX 1024
#define PIPELINE_MAX 4096
#define SKUS_MAX 1024
#define BUYERS_MAX (UINT64_C(1) << 40)
#define DURATION_S_MAX 3600.0
#define RATE_MAX 100000000.0
#define REQUEST_BYTES_MAX 256
#define SKU_PREFIX_BYTES_MAX 160
#define READ_BYTES_MAX (64 * 1024)
#define EVENTS_MAX 64
#define DRAIN_TIMEOUT_NS (INT64_C(10) * 1000000000)
#define IDLE_WAIT_NS (INT64_C(100) * 1000000)
#define SCRIPT_BYTES_MAX (64 * 1024)
#define KEY_BYTES_MAX 64
#define NS_PER_S 1000000000.0

enum outcome { OUTCOME_OK = 0, OUTCOME_SOLD_OUT = 1, OUTCOME_DUPLICATE = 2, OUTCOME_COUNT_ = 3 };

enum mode { MODE_CLOSED, MODE_OPEN };

struct config {
    const char *host;
    int port;
    const char *script_path;
    enum mode mode;
    double rate;
    bool poisson;
    uint32_t connections;
    uint32_t pipeline;
    double duration_s;
    uint64_t buyers;
    uint32_t skus;
    int64_t stock;
    uint64_t seed;
    const char *report_path;
    bool quiet;
};

/* One connection: an outgoing byte buffer and the send times of what is in flight (a FIFO). */
struct connection {
    int fd;
    redisReader *reader;
    char *out;
    size_t out_len;
    size_t out_sent;
    int64_t *sent_ns; /* ring of pipeline entries, oldest at head */
    uint32_t head;
    uint32_t in_flight;
    bool polling_out;
};

struct run {
    const struct config *config;
    int epoll_fd;
    struct connection *connections;
    char sha[41];
    char sku_prefix[SKUS_MAX][SKU_PREFIX_BYTES_MAX]; /* "*9 EVALSHA sha 3 k1 k2 k3" in RESP */
    size_t sku_prefix_len[SKUS_MAX];
    uint64_t next_index;      /* requests sent so far = index of the next one */
    int64_t next_intended_ns; /* open loop: when the next request is due */
    uint64_t xorshift;
    uint32_t cursor; /* open loop: the connection the next request tries first */
    int64_t start_ns;
    int64_t end_ns;
    int64_t last_reply_ns;
    uint64_t in_flight;
    uint64_t answered;
    uint64_t unsent;
    uint64_t errors;
    uint64_t outcomes[OUTCOME_COUNT_];
    struct rush_histogram latency_ns;
};

struct check {
    uint64_t expected_sold;
    uint64_t sold;        /* from the stock left */
    uint64_t buyers_kept; /* SCARD of the buyer sets */
    uint64_t orders_kept; /* XLEN of the order streams */
    uint64_t oversold_skus;
    bool passed;
};

/* The SKU a user clicks: a fixed mix of (user, seed), the same for the run and for the check. */
static uint32_t sku_of(uint64_t user, uint64_t seed, uint32_t skus)
{
    uint64_t x = (user ^ seed) * UINT64_C(0x9e3779b97f4a7c15);
    x ^= x >> 29;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 32;
    return (uint32_t)(x % skus);
}

static void key_name(char *out, size_t cap, const char *kind, uint32_t sku_index)
{
    /* The hash tag keeps a SKU's three keys in one slot, as a Redis Cluster deployment needs. */
    snprintf(out, cap, "seckill:{%u}:%s", 1001 + sku_index, kind);
}

/* ---- arguments ------------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench-redis [--host H] [--port P] [--script FILE] [--mode closed|open]\n"
            "         [--rate R] [--arrivals fixed|poisson] [--connections N] [--pipeline P]\n"
            "         [--duration S] [--buyers N] [--skus N] [--stock N] [--seed N]\n"
            "         [--report FILE] [--quiet]\n");
}

static int parse_option(struct config *c, const char *name, const char *value)
{
    uint64_t n = 0; /* integer options: the whole value in decimal (base/number.h) */
    bool number = rush_number_parse_u64(value, strlen(value), 0, UINT64_MAX, &n, NULL, 0) == 0;
    if (strcmp(name, "--host") == 0)
        c->host = value;
    else if (strcmp(name, "--port") == 0 && number && n >= 1 && n <= 65535)
        c->port = (int)n;
    else if (strcmp(name, "--script") == 0)
        c->script_path = value;
    else if (strcmp(name, "--mode") == 0 && strcmp(value, "closed") == 0)
        c->mode = MODE_CLOSED;
    else if (strcmp(name, "--mode") == 0 && strcmp(value, "open") == 0)
        c->mode = MODE_OPEN;
    else if (strcmp(name, "--rate") == 0)
        c->rate = atof(value);
    else if (strcmp(name, "--arrivals") == 0 && strcmp(value, "fixed") == 0)
        c->poisson = false;
    else if (strcmp(name, "--arrivals") == 0 && strcmp(value, "poisson") == 0)
        c->poisson = true;
    else if (strcmp(name, "--connections") == 0 && number && n <= UINT32_MAX)
        c->connections = (uint32_t)n;
    else if (strcmp(name, "--pipeline") == 0 && number && n <= UINT32_MAX)
        c->pipeline = (uint32_t)n;
    else if (strcmp(name, "--duration") == 0)
        c->duration_s = atof(value);
    else if (strcmp(name, "--buyers") == 0 && number)
        c->buyers = n;
    else if (strcmp(name, "--skus") == 0 && number && n <= UINT32_MAX)
        c->skus = (uint32_t)n;
    else if (strcmp(name, "--stock") == 0 && number && n <= INT64_MAX)
        c->stock = (int64_t)n;
    else if (strcmp(name, "--seed") == 0 && number)
        c->seed = n;
    else if (strcmp(name, "--report") == 0)
        c->report_path = value;
    else
        return -EINVAL;
    return 0;
}

static int parse_args(struct config *c, int argc, char **argv)
{
    *c = (struct config){.host = "127.0.0.1",
                         .port = 6379,
                         .script_path = RUSH_SOURCE_DIR "/bench/redis/seckill.lua",
                         .mode = MODE_CLOSED,
                         .connections = 50,
                         .pipeline = 16,
                         .duration_s = 5.0,
                         .buyers = 1000000,
                         .skus = 3,
                         .stock = 1000,
                         .seed = 1};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quiet") == 0) {
            c->quiet = true;
            continue;
        }
        if (i + 1 >= argc || parse_option(c, argv[i], argv[i + 1]) != 0) {
            fprintf(stderr, "bench-redis: bad option %s\n", argv[i]);
            return -EINVAL;
        }
        i++;
    }
    bool valid = c->port > 0 && c->port < 65536 && c->connections >= 1 &&
                 c->connections <= CONNECTIONS_MAX && c->pipeline >= 1 &&
                 c->pipeline <= PIPELINE_MAX && c->duration_s > 0 &&
                 c->duration_s <= DURATION_S_MAX && c->buyers >= 1 && c->buyers <= BUYERS_MAX &&
                 c->skus >= 1 && c->skus <= SKUS_MAX && c->stock >= 0 &&
                 (c->mode == MODE_CLOSED || (c->rate > 0 && c->rate <= RATE_MAX));
    return valid ? 0 : -EINVAL;
}

/* ---- set-up and the final check over a plain hiredis connection ------------------------------ */

static redisContext *control_connect(const struct config *c)
{
    struct timeval timeout = {.tv_sec = 30};
    redisContext *redis = redisConnectWithTimeout(c->host, c->port, timeout);
    if (redis == NULL || redis->err) {
        fprintf(stderr, "bench-redis: connect %s:%d: %s\n", c->host, c->port,
                redis != NULL ? redis->errstr : "out of memory");
        if (redis != NULL)
            redisFree(redis);
        return NULL;
    }
    redisSetTimeout(redis, timeout);
    return redis;
}

/* A command whose reply must not be an error; returns the reply (caller frees) or NULL. */
static redisReply *control_command(redisContext *redis, const char *what, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    redisReply *reply = redisvCommand(redis, format, args);
    va_end(args);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "bench-redis: %s: %s\n", what, reply != NULL ? reply->str : redis->errstr);
        if (reply != NULL)
            freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

static int load_script(struct run *run, redisContext *redis)
{
    static char text[SCRIPT_BYTES_MAX];
    FILE *file = fopen(run->config->script_path, "r");
    if (file == NULL) {
        fprintf(stderr, "bench-redis: %s: %s\n", run->config->script_path, strerror(errno));
        return -errno;
    }
    size_t len = fread(text, 1, sizeof(text) - 1, file);
    fclose(file);
    text[len] = '\0';
    redisReply *reply = control_command(redis, "SCRIPT LOAD", "SCRIPT LOAD %s", text);
    if (reply == NULL)
        return -EIO;
    bool valid = reply->type == REDIS_REPLY_STRING && reply->len == 40;
    if (valid)
        memcpy(run->sha, reply->str, 41);
    freeReplyObject(reply);
    return valid ? 0 : -EIO;
}

/* Deletes every key of the run's SKUs and puts the stock back: a run starts from a clean sale. */
static int reset_keys(const struct run *run, redisContext *redis)
{
    const struct config *c = run->config;
    char stock[KEY_BYTES_MAX], buyers[KEY_BYTES_MAX], orders[KEY_BYTES_MAX];
    for (uint32_t k = 0; k < c->skus; k++) {
        key_name(stock, sizeof(stock), "stock", k);
        key_name(buyers, sizeof(buyers), "buyers", k);
        key_name(orders, sizeof(orders), "orders", k);
        redisAppendCommand(redis, "DEL %s %s %s", stock, buyers, orders);
        redisAppendCommand(redis, "SET %s %lld", stock, (long long)c->stock);
    }
    int rc = 0;
    for (uint32_t i = 0; i < 2 * c->skus; i++) {
        void *reply = NULL;
        if (redisGetReply(redis, &reply) != REDIS_OK ||
            ((redisReply *)reply)->type == REDIS_REPLY_ERROR)
            rc = -EIO;
        if (reply != NULL)
            freeReplyObject(reply);
    }
    if (rc != 0)
        fprintf(stderr, "bench-redis: resetting the keys failed\n");
    return rc;
}

static long long control_integer(redisContext *redis, const char *what, const char *command,
                                 const char *key)
{
    redisReply *reply = control_command(redis, what, "%s %s", command, key);
    if (reply == NULL)
        return -1;
    long long value = -1;
    if (reply->type == REDIS_REPLY_INTEGER)
        value = reply->integer;
    else if (reply->type == REDIS_REPLY_STRING)
        value = strtoll(reply->str, NULL, 10);
    freeReplyObject(reply);
    return value;
}

/* Demand per SKU: how many distinct users among those who clicked chose it. */
static void count_demand(const struct run *run, uint64_t *demand)
{
    const struct config *c = run->config;
    uint64_t users = run->next_index < c->buyers ? run->next_index : c->buyers;
    memset(demand, 0, sizeof(uint64_t) * c->skus);
    for (uint64_t user = 1; user <= users; user++)
        demand[sku_of(user, c->seed, c->skus)]++;
}

static void check_books(const struct run *run, redisContext *redis, struct check *check)
{
    static uint64_t demand[SKUS_MAX];
    const struct config *c = run->config;
    count_demand(run, demand);
    *check = (struct check){.passed = true};
    char key[KEY_BYTES_MAX];
    for (uint32_t k = 0; k < c->skus; k++) {
        uint64_t expected = demand[k] < (uint64_t)c->stock ? demand[k] : (uint64_t)c->stock;
        key_name(key, sizeof(key), "stock", k);
        long long left = control_integer(redis, "GET stock", "GET", key);
        key_name(key, sizeof(key), "buyers", k);
        long long buyers = control_integer(redis, "SCARD", "SCARD", key);
        key_name(key, sizeof(key), "orders", k);
        long long orders = control_integer(redis, "XLEN", "XLEN", key);
        long long sold = (long long)c->stock - left;
        bool right = left >= 0 && sold == (long long)expected && buyers == sold && orders == sold;
        if (left < 0 || sold > (long long)expected)
            check->oversold_skus++;
        check->passed = check->passed && right;
        check->expected_sold += expected;
        check->sold += (uint64_t)(sold > 0 ? sold : 0);
        check->buyers_kept += (uint64_t)(buyers > 0 ? buyers : 0);
        check->orders_kept += (uint64_t)(orders > 0 ? orders : 0);
    }
    uint64_t decided = run->outcomes[OUTCOME_OK] + run->outcomes[OUTCOME_SOLD_OUT] +
                       run->outcomes[OUTCOME_DUPLICATE];
    check->passed = check->passed && run->outcomes[OUTCOME_OK] == check->expected_sold &&
                    decided == run->answered && run->answered == run->next_index &&
                    run->errors == 0;
}

/* ---- the load connections -------------------------------------------------------------------- */

static int open_connection(struct run *run, struct connection *conn)
{
    const struct config *c = run->config;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    if (inet_pton(AF_INET, c->host, &address.sin_addr) != 1) {
        fprintf(stderr, "bench-redis: --host must be an IPv4 address, not %s\n", c->host);
        return -EINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        close(fd);
        return -errno;
    }
    *conn = (struct connection){.fd = fd};
    conn->reader = redisReaderCreate();
    conn->out = malloc((size_t)c->pipeline * REQUEST_BYTES_MAX);
    conn->sent_ns = malloc(sizeof(int64_t) * c->pipeline);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = conn};
    if (conn->reader == NULL || conn->out == NULL || conn->sent_ns == NULL ||
        epoll_ctl(run->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0)
        return -ENOMEM;
    return 0;
}

/* ---- the load loop --------------------------------------------------------------------------- */

static size_t append_bulk(char *out, const char *text, size_t len)
{
    int head = sprintf(out, "$%zu\r\n", len);
    memcpy(out + head, text, len);
    memcpy(out + head + len, "\r\n", 2);
    return (size_t)head + len + 2;
}

static size_t append_bulk_u64(char *out, uint64_t value)
{
    char digits[24];
    size_t len = 0;
    do {
        digits[sizeof(digits) - 1 - len++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    return append_bulk(out, digits + sizeof(digits) - len, len);
}

/* The part of every EVALSHA that depends on the SKU only, formatted once. */
static void build_prefixes(struct run *run)
{
    char key[KEY_BYTES_MAX];
    for (uint32_t k = 0; k < run->config->skus; k++) {
        char *p = run->sku_prefix[k];
        p += sprintf(p, "*9\r\n");
        p += append_bulk(p, "EVALSHA", 7);
        p += append_bulk(p, run->sha, 40);
        p += append_bulk(p, "3", 1);
        static const char *const kinds[] = {"stock", "buyers", "orders"};
        for (int i = 0; i < 3; i++) {
            key_name(key, sizeof(key), kinds[i], k);
            p += append_bulk(p, key, strlen(key));
        }
        run->sku_prefix_len[k] = (size_t)(p - run->sku_prefix[k]);
        RUSH_ASSERT(run->sku_prefix_len[k] < SKU_PREFIX_BYTES_MAX);
    }
}

/* Appends the next request to conn's output: EVALSHA sha 3 stock buyers orders user 1 order. */
static void enqueue_request(struct run *run, struct connection *conn, int64_t intended_ns)
{
    const struct config *c = run->config;
    RUSH_ASSERT(conn->in_flight < c->pipeline);
    RUSH_ASSERT(conn->out_len + REQUEST_BYTES_MAX <= (size_t)c->pipeline * REQUEST_BYTES_MAX);
    uint64_t index = run->next_index++;
    uint64_t user = 1 + index % c->buyers;
    uint32_t k = sku_of(user, c->seed, c->skus);
    char *start = conn->out + conn->out_len;
    char *p = start;
    memcpy(p, run->sku_prefix[k], run->sku_prefix_len[k]);
    p += run->sku_prefix_len[k];
    p += append_bulk_u64(p, user);
    p += append_bulk(p, "1", 1);
    p += append_bulk_u64(p, index + 1);
    RUSH_ASSERT(p - start <= REQUEST_BYTES_MAX);
    conn->out_len += (size_t)(p - start);
    conn->sent_ns[(conn->head + conn->in_flight) % c->pipeline] = intended_ns;
    conn->in_flight++;
    run->in_flight++;
}

/* Writes what the socket takes; polls for writability while something is left. */
static int flush_connection(struct run *run, struct connection *conn)
{
    if (conn->out_len > 0) {
        ssize_t n = send(conn->fd, conn->out, conn->out_len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN)
            return -errno;
        if (n > 0) {
            conn->out_len -= (size_t)n;
            memmove(conn->out, conn->out + n, conn->out_len);
        }
    }
    bool pending = conn->out_len > 0;
    if (pending != conn->polling_out) {
        struct epoll_event event = {.events = EPOLLIN | (pending ? EPOLLOUT : 0u),
                                    .data.ptr = conn};
        if (epoll_ctl(run->epoll_fd, EPOLL_CTL_MOD, conn->fd, &event) != 0)
            return -errno;
        conn->polling_out = pending;
    }
    return 0;
}

static void take_reply(struct run *run, struct connection *conn, const redisReply *reply,
                       int64_t now)
{
    const struct config *c = run->config;
    RUSH_ASSERT(conn->in_flight > 0);
    int64_t sent = conn->sent_ns[conn->head];
    conn->head = (conn->head + 1) % c->pipeline;
    conn->in_flight--;
    run->in_flight--;
    run->answered++;
    run->last_reply_ns = now;
    rush_histogram_record(&run->latency_ns, (uint64_t)(now > sent ? now - sent : 0));
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0 &&
        reply->integer < OUTCOME_COUNT_) {
        run->outcomes[reply->integer]++;
        return;
    }
    if (run->errors++ == 0)
        fprintf(stderr, "bench-redis: unexpected reply (type %d): %s\n", reply->type,
                reply->type == REDIS_REPLY_ERROR ? reply->str : "-");
}

static int read_replies(struct run *run, struct connection *conn, int64_t now)
{
    static char buf[READ_BYTES_MAX];
    ssize_t n = recv(conn->fd, buf, sizeof(buf), 0);
    if (n == 0)
        return -ECONNRESET;
    if (n < 0)
        return errno == EAGAIN ? 0 : -errno;
    if (redisReaderFeed(conn->reader, buf, (size_t)n) != REDIS_OK)
        return -EPROTO;
    for (uint32_t i = 0; i <= run->config->pipeline; i++) {
        void *reply = NULL;
        if (redisReaderGetReply(conn->reader, &reply) != REDIS_OK)
            return -EPROTO;
        if (reply == NULL)
            return 0;
        if (conn->in_flight == 0) {
            freeReplyObject(reply);
            return -EPROTO; /* a reply nobody asked for */
        }
        take_reply(run, conn, reply, now);
        freeReplyObject(reply);
    }
    return -EPROTO; /* more replies than requests in flight */
}

static void fill_closed(struct run *run, int64_t now)
{
    for (uint32_t i = 0; i < run->config->connections; i++) {
        struct connection *conn = &run->connections[i];
        while (conn->in_flight < run->config->pipeline)
            enqueue_request(run, conn, now);
    }
}

static void advance_schedule(struct run *run)
{
    const struct config *c = run->config;
    if (!c->poisson) {
        run->next_intended_ns =
            run->start_ns + (int64_t)((double)run->next_index * NS_PER_S / c->rate);
        return;
    }
    run->xorshift ^= run->xorshift << 13;
    run->xorshift ^= run->xorshift >> 7;
    run->xorshift ^= run->xorshift << 17;
    double u = ((double)(run->xorshift >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
    run->next_intended_ns += (int64_t)(-log(u) / c->rate * NS_PER_S);
}

/* Sends every request that is due, each on the next connection with room; false if all full. */
static bool fill_open(struct run *run, int64_t now)
{
    const struct config *c = run->config;
    while (run->next_intended_ns <= now && run->next_intended_ns < run->end_ns) {
        struct connection *conn = &run->connections[run->cursor];
        for (uint32_t tried = 1; conn->in_flight >= c->pipeline; tried++) {
            if (tried >= c->connections)
                return false;
            run->cursor = (run->cursor + 1) % c->connections;
            conn = &run->connections[run->cursor];
        }
        enqueue_request(run, conn, run->next_intended_ns);
        run->cursor = (run->cursor + 1) % c->connections;
        advance_schedule(run);
    }
    return true;
}

/*
 * Open loop, end of the run: requests that were due but found every connection full are not
 * sent. Each is charged the wait it had so far (a lower bound on its latency).
 */
static void count_unsent(struct run *run)
{
    uint64_t index = run->next_index;
    while (run->next_intended_ns < run->end_ns) {
        rush_histogram_record(&run->latency_ns, (uint64_t)(run->end_ns - run->next_intended_ns));
        run->unsent++;
        run->next_index++; /* the schedule's position; undone below */
        advance_schedule(run);
    }
    run->next_index = index;
}

/* How long epoll may sleep: until the next request is due, or until a reply wakes it. */
static int64_t wait_ns(const struct run *run, bool generating, bool room, int64_t now)
{
    if (!generating)
        return IDLE_WAIT_NS;
    int64_t until_end = run->end_ns - now;
    int64_t wait = until_end < IDLE_WAIT_NS ? until_end : IDLE_WAIT_NS;
    if (run->config->mode == MODE_OPEN && room && run->next_intended_ns - now < wait)
        wait = run->next_intended_ns - now;
    return wait > 0 ? wait : 0;
}

static int handle_events(struct run *run, const struct epoll_event *events, int count, int64_t now)
{
    for (int i = 0; i < count; i++) {
        struct connection *conn = events[i].data.ptr;
        int rc = 0;
        if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            rc = read_replies(run, conn, now);
        if (rc == 0 && (events[i].events & EPOLLOUT))
            rc = flush_connection(run, conn);
        if (rc != 0) {
            fprintf(stderr, "bench-redis: connection: %s\n", strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static int drive(struct run *run)
{
    const struct config *c = run->config;
    struct epoll_event events[EVENTS_MAX];
    bool generating = true;
    int64_t now = run->start_ns;
    for (;;) {
        if (generating && now >= run->end_ns) {
            generating = false;
            if (c->mode == MODE_OPEN && fill_open(run, now) == false)
                count_unsent(run); /* what was due before the end and found no room */
        }
        bool room = true;
        if (generating && c->mode == MODE_CLOSED)
            fill_closed(run, now);
        else if (generating)
            room = fill_open(run, now);
        for (uint32_t i = 0; i < c->connections; i++) {
            int rc = flush_connection(run, &run->connections[i]);
            if (rc != 0)
                return rc;
        }
        if (!generating && run->in_flight == 0)
            return 0;
        if (!generating && now > run->end_ns + DRAIN_TIMEOUT_NS) {
            fprintf(stderr, "bench-redis: %" PRIu64 " replies never came\n", run->in_flight);
            return -ETIMEDOUT;
        }
        int64_t wait = wait_ns(run, generating, room, now);
        struct timespec timeout = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
        int count = epoll_pwait2(run->epoll_fd, events, EVENTS_MAX, &timeout, NULL);
        if (count < 0 && errno != EINTR)
            return -errno;
        now = rush_clock_monotonic_ns();
        int rc = handle_events(run, events, count > 0 ? count : 0, now);
        if (rc != 0)
            return rc;
    }
}

/* ---- output ---------------------------------------------------------------------------------- */

struct figures {
    char name[96];
    char persistence[64];
    double elapsed_s;
    double throughput_per_s;
    double latency_us[6]; /* p50 p90 p99 p999 max mean */
};

static void compute_figures(const struct run *run, struct figures *f)
{
    const struct config *c = run->config;
    int64_t last = run->last_reply_ns > run->start_ns ? run->last_reply_ns : run->end_ns;
    f->elapsed_s = (double)(last - run->start_ns) / NS_PER_S;
    f->throughput_per_s = f->elapsed_s > 0 ? (double)run->answered / f->elapsed_s : 0;
    static const double percents[] = {50.0, 90.0, 99.0, 99.9};
    for (int i = 0; i < 4; i++)
        f->latency_us[i] = (double)rush_histogram_percentile(&run->latency_ns, percents[i]) / 1e3;
    f->latency_us[4] = run->latency_ns.count > 0 ? (double)run->latency_ns.max / 1e3 : 0;
    f->latency_us[5] = rush_histogram_mean(&run->latency_ns) / 1e3;
    if (c->mode == MODE_CLOSED)
        snprintf(f->name, sizeof(f->name), "closed_c%u_p%u", c->connections, c->pipeline);
    else
        snprintf(f->name, sizeof(f->name), "open_%s_r%.0f_c%u_p%u",
                 c->poisson ? "poisson" : "fixed", c->rate, c->connections, c->pipeline);
}

static void print_line(const struct run *run, const struct figures *f, const struct check *check)
{
    printf("{\"bench\":\"redis\",\"case\":\"%s\",\"persistence\":\"%s\",\"ops_per_sec\":%.0f,"
           "\"requests_answered\":%" PRIu64 ",\"elapsed_s\":%.3f,\"p50_us\":%.1f,"
           "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"ok\":%" PRIu64
           ",\"sold_out\":%" PRIu64 ",\"duplicate\":%" PRIu64 ",\"unsent\":%" PRIu64
           ",\"errors\":%" PRIu64 ",\"sold\":%" PRIu64 ",\"expected_sold\":%" PRIu64
           ",\"books_ok\":%s}\n",
           f->name, f->persistence, f->throughput_per_s, run->answered, f->elapsed_s,
           f->latency_us[0], f->latency_us[1], f->latency_us[2], f->latency_us[3], f->latency_us[4],
           run->outcomes[OUTCOME_OK], run->outcomes[OUTCOME_SOLD_OUT],
           run->outcomes[OUTCOME_DUPLICATE], run->unsent, run->errors, check->sold,
           check->expected_sold, check->passed ? "true" : "false");
    fflush(stdout);
}

static int write_report(const struct run *run, const struct figures *f, const struct check *check)
{
    const struct config *c = run->config;
    FILE *file = fopen(c->report_path, "w");
    if (file == NULL) {
        fprintf(stderr, "bench-redis: %s: %s\n", c->report_path, strerror(errno));
        return -errno;
    }
    fprintf(file,
            "{\n  \"target\": \"redis\",\n  \"case\": \"%s\",\n  \"persistence\": \"%s\",\n"
            "  \"mode\": \"%s\",\n  \"rate\": %.0f,\n  \"connections\": %u,\n  \"pipeline\": %u,\n"
            "  \"buyers\": %" PRIu64 ",\n  \"skus\": %u,\n  \"stock\": %lld,\n"
            "  \"requests_sent\": %" PRIu64 ",\n  \"requests_answered\": %" PRIu64 ",\n"
            "  \"requests_unsent\": %" PRIu64 ",\n  \"errors\": %" PRIu64 ",\n"
            "  \"elapsed_s\": %.6f,\n  \"throughput_per_s\": %.1f,\n",
            f->name, f->persistence, c->mode == MODE_OPEN ? "open" : "closed", c->rate,
            c->connections, c->pipeline, c->buyers, c->skus, (long long)c->stock, run->next_index,
            run->answered, run->unsent, run->errors, f->elapsed_s, f->throughput_per_s);
    fprintf(file,
            "  \"latency_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"p999\": %.1f, "
            "\"max\": %.1f, \"mean\": %.1f},\n"
            "  \"outcomes\": {\"ok\": %" PRIu64 ", \"sold_out\": %" PRIu64
            ", \"duplicate\": %" PRIu64 "},\n"
            "  \"check\": {\"passed\": %s, \"sold\": %" PRIu64 ", \"expected_sold\": %" PRIu64
            ", \"buyers_kept\": %" PRIu64 ", \"orders_kept\": %" PRIu64
            ", \"oversold_skus\": %" PRIu64 "}\n}\n",
            f->latency_us[0], f->latency_us[1], f->latency_us[2], f->latency_us[3],
            f->latency_us[4], f->latency_us[5], run->outcomes[OUTCOME_OK],
            run->outcomes[OUTCOME_SOLD_OUT], run->outcomes[OUTCOME_DUPLICATE],
            check->passed ? "true" : "false", check->sold, check->expected_sold, check->buyers_kept,
            check->orders_kept, check->oversold_skus);
    return fclose(file) == 0 ? 0 : -EIO;
}

/* "aof_always", "aof_everysec", "aof_no" or "none": how the server under test persists. */
static void read_persistence(redisContext *redis, char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    redisReply *aof = control_command(redis, "CONFIG GET", "CONFIG GET appendonly");
    redisReply *fsync = control_command(redis, "CONFIG GET", "CONFIG GET appendfsync");
    bool shaped = aof != NULL && fsync != NULL && aof->type == REDIS_REPLY_ARRAY &&
                  aof->elements == 2 && fsync->type == REDIS_REPLY_ARRAY && fsync->elements == 2;
    if (shaped && strcmp(aof->element[1]->str, "yes") == 0)
        snprintf(out, cap, "aof_%s", fsync->element[1]->str);
    else if (shaped)
        snprintf(out, cap, "none");
    if (aof != NULL)
        freeReplyObject(aof);
    if (fsync != NULL)
        freeReplyObject(fsync);
}

/* ---- main ------------------------------------------------------------------------------------ */

static int prepare(struct run *run, redisContext *redis, struct figures *f)
{
    const struct config *c = run->config;
    if (load_script(run, redis) != 0 || reset_keys(run, redis) != 0)
        return -EIO;
    read_persistence(redis, f->persistence, sizeof(f->persistence));
    build_prefixes(run);
    run->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    run->connections = calloc(c->connections, sizeof(struct connection));
    if (run->epoll_fd < 0 || run->connections == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < c->connections; i++) {
        int rc = open_connection(run, &run->connections[i]);
        if (rc != 0) {
            fprintf(stderr, "bench-redis: connection %u: %s\n", i, strerror(-rc));
            return rc;
        }
    }
    rush_histogram_reset(&run->latency_ns);
    run->xorshift = c->seed * UINT64_C(0x9e3779b97f4a7c15) | 1;
    return 0;
}

static void close_connections(struct run *run)
{
    for (uint32_t i = 0; run->connections != NULL && i < run->config->connections; i++) {
        struct connection *conn = &run->connections[i];
        if (conn->fd > 0)
            close(conn->fd);
        if (conn->reader != NULL)
            redisReaderFree(conn->reader);
        free(conn->out);
        free(conn->sent_ns);
    }
    free(run->connections);
    if (run->epoll_fd > 0)
        close(run->epoll_fd);
}

int main(int argc, char **argv)
{
    static struct config config;
    static struct run run;
    static struct figures figures;
    if (parse_args(&config, argc, argv) != 0) {
        usage();
        return 2;
    }
    run.config = &config;
    redisContext *redis = control_connect(&config);
    if (redis == NULL)
        return 1;
    int rc = prepare(&run, redis, &figures);
    if (rc == 0) {
        run.start_ns = rush_clock_monotonic_ns();
        run.end_ns = run.start_ns + (int64_t)(config.duration_s * NS_PER_S);
        run.next_intended_ns = run.start_ns;
        rc = drive(&run);
    }
    struct check check = {0};
    if (rc == 0) {
        check_books(&run, redis, &check);
        compute_figures(&run, &figures);
        if (!config.quiet)
            print_line(&run, &figures, &check);
        if (config.report_path != NULL)
            rc = write_report(&run, &figures, &check);
        if (!check.passed)
            fprintf(stderr,
                    "bench-redis: books do not add up: sold %" PRIu64 ", expected %" PRIu64
                    ", ok answers %" PRIu64 ", oversold SKUs %" PRIu64 "\n",
                    check.sold, check.expected_sold, run.outcomes[OUTCOME_OK], check.oversold_skus);
    }
    close_connections(&run);
    redisFree(redis);
    return rc != 0 || !check.passed ? 1 : 0;
}
