/*
 * server_admin.c — the admin endpoint: JSON commands that carry the admin token.
 *
 * What and why. Operators (rushctl, scripts, nanocat by hand) put SKUs, adjust stock, pause and
 * resume SKUs, query, and read live figures. Every command is a JSON object with a "token" field
 * equal to the configured admin token; without it (missing, wrong, not a string) the answer is
 * {"outcome":"invalid","reason":"admin token required"} and nothing happens. The token, and the
 * optional "operator" and "reason" of the audit (server_audit.c), are taken out of the object
 * before the rest goes to rush_json_decode(), which refuses unknown fields. Every action (adjust,
 * pause, resume, sku_put, snapshot) is audited with them, and goes to its shard (a snapshot to
 * every shard) with them, which logs them as an admin_audit event that the stream publishes
 * (operator and reason cut to RUSH_AUDIT_OPERATOR_BYTES and RUSH_AUDIT_REASON_BYTES there;
 * audit.log keeps them whole).
 *
 *   sku_put                 rush_engine_admin_sku_put()
 *   adjust, pause, resume   rush_engine_admin_execute(), a keyed request; logged
 *   query_order/group/sku   rush_engine_execute()
 *   stats                   rush_json_encode_stats() plus the server's own figures
 *   snapshot                rush_engine_admin_snapshot(): every shard, one after another; answers
 *                           {"outcome":"ok","shards":N,"took_ms":T}; logged
 *   cluster_handover        {"op":"cluster_handover","shard":S,"node":"NAME"}: this node, the
 *                           shard's leader, drains it and offers its lease to NAME
 *                           (rush_cluster_handover); answers {"outcome":"ok",...} at once (the
 *                           move takes up to a lease round); audited as "handover", sku = S
 * Order-taking ops (reserve, confirm, cancel, group ops) are refused here: they belong on the
 * order endpoints. Binary messages are refused too (ERROR code refused): they cannot carry the
 * token.
 *
 * Workload: a few commands a minute, run synchronously on the front-end thread; batches decided
 * meanwhile wait in the engine's ready queue for the next turn. jansson allocates while checking
 * the token; that is fine off the order path.
 *
 * Threads: the front end only.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "rush/assert.h"
#include "server_internal.h"

#define RUSH_ADMIN_TOKEN_REQUIRED "admin token required"

/* Compares in time that depends on the configured token's length only. */
static bool token_matches(const char *given, size_t given_len, const char *expected)
{
    size_t expected_len = strlen(expected);
    unsigned char difference = given_len != expected_len;
    for (size_t i = 0; i < expected_len; i++)
        difference |= (unsigned char)(expected[i] ^ (i < given_len ? given[i] : 0));
    return difference == 0;
}

/*
 * Checks the token and returns the command without it (json_dumps'ed: free() it), or NULL with
 * the reason to answer in why.
 */
static char *strip_token(struct rush_server *server, const struct rush_server_message *message,
                         struct rush_server_audit *audit, char *why, size_t why_size)
{
    struct rush_json_command unused;
    if (message->len > RUSH_JSON_MESSAGE_BYTES_MAX)
        goto out_decoder_reason;
    json_error_t error;
    json_t *root = json_loadb(message->body, message->len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        goto out_decoder_reason;
    }
    json_t *token = json_object_get(root, "token");
    if (!json_is_string(token) ||
        !token_matches(json_string_value(token), json_string_length(token), server->admin_token)) {
        json_decref(root);
        snprintf(why, why_size, "%s", RUSH_ADMIN_TOKEN_REQUIRED);
        return NULL;
    }
    json_object_del(root, "token");
    if (rush_server_audit_take(root, audit, why, why_size) != 0) {
        json_decref(root);
        return NULL;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text == NULL)
        snprintf(why, why_size, "out of memory");
    return text;
out_decoder_reason:
    /* Not a JSON object at all: the decoder names the problem in its usual words. */
    if (rush_json_decode(message->body, message->len, &unused, why, why_size) == 0)
        snprintf(why, why_size, "%s", RUSH_ADMIN_TOKEN_REQUIRED);
    return NULL;
}

static bool op_is_admin_request(uint8_t op)
{
    return rush_server_op_is_admin(op) || op == RUSH_OP_QUERY_ORDER || op == RUSH_OP_QUERY_GROUP ||
           op == RUSH_OP_QUERY_SKU;
}

static void send_result(struct rush_server *server, struct rush_server_message *message,
                        const struct rush_request *request, const struct rush_result *result)
{
    RUSH_ASSERT(result->outcome < RUSH_OUTCOME_COUNT_);
    server->counters.outcomes[result->outcome]++;
    int n = rush_json_encode_result(request, result, server->text, sizeof(server->text));
    RUSH_ASSERT(n > 0);
    rush_server_send(server, message->endpoint, &message->control, server->text, (size_t)n);
}

