/* core/gv_thread.h - named threads, and the scheduling class of background ones */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_THREAD_H
#define GV_THREAD_H

#include <pthread.h>

#include "core/gv_rc.h"

enum gv_thread_kind {
    /* Serves requests: default scheduling. */
    GV_THREAD_SERVING,
    /* Writes files or sockets behind the request path (audit writer, event
     * spool). Runs SCHED_BATCH: same CPU share, but its wakeups do not preempt
     * a serving thread, so a batch of background work shows up as throughput
     * spent, not as a latency tail on the requests running beside it. */
    GV_THREAD_BACKGROUND,
};

/* Makes the calling thread use the C locale object rather than the process's
 * global locale (the same "C" rules). json-c's parser switches the thread's
 * locale to C around every parse, duplicating the current one first: from
 * the global locale that costs two allocations and a process-wide lock a
 * parse, from the C object nothing. Every thread gv_thread_start creates
 * calls it first; a main thread that parses JSON calls it itself. */
void gv_thread_use_c_locale(void);

/* pthread_create, then name the thread (at most 15 bytes show in top -H and
 * /proc/<pid>/task/<tid>/comm). The scheduling class is set from inside the
 * new thread; failing to set it only logs at debug level. GV_EIO when the
 * thread cannot be created. */
gv_rc gv_thread_start(pthread_t *t, const char *name, enum gv_thread_kind kind, void *(*fn)(void *),
                      void *arg);

#endif
