/* tests/unit/core/test_gv_time.c - the coarse clock and the HTTP Date value */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/gv_time.h"

/* The value is an RFC 9110 IMF-fixdate of a second between the clock read
 * before and after the call. */
static void test_http_date_is_imf_fixdate_of_now(void **state)
{
    time_t before;
    time_t after;
    time_t at;
    struct tm tm;
    const char *d;
    const char *end;

    (void)state;
    before = time(NULL);
    d = gv_time_http_date();
    after = time(NULL);
    assert_int_equal(strlen(d), 29);
    memset(&tm, 0, sizeof(tm));
    end = strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_non_null(end);
    assert_int_equal(*end, '\0');
    at = timegm(&tm);
    assert_true(at >= before && at <= after);
}

static void *other_thread(void *arg)
{
    (void)arg;
    return (void *)gv_time_http_date();
}

/* Each thread formats into its own buffer, so workers never share one. */
static void test_http_date_is_per_thread(void **state)
{
    pthread_t t;
    void *theirs = NULL;
    const char *mine;

    (void)state;
    mine = gv_time_http_date();
    assert_ptr_equal(gv_time_http_date(), mine);
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &theirs), 0);
    assert_ptr_not_equal(theirs, mine);
}

/* The coarse clock is the monotonic clock in milliseconds, read as of its last
 * update: never ahead of a fine reading taken after it, and behind one taken
 * before it by no more than the kernel's late ticks (a tick is 1-10 ms; on a
 * virtual machine with steal, several can be late: the bound is loose, and
 * still far from what a unit mistake, seconds or microseconds, would give). */
#define COARSE_LAG_MAX_MS 250u

static void test_mono_coarse_ms_tracks_mono(void **state)
{
    uint64_t before_ms, coarse_ms, after_ms, i;

    (void)state;
    for (i = 0; i < 1000; i++) {
        before_ms = gv_mono_us() / 1000u;
        coarse_ms = gv_mono_coarse_ms();
        after_ms = gv_mono_us() / 1000u;
        assert_true(coarse_ms <= after_ms);
        assert_true(coarse_ms + COARSE_LAG_MAX_MS >= before_ms);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_mono_coarse_ms_tracks_mono),
    cmocka_unit_test(test_http_date_is_imf_fixdate_of_now),
    cmocka_unit_test(test_http_date_is_per_thread),
};

#include "tests/unit/unit_main.h"