/* The audit as the shard logs it: each text cut to its field, NUL-padded. */
static struct rush_audit shard_audit(const struct rush_server_audit *audit)
{
    struct rush_audit out;
    memset(&out, 0, sizeof(out));
    size_t n = strlen(audit->operator_name);
    memcpy(out.operator_name, audit->operator_name,
           n < sizeof(out.operator_name) ? n : sizeof(out.operator_name));
    n = strlen(audit->reason);
    memcpy(out.reason, audit->reason, n < sizeof(out.reason) ? n : sizeof(out.reason));
    return out;
}

static void admin_request(struct rush_server *server, struct rush_server_message *message,
                          const struct rush_request *request, const struct rush_server_audit *audit)
{
    char why[RUSH_JSON_WHY_BYTES];
    if (!op_is_admin_request(request->op)) {
        snprintf(why, sizeof(why), "op '%s' is not an admin command: send it to an order endpoint",
                 rush_op_name((enum rush_op)request->op));
        rush_server_send_json_error(server, message, why);
        return;
    }
    struct rush_result result;
    struct rush_audit logged = shard_audit(audit);
    int rc = rush_server_op_is_admin(request->op)
                 ? rush_engine_admin_execute(server->engine, request, &logged, &result)
                 : rush_engine_execute(server->engine, request, 1, &result);
    if (rc < 0 && rc != RUSH_EWAL) { /* RUSH_EWAL: the result says outcome_unknown */
        snprintf(why, sizeof(why), "engine: %s", rush_strerror(rc));
        rush_server_send_json_error(server, message, why);
        return;
    }
    if (rush_server_op_is_admin(request->op))
        rush_server_audit_record(server, audit, rush_op_name((enum rush_op)request->op),
                                 request->sku_id, request->amount,
                                 result.outcome == RUSH_INVALID
                                     ? rush_reason_name(result.reason)
                                     : rush_outcome_name(result.outcome));
    send_result(server, message, request, &result);
}

static void admin_sku_put(struct rush_server *server, struct rush_server_message *message,
                          const struct rush_sku *sku, const struct rush_server_audit *audit)
{
    struct rush_result result;
    struct rush_audit logged = shard_audit(audit);
    int rc = rush_engine_admin_sku_put(server->engine, sku, &logged, &result);
    if (rc < 0 && rc != RUSH_EWAL) { /* RUSH_EWAL: the result says outcome_unknown */
        char why[RUSH_JSON_WHY_BYTES];
        snprintf(why, sizeof(why), "engine: %s", rush_strerror(rc));
        rush_server_send_json_error(server, message, why);
        return;
    }
    rush_log(RUSH_LOG_INFO, "admin: sku_put %llu (%.*s, stock %lld%s): %s",
             (unsigned long long)sku->id, RUSH_SKU_NAME_MAX, sku->name, (long long)sku->stock,
             sku->unlimited ? ", unlimited" : "", rush_outcome_name(result.outcome));
    rush_server_audit_record(server, audit, "sku_put", sku->id, sku->unlimited ? -1 : sku->stock,
                             rush_outcome_name(result.outcome));
    if (result.outcome == RUSH_OK)
        rush_ops_sku_put(server->ops, sku); /* the console tracks it from now on */
    struct rush_request request = {.op = RUSH_OP_NONE, .sku_id = sku->id};
    send_result(server, message, &request, &result);
}

/*
 * Every shard logs the audit (on the stream too), writes a snapshot and drops the log segments it
 * covers (rush_engine_admin_snapshot). Each shard stops deciding while it writes; the front end
 * waits, so the answer means "taken".
 */
static void admin_snapshot(struct rush_server *server, struct rush_server_message *message,
                           const struct rush_server_audit *audit)
{
    int64_t started_ns = rush_server_now_ns();
    struct rush_audit logged = shard_audit(audit);
    int rc = rush_engine_admin_snapshot(server->engine, &logged);
    double took_ms = (double)(rush_server_now_ns() - started_ns) / 1e6;
    rush_server_audit_record(server, audit, "snapshot", 0, 0, rc < 0 ? rush_strerror(rc) : "ok");
    if (rc < 0) {
        char why[RUSH_JSON_WHY_BYTES];
        snprintf(why, sizeof(why), "snapshot: %s",
                 rc == RUSH_ECONFIG ? "no write-ahead log to snapshot (durability none)"
                                    : rush_strerror(rc));
        rush_log(RUSH_LOG_WARN, "admin: %s", why);
        rush_server_send_json_error(server, message, why);
        return;
    }
    uint32_t shards = rush_engine_shard_count(server->engine);
    rush_log(RUSH_LOG_INFO, "admin: snapshot of %u shards in %.1f ms", shards, took_ms);
    int n = snprintf(server->text, sizeof(server->text),
                     "{\"outcome\":\"ok\",\"shards\":%u,\"took_ms\":%.1f}", shards, took_ms);
    RUSH_ASSERT(n > 0 && (size_t)n < sizeof(server->text));
    rush_server_send(server, message->endpoint, &message->control, server->text, (size_t)n);
}

