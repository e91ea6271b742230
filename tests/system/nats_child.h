/*
 * nats_child.h — real nats-server processes (Debian's nats-server) with JetStream, on loopback,
 * for the cluster and relay tests: one server, or a cluster of NATS_SERVERS_MAX that replicates
 * streams three ways.
 *
 * nats_start() writes one configuration file and one store directory per server under the
 * caller's directory, starts every server on free loopback ports and waits until each one's
 * monitoring endpoint answers /healthz (JetStream enabled and current). nats_kill() and
 * nats_restart() act on one server by PID; nats_stop() stops them all and is safe to call from a
 * suite's .fini after a failed assertion.
 *
 * Invariants: a server never outlives the test process (PR_SET_PDEATHSIG); every wait has a
 * deadline (NATS_READY_MS) and polls the event it waits for. A restarted server keeps its ports
 * and its store directory, as a machine coming back would. Header-only, like rushd_child.h.
 */
#ifndef RUSH_TEST_NATS_CHILD_H
#define RUSH_TEST_NATS_CHILD_H

#include "rushd_child.h"

#define NATS_SERVERS_MAX 3
#define NATS_READY_MS 20000
#define NATS_START_TRIES 3 /* nats_start: fresh ports each try */
#define NATS_URLS_BYTES 256

struct nats_servers {
    int count;
    pid_t pid[NATS_SERVERS_MAX];
    int port[NATS_SERVERS_MAX];         /* clients */
    int cluster_port[NATS_SERVERS_MAX]; /* routes between servers; unused for one server */
    int http_port[NATS_SERVERS_MAX];    /* monitoring: /healthz, /jsz */
    char config[NATS_SERVERS_MAX][CHILD_PATH_BYTES];
    char log[NATS_SERVERS_MAX][CHILD_PATH_BYTES];
    char urls[NATS_URLS_BYTES]; /* "nats://127.0.0.1:P1,nats://127.0.0.1:P2,..." */
};

