/*
 * rushd_child.h — the real build/bin/rushd as a child process, for the client and rushctl tests.
 *
 * rushd_start() writes a small campaign into a fresh /tmp directory, starts rushd on ipc:// (or
 * tcp://127.0.0.1 on free ports) with a known admin token, and waits until it answers a query.
 * rushd_cleanup() kills and reaps it and removes the directory; use it as the suite's .fini so
 * that it runs even when an assertion failed. The child also dies with the test process
 * (PR_SET_PDEATHSIG). Header-only so that each test program stays one file.
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

#define CHILD_PATH_BYTES 512
#define CHILD_READY_MS 20000
#define CHILD_EXIT_MS 10000
#define CHILD_TOKEN "client-test-token-0123456789"

struct rushd_child {
    pid_t pid;
    char dir[128];
    char bin[CHILD_PATH_BYTES]; /* build/bin */
    char log[CHILD_PATH_BYTES];
    char orders[CHILD_PATH_BYTES];
    char json[CHILD_PATH_BYTES];
    char admin[CHILD_PATH_BYTES];
    char pub[CHILD_PATH_BYTES]; /* the publisher's endpoints */
    char replay[CHILD_PATH_BYTES];
    const char *durability; /* NULL: none (the publisher is off without a log) */
};

static struct rushd_child rushd = {.pid = -1};

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
    cr_assert(n > 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(out, size, "%s/../bin", self);
}

/* A TCP port nobody listens on right now. */
static inline int child_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    cr_assert(bind(fd, (struct sockaddr *)&address, sizeof address) == 0);
    socklen_t len = sizeof address;
    cr_assert(getsockname(fd, (struct sockaddr *)&address, &len) == 0);
    close(fd);
    return ntohs(address.sin_port);
}

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

static inline void child_campaign(struct rushd_child *c, bool tcp)
{
    if (tcp) {
        snprintf(c->orders, sizeof c->orders, "tcp://127.0.0.1:%d", child_free_port());
        snprintf(c->json, sizeof c->json, "tcp://127.0.0.1:%d", child_free_port());
        snprintf(c->admin, sizeof c->admin, "tcp://127.0.0.1:%d", child_free_port());
    } else {
        snprintf(c->orders, sizeof c->orders, "ipc://%s/orders.ipc", c->dir);
        snprintf(c->json, sizeof c->json, "ipc://%s/json.ipc", c->dir);
        snprintf(c->admin, sizeof c->admin, "ipc://%s/admin.ipc", c->dir);
    }
    char path[CHILD_PATH_BYTES], data[CHILD_PATH_BYTES];
    snprintf(c->pub, sizeof c->pub, "ipc://%s/pub.ipc", c->dir);
    snprintf(c->replay, sizeof c->replay, "ipc://%s/replay.ipc", c->dir);
    snprintf(path, sizeof path, "%s/campaign.ini", c->dir);
    snprintf(data, sizeof data, "%s/data", c->dir);
    cr_assert(mkdir(data, 0700) == 0);
    FILE *file = fopen(path, "w");
    cr_assert(file != NULL);
    fprintf(file,
            "[engine]\nshards = 2\nring_slots = 64\norders_max = 65536\ngroups_max = 4096\n"
            "keys_max = 131072\nuser_limits_max = 65536\ndurability = %s\ndata_dir = %s\n\n"
            "[endpoints]\norders = %s\njson = %s\nadmin = %s\npublisher = %s\n"
            "replay = %s\nadmin_token = %s\n\n%s",
            c->durability ? c->durability : "none", data, c->orders, c->json, c->admin, c->pub,
            c->replay, CHILD_TOKEN, child_skus);
    fclose(file);
}

static inline pid_t child_spawn(struct rushd_child *c)
{
    char path[CHILD_PATH_BYTES + 16], config[CHILD_PATH_BYTES];
    snprintf(path, sizeof path, "%s/rushd", c->bin);
    snprintf(config, sizeof config, "%s/campaign.ini", c->dir);
    cr_assert(access(path, X_OK) == 0, "rushd not found at %s", path);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
        execl(path, path, "--config", config, (char *)NULL);
        _exit(127);
    }
    return pid;
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

static inline int child_wait_exit(pid_t pid, int timeout_ms)
{
    int64_t deadline = rush_clock_monotonic_ms() + timeout_ms;
    do {
        int status;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (done < 0)
            return -2;
        child_sleep_ms(10);
    } while (rush_clock_monotonic_ms() < deadline);
    return -1;
}

/* Starts rushd on the campaign already written in rushd.dir and waits until it answers. */
static inline void rushd_spawn(void)
{
    rushd.pid = child_spawn(&rushd);
    int64_t deadline = rush_clock_monotonic_ms() + CHILD_READY_MS;
    char reply[512];
    while (child_json(rushd.json, "{\"op\":\"query_sku\",\"sku\":1001}", reply, sizeof reply,
                      100) != 0) {
        int status = child_wait_exit(rushd.pid, 0);
        if (status >= 0)
            rushd.pid = -1;
        cr_assert(status < 0 && rush_clock_monotonic_ms() < deadline,
                  "rushd did not start (status %d)", status);
    }
}

static inline void rushd_start(bool tcp)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(rushd.dir, sizeof rushd.dir, "/tmp/rush-test-client-XXXXXX");
    cr_assert(mkdtemp(rushd.dir) != NULL);
    snprintf(rushd.log, sizeof rushd.log, "%s/rushd.log", rushd.dir);
    child_bin_dir(rushd.bin, sizeof rushd.bin);
    child_campaign(&rushd, tcp);
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
    if (rushd.pid > 0) {
        kill(rushd.pid, SIGCONT);
        kill(rushd.pid, SIGKILL);
        child_wait_exit(rushd.pid, CHILD_EXIT_MS);
        rushd.pid = -1;
    }
    if (rushd.dir[0] != '\0') {
        char command[CHILD_PATH_BYTES];
        snprintf(command, sizeof command, "rm -rf '%s'", rushd.dir);
        int rc = system(command);
        (void)rc;
        rushd.dir[0] = '\0';
    }
}

#endif
