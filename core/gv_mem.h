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

#endif
