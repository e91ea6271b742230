/*
 * server_orders.c — the order endpoints: binary REQUEST messages and JSON requests, into slots
 * for the engine, and their replies.
 *
 * Binary. A message that fails rush_wire_decode() is answered by an ERROR naming the problem
 * (rush_wire_encode_error); a well-formed message of another kind, or one carrying an admin op
 * (adjust, pause, resume), by an ERROR with code refused. In an accepted message, records with a
 * field problem are answered `invalid` with their reason (rush_wire_request_reason) and the rest
 * go to the engine; the RESULT has one record per request, in request order, with the request's
 * message id.
 *
 * Records are copied out of nanomsg's buffer (which is not 8-byte aligned) into the slot with
 * rush_wire_view_copy(); when some are invalid the valid ones are compacted to the front in one
 * pass, the invalid ones' results are kept after the engine's, and the reply merges the two back
 * into request order through `reasons`.
 *
 * A failed write-ahead log (a full disk) never turns into an ERROR: the engine answers the
 * requests whose fate it cannot know RUSH_OUTCOME_UNKNOWN and the RESULT carries them beside the
 * decisions that were made durable, so a client resends exactly the unknown ones with their keys.
 *
 * JSON. One object per message (rush_json_decode_request), answered by
 * rush_json_encode_result() or rush_json_encode_error(); list_groups asks the engine one rank per
 * request and is answered by rush_json_encode_group_list().
 *
 * Workload: every order message; the per-request work is a 64-byte copy, one field check and, in
 * the reply, one outcome count. Threads: the front end only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "rush/assert.h"
#include "server_internal.h"

/*
 * Moves the records with a field problem out of the engine's way: valid ones compacted to the
 * front of requests (in order), an `invalid` result for each of the others after the engine's
 * results, and each record's reason in reasons[] for the merge.
 */
static void set_aside_invalid(struct rush_server_slot *slot, uint32_t invalid_count)
{
    RUSH_ASSERT(invalid_count <= slot->count);
    slot->valid_count = slot->count - invalid_count;
    if (invalid_count == 0)
        return;
    uint32_t valid = 0;
    uint32_t invalid = 0;
    for (uint32_t i = 0; i < slot->count; i++) {
        struct rush_request request = slot->requests[i];
        enum rush_reason reason = rush_wire_request_reason(&request);
        slot->reasons[i] = (uint8_t)reason;
        if (reason == RUSH_REASON_NONE) {
            slot->requests[valid++] = request; /* valid <= i: never overwrites an unread record */
            continue;
        }
        RUSH_ASSERT(slot->valid_count + invalid < slot->count);
        slot->results[slot->valid_count + invalid++] = (struct rush_result){
            .outcome = RUSH_INVALID, .reason = (uint8_t)reason, .tag = request.tag};
    }
    RUSH_ASSERT(valid == slot->valid_count && invalid == invalid_count);
}

/* The first record carrying an admin op, or RUSH_WIRE_NO_RECORD. */
static uint32_t find_admin_op(const struct rush_server_slot *slot)
{
    for (uint32_t i = 0; i < slot->count; i++) {
        if (rush_server_op_is_admin(slot->requests[i].op))
            return i;
    }
    return RUSH_WIRE_NO_RECORD;
}

static void on_binary(struct rush_server *server, struct rush_server_message *message)
{
    struct rush_wire_view view;
    struct rush_wire_error error;
    memset(&view, 0, sizeof(view));
    if (rush_wire_decode(message->body, message->len, &view, &error) != 0) {
        rush_server_send_wire_error(server, message, view.message_id, &error);
        return;
    }
    if (view.kind != RUSH_WIRE_REQUEST) {
        rush_wire_error_set(&error, RUSH_WIRE_E_REFUSED, RUSH_WIRE_NO_RECORD,
                            "kind %s not accepted on this endpoint",
                            rush_wire_kind_name((enum rush_wire_kind)view.kind));
        rush_server_send_wire_error(server, message, view.message_id, &error);
        return;
    }
    struct rush_server_slot *slot = rush_server_slot_take(server, view.count, message->len);
    int copied = rush_wire_view_copy(&view, slot->requests,
                                     (size_t)slot->capacity * sizeof(struct rush_request));
    RUSH_ASSERT(copied == (int)(view.count * sizeof(struct rush_request)));
    uint32_t admin_index = find_admin_op(slot);
    if (admin_index != RUSH_WIRE_NO_RECORD) {
        rush_server_slot_give(server, slot);
        rush_wire_error_set(&error, RUSH_WIRE_E_REFUSED, admin_index,
                            "record %u: op %s is taken only on the admin endpoint", admin_index,
                            rush_op_name((enum rush_op)slot->requests[admin_index].op));
        rush_server_send_wire_error(server, message, view.message_id, &error);
        return;
    }
    set_aside_invalid(slot, view.invalid_count);
    slot->endpoint = RUSH_ENDPOINT_ORDERS;
    slot->message_id = view.message_id;
    slot->control = message->control;
    message->control = NULL;
    server->counters.requests += view.count;
    rush_server_slot_submit(server, slot);
}

