/*
 * bench_server — rushd's throughput over loopback TCP, end to end through nanomsg.
 *
 * Starts build/bin/rushd (beside this binary) on a free 127.0.0.1 port with a campaign of
 * BENCH_SKUS unlimited SKUs (durability none, 2 shards), a fresh one for each case so that no
 * case meets tables an earlier one filled; or drives a running one given with --connect URL (its
 * campaign must have those SKUs: ids 1..BENCH_SKUS, unlimited). Every request is a reserve of 1
 * unit by a distinct user with a distinct key, spread over the SKUs.
 *
 * Cases (one JSON object per line: bench, case, ops_per_sec, messages_per_sec, ...):
 *   one_per_message_req_Nthreads  N threads, each a plain REQ socket, one request per message:
 *                                 N messages in flight, the gateway that does not batch.
 *   one_per_message_raw_wW        one raw REQ socket pipelining W messages of one request.
 *   batch_B_req_Nthreads          N threads with a REQ socket each, B requests per message.
 *   batch_B_raw_wW                one raw REQ socket, W messages of B requests in flight.
 * "errors" counts replies that never came (a raw REQ case ends by waiting RAW_DRAIN_TIMEOUT_MS
 * for what is still in flight) or did not decode.
 * Each case runs for --seconds (default 2) after a short warm-up. Outcomes other than ok (busy
 * from a full slot pool or ring, for instance) are counted and printed, not hidden.
 *
 * Usage: bench-server [--connect URL] [--seconds S] [--rushd PATH] [--durability MODE]
 *                     [--scrape-ms MS] [--case NAME]
 * (MODE: none by default; fsync or async to measure with the write-ahead log on disk)
 *
 * The rushd it starts always serves its HTTP console on a free loopback port; with --scrape-ms
 * MS a thread GETs /metrics and /api/dashboard.json every MS milliseconds while each case runs
 * (what Prometheus and an open dashboard cost; README "Dashboard, Prometheus and Grafana"), and
 * a line {"bench":"server","scrapes":N,"scrape_failures":F} follows the case.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "rush/types.h"
#include "rush/wire.h"

#define BENCH_SKUS 16
#define REQ_THREADS 8
#define BATCH_THREADS 2
#define RAW_WINDOW_SINGLE 256
#define RAW_WINDOW_BATCH 4
#define BATCH_MAX 4000
#define RECEIVE_TIMEOUT_MS 10000
#define RAW_DRAIN_TIMEOUT_MS 2000
#define SOCKET_BUFFER_BYTES (4 * 1024 * 1024)
#define WARMUP_SECONDS 0.3

static _Atomic uint64_t next_user = 1;

struct tally {
    uint64_t messages;
    uint64_t ops;
    uint64_t outcomes[RUSH_OUTCOME_COUNT_];
    uint64_t errors;
};

/* Fills `count` reserves by fresh users; returns the encoded message length, or < 0. */
static int make_message(uint8_t *buf, size_t cap, uint64_t message_id, uint32_t count,
                        struct rush_request *scratch)
{
    uint64_t first = atomic_fetch_add(&next_user, count);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t user = first + i;
        scratch[i] = (struct rush_request){.op = RUSH_OP_RESERVE,
                                           .qty = 1,
                                           .sku_id = 1 + user % BENCH_SKUS,
                                           .user_id = user,
                                           .tag = user};
        memcpy(scratch[i].key.bytes, &user, sizeof(user));
        scratch[i].key.bytes[12] = 0xbe;
    }
    return rush_wire_encode_requests(buf, cap, message_id, scratch, count);
}

static void count_reply(struct tally *tally, const void *reply, size_t len)
{
    struct rush_wire_view view;
    struct rush_wire_error error;
    if (rush_wire_decode(reply, len, &view, &error) != 0 || view.kind != RUSH_WIRE_RESULT) {
        tally->errors++;
        return;
    }
    tally->messages++;
    tally->ops += view.count;
    const uint8_t *record = view.records;
    for (uint32_t i = 0; i < view.count; i++)
        tally->outcomes[record[(size_t)i * sizeof(struct rush_result)] % RUSH_OUTCOME_COUNT_]++;
}

static void print_case(const char *name, const struct tally *tally, double seconds,
                       uint32_t per_message, uint32_t in_flight)
{
    printf("{\"bench\":\"server\",\"case\":\"%s\",\"ops_per_sec\":%.0f,\"messages_per_sec\":%.0f,"
           "\"requests_per_message\":%u,\"in_flight\":%u,\"seconds\":%.2f,\"ops\":%llu,"
           "\"ok\":%llu,\"busy\":%llu,\"other\":%llu,\"errors\":%llu}\n",
           name, (double)tally->ops / seconds, (double)tally->messages / seconds, per_message,
           in_flight, seconds, (unsigned long long)tally->ops,
           (unsigned long long)tally->outcomes[RUSH_OK],
           (unsigned long long)tally->outcomes[RUSH_BUSY],
           (unsigned long long)(tally->ops - tally->outcomes[RUSH_OK] - tally->outcomes[RUSH_BUSY]),
           (unsigned long long)tally->errors);
    fflush(stdout);
}

