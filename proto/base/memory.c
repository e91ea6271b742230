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

/*
 * The pool of fresh chunks. A fresh huge page costs 0.6-4 ms to allocate and zero on the
 * development VM, too long for a shard thread's idle moment, so a maker thread (started by the
 * first take, SCHED_IDLE, alive until the process ends) faults them in ahead, in POOL_MAX
 * slots reserved once. A slot is 2 MiB mapped read-write followed by 2 MiB without access, so that
 * no two slots' mappings merge. The maker never maps or unmaps, but its first fault in a freshly
 * mapped slot holds the process's mapping lock (shared) while the kernel allocates and zeroes the
 * huge page, and the shard's move needs that lock exclusively: on a loaded machine a preempted
 * maker held it for 20-47 ms. So the maker faults only while holding fault_lock, and a renewal
 * that cannot take fault_lock at once does nothing (-EBUSY): the shard never waits for the maker.
 *
 *   empty --maker: touched (faulted in)--> ready --take--> taken
 *   taken --renew: moved onto a table chunk, the hole mapped again--> empty
 *   taken --drop--> ready
 */
#define POOL_MAX 8
#define SLOT_STRIDE (2 * CHUNK)
#define PAGE_BYTES 4096u
enum slot_state { SLOT_EMPTY = 0, SLOT_MAKING = 1, SLOT_READY = 2, SLOT_TAKEN = 3 };

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wanted = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER; /* the maker's faults vs moves */
static uint8_t *pool_base; /* POOL_MAX slots, or NULL before the first take */
static enum slot_state pool_state[POOL_MAX];
static bool maker_started;

/* Maps slot `i` read-write, advised huge, not yet touched. */
static bool slot_map(uint32_t i)
{
    void *at = pool_base + (size_t)i * SLOT_STRIDE;
    if (mmap(at, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
        MAP_FAILED)
        return false;
    if (rush_memory_huge_available())
        (void)madvise(at, CHUNK, MADV_HUGEPAGE);
    return true;
}

/* Reserves the slots (inaccessible) and maps each one's first half; false if mapping failed. */
static bool pool_reserve(void)
{
    uint8_t *reserved = mmap(NULL, POOL_MAX * SLOT_STRIDE + CHUNK, PROT_NONE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reserved == MAP_FAILED)
        return false;
    pool_base = (uint8_t *)(((uintptr_t)reserved + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
    for (uint32_t i = 0; i < POOL_MAX; i++)
        if (!slot_map(i))
            return false; /* the slots mapped so far stay; the rest never become ready */
    return true;
}

static void *pool_maker(void *unused)
{
    (void)unused;
    /* SCHED_IDLE: zeroing huge pages must never delay a normal thread. A maker at nice 0 (or
     * real-time) held up the log's io_uring worker for 25-55 ms, and the shard waiting for its
     * write with it. On a busy machine the pool then fills slowly and the next fork may copy
     * some split page tables (snapshot_renew.h), which is the better failure. */
    struct sched_param idle = {.sched_priority = 0};
    (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
    for (;;) { /* Sleeps while no slot is empty; each round faults one slot in. */
        pthread_mutex_lock(&pool_lock);
        uint32_t i = POOL_MAX;
        while (i == POOL_MAX) {
            for (i = 0; i < POOL_MAX && pool_state[i] != SLOT_EMPTY; i++)
                continue;
            if (i == POOL_MAX)
                pthread_cond_wait(&pool_wanted, &pool_lock);
        }
        pool_state[i] = SLOT_MAKING;
        pthread_mutex_unlock(&pool_lock);
        volatile uint8_t *slot = pool_base + (size_t)i * SLOT_STRIDE;
        pthread_mutex_lock(&fault_lock);
        for (size_t offset = 0; offset < CHUNK; offset += PAGE_BYTES)
            slot[offset] = 0; /* the first write faults in the (huge, zeroed) page */
        pthread_mutex_unlock(&fault_lock);
        pthread_mutex_lock(&pool_lock);
        pool_state[i] = SLOT_READY;
        pthread_mutex_unlock(&pool_lock);
    }
    return NULL;
}

/* Starts the maker once (under pool_lock); false if it could not start. */
static bool maker_start(void)
{
    if (maker_started)
        return true;
    if (pool_base == NULL && !pool_reserve())
        return false;
    pthread_t maker;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED); /* never real-time */
    maker_started = pthread_create(&maker, &attr, pool_maker, NULL) == 0;
    pthread_attr_destroy(&attr);
    return maker_started;
}

void *rush_memory_chunk_take(void)
{
    void *fresh = NULL;
    pthread_mutex_lock(&pool_lock);
    if (maker_start()) {
        for (uint32_t i = 0; i < POOL_MAX && fresh == NULL; i++) {
            if (pool_state[i] != SLOT_READY)
                continue;
            pool_state[i] = SLOT_TAKEN;
            fresh = pool_base + (size_t)i * SLOT_STRIDE;
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return fresh;
}

/* The slot index of a chunk from take. */
static uint32_t slot_of(const void *fresh)
{
    size_t offset = (size_t)((const uint8_t *)fresh - pool_base);
    RUSH_ASSERT(pool_base != NULL && (const uint8_t *)fresh >= pool_base &&
                offset % SLOT_STRIDE == 0 && offset / SLOT_STRIDE < POOL_MAX);
    return (uint32_t)(offset / SLOT_STRIDE);
}

void rush_memory_chunk_drop(void *fresh)
{
    if (fresh == NULL)
        return;
    uint32_t i = slot_of(fresh);
    pthread_mutex_lock(&pool_lock);
    RUSH_ASSERT(pool_state[i] == SLOT_TAKEN);
    pool_state[i] = SLOT_READY; /* still faulted in: the next take gets it */
    pthread_mutex_unlock(&pool_lock);
}

int rush_memory_chunk_renew(void *at, void *fresh)
{
    RUSH_ASSERT(((uintptr_t)at & (CHUNK - 1)) == 0);
    uint32_t i = slot_of(fresh);
    if (pthread_mutex_trylock(&fault_lock) != 0)
        return -EBUSY; /* the maker is faulting: the move would wait for it */
    memcpy(fresh, at, CHUNK);
    /* The move takes the fresh page table entries (one huge page) and unmaps what was at `at`:
     * pages still shared with a snapshot's child stay the child's. */
    int rc = 0;
    if (mremap(fresh, CHUNK, CHUNK, MREMAP_MAYMOVE | MREMAP_FIXED, at) == MAP_FAILED)
        rc = -errno;
    bool mapped = rc == 0 && slot_map(i); /* the hole the move left; if this fails the slot
                                            stays taken */
    pthread_mutex_unlock(&fault_lock);
    pthread_mutex_lock(&pool_lock);
    if (mapped) {
        pool_state[i] = SLOT_EMPTY;
        pthread_cond_signal(&pool_wanted);
    }
    pthread_mutex_unlock(&pool_lock);
    return rc;
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
