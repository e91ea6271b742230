/*
 * fuzz_stream.c — libFuzzer target for the stream decoders (proto/codec/stream.c): published
 * messages, replay replies and replay requests, as a consumer and the replay service receive them.
 *
 * Checks, with always-on asserts:
 *  1. nothing is read outside the input (ASan), and no undefined behaviour (UBSan);
 *  2. a decoded message is exactly header + count records long, its events belong to its shard,
 *     are of a type the stream carries and have consecutive seqs no later than head_seq;
 *  3. a decoded request re-encodes (rush_stream_request_init) to the same bytes.
 * Seeds: tests/fuzz/corpus/stream/ (an event run, a heartbeat, an info reply, requests).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rush/assert.h"
#include "rush/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_message(const uint8_t *data, size_t size)
{
    struct rush_stream_view view;
    if (rush_stream_decode(data, size, &view, NULL, 0) != 0)
        return;
    const struct rush_stream_header *header = &view.header;
    size_t record = header->kind == RUSH_STREAM_INFO ? sizeof(struct rush_stream_shard_info)
                                                     : sizeof(struct rush_stream_event);
    RUSH_ASSERT(size == RUSH_STREAM_HEADER_BYTES + header->count * record);
    if (header->kind == RUSH_STREAM_INFO) {
        for (uint32_t i = 0; i < header->count; i++) {
            struct rush_stream_shard_info info;
            rush_stream_view_info(&view, i, &info);
        }
        return;
    }
    uint64_t previous = 0;
    for (uint32_t i = 0; i < header->count; i++) {
        struct rush_stream_event event;
        rush_stream_view_event(&view, i, &event);
        RUSH_ASSERT(event.shard == header->shard && rush_stream_carries(event.type));
        RUSH_ASSERT(event.seq >= 1 && event.seq <= header->head_seq);
        RUSH_ASSERT(i == 0 || event.seq == previous + 1);
        previous = event.seq;
    }
}

static void check_request(const uint8_t *data, size_t size)
{
    struct rush_stream_request request;
    if (rush_stream_request_decode(data, size, &request, NULL, 0) != 0)
        return;
    struct rush_stream_request again;
    rush_stream_request_init(&again, (enum rush_stream_kind)request.kind, request.shard,
                             request.from_seq, request.count_max);
    RUSH_ASSERT(size == sizeof(again) && memcmp(&again, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_message(data, size);
    check_request(data, size);
    return 0;
}