/* ---- plain REQ sockets in threads --------------------------------------------------------- */

struct req_thread {
    const char *url;
    uint32_t per_message;
    double start;
    double end;
    struct tally tally;
};

static void *req_thread_main(void *arg)
{
    struct req_thread *t = arg;
    size_t cap = RUSH_WIRE_HEADER_BYTES + (size_t)t->per_message * sizeof(struct rush_request);
    uint8_t *message = malloc(cap);
    struct rush_request *scratch = calloc(t->per_message, sizeof(*scratch));
    int sock = nn_socket(AF_SP, NN_REQ);
    int timeout = RECEIVE_TIMEOUT_MS;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof(timeout));
    if (message == NULL || scratch == NULL || sock < 0 || nn_connect(sock, t->url) < 0)
        goto out;
    struct tally warmup = {0};
    for (uint64_t id = 1;; id++) {
        double now = rush_clock_monotonic_seconds();
        if (now >= t->end)
            break;
        int len = make_message(message, cap, id, t->per_message, scratch);
        void *reply = NULL;
        if (len < 0 || nn_send(sock, message, (size_t)len, 0) != len)
            break;
        int n = nn_recv(sock, &reply, NN_MSG, 0);
        if (n < 0) {
            t->tally.errors++;
            break;
        }
        count_reply(now >= t->start ? &t->tally : &warmup, reply, (size_t)n);
        nn_freemsg(reply);
    }
out:
    if (sock >= 0)
        nn_close(sock);
    free(message);
    free(scratch);
    return NULL;
}

static void case_req_threads(const char *url, double seconds, uint32_t threads_count,
                             uint32_t per_message)
{
    struct req_thread threads[REQ_THREADS];
    pthread_t ids[REQ_THREADS];
    double start = rush_clock_monotonic_seconds() + WARMUP_SECONDS;
    for (uint32_t i = 0; i < threads_count; i++) {
        threads[i] = (struct req_thread){
            .url = url, .per_message = per_message, .start = start, .end = start + seconds};
        pthread_create(&ids[i], NULL, req_thread_main, &threads[i]);
    }
    struct tally total = {0};
    for (uint32_t i = 0; i < threads_count; i++) {
        pthread_join(ids[i], NULL);
        total.messages += threads[i].tally.messages;
        total.ops += threads[i].tally.ops;
        total.errors += threads[i].tally.errors;
        for (int o = 0; o < RUSH_OUTCOME_COUNT_; o++)
            total.outcomes[o] += threads[i].tally.outcomes[o];
    }
    char name[64];
    if (per_message == 1)
        snprintf(name, sizeof(name), "one_per_message_req_%uthreads", threads_count);
    else
        snprintf(name, sizeof(name), "batch_%u_req_%uthreads", per_message, threads_count);
    print_case(name, &total, seconds, per_message, threads_count);
}

/* ---- one raw REQ socket, pipelined -------------------------------------------------------- */

/*
 * A raw REQ socket sends the request id itself: 4 big-endian bytes with the top bit set, in
 * front of the body (the REP side reads its backtrace up to that word). Replies come back with
 * the id already stripped; they are matched by the rush header's message_id.
 */
static int raw_send(int sock, uint8_t *framed, uint32_t request_id, size_t body_len)
{
    uint32_t id_be = htonl(request_id | 0x80000000u);
    memcpy(framed, &id_be, 4);
    return nn_send(sock, framed, body_len + 4, 0) == (int)(body_len + 4) ? 0 : -errno;
}

