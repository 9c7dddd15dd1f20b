/* tests/unit/core/trace/test_gv_trace.c - W3C trace context: parse, format, derived ids */
/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/gv_trace.h"

#define TP_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define TP_SPAN "00f067aa0ba902b7"

static void test_parse_and_format_round_trip(void **state)
{
    uint8_t t[GV_TRACE_ID_LEN], s[GV_SPAN_ID_LEN], f = 0;
    char out[GV_TRACEPARENT_LEN + 1];

    (void)state;
    assert_int_equal(gv_trace_parse("00-" TP_TRACE "-" TP_SPAN "-01", t, s, &f), GV_OK);
    assert_int_equal(t[0], 0x4b);
    assert_int_equal(t[15], 0x36);
    assert_int_equal(s[0], 0x00);
    assert_int_equal(s[7], 0xb7);
    assert_int_equal(f, 1);
    gv_trace_format(t, s, f, out);
    assert_string_equal(out, "00-" TP_TRACE "-" TP_SPAN "-01");
    assert_int_equal(strlen(out), GV_TRACEPARENT_LEN);
}

static void test_parse_refuses_what_w3c_refuses(void **state)
{
    static const char *const bad[] = {
        "",
        "00-" TP_TRACE "-" TP_SPAN "-0",                      /* short */
        "00-" TP_TRACE "-" TP_SPAN "-01-extra",               /* v00 must be exact */
        "ff-" TP_TRACE "-" TP_SPAN "-01",                     /* invalid version */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" TP_SPAN "-01", /* upper case */
        "00-00000000000000000000000000000000-" TP_SPAN "-01", /* zero trace id */
        "00-" TP_TRACE "-0000000000000000-01",                /* zero span id */
        "00_" TP_TRACE "-" TP_SPAN "-01",                     /* separator */
        "00-" TP_TRACE "-" TP_SPAN "-zz",                     /* flags not hex */
        "01-" TP_TRACE "-" TP_SPAN "-01x",                    /* later version, no '-' */
    };
    uint8_t t[GV_TRACE_ID_LEN], s[GV_SPAN_ID_LEN], f;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(gv_trace_parse(bad[i], t, s, &f), GV_EINVAL);
    }
    assert_int_equal(gv_trace_parse(NULL, t, s, &f), GV_EINVAL);
    /* A later version may append fields after a '-'. */
    assert_int_equal(gv_trace_parse("01-" TP_TRACE "-" TP_SPAN "-01-future", t, s, &f), GV_OK);
}

static void test_derive_is_deterministic_and_labelled(void **state)
{
    uint8_t a[16], b[16], c[16];

    (void)state;
    gv_trace_derive("kt.trace", "req-1", 5, a, sizeof(a));
    gv_trace_derive("kt.trace", "req-1", 5, b, sizeof(b));
    gv_trace_derive("kt.server", "req-1", 5, c, sizeof(c));
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, c, sizeof(a));
    assert_true(gv_trace_id_valid(a, sizeof(a)));
}

static void test_request_ids_are_deterministic_and_distinct(void **state)
{
    struct gv_trace_ids a, b, c;
    struct gv_record rec;

    (void)state;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.request_id, sizeof(rec.request_id), "req-1");
    rec.start_wall_us = 42;
    gv_trace_derive_ids(&rec, &a);
    gv_trace_derive_ids(&rec, &b);
    assert_memory_equal(&a, &b, sizeof(a));
    /* Three ids, none all zero, the two spans apart. */
    assert_true(gv_trace_id_valid(a.trace, sizeof(a.trace)));
    assert_true(gv_trace_id_valid(a.server, sizeof(a.server)));
    assert_true(gv_trace_id_valid(a.client, sizeof(a.client)));
    assert_memory_not_equal(a.server, a.client, sizeof(a.server));
    /* Another start time or another request: other ids. */
    rec.start_wall_us = 43;
    gv_trace_derive_ids(&rec, &c);
    assert_memory_not_equal(a.trace, c.trace, sizeof(a.trace));
    assert_memory_not_equal(a.server, c.server, sizeof(a.server));
    rec.start_wall_us = 42;
    snprintf(rec.request_id, sizeof(rec.request_id), "req-2");
    gv_trace_derive_ids(&rec, &c);
    assert_memory_not_equal(a.client, c.client, sizeof(a.client));
    /* The id is "<request id>/<start>": "req-1" at 42 is not "req-14" at 2. */
    snprintf(rec.request_id, sizeof(rec.request_id), "req-14");
    rec.start_wall_us = 2;
    gv_trace_derive_ids(&rec, &c);
    assert_memory_not_equal(a.trace, c.trace, sizeof(a.trace));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse_and_format_round_trip),
    cmocka_unit_test(test_parse_refuses_what_w3c_refuses),
    cmocka_unit_test(test_derive_is_deterministic_and_labelled),
    cmocka_unit_test(test_request_ids_are_deterministic_and_distinct),
};

#include "tests/unit/unit_main.h"
