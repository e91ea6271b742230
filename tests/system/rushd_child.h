/*
 * rushd_child.h — the real build/bin/rushd as a child process: the one harness of the system
 * tests (tests/system/test_*.c).
 *
 * Two levels:
 *  - struct rushd_child and the child_* functions, for a test that writes its own campaign:
 *    child_make_dir() gives a fresh /tmp directory with ipc:// endpoints in it,
 *    child_write_campaign() writes [engine] (the caller's limits), [endpoints] and the caller's
 *    SKUs, child_exec() runs rushd with any arguments, child_wait_ready() waits until it answers
 *    on the binary endpoint, child_stop() signals and reaps it, child_cleanup() kills it and
 * removes the directory.
 *  - the `rushd` fixture for the client, rushctl, stream and loadgen tests: rushd_start() on a
 *    known campaign (child_skus, CHILD_TOKEN), rushd_crash_and_restart(), rushd_cleanup().
 *
 * Invariants: a child never outlives the test process (PR_SET_PDEATHSIG, and it exits at once
 * when the parent already died); every wait has a deadline (CHILD_READY_MS, CHILD_EXIT_MS) and
 * polls the event it waits for (an answer, an exit), never a fixed sleep; use child_cleanup() (or
 * rushd_cleanup()) as the suite's .fini so that it runs even when an assertion failed.
 * Header-only so that each test program stays one file.
 */
#ifndef RUSH_TEST_RUSHD_CHILD_H
#define RUSH_TEST_RUSHD_CHILD_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "rush/wire.h"

#define CHILD_PATH_BYTES 512
#define CHILD_ARGS_MAX 16
#define CHILD_CAMPAIGN_BYTES 16384
#define CHILD_READY_MS 20000
#define CHILD_EXIT_MS 15000
#define CHILD_POLL_MS 10
#define CHILD_TOKEN "client-test-token-0123456789"
#define CHILD_PORT_LOW 20000 /* child_free_port picks in [LOW, HIGH) */
#define CHILD_PORT_HIGH 32700

struct rushd_child {
    pid_t pid;
    char dir[128];
    char bin[CHILD_PATH_BYTES]; /* build/bin */
    char config[CHILD_PATH_BYTES];
    char log[CHILD_PATH_BYTES]; /* rushd's stderr (and stdout unless redirected) */
    char data[CHILD_PATH_BYTES];
    char orders[CHILD_PATH_BYTES];
    char json[CHILD_PATH_BYTES];
    char admin[CHILD_PATH_BYTES];
    char pub[CHILD_PATH_BYTES]; /* the publisher's endpoints */
    char replay[CHILD_PATH_BYTES];
    char http[64];          /* HOST:PORT of the HTTP console; "" (the default here): off */
    const char *durability; /* NULL: none (the publisher is off without a log) */
};

static struct rushd_child rushd = {.pid = -1};

/* ---- clock and paths ------------------------------------------------------------------------ */

/* The pause between two polls of a condition; not a way to wait for an event. */
static inline void child_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* build/bin, found beside the test binary (build/tests). */
static inline void child_bin_dir(char *out, size_t size)
{
    char self[CHILD_PATH_BYTES / 2];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(n > 0, "readlink /proc/self/exe");
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(out, size, "%s/../bin", self);
}

/* A TCP port nobody listens on right now. */
/* True when nothing listens on (or holds) 127.0.0.1:port right now. */
static inline bool child_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(0x7f000001)};
    bool bindable = fd >= 0 && bind(fd, (struct sockaddr *)&address, sizeof address) == 0;
    if (fd >= 0)
        close(fd);
    return bindable;
}

/*
 * A port to listen on, picked at random below the kernel's ephemeral range (32768 and up here):
 * a port the kernel hands out for bind(0) can be taken by any other test's outgoing connection
 * before the child binds it, one below the range only by another listener.
 */
static inline int child_free_port(void)
{
    static unsigned seed;
    if (seed == 0)
        seed = (unsigned)getpid() ^ (unsigned)rush_clock_monotonic_ns();
    for (int attempt = 0; attempt < 1000; attempt++) {
        int port = CHILD_PORT_LOW + (int)(rand_r(&seed) % (CHILD_PORT_HIGH - CHILD_PORT_LOW));
        if (child_port_free(port))
            return port;
    }
    cr_assert_fail("no free port in %d..%d", CHILD_PORT_LOW, CHILD_PORT_HIGH);
    return 0;
}

