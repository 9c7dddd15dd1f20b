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

#endif
