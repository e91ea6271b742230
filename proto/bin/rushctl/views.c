/*
 * views.c — `rushctl top` and `rushctl report` (views.h).
 *
 * top reads GET /api/dashboard.json from rushd's HTTP console (engine/ops/ops_dashboard.c names
 * the fields) with a plain HTTP/1.0 request, and prints one screen: totals, rates (the
 * difference between two readings; none with --once), latency, refusals, health, and one line
 * per SKU. Without --once it redraws in place every --interval until SIGINT or SIGTERM.
 *
 * report replays the confirmed-order stream from seq 1 of every shard (rush/subscriber.h) until
 * it has every event published when it started, and adds them up per SKU: the totals are, by
 * construction, what the stream carries. A range the publisher no longer serves (removed by a
 * snapshot) fails the report (exit 1) rather than print totals short of the truth.
 *
 * Bounds: a response of at most TOP_BODY_BYTES_MAX; REPORT_SKUS_MAX SKUs in one report.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "rush/subscriber.h"
#include "rush/types.h"
#include "views.h"

#define EXIT_DONE 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define TOP_BODY_BYTES_MAX (16u << 20)
#define TOP_INTERVAL_MS_DEFAULT 1000
#define REPORT_SKUS_MAX 65536 /* a power of two: the table has twice as many slots */
#define REPORT_POLL_EVENTS 4096
#define REPORT_SLICE_MS 100

static volatile sig_atomic_t stopping;

static void on_signal(int signal_number)
{
    (void)signal_number;
    stopping = 1;
}

/* ---- a plain HTTP/1.0 GET ---- */

static int connect_to(const char *address, int timeout_ms)
{
    const char *colon = strrchr(address, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - address) >= sizeof host)
        return -EINVAL;
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

/* The body of a 200 answer to GET path (malloc'ed, NUL-terminated), or NULL with why. */
static char *http_get(const char *address, const char *path, int timeout_ms, char *why,
                      size_t why_size)
{
    int fd = connect_to(address, timeout_ms);
    if (fd < 0) {
        snprintf(why, why_size, "cannot reach http://%s: %s", address, strerror(-fd));
        return NULL;
    }
    char request[256];
    int len =
        snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, address);
    size_t cap = 65536, got = 0;
    char *buf = malloc(cap);
    bool ok = buf != NULL && write(fd, request, (size_t)len) == len;
    ssize_t n = 1;
    while (ok && n > 0 && got + 1 < TOP_BODY_BYTES_MAX) {
        if (got + 1 == cap) {
            char *bigger = realloc(buf, cap * 2);
            ok = bigger != NULL;
            buf = bigger ? bigger : buf;
            cap *= 2;
        }
        n = ok ? read(fd, buf + got, cap - got - 1) : -1;
        got += n > 0 ? (size_t)n : 0;
    }
    close(fd);
    char *body = NULL;
    if (ok && n == 0) {
        buf[got] = '\0';
        body = strstr(buf, "\r\n\r\n");
    }
    if (body == NULL || strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 8, " 200", 4) != 0) {
        snprintf(why, why_size, "http://%s%s: %s", address, path,
                 body ? "answered other than 200" : "no whole answer");
        free(buf);
        return NULL;
    }
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

/* ---- top ---- */

static int64_t get_i64(const json_t *object, const char *name)
{
    const json_t *value = json_object_get(object, name);
    return json_is_integer(value) ? (int64_t)json_integer_value(value) : 0;
}

static double get_real(const json_t *object, const char *name)
{
    const json_t *value = json_object_get(object, name);
    return json_is_number(value) ? json_number_value(value) : 0;
}

