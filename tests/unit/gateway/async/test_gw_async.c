/* tests/unit/gateway/async/test_gw_async.c - jobs run on the pool and come back to the inbox */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <pthread.h>

#include "gateway/gw_async.h"

struct tjob {
    struct gw_async_job job; /* first */
    pthread_t ran_on;
    bool ran;
    bool back;
};

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static bool gate_entered;
static int backs;

static void run_plain(struct gw_async_job *job)
{
    struct tjob *t = (struct tjob *)job;
    t->ran_on = pthread_self();
    t->ran = true;
}

/* Holds its pool thread until the test opens the gate: a full queue on demand. */
static void run_gated(struct gw_async_job *job)
{
    pthread_mutex_lock(&gate_mu);
    gate_entered = true;
    pthread_cond_broadcast(&gate_cv);
    while (!gate_open) {
        pthread_cond_wait(&gate_cv, &gate_mu);
    }
    pthread_mutex_unlock(&gate_mu);
    run_plain(job);
}

static void on_done(struct gw_async_job *job, void *arg)
{
    struct tjob *t = (struct tjob *)job;
    (void)arg;
    t->back = true;
    backs++;
}

static void test_jobs_run_off_thread_and_come_back_through_the_loop(void **state)
{
    struct event_base *base = event_base_new();
    struct gw_async_pool *pool = NULL;
    struct gw_async_inbox *in = NULL;
    struct tjob jobs[64];
    size_t i;

    (void)state;
    backs = 0;
    assert_int_equal(gw_async_pool_create(2, 64, &pool), GV_OK);
    assert_int_equal(gw_async_inbox_create(base, on_done, NULL, &in), GV_OK);
    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < 64; i++) {
        jobs[i].job.run = run_plain;
        jobs[i].job.inbox = in;
        assert_int_equal(gw_async_submit(pool, &jobs[i].job), GV_OK);
    }
    while (backs < 64) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    assert_int_equal(gw_async_inbox_pending(in), 0);
    for (i = 0; i < 64; i++) {
        assert_true(jobs[i].ran && jobs[i].back);
        assert_false(pthread_equal(jobs[i].ran_on, pthread_self()));
    }
    gw_async_inbox_drain_destroy(in);
    gw_async_pool_destroy(pool);
    event_base_free(base);
}

static void test_full_queue_refuses_and_drain_waits_for_all(void **state)
{
    struct event_base *base = event_base_new();
    struct gw_async_pool *pool = NULL;
    struct gw_async_inbox *in = NULL;
    struct tjob a, b, c;

    (void)state;
    backs = 0;
    gate_open = false;
    gate_entered = false;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));
    assert_int_equal(gw_async_pool_create(1, 1, &pool), GV_OK);
    assert_int_equal(gw_async_inbox_create(base, on_done, NULL, &in), GV_OK);
    a.job.run = run_gated;
    b.job.run = run_plain;
    c.job.run = run_plain;
    a.job.inbox = b.job.inbox = c.job.inbox = in;
    assert_int_equal(gw_async_submit(pool, &a.job), GV_OK);
    /* Wait until the only thread holds a: the queue (1 slot) is then empty. */
    pthread_mutex_lock(&gate_mu);
    while (!gate_entered) {
        pthread_cond_wait(&gate_cv, &gate_mu);
    }
    pthread_mutex_unlock(&gate_mu);
    assert_int_equal(gw_async_submit(pool, &b.job), GV_OK);
    assert_int_equal(gw_async_submit(pool, &c.job), GV_E2BIG); /* full: never blocks */
    assert_false(c.ran);
    assert_int_equal(gw_async_inbox_pending(in), 2);
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    /* No loop runs: drain hands both back on this thread before it returns. */
    gw_async_inbox_drain_destroy(in);
    assert_int_equal(backs, 2);
    assert_true(a.back && b.back);
    assert_false(c.back);
    gw_async_pool_destroy(pool);
    event_base_free(base);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_jobs_run_off_thread_and_come_back_through_the_loop),
    cmocka_unit_test(test_full_queue_refuses_and_drain_waits_for_all),
};

#include "tests/unit/unit_main.h"
