/*
 * The tables' memory (proto/base/memory.c): large regions are whole 2 MiB chunks at a 2 MiB
 * boundary, zeroed and recorded, small ones come from the allocator; a renewed chunk keeps its
 * bytes at its address while a forked child still sees the bytes of the fork (the snapshot's
 * copy-on-write image); RUSH_HUGE_PAGES=off turns huge pages off.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/memory.h"

#define CHUNK RUSH_MEMORY_CHUNK_BYTES
#define WAIT_NS_MAX INT64_C(20000000000) /* for the maker thread's first chunk */

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* A fresh chunk from the pool, polling until the maker thread has one (with a deadline). */
static void *take_fresh(void)
{
    int64_t deadline = now_ns() + WAIT_NS_MAX;
    void *fresh;
    while ((fresh = rush_memory_chunk_take()) == NULL && now_ns() < deadline)
        sched_yield();
    cr_assert_not_null(fresh, "the maker thread made no chunk in time");
    return fresh;
}

/* Renews `at`, polling while the maker is faulting a chunk in (-EBUSY), with a deadline. */
static int renew_when_free(void *at, void *fresh)
{
    int64_t deadline = now_ns() + WAIT_NS_MAX;
    int rc;
    while ((rc = rush_memory_chunk_renew(at, fresh)) == -EBUSY && now_ns() < deadline)
        sched_yield();
    return rc;
}

static uint8_t pattern(size_t i, uint8_t salt)
{
    return (uint8_t)((i * 2654435761u) >> 13) ^ salt;
}

Test(memory, a_large_region_is_whole_chunks_at_a_chunk_boundary_zeroed)
{
    uint8_t *large = rush_memory_zeroed(3, 1 << 20); /* 3 MiB: two chunks */
    cr_assert_not_null(large);
    cr_assert_eq((uintptr_t)large % CHUNK, 0);
    cr_assert_eq(rush_memory_region_bytes(large), 2 * CHUNK);
    for (size_t i = 0; i < 2 * CHUNK; i += 4096)
        cr_assert_eq(large[i], 0);
    void *small = rush_memory_zeroed(1000, 8);
    cr_assert_not_null(small);
    cr_assert_eq(rush_memory_region_bytes(small), 0, "small regions come from the allocator");
    cr_assert_eq(rush_memory_region_bytes(NULL), 0);
    rush_memory_free(small);
    rush_memory_free(large);
    cr_assert_eq(rush_memory_region_bytes(large), 0, "freed: no longer recorded");
    cr_assert_null(rush_memory_zeroed(SIZE_MAX / 2, 4), "an overflowing size is refused");
}

Test(memory, a_renewed_chunk_keeps_its_bytes_and_a_forked_child_the_old_ones)
{
    uint8_t *region = rush_memory_zeroed(2, CHUNK);
    cr_assert_not_null(region);
    for (size_t i = 0; i < 2 * CHUNK; i++)
        region[i] = pattern(i, 0);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) { /* the snapshot's view: the bytes of the fork, whatever the parent does */
        char byte;
        close(go[1]);
        if (read(go[0], &byte, 1) != 1)
            _exit(2);
        for (size_t i = 0; i < 2 * CHUNK; i++)
            if (region[i] != pattern(i, 0))
                _exit(1);
        _exit(0);
    }
    close(go[0]);
    uint8_t *second = region + CHUNK;
    cr_assert_eq(renew_when_free(second, take_fresh()), 0);
    for (size_t i = 0; i < 2 * CHUNK; i++)
        cr_assert_eq(region[i], pattern(i, 0), "byte %zu changed by the renewal", i);
    for (size_t i = 0; i < 2 * CHUNK; i += 7)
        region[i] = pattern(i, 0x5a); /* both chunks written after the renewal */
    cr_assert_eq(write(go[1], "g", 1), 1);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child saw other bytes: %d",
              status);
    for (size_t i = 0; i < 2 * CHUNK; i++)
        cr_assert_eq(region[i], pattern(i, i % 7 == 0 ? 0x5a : 0));
    close(go[1]);
    rush_memory_free(region); /* unmaps the renewed chunk with the rest */
}

Test(memory, a_fresh_chunk_dropped_unused_is_unmapped)
{
    rush_memory_chunk_drop(take_fresh());
    rush_memory_chunk_drop(NULL);
}

Test(memory, rush_huge_pages_off_turns_huge_pages_off)
{
    cr_assert_eq(setenv("RUSH_HUGE_PAGES", "off", 1), 0);
    cr_assert(!rush_memory_huge_available());
    uint8_t *region = rush_memory_zeroed(1, CHUNK); /* still mapped and recorded */
    cr_assert_not_null(region);
    cr_assert_eq(rush_memory_region_bytes(region), CHUNK);
    rush_memory_free(region);
    cr_assert_eq(unsetenv("RUSH_HUGE_PAGES"), 0);
}