/* "1,234,567" (cap >= 32). */
static const char *grouped(int64_t value, char *out, size_t cap)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%" PRId64, value < 0 ? -value : value);
    size_t len = strlen(digits), o = 0;
    if (value < 0)
        out[o++] = '-';
    for (size_t i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

/* "12,345.67" yuan from fen. */
static const char *yuan(int64_t fen, char *out, size_t cap)
{
    char whole[32];
    snprintf(out, cap, "%s.%02" PRId64, grouped(fen / 100, whole, sizeof whole),
             (fen < 0 ? -fen : fen) % 100);
    return out;
}

static void top_header(const json_t *d, const json_t *previous)
{
    const json_t *t = json_object_get(d, "totals");
    char a[40], b[40], c[40];
    double up_s = (double)(get_i64(d, "time_ns") - get_i64(d, "started_ns")) / 1e9;
    const json_t *wal = json_object_get(d, "wal"), *stream = json_object_get(d, "stream");
    printf("rush top   uptime %.0f s   shards %" PRId64 "   log %s   stream %s\n", up_s,
           get_i64(d, "shards"), json_is_true(json_object_get(wal, "failed")) ? "FAILED" : "ok",
           json_is_true(json_object_get(stream, "on")) ? "publishing" : "off");
    printf("GMV %s yuan (%" PRId64 " fen)   confirmed orders %s   units %s\n",
           yuan(get_i64(t, "gmv_fen"), a, sizeof a), get_i64(t, "gmv_fen"),
           grouped(get_i64(t, "orders_confirmed"), b, sizeof b),
           grouped(get_i64(t, "units_sold"), c, sizeof c));
    if (previous != NULL) {
        const json_t *p = json_object_get(previous, "totals");
        double dt = (double)(get_i64(d, "time_ns") - get_i64(previous, "time_ns")) / 1e9;
        dt = dt > 0.001 ? dt : 0.001;
        printf("per second: GMV %.2f yuan   orders %.0f   requests %.0f\n",
               (double)(get_i64(t, "gmv_fen") - get_i64(p, "gmv_fen")) / 100 / dt,
               (double)(get_i64(t, "orders_confirmed") - get_i64(p, "orders_confirmed")) / dt,
               (double)(get_i64(t, "requests") - get_i64(p, "requests")) / dt);
    }
    const json_t *l = json_object_get(d, "latency_us");
    printf("latency p50/p99 us: end to end %.0f/%.0f   decide %.0f/%.0f   fdatasync %.0f/%.0f\n",
           get_real(l, "request_p50"), get_real(l, "request_p99"), get_real(l, "decide_p50"),
           get_real(l, "decide_p99"), get_real(l, "sync_p50"), get_real(l, "sync_p99"));
}

static void top_health(const json_t *d)
{
    printf("refusals:");
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)json_object_get(d, "outcomes"), name, value)
    {
        if (strcmp(name, "ok") != 0 && json_integer_value(value) > 0)
            printf(" %s %" PRId64, name, (int64_t)json_integer_value(value));
    }
    const json_t *busy = json_object_get(d, "busy"), *t = json_object_get(d, "totals");
    printf("\nbusy: no slot %" PRId64 ", ring full %" PRId64 ", table full %" PRId64
           "   in flight %" PRId64 " of %" PRId64 "\n",
           get_i64(busy, "no_slot"), get_i64(busy, "ring_full"), get_i64(busy, "table_full"),
           get_i64(d, "in_flight"), get_i64(d, "in_flight_max"));
    printf("groups: completed %" PRId64 ", failed %" PRId64 ", virtual seats %" PRId64
           "   released %" PRId64 ", expired %" PRId64 ", refunds %" PRId64 " (%" PRId64
           " fen)\n\n",
           get_i64(t, "groups_completed"), get_i64(t, "groups_failed"), get_i64(t, "virtual_seats"),
           get_i64(t, "orders_released"), get_i64(t, "orders_expired"), get_i64(t, "refunds"),
           get_i64(t, "refunds_fen"));
}

static void top_skus(const json_t *d)
{
    printf("%-18s %-24s %10s %9s %10s %10s %14s %9s\n", "SKU", "NAME", "AVAILABLE", "RESERVED",
           "CONFIRMED", "SOLD", "GMV FEN", "SOLD OUT");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(d, "skus"), i, s)
    {
        const char *name = json_string_value(json_object_get(s, "name"));
        char available[32], sold_out[32] = "-";
        if (json_is_true(json_object_get(s, "unlimited")))
            snprintf(available, sizeof available, "unlimited");
        else
            snprintf(available, sizeof available, "%" PRId64, get_i64(s, "available"));
        if (get_real(s, "sold_out_s") >= 0)
            snprintf(sold_out, sizeof sold_out, "%.1fs", get_real(s, "sold_out_s"));
        printf("%-18" PRId64 " %-24.24s %10s %9" PRId64 " %10" PRId64 " %10" PRId64 " %14" PRId64
               " %9s\n",
               get_i64(s, "id"), name && name[0] ? name : "-", available, get_i64(s, "reserved"),
               get_i64(s, "confirmed"), get_i64(s, "units_sold"), get_i64(s, "gmv_fen"), sold_out);
    }
}

