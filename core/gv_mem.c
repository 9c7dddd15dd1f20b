/* core/gv_mem.c - allocation wrappers that abort on OOM */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void oom(size_t n)
{
    fprintf(stderr, "level=error mod=mem msg=\"out of memory\" bytes=%zu\n", n);
    abort();
}

void *gv_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        oom(n);
    }
    return p;
}

void *gv_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        oom(count * size);
    }
    return p;
}

void *gv_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        oom(n);
    }
    return q;
}

char *gv_strdup(const char *s)
{
    return gv_strndup(s, strlen(s));
}

char *gv_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = gv_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void gv_free(void *p)
{
    free(p);
}

/* The length mapped for count * size bytes: at least one byte, as gv_calloc
 * gives; a product that overflows is out of memory. */
static size_t map_len(size_t count, size_t size)
{
    if (count && size > SIZE_MAX / count) {
        oom(SIZE_MAX);
    }
    return count == 0 || size == 0 ? 1 : count * size;
}

void *gv_map_zeroed(size_t count, size_t size)
{
    size_t n = map_len(count, size);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        oom(n);
    }
    return p;
}

void gv_unmap_zeroed(void *p, size_t count, size_t size)
{
    if (p) {
        (void)munmap(p, map_len(count, size));
    }
}
