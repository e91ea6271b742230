/*
 * memory.c — see memory.h.
 */
#include "memory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