static int top_parse(int argc, char **argv, const char **address, bool *once, int *interval_ms)
{
    static const struct option long_options[] = {{"http", required_argument, NULL, 'a'},
                                                 {"once", no_argument, NULL, 'o'},
                                                 {"interval", required_argument, NULL, 'i'},
                                                 {NULL, 0, NULL, 0}};
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "+", long_options, NULL)) != -1) {
        if (option == 'a')
            *address = optarg;
        else if (option == 'o')
            *once = true;
        else if (option == 'i')
            *interval_ms = atoi(optarg);
        else
            return EXIT_USAGE;
    }
    if (optind != argc || *interval_ms < 100 || *interval_ms > 60000) {
        fprintf(stderr, "rushctl: usage: top [--http HOST:PORT] [--once] [--interval MS]\n");
        return EXIT_USAGE;
    }
    return 0;
}

int rushctl_top(int argc, char **argv, int timeout_ms)
{
    const char *address = RUSHCTL_DEFAULT_HTTP;
    bool once = false;
    int interval_ms = TOP_INTERVAL_MS_DEFAULT;
    int rc = top_parse(argc, argv, &address, &once, &interval_ms);
    if (rc != 0)
        return rc;
    struct sigaction action = {.sa_handler = on_signal};
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    json_t *previous = NULL;
    while (!stopping) {
        char why[256];
        char *body = http_get(address, "/api/dashboard.json", timeout_ms, why, sizeof why);
        json_t *d = body ? json_loads(body, 0, NULL) : NULL;
        free(body);
        if (d == NULL) {
            fprintf(stderr, "rushctl: top: %s\n", body ? "the figures do not parse" : why);
            rc = EXIT_USAGE;
            break;
        }
        if (!once)
            printf("\033[H\033[2J"); /* home, clear: redraw in place */
        top_header(d, previous);
        top_health(d);
        top_skus(d);
        fflush(stdout);
        json_decref(previous);
        previous = d;
        if (once)
            break;
        for (int64_t end = rush_clock_monotonic_ms() + interval_ms;
             !stopping && rush_clock_monotonic_ms() < end;)
            poll(NULL, 0, 50);
    }
    json_decref(previous);
    return rc;
}

/* ---- report ---- */

struct report_sku {
    uint64_t id; /* 0: an empty slot */
    uint64_t units, orders, gmv_fen, released, expired, refunds, refunds_fen;
    uint64_t groups_completed, groups_failed, virtual_seats;
};

struct report {
    struct report_sku *table; /* 2 * REPORT_SKUS_MAX slots */
    uint32_t sku_count;
    struct report_sku totals;
    uint64_t events;
};

static struct report_sku *report_slot(struct report *r, uint64_t id)
{
    uint32_t mask = 2 * REPORT_SKUS_MAX - 1, slot = (uint32_t)(id * 0x9E3779B97F4A7C15ull >> 40);
    for (uint32_t probe = 0; probe <= mask; probe++, slot++) {
        struct report_sku *s = &r->table[slot & mask];
        if (s->id == id)
            return s;
        if (s->id == 0) {
            if (r->sku_count == REPORT_SKUS_MAX)
                return NULL;
            r->sku_count++;
            s->id = id;
            return s;
        }
    }
    return NULL;
}

