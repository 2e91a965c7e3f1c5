/* SPDX-License-Identifier: MIT */
/*
 * Parser inputs placed right before an inaccessible page (picohttpparser's test trick): a read
 * one byte past the end faults at once, even without a sanitizer.
 */
#ifndef TERN_TESTS_GUARD_H
#define TERN_TESTS_GUARD_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct guarded {
    uint8_t *map;
    size_t map_len;
    uint8_t *data; /* the copy, ending where the guard page starts */
} guarded_t;

static inline uint8_t *guard_copy(guarded_t *g, const void *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (len + page - 1) / page + 1;
    g->map_len = pages * page;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED)
        return NULL;
    mprotect(g->map + (pages - 1) * page, page, PROT_NONE);
    g->data = g->map + (pages - 1) * page - len;
    if (len)
        memcpy(g->data, src, len);
    return g->data;
}

static inline void guard_free(guarded_t *g)
{
    if (g->map && g->map != MAP_FAILED)
        munmap(g->map, g->map_len);
    g->map = NULL;
}

#endif