/* True (and answered) when `text` is a cluster_handover command. */
static bool admin_handover(struct rush_server *server, struct rush_server_message *message,
                           const char *text, const struct rush_server_audit *audit)
{
    json_t *root = json_loads(text, 0, NULL);
    const char *op = json_string_value(json_object_get(root, "op"));
    if (op == NULL || strcmp(op, "cluster_handover") != 0) {
        json_decref(root);
        return false;
    }
    char why[RUSH_JSON_WHY_BYTES] = "";
    json_t *shard = json_object_get(root, "shard");
    const char *node = json_string_value(json_object_get(root, "node"));
    int target = -1;
    const struct rush_campaign_cluster *settings = &server->campaign->cluster;
    for (uint32_t i = 0; node != NULL && i < settings->node_count; i++)
        if (strcmp(settings->names[i], node) == 0)
            target = (int)i;
    if (server->cluster == NULL)
        snprintf(why, sizeof(why), "cluster_handover: this rushd has no [cluster]");
    else if (!json_is_integer(shard) || json_integer_value(shard) < 0 ||
             json_object_size(root) != 3 || target < 0)
        snprintf(why, sizeof(why),
                 "cluster_handover needs \"shard\" (a number) and \"node\" (a [cluster] name)");
    else if (rush_cluster_handover(server->cluster, (uint32_t)json_integer_value(shard),
                                   (uint32_t)target, why, sizeof(why)) == 0)
        why[0] = '\0'; /* offered; a refusal left its reason in why */
    uint64_t shard_index = json_is_integer(shard) ? (uint64_t)json_integer_value(shard) : 0;
    rush_server_audit_record(server, audit, "handover", shard_index, target,
                             why[0] != '\0' ? why : "ok");
    if (why[0] != '\0') {
        rush_server_send_json_error(server, message, why);
    } else {
        int n = snprintf(server->text, sizeof(server->text),
                         "{\"outcome\":\"ok\",\"shard\":%llu,\"node\":\"%s\"}",
                         (unsigned long long)shard_index, node);
        RUSH_ASSERT(n > 0 && (size_t)n < sizeof(server->text));
        rush_server_send(server, message->endpoint, &message->control, server->text, (size_t)n);
    }
    json_decref(root);
    return true;
}

/* Appends `,"name":{"outcome":count,...}` for a table of outcome counts. */
static size_t put_outcomes(char *buf, size_t cap, const char *name, const uint64_t *outcomes)
{
    size_t used = (size_t)snprintf(buf, cap, ",\"%s\":{", name);
    for (int o = 0; o < RUSH_OUTCOME_COUNT_ && used < cap; o++)
        used += (size_t)snprintf(buf + used, cap - used, "%s\"%s\":%llu", o ? "," : "",
                                 rush_outcome_name((enum rush_outcome)o),
                                 (unsigned long long)outcomes[o]);
    if (used < cap)
        used += (size_t)snprintf(buf + used, cap - used, "}");
    return used;
}

/* ,"publisher":{...} with its counters, or null when it is off. */
static size_t put_publisher(struct rush_publisher *publisher, char *buf, size_t cap)
{
    if (publisher == NULL)
        return (size_t)snprintf(buf, cap, ",\"publisher\":null");
    struct rush_publisher_stats s;
    rush_publisher_stats(publisher, &s);
    return (size_t)snprintf(
        buf, cap,
        ",\"publisher\":{\"events_published\":%lu,\"messages_sent\":%lu,\"heartbeats_sent\":%lu,"
        "\"sends_dropped\":%lu,\"replay_requests\":%lu,\"replay_events_from_memory\":%lu,"
        "\"replay_events_from_log\":%lu,\"replay_too_old\":%lu,\"replay_bad_requests\":%lu,"
        "\"read_errors\":%lu}",
        s.events_published, s.messages_sent, s.heartbeats_sent, s.sends_dropped, s.replay_requests,
        s.replay_events_from_memory, s.replay_events_from_log, s.replay_too_old,
        s.replay_bad_requests, s.read_errors);
}