static void report_count(struct report_sku *s, const struct rush_stream_event *e)
{
    uint64_t fen = (uint64_t)e->price_fen * e->qty;
    switch ((enum rush_event_type)e->type) {
    case RUSH_EV_ORDER_CONFIRMED:
        s->orders++, s->units += e->qty, s->gmv_fen += fen;
        break;
    case RUSH_EV_ORDER_RELEASED:
        s->released++;
        break;
    case RUSH_EV_ORDER_EXPIRED:
        s->expired++;
        break;
    case RUSH_EV_REFUND_DUE:
    case RUSH_EV_TIER_REFUND_DUE: /* a tiered seat's difference */
        s->refunds++, s->refunds_fen += fen;
        break;
    case RUSH_EV_GROUP_COMPLETED:
        s->groups_completed++, s->virtual_seats += e->qty;
        break;
    case RUSH_EV_GROUP_FAILED:
        s->groups_failed++;
        break;
    case RUSH_EV_NONE:
    case RUSH_EV_REJECTED:
    case RUSH_EV_ORDER_RESERVED:
    case RUSH_EV_GROUP_OPENED:
    case RUSH_EV_STOCK_ADJUSTED:
    case RUSH_EV_SKU_PAUSED:
    case RUSH_EV_SKU_RESUMED:
    case RUSH_EV_SKU_PUT:
    case RUSH_EV_SKU_PART:
    case RUSH_EV_SEAT_INVITED:
    case RUSH_EV_INVITER_DUE: /* a reward for the inviter: not an order's count */
    case RUSH_EV_ADMIN_AUDIT: /* skipped before: a part's sku_id is text */
    case RUSH_EV_AUDIT_PART:
    case RUSH_EV_REGISTERED: /* a registration: not an order */
    case RUSH_EV_TYPE_COUNT_:
        break;
    }
}

static int sku_order(const void *a, const void *b)
{
    uint64_t x = ((const struct report_sku *)a)->id, y = ((const struct report_sku *)b)->id;
    return x < y ? -1 : x > y;
}

enum report_format { REPORT_TEXT, REPORT_JSON, REPORT_CSV };

static void report_line(enum report_format format, const struct report_sku *s, bool total,
                        bool last)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, s->id);
    const char *key = total ? "TOTAL" : id;
    if (format == REPORT_JSON) {
        if (total)
            printf("\"totals\":{");
        else
            printf("    {\"sku\":%s,", id);
        printf("\"units_confirmed\":%" PRIu64 ",\"orders_confirmed\":%" PRIu64
               ",\"gmv_fen\":%" PRIu64 ",\"orders_released\":%" PRIu64
               ",\"orders_expired\":%" PRIu64 ",\"refunds_due\":%" PRIu64
               ",\"refunds_due_fen\":%" PRIu64 ",\"groups_completed\":%" PRIu64
               ",\"groups_failed\":%" PRIu64 ",\"virtual_seats_used\":%" PRIu64 "}%s\n",
               s->units, s->orders, s->gmv_fen, s->released, s->expired, s->refunds, s->refunds_fen,
               s->groups_completed, s->groups_failed, s->virtual_seats, total || last ? "" : ",");
        return;
    }
    if (format == REPORT_CSV)
        printf("%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
               ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n",
               key, s->units, s->orders, s->gmv_fen, s->released, s->expired, s->refunds,
               s->refunds_fen, s->groups_completed, s->groups_failed, s->virtual_seats);
    else
        printf("%-18s %10" PRIu64 " %10" PRIu64 " %16" PRIu64 " %9" PRIu64 " %8" PRIu64 " %8" PRIu64
               " %12" PRIu64 " %9" PRIu64 " %7" PRIu64 " %8" PRIu64 "\n",
               key, s->units, s->orders, s->gmv_fen, s->released, s->expired, s->refunds,
               s->refunds_fen, s->groups_completed, s->groups_failed, s->virtual_seats);
}

static void report_print(struct report *r, enum report_format format)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < 2 * REPORT_SKUS_MAX; i++)
        if (r->table[i].id != 0)
            r->table[n++] = r->table[i];
    qsort(r->table, n, sizeof(r->table[0]), sku_order);
    if (format == REPORT_JSON)
        printf("{\"source\":\"stream\",\"events\":%" PRIu64 ",\"skus\":[\n", r->events);
    else if (format == REPORT_CSV)
        printf("sku,units_confirmed,orders_confirmed,gmv_fen,orders_released,orders_expired,"
               "refunds_due,refunds_due_fen,groups_completed,groups_failed,virtual_seats_used\n");
    else
        printf("%-18s %10s %10s %16s %9s %8s %8s %12s %9s %7s %8s\n", "SKU", "UNITS", "ORDERS",
               "GMV FEN", "RELEASED", "EXPIRED", "REFUNDS", "REFUNDS FEN", "GROUPS OK", "FAILED",
               "VIRTUAL");
    for (uint32_t i = 0; i < n; i++)
        report_line(format, &r->table[i], false, i + 1 == n);
    if (format == REPORT_JSON)
        printf("],\n");
    report_line(format, &r->totals, true, true);
    if (format == REPORT_JSON)
        printf("}\n");
    else if (format == REPORT_TEXT)
        printf("(%" PRIu64 " stream events, %u SKUs; virtual-seat budgets: rushd's /metrics "
               "rush_sku_virtual_seats_budget)\n",
               r->events, r->sku_count);
}

