/*
 * stream.c — the stream's records and messages (see rush/stream.h): which log events the stream
 * carries, their stream form, and bounds-checked decoders.
 */
#include "rush/stream.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/why.h"
#include "rush/assert.h"

bool rush_stream_carries(uint8_t event_type)
{
    switch ((enum rush_event_type)event_type) {
    case RUSH_EV_ORDER_CONFIRMED:
    case RUSH_EV_ORDER_RELEASED:
    case RUSH_EV_ORDER_EXPIRED:
    case RUSH_EV_GROUP_COMPLETED:
    case RUSH_EV_GROUP_FAILED:
    case RUSH_EV_REFUND_DUE:
    case RUSH_EV_INVITER_DUE:
    case RUSH_EV_ADMIN_AUDIT:
    case RUSH_EV_AUDIT_PART:
    case RUSH_EV_REGISTERED:
    case RUSH_EV_TIER_REFUND_DUE:
        return true;
    case RUSH_EV_NONE:
    case RUSH_EV_REJECTED:
    case RUSH_EV_ORDER_RESERVED:
    case RUSH_EV_GROUP_OPENED:
    case RUSH_EV_STOCK_ADJUSTED:
    case RUSH_EV_SKU_PAUSED:
    case RUSH_EV_SKU_RESUMED:
    case RUSH_EV_SKU_PUT:
    case RUSH_EV_SKU_PART:
    case RUSH_EV_SEAT_INVITED:
    case RUSH_EV_TYPE_COUNT_:
        break;
    }
    return false;
}

uint32_t rush_stream_count(const struct rush_event *events, uint32_t count)
{
    uint32_t carried = 0;
    for (uint32_t i = 0; i < count; i++)
        carried += rush_stream_carries(events[i].type);
    return carried;
}

void rush_stream_event_from_log(struct rush_stream_event *out, uint32_t shard, uint64_t seq,
                                int64_t time_ns, const struct rush_event *event)
{
    RUSH_ASSERT(rush_stream_carries(event->type) && shard < RUSH_SHARDS_MAX && seq > 0);
    if (event->type == RUSH_EV_AUDIT_PART) {
        *out = (struct rush_stream_event){.seq = seq,
                                          .time_ns = time_ns,
                                          .qty = event->qty,
                                          .type = event->type,
                                          .shard = (uint8_t)shard};
        memcpy(out->text, event->payload, sizeof(out->text));
        return;
    }
    if (event->type == RUSH_EV_ADMIN_AUDIT) {
        *out = (struct rush_stream_event){.seq = seq,
                                          .time_ns = time_ns,
                                          .sku_id = event->sku_id,
                                          .price_fen = event->amount,
                                          .type = event->type,
                                          .shard = (uint8_t)shard,
                                          .op = event->op};
        return;
    }
    bool group_event =
        event->type == RUSH_EV_GROUP_COMPLETED || event->type == RUSH_EV_GROUP_FAILED;
    *out = (struct rush_stream_event){
        .seq = seq,
        .time_ns = time_ns,
        .order_id = group_event ? 0 : event->order_id,
        .group_id = event->group_id,
        .sku_id = event->sku_id,
        .user_id = group_event ? 0 : event->user_id,
        /* order events carry price * qty; the stream gives the unit price */
        .price_fen = group_event || event->qty == 0 ? 0 : event->amount / (int64_t)event->qty,
        .qty = event->qty,
        .type = event->type,
        .shard = (uint8_t)shard,
        .op = event->op,
    };
}

void rush_stream_batch_begin(struct rush_stream_batch *batch, uint32_t shard, uint64_t seq_before,
                             int64_t time_ns, const struct rush_event *events, uint32_t count)
{
    RUSH_ASSERT(shard < RUSH_SHARDS_MAX && (events != NULL || count == 0));
    *batch = (struct rush_stream_batch){
        .events = events, .count = count, .shard = shard, .time_ns = time_ns, .seq = seq_before};
}

uint32_t rush_stream_batch_take(struct rush_stream_batch *batch, uint64_t from_seq,
                                struct rush_stream_event *out, uint32_t out_max)
{
    uint32_t got = 0;
    /* Bounded: the batch's events, each looked at once over all calls. */
    while (batch->index < batch->count && got < out_max) {
        const struct rush_event *event = &batch->events[batch->index++];
        if (!rush_stream_carries(event->type) || ++batch->seq < from_seq)
            continue;
        rush_stream_event_from_log(&out[got++], batch->shard, batch->seq, batch->time_ns, event);
    }
    RUSH_ASSERT(got == out_max || batch->index == batch->count);
    return got;
}

/* Says why in why[] and returns RUSH_EPROTO. */
#define refuse(why, why_size, ...) rush__refuse(RUSH_EPROTO, why, why_size, __VA_ARGS__)

void rush_stream_view_event(const struct rush_stream_view *view, uint32_t i,
                            struct rush_stream_event *out)
{
    RUSH_ASSERT(i < view->header.count);
    memcpy(out, view->records + (size_t)i * sizeof(*out), sizeof(*out));
}

void rush_stream_view_info(const struct rush_stream_view *view, uint32_t i,
                           struct rush_stream_shard_info *out)
{
    RUSH_ASSERT(i < view->header.count);
    memcpy(out, view->records + (size_t)i * sizeof(*out), sizeof(*out));
}

