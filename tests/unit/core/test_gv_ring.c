/* tests/unit/core/test_gv_ring.c - the many-producer, one-consumer ring */
/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_ring.h"

static void test_init_wants_a_power_of_two(void **state)
{
    struct gv_ring r;
    (void)state;

    assert_int_equal(gv_ring_init(&r, 0), GV_EINVAL);
    assert_int_equal(gv_ring_init(&r, 1), GV_EINVAL);
    assert_int_equal(gv_ring_init(&r, 6), GV_EINVAL);
    assert_int_equal(gv_ring_init(&r, 8), GV_OK);
    gv_ring_free(&r);
}

/* Fill, refuse, drain in order, then wrap around several laps. */
static void test_one_thread_fill_drain_wrap(void **state)
{
    struct gv_ring r;
    int payload[4];
    size_t pos, i, lap;
    (void)state;

    assert_int_equal(gv_ring_init(&r, 4), GV_OK);
    assert_false(gv_ring_front(&r, &pos));
    for (lap = 0; lap < 5; lap++) {
        for (i = 0; i < 4; i++) {
            assert_true(gv_ring_claim(&r, &pos));
            assert_int_equal(pos, lap * 4 + i);
            payload[gv_ring_index(&r, pos)] = (int)(lap * 100 + i);
            gv_ring_publish(&r, pos);
        }
        assert_false(gv_ring_claim(&r, &pos)); /* full */
        assert_int_equal(gv_ring_used(&r), 4);
        for (i = 0; i < 4; i++) {
            assert_true(gv_ring_front(&r, &pos));
            assert_int_equal(payload[gv_ring_index(&r, pos)], (int)(lap * 100 + i));
            gv_ring_pop(&r);
        }
        assert_false(gv_ring_front(&r, &pos));
        assert_int_equal(gv_ring_used(&r), 0);
    }
    gv_ring_free(&r);
}

/* A claimed but unpublished slot holds back the published ones after it. */
static void test_unpublished_claim_holds_back(void **state)
{
    struct gv_ring r;
    size_t a, b, pos;
    (void)state;

    assert_int_equal(gv_ring_init(&r, 4), GV_OK);
    assert_true(gv_ring_claim(&r, &a));
    assert_true(gv_ring_claim(&r, &b));
    gv_ring_publish(&r, b);
    assert_false(gv_ring_front(&r, &pos));
    gv_ring_publish(&r, a);
    assert_true(gv_ring_front(&r, &pos));
    assert_int_equal(pos, a);
    gv_ring_pop(&r);
    assert_true(gv_ring_front(&r, &pos));
    assert_int_equal(pos, b);
    gv_ring_pop(&r);
    gv_ring_free(&r);
}

/* Four producers race one consumer through a small ring: every value arrives once, and each
 * producer's values arrive in the order it sent them. */
#define PRODUCERS 4
#define PER_PRODUCER 20000

struct shared {
    struct gv_ring ring;
    uint32_t slots[16];
    _Atomic int done;
};

struct producer {
    struct shared *sh;
    uint32_t id;
    unsigned long full;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    uint32_t i;
    size_t pos;

    for (i = 0; i < PER_PRODUCER; i++) {
        while (!gv_ring_claim(&p->sh->ring, &pos)) {
            p->full++;
        }
        p->sh->slots[gv_ring_index(&p->sh->ring, pos)] = (p->id << 24) | i;
        gv_ring_publish(&p->sh->ring, pos);
    }
    atomic_fetch_add(&p->sh->done, 1);
    return NULL;
}

static void test_many_producers_one_consumer(void **state)
{
    static struct shared sh;
    struct producer prod[PRODUCERS];
    pthread_t t[PRODUCERS];
    uint32_t next[PRODUCERS];
    unsigned long got = 0;
    size_t pos;
    int i;
    (void)state;

    memset(next, 0, sizeof(next));
    assert_int_equal(gv_ring_init(&sh.ring, 16), GV_OK);
    atomic_init(&sh.done, 0);
    for (i = 0; i < PRODUCERS; i++) {
        prod[i].sh = &sh;
        prod[i].id = (uint32_t)i;
        prod[i].full = 0;
        assert_int_equal(pthread_create(&t[i], NULL, produce, &prod[i]), 0);
    }
    while (got < (unsigned long)PRODUCERS * PER_PRODUCER) {
        uint32_t v, who;
        if (!gv_ring_front(&sh.ring, &pos)) {
            continue;
        }
        v = sh.slots[gv_ring_index(&sh.ring, pos)];
        gv_ring_pop(&sh.ring);
        who = v >> 24;
        assert_true(who < PRODUCERS);
        assert_int_equal(v & 0xffffff, next[who]);
        next[who]++;
        got++;
    }
    for (i = 0; i < PRODUCERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(next[i], PER_PRODUCER);
    }
    assert_false(gv_ring_front(&sh.ring, &pos));
    assert_int_equal(gv_ring_used(&sh.ring), 0);
    gv_ring_free(&sh.ring);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_init_wants_a_power_of_two),
    cmocka_unit_test(test_one_thread_fill_drain_wrap),
    cmocka_unit_test(test_unpublished_claim_holds_back),
    cmocka_unit_test(test_many_producers_one_consumer),
};

#include "tests/unit/unit_main.h"
