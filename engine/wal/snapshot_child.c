/*
 * snapshot_child.c — background snapshots written by a forked child (see snapshot_child.h for the
 * states, the workload and the invariants).
 *
 * Why a fork and not an incremental copy in the shard: the child's view of the shard is the
 * kernel's copy-on-write image at the fork, so the shard's code needs no hook on any mutation and
 * the writer reads plain memory at its own pace; the shard pays only the fork and the first write
 * to each page while the child lives (ARCHITECTURE.md "Durability" has the measured figures).
 *
 * Thread: the shard's.
 */
#include "snapshot_child.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "rush/assert.h"
#include "snapshot.h"
#include "wal.h"

#define CHILD_NICE 10
#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_CLASS_IDLE 3
#define IOPRIO_CLASS_SHIFT 13
#define CHILD_EXIT_FAILED 1
#define CHILD_EXIT_ABANDONED 2
#define CHILD_EXIT_ORPHAN 3
/* The child sleeps twice as long as each 1 MiB write took: the device (on a VM, the host's I/O
 * path, whose work is charged to the guest as stolen CPU) is kept busy at most a third of the
 * time. Measured against full speed in README "Figures". */
#define SNAPSHOT_CHILD_IDLE_PER_BUSY 2u

void rush_snapshot_child_init(struct rush_snapshot_child *child)
{
    /* RUSH_SNAPSHOT_PACE: "off" (or 0) writes at full speed, 1..100 sets idle_per_busy; anything
     * else keeps the default. */
    const char *pace = getenv("RUSH_SNAPSHOT_PACE");
    uint32_t idle_per_busy = SNAPSHOT_CHILD_IDLE_PER_BUSY;
    char *end = NULL;
    unsigned long wanted = pace != NULL ? strtoul(pace, &end, 10) : 0;
    if (pace != NULL && strcmp(pace, "off") == 0)
        idle_per_busy = 0;
    else if (pace != NULL && end != pace && *end == '\0' &&
             wanted <= RUSH_SNAPSHOT_IDLE_PER_BUSY_MAX)
        idle_per_busy = (uint32_t)wanted;
    *child = (struct rush_snapshot_child){.go_fd = -1, .idle_per_busy = idle_per_busy};
    rush_snapshot_renew_init(&child->renew);
}

bool rush_snapshot_child_running(const struct rush_snapshot_child *child)
{
    return child->pid > 0;
}

/* stderr without stdio (its lock may have been held by another thread at the fork). */
static void child_say(const char *what, const char *why)
{
    char line[700];
    int n = snprintf(line, sizeof(line), "rush: background snapshot: %s%s\n", what, why);
    ssize_t written = write(STDERR_FILENO, line, n > 0 ? (size_t)n : 0);
    (void)written;
}

/* Blocks until the parent's go byte (true) or the pipe's end (false: do not publish). */
static bool child_wait_go(int go_read_fd)
{
    char go = 0;
    ssize_t n;
    /* Bounded: only a signal repeats the read; the parent sends or closes, or dies (and so do
     * we, PR_SET_PDEATHSIG). */
    do
        n = read(go_read_fd, &go, 1);
    while (n < 0 && errno == EINTR);
    return n == 1;
}

/* The child: stage, wait for the go, commit, remove what the snapshot covers, _exit. */
static _Noreturn void child_main(const struct rush_shard *shard, const struct rush_shard_log *log,
                                 uint64_t lsn, struct rush_snapshot_pace pace, int go_read_fd,
                                 pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(CHILD_EXIT_ORPHAN);
    /* Low priority: the shard thread and the front end come first on a small machine (and a
     * real-time policy inherited from a rushd run under chrt is dropped). */
    struct sched_param normal = {.sched_priority = 0};
    if (sched_getscheduler(0) != SCHED_OTHER)
        (void)sched_setscheduler(0, SCHED_OTHER, &normal);
    (void)setpriority(PRIO_PROCESS, 0, CHILD_NICE);
    (void)syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT);
    char why[512];
    if (rush_snapshot_stage(shard, log->dir, log->shard_index, lsn, true, &pace, why, sizeof(why)) <
        0) {
        child_say("", why);
        _exit(CHILD_EXIT_FAILED);
    }
    if (!child_wait_go(go_read_fd)) {
        rush_snapshot_abandon(log->dir, log->shard_index, lsn);
        _exit(CHILD_EXIT_ABANDONED);
    }
    if (rush_snapshot_commit(log->dir, log->shard_index, lsn, why, sizeof(why)) < 0) {
        child_say("", why);
        _exit(CHILD_EXIT_FAILED);
    }
    uint64_t retain = atomic_load_explicit(&log->retain_lsn, memory_order_acquire);
    int rc = rush_wal_remove_below(log->dir, log->shard_index, retain < lsn + 1 ? retain : lsn + 1);
    if (rc < 0) /* the snapshot stands; the segments are only kept longer than needed */
        child_say("removing covered segments: ", rush_strerror(rc));
    _exit(0);
}

