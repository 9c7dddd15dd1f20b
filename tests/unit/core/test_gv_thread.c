/* tests/unit/core/test_gv_thread.c - threads kt starts run on the C locale object */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_thread.h"

struct seen {
    locale_t current;
    double number;
};

static void *look(void *arg)
{
    struct seen *s = arg;

    s->current = uselocale((locale_t)0);
    s->number = strtod("1.5", NULL);
    return NULL;
}

/* The object json-c's per-parse duplocale and newlocale hand back unallocated. */
static void test_started_thread_uses_c_object(void **state)
{
    struct seen s = {0};
    pthread_t t;

    (void)state;
    assert_int_equal(gv_thread_start(&t, "kt-test", GV_THREAD_SERVING, look, &s), GV_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(s.current != LC_GLOBAL_LOCALE);
    assert_ptr_equal(s.current, newlocale(LC_ALL_MASK, "C", (locale_t)0));
    assert_true(s.number == 1.5);
}

static void test_calling_thread_switches(void **state)
{
    (void)state;
    assert_true(uselocale((locale_t)0) == LC_GLOBAL_LOCALE);
    gv_thread_use_c_locale();
    assert_ptr_equal(uselocale((locale_t)0), newlocale(LC_ALL_MASK, "C", (locale_t)0));
    assert_ptr_equal(duplocale(uselocale((locale_t)0)), uselocale((locale_t)0));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_started_thread_uses_c_object),
    cmocka_unit_test(test_calling_thread_switches),
};

#include "tests/unit/unit_main.h"