/* Polls until every event published when it started is delivered. 0, or the exit status. */
static int report_follow(struct rush_subscriber *sub, struct report *r, int timeout_ms)
{
    static struct rush_stream_event events[REPORT_POLL_EVENTS];
    int64_t quiet_since = rush_clock_monotonic_ms();
    while (!stopping) {
        int n = rush_subscriber_poll(sub, events, REPORT_POLL_EVENTS, REPORT_SLICE_MS);
        if (n < 0) {
            fprintf(stderr, "rushctl: report: the stream: %s (%s)\n",
                    rush_subscriber_last_error(sub), rush_strerror(n));
            return n == -ENODATA ? EXIT_FAILED : EXIT_USAGE;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].type == RUSH_EV_ADMIN_AUDIT || events[i].type == RUSH_EV_AUDIT_PART) {
                r->events++; /* an admin's audit: no figure (a part's sku_id is text) */
                continue;
            }
            struct report_sku *s = report_slot(r, events[i].sku_id);
            if (s == NULL) {
                fprintf(stderr, "rushctl: report: more than %d SKUs\n", REPORT_SKUS_MAX);
                return EXIT_FAILED;
            }
            report_count(s, &events[i]);
            report_count(&r->totals, &events[i]);
            r->events++;
        }
        if (n > 0)
            quiet_since = rush_clock_monotonic_ms();
        else if (rush_subscriber_caught_up(sub))
            return 0;
        else if (rush_clock_monotonic_ms() - quiet_since > timeout_ms) {
            fprintf(stderr, "rushctl: report: no answer from the stream within %d ms\n",
                    timeout_ms);
            return EXIT_USAGE;
        }
    }
    return EXIT_FAILED;
}

static int report_parse(int argc, char **argv, struct rush_subscriber_config *config,
                        enum report_format *format)
{
    static const struct option long_options[] = {{"pub", required_argument, NULL, 'p'},
                                                 {"replay", required_argument, NULL, 'r'},
                                                 {"json", no_argument, NULL, 'j'},
                                                 {"csv", no_argument, NULL, 'c'},
                                                 {NULL, 0, NULL, 0}};
    int option;
    optind = 1;
    while ((option = getopt_long(argc, argv, "+", long_options, NULL)) != -1) {
        if (option == 'p')
            config->pub_url = optarg;
        else if (option == 'r')
            config->replay_url = optarg;
        else if (option == 'j')
            *format = REPORT_JSON;
        else if (option == 'c')
            *format = REPORT_CSV;
        else
            return EXIT_USAGE;
    }
    char why[RUSH_SUBSCRIBER_ERROR_BYTES];
    if (optind != argc || rush_subscriber_config_check(config, why, sizeof why) != 0) {
        fprintf(stderr, "rushctl: usage: report [--pub URL] [--replay URL] [--json | --csv]\n");
        return EXIT_USAGE;
    }
    return 0;
}

int rushctl_report(int argc, char **argv, int timeout_ms)
{
    struct rush_subscriber_config config;
    rush_subscriber_config_default(&config);
    config.pub_url = RUSHCTL_DEFAULT_PUB_URL;
    config.replay_url = RUSHCTL_DEFAULT_REPLAY_URL;
    config.replay_timeout_ms = (uint32_t)timeout_ms;
    enum report_format format = REPORT_TEXT;
    int rc = report_parse(argc, argv, &config, &format);
    if (rc != 0)
        return rc;
    struct report r = {.table = calloc(2 * REPORT_SKUS_MAX, sizeof(struct report_sku))};
    struct rush_subscriber *sub = NULL;
    if (r.table == NULL || rush_subscriber_open(&config, &sub) != 0) {
        fprintf(stderr, "rushctl: report: %s\n",
                r.table ? rush_subscriber_last_error(NULL) : "out of memory");
        free(r.table);
        return EXIT_USAGE;
    }
    rc = report_follow(sub, &r, timeout_ms);
    if (rc == 0)
        report_print(&r, format);
    rush_subscriber_close(sub);
    free(r.table);
    return rc;
}
