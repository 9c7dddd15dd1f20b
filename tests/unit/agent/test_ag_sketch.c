/* tests/unit/agent/test_ag_sketch.c - quantile accuracy, bounded memory, merge */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>

#include <cmocka.h>

#include "agent/ag_sketch.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank on sorted data, as the sketch defines it. */
static double exact(const uint64_t *v, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);
    return (double)v[rank ? rank - 1 : 0];
}

static void check_quantiles(uint64_t *v, size_t n)
{
    struct ag_sketch s;
    const double qs[] = {0.5, 0.9, 0.95, 0.99, 0.999, 1.0};
    size_t i;

    ag_sketch_init(&s);
    for (i = 0; i < n; i++) {
        ag_sketch_add(&s, v[i]);
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        double want = exact(v, n, qs[i]);
        double got = ag_sketch_quantile(&s, qs[i]);
        assert_true(fabs(got - want) <= 0.01 * want);
    }
    assert_true(ag_sketch_mem(&s) <= AG_SKETCH_MAX_BINS * sizeof(uint32_t));
    ag_sketch_free(&s);
}

/* n values from draw after srand(seed), through check_quantiles. */
static void check_drawn(uint64_t (*draw)(void), size_t n, unsigned seed)
{
    uint64_t *v = malloc(n * sizeof(*v));
    size_t i;

    srand(seed);
    for (i = 0; i < n; i++) {
        v[i] = draw();
    }
    check_quantiles(v, n);
    free(v);
}

/* Box-Muller: latencies around 20 ms with a long tail. */
static uint64_t draw_lognormal(void)
{
    double u1 = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = (rand() + 1.0) / (RAND_MAX + 2.0);
    double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
    return (uint64_t)(20000.0 * exp(0.6 * z)) + 1;
}

static uint64_t draw_uniform_wide(void)
{
    return 1000 + (uint64_t)rand() % 100000; /* 1 ms .. 101 ms */
}

static void test_quantile_within_one_percent_lognormal(void **state)
{
    (void)state;
    check_drawn(draw_lognormal, 200000, 3);
}

static void test_quantile_within_one_percent_uniform_wide(void **state)
{
    (void)state;
    check_drawn(draw_uniform_wide, 100000, 5);
}

static void test_memory_fixed_when_range_explodes(void **state)
{
    struct ag_sketch s;
    uint64_t v;

    (void)state;
    ag_sketch_init(&s);
    for (v = 1; v < 4000000000ull; v = v * 3 / 2 + 1) {
        ag_sketch_add(&s, v);
    }
    ag_sketch_add(&s, 0);
    assert_true(s.nbins <= AG_SKETCH_MAX_BINS);
    assert_true(ag_sketch_mem(&s) <= AG_SKETCH_MAX_BINS * sizeof(uint32_t));
    /* The maximum survives the collapse of the low end. */
    assert_true(fabs(ag_sketch_quantile(&s, 1.0) - (double)(v * 2 / 3)) <= 0.02 * (double)v);
    ag_sketch_free(&s);
}

static void test_merge_equals_single_sketch(void **state)
{
    struct ag_sketch a, b, all;
    uint64_t i;
    const double qs[] = {0.5, 0.95, 0.99};
    size_t k;

    (void)state;
    ag_sketch_init(&a);
    ag_sketch_init(&b);
    ag_sketch_init(&all);
    for (i = 1; i <= 50000; i++) {
        uint64_t v = (i * 7919) % 90000 + 500;
        ag_sketch_add(i % 2 ? &a : &b, v);
        ag_sketch_add(&all, v);
    }
    ag_sketch_merge(&a, &b);
    assert_int_equal(a.count, all.count);
    for (k = 0; k < 3; k++) {
        assert_true(ag_sketch_quantile(&a, qs[k]) == ag_sketch_quantile(&all, qs[k]));
    }
    ag_sketch_free(&a);
    ag_sketch_free(&b);
    ag_sketch_free(&all);
}

static void test_empty_and_zero(void **state)
{
    struct ag_sketch s;

    (void)state;
    ag_sketch_init(&s);
    assert_true(ag_sketch_quantile(&s, 0.5) == 0);
    ag_sketch_add(&s, 0);
    ag_sketch_add(&s, 0);
    ag_sketch_add(&s, 1000);
    assert_true(ag_sketch_quantile(&s, 0.5) == 0);
    assert_true(fabs(ag_sketch_quantile(&s, 1.0) - 1000) <= 10);
    ag_sketch_free(&s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_quantile_within_one_percent_lognormal),
    cmocka_unit_test(test_quantile_within_one_percent_uniform_wide),
    cmocka_unit_test(test_memory_fixed_when_range_explodes),
    cmocka_unit_test(test_merge_equals_single_sketch),
    cmocka_unit_test(test_empty_and_zero),
};

#include "tests/unit/unit_main.h"
