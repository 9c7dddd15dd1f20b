/* gateway/gw_async.h - detection jobs on a thread pool, handed back to the worker's loop */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GW_ASYNC_H
#define GW_ASYNC_H

#include <stddef.h>

#include "core/gv_rc.h"

struct event_base;
struct gw_async_pool;
struct gw_async_inbox;

/* One unit of work, embedded in the caller's own struct. run() executes on a
 * pool thread; afterwards the job travels back to `inbox`, whose loop calls its
 * on_done with it. The pool never frees a job: on_done does. */
struct gw_async_job {
    void (*run)(struct gw_async_job *job);
    struct gw_async_inbox *inbox;
    struct gw_async_job *next; /* the pool's and the inbox's queues */
};

/* A pool of `nthreads` background threads ("kt-detect", SCHED_BATCH so their
 * wakeups never preempt a worker's loop) sharing one queue of at most
 * queue_max jobs. GV_EIO when no thread can be started. */
gv_rc gw_async_pool_create(unsigned nthreads, size_t queue_max, struct gw_async_pool **out);
/* Runs every job still queued, then joins the threads. Blocking: shutdown only.
 * Accepts NULL. */
void gw_async_pool_destroy(struct gw_async_pool *pool);
/* Queue job (job->run and job->inbox set). Never blocks: GV_E2BIG when the
 * queue is full, and the job was not taken. Thread-safe. */
gv_rc gw_async_submit(struct gw_async_pool *pool, struct gw_async_job *job);

/* Where finished jobs come back to: an eventfd on one event loop, whose
 * callback calls on_done(job, arg) on that loop's thread, once per job. The
 * base may be created without locks: other threads only write the eventfd. */
gv_rc gw_async_inbox_create(struct event_base *base,
                            void (*on_done)(struct gw_async_job *job, void *arg), void *arg,
                            struct gw_async_inbox **out);
/* Jobs submitted with this inbox that have not come back through on_done. */
size_t gw_async_inbox_pending(const struct gw_async_inbox *inbox);
/* Blocks until every job submitted with this inbox came back, calling on_done
 * for each on the calling thread, then frees the inbox. For a worker whose loop
 * has ended; accepts NULL. */
void gw_async_inbox_drain_destroy(struct gw_async_inbox *inbox);

#endif
