/*
 * memory.c — see memory.h.
 */
#include "memory.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE_BYTES ((size_t)2 << 20)

void *rush_memory_zeroed(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    size_t bytes = count * size;
    if (bytes < HUGE_PAGE_BYTES)
        return calloc(count ? count : 1, size ? size : 1);
    size_t rounded = (bytes + HUGE_PAGE_BYTES - 1) & ~(HUGE_PAGE_BYTES - 1);
    void *memory = aligned_alloc(HUGE_PAGE_BYTES, rounded);
    if (memory == NULL)
        return NULL;
    (void)madvise(memory, rounded, MADV_HUGEPAGE); /* advice: fine if the kernel declines */
    memset(memory, 0, rounded);
    return memory;
}

void rush_memory_free(void *memory)
{
    free(memory);
}
