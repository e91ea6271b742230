/*
 * ledger.c — the per-request log of a load run; layout, states and invariants in ledger.h.
 */
#include "ledger.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "rush/assert.h"

int rush_ledger_init(struct rush_ledger *ledger, uint32_t capacity)
{
    RUSH_ASSERT(ledger != NULL);
    memset(ledger, 0, sizeof(*ledger));
    if (capacity == 0 || capacity > RUSH_LEDGER_CAPACITY_MAX)
        return -EINVAL;
    size_t bytes = (size_t)capacity * sizeof(struct rush_ledger_entry);
    /* MAP_NORESERVE: a capacity sized for the worst case costs only the pages a run touches. */
    void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return -ENOMEM;
    ledger->entries = map;
    ledger->capacity = capacity;
    ledger->mapped_bytes = bytes;
    return 0;
}

void rush_ledger_free(struct rush_ledger *ledger)
{
    if (ledger == NULL || ledger->entries == NULL)
        return;
    munmap(ledger->entries, ledger->mapped_bytes);
    memset(ledger, 0, sizeof(*ledger));
}

int64_t rush_ledger_append(struct rush_ledger *ledger, const struct rush_request *request,
                           uint32_t original_index)
{
    RUSH_ASSERT(ledger->entries != NULL && request != NULL);
    RUSH_ASSERT(original_index == RUSH_LEDGER_NO_ORIGINAL || original_index < ledger->count);
    if (ledger->count >= ledger->capacity)
        return -ENOSPC;
    uint32_t index = ledger->count++;
    ledger->entries[index] = (struct rush_ledger_entry){
        .key = request->key,
        .sku_id = request->sku_id,
        .user_id = request->user_id,
        .target_id = request->target_id,
        .qty = request->qty,
        .original_index = original_index,
        .op = request->op,
        .status = RUSH_LEDGER_SENT,
        .request_flags = request->flags,
        .inviter_id = (request->op == RUSH_OP_GROUP_JOIN || request->op == RUSH_OP_GROUP_JOIN_ANY)
                          ? request->inviter_id
                          : 0,
    };
    return index;
}

void rush_ledger_answer(struct rush_ledger *ledger, uint32_t index,
                        const struct rush_result *result)
{
    RUSH_ASSERT(index < ledger->count && result != NULL);
    struct rush_ledger_entry *entry = &ledger->entries[index];
    RUSH_ASSERT(entry->status == RUSH_LEDGER_SENT);
    entry->status = RUSH_LEDGER_ANSWERED;
    entry->outcome = result->outcome;
    entry->flags = result->flags;
    entry->reason = result->reason;
    entry->state = result->state;
    entry->order_id = result->order_id;
    entry->group_id = result->group_id;
    entry->remaining = result->remaining;
}

void rush_ledger_fail(struct rush_ledger *ledger, uint32_t index, enum rush_ledger_status status)
{
    RUSH_ASSERT(index < ledger->count);
    RUSH_ASSERT(status == RUSH_LEDGER_LOST || status == RUSH_LEDGER_REFUSED);
    RUSH_ASSERT(ledger->entries[index].status == RUSH_LEDGER_SENT);
    ledger->entries[index].status = (uint8_t)status;
}

bool rush_ledger_duplicate_matches(const struct rush_ledger_entry *original,
                                   const struct rush_ledger_entry *resend)
{
    RUSH_ASSERT(original != NULL && resend != NULL);
    RUSH_ASSERT(original->status == RUSH_LEDGER_ANSWERED && resend->status == RUSH_LEDGER_ANSWERED);
    if (original->outcome != RUSH_OK && original->outcome != RUSH_EXPIRED)
        return (resend->flags & RUSH_RESULT_DUPLICATE) == 0; /* not remembered: decided afresh */
    return (resend->flags & RUSH_RESULT_DUPLICATE) != 0 && original->outcome == resend->outcome &&
           original->reason == resend->reason && original->state == resend->state &&
           original->order_id == resend->order_id && original->group_id == resend->group_id &&
           original->remaining == resend->remaining && original->qty == resend->qty &&
           memcmp(&original->key, &resend->key, sizeof(rush_key)) == 0;
}

int rush_ledger_check(const struct rush_ledger *ledger)
{
    if (ledger->count > ledger->capacity)
        return -EINVAL;
    for (uint32_t i = 0; i < ledger->count; i++) {
        const struct rush_ledger_entry *entry = &ledger->entries[i];
        if (entry->status < RUSH_LEDGER_SENT || entry->status > RUSH_LEDGER_REFUSED)
            return -EINVAL;
        if (entry->original_index == RUSH_LEDGER_NO_ORIGINAL)
            continue;
        if (entry->original_index >= i ||
            memcmp(&ledger->entries[entry->original_index].key, &entry->key, sizeof(rush_key)))
            return -EINVAL;
    }
    return 0;
}
