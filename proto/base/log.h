/*
 * log.h — one line per event on stderr: ISO-8601 UTC time, level, message.
 *
 * What and why. rushd's operators read its log in a terminal or through journald; a line such as
 * "2026-11-11T00:00:00.123Z info rushd: 9 SKUs put" is easy to grep and to sort. The level is a
 * floor set once at start (--log-level); lines below it cost one comparison.
 *
 * Workload: start-up, shutdown, operator actions and problems; never once per request on the hot
 * path. A line is at most RUSH_LOG_LINE_BYTES_MAX bytes (longer messages are cut) and goes out in
 * one write(2), so lines from different threads never interleave.
 *
 * Invariants: a line always ends in one '\n'; nothing is allocated.
 *
 * Threads: any; the level is read relaxed and written once before the threads start.
 */
#ifndef RUSH_LOG_H
#define RUSH_LOG_H

#define RUSH_LOG_LINE_BYTES_MAX 1024

enum rush_log_level {
    RUSH_LOG_DEBUG = 0,
    RUSH_LOG_INFO = 1,
    RUSH_LOG_WARN = 2,
    RUSH_LOG_ERROR = 3,
};

/* Lines below `level` are dropped. The default is RUSH_LOG_INFO. */
void rush_log_set_level(enum rush_log_level level);
enum rush_log_level rush_log_get_level(void);
/* "debug", "info", "warn", "error" into a level. 0, or -EINVAL for any other name. */
__attribute__((warn_unused_result)) int rush_log_level_parse(const char *name,
                                                             enum rush_log_level *out);
const char *rush_log_level_name(enum rush_log_level level);

void rush_log(enum rush_log_level level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#endif