/* The `rushd` fixture's campaign (other tests pass their own to child_write_campaign). */
#define CHILD_ENGINE                                                                               \
    "shards = 2\nring_slots = 64\norders_max = 65536\ngroups_max = 4096\nkeys_max = 131072\n"      \
    "user_limits_max = 65536\n"

static const char *const child_skus =
    "[sku 1001]\nname = tiny\nstock = 2\nprice = 100\nstart = now\nend = never\n"
    "order_qty_max = 1\nuser_qty_max = 1\npay_ttl = 15m\n\n"
    "[sku 1002]\nname = qty\nstock = 100\nprice = 100\nstart = now\nend = never\n"
    "order_qty_max = 2\nuser_qty_max = 3\npay_ttl = 15m\n\n"
    "[sku 1005]\nname = hot\nstock = 50\nprice = 100\nstart = now\nend = never\n"
    "order_qty_max = 1\nuser_qty_max = 1\npay_ttl = 15m\n\n"
    "[sku 1006]\nname = short pay ttl\nstock = 10\nprice = 100\nstart = now\nend = never\n"
    "pay_ttl = 200ms\n\n"
    "[sku 3001]\nname = coupon\nstock = unlimited\nprice = 990\nstart = now\nend = never\n"
    "user_qty_max = 3\npay_ttl = 0\n\n"
    "[sku 4001]\nname = group\nstock = 30\nprice = 5900\nstart = now\nend = never\n"
    "group_size = 2\ngroup_ttl = 10m\ngroups_open_max = 10\nuser_qty_max = 2\npay_ttl = 0\n\n"
    "[sku 5001]\nname = later\nstock = 5\nprice = 100\nstart = 2199-01-01T00:00:00Z\n"
    "end = never\n\n"
    "[sku 5002]\nname = over\nstock = 5\nprice = 100\nstart = 2000-01-01T00:00:00Z\n"
    "end = 2000-01-02T00:00:00Z\n\n"
    "[sku 5003]\nname = paused\nstock = 5\nprice = 100\nstart = now\nend = never\n"
    "paused = true\n";

/* ---- the directory and the campaign --------------------------------------------------------- */

/* A fresh /tmp/rush-test-<name>-XXXXXX with data/ in it; ipc:// endpoints inside it. */
static inline void child_make_dir(struct rushd_child *c, const char *name)
{
    snprintf(c->dir, sizeof c->dir, "/tmp/rush-test-%s-XXXXXX", name);
    cr_assert(mkdtemp(c->dir) != NULL, "mkdtemp: %s", strerror(errno));
    child_bin_dir(c->bin, sizeof c->bin);
    snprintf(c->config, sizeof c->config, "%s/campaign.ini", c->dir);
    snprintf(c->log, sizeof c->log, "%s/rushd.log", c->dir);
    snprintf(c->data, sizeof c->data, "%s/data", c->dir);
    cr_assert(mkdir(c->data, 0700) == 0);
    snprintf(c->orders, sizeof c->orders, "ipc://%s/orders.ipc", c->dir);
    snprintf(c->json, sizeof c->json, "ipc://%s/json.ipc", c->dir);
    snprintf(c->admin, sizeof c->admin, "ipc://%s/admin.ipc", c->dir);
    snprintf(c->pub, sizeof c->pub, "ipc://%s/pub.ipc", c->dir);
    snprintf(c->replay, sizeof c->replay, "ipc://%s/replay.ipc", c->dir);
}

/* The three request endpoints on tcp://127.0.0.1 instead (the publisher stays on ipc). */
static inline void child_use_tcp(struct rushd_child *c, int orders, int json, int admin)
{
    snprintf(c->orders, sizeof c->orders, "tcp://127.0.0.1:%d", orders);
    snprintf(c->json, sizeof c->json, "tcp://127.0.0.1:%d", json);
    snprintf(c->admin, sizeof c->admin, "tcp://127.0.0.1:%d", admin);
}

