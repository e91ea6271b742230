/*
 * The side-by-side benchmark script works: bench/side_by_side.sh --quick, run against this build,
 * exits 0 and prints every figure and ratio line. It checks that the script runs end to end (Redis
 * and rushd started and stopped, reports read, Redis's books checked), not the figures: those are
 * for people to read, and depend on what else the machine is doing.
 *
 * Skipped in sanitizer builds (the script measures; the engine's tests cover it under the
 * sanitizers); the release build runs it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PATH_BYTES 512
#define OUTPUT_BYTES (64 * 1024)

static char output[OUTPUT_BYTES];

/* The build directory: this binary lives in BUILD/tests. */
static void build_dir(char *out, size_t size)
{
    char self[PATH_BYTES / 2];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert(n > 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(out, size, "%s/..", self);
}

/* Runs the script with `args`; its stdout in `output`, its exit status returned. */
static int run_script(const char *args)
{
    const char *source = getenv("RUSH_SOURCE_DIR");
    cr_assert(source != NULL, "RUSH_SOURCE_DIR is set by ctest");
    char build[PATH_BYTES], command[4 * PATH_BYTES];
    build_dir(build, sizeof(build));
    snprintf(command, sizeof(command), "'%s/bench/side_by_side.sh' --build '%s' %s 2>&1", source,
             build, args);
    FILE *pipe = popen(command, "r");
    cr_assert(pipe != NULL);
    size_t len = fread(output, 1, sizeof(output) - 1, pipe);
    output[len] = '\0';
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define PRINTED(what) cr_expect(strstr(output, (what)) != NULL, "'%s' in:\n%s", (what), output)

Test(side_by_side, quick_run_prints_every_figure_and_ratio, .timeout = 240)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    cr_skip_test("a benchmark script; not run in sanitizer builds");
#endif
    int status = run_script("--quick");
    cr_assert_eq(status, 0, "side_by_side.sh --quick exited %d:\n%s", status, output);
    PRINTED("redis, appendfsync always");
    PRINTED("redis, appendfsync everysec");
    PRINTED("redis, no persistence");
    PRINTED("rush, fsync, batched");
    PRINTED("rush, fsync, unbatched");
    PRINTED("rush, fsync, JSON unbatched");
    PRINTED("echo (decides nothing), binary");
    PRINTED("echo (decides nothing), JSON");
    PRINTED("ratio  loadgen->echo / loadgen->rushd, binary, 50 x 16 ");
    PRINTED("ratio  rush fsync batched / redis always ");
    PRINTED("ratio  rush fsync unbatched / redis no persistence ");
    PRINTED("open loop, rush, fsync, batched");
    PRINTED("open loop, rush, fsync, one order per message");
    PRINTED("open loop, redis, appendfsync always");
    PRINTED("== targets (issue 12)");
    PRINTED("durable, one order per message, 50 x 16");
    PRINTED("open loop, rush-one: knee at");
    PRINTED("redis books (sold exactly min(stock, buyers) per SKU, every run): ok");
}

Test(side_by_side, refuses_an_unknown_option)
{
    cr_assert_eq(run_script("--no-such-option"), 2, "%s", output);
    cr_expect(strstr(output, "unknown option --no-such-option") != NULL, "%s", output);
}
