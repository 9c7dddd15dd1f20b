/* tests/unit/core/test_gv_time.c - the coarse clock, wall at a mono instant, HTTP Date */
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

/* The wall time of a monotonic instant lands between wall readings taken around it
 * (the bound is loose: a mistake in units or sign is off by seconds or years), and two
 * instants map with the same offset: their wall times are as far apart as they are. */
#define WALL_AT_MONO_SLACK_US 50000u

static void test_wall_at_mono_tracks_wall(void **state)
{
    uint64_t before, mono, at, after, i;

    (void)state;
    for (i = 0; i < 1000; i++) {
        before = gv_wall_us();
        mono = gv_mono_us();
        at = gv_wall_at_mono(mono);
        after = gv_wall_us();
        assert_true(at + WALL_AT_MONO_SLACK_US >= before);
        assert_true(at <= after + WALL_AT_MONO_SLACK_US);
        assert_int_equal(gv_wall_at_mono(mono - 1000u), at - 1000u);
    }
    /* Past the offset's lifetime it is read again, and still lands there. */
    struct timespec nap = {0, (long)(GV_WALL_OFFSET_TTL_US + 5000u) * 1000};
    nanosleep(&nap, NULL);
    before = gv_wall_us();
    at = gv_wall_at_mono(gv_mono_us());
    after = gv_wall_us();
    assert_true(at + WALL_AT_MONO_SLACK_US >= before);
    assert_true(at <= after + WALL_AT_MONO_SLACK_US);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_wall_at_mono_tracks_wall),
    cmocka_unit_test(test_mono_coarse_ms_tracks_mono),
    cmocka_unit_test(test_http_date_is_imf_fixdate_of_now),
    cmocka_unit_test(test_http_date_is_per_thread),
};

#include "tests/unit/unit_main.h"