static void admin_stats(struct rush_server *server, struct rush_server_message *message)
{
    struct rush_engine_stats stats;
    rush_engine_stats(server->engine, &stats);
    char *text = server->text;
    const size_t cap = sizeof(server->text);
    int n = rush_json_encode_stats(&stats, text, cap);
    RUSH_ASSERT(n > 1 && text[n - 1] == '}');
    size_t used = (size_t)n - 1; /* reopen the object */
    const struct rush_server_counters *c = &server->counters;
    double uptime_s = (double)(rush_server_now_ns() - server->started_ns) / 1e9;
    used += (size_t)snprintf(
        text + used, cap - used,
        ",\"recovered_events\":%llu,\"uptime_s\":%.3f,\"in_flight\":%u,\"in_flight_max\":%u,"
        "\"server\":{\"messages\":"
        "{\"orders\":%llu,\"json\":%llu,\"admin\":%llu},\"requests\":%llu,\"errors\":%llu,"
        "\"busy_messages\":%llu,\"send_failures\":%llu,\"wal_failed_replies\":%llu,"
        "\"requests_in_flight\":%llu,\"requests_in_flight_max\":%llu,\"packs\":%llu,"
        "\"packed_messages\":%llu",
        (unsigned long long)stats.recovered_events, uptime_s, server->in_flight,
        server->in_flight_max, (unsigned long long)c->messages[RUSH_ENDPOINT_ORDERS],
        (unsigned long long)c->messages[RUSH_ENDPOINT_JSON],
        (unsigned long long)c->messages[RUSH_ENDPOINT_ADMIN], (unsigned long long)c->requests,
        (unsigned long long)c->errors, (unsigned long long)c->busy_messages,
        (unsigned long long)c->send_failures, (unsigned long long)c->wal_failed_replies,
        (unsigned long long)server->requests_in_flight,
        (unsigned long long)server->requests_in_flight_max, (unsigned long long)c->packs,
        (unsigned long long)c->packed_messages);
    if (used < cap)
        used += put_outcomes(text + used, cap - used, "outcomes", c->outcomes);
    if (used < cap)
        used += (size_t)snprintf(text + used, cap - used, "}");
    if (used < cap)
        used += put_publisher(server->publisher, text + used, cap - used);
    if (used < cap)
        used += (size_t)snprintf(text + used, cap - used, "}");
    RUSH_ASSERT(used < cap); /* the text buffer is sized for this with room to spare */
    rush_server_send(server, message->endpoint, &message->control, text, used);
}

static void on_admin(struct rush_server *server, struct rush_server_message *message)
{
    if (message->len >= 4 && memcmp(message->body, "RUSH", 4) == 0) {
        struct rush_wire_view view;
        struct rush_wire_error error;
        memset(&view, 0, sizeof(view));
        if (rush_wire_decode(message->body, message->len, &view, &error) == 0)
            rush_wire_error_set(&error, RUSH_WIRE_E_REFUSED, RUSH_WIRE_NO_RECORD,
                                "binary messages are not accepted on the admin endpoint: "
                                "send JSON with the token");
        rush_server_send_wire_error(server, message, view.message_id, &error);
        return;
    }
    char why[RUSH_JSON_WHY_BYTES];
    struct rush_server_audit audit;
    char *text = strip_token(server, message, &audit, why, sizeof(why));
    if (text == NULL) {
        rush_log(RUSH_LOG_DEBUG, "admin: refused: %s", why);
        rush_server_send_json_error(server, message, why);
        return;
    }
    if (admin_handover(server, message, text, &audit)) {
        free(text);
        return;
    }
    struct rush_json_command command;
    int rc = rush_json_decode(text, strlen(text), &command, why, sizeof(why));
    free(text);
    if (rc != 0) {
        rush_server_send_json_error(server, message, why);
        return;
    }
    switch (command.kind) {
    case RUSH_JSON_REQUEST:
        admin_request(server, message, &command.request, &audit);
        break;
    case RUSH_JSON_SKU_PUT:
        admin_sku_put(server, message, &command.sku, &audit);
        break;
    case RUSH_JSON_STATS:
        admin_stats(server, message);
        break;
    case RUSH_JSON_SNAPSHOT:
        admin_snapshot(server, message, &audit);
        break;
    }
}

/* Admin commands run synchronously: nothing of theirs waits in a slot. */
const struct rush_server_handlers rush_server_admin_handlers = {.on_message = on_admin,
                                                                .on_decided = NULL};