int rush_snapshot_child_start(struct rush_snapshot_child *child, struct rush_shard_log *log,
                              const struct rush_shard *shard)
{
    RUSH_ASSERT(child->pid <= 0); /* one at a time */
    if (log->wal == NULL || log->dir == NULL || log->writes_nothing)
        return RUSH_ECONFIG;
    int64_t start_ns = rush_clock_monotonic_ns();
    rush_shard_log_commit(log); /* the lsn is the end of what was appended, written or not */
    if (log->error != 0)
        return RUSH_EWAL;
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0)
        return -errno;
    uint64_t lsn = rush_wal_appended_lsn(log->wal);
    if (child->hurry == NULL) { /* the first child: without the page, waits only take longer */
        void *page = mmap(NULL, sizeof(atomic_bool), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        child->hurry = page != MAP_FAILED ? page : NULL;
    }
    if (child->hurry != NULL)
        atomic_store(child->hurry, false);
    struct rush_snapshot_pace pace = {.idle_per_busy = child->idle_per_busy, .hurry = child->hurry};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(pipe_fds[1]); /* so that the parent's close ends our read */
        child_main(shard, log, lsn, pace, pipe_fds[0], parent);
    }
    int fork_error = errno;
    close(pipe_fds[0]);
    if (pid < 0) {
        close(pipe_fds[1]);
        return -fork_error;
    }
    child->pid = pid;
    child->go_fd = pipe_fds[1];
    child->lsn = lsn;
    child->start_ns = start_ns;
    child->fork_ns = rush_clock_monotonic_ns() - start_ns;
    child->took_ns = 0;
    child->status = 0;
    rush_snapshot_renew_start(&child->renew, shard);
    return 0;
}

/* Sends the go byte once the log is synced to the child's lsn; closes the pipe if it never will
 * be (the child then abandons its file). */
static void child_release(struct rush_snapshot_child *child, struct rush_shard_log *log, bool wait)
{
    if (child->go_fd < 0)
        return;
    int rc = log->error != 0 ? RUSH_EWAL : 0;
    if (rc == 0 && wait)
        rc = rush_shard_log_wait_synced(log, child->lsn);
    if (rc == 0 && rush_wal_synced_lsn(log->wal) < child->lsn)
        return; /* not yet: a later pass looks again */
    if (rc == 0) {
        ssize_t n;
        do /* Bounded: a pipe with room takes one byte at once; only a signal repeats it. */
            n = write(child->go_fd, "g", 1);
        while (n < 0 && errno == EINTR);
    }
    close(child->go_fd);
    child->go_fd = -1;
}

bool rush_snapshot_child_poll(struct rush_snapshot_child *child, struct rush_shard_log *log,
                              bool wait)
{
    if (!rush_snapshot_child_running(child))
        return true;
    if (wait && child->hurry != NULL) /* shutdown or an on-demand snapshot: no more pacing */
        atomic_store(child->hurry, true);
    child_release(child, log, wait);
    int status = 0;
    pid_t pid;
    /* Bounded: only a signal repeats the wait. */
    do
        pid = waitpid(child->pid, &status, wait ? 0 : WNOHANG);
    while (pid < 0 && errno == EINTR);
    if (pid == 0)
        return false;        /* still writing */
    if (child->go_fd >= 0) { /* it ended before its go: nothing will read the pipe */
        close(child->go_fd);
        child->go_fd = -1;
    }
    child->pid = 0;
    child->took_ns = rush_clock_monotonic_ns() - child->start_ns;
    if (pid < 0)
        child->status = -ECHILD;
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        child->status =
            WIFEXITED(status) && WEXITSTATUS(status) == CHILD_EXIT_ABANDONED ? RUSH_EWAL : -EIO;
    else
        child->status = 0;
    if (child->status == 0)
        log->snapshot_lsn = child->lsn;
    return true;
}

bool rush_snapshot_child_renew(struct rush_snapshot_child *child)
{
    return rush_snapshot_renew_step(&child->renew);
}

bool rush_snapshot_child_renewing(const struct rush_snapshot_child *child)
{
    return rush_snapshot_renew_pending(&child->renew);
}

void rush_snapshot_child_stop(struct rush_snapshot_child *child)
{
    RUSH_ASSERT(child->pid <= 0);
    rush_snapshot_renew_stop(&child->renew);
    if (child->hurry != NULL)
        munmap(child->hurry, sizeof(atomic_bool));
    child->hurry = NULL;
}
