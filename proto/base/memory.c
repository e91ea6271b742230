/*
 * memory.c — see memory.h.
 */
#include "memory.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rush/assert.h"

#define CHUNK RUSH_MEMORY_CHUNK_BYTES
#define MAKER_NICE 10
#define MAKER_RETRY_US 100000
#define REGIONS_MAX 1024 /* large regions alive at once: about ten per shard */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

struct region {
    void *base;
    size_t bytes;
};

static pthread_mutex_t regions_lock = PTHREAD_MUTEX_INITIALIZER;
static struct region regions[REGIONS_MAX];
static uint32_t region_count;

/* `bytes` (a multiple of CHUNK) mapped at a CHUNK boundary, advised huge, not yet touched. */
static void *map_aligned(size_t bytes)
{
    uint8_t *mapped =
        mmap(NULL, bytes + CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED)
        return NULL;
    uint8_t *base = (uint8_t *)(((uintptr_t)mapped + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
    if (base > mapped)
        munmap(mapped, (size_t)(base - mapped));
    if (base + bytes < mapped + bytes + CHUNK)
        munmap(base + bytes, (size_t)(mapped + bytes + CHUNK - (base + bytes)));
    if (rush_memory_huge_available())
        (void)madvise(base, bytes, MADV_HUGEPAGE); /* advice: fine if the kernel declines */
    return base;
}

/* Faults every page in, zeroed, so the decision path never takes a first-touch fault. */
static void populate(void *base, size_t bytes)
{
    if (madvise(base, bytes, MADV_POPULATE_WRITE) != 0) /* before 5.14: touch each page */
        memset(base, 0, bytes);
}

static bool region_add(void *base, size_t bytes)
{
    pthread_mutex_lock(&regions_lock);
    bool added = region_count < REGIONS_MAX;
    if (added)
        regions[region_count++] = (struct region){.base = base, .bytes = bytes};
    pthread_mutex_unlock(&regions_lock);
    return added;
}

/* The region's bytes, removed from the record when `remove`; 0 if it is not recorded. */
static size_t region_find(const void *base, bool remove)
{
    size_t bytes = 0;
    pthread_mutex_lock(&regions_lock);
    for (uint32_t i = 0; i < region_count && bytes == 0; i++) {
        if (regions[i].base != base)
            continue;
        bytes = regions[i].bytes;
        if (remove)
            regions[i] = regions[--region_count];
    }
    pthread_mutex_unlock(&regions_lock);
    return bytes;
}

void *rush_memory_zeroed(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    size_t bytes = count * size;
    if (bytes < CHUNK)
        return calloc(count ? count : 1, size ? size : 1);
    if (bytes > SIZE_MAX - 2 * CHUNK)
        return NULL;
    size_t rounded = (bytes + CHUNK - 1) & ~(CHUNK - 1);
    void *base = map_aligned(rounded);
    if (base == NULL)
        return NULL;
    if (!region_add(base, rounded)) {
        munmap(base, rounded);
        return NULL;
    }
    populate(base, rounded);
    return base;
}

void rush_memory_free(void *memory)
{
    if (memory == NULL)
        return;
    size_t bytes = region_find(memory, true);
    if (bytes > 0)
        munmap(memory, bytes); /* also every chunk renewed in it: they sit in its range */
    else
        free(memory);
}

size_t rush_memory_region_bytes(const void *memory)
{
    return memory == NULL ? 0 : region_find(memory, false);
}

bool rush_memory_huge_available(void)
{
    const char *wanted = getenv("RUSH_HUGE_PAGES");
    if (wanted != NULL && strcmp(wanted, "off") == 0)
        return false;
    static _Atomic int available = -1; /* the kernel's setting, read once */
    if (available >= 0)
        return available == 1;
    char setting[128] = {0};
    int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, setting, sizeof(setting) - 1) : -1;
    if (fd >= 0)
        close(fd);
    available = n > 0 && strstr(setting, "[never]") == NULL;
    return available == 1;
}

/* A fresh chunk, faulted in by touching it (the fault takes only the new mapping's own lock, so
 * a shard moving a chunk meanwhile does not wait for it, as it would for MADV_POPULATE_WRITE,
 * which holds the process's mapping lock while it zeroes). */
static void *chunk_fault_in(void)
{
    uint8_t *fresh = map_aligned(CHUNK);
    if (fresh != NULL)
        memset(fresh, 0, CHUNK);
    return fresh;
}

/*
 * The pool of fresh chunks: a fresh huge page costs 0.6-4 ms to allocate and zero on the
 * development VM, too long for a shard thread's idle moment, so one maker thread (started by the
 * first take, at low priority, alive until the process ends) keeps POOL_MAX of them ready.
 */
#define POOL_MAX 8
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wanted = PTHREAD_COND_INITIALIZER;
static void *pool[POOL_MAX];
static uint32_t pool_count;
static bool maker_started;

static void *pool_maker(void *unused)
{
    (void)unused;
    (void)setpriority(PRIO_PROCESS, 0, MAKER_NICE); /* this thread only (Linux) */
    struct sched_param normal = {.sched_priority = 0};
    (void)pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal); /* not real-time */
    for (;;) { /* Bounded by POOL_MAX per wake-up; sleeps while the pool is full. */
        pthread_mutex_lock(&pool_lock);
        while (pool_count == POOL_MAX)
            pthread_cond_wait(&pool_wanted, &pool_lock);
        pthread_mutex_unlock(&pool_lock);
        void *fresh = chunk_fault_in();
        if (fresh == NULL) { /* out of memory: try again later, slowly */
            usleep(MAKER_RETRY_US);
            continue;
        }
        pthread_mutex_lock(&pool_lock);
        pool[pool_count++] = fresh;
        pthread_mutex_unlock(&pool_lock);
    }
    return NULL;
}