static inline void child_write_file(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    cr_assert(file != NULL, "cannot write %s", path);
    fputs(text, file);
    fclose(file);
}

/*
 * c->config: `engine` (the [engine] lines other than durability and data_dir), the endpoints,
 * the admin token (NULL: rushd generates one) and `skus` (the [sku N] sections). The HTTP
 * console is off unless c->http is set (so that parallel tests never race for one port).
 */
static inline void child_write_campaign(const struct rushd_child *c, const char *engine,
                                        const char *token, const char *skus)
{
    static char text[CHILD_CAMPAIGN_BYTES];
    int n = snprintf(text, sizeof text,
                     "[engine]\n%sdurability = %s\ndata_dir = %s\n\n"
                     "[endpoints]\norders = %s\njson = %s\nadmin = %s\npublisher = %s\n"
                     "replay = %s\nhttp = %s\n%s%s%s\n%s",
                     engine, c->durability ? c->durability : "none", c->data, c->orders, c->json,
                     c->admin, c->pub, c->replay, c->http, token ? "admin_token = " : "",
                     token ? token : "", token ? "\n" : "", skus);
    cr_assert(n > 0 && (size_t)n < sizeof text, "campaign too long");
    child_write_file(c->config, text);
}

/* ---- the process ---------------------------------------------------------------------------- */

/*
 * Runs rushd with `args` (NULL-terminated, without argv[0]; NULL: --config c->config); stderr
 * appends to c->log, stdout too unless stdout_path is given. Returns the pid; c->pid is not set.
 */
static inline pid_t child_exec(const struct rushd_child *c, char *const args[],
                               const char *stdout_path)
{
    char path[CHILD_PATH_BYTES + 16];
    snprintf(path, sizeof path, "%s/rushd", c->bin);
    cr_assert(access(path, X_OK) == 0, "rushd not found at %s (build it first)", path);
    char *argv[CHILD_ARGS_MAX + 2] = {path, "--config", (char *)c->config, NULL};
    if (args != NULL) {
        int argc = 1;
        for (int i = 0; args[i] != NULL; i++) {
            cr_assert(argc <= CHILD_ARGS_MAX, "too many arguments for rushd");
            argv[argc++] = args[i];
        }
        argv[argc] = NULL;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int log_fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int out_fd = stdout_path ? open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0600) : log_fd;
        if (log_fd < 0 || out_fd < 0)
            _exit(127);
        dup2(log_fd, STDERR_FILENO);
        dup2(out_fd, STDOUT_FILENO);
        execv(path, argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to timeout_ms for the child; its exit status (128 + signal), -1 when it still runs. */
static inline int child_wait_exit(pid_t pid, int timeout_ms)
{
    int64_t deadline = rush_clock_monotonic_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (done < 0)
            return -2; /* not our child any more: already reaped */
        if (rush_clock_monotonic_ms() >= deadline)
            return -1;
        child_sleep_ms(CHILD_POLL_MS);
    }
}

static inline void child_print_log(const struct rushd_child *c)
{
    char command[CHILD_PATH_BYTES + 16];
    snprintf(command, sizeof command, "cat '%s' >&2", c->log);
    int rc = system(command);
    (void)rc;
}

/*
 * Sends one binary QUERY_SKU to c->orders until an answer comes (any SKU: an unknown one is
 * answered too). 0 when rushd answered; its exit status when it died first (c->pid is then -1);
 * -1 at the deadline.
 */
static inline int child_wait_ready(struct rushd_child *c, int timeout_ms)
{
    cr_assert(c->pid > 0);
    /* Not a request (rushd answers it with an ERROR naming the bad magic), so that waiting
     * changes none of the engine's counters that tests compare. */
    static const char message[] = "ready?";
    int len = (int)sizeof message - 1;
    int sock = nn_socket(AF_SP, NN_REQ);
    cr_assert(sock >= 0);
    int poll_ms = 100; /* REQ resends after NN_REQ_RESEND_IVL; each recv waits this long */
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &poll_ms, sizeof poll_ms);
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_SNDTIMEO, &poll_ms, sizeof poll_ms);
    cr_assert(nn_connect(sock, c->orders) >= 0, "connect %s", c->orders);
    int64_t deadline = rush_clock_monotonic_ms() + timeout_ms;
    bool sent = false; /* a send times out while the socket is not connected yet */
    int rc = -1;
    for (;;) {
        void *reply = NULL;
        if (!sent) {
            sent = nn_send(sock, message, (size_t)len, 0) == len;
        } else if (nn_recv(sock, &reply, NN_MSG, 0) > 0) {
            nn_freemsg(reply);
            rc = 0;
            break;
        }
        int status = child_wait_exit(c->pid, 0);
        if (status >= 0) {
            c->pid = -1;
            rc = status;
            break;
        }
        if (rush_clock_monotonic_ms() >= deadline)
            break;
    }
    nn_close(sock);
    return rc;
}