static void case_raw(const char *url, double seconds, uint32_t per_message, uint32_t window)
{
    static uint8_t framed[4 + RUSH_WIRE_HEADER_BYTES + BATCH_MAX * sizeof(struct rush_request)];
    static struct rush_request scratch[BATCH_MAX];
    int sock = nn_socket(AF_SP_RAW, NN_REQ);
    int timeout = RECEIVE_TIMEOUT_MS;
    int buffer = SOCKET_BUFFER_BYTES;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof(timeout));
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVBUF, &buffer, sizeof(buffer));
    if (sock < 0 || nn_connect(sock, url) < 0) {
        fprintf(stderr, "bench-server: raw connect %s: %s\n", url, nn_strerror(errno));
        return;
    }
    struct tally tally = {0};
    struct tally warmup = {0};
    double start = rush_clock_monotonic_seconds() + WARMUP_SECONDS;
    double end = start + seconds;
    uint32_t in_flight = 0;
    uint32_t request_id = 0;
    bool sending = true;
    while (sending || in_flight > 0) {
        while (sending && in_flight < window) {
            int len =
                make_message(framed + 4, sizeof(framed) - 4, ++request_id, per_message, scratch);
            if (len < 0 || raw_send(sock, framed, request_id, (size_t)len) < 0) {
                sending = false;
                break;
            }
            in_flight++;
        }
        void *reply = NULL;
        int n = nn_recv(sock, &reply, NN_MSG, 0);
        if (n < 0) {
            tally.errors += in_flight; /* replies lost: see proto/SERVER.md, pipelining */
            break;
        }
        double now = rush_clock_monotonic_seconds();
        count_reply(now >= start ? &tally : &warmup, reply, (size_t)n);
        nn_freemsg(reply);
        in_flight--;
        if (now >= end && sending) {
            sending = false;
            int drain_timeout = RAW_DRAIN_TIMEOUT_MS;
            nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &drain_timeout, sizeof(drain_timeout));
        }
    }
    nn_close(sock);
    char name[64];
    if (per_message == 1)
        snprintf(name, sizeof(name), "one_per_message_raw_w%u", window);
    else
        snprintf(name, sizeof(name), "batch_%u_raw_w%u", per_message, window);
    print_case(name, &tally, seconds, per_message, window);
}

/* ---- starting rushd ----------------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    close(fd);
    return ntohs(addr.sin_port);
}

static const char *durability = "none"; /* --durability: what the started rushd logs with */
static int scrape_ms;                   /* --scrape-ms: 0, no scraper */
static const char *only_case;           /* --case: run only the case of this name */

/* ---- the scraper: a plain HTTP/1.0 GET over a socket, the response read and dropped ---- */

struct scraper {
    int port;
    _Atomic bool stopping;
    uint64_t scrapes, failures;
    pthread_t thread;
};

static bool http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    char buf[65536];
    int n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    ok = ok && write(fd, buf, (size_t)n) == n;
    ssize_t got = 0, total = 0;
    for (int i = 0; ok && i < 100000 && (got = read(fd, buf, sizeof(buf))) > 0; i++)
        total += got;
    if (fd >= 0)
        close(fd);
    return ok && got == 0 && total > 12 && memcmp(buf, "HTTP/1.", 7) == 0;
}

static void *scraper_main(void *argument)
{
    struct scraper *scraper = argument;
    double next = rush_clock_monotonic_seconds();
    while (!atomic_load(&scraper->stopping)) {
        if (rush_clock_monotonic_seconds() < next) {
            usleep(10000);
            continue;
        }
        next += scrape_ms / 1000.0;
        bool ok =
            http_get(scraper->port, "/metrics") && http_get(scraper->port, "/api/dashboard.json");
        scraper->scrapes++;
        scraper->failures += !ok;
    }
    return NULL;
}

static pid_t start_rushd(const char *rushd, const char *dir, int port, int http_port)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/campaign.ini", dir);
    FILE *file = fopen(path, "w");
    if (file == NULL)
        return -1;
    fprintf(file,
            "[engine]\nshards = 2\nring_slots = 1024\norders_max = 8388608\nkeys_max = 8388608\n"
            "user_limits_max = 8388608\ndurability = %s\ndata_dir = %s/data\n\n[endpoints]\n"
            "orders = tcp://127.0.0.1:%d\njson = ipc://%s/json.ipc\nadmin = ipc://%s/admin.ipc\n"
            "publisher = ipc://%s/pub.ipc\nreplay = ipc://%s/replay.ipc\nhttp = 127.0.0.1:%d\n\n",
            durability, dir, port, dir, dir, dir, dir, http_port);
    for (int sku = 1; sku <= BENCH_SKUS; sku++)
        fprintf(file,
                "[sku %d]\nname = bench %d\nstock = unlimited\nprice = 100\nstart = now\n"
                "end = never\nuser_qty_max = 1\npay_ttl = 0\n\n",
                sku, sku);
    fclose(file);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        execl(rushd, rushd, "--config", path, "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_ready(const char *url)
{
    int sock = nn_socket(AF_SP, NN_REQ);
    int timeout = 30000;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof(timeout));
    nn_connect(sock, url);
    uint8_t message[RUSH_WIRE_HEADER_BYTES + sizeof(struct rush_request)];
    struct rush_request query = {.op = RUSH_OP_QUERY_SKU, .sku_id = 1};
    int len = rush_wire_encode_requests(message, sizeof(message), 1, &query, 1);
    void *reply = NULL;
    int rc = len > 0 && nn_send(sock, message, (size_t)len, 0) == len &&
                     nn_recv(sock, &reply, NN_MSG, 0) > 0
                 ? 0
                 : -1;
    if (reply != NULL)
        nn_freemsg(reply);
    nn_close(sock);
    return rc;
}