void *rush_memory_chunk_take(void)
{
    void *fresh = NULL;
    bool start = false;
    pthread_mutex_lock(&pool_lock);
    if (pool_count > 0)
        fresh = pool[--pool_count];
    start = !maker_started;
    maker_started = true;
    pthread_cond_signal(&pool_wanted);
    pthread_mutex_unlock(&pool_lock);
    if (start) {
        pthread_t maker;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED); /* SCHED_OTHER, nice 0 */
        if (pthread_create(&maker, &attr, pool_maker, NULL) != 0) {
            pthread_mutex_lock(&pool_lock);
            maker_started = false; /* the next take tries again */
            pthread_mutex_unlock(&pool_lock);
        }
        pthread_attr_destroy(&attr);
    }
    return fresh;
}

void rush_memory_chunk_drop(void *fresh)
{
    if (fresh != NULL)
        munmap(fresh, CHUNK);
}

int rush_memory_chunk_renew(void *at, void *fresh)
{
    RUSH_ASSERT(((uintptr_t)at & (CHUNK - 1)) == 0 && ((uintptr_t)fresh & (CHUNK - 1)) == 0);
    memcpy(fresh, at, CHUNK);
    /* The move takes the fresh page table entries (one huge page) and unmaps what was at `at`:
     * pages still shared with a snapshot's child stay the child's. */
    void *moved = mremap(fresh, CHUNK, CHUNK, MREMAP_MAYMOVE | MREMAP_FIXED, at);
    return moved == MAP_FAILED ? -errno : 0;
}

int rush_memory_map_file(int dir_fd, const char *name, int advice, struct rush_mapped_file *map)
{
    *map = (struct rush_mapped_file){0};
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && st.st_size > 0) {
        void *bytes = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (bytes == MAP_FAILED) {
            rc = -errno;
        } else {
            map->bytes = bytes;
            map->size = (size_t)st.st_size;
            if (advice != 0)
                (void)madvise(bytes, map->size, advice); /* a hint: fine if declined */
        }
    }
    close(fd);
    return rc;
}

void rush_memory_unmap_file(struct rush_mapped_file *map)
{
    if (map->bytes != NULL)
        munmap((void *)map->bytes, map->size);
    *map = (struct rush_mapped_file){0};
}