/* An event run: the header's shard, stream types, seqs consecutive and not past head_seq. */
static int check_events(const struct rush_stream_view *view, char *why, size_t why_size)
{
    const struct rush_stream_header *header = &view->header;
    struct rush_stream_event event;
    for (uint32_t i = 0; i < header->count; i++) {
        rush_stream_view_event(view, i, &event);
        if (event.shard != header->shard || !rush_stream_carries(event.type) || event.pad != 0)
            return refuse(why, why_size, "event %u: bad shard, type or padding", i);
        if (event.seq == 0)
            return refuse(why, why_size, "event %u: seq 0", i);
        if (i > 0) {
            struct rush_stream_event previous;
            rush_stream_view_event(view, i - 1, &previous);
            if (event.seq != previous.seq + 1)
                return refuse(why, why_size, "event %u: seq %lu after %lu", i, event.seq,
                              previous.seq);
        }
        if (event.seq > header->head_seq)
            return refuse(why, why_size, "event %u: seq %lu beyond the head %lu", i, event.seq,
                          header->head_seq);
    }
    return 0;
}

int rush_stream_decode(const void *buf, size_t len, struct rush_stream_view *out, char *why,
                       size_t why_size)
{
    RUSH_ASSERT(out != NULL && (buf != NULL || len == 0));
    memset(out, 0, sizeof(*out));
    if (len < RUSH_STREAM_HEADER_BYTES)
        return refuse(why, why_size, "%zu bytes: shorter than a header", len);
    struct rush_stream_header *header = &out->header;
    memcpy(header, buf, sizeof(*header));
    if (header->magic != RUSH_STREAM_MAGIC || header->version != RUSH_STREAM_VERSION)
        return refuse(why, why_size, "not a stream message of version %d", RUSH_STREAM_VERSION);
    if (header->kind == 0 || header->kind >= RUSH_STREAM_KIND_COUNT_ ||
        header->status >= RUSH_STREAM_STATUS_COUNT_)
        return refuse(why, why_size, "kind %u, status %u", header->kind, header->status);
    if (header->shard_count == 0 || header->shard_count > RUSH_SHARDS_MAX ||
        (header->kind != RUSH_STREAM_INFO && header->shard >= header->shard_count))
        return refuse(why, why_size, "shard %u of %u", header->shard, header->shard_count);
    size_t record_bytes = header->kind == RUSH_STREAM_INFO ? sizeof(struct rush_stream_shard_info)
                                                           : sizeof(struct rush_stream_event);
    size_t count_max =
        header->kind == RUSH_STREAM_INFO ? header->shard_count : RUSH_STREAM_REPLAY_MAX;
    if (header->count > count_max ||
        len != RUSH_STREAM_HEADER_BYTES + (size_t)header->count * record_bytes)
        return refuse(why, why_size, "%u records in %zu bytes", header->count, len);
    if (header->oldest_seq > header->head_seq + 1)
        return refuse(why, why_size, "oldest seq %lu after head %lu", header->oldest_seq,
                      header->head_seq);
    out->records = (const uint8_t *)buf + RUSH_STREAM_HEADER_BYTES;
    return header->kind == RUSH_STREAM_INFO ? 0 : check_events(out, why, why_size);
}

int rush_stream_request_decode(const void *buf, size_t len, struct rush_stream_request *out,
                               char *why, size_t why_size)
{
    RUSH_ASSERT(out != NULL && (buf != NULL || len == 0));
    memset(out, 0, sizeof(*out));
    if (len != sizeof(*out))
        return refuse(why, why_size, "a request is %zu bytes, not %zu", sizeof(*out), len);
    memcpy(out, buf, sizeof(*out));
    if (out->magic != RUSH_STREAM_MAGIC || out->version != RUSH_STREAM_VERSION)
        return refuse(why, why_size, "not a stream request of version %d", RUSH_STREAM_VERSION);
    if (out->pad != 0 || out->pad2 != 0 || out->reserved != 0)
        return refuse(why, why_size, "reserved bytes are not zero");
    switch (out->kind) {
    case RUSH_STREAM_REPLAY:
        if (out->from_seq == 0 || out->count_max == 0 || out->count_max > RUSH_STREAM_REPLAY_MAX)
            return refuse(why, why_size, "replay needs from_seq >= 1 and count_max 1..%d",
                          RUSH_STREAM_REPLAY_MAX);
        return 0;
    case RUSH_STREAM_INFO:
        if (out->shard != 0 || out->from_seq != 0 || out->count_max != 0)
            return refuse(why, why_size, "info takes no shard, seq or count");
        return 0;
    default:
        return refuse(why, why_size, "kind %u is not a request", out->kind);
    }
}

void rush_stream_request_init(struct rush_stream_request *out, enum rush_stream_kind kind,
                              uint32_t shard, uint64_t from_seq, uint32_t count_max)
{
    *out = (struct rush_stream_request){.magic = RUSH_STREAM_MAGIC,
                                        .version = RUSH_STREAM_VERSION,
                                        .kind = (uint8_t)kind,
                                        .shard = (uint8_t)shard,
                                        .count_max = count_max,
                                        .from_seq = from_seq};
}

void rush_stream_header_init(struct rush_stream_header *out, enum rush_stream_kind kind,
                             uint32_t shard, uint32_t count)
{
    *out = (struct rush_stream_header){.magic = RUSH_STREAM_MAGIC,
                                       .version = RUSH_STREAM_VERSION,
                                       .kind = (uint8_t)kind,
                                       .shard = (uint8_t)shard,
                                       .count = count};
}

const char *rush_stream_status_name(enum rush_stream_status status)
{
    switch (status) {
    case RUSH_STREAM_OK:
        return "ok";
    case RUSH_STREAM_TOO_OLD:
        return "too_old";
    case RUSH_STREAM_NO_SHARD:
        return "no_shard";
    case RUSH_STREAM_BAD_REQUEST:
        return "bad_request";
    case RUSH_STREAM_UNAVAILABLE:
        return "unavailable";
    case RUSH_STREAM_STATUS_COUNT_:
        break;
    }
    return "unknown";
}