static void on_json(struct rush_server *server, struct rush_server_message *message)
{
    struct rush_request request;
    char why[RUSH_JSON_WHY_BYTES];
    if (rush_json_decode_request(message->body, message->len, &request, why, sizeof(why)) != 0) {
        rush_server_send_json_error(server, message, why);
        return;
    }
    if (rush_server_op_is_admin(request.op)) {
        snprintf(why, sizeof(why),
                 "op '%s' is an admin command: send it to the admin endpoint with the token",
                 rush_op_name((enum rush_op)request.op));
        rush_server_send_json_error(server, message, why);
        return;
    }
    /* list_groups {limit}: one query per rank, in one batch to the SKU's shard, which decides
     * them in a row (so the ranks describe one state); answered as one list. */
    uint32_t count = request.op == RUSH_OP_LIST_GROUPS ? request.qty : 1;
    RUSH_ASSERT(count >= 1 && count <= RUSH_LIST_GROUPS_MAX);
    struct rush_server_slot *slot = rush_server_slot_take(server, count, message->len);
    for (uint32_t rank = 0; rank < count; rank++) {
        slot->requests[rank] = request;
        if (request.op == RUSH_OP_LIST_GROUPS)
            slot->requests[rank].qty = rank;
    }
    set_aside_invalid(slot,
                      rush_wire_request_reason(&slot->requests[0]) == RUSH_REASON_NONE ? 0 : 1);
    slot->endpoint = RUSH_ENDPOINT_JSON;
    slot->control = message->control;
    message->control = NULL;
    server->counters.requests++;
    rush_server_slot_submit(server, slot);
}

/* The slot's results in request order: its own array, or merged into server->merged. */
static const struct rush_result *results_in_order(struct rush_server *server,
                                                  const struct rush_server_slot *slot)
{
    if (slot->valid_count == slot->count)
        return slot->results;
    uint32_t valid = 0;
    uint32_t invalid = slot->valid_count;
    for (uint32_t i = 0; i < slot->count; i++) {
        if (slot->reasons[i] == RUSH_REASON_NONE)
            server->merged[i] = slot->results[valid++];
        else
            server->merged[i] = slot->results[invalid++];
    }
    RUSH_ASSERT(valid == slot->valid_count && invalid == slot->count);
    return server->merged;
}

static void reply_binary(struct rush_server *server, struct rush_server_slot *slot,
                         const struct rush_result *results)
{
    int n = rush_wire_encode_results(server->reply, RUSH_WIRE_MESSAGE_BYTES_MAX, slot->message_id,
                                     results, slot->count);
    if (n < 0) {
        /* Only a result the decoder would refuse gets here: an engine bug, reported, not sent. */
        struct rush_wire_error error;
        rush_wire_error_set(&error, RUSH_WIRE_E_SERVER, RUSH_WIRE_NO_RECORD,
                            "server could not encode the results: %s", strerror(-n));
        rush_log(RUSH_LOG_ERROR, "%s", error.text);
        n = rush_wire_encode_error(server->reply, RUSH_WIRE_MESSAGE_BYTES_MAX, slot->message_id,
                                   &error);
        RUSH_ASSERT(n > 0);
    }
    rush_server_send(server, slot->endpoint, &slot->control, server->reply, (size_t)n);
}

static void reply_json(struct rush_server *server, struct rush_server_slot *slot,
                       const struct rush_result *results)
{
    int n = slot->requests[0].op == RUSH_OP_LIST_GROUPS
                ? rush_json_encode_group_list(&slot->requests[0], results, slot->count,
                                              server->text, sizeof(server->text))
                : rush_json_encode_result(&slot->requests[0], &results[0], server->text,
                                          sizeof(server->text));
    RUSH_ASSERT(slot->count == 1 || slot->requests[0].op == RUSH_OP_LIST_GROUPS);
    if (n < 0)
        n = rush_json_encode_error("server could not encode the result", server->text,
                                   sizeof(server->text));
    RUSH_ASSERT(n > 0);
    rush_server_send(server, slot->endpoint, &slot->control, server->text, (size_t)n);
}

/*
 * A shard's log failed before part of this batch was durable: the engine has made that part's
 * results RUSH_OUTCOME_UNKNOWN and left the others' decisions, so the reply says what is known and
 * nothing more (PROTOCOL.md section 5). Counted and logged once.
 */
static void note_wal_failure(struct rush_server *server, int status)
{
    if (status == RUSH_EFENCED) { /* a cluster leader lost a shard (ARCHITECTURE.md "Cluster") */
        if (server->counters.fenced_replies++ == 0)
            rush_log(RUSH_LOG_WARN, "a shard was fenced: requests it held unreplicated are "
                                    "answered outcome_unknown (resend with the same keys)");
        return;
    }
    if (server->counters.wal_failed_replies++ == 0)
        rush_log(RUSH_LOG_ERROR, "a write-ahead log failed: requests it holds are answered "
                                 "outcome_unknown (resend with the same keys after a restart)");
}

static void on_decided(struct rush_server *server, struct rush_server_slot *slot)
{
    if (slot->batch.status != 0)
        note_wal_failure(server, slot->batch.status);
    const struct rush_result *results = results_in_order(server, slot);
    for (uint32_t i = 0; i < slot->count; i++) {
        RUSH_ASSERT(results[i].outcome < RUSH_OUTCOME_COUNT_);
        server->counters.outcomes[results[i].outcome]++;
    }
    switch (slot->endpoint) {
    case RUSH_ENDPOINT_ORDERS:
        reply_binary(server, slot, results);
        break;
    case RUSH_ENDPOINT_JSON:
        reply_json(server, slot, results);
        break;
    case RUSH_ENDPOINT_ADMIN:
    case RUSH_ENDPOINT_COUNT_:
        RUSH_ASSERT(!"admin commands never wait in a slot");
        break;
    }
}

const struct rush_server_handlers rush_server_binary_handlers = {.on_message = on_binary,
                                                                 .on_decided = on_decided};
const struct rush_server_handlers rush_server_json_handlers = {.on_message = on_json,
                                                               .on_decided = on_decided};
