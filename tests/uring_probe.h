/*
 * uring_probe.h — skip, don't fail, where io_uring is refused (liburing's test convention).
 *
 * A container's default seccomp profile, an old kernel or a sysctl (kernel.io_uring_disabled)
 * makes io_uring_queue_init() fail with -EPERM or -ENOSYS; the WAL then uses its pwrite fallback
 * (wal.h), so a test that asserts the io_uring path has nothing to test there. The probe runs
 * once per process. RUSH_WAL_NO_URING=1 (the WAL's own switch) counts as refused too.
 *   Criterion tests:  SKIP_WITHOUT_URING();  (cr_skip_test, reported as skipped)
 *   plain programs:   exit_77_without_uring();  (ctest SKIP_RETURN_CODE 77, tests/CMakeLists.txt)
 * Header-only so that each test program stays one file.
 */
#ifndef RUSH_TEST_URING_PROBE_H
#define RUSH_TEST_URING_PROBE_H

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URING_SKIP_EXIT_CODE 77

/* 0 when io_uring works here; else the -errno it was refused with (probed once). */
static inline int uring_refused(void)
{
    static int probed; /* 0: not yet; 1: works; else the -errno */
    if (probed == 0) {
        const char *env = getenv("RUSH_WAL_NO_URING");
        struct io_uring ring;
        int rc = env != NULL && strcmp(env, "1") == 0 ? -EPERM : io_uring_queue_init(2, &ring, 0);
        if (rc == 0)
            io_uring_queue_exit(&ring);
        probed = rc == 0 ? 1 : rc;
    }
    return probed == 1 ? 0 : probed;
}

#define SKIP_WITHOUT_URING()                                                                       \
    do {                                                                                           \
        int refused_ = uring_refused();                                                            \
        if (refused_ != 0)                                                                         \
            cr_skip_test("io_uring refused here (%s): the fallback is tested on its own",          \
                         strerror(-refused_));                                                     \
    } while (0)

static inline void exit_77_without_uring(void)
{
    int refused = uring_refused();
    if (refused != 0) {
        fprintf(stderr, "skipped: io_uring refused here (%s)\n", strerror(-refused));
        exit(URING_SKIP_EXIT_CODE);
    }
}

#endif
