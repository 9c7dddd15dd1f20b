/* core/gv_mem.h - allocation wrappers that abort on OOM */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_MEM_H
#define GV_MEM_H

#include <stddef.h>

/* These never return NULL: running out of memory aborts the process with a log
 * line, so callers do not check. Growth whose size comes from input must go
 * through a capped gv_buf instead, which reports GV_E2BIG. */
void *gv_malloc(size_t n);
void *gv_calloc(size_t count, size_t size);
void *gv_realloc(void *p, size_t n);
char *gv_strdup(const char *s);
char *gv_strndup(const char *s, size_t n);
void gv_free(void *p);

/* A large zeroed array most of which may never be written (a ring sized for
 * bursts): its pages come from the kernel and cost memory only once written,
 * whichever malloc the process has (mimalloc's calloc zeroes, and so touches,
 * the whole block). Never NULL; release with gv_unmap_zeroed and the same
 * count and size. */
void *gv_map_zeroed(size_t count, size_t size);
void gv_unmap_zeroed(void *p, size_t count, size_t size);

/* Asks for the cache lines of p[0..len) in a state fit for writing, without waiting:
 * for memory another thread last touched that this one will write next (the sender's
 * next ring slot, the audit writer's next spare node). Without it the copy of each
 * record stalls on its lines, and the fence or compare-and-swap that publishes the
 * record waits for every one of them; asked a request ahead, they arrive meanwhile. */
static inline void gv_prefetch_write(const void *p, size_t len)
{
    const char *c = p;
    size_t off;

    for (off = 0; off < len; off += 64) {
        __builtin_prefetch(c + off, 1, 3);
    }
}

#endif