/* Starts rushd (args as child_exec) and waits until it answers; fails the test otherwise. */
static inline void child_run(struct rushd_child *c, char *const args[])
{
    c->pid = child_exec(c, args, NULL);
    int rc = child_wait_ready(c, CHILD_READY_MS);
    if (rc != 0) {
        child_print_log(c);
        cr_assert_fail("rushd did not answer on %s (%s %d)", c->orders,
                       rc > 0 ? "exit status" : "timeout", rc);
    }
}

/* Sends sig and reaps; SIGKILL after CHILD_EXIT_MS. The exit status (-1: it had to be killed). */
static inline int child_stop(struct rushd_child *c, int sig)
{
    if (c->pid <= 0)
        return -1;
    kill(c->pid, sig);
    int status = child_wait_exit(c->pid, CHILD_EXIT_MS);
    if (status == -1) {
        kill(c->pid, SIGKILL);
        child_wait_exit(c->pid, CHILD_EXIT_MS);
    }
    c->pid = -1;
    return status;
}

/* Kills and reaps the child (also a stopped one) and removes its directory. */
static inline void child_cleanup(struct rushd_child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGCONT);
        child_stop(c, SIGKILL);
    }
    if (c->dir[0] != '\0') {
        char command[CHILD_PATH_BYTES];
        snprintf(command, sizeof command, "rm -rf '%s'", c->dir);
        int rc = system(command);
        (void)rc;
        c->dir[0] = '\0';
    }
}

/* One JSON exchange on a plain REQ socket; the reply in out. -1 on timeout. */
static inline int child_json(const char *url, const char *text, char *out, size_t cap,
                             int timeout_ms)
{
    int sock = nn_socket(AF_SP, NN_REQ);
    cr_assert(sock >= 0);
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
    cr_assert(nn_connect(sock, url) >= 0);
    int rc = -1;
    void *reply = NULL;
    if (nn_send(sock, text, strlen(text), 0) >= 0) {
        int len = nn_recv(sock, &reply, NN_MSG, 0);
        if (len >= 0) {
            snprintf(out, cap, "%.*s", len, (const char *)reply);
            nn_freemsg(reply);
            rc = 0;
        }
    }
    nn_close(sock);
    return rc;
}

/* ---- the `rushd` fixture: a known campaign for the client-side tests ------------------------ */

/* Starts rushd on the campaign already written in rushd.dir and waits until it answers. */
static inline void rushd_spawn(void)
{
    child_run(&rushd, NULL);
}

/* rushd on child_skus, with CHILD_TOKEN, ipc:// endpoints or tcp:// on free ports. */
static inline void rushd_start(bool tcp)
{
    signal(SIGPIPE, SIG_IGN);
    child_make_dir(&rushd, "client");
    if (tcp)
        child_use_tcp(&rushd, child_free_port(), child_free_port(), child_free_port());
    child_write_campaign(&rushd, CHILD_ENGINE, CHILD_TOKEN, child_skus);
    rushd_spawn();
}

/* kill -9, then a restart on the same data directory. */
static inline void rushd_crash_and_restart(void)
{
    cr_assert(rushd.pid > 0);
    kill(rushd.pid, SIGKILL);
    cr_assert(child_wait_exit(rushd.pid, CHILD_EXIT_MS) == 128 + SIGKILL);
    rushd_spawn();
}

static inline void rushd_cleanup(void)
{
    child_cleanup(&rushd);
}

#endif
