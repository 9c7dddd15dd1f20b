/* core/gv_thread.c - named threads, and the scheduling class of background ones */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "core/gv_thread.h"

#include <errno.h>
#include <locale.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "core/gv_log.h"
#include "core/gv_mem.h"

struct thread_start {
    void *(*fn)(void *);
    void *arg;
    enum gv_thread_kind kind;
};

void gv_thread_use_c_locale(void)
{
    /* glibc answers a request for "C" with its one static C locale object
     * (no allocation), and duplocale, newlocale over it and freelocale of it
     * allocate and lock nothing. The process's global locale is "C" too (kt
     * never calls setlocale), so nothing reads differently. */
    locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);

    if (c != (locale_t)0) {
        (void)uselocale(c);
    }
}

static void *thread_trampoline(void *p)
{
    struct thread_start s = *(struct thread_start *)p;

    gv_free(p);
    gv_thread_use_c_locale();
    if (s.kind == GV_THREAD_BACKGROUND) {
        struct sched_param sp;
        memset(&sp, 0, sizeof(sp));
        /* pid 0 is the calling thread on Linux: only this thread changes. */
        if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0) {
            gv_log(GV_LOG_DEBUG, "thread", "cannot set SCHED_BATCH", "errno=%d", errno);
        }
    }
    return s.fn(s.arg);
}

gv_rc gv_thread_start(pthread_t *t, const char *name, enum gv_thread_kind kind, void *(*fn)(void *),
                      void *arg)
{
    struct thread_start *s = gv_malloc(sizeof(*s));
    char short_name[16];

    s->fn = fn;
    s->arg = arg;
    s->kind = kind;
    if (pthread_create(t, NULL, thread_trampoline, s) != 0) {
        gv_free(s);
        return GV_EIO;
    }
    /* The kernel keeps 15 bytes and a NUL; cut rather than fail. */
    snprintf(short_name, sizeof(short_name), "%s", name);
    (void)pthread_setname_np(*t, short_name);
    return GV_OK;
}
