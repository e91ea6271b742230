/*
 * server_audit.c — who did what and why on the admin endpoint (ARCHITECTURE.md "Operations
 * console"): every admin action (adjust, pause, resume, sku_put, snapshot) is recorded with the
 * operator and the reason its request carried ("operator", "reason"; "-" when absent), its SKU,
 * amount and outcome:
 *   - as one JSON line appended to DATA_DIR/audit.log, written and fdatasync'ed before the
 *     answer goes back (admin actions are a few a minute: one sync each costs nothing);
 *   - as one line in rushd's log (stderr).
 * A log file that cannot be opened or written is reported once and the actions still run: the
 * audit must not stop the sale.
 *
 * Threads: the front end only. Calls nothing in the front end.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "server_internal.h"

#define AUDIT_FILE "audit.log"
#define AUDIT_LINE_BYTES_MAX 2048

/* Takes "operator" and "reason" out of an admin command (absent: "-"); 0, or a refusal. */
int rush_server_audit_take(json_t *root, struct rush_server_audit *audit, char *why,
                           size_t why_size)
{
    static const struct {
        const char *name;
        size_t max;
    } fields[] = {{"operator", RUSH_AUDIT_OPERATOR_BYTES_MAX},
                  {"reason", RUSH_AUDIT_REASON_BYTES_MAX}};
    char *out[] = {audit->operator_name, audit->reason};
    for (int f = 0; f < 2; f++) {
        json_t *value = json_object_get(root, fields[f].name);
        snprintf(out[f], fields[f].max + 1, "-");
        if (value == NULL)
            continue;
        size_t len = json_string_length(value);
        if (!json_is_string(value) || len == 0 || len > fields[f].max) {
            snprintf(why, why_size, "field '%s' must be a string of 1..%zu bytes", fields[f].name,
                     fields[f].max);
            return RUSH_EPROTO;
        }
        memcpy(out[f], json_string_value(value), len + 1);
        json_object_del(root, fields[f].name);
    }
    return 0;
}

static void audit_open(struct rush_server *server)
{
    char path[RUSH_DATA_DIR_BYTES_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", server->data_dir, AUDIT_FILE);
    server->audit_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (server->audit_fd < 0)
        rush_log(RUSH_LOG_WARN, "audit: cannot open %s (%s): actions are audited in this log only",
                 path, strerror(errno));
}

void rush_server_audit_record(struct rush_server *server, const struct rush_server_audit *audit,
                              const char *action, uint64_t sku_id, int64_t amount,
                              const char *outcome)
{
    json_t *line =
        json_pack("{sIsssssssIsIss}", "time_ns", (json_int_t)rush_clock_wall_ns(), "operator",
                  audit->operator_name, "reason", audit->reason, "action", action, "sku",
                  (json_int_t)sku_id, "amount", (json_int_t)amount, "outcome", outcome);
    char text[AUDIT_LINE_BYTES_MAX];
    size_t len = line ? json_dumpb(line, text, sizeof(text) - 1, JSON_COMPACT) : 0;
    json_decref(line);
    if (len == 0 || len >= sizeof(text) - 1)
        len = (size_t)snprintf(text, sizeof(text), "{\"action\":\"%s\",\"outcome\":\"%s\"}", action,
                               outcome);
    text[len++] = '\n';
    rush_log(RUSH_LOG_INFO, "audit: %.*s", (int)len - 1, text);
    if (server->audit_fd == -1)
        audit_open(server);
    if (server->audit_fd < 0)
        return;
    if (write(server->audit_fd, text, len) != (ssize_t)len || fdatasync(server->audit_fd) != 0) {
        rush_log(RUSH_LOG_WARN, "audit: writing %s/%s failed (%s): later actions in this log only",
                 server->data_dir, AUDIT_FILE, strerror(errno));
        close(server->audit_fd);
        server->audit_fd = -2; /* reported once; not retried */
    }
}

void rush_server_audit_close(struct rush_server *server)
{
    if (server->audit_fd >= 0)
        close(server->audit_fd);
    server->audit_fd = -1;
}
