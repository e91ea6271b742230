/*
 * test_console.c — rushd's operators' console (engine/ops/ops.h) from outside, as an operations
 * room uses it: its HTTP endpoint with a plain socket client (no curl), Debian's promtool and a
 * real Prometheus server scraping it, the dashboard page in headless Chromium against rushd under
 * load, and `rushctl top --once` / `rushctl report` after a verified rush-loadgen run.
 *
 * Each test starts its own rushd (tests/system/rushd_child.h: ipc endpoints, fsync durability and
 * its publisher, the HTTP console on a free loopback port). A test that needs promtool,
 * prometheus or chromium skips only when that program is not installed
 * (scripts/install-deps.sh installs them). Every wait polls for the event it waits for with a
 * deadline; no figure depends on timing. The screenshot and the DOM the Chromium test saw are
 * kept in build/test-output/test_console/.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include "rushd_child.h"

#define HTTP_BYTES_MAX (4u << 20)
#define WAIT_MS 30000
#define PROGRAM_MS 60000
#define SLOW_CLIENTS 40 /* more than RUSH_OPS_HTTP_CONNECTIONS_MAX */
#define OUTPUT_DIR "test-output/test_console"

static char http_buf[HTTP_BYTES_MAX];
static int http_port;
static pid_t helper_pid = -1; /* prometheus or loadgen, killed by .fini when a test failed */

static void console_start(void)
{
    signal(SIGPIPE, SIG_IGN);
    child_make_dir(&rushd, "console");
    rushd.durability = "fsync";
    http_port = child_free_port();
    snprintf(rushd.http, sizeof rushd.http, "127.0.0.1:%d", http_port);
    child_write_campaign(&rushd, CHILD_ENGINE, CHILD_TOKEN, child_skus);
    rushd_spawn();
}

static void console_stop(void)
{
    if (helper_pid > 0) {
        kill(-helper_pid, SIGKILL);
        child_wait_exit(helper_pid, CHILD_EXIT_MS);
        helper_pid = -1;
    }
    rushd_cleanup();
}

TestSuite(console, .init = console_start, .fini = console_stop, .timeout = 120);

/* ---- a plain HTTP/1.0 client ---- */

static int http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(0x7f000001)};
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&to, sizeof to) == 0,
              "connect 127.0.0.1:%d: %s", port, strerror(errno));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends `request` whole, reads the answer into http_buf; the status code. */