/* The path of nats-server, or NULL when it is not installed (scripts/install-deps.sh does). */
static inline const char *nats_server_path(void)
{
    static const char *const candidates[] = {"/usr/bin/nats-server", "/usr/sbin/nats-server",
                                             "/usr/local/bin/nats-server"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (access(candidates[i], X_OK) == 0)
            return candidates[i];
    return NULL;
}

static inline void nats_write_config(struct nats_servers *n, const char *dir, int i)
{
    char text[2048];
    int len = snprintf(text, sizeof text,
                       "server_name: n%d\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n"
                       "jetstream { store_dir: \"%s/nats%d\" }\n",
                       i, n->port[i], n->http_port[i], dir, i);
    if (n->count > 1) {
        len += snprintf(text + len, sizeof text - (size_t)len,
                        "cluster {\n  name: rush_test\n  listen: 127.0.0.1:%d\n  routes: [\n",
                        n->cluster_port[i]);
        for (int j = 0; j < n->count; j++)
            if (j != i)
                len += snprintf(text + len, sizeof text - (size_t)len,
                                "    nats-route://127.0.0.1:%d\n", n->cluster_port[j]);
        len += snprintf(text + len, sizeof text - (size_t)len, "  ]\n}\n");
    }
    cr_assert(len < (int)sizeof text);
    snprintf(n->config[i], sizeof n->config[i], "%s/nats%d.conf", dir, i);
    snprintf(n->log[i], sizeof n->log[i], "%s/nats%d.log", dir, i);
    child_write_file(n->config[i], text);
}

static inline pid_t nats_exec(const struct nats_servers *n, int i)
{
    const char *server = nats_server_path();
    cr_assert(server != NULL, "nats-server is not installed (scripts/install-deps.sh)");
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int log_fd = open(n->log[i], O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (log_fd < 0)
            _exit(127);
        dup2(log_fd, STDERR_FILENO);
        dup2(log_fd, STDOUT_FILENO);
        execl(server, server, "-c", n->config[i], (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The HTTP status of GET path on 127.0.0.1:port, or -1 when nothing answers. */
static inline int nats_http_status(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(0x7f000001)};
    char buf[256];
    int status = -1;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) == 0) {
        int len = snprintf(buf, sizeof buf, "GET %s HTTP/1.0\r\n\r\n", path);
        ssize_t got = write(fd, buf, (size_t)len) == len ? read(fd, buf, sizeof buf - 1) : -1;
        if (got > 0) {
            buf[got] = '\0';
            if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                status = -1;
        }
    }
    close(fd);
    return status;
}

/* Waits until server i reports JetStream healthy; 0, or -1 at the deadline or when it died. */
static inline int nats_wait_ready(struct nats_servers *n, int i)
{
    int64_t deadline = rush_clock_monotonic_ms() + NATS_READY_MS;
    while (rush_clock_monotonic_ms() < deadline) {
        if (child_wait_exit(n->pid[i], 0) != -1) {
            n->pid[i] = -1;
            return -1;
        }
        if (nats_http_status(n->http_port[i], "/healthz") == 200)
            return 0;
        child_sleep_ms(50);
    }
    return -1;
}

static inline void nats_print_log(const struct nats_servers *n, int i)
{
    char command[CHILD_PATH_BYTES + 16];
    snprintf(command, sizeof command, "cat '%s' >&2", n->log[i]);
    int rc = system(command);
    (void)rc;
}

static inline void nats_stop(struct nats_servers *n)
{
    for (int i = 0; i < n->count; i++) {
        if (n->pid[i] <= 0)
            continue;
        kill(n->pid[i], SIGKILL);
        child_wait_exit(n->pid[i], CHILD_EXIT_MS);
        n->pid[i] = -1;
    }
}

/* One try at starting the servers on fresh ports and empty stores; true when all are healthy,
 * else every server it started is stopped again. */
static inline bool nats_start_once(struct nats_servers *n, const char *dir)
{
    int len = 0;
    for (int i = 0; i < n->count; i++) {
        n->pid[i] = -1;
        n->port[i] = child_free_port();
        n->cluster_port[i] = child_free_port();
        n->http_port[i] = child_free_port();
        len += snprintf(n->urls + len, sizeof n->urls - (size_t)len, "%snats://127.0.0.1:%d",
                        i ? "," : "", n->port[i]);
    }
    char command[CHILD_PATH_BYTES + 32];
    snprintf(command, sizeof command, "rm -rf '%s'/nats[0-9]", dir);
    int rc = system(command); /* a failed try's stores */
    (void)rc;
    for (int i = 0; i < n->count; i++) {
        nats_write_config(n, dir, i);
        n->pid[i] = nats_exec(n, i);
    }
    bool ready = true;
    for (int i = 0; i < n->count; i++) {
        if (nats_wait_ready(n, i) != 0) {
            nats_print_log(n, i);
            ready = false;
        }
    }
    if (!ready)
        nats_stop(n);
    return ready;
}

/*
 * Starts `count` servers (1, or NATS_SERVERS_MAX for a three-way cluster) under dir. A port
 * child_free_port() found free can be taken before nats-server binds it (parallel tests open
 * many connections, each on an ephemeral port), so a start that fails is tried again on new
 * ports, up to NATS_START_TRIES times.
 */
static inline void nats_start(struct nats_servers *n, const char *dir, int count)
{
    cr_assert(count == 1 || count == NATS_SERVERS_MAX);
    memset(n, 0, sizeof *n);
    n->count = count;
    bool ready = false;
    for (int attempt = 0; attempt < NATS_START_TRIES && !ready; attempt++)
        ready = nats_start_once(n, dir);
    cr_assert(ready, "nats-servers did not become ready in %d tries (logs above)",
              NATS_START_TRIES);
}

/* Sends sig to server i (SIGKILL: reaps it). */
static inline void nats_kill(struct nats_servers *n, int i, int sig)
{
    cr_assert(n->pid[i] > 0);
    kill(n->pid[i], sig);
    if (sig == SIGKILL || sig == SIGTERM) {
        cr_assert(child_wait_exit(n->pid[i], CHILD_EXIT_MS) >= 0, "nats-server %d did not stop", i);
        n->pid[i] = -1;
    }
}

/* Starts server i again on its ports and store directory and waits until it is healthy. */
static inline void nats_restart(struct nats_servers *n, int i)
{
    cr_assert(n->pid[i] < 0);
    n->pid[i] = nats_exec(n, i);
    if (nats_wait_ready(n, i) != 0)
        nats_print_log(n, i);
    cr_assert(n->pid[i] > 0, "nats-server %d did not come back", i);
}

#endif
