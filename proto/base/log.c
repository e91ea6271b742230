/*
 * log.c — stderr lines with an ISO-8601 UTC timestamp and a level (see log.h).
 *
 * Each line is formatted into a stack buffer and written with one write(2): no stdio locking,
 * no allocation, and lines from shard threads and the front end do not interleave.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "rush/assert.h"

static _Atomic int log_level = RUSH_LOG_INFO;

void rush_log_set_level(enum rush_log_level level)
{
    RUSH_ASSERT(level >= RUSH_LOG_DEBUG && level <= RUSH_LOG_ERROR);
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum rush_log_level rush_log_get_level(void)
{
    return (enum rush_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

const char *rush_log_level_name(enum rush_log_level level)
{
    switch (level) {
    case RUSH_LOG_DEBUG:
        return "debug";
    case RUSH_LOG_INFO:
        return "info";
    case RUSH_LOG_WARN:
        return "warn";
    case RUSH_LOG_ERROR:
        return "error";
    }
    return "?";
}

int rush_log_level_parse(const char *name, enum rush_log_level *out)
{
    RUSH_ASSERT(name != NULL && out != NULL);
    for (int level = RUSH_LOG_DEBUG; level <= RUSH_LOG_ERROR; level++) {
        if (strcmp(name, rush_log_level_name((enum rush_log_level)level)) == 0) {
            *out = (enum rush_log_level)level;
            return 0;
        }
    }
    return -EINVAL;
}

void rush_log(enum rush_log_level level, const char *format, ...)
{
    if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    char line[RUSH_LOG_LINE_BYTES_MAX];
    int64_t now_ns = rush_clock_wall_ns();
    time_t seconds = (time_t)(now_ns / RUSH_CLOCK_NS_PER_S);
    struct tm utc;
    gmtime_r(&seconds, &utc);
    size_t used = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &utc);
    used += (size_t)snprintf(line + used, sizeof(line) - used, ".%03ldZ %s ",
                             (long)(now_ns % RUSH_CLOCK_NS_PER_S / RUSH_CLOCK_NS_PER_MS),
                             rush_log_level_name(level));
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line + used, sizeof(line) - used, format, args);
    va_end(args);
    if (n < 0)
        n = 0;
    used += (size_t)n;
    if (used > sizeof(line) - 2)
        used = sizeof(line) - 2; /* cut short: keep room for the newline */
    line[used++] = '\n';
    int saved_errno = errno;
    ssize_t written = write(STDERR_FILENO, line, used);
    (void)written; /* nowhere to report a failed log write */
    errno = saved_errno;
}