static int http_raw(int port, const char *request)
{
    int fd = http_connect(port);
    cr_assert(write(fd, request, strlen(request)) == (ssize_t)strlen(request));
    size_t got = 0;
    ssize_t n;
    while (got + 1 < sizeof http_buf &&
           (n = read(fd, http_buf + got, sizeof http_buf - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    http_buf[got] = '\0';
    int status = 0;
    cr_assert(sscanf(http_buf, "HTTP/1.%*d %d", &status) == 1, "no status line in '%.80s'",
              http_buf);
    return status;
}

static int http_request(int port, const char *method, const char *path)
{
    char request[512];
    snprintf(request, sizeof request, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    return http_raw(port, request);
}

/* GET path: the body, which must come with a 200. */
static const char *http_get(int port, const char *path)
{
    int status = http_request(port, "GET", path);
    cr_assert_eq(status, 200, "GET %s: %d", path, status);
    const char *body = strstr(http_buf, "\r\n\r\n");
    cr_assert(body != NULL);
    return body + 4;
}

static json_t *dashboard(void)
{
    json_error_t error;
    json_t *root = json_loads(http_get(http_port, "/api/dashboard.json"), 0, &error);
    cr_assert(root != NULL, "dashboard.json does not parse: %s", error.text);
    return root;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Polls the dashboard until the shards answered a ledger round that began after `after_ns`. */
static void wait_ledger_after(int64_t after_ns)
{
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    for (;;) {
        json_t *d = dashboard();
        int64_t ledger_ns = json_integer_value(json_object_get(d, "ledger_ns"));
        json_decref(d);
        if (ledger_ns > after_ns + 600 * 1000000ll) /* RUSH_OPS_LEDGER_MS later: asked after */
            return;
        cr_assert(rush_clock_monotonic_ms() < deadline, "no ledger round after the load");
        child_sleep_ms(50);
    }
}

/* ---- programs ---- */

/* The full path of `name` on $PATH, or NULL: the test then skips. */
static const char *installed(const char *name)
{
    static char path[CHILD_PATH_BYTES];
    const char *dirs = getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin";
    for (const char *at = dirs; *at != '\0';) {
        size_t len = strcspn(at, ":");
        snprintf(path, sizeof path, "%.*s/%s", (int)len, at, name);
        if (len > 0 && access(path, X_OK) == 0)
            return path;
        at += len + (at[len] == ':');
    }
    return NULL;
}

/* Starts argv (in its own process group) with stdin from in_path, stdout to out_path. */
static pid_t spawn(char *const argv[], const char *in_path, const char *out_path)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
        int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(rushd.log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(in, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Runs argv to its end (bounded: killed with its group after PROGRAM_MS); its exit status. */
static int run(char *const argv[], const char *in_path, const char *out_path)
{
    pid_t pid = spawn(argv, in_path, out_path);
    int status = child_wait_exit(pid, PROGRAM_MS);
    if (status == -1) {
        kill(-pid, SIGKILL);
        child_wait_exit(pid, CHILD_EXIT_MS);
    }
    cr_assert(status >= 0, "%s did not finish in %d ms", argv[0], PROGRAM_MS);
    return status;
}

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *file = fopen(path, "r");
    cr_assert(file != NULL, "cannot read %s", path);
    size_t len = fread(buf, 1, cap - 1, file);
    buf[len] = '\0';
    fclose(file);
}

static void bin_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", rushd.bin, name);
}

/* A JSON order request on rushd's JSON endpoint; the reply's "outcome" must be `outcome`. */
static void order(const char *text, const char *outcome)
{
    char reply[1024];
    cr_assert(child_json(rushd.json, text, reply, sizeof reply, 5000) == 0, "no reply to %s", text);
    char expected[64];
    snprintf(expected, sizeof expected, "\"outcome\":\"%s\"", outcome);
    cr_assert(strstr(reply, expected) != NULL, "%s answered %s", text, reply);
}

static void reserve(uint64_t sku, uint64_t user, const char *outcome)
{
    char text[256];
    snprintf(text, sizeof text,
             "{\"op\":\"reserve\",\"sku\":%llu,\"user\":%llu,\"qty\":1,\"key\":\"k-%llu-%llu\"}",
             (unsigned long long)sku, (unsigned long long)user, (unsigned long long)sku,
             (unsigned long long)user);
    order(text, outcome);
}

/* The engine's own ledger of a SKU (query_sku on the JSON endpoint). */
static void engine_ledger(uint64_t sku, int64_t *available, int64_t *reserved, int64_t *confirmed)
{
    char text[128], reply[1024];
    snprintf(text, sizeof text, "{\"op\":\"query_sku\",\"sku\":%llu}", (unsigned long long)sku);
    cr_assert(child_json(rushd.json, text, reply, sizeof reply, 5000) == 0);
    json_t *root = json_loads(reply, 0, NULL);
    cr_assert(root != NULL, "%s", reply);
    *available = json_integer_value(json_object_get(root, "available"));
    *reserved = json_integer_value(json_object_get(root, "reserved"));
    *confirmed = json_integer_value(json_object_get(root, "confirmed"));
    json_decref(root);
}

/* ---- /metrics ---- */

#define HAS(text, what)                                                                            \
    cr_assert(strstr((text), (what)) != NULL, "no '%s' in:\n%.2000s", (what), (text))

Test(console, metrics_pass_promtool_and_carry_the_sku_figures)
{
    reserve(1001, 1, "ok");
    reserve(1001, 2, "ok");
    reserve(1001, 3, "sold_out");
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    while (strstr(http_get(http_port, "/metrics"),
                  "rush_sku_reserved_units{sku=\"1001\",name=\"tiny\"} 2\n") == NULL) {
        cr_assert(rush_clock_monotonic_ms() < deadline,
                  "the ledger never showed SKU 1001's reservations");
        child_sleep_ms(50);
    }
    json_t *d = dashboard();
    double table_full = json_real_value(json_object_get(d, "table_full"));
    cr_assert(table_full > 0 && table_full < 1, "the fullest table: %f", table_full);
    json_decref(d);
    const char *metrics = http_get(http_port, "/metrics"); /* in http_buf: no request after */
    HAS(metrics, "rush_sku_available_units{sku=\"1001\",name=\"tiny\"} 0\n");
    HAS(metrics, "rush_sku_sellout_seconds{sku=\"1001\",name=\"tiny\"} ");
    HAS(metrics, "rush_requests_total{op=\"reserve\",outcome=\"ok\"} 2\n");
    HAS(metrics, "rush_requests_total{op=\"reserve\",outcome=\"sold_out\"} 1\n");
    HAS(metrics, "rush_sku_virtual_seats_budget{sku=\"4001\",name=\"group\"} ");
    HAS(metrics, "rush_decision_latency_seconds_bucket{le=\"+Inf\"} ");
    HAS(metrics, "rush_request_latency_seconds_count ");
    HAS(metrics, "rush_wal_sync_latency_seconds_sum ");
    HAS(metrics, "rush_wal_bytes_written_total{shard=\"0\"} ");
    HAS(metrics, "rush_stream_head_seq{shard=\"1\"} ");
    HAS(metrics, "rush_ring_inbound_items{shard=\"0\"} ");
    HAS(metrics, "rush_busy_total{cause=\"no_slot\"} 0\n");
    HAS(metrics, "rush_table_capacity{shard=\"1\",table=\"orders\"} 65536\n"); /* CHILD_ENGINE */
    HAS(metrics, "rush_table_used{shard=\"0\",table=\"skus\"} ");
    const char *promtool = installed("promtool");
    if (promtool == NULL)
        cr_skip_test("promtool is not installed (scripts/install-deps.sh installs prometheus)");
    char path[CHILD_PATH_BYTES + 16], out[CHILD_PATH_BYTES + 16];
    snprintf(path, sizeof path, "%s/metrics.txt", rushd.dir);
    snprintf(out, sizeof out, "%s/promtool.out", rushd.dir);
    child_write_file(path, metrics);
    char *argv[] = {(char *)promtool, "check", "metrics", NULL};
    int status = run(argv, path, out);
    char said[4096];
    slurp(out, said, sizeof said);
    if (status != 0)
        child_print_log(&rushd); /* promtool's stderr is there */
    cr_assert_eq(status, 0, "promtool check metrics: exit %d: %s", status, said);
}

Test(console, prometheus_scrapes_rushd_and_answers_a_promql_query)
{
    const char *prometheus = installed("prometheus");
    if (prometheus == NULL)
        cr_skip_test("prometheus is not installed (scripts/install-deps.sh installs it)");
    for (uint64_t user = 1; user <= 3; user++)
        reserve(1002, user, "ok");
    char config[CHILD_PATH_BYTES + 16], storage[CHILD_PATH_BYTES + 16], listen[64], text[512];
    snprintf(config, sizeof config, "%s/prometheus.yml", rushd.dir);
    snprintf(storage, sizeof storage, "--storage.tsdb.path=%s/prometheus", rushd.dir);
    int prometheus_port = child_free_port();
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", prometheus_port);
    snprintf(text, sizeof text,
             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
             "scrape_configs:\n  - job_name: rushd\n    static_configs:\n"
             "      - targets: ['127.0.0.1:%d']\n",
             http_port);
    child_write_file(config, text);
    char config_flag[CHILD_PATH_BYTES + 32];
    snprintf(config_flag, sizeof config_flag, "--config.file=%s", config);
    char *argv[] = {(char *)prometheus, config_flag, storage, listen, "--log.level=warn", NULL};
    helper_pid = spawn(argv, NULL, NULL);
    /* rush_sku_reserved_units of SKU 1002, as Prometheus answers it from what it scraped */
    const char *query = "/api/v1/query?query=rush_sku_reserved_units%7Bsku%3D%221002%22%7D";
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    const char *value = NULL;
    json_t *root = NULL;
    while (value == NULL || strcmp(value, "3") != 0) {
        cr_assert(rush_clock_monotonic_ms() < deadline,
                  "Prometheus never answered 3 for SKU 1002 (last: %s)", value ? value : "nothing");
        child_sleep_ms(200);
        json_decref(root);
        root = NULL;
        value = NULL;
        int fd = socket(AF_INET, SOCK_STREAM, 0); /* not up yet: try again */
        struct sockaddr_in to = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)prometheus_port),
                                 .sin_addr.s_addr = htonl(0x7f000001)};
        bool up = connect(fd, (struct sockaddr *)&to, sizeof to) == 0;
        close(fd);
        if (!up || http_request(prometheus_port, "GET", query) != 200)
            continue;
        root = json_loads(strstr(http_buf, "\r\n\r\n") + 4, 0, NULL);
        json_t *result = json_object_get(json_object_get(root, "data"), "result");
        json_t *sample = json_array_get(json_object_get(json_array_get(result, 0), "value"), 1);
        value = json_string_value(sample);
    }
    json_decref(root);
    kill(helper_pid, SIGTERM);
    cr_assert(child_wait_exit(helper_pid, CHILD_EXIT_MS) >= 0, "prometheus did not stop");
    helper_pid = -1;
}

/* ---- bad input ---- */

Test(console, unknown_paths_404_other_methods_405_never_the_token)
{
    cr_assert_eq(http_request(http_port, "GET", "/nope"), 404);
    cr_assert_eq(http_request(http_port, "GET", "/metrics/../admin"), 404);
    cr_assert_eq(http_request(http_port, "HEAD", "/metrics"), 200);
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        cr_assert_eq(http_request(http_port, methods[i], "/metrics"), 405, "%s", methods[i]);
        HAS(http_buf, "Allow: GET, HEAD");
    }
    cr_assert_eq(http_raw(http_port, "POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello"), 405);
    static const char *const paths[] = {"/", "/metrics", "/api/dashboard.json"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        cr_assert(strstr(http_get(http_port, paths[i]), CHILD_TOKEN) == NULL,
                  "%s shows the admin token", paths[i]);
}

Test(console, slow_clients_cannot_stall_rushd_and_are_cut_off)
{
    int fds[SLOW_CLIENTS];
    for (int i = 0; i < SLOW_CLIENTS; i++) { /* half a request line, then silence */
        fds[i] = http_connect(http_port);
        cr_assert(write(fds[i], "GET /metr", 9) == 9);
    }
    /* rushd's loop and shards answer as usual while every HTTP connection is held */
    for (uint64_t user = 1; user <= 3; user++)
        reserve(1005, user, "ok");
    int64_t available, reserved, confirmed;
    engine_ledger(1005, &available, &reserved, &confirmed);
    cr_assert_eq(reserved, 3);
    /* the console closes the silent connections after its timeout (RUSH_OPS_HTTP_TIMEOUT_S) */
    int closed = 0;
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    while (closed < SLOW_CLIENTS && rush_clock_monotonic_ms() < deadline) {
        closed = 0;
        for (int i = 0; i < SLOW_CLIENTS; i++) {
            char byte;
            if (fds[i] < 0) {
                closed++;
                continue;
            }
            ssize_t n = recv(fds[i], &byte, 1, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN)) { /* an EOF or a reset: cut off */
                close(fds[i]);
                fds[i] = -1;
                closed++;
            }
        }
        child_sleep_ms(100);
    }
    cr_assert_eq(closed, SLOW_CLIENTS, "%d of %d silent connections still open",
                 SLOW_CLIENTS - closed, SLOW_CLIENTS);
    HAS(http_get(http_port, "/metrics"), "rush_up 1\n");
}

/* ---- the dashboard in Chromium ---- */

/* Runs headless Chromium on the dashboard with `action` (--dump-dom or --screenshot=FILE). */
static int chromium(const char *browser, const char *action, const char *out_path)
{
    char profile[CHILD_PATH_BYTES + 16], profile_flag[CHILD_PATH_BYTES + 32], url[64];
    snprintf(profile, sizeof profile, "%s/chromium-XXXXXX", rushd.dir);
    cr_assert(mkdtemp(profile) != NULL);
    snprintf(profile_flag, sizeof profile_flag, "--user-data-dir=%s", profile);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", http_port);
    char *argv[] = {(char *)browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    profile_flag,
                    "--window-size=1600,1000",
                    "--virtual-time-budget=4000",
                    (char *)action,
                    url,
                    NULL};
    return run(argv, NULL, out_path);
}

/* The text of the element with id="id" in the DOM (tags inside it skipped), commas dropped. */
static int64_t dom_number(const char *dom, const char *id)
{
    char pattern[96];
    snprintf(pattern, sizeof pattern, "id=\"%s\"", id);
    const char *at = strstr(dom, pattern);
    cr_assert(at != NULL, "no element %s in the rendered page", id);
    at = strchr(at, '>');
    cr_assert(at != NULL);
    char digits[32];
    size_t n = 0;
    for (at++; *at != '<' && *at != '\0' && n + 1 < sizeof digits; at++)
        if ((*at >= '0' && *at <= '9') || *at == '-')
            digits[n++] = *at;
    digits[n] = '\0';
    cr_assert(n > 0, "element %s shows no number", id);
    return strtoll(digits, NULL, 10);
}

static int64_t dom_attribute(const char *dom, const char *id, const char *attribute)
{
    char pattern[96];
    snprintf(pattern, sizeof pattern, "id=\"%s\"", id);
    const char *at = strstr(dom, pattern);
    cr_assert(at != NULL, "no element %s in the rendered page", id);
    snprintf(pattern, sizeof pattern, "%s=\"", attribute);
    const char *value = strstr(at, pattern);
    cr_assert(value != NULL && value < strchr(at, '>'), "%s has no %s", id, attribute);
    return strtoll(value + strlen(pattern), NULL, 10);
}

static pid_t start_loadgen(const char *const *extra)
{
    static char path[CHILD_PATH_BYTES + 16], token[CHILD_PATH_BYTES + 16],
        out[CHILD_PATH_BYTES + 16];
    bin_path(path, sizeof path, "rush-loadgen");
    snprintf(token, sizeof token, "%s/token", rushd.dir);
    snprintf(out, sizeof out, "%s/loadgen.out", rushd.dir);
    child_write_file(token, CHILD_TOKEN "\n");
    char *argv[40] = {
        path,  "--url", rushd.orders, "--admin-url", rushd.admin,  "--admin-token-file",
        token, "--pub", rushd.pub,    "--replay",    rushd.replay, "--quiet"};
    int argc = 12;
    for (int i = 0; extra[i] != NULL; i++)
        argv[argc++] = (char *)extra[i];
    argv[argc] = NULL;
    return spawn(argv, NULL, out);
}

static int finish_loadgen(pid_t pid)
{
    int status = child_wait_exit(pid, PROGRAM_MS);
    cr_assert(status >= 0, "rush-loadgen did not finish");
    helper_pid = -1;
    return status;
}

Test(console, dashboard_in_chromium_shows_the_engine_figures)
{
    const char *browser = installed("chromium");
    if (browser == NULL)
        cr_skip_test("chromium is not installed (scripts/install-deps.sh installs it)");
    cr_assert(mkdir("test-output", 0755) == 0 || errno == EEXIST);
    cr_assert(mkdir(OUTPUT_DIR, 0755) == 0 || errno == EEXIST);
    /* load for a few seconds (open loop) while the page is loaded and photographed */
    const char *load[] = {"--mode",     "open",   "--rate",  "4000", "--duration", "6",
                          "--buyers",   "100000", "--skus",  "3",    "--stock",    "5000",
                          "--sku-base", "700001", "--batch", "8",    NULL};
    pid_t loadgen = helper_pid = start_loadgen(load);
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    json_t *d = NULL;
    while (d == NULL || json_integer_value(json_object_get(json_object_get(d, "totals"),
                                                           "orders_confirmed")) == 0) {
        cr_assert(rush_clock_monotonic_ms() < deadline, "no confirmed order under load");
        json_decref(d);
        child_sleep_ms(50);
        d = dashboard();
    }
    json_decref(d);
    cr_assert_eq(chromium(browser, "--screenshot=" OUTPUT_DIR "/dashboard.png", NULL), 0);
    struct stat shot;
    cr_assert(stat(OUTPUT_DIR "/dashboard.png", &shot) == 0 && shot.st_size > 10000,
              "no screenshot");
    cr_assert_eq(finish_loadgen(loadgen), 0, "rush-loadgen failed (see %s)", rushd.log);
    /* settled: the page must show exactly the engine's and the stream's figures */
    wait_ledger_after(wall_ns());
    cr_assert_eq(chromium(browser, "--dump-dom", OUTPUT_DIR "/dashboard.html"), 0);
    static char dom[1 << 20];
    slurp(OUTPUT_DIR "/dashboard.html", dom, sizeof dom);
    HAS(dom, "class=\"ok\" id=\"live\">live<"); /* the last fetch succeeded */
    int64_t units = 0;
    for (uint64_t sku = 700001; sku <= 700003; sku++) {
        int64_t available, reserved, confirmed;
        engine_ledger(sku, &available, &reserved, &confirmed);
        char id[64];
        snprintf(id, sizeof id, "sku-%llu-available", (unsigned long long)sku);
        cr_assert_eq(dom_number(dom, id), available, "%s", id);
        snprintf(id, sizeof id, "sku-%llu-reserved", (unsigned long long)sku);
        cr_assert_eq(dom_number(dom, id), reserved, "%s", id);
        snprintf(id, sizeof id, "sku-%llu-confirmed", (unsigned long long)sku);
        cr_assert_eq(dom_number(dom, id), confirmed, "%s", id);
        snprintf(id, sizeof id, "sku-%llu-sold", (unsigned long long)sku);
        cr_assert_eq(dom_number(dom, id), confirmed, "%s (stream) against the ledger", id);
        units += confirmed;
    }
    cr_assert(units > 0);
    cr_assert_eq(dom_number(dom, "units"), units);
    cr_assert_eq(dom_number(dom, "orders"), units); /* one unit per order */
    int64_t price = 100;                            /* rush-loadgen's fresh SKUs: 1 yuan */
    cr_assert_eq(dom_attribute(dom, "gmv", "data-fen"), units * price);
    cr_assert_eq(dom_number(dom, "gmv"), units * price); /* "¥1,234.00": the digits are fen */
}

/* ---- rushctl top and report ---- */

static void rushctl(const char *const *args, const char *out_path)
{
    char path[CHILD_PATH_BYTES + 16];
    bin_path(path, sizeof path, "rushctl");
    char *argv[24] = {path};
    int argc = 1;
    for (int i = 0; args[i] != NULL; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    int status = run(argv, NULL, out_path);
    char said[8192];
    slurp(out_path, said, sizeof said);
    if (status != 0)
        child_print_log(&rushd); /* rushctl's stderr is there too */
    cr_assert_eq(status, 0, "rushctl %s: exit %d\n%s", args[0], status, said);
}

/* Sums the JSON lines of `rushctl tail`: per type, and GMV. */
struct tail_sums {
    int64_t confirmed_units, confirmed_orders, gmv_fen, expired, released, events;
};

static struct tail_sums sum_tail(const char *path)
{
    struct tail_sums sums = {0};
    FILE *file = fopen(path, "r");
    cr_assert(file != NULL);
    static char line[4096];
    while (fgets(line, sizeof line, file) != NULL) {
        json_t *event = json_loads(line, 0, NULL);
        cr_assert(event != NULL, "tail line: %s", line);
        const char *type = json_string_value(json_object_get(event, "type"));
        int64_t qty = json_integer_value(json_object_get(event, "qty"));
        int64_t price = json_integer_value(json_object_get(event, "price_fen"));
        sums.events++;
        if (strcmp(type, "order_confirmed") == 0) {
            sums.confirmed_units += qty;
            sums.confirmed_orders++;
            sums.gmv_fen += qty * price;
        }
        sums.expired += strcmp(type, "order_expired") == 0;
        sums.released += strcmp(type, "order_released") == 0;
        json_decref(event);
    }
    fclose(file);
    return sums;
}

static int64_t totals_of(const json_t *report, const char *name)
{
    return json_integer_value(json_object_get(json_object_get(report, "totals"), name));
}

Test(console, top_once_and_report_match_a_verified_run)
{
    const char *load[] = {"--scenario", "payments", "--buyers",       "4000", "--skus",       "3",
                          "--stock",    "300",      "--confirm-rate", "0.5",  "--pay-ttl-ms", "300",
                          "--sku-base", "800001",   "--verify",       NULL};
    cr_assert_eq(finish_loadgen(helper_pid = start_loadgen(load)), 0,
                 "the verified run failed (see %s/loadgen.out)", rushd.dir);
    /* the stream as rushctl tail delivers it, summed here */
    char tail_out[CHILD_PATH_BYTES + 16], report_out[CHILD_PATH_BYTES + 16],
        top_out[CHILD_PATH_BYTES + 16];
    snprintf(tail_out, sizeof tail_out, "%s/tail.jsonl", rushd.dir);
    snprintf(report_out, sizeof report_out, "%s/report.json", rushd.dir);
    snprintf(top_out, sizeof top_out, "%s/top.txt", rushd.dir);
    /* every expiry (pay TTL 300 ms) has happened once the ledger holds nothing reserved */
    int64_t deadline = rush_clock_monotonic_ms() + WAIT_MS;
    for (uint64_t sku = 800001; sku <= 800003; sku++) {
        int64_t available, reserved = 1, confirmed;
        while (engine_ledger(sku, &available, &reserved, &confirmed), reserved != 0) {
            cr_assert(rush_clock_monotonic_ms() < deadline, "SKU %llu keeps units reserved",
                      (unsigned long long)sku);
            child_sleep_ms(50);
        }
    }
    const char *report_args[] = {"--timeout", "5000",       "report", "--pub", rushd.pub,
                                 "--replay",  rushd.replay, "--json", NULL};
    rushctl(report_args, report_out);
    json_error_t error;
    json_t *report = json_load_file(report_out, 0, &error);
    cr_assert(report != NULL, "report --json: %s", error.text);
    int64_t events = json_integer_value(json_object_get(report, "events"));
    char count[32];
    snprintf(count, sizeof count, "%lld", (long long)events);
    const char *tail_args[] = {"tail",    "--pub", rushd.pub, "--replay", rushd.replay,
                               "--count", count,   "--out",   tail_out,   NULL};
    rushctl(tail_args, top_out); /* tail writes to --out; its stdout is empty */
    struct tail_sums sums = sum_tail(tail_out);
    cr_assert_eq(sums.events, events);
    cr_assert(sums.confirmed_units > 0 && sums.expired > 0, "a payments run confirms and expires");
    cr_assert_eq(totals_of(report, "units_confirmed"), sums.confirmed_units);
    cr_assert_eq(totals_of(report, "orders_confirmed"), sums.confirmed_orders);
    cr_assert_eq(totals_of(report, "gmv_fen"), sums.gmv_fen);
    cr_assert_eq(totals_of(report, "orders_expired"), sums.expired);
    cr_assert_eq(totals_of(report, "orders_released"), sums.released);
    int64_t ledger_confirmed = 0;
    for (uint64_t sku = 800001; sku <= 800003; sku++) {
        int64_t available, reserved, confirmed;
        engine_ledger(sku, &available, &reserved, &confirmed);
        ledger_confirmed += confirmed;
    }
    cr_assert_eq(totals_of(report, "units_confirmed"), ledger_confirmed);
    json_decref(report);
    /* top --once prints the same GMV and each SKU's ledger line */
    char http_flag[64];
    snprintf(http_flag, sizeof http_flag, "127.0.0.1:%d", http_port);
    const char *top_args[] = {"top", "--once", "--http", http_flag, NULL};
    wait_ledger_after(wall_ns());
    rushctl(top_args, top_out);
    static char top[65536];
    slurp(top_out, top, sizeof top);
    char expected[128];
    snprintf(expected, sizeof expected, "(%lld fen)", (long long)sums.gmv_fen);
    HAS(top, expected);
    for (uint64_t sku = 800001; sku <= 800003; sku++) {
        int64_t available, reserved, confirmed;
        engine_ledger(sku, &available, &reserved, &confirmed);
        snprintf(expected, sizeof expected, "\n%-18llu ", (unsigned long long)sku);
        const char *row = strstr(top, expected);
        cr_assert(row != NULL, "no line for SKU %llu in:\n%s", (unsigned long long)sku, top);
        long long shown[5]; /* after "ID(18) NAME(24) ": available reserved confirmed sold gmv */
        cr_assert_eq(sscanf(row + 1 + 19 + 25, "%lld %lld %lld %lld %lld", &shown[0], &shown[1],
                            &shown[2], &shown[3], &shown[4]),
                     5, "SKU line: %.120s", row + 1);
        cr_assert_eq(shown[0], available);
        cr_assert_eq(shown[1], reserved);
        cr_assert_eq(shown[2], confirmed);
        cr_assert_eq(shown[3], confirmed, "units sold on the stream against the ledger");
        cr_assert_eq(shown[4], confirmed * 100, "GMV: rush-loadgen's SKUs cost 100 fen");
    }
}

/* ---- audited admin actions ---- */

Test(console, admin_actions_are_audited_with_operator_and_reason)
{
    const char *adjust[] = {"--admin",    rushd.admin, "--token",  CHILD_TOKEN,
                            "--operator", "alice",     "--reason", "restock from warehouse 7",
                            "adjust",     "1002",      "5",        NULL};
    const char *pause[] = {"--admin",     rushd.admin, "--token", CHILD_TOKEN, "--reason",
                           "price error", "pause",     "1005",    NULL};
    char out[CHILD_PATH_BYTES + 16];
    snprintf(out, sizeof out, "%s/rushctl.out", rushd.dir);
    rushctl(adjust, out);
    rushctl(pause, out);
    char reply[1024]; /* a hand-written command without operator or reason: audited as "-" */
    cr_assert(child_json(rushd.admin,
                         "{\"op\":\"resume\",\"sku\":1005,\"key\":\"r-1\",\"token\":\"" CHILD_TOKEN
                         "\"}",
                         reply, sizeof reply, 5000) == 0);
    HAS(reply, "\"outcome\":\"ok\"");
    cr_assert(
        child_json(
            rushd.admin,
            "{\"op\":\"pause\",\"sku\":1005,\"key\":\"r-2\",\"operator\":7,\"token\":\"" CHILD_TOKEN
            "\"}",
            reply, sizeof reply, 5000) == 0);
    HAS(reply, "field 'operator' must be a string");
    char path[CHILD_PATH_BYTES + 16];
    snprintf(path, sizeof path, "%s/audit.log", rushd.data);
    static char audit[8192];
    slurp(path, audit, sizeof audit);
    HAS(audit, "\"operator\":\"alice\",\"reason\":\"restock from warehouse 7\",\"action\":"
               "\"adjust\",\"sku\":1002,\"amount\":5,\"outcome\":\"ok\"");
    HAS(audit, "\"reason\":\"price error\",\"action\":\"pause\",\"sku\":1005");
    HAS(audit, "\"operator\":\"-\",\"reason\":\"-\",\"action\":\"resume\",\"sku\":1005");
    cr_assert(strstr(audit, CHILD_TOKEN) == NULL, "the audit shows the token");
    int lines = 0;
    for (const char *at = audit; (at = strchr(at, '\n')) != NULL; at++)
        lines++;
    cr_assert_eq(lines, 3, "one line per action, none for the refused one:\n%s", audit);
}