struct bench_case {
    bool raw;
    uint32_t per_message;
    uint32_t parallel; /* threads (REQ) or window (raw) */
};

static const struct bench_case cases[] = {
    {false, 1, REQ_THREADS},      {true, 1, RAW_WINDOW_SINGLE},   {false, 1000, BATCH_THREADS},
    {false, 4000, BATCH_THREADS}, {true, 1000, RAW_WINDOW_BATCH}, {true, 4000, RAW_WINDOW_BATCH},
};

/* The name print_case gives the case (one_per_message_req_8threads, batch_1000_raw_w4, ...). */
static const char *case_name(const struct bench_case *c)
{
    static char name[64];
    if (c->per_message == 1)
        snprintf(name, sizeof(name), "one_per_message_%s%u%s", c->raw ? "raw_w" : "req_",
                 c->parallel, c->raw ? "" : "threads");
    else
        snprintf(name, sizeof(name), "batch_%u_%s%u%s", c->per_message, c->raw ? "raw_w" : "req_",
                 c->parallel, c->raw ? "" : "threads");
    return name;
}

static void run_case(const struct bench_case *c, const char *url, double seconds)
{
    if (c->raw)
        case_raw(url, seconds, c->per_message, c->parallel);
    else
        case_req_threads(url, seconds, c->parallel, c->per_message);
}

static void stop_rushd(pid_t pid)
{
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "bench-server: rushd exited with status %d\n", status);
}

/* Each case gets a fresh rushd, so that no case runs against tables its predecessors filled. */
static int run_own_rushd(const char *rushd, double seconds)
{
    char dir[] = "/tmp/rush-bench-server-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    int rc = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) && rc == 0; i++) {
        if (only_case != NULL && strcmp(only_case, case_name(&cases[i])) != 0)
            continue;
        int port = free_port(), http_port = free_port();
        char url[128];
        snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
        pid_t pid = port > 0 && http_port > 0 ? start_rushd(rushd, dir, port, http_port) : -1;
        if (pid < 0 || wait_ready(url) != 0) {
            fprintf(stderr, "bench-server: rushd (%s) did not answer at %s\n", rushd, url);
            rc = 1;
        } else {
            struct scraper scraper = {.port = http_port};
            bool scraping =
                scrape_ms > 0 && pthread_create(&scraper.thread, NULL, scraper_main, &scraper) == 0;
            run_case(&cases[i], url, seconds);
            if (scraping) {
                atomic_store(&scraper.stopping, true);
                pthread_join(scraper.thread, NULL);
                printf("{\"bench\":\"server\",\"scrapes\":%llu,\"scrape_failures\":%llu}\n",
                       (unsigned long long)scraper.scrapes, (unsigned long long)scraper.failures);
            }
        }
        if (pid > 0)
            stop_rushd(pid);
    }
    char command[256];
    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    if (system(command) != 0)
        fprintf(stderr, "bench-server: could not remove %s\n", dir);
    return rc;
}

int main(int argc, char **argv)
{
    const char *connect_url = NULL;
    const char *rushd = NULL;
    double seconds = 2.0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--connect") == 0)
            connect_url = argv[i + 1];
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--rushd") == 0)
            rushd = argv[i + 1];
        else if (strcmp(argv[i], "--durability") == 0)
            durability = argv[i + 1];
        else if (strcmp(argv[i], "--scrape-ms") == 0)
            scrape_ms = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--case") == 0)
            only_case = argv[i + 1];
    }
    bool durability_known = strcmp(durability, "fsync") == 0 || strcmp(durability, "async") == 0 ||
                            strcmp(durability, "none") == 0;
    if (seconds <= 0 || seconds > 600 || (argc % 2) == 0 || !durability_known || scrape_ms < 0) {
        fprintf(stderr, "usage: bench-server [--connect URL] [--seconds S] [--rushd PATH] "
                        "[--durability fsync|async|none] [--scrape-ms MS] [--case NAME]\n");
        return 2;
    }
    if (connect_url != NULL) {
        if (wait_ready(connect_url) != 0) {
            fprintf(stderr, "bench-server: no rushd answering at %s\n", connect_url);
            return 1;
        }
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            run_case(&cases[i], connect_url, seconds);
        return 0;
    }
    char self[400] = {0};
    char rushd_path[512];
    if (rushd == NULL) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash = n > 0 ? strrchr(self, '/') : NULL;
        if (slash != NULL)
            *slash = '\0';
        snprintf(rushd_path, sizeof(rushd_path), "%s/rushd", self);
        rushd = rushd_path;
    }
    return run_own_rushd(rushd, seconds);
}
