/* gateway/gw_async.c - detection jobs on a thread pool, handed back to the worker's loop */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/gw_async.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_thread.h"

struct gw_async_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct gw_async_job *head;
    struct gw_async_job *tail;
    size_t queued;
    size_t queue_max;
    bool stopping;
    unsigned nthreads;
    pthread_t *threads;
};

struct gw_async_inbox {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* drain: a job came back */
    struct gw_async_job *done;
    size_t pending; /* submitted, not yet handed to on_done */
    int fd;         /* eventfd the loop watches */
    struct event *ev;
    void (*on_done)(struct gw_async_job *job, void *arg);
    void *arg;
};

/* A finished job goes to its inbox; the eventfd write wakes that loop. */
static void deliver(struct gw_async_job *job)
{
    struct gw_async_inbox *in = job->inbox;
    uint64_t one = 1;
    ssize_t n;

    /* The write happens under the lock: once the lock is released the inbox
     * may be drained and freed by its owner. An eventfd write never blocks
     * (EAGAIN means the counter is already non-zero: the loop wakes anyway). */
    pthread_mutex_lock(&in->mu);
    job->next = in->done;
    in->done = job;
    pthread_cond_signal(&in->cv);
    do {
        n = write(in->fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    pthread_mutex_unlock(&in->mu);
}

static void *pool_main(void *arg)
{
    struct gw_async_pool *p = arg;
    struct gw_async_job *job;

    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        job = p->head;
        if (!job) {
            pthread_mutex_unlock(&p->mu);
            return NULL; /* stopping and nothing left */
        }
        p->head = job->next;
        if (!p->head) {
            p->tail = NULL;
        }
        p->queued--;
        pthread_mutex_unlock(&p->mu);
        job->run(job);
        deliver(job);
    }
}

gv_rc gw_async_pool_create(unsigned nthreads, size_t queue_max, struct gw_async_pool **out)
{
    struct gw_async_pool *p = gv_calloc(1, sizeof(*p));
    unsigned i;

    *out = NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->queue_max = queue_max ? queue_max : 1;
    p->threads = gv_calloc(nthreads ? nthreads : 1, sizeof(*p->threads));
    for (i = 0; i < (nthreads ? nthreads : 1); i++) {
        if (gv_thread_start(&p->threads[i], "kt-detect", GV_THREAD_BACKGROUND, pool_main, p) !=
            GV_OK) {
            break;
        }
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        gw_async_pool_destroy(p);
        return GV_EIO;
    }
    *out = p;
    return GV_OK;
}

void gw_async_pool_destroy(struct gw_async_pool *p)
{
    unsigned i;

    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < p->nthreads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    gv_free(p->threads);
    gv_free(p);
}

gv_rc gw_async_submit(struct gw_async_pool *p, struct gw_async_job *job)
{
    pthread_mutex_lock(&p->mu);
    if (p->queued >= p->queue_max || p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return GV_E2BIG;
    }
    /* Counted before the job can come back, so pending never goes below zero. */
    pthread_mutex_lock(&job->inbox->mu);
    job->inbox->pending++;
    pthread_mutex_unlock(&job->inbox->mu);
    job->next = NULL;
    if (p->tail) {
        p->tail->next = job;
    }
    else {
        p->head = job;
    }
    p->tail = job;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return GV_OK;
}

/* Take every finished job and hand each to on_done, oldest first. */
static void run_done(struct gw_async_inbox *in)
{
    struct gw_async_job *list, *rev = NULL, *next;

    pthread_mutex_lock(&in->mu);
    list = in->done;
    in->done = NULL;
    pthread_mutex_unlock(&in->mu);
    for (; list; list = next) {
        next = list->next;
        list->next = rev;
        rev = list;
    }
    for (; rev; rev = next) {
        next = rev->next;
        pthread_mutex_lock(&in->mu);
        in->pending--;
        pthread_mutex_unlock(&in->mu);
        in->on_done(rev, in->arg);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    uint64_t v;
    ssize_t n;

    (void)what;
    do {
        n = read(fd, &v, sizeof(v));
    } while (n < 0 && errno == EINTR);
    run_done(arg);
}

gv_rc gw_async_inbox_create(struct event_base *base,
                            void (*on_done)(struct gw_async_job *job, void *arg), void *arg,
                            struct gw_async_inbox **out)
{
    struct gw_async_inbox *in = gv_calloc(1, sizeof(*in));

    *out = NULL;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    in->on_done = on_done;
    in->arg = arg;
    in->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (in->fd >= 0) {
        in->ev = event_new(base, in->fd, EV_READ | EV_PERSIST, on_wake, in);
    }
    if (in->fd < 0 || !in->ev || event_add(in->ev, NULL) != 0) {
        gw_async_inbox_drain_destroy(in);
        return GV_EIO;
    }
    *out = in;
    return GV_OK;
}

size_t gw_async_inbox_pending(const struct gw_async_inbox *in)
{
    size_t n;

    pthread_mutex_lock((pthread_mutex_t *)&in->mu);
    n = in->pending;
    pthread_mutex_unlock((pthread_mutex_t *)&in->mu);
    return n;
}

void gw_async_inbox_drain_destroy(struct gw_async_inbox *in)
{
    if (!in) {
        return;
    }
    for (;;) {
        pthread_mutex_lock(&in->mu);
        while (in->pending > 0 && !in->done) {
            pthread_cond_wait(&in->cv, &in->mu);
        }
        if (in->pending == 0) {
            pthread_mutex_unlock(&in->mu);
            break;
        }
        pthread_mutex_unlock(&in->mu);
        run_done(in);
    }
    if (in->ev) {
        event_free(in->ev);
    }
    if (in->fd >= 0) {
        close(in->fd);
    }
    pthread_cond_destroy(&in->cv);
    pthread_mutex_destroy(&in->mu);
    gv_free(in);
}
